/*
 * plugin.c — the plugin host: the library side of s3db_plugin.h.
 *
 * A database's plugins live in its plugin_host (db->plugins, made when
 * the first plugin is added or a logger is set), kept in configuration
 * order.  Each s3db_plugin records everything it was given through the
 * api table — listener ids on the event bus, request observer ids on the
 * core's observer list, the read cache it installed, its virtual files,
 * its threads — so that stopping it takes all of that away again and a
 * plugin never has to undo its own subscriptions.
 *
 * Lifecycle (per plugin; the host runs plugins in order, and stops them
 * in reverse):
 *   add     def checked (ABI version, table size), setup() called;
 *           a failed setup destroys this plugin and stops every plugin
 *           added before it, in reverse.
 *   start   the plugin's threads are created, then start() is called;
 *           a failed start stops every plugin of the database.
 *   stop    `stopping` is set and the condition variable broadcast (so
 *           api->sleep returns at once), the threads are joined, stop()
 *           is called, listeners / observers / the read cache / virtual
 *           files are removed, destroy() is called, and a loaded .so is
 *           dlclosed last, once nothing of it can be called any more.
 *
 * Stopping assumes no operation on the database is in flight from
 * outside the plugins (the daemon stops plugins after the FUSE session
 * ended, s3db_close after its caller's last call): event listeners are
 * called from a copy of the bus, so a listener removed while an
 * operation runs could still be called once.  Request observers are
 * called under their list's read lock, so removing one waits for calls
 * in flight.
 *
 * Locking: host->lock guards the plugin list and the virtual files;
 * each plugin's lock guards its stopping flag, threads and id lists.
 * add / start / stop / reconfigure are made by one thread (the daemon's
 * main thread, the CLI); the api functions may be called from any thread.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "db.h"

typedef struct plugin_thread {
	s3db_plugin *owner;
	char *name;
	void (*fn)(s3db_plugin *p, void *ud);
	void *ud;
	pthread_t tid;
	int running;             /* created and not yet joined */
} plugin_thread;

typedef struct plugin_file {
	char *path;
	s3db_file_read_fn read_fn;
	s3db_file_write_fn write_fn;
	void *ud;
	int listed;
	s3db_plugin *owner;
} plugin_file;

/* A growable list of ids (listeners, observers). */
typedef struct id_list {
	int *items;
	size_t count;
} id_list;

struct s3db_plugin {
	s3db *db;
	const s3db_plugin_def *def;
	char *name;              /* copied: a .so's strings go at dlclose */
	char *origin;
	void *dl;                /* dlopen handle, or NULL for a built-in */
	void *state;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* broadcast when stopping is set        */
	int stopping;
	int threads_live;        /* add_thread creates the thread at once */
	plugin_thread **threads;
	size_t nthreads;
	id_list listeners, observers;
	const s3db_read_cache *cache;  /* the read cache it installed   */
	void *cache_ud;
};

struct plugin_host {
	pthread_mutex_t lock;
	s3db_plugin **items;     /* configuration order */
	size_t count;
	plugin_file *files;      /* registration order  */
	size_t nfiles;
	s3db_plugin_log_fn log_fn;
	void *log_ud;
};

static const s3db_plugin_api host_api;

/* ---- the host ---------------------------------------------------------------- */

static pthread_mutex_t host_create_lock = PTHREAD_MUTEX_INITIALIZER;

/* The database's host, made on first use; NULL when out of memory. */
static struct plugin_host *host_get(s3db *db)
{
	pthread_mutex_lock(&host_create_lock);
	if (!db->plugins) {
		struct plugin_host *h = calloc(1, sizeof *h);
		if (h) {
			pthread_mutex_init(&h->lock, NULL);
			db->plugins = h;
		}
	}
	pthread_mutex_unlock(&host_create_lock);
	return db->plugins;
}

void s3db_plugin_set_logger(s3db *db, s3db_plugin_log_fn fn, void *ud)
{
	struct plugin_host *h = host_get(db);
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->log_fn = fn;
	h->log_ud = ud;
	pthread_mutex_unlock(&h->lock);
}

