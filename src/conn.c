/*
 * conn.c — connection strings (conn.h): parsing, describing, full keys.
 *
 * Design.  The parser is a hand-written reading of the few URL forms s3db
 * uses, following what s3db.js 21.6.2 gets from the WHATWG URL parser
 * (spec §1.1, §1.6, B.1) wherever that matters for which bucket, prefix
 * and credentials a string names, and stricter where the WHATWG parser
 * would silently guess (a '#', '..' above the root, a bad escape):
 *
 *   s3://[KEY[:SECRET]@]BUCKET[/prefix][?options]
 *   http(s)://[KEY[:SECRET]@]HOST[:PORT][/BUCKET[/prefix]][?options]
 *   file:///abs/dir, file://localhost/abs/dir, file://./rel, file://../rel
 *
 *  - userinfo and the bucket are percent-decoded (decodeURIComponent:
 *    a malformed escape or invalid UTF-8 is an error), as s3db.js does;
 *  - the key prefix is NOT decoded (s3db.js takes it as the URL parser
 *    leaves it), so, like that parser, we percent-encode the bytes of the
 *    WHATWG path percent-encode set (space " < > ` { } and non-ASCII) and
 *    keep existing escapes; then the segments are normalised as Node's
 *    path.join does (empty and '.' segments dropped, '..' pops — above
 *    the root it is an error), which also treats "%2e" as '.' as WHATWG;
 *  - http(s) hosts are lower-cased and a default port (80/443) dropped,
 *    as the URL origin is; http(s) without a path uses bucket "s3db";
 *  - query values are percent-decoded; '+' stays '+' (session tokens
 *    carry '+'; no option may contain a space, so nothing is lost).
 *
 * Secrets.  Every message echoes the input only through conn_mask(),
 * which replaces the secret (the userinfo after its first ':') and the
 * values of secret-looking query options with "***", and control bytes
 * with '?'.  The mask is computed from the raw text before any parsing,
 * so it also covers malformed strings (a secret holding a raw '/' or '#'
 * is masked up to the last '@').  No message prints a parsed component
 * that the masked echo would hide.
 *
 * conn_parse is pure: it reads no environment (the database layer fills
 * in credentials, region and endpoint from AWS_* when they are absent),
 * except that file://./relative is resolved against the current directory.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "conn.h"
#include "util.h"

#define CONN_DEFAULT_REGION "us-east-1"
#define CONN_DEFAULT_BUCKET "s3db"
#define CONN_MAX_PARALLELISM 1024
#define CONN_MAX_TIMEOUT_MS 3600000
#define CONN_MAX_RETRIES 100

enum conn_opt {
	OPT_REGION = 0, OPT_PATH_STYLE, OPT_TOKEN, OPT_ENDPOINT,
	OPT_PARALLELISM, OPT_TIMEOUT, OPT_RETRIES, OPT__COUNT
};

static const char *const conn_opt_names[OPT__COUNT] = {
	"region", "forcePathStyle", "sessionToken", "endpoint",
	"parallelism", "timeout", "retries",
};

/* One parse: the input, its masked echo, where errors go, the result. */
typedef struct conn_parser {
	const char *s;
	char *masked;        /* s with secrets as "***"; NULL only on oom */
	s3db_error *err;
	conn_info *out;
	int seen[OPT__COUNT];
	int force_path_style;        /* -1 not given, else 0/1 */
	char *endpoint_opt;          /* ?endpoint=, normalised; owned */
} conn_parser;

/* ---- masking ------------------------------------------------------------ */

static int name_is_secret(const char *name, size_t len)
{
	static const char *const words[] = { "token", "secret", "pass", "key", "credential" };
	for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
		size_t wl = strlen(words[w]);
		for (size_t i = 0; i + wl <= len; i++)
			if (strncasecmp(name + i, words[w], wl) == 0)
				return 1;
	}
	return 0;
}

static int all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

size_t conn_secret_spans(const char *s, conn_span *spans, size_t max)
{
	size_t nspans = 0;
	if (max == 0)
		return 0;

	/* userinfo: after "://" when present, else from the start */
	const char *sep = strstr(s, "://");
	size_t u0 = sep ? (size_t)(sep - s) + 3 : 0;
	size_t auth_end = u0 + strcspn(s + u0, "/?#\\");
	size_t at = SIZE_MAX;
	for (size_t i = u0; i < auth_end; i++)
		if (s[i] == '@')
			at = i;
	if (at == SIZE_MAX) {
		/* no '@' in the authority: a secret holding a raw '/', '?' or
		 * '#' ends it early — take the last '@' of the whole string,
		 * unless the authority is host:port */
		const char *colon = memchr(s + u0, ':', auth_end - u0);
		if (colon) {
			size_t c = (size_t)(colon - s);
			if (!all_digits(colon + 1, auth_end - c - 1)) {
				const char *last = strrchr(s, '@');
				size_t end = last && (size_t)(last - s) > c ? (size_t)(last - s) : auth_end;
				spans[nspans++] = (conn_span){ c + 1, end };
			}
		}
	} else {
		const char *colon = memchr(s + u0, ':', at - u0);
		if (colon)
			spans[nspans++] = (conn_span){ (size_t)(colon - s) + 1, at };
	}

	/* query values of secret-looking options */
	const char *q = strchr(s + (nspans ? spans[0].to : 0), '?');
	while (q && nspans < max) {
		const char *name = q + 1;
		size_t plen = strcspn(name, "&#");
		const char *eq = memchr(name, '=', plen);
		if (eq && name_is_secret(name, (size_t)(eq - name)) && eq + 1 < name + plen)
			spans[nspans++] = (conn_span){ (size_t)(eq + 1 - s), (size_t)(name + plen - s) };
		q = name[plen] == '&' ? name + plen : NULL;
	}
	return nspans;
}

