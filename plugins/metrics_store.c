/*
 * metrics_store.c — what the MetricsPlugin writes: its three resources
 * (spec 6.5), the flush, retention, and the log lines of the alerts.
 *
 * Resources (definitions exactly as s3db.js 21.6.2 creates them; behavior
 * body-overflow, no timestamps, partition byDate {createdAt: dateonly}):
 *   plg_metrics              id, type, resourceName, operation, count,
 *                            totalTime, errors, avgTime, timestamp,
 *                            metadata, createdAt
 *   plg_metrics_errors       id, resourceName, operation, error, timestamp,
 *                            metadata, createdAt
 *   plg_metrics_performance  id, resourceName, operation, duration,
 *                            timestamp, metadata, createdAt
 * The attribute order fixes the short keys (0, 1, ... a).  A resource that
 * already exists is used as it is (no catalogue write at every mount).
 *
 * Flush: the pending counts become plg_metrics records — one per operation
 * kind with metadata {"global":"true"} (resourceName "global"), and one per
 * (resource, operation) with {"resource":"true"} — the queued errors
 * become plg_metrics_errors records, the queued timings
 * plg_metrics_performance records.  They are taken out under the lock and
 * written outside it, batchSize at a time.  The plugin's writes carry the
 * "plugin" origin, so the listener does not count them.  The core's event
 * carries a result code but no message: the error text is the code's text
 * with the record named ("insert users/u1: validation failed"); there is
 * no JavaScript stack to store.
 *
 * Retention: keys under resource=<R>/partition=byDate/ name each record's
 * createdAt day; records of days before (today - retentionDays) are
 * deleted through the library (which removes their partition references).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "metrics.h"
#include "util.h"

/* ---- definitions -------------------------------------------------------- */

static json_object *metrics_definition(const char *const attrs[][2])
{
	json_object *attributes = json_object_new_object();
	for (int i = 0; attrs[i][0]; i++)
		json_object_object_add(attributes, attrs[i][0], json_object_new_string(attrs[i][1]));
	json_object *fields = json_object_new_object();
	json_object_object_add(fields, "createdAt", json_object_new_string("dateonly"));
	json_object *by_date = json_object_new_object();
	json_object_object_add(by_date, "fields", fields);
	json_object *partitions = json_object_new_object();
	json_object_object_add(partitions, "byDate", by_date);
	json_object *def = json_object_new_object();
	json_object_object_add(def, "attributes", attributes);
	json_object_object_add(def, "behavior", json_object_new_string("body-overflow"));
	json_object_object_add(def, "timestamps", json_object_new_boolean(0));
	json_object_object_add(def, "partitions", partitions);
	return def;
}

static const char *const metrics_attrs[][2] = {
	{ "id", "string|required" },          { "type", "string|required" },
	{ "resourceName", "string" },         { "operation", "string" },
	{ "count", "number|required" },       { "totalTime", "number|required" },
	{ "errors", "number|required" },      { "avgTime", "number|required" },
	{ "timestamp", "datetime|required" }, { "metadata", "json" },
	{ "createdAt", "dateonly|required" }, { NULL, NULL },
};
static const char *const error_attrs[][2] = {
	{ "id", "string|required" },        { "resourceName", "string|required" },
	{ "operation", "string|required" }, { "error", "string|required" },
	{ "timestamp", "datetime|required" }, { "metadata", "json" },
	{ "createdAt", "dateonly|required" }, { NULL, NULL },
};
static const char *const perf_attrs[][2] = {
	{ "id", "string|required" },        { "resourceName", "string|required" },
	{ "operation", "string|required" }, { "duration", "number|required" },
	{ "timestamp", "datetime|required" }, { "metadata", "json" },
	{ "createdAt", "dateonly|required" }, { NULL, NULL },
};

/* The resource `name`, defined from attrs when absent. */
static s3db_code metrics_store_resource(metrics_state *st, const char *name,
                                        const char *const attrs[][2], s3db_resource **out,
                                        s3db_error *err)
{
	s3db *db = st->api->db(st->plugin);
	*out = st->api->resource_find(db, name);
	if (*out)
		return S3DB_OK;
	json_object *def = metrics_definition(attrs);
	s3db_code rc = st->api->resource_define(db, name, def, out, err);
	json_object_put(def);
	return rc;
}

