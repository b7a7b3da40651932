/*
 * cache.c — CachePlugin: the guide's read cache for s3db, as a built-in
 * plugin (cache_plugin_def).
 *
 * Options (the guide's names and defaults; JSON config "options"):
 *   driverType         "s3" | "memory"                    default "s3"
 *   driver             "s3" | "memory", or an object {"type": "memory"|"s3",
 *                      ...that driver's options} (the guide's custom driver
 *                      instance, as JSON)                  default null
 *   ttl                ms, 0 = no expiry                   default 300000
 *   maxSize            entries (memory driver)             default 1000
 *   includePartitions  partition values in cache keys      default true
 *                      (false: partition-restricted reads are not cached,
 *                      since their keys would equal the unrestricted ones)
 *   memoryOptions      {maxSize, ttl, checkPeriod (default 600000 ms),
 *                      evictionPolicy / algorithm ("lru" only), stats}
 *   s3Options          {bucket, prefix (default "cache/"), keyPrefix, ttl,
 *                      compression (default true), encryption (default
 *                      false), encryptionKey, connectionString,
 *                      accessKeyId, secretAccessKey, client (refused: no
 *                      client objects in C)}
 * The driver's own options win over the top-level ttl / maxSize.
 *
 * How it works: setup installs a read cache (s3db_plugin.h) the library
 * consults around get, exists, getMany, count, list, listIds, page, query
 * and content, and subscribes to afterInsert / afterUpdate / afterDelete.
 * A write bumps a write epoch and drops exactly the entries the write can
 * affect (cache_key_affected).  A read that missed before a write and
 * finishes after it must not store what it read: the miss remembers the
 * epoch (thread-local, per key) and the store is dropped when the epoch
 * moved.  With the S3 driver that guard holds within one process; other
 * processes sharing the cache invalidate by deleting the objects, so a
 * store racing such a delete can leave one stale entry for at most ttl.
 *
 * /.cache shows {driver, hits, misses, hitRate, evictions, entries, bytes,
 * ...} as JSON; writing "clear" empties the cache (white space around it
 * ignored; writing nothing changes nothing; anything else: EINVAL, the
 * reason in the log).  The memory driver's checkPeriod thread drops
 * expired entries.
 *
 * Live reconfiguration (cache_reconfigure): ttl, maxSize, checkPeriod,
 * includePartitions, compression and stats apply while mounted.  The new
 * options are parsed by the setup's code; a change of what the stored
 * entries depend on (driver / driverType, and for the S3 driver
 * s3Options.prefix, bucket, connectionString, credentials, encryption and
 * encryptionKey) is refused naming the option, and nothing changes.  The
 * live options sit under live_lock, a read-write lock: every lookup and
 * store holds it for reading for its whole run, reconfigure for writing,
 * so an operation sees one whole set and no operation is in flight while
 * the set changes.  A smaller maxSize evicts at once; a new ttl applies to
 * the memory driver's entries already there (the S3 driver's objects keep
 * the expiry written in them); a change of includePartitions clears the
 * cache (keys change meaning) and moves the write epoch so that no read
 * begun before stores under the old meaning.  Each change is logged with
 * its old and new value.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cache_plugin.h"
#include "codec.h"
#include "util.h"

typedef enum cache_driver { DRIVER_MEMORY, DRIVER_S3 } cache_driver;

/* The options that may change while mounted (under live_lock). */
typedef struct cache_live {
	int include_partitions;
	int stats_on;
	int compression;            /* S3 driver                          */
	int64_t ttl_ms;
	size_t max_size;            /* memory driver                      */
	int64_t check_period_ms;    /* memory driver; 0: no purge         */
} cache_live;

typedef struct cache_state {
	s3db_plugin *p;
	const s3db_plugin_api *api;
	s3db *db;
	cache_driver driver;        /* fixed at setup                      */
	cache_identity ident;       /* what may not change (see the top)   */
	pthread_rwlock_t live_lock;
	int live_lock_ready;
	cache_live live;
	cache_memory *mem;
	cache_s3 s3;
	s3db_read_cache rc;            /* the table handed to the library   */
	_Atomic uint64_t hits, misses, stores, stale_stores, invalidated, write_epoch;
} cache_state;

