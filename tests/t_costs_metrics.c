/*
 * t_costs_metrics.c — CostsPlugin and MetricsPlugin through the library,
 * on the local backend and on the S3 test server behind the strict front.
 *
 * Costs are checked against two independent counts of the same requests:
 * the core's own request hook (s3db_set_request_hook) and, on S3, the
 * front's request log (what reached the server).  Metrics are checked
 * against a workload whose outcome is known operation by operation (a
 * refused write and a missing record included).  The Prometheus text is
 * checked by a strict parser written here (promtool is not installed):
 * metric and label syntax, escapes, HELP/TYPE before samples, one block
 * per family, no timestamps, histogram buckets increasing and ending with
 * le="+Inf" equal to _count.  The parser has its own case feeding it
 * broken texts, so a lenient parser would fail.  Options changed while the
 * MetricsPlugin runs (s3db_plugin_reconfigure, what the daemon's config
 * watcher calls) take effect at once or are refused whole.
 */
#include <atf-c.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "db.h"
#include "s3db_plugin.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

extern const s3db_plugin_def costs_plugin_def;
extern const s3db_plugin_def metrics_plugin_def;

/* ---- context ------------------------------------------------------------ */

typedef struct cmt {
	int is_file;
	char *connstr;
	s3db *db;
	s3db_resource *users;
	pthread_mutex_t log_lock;
	sbuf log;
	uint64_t core_counts[S3DB_CMD__COUNT];   /* the core's request hook */
	pthread_mutex_t count_lock;
} cmt;

static void capture_log(void *ud, s3db_plugin_log_level level, const char *plugin,
                        const char *message)
{
	cmt *t = ud;
	pthread_mutex_lock(&t->log_lock);
	sbuf_printf(&t->log, "%s: %s\n", plugin, message);
	pthread_mutex_unlock(&t->log_lock);
}

static int log_has(cmt *t, const char *needle)
{
	pthread_mutex_lock(&t->log_lock);
	int found = t->log.data && strstr(t->log.data, needle) != NULL;
	pthread_mutex_unlock(&t->log_lock);
	return found;
}

/* Waits up to 10 s for a log line containing needle. */
static int log_wait(cmt *t, const char *needle)
{
	for (int i = 0; i < 200; i++) {
		if (log_has(t, needle))
			return 1;
		usleep(50000);
	}
	return 0;
}

static void count_request(void *ud, const s3db_request_info *info)
{
	cmt *t = ud;
	pthread_mutex_lock(&t->count_lock);
	t->core_counts[info->command] += info->attempts > 0 ? (uint64_t)info->attempts : 1;
	pthread_mutex_unlock(&t->count_lock);
}

static s3db *open_db(cmt *t)
{
	s3db *db = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_open(t->connstr, NULL, &db, &err), &err);
	s3db_plugin_set_logger(db, capture_log, t);
	s3db_set_request_hook(db, count_request, t);
	return db;
}

/* Opens a fresh database with a resource users {name required, age}. */
static void t_init(cmt *t, int is_file, const char *name)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->log_lock, NULL);
	pthread_mutex_init(&t->count_lock, NULL);
	sbuf_init(&t->log);
	t->is_file = is_file;
	t->connstr = is_file ? testlib_file_connstr() : testlib_s3_connstr(testlib_unique_prefix(name));
	t->db = open_db(t);
	s3db_error err;
	s3db_error_clear(&err);
	json_object *def = json_tokener_parse("{\"attributes\":{\"name\":\"string|required\","
	                                      "\"age\":\"number|optional\"},\"timestamps\":false}");
	CHECK_OK(s3db_resource_define(t->db, "users", def, &t->users, &err), &err);
	json_object_put(def);
}

static void t_done(cmt *t)
{
	if (t->db)
		s3db_close(t->db);
	free(t->connstr);
	sbuf_free(&t->log);
}

static s3db_plugin *add_plugin(cmt *t, const s3db_plugin_def *def, const char *options)
{
	json_object *o = json_tokener_parse(options);
	ATF_REQUIRE_MSG(o != NULL, "bad test options %s", options);
	s3db_plugin *p = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_plugin_add(t->db, def, o, "t_costs_metrics", &p, &err), &err);
	json_object_put(o);
	CHECK_OK(s3db_plugins_start(t->db, &err), &err);
	return p;
}

typedef struct file_find {
	const char *path;
	s3db_file_read_fn read_fn;
	s3db_file_write_fn write_fn;
	void *ud;
} file_find;

static int find_file(void *ud, const char *path, s3db_file_read_fn read_fn,
                     s3db_file_write_fn write_fn, void *file_ud, int listed)
{
	file_find *f = ud;
	if (strcmp(path, f->path) != 0)
		return 0;
	f->read_fn = read_fn;
	f->write_fn = write_fn;
	f->ud = file_ud;
	return 1;
}

static file_find lookup_file(cmt *t, const char *path)
{
	file_find f = { .path = path };
	s3db_plugin_files(t->db, find_file, &f);
	ATF_REQUIRE_MSG(f.read_fn != NULL, "no virtual file %s", path);
	return f;
}

/* The content of a plugin's virtual file (caller frees). */
static char *read_vfile(cmt *t, const char *path)
{
	file_find f = lookup_file(t, path);
	char *text = NULL;
	size_t len = 0;
	int rc = f.read_fn(f.ud, NULL, &text, &len);
	ATF_REQUIRE_EQ_MSG(0, rc, "reading %s: %s", path, strerror(-rc));
	ATF_REQUIRE(text != NULL && strlen(text) == len);
	return text;
}

static json_object *read_vjson(cmt *t, const char *path)
{
	char *text = read_vfile(t, path);
	json_object *o = json_tokener_parse(text);
	ATF_REQUIRE_MSG(o != NULL, "%s is not JSON:\n%s", path, text);
	free(text);
	return o;
}

static int write_vfile(cmt *t, const char *path, const char *data)
{
	file_find f = lookup_file(t, path);
	if (!f.write_fn)
		return -EACCES;
	return f.write_fn(f.ud, data, strlen(data));
}

/* A value at a dotted path of a JSON object (NULL when absent). */
static json_object *jpath(json_object *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *save = NULL, *part = strtok_r(buf, ".", &save); part && o;
	     part = strtok_r(NULL, ".", &save))
		if (!json_object_object_get_ex(o, part, &o))
			return NULL;
	return o;
}