static const char *level_name(s3db_plugin_log_level level)
{
	switch (level) {
	case S3DB_PLUGIN_LOG_ERROR: return "error";
	case S3DB_PLUGIN_LOG_WARN: return "warn";
	case S3DB_PLUGIN_LOG_INFO: return "info";
	default: return "debug";
	}
}

/* Sends one message to the host's logger, or to stderr. */
static void host_log(s3db *db, s3db_plugin_log_level level, const char *plugin,
                     const char *message)
{
	struct plugin_host *h = db->plugins;
	s3db_plugin_log_fn fn = NULL;
	void *ud = NULL;
	if (h) {
		pthread_mutex_lock(&h->lock);
		fn = h->log_fn;
		ud = h->log_ud;
		pthread_mutex_unlock(&h->lock);
	}
	if (fn)
		fn(ud, level, plugin, message);
	else
		fprintf(stderr, "%s: %s: %s\n", plugin, level_name(level), message);
}

/* ---- small lists --------------------------------------------------------------- */

static int id_list_push(id_list *l, int id)
{
	int *p = realloc(l->items, (l->count + 1) * sizeof *p);
	if (!p)
		return -1;
	l->items = p;
	p[l->count++] = id;
	return 0;
}

/* Removes id; 1 when it was there. */
static int id_list_remove(id_list *l, int id)
{
	for (size_t i = 0; i < l->count; i++) {
		if (l->items[i] == id) {
			memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof *l->items);
			l->count--;
			return 1;
		}
	}
	return 0;
}

/* ---- api: identity and log ------------------------------------------------------ */

static s3db *api_db(s3db_plugin *p)
{
	return p->db;
}

static void *api_state(s3db_plugin *p)
{
	return p->state;
}

static void api_set_state(s3db_plugin *p, void *state)
{
	p->state = state;
}

static const char *api_name(s3db_plugin *p)
{
	return p->name;
}

static void api_log(s3db_plugin *p, s3db_plugin_log_level level, const char *fmt, ...)
	S3DB_PRINTF(3, 4);
static void api_log(s3db_plugin *p, s3db_plugin_log_level level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	host_log(p->db, level, p->name, msg);
}

/* ---- api: events and requests ------------------------------------------------------ */

/* Records id, a listener or observer p added, in list (under p->lock)
 * so that plugin_unsubscribe removes it; 0, or -1 when out of memory. */
