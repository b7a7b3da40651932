/*
 * metrics_report.c — the MetricsPlugin's two views of its aggregates.
 *
 * /.metrics: the guide's getMetrics() structure
 *   performance {averageResponseTime, totalRequests, requestsPerSecond,
 *                slowestOperations [{operation, resource, avgTime, count}]
 *                (10 highest average times), operationTiming {op: {avg,
 *                min, max, total}}}
 *   usage       {resources {name: {inserts, updates, deletes, reads}},
 *                totalOperations, mostActiveResource, peakUsageHour
 *                ("HH:00"), dailyPatterns {"HH:00": operations}}
 *   errors      {total, byType {ValidationError: n, ...}, byResource,
 *                errorRate}
 *   cache       {hitRate, totalHits, totalMisses} (the library's read
 *                cache lookups)
 * Times are milliseconds with 3 decimals; reads are get + list + count.
 *
 * /.metrics.prom: Prometheus text exposition format 0.0.4 for
 * node_exporter's textfile collector — every family has HELP and TYPE
 * before its samples, label values are escaped (\\, \", \n), no
 * timestamps.  Durations are in seconds (Prometheus' base unit):
 *   s3db_operations_total{resource,operation}            counter
 *   s3db_operation_errors_total{resource,operation}      counter
 *   s3db_slow_operations_total{resource,operation}       counter
 *   s3db_operation_duration_seconds{resource,operation}  histogram
 *   s3db_errors_total{resource,type}                     counter
 *   s3db_error_rate                                      gauge
 *   s3db_cache_hits_total, s3db_cache_misses_total       counter
 *   s3db_cache_hit_ratio                                 gauge
 * All aggregates are copied under the lock, rendered outside it.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"
#include "util.h"

static const char *const metrics_error_types[S3DB_ERR__COUNT] = {
	[S3DB_OK] = "NoError",
	[S3DB_ERR_NOT_FOUND] = "NotFoundError",
	[S3DB_ERR_EXISTS] = "AlreadyExistsError",
	[S3DB_ERR_ACCESS_DENIED] = "PermissionError",
	[S3DB_ERR_SIGNATURE] = "SignatureError",
	[S3DB_ERR_METADATA_TOO_LARGE] = "MetadataLimitError",
	[S3DB_ERR_PRECONDITION] = "PreconditionError",
	[S3DB_ERR_NETWORK] = "NetworkError",
	[S3DB_ERR_TIMEOUT] = "TimeoutError",
	[S3DB_ERR_SERVER] = "ServerError",
	[S3DB_ERR_NO_SUCH_BUCKET] = "NoSuchBucketError",
	[S3DB_ERR_BAD_REQUEST] = "BadRequestError",
	[S3DB_ERR_INVALID_ARG] = "InvalidArgumentError",
	[S3DB_ERR_INVALID_JSON] = "InvalidJsonError",
	[S3DB_ERR_VALIDATION] = "ValidationError",
	[S3DB_ERR_BAD_ID] = "InvalidIdError",
	[S3DB_ERR_BAD_CONNSTR] = "ConnectionStringError",
	[S3DB_ERR_CORRUPT] = "CorruptDataError",
	[S3DB_ERR_NO_RESOURCE] = "ResourceNotFoundError",
	[S3DB_ERR_CRYPTO] = "CryptoError",
	[S3DB_ERR_IO] = "IOError",
	[S3DB_ERR_NOMEM] = "OutOfMemoryError",
	[S3DB_ERR_UNSUPPORTED] = "UnsupportedError",
	[S3DB_ERR_INTERNAL] = "InternalError",
};

const char *metrics_error_type(s3db_code code)
{
	if ((int)code < 0 || code >= S3DB_ERR__COUNT || !metrics_error_types[code])
		return "UnknownError";
	return metrics_error_types[code];
}

/* A copy of the aggregates, taken under the lock. */
typedef struct metrics_view {
	metrics_options opt;
	metrics_timing global[METRICS_OPS];
	metrics_resource *resources;
	size_t nresources;
	uint64_t errors_by_code[S3DB_ERR__COUNT];
	uint64_t hourly[24];
	int64_t started_ms;
	uint64_t cache_hits;
	uint64_t cache_misses;
} metrics_view;

