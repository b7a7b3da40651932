/*
 * validate.c — record validation and normalisation against a compiled
 * schema, with the semantics of fastest-validator 1.19.1 under s3db.js's
 * defaults (spec §5.4): strings trimmed, numbers and booleans converted
 * from text, defaults applied, `json` values stringified, dates
 * normalised to ISO-8601 with milliseconds.
 *
 * Design.  schema_validate walks the attributes definition (not the
 * flattened attrs) so that nested objects are validated recursively; the
 * parsed rule of each path comes from the compiled schema.  It builds a
 * new output object and never modifies the input: fields in input order,
 * then the defaults of missing fields in definition order (fastest-
 * validator mutates the input in place, which gives the same order).
 *
 * Deliberate differences from s3db.js (we refuse rather than store
 * something surprising):
 *   - undeclared fields are refused at the top level and inside nested
 *     objects (s3db.js accepts and stores them), except for a resource
 *     without attributes, which takes any object as is;
 *   - `id` and top-level keys starting with '_' or '$' that are not
 *     declared attributes are not fields: they are left out of the output
 *     (the record layer handles them); a declared `id` attribute (plugin
 *     resources) is left to the record layer too;
 *   - a number rule refuses blank strings and booleans (JavaScript's
 *     Number() would make them 0 and 1);
 *   - `array|items:number|integer:true` refuses fractional items (s3db.js
 *     would floor them silently when encoding);
 *   - `date` accepts ISO text and epoch milliseconds (s3db.js 21.6.2 can
 *     not be given a date at all, §7.1).
 * Every error is collected; the message names each offending field.
 */
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "schema.h"
#include "util.h"
#include "codec.h"

#define MAX_KEPT_ERRORS 100
#define MAX_JS_TIME 8.64e15

typedef struct vctx {
	const schema *s;
	strv errors;       /* "field 'x': why", first MAX_KEPT_ERRORS */
	size_t nerrors;    /* all of them */
	int oom;
} vctx;

static void verr(vctx *v, const char *path, const char *fmt, ...) S3DB_PRINTF(3, 4);

/* Records "field '<path>': <message>". */
static void verr(vctx *v, const char *path, const char *fmt, ...)
{
	v->nerrors++;
	if (v->errors.count >= MAX_KEPT_ERRORS)
		return;
	char *why = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	char *msg = why ? s3db_asprintf("field '%s': %s", path, why) : NULL;
	free(why);
	if (!msg || strv_push_owned(&v->errors, msg))
		v->oom = 1;
}

/* ---- small helpers ---------------------------------------------------------- */

static int is_object(json_object *o)
{
	return o && json_object_is_type(o, json_type_object);
}

static int is_number(json_object *o)
{
	return o && (json_object_is_type(o, json_type_int) || json_object_is_type(o, json_type_double));
}

static json_object *rget(json_object *rule, const char *key)
{
	json_object *v = NULL;
	if (!rule || !json_object_object_get_ex(rule, key, &v))
		return NULL;
	return v;
}

/* JavaScript truthiness of rule[key] ("optional", "trim", "integer"...). */
static int rflag(json_object *rule, const char *key)
{
	json_object *v = rget(rule, key);
	switch (json_object_get_type(v)) {
	case json_type_null: return 0;
	case json_type_boolean: return json_object_get_boolean(v);
	case json_type_int: return json_object_get_int64(v) != 0;
	case json_type_double: return json_object_get_double(v) != 0;
	case json_type_string: return json_object_get_string_len(v) > 0;
	default: return 1;
	}
}

/* rule[key] === false */
static int rfalse(json_object *rule, const char *key)
{
	json_object *v = rget(rule, key);
	return v && json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v);
}

/* A numeric rule parameter (min:2); 0 when absent or not a number. */
static int rnum(json_object *rule, const char *key, double *out)
{
	json_object *v = rget(rule, key);
	if (is_number(v)) {
		*out = json_object_get_double(v);
		return 1;
	}
	if (v && json_object_is_type(v, json_type_string)) {
		double d = codec_js_parse_number(json_object_get_string(v));
		if (d == d) {
			*out = d;
			return 1;
		}
	}
	return 0;
}

static const char *num_text(double d, char buf[32])
{
	codec_js_number(d, buf);
	return buf;
}

/* A deep copy of src (NULL, i.e. JSON null, copies to NULL); 0 on success. */
static int copy_json(json_object *src, json_object **dst, json_c_shallow_copy_fn *fn)
{
	*dst = NULL;
	if (!src)
		return 0;
	return json_object_deep_copy(src, dst, fn);
}

/* A short description of a value for messages: JSON text of scalars (long
 * strings cut), "an array", "an object".  malloc'd. */
