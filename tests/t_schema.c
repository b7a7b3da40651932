/*
 * t_schema.c — resource definitions (schema.c) and record validation
 * (validate.c).
 *
 * The definition-hash and key-list tests run over every s3db.json of the
 * golden dumps (tests/fixtures/schema/, copied from the s3db.js 21.6.2,
 * 7.3.5 and 7.4.2 buckets); the others use small definitions written
 * here, with the exact normalised JSON expected from validation.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <atf-c.h>
#include <json-c/json.h>
#include "schema.h"
#include "util.h"

#ifndef TEST_FIXTURES
#define TEST_FIXTURES "tests/fixtures"
#endif
#define SCHEMA_FIXTURES TEST_FIXTURES "/schema"

/* ---- helpers ------------------------------------------------------------- */

static json_object *J(const char *text)
{
	json_object *o = NULL;
	s3db_error err;
	if (s3db_json_parse(text, strlen(text), &o, &err) != S3DB_OK)
		atf_tc_fail("bad JSON in test: %s: %s", text, err.message);
	return o;
}

static json_object *fixture(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", SCHEMA_FIXTURES, name);
	json_object *o = json_object_from_file(path);
	if (!o)
		atf_tc_fail("cannot read fixture %s", path);
	return o;
}

/* Fails unless JSON.stringify(o) is exactly `text`. */
static void expect_json(json_object *o, const char *text)
{
	char *t = s3db_json_stringify(o, 0);
	ATF_REQUIRE(t != NULL);
	if (strcmp(t, text) != 0) {
		char copy[2048];
		snprintf(copy, sizeof copy, "%s", t);
		free(t);
		atf_tc_fail("got %s, expected %s", copy, text);
	}
	free(t);
}

static void expect_key_list(json_object *attributes, const char *const *expected)
{
	char **keys = schema_key_list(attributes);
	ATF_REQUIRE(keys != NULL);
	size_t i = 0;
	for (; expected[i]; i++) {
		if (!keys[i])
			atf_tc_fail("key list too short: missing %s at %zu", expected[i], i);
		if (strcmp(keys[i], expected[i]) != 0)
			atf_tc_fail("key %zu is %s, expected %s", i, keys[i], expected[i]);
	}
	if (keys[i])
		atf_tc_fail("unexpected extra key %s at %zu", keys[i], i);
	s3db_free_strv(keys);
}

/* A 21.x resource entry around an attributes object (registry built). */
static json_object *entry_for(const char *attributes_json)
{
	char buf[8192];
	snprintf(buf, sizeof buf,
	         "{\"currentVersion\":\"v1\",\"partitions\":{},\"versions\":{\"v1\":{"
	         "\"attributes\":%s,\"behavior\":\"user-managed\",\"timestamps\":false,"
	         "\"partitions\":{}}}}", attributes_json);
	json_object *entry = J(buf);
	s3db_error err;
	json_object *attrs = json_object_object_get(
		json_object_object_get(json_object_object_get(entry, "versions"), "v1"), "attributes");
	ATF_REQUIRE_EQ(S3DB_OK, schema_registry_update(entry, attrs, &err));
	return entry;
}

static schema *compile_attrs(const char *attributes_json)
{
	json_object *entry = entry_for(attributes_json);
	schema *s = NULL;
	s3db_error err;
	s3db_code rc = schema_compile("things", entry, NULL, FORMAT_21, &s, &err);
	json_object_put(entry);
	if (rc != S3DB_OK)
		atf_tc_fail("compile failed: %s", err.message);
	return s;
}

static schema *compile_fixture(const char *file, const char *resource, schema_format fmt)
{
	json_object *cat = fixture(file);
	json_object *entry = json_object_object_get(json_object_object_get(cat, "resources"), resource);
	ATF_REQUIRE(entry != NULL);
	schema *s = NULL;
	s3db_error err;
	s3db_code rc = schema_compile(resource, entry, NULL, fmt, &s, &err);
	json_object_put(cat);
	if (rc != S3DB_OK)
		atf_tc_fail("compile %s/%s failed: %s", file, resource, err.message);
	return s;
}

/* Validation must succeed with exactly `expected` as output. */
static void accepts(const schema *s, const char *in, const char *expected)
{
	json_object *o = J(in), *out = NULL;
	s3db_error err;
	s3db_code rc = schema_validate(s, o, &out, &err);
	json_object_put(o);
	if (rc != S3DB_OK)
		atf_tc_fail("refused %s: %s", in, err.message);
	expect_json(out, expected);
	json_object_put(out);
}

/* Validation must fail with a message containing `expected`. */
static void refuses(const schema *s, const char *in, const char *expected)
{
	json_object *o = J(in), *out = NULL;
	s3db_error err;
	s3db_code rc = schema_validate(s, o, &out, &err);
	json_object_put(o);
	if (rc == S3DB_OK) {
		char *t = s3db_json_stringify(out, 0);
		char copy[1024];
		snprintf(copy, sizeof copy, "%s", t ? t : "?");
		free(t);
		json_object_put(out);
		atf_tc_fail("accepted %s as %s", in, copy);
	}
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION, rc);
	ATF_CHECK(out == NULL);
	if (!strstr(err.message, expected))
		atf_tc_fail("message for %s is \"%s\", expected it to contain \"%s\"", in, err.message,
		            expected);
}

/* ---- key lists ------------------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(key_list_of_golden_users_is_registry_order);
ATF_TC_BODY(key_list_of_golden_users_is_registry_order, tc)
{
	json_object *cat = fixture("21.6.2-demo.json");
	json_object *users = json_object_object_get(json_object_object_get(cat, "resources"), "users");
	json_object *attrs = json_object_object_get(
		json_object_object_get(json_object_object_get(users, "versions"), "v1"), "attributes");
	static const char *const expected[] = {
		"name", "email", "age", "score", "balance", "active", "tags", "ratings", "counts",
		"profile.bio", "profile.country", "settings", "meta", "birthDate", "password",
		"region", "website", "createdAt", "updatedAt", "profile", NULL,
	};
	expect_key_list(attrs, expected);
	json_object *mapping = json_object_object_get(json_object_object_get(users, "schemaRegistry"),
	                                              "mapping");
	for (int i = 0; expected[i]; i++)
		ATF_CHECK_EQ(i, json_object_get_int(json_object_object_get(mapping, expected[i])));
	json_object_put(cat);
}

/* Every resource of every golden 21.6.2 catalogue: position = index. */
ATF_TC_WITHOUT_HEAD(key_list_positions_equal_every_golden_registry_index);
ATF_TC_BODY(key_list_positions_equal_every_golden_registry_index, tc)
{
	DIR *d = opendir(SCHEMA_FIXTURES);
	ATF_REQUIRE(d != NULL);
	struct dirent *de;
	int resources = 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "21.6.2-", 7) != 0)
			continue;
		json_object *cat = fixture(de->d_name);
		json_object_object_foreach(json_object_object_get(cat, "resources"), name, entry) {
			const char *cur = s3db_json_get_string(entry, "currentVersion");
			json_object *attrs = json_object_object_get(
				json_object_object_get(json_object_object_get(entry, "versions"), cur),
				"attributes");
			json_object *mapping = json_object_object_get(
				json_object_object_get(entry, "schemaRegistry"), "mapping");
			char **keys = schema_key_list(attrs);
			ATF_REQUIRE(keys != NULL);
			int n = 0;
			for (; keys[n]; n++) {
				json_object *idx = json_object_object_get(mapping, keys[n]);
				if (!idx || json_object_get_int(idx) != n)
					atf_tc_fail("%s %s: key %s at %d", de->d_name, name, keys[n], n);
			}
			ATF_CHECK_EQ(n, json_object_object_length(mapping));
			s3db_free_strv(keys);
			resources++;
		}
		json_object_put(cat);
	}
	closedir(d);
	ATF_CHECK_EQ(22, resources);
}