/* Copies the aggregates (resource names duplicated).  0, or -1 when out
 * of memory. */
static int metrics_view_take(metrics_state *st, metrics_view *v)
{
	memset(v, 0, sizeof *v);
	st->api->cache_counts(st->api->db(st->plugin), &v->cache_hits, &v->cache_misses);
	int rc = 0;
	pthread_mutex_lock(&st->lock);
	v->opt = st->opt;
	memcpy(v->global, st->global, sizeof v->global);
	memcpy(v->errors_by_code, st->errors_by_code, sizeof v->errors_by_code);
	memcpy(v->hourly, st->hourly, sizeof v->hourly);
	v->started_ms = st->started_ms;
	if (st->nresources) {
		v->resources = calloc(st->nresources, sizeof *v->resources);
		if (!v->resources)
			rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < st->nresources; i++) {
		v->resources[i] = st->resources[i];
		if (!(v->resources[i].name = strdup(st->resources[i].name)))
			rc = -1;
		else
			v->nresources++;
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static void metrics_view_free(metrics_view *v)
{
	for (size_t i = 0; i < v->nresources; i++)
		free(v->resources[i].name);
	free(v->resources);
}

/* A number with at most 3 decimals, printed without float noise. */
static json_object *metrics_num(double d)
{
	char buf[64];
	double r = round(d * 1000) / 1000;
	if (r == floor(r) && fabs(r) < 9e15)
		return json_object_new_int64((int64_t)r);
	snprintf(buf, sizeof buf, "%.3f", r);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '0')
		buf[--n] = '\0';
	return json_object_new_double_s(r, buf);
}

static json_object *metrics_rate(uint64_t part, uint64_t whole)
{
	char buf[64];
	double r = whole ? (double)part / (double)whole : 0;
	snprintf(buf, sizeof buf, "%.4g", r);
	return json_object_new_double_s(r, buf);
}

static void metrics_timing_totals(const metrics_timing *ops, uint64_t *count, uint64_t *errors,
                                  double *total_ms)
{
	*count = *errors = 0;
	*total_ms = 0;
	for (int op = 0; op < METRICS_OPS; op++) {
		*count += ops[op].count;
		*errors += ops[op].errors;
		*total_ms += ops[op].total_ms;
	}
}

/* slowestOperations: the 10 (resource, operation) pairs with the highest
 * average time. */
static json_object *metrics_slowest(const metrics_view *v)
{
	json_object *arr = json_object_new_array();
	size_t n = v->nresources * METRICS_OPS;
	unsigned char *taken = calloc(n ? n : 1, 1);
	for (int k = 0; taken && k < 10; k++) {
		size_t best = n;
		double best_avg = -1;
		for (size_t i = 0; i < n; i++) {
			const metrics_timing *t = &v->resources[i / METRICS_OPS].ops[i % METRICS_OPS];
			double avg = t->count ? t->total_ms / (double)t->count : 0;
			if (!taken[i] && t->count && avg > best_avg) {
				best = i;
				best_avg = avg;
			}
		}
		if (best == n)
			break;
		taken[best] = 1;
		const metrics_timing *t = &v->resources[best / METRICS_OPS].ops[best % METRICS_OPS];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "operation", json_object_new_string(metrics_op_names[best %
		                                                                           METRICS_OPS]));
		json_object_object_add(o, "resource",
		                       json_object_new_string(v->resources[best / METRICS_OPS].name));
		json_object_object_add(o, "avgTime", metrics_num(best_avg));
		json_object_object_add(o, "count", json_object_new_int64((int64_t)t->count));
		json_object_array_add(arr, o);
	}
	free(taken);
	return arr;
}

