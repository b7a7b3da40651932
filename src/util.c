/*
 * util.c — buffers, string vectors, time, and JSON helpers used by every
 * module.  The JSON writer here is ours rather than json-c's because the
 * s3db format inherits JavaScript's JSON.stringify byte for byte: numbers
 * in JavaScript's shortest form, '/' unescaped, control characters as
 * \u00xx, and "{}"/"[]" for empty containers in pretty output.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "util.h"
#include "codec.h"

/* ---- sbuf --------------------------------------------------------------- */

void sbuf_init(sbuf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

void sbuf_free(sbuf *b)
{
	free(b->data);
	sbuf_init(b);
}

void sbuf_reset(sbuf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Makes room for `more` bytes plus the terminating NUL; 0 on success. */
static int sbuf_grow(sbuf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void sbuf_append(sbuf *b, const void *data, size_t len)
{
	if (sbuf_grow(b, len))
		return;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void sbuf_puts(sbuf *b, const char *s)
{
	sbuf_append(b, s, strlen(s));
}

void sbuf_putc(sbuf *b, char c)
{
	sbuf_append(b, &c, 1);
}

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sbuf_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *sbuf_steal(sbuf *b)
{
	if (b->oom) {
		sbuf_free(b);
		return NULL;
	}
	if (!b->data) {
		if (sbuf_grow(b, 0))
			return NULL;
		b->data[0] = '\0';
	}
	char *d = b->data;
	sbuf_init(b);
	return d;
}

/* ---- strings ------------------------------------------------------------ */

char *s3db_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void *s3db_array_room(void *items, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return items;
	size_t ncap = *cap ? *cap * 2 : first;
	void *p = realloc(items, ncap * elem);
	if (p)
		*cap = ncap;
	return p;
}

char *s3db_strndup(const char *s, size_t n)
{
	return s ? strndup(s, n) : NULL;
}

char *s3db_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;
	va_start(ap, fmt);
	if (vasprintf(&out, fmt, ap) < 0)
		out = NULL;
	va_end(ap);
	return out;
}

int s3db_str_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int s3db_str_ends(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF, no NUL. */
int s3db_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned cp;
		if (c == 0)
			return 0;
		if (c < 0x80) { i++; continue; }
		else if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
		else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
		else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
		else return 0;
		if (i + n >= len)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += n + 1;
	}
	return 1;
}

int s3db_read_fd(int fd, size_t size, char **out, size_t *got)
{
	char *buf = malloc(size + 1);
	*out = buf;
	if (!buf)
		return -1;
	size_t n = 0;
	while (n < size) {
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (got)
		*got = n;
	return 0;
}

int s3db_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Counts UTF-16 code units of a UTF-8 string: 2 for code points above
 * U+FFFF (4-byte sequences), 1 for every other sequence start. */
size_t s3db_utf16_len(const char *str)
{
	size_t n = 0;
	for (const unsigned char *s = (const unsigned char *)str; *s; s++) {
		if ((*s & 0xC0) == 0x80)
			continue;
		n += (*s >= 0xF0) ? 2 : 1;
	}
	return n;
}

/* ---- strv --------------------------------------------------------------- */

void strv_init(strv *v)
{
	v->items = NULL;
	v->count = v->cap = 0;
}

int strv_push_owned(strv *v, char *s)
{
	if (!s)
		return -1;
	/* room for s and the NULL after it */
	char **p = s3db_array_room(v->items, &v->cap, v->count + 1, sizeof *p, 16);
	if (!p) {
		free(s);
		return -1;
	}
	v->items = p;
	v->items[v->count++] = s;
	v->items[v->count] = NULL;
	return 0;
}

int strv_push(strv *v, const char *s)
{
	return strv_push_owned(v, strdup(s));
}

void strv_free(strv *v)
{
	for (size_t i = 0; i < v->count; i++)
		free(v->items[i]);
	free(v->items);
	strv_init(v);
}

char **strv_steal(strv *v)
{
	if (!v->items) {
		v->items = calloc(1, sizeof(char *));
		if (!v->items)
			return NULL;
	}
	char **items = v->items;
	strv_init(v);
	return items;
}

static int strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort(strv *v)
{
	if (v->count > 1)
		qsort(v->items, v->count, sizeof(char *), strv_cmp);
}

void s3db_free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* ---- time --------------------------------------------------------------- */

int64_t s3db_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double s3db_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no time zone). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes epoch_ms as JavaScript's Date.prototype.toISOString does. */
void s3db_iso8601(int64_t epoch_ms, char *buf, size_t size)
{
	int64_t days = epoch_ms >= 0 ? epoch_ms / 86400000 : -((-epoch_ms + 86399999) / 86400000);
	int64_t rem = epoch_ms - days * 86400000;
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	snprintf(buf, size, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
	         (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
	         (int)(rem % 1000));
}

/* Reads exactly n digits at *p into *out, advancing *p; -1 if not digits. */
static int read_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* The ISO-8601 forms JavaScript's Date parses reliably.  A date-only form
 * is UTC (as in JS); a date-time without offset is taken as UTC too (JS
 * would use local time; s3db always writes Z). */
int s3db_parse_iso8601(const char *s, int64_t *epoch_ms)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
	int sign = 1;
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (read_digits(&p, 6, &y))
			return -1;
		y *= sign;
	} else if (read_digits(&p, 4, &y))
		return -1;
	if (*p++ != '-' || read_digits(&p, 2, &mo) || *p++ != '-' || read_digits(&p, 2, &d))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return -1;
	int64_t offset_min = 0;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (read_digits(&p, 2, &h) || *p++ != ':' || read_digits(&p, 2, &mi))
			return -1;
		if (*p == ':') {
			p++;
			if (read_digits(&p, 2, &sec))
				return -1;
			if (*p == '.') {
				p++;
				int digits = 0;
				ms = 0;
				while (isdigit((unsigned char)*p)) {
					if (digits < 3)
						ms = ms * 10 + (*p - '0');
					digits++;
					p++;
				}
				if (!digits)
					return -1;
				for (; digits < 3; digits++)
					ms *= 10;
			}
		}
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			int osign = *p == '-' ? -1 : 1, oh, om;
			p++;
			if (read_digits(&p, 2, &oh))
				return -1;
			if (*p == ':')
				p++;
			if (read_digits(&p, 2, &om))
				return -1;
			offset_min = osign * (oh * 60 + om);
		}
	}
	if (*p != '\0' || h > 24 || mi > 59 || sec > 59)
		return -1;
	int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	/* reject impossible days such as 2026-02-31 */
	int64_t cy;
	unsigned cm, cd;
	civil_from_days(days, &cy, &cm, &cd);
	if (cy != y || (int)cm != mo || (int)cd != d)
		return -1;
	*epoch_ms = days * 86400000 + (int64_t)h * 3600000 + (int64_t)mi * 60000 +
	            (int64_t)sec * 1000 + ms - offset_min * 60000;
	return 0;
}

