/*
 * t_plugin.c — the plugin host (s3db_plugin.h, src/plugin.c) as a spec:
 * lifecycle order over several plugins, roll-back of a failed setup or
 * start, threads started at start and joined at stop with api->sleep
 * woken at once, event listeners that see the caller's context and are
 * gone after stop, request observers beside the public hook, virtual
 * files, the read cache slot, reconfiguration, the logger, raw objects
 * on both backends, and the ABI check.
 *
 * The plugins here are small tables of functions defined in this file
 * (what a built-in plugin is); the .so path of the host (dlopen) is
 * covered by tests/t_plugins.sh with the webhook example plugin, and
 * here by loading shared objects that are not plugins.
 *
 * Every plugin writes what happens to it into one journal ("A.setup
 * B.setup ...") so the order of calls is checked as text.
 */
#include <atf-c.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "s3db_plugin.h"
#include "testlib.h"
#include "util.h"

/* ---- the journal ---------------------------------------------------------- */

static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
static char journal[4096];

static void note(const char *fmt, ...) S3DB_PRINTF(1, 2);
static void note(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&journal_lock);
	size_t n = strlen(journal);
	snprintf(journal + n, sizeof journal - n, "%s%s", n ? " " : "", line);
	pthread_mutex_unlock(&journal_lock);
}

static void journal_clear(void)
{
	pthread_mutex_lock(&journal_lock);
	journal[0] = '\0';
	pthread_mutex_unlock(&journal_lock);
}

#define JOURNAL_IS(expected) ATF_CHECK_STREQ_MSG(expected, journal, "journal: %s", journal)

/* ---- a recording plugin ------------------------------------------------------ */

/* Options: {"failSetup": bool, "failStart": bool, "thread": bool}. */
typedef struct rec_state {
	const s3db_plugin_api *api;
	atomic_int thread_ran;
} rec_state;

static void rec_thread(s3db_plugin *p, void *ud)
{
	rec_state *st = ud;
	atomic_store(&st->thread_ran, 1);
	while (!st->api->sleep(p, 60.0))
		;
	note("%s.thread-exit", st->api->name(p));
}

static s3db_code rec_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                           s3db_error *err)
{
	note("%s.setup", api->name(p));
	rec_state *st = calloc(1, sizeof *st);
	ATF_REQUIRE(st != NULL);
	st->api = api;
	api->set_state(p, st);
	json_object *v;
	if (json_object_object_get_ex(options, "thread", &v) && json_object_get_boolean(v))
		ATF_REQUIRE_EQ(0, api->add_thread(p, "rec", rec_thread, st));
	if (json_object_object_get_ex(options, "failSetup", &v) && json_object_get_boolean(v))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: failSetup was asked",
		                      api->name(p));
	return S3DB_OK;
}

static s3db_code rec_start(s3db_plugin *p, s3db_error *err);
static void rec_stop(s3db_plugin *p);
static void rec_destroy(s3db_plugin *p);

/* Plugins keep their api pointer in their state; the tests reach it
 * through this one (the host has a single table). */
static const s3db_plugin_api *the_api;

static s3db_code rec_start(s3db_plugin *p, s3db_error *err)
{
	rec_state *st = the_api->state(p);
	note("%s.start", the_api->name(p));
	(void)st;
	if (!strcmp(the_api->name(p), "FailStart"))
		return s3db_error_set(err, S3DB_ERR_IO, "FailStart: cannot start");
	return S3DB_OK;
}

static void rec_stop(s3db_plugin *p)
{
	note("%s.stop", the_api->name(p));
}

static void rec_destroy(s3db_plugin *p)
{
	note("%s.destroy", the_api->name(p));
	free(the_api->state(p));
}

static s3db_code grab_api_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *o,
                                s3db_error *err)
{
	the_api = api;
	return rec_setup(p, api, o, err);
}

#define REC_DEF(var, nm)                                                        \
	static const s3db_plugin_def var = {                                   \
		.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def), \
		.name = nm, .version = "1.0", .setup = grab_api_setup,          \
		.start = rec_start, .stop = rec_stop, .destroy = rec_destroy,   \
	}
REC_DEF(def_a, "A");
REC_DEF(def_b, "B");
REC_DEF(def_c, "C");
REC_DEF(def_fail_start, "FailStart");

/* ---- helpers ------------------------------------------------------------------- */

