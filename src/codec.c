/*
 * codec.c — the value encodings of the s3db format (see codec.h).
 *
 * Design.  Every function is pure: input strings in, malloc'd strings out,
 * no I/O and no mutable globals (the tables below are constant).  The
 * module does not depend on util.c: it carries its own tiny growable
 * buffer (cbuf) so it can be tested and reused alone.  Section numbers
 * refer to the format spec (s3db-format.md).
 *
 * Text model.  JavaScript strings are UTF-16; ours are UTF-8.  Where the
 * format counts characters (the header-value heuristics of §3.10) we count
 * UTF-16 code units while walking UTF-8.  Bytes that are not valid UTF-8
 * are replaced by U+FFFD exactly as a WHATWG/Node decoder does (maximal
 * subpart rule), because that is what JavaScript would have seen.
 *
 * Numbers.  JavaScript's Number::toString is reproduced by asking printf
 * for 1..17 significant digits until strtod gives the same double back
 * (shortest round trip; printf rounds correctly, which is JS's tie rule),
 * then laying the digits out by the ECMAScript rules.  Text handed to
 * strtod never contains a radix character ("12345e-4"), so neither
 * direction depends on the C locale.
 *
 * Fidelity.  The encoders and decoders were compared with s3db.js 21.6.2
 * itself (its metadataEncode/metadataDecode/base62 functions under Node
 * 20) on some 200,000 random inputs; tests/t_codec.c embeds a sample of
 * those results.  Where we deviate on purpose (writer rules W2, W6, R6,
 * the decimal form of tiny numbers, RFC 2047 look-alikes) codec.h says so.
 *
 * Invariants: every char* returned is NUL-terminated and malloc'd; a
 * NULL return means out of memory unless a function says otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "codec.h"
#include "util.h"

/* ======================================================================
 * A growable byte buffer, local to this file.
 * ==================================================================== */

typedef struct cbuf {
	char *p;
	size_t len;
	size_t cap;
	int oom;
} cbuf;

