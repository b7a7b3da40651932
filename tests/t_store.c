/*
 * t_store.c — the object-store contract, written once and run against
 * every backend.
 *
 * Each CONTRACT(name) body runs twice: as file__name on a store_file_open
 * of a fresh temporary directory, and as s3__name on store_s3_open against
 * the strict S3 front the test scripts start (tests/testlib.h; the s3 cases
 * fail when it is not there).  A body sees only a tctx: the store and a
 * key prefix unique to the run ("t/<case>-<pid>-<n>/"), so the same body
 * holds for a shared bucket and for an empty directory.
 *
 * The file-only cases at the end check what only the local backend
 * promises or can show: atomic conditional writes between processes
 * (fork), crash leftovers being invisible, keys never escaping the root,
 * emptied directories being removed.  They know the on-disk layout that
 * store_file.c documents (object files are named 'f' + escaped segment;
 * temporary files start with ".t-").
 */
#include <atf-c.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "store.h"
#include "testlib.h"
#include "util.h"

/* ---- the test context -------------------------------------------------- */

typedef struct tctx {
	store *st;
	int is_file;
	char *outer;      /* file: the fresh temporary directory (owned)     */
	char *dir;        /* file: the store root, outer/root (owned)       */
	char *base;       /* key prefix for this run, ends with '/' (owned) */
	strv scratch;     /* strings K() handed out, freed at the end       */
} tctx;

typedef void (*contract_fn)(tctx *c);

/* The key base + the printf-formatted rest; owned by c. */
static const char *K(tctx *c, const char *fmt, ...) S3DB_PRINTF(2, 3);
static const char *K(tctx *c, const char *fmt, ...)
{
	char rest[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rest, sizeof rest, fmt, ap);
	va_end(ap);
	char *k = s3db_asprintf("%s%s", c->base, rest);
	ATF_REQUIRE(k != NULL);
	ATF_REQUIRE(strv_push_owned(&c->scratch, k) == 0);
	return k;
}

