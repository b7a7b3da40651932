/*
 * metrics.h — the MetricsPlugin's shared state (internal to plugins/metrics*.c).
 *
 * Split by concern:
 *   metrics.c         options, lifecycle, the event listener (in-memory
 *                     aggregates only) and the background thread's loop
 *   metrics_report.c  /.metrics (the guide's getMetrics() JSON) and
 *                     /.metrics.prom (Prometheus text format 0.0.4)
 *   metrics_store.c   persistence: resources plg_metrics, plg_metrics_errors,
 *                     plg_metrics_performance (spec 6.5), flush, retention,
 *                     and the alerts the thread writes to the log
 *
 * Locking: every aggregate below `lock` is read and written under it; the
 * listener holds it for a few arithmetic updates only.  The options `opt`
 * are written under `lock` too (live reconfiguration swaps the whole set
 * at once): code outside the lock reads them through
 * metrics_options_current, so it never sees half of an old and half of a
 * new set.  The resource names in `opt` never change once set up.  I/O (storage,
 * logging) happens on the plugin thread or in a file callback, never under
 * `lock`.  flush_lock serialises flushes (thread vs. a "flush" written to
 * /.metrics).
 */
#ifndef S3DB_PLUGINS_METRICS_H
#define S3DB_PLUGINS_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <json-c/json.h>
#include "s3db_plugin.h"

/* Operations of the event bus, in event-type order (type / 2). */
enum { METRICS_OPS = S3DB_EV__COUNT / 2 };
extern const char *const metrics_op_names[METRICS_OPS];

/* Histogram upper bounds in milliseconds (the Prometheus output shows
 * them in seconds); counts above the last bound go to the +Inf bucket. */
enum { METRICS_BUCKETS = 14 };
extern const double metrics_bucket_bounds_ms[METRICS_BUCKETS];

typedef struct metrics_options {
	int enabled;
	int collect_performance;
	int collect_errors;
	int collect_usage;
	double retention_days;
	double flush_interval_ms;      /* 0: no periodic flush */
	double sample_rate;            /* 0.0 .. 1.0 */
	int track_slow_queries;
	double slow_query_threshold_ms;
	int batch_size;
	/* alertThresholds; < 0 when not set */
	double alert_error_rate;
	double alert_avg_response_ms;
	double alert_memory_usage;
	/* resource names (spec 6.5 by default) */
	char *res_metrics;
	char *res_errors;
	char *res_performance;
} metrics_options;

/* Timing and outcome of one operation kind (global or per resource). */
typedef struct metrics_timing {
	uint64_t count;
	uint64_t errors;
	uint64_t slow;
	double total_ms;
	double min_ms;
	double max_ms;
	uint64_t buckets[METRICS_BUCKETS + 1];   /* not cumulative; last: +Inf */
} metrics_timing;

/* What happened since the last flush (one plg_metrics record each). */
typedef struct metrics_pending {
	uint64_t count;
	uint64_t errors;
	double total_ms;
} metrics_pending;

typedef struct metrics_resource {
	char *name;
	metrics_timing ops[METRICS_OPS];
	metrics_pending pending[METRICS_OPS];
	uint64_t errors;
	uint64_t errors_by_code[S3DB_ERR__COUNT];
	int alerting;                 /* thread only: error-rate alert raised */
} metrics_resource;

/* One error or performance entry waiting for the flush, or one slow
 * operation waiting for its log line. */
typedef struct metrics_entry {
	char *resource;
	int op;
	s3db_code code;               /* errors */
	char *id;                     /* errors: record id or NULL */
	double duration_ms;
	int64_t at_ms;
} metrics_entry;

typedef struct metrics_queue {
	metrics_entry *items;
	size_t count;
	size_t cap;
	uint64_t dropped;
} metrics_queue;

typedef struct metrics_state {
	s3db_plugin *plugin;
	const s3db_plugin_api *api;
	metrics_options opt;          /* under lock (see above)           */
	int active;                   /* listener, thread and store set up */
	_Atomic uint64_t seen;        /* operations offered to the sampler */

	pthread_mutex_t lock;
	metrics_timing global[METRICS_OPS];
	metrics_pending global_pending[METRICS_OPS];
	metrics_resource *resources;
	size_t nresources;
	size_t capresources;
	uint64_t errors_by_code[S3DB_ERR__COUNT];
	uint64_t hourly[24];
	metrics_queue errors_q;
	metrics_queue perf_q;
	metrics_queue slow_q;
	int64_t started_ms;

	pthread_mutex_t flush_lock;
	s3db_resource *store_metrics;  /* NULL: persistence off */
	s3db_resource *store_errors;
	s3db_resource *store_perf;
	int alert_error_rate_on;       /* thread only */
	int alert_avg_on;
	int alert_memory_on;
} metrics_state;

/* The caller context of the plugin's own operations: the listener skips
 * events carrying it. */
extern const s3db_ctx metrics_plugin_ctx;

/* The queue cap: entries beyond it are counted in `dropped`. */
enum { METRICS_QUEUE_MAX = 100000 };
void metrics_queue_free(metrics_queue *q);
/* A copy of the running options, taken under st->lock.  Its resource
 * names are borrowed from st (they never change while it runs). */
void metrics_options_current(metrics_state *st, metrics_options *out);

/* ---- metrics_report.c ---- */
/* The guide's getMetrics() structure (new object; caller puts it). */
json_object *metrics_report_json(metrics_state *st);
/* The Prometheus exposition text (malloc'd, caller frees); NULL on OOM. */
char *metrics_report_prom(metrics_state *st, size_t *len);
/* "ValidationError", "NotFoundError", ... for a result code. */
const char *metrics_error_type(s3db_code code);

/* ---- metrics_store.c ---- */
/* Finds or defines the three resources (spec 6.5 definitions).  On a
 * database that cannot take them (s3db.js 7.x, read-only) persistence is
 * turned off with a log line and S3DB_OK is returned. */
s3db_code metrics_store_open(metrics_state *st, s3db_error *err);
/* Writes everything pending, batch_size records at a time.  Returns the
 * number of records written; failures are logged. */
size_t metrics_store_flush(metrics_state *st);
/* 1 when at least batch_size entries wait for the flush. */
int metrics_store_batch_ready(metrics_state *st);
/* Deletes records whose createdAt is older than retentionDays, found
 * through each resource's byDate partition.  Returns how many. */
size_t metrics_store_retention(metrics_state *st);
/* Logs slow operations queued by the listener and raises / clears the
 * alertThresholds alerts. */
void metrics_store_alerts(metrics_state *st);

#endif