static void cb_init(cbuf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

static int cb_reserve(cbuf *b, size_t extra)
{
	if (b->oom)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 32;
	while (ncap < b->len + extra + 1) {
		if (ncap > ((size_t)-1) / 2) {
			b->oom = 1;
			return -1;
		}
		ncap *= 2;
	}
	char *np = realloc(b->p, ncap);
	if (!np) {
		b->oom = 1;
		return -1;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

static void cb_put(cbuf *b, const void *data, size_t n)
{
	if (cb_reserve(b, n) < 0)
		return;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void cb_putc(cbuf *b, int c)
{
	char ch = (char)c;
	cb_put(b, &ch, 1);
}

static void cb_puts(cbuf *b, const char *s)
{
	cb_put(b, s, strlen(s));
}

/* Hands the NUL-terminated data to the caller; NULL (and freed) on oom.
 * *len (optional) receives the byte count. */
static char *cb_finish(cbuf *b, size_t *len)
{
	if (cb_reserve(b, 0) < 0) {
		free(b->p);
		b->p = NULL;
		return NULL;
	}
	b->p[b->len] = '\0';
	if (len)
		*len = b->len;
	char *r = b->p;
	b->p = NULL;
	return r;
}

static void cb_free(cbuf *b)
{
	free(b->p);
	b->p = NULL;
}

static char *dup_n(const char *s, size_t n)
{
	char *r = malloc(n + 1);
	if (!r)
		return NULL;
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static char *dup_s(const char *s)
{
	return dup_n(s, strlen(s));
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ======================================================================
 * UTF-8
 * ==================================================================== */

/* Decodes one code point at s[*i] (len bytes in all) the WHATWG way.
 * Returns the code point, or 0xFFFD for an ill-formed sequence (then *i
 * has advanced past the maximal ill-formed subpart only); *ok is 1 when
 * the sequence was well-formed. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i, int *ok)
{
	unsigned char b = s[*i];
	*ok = 1;
	if (b < 0x80) {
		(*i)++;
		return b;
	}
	int need;
	uint32_t cp;
	unsigned char lo = 0x80, hi = 0xBF;
	if (b >= 0xC2 && b <= 0xDF) {
		need = 1;
		cp = b & 0x1F;
	} else if (b >= 0xE0 && b <= 0xEF) {
		need = 2;
		cp = b & 0x0F;
		if (b == 0xE0)
			lo = 0xA0;
		if (b == 0xED)
			hi = 0x9F;
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 3;
		cp = b & 0x07;
		if (b == 0xF0)
			lo = 0x90;
		if (b == 0xF4)
			hi = 0x8F;
	} else {
		(*i)++;
		*ok = 0;
		return 0xFFFD;
	}
	size_t j = *i + 1;
	for (int k = 0; k < need; k++, j++) {
		if (j >= len || s[j] < lo || s[j] > hi) {
			*i = j;  /* the lead and the good continuations so far */
			*ok = 0;
			return 0xFFFD;
		}
		lo = 0x80;
		hi = 0xBF;
		cp = (cp << 6) | (s[j] & 0x3F);
	}
	*i = j;
	return cp;
}

static void utf8_put(cbuf *b, uint32_t cp)
{
	char t[4];
	size_t n;
	if (cp < 0x80) {
		t[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		t[0] = (char)(0xC0 | (cp >> 6));
		t[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		t[0] = (char)(0xE0 | (cp >> 12));
		t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		t[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		t[0] = (char)(0xF0 | (cp >> 18));
		t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		t[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	cb_put(b, t, n);
}

static int utf8_is_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	int ok;
	while (i < len) {
		utf8_next(u, len, &i, &ok);
		if (!ok)
			return 0;
	}
	return 1;
}

/* Valid UTF-8 copy of s (len bytes): ill-formed sequences become U+FFFD.
 * NUL bytes are kept (the copy is len' bytes plus a terminator). */
static char *utf8_sanitize_n(const char *s, size_t len, size_t *outlen)
{
	if (utf8_is_valid(s, len)) {
		if (outlen)
			*outlen = len;
		return dup_n(s, len);
	}
	cbuf b;
	cb_init(&b);
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	int ok;
	while (i < len) {
		size_t st = i;
		uint32_t cp = utf8_next(u, len, &i, &ok);
		if (ok)
			cb_put(&b, s + st, i - st);
		else
			utf8_put(&b, cp);
	}
	return cb_finish(&b, outlen);
}

char *codec_utf8_sanitize(const char *s, size_t len)
{
	return utf8_sanitize_n(s, len, NULL);
}

/* ======================================================================
 * Numbers (§0, §3.3)
 * ==================================================================== */

/* Parses text printf wrote with %.*e: every digit before 'e' in order
 * (whatever the radix character is) and the exponent. */
static int split_e_format(const char *t, char *digits, int *ndigits, int *exp10)
{
	int k = 0;
	const char *p = t;
	for (; *p && *p != 'e' && *p != 'E'; p++)
		if (*p >= '0' && *p <= '9' && k < 24)
			digits[k++] = *p;
	if (!*p || k == 0)
		return -1;
	*exp10 = atoi(p + 1);
	digits[k] = '\0';
	*ndigits = k;
	return 0;
}

/* Shortest digits d1..dk (no trailing zeros) and point position n with
 * x = 0.d1..dk × 10^n, for a finite x > 0. */
static void shortest_digits(double x, char digits[24], int *k, int *n)
{
	char t[64], probe[64];
	int nd = 0, e = 0;
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(t, sizeof t, "%.*e", prec - 1, x);
		if (split_e_format(t, digits, &nd, &e) < 0)
			continue;
		snprintf(probe, sizeof probe, "%se%d", digits, e - (nd - 1));
		if (strtod(probe, NULL) == x)
			break;
	}
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	*k = nd;
	*n = e + 1;
}

/* §0: ECMAScript Number::toString(10). */
void codec_js_number(double v, char buf[32])
{
	if (isnan(v)) {
		strcpy(buf, "NaN");
		return;
	}
	if (isinf(v)) {
		strcpy(buf, v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (v == 0) {  /* +0 and -0 */
		strcpy(buf, "0");
		return;
	}
	char d[24];
	int k, n;
	shortest_digits(fabs(v), d, &k, &n);
	char *o = buf;
	if (v < 0)
		*o++ = '-';
	if (k <= n && n <= 21) {
		memcpy(o, d, (size_t)k);
		o += k;
		for (int i = 0; i < n - k; i++)
			*o++ = '0';
	} else if (0 < n && n <= 21) {
		memcpy(o, d, (size_t)n);
		o += n;
		*o++ = '.';
		memcpy(o, d + n, (size_t)(k - n));
		o += k - n;
	} else if (-6 < n && n <= 0) {
		*o++ = '0';
		*o++ = '.';
		for (int i = 0; i < -n; i++)
			*o++ = '0';
		memcpy(o, d, (size_t)k);
		o += k;
	} else {
		int e = n - 1;
		*o++ = d[0];
		if (k > 1) {
			*o++ = '.';
			memcpy(o, d + 1, (size_t)(k - 1));
			o += k - 1;
		}
		o += sprintf(o, "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
	}
	*o = '\0';
}

/* 1 when the UTF-8 code point is a JavaScript StrWhiteSpaceChar. */
static int js_is_space(uint32_t cp)
{
	switch (cp) {
	case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
	case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
	case 0x205F: case 0x3000: case 0xFEFF:
		return 1;
	default:
		return cp >= 0x2000 && cp <= 0x200A;
	}
}

/* Trims JS white space; returns the start and sets *len. */
static const char *js_trim(const char *s, size_t *len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;
	int ok;
	while (i < n) {
		size_t j = i;
		uint32_t cp = utf8_next(u, n, &j, &ok);
		if (!ok || !js_is_space(cp))
			break;
		i = j;
	}
	size_t end = i, j = i;
	while (j < n) {
		uint32_t cp = utf8_next(u, n, &j, &ok);
		if (!ok || !js_is_space(cp))
			end = j;
	}
	*len = end - i;
	return s + i;
}

/* §0: Number(s) — StringToNumber for decimal, exponent, Infinity and
 * 0x/0o/0b forms; white space around is ignored; "" is 0; else NaN. */
double codec_js_parse_number(const char *s)
{
	if (!s)
		return NAN;
	size_t n;
	const char *p = js_trim(s, &n);
	if (n == 0)
		return 0;
	if (n > 2 && p[0] == '0' && strchr("xXoObB", p[1])) {
		int base = (p[1] == 'x' || p[1] == 'X') ? 16 : (p[1] == 'o' || p[1] == 'O') ? 8 : 2;
		double r = 0;
		for (size_t i = 2; i < n; i++) {
			int c = (unsigned char)p[i], d;
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				return NAN;
			if (d >= base)
				return NAN;
			r = r * base + d;
		}
		if (base == 16) {  /* strtod rounds long hex correctly */
			char *t = dup_n(p, n), *end;
			if (!t)
				return r;
			r = strtod(t, &end);
			free(t);
		}
		return r;
	}
	int neg = 0;
	size_t i = 0;
	if (p[0] == '+' || p[0] == '-') {
		neg = p[0] == '-';
		i++;
	}
	if (n - i == 8 && memcmp(p + i, "Infinity", 8) == 0)
		return neg ? -INFINITY : INFINITY;
	/* mantissa digits without the point, then the adjusted exponent */
	cbuf m;
	cb_init(&m);
	long long exp_adj = 0;
	size_t ndig = 0;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, ndig++)
		cb_putc(&m, p[i]);
	if (i < n && p[i] == '.') {
		for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++, ndig++) {
			cb_putc(&m, p[i]);
			exp_adj--;
		}
	}
	if (ndig == 0) {
		cb_free(&m);
		return NAN;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		int eneg = 0;
		if (i < n && (p[i] == '+' || p[i] == '-')) {
			eneg = p[i] == '-';
			i++;
		}
		size_t start = i;
		long long e = 0;
		for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			if (e < 1000000000LL)
				e = e * 10 + (p[i] - '0');
		if (i == start) {
			cb_free(&m);
			return NAN;
		}
		exp_adj += eneg ? -e : e;
	}
	if (i != n) {
		cb_free(&m);
		return NAN;
	}
	char tail[32];
	snprintf(tail, sizeof tail, "e%lld", exp_adj);
	cb_puts(&m, tail);
	char *text = cb_finish(&m, NULL);
	if (!text)
		return NAN;
	double r = strtod(text, NULL);
	free(text);
	return neg ? -r : r;
}

static const char B62[] =
	"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

static int b62_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 36;
	return -1;
}

/* Digits of floor(n) for n > 0, double arithmetic as s3db.js; "" when
 * floor(n) is 0 (the defect of §3.3.3). */
static void b62_digits(cbuf *b, double n)
{
	char tmp[200];  /* 62^200 > DBL_MAX */
	size_t k = sizeof tmp;
	n = floor(n);
	while (n > 0 && k > 0) {
		tmp[--k] = B62[(int)fmod(n, 62.0)];
		n = floor(n / 62.0);
	}
	cb_put(b, tmp + k, sizeof tmp - k);
}

static void b62_append(cbuf *b, double n)
{
	if (isnan(n) || isinf(n)) {
		cb_puts(b, "undefined");
		return;
	}
	if (n == 0) {
		cb_putc(b, '0');
		return;
	}
	if (n < 0) {
		cb_putc(b, '-');
		b62_append(b, -floor(n));
		return;
	}
	b62_digits(b, n);
}

/* §3.3.2 encode: byte-identical to s3db.js, including "" for 0 < n < 1. */
char *codec_base62_encode(double n)
{
	cbuf b;
	cb_init(&b);
	b62_append(&b, n);
	return cb_finish(&b, NULL);
}

/* v7 writes integers the same way (B.5). */
char *codec_base62_encode_v7(double n)
{
	return codec_base62_encode(n);
}

/* §3.3.2 decode: "" is 0, optional '-', NaN on a foreign character. */
double codec_base62_decode(const char *s)
{
	if (!s)
		return NAN;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	double r = 0;
	for (; *s; s++) {
		int v = b62_value((unsigned char)*s);
		if (v < 0)
			return NAN;
		r = r * 62 + v;
	}
	return neg ? -r : r;
}

/* §3.3.1 */
char *codec_base36_encode(uint64_t n)
{
	char tmp[16];
	size_t k = sizeof tmp;
	tmp[--k] = '\0';
	do {
		tmp[--k] = B62[n % 36];
		n /= 36;
	} while (n);
	return dup_s(tmp + k);
}

/* Lower-case base36 to an index; -1 on "", a foreign character or
 * overflow. */
int64_t codec_base36_decode(const char *s)
{
	if (!s || !*s)
		return -1;
	uint64_t r = 0;
	for (; *s; s++) {
		int c = (unsigned char)*s, v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 10;
		else
			return -1;
		if (r > (uint64_t)(INT64_MAX - v) / 36)
			return -1;
		r = r * 36 + (uint64_t)v;
	}
	return (int64_t)r;
}

/* Integer base62 (datetime/dateonly): exact for every int64. */
static char *b62_int64(int64_t v)
{
	char tmp[24];
	size_t k = sizeof tmp;
	tmp[--k] = '\0';
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[--k] = B62[u % 62];
		u /= 62;
	} while (u);
	if (v < 0)
		tmp[--k] = '-';
	return dup_s(tmp + k);
}

static int b62_int64_decode(const char *s, int64_t *out)
{
	if (!s || !*s)
		return -1;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
		if (!*s)
			return -1;
	}
	uint64_t r = 0;
	for (; *s; s++) {
		int v = b62_value((unsigned char)*s);
		if (v < 0 || r > ((uint64_t)INT64_MAX - (uint64_t)v) / 62)
			return -1;
		r = r * 62 + (uint64_t)v;
	}
	*out = neg ? -(int64_t)r : (int64_t)r;
	return 0;
}

/* s3db.js's encodeDecimal, bytes as it writes them (§3.3.3). */
static void decimal_s3db(cbuf *b, double n)
{
	char s[32];
	codec_js_number(fabs(n), s);
	if (n < 0)
		cb_putc(b, '-');
	char *dot = strchr(s, '.');
	if (dot)
		*dot = '\0';
	b62_append(b, codec_js_parse_number(s));
	if (dot && dot[1]) {
		cb_putc(b, '.');
		cb_puts(b, dot + 1);
	}
}

/* The exponent form with a forced fraction ("1.0e-7", "1.2345e+20"): its
 * integer part is one digit, so decodeDecimal reads it back exactly. */
static void decimal_exact(cbuf *b, double n)
{
	char d[24];
	int k, p;
	shortest_digits(fabs(n), d, &k, &p);
	if (n < 0)
		cb_putc(b, '-');
	cb_putc(b, d[0]);
	cb_putc(b, '.');
	if (k > 1)
		cb_put(b, d + 1, (size_t)(k - 1));
	else
		cb_putc(b, '0');
	int e = p - 1;
	char t[16];
	snprintf(t, sizeof t, "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
	cb_puts(b, t);
}

/* §3.3.3, with our writer's deviation documented in codec.h: the bytes of
 * s3db.js when they decode back to n, else the exact exponent form. */
char *codec_decimal_encode(double n)
{
	cbuf b;
	cb_init(&b);
	if (isnan(n) || isinf(n)) {
		cb_puts(&b, "undefined");
		return cb_finish(&b, NULL);
	}
	decimal_s3db(&b, n);
	if (b.oom)
		return cb_finish(&b, NULL);
	double back = codec_decimal_decode(b.p);
	if (!(back == n && signbit(back) == signbit(n)) && n != 0) {
		b.len = 0;
		decimal_exact(&b, n);
	}
	return cb_finish(&b, NULL);
}

/* §3.3.3 decodeDecimal as s3db.js: the fraction is the text between the
 * first and the second '.' (JavaScript's split); an empty fraction means
 * none.  "" gives NaN here (s3db.js: 0) — the output of the 1e-7 defect
 * is no number. */
double codec_decimal_decode(const char *s)
{
	if (!s || !*s)
		return NAN;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	const char *dot = strchr(s, '.');
	char *ip = dot ? dup_n(s, (size_t)(dot - s)) : dup_s(s);
	if (!ip)
		return NAN;
	double iv = codec_base62_decode(ip);
	free(ip);
	if (isnan(iv))
		return NAN;
	double r = iv;
	if (dot && dot[1] && dot[1] != '.') {
		const char *frac = dot + 1;
		size_t fl = strcspn(frac, ".");
		char num[32];
		codec_js_number(iv, num);
		size_t need = strlen(num) + 1 + fl + 1;
		char *t = malloc(need);
		if (!t)
			return NAN;
		snprintf(t, need, "%s.%.*s", num, (int)fl, frac);
		r = codec_js_parse_number(t);
		free(t);
	}
	return neg ? -r : r;
}

/* §3.4: datetime = base62 of epoch milliseconds. */
char *codec_datetime_encode(int64_t epoch_ms)
{
	return b62_int64(epoch_ms);
}

int codec_datetime_decode(const char *s, int64_t *epoch_ms)
{
	return b62_int64_decode(s, epoch_ms);
}

/* §3.4: dateonly = base62 of days since 1970-01-01. */
char *codec_dateonly_encode(int64_t days)
{
	return b62_int64(days);
}

int codec_dateonly_decode(const char *s, int64_t *days)
{
	return b62_int64_decode(s, days);
}

/* ======================================================================
 * base64 (OpenSSL EVP), percent-encoding
 * ==================================================================== */

/* Standard alphabet with padding, via EVP_EncodeBlock in chunks that fit
 * its int length. */
char *codec_base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t outlen = 4 * ((len + 2) / 3);
	if (len > ((size_t)-1) / 2)
		return NULL;
	char *out = malloc(outlen + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	const size_t chunk = 3u << 20;  /* a multiple of 3, fits in int */
	for (size_t i = 0; i < len; i += chunk) {
		size_t n = len - i < chunk ? len - i : chunk;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + i, (int)n);
	}
	out[o] = '\0';
	return out;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Decodes clean base64 text (alphabet only, no padding) of n chars with
 * EVP_DecodeBlock; a dangling single char is dropped.  Result is
 * NUL-terminated; *len gets the byte count. */
static unsigned char *b64_decode_clean(char *clean, size_t n, size_t *len)
{
	size_t r = n % 4;
	if (r == 1)
		n--, r = 0;
	size_t pad = r ? 4 - r : 0;
	for (size_t i = 0; i < pad; i++)
		clean[n + i] = 'A';  /* zero bits: the padding bytes are dropped */
	size_t total = n + pad;
	unsigned char *out = malloc(total / 4 * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	const size_t chunk = 4u << 20;
	for (size_t i = 0; i < total; i += chunk) {
		size_t m = total - i < chunk ? total - i : chunk;
		int got = EVP_DecodeBlock(out + o, (unsigned char *)clean + i, (int)m);
		if (got < 0) {
			free(out);
			return NULL;
		}
		o += (size_t)got;
	}
	o -= pad;
	out[o] = '\0';
	*len = o;
	return out;
}

/* Lenient like Node: characters outside the alphabet are skipped, '-'
 * and '_' read as '+' and '/', decoding stops at the first '='. */
unsigned char *codec_base64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *clean = malloc(n + 4);
	if (!clean)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n && s[i] != '='; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v >= 0)
			clean[k++] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[v];
	}
	size_t dummy;
	unsigned char *out = b64_decode_clean(clean, k, len ? len : &dummy);
	free(clean);
	return out;
}

/* Strict: standard alphabet, '=' padding to a multiple of 4, and
 * canonical (re-encoding gives s back, so unused bits are zero). */
unsigned char *codec_base64_decode_strict(const char *s, size_t *len)
{
	size_t n = strlen(s);
	if (n % 4)
		return NULL;
	size_t pad = 0;
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++) {
		int c = (unsigned char)s[i];
		if (c == '-' || c == '_' || b64_value(c) < 0)
			return NULL;
	}
	char *clean = malloc(n + 4);
	if (!clean)
		return NULL;
	memcpy(clean, s, n - pad);
	size_t got;
	unsigned char *out = b64_decode_clean(clean, n - pad, &got);
	free(clean);
	if (!out)
		return NULL;
	char *again = codec_base64_encode(out, got);
	if (!again || strcmp(again, s) != 0) {
		free(again);
		free(out);
		return NULL;
	}
	free(again);
	if (len)
		*len = got;
	return out;
}

static const char HEX[] = "0123456789ABCDEF";

/* encodeURIComponent's unreserved set: A-Z a-z 0-9 - _ . ! ~ * ' ( ) */
static int uri_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || (c && strchr("-_.!~*'()", c));
}

static void uri_encode_into(cbuf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (uri_unreserved(c)) {
			cb_putc(b, c);
		} else {
			char t[3] = { '%', HEX[c >> 4], HEX[c & 15] };
			cb_put(b, t, 3);
		}
	}
}

