/*
 * t_conn.c — connection strings (src/conn.c): every row of the spec's
 * §1.1 table, decoding of userinfo and bucket, query options, key-prefix
 * normalisation (§1.6), malformed strings, and that no message or
 * description ever shows a secret.
 *
 * Each malformed case carries a secret that appears nowhere else
 * ("Zs3cr3t..."), so the check "message lacks the secret" is meaningful.
 */
#include <atf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "conn.h"

#define SECRET "Zs3cr3tQ"

/* Parses s, failing the test case with the message when it does not. */
static void parse_ok(const char *s, conn_info *c)
{
	s3db_error err;
	memset(&err, 0, sizeof err);
	s3db_code code = conn_parse(s, c, &err);
	if (code != S3DB_OK)
		atf_tc_fail("conn_parse(\"%s\"): code %d: %s", s, code, err.message);
}

/* Asserts that s is refused as S3DB_ERR_BAD_CONNSTR with a message that
 * starts "connection string: ", contains `needle` (when given), never
 * contains `secret` (when given), and that *out is left empty. */
static void parse_bad(const char *s, const char *needle, const char *secret)
{
	conn_info c;
	s3db_error err;
	memset(&err, 0, sizeof err);
	s3db_code code = conn_parse(s, &c, &err);
	if (code != S3DB_ERR_BAD_CONNSTR)
		atf_tc_fail("conn_parse(\"%s\"): expected BAD_CONNSTR, got code %d (%s)",
		            s, code, err.message);
	ATF_CHECK_EQ_MSG(err.code, S3DB_ERR_BAD_CONNSTR, "err.code for %s", s);
	ATF_CHECK_MSG(strncmp(err.message, "connection string: ", 19) == 0,
	              "message for %s: %s", s, err.message);
	if (needle)
		ATF_CHECK_MSG(strstr(err.message, needle) != NULL,
		              "message for %s lacks \"%s\": %s", s, needle, err.message);
	if (secret)
		ATF_CHECK_MSG(strstr(err.message, secret) == NULL,
		              "message for %s shows the secret: %s", s, err.message);
	ATF_CHECK_MSG(!c.endpoint && !c.bucket && !c.prefix && !c.region && !c.access_key &&
	              !c.secret_key && !c.session_token && !c.root,
	              "conn_info not emptied after failing on %s", s);
	conn_info_free(&c);
}

static void check_describe(const conn_info *c, const char *expected)
{
	char *d = conn_describe(c);
	ATF_REQUIRE(d != NULL);
	ATF_CHECK_STREQ_MSG(d, expected, "conn_describe");
	free(d);
}

