/*
 * t_sigv4.c — the SigV4 signer against AWS's published S3 examples, the
 * URI/query encodings it depends on, the Authorization parser a verifier
 * uses, and the credential resolution of creds.c.
 *
 * The four worked examples are those of AWS's "Signature Calculations for
 * the Authorization Header: Transferring Payload in a Single Chunk"
 * (access key AKIAIOSFODNN7EXAMPLE, date 20130524T000000Z, bucket
 * examplebucket): each checks the canonical request text, the hash of it
 * that the documented string to sign carries, and the signature.
 *
 * The creds tests point HOME and the AWS_* variables at files written in
 * the test case's own work directory (kyua runs each case in a fresh
 * process and directory).
 */
#include <atf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "creds.h"
#include "sigv4.h"
#include "util.h"

#define EX_ACCESS "AKIAIOSFODNN7EXAMPLE"
#define EX_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EX_DATE "20130524T000000Z"
#define EX_HOST "examplebucket.s3.amazonaws.com"
#define EX_SCOPE "20130524/us-east-1/s3/aws4_request"
#define EMPTY_HASH SIGV4_EMPTY_SHA256

static const sigv4_key example_key = {
	.access_key = EX_ACCESS,
	.secret_key = EX_SECRET,
	.region = "us-east-1",
	.service = "s3",
	.amz_date = EX_DATE,
};

/* Signs req with the example key and checks the documented intermediates. */
static void check_example(const sigv4_request *req, const char *canonical,
                          const char *canonical_hash, const char *signed_headers,
                          const char *signature)
{
	sigv4_result r;
	ATF_REQUIRE_EQ(sigv4_sign(req, &example_key, &r), 0);
	ATF_CHECK_STREQ(r.canonical_request, canonical);

	char hash[65];
	sigv4_sha256_hex(r.canonical_request, strlen(r.canonical_request), hash);
	ATF_CHECK_STREQ(hash, canonical_hash);

	char *sts = s3db_asprintf("AWS4-HMAC-SHA256\n" EX_DATE "\n" EX_SCOPE "\n%s", canonical_hash);
	ATF_CHECK_STREQ(r.string_to_sign, sts);
	free(sts);

	ATF_CHECK_STREQ(r.scope, EX_SCOPE);
	ATF_CHECK_STREQ(r.signed_headers, signed_headers);
	ATF_CHECK_STREQ(r.signature, signature);

	char *auth = s3db_asprintf("AWS4-HMAC-SHA256 Credential=" EX_ACCESS "/" EX_SCOPE
	                           ",SignedHeaders=%s,Signature=%s", signed_headers, signature);
	ATF_CHECK_STREQ(r.authorization, auth);
	ATF_CHECK(strstr(r.authorization, EX_SECRET) == NULL);
	free(auth);
	sigv4_result_free(&r);
}

/* ---- AWS's worked examples ---------------------------------------------- */