/* encodeURIComponent over UTF-8 bytes (invalid UTF-8 is encoded byte by
 * byte; JavaScript could not have held it). */
char *codec_uri_encode_component(const char *s)
{
	cbuf b;
	cb_init(&b);
	cb_reserve(&b, strlen(s));
	uri_encode_into(&b, s, strlen(s));
	return cb_finish(&b, NULL);
}

/* Value of a hex digit; -1 when c is none. */
/* Reads "%XX" at s (n bytes left); -1 when not one. */
static int pct_byte(const char *s, size_t n)
{
	if (n < 3 || s[0] != '%')
		return -1;
	int h = s3db_hex_value((unsigned char)s[1]), l = s3db_hex_value((unsigned char)s[2]);
	if (h < 0 || l < 0)
		return -1;
	return h << 4 | l;
}

/* decodeURIComponent: each escaped multi-byte character must be fully
 * escaped and well-formed UTF-8; -1 (URIError) otherwise. */
static int uri_decode_n(const char *s, size_t n, char **out, size_t *outlen)
{
	cbuf b;
	cb_init(&b);
	size_t i = 0;
	while (i < n) {
		if (s[i] != '%') {
			cb_putc(&b, s[i++]);
			continue;
		}
		int c = pct_byte(s + i, n - i);
		if (c < 0)
			goto bad;
		i += 3;
		if (c < 0x80) {
			cb_putc(&b, c);
			continue;
		}
		unsigned char seq[4];
		int need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 :
		           c >= 0xF0 && c <= 0xF4 ? 3 : -1;
		if (need < 0)
			goto bad;
		seq[0] = (unsigned char)c;
		for (int k = 1; k <= need; k++) {
			int d = pct_byte(s + i, n - i);
			if (d < 0)
				goto bad;
			seq[k] = (unsigned char)d;
			i += 3;
		}
		if (!utf8_is_valid((const char *)seq, (size_t)need + 1))
			goto bad;
		cb_put(&b, seq, (size_t)need + 1);
	}
	*out = cb_finish(&b, outlen);
	return *out ? 0 : -2;
bad:
	cb_free(&b);
	*out = NULL;
	return -1;
}

