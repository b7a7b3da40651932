/*
 * s3db_plugin.h — the plugin ABI of libs3db (version 1).
 *
 * A plugin is a table of lifecycle functions (s3db_plugin_def) plus the
 * state it keeps.  The host (libs3db's plugin manager, src/plugin.c) runs
 * every plugin of a database through the guide's lifecycle:
 *
 *   setup   (onSetup)  in configuration order, once the database is open:
 *                      read options, define resources, subscribe to the
 *                      event bus, register virtual files and threads.
 *   start   (onStart)  in configuration order, after every setup
 *                      succeeded: threads registered so far are started.
 *   stop    (onStop)   in reverse order, at unmount / close: the host first
 *                      asks the plugin's threads to stop and joins them,
 *                      then calls stop, then removes every subscription the
 *                      plugin made, then calls destroy.
 *
 * A plugin sees the database only through this table (s3db_plugin_api) —
 * the event bus (before/after of every operation, with old and new record
 * and the caller's context), the request hook (every S3 request), the
 * read cache interface, and a few library calls for its own resources.
 * It never sees FUSE: virtual files are registered here as (path, read,
 * write) and the s3dbfs daemon shows them; the CLI ignores them.
 *
 * Custom plugins are shared objects exporting one symbol:
 *
 *     const s3db_plugin_def *s3db_plugin_entry(void);
 *
 * loaded with `-o plugin=PATH` or {"path": PATH, "options": {...}} in the
 * config file.  They need not link against libs3db: every host service
 * comes through the api table handed to setup.  They do link json-c (the
 * records and options are json_object's of the process's json-c).
 *
 * Compatibility: S3DB_PLUGIN_ABI_VERSION changes when a member of a
 * struct below changes meaning or moves; members are only ever appended,
 * and api->size / def->size say how much of each table the other side
 * knows.  A plugin built for another ABI version is refused at load with
 * a message naming both versions.
 *
 * Threads: listeners and request hooks run on the thread that made the
 * operation (a FUSE worker, a pool thread), so they must be quick and
 * thread-safe; slow work (HTTP, flushing) belongs in a plugin thread fed
 * by a queue.  A plugin thread must return soon after api->sleep() or
 * api->stopping() says the plugin is stopping.
 *
 * Ownership: options and records handed to a plugin are borrowed for the
 * duration of the call (json_object_get() them to keep them).  Text a
 * virtual file's read function returns is malloc'd and freed by the host.
 */
#ifndef S3DB_PLUGIN_H
#define S3DB_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include "s3db.h"