static s3db *open_file_db(void)
{
	char *cs = testlib_file_connstr();
	s3db *db = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_open(cs, NULL, &db, &err), &err);
	free(cs);
	return db;
}

static s3db *open_s3_db(const char *name)
{
	char *cs = testlib_s3_connstr(testlib_unique_prefix(name));
	s3db *db = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_open(cs, NULL, &db, &err), &err);
	free(cs);
	return db;
}

static json_object *J(const char *text)
{
	json_object *o = json_tokener_parse(text);
	ATF_REQUIRE_MSG(o != NULL, "bad JSON in the test: %s", text);
	return o;
}

/* Adds a plugin with options given as JSON text; fails the test on error. */
static s3db_plugin *add(s3db *db, const s3db_plugin_def *def, const char *options)
{
	json_object *o = options ? J(options) : NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_plugin *p = NULL;
	CHECK_OK(s3db_plugin_add(db, def, o, NULL, &p, &err), &err);
	json_object_put(o);
	return p;
}

static double now_ms(void)
{
	return s3db_monotonic_ms();
}

/* ---- lifecycle -------------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(lifecycle_runs_setup_then_start_in_order_and_stop_in_reverse);
ATF_TC_BODY(lifecycle_runs_setup_then_start_in_order_and_stop_in_reverse, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	add(db, &def_a, NULL);
	add(db, &def_b, NULL);
	add(db, &def_c, NULL);
	JOURNAL_IS("A.setup B.setup C.setup");
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	JOURNAL_IS("A.setup B.setup C.setup A.start B.start C.start");
	journal_clear();
	s3db_plugins_stop(db);
	JOURNAL_IS("C.stop C.destroy B.stop B.destroy A.stop A.destroy");
	journal_clear();
	s3db_close(db); /* nothing left to stop */
	JOURNAL_IS("");
}

ATF_TC_WITHOUT_HEAD(closing_the_database_stops_its_plugins);
ATF_TC_BODY(closing_the_database_stops_its_plugins, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	add(db, &def_a, NULL);
	add(db, &def_b, NULL);
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	journal_clear();
	s3db_close(db);
	JOURNAL_IS("B.stop B.destroy A.stop A.destroy");
}

ATF_TC_WITHOUT_HEAD(failing_setup_rolls_back_the_plugins_before_it_in_reverse);
ATF_TC_BODY(failing_setup_rolls_back_the_plugins_before_it_in_reverse, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	add(db, &def_a, NULL);
	add(db, &def_b, NULL);
	json_object *o = J("{\"failSetup\": true}");
	s3db_error err;
	s3db_error_clear(&err);
	s3db_plugin *p = (s3db_plugin *)&err; /* must be reset to NULL */
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, s3db_plugin_add(db, &def_c, o, "config.json: plugins[2]",
	                                                   &p, &err));
	json_object_put(o);
	ATF_CHECK(p == NULL);
	ATF_CHECK_STREQ("C: failSetup was asked", err.message);
	/* never started: no stop; destroy frees what setup made */
	JOURNAL_IS("A.setup B.setup C.setup C.destroy B.destroy A.destroy");
	journal_clear();
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	JOURNAL_IS("");
	s3db_close(db);
	JOURNAL_IS("");
}

ATF_TC_WITHOUT_HEAD(failing_start_stops_every_plugin_in_reverse);
ATF_TC_BODY(failing_start_stops_every_plugin_in_reverse, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	add(db, &def_a, NULL);
	add(db, &def_fail_start, NULL);
	add(db, &def_c, NULL);
	s3db_error err;
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_IO, s3db_plugins_start(db, &err));
	ATF_CHECK_STREQ("FailStart: cannot start", err.message);
	JOURNAL_IS("A.setup FailStart.setup C.setup A.start FailStart.start "
	           "C.destroy FailStart.stop FailStart.destroy A.stop A.destroy");
	s3db_close(db);
}