/* The echo of s for messages: the secret of the userinfo and the values
 * of query options whose names look secret become "***", control bytes
 * '?'.  Works on any text, well-formed or not (see the file comment).
 * Returns malloc'd text, NULL on oom. */
static char *conn_mask(const char *s)
{
	size_t n = strlen(s);
	conn_span spans[64];
	size_t nspans = conn_secret_spans(s, spans, sizeof spans / sizeof spans[0]);

	sbuf b;
	sbuf_init(&b);
	size_t i = 0;
	for (size_t k = 0; k < nspans; k++) {
		if (spans[k].from < i)
			continue;
		for (; i < spans[k].from; i++)
			sbuf_putc(&b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
		sbuf_puts(&b, "***");
		i = spans[k].to;
	}
	for (; i < n; i++)
		sbuf_putc(&b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
	return sbuf_steal(&b);
}

/* Sets the error "connection string: <what> in '<masked input>'". */
static s3db_code conn_fail(conn_parser *p, const char *fmt, ...) S3DB_PRINTF(2, 3);
static s3db_code conn_fail(conn_parser *p, const char *fmt, ...)
{
	char what[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (p->masked)
		return s3db_error_set(p->err, S3DB_ERR_BAD_CONNSTR,
		                      "connection string: %s in '%s'", what, p->masked);
	return s3db_error_set(p->err, S3DB_ERR_BAD_CONNSTR, "connection string: %s", what);
}

static s3db_code conn_oom(conn_parser *p)
{
	return s3db_error_set(p->err, S3DB_ERR_NOMEM, "connection string: out of memory");
}

/* ---- percent-encoding ----------------------------------------------------- */

enum { PCT_OK = 0, PCT_BAD_ESCAPE = -1, PCT_CONTROL = -2, PCT_BAD_UTF8 = -3, PCT_OOM = -4 };

/* decodeURIComponent of s[0..len) into *out (malloc'd).  Fails on a
 * malformed escape, on a decoded control byte (NUL included) and on
 * invalid UTF-8; *out is then NULL. */
static int pct_decode(const char *s, size_t len, char **out)
{
	*out = NULL;
	char *d = malloc(len + 1);
	if (!d)
		return PCT_OOM;
	size_t j = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= len || s3db_hex_value(s[i + 1]) < 0 || s3db_hex_value(s[i + 2]) < 0) {
				free(d);
				return PCT_BAD_ESCAPE;
			}
			c = (unsigned char)(s3db_hex_value(s[i + 1]) * 16 + s3db_hex_value(s[i + 2]));
			i += 2;
		}
		if (c < 0x20 || c == 0x7f) {
			free(d);
			return PCT_CONTROL;
		}
		d[j++] = (char)c;
	}
	d[j] = '\0';
	if (!s3db_utf8_valid(d, j)) {
		free(d);
		return PCT_BAD_UTF8;
	}
	*out = d;
	return PCT_OK;
}

/* Turns a pct_decode failure into a message about `what`. */
static s3db_code pct_fail(conn_parser *p, int rc, const char *what)
{
	switch (rc) {
	case PCT_BAD_ESCAPE:
		return conn_fail(p, "bad percent escape in the %s (use %%XX with two hex digits)", what);
	case PCT_CONTROL:
		return conn_fail(p, "the %s decodes to a control character", what);
	case PCT_BAD_UTF8:
		return conn_fail(p, "the %s decodes to invalid UTF-8", what);
	default:
		return conn_oom(p);
	}
}

/* encodeURIComponent's unreserved set. */
static int uri_unreserved(unsigned char c)
{
	return isalnum(c) || strchr("-_.!~*'()", c) != NULL;
}

static void pct_encode_component(sbuf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (uri_unreserved(*p))
			sbuf_putc(b, (char)*p);
		else
			sbuf_printf(b, "%%%02X", *p);
	}
}

/* ---- path segments ---------------------------------------------------- */

/* WHATWG single-dot segment: "." or "%2e". */
static int seg_is_dot(const char *s, size_t len)
{
	return (len == 1 && s[0] == '.') || (len == 3 && strncasecmp(s, "%2e", 3) == 0);
}