static int64_t jint(json_object *o, const char *path)
{
	json_object *v = jpath(o, path);
	ATF_REQUIRE_MSG(v != NULL, "missing %s in %s", path, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

static double jnum(json_object *o, const char *path)
{
	json_object *v = jpath(o, path);
	ATF_REQUIRE_MSG(v != NULL, "missing %s in %s", path, json_object_to_json_string(o));
	return json_object_get_double(v);
}

/* ---- workloads ---------------------------------------------------------- */

static void insert_user(cmt *t, const char *id, const char *name)
{
	char text[128];
	snprintf(text, sizeof text, "{\"id\":\"%s\",\"name\":\"%s\",\"age\":30}", id, name);
	json_object *rec = json_tokener_parse(text);
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_insert(t->users, rec, NULL, NULL, &err), &err);
	json_object_put(rec);
}

static void get_user(cmt *t, const char *id, s3db_code expected)
{
	json_object *out = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code rc = s3db_get(t->users, id, NULL, &out, &err);
	ATF_REQUIRE_EQ_MSG(expected, rc, "get %s: %s", id, err.message);
	json_object_put(out);
}

/* insert k, get m, delete d, list once. */
static void costs_workload(cmt *t, int k, int m, int d)
{
	char id[32];
	for (int i = 0; i < k; i++) {
		snprintf(id, sizeof id, "u%d", i);
		insert_user(t, id, "Ann");
	}
	for (int i = 0; i < m; i++) {
		snprintf(id, sizeof id, "u%d", i % k);
		get_user(t, id, S3DB_OK);
	}
	s3db_error err;
	s3db_error_clear(&err);
	for (int i = 0; i < d; i++) {
		snprintf(id, sizeof id, "u%d", i);
		CHECK_OK(s3db_delete(t->users, id, NULL, &err), &err);
	}
	json_object *list = NULL;
	CHECK_OK(s3db_list(t->users, NULL, NULL, &list, &err), &err);
	ATF_REQUIRE_EQ((size_t)(k - d), json_object_array_length(list));
	json_object_put(list);
}

static const char *const command_events[S3DB_CMD__COUNT] = {
	[S3DB_CMD_PUT_OBJECT] = "events.PutObjectCommand",
	[S3DB_CMD_GET_OBJECT] = "events.GetObjectCommand",
	[S3DB_CMD_HEAD_OBJECT] = "events.HeadObjectCommand",
	[S3DB_CMD_DELETE_OBJECT] = "events.DeleteObjectCommand",
	[S3DB_CMD_DELETE_OBJECTS] = "events.DeleteObjectsCommand",
	[S3DB_CMD_LIST_OBJECTS_V2] = "events.ListObjectsV2Command",
	[S3DB_CMD_COPY_OBJECT] = "events.CopyObjectCommand",
};

/* The guide's structure adds up: requests by class from events, total
 * from the prices. */
static void check_costs_consistent(json_object *c)
{
	int64_t put = jint(c, "events.PutObjectCommand") + jint(c, "events.CopyObjectCommand");
	int64_t del = jint(c, "events.DeleteObjectCommand") + jint(c, "events.DeleteObjectsCommand");
	ATF_CHECK_EQ(put, jint(c, "requests.put"));
	ATF_CHECK_EQ(jint(c, "events.GetObjectCommand"), jint(c, "requests.get"));
	ATF_CHECK_EQ(jint(c, "events.HeadObjectCommand"), jint(c, "requests.head"));
	ATF_CHECK_EQ(del, jint(c, "requests.delete"));
	ATF_CHECK_EQ(jint(c, "events.ListObjectsV2Command"), jint(c, "requests.list"));
	int64_t total = jint(c, "requests.put") + jint(c, "requests.get") + jint(c, "requests.head") +
	                jint(c, "requests.delete") + jint(c, "requests.list");
	ATF_CHECK_EQ(total, jint(c, "requests.total"));
	ATF_CHECK_EQ(total, jint(c, "events.total"));
	const char *classes[] = { "put", "get", "head", "delete", "list" };
	double cost = 0;
	for (int i = 0; i < 5; i++) {
		char rq[32], pr[32];
		snprintf(rq, sizeof rq, "requests.%s", classes[i]);
		snprintf(pr, sizeof pr, "prices.%s", classes[i]);
		cost += (double)jint(c, rq) * jnum(c, pr);
	}
	ATF_CHECK_MSG(fabs(cost - jnum(c, "total")) < 1e-12, "total %g, sum of classes %g",
	              jnum(c, "total"), cost);
}

/* ---- costs -------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(costs_equal_the_front_log_and_the_core_counts_on_s3);
ATF_TC_BODY(costs_equal_the_front_log_and_the_core_counts_on_s3, tc)
{
	cmt t;
	t_init(&t, 0, "costs_front");
	add_plugin(&t, &costs_plugin_def, "{}");
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.costs", "reset"));
	memset(t.core_counts, 0, sizeof t.core_counts);
	ATF_REQUIRE_EQ(0, testlib_front_clear_log());
	costs_workload(&t, 4, 6, 2);
	json_object *c = read_vjson(&t, "/.costs");
	json_object *log = testlib_front_log();
	ATF_REQUIRE(log != NULL);
	int64_t front[S3DB_CMD__COUNT] = { 0 };
	size_t n = json_object_array_length(log);
	for (size_t i = 0; i < n; i++) {
		json_object *cmd = jpath(json_object_array_get_idx(log, i), "command");
		const char *name = cmd ? json_object_get_string(cmd) : "";
		int found = 0;
		for (int k = 0; k < S3DB_CMD__COUNT; k++)
			if (strcmp(name, s3db_command_name((s3db_command)k)) == 0) {
				front[k]++;
				found = 1;
			}
		ATF_CHECK_MSG(found, "front logged a command the costs cannot name: %s", name);
	}
	for (int k = 0; k < S3DB_CMD__COUNT; k++) {
		ATF_CHECK_EQ_MSG(front[k], jint(c, command_events[k]), "%s: front %lld, costs %lld",
		                 command_events[k], (long long)front[k],
		                 (long long)jint(c, command_events[k]));
		ATF_CHECK_EQ_MSG((int64_t)t.core_counts[k], jint(c, command_events[k]),
		                 "%s: core %llu", command_events[k],
		                 (unsigned long long)t.core_counts[k]);
	}
	ATF_CHECK_EQ((int64_t)n, jint(c, "requests.total"));
	/* the workload's own floor: 4 inserts are PUTs, 6 gets are GETs or
	 * HEADs (a record without a body is read with HEAD) */
	ATF_CHECK(jint(c, "requests.put") >= 4);
	ATF_CHECK(jint(c, "requests.get") + jint(c, "requests.head") >= 6);
	ATF_CHECK(jint(c, "requests.list") >= 1);
	ATF_CHECK(jint(c, "requests.delete") >= 1);
	check_costs_consistent(c);
	json_object_put(log);
	json_object_put(c);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(costs_equal_the_core_counts_on_the_local_backend);
ATF_TC_BODY(costs_equal_the_core_counts_on_the_local_backend, tc)
{
	cmt t;
	t_init(&t, 1, "costs_file");
	memset(t.core_counts, 0, sizeof t.core_counts);
	add_plugin(&t, &costs_plugin_def, "{}");
	costs_workload(&t, 3, 5, 1);
	json_object *c = read_vjson(&t, "/.costs");
	for (int k = 0; k < S3DB_CMD__COUNT; k++)
		ATF_CHECK_EQ_MSG((int64_t)t.core_counts[k], jint(c, command_events[k]), "%s",
		                 command_events[k]);
	ATF_CHECK(jint(c, "requests.put") >= 3);
	ATF_CHECK(jint(c, "requests.get") + jint(c, "requests.head") >= 5);
	check_costs_consistent(c);
	/* the guide's default prices: $0.005 and $0.0004 per 1,000 */
	ATF_CHECK(fabs(jnum(c, "prices.put") - 0.000005) < 1e-15);
	ATF_CHECK(fabs(jnum(c, "prices.list") - 0.000005) < 1e-15);
	ATF_CHECK(fabs(jnum(c, "prices.get") - 0.0000004) < 1e-15);
	ATF_CHECK(fabs(jnum(c, "prices.head") - 0.0000004) < 1e-15);
	ATF_CHECK(fabs(jnum(c, "prices.delete") - 0.0000004) < 1e-15);
	json_object_put(c);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(costs_reset_starts_over_and_other_commands_are_refused);
ATF_TC_BODY(costs_reset_starts_over_and_other_commands_are_refused, tc)
{
	cmt t;
	t_init(&t, 1, "costs_reset");
	add_plugin(&t, &costs_plugin_def, "{}");
	costs_workload(&t, 2, 2, 1);
	json_object *c = read_vjson(&t, "/.costs");
	ATF_REQUIRE(jint(c, "requests.total") > 0);
	json_object_put(c);
	ATF_CHECK_EQ(-EINVAL, write_vfile(&t, "/.costs", "clear\n"));
	ATF_CHECK(log_has(&t, "the only command is \"reset\""));
	c = read_vjson(&t, "/.costs");
	ATF_CHECK(jint(c, "requests.total") > 0);
	json_object_put(c);
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.costs", "reset\n"));
	c = read_vjson(&t, "/.costs");
	ATF_CHECK_EQ(0, jint(c, "requests.total"));
	ATF_CHECK_EQ(0, jint(c, "events.total"));
	for (int k = 0; k < S3DB_CMD__COUNT; k++)
		ATF_CHECK_EQ(0, jint(c, command_events[k]));
	ATF_CHECK_EQ(0, jnum(c, "total"));
	json_object_put(c);
	get_user(&t, "u1", S3DB_OK);
	c = read_vjson(&t, "/.costs");
	ATF_CHECK(jint(c, "requests.get") + jint(c, "requests.head") >= 1);
	check_costs_consistent(c);
	json_object_put(c);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(costs_prices_are_configurable_and_bad_options_refused);
ATF_TC_BODY(costs_prices_are_configurable_and_bad_options_refused, tc)
{
	cmt t;
	t_init(&t, 1, "costs_prices");
	add_plugin(&t, &costs_plugin_def, "{\"prices\":{\"put\":1,\"get\":0.5}}");
	costs_workload(&t, 2, 2, 0);
	json_object *c = read_vjson(&t, "/.costs");
	ATF_CHECK_EQ(1, jnum(c, "prices.put"));
	ATF_CHECK_EQ(0.5, jnum(c, "prices.get"));
	ATF_CHECK(fabs(jnum(c, "prices.head") - 0.0000004) < 1e-15);
	check_costs_consistent(c);
	json_object_put(c);
	s3db_plugins_stop(t.db);
	const char *bad[] = { "{\"prices\":{\"put\":-1}}", "{\"prices\":{\"post\":1}}",
		              "{\"price\":{}}", "{\"prices\":{\"get\":\"cheap\"}}" };
	const char *why[] = { "prices.put must be >= 0", "prices.post: unknown class",
		              "unknown option 'price'", "prices.get must be a number" };
	for (int i = 0; i < 4; i++) {
		json_object *o = json_tokener_parse(bad[i]);
		s3db_error err;
		s3db_error_clear(&err);
		ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG,
		             s3db_plugin_add(t.db, &costs_plugin_def, o, "t", NULL, &err));
		ATF_CHECK_MSG(strstr(err.message, why[i]) != NULL, "%s: %s", bad[i], err.message);
		json_object_put(o);
	}
	t_done(&t);
}

/* ---- Prometheus text parser --------------------------------------------- */

typedef struct prom_hist {
	char labels[512];     /* label set without le */
	double last_le;
	double last_count;
	int saw_inf;
	double inf_count;
} prom_hist;

typedef struct prom_doc {
	sbuf samples;         /* "series value\n" lines, for lookups */
	char family[128];
	char type[16];
	int has_type;
	strv closed;          /* families already finished */
	prom_hist hist[256];
	int nhist;
} prom_doc;

static int prom_name_ok(const char *s, size_t n, int colon)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon && s[0] == ':')))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (colon && s[i] == ':')))
			return 0;
	return 1;
}