/* ---- threads ------------------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(threads_run_from_start_and_are_joined_at_stop_with_sleep_woken_at_once);
ATF_TC_BODY(threads_run_from_start_and_are_joined_at_stop_with_sleep_woken_at_once, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	s3db_plugin *p = add(db, &def_a, "{\"thread\": true}");
	rec_state *st = the_api->state(p);
	usleep(100 * 1000);
	ATF_CHECK_EQ_MSG(0, atomic_load(&st->thread_ran), "the thread ran before start");
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	for (int i = 0; i < 200 && !atomic_load(&st->thread_ran); i++)
		usleep(10 * 1000);
	ATF_REQUIRE_EQ_MSG(1, atomic_load(&st->thread_ran), "the thread did not run after start");
	ATF_CHECK_EQ(0, the_api->stopping(p));
	/* the thread sleeps 60 s at a time: stop must wake it, not wait, and
	 * join it before stop() */
	double t0 = now_ms();
	s3db_plugins_stop(db);
	double took = now_ms() - t0;
	ATF_CHECK_MSG(took < 1000, "stop took %.0f ms", took);
	JOURNAL_IS("A.setup A.start A.thread-exit A.stop A.destroy");
	s3db_close(db);
}

/* A thread that counts its sleeps; registered after start it starts at once. */
static atomic_int late_thread_ran;
static void late_thread(s3db_plugin *p, void *ud)
{
	atomic_store(&late_thread_ran, 1);
	while (!the_api->sleep(p, 0.01))
		;
	note("late.exit");
}

ATF_TC_WITHOUT_HEAD(a_thread_added_after_start_runs_at_once_and_exits_before_stop);
ATF_TC_BODY(a_thread_added_after_start_runs_at_once_and_exits_before_stop, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	s3db_plugin *p = add(db, &def_a, NULL);
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	ATF_REQUIRE_EQ(0, the_api->add_thread(p, "late", late_thread, NULL));
	for (int i = 0; i < 200 && !atomic_load(&late_thread_ran); i++)
		usleep(10 * 1000);
	ATF_CHECK_EQ(1, atomic_load(&late_thread_ran));
	/* short sleeps return 0 while running */
	ATF_CHECK_EQ(0, the_api->sleep(p, 0.001));
	s3db_plugins_stop(db);
	/* joined before stop(): its exit is journaled before A.stop */
	JOURNAL_IS("A.setup A.start late.exit A.stop A.destroy");
	s3db_close(db);
}

/* ---- events, requests, files, cache --------------------------------------------------- */

typedef struct seen {
	pthread_mutex_t lock;
	int events;
	char last[256];
	atomic_int requests;
} seen;

static s3db_code on_event(void *ud, const s3db_event *ev)
{
	seen *s = ud;
	pthread_mutex_lock(&s->lock);
	s->events++;
	snprintf(s->last, sizeof s->last, "%s %s %s uid=%d gid=%d pid=%d process=%s origin=%s",
	         s3db_event_name(ev->type), ev->resource, ev->id ? ev->id : "-", (int)ev->ctx->uid,
	         (int)ev->ctx->gid, (int)ev->ctx->pid, ev->ctx->process ? ev->ctx->process : "",
	         ev->ctx->origin ? ev->ctx->origin : "");
	pthread_mutex_unlock(&s->lock);
	return S3DB_OK;
}

static void on_request(void *ud, const s3db_request_info *info)
{
	seen *s = ud;
	atomic_fetch_add(&s->requests, 1);
}

static seen *the_seen; /* handed to the plugin below */

static s3db_code listening_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *o,
                                 s3db_error *err)
{
	the_api = api;
	if (!api->on(p, on_event, the_seen) || !api->on_request(p, on_request, the_seen))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	return S3DB_OK;
}

static const s3db_plugin_def def_listening = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def),
	.name = "Listening", .version = "1", .setup = listening_setup,
};

static void insert_one(s3db *db, const char *id, const s3db_ctx *ctx)
{
	s3db_error err;
	s3db_resource *res = s3db_resource_find(db, "users");
	if (!res) {
		json_object *def = J("{\"attributes\": {\"name\": \"string\"}}");
		CHECK_OK(s3db_resource_define(db, "users", def, &res, &err), &err);
		json_object_put(def);
	}
	char text[128];
	snprintf(text, sizeof text, "{\"id\": \"%s\", \"name\": \"n\"}", id);
	json_object *rec = J(text);
	CHECK_OK(s3db_insert(res, rec, ctx, NULL, &err), &err);
	json_object_put(rec);
}