/* ---- the miss/store epoch guard ------------------------------------------ */

#define MISS_RING 8
typedef struct miss_mark {
	uint64_t key_hash;
	uint64_t epoch;
	const cache_state *owner;
} miss_mark;
static _Thread_local miss_mark miss_ring[MISS_RING];
static _Thread_local unsigned miss_next;

static uint64_t text_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h ? h : 1;
}

static void miss_remember(const cache_state *st, const char *key)
{
	miss_mark *m = &miss_ring[miss_next++ % MISS_RING];
	m->key_hash = text_hash(key);
	m->epoch = atomic_load(&st->write_epoch);
	m->owner = st;
}

/* 1 when the store of key may go ahead: its miss was seen on this thread
 * and no write happened since (a store without a recorded miss is let
 * through only when no write happened in between is unknowable: refuse). */
static int miss_still_current(const cache_state *st, const char *key)
{
	uint64_t h = text_hash(key);
	for (unsigned i = 0; i < MISS_RING; i++) {
		miss_mark *m = &miss_ring[(miss_next - 1 - i) % MISS_RING];
		if (m->owner == st && m->key_hash == h) {
			m->owner = NULL;
			return m->epoch == atomic_load(&st->write_epoch);
		}
	}
	return 0;
}

/* ---- keys ------------------------------------------------------------------ */

/* The key of a request, or NULL when the request is not cached (a
 * partition-restricted read with includePartitions off). */
static char *request_key(const cache_live *live, const s3db_cache_request *rq)
{
	if (!live->include_partitions && rq->partition)
		return NULL;
	return cache_key_for(rq, live->include_partitions);
}

/* A copy of the live options. */
static cache_live live_get(cache_state *st)
{
	pthread_rwlock_rdlock(&st->live_lock);
	cache_live live = st->live;
	pthread_rwlock_unlock(&st->live_lock);
	return live;
}

/* ---- driver dispatch ------------------------------------------------------ */

static int cache_plugin_get(cache_state *st, const char *key, json_object **out)
{
	if (st->driver == DRIVER_MEMORY)
		return cache_memory_get(st->mem, key, s3db_now_ms(), out);
	s3db_error err;
	s3db_error_clear(&err);
	int hit = cache_s3_get(&st->s3, key, out, &err);
	if (!hit && err.code != S3DB_OK)
		st->api->log(st->p, S3DB_PLUGIN_LOG_WARN, "reading cache entry %s: %s", key,
		             err.message);
	return hit;
}

/* Stores under the live options `live` (live_lock held for reading). */
static int cache_plugin_set(cache_state *st, const cache_live *live, const char *key,
                            json_object *value)
{
	if (st->driver == DRIVER_MEMORY)
		return cache_memory_set(st->mem, key, value, s3db_now_ms());
	s3db_error err;
	s3db_error_clear(&err);
	if (cache_s3_set(&st->s3, key, value, live->compression, live->ttl_ms, &err) != S3DB_OK) {
		st->api->log(st->p, S3DB_PLUGIN_LOG_WARN, "storing cache entry %s: %s", key,
		             err.message);
		return -1;
	}
	return 0;
}

static void driver_delete(cache_state *st, const char *key)
{
	if (st->driver == DRIVER_MEMORY) {
		cache_memory_delete(st->mem, key);
		return;
	}
	s3db_error err;
	s3db_error_clear(&err);
	if (cache_s3_delete(&st->s3, key, &err) != S3DB_OK)
		st->api->log(st->p, S3DB_PLUGIN_LOG_WARN, "deleting cache entry %s: %s", key,
		             err.message);
}

/* ---- the read cache the library calls -------------------------------------- */

static int rc_lookup(void *ud, const s3db_cache_request *rq, json_object **result)
{
	cache_state *st = ud;
	*result = NULL;
	pthread_rwlock_rdlock(&st->live_lock);
	char *key = request_key(&st->live, rq);
	int hit = 0;
	if (key) {
		hit = cache_plugin_get(st, key, result);
		if (hit)
			atomic_fetch_add(&st->hits, 1);
		else {
			atomic_fetch_add(&st->misses, 1);
			miss_remember(st, key);
		}
	}
	pthread_rwlock_unlock(&st->live_lock);
	free(key);
	return hit;
}