static int plugin_keep_id(s3db_plugin *p, id_list *list, int id)
{
	pthread_mutex_lock(&p->lock);
	int r = id_list_push(list, id);
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int api_on(s3db_plugin *p, s3db_listener fn, void *ud)
{
	int id = fn ? s3db_on(p->db, fn, ud) : 0;
	if (id && plugin_keep_id(p, &p->listeners, id)) {
		s3db_off(p->db, id);
		id = 0;
	}
	return id;
}

static void api_off(s3db_plugin *p, int id)
{
	pthread_mutex_lock(&p->lock);
	int mine = id_list_remove(&p->listeners, id);
	pthread_mutex_unlock(&p->lock);
	if (mine) /* never another plugin's (or the caller's) listener */
		s3db_off(p->db, id);
}

static int api_on_request(s3db_plugin *p, s3db_request_hook fn, void *ud)
{
	int id = db_observer_add(p->db, fn, ud);
	if (id && plugin_keep_id(p, &p->observers, id)) {
		db_observer_remove(p->db, id);
		id = 0;
	}
	return id;
}

/* ---- api: virtual files --------------------------------------------------------------- */

static int api_add_file(s3db_plugin *p, const char *path, s3db_file_read_fn read_fn,
                        s3db_file_write_fn write_fn, void *ud, int listed)
{
	if (!path || path[0] != '/' || !path[1] || strlen(path) > 1024 || !read_fn)
		return -EINVAL;
	struct plugin_host *h = p->db->plugins;
	pthread_mutex_lock(&h->lock);
	int rc = 0;
	for (size_t i = 0; i < h->nfiles && !rc; i++)
		if (!strcmp(h->files[i].path, path))
			rc = -EEXIST;
	if (!rc) {
		plugin_file *f = realloc(h->files, (h->nfiles + 1) * sizeof *f);
		char *copy = strdup(path);
		if (f)
			h->files = f;
		if (!f || !copy) {
			free(copy);
			rc = -ENOMEM;
		} else {
			h->files[h->nfiles++] = (plugin_file){
				.path = copy, .read_fn = read_fn, .write_fn = write_fn,
				.ud = ud, .listed = listed ? 1 : 0, .owner = p,
			};
		}
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

void s3db_plugin_files(s3db *db, s3db_plugin_file_fn fn, void *ud)
{
	struct plugin_host *h = db->plugins;
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nfiles; i++)
		if (fn(ud, h->files[i].path, h->files[i].read_fn, h->files[i].write_fn,
		       h->files[i].ud, h->files[i].listed))
			break;
	pthread_mutex_unlock(&h->lock);
}

/* Forgets the virtual files a plugin registered. */
static void files_remove_owned(struct plugin_host *h, s3db_plugin *p)
{
	pthread_mutex_lock(&h->lock);
	size_t kept = 0;
	for (size_t i = 0; i < h->nfiles; i++) {
		if (h->files[i].owner == p)
			free(h->files[i].path);
		else
			h->files[kept++] = h->files[i];
	}
	h->nfiles = kept;
	pthread_mutex_unlock(&h->lock);
}

/* ---- api: threads ---------------------------------------------------------------------- */

static void *thread_main(void *arg)
{
	plugin_thread *t = arg;
	t->fn(t->owner, t->ud);
	return NULL;
}

/* Creates t's thread; called with p->lock held.  0 or -errno. */
static int thread_launch(plugin_thread *t)
{
	int r = pthread_create(&t->tid, NULL, thread_main, t);
	if (r)
		return -r;
	t->running = 1;
	char short_name[16];
	snprintf(short_name, sizeof short_name, "%s", t->name);
	pthread_setname_np(t->tid, short_name);
	return 0;
}

static int api_add_thread(s3db_plugin *p, const char *name, void (*fn)(s3db_plugin *, void *),
                          void *ud)
{
	if (!fn)
		return -EINVAL;
	plugin_thread *t = calloc(1, sizeof *t);
	if (!t || !(t->name = strdup(name && *name ? name : p->name))) {
		free(t);
		return -ENOMEM;
	}
	t->owner = p;
	t->fn = fn;
	t->ud = ud;
	pthread_mutex_lock(&p->lock);
	int rc = 0;
	plugin_thread **v = realloc(p->threads, (p->nthreads + 1) * sizeof *v);
	if (!v)
		rc = -ENOMEM;
	else
		p->threads = v;
	if (!rc && p->stopping)
		rc = -ECANCELED;
	if (!rc && p->threads_live)
		rc = thread_launch(t);
	if (!rc)
		p->threads[p->nthreads++] = t;
	pthread_mutex_unlock(&p->lock);
	if (rc) {
		free(t->name);
		free(t);
	}
	return rc;
}

/* Creates every thread not yet running; 0 or the first -errno. */
static int threads_launch_all(s3db_plugin *p)
{
	pthread_mutex_lock(&p->lock);
	p->threads_live = 1;
	int rc = 0;
	for (size_t i = 0; i < p->nthreads && !rc; i++)
		if (!p->threads[i]->running)
			rc = thread_launch(p->threads[i]);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Says stop to the threads and joins them; returns how many were
 * joined.  Threads are joined without the lock (a thread may call
 * add_thread or sleep while it ends). */
static size_t threads_stop_all(s3db_plugin *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	p->threads_live = 0;
	pthread_cond_broadcast(&p->wake);
	size_t n = p->nthreads;
	pthread_mutex_unlock(&p->lock);
	size_t joined = 0;
	for (size_t i = 0; i < n; i++) { /* add_thread refuses new ones now */
		plugin_thread *t = p->threads[i];
		if (t->running) {
			pthread_join(t->tid, NULL);
			t->running = 0;
			joined++;
		}
	}
	return joined;
}

static int api_stopping(s3db_plugin *p)
{
	pthread_mutex_lock(&p->lock);
	int s = p->stopping;
	pthread_mutex_unlock(&p->lock);
	return s;
}

static int api_sleep(s3db_plugin *p, double seconds)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (seconds < 0 || seconds != seconds)
		seconds = 0;
	if (seconds > 1e9)
		seconds = 1e9;
	time_t whole = (time_t)seconds;
	deadline.tv_sec += whole;
	deadline.tv_nsec += (long)((seconds - (double)whole) * 1e9);
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		int r = pthread_cond_timedwait(&p->wake, &p->lock, &deadline);
		if (r == ETIMEDOUT)
			break;
	}
	int s = p->stopping;
	pthread_mutex_unlock(&p->lock);
	return s;
}

/* ---- api: read cache ---------------------------------------------------------------------- */

static int api_set_read_cache(s3db_plugin *p, const s3db_read_cache *cache, void *ud)
{
	db_set_read_cache(p->db, cache, ud);
	pthread_mutex_lock(&p->lock);
	p->cache = cache;
	p->cache_ud = cache ? ud : NULL;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void api_cache_counts(s3db *db, uint64_t *hits, uint64_t *misses)
{
	if (hits)
		*hits = atomic_load(&db->cache_hits);
	if (misses)
		*misses = atomic_load(&db->cache_misses);
}

/* Removes the plugin's read cache if it is still the installed one. */
static void cache_remove_owned(s3db_plugin *p)
{
	if (!p->cache)
		return;
	pthread_rwlock_wrlock(&p->db->lock);
	if (p->db->read_cache == p->cache && p->db->read_cache_ud == p->cache_ud) {
		p->db->read_cache = NULL;
		p->db->read_cache_ud = NULL;
	}
	pthread_rwlock_unlock(&p->db->lock);
	p->cache = NULL;
	p->cache_ud = NULL;
}

/* ---- api: raw objects ---------------------------------------------------------------------- */

/* The full key of a key relative to the database's prefix (malloc'd). */
static char *raw_key(s3db *db, const char *relative)
{
	return conn_full_key(&db->conn, relative);
}

/* What a full key under the database's prefix starts with: "prefix/" or
 * "" (malloc'd). */
static char *raw_base(s3db *db)
{
	const char *pre = db->conn.prefix;
	return pre && *pre ? s3db_asprintf("%s/", pre) : strdup("");
}

static s3db_code raw_check_key(const char *key, s3db_error *err)
{
	if (!key || !*key)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "object key: empty");
	return S3DB_OK;
}

/* Fills meta from a JSON object: strings verbatim, other values as JSON
 * text. */
static s3db_code raw_meta_from_json(json_object *metadata, store_meta *meta, s3db_error *err)
{
	if (!metadata)
		return S3DB_OK;
	if (!json_object_is_type(metadata, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "object metadata: not a JSON object");
	json_object_object_foreach(metadata, k, v) {
		const char *text = json_object_is_type(v, json_type_string)
		                   ? json_object_get_string(v)
		                   : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		if (store_meta_set(meta, k, text ? text : ""))
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	return S3DB_OK;
}

static s3db_code api_put_object(s3db *db, const char *key, const void *data, size_t len,
                                const char *content_type, json_object *metadata,
                                s3db_error *err)
{
	s3db_code rc = raw_check_key(key, err);
	if (rc != S3DB_OK)
		return rc;
	store_meta meta;
	store_meta_init(&meta);
	rc = raw_meta_from_json(metadata, &meta, err);
	char *full = rc == S3DB_OK ? raw_key(db, key) : NULL;
	if (rc == S3DB_OK && !full)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK) {
		store_put_opts opts = { .content_type = content_type };
		rc = store_put(db->store, full, &meta, data, len, &opts, NULL, err);
	}
	free(full);
	store_meta_free(&meta);
	return rc;
}

static s3db_code api_get_object(s3db *db, const char *key, void **data, size_t *len,
                                char **content_type, json_object **metadata, s3db_error *err)
{
	if (data)
		*data = NULL;
	if (len)
		*len = 0;
	if (content_type)
		*content_type = NULL;
	if (metadata)
		*metadata = NULL;
	s3db_code rc = raw_check_key(key, err);
	if (rc != S3DB_OK)
		return rc;
	char *full = raw_key(db, key);
	if (!full)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	store_object obj;
	store_object_init(&obj);
	rc = store_get(db->store, full, &obj, err);
	free(full);
	if (rc != S3DB_OK) {
		store_object_free(&obj);
		return rc;
	}
	json_object *meta = NULL;
	if (metadata && !(meta = json_object_new_object()))
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	for (size_t i = 0; meta && i < obj.meta.count; i++)
		json_object_object_add(meta, obj.meta.items[i].key,
		                       json_object_new_string(obj.meta.items[i].value));
	if (rc == S3DB_OK) {
		if (data) {
			*data = obj.body ? (void *)obj.body : calloc(1, 1);
			obj.body = NULL;
			if (!*data)
				rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		}
		if (len)
			*len = obj.body_len;
		if (content_type) {
			*content_type = obj.content_type;
			obj.content_type = NULL;
		}
		if (metadata)
			*metadata = meta;
	} else {
		json_object_put(meta);
	}
	store_object_free(&obj);
	return rc;
}

static s3db_code api_delete_object(s3db *db, const char *key, s3db_error *err)
{
	s3db_code rc = raw_check_key(key, err);
	if (rc != S3DB_OK)
		return rc;
	char *full = raw_key(db, key);
	if (!full)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	rc = store_delete(db->store, full, err);
	free(full);
	return rc;
}

typedef struct raw_list {
	size_t base_len;          /* bytes of "prefix/" to strip */
	int (*fn)(void *ud, const char *key, uint64_t size);
	void *ud;
	strv keys;                /* delete_prefix: the full keys */
	int oom;
} raw_list;

static int raw_list_entry(void *ud, const store_entry *e)
{
	raw_list *l = ud;
	if (strlen(e->key) < l->base_len)
		return 0;
	return l->fn(l->ud, e->key + l->base_len, e->size < 0 ? 0 : (uint64_t)e->size);
}

/* Lists every full key under the relative prefix (the database's whole
 * prefix when it is empty) through store_list_all. */
static s3db_code raw_walk(s3db *db, const char *prefix, store_key_fn fn, raw_list *l,
                          s3db_error *err)
{
	char *base = raw_base(db);
	char *full = base && prefix && *prefix ? raw_key(db, prefix) : s3db_strdup(base);
	s3db_code rc = S3DB_OK;
	if (!base || !full) {
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	} else {
		/* path.join drops a trailing '/', which narrows the prefix */
		size_t n = strlen(prefix ? prefix : "");
		if (n && prefix[n - 1] == '/' && !s3db_str_ends(full, "/")) {
			char *wider = s3db_asprintf("%s/", full);
			free(full);
			full = wider;
		}
		l->base_len = strlen(base);
		rc = full ? store_list_all(db->store, full, fn, l, err)
		          : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	free(base);
	free(full);
	return rc;
}

static s3db_code api_list_keys(s3db *db, const char *prefix,
                               int (*fn)(void *ud, const char *key, uint64_t size), void *ud,
                               s3db_error *err)
{
	if (!fn)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "list_keys: no callback");
	raw_list l = { .fn = fn, .ud = ud };
	return raw_walk(db, prefix, raw_list_entry, &l, err);
}

static int raw_collect(void *ud, const store_entry *e)
{
	raw_list *l = ud;
	if (strv_push(&l->keys, e->key)) {
		l->oom = 1;
		return 1;
	}
	return 0;
}

static s3db_code api_delete_prefix(s3db *db, const char *prefix, s3db_error *err)
{
	if (!prefix || !*prefix)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "delete_prefix: an empty prefix would delete the whole database");
	raw_list l = { 0 };
	strv_init(&l.keys);
	s3db_code rc = raw_walk(db, prefix, raw_collect, &l, err);
	if (rc == S3DB_OK && l.oom)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK && l.keys.count)
		rc = store_delete_many(db->store, (const char *const *)l.keys.items, l.keys.count,
		                       err);
	strv_free(&l.keys);
	return rc;
}