static json_object *metrics_performance_json(const metrics_view *v)
{
	uint64_t count, errors;
	double total_ms;
	metrics_timing_totals(v->global, &count, &errors, &total_ms);
	int perf = v->opt.collect_performance;
	double secs = (double)(s3db_now_ms() - v->started_ms) / 1000;
	json_object *p = json_object_new_object();
	json_object_object_add(p, "averageResponseTime",
	                       metrics_num(perf && count ? total_ms / (double)count : 0));
	json_object_object_add(p, "totalRequests", json_object_new_int64((int64_t)count));
	json_object_object_add(p, "requestsPerSecond",
	                       metrics_num(secs > 0 ? (double)count / secs : 0));
	json_object_object_add(p, "slowestOperations",
	                       perf ? metrics_slowest(v) : json_object_new_array());
	json_object *timing = json_object_new_object();
	for (int op = 0; perf && op < METRICS_OPS; op++) {
		const metrics_timing *t = &v->global[op];
		if (!t->count)
			continue;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "avg", metrics_num(t->total_ms / (double)t->count));
		json_object_object_add(o, "min", metrics_num(t->min_ms));
		json_object_object_add(o, "max", metrics_num(t->max_ms));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)t->count));
		json_object_object_add(timing, metrics_op_names[op], o);
	}
	json_object_object_add(p, "operationTiming", timing);
	return p;
}

static json_object *metrics_usage_json(const metrics_view *v)
{
	json_object *u = json_object_new_object();
	json_object *resources = json_object_new_object();
	uint64_t total = 0, most = 0;
	const char *most_active = NULL;
	for (size_t i = 0; v->opt.collect_usage && i < v->nresources; i++) {
		const metrics_timing *ops = v->resources[i].ops;
		uint64_t reads = ops[3].count + ops[4].count + ops[5].count;
		uint64_t all = ops[0].count + ops[1].count + ops[2].count + reads;
		json_object *r = json_object_new_object();
		json_object_object_add(r, "inserts", json_object_new_int64((int64_t)ops[0].count));
		json_object_object_add(r, "updates", json_object_new_int64((int64_t)ops[1].count));
		json_object_object_add(r, "deletes", json_object_new_int64((int64_t)ops[2].count));
		json_object_object_add(r, "reads", json_object_new_int64((int64_t)reads));
		json_object_object_add(resources, v->resources[i].name, r);
		total += all;
		if (all > most) {
			most = all;
			most_active = v->resources[i].name;
		}
	}
	json_object_object_add(u, "resources", resources);
	json_object_object_add(u, "totalOperations", json_object_new_int64((int64_t)total));
	json_object_object_add(u, "mostActiveResource",
	                       most_active ? json_object_new_string(most_active) : NULL);
	json_object *daily = json_object_new_object();
	int peak = -1;
	for (int h = 0; h < 24; h++) {
		char hour[16];
		snprintf(hour, sizeof hour, "%02d:00", h);
		json_object_object_add(daily, hour, json_object_new_int64((int64_t)v->hourly[h]));
		if (v->hourly[h] && (peak < 0 || v->hourly[h] > v->hourly[peak]))
			peak = h;
	}
	char peak_hour[16];
	snprintf(peak_hour, sizeof peak_hour, "%02d:00", peak < 0 ? 0 : peak);
	json_object_object_add(u, "peakUsageHour", peak < 0 ? NULL : json_object_new_string(peak_hour));
	json_object_object_add(u, "dailyPatterns", daily);
	return u;
}

