/*
 * schema.c — resource definitions: rule parsing, the attribute key list,
 * the definition hash, compiled schemas and the 21.x short-key registry.
 *
 * Design.  A definition is kept as JSON exactly as s3db.json stores it;
 * everything here derives from it deterministically:
 *
 *   - The key list (spec §3.2) walks the attributes object as JavaScript
 *     would (integer-like keys first, then insertion order), so that the
 *     registry indices we allocate are the ones s3db.js would allocate.
 *   - The definition hash (§2.2.3) is SHA-256 over a canonical JSON text
 *     with keys sorted by UTF-16 code unit (json-stable-stringify).
 *   - A compiled schema is a flat array of attrs (one per attribute path,
 *     nested-object nodes included) carrying the parsed rule, the storage
 *     kind recognised by the substring order of §3.4 and the short key:
 *     base36 of the registry index for FORMAT_21, base62 of the key-list
 *     position for FORMAT_V7 (B.4).
 *   - schema_registry_update applies the allocation/burn algorithm of
 *     §2.2.4 to resources[R].schemaRegistry in place.
 *
 * Invariants: a compiled schema is never modified after schema_compile
 * returns (readers share it without locks); every attr of a schema has a
 * non-NULL path and rule; short_key is non-NULL exactly when in_key_list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "schema.h"
#include "util.h"
#include "codec.h"

/* ---- JavaScript property order ------------------------------------------- */

typedef struct member {
	const char *key;
	json_object *val;
} member;

/* 1 when key is a canonical array index ("0", "7", "42"; < 2^32-1), the
 * keys JavaScript enumerates first and in ascending numeric order. */
static int js_index_key(const char *key, unsigned long long *out)
{
	if (!key[0] || (key[0] == '0' && key[1]) || strlen(key) > 10)
		return 0;
	unsigned long long v = 0;
	for (const char *p = key; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v >= 4294967295ULL)
		return 0;
	*out = v;
	return 1;
}

/* The members of object o in JavaScript's Object.keys order.  Returns a
 * malloc'd array (caller frees; entries borrow from o) and its length in
 * *n; NULL with *n == 0 for an empty object; NULL with *n == 1 when out of
 * memory. */
static member *js_members(json_object *o, size_t *n)
{
	size_t count = (size_t)json_object_object_length(o), k = 0;
	*n = 0;
	if (!count)
		return NULL;
	member *m = malloc(count * sizeof *m);
	if (!m) {
		*n = 1;
		return NULL;
	}
	/* integer-like keys first, ascending (insertion sort: lists are short) */
	json_object_object_foreach(o, ikey, ival) {
		unsigned long long v, w;
		if (!js_index_key(ikey, &v))
			continue;
		size_t j = k++;
		while (j > 0 && js_index_key(m[j - 1].key, &w) && w > v) {
			m[j] = m[j - 1];
			j--;
		}
		m[j].key = ikey;
		m[j].val = ival;
	}
	json_object_object_foreach(o, skey, sval) {
		unsigned long long v;
		if (js_index_key(skey, &v))
			continue;
		m[k].key = skey;
		m[k].val = sval;
		k++;
	}
	*n = k;
	return m;
}

static int is_plain_object(json_object *o)
{
	return o && json_object_is_type(o, json_type_object);
}

static char *join_path(const char *prefix, const char *key)
{
	return prefix ? s3db_asprintf("%s.%s", prefix, key) : s3db_strdup(key);
}

/* ---- definition shapes ---------------------------------------------------- */

/* A definition object is a nested object ({"$$type": "object|optional",
 * child: ...}) unless it carries no "$$type" and a "type" string without
 * '|' (the object form {type: "string", enum: [...]}), which is how
 * s3db.js tells the two apart. */
int schema_def_is_nested(json_object *def)
{
	json_object *t;
	if (!is_plain_object(def))
		return 0;
	if (json_object_object_get_ex(def, "$$type", NULL))
		return 1;
	if (json_object_object_get_ex(def, "type", &t) && json_object_is_type(t, json_type_string) &&
	    !strchr(json_object_get_string(t), '|'))
		return 0;
	return 1;
}

/* ---- rules ---------------------------------------------------------------- */