/* ---- the api table ---------------------------------------------------------------------- */

static const s3db_plugin_api host_api = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION,
	.size = sizeof(s3db_plugin_api),
	.db = api_db,
	.state = api_state,
	.set_state = api_set_state,
	.name = api_name,
	.log = api_log,
	.on = api_on,
	.off = api_off,
	.on_request = api_on_request,
	.add_file = api_add_file,
	.add_thread = api_add_thread,
	.sleep = api_sleep,
	.stopping = api_stopping,
	.set_read_cache = api_set_read_cache,
	.cache_counts = api_cache_counts,
	.resource_find = s3db_resource_find,
	.resource_define = s3db_resource_define,
	.insert = s3db_insert,
	.get = s3db_get,
	.delete_record = s3db_delete,
	.list_ids = s3db_list_ids,
	.free_strv = s3db_free_strv,
	.put_object = api_put_object,
	.get_object = api_get_object,
	.delete_object = api_delete_object,
	.delete_prefix = api_delete_prefix,
	.list_keys = api_list_keys,
};

/* ---- one plugin's lifecycle ---------------------------------------------------------------- */

/* The smallest def a host can use: everything up to destroy. */
#define DEF_MIN_SIZE (offsetof(s3db_plugin_def, destroy) + sizeof(void (*)(s3db_plugin *)))
/* Whether def (of def->size bytes) has member m. */
#define DEF_HAS(def, m) ((def)->size >= offsetof(s3db_plugin_def, m) + sizeof((def)->m))