static json_object *metrics_errors_json(const metrics_view *v)
{
	uint64_t count, errors;
	double total_ms;
	metrics_timing_totals(v->global, &count, &errors, &total_ms);
	json_object *e = json_object_new_object();
	json_object_object_add(e, "total", json_object_new_int64((int64_t)errors));
	json_object *by_type = json_object_new_object();
	for (int c = 1; c < S3DB_ERR__COUNT; c++)
		if (v->errors_by_code[c])
			json_object_object_add(by_type, metrics_error_type((s3db_code)c),
			                       json_object_new_int64((int64_t)v->errors_by_code[c]));
	json_object_object_add(e, "byType", by_type);
	json_object *by_res = json_object_new_object();
	for (size_t i = 0; i < v->nresources; i++)
		if (v->resources[i].errors)
			json_object_object_add(by_res, v->resources[i].name,
			                       json_object_new_int64((int64_t)v->resources[i].errors));
	json_object_object_add(e, "byResource", by_res);
	json_object_object_add(e, "errorRate", metrics_rate(errors, count));
	return e;
}

json_object *metrics_report_json(metrics_state *st)
{
	metrics_view v;
	if (metrics_view_take(st, &v) != 0) {
		metrics_view_free(&v);
		return NULL;
	}
	json_object *out = json_object_new_object();
	json_object_object_add(out, "performance", metrics_performance_json(&v));
	json_object_object_add(out, "usage", metrics_usage_json(&v));
	json_object_object_add(out, "errors", metrics_errors_json(&v));
	json_object *cache = json_object_new_object();
	json_object_object_add(cache, "hitRate", metrics_rate(v.cache_hits, v.cache_hits + v.cache_misses));
	json_object_object_add(cache, "totalHits", json_object_new_int64((int64_t)v.cache_hits));
	json_object_object_add(cache, "totalMisses", json_object_new_int64((int64_t)v.cache_misses));
	json_object_object_add(out, "cache", cache);
	metrics_view_free(&v);
	return out;
}

/* ---- Prometheus --------------------------------------------------------- */

/* A label value with \, " and newline escaped. */
static void prom_label_value(sbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			sbuf_puts(b, "\\\\");
		else if (*s == '"')
			sbuf_puts(b, "\\\"");
		else if (*s == '\n')
			sbuf_puts(b, "\\n");
		else
			sbuf_putc(b, *s);
	}
}

