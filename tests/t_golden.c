/*
 * t_golden.c — our record reader and writer against the buckets that the
 * real s3db.js wrote (tests/fixtures/s3db-js/, copied from the golden
 * dumps: s3db.js 7.3.5, 7.4.2 and 21.6.2 running against s3rver).
 *
 * Reading.  Every record object of every dump (key .../resource=R/data/id=I)
 * is turned back into a store_object as our S3 backend would hand it over —
 * once with the header bytes s3rver sent, once as AWS would send them
 * (non-ASCII values as RFC 2047 words), both through codec_rfc2047_decode
 * as store_s3.c does — and decoded with record_decode using the schema
 * compiled from that database's s3db.json (21.x: current version; v7: the
 * object's _v).  The result must equal what s3db.js's own insert/get/list
 * returned for that record in scenario-log.json, taking the LAST state the
 * log shows (after updates), with these rules:
 *   - keys starting with '_' or '$' (bookkeeping, $overflow...) and the
 *     "<<undefined>>" placeholders (absent values) are not fields;
 *   - strings the logger shortened in get/list results ("abc...(3079)",
 *     "(5000 chars)") are replaced by the full value the insert returned
 *     (and otherwise match a value with that prefix and length);
 *   - where s3db.js's read is defective the expected value is corrected,
 *     each correction listed in `corrections` with the spec item that
 *     documents the defect; a correction must meet the defective value it
 *     names (so the table cannot go stale silently);
 *   - R2 (21.6.2) and its v7 equivalent: a `string` attribute holding JSON
 *     text comes back parsed from s3db.js; we return the text, and compare
 *     its parse with the logged value.
 * No dumped header holds a non-ASCII byte (21.6.2 escapes them, 7.4
 * writes base64, 7.3.5 refused CJK and its Latin-1 user was deleted by
 * the scenario), so the two forms only differ for the v7.3 Latin-1 record
 * rebuilt from the log (v7_3_latin1_...); over the dumps the AWS cases
 * check that RFC 2047 decoding leaves every golden value alone.
 * Records the log never shows (plugin records written in the background,
 * the replica) take their expected value from
 * tests/fixtures/s3db-js/derived/expected.json (its "_about" says how each
 * was derived; derive.py beside it regenerates it).
 *
 * Writing.  The 21.6.2 demo records are validated and encoded again from
 * the values their insert returned (the log has no separate "args": the
 * insert result is the validated input plus bookkeeping), and the metadata
 * must be the dump's byte for byte; bodies too (body-overflow, body-only).
 * Deliberate deviations are asserted as such: no `undefined` artefacts
 * (R8), no bookkeeping (R9), truncate-data keeps a prefix instead of
 * blanking the field (R12).
 *
 * Edge cases of v7 (edge-cases.json: the 40-attribute key collision is
 * reported under "$ambiguous", the secret vector decrypts, raw texts) and
 * the record-level interop vectors of spec §8.1, §8.2 and §8.5 close the
 * file.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <atf-c.h>
#include <json-c/json.h>
#include "codec.h"
#include "record.h"
#include "schema.h"
#include "secret.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#ifndef TEST_FIXTURES
#define TEST_FIXTURES "tests/fixtures"
#endif

/* ---- small helpers --------------------------------------------------------- */

/* Parses JSON text of any kind.  Scalars are parsed inside an array:
 * s3db_json_parse rejects a bare top-level number ("9.99": json-c waits
 * for a terminator). */
static json_object *J(const char *text)
{
	json_object *arr = NULL;
	s3db_error err;
	char *wrapped = s3db_asprintf("[%s]", text);
	if (!wrapped || s3db_json_parse(wrapped, strlen(wrapped), &arr, &err) != S3DB_OK ||
	    json_object_array_length(arr) != 1)
		atf_tc_fail("bad JSON in test: %.200s", text);
	free(wrapped);
	json_object *o = json_object_get(json_object_array_get_idx(arr, 0));
	json_object_put(arr);
	return o;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static json_object *deep_copy(json_object *o)
{
	json_object *c = NULL;
	if (o && json_object_deep_copy(o, &c, NULL) != 0)
		atf_tc_fail("json_object_deep_copy failed");
	return c;
}

static char *stringify(json_object *o)
{
	char *t = s3db_json_stringify(o, 0);
	ATF_REQUIRE(t != NULL);
	return t;
}

/* A fixture of tests/fixtures/s3db-js/<dir>/<rel> (caller puts it). */
static json_object *golden_file(const char *dir, const char *rel)
{
	char path[1024];
	snprintf(path, sizeof path, "s3db-js/%s/%s", dir, rel);
	return testlib_fixture_json(path);
}

static unsigned char *hex_decode(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2;
	unsigned char *out = malloc(n + 1);
	ATF_REQUIRE(out != NULL);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			atf_tc_fail("bad hex in fixture: %s", hex);
		out[i] = (unsigned char)v;
	}
	out[n] = '\0';
	*len = n;
	return out;
}

/* ---- dump objects -> store_object ---------------------------------------- */

/* The header bytes the server sent for one dumped metadata value: a plain
 * string, or {rawLatin1, bytesHex, asUtf8} for non-ASCII bytes (the
 * dumper read them as Latin-1; bytesHex holds them exactly). */
static char *header_bytes(json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		return strdup(json_object_get_string(v));
	const char *hex = s3db_json_get_string(v, "bytesHex");
	if (!hex)
		atf_tc_fail("metadata value is neither a string nor {bytesHex}");
	size_t n;
	return (char *)hex_decode(hex, &n);
}

static int has_non_ascii(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p >= 0x80)
			return 1;
	return 0;
}

/* What AWS answers for a header value: as is when US-ASCII, else an RFC
 * 2047 B-word of its UTF-8 text (raw bytes that are not UTF-8 were
 * Latin-1 on the way in). */
static char *aws_header(const char *bytes)
{
	if (!has_non_ascii(bytes))
		return strdup(bytes);
	char *utf8 = codec_latin1_to_utf8(bytes, strlen(bytes));
	char *b64 = codec_base64_encode(utf8, strlen(utf8));
	char *word = s3db_asprintf("=?UTF-8?B?%s?=", b64);
	free(utf8);
	free(b64);
	ATF_REQUIRE(word != NULL);
	return word;
}

/* Builds the object our S3 backend would return for a dumped object: every
 * header value through codec_rfc2047_decode (store_s3.c does that with
 * every x-amz-meta-* value it receives). */
static void object_from_dump(json_object *dump, int aws, store_object *o)
{
	store_object_init(o);
	json_object *meta = get(dump, "metadata");
	ATF_REQUIRE(meta != NULL);
	json_object_object_foreach(meta, k, v) {
		if (strncmp(k, "x-amz-meta-", 11) != 0)
			continue;
		char *bytes = header_bytes(v);
		char *wire = aws ? aws_header(bytes) : strdup(bytes);
		char *value = codec_rfc2047_decode(wire);
		ATF_REQUIRE(value != NULL);
		ATF_REQUIRE(store_meta_set(&o->meta, k + 11, value) == 0);
		free(bytes);
		free(wire);
		free(value);
	}
	const char *ct = s3db_json_get_string(dump, "contentType");
	o->content_type = ct ? strdup(ct) : NULL;
	o->size = json_object_get_int64(get(dump, "contentLength"));
	const char *b64 = s3db_json_get_string(dump, "bodyBase64");
	size_t n = 0;
	unsigned char *body = b64 ? codec_base64_decode(b64, &n) : NULL;
	if (body && n > 0) {
		o->body = body;
		o->body_len = n;
	} else {
		free(body);
	}
	if ((int64_t)o->body_len != o->size)
		atf_tc_fail("%s: body has %zu bytes, contentLength says %lld",
		            s3db_json_get_string(dump, "key"), o->body_len, (long long)o->size);
}

/* ---- one dump directory ----------------------------------------------------- */

typedef struct golden {
	const char *dir;        /* "v7.3.5", "v7.4.2", "latest-21.6.2"      */
	schema_format format;
	int v74;                /* last writer 7.4.1+ (s3dbVersion "7.4.1") */
	json_object *manifest;
	json_object *log;
	json_object *derived;   /* derived/expected.json [dir]              */
	json_object *derived_all;
} golden;

static json_object *golden_catalogue(golden *g, const char *db);

/* The format of a catalogue, decided as database.c decides it: 21.x when
 * a resource has a schemaRegistry or s3dbVersion's major is 8 or more,
 * else v7; *v74 when it is a v7 catalogue last written by 7.4.1+. */
static schema_format catalogue_format(json_object *cat, int *v74)
{
	const char *ver = s3db_json_get_string(cat, "s3dbVersion");
	int a = 0, b = 0, c = 0;
	if (!ver || sscanf(ver, "%d.%d.%d", &a, &b, &c) != 3)
		atf_tc_fail("s3db.json without a usable s3dbVersion");
	schema_format f = a >= 8 ? FORMAT_21 : FORMAT_V7;
	json_object_object_foreach(get(cat, "resources"), name, entry) {
		(void)name;
		if (get(entry, "schemaRegistry"))
			f = FORMAT_21;
	}
	*v74 = f == FORMAT_V7 && a == 7 && (b > 4 || (b == 4 && c >= 1));
	return f;
}

static void golden_open(golden *g, const char *dir)
{
	memset(g, 0, sizeof *g);
	g->dir = dir;
	g->manifest = golden_file(dir, "manifest.json");
	g->log = golden_file(dir, "scenario-log.json");
	g->derived_all = testlib_fixture_json("s3db-js/derived/expected.json");
	g->derived = get(g->derived_all, dir);
	ATF_REQUIRE(g->derived != NULL);
	json_object *cat = golden_catalogue(g, "demo");
	g->format = catalogue_format(cat, &g->v74);
	json_object_put(cat);
}

static void golden_close(golden *g)
{
	json_object_put(g->manifest);
	json_object_put(g->log);
	json_object_put(g->derived_all);
}

/* The dump of the object with that key (caller puts it), NULL if none. */
static json_object *golden_object(golden *g, const char *key)
{
	for (size_t i = 0; i < json_object_array_length(g->manifest); i++) {
		json_object *e = json_object_array_get_idx(g->manifest, i);
		const char *k = s3db_json_get_string(e, "key");
		if (k && !strcmp(k, key))
			return golden_file(g->dir, s3db_json_get_string(e, "file"));
	}
	return NULL;
}

/* s3db.json of databases/<db>, parsed from the dumped body. */
static json_object *golden_catalogue(golden *g, const char *db)
{
	char key[256];
	snprintf(key, sizeof key, "databases/%s/s3db.json", db);
	json_object *dump = golden_object(g, key);
	if (!dump)
		atf_tc_fail("%s: no %s in the dump", g->dir, key);
	const char *body = s3db_json_get_string(dump, "body");
	json_object *cat = J(body);
	json_object_put(dump);
	return cat;
}

/* The schema to decode an object of db/resource with, compiled from that
 * database's s3db.json in the format the catalogue says: 21.x the current
 * version (§4.5), v7 the object's version obj_v (B.7; NULL: current).
 * *v74 (optional) receives the catalogue's 7.4.1+ flag. */
static schema *golden_schema_v(golden *g, const char *db, const char *resource,
                               const char *obj_v, int *v74)
{
	json_object *cat = golden_catalogue(g, db);
	int is74;
	schema_format f = catalogue_format(cat, &is74);
	json_object *entry = get(get(cat, "resources"), resource);
	if (!entry)
		atf_tc_fail("%s: %s has no resource %s", g->dir, db, resource);
	schema *s = NULL;
	s3db_error err = { 0 };
	CHECK_OK(schema_compile(resource, entry, f == FORMAT_V7 ? obj_v : NULL, f, &s, &err), &err);
	json_object_put(cat);
	if (v74)
		*v74 = is74;
	return s;
}

static schema *golden_schema(golden *g, const char *db, const char *resource, const char *obj_v)
{
	return golden_schema_v(g, db, resource, obj_v, NULL);
}

