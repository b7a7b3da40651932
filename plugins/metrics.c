/*
 * metrics.c — MetricsPlugin: options, lifecycle, the event listener and the
 * background thread (see metrics.h for how the files divide the work).
 *
 * Input: the after-event of every operation (insert, update, delete, get,
 * list, count) with its result and duration; before-events are ignored
 * (the after-event carries everything).  Operations whose caller context
 * has origin "plugin" are the plugins' own bookkeeping and are skipped.
 * Sampling (sampleRate) is deterministic: of n operations offered, exactly
 * floor(n * sampleRate) are recorded, evenly spread.
 *
 * The listener only updates in-memory aggregates under a mutex held for a
 * few additions.  The thread (api->add_thread) wakes every 0.25 s (or
 * flushInterval when shorter): logs slow operations and alerts, flushes
 * when flushInterval elapsed or batchSize entries wait, and applies
 * retention at start and then hourly.  At stop it flushes what is left.
 *
 * Options (the guide's table, same names and defaults): enabled (true),
 * collectPerformance (true), collectErrors (true), collectUsage (true),
 * retentionDays (30), flushInterval (60000 ms; 0 = no periodic flush),
 * sampleRate (1.0), trackSlowQueries (true), slowQueryThreshold (1000 ms),
 * batchSize (100); alertThresholds {errorRate, avgResponseTime,
 * memoryUsage} (unset: no alert); resourceNames {metrics, errors,
 * performance} (spec 6.5 names by default).  Other keys of the guide's
 * examples (compressionEnabled, onSlowQuery...) are JavaScript-only and
 * logged as ignored.
 *
 * Files: /.metrics (JSON; writing "flush" persists now, "reset" zeroes
 * the in-memory aggregates) and /.metrics.prom (read-only).
 *
 * Live reconfiguration (metrics_reconfigure): every option but
 * resourceNames may change while the plugin runs.  The new set is parsed
 * by the same code as at setup; when it is valid it replaces the running
 * set at once under the lock (the listener and the thread read a whole
 * set, never a mix), and each changed option is logged with its old and
 * new value.  The thread re-reads the options at each tick (<= 0.25 s), so
 * a new flushInterval applies without waiting out the old one.  enabled
 * false stops recording (the thread still flushes what is pending);
 * enabled true on a plugin set up disabled opens the resources and starts
 * the listener and the thread then.  A new resourceNames is refused: the
 * records already stored live under the old names.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "metrics.h"
#include "util.h"

const char *const metrics_op_names[METRICS_OPS] = { "insert", "update", "delete",
	                                            "get",    "list",   "count" };

const double metrics_bucket_bounds_ms[METRICS_BUCKETS] = { 1,   2.5,  5,    10,   25,
	                                                   50,  100,  250,  500,  1000,
	                                                   2500, 5000, 10000, 30000 };

const s3db_ctx metrics_plugin_ctx = { .process = "s3dbfs", .origin = "plugin" };

/* The host's api table (stop/destroy get only the plugin handle). */
static const s3db_plugin_api *metrics_api;

/* ---- options ------------------------------------------------------------ */

static s3db_code metrics_opt_bool(json_object *v, const char *name, int *out, s3db_error *err)
{
	if (!json_object_is_type(v, json_type_boolean))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "MetricsPlugin: %s must be true or false",
		                      name);
	*out = json_object_get_boolean(v);
	return S3DB_OK;
}

/* A number within [lo, hi]. */
static s3db_code metrics_opt_number(json_object *v, const char *name, double lo, double hi,
                                    double *out, s3db_error *err)
{
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "MetricsPlugin: %s must be a number",
		                      name);
	double d = json_object_get_double(v);
	if (!(d >= lo && d <= hi))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "MetricsPlugin: %s must be between %g and %g (got %g)", name, lo,
		                      hi, d);
	*out = d;
	return S3DB_OK;
}

