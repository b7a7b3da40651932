/*
 * db.h — the database's internal state, shared by database.c (open,
 * close, catalogue), resource.c (record operations), partition.c,
 * events.c, ids.c and pool.c.
 *
 * Locking: `lock` guards the catalogue (s3db.json as JSON), the
 * resource table, the request hook pair (hook, hook_userdata) and the
 * read cache pair (read_cache, read_cache_ud); no storage request is made
 * while it is held.  `observers` has its own lock, held for reading while
 * the observers are called (so removing one waits for calls in flight).  Compiled schemas are immutable and never freed before
 * the database closes (a definition change adds a new one and moves
 * res->current), so an operation reads res->current once, under the read
 * lock, and then uses it without locks.
 */
#ifndef S3DB_DB_H
#define S3DB_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "conn.h"
#include "s3db_plugin.h"
#include "schema.h"
#include "store.h"
#include "util.h"

typedef struct listener {
	int id;
	s3db_listener fn;
	void *userdata;
} listener;

/* One request observer of the core's list (plugins, and anything else
 * besides the single public hook). */
typedef struct request_observer {
	int id;
	s3db_request_hook fn;
	void *userdata;
} request_observer;

typedef struct observer_list {
	pthread_rwlock_t lock;
	request_observer *items;
	size_t count;
	int next_id;
} observer_list;

struct plugin_host;

typedef struct event_bus {
	pthread_rwlock_t lock;
	listener *items;
	size_t count, cap;
	int next_id;
} event_bus;

struct s3db_resource {
	s3db *db;
	char *name;
	schema *current;          /* guarded by db->lock (pointer swap)  */
	schema **all;             /* every schema compiled, freed at close */
	size_t nall, capall;
};

struct s3db {
	conn_info conn;
	store *store;
	char *passphrase;
	int parallelism;
	pthread_rwlock_t lock;
	json_object *catalog;     /* s3db.json                            */
	schema_format format;
	int v74;                  /* last writer was s3db.js 7.4.1+       */
	s3db_resource **resources;
	size_t nresources, capresources;
	event_bus bus;
	s3db_request_hook hook;
	void *hook_userdata;
	observer_list observers;  /* db_observer_add / db_observer_remove */
	/* The read cache a plugin installed (s3db_plugin.h), NULL when none;
	 * read both under db->lock (db_read_cache does). */
	const s3db_read_cache *read_cache;
	void *read_cache_ud;
	/* Lookups made in the read cache: hits and misses since open. */
	_Atomic uint64_t cache_hits, cache_misses;
	struct plugin_host *plugins; /* plugin.c; NULL until a plugin is added */
};

/* ---- keys ------------------------------------------------------------ */
/* Full keys (with the database prefix); malloc'd. */
char *db_key(const s3db *db, const char *fmt, ...) S3DB_PRINTF(2, 3);
char *db_record_key(const s3db *db, const char *resource, const char *id);

/* ---- catalogue (database.c) ------------------------------------------ */
/* The schema to decode an object written under version `v` (NULL: the
 * current one).  Borrowed; lives until close. */
const schema *db_schema_for_version(s3db_resource *res, const char *v);
/* The current schema (borrowed; lives until close). */
const schema *db_current_schema(s3db_resource *res);

/* ---- events (events.c) ----------------------------------------------- */
void event_bus_init(event_bus *bus);
void event_bus_destroy(event_bus *bus);
/* Calls every listener; returns the first non-OK code of a before-event
 * listener (the operation is then cancelled), else S3DB_OK.  When the
 * listener table cannot be copied (out of memory) a before-event returns
 * S3DB_ERR_NOMEM rather than skip its listeners. */
s3db_code event_emit(s3db *db, s3db_event_type type, const char *resource, const char *id,
                     json_object *old_record, json_object *new_record, const s3db_ctx *ctx,
                     s3db_code result, double duration_ms);

/* ---- request observers (database.c) ---------------------------------- */
/* Adds fn to the core's observer list, called for every storage request
 * after the public hook, in the order added.  Returns an id > 0, or 0
 * when out of memory (or fn is NULL). */
int db_observer_add(s3db *db, s3db_request_hook fn, void *userdata);
/* Removes an observer; returns when no call to it is in flight. */
void db_observer_remove(s3db *db, int id);

/* ---- read cache (database.c) ------------------------------------------ */
/* The installed read cache and its userdata, read together under the
 * lock (*ud untouched and NULL returned when none is installed).  The
 * pointers stay valid until the plugin that installed it is stopped. */
const s3db_read_cache *db_read_cache(s3db *db, void **ud);
/* Installs (or with NULL removes) the read cache. */
void db_set_read_cache(s3db *db, const s3db_read_cache *cache, void *ud);

