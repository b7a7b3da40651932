/*
 * fuzz_conn.c — the connection-string parser on hostile input: it either
 * refuses with S3DB_ERR_BAD_CONNSTR or gives a well-formed result, and
 * neither its messages nor conn_describe ever show the secret.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* conn_describe must mask the secret: parsed again, the description's
 * secret is "***" (text equal to the secret may still appear in the
 * prefix or the host, which are not secret). */
static int secret_leaks(const conn_info *c, const char *described)
{
	conn_info again;
	if (conn_parse(described, &again, NULL) != S3DB_OK)
		return 0; /* a description need not parse (e.g. odd prefixes) */
	int leak = again.secret_key && strcmp(again.secret_key, "***") != 0 &&
	           strcmp(again.secret_key, c->secret_key) == 0;
	conn_info_free(&again);
	return leak;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = strndup((const char *)data, size);
	if (!s)
		return 0;
	conn_info c;
	s3db_error err;
	s3db_code rc = conn_parse(s, &c, &err);
	if (rc == S3DB_OK) {
		if (c.kind == CONN_S3 && (!c.bucket || !c.endpoint || !c.prefix))
			abort();
		if (c.prefix && (c.prefix[0] == '/' || strstr(c.prefix, "//")))
			abort();
		char *d = conn_describe(&c);
		if (c.secret_key && d && secret_leaks(&c, d))
			abort();
		free(d);
		conn_info_free(&c);
	} else if (rc != S3DB_ERR_BAD_CONNSTR && rc != S3DB_ERR_NOMEM) {
		abort();
	}
	free(s);
	return 0;
}
