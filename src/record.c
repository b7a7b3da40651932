/*
 * record.c — mapping a record to an object and back (spec §3, §4, B.5–B.7).
 *
 * Encoding is a pipeline over a list of `field`s:
 *   flatten   the validated record into dotted paths (nested declared
 *             objects are split, arrays and other values are leaves);
 *   map       each leaf to its "mapped value" by attribute kind (§3.4):
 *             base62 integers, decimal numbers, 1/0 booleans, |-joined
 *             arrays, JSON text, base62 datetimes, encrypted secrets;
 *   place     fields into metadata or body as the behavior says (§3.13),
 *             measuring both s3db.js's estimate (to take the same branch
 *             s3db.js would) and the real encoded header size (so AWS
 *             never refuses what we send);
 *   encode    header values with metadataEncode (§3.10).
 * Field order follows JavaScript property order (integer-like keys first,
 * ascending, then insertion order), which is what makes bodies identical
 * to s3db.js's bytes.
 *
 * Decoding collects, per attribute, either a mapped string (from a header
 * or a short-key body entry) or a native JSON value (from a user-managed
 * body written by an update), then turns each into its JSON value by
 * kind and rebuilds nested objects in schema order.  Two v7 hazards are
 * settled on the way (B.4, B.5.2, B.7):
 *   - S3 lower-cases header keys, so a v7 key above index 35 ("A") lands
 *     on another attribute's key ("a").  Such a header is not guessed:
 *     both attributes are flagged, a body (user-managed, truncate-data,
 *     enforce-limits keep case-preserved keys or names) fills them when
 *     it can, and those still missing are listed under "$ambiguous".
 *   - 7.4.1+ wrote non-ASCII text as unprefixed base64 and we read it
 *     back with 7.4's heuristic, which also fires on ASCII text that
 *     happens to be such base64 ("asia").  It is applied only to kinds
 *     that can hold text, and a user-managed body, which has every field
 *     in clear, decides between the header as stored and its decoding.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "codec.h"
#include "record.h"
#include "secret.h"

/* ---- fields ------------------------------------------------------------- */

typedef struct field {
	char *path;          /* dotted attribute path or extra field name   */
	char *key;           /* header key: short key or sanitised name     */
	const attr *a;       /* NULL for extra fields                       */
	char *mapped;        /* mapped value; NULL when is_null             */
	int is_null;
	json_object *native; /* free-form: the JSON value itself (owned)    */
	size_t est;          /* s3db.js's size estimate of the value        */
	int to_body;
} field;

typedef struct field_list {
	field *items;
	size_t count, cap;
} field_list;

static void fields_free(field_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->items[i].path);
		free(l->items[i].key);
		free(l->items[i].mapped);
		json_object_put(l->items[i].native);
	}
	free(l->items);
	memset(l, 0, sizeof *l);
}

static field *fields_add(field_list *l)
{
	field *p = s3db_array_room(l->items, &l->cap, l->count, sizeof *p, 16);
	if (!p)
		return NULL;
	l->items = p;
	field *f = &l->items[l->count++];
	memset(f, 0, sizeof *f);
	return f;
}

/* JavaScript's "array index" keys come first in property order. */
static int is_integer_key(const char *k)
{
	if (!*k || (k[0] == '0' && k[1]))
		return 0;
	size_t n = 0;
	for (const char *p = k; *p; p++, n++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return n <= 9; /* well below 2^32 - 1 */
}

static int js_key_cmp(const char *a, const char *b)
{
	int ia = is_integer_key(a), ib = is_integer_key(b);
	if (ia && ib)
		return atol(a) < atol(b) ? -1 : atol(a) > atol(b);
	return ib - ia; /* integer keys first; others keep insertion order */
}

/* Stable insertion sort into JavaScript property order (lists are short). */
static void fields_js_order(field_list *l)
{
	for (size_t i = 1; i < l->count; i++) {
		field f = l->items[i];
		size_t j = i;
		while (j > 0 && js_key_cmp(l->items[j - 1].key, f.key) > 0) {
			l->items[j] = l->items[j - 1];
			j--;
		}
		l->items[j] = f;
	}
}

char *record_header_key(const char *name)
{
	char *k = strdup(name);
	if (!k)
		return NULL;
	for (char *p = k; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (isalnum(c) || c == '_' || c == '-')
			*p = (char)tolower(c);
		else
			*p = '_';
	}
	return k;
}

/* ---- mapping values (§3.4) ---------------------------------------------- */

static char *map_number_item(json_object *v, attr_kind kind)
{
	double d;
	if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
		d = json_object_get_double(v);
	else if (json_object_is_type(v, json_type_string))
		d = codec_js_parse_number(json_object_get_string(v));
	else
		return strdup("");
	if (isnan(d))
		return strdup("");
	return kind == KIND_INTEGER ? codec_base62_encode(d) : codec_decimal_encode(d);
}

/* String(v) as JavaScript would write it, for strings, numbers, booleans. */
static char *js_string_of(json_object *v)
{
	char num[32];
	switch (json_object_get_type(v)) {
	case json_type_string:
		return strdup(json_object_get_string(v));
	case json_type_int:
	case json_type_double:
		codec_js_number(json_object_get_double(v), num);
		return strdup(num);
	case json_type_boolean:
		return strdup(json_object_get_boolean(v) ? "true" : "false");
	case json_type_null:
		return strdup("null");
	default:
		return s3db_json_stringify(v, 0);
	}
}

static char *map_array(const attr *a, json_object *v)
{
	if (!json_object_is_type(v, json_type_array))
		return s3db_json_stringify(v, 0);
	size_t n = json_object_array_length(v);
	if (a->item_kind == KIND_STRING) {
		char **items = calloc(n + 1, sizeof *items);
		if (!items)
			return NULL;
		for (size_t i = 0; i < n; i++)
			items[i] = js_string_of(json_object_array_get_idx(v, i));
		char *out = codec_array_join((const char *const *)items, n);
		for (size_t i = 0; i < n; i++)
			free(items[i]);
		free(items);
		return out;
	}
	if (a->item_kind == KIND_NUMBER || a->item_kind == KIND_INTEGER) {
		sbuf b;
		sbuf_init(&b);
		for (size_t i = 0; i < n; i++) {
			char *item = map_number_item(json_object_array_get_idx(v, i), a->item_kind);
			if (i)
				sbuf_putc(&b, '|');
			if (item)
				sbuf_puts(&b, item);
			free(item);
		}
		return sbuf_steal(&b);
	}
	return s3db_json_stringify(v, 0);
}

static char *map_datetime(json_object *v)
{
	int64_t ms;
	if (json_object_is_type(v, json_type_int))
		return codec_datetime_encode(json_object_get_int64(v));
	if (json_object_is_type(v, json_type_string) &&
	    s3db_parse_iso8601(json_object_get_string(v), &ms) == 0)
		return codec_datetime_encode(ms);
	return js_string_of(v);
}

static char *map_dateonly(json_object *v)
{
	int64_t ms;
	if (json_object_is_type(v, json_type_string) &&
	    s3db_parse_iso8601(json_object_get_string(v), &ms) == 0)
		return codec_dateonly_encode(ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000));
	return js_string_of(v);
}

