/*
 * t_cache.c — the CachePlugin as a spec: cache keys and S3 bodies against
 * the format spec's vectors (§6.2, §8.4), the memory driver's LRU and
 * TTL, and — on the real S3 test server and on the file backend — what
 * the library does with the cache installed: hits cost no request (the
 * request hook counts them), misses fill it, writes drop exactly the
 * entries they can affect, S3 cache objects have the spec's names and
 * bodies, encryption round-trips, /.cache shows stats and takes "clear",
 * and options changed while it runs (s3db_plugin_reconfigure, what the
 * daemon's config watcher calls) apply at once or are refused whole.
 *
 * A small "probe" plugin set up beside the cache captures the host's api
 * table so the tests can read the cache's raw objects the way a plugin
 * does.
 */
#include <atf-c.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../plugins/cache_plugin.h"
#include "codec.h"
#include "s3db_plugin.h"
#include "testlib.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------------ */

static atomic_int requests;

static void count_request(void *ud, const s3db_request_info *info)
{
	(void)ud;
	(void)info;
	atomic_fetch_add(&requests, 1);
}

static int requests_since(int *mark)
{
	int now = atomic_load(&requests), n = now - *mark;
	*mark = now;
	return n;
}

static const s3db_plugin_api *probe_api;

static s3db_code probe_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                             s3db_error *err)
{
	probe_api = api;
	return S3DB_OK;
}

static const s3db_plugin_def probe_def = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION, .size = sizeof(s3db_plugin_def),
	.name = "probe", .version = "1", .setup = probe_setup,
};

/* The /.cache file's functions, found among the plugins' files. */
typedef struct cache_file {
	s3db_file_read_fn read;
	s3db_file_write_fn write;
	void *ud;
} cache_file;

static int find_cache_file(void *ud, const char *path, s3db_file_read_fn read_fn,
                           s3db_file_write_fn write_fn, void *file_ud, int listed)
{
	cache_file *f = ud;
	if (strcmp(path, "/.cache") != 0)
		return 0;
	f->read = read_fn;
	f->write = write_fn;
	f->ud = file_ud;
	return 1;
}

static json_object *read_stats(s3db *db)
{
	cache_file f = { 0 };
	s3db_plugin_files(db, find_cache_file, &f);
	ATF_REQUIRE_MSG(f.read, "/.cache is not registered");
	char *text = NULL;
	size_t len = 0;
	ATF_REQUIRE_EQ(0, f.read(f.ud, NULL, &text, &len));
	json_object *o = json_tokener_parse(text);
	ATF_REQUIRE_MSG(o, "/.cache is not JSON: %s", text);
	free(text);
	return o;
}

static int64_t stat_of(s3db *db, const char *name)
{
	json_object *o = read_stats(db), *v = NULL;
	ATF_REQUIRE_MSG(json_object_object_get_ex(o, name, &v), "/.cache has no %s", name);
	int64_t n = json_object_get_int64(v);
	json_object_put(o);
	return n;
}

static int write_cache_file(s3db *db, const char *text)
{
	cache_file f = { 0 };
	s3db_plugin_files(db, find_cache_file, &f);
	ATF_REQUIRE(f.write);
	return f.write(f.ud, text, strlen(text));
}

/* A database on S3 (s3 = 1) or in a directory, with resource "users"
 * (partition byRegion) and records u1 (BR), u2 (US), u3 (BR). */
static s3db *open_db(const char *name, int s3, s3db_resource **users)
{
	s3db_error err;
	s3db *db = NULL;
	char *cs = s3 ? testlib_s3_connstr(testlib_unique_prefix(name)) : testlib_file_connstr();
	CHECK_OK(s3db_open(cs, NULL, &db, &err), &err);
	free(cs);
	json_object *def = json_tokener_parse(
		"{\"attributes\":{\"name\":\"string\",\"region\":\"string\"},"
		"\"partitions\":{\"byRegion\":{\"fields\":{\"region\":\"string\"}}}}");
	CHECK_OK(s3db_resource_define(db, "users", def, users, &err), &err);
	json_object_put(def);
	const char *recs[] = {
		"{\"id\":\"u1\",\"name\":\"Ana\",\"region\":\"BR\"}",
		"{\"id\":\"u2\",\"name\":\"Bob\",\"region\":\"US\"}",
		"{\"id\":\"u3\",\"name\":\"Caio\",\"region\":\"BR\"}",
	};
	for (size_t i = 0; i < 3; i++) {
		json_object *r = json_tokener_parse(recs[i]);
		CHECK_OK(s3db_insert(*users, r, NULL, NULL, &err), &err);
		json_object_put(r);
	}
	s3db_set_request_hook(db, count_request, NULL);
	return db;
}

/* Adds and starts the cache (after the probe); returns the plugin. */
static s3db_plugin *add_cache(s3db *db, const char *options_json)
{
	s3db_error err;
	s3db_plugin *p = NULL;
	json_object *o = json_tokener_parse(options_json);
	ATF_REQUIRE_MSG(o, "bad options in the test: %s", options_json);
	CHECK_OK(s3db_plugin_add(db, &probe_def, NULL, "test", NULL, &err), &err);
	CHECK_OK(s3db_plugin_add(db, &cache_plugin_def, o, "test", &p, &err), &err);
	CHECK_OK(s3db_plugins_start(db, &err), &err);
	json_object_put(o);
	return p;
}

/* s3db_plugin_reconfigure with options_json; err receives the refusal. */
static s3db_code reconfigure(s3db_plugin *p, const char *options_json, s3db_error *err)
{
	json_object *o = json_tokener_parse(options_json);
	ATF_REQUIRE_MSG(o, "bad options in the test: %s", options_json);
	s3db_error_clear(err);
	s3db_code rc = s3db_plugin_reconfigure(p, o, err);
	json_object_put(o);
	return rc;
}

/* reconfigure must refuse options_json with code and a message naming
 * `option`. */
static void refused(s3db_plugin *p, const char *options_json, s3db_code code, const char *option)
{
	s3db_error err;
	ATF_CHECK_EQ_MSG(code, reconfigure(p, options_json, &err), "%s: %s", options_json,
	                 err.message);
	ATF_CHECK_MSG(strstr(err.message, option) != NULL, "%s: the refusal does not name %s: %s",
	              options_json, option, err.message);
}

static void get_ok(s3db_resource *res, const char *id, const char *want_name)
{
	s3db_error err;
	json_object *r = NULL;
	CHECK_OK(s3db_get(res, id, NULL, &r, &err), &err);
	ATF_CHECK_STREQ(want_name, s3db_json_get_string(r, "name"));
	json_object_put(r);
}

static size_t count_in(s3db_resource *res, const char *region)
{
	s3db_error err;
	json_object *vals = json_object_new_object();
	json_object_object_add(vals, "region", json_object_new_string(region));
	s3db_list_opts lo = { .partition = "byRegion", .partition_values = vals };
	json_object *recs = NULL;
	CHECK_OK(s3db_list(res, &lo, NULL, &recs, &err), &err);
	size_t n = json_object_array_length(recs);
	json_object_put(recs);
	json_object_put(vals);
	return n;
}

static void update_name(s3db_resource *res, const char *id, const char *json)
{
	s3db_error err;
	json_object *patch = json_tokener_parse(json);
	CHECK_OK(s3db_update(res, id, patch, NULL, NULL, &err), &err);
	json_object_put(patch);
}