/* result NULL: the library wrote something the event bus does not report
 * (setContent): forget the entry. */
static void rc_store(void *ud, const s3db_cache_request *rq, json_object *result)
{
	cache_state *st = ud;
	pthread_rwlock_rdlock(&st->live_lock);
	char *key = request_key(&st->live, rq);
	if (!key) {
		/* not cached under the live options */
	} else if (!result) {
		atomic_fetch_add(&st->write_epoch, 1);
		driver_delete(st, key);
	} else if (!miss_still_current(st, key)) {
		atomic_fetch_add(&st->stale_stores, 1);
	} else if (cache_plugin_set(st, &st->live, key, result) == 0) {
		atomic_fetch_add(&st->stores, 1);
	}
	pthread_rwlock_unlock(&st->live_lock);
	free(key);
}

/* ---- invalidation ------------------------------------------------------------ */

typedef struct affected_ctx {
	const cache_write *w;
	char id_hash[17];
} affected_ctx;

static int affected_pred(void *ud, const char *key)
{
	affected_ctx *a = ud;
	return cache_key_affected(key, a->w, a->id_hash);
}

static size_t cache_plugin_invalidate(cache_state *st, const cache_write *w)
{
	atomic_fetch_add(&st->write_epoch, 1);
	affected_ctx a = { .w = w };
	json_object *params = json_object_new_object();
	json_object_object_add(params, "id", json_object_new_string(w->id ? w->id : ""));
	int bad = cache_key_params_hash(params, a.id_hash);
	json_object_put(params);
	if (bad)
		memset(a.id_hash, 0, sizeof a.id_hash); /* matches no record key */
	size_t n = 0;
	if (st->driver == DRIVER_MEMORY) {
		n = cache_memory_delete_if(st->mem, affected_pred, &a);
	} else {
		s3db_error err;
		s3db_error_clear(&err);
		if (cache_s3_delete_if(&st->s3, w->resource, affected_pred, &a, &n, &err) != S3DB_OK)
			st->api->log(st->p, S3DB_PLUGIN_LOG_WARN,
			             "invalidating the cache of %s/%s: %s", w->resource,
			             w->id ? w->id : "", err.message);
	}
	atomic_fetch_add(&st->invalidated, n);
	return n;
}

static s3db_code on_event(void *ud, const s3db_event *ev)
{
	cache_state *st = ud;
	if (ev->type != S3DB_EV_AFTER_INSERT && ev->type != S3DB_EV_AFTER_UPDATE &&
	    ev->type != S3DB_EV_AFTER_DELETE)
		return S3DB_OK;
	/* a failed write may have changed part of what it touched: invalidate
	 * all the same (a spurious miss costs less than a stale hit) */
	cache_write w = {
		.resource = ev->resource, .id = ev->id,
		.old_record = ev->old_record, .new_record = ev->new_record,
	};
	cache_plugin_invalidate(st, &w);
	return S3DB_OK;
}

/* ---- /.cache ----------------------------------------------------------------- */

static s3db_code cache_plugin_clear(cache_state *st, size_t *n, s3db_error *err)
{
	atomic_fetch_add(&st->write_epoch, 1);
	if (st->driver == DRIVER_MEMORY) {
		cache_memory_stats ms;
		cache_memory_get_stats(st->mem, &ms);
		cache_memory_clear(st->mem);
		if (n)
			*n = ms.entries;
		return S3DB_OK;
	}
	return cache_s3_clear(&st->s3, n, err);
}

