/*
 * testlib.c — what every ATF test program of s3dbfs shares (see testlib.h).
 *
 * The S3 test server is found through the environment that
 * tests/servers/servers.sh writes to RUNDIR/env and scripts/test.sh exports
 * before kyua runs: S3DB_TEST_S3_URL (the strict front, s3front.js),
 * S3DB_TEST_S3_BUCKET, S3DB_TEST_ACCESS_KEY, S3DB_TEST_SECRET_KEY.  A test
 * that needs the server and finds a variable missing fails with
 * "S3 test server not running: run scripts/test.sh"; it never skips.
 *
 * The front's control API lives on the same port under /__control/ and is
 * spoken here with libcurl (plain HTTP, no signature):
 *   POST   /__control/faults   a fault rule (JSON)      -> 200 {"ok":true,"id":N}
 *   DELETE /__control/faults   clear every rule         -> 200
 *   GET    /__control/log      JSON array of entries    -> 200
 *   DELETE /__control/log      clear the request log    -> 200
 * testlib_front_clear_faults() and testlib_front_clear_log() are safe in
 * ATF cleanup routines: they never call atf_tc_fail() and return -1 when
 * the server is absent.  The other functions belong in test bodies.
 *
 * Secrets: the test secret deliberately contains '/', '+' and '=';
 * testlib_s3_connstr() percent-encodes the key id and the secret in the
 * userinfo of the URL, as a URL requires (the connection-string parser
 * decodes them, as s3db.js's does).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "testlib.h"

#ifndef TEST_FIXTURES
/* tests/Makefile.inc defines it as $(abs_top_srcdir)/tests/fixtures; this
 * fallback serves a hand-made build run from the top of the tree. */
#define TEST_FIXTURES "tests/fixtures"
#endif

/* ---- environment ------------------------------------------------------ */

/* The value of an S3DB_TEST_* variable; fails the test when unset/empty. */
static const char *required_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0')
		atf_tc_fail("S3 test server not running: run scripts/test.sh "
		            "(%s is not set)", name);
	return v;
}

const char *testlib_s3_url(void)
{
	return required_env("S3DB_TEST_S3_URL");
}

const char *testlib_s3_bucket(void)
{
	return required_env("S3DB_TEST_S3_BUCKET");
}

const char *testlib_access_key(void)
{
	return required_env("S3DB_TEST_ACCESS_KEY");
}

const char *testlib_secret_key(void)
{
	return required_env("S3DB_TEST_SECRET_KEY");
}

/* ---- names and connection strings --------------------------------------- */

/* "t/<name>-<pid>-<n>-<ms since epoch>": unique across test cases (name),
 * concurrent programs (pid), calls (n) and runs against one long-lived
 * server (time).  Characters of name outside [A-Za-z0-9_.-] become '-'.
 * Returns a static buffer, overwritten by the next call. */