s3db_code metrics_store_open(metrics_state *st, s3db_error *err)
{
	const metrics_options *o = &st->opt;
	s3db_resource *m = NULL, *e = NULL, *p = NULL;
	s3db_code rc = metrics_store_resource(st, o->res_metrics, metrics_attrs, &m, err);
	if (rc == S3DB_OK)
		rc = metrics_store_resource(st, o->res_errors, error_attrs, &e, err);
	if (rc == S3DB_OK)
		rc = metrics_store_resource(st, o->res_performance, perf_attrs, &p, err);
	if (rc == S3DB_ERR_UNSUPPORTED) {
		/* an s3db.js 7.x database is read-only here */
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "metrics are not persisted: %s", err ? err->message : "read-only database");
		if (err)
			s3db_error_clear(err);
		return S3DB_OK;
	}
	if (rc != S3DB_OK) {
		s3db_error_prefix(err, "MetricsPlugin");
		return rc;
	}
	st->store_metrics = m;
	st->store_errors = e;
	st->store_perf = p;
	return S3DB_OK;
}

/* ---- records ------------------------------------------------------------ */

/* "<prefix>-<ms>-<9 base36 characters>" as s3db.js makes plugin ids. */
static void metrics_make_id(char *buf, size_t size, const char *prefix, int64_t ms)
{
	static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	unsigned char rnd[9];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		for (size_t i = 0; i < sizeof rnd; i++)
			rnd[i] = (unsigned char)(rand() & 0xff);
	char tail[10];
	for (size_t i = 0; i < sizeof rnd; i++)
		tail[i] = b36[rnd[i] % 36];
	tail[9] = '\0';
	snprintf(buf, size, "%s-%lld-%s", prefix, (long long)ms, tail);
}

/* Milliseconds rounded to 3 decimals (the stored numbers stay short). */
static json_object *metrics_ms(double ms)
{
	return json_object_new_double(round(ms * 1000) / 1000);
}

/* id, timestamp, createdAt and metadata {flag: "true"} of every record. */
static json_object *metrics_record_base(const char *id_prefix, int64_t at_ms, const char *flag)
{
	char id[64], iso[32];
	metrics_make_id(id, sizeof id, id_prefix, at_ms);
	s3db_iso8601(at_ms, iso, sizeof iso);
	json_object *rec = json_object_new_object();
	json_object_object_add(rec, "id", json_object_new_string(id));
	json_object_object_add(rec, "timestamp", json_object_new_string(iso));
	json_object *meta = json_object_new_object();
	json_object_object_add(meta, flag, json_object_new_string("true"));
	json_object_object_add(rec, "metadata", meta);
	json_object_object_add(rec, "createdAt", json_object_new_string_len(iso, 10));
	return rec;
}

static json_object *metrics_counts_record(const char *resource, int op, const metrics_pending *pd,
                                          int global, int64_t at_ms)
{
	json_object *rec = metrics_record_base("metrics", at_ms, global ? "global" : "resource");
	json_object_object_add(rec, "type", json_object_new_string("operation"));
	json_object_object_add(rec, "resourceName", json_object_new_string(resource));
	json_object_object_add(rec, "operation", json_object_new_string(metrics_op_names[op]));
	json_object_object_add(rec, "count", json_object_new_int64((int64_t)pd->count));
	json_object_object_add(rec, "totalTime", metrics_ms(pd->total_ms));
	json_object_object_add(rec, "errors", json_object_new_int64((int64_t)pd->errors));
	json_object_object_add(rec, "avgTime", metrics_ms(pd->count ? pd->total_ms / (double)pd->count
	                                                             : 0));
	return rec;
}

static json_object *metrics_error_record(const metrics_entry *e)
{
	json_object *rec = metrics_record_base("error", e->at_ms, "error");
	char *msg = s3db_asprintf("%s %s%s%s: %s", metrics_op_names[e->op], e->resource,
	                          e->id ? "/" : "", e->id ? e->id : "", s3db_strerror(e->code));
	json_object_object_add(rec, "resourceName", json_object_new_string(e->resource));
	json_object_object_add(rec, "operation", json_object_new_string(metrics_op_names[e->op]));
	json_object_object_add(rec, "error", json_object_new_string(msg ? msg : s3db_strerror(e->code)));
	free(msg);
	return rec;
}