static s3db_code def_check(const s3db_plugin_def *def, const char *origin, s3db_error *err)
{
	if (!def)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: no plugin definition", origin);
	if (def->abi_version != S3DB_PLUGIN_ABI_VERSION)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "%s: plugin '%s' was built for plugin ABI version %d, but this "
		                      "s3dbfs has ABI version %d (rebuild the plugin against this "
		                      "s3db_plugin.h)",
		                      origin, def->name ? def->name : "?", def->abi_version,
		                      S3DB_PLUGIN_ABI_VERSION);
	if (def->size < DEF_MIN_SIZE)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "%s: plugin definition of %zu bytes is too small (at least %zu)",
		                      origin, def->size, (size_t)DEF_MIN_SIZE);
	if (!def->name || !*def->name || !def->setup)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: plugin definition without a name or a setup function",
		                      origin);
	return S3DB_OK;
}

static void plugin_free(s3db_plugin *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nthreads; i++) {
		free(p->threads[i]->name);
		free(p->threads[i]);
	}
	free(p->threads);
	free(p->listeners.items);
	free(p->observers.items);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p->name);
	free(p->origin);
	free(p);
}

static s3db_plugin *plugin_new(s3db *db, const s3db_plugin_def *def, const char *origin)
{
	s3db_plugin *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->db = db;
	p->def = def;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	p->name = strdup(def->name);
	p->origin = strdup(origin ? origin : def->name);
	if (!p->name || !p->origin) {
		plugin_free(p);
		return NULL;
	}
	return p;
}