/* Splits "databases/<db>/resource=<R>/data/id=<I>"; 0 when it is no record key. */
static int record_key(const char *key, char *db, char *res, char *id, size_t size)
{
	const char *p = key;
	if (strncmp(p, "databases/", 10) != 0)
		return 0;
	p += 10;
	const char *slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= size || strncmp(slash, "/resource=", 10) != 0)
		return 0;
	snprintf(db, size, "%.*s", (int)(slash - p), p);
	p = slash + 10;
	const char *data = strstr(p, "/data/id=");
	if (!data || (size_t)(data - p) >= size || strchr(data + 9, '/'))
		return 0;
	snprintf(res, size, "%.*s", (int)(data - p), p);
	snprintf(id, size, "%s", data + 9);
	return 1;
}

/* The passphrase of each database: the demo databases of v7 were opened
 * with passphrase "my-passphrase" (spec §8.5 row user-1 x-amz-meta-e);
 * 21.6.2 ignores that option and uses the default "secret" (§3.8); the
 * other databases use the default (scenario-log shows "passphrase":
 * "secret" in their resource dumps). */
static const char *golden_passphrase(const golden *g, const char *db)
{
	return g->format == FORMAT_V7 && !strcmp(db, "demo") ? "my-passphrase" : "secret";
}

/* ---- expected values from the scenario log ----------------------------------- */

/* The database a log step talks to: "[cache] get p1" -> plugin-cache,
 * "replica createResource posts" -> replica, else demo. */
static void step_db(const char *step, char *db, size_t size)
{
	if (step[0] == '[') {
		const char *end = strchr(step, ']');
		snprintf(db, size, "plugin-%.*s", end ? (int)(end - step - 1) : 0, step + 1);
	} else if (!strncmp(step, "replica", 7) || !strcmp(step, "connect replica") ||
	           !strcmp(step, "disconnect replica")) {
		snprintf(db, size, "replica");
	} else {
		snprintf(db, size, "demo");
	}
}

static json_object *record_in(json_object *candidate, const char *id)
{
	const char *cid = s3db_json_get_string(candidate, "id");
	return cid && !strcmp(cid, id) ? candidate : NULL;
}

/* The last record with that id that a successful step of that database
 * returned (top-level result, an element of a result array, or an item of
 * a page).  Borrowed; NULL when the log never shows it. */
static json_object *log_last_state(golden *g, const char *db, const char *id)
{
	json_object *last = NULL;
	for (size_t i = 0; i < json_object_array_length(g->log); i++) {
		json_object *e = json_object_array_get_idx(g->log, i);
		char sdb[128];
		step_db(s3db_json_get_string(e, "step"), sdb, sizeof sdb);
		json_object *ok = get(e, "ok");
		if (strcmp(sdb, db) != 0 || !ok || !json_object_get_boolean(ok))
			continue;
		json_object *r = get(e, "result"), *hit = NULL;
		if (json_object_is_type(r, json_type_object)) {
			hit = record_in(r, id);
			json_object *items = get(r, "items");
			for (size_t j = 0; !hit && items && j < json_object_array_length(items); j++)
				hit = record_in(json_object_array_get_idx(items, j), id);
		} else if (json_object_is_type(r, json_type_array)) {
			for (size_t j = 0; !hit && j < json_object_array_length(r); j++)
				hit = record_in(json_object_array_get_idx(r, j), id);
		}
		if (hit)
			last = hit;
	}
	return last;
}

/* The logger shortened long strings in get/list results ("abc...(3079)",
 * "(5000 chars)"); the insert of the same record usually shows the full
 * value.  Replaces each shortened top-level string of expected by the
 * latest full value of that field the log shows which the shortened form
 * describes. */
static int abbreviation_matches(const char *exp, const char *act, int *is_abbrev);

static void unabbreviate(golden *g, const char *db, const char *id, json_object *expected)
{
	json_object_object_foreach(expected, k, v) {
		int abbrev = 0;
		if (!json_object_is_type(v, json_type_string))
			continue;
		abbreviation_matches(json_object_get_string(v), "", &abbrev);
		if (!abbrev)
			continue;
		const char *full = NULL;
		for (size_t i = 0; i < json_object_array_length(g->log); i++) {
			json_object *e = json_object_array_get_idx(g->log, i), *r = get(e, "result");
			char sdb[128];
			step_db(s3db_json_get_string(e, "step"), sdb, sizeof sdb);
			if (strcmp(sdb, db) != 0 || !json_object_is_type(r, json_type_object) ||
			    !record_in(r, id))
				continue;
			const char *cand = s3db_json_get_string(r, k);
			int cand_abbrev = 0;
			if (cand && abbreviation_matches(json_object_get_string(v), cand, &cand_abbrev))
				full = cand;
		}
		if (full)
			json_object_object_add(expected, k, json_object_new_string(full));
	}
}

/* Copy of a logged record without bookkeeping ('_', '$' keys: top level
 * only, JSON values of fields keep theirs) and without "<<undefined>>"
 * (absent) values, in nested objects too. */
static json_object *clean_object(json_object *rec, int top)
{
	json_object *out = json_object_new_object();
	json_object_object_foreach(rec, k, v) {
		if (top && (k[0] == '_' || k[0] == '$'))
			continue;
		if (json_object_is_type(v, json_type_string) &&
		    !strcmp(json_object_get_string(v), "<<undefined>>"))
			continue;
		json_object_object_add(out, k, json_object_is_type(v, json_type_object)
		                                   ? clean_object(v, 0) : deep_copy(v));
	}
	return out;
}

static json_object *clean_logged(json_object *rec)
{
	return clean_object(rec, 1);
}

/* Corrections of s3db.js's defective reads.  `dirs` lists the dump
 * directories (space separated), `record` is db/resource/id.  `was` is the
 * value s3db.js returned (JSON text) — the correction fails the test when
 * the log shows something else; `value` is the correct value (JSON text),
 * or NULL for `repeat` copies of `ch`. */
typedef struct correction {
	const char *dirs;
	const char *record;
	const char *field;
	const char *was;
	const char *value;
	char ch;
	int repeat;
	const char *why;
} correction;

static const correction corrections[] = {
	{ "v7.3.5 v7.4.2", "demo/users/user-1", "balance", "\"<<NaN>>\"", "1234.56", 0, 0,
	  "V1 (§7.2, §8.5): v7 decodes fractional numbers as NaN; jU.56 is 1234.56" },
	{ "v7.3.5", "demo/users/8CvR_pC6U_wZ_RJb1NzBVp", "age", "\"<<NaN>>\"", "0.5", 0, 0,
	  "V1 (§8.5): Bob's age 0.5 stored as 0.5" },
	{ "v7.4.2", "demo/users/Uracuhgc_NSV7dfK0vNSDP", "age", "\"<<NaN>>\"", "0.5", 0, 0,
	  "V1 (§8.5): Bob's age 0.5 stored as 0.5" },
	{ "v7.3.5 v7.4.2", "demo/products/product-ok", "price", "\"<<NaN>>\"", "9.99", 0, 0,
	  "V1 (§8.5): price 9.99" },
	{ "v7.3.5 v7.4.2", "demo/users/user-1", "birthDate", "\"\\\"1990-05-15T00:00:00.000Z\\\"\"",
	  "\"1990-05-15T00:00:00.000Z\"", 0, 0,
	  "V4/R3 (§8.5): date values are stored JSON-quoted; a reader unquotes them" },
	{ "v7.3.5 v7.4.2", "demo/notes/note-long", "text", "\"\"", NULL, 'y', 3000,
	  "V9 (§8.5, B.6): truncate-data blanked the header, the v7 body holds all 3000 'y'" },
	{ "v7.4.2", "demo/users/user-9", "region", "\"j\\u021a\"", "\"asia\"", 0, 0,
	  "B.5.2: \"asia\" is canonical base64 of j+U+021A, so 7.4.2's heuristic turns it into "
	  "\"j\\u021a\"; the user-managed body (and the upsert) say \"asia\"" },
	{ "v7.4.2", "demo/users/bulk-1", "region", "\"j\\u021a\"", "\"asia\"", 0, 0,
	  "B.5.2: as user-9" },
	{ "v7.4.2", "plugin-metrics2/metrics/metrics-1795737510098-nenemrpnl", "avgTime",
	  "\"<<NaN>>\"", "59.5", 0, 0, "V1: X.5 is 59.5 (the user-managed body says 59.5)" },
	{ "v7.4.2", "plugin-metrics2/metrics/metrics-1795737510145-a5psfb6o6", "avgTime",
	  "\"<<NaN>>\"", "59.5", 0, 0, "V1: as above" },
};
#define NCORRECTIONS (sizeof corrections / sizeof corrections[0])

static int dir_listed(const char *dirs, const char *dir)
{
	size_t n = strlen(dir);
	for (const char *p = dirs; (p = strstr(p, dir)) != NULL; p += n)
		if ((p == dirs || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return 1;
	return 0;
}

/* Applies the corrections that name this record; counts uses in used[]. */
static void apply_corrections(golden *g, const char *rec, json_object *expected, int *used,
                              sbuf *report)
{
	for (size_t i = 0; i < NCORRECTIONS; i++) {
		const correction *c = &corrections[i];
		if (!dir_listed(c->dirs, g->dir) || strcmp(c->record, rec) != 0)
			continue;
		used[i]++;
		json_object *was = J(c->was), *cur = get(expected, c->field);
		if (!json_object_equal(was, cur)) {
			char *t = stringify(cur);
			sbuf_printf(report, "%s %s.%s: correction expects s3db.js's value %s, the log "
			            "has %s\n", g->dir, rec, c->field, c->was, t);
			free(t);
		}
		json_object_put(was);
		json_object *v;
		if (c->value) {
			v = J(c->value);
		} else {
			char *s = malloc((size_t)c->repeat + 1);
			ATF_REQUIRE(s != NULL);
			memset(s, c->ch, (size_t)c->repeat);
			s[c->repeat] = '\0';
			v = json_object_new_string(s);
			free(s);
		}
		json_object_object_add(expected, c->field, v);
	}
}

/* ---- comparing a decoded record with its expected value --------------------- */

/* JavaScript string length (UTF-16 units) of a UTF-8 string. */
static size_t js_length(const char *s)
{
	return s3db_utf16_len(s);
}

/* The logger shortened long strings: "<60 chars>...(N)" and "(N chars)". */
static int abbreviation_matches(const char *exp, const char *act, int *is_abbrev)
{
	size_t n = strlen(exp);
	unsigned long total;
	int used = 0;
	*is_abbrev = 0;
	if (sscanf(exp, "(%lu chars)%n", &total, &used) == 1 && (size_t)used == n) {
		*is_abbrev = 1;
		return js_length(act) == total;
	}
	const char *dots = n > 5 ? strstr(exp, "...(") : NULL;
	while (dots && strstr(dots + 1, "...("))
		dots = strstr(dots + 1, "...(");
	if (dots && exp[n - 1] == ')' && sscanf(dots, "...(%lu)%n", &total, &used) == 1 &&
	    (size_t)used == strlen(dots)) {
		*is_abbrev = 1;
		size_t plen = (size_t)(dots - exp);
		return strncmp(exp, act, plen) == 0 && js_length(act) == total;
	}
	return 0;
}

static void json_path_join(char *out, size_t size, const char *path, const char *key)
{
	snprintf(out, size, "%s%s%s", path, *path ? "." : "", key);
}

/* Compares expected with actual; appends the first difference under `path`
 * to report and returns 0 on a mismatch.  s: for attribute kinds (R2). */
static int json_match(const schema *s, const char *path, json_object *exp, json_object *act,
                      sbuf *report)
{
	json_type te = json_object_get_type(exp), ta = json_object_get_type(act);
	const attr *a = s ? schema_attr_by_path(s, path) : NULL;
	if ((te == json_type_object || te == json_type_array) && ta == json_type_string && a &&
	    a->kind == KIND_STRING) {
		/* R2: s3db.js JSON-parses string values that hold JSON text; we keep
		 * the text.  It must be that JSON. */
		json_object *parsed = NULL;
		const char *t = json_object_get_string(act);
		if (s3db_json_parse(t, strlen(t), &parsed, NULL) != S3DB_OK) {
			sbuf_printf(report, "%s: expected JSON text, got %.80s", path, t);
			return 0;
		}
		int ok = json_match(NULL, path, exp, parsed, report);
		json_object_put(parsed);
		return ok;
	}
	int enum_ = (te == json_type_int || te == json_type_double);
	int anum = (ta == json_type_int || ta == json_type_double);
	if (enum_ && anum) {
		if (json_object_get_double(exp) == json_object_get_double(act))
			return 1;
	} else if (te != ta) {
		/* falls through to the report */
	} else if (te == json_type_null) {
		return 1;
	} else if (te == json_type_boolean) {
		if (json_object_get_boolean(exp) == json_object_get_boolean(act))
			return 1;
	} else if (te == json_type_string) {
		const char *e = json_object_get_string(exp), *v = json_object_get_string(act);
		int abbrev;
		if (!strcmp(e, v) || abbreviation_matches(e, v, &abbrev))
			return 1;
	} else if (te == json_type_array) {
		size_t n = json_object_array_length(exp);
		if (n == json_object_array_length(act)) {
			for (size_t i = 0; i < n; i++) {
				char sub[512];
				snprintf(sub, sizeof sub, "%s[%zu]", path, i);
				if (!json_match(NULL, sub, json_object_array_get_idx(exp, i),
				                json_object_array_get_idx(act, i), report))
					return 0;
			}
			return 1;
		}
	} else if (te == json_type_object) {
		json_object_object_foreach(exp, k, v) {
			char sub[512];
			json_path_join(sub, sizeof sub, path, k);
			json_object *av = NULL;
			if (!json_object_object_get_ex(act, k, &av)) {
				sbuf_printf(report, "%s: missing (expected %.80s)", sub,
				            json_object_to_json_string(v));
				return 0;
			}
			if (!json_match(s, sub, v, av, report))
				return 0;
		}
		json_object_object_foreach(act, k2, v2) {
			if (!json_object_object_get_ex(exp, k2, NULL)) {
				char sub[512];
				json_path_join(sub, sizeof sub, path, k2);
				sbuf_printf(report, "%s: unexpected field (value %.80s)", sub,
				            json_object_to_json_string(v2));
				return 0;
			}
		}
		return 1;
	}
	char *et = stringify(exp), *at = stringify(act);
	sbuf_printf(report, "%s: expected %.120s, got %.120s", *path ? path : "(record)", et, at);
	free(et);
	free(at);
	return 0;
}

/* Any "<<NaN>>" left means a defective read without a documented fix. */
static int has_nan(json_object *o)
{
	if (json_object_is_type(o, json_type_string))
		return !strcmp(json_object_get_string(o), "<<NaN>>");
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v) {
			(void)k;
			if (has_nan(v))
				return 1;
		}
	}
	if (json_object_is_type(o, json_type_array))
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (has_nan(json_object_array_get_idx(o, i)))
				return 1;
	return 0;
}

