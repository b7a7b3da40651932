/*
 * cache_s3.c — the S3 driver (contract: cache_s3.h).
 *
 * Every operation is a raw-object call of the plugin api on c->target;
 * deletions by predicate list the resource's part of the cache once and
 * delete what matches, so a write costs one LIST plus one DELETE per
 * affected entry, never the whole cache.
 */
#include <stdlib.h>
#include <string.h>
#include "cache_s3.h"
#include "util.h"

char *cache_s3_object_key(const cache_s3 *c, const char *cache_key)
{
	return s3db_asprintf("%s%s", c->base, cache_key);
}

int cache_s3_get(cache_s3 *c, const char *cache_key, json_object **out, s3db_error *err)
{
	*out = NULL;
	char *key = cache_s3_object_key(c, cache_key);
	if (!key)
		return 0;
	void *data = NULL;
	size_t len = 0;
	s3db_code rc = c->api->get_object(c->target, key, &data, &len, NULL, NULL, err);
	int expired = 0;
	if (rc == S3DB_OK)
		rc = cache_body_decode(data, len, s3db_now_ms(), &c->crypto, cache_key, out, &expired,
		                       err);
	free(data);
	if (rc == S3DB_ERR_NOT_FOUND)
		s3db_error_clear(err);
	else if (expired || (rc != S3DB_OK && rc != S3DB_ERR_NETWORK && rc != S3DB_ERR_TIMEOUT &&
	                     rc != S3DB_ERR_SERVER && rc != S3DB_ERR_ACCESS_DENIED))
		c->api->delete_object(c->target, key, NULL); /* stale or unreadable: drop it */
	free(key);
	return rc == S3DB_OK && *out != NULL;
}

s3db_code cache_s3_set(cache_s3 *c, const char *cache_key, json_object *value, int compression,
                       int64_t ttl_ms, s3db_error *err)
{
	cache_body_opts o = {
		.compression = compression, .ttl_ms = ttl_ms, .now_ms = s3db_now_ms(),
		.crypto = &c->crypto, .aad = cache_key,
	};
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	s3db_code rc = cache_body_encode(value, &o, &body, &len, &ctype, err);
	char *key = rc == S3DB_OK ? cache_s3_object_key(c, cache_key) : NULL;
	if (rc == S3DB_OK && !key)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK)
		rc = c->api->put_object(c->target, key, body, len, ctype, NULL, err);
	free(key);
	free(body);
	return rc;
}

s3db_code cache_s3_delete(cache_s3 *c, const char *cache_key, s3db_error *err)
{
	char *key = cache_s3_object_key(c, cache_key);
	if (!key)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s3db_code rc = c->api->delete_object(c->target, key, err);
	free(key);
	return rc == S3DB_ERR_NOT_FOUND ? S3DB_OK : rc;
}

typedef struct s3_walk {
	const char *base;
	size_t base_len;
	const char *need;                         /* key prefix to keep   */
	int (*pred)(void *ud, const char *key);   /* NULL: every key      */
	void *ud;
	int collect;                              /* 0: count only        */
	strv keys;                                /* object keys to drop  */
	size_t matched;                           /* keys.count, kept     */
	size_t entries;
	uint64_t bytes;
	int oom;
} s3_walk;

/* list_keys callback: keys under base (the listing prefix may be wider:
 * the host drops a trailing '/'), selected by need and pred. */
static int walk_key(void *ud, const char *key, uint64_t size)
{
	s3_walk *w = ud;
	if (!s3db_str_starts(key, w->base) || !s3db_str_starts(key + w->base_len, w->need))
		return 0;
	w->entries++;
	w->bytes += size;
	if (!w->collect || (w->pred && !w->pred(w->ud, key + w->base_len)))
		return 0;
	if (strv_push(&w->keys, key)) {
		w->oom = 1;
		return 1;
	}
	return 0;
}

/* Lists "<base><need>" and, when w->collect, deletes what pred accepts. */
static s3db_code walk(cache_s3 *c, s3_walk *w, s3db_error *err)
{
	char *prefix = s3db_asprintf("%s%s", c->base, w->need);
	if (!prefix)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	w->base = c->base;
	w->base_len = strlen(c->base);
	strv_init(&w->keys);
	s3db_code rc = c->api->list_keys(c->target, prefix, walk_key, w, err);
	free(prefix);
	if (rc == S3DB_OK && w->oom)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	w->matched = w->keys.count;
	for (size_t i = 0; rc == S3DB_OK && i < w->keys.count; i++) {
		rc = c->api->delete_object(c->target, w->keys.items[i], err);
		if (rc == S3DB_ERR_NOT_FOUND)
			rc = S3DB_OK;
	}
	strv_free(&w->keys);
	return rc;
}

s3db_code cache_s3_delete_if(cache_s3 *c, const char *resource,
                             int (*pred)(void *ud, const char *key), void *ud, size_t *n,
                             s3db_error *err)
{
	char *need = cache_key_resource_prefix(resource);
	if (!need)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s3_walk w = { .need = need, .pred = pred, .ud = ud, .collect = 1 };
	s3db_code rc = walk(c, &w, err);
	free(need);
	if (n)
		*n = w.matched;
	return rc;
}

s3db_code cache_s3_clear(cache_s3 *c, size_t *n, s3db_error *err)
{
	s3_walk w = { .need = "", .collect = 1 };
	s3db_code rc = walk(c, &w, err);
	if (n)
		*n = w.entries;
	return rc;
}

s3db_code cache_s3_usage(cache_s3 *c, size_t *entries, uint64_t *bytes, s3db_error *err)
{
	s3_walk w = { .need = "", .collect = 0 };
	s3db_code rc = walk(c, &w, err);
	*entries = w.entries;
	*bytes = w.bytes;
	return rc;
}