static char *describe(json_object *val)
{
	if (json_object_is_type(val, json_type_array))
		return s3db_strdup("an array");
	if (json_object_is_type(val, json_type_object))
		return s3db_strdup("an object");
	char *t = s3db_json_stringify(val, 0);
	if (t && strlen(t) > 40) {
		size_t cut = 36;
		while (cut > 1 && ((unsigned char)t[cut] & 0xC0) == 0x80)
			cut--;
		memcpy(t + cut, "...\"", 5);
	}
	return t;
}

/* JavaScript's String(value) for scalars.  malloc'd. */
static char *js_string(json_object *val)
{
	if (json_object_is_type(val, json_type_string))
		return s3db_strdup(json_object_get_string(val));
	return s3db_json_stringify(val, 0);
}

/* ---- strings ---------------------------------------------------------------- */

/* Code point at s (UTF-8), its length in *len. */
static unsigned utf8_at(const unsigned char *s, size_t *len)
{
	unsigned c = s[0];
	int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : 3;
	unsigned cp = extra == 0 ? c : extra == 1 ? c & 0x1F : extra == 2 ? c & 0x0F : c & 0x07;
	size_t i = 1;
	for (; i <= (size_t)extra && (s[i] & 0xC0) == 0x80; i++)
		cp = (cp << 6) | (s[i] & 0x3F);
	*len = i;
	return cp;
}

/* JavaScript's WhiteSpace and LineTerminator code points (String.trim, \s). */
static int js_space(unsigned cp)
{
	return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
	       cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static int has_js_space(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n;
		if (js_space(utf8_at(p, &n)))
			return 1;
		p += n;
	}
	return 0;
}

/* String.prototype.trim, in place. */
static void js_trim(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n;
	while (*p && js_space(utf8_at(p, &n)))
		p += n;
	size_t len = strlen((char *)p);
	memmove(s, p, len + 1);
	while (len) {
		size_t start = len - 1;
		while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80)
			start--;
		if (!js_space(utf8_at((unsigned char *)s + start, &n)))
			break;
		len = start;
		s[len] = '\0';
	}
}

static int all_chars(const char *s, const char *set, int allow_empty)
{
	if (!*s)
		return allow_empty;
	return s[strspn(s, set)] == '\0';
}

/* /^-?[0-9]\d*(\.\d+)?$/ */
static int is_numeric_text(const char *s)
{
	if (*s == '-')
		s++;
	size_t n = strspn(s, "0123456789");
	if (!n)
		return 0;
	s += n;
	if (*s == '.') {
		s++;
		n = strspn(s, "0123456789");
		if (!n)
			return 0;
		s += n;
	}
	return *s == '\0';
}

/* Rewrites the JavaScript regular-expression forms that POSIX ERE lacks:
 * \d \D (also inside brackets), (?: groups, \/.  malloc'd. */
static char *js_regex_to_ere(const char *re)
{
	sbuf b;
	sbuf_init(&b);
	int in_bracket = 0;
	for (const char *p = re; *p; p++) {
		if (p[0] == '\\' && p[1]) {
			char c = p[1];
			if (c == 'd')
				sbuf_puts(&b, in_bracket ? "0-9" : "[0-9]");
			else if (c == 'D' && !in_bracket)
				sbuf_puts(&b, "[^0-9]");
			else if (c == '/')
				sbuf_putc(&b, '/');
			else {
				sbuf_putc(&b, '\\');
				sbuf_putc(&b, c);
			}
			p++;
			continue;
		}
		if (!in_bracket && p[0] == '(' && p[1] == '?' && p[2] == ':') {
			sbuf_putc(&b, '(');
			p += 2;
			continue;
		}
		if (!in_bracket && *p == '[') {
			in_bracket = 1;
			sbuf_putc(&b, '[');
			if (p[1] == '^')
				sbuf_putc(&b, *++p);
			if (p[1] == ']')
				sbuf_putc(&b, *++p);
			continue;
		}
		if (in_bracket && *p == ']')
			in_bracket = 0;
		sbuf_putc(&b, *p);
	}
	return sbuf_steal(&b);
}

/* 1 match, 0 no match, -1 the pattern does not compile. */
static int regex_test(const char *pattern, const char *flags, const char *s)
{
	char *ere = js_regex_to_ere(pattern);
	if (!ere)
		return -1;
	regex_t re;
	int cflags = REG_EXTENDED | REG_NOSUB;
	if (flags && strchr(flags, 'i'))
		cflags |= REG_ICASE;
	if (flags && strchr(flags, 'm'))
		cflags |= REG_NEWLINE;
	int rc = regcomp(&re, ere, cflags);
	free(ere);
	if (rc)
		return -1;
	rc = regexec(&re, s, 0, NULL, 0);
	regfree(&re);
	return rc == 0;
}