/* ---- the decode cases ---------------------------------------------------------- */

/* Decodes every record object of one dump directory; aws selects the AWS
 * form of the header bytes.  Fails with every mismatch found. */
static void decode_dump(const char *dir, int aws)
{
	golden g;
	golden_open(&g, dir);
	sbuf report;
	sbuf_init(&report);
	int used[NCORRECTIONS] = { 0 };
	size_t records = 0, from_log = 0, derived = 0;

	for (size_t i = 0; i < json_object_array_length(g.manifest); i++) {
		json_object *e = json_object_array_get_idx(g.manifest, i);
		char db[256], res[256], id[256], rec[800];
		if (!record_key(s3db_json_get_string(e, "key"), db, res, id, sizeof db))
			continue;
		records++;
		snprintf(rec, sizeof rec, "%s/%s/%s", db, res, id);

		json_object *dump = golden_file(dir, s3db_json_get_string(e, "file"));
		store_object obj;
		object_from_dump(dump, aws, &obj);
		int v74 = 0;
		schema *s = golden_schema_v(&g, db, res, record_object_version(&obj), &v74);
		json_object *got = NULL;
		s3db_error err = { 0 };
		s3db_code rc = record_decode(s, &obj, id, golden_passphrase(&g, db), v74, &got, &err);

		json_object *logged = log_last_state(&g, db, id);
		json_object *der = get(g.derived, rec);
		json_object *expected = NULL;
		if (logged && der) {
			sbuf_printf(&report, "%s: derived/expected.json has an entry although the log "
			            "shows the record\n", rec);
		} else if (logged) {
			expected = clean_logged(logged);
			unabbreviate(&g, db, id, expected);
			from_log++;
		} else if (der) {
			expected = deep_copy(get(der, "value"));
			derived++;
		} else {
			sbuf_printf(&report, "%s: no expected value (neither in the log nor derived)\n", rec);
		}
		if (expected)
			apply_corrections(&g, rec, expected, used, &report);

		if (rc != S3DB_OK) {
			sbuf_printf(&report, "%s: record_decode: %s\n", rec, err.message);
		} else if (expected && has_nan(expected)) {
			sbuf_printf(&report, "%s: s3db.js read NaN and no correction says what is right\n",
			            rec);
		} else if (expected) {
			sbuf line;
			sbuf_init(&line);
			if (!json_match(s, "", expected, got, &line))
				sbuf_printf(&report, "%s: %s\n", rec, line.data);
			sbuf_free(&line);
		}
		json_object_put(expected);
		json_object_put(got);
		schema_free(s);
		store_object_free(&obj);
		json_object_put(dump);
	}
	for (size_t i = 0; i < NCORRECTIONS; i++)
		if (dir_listed(corrections[i].dirs, dir) && used[i] != 1)
			sbuf_printf(&report, "correction %s.%s applied %d times (expected once)\n",
			            corrections[i].record, corrections[i].field, used[i]);
	size_t nderived = (size_t)json_object_object_length(g.derived);
	if (derived != nderived)
		sbuf_printf(&report, "derived/expected.json has %zu entries for %s, %zu used\n",
		            nderived, dir, derived);
	if (records == 0 || from_log == 0)
		sbuf_printf(&report, "no record objects found in %s\n", dir);
	golden_close(&g);
	if (report.len) {
		fprintf(stderr, "%s", report.data);
		atf_tc_fail("%s (%s bytes): %.900s", dir, aws ? "AWS" : "s3rver", report.data);
	}
	printf("%s: %zu records checked (%zu against the log, %zu derived)\n", dir, records,
	       from_log, derived);
	sbuf_free(&report);
}

ATF_TC_WITHOUT_HEAD(v7_3_5_records_read_as_s3db_get_returned_them_from_s3rver_bytes);
ATF_TC_BODY(v7_3_5_records_read_as_s3db_get_returned_them_from_s3rver_bytes, tc)
{
	decode_dump("v7.3.5", 0);
}

ATF_TC_WITHOUT_HEAD(v7_3_5_records_read_as_s3db_get_returned_them_from_aws_bytes);
ATF_TC_BODY(v7_3_5_records_read_as_s3db_get_returned_them_from_aws_bytes, tc)
{
	decode_dump("v7.3.5", 1);
}

ATF_TC_WITHOUT_HEAD(v7_4_2_records_read_as_s3db_get_returned_them_from_s3rver_bytes);
ATF_TC_BODY(v7_4_2_records_read_as_s3db_get_returned_them_from_s3rver_bytes, tc)
{
	decode_dump("v7.4.2", 0);
}

ATF_TC_WITHOUT_HEAD(v7_4_2_records_read_as_s3db_get_returned_them_from_aws_bytes);
ATF_TC_BODY(v7_4_2_records_read_as_s3db_get_returned_them_from_aws_bytes, tc)
{
	decode_dump("v7.4.2", 1);
}

ATF_TC_WITHOUT_HEAD(v21_6_2_records_read_as_s3db_get_returned_them_from_s3rver_bytes);
ATF_TC_BODY(v21_6_2_records_read_as_s3db_get_returned_them_from_s3rver_bytes, tc)
{
	decode_dump("latest-21.6.2", 0);
}

ATF_TC_WITHOUT_HEAD(v21_6_2_records_read_as_s3db_get_returned_them_from_aws_bytes);
ATF_TC_BODY(v21_6_2_records_read_as_s3db_get_returned_them_from_aws_bytes, tc)
{
	decode_dump("latest-21.6.2", 1);
}

/* v7.3 sent U+0080-U+00FF as raw Latin-1 bytes (B.5.1).  The dumps hold no
 * such object (7.3.5's user-latin1 was deleted by the scenario), so this
 * one is rebuilt from the scenario: the values `insert user-latin1`
 * returned, encoded as 7.3.5 encodes them (map of users, B.4/B.5), with
 * the name's bytes as s3rver returns them (UTF-8: edge-cases.json
 * text_latin1 shows s3rver answering cafe-acute as C3 A9), as Latin-1
 * bytes, and as AWS's RFC 2047 word — each in the dumper's
 * {rawLatin1, bytesHex, asUtf8} form. */
ATF_TC_WITHOUT_HEAD(v7_3_latin1_value_reads_from_raw_utf8_latin1_and_rfc2047_bytes);
ATF_TC_BODY(v7_3_latin1_value_reads_from_raw_utf8_latin1_and_rfc2047_bytes, tc)
{
	golden g;
	golden_open(&g, "v7.3.5");
	json_object *inserted = NULL;
	for (size_t i = 0; i < json_object_array_length(g.log); i++) {
		json_object *e = json_object_array_get_idx(g.log, i);
		if (!strcmp(s3db_json_get_string(e, "step"), "insert user-latin1"))
			inserted = get(e, "result");
	}
	ATF_REQUIRE(inserted != NULL);
	ATF_REQUIRE_STREQ(s3db_json_get_string(inserted, "name"), "Jos\xc3\xa9 \xc3\x91\xc3\xba\xc3\xb1" "ez");
	static const char *const forms[] = {
		/* UTF-8 bytes (s3rver) */
		"{\"rawLatin1\":\"x\",\"bytesHex\":\"4a6f73c3a920c391c3bac3b1657a\",\"asUtf8\":\"x\"}",
		/* Latin-1 bytes as sent */
		"{\"rawLatin1\":\"x\",\"bytesHex\":\"4a6f73e920d1faf1657a\",\"asUtf8\":\"x\"}",
	};
	for (int aws = 0; aws <= 1; aws++) {
		for (size_t f = 0; f < 2; f++) {
			char *text = s3db_asprintf(
			    "{\"key\":\"databases/demo/resource=users/data/id=user-latin1\","
			    "\"contentType\":\"application/json\",\"contentLength\":0,\"bodyBase64\":\"\","
			    "\"metadata\":{\"x-amz-meta-0\":%s,\"x-amz-meta-1\":\"jose@example.com\","
			    "\"x-amz-meta-2\":\"-G\",\"x-amz-meta-5\":\"0\",\"x-amz-meta-f\":\"europe\","
			    "\"x-amz-meta-h\":\"2026-11-26T23:57:31.942Z\","
			    "\"x-amz-meta-i\":\"2026-11-26T23:57:31.942Z\",\"x-amz-meta-_v\":\"v0\"}}",
			    forms[f]);
			json_object *dump = J(text);
			free(text);
			store_object obj;
			object_from_dump(dump, aws, &obj);
			if (aws) {
				/* the wire form really was an encoded word */
				char *bytes = header_bytes(get(get(dump, "metadata"), "x-amz-meta-0"));
				char *wire = aws_header(bytes);
				ATF_REQUIRE(s3db_str_starts(wire, "=?UTF-8?B?"));
				free(bytes);
				free(wire);
			}
			schema *s = golden_schema(&g, "demo", "users", "v0");
			json_object *got = NULL;
			s3db_error err = { 0 };
			CHECK_OK(record_decode(s, &obj, "user-latin1", "my-passphrase", g.v74, &got, &err),
			         &err);
			json_object *expected = clean_logged(inserted);
			sbuf line;
			sbuf_init(&line);
			if (!json_match(s, "", expected, got, &line))
				atf_tc_fail("form %zu (%s): %s", f, aws ? "AWS" : "s3rver", line.data);
			sbuf_free(&line);
			json_object_put(expected);
			json_object_put(got);
			schema_free(s);
			store_object_free(&obj);
			json_object_put(dump);
		}
	}
	golden_close(&g);
}

/* ---- encoding the 21.6.2 demo records ----------------------------------------- */

/* The first record with that id a successful demo step returned: what the
 * insert (or upsert / insertMany) returned.  Borrowed. */