ATF_TC_WITHOUT_HEAD(key_list_object_form_definitions_contribute_their_properties);
ATF_TC_BODY(key_list_object_form_definitions_contribute_their_properties, tc)
{
	json_object *attrs = J("{\"n\":{\"type\":\"number\",\"optional\":true},"
	                       "\"b\":{\"type\":\"boolean\",\"optional\":true},"
	                       "\"e\":{\"type\":\"enum\",\"values\":[\"x\",\"y\"],\"optional\":true},"
	                       "\"s\":\"string|optional\",\"d\":\"string|optional\"}");
	static const char *const expected[] = {
		"n.type", "n.optional", "b.type", "b.optional", "e.type", "e.values", "e.optional",
		"s", "d", "n", "b", "e", NULL,
	};
	expect_key_list(attrs, expected);
	/* and the registry gives them 0..b in base36 */
	json_object *entry = entry_for(json_object_to_json_string(attrs));
	expect_json(json_object_object_get(json_object_object_get(entry, "schemaRegistry"), "mapping"),
	            "{\"n.type\":0,\"n.optional\":1,\"b.type\":2,\"b.optional\":3,\"e.type\":4,"
	            "\"e.values\":5,\"e.optional\":6,\"s\":7,\"d\":8,\"n\":9,\"b\":10,\"e\":11}");
	schema *s = NULL;
	s3db_error err;
	ATF_REQUIRE_EQ(S3DB_OK, schema_compile("x", entry, NULL, FORMAT_21, &s, &err));
	ATF_CHECK_STREQ("9", schema_attr_by_path(s, "n")->short_key);
	ATF_CHECK_STREQ("b", schema_attr_by_path(s, "e")->short_key);
	ATF_CHECK_EQ(KIND_RAW, schema_attr_by_path(s, "n")->kind);
	ATF_CHECK(schema_attr_by_path(s, "n.type") == NULL);
	schema_free(s);
	json_object_put(entry);
	json_object_put(attrs);
}

ATF_TC_WITHOUT_HEAD(key_list_puts_integer_like_names_first_as_javascript_does);
ATF_TC_BODY(key_list_puts_integer_like_names_first_as_javascript_does, tc)
{
	json_object *attrs = J("{\"b\":\"string\",\"10\":\"string\",\"a\":\"string\",\"2\":\"string\","
	                       "\"01\":\"string\"}");
	static const char *const expected[] = { "2", "10", "b", "a", "01", NULL };
	expect_key_list(attrs, expected);
	json_object_put(attrs);
}

ATF_TC_WITHOUT_HEAD(key_list_recurses_into_object_keys_only_for_exact_object_type);
ATF_TC_BODY(key_list_recurses_into_object_keys_only_for_exact_object_type, tc)
{
	json_object *attrs = J("{\"p\":{\"$$type\":\"object\",\"y\":\"string\","
	                       "\"q\":{\"$$type\":\"object|optional\","
	                       "\"r\":{\"$$type\":\"object\",\"z\":\"string\"}}},"
	                       "\"t\":\"array|items:string\",\"empty\":{}}");
	static const char *const expected[] = {
		"p.y", "p.q.r.z", "t", "empty", "p", "p.q", NULL,
	};
	expect_key_list(attrs, expected);
	json_object_put(attrs);
}

/* ---- canonical JSON and hashes --------------------------------------------- */

ATF_TC_WITHOUT_HEAD(canonical_json_sorts_keys_by_utf16_code_unit);
ATF_TC_BODY(canonical_json_sorts_keys_by_utf16_code_unit, tc)
{
	/* U+1F600 (surrogates D83D DE00) sorts before U+FF01 in UTF-16 */
	json_object *o = J("{\"b\":1,\"\xef\xbc\x81\":true,\"\xf0\x9f\x98\x80\":null,"
	                   "\"a\":[{\"d\":1.5,\"c\":\"x/y\"}],\"B\":\"\\n\"}");
	char *t = schema_canonical_json(o);
	ATF_CHECK_STREQ("{\"B\":\"\\n\",\"a\":[{\"c\":\"x/y\",\"d\":1.5}],\"b\":1,"
	                "\"\xf0\x9f\x98\x80\":null,\"\xef\xbc\x81\":true}", t);
	free(t);
	json_object_put(o);
}

ATF_TC_WITHOUT_HEAD(definition_hash_of_the_files_example);
ATF_TC_BODY(definition_hash_of_the_files_example, tc)
{
	json_object *attrs = J("{\"filename\":\"string\"}"), *parts = J("{}");
	char *h = schema_definition_hash(attrs, "user-managed", parts, 0);
	ATF_CHECK_STREQ("sha256:39adf26a98d0a3a1fe326ffd10f7829cf3518bf959dedffc4a6b5eb0d030f730", h);
	free(h);
	/* behavior and partitions default as s3db.js's do */
	h = schema_definition_hash(attrs, NULL, NULL, 0);
	ATF_CHECK_STREQ("sha256:39adf26a98d0a3a1fe326ffd10f7829cf3518bf959dedffc4a6b5eb0d030f730", h);
	free(h);
	json_object_put(attrs);
	json_object_put(parts);
}

/* Every version entry of every golden catalogue (21.6.2, 7.3.5, 7.4.2). */
ATF_TC_WITHOUT_HEAD(definition_hash_reproduces_every_golden_hash);
ATF_TC_BODY(definition_hash_reproduces_every_golden_hash, tc)
{
	DIR *d = opendir(SCHEMA_FIXTURES);
	ATF_REQUIRE(d != NULL);
	struct dirent *de;
	int checked = 0, files = 0;
	while ((de = readdir(d)) != NULL) {
		if (!s3db_str_ends(de->d_name, ".json"))
			continue;
		files++;
		json_object *cat = fixture(de->d_name);
		json_object_object_foreach(json_object_object_get(cat, "resources"), name, entry) {
			json_object_object_foreach(json_object_object_get(entry, "versions"), vname, ver) {
				json_object *ts = json_object_object_get(ver, "timestamps");
				char *h = schema_definition_hash(json_object_object_get(ver, "attributes"),
				                                 s3db_json_get_string(ver, "behavior"),
				                                 json_object_object_get(ver, "partitions"),
				                                 ts && json_object_get_boolean(ts));
				const char *want = s3db_json_get_string(ver, "hash");
				if (!h || !want || strcmp(h, want) != 0)
					atf_tc_fail("%s %s %s: %s != %s", de->d_name, name, vname,
					            h ? h : "NULL", want ? want : "NULL");
				free(h);
				checked++;
			}
			/* and schema_compile computes the same */
			schema *s = NULL;
			s3db_error err;
			schema_format fmt = strncmp(de->d_name, "v7", 2) ? FORMAT_21 : FORMAT_V7;
			ATF_REQUIRE_EQ(S3DB_OK, schema_compile(name, entry, NULL, fmt, &s, &err));
			json_object *cur = json_object_object_get(json_object_object_get(entry, "versions"),
			                                          s3db_json_get_string(entry, "currentVersion"));
			ATF_CHECK_STREQ(s3db_json_get_string(cur, "hash"), s->hash);
			schema_free(s);
		}
		json_object_put(cat);
	}
	closedir(d);
	ATF_CHECK_EQ(27, files);
	ATF_CHECK_EQ(68, checked);
}

