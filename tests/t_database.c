/*
 * t_database.c — the database (s3db.h) as a spec: catalogue, records of
 * every type, ids, updates, partitions, behaviors, listing, request
 * costs, retries, events, binary content and dropping resources.
 *
 * Each DB_CASE(name) body runs twice: as file__name against a fresh
 * temporary directory (file://, testlib_file_connstr) and as s3__name
 * against the strict S3 front that the test scripts start, under a key
 * prefix unique to the run (testlib_s3_connstr(testlib_unique_prefix())).
 * The s3 cases fail when the server is absent (testlib.h).  A body sees a
 * dbt: the open database, its connection string (to reopen it) and
 * helpers that look at the raw objects through db->store (db.h), so a
 * test can prove what was — and what was not — written.
 *
 * S3_CASE(name) cases run only against the front: they inject faults
 * (503 SlowDown, connection resets, lost responses) with its control
 * API.  Every fault is cleared in the body and again in the ATF cleanup.
 *
 * Request counts are taken with s3db_set_request_hook, which sees one
 * report per logical request on both backends (store.c), so the costs of
 * resource.c's header comment are checked on the file backend as well.
 *
 * A case that pins down a known defect of another module says so with
 * atf_tc_expect_fail and the reason; it reports an unexpected pass (and
 * must lose the expectation) as soon as the defect is fixed.
 *
 * Memory: JSON objects made with J() and strings made with S()/keys() are
 * owned by the dbt and freed when the case ends, so the bodies read as
 * specifications rather than as bookkeeping.
 */
#include <atf-c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "schema.h"
#include "secret.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

/* ---- the test context ---------------------------------------------------- */

typedef struct dbt {
	int is_file;
	const char *name;      /* case name without the backend            */
	char *connstr;         /* owned                                     */
	char *prefix;          /* full-key prefix of the database (owned)   */
	s3db *db;              /* the open database                         */
	s3db_error err;        /* scratch error for the body                */
	json_object *pool;     /* JSON handed out by J() (array, owned)     */
	strv scratch;          /* strings handed out by S(), keys(), ...    */
} dbt;

typedef void (*case_fn)(dbt *t);

/* Opens (or reopens) the database of t with opts (may be NULL); fails
 * the test on error. */
static s3db *open_db(dbt *t, const s3db_options *opts)
{
	s3db *db = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_open(t->connstr, opts, &db, &err), &err);
	return db;
}

/* The database's full-key prefix ("" for file://, "t/<case>.../" for
 * s3), computed through db_key so it is exactly what the library uses. */
static char *db_prefix(s3db *db)
{
	char *probe = db_key(db, "X");
	ATF_REQUIRE(probe != NULL);
	probe[strlen(probe) - 1] = '\0';
	return probe;
}

static void t_init(dbt *t, int is_file, const char *name)
{
	memset(t, 0, sizeof *t);
	t->is_file = is_file;
	t->name = name;
	t->pool = json_object_new_array();
	strv_init(&t->scratch);
	s3db_error_clear(&t->err);
	if (is_file)
		t->connstr = testlib_file_connstr();
	else
		t->connstr = testlib_s3_connstr(testlib_unique_prefix(name));
	t->db = open_db(t, NULL);
	t->prefix = db_prefix(t->db);
}

static int collect_all_keys(void *ud, const store_entry *e)
{
	return strv_push((strv *)ud, e->key) ? 1 : 0;
}

/* Removes what an s3 case left under its prefix (best effort: the
 * server's data directory is wiped at every start anyway). */
static void t_remove_objects(dbt *t)
{
	if (t->is_file || !t->db || !*t->prefix)
		return;
	strv all;
	strv_init(&all);
	if (store_list_all(t->db->store, t->prefix, collect_all_keys, &all, NULL) == S3DB_OK &&
	    all.count)
		store_delete_many(t->db->store, (const char *const *)all.items, all.count, NULL);
	strv_free(&all);
}

static void t_done(dbt *t)
{
	t_remove_objects(t);
	s3db_close(t->db);
	free(t->connstr);
	free(t->prefix);
	json_object_put(t->pool);
	strv_free(&t->scratch);
}

static void run_case(case_fn fn, int is_file, const char *name)
{
	dbt t;
	t_init(&t, is_file, name);
	fn(&t);
	t_done(&t);
}