static json_object *log_first_state(golden *g, const char *db, const char *id)
{
	for (size_t i = 0; i < json_object_array_length(g->log); i++) {
		json_object *e = json_object_array_get_idx(g->log, i);
		char sdb[128];
		step_db(s3db_json_get_string(e, "step"), sdb, sizeof sdb);
		json_object *ok = get(e, "ok"), *r = get(e, "result");
		if (strcmp(sdb, db) != 0 || !ok || !json_object_get_boolean(ok))
			continue;
		if (json_object_is_type(r, json_type_object) && record_in(r, id))
			return r;
		if (json_object_is_type(r, json_type_array))
			for (size_t j = 0; j < json_object_array_length(r); j++)
				if (record_in(json_object_array_get_idx(r, j), id))
					return json_object_array_get_idx(r, j);
	}
	return NULL;
}

/* Validates and encodes input for 21.6.2's demo resource res. */
static void encode_for(golden *g, const char *db, const char *res, const char *id,
                       json_object *input, const char *passphrase, record_encoded *out)
{
	schema *s = golden_schema(g, db, res, NULL);
	json_object *valid = NULL;
	s3db_error err = { 0 };
	CHECK_OK(schema_validate(s, input, &valid, &err), &err);
	record_encoded_init(out);
	CHECK_OK(record_encode(s, valid, id, passphrase, out, &err), &err);
	json_object_put(valid);
	schema_free(s);
}

/* The 21.6.2 demo records: resource, id, the dump keys that a deliberate
 * deviation makes us write differently (checked by their own cases). */
typedef struct demo_record {
	const char *res, *id;
	const char *deviating[10];
} demo_record;

static const demo_record demo_records[] = {
	{ "articles", "article-big", { NULL } },
	{ "articles", "article-small", { NULL } },
	{ "docs", "doc-1", { NULL } },
	{ "files", "5p7_J7Sd", { "_contentlength", "_definitionhash", "_etag", "_hascontent",
	                         "_lastmodified", "_mimetype", "_originalversion", "_versionmapped",
	                         "id", NULL } },          /* R9: setContent's bookkeeping */
	{ "notes", "note-long", { "1", NULL } },            /* R12 */
	{ "products", "product-ok", { NULL } },
	{ "users", "D75tFsHEM_bxQM2abx0FOZ", { "c", "e", NULL } }, /* R8 */
	{ "users", "bulk-1", { "c", "e", NULL } },
	{ "users", "user-9", { "c", "e", NULL } },
	{ "users", "user-cjk", { "c", "e", NULL } },
};
#define NDEMO (sizeof demo_records / sizeof demo_records[0])

static int listed(const char *const *list, const char *key)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcmp(list[i], key))
			return 1;
	return 0;
}

/* The input of a demo record: what its insert returned, without
 * bookkeeping.  note-long's insert returned the truncated text; its input
 * was 3000 'y' (spec §3.13, "notes/note-long (truncate-data, text =
 * 3000x"y")"). */
static json_object *demo_input(golden *g, const demo_record *r)
{
	json_object *first = log_first_state(g, "demo", r->id);
	if (!first)
		atf_tc_fail("the log has no insert of %s", r->id);
	json_object *in = clean_logged(first);
	if (!strcmp(r->id, "note-long")) {
		char y[3001];
		memset(y, 'y', 3000);
		y[3000] = '\0';
		json_object_object_add(in, "text", json_object_new_string(y));
	}
	return in;
}

/* Encodes a demo record again.  Timestamps depend on the time of the
 * insert: createdAt/updatedAt of the input are set to the values decoded
 * from the dumped object (they must agree with what the insert returned). */
static void demo_encode(golden *g, const demo_record *r, record_encoded *out, json_object **dump)
{
	char key[256];
	snprintf(key, sizeof key, "databases/demo/resource=%s/data/id=%s", r->res, r->id);
	*dump = golden_object(g, key);
	if (!*dump)
		atf_tc_fail("no dump of %s", key);
	json_object *in = demo_input(g, r);
	schema *s = golden_schema(g, "demo", r->res, NULL);
	if (s->timestamps) {
		store_object obj;
		object_from_dump(*dump, 0, &obj);
		json_object *stored = NULL;
		s3db_error err = { 0 };
		CHECK_OK(record_decode(s, &obj, r->id, "secret", 0, &stored, &err), &err);
		static const char *const ts[] = { "createdAt", "updatedAt" };
		for (int i = 0; i < 2; i++) {
			json_object *v = get(stored, ts[i]);
			ATF_REQUIRE_MSG(v && json_object_equal(v, get(in, ts[i])),
			                "%s: %s of the dump differs from the insert's", r->id, ts[i]);
			json_object_object_add(in, ts[i], json_object_get(v));
		}
		json_object_put(stored);
		store_object_free(&obj);
	}
	schema_free(s);
	encode_for(g, "demo", r->res, r->id, in, "secret", out);
	json_object_put(in);
}

ATF_TC_WITHOUT_HEAD(v21_6_2_demo_records_encode_to_the_dumped_metadata_byte_for_byte);
ATF_TC_BODY(v21_6_2_demo_records_encode_to_the_dumped_metadata_byte_for_byte, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	sbuf report;
	sbuf_init(&report);
	for (size_t i = 0; i < NDEMO; i++) {
		const demo_record *r = &demo_records[i];
		record_encoded enc;
		json_object *dump;
		demo_encode(&g, r, &enc, &dump);
		json_object *meta = get(dump, "metadata");
		json_object_object_foreach(meta, k, v) {
			const char *key = k + 11;
			if (listed(r->deviating, key))
				continue;
			const char *ours = store_meta_get(&enc.meta, key);
			if (!ours)
				sbuf_printf(&report, "%s: header %s missing (s3db.js wrote %.60s)\n", r->id,
				            key, json_object_get_string(v));
			else if (strcmp(ours, json_object_get_string(v)) != 0)
				sbuf_printf(&report, "%s: header %s is %.60s, s3db.js wrote %.60s\n", r->id,
				            key, ours, json_object_get_string(v));
		}
		for (size_t j = 0; j < enc.meta.count; j++) {
			const char *key = enc.meta.items[j].key;
			char full[256];
			snprintf(full, sizeof full, "x-amz-meta-%s", key);
			if (!get(meta, full) && !listed(r->deviating, key))
				sbuf_printf(&report, "%s: we write header %s that s3db.js did not\n", r->id,
				            key);
		}
		record_encoded_free(&enc);
		json_object_put(dump);
	}
	golden_close(&g);
	if (report.len)
		atf_tc_fail("%.1500s", report.data);
	sbuf_free(&report);
}

/* Bodies and content types: body-overflow (article-big overflows,
 * article-small does not), body-only (doc-1), and the empty bodies of the
 * metadata-only behaviors.  files' body is setContent's binary content,
 * not a record_encode matter. */
ATF_TC_WITHOUT_HEAD(v21_6_2_demo_bodies_encode_byte_for_byte);
ATF_TC_BODY(v21_6_2_demo_bodies_encode_byte_for_byte, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	size_t nonempty = 0;
	for (size_t i = 0; i < NDEMO; i++) {
		const demo_record *r = &demo_records[i];
		if (!strcmp(r->res, "files"))
			continue;
		record_encoded enc;
		json_object *dump;
		demo_encode(&g, r, &enc, &dump);
		size_t n = 0;
		unsigned char *body = codec_base64_decode(s3db_json_get_string(dump, "bodyBase64"), &n);
		ATF_REQUIRE(body != NULL);
		if (n != enc.body.len || (n && memcmp(body, enc.body.data, n) != 0))
			atf_tc_fail("%s: body differs: ours %zu bytes \"%.60s...\", s3db.js %zu bytes "
			            "\"%.60s...\"", r->id, enc.body.len, enc.body.len ? enc.body.data : "",
			            n, (char *)body);
		if (n) {
			nonempty++;
			ATF_REQUIRE_STREQ(s3db_json_get_string(dump, "contentType"), "application/json");
			if (!enc.content_type || strcmp(enc.content_type, "application/json") != 0)
				atf_tc_fail("%s: JSON body without Content-Type application/json", r->id);
		} else if (enc.content_type) {
			atf_tc_fail("%s: Content-Type %s on an empty body", r->id, enc.content_type);
		}
		free(body);
		record_encoded_free(&enc);
		json_object_put(dump);
	}
	ATF_REQUIRE_EQ(nonempty, 2); /* article-big and doc-1 */
	golden_close(&g);
}

/* R8: 21.6.2 writes an absent json attribute as the header `undefined`
 * and an absent secret as the encryption of "undefined".  We write
 * neither; both read back as absent. */
ATF_TC_WITHOUT_HEAD(v21_6_2_deviation_r8_undefined_artefacts_are_not_written);
ATF_TC_BODY(v21_6_2_deviation_r8_undefined_artefacts_are_not_written, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	size_t users = 0;
	for (size_t i = 0; i < NDEMO; i++) {
		const demo_record *r = &demo_records[i];
		if (strcmp(r->res, "users") != 0)
			continue;
		users++;
		record_encoded enc;
		json_object *dump;
		demo_encode(&g, r, &enc, &dump);
		json_object *meta = get(dump, "metadata");
		ATF_REQUIRE_STREQ(s3db_json_get_string(meta, "x-amz-meta-c"), "undefined");
		char *plain = NULL;
		s3db_error err = { 0 };
		CHECK_OK(secret_decrypt("secret", s3db_json_get_string(meta, "x-amz-meta-e"), &plain,
		                        &err), &err);
		ATF_REQUIRE_STREQ(plain, "undefined");
		free(plain);
		ATF_REQUIRE_MSG(store_meta_get(&enc.meta, "c") == NULL, "%s: we wrote meta", r->id);
		ATF_REQUIRE_MSG(store_meta_get(&enc.meta, "e") == NULL, "%s: we wrote password", r->id);
		/* and the dumped artefacts read as absent */
		store_object obj;
		object_from_dump(dump, 0, &obj);
		schema *s = golden_schema(&g, "demo", "users", NULL);
		json_object *got = NULL;
		CHECK_OK(record_decode(s, &obj, r->id, "secret", 0, &got, &err), &err);
		ATF_REQUIRE(!json_object_object_get_ex(got, "meta", NULL));
		ATF_REQUIRE(!json_object_object_get_ex(got, "password", NULL));
		json_object_put(got);
		schema_free(s);
		store_object_free(&obj);
		record_encoded_free(&enc);
		json_object_put(dump);
	}
	ATF_REQUIRE_EQ(users, 4);
	golden_close(&g);
}

/* R9: setContent rewrote files/5p7_J7Sd with read-side bookkeeping
 * (_contentlength, _etag, id, ...).  record_encode writes the fields and
 * _v only. */
ATF_TC_WITHOUT_HEAD(v21_6_2_deviation_r9_bookkeeping_is_not_written);
ATF_TC_BODY(v21_6_2_deviation_r9_bookkeeping_is_not_written, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	record_encoded enc;
	json_object *dump;
	demo_encode(&g, &demo_records[3], &enc, &dump);
	ATF_REQUIRE_STREQ(demo_records[3].id, "5p7_J7Sd");
	json_object *meta = get(dump, "metadata");
	for (size_t i = 0; demo_records[3].deviating[i]; i++) {
		char full[128];
		snprintf(full, sizeof full, "x-amz-meta-%s", demo_records[3].deviating[i]);
		ATF_REQUIRE_MSG(get(meta, full) != NULL, "the dump has no %s", full);
		ATF_REQUIRE_MSG(store_meta_get(&enc.meta, demo_records[3].deviating[i]) == NULL,
		                "we wrote %s", demo_records[3].deviating[i]);
	}
	ATF_REQUIRE_EQ(enc.meta.count, 2);
	ATF_REQUIRE_STREQ(store_meta_get(&enc.meta, "0"), "hello.txt");
	ATF_REQUIRE_STREQ(store_meta_get(&enc.meta, "_v"), "v1");
	record_encoded_free(&enc);
	json_object_put(dump);
	golden_close(&g);
}

/* R12: 21.6.2's truncate-data blanked note-long's text although about
 * 2000 bytes were free.  We keep the longest prefix that fits the 2047-byte
 * budget exactly: keys + values of {0:T, 1:y..., _truncated:true, _v:v1}
 * = 2 + (1 + n) + 14 + 4 = 2047, so n = 2026. */