ATF_TC_WITHOUT_HEAD(listeners_get_events_with_the_callers_context_and_are_gone_after_stop);
ATF_TC_BODY(listeners_get_events_with_the_callers_context_and_are_gone_after_stop, tc)
{
	seen s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	the_seen = &s;
	s3db *db = open_file_db();
	add(db, &def_listening, NULL);
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	s3db_ctx ctx = { .uid = 1234, .gid = 55, .pid = 4321, .process = "tee", .origin = "fuse" };
	insert_one(db, "u1", &ctx);
	ATF_CHECK_EQ(2, s.events); /* beforeInsert, afterInsert */
	ATF_CHECK_STREQ("afterInsert users u1 uid=1234 gid=55 pid=4321 process=tee origin=fuse",
	                s.last);
	s3db_plugins_stop(db);
	ATF_CHECK_EQ(0, (int)db->bus.count);
	int before = s.events;
	insert_one(db, "u2", NULL);
	ATF_CHECK_EQ(before, s.events);
	s3db_close(db);
}

static void count_public(void *ud, const s3db_request_info *info)
{
	atomic_fetch_add((atomic_int *)ud, 1);
}

ATF_TC_WITHOUT_HEAD(request_observers_see_every_request_beside_the_public_hook);
ATF_TC_BODY(request_observers_see_every_request_beside_the_public_hook, tc)
{
	seen s = { .lock = PTHREAD_MUTEX_INITIALIZER };
	the_seen = &s;
	s3db *db = open_s3_db("observers");
	atomic_int public_count = 0;
	s3db_set_request_hook(db, count_public, &public_count);
	add(db, &def_listening, NULL);
	seen s2 = { .lock = PTHREAD_MUTEX_INITIALIZER };
	the_seen = &s2; /* a second plugin instance observes too */
	add(db, &def_listening, NULL);
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	insert_one(db, "u1", NULL);
	insert_one(db, "u2", NULL);
	int n = atomic_load(&public_count);
	ATF_CHECK_MSG(n >= 3, "only %d requests", n);
	ATF_CHECK_EQ(n, atomic_load(&s.requests));
	ATF_CHECK_EQ(n, atomic_load(&s2.requests));
	s3db_plugins_stop(db);
	ATF_CHECK_EQ(0, (int)db->observers.count);
	insert_one(db, "u3", NULL);
	ATF_CHECK(atomic_load(&public_count) > n);
	ATF_CHECK_EQ(n, atomic_load(&s.requests));
	s3db_set_request_hook(db, NULL, NULL);
	s3db_close(db);
}

static int file_read(void *ud, const char *query, char **text, size_t *len)
{
	*text = strdup((const char *)ud);
	*len = strlen(*text);
	return 0;
}

static int file_write(void *ud, const char *data, size_t len)
{
	return len == 5 && !memcmp(data, "reset", 5) ? 0 : -EINVAL;
}

static s3db_code files_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *o,
                             s3db_error *err)
{
	the_api = api;
	const char *path = s3db_json_get_string(o, "path");
	int r = api->add_file(p, path, file_read, file_write, (void *)"content", 1);
	if (r)
		return s3db_error_set(err, S3DB_ERR_EXISTS, "%s: add_file %s: %s", api->name(p), path,
		                      strerror(-r));
	ATF_CHECK_EQ(-EINVAL, api->add_file(p, "no-slash", file_read, NULL, NULL, 1));
	ATF_CHECK_EQ(-EINVAL, api->add_file(p, "/x", NULL, NULL, NULL, 1));
	return S3DB_OK;
}

static const s3db_plugin_def def_files = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def),
	.name = "Files", .version = "1", .setup = files_setup,
};

typedef struct file_list {
	char text[512];
} file_list;

static int list_file(void *ud, const char *path, s3db_file_read_fn r, s3db_file_write_fn w,
                     void *file_ud, int listed)
{
	file_list *l = ud;
	char *content = NULL;
	size_t len = 0;
	ATF_CHECK_EQ(0, r(file_ud, NULL, &content, &len));
	size_t n = strlen(l->text);
	snprintf(l->text + n, sizeof l->text - n, "%s%s=%.*s%s%s", n ? " " : "", path, (int)len,
	         content, w ? ",w" : "", listed ? ",listed" : "");
	free(content);
	return 0;
}