/* ---- keys (§6.2, §8.4) ------------------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(params_hash_is_md5_of_canonical_json_first_16_hex);
ATF_TC_BODY(params_hash_is_md5_of_canonical_json_first_16_hex, tc)
{
	char h[17];
	json_object *p = json_tokener_parse("{\"ids\":[\"p1\"]}");
	ATF_REQUIRE_EQ(0, cache_key_params_hash(p, h));
	ATF_CHECK_STREQ("4ddef77b55126045", h);
	json_object_put(p);
	p = json_tokener_parse("{\"id\":\"p1\"}");
	ATF_REQUIRE_EQ(0, cache_key_params_hash(p, h));
	ATF_CHECK_STREQ("a33aac6abdd7878a", h);
	json_object_put(p);
	/* canonical: member order does not matter */
	json_object *a = json_tokener_parse("{\"size\":10,\"page\":0}");
	json_object *b = json_tokener_parse("{\"page\":0,\"size\":10}");
	char ha[17], hb[17];
	ATF_REQUIRE_EQ(0, cache_key_params_hash(a, ha));
	ATF_REQUIRE_EQ(0, cache_key_params_hash(b, hb));
	ATF_CHECK_STREQ(ha, hb);
	json_object_put(a);
	json_object_put(b);
}

static void check_key(const char *resource, const char *action, const char *params,
                      const char *partition, const char *values, int include, const char *want)
{
	json_object *p = params ? json_tokener_parse(params) : NULL;
	json_object *v = values ? json_tokener_parse(values) : NULL;
	s3db_cache_request rq = { .resource = resource, .action = action, .params = p,
	                          .partition = partition, .partition_values = v };
	char *k = cache_key_for(&rq, include);
	ATF_CHECK_STREQ(want, k);
	free(k);
	json_object_put(p);
	json_object_put(v);
}

ATF_TC_WITHOUT_HEAD(keys_have_the_spec_layout);
ATF_TC_BODY(keys_have_the_spec_layout, tc)
{
	check_key("posts", "listIds", NULL, NULL, NULL, 1, "resource=posts/action=listIds.json.gz");
	check_key("posts", "getMany", "{\"ids\":[\"p1\"]}", NULL, NULL, 1,
	          "resource=posts/action=getMany/4ddef77b55126045.json.gz");
	check_key("posts", "get", "{\"id\":\"p1\"}", NULL, NULL, 1,
	          "resource=posts/action=get/a33aac6abdd7878a.json.gz");
	check_key("users", "list", NULL, "byRegion", "{\"region\":\"BR\"}", 1,
	          "resource=users/action=list/partition:byRegion/region:BR.json.gz");
	/* insertion order, null values skipped, numbers as JavaScript prints them */
	check_key("users", "count", NULL, "byAll", "{\"b\":2.5,\"a\":null,\"c\":true}", 1,
	          "resource=users/action=count/partition:byAll/b:2.5/c:true.json.gz");
	/* a partition without values, or includePartitions false: no segments */
	check_key("users", "list", NULL, "byRegion", "{}", 1, "resource=users/action=list.json.gz");
	check_key("users", "list", NULL, "byRegion", "{\"region\":\"BR\"}", 0,
	          "resource=users/action=list.json.gz");
	json_object *pp = json_tokener_parse("{\"page\":0,\"size\":10}");
	char h[17], want[160];
	ATF_REQUIRE_EQ(0, cache_key_params_hash(pp, h));
	json_object_put(pp);
	snprintf(want, sizeof want, "resource=users/action=page/partition:byRegion/region:US/%s.json.gz",
	         h);
	check_key("users", "page", "{\"page\":0,\"size\":10}", "byRegion", "{\"region\":\"US\"}", 1,
	          want);
}

ATF_TC_WITHOUT_HEAD(writes_affect_only_their_record_and_partitions);
ATF_TC_BODY(writes_affect_only_their_record_and_partitions, tc)
{
	json_object *oldr = json_tokener_parse("{\"id\":\"u1\",\"region\":\"BR\"}");
	json_object *newr = json_tokener_parse("{\"id\":\"u1\",\"region\":\"AR\"}");
	cache_write w = { .resource = "users", .id = "u1", .old_record = oldr, .new_record = newr };
	char h[17];
	json_object *p = json_tokener_parse("{\"id\":\"u1\"}");
	ATF_REQUIRE_EQ(0, cache_key_params_hash(p, h));
	json_object_put(p);
	char get_u1[128], get_u2[128];
	snprintf(get_u1, sizeof get_u1, "resource=users/action=get/%s.json.gz", h);
	p = json_tokener_parse("{\"id\":\"u2\"}");
	char h2[17];
	ATF_REQUIRE_EQ(0, cache_key_params_hash(p, h2));
	json_object_put(p);
	snprintf(get_u2, sizeof get_u2, "resource=users/action=get/%s.json.gz", h2);
	ATF_CHECK(cache_key_affected(get_u1, &w, h));
	ATF_CHECK(!cache_key_affected(get_u2, &w, h));
	ATF_CHECK(cache_key_affected("resource=users/action=count.json.gz", &w, h));
	ATF_CHECK(cache_key_affected("resource=users/action=getMany/4ddef77b55126045.json.gz", &w, h));
	ATF_CHECK(cache_key_affected("resource=users/action=list/partition:byRegion/region:BR.json.gz",
	                             &w, h));
	ATF_CHECK(cache_key_affected("resource=users/action=list/partition:byRegion/region:AR.json.gz",
	                             &w, h));
	ATF_CHECK(!cache_key_affected("resource=users/action=list/partition:byRegion/region:US.json.gz",
	                              &w, h));
	ATF_CHECK(!cache_key_affected("resource=users2/action=count.json.gz", &w, h));
	ATF_CHECK(!cache_key_affected("resource=posts/action=list.json.gz", &w, h));
	ATF_CHECK(cache_key_affected("resource=users/meta/count/partition=main/values=0.json", &w, h));
	json_object_put(oldr);
	json_object_put(newr);
}

/* ---- bodies (§6.2) ------------------------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(small_body_equals_the_spec_dump_byte_for_byte);
ATF_TC_BODY(small_body_equals_the_spec_dump_byte_for_byte, tc)
{
	json_object *ids = json_tokener_parse("[\"p1\"]");
	cache_body_opts o = { .compression = 1, .ttl_ms = 300000,
	                      .now_ms = 1795738628432LL - 300000 };
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	s3db_error err;
	CHECK_OK(cache_body_encode(ids, &o, &body, &len, &ctype, &err), &err);
	ATF_CHECK_STREQ("{\"data\":\"[\\\"p1\\\"]\",\"compressed\":false,\"originalSize\":6,"
	                "\"_expiresAt\":1795738628432}", body);
	ATF_CHECK_STREQ("application/json", ctype);
	json_object *back = NULL;
	int expired = 1;
	CHECK_OK(cache_body_decode(body, len, o.now_ms, NULL, NULL, &back, &expired, &err), &err);
	ATF_CHECK_EQ(0, expired);
	ATF_CHECK(json_object_equal(ids, back));
	json_object_put(back);
	/* ttl rounds up to whole seconds; no ttl, no _expiresAt */
	free(body);
	o.ttl_ms = 1500;
	CHECK_OK(cache_body_encode(ids, &o, &body, &len, &ctype, &err), &err);
	char want[64];
	snprintf(want, sizeof want, "\"_expiresAt\":%lld}", (long long)(o.now_ms + 2000));
	ATF_CHECK_MSG(strstr(body, want), "%s", body);
	free(body);
	o.ttl_ms = 0;
	CHECK_OK(cache_body_encode(ids, &o, &body, &len, &ctype, &err), &err);
	ATF_CHECK(!strstr(body, "_expiresAt"));
	free(body);
	json_object_put(ids);
}