#define DB_CASE(name)                                                          \
	static void case_##name(dbt *t);                                          \
	ATF_TC_WITHOUT_HEAD(file__##name);                                        \
	ATF_TC_BODY(file__##name, tc) { run_case(case_##name, 1, #name); }        \
	ATF_TC_WITHOUT_HEAD(s3__##name);                                          \
	ATF_TC_BODY(s3__##name, tc) { run_case(case_##name, 0, #name); }          \
	static void case_##name(dbt *t)

#define ADD_DB_CASE(tp, name)                                                  \
	do {                                                                      \
		ATF_TP_ADD_TC(tp, file__##name);                                      \
		ATF_TP_ADD_TC(tp, s3__##name);                                        \
	} while (0)

/* S3-only cases that set faults on the front: cleared in the body and,
 * should the body fail half-way, in the cleanup. */
#define S3_CASE(name, descr)                                                   \
	static void case_##name(dbt *t);                                          \
	ATF_TC_WITH_CLEANUP(s3__##name);                                          \
	ATF_TC_HEAD(s3__##name, tc) { atf_tc_set_md_var(tc, "descr", descr); }    \
	ATF_TC_BODY(s3__##name, tc) {                                             \
		testlib_front_clear_faults();                                         \
		run_case(case_##name, 0, #name);                                      \
		ATF_CHECK_EQ(testlib_front_clear_faults(), 0);                        \
	}                                                                         \
	ATF_TC_CLEANUP(s3__##name, tc) { testlib_front_clear_faults(); }          \
	static void case_##name(dbt *t)

/* ---- helpers: JSON --------------------------------------------------------- */

/* Parses JSON text (any JSON value, bare numbers included); the value
 * belongs to t (do not put it). */
static json_object *J(dbt *t, const char *text)
{
	json_object *o = NULL;
	s3db_error err;
	if (s3db_json_parse(text, strlen(text), &o, &err) != S3DB_OK)
		atf_tc_fail("bad JSON in the test: %s: %s", text, err.message);
	json_object_array_add(t->pool, o);
	return o;
}

/* Hands a JSON object returned by the library over to t. */
static json_object *keep(dbt *t, json_object *o)
{
	if (o)
		json_object_array_add(t->pool, o);
	return o;
}

/* A string owned by t. */
static const char *own(dbt *t, char *s)
{
	ATF_REQUIRE(s != NULL);
	ATF_REQUIRE(strv_push_owned(&t->scratch, s) == 0);
	return s;
}

/* JSON.stringify(o) (owned by t); "undefined" for an absent value. */
static const char *S(dbt *t, json_object *o)
{
	return own(t, s3db_json_stringify(o, 0));
}

/* Fails unless JSON.stringify(o) equals the stringified `expected` JSON
 * text (so `expected` may be written with any spacing). */
/* (uses the case's `t`) */
#define EXPECT_JSON(o, expected) expect_json_at(t, o, expected, __FILE__, __LINE__)
static void expect_json_at(dbt *t, json_object *o, const char *expected, const char *file,
                           int line)
{
	const char *want = S(t, J(t, expected));
	const char *got = S(t, o);
	if (strcmp(want, got) != 0)
		atf_tc_fail_nonfatal("%s:%d: got %s, expected %s", file, line, got, want);
}

/* Fails unless a and b hold the same members with the same values,
 * whatever their order. */
#define EXPECT_SAME_RECORD(a, b) expect_same_at(t, a, b, __FILE__, __LINE__)
static void expect_same_at(dbt *t, json_object *a, json_object *b, const char *file, int line)
{
	const char *ca = own(t, schema_canonical_json(a));
	const char *cb = own(t, schema_canonical_json(b));
	if (strcmp(ca, cb) != 0)
		atf_tc_fail_nonfatal("%s:%d: records differ:\n%.300s\n%.300s", file, line, ca, cb);
}

/* The value at a dotted path of a record, JSON.stringify'd; "(absent)"
 * when the path is missing. */
static const char *F(dbt *t, json_object *record, const char *path)
{
	json_object *v = NULL;
	const char *p = path;
	json_object *o = record;
	char part[128];
	while (o && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		memcpy(part, p, n);
		part[n] = '\0';
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, part, &v))
			return "(absent)";
		o = v;
		p = dot ? dot + 1 : p + n;
	}
	return S(t, o);
}

#define EXPECT_FIELD(t, rec, path, expected)                                   \
	do {                                                                      \
		const char *got_ = F(t, rec, path);                                   \
		const char *want_ = strcmp(expected, "(absent)") ? S(t, J(t, expected)) \
		                                                 : "(absent)";        \
		ATF_CHECK_STREQ_MSG(want_, got_, "field %s: got %s, expected %s",     \
		                    path, got_, want_);                               \
	} while (0)

/* ---- helpers: the database ------------------------------------------------- */

static s3db_resource *define(dbt *t, const char *name, const char *definition)
{
	s3db_resource *r = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_resource_define(t->db, name, J(t, definition), &r, &err), &err);
	ATF_REQUIRE(r != NULL);
	return r;
}

/* Inserts a record given as JSON text; returns the stored record. */
static json_object *insert(dbt *t, s3db_resource *r, const char *data)
{
	json_object *out = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_insert(r, J(t, data), NULL, &out, &err), &err);
	return keep(t, out);
}

static json_object *get(dbt *t, s3db_resource *r, const char *id)
{
	json_object *out = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_get(r, id, NULL, &out, &err), &err);
	return keep(t, out);
}

/* ---- helpers: raw objects ----------------------------------------------------- */

/* The full key of a key relative to the database (owned by t). */
static const char *full(dbt *t, const char *rel)
{
	return own(t, s3db_asprintf("%s%s", t->prefix, rel));
}

/* Every key under the relative prefix rel, relative to the database,
 * sorted, one per line (owned by t); "" when there is none. */
static const char *keys(dbt *t, const char *rel)
{
	strv all;
	strv_init(&all);
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(store_list_all(t->db->store, full(t, rel), collect_all_keys, &all, &err), &err);
	strv_sort(&all);
	sbuf b;
	sbuf_init(&b);
	size_t plen = strlen(t->prefix);
	for (size_t i = 0; i < all.count; i++) {
		if (i)
			sbuf_putc(&b, '\n');
		sbuf_puts(&b, all.items[i] + plen);
	}
	strv_free(&all);
	if (!b.data)
		return "";
	return own(t, sbuf_steal(&b));
}

/* How many keys lie under the relative prefix rel. */
static size_t nkeys(dbt *t, const char *rel)
{
	const char *k = keys(t, rel);
	if (!*k)
		return 0;
	size_t n = 1;
	for (; *k; k++)
		n += *k == '\n';
	return n;
}

#define EXPECT_KEYS(t, rel, expected)                                          \
	do {                                                                      \
		const char *got_ = keys(t, rel);                                      \
		ATF_CHECK_STREQ_MSG(expected, got_, "keys under %s:\n%s\n-- expected:\n%s", \
		                    rel, got_, expected);                             \
	} while (0)

/* GETs the raw object at a relative key (the caller frees it). */
static void raw_get(dbt *t, const char *rel, store_object *o)
{
	s3db_error err;
	s3db_error_clear(&err);
	store_object_init(o);
	CHECK_OK(store_get(t->db->store, full(t, rel), o, &err), &err);
}

static void raw_put(dbt *t, const char *rel, const char *body, const char *content_type)
{
	s3db_error err;
	s3db_error_clear(&err);
	store_meta none;
	store_meta_init(&none);
	store_put_opts opts = { .content_type = content_type };
	CHECK_OK(store_put(t->db->store, full(t, rel), &none, body, strlen(body), &opts, NULL, &err),
	         &err);
}

/* The catalogue as stored (owned by t). */
static json_object *catalogue(dbt *t)
{
	store_object o;
	raw_get(t, "s3db.json", &o);
	json_object *c = NULL;
	s3db_error err;
	if (s3db_json_parse((const char *)o.body, o.body_len, &c, &err) != S3DB_OK)
		atf_tc_fail("s3db.json is not JSON: %s", err.message);
	store_object_free(&o);
	return keep(t, c);
}

/* ---- helpers: counting requests -------------------------------------------------- */

typedef struct counter {
	pthread_mutex_t mu;
	int n[S3DB_CMD__COUNT];
	int total;
	int retried;        /* requests with attempts > 1 */
	int max_attempts;
	int failed;         /* requests whose result was not S3DB_OK */
	double busy_ms;     /* sum of the requests' durations */
} counter;

static void count_request(void *ud, const s3db_request_info *info)
{
	counter *c = ud;
	pthread_mutex_lock(&c->mu);
	if ((int)info->command >= 0 && info->command < S3DB_CMD__COUNT)
		c->n[info->command]++;
	c->total++;
	if (info->attempts > 1)
		c->retried++;
	if (info->attempts > c->max_attempts)
		c->max_attempts = info->attempts;
	if (info->result != S3DB_OK)
		c->failed++;
	c->busy_ms += info->duration_ms;
	pthread_mutex_unlock(&c->mu);
}

static counter counting;

/* Starts counting the requests of t's database from zero. */
static counter *count_start(dbt *t)
{
	memset(&counting, 0, sizeof counting);
	pthread_mutex_init(&counting.mu, NULL);
	s3db_set_request_hook(t->db, count_request, &counting);
	return &counting;
}

static void count_stop(dbt *t)
{
	s3db_set_request_hook(t->db, NULL, NULL);
}

/* Fails unless exactly the given numbers of PUT, GET, HEAD, DELETE,
 * DeleteObjects and LIST requests were counted (and nothing else). */
#define EXPECT_REQUESTS(c, put, getn, head, del, delmany, list)                \
	do {                                                                      \
		ATF_CHECK_EQ_MSG((put), (c)->n[S3DB_CMD_PUT_OBJECT], "PutObject: %d", \
		                 (c)->n[S3DB_CMD_PUT_OBJECT]);                        \
		ATF_CHECK_EQ_MSG((getn), (c)->n[S3DB_CMD_GET_OBJECT], "GetObject: %d", \
		                 (c)->n[S3DB_CMD_GET_OBJECT]);                        \
		ATF_CHECK_EQ_MSG((head), (c)->n[S3DB_CMD_HEAD_OBJECT], "HeadObject: %d", \
		                 (c)->n[S3DB_CMD_HEAD_OBJECT]);                       \
		ATF_CHECK_EQ_MSG((del), (c)->n[S3DB_CMD_DELETE_OBJECT], "DeleteObject: %d", \
		                 (c)->n[S3DB_CMD_DELETE_OBJECT]);                     \
		ATF_CHECK_EQ_MSG((delmany), (c)->n[S3DB_CMD_DELETE_OBJECTS],          \
		                 "DeleteObjects: %d", (c)->n[S3DB_CMD_DELETE_OBJECTS]); \
		ATF_CHECK_EQ_MSG((list), (c)->n[S3DB_CMD_LIST_OBJECTS_V2],            \
		                 "ListObjectsV2: %d", (c)->n[S3DB_CMD_LIST_OBJECTS_V2]); \
		ATF_CHECK_EQ_MSG((put) + (getn) + (head) + (del) + (delmany) + (list), \
		                 (c)->total, "requests in all: %d", (c)->total);      \
	} while (0)

/* ======================================================================== */
/* ---- catalogue ------------------------------------------------------------ */

DB_CASE(open_creates_a_21x_catalogue)
{
	store_object o;
	raw_get(t, "s3db.json", &o);
	ATF_CHECK_STREQ("application/json", o.content_type ? o.content_type : "(none)");
	ATF_CHECK_EQ(0, o.meta.count);
	store_object_free(&o);
	json_object *c = catalogue(t);
	EXPECT_FIELD(t, c, "version", "\"1\"");
	const char *v = s3db_json_get_string(c, "s3dbVersion");
	ATF_REQUIRE(v != NULL);
	ATF_CHECK_MSG(!strncmp(v, "21.", 3), "s3dbVersion %s is not 21.x", v);
	EXPECT_FIELD(t, c, "resources", "{}");
	const char *when = s3db_json_get_string(c, "lastUpdated");
	int64_t ms;
	ATF_CHECK_MSG(when && s3db_parse_iso8601(when, &ms) == 0, "lastUpdated %s",
	              when ? when : "(absent)");
	char **names = NULL;
	CHECK_OK(s3db_resource_names(t->db, &names, &t->err), &t->err);
	ATF_CHECK(names[0] == NULL);
	s3db_free_strv(names);
}

DB_CASE(reopening_sees_the_defined_resources)
{
	define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	define(t, "articles", "{\"attributes\":{\"title\":\"string\"},\"behavior\":\"body-overflow\"}");
	s3db_resource *r = s3db_resource_find(t->db, "users");
	insert(t, r, "{\"id\":\"u1\",\"name\":\"Ann\"}");
	s3db_close(t->db);
	t->db = open_db(t, NULL);
	char **names = NULL;
	CHECK_OK(s3db_resource_names(t->db, &names, &t->err), &t->err);
	ATF_REQUIRE(names[0] && names[1]);
	ATF_CHECK_STREQ("articles", names[0]);
	ATF_CHECK_STREQ("users", names[1]);
	ATF_CHECK(names[2] == NULL);
	s3db_free_strv(names);
	r = s3db_resource_find(t->db, "users");
	ATF_REQUIRE(r != NULL);
	EXPECT_JSON(get(t, r, "u1"), "{\"id\":\"u1\",\"name\":\"Ann\"}");
	json_object *def = keep(t, s3db_resource_definition(s3db_resource_find(t->db, "articles")));
	EXPECT_FIELD(t, def, "behavior", "\"body-overflow\"");
	ATF_CHECK(s3db_resource_find(t->db, "nobody") == NULL);
}

DB_CASE(defining_the_same_definition_twice_keeps_v1)
{
	const char *def = "{\"attributes\":{\"a\":\"string\",\"b\":\"number\"},\"partitions\":"
	                  "{\"byA\":{\"fields\":{\"a\":\"string\"}}}}";
	define(t, "things", def);
	json_object *before = catalogue(t);
	define(t, "things", def);
	json_object *c = catalogue(t);
	EXPECT_FIELD(t, c, "resources.things.currentVersion", "\"v1\"");
	json_object *versions = s3db_json_get_path(c, "resources.things.versions");
	ATF_REQUIRE(versions != NULL);
	ATF_CHECK_EQ(1, json_object_object_length(versions));
	ATF_CHECK_STREQ(F(t, before, "resources.things"), F(t, c, "resources.things"));
	/* and across a reopen */
	s3db_close(t->db);
	t->db = open_db(t, NULL);
	define(t, "things", def);
	EXPECT_FIELD(t, catalogue(t), "resources.things.currentVersion", "\"v1\"");
}

DB_CASE(a_changed_definition_makes_v2_keeps_v1_and_burns_removed_attributes)
{
	s3db_resource *r = define(t, "things",
	                          "{\"attributes\":{\"a\":\"string\",\"b\":\"string\",\"c\":\"number\"}}");
	insert(t, r, "{\"id\":\"old\",\"a\":\"alpha\",\"b\":\"beta\",\"c\":3.5}");
	r = define(t, "things", "{\"attributes\":{\"a\":\"string\",\"c\":\"number\",\"d\":\"string\"}}");
	json_object *c = catalogue(t);
	EXPECT_FIELD(t, c, "resources.things.currentVersion", "\"v2\"");
	EXPECT_FIELD(t, c, "resources.things.versions.v1.attributes",
	             "{\"a\":\"string\",\"b\":\"string\",\"c\":\"number\"}");
	EXPECT_FIELD(t, c, "resources.things.versions.v2.attributes",
	             "{\"a\":\"string\",\"c\":\"number\",\"d\":\"string\"}");
	EXPECT_FIELD(t, c, "resources.things.schemaRegistry.nextIndex", "4");
	EXPECT_FIELD(t, c, "resources.things.schemaRegistry.mapping", "{\"a\":0,\"c\":2,\"d\":3}");
	json_object *burned = s3db_json_get_path(c, "resources.things.schemaRegistry.burned");
	ATF_REQUIRE(burned && json_object_is_type(burned, json_type_array));
	ATF_REQUIRE_EQ(1, json_object_array_length(burned));
	json_object *b0 = json_object_array_get_idx(burned, 0);
	EXPECT_FIELD(t, b0, "index", "1");
	EXPECT_FIELD(t, b0, "attribute", "\"b\"");
	EXPECT_FIELD(t, b0, "reason", "\"removed\"");
	/* the record written under v1 still reads; b's burned key is ignored */
	EXPECT_JSON(get(t, r, "old"), "{\"id\":\"old\",\"a\":\"alpha\",\"c\":3.5}");
	store_object o;
	raw_get(t, "resource=things/data/id=old", &o);
	ATF_CHECK_STREQ("v1", store_meta_get(&o.meta, "_v"));
	store_object_free(&o);
	/* new records carry v2 */
	insert(t, r, "{\"id\":\"new\",\"a\":\"x\",\"c\":1,\"d\":\"delta\"}");
	raw_get(t, "resource=things/data/id=new", &o);
	ATF_CHECK_STREQ("v2", store_meta_get(&o.meta, "_v"));
	ATF_CHECK_STREQ("delta", store_meta_get(&o.meta, "3"));
	store_object_free(&o);
	EXPECT_JSON(get(t, r, "new"), "{\"id\":\"new\",\"a\":\"x\",\"c\":1,\"d\":\"delta\"}");
	/* a reopened database sees v2 too */
	s3db_close(t->db);
	t->db = open_db(t, NULL);
	r = s3db_resource_find(t->db, "things");
	EXPECT_JSON(get(t, r, "old"), "{\"id\":\"old\",\"a\":\"alpha\",\"c\":3.5}");
}

#define LOCK_REL "plugin=s3db-core/locks/namespace=metadata/s3db-metadata.json"

typedef struct lock_thief {
	dbt *t;
	int armed;
	int stolen;
} lock_thief;

/* Request hook: right after the catalogue is written (while the library
 * holds the lock) another writer "takes over" the lock object. */
static void steal_lock(void *ud, const s3db_request_info *info)
{
	lock_thief *th = ud;
	if (!th->armed || info->command != S3DB_CMD_PUT_OBJECT || !s3db_str_ends(info->key, "s3db.json"))
		return;
	th->armed = 0; /* the put below reports to this hook too */
	store_meta none;
	store_meta_init(&none);
	const char *body = "{\"lockId\":\"lock-someone-else\",\"expiresAt\":99999999999999}";
	store_put_opts opts = { .content_type = "application/json" };
	th->stolen = store_put(th->t->db->store, full(th->t, LOCK_REL), &none, body, strlen(body),
	                       &opts, NULL, NULL) == S3DB_OK;
}

DB_CASE(the_catalogue_lock_is_taken_over_when_expired_and_released_only_if_ours)
{
	/* an expired lock left by a crashed writer does not block */
	raw_put(t, LOCK_REL, "{\"lockId\":\"lock-crashed\",\"expiresAt\":1000}", "application/json");
	define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	EXPECT_KEYS(t, "plugin=", "");
	/* a lock that another writer holds when we release is left alone */
	lock_thief th = { .t = t, .armed = 1 };
	s3db_set_request_hook(t->db, steal_lock, &th);
	define(t, "posts", "{\"attributes\":{\"title\":\"string\"}}");
	s3db_set_request_hook(t->db, NULL, NULL);
	ATF_REQUIRE(th.stolen);
	store_object o;
	raw_get(t, LOCK_REL, &o);
	ATF_CHECK(strstr((const char *)o.body, "lock-someone-else") != NULL);
	store_object_free(&o);
	EXPECT_FIELD(t, catalogue(t), "resources.posts.currentVersion", "\"v1\"");
}

/* ---- every type ---------------------------------------------------------- */

static const char *every_type_definition =
	"{\"attributes\":{"
	"\"name\":\"string\","
	"\"price\":\"number\","
	"\"delta\":\"number\","
	"\"qty\":\"number|integer:true\","
	"\"active\":\"boolean\","
	"\"off\":\"boolean\","
	"\"mail\":\"email\","
	"\"color\":{\"type\":\"enum\",\"values\":[\"red\",\"green\",\"blue\"]},"
	"\"tags\":\"array|items:string\","
	"\"ratings\":\"array|items:number\","
	"\"counts\":\"array|items:number|integer:true\","
	"\"settings\":\"object\","
	"\"meta\":\"json\","
	"\"profile\":{\"$$type\":\"object\",\"bio\":\"string\",\"country\":\"string\"},"
	"\"born\":\"date\","
	"\"seen\":\"datetime\","
	"\"day\":\"dateonly\","
	"\"password\":\"secret\","
	"\"level\":\"string|default:basic|optional\","
	"\"score\":\"number|default:7|optional\""
	"},\"timestamps\":true}";

static const char *every_type_record =
	"{\"id\":\"t1\",\"name\":\"  Alice  \",\"price\":1234.56,\"delta\":-1234.5678,"
	"\"qty\":-12345,\"active\":true,\"off\":false,\"mail\":\"alice@example.com\","
	"\"color\":\"green\",\"tags\":[\"a\",\"b|c\",\"d\\\\e\",\"x\\\\|y\"],"
	"\"ratings\":[1.5,2,-3.25],\"counts\":[0,61,62,3844],"
	"\"settings\":{\"theme\":\"dark\",\"nested\":{\"x\":1}},"
	"\"meta\":{\"arbitrary\":[1,2,{\"a\":\"b\"}]},"
	"\"profile\":{\"bio\":\"Hi there\",\"country\":\"BR\"},"
	"\"born\":\"1990-05-15T00:00:00.000Z\",\"seen\":\"2026-11-27T00:21:04.612Z\","
	"\"day\":\"2024-01-02\",\"password\":\"hunter2\"}";

static void check_every_type(dbt *t, json_object *rec)
{
	EXPECT_FIELD(t, rec, "id", "\"t1\"");
	EXPECT_FIELD(t, rec, "name", "\"Alice\"");
	EXPECT_FIELD(t, rec, "price", "1234.56");
	EXPECT_FIELD(t, rec, "delta", "-1234.5678");
	EXPECT_FIELD(t, rec, "qty", "-12345");
	EXPECT_FIELD(t, rec, "active", "true");
	EXPECT_FIELD(t, rec, "off", "false");
	EXPECT_FIELD(t, rec, "mail", "\"alice@example.com\"");
	EXPECT_FIELD(t, rec, "color", "\"green\"");
	EXPECT_FIELD(t, rec, "tags", "[\"a\",\"b|c\",\"d\\\\e\",\"x\\\\|y\"]");
	EXPECT_FIELD(t, rec, "ratings", "[1.5,2,-3.25]");
	EXPECT_FIELD(t, rec, "counts", "[0,61,62,3844]");
	EXPECT_FIELD(t, rec, "settings", "{\"theme\":\"dark\",\"nested\":{\"x\":1}}");
	EXPECT_FIELD(t, rec, "meta", "{\"arbitrary\":[1,2,{\"a\":\"b\"}]}");
	EXPECT_FIELD(t, rec, "profile", "{\"bio\":\"Hi there\",\"country\":\"BR\"}");
	EXPECT_FIELD(t, rec, "born", "\"1990-05-15T00:00:00.000Z\"");
	EXPECT_FIELD(t, rec, "seen", "\"2026-11-27T00:21:04.612Z\"");
	EXPECT_FIELD(t, rec, "day", "\"2024-01-02\"");
	EXPECT_FIELD(t, rec, "password", "\"hunter2\"");
	EXPECT_FIELD(t, rec, "level", "\"basic\"");
	EXPECT_FIELD(t, rec, "score", "7");
	int64_t created, updated;
	const char *c = s3db_json_get_string(rec, "createdAt");
	const char *u = s3db_json_get_string(rec, "updatedAt");
	ATF_REQUIRE_MSG(c && u, "timestamps missing: %s", S(t, rec));
	ATF_CHECK_EQ(24, strlen(c));
	ATF_CHECK(s3db_parse_iso8601(c, &created) == 0);
	ATF_CHECK(s3db_parse_iso8601(u, &updated) == 0);
	ATF_CHECK(llabs(created - s3db_now_ms()) < 600000);
	ATF_CHECK_STREQ(c, u);
}

DB_CASE(every_type_round_trips)
{
	s3db_resource *r = define(t, "types", every_type_definition);
	json_object *stored = insert(t, r, every_type_record);
	check_every_type(t, stored);
	json_object *rec = get(t, r, "t1");
	check_every_type(t, rec);
	/* insert's record is the one get() returns, member for member */
	ATF_CHECK_STREQ(S(t, rec), S(t, stored));
	/* the same record through list and after a reopen */
	json_object *all = NULL;
	CHECK_OK(s3db_list(r, NULL, NULL, &all, &t->err), &t->err);
	keep(t, all);
	ATF_REQUIRE_EQ(1, json_object_array_length(all));
	ATF_CHECK_STREQ(S(t, rec), S(t, json_object_array_get_idx(all, 0)));
	s3db_close(t->db);
	t->db = open_db(t, NULL);
	r = s3db_resource_find(t->db, "types");
	ATF_CHECK_STREQ(S(t, rec), S(t, get(t, r, "t1")));
}

DB_CASE(secrets_are_stored_encrypted_and_need_the_passphrase)
{
	s3db_options opts = { .passphrase = "correct horse" };
	s3db_close(t->db);
	t->db = open_db(t, &opts);
	s3db_resource *r = define(t, "vault", "{\"attributes\":{\"label\":\"string\","
	                                      "\"pin\":\"secret\"}}");
	insert(t, r, "{\"id\":\"s1\",\"label\":\"bank\",\"pin\":\"hunter2-plaintext\"}");
	store_object o;
	raw_get(t, "resource=vault/data/id=s1", &o);
	ATF_CHECK_EQ(0, o.body_len);
	int saw_label = 0;
	for (size_t i = 0; i < o.meta.count; i++) {
		ATF_CHECK_MSG(!strstr(o.meta.items[i].value, "hunter2"),
		              "metadata %s holds the plaintext: %s", o.meta.items[i].key,
		              o.meta.items[i].value);
		saw_label |= !strcmp(o.meta.items[i].value, "bank");
	}
	ATF_CHECK_MSG(saw_label, "the record's metadata was not read (no 'bank' value)");
	store_object_free(&o);
	EXPECT_FIELD(t, get(t, r, "s1"), "pin", "\"hunter2-plaintext\"");

	/* derived keys are cached while a database is open, wiped with the last */
	ATF_CHECK(secret_cache_count() > 0);
	s3db_close(t->db);
	t->db = NULL;
	ATF_CHECK_EQ(0, secret_cache_count());

	/* the same passphrase in another handle reads it */
	t->db = open_db(t, &opts);
	r = s3db_resource_find(t->db, "vault");
	EXPECT_FIELD(t, get(t, r, "s1"), "pin", "\"hunter2-plaintext\"");

	/* another passphrase does not */
	s3db_options other = { .passphrase = "wrong horse" };
	s3db_close(t->db);
	t->db = open_db(t, &other);
	r = s3db_resource_find(t->db, "vault");
	json_object *rec = NULL;
	s3db_code rc = s3db_get(r, "s1", NULL, &rec, &t->err);
	keep(t, rec);
	if (rc == S3DB_OK) {
		EXPECT_FIELD(t, rec, "label", "\"bank\"");
		ATF_CHECK_MSG(!strstr(S(t, rec), "hunter2"), "decrypted with the wrong passphrase: %s",
		              S(t, rec));
	} else {
		ATF_CHECK_EQ(S3DB_ERR_CRYPTO, rc);
	}
}

DB_CASE(timestamps_keep_created_at_and_refresh_updated_at)
{
	s3db_resource *r = define(t, "posts", "{\"attributes\":{\"title\":\"string\"},"
	                                      "\"timestamps\":true}");
	json_object *first = insert(t, r, "{\"id\":\"p1\",\"title\":\"one\"}");
	const char *created = s3db_json_get_string(first, "createdAt");
	ATF_REQUIRE(created != NULL);
	ATF_CHECK_STREQ(created, s3db_json_get_string(first, "updatedAt"));
	/* the automatic day partitions exist */
	char day[11];
	memcpy(day, created, 10);
	day[10] = '\0';
	const char *want = own(t, s3db_asprintf(
		"resource=posts/partition=byCreatedDate/createdAt=%s/id=p1\n"
		"resource=posts/partition=byUpdatedDate/updatedAt=%s/id=p1", day, day));
	EXPECT_KEYS(t, "resource=posts/partition=", want);
	usleep(5000); /* updatedAt has millisecond resolution */
	json_object *upd = NULL;
	CHECK_OK(s3db_update(r, "p1", J(t, "{\"title\":\"two\"}"), NULL, &upd, &t->err), &t->err);
	keep(t, upd);
	json_object *rec = get(t, r, "p1");
	EXPECT_FIELD(t, rec, "title", "\"two\"");
	ATF_CHECK_STREQ(created, s3db_json_get_string(rec, "createdAt"));
	const char *updated = s3db_json_get_string(rec, "updatedAt");
	ATF_REQUIRE(updated != NULL);
	ATF_CHECK_MSG(strcmp(updated, created) > 0, "updatedAt %s not after createdAt %s", updated,
	              created);
}

/* ---- ids ------------------------------------------------------------------ */

static void check_nanoid(const char *id, size_t len)
{
	static const char alphabet[] =
		"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";
	ATF_REQUIRE(id != NULL);
	ATF_CHECK_EQ_MSG(len, strlen(id), "id %s", id);
	ATF_CHECK_MSG(strspn(id, alphabet) == strlen(id), "id %s has a character outside "
	              "nanoid's alphabet", id);
}

DB_CASE(generated_ids_are_nanoids_of_id_size)
{
	s3db_resource *r = define(t, "auto", "{\"attributes\":{\"n\":\"number\"}}");
	s3db_resource *small = define(t, "small", "{\"attributes\":{\"n\":\"number\"},\"idSize\":8}");
	EXPECT_FIELD(t, catalogue(t), "resources.small.versions.v1.idSize", "8");
	strv seen;
	strv_init(&seen);
	for (int i = 0; i < 20; i++) {
		json_object *rec = insert(t, r, "{\"n\":1}");
		const char *id = s3db_json_get_string(rec, "id");
		check_nanoid(id, 22);
		ATF_CHECK_EQ(1, s3db_exists(r, id, &t->err));
		strv_push(&seen, id);
	}
	strv_sort(&seen);
	for (size_t i = 1; i < seen.count; i++)
		ATF_CHECK_MSG(strcmp(seen.items[i - 1], seen.items[i]) != 0, "id %s twice",
		              seen.items[i]);
	strv_free(&seen);
	ATF_CHECK_EQ(20, nkeys(t, "resource=auto/data/"));
	json_object *rec = insert(t, small, "{\"n\":2}");
	check_nanoid(s3db_json_get_string(rec, "id"), 8);
	EXPECT_FIELD(t, get(t, small, s3db_json_get_string(rec, "id")), "n", "2");
}

DB_CASE(hostile_ids_are_refused_and_nothing_is_written)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\"},\"partitions\":"
	                                      "{\"byName\":{\"fields\":{\"name\":\"string\"}}}}");
	char *long_id = malloc(1101);
	ATF_REQUIRE(long_id != NULL);
	memset(long_id, 'a', 1100);
	long_id[1100] = '\0';
	own(t, long_id);
	const char *hostile[] = { "a/b", "..", ".", "x=y", "50%", "back\\slash", "tab\there",
		                  "nl\nx", "del\x7f", "\x01", "", long_id, "\xff\xfe", NULL };
	for (int i = 0; hostile[i]; i++) {
		json_object *data = json_object_new_object();
		json_object_object_add(data, "id", json_object_new_string(hostile[i]));
		json_object_object_add(data, "name", json_object_new_string("x"));
		keep(t, data);
		s3db_error err;
		s3db_error_clear(&err);
		json_object *out = NULL;
		ATF_CHECK_EQ_MSG(S3DB_ERR_BAD_ID, s3db_insert(r, data, NULL, &out, &err),
		                 "insert of id #%d: %s", i, err.message);
		ATF_CHECK(out == NULL);
		ATF_CHECK_EQ_MSG(S3DB_ERR_BAD_ID, s3db_upsert(r, data, NULL, NULL, &err), "upsert #%d", i);
		ATF_CHECK_EQ_MSG(S3DB_ERR_BAD_ID, s3db_get(r, hostile[i], NULL, &out, &err), "get #%d", i);
		ATF_CHECK_EQ_MSG(S3DB_ERR_BAD_ID,
		                 s3db_update(r, hostile[i], J(t, "{\"name\":\"y\"}"), NULL, NULL, &err),
		                 "update #%d", i);
		ATF_CHECK_EQ_MSG(S3DB_ERR_BAD_ID, s3db_delete(r, hostile[i], NULL, &err), "delete #%d", i);
		ATF_CHECK_EQ_MSG(-1, s3db_exists(r, hostile[i], &err), "exists #%d", i);
		ATF_CHECK_EQ_MSG(S3DB_ERR_BAD_ID,
		                 s3db_set_content(r, hostile[i], "x", 1, "text/plain", &err),
		                 "setContent #%d", i);
	}
	json_object *bulk = J(t, "[{\"id\":\"fine\",\"name\":\"a\"},{\"id\":\"no/pe\",\"name\":\"b\"}]");
	json_object *results = NULL;
	ATF_CHECK_EQ(S3DB_ERR_BAD_ID, s3db_insert_many(r, bulk, NULL, &results, &t->err));
	keep(t, results);
	ATF_REQUIRE(results && json_object_array_length(results) == 2);
	EXPECT_JSON(json_object_array_get_idx(results, 0), "{\"id\":\"fine\",\"name\":\"a\"}");
	EXPECT_FIELD(t, json_object_array_get_idx(results, 1), "id", "\"no/pe\"");
	ATF_CHECK(s3db_json_get_string(json_object_array_get_idx(results, 1), "error") != NULL);
	const char *del[] = { "a/b" };
	ATF_CHECK_EQ(S3DB_ERR_BAD_ID, s3db_delete_many(r, del, 1, NULL, &t->err));
	/* only the valid record of the bulk insert exists */
	EXPECT_KEYS(t, "resource=users/",
	            "resource=users/data/id=fine\n"
	            "resource=users/partition=byName/name=a/id=fine");
	/* long ids work: the longest accepted (512 bytes) on the file backend;
	 * s3rver behind the front keeps objects as files and dies on names
	 * over 255 bytes, so 200 there */
	size_t longest_len = t->is_file ? 512 : 200;
	char *longest = malloc(longest_len + 1);
	ATF_REQUIRE(longest != NULL);
	memset(longest, 'L', longest_len);
	longest[longest_len] = '\0';
	own(t, longest);
	json_object *ld = keep(t, json_object_new_object());
	json_object_object_add(ld, "id", json_object_new_string(longest));
	json_object_object_add(ld, "name", json_object_new_string("long"));
	CHECK_OK(s3db_insert(r, ld, NULL, NULL, &t->err), &t->err);
	EXPECT_FIELD(t, get(t, r, longest), "name", "\"long\"");
	char **ids = NULL;
	size_t n = 0;
	CHECK_OK(s3db_list_ids(r, NULL, &ids, &n, &t->err), &t->err);
	ATF_CHECK(n == 2 && !strcmp(ids[0], longest) && !strcmp(ids[1], "fine"));
	s3db_free_strv(ids);
	CHECK_OK(s3db_delete(r, longest, NULL, &t->err), &t->err);
	/* 513 bytes are refused before any request */
	json_object_object_add(ld, "id", json_object_new_string(long_id + 1100 - 513));
	ATF_CHECK_EQ(S3DB_ERR_BAD_ID, s3db_insert(r, ld, NULL, NULL, &t->err));
	/* ids with characters s3db allows are fine */
	insert(t, r, "{\"id\":\"caf\\u00e9 + co~ok_1.-x\",\"name\":\"u\"}");
	EXPECT_FIELD(t, get(t, r, "caf\xc3\xa9 + co~ok_1.-x"), "name", "\"u\"");
}

/* ---- insert, validation --------------------------------------------------- */

DB_CASE(insert_then_get_returns_the_record)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\","
	                                      "\"age\":\"number|integer:true|optional\"}}");
	json_object *stored = insert(t, r, "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":30}");
	EXPECT_JSON(stored, "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":30}");
	EXPECT_JSON(get(t, r, "u1"), "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":30}");
	EXPECT_KEYS(t, "resource=users/", "resource=users/data/id=u1");
}

DB_CASE(inserting_an_existing_id_fails_with_exists)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	insert(t, r, "{\"id\":\"u1\",\"name\":\"first\"}");
	json_object *out = NULL;
	ATF_CHECK_EQ(S3DB_ERR_EXISTS,
	             s3db_insert(r, J(t, "{\"id\":\"u1\",\"name\":\"second\"}"), NULL, &out, &t->err));
	ATF_CHECK(out == NULL);
	ATF_CHECK_MSG(strstr(t->err.message, "u1") != NULL, "message: %s", t->err.message);
	EXPECT_FIELD(t, get(t, r, "u1"), "name", "\"first\"");
}