/* Strict equality (===) of two JSON scalars. */
static int scalar_equal(json_object *a, json_object *b)
{
	if (!a || !b)
		return !a && !b;
	if (is_number(a) && is_number(b)) {
		if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int))
			return json_object_get_int64(a) == json_object_get_int64(b);
		return json_object_get_double(a) == json_object_get_double(b);
	}
	if (json_object_get_type(a) != json_object_get_type(b))
		return 0;
	switch (json_object_get_type(a)) {
	case json_type_boolean:
		return json_object_get_boolean(a) == json_object_get_boolean(b);
	case json_type_string:
		return json_object_get_string_len(a) == json_object_get_string_len(b) &&
		       !memcmp(json_object_get_string(a), json_object_get_string(b),
		               (size_t)json_object_get_string_len(a));
	default:
		return a == b; /* objects/arrays: identity, as === */
	}
}

/* 1 when val === one of the items of the array list. */
static int in_list(json_object *list, json_object *val)
{
	size_t n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++)
		if (scalar_equal(json_object_array_get_idx(list, i), val))
			return 1;
	return 0;
}

/* "a, b, c" — the allowed values of an enum, for messages.  malloc'd. */
static char *list_text(json_object *list)
{
	sbuf b;
	sbuf_init(&b);
	size_t n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(list, i);
		char *t = js_string(it);
		if (i)
			sbuf_puts(&b, ", ");
		if (t)
			sbuf_puts(&b, t);
		free(t);
	}
	return sbuf_steal(&b);
}

static void verr_enum(vctx *v, const char *path, json_object *list, json_object *val)
{
	char *allowed = list_text(list), *got = describe(val);
	verr(v, path, "must be one of: %s (got %s)", allowed ? allowed : "?", got ? got : "?");
	free(allowed);
	free(got);
}

/* ---- one value -------------------------------------------------------------- */

static int check_field(vctx *v, const char *path, json_object *rule, int present,
                       json_object *val, json_object **out, int *omit);