#ifdef __cplusplus
extern "C" {
#endif

#define S3DB_PLUGIN_ABI_VERSION 1

typedef struct s3db_plugin s3db_plugin;        /* one loaded plugin (host's) */
typedef struct s3db_plugin_api s3db_plugin_api;

/* Log levels of api->log (the daemon's log, or stderr for the CLI). */
typedef enum s3db_plugin_log_level {
	S3DB_PLUGIN_LOG_ERROR = 0,
	S3DB_PLUGIN_LOG_WARN,
	S3DB_PLUGIN_LOG_INFO,
	S3DB_PLUGIN_LOG_DEBUG
} s3db_plugin_log_level;

/* ---- what a plugin provides ------------------------------------------ */

typedef struct s3db_plugin_def {
	int abi_version;        /* S3DB_PLUGIN_ABI_VERSION it was built for  */
	size_t size;            /* sizeof(s3db_plugin_def) it was built with */
	const char *name;       /* "CostsPlugin", "webhook", ...             */
	const char *version;    /* the plugin's own version, for the log     */

	/* onSetup.  options is the entry's "options" object (never NULL: {}
	 * when none was given).  Return S3DB_OK, or an error with err filled
	 * ("CachePlugin: ttl must be >= 0"): the mount / open then fails and
	 * plugins already set up are stopped and destroyed in reverse. */
	s3db_code (*setup)(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
	                   s3db_error *err);
	/* onStart (optional).  Threads registered by setup are already
	 * running when it is called. */
	s3db_code (*start)(s3db_plugin *p, s3db_error *err);
	/* onStop (optional).  Threads are joined already. */
	void (*stop)(s3db_plugin *p);
	/* Frees the plugin's state (optional).  Last call the plugin gets;
	 * it is made after a failed setup too, with whatever state setup
	 * had set (maybe NULL), so it must accept a partial state. */
	void (*destroy)(s3db_plugin *p);
	/* Live reconfiguration (optional): the config file changed this
	 * plugin's options while it runs.  Return S3DB_OK to take them (the
	 * host logs what changed) or an error to keep the running ones. */
	s3db_code (*reconfigure)(s3db_plugin *p, json_object *options, s3db_error *err);
} s3db_plugin_def;

/* The entry point of a plugin .so. */
typedef const s3db_plugin_def *(*s3db_plugin_entry_fn)(void);
#define S3DB_PLUGIN_ENTRY_SYMBOL "s3db_plugin_entry"

/* ---- virtual files ---------------------------------------------------- */

/* Makes the whole content of a virtual file when it is opened: *text is
 * malloc'd (the host frees it), *len its length.  query is the part of the
 * name after '?' ("q=word" for '/.search?q=word'), percent-decoded, or
 * NULL.  Returns 0 or -errno. */
typedef int (*s3db_file_read_fn)(void *ud, const char *query, char **text, size_t *len);
/* Receives the whole written content when the file is flushed.  Returns
 * 0 or -errno (the write is refused with it, e.g. -EINVAL for an unknown
 * command). */
typedef int (*s3db_file_write_fn)(void *ud, const char *data, size_t len);

/* ---- the read cache ---------------------------------------------------- */

/* One cacheable read, as the CachePlugin keys it.  action is the s3db.js
 * method name: "get", "exists", "getMany", "count", "list", "listIds",
 * "getAll", "page", "query", "content".  params is the method's parameter
 * object as the spec lists it ({"id":..}, {"ids":[..]}, {"page":..,
 * "size":..}, {"filter":..,"options":..}) or NULL when the method has
 * none; partition / partition_values are NULL unless the read was
 * restricted to a partition. */
typedef struct s3db_cache_request {
	const char *resource;
	const char *action;
	json_object *params;
	const char *partition;
	json_object *partition_values;
} s3db_cache_request;

/* A read cache the library consults around every cacheable read.  At
 * most one per database (the last set wins).  All functions may run on
 * many threads at once. */
typedef struct s3db_read_cache {
	/* 1 and *result (owned by the caller) on a hit; 0 on a miss. */
	int (*lookup)(void *ud, const s3db_cache_request *rq, json_object **result);
	/* Keeps result (borrowed: copy or json_object_get it).  result NULL
	 * means forget the entry: the library says so after a write that
	 * raises no event (s3db_set_content), so that the next read misses. */
	void (*store)(void *ud, const s3db_cache_request *rq, json_object *result);
} s3db_read_cache;

/* ---- what the host provides -------------------------------------------- */

struct s3db_plugin_api {
	int abi_version;        /* S3DB_PLUGIN_ABI_VERSION of the host       */
	size_t size;            /* sizeof(s3db_plugin_api) of the host       */

	/* The database the plugin belongs to (borrowed). */
	s3db *(*db)(s3db_plugin *p);
	/* The plugin's state pointer (NULL until set). */
	void *(*state)(s3db_plugin *p);
	void (*set_state)(s3db_plugin *p, void *state);
	/* The name the plugin was configured under ("CachePlugin", or the
	 * .so's def->name). */
	const char *(*name)(s3db_plugin *p);

	void (*log)(s3db_plugin *p, s3db_plugin_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
		__attribute__((format(printf, 3, 4)))
#endif
		;

	/* Subscribes to the event bus; removed automatically at stop.
	 * Returns an id > 0, or 0 when out of memory. */
	int (*on)(s3db_plugin *p, s3db_listener fn, void *ud);
	void (*off)(s3db_plugin *p, int id);
	/* Observes every storage request (after retries); removed at stop.
	 * Returns an id > 0, or 0. */
	int (*on_request)(s3db_plugin *p, s3db_request_hook fn, void *ud);

	/* Registers a virtual file ("/.costs", "/users/.stats",
	 * "/.search?" for a file that takes a query — never listed).
	 * write_fn may be NULL (read-only).  listed: shown by `ls -a`.
	 * Register files in setup: the daemon shows those registered when
	 * every plugin is set up.  Returns 0, -EINVAL for a path not
	 * starting with '/' or without read_fn, or -EEXIST when another
	 * plugin has that path. */
	int (*add_file)(s3db_plugin *p, const char *path, s3db_file_read_fn read_fn,
	                s3db_file_write_fn write_fn, void *ud, int listed);

	/* Registers a background thread: started before start() (at once when
	 * the plugin is already started), joined before stop().  Returns 0 or
	 * -errno. */
	int (*add_thread)(s3db_plugin *p, const char *name, void (*fn)(s3db_plugin *p, void *ud),
	                  void *ud);
	/* Sleeps up to `seconds`; returns 1 at once when the plugin is
	 * stopping (the thread should then return), 0 after the full sleep.*/
	int (*sleep)(s3db_plugin *p, double seconds);
	int (*stopping)(s3db_plugin *p);

	/* Installs the database's read cache (NULL removes it); removed at
	 * stop.  Returns 0. */
	int (*set_read_cache)(s3db_plugin *p, const s3db_read_cache *cache, void *ud);
	/* Lookups the library made in the read cache since open: hits and
	 * misses (both 0 when no cache is installed) — for metrics. */
	void (*cache_counts)(s3db *db, uint64_t *hits, uint64_t *misses);

	/* Library calls for the plugin's own resources and records (the same
	 * contracts as in s3db.h). */
	s3db_resource *(*resource_find)(s3db *db, const char *name);
	s3db_code (*resource_define)(s3db *db, const char *name, json_object *definition,
	                             s3db_resource **out, s3db_error *err);
	s3db_code (*insert)(s3db_resource *res, json_object *data, const s3db_ctx *ctx,
	                    json_object **out, s3db_error *err);
	s3db_code (*get)(s3db_resource *res, const char *id, const s3db_ctx *ctx, json_object **out,
	                 s3db_error *err);
	s3db_code (*delete_record)(s3db_resource *res, const char *id, const s3db_ctx *ctx,
	                           s3db_error *err);
	s3db_code (*list_ids)(s3db_resource *res, const s3db_list_opts *opts, char ***ids,
	                      size_t *count, s3db_error *err);
	void (*free_strv)(char **strv);
	/* Raw objects (plugin storage, spec 6.1) under the database's prefix:
	 * key is relative to it ("plugin=cache/cache/resource=users/..").
	 * get_object: *data malloc'd (caller frees), *content_type and
	 * *metadata (a JSON object of user metadata, lower-case names without
	 * x-amz-meta-) malloc'd / owned by the caller, each may be NULL. */
	s3db_code (*put_object)(s3db *db, const char *key, const void *data, size_t len,
	                        const char *content_type, json_object *metadata, s3db_error *err);
	s3db_code (*get_object)(s3db *db, const char *key, void **data, size_t *len,
	                        char **content_type, json_object **metadata, s3db_error *err);
	s3db_code (*delete_object)(s3db *db, const char *key, s3db_error *err);
	/* Deletes every object whose key (relative) starts with prefix. */
	s3db_code (*delete_prefix)(s3db *db, const char *prefix, s3db_error *err);
	/* Calls fn for each object key (relative) under prefix, in key order;
	 * fn returns non-zero to stop. */
	s3db_code (*list_keys)(s3db *db, const char *prefix,
	                       int (*fn)(void *ud, const char *key, uint64_t size), void *ud,
	                       s3db_error *err);
};

/* ---- loading (libs3db; used by the daemon and the CLI) ----------------- */

/* Adds a plugin to db from its definition (a built-in's table) with its
 * options (borrowed; NULL means {}).  The plugin is set up at once;
 * start it with s3db_plugins_start.  origin names where it was
 * configured ("config.json: plugins[1]") for messages.  On success *out
 * (optional) is the plugin, owned by db. */
s3db_code s3db_plugin_add(s3db *db, const s3db_plugin_def *def, json_object *options,
                          const char *origin, s3db_plugin **out, s3db_error *err);
/* The same for a shared object: dlopen(path), look up s3db_plugin_entry,
 * check the ABI version, then as s3db_plugin_add.  The .so is dlclosed
 * after the plugin is destroyed. */
s3db_code s3db_plugin_load(s3db *db, const char *path, json_object *options, const char *origin,
                           s3db_plugin **out, s3db_error *err);
/* Starts every plugin set up and not yet started, in order: its threads,
 * then its start().  When one fails, every plugin of db is stopped and
 * destroyed in reverse (the failed one gets stop() too) and its error
 * is returned. */
s3db_code s3db_plugins_start(s3db *db, s3db_error *err);
/* Stops, unsubscribes and destroys every plugin, in reverse order
 * (s3db_close does it too).  Call it when no operation on db is in
 * flight from outside the plugins (after unmount): a listener removed
 * while an event is being emitted may still be called once. */
void s3db_plugins_stop(s3db *db);
/* Passes changed options to the plugin (its reconfigure, or
 * S3DB_ERR_UNSUPPORTED when it has none). */
s3db_code s3db_plugin_reconfigure(s3db_plugin *p, json_object *options, s3db_error *err);
/* Calls fn for every virtual file the plugins registered, in registration
 * order (the daemon installs them in its tree).  fn returns non-zero to
 * stop. */
typedef int (*s3db_plugin_file_fn)(void *ud, const char *path, s3db_file_read_fn read_fn,
                                   s3db_file_write_fn write_fn, void *file_ud, int listed);
void s3db_plugin_files(s3db *db, s3db_plugin_file_fn fn, void *ud);
/* Where api->log goes (default: stderr).  Set before adding plugins. */
typedef void (*s3db_plugin_log_fn)(void *ud, s3db_plugin_log_level level, const char *plugin,
                                   const char *message);
void s3db_plugin_set_logger(s3db *db, s3db_plugin_log_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* S3DB_PLUGIN_H */