/* ---- plugins (plugin.c) ----------------------------------------------- */
/* Stops and frees every plugin (s3db_close calls it before freeing the
 * database). */
void plugin_host_free(s3db *db);

/* ---- ids (ids.c) ----------------------------------------------------- */
/* A new id of `size` characters from nanoid's URL alphabet (malloc'd). */
char *id_generate(int size);

/* ---- parallel work (pool.c) ------------------------------------------ */
/* Runs fn(ud, i) for every i in [0, n) on up to `parallelism` threads
 * and returns when all are done.  Safe to call from any thread (it
 * creates its own workers), so bulk operations may nest. */
typedef void (*pool_fn)(void *ud, size_t i);
void pool_run(int parallelism, size_t n, pool_fn fn, void *ud);

/* ---- partitions (partition.c) ---------------------------------------- */
/* The reference keys (full keys) a record has under schema s: one per
 * partition whose fields are all present (§2.5).  *keys is a
 * NULL-terminated vector (s3db_free_strv). */
s3db_code partition_keys(const s3db *db, const schema *s, json_object *record, const char *id,
                         char ***keys, s3db_error *err);
/* The listing prefix (full key, ending in '/') for a partition and
 * optional values; fields of `values` must be a leading run of the
 * partition's sorted fields for a narrow prefix, else the partition's
 * whole prefix is returned and *exact is set to 0 (filter after). */
s3db_code partition_prefix(const s3db *db, const schema *s, const char *partition,
                           json_object *values, char **prefix, int *exact, s3db_error *err);
/* The value a field takes in a reference key (rule applied); malloc'd,
 * NULL when the field is absent or null.  `field` is a dotted path into
 * the record ("profile.country"). */
char *partition_value(json_object *record, const char *field, const char *rule);
/* The "field=value" key segments (rules applied) a listing's `values`
 * select, for filtering reference keys when partition_prefix could not
 * put them all in the prefix.  Members of `values` are named by field
 * ("profile.country": "BR", not a nested object).  *matchable is set to 0
 * when a value is null (no reference can match).  *segments is a
 * NULL-terminated vector (s3db_free_strv). */
s3db_code partition_segments(const schema *s, const char *partition, json_object *values,
                             char ***segments, int *matchable, s3db_error *err);

/* ---- what the file view needs beyond the public API (resource.c) ----- */

/* What the store says about a record object. */
typedef struct record_meta {
	char etag[72];
	int64_t last_modified_ms;
	int64_t size;            /* object size (body bytes)                */
	int has_content;         /* the body is binary content              */
	char content_type[128];
} record_meta;

/* s3db_get that also gives the object's ETag, LastModified and size. */
s3db_code resource_get_meta(s3db_resource *res, const char *id, const s3db_ctx *ctx,
                            json_object **out, record_meta *meta, s3db_error *err);
/* Bodies up to this size are read with one GET (metadata included)
 * when a listing gave the size; larger ones HEAD first. */
#define RESOURCE_GET_DIRECT_MAX (1024 * 1024)
/* resource_get_meta for an object a listing says is size_hint bytes
 * (-1: unknown): one GET when 0 < size_hint <= RESOURCE_GET_DIRECT_MAX,
 * else HEAD (+ GET when it has a body). */
s3db_code resource_get_meta_sized(s3db_resource *res, const char *id, int64_t size_hint,
                                  const s3db_ctx *ctx, json_object **out, record_meta *meta,
                                  s3db_error *err);
/* Deletes a record the caller already holds (`known`, as get() returns
 * it; NULL allowed only when the current schema has no partitions)
 * without reading it: one DELETE, or one DeleteObjects for the object
 * and its partition references.  Deleting an absent record succeeds.
 * Events as s3db_delete, with `known` as the old record. */
s3db_code resource_delete_known(s3db_resource *res, const char *id, json_object *known,
                                const s3db_ctx *ctx, s3db_error *err);
/* One HEAD: the object's current ETag etc. (to revalidate a cache). */
s3db_code resource_head_meta(s3db_resource *res, const char *id, record_meta *meta,
                             s3db_error *err);
/* Lists the records (or a partition's) with what LIST tells of each
 * object: fn(ud, id, entry) in id order; fn returns non-zero to stop.
 * With a ctx (a user's directory listing) it is a list operation on the
 * event bus: beforeList (a listener may refuse it) and afterList (no
 * records: the entries are not read); NULL ctx: an internal look, no
 * events. */
typedef int (*resource_entry_fn)(void *ud, const char *id, const store_entry *e);
s3db_code resource_list_entries(s3db_resource *res, const s3db_list_opts *opts,
                                const s3db_ctx *ctx, resource_entry_fn fn, void *ud,
                                s3db_error *err);
/* The database that owns a resource. */
s3db *resource_db(s3db_resource *res);

#endif