/* NULL on a URIError (or out of memory). */
char *codec_uri_decode_component(const char *s)
{
	char *out;
	if (uri_decode_n(s, strlen(s), &out, NULL) != 0)
		return NULL;
	return out;
}

/* ======================================================================
 * Header values (§3.10)
 * ==================================================================== */

typedef struct dict_entry {
	const char *value;
	const char *code;
} dict_entry;

/* §3.10.1 exact table, in the order s3db.js builds its reverse table. */
static const dict_entry EXACT[] = {
	{ "application/json", "j" }, { "application/xml", "X" },
	{ "application/ld+json", "J" }, { "text/html", "H" },
	{ "text/plain", "T" }, { "text/css", "C" },
	{ "text/javascript", "V" }, { "text/csv", "v" },
	{ "image/png", "P" }, { "image/jpeg", "I" }, { "image/gif", "G" },
	{ "image/svg+xml", "S" }, { "image/webp", "W" },
	{ "application/pdf", "Q" }, { "application/zip", "z" },
	{ "application/octet-stream", "o" },
	{ "application/x-www-form-urlencoded", "u" },
	{ "multipart/form-data", "F" }, { "font/woff", "w" },
	{ "font/woff2", "f" },
	{ "processing", "p" }, { "completed", "c" }, { "succeeded", "s" },
	{ "failed", "f" }, { "cancelled", "x" }, { "timeout", "t" },
	{ "retrying", "r" }, { "authorized", "a" }, { "captured", "K" },
	{ "refunded", "R" }, { "declined", "d" }, { "shipped", "h" },
	{ "delivered", "D" }, { "returned", "e" }, { "in_transit", "i" },
	{ "initialized", "n" }, { "terminated", "m" },
};