/* Maps one leaf value to its mapped string (§3.4).  Secrets are
 * encrypted here unless they already are envelopes. */
static s3db_code map_value(const attr *a, json_object *v, const char *passphrase,
                           char **out, s3db_error *err)
{
	*out = NULL;
	switch (a ? a->kind : KIND_ANY) {
	case KIND_NUMBER:
	case KIND_INTEGER:
		*out = map_number_item(v, a->kind);
		break;
	case KIND_BOOLEAN: {
		int t = 0;
		if (json_object_is_type(v, json_type_boolean))
			t = json_object_get_boolean(v);
		else if (json_object_is_type(v, json_type_int))
			t = json_object_get_int64(v) == 1;
		else if (json_object_is_type(v, json_type_string)) {
			const char *s = json_object_get_string(v);
			t = !strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "y");
		}
		*out = strdup(t ? "1" : "0");
		break;
	}
	case KIND_ARRAY:
		*out = map_array(a, v);
		break;
	case KIND_OBJECT:
	case KIND_NESTED:
		*out = s3db_json_stringify(v, 0);
		break;
	case KIND_JSON:
		*out = json_object_is_type(v, json_type_string) ? strdup(json_object_get_string(v))
		                                                : s3db_json_stringify(v, 0);
		break;
	case KIND_DATE: {
		int64_t ms;
		if (json_object_is_type(v, json_type_string) &&
		    s3db_parse_iso8601(json_object_get_string(v), &ms) == 0) {
			char iso[40];
			s3db_iso8601(ms, iso, sizeof iso);
			*out = s3db_asprintf("\"%s\"", iso);
		} else
			*out = s3db_json_stringify(v, 0);
		break;
	}
	case KIND_DATETIME:
		*out = map_datetime(v);
		break;
	case KIND_DATEONLY:
		*out = map_dateonly(v);
		break;
	case KIND_SECRET: {
		char *plain = js_string_of(v);
		if (!plain)
			break;
		if (secret_is_envelope(passphrase, plain)) {
			*out = plain;
			break;
		}
		s3db_code rc = secret_encrypt(passphrase, plain, NULL, out, err);
		free(plain);
		if (rc != S3DB_OK)
			return rc;
		break;
	}
	default:
		*out = js_string_of(v);
	}
	return *out ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

/* ---- flatten + map -------------------------------------------------------- */

typedef struct encode_ctx {
	const schema *s;
	const char *passphrase;
	field_list fields;
	int freeform;    /* no attributes: keep native values for the body */
	s3db_error *err;
} encode_ctx;

static s3db_code add_field(encode_ctx *c, const char *path, const attr *a, json_object *v)
{
	field *f = fields_add(&c->fields);
	if (!f)
		return s3db_error_set(c->err, S3DB_ERR_NOMEM, NULL);
	f->path = strdup(path);
	f->a = a;
	f->key = a && a->short_key ? strdup(a->short_key) : record_header_key(path);
	if (!f->path || !f->key)
		return s3db_error_set(c->err, S3DB_ERR_NOMEM, NULL);
	if (c->freeform && !a)
		f->native = json_object_get(v);
	if (v == NULL && (!a || a->kind != KIND_BOOLEAN)) {
		f->is_null = 1;
		return S3DB_OK;
	}
	s3db_code rc = map_value(a, v, c->passphrase, &f->mapped, c->err);
	if (rc != S3DB_OK) {
		s3db_error_prefix(c->err, "field '%s'", path);
		return rc;
	}
	f->est = strlen(f->mapped);
	return S3DB_OK;
}