static int prom_value_ok(const char *s, double *v)
{
	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
		*v = !strcmp(s, "NaN") ? NAN : (s[0] == '+' ? INFINITY : -INFINITY);
		return 1;
	}
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	return *s && !*end && errno == 0 && !isspace((unsigned char)s[0]);
}

/* Parses {a="x",b="y"}; fills `rest` with the label set without le and
 * *le with le's value (or NULL).  Returns the end or NULL on error. */
static const char *prom_labels(const char *p, char *rest, size_t restsz, char *le, size_t lesz,
                               int *has_le, char *errbuf)
{
	*has_le = 0;
	rest[0] = '\0';
	p++; /* '{' */
	while (*p != '}') {
		const char *name = p;
		while (*p && *p != '=')
			p++;
		if (!prom_name_ok(name, (size_t)(p - name), 0) || p[0] != '=' || p[1] != '"') {
			snprintf(errbuf, 200, "bad label name or missing =\" at '%.20s'", name);
			return NULL;
		}
		size_t nlen = (size_t)(p - name);
		p += 2;
		char val[256];
		size_t vl = 0;
		while (*p && *p != '"') {
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
					snprintf(errbuf, 200, "bad escape \\%c in a label value", p[1]);
					return NULL;
				}
				if (vl < sizeof val - 1)
					val[vl++] = p[1] == 'n' ? '\n' : p[1];
				p += 2;
			} else if (*p == '\n') {
				snprintf(errbuf, 200, "raw newline in a label value");
				return NULL;
			} else {
				if (vl < sizeof val - 1)
					val[vl++] = *p;
				p++;
			}
		}
		val[vl] = '\0';
		if (*p != '"') {
			snprintf(errbuf, 200, "unterminated label value");
			return NULL;
		}
		p++;
		if (nlen == 2 && !strncmp(name, "le", 2)) {
			*has_le = 1;
			snprintf(le, lesz, "%.60s", val);
		} else {
			size_t l = strlen(rest);
			snprintf(rest + l, restsz - l, "%.*s=%s,", (int)nlen, name, val);
		}
		if (*p == ',')
			p++;
		else if (*p != '}') {
			snprintf(errbuf, 200, "expected , or } after a label");
			return NULL;
		}
	}
	return p + 1;
}

static prom_hist *prom_hist_of(prom_doc *d, const char *labels)
{
	for (int i = 0; i < d->nhist; i++)
		if (!strcmp(d->hist[i].labels, labels))
			return &d->hist[i];
	if (d->nhist == 256)
		return NULL;
	prom_hist *h = &d->hist[d->nhist++];
	memset(h, 0, sizeof *h);
	snprintf(h->labels, sizeof h->labels, "%s", labels);
	h->last_le = -INFINITY;
	return h;
}

/* Closes the current family: every histogram series ended with +Inf. */
static int prom_close_family(prom_doc *d, char *errbuf)
{
	for (int i = 0; i < d->nhist; i++)
		if (!d->hist[i].saw_inf) {
			snprintf(errbuf, 200, "%.60s{%.80s}: no le=\"+Inf\" bucket", d->family, d->hist[i].labels);
			return -1;
		}
	d->nhist = 0;
	if (d->family[0])
		strv_push(&d->closed, d->family);
	d->family[0] = '\0';
	d->has_type = 0;
	return 0;
}