/* Takes away everything the plugin subscribed or registered. */
static void plugin_unsubscribe(s3db_plugin *p)
{
	pthread_mutex_lock(&p->lock);
	id_list listeners = p->listeners, observers = p->observers;
	p->listeners = (id_list){ 0 };
	p->observers = (id_list){ 0 };
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < listeners.count; i++)
		s3db_off(p->db, listeners.items[i]);
	for (size_t i = 0; i < observers.count; i++)
		db_observer_remove(p->db, observers.items[i]);
	free(listeners.items);
	free(observers.items);
	cache_remove_owned(p);
	files_remove_owned(p->db->plugins, p);
}

/* Stops one plugin (threads, stop(), subscriptions), destroys it and
 * unloads its .so; says so in the log. */
static void plugin_finish(s3db_plugin *p)
{
	s3db *db = p->db;
	int was_started = p->started;
	size_t joined = threads_stop_all(p);
	if (p->started && p->def->stop)
		p->def->stop(p);
	p->started = 0;
	plugin_unsubscribe(p);
	if (p->def->destroy)
		p->def->destroy(p);
	void *dl = p->dl;
	char *name = p->name;
	p->name = NULL;
	plugin_free(p);
	char note[256];
	if (dl && dlclose(dl) != 0)
		snprintf(note, sizeof note, "%s (%zu thread%s joined); unloading failed: %s",
		         was_started ? "stopped" : "destroyed", joined, joined == 1 ? "" : "s",
		         dlerror());
	else
		snprintf(note, sizeof note, "%s (%zu thread%s joined)%s",
		         was_started ? "stopped" : "destroyed", joined, joined == 1 ? "" : "s",
		         dl ? ", shared object unloaded" : "");
	host_log(db, dl && strstr(note, "failed") ? S3DB_PLUGIN_LOG_WARN : S3DB_PLUGIN_LOG_INFO,
	         name ? name : "plugin", note);
	free(name);
}