/* Walks obj under `prefix`, splitting declared nested objects. */
static s3db_code flatten(encode_ctx *c, json_object *obj, const char *prefix)
{
	json_object_object_foreach(obj, k, v) {
		if (!prefix && (!strcmp(k, "id") || k[0] == '_' || k[0] == '$'))
			continue;
		char *path = prefix ? s3db_asprintf("%s.%s", prefix, k) : strdup(k);
		if (!path)
			return s3db_error_set(c->err, S3DB_ERR_NOMEM, NULL);
		const attr *a = schema_attr_by_path(c->s, path);
		s3db_code rc;
		if (a && a->kind == KIND_NESTED && json_object_is_type(v, json_type_object) &&
		    json_object_object_length(v) > 0)
			rc = flatten(c, v, path);
		else
			rc = add_field(c, path, a, v);
		free(path);
		if (rc != S3DB_OK)
			return rc;
	}
	return S3DB_OK;
}

/* ---- sizes ----------------------------------------------------------------- */

/* s3db.js's effectiveLimit (§3.12). */
static size_t effective_limit(const schema *s, const char *id)
{
	size_t used = 2 + strlen(s->version);
	if (s->timestamps)
		used += 2 * (9 + 24);
	if (id)
		used += 2 + strlen(id);
	return used >= RECORD_METADATA_LIMIT ? 0 : RECORD_METADATA_LIMIT - used;
}

/* Bytes a header takes once encoded: key + metadataEncode(value). */
static size_t header_size(const field *f)
{
	if (f->is_null)
		return strlen(f->key) + 4;
	char *enc = codec_metadata_encode(f->mapped, 1);
	size_t n = strlen(f->key) + (enc ? strlen(enc) : strlen(f->mapped) * 3);
	free(enc);
	return n;
}

static int set_header(store_meta *m, const char *key, const char *value, int literal)
{
	char *enc = codec_metadata_encode(value, literal);
	if (!enc)
		return -1;
	int rc = store_meta_set(m, key, enc);
	free(enc);
	return rc;
}

static int put_field_header(store_meta *m, const field *f)
{
	if (f->is_null)
		return store_meta_set(m, f->key, "null");
	return set_header(m, f->key, f->mapped, 1);
}

/* Writes the body: a JSON object of the fields marked for it (all fields
 * when `all`), mapped values under header keys, plus _v when with_v. */
static void write_body(const schema *s, field_list *l, int all, int with_v, sbuf *body)
{
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < l->count; i++) {
		field *f = &l->items[i];
		if (!all && !f->to_body)
			continue;
		json_object *v;
		if (f->native)
			v = json_object_get(f->native);
		else
			v = f->is_null ? NULL : json_object_new_string(f->mapped);
		json_object_object_add(o, f->key, v);
	}
	if (with_v)
		json_object_object_add(o, "_v", json_object_new_string(s->version));
	char *text = s3db_json_stringify(o, 0);
	json_object_put(o);
	if (text)
		sbuf_puts(body, text);
	else
		body->oom = 1;
	free(text);
}

static size_t meta_total(const store_meta *m)
{
	return store_meta_size(m);
}

/* ---- behaviors (§3.13) ----------------------------------------------------- */

static s3db_code place_all_in_metadata(const schema *s, field_list *l, record_encoded *out)
{
	for (size_t i = 0; i < l->count; i++)
		if (put_field_header(&out->meta, &l->items[i]))
			return S3DB_ERR_NOMEM;
	return store_meta_set(&out->meta, "_v", s->version) ? S3DB_ERR_NOMEM : S3DB_OK;
}

/* s3db.js's size(M) of the mapped object (§3.12): key bytes + value
 * bytes, keys as they are after the rename to short keys (unknown paths
 * keep their unsanitised name), plus _v. */
static size_t estimate_total(const schema *s, field_list *l)
{
	size_t t = 2 + strlen(s->version);
	for (size_t i = 0; i < l->count; i++) {
		const field *f = &l->items[i];
		t += strlen(f->a && f->a->short_key ? f->a->short_key : f->path) + f->est;
	}
	return t;
}

static s3db_code encode_user_managed(const schema *s, field_list *l, const char *id,
                                     record_encoded *out, s3db_error *err)
{
	if (estimate_total(s, l) <= effective_limit(s, id)) {
		if (place_all_in_metadata(s, l, out))
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		if (meta_total(&out->meta) <= RECORD_METADATA_LIMIT)
			return S3DB_OK;
		store_meta_free(&out->meta);
	}
	/* over the limit: s3db.js keeps only _v in metadata, the mapped object
	 * in the body */
	if (store_meta_set(&out->meta, "_v", s->version))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	write_body(s, l, 1, 1, &out->body);
	out->content_type = "application/json";
	return S3DB_OK;
}

static s3db_code encode_enforce_limits(const schema *s, field_list *l, const char *id,
                                       record_encoded *out, s3db_error *err)
{
	size_t est = estimate_total(s, l), lim = effective_limit(s, id);
	if (place_all_in_metadata(s, l, out))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	size_t real = meta_total(&out->meta);
	if (est > lim || real > RECORD_METADATA_LIMIT)
		return s3db_error_set(err, S3DB_ERR_METADATA_TOO_LARGE,
		                      "record takes %zu bytes of metadata; the limit is %d "
		                      "(behavior enforce-limits)", real > est ? real : est,
		                      RECORD_METADATA_LIMIT);
	return S3DB_OK;
}

