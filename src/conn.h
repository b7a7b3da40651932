/*
 * conn.h — connection strings, parsed as s3db.js parses them (spec §1.1,
 * B.1), plus the query options s3dbfs adds.
 *
 *   s3://KEY:SECRET@BUCKET/prefix          AWS, virtual-host addressing
 *   http(s)://KEY:SECRET@host:port/BUCKET/prefix   any S3-compatible
 *                                          endpoint, path-style
 *   file:///abs/dir, file://./rel/dir      the local backend
 *
 * Userinfo and the bucket are percent-decoded; the key prefix is
 * normalised as Node's path.join would (no leading or trailing '/', no
 * empty, '.' or '..' segments — '..' above the root is an error).
 * Query options (all optional): region, forcePathStyle (true/false),
 * sessionToken, endpoint (for s3://), parallelism, timeout (ms),
 * retries, passphrase is NOT accepted in the URL (it would show in ps).
 * Unlike s3db.js 21.x, ?region= is honoured for s3:// (the endpoint then
 * becomes https://s3.<region>.amazonaws.com), as v7 did.
 */
#ifndef S3DB_CONN_H
#define S3DB_CONN_H

#include "s3db.h"

typedef enum conn_kind { CONN_S3 = 0, CONN_FILE } conn_kind;

typedef struct conn_info {
	conn_kind kind;
	char *endpoint;       /* "https://s3.us-east-1.amazonaws.com", or
	                         "http://host:port"; NULL for file        */
	char *bucket;         /* NULL for file                            */
	char *prefix;         /* "" when none; never starts/ends with '/' */
	char *region;         /* default "us-east-1" ("local" for file)   */
	int path_style;       /* 1 for http(s):// or forcePathStyle=true  */
	char *access_key;     /* NULL when absent (then the environment)  */
	char *secret_key;
	char *session_token;
	char *root;           /* file: the absolute directory             */
	int parallelism;      /* 0 = default                              */
	int timeout_ms;       /* 0 = default                              */
	int max_retries;      /* -1 = default                             */
} conn_info;

/* Parses s into *out (zeroed first).  On error returns
 * S3DB_ERR_BAD_CONNSTR with a message that says what is wrong and where,
 * and never includes the secret. */
s3db_code conn_parse(const char *s, conn_info *out, s3db_error *err);
void conn_info_free(conn_info *c);
/* The connection string with the secret (and session token) replaced by
 * "***"; malloc'd. */
char *conn_describe(const conn_info *c);
/* Joins the prefix and a relative key with '/' ("" prefix: the key). */
char *conn_full_key(const conn_info *c, const char *relative);

/* [from, to) of a connection string that is secret. */
typedef struct conn_span {
	size_t from, to;
} conn_span;
/* Finds the secret parts of a connection string, well-formed or not: the
 * secret of the userinfo (after its first ':', up to the '@' that ends
 * the userinfo — the last '@' of the string when a raw '/' is in the
 * secret; nothing for host:port) and the values of query options whose
 * names look secret (token, secret, pass, key, credential).  Fills up to
 * max spans in order and returns how many. */
size_t conn_secret_spans(const char *s, conn_span *spans, size_t max);

#endif