static json_object *cache_plugin_stats(cache_state *st)
{
	cache_live live = live_get(st);
	json_object *o = json_object_new_object();
	uint64_t hits = atomic_load(&st->hits), misses = atomic_load(&st->misses);
	size_t entries = 0;
	uint64_t bytes = 0, evictions = 0;
	json_object_object_add(o, "driver",
	                       json_object_new_string(st->driver == DRIVER_MEMORY ? "memory" : "s3"));
	if (st->driver == DRIVER_MEMORY) {
		cache_memory_stats ms;
		cache_memory_get_stats(st->mem, &ms);
		entries = ms.entries;
		bytes = ms.bytes;
		evictions = ms.evictions;
	} else {
		s3db_error err;
		s3db_error_clear(&err);
		if (cache_s3_usage(&st->s3, &entries, &bytes, &err) != S3DB_OK)
			json_object_object_add(o, "error", json_object_new_string(err.message));
	}
	if (live.stats_on) {
		json_object_object_add(o, "hits", json_object_new_int64((int64_t)hits));
		json_object_object_add(o, "misses", json_object_new_int64((int64_t)misses));
		json_object_object_add(o, "hitRate",
		                       s3db_json_new_number(hits + misses
		                                            ? (double)hits / (double)(hits + misses)
		                                            : 0));
		json_object_object_add(o, "evictions", json_object_new_int64((int64_t)evictions));
		json_object_object_add(o, "stores", json_object_new_int64((int64_t)st->stores));
		json_object_object_add(o, "invalidated",
		                       json_object_new_int64((int64_t)st->invalidated));
	}
	json_object_object_add(o, "entries", json_object_new_int64((int64_t)entries));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)bytes));
	json_object_object_add(o, "ttl", json_object_new_int64(live.ttl_ms));
	if (st->driver == DRIVER_MEMORY) {
		json_object_object_add(o, "maxSize", json_object_new_int64((int64_t)live.max_size));
		json_object_object_add(o, "checkPeriod", json_object_new_int64(live.check_period_ms));
	} else {
		json_object_object_add(o, "prefix", json_object_new_string(st->s3.base));
		json_object_object_add(o, "compression", json_object_new_boolean(live.compression));
		json_object_object_add(o, "encryption", json_object_new_boolean(st->s3.crypto.on));
	}
	json_object_object_add(o, "includePartitions",
	                       json_object_new_boolean(live.include_partitions));
	return o;
}

static int file_read(void *ud, const char *query, char **text, size_t *len)
{
	json_object *o = cache_plugin_stats(ud);
	char *t = s3db_json_stringify(o, 2);
	json_object_put(o);
	if (!t)
		return -ENOMEM;
	*text = s3db_asprintf("%s\n", t);
	free(t);
	if (!*text)
		return -ENOMEM;
	*len = strlen(*text);
	return 0;
}

static int file_write(void *ud, const char *data, size_t len)
{
	cache_state *st = ud;
	while (len && (data[len - 1] == '\n' || data[len - 1] == ' ' || data[len - 1] == '\r' ||
	               data[len - 1] == '\t'))
		len--;
	while (len && (*data == ' ' || *data == '\t' || *data == '\n')) {
		data++;
		len--;
	}
	if (len == 0)
		return 0; /* nothing written (a shell's O_TRUNC open, `: > /.cache`) */
	if (len != 5 || memcmp(data, "clear", 5) != 0) {
		st->api->log(st->p, S3DB_PLUGIN_LOG_WARN,
		             "/.cache: unknown command '%.*s' (the only command is \"clear\")",
		             (int)(len > 64 ? 64 : len), data);
		return -EINVAL;
	}
	s3db_error err;
	s3db_error_clear(&err);
	size_t n = 0;
	if (cache_plugin_clear(st, &n, &err) != S3DB_OK) {
		st->api->log(st->p, S3DB_PLUGIN_LOG_ERROR, "/.cache: clear: %s", err.message);
		return -EIO;
	}
	st->api->log(st->p, S3DB_PLUGIN_LOG_INFO, "/.cache: cleared %zu entries", n);
	return 0;
}

/* ---- cleanup thread (memory driver) -------------------------------------------- */

/* Purges every checkPeriod.  It wakes at least every 0.5 s to re-read
 * the live checkPeriod, so a new one applies without waiting out the old
 * (and 0, no purge, may become a period). */