ATF_TC_WITHOUT_HEAD(large_body_is_gzip_base64_and_round_trips);
ATF_TC_BODY(large_body_is_gzip_base64_and_round_trips, tc)
{
	json_object *arr = json_object_new_array();
	for (int i = 0; i < 300; i++) {
		char id[32];
		snprintf(id, sizeof id, "user-%04d", i);
		json_object_array_add(arr, json_object_new_string(id));
	}
	char *text = s3db_json_stringify(arr, 0);
	cache_body_opts o = { .compression = 1, .now_ms = 1000 };
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	s3db_error err;
	CHECK_OK(cache_body_encode(arr, &o, &body, &len, &ctype, &err), &err);
	ATF_CHECK_STREQ("application/gzip", ctype);
	json_object *b = json_tokener_parse(body);
	ATF_REQUIRE(b);
	json_object *v;
	ATF_REQUIRE(json_object_object_get_ex(b, "compressed", &v));
	ATF_CHECK(json_object_get_boolean(v));
	ATF_REQUIRE(json_object_object_get_ex(b, "originalSize", &v));
	ATF_CHECK_EQ((int64_t)strlen(text), json_object_get_int64(v));
	const char *data = s3db_json_get_string(b, "data");
	ATF_REQUIRE(json_object_object_get_ex(b, "compressedSize", &v));
	ATF_CHECK_EQ((int64_t)strlen(data), json_object_get_int64(v));
	char ratio[32];
	cache_ratio_text(strlen(data), strlen(text), ratio, sizeof ratio);
	ATF_CHECK_STREQ(ratio, s3db_json_get_string(b, "compressionRatio"));
	/* data is base64(gzip(text)) */
	size_t gzlen = 0, plain_len = 0;
	unsigned char *gz = codec_base64_decode_strict(data, &gzlen), *plain = NULL;
	ATF_REQUIRE(gz);
	ATF_CHECK_EQ(0x1f, gz[0]);
	ATF_CHECK_EQ(0x8b, gz[1]);
	ATF_REQUIRE_EQ(0, cache_gunzip(gz, gzlen, &plain, &plain_len));
	ATF_CHECK_EQ(strlen(text), plain_len);
	ATF_CHECK(memcmp(text, plain, plain_len) == 0);
	json_object *back = NULL;
	int expired = 0;
	CHECK_OK(cache_body_decode(body, len, 1000, NULL, NULL, &back, &expired, &err), &err);
	ATF_CHECK(json_object_equal(arr, back));
	/* compression off: the text as is */
	free(body);
	o.compression = 0;
	CHECK_OK(cache_body_encode(arr, &o, &body, &len, &ctype, &err), &err);
	ATF_CHECK_STREQ("application/json", ctype);
	ATF_CHECK(strstr(body, "\"compressed\":false"));
	json_object_put(back);
	json_object_put(b);
	json_object_put(arr);
	free(gz);
	free(plain);
	free(text);
	free(body);
}

ATF_TC_WITHOUT_HEAD(ratio_text_rounds_like_to_fixed);
ATF_TC_BODY(ratio_text_rounds_like_to_fixed, tc)
{
	char t[32];
	cache_ratio_text(1, 8, t, sizeof t); /* 0.125: toFixed(2) gives "0.13" */
	ATF_CHECK_STREQ("0.13", t);
	cache_ratio_text(1, 3, t, sizeof t);
	ATF_CHECK_STREQ("0.33", t);
	cache_ratio_text(2, 3, t, sizeof t);
	ATF_CHECK_STREQ("0.67", t);
	cache_ratio_text(3, 2, t, sizeof t);
	ATF_CHECK_STREQ("1.50", t);
	cache_ratio_text(999, 1000, t, sizeof t); /* 0.999 -> "1.00" */
	ATF_CHECK_STREQ("1.00", t);
}

ATF_TC_WITHOUT_HEAD(gunzip_reads_the_spec_cache_vectors);
ATF_TC_BODY(gunzip_reads_the_spec_cache_vectors, tc)
{
	const char *vec[][2] = { { "H4sIAAAAAAAAAzMEALfv3IMBAAAA", "1" },
	                         { "H4sIAAAAAAAAA4tWKjBUigUAoWF0kAYAAAA=", "[\"p1\"]" } };
	for (size_t i = 0; i < 2; i++) {
		size_t n = 0, m = 0;
		unsigned char *gz = codec_base64_decode_strict(vec[i][0], &n), *out = NULL;
		ATF_REQUIRE(gz);
		ATF_REQUIRE_EQ(0, cache_gunzip(gz, n, &out, &m));
		ATF_CHECK_EQ(strlen(vec[i][1]), m);
		ATF_CHECK(memcmp(out, vec[i][1], m) == 0);
		free(gz);
		free(out);
	}
	/* and our gzip of "1" is Node's, byte for byte */
	unsigned char *gz = NULL;
	size_t n = 0;
	ATF_REQUIRE_EQ(0, cache_gzip("1", 1, &gz, &n));
	char *b64 = codec_base64_encode(gz, n);
	ATF_CHECK_STREQ("H4sIAAAAAAAAAzMEALfv3IMBAAAA", b64);
	free(b64);
	free(gz);
}

ATF_TC_WITHOUT_HEAD(expired_body_reads_as_expired);
ATF_TC_BODY(expired_body_reads_as_expired, tc)
{
	const char *body = "{\"data\":\"1\",\"compressed\":false,\"originalSize\":1,\"_expiresAt\":5000}";
	json_object *v = NULL;
	int expired = 0;
	s3db_error err;
	CHECK_OK(cache_body_decode(body, strlen(body), 5001, NULL, NULL, &v, &expired, &err), &err);
	ATF_CHECK_EQ(1, expired);
	ATF_CHECK(v == NULL);
	CHECK_OK(cache_body_decode(body, strlen(body), 4999, NULL, NULL, &v, &expired, &err), &err);
	ATF_CHECK_EQ(0, expired);
	ATF_CHECK_EQ(1, json_object_get_int(v));
	json_object_put(v);
}

ATF_TC_WITHOUT_HEAD(encrypted_body_round_trips_and_binds_key_and_passphrase);
ATF_TC_BODY(encrypted_body_round_trips_and_binds_key_and_passphrase, tc)
{
	cache_crypto good, bad;
	ATF_REQUIRE_EQ(0, cache_crypto_derive(&good, "cache pass"));
	ATF_REQUIRE_EQ(0, cache_crypto_derive(&bad, "other pass"));
	json_object *rec = json_tokener_parse("{\"id\":\"u1\",\"name\":\"Ana Secret\"}");
	const char *aad = "resource=users/action=get/x.json.gz";
	cache_body_opts o = { .compression = 1, .now_ms = 1, .crypto = &good, .aad = aad };
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	s3db_error err;
	CHECK_OK(cache_body_encode(rec, &o, &body, &len, &ctype, &err), &err);
	ATF_CHECK(!strstr(body, "Ana Secret"));
	ATF_CHECK(strstr(body, "\"encrypted\":\"aes-256-gcm\""));
	ATF_CHECK_STREQ("application/octet-stream", ctype);
	json_object *back = NULL;
	int expired = 0;
	CHECK_OK(cache_body_decode(body, len, 1, &good, aad, &back, &expired, &err), &err);
	ATF_CHECK(json_object_equal(rec, back));
	json_object_put(back);
	ATF_CHECK_EQ(S3DB_ERR_CRYPTO, cache_body_decode(body, len, 1, &bad, aad, &back, &expired, &err));
	ATF_CHECK_EQ(S3DB_ERR_CRYPTO,
	             cache_body_decode(body, len, 1, &good, "resource=users/action=get/y.json.gz",
	                               &back, &expired, &err));
	ATF_CHECK_EQ(S3DB_ERR_CRYPTO, cache_body_decode(body, len, 1, NULL, aad, &back, &expired, &err));
	free(body);
	json_object_put(rec);
}

/* ---- memory driver ---------------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(memory_lru_evicts_the_least_recently_used_at_max_size);
ATF_TC_BODY(memory_lru_evicts_the_least_recently_used_at_max_size, tc)
{
	cache_memory *m = cache_memory_new(3, 0);
	json_object *one = json_object_new_int(1), *out = NULL;
	ATF_REQUIRE_EQ(0, cache_memory_set(m, "a", one, 0));
	ATF_REQUIRE_EQ(0, cache_memory_set(m, "b", one, 0));
	ATF_REQUIRE_EQ(0, cache_memory_set(m, "c", one, 0));
	ATF_CHECK(cache_memory_get(m, "a", 0, &out)); /* a is now the most recent */
	json_object_put(out);
	ATF_REQUIRE_EQ(0, cache_memory_set(m, "d", one, 0));
	ATF_CHECK(!cache_memory_get(m, "b", 0, &out));
	ATF_CHECK(cache_memory_get(m, "a", 0, &out));
	json_object_put(out);
	cache_memory_stats st;
	cache_memory_get_stats(m, &st);
	ATF_CHECK_EQ(3, st.entries);
	ATF_CHECK_EQ(1, st.evictions);
	json_object_put(one);
	cache_memory_free(m);
}