static int is_js_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A shorthand value coerced as fastest-validator does: "true"/"false" →
 * boolean, text that Number() accepts → number, anything else → string.
 * (Number("") is 0, so "default:" gives 0, as in fastest-validator.) */
static json_object *shorthand_value(const char *text)
{
	if (!strcmp(text, "true") || !strcmp(text, "false"))
		return json_object_new_boolean(text[0] == 't');
	double d = codec_js_parse_number(text);
	if (d == d) {
		json_object *num = s3db_json_new_number(d);
		if (num)
			return num;
		/* Infinity: JSON cannot hold it; keep the text */
	}
	return json_object_new_string(text);
}

/* Copies s[0..n) without the white space at both ends. */
static char *trimmed_copy(const char *s, size_t n)
{
	while (n && is_js_space((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && is_js_space((unsigned char)s[n - 1]))
		n--;
	return s3db_strndup(s, n);
}

/* fastest-validator's parseShortHand: "type|rule|rule:value|no-rule". */
static json_object *parse_shorthand(const char *text, const char *path, s3db_error *err)
{
	json_object *rule = json_object_new_object();
	if (!rule) {
		s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		return NULL;
	}
	const char *p = text;
	int first = 1;
	for (;;) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		char *tok = trimmed_copy(p, n);
		if (!tok)
			goto oom;
		if (first) {
			size_t tl = strlen(tok);
			if (!tl) {
				free(tok);
				json_object_put(rule);
				s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				               "attribute '%s': rule \"%s\" has no type", path, text);
				return NULL;
			}
			if (tl > 2 && !strcmp(tok + tl - 2, "[]")) {
				tok[tl - 2] = '\0';
				json_object_object_add(rule, "type", json_object_new_string("array"));
				json_object_object_add(rule, "optional", json_object_new_boolean(0));
				json_object_object_add(rule, "items", json_object_new_string(tok));
			} else {
				json_object_object_add(rule, "type", json_object_new_string(tok));
				json_object_object_add(rule, "optional", json_object_new_boolean(0));
			}
			first = 0;
		} else if (tok[0]) {
			char *colon = strchr(tok, ':');
			if (colon) {
				*colon = '\0';
				char *key = trimmed_copy(tok, strlen(tok));
				char *val = trimmed_copy(colon + 1, strlen(colon + 1));
				json_object *jv = val ? shorthand_value(val) : NULL;
				if (!key || !val || !jv) {
					free(key);
					free(val);
					json_object_put(jv);
					free(tok);
					goto oom;
				}
				json_object_object_add(rule, key, jv);
				free(key);
				free(val);
			} else if (!strncmp(tok, "no-", 3)) {
				json_object_object_add(rule, tok + 3, json_object_new_boolean(0));
			} else {
				json_object_object_add(rule, tok, json_object_new_boolean(1));
			}
		}
		free(tok);
		if (!bar)
			break;
		p = bar + 1;
	}
	return rule;
oom:
	json_object_put(rule);
	s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	return NULL;
}

/* JavaScript truthiness of a JSON value (for "optional: 1" and the like). */
static int json_truthy(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return 0;
	case json_type_boolean: return json_object_get_boolean(v);
	case json_type_int: return json_object_get_int64(v) != 0;
	case json_type_double: {
		double d = json_object_get_double(v);
		return d == d && d != 0;
	}
	case json_type_string: return json_object_get_string_len(v) > 0;
	default: return 1;
	}
}

/* Parses a rule (see schema.h).  Nested-object definitions give
 * {type:"object", optional:<not $$type~required>, ...$$type rules}; the
 * children are not part of the rule.  Object-form definitions are copied
 * with `optional` normalised to a boolean. */
