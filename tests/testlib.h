/*
 * testlib.h — what every ATF test program of s3dbfs shares.
 *
 * Tests that need the S3 server read where it is from the environment that
 * tests/servers/servers.sh writes (scripts/test.sh exports it before kyua
 * runs):
 *   S3DB_TEST_S3_URL      http://127.0.0.1:PORT of the strict front
 *   S3DB_TEST_S3_BUCKET   a bucket that exists
 *   S3DB_TEST_ACCESS_KEY / S3DB_TEST_SECRET_KEY
 * A test that needs the server fails (never skips) when it is not there.
 *
 * The front's control API (faults, request log) is reached with
 * testlib_front_*; every test that sets a fault clears it in its body and
 * in its cleanup.
 */
#ifndef S3DB_TESTLIB_H
#define S3DB_TESTLIB_H

#include <atf-c.h>
#include <json-c/json.h>
#include "s3db.h"

/* Fails the test case with the error's message unless code is S3DB_OK. */
#define CHECK_OK(code, err) do { s3db_code c_ = (code); \
	if (c_ != S3DB_OK) atf_tc_fail("%s:%d: %s: %s", __FILE__, __LINE__, \
	                               s3db_strerror(c_), (err)->message); } while (0)

/* Environment of the S3 test server; fails the test when unset. */
const char *testlib_s3_url(void);
const char *testlib_s3_bucket(void);
const char *testlib_access_key(void);
const char *testlib_secret_key(void);

/* A fresh unique key prefix for this test ("t/<test>-<pid>-<n>"); static. */
const char *testlib_unique_prefix(const char *name);

/* http://KEY:SECRET@127.0.0.1:PORT/BUCKET/<prefix> (malloc'd). */
char *testlib_s3_connstr(const char *prefix);
/* file://<fresh temporary directory> (malloc'd). */
char *testlib_file_connstr(void);

/* Front control: POST a fault rule (JSON text); clear faults; read or clear
 * the request log.  Return 0 on success. */
int testlib_front_fault(const char *rule_json);
int testlib_front_clear_faults(void);
int testlib_front_clear_log(void);
/* The request log since the last clear: a JSON array of entries
 * {method, path, query, command, key, status, fault}. Caller puts it. */
json_object *testlib_front_log(void);

/* Reads a whole file (malloc'd, NUL-terminated); NULL on error. */
char *testlib_read_file(const char *path, size_t *len);
/* Parses a JSON file from tests/fixtures/<rel>; fails the test on error. */
json_object *testlib_fixture_json(const char *rel);

#endif