ATF_TC_WITHOUT_HEAD(v21_6_2_deviation_r12_truncate_data_keeps_a_prefix);
ATF_TC_BODY(v21_6_2_deviation_r12_truncate_data_keeps_a_prefix, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	record_encoded enc;
	json_object *dump;
	demo_encode(&g, &demo_records[4], &enc, &dump);
	ATF_REQUIRE_STREQ(demo_records[4].id, "note-long");
	json_object *meta = get(dump, "metadata");
	ATF_REQUIRE_STREQ(s3db_json_get_string(meta, "x-amz-meta-1"), ""); /* the defect */
	const char *text = store_meta_get(&enc.meta, "1");
	ATF_REQUIRE(text != NULL);
	ATF_REQUIRE_EQ(strlen(text), 2026);
	ATF_REQUIRE(strspn(text, "y") == 2026);
	ATF_REQUIRE_STREQ(store_meta_get(&enc.meta, "_truncated"), "true");
	ATF_REQUIRE(enc.truncated);
	ATF_REQUIRE_EQ(store_meta_size(&enc.meta), 2047);
	ATF_REQUIRE_EQ(enc.body.len, 0);
	record_encoded_free(&enc);
	json_object_put(dump);
	golden_close(&g);
}

/* §3.12/§3.13: enforce-limits refuses when size(M) > L, M with short keys.
 * demo products (name 0, description 1, price 2), id product-ok:
 * L = 2047 - (2+2) - (2+10) = 2031 and T = 4 + (1+1) + (1+n) + (1+1) =
 * 9 + n, so n = 2022 is the longest description s3db.js accepts (the
 * dump's product-too-big, n = 3000, was refused). */
ATF_TC_WITHOUT_HEAD(v21_6_2_enforce_limits_boundary_counts_short_keys);
ATF_TC_BODY(v21_6_2_enforce_limits_boundary_counts_short_keys, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	schema *s = golden_schema(&g, "demo", "products", NULL);
	for (size_t n = 2021; n <= 2023; n++) {
		char *d = malloc(n + 1);
		ATF_REQUIRE(d != NULL);
		memset(d, 'd', n);
		d[n] = '\0';
		char *text = s3db_asprintf("{\"name\":\"n\",\"description\":\"%s\",\"price\":1}", d);
		json_object *in = J(text), *valid = NULL;
		s3db_error err = { 0 };
		CHECK_OK(schema_validate(s, in, &valid, &err), &err);
		record_encoded enc;
		record_encoded_init(&enc);
		s3db_code rc = record_encode(s, valid, "product-ok", "secret", &enc, &err);
		if (n <= 2022) {
			CHECK_OK(rc, &err);
			ATF_REQUIRE_EQ(store_meta_size(&enc.meta), 9 + n);
		} else {
			ATF_REQUIRE_EQ_MSG(rc, S3DB_ERR_METADATA_TOO_LARGE, "n = %zu: %s", n, err.message);
		}
		record_encoded_free(&enc);
		json_object_put(valid);
		json_object_put(in);
		free(text);
		free(d);
	}
	schema_free(s);
	golden_close(&g);
}

/* The plugin records that the log shows through getAuditLogs/getMetrics
 * re-encode to the same bytes too: plg_metrics (§6.5 example, avgTime
 * 20.5 -> k.5, totalTime 41 -> F) from its derived value, and the audit
 * insert row of p1 (§6.3 example). */
ATF_TC_WITHOUT_HEAD(v21_6_2_plugin_records_encode_to_the_dumped_metadata);
ATF_TC_BODY(v21_6_2_plugin_records_encode_to_the_dumped_metadata, tc)
{
	golden g;
	golden_open(&g, "latest-21.6.2");
	static const struct {
		const char *db, *res, *id;
	} recs[] = {
		{ "plugin-metrics", "plg_metrics", "metrics-1795738683561-zqmve1c2s" },
		{ "plugin-metrics", "plg_metrics_performance", "perf-1795738683816-jwuyfd2s7" },
		{ "plugin-fulltext", "plg_fulltext_indexes", "index-1795738656666-0baydyblf" },
		{ "plugin-metrics2", "plg_metrics", "metrics-1795738724451-ouqj2jp6t" },
		{ "plugin-audit", "plg_audits", "audit-1795738632039-b6a4mkd5k" },
	};
	for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
		char rec[256], key[300];
		snprintf(rec, sizeof rec, "%s/%s/%s", recs[i].db, recs[i].res, recs[i].id);
		snprintf(key, sizeof key, "databases/%s/resource=%s/data/id=%s", recs[i].db,
		         recs[i].res, recs[i].id);
		json_object *in = NULL;
		json_object *logged = log_last_state(&g, recs[i].db, recs[i].id);
		if (logged) {
			in = clean_logged(logged);
			/* R2: the log shows string attributes holding JSON text
			 * parsed; the input was that text (taken uncleaned) */
			schema *s = golden_schema(&g, recs[i].db, recs[i].res, NULL);
			json_object_object_foreach(logged, k, v) {
				const attr *a = schema_attr_by_path(s, k);
				if (a && a->kind == KIND_STRING && json_object_is_type(v, json_type_object)) {
					char *t = stringify(v);
					json_object_object_add(in, k, json_object_new_string(t));
					free(t);
				}
			}
			schema_free(s);
		} else {
			in = deep_copy(get(get(g.derived, rec), "value"));
		}
		ATF_REQUIRE_MSG(in != NULL, "no value for %s", rec);
		json_object *dump = golden_object(&g, key);
		ATF_REQUIRE(dump != NULL);
		record_encoded enc;
		encode_for(&g, recs[i].db, recs[i].res, recs[i].id, in, "secret", &enc);
		json_object *meta = get(dump, "metadata");
		size_t n = 0;
		json_object_object_foreach(meta, k, v) {
			const char *ours = store_meta_get(&enc.meta, k + 11);
			n++;
			if (!ours || strcmp(ours, json_object_get_string(v)) != 0)
				atf_tc_fail("%s: header %s: ours %.80s, s3db.js %.80s", rec, k + 11,
				            ours ? ours : "(none)", json_object_get_string(v));
		}
		ATF_REQUIRE_EQ_MSG(enc.meta.count, n, "%s: we write %zu headers, s3db.js %zu", rec,
		                   enc.meta.count, n);
		record_encoded_free(&enc);
		json_object_put(dump);
		json_object_put(in);
	}
	golden_close(&g);
}

/* ---- v7 edge cases (edge-cases.json) ------------------------------------------ */

/* A v7 catalogue entry for one version v0 (attributes JSON text). */
static schema *v7_schema(const char *name, const char *attributes, const char *behavior)
{
	char *text = s3db_asprintf("{\"currentVersion\":\"v0\",\"partitions\":{},\"versions\":{\"v0\":"
	                           "{\"attributes\":%s,\"behavior\":\"%s\",\"timestamps\":false,"
	                           "\"partitions\":{}}}}", attributes, behavior);
	json_object *entry = J(text);
	free(text);
	schema *s = NULL;
	s3db_error err = { 0 };
	CHECK_OK(schema_compile(name, entry, "v0", FORMAT_V7, &s, &err), &err);
	json_object_put(entry);
	return s;
}

/* The "wide" resource of the edge test: f00..f39, all strings. */
static schema *wide_schema(const char *behavior, schema_format format)
{
	sbuf a;
	sbuf_init(&a);
	sbuf_putc(&a, '{');
	for (int i = 0; i < 40; i++)
		sbuf_printf(&a, "%s\"f%02d\":\"string|optional\"", i ? "," : "", i);
	sbuf_putc(&a, '}');
	schema *s;
	if (format == FORMAT_V7) {
		s = v7_schema("wide", a.data, behavior);
	} else {
		/* 21.x without registry: indices by position (§2.2.4) */
		char *text = s3db_asprintf("{\"currentVersion\":\"v1\",\"partitions\":{},\"versions\":"
		                           "{\"v1\":{\"attributes\":%s,\"behavior\":\"%s\"}}}", a.data,
		                           behavior);
		json_object *entry = J(text);
		free(text);
		s3db_error err = { 0 };
		CHECK_OK(schema_compile("wide", entry, NULL, FORMAT_21, &s, &err), &err);
		json_object_put(entry);
	}
	sbuf_free(&a);
	return s;
}

/* The wide object as s3rver returned it: v7 wrote f<i> = v<i> under
 * base62(i); S3 lower-cases keys, so the upper-case keys A..D (36..39)
 * landed on a..d (10..13) and, written later, won (edge-cases.json
 * wideRoundTrip: f10 = "v36"). */
static void wide_object(store_object *o, int with_body)
{
	store_object_init(o);
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	for (int i = 0; i < 40; i++) {
		char key[2] = { (char)tolower((unsigned char)alphabet[i]), '\0' }, value[16];
		snprintf(value, sizeof value, "v%02d", i);
		ATF_REQUIRE(store_meta_set(&o->meta, key, value) == 0);
	}
	ATF_REQUIRE(store_meta_set(&o->meta, "_v", "v0") == 0);
	if (with_body) {
		/* user-managed: v7 also writes the record with names (B.6) */
		sbuf b;
		sbuf_init(&b);
		sbuf_putc(&b, '{');
		for (int i = 0; i < 40; i++)
			sbuf_printf(&b, "%s\"f%02d\":\"v%02d\"", i ? "," : "", i, i);
		sbuf_putc(&b, '}');
		o->body_len = b.len;
		o->size = (int64_t)b.len;
		o->body = (unsigned char *)sbuf_steal(&b);
		o->content_type = strdup("application/json");
	}
}

ATF_TC_WITHOUT_HEAD(v7_edge_40_attribute_key_collision_is_reported_as_ambiguous);
ATF_TC_BODY(v7_edge_40_attribute_key_collision_is_reported_as_ambiguous, tc)
{
	json_object *edge = golden_file("v7.3.5", "edge-cases.json");
	json_object *mism = get(get(edge, "wideRoundTrip"), "mismatches");
	ATF_REQUIRE_EQ(json_object_array_length(mism), 8);
	ATF_REQUIRE_STREQ(s3db_json_get_string(get(edge, "wideRoundTrip"), "f10"), "v36");
	ATF_REQUIRE_STREQ(s3db_json_get_string(get(edge, "wideMapTail"), "f36"), "A");

	schema *s = wide_schema("body-overflow", FORMAT_V7);
	store_object obj;
	wide_object(&obj, 0);
	json_object *got = NULL;
	s3db_error err = { 0 };
	CHECK_OK(record_decode(s, &obj, "w1", "secret", 0, &got, &err), &err);
	/* the colliding fields are not guessed ... */
	for (size_t i = 0; i < json_object_array_length(mism); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(mism, i));
		ATF_REQUIRE_MSG(!json_object_object_get_ex(got, f, NULL), "%s was guessed: %s", f,
		                json_object_to_json_string(get(got, f)));
	}
	/* ... they are reported, in schema order ... */
	json_object *amb = get(got, "$ambiguous");
	ATF_REQUIRE_MSG(amb != NULL, "no $ambiguous in %s", json_object_to_json_string(got));
	ATF_REQUIRE_STREQ(json_object_to_json_string_ext(amb, JSON_C_TO_STRING_PLAIN),
	                  "[\"f10\",\"f11\",\"f12\",\"f13\",\"f36\",\"f37\",\"f38\",\"f39\"]");
	/* ... and every other field is right */
	for (int i = 0; i < 40; i++) {
		char f[16], v[16];
		snprintf(f, sizeof f, "f%02d", i);
		snprintf(v, sizeof v, "v%02d", i);
		if ((i >= 10 && i <= 13) || i >= 36)
			continue;
		ATF_REQUIRE_MSG(s3db_json_get_string(got, f) && !strcmp(s3db_json_get_string(got, f), v),
		                "%s: %s", f, json_object_to_json_string(get(got, f)));
	}
	ATF_REQUIRE_EQ(json_object_object_length(got), 1 + 32 + 1); /* id, fields, $ambiguous */
	json_object_put(got);
	store_object_free(&obj);
	schema_free(s);

	/* 21.x keys are base36, lower-case: index 36 is "10", no collision */
	s = wide_schema("user-managed", FORMAT_21);
	ATF_REQUIRE_STREQ(schema_attr_by_path(s, "f36")->short_key, "10");
	ATF_REQUIRE_STREQ(schema_attr_by_path(s, "f10")->short_key, "a");
	schema_free(s);
	json_object_put(edge);
}