json_object *schema_parse_rule(json_object *def, const char *path, s3db_error *err)
{
	if (!path)
		path = "?";
	if (def && json_object_is_type(def, json_type_string))
		return parse_shorthand(json_object_get_string(def), path, err);
	if (!is_plain_object(def)) {
		s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		               "attribute '%s': a definition must be a rule string or an object", path);
		return NULL;
	}
	if (schema_def_is_nested(def)) {
		json_object *t = NULL;
		const char *type_text = "object";
		if (json_object_object_get_ex(def, "$$type", &t)) {
			if (!json_object_is_type(t, json_type_string)) {
				s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				               "attribute '%s': $$type must be a string", path);
				return NULL;
			}
			type_text = json_object_get_string(t);
		}
		json_object *rule = parse_shorthand(type_text, path, err);
		if (!rule)
			return NULL;
		if (strcmp(s3db_json_get_string(rule, "type"), "object") != 0) {
			json_object_put(rule);
			s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			               "attribute '%s': $$type must be an object type (got \"%s\")", path,
			               type_text);
			return NULL;
		}
		/* allNestedObjectsOptional: optional unless explicitly required */
		json_object_object_add(rule, "optional",
		                       json_object_new_boolean(strstr(type_text, "required") == NULL));
		return rule;
	}
	json_object *rule = NULL;
	if (json_object_deep_copy(def, &rule, NULL) != 0 || !rule) {
		s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		return NULL;
	}
	json_object *opt = NULL;
	int optional = json_object_object_get_ex(rule, "optional", &opt) && json_truthy(opt);
	json_object_object_add(rule, "optional", json_object_new_boolean(optional));
	return rule;
}

/* ---- key list (§3.2) ------------------------------------------------------ */

static int strv_has(const strv *v, const char *s)
{
	for (size_t i = 0; i < v->count; i++)
		if (!strcmp(v->items[i], s))
			return 1;
	return 0;
}

/* Pass 1: flatten depth-first (arrays and empty objects are leaves),
 * dropping every path that contains "$$".  0 ok, -1 out of memory. */
static int key_list_leaves(json_object *o, const char *prefix, strv *out)
{
	size_t n;
	member *m = js_members(o, &n);
	if (!m && n)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		char *path = join_path(prefix, m[i].key);
		if (!path) {
			rc = -1;
			break;
		}
		if (is_plain_object(m[i].val) && json_object_object_length(m[i].val) > 0)
			rc = key_list_leaves(m[i].val, path, out);
		else if (!strstr(path, "$$") && !strv_has(out, path))
			rc = strv_push(out, path);
		free(path);
	}
	free(m);
	return rc;
}

/* Pass 2: every key whose definition is an object, recursing only into
 * objects whose $$type is exactly "object". */
static int key_list_objects(json_object *o, const char *prefix, strv *out)
{
	size_t n;
	member *m = js_members(o, &n);
	if (!m && n)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!strncmp(m[i].key, "$$", 2) || !is_plain_object(m[i].val))
			continue;
		char *path = join_path(prefix, m[i].key);
		if (!path) {
			rc = -1;
			break;
		}
		if (!strv_has(out, path))
			rc = strv_push(out, path);
		const char *t = s3db_json_get_string(m[i].val, "$$type");
		if (!rc && t && !strcmp(t, "object"))
			rc = key_list_objects(m[i].val, path, out);
		free(path);
	}
	free(m);
	return rc;
}

char **schema_key_list(json_object *attributes)
{
	strv v;
	strv_init(&v);
	if (is_plain_object(attributes) &&
	    (key_list_leaves(attributes, NULL, &v) || key_list_objects(attributes, NULL, &v))) {
		strv_free(&v);
		return NULL;
	}
	return strv_steal(&v);
}

/* ---- canonical JSON and the definition hash (§2.2.3) ----------------------- */

/* Next UTF-16 code unit of a UTF-8 string; *pending holds the low
 * surrogate of a code point above U+FFFF.  0 at the end. */
static unsigned next_utf16_unit(const unsigned char **s, unsigned *pending)
{
	if (*pending) {
		unsigned u = *pending;
		*pending = 0;
		return u;
	}
	const unsigned char *p = *s;
	if (!*p)
		return 0;
	unsigned cp;
	int extra;
	if (*p < 0x80) { cp = *p; extra = 0; }
	else if ((*p & 0xE0) == 0xC0) { cp = *p & 0x1F; extra = 1; }
	else if ((*p & 0xF0) == 0xE0) { cp = *p & 0x0F; extra = 2; }
	else { cp = *p & 0x07; extra = 3; }
	p++;
	for (int i = 0; i < extra && (*p & 0xC0) == 0x80; i++, p++)
		cp = (cp << 6) | (*p & 0x3F);
	*s = p;
	if (cp >= 0x10000) {
		cp -= 0x10000;
		*pending = 0xDC00 + (cp & 0x3FF);
		return 0xD800 + (cp >> 10);
	}
	return cp;
}