/* WHATWG double-dot segment: "..", ".%2e", "%2e.", "%2e%2e". */
static int seg_is_dotdot(const char *s, size_t len)
{
	if (len == 2)
		return s[0] == '.' && s[1] == '.';
	if (len == 4)
		return strncasecmp(s, ".%2e", 4) == 0 || strncasecmp(s, "%2e.", 4) == 0;
	if (len == 6)
		return strncasecmp(s, "%2e%2e", 6) == 0;
	return 0;
}

/* The WHATWG path percent-encode set (C0 controls are refused earlier). */
static int path_needs_escape(unsigned char c)
{
	return c == ' ' || c == '"' || c == '<' || c == '>' || c == '`' ||
	       c == '{' || c == '}' || c >= 0x80;
}

/* Normalises the key prefix path[0..len) (the part after the bucket) into
 * *out (malloc'd, "" when empty; a previous *out is freed): segments as the URL parser leaves them,
 * then path.join's normalisation; '..' above the root is an error. */
static s3db_code parse_prefix(conn_parser *p, const char *path, size_t len, char **out)
{
	strv segs;
	strv_init(&segs);
	size_t i = 0;
	while (i <= len) {
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		const char *seg = path + i;
		size_t sl = j - i;
		if (sl == 0 || seg_is_dot(seg, sl)) {
			/* dropped */
		} else if (seg_is_dotdot(seg, sl)) {
			if (segs.count == 0) {
				strv_free(&segs);
				return conn_fail(p, "'..' in the key prefix goes above the bucket root");
			}
			free(segs.items[--segs.count]);
			segs.items[segs.count] = NULL;
		} else {
			sbuf b;
			sbuf_init(&b);
			for (size_t k = 0; k < sl; k++) {
				unsigned char c = (unsigned char)seg[k];
				if (c == '\\') {
					sbuf_free(&b);
					strv_free(&segs);
					return conn_fail(p, "backslash in the key prefix");
				}
				if (c == '%' && (k + 2 >= sl || s3db_hex_value(seg[k + 1]) < 0 || s3db_hex_value(seg[k + 2]) < 0)) {
					sbuf_free(&b);
					strv_free(&segs);
					return conn_fail(p, "bad percent escape in the key prefix (use %%XX with two hex digits)");
				}
				if (path_needs_escape(c))
					sbuf_printf(&b, "%%%02X", c);
				else
					sbuf_putc(&b, (char)c);
			}
			char *t = sbuf_steal(&b);
			if (!t || strv_push_owned(&segs, t)) {
				strv_free(&segs);
				return conn_oom(p);
			}
		}
		i = j + 1;
	}
	sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, "");
	for (size_t k = 0; k < segs.count; k++) {
		if (k)
			sbuf_putc(&b, '/');
		sbuf_puts(&b, segs.items[k]);
	}
	strv_free(&segs);
	free(*out);
	*out = sbuf_steal(&b);
	return *out ? S3DB_OK : conn_oom(p);
}

/* Appends the segments of an absolute or relative file path to segs,
 * percent-decoding each and resolving '.'/'..' (error above '/'). */
static s3db_code file_segments(conn_parser *p, strv *segs, const char *path, size_t len,
                               int decode)
{
	size_t i = 0;
	while (i <= len) {
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		char *seg = NULL;
		if (decode) {
			int rc = pct_decode(path + i, j - i, &seg);
			if (rc != PCT_OK)
				return pct_fail(p, rc, "file path");
			if (strchr(seg, '/')) {
				free(seg);
				return conn_fail(p, "encoded '/' (%%2F) in the file path");
			}
		} else {
			seg = s3db_strndup(path + i, j - i);
			if (!seg)
				return conn_oom(p);
		}
		if (seg[0] == '\0' || strcmp(seg, ".") == 0) {
			free(seg);
		} else if (strcmp(seg, "..") == 0) {
			free(seg);
			if (segs->count == 0)
				return conn_fail(p, "'..' in the file path goes above '/'");
			free(segs->items[--segs->count]);
			segs->items[segs->count] = NULL;
		} else if (strv_push_owned(segs, seg)) {
			return conn_oom(p);
		}
		i = j + 1;
	}
	return S3DB_OK;
}

/* ---- hosts, ports, buckets, regions ---------------------------------- */

/* Parses "host[:port]" (hp[0..len)) of an http(s) URL into *endpoint =
 * "scheme://host[:port]", host lower-cased, default port dropped. */