DB_CASE(validation_failures_name_the_field_and_write_nothing)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string|min:2\","
	                                      "\"age\":\"number\",\"mail\":\"email|optional\","
	                                      "\"color\":{\"type\":\"enum\",\"values\":[\"red\",\"blue\"],"
	                                      "\"optional\":true}}}");
	static const struct { const char *data, *field; } bad[] = {
		{ "{\"id\":\"v1\",\"age\":3}", "name" },
		{ "{\"id\":\"v2\",\"name\":\"Ann\",\"age\":\"old\"}", "age" },
		{ "{\"id\":\"v3\",\"name\":\"A\",\"age\":3}", "name" },
		{ "{\"id\":\"v4\",\"name\":\"Ann\",\"age\":3,\"mail\":\"not-an-address\"}", "mail" },
		{ "{\"id\":\"v5\",\"name\":\"Ann\",\"age\":3,\"color\":\"green\"}", "color" },
		{ "{\"id\":\"v6\",\"name\":\"Ann\",\"age\":3,\"unknown\":1}", "unknown" },
		{ NULL, NULL }
	};
	for (int i = 0; bad[i].data; i++) {
		s3db_error err;
		s3db_error_clear(&err);
		ATF_CHECK_EQ_MSG(S3DB_ERR_VALIDATION, s3db_insert(r, J(t, bad[i].data), NULL, NULL, &err),
		                 "%s", bad[i].data);
		char quoted[64];
		snprintf(quoted, sizeof quoted, "'%s'", bad[i].field);
		ATF_CHECK_MSG(strstr(err.message, quoted) != NULL, "%s: message does not name %s: %s",
		              bad[i].data, quoted, err.message);
	}
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION, s3db_insert(r, J(t, "[1,2]"), NULL, NULL, &t->err));
	EXPECT_KEYS(t, "resource=users/", "");
	/* an update that fails validation leaves the record as it was */
	insert(t, r, "{\"id\":\"ok\",\"name\":\"Ann\",\"age\":3}");
	s3db_error err;
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION,
	             s3db_update(r, "ok", J(t, "{\"age\":\"x\"}"), NULL, NULL, &err));
	ATF_CHECK_MSG(strstr(err.message, "'age'") != NULL, "message: %s", err.message);
	EXPECT_JSON(get(t, r, "ok"), "{\"id\":\"ok\",\"name\":\"Ann\",\"age\":3}");
}