/* ---- compile --------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(compile_golden_users_gives_registry_short_keys_and_kinds);
ATF_TC_BODY(compile_golden_users_gives_registry_short_keys_and_kinds, tc)
{
	schema *s = compile_fixture("21.6.2-demo.json", "users", FORMAT_21);
	ATF_CHECK_STREQ("users", s->resource);
	ATF_CHECK_STREQ("v1", s->version);
	ATF_CHECK_STREQ("user-managed", s->behavior);
	ATF_CHECK_EQ(1, s->timestamps);
	ATF_CHECK_EQ(22, s->id_size);
	ATF_CHECK_STREQ("sha256:b478e9c8fdc2344c8ae9b2cb8137d02790f14a87e5142cffe272c6124c3d8f58",
	                s->hash);
	ATF_CHECK_EQ(20, s->nattrs); /* 18 top-level + profile.bio, profile.country */
	static const struct { const char *path, *key; attr_kind kind, item; } want[] = {
		{ "name", "0", KIND_STRING, KIND_ANY },
		{ "email", "1", KIND_STRING, KIND_ANY },
		{ "age", "2", KIND_NUMBER, KIND_ANY },
		{ "score", "3", KIND_INTEGER, KIND_ANY },
		{ "balance", "4", KIND_NUMBER, KIND_ANY },
		{ "active", "5", KIND_BOOLEAN, KIND_ANY },
		{ "tags", "6", KIND_ARRAY, KIND_STRING },
		{ "ratings", "7", KIND_ARRAY, KIND_NUMBER },
		{ "counts", "8", KIND_ARRAY, KIND_INTEGER },
		{ "profile.bio", "9", KIND_STRING, KIND_ANY },
		{ "profile.country", "a", KIND_STRING, KIND_ANY },
		{ "settings", "b", KIND_OBJECT, KIND_ANY },
		{ "meta", "c", KIND_JSON, KIND_ANY },
		{ "birthDate", "d", KIND_DATE, KIND_ANY },
		{ "password", "e", KIND_SECRET, KIND_ANY },
		{ "region", "f", KIND_STRING, KIND_ANY },
		{ "website", "g", KIND_STRING, KIND_ANY },
		{ "createdAt", "h", KIND_DATETIME, KIND_ANY },
		{ "updatedAt", "i", KIND_DATETIME, KIND_ANY },
		{ "profile", "j", KIND_NESTED, KIND_ANY },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const attr *a = schema_attr_by_path(s, want[i].path);
		if (!a)
			atf_tc_fail("no attr %s", want[i].path);
		ATF_CHECK_STREQ_MSG(want[i].key, a->short_key, "%s", want[i].path);
		ATF_CHECK_EQ_MSG(want[i].kind, a->kind, "%s", want[i].path);
		if (a->kind == KIND_ARRAY)
			ATF_CHECK_EQ_MSG(want[i].item, a->item_kind, "%s", want[i].path);
		ATF_CHECK(a->in_key_list);
		ATF_CHECK(schema_attr_by_key(s, want[i].key) == a);
	}
	/* declaration order: the nested node before its children */
	ATF_CHECK_STREQ("profile", s->attrs[9].path);
	ATF_CHECK_STREQ("profile.bio", s->attrs[10].path);
	const attr *name = schema_attr_by_path(s, "name");
	ATF_CHECK_EQ(0, name->optional);
	expect_json(name->rule, "{\"type\":\"string\",\"optional\":false,\"required\":true}");
	ATF_CHECK_EQ(1, schema_attr_by_path(s, "profile")->optional);
	ATF_CHECK(schema_attr_by_key(s, "k") == NULL);
	ATF_CHECK_EQ(5, json_object_object_length(s->partitions));
	schema_free(s);

	s = compile_fixture("21.6.2-demo.json", "files", FORMAT_21);
	ATF_CHECK_EQ(8, s->id_size);
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(compile_v7_users_uses_positions_and_v0);
ATF_TC_BODY(compile_v7_users_uses_positions_and_v0, tc)
{
	schema *s = compile_fixture("v7.3.5-demo.json", "users", FORMAT_V7);
	ATF_CHECK_EQ(FORMAT_V7, s->format);
	ATF_CHECK_STREQ("v0", s->version);
	ATF_CHECK_EQ(22, s->id_size);
	ATF_CHECK_STREQ("0", schema_attr_by_path(s, "name")->short_key);
	ATF_CHECK_STREQ("a", schema_attr_by_path(s, "profile.country")->short_key);
	ATF_CHECK_STREQ("j", schema_attr_by_path(s, "profile")->short_key);
	/* v7 timestamps are "string|optional" */
	ATF_CHECK_EQ(KIND_STRING, schema_attr_by_path(s, "createdAt")->kind);
	ATF_CHECK_STREQ("h", schema_attr_by_path(s, "createdAt")->short_key);
	schema_free(s);
	s = compile_fixture("v7.4.2-demo.json", "files", FORMAT_V7);
	ATF_CHECK_EQ(8, s->id_size);
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(compile_v7_forty_attributes_gives_base62_keys);
ATF_TC_BODY(compile_v7_forty_attributes_gives_base62_keys, tc)
{
	char attrs[2048] = "{";
	for (int i = 0; i < 40; i++) {
		char one[32];
		snprintf(one, sizeof one, "%s\"f%02d\":\"string|optional\"", i ? "," : "", i);
		strcat(attrs, one);
	}
	strcat(attrs, "}");
	char buf[4096];
	snprintf(buf, sizeof buf, "{\"currentVersion\":\"v0\",\"partitions\":{},\"versions\":{\"v0\":{"
	         "\"attributes\":%s,\"behavior\":\"user-managed\",\"timestamps\":false,"
	         "\"partitions\":{}}}}", attrs);
	json_object *entry = J(buf);
	schema *s = NULL;
	s3db_error err;
	ATF_REQUIRE_EQ(S3DB_OK, schema_compile("wide", entry, NULL, FORMAT_V7, &s, &err));
	ATF_CHECK_STREQ("9", schema_attr_by_path(s, "f09")->short_key);
	ATF_CHECK_STREQ("a", schema_attr_by_path(s, "f10")->short_key);
	ATF_CHECK_STREQ("z", schema_attr_by_path(s, "f35")->short_key);
	ATF_CHECK_STREQ("A", schema_attr_by_path(s, "f36")->short_key);
	ATF_CHECK_STREQ("B", schema_attr_by_path(s, "f37")->short_key);
	ATF_CHECK_STREQ("D", schema_attr_by_path(s, "f39")->short_key);
	schema_free(s);
	/* the same catalogue read by 21.x (no registry): base36 positions */
	ATF_REQUIRE_EQ(S3DB_OK, schema_compile("wide", entry, NULL, FORMAT_21, &s, &err));
	ATF_CHECK_STREQ("10", schema_attr_by_path(s, "f36")->short_key);
	ATF_CHECK_STREQ("13", schema_attr_by_path(s, "f39")->short_key);
	schema_free(s);
	json_object_put(entry);
}

ATF_TC_WITHOUT_HEAD(compile_recognises_kinds_by_substring_order);
ATF_TC_BODY(compile_recognises_kinds_by_substring_order, tc)
{
	schema *s = compile_attrs(
		"{\"a\":\"string|default:number\",\"b\":\"secretNumber\",\"c\":\"array|items:number|length:300\","
		"\"d\":\"uuid\",\"e\":\"ip4\",\"f\":\"dateonly|optional\",\"g\":\"bool\","
		"\"h\":\"number|integer\",\"i\":\"any\",\"j\":\"array\",\"k\":\"embedding:8\","
		"\"l\":\"json\",\"m\":\"string|default:my-object\",\"n\":\"email\",\"o\":\"url|optional\"}");
	ATF_CHECK_EQ(KIND_NUMBER, schema_attr_by_path(s, "a")->kind);
	ATF_CHECK_EQ(KIND_SECRET, schema_attr_by_path(s, "b")->kind);
	ATF_CHECK_EQ(KIND_RAW, schema_attr_by_path(s, "c")->kind);
	ATF_CHECK_EQ(KIND_STRING, schema_attr_by_path(s, "d")->kind);
	ATF_CHECK_EQ(KIND_RAW, schema_attr_by_path(s, "e")->kind);
	ATF_CHECK_EQ(KIND_DATEONLY, schema_attr_by_path(s, "f")->kind);
	ATF_CHECK_EQ(KIND_BOOLEAN, schema_attr_by_path(s, "g")->kind);
	ATF_CHECK_EQ(KIND_INTEGER, schema_attr_by_path(s, "h")->kind);
	ATF_CHECK_EQ(KIND_ANY, schema_attr_by_path(s, "i")->kind);
	ATF_CHECK_EQ(KIND_ARRAY, schema_attr_by_path(s, "j")->kind);
	ATF_CHECK_EQ(KIND_ANY, schema_attr_by_path(s, "j")->item_kind);
	ATF_CHECK_EQ(KIND_RAW, schema_attr_by_path(s, "k")->kind);
	ATF_CHECK_EQ(KIND_JSON, schema_attr_by_path(s, "l")->kind);
	ATF_CHECK_EQ(KIND_OBJECT, schema_attr_by_path(s, "m")->kind);
	ATF_CHECK_EQ(KIND_STRING, schema_attr_by_path(s, "n")->kind);
	ATF_CHECK_EQ(KIND_STRING, schema_attr_by_path(s, "o")->kind);
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(compile_refuses_missing_version_and_bad_definitions);
ATF_TC_BODY(compile_refuses_missing_version_and_bad_definitions, tc)
{
	json_object *entry = entry_for("{\"a\":\"string\"}");
	schema *s = NULL;
	s3db_error err;
	ATF_CHECK_EQ(S3DB_ERR_CORRUPT, schema_compile("things", entry, "v9", FORMAT_21, &s, &err));
	ATF_CHECK(s == NULL);
	ATF_CHECK(strstr(err.message, "v9") != NULL);
	json_object_put(entry);
	entry = J("{\"currentVersion\":\"v1\",\"versions\":{\"v1\":{\"attributes\":{\"n\":5}}}}");
	ATF_CHECK_EQ(S3DB_ERR_INVALID_ARG, schema_compile("things", entry, NULL, FORMAT_21, &s, &err));
	ATF_CHECK(strstr(err.message, "'n'") != NULL);
	json_object_put(entry);
}

/* ---- rules ----------------------------------------------------------------- */

static void expect_rule(const char *def_json, const char *expected)
{
	json_object *def = J(def_json);
	s3db_error err;
	json_object *rule = schema_parse_rule(def, "x", &err);
	if (!rule)
		atf_tc_fail("%s: %s", def_json, err.message);
	expect_json(rule, expected);
	json_object_put(rule);
	json_object_put(def);
}

ATF_TC_WITHOUT_HEAD(parse_rule_reads_shorthand_as_fastest_validator);
ATF_TC_BODY(parse_rule_reads_shorthand_as_fastest_validator, tc)
{
	expect_rule("\"number|integer:true|optional|min:2\"",
	            "{\"type\":\"number\",\"optional\":true,\"integer\":true,\"min\":2}");
	expect_rule("\"string | min:2 | max: 5.5 | default:hello\"",
	            "{\"type\":\"string\",\"optional\":false,\"min\":2,\"max\":5.5,\"default\":\"hello\"}");
	expect_rule("\"string|no-trim|pattern:^a:b$\"",
	            "{\"type\":\"string\",\"optional\":false,\"trim\":false,\"pattern\":\"^a:b$\"}");
	expect_rule("\"string[]\"", "{\"type\":\"array\",\"optional\":false,\"items\":\"string\"}");
	expect_rule("\"date|maxlength:10\"", "{\"type\":\"date\",\"optional\":false,\"maxlength\":10}");
	expect_rule("\"boolean|default:false\"",
	            "{\"type\":\"boolean\",\"optional\":false,\"default\":false}");
	/* nested objects: optional unless $$type says required */
	expect_rule("{\"$$type\":\"object\",\"a\":\"string\"}", "{\"type\":\"object\",\"optional\":true}");
	expect_rule("{\"$$type\":\"object|required\",\"a\":\"string\"}",
	            "{\"type\":\"object\",\"optional\":false,\"required\":true}");
	expect_rule("{\"a\":\"string\",\"b\":\"number\"}", "{\"type\":\"object\",\"optional\":true}");
	/* object form: copied, optional made a boolean */
	expect_rule("{\"type\":\"enum\",\"values\":[\"x\",\"y\"]}",
	            "{\"type\":\"enum\",\"values\":[\"x\",\"y\"],\"optional\":false}");
	expect_rule("{\"type\":\"string\",\"optional\":1}", "{\"type\":\"string\",\"optional\":true}");

	s3db_error err;
	json_object *bad = J("[\"string\"]");
	ATF_CHECK(schema_parse_rule(bad, "tags", &err) == NULL);
	ATF_CHECK(strstr(err.message, "'tags'") != NULL);
	json_object_put(bad);
	bad = J("\"|optional\"");
	ATF_CHECK(schema_parse_rule(bad, "t", &err) == NULL);
	json_object_put(bad);
}

/* ---- registry -------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(registry_burns_removed_keys_and_allocates_next_index);
ATF_TC_BODY(registry_burns_removed_keys_and_allocates_next_index, tc)
{
	json_object *entry = entry_for("{\"a\":\"string\",\"b\":\"string\",\"c\":\"string\"}");
	json_object *reg = json_object_object_get(entry, "schemaRegistry");
	expect_json(reg, "{\"nextIndex\":3,\"mapping\":{\"a\":0,\"b\":1,\"c\":2},\"burned\":[]}");
	json_object *attrs = J("{\"a\":\"string\",\"c\":\"string\",\"d\":\"string\"}");
	s3db_error err;
	ATF_REQUIRE_EQ(S3DB_OK, schema_registry_update(entry, attrs, &err));
	reg = json_object_object_get(entry, "schemaRegistry");
	ATF_CHECK_EQ(4, json_object_get_int(json_object_object_get(reg, "nextIndex")));
	expect_json(json_object_object_get(reg, "mapping"), "{\"a\":0,\"c\":2,\"d\":3}");
	json_object *burned = json_object_object_get(reg, "burned");
	ATF_REQUIRE_EQ(1, json_object_array_length(burned));
	json_object *b = json_object_array_get_idx(burned, 0);
	ATF_CHECK_EQ(1, json_object_get_int(json_object_object_get(b, "index")));
	ATF_CHECK_STREQ("b", s3db_json_get_string(b, "attribute"));
	ATF_CHECK_STREQ("removed", s3db_json_get_string(b, "reason"));
	int64_t ms;
	const char *at = s3db_json_get_string(b, "burnedAt");
	ATF_REQUIRE(at != NULL);
	ATF_CHECK_EQ(24, strlen(at));
	ATF_CHECK_EQ(0, s3db_parse_iso8601(at, &ms));
	json_object_put(attrs);

	/* the old version v1 {a,b,c} still compiles: b from its burned entry */
	schema *old = NULL;
	ATF_REQUIRE_EQ(S3DB_OK, schema_compile("things", entry, "v1", FORMAT_21, &old, &err));
	ATF_CHECK_STREQ("1", schema_attr_by_path(old, "b")->short_key);
	ATF_CHECK_STREQ("2", schema_attr_by_path(old, "c")->short_key);
	schema_free(old);

	/* b comes back: a new index, the burned one is never reused */
	attrs = J("{\"a\":\"string\",\"c\":\"string\",\"d\":\"string\",\"b\":\"string\"}");
	ATF_REQUIRE_EQ(S3DB_OK, schema_registry_update(entry, attrs, &err));
	expect_json(json_object_object_get(reg, "mapping"), "{\"a\":0,\"c\":2,\"d\":3,\"b\":4}");
	ATF_CHECK_EQ(5, json_object_get_int(json_object_object_get(reg, "nextIndex")));
	ATF_CHECK_EQ(1, json_object_array_length(json_object_object_get(reg, "burned")));
	json_object_put(attrs);

	/* compile after the update: d's short key is base36(3) */
	schema *s = NULL;
	json_object *ver = json_object_object_get(json_object_object_get(entry, "versions"), "v1");
	json_object_object_add(ver, "attributes",
	                       J("{\"a\":\"string\",\"c\":\"string\",\"d\":\"string\",\"b\":\"string\"}"));
	ATF_REQUIRE_EQ(S3DB_OK, schema_compile("things", entry, NULL, FORMAT_21, &s, &err));
	ATF_CHECK_STREQ("3", schema_attr_by_path(s, "d")->short_key);
	ATF_CHECK_STREQ("4", schema_attr_by_path(s, "b")->short_key);
	schema_free(s);
	json_object_put(entry);
}

ATF_TC_WITHOUT_HEAD(registry_raises_next_index_above_every_used_or_burned_index);
ATF_TC_BODY(registry_raises_next_index_above_every_used_or_burned_index, tc)
{
	json_object *entry = J("{\"currentVersion\":\"v1\",\"versions\":{},\"schemaRegistry\":"
	                       "{\"nextIndex\":1,\"mapping\":{\"a\":5},\"burned\":[{\"index\":9,"
	                       "\"attribute\":\"z\",\"burnedAt\":\"2026-11-27T02:01:26.184Z\","
	                       "\"reason\":\"removed\"}]}}");
	json_object *attrs = J("{\"a\":\"string\",\"n\":\"number\"}");
	s3db_error err;
	ATF_REQUIRE_EQ(S3DB_OK, schema_registry_update(entry, attrs, &err));
	json_object *reg = json_object_object_get(entry, "schemaRegistry");
	expect_json(json_object_object_get(reg, "mapping"), "{\"a\":5,\"n\":10}");
	ATF_CHECK_EQ(11, json_object_get_int(json_object_object_get(reg, "nextIndex")));
	json_object_put(attrs);
	json_object_put(entry);
}

ATF_TC_WITHOUT_HEAD(registry_of_a_v7_catalogue_is_built_from_positions);
ATF_TC_BODY(registry_of_a_v7_catalogue_is_built_from_positions, tc)
{
	json_object *cat = fixture("v7.3.5-demo.json");
	json_object *users = json_object_object_get(json_object_object_get(cat, "resources"), "users");
	json_object *attrs = json_object_object_get(
		json_object_object_get(json_object_object_get(users, "versions"), "v0"), "attributes");
	s3db_error err;
	ATF_REQUIRE_EQ(S3DB_OK, schema_registry_update(users, attrs, &err));
	expect_json(json_object_object_get(users, "schemaRegistry"),
	            "{\"nextIndex\":20,\"mapping\":{\"name\":0,\"email\":1,\"age\":2,\"score\":3,"
	            "\"balance\":4,\"active\":5,\"tags\":6,\"ratings\":7,\"counts\":8,"
	            "\"profile.bio\":9,\"profile.country\":10,\"settings\":11,\"meta\":12,"
	            "\"birthDate\":13,\"password\":14,\"region\":15,\"website\":16,\"createdAt\":17,"
	            "\"updatedAt\":18,\"profile\":19},\"burned\":[]}");
	json_object_put(cat);
}

ATF_TC_WITHOUT_HEAD(registry_of_an_unchanged_golden_resource_stays_identical);
ATF_TC_BODY(registry_of_an_unchanged_golden_resource_stays_identical, tc)
{
	json_object *cat = fixture("21.6.2-demo.json");
	json_object_object_foreach(json_object_object_get(cat, "resources"), name, entry) {
		json_object *reg = json_object_object_get(entry, "schemaRegistry");
		char *before = s3db_json_stringify(reg, 0);
		json_object *attrs = json_object_object_get(
			json_object_object_get(json_object_object_get(entry, "versions"), "v1"),
			"attributes");
		s3db_error err;
		ATF_REQUIRE_EQ(S3DB_OK, schema_registry_update(entry, attrs, &err));
		char *after = s3db_json_stringify(json_object_object_get(entry, "schemaRegistry"), 0);
		ATF_CHECK_STREQ_MSG(before, after, "%s", name);
		free(before);
		free(after);
	}
	json_object_put(cat);
}

/* ---- validation -------------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(validate_trims_strings_and_checks_lengths);
ATF_TC_BODY(validate_trims_strings_and_checks_lengths, tc)
{
	schema *s = compile_attrs("{\"name\":\"string\",\"code\":\"string|min:2|max:5|optional\","
	                          "\"pin\":\"string|length:4|optional\",\"raw\":\"string|trim:false|optional\","
	                          "\"nonempty\":\"string|empty:false|optional\"}");
	accepts(s, "{\"name\":\"  padded \"}", "{\"name\":\"padded\"}");
	accepts(s, "{\"name\":\"\\u00a0\\tx y\\n\\u3000\"}", "{\"name\":\"x y\"}");
	accepts(s, "{\"name\":\"a\",\"code\":\"ab\"}", "{\"name\":\"a\",\"code\":\"ab\"}");
	accepts(s, "{\"name\":\"a\",\"code\":\"abcde\"}", "{\"name\":\"a\",\"code\":\"abcde\"}");
	refuses(s, "{\"name\":\"a\",\"code\":\"a\"}",
	        "field 'code': must be at least 2 characters long (got 1)");
	refuses(s, "{\"name\":\"a\",\"code\":\"abcdef\"}",
	        "field 'code': must be at most 5 characters long (got 6)");
	/* trimmed before the length checks; UTF-16 units (emoji = 2) */
	refuses(s, "{\"name\":\"a\",\"code\":\" a    \"}", "field 'code': must be at least 2");
	refuses(s, "{\"name\":\"a\",\"code\":\"ab\\ud83d\\ude00cd\"}", "(got 6)");
	accepts(s, "{\"name\":\"a\",\"pin\":\"1234\"}", "{\"name\":\"a\",\"pin\":\"1234\"}");
	refuses(s, "{\"name\":\"a\",\"pin\":\"123\"}", "field 'pin': must be exactly 4 characters");
	accepts(s, "{\"name\":\"a\",\"raw\":\" x \"}", "{\"name\":\"a\",\"raw\":\" x \"}");
	refuses(s, "{\"name\":\"a\",\"nonempty\":\"  \"}", "field 'nonempty': must not be empty");
	refuses(s, "{\"name\":123}", "field 'name': must be a string (got 123)");
	refuses(s, "{\"name\":[\"x\"]}", "field 'name': must be a string (got an array)");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_string_pattern_and_enum);
