/*
 * t_util.c — the shared helpers: JSON.stringify-identical output, dates as
 * JavaScript writes them, UTF-8 checks, and error messages.
 */
#include <string.h>
#include "testlib.h"
#include "util.h"

static void check_stringify(const char *in, int indent, const char *want)
{
	json_object *o = NULL;
	s3db_error err;
	ATF_REQUIRE_EQ(s3db_json_parse(in, strlen(in), &o, &err), S3DB_OK);
	char *got = s3db_json_stringify(o, indent);
	ATF_CHECK_STREQ_MSG(got, want, "stringify(%s)", in);
	free(got);
	json_object_put(o);
}

ATF_TC_WITHOUT_HEAD(stringify_is_byte_identical_to_json_stringify);
ATF_TC_BODY(stringify_is_byte_identical_to_json_stringify, tc)
{
	check_stringify("{ \"a\" : 1, \"b\": [1, 2.5, \"x/y\"], \"c\": {} }", 0,
	                "{\"a\":1,\"b\":[1,2.5,\"x/y\"],\"c\":{}}");
	check_stringify("[0.1, 1e21, 1.5e-7, -0.0, 100.0]", 0, "[0.1,1e+21,1.5e-7,0,100]");
	check_stringify("\"tab\\there\\u0001\\n\\\"q\\\"\"", 0, "\"tab\\there\\u0001\\n\\\"q\\\"\"");
	check_stringify("\"caf\\u00e9 \\ud83d\\ude00\"", 0, "\"café 😀\"");
}

ATF_TC_WITHOUT_HEAD(pretty_output_matches_stringify_with_two_spaces);
ATF_TC_BODY(pretty_output_matches_stringify_with_two_spaces, tc)
{
	check_stringify("{\"a\":{\"b\":[1,2]},\"e\":{},\"f\":[]}", 2,
	                "{\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  },\n"
	                "  \"e\": {},\n  \"f\": []\n}");
}

ATF_TC_WITHOUT_HEAD(parse_reports_line_and_column_of_bad_json);
ATF_TC_BODY(parse_reports_line_and_column_of_bad_json, tc)
{
	json_object *o = NULL;
	s3db_error err;
	const char *bad = "{\n  \"a\": 1,\n  \"b\": tru\n}";
	ATF_CHECK_EQ(s3db_json_parse(bad, strlen(bad), &o, &err), S3DB_ERR_INVALID_JSON);
	ATF_CHECK(o == NULL);
	ATF_CHECK_MSG(strstr(err.message, "line 3") != NULL, "%s", err.message);
	const char *trailing = "{} x";
	ATF_CHECK_EQ(s3db_json_parse(trailing, strlen(trailing), &o, &err), S3DB_ERR_INVALID_JSON);
	const char *empty = "";
	ATF_CHECK_EQ(s3db_json_parse(empty, 0, &o, &err), S3DB_ERR_INVALID_JSON);
	const char *cut = "{\"a\": [1, 2";
	ATF_CHECK_EQ(s3db_json_parse(cut, strlen(cut), &o, &err), S3DB_ERR_INVALID_JSON);
}

ATF_TC_WITHOUT_HEAD(parse_accepts_bare_scalars);
ATF_TC_BODY(parse_accepts_bare_scalars, tc)
{
	json_object *o = NULL;
	s3db_error err;
	ATF_REQUIRE_EQ(s3db_json_parse("9.99", 4, &o, &err), S3DB_OK);
	ATF_CHECK(json_object_get_double(o) == 9.99);
	json_object_put(o);
	ATF_REQUIRE_EQ(s3db_json_parse("42\n", 3, &o, &err), S3DB_OK);
	ATF_CHECK_EQ(json_object_get_int64(o), 42);
	json_object_put(o);
	ATF_CHECK_EQ(s3db_json_parse("4x", 2, &o, &err), S3DB_ERR_INVALID_JSON);
}

ATF_TC_WITHOUT_HEAD(iso8601_round_trips_as_javascript_writes_it);
ATF_TC_BODY(iso8601_round_trips_as_javascript_writes_it, tc)
{
	char buf[40];
	int64_t ms;
	ATF_REQUIRE_EQ(s3db_parse_iso8601("2026-11-27T00:21:04.612Z", &ms), 0);
	ATF_CHECK_EQ(ms, 1795738864612LL);
	s3db_iso8601(ms, buf, sizeof buf);
	ATF_CHECK_STREQ(buf, "2026-11-27T00:21:04.612Z");
	ATF_REQUIRE_EQ(s3db_parse_iso8601("1990-05-15", &ms), 0);
	s3db_iso8601(ms, buf, sizeof buf);
	ATF_CHECK_STREQ(buf, "1990-05-15T00:00:00.000Z");
	ATF_REQUIRE_EQ(s3db_parse_iso8601("2024-01-02T03:04:05+02:00", &ms), 0);
	s3db_iso8601(ms, buf, sizeof buf);
	ATF_CHECK_STREQ(buf, "2024-01-02T01:04:05.000Z");
	s3db_iso8601(-1, buf, sizeof buf);
	ATF_CHECK_STREQ(buf, "1969-12-31T23:59:59.999Z");
	ATF_CHECK(s3db_parse_iso8601("2026-02-31", &ms) != 0);
	ATF_CHECK(s3db_parse_iso8601("yesterday", &ms) != 0);
	ATF_CHECK(s3db_parse_iso8601("2026-11-27T25:00", &ms) != 0);
}