/* Starts (or continues) the family named by a HELP / TYPE line. */
static int prom_comment(prom_doc *d, const char *line, char *errbuf)
{
	int is_type = !strncmp(line, "# TYPE ", 7);
	if (!is_type && strncmp(line, "# HELP ", 7))
		return 0; /* other comments are allowed */
	const char *name = line + 7;
	size_t n = strcspn(name, " ");
	if (!prom_name_ok(name, n, 1) || name[n] != ' ') {
		snprintf(errbuf, 200, "bad metric name in '%.80s'", line);
		return -1;
	}
	if (strncmp(d->family, name, n) || d->family[n]) {
		if (prom_close_family(d, errbuf))
			return -1;
		for (size_t i = 0; i < d->closed.count; i++)
			if (strlen(d->closed.items[i]) == n && !strncmp(d->closed.items[i], name, n)) {
				snprintf(errbuf, 200, "family %.*s appears twice", (int)n, name);
				return -1;
			}
		snprintf(d->family, sizeof d->family, "%.*s", (int)n, name);
	}
	if (is_type) {
		const char *type = name + n + 1;
		if (d->has_type || (strcmp(type, "counter") && strcmp(type, "gauge") &&
		                    strcmp(type, "histogram") && strcmp(type, "summary") &&
		                    strcmp(type, "untyped"))) {
			snprintf(errbuf, 200, "bad or repeated TYPE line '%.80s'", line);
			return -1;
		}
		snprintf(d->type, sizeof d->type, "%s", type);
		d->has_type = 1;
	}
	return 0;
}

/* Checks one bucket / count sample of a histogram series. */
static int prom_hist_sample(prom_doc *d, const char *suffix, const char *labels, int has_le,
                            const char *le, double v, char *errbuf)
{
	prom_hist *h = prom_hist_of(d, labels);
	if (!h) {
		snprintf(errbuf, 200, "too many histogram series");
		return -1;
	}
	if (!strcmp(suffix, "_bucket")) {
		double lev;
		if (!has_le || !prom_value_ok(le, &lev) || h->saw_inf || lev <= h->last_le ||
		    v < h->last_count) {
			snprintf(errbuf, 200, "%.60s{%.80s}: bucket le=\"%s\" out of order or not monotone",
			         d->family, labels, has_le ? le : "(none)");
			return -1;
		}
		h->last_le = lev;
		h->last_count = v;
		if (isinf(lev)) {
			h->saw_inf = 1;
			h->inf_count = v;
		}
	} else if (!strcmp(suffix, "_count") && (!h->saw_inf || h->inf_count != v)) {
		snprintf(errbuf, 200, "%.60s{%.80s}: _count %g differs from the +Inf bucket", d->family,
		         labels, v);
		return -1;
	}
	return 0;
}

static int prom_sample(prom_doc *d, const char *line, char *errbuf)
{
	size_t n = strcspn(line, "{ ");
	if (!prom_name_ok(line, n, 1)) {
		snprintf(errbuf, 200, "bad sample name in '%.80s'", line);
		return -1;
	}
	if (!d->has_type) {
		snprintf(errbuf, 200, "sample before its TYPE line: '%.80s'", line);
		return -1;
	}
	size_t fl = strlen(d->family);
	const char *suffix = line + fl;
	int is_hist = !strcmp(d->type, "histogram");
	if (strncmp(line, d->family, fl) ||
	    (is_hist ? (n - fl != 7 || strncmp(suffix, "_bucket", 7)) &&
	                       (n - fl != 4 || strncmp(suffix, "_sum", 4)) &&
	                       (n - fl != 6 || strncmp(suffix, "_count", 6))
	             : n != fl)) {
		snprintf(errbuf, 200, "sample '%.*s' outside its family %s", (int)n, line, d->family);
		return -1;
	}
	char sfx[8] = "";
	snprintf(sfx, sizeof sfx, "%.*s", (int)(n - fl), suffix);
	const char *p = line + n;
	char labels[512] = "", le[64] = "";
	int has_le = 0;
	if (*p == '{' && !(p = prom_labels(p, labels, sizeof labels, le, sizeof le, &has_le, errbuf)))
		return -1;
	if (*p != ' ' || strchr(p + 1, ' ')) {
		snprintf(errbuf, 200, "expected one space and a value (no timestamp): '%.80s'", line);
		return -1;
	}
	double v;
	if (!prom_value_ok(p + 1, &v)) {
		snprintf(errbuf, 200, "bad value in '%.80s'", line);
		return -1;
	}
	if (has_le && strcmp(sfx, "_bucket")) {
		snprintf(errbuf, 200, "le label outside a bucket: '%.80s'", line);
		return -1;
	}
	if (is_hist && prom_hist_sample(d, sfx, labels, has_le, le, v, errbuf))
		return -1;
	sbuf_printf(&d->samples, "%s\n", line);
	return 0;
}

/* Parses a whole exposition; NULL when valid, else a message (static
 * buffer).  d keeps the samples for lookups. */
static const char *prom_parse(const char *text, prom_doc *d)
{
	static char errbuf[256];
	memset(d, 0, sizeof *d);
	sbuf_init(&d->samples);
	strv_init(&d->closed);
	size_t len = strlen(text);
	if (len && text[len - 1] != '\n')
		return "the text does not end with a newline";
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		char line[1024];
		snprintf(line, sizeof line, "%.*s", (int)(nl - p), p);
		p = nl + 1;
		if (!line[0])
			continue;
		int rc = line[0] == '#' ? prom_comment(d, line, errbuf) : prom_sample(d, line, errbuf);
		if (rc)
			return errbuf;
	}
	return prom_close_family(d, errbuf) ? errbuf : NULL;
}

static void prom_free(prom_doc *d)
{
	sbuf_free(&d->samples);
	strv_free(&d->closed);
}

/* The value of an exact series ("name{labels}"), or -1 when absent. */
static double prom_value(prom_doc *d, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = d->samples.data; p && *p; p = strchr(p, '\n') + 1)
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

ATF_TC_WITHOUT_HEAD(prometheus_parser_rejects_malformed_expositions);
ATF_TC_BODY(prometheus_parser_rejects_malformed_expositions, tc)
{
	const char *good = "# HELP a_total x\n# TYPE a_total counter\na_total{r=\"q\\\"\\\\\\n\"} 3\n"
	                   "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
	                   "h_sum 3.5\nh_count 2\n";
	const char *bad[] = {
		"a_total 1\n",                                                   /* no TYPE */
		"# TYPE a counter\na{r=\"x\\t\"} 1\n",                           /* bad escape */
		"# TYPE a counter\na{1r=\"x\"} 1\n",                             /* label name */
		"# TYPE a counter\na 1 1700000000\n",                            /* timestamp */
		"# TYPE a counter\nb 1\n",                                       /* other family */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",         /* no +Inf */
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",      /* count */
		"# TYPE a counter\na 1\n# TYPE b gauge\nb 1\n# TYPE a counter\na 2\n",
		"# TYPE a counter\na one\n",
		"# TYPE a counter\na 1",                                         /* no final \n */
	};
	prom_doc d;
	const char *e = prom_parse(good, &d);
	ATF_CHECK_MSG(e == NULL, "good text refused: %s", e);
	ATF_CHECK_EQ(3, prom_value(&d, "a_total{r=\"q\\\"\\\\\\n\"}"));
	prom_free(&d);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		e = prom_parse(bad[i], &d);
		ATF_CHECK_MSG(e != NULL, "bad text %zu accepted:\n%s", i, bad[i]);
		prom_free(&d);
	}
}

/* ---- metrics ------------------------------------------------------------ */

/* insert 3 + 1 refused, get 2 + 1 missing, update 1, delete 1, list 1
 * (of 2 records: the core reads each with a get, as s3db.js's list does
 * through getMany), count 1: 13 operations, 2 errors. */