/* ---- update, replace, upsert, delete, exists --------------------------------- */

DB_CASE(update_merges_replace_replaces_and_missing_ids_are_not_found)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\","
	                                      "\"age\":\"number|optional\",\"profile\":{\"$$type\":"
	                                      "\"object|optional\",\"bio\":\"string|optional\","
	                                      "\"country\":\"string|optional\"}}}");
	insert(t, r, "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":30,\"profile\":{\"bio\":\"hi\","
	             "\"country\":\"BR\"}}");
	json_object *out = NULL;
	CHECK_OK(s3db_update(r, "u1", J(t, "{\"age\":31,\"profile\":{\"country\":\"PT\"}}"), NULL,
	                     &out, &t->err), &t->err);
	keep(t, out);
	const char *merged = "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":31,"
	                     "\"profile\":{\"bio\":\"hi\",\"country\":\"PT\"}}";
	EXPECT_JSON(out, merged);
	EXPECT_JSON(get(t, r, "u1"), merged);
	/* an id in the patch must be the record's */
	ATF_CHECK_EQ(S3DB_ERR_BAD_ID, s3db_update(r, "u1", J(t, "{\"id\":\"u2\",\"age\":1}"), NULL,
	                                          NULL, &t->err));
	CHECK_OK(s3db_update(r, "u1", J(t, "{\"id\":\"u1\",\"age\":32}"), NULL, NULL, &t->err),
	         &t->err);
	EXPECT_FIELD(t, get(t, r, "u1"), "age", "32");

	CHECK_OK(s3db_replace(r, "u1", J(t, "{\"name\":\"Bea\"}"), NULL, &out, &t->err), &t->err);
	keep(t, out);
	EXPECT_JSON(out, "{\"id\":\"u1\",\"name\":\"Bea\"}");
	EXPECT_JSON(get(t, r, "u1"), "{\"id\":\"u1\",\"name\":\"Bea\"}");

	out = NULL;
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_get(r, "ghost", NULL, &out, &t->err));
	ATF_CHECK(out == NULL);
	ATF_CHECK_MSG(strstr(t->err.message, "ghost") != NULL, "message: %s", t->err.message);
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_update(r, "ghost", J(t, "{\"age\":1}"), NULL, NULL,
	                                             &t->err));
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_replace(r, "ghost", J(t, "{\"name\":\"x\"}"), NULL,
	                                              NULL, &t->err));
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_delete(r, "ghost", NULL, &t->err));
	EXPECT_KEYS(t, "resource=users/", "resource=users/data/id=u1");
}

DB_CASE(upsert_inserts_or_replaces)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\","
	                                      "\"age\":\"number|optional\"}}");
	json_object *out = NULL;
	CHECK_OK(s3db_upsert(r, J(t, "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":1}"), NULL, &out,
	                     &t->err), &t->err);
	keep(t, out);
	EXPECT_JSON(out, "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":1}");
	EXPECT_JSON(get(t, r, "u1"), "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":1}");
	CHECK_OK(s3db_upsert(r, J(t, "{\"id\":\"u1\",\"name\":\"Bea\"}"), NULL, &out, &t->err),
	         &t->err);
	keep(t, out);
	EXPECT_JSON(out, "{\"id\":\"u1\",\"name\":\"Bea\"}");
	EXPECT_JSON(get(t, r, "u1"), "{\"id\":\"u1\",\"name\":\"Bea\"}");
	ATF_CHECK_EQ(S3DB_ERR_BAD_ID, s3db_upsert(r, J(t, "{\"name\":\"no id\"}"), NULL, NULL,
	                                          &t->err));
	EXPECT_KEYS(t, "resource=users/", "resource=users/data/id=u1");
}

DB_CASE(delete_removes_the_record_and_exists_says_so)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	insert(t, r, "{\"id\":\"u1\",\"name\":\"Ann\"}");
	insert(t, r, "{\"id\":\"u2\",\"name\":\"Bob\"}");
	ATF_CHECK_EQ(1, s3db_exists(r, "u1", &t->err));
	CHECK_OK(s3db_delete(r, "u1", NULL, &t->err), &t->err);
	ATF_CHECK_EQ(0, s3db_exists(r, "u1", &t->err));
	json_object *out = NULL;
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_get(r, "u1", NULL, &out, &t->err));
	ATF_CHECK_EQ(1, s3db_exists(r, "u2", &t->err));
	EXPECT_KEYS(t, "resource=users/", "resource=users/data/id=u2");
	/* the id can be used again */
	insert(t, r, "{\"id\":\"u1\",\"name\":\"Cid\"}");
	EXPECT_FIELD(t, get(t, r, "u1"), "name", "\"Cid\"");
}

/* ---- partitions ------------------------------------------------------------- */

static const char *partitioned_users =
	"{\"attributes\":{\"name\":\"string\",\"region\":\"string|optional\","
	"\"active\":\"boolean\",\"profile\":{\"$$type\":\"object|optional\","
	"\"country\":\"string|optional\"}},"
	"\"partitions\":{"
	"\"byRegion\":{\"fields\":{\"region\":\"string\"}},"
	"\"byRegionActive\":{\"fields\":{\"region\":\"string\",\"active\":\"boolean\"}},"
	"\"byCountry\":{\"fields\":{\"profile.country\":\"string\"}}}}";

DB_CASE(partition_references_follow_insert_update_and_delete)
{
	s3db_resource *r = define(t, "users", partitioned_users);
	insert(t, r, "{\"id\":\"u1\",\"name\":\"Ann\",\"region\":\"eu\",\"active\":true,"
	             "\"profile\":{\"country\":\"BR\"}}");
	insert(t, r, "{\"id\":\"u2\",\"name\":\"Bob\",\"region\":\"us\",\"active\":false}");
	insert(t, r, "{\"id\":\"u3\",\"name\":\"Cid\",\"region\":\"eu\",\"active\":false,"
	             "\"profile\":{\"country\":\"PT\"}}");
	EXPECT_KEYS(t, "resource=users/partition=",
	            "resource=users/partition=byCountry/profile.country=BR/id=u1\n"
	            "resource=users/partition=byCountry/profile.country=PT/id=u3\n"
	            "resource=users/partition=byRegion/region=eu/id=u1\n"
	            "resource=users/partition=byRegion/region=eu/id=u3\n"
	            "resource=users/partition=byRegion/region=us/id=u2\n"
	            "resource=users/partition=byRegionActive/active=false/region=eu/id=u3\n"
	            "resource=users/partition=byRegionActive/active=false/region=us/id=u2\n"
	            "resource=users/partition=byRegionActive/active=true/region=eu/id=u1");
	/* references are empty objects carrying _v only */
	store_object o;
	raw_get(t, "resource=users/partition=byRegion/region=eu/id=u1", &o);
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK_EQ(1, o.meta.count);
	ATF_CHECK_STREQ("v1", store_meta_get(&o.meta, "_v"));
	store_object_free(&o);

	/* u1 moves to another region: its references move with it */
	CHECK_OK(s3db_update(r, "u1", J(t, "{\"region\":\"us\"}"), NULL, NULL, &t->err), &t->err);
	/* u2 loses its region: no reference for the partitions that need it */
	CHECK_OK(s3db_update(r, "u2", J(t, "{\"region\":null}"), NULL, NULL, &t->err), &t->err);
	/* u3 loses its nested country */
	CHECK_OK(s3db_replace(r, "u3", J(t, "{\"name\":\"Cid\",\"region\":\"eu\",\"active\":true}"),
	                      NULL, NULL, &t->err), &t->err);
	EXPECT_KEYS(t, "resource=users/partition=",
	            "resource=users/partition=byCountry/profile.country=BR/id=u1\n"
	            "resource=users/partition=byRegion/region=eu/id=u3\n"
	            "resource=users/partition=byRegion/region=us/id=u1\n"
	            "resource=users/partition=byRegionActive/active=true/region=eu/id=u3\n"
	            "resource=users/partition=byRegionActive/active=true/region=us/id=u1");
	EXPECT_FIELD(t, get(t, r, "u2"), "region", "null");

	/* delete takes the references along */
	CHECK_OK(s3db_delete(r, "u1", NULL, &t->err), &t->err);
	EXPECT_KEYS(t, "resource=users/partition=",
	            "resource=users/partition=byRegion/region=eu/id=u3\n"
	            "resource=users/partition=byRegionActive/active=true/region=eu/id=u3");
	insert(t, r, "{\"id\":\"u4\",\"name\":\"Dee\",\"region\":\"eu\",\"active\":true,"
	             "\"profile\":{\"country\":\"BR\"}}");
	const char *ids[] = { "u2", "u3", "u4", "never-existed" };
	CHECK_OK(s3db_delete_many(r, ids, 4, NULL, &t->err), &t->err);
	EXPECT_KEYS(t, "resource=users/", "");
}

/* The ids of a listing as "a,b,c" (owned by t). */
static const char *list_ids(dbt *t, s3db_resource *r, const char *partition, const char *values,
                            size_t offset, size_t limit)
{
	s3db_list_opts lo = { .partition = partition, .partition_values = values ? J(t, values) : NULL,
		              .offset = offset, .limit = limit };
	char **ids = NULL;
	size_t n = 0;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_list_ids(r, &lo, &ids, &n, &err), &err);
	sbuf b;
	sbuf_init(&b);
	size_t i;
	for (i = 0; ids[i]; i++) {
		if (i)
			sbuf_putc(&b, ',');
		sbuf_puts(&b, ids[i]);
	}
	ATF_CHECK_EQ(n, i);
	s3db_free_strv(ids);
	return b.data ? own(t, sbuf_steal(&b)) : "";
}

static size_t count_of(dbt *t, s3db_resource *r, const char *partition, const char *values)
{
	s3db_list_opts lo = { .partition = partition,
		              .partition_values = values ? J(t, values) : NULL };
	size_t n = 0;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_count(r, &lo, &n, NULL, &err), &err);
	return n;
}

/* The ids of an array of records as "a,b,c" (owned by t). */
static const char *ids_of(dbt *t, json_object *records)
{
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < json_object_array_length(records); i++) {
		if (i)
			sbuf_putc(&b, ',');
		const char *id = s3db_json_get_string(json_object_array_get_idx(records, i), "id");
		sbuf_puts(&b, id ? id : "(no id)");
	}
	return b.data ? own(t, sbuf_steal(&b)) : "";
}