ATF_TC_WITHOUT_HEAD(virtual_files_are_listed_in_order_unique_and_removed_at_stop);
ATF_TC_BODY(virtual_files_are_listed_in_order_unique_and_removed_at_stop, tc)
{
	s3db *db = open_file_db();
	add(db, &def_files, "{\"path\": \"/.costs\"}");
	add(db, &def_files, "{\"path\": \"/users/.stats\"}");
	json_object *o = J("{\"path\": \"/.costs\"}");
	s3db_error err;
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_EXISTS, s3db_plugin_add(db, &def_files, o, NULL, NULL, &err));
	json_object_put(o);
	ATF_CHECK_STREQ("Files: add_file /.costs: File exists", err.message);
	/* the failure rolled everything back */
	file_list l = { "" };
	s3db_plugin_files(db, list_file, &l);
	ATF_CHECK_STREQ("", l.text);

	add(db, &def_files, "{\"path\": \"/.costs\"}");
	add(db, &def_files, "{\"path\": \"/users/.stats\"}");
	s3db_plugin_files(db, list_file, &l);
	ATF_CHECK_STREQ("/.costs=content,w,listed /users/.stats=content,w,listed", l.text);
	s3db_plugins_stop(db);
	l.text[0] = '\0';
	s3db_plugin_files(db, list_file, &l);
	ATF_CHECK_STREQ("", l.text);
	s3db_close(db);
}

static int cache_lookup(void *ud, const s3db_cache_request *rq, json_object **result)
{
	return 0;
}

static void cache_store(void *ud, const s3db_cache_request *rq, json_object *result)
{
}

static const s3db_read_cache test_cache = { .lookup = cache_lookup, .store = cache_store };

static s3db_code cache_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *o,
                             s3db_error *err)
{
	the_api = api;
	return api->set_read_cache(p, &test_cache, p) ? S3DB_ERR_INTERNAL : S3DB_OK;
}

static const s3db_plugin_def def_cache = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def),
	.name = "Cache", .version = "1", .setup = cache_setup,
};

ATF_TC_WITHOUT_HEAD(the_read_cache_is_installed_by_a_plugin_and_removed_at_stop);
ATF_TC_BODY(the_read_cache_is_installed_by_a_plugin_and_removed_at_stop, tc)
{
	s3db *db = open_file_db();
	s3db_plugin *p = add(db, &def_cache, NULL);
	void *ud = NULL;
	ATF_CHECK(db_read_cache(db, &ud) == &test_cache);
	ATF_CHECK(ud == p);
	atomic_fetch_add(&db->cache_hits, 3);
	atomic_fetch_add(&db->cache_misses, 2);
	uint64_t hits = 0, misses = 0;
	the_api->cache_counts(db, &hits, &misses);
	ATF_CHECK_EQ(3, (int)hits);
	ATF_CHECK_EQ(2, (int)misses);
	s3db_plugins_stop(db);
	ATF_CHECK(db_read_cache(db, &ud) == NULL);
	s3db_close(db);
}

/* ---- reconfigure, log ---------------------------------------------------------------- */

static s3db_code reconf_fn(s3db_plugin *p, json_object *options, s3db_error *err)
{
	json_object *v;
	if (!json_object_object_get_ex(options, "ttl", &v) || json_object_get_int(v) < 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "ttl must be >= 0");
	note("reconfigure ttl=%d", json_object_get_int(v));
	return S3DB_OK;
}

static const s3db_plugin_def def_reconf = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def),
	.name = "Reconf", .version = "1", .setup = grab_api_setup, .destroy = rec_destroy,
	.reconfigure = reconf_fn,
};

ATF_TC_WITHOUT_HEAD(reconfigure_passes_options_or_says_the_plugin_cannot_take_them);
ATF_TC_BODY(reconfigure_passes_options_or_says_the_plugin_cannot_take_them, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	s3db_plugin *a = add(db, &def_a, NULL);
	s3db_plugin *r = add(db, &def_reconf, NULL);
	json_object *good = J("{\"ttl\": 5}"), *bad = J("{\"ttl\": -1}");
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_plugin_reconfigure(r, good, &err), &err);
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, s3db_plugin_reconfigure(r, bad, &err));
	ATF_CHECK_STREQ("Reconf: ttl must be >= 0", err.message);
	ATF_CHECK_EQ(S3DB_ERR_UNSUPPORTED, s3db_plugin_reconfigure(a, good, &err));
	ATF_CHECK_MSG(strstr(err.message, "A: options cannot change while it runs"), "%s",
	              err.message);
	JOURNAL_IS("A.setup Reconf.setup reconfigure ttl=5");
	json_object_put(good);
	json_object_put(bad);
	s3db_close(db);
}