static void metrics_workload(cmt *t)
{
	s3db_error err;
	s3db_error_clear(&err);
	insert_user(t, "a", "Ann");
	insert_user(t, "b", "Bob");
	insert_user(t, "c", "Cy");
	json_object *nameless = json_tokener_parse("{\"id\":\"d\",\"age\":3}");
	ATF_REQUIRE_EQ(S3DB_ERR_VALIDATION, s3db_insert(t->users, nameless, NULL, NULL, &err));
	json_object_put(nameless);
	get_user(t, "a", S3DB_OK);
	get_user(t, "b", S3DB_OK);
	get_user(t, "zz", S3DB_ERR_NOT_FOUND);
	json_object *patch = json_tokener_parse("{\"age\":31}");
	CHECK_OK(s3db_update(t->users, "a", patch, NULL, NULL, &err), &err);
	json_object_put(patch);
	CHECK_OK(s3db_delete(t->users, "c", NULL, &err), &err);
	json_object *list = NULL;
	CHECK_OK(s3db_list(t->users, NULL, NULL, &list, &err), &err);
	json_object_put(list);
	size_t count = 0;
	CHECK_OK(s3db_count(t->users, NULL, &count, NULL, &err), &err);
	ATF_REQUIRE_EQ(2u, count);
}

static void check_metrics_workload(json_object *m)
{
	ATF_CHECK_EQ(13, jint(m, "performance.totalRequests"));
	ATF_CHECK_EQ(4, jint(m, "performance.operationTiming.insert.total"));
	ATF_CHECK_EQ(5, jint(m, "performance.operationTiming.get.total"));
	ATF_CHECK_EQ(1, jint(m, "performance.operationTiming.update.total"));
	ATF_CHECK_EQ(1, jint(m, "performance.operationTiming.delete.total"));
	ATF_CHECK_EQ(1, jint(m, "performance.operationTiming.list.total"));
	ATF_CHECK_EQ(1, jint(m, "performance.operationTiming.count.total"));
	double mn = jnum(m, "performance.operationTiming.insert.min");
	double avg = jnum(m, "performance.operationTiming.insert.avg");
	double mx = jnum(m, "performance.operationTiming.insert.max");
	ATF_CHECK_MSG(mn >= 0 && mn <= avg && avg <= mx, "min %g avg %g max %g", mn, avg, mx);
	ATF_CHECK(json_object_array_length(jpath(m, "performance.slowestOperations")) == 6);
	ATF_CHECK_EQ(4, jint(m, "usage.resources.users.inserts"));
	ATF_CHECK_EQ(1, jint(m, "usage.resources.users.updates"));
	ATF_CHECK_EQ(1, jint(m, "usage.resources.users.deletes"));
	ATF_CHECK_EQ(7, jint(m, "usage.resources.users.reads"));
	ATF_CHECK_EQ(13, jint(m, "usage.totalOperations"));
	ATF_CHECK_STREQ("users", json_object_get_string(jpath(m, "usage.mostActiveResource")));
	ATF_CHECK_EQ(2, jint(m, "errors.total"));
	ATF_CHECK_EQ(1, jint(m, "errors.byType.ValidationError"));
	ATF_CHECK_EQ(1, jint(m, "errors.byType.NotFoundError"));
	ATF_CHECK_EQ(2, jint(m, "errors.byResource.users"));
	ATF_CHECK(fabs(jnum(m, "errors.errorRate") - 2.0 / 13) < 1e-3);
	ATF_CHECK_EQ(0, jint(m, "cache.totalHits"));
	ATF_CHECK_EQ(0, jint(m, "cache.totalMisses"));
}

static void check_metrics_prom(cmt *t)
{
	char *text = read_vfile(t, "/.metrics.prom");
	prom_doc d;
	const char *e = prom_parse(text, &d);
	ATF_CHECK_MSG(e == NULL, "/.metrics.prom: %s\n%s", e, text);
	ATF_CHECK_EQ(4, prom_value(&d, "s3db_operations_total{resource=\"users\",operation=\"insert\"}"));
	ATF_CHECK_EQ(5, prom_value(&d, "s3db_operations_total{resource=\"users\",operation=\"get\"}"));
	ATF_CHECK_EQ(1, prom_value(&d, "s3db_operation_errors_total{resource=\"users\",operation="
	                               "\"insert\"}"));
	ATF_CHECK_EQ(4, prom_value(&d, "s3db_operation_duration_seconds_count{resource=\"users\","
	                               "operation=\"insert\"}"));
	ATF_CHECK_EQ(4, prom_value(&d, "s3db_operation_duration_seconds_bucket{resource=\"users\","
	                               "operation=\"insert\",le=\"+Inf\"}"));
	ATF_CHECK_EQ(1, prom_value(&d, "s3db_errors_total{resource=\"users\",type=\"ValidationError\"}"));
	ATF_CHECK_EQ(1, prom_value(&d, "s3db_errors_total{resource=\"users\",type=\"NotFoundError\"}"));
	prom_free(&d);
	free(text);
}

ATF_TC_WITHOUT_HEAD(metrics_match_a_known_workload_with_a_refused_write);
ATF_TC_BODY(metrics_match_a_known_workload_with_a_refused_write, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_workload");
	add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0}");
	metrics_workload(&t);
	json_object *m = read_vjson(&t, "/.metrics");
	check_metrics_workload(m);
	json_object_put(m);
	check_metrics_prom(&t);
	/* the plugin's own writes are not user operations */
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.metrics", "flush"));
	m = read_vjson(&t, "/.metrics");
	check_metrics_workload(m);
	json_object_put(m);
	ATF_CHECK_EQ(-EINVAL, write_vfile(&t, "/.metrics", "frobnicate"));
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.metrics", "reset"));
	m = read_vjson(&t, "/.metrics");
	ATF_CHECK_EQ(0, jint(m, "performance.totalRequests"));
	ATF_CHECK_EQ(0, jint(m, "errors.total"));
	json_object_put(m);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_match_a_known_workload_on_s3);
ATF_TC_BODY(metrics_match_a_known_workload_on_s3, tc)
{
	cmt t;
	t_init(&t, 0, "metrics_s3");
	add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0}");
	metrics_workload(&t);
	json_object *m = read_vjson(&t, "/.metrics");
	check_metrics_workload(m);
	json_object_put(m);
	check_metrics_prom(&t);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_sample_rate_zero_records_nothing);
ATF_TC_BODY(metrics_sample_rate_zero_records_nothing, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_sample0");
	add_plugin(&t, &metrics_plugin_def, "{\"sampleRate\":0,\"flushInterval\":0}");
	metrics_workload(&t);
	json_object *m = read_vjson(&t, "/.metrics");
	ATF_CHECK_EQ(0, jint(m, "performance.totalRequests"));
	ATF_CHECK_EQ(0, jint(m, "usage.totalOperations"));
	ATF_CHECK_EQ(0, jint(m, "errors.total"));
	ATF_CHECK_EQ(0, json_object_object_length(jpath(m, "performance.operationTiming")));
	json_object_put(m);
	/* a flush has nothing to write */
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.metrics", "flush"));
	char **ids = NULL;
	size_t n = 99;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_list_ids(s3db_resource_find(t.db, "plg_metrics"), NULL, &ids, &n, &err), &err);
	ATF_CHECK_EQ(0u, n);
	s3db_free_strv(ids);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_sample_rate_half_records_half);
ATF_TC_BODY(metrics_sample_rate_half_records_half, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_sample_half");
	add_plugin(&t, &metrics_plugin_def, "{\"sampleRate\":0.5,\"flushInterval\":0}");
	insert_user(&t, "a", "Ann");
	for (int i = 0; i < 9; i++)
		get_user(&t, "a", S3DB_OK);
	json_object *m = read_vjson(&t, "/.metrics");
	ATF_CHECK_EQ(5, jint(m, "performance.totalRequests"));
	json_object_put(m);
	t_done(&t);
}