static void cleanup_thread(s3db_plugin *p, void *ud)
{
	cache_state *st = ud;
	double last = s3db_monotonic_ms();
	for (;;) {
		int64_t period = live_get(st).check_period_ms;
		double slice = period > 0 && period < 500 ? (double)period / 1000.0 : 0.5;
		if (st->api->sleep(p, slice))
			break;
		period = live_get(st).check_period_ms;
		double now = s3db_monotonic_ms();
		if (period <= 0 || now - last < (double)period)
			continue;
		last = now;
		size_t n = cache_memory_purge(st->mem, s3db_now_ms());
		if (n)
			st->api->log(p, S3DB_PLUGIN_LOG_DEBUG, "dropped %zu expired entries", n);
	}
}

/* ---- lifecycle --------------------------------------------------------------------- */

/* destroy gets no api table: the host's, seen at setup (one per process). */
static _Atomic(const s3db_plugin_api *) host_api;

/* The live part of a parsed configuration. */
static cache_live live_of(const cache_config *cfg)
{
	return (cache_live){
		.include_partitions = cfg->include_partitions, .stats_on = cfg->stats,
		.compression = cfg->compression, .ttl_ms = cfg->ttl_ms, .max_size = cfg->max_size,
		.check_period_ms = cfg->check_period_ms,
	};
}

static s3db_code cache_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                             s3db_error *err)
{
	atomic_store(&host_api, api);
	cache_state *st = calloc(1, sizeof *st);
	if (!st)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	api->set_state(p, st);
	st->p = p;
	st->api = api;
	st->db = api->db(p);
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* a reconfigure must not starve behind a steady stream of reads */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int lrc = pthread_rwlock_init(&st->live_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (lrc != 0)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	st->live_lock_ready = 1;
	cache_config cfg;
	s3db_code rc = cache_config_parse(options, &cfg, err);
	if (rc == S3DB_OK)
		rc = cache_identity_of(&cfg, &st->ident, err);
	if (rc != S3DB_OK) {
		cache_config_free(&cfg);
		return rc;
	}
	st->driver = cfg.memory ? DRIVER_MEMORY : DRIVER_S3;
	st->live = live_of(&cfg);
	if (st->driver == DRIVER_MEMORY) {
		if (!(st->mem = cache_memory_new(cfg.max_size, cfg.ttl_ms)))
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		/* always there: a reconfigure may turn checkPeriod 0 into one */
		if (rc == S3DB_OK && api->add_thread(p, "cache-cleanup", cleanup_thread, st) != 0)
			rc = s3db_error_set(err, S3DB_ERR_INTERNAL,
			                    "CachePlugin: cannot start the cleanup thread");
	} else {
		rc = cache_config_open_s3(&cfg, api, st->db, &st->s3, err);
	}
	cache_config_free(&cfg);
	if (rc != S3DB_OK)
		return rc;
	st->rc.lookup = rc_lookup;
	st->rc.store = rc_store;
	if (!api->on(p, on_event, st))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	int frc = api->add_file(p, "/.cache", file_read, file_write, st, 1);
	if (frc != 0)
		return s3db_error_set(err, S3DB_ERR_EXISTS,
		                      "CachePlugin: /.cache is taken by another plugin (%s)",
		                      strerror(-frc));
	api->set_read_cache(p, &st->rc, st);
	api->log(p, S3DB_PLUGIN_LOG_INFO, "%s driver, ttl %lld ms%s",
	         st->driver == DRIVER_MEMORY ? "memory" : "s3", (long long)st->live.ttl_ms,
	         st->driver == DRIVER_S3 && st->s3.crypto.on ? ", encrypted" : "");
	return S3DB_OK;
}

static void cache_destroy(s3db_plugin *p)
{
	const s3db_plugin_api *api = atomic_load(&host_api);
	cache_state *st = api ? api->state(p) : NULL;
	if (!st)
		return;
	cache_memory_free(st->mem);
	cache_config_close_s3(&st->s3);
	cache_identity_free(&st->ident);
	if (st->live_lock_ready)
		pthread_rwlock_destroy(&st->live_lock);
	free(st);
}

/* Logs each live option whose value differs between old and next. */
static void log_changes(cache_state *st, const cache_live *old, const cache_live *next)
{
	static const char *const bool_text[] = { "false", "true" };
	const struct {
		const char *name;
		long long before, after;
		int is_bool;
	} items[] = {
		{ "ttl", old->ttl_ms, next->ttl_ms, 0 },
		{ "maxSize", (long long)old->max_size, (long long)next->max_size, 0 },
		{ "checkPeriod", old->check_period_ms, next->check_period_ms, 0 },
		{ "includePartitions", old->include_partitions, next->include_partitions, 1 },
		{ "compression", old->compression, next->compression, 1 },
		{ "stats", old->stats_on, next->stats_on, 1 },
	};
	for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
		if (items[i].before == items[i].after)
			continue;
		if (st->driver == DRIVER_MEMORY ? !strcmp(items[i].name, "compression")
		                                : !strcmp(items[i].name, "maxSize") ||
		                                          !strcmp(items[i].name, "checkPeriod"))
			continue; /* not the running driver's */
		if (items[i].is_bool)
			st->api->log(st->p, S3DB_PLUGIN_LOG_INFO, "%s: %s -> %s (live)", items[i].name,
			             bool_text[!!items[i].before], bool_text[!!items[i].after]);
		else
			st->api->log(st->p, S3DB_PLUGIN_LOG_INFO, "%s: %lld -> %lld (live)",
			             items[i].name, items[i].before, items[i].after);
	}
}