ATF_TC_BODY(validate_string_pattern_and_enum, tc)
{
	schema *s = compile_attrs(
		"{\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-\\\\d+$\",\"optional\":true},"
		"\"color\":{\"type\":\"string\",\"enum\":[\"red\",\"green\"],\"optional\":true},"
		"\"size\":{\"type\":\"enum\",\"values\":[\"S\",\"M\",1],\"optional\":true},"
		"\"low\":\"string|lowercase|alphanum|optional\"}");
	accepts(s, "{\"sku\":\"ABC-42\"}", "{\"sku\":\"ABC-42\"}");
	refuses(s, "{\"sku\":\"abc-42\"}", "field 'sku': must match the pattern /^[A-Z]{3}-\\d+$/");
	accepts(s, "{\"color\":\" red \"}", "{\"color\":\"red\"}");
	refuses(s, "{\"color\":\"blue\"}", "field 'color': must be one of: red, green (got \"blue\")");
	accepts(s, "{\"size\":\"M\"}", "{\"size\":\"M\"}");
	accepts(s, "{\"size\":1}", "{\"size\":1}");
	refuses(s, "{\"size\":\"1\"}", "field 'size': must be one of: S, M, 1 (got \"1\")");
	accepts(s, "{\"low\":\"AbC9\"}", "{\"low\":\"abc9\"}");
	refuses(s, "{\"low\":\"ab-c\"}", "field 'low': must contain only letters and digits");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_converts_and_checks_numbers);
