/*
 * cache_s3.h — the CachePlugin's S3 driver: one plugin-storage object per
 * cache entry (spec §6.1, §6.2), under
 *
 *     plugin=cache/<keyPrefix>/<cache key>
 *
 * relative to a database's prefix — the cached database's own (default),
 * or a database opened at another place for the cache (s3Options.bucket
 * or s3Options.connectionString).  Bodies are cache_body.h's.  Requests go
 * through the plugin api's raw-object calls, never through the read
 * cache, so the cache never caches itself.
 *
 * Expired objects (_expiresAt in the past) read as misses and are deleted
 * when met; objects that do not decode (corrupt, or encrypted under
 * another key) are misses too and are deleted.
 */
#ifndef S3DB_CACHE_S3_H
#define S3DB_CACHE_S3_H

#include "cache_body.h"
#include "cache_key.h"
#include "s3db_plugin.h"

typedef struct cache_s3 {
	const s3db_plugin_api *api;
	s3db *target;              /* where the objects go (borrowed or own) */
	s3db *own;                 /* opened for the cache, closed at free   */
	char *base;                /* "plugin=cache/<keyPrefix>/"            */
	cache_crypto crypto;
} cache_s3;

/* The object key of a cache key (malloc'd). */
char *cache_s3_object_key(const cache_s3 *c, const char *cache_key);

/* 1 and *out (owned by the caller) on a live entry; 0 on a miss (an
 * error counts as a miss and is reported in err). */
int cache_s3_get(cache_s3 *c, const char *cache_key, json_object **out, s3db_error *err);
/* Stores value under cache_key, gzipped when compression is on and the
 * text long enough, expiring ttl_ms from now (0: never).  compression and
 * ttl are arguments, not members of c: they may change while the plugin
 * runs (its live options), the location and key may not. */
s3db_code cache_s3_set(cache_s3 *c, const char *cache_key, json_object *value, int compression,
                       int64_t ttl_ms, s3db_error *err);
s3db_code cache_s3_delete(cache_s3 *c, const char *cache_key, s3db_error *err);
/* Deletes the objects under "<base>resource=<R>/" whose cache key pred
 * accepts (one LIST, one DELETE per object); *n (optional) counts them. */
s3db_code cache_s3_delete_if(cache_s3 *c, const char *resource,
                             int (*pred)(void *ud, const char *key), void *ud, size_t *n,
                             s3db_error *err);
/* Deletes every object of the cache. */
s3db_code cache_s3_clear(cache_s3 *c, size_t *n, s3db_error *err);
/* Counts the objects and their bytes (one LIST per 1,000). */
s3db_code cache_s3_usage(cache_s3 *c, size_t *entries, uint64_t *bytes, s3db_error *err);

#endif
