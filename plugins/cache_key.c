/*
 * cache_key.c — cache keys of the CachePlugin (contract: cache_key.h).
 *
 * Keys are built as s3db.js 21.6.2's cacheKeyFor builds them (§6.2), so
 * an S3 cache written by either library is found by the other.  The
 * invalidation rule reads keys back: it never needs an index of what is
 * cached, only the key text, which is what both drivers can enumerate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "cache_key.h"
#include "schema.h"
#include "util.h"

int cache_key_params_hash(json_object *params, char out[17])
{
	char *canon = schema_canonical_json(params);
	if (!canon)
		return -1;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int ok = EVP_Digest(canon, strlen(canon), md, &n, EVP_md5(), NULL);
	free(canon);
	if (!ok || n < 8)
		return -1;
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

char *cache_key_js_string(json_object *value)
{
	if (value && json_object_is_type(value, json_type_string))
		return strdup(json_object_get_string(value));
	if (value && json_object_is_type(value, json_type_array)) {
		sbuf b;
		sbuf_init(&b);
		for (size_t i = 0; i < json_object_array_length(value); i++) {
			json_object *e = json_object_array_get_idx(value, i);
			if (i)
				sbuf_putc(&b, ',');
			if (!e)
				continue; /* [null].join() is "" */
			char *t = cache_key_js_string(e);
			if (!t)
				b.oom = 1;
			else
				sbuf_puts(&b, t);
			free(t);
		}
		return sbuf_steal(&b);
	}
	if (value && json_object_is_type(value, json_type_object))
		return strdup("[object Object]");
	return s3db_json_stringify(value, 0); /* numbers, booleans, null */
}

/* 1 when the request names a partition with at least one non-null value. */
static int has_partition_values(const s3db_cache_request *rq)
{
	if (!rq->partition || !rq->partition_values ||
	    !json_object_is_type(rq->partition_values, json_type_object))
		return 0;
	json_object_object_foreach(rq->partition_values, k, v) {
		(void)k;
		if (v)
			return 1;
	}
	return 0;
}

char *cache_key_for(const s3db_cache_request *rq, int include_partitions)
{
	sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "resource=%s/action=%s", rq->resource, rq->action);
	if (include_partitions && has_partition_values(rq)) {
		sbuf_printf(&b, "/partition:%s", rq->partition);
		json_object_object_foreach(rq->partition_values, field, v) {
			if (!v)
				continue;
			char *t = cache_key_js_string(v);
			if (!t)
				b.oom = 1;
			else
				sbuf_printf(&b, "/%s:%s", field, t);
			free(t);
		}
	}
	if (rq->params) {
		char hash[17];
		if (cache_key_params_hash(rq->params, hash))
			b.oom = 1;
		else
			sbuf_printf(&b, "/%s", hash);
	}
	sbuf_puts(&b, ".json.gz");
	return sbuf_steal(&b);
}

char *cache_key_resource_prefix(const char *resource)
{
	return s3db_asprintf("resource=%s/", resource);
}

/* The action of a key relative to its resource ("action=get/..."): the
 * name into out; 0, or -1 when the key has no action segment. */
static int key_action(const char *rest, char *out, size_t size)
{
	if (!s3db_str_starts(rest, "action="))
		return -1;
	rest += 7;
	size_t n = strcspn(rest, "/");
	const char *dot = strstr(rest, ".json");
	if (dot && (size_t)(dot - rest) < n)
		n = (size_t)(dot - rest);
	if (n == 0 || n >= size)
		return -1;
	memcpy(out, rest, n);
	out[n] = '\0';
	return 0;
}

/* 1 when the record has, for field, a value whose String() equals want
 * or begins with it (a rule may have cut the stored value). */
static int record_has_value(json_object *record, const char *field, const char *want)
{
	if (!record)
		return 0;
	json_object *v = s3db_json_get_path(record, field);
	if (!v)
		return 0;
	char *t = cache_key_js_string(v);
	int match = t && s3db_str_starts(t, want);
	free(t);
	return match;
}

/* For "partition:P/f:v/f:v[/hash].json.gz": 1 when record has every f:v. */
static int record_in_partition_key(json_object *record, const char *segs)
{
	if (!record)
		return 0;
	char *copy = strdup(segs);
	if (!copy)
		return 1; /* out of memory: treat as affected, never stale */
	char *gz = strstr(copy, ".json.gz");
	if (gz && gz[8] == '\0')
		*gz = '\0';
	int match = 1;
	char *save = NULL;
	for (char *seg = strtok_r(copy, "/", &save); seg && match;
	     seg = strtok_r(NULL, "/", &save)) {
		char *colon = strchr(seg, ':');
		if (!colon)
			continue; /* the params hash */
		*colon = '\0';
		match = record_has_value(record, seg, colon + 1);
	}
	free(copy);
	return match;
}

static int is_record_action(const char *action)
{
	return !strcmp(action, "get") || !strcmp(action, "exists") || !strcmp(action, "content") ||
	       !strcmp(action, "hasContent");
}

int cache_key_affected(const char *key, const cache_write *w, const char *id_hash)
{
	char *prefix = cache_key_resource_prefix(w->resource);
	if (!prefix)
		return 1;
	int mine = s3db_str_starts(key, prefix);
	const char *rest = key + strlen(prefix);
	free(prefix);
	if (!mine)
		return 0;
	char action[64];
	if (key_action(rest, action, sizeof action))
		return 1; /* meta/count, cursor checkpoints, ...: anything goes */
	if (is_record_action(action)) {
		const char *h = strrchr(rest, '/');
		return !h || strncmp(h + 1, id_hash, 16) != 0 ? 0 : 1;
	}
	const char *part = strstr(rest, "/partition:");
	if (!part || !strcmp(action, "getMany") || !strcmp(action, "getFromPartition"))
		return 1;
	const char *segs = strchr(part + 1, '/');
	if (!segs)
		return 1;
	return record_in_partition_key(w->old_record, segs + 1) ||
	       record_in_partition_key(w->new_record, segs + 1);
}