/* ---- §1.1 table ------------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(s3_form_addresses_aws_us_east_1_virtual_hosted);
ATF_TC_BODY(s3_form_addresses_aws_us_east_1_virtual_hosted, tc)
{
	conn_info c;
	parse_ok("s3://AK:SK@my-bucket/databases/prod", &c);
	ATF_CHECK_EQ(c.kind, CONN_S3);
	ATF_CHECK_STREQ(c.bucket, "my-bucket");
	ATF_CHECK_STREQ(c.prefix, "databases/prod");
	ATF_CHECK_STREQ(c.endpoint, "https://s3.us-east-1.amazonaws.com");
	ATF_CHECK_STREQ(c.region, "us-east-1");
	ATF_CHECK_EQ(c.path_style, 0);
	ATF_CHECK_STREQ(c.access_key, "AK");
	ATF_CHECK_STREQ(c.secret_key, "SK");
	ATF_CHECK(c.session_token == NULL);
	ATF_CHECK(c.root == NULL);
	ATF_CHECK_EQ(c.parallelism, 0);
	ATF_CHECK_EQ(c.timeout_ms, 0);
	ATF_CHECK_EQ(c.max_retries, -1);
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(s3_form_without_path_has_empty_prefix);
ATF_TC_BODY(s3_form_without_path_has_empty_prefix, tc)
{
	conn_info c;
	parse_ok("s3://AK:SK@my-bucket", &c);
	ATF_CHECK_STREQ(c.bucket, "my-bucket");
	ATF_CHECK_STREQ(c.prefix, "");
	ATF_CHECK_STREQ(c.endpoint, "https://s3.us-east-1.amazonaws.com");
	ATF_CHECK_STREQ(c.region, "us-east-1");
	ATF_CHECK_EQ(c.path_style, 0);
	conn_info_free(&c);

	parse_ok("s3://AK:SK@my-bucket/", &c);
	ATF_CHECK_STREQ(c.prefix, "");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(http_form_takes_bucket_from_first_path_segment);
ATF_TC_BODY(http_form_takes_bucket_from_first_path_segment, tc)
{
	conn_info c;
	parse_ok("http://minio:minio123@localhost:9000/bucket1/app/db", &c);
	ATF_CHECK_EQ(c.kind, CONN_S3);
	ATF_CHECK_STREQ(c.bucket, "bucket1");
	ATF_CHECK_STREQ(c.prefix, "app/db");
	ATF_CHECK_STREQ(c.endpoint, "http://localhost:9000");
	ATF_CHECK_STREQ(c.region, "us-east-1");
	ATF_CHECK_EQ(c.path_style, 1);
	ATF_CHECK_STREQ(c.access_key, "minio");
	ATF_CHECK_STREQ(c.secret_key, "minio123");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(https_form_with_bucket_only);
ATF_TC_BODY(https_form_with_bucket_only, tc)
{
	conn_info c;
	parse_ok("https://k:s@s3.wasabisys.com/b2", &c);
	ATF_CHECK_STREQ(c.bucket, "b2");
	ATF_CHECK_STREQ(c.prefix, "");
	ATF_CHECK_STREQ(c.endpoint, "https://s3.wasabisys.com");
	ATF_CHECK_STREQ(c.region, "us-east-1");
	ATF_CHECK_EQ(c.path_style, 1);
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(http_form_without_path_uses_bucket_s3db);
ATF_TC_BODY(http_form_without_path_uses_bucket_s3db, tc)
{
	conn_info c;
	parse_ok("http://localhost:9000", &c);
	ATF_CHECK_STREQ(c.bucket, "s3db");
	ATF_CHECK_STREQ(c.prefix, "");
	ATF_CHECK_STREQ(c.endpoint, "http://localhost:9000");
	ATF_CHECK_STREQ(c.region, "us-east-1");
	ATF_CHECK_EQ(c.path_style, 1);
	ATF_CHECK(c.access_key == NULL);
	ATF_CHECK(c.secret_key == NULL);
	conn_info_free(&c);

	parse_ok("http://localhost:9000/", &c);
	ATF_CHECK_STREQ(c.bucket, "s3db");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(file_form_with_absolute_directory);
ATF_TC_BODY(file_form_with_absolute_directory, tc)
{
	conn_info c;
	parse_ok("file:///var/data/s3db", &c);
	ATF_CHECK_EQ(c.kind, CONN_FILE);
	ATF_CHECK_STREQ(c.root, "/var/data/s3db");
	ATF_CHECK_STREQ(c.region, "local");
	ATF_CHECK_STREQ(c.prefix, "");
	ATF_CHECK(c.endpoint == NULL);
	ATF_CHECK(c.bucket == NULL);
	conn_info_free(&c);

	parse_ok("file:///var/data/s3db/", &c);
	ATF_CHECK_STREQ(c.root, "/var/data/s3db");
	conn_info_free(&c);

	parse_ok("file://localhost/var//data/./x/../s3db", &c);
	ATF_CHECK_STREQ(c.root, "/var/data/s3db");
	conn_info_free(&c);

	parse_ok("file:///tmp/my%20dir", &c);
	ATF_CHECK_STREQ(c.root, "/tmp/my dir");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(file_form_with_relative_directory_resolves_against_cwd);
ATF_TC_BODY(file_form_with_relative_directory_resolves_against_cwd, tc)
{
	char *cwd = getcwd(NULL, 0);
	ATF_REQUIRE(cwd != NULL);
	char expected[4096];
	conn_info c;

	parse_ok("file://./rel/dir", &c);
	snprintf(expected, sizeof expected, "%s/rel/dir", strcmp(cwd, "/") ? cwd : "");
	ATF_CHECK_EQ(c.kind, CONN_FILE);
	ATF_CHECK_STREQ(c.root, expected);
	ATF_CHECK_STREQ(c.region, "local");
	conn_info_free(&c);

	parse_ok("file://.", &c);
	ATF_CHECK_STREQ(c.root, cwd);
	conn_info_free(&c);
	free(cwd);
}

ATF_TC_WITHOUT_HEAD(memory_scheme_is_refused);
ATF_TC_BODY(memory_scheme_is_refused, tc)
{
	parse_bad("memory://mybucket/some/prefix", "memory://", NULL);
}

/* ---- decoding -------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(userinfo_is_percent_decoded);
ATF_TC_BODY(userinfo_is_percent_decoded, tc)
{
	conn_info c;
	parse_ok("s3://AKIA:se%2Fcret@b", &c);
	ATF_CHECK_STREQ(c.access_key, "AKIA");
	ATF_CHECK_STREQ(c.secret_key, "se/cret");
	conn_info_free(&c);

	parse_ok("http://us%40er:a%3Ab%2Bc%25d@localhost:9000/b", &c);
	ATF_CHECK_STREQ(c.access_key, "us@er");
	ATF_CHECK_STREQ(c.secret_key, "a:b+c%d");
	conn_info_free(&c);

	/* '+' is not a space in userinfo (decodeURIComponent) */
	parse_ok("s3://AK:a+b@b", &c);
	ATF_CHECK_STREQ(c.secret_key, "a+b");
	conn_info_free(&c);

	/* UTF-8 escapes decode to UTF-8 */
	parse_ok("s3://AK:caf%C3%A9@b", &c);
	ATF_CHECK_STREQ(c.secret_key, "caf\xc3\xa9");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(last_at_sign_ends_the_userinfo);