/* Compares two UTF-8 strings by UTF-16 code units, as Array.prototype.sort
 * does with its default comparator. */
static int utf16_cmp(const char *a, const char *b)
{
	const unsigned char *pa = (const unsigned char *)a, *pb = (const unsigned char *)b;
	unsigned qa = 0, qb = 0;
	for (;;) {
		unsigned ua = next_utf16_unit(&pa, &qa), ub = next_utf16_unit(&pb, &qb);
		if (ua != ub)
			return ua < ub ? -1 : 1;
		if (!ua)
			return 0;
	}
}

static int member_cmp(const void *x, const void *y)
{
	return utf16_cmp(((const member *)x)->key, ((const member *)y)->key);
}

/* Writes o canonically; at this level (only) the keys skip1/skip2 are
 * left out (NULL: none). */
static void canon_write(sbuf *b, json_object *o, const char *skip1, const char *skip2)
{
	if (is_plain_object(o)) {
		size_t n = (size_t)json_object_object_length(o), k = 0;
		member *m = n ? malloc(n * sizeof *m) : NULL;
		if (n && !m) {
			b->oom = 1;
			return;
		}
		json_object_object_foreach(o, key, val) {
			if ((skip1 && !strcmp(key, skip1)) || (skip2 && !strcmp(key, skip2)))
				continue;
			m[k].key = key;
			m[k].val = val;
			k++;
		}
		if (k > 1)
			qsort(m, k, sizeof *m, member_cmp);
		sbuf_putc(b, '{');
		for (size_t i = 0; i < k; i++) {
			if (i)
				sbuf_putc(b, ',');
			json_object *ks = json_object_new_string(m[i].key);
			char *kt = ks ? s3db_json_stringify(ks, 0) : NULL;
			if (!kt)
				b->oom = 1;
			else
				sbuf_puts(b, kt);
			free(kt);
			json_object_put(ks);
			sbuf_putc(b, ':');
			canon_write(b, m[i].val, NULL, NULL);
		}
		sbuf_putc(b, '}');
		free(m);
	} else if (o && json_object_is_type(o, json_type_array)) {
		size_t n = json_object_array_length(o);
		sbuf_putc(b, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				sbuf_putc(b, ',');
			canon_write(b, json_object_array_get_idx(o, i), NULL, NULL);
		}
		sbuf_putc(b, ']');
	} else {
		char *t = s3db_json_stringify(o, 0);
		if (!t)
			b->oom = 1;
		else
			sbuf_puts(b, t);
		free(t);
	}
}

char *schema_canonical_json(json_object *o)
{
	sbuf b;
	sbuf_init(&b);
	canon_write(&b, o, NULL, NULL);
	return sbuf_steal(&b);
}

char *schema_definition_hash(json_object *attributes, const char *behavior,
                             json_object *partitions, int timestamps)
{
	sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, "{\"attributes\":");
	if (attributes)
		canon_write(&b, attributes, timestamps ? "createdAt" : NULL,
		            timestamps ? "updatedAt" : NULL);
	else
		sbuf_puts(&b, "{}");
	sbuf_puts(&b, ",\"behavior\":");
	json_object *bs = json_object_new_string(behavior ? behavior : "user-managed");
	canon_write(&b, bs, NULL, NULL);
	json_object_put(bs);
	sbuf_puts(&b, ",\"partitions\":");
	if (partitions)
		canon_write(&b, partitions, NULL, NULL);
	else
		sbuf_puts(&b, "{}");
	sbuf_putc(&b, '}');
	if (b.oom) {
		sbuf_free(&b);
		return NULL;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok = EVP_Digest(b.data, b.len, md, &mdlen, EVP_sha256(), NULL);
	sbuf_free(&b);
	if (!ok)
		return NULL;
	char *out = malloc(7 + 2 * mdlen + 1);
	if (!out)
		return NULL;
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	return out;
}

/* ---- kinds (§3.4) --------------------------------------------------------- */