static s3db_code parse_hostport(conn_parser *p, const char *scheme, const char *hp, size_t len,
                                char **endpoint, const char *what)
{
	/* what: NULL for the URL's own host, else e.g. "option 'endpoint'" */
	char where[64] = "";
	if (what)
		snprintf(where, sizeof where, " in %s", what);
	size_t hlen;
	const char *port = NULL;
	size_t plen = 0;
	if (len > 0 && hp[0] == '[') {
		const char *close = memchr(hp, ']', len);
		if (!close || close == hp + 1)
			return conn_fail(p, "bad IPv6 address%s", where);
		for (const char *c = hp + 1; c < close; c++)
			if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
				return conn_fail(p, "bad IPv6 address%s", where);
		hlen = (size_t)(close - hp) + 1;
		if (hlen < len) {
			if (hp[hlen] != ':')
				return conn_fail(p, "bad host%s", where);
			port = hp + hlen + 1;
			plen = len - hlen - 1;
		}
	} else {
		const char *colon = memchr(hp, ':', len);
		hlen = colon ? (size_t)(colon - hp) : len;
		if (colon) {
			port = colon + 1;
			plen = len - hlen - 1;
		}
		if (hlen == 0)
			return conn_fail(p, "empty host%s", where);
		for (size_t i = 0; i < hlen; i++) {
			unsigned char c = (unsigned char)hp[i];
			if (!isalnum(c) && c != '-' && c != '.' && c != '_')
				return conn_fail(p, "bad host%s (letters, digits, '-', '.', '_' only)", where);
		}
	}
	long portnum = -1;
	if (port && plen > 0) {
		if (plen > 5 || !all_digits(port, plen))
			return conn_fail(p, "bad port%s", where);
		portnum = strtol(port, NULL, 10);
		if (portnum < 1 || portnum > 65535)
			return conn_fail(p, "bad port%s", where);
	}
	if ((portnum == 80 && strcmp(scheme, "http") == 0) ||
	    (portnum == 443 && strcmp(scheme, "https") == 0))
		portnum = -1;
	sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s://", scheme);
	for (size_t i = 0; i < hlen; i++)
		sbuf_putc(&b, (char)tolower((unsigned char)hp[i]));
	if (portnum > 0)
		sbuf_printf(&b, ":%ld", portnum);
	*endpoint = sbuf_steal(&b);
	return *endpoint ? S3DB_OK : conn_oom(p);
}

/* Decodes and checks a bucket name: 1..255 of [A-Za-z0-9._-], not "." or
 * "..".  (AWS wants 3..63 lower-case; S3-compatible servers and legacy
 * us-east-1 buckets are laxer, so the server has the last word.) */
static s3db_code parse_bucket(conn_parser *p, const char *s, size_t len, char **out)
{
	if (len == 0)
		return conn_fail(p, "empty bucket name");
	char *b = NULL;
	int rc = pct_decode(s, len, &b);
	if (rc != PCT_OK)
		return pct_fail(p, rc, "bucket name");
	size_t bl = strlen(b);
	int ok = bl >= 1 && bl <= 255 && strcmp(b, ".") != 0 && strcmp(b, "..") != 0;
	for (size_t i = 0; ok && i < bl; i++) {
		unsigned char c = (unsigned char)b[i];
		ok = isalnum(c) || c == '.' || c == '-' || c == '_';
	}
	if (!ok) {
		free(b);
		return conn_fail(p, bl ? "bad bucket name (letters, digits, '.', '-', '_' only)"
		                       : "empty bucket name");
	}
	*out = b;
	return S3DB_OK;
}

static int region_valid(const char *r)
{
	size_t n = strlen(r);
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)r[i]) && !isdigit((unsigned char)r[i]) && r[i] != '-')
			return 0;
	return 1;
}

/* The AWS endpoint of a region (China regions live under .com.cn). */
static char *aws_endpoint(const char *region)
{
	return s3db_asprintf("https://s3.%s.amazonaws.com%s", region,
	                     s3db_str_starts(region, "cn-") ? ".cn" : "");
}

/* ---- userinfo -------------------------------------------------------- */

/* Splits and decodes "KEY[:SECRET]" (ui[0..len)). */
static s3db_code parse_userinfo(conn_parser *p, const char *ui, size_t len)
{
	const char *colon = memchr(ui, ':', len);
	size_t klen = colon ? (size_t)(colon - ui) : len;
	if (klen == 0)
		return conn_fail(p, "empty access key before ':'");
	if (!colon)
		return conn_fail(p, "access key without a secret key (write KEY:SECRET@, or leave both to the environment)");
	int rc = pct_decode(ui, klen, &p->out->access_key);
	if (rc != PCT_OK)
		return pct_fail(p, rc, "access key");
	size_t slen = len - klen - 1;
	if (slen == 0)
		return conn_fail(p, "empty secret key after ':'");
	rc = pct_decode(colon + 1, slen, &p->out->secret_key);
	if (rc != PCT_OK)
		return pct_fail(p, rc, "secret key");
	return S3DB_OK;
}

/* ---- query options --------------------------------------------------- */

/* Reads a decimal integer in [lo, hi]; 0 on success. */
static int parse_int(const char *s, long lo, long hi, long *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 9 || !all_digits(s, n))
		return -1;
	long v = strtol(s, NULL, 10);
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Parses an ?endpoint= value: http(s)://host[:port][/]. */
static s3db_code parse_endpoint_opt(conn_parser *p, const char *v)
{
	const char *scheme;
	const char *rest;
	if (strncasecmp(v, "https://", 8) == 0) {
		scheme = "https";
		rest = v + 8;
	} else if (strncasecmp(v, "http://", 7) == 0) {
		scheme = "http";
		rest = v + 7;
	} else {
		return conn_fail(p, "option 'endpoint' must be http(s)://host[:port]");
	}
	size_t hl = strcspn(rest, "/");
	if (memchr(rest, '@', hl))
		return conn_fail(p, "option 'endpoint' may not carry credentials");
	if (rest[hl] && strcmp(rest + hl, "/") != 0)
		return conn_fail(p, "option 'endpoint' must be http(s)://host[:port] without a path");
	return parse_hostport(p, scheme, rest, hl, &p->endpoint_opt, "option 'endpoint'");
}