ATF_TC_BODY(last_at_sign_ends_the_userinfo, tc)
{
	conn_info c;
	parse_ok("s3://AK:se@cret@bucket/p", &c);
	ATF_CHECK_STREQ(c.secret_key, "se@cret");
	ATF_CHECK_STREQ(c.bucket, "bucket");
	ATF_CHECK_STREQ(c.prefix, "p");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(bucket_is_percent_decoded);
ATF_TC_BODY(bucket_is_percent_decoded, tc)
{
	conn_info c;
	parse_ok("s3://AK:SK@my%2Dbucket/p", &c);
	ATF_CHECK_STREQ(c.bucket, "my-bucket");
	conn_info_free(&c);

	parse_ok("http://localhost:9000/b%2E1/p", &c);
	ATF_CHECK_STREQ(c.bucket, "b.1");
	conn_info_free(&c);
}

/* ---- key prefix ------------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(prefix_is_normalised_like_path_join);
ATF_TC_BODY(prefix_is_normalised_like_path_join, tc)
{
	static const struct { const char *in, *prefix; } cases[] = {
		{ "s3://b/a//b/./c/../d", "a/b/d" },
		{ "s3://b//lead", "lead" },
		{ "s3://b/trail/", "trail" },
		{ "s3://b/./x/.", "x" },
		{ "s3://b/x/..", "" },
		{ "s3://b/x/%2e%2E/y", "y" },
		{ "http://h:1/b/a//b/./c/../d/", "a/b/d" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		conn_info c;
		parse_ok(cases[i].in, &c);
		ATF_CHECK_STREQ_MSG(c.prefix, cases[i].prefix, "prefix of %s", cases[i].in);
		conn_info_free(&c);
	}
}

ATF_TC_WITHOUT_HEAD(prefix_keeps_escapes_and_encodes_as_the_url_parser);
ATF_TC_BODY(prefix_keeps_escapes_and_encodes_as_the_url_parser, tc)
{
	conn_info c;
	/* s3db.js takes the path as WHATWG leaves it: escapes kept verbatim,
	 * space and non-ASCII percent-encoded */
	parse_ok("s3://b/caf%C3%A9/a%2Fb", &c);
	ATF_CHECK_STREQ(c.prefix, "caf%C3%A9/a%2Fb");
	conn_info_free(&c);

	parse_ok("http://h/b/caf\xc3\xa9/x y", &c);
	ATF_CHECK_STREQ(c.prefix, "caf%C3%A9/x%20y");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(full_key_joins_prefix_and_relative_key);
ATF_TC_BODY(full_key_joins_prefix_and_relative_key, tc)
{
	conn_info c;
	parse_ok("s3://AK:SK@b/databases/demo", &c);
	char *k = conn_full_key(&c, "resource=users/data/id=u1");
	ATF_CHECK_STREQ(k, "databases/demo/resource=users/data/id=u1");
	free(k);
	k = conn_full_key(&c, "s3db.json");
	ATF_CHECK_STREQ(k, "databases/demo/s3db.json");
	free(k);
	/* path.join: repeated '/' collapse, a trailing '/' stays */
	k = conn_full_key(&c, "resource=users//data/");
	ATF_CHECK_STREQ(k, "databases/demo/resource=users/data/");
	free(k);
	k = conn_full_key(&c, "");
	ATF_CHECK_STREQ(k, "databases/demo");
	free(k);
	conn_info_free(&c);

	/* empty prefix: the relative key unchanged (§1.6) */
	parse_ok("s3://AK:SK@b", &c);
	k = conn_full_key(&c, "resource=users//data/id=u1");
	ATF_CHECK_STREQ(k, "resource=users//data/id=u1");
	free(k);
	conn_info_free(&c);
}

/* ---- hosts ------------------------------------------------------------ */

ATF_TC_WITHOUT_HEAD(http_host_is_lowercased_and_default_port_dropped);
ATF_TC_BODY(http_host_is_lowercased_and_default_port_dropped, tc)
{
	conn_info c;
	parse_ok("HTTP://k:s@MinIO.Local:80/b", &c);
	ATF_CHECK_STREQ(c.endpoint, "http://minio.local");
	conn_info_free(&c);
	parse_ok("https://k:s@h.example:443/b", &c);
	ATF_CHECK_STREQ(c.endpoint, "https://h.example");
	conn_info_free(&c);
	parse_ok("https://k:s@h.example:8443/b", &c);
	ATF_CHECK_STREQ(c.endpoint, "https://h.example:8443");
	conn_info_free(&c);
	parse_ok("http://[::1]:9000/b", &c);
	ATF_CHECK_STREQ(c.endpoint, "http://[::1]:9000");
	conn_info_free(&c);
}

/* ---- query options ----------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(query_options_are_applied);
ATF_TC_BODY(query_options_are_applied, tc)
{
	conn_info c;
	parse_ok("s3://AK:SK@b/p?region=eu-west-1&forcePathStyle=true&sessionToken=tok%2Fen+x="
	         "&parallelism=8&timeout=1500&retries=0", &c);
	ATF_CHECK_STREQ(c.region, "eu-west-1");
	ATF_CHECK_STREQ(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
	ATF_CHECK_EQ(c.path_style, 1);
	ATF_CHECK_STREQ(c.session_token, "tok/en+x=");
	ATF_CHECK_EQ(c.parallelism, 8);
	ATF_CHECK_EQ(c.timeout_ms, 1500);
	ATF_CHECK_EQ(c.max_retries, 0);
	ATF_CHECK_STREQ(c.prefix, "p");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(region_option_sets_region_for_http_form);
ATF_TC_BODY(region_option_sets_region_for_http_form, tc)
{
	conn_info c;
	parse_ok("https://k:s@s3.eu-west-1.amazonaws.com/b/p?region=eu-west-1", &c);
	ATF_CHECK_STREQ(c.region, "eu-west-1");
	ATF_CHECK_STREQ(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
	ATF_CHECK_EQ(c.path_style, 1);
	conn_info_free(&c);

	parse_ok("s3://k:s@b?region=cn-north-1", &c);
	ATF_CHECK_STREQ(c.endpoint, "https://s3.cn-north-1.amazonaws.com.cn");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(endpoint_option_for_s3_form);
ATF_TC_BODY(endpoint_option_for_s3_form, tc)
{
	conn_info c;
	parse_ok("s3://k:s@b/p?endpoint=http%3A%2F%2FLocalHost%3A9000%2F", &c);
	ATF_CHECK_STREQ(c.endpoint, "http://localhost:9000");
	ATF_CHECK_EQ(c.path_style, 0);
	ATF_CHECK_STREQ(c.bucket, "b");
	conn_info_free(&c);

	parse_ok("s3://k:s@b?endpoint=https://r2.example:8443&forcePathStyle=true", &c);
	ATF_CHECK_STREQ(c.endpoint, "https://r2.example:8443");
	ATF_CHECK_EQ(c.path_style, 1);
	conn_info_free(&c);

	parse_bad("http://k:" SECRET "@h/b?endpoint=http://x", "endpoint", SECRET);
}

ATF_TC_WITHOUT_HEAD(force_path_style_false_is_honoured_for_http_form);
ATF_TC_BODY(force_path_style_false_is_honoured_for_http_form, tc)
{
	conn_info c;
	parse_ok("https://k:s@h.example/b?forcePathStyle=false", &c);
	ATF_CHECK_EQ(c.path_style, 0);
	conn_info_free(&c);
	parse_ok("s3://k:s@b?forcePathStyle=false", &c);
	ATF_CHECK_EQ(c.path_style, 0);
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(file_form_accepts_only_request_options);
ATF_TC_BODY(file_form_accepts_only_request_options, tc)
{
	conn_info c;
	parse_ok("file:///tmp/db?parallelism=2&timeout=10&retries=3", &c);
	ATF_CHECK_EQ(c.parallelism, 2);
	ATF_CHECK_EQ(c.timeout_ms, 10);
	ATF_CHECK_EQ(c.max_retries, 3);
	conn_info_free(&c);
	parse_bad("file:///tmp/db?region=eu-west-1", "'region' does not apply to file://", NULL);
}

/* ---- malformed -------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(malformed_strings_are_refused_without_the_secret);
ATF_TC_BODY(malformed_strings_are_refused_without_the_secret, tc)
{
	static const struct { const char *in, *needle; } cases[] = {
		/* no or unknown scheme */
		{ "AKIA:" SECRET "@bucket/p", "scheme" },
		{ "my-bucket/p", "no scheme" },
		{ "://AK:" SECRET "@b", "no scheme" },
		{ "s3:AK:" SECRET "@b", "'//'" },
		{ "ftp://AK:" SECRET "@h/b", "unknown scheme 'ftp'" },
		{ "sqlite://AK:" SECRET "@h/b", "unknown scheme" },
		/* empty bucket */
		{ "s3://AK:" SECRET "@", "empty bucket" },
		{ "s3://AK:" SECRET "@/prefix", "empty bucket" },
		{ "http://AK:" SECRET "@h:9000//p", "empty bucket" },
		{ "s3://AK:" SECRET "@b%2Fc", "bad bucket name" },
		{ "s3://AK:" SECRET "@b%20c", "bad bucket name" },
		{ "http://AK:" SECRET "@h/../p", "bucket name" },
		/* hosts and ports */
		{ "http://AK:" SECRET "@host:99999/b", "bad port" },
		{ "http://AK:" SECRET "@host:0/b", "bad port" },
		{ "http://AK:" SECRET "@host:9x/b", "bad port" },
		{ "http://AK:" SECRET "@/b", "empty host" },
		{ "http://AK:" SECRET "@ho%20st/b", "bad host" },
		{ "s3://AK:" SECRET "@b:9000/p", "host:port" },
		/* '..' escaping */
		{ "s3://AK:" SECRET "@b/../x", "'..'" },
		{ "s3://AK:" SECRET "@b/a/../../x", "'..'" },
		{ "s3://AK:" SECRET "@b/%2e%2e", "'..'" },
		{ "file:///../etc", "'..'" },
		/* bad percent escapes */
		{ "s3://AK:" SECRET "%zz@b", "bad percent escape in the secret key" },
		{ "s3://AK:" SECRET "%4@b", "bad percent escape" },
		{ "s3://A%GK:" SECRET "@b", "bad percent escape in the access key" },
		{ "s3://AK:" SECRET "@b%2", "bad percent escape in the bucket" },
		{ "s3://AK:" SECRET "@b/p%", "bad percent escape in the key prefix" },
		{ "s3://AK:" SECRET "@b?region=%xx", "bad percent escape" },
		{ "s3://AK:" SECRET "%FF@b", "invalid UTF-8" },
		/* NUL and control characters */
		{ "s3://AK:" SECRET "%00@b", "control character" },
		{ "s3://AK:" SECRET "@b%0a", "control character" },
		{ "s3://AK:" SECRET "@b/p\tq", "control character" },
		{ "s3://AK:" SECRET "\n@b", "control character" },
		{ "s3://AK:" SECRET "@b?sessionToken=a%00b", "control character" },
		{ "s3://AK:" SECRET "@b/\xff", "UTF-8" },
		/* userinfo shape */
		{ "s3://AK:" SECRET "/x@b", "raw '/'" },
		{ "s3://AK:" SECRET "#x@b", "'#'" },
		{ "s3://AK:" SECRET "?x@b", "raw '/' or '?'" },
		{ "s3://:" SECRET "@b", "empty access key" },
		{ "s3://AKONLY@b", "without a secret" },
		{ "file://AK:" SECRET "@/tmp/x", "credentials" },
		/* options */
		{ "s3://AK:" SECRET "@b?foo=1", "unknown option 'foo'" },
		{ "s3://AK:" SECRET "@b?Region=eu-west-1", "unknown option 'Region'" },
		{ "s3://AK:" SECRET "@b?region=eu-west-1&region=us-east-2", "given twice" },
		{ "s3://AK:" SECRET "@b?region=", "needs a value" },
		{ "s3://AK:" SECRET "@b?region=EU%20West", "region" },
		{ "s3://AK:" SECRET "@b?forcePathStyle=yes", "true or false" },
		{ "s3://AK:" SECRET "@b?parallelism=0", "parallelism" },
		{ "s3://AK:" SECRET "@b?parallelism=-1", "parallelism" },
		{ "s3://AK:" SECRET "@b?timeout=1.5", "timeout" },
		{ "s3://AK:" SECRET "@b?retries=x", "retries" },
		{ "s3://AK:" SECRET "@b?endpoint=ftp://h", "endpoint" },
		{ "s3://AK:" SECRET "@b?endpoint=http://h/path", "without a path" },
		{ "s3://AK:" SECRET "@b?=1", "without a name" },
		{ "s3://AK:" SECRET "@b?passphrase=pw", "passphrase" },
		/* file:// shapes */
		{ "file://", "needs a directory" },
		{ "file://data/dir", "absolute path" },
		{ "file:///tmp/a%2Fb", "%2F" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		parse_bad(cases[i].in, cases[i].needle, SECRET);
	parse_bad("", "empty", NULL);
	conn_info c;
	s3db_error err;
	ATF_CHECK_EQ(conn_parse(NULL, &c, &err), S3DB_ERR_BAD_CONNSTR);
	/* err may be NULL */
	ATF_CHECK_EQ(conn_parse("nope", &c, NULL), S3DB_ERR_BAD_CONNSTR);
}

ATF_TC_WITHOUT_HEAD(error_message_says_what_and_echoes_the_masked_string);
ATF_TC_BODY(error_message_says_what_and_echoes_the_masked_string, tc)
{
	conn_info c;
	s3db_error err;
	ATF_CHECK_EQ(conn_parse("http://k:" SECRET "@host:99999/b", &c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK_STREQ(err.message, "connection string: bad port in 'http://k:***@host:99999/b'");

	ATF_CHECK_EQ(conn_parse("s3://AK:" SECRET "@b?sessionToken=T0KEN&foo=1", &c, &err),
	             S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK_MSG(strstr(err.message, "unknown option 'foo'") != NULL, "%s", err.message);
	ATF_CHECK_MSG(strstr(err.message, "'s3://AK:***@b?sessionToken=***&foo=1'") != NULL,
	              "%s", err.message);
	ATF_CHECK_MSG(strstr(err.message, "T0KEN") == NULL, "%s", err.message);

	/* a raw '/' in the secret: masked up to the '@' all the same */
	ATF_CHECK_EQ(conn_parse("s3://AKIA:abc/" SECRET "@bucket/p", &c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK_MSG(strstr(err.message, "'s3://AKIA:***@bucket/p'") != NULL, "%s", err.message);
	ATF_CHECK_MSG(strstr(err.message, "abc") == NULL, "%s", err.message);

	/* no scheme: still masked */
	ATF_CHECK_EQ(conn_parse("AKIA:" SECRET "@bucket", &c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK_MSG(strstr(err.message, "'AKIA:***@bucket'") != NULL, "%s", err.message);

	/* control characters are not echoed raw */
	ATF_CHECK_EQ(conn_parse("s3://b/p\x1b[2J", &c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK_MSG(strchr(err.message, '\x1b') == NULL, "%s", err.message);
}

ATF_TC_WITHOUT_HEAD(passphrase_in_url_is_refused_pointing_to_the_option);
ATF_TC_BODY(passphrase_in_url_is_refused_pointing_to_the_option, tc)
{
	conn_info c;
	s3db_error err;
	ATF_CHECK_EQ(conn_parse("s3://AK:SK@b?passphrase=" SECRET, &c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK_MSG(strstr(err.message, SECRET) == NULL, "%s", err.message);
	ATF_CHECK_MSG(strstr(err.message, "passphrase option") != NULL, "%s", err.message);
	ATF_CHECK_MSG(strstr(err.message, "S3DB_PASSPHRASE") != NULL, "%s", err.message);
}

/* ---- describe ---------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(describe_hides_secret_and_session_token);
ATF_TC_BODY(describe_hides_secret_and_session_token, tc)
{
	conn_info c;
	parse_ok("s3://AKIA:" SECRET "@b/databases/prod?sessionToken=TOK" SECRET, &c);
	char *d = conn_describe(&c);
	ATF_REQUIRE(d != NULL);
	ATF_CHECK_STREQ(d, "s3://AKIA:***@b/databases/prod?sessionToken=***");
	ATF_CHECK(strstr(d, SECRET) == NULL);
	free(d);
	conn_info_free(&c);

	parse_ok("http://minio:" SECRET "@localhost:9000/bucket1/app/db", &c);
	check_describe(&c, "http://minio:***@localhost:9000/bucket1/app/db");
	conn_info_free(&c);
}

ATF_TC_WITHOUT_HEAD(describe_gives_an_equivalent_string);
ATF_TC_BODY(describe_gives_an_equivalent_string, tc)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "s3://AK:SK@my-bucket", "s3://AK:***@my-bucket" },
		{ "s3://b/a//b/../c", "s3://b/a/c" },
		{ "http://localhost:9000", "http://localhost:9000/s3db" },
		{ "s3://u%40x:SK@b?region=eu-west-1&parallelism=4&timeout=99&retries=2",
		  "s3://u%40x:***@b?region=eu-west-1&parallelism=4&timeout=99&retries=2" },
		{ "s3://b?forcePathStyle=true", "s3://b?forcePathStyle=true" },
		{ "s3://b?endpoint=http://h:9", "s3://b?endpoint=http://h:9" },
		{ "s3://b?endpoint=http://h:9&forcePathStyle=true", "http://h:9/b" },
		{ "https://k:s@h/b?forcePathStyle=false", "s3://k:***@b?endpoint=https://h" },
		{ "https://h/b/p?region=eu-west-1", "https://h/b/p?region=eu-west-1" },
		{ "file:///var/data/s3db/", "file:///var/data/s3db" },
		{ "file:///tmp/my%20dir", "file:///tmp/my%20dir" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		conn_info c, back;
		parse_ok(cases[i].in, &c);
		char *d = conn_describe(&c);
		ATF_REQUIRE(d != NULL);
		ATF_CHECK_STREQ_MSG(d, cases[i].out, "describe(%s)", cases[i].in);
		/* parses back to the same place */
		parse_ok(d, &back);
		ATF_CHECK_EQ_MSG(back.kind, c.kind, "%s", d);
		ATF_CHECK_MSG((!back.endpoint && !c.endpoint) ||
		              (back.endpoint && c.endpoint && !strcmp(back.endpoint, c.endpoint)), "%s", d);
		ATF_CHECK_MSG((!back.bucket && !c.bucket) ||
		              (back.bucket && c.bucket && !strcmp(back.bucket, c.bucket)), "%s", d);
		ATF_CHECK_MSG((!back.root && !c.root) ||
		              (back.root && c.root && !strcmp(back.root, c.root)), "%s", d);
		ATF_CHECK_STREQ_MSG(back.prefix, c.prefix, "%s", d);
		ATF_CHECK_STREQ_MSG(back.region, c.region, "%s", d);
		ATF_CHECK_EQ_MSG(back.path_style, c.path_style, "%s", d);
		ATF_CHECK_EQ_MSG(back.parallelism, c.parallelism, "%s", d);
		ATF_CHECK_EQ_MSG(back.timeout_ms, c.timeout_ms, "%s", d);
		ATF_CHECK_EQ_MSG(back.max_retries, c.max_retries, "%s", d);
		free(d);
		conn_info_free(&back);
		conn_info_free(&c);
	}
}

ATF_TC_WITHOUT_HEAD(info_free_leaves_an_empty_struct);
ATF_TC_BODY(info_free_leaves_an_empty_struct, tc)
{
	conn_info c;
	parse_ok("s3://AK:SK@b/p?sessionToken=t", &c);
	conn_info_free(&c);
	ATF_CHECK(c.access_key == NULL && c.secret_key == NULL && c.session_token == NULL);
	ATF_CHECK(c.bucket == NULL && c.prefix == NULL && c.endpoint == NULL && c.region == NULL);
	conn_info_free(&c);  /* twice is harmless */
	conn_info_free(NULL);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, s3_form_addresses_aws_us_east_1_virtual_hosted);
	ATF_TP_ADD_TC(tp, s3_form_without_path_has_empty_prefix);
	ATF_TP_ADD_TC(tp, http_form_takes_bucket_from_first_path_segment);
	ATF_TP_ADD_TC(tp, https_form_with_bucket_only);
	ATF_TP_ADD_TC(tp, http_form_without_path_uses_bucket_s3db);
	ATF_TP_ADD_TC(tp, file_form_with_absolute_directory);
	ATF_TP_ADD_TC(tp, file_form_with_relative_directory_resolves_against_cwd);
	ATF_TP_ADD_TC(tp, memory_scheme_is_refused);
	ATF_TP_ADD_TC(tp, userinfo_is_percent_decoded);
	ATF_TP_ADD_TC(tp, last_at_sign_ends_the_userinfo);
	ATF_TP_ADD_TC(tp, bucket_is_percent_decoded);
	ATF_TP_ADD_TC(tp, prefix_is_normalised_like_path_join);
	ATF_TP_ADD_TC(tp, prefix_keeps_escapes_and_encodes_as_the_url_parser);
	ATF_TP_ADD_TC(tp, full_key_joins_prefix_and_relative_key);
	ATF_TP_ADD_TC(tp, http_host_is_lowercased_and_default_port_dropped);
	ATF_TP_ADD_TC(tp, query_options_are_applied);
	ATF_TP_ADD_TC(tp, region_option_sets_region_for_http_form);
	ATF_TP_ADD_TC(tp, endpoint_option_for_s3_form);
	ATF_TP_ADD_TC(tp, force_path_style_false_is_honoured_for_http_form);
	ATF_TP_ADD_TC(tp, file_form_accepts_only_request_options);
	ATF_TP_ADD_TC(tp, malformed_strings_are_refused_without_the_secret);
	ATF_TP_ADD_TC(tp, error_message_says_what_and_echoes_the_masked_string);
	ATF_TP_ADD_TC(tp, passphrase_in_url_is_refused_pointing_to_the_option);
	ATF_TP_ADD_TC(tp, describe_hides_secret_and_session_token);
	ATF_TP_ADD_TC(tp, describe_gives_an_equivalent_string);
	ATF_TP_ADD_TC(tp, info_free_leaves_an_empty_struct);
	return atf_no_error();
}
