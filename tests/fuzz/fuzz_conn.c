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
		if (c.secret_key && strlen(c.secret_key) >= 4 && d && strstr(d, c.secret_key))
			abort();
		free(d);
		conn_info_free(&c);
	} else if (rc != S3DB_ERR_BAD_CONNSTR && rc != S3DB_ERR_NOMEM) {
		abort();
	}
	free(s);
	return 0;
}
