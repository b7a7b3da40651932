/*
 * cache_key.h — the CachePlugin's cache keys (spec §6.2, s3db.js 21.6.2)
 * and the rule that decides which keys a write can affect.
 *
 * A cache key is the path-join of
 *   resource=<R>/action=<method>
 *   [/partition:<name>/<field>:<value>...]   only with a partition AND
 *                                            non-empty values; one segment
 *                                            per non-null value, in the
 *                                            values' insertion order
 *   [/<md5_hex(canonical_json(params))[0..16]>]   only with parameters
 * followed by ".json.gz" (even when the body is not compressed).  The S3
 * driver stores it under "plugin=cache/<keyPrefix>/"; the memory driver
 * uses it as is, so both drivers share the invalidation rule below.
 */
#ifndef S3DB_CACHE_KEY_H
#define S3DB_CACHE_KEY_H

#include <json-c/json.h>
#include "s3db_plugin.h"

/* The first 16 hex characters of md5(canonical_json(params)) (§2.2.3)
 * into out (>= 17 bytes).  Returns 0, or -1 when out of memory. */
int cache_key_params_hash(json_object *params, char out[17]);

/* The cache key of a request (malloc'd, caller frees); NULL when out of
 * memory.  include_partitions 0 leaves the partition segments out (the
 * guide's includePartitions: false). */
char *cache_key_for(const s3db_cache_request *rq, int include_partitions);

/* String(value) as JavaScript renders a partition value in a key segment
 * (strings verbatim, numbers in JavaScript's shortest form, arrays comma
 * joined).  malloc'd; NULL when out of memory. */
char *cache_key_js_string(json_object *value);

/* What a write changed, for the invalidation rule. */
typedef struct cache_write {
	const char *resource;
	const char *id;              /* the record written                    */
	json_object *old_record;     /* before the write (NULL: none)         */
	json_object *new_record;     /* after the write (NULL: deleted)       */
} cache_write;

/* 1 when the cached entry of `key` can have changed through write w:
 *   - entries of other resources: never;
 *   - get / exists / content / hasContent: only the written record's
 *     (the key's hash is that of {"id": w->id});
 *   - getMany, and list / listIds / count / getAll / page / query without
 *     a partition: always (the write may add, drop or change a member);
 *   - a partition-scoped entry: only when the old or the new record has
 *     the entry's partition values (a value matches the record's
 *     String(value) or a prefix of it, so that rules like maxlength and
 *     date, which cut values, never leave a stale entry);
 *   - anything else under the resource (s3db.js's meta/... keys, unknown
 *     actions): always.
 * id_hash is cache_key_params_hash({"id": w->id}) (computed once per
 * write by the caller). */
int cache_key_affected(const char *key, const cache_write *w, const char *id_hash);

/* The key prefix of everything cached for a resource: "resource=<R>/"
 * (malloc'd). */
char *cache_key_resource_prefix(const char *resource);

#endif