static s3db_code metrics_opt_alerts(json_object *v, metrics_options *o, s3db_error *err)
{
	if (!json_object_is_type(v, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "MetricsPlugin: alertThresholds must be an object {errorRate, "
		                      "avgResponseTime, memoryUsage}");
	s3db_code rc = S3DB_OK;
	json_object_object_foreach(v, key, val) {
		if (rc != S3DB_OK)
			break;
		if (strcmp(key, "errorRate") == 0)
			rc = metrics_opt_number(val, "alertThresholds.errorRate", 0, 1,
			                        &o->alert_error_rate, err);
		else if (strcmp(key, "avgResponseTime") == 0)
			rc = metrics_opt_number(val, "alertThresholds.avgResponseTime", 0, 1e9,
			                        &o->alert_avg_response_ms, err);
		else if (strcmp(key, "memoryUsage") == 0)
			rc = metrics_opt_number(val, "alertThresholds.memoryUsage", 0, 1,
			                        &o->alert_memory_usage, err);
		else
			rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                    "MetricsPlugin: alertThresholds.%s: unknown threshold "
			                    "(errorRate, avgResponseTime, memoryUsage)", key);
	}
	return rc;
}

/* A resource name option: letters, digits, '_' and '-' only. */
static s3db_code metrics_opt_name(json_object *v, const char *name, char **out, s3db_error *err)
{
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
	size_t n = s ? strlen(s) : 0;
	if (!s || n == 0 || n > 100 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                         "0123456789_-") != n)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "MetricsPlugin: resourceNames.%s must be a resource name "
		                      "(letters, digits, '_', '-')", name);
	char *copy = strdup(s);
	if (!copy)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	free(*out);
	*out = copy;
	return S3DB_OK;
}

static s3db_code metrics_opt_names(json_object *v, metrics_options *o, s3db_error *err)
{
	if (!json_object_is_type(v, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "MetricsPlugin: resourceNames must be an object {metrics, errors, "
		                      "performance}");
	s3db_code rc = S3DB_OK;
	json_object_object_foreach(v, key, val) {
		if (rc != S3DB_OK)
			break;
		if (strcmp(key, "metrics") == 0)
			rc = metrics_opt_name(val, key, &o->res_metrics, err);
		else if (strcmp(key, "errors") == 0)
			rc = metrics_opt_name(val, key, &o->res_errors, err);
		else if (strcmp(key, "performance") == 0)
			rc = metrics_opt_name(val, key, &o->res_performance, err);
		else
			rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                    "MetricsPlugin: resourceNames.%s: unknown (metrics, errors, "
			                    "performance)", key);
	}
	return rc;
}

void metrics_options_current(metrics_state *st, metrics_options *out)
{
	pthread_mutex_lock(&st->lock);
	*out = st->opt;
	pthread_mutex_unlock(&st->lock);
}

static void metrics_options_free(metrics_options *o)
{
	free(o->res_metrics);
	free(o->res_errors);
	free(o->res_performance);
	memset(o, 0, sizeof *o);
}

/* Keys of the guide's JavaScript examples that have no meaning here. */
static int metrics_opt_js_only(const char *key)
{
	static const char *const js_only[] = { "compressionEnabled", "onSlowQuery", "onHighErrorRate",
		                               "onThresholdExceeded", NULL };
	for (int i = 0; js_only[i]; i++)
		if (strcmp(js_only[i], key) == 0)
			return 1;
	return 0;
}