ATF_TC_BODY(validate_converts_and_checks_numbers, tc)
{
	schema *s = compile_attrs("{\"age\":\"number|optional\",\"n\":\"number|integer:true|optional\","
	                          "\"r\":\"number|min:1|max:10|optional\",\"p\":\"number|positive|optional\","
	                          "\"m\":\"number|negative|optional\"}");
	accepts(s, "{\"age\":\"42\"}", "{\"age\":42}");
	accepts(s, "{\"age\":\" 1.5e3 \"}", "{\"age\":1500}");
	accepts(s, "{\"age\":-0.25}", "{\"age\":-0.25}");
	accepts(s, "{\"age\":\"0.1\"}", "{\"age\":0.1}");
	refuses(s, "{\"age\":\"abc\"}", "field 'age': must be a number (got \"abc\")");
	refuses(s, "{\"age\":\"\"}", "field 'age': must be a number");
	refuses(s, "{\"age\":true}", "field 'age': must be a number (got true)");
	refuses(s, "{\"age\":\"Infinity\"}", "field 'age': must be a number");
	accepts(s, "{\"n\":\"7\"}", "{\"n\":7}");
	refuses(s, "{\"n\":7.5}", "field 'n': must be an integer (got 7.5)");
	accepts(s, "{\"r\":10}", "{\"r\":10}");
	refuses(s, "{\"r\":0}", "field 'r': must be at least 1 (got 0)");
	refuses(s, "{\"r\":11}", "field 'r': must be at most 10 (got 11)");
	refuses(s, "{\"p\":0}", "field 'p': must be a positive number");
	refuses(s, "{\"m\":0}", "field 'm': must be a negative number");
	accepts(s, "{\"p\":1,\"m\":-1}", "{\"p\":1,\"m\":-1}");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_converts_booleans_as_fastest_validator);