static void open_file_store(tctx *c)
{
	const char *tmp = getenv("TMPDIR");
	char *templ = s3db_asprintf("%s/t_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ATF_REQUIRE(templ != NULL);
	ATF_REQUIRE_MSG(mkdtemp(templ) != NULL, "mkdtemp: %s", strerror(errno));
	c->outer = templ;
	c->dir = s3db_asprintf("%s/root", templ);
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(store_file_open(c->dir, &c->st, &err), &err);
}

static void open_s3_store(tctx *c)
{
	store_s3_config cfg = {
		.endpoint = testlib_s3_url(),
		.bucket = testlib_s3_bucket(),
		.region = "us-east-1",
		.path_style = 1,
		.access_key = testlib_access_key(),
		.secret_key = testlib_secret_key(),
	};
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(store_s3_open(&cfg, &c->st, &err), &err);
}

static void ctx_open(tctx *c, const char *backend, const char *name)
{
	memset(c, 0, sizeof *c);
	strv_init(&c->scratch);
	c->is_file = strcmp(backend, "file") == 0;
	c->base = s3db_asprintf("%s/", testlib_unique_prefix(name));
	ATF_REQUIRE(c->base != NULL);
	if (c->is_file)
		open_file_store(c);
	else
		open_s3_store(c);
}

/* rm -rf path (best effort). */
static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *sub = s3db_asprintf("%s/%s", path, de->d_name);
			if (sub)
				rm_tree(sub);
			free(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int collect_key(void *ud, const store_entry *e)
{
	return strv_push((strv *)ud, e->key) != 0;
}

/* Removes what the case stored (s3: keys under base; file: the
 * directory) and frees the context.  Runs only when the body passed. */
static void ctx_close(tctx *c)
{
	if (c->st && !c->is_file) {
		store_set_hook(c->st, NULL, NULL);
		strv keys;
		strv_init(&keys);
		s3db_error err;
		if (store_list_all(c->st, c->base, collect_key, &keys, &err) == S3DB_OK &&
		    keys.count > 0)
			store_delete_many(c->st, (const char *const *)keys.items, keys.count, &err);
		strv_free(&keys);
	}
	store_close(c->st);
	if (c->outer)
		rm_tree(c->outer);
	free(c->outer);
	free(c->dir);
	free(c->base);
	strv_free(&c->scratch);
}

static void run_contract(const char *backend, const char *name, contract_fn fn)
{
	tctx c;
	ctx_open(&c, backend, name);
	fn(&c);
	ctx_close(&c);
}

/* One body, two test cases: file__name and s3__name. */
#define CONTRACT(name)                                                        \
	static void contract_##name(tctx *c);                                    \
	ATF_TC_WITHOUT_HEAD(file__##name);                                       \
	ATF_TC_BODY(file__##name, tc) { run_contract("file", #name, contract_##name); } \
	ATF_TC_WITHOUT_HEAD(s3__##name);                                         \
	ATF_TC_BODY(s3__##name, tc) { run_contract("s3", #name, contract_##name); } \
	static void contract_##name(tctx *c)

#define ADD_CONTRACT(tp, name)                                                \
	do {                                                                     \
		ATF_TP_ADD_TC(tp, file__##name);                                     \
		ATF_TP_ADD_TC(tp, s3__##name);                                       \
	} while (0)

/* Cases for the file backend only: a fresh store, no key prefix needed. */
#define FILE_CASE(name)                                                       \
	static void filecase_##name(tctx *c);                                    \
	ATF_TC_WITHOUT_HEAD(file__##name);                                       \
	ATF_TC_BODY(file__##name, tc) { run_contract("file", #name, filecase_##name); } \
	static void filecase_##name(tctx *c)

/* ---- helpers ----------------------------------------------------------- */

/* Expects code `want`; fails with the message otherwise. */
#define CHECK_CODE(want, expr, err) do { s3db_code got_ = (expr);               \
	if (got_ != (want)) atf_tc_fail("%s:%d: expected %s, got %s: %s", __FILE__, \
	        __LINE__, s3db_strerror(want), s3db_strerror(got_), (err)->message); } while (0)

static void md5_etag(const void *data, size_t len, char out[72])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	ATF_REQUIRE(EVP_Digest(data, len, md, &n, EVP_md5(), NULL) == 1);
	ATF_REQUIRE_EQ(n, 16);
	out[0] = '"';
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[33] = '"';
	out[34] = '\0';
}

static void put_body(tctx *c, const char *key, const void *body, size_t len)
{
	s3db_error err;
	char etag[72];
	CHECK_OK(store_put(c->st, key, NULL, body, len, NULL, etag, &err), &err);
}

static void put_str(tctx *c, const char *key, const char *body)
{
	put_body(c, key, body, strlen(body));
}

/* The body of key as a string (caller frees); fails the case if absent. */
static char *get_str(tctx *c, const char *key)
{
	store_object o;
	s3db_error err;
	store_object_init(&o);
	CHECK_OK(store_get(c->st, key, &o, &err), &err);
	char *s = s3db_strndup((const char *)o.body, o.body_len);
	store_object_free(&o);
	return s;
}

static void expect_body(tctx *c, const char *key, const char *want)
{
	char *got = get_str(c, key);
	ATF_CHECK_STREQ_MSG(want, got, "key '%s'", key);
	free(got);
}

static void expect_absent(tctx *c, const char *key)
{
	store_object o;
	s3db_error err;
	store_object_init(&o);
	CHECK_CODE(S3DB_ERR_NOT_FOUND, store_head(c->st, key, &o, &err), &err);
	store_object_free(&o);
}

static int strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key under prefix, through store_list_all. */
static void list_keys(tctx *c, const char *prefix, strv *out)
{
	s3db_error err;
	strv_init(out);
	CHECK_OK(store_list_all(c->st, prefix, collect_key, out, &err), &err);
}

/* Checks that a list of strings equals want[0..n). */
static void expect_strings(char *const *got, size_t got_n, const char *const *want,
                           size_t want_n, const char *what)
{
	size_t n = got_n < want_n ? got_n : want_n;
	for (size_t i = 0; i < n; i++)
		ATF_CHECK_STREQ_MSG(want[i], got[i], "%s[%zu]", what, i);
	ATF_REQUIRE_EQ_MSG(want_n, got_n, "%s: %zu items, expected %zu", what, got_n, want_n);
}

static void expect_page(const store_list_page *p, const char *const *keys, size_t nkeys,
                        const char *const *prefixes, size_t nprefixes, int truncated)
{
	char **got = calloc(p->count + 1, sizeof *got);
	ATF_REQUIRE(got != NULL);
	for (size_t i = 0; i < p->count; i++)
		got[i] = p->entries[i].key;
	expect_strings(got, p->count, keys, nkeys, "entries");
	free(got);
	expect_strings(p->common_prefixes, p->prefix_count, prefixes, nprefixes,
	               "common prefixes");
	ATF_CHECK_EQ_MSG(truncated, p->truncated, "truncated is %d", p->truncated);
	if (truncated)
		ATF_CHECK(p->next_token != NULL && *p->next_token);
}

static void list_page(tctx *c, const store_list_opts *o, store_list_page *p)
{
	s3db_error err;
	CHECK_OK(store_list(c->st, o, p, &err), &err);
}

/* ---- the contract ------------------------------------------------------ */

CONTRACT(put_get_head_round_trip_keeps_metadata_and_content_type)
{
	/* every printable ASCII character; HTTP trims a value's outer spaces,
	 * so the space goes inside */
	char ascii[100];
	size_t n = 0;
	for (int ch = 0x21; ch <= 0x7e; ch++) {
		ascii[n++] = (char)ch;
		if (ch == 'M')
			ascii[n++] = ' ';
	}
	ascii[n] = '\0';
	store_meta meta;
	store_meta_init(&meta);
	ATF_REQUIRE(store_meta_set(&meta, "ascii", ascii) == 0);
	ATF_REQUIRE(store_meta_set(&meta, "empty", "") == 0);
	ATF_REQUIRE(store_meta_set(&meta, "Mixed-Case", "v") == 0);
	unsigned char body[300];
	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (unsigned char)(i * 7);   /* NUL and high bytes included */
	store_put_opts opts = { .content_type = "application/x-s3db-test",
	                        .content_encoding = "identity" };
	const char *key = K(c, "obj");
	char etag[72], want_etag[72];
	s3db_error err;
	int64_t before = s3db_now_ms();
	CHECK_OK(store_put(c->st, key, &meta, body, sizeof body, &opts, etag, &err), &err);
	int64_t after = s3db_now_ms();
	md5_etag(body, sizeof body, want_etag);
	ATF_CHECK_STREQ(want_etag, etag);

	store_object o;
	store_object_init(&o);
	CHECK_OK(store_get(c->st, key, &o, &err), &err);
	ATF_REQUIRE_EQ(sizeof body, o.body_len);
	ATF_CHECK(memcmp(body, o.body, sizeof body) == 0);
	ATF_CHECK_EQ(0, o.body[o.body_len]);
	ATF_CHECK_EQ((int64_t)sizeof body, o.size);
	ATF_CHECK_STREQ(want_etag, o.etag);
	ATF_CHECK_STREQ("application/x-s3db-test", o.content_type);
	ATF_CHECK_STREQ("identity", o.content_encoding);
	ATF_CHECK_EQ(3, o.meta.count);
	ATF_CHECK_STREQ(ascii, store_meta_get(&o.meta, "ascii"));
	ATF_CHECK_STREQ("", store_meta_get(&o.meta, "empty"));
	ATF_CHECK_STREQ("v", store_meta_get(&o.meta, "mixed-case"));
	/* S3 keeps Last-Modified to the second */
	ATF_CHECK_MSG(o.last_modified_ms >= before / 1000 * 1000 - 2000 &&
	              o.last_modified_ms <= after + 2000,
	              "last modified %lld not within [%lld, %lld]", (long long)o.last_modified_ms,
	              (long long)before, (long long)after);
	int64_t lm = o.last_modified_ms;
	store_object_free(&o);

	store_object_init(&o);
	CHECK_OK(store_head(c->st, key, &o, &err), &err);
	ATF_CHECK(o.body == NULL);
	ATF_CHECK_EQ(0, o.body_len);
	ATF_CHECK_EQ((int64_t)sizeof body, o.size);
	ATF_CHECK_STREQ(want_etag, o.etag);
	ATF_CHECK_EQ(lm, o.last_modified_ms);
	ATF_CHECK_STREQ("application/x-s3db-test", o.content_type);
	ATF_CHECK_EQ(3, o.meta.count);
	ATF_CHECK_STREQ(ascii, store_meta_get(&o.meta, "ascii"));
	ATF_CHECK_STREQ("", store_meta_get(&o.meta, "empty"));
	store_object_free(&o);
	store_meta_free(&meta);
}

CONTRACT(put_without_content_type_stores_binary_octet_stream)
{
	const char *key = K(c, "plain");
	put_str(c, key, "x");
	store_object o;
	s3db_error err;
	store_object_init(&o);
	CHECK_OK(store_head(c->st, key, &o, &err), &err);
	ATF_CHECK_STREQ("binary/octet-stream", o.content_type);
	ATF_CHECK_EQ(0, o.meta.count);
	store_object_free(&o);
}

CONTRACT(etag_is_the_quoted_md5_of_the_body)
{
	static const char *const bodies[] = { "", "a", "hello world\n" };
	static const char *const md5s[] = {
		"\"d41d8cd98f00b204e9800998ecf8427e\"",
		"\"0cc175b9c0f1b6a831c399e269772661\"",
		"\"6f5902ac237024bdd0c176cb93063dc4\"",
	};
	for (size_t i = 0; i < 3; i++) {
		const char *key = K(c, "e%zu", i);
		char etag[72];
		s3db_error err;
		CHECK_OK(store_put(c->st, key, NULL, bodies[i], strlen(bodies[i]), NULL, etag, &err),
		         &err);
		ATF_CHECK_STREQ(md5s[i], etag);
		store_object o;
		store_object_init(&o);
		CHECK_OK(store_get(c->st, key, &o, &err), &err);
		ATF_CHECK_STREQ(md5s[i], o.etag);
		ATF_CHECK_EQ((int64_t)strlen(bodies[i]), o.size);
		ATF_CHECK_EQ(strlen(bodies[i]), o.body_len);
		store_object_free(&o);
	}
}

CONTRACT(get_range_returns_the_requested_bytes)
{
	char body[101];
	for (int i = 0; i < 100; i++)
		body[i] = (char)('0' + i % 10);
	body[100] = '\0';
	const char *key = K(c, "ranged");
	put_str(c, key, body);
	struct { int64_t first, last; size_t off, len; } cases[] = {
		{ 10, 19, 10, 10 },   /* bytes=10-19 */
		{ 90, -1, 90, 10 },   /* bytes=90-   */
		{ 95, 1000, 95, 5 },  /* past the end: clamped */
		{ 0, 0, 0, 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		store_object o;
		s3db_error err;
		store_object_init(&o);
		CHECK_OK(store_get_range(c->st, key, cases[i].first, cases[i].last, &o, &err), &err);
		ATF_CHECK_EQ_MSG(cases[i].len, o.body_len, "range %zu", i);
		ATF_CHECK_EQ_MSG(100, o.size, "range %zu: size is the full size", i);
		if (o.body_len == cases[i].len)
			ATF_CHECK_MSG(memcmp(body + cases[i].off, o.body, cases[i].len) == 0,
			              "range %zu bytes", i);
		store_object_free(&o);
	}
	/* a range starting past the end is not satisfiable (416) */
	store_object o;
	s3db_error err;
	store_object_init(&o);
	CHECK_CODE(S3DB_ERR_BAD_REQUEST, store_get_range(c->st, key, 100, 200, &o, &err), &err);
	store_object_free(&o);
	/* last before first is the caller's mistake */
	store_object_init(&o);
	CHECK_CODE(S3DB_ERR_INVALID_ARG, store_get_range(c->st, key, 5, 3, &o, &err), &err);
	store_object_free(&o);
}

CONTRACT(get_and_head_of_a_missing_key_are_not_found)
{
	store_object o;
	s3db_error err;
	store_object_init(&o);
	CHECK_CODE(S3DB_ERR_NOT_FOUND, store_get(c->st, K(c, "missing"), &o, &err), &err);
	store_object_free(&o);
	expect_absent(c, K(c, "missing"));
	/* a prefix of existing keys is not an object */
	put_str(c, K(c, "dir/child"), "x");
	expect_absent(c, K(c, "dir"));
	expect_absent(c, K(c, "dir/"));
}

CONTRACT(if_none_match_refuses_an_existing_object)
{
	const char *key = K(c, "once");
	store_put_opts inm = { .if_none_match = 1 };
	char etag[72];
	s3db_error err;
	CHECK_OK(store_put(c->st, key, NULL, "first", 5, &inm, etag, &err), &err);
	CHECK_CODE(S3DB_ERR_PRECONDITION,
	           store_put(c->st, key, NULL, "second", 6, &inm, etag, &err), &err);
	expect_body(c, key, "first");
	/* after a delete the key can be created again */
	CHECK_OK(store_delete(c->st, key, &err), &err);
	CHECK_OK(store_put(c->st, key, NULL, "third", 5, &inm, etag, &err), &err);
	expect_body(c, key, "third");
}

CONTRACT(if_match_requires_the_current_etag)
{
	const char *key = K(c, "cas");
	char etag1[72], etag2[72], etag3[72];
	s3db_error err;
	CHECK_OK(store_put(c->st, key, NULL, "v1", 2, NULL, etag1, &err), &err);
	CHECK_OK(store_put(c->st, key, NULL, "v2", 2, NULL, etag2, &err), &err);
	store_put_opts stale = { .if_match = etag1 };
	CHECK_CODE(S3DB_ERR_PRECONDITION, store_put(c->st, key, NULL, "v3", 2, &stale, etag3, &err),
	           &err);
	expect_body(c, key, "v2");
	store_put_opts fresh = { .if_match = etag2 };
	CHECK_OK(store_put(c->st, key, NULL, "v3", 2, &fresh, etag3, &err), &err);
	expect_body(c, key, "v3");
	/* If-Match on an absent key: 404 NoSuchKey, as S3 answers */
	store_put_opts any = { .if_match = etag3 };
	CHECK_CODE(S3DB_ERR_NOT_FOUND,
	           store_put(c->st, K(c, "absent"), NULL, "v", 1, &any, etag1, &err), &err);
	expect_absent(c, K(c, "absent"));
}

/* Metadata of exactly `size` bytes (keys + values): "k" + a value. */
static void meta_of_size(store_meta *m, size_t size)
{
	char *v = malloc(size);
	ATF_REQUIRE(v != NULL);
	memset(v, 'v', size - 1);
	v[size - 1] = '\0';
	store_meta_init(m);
	ATF_REQUIRE(store_meta_set(m, "k", v) == 0);
	ATF_REQUIRE_EQ(size, store_meta_size(m));
	free(v);
}

CONTRACT(metadata_limit_is_2048_bytes)
{
	store_meta at, over;
	meta_of_size(&at, 2048);
	meta_of_size(&over, 2049);
	char etag[72];
	s3db_error err;
	const char *k_ok = K(c, "at-limit"), *k_over = K(c, "over-limit");
	CHECK_OK(store_put(c->st, k_ok, &at, "x", 1, NULL, etag, &err), &err);
	store_object o;
	store_object_init(&o);
	CHECK_OK(store_head(c->st, k_ok, &o, &err), &err);
	ATF_CHECK_STREQ(at.items[0].value, store_meta_get(&o.meta, "k"));
	store_object_free(&o);

	CHECK_CODE(S3DB_ERR_METADATA_TOO_LARGE,
	           store_put(c->st, k_over, &over, "x", 1, NULL, etag, &err), &err);
	expect_absent(c, k_over);
	/* a refused overwrite leaves the previous object */
	CHECK_CODE(S3DB_ERR_METADATA_TOO_LARGE,
	           store_put(c->st, k_ok, &over, "y", 1, NULL, etag, &err), &err);
	expect_body(c, k_ok, "x");
	store_meta_free(&at);
	store_meta_free(&over);
}

/* Keys S3 takes literally that a naive path mapping would not. */
static const char *const odd_keys[] = {
	"with space", "unicode-\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80", "a=b", "a+b",
	"100%", "%41", "..", "../up", "x/../y", "./dot", ".", "a", "a/b", "a/b/c", "a-b",
	"trailing/", "double//slash", "semi;colon", "q?x", "hash#x", "tab\tx", "amp&x",
	"star*", "quote\"s", "back\\slash", "tilde~", "UPPER", "upper",
};

CONTRACT(odd_keys_round_trip_and_list_in_byte_order)
{
	size_t n = sizeof odd_keys / sizeof odd_keys[0];
	strv want;
	strv_init(&want);
	for (size_t i = 0; i < n; i++)
		ATF_REQUIRE(strv_push(&want, K(c, "%s", odd_keys[i])) == 0);
	/* long segments: 300 ASCII bytes and 240 bytes of two-byte UTF-8 */
	char longseg[301], utf[241];
	memset(longseg, 'L', 300);
	longseg[300] = '\0';
	for (int i = 0; i < 240; i += 2) {
		utf[i] = (char)0xc3;
		utf[i + 1] = (char)0xa9;
	}
	utf[240] = '\0';
	ATF_REQUIRE(strv_push(&want, K(c, "%s", longseg)) == 0);
	ATF_REQUIRE(strv_push(&want, K(c, "%s/leaf", longseg)) == 0);
	ATF_REQUIRE(strv_push(&want, K(c, "long/%s", utf)) == 0);
	for (size_t i = 0; i < want.count; i++)
		put_str(c, want.items[i], want.items[i]);
	for (size_t i = 0; i < want.count; i++)
		expect_body(c, want.items[i], want.items[i]);

	qsort(want.items, want.count, sizeof *want.items, strv_cmp);
	strv got;
	list_keys(c, c->base, &got);
	expect_strings(got.items, got.count, (const char *const *)want.items, want.count, "keys");
	strv_free(&got);

	/* and one by one, a page of one key each */
	char *token = NULL;
	size_t seen = 0;
	for (;;) {
		store_list_opts o = { .prefix = c->base, .max_keys = 1, .continuation = token };
		store_list_page p;
		list_page(c, &o, &p);
		free(token);
		token = NULL;
		ATF_REQUIRE_EQ(1, p.count);
		ATF_CHECK_STREQ(want.items[seen], p.entries[0].key);
		seen++;
		if (p.truncated)
			token = strdup(p.next_token);
		store_list_page_free(&p);
		if (!token)
			break;
	}
	ATF_CHECK_EQ(want.count, seen);
	strv_free(&want);
}

CONTRACT(key_can_be_both_an_object_and_a_prefix)
{
	put_str(c, K(c, "a"), "object a");
	put_str(c, K(c, "a/b"), "object a/b");
	put_str(c, K(c, "a/"), "object a/");
	expect_body(c, K(c, "a"), "object a");
	expect_body(c, K(c, "a/b"), "object a/b");
	expect_body(c, K(c, "a/"), "object a/");
	store_list_opts o = { .prefix = c->base, .delimiter = "/" };
	store_list_page p;
	list_page(c, &o, &p);
	const char *keys[] = { K(c, "a") }, *prefixes[] = { K(c, "a/") };
	expect_page(&p, keys, 1, prefixes, 1, 0);
	store_list_page_free(&p);
	s3db_error err;
	CHECK_OK(store_delete(c->st, K(c, "a/b"), &err), &err);
	expect_body(c, K(c, "a"), "object a");
	expect_body(c, K(c, "a/"), "object a/");
	CHECK_OK(store_delete(c->st, K(c, "a"), &err), &err);
	expect_body(c, K(c, "a/"), "object a/");
}

/* P/{a, a-c, a/b, a/c/d, b/x, b/y, c} */
static void put_tree(tctx *c)
{
	static const char *const rel[] = { "a", "a-c", "a/b", "a/c/d", "b/x", "b/y", "c" };
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
		put_str(c, K(c, "%s", rel[i]), rel[i]);
}

CONTRACT(list_honours_prefix_delimiter_and_start_after)
{
	put_tree(c);
	store_list_page p;
	{
		store_list_opts o = { .prefix = c->base, .delimiter = "/" };
		list_page(c, &o, &p);
		const char *k[] = { K(c, "a"), K(c, "a-c"), K(c, "c") };
		const char *cp[] = { K(c, "a/"), K(c, "b/") };
		expect_page(&p, k, 3, cp, 2, 0);
		ATF_CHECK_EQ(1, p.entries[0].size);
		ATF_CHECK_EQ(3, p.entries[1].size);
		char etag[72];
		md5_etag("a-c", 3, etag);
		ATF_CHECK_STREQ(etag, p.entries[1].etag);
		ATF_CHECK(p.entries[1].last_modified_ms > 0);
		store_list_page_free(&p);
	}
	{
		store_list_opts o = { .prefix = K(c, "a/"), .delimiter = "/" };
		list_page(c, &o, &p);
		const char *k[] = { K(c, "a/b") }, *cp[] = { K(c, "a/c/") };
		expect_page(&p, k, 1, cp, 1, 0);
		store_list_page_free(&p);
	}
	{
		store_list_opts o = { .prefix = K(c, "a") };
		list_page(c, &o, &p);
		const char *k[] = { K(c, "a"), K(c, "a-c"), K(c, "a/b"), K(c, "a/c/d") };
		expect_page(&p, k, 4, NULL, 0, 0);
		store_list_page_free(&p);
	}
	{
		store_list_opts o = { .prefix = c->base, .start_after = K(c, "a-c") };
		list_page(c, &o, &p);
		const char *k[] = { K(c, "a/b"), K(c, "a/c/d"), K(c, "b/x"), K(c, "b/y"), K(c, "c") };
		expect_page(&p, k, 5, NULL, 0, 0);
		store_list_page_free(&p);
	}
	{
		store_list_opts o = { .prefix = K(c, "b"), .delimiter = "/" };
		list_page(c, &o, &p);
		const char *cp[] = { K(c, "b/") };
		expect_page(&p, NULL, 0, cp, 1, 0);
		store_list_page_free(&p);
	}
	{
		/* any string is a delimiter */
		store_list_opts o = { .prefix = c->base, .delimiter = "-" };
		list_page(c, &o, &p);
		const char *k[] = { K(c, "a"), K(c, "a/b"), K(c, "a/c/d"), K(c, "b/x"), K(c, "b/y"),
		                    K(c, "c") };
		const char *cp[] = { K(c, "a-") };
		expect_page(&p, k, 6, cp, 1, 0);
		store_list_page_free(&p);
	}
	{
		store_list_opts o = { .prefix = K(c, "zz") };
		list_page(c, &o, &p);
		expect_page(&p, NULL, 0, NULL, 0, 0);
		store_list_page_free(&p);
	}
	{
		store_list_opts o = { .prefix = c->base, .start_after = K(c, "c") };
		list_page(c, &o, &p);
		expect_page(&p, NULL, 0, NULL, 0, 0);
		store_list_page_free(&p);
	}
}

CONTRACT(list_paginates_common_prefixes_with_the_keys)
{
	put_tree(c);
	const char *seq[] = { K(c, "a"), K(c, "a-c"), K(c, "a/"), K(c, "b/"), K(c, "c") };
	const int is_prefix[] = { 0, 0, 1, 1, 0 };
	char *token = NULL;
	for (size_t i = 0; i < 5; i++) {
		store_list_opts o = { .prefix = c->base, .delimiter = "/", .max_keys = 1,
		                      .continuation = token };
		store_list_page p;
		list_page(c, &o, &p);
		free(token);
		token = NULL;
		if (is_prefix[i])
			expect_page(&p, NULL, 0, &seq[i], 1, i < 4);
		else
			expect_page(&p, &seq[i], 1, NULL, 0, i < 4);
		if (p.truncated && p.next_token)
			token = strdup(p.next_token);
		store_list_page_free(&p);
	}
	ATF_CHECK(token == NULL);
	free(token);

	/* two at a time: [a, a-c] [a/, b/] [c] */
	store_list_opts o = { .prefix = c->base, .delimiter = "/", .max_keys = 2 };
	store_list_page p;
	list_page(c, &o, &p);
	expect_page(&p, seq, 2, NULL, 0, 1);
	token = strdup(p.next_token);
	store_list_page_free(&p);
	o.continuation = token;
	list_page(c, &o, &p);
	expect_page(&p, NULL, 0, seq + 2, 2, 1);
	free(token);
	token = strdup(p.next_token);
	store_list_page_free(&p);
	o.continuation = token;
	list_page(c, &o, &p);
	expect_page(&p, seq + 4, 1, NULL, 0, 0);
	store_list_page_free(&p);
	free(token);
}

#define MANY 2500

static int count_until_ten(void *ud, const store_entry *e)
{
	return ++*(size_t *)ud == 10;
}

CONTRACT(list_paginates_in_key_order)
{
	strv want;
	strv_init(&want);
	/* written out of order; names mix digits, letters and a dash */
	for (size_t i = 0; i < MANY; i++) {
		size_t j = (i * 7919) % MANY;
		const char *key = K(c, "%c%04zu%s", j % 3 ? 'k' : 'K', j, j % 5 ? "" : "-x");
		put_str(c, key, "v");
		ATF_REQUIRE(strv_push(&want, key) == 0);
	}
	qsort(want.items, want.count, sizeof *want.items, strv_cmp);

	char *token = NULL;
	size_t at = 0;
	const size_t sizes[] = { 1000, 1000, 500 };
	for (size_t page = 0; page < 3; page++) {
		store_list_opts o = { .prefix = c->base, .max_keys = 1000, .continuation = token };
		store_list_page p;
		list_page(c, &o, &p);
		free(token);
		token = NULL;
		ATF_REQUIRE_EQ_MSG(sizes[page], p.count, "page %zu has %zu keys", page, p.count);
		ATF_CHECK_EQ(page < 2, p.truncated);
		for (size_t i = 0; i < p.count; i++, at++) {
			if (strcmp(want.items[at], p.entries[i].key) != 0)
				atf_tc_fail("page %zu entry %zu: '%s', expected '%s'", page, i,
				            p.entries[i].key, want.items[at]);
			ATF_CHECK_EQ(1, p.entries[i].size);
		}
		if (p.truncated)
			token = strdup(p.next_token);
		store_list_page_free(&p);
	}
	ATF_CHECK(token == NULL);
	free(token);

	/* max_keys 0 means 1000 */
	store_list_opts o0 = { .prefix = c->base };
	store_list_page p;
	list_page(c, &o0, &p);
	ATF_CHECK_EQ(1000, p.count);
	ATF_CHECK(p.truncated);
	store_list_page_free(&p);

	strv got;
	list_keys(c, c->base, &got);
	expect_strings(got.items, got.count, (const char *const *)want.items, want.count,
	               "store_list_all");
	strv_free(&got);

	size_t calls = 0;
	s3db_error err;
	CHECK_OK(store_list_all(c->st, c->base, count_until_ten, &calls, &err), &err);
	ATF_CHECK_EQ(10, calls);
	strv_free(&want);
}

CONTRACT(delete_removes_the_object_and_absent_deletes_succeed)
{
	const char *key = K(c, "doomed");
	put_str(c, key, "x");
	put_str(c, K(c, "kept"), "y");
	s3db_error err;
	CHECK_OK(store_delete(c->st, key, &err), &err);
	expect_absent(c, key);
	CHECK_OK(store_delete(c->st, key, &err), &err);
	CHECK_OK(store_delete(c->st, K(c, "never/was"), &err), &err);
	expect_body(c, K(c, "kept"), "y");
	strv got;
	list_keys(c, c->base, &got);
	const char *want[] = { K(c, "kept") };
	expect_strings(got.items, got.count, want, 1, "keys");
	strv_free(&got);
}

static void count_deletes(void *ud, const s3db_request_info *info)
{
	if (info->command == S3DB_CMD_DELETE_OBJECTS)
		++*(int *)ud;
}

CONTRACT(delete_many_removes_1500_keys_in_batches_of_1000)
{
	const size_t n = 1500;
	strv keys;
	strv_init(&keys);
	for (size_t i = 0; i < n; i++) {
		const char *key = K(c, "d/%04zu", i);
		put_str(c, key, "x");
		ATF_REQUIRE(strv_push(&keys, key) == 0);
	}
	/* absent keys in the batch are fine */
	ATF_REQUIRE(strv_push(&keys, K(c, "d/absent-1")) == 0);
	ATF_REQUIRE(strv_push(&keys, K(c, "d/absent-2")) == 0);
	put_str(c, K(c, "survivor"), "s");
	int batches = 0;
	store_set_hook(c->st, count_deletes, &batches);
	s3db_error err;
	CHECK_OK(store_delete_many(c->st, (const char *const *)keys.items, keys.count, &err), &err);
	store_set_hook(c->st, NULL, NULL);
	ATF_CHECK_EQ(2, batches);
	strv got;
	list_keys(c, c->base, &got);
	const char *want[] = { K(c, "survivor") };
	expect_strings(got.items, got.count, want, 1, "keys left");
	strv_free(&got);
	strv_free(&keys);
}

static void put_source(tctx *c, const char *key, char etag[72])
{
	store_meta m;
	store_meta_init(&m);
	ATF_REQUIRE(store_meta_set(&m, "a", "1") == 0);
	ATF_REQUIRE(store_meta_set(&m, "b", "2") == 0);
	store_put_opts opts = { .content_type = "text/plain" };
	s3db_error err;
	CHECK_OK(store_put(c->st, key, &m, "source body", 11, &opts, etag, &err), &err);
	store_meta_free(&m);
}

CONTRACT(copy_with_replace_sets_new_metadata)
{
	char etag[72];
	const char *src = K(c, "src"), *dst = K(c, "dst");
	put_source(c, src, etag);
	store_meta m;
	store_meta_init(&m);
	ATF_REQUIRE(store_meta_set(&m, "c", "3") == 0);
	s3db_error err;
	CHECK_OK(store_copy(c->st, src, dst, &m, "application/json", &err), &err);
	store_object o;
	store_object_init(&o);
	CHECK_OK(store_get(c->st, dst, &o, &err), &err);
	ATF_CHECK_STREQ("source body", (const char *)o.body);
	ATF_CHECK_STREQ(etag, o.etag);
	ATF_CHECK_STREQ("application/json", o.content_type);
	ATF_CHECK_EQ(1, o.meta.count);
	ATF_CHECK_STREQ("3", store_meta_get(&o.meta, "c"));
	store_object_free(&o);
	/* the source is untouched */
	store_object_init(&o);
	CHECK_OK(store_head(c->st, src, &o, &err), &err);
	ATF_CHECK_EQ(2, o.meta.count);
	ATF_CHECK_STREQ("text/plain", o.content_type);
	store_object_free(&o);
	/* REPLACE onto itself rewrites the metadata */
	CHECK_OK(store_copy(c->st, dst, dst, &m, "text/csv", &err), &err);
	store_object_init(&o);
	CHECK_OK(store_head(c->st, dst, &o, &err), &err);
	ATF_CHECK_STREQ("text/csv", o.content_type);
	store_object_free(&o);
	store_meta_free(&m);
	/* the 2 KB rule holds for copies too */
	store_meta big;
	meta_of_size(&big, 2049);
	CHECK_CODE(S3DB_ERR_METADATA_TOO_LARGE,
	           store_copy(c->st, src, K(c, "too-big"), &big, NULL, &err), &err);
	expect_absent(c, K(c, "too-big"));
	store_meta_free(&big);
}

CONTRACT(copy_with_copy_keeps_metadata)
{
	char etag[72];
	const char *src = K(c, "src"), *dst = K(c, "sub/dst");
	put_source(c, src, etag);
	put_str(c, dst, "old");
	s3db_error err;
	CHECK_OK(store_copy(c->st, src, dst, NULL, NULL, &err), &err);
	store_object o;
	store_object_init(&o);
	CHECK_OK(store_get(c->st, dst, &o, &err), &err);
	ATF_CHECK_STREQ("source body", (const char *)o.body);
	ATF_CHECK_STREQ(etag, o.etag);
	ATF_CHECK_STREQ("text/plain", o.content_type);
	ATF_CHECK_EQ(2, o.meta.count);
	ATF_CHECK_STREQ("1", store_meta_get(&o.meta, "a"));
	ATF_CHECK_STREQ("2", store_meta_get(&o.meta, "b"));
	store_object_free(&o);
}

CONTRACT(copy_onto_itself_needs_replace)
{
	char etag[72];
	const char *key = K(c, "self");
	put_source(c, key, etag);
	s3db_error err;
	/* S3: 400 InvalidRequest, "copy an object to itself without changing
	 * the object's metadata" */
	CHECK_CODE(S3DB_ERR_BAD_REQUEST, store_copy(c->st, key, key, NULL, NULL, &err), &err);
	store_object o;
	store_object_init(&o);
	CHECK_OK(store_get(c->st, key, &o, &err), &err);
	ATF_CHECK_STREQ("source body", (const char *)o.body);
	ATF_CHECK_EQ(2, o.meta.count);
	store_object_free(&o);
}

CONTRACT(copy_of_a_missing_source_is_not_found)
{
	s3db_error err;
	CHECK_CODE(S3DB_ERR_NOT_FOUND,
	           store_copy(c->st, K(c, "nothing"), K(c, "dst"), NULL, NULL, &err), &err);
	expect_absent(c, K(c, "dst"));
}

typedef struct seen_call {
	s3db_command cmd;
	char key[256];
	s3db_code result;
	int attempts;
	int http_status;
} seen_call;

typedef struct seen_calls {
	seen_call calls[32];
	int n;
} seen_calls;

static void record_call(void *ud, const s3db_request_info *info)
{
	seen_calls *s = ud;
	if (s->n < 32) {
		seen_call *c = &s->calls[s->n];
		c->cmd = info->command;
		snprintf(c->key, sizeof c->key, "%s", info->key ? info->key : "(null)");
		c->result = info->result;
		c->attempts = info->attempts;
		c->http_status = info->http_status;
	}
	s->n++;
}

CONTRACT(request_hook_sees_one_call_per_request)
{
	seen_calls seen;
	memset(&seen, 0, sizeof seen);
	store_set_hook(c->st, record_call, &seen);
	const char *k1 = K(c, "one"), *k2 = K(c, "two"), *k3 = K(c, "three");
	char etag[72];
	s3db_error err;
	store_object o;
	store_list_page p;
	store_list_opts lo = { .prefix = c->base };
	const char *batch[] = { k1, k3 };

	CHECK_OK(store_put(c->st, k1, NULL, "body", 4, NULL, etag, &err), &err);
	store_object_init(&o);
	CHECK_OK(store_get(c->st, k1, &o, &err), &err);
	store_object_free(&o);
	store_object_init(&o);
	CHECK_OK(store_head(c->st, k1, &o, &err), &err);
	store_object_free(&o);
	store_object_init(&o);
	CHECK_OK(store_get_range(c->st, k1, 1, 2, &o, &err), &err);
	store_object_free(&o);
	store_object_init(&o);
	CHECK_CODE(S3DB_ERR_NOT_FOUND, store_get(c->st, k3, &o, &err), &err);
	store_object_free(&o);
	CHECK_OK(store_list(c->st, &lo, &p, &err), &err);
	store_list_page_free(&p);
	CHECK_OK(store_copy(c->st, k1, k2, NULL, NULL, &err), &err);
	CHECK_OK(store_delete(c->st, k2, &err), &err);
	CHECK_OK(store_delete_many(c->st, batch, 2, &err), &err);
	store_set_hook(c->st, NULL, NULL);
	/* not seen: the hook is off */
	CHECK_OK(store_put(c->st, k1, NULL, "body", 4, NULL, etag, &err), &err);

	const struct { s3db_command cmd; const char *key; s3db_code result; } want[] = {
		{ S3DB_CMD_PUT_OBJECT, k1, S3DB_OK },
		{ S3DB_CMD_GET_OBJECT, k1, S3DB_OK },
		{ S3DB_CMD_HEAD_OBJECT, k1, S3DB_OK },
		{ S3DB_CMD_GET_OBJECT, k1, S3DB_OK },
		{ S3DB_CMD_GET_OBJECT, k3, S3DB_ERR_NOT_FOUND },
		{ S3DB_CMD_LIST_OBJECTS_V2, c->base, S3DB_OK },
		{ S3DB_CMD_COPY_OBJECT, k2, S3DB_OK },
		{ S3DB_CMD_DELETE_OBJECT, k2, S3DB_OK },
		{ S3DB_CMD_DELETE_OBJECTS, k1, S3DB_OK },
	};
	const int nwant = (int)(sizeof want / sizeof want[0]);
	ATF_REQUIRE_EQ_MSG(nwant, seen.n, "%d hook calls, expected %d", seen.n, nwant);
	for (int i = 0; i < nwant; i++) {
		const seen_call *s = &seen.calls[i];
		ATF_CHECK_EQ_MSG(want[i].cmd, s->cmd, "call %d: %s, expected %s", i,
		                 s3db_command_name(s->cmd), s3db_command_name(want[i].cmd));
		ATF_CHECK_STREQ_MSG(want[i].key, s->key, "call %d", i);
		ATF_CHECK_EQ_MSG(want[i].result, s->result, "call %d: %s", i,
		                 s3db_strerror(s->result));
		ATF_CHECK_EQ_MSG(1, s->attempts, "call %d: %d attempts", i, s->attempts);
		if (c->is_file)
			ATF_CHECK_EQ_MSG(0, s->http_status, "call %d", i);
		else
			ATF_CHECK_MSG(s->http_status >= 200, "call %d: status %d", i, s->http_status);
	}
}

/* ---- the file backend only -------------------------------------------- */

static store *open_again(tctx *c)
{
	store *s = NULL;
	s3db_error err;
	CHECK_OK(store_file_open(c->dir, &s, &err), &err);
	return s;
}

/* Waits for every child; fails unless each exited with status 0. */
static void wait_children(pid_t *pids, int n)
{
	int bad = 0;
	for (int i = 0; i < n; i++) {
		int status;
		ATF_REQUIRE(waitpid(pids[i], &status, 0) == pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	ATF_REQUIRE_EQ_MSG(0, bad, "%d of %d processes failed", bad, n);
}

#define RACERS 8
#define RACE_KEYS 40

FILE_CASE(if_none_match_race_between_processes_has_one_winner)
{
	int wins[2], go[2];
	ATF_REQUIRE(pipe(wins) == 0 && pipe(go) == 0);
	pid_t pids[RACERS];
	for (int p = 0; p < RACERS; p++) {
		pids[p] = fork();
		ATF_REQUIRE(pids[p] >= 0);
		if (pids[p] > 0)
			continue;
		/* child: its own store on the same directory */
		close(wins[0]);
		close(go[1]);
		store *s = NULL;
		s3db_error err;
		if (store_file_open(c->dir, &s, &err) != S3DB_OK)
			_exit(2);
		char b;
		if (read(go[0], &b, 1) != 0)   /* released by the parent's close */
			_exit(3);
		for (int k = 0; k < RACE_KEYS; k++) {
			char key[64], body[16], etag[72];
			snprintf(key, sizeof key, "race/k%02d", k);
			snprintf(body, sizeof body, "p%d", p);
			store_put_opts inm = { .if_none_match = 1 };
			s3db_code rc = store_put(s, key, NULL, body, strlen(body), &inm, etag, &err);
			if (rc == S3DB_OK) {
				unsigned char msg[2] = { (unsigned char)p, (unsigned char)k };
				if (write(wins[1], msg, 2) != 2)
					_exit(4);
			} else if (rc != S3DB_ERR_PRECONDITION) {
				_exit(5);
			}
		}
		store_close(s);
		_exit(0);
	}
	close(wins[1]);
	close(go[0]);
	close(go[1]);   /* go! */
	int winner[RACE_KEYS], count[RACE_KEYS] = { 0 };
	unsigned char msg[2];
	while (read(wins[0], msg, 2) == 2) {
		ATF_REQUIRE(msg[1] < RACE_KEYS);
		count[msg[1]]++;
		winner[msg[1]] = msg[0];
	}
	close(wins[0]);
	wait_children(pids, RACERS);
	for (int k = 0; k < RACE_KEYS; k++) {
		ATF_REQUIRE_EQ_MSG(1, count[k], "key %d created %d times", k, count[k]);
		char key[64], body[16];
		snprintf(key, sizeof key, "race/k%02d", k);
		snprintf(body, sizeof body, "p%d", winner[k]);
		expect_body(c, key, body);
	}
}

typedef struct racer {
	store *st;
	int id;
	int wins[RACE_KEYS];
	int errors;
	pthread_barrier_t *start;
} racer;

static void *race_thread(void *arg)
{
	racer *r = arg;
	pthread_barrier_wait(r->start);
	for (int k = 0; k < RACE_KEYS; k++) {
		char key[64], body[16], etag[72];
		snprintf(key, sizeof key, "trace/k%02d", k);
		snprintf(body, sizeof body, "t%d", r->id);
		store_put_opts inm = { .if_none_match = 1 };
		s3db_error err;
		s3db_code rc = store_put(r->st, key, NULL, body, strlen(body), &inm, etag, &err);
		if (rc == S3DB_OK)
			r->wins[k] = 1;
		else if (rc != S3DB_ERR_PRECONDITION)
			r->errors++;
	}
	return NULL;
}

FILE_CASE(if_none_match_race_between_threads_has_one_winner)
{
	racer r[RACERS];
	pthread_t th[RACERS];
	pthread_barrier_t start;
	ATF_REQUIRE(pthread_barrier_init(&start, NULL, RACERS) == 0);
	for (int i = 0; i < RACERS; i++) {
		memset(&r[i], 0, sizeof r[i]);
		r[i].st = c->st;   /* one store shared by every thread */
		r[i].id = i;
		r[i].start = &start;
		ATF_REQUIRE(pthread_create(&th[i], NULL, race_thread, &r[i]) == 0);
	}
	for (int i = 0; i < RACERS; i++)
		ATF_REQUIRE(pthread_join(th[i], NULL) == 0);
	pthread_barrier_destroy(&start);
	for (int k = 0; k < RACE_KEYS; k++) {
		int wins = 0, winner = -1;
		for (int i = 0; i < RACERS; i++) {
			ATF_REQUIRE_EQ_MSG(0, r[i].errors, "thread %d had errors", i);
			if (r[i].wins[k]) {
				wins++;
				winner = i;
			}
		}
		ATF_REQUIRE_EQ_MSG(1, wins, "key %d created %d times", k, wins);
		char key[64], body[16];
		snprintf(key, sizeof key, "trace/k%02d", k);
		snprintf(body, sizeof body, "t%d", winner);
		expect_body(c, key, body);
	}
}

#define INCREMENTERS 6
#define INCREMENTS 25

FILE_CASE(if_match_race_between_processes_loses_no_update)
{
	put_str(c, "counter", "0");
	pid_t pids[INCREMENTERS];
	for (int p = 0; p < INCREMENTERS; p++) {
		pids[p] = fork();
		ATF_REQUIRE(pids[p] >= 0);
		if (pids[p] > 0)
			continue;
		store *s = NULL;
		s3db_error err;
		if (store_file_open(c->dir, &s, &err) != S3DB_OK)
			_exit(2);
		for (int done = 0; done < INCREMENTS;) {
			store_object o;
			store_object_init(&o);
			if (store_get(s, "counter", &o, &err) != S3DB_OK)
				_exit(3);
			char next[32], etag[72];
			snprintf(next, sizeof next, "%ld", strtol((const char *)o.body, NULL, 10) + 1);
			store_put_opts cas = { .if_match = o.etag };
			s3db_code rc = store_put(s, "counter", NULL, next, strlen(next), &cas, etag, &err);
			store_object_free(&o);
			if (rc == S3DB_OK)
				done++;
			else if (rc != S3DB_ERR_PRECONDITION)
				_exit(4);
		}
		store_close(s);
		_exit(0);
	}
	wait_children(pids, INCREMENTERS);
	char want[32];
	snprintf(want, sizeof want, "%d", INCREMENTERS * INCREMENTS);
	expect_body(c, "counter", want);
}

#define CHURNERS 4
#define CHURNS 150

FILE_CASE(writers_survive_concurrent_removal_of_emptied_directories)
{
	pid_t pids[CHURNERS];
	for (int p = 0; p < CHURNERS; p++) {
		pids[p] = fork();
		ATF_REQUIRE(pids[p] >= 0);
		if (pids[p] > 0)
			continue;
		store *s = NULL;
		s3db_error err;
		if (store_file_open(c->dir, &s, &err) != S3DB_OK)
			_exit(2);
		char key[64], etag[72];
		snprintf(key, sizeof key, "shared/deep/er/k%d", p);
		for (int i = 0; i < CHURNS; i++) {
			if (store_put(s, key, NULL, "x", 1, NULL, etag, &err) != S3DB_OK)
				_exit(3);
			store_object o;
			store_object_init(&o);
			if (store_head(s, key, &o, &err) != S3DB_OK)
				_exit(4);
			store_object_free(&o);
			if (store_delete(s, key, &err) != S3DB_OK)
				_exit(5);
		}
		store_close(s);
		_exit(0);
	}
	wait_children(pids, CHURNERS);
	strv got;
	list_keys(c, "", &got);
	ATF_CHECK_EQ(0, got.count);
	strv_free(&got);
}

/* Looks for an entry called name below dir (depth first) into out. */
static int find_rec(const char *dir, const char *name, char *out, size_t size)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	int found = 0;
	while (!found && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *sub = s3db_asprintf("%s/%s", dir, de->d_name);
		ATF_REQUIRE(sub != NULL);
		if (strcmp(de->d_name, name) == 0) {
			snprintf(out, size, "%s", sub);
			found = 1;
		} else {
			found = find_rec(sub, name, out, size);
		}
		free(sub);
	}
	closedir(d);
	return found;
}

/* The path of the file or directory named `name` below dir (static). */
static const char *find_below(const char *dir, const char *name)
{
	static char path[PATH_MAX];
	ATF_REQUIRE_MSG(find_rec(dir, name, path, sizeof path), "no '%s' below %s", name, dir);
	return path;
}

FILE_CASE(interrupted_write_leaves_no_visible_object)
{
	put_str(c, "dir/real", "real");
	put_str(c, "dir/ghost", "ghost");
	put_str(c, "lone/ghost", "ghost");
	/* a crash after writing, before the rename: the complete object file
	 * is left under its temporary name (twice: once beside a real object,
	 * once alone in its directory) */
	const char *ghosts[] = { "ddir", "dlone" };
	for (int i = 0; i < 2; i++) {
		char ghost[PATH_MAX], tmp[PATH_MAX + 32];
		if (snprintf(ghost, sizeof ghost, "%s/fghost", find_below(c->dir, ghosts[i])) >= (int)sizeof ghost)
			atf_tc_fail("path too long");
		snprintf(tmp, sizeof tmp, "%s/.t-99999-%d-0", find_below(c->dir, ghosts[i]), i);
		ATF_REQUIRE_MSG(rename(ghost, tmp) == 0, "rename %s: %s", ghost, strerror(errno));
	}
	/* and a crash in the middle of writing one, at the top */
	char partial[PATH_MAX + 32];
	snprintf(partial, sizeof partial, "%s/.t-99999-2-0", c->dir);
	FILE *f = fopen(partial, "w");
	ATF_REQUIRE(f != NULL);
	fputs("S3DBOBJ1 200\n{\"key\":\"half", f);
	fclose(f);

	strv got;
	list_keys(c, "", &got);
	const char *want[] = { "dir/real" };
	expect_strings(got.items, got.count, want, 1, "keys");
	strv_free(&got);
	store_list_opts o = { .delimiter = "/" };
	store_list_page p;
	list_page(c, &o, &p);
	const char *cps[] = { "dir/" };
	expect_page(&p, NULL, 0, cps, 1, 0);
	store_list_page_free(&p);
	expect_absent(c, "dir/ghost");
	expect_absent(c, "lone/ghost");
	expect_body(c, "dir/real", "real");
	/* the key can be written again, and deleted */
	put_str(c, "dir/ghost", "again");
	expect_body(c, "dir/ghost", "again");
	s3db_error err;
	CHECK_OK(store_delete(c->st, "dir/ghost", &err), &err);
	CHECK_OK(store_delete(c->st, "dir/real", &err), &err);
	list_keys(c, "", &got);
	ATF_CHECK_EQ(0, got.count);
	strv_free(&got);
}

#define BIG (256 * 1024)
#define REWRITES 60

FILE_CASE(readers_never_see_a_partial_object)
{
	unsigned char *body = malloc(BIG);
	ATF_REQUIRE(body != NULL);
	memset(body, 'a', BIG);
	put_body(c, "big", body, BIG);
	pid_t writer = fork();
	ATF_REQUIRE(writer >= 0);
	if (writer == 0) {
		store *s = NULL;
		s3db_error err;
		char etag[72];
		if (store_file_open(c->dir, &s, &err) != S3DB_OK)
			_exit(2);
		for (int i = 1; i <= REWRITES; i++) {
			/* sizes and contents change on every write */
			memset(body, 'a' + i % 26, BIG);
			if (store_put(s, "big", NULL, body, BIG - (size_t)(i % 7) * 1000, NULL, etag,
			              &err) != S3DB_OK)
				_exit(3);
		}
		store_close(s);
		_exit(0);
	}
	int reads = 0, done = 0;
	while (!done) {
		int status;
		done = waitpid(writer, &status, WNOHANG) == writer;
		if (done)
			ATF_REQUIRE_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed");
		store_object o;
		s3db_error err;
		store_object_init(&o);
		CHECK_OK(store_get(c->st, "big", &o, &err), &err);
		char etag[72];
		md5_etag(o.body, o.body_len, etag);
		ATF_REQUIRE_EQ((size_t)o.size, o.body_len);
		ATF_REQUIRE_STREQ(etag, o.etag);
		for (size_t i = 0; i < o.body_len; i++)
			if (o.body[i] != o.body[0])
				atf_tc_fail("read %d: byte %zu is '%c', byte 0 '%c'", reads, i,
				            o.body[i], o.body[0]);
		store_object_free(&o);
		reads++;
	}
	ATF_CHECK(reads > 1);
	free(body);
}

FILE_CASE(dot_segments_stay_inside_the_root)
{
	const char *keys[] = { "..", "../escape", "../../escape2", ".", "./x", "a/../b", "/abs",
	                       "..%2f..", "/", "//", "a//" };
	size_t n = sizeof keys / sizeof keys[0];
	for (size_t i = 0; i < n; i++)
		put_str(c, keys[i], keys[i]);
	for (size_t i = 0; i < n; i++)
		expect_body(c, keys[i], keys[i]);
	/* the store's parent holds nothing but the store */
	DIR *d = opendir(c->outer);
	ATF_REQUIRE(d != NULL);
	struct dirent *de;
	int others = 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "root"))
			others++;
	closedir(d);
	ATF_CHECK_EQ(0, others);
	strv got;
	list_keys(c, "", &got);
	ATF_CHECK_EQ(n, got.count);
	strv_free(&got);
}

/* Names in dir other than ".", ".." and ".s3dbfs". */
static int visible_entries(const char *dir)
{
	DIR *d = opendir(dir);
	ATF_REQUIRE(d != NULL);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, ".s3dbfs"))
			n++;
	closedir(d);
	return n;
}

FILE_CASE(emptied_directories_are_removed)
{
	put_str(c, "x/y/z/k1", "1");
	put_str(c, "x/y/k2", "2");
	s3db_error err;
	CHECK_OK(store_delete(c->st, "x/y/z/k1", &err), &err);
	char ydir[PATH_MAX];
	snprintf(ydir, sizeof ydir, "%s", find_below(c->dir, "dy"));
	ATF_CHECK_EQ(1, visible_entries(ydir));   /* fk2 only; dz is gone */
	CHECK_OK(store_delete(c->st, "x/y/k2", &err), &err);
	ATF_CHECK_EQ(0, visible_entries(c->dir));
}

FILE_CASE(reopening_the_directory_finds_the_objects)
{
	put_str(c, "persist/k", "kept");
	store_close(c->st);
	c->st = open_again(c);
	expect_body(c, "persist/k", "kept");
	/* a file:// URL names the same root */
	store *s = NULL;
	s3db_error err;
	char *url = s3db_asprintf("file://%s", c->dir);
	CHECK_OK(store_file_open(url, &s, &err), &err);
	free(url);
	store_object o;
	store_object_init(&o);
	CHECK_OK(store_get(s, "persist/k", &o, &err), &err);
	ATF_CHECK_STREQ("kept", (const char *)o.body);
	store_object_free(&o);
	store_close(s);
}

FILE_CASE(keys_longer_than_1024_bytes_are_refused)
{
	char key[1026];
	memset(key, 'k', 1025);
	key[1025] = '\0';
	char etag[72];
	s3db_error err;
	CHECK_CODE(S3DB_ERR_BAD_REQUEST, store_put(c->st, key, NULL, "x", 1, NULL, etag, &err), &err);
	key[1024] = '\0';
	CHECK_OK(store_put(c->st, key, NULL, "x", 1, NULL, etag, &err), &err);
	expect_body(c, key, "x");
}

ATF_TP_ADD_TCS(tp)
{
	ADD_CONTRACT(tp, put_get_head_round_trip_keeps_metadata_and_content_type);
	ADD_CONTRACT(tp, put_without_content_type_stores_binary_octet_stream);
	ADD_CONTRACT(tp, etag_is_the_quoted_md5_of_the_body);
	ADD_CONTRACT(tp, get_range_returns_the_requested_bytes);
	ADD_CONTRACT(tp, get_and_head_of_a_missing_key_are_not_found);
	ADD_CONTRACT(tp, if_none_match_refuses_an_existing_object);
	ADD_CONTRACT(tp, if_match_requires_the_current_etag);
	ADD_CONTRACT(tp, metadata_limit_is_2048_bytes);
	ADD_CONTRACT(tp, odd_keys_round_trip_and_list_in_byte_order);
	ADD_CONTRACT(tp, key_can_be_both_an_object_and_a_prefix);
	ADD_CONTRACT(tp, list_honours_prefix_delimiter_and_start_after);
	ADD_CONTRACT(tp, list_paginates_common_prefixes_with_the_keys);
	ADD_CONTRACT(tp, list_paginates_in_key_order);
	ADD_CONTRACT(tp, delete_removes_the_object_and_absent_deletes_succeed);
	ADD_CONTRACT(tp, delete_many_removes_1500_keys_in_batches_of_1000);
	ADD_CONTRACT(tp, copy_with_replace_sets_new_metadata);
	ADD_CONTRACT(tp, copy_with_copy_keeps_metadata);
	ADD_CONTRACT(tp, copy_onto_itself_needs_replace);
	ADD_CONTRACT(tp, copy_of_a_missing_source_is_not_found);
	ADD_CONTRACT(tp, request_hook_sees_one_call_per_request);

	ATF_TP_ADD_TC(tp, file__if_none_match_race_between_processes_has_one_winner);
	ATF_TP_ADD_TC(tp, file__if_none_match_race_between_threads_has_one_winner);
	ATF_TP_ADD_TC(tp, file__if_match_race_between_processes_loses_no_update);
	ATF_TP_ADD_TC(tp, file__writers_survive_concurrent_removal_of_emptied_directories);
	ATF_TP_ADD_TC(tp, file__interrupted_write_leaves_no_visible_object);
	ATF_TP_ADD_TC(tp, file__readers_never_see_a_partial_object);
	ATF_TP_ADD_TC(tp, file__dot_segments_stay_inside_the_root);
	ATF_TP_ADD_TC(tp, file__emptied_directories_are_removed);
	ATF_TP_ADD_TC(tp, file__reopening_the_directory_finds_the_objects);
	ATF_TP_ADD_TC(tp, file__keys_longer_than_1024_bytes_are_refused);
	return atf_no_error();
}