static void test_logger(void *ud, s3db_plugin_log_level level, const char *plugin,
                        const char *message)
{
	note("log[%d] %s: %s", (int)level, plugin, message);
}

static s3db_code logging_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *o,
                               s3db_error *err)
{
	api->log(p, S3DB_PLUGIN_LOG_WARN, "queue full, %d dropped", 3);
	return S3DB_OK;
}

static const s3db_plugin_def def_logging = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def),
	.name = "Logging", .version = "2.1", .setup = logging_setup,
};

ATF_TC_WITHOUT_HEAD(plugin_messages_go_to_the_logger_with_the_plugin_name);
ATF_TC_BODY(plugin_messages_go_to_the_logger_with_the_plugin_name, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	s3db_plugin_set_logger(db, test_logger, NULL);
	add(db, &def_logging, NULL);
	JOURNAL_IS("log[1] Logging: queue full, 3 dropped "
	           "log[2] Logging: set up (version 2.1, from the built-in table)");
	journal_clear();
	s3db_error err;
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	s3db_close(db);
	JOURNAL_IS("log[2] Logging: stopped (0 threads joined)");
}

/* ---- ABI and loading ---------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(a_plugin_built_for_another_abi_is_refused_naming_both_versions);
ATF_TC_BODY(a_plugin_built_for_another_abi_is_refused_naming_both_versions, tc)
{
	journal_clear();
	s3db *db = open_file_db();
	s3db_plugin_def future = def_a;
	future.abi_version = S3DB_PLUGIN_ABI_VERSION + 1;
	s3db_error err;
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_UNSUPPORTED,
	             s3db_plugin_add(db, &future, NULL, "-o plugin", NULL, &err));
	char expected[256];
	snprintf(expected, sizeof expected,
	         "-o plugin: plugin 'A' was built for plugin ABI version %d, but this s3dbfs has "
	         "ABI version %d", S3DB_PLUGIN_ABI_VERSION + 1, S3DB_PLUGIN_ABI_VERSION);
	ATF_CHECK_MSG(s3db_str_starts(err.message, expected), "%s", err.message);
	s3db_plugin_def tiny = def_a;
	tiny.size = 8;
	ATF_CHECK_EQ(S3DB_ERR_UNSUPPORTED, s3db_plugin_add(db, &tiny, NULL, NULL, NULL, &err));
	JOURNAL_IS(""); /* setup never called */
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(loading_a_missing_file_or_a_library_without_the_entry_fails_clearly);
ATF_TC_BODY(loading_a_missing_file_or_a_library_without_the_entry_fails_clearly, tc)
{
	s3db *db = open_file_db();
	s3db_error err;
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG,
	             s3db_plugin_load(db, "/nonexistent/x.so", NULL, "-o plugin", NULL, &err));
	ATF_CHECK_MSG(s3db_str_starts(err.message, "-o plugin: cannot load plugin: /nonexistent/x.so"),
	              "%s", err.message);
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG,
	             s3db_plugin_load(db, "libm.so.6", NULL, "cfg: plugins[0]", NULL, &err));
	ATF_CHECK_STREQ("cfg: plugins[0]: libm.so.6 is not an s3dbfs plugin (no symbol "
	                "s3db_plugin_entry)", err.message);
	s3db_close(db);
}

/* ---- raw objects ----------------------------------------------------------------------- */

static int collect_key(void *ud, const char *key, uint64_t size)
{
	sbuf *b = ud;
	sbuf_printf(b, "%s%s:%llu", b->len ? " " : "", key, (unsigned long long)size);
	return 0;
}