ATF_TC_WITHOUT_HEAD(memory_entries_expire_after_ttl_and_purge_drops_them);
ATF_TC_BODY(memory_entries_expire_after_ttl_and_purge_drops_them, tc)
{
	cache_memory *m = cache_memory_new(10, 1000);
	json_object *v = json_object_new_string("x"), *out = NULL;
	ATF_REQUIRE_EQ(0, cache_memory_set(m, "a", v, 10000));
	ATF_REQUIRE_EQ(0, cache_memory_set(m, "b", v, 10500));
	ATF_CHECK(cache_memory_get(m, "a", 10999, &out));
	json_object_put(out);
	ATF_CHECK(!cache_memory_get(m, "a", 11000, &out));
	ATF_CHECK_EQ(0, cache_memory_purge(m, 11400));
	ATF_CHECK_EQ(1, cache_memory_purge(m, 11500));
	cache_memory_stats st;
	cache_memory_get_stats(m, &st);
	ATF_CHECK_EQ(0, st.entries);
	ATF_CHECK_EQ(0, st.bytes);
	json_object_put(v);
	cache_memory_free(m);
}

ATF_TC_WITHOUT_HEAD(bucket_option_moves_the_connection_to_another_bucket);
ATF_TC_BODY(bucket_option_moves_the_connection_to_another_bucket, tc)
{
	char *s = cache_config_bucket_connstr("http://AK:***@127.0.0.1:9000/data/db/app", "cachebkt",
	                                      "K2", "s/e+c");
	ATF_CHECK_STREQ("http://K2:s%2Fe%2Bc@127.0.0.1:9000/cachebkt/db/app", s);
	free(s);
	s = cache_config_bucket_connstr("s3://AK:***@data/db?region=eu-west-1", "cb", NULL, NULL);
	ATF_CHECK_STREQ("s3://cb/db?region=eu-west-1", s);
	free(s);
	ATF_CHECK(cache_config_bucket_connstr("file:///tmp/x", "b", NULL, NULL) == NULL);
}

