/*
 * cache_memory.h — the CachePlugin's memory driver: a thread-safe LRU map
 * from cache key to a JSON value, bounded by an entry count (maxSize),
 * with a time-to-live per entry.
 *
 * Values are deep copies, in both directions: what the library handed in
 * may be changed by its caller afterwards, and what a hit hands out
 * belongs to the caller.  An entry's size (for /.cache) is the length of
 * its JSON text.  Lookups move an entry to the front; a store beyond
 * maxSize evicts from the back (counted as evictions).  Expired entries
 * are misses and are dropped when met, and by cache_memory_purge (the
 * checkPeriod thread).  An entry expires ttl after it was stored, with
 * the ttl in force when it is looked at: cache_memory_configure's new ttl
 * applies to the entries already there.
 */
#ifndef S3DB_CACHE_MEMORY_H
#define S3DB_CACHE_MEMORY_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

typedef struct cache_memory cache_memory;

/* max_size >= 1 entries; ttl_ms 0: entries never expire.  NULL on oom. */
cache_memory *cache_memory_new(size_t max_size, int64_t ttl_ms);
void cache_memory_free(cache_memory *m);

/* 1 and *out (a copy, owned by the caller) on a live entry; 0 else. */
int cache_memory_get(cache_memory *m, const char *key, int64_t now_ms, json_object **out);
/* Stores a copy of value under key (replacing an entry); 0, or -1 oom. */
int cache_memory_set(cache_memory *m, const char *key, json_object *value, int64_t now_ms);
/* Drops the entry of key; 1 when there was one. */
int cache_memory_delete(cache_memory *m, const char *key);
/* Drops every entry whose key pred accepts; returns how many.  pred runs
 * under the driver's lock: it must not call back into the driver. */
size_t cache_memory_delete_if(cache_memory *m, int (*pred)(void *ud, const char *key), void *ud);
/* Drops expired entries; returns how many. */
size_t cache_memory_purge(cache_memory *m, int64_t now_ms);
void cache_memory_clear(cache_memory *m);
/* Changes maxSize and ttl while in use (both at once, under the driver's
 * lock): a smaller max_size evicts the least recently used entries at
 * once (counted as evictions).  Returns how many were evicted. */
size_t cache_memory_configure(cache_memory *m, size_t max_size, int64_t ttl_ms);

typedef struct cache_memory_stats {
	size_t entries, bytes, max_size;
	uint64_t evictions, expirations;
} cache_memory_stats;
void cache_memory_get_stats(cache_memory *m, cache_memory_stats *st);

#endif