static void raw_objects_round_trip(s3db *db)
{
	const s3db_plugin_api *api = NULL;
	add(db, &def_a, NULL);
	api = the_api;
	s3db_error err;
	s3db_error_clear(&err);
	json_object *meta = J("{\"Compressed\": \"gzip\", \"size\": 12}");
	CHECK_OK(api->put_object(db, "plugin=cache/cache/resource=users/a", "hello", 5,
	                         "application/json", meta, &err), &err);
	CHECK_OK(api->put_object(db, "plugin=cache/cache/resource=users/b", "hi", 2, NULL, NULL,
	                         &err), &err);
	CHECK_OK(api->put_object(db, "plugin=cache/other/x", "xyz", 3, NULL, NULL, &err), &err);
	json_object_put(meta);

	void *data = NULL;
	size_t len = 0;
	char *ct = NULL;
	json_object *got = NULL;
	CHECK_OK(api->get_object(db, "plugin=cache/cache/resource=users/a", &data, &len, &ct, &got,
	                         &err), &err);
	ATF_CHECK_EQ(5, (int)len);
	ATF_CHECK(!memcmp(data, "hello", 5));
	ATF_CHECK_STREQ("application/json", ct ? ct : "(null)");
	ATF_CHECK_STREQ("gzip", s3db_json_get_string(got, "compressed"));
	ATF_CHECK_STREQ("12", s3db_json_get_string(got, "size"));
	free(data);
	free(ct);
	json_object_put(got);

	sbuf keys;
	sbuf_init(&keys);
	CHECK_OK(api->list_keys(db, "plugin=cache/", collect_key, &keys, &err), &err);
	ATF_CHECK_STREQ("plugin=cache/cache/resource=users/a:5 plugin=cache/cache/resource=users/b:2 "
	                "plugin=cache/other/x:3", keys.data);
	sbuf_reset(&keys);
	CHECK_OK(api->delete_prefix(db, "plugin=cache/cache/", &err), &err);
	CHECK_OK(api->list_keys(db, "plugin=cache/", collect_key, &keys, &err), &err);
	ATF_CHECK_STREQ("plugin=cache/other/x:3", keys.data);
	sbuf_reset(&keys);
	CHECK_OK(api->delete_object(db, "plugin=cache/other/x", &err), &err);
	CHECK_OK(api->list_keys(db, "plugin=cache/", collect_key, &keys, &err), &err);
	ATF_CHECK_STREQ("", keys.data ? keys.data : "");
	sbuf_free(&keys);
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND,
	             api->get_object(db, "plugin=cache/other/x", &data, &len, NULL, NULL, &err));
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, api->delete_prefix(db, "", &err));
	/* the catalogue is still there: an empty prefix never deleted anything */
	CHECK_OK(api->get_object(db, "s3db.json", NULL, NULL, NULL, NULL, &err), &err);
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(raw_objects_put_get_list_and_delete_on_the_file_backend);
ATF_TC_BODY(raw_objects_put_get_list_and_delete_on_the_file_backend, tc)
{
	raw_objects_round_trip(open_file_db());
}

ATF_TC_WITHOUT_HEAD(raw_objects_put_get_list_and_delete_on_s3);
ATF_TC_BODY(raw_objects_put_get_list_and_delete_on_s3, tc)
{
	raw_objects_round_trip(open_s3_db("raw"));
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, lifecycle_runs_setup_then_start_in_order_and_stop_in_reverse);
	ATF_TP_ADD_TC(tp, closing_the_database_stops_its_plugins);
	ATF_TP_ADD_TC(tp, failing_setup_rolls_back_the_plugins_before_it_in_reverse);
	ATF_TP_ADD_TC(tp, failing_start_stops_every_plugin_in_reverse);
	ATF_TP_ADD_TC(tp, threads_run_from_start_and_are_joined_at_stop_with_sleep_woken_at_once);
	ATF_TP_ADD_TC(tp, a_thread_added_after_start_runs_at_once_and_exits_before_stop);
	ATF_TP_ADD_TC(tp, listeners_get_events_with_the_callers_context_and_are_gone_after_stop);
	ATF_TP_ADD_TC(tp, request_observers_see_every_request_beside_the_public_hook);
	ATF_TP_ADD_TC(tp, virtual_files_are_listed_in_order_unique_and_removed_at_stop);
	ATF_TP_ADD_TC(tp, the_read_cache_is_installed_by_a_plugin_and_removed_at_stop);
	ATF_TP_ADD_TC(tp, reconfigure_passes_options_or_says_the_plugin_cannot_take_them);
	ATF_TP_ADD_TC(tp, plugin_messages_go_to_the_logger_with_the_plugin_name);
	ATF_TP_ADD_TC(tp, a_plugin_built_for_another_abi_is_refused_naming_both_versions);
	ATF_TP_ADD_TC(tp, loading_a_missing_file_or_a_library_without_the_entry_fails_clearly);
	ATF_TP_ADD_TC(tp, raw_objects_put_get_list_and_delete_on_the_file_backend);
	ATF_TP_ADD_TC(tp, raw_objects_put_get_list_and_delete_on_s3);
	return atf_no_error();
}