/* §3.10.1 URL-prefix table, sorted by prefix length descending (ties in
 * table order; equal-length prefixes never both match). */
static const dict_entry PREFIXES[] = {
	{ "https://s3.amazonaws.com/", "@s" },
	{ "https://api.example.com/", "@A" },
	{ "http://localhost:", "@L" },
	{ "http://localhost", "@l" },
	{ "https://api.", "@H" },
	{ "https://www.", "@W" },
	{ "https://s3-", "@S" },
	{ "/products/", "@p" },
	{ "/api/v1/", "@1" }, { "/api/v2/", "@2" }, { "/api/v3/", "@3" },
	{ "https://", "@h" },
	{ "http://", "@t" },
	{ "/users/", "@u" },
	{ "/api/", "@a" },
	{ "/v1/", "@v" },  /* never saves a byte: decode only in effect */
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int all_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
			return 0;
	return 1;
}

/* The dictionary form of s (§3.10 step 4) under rules W2 and R6, or NULL
 * when s3db's dictionary would not apply or we must not use it. */
static const char *dict_lookup(const char *s, size_t n, const char **rest)
{
	*rest = "";
	for (size_t i = 0; i < NELEM(EXACT); i++)
		if (strcmp(s, EXACT[i].value) == 0) {
			if (strcmp(EXACT[i].value, "font/woff2") == 0)
				return NULL;  /* R6: "d:f" reads as "failed" */
			return EXACT[i].code;
		}
	for (size_t i = 0; i < NELEM(PREFIXES); i++) {
		size_t pl = strlen(PREFIXES[i].value);
		if (strncmp(s, PREFIXES[i].value, pl) != 0)
			continue;
		/* only the first (longest) match is tried; use it iff shorter */
		if (2 + strlen(PREFIXES[i].code) >= pl)
			return NULL;
		if (!all_printable(s + pl, n - pl))
			return NULL;  /* W2 */
		*rest = s + pl;
		return PREFIXES[i].code;
	}
	return NULL;
}

static void b64_into(cbuf *b, const char *s, size_t n)
{
	char *t = codec_base64_encode(s, n);
	if (!t) {
		b->oom = 1;
		return;
	}
	cb_puts(b, t);
	free(t);
}

/* §3.10; the rules are listed in codec.h. */
char *codec_metadata_encode(const char *s, int literal)
{
	if (!s)
		return dup_s("null");
	return codec_metadata_encode_len(s, strlen(s), literal);
}

/* Does s hold an RFC 2047 encoded-word that our reader would decode? */
static int looks_rfc2047(const char *s)
{
	if (!strstr(s, "=?"))
		return 0;
	char *d = codec_rfc2047_decode(s);
	int changed = !d || strcmp(d, s) != 0;
	free(d);
	return changed;
}