/* 1 when the '|'-separated rule text has the token tok ("integer"). */
static int has_token(const char *def, const char *tok)
{
	size_t n = strlen(tok);
	for (const char *p = def; (p = strstr(p, tok)) != NULL; p += n) {
		if ((p == def || p[-1] == '|') && (p[n] == '\0' || p[n] == '|'))
			return 1;
	}
	return 0;
}

static int def_is_integer(const char *def)
{
	return strstr(def, "integer:true") != NULL || has_token(def, "integer");
}

/* The value of "name:value" in a rule text, copied into buf ("" if none). */
static void token_value(const char *def, const char *name, char *buf, size_t size)
{
	size_t n = strlen(name);
	buf[0] = '\0';
	for (const char *p = def; (p = strstr(p, name)) != NULL; p += n) {
		if ((p == def || p[-1] == '|') && p[n] == ':') {
			const char *v = p + n + 1;
			size_t len = strcspn(v, "|");
			if (len >= size)
				len = size - 1;
			memcpy(buf, v, len);
			buf[len] = '\0';
			return;
		}
	}
}

/* Storage kind of a string definition, by the substring tests of §3.4 in
 * their order, then by the rule's type for the types the mapper handles
 * itself.  Types whose encoding we do not implement give KIND_RAW. */
static attr_kind kind_of_definition(const char *def, const char *type, attr_kind *item_kind)
{
	*item_kind = KIND_ANY;
	if (strstr(def, "embedding"))
		return KIND_RAW;
	if (strstr(def, "array")) {
		char items[64], len[32];
		token_value(def, "items", items, sizeof items);
		token_value(def, "length", len, sizeof len);
		if (!strcmp(items, "string")) {
			*item_kind = KIND_STRING;
		} else if (!strcmp(items, "number")) {
			if (def_is_integer(def))
				*item_kind = KIND_INTEGER;
			else if (len[0] && codec_js_parse_number(len) >= 256)
				return KIND_RAW; /* fixed-point batch form (§3.5) */
			else
				*item_kind = KIND_NUMBER;
		}
		return KIND_ARRAY;
	}
	if (strstr(def, "secret"))
		return KIND_SECRET;
	static const char *const raw[] = {
		"password", "ip4", "ip6", "buffer", "bits", "money", "crypto", "decimal", "text",
		"geo:lat", "geo:lon", "geo:point",
	};
	for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
		if (strstr(def, raw[i]))
			return KIND_RAW;
	if (strstr(def, "number"))
		return def_is_integer(def) ? KIND_INTEGER : KIND_NUMBER;
	if (strstr(def, "bool"))
		return KIND_BOOLEAN;
	if (strstr(def, "json"))
		return KIND_JSON;
	if (strstr(def, "object"))
		return KIND_OBJECT;
	if (!strcmp(type, "datetime"))
		return KIND_DATETIME;
	if (!strcmp(type, "dateonly"))
		return KIND_DATEONLY;
	if (!strcmp(type, "date"))
		return KIND_DATE;
	if (!strcmp(type, "any"))
		return KIND_ANY;
	static const char *const extended[] = {
		"timeonly", "mac", "cidr", "semver", "phone", "color", "duration", "ean",
	};
	for (size_t i = 0; i < sizeof extended / sizeof extended[0]; i++)
		if (!strcmp(type, extended[i]))
			return KIND_RAW;
	return KIND_STRING;
}

/* ---- compile -------------------------------------------------------------- */

typedef struct attr_list {
	attr *items;
	size_t count, cap;
} attr_list;

static void attr_clear(attr *a)
{
	free(a->path);
	free(a->short_key);
	json_object_put(a->rule);
}

static attr *attr_list_add(attr_list *l)
{
	attr *p = s3db_array_room(l->items, &l->cap, l->count, sizeof *p, 16);
	if (!p)
		return NULL;
	l->items = p;
	attr *a = &l->items[l->count++];
	memset(a, 0, sizeof *a);
	return a;
}