/* The user metadata of a record's object, by short key. */
static void head_record(cmt *t, const char *resource, const char *id, store_object *o)
{
	char *key = db_record_key(t->db, resource, id);
	s3db_error err;
	s3db_error_clear(&err);
	store_object_init(o);
	CHECK_OK(store_head(t->db->store, key, o, &err), &err);
	free(key);
}

static const char *meta(store_object *o, const char *k)
{
	const char *v = store_meta_get(&o->meta, k);
	return v ? v : "(absent)";
}

/* The ids of a resource. */
static char **ids_of(cmt *t, const char *resource, size_t *n)
{
	char **ids = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_resource *r = s3db_resource_find(t->db, resource);
	ATF_REQUIRE_MSG(r != NULL, "no resource %s", resource);
	CHECK_OK(s3db_list_ids(r, NULL, &ids, n, &err), &err);
	return ids;
}

ATF_TC_WITHOUT_HEAD(metrics_flush_writes_the_spec_records_and_short_keys);
ATF_TC_BODY(metrics_flush_writes_the_spec_records_and_short_keys, tc)
{
	cmt t;
	t_init(&t, 0, "metrics_flush");
	add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0,\"batchSize\":2}");
	/* the definitions are s3db.js 21.6.2's (spec 6.5): attributes in the
	 * same order (so the same short keys), behavior, partitions */
	json_object *fixture = testlib_fixture_json("schema/21.6.2-plugin-metrics.json");
	const char *names[] = { "plg_metrics", "plg_metrics_errors", "plg_metrics_performance" };
	for (int i = 0; i < 3; i++) {
		char path[128];
		snprintf(path, sizeof path, "resources.%s.schemaRegistry.mapping", names[i]);
		json_object *want = jpath(fixture, path);
		pthread_rwlock_rdlock(&t.db->lock);
		json_object *got = jpath(t.db->catalog, path);
		int same = got && json_object_equal(want, got);
		pthread_rwlock_unlock(&t.db->lock);
		ATF_CHECK_MSG(same, "%s: short keys differ from the spec's %s", names[i],
		              json_object_to_json_string(want));
		json_object *mine = s3db_resource_definition(s3db_resource_find(t.db, names[i]));
		ATF_REQUIRE(mine != NULL);
		const char *fields[] = { "attributes", "behavior", "partitions", "timestamps" };
		for (int f = 0; f < 4; f++) {
			snprintf(path, sizeof path, "resources.%s.versions.v1.%s", names[i], fields[f]);
			want = jpath(fixture, path);
			got = jpath(mine, fields[f]);
			ATF_CHECK_MSG(got && json_object_equal(want, got), "%s.%s: %s, spec %s", names[i],
			              fields[f], json_object_to_json_string(got),
			              json_object_to_json_string(want));
		}
		json_object_put(mine);
	}
	json_object_put(fixture);

	insert_user(&t, "a", "Ann");
	get_user(&t, "nope", S3DB_ERR_NOT_FOUND);
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.metrics", "flush"));
	/* global insert + global get + users insert + users get */
	size_t n = 0;
	char **ids = ids_of(&t, "plg_metrics", &n);
	ATF_CHECK_EQ(4u, n);
	int globals = 0;
	for (size_t i = 0; i < n; i++) {
		ATF_CHECK(s3db_str_starts(ids[i], "metrics-"));
		store_object o;
		head_record(&t, "plg_metrics", ids[i], &o);
		ATF_CHECK_STREQ("operation", meta(&o, "1"));
		int global = !strcmp(meta(&o, "2"), "global");
		globals += global;
		if (!global)
			ATF_CHECK_STREQ("users", meta(&o, "2"));
		ATF_CHECK(!strcmp(meta(&o, "3"), "insert") || !strcmp(meta(&o, "3"), "get"));
		ATF_CHECK_STREQ("1", meta(&o, "4"));
		ATF_CHECK_STREQ(!strcmp(meta(&o, "3"), "get") ? "1" : "0", meta(&o, "6"));
		ATF_CHECK_STREQ(global ? "{\"global\":\"true\"}" : "{\"resource\":\"true\"}",
		                meta(&o, "9"));
		ATF_CHECK(strcmp(meta(&o, "8"), "(absent)") && strcmp(meta(&o, "a"), "(absent)"));
		ATF_CHECK_STREQ("v1", meta(&o, "_v"));
		store_object_free(&o);
	}
	ATF_CHECK_EQ(2, globals);
	s3db_free_strv(ids);

	ids = ids_of(&t, "plg_metrics_errors", &n);
	ATF_REQUIRE_EQ(1u, n);
	ATF_CHECK(s3db_str_starts(ids[0], "error-"));
	store_object o;
	head_record(&t, "plg_metrics_errors", ids[0], &o);
	ATF_CHECK_STREQ("users", meta(&o, "1"));
	ATF_CHECK_STREQ("get", meta(&o, "2"));
	ATF_CHECK_MSG(strstr(meta(&o, "3"), "users/nope") != NULL, "error %s", meta(&o, "3"));
	ATF_CHECK_STREQ("{\"error\":\"true\"}", meta(&o, "5"));
	store_object_free(&o);
	s3db_free_strv(ids);

	ids = ids_of(&t, "plg_metrics_performance", &n);
	ATF_CHECK_EQ(2u, n);
	for (size_t i = 0; i < n; i++) {
		ATF_CHECK(s3db_str_starts(ids[i], "perf-"));
		head_record(&t, "plg_metrics_performance", ids[i], &o);
		ATF_CHECK_STREQ("users", meta(&o, "1"));
		ATF_CHECK_STREQ("{\"perf\":\"true\"}", meta(&o, "5"));
		ATF_CHECK(strcmp(meta(&o, "3"), "(absent)") != 0);
		store_object_free(&o);
	}
	s3db_free_strv(ids);

	/* the partition references exist (byDate) and the flush was not
	 * counted as user operations */
	json_object *m = read_vjson(&t, "/.metrics");
	ATF_CHECK_EQ(2, jint(m, "performance.totalRequests"));
	json_object_put(m);
	ATF_REQUIRE_EQ(0, write_vfile(&t, "/.metrics", "flush"));
	ids = ids_of(&t, "plg_metrics", &n);
	ATF_CHECK_EQ(4u, n);
	s3db_free_strv(ids);
	t_done(&t);
}

/* Inserts a plg_metrics record dated `days_ago` days back. */
static void insert_dated(cmt *t, const char *id, int days_ago)
{
	char iso[32];
	s3db_iso8601(s3db_now_ms() - (int64_t)days_ago * 86400000, iso, sizeof iso);
	char text[512];
	snprintf(text, sizeof text,
	         "{\"id\":\"%s\",\"type\":\"operation\",\"resourceName\":\"global\","
	         "\"operation\":\"get\",\"count\":1,\"totalTime\":2,\"errors\":0,\"avgTime\":2,"
	         "\"timestamp\":\"%s\",\"metadata\":{\"global\":\"true\"},\"createdAt\":\"%.10s\"}",
	         id, iso, iso);
	json_object *rec = json_tokener_parse(text);
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_insert(s3db_resource_find(t->db, "plg_metrics"), rec, NULL, NULL, &err), &err);
	json_object_put(rec);
}