/* §3.10 metadataEncode with the writer rules of codec.h. */
char *codec_metadata_encode_len(const char *in, size_t inlen, int literal)
{
	size_t n;
	char *s = utf8_sanitize_n(in, inlen, &n);
	if (!s)
		return NULL;
	cbuf b;
	cb_init(&b);
	int has_nul = memchr(s, '\0', n) != NULL;

	if ((literal && !has_nul && (strcmp(s, "null") == 0 || strcmp(s, "undefined") == 0)) ||
	    starts_with(s, "d:") || starts_with(s, "u:") || starts_with(s, "b:") ||
	    starts_with(s, "z:") || starts_with(s, "z85:") ||
	    (!has_nul && all_printable(s, n) && looks_rfc2047(s))) {
		cb_puts(&b, "b:");
		b64_into(&b, s, n);
		free(s);
		return cb_finish(&b, NULL);
	}
	if (!has_nul) {
		const char *rest;
		const char *code = dict_lookup(s, n, &rest);
		if (code) {
			cb_puts(&b, "d:");
			cb_puts(&b, code);
			cb_puts(&b, rest);
			free(s);
			return cb_finish(&b, NULL);
		}
	}
	if (all_printable(s, n)) {
		cb_put(&b, s, n);
		free(s);
		return cb_finish(&b, NULL);
	}
	/* character analysis in UTF-16 code units */
	size_t units = 0, latin1 = 0, multi = 0, i = 0;
	int ok;
	while (i < n) {
		uint32_t cp = utf8_next((const unsigned char *)s, n, &i, &ok);
		if (cp >= 0x10000) {
			units += 2;
			multi += 2;
		} else {
			units++;
			if (cp < 0x20 || cp == 0x7F || cp > 0xFF)
				multi++;
			else if (cp >= 0x80)
				latin1++;
		}
	}
	int base64;
	if (multi > 0)
		base64 = (double)multi / (double)units > 0.3;
	else
		base64 = (double)latin1 / (double)units > 0.5;
	if (base64) {
		cb_puts(&b, "b:");
		b64_into(&b, s, n);
	} else {
		cb_puts(&b, "u:");
		uri_encode_into(&b, s, n);
	}
	free(s);
	return cb_finish(&b, NULL);
}

/* §3.10.2 base85: s3db.js's alphabet has 90 symbols of which the first
 * 85 are used; it reads 'z' '{' '|' '}' '~' as 85..89 and any other
 * ASCII character as 0, and keeps the low 32 bits of a group. */
static const char Z85[] =
	"!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~";

static int z85_value(int c)
{
	if (c >= 0x80)
		return -1;
	const char *p = c ? strchr(Z85, c) : NULL;
	return p ? (int)(p - Z85) : 0;
}

/* Big-endian groups of 5 symbols; a final group of m symbols carries m-1
 * bytes and is padded with the value 84.  -1 on non-ASCII input. */
static int base85_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	unsigned char *o = malloc(n / 5 * 4 + 4 + 1);
	if (!o)
		return -2;
	size_t k = 0;
	for (size_t i = 0; i < n; i += 5) {
		size_t m = n - i < 5 ? n - i : 5;
		uint64_t v = 0;
		for (size_t j = 0; j < 5; j++) {
			int d = j < m ? z85_value((unsigned char)s[i + j]) : 84;
			if (d < 0) {
				free(o);
				return -1;
			}
			v = v * 85 + (uint64_t)d;
		}
		v &= 0xFFFFFFFFu;
		unsigned char g[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
		                       (unsigned char)(v >> 8), (unsigned char)v };
		size_t nb = m == 5 ? 4 : m - 1;
		memcpy(o + k, g, nb);
		k += nb;
	}
	o[k] = '\0';
	*out = o;
	*outlen = k;
	return 0;
}

/* Raw inflate (RFC 1951, no zlib header); the stream must be complete. */
static int raw_inflate(const unsigned char *in, size_t n, char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, -15) != Z_OK)
		return -2;
	cbuf b;
	cb_init(&b);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)n;  /* header values are far below 4 GB */
	int rc;
	do {  /* Z_BUF_ERROR: input used up before the end (truncated) */
		if (cb_reserve(&b, 16384) < 0) {
			inflateEnd(&z);
			cb_free(&b);
			return -2;
		}
		z.next_out = (unsigned char *)b.p + b.len;
		z.avail_out = 16384;
		rc = inflate(&z, Z_NO_FLUSH);
		b.len += 16384 - z.avail_out;
	} while (rc == Z_OK);
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		cb_free(&b);
		return -1;
	}
	*out = cb_finish(&b, outlen);
	return *out ? 0 : -2;
}

/* Sets *out to the UTF-8 reading of bytes (lossy, as Node's toString). */
static int bytes_to_text(const unsigned char *bytes, size_t n, char **out, size_t *outlen)
{
	*out = utf8_sanitize_n((const char *)bytes, n, outlen);
	return *out ? 0 : -1;
}

/* DEFECT found by running s3db.js 21.6.2 (not in the spec): its exact
 * dictionary is a plain JavaScript object, so the names of
 * Object.prototype's methods "match" and are written as "d:" + the
 * function's source text, e.g. "toString" -> "d:function toString() {
 * [native code] }", "constructor" -> "d:function Object() { [native
 * code] }".  s3db.js cannot read them back; we can. */
static const dict_entry PROTO_NAMES[] = {
	{ "constructor", "Object" }, { "__defineGetter__", NULL },
	{ "__defineSetter__", NULL }, { "hasOwnProperty", NULL },
	{ "__lookupGetter__", NULL }, { "__lookupSetter__", NULL },
	{ "isPrototypeOf", NULL }, { "propertyIsEnumerable", NULL },
	{ "toString", NULL }, { "valueOf", NULL }, { "toLocaleString", NULL },
};

static const char *proto_decode(const char *p)
{
	static const char head[] = "function ", tail[] = "() { [native code] }";
	if (strncmp(p, head, sizeof head - 1) != 0)
		return NULL;
	p += sizeof head - 1;
	for (size_t i = 0; i < NELEM(PROTO_NAMES); i++) {
		const char *fn = PROTO_NAMES[i].code ? PROTO_NAMES[i].code : PROTO_NAMES[i].value;
		size_t fl = strlen(fn);
		if (strncmp(p, fn, fl) == 0 && strcmp(p + fl, tail) == 0)
			return PROTO_NAMES[i].value;
	}
	return NULL;
}