ATF_TC_WITHOUT_HEAD(v7_edge_40_attribute_collision_is_recovered_from_a_user_managed_body);
ATF_TC_BODY(v7_edge_40_attribute_collision_is_recovered_from_a_user_managed_body, tc)
{
	schema *s = wide_schema("user-managed", FORMAT_V7);
	store_object obj;
	wide_object(&obj, 1);
	json_object *got = NULL;
	s3db_error err = { 0 };
	CHECK_OK(record_decode(s, &obj, "w1", "secret", 0, &got, &err), &err);
	ATF_REQUIRE_MSG(!json_object_object_get_ex(got, "$ambiguous", NULL), "%s",
	                json_object_to_json_string(got));
	for (int i = 0; i < 40; i++) {
		char f[16], v[16];
		snprintf(f, sizeof f, "f%02d", i);
		snprintf(v, sizeof v, "v%02d", i);
		ATF_REQUIRE_MSG(s3db_json_get_string(got, f) && !strcmp(s3db_json_get_string(got, f), v),
		                "%s: %s", f, json_object_to_json_string(get(got, f)));
	}
	json_object_put(got);
	store_object_free(&obj);
	schema_free(s);
}

/* edge-cases.json secretVector (= spec §5.5 V1) and reconnectGet: the
 * secrets resource {s: secret} read back "top-secret-value". */
ATF_TC_WITHOUT_HEAD(v7_edge_secret_vector_decrypts);
ATF_TC_BODY(v7_edge_secret_vector_decrypts, tc)
{
	json_object *edge = golden_file("v7.3.5", "edge-cases.json");
	json_object *vec = get(edge, "secretVector");
	const char *pass = s3db_json_get_string(vec, "passphrase");
	const char *stored = s3db_json_get_string(vec, "stored");
	const char *plain_expected = s3db_json_get_string(vec, "decrypted");
	ATF_REQUIRE(pass && stored && plain_expected);
	ATF_REQUIRE_STREQ(s3db_json_get_string(get(edge, "reconnectGet"), "s"), plain_expected);

	char *plain = NULL;
	s3db_error err = { 0 };
	CHECK_OK(secret_decrypt(pass, stored, &plain, &err), &err);
	ATF_REQUIRE_STREQ(plain, plain_expected);
	free(plain);
	size_t n;
	unsigned char *raw = codec_base64_decode(stored, &n);
	ATF_REQUIRE_EQ((int64_t)n, json_object_get_int64(get(vec, "bytes")));
	free(raw);

	/* the record: header 0 holds the envelope; no body, so the value can
	 * only come from decryption */
	schema *s = v7_schema("secrets", "{\"s\":\"secret\"}", "body-overflow");
	ATF_REQUIRE_EQ(schema_attr_by_path(s, "s")->kind, KIND_SECRET);
	store_object obj;
	store_object_init(&obj);
	ATF_REQUIRE(store_meta_set(&obj.meta, "0", stored) == 0);
	ATF_REQUIRE(store_meta_set(&obj.meta, "_v", "v0") == 0);
	json_object *got = NULL;
	CHECK_OK(record_decode(s, &obj, "s1", pass, 0, &got, &err), &err);
	ATF_REQUIRE_STREQ(s3db_json_get_string(got, "s"), plain_expected);
	json_object_put(got);
	/* with the wrong passphrase s3db.js returns the ciphertext (§4.3) */
	CHECK_OK(record_decode(s, &obj, "s1", "secret", 0, &got, &err), &err);
	ATF_REQUIRE_STREQ(s3db_json_get_string(got, "s"), stored);
	json_object_put(got);
	store_object_free(&obj);
	schema_free(s);
	json_object_put(edge);
}

/* edge-cases.json texts: v7.3 sends values raw; TAB survives, text that
 * looks like a 21.x prefix is literal (B.5.1: never metadataDecode a v7
 * value), and s3rver's UTF-8 answer for cafe-acute is read as UTF-8 (v7
 * itself read "cafÃ©": text_latin1.same = false). */
ATF_TC_WITHOUT_HEAD(v7_edge_texts_read_back_as_written);
ATF_TC_BODY(v7_edge_texts_read_back_as_written, tc)
{
	json_object *edge = golden_file("v7.3.5", "edge-cases.json");
	ATF_REQUIRE_STREQ(s3db_json_get_string(get(edge, "text_tab"), "back"), "a\tb");
	ATF_REQUIRE_STREQ(s3db_json_get_string(get(edge, "text_percent"), "back"), "100% u:x b:y");
	ATF_REQUIRE_STREQ(s3db_json_get_string(get(edge, "text_latin1"), "back"), "caf\xc3\x83\xc2\xa9");
	static const struct {
		const char *header, *expected;
	} t[] = {
		{ "a\tb", "a\tb" },
		{ "100% u:x b:y", "100% u:x b:y" },
		{ "u:caf%C3%A9", "u:caf%C3%A9" },
		{ "b:dTp4", "b:dTp4" },
		{ "d:c", "d:c" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" }, /* s3rver's bytes for cafe-acute */
		{ "caf\xe9", "caf\xc3\xa9" },     /* the Latin-1 byte v7.3 sent */
	};
	schema *s = v7_schema("texts", "{\"t\":\"string\"}", "body-overflow");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		store_object obj;
		store_object_init(&obj);
		ATF_REQUIRE(store_meta_set(&obj.meta, "0", t[i].header) == 0);
		json_object *got = NULL;
		s3db_error err = { 0 };
		CHECK_OK(record_decode(s, &obj, "t1", "secret", 0, &got, &err), &err);
		ATF_REQUIRE_STREQ_MSG(s3db_json_get_string(got, "t"), t[i].expected, "header %s",
		                      t[i].header);
		json_object_put(got);
		store_object_free(&obj);
	}
	schema_free(s);
	json_object_put(edge);
}

/* B.5.2: 7.4.1+ wrote non-ASCII values as unprefixed base64 and reads
 * back any value that is canonical base64 of non-ASCII UTF-8 — "asia"
 * among them (j + U+021A).  A user-managed body holds the value in clear
 * and settles it; without a body the heuristic stands. */
ATF_TC_WITHOUT_HEAD(v7_4_base64_heuristic_is_settled_by_the_user_managed_body);
ATF_TC_BODY(v7_4_base64_heuristic_is_settled_by_the_user_managed_body, tc)
{
	static const struct {
		const char *behavior, *header, *body, *expected;
	} t[] = {
		{ "user-managed", "asia", "{\"t\":\"asia\"}", "asia" },
		{ "user-managed", "5pel5pys6KqeIOODhuOCreOCueODiCDwn5iA",
		  "{\"t\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3"
		  "\x83\x88 \xf0\x9f\x98\x80\"}",
		  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 "
		  "\xf0\x9f\x98\x80" },
		{ "body-overflow", "asia", "{}", "j\xc8\x9a" },
		{ "body-overflow", "5pel5pys6KqeIOODhuOCreOCueODiCDwn5iA", "{}",
		  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 "
		  "\xf0\x9f\x98\x80" },
		{ "user-managed", "plain", "{\"t\":\"plain\"}", "plain" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		schema *s = v7_schema("texts", "{\"t\":\"string\"}", t[i].behavior);
		store_object obj;
		store_object_init(&obj);
		ATF_REQUIRE(store_meta_set(&obj.meta, "0", t[i].header) == 0);
		ATF_REQUIRE(store_meta_set(&obj.meta, "_v", "v0") == 0);
		obj.body = (unsigned char *)strdup(t[i].body);
		obj.body_len = strlen(t[i].body);
		obj.size = (int64_t)obj.body_len;
		json_object *got = NULL;
		s3db_error err = { 0 };
		CHECK_OK(record_decode(s, &obj, "t1", "secret", 1, &got, &err), &err);
		ATF_REQUIRE_STREQ_MSG(s3db_json_get_string(got, "t"), t[i].expected, "row %zu", i);
		json_object_put(got);
		store_object_free(&obj);
		schema_free(s);
	}
}

/* ---- spec §8.5: v7 decode vectors ------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(v7_decode_vectors_of_spec_8_5);
ATF_TC_BODY(v7_decode_vectors_of_spec_8_5, tc)
{
	static const struct {
		const char *dir, *key, *header, *stored, *field, *expected;
	} t[] = {
		{ "v7.3.5", "databases/demo/resource=users/data/id=8CvR_pC6U_wZ_RJb1NzBVp", "2", "0.5",
		  "age", "0.5" },
		{ "v7.3.5", "databases/demo/resource=users/data/id=user-1", "4", "jU.56", "balance",
		  "1234.56" },
		{ "v7.3.5", "databases/demo/resource=products/data/id=product-ok", "2", "9.99", "price",
		  "9.99" },
		{ "v7.3.5", "databases/demo/resource=users/data/id=user-1", "3", "4c92", "score",
		  "1000000" },
		{ "v7.3.5", "databases/demo/resource=users/data/id=user-1", "7", "1.5|2|-3.25",
		  "ratings", "[1.5,2,-3.25]" },
		{ "v7.3.5", "databases/demo/resource=users/data/id=user-1", "d",
		  "\"1990-05-15T00:00:00.000Z\"", "birthDate", "\"1990-05-15T00:00:00.000Z\"" },
		{ "v7.3.5", "databases/demo/resource=users/data/id=user-1", "h",
		  "2026-11-26T23:57:31.698Z", "createdAt", "\"2026-11-26T23:57:31.698Z\"" },
		{ "v7.3.5", "databases/demo/resource=users/data/id=user-1", "e",
		  "OYZaE27ncwFjfF15QspeRNTP1i2ERw77xd3W1myBwt3D3DvJuRaQgVohsXbEQv6pZnhJ", "password",
		  "\"hunter2\"" },
		{ "v7.4.2", "databases/demo/resource=users/data/id=user-cjk", "0",
		  "5pel5pys6KqeIOODhuOCreOCueODiCDwn5iA", "name",
		  "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 "
		  "\xf0\x9f\x98\x80\"" },
		{ "v7.3.5", "databases/demo/resource=notes/data/id=note-long", "1", "", "text", NULL },
		{ "v7.3.5", "databases/demo/resource=articles/data/id=article-small", "0", "Short",
		  "title", "\"Short\"" },
		{ "v7.3.5", "databases/demo/resource=articles/data/id=article-small", "1", "tiny",
		  "content", "\"tiny\"" },
		{ "v7.3.5", "databases/demo/resource=articles/data/id=article-small", "2", "7", "views",
		  "7" },
		{ "v7.3.5", "databases/demo/resource=articles/data/id=article-small", "3", "ann",
		  "author", "\"ann\"" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		golden g;
		golden_open(&g, t[i].dir);
		json_object *dump = golden_object(&g, t[i].key);
		ATF_REQUIRE_MSG(dump != NULL, "%s", t[i].key);
		char full[64];
		snprintf(full, sizeof full, "x-amz-meta-%s", t[i].header);
		ATF_REQUIRE_STREQ_MSG(s3db_json_get_string(get(dump, "metadata"), full), t[i].stored,
		                      "row %zu", i);
		char db[256], res[256], id[256];
		ATF_REQUIRE(record_key(t[i].key, db, res, id, sizeof db));
		store_object obj;
		object_from_dump(dump, 0, &obj);
		schema *s = golden_schema(&g, db, res, record_object_version(&obj));
		json_object *got = NULL;
		s3db_error err = { 0 };
		CHECK_OK(record_decode(s, &obj, id, golden_passphrase(&g, db), g.v74, &got, &err), &err);
		json_object *v = get(got, t[i].field);
		if (t[i].expected) {
			json_object *want = J(t[i].expected);
			sbuf line;
			sbuf_init(&line);
			if (!json_match(NULL, t[i].field, want, v, &line))
				atf_tc_fail("row %zu: %s", i, line.data);
			sbuf_free(&line);
			json_object_put(want);
		} else {
			/* note-long: 3000 'y' from the v7 truncate-data body */
			const char *text = json_object_get_string(v);
			ATF_REQUIRE(text && strlen(text) == 3000 && strspn(text, "y") == 3000);
		}
		json_object_put(got);
		schema_free(s);
		store_object_free(&obj);
		json_object_put(dump);
		golden_close(&g);
	}
}