int s3db_parse_http_date(const char *s, int64_t *epoch_ms)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char mon[4] = {0};
	int d, y, h, mi, sec;
	if (sscanf(s, "%*3s, %d %3s %d %d:%d:%d", &d, mon, &y, &h, &mi, &sec) != 6)
		return -1;
	const char *m = strstr(months, mon);
	if (!m || strlen(mon) != 3 || (m - months) % 3)
		return -1;
	int64_t days = days_from_civil(y, (unsigned)((m - months) / 3 + 1), (unsigned)d);
	*epoch_ms = days * 86400000 + (int64_t)h * 3600000 + (int64_t)mi * 60000 + (int64_t)sec * 1000;
	return 0;
}

/* ---- JSON --------------------------------------------------------------- */

/* 1 when every string and key in o is strict UTF-8 (json-c lets
 * overlong forms and surrogates through). */
static int json_strings_valid(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		return s3db_utf8_valid(json_object_get_string(o), (size_t)json_object_get_string_len(o));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (!json_strings_valid(json_object_array_get_idx(o, i)))
				return 0;
		return 1;
	case json_type_object: {
		json_object_object_foreach(o, k, v) {
			if (!s3db_utf8_valid(k, strlen(k)) || !json_strings_valid(v))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

s3db_code s3db_json_parse(const char *text, size_t len, json_object **out, s3db_error *err)
{
	*out = NULL;
	json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	if (!tok)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t consumed = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue && len > 0) {
		/* a bare number waits for a terminator: end the input */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		consumed = len;
	}
	if (jerr == json_tokener_success) {
		/* only white space may follow the value */
		for (size_t i = consumed; i < len; i++) {
			if (!isspace((unsigned char)text[i])) {
				jerr = json_tokener_error_parse_unexpected;
				consumed = i;
				break;
			}
		}
	} else if (jerr == json_tokener_continue) {
		consumed = len;
	}
	json_tokener_free(tok);
	if (jerr != json_tokener_success) {
		json_object_put(obj);
		int line = 1, col = 1;
		for (size_t i = 0; i < consumed && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else
				col++;
		}
		return s3db_error_set(err, S3DB_ERR_INVALID_JSON, "invalid JSON at line %d, column %d: %s",
		                      line, col, jerr == json_tokener_continue ? "unexpected end of input"
		                                                               : json_tokener_error_desc(jerr));
	}
	if (!json_strings_valid(obj)) {
		json_object_put(obj);
		return s3db_error_set(err, S3DB_ERR_INVALID_JSON,
		                      "invalid JSON: a string is not valid UTF-8");
	}
	*out = obj;
	return S3DB_OK;
}

/* JSON.stringify's string escaping. */
static void json_write_string(sbuf *b, const char *s, size_t len)
{
	sbuf_putc(b, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': sbuf_puts(b, "\\\""); break;
		case '\\': sbuf_puts(b, "\\\\"); break;
		case '\b': sbuf_puts(b, "\\b"); break;
		case '\f': sbuf_puts(b, "\\f"); break;
		case '\n': sbuf_puts(b, "\\n"); break;
		case '\r': sbuf_puts(b, "\\r"); break;
		case '\t': sbuf_puts(b, "\\t"); break;
		default:
			if (c < 0x20)
				sbuf_printf(b, "\\u%04x", c);
			else
				sbuf_putc(b, (char)c);
		}
	}
	sbuf_putc(b, '"');
}

static void json_write_indent(sbuf *b, int indent, int depth)
{
	sbuf_putc(b, '\n');
	for (int i = 0; i < indent * depth; i++)
		sbuf_putc(b, ' ');
}

/* Writes o as JSON.stringify(o, null, indent) would (indent 0: compact). */
static void json_write(sbuf *b, json_object *o, int indent, int depth)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		sbuf_puts(b, "null");
		break;
	case json_type_boolean:
		sbuf_puts(b, json_object_get_boolean(o) ? "true" : "false");
		break;
	case json_type_int:
		if (json_object_get_int64(o) == INT64_MAX && json_object_get_uint64(o) > INT64_MAX)
			sbuf_printf(b, "%llu", (unsigned long long)json_object_get_uint64(o));
		else
			sbuf_printf(b, "%lld", (long long)json_object_get_int64(o));
		break;
	case json_type_double: {
		double d = json_object_get_double(o);
		if (!isfinite(d)) {
			sbuf_puts(b, "null");
		} else {
			char num[32];
			codec_js_number(d, num);
			sbuf_puts(b, num);
		}
		break;
	}
	case json_type_string:
		json_write_string(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		break;
	case json_type_array: {
		size_t n = json_object_array_length(o);
		sbuf_putc(b, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				sbuf_putc(b, ',');
			if (indent)
				json_write_indent(b, indent, depth + 1);
			json_write(b, json_object_array_get_idx(o, i), indent, depth + 1);
		}
		if (indent && n)
			json_write_indent(b, indent, depth);
		sbuf_putc(b, ']');
		break;
	}
	case json_type_object: {
		int first = 1;
		sbuf_putc(b, '{');
		json_object_object_foreach(o, key, val) {
			if (!first)
				sbuf_putc(b, ',');
			first = 0;
			if (indent)
				json_write_indent(b, indent, depth + 1);
			json_write_string(b, key, strlen(key));
			sbuf_puts(b, indent ? ": " : ":");
			json_write(b, val, indent, depth + 1);
		}
		if (indent && !first)
			json_write_indent(b, indent, depth);
		sbuf_putc(b, '}');
		break;
	}
	}
}

/* JSON.stringify(o, null, indent) as malloc'd text (indent 0: compact). */
char *s3db_json_stringify(json_object *o, int indent)
{
	sbuf b;
	sbuf_init(&b);
	json_write(&b, o, indent, 0);
	return sbuf_steal(&b);
}

const char *s3db_json_get_string(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

json_object *s3db_json_get_path(json_object *o, const char *path)
{
	char part[256];
	const char *p = path;
	while (o && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof part || !json_object_is_type(o, json_type_object))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		json_object *next = NULL;
		if (!json_object_object_get_ex(o, part, &next))
			return NULL;
		o = next;
		p = dot ? dot + 1 : p + n;
	}
	return o;
}

json_object *s3db_json_new_number(double d)
{
	if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0) /* -0 becomes 0, as in JSON.stringify */
		return json_object_new_int64((int64_t)d);
	if (!isfinite(d))
		return NULL; /* JSON null, as JSON.stringify writes NaN */
	char num[32];
	codec_js_number(d, num);
	return json_object_new_double_s(d, num);
}
