/*
 * util.h — small helpers shared by every module: error reporting, a growable
 * byte buffer, string vectors, time, and JSON conveniences.
 *
 * Errors: s3db_error_set() fills an optional s3db_error (NULL is allowed
 * everywhere) and returns the code, so a failure path reads
 *     return s3db_error_set(err, S3DB_ERR_VALIDATION, "field '%s': ...", name);
 */
#ifndef S3DB_UTIL_H
#define S3DB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "s3db.h"

#if defined(__GNUC__)
#define S3DB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define S3DB_PRINTF(a, b)
#endif

/* Sets err (when non-NULL) and returns code.  http_status is left as is. */
s3db_code s3db_error_set(s3db_error *err, s3db_code code, const char *fmt, ...) S3DB_PRINTF(3, 4);
/* Prefixes err->message with "<prefix>: " (keeps the code). */
void s3db_error_prefix(s3db_error *err, const char *fmt, ...) S3DB_PRINTF(2, 3);
void s3db_error_clear(s3db_error *err);

/* ---- growable buffer (always NUL-terminated) -------------------------- */
typedef struct sbuf {
	char *data;
	size_t len;
	size_t cap;
	int oom;  /* set once an allocation failed; further appends are no-ops */
} sbuf;

void sbuf_init(sbuf *b);
void sbuf_free(sbuf *b);
void sbuf_reset(sbuf *b);
void sbuf_append(sbuf *b, const void *data, size_t len);
void sbuf_puts(sbuf *b, const char *s);
void sbuf_putc(sbuf *b, char c);
void sbuf_printf(sbuf *b, const char *fmt, ...) S3DB_PRINTF(2, 3);
/* Hands the data over to the caller (malloc'd) and resets b.  NULL if oom. */
char *sbuf_steal(sbuf *b);

/* ---- growable arrays ------------------------------------------------- */
/* Room for one more element in items (n of *cap used, elem bytes each):
 * items itself while n < *cap, else the array grown to twice *cap (first
 * when *cap is 0) and *cap updated.  NULL when out of memory: items and
 * *cap are unchanged.  The caller stores the result back. */
void *s3db_array_room(void *items, size_t *cap, size_t n, size_t elem, size_t first);

/* ---- strings ---------------------------------------------------------- */
char *s3db_strdup(const char *s);        /* NULL-safe */
char *s3db_strndup(const char *s, size_t n);
char *s3db_asprintf(const char *fmt, ...) S3DB_PRINTF(1, 2);
int s3db_str_starts(const char *s, const char *prefix);
int s3db_str_ends(const char *s, const char *suffix);
/* 1 if s (of len bytes) is valid UTF-8 without NUL. */
int s3db_utf8_valid(const char *s, size_t len);
/* The value of a hexadecimal digit (either case), or -1. */
int s3db_hex_value(int c);
/* Reads up to size bytes of fd (retrying on EINTR, stopping early at end
 * of file or on an error) into *out: malloc'd, NUL-terminated, owned by
 * the caller; *got (optional) the bytes read.  Returns 0, or -1 when out
 * of memory (*out NULL).  The caller closes fd. */
int s3db_read_fd(int fd, size_t size, char **out, size_t *got);
/* Length in UTF-16 code units, as JavaScript counts it. */
size_t s3db_utf16_len(const char *s);

/* NULL-terminated vectors of malloc'd strings */
typedef struct strv {
	char **items;
	size_t count;
	size_t cap;
} strv;
void strv_init(strv *v);
int strv_push(strv *v, const char *s);         /* copies s */
int strv_push_owned(strv *v, char *s);         /* takes s */
void strv_free(strv *v);
/* Hands the NULL-terminated array to the caller (free with s3db_free_strv). */
char **strv_steal(strv *v);
void strv_sort(strv *v);

/* ---- time ------------------------------------------------------------- */
int64_t s3db_now_ms(void);                /* wall clock, epoch ms */
double s3db_monotonic_ms(void);
/* "2026-11-27T00:14:16.366Z" into buf (>= 25 bytes). */
void s3db_iso8601(int64_t epoch_ms, char *buf, size_t size);
/* Parses ISO-8601 dates as JavaScript's Date does for the forms s3db uses
 * (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.mmm]][Z|±HH:MM]); 0 on success. */
int s3db_parse_iso8601(const char *s, int64_t *epoch_ms);
/* RFC 7231 date ("Fri, 27 Nov 2026 00:14:12 GMT") → epoch ms; 0 ok. */
int s3db_parse_http_date(const char *s, int64_t *epoch_ms);

/* ---- JSON ------------------------------------------------------------- */
/* Parses text (len bytes) strictly into *out; on failure sets err with the
 * line/column json-c reports. */
s3db_code s3db_json_parse(const char *text, size_t len, json_object **out, s3db_error *err);
/* JSON.stringify(o, null, indent) byte for byte (indent 0: compact; 2:
 * pretty).  NULL o writes "null".  Returns malloc'd text, NULL on oom. */
char *s3db_json_stringify(json_object *o, int indent);
/* A JSON number as JavaScript would hold it: an int64 when integral and
 * exact, else a double that prints in JavaScript's shortest form.  NaN
 * and infinities give NULL (JSON null). */
json_object *s3db_json_new_number(double d);
/* json_object_get + string check; NULL when absent or not a string. */
const char *s3db_json_get_string(json_object *o, const char *key);
/* Walks a dotted path ("profile.country"); NULL when absent. Borrowed. */
json_object *s3db_json_get_path(json_object *o, const char *path);

#endif /* S3DB_UTIL_H */