DB_CASE(listing_and_counting_by_partition_and_values)
{
	s3db_resource *r = define(t, "users", partitioned_users);
	insert(t, r, "{\"id\":\"u1\",\"name\":\"Ann\",\"region\":\"eu\",\"active\":true,"
	             "\"profile\":{\"country\":\"BR\"}}");
	insert(t, r, "{\"id\":\"u2\",\"name\":\"Bob\",\"region\":\"us\",\"active\":false}");
	insert(t, r, "{\"id\":\"u3\",\"name\":\"Cid\",\"region\":\"eu\",\"active\":false,"
	             "\"profile\":{\"country\":\"PT\"}}");
	insert(t, r, "{\"id\":\"u4\",\"name\":\"Dee\",\"region\":\"eu\",\"active\":true,"
	             "\"profile\":{\"country\":\"BR\"}}");
	insert(t, r, "{\"id\":\"u5\",\"name\":\"Eve\",\"active\":true}");

	ATF_CHECK_STREQ("u1,u2,u3,u4,u5", list_ids(t, r, NULL, NULL, 0, 0));
	ATF_CHECK_STREQ("u1,u2,u3,u4", list_ids(t, r, "byRegion", NULL, 0, 0));
	ATF_CHECK_STREQ("u1,u3,u4", list_ids(t, r, "byRegion", "{\"region\":\"eu\"}", 0, 0));
	ATF_CHECK_STREQ("u2", list_ids(t, r, "byRegion", "{\"region\":\"us\"}", 0, 0));
	ATF_CHECK_STREQ("", list_ids(t, r, "byRegion", "{\"region\":\"asia\"}", 0, 0));
	ATF_CHECK_STREQ("u3,u4", list_ids(t, r, "byRegion", "{\"region\":\"eu\"}", 1, 5));
	/* multi-field: every field, the leading one, the non-leading one */
	ATF_CHECK_STREQ("u1,u4", list_ids(t, r, "byRegionActive",
	                                   "{\"region\":\"eu\",\"active\":true}", 0, 0));
	ATF_CHECK_STREQ("u2,u3", list_ids(t, r, "byRegionActive", "{\"active\":false}", 0, 0));
	ATF_CHECK_STREQ("u1,u3,u4", list_ids(t, r, "byRegionActive", "{\"region\":\"eu\"}", 0, 0));
	/* nested field */
	ATF_CHECK_STREQ("u1,u3,u4", list_ids(t, r, "byCountry", NULL, 0, 0));
	ATF_CHECK_STREQ("u1,u4", list_ids(t, r, "byCountry", "{\"profile.country\":\"BR\"}", 0, 0));
	ATF_CHECK_STREQ("u3", list_ids(t, r, "byCountry", "{\"profile.country\":\"PT\"}", 0, 0));

	ATF_CHECK_EQ(5, count_of(t, r, NULL, NULL));
	ATF_CHECK_EQ(3, count_of(t, r, "byRegion", "{\"region\":\"eu\"}"));
	ATF_CHECK_EQ(2, count_of(t, r, "byRegionActive", "{\"active\":true,\"region\":\"eu\"}"));
	ATF_CHECK_EQ(2, count_of(t, r, "byCountry", "{\"profile.country\":\"BR\"}"));

	s3db_list_opts lo = { .partition = "byRegionActive",
		              .partition_values = J(t, "{\"region\":\"eu\",\"active\":false}") };
	json_object *recs = NULL;
	CHECK_OK(s3db_list(r, &lo, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_REQUIRE_EQ(1, json_object_array_length(recs));
	EXPECT_JSON(json_object_array_get_idx(recs, 0),
	            "{\"id\":\"u3\",\"name\":\"Cid\",\"region\":\"eu\",\"active\":false,"
	            "\"profile\":{\"country\":\"PT\"}}");
	/* query inside a partition */
	s3db_list_opts qo = { .partition = "byRegion", .partition_values = J(t, "{\"region\":\"eu\"}") };
	CHECK_OK(s3db_query(r, J(t, "{\"active\":true}"), &qo, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("u1,u4", ids_of(t, recs));

	/* unknown partitions and fields are errors, not empty lists */
	char **ids = NULL;
	s3db_list_opts bad = { .partition = "byNothing" };
	ATF_CHECK(s3db_list_ids(r, &bad, &ids, NULL, &t->err) != S3DB_OK);
	s3db_list_opts badf = { .partition = "byRegion", .partition_values = J(t, "{\"name\":\"x\"}") };
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, s3db_list_ids(r, &badf, &ids, NULL, &t->err));
}

DB_CASE(partition_values_with_a_slash_are_refused)
{
	s3db_resource *r = define(t, "users", partitioned_users);
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION,
	             s3db_insert(r, J(t, "{\"id\":\"u1\",\"name\":\"A\",\"region\":\"eu/west\","
	                                 "\"active\":true}"), NULL, NULL, &t->err));
	ATF_CHECK_MSG(strstr(t->err.message, "region") != NULL, "message: %s", t->err.message);
	EXPECT_KEYS(t, "resource=users/", "");
}

/* ---- behaviors at the 2 KB boundary -------------------------------------------- */

/* {"id":ID,"text":N times c} (owned by t). */
static json_object *big_record(dbt *t, const char *id, size_t n, char c, const char *more)
{
	char *text = malloc(n + 1);
	ATF_REQUIRE(text != NULL);
	memset(text, c, n);
	text[n] = '\0';
	json_object *o = more ? J(t, more) : keep(t, json_object_new_object());
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "text", json_object_new_string(text));
	free(text);
	return o;
}

DB_CASE(enforce_limits_refuses_over_the_limit_and_writes_nothing)
{
	s3db_resource *r = define(t, "products", "{\"attributes\":{\"name\":\"string\","
	                                         "\"text\":\"string\"},"
	                                         "\"behavior\":\"enforce-limits\"}");
	json_object *ok = big_record(t, "e1", 1900, 'x', "{\"name\":\"Widget\"}");
	CHECK_OK(s3db_insert(r, ok, NULL, NULL, &t->err), &t->err);
	EXPECT_SAME_RECORD(ok, get(t, r, "e1"));
	store_object o;
	raw_get(t, "resource=products/data/id=e1", &o);
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK_STREQ("Widget", store_meta_get(&o.meta, "0"));
	store_object_free(&o);
	ATF_CHECK_EQ(S3DB_ERR_METADATA_TOO_LARGE,
	             s3db_insert(r, big_record(t, "e2", 3000, 'x', "{\"name\":\"Big\"}"), NULL, NULL,
	                         &t->err));
	ATF_CHECK_MSG(strstr(t->err.message, "e2") != NULL, "message: %s", t->err.message);
	/* a multi-byte value counts its UTF-8 bytes: 700 x U+20AC = 2100 bytes */
	sbuf euros;
	sbuf_init(&euros);
	for (int i = 0; i < 700; i++)
		sbuf_puts(&euros, "\xe2\x82\xac");
	json_object *eu = keep(t, json_object_new_object());
	json_object_object_add(eu, "id", json_object_new_string("e3"));
	json_object_object_add(eu, "name", json_object_new_string("E"));
	json_object_object_add(eu, "text", json_object_new_string(euros.data));
	sbuf_free(&euros);
	ATF_CHECK_EQ(S3DB_ERR_METADATA_TOO_LARGE, s3db_insert(r, eu, NULL, NULL, &t->err));
	/* an update over the limit is refused too and leaves the record */
	ATF_CHECK_EQ(S3DB_ERR_METADATA_TOO_LARGE,
	             s3db_update(r, "e1", big_record(t, "e1", 3000, 'y', NULL), NULL, NULL, &t->err));
	EXPECT_KEYS(t, "resource=products/", "resource=products/data/id=e1");
	EXPECT_SAME_RECORD(ok, get(t, r, "e1"));
}

DB_CASE(enforce_limits_boundary_is_s3dbjs_estimate)
{
	/* §3.12/§3.13: T = size of the mapped object M (short keys, mapped
	 * values, _v) must not exceed L = 2047 - size({_v, id}).  For one
	 * attribute (short key "0"), _v "v1" and id "e1":
	 * T = 4 + 1 + len <= 2047 - 4 - 4, so len <= 2034. */
	s3db_resource *r = define(t, "products", "{\"attributes\":{\"text\":\"string\"},"
	                                         "\"behavior\":\"enforce-limits\"}");
	const size_t fits = 2034;
	json_object *ok = big_record(t, "e1", fits, 'x', NULL);
	CHECK_OK(s3db_insert(r, ok, NULL, NULL, &t->err), &t->err);
	ATF_CHECK_EQ(S3DB_ERR_METADATA_TOO_LARGE,
	             s3db_insert(r, big_record(t, "e2", fits + 1, 'x', NULL), NULL, NULL, &t->err));
	EXPECT_SAME_RECORD(ok, get(t, r, "e1"));
	EXPECT_KEYS(t, "resource=products/", "resource=products/data/id=e1");
}

DB_CASE(user_managed_boundary_is_s3dbjs_estimate)
{
	/* user-managed: the same T <= L as enforce-limits (len <= 2034 with
	 * key "0", _v "v1", id "u1"); over it the record goes to the body */
	s3db_resource *um = define(t, "um", "{\"attributes\":{\"text\":\"string\"}}");
	CHECK_OK(s3db_insert(um, big_record(t, "u1", 2034, 'x', NULL), NULL, NULL, &t->err), &t->err);
	CHECK_OK(s3db_insert(um, big_record(t, "u2", 2035, 'x', NULL), NULL, NULL, &t->err), &t->err);
	store_object o;
	raw_get(t, "resource=um/data/id=u1", &o);
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK_EQ(2034, strlen(store_meta_get(&o.meta, "0") ? store_meta_get(&o.meta, "0") : ""));
	store_object_free(&o);
	raw_get(t, "resource=um/data/id=u2", &o);
	ATF_CHECK(o.body_len > 2035);
	ATF_CHECK(store_meta_get(&o.meta, "0") == NULL);
	store_object_free(&o);
	EXPECT_SAME_RECORD(big_record(t, "u1", 2034, 'x', NULL), get(t, um, "u1"));
	EXPECT_SAME_RECORD(big_record(t, "u2", 2035, 'x', NULL), get(t, um, "u2"));
	/* non-ASCII text fits s3db.js's estimate (1,600 UTF-8 bytes) but not
	 * once header-encoded: it must still never exceed AWS's 2 KB */
	sbuf accents;
	sbuf_init(&accents);
	for (int i = 0; i < 800; i++)
		sbuf_puts(&accents, "\xc3\xa9");
	json_object *u3 = keep(t, json_object_new_object());
	json_object_object_add(u3, "id", json_object_new_string("u3"));
	json_object_object_add(u3, "text", json_object_new_string(accents.data));
	sbuf_free(&accents);
	CHECK_OK(s3db_insert(um, u3, NULL, NULL, &t->err), &t->err);
	raw_get(t, "resource=um/data/id=u3", &o);
	ATF_CHECK_MSG(store_meta_size(&o.meta) <= 2048, "%zu bytes of metadata",
	              store_meta_size(&o.meta));
	store_object_free(&o);
	EXPECT_SAME_RECORD(u3, get(t, um, "u3"));
}

DB_CASE(body_overflow_boundary_is_s3dbjs_estimate)
{
	/* body-overflow (§3.13): value sizes only, starting from |v1| = 2:
	 * a field stays while 2 + len <= L = 2039, so len <= 2037 (real
	 * headers: 1 + 2037 + 4 = 2042 bytes, within AWS's 2048) */
	store_object o;
	s3db_resource *bo = define(t, "bo", "{\"attributes\":{\"text\":\"string\"},"
	                                    "\"behavior\":\"body-overflow\"}");
	CHECK_OK(s3db_insert(bo, big_record(t, "b1", 2037, 'x', NULL), NULL, NULL, &t->err), &t->err);
	CHECK_OK(s3db_insert(bo, big_record(t, "b2", 2038, 'x', NULL), NULL, NULL, &t->err), &t->err);
	raw_get(t, "resource=bo/data/id=b1", &o);
	ATF_CHECK_EQ_MSG(0, o.body_len, "b1 (2037 bytes) was split: body %zu bytes", o.body_len);
	ATF_CHECK(store_meta_get(&o.meta, "_overflow") == NULL);
	store_object_free(&o);
	raw_get(t, "resource=bo/data/id=b2", &o);
	ATF_CHECK_STREQ("true", store_meta_get(&o.meta, "_overflow"));
	store_object_free(&o);
	EXPECT_SAME_RECORD(big_record(t, "b1", 2037, 'x', NULL), get(t, bo, "b1"));
	EXPECT_SAME_RECORD(big_record(t, "b2", 2038, 'x', NULL), get(t, bo, "b2"));
}

DB_CASE(body_overflow_moves_big_fields_to_the_body)
{
	s3db_resource *r = define(t, "articles", "{\"attributes\":{\"title\":\"string\","
	                                         "\"text\":\"string\",\"n\":\"number\"},"
	                                         "\"behavior\":\"body-overflow\"}");
	json_object *big = big_record(t, "a1", 3000, 'L', "{\"title\":\"Big one\",\"n\":123456}");
	CHECK_OK(s3db_insert(r, big, NULL, NULL, &t->err), &t->err);
	insert(t, r, "{\"id\":\"a2\",\"title\":\"Short\",\"text\":\"tiny\",\"n\":7}");
	store_object o;
	raw_get(t, "resource=articles/data/id=a1", &o);
	ATF_CHECK_STREQ("true", store_meta_get(&o.meta, "_overflow"));
	ATF_CHECK_STREQ("Big one", store_meta_get(&o.meta, "0"));
	ATF_CHECK_STREQ("w7e", store_meta_get(&o.meta, "2"));
	ATF_CHECK(store_meta_get(&o.meta, "1") == NULL);
	ATF_CHECK_STREQ("application/json", o.content_type ? o.content_type : "(none)");
	json_object *body = NULL;
	ATF_REQUIRE(s3db_json_parse((const char *)o.body, o.body_len, &body, NULL) == S3DB_OK);
	keep(t, body);
	ATF_CHECK_EQ(3000, strlen(s3db_json_get_string(body, "1")));
	ATF_CHECK(store_meta_size(&o.meta) <= 2048);
	store_object_free(&o);
	json_object *rec = get(t, r, "a1");
	EXPECT_SAME_RECORD(big, rec);
	/* a record that fits keeps an empty body */
	raw_get(t, "resource=articles/data/id=a2", &o);
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK(store_meta_get(&o.meta, "_overflow") == NULL);
	store_object_free(&o);
	EXPECT_JSON(get(t, r, "a2"), "{\"id\":\"a2\",\"title\":\"Short\",\"text\":\"tiny\",\"n\":7}");
	/* updating the big record keeps the split right */
	CHECK_OK(s3db_update(r, "a1", J(t, "{\"title\":\"Big two\"}"), NULL, NULL, &t->err), &t->err);
	rec = get(t, r, "a1");
	EXPECT_FIELD(t, rec, "title", "\"Big two\"");
	ATF_CHECK_EQ(3000, strlen(s3db_json_get_string(rec, "text")));
}

DB_CASE(body_only_keeps_every_field_in_the_body)
{
	s3db_resource *r = define(t, "docs", "{\"attributes\":{\"title\":\"string\","
	                                     "\"text\":\"string\",\"n\":\"number\"},"
	                                     "\"behavior\":\"body-only\"}");
	json_object *big = big_record(t, "d1", 5000, 'z', "{\"title\":\"Doc\",\"n\":16}");
	CHECK_OK(s3db_insert(r, big, NULL, NULL, &t->err), &t->err);
	store_object o;
	raw_get(t, "resource=docs/data/id=d1", &o);
	ATF_CHECK_EQ(2, o.meta.count);
	ATF_CHECK_STREQ("v1", store_meta_get(&o.meta, "_v"));
	ATF_CHECK_STREQ("{\"title\":\"0\",\"text\":\"1\",\"n\":\"2\"}", store_meta_get(&o.meta, "_map"));
	ATF_CHECK_STREQ("application/json", o.content_type ? o.content_type : "(none)");
	json_object *body = NULL;
	ATF_REQUIRE(s3db_json_parse((const char *)o.body, o.body_len, &body, NULL) == S3DB_OK);
	keep(t, body);
	EXPECT_FIELD(t, body, "0", "\"Doc\"");
	EXPECT_FIELD(t, body, "2", "\"g\"");
	EXPECT_FIELD(t, body, "_v", "\"v1\"");
	store_object_free(&o);
	EXPECT_SAME_RECORD(big, get(t, r, "d1"));
	insert(t, r, "{\"id\":\"d2\",\"title\":\"small\",\"text\":\"\",\"n\":0}");
	EXPECT_JSON(get(t, r, "d2"), "{\"id\":\"d2\",\"title\":\"small\",\"text\":\"\",\"n\":0}");
}

DB_CASE(truncate_data_cuts_and_marks_truncated)
{
	s3db_resource *r = define(t, "notes", "{\"attributes\":{\"title\":\"string\","
	                                      "\"text\":\"string\"},\"behavior\":\"truncate-data\"}");
	json_object *stored = NULL;
	CHECK_OK(s3db_insert(r, big_record(t, "n1", 3000, 'y', "{\"title\":\"T\"}"), NULL, &stored,
	                     &t->err), &t->err);
	keep(t, stored);
	insert(t, r, "{\"id\":\"n2\",\"title\":\"T\",\"text\":\"short\"}");
	store_object o;
	raw_get(t, "resource=notes/data/id=n1", &o);
	ATF_CHECK_STREQ("true", store_meta_get(&o.meta, "_truncated"));
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK(store_meta_size(&o.meta) <= 2048);
	store_object_free(&o);
	json_object *rec = get(t, r, "n1");
	EXPECT_FIELD(t, rec, "title", "\"T\"");
	const char *text = s3db_json_get_string(rec, "text");
	ATF_REQUIRE(text != NULL);
	ATF_CHECK_MSG(strlen(text) < 3000 && strlen(text) > 1900, "kept %zu bytes", strlen(text));
	ATF_CHECK_EQ(strlen(text), strspn(text, "y"));
	/* insert returns the record as get() reads it: cut */
	ATF_CHECK_STREQ(S(t, rec), S(t, stored));
	raw_get(t, "resource=notes/data/id=n2", &o);
	ATF_CHECK(store_meta_get(&o.meta, "_truncated") == NULL);
	store_object_free(&o);
	EXPECT_JSON(get(t, r, "n2"), "{\"id\":\"n2\",\"title\":\"T\",\"text\":\"short\"}");
}

DB_CASE(user_managed_over_the_limit_stores_the_body)
{
	s3db_resource *r = define(t, "free", "{\"attributes\":{\"title\":\"string\","
	                                     "\"text\":\"string\"}}");
	json_object *big = big_record(t, "f1", 3000, 'q', "{\"title\":\"Big\"}");
	CHECK_OK(s3db_insert(r, big, NULL, NULL, &t->err), &t->err);
	store_object o;
	raw_get(t, "resource=free/data/id=f1", &o);
	ATF_CHECK_EQ(1, o.meta.count);
	ATF_CHECK_STREQ("v1", store_meta_get(&o.meta, "_v"));
	ATF_CHECK_STREQ("application/json", o.content_type ? o.content_type : "(none)");
	json_object *body = NULL;
	ATF_REQUIRE(s3db_json_parse((const char *)o.body, o.body_len, &body, NULL) == S3DB_OK);
	keep(t, body);
	EXPECT_FIELD(t, body, "0", "\"Big\"");
	EXPECT_FIELD(t, body, "_v", "\"v1\"");
	store_object_free(&o);
	EXPECT_SAME_RECORD(big, get(t, r, "f1"));
	/* under the limit everything is metadata */
	insert(t, r, "{\"id\":\"f2\",\"title\":\"Small\",\"text\":\"t\"}");
	raw_get(t, "resource=free/data/id=f2", &o);
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK_STREQ("Small", store_meta_get(&o.meta, "0"));
	store_object_free(&o);
	/* an update of the big record reads back whole */
	CHECK_OK(s3db_update(r, "f1", J(t, "{\"title\":\"Bigger\"}"), NULL, NULL, &t->err), &t->err);
	json_object *rec = get(t, r, "f1");
	EXPECT_FIELD(t, rec, "title", "\"Bigger\"");
	ATF_CHECK_EQ(3000, strlen(s3db_json_get_string(rec, "text")));
}

/* ---- listing --------------------------------------------------------------------- */

DB_CASE(list_count_page_and_query_honour_limit_and_offset)
{
	s3db_resource *r = define(t, "items", "{\"attributes\":{\"n\":\"number\","
	                                      "\"group\":\"string\"}}");
	json_object *batch = J(t, "[]");
	for (int i = 0; i < 12; i++) {
		char text[80];
		snprintf(text, sizeof text, "{\"id\":\"r%02d\",\"n\":%d,\"group\":\"%s\"}", i, i,
		         i % 3 == 0 ? "a" : "b");
		json_object_array_add(batch, json_object_get(J(t, text)));
	}
	json_object *results = NULL;
	CHECK_OK(s3db_insert_many(r, batch, NULL, &results, &t->err), &t->err);
	keep(t, results);
	ATF_CHECK_EQ(12, json_object_array_length(results));
	ATF_CHECK_STREQ("r00,r01,r02,r03,r04,r05,r06,r07,r08,r09,r10,r11", ids_of(t, results));

	ATF_CHECK_STREQ("r00,r01,r02,r03,r04,r05,r06,r07,r08,r09,r10,r11",
	                list_ids(t, r, NULL, NULL, 0, 0));
	ATF_CHECK_STREQ("r03,r04,r05,r06,r07", list_ids(t, r, NULL, NULL, 3, 5));
	ATF_CHECK_STREQ("r10,r11", list_ids(t, r, NULL, NULL, 10, 5));
	ATF_CHECK_STREQ("", list_ids(t, r, NULL, NULL, 12, 0));
	ATF_CHECK_EQ(12, count_of(t, r, NULL, NULL));

	s3db_list_opts lo = { .offset = 2, .limit = 3 };
	json_object *recs = NULL;
	CHECK_OK(s3db_list(r, &lo, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("r02,r03,r04", ids_of(t, recs));
	EXPECT_JSON(json_object_array_get_idx(recs, 0), "{\"id\":\"r02\",\"n\":2,\"group\":\"b\"}");

	json_object *page = NULL;
	CHECK_OK(s3db_page(r, 1, 5, NULL, NULL, &page, &t->err), &t->err);
	keep(t, page);
	ATF_CHECK_STREQ("r05,r06,r07,r08,r09", ids_of(t, json_object_object_get(page, "items")));
	EXPECT_FIELD(t, page, "page", "1");
	EXPECT_FIELD(t, page, "pageSize", "5");
	EXPECT_FIELD(t, page, "totalItems", "12");
	EXPECT_FIELD(t, page, "totalPages", "3");
	CHECK_OK(s3db_page(r, 2, 5, NULL, NULL, &page, &t->err), &t->err);
	keep(t, page);
	ATF_CHECK_STREQ("r10,r11", ids_of(t, json_object_object_get(page, "items")));
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, s3db_page(r, 0, 0, NULL, NULL, &page, &t->err));

	CHECK_OK(s3db_query(r, J(t, "{\"group\":\"a\"}"), NULL, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("r00,r03,r06,r09", ids_of(t, recs));
	s3db_list_opts qo = { .offset = 1, .limit = 2 };
	CHECK_OK(s3db_query(r, J(t, "{\"group\":\"a\"}"), &qo, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("r03,r06", ids_of(t, recs));
	CHECK_OK(s3db_query(r, J(t, "{\"n\":7.0}"), NULL, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("r07", ids_of(t, recs));
}

DB_CASE(a_field_named_error_does_not_hide_records_from_lists)
{
	s3db_resource *r = define(t, "logs", "{\"attributes\":{\"error\":\"string\"}}");
	insert(t, r, "{\"id\":\"l1\",\"error\":\"disk full\"}");
	json_object *recs = NULL;
	CHECK_OK(s3db_list(r, NULL, NULL, &recs, &t->err), &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("l1", ids_of(t, recs));
	CHECK_OK(s3db_query(r, J(t, "{\"error\":\"disk full\"}"), NULL, NULL, &recs, &t->err),
	         &t->err);
	keep(t, recs);
	ATF_CHECK_STREQ("l1", ids_of(t, recs));
}

DB_CASE(a_thousand_and_fifty_records_list_in_two_requests)
{
	s3db_resource *r = define(t, "many", "{\"attributes\":{\"n\":\"number|integer:true\"}}");
	json_object *batch = J(t, "[]");
	for (int i = 0; i < 1050; i++) {
		json_object *o = json_object_new_object();
		char id[16];
		snprintf(id, sizeof id, "k%04d", i);
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "n", json_object_new_int(i));
		json_object_array_add(batch, o);
	}
	counter *c = count_start(t);
	CHECK_OK(s3db_insert_many(r, batch, NULL, NULL, &t->err), &t->err);
	EXPECT_REQUESTS(c, 1050, 0, 0, 0, 0, 0);

	c = count_start(t);
	char **ids = NULL;
	size_t n = 0;
	CHECK_OK(s3db_list_ids(r, NULL, &ids, &n, &t->err), &t->err);
	EXPECT_REQUESTS(c, 0, 0, 0, 0, 0, 2);
	ATF_REQUIRE_EQ(1050, n);
	for (size_t i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof want, "k%04zu", i);
		if (strcmp(want, ids[i]) != 0) {
			atf_tc_fail_nonfatal("ids[%zu] = %s, expected %s", i, ids[i], want);
			break;
		}
	}
	ATF_CHECK(ids[n] == NULL);

	c = count_start(t);
	json_object *results = NULL;
	double t0 = s3db_monotonic_ms();
	CHECK_OK(s3db_get_many(r, (const char *const *)ids, n, NULL, &results, &t->err), &t->err);
	double elapsed = s3db_monotonic_ms() - t0;
	keep(t, results);
	EXPECT_REQUESTS(c, 0, 0, 1050, 0, 0, 0);
	/* in parallel: over the network the requests' time adds up to far
	 * more than the wall-clock time (local reads are too quick to tell) */
	if (!t->is_file)
		ATF_CHECK_MSG(c->busy_ms > 3 * elapsed, "getMany took %.0f ms for %.0f ms of requests",
		              elapsed, c->busy_ms);
	ATF_REQUIRE_EQ(1050, json_object_array_length(results));
	for (size_t i = 0; i < n; i++) {
		json_object *rec = json_object_array_get_idx(results, i);
		const char *id = s3db_json_get_string(rec, "id");
		json_object *nv = json_object_object_get(rec, "n");
		if (!id || strcmp(id, ids[i]) || !nv || json_object_get_int(nv) != (int)i) {
			atf_tc_fail_nonfatal("getMany result %zu is %s", i, S(t, rec));
			break;
		}
	}
	s3db_free_strv(ids);

	c = count_start(t);
	size_t total = 0;
	CHECK_OK(s3db_count(r, NULL, &total, NULL, &t->err), &t->err);
	ATF_CHECK_EQ(1050, total);
	EXPECT_REQUESTS(c, 0, 0, 0, 0, 0, 2);
	count_stop(t);
}

/* ---- request counts ----------------------------------------------------------- */

DB_CASE(requests_per_operation_are_as_documented)
{
	s3db_resource *plain = define(t, "plain", "{\"attributes\":{\"name\":\"string\"}}");
	s3db_resource *parted = define(t, "parted", "{\"attributes\":{\"name\":\"string\","
	                                            "\"region\":\"string\",\"kind\":\"string\"},"
	                                            "\"partitions\":{"
	                                            "\"byRegion\":{\"fields\":{\"region\":\"string\"}},"
	                                            "\"byKind\":{\"fields\":{\"kind\":\"string\"}}}}");
	s3db_resource *over = define(t, "over", "{\"attributes\":{\"title\":\"string\","
	                                        "\"text\":\"string\"},\"behavior\":\"body-overflow\"}");
	counter *c = count_start(t);
	insert(t, plain, "{\"id\":\"p1\",\"name\":\"Ann\"}");
	EXPECT_REQUESTS(c, 1, 0, 0, 0, 0, 0);

	c = count_start(t);
	insert(t, parted, "{\"id\":\"q1\",\"name\":\"Ann\",\"region\":\"eu\",\"kind\":\"a\"}");
	EXPECT_REQUESTS(c, 3, 0, 0, 0, 0, 0);

	c = count_start(t);
	get(t, plain, "p1");
	EXPECT_REQUESTS(c, 0, 0, 1, 0, 0, 0);

	json_object *big = big_record(t, "o1", 3000, 'L', "{\"title\":\"Big\"}");
	CHECK_OK(s3db_insert(over, big, NULL, NULL, &t->err), &t->err);
	c = count_start(t);
	get(t, over, "o1");
	EXPECT_REQUESTS(c, 0, 1, 1, 0, 0, 0);

	c = count_start(t);
	ATF_CHECK_EQ(1, s3db_exists(plain, "p1", &t->err));
	EXPECT_REQUESTS(c, 0, 0, 1, 0, 0, 0);

	insert(t, plain, "{\"id\":\"p2\",\"name\":\"Bob\"}");
	insert(t, plain, "{\"id\":\"p3\",\"name\":\"Cid\"}");
	c = count_start(t);
	char **ids = NULL;
	CHECK_OK(s3db_list_ids(plain, NULL, &ids, NULL, &t->err), &t->err);
	s3db_free_strv(ids);
	EXPECT_REQUESTS(c, 0, 0, 0, 0, 0, 1);

	/* update: get + conditional PUT + one PUT per reference (same keys) */
	c = count_start(t);
	CHECK_OK(s3db_update(parted, "q1", J(t, "{\"name\":\"Bea\"}"), NULL, NULL, &t->err),
	         &t->err);
	EXPECT_REQUESTS(c, 3, 0, 1, 0, 0, 0);
	/* a moved reference is deleted in one DeleteObjects */
	c = count_start(t);
	CHECK_OK(s3db_update(parted, "q1", J(t, "{\"region\":\"us\"}"), NULL, NULL, &t->err),
	         &t->err);
	EXPECT_REQUESTS(c, 3, 0, 1, 0, 1, 0);

	/* delete: get + DELETE (+ DeleteObjects for references) */
	c = count_start(t);
	CHECK_OK(s3db_delete(plain, "p1", NULL, &t->err), &t->err);
	EXPECT_REQUESTS(c, 0, 0, 1, 1, 0, 0);
	c = count_start(t);
	CHECK_OK(s3db_delete(parted, "q1", NULL, &t->err), &t->err);
	EXPECT_REQUESTS(c, 0, 0, 1, 1, 1, 0);
	count_stop(t);
	EXPECT_KEYS(t, "resource=parted/", "");
}

/* ---- events -------------------------------------------------------------------- */

typedef struct event_log {
	pthread_mutex_t mu;
	strv lines;           /* "beforeInsert u1 old=... new=... ctx=... result=N" */
	const char *veto_id;  /* before-events of this id are cancelled */
	s3db_code veto_code;
} event_log;

static s3db_code log_event(void *ud, const s3db_event *ev)
{
	event_log *l = ud;
	char *o = ev->old_record ? s3db_json_stringify(ev->old_record, 0) : strdup("-");
	char *n = ev->new_record ? s3db_json_stringify(ev->new_record, 0) : strdup("-");
	char *line = s3db_asprintf("%s %s %s old=%s new=%s ctx=%d/%d/%d/%s/%s result=%d",
	                           s3db_event_name(ev->type), ev->resource, ev->id ? ev->id : "-",
	                           o, n, (int)ev->ctx->uid, (int)ev->ctx->gid, (int)ev->ctx->pid,
	                           ev->ctx->process ? ev->ctx->process : "",
	                           ev->ctx->origin ? ev->ctx->origin : "", (int)ev->result);
	free(o);
	free(n);
	pthread_mutex_lock(&l->mu);
	strv_push_owned(&l->lines, line);
	pthread_mutex_unlock(&l->mu);
	if (l->veto_id && ev->id && !strcmp(ev->id, l->veto_id) && ev->type % 2 == 0)
		return l->veto_code;
	return S3DB_OK;
}

/* The log so far, one event a line (owned by t); clears the log. */
static const char *event_lines(dbt *t, event_log *l)
{
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < l->lines.count; i++) {
		if (i)
			sbuf_putc(&b, '\n');
		sbuf_puts(&b, l->lines.items[i]);
	}
	strv_free(&l->lines);
	strv_init(&l->lines);
	return b.data ? own(t, sbuf_steal(&b)) : "";
}

#define EXPECT_EVENTS(t, l, expected)                                          \
	do {                                                                      \
		const char *got_ = event_lines(t, l);                                 \
		ATF_CHECK_STREQ_MSG(expected, got_, "events:\n%s\n-- expected:\n%s",  \
		                    got_, expected);                                  \
	} while (0)

DB_CASE(events_carry_old_and_new_records_and_the_context)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	event_log l = { .veto_id = NULL };
	pthread_mutex_init(&l.mu, NULL);
	strv_init(&l.lines);
	int id = s3db_on(t->db, log_event, &l);
	ATF_REQUIRE(id > 0);
	s3db_ctx ctx = { .uid = 1000, .gid = 100, .pid = 4242, .process = "cat", .origin = "fuse" };

	CHECK_OK(s3db_insert(r, J(t, "{\"id\":\"u1\",\"name\":\"Ann\"}"), &ctx, NULL, &t->err),
	         &t->err);
	EXPECT_EVENTS(t, &l,
	              "beforeInsert users u1 old=- new={\"id\":\"u1\",\"name\":\"Ann\"} "
	              "ctx=1000/100/4242/cat/fuse result=0\n"
	              "afterInsert users u1 old=- new={\"id\":\"u1\",\"name\":\"Ann\"} "
	              "ctx=1000/100/4242/cat/fuse result=0");
	CHECK_OK(s3db_update(r, "u1", J(t, "{\"name\":\"Bea\"}"), &ctx, NULL, &t->err), &t->err);
	EXPECT_EVENTS(t, &l,
	              "beforeUpdate users u1 old={\"id\":\"u1\",\"name\":\"Ann\"} "
	              "new={\"id\":\"u1\",\"name\":\"Bea\"} ctx=1000/100/4242/cat/fuse result=0\n"
	              "afterUpdate users u1 old={\"id\":\"u1\",\"name\":\"Ann\"} "
	              "new={\"id\":\"u1\",\"name\":\"Bea\"} ctx=1000/100/4242/cat/fuse result=0");
	json_object *out = NULL;
	CHECK_OK(s3db_get(r, "u1", NULL, &out, &t->err), &t->err);
	keep(t, out);
	EXPECT_EVENTS(t, &l,
	              "beforeGet users u1 old=- new=- ctx=0/0/0//api result=0\n"
	              "afterGet users u1 old=- new={\"id\":\"u1\",\"name\":\"Bea\"} "
	              "ctx=0/0/0//api result=0");
	size_t n;
	CHECK_OK(s3db_count(r, NULL, &n, &ctx, &t->err), &t->err);
	EXPECT_EVENTS(t, &l,
	              "beforeCount users - old=- new=- ctx=1000/100/4242/cat/fuse result=0\n"
	              "afterCount users - old=- new=- ctx=1000/100/4242/cat/fuse result=0");
	CHECK_OK(s3db_delete(r, "u1", &ctx, &t->err), &t->err);
	EXPECT_EVENTS(t, &l,
	              "beforeDelete users u1 old={\"id\":\"u1\",\"name\":\"Bea\"} new=- "
	              "ctx=1000/100/4242/cat/fuse result=0\n"
	              "afterDelete users u1 old={\"id\":\"u1\",\"name\":\"Bea\"} new=- "
	              "ctx=1000/100/4242/cat/fuse result=0");
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_get(r, "u1", NULL, &out, &t->err));
	char want[256];
	snprintf(want, sizeof want,
	         "beforeGet users u1 old=- new=- ctx=0/0/0//api result=0\n"
	         "afterGet users u1 old=- new=- ctx=0/0/0//api result=%d", (int)S3DB_ERR_NOT_FOUND);
	EXPECT_EVENTS(t, &l, want);

	s3db_off(t->db, id);
	insert(t, r, "{\"id\":\"u2\",\"name\":\"Cid\"}");
	EXPECT_EVENTS(t, &l, "");
	strv_free(&l.lines);
	pthread_mutex_destroy(&l.mu);
}

DB_CASE(a_before_listener_error_cancels_the_operation)
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\","
	                                      "\"region\":\"string\"},\"partitions\":"
	                                      "{\"byRegion\":{\"fields\":{\"region\":\"string\"}}}}");
	insert(t, r, "{\"id\":\"keep\",\"name\":\"Ann\",\"region\":\"eu\"}");
	event_log l = { .veto_id = "blocked", .veto_code = S3DB_ERR_ACCESS_DENIED };
	pthread_mutex_init(&l.mu, NULL);
	strv_init(&l.lines);
	int lid = s3db_on(t->db, log_event, &l);
	ATF_CHECK_EQ(S3DB_ERR_ACCESS_DENIED,
	             s3db_insert(r, J(t, "{\"id\":\"blocked\",\"name\":\"X\",\"region\":\"us\"}"), NULL,
	                         NULL, &t->err));
	ATF_CHECK_MSG(strstr(t->err.message, "users/blocked") &&
	              strstr(t->err.message, "beforeInsert"), "message: %s", t->err.message);
	EXPECT_KEYS(t, "resource=users/",
	            "resource=users/data/id=keep\n"
	            "resource=users/partition=byRegion/region=eu/id=keep");
	/* the after-event reports the cancellation */
	const char *lines = event_lines(t, &l);
	char want[64];
	snprintf(want, sizeof want, "result=%d", (int)S3DB_ERR_ACCESS_DENIED);
	ATF_CHECK_MSG(strstr(lines, "afterInsert") && strstr(lines, want), "events: %s", lines);

	/* update and delete of a vetoed id change nothing */
	l.veto_id = NULL;
	insert(t, r, "{\"id\":\"blocked\",\"name\":\"X\",\"region\":\"us\"}");
	l.veto_id = "blocked";
	ATF_CHECK_EQ(S3DB_ERR_ACCESS_DENIED,
	             s3db_update(r, "blocked", J(t, "{\"region\":\"asia\"}"), NULL, NULL, &t->err));
	ATF_CHECK_EQ(S3DB_ERR_ACCESS_DENIED, s3db_delete(r, "blocked", NULL, &t->err));
	const char *ids[] = { "blocked" };
	ATF_CHECK_EQ(S3DB_ERR_ACCESS_DENIED, s3db_delete_many(r, ids, 1, NULL, &t->err));
	EXPECT_KEYS(t, "resource=users/",
	            "resource=users/data/id=blocked\n"
	            "resource=users/data/id=keep\n"
	            "resource=users/partition=byRegion/region=eu/id=keep\n"
	            "resource=users/partition=byRegion/region=us/id=blocked");
	/* a vetoed get returns nothing; the message says who refused */
	json_object *out = NULL;
	ATF_CHECK_EQ(S3DB_ERR_ACCESS_DENIED, s3db_get(r, "blocked", NULL, &out, &t->err));
	ATF_CHECK(out == NULL);
	ATF_CHECK_MSG(strstr(t->err.message, "users/blocked") &&
	              strstr(t->err.message, "beforeGet"), "message: %s", t->err.message);
	l.veto_id = NULL;
	EXPECT_FIELD(t, get(t, r, "blocked"), "region", "\"us\"");
	s3db_off(t->db, lid);
	strv_free(&l.lines);
	pthread_mutex_destroy(&l.mu);
}

/* ---- corrupt catalogue ----------------------------------------------------------- */

DB_CASE(a_corrupt_catalogue_fails_open_with_corrupt)
{
	define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	raw_put(t, "s3db.json", "{\"version\":\"1\",\"resources\":{ this is not JSON", "application/json");
	s3db *db = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_CORRUPT, s3db_open(t->connstr, NULL, &db, &err));
	ATF_CHECK(db == NULL);
	ATF_CHECK_MSG(strstr(err.message, "s3db.json") != NULL, "message: %s", err.message);
	s3db_close(db);
	/* never silently replaced */
	store_object o;
	raw_get(t, "s3db.json", &o);
	ATF_CHECK(strstr((const char *)o.body, "this is not JSON") != NULL);
	store_object_free(&o);
	/* an empty object, a JSON document that is not an object, or whose
	 * resources are not */
	raw_put(t, "s3db.json", "", "application/json");
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_CORRUPT, s3db_open(t->connstr, NULL, &db, &err));
	ATF_CHECK_MSG(strstr(err.message, "s3db.json") != NULL, "message: %s", err.message);
	raw_put(t, "s3db.json", "[1,2,3]", "application/json");
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_CORRUPT, s3db_open(t->connstr, NULL, &db, &err));
	ATF_CHECK_MSG(strstr(err.message, "s3db.json") != NULL, "message: %s", err.message);
	raw_put(t, "s3db.json", "{\"version\":\"1\",\"resources\":7}", "application/json");
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_CORRUPT, s3db_open(t->connstr, NULL, &db, &err));
	ATF_CHECK_MSG(strstr(err.message, "s3db.json") != NULL, "message: %s", err.message);
	/* so is reload on an open handle */
	s3db_error_clear(&err);
	ATF_CHECK_EQ(S3DB_ERR_CORRUPT, s3db_reload(t->db, &err));
	ATF_CHECK_MSG(strstr(err.message, "s3db.json") != NULL, "message: %s", err.message);
}