/* ---- the public calls ---------------------------------------------------------------------- */

static s3db_code host_append(struct plugin_host *h, s3db_plugin *p, s3db_error *err)
{
	pthread_mutex_lock(&h->lock);
	s3db_plugin **v = realloc(h->items, (h->count + 1) * sizeof *v);
	if (v) {
		h->items = v;
		v[h->count++] = p;
	}
	pthread_mutex_unlock(&h->lock);
	return v ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

/* s3db_plugin_add for a def whose .so handle (or NULL) goes with it: the
 * handle is dlclosed with the plugin, or at once on failure. */
static s3db_code plugin_add_with(s3db *db, const s3db_plugin_def *def, void *dl,
                                 json_object *options, const char *origin, s3db_plugin **out,
                                 s3db_error *err)
{
	if (out)
		*out = NULL;
	const char *where = origin ? origin : def && def->name ? def->name : "plugin";
	s3db_code rc = def_check(def, where, err);
	struct plugin_host *h = rc == S3DB_OK ? host_get(db) : NULL;
	s3db_plugin *p = h ? plugin_new(db, def, where) : NULL;
	if (rc == S3DB_OK && !p)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK)
		rc = host_append(h, p, err);
	if (rc != S3DB_OK) {
		plugin_free(p);
		if (dl)
			dlclose(dl);
		return rc;
	}
	p->dl = dl;
	json_object *empty = options ? NULL : json_object_new_object();
	s3db_error local;
	s3db_error *e = err ? err : &local;
	s3db_error_clear(e);
	rc = def->setup(p, &host_api, options ? options : empty, e);
	json_object_put(empty);
	if (rc != S3DB_OK) {
		if (!e->message[0])
			s3db_error_set(e, rc, "setup failed (%s)", s3db_strerror(rc));
		e->code = rc;
		if (!s3db_str_starts(e->message, p->name))
			s3db_error_prefix(e, "%s", where);
		s3db_plugins_stop(db); /* this one and every one before, in reverse */
		return rc;
	}
	char note[160];
	snprintf(note, sizeof note, "set up (version %s, from %s)", def->version ? def->version : "?",
	         dl ? "a shared object" : "the built-in table");
	host_log(db, S3DB_PLUGIN_LOG_INFO, p->name, note);
	if (out)
		*out = p;
	return S3DB_OK;
}