ATF_TC_WITHOUT_HEAD(aws_example_get_object_with_range);
ATF_TC_BODY(aws_example_get_object_with_range, tc)
{
	char *uri = sigv4_canonical_uri("/test.txt");
	sigv4_pair h[] = {
		{"Host", EX_HOST},
		{"Range", "bytes=0-9"},
		{"x-amz-content-sha256", EMPTY_HASH},
		{"x-amz-date", EX_DATE},
	};
	sigv4_request req = {"GET", uri, "", h, 4, EMPTY_HASH};
	check_example(&req,
	              "GET\n"
	              "/test.txt\n"
	              "\n"
	              "host:examplebucket.s3.amazonaws.com\n"
	              "range:bytes=0-9\n"
	              "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
	              "x-amz-date:20130524T000000Z\n"
	              "\n"
	              "host;range;x-amz-content-sha256;x-amz-date\n"
	              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	              "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
	              "host;range;x-amz-content-sha256;x-amz-date",
	              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	free(uri);
}

ATF_TC_WITHOUT_HEAD(aws_example_put_object_encodes_dollar_in_key);
ATF_TC_BODY(aws_example_put_object_encodes_dollar_in_key, tc)
{
	const char *body = "Welcome to Amazon S3.";
	char payload[65];
	sigv4_payload_hash(body, strlen(body), 0, payload);
	ATF_REQUIRE_STREQ(payload, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

	char *uri = sigv4_canonical_uri("/test$file.text");
	ATF_REQUIRE_STREQ(uri, "/test%24file.text");
	/* Given out of order: the signer sorts the headers. */
	sigv4_pair h[] = {
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
		{"Host", EX_HOST},
		{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
		{"x-amz-date", EX_DATE},
		{"x-amz-content-sha256", payload},
	};
	sigv4_request req = {"PUT", uri, "", h, 5, payload};
	check_example(&req,
	              "PUT\n"
	              "/test%24file.text\n"
	              "\n"
	              "date:Fri, 24 May 2013 00:00:00 GMT\n"
	              "host:examplebucket.s3.amazonaws.com\n"
	              "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
	              "x-amz-date:20130524T000000Z\n"
	              "x-amz-storage-class:REDUCED_REDUNDANCY\n"
	              "\n"
	              "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
	              "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
	              "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
	              "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	              "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	free(uri);
}

ATF_TC_WITHOUT_HEAD(aws_example_get_bucket_lifecycle_signs_bare_parameter_as_name_equals);
ATF_TC_BODY(aws_example_get_bucket_lifecycle_signs_bare_parameter_as_name_equals, tc)
{
	sigv4_pair q[] = {{"lifecycle", NULL}};
	char *query = sigv4_canonical_query(q, 1);
	ATF_REQUIRE_STREQ(query, "lifecycle=");
	char *uri = sigv4_canonical_uri("");
	ATF_REQUIRE_STREQ(uri, "/");
	sigv4_pair h[] = {
		{"host", EX_HOST},
		{"x-amz-content-sha256", EMPTY_HASH},
		{"x-amz-date", EX_DATE},
	};
	sigv4_request req = {"GET", uri, query, h, 3, EMPTY_HASH};
	check_example(&req,
	              "GET\n"
	              "/\n"
	              "lifecycle=\n"
	              "host:examplebucket.s3.amazonaws.com\n"
	              "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
	              "x-amz-date:20130524T000000Z\n"
	              "\n"
	              "host;x-amz-content-sha256;x-amz-date\n"
	              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	              "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
	              "host;x-amz-content-sha256;x-amz-date",
	              "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	free(query);
	free(uri);
}

ATF_TC_WITHOUT_HEAD(aws_example_list_objects_sorts_query_parameters);
ATF_TC_BODY(aws_example_list_objects_sorts_query_parameters, tc)
{
	sigv4_pair q[] = {{"prefix", "J"}, {"max-keys", "2"}};
	char *query = sigv4_canonical_query(q, 2);
	ATF_REQUIRE_STREQ(query, "max-keys=2&prefix=J");
	sigv4_pair h[] = {
		{"host", EX_HOST},
		{"x-amz-content-sha256", EMPTY_HASH},
		{"x-amz-date", EX_DATE},
	};
	sigv4_request req = {"GET", "/", query, h, 3, EMPTY_HASH};
	check_example(&req,
	              "GET\n"
	              "/\n"
	              "max-keys=2&prefix=J\n"
	              "host:examplebucket.s3.amazonaws.com\n"
	              "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
	              "x-amz-date:20130524T000000Z\n"
	              "\n"
	              "host;x-amz-content-sha256;x-amz-date\n"
	              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	              "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
	              "host;x-amz-content-sha256;x-amz-date",
	              "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	free(query);
}

ATF_TC_WITHOUT_HEAD(signature_changes_with_every_input);
ATF_TC_BODY(signature_changes_with_every_input, tc)
{
	sigv4_pair h[] = {{"host", EX_HOST}, {"x-amz-date", EX_DATE}};
	sigv4_request req = {"GET", "/k", "", h, 2, EMPTY_HASH};
	sigv4_result base, r;
	ATF_REQUIRE_EQ(sigv4_sign(&req, &example_key, &base), 0);

	sigv4_key k = example_key;
	k.region = "eu-west-1";
	ATF_REQUIRE_EQ(sigv4_sign(&req, &k, &r), 0);
	ATF_CHECK(strcmp(r.signature, base.signature) != 0);
	ATF_CHECK(strstr(r.authorization, "/eu-west-1/s3/") != NULL);
	sigv4_result_free(&r);

	k = example_key;
	k.secret_key = EX_SECRET "x";
	ATF_REQUIRE_EQ(sigv4_sign(&req, &k, &r), 0);
	ATF_CHECK(strcmp(r.signature, base.signature) != 0);
	sigv4_result_free(&r);

	k = example_key;
	k.amz_date = "20130524T000001Z";
	ATF_REQUIRE_EQ(sigv4_sign(&req, &k, &r), 0);
	ATF_CHECK(strcmp(r.signature, base.signature) != 0);
	sigv4_result_free(&r);

	sigv4_request r2 = req;
	r2.method = "DELETE";
	ATF_REQUIRE_EQ(sigv4_sign(&r2, &example_key, &r), 0);
	ATF_CHECK(strcmp(r.signature, base.signature) != 0);
	sigv4_result_free(&r);

	r2 = req;
	r2.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
	ATF_REQUIRE_EQ(sigv4_sign(&r2, &example_key, &r), 0);
	ATF_CHECK(strcmp(r.signature, base.signature) != 0);
	ATF_CHECK(s3db_str_ends(r.canonical_request, "\nUNSIGNED-PAYLOAD"));
	sigv4_result_free(&r);
	sigv4_result_free(&base);
}

/* Signs req with key (through cache when given) on date; the signature. */
static void sign_on(const sigv4_request *req, const char *date, const char *region,
                    sigv4_key_cache *cache, char out[65])
{
	sigv4_key k = example_key;
	k.amz_date = date;
	k.region = region;
	k.cache = cache;
	sigv4_result r;
	ATF_REQUIRE_EQ(sigv4_sign(req, &k, &r), 0);
	memcpy(out, r.signature, 65);
	sigv4_result_free(&r);
}

ATF_TC_WITHOUT_HEAD(a_key_cache_signs_as_the_secret_key_does_across_days_and_regions);
ATF_TC_BODY(a_key_cache_signs_as_the_secret_key_does_across_days_and_regions, tc)
{
	sigv4_pair h[] = {{"host", EX_HOST}, {"x-amz-date", EX_DATE}};
	sigv4_request req = {"GET", "/k", "", h, 2, EMPTY_HASH};
	/* the day changes twice, then the region; the cache must follow */
	const struct { const char *date, *region; } steps[] = {
		{EX_DATE, "us-east-1"}, {"20130524T235959Z", "us-east-1"},
		{"20130525T000000Z", "us-east-1"}, {EX_DATE, "us-east-1"},
		{EX_DATE, "eu-west-1"}, {EX_DATE, "us-east-1"},
	};
	sigv4_key_cache cache;
	sigv4_key_cache_init(&cache);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		char cached[65], plain[65];
		sign_on(&req, steps[i].date, steps[i].region, &cache, cached);
		sign_on(&req, steps[i].date, steps[i].region, NULL, plain);
		ATF_CHECK_STREQ_MSG(cached, plain, "step %zu (%s, %s)", i, steps[i].date,
		                    steps[i].region);
	}
	/* the scope it holds is the last one; destroying it forgets the key */
	ATF_CHECK_STREQ(cache.scope, "20130524/us-east-1/s3");
	sigv4_key_cache_destroy(&cache);
	static const unsigned char zero[32];
	ATF_CHECK(memcmp(cache.key, zero, sizeof zero) == 0);
	ATF_CHECK_STREQ(cache.scope, "");
}

ATF_TC_WITHOUT_HEAD(sign_refuses_missing_inputs);
ATF_TC_BODY(sign_refuses_missing_inputs, tc)
{
	sigv4_request req = {"GET", "/", "", NULL, 0, EMPTY_HASH};
	sigv4_result r;
	sigv4_key k = example_key;
	k.secret_key = NULL;
	ATF_CHECK_EQ(sigv4_sign(&req, &k, &r), -1);
	k = example_key;
	k.amz_date = "20130524";
	ATF_CHECK_EQ(sigv4_sign(&req, &k, &r), -1);
	sigv4_result_free(&r);
}

/* ---- canonical headers -------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(canonical_headers_are_lowercased_trimmed_sorted_and_joined);
ATF_TC_BODY(canonical_headers_are_lowercased_trimmed_sorted_and_joined, tc)
{
	sigv4_pair h[] = {
		{"X-Amz-Meta-B", "  two   spaces  inside "},
		{"Host", "h"},
		{"x-amz-meta-a", "first"},
		{"X-AMZ-META-A", "second"},
		{"x-amz-meta-empty", ""},
	};
	sigv4_request req = {"PUT", "/k", "", h, 5, EMPTY_HASH};
	char *sh = NULL;
	char *c = sigv4_canonical_request(&req, &sh);
	ATF_REQUIRE(c != NULL);
	ATF_CHECK_STREQ(c, "PUT\n/k\n\n"
	                   "host:h\n"
	                   "x-amz-meta-a:first,second\n"
	                   "x-amz-meta-b:two spaces inside\n"
	                   "x-amz-meta-empty:\n"
	                   "\n"
	                   "host;x-amz-meta-a;x-amz-meta-b;x-amz-meta-empty\n" EMPTY_HASH);
	ATF_CHECK_STREQ(sh, "host;x-amz-meta-a;x-amz-meta-b;x-amz-meta-empty");
	free(c);
	free(sh);
}

ATF_TC_WITHOUT_HEAD(session_token_is_signed_like_any_amz_header);
ATF_TC_BODY(session_token_is_signed_like_any_amz_header, tc)
{
	sigv4_pair h[] = {
		{"host", EX_HOST},
		{"x-amz-date", EX_DATE},
		{"x-amz-security-token", "TOKEN/with+chars="},
		{"x-amz-content-sha256", EMPTY_HASH},
	};
	sigv4_request req = {"GET", "/k", "", h, 4, EMPTY_HASH};
	sigv4_result r;
	ATF_REQUIRE_EQ(sigv4_sign(&req, &example_key, &r), 0);
	ATF_CHECK_STREQ(r.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
	ATF_CHECK(strstr(r.canonical_request, "\nx-amz-security-token:TOKEN/with+chars=\n") != NULL);
	sigv4_result_free(&r);
}

ATF_TC_WITHOUT_HEAD(signed_header_policy_covers_amz_and_conditional_headers);
ATF_TC_BODY(signed_header_policy_covers_amz_and_conditional_headers, tc)
{
	const char *yes[] = {"Host", "x-amz-date", "X-Amz-Content-Sha256", "x-amz-security-token",
	                     "x-amz-meta-anything", "x-amz-copy-source", "Content-Type",
	                     "content-md5", "Range", "If-None-Match", "if-match",
	                     "x-amz-metadata-directive", "content-encoding"};
	const char *no[] = {"Authorization", "User-Agent", "Accept", "Expect",
	                    "Content-Length", "Transfer-Encoding", "x-amzfoo", ""};
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		ATF_CHECK_MSG(sigv4_header_is_signed(yes[i]), "%s should be signed", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		ATF_CHECK_MSG(!sigv4_header_is_signed(no[i]), "%s should not be signed", no[i]);
}

/* ---- encoding ----------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(uri_keeps_unreserved_and_slashes_and_encodes_the_rest_once);
ATF_TC_BODY(uri_keeps_unreserved_and_slashes_and_encodes_the_rest_once, tc)
{
	static const struct {
		const char *raw, *canonical;
	} cases[] = {
		{"/bucket/users/id=abc", "/bucket/users/id%3Dabc"},
		{"/b/a b", "/b/a%20b"},
		{"/b/a+b", "/b/a%2Bb"},
		{"/b/100%", "/b/100%25"},
		{"/b/already%20encoded", "/b/already%2520encoded"},
		{"/b/\xc3\xbc\xe2\x82\xac", "/b/%C3%BC%E2%82%AC"},  /* ü€ */
		{"/b/AZaz09-._~", "/b/AZaz09-._~"},
		{"/b/!*'();:@&$,?#[]", "/b/%21%2A%27%28%29%3B%3A%40%26%24%2C%3F%23%5B%5D"},
		{"/b//double//", "/b//double//"},
		{"/b/./../x", "/b/./../x"},
		{"", "/"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *u = sigv4_canonical_uri(cases[i].raw);
		ATF_REQUIRE(u != NULL);
		ATF_CHECK_STREQ_MSG(u, cases[i].canonical, "raw '%s'", cases[i].raw);
		free(u);
	}
}

ATF_TC_WITHOUT_HEAD(uri_encode_uses_uppercase_hex_for_every_byte);
ATF_TC_BODY(uri_encode_uses_uppercase_hex_for_every_byte, tc)
{
	const char raw[] = "\x01\x7f\xff\n";
	char *e = sigv4_uri_encode(raw, 4, 0);
	ATF_CHECK_STREQ(e, "%01%7F%FF%0A");
	free(e);
	e = sigv4_uri_encode("a/b", 3, 0);
	ATF_CHECK_STREQ(e, "a%2Fb");
	free(e);
	e = sigv4_uri_encode("", 0, 1);
	ATF_CHECK_STREQ(e, "");
	free(e);
}

ATF_TC_WITHOUT_HEAD(query_encodes_names_and_values_and_sorts_by_encoded_name_then_value);
ATF_TC_BODY(query_encodes_names_and_values_and_sorts_by_encoded_name_then_value, tc)
{
	sigv4_pair q[] = {
		{"prefix", "users/id=a b+c%\xc3\xa9/"},
		{"list-type", "2"},
		{"delimiter", "/"},
		{"continuation-token", "1/abc+def=="},
		{"encoding-type", "url"},
		{"a", "2"},
		{"a", "10"},
		{"A", ""},
	};
	char *s = sigv4_canonical_query(q, sizeof q / sizeof *q);
	ATF_CHECK_STREQ(s, "A=&a=10&a=2&continuation-token=1%2Fabc%2Bdef%3D%3D&delimiter=%2F"
	                   "&encoding-type=url&list-type=2"
	                   "&prefix=users%2Fid%3Da%20b%2Bc%25%C3%A9%2F");
	free(s);
	s = sigv4_canonical_query(NULL, 0);
	ATF_CHECK_STREQ(s, "");
	free(s);
	sigv4_pair d[] = {{"delete", ""}};
	s = sigv4_canonical_query(d, 1);
	ATF_CHECK_STREQ(s, "delete=");
	free(s);
}

ATF_TC_WITHOUT_HEAD(raw_query_is_decoded_then_canonicalised);
ATF_TC_BODY(raw_query_is_decoded_then_canonicalised, tc)
{
	char *s = sigv4_canonical_query_raw("delete");
	ATF_CHECK_STREQ(s, "delete=");
	free(s);
	s = sigv4_canonical_query_raw("?prefix=a%2fb&list-type=2&&start-after=x%20y");
	ATF_CHECK_STREQ(s, "list-type=2&prefix=a%2Fb&start-after=x%20y");
	free(s);
	s = sigv4_canonical_query_raw("k=a~b*c");
	ATF_CHECK_STREQ(s, "k=a~b%2Ac");
	free(s);
	s = sigv4_canonical_query_raw("");
	ATF_CHECK_STREQ(s, "");
	free(s);
	ATF_CHECK(sigv4_canonical_query_raw("bad=%G1") == NULL);
	ATF_CHECK(sigv4_canonical_query_raw("bad=%4") == NULL);
}

ATF_TC_WITHOUT_HEAD(uri_decode_reverses_encode_and_rejects_bad_escapes);
ATF_TC_BODY(uri_decode_reverses_encode_and_rejects_bad_escapes, tc)
{
	const char raw[] = "users/id=a b+c%\xc3\xa9";
	char *e = sigv4_uri_encode(raw, strlen(raw), 0);
	size_t n = 0;
	char *d = sigv4_uri_decode(e, strlen(e), 0, &n);
	ATF_CHECK_STREQ(d, raw);
	ATF_CHECK_EQ(n, strlen(raw));
	free(e);
	free(d);
	d = sigv4_uri_decode("a+b%2Bc", 7, 1, NULL);
	ATF_CHECK_STREQ(d, "a b+c");
	free(d);
	d = sigv4_uri_decode("a+b", 3, 0, NULL);
	ATF_CHECK_STREQ(d, "a+b");
	free(d);
	d = sigv4_uri_decode("%00x", 4, 0, &n);
	ATF_CHECK_EQ(n, 2);
	free(d);
	ATF_CHECK(sigv4_uri_decode("%", 1, 0, NULL) == NULL);
	ATF_CHECK(sigv4_uri_decode("%zz", 3, 0, NULL) == NULL);
}

ATF_TC_WITHOUT_HEAD(payload_hash_is_hex_sha256_or_unsigned_literal);
ATF_TC_BODY(payload_hash_is_hex_sha256_or_unsigned_literal, tc)
{
	char h[65];
	sigv4_payload_hash(NULL, 0, 0, h);
	ATF_CHECK_STREQ(h, EMPTY_HASH);
	sigv4_payload_hash("abc", 3, 0, h);
	ATF_CHECK_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sigv4_payload_hash("abc", 3, 1, h);
	ATF_CHECK_STREQ(h, "UNSIGNED-PAYLOAD");
}

ATF_TC_WITHOUT_HEAD(amz_date_is_utc_basic_format);
ATF_TC_BODY(amz_date_is_utc_basic_format, tc)
{
	char d[17];
	sigv4_amz_date(1369353600, d);
	ATF_CHECK_STREQ(d, "20130524T000000Z");
	sigv4_amz_date(1709251199, d);
	ATF_CHECK_STREQ(d, "20240229T235959Z");
}

/* ---- verifying ---------------------------------------------------------- */

ATF_TC_WITHOUT_HEAD(authorization_parses_back_into_its_parts);
ATF_TC_BODY(authorization_parses_back_into_its_parts, tc)
{
	sigv4_auth a;
	ATF_REQUIRE_EQ(sigv4_parse_authorization(
	        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
	        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
	        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", &a), 0);
	ATF_CHECK_STREQ(a.access_key, EX_ACCESS);
	ATF_CHECK_STREQ(a.date8, "20130524");
	ATF_CHECK_STREQ(a.region, "us-east-1");
	ATF_CHECK_STREQ(a.service, "s3");
	ATF_CHECK_STREQ(a.signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
	ATF_CHECK_STREQ(a.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

	/* The SDKs' form, with a space after each comma. */
	ATF_CHECK_EQ(sigv4_parse_authorization(
	        "AWS4-HMAC-SHA256 Credential=AK/20130524/r/s3/aws4_request, SignedHeaders=host, "
	        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", &a), 0);
	ATF_CHECK_STREQ(a.signed_headers, "host");

	ATF_CHECK_EQ(sigv4_parse_authorization("AWS AK:sig", &a), -1);
	ATF_CHECK_EQ(sigv4_parse_authorization(
	        "AWS4-HMAC-SHA256 Credential=AK/2013/r/s3/aws4_request,SignedHeaders=host,"
	        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", &a), -1);
	ATF_CHECK_EQ(sigv4_parse_authorization(
	        "AWS4-HMAC-SHA256 Credential=AK/20130524/r/s3/aws4_request,SignedHeaders=host", &a), -1);
	ATF_CHECK_EQ(sigv4_parse_authorization(
	        "AWS4-HMAC-SHA256 Credential=AK/20130524/r/s3/aws4_request,SignedHeaders=host,"
	        "Signature=short", &a), -1);
}

ATF_TC_WITHOUT_HEAD(a_verifier_rebuilds_the_signature_from_what_it_received);
ATF_TC_BODY(a_verifier_rebuilds_the_signature_from_what_it_received, tc)
{
	/* Client side: a ListObjectsV2 with an awkward prefix. */
	sigv4_pair q[] = {{"list-type", "2"}, {"prefix", "a b/c=d"}, {"delete", NULL}};
	char *query = sigv4_canonical_query(q, 3);
	sigv4_pair h[] = {{"host", "127.0.0.1:9000"}, {"x-amz-date", EX_DATE},
	                  {"x-amz-content-sha256", EMPTY_HASH}};
	sigv4_request req = {"GET", "/bucket", query, h, 3, EMPTY_HASH};
	sigv4_result sent;
	ATF_REQUIRE_EQ(sigv4_sign(&req, &example_key, &sent), 0);

	/* Server side: re-canonicalise the query as received, sign again. */
	sigv4_auth a;
	ATF_REQUIRE_EQ(sigv4_parse_authorization(sent.authorization, &a), 0);
	char *again = sigv4_canonical_query_raw(query);
	ATF_CHECK_STREQ(again, query);
	sigv4_request got = {"GET", "/bucket", again, h, 3, EMPTY_HASH};
	sigv4_key k = {a.access_key, EX_SECRET, a.region, a.service, EX_DATE, NULL};
	sigv4_result check;
	ATF_REQUIRE_EQ(sigv4_sign(&got, &k, &check), 0);
	ATF_CHECK(sigv4_equal(check.signature, a.signature));
	ATF_CHECK(!sigv4_equal(check.signature, EMPTY_HASH));
	ATF_CHECK(!sigv4_equal(check.signature, "abc"));
	free(query);
	free(again);
	sigv4_result_free(&sent);
	sigv4_result_free(&check);
}

/* ---- creds -------------------------------------------------------------- */

static void clear_aws_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
	};
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		unsetenv(vars[i]);
}

/* Makes the test's work directory the home, with .aws/ in it. */
static void fresh_home(void)
{
	char cwd[4096];
	ATF_REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
	clear_aws_env();
	setenv("HOME", cwd, 1);
	ATF_REQUIRE(system("mkdir -p .aws") == 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ATF_REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

static const char credentials_file[] =
	"# comment\n"
	"[default]\n"
	"aws_access_key_id = AKDEFAULT\n"
	"aws_secret_access_key=SKDEFAULT  \n"
	"\n"
	"[work]\n"
	"; another comment\n"
	"AWS_ACCESS_KEY_ID = AKWORK\n"
	"aws_secret_access_key = SK/WORK+=\n"
	"aws_session_token = TOKWORK\n"
	"s3 =\n"
	"  aws_access_key_id = NESTED\n"
	"[half]\n"
	"aws_access_key_id = AKHALF\n";

ATF_TC_WITHOUT_HEAD(creds_come_from_the_environment_first);
ATF_TC_BODY(creds_come_from_the_environment_first, tc)
{
	fresh_home();
	write_file(".aws/credentials", credentials_file);
	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
	setenv("AWS_SESSION_TOKEN", "TOKENV", 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", 1);
	creds c;
	s3db_error err = {0};
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.access_key, "AKENV");
	ATF_CHECK_STREQ(c.secret_key, "SKENV");
	ATF_CHECK_STREQ(c.session_token, "TOKENV");
	ATF_CHECK_STREQ(c.region, "eu-west-3");
	ATF_CHECK_STREQ(c.endpoint, "http://127.0.0.1:9000");
	ATF_CHECK_STREQ(c.source, "env");
	creds_free(&c);
	ATF_CHECK(c.secret_key == NULL);

	unsetenv("AWS_REGION");
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.region, "ap-south-1");
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(creds_need_both_env_keys_else_the_default_profile_is_read);
ATF_TC_BODY(creds_need_both_env_keys_else_the_default_profile_is_read, tc)
{
	fresh_home();
	write_file(".aws/credentials", credentials_file);
	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "", 1);  /* empty counts as unset */
	creds c;
	s3db_error err = {0};
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.access_key, "AKDEFAULT");
	ATF_CHECK_STREQ(c.secret_key, "SKDEFAULT");
	ATF_CHECK(c.session_token == NULL);
	ATF_CHECK(c.region == NULL);
	ATF_CHECK(c.endpoint == NULL);
	ATF_CHECK_STREQ(c.source, "profile");
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(creds_read_the_named_profile_and_its_region_from_config);
ATF_TC_BODY(creds_read_the_named_profile_and_its_region_from_config, tc)
{
	fresh_home();
	write_file(".aws/credentials", credentials_file);
	write_file(".aws/config", "[default]\nregion = us-west-2\n[profile work]\nregion = eu-north-1\n");
	setenv("AWS_PROFILE", "work", 1);
	creds c;
	s3db_error err = {0};
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.access_key, "AKWORK");       /* key names are case-insensitive */
	ATF_CHECK_STREQ(c.secret_key, "SK/WORK+=");
	ATF_CHECK_STREQ(c.session_token, "TOKWORK");
	ATF_CHECK_STREQ(c.region, "eu-north-1");
	creds_free(&c);

	unsetenv("AWS_PROFILE");
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.region, "us-west-2");
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(creds_honour_the_shared_credentials_file_variable);
ATF_TC_BODY(creds_honour_the_shared_credentials_file_variable, tc)
{
	fresh_home();
	write_file(".aws/credentials", credentials_file);
	write_file("other-credentials", "[default]\naws_access_key_id=AKOTHER\naws_secret_access_key=SKOTHER\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", "other-credentials", 1);
	creds c;
	s3db_error err = {0};
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.access_key, "AKOTHER");
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(creds_fill_only_what_the_connection_string_left_out);
ATF_TC_BODY(creds_fill_only_what_the_connection_string_left_out, tc)
{
	fresh_home();
	setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	creds c;
	creds_init(&c);
	c.access_key = strdup("AKURL");
	c.secret_key = strdup("SKURL");
	c.region = strdup("us-east-2");
	s3db_error err = {0};
	ATF_REQUIRE_EQ(creds_fill(&c, &err), S3DB_OK);
	ATF_CHECK_STREQ(c.access_key, "AKURL");
	ATF_CHECK_STREQ(c.secret_key, "SKURL");
	ATF_CHECK(c.session_token == NULL);
	ATF_CHECK_STREQ(c.region, "us-east-2");
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(creds_are_anonymous_when_nothing_is_configured);
ATF_TC_BODY(creds_are_anonymous_when_nothing_is_configured, tc)
{
	fresh_home();
	creds c;
	s3db_error err = {0};
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK(c.access_key == NULL);
	ATF_CHECK(c.secret_key == NULL);
	ATF_CHECK(c.source == NULL);
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(creds_report_a_missing_explicit_profile_without_secrets);
ATF_TC_BODY(creds_report_a_missing_explicit_profile_without_secrets, tc)
{
	fresh_home();
	write_file(".aws/credentials", credentials_file);
	setenv("AWS_PROFILE", "nosuch", 1);
	creds c;
	s3db_error err = {0};
	ATF_CHECK_EQ(creds_resolve(&c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK(strstr(err.message, "nosuch") != NULL);
	ATF_CHECK(c.access_key == NULL);

	setenv("AWS_PROFILE", "half", 1);
	ATF_CHECK_EQ(creds_resolve(&c, &err), S3DB_ERR_BAD_CONNSTR);
	ATF_CHECK(strstr(err.message, "aws_secret_access_key") != NULL);
	ATF_CHECK(strstr(err.message, "AKHALF") == NULL);

	/* A profile that exists only in the config file is not an error. */
	write_file(".aws/config", "[profile cfgonly]\nregion = sa-east-1\n");
	setenv("AWS_PROFILE", "cfgonly", 1);
	ATF_REQUIRE_EQ(creds_resolve(&c, &err), S3DB_OK);
	ATF_CHECK(c.access_key == NULL);
	ATF_CHECK_STREQ(c.region, "sa-east-1");
	creds_free(&c);
}

ATF_TC_WITHOUT_HEAD(ini_reader_distinguishes_missing_file_section_and_key);
ATF_TC_BODY(ini_reader_distinguishes_missing_file_section_and_key, tc)
{
	fresh_home();
	write_file("f.ini", credentials_file);
	char *v = NULL;
	ATF_CHECK_EQ(creds_ini_get("f.ini", "work", "aws_session_token", &v), 0);
	ATF_CHECK_STREQ(v, "TOKWORK");
	free(v);
	ATF_CHECK_EQ(creds_ini_get("f.ini", "work", "region", &v), 1);
	ATF_CHECK(v == NULL);
	ATF_CHECK_EQ(creds_ini_get("f.ini", "nosuch", "region", &v), 2);
	ATF_CHECK_EQ(creds_ini_get("nosuch.ini", "work", "region", &v), 3);
	/* A nested (indented) key does not shadow the profile's own. */
	ATF_CHECK_EQ(creds_ini_get("f.ini", "work", "aws_access_key_id", &v), 0);
	ATF_CHECK_STREQ(v, "AKWORK");
	free(v);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, aws_example_get_object_with_range);
	ATF_TP_ADD_TC(tp, aws_example_put_object_encodes_dollar_in_key);
	ATF_TP_ADD_TC(tp, aws_example_get_bucket_lifecycle_signs_bare_parameter_as_name_equals);
	ATF_TP_ADD_TC(tp, aws_example_list_objects_sorts_query_parameters);
	ATF_TP_ADD_TC(tp, signature_changes_with_every_input);
	ATF_TP_ADD_TC(tp, a_key_cache_signs_as_the_secret_key_does_across_days_and_regions);
	ATF_TP_ADD_TC(tp, sign_refuses_missing_inputs);
	ATF_TP_ADD_TC(tp, canonical_headers_are_lowercased_trimmed_sorted_and_joined);
	ATF_TP_ADD_TC(tp, session_token_is_signed_like_any_amz_header);
	ATF_TP_ADD_TC(tp, signed_header_policy_covers_amz_and_conditional_headers);
	ATF_TP_ADD_TC(tp, uri_keeps_unreserved_and_slashes_and_encodes_the_rest_once);
	ATF_TP_ADD_TC(tp, uri_encode_uses_uppercase_hex_for_every_byte);
	ATF_TP_ADD_TC(tp, query_encodes_names_and_values_and_sorts_by_encoded_name_then_value);
	ATF_TP_ADD_TC(tp, raw_query_is_decoded_then_canonicalised);
	ATF_TP_ADD_TC(tp, uri_decode_reverses_encode_and_rejects_bad_escapes);
	ATF_TP_ADD_TC(tp, payload_hash_is_hex_sha256_or_unsigned_literal);
	ATF_TP_ADD_TC(tp, amz_date_is_utc_basic_format);
	ATF_TP_ADD_TC(tp, authorization_parses_back_into_its_parts);
	ATF_TP_ADD_TC(tp, a_verifier_rebuilds_the_signature_from_what_it_received);
	ATF_TP_ADD_TC(tp, creds_come_from_the_environment_first);
	ATF_TP_ADD_TC(tp, creds_need_both_env_keys_else_the_default_profile_is_read);
	ATF_TP_ADD_TC(tp, creds_read_the_named_profile_and_its_region_from_config);
	ATF_TP_ADD_TC(tp, creds_honour_the_shared_credentials_file_variable);
	ATF_TP_ADD_TC(tp, creds_fill_only_what_the_connection_string_left_out);
	ATF_TP_ADD_TC(tp, creds_are_anonymous_when_nothing_is_configured);
	ATF_TP_ADD_TC(tp, creds_report_a_missing_explicit_profile_without_secrets);
	ATF_TP_ADD_TC(tp, ini_reader_distinguishes_missing_file_section_and_key);
	return atf_no_error();
}