static const char *exact_decode(char code)
{
	const char *found = NULL;
	for (size_t i = 0; i < NELEM(EXACT); i++)
		if (EXACT[i].code[0] == code)
			found = EXACT[i].value;  /* later entries win (R6) */
	return found;
}

/* Tries the prefixed forms; 1 = decoded into *out, 0 = value stands as
 * is, -1 = out of memory. */
static int decode_prefixed(const char *s, size_t n, char **out, size_t *outlen)
{
	if (starts_with(s, "d:")) {
		const char *p = s + 2;
		size_t pl = n - 2;
		if (pl == 1) {
			const char *v = exact_decode(p[0]);
			if (v) {
				*out = dup_s(v);
				*outlen = strlen(v);
				return *out ? 1 : -1;
			}
		}
		const char *proto = proto_decode(p);
		if (proto) {
			*out = dup_s(proto);
			*outlen = strlen(proto);
			return *out ? 1 : -1;
		}
		if (pl >= 2 && p[0] == '@') {
			for (size_t i = 0; i < NELEM(PREFIXES); i++)
				if (p[1] == PREFIXES[i].code[1]) {
					cbuf b;
					cb_init(&b);
					cb_puts(&b, PREFIXES[i].value);
					cb_put(&b, p + 2, pl - 2);
					*out = cb_finish(&b, outlen);
					return *out ? 1 : -1;
				}
		}
		return 0;
	}
	if (starts_with(s, "z85:") && n > 4) {
		unsigned char *raw;
		size_t rl;
		int rc = base85_decode(s + 4, n - 4, &raw, &rl);
		if (rc == -2)
			return -1;
		if (rc < 0)
			return 0;
		char *inf;
		size_t il;
		rc = raw_inflate(raw, rl, &inf, &il);
		free(raw);
		if (rc == -2)
			return -1;
		if (rc < 0)
			return 0;
		rc = bytes_to_text((unsigned char *)inf, il, out, outlen);
		free(inf);
		return rc < 0 ? -1 : 1;
	}
	if (starts_with(s, "z:") && n > 2) {
		size_t rl;
		unsigned char *raw = codec_base64_decode(s + 2, &rl);
		if (!raw)
			return -1;
		char *inf;
		size_t il;
		int rc = raw_inflate(raw, rl, &inf, &il);
		free(raw);
		if (rc == -2)
			return -1;
		if (rc < 0)
			return 0;
		rc = bytes_to_text((unsigned char *)inf, il, out, outlen);
		free(inf);
		return rc < 0 ? -1 : 1;
	}
	if (starts_with(s, "u:") && n > 2) {
		int rc = uri_decode_n(s + 2, n - 2, out, outlen);
		if (rc == -2)
			return -1;
		return rc == 0 ? 1 : 0;
	}
	if (starts_with(s, "b:") && n > 2) {
		size_t rl;
		unsigned char *raw = codec_base64_decode(s + 2, &rl);
		if (!raw)
			return -1;
		int rc = bytes_to_text(raw, rl, out, outlen);
		free(raw);
		return rc < 0 ? -1 : 1;
	}
	return 0;
}

/* §3.10.2 metadataDecode; see codec.h for the one addition. */
int codec_metadata_decode_len(const char *s, char **out, size_t *len)
{
	size_t dummy;
	if (!len)
		len = &dummy;
	*out = NULL;
	*len = 0;
	if (strcmp(s, "null") == 0)
		return CODEC_NULL;
	if (strcmp(s, "undefined") == 0)
		return CODEC_ABSENT;
	int rc = decode_prefixed(s, strlen(s), out, len);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		*out = dup_s(s);
		if (!*out)
			return -1;
		*len = strlen(s);
	}
	return CODEC_VALUE;
}

int codec_metadata_decode(const char *s, char **out)
{
	return codec_metadata_decode_len(s, out, NULL);
}

/* ======================================================================
 * RFC 2047, v7 values (§4.2, B.5)
 * ==================================================================== */

/* Windows-1252 0x80..0x9F (0 = undefined, kept as the C1 control). */
static const uint16_t CP1252[32] = {
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
};

enum { CS_UTF8, CS_LATIN1, CS_CP1252 };

static int charset_kind(const char *cs, size_t n)
{
	char t[32];
	if (n == 0 || n >= sizeof t)
		return -1;
	for (size_t i = 0; i < n; i++)
		t[i] = (char)(cs[i] >= 'A' && cs[i] <= 'Z' ? cs[i] - 'A' + 'a' : cs[i]);
	t[n] = '\0';
	char *star = strchr(t, '*');  /* RFC 2231 language suffix */
	if (star)
		*star = '\0';
	if (!strcmp(t, "utf-8") || !strcmp(t, "utf8") || !strcmp(t, "us-ascii"))
		return CS_UTF8;
	if (!strcmp(t, "iso-8859-1") || !strcmp(t, "iso8859-1") ||
	    !strcmp(t, "iso_8859-1") || !strcmp(t, "latin1") || !strcmp(t, "l1"))
		return CS_LATIN1;
	if (!strcmp(t, "windows-1252") || !strcmp(t, "cp1252"))
		return CS_CP1252;
	return -1;
}

/* Parses one encoded-word at s; on success appends its text to b (UTF-8
 * words as raw bytes, so a character split across words re-joins) and
 * returns its length, else 0. */