/* ---- spec §8.1 / §8.2: record-level encode vectors ----------------------------- */

/* users of latest-21.6.2-extra (§8.1 heading): the demo users definition
 * without birthDate, with note, and the map of §8.1. */
static schema *users_extra_schema(void)
{
	json_object *entry = J(
	    "{\"currentVersion\":\"v1\",\"partitions\":{},\"versions\":{\"v1\":{\"attributes\":"
	    "{\"name\":\"string|required\",\"email\":\"email|required\",\"age\":\"number|optional\","
	    "\"score\":\"number|integer:true|optional\",\"balance\":\"number|optional\","
	    "\"active\":\"boolean|optional\",\"tags\":\"array|items:string|optional\","
	    "\"ratings\":\"array|items:number|optional\","
	    "\"counts\":\"array|items:number|integer:true|optional\","
	    "\"profile\":{\"$$type\":\"object|optional\",\"bio\":\"string|optional\","
	    "\"country\":\"string|optional\"},\"settings\":\"object|optional\","
	    "\"meta\":\"json|optional\",\"password\":\"secret|optional\","
	    "\"region\":\"string|optional\",\"website\":\"string|optional\","
	    "\"note\":\"string|optional\",\"createdAt\":\"datetime|optional\","
	    "\"updatedAt\":\"datetime|optional\"},\"behavior\":\"user-managed\",\"timestamps\":true,"
	    "\"partitions\":{}}},\"schemaRegistry\":{\"nextIndex\":20,\"mapping\":{\"name\":0,"
	    "\"email\":1,\"age\":2,\"score\":3,\"balance\":4,\"active\":5,\"tags\":6,\"ratings\":7,"
	    "\"counts\":8,\"profile.bio\":9,\"profile.country\":10,\"settings\":11,\"meta\":12,"
	    "\"password\":13,\"region\":14,\"website\":15,\"note\":16,\"createdAt\":17,"
	    "\"updatedAt\":18,\"profile\":19},\"burned\":[]}}");
	schema *s = NULL;
	s3db_error err = { 0 };
	CHECK_OK(schema_compile("users", entry, NULL, FORMAT_21, &s, &err), &err);
	json_object_put(entry);
	return s;
}

static void encode_with(const schema *s, const char *input, const char *passphrase,
                        record_encoded *out)
{
	json_object *in = J(input), *valid = NULL;
	s3db_error err = { 0 };
	CHECK_OK(schema_validate(s, in, &valid, &err), &err);
	record_encoded_init(out);
	CHECK_OK(record_encode(s, valid, "user-1", passphrase, out, &err), &err);
	json_object_put(valid);
	json_object_put(in);
}

/* An object as our store would return what we wrote. */
static void object_of(const record_encoded *e, store_object *o)
{
	store_object_init(o);
	ATF_REQUIRE(store_meta_copy(&o->meta, &e->meta) == 0);
	if (e->body.len) {
		o->body = (unsigned char *)strndup(e->body.data, e->body.len);
		o->body_len = e->body.len;
	}
	o->size = (int64_t)e->body.len;
	o->content_type = e->content_type ? strdup(e->content_type) : NULL;
}

#define ALICE \
	"{\"name\":\"Alice\",\"email\":\"alice@example.com\",\"age\":30,\"score\":1000000," \
	"\"balance\":1234.56,\"active\":true,\"tags\":[\"a\",\"b|c\",\"d\\\\e\"]," \
	"\"ratings\":[1.5,2,-3.25],\"counts\":[0,61,62,3844]," \
	"\"profile\":{\"bio\":\"Hello world\",\"country\":\"BR\"}," \
	"\"settings\":{\"theme\":\"dark\",\"nested\":{\"x\":1}}," \
	"\"meta\":{\"arbitrary\":[1,2,{\"a\":\"b\"}]},\"password\":\"hunter2\"," \
	"\"region\":\"south-america\",\"website\":\"https://example.com/p?x=1&y=2\"," \
	"\"note\":\"line1\\nline2\",\"createdAt\":\"2026-11-27T00:21:04.612Z\"," \
	"\"updatedAt\":\"2026-11-27T00:21:04.612Z\"}"

ATF_TC_WITHOUT_HEAD(interop_8_1_users_vectors_encode_exactly);
ATF_TC_BODY(interop_8_1_users_vectors_encode_exactly, tc)
{
	static const char *const want[][2] = {
		{ "0", "Alice" }, { "1", "alice@example.com" }, { "2", "u" }, { "3", "4c92" },
		{ "4", "jU.56" }, { "5", "1" }, { "6", "a|b\\|c|d\\\\e" }, { "7", "1.5|2|-3.25" },
		{ "8", "0|Z|10|100" }, { "9", "Hello world" }, { "a", "BR" },
		{ "b", "{\"theme\":\"dark\",\"nested\":{\"x\":1}}" },
		{ "c", "{\"arbitrary\":[1,2,{\"a\":\"b\"}]}" }, { "e", "south-america" },
		{ "f", "d:@hexample.com/p?x=1&y=2" }, { "g", "u:line1%0Aline2" }, { "h", "vC81gSo" },
		{ "i", "vC81gSo" }, { "_v", "v1" },
	};
	schema *s = users_extra_schema();
	record_encoded enc;
	encode_with(s, ALICE, "my-passphrase", &enc);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ATF_REQUIRE_STREQ_MSG(store_meta_get(&enc.meta, want[i][0]), want[i][1], "key %s",
		                      want[i][0]);
	/* #10: random salt and iv — the value must decrypt */
	char *plain = NULL;
	s3db_error err = { 0 };
	CHECK_OK(secret_decrypt("my-passphrase", store_meta_get(&enc.meta, "d"), &plain, &err), &err);
	ATF_REQUIRE_STREQ(plain, "hunter2");
	free(plain);
	ATF_REQUIRE_EQ(enc.meta.count, sizeof want / sizeof want[0] + 1);
	ATF_REQUIRE_EQ(enc.body.len, 0);
	record_encoded_free(&enc);

	/* #15-#19, #21: single fields */
	static const char *const single[][3] = {
		{ "name", "\"Jos\xc3\xa9 \xc3\x91\xc3\xba\xc3\xb1" "ez\"",
		  "u:Jos%C3%A9%20%C3%91%C3%BA%C3%B1ez" },
		{ "name", "\"hi \xf0\x9f\x98\x80\"", "b:aGkg8J+YgA==" },
		{ "name", "\"b:looks-like-base64\"", "b:Yjpsb29rcy1saWtlLWJhc2U2NA==" },
		{ "name", "\"completed\"", "d:c" },
		{ "name", "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3"
		          "\x83\x88 \xf0\x9f\x98\x80\"", "b:5pel5pys6KqeIOODhuOCreOCueODiCDwn5iA" },
		{ "age", "0.5", "0.5" },
	};
	for (size_t i = 0; i < sizeof single / sizeof single[0]; i++) {
		char *in = !strcmp(single[i][0], "name")
		               ? s3db_asprintf("{\"name\":%s,\"email\":\"x@example.com\"}", single[i][1])
		               : s3db_asprintf("{\"name\":\"n\",\"email\":\"x@example.com\",\"%s\":%s}",
		                               single[i][0], single[i][1]);
		encode_with(s, in, "secret", &enc);
		const char *key = schema_attr_by_path(s, single[i][0])->short_key;
		ATF_REQUIRE_STREQ_MSG(store_meta_get(&enc.meta, key), single[i][2], "%s", in);
		/* #20: absent json attribute — 21.6.2 writes "undefined"; we
		 * write nothing (R8) */
		ATF_REQUIRE(store_meta_get(&enc.meta, "c") == NULL);
		record_encoded_free(&enc);
		free(in);
	}
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(interop_8_1_users_vectors_read_back);
ATF_TC_BODY(interop_8_1_users_vectors_read_back, tc)
{
	schema *s = users_extra_schema();
	record_encoded enc;
	encode_with(s, ALICE, "my-passphrase", &enc);
	store_object obj;
	object_of(&enc, &obj);
	json_object *got = NULL;
	s3db_error err = { 0 };
	CHECK_OK(record_decode(s, &obj, "user-1", "my-passphrase", 0, &got, &err), &err);
	json_object *want = J(ALICE);
	json_object_object_add(want, "id", json_object_new_string("user-1"));
	sbuf line;
	sbuf_init(&line);
	if (!json_match(s, "", want, got, &line))
		atf_tc_fail("%s", line.data);
	sbuf_free(&line);
	json_object_put(want);
	json_object_put(got);
	store_object_free(&obj);
	record_encoded_free(&enc);
	schema_free(s);
}

#define METRIC \
	"{\"type\":\"operation\",\"resourceName\":\"global\",\"operation\":\"insert\"," \
	"\"count\":2,\"totalTime\":41,\"errors\":0,\"avgTime\":20.5," \
	"\"timestamp\":\"2026-11-27T00:18:03.561Z\",\"metadata\":{\"global\":\"true\"}," \
	"\"createdAt\":\"2026-11-27\"}"

/* §8.1 #22-#28 on the resources they name. */
ATF_TC_WITHOUT_HEAD(interop_8_1_vectors_of_other_resources);
ATF_TC_BODY(interop_8_1_vectors_of_other_resources, tc)
{
	/* #22: index 36 of a 21.x resource is key "10" */
	schema *s = wide_schema("user-managed", FORMAT_21);
	record_encoded enc;
	encode_with(s, "{\"f36\":\"v36\"}", "secret", &enc);
	ATF_REQUIRE_STREQ(store_meta_get(&enc.meta, "10"), "v36");
	ATF_REQUIRE_EQ(enc.meta.count, 2);
	store_object obj;
	object_of(&enc, &obj);
	json_object *got = NULL;
	s3db_error err = { 0 };
	CHECK_OK(record_decode(s, &obj, "w", "secret", 0, &got, &err), &err);
	ATF_REQUIRE_STREQ(json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN),
	                  "{\"id\":\"w\",\"f36\":\"v36\"}");
	json_object_put(got);
	store_object_free(&obj);
	record_encoded_free(&enc);
	schema_free(s);

	golden g;
	golden_open(&g, "latest-21.6.2");
	static const struct {
		const char *db, *res, *input, *key, *value;
	} t[] = {
		{ "demo", "articles", "{\"title\":\"t\",\"views\":123456}", "2", "w7e" },     /* 23 */
		{ "demo", "products", "{\"name\":\"n\",\"price\":9.99}", "2", "9.99" },       /* 24 */
		{ "plugin-metrics", "plg_metrics",
		  METRIC, "7", "k.5" },
		{ "plugin-metrics", "plg_metrics", METRIC, "5", "F" },
		{ "plugin-audit", "plg_audits",
		  "{\"resourceName\":\"posts\",\"operation\":\"insert\",\"recordId\":\"p1\","
		  "\"timestamp\":\"2026-11-27T00:17:12.039Z\",\"createdAt\":\"2026-11-27\"}", "6", "5pe" },
		{ "plugin-audit", "plg_audits",
		  "{\"resourceName\":\"posts\",\"operation\":\"insert\",\"recordId\":\"p1\","
		  "\"timestamp\":\"2026-11-27T00:17:12.039Z\",\"createdAt\":\"2026-11-27\"}", "5",
		  "vC80ind" },
		{ "demo", "docs", "{\"title\":\"Doc\",\"body\":\"b\",\"n\":42}", "_map",
		  "{\"title\":\"0\",\"body\":\"1\",\"n\":\"2\"}" },                           /* 28 */
		{ "demo", "files", "{\"filename\":\"f\"}", "_v", "v1" },                      /* 27 */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		json_object *in = J(t[i].input);
		encode_for(&g, t[i].db, t[i].res, "x1", in, "secret", &enc);
		ATF_REQUIRE_STREQ_MSG(store_meta_get(&enc.meta, t[i].key), t[i].value, "%s %s",
		                      t[i].res, t[i].key);
		/* and it reads back */
		s = golden_schema(&g, t[i].db, t[i].res, NULL);
		object_of(&enc, &obj);
		CHECK_OK(record_decode(s, &obj, "x1", "secret", 0, &got, &err), &err);
		json_object_object_add(in, "id", json_object_new_string("x1"));
		sbuf line;
		sbuf_init(&line);
		if (!json_match(s, "", in, got, &line))
			atf_tc_fail("%s: %s", t[i].res, line.data);
		sbuf_free(&line);
		json_object_put(got);
		store_object_free(&obj);
		schema_free(s);
		record_encoded_free(&enc);
		json_object_put(in);
	}
	golden_close(&g);
}