static json_object *metrics_perf_record(const metrics_entry *e)
{
	json_object *rec = metrics_record_base("perf", e->at_ms, "perf");
	json_object_object_add(rec, "resourceName", json_object_new_string(e->resource));
	json_object_object_add(rec, "operation", json_object_new_string(metrics_op_names[e->op]));
	json_object_object_add(rec, "duration", metrics_ms(e->duration_ms));
	return rec;
}

/* ---- flush -------------------------------------------------------------- */

/* Records taken out for one flush, each with its resource. */
typedef struct metrics_batch {
	json_object **records;
	s3db_resource **targets;
	size_t count;
	size_t cap;
} metrics_batch;

static void metrics_batch_add(metrics_batch *b, s3db_resource *target, json_object *rec)
{
	if (b->count == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		json_object **r = realloc(b->records, cap * sizeof *r);
		if (r)
			b->records = r;
		s3db_resource **t = r ? realloc(b->targets, cap * sizeof *t) : NULL;
		if (t)
			b->targets = t;
		if (!r || !t) {
			json_object_put(rec);
			return;
		}
		b->cap = cap;
	}
	b->records[b->count] = rec;
	b->targets[b->count] = target;
	b->count++;
}

/* Moves the pending counts and queues into records.  Under st->lock.
 * Returns how many queue entries were dropped since the last flush. */
static uint64_t metrics_take_pending(metrics_state *st, metrics_batch *b, int64_t now_ms)
{
	for (int op = 0; op < METRICS_OPS; op++) {
		if (st->global_pending[op].count)
			metrics_batch_add(b, st->store_metrics,
			                  metrics_counts_record("global", op, &st->global_pending[op], 1,
			                                        now_ms));
		memset(&st->global_pending[op], 0, sizeof st->global_pending[op]);
	}
	for (size_t i = 0; i < st->nresources; i++) {
		metrics_resource *r = &st->resources[i];
		for (int op = 0; op < METRICS_OPS; op++) {
			if (r->pending[op].count && st->opt.collect_usage)
				metrics_batch_add(b, st->store_metrics,
				                  metrics_counts_record(r->name, op, &r->pending[op], 0,
				                                        now_ms));
			memset(&r->pending[op], 0, sizeof r->pending[op]);
		}
	}
	for (size_t i = 0; i < st->errors_q.count; i++)
		metrics_batch_add(b, st->store_errors, metrics_error_record(&st->errors_q.items[i]));
	for (size_t i = 0; i < st->perf_q.count; i++)
		metrics_batch_add(b, st->store_perf, metrics_perf_record(&st->perf_q.items[i]));
	uint64_t dropped = st->errors_q.dropped + st->perf_q.dropped;
	metrics_queue_free(&st->errors_q);
	metrics_queue_free(&st->perf_q);
	return dropped;
}

int metrics_store_batch_ready(metrics_state *st)
{
	pthread_mutex_lock(&st->lock);
	int ready = st->errors_q.count + st->perf_q.count >= (size_t)st->opt.batch_size;
	pthread_mutex_unlock(&st->lock);
	return ready;
}

size_t metrics_store_flush(metrics_state *st)
{
	if (!st->store_metrics)
		return 0;
	pthread_mutex_lock(&st->flush_lock);
	metrics_batch b = { 0 };
	pthread_mutex_lock(&st->lock);
	uint64_t dropped = metrics_take_pending(st, &b, s3db_now_ms());
	pthread_mutex_unlock(&st->lock);
	if (dropped)
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "flush: %llu error/performance entries were dropped (queue full)",
		             (unsigned long long)dropped);
	size_t written = 0, failed = 0;
	s3db_error first = { 0 };
	metrics_options o;
	metrics_options_current(st, &o);
	for (size_t start = 0; start < b.count; start += (size_t)o.batch_size) {
		size_t end = start + (size_t)o.batch_size;
		if (end > b.count)
			end = b.count;
		for (size_t i = start; i < end; i++) {
			s3db_error err = { 0 };
			if (st->api->insert(b.targets[i], b.records[i], &metrics_plugin_ctx, NULL, &err) ==
			    S3DB_OK) {
				written++;
			} else if (failed++ == 0) {
				first = err;
			}
		}
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_DEBUG, "flush: batch of %zu records written",
		             end - start);
	}
	for (size_t i = 0; i < b.count; i++)
		json_object_put(b.records[i]);
	free(b.records);
	free(b.targets);
	pthread_mutex_unlock(&st->flush_lock);
	if (failed)
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "flush: %zu of %zu metric records not written (first error: %s)", failed,
		             written + failed, first.message);
	return written;
}