/* ---- binary content ------------------------------------------------------------ */

DB_CASE(binary_content_round_trips_with_its_content_type)
{
	s3db_resource *r = define(t, "files", "{\"attributes\":{\"filename\":\"string\"},"
	                                      "\"idSize\":8}");
	json_object *rec = insert(t, r, "{\"filename\":\"hello.txt\"}");
	const char *id = s3db_json_get_string(rec, "id");
	static const char data[] = "Hello binary \0\1\2";
	CHECK_OK(s3db_set_content(r, id, data, 16, "text/plain", &t->err), &t->err);
	void *got = NULL;
	size_t len = 0;
	char *ctype = NULL;
	CHECK_OK(s3db_get_content(r, id, &got, &len, &ctype, &t->err), &t->err);
	ATF_CHECK_EQ(16, len);
	ATF_CHECK(got && memcmp(got, data, 16) == 0);
	ATF_CHECK_STREQ("text/plain", ctype ? ctype : "(none)");
	free(got);
	free(ctype);
	EXPECT_FIELD(t, get(t, r, id), "filename", "\"hello.txt\"");
	/* an update keeps the content (§3.15) */
	CHECK_OK(s3db_update(r, id, J(t, "{\"filename\":\"hi.txt\"}"), NULL, NULL, &t->err), &t->err);
	EXPECT_FIELD(t, get(t, r, id), "filename", "\"hi.txt\"");
	CHECK_OK(s3db_get_content(r, id, &got, &len, NULL, &t->err), &t->err);
	ATF_CHECK(len == 16 && memcmp(got, data, 16) == 0);
	free(got);
	/* default type; a record without content has none */
	CHECK_OK(s3db_set_content(r, id, "\xff\x00", 2, NULL, &t->err), &t->err);
	CHECK_OK(s3db_get_content(r, id, &got, &len, &ctype, &t->err), &t->err);
	ATF_CHECK_EQ(2, len);
	ATF_CHECK_STREQ("application/octet-stream", ctype ? ctype : "(none)");
	free(got);
	free(ctype);
	json_object *other = insert(t, r, "{\"filename\":\"empty\"}");
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_get_content(r, s3db_json_get_string(other, "id"), &got,
	                                                  &len, NULL, &t->err));
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_set_content(r, "nobody", "x", 1, NULL, &t->err));
}