/* Adds an attr for every attribute path under o, declaration order. */
static s3db_code compile_attrs(json_object *o, const char *prefix, attr_list *l, s3db_error *err)
{
	size_t n;
	member *m = js_members(o, &n);
	if (!m && n)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s3db_code rc = S3DB_OK;
	for (size_t i = 0; i < n && rc == S3DB_OK; i++) {
		if (!strncmp(m[i].key, "$$", 2))
			continue;
		char *path = join_path(prefix, m[i].key);
		json_object *rule = path ? schema_parse_rule(m[i].val, path, err) : NULL;
		attr *a = rule ? attr_list_add(l) : NULL;
		if (!a) {
			if (!path || rule)
				rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
			else
				rc = err ? err->code : S3DB_ERR_INVALID_ARG;
			free(path);
			json_object_put(rule);
			break;
		}
		a->path = path;
		a->rule = rule;
		json_object *opt = json_object_object_get(rule, "optional");
		a->optional = opt && json_object_get_boolean(opt);
		a->item_kind = KIND_ANY;
		if (json_object_is_type(m[i].val, json_type_string)) {
			a->kind = kind_of_definition(json_object_get_string(m[i].val),
			                             s3db_json_get_string(rule, "type"), &a->item_kind);
		} else if (schema_def_is_nested(m[i].val)) {
			a->kind = KIND_NESTED;
			rc = compile_attrs(m[i].val, path, l, err);
		} else {
			a->kind = KIND_RAW; /* object form: stored without conversion */
		}
	}
	free(m);
	return rc;
}

/* Index of path in the NULL-terminated key list, -1 when absent. */
static long key_index(char **keys, const char *path)
{
	for (long i = 0; keys[i]; i++)
		if (!strcmp(keys[i], path))
			return i;
	return -1;
}

/* Registry index of path: its mapping value when that is a non-negative
 * integer; else the index of its latest burned entry (an attribute of an
 * older version, §4.1); -1 when neither. */
static long long registry_index(json_object *reg, const char *path)
{
	json_object *mapping = json_object_object_get(reg, "mapping"), *v;
	if (is_plain_object(mapping) && json_object_object_get_ex(mapping, path, &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
		return json_object_get_int64(v);
	json_object *burned = json_object_object_get(reg, "burned");
	if (!burned || !json_object_is_type(burned, json_type_array))
		return -1;
	for (size_t i = json_object_array_length(burned); i-- > 0;) {
		json_object *b = json_object_array_get_idx(burned, i);
		const char *name = is_plain_object(b) ? s3db_json_get_string(b, "attribute") : NULL;
		json_object *bi = name && !strcmp(name, path) ? json_object_object_get(b, "index") : NULL;
		if (bi && json_object_is_type(bi, json_type_int) && json_object_get_int64(bi) >= 0)
			return json_object_get_int64(bi);
	}
	return -1;
}

s3db_code schema_compile(const char *resource, json_object *entry, const char *version,
                         schema_format format, schema **out, s3db_error *err)
{
	*out = NULL;
	if (!resource)
		resource = "";
	json_object *versions = NULL, *ventry = NULL, *attributes = NULL;
	if (!is_plain_object(entry) || !json_object_object_get_ex(entry, "versions", &versions) ||
	    !is_plain_object(versions))
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "s3db.json: resource '%s' has no versions", resource);
	if (!version)
		version = s3db_json_get_string(entry, "currentVersion");
	if (!version)
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "s3db.json: resource '%s' has no currentVersion", resource);
	if (!json_object_object_get_ex(versions, version, &ventry) || !is_plain_object(ventry))
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "s3db.json: resource '%s' has no version '%s'", resource, version);
	if (!json_object_object_get_ex(ventry, "attributes", &attributes) ||
	    !is_plain_object(attributes))
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "s3db.json: resource '%s' version '%s' has no attributes object",
		                      resource, version);

	schema *s = calloc(1, sizeof *s);
	if (!s)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s->format = format;
	s->resource = s3db_strdup(resource);
	s->version = s3db_strdup(version);
	const char *behavior = s3db_json_get_string(ventry, "behavior");
	s->behavior = s3db_strdup(behavior ? behavior : "user-managed");
	json_object *v = json_object_object_get(ventry, "timestamps");
	s->timestamps = v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
	v = json_object_object_get(ventry, "idSize");
	s->id_size = 22;
	if (v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))) {
		double d = json_object_get_double(v);
		if (d >= 1 && d <= 256 && d == (int)d)
			s->id_size = (int)d;
	}
	s->attributes = json_object_get(attributes);
	v = json_object_object_get(ventry, "partitions");
	if (!is_plain_object(v))
		v = json_object_object_get(entry, "partitions");
	s->partitions = is_plain_object(v) ? json_object_get(v) : json_object_new_object();
	if (!s->resource || !s->version || !s->behavior || !s->partitions) {
		schema_free(s);
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}

	attr_list l = { NULL, 0, 0 };
	s3db_code rc = compile_attrs(attributes, NULL, &l, err);
	s->attrs = l.items;
	s->nattrs = l.count;
	if (rc != S3DB_OK) {
		schema_free(s);
		s3db_error_prefix(err, "resource '%s'", resource);
		return rc;
	}

	char **keys = schema_key_list(attributes);
	s->hash = schema_definition_hash(attributes, s->behavior, s->partitions, s->timestamps);
	if (!keys || !s->hash) {
		s3db_free_strv(keys);
		schema_free(s);
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	json_object *reg = json_object_object_get(entry, "schemaRegistry");
	json_object *mapping = is_plain_object(reg) ? json_object_object_get(reg, "mapping") : NULL;
	int positional = format == FORMAT_V7 || !is_plain_object(mapping);
	for (size_t i = 0; i < s->nattrs; i++) {
		attr *a = &s->attrs[i];
		long long idx;
		if (format == FORMAT_V7 || positional)
			/* v7: base62 of the position (B.4).  A 21.x catalogue
			 * without registry: 21.6.2 builds one from the
			 * positions (§2.2.4), so base36 of the position. */
			idx = key_index(keys, a->path);
		else
			idx = registry_index(reg, a->path);
		if (idx < 0)
			continue;
		a->short_key = format == FORMAT_V7 ? codec_base62_encode((double)idx)
		                                   : codec_base36_encode((uint64_t)idx);
		if (!a->short_key) {
			s3db_free_strv(keys);
			schema_free(s);
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		}
		a->in_key_list = 1;
	}
	s3db_free_strv(keys);
	*out = s;
	return S3DB_OK;
}