ATF_TC_BODY(validate_converts_booleans_as_fastest_validator, tc)
{
	schema *s = compile_attrs("{\"b\":\"boolean\"}");
	static const char *const yes[] = { "true", "1", "\"true\"", "\"1\"", "\"on\"" };
	static const char *const no[] = { "false", "0", "\"false\"", "\"0\"", "\"off\"" };
	char in[64];
	for (size_t i = 0; i < 5; i++) {
		snprintf(in, sizeof in, "{\"b\":%s}", yes[i]);
		accepts(s, in, "{\"b\":true}");
		snprintf(in, sizeof in, "{\"b\":%s}", no[i]);
		accepts(s, in, "{\"b\":false}");
	}
	refuses(s, "{\"b\":\"yes\"}", "field 'b': must be a boolean (got \"yes\")");
	refuses(s, "{\"b\":2}", "field 'b': must be a boolean (got 2)");
	refuses(s, "{\"b\":null}", "field 'b': is required");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_email_and_url);
ATF_TC_BODY(validate_email_and_url, tc)
{
	schema *s = compile_attrs("{\"email\":\"email|optional\",\"site\":\"url|optional\"}");
	accepts(s, "{\"email\":\"alice@example.com\"}", "{\"email\":\"alice@example.com\"}");
	accepts(s, "{\"email\":\"a.b@c.d.e\"}", "{\"email\":\"a.b@c.d.e\"}");
	refuses(s, "{\"email\":\"not-an-email\"}", "field 'email': must be an e-mail address");
	refuses(s, "{\"email\":\"a@b\"}", "field 'email': must be an e-mail address");
	refuses(s, "{\"email\":\"a b@c.de\"}", "field 'email'");
	refuses(s, "{\"email\":\"@c.de\"}", "field 'email'");
	accepts(s, "{\"site\":\"https://example.com/p?x=1\"}", "{\"site\":\"https://example.com/p?x=1\"}");
	accepts(s, "{\"site\":\"http://localhost:3000\"}", "{\"site\":\"http://localhost:3000\"}");
	refuses(s, "{\"site\":\"ftp://example.com\"}", "field 'site': must be an http(s) URL");
	refuses(s, "{\"site\":\"https:// x\"}", "field 'site'");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_arrays_convert_each_item);
ATF_TC_BODY(validate_arrays_convert_each_item, tc)
{
	schema *s = compile_attrs("{\"tags\":\"array|items:string|optional\","
	                          "\"ratings\":\"array|items:number|optional\","
	                          "\"counts\":\"array|items:number|integer:true|optional\","
	                          "\"few\":\"array|min:1|max:2|optional\",\"three\":\"array|length:3|optional\","
	                          "\"free\":\"array|optional\",\"u\":\"array|items:string|unique|optional\"}");
	accepts(s, "{\"tags\":[\" a \",\"b|c\",\"d\\\\e\"]}", "{\"tags\":[\"a\",\"b|c\",\"d\\\\e\"]}");
	accepts(s, "{\"tags\":[]}", "{\"tags\":[]}");
	refuses(s, "{\"tags\":[\"a\",2]}", "field 'tags[1]': must be a string (got 2)");
	refuses(s, "{\"tags\":\"a\"}", "field 'tags': must be an array (got \"a\")");
	accepts(s, "{\"ratings\":[\"1.5\",2,-3.25]}", "{\"ratings\":[1.5,2,-3.25]}");
	refuses(s, "{\"ratings\":[1,\"x\"]}", "field 'ratings[1]': must be a number (got \"x\")");
	accepts(s, "{\"counts\":[0,61,\"62\",3844]}", "{\"counts\":[0,61,62,3844]}");
	refuses(s, "{\"counts\":[1.5]}", "field 'counts[0]': must be an integer (got 1.5)");
	refuses(s, "{\"few\":[]}", "field 'few': must have at least 1 items (got 0)");
	refuses(s, "{\"few\":[1,2,3]}", "field 'few': must have at most 2 items (got 3)");
	refuses(s, "{\"three\":[1]}", "field 'three': must have exactly 3 items (got 1)");
	accepts(s, "{\"free\":[{\"a\":1},\"x\",2,null]}", "{\"free\":[{\"a\":1},\"x\",2,null]}");
	refuses(s, "{\"u\":[\"a\",\" a\"]}", "field 'u': must not contain duplicate items");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_objects_json_and_any);
ATF_TC_BODY(validate_objects_json_and_any, tc)
{
	schema *s = compile_attrs("{\"settings\":\"object|optional\",\"meta\":\"json|optional\","
	                          "\"x\":\"any|optional\"}");
	accepts(s, "{\"settings\":{\"theme\":\"dark\",\"nested\":{\"x\":1}}}",
	        "{\"settings\":{\"theme\":\"dark\",\"nested\":{\"x\":1}}}");
	accepts(s, "{\"settings\":{}}", "{\"settings\":{}}");
	refuses(s, "{\"settings\":[1]}", "field 'settings': must be an object (got an array)");
	refuses(s, "{\"settings\":\"x\"}", "field 'settings': must be an object (got \"x\")");
	accepts(s, "{\"meta\":{\"arbitrary\":[1,2,{\"a\":\"b\"}]}}",
	        "{\"meta\":\"{\\\"arbitrary\\\":[1,2,{\\\"a\\\":\\\"b\\\"}]}\"}");
	accepts(s, "{\"meta\":\"raw string\"}", "{\"meta\":\"raw string\"}");
	accepts(s, "{\"meta\":[1,2]}", "{\"meta\":\"[1,2]\"}");
	accepts(s, "{\"meta\":12.5}", "{\"meta\":\"12.5\"}");
	accepts(s, "{\"meta\":false}", "{\"meta\":\"false\"}");
	accepts(s, "{\"x\":[1,{\"y\":\" z \"}]}", "{\"x\":[1,{\"y\":\" z \"}]}");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_normalises_dates);