const char *testlib_unique_prefix(const char *name)
{
	static char buf[256];
	static unsigned counter;
	char clean[128];
	struct timespec ts;
	size_t i;

	if (name == NULL)
		name = "test";
	for (i = 0; name[i] != '\0' && i < sizeof(clean) - 1; i++) {
		char c = name[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		clean[i] = ok ? c : '-';
	}
	clean[i] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, sizeof(buf), "t/%s-%ld-%u-%lld", clean, (long)getpid(),
	         ++counter, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	return buf;
}

/* Appends s to out (of size cap, already holding *len bytes) with every
 * byte outside RFC 3986's unreserved set percent-encoded; 0 on success,
 * -1 when out is too small. */
static int pct_append(char *out, size_t cap, size_t *len, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		            (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		            c == '.' || c == '~';
		size_t need = plain ? 1 : 3;

		if (*len + need >= cap)
			return -1;
		if (plain) {
			out[(*len)++] = (char)c;
		} else {
			out[(*len)++] = '%';
			out[(*len)++] = hex[c >> 4];
			out[(*len)++] = hex[c & 15];
		}
	}
	out[*len] = '\0';
	return 0;
}

/* http://KEY:SECRET@host:port/BUCKET/<prefix> with KEY and SECRET
 * percent-encoded; prefix is used as given (testlib_unique_prefix() output
 * needs no encoding).  malloc'd; fails the test when the server env is
 * missing. */
char *testlib_s3_connstr(const char *prefix)
{
	const char *url = testlib_s3_url();
	const char *bucket = testlib_s3_bucket();
	const char *key = testlib_access_key();
	const char *secret = testlib_secret_key();
	const char *hostpart = strstr(url, "://");
	size_t cap, len;
	char *out;

	if (hostpart == NULL)
		atf_tc_fail("S3DB_TEST_S3_URL is not a URL: %s", url);
	hostpart += 3;
	if (prefix == NULL)
		prefix = "";
	while (*prefix == '/')
		prefix++;
	cap = strlen(url) + 3 * (strlen(key) + strlen(secret)) + strlen(bucket) +
	      strlen(prefix) + 8;
	out = malloc(cap);
	if (out == NULL)
		atf_tc_fail("testlib_s3_connstr: out of memory");
	len = (size_t)(hostpart - url);
	memcpy(out, url, len);
	out[len] = '\0';
	if (pct_append(out, cap, &len, key) != 0)
		goto overflow;
	out[len++] = ':';
	if (pct_append(out, cap, &len, secret) != 0)
		goto overflow;
	len += (size_t)snprintf(out + len, cap - len, "@%s", hostpart);
	while (len > 0 && out[len - 1] == '/')
		len--;
	snprintf(out + len, cap - len, "/%s%s%s", bucket, *prefix ? "/" : "", prefix);
	return out;
overflow:
	free(out);
	atf_tc_fail("testlib_s3_connstr: buffer too small (a bug in testlib.c)");
}

/* file://<new directory under TMPDIR> (kyua points TMPDIR at the test
 * case's work directory and removes it afterwards).  malloc'd; fails the
 * test when the directory cannot be made. */
char *testlib_file_connstr(void)
{
	const char *tmp = getenv("TMPDIR");
	char templ[4096];
	char *out;

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(templ, sizeof(templ), "%s/s3db-test-XXXXXX", tmp) >= sizeof(templ))
		atf_tc_fail("testlib_file_connstr: TMPDIR too long");
	if (mkdtemp(templ) == NULL)
		atf_tc_fail("testlib_file_connstr: mkdtemp %s: %s", templ, strerror(errno));
	if (templ[0] == '/') {
		out = malloc(strlen(templ) + 8);
		if (out != NULL)
			sprintf(out, "file://%s", templ);
	} else {
		char cwd[4096];

		if (getcwd(cwd, sizeof(cwd)) == NULL)
			atf_tc_fail("testlib_file_connstr: getcwd: %s", strerror(errno));
		out = malloc(strlen(cwd) + strlen(templ) + 9);
		if (out != NULL)
			sprintf(out, "file://%s/%s", cwd, templ);
	}
	if (out == NULL)
		atf_tc_fail("testlib_file_connstr: out of memory");
	return out;
}

/* ---- the front's control API ---------------------------------------------- */

struct membuf {
	char *data;
	size_t len;
	int oom;
};

static size_t membuf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct membuf *b = userdata;
	size_t n = size * nmemb;
	char *p;

	if (b->oom)
		return 0;
	p = realloc(b->data, b->len + n + 1);
	if (p == NULL) {
		b->oom = 1;
		return 0;
	}
	b->data = p;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* One request to base_url + "/__control/" + path.  Returns the HTTP
 * status (0 when the connection failed, with the reason in errbuf); the
 * answer's body goes to *body (malloc'd, NUL-terminated) when body is not
 * NULL. */
static long control_request(const char *base_url, const char *method, const char *path,
                            const char *json, char **body, char *errbuf)
{
	struct membuf b = { NULL, 0, 0 };
	struct curl_slist *headers = NULL;
	char url[2048];
	long status = 0;
	CURL *h;
	CURLcode rc;

	errbuf[0] = '\0';
	if (body != NULL)
		*body = NULL;
	if ((size_t)snprintf(url, sizeof(url), "%s/__control/%s", base_url, path) >= sizeof(url)) {
		snprintf(errbuf, CURL_ERROR_SIZE, "URL too long");
		return 0;
	}
	h = curl_easy_init();
	if (h == NULL) {
		snprintf(errbuf, CURL_ERROR_SIZE, "curl_easy_init failed");
		return 0;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, membuf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (json != NULL) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else if (errbuf[0] == '\0')
		snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK || b.oom)
		status = 0;
	if (body != NULL && status != 0)
		*body = b.data;
	else
		free(b.data);
	return status;
}