/* ---- drop ---------------------------------------------------------------------- */

DB_CASE(dropping_a_resource_removes_every_object_of_it)
{
	s3db_resource *r = define(t, "users", partitioned_users);
	s3db_resource *other = define(t, "users2", "{\"attributes\":{\"name\":\"string\"}}");
	for (int i = 0; i < 5; i++) {
		char text[160];
		snprintf(text, sizeof text, "{\"id\":\"u%d\",\"name\":\"N\",\"region\":\"eu\","
		         "\"active\":true,\"profile\":{\"country\":\"BR\"}}", i);
		insert(t, r, text);
	}
	insert(t, other, "{\"id\":\"x\",\"name\":\"stays\"}");
	ATF_CHECK_EQ(20, nkeys(t, "resource=users/"));
	CHECK_OK(s3db_resource_drop(t->db, "users", &t->err), &t->err);
	EXPECT_KEYS(t, "resource=users/", "");
	ATF_CHECK(s3db_resource_find(t->db, "users") == NULL);
	EXPECT_FIELD(t, catalogue(t), "resources.users", "(absent)");
	EXPECT_KEYS(t, "resource=users2/", "resource=users2/data/id=x");
	EXPECT_FIELD(t, get(t, other, "x"), "name", "\"stays\"");
	ATF_CHECK_EQ(S3DB_ERR_NO_RESOURCE, s3db_resource_drop(t->db, "users", &t->err));
	s3db_close(t->db);
	t->db = open_db(t, NULL);
	char **names = NULL;
	CHECK_OK(s3db_resource_names(t->db, &names, &t->err), &t->err);
	ATF_REQUIRE(names[0] != NULL);
	ATF_CHECK_STREQ("users2", names[0]);
	ATF_CHECK(names[1] == NULL);
	s3db_free_strv(names);
	/* it can be defined again, empty */
	r = define(t, "users", partitioned_users);
	ATF_CHECK_STREQ("", list_ids(t, r, NULL, NULL, 0, 0));
}