/* Applies one decoded option. */
static s3db_code apply_option(conn_parser *p, const char *name, const char *value)
{
	if (strcasecmp(name, "passphrase") == 0)
		return conn_fail(p, "'passphrase' is not accepted in the connection string "
		                    "(it would show in ps and logs); pass it as the passphrase option "
		                    "(s3db command: S3DB_PASSPHRASE or --passphrase-file)");
	int opt = -1;
	for (int i = 0; i < OPT__COUNT; i++)
		if (strcmp(name, conn_opt_names[i]) == 0)
			opt = i;
	if (opt < 0)
		return conn_fail(p, "unknown option '%s' (known: region, forcePathStyle, sessionToken, "
		                    "endpoint, parallelism, timeout, retries)", name);
	if (p->seen[opt])
		return conn_fail(p, "option '%s' given twice", name);
	p->seen[opt] = 1;
	if (value[0] == '\0')
		return conn_fail(p, "option '%s' needs a value", name);
	conn_info *c = p->out;
	if (c->kind == CONN_FILE && opt != OPT_PARALLELISM && opt != OPT_TIMEOUT && opt != OPT_RETRIES)
		return conn_fail(p, "option '%s' does not apply to file://", name);
	long v;
	switch (opt) {
	case OPT_REGION:
		if (!region_valid(value))
			return conn_fail(p, "option 'region' must be an AWS region name like eu-west-1");
		free(c->region);
		c->region = strdup(value);
		return c->region ? S3DB_OK : conn_oom(p);
	case OPT_PATH_STYLE:
		if (strcmp(value, "true") == 0)
			p->force_path_style = 1;
		else if (strcmp(value, "false") == 0)
			p->force_path_style = 0;
		else
			return conn_fail(p, "option 'forcePathStyle' must be true or false");
		return S3DB_OK;
	case OPT_TOKEN:
		c->session_token = strdup(value);
		return c->session_token ? S3DB_OK : conn_oom(p);
	case OPT_ENDPOINT:
		return parse_endpoint_opt(p, value);
	case OPT_PARALLELISM:
		if (parse_int(value, 1, CONN_MAX_PARALLELISM, &v))
			return conn_fail(p, "option 'parallelism' must be an integer from 1 to %d",
			                 CONN_MAX_PARALLELISM);
		c->parallelism = (int)v;
		return S3DB_OK;
	case OPT_TIMEOUT:
		if (parse_int(value, 1, CONN_MAX_TIMEOUT_MS, &v))
			return conn_fail(p, "option 'timeout' must be milliseconds from 1 to %d",
			                 CONN_MAX_TIMEOUT_MS);
		c->timeout_ms = (int)v;
		return S3DB_OK;
	case OPT_RETRIES:
		if (parse_int(value, 0, CONN_MAX_RETRIES, &v))
			return conn_fail(p, "option 'retries' must be an integer from 0 to %d",
			                 CONN_MAX_RETRIES);
		c->max_retries = (int)v;
		return S3DB_OK;
	}
	return s3db_error_set(p->err, S3DB_ERR_INTERNAL, "connection string: option table");
}

/* Parses the query q[0..len) ("a=1&b=2", without the '?'). */
static s3db_code parse_query(conn_parser *p, const char *q, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && q[j] != '&')
			j++;
		if (j > i) {
			const char *eq = memchr(q + i, '=', j - i);
			size_t nl = eq ? (size_t)(eq - (q + i)) : j - i;
			char *name = NULL, *value = NULL;
			int rc = pct_decode(q + i, nl, &name);
			if (rc != PCT_OK)
				return pct_fail(p, rc, "option name");
			if (eq)
				rc = pct_decode(eq + 1, (size_t)(q + j - eq - 1), &value);
			else
				value = strdup("");
			if (rc != PCT_OK || !value) {
				/* the name is safe to show, the value may be a secret */
				s3db_code code = rc != PCT_OK ? pct_fail(p, rc, "option value") : conn_oom(p);
				free(name);
				return code;
			}
			s3db_code code = name[0] ? apply_option(p, name, value)
			                         : conn_fail(p, "option without a name");
			free(name);
			free(value);
			if (code != S3DB_OK)
				return code;
		}
		i = j + 1;
	}
	return S3DB_OK;
}

/* ---- the three forms --------------------------------------------------- */