void schema_free(schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nattrs; i++)
		attr_clear(&s->attrs[i]);
	free(s->attrs);
	free(s->resource);
	free(s->version);
	free(s->behavior);
	free(s->hash);
	json_object_put(s->attributes);
	json_object_put(s->partitions);
	free(s);
}

const attr *schema_attr_by_path(const schema *s, const char *path)
{
	if (!s || !path)
		return NULL;
	for (size_t i = 0; i < s->nattrs; i++)
		if (!strcmp(s->attrs[i].path, path))
			return &s->attrs[i];
	return NULL;
}

const attr *schema_attr_by_key(const schema *s, const char *short_key)
{
	if (!s || !short_key)
		return NULL;
	for (size_t i = 0; i < s->nattrs; i++)
		if (s->attrs[i].short_key && !strcmp(s->attrs[i].short_key, short_key))
			return &s->attrs[i];
	return NULL;
}

/* ---- registry (§2.2.4) ---------------------------------------------------- */

/* A registry built as 21.6.2 builds one for a v7 catalogue: index =
 * position in the key list of `attributes`. */
static json_object *registry_from_positions(json_object *attributes)
{
	char **keys = schema_key_list(attributes);
	json_object *reg = json_object_new_object(), *mapping = json_object_new_object();
	json_object *burned = json_object_new_array();
	if (!keys || !reg || !mapping || !burned) {
		s3db_free_strv(keys);
		json_object_put(reg);
		json_object_put(mapping);
		json_object_put(burned);
		return NULL;
	}
	int64_t n = 0;
	for (; keys[n]; n++)
		json_object_object_add(mapping, keys[n], json_object_new_int64(n));
	s3db_free_strv(keys);
	json_object_object_add(reg, "nextIndex", json_object_new_int64(n));
	json_object_object_add(reg, "mapping", mapping);
	json_object_object_add(reg, "burned", burned);
	return reg;
}