/* One option of the guide's table into o. */
static s3db_code metrics_opt_one(metrics_state *st, metrics_options *o, const char *key,
                                 json_object *val, s3db_error *err)
{
	double ms;
	s3db_code rc;
	if (strcmp(key, "enabled") == 0)
		return metrics_opt_bool(val, key, &o->enabled, err);
	if (strcmp(key, "collectPerformance") == 0)
		return metrics_opt_bool(val, key, &o->collect_performance, err);
	if (strcmp(key, "collectErrors") == 0)
		return metrics_opt_bool(val, key, &o->collect_errors, err);
	if (strcmp(key, "collectUsage") == 0)
		return metrics_opt_bool(val, key, &o->collect_usage, err);
	if (strcmp(key, "trackSlowQueries") == 0)
		return metrics_opt_bool(val, key, &o->track_slow_queries, err);
	if (strcmp(key, "retentionDays") == 0)
		return metrics_opt_number(val, key, 0, 36500, &o->retention_days, err);
	if (strcmp(key, "flushInterval") == 0)
		return metrics_opt_number(val, key, 0, 86400000.0 * 7, &o->flush_interval_ms, err);
	if (strcmp(key, "sampleRate") == 0)
		return metrics_opt_number(val, key, 0, 1, &o->sample_rate, err);
	if (strcmp(key, "slowQueryThreshold") == 0)
		return metrics_opt_number(val, key, 0, 1e9, &o->slow_query_threshold_ms, err);
	if (strcmp(key, "batchSize") == 0) {
		rc = metrics_opt_number(val, key, 1, 100000, &ms, err);
		o->batch_size = (int)ms;
		return rc;
	}
	if (strcmp(key, "alertThresholds") == 0)
		return metrics_opt_alerts(val, o, err);
	if (strcmp(key, "resourceNames") == 0)
		return metrics_opt_names(val, o, err);
	if (metrics_opt_js_only(key)) {
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "option '%s' is JavaScript-only in the guide; ignored", key);
		return S3DB_OK;
	}
	return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "MetricsPlugin: unknown option '%s'", key);
}