/* POSTs a fault rule; 0 when the front accepted it, -1 otherwise (the
 * reason goes to stderr).  Fails the test when the server env is missing. */
int testlib_front_fault(const char *rule_json)
{
	char err[CURL_ERROR_SIZE];
	char *body = NULL;
	long st = control_request(testlib_s3_url(), "POST", "faults", rule_json, &body, err);

	if (st != 200) {
		fprintf(stderr, "testlib_front_fault(%s): %s\n", rule_json,
		        st == 0 ? err : (body != NULL ? body : "refused"));
		free(body);
		return -1;
	}
	free(body);
	return 0;
}

/* DELETE of a control resource; cleanup-safe (see the file comment). */
static int control_delete(const char *path)
{
	const char *url = getenv("S3DB_TEST_S3_URL");
	char err[CURL_ERROR_SIZE];
	long st;

	if (url == NULL || *url == '\0')
		return -1;
	st = control_request(url, "DELETE", path, NULL, NULL, err);
	if (st != 200) {
		fprintf(stderr, "testlib: DELETE /__control/%s: %s\n", path,
		        st == 0 ? err : "refused");
		return -1;
	}
	return 0;
}

int testlib_front_clear_faults(void)
{
	return control_delete("faults");
}

int testlib_front_clear_log(void)
{
	return control_delete("log");
}

/* The request log since the last clear, as a json-c array (the caller
 * puts it).  Fails the test when it cannot be read or parsed. */
json_object *testlib_front_log(void)
{
	char err[CURL_ERROR_SIZE];
	char *body = NULL;
	long st = control_request(testlib_s3_url(), "GET", "log", NULL, &body, err);
	json_object *log;

	if (st != 200) {
		free(body);
		atf_tc_fail("cannot read the front's request log: %s",
		            st == 0 ? err : "unexpected HTTP status");
	}
	log = json_tokener_parse(body);
	free(body);
	if (log == NULL || !json_object_is_type(log, json_type_array)) {
		json_object_put(log);
		atf_tc_fail("the front's request log is not a JSON array");
	}
	return log;
}

/* ---- files and fixtures ------------------------------------------------------ */

/* Reads a whole file; malloc'd and NUL-terminated, its length (without
 * the NUL) in *len when len is not NULL.  NULL with errno set on error. */
char *testlib_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL, *p;
	size_t n = 0, cap = 0, got;
	int saved;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			p = realloc(data, cap + 1);
			if (p == NULL) {
				saved = ENOMEM;
				goto fail;
			}
			data = p;
		}
		got = fread(data + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				saved = EIO;
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	data[n] = '\0';
	if (len != NULL)
		*len = n;
	return data;
fail:
	fclose(f);
	free(data);
	errno = saved;
	return NULL;
}

/* Parses TEST_FIXTURES/<rel>; the caller puts the result.  Fails the test
 * with the file name and the parser's message on error. */
json_object *testlib_fixture_json(const char *rel)
{
	char path[4096];
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *obj;
	size_t len;
	char *text;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", TEST_FIXTURES, rel) >= sizeof(path))
		atf_tc_fail("fixture path too long: %s", rel);
	text = testlib_read_file(path, &len);
	if (text == NULL)
		atf_tc_fail("cannot read fixture %s: %s", path, strerror(errno));
	tok = json_tokener_new();
	if (tok == NULL) {
		free(text);
		atf_tc_fail("json_tokener_new: out of memory");
	}
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	if (obj != NULL && jerr == json_tokener_success &&
	    json_tokener_get_parse_end(tok) < len) {
		/* trailing bytes: only whitespace is allowed */
		const char *rest = text + json_tokener_get_parse_end(tok);

		while (*rest == ' ' || *rest == '\t' || *rest == '\n' || *rest == '\r')
			rest++;
		if (*rest != '\0') {
			json_object_put(obj);
			json_tokener_free(tok);
			free(text);
			atf_tc_fail("fixture %s: trailing data after the JSON value", path);
		}
	}
	json_tokener_free(tok);
	free(text);
	if (obj == NULL && jerr == json_tokener_success)
		atf_tc_fail("fixture %s holds JSON null", path);
	if (obj == NULL || jerr != json_tokener_success) {
		json_object_put(obj);
		atf_tc_fail("fixture %s is not valid JSON: %s", path,
		            json_tokener_error_desc(jerr == json_tokener_success ?
		                                    json_tokener_continue : jerr));
	}
	return obj;
}