static size_t rfc2047_word(const char *s, cbuf *b)
{
	if (s[0] != '=' || s[1] != '?')
		return 0;
	const char *cs = s + 2;
	const char *q1 = strchr(cs, '?');
	if (!q1 || q1 == cs)
		return 0;
	int kind = charset_kind(cs, (size_t)(q1 - cs));
	if (kind < 0)
		return 0;
	char enc = q1[1] == 'b' ? 'B' : q1[1] == 'q' ? 'Q' : q1[1];
	if ((enc != 'B' && enc != 'Q') || q1[2] != '?')
		return 0;
	const char *text = q1 + 3;
	const char *end = strstr(text, "?=");
	if (!end)
		return 0;
	size_t tn = (size_t)(end - text);
	for (size_t i = 0; i < tn; i++)
		if (text[i] == ' ' || text[i] == '\t' || text[i] == '?' ||
		    (unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7E)
			return 0;
	cbuf raw;
	cb_init(&raw);
	if (enc == 'B') {
		for (size_t i = 0; i < tn; i++)
			if (text[i] != '=' && b64_value((unsigned char)text[i]) < 0) {
				cb_free(&raw);
				return 0;
			}
		char *t = dup_n(text, tn);
		size_t rl = 0;
		unsigned char *r = t ? codec_base64_decode(t, &rl) : NULL;
		free(t);
		if (!r) {
			b->oom = 1;
			return 0;
		}
		cb_put(&raw, r, rl);
		free(r);
	} else {
		for (size_t i = 0; i < tn; i++) {
			if (text[i] == '_') {
				cb_putc(&raw, ' ');
			} else if (text[i] == '=') {
				int h = i + 2 < tn ? s3db_hex_value((unsigned char)text[i + 1]) : -1;
				int l = i + 2 < tn ? s3db_hex_value((unsigned char)text[i + 2]) : -1;
				int c = h < 0 || l < 0 ? -1 : h << 4 | l;
				if (c < 0) {
					cb_free(&raw);
					return 0;
				}
				cb_putc(&raw, c);
				i += 2;
			} else {
				cb_putc(&raw, text[i]);
			}
		}
	}
	if (raw.oom) {
		b->oom = 1;
		cb_free(&raw);
		return 0;
	}
	for (size_t i = 0; i < raw.len; i++) {
		unsigned char c = (unsigned char)raw.p[i];
		if (kind == CS_UTF8 || c < 0x80)
			cb_putc(b, c);
		else if (kind == CS_CP1252 && c < 0xA0 && CP1252[c - 0x80])
			utf8_put(b, CP1252[c - 0x80]);
		else
			utf8_put(b, c);
	}
	cb_free(&raw);
	return (size_t)(end + 2 - s);
}

/* RFC 2047 decoding of a whole header value: encoded-words are decoded,
 * white space between two adjacent words is dropped, other text kept. */
char *codec_rfc2047_decode(const char *s)
{
	if (!strstr(s, "=?"))
		return dup_s(s);
	cbuf b;
	cb_init(&b);
	int after_word = 0, any = 0;
	size_t ws_mark = 0;
	size_t i = 0, n = strlen(s);
	while (i < n) {
		if (s[i] == '=' && s[i + 1] == '?') {
			size_t before = b.len;
			if (after_word)
				b.len = ws_mark;  /* drop the white space between words */
			size_t used = rfc2047_word(s + i, &b);
			if (b.oom)
				break;
			if (used) {
				i += used;
				after_word = any = 1;
				ws_mark = b.len;
				continue;
			}
			b.len = before;
			if (b.p)
				b.p[b.len] = '\0';
		}
		if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
			after_word = 0;
		cb_putc(&b, s[i++]);
	}
	if (!any) {
		cb_free(&b);
		return dup_s(s);
	}
	size_t len;
	char *raw = cb_finish(&b, &len);
	if (!raw)
		return NULL;
	char *clean = utf8_sanitize_n(raw, len, NULL);
	free(raw);
	return clean;
}

/* B.5.2: accept the base64 reading t of s iff t has a character above
 * U+007F and base64(UTF-8(t)) is exactly s (then t differs from s). */
char *codec_v74_decode(const char *s)
{
	size_t n;
	unsigned char *raw = codec_base64_decode_strict(s, &n);
	if (raw) {
		int nonascii = 0;
		for (size_t i = 0; i < n; i++)
			if (raw[i] >= 0x80)
				nonascii = 1;
		if (nonascii && !memchr(raw, '\0', n) && utf8_is_valid((char *)raw, n))
			return (char *)raw;
		free(raw);
	}
	return dup_s(s);
}

/* B.5.1 */
char *codec_latin1_to_utf8(const char *s, size_t len)
{
	if (utf8_is_valid(s, len))
		return dup_n(s, len);
	cbuf b;
	cb_init(&b);
	for (size_t i = 0; i < len; i++)
		utf8_put(&b, (unsigned char)s[i]);
	return cb_finish(&b, NULL);
}

/* ======================================================================
 * Arrays (§3.5)
 * ==================================================================== */

/* §3.4.1: "\\" and "|" are escaped with a backslash; items joined by "|". */
char *codec_array_join(const char *const *items, size_t n)
{
	cbuf b;
	cb_init(&b);
	cb_reserve(&b, 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			cb_putc(&b, '|');
		for (const char *p = items[i]; *p; p++) {
			if (*p == '\\' || *p == '|')
				cb_putc(&b, '\\');
			cb_putc(&b, *p);
		}
	}
	return cb_finish(&b, NULL);
}

/* §3.5: the inverse of codec_array_join; a backslash makes the next
 * character literal, a final lone backslash stays.  0, or -1 when out of
 * memory (nothing is returned then). */
int codec_array_split(const char *s, char ***items, size_t *n)
{
	*items = NULL;
	*n = 0;
	if (!*s)
		return 0;
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		if (*p == '|')
			cap++;
	char **v = calloc(cap + 1, sizeof *v);
	if (!v)
		return -1;
	size_t count = 0;
	cbuf cur;
	cb_init(&cur);
	cb_reserve(&cur, 0);
	for (const char *p = s;; p++) {
		if (*p == '\\' && p[1]) {
			cb_putc(&cur, *++p);
			continue;
		}
		if (*p == '|' || *p == '\0') {
			char *item = cb_finish(&cur, NULL);
			if (!item)
				goto oom;
			v[count++] = item;
			cb_init(&cur);
			cb_reserve(&cur, 0);
			if (!*p)
				break;
			continue;
		}
		cb_putc(&cur, *p);
	}
	cb_free(&cur);
	*items = v;
	*n = count;
	return 0;
oom:
	cb_free(&cur);
	for (size_t i = 0; i < count; i++)
		free(v[i]);
	free(v);
	return -1;
}