ATF_TC_WITHOUT_HEAD(http_dates_parse_to_epoch_ms);
ATF_TC_BODY(http_dates_parse_to_epoch_ms, tc)
{
	int64_t ms;
	ATF_REQUIRE_EQ(s3db_parse_http_date("Fri, 27 Nov 2026 00:14:12 GMT", &ms), 0);
	ATF_CHECK_EQ(ms, 1795738452000LL);
	ATF_CHECK(s3db_parse_http_date("not a date", &ms) != 0);
}

ATF_TC_WITHOUT_HEAD(utf8_validation_refuses_overlongs_surrogates_and_nul);
ATF_TC_BODY(utf8_validation_refuses_overlongs_surrogates_and_nul, tc)
{
	ATF_CHECK(s3db_utf8_valid("caf\xc3\xa9", 5));
	ATF_CHECK(s3db_utf8_valid("\xf0\x9f\x98\x80", 4));
	ATF_CHECK(!s3db_utf8_valid("\xc0\xaf", 2));          /* overlong '/' */
	ATF_CHECK(!s3db_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
	ATF_CHECK(!s3db_utf8_valid("a\0b", 3));
	ATF_CHECK(!s3db_utf8_valid("\xe6\x97", 2));          /* truncated */
	ATF_CHECK_EQ(s3db_utf16_len("a\xf0\x9f\x98\x80" "b"), 4);
}

ATF_TC_WITHOUT_HEAD(every_error_code_has_a_readable_message);
ATF_TC_BODY(every_error_code_has_a_readable_message, tc)
{
	for (int c = 0; c < S3DB_ERR__COUNT; c++) {
		const char *m = s3db_strerror((s3db_code)c);
		ATF_CHECK_MSG(m && *m && strcmp(m, "unknown error") != 0, "code %d", c);
	}
	ATF_CHECK_STREQ(s3db_strerror(S3DB_ERR_NOT_FOUND), "not found");
	s3db_error err;
	ATF_CHECK_EQ(s3db_error_set(&err, S3DB_ERR_VALIDATION, "field '%s'", "age"), S3DB_ERR_VALIDATION);
	s3db_error_prefix(&err, "users/u1");
	ATF_CHECK_STREQ(err.message, "users/u1: field 'age'");
	ATF_CHECK_STREQ(s3db_command_name(S3DB_CMD_LIST_OBJECTS_V2), "ListObjectsV2");
}

ATF_TC_WITHOUT_HEAD(array_room_grows_by_doubling_and_keeps_the_elements);
ATF_TC_BODY(array_room_grows_by_doubling_and_keeps_the_elements, tc)
{
	int *items = NULL;
	size_t cap = 0, n = 0;
	for (int i = 0; i < 10; i++) {
		int *room = s3db_array_room(items, &cap, n, sizeof *items, 4);
		ATF_REQUIRE(room != NULL);
		if (n < 4)
			ATF_REQUIRE_EQ(cap, 4);
		else if (n < 8)
			ATF_REQUIRE_EQ(cap, 8);
		else
			ATF_REQUIRE_EQ(cap, 16);
		items = room;
		items[n++] = i * 7;
	}
	/* room left: the same array, the same capacity */
	ATF_REQUIRE(s3db_array_room(items, &cap, n, sizeof *items, 4) == items);
	ATF_REQUIRE_EQ(cap, 16);
	for (int i = 0; i < 10; i++)
		ATF_REQUIRE_EQ(items[i], i * 7);
	free(items);
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, stringify_is_byte_identical_to_json_stringify);
	ATF_TP_ADD_TC(tp, pretty_output_matches_stringify_with_two_spaces);
	ATF_TP_ADD_TC(tp, parse_reports_line_and_column_of_bad_json);
	ATF_TP_ADD_TC(tp, parse_accepts_bare_scalars);
	ATF_TP_ADD_TC(tp, iso8601_round_trips_as_javascript_writes_it);
	ATF_TP_ADD_TC(tp, http_dates_parse_to_epoch_ms);
	ATF_TP_ADD_TC(tp, utf8_validation_refuses_overlongs_surrogates_and_nul);
	ATF_TP_ADD_TC(tp, every_error_code_has_a_readable_message);
	ATF_TP_ADD_TC(tp, array_room_grows_by_doubling_and_keeps_the_elements);
	return atf_no_error();
}