/* ---- retention ---------------------------------------------------------- */

typedef struct metrics_old {
	const char *prefix;     /* resource=<R>/partition=byDate/createdAt= */
	const char *cutoff;     /* YYYY-MM-DD: days before it are old */
	strv ids;
} metrics_old;

/* list_keys callback: collects ids of records from days before cutoff. */
static int metrics_collect_old(void *ud, const char *key, uint64_t size)
{
	metrics_old *o = ud;
	if (!s3db_str_starts(key, o->prefix))
		return 0;
	const char *day = key + strlen(o->prefix);
	const char *slash = strchr(day, '/');
	if (!slash || slash - day != 10 || strncmp(day, o->cutoff, 10) >= 0)
		return 0;
	if (strncmp(slash, "/id=", 4) != 0 || !slash[4])
		return 0;
	return strv_push(&o->ids, slash + 4) ? 1 : 0;
}

/* Deletes the old records of one resource; returns how many. */
static size_t metrics_retention_one(metrics_state *st, s3db_resource *res, const char *cutoff)
{
	const s3db_plugin_api *api = st->api;
	char *prefix = s3db_asprintf("resource=%s/partition=byDate/createdAt=",
	                             s3db_resource_name(res));
	if (!prefix)
		return 0;
	metrics_old old = { .prefix = prefix, .cutoff = cutoff };
	strv_init(&old.ids);
	s3db_error err = { 0 };
	char *list_prefix = s3db_asprintf("resource=%s/partition=byDate/", s3db_resource_name(res));
	s3db_code rc = list_prefix ? api->list_keys(api->db(st->plugin), list_prefix,
	                                            metrics_collect_old, &old, &err)
	                           : S3DB_ERR_NOMEM;
	if (rc != S3DB_OK)
		api->log(st->plugin, S3DB_PLUGIN_LOG_WARN, "retention: listing %s: %s", prefix,
		         err.message);
	size_t deleted = 0;
	for (size_t i = 0; i < old.ids.count; i++) {
		s3db_error derr = { 0 };
		s3db_code d = api->delete_record(res, old.ids.items[i], &metrics_plugin_ctx, &derr);
		if (d == S3DB_OK || d == S3DB_ERR_NOT_FOUND)
			deleted += d == S3DB_OK;
		else
			api->log(st->plugin, S3DB_PLUGIN_LOG_WARN, "retention: %s/%s: %s",
			         s3db_resource_name(res), old.ids.items[i], derr.message);
	}
	if (deleted)
		api->log(st->plugin, S3DB_PLUGIN_LOG_INFO,
		         "retention: deleted %zu records of %s created before %s", deleted,
		         s3db_resource_name(res), cutoff);
	strv_free(&old.ids);
	free(prefix);
	free(list_prefix);
	return deleted;
}

size_t metrics_store_retention(metrics_state *st)
{
	if (!st->store_metrics)
		return 0;
	char iso[32];
	metrics_options o;
	metrics_options_current(st, &o);
	int64_t cutoff_ms = s3db_now_ms() - (int64_t)(o.retention_days * 86400000.0);
	s3db_iso8601(cutoff_ms, iso, sizeof iso);
	iso[10] = '\0';
	pthread_mutex_lock(&st->flush_lock);
	size_t n = metrics_retention_one(st, st->store_metrics, iso);
	n += metrics_retention_one(st, st->store_errors, iso);
	n += metrics_retention_one(st, st->store_perf, iso);
	pthread_mutex_unlock(&st->flush_lock);
	return n;
}

/* ---- alerts ------------------------------------------------------------- */