/* The guide's defaults, then the given options over them. */
static s3db_code metrics_parse_options(metrics_state *st, json_object *options,
                                       metrics_options *o, s3db_error *err)
{
	*o = (metrics_options){
		.enabled = 1, .collect_performance = 1, .collect_errors = 1, .collect_usage = 1,
		.retention_days = 30, .flush_interval_ms = 60000, .sample_rate = 1.0,
		.track_slow_queries = 1, .slow_query_threshold_ms = 1000, .batch_size = 100,
		.alert_error_rate = -1, .alert_avg_response_ms = -1, .alert_memory_usage = -1,
		.res_metrics = strdup("plg_metrics"), .res_errors = strdup("plg_metrics_errors"),
		.res_performance = strdup("plg_metrics_performance"),
	};
	if (!o->res_metrics || !o->res_errors || !o->res_performance)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (options && !json_object_is_type(options, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "MetricsPlugin: options must be an object");
	if (!options)
		return S3DB_OK;
	json_object_object_foreach(options, key, val) {
		s3db_code rc = metrics_opt_one(st, o, key, val, err);
		if (rc != S3DB_OK)
			return rc;
	}
	return S3DB_OK;
}

/* ---- aggregates --------------------------------------------------------- */

void metrics_queue_free(metrics_queue *q)
{
	for (size_t i = 0; i < q->count; i++) {
		free(q->items[i].resource);
		free(q->items[i].id);
	}
	free(q->items);
	memset(q, 0, sizeof *q);
}

/* Appends a copy of e (strings duplicated); counts a drop when full or out
 * of memory. */
static void metrics_queue_push(metrics_queue *q, const metrics_entry *e)
{
	if (q->count == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		metrics_entry *items = q->count < METRICS_QUEUE_MAX ? realloc(q->items, cap * sizeof *items)
		                                                    : NULL;
		if (!items) {
			q->dropped++;
			return;
		}
		q->items = items;
		q->cap = cap;
	}
	metrics_entry *slot = &q->items[q->count];
	*slot = *e;
	slot->resource = strdup(e->resource);
	slot->id = e->id ? strdup(e->id) : NULL;
	if (!slot->resource || (e->id && !slot->id)) {
		free(slot->resource);
		free(slot->id);
		q->dropped++;
		return;
	}
	q->count++;
}

/* The entry of a resource, created on first use; NULL when out of
 * memory.  Called under st->lock. */
static metrics_resource *metrics_resource_get(metrics_state *st, const char *name)
{
	for (size_t i = 0; i < st->nresources; i++)
		if (strcmp(st->resources[i].name, name) == 0)
			return &st->resources[i];
	if (st->nresources == st->capresources) {
		size_t cap = st->capresources ? st->capresources * 2 : 8;
		metrics_resource *r = realloc(st->resources, cap * sizeof *r);
		if (!r)
			return NULL;
		st->resources = r;
		st->capresources = cap;
	}
	metrics_resource *r = &st->resources[st->nresources];
	memset(r, 0, sizeof *r);
	if (!(r->name = strdup(name)))
		return NULL;
	st->nresources++;
	return r;
}

static void metrics_timing_add(metrics_timing *t, double ms, int failed, int timed, int slow)
{
	t->count++;
	t->errors += failed != 0;
	t->slow += slow != 0;
	if (!timed)
		return;
	if (t->count == 1 || ms < t->min_ms)
		t->min_ms = ms;
	if (ms > t->max_ms)
		t->max_ms = ms;
	t->total_ms += ms;
	int b = 0;
	while (b < METRICS_BUCKETS && ms > metrics_bucket_bounds_ms[b])
		b++;
	t->buckets[b]++;
}

/* 1 when the n-th operation offered (0-based) is to be recorded. */
static int metrics_sampled(double rate, uint64_t n)
{
	if (rate >= 1.0)
		return 1;
	if (rate <= 0.0)
		return 0;
	return floor((double)(n + 1) * rate) > floor((double)n * rate);
}

/* Records one finished operation.  Called under st->lock. */
static void metrics_record(metrics_state *st, const s3db_event *ev, int op, int64_t now_ms)
{
	const metrics_options *o = &st->opt;
	int failed = ev->result != S3DB_OK && o->collect_errors;
	int timed = o->collect_performance;
	int slow = timed && o->track_slow_queries && ev->duration_ms > o->slow_query_threshold_ms;
	const char *name = ev->resource ? ev->resource : "";
	metrics_timing_add(&st->global[op], ev->duration_ms, failed, timed, slow);
	st->global_pending[op].count++;
	st->global_pending[op].errors += failed != 0;
	st->global_pending[op].total_ms += ev->duration_ms;
	metrics_resource *r = metrics_resource_get(st, name);
	if (r) {
		metrics_timing_add(&r->ops[op], ev->duration_ms, failed, timed, slow);
		r->pending[op].count++;
		r->pending[op].errors += failed != 0;
		r->pending[op].total_ms += ev->duration_ms;
		r->errors += failed != 0;
		if (failed && (int)ev->result >= 0 && ev->result < S3DB_ERR__COUNT)
			r->errors_by_code[ev->result]++;
	}
	if (o->collect_usage) {
		time_t secs = (time_t)(now_ms / 1000);
		struct tm tm;
		localtime_r(&secs, &tm);
		st->hourly[tm.tm_hour]++;
	}
	metrics_entry e = { .resource = (char *)name, .op = op, .code = ev->result,
		            .id = (char *)ev->id, .duration_ms = ev->duration_ms, .at_ms = now_ms };
	if (failed) {
		if ((int)ev->result >= 0 && ev->result < S3DB_ERR__COUNT)
			st->errors_by_code[ev->result]++;
		metrics_queue_push(&st->errors_q, &e);
	}
	if (timed)
		metrics_queue_push(&st->perf_q, &e);
	if (slow)
		metrics_queue_push(&st->slow_q, &e);
}

/* The event listener: after-events of user operations only. */
static s3db_code metrics_on_event(void *ud, const s3db_event *ev)
{
	metrics_state *st = ud;
	if (ev->type % 2 == 0 || (int)ev->type < 0 || ev->type >= S3DB_EV__COUNT)
		return S3DB_OK;
	if (ev->ctx && ev->ctx->origin && strcmp(ev->ctx->origin, metrics_plugin_ctx.origin) == 0)
		return S3DB_OK;
	uint64_t n = atomic_fetch_add_explicit(&st->seen, 1, memory_order_relaxed);
	int64_t now_ms = s3db_now_ms();
	pthread_mutex_lock(&st->lock);
	if (st->opt.enabled && metrics_sampled(st->opt.sample_rate, n))
		metrics_record(st, ev, (int)ev->type / 2, now_ms);
	pthread_mutex_unlock(&st->lock);
	return S3DB_OK;
}

/* Zeroes every aggregate and queue ("reset" written to /.metrics). */
static void metrics_reset(metrics_state *st)
{
	pthread_mutex_lock(&st->lock);
	memset(st->global, 0, sizeof st->global);
	memset(st->global_pending, 0, sizeof st->global_pending);
	for (size_t i = 0; i < st->nresources; i++)
		free(st->resources[i].name);
	st->nresources = 0;
	memset(st->errors_by_code, 0, sizeof st->errors_by_code);
	memset(st->hourly, 0, sizeof st->hourly);
	metrics_queue_free(&st->errors_q);
	metrics_queue_free(&st->perf_q);
	metrics_queue_free(&st->slow_q);
	st->started_ms = s3db_now_ms();
	pthread_mutex_unlock(&st->lock);
}

/* ---- files -------------------------------------------------------------- */

/* Hands text (NUL-terminated, malloc'd) to the host as a file's content. */
static int metrics_give_text(char *text, size_t len, char **out, size_t *out_len)
{
	if (!text)
		return -ENOMEM;
	*out = text;
	*out_len = len;
	return 0;
}

static int metrics_file_read_json(void *ud, const char *query, char **text, size_t *len)
{
	json_object *report = metrics_report_json(ud);
	if (!report)
		return -ENOMEM;
	const char *json = json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY |
	                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
	char *copy = s3db_asprintf("%s\n", json);
	size_t n = copy ? strlen(copy) : 0;
	json_object_put(report);
	return metrics_give_text(copy, n, text, len);
}

static int metrics_file_read_prom(void *ud, const char *query, char **text, size_t *len)
{
	size_t n = 0;
	char *prom = metrics_report_prom(ud, &n);
	return metrics_give_text(prom, n, text, len);
}

/* /.metrics write: "flush" persists now, "reset" zeroes the aggregates. */
static int metrics_file_write(void *ud, const char *data, size_t len)
{
	metrics_state *st = ud;
	while (len && strchr(" \t\r\n", data[0])) {
		data++;
		len--;
	}
	while (len && strchr(" \t\r\n", data[len - 1]))
		len--;
	if (len == 0)
		return 0; /* nothing written (a shell's O_TRUNC open) */
	if (len == 5 && memcmp(data, "flush", 5) == 0) {
		if (!st->store_metrics)
			return -EROFS;
		metrics_store_flush(st);
		return 0;
	}
	if (len == 5 && memcmp(data, "reset", 5) == 0) {
		metrics_reset(st);
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_INFO, "/.metrics: aggregates reset");
		return 0;
	}
	st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
	             "/.metrics: unknown command (%zu bytes); the commands are \"flush\" and "
	             "\"reset\"", len);
	return -EINVAL;
}