static int check_string(vctx *v, const char *path, json_object *rule, json_object *val,
                        json_object **out)
{
	char *s;
	if (!json_object_is_type(val, json_type_string)) {
		if (!rflag(rule, "convert") || json_object_is_type(val, json_type_array) ||
		    json_object_is_type(val, json_type_object)) {
			char *got = describe(val);
			verr(v, path, "must be a string (got %s)", got ? got : "?");
			free(got);
			return -1;
		}
		s = js_string(val);
	} else {
		if (strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val)) {
			verr(v, path, "must not contain NUL characters");
			return -1;
		}
		s = s3db_strdup(json_object_get_string(val));
	}
	if (!s) {
		v->oom = 1;
		return -1;
	}
	if (!rfalse(rule, "trim"))   /* s3db.js: trim: true by default */
		js_trim(s);
	if (rflag(rule, "lowercase") || rflag(rule, "localeLowercase"))
		for (char *p = s; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	if (rflag(rule, "uppercase") || rflag(rule, "localeUppercase"))
		for (char *p = s; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
	size_t errs = v->nerrors;
	double len = (double)s3db_utf16_len(s), lim;
	char n1[32], n2[32];
	if (rfalse(rule, "empty") && len == 0)
		verr(v, path, "must not be empty");
	if (rnum(rule, "min", &lim) && len < lim)
		verr(v, path, "must be at least %s characters long (got %s)", num_text(lim, n1),
		     num_text(len, n2));
	if (rnum(rule, "max", &lim) && len > lim)
		verr(v, path, "must be at most %s characters long (got %s)", num_text(lim, n1),
		     num_text(len, n2));
	if (rnum(rule, "length", &lim) && len != lim)
		verr(v, path, "must be exactly %s characters long (got %s)", num_text(lim, n1),
		     num_text(len, n2));
	json_object *pat = rget(rule, "pattern");
	if (pat && !json_object_is_type(pat, json_type_null)) {
		char *pt = js_string(pat);
		int m = pt ? regex_test(pt, s3db_json_get_string(rule, "patternFlags"), s) : -1;
		if (m < 0)
			verr(v, path, "has a pattern that cannot be used (/%s/)", pt ? pt : "?");
		else if (!m)
			verr(v, path, "must match the pattern /%s/", pt);
		free(pt);
	}
	const char *contains = s3db_json_get_string(rule, "contains");
	if (contains && !strstr(s, contains))
		verr(v, path, "must contain \"%s\"", contains);
	json_object *en = rget(rule, "enum");
	if (en && json_object_is_type(en, json_type_array)) {
		json_object *tmp = json_object_new_string(s);
		if (tmp && !in_list(en, tmp))
			verr_enum(v, path, en, tmp);
		json_object_put(tmp);
	}
	if (rflag(rule, "numeric") && !is_numeric_text(s))
		verr(v, path, "must be a numeric string");
	if (rflag(rule, "alpha") &&
	    !all_chars(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 0))
		verr(v, path, "must contain only letters");
	if (rflag(rule, "alphanum") &&
	    !all_chars(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 0))
		verr(v, path, "must contain only letters and digits");
	if (rflag(rule, "alphadash") &&
	    !all_chars(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", 0))
		verr(v, path, "must contain only letters, digits, '_' and '-'");
	if (rflag(rule, "hex") && (!all_chars(s, "0123456789abcdefABCDEF", 0) || strlen(s) % 2))
		verr(v, path, "must be a hexadecimal string");
	if (rflag(rule, "singleLine") && strpbrk(s, "\r\n"))
		verr(v, path, "must be a single line");
	if (v->nerrors != errs) {
		free(s);
		return -1;
	}
	*out = json_object_new_string(s);
	free(s);
	if (!*out)
		v->oom = 1;
	return *out ? 0 : -1;
}

/* number, with convert (s3db.js's default) unless convert:false. */
static int check_number(vctx *v, const char *path, json_object *rule, json_object *val,
                        json_object **out)
{
	double d = NAN;
	if (is_number(val)) {
		d = json_object_get_double(val);
	} else if (json_object_is_type(val, json_type_string) && !rfalse(rule, "convert")) {
		/* Number(text); blank text (Number gives 0) is refused */
		const char *t = json_object_get_string(val);
		const unsigned char *p = (const unsigned char *)t;
		size_t n;
		while (*p && js_space(utf8_at(p, &n)))
			p += n;
		if (*p)
			d = codec_js_parse_number(t);
	}
	if (!(d == d) || isinf(d)) {
		char *got = describe(val);
		verr(v, path, "must be a number (got %s)", got ? got : "?");
		free(got);
		return -1;
	}
	size_t errs = v->nerrors;
	double lim;
	char n1[32], n2[32];
	if (rnum(rule, "min", &lim) && d < lim)
		verr(v, path, "must be at least %s (got %s)", num_text(lim, n1), num_text(d, n2));
	if (rnum(rule, "max", &lim) && d > lim)
		verr(v, path, "must be at most %s (got %s)", num_text(lim, n1), num_text(d, n2));
	if (rnum(rule, "equal", &lim) && d != lim)
		verr(v, path, "must be equal to %s (got %s)", num_text(lim, n1), num_text(d, n2));
	if (rnum(rule, "notEqual", &lim) && d == lim)
		verr(v, path, "must not be equal to %s", num_text(lim, n1));
	if (rflag(rule, "integer") && fmod(d, 1) != 0)
		verr(v, path, "must be an integer (got %s)", num_text(d, n2));
	else if (rflag(rule, "integer") && fabs(d) > 9007199254740991.0)
		verr(v, path, "must be a safe integer (at most 2^53-1 in magnitude) to be stored "
		     "exactly (got %s)", num_text(d, n2));
	if (rflag(rule, "positive") && d <= 0)
		verr(v, path, "must be a positive number (got %s)", num_text(d, n2));
	if (rflag(rule, "negative") && d >= 0)
		verr(v, path, "must be a negative number (got %s)", num_text(d, n2));
	if (v->nerrors != errs)
		return -1;
	*out = s3db_json_new_number(d);
	if (!*out)
		v->oom = 1;
	return *out ? 0 : -1;
}

static int check_boolean(vctx *v, const char *path, json_object *rule, json_object *val,
                         json_object **out)
{
	int b = -1;
	if (json_object_is_type(val, json_type_boolean)) {
		b = json_object_get_boolean(val);
	} else if (!rfalse(rule, "convert")) {
		const char *t = json_object_is_type(val, json_type_string) ? json_object_get_string(val)
		                                                           : NULL;
		double d = is_number(val) ? json_object_get_double(val) : NAN;
		if (d == 1 || (t && (!strcmp(t, "true") || !strcmp(t, "1") || !strcmp(t, "on"))))
			b = 1;
		else if (d == 0 || (t && (!strcmp(t, "false") || !strcmp(t, "0") || !strcmp(t, "off"))))
			b = 0;
	}
	if (b < 0) {
		char *got = describe(val);
		verr(v, path, "must be a boolean (got %s)", got ? got : "?");
		free(got);
		return -1;
	}
	*out = json_object_new_boolean(b);
	return 0;
}

/* fastest-validator's "quick" e-mail test /^\S+@\S+\.\S+$/. */
static int email_ok(const char *s)
{
	if (has_js_space(s))
		return 0;
	const char *at = strchr(s + (*s ? 1 : 0), '@');
	const char *dot = strrchr(s, '.');
	return at && dot && dot >= at + 2 && dot[1] != '\0';
}

static int check_pattern_type(vctx *v, const char *path, json_object *val, json_object **out,
                              int (*ok)(const char *), const char *what)
{
	if (!json_object_is_type(val, json_type_string)) {
		char *got = describe(val);
		verr(v, path, "must be a string (got %s)", got ? got : "?");
		free(got);
		return -1;
	}
	if (!ok(json_object_get_string(val))) {
		char *got = describe(val);
		verr(v, path, "must be %s (got %s)", what, got ? got : "?");
		free(got);
		return -1;
	}
	*out = json_object_get(val);
	return 0;
}

/* fastest-validator's url test /^https?:\/\/\S+/. */
static int url_ok(const char *s)
{
	const char *rest = !strncmp(s, "http://", 7) ? s + 7 : !strncmp(s, "https://", 8) ? s + 8 : NULL;
	size_t n;
	return rest && *rest && !js_space(utf8_at((const unsigned char *)rest, &n));
}

static int uuid_ok(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	if (strlen(s) != sizeof shape - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
			return 0;
	}
	return 1;
}

/* Epoch ms of an ISO-8601 text or a number (JavaScript Date semantics);
 * -1 when not a date of years 0000–9999. */
static int to_epoch_ms(json_object *val, int64_t *ms)
{
	if (json_object_is_type(val, json_type_string)) {
		if (s3db_parse_iso8601(json_object_get_string(val), ms))
			return -1;
	} else if (is_number(val)) {
		double d = json_object_get_double(val);
		if (!isfinite(d) || fabs(d) > MAX_JS_TIME)
			return -1;
		*ms = (int64_t)trunc(d);
	} else {
		return -1;
	}
	/* 0000-01-01 .. 9999-12-31T23:59:59.999Z: four-digit years only */
	if (*ms < -62167219200000LL || *ms > 253402300799999LL)
		return -1;
	return 0;
}

static int check_date(vctx *v, const char *path, const char *type, json_object *val,
                      json_object **out)
{
	int64_t ms;
	char buf[40];
	int dateonly = !strcmp(type, "dateonly");
	if (to_epoch_ms(val, &ms)) {
		char *got = describe(val);
		verr(v, path, "must be a %s (got %s)",
		     dateonly ? "date YYYY-MM-DD" : "date: ISO-8601 text or epoch milliseconds",
		     got ? got : "?");
		free(got);
		return -1;
	}
	s3db_iso8601(ms, buf, sizeof buf);
	if (dateonly)
		buf[10] = '\0';
	*out = json_object_new_string(buf);
	return 0;
}

static int check_enum(vctx *v, const char *path, json_object *rule, json_object *val,
                      json_object **out)
{
	json_object *values = rget(rule, "values");
	if (values && json_object_is_type(values, json_type_array) && !in_list(values, val)) {
		verr_enum(v, path, values, val);
		return -1;
	}
	*out = json_object_get(val);
	return 0;
}

/* A rule given by value (items:"string", props:{a:"number"}) as a new
 * parsed rule; NULL with an error recorded when malformed. */
static json_object *sub_rule(vctx *v, const char *path, json_object *def)
{
	s3db_error e;
	s3db_error_clear(&e);
	json_object *r = schema_parse_rule(def, path, &e);
	if (!r)
		verr(v, path, "has an unusable rule (%s)", e.message);
	return r;
}

static int check_array(vctx *v, const char *path, json_object *rule, json_object *val,
                       json_object **out)
{
	if (!json_object_is_type(val, json_type_array)) {
		char *got = describe(val);
		verr(v, path, "must be an array (got %s)", got ? got : "?");
		free(got);
		return -1;
	}
	size_t n = json_object_array_length(val), errs = v->nerrors;
	double lim, len = (double)n;
	char n1[32], n2[32];
	if (rfalse(rule, "empty") && n == 0)
		verr(v, path, "must not be empty");
	if (rnum(rule, "min", &lim) && len < lim)
		verr(v, path, "must have at least %s items (got %s)", num_text(lim, n1), num_text(len, n2));
	if (rnum(rule, "max", &lim) && len > lim)
		verr(v, path, "must have at most %s items (got %s)", num_text(lim, n1), num_text(len, n2));
	if (rnum(rule, "length", &lim) && len != lim)
		verr(v, path, "must have exactly %s items (got %s)", num_text(lim, n1), num_text(len, n2));
	json_object *items = rget(rule, "items"), *irule = NULL;
	if (items && !json_object_is_type(items, json_type_null)) {
		irule = sub_rule(v, path, items);
		if (!irule)
			return -1;
	}
	/* integer:true on a number array is what s3db.js encodes in base62 */
	int integer_items = irule && rflag(rule, "integer") &&
	                    !strcmp(s3db_json_get_string(irule, "type"), "number");
	json_object *en = rget(rule, "enum");
	json_object *res = json_object_new_array();
	if (!res) {
		json_object_put(irule);
		v->oom = 1;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(val, i), *norm = NULL;
		char *ipath = s3db_asprintf("%s[%zu]", path, i);
		if (!ipath) {
			v->oom = 1;
			break;
		}
		int omit = 0, bad = 0;
		if (irule) {
			bad = check_field(v, ipath, irule, 1, item, &norm, &omit) != 0;
			if (!bad && integer_items && is_number(norm) &&
			    (fmod(json_object_get_double(norm), 1) != 0 ||
			     fabs(json_object_get_double(norm)) > 9007199254740991.0)) {
				verr(v, ipath, "must be an integer (got %s)",
				     num_text(json_object_get_double(norm), n1));
				bad = 1;
			}
		} else if (copy_json(item, &norm, NULL) != 0) {
			v->oom = 1;
			bad = 1;
		}
		if (!bad && en && json_object_is_type(en, json_type_array) && !in_list(en, norm))
			verr_enum(v, ipath, en, norm);
		free(ipath);
		json_object_array_add(res, norm);
	}
	json_object_put(irule);
	if (rflag(rule, "unique")) {
		size_t m = json_object_array_length(res);
		for (size_t i = 0; i < m; i++) {
			for (size_t j = i + 1; j < m; j++) {
				if (json_object_equal(json_object_array_get_idx(res, i),
				                      json_object_array_get_idx(res, j))) {
					verr(v, path, "must not contain duplicate items (items %zu and %zu)", i, j);
					i = j = m;
				}
			}
		}
	}
	if (v->nerrors != errs) {
		json_object_put(res);
		return -1;
	}
	*out = res;
	return 0;
}

/* type "object" (a rule, not a nested attribute object): any JSON object;
 * with props/properties, the declared children are validated and the
 * others removed (strict:"remove", s3db.js's default), refused
 * (strict:true) or kept (strict:false). */
static int check_object(vctx *v, const char *path, json_object *rule, json_object *val,
                        json_object **out)
{
	if (!is_object(val)) {
		char *got = describe(val);
		verr(v, path, "must be an object (got %s)", got ? got : "?");
		free(got);
		return -1;
	}
	size_t errs = v->nerrors;
	double lim, n = (double)json_object_object_length(val);
	char n1[32], n2[32];
	if (rnum(rule, "minProps", &lim) && n < lim)
		verr(v, path, "must have at least %s properties (got %s)", num_text(lim, n1),
		     num_text(n, n2));
	if (rnum(rule, "maxProps", &lim) && n > lim)
		verr(v, path, "must have at most %s properties (got %s)", num_text(lim, n1),
		     num_text(n, n2));
	json_object *props = rget(rule, "props");
	if (!is_object(props))
		props = rget(rule, "properties");
	json_object *res = NULL;
	if (!is_object(props)) {
		if (copy_json(val, &res, NULL) != 0) {
			v->oom = 1;
			return -1;
		}
	} else {
		json_object *strict = rget(rule, "strict");
		int keep = strict && json_object_is_type(strict, json_type_boolean) &&
		           !json_object_get_boolean(strict);
		int refuse = strict && json_object_is_type(strict, json_type_boolean) &&
		             json_object_get_boolean(strict);
		res = json_object_new_object();
		if (!res) {
			v->oom = 1;
			return -1;
		}
		json_object_object_foreach(val, key, child) {
			char *cpath = s3db_asprintf("%s.%s", path, key);
			json_object *def = NULL, *norm = NULL;
			if (!cpath) {
				v->oom = 1;
				break;
			}
			if (json_object_object_get_ex(props, key, &def)) {
				json_object *crule = sub_rule(v, cpath, def);
				int omit = 0;
				if (crule && check_field(v, cpath, crule, 1, child, &norm, &omit) == 0 && !omit)
					json_object_object_add(res, key, norm);
				json_object_put(crule);
			} else if (refuse) {
				verr(v, cpath, "is not declared in the schema");
			} else if (keep) {
				if (copy_json(child, &norm, NULL) == 0)
					json_object_object_add(res, key, norm);
				else
					v->oom = 1;
			}
			free(cpath);
		}
		json_object_object_foreach(props, pkey, pdef) {
			if (json_object_object_get_ex(val, pkey, NULL))
				continue;
			char *cpath = s3db_asprintf("%s.%s", path, pkey);
			json_object *crule = cpath ? sub_rule(v, cpath, pdef) : NULL, *norm = NULL;
			int omit = 0;
			if (crule && check_field(v, cpath, crule, 0, NULL, &norm, &omit) == 0 && !omit)
				json_object_object_add(res, pkey, norm);
			json_object_put(crule);
			free(cpath);
		}
	}
	if (v->nerrors != errs) {
		json_object_put(res);
		return -1;
	}
	*out = res;
	return 0;
}

/* Validates a present, non-null value; *out receives the normalised value
 * (a new reference).  0 on success, -1 with the error recorded. */
static int check_value(vctx *v, const char *path, json_object *rule, json_object *val,
                       json_object **out)
{
	const char *type = s3db_json_get_string(rule, "type");
	if (!type)
		type = "";
	if (!strcmp(type, "string"))
		return check_string(v, path, rule, val, out);
	if (!strcmp(type, "number"))
		return check_number(v, path, rule, val, out);
	if (!strcmp(type, "boolean") || !strcmp(type, "bool"))
		return check_boolean(v, path, rule, val, out);
	if (!strcmp(type, "email"))
		return check_pattern_type(v, path, val, out, email_ok, "an e-mail address");
	if (!strcmp(type, "url"))
		return check_pattern_type(v, path, val, out, url_ok, "an http(s) URL");
	if (!strcmp(type, "uuid"))
		return check_pattern_type(v, path, val, out, uuid_ok, "a UUID");
	if (!strcmp(type, "enum"))
		return check_enum(v, path, rule, val, out);
	if (!strcmp(type, "array"))
		return check_array(v, path, rule, val, out);
	if (!strcmp(type, "object"))
		return check_object(v, path, rule, val, out);
	if (!strcmp(type, "date") || !strcmp(type, "datetime") || !strcmp(type, "dateonly"))
		return check_date(v, path, type, val, out);
	if (!strcmp(type, "json") || !strcmp(type, "secretAny")) {
		/* strings as they are, anything else as its JSON text */
		if (json_object_is_type(val, json_type_string)) {
			*out = json_object_get(val);
			return 0;
		}
		char *t = s3db_json_stringify(val, 0);
		*out = t ? json_object_new_string(t) : NULL;
		free(t);
		if (!*out)
			v->oom = 1;
		return *out ? 0 : -1;
	}
	if (!strcmp(type, "secret")) {
		/* String(value) of a scalar; not trimmed (a passphrase's spaces
		 * are part of it) */
		if (json_object_is_type(val, json_type_array) || json_object_is_type(val, json_type_object)) {
			verr(v, path, "must be a string (got %s)",
			     json_object_is_type(val, json_type_array) ? "an array" : "an object");
			return -1;
		}
		char *t = js_string(val);
		*out = t ? json_object_new_string(t) : NULL;
		free(t);
		if (!*out)
			v->oom = 1;
		return *out ? 0 : -1;
	}
	if (!strcmp(type, "secretNumber"))
		return check_number(v, path, rule, val, out);
	if (!strcmp(type, "any")) {
		if (copy_json(val, out, NULL) != 0) {
			v->oom = 1;
			return -1;
		}
		return 0;
	}
	if (!strcmp(type, "forbidden")) {
		verr(v, path, "must not be given");
		return -1;
	}
	verr(v, path, "has the type '%s', which s3dbfs cannot validate", type);
	return -1;
}

/* A default as the rule's type wants it: numbers/booleans given to a
 * string-like rule become their text ("string|default:42" → "42"). */
static json_object *typed_default(json_object *rule, json_object *def)
{
	const char *type = s3db_json_get_string(rule, "type");
	static const char *const stringy[] = { "string", "email", "url", "uuid", "secret" };
	if (type && (is_number(def) || json_object_is_type(def, json_type_boolean))) {
		for (size_t i = 0; i < sizeof stringy / sizeof stringy[0]; i++) {
			if (!strcmp(type, stringy[i])) {
				char *t = js_string(def);
				json_object *s = t ? json_object_new_string(t) : NULL;
				free(t);
				return s;
			}
		}
	}
	/* a copy: def belongs to a rule other threads read, and the value
	 * may end up inside the record being built */
	json_object *copy = NULL;
	if (json_object_deep_copy(def, &copy, NULL) != 0)
		return NULL;
	return copy;
}

/* One field: required/optional/default handling, then check_value.
 * *omit is set when the field stays absent; otherwise *out is its value
 * (NULL = JSON null). */
static int check_field(vctx *v, const char *path, json_object *rule, int present,
                       json_object *val, json_object **out, int *omit)
{
	*out = NULL;
	*omit = 0;
	if (!present || !val) {
		json_object *def = rget(rule, "default");
		if (def && !json_object_is_type(def, json_type_null)) {
			json_object *typed = typed_default(rule, def);
			if (!typed) {
				v->oom = 1;
				return -1;
			}
			int rc = check_value(v, path, rule, typed, out);
			json_object_put(typed);
			return rc;
		}
		if (rflag(rule, "optional")) {
			*omit = !present;
			return 0;
		}
		verr(v, path, "is required");
		return -1;
	}
	return check_value(v, path, rule, val, out);
}

/* ---- records ---------------------------------------------------------------- */

static void check_fields(vctx *v, const char *prefix, json_object *defs, json_object *in,
                         json_object *out);

/* One attribute `key` (definition def) of the object being built in out. */
static void check_attribute(vctx *v, const char *path, const char *key, json_object *def,
                            int present, json_object *val, json_object *out)
{
	/* a->rule belongs to the compiled schema, which many threads read at
	 * once: it is borrowed, never json_object_get/put here (json-c's
	 * reference counts are not atomic).  Only a rule parsed for this call
	 * (owned) is put. */
	const attr *a = schema_attr_by_path(v->s, path);
	json_object *owned = a ? NULL : sub_rule(v, path, def);
	json_object *rule = a ? a->rule : owned;
	if (!rule)
		return;
	if (is_object(def) && schema_def_is_nested(def)) {
		if (!present || !val) {
			if (!rflag(rule, "optional"))
				verr(v, path, "is required");
			else if (present)
				json_object_object_add(out, key, NULL);
		} else if (!is_object(val)) {
			char *got = describe(val);
			verr(v, path, "must be an object (got %s)", got ? got : "?");
			free(got);
		} else {
			json_object *child = json_object_new_object();
			if (!child)
				v->oom = 1;
			else {
				check_fields(v, path, def, val, child);
				json_object_object_add(out, key, child);
			}
		}
		json_object_put(owned);
		return;
	}
	json_object *norm = NULL;
	int omit = 0;
	if (check_field(v, path, rule, present, val, &norm, &omit) == 0 && !omit)
		json_object_object_add(out, key, norm);
	json_object_put(owned);
}

/* Validates the members of in against the definitions defs into out.
 * prefix is NULL at the top level, where `id` and undeclared '_'/'$' keys
 * are skipped. */
static void check_fields(vctx *v, const char *prefix, json_object *defs, json_object *in,
                         json_object *out)
{
	int top = prefix == NULL;
	json_object_object_foreach(in, key, val) {
		json_object *def = NULL;
		int declared = strncmp(key, "$$", 2) != 0 && json_object_object_get_ex(defs, key, &def);
		if (top && (!strcmp(key, "id") || (!declared && (key[0] == '_' || key[0] == '$'))))
			continue;
		char *path = prefix ? s3db_asprintf("%s.%s", prefix, key) : s3db_strdup(key);
		if (!path) {
			v->oom = 1;
			return;
		}
		if (!declared)
			verr(v, path, "is not an attribute of resource '%s'", v->s->resource);
		else
			check_attribute(v, path, key, def, 1, val, out);
		free(path);
	}
	json_object_object_foreach(defs, dkey, dval) {
		if (!strncmp(dkey, "$$", 2) || (top && !strcmp(dkey, "id")) ||
		    json_object_object_get_ex(in, dkey, NULL))
			continue;
		char *path = prefix ? s3db_asprintf("%s.%s", prefix, dkey) : s3db_strdup(dkey);
		if (!path) {
			v->oom = 1;
			return;
		}
		check_attribute(v, path, dkey, dval, 0, NULL, out);
		free(path);
	}
}

/* Joins the errors into one message that fits err->message, ending with
 * "; ... and N more" when they do not all fit. */
static s3db_code report(vctx *v, s3db_error *err)
{
	char msg[sizeof ((s3db_error *)0)->message];
	size_t cap = sizeof msg, len = 0;
	msg[0] = '\0';
	for (size_t i = 0; i < v->errors.count; i++) {
		const char *piece = v->errors.items[i];
		const char *sep = i ? "; " : "";
		size_t left_after = v->nerrors - i - 1;
		size_t need = strlen(sep) + strlen(piece) + (left_after ? 32 : 0);
		if (len + need < cap) {
			len += (size_t)snprintf(msg + len, cap - len, "%s%s", sep, piece);
			continue;
		}
		if (i == 0) {
			/* one long error: cut it at a character boundary */
			len = cap - 40;
			while (len > 0 && ((unsigned char)piece[len] & 0xC0) == 0x80)
				len--;
			memcpy(msg, piece, len);
			len += (size_t)snprintf(msg + len, cap - len, "...");
			if (left_after)
				snprintf(msg + len, cap - len, "; ... and %zu more", left_after);
			return s3db_error_set(err, S3DB_ERR_VALIDATION, "%s", msg);
		}
		snprintf(msg + len, cap - len, "; ... and %zu more", v->nerrors - i);
		return s3db_error_set(err, S3DB_ERR_VALIDATION, "%s", msg);
	}
	if (v->nerrors > v->errors.count)
		snprintf(msg + len, cap - len, "; ... and %zu more", v->nerrors - v->errors.count);
	return s3db_error_set(err, S3DB_ERR_VALIDATION, "%s", msg);
}

s3db_code schema_validate(const schema *s, json_object *in, json_object **out, s3db_error *err)
{
	*out = NULL;
	if (!s)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "no schema to validate against");
	if (!is_object(in))
		return s3db_error_set(err, S3DB_ERR_VALIDATION, "%s: a record must be a JSON object",
		                      s->resource);
	json_object *res = json_object_new_object();
	if (!res)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	vctx v = { .s = s, .nerrors = 0, .oom = 0 };
	strv_init(&v.errors);
	if (!is_object(s->attributes) || json_object_object_length(s->attributes) == 0) {
		/* free-form resource: any object, as is */
		json_object_object_foreach(in, key, val) {
			json_object *copy = NULL;
			if (!strcmp(key, "id") || key[0] == '_' || key[0] == '$')
				continue;
			if (copy_json(val, &copy, NULL) != 0) {
				v.oom = 1;
				break;
			}
			json_object_object_add(res, key, copy);
		}
	} else {
		check_fields(&v, NULL, s->attributes, in, res);
	}
	s3db_code rc = S3DB_OK;
	if (v.oom)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory validating a %s record",
		                    s->resource);
	else if (v.nerrors)
		rc = report(&v, err);
	strv_free(&v.errors);
	if (rc != S3DB_OK) {
		json_object_put(res);
		return rc;
	}
	*out = res;
	return S3DB_OK;
}