ATF_TC_BODY(validate_normalises_dates, tc)
{
	schema *s = compile_attrs("{\"at\":\"datetime|optional\",\"day\":\"dateonly|optional\","
	                          "\"born\":\"date|optional\"}");
	accepts(s, "{\"at\":\"2024-01-02T03:04:05Z\"}", "{\"at\":\"2024-01-02T03:04:05.000Z\"}");
	accepts(s, "{\"at\":\"2026-11-27T00:21:04.612Z\"}", "{\"at\":\"2026-11-27T00:21:04.612Z\"}");
	accepts(s, "{\"at\":\"2024-01-02T03:04:05.6+01:00\"}", "{\"at\":\"2024-01-02T02:04:05.600Z\"}");
	accepts(s, "{\"at\":\"2024-01-02\"}", "{\"at\":\"2024-01-02T00:00:00.000Z\"}");
	accepts(s, "{\"at\":0}", "{\"at\":\"1970-01-01T00:00:00.000Z\"}");
	accepts(s, "{\"at\":1795738083940}", "{\"at\":\"2026-11-27T00:08:03.940Z\"}");
	refuses(s, "{\"at\":\"yesterday\"}", "field 'at': must be a date");
	refuses(s, "{\"at\":\"2024-02-30T00:00:00Z\"}", "field 'at': must be a date");
	refuses(s, "{\"at\":true}", "field 'at': must be a date");
	accepts(s, "{\"day\":\"2024-01-02\"}", "{\"day\":\"2024-01-02\"}");
	accepts(s, "{\"day\":\"2024-01-02T23:30:00-02:00\"}", "{\"day\":\"2024-01-03\"}");
	refuses(s, "{\"day\":\"2024-13-01\"}", "field 'day': must be a date YYYY-MM-DD (got \"2024-13-01\")");
	accepts(s, "{\"born\":\"1990-05-15\"}", "{\"born\":\"1990-05-15T00:00:00.000Z\"}");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_keeps_secrets_untrimmed);
ATF_TC_BODY(validate_keeps_secrets_untrimmed, tc)
{
	schema *s = compile_attrs("{\"password\":\"secret|optional\"}");
	accepts(s, "{\"password\":\" hunter2 \"}", "{\"password\":\" hunter2 \"}");
	accepts(s, "{\"password\":1234}", "{\"password\":\"1234\"}");
	refuses(s, "{\"password\":{\"a\":1}}", "field 'password': must be a string (got an object)");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_required_optional_and_null);
ATF_TC_BODY(validate_required_optional_and_null, tc)
{
	schema *s = compile_attrs("{\"name\":\"string|required\",\"nick\":\"string|optional\","
	                          "\"age\":\"number\"}");
	accepts(s, "{\"name\":\"a\",\"age\":1}", "{\"name\":\"a\",\"age\":1}");
	accepts(s, "{\"name\":\"a\",\"age\":1,\"nick\":null}", "{\"name\":\"a\",\"age\":1,\"nick\":null}");
	refuses(s, "{\"age\":1}", "field 'name': is required");
	refuses(s, "{\"name\":null,\"age\":1}", "field 'name': is required");
	refuses(s, "{\"name\":\"a\"}", "field 'age': is required");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_applies_defaults_typed_by_the_rule);
ATF_TC_BODY(validate_applies_defaults_typed_by_the_rule, tc)
{
	schema *s = compile_attrs("{\"a\":\"string|default:zz|optional\",\"n\":\"number|default:5\","
	                          "\"b\":\"boolean|default:true\",\"s\":\"string|default:42\","
	                          "\"t\":\"string|optional\"}");
	accepts(s, "{}", "{\"a\":\"zz\",\"n\":5,\"b\":true,\"s\":\"42\"}");
	accepts(s, "{\"n\":null,\"t\":\"x\"}", "{\"n\":5,\"t\":\"x\",\"a\":\"zz\",\"b\":true,\"s\":\"42\"}");
	accepts(s, "{\"a\":\" given \",\"n\":\"7\",\"b\":\"off\",\"s\":\"x\"}",
	        "{\"a\":\"given\",\"n\":7,\"b\":false,\"s\":\"x\"}");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_nested_objects_recursively);
ATF_TC_BODY(validate_nested_objects_recursively, tc)
{
	schema *s = compile_attrs("{\"name\":\"string\","
	                          "\"profile\":{\"$$type\":\"object|optional\",\"bio\":\"string|optional\","
	                          "\"country\":\"string|min:2\"},"
	                          "\"addr\":{\"$$type\":\"object|required\",\"city\":\"string\"}}");
	accepts(s, "{\"name\":\"a\",\"addr\":{\"city\":\" Rio \"}}",
	        "{\"name\":\"a\",\"addr\":{\"city\":\"Rio\"}}");
	accepts(s, "{\"name\":\"a\",\"addr\":{\"city\":\"Rio\"},\"profile\":{\"country\":\" BR \"}}",
	        "{\"name\":\"a\",\"addr\":{\"city\":\"Rio\"},\"profile\":{\"country\":\"BR\"}}");
	accepts(s, "{\"name\":\"a\",\"addr\":{\"city\":\"Rio\"},\"profile\":null}",
	        "{\"name\":\"a\",\"addr\":{\"city\":\"Rio\"},\"profile\":null}");
	refuses(s, "{\"name\":\"a\"}", "field 'addr': is required");
	refuses(s, "{\"name\":\"a\",\"addr\":{}}", "field 'addr.city': is required");
	refuses(s, "{\"name\":\"a\",\"addr\":{\"city\":\"R\"},\"profile\":{\"country\":\"B\"}}",
	        "field 'profile.country': must be at least 2 characters long (got 1)");
	refuses(s, "{\"name\":\"a\",\"addr\":{\"city\":\"R\"},\"profile\":{\"country\":\"BR\",\"x\":1}}",
	        "field 'profile.x': is not an attribute");
	refuses(s, "{\"name\":\"a\",\"addr\":\"Rio\"}", "field 'addr': must be an object (got \"Rio\")");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_refuses_unknown_fields_and_ignores_id_and_internal_keys);