/* A 21.x resource with one attribute x (definition def) under key "0". */
static schema *one_attr_schema(const char *def)
{
	char *text = s3db_asprintf("{\"currentVersion\":\"v1\",\"partitions\":{},\"versions\":{\"v1\":"
	                           "{\"attributes\":{\"x\":\"%s\"},\"behavior\":\"user-managed\"}},"
	                           "\"schemaRegistry\":{\"nextIndex\":1,\"mapping\":{\"x\":0},"
	                           "\"burned\":[]}}", def);
	json_object *entry = J(text);
	free(text);
	schema *s = NULL;
	s3db_error err = { 0 };
	CHECK_OK(schema_compile("one", entry, NULL, FORMAT_21, &s, &err), &err);
	json_object_put(entry);
	return s;
}

/* Encodes {x: value} and checks header 0 (NULL: no header) and, with
 * back != NULL, that x reads back as back (JSON text; "absent" for none). */
static void vector(const char *def, const char *value, const char *header, const char *back)
{
	schema *s = one_attr_schema(def);
	char *input = s3db_asprintf("{\"x\":%s}", value);
	record_encoded enc;
	encode_with(s, input, "secret", &enc);
	const char *got_header = store_meta_get(&enc.meta, "0");
	if (header == NULL ? got_header != NULL : (!got_header || strcmp(got_header, header) != 0))
		atf_tc_fail("%s %s: header 0 is %s, expected %s", def, value,
		            got_header ? got_header : "(none)", header ? header : "(none)");
	if (back) {
		store_object obj;
		object_of(&enc, &obj);
		json_object *got = NULL;
		s3db_error err = { 0 };
		CHECK_OK(record_decode(s, &obj, "r", "secret", 0, &got, &err), &err);
		json_object *v = NULL;
		int present = json_object_object_get_ex(got, "x", &v);
		if (!strcmp(back, "absent")) {
			ATF_REQUIRE_MSG(!present, "%s %s: read back %s", def, value,
			                json_object_to_json_string(v));
		} else {
			json_object *want = J(back);
			sbuf line;
			sbuf_init(&line);
			if (!present || !json_match(NULL, "x", want, v, &line))
				atf_tc_fail("%s %s: read back %s (%s)", def, value,
				            present ? json_object_to_json_string(v) : "nothing",
				            line.len ? line.data : "absent");
			sbuf_free(&line);
			json_object_put(want);
		}
		json_object_put(got);
		store_object_free(&obj);
	}
	record_encoded_free(&enc);
	free(input);
	schema_free(s);
}

ATF_TC_WITHOUT_HEAD(interop_8_2_vectors_encode_exactly_and_read_back);
ATF_TC_BODY(interop_8_2_vectors_encode_exactly_and_read_back, tc)
{
	vector("number|integer:true", "-12345", "-3d7", "-12345");
	vector("number", "3.75", "3.75", "3.75");
	vector("number", "-0.5", "-0.5", "-0.5");
	vector("number", "-1234.5678", "-jU.5678", "-1234.5678");
	vector("number", "1e21", "jdt8BLTpPG02", "1e21");
	vector("number|integer:true", "61", "Z", "61");
	vector("number|integer:true", "62", "10", "62");
	vector("boolean", "false", "0", "false");
	vector("boolean|optional", "null", "0", "false");
	vector("array|items:string", "[]", "", "[]");
	vector("array|items:string", "[\"\",\"x\"]", "|x", "[\"\",\"x\"]");
	/* an item list whose text starts with '[' but is no JSON (§4.3) */
	vector("array|items:string", "[\"[x\",\"y\"]", "[x|y", "[\"[x\",\"y\"]");
	vector("object", "{}", "{}", "{}");
	vector("string|optional", "null", "null", "null");
	vector("string", "\"d:hello\"", "b:ZDpoZWxsbw==", "\"d:hello\"");
	vector("string", "\"z:abc\"", "b:ejphYmM=", "\"z:abc\"");
	vector("string", "\"u:x\"", "b:dTp4", "\"u:x\"");
	vector("string", "\"caf\xc3\xa9\"", "u:caf%C3%A9", "\"caf\xc3\xa9\"");
	vector("string", "\"a\xc3\xa7\xc3\xa3o e rea\xc3\xa7\xc3\xa3o s\xc3\xa3o\"",
	       "u:a%C3%A7%C3%A3o%20e%20rea%C3%A7%C3%A3o%20s%C3%A3o",
	       "\"a\xc3\xa7\xc3\xa3o e rea\xc3\xa7\xc3\xa3o s\xc3\xa3o\"");
	vector("string", "\"tab\\there\"", "u:tab%09here", "\"tab\\there\"");
	vector("string", "\"https://www.example.com/x\"", "d:@Wexample.com/x",
	       "\"https://www.example.com/x\"");
	vector("string", "\"/api/v1/users\"", "d:@1users", "\"/api/v1/users\"");
	vector("string", "\"/v1/x\"", "/v1/x", "\"/v1/x\"");
	vector("string", "\"application/json\"", "d:j", "\"application/json\"");
	vector("string", "\"http://localhost:3000/a\"", "d:@L3000/a", "\"http://localhost:3000/a\"");
	vector("string", "\"   padded  \"", "padded", "\"padded\"");
	vector("datetime", "\"2024-01-02T03:04:05.678Z\"", "u0aFbhc", "\"2024-01-02T03:04:05.678Z\"");
	vector("datetime", "\"1970-01-01T00:00:00.000Z\"", "0", "\"1970-01-01T00:00:00.000Z\"");
	vector("dateonly", "\"2024-01-02\"", "588", "\"2024-01-02\"");
	vector("date|optional|convert:true", "\"1990-05-15\"", "\"1990-05-15T00:00:00.000Z\"",
	       "\"1990-05-15T00:00:00.000Z\"");
	vector("json", "\"raw string\"", "raw string", "\"raw string\"");
	vector("json", "[1,2]", "[1,2]", "[1,2]");
}

/* Where we deliberately write other bytes than 21.6.2 (each reads back
 * right with s3db.js too, spec §7.3): 1e-7 (R7: s3db.js writes "" and
 * reads "" back), the texts/integers that s3db.js's header decoding
 * turns into null/absent (W6, R5), font/woff2 (R6: s3db.js writes d:f and
 * reads "failed"). */
ATF_TC_WITHOUT_HEAD(interop_8_2_deviations_read_back_correctly);
ATF_TC_BODY(interop_8_2_deviations_read_back_correctly, tc)
{
	vector("number", "1e-7", "1.0e-7", "1e-7");
	vector("string", "\"null\"", "b:bnVsbA==", "\"null\"");
	vector("string", "\"undefined\"", "b:dW5kZWZpbmVk", "\"undefined\"");
	vector("number|integer:true", "5598187", "b:bnVsbA==", "5598187");
	vector("number|integer:true", "6631951758436141", "b:dW5kZWZpbmVk", "6631951758436141");
	vector("string", "\"font/woff2\"", "font/woff2", "\"font/woff2\"");
	/* a null json value is the header null (§3.4), not the R8 artefact */
	vector("json|optional", "null", "null", "null");
}

/* §8.2 "decode-only": what a reader must produce from s3db.js's bytes. */
ATF_TC_WITHOUT_HEAD(interop_8_2_decode_only_vectors);
ATF_TC_BODY(interop_8_2_decode_only_vectors, tc)
{
	static const struct {
		const char *header, *expected; /* JSON text; NULL: absent */
	} t[] = {
		{ "u:Z%C3%BCrich%20%E6%9D%B1%E4%BA%AC", "\"Z\xc3\xbcrich \xe6\x9d\xb1\xe4\xba\xac\"" },
		{ "d:T", "\"text/plain\"" },
		{ "d:o", "\"application/octet-stream\"" },
		{ "d:f", "\"failed\"" },
		{ "d:@vfoo", "\"/v1/foo\"" },
		{ "d:zzz", "\"d:zzz\"" },
		{ "b:", "\"b:\"" },
		{ "null", "null" },
		{ "undefined", NULL },
	};
	schema *s = one_attr_schema("string|optional");
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		store_object obj;
		store_object_init(&obj);
		ATF_REQUIRE(store_meta_set(&obj.meta, "0", t[i].header) == 0);
		ATF_REQUIRE(store_meta_set(&obj.meta, "_v", "v1") == 0);
		json_object *got = NULL, *v = NULL;
		s3db_error err = { 0 };
		CHECK_OK(record_decode(s, &obj, "r", "secret", 0, &got, &err), &err);
		int present = json_object_object_get_ex(got, "x", &v);
		if (!t[i].expected) {
			ATF_REQUIRE_MSG(!present, "%s read as %s", t[i].header,
			                json_object_to_json_string(v));
		} else {
			ATF_REQUIRE_MSG(present, "%s read as absent", t[i].header);
			char *text = stringify(v);
			ATF_REQUIRE_STREQ_MSG(text, t[i].expected, "header %s", t[i].header);
			free(text);
		}
		json_object_put(got);
		store_object_free(&obj);
	}
	schema_free(s);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, v7_3_5_records_read_as_s3db_get_returned_them_from_s3rver_bytes);
	ATF_TP_ADD_TC(tp, v7_3_5_records_read_as_s3db_get_returned_them_from_aws_bytes);
	ATF_TP_ADD_TC(tp, v7_4_2_records_read_as_s3db_get_returned_them_from_s3rver_bytes);
	ATF_TP_ADD_TC(tp, v7_4_2_records_read_as_s3db_get_returned_them_from_aws_bytes);
	ATF_TP_ADD_TC(tp, v21_6_2_records_read_as_s3db_get_returned_them_from_s3rver_bytes);
	ATF_TP_ADD_TC(tp, v21_6_2_records_read_as_s3db_get_returned_them_from_aws_bytes);
	ATF_TP_ADD_TC(tp, v7_3_latin1_value_reads_from_raw_utf8_latin1_and_rfc2047_bytes);
	ATF_TP_ADD_TC(tp, v21_6_2_demo_records_encode_to_the_dumped_metadata_byte_for_byte);
	ATF_TP_ADD_TC(tp, v21_6_2_demo_bodies_encode_byte_for_byte);
	ATF_TP_ADD_TC(tp, v21_6_2_deviation_r8_undefined_artefacts_are_not_written);
	ATF_TP_ADD_TC(tp, v21_6_2_deviation_r9_bookkeeping_is_not_written);
	ATF_TP_ADD_TC(tp, v21_6_2_deviation_r12_truncate_data_keeps_a_prefix);
	ATF_TP_ADD_TC(tp, v21_6_2_enforce_limits_boundary_counts_short_keys);
	ATF_TP_ADD_TC(tp, v21_6_2_plugin_records_encode_to_the_dumped_metadata);
	ATF_TP_ADD_TC(tp, v7_edge_40_attribute_key_collision_is_reported_as_ambiguous);
	ATF_TP_ADD_TC(tp, v7_edge_40_attribute_collision_is_recovered_from_a_user_managed_body);
	ATF_TP_ADD_TC(tp, v7_edge_secret_vector_decrypts);
	ATF_TP_ADD_TC(tp, v7_edge_texts_read_back_as_written);
	ATF_TP_ADD_TC(tp, v7_4_base64_heuristic_is_settled_by_the_user_managed_body);
	ATF_TP_ADD_TC(tp, v7_decode_vectors_of_spec_8_5);
	ATF_TP_ADD_TC(tp, interop_8_1_users_vectors_encode_exactly);
	ATF_TP_ADD_TC(tp, interop_8_1_users_vectors_read_back);
	ATF_TP_ADD_TC(tp, interop_8_1_vectors_of_other_resources);
	ATF_TP_ADD_TC(tp, interop_8_2_vectors_encode_exactly_and_read_back);
	ATF_TP_ADD_TC(tp, interop_8_2_deviations_read_back_correctly);
	ATF_TP_ADD_TC(tp, interop_8_2_decode_only_vectors);
	return atf_no_error();
}