/* ---- the thread --------------------------------------------------------- */

/* How long the thread sleeps between ticks under the options o: 0.25 s,
 * or flushInterval when shorter. */
static double metrics_tick_seconds(const metrics_options *o)
{
	double tick_s = 0.25;
	if (o->flush_interval_ms > 0 && o->flush_interval_ms / 1000 < tick_s)
		tick_s = o->flush_interval_ms / 1000;
	return tick_s;
}

static void metrics_thread(s3db_plugin *p, void *ud)
{
	metrics_state *st = ud;
	const double retention_every_ms = 3600.0 * 1000;
	metrics_options o;
	metrics_options_current(st, &o);
	if (st->store_metrics)
		metrics_store_retention(st);
	double last_flush = s3db_monotonic_ms(), last_retention = last_flush;
	for (;;) {
		int stopping = st->api->sleep(p, metrics_tick_seconds(&o));
		metrics_store_alerts(st);
		if (stopping)
			break;
		metrics_options_current(st, &o); /* a reconfigure applies from this tick */
		if (!st->store_metrics)
			continue;
		double now = s3db_monotonic_ms();
		if ((o.flush_interval_ms > 0 && now - last_flush >= o.flush_interval_ms) ||
		    metrics_store_batch_ready(st)) {
			metrics_store_flush(st);
			last_flush = s3db_monotonic_ms();
		}
		if (now - last_retention >= retention_every_ms) {
			metrics_store_retention(st);
			last_retention = now;
		}
	}
	if (st->store_metrics)
		metrics_store_flush(st);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void metrics_state_free(metrics_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nresources; i++)
		free(st->resources[i].name);
	free(st->resources);
	metrics_queue_free(&st->errors_q);
	metrics_queue_free(&st->perf_q);
	metrics_queue_free(&st->slow_q);
	metrics_options_free(&st->opt);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->flush_lock);
	free(st);
}

