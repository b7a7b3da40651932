/*
 * bench_db.c — what libs3db costs: S3 requests per operation and bulk
 * throughput, printed as figures (never a pass/fail timing test).
 *
 *   s3db-bench CONNECTION [N]
 *
 * Uses a fresh resource "bench_<pid>" with one partition.  Counts every
 * request through the request hook, so the figures are what the library
 * sent, and prints one line per measurement:
 *   requests <op>: <n> <Command>...
 *   rate <op>: <records/s> (<N> records in <s> s, parallelism <p>)
 * bench/run.sh sets these beside the server's raw request rate.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "s3db.h"

static unsigned long counts[S3DB_CMD__COUNT];
static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;

static void count_request(void *ud, const s3db_request_info *info)
{
	(void)ud;
	pthread_mutex_lock(&counts_lock);
	counts[info->command]++;
	pthread_mutex_unlock(&counts_lock);
}

static void reset_counts(void)
{
	pthread_mutex_lock(&counts_lock);
	memset(counts, 0, sizeof counts);
	pthread_mutex_unlock(&counts_lock);
}

static void print_counts(const char *op)
{
	printf("requests %-22s", op);
	unsigned long total = 0;
	for (int c = 0; c < S3DB_CMD__COUNT; c++) {
		if (counts[c])
			printf(" %lu %s", counts[c], s3db_command_name((s3db_command)c));
		total += counts[c];
	}
	printf("  (total %lu)\n", total);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, s3db_code rc, const s3db_error *err)
{
	fprintf(stderr, "s3db-bench: %s: %s: %s\n", what, s3db_strerror(rc), err->message);
	exit(1);
}

static json_object *record(size_t i)
{
	char buf[256];
	snprintf(buf, sizeof buf,
	         "{\"id\":\"r%06zu\",\"name\":\"record %zu\",\"n\":%zu,\"group\":\"g%zu\","
	         "\"tags\":[\"bench\",\"t%zu\"]}", i, i, i, i % 10, i % 7);
	return json_tokener_parse(buf);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: s3db-bench CONNECTION [N]\n");
		return 2;
	}
	size_t n = argc > 2 ? (size_t)atol(argv[2]) : 1000;
	s3db_options opts = { .parallelism = 16 };
	s3db *db;
	s3db_error err;
	s3db_code rc = s3db_open(argv[1], &opts, &db, &err);
	if (rc)
		die("open", rc, &err);
	s3db_set_request_hook(db, count_request, NULL);
	char name[64];
	snprintf(name, sizeof name, "bench_%d", (int)getpid());
	json_object *def = json_tokener_parse(
		"{\"attributes\":{\"name\":\"string\",\"n\":\"number|integer:true\",\"group\":\"string\","
		"\"tags\":\"array|items:string\"},\"partitions\":{\"byGroup\":{\"fields\":{\"group\":\"string\"}}}}");
	s3db_resource *res;
	if ((rc = s3db_resource_define(db, name, def, &res, &err)))
		die("define", rc, &err);
	json_object_put(def);

	/* requests per operation */
	json_object *r = record(999999), *out = NULL;
	reset_counts();
	if ((rc = s3db_insert(res, r, NULL, &out, &err)))
		die("insert", rc, &err);
	print_counts("insert (1 partition)");
	json_object_put(out);
	reset_counts();
	if ((rc = s3db_get(res, "r999999", NULL, &out, &err)))
		die("get", rc, &err);
	print_counts("get");
	json_object_put(out);
	json_object *patch = json_tokener_parse("{\"group\":\"moved\"}");
	reset_counts();
	if ((rc = s3db_update(res, "r999999", patch, NULL, &out, &err)))
		die("update", rc, &err);
	print_counts("update (moves partition)");
	json_object_put(out);
	json_object_put(patch);
	reset_counts();
	if ((rc = s3db_delete(res, "r999999", NULL, &err)))
		die("delete", rc, &err);
	print_counts("delete");
	json_object_put(r);

	/* bulk */
	json_object *batch = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(batch, record(i));
	reset_counts();
	double t0 = now_s();
	json_object *results = NULL;
	if ((rc = s3db_insert_many(res, batch, NULL, &results, &err)))
		die("insertMany", rc, &err);
	double t1 = now_s();
	printf("rate insertMany: %.0f records/s (%zu records in %.3f s, parallelism %d)\n",
	       (double)n / (t1 - t0), n, t1 - t0, opts.parallelism);
	print_counts("insertMany");
	json_object_put(results);
	json_object_put(batch);

	char **ids = NULL;
	size_t count = 0;
	reset_counts();
	t0 = now_s();
	if ((rc = s3db_list_ids(res, NULL, &ids, &count, &err)))
		die("listIds", rc, &err);
	t1 = now_s();
	printf("rate listIds: %zu ids in %.3f s\n", count, t1 - t0);
	print_counts("listIds");

	reset_counts();
	t0 = now_s();
	if ((rc = s3db_get_many(res, (const char *const *)ids, count, NULL, &results, &err)))
		die("getMany", rc, &err);
	t1 = now_s();
	printf("rate getMany: %.0f records/s (%zu records in %.3f s, parallelism %d)\n",
	       (double)count / (t1 - t0), count, t1 - t0, opts.parallelism);
	print_counts("getMany");
	json_object_put(results);

	reset_counts();
	size_t c2 = 0;
	s3db_list_opts lo = { .partition = "byGroup",
		              .partition_values = json_tokener_parse("{\"group\":\"g3\"}") };
	if ((rc = s3db_count(res, &lo, &c2, NULL, &err)))
		die("count", rc, &err);
	print_counts("count (one partition)");
	json_object_put(lo.partition_values);

	reset_counts();
	t0 = now_s();
	if ((rc = s3db_delete_many(res, (const char *const *)ids, count, NULL, &err)))
		die("deleteMany", rc, &err);
	t1 = now_s();
	printf("rate deleteMany: %.0f records/s (%zu records in %.3f s)\n", (double)count / (t1 - t0),
	       count, t1 - t0);
	print_counts("deleteMany");
	s3db_free_strv(ids);
	s3db_resource_drop(db, name, &err);
	s3db_close(db);
	return 0;
}