/* rest: after "s3://" up to '?' (len bytes). */
static s3db_code parse_s3(conn_parser *p, const char *rest, size_t len)
{
	conn_info *c = p->out;
	size_t alen = 0;
	while (alen < len && rest[alen] != '/')
		alen++;
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (rest[i] == '@')
			at = rest + i;
	const char *host = rest;
	if (at) {
		s3db_code code = parse_userinfo(p, rest, (size_t)(at - rest));
		if (code != S3DB_OK)
			return code;
		host = at + 1;
	}
	size_t hlen = (size_t)(rest + alen - host);
	if (memchr(host, ':', hlen))
		return conn_fail(p, "s3:// takes a bucket name, not host:port (use http(s)://host:port/bucket)");
	s3db_code code = parse_bucket(p, host, hlen, &c->bucket);
	if (code != S3DB_OK)
		return code;
	if (alen < len)
		return parse_prefix(p, rest + alen + 1, len - alen - 1, &c->prefix);
	return S3DB_OK;
}

/* rest: after "http(s)://" up to '?'. */
static s3db_code parse_http(conn_parser *p, const char *scheme, const char *rest, size_t len)
{
	conn_info *c = p->out;
	size_t alen = 0;
	while (alen < len && rest[alen] != '/' && rest[alen] != '\\')
		alen++;
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (rest[i] == '@')
			at = rest + i;
	const char *hp = rest;
	if (at) {
		s3db_code code = parse_userinfo(p, rest, (size_t)(at - rest));
		if (code != S3DB_OK)
			return code;
		hp = at + 1;
	}
	s3db_code code = parse_hostport(p, scheme, hp, (size_t)(rest + alen - hp), &c->endpoint, NULL);
	if (code != S3DB_OK)
		return code;
	const char *path = rest + alen;
	size_t plen = len - alen;
	if (plen > 0 && *path == '\\')
		return conn_fail(p, "backslash in the path");
	if (plen <= 1) {
		c->bucket = strdup(CONN_DEFAULT_BUCKET);
		return c->bucket ? S3DB_OK : conn_oom(p);
	}
	path++;
	plen--;
	size_t blen = 0;
	while (blen < plen && path[blen] != '/')
		blen++;
	if (seg_is_dot(path, blen) || seg_is_dotdot(path, blen))
		return conn_fail(p, "'.' or '..' where the bucket name belongs");
	code = parse_bucket(p, path, blen, &c->bucket);
	if (code != S3DB_OK)
		return code;
	if (blen < plen)
		return parse_prefix(p, path + blen + 1, plen - blen - 1, &c->prefix);
	return S3DB_OK;
}

/* rest: after "file://" up to '?'. */
static s3db_code parse_file(conn_parser *p, const char *rest, size_t len)
{
	conn_info *c = p->out;
	size_t alen = strcspn(rest, "/");
	if (alen > len)
		alen = len;
	if (memchr(rest, '@', alen))
		return conn_fail(p, "file:// takes no credentials");
	if (alen == 9 && strncasecmp(rest, "localhost", 9) == 0) {
		rest += 9;
		len -= 9;
	}
	if (len == 0)
		return conn_fail(p, "file:// needs a directory (file:///abs/dir or file://./rel/dir)");
	strv segs;
	strv_init(&segs);
	s3db_code code;
	if (rest[0] == '/') {
		code = file_segments(p, &segs, rest, len, 1);
	} else if (rest[0] == '.' && (len == 1 || rest[1] == '/' ||
	                              (rest[1] == '.' && (len == 2 || rest[2] == '/')))) {
		char *cwd = getcwd(NULL, 0);
		if (!cwd) {
			strv_free(&segs);
			return s3db_error_set(p->err, S3DB_ERR_IO,
			                      "connection string: cannot resolve a relative file:// path: "
			                      "current directory: %s", strerror(errno));
		}
		code = file_segments(p, &segs, cwd, strlen(cwd), 0);
		free(cwd);
		if (code == S3DB_OK)
			code = file_segments(p, &segs, rest, len, 1);
	} else {
		code = conn_fail(p, "file:// needs an absolute path (file:///dir) or a relative one "
		                    "starting with '.' (file://./dir)");
	}
	if (code != S3DB_OK) {
		strv_free(&segs);
		return code;
	}
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < segs.count; i++) {
		sbuf_putc(&b, '/');
		sbuf_puts(&b, segs.items[i]);
	}
	if (segs.count == 0)
		sbuf_putc(&b, '/');
	strv_free(&segs);
	c->root = sbuf_steal(&b);
	return c->root ? S3DB_OK : conn_oom(p);
}

/* ---- public ------------------------------------------------------------- */

/* Parses s into *out (see conn.h and the file comment).  On failure *out
 * holds nothing (freed and zeroed) and err says what and where. */
