/*
 * fuzz_record.c — JSON <-> record mapping: any JSON text is validated
 * against a schema of every attribute kind; what validates is encoded under
 * each behavior and decoded again.  Properties checked:
 *   - encoding gives printable-ASCII header values within 2047 bytes, or
 *     fails with METADATA_TOO_LARGE (never a partial or oversized object);
 *   - decoding what was encoded gives back exactly the validated record
 *     (behaviors that keep everything: user-managed, enforce-limits,
 *     body-overflow, body-only), but for the one ambiguity of s3db.js's
 *     header format that s3dbfs keeps for compatibility (spec R7): an
 *     array [""] in a header is written as "" and reads back as [].
 */
#include <stdint.h>
#include <stdio.h>
#include "fuzz_common.h"
#include "record.h"

static const char *const behaviors[] = { "user-managed", "enforce-limits", "body-overflow",
	                                 "body-only", "truncate-data" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ascii(const store_meta *m)
{
	for (size_t i = 0; i < m->count; i++)
		for (const unsigned char *p = (const unsigned char *)m->items[i].value; *p; p++)
			if (*p < 0x20 || *p > 0x7e) {
				fprintf(stderr, "header %s has byte 0x%02x\n", m->items[i].key, *p);
				abort();
			}
	if (store_meta_size(m) > RECORD_METADATA_LIMIT)
		abort();
}

/* What get() gives back for a validated record: json attributes were
 * stringified by validation and come back parsed when they are JSON text
 * of an object or array. */
static void expect_json_parsed(const schema *s, json_object *valid)
{
	for (size_t i = 0; i < s->nattrs; i++) {
		if (s->attrs[i].kind != KIND_JSON && s->attrs[i].kind != KIND_OBJECT)
			continue;
		json_object *v = NULL;
		if (!json_object_object_get_ex(valid, s->attrs[i].path, &v) ||
		    !json_object_is_type(v, json_type_string))
			continue;
		const char *t = json_object_get_string(v);
		json_object *parsed = NULL;
		if ((t[0] == '{' || t[0] == '[') &&
		    s3db_json_parse(t, strlen(t), &parsed, NULL) == S3DB_OK)
			json_object_object_add(valid, s->attrs[i].path, parsed);
	}
}

/* Replaces every array that is exactly [""] (anywhere in o) by [], the
 * only form it has after a trip through a header (spec R7). */
static void fold_r7(json_object *o)
{
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v) {
			if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 1) {
				json_object *only = json_object_array_get_idx(v, 0);
				if (json_object_is_type(only, json_type_string) &&
				    json_object_get_string_len(only) == 0) {
					json_object_object_add(o, k, json_object_new_array());
					continue;
				}
			}
			fold_r7(v);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			fold_r7(json_object_array_get_idx(o, i));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static schema *schemas[5];
	if (!schemas[0])
		for (int b = 0; b < 5; b++)
			schemas[b] = fuzz_schema(behaviors[b], FORMAT_21);
	if (size < 1)
		return 0;
	const schema *s = schemas[data[0] % 5];
	json_object *in = NULL;
	if (s3db_json_parse((const char *)data + 1, size - 1, &in, NULL) != S3DB_OK)
		return 0;
	json_object *valid = NULL;
	if (schema_validate(s, in, &valid, NULL) == S3DB_OK) {
		record_encoded enc;
		record_encoded_init(&enc);
		s3db_code rc = record_encode(s, valid, "fuzz-id", "secret", &enc, NULL);
		if (rc == S3DB_OK) {
			check_ascii(&enc.meta);
			store_object obj;
			store_object_init(&obj);
			store_meta_copy(&obj.meta, &enc.meta);
			obj.body = (unsigned char *)(enc.body.data ? strdup(enc.body.data) : NULL);
			obj.body_len = enc.body.len;
			obj.size = (int64_t)enc.body.len;
			json_object *back = NULL;
			if (record_decode(s, &obj, "fuzz-id", "secret", 0, &back, NULL) != S3DB_OK)
				abort();
			json_object_object_del(back, "id");
			expect_json_parsed(s, valid);
			fold_r7(valid);
			fold_r7(back);
			if (data[0] % 5 != 4 && !json_object_equal(back, valid)) {
				char *a = s3db_json_stringify(valid, 0), *b = s3db_json_stringify(back, 0);
				fprintf(stderr, "round trip differs (%s):\n in:  %s\n out: %s\n",
				        behaviors[data[0] % 5], a, b);
				abort();
			}
			json_object_put(back);
			store_object_free(&obj);
		} else if (rc != S3DB_ERR_METADATA_TOO_LARGE) {
			abort();
		}
		record_encoded_free(&enc);
	}
	json_object_put(valid);
	json_object_put(in);
	return 0;
}