s3db_code schema_registry_update(json_object *entry, json_object *attributes, s3db_error *err)
{
	if (!is_plain_object(entry) || !is_plain_object(attributes))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "registry update needs a resource entry and an attributes object");
	json_object *reg = json_object_object_get(entry, "schemaRegistry");
	if (!is_plain_object(reg)) {
		/* v7 catalogue: start from the positions of the current version */
		json_object *base = attributes;
		const char *cur = s3db_json_get_string(entry, "currentVersion");
		json_object *versions = json_object_object_get(entry, "versions");
		json_object *ventry = cur && is_plain_object(versions) ? json_object_object_get(versions, cur)
		                                                       : NULL;
		json_object *old = is_plain_object(ventry) ? json_object_object_get(ventry, "attributes")
		                                           : NULL;
		if (is_plain_object(old))
			base = old;
		reg = registry_from_positions(base);
		if (!reg)
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		json_object_object_add(entry, "schemaRegistry", reg);
	}
	json_object *mapping = json_object_object_get(reg, "mapping");
	if (!mapping) {
		mapping = json_object_new_object();
		json_object_object_add(reg, "mapping", mapping);
	}
	json_object *burned = json_object_object_get(reg, "burned");
	if (!burned) {
		burned = json_object_new_array();
		json_object_object_add(reg, "burned", burned);
	}
	if (!is_plain_object(mapping) || !burned || !json_object_is_type(burned, json_type_array))
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "schemaRegistry: mapping must be an object and burned an array");

	/* nextIndex > every index in use or burned */
	int64_t next = 0, max = -1;
	json_object *nv = json_object_object_get(reg, "nextIndex");
	if (nv && (json_object_is_type(nv, json_type_int) || json_object_is_type(nv, json_type_double)))
		next = json_object_get_int64(nv);
	json_object_object_foreach(mapping, mkey, mval) {
		if (!json_object_is_type(mval, json_type_int) || json_object_get_int64(mval) < 0)
			return s3db_error_set(err, S3DB_ERR_CORRUPT,
			                      "schemaRegistry: index of '%s' is not a non-negative integer",
			                      mkey);
		if (json_object_get_int64(mval) > max)
			max = json_object_get_int64(mval);
	}
	size_t nburned = json_object_array_length(burned);
	for (size_t i = 0; i < nburned; i++) {
		json_object *b = json_object_array_get_idx(burned, i);
		json_object *bi = is_plain_object(b) ? json_object_object_get(b, "index") : NULL;
		if (bi && json_object_is_type(bi, json_type_int) && json_object_get_int64(bi) > max)
			max = json_object_get_int64(bi);
	}
	if (next <= max)
		next = max + 1;

	char **keys = schema_key_list(attributes);
	if (!keys)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	for (size_t i = 0; keys[i]; i++)
		if (!json_object_object_get_ex(mapping, keys[i], NULL))
			json_object_object_add(mapping, keys[i], json_object_new_int64(next++));

	/* burn what disappeared (collect first: no deletion while iterating) */
	strv gone;
	strv_init(&gone);
	json_object_object_foreach(mapping, gkey, gval) {
		(void)gval;
		if (key_index(keys, gkey) < 0 && strv_push(&gone, gkey)) {
			strv_free(&gone);
			s3db_free_strv(keys);
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		}
	}
	s3db_free_strv(keys);
	char now[32];
	s3db_iso8601(s3db_now_ms(), now, sizeof now);
	for (size_t i = 0; i < gone.count; i++) {
		int64_t idx = json_object_get_int64(json_object_object_get(mapping, gone.items[i]));
		int already = 0;
		for (size_t j = 0; j < json_object_array_length(burned) && !already; j++) {
			json_object *b = json_object_array_get_idx(burned, j);
			json_object *bi = is_plain_object(b) ? json_object_object_get(b, "index") : NULL;
			already = bi && json_object_is_type(bi, json_type_int) &&
			          json_object_get_int64(bi) == idx;
		}
		if (!already) {
			json_object *b = json_object_new_object();
			if (!b) {
				strv_free(&gone);
				return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
			}
			json_object_object_add(b, "index", json_object_new_int64(idx));
			json_object_object_add(b, "attribute", json_object_new_string(gone.items[i]));
			json_object_object_add(b, "burnedAt", json_object_new_string(now));
			json_object_object_add(b, "reason", json_object_new_string("removed"));
			json_object_array_add(burned, b);
		}
		json_object_object_del(mapping, gone.items[i]);
	}
	strv_free(&gone);
	json_object_object_add(reg, "nextIndex", json_object_new_int64(next));
	return S3DB_OK;
}