s3db_code conn_parse(const char *s, conn_info *out, s3db_error *err)
{
	conn_parser p;
	memset(&p, 0, sizeof p);
	memset(out, 0, sizeof *out);
	out->max_retries = -1;
	p.s = s;
	p.err = err;
	p.out = out;
	p.force_path_style = -1;
	if (!s || !*s)
		return s3db_error_set(err, S3DB_ERR_BAD_CONNSTR, "connection string: empty");
	p.masked = conn_mask(s);
	if (!p.masked)
		return conn_oom(&p);

	s3db_code code = S3DB_OK;
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			code = conn_fail(&p, "control character at offset %zu", i);
			goto done;
		}
	if (!s3db_utf8_valid(s, n)) {
		code = conn_fail(&p, "not valid UTF-8");
		goto done;
	}

	/* scheme: [A-Za-z][A-Za-z0-9+.-]* "://" */
	size_t sl = 0;
	while (isalnum((unsigned char)s[sl]) || s[sl] == '+' || s[sl] == '-' || s[sl] == '.')
		sl++;
	if (sl == 0 || !isalpha((unsigned char)s[0]) || s[sl] != ':') {
		code = conn_fail(&p, "no scheme (expected s3://, http://, https:// or file://)");
		goto done;
	}
	if (strncmp(s + sl, "://", 3) != 0) {
		code = conn_fail(&p, "expected '//' after the scheme (s3://, http://, https:// or file://)");
		goto done;
	}
	char scheme[16];
	if (sl >= sizeof scheme) {
		code = conn_fail(&p, "unknown scheme (expected s3, http, https or file)");
		goto done;
	}
	for (size_t i = 0; i < sl; i++)
		scheme[i] = (char)tolower((unsigned char)s[i]);
	scheme[sl] = '\0';
	int is_s3 = strcmp(scheme, "s3") == 0;
	if (strcmp(scheme, "file") == 0) {
		out->kind = CONN_FILE;
	} else if (strcmp(scheme, "memory") == 0) {
		code = conn_fail(&p, "memory:// is not supported (s3db.js keeps it in-process); "
		                     "use file:// for a local database");
		goto done;
	} else if (!is_s3 && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		code = conn_fail(&p, "unknown scheme '%s' (expected s3, http, https or file)", scheme);
		goto done;
	}

	const char *rest = s + sl + 3;
	size_t rlen = strlen(rest);
	if (strchr(rest, '#')) {
		code = conn_fail(&p, "'#' is not allowed (percent-encode it as %%23)");
		goto done;
	}
	if (out->kind == CONN_S3) {
		/* a secret with a raw '/' or '?' ends the authority before its
		 * '@': "s3://AK:se/cret@bucket" */
		size_t alen = strcspn(rest, "/?\\");
		const char *colon = memchr(rest, ':', alen);
		if (colon && !memchr(rest, '@', alen) && strchr(rest + alen, '@') &&
		    (is_s3 || !all_digits(colon + 1, (size_t)(rest + alen - colon - 1)))) {
			code = conn_fail(&p, "the credentials seem to contain a raw '/' or '?'; "
			                     "percent-encode them (%%2F, %%3F)");
			goto done;
		}
	}
	const char *q = strchr(rest, '?');
	size_t body = q ? (size_t)(q - rest) : rlen;

	out->region = strdup(out->kind == CONN_FILE ? "local" : CONN_DEFAULT_REGION);
	out->prefix = strdup("");
	if (!out->region || !out->prefix) {
		code = conn_oom(&p);
		goto done;
	}
	if (out->kind == CONN_FILE)
		code = parse_file(&p, rest, body);
	else if (is_s3)
		code = parse_s3(&p, rest, body);
	else
		code = parse_http(&p, scheme, rest, body);
	if (code == S3DB_OK && q)
		code = parse_query(&p, q + 1, rlen - body - 1);

	if (code == S3DB_OK && out->kind == CONN_S3) {
		if (p.endpoint_opt && !is_s3) {
			code = conn_fail(&p, "option 'endpoint' applies to s3:// only (here the host is the endpoint)");
		} else if (p.endpoint_opt) {
			out->endpoint = p.endpoint_opt;
			p.endpoint_opt = NULL;
		} else if (is_s3) {
			out->endpoint = aws_endpoint(out->region);
			if (!out->endpoint)
				code = conn_oom(&p);
		}
		out->path_style = p.force_path_style >= 0 ? p.force_path_style : !is_s3;
	}

done:
	free(p.endpoint_opt);
	free(p.masked);
	if (code != S3DB_OK)
		conn_info_free(out);
	return code;
}

/* Frees the strings of c and zeroes it (c itself is the caller's). */
void conn_info_free(conn_info *c)
{
	if (!c)
		return;
	free(c->endpoint);
	free(c->bucket);
	free(c->prefix);
	free(c->region);
	free(c->access_key);
	if (c->secret_key) {
		explicit_bzero(c->secret_key, strlen(c->secret_key));
		free(c->secret_key);
	}
	if (c->session_token) {
		explicit_bzero(c->session_token, strlen(c->session_token));
		free(c->session_token);
	}
	free(c->root);
	memset(c, 0, sizeof *c);
	c->max_retries = -1;
}

/* Appends "?a=b&c=d" pieces: first selects '?' or '&'. */
static void put_opt(sbuf *b, int *first, const char *name, const char *value)
{
	sbuf_putc(b, *first ? '?' : '&');
	*first = 0;
	sbuf_puts(b, name);
	sbuf_putc(b, '=');
	sbuf_puts(b, value);
}