/* Takes next (live_lock held for writing, so no lookup or store is in
 * flight).  Returns how many entries a smaller maxSize evicted; *cleared
 * how many a change of includePartitions dropped. */
static size_t live_apply(cache_state *st, const cache_live *next, size_t *cleared)
{
	cache_live old = st->live;
	st->live = *next;
	size_t evicted = 0;
	*cleared = 0;
	if (st->mem)
		evicted = cache_memory_configure(st->mem, next->max_size, next->ttl_ms);
	if (old.include_partitions != next->include_partitions) {
		s3db_error err;
		s3db_error_clear(&err);
		if (cache_plugin_clear(st, cleared, &err) != S3DB_OK)
			st->api->log(st->p, S3DB_PLUGIN_LOG_WARN,
			             "includePartitions changed but the cache could not be cleared: %s",
			             err.message);
	}
	return evicted;
}

/* Live reconfiguration (see the top of the file).  Runs on the config
 * watcher's thread while lookups and stores run on others. */
static s3db_code cache_reconfigure(s3db_plugin *p, json_object *options, s3db_error *err)
{
	const s3db_plugin_api *api = atomic_load(&host_api);
	cache_state *st = api ? api->state(p) : NULL;
	if (!st)
		return s3db_error_set(err, S3DB_ERR_INTERNAL, "CachePlugin: not set up");
	cache_config cfg;
	cache_identity next_ident;
	memset(&next_ident, 0, sizeof next_ident);
	s3db_code rc = cache_config_parse(options, &cfg, err);
	if (rc == S3DB_OK)
		rc = cache_identity_of(&cfg, &next_ident, err);
	const char *fixed = rc == S3DB_OK ? cache_identity_change(&st->ident, &next_ident) : NULL;
	if (fixed)
		rc = s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                    "CachePlugin: %s cannot change while mounted (the cached entries "
		                    "would be orphaned or misread; remount to change it)", fixed);
	cache_live next = live_of(&cfg);
	cache_identity_free(&next_ident);
	cache_config_free(&cfg);
	if (rc != S3DB_OK)
		return rc;
	size_t cleared = 0;
	pthread_rwlock_wrlock(&st->live_lock);
	cache_live old = st->live;
	size_t evicted = live_apply(st, &next, &cleared);
	pthread_rwlock_unlock(&st->live_lock);
	log_changes(st, &old, &next);
	if (evicted)
		api->log(p, S3DB_PLUGIN_LOG_INFO, "maxSize: %zu entr%s evicted (least recently used)",
		         evicted, evicted == 1 ? "y" : "ies");
	if (old.include_partitions != next.include_partitions)
		api->log(p, S3DB_PLUGIN_LOG_INFO, "includePartitions: cache cleared (%zu entries)",
		         cleared);
	return S3DB_OK;
}

const s3db_plugin_def cache_plugin_def = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION,
	.size = sizeof(s3db_plugin_def),
	.name = "CachePlugin",
	.version = S3DB_VERSION,
	.setup = cache_setup,
	.destroy = cache_destroy,
	.reconfigure = cache_reconfigure,
};