/* Registers the two files. */
static s3db_code metrics_add_files(metrics_state *st, s3db_error *err)
{
	const s3db_plugin_api *api = st->api;
	int rc = api->add_file(st->plugin, "/.metrics", metrics_file_read_json, metrics_file_write, st,
	                       1);
	if (rc == 0)
		rc = api->add_file(st->plugin, "/.metrics.prom", metrics_file_read_prom, NULL, st, 1);
	if (rc != 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "MetricsPlugin: virtual file: %s",
		                      strerror(-rc));
	return S3DB_OK;
}

/* Opens (or defines) the resources, subscribes the listener and registers
 * the thread — once: at setup when enabled, or at the reconfigure that
 * enables a plugin set up disabled.  Sets st->active on success. */
static s3db_code metrics_activate(metrics_state *st, s3db_error *err)
{
	const s3db_plugin_api *api = st->api;
	if (st->active)
		return S3DB_OK;
	s3db_code rc = metrics_store_open(st, err);
	if (rc != S3DB_OK)
		return rc;
	if (api->on(st->plugin, metrics_on_event, st) == 0)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "MetricsPlugin: cannot subscribe to events");
	st->active = 1; /* the listener is in: never subscribe twice */
	int trc = api->add_thread(st->plugin, "metrics-flush", metrics_thread, st);
	if (trc != 0)
		return s3db_error_set(err, S3DB_ERR_INTERNAL, "MetricsPlugin: thread: %s",
		                      strerror(-trc));
	return S3DB_OK;
}

static s3db_code metrics_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                               s3db_error *err)
{
	metrics_api = api;
	metrics_state *st = calloc(1, sizeof *st);
	if (!st)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "MetricsPlugin: out of memory");
	st->plugin = p;
	st->api = api;
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->flush_lock, NULL);
	st->started_ms = s3db_now_ms();
	s3db_code rc = metrics_parse_options(st, options, &st->opt, err);
	if (rc != S3DB_OK) {
		metrics_state_free(st);
		return rc;
	}
	api->set_state(p, st); /* from here destroy frees st after a failure */
	rc = metrics_add_files(st, err);
	if (rc == S3DB_OK && st->opt.enabled)
		rc = metrics_activate(st, err);
	return rc;
}

static void metrics_destroy(s3db_plugin *p)
{
	if (metrics_api)
		metrics_state_free(metrics_api->state(p));
}

/* The resource names of a and b: 1 when the same. */
static int metrics_same_names(const metrics_options *a, const metrics_options *b)
{
	return strcmp(a->res_metrics, b->res_metrics) == 0 &&
	       strcmp(a->res_errors, b->res_errors) == 0 &&
	       strcmp(a->res_performance, b->res_performance) == 0;
}

/* A threshold for the log ("off" when not set). */
static const char *metrics_threshold_text(double v, char *buf, size_t size)
{
	if (v < 0)
		return "off";
	snprintf(buf, size, "%g", v);
	return buf;
}