/* A connection string equivalent to c (it parses back to the same
 * conn_info, but for the secret and token, shown as "***").  The form
 * follows c: file://, s3:// for the AWS endpoint, http(s):// for a
 * path-style custom endpoint, s3://...?endpoint= otherwise.  Returns
 * malloc'd text, NULL on oom or NULL c. */
char *conn_describe(const conn_info *c)
{
	if (!c)
		return NULL;
	sbuf b;
	sbuf_init(&b);
	int first = 1;
	if (c->kind == CONN_FILE) {
		sbuf_puts(&b, "file://");
		for (const unsigned char *r = (const unsigned char *)(c->root ? c->root : "/"); *r; r++) {
			if (*r == '%' || *r == '?' || *r == '#' || *r == ' ')
				sbuf_printf(&b, "%%%02X", *r);
			else
				sbuf_putc(&b, (char)*r);
		}
	} else {
		const char *region = c->region ? c->region : CONN_DEFAULT_REGION;
		char *aws = aws_endpoint(region);
		int aws_default = !c->endpoint || (aws && strcmp(c->endpoint, aws) == 0);
		free(aws);
		int http_form = !aws_default && c->path_style && c->endpoint &&
		                strstr(c->endpoint, "://");
		const char *host_part = NULL;
		if (http_form) {
			const char *sep = strstr(c->endpoint, "://");
			sbuf_append(&b, c->endpoint, (size_t)(sep - c->endpoint) + 3);
			host_part = sep + 3;
		} else {
			sbuf_puts(&b, "s3://");
		}
		if (c->access_key) {
			pct_encode_component(&b, c->access_key);
			if (c->secret_key)
				sbuf_puts(&b, ":***");
			sbuf_putc(&b, '@');
		}
		if (host_part) {
			sbuf_puts(&b, host_part);
			sbuf_putc(&b, '/');
		}
		pct_encode_component(&b, c->bucket ? c->bucket : CONN_DEFAULT_BUCKET);
		if (c->prefix && *c->prefix) {
			sbuf_putc(&b, '/');
			sbuf_puts(&b, c->prefix);
		}
		if (strcmp(region, CONN_DEFAULT_REGION) != 0)
			put_opt(&b, &first, "region", region);
		if (!http_form && !aws_default)
			put_opt(&b, &first, "endpoint", c->endpoint);
		if (!http_form && c->path_style)
			put_opt(&b, &first, "forcePathStyle", "true");
		if (http_form && !c->path_style)
			put_opt(&b, &first, "forcePathStyle", "false");
		if (c->session_token)
			put_opt(&b, &first, "sessionToken", "***");
	}
	char num[32];
	if (c->parallelism > 0) {
		snprintf(num, sizeof num, "%d", c->parallelism);
		put_opt(&b, &first, "parallelism", num);
	}
	if (c->timeout_ms > 0) {
		snprintf(num, sizeof num, "%d", c->timeout_ms);
		put_opt(&b, &first, "timeout", num);
	}
	if (c->max_retries >= 0) {
		snprintf(num, sizeof num, "%d", c->max_retries);
		put_opt(&b, &first, "retries", num);
	}
	return sbuf_steal(&b);
}

/* The full object key: `relative` when the prefix is empty, else Node's
 * path.join(prefix, relative) (spec §1.6): joined with '/', repeated '/'
 * collapsed, '.' dropped, '..' resolved (kept when above the prefix's
 * root, as Node does for relative paths), a trailing '/' kept.  Returns
 * malloc'd text, NULL on oom. */
char *conn_full_key(const conn_info *c, const char *relative)
{
	if (!relative)
		relative = "";
	if (!c || !c->prefix || !*c->prefix)
		return strdup(relative);
	/* path.join skips empty arguments */
	char *joined = *relative ? s3db_asprintf("%s/%s", c->prefix, relative) : strdup(c->prefix);
	if (!joined)
		return NULL;
	size_t n = strlen(joined);
	int trailing = n > 0 && joined[n - 1] == '/';
	strv segs;
	strv_init(&segs);
	int oom = 0;
	for (char *save = NULL, *tok = strtok_r(joined, "/", &save); tok && !oom;
	     tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0 && segs.count > 0 &&
		    strcmp(segs.items[segs.count - 1], "..") != 0) {
			free(segs.items[--segs.count]);
			segs.items[segs.count] = NULL;
			continue;
		}
		oom = strv_push(&segs, tok) != 0;
	}
	free(joined);
	if (oom) {
		strv_free(&segs);
		return NULL;
	}
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < segs.count; i++) {
		if (i)
			sbuf_putc(&b, '/');
		sbuf_puts(&b, segs.items[i]);
	}
	if (segs.count == 0)
		sbuf_putc(&b, '.');
	if (trailing)
		sbuf_putc(&b, '/');
	strv_free(&segs);
	return sbuf_steal(&b);
}