ATF_TC_WITHOUT_HEAD(bad_options_fail_setup_naming_the_option);
ATF_TC_BODY(bad_options_fail_setup_naming_the_option, tc)
{
	const char *bad[][2] = {
		{ "{\"driverType\":\"redis\"}", "redis" },
		{ "{\"driver\":\"memory\",\"ttl\":-1}", "ttl" },
		{ "{\"driver\":\"memory\",\"memoryOptions\":{\"maxSize\":0}}", "maxSize" },
		{ "{\"s3Options\":{\"encryption\":true}}", "encryptionKey" },
		{ "{\"includePartitions\":\"yes\"}", "includePartitions" },
		{ "{\"driver\":\"memory\",\"memoryOptions\":{\"evictionPolicy\":\"lfu\"}}", "lru" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cache_config cfg;
		s3db_error err;
		s3db_error_clear(&err);
		json_object *o = json_tokener_parse(bad[i][0]);
		ATF_CHECK_MSG(cache_config_parse(o, &cfg, &err) != S3DB_OK, "accepted %s", bad[i][0]);
		ATF_CHECK_MSG(strstr(err.message, bad[i][1]), "%s: %s", bad[i][0], err.message);
		cache_config_free(&cfg);
		json_object_put(o);
	}
	/* the guide's defaults */
	cache_config cfg;
	s3db_error err;
	json_object *o = json_object_new_object();
	CHECK_OK(cache_config_parse(o, &cfg, &err), &err);
	ATF_CHECK_EQ(0, cfg.memory); /* driverType 's3' */
	ATF_CHECK_EQ(300000, cfg.ttl_ms);
	ATF_CHECK_EQ(1, cfg.include_partitions);
	ATF_CHECK_STREQ("cache", cfg.key_prefix);
	ATF_CHECK_EQ(1, cfg.compression);
	ATF_CHECK_EQ(0, cfg.encryption);
	cache_config_free(&cfg);
	json_object_put(o);
	o = json_tokener_parse("{\"driverType\":\"memory\",\"maxSize\":7,"
	                       "\"memoryOptions\":{\"ttl\":42}}");
	CHECK_OK(cache_config_parse(o, &cfg, &err), &err);
	ATF_CHECK_EQ(1, cfg.memory);
	ATF_CHECK_EQ(7, cfg.max_size);
	ATF_CHECK_EQ(42, cfg.ttl_ms);
	ATF_CHECK_EQ(600000, cfg.check_period_ms);
	cache_config_free(&cfg);
	json_object_put(o);
}

/* ---- the library with the cache (real servers) ------------------------------------------ */

/* get, count and list: a miss costs requests, the repeat none. */
static void hits_cost_no_request(const char *name, int s3, const char *options)
{
	s3db_resource *users;
	s3db *db = open_db(name, s3, &users);
	add_cache(db, options);
	int mark = atomic_load(&requests);
	s3db_error err;
	get_ok(users, "u1", "Ana");
	ATF_CHECK(requests_since(&mark) > 0);
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(0, requests_since(&mark));
	size_t n = 0;
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(3, n);
	ATF_CHECK(requests_since(&mark) > 0);
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(3, n);
	ATF_CHECK_EQ(0, requests_since(&mark));
	json_object *recs = NULL;
	CHECK_OK(s3db_list(users, NULL, NULL, &recs, &err), &err);
	ATF_CHECK_EQ(3, json_object_array_length(recs));
	json_object_put(recs);
	ATF_CHECK(requests_since(&mark) > 0);
	CHECK_OK(s3db_list(users, NULL, NULL, &recs, &err), &err);
	ATF_CHECK_EQ(3, json_object_array_length(recs));
	ATF_CHECK_STREQ("u1", s3db_json_get_string(json_object_array_get_idx(recs, 0), "id"));
	json_object_put(recs);
	ATF_CHECK_EQ(0, requests_since(&mark));
	char **ids = NULL;
	CHECK_OK(s3db_list_ids(users, NULL, &ids, &n, &err), &err);
	s3db_free_strv(ids);
	CHECK_OK(s3db_list_ids(users, NULL, &ids, &n, &err), &err);
	ATF_CHECK_EQ(3, n);
	ATF_CHECK_STREQ("u3", ids[2]);
	s3db_free_strv(ids);
	ATF_CHECK_EQ(1, requests_since(&mark)); /* the first listIds only */
	ATF_CHECK_EQ(1, s3db_exists(users, "u2", &err));
	ATF_CHECK_EQ(0, s3db_exists(users, "nobody", &err));
	requests_since(&mark);
	ATF_CHECK_EQ(1, s3db_exists(users, "u2", &err));
	ATF_CHECK_EQ(0, s3db_exists(users, "nobody", &err));
	ATF_CHECK_EQ(0, requests_since(&mark));
	/* get, count, list, listIds, exists x2: each once missed, once hit */
	ATF_CHECK_EQ(6, stat_of(db, "misses"));
	ATF_CHECK_EQ(6, stat_of(db, "hits"));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(memory_hits_cost_no_request_on_s3);
ATF_TC_BODY(memory_hits_cost_no_request_on_s3, tc)
{
	hits_cost_no_request("memhit", 1, "{\"driver\":\"memory\"}");
}

ATF_TC_WITHOUT_HEAD(memory_hits_cost_no_request_on_files);
ATF_TC_BODY(memory_hits_cost_no_request_on_files, tc)
{
	hits_cost_no_request("memhitf", 0, "{\"driver\":\"memory\"}");
}

ATF_TC_WITHOUT_HEAD(s3_driver_hit_is_one_get_of_the_cache_object);
ATF_TC_BODY(s3_driver_hit_is_one_get_of_the_cache_object, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3hit", 1, &users);
	add_cache(db, "{\"driver\":\"s3\"}");
	s3db_error err;
	size_t n = 0;
	int mark = atomic_load(&requests);
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	requests_since(&mark);
	testlib_front_clear_log();
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(3, n);
	ATF_CHECK_EQ(1, requests_since(&mark)); /* one GET instead of a LIST */
	json_object *log = testlib_front_log();
	ATF_REQUIRE_EQ(1, json_object_array_length(log));
	const char *key = s3db_json_get_string(json_object_array_get_idx(log, 0), "key");
	ATF_CHECK_MSG(key && s3db_str_ends(key, "/plugin=cache/cache/resource=users/action=count.json.gz"),
	              "%s", key ? key : "(none)");
	json_object_put(log);
	s3db_close(db);
}

/* Reads a cache object as a plugin does; *ctype malloc'd. */
static char *read_object(s3db *db, const char *key, char **ctype)
{
	void *data = NULL;
	size_t len = 0;
	s3db_error err;
	CHECK_OK(probe_api->get_object(db, key, &data, &len, ctype, NULL, &err), &err);
	char *t = s3db_strndup(data, len);
	free(data);
	return t;
}

ATF_TC_WITHOUT_HEAD(s3_objects_have_the_spec_names_and_bodies);
ATF_TC_BODY(s3_objects_have_the_spec_names_and_bodies, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3fmt", 1, &users);
	add_cache(db, "{\"driver\":\"s3\",\"ttl\":60000}");
	s3db_error err;
	char **ids = NULL;
	size_t n;
	int64_t before = s3db_now_ms();
	CHECK_OK(s3db_list_ids(users, NULL, &ids, &n, &err), &err);
	s3db_free_strv(ids);
	const char *many[] = { "u1" };
	json_object *res = NULL;
	CHECK_OK(s3db_get_many(users, many, 1, NULL, &res, &err), &err);
	json_object_put(res);
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	char *ctype = NULL;
	char *body = read_object(db, "plugin=cache/cache/resource=users/action=listIds.json.gz", &ctype);
	ATF_CHECK_STREQ("application/json", ctype);
	free(ctype);
	/* {"data":"[\"u1\",\"u2\",\"u3\"]","compressed":false,"originalSize":16,"_expiresAt":T} */
	const char *head = "{\"data\":\"[\\\"u1\\\",\\\"u2\\\",\\\"u3\\\"]\",\"compressed\":false,"
	                   "\"originalSize\":16,\"_expiresAt\":";
	ATF_CHECK_MSG(s3db_str_starts(body, head), "%s", body);
	long long exp = atoll(body + strlen(head));
	ATF_CHECK(exp >= before + 60000 && exp <= s3db_now_ms() + 60000);
	free(body);
	/* getMany {ids:["u1"]} and the partition listing */
	json_object *p = json_tokener_parse("{\"ids\":[\"u1\"]}");
	char h[17], key[160];
	ATF_REQUIRE_EQ(0, cache_key_params_hash(p, h));
	json_object_put(p);
	snprintf(key, sizeof key, "plugin=cache/cache/resource=users/action=getMany/%s.json.gz", h);
	free(read_object(db, key, NULL));
	body = read_object(db,
	                   "plugin=cache/cache/resource=users/action=list/partition:byRegion/region:BR.json.gz",
	                   &ctype);
	/* two records with timestamps: over 1024 characters? no: 2 short records */
	ATF_CHECK(strstr(body, "\"compressed\":false"));
	free(body);
	free(ctype);
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(s3_large_results_are_stored_gzip_and_read_back);
ATF_TC_BODY(s3_large_results_are_stored_gzip_and_read_back, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3gz", 1, &users);
	s3db_error err;
	for (int i = 0; i < 40; i++) {
		char rec[128];
		snprintf(rec, sizeof rec, "{\"id\":\"bulk-%02d\",\"name\":\"Person number %d\",\"region\":\"EU\"}",
		         i, i);
		json_object *r = json_tokener_parse(rec);
		CHECK_OK(s3db_insert(users, r, NULL, NULL, &err), &err);
		json_object_put(r);
	}
	add_cache(db, "{\"driver\":\"s3\"}");
	json_object *first = NULL, *second = NULL;
	CHECK_OK(s3db_list(users, NULL, NULL, &first, &err), &err);
	char *ctype = NULL;
	char *body = read_object(db, "plugin=cache/cache/resource=users/action=list.json.gz", &ctype);
	ATF_CHECK_STREQ("application/gzip", ctype);
	ATF_CHECK_MSG(strstr(body, "\"compressed\":true") && strstr(body, "\"compressionRatio\":\""),
	              "%s", body);
	free(body);
	free(ctype);
	int mark = atomic_load(&requests);
	CHECK_OK(s3db_list(users, NULL, NULL, &second, &err), &err);
	ATF_CHECK_EQ(1, requests_since(&mark));
	ATF_CHECK(json_object_equal(first, second));
	json_object_put(first);
	json_object_put(second);
	s3db_close(db);
}

/* Writes drop exactly what they can affect. */
static void writes_invalidate_only_affected(const char *name, const char *options)
{
	s3db_resource *users;
	s3db *db = open_db(name, 1, &users);
	add_cache(db, options);
	s3db_error err;
	size_t n;
	int mark;
	get_ok(users, "u1", "Ana");
	get_ok(users, "u2", "Bob");
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	ATF_CHECK_EQ(1, count_in(users, "US"));
	/* update u1 (BR): u2 and the US listing stay cached */
	update_name(users, "u1", "{\"name\":\"Ana Maria\"}");
	mark = atomic_load(&requests);
	get_ok(users, "u2", "Bob");
	ATF_CHECK_EQ(1, count_in(users, "US"));
	ATF_CHECK_EQ(0 + (strstr(options, "s3") ? 2 : 0), requests_since(&mark));
	get_ok(users, "u1", "Ana Maria");
	ATF_CHECK(requests_since(&mark) > (strstr(options, "s3") ? 1 : 0));
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	ATF_CHECK(requests_since(&mark) > (strstr(options, "s3") ? 1 : 0));
	/* moving u2 to BR drops both the US and the BR listings */
	update_name(users, "u2", "{\"region\":\"BR\"}");
	ATF_CHECK_EQ(0, count_in(users, "US"));
	ATF_CHECK_EQ(3, count_in(users, "BR"));
	/* insert: count changes, u1 stays cached */
	json_object *r = json_tokener_parse("{\"id\":\"u4\",\"name\":\"Dan\",\"region\":\"US\"}");
	CHECK_OK(s3db_insert(users, r, NULL, NULL, &err), &err);
	json_object_put(r);
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(4, n);
	mark = atomic_load(&requests);
	get_ok(users, "u1", "Ana Maria");
	ATF_CHECK_EQ(strstr(options, "s3") ? 1 : 0, requests_since(&mark));
	/* delete: the record's get and exists, and the count */
	ATF_CHECK_EQ(1, s3db_exists(users, "u3", &err));
	CHECK_OK(s3db_delete(users, "u3", NULL, &err), &err);
	ATF_CHECK_EQ(0, s3db_exists(users, "u3", &err));
	json_object *gone = NULL;
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND, s3db_get(users, "u3", NULL, &gone, &err));
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(3, n);
	ATF_CHECK(stat_of(db, "invalidated") > 0);
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(memory_writes_invalidate_only_affected_entries);
ATF_TC_BODY(memory_writes_invalidate_only_affected_entries, tc)
{
	writes_invalidate_only_affected("meminv", "{\"driver\":\"memory\"}");
}

ATF_TC_WITHOUT_HEAD(s3_writes_invalidate_only_affected_entries);
ATF_TC_BODY(s3_writes_invalidate_only_affected_entries, tc)
{
	writes_invalidate_only_affected("s3inv", "{\"driver\":\"s3\"}");
}

ATF_TC_WITHOUT_HEAD(memory_ttl_expiry_makes_a_miss);
ATF_TC_BODY(memory_ttl_expiry_makes_a_miss, tc)
{
	s3db_resource *users;
	s3db *db = open_db("memttl", 1, &users);
	add_cache(db, "{\"driver\":\"memory\",\"ttl\":600,\"memoryOptions\":{\"checkPeriod\":100}}");
	int mark = atomic_load(&requests);
	get_ok(users, "u1", "Ana");
	requests_since(&mark);
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(0, requests_since(&mark));
	ATF_CHECK_EQ(1, stat_of(db, "entries"));
	usleep(900 * 1000);
	/* the checkPeriod thread dropped it */
	ATF_CHECK_EQ(0, stat_of(db, "entries"));
	get_ok(users, "u1", "Ana");
	ATF_CHECK(requests_since(&mark) > 0);
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(s3_ttl_expiry_makes_a_miss_and_deletes_the_object);
ATF_TC_BODY(s3_ttl_expiry_makes_a_miss_and_deletes_the_object, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3ttl", 1, &users);
	add_cache(db, "{\"driver\":\"s3\",\"ttl\":1000}");
	int mark = atomic_load(&requests);
	get_ok(users, "u1", "Ana");
	requests_since(&mark);
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(1, requests_since(&mark));
	ATF_CHECK_EQ(1, stat_of(db, "entries"));
	usleep(1100 * 1000);
	get_ok(users, "u1", "Ana");
	/* GET (expired) + DELETE + the record's HEAD/GET + PUT of the new entry */
	ATF_CHECK(requests_since(&mark) >= 4);
	ATF_CHECK_EQ(1, stat_of(db, "entries"));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(memory_eviction_at_max_size_counts_and_refetches);
ATF_TC_BODY(memory_eviction_at_max_size_counts_and_refetches, tc)
{
	s3db_resource *users;
	s3db *db = open_db("memevict", 1, &users);
	add_cache(db, "{\"driver\":\"memory\",\"maxSize\":2}");
	int mark = atomic_load(&requests);
	get_ok(users, "u1", "Ana");
	get_ok(users, "u2", "Bob");
	get_ok(users, "u3", "Caio");
	ATF_CHECK_EQ(1, stat_of(db, "evictions"));
	ATF_CHECK_EQ(2, stat_of(db, "entries"));
	requests_since(&mark);
	get_ok(users, "u3", "Caio");
	ATF_CHECK_EQ(0, requests_since(&mark));
	get_ok(users, "u1", "Ana"); /* evicted: read again */
	ATF_CHECK(requests_since(&mark) > 0);
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(cache_file_shows_stats_and_clear_empties);
ATF_TC_BODY(cache_file_shows_stats_and_clear_empties, tc)
{
	s3db_resource *users;
	s3db *db = open_db("file", 1, &users);
	add_cache(db, "{\"driver\":\"s3\"}");
	get_ok(users, "u1", "Ana");
	get_ok(users, "u1", "Ana");
	json_object *st = read_stats(db);
	ATF_CHECK_STREQ("s3", s3db_json_get_string(st, "driver"));
	const char *fields[] = { "hits", "misses", "hitRate", "evictions", "entries", "bytes" };
	for (size_t i = 0; i < 6; i++)
		ATF_CHECK_MSG(json_object_object_get_ex(st, fields[i], NULL), "no %s", fields[i]);
	json_object *v = NULL;
	json_object_object_get_ex(st, "hitRate", &v);
	ATF_CHECK(json_object_get_double(v) == 0.5);
	json_object_put(st);
	ATF_CHECK_EQ(1, stat_of(db, "entries"));
	ATF_CHECK(stat_of(db, "bytes") > 0);
	ATF_CHECK_EQ(-EINVAL, write_cache_file(db, "flush\n"));
	ATF_CHECK_EQ(1, stat_of(db, "entries"));
	ATF_CHECK_EQ(0, write_cache_file(db, "clear\n"));
	ATF_CHECK_EQ(0, stat_of(db, "entries"));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(s3_encryption_round_trips_and_hides_the_data);
ATF_TC_BODY(s3_encryption_round_trips_and_hides_the_data, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3enc", 1, &users);
	add_cache(db, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,"
	              "\"encryptionKey\":\"cache-key-1\"}}");
	get_ok(users, "u1", "Ana");
	int mark = atomic_load(&requests);
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(1, requests_since(&mark));
	json_object *p = json_tokener_parse("{\"id\":\"u1\"}");
	char h[17], key[160];
	ATF_REQUIRE_EQ(0, cache_key_params_hash(p, h));
	json_object_put(p);
	snprintf(key, sizeof key, "plugin=cache/cache/resource=users/action=get/%s.json.gz", h);
	char *ctype = NULL, *body = read_object(db, key, &ctype);
	ATF_CHECK(!strstr(body, "Ana"));
	ATF_CHECK(strstr(body, "\"encrypted\":\"aes-256-gcm\""));
	ATF_CHECK_STREQ("application/octet-stream", ctype);
	free(body);
	free(ctype);
	ATF_CHECK_EQ(1, stat_of(db, "hits"));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(s3_own_location_keeps_the_cache_out_of_the_database);
ATF_TC_BODY(s3_own_location_keeps_the_cache_out_of_the_database, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3own", 1, &users);
	char *cs = testlib_s3_connstr(testlib_unique_prefix("s3own-cache"));
	char opts[1024];
	snprintf(opts, sizeof opts,
	         "{\"driver\":\"s3\",\"s3Options\":{\"connectionString\":\"%s\",\"prefix\":\"app-cache/\"}}",
	         cs);
	add_cache(db, opts);
	size_t n;
	s3db_error err;
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	void *got = NULL;
	size_t got_len = 0;
	ATF_CHECK_EQ(S3DB_ERR_NOT_FOUND,
	             probe_api->get_object(db, "plugin=cache/app-cache/resource=users/action=count.json.gz",
	                                   &got, &got_len, NULL, NULL, &err));
	free(got);
	s3db *other = NULL;
	CHECK_OK(s3db_open(cs, NULL, &other, &err), &err);
	free(read_object(other, "plugin=cache/app-cache/resource=users/action=count.json.gz", NULL));
	s3db_close(other);
	free(cs);
	int mark = atomic_load(&requests);
	CHECK_OK(s3db_count(users, NULL, &n, NULL, &err), &err);
	ATF_CHECK_EQ(0, requests_since(&mark)); /* the cache's requests are its own db's */
	ATF_CHECK_EQ(1, stat_of(db, "hits"));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(set_content_forgets_the_cached_content);
ATF_TC_BODY(set_content_forgets_the_cached_content, tc)
{
	s3db_resource *users;
	s3db *db = open_db("content", 1, &users);
	add_cache(db, "{\"driver\":\"memory\"}");
	s3db_error err;
	CHECK_OK(s3db_set_content(users, "u1", "first", 5, "text/plain", &err), &err);
	void *data = NULL;
	size_t len = 0;
	char *ctype = NULL;
	CHECK_OK(s3db_get_content(users, "u1", &data, &len, &ctype, &err), &err);
	free(data);
	free(ctype);
	int mark = atomic_load(&requests);
	CHECK_OK(s3db_get_content(users, "u1", &data, &len, &ctype, &err), &err);
	ATF_CHECK_EQ(0, requests_since(&mark));
	ATF_CHECK_EQ(5, len);
	ATF_CHECK(memcmp(data, "first", 5) == 0);
	ATF_CHECK_STREQ("text/plain", ctype);
	free(data);
	free(ctype);
	CHECK_OK(s3db_set_content(users, "u1", "second", 6, "text/plain", &err), &err);
	CHECK_OK(s3db_get_content(users, "u1", &data, &len, NULL, &err), &err);
	ATF_CHECK_EQ(6, len);
	ATF_CHECK(memcmp(data, "second", 6) == 0);
	free(data);
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(include_partitions_false_does_not_cache_partition_reads);
ATF_TC_BODY(include_partitions_false_does_not_cache_partition_reads, tc)
{
	s3db_resource *users;
	s3db *db = open_db("nopart", 1, &users);
	add_cache(db, "{\"driver\":\"memory\",\"includePartitions\":false}");
	s3db_error err;
	json_object *all = NULL;
	CHECK_OK(s3db_list(users, NULL, NULL, &all, &err), &err);
	ATF_CHECK_EQ(3, json_object_array_length(all));
	json_object_put(all);
	ATF_CHECK_EQ(2, count_in(users, "BR")); /* never answered by the whole list's entry */
	int mark = atomic_load(&requests);
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	ATF_CHECK(requests_since(&mark) > 0);
	s3db_close(db);
}

/* ---- live reconfiguration ------------------------------------------------------------ */

/* maxSize shrinks at once (LRU order), a shorter ttl expires the entries
 * already there, checkPeriod 0 becomes a purge, a bad set changes
 * nothing. */
static void memory_reconfigure_applies_live(const char *name, int s3)
{
	s3db_resource *users;
	s3db *db = open_db(name, s3, &users);
	s3db_plugin *p = add_cache(db, "{\"driver\":\"memory\",\"maxSize\":10,"
	                               "\"memoryOptions\":{\"checkPeriod\":0}}");
	get_ok(users, "u1", "Ana");
	get_ok(users, "u2", "Bob");
	get_ok(users, "u3", "Caio");
	get_ok(users, "u1", "Ana"); /* u1 is now the most recent, u2 the least */
	ATF_CHECK_EQ(3, stat_of(db, "entries"));
	ATF_CHECK_EQ(0, stat_of(db, "evictions"));
	s3db_error err;
	CHECK_OK(reconfigure(p, "{\"driver\":\"memory\",\"maxSize\":2,"
	                        "\"memoryOptions\":{\"checkPeriod\":0}}", &err), &err);
	ATF_CHECK_EQ(2, stat_of(db, "maxSize"));
	ATF_CHECK_EQ(2, stat_of(db, "entries"));
	ATF_CHECK_EQ(1, stat_of(db, "evictions"));
	int mark = atomic_load(&requests);
	get_ok(users, "u1", "Ana");
	get_ok(users, "u3", "Caio");
	ATF_CHECK_EQ(0, requests_since(&mark));
	get_ok(users, "u2", "Bob"); /* evicted by the shrink */
	ATF_CHECK(requests_since(&mark) > 0);
	ATF_CHECK_EQ(2, stat_of(db, "entries"));
	/* a valid maxSize beside a bad ttl: refused whole, maxSize stays 2 */
	refused(p, "{\"driver\":\"memory\",\"maxSize\":1,\"ttl\":\"soon\"}", S3DB_ERR_INVALID_ARG,
	        "ttl");
	ATF_CHECK_EQ(2, stat_of(db, "maxSize"));
	ATF_CHECK_EQ(2, stat_of(db, "entries"));
	/* ttl 300 ms: the entries stored under ttl 300000 expire too */
	CHECK_OK(reconfigure(p, "{\"driver\":\"memory\",\"maxSize\":2,\"ttl\":300,"
	                        "\"memoryOptions\":{\"checkPeriod\":0}}", &err), &err);
	ATF_CHECK_EQ(300, stat_of(db, "ttl"));
	usleep(400 * 1000);
	requests_since(&mark);
	get_ok(users, "u2", "Bob");
	ATF_CHECK(requests_since(&mark) > 0);
	/* checkPeriod 0 -> 100: the purge thread now drops what expires */
	get_ok(users, "u3", "Caio");
	ATF_CHECK(stat_of(db, "entries") >= 1);
	CHECK_OK(reconfigure(p, "{\"driver\":\"memory\",\"maxSize\":2,\"ttl\":300,"
	                        "\"memoryOptions\":{\"checkPeriod\":100}}", &err), &err);
	ATF_CHECK_EQ(100, stat_of(db, "checkPeriod"));
	usleep(1000 * 1000);
	ATF_CHECK_EQ(0, stat_of(db, "entries"));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(memory_reconfigure_applies_live_on_s3);
ATF_TC_BODY(memory_reconfigure_applies_live_on_s3, tc)
{
	memory_reconfigure_applies_live("memlive", 1);
}

ATF_TC_WITHOUT_HEAD(memory_reconfigure_applies_live_on_files);
ATF_TC_BODY(memory_reconfigure_applies_live_on_files, tc)
{
	memory_reconfigure_applies_live("memlive", 0);
}

ATF_TC_WITHOUT_HEAD(reconfigure_include_partitions_clears_the_cache);
ATF_TC_BODY(reconfigure_include_partitions_clears_the_cache, tc)
{
	s3db_resource *users;
	s3db *db = open_db("livepart", 1, &users);
	s3db_plugin *p = add_cache(db, "{\"driver\":\"memory\"}");
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	int mark = atomic_load(&requests);
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	ATF_CHECK_EQ(0, requests_since(&mark));
	ATF_CHECK_EQ(2, stat_of(db, "entries"));
	s3db_error err;
	CHECK_OK(reconfigure(p, "{\"driver\":\"memory\",\"includePartitions\":false}", &err), &err);
	ATF_CHECK_EQ(0, stat_of(db, "entries"));
	json_object *st = read_stats(db), *v = NULL;
	ATF_CHECK(json_object_object_get_ex(st, "includePartitions", &v) &&
	          !json_object_get_boolean(v));
	json_object_put(st);
	/* partition reads are no longer cached; the others again are */
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	requests_since(&mark);
	ATF_CHECK_EQ(2, count_in(users, "BR"));
	ATF_CHECK(requests_since(&mark) > 0);
	get_ok(users, "u1", "Ana");
	requests_since(&mark);
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(0, requests_since(&mark));
	s3db_close(db);
}

ATF_TC_WITHOUT_HEAD(s3_reconfigure_applies_ttl_and_compression_and_refuses_the_location);
ATF_TC_BODY(s3_reconfigure_applies_ttl_and_compression_and_refuses_the_location, tc)
{
	s3db_resource *users;
	s3db *db = open_db("s3live", 1, &users);
	s3db_plugin *p = add_cache(db, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,"
	                               "\"encryptionKey\":\"k1\"}}");
	get_ok(users, "u1", "Ana");
	int mark = atomic_load(&requests);
	/* what the entries depend on is refused, naming the option */
	refused(p, "{\"driver\":\"memory\"}", S3DB_ERR_UNSUPPORTED, "driver");
	refused(p, "{\"driverType\":\"memory\",\"s3Options\":{\"encryption\":true,"
	           "\"encryptionKey\":\"k1\"}}", S3DB_ERR_UNSUPPORTED, "driver");
	refused(p, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,\"encryptionKey\":\"k1\","
	           "\"prefix\":\"other/\"}}", S3DB_ERR_UNSUPPORTED, "s3Options.prefix");
	refused(p, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,\"encryptionKey\":\"k2\"}}",
	        S3DB_ERR_UNSUPPORTED, "s3Options.encryptionKey");
	refused(p, "{\"driver\":\"s3\",\"s3Options\":{}}", S3DB_ERR_UNSUPPORTED,
	        "s3Options.encryption");
	refused(p, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,\"encryptionKey\":\"k1\","
	           "\"bucket\":\"another-bucket\"}}", S3DB_ERR_UNSUPPORTED, "s3Options.bucket");
	refused(p, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,\"encryptionKey\":\"k1\","
	           "\"connectionString\":\"s3://AK:SK@elsewhere/db\"}}", S3DB_ERR_UNSUPPORTED,
	        "s3Options.connectionString");
	refused(p, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,\"encryptionKey\":\"k1\","
	           "\"accessKeyId\":\"AK\",\"secretAccessKey\":\"SK\"}}", S3DB_ERR_UNSUPPORTED,
	        "s3Options.accessKeyId/secretAccessKey");
	/* the refusals name the option, never the secret */
	s3db_error err;
	reconfigure(p, "{\"driver\":\"s3\",\"s3Options\":{\"encryption\":true,"
	               "\"encryptionKey\":\"secret-passphrase-2\"}}", &err);
	ATF_CHECK(!strstr(err.message, "secret-passphrase-2"));
	/* none of that reached S3 nor changed the running options */
	ATF_CHECK_EQ(0, requests_since(&mark));
	get_ok(users, "u1", "Ana");
	ATF_CHECK_EQ(1, requests_since(&mark)); /* one GET of the (encrypted) entry */
	ATF_CHECK_EQ(1, stat_of(db, "hits"));
	json_object *st = read_stats(db), *v = NULL;
	ATF_CHECK(json_object_object_get_ex(st, "compression", &v) && json_object_get_boolean(v));
	ATF_CHECK(json_object_object_get_ex(st, "encryption", &v) && json_object_get_boolean(v));
	ATF_CHECK_STREQ("plugin=cache/cache/", s3db_json_get_string(st, "prefix"));
	ATF_CHECK(json_object_object_get_ex(st, "ttl", &v) && json_object_get_int64(v) == 300000);
	json_object_put(st);
	/* ttl and compression apply to the next stores */
	CHECK_OK(reconfigure(p, "{\"driver\":\"s3\",\"ttl\":1000,\"s3Options\":{\"encryption\":true,"
	                        "\"encryptionKey\":\"k1\",\"compression\":false}}", &err), &err);
	st = read_stats(db);
	ATF_CHECK(json_object_object_get_ex(st, "compression", &v) && !json_object_get_boolean(v));
	ATF_CHECK(json_object_object_get_ex(st, "ttl", &v) && json_object_get_int64(v) == 1000);
	json_object_put(st);
	requests_since(&mark);
	get_ok(users, "u2", "Bob");
	requests_since(&mark);
	get_ok(users, "u2", "Bob");
	ATF_CHECK_EQ(1, requests_since(&mark));
	usleep(1100 * 1000);
	get_ok(users, "u2", "Bob"); /* expired: the entry's GET, its DELETE, the record, a PUT */
	ATF_CHECK(requests_since(&mark) >= 4);
	get_ok(users, "u1", "Ana"); /* stored under ttl 300000: still a hit */
	ATF_CHECK_EQ(1, requests_since(&mark));
	s3db_close(db);
}

/* Readers on four threads while the options change under them. */
typedef struct reader_arg {
	s3db_resource *users;
	atomic_int *stop;
	int failures;
} reader_arg;

static void *reader_main(void *ud)
{
	reader_arg *a = ud;
	const char *ids[] = { "u1", "u2", "u3" }, *names[] = { "Ana", "Bob", "Caio" };
	for (int i = 0; !atomic_load(a->stop); i++) {
		s3db_error err;
		json_object *r = NULL;
		if (s3db_get(a->users, ids[i % 3], NULL, &r, &err) != S3DB_OK ||
		    strcmp(s3db_json_get_string(r, "name"), names[i % 3]) != 0)
			a->failures++;
		json_object_put(r);
	}
	return NULL;
}

ATF_TC_WITHOUT_HEAD(reconfigure_while_readers_run_keeps_results_right);
ATF_TC_BODY(reconfigure_while_readers_run_keeps_results_right, tc)
{
	s3db_resource *users;
	s3db *db = open_db("livemt", 0, &users);
	s3db_plugin *p = add_cache(db, "{\"driver\":\"memory\"}");
	atomic_int stop = 0;
	reader_arg args[4];
	pthread_t tids[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (reader_arg){ .users = users, .stop = &stop };
		ATF_REQUIRE_EQ(0, pthread_create(&tids[i], NULL, reader_main, &args[i]));
	}
	const char *sets[] = {
		"{\"driver\":\"memory\",\"maxSize\":1,\"ttl\":5}",
		"{\"driver\":\"memory\",\"maxSize\":500,\"includePartitions\":false}",
		"{\"driver\":\"memory\",\"maxSize\":2,\"memoryOptions\":{\"checkPeriod\":1}}",
		"{\"driver\":\"memory\"}",
	};
	s3db_error err;
	for (int i = 0; i < 200; i++) {
		CHECK_OK(reconfigure(p, sets[i % 4], &err), &err);
		usleep(2000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++) {
		pthread_join(tids[i], NULL);
		ATF_CHECK_EQ(0, args[i].failures);
	}
	ATF_CHECK(stat_of(db, "entries") <= 3);
	s3db_close(db);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, params_hash_is_md5_of_canonical_json_first_16_hex);
	ATF_TP_ADD_TC(tp, keys_have_the_spec_layout);
	ATF_TP_ADD_TC(tp, writes_affect_only_their_record_and_partitions);
	ATF_TP_ADD_TC(tp, small_body_equals_the_spec_dump_byte_for_byte);
	ATF_TP_ADD_TC(tp, large_body_is_gzip_base64_and_round_trips);
	ATF_TP_ADD_TC(tp, ratio_text_rounds_like_to_fixed);
	ATF_TP_ADD_TC(tp, gunzip_reads_the_spec_cache_vectors);
	ATF_TP_ADD_TC(tp, expired_body_reads_as_expired);
	ATF_TP_ADD_TC(tp, encrypted_body_round_trips_and_binds_key_and_passphrase);
	ATF_TP_ADD_TC(tp, memory_lru_evicts_the_least_recently_used_at_max_size);
	ATF_TP_ADD_TC(tp, memory_entries_expire_after_ttl_and_purge_drops_them);
	ATF_TP_ADD_TC(tp, bucket_option_moves_the_connection_to_another_bucket);
	ATF_TP_ADD_TC(tp, bad_options_fail_setup_naming_the_option);
	ATF_TP_ADD_TC(tp, memory_hits_cost_no_request_on_s3);
	ATF_TP_ADD_TC(tp, memory_hits_cost_no_request_on_files);
	ATF_TP_ADD_TC(tp, s3_driver_hit_is_one_get_of_the_cache_object);
	ATF_TP_ADD_TC(tp, s3_objects_have_the_spec_names_and_bodies);
	ATF_TP_ADD_TC(tp, s3_large_results_are_stored_gzip_and_read_back);
	ATF_TP_ADD_TC(tp, memory_writes_invalidate_only_affected_entries);
	ATF_TP_ADD_TC(tp, s3_writes_invalidate_only_affected_entries);
	ATF_TP_ADD_TC(tp, memory_ttl_expiry_makes_a_miss);
	ATF_TP_ADD_TC(tp, s3_ttl_expiry_makes_a_miss_and_deletes_the_object);
	ATF_TP_ADD_TC(tp, memory_eviction_at_max_size_counts_and_refetches);
	ATF_TP_ADD_TC(tp, memory_reconfigure_applies_live_on_s3);
	ATF_TP_ADD_TC(tp, memory_reconfigure_applies_live_on_files);
	ATF_TP_ADD_TC(tp, reconfigure_include_partitions_clears_the_cache);
	ATF_TP_ADD_TC(tp, s3_reconfigure_applies_ttl_and_compression_and_refuses_the_location);
	ATF_TP_ADD_TC(tp, reconfigure_while_readers_run_keeps_results_right);
	ATF_TP_ADD_TC(tp, cache_file_shows_stats_and_clear_empties);
	ATF_TP_ADD_TC(tp, s3_encryption_round_trips_and_hides_the_data);
	ATF_TP_ADD_TC(tp, s3_own_location_keeps_the_cache_out_of_the_database);
	ATF_TP_ADD_TC(tp, set_content_forgets_the_cached_content);
	ATF_TP_ADD_TC(tp, include_partitions_false_does_not_cache_partition_reads);
	return atf_no_error();
}