ATF_TC_BODY(validate_refuses_unknown_fields_and_ignores_id_and_internal_keys, tc)
{
	schema *s = compile_attrs("{\"name\":\"string\",\"_note\":\"string|optional\"}");
	accepts(s, "{\"id\":\"u1\",\"name\":\"a\",\"_v\":\"v1\",\"$before\":{}}", "{\"name\":\"a\"}");
	accepts(s, "{\"name\":\"a\",\"_note\":\" n \"}", "{\"name\":\"a\",\"_note\":\"n\"}");
	refuses(s, "{\"name\":\"a\",\"bogus\":1}",
	        "field 'bogus': is not an attribute of resource 'things'");
	schema_free(s);
	/* a declared `id` (plugin resources) is left to the record layer */
	s = compile_attrs("{\"id\":\"string|required\",\"word\":\"string\"}");
	accepts(s, "{\"word\":\"x\"}", "{\"word\":\"x\"}");
	accepts(s, "{\"id\":\"i1\",\"word\":\"x\"}", "{\"word\":\"x\"}");
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_free_form_resource_accepts_any_object);
ATF_TC_BODY(validate_free_form_resource_accepts_any_object, tc)
{
	schema *s = compile_attrs("{}");
	accepts(s, "{\"id\":\"x\",\"anything\":{\"x\":[1,\" y \",null]},\"n\":\"42\",\"_v\":\"v1\","
	        "\"z\":null}",
	        "{\"anything\":{\"x\":[1,\" y \",null]},\"n\":\"42\",\"z\":null}");
	json_object *arr = J("[1]"), *out = NULL;
	s3db_error err;
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION, schema_validate(s, arr, &out, &err));
	ATF_CHECK(strstr(err.message, "must be a JSON object") != NULL);
	json_object_put(arr);
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_names_every_offending_field_in_one_message);
ATF_TC_BODY(validate_names_every_offending_field_in_one_message, tc)
{
	schema *s = compile_attrs("{\"name\":\"string\",\"age\":\"number\",\"ok\":\"boolean|optional\"}");
	refuses(s, "{\"age\":\"abc\",\"ok\":\"maybe\",\"zzz\":1}",
	        "field 'age': must be a number (got \"abc\"); field 'ok': must be a boolean "
	        "(got \"maybe\"); field 'zzz': is not an attribute of resource 'things'; "
	        "field 'name': is required");
	/* many errors: cut politely at the buffer size */
	sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, "{\"name\":\"a\",\"age\":1");
	for (int i = 0; i < 40; i++)
		sbuf_printf(&b, ",\"unknown_field_with_a_long_name_%02d\":%d", i, i);
	sbuf_puts(&b, "}");
	json_object *in = J(b.data), *out = NULL;
	sbuf_free(&b);
	s3db_error err;
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION, schema_validate(s, in, &out, &err));
	ATF_CHECK(strlen(err.message) < sizeof err.message);
	ATF_CHECK(strstr(err.message, "field 'unknown_field_with_a_long_name_00'") != NULL);
	ATF_CHECK(strstr(err.message, " more") != NULL);
	const char *more = strstr(err.message, "; ... and ");
	ATF_REQUIRE(more != NULL);
	int shown = 0;
	for (const char *p = err.message; (p = strstr(p, "field '")) != NULL; p++)
		shown++;
	ATF_CHECK_EQ(40, shown + atoi(more + 10));
	json_object_put(in);
	/* one error longer than the buffer: cut, still named */
	char longname[700];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	in = json_object_new_object();
	json_object_object_add(in, "name", json_object_new_string("a"));
	json_object_object_add(in, "age", json_object_new_int(1));
	json_object_object_add(in, longname, json_object_new_int(1));
	ATF_CHECK_EQ(S3DB_ERR_VALIDATION, schema_validate(s, in, &out, &err));
	ATF_CHECK(strncmp(err.message, "field 'xxxx", 11) == 0);
	ATF_CHECK(s3db_str_ends(err.message, "..."));
	ATF_CHECK(strlen(err.message) < sizeof err.message);
	json_object_put(in);
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(validate_golden_users_record);
ATF_TC_BODY(validate_golden_users_record, tc)
{
	schema *s = compile_fixture("21.6.2-demo.json", "users", FORMAT_21);
	accepts(s,
	        "{\"id\":\"user-1\",\"name\":\"  Alice \",\"email\":\"alice@example.com\",\"age\":\"30\","
	        "\"score\":1000000,\"balance\":1234.56,\"active\":\"true\",\"tags\":[\"a\",\"b|c\"],"
	        "\"ratings\":[1.5,2,-3.25],\"counts\":[0,61,62,3844],"
	        "\"profile\":{\"bio\":\"Hello world\",\"country\":\"BR\"},"
	        "\"settings\":{\"theme\":\"dark\"},\"meta\":{\"arbitrary\":[1,2]},"
	        "\"password\":\"hunter2\",\"region\":\"south-america\","
	        "\"createdAt\":\"2026-11-27T00:21:04.612Z\",\"updatedAt\":1795738083940}",
	        "{\"name\":\"Alice\",\"email\":\"alice@example.com\",\"age\":30,\"score\":1000000,"
	        "\"balance\":1234.56,\"active\":true,\"tags\":[\"a\",\"b|c\"],"
	        "\"ratings\":[1.5,2,-3.25],\"counts\":[0,61,62,3844],"
	        "\"profile\":{\"bio\":\"Hello world\",\"country\":\"BR\"},"
	        "\"settings\":{\"theme\":\"dark\"},\"meta\":\"{\\\"arbitrary\\\":[1,2]}\","
	        "\"password\":\"hunter2\",\"region\":\"south-america\","
	        "\"createdAt\":\"2026-11-27T00:21:04.612Z\",\"updatedAt\":\"2026-11-27T00:08:03.940Z\"}");
	refuses(s, "{\"name\":\"Bob\"}", "field 'email': is required");
	schema_free(s);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, key_list_of_golden_users_is_registry_order);
	ATF_TP_ADD_TC(tp, key_list_positions_equal_every_golden_registry_index);
	ATF_TP_ADD_TC(tp, key_list_object_form_definitions_contribute_their_properties);
	ATF_TP_ADD_TC(tp, key_list_puts_integer_like_names_first_as_javascript_does);
	ATF_TP_ADD_TC(tp, key_list_recurses_into_object_keys_only_for_exact_object_type);
	ATF_TP_ADD_TC(tp, canonical_json_sorts_keys_by_utf16_code_unit);
	ATF_TP_ADD_TC(tp, definition_hash_of_the_files_example);
	ATF_TP_ADD_TC(tp, definition_hash_reproduces_every_golden_hash);
	ATF_TP_ADD_TC(tp, compile_golden_users_gives_registry_short_keys_and_kinds);
	ATF_TP_ADD_TC(tp, compile_v7_users_uses_positions_and_v0);
	ATF_TP_ADD_TC(tp, compile_v7_forty_attributes_gives_base62_keys);
	ATF_TP_ADD_TC(tp, compile_recognises_kinds_by_substring_order);
	ATF_TP_ADD_TC(tp, compile_refuses_missing_version_and_bad_definitions);
	ATF_TP_ADD_TC(tp, parse_rule_reads_shorthand_as_fastest_validator);
	ATF_TP_ADD_TC(tp, registry_burns_removed_keys_and_allocates_next_index);
	ATF_TP_ADD_TC(tp, registry_raises_next_index_above_every_used_or_burned_index);
	ATF_TP_ADD_TC(tp, registry_of_a_v7_catalogue_is_built_from_positions);
	ATF_TP_ADD_TC(tp, registry_of_an_unchanged_golden_resource_stays_identical);
	ATF_TP_ADD_TC(tp, validate_trims_strings_and_checks_lengths);
	ATF_TP_ADD_TC(tp, validate_string_pattern_and_enum);
	ATF_TP_ADD_TC(tp, validate_converts_and_checks_numbers);
	ATF_TP_ADD_TC(tp, validate_converts_booleans_as_fastest_validator);
	ATF_TP_ADD_TC(tp, validate_email_and_url);
	ATF_TP_ADD_TC(tp, validate_arrays_convert_each_item);
	ATF_TP_ADD_TC(tp, validate_objects_json_and_any);
	ATF_TP_ADD_TC(tp, validate_normalises_dates);
	ATF_TP_ADD_TC(tp, validate_keeps_secrets_untrimmed);
	ATF_TP_ADD_TC(tp, validate_required_optional_and_null);
	ATF_TP_ADD_TC(tp, validate_applies_defaults_typed_by_the_rule);
	ATF_TP_ADD_TC(tp, validate_nested_objects_recursively);
	ATF_TP_ADD_TC(tp, validate_refuses_unknown_fields_and_ignores_id_and_internal_keys);
	ATF_TP_ADD_TC(tp, validate_free_form_resource_accepts_any_object);
	ATF_TP_ADD_TC(tp, validate_names_every_offending_field_in_one_message);
	ATF_TP_ADD_TC(tp, validate_golden_users_record);
	return atf_no_error();
}