/* Fraction of physical memory the process holds (resident), or -1. */
static double metrics_memory_usage(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages_total = sysconf(_SC_PHYS_PAGES);
	unsigned long size = 0, resident = 0;
	int ok = f && fscanf(f, "%lu %lu", &size, &resident) == 2;
	if (f)
		fclose(f);
	if (!ok || pages_total <= 0)
		return -1;
	return (double)resident / (double)pages_total;
}

/* Logs a threshold crossing once, and its clearing once. */
static void metrics_alert(metrics_state *st, int *on, int above, const char *what, double value,
                          double threshold)
{
	if (above && !*on)
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "alert: threshold exceeded: %s = %.6g (threshold: %.6g)", what, value,
		             threshold);
	else if (!above && *on)
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_INFO,
		             "alert cleared: %s = %.6g (threshold: %.6g)", what, value, threshold);
	*on = above;
}

/* Takes the slow-operation queue out (under the lock) and logs it. */
static void metrics_log_slow(metrics_state *st)
{
	pthread_mutex_lock(&st->lock);
	double threshold_ms = st->opt.slow_query_threshold_ms;
	metrics_queue slow = st->slow_q;
	memset(&st->slow_q, 0, sizeof st->slow_q);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < slow.count; i++)
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "slow query: %s on %s took %.1f ms (threshold: %g ms)",
		             metrics_op_names[slow.items[i].op], slow.items[i].resource,
		             slow.items[i].duration_ms, threshold_ms);
	if (slow.dropped)
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN, "slow query: %llu more not logged",
		             (unsigned long long)slow.dropped);
	metrics_queue_free(&slow);
}

/* Per-resource error rates against alertThresholds.errorRate. */
static void metrics_resource_alerts(metrics_state *st, double limit)
{
	for (size_t i = 0;; i++) {
		pthread_mutex_lock(&st->lock);
		if (i >= st->nresources) {
			pthread_mutex_unlock(&st->lock);
			break;
		}
		metrics_resource *r = &st->resources[i];
		uint64_t total = 0;
		for (int op = 0; op < METRICS_OPS; op++)
			total += r->ops[op].count;
		double rate = total ? (double)r->errors / (double)total : 0;
		int above = total && rate > limit, was = r->alerting;
		r->alerting = above;
		char *name = above != was ? strdup(r->name) : NULL;
		pthread_mutex_unlock(&st->lock);
		if (name && above)
			st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
			             "alert: high error rate: %s has %.1f%% errors (threshold: %.1f%%)",
			             name, rate * 100, limit * 100);
		else if (name)
			st->api->log(st->plugin, S3DB_PLUGIN_LOG_INFO,
			             "alert cleared: error rate of %s is %.1f%% (threshold: %.1f%%)", name,
			             rate * 100, limit * 100);
		free(name);
	}
}

void metrics_store_alerts(metrics_state *st)
{
	metrics_log_slow(st);
	metrics_options current;
	const metrics_options *o = &current;
	uint64_t count = 0, errors = 0;
	double total_ms = 0;
	pthread_mutex_lock(&st->lock);
	current = st->opt;
	for (int op = 0; op < METRICS_OPS; op++) {
		count += st->global[op].count;
		errors += st->global[op].errors;
		total_ms += st->global[op].total_ms;
	}
	pthread_mutex_unlock(&st->lock);
	if (o->alert_error_rate >= 0 && count) {
		double rate = (double)errors / (double)count;
		metrics_alert(st, &st->alert_error_rate_on, rate > o->alert_error_rate, "errorRate", rate,
		              o->alert_error_rate);
		metrics_resource_alerts(st, o->alert_error_rate);
	}
	if (o->alert_avg_response_ms >= 0 && count && o->collect_performance) {
		double avg = total_ms / (double)count;
		metrics_alert(st, &st->alert_avg_on, avg > o->alert_avg_response_ms, "avgResponseTime",
		              avg, o->alert_avg_response_ms);
	}
	if (o->alert_memory_usage >= 0) {
		double mem = metrics_memory_usage();
		if (mem >= 0)
			metrics_alert(st, &st->alert_memory_on, mem > o->alert_memory_usage, "memoryUsage",
			              mem, o->alert_memory_usage);
	}
}