s3db_code s3db_plugin_add(s3db *db, const s3db_plugin_def *def, json_object *options,
                          const char *origin, s3db_plugin **out, s3db_error *err)
{
	return plugin_add_with(db, def, NULL, options, origin, out, err);
}

s3db_code s3db_plugin_load(s3db *db, const char *path, json_object *options, const char *origin,
                           s3db_plugin **out, s3db_error *err)
{
	if (out)
		*out = NULL;
	const char *where = origin ? origin : path;
	if (!path || !*path)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: no plugin path", where);
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: cannot load plugin: %s", where,
		                      dlerror());
	s3db_plugin_entry_fn entry;
	*(void **)&entry = dlsym(dl, S3DB_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		dlclose(dl);
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: %s is not an s3dbfs plugin (no symbol %s)", where, path,
		                      S3DB_PLUGIN_ENTRY_SYMBOL);
	}
	return plugin_add_with(db, entry(), dl, options, where, out, err);
}

s3db_code s3db_plugins_start(s3db *db, s3db_error *err)
{
	struct plugin_host *h = db->plugins;
	if (!h)
		return S3DB_OK;
	for (size_t i = 0; i < h->count; i++) {
		s3db_plugin *p = h->items[i];
		if (p->started)
			continue;
		s3db_code rc = S3DB_OK;
		int r = threads_launch_all(p);
		if (r)
			rc = s3db_error_set(err, S3DB_ERR_INTERNAL, "%s: cannot start its threads: %s",
			                    p->origin, strerror(-r));
		p->started = 1; /* stop() is owed from here on, even on failure */
		if (rc == S3DB_OK && p->def->start) {
			s3db_error local;
			s3db_error *e = err ? err : &local;
			s3db_error_clear(e);
			rc = p->def->start(p, e);
			if (rc != S3DB_OK) {
				if (!e->message[0])
					s3db_error_set(e, rc, "start failed (%s)", s3db_strerror(rc));
				e->code = rc;
				if (!s3db_str_starts(e->message, p->name))
					s3db_error_prefix(e, "%s", p->origin);
			}
		}
		if (rc != S3DB_OK) {
			s3db_plugins_stop(db);
			return rc;
		}
	}
	return S3DB_OK;
}

void s3db_plugins_stop(s3db *db)
{
	struct plugin_host *h = db->plugins;
	if (!h)
		return;
	for (;;) {
		pthread_mutex_lock(&h->lock);
		s3db_plugin *p = h->count ? h->items[--h->count] : NULL;
		pthread_mutex_unlock(&h->lock);
		if (!p)
			break;
		plugin_finish(p);
	}
}

s3db_code s3db_plugin_reconfigure(s3db_plugin *p, json_object *options, s3db_error *err)
{
	if (!DEF_HAS(p->def, reconfigure) || !p->def->reconfigure)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "%s: options cannot change while it runs (remount to apply)",
		                      p->name);
	json_object *empty = options ? NULL : json_object_new_object();
	s3db_error local;
	s3db_error *e = err ? err : &local;
	s3db_error_clear(e);
	s3db_code rc = p->def->reconfigure(p, options ? options : empty, e);
	json_object_put(empty);
	if (rc != S3DB_OK) {
		if (!e->message[0])
			s3db_error_set(e, rc, "new options refused (%s)", s3db_strerror(rc));
		e->code = rc;
		if (!s3db_str_starts(e->message, p->name))
			s3db_error_prefix(e, "%s", p->name);
	}
	return rc;
}

void plugin_host_free(s3db *db)
{
	struct plugin_host *h = db->plugins;
	if (!h)
		return;
	s3db_plugins_stop(db);
	free(h->items);
	for (size_t i = 0; i < h->nfiles; i++)
		free(h->files[i].path);
	free(h->files);
	pthread_mutex_destroy(&h->lock);
	free(h);
	db->plugins = NULL;
}
