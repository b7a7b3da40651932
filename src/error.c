/*
 * error.c — the one error enum's readable messages, and the helpers that
 * fill an s3db_error.  Messages are static; details go into
 * s3db_error.message, written by the module that saw the failure.
 */
#include <stdio.h>
#include <string.h>
#include "util.h"

static const char *const error_messages[S3DB_ERR__COUNT] = {
	[S3DB_OK] = "ok",
	[S3DB_ERR_NOT_FOUND] = "not found",
	[S3DB_ERR_EXISTS] = "already exists",
	[S3DB_ERR_ACCESS_DENIED] = "access denied",
	[S3DB_ERR_SIGNATURE] = "signature mismatch",
	[S3DB_ERR_METADATA_TOO_LARGE] = "metadata too large",
	[S3DB_ERR_PRECONDITION] = "precondition failed",
	[S3DB_ERR_NETWORK] = "network error",
	[S3DB_ERR_TIMEOUT] = "timeout",
	[S3DB_ERR_SERVER] = "server error",
	[S3DB_ERR_NO_SUCH_BUCKET] = "no such bucket",
	[S3DB_ERR_BAD_REQUEST] = "bad request",
	[S3DB_ERR_INVALID_ARG] = "invalid argument",
	[S3DB_ERR_INVALID_JSON] = "invalid JSON",
	[S3DB_ERR_VALIDATION] = "validation failed",
	[S3DB_ERR_BAD_ID] = "invalid id",
	[S3DB_ERR_BAD_CONNSTR] = "malformed connection string",
	[S3DB_ERR_CORRUPT] = "corrupt data",
	[S3DB_ERR_NO_RESOURCE] = "no such resource",
	[S3DB_ERR_CRYPTO] = "encryption error",
	[S3DB_ERR_IO] = "I/O error",
	[S3DB_ERR_NOMEM] = "out of memory",
	[S3DB_ERR_UNSUPPORTED] = "not supported",
	[S3DB_ERR_INTERNAL] = "internal error",
};

/* Returns a static string for code; "unknown error" for values outside
 * the enum. */
const char *s3db_strerror(s3db_code code)
{
	if ((int)code < 0 || code >= S3DB_ERR__COUNT || !error_messages[code])
		return "unknown error";
	return error_messages[code];
}

static const char *const command_names[S3DB_CMD__COUNT] = {
	"PutObject", "GetObject", "HeadObject", "DeleteObject",
	"DeleteObjects", "ListObjectsV2", "CopyObject",
};

/* AWS's name of a command; "Unknown" outside the enum. */
const char *s3db_command_name(s3db_command cmd)
{
	if ((int)cmd < 0 || cmd >= S3DB_CMD__COUNT)
		return "Unknown";
	return command_names[cmd];
}

/* Sets err->code and err->message (when err is given); returns code so a
 * failure path is one statement.  The message defaults to the code's text
 * when fmt is NULL. */
s3db_code s3db_error_set(s3db_error *err, s3db_code code, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	if (!fmt) {
		snprintf(err->message, sizeof err->message, "%s", s3db_strerror(code));
		return code;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return code;
}

/* Puts "<prefix>: " before the current message, so outer layers can say
 * where an inner failure happened. */
void s3db_error_prefix(s3db_error *err, const char *fmt, ...)
{
	if (!err)
		return;
	char prefix[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	char old[sizeof err->message];
	memcpy(old, err->message, sizeof old);
	size_t n = strlen(prefix);
	if (n > sizeof err->message - 3)
		n = sizeof err->message - 3;
	memcpy(err->message, prefix, n);
	memcpy(err->message + n, ": ", 2);
	size_t room = sizeof err->message - n - 2;
	size_t m = strnlen(old, room - 1);
	memcpy(err->message + n + 2, old, m);
	err->message[n + 2 + m] = '\0';
}

void s3db_error_clear(s3db_error *err)
{
	if (!err)
		return;
	err->code = S3DB_OK;
	err->http_status = 0;
	err->message[0] = '\0';
}