static void prom_family(sbuf *b, const char *name, const char *type, const char *help)
{
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{resource="..",operation=".."[,le=".."]} */
static void prom_series(sbuf *b, const char *name, const char *resource, const char *op,
                        const char *le)
{
	sbuf_printf(b, "%s{resource=\"", name);
	prom_label_value(b, resource);
	sbuf_printf(b, "\",operation=\"%s\"", op);
	if (le)
		sbuf_printf(b, ",le=\"%s\"", le);
	sbuf_puts(b, "}");
}

/* One counter family over every (resource, operation) with operations;
 * field picks the counted value. */
static void prom_op_counter(sbuf *b, const metrics_view *v, const char *name, const char *help,
                            size_t field_offset)
{
	prom_family(b, name, "counter", help);
	for (size_t i = 0; i < v->nresources; i++)
		for (int op = 0; op < METRICS_OPS; op++) {
			const metrics_timing *t = &v->resources[i].ops[op];
			if (!t->count)
				continue;
			prom_series(b, name, v->resources[i].name, metrics_op_names[op], NULL);
			sbuf_printf(b, " %llu\n",
			            (unsigned long long)*(const uint64_t *)((const char *)t + field_offset));
		}
}

static void prom_histogram(sbuf *b, const metrics_view *v)
{
	const char *name = "s3db_operation_duration_seconds";
	prom_family(b, name, "histogram", "Duration of database operations in seconds.");
	char bucket[64], le[32];
	snprintf(bucket, sizeof bucket, "%s_bucket", name);
	for (size_t i = 0; i < v->nresources; i++)
		for (int op = 0; op < METRICS_OPS; op++) {
			const metrics_timing *t = &v->resources[i].ops[op];
			const char *res = v->resources[i].name, *opn = metrics_op_names[op];
			if (!t->count)
				continue;
			uint64_t cumulative = 0;
			for (int k = 0; k <= METRICS_BUCKETS; k++) {
				cumulative += t->buckets[k];
				if (k < METRICS_BUCKETS)
					snprintf(le, sizeof le, "%g", metrics_bucket_bounds_ms[k] / 1000);
				else
					snprintf(le, sizeof le, "+Inf");
				prom_series(b, bucket, res, opn, le);
				sbuf_printf(b, " %llu\n", (unsigned long long)cumulative);
			}
			snprintf(bucket, sizeof bucket, "%s_sum", name);
			prom_series(b, bucket, res, opn, NULL);
			sbuf_printf(b, " %.6f\n", t->total_ms / 1000);
			snprintf(bucket, sizeof bucket, "%s_count", name);
			prom_series(b, bucket, res, opn, NULL);
			sbuf_printf(b, " %llu\n", (unsigned long long)cumulative);
			snprintf(bucket, sizeof bucket, "%s_bucket", name);
		}
}

/* s3db_errors_total{resource,type}: failed operations by resource and
 * error type. */
static void prom_errors(sbuf *b, const metrics_view *v)
{
	prom_family(b, "s3db_errors_total", "counter", "Failed operations by resource and error type.");
	for (size_t i = 0; i < v->nresources; i++)
		for (int c = 1; c < S3DB_ERR__COUNT; c++) {
			if (!v->resources[i].errors_by_code[c])
				continue;
			sbuf_puts(b, "s3db_errors_total{resource=\"");
			prom_label_value(b, v->resources[i].name);
			sbuf_printf(b, "\",type=\"%s\"} %llu\n", metrics_error_type((s3db_code)c),
			            (unsigned long long)v->resources[i].errors_by_code[c]);
		}
}

char *metrics_report_prom(metrics_state *st, size_t *len)
{
	metrics_view v;
	if (metrics_view_take(st, &v) != 0) {
		metrics_view_free(&v);
		return NULL;
	}
	sbuf b;
	sbuf_init(&b);
	prom_op_counter(&b, &v, "s3db_operations_total", "Database operations recorded (sampled).",
	                offsetof(metrics_timing, count));
	prom_op_counter(&b, &v, "s3db_operation_errors_total", "Database operations that failed.",
	                offsetof(metrics_timing, errors));
	if (v.opt.collect_performance) {
		prom_op_counter(&b, &v, "s3db_slow_operations_total",
		                "Operations slower than slowQueryThreshold.",
		                offsetof(metrics_timing, slow));
		prom_histogram(&b, &v);
	}
	prom_errors(&b, &v);
	uint64_t count, errors;
	double total_ms;
	metrics_timing_totals(v.global, &count, &errors, &total_ms);
	prom_family(&b, "s3db_error_rate", "gauge", "Failed operations / operations.");
	sbuf_printf(&b, "s3db_error_rate %.6g\n", count ? (double)errors / (double)count : 0.0);
	prom_family(&b, "s3db_cache_hits_total", "counter", "Read-cache lookups that hit.");
	sbuf_printf(&b, "s3db_cache_hits_total %llu\n", (unsigned long long)v.cache_hits);
	prom_family(&b, "s3db_cache_misses_total", "counter", "Read-cache lookups that missed.");
	sbuf_printf(&b, "s3db_cache_misses_total %llu\n", (unsigned long long)v.cache_misses);
	uint64_t lookups = v.cache_hits + v.cache_misses;
	prom_family(&b, "s3db_cache_hit_ratio", "gauge", "Read-cache hits / lookups.");
	sbuf_printf(&b, "s3db_cache_hit_ratio %.6g\n",
	            lookups ? (double)v.cache_hits / (double)lookups : 0.0);
	metrics_view_free(&v);
	if (b.oom) {
		sbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return sbuf_steal(&b);
}