/* ---- retries (S3 only) ------------------------------------------------------------- */

/* {"key_prefix": <t's prefix>, ...rest}: faults for this case only. */
static void fault(dbt *t, const char *rest)
{
	const char *rule = own(t, s3db_asprintf("{\"bucket\":\"%s\",\"key_prefix\":\"%s\",%s}",
	                                        testlib_s3_bucket(), t->prefix, rest));
	ATF_REQUIRE_MSG(testlib_front_fault(rule) == 0, "the front refused %s", rule);
}

typedef struct delete_job {
	s3db_resource *r;
	const char **ids;
	s3db_code rcs[25];
	s3db_error errs[25];
} delete_job;

static void delete_one(void *ud, size_t i)
{
	delete_job *j = ud;
	j->rcs[i] = s3db_delete(j->r, j->ids[i], NULL, &j->errs[i]);
}

S3_CASE(retries_survive_slowdowns_and_resets_without_loss_or_duplicates,
        "503 SlowDown (rate 0.3) and resets (rate 0.2): 100 inserts and 50 deletes succeed")
{
	/* 44% of requests fail here (1 - 0.7 * 0.8): the default 5 retries
	 * lose about one request in 140 (0.44^6), so a few of the ~400
	 * requests would fail; 15 retries make that 0.44^16 (2e-6) */
	s3db_options opts = { .max_retries = 15 };
	s3db_close(t->db);
	t->db = open_db(t, &opts);
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"n\":\"number|integer:true\","
	                                      "\"half\":\"string\"},\"partitions\":"
	                                      "{\"byHalf\":{\"fields\":{\"half\":\"string\"}}}}");
	json_object *batch = J(t, "[]");
	for (int i = 0; i < 100; i++) {
		char text[80];
		snprintf(text, sizeof text, "{\"id\":\"r%03d\",\"n\":%d,\"half\":\"%s\"}", i, i,
		         i < 50 ? "lo" : "hi");
		json_object_array_add(batch, json_object_get(J(t, text)));
	}
	counter *c = count_start(t);
	fault(t, "\"status\":503,\"rate\":0.3,\"seed\":7");
	fault(t, "\"reset\":true,\"rate\":0.2,\"seed\":11");
	json_object *results = NULL;
	s3db_code rc = s3db_insert_many(r, batch, NULL, &results, &t->err);
	keep(t, results);
	/* the even ids go: half one by one (in parallel), half in one deleteMany */
	const char *ids[50];
	for (int i = 0; i < 50; i++)
		ids[i] = own(t, s3db_asprintf("r%03d", 2 * i));
	delete_job dj = { .r = r, .ids = ids };
	if (rc == S3DB_OK) {
		pool_run(16, 25, delete_one, &dj);
		for (int i = 0; i < 25 && rc == S3DB_OK; i++)
			if ((rc = dj.rcs[i]) != S3DB_OK)
				t->err = dj.errs[i];
	}
	if (rc == S3DB_OK)
		rc = s3db_delete_many(r, ids + 25, 25, NULL, &t->err);
	ATF_REQUIRE_EQ(0, testlib_front_clear_faults());
	count_stop(t);
	CHECK_OK(rc, &t->err);
	ATF_CHECK_MSG(c->retried > 0, "no request was retried (%d requests)", c->total);
	ATF_CHECK_MSG(c->max_attempts > 1, "max attempts %d", c->max_attempts);
	ATF_CHECK_EQ_MSG(0, c->failed, "%d requests failed after retries", c->failed);
	/* the odd records and their references, each exactly once */
	sbuf want;
	sbuf_init(&want);
	for (int i = 1; i < 100; i += 2)
		sbuf_printf(&want, "%sresource=users/data/id=r%03d", i > 1 ? "\n" : "", i);
	for (int i = 51; i < 100; i += 2)
		sbuf_printf(&want, "\nresource=users/partition=byHalf/half=hi/id=r%03d", i);
	for (int i = 1; i < 50; i += 2)
		sbuf_printf(&want, "\nresource=users/partition=byHalf/half=lo/id=r%03d", i);
	EXPECT_KEYS(t, "resource=users/", want.data);
	sbuf_free(&want);
	/* the front saw the faults and the library's retries */
	json_object *log = keep(t, testlib_front_log());
	int faulted = 0;
	for (size_t i = 0; i < json_object_array_length(log); i++) {
		json_object *e = json_object_array_get_idx(log, i);
		const char *key = s3db_json_get_string(e, "key");
		json_object *f = json_object_object_get(e, "fault");
		if (key && s3db_str_starts(key, t->prefix) && f)
			faulted++;
	}
	ATF_CHECK_MSG(faulted > 10, "only %d faulted requests in the front's log", faulted);
	for (int i = 1; i < 100; i += 2) {
		char id[8];
		snprintf(id, sizeof id, "r%03d", i);
		EXPECT_FIELD(t, get(t, r, id), "n", own(t, s3db_asprintf("%d", i)));
	}
}

S3_CASE(a_lost_insert_response_still_reports_success_once,
        "a PUT that took effect but whose answer was lost is reported as one success")
{
	s3db_resource *r = define(t, "users", "{\"attributes\":{\"name\":\"string\"}}");
	event_log l = { .veto_id = NULL };
	pthread_mutex_init(&l.mu, NULL);
	strv_init(&l.lines);
	int lid = s3db_on(t->db, log_event, &l);
	const char *variants[] = { "\"status\":500", "\"reset\":true", NULL };
	for (int v = 0; variants[v]; v++) {
		char id[8];
		snprintf(id, sizeof id, "lost%d", v);
		const char *key = full(t, own(t, s3db_asprintf("resource=users/data/id=%s", id)));
		const char *rule = own(t, s3db_asprintf("{\"command\":\"PutObject\",\"key_prefix\":\"%s\","
		                                        "\"after_forward\":true,\"count\":1,%s}", key,
		                                        variants[v]));
		ATF_REQUIRE(testlib_front_fault(rule) == 0);
		counter *c = count_start(t);
		json_object *data = keep(t, json_object_new_object());
		json_object_object_add(data, "id", json_object_new_string(id));
		json_object_object_add(data, "name", json_object_new_string("Ann"));
		s3db_code rc = s3db_insert(r, data, NULL, NULL, &t->err);
		ATF_REQUIRE_EQ(0, testlib_front_clear_faults());
		count_stop(t);
		CHECK_OK(rc, &t->err);
		ATF_CHECK_EQ(1, c->n[S3DB_CMD_PUT_OBJECT]);
		ATF_CHECK_MSG(c->max_attempts > 1, "variant %s: the lost answer was not retried",
		              variants[v]);
		const char *ev = event_lines(t, &l);
		const char *after = strstr(ev, "afterInsert");
		ATF_CHECK_MSG(after && strstr(after, "result=0") && !strstr(after + 1, "afterInsert"),
		              "events: %s", ev);
		/* it exists once, and inserting it again is EXISTS */
		ATF_CHECK_EQ(S3DB_ERR_EXISTS, s3db_insert(r, data, NULL, NULL, &t->err));
		event_lines(t, &l);
		EXPECT_FIELD(t, get(t, r, id), "name", "\"Ann\"");
	}
	EXPECT_KEYS(t, "resource=users/", "resource=users/data/id=lost0\nresource=users/data/id=lost1");
	s3db_off(t->db, lid);
	strv_free(&l.lines);
	pthread_mutex_destroy(&l.mu);
}

ATF_TP_ADD_TCS(tp)
{
	ADD_DB_CASE(tp, open_creates_a_21x_catalogue);
	ADD_DB_CASE(tp, reopening_sees_the_defined_resources);
	ADD_DB_CASE(tp, defining_the_same_definition_twice_keeps_v1);
	ADD_DB_CASE(tp, a_changed_definition_makes_v2_keeps_v1_and_burns_removed_attributes);
	ADD_DB_CASE(tp, the_catalogue_lock_is_taken_over_when_expired_and_released_only_if_ours);
	ADD_DB_CASE(tp, every_type_round_trips);
	ADD_DB_CASE(tp, secrets_are_stored_encrypted_and_need_the_passphrase);
	ADD_DB_CASE(tp, timestamps_keep_created_at_and_refresh_updated_at);
	ADD_DB_CASE(tp, generated_ids_are_nanoids_of_id_size);
	ADD_DB_CASE(tp, hostile_ids_are_refused_and_nothing_is_written);
	ADD_DB_CASE(tp, insert_then_get_returns_the_record);
	ADD_DB_CASE(tp, inserting_an_existing_id_fails_with_exists);
	ADD_DB_CASE(tp, validation_failures_name_the_field_and_write_nothing);
	ADD_DB_CASE(tp, update_merges_replace_replaces_and_missing_ids_are_not_found);
	ADD_DB_CASE(tp, upsert_inserts_or_replaces);
	ADD_DB_CASE(tp, delete_removes_the_record_and_exists_says_so);
	ADD_DB_CASE(tp, partition_references_follow_insert_update_and_delete);
	ADD_DB_CASE(tp, listing_and_counting_by_partition_and_values);
	ADD_DB_CASE(tp, partition_values_with_a_slash_are_refused);
	ADD_DB_CASE(tp, enforce_limits_refuses_over_the_limit_and_writes_nothing);
	ADD_DB_CASE(tp, enforce_limits_boundary_is_s3dbjs_estimate);
	ADD_DB_CASE(tp, user_managed_boundary_is_s3dbjs_estimate);
	ADD_DB_CASE(tp, body_overflow_boundary_is_s3dbjs_estimate);
	ADD_DB_CASE(tp, body_overflow_moves_big_fields_to_the_body);
	ADD_DB_CASE(tp, body_only_keeps_every_field_in_the_body);
	ADD_DB_CASE(tp, truncate_data_cuts_and_marks_truncated);
	ADD_DB_CASE(tp, user_managed_over_the_limit_stores_the_body);
	ADD_DB_CASE(tp, list_count_page_and_query_honour_limit_and_offset);
	ADD_DB_CASE(tp, a_field_named_error_does_not_hide_records_from_lists);
	ADD_DB_CASE(tp, a_thousand_and_fifty_records_list_in_two_requests);
	ADD_DB_CASE(tp, requests_per_operation_are_as_documented);
	ADD_DB_CASE(tp, events_carry_old_and_new_records_and_the_context);
	ADD_DB_CASE(tp, a_before_listener_error_cancels_the_operation);
	ADD_DB_CASE(tp, a_corrupt_catalogue_fails_open_with_corrupt);
	ADD_DB_CASE(tp, binary_content_round_trips_with_its_content_type);
	ADD_DB_CASE(tp, dropping_a_resource_removes_every_object_of_it);
	ATF_TP_ADD_TC(tp, s3__retries_survive_slowdowns_and_resets_without_loss_or_duplicates);
	ATF_TP_ADD_TC(tp, s3__a_lost_insert_response_still_reports_success_once);
	return atf_no_error();
}