/* Indices of the fields sorted by estimated size, ascending, stable. */
static size_t *order_by_size(field_list *l)
{
	size_t *idx = malloc((l->count + 1) * sizeof *idx);
	if (!idx)
		return NULL;
	for (size_t i = 0; i < l->count; i++) {
		size_t j = i;
		while (j > 0 && l->items[idx[j - 1]].est > l->items[i].est) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
	return idx;
}

static s3db_code encode_body_overflow(const schema *s, field_list *l, const char *id,
                                      record_encoded *out, s3db_error *err)
{
	size_t *idx = order_by_size(l);
	if (!idx)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	size_t lim = effective_limit(s, id), current = strlen(s->version);
	int spill = 0;
	for (size_t k = 0; k < l->count; k++) {
		field *f = &l->items[idx[k]];
		if (!spill && current + f->est > lim)
			spill = 1;
		f->to_body = spill;
		if (!spill)
			current += f->est;
	}
	/* s3db.js's estimate ignores keys and escaping; make the real headers
	 * fit by moving the largest remaining fields too */
	const size_t flag = strlen("_overflow") + 4; /* counted once a field moves */
	size_t real = 2 + strlen(s->version) + (spill ? flag : 0);
	for (size_t i = 0; i < l->count; i++)
		if (!l->items[i].to_body)
			real += header_size(&l->items[i]);
	for (size_t k = l->count; k-- > 0 && real > RECORD_METADATA_LIMIT;) {
		field *f = &l->items[idx[k]];
		if (!f->to_body) {
			if (!spill) {
				spill = 1;
				real += flag;
			}
			f->to_body = 1;
			real -= header_size(f);
		}
	}
	free(idx);
	int any = 0;
	for (size_t i = 0; i < l->count; i++) {
		field *f = &l->items[i];
		if (f->to_body) {
			any = 1;
			continue;
		}
		if (put_field_header(&out->meta, f))
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	if (any) {
		out->overflowed = 1;
		if (store_meta_set(&out->meta, "_overflow", "true"))
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		write_body(s, l, 0, 0, &out->body);
		out->content_type = "application/json";
	}
	return store_meta_set(&out->meta, "_v", s->version) ? s3db_error_set(err, S3DB_ERR_NOMEM, NULL)
	                                                     : S3DB_OK;
}

/* The longest prefix of f's value (whole UTF-8 characters) whose encoded
 * header fits `room` bytes; empties the value when nothing fits. */
static void truncate_field(field *f, size_t room)
{
	if (f->is_null || !f->mapped)
		return;
	size_t len = strlen(f->mapped);
	size_t lo = 0, hi = len;
	while (lo < hi) {
		size_t mid = (lo + hi + 1) / 2;
		while (mid > 0 && (f->mapped[mid] & 0xC0) == 0x80)
			mid--;
		if (mid <= lo) {
			hi = lo;
			break;
		}
		char saved = f->mapped[mid];
		f->mapped[mid] = '\0';
		size_t need = header_size(f);
		f->mapped[mid] = saved;
		if (need <= room)
			lo = mid;
		else
			hi = mid - 1;
	}
	while (lo > 0 && (f->mapped[lo] & 0xC0) == 0x80)
		lo--;
	f->mapped[lo] = '\0';
}

/* truncate-data, without s3db.js's blanking defect (R12): fields in size
 * order while they fit; the first that does not fit is cut to the room
 * left, the rest are dropped; `_truncated: true` marks the record. */
static s3db_code encode_truncate_data(const schema *s, field_list *l, const char *id,
                                      record_encoded *out, s3db_error *err)
{
	size_t *idx = order_by_size(l);
	if (!idx)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	size_t budget = RECORD_METADATA_LIMIT - (2 + strlen(s->version)) - (10 + 4);
	size_t used = 0;
	int cut = 0;
	for (size_t k = 0; k < l->count; k++) {
		field *f = &l->items[idx[k]];
		if (cut) {
			f->to_body = 1; /* dropped */
			continue;
		}
		size_t need = header_size(f);
		if (used + need <= budget) {
			used += need;
			continue;
		}
		cut = 1;
		if (used + strlen(f->key) + 1 < budget) {
			truncate_field(f, budget - used);
			used += header_size(f);
		} else {
			f->to_body = 1;
		}
	}
	free(idx);
	for (size_t i = 0; i < l->count; i++)
		if (!l->items[i].to_body && put_field_header(&out->meta, &l->items[i]))
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (cut) {
		out->truncated = 1;
		if (store_meta_set(&out->meta, "_truncated", "true"))
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	return store_meta_set(&out->meta, "_v", s->version) ? s3db_error_set(err, S3DB_ERR_NOMEM, NULL)
	                                                     : S3DB_OK;
}

static s3db_code encode_body_only(const schema *s, field_list *l, record_encoded *out,
                                  s3db_error *err)
{
	json_object *map = json_object_new_object();
	for (size_t i = 0; i < s->nattrs; i++)
		if (s->attrs[i].short_key && s->attrs[i].kind != KIND_NESTED)
			json_object_object_add(map, s->attrs[i].path,
			                       json_object_new_string(s->attrs[i].short_key));
	char *map_text = s3db_json_stringify(map, 0);
	json_object_put(map);
	if (!map_text || store_meta_set(&out->meta, "_v", s->version) ||
	    set_header(&out->meta, "_map", map_text, 0)) {
		free(map_text);
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	free(map_text);
	write_body(s, l, 1, 1, &out->body);
	out->content_type = "application/json";
	return S3DB_OK;
}

void record_encoded_init(record_encoded *e)
{
	memset(e, 0, sizeof *e);
	store_meta_init(&e->meta);
	sbuf_init(&e->body);
}

void record_encoded_free(record_encoded *e)
{
	store_meta_free(&e->meta);
	sbuf_free(&e->body);
	memset(e, 0, sizeof *e);
}

s3db_code record_encode(const schema *s, json_object *data, const char *id,
                        const char *passphrase, record_encoded *out, s3db_error *err)
{
	encode_ctx c = { .s = s, .passphrase = passphrase ? passphrase : "secret", .err = err };
	c.freeform = s->nattrs == 0;
	s3db_code rc = flatten(&c, data, NULL);
	if (rc != S3DB_OK) {
		fields_free(&c.fields);
		return rc;
	}
	fields_js_order(&c.fields);
	const char *b = s->behavior ? s->behavior : "user-managed";
	if (c.freeform || !strcmp(b, "body-only"))
		rc = encode_body_only(s, &c.fields, out, err);
	else if (!strcmp(b, "enforce-limits"))
		rc = encode_enforce_limits(s, &c.fields, id, out, err);
	else if (!strcmp(b, "truncate-data"))
		rc = encode_truncate_data(s, &c.fields, id, out, err);
	else if (!strcmp(b, "body-overflow"))
		rc = encode_body_overflow(s, &c.fields, id, out, err);
	else
		rc = encode_user_managed(s, &c.fields, id, out, err);
	fields_free(&c.fields);
	if (rc == S3DB_OK && out->body.oom)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK && meta_total(&out->meta) > RECORD_METADATA_LIMIT)
		rc = s3db_error_set(err, S3DB_ERR_METADATA_TOO_LARGE,
		                    "record metadata is %zu bytes; the limit is %d",
		                    meta_total(&out->meta), RECORD_METADATA_LIMIT);
	return rc;
}

/* ---- decoding ------------------------------------------------------------- */

/* What was found for one attribute while reading an object. */
typedef struct found {
	char *mapped;         /* mapped string, or NULL                     */
	json_object *native;  /* native JSON value (owned), or NULL         */
	char *v74_raw;        /* the header as stored when the 7.4 base64
	                         heuristic rewrote it (B.5.2), else NULL    */
	int is_null;
	int present;
	int ambiguous;        /* a v7 header key that folds onto this
	                         attribute and another one (B.4)            */
} found;

typedef struct decode_ctx {
	const schema *s;
	found *by_attr;           /* one per s->attrs                        */
	json_object *extras;      /* free-form / unknown fields, in order    */
	const char *passphrase;
	int v7;
	int v74;
} decode_ctx;

static void found_set_mapped(found *f, const char *value, int is_null)
{
	free(f->mapped);
	free(f->v74_raw);
	json_object_put(f->native);
	f->native = NULL;
	f->v74_raw = NULL;
	f->mapped = is_null ? NULL : strdup(value);
	f->is_null = is_null;
	f->present = 1;
}

static void found_set_native(found *f, json_object *v)
{
	free(f->mapped);
	free(f->v74_raw);
	json_object_put(f->native);
	f->mapped = NULL;
	f->v74_raw = NULL;
	f->native = json_object_get(v);
	f->is_null = v == NULL;
	f->present = 1;
}

static size_t attr_index(const schema *s, const attr *a)
{
	return (size_t)(a - s->attrs);
}

/* 1 when values of attribute a (NULL: an extra field) may hold non-ASCII
 * text, which is all that s3db.js 7.4.1+ writes as unprefixed base64
 * (B.5.2).  Numbers, booleans, dates and secret envelopes are ASCII by
 * construction: the read heuristic is never right for them. */
static int v74_may_be_base64(const attr *a)
{
	if (!a)
		return 1;
	switch (a->kind) {
	case KIND_NUMBER:
	case KIND_INTEGER:
	case KIND_BOOLEAN:
	case KIND_DATE:
	case KIND_DATETIME:
	case KIND_DATEONLY:
	case KIND_SECRET:
		return 0;
	default:
		return 1;
	}
}

/* Decodes one header value by the format's rules (a: its attribute, or
 * NULL).  Returns CODEC_* and sets *out (malloc'd) for CODEC_VALUE. */
static int decode_header_value(const decode_ctx *c, const attr *a, const char *raw, char **out)
{
	if (!c->v7)
		return codec_metadata_decode(raw, out);
	*out = NULL;
	if (!strcmp(raw, "null"))
		return CODEC_NULL;
	if (!strcmp(raw, "undefined"))
		return CODEC_ABSENT;
	*out = c->v74 && v74_may_be_base64(a) ? codec_v74_decode(raw)
	                                      : codec_latin1_to_utf8(raw, strlen(raw));
	return *out ? CODEC_VALUE : -1;
}

/* The attribute a header key stands for, or NULL.  S3 returns header keys
 * lower-cased; 21.x short keys are lower-case base36, but v7's base62 keys
 * above index 35 are upper-case (B.4), so in v7 every attribute whose key
 * folds to the header key is a candidate.  With two or more the value
 * belongs to one of them and nothing says which: each candidate is
 * flagged ambiguous and NULL is returned. */
static const attr *attr_for_header(decode_ctx *c, const char *k)
{
	if (!c->v7)
		return schema_attr_by_key(c->s, k);
	const attr *hit = NULL;
	size_t n = 0;
	for (size_t i = 0; i < c->s->nattrs; i++) {
		const attr *a = &c->s->attrs[i];
		if (a->short_key && !strcasecmp(a->short_key, k)) {
			hit = a;
			n++;
		}
	}
	if (n < 2)
		return hit;
	for (size_t i = 0; i < c->s->nattrs; i++) {
		const attr *a = &c->s->attrs[i];
		if (a->short_key && !strcasecmp(a->short_key, k))
			c->by_attr[i].ambiguous = 1;
	}
	return NULL;
}

static void take_metadata(decode_ctx *c, const store_object *obj)
{
	for (size_t i = 0; i < obj->meta.count; i++) {
		const char *k = obj->meta.items[i].key, *raw = obj->meta.items[i].value;
		if (k[0] == '_')
			continue; /* control and bookkeeping keys */
		const attr *a = attr_for_header(c, k);
		if (!a && c->s->nattrs > 0)
			continue; /* unknown or ambiguous key */
		char *value = NULL;
		int kind = decode_header_value(c, a, raw, &value);
		if (kind < 0 || kind == CODEC_ABSENT) {
			free(value);
			continue;
		}
		if (a) {
			found *f = &c->by_attr[attr_index(c->s, a)];
			found_set_mapped(f, value, kind == CODEC_NULL);
			if (c->v7 && c->v74 && kind == CODEC_VALUE && strcmp(value, raw) != 0)
				f->v74_raw = strdup(raw);
		} else {
			json_object_object_add(c->extras, k,
			                       kind == CODEC_NULL ? NULL : json_object_new_string(value));
		}
		free(value);
	}
}

/* A 7.4.1+ header value that the base64 heuristic rewrote is ambiguous
 * (B.5.2: "asia" is canonical base64 of non-ASCII text).  A user-managed
 * body holds the field in clear: when it is the decoded text, the
 * heuristic was right; anything else means the header was the value. */
static void settle_v74(found *f, json_object *body_value)
{
	if (!f->v74_raw)
		return;
	if (json_object_is_type(body_value, json_type_string) && f->mapped &&
	    !strcmp(json_object_get_string(body_value), f->mapped)) {
		free(f->v74_raw);
		f->v74_raw = NULL;
		return;
	}
	char *raw = f->v74_raw;
	f->v74_raw = NULL;
	found_set_mapped(f, raw, 0);
	free(raw);
}

/* Reads body entries: short keys carry mapped values; with names_ok,
 * attribute names carry native values (user-managed bodies written by
 * updates).  Metadata wins: present fields are kept unless override. */
static void take_body_object(decode_ctx *c, json_object *body, json_object *map, int names_ok,
                             int override)
{
	json_object_object_foreach(body, k, v) {
		if (k[0] == '_' || k[0] == '$')
			continue;
		const attr *a = NULL;
		int by_name = 0;
		if (map) {
			/* body-only with _map: key -> attribute */
			json_object_object_foreach(map, name, key) {
				if (json_object_is_type(key, json_type_string) &&
				    !strcmp(json_object_get_string(key), k)) {
					a = schema_attr_by_path(c->s, name);
					break;
				}
			}
		}
		if (!a && names_ok && (a = schema_attr_by_path(c->s, k)) != NULL)
			by_name = 1;
		if (!a && !names_ok)
			a = schema_attr_by_key(c->s, k);
		if (!a) {
			if (c->s->nattrs == 0)
				json_object_object_add(c->extras, k, json_object_get(v));
			continue;
		}
		found *f = &c->by_attr[attr_index(c->s, a)];
		if (f->present && !override) {
			if (by_name)
				settle_v74(f, v);
			continue;
		}
		if (by_name && a->kind == KIND_SECRET && c->v7)
			continue; /* v7 bodies hold secrets in clear: never propagate */
		if (by_name) {
			if (a->kind == KIND_NESTED && json_object_is_type(v, json_type_object)) {
				json_object_object_foreach(v, ck, cv) {
					char *path = s3db_asprintf("%s.%s", k, ck);
					const attr *ca = path ? schema_attr_by_path(c->s, path) : NULL;
					free(path);
					found *cf = ca ? &c->by_attr[attr_index(c->s, ca)] : NULL;
					if (cf && cf->present)
						settle_v74(cf, cv);
					else if (cf)
						found_set_native(cf, cv);
				}
				continue;
			}
			found_set_native(f, v);
		} else if (json_object_is_type(v, json_type_string)) {
			found_set_mapped(f, json_object_get_string(v), 0);
		} else {
			found_set_native(f, v);
		}
	}
}

/* A user-managed body written by an update carries attribute names and
 * `_` bookkeeping keys; one written for an over-limit insert holds only
 * short keys and _v (§4.2 step 5). */
static int body_has_names(json_object *body)
{
	json_object_object_foreach(body, k, v) {
		(void)v;
		if (k[0] == '_' && strcmp(k, "_v") != 0)
			return 1;
	}
	return 0;
}

static void take_body(decode_ctx *c, const store_object *obj)
{
	json_object *body = record_body_json(obj); /* NULL: none, or binary content */
	if (!body)
		return;
	const char *b = c->s->behavior ? c->s->behavior : "user-managed";
	if (c->s->nattrs == 0 || !strcmp(b, "body-only")) {
		json_object *map = NULL;
		const char *map_text = store_meta_get(&obj->meta, "_map");
		char *decoded = NULL;
		if (map_text && decode_header_value(c, NULL, map_text, &decoded) == CODEC_VALUE)
			s3db_json_parse(decoded, strlen(decoded), &map, NULL);
		free(decoded);
		take_body_object(c, body, map && json_object_is_type(map, json_type_object) ? map : NULL,
		                 0, 1);
		json_object_put(map);
	} else if (!strcmp(b, "body-overflow")) {
		take_body_object(c, body, NULL, 0, 0);
	} else if (!strcmp(b, "user-managed")) {
		take_body_object(c, body, NULL, c->v7 || body_has_names(body), 0);
	} else if (!strcmp(b, "truncate-data") && c->v7) {
		take_body_object(c, body, NULL, 0, 1); /* v7: the untruncated data */
	} else if (!strcmp(b, "enforce-limits") && c->v7) {
		/* v7: a copy of the metadata under case-preserved keys; it
		 * fills what an ambiguous header key lost */
		take_body_object(c, body, NULL, 0, 0);
	}
	json_object_put(body);
}

static json_object *json_or_string(const char *s)
{
	json_object *o = NULL;
	if ((s[0] == '{' || s[0] == '[') && s3db_json_parse(s, strlen(s), &o, NULL) == S3DB_OK)
		return o;
	return json_object_new_string(s);
}

static json_object *decode_number_list(const char *s, attr_kind kind)
{
	char **items = NULL;
	size_t n = 0;
	json_object *arr = json_object_new_array();
	if (codec_array_split(s, &items, &n) != 0)
		return arr;
	for (size_t i = 0; i < n; i++) {
		double d = kind == KIND_INTEGER ? codec_base62_decode(items[i])
		                                : codec_decimal_decode(items[i]);
		json_object_array_add(arr, items[i][0] ? s3db_json_new_number(d) : NULL);
		free(items[i]);
	}
	free(items);
	return arr;
}

/* "^[a,b,...]": fixed-point batch, precision 6 (§3.3.4). */
static json_object *decode_fixed_batch(const char *s)
{
	json_object *arr = json_object_new_array();
	char *copy = strndup(s + 2, strlen(s) - 3);
	char *save = NULL;
	for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
		int neg = tok[0] == '-';
		double d = codec_base62_decode(tok + neg) / 1e6;
		json_object_array_add(arr, s3db_json_new_number(neg ? -d : d));
	}
	free(copy);
	return arr;
}

static json_object *decode_array(const attr *a, const char *s)
{
	if (s[0] == '[') {
		/* JSON text (arrays written by other paths, §4.3); an item list
		 * whose first item merely starts with '[' is split below */
		json_object *o = NULL;
		if (s3db_json_parse(s, strlen(s), &o, NULL) == S3DB_OK &&
		    json_object_is_type(o, json_type_array))
			return o;
		json_object_put(o);
		if (a->item_kind != KIND_STRING && a->item_kind != KIND_NUMBER &&
		    a->item_kind != KIND_INTEGER)
			return json_object_new_string(s);
	}
	if (s3db_str_starts(s, "^[") && s3db_str_ends(s, "]"))
		return decode_fixed_batch(s);
	if (a->item_kind == KIND_NUMBER || a->item_kind == KIND_INTEGER)
		return decode_number_list(s, a->item_kind);
	if (a->item_kind != KIND_STRING)
		return json_or_string(s);
	json_object *arr = json_object_new_array();
	char **items = NULL;
	size_t n = 0;
	if (codec_array_split(s, &items, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			json_object_array_add(arr, json_object_new_string(items[i]));
			free(items[i]);
		}
		free(items);
	}
	return arr;
}

static json_object *decode_datetime(const char *s)
{
	int64_t ms;
	char iso[40];
	if (strchr(s, ':') || (s[0] && strchr(s + 1, '-'))) { /* ISO text (v7 era) */
		if (s3db_parse_iso8601(s, &ms) != 0)
			return json_object_new_string(s);
	} else if (codec_datetime_decode(s, &ms) != 0) {
		return json_object_new_string(s);
	}
	s3db_iso8601(ms, iso, sizeof iso);
	return json_object_new_string(iso);
}

static json_object *decode_dateonly(const char *s)
{
	int64_t days;
	if ((s[0] && strchr(s + 1, '-')) || codec_dateonly_decode(s, &days) != 0)
		return json_object_new_string(s);
	char iso[40];
	s3db_iso8601(days * 86400000, iso, sizeof iso);
	iso[10] = '\0';
	return json_object_new_string(iso);
}

/* Turns a mapped string into its value (§4.3).  *absent is set when the
 * value means "no value" (an empty number, a secret of "undefined"). */
static json_object *decode_mapped(const decode_ctx *c, const attr *a, const char *s, int *absent)
{
	*absent = 0;
	const char *rule_type = s3db_json_get_string(a->rule, "type");
	switch (a->kind) {
	case KIND_NUMBER:
		if (!*s) {
			*absent = 1;
			return NULL;
		}
		return s3db_json_new_number(codec_decimal_decode(s));
	case KIND_INTEGER:
		if (!*s) {
			*absent = 1;
			return NULL;
		}
		return s3db_json_new_number(codec_base62_decode(s));
	case KIND_BOOLEAN:
		return json_object_new_boolean(!strcmp(s, "1") || !strcmp(s, "true") ||
		                               !strcmp(s, "yes") || !strcmp(s, "y"));
	case KIND_ARRAY:
		return decode_array(a, s);
	case KIND_OBJECT:
	case KIND_JSON:
	case KIND_NESTED:
	case KIND_ANY:
		return json_or_string(s);
	case KIND_DATE:
		if (s[0] == '"') {
			json_object *q = NULL;
			if (s3db_json_parse(s, strlen(s), &q, NULL) == S3DB_OK &&
			    json_object_is_type(q, json_type_string))
				return q;
			json_object_put(q);
		}
		return json_object_new_string(s);
	case KIND_DATETIME:
		return c->v7 ? json_object_new_string(s) : decode_datetime(s);
	case KIND_DATEONLY:
		return decode_dateonly(s);
	case KIND_SECRET: {
		char *plain = NULL;
		if (secret_decrypt(c->passphrase, s, &plain, NULL) != S3DB_OK)
			return json_object_new_string(s); /* as s3db.js: ciphertext */
		json_object *v = NULL;
		if (!strcmp(plain, "undefined"))
			*absent = 1;
		else if (strcmp(plain, "null") != 0)
			v = json_object_new_string(plain);
		free(plain);
		return v;
	}
	case KIND_RAW:
		if (rule_type && !strcmp(rule_type, "number")) {
			double d = codec_js_parse_number(s);
			return isnan(d) ? json_object_new_string(s) : s3db_json_new_number(d);
		}
		if (rule_type && (!strcmp(rule_type, "boolean") || !strcmp(rule_type, "bool")))
			return json_object_new_boolean(!strcmp(s, "true") || !strcmp(s, "1"));
		return json_object_new_string(s);
	default:
		return json_object_new_string(s);
	}
}

/* Native values come from user-managed bodies: only secrets (encrypted)
 * and json attributes (JSON text) need work. */
static json_object *decode_native(const decode_ctx *c, const attr *a, json_object *v, int *absent)
{
	*absent = 0;
	if (v && json_object_is_type(v, json_type_string) &&
	    (a->kind == KIND_SECRET || a->kind == KIND_JSON))
		return decode_mapped(c, a, json_object_get_string(v), absent);
	return json_object_get(v);
}

/* Puts value at the dotted path under root, creating parent objects. */
static void set_path(json_object *root, const char *path, json_object *value)
{
	const char *dot = strchr(path, '.');
	if (!dot) {
		json_object_object_add(root, path, value);
		return;
	}
	char *head = strndup(path, (size_t)(dot - path));
	json_object *child = NULL;
	if (!json_object_object_get_ex(root, head, &child) || !json_object_is_type(child, json_type_object)) {
		child = json_object_new_object();
		json_object_object_add(root, head, child);
	}
	free(head);
	set_path(child, dot + 1, value);
}

static void build_record(decode_ctx *c, const char *id, json_object *out)
{
	json_object_object_add(out, "id", json_object_new_string(id));
	for (size_t i = 0; i < c->s->nattrs; i++) {
		const attr *a = &c->s->attrs[i];
		found *f = &c->by_attr[i];
		if (!f->present)
			continue;
		int absent = 0;
		json_object *v;
		if (f->is_null)
			v = a->kind == KIND_BOOLEAN ? json_object_new_boolean(0) : NULL;
		else if (f->native)
			v = decode_native(c, a, f->native, &absent);
		else
			v = decode_mapped(c, a, f->mapped, &absent);
		if (absent) {
			json_object_put(v);
			continue;
		}
		set_path(out, a->path, v);
	}
	json_object_object_foreach(c->extras, k, v)
		json_object_object_add(out, k, json_object_get(v));
	/* v7 fields whose header key was ambiguous and that no body gave */
	json_object *amb = NULL;
	for (size_t i = 0; i < c->s->nattrs; i++) {
		if (!c->by_attr[i].ambiguous || c->by_attr[i].present)
			continue;
		if (!amb)
			amb = json_object_new_array();
		json_object_array_add(amb, json_object_new_string(c->s->attrs[i].path));
	}
	if (amb)
		json_object_object_add(out, "$ambiguous", amb);
}

/* Orders nested objects as the schema declares them: set_path creates a
 * parent at the position of its first child, which is schema order.
 * After the fields (and the extra fields of a free-form resource) comes
 * "$ambiguous" when some v7 fields could not be read (see the top of the
 * file): an array of their paths in schema order.  Like every '$' key it
 * is not a field — schema_validate leaves it out when the record is
 * written back. */
s3db_code record_decode(const schema *s, const store_object *obj, const char *id,
                        const char *passphrase, int v74, json_object **out, s3db_error *err)
{
	decode_ctx c = {
		.s = s,
		.passphrase = passphrase ? passphrase : "secret",
		.v7 = s->format == FORMAT_V7,
		.v74 = v74,
	};
	c.by_attr = calloc(s->nattrs + 1, sizeof *c.by_attr);
	c.extras = json_object_new_object();
	*out = json_object_new_object();
	if (!c.by_attr || !c.extras || !*out) {
		free(c.by_attr);
		json_object_put(c.extras);
		json_object_put(*out);
		*out = NULL;
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	take_metadata(&c, obj);
	take_body(&c, obj);
	build_record(&c, id, *out);
	for (size_t i = 0; i < s->nattrs; i++) {
		free(c.by_attr[i].mapped);
		free(c.by_attr[i].v74_raw);
		json_object_put(c.by_attr[i].native);
	}
	free(c.by_attr);
	json_object_put(c.extras);
	return S3DB_OK;
}

const char *record_object_version(const store_object *obj)
{
	return store_meta_get(&obj->meta, "_v");
}

json_object *record_body_json(const store_object *obj)
{
	if (!obj->body || obj->body_len == 0)
		return NULL;
	size_t i = 0;
	while (i < obj->body_len && isspace(obj->body[i]))
		i++;
	if (i == obj->body_len || obj->body[i] != '{')
		return NULL;
	json_object *o = NULL;
	if (s3db_json_parse((const char *)obj->body, obj->body_len, &o, NULL) != S3DB_OK)
		return NULL;
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int record_body_is_binary(const store_object *obj)
{
	if (!obj->body || obj->body_len == 0)
		return 0;
	json_object *o = record_body_json(obj);
	json_object_put(o);
	return o == NULL;
}