ATF_TC_WITHOUT_HEAD(metrics_retention_deletes_records_older_than_retention_days);
ATF_TC_BODY(metrics_retention_deletes_records_older_than_retention_days, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_retention");
	/* a first mount defines the resources; then records of other ages */
	add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0}");
	s3db_plugins_stop(t.db);
	insert_dated(&t, "metrics-old-40", 40);
	insert_dated(&t, "metrics-old-12", 12);
	insert_dated(&t, "metrics-new-0", 0);
	add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0,\"retentionDays\":10}");
	ATF_REQUIRE_MSG(log_wait(&t, "retention: deleted 2 records of plg_metrics"), "log:\n%s",
	                t.log.data ? t.log.data : "");
	size_t n = 0;
	char **ids = ids_of(&t, "plg_metrics", &n);
	ATF_REQUIRE_EQ(1u, n);
	ATF_CHECK_STREQ("metrics-new-0", ids[0]);
	s3db_free_strv(ids);
	/* the partition references went with them */
	s3db_list_opts by_date = { .partition = "byDate" };
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_list_ids(s3db_resource_find(t.db, "plg_metrics"), &by_date, &ids, &n, &err),
	         &err);
	ATF_CHECK_EQ(1u, n);
	s3db_free_strv(ids);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_alerts_and_slow_queries_are_logged);
ATF_TC_BODY(metrics_alerts_and_slow_queries_are_logged, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_alerts");
	add_plugin(&t, &metrics_plugin_def,
	           "{\"flushInterval\":0,\"slowQueryThreshold\":0,"
	           "\"alertThresholds\":{\"errorRate\":0.4,\"avgResponseTime\":0}}");
	insert_user(&t, "a", "Ann");
	ATF_CHECK(log_wait(&t, "slow query: insert on users took"));
	ATF_CHECK(log_wait(&t, "alert: threshold exceeded: avgResponseTime"));
	ATF_CHECK(!log_has(&t, "errorRate"));
	get_user(&t, "x", S3DB_ERR_NOT_FOUND);
	ATF_CHECK(log_wait(&t, "alert: threshold exceeded: errorRate = 0.5 (threshold: 0.4)"));
	ATF_CHECK(log_wait(&t, "alert: high error rate: users has 50.0% errors"));
	get_user(&t, "a", S3DB_OK);
	get_user(&t, "a", S3DB_OK);
	ATF_CHECK(log_wait(&t, "alert cleared: errorRate = 0.25"));
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_options_are_checked);
ATF_TC_BODY(metrics_options_are_checked, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_options");
	const char *bad[] = { "{\"sampleRate\":1.5}", "{\"batchSize\":0}", "{\"collectErrors\":1}",
		              "{\"alertThresholds\":{\"cpu\":1}}", "{\"flushIntervall\":5}" };
	const char *why[] = { "sampleRate must be between 0 and 1", "batchSize must be between",
		              "collectErrors must be true or false", "alertThresholds.cpu",
		              "unknown option 'flushIntervall'" };
	for (int i = 0; i < 5; i++) {
		json_object *o = json_tokener_parse(bad[i]);
		s3db_error err;
		s3db_error_clear(&err);
		ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG,
		             s3db_plugin_add(t.db, &metrics_plugin_def, o, "t", NULL, &err));
		ATF_CHECK_MSG(strstr(err.message, why[i]) != NULL, "%s: %s", bad[i], err.message);
		json_object_put(o);
	}
	/* the guide's JavaScript-only keys are accepted with a warning;
	 * collectUsage false leaves usage empty */
	add_plugin(&t, &metrics_plugin_def,
	           "{\"compressionEnabled\":true,\"collectUsage\":false,\"flushInterval\":0,"
	           "\"resourceNames\":{\"metrics\":\"my_metrics\"}}");
	ATF_CHECK(log_has(&t, "option 'compressionEnabled' is JavaScript-only"));
	ATF_CHECK(s3db_resource_find(t.db, "my_metrics") != NULL);
	insert_user(&t, "a", "Ann");
	json_object *m = read_vjson(&t, "/.metrics");
	ATF_CHECK_EQ(1, jint(m, "performance.totalRequests"));
	ATF_CHECK_EQ(0, json_object_object_length(jpath(m, "usage.resources")));
	json_object_put(m);
	t_done(&t);
}

/* s3db_plugin_reconfigure with options_json; err receives the refusal. */
static s3db_code reconfigure(s3db_plugin *p, const char *options_json, s3db_error *err)
{
	json_object *o = json_tokener_parse(options_json);
	ATF_REQUIRE_MSG(o != NULL, "bad test options %s", options_json);
	s3db_error_clear(err);
	s3db_code rc = s3db_plugin_reconfigure(p, o, err);
	json_object_put(o);
	return rc;
}

static int64_t total_requests(cmt *t)
{
	json_object *m = read_vjson(t, "/.metrics");
	int64_t n = jint(m, "performance.totalRequests");
	json_object_put(m);
	return n;
}

/* Waits up to 5 s for the resource to hold at least one record. */
static size_t wait_records(cmt *t, const char *resource)
{
	size_t n = 0;
	for (int i = 0; i < 100 && n == 0; i++) {
		s3db_free_strv(ids_of(t, resource, &n));
		if (n == 0)
			usleep(50000);
	}
	return n;
}

/* sampleRate, flushInterval (a 10-minute interval replaced by 200 ms
 * flushes without waiting out the old one), slowQueryThreshold and
 * collectUsage change while the plugin runs; each change is logged. */
static void metrics_reconfigure_applies_live(int is_file, const char *name)
{
	cmt t;
	t_init(&t, is_file, name);
	s3db_plugin *p = add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":600000}");
	insert_user(&t, "a", "Ann");
	ATF_CHECK_EQ(1, total_requests(&t));
	s3db_error err;
	CHECK_OK(reconfigure(p, "{\"flushInterval\":600000,\"sampleRate\":0}", &err), &err);
	ATF_CHECK_MSG(log_has(&t, "MetricsPlugin: sampleRate: 1 -> 0 (live)"), "log:\n%s", t.log.data);
	for (int i = 0; i < 3; i++)
		get_user(&t, "a", S3DB_OK);
	ATF_CHECK_EQ(1, total_requests(&t)); /* nothing more recorded */
	size_t n = 9;
	s3db_free_strv(ids_of(&t, "plg_metrics", &n));
	ATF_CHECK_EQ(0u, n);
	/* back to every operation, flushed every 200 ms, every one slow */
	CHECK_OK(reconfigure(p, "{\"flushInterval\":200,\"slowQueryThreshold\":0,"
	                        "\"collectUsage\":false}", &err), &err);
	ATF_CHECK(log_has(&t, "MetricsPlugin: flushInterval: 600000 -> 200 (live)"));
	ATF_CHECK(log_has(&t, "MetricsPlugin: slowQueryThreshold: 1000 -> 0 (live)"));
	ATF_CHECK(log_has(&t, "MetricsPlugin: collectUsage: true -> false (live)"));
	get_user(&t, "a", S3DB_OK);
	ATF_CHECK_EQ(2, total_requests(&t));
	ATF_CHECK_MSG(wait_records(&t, "plg_metrics") > 0,
	              "the thread did not flush within 5 s of the new flushInterval");
	ATF_CHECK(log_wait(&t, "slow query: get on users took"));
	json_object *m = read_vjson(&t, "/.metrics");
	ATF_CHECK_EQ(0, json_object_object_length(jpath(m, "usage.resources")));
	json_object_put(m);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_reconfigure_applies_live_on_the_local_backend);
ATF_TC_BODY(metrics_reconfigure_applies_live_on_the_local_backend, tc)
{
	metrics_reconfigure_applies_live(1, "metrics_live_file");
}