/* Logs each option whose value differs between old and next. */
static void metrics_log_changes(metrics_state *st, const metrics_options *old,
                                const metrics_options *next)
{
	static const char *const bool_text[] = { "false", "true" };
	const struct {
		const char *name;
		int before, after;
	} flags[] = {
		{ "enabled", old->enabled, next->enabled },
		{ "collectPerformance", old->collect_performance, next->collect_performance },
		{ "collectErrors", old->collect_errors, next->collect_errors },
		{ "collectUsage", old->collect_usage, next->collect_usage },
		{ "trackSlowQueries", old->track_slow_queries, next->track_slow_queries },
	};
	const struct {
		const char *name;
		double before, after;
	} numbers[] = {
		{ "retentionDays", old->retention_days, next->retention_days },
		{ "flushInterval", old->flush_interval_ms, next->flush_interval_ms },
		{ "sampleRate", old->sample_rate, next->sample_rate },
		{ "slowQueryThreshold", old->slow_query_threshold_ms, next->slow_query_threshold_ms },
		{ "batchSize", old->batch_size, next->batch_size },
		{ "alertThresholds.errorRate", old->alert_error_rate, next->alert_error_rate },
		{ "alertThresholds.avgResponseTime", old->alert_avg_response_ms,
		  next->alert_avg_response_ms },
		{ "alertThresholds.memoryUsage", old->alert_memory_usage, next->alert_memory_usage },
	};
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if (!flags[i].before != !flags[i].after)
			st->api->log(st->plugin, S3DB_PLUGIN_LOG_INFO, "%s: %s -> %s (live)", flags[i].name,
			             bool_text[!!flags[i].before], bool_text[!!flags[i].after]);
	for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
		if (numbers[i].before == numbers[i].after)
			continue;
		char a[32], b[32];
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_INFO, "%s: %s -> %s (live)", numbers[i].name,
		             metrics_threshold_text(numbers[i].before, a, sizeof a),
		             metrics_threshold_text(numbers[i].after, b, sizeof b));
	}
}

/* Live reconfiguration (see the top of the file): the whole new set is
 * checked first; on any error nothing changes.  Runs on the config
 * watcher's thread while the listener and the thread run. */
static s3db_code metrics_reconfigure(s3db_plugin *p, json_object *options, s3db_error *err)
{
	metrics_state *st = metrics_api ? metrics_api->state(p) : NULL;
	if (!st)
		return s3db_error_set(err, S3DB_ERR_INTERNAL, "MetricsPlugin: not set up");
	metrics_options next;
	s3db_code rc = metrics_parse_options(st, options, &next, err);
	if (rc == S3DB_OK && !metrics_same_names(&next, &st->opt))
		rc = s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                    "MetricsPlugin: resourceNames cannot change while mounted (the "
		                    "stored metrics live under the old names; remount to use new ones)");
	if (rc == S3DB_OK && next.enabled)
		rc = metrics_activate(st, err); /* no-op unless set up disabled */
	if (rc != S3DB_OK) {
		metrics_options_free(&next);
		return rc;
	}
	/* keep the running names (equal, and borrowed by copies others hold) */
	free(next.res_metrics);
	free(next.res_errors);
	free(next.res_performance);
	pthread_mutex_lock(&st->lock);
	metrics_options old = st->opt;
	next.res_metrics = old.res_metrics;
	next.res_errors = old.res_errors;
	next.res_performance = old.res_performance;
	st->opt = next;
	pthread_mutex_unlock(&st->lock);
	metrics_log_changes(st, &old, &next);
	return S3DB_OK;
}

const s3db_plugin_def metrics_plugin_def = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION,
	.size = sizeof(s3db_plugin_def),
	.name = "MetricsPlugin",
	.version = "1.0",
	.setup = metrics_setup,
	.destroy = metrics_destroy,
	.reconfigure = metrics_reconfigure,
};