ATF_TC_WITHOUT_HEAD(metrics_reconfigure_applies_live_on_s3);
ATF_TC_BODY(metrics_reconfigure_applies_live_on_s3, tc)
{
	metrics_reconfigure_applies_live(0, "metrics_live_s3");
}

ATF_TC_WITHOUT_HEAD(metrics_reconfigure_refuses_resource_names_and_bad_sets_whole);
ATF_TC_BODY(metrics_reconfigure_refuses_resource_names_and_bad_sets_whole, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_live_refuse");
	s3db_plugin *p = add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0}");
	s3db_error err;
	ATF_CHECK_EQ(S3DB_ERR_UNSUPPORTED,
	             reconfigure(p, "{\"flushInterval\":0,\"sampleRate\":0,"
	                            "\"resourceNames\":{\"metrics\":\"other_metrics\"}}", &err));
	ATF_CHECK_MSG(strstr(err.message, "MetricsPlugin") && strstr(err.message, "resourceNames"),
	              "%s", err.message);
	/* a good sampleRate beside a bad batchSize: nothing changes */
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG,
	             reconfigure(p, "{\"flushInterval\":0,\"sampleRate\":0,\"batchSize\":0}", &err));
	ATF_CHECK_MSG(strstr(err.message, "batchSize must be between"), "%s", err.message);
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, reconfigure(p, "{\"sampleRate\":2}", &err));
	ATF_CHECK_MSG(strstr(err.message, "sampleRate"), "%s", err.message);
	ATF_CHECK(!log_has(&t, "(live)"));
	insert_user(&t, "a", "Ann");
	ATF_CHECK_EQ(1, total_requests(&t)); /* sampleRate 1 still */
	ATF_CHECK(s3db_resource_find(t.db, "other_metrics") == NULL);
	/* the same names spelled out are no change */
	CHECK_OK(reconfigure(p, "{\"flushInterval\":0,\"resourceNames\":{\"metrics\":"
	                        "\"plg_metrics\"}}", &err), &err);
	t_done(&t);
}

ATF_TC_WITHOUT_HEAD(metrics_reconfigure_enables_and_disables_the_plugin);
ATF_TC_BODY(metrics_reconfigure_enables_and_disables_the_plugin, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_live_enable");
	s3db_plugin *p = add_plugin(&t, &metrics_plugin_def, "{\"enabled\":false}");
	insert_user(&t, "a", "Ann");
	ATF_CHECK_EQ(0, total_requests(&t));
	ATF_CHECK(s3db_resource_find(t.db, "plg_metrics") == NULL);
	s3db_error err;
	CHECK_OK(reconfigure(p, "{\"enabled\":true,\"flushInterval\":100}", &err), &err);
	ATF_CHECK(log_has(&t, "MetricsPlugin: enabled: false -> true (live)"));
	ATF_CHECK(s3db_resource_find(t.db, "plg_metrics") != NULL);
	get_user(&t, "a", S3DB_OK);
	ATF_CHECK_EQ(1, total_requests(&t));
	ATF_CHECK(wait_records(&t, "plg_metrics") > 0); /* the thread runs */
	CHECK_OK(reconfigure(p, "{\"enabled\":false}", &err), &err);
	get_user(&t, "a", S3DB_OK);
	ATF_CHECK_EQ(1, total_requests(&t));
	/* and on again: no second listener (each operation counts once) */
	CHECK_OK(reconfigure(p, "{\"enabled\":true,\"flushInterval\":0}", &err), &err);
	get_user(&t, "a", S3DB_OK);
	ATF_CHECK_EQ(2, total_requests(&t));
	t_done(&t);
}

/* The listener and the report on other threads while options change. */
typedef struct metrics_reader {
	cmt *t;
	atomic_int *stop;
	int failures;
} metrics_reader;

static void *metrics_reader_main(void *ud)
{
	metrics_reader *r = ud;
	while (!atomic_load(r->stop)) {
		s3db_error err;
		s3db_error_clear(&err);
		json_object *rec = NULL;
		if (s3db_get(r->t->users, "a", NULL, &rec, &err) != S3DB_OK)
			r->failures++;
		json_object_put(rec);
	}
	return NULL;
}

ATF_TC_WITHOUT_HEAD(metrics_reconfigure_while_operations_run);
ATF_TC_BODY(metrics_reconfigure_while_operations_run, tc)
{
	cmt t;
	t_init(&t, 1, "metrics_live_mt");
	s3db_plugin *p = add_plugin(&t, &metrics_plugin_def, "{\"flushInterval\":0}");
	insert_user(&t, "a", "Ann");
	atomic_int stop = 0;
	metrics_reader readers[3];
	pthread_t tids[3];
	for (int i = 0; i < 3; i++) {
		readers[i] = (metrics_reader){ .t = &t, .stop = &stop };
		ATF_REQUIRE_EQ(0, pthread_create(&tids[i], NULL, metrics_reader_main, &readers[i]));
	}
	const char *sets[] = {
		"{\"flushInterval\":50,\"sampleRate\":0.5,\"batchSize\":3}",
		"{\"flushInterval\":0,\"collectPerformance\":false,\"trackSlowQueries\":false}",
		"{\"flushInterval\":10,\"alertThresholds\":{\"errorRate\":0.1,\"avgResponseTime\":0}}",
		"{\"flushInterval\":0,\"sampleRate\":0}",
	};
	s3db_error err;
	for (int i = 0; i < 80; i++) {
		CHECK_OK(reconfigure(p, sets[i % 4], &err), &err);
		json_object_put(read_vjson(&t, "/.metrics"));
		usleep(5000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++) {
		pthread_join(tids[i], NULL);
		ATF_CHECK_EQ(0, readers[i].failures);
	}
	t_done(&t);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, costs_equal_the_front_log_and_the_core_counts_on_s3);
	ATF_TP_ADD_TC(tp, costs_equal_the_core_counts_on_the_local_backend);
	ATF_TP_ADD_TC(tp, costs_reset_starts_over_and_other_commands_are_refused);
	ATF_TP_ADD_TC(tp, costs_prices_are_configurable_and_bad_options_refused);
	ATF_TP_ADD_TC(tp, prometheus_parser_rejects_malformed_expositions);
	ATF_TP_ADD_TC(tp, metrics_match_a_known_workload_with_a_refused_write);
	ATF_TP_ADD_TC(tp, metrics_match_a_known_workload_on_s3);
	ATF_TP_ADD_TC(tp, metrics_sample_rate_zero_records_nothing);
	ATF_TP_ADD_TC(tp, metrics_sample_rate_half_records_half);
	ATF_TP_ADD_TC(tp, metrics_flush_writes_the_spec_records_and_short_keys);
	ATF_TP_ADD_TC(tp, metrics_retention_deletes_records_older_than_retention_days);
	ATF_TP_ADD_TC(tp, metrics_alerts_and_slow_queries_are_logged);
	ATF_TP_ADD_TC(tp, metrics_options_are_checked);
	ATF_TP_ADD_TC(tp, metrics_reconfigure_applies_live_on_the_local_backend);
	ATF_TP_ADD_TC(tp, metrics_reconfigure_applies_live_on_s3);
	ATF_TP_ADD_TC(tp, metrics_reconfigure_refuses_resource_names_and_bad_sets_whole);
	ATF_TP_ADD_TC(tp, metrics_reconfigure_enables_and_disables_the_plugin);
	ATF_TP_ADD_TC(tp, metrics_reconfigure_while_operations_run);
	return atf_no_error();
}
