/*
 * resource.c — record operations: insert, get, update, replace, upsert,
 * delete, their bulk forms, listing, counting, paging, queries and binary
 * content.
 *
 * Requests per operation (what bench/ measures; tests/t_database.c
 * checks them):
 *   insert   1 PUT (If-None-Match: *) + 1 PUT per partition reference
 *   get      1 HEAD, + 1 GET when the object has a body
 *   update   get + 1 PUT (If-Match: the ETag read) + 1 PUT per reference
 *            + 1 DeleteObjects when references moved
 *   delete   get + 1 DELETE + 1 DeleteObjects when it has references
 *            (resource_delete_known, record given: 1 DELETE, or 1
 *            DeleteObjects of the object and its references)
 *   get of a listed record (resource_get_meta_sized): 1 GET when the
 *            LIST showed a body up to RESOURCE_GET_DIRECT_MAX, else as get
 *   listIds  ceil(N / 1000) LIST; count likewise
 *   list     listIds + a get per record, `parallelism` at a time
 *
 * What callers and listeners see of a written record (insert's and
 * update's *out, the new_record of their events) is the encoded object
 * decoded again — the record exactly as get() will return it — while
 * partition references are computed from the validated record (§2.5).
 * A before-listener's refusal is returned with a message naming the
 * event.  Listings list ids in key order, each once (duplicated
 * references are folded).
 *
 * Invariants:
 *  - nothing is written before the record validates and encodes;
 *  - a write that fails part-way is undone (an insert whose references
 *    cannot be written deletes what it wrote), so no partial record and
 *    no stale reference is left by our own writes;
 *  - updates are conditional on the ETag read, so a concurrent writer's
 *    change is never silently overwritten (S3DB_ERR_PRECONDITION).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db.h"
#include "record.h"
#include "s3db_plugin.h"

/* ---- helpers ---------------------------------------------------------------- */

static s3db_code need_schema(s3db_resource *res, const schema **s, s3db_error *err)
{
	*s = res ? db_current_schema(res) : NULL;
	if (!*s)
		return s3db_error_set(err, S3DB_ERR_NO_RESOURCE, "no resource '%s'",
		                      res ? res->name : "(null)");
	return S3DB_OK;
}

static s3db_code need_writable(s3db_resource *res, s3db_error *err)
{
	if (res->db->format == FORMAT_V7)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "%s: this database was written by s3db.js 7.x and is read-only here",
		                      res->name);
	return S3DB_OK;
}

/* Reads a record object: HEAD, then GET when it has a body. */
static s3db_code fetch_object(s3db_resource *res, const char *id, store_object *obj,
                              s3db_error *err)
{
	char *key = db_record_key(res->db, res->name, id);
	if (!key)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s3db_code rc = store_head(res->db->store, key, obj, err);
	if (rc == S3DB_OK && obj->size > 0) {
		store_object_free(obj);
		rc = store_get(res->db->store, key, obj, err);
	}
	free(key);
	if (rc == S3DB_ERR_NOT_FOUND)
		s3db_error_set(err, rc, "%s/%s: no such record", res->name, id);
	return rc;
}

/* Reads a record object whose size is believed to be size_hint (from a
 * listing): one GET, which carries the metadata too, when the object is
 * believed to have a body of at most RESOURCE_GET_DIRECT_MAX bytes;
 * otherwise fetch_object (a HEAD is cheaper than a GET of large binary
 * content, and enough for an object without a body). */
static s3db_code fetch_object_sized(s3db_resource *res, const char *id, int64_t size_hint,
                                    store_object *obj, s3db_error *err)
{
	if (size_hint <= 0 || size_hint > RESOURCE_GET_DIRECT_MAX)
		return fetch_object(res, id, obj, err);
	char *key = db_record_key(res->db, res->name, id);
	if (!key)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s3db_code rc = store_get(res->db->store, key, obj, err);
	free(key);
	if (rc == S3DB_ERR_NOT_FOUND)
		s3db_error_set(err, rc, "%s/%s: no such record", res->name, id);
	return rc;
}

/* read_record with a size hint (fetch_object_sized; -1: unknown). */
static s3db_code read_record_sized(s3db_resource *res, const char *id, int64_t size_hint,
                                   json_object **out, store_object *obj_out, s3db_error *err)
{
	store_object obj;
	store_object_init(&obj);
	s3db_code rc = fetch_object_sized(res, id, size_hint, &obj, err);
	if (rc == S3DB_OK) {
		const schema *s = db_schema_for_version(res, record_object_version(&obj));
		rc = s ? record_decode(s, &obj, id, res->db->passphrase, res->db->v74, out, err)
		       : s3db_error_set(err, S3DB_ERR_NO_RESOURCE, "no resource '%s'", res->name);
		if (rc != S3DB_OK)
			s3db_error_prefix(err, "%s/%s", res->name, id);
	}
	if (rc == S3DB_OK && obj_out)
		*obj_out = obj;
	else
		store_object_free(&obj);
	return rc;
}

/* Reads and decodes a record; *obj_out (optional) keeps the object. */
static s3db_code read_record(s3db_resource *res, const char *id, json_object **out,
                             store_object *obj_out, s3db_error *err)
{
	return read_record_sized(res, id, -1, out, obj_out, err);
}

/* Copies data without "id" and adds timestamps; created_at keeps an
 * existing record's createdAt. */
static json_object *with_timestamps(const schema *s, json_object *data, json_object *created_at)
{
	json_object *copy = json_object_new_object();
	json_object_object_foreach(data, k, v) {
		if (strcmp(k, "id") != 0)
			json_object_object_add(copy, k, json_object_get(v));
	}
	if (s->timestamps) {
		char now[40];
		s3db_iso8601(s3db_now_ms(), now, sizeof now);
		if (created_at)
			json_object_object_add(copy, "createdAt", json_object_get(created_at));
		else if (!json_object_object_get_ex(copy, "createdAt", NULL))
			json_object_object_add(copy, "createdAt", json_object_new_string(now));
		json_object_object_add(copy, "updatedAt", json_object_new_string(now));
	}
	return copy;
}

/* {id, ...fields} in that order (new object). */
static json_object *record_with_id(const char *id, json_object *fields)
{
	json_object *r = json_object_new_object();
	json_object_object_add(r, "id", json_object_new_string(id));
	json_object_object_foreach(fields, k, v)
		json_object_object_add(r, k, json_object_get(v));
	return r;
}

typedef struct ref_job {
	s3db *db;
	char **keys;
	const char *version;
	int put;             /* 1: PUT references, 0: nothing            */
	s3db_code *results;
	s3db_error *errors;
} ref_job;

static void ref_put_one(void *ud, size_t i)
{
	ref_job *j = ud;
	store_meta meta;
	store_meta_init(&meta);
	store_meta_set(&meta, "_v", j->version);
	j->results[i] = store_put(j->db->store, j->keys[i], &meta, "", 0, NULL, NULL, &j->errors[i]);
	store_meta_free(&meta);
}

static size_t strv_len(char **v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* PUTs every reference key in parallel; the first error is returned. */
static s3db_code put_references(s3db *db, char **keys, const char *version, s3db_error *err)
{
	size_t n = strv_len(keys);
	if (!n)
		return S3DB_OK;
	ref_job j = { .db = db, .keys = keys, .version = version };
	j.results = calloc(n, sizeof *j.results);
	j.errors = calloc(n, sizeof *j.errors);
	if (!j.results || !j.errors) {
		free(j.results);
		free(j.errors);
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	pool_run(db->parallelism, n, ref_put_one, &j);
	s3db_code rc = S3DB_OK;
	for (size_t i = 0; i < n && rc == S3DB_OK; i++) {
		if (j.results[i] != S3DB_OK) {
			rc = j.results[i];
			if (err)
				*err = j.errors[i];
		}
	}
	free(j.results);
	free(j.errors);
	return rc;
}

static int strv_contains(char **v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (!strcmp(v[i], s))
			return 1;
	return 0;
}

/* Keys of `a` that are not in `b` (NULL-terminated, s3db_free_strv). */
static char **strv_minus(char **a, char **b)
{
	strv out;
	strv_init(&out);
	for (size_t i = 0; a && a[i]; i++)
		if (!strv_contains(b, a[i]))
			strv_push(&out, a[i]);
	return strv_steal(&out);
}

/* Validates and encodes; *validated receives the normalised fields. */
static s3db_code prepare(const schema *s, s3db_resource *res, json_object *data,
                         json_object *created_at, const char *id, json_object **validated,
                         record_encoded *enc, s3db_error *err)
{
	json_object *input = with_timestamps(s, data, created_at);
	s3db_code rc = schema_validate(s, input, validated, err);
	json_object_put(input);
	if (rc == S3DB_OK)
		rc = record_encode(s, *validated, id, res->db->passphrase, enc, err);
	if (rc != S3DB_OK)
		s3db_error_prefix(err, "%s/%s", res->name, id);
	return rc;
}

/* The record as get() will read it back: the encoded object decoded
 * again, so `json` values are parsed, truncate-data cuts show, numbers
 * pass through their encoding (the validated record differs from that).
 * Secrets decrypt from the key cache that encryption filled.  *out is a
 * new object, "id" first. */
static s3db_code as_stored(s3db_resource *res, const schema *s, const record_encoded *enc,
                           const char *id, json_object **out, s3db_error *err)
{
	store_object view;   /* borrows enc's buffers: never freed here */
	store_object_init(&view);
	view.meta = enc->meta;
	view.content_type = (char *)enc->content_type;
	view.body = (unsigned char *)enc->body.data;
	view.body_len = enc->body.data ? enc->body.len : 0;
	view.size = (int64_t)view.body_len;
	s3db_code rc = record_decode(s, &view, id, res->db->passphrase, res->db->v74, out, err);
	if (rc != S3DB_OK)
		s3db_error_prefix(err, "%s/%s", res->name, id);
	return rc;
}

/* Emits a before-event.  A listener's refusal becomes the operation's
 * result, with a message naming the event (listeners return a code, not
 * a message). */
static s3db_code emit_before(s3db_resource *res, s3db_event_type type, const char *id,
                             json_object *old_record, json_object *new_record,
                             const s3db_ctx *ctx, s3db_error *err)
{
	s3db_code rc = event_emit(res->db, type, res->name, id, old_record, new_record, ctx,
	                          S3DB_OK, 0);
	if (rc != S3DB_OK)
		s3db_error_set(err, rc, "%s%s%s: cancelled by a %s listener (%s)", res->name,
		               id ? "/" : "", id ? id : "", s3db_event_name(type), s3db_strerror(rc));
	return rc;
}

/* ---- insert ------------------------------------------------------------------ */

static s3db_code insert_record(s3db_resource *res, json_object *data, const char *given_id,
                               const s3db_ctx *ctx, json_object **out, s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = need_writable(res, err);
	if (rc != S3DB_OK)
		return rc;
	if (!data || !json_object_is_type(data, json_type_object))
		return s3db_error_set(err, S3DB_ERR_VALIDATION, "%s: a record must be a JSON object",
		                      res->name);
	json_object *idv = NULL;
	const char *id = given_id;
	if (!id && json_object_object_get_ex(data, "id", &idv) && idv) {
		if (!json_object_is_type(idv, json_type_string))
			return s3db_error_set(err, S3DB_ERR_BAD_ID, "%s: \"id\" must be a string", res->name);
		id = json_object_get_string(idv);
	}
	char *generated = id ? NULL : id_generate(s->id_size);
	if (!id && !(id = generated))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	rc = s3db_id_check(id, err);
	if (rc != S3DB_OK) {
		s3db_error_prefix(err, "%s", res->name);
		free(generated);
		return rc;
	}
	json_object *validated = NULL, *record = NULL, *stored = NULL;
	record_encoded enc;
	record_encoded_init(&enc);
	char **refs = NULL;
	char *key = NULL;
	rc = prepare(s, res, data, NULL, id, &validated, &enc, err);
	if (rc == S3DB_OK) {
		/* partition values come from the validated record (§2.5); what
		 * listeners and the caller see is the record as it reads back */
		record = record_with_id(id, validated);
		rc = partition_keys(res->db, s, record, id, &refs, err);
	}
	if (rc == S3DB_OK)
		rc = as_stored(res, s, &enc, id, &stored, err);
	if (rc == S3DB_OK)
		rc = emit_before(res, S3DB_EV_BEFORE_INSERT, id, NULL, stored, ctx, err);
	if (rc == S3DB_OK && !(key = db_record_key(res->db, res->name, id)))
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK) {
		store_put_opts opts = { .content_type = enc.content_type, .if_none_match = 1 };
		rc = store_put(res->db->store, key, &enc.meta, enc.body.data ? enc.body.data : "",
		               enc.body.len, &opts, NULL, err);
		if (rc == S3DB_ERR_PRECONDITION)
			rc = s3db_error_set(err, S3DB_ERR_EXISTS, "%s/%s: the record already exists",
			                    res->name, id);
		if (rc == S3DB_OK) {
			rc = put_references(res->db, refs, s->version, err);
			if (rc != S3DB_OK) {
				/* undo: no record without its references */
				store_delete(res->db->store, key, NULL);
				size_t n = strv_len(refs);
				if (n)
					store_delete_many(res->db->store, (const char *const *)refs, n, NULL);
			}
		}
	}
	event_emit(res->db, S3DB_EV_AFTER_INSERT, res->name, id, NULL, rc == S3DB_OK ? stored : NULL,
	           ctx, rc, s3db_monotonic_ms() - t0);
	if (rc == S3DB_OK && out)
		*out = json_object_get(stored);
	json_object_put(stored);
	json_object_put(record);
	json_object_put(validated);
	record_encoded_free(&enc);
	s3db_free_strv(refs);
	free(key);
	free(generated);
	return rc;
}

s3db_code s3db_insert(s3db_resource *res, json_object *data, const s3db_ctx *ctx,
                      json_object **out, s3db_error *err)
{
	if (out)
		*out = NULL;
	return insert_record(res, data, NULL, ctx, out, err);
}

/* ---- get / exists ---------------------------------------------------------------- */

static s3db_code get_uncached(s3db_resource *res, const char *id, const s3db_ctx *ctx,
                              json_object **out, s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	*out = NULL;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	rc = emit_before(res, S3DB_EV_BEFORE_GET, id, NULL, NULL, ctx, err);
	if (rc == S3DB_OK)
		rc = read_record(res, id, out, NULL, err);
	event_emit(res->db, S3DB_EV_AFTER_GET, res->name, id, NULL, *out, ctx, rc,
	           s3db_monotonic_ms() - t0);
	return rc;
}

static int exists_uncached(s3db_resource *res, const char *id, s3db_error *err)
{
	const schema *s;
	if (need_schema(res, &s, err) != S3DB_OK || s3db_id_check(id, err) != S3DB_OK)
		return -1;
	char *key = db_record_key(res->db, res->name, id);
	store_object obj;
	store_object_init(&obj);
	s3db_code rc = key ? store_head(res->db->store, key, &obj, err) : S3DB_ERR_NOMEM;
	store_object_free(&obj);
	free(key);
	if (rc == S3DB_ERR_NOT_FOUND) {
		s3db_error_clear(err);
		return 0;
	}
	return rc == S3DB_OK ? 1 : -1;
}

/* ---- update / replace / upsert ------------------------------------------------------ */

/* Deep merge of JSON objects: patch's members replace old's, objects
 * merge recursively.  Returns a new object. */
static json_object *merge(json_object *old, json_object *patch)
{
	json_object *out = json_object_new_object();
	json_object_object_foreach(old, k, v)
		json_object_object_add(out, k, json_object_get(v));
	json_object_object_foreach(patch, pk, pv) {
		json_object *ov = NULL;
		if (pv && json_object_is_type(pv, json_type_object) &&
		    json_object_object_get_ex(out, pk, &ov) && ov &&
		    json_object_is_type(ov, json_type_object))
			json_object_object_add(out, pk, merge(ov, pv));
		else
			json_object_object_add(out, pk, json_object_get(pv));
	}
	return out;
}

typedef enum write_mode { WRITE_REPLACE, WRITE_MERGE } write_mode;

static s3db_code rewrite_record(s3db_resource *res, const char *id, json_object *data,
                                write_mode mode, const s3db_ctx *ctx, json_object **out,
                                s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = need_writable(res, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	if (!data || !json_object_is_type(data, json_type_object))
		return s3db_error_set(err, S3DB_ERR_VALIDATION, "%s/%s: a record must be a JSON object",
		                      res->name, id);
	json_object *idv;
	if (json_object_object_get_ex(data, "id", &idv) && idv &&
	    (!json_object_is_type(idv, json_type_string) || strcmp(json_object_get_string(idv), id)))
		return s3db_error_set(err, S3DB_ERR_BAD_ID,
		                      "%s/%s: the record's \"id\" differs from the id being written "
		                      "(ids are changed by rename, not by update)", res->name, id);
	json_object *old = NULL, *validated = NULL, *record = NULL, *input = NULL, *stored = NULL;
	store_object obj;
	store_object_init(&obj);
	record_encoded enc;
	record_encoded_init(&enc);
	char **old_refs = NULL, **new_refs = NULL, **stale = NULL, *key = NULL;
	rc = read_record(res, id, &old, &obj, err);
	if (rc == S3DB_OK) {
		input = mode == WRITE_MERGE ? merge(old, data) : json_object_get(data);
		json_object *created = NULL;
		json_object_object_get_ex(old, "createdAt", &created);
		rc = prepare(s, res, input, s->timestamps ? created : NULL, id, &validated, &enc, err);
	}
	if (rc == S3DB_OK) {
		record = record_with_id(id, validated);
		rc = partition_keys(res->db, s, old, id, &old_refs, err);
		if (rc != S3DB_OK) { /* an old record with bad values: no refs to keep */
			s3db_error_clear(err);
			rc = S3DB_OK;
		}
		rc = partition_keys(res->db, s, record, id, &new_refs, err);
	}
	if (rc == S3DB_OK)
		rc = as_stored(res, s, &enc, id, &stored, err);
	if (rc == S3DB_OK)
		rc = emit_before(res, S3DB_EV_BEFORE_UPDATE, id, old, stored, ctx, err);
	if (rc == S3DB_OK && !(key = db_record_key(res->db, res->name, id)))
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK) {
		/* binary content stays when the new encoding has no body (§3.15) */
		const void *body = enc.body.data ? enc.body.data : "";
		size_t len = enc.body.len;
		const char *ctype = enc.content_type;
		if (len == 0 && record_body_is_binary(&obj)) {
			body = obj.body;
			len = obj.body_len;
			ctype = obj.content_type;
		}
		store_put_opts opts = { .content_type = ctype, .if_match = obj.etag };
		rc = store_put(res->db->store, key, &enc.meta, body, len, &opts, NULL, err);
		if (rc == S3DB_ERR_PRECONDITION)
			s3db_error_set(err, rc, "%s/%s: the record changed while it was being updated; "
			               "read it again and retry", res->name, id);
	}
	if (rc == S3DB_OK)
		rc = put_references(res->db, new_refs, s->version, err);
	if (rc == S3DB_OK) {
		stale = strv_minus(old_refs, new_refs);
		size_t n = strv_len(stale);
		if (n)
			rc = store_delete_many(res->db->store, (const char *const *)stale, n, err);
	}
	event_emit(res->db, S3DB_EV_AFTER_UPDATE, res->name, id, old, rc == S3DB_OK ? stored : NULL,
	           ctx, rc, s3db_monotonic_ms() - t0);
	if (rc == S3DB_OK && out)
		*out = json_object_get(stored);
	json_object_put(stored);
	json_object_put(old);
	json_object_put(input);
	json_object_put(validated);
	json_object_put(record);
	store_object_free(&obj);
	record_encoded_free(&enc);
	s3db_free_strv(old_refs);
	s3db_free_strv(new_refs);
	s3db_free_strv(stale);
	free(key);
	return rc;
}

s3db_code s3db_update(s3db_resource *res, const char *id, json_object *patch, const s3db_ctx *ctx,
                      json_object **out, s3db_error *err)
{
	if (out)
		*out = NULL;
	return rewrite_record(res, id, patch, WRITE_MERGE, ctx, out, err);
}

s3db_code s3db_replace(s3db_resource *res, const char *id, json_object *data, const s3db_ctx *ctx,
                       json_object **out, s3db_error *err)
{
	if (out)
		*out = NULL;
	return rewrite_record(res, id, data, WRITE_REPLACE, ctx, out, err);
}

s3db_code s3db_upsert(s3db_resource *res, json_object *data, const s3db_ctx *ctx,
                      json_object **out, s3db_error *err)
{
	json_object *idv = NULL;
	if (out)
		*out = NULL;
	if (!data || !json_object_object_get_ex(data, "id", &idv) ||
	    !json_object_is_type(idv, json_type_string))
		return s3db_error_set(err, S3DB_ERR_BAD_ID, "%s: upsert needs a record with a string "
		                      "\"id\"", res ? res->name : "");
	const char *id = json_object_get_string(idv);
	for (int attempt = 0; attempt < 3; attempt++) {
		s3db_code rc = insert_record(res, data, id, ctx, out, err);
		if (rc != S3DB_ERR_EXISTS)
			return rc;
		rc = rewrite_record(res, id, data, WRITE_REPLACE, ctx, out, err);
		if (rc != S3DB_ERR_NOT_FOUND)
			return rc; /* deleted in between: insert again */
	}
	return s3db_error_set(err, S3DB_ERR_PRECONDITION, "%s/%s: the record kept changing", res->name,
	                      id);
}

/* ---- delete -------------------------------------------------------------------------- */

s3db_code s3db_delete(s3db_resource *res, const char *id, const s3db_ctx *ctx, s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = need_writable(res, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	json_object *old = NULL;
	char **refs = NULL, *key = NULL;
	rc = read_record(res, id, &old, NULL, err);
	if (rc == S3DB_OK && partition_keys(res->db, s, old, id, &refs, NULL) != S3DB_OK)
		refs = NULL;
	if (rc == S3DB_OK)
		rc = emit_before(res, S3DB_EV_BEFORE_DELETE, id, old, NULL, ctx, err);
	if (rc == S3DB_OK && !(key = db_record_key(res->db, res->name, id)))
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK)
		rc = store_delete(res->db->store, key, err);
	if (rc == S3DB_OK && strv_len(refs))
		rc = store_delete_many(res->db->store, (const char *const *)refs, strv_len(refs), err);
	event_emit(res->db, S3DB_EV_AFTER_DELETE, res->name, id, old, NULL, ctx, rc,
	           s3db_monotonic_ms() - t0);
	json_object_put(old);
	s3db_free_strv(refs);
	free(key);
	return rc;
}

s3db_code resource_delete_known(s3db_resource *res, const char *id, json_object *known,
                                const s3db_ctx *ctx, s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = need_writable(res, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	char **refs = NULL, *key = NULL;
	if (known && partition_keys(res->db, s, known, id, &refs, NULL) != S3DB_OK)
		refs = NULL;
	if (!known && s->partitions && json_object_object_length(s->partitions) > 0)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "%s/%s: a delete without the record needs a resource without "
		                      "partitions", res->name, id);
	rc = emit_before(res, S3DB_EV_BEFORE_DELETE, id, known, NULL, ctx, err);
	if (rc == S3DB_OK && !(key = db_record_key(res->db, res->name, id)))
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	size_t n = strv_len(refs);
	if (rc == S3DB_OK && n == 0) {
		rc = store_delete(res->db->store, key, err);
	} else if (rc == S3DB_OK) {
		/* the object and its references in one DeleteObjects */
		const char **all = calloc(n + 1, sizeof *all);
		if (!all) {
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		} else {
			all[0] = key;
			for (size_t i = 0; i < n; i++)
				all[i + 1] = refs[i];
			rc = store_delete_many(res->db->store, all, n + 1, err);
			free(all);
		}
	}
	event_emit(res->db, S3DB_EV_AFTER_DELETE, res->name, id, known, NULL, ctx, rc,
	           s3db_monotonic_ms() - t0);
	s3db_free_strv(refs);
	free(key);
	return rc;
}

typedef struct delete_job {
	s3db_resource *res;
	const schema *s;
	const char *const *ids;
	json_object **olds;
	char ***refs;
	s3db_code *rcs;
	s3db_error *errs;
} delete_job;

static void delete_read_one(void *ud, size_t i)
{
	delete_job *j = ud;
	j->rcs[i] = read_record(j->res, j->ids[i], &j->olds[i], NULL, &j->errs[i]);
	if (j->rcs[i] == S3DB_OK &&
	    partition_keys(j->res->db, j->s, j->olds[i], j->ids[i], &j->refs[i], NULL) != S3DB_OK)
		j->refs[i] = NULL;
}

s3db_code s3db_delete_many(s3db_resource *res, const char *const *ids, size_t n,
                           const s3db_ctx *ctx, s3db_error *err)
{
	const schema *s;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = need_writable(res, err);
	for (size_t i = 0; rc == S3DB_OK && i < n; i++)
		if ((rc = s3db_id_check(ids[i], err)) != S3DB_OK)
			s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK || n == 0)
		return rc;
	double t0 = s3db_monotonic_ms();
	delete_job j = { .res = res, .s = s, .ids = ids };
	j.olds = calloc(n, sizeof *j.olds);
	j.refs = calloc(n, sizeof *j.refs);
	j.rcs = calloc(n, sizeof *j.rcs);
	j.errs = calloc(n, sizeof *j.errs);
	strv keys;
	strv_init(&keys);
	if (!j.olds || !j.refs || !j.rcs || !j.errs)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	else
		pool_run(res->db->parallelism, n, delete_read_one, &j);
	for (size_t i = 0; rc == S3DB_OK && i < n; i++) {
		if (j.rcs[i] == S3DB_ERR_NOT_FOUND)
			continue; /* already gone */
		if (j.rcs[i] != S3DB_OK) {
			rc = j.rcs[i];
			if (err)
				*err = j.errs[i];
			break;
		}
		rc = emit_before(res, S3DB_EV_BEFORE_DELETE, ids[i], j.olds[i], NULL, ctx, err);
		char *key = rc == S3DB_OK ? db_record_key(res->db, res->name, ids[i]) : NULL;
		if (key)
			strv_push_owned(&keys, key);
		for (size_t r = 0; j.refs[i] && j.refs[i][r]; r++)
			strv_push(&keys, j.refs[i][r]);
	}
	if (rc == S3DB_OK && keys.count)
		rc = store_delete_many(res->db->store, (const char *const *)keys.items, keys.count, err);
	for (size_t i = 0; j.rcs && i < n; i++) {
		if (j.rcs[i] == S3DB_OK)
			event_emit(res->db, S3DB_EV_AFTER_DELETE, res->name, ids[i], j.olds[i], NULL, ctx,
			           rc, s3db_monotonic_ms() - t0);
		json_object_put(j.olds[i]);
		s3db_free_strv(j.refs[i]);
	}
	strv_free(&keys);
	free(j.olds);
	free(j.refs);
	free(j.rcs);
	free(j.errs);
	return rc;
}

/* ---- bulk insert / get ------------------------------------------------------------------- */

typedef struct bulk_job {
	s3db_resource *res;
	json_object *records;       /* insert: input array */
	const char *const *ids;     /* get: ids            */
	const s3db_ctx *ctx;
	json_object **outs;
	s3db_code *rcs;
	s3db_error *errs;
} bulk_job;

static void bulk_insert_one(void *ud, size_t i)
{
	bulk_job *j = ud;
	j->rcs[i] = s3db_insert(j->res, json_object_array_get_idx(j->records, i), j->ctx, &j->outs[i],
	                        &j->errs[i]);
}

static void bulk_get_one(void *ud, size_t i)
{
	bulk_job *j = ud;
	j->rcs[i] = get_uncached(j->res, j->ids[i], j->ctx, &j->outs[i], &j->errs[i]);
}

/* How bulk_run reports the items. */
typedef enum bulk_report {
	BULK_RESULTS,   /* one entry per item: the record or {id, error}   */
	BULK_RECORDS    /* the records only; vanished ones (NOT_FOUND) are
	                   left out, any other failure fails the call      */
} bulk_report;

/* Runs fn over n items and collects the results in input order into
 * *results (NULL: not wanted).  Returns the first failure, in input order
 * (BULK_RECORDS: the first one other than NOT_FOUND). */
static s3db_code bulk_run(bulk_job *j, size_t n, pool_fn fn, json_object **results,
                          s3db_error *err, bulk_report report)
{
	j->outs = calloc(n + 1, sizeof *j->outs);
	j->rcs = calloc(n + 1, sizeof *j->rcs);
	j->errs = calloc(n + 1, sizeof *j->errs);
	if (!j->outs || !j->rcs || !j->errs) {
		free(j->outs);
		free(j->rcs);
		free(j->errs);
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	pool_run(j->res->db->parallelism, n, fn, j);
	s3db_code rc = S3DB_OK;
	json_object *arr = results ? json_object_new_array_ext((int)n) : NULL;
	for (size_t i = 0; i < n; i++) {
		int skip = report == BULK_RECORDS && j->rcs[i] == S3DB_ERR_NOT_FOUND;
		if (j->rcs[i] != S3DB_OK && rc == S3DB_OK && !skip) {
			rc = j->rcs[i];
			if (err)
				*err = j->errs[i];
		}
		if (!arr || skip) {
			json_object_put(j->outs[i]);
			continue;
		}
		if (j->rcs[i] == S3DB_OK) {
			json_object_array_add(arr, j->outs[i]);
		} else if (report == BULK_RESULTS) {
			json_object *e = json_object_new_object();
			const char *id = j->ids ? j->ids[i] : s3db_json_get_string(
				json_object_array_get_idx(j->records, i), "id");
			json_object_object_add(e, "id", id ? json_object_new_string(id) : NULL);
			json_object_object_add(e, "error", json_object_new_string(j->errs[i].message));
			json_object_array_add(arr, e);
		}
	}
	if (results && rc != S3DB_OK && report == BULK_RECORDS) {
		json_object_put(arr);
		arr = NULL;
	}
	if (results)
		*results = arr;
	free(j->outs);
	free(j->rcs);
	free(j->errs);
	return rc;
}

s3db_code s3db_insert_many(s3db_resource *res, json_object *records, const s3db_ctx *ctx,
                           json_object **results, s3db_error *err)
{
	if (results)
		*results = NULL;
	if (!records || !json_object_is_type(records, json_type_array))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "insertMany needs a JSON array");
	bulk_job j = { .res = res, .records = records, .ctx = ctx };
	return bulk_run(&j, json_object_array_length(records), bulk_insert_one, results, err,
	                BULK_RESULTS);
}

static s3db_code get_many_uncached(s3db_resource *res, const char *const *ids, size_t n,
                                   const s3db_ctx *ctx, json_object **results, s3db_error *err)
{
	if (results)
		*results = NULL;
	bulk_job j = { .res = res, .ids = ids, .ctx = ctx };
	return bulk_run(&j, n, bulk_get_one, results, err, BULK_RESULTS);
}

/* ---- listing ------------------------------------------------------------------------------ */

typedef struct id_collect {
	strv ids;
	char **segments;          /* partition: "f=v" segments to match    */
	size_t prefix_len;
	int oom;
} id_collect;

/* 1 when one '/'-separated segment of path equals seg. */
static int has_segment(const char *path, const char *seg)
{
	size_t n = strlen(seg);
	for (const char *p = path; p && *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
		if (!strncmp(p, seg, n) && (p[n] == '/' || p[n] == '\0'))
			return 1;
	return 0;
}

/* From ".../data/id=ID" or ".../partition=P/f=v/.../id=ID" take the id,
 * checking partition segments against the wanted values. */
static int collect_id(void *ud, const store_entry *e)
{
	id_collect *c = ud;
	const char *rest = e->key + c->prefix_len;
	const char *idp = strrchr(rest, '/');
	idp = idp ? idp + 1 : rest;
	if (!s3db_str_starts(idp, "id=") || !idp[3])
		return 0; /* not a record key */
	for (size_t i = 0; c->segments && c->segments[i]; i++)
		if (!has_segment(rest, c->segments[i]))
			return 0;
	if (strv_push(&c->ids, idp + 3)) {
		c->oom = 1;
		return 1; /* stop: the listing would be incomplete */
	}
	return 0;
}

/* Drops repeated ids from a sorted vector (duplicated or stale partition
 * references name a record more than once, §4.4). */
static void strv_uniq(strv *v)
{
	size_t w = 0;
	for (size_t r = 0; r < v->count; r++) {
		if (w && !strcmp(v->items[w - 1], v->items[r])) {
			free(v->items[r]);
			continue;
		}
		v->items[w++] = v->items[r];
	}
	v->count = w;
	if (v->items)
		v->items[w] = NULL;
}

/* Where a listing looks: the full-key prefix (ending in '/') of the
 * resource's records or of a partition, and, when the partition values
 * could not all go into the prefix, the "f=v" segments keys must also
 * hold (*segments NULL otherwise).  *matchable is 0 when no key can match
 * (a null value).  The caller frees *prefix and *segments. */
static s3db_code listing_prefix(s3db_resource *res, const schema *s, const s3db_list_opts *opts,
                                char **prefix, char ***segments, int *matchable,
                                s3db_error *err)
{
	int exact = 1;
	*prefix = NULL;
	*segments = NULL;
	*matchable = 1;
	if (opts && opts->partition) {
		s3db_code rc = partition_prefix(res->db, s, opts->partition, opts->partition_values,
		                                prefix, &exact, err);
		if (rc == S3DB_OK && !exact)
			rc = partition_segments(s, opts->partition, opts->partition_values, segments,
			                        matchable, err);
		if (rc != S3DB_OK) {
			free(*prefix);
			*prefix = NULL;
		}
		return rc;
	}
	*prefix = db_key(res->db, "resource=%s/data/", res->name);
	if (*prefix && !s3db_str_ends(*prefix, "/")) {
		char *p = s3db_asprintf("%s/", *prefix);
		free(*prefix);
		*prefix = p;
	}
	return *prefix ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

static s3db_code collect_ids(s3db_resource *res, const schema *s, const s3db_list_opts *opts,
                             strv *ids, s3db_error *err)
{
	char *prefix = NULL;
	int matchable = 1;
	id_collect c = { .segments = NULL };
	strv_init(&c.ids);
	s3db_code rc = listing_prefix(res, s, opts, &prefix, &c.segments, &matchable, err);
	if (rc != S3DB_OK)
		return rc;
	c.prefix_len = strlen(prefix);
	rc = matchable ? store_list_all(res->db->store, prefix, collect_id, &c, err) : S3DB_OK;
	free(prefix);
	s3db_free_strv(c.segments);
	if (rc == S3DB_OK && c.oom)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc != S3DB_OK) {
		strv_free(&c.ids);
		return rc;
	}
	strv_sort(&c.ids);
	strv_uniq(&c.ids);
	*ids = c.ids;
	return S3DB_OK;
}

/* Applies offset and limit to a sorted id list in place. */
static void window(strv *ids, const s3db_list_opts *opts)
{
	size_t off = opts ? opts->offset : 0, lim = opts ? opts->limit : 0;
	if (off >= ids->count)
		off = ids->count;
	for (size_t i = 0; i < off; i++)
		free(ids->items[i]);
	if (off)
		memmove(ids->items, ids->items + off, (ids->count - off) * sizeof(char *));
	ids->count -= off;
	if (lim && ids->count > lim) {
		for (size_t i = lim; i < ids->count; i++)
			free(ids->items[i]);
		ids->count = lim;
	}
	if (ids->items)
		ids->items[ids->count] = NULL;
}

static s3db_code list_ids_uncached(s3db_resource *res, const s3db_list_opts *opts, char ***ids,
                                   size_t *count, s3db_error *err)
{
	const schema *s;
	*ids = NULL;
	s3db_code rc = need_schema(res, &s, err);
	strv v;
	if (rc == S3DB_OK)
		rc = collect_ids(res, s, opts, &v, err);
	if (rc != S3DB_OK)
		return rc;
	window(&v, opts);
	if (count)
		*count = v.count;
	*ids = strv_steal(&v);
	return *ids ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

static s3db_code count_uncached(s3db_resource *res, const s3db_list_opts *opts, size_t *count,
                                const s3db_ctx *ctx, s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	*count = 0;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = emit_before(res, S3DB_EV_BEFORE_COUNT, NULL, NULL, NULL, ctx, err);
	strv v;
	if (rc == S3DB_OK && (rc = collect_ids(res, s, opts, &v, err)) == S3DB_OK) {
		window(&v, opts);
		*count = v.count;
		strv_free(&v);
	}
	event_emit(res->db, S3DB_EV_AFTER_COUNT, res->name, NULL, NULL, NULL, ctx, rc,
	           s3db_monotonic_ms() - t0);
	return rc;
}

/* Reads the records of ids (in order); records that vanished between the
 * listing and the read are left out.  (Records are told from failures by
 * their result code, never by their members: a record may well have a
 * field named "error".) */
static s3db_code read_many(s3db_resource *res, strv *ids, const s3db_ctx *ctx, json_object **out,
                           s3db_error *err)
{
	bulk_job j = { .res = res, .ids = (const char *const *)ids->items, .ctx = ctx };
	return bulk_run(&j, ids->count, bulk_get_one, out, err, BULK_RECORDS);
}

static s3db_code list_uncached(s3db_resource *res, const s3db_list_opts *opts, const s3db_ctx *ctx,
                               json_object **records, s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	*records = NULL;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = emit_before(res, S3DB_EV_BEFORE_LIST, NULL, NULL, NULL, ctx, err);
	strv v;
	if (rc == S3DB_OK && (rc = collect_ids(res, s, opts, &v, err)) == S3DB_OK) {
		window(&v, opts);
		rc = read_many(res, &v, ctx, records, err);
		strv_free(&v);
	}
	event_emit(res->db, S3DB_EV_AFTER_LIST, res->name, NULL, NULL, *records, ctx, rc,
	           s3db_monotonic_ms() - t0);
	return rc;
}

static s3db_code page_uncached(s3db_resource *res, size_t page, size_t page_size,
                               const s3db_list_opts *opts, const s3db_ctx *ctx, json_object **out,
                               s3db_error *err)
{
	const schema *s;
	*out = NULL;
	if (page_size == 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "page size must be at least 1");
	s3db_code rc = need_schema(res, &s, err);
	strv v;
	if (rc != S3DB_OK || (rc = collect_ids(res, s, opts, &v, err)) != S3DB_OK)
		return rc;
	size_t total = v.count;
	s3db_list_opts w = { .offset = page * page_size, .limit = page_size };
	window(&v, &w);
	json_object *items = NULL;
	rc = read_many(res, &v, ctx, &items, err);
	strv_free(&v);
	if (rc != S3DB_OK)
		return rc;
	*out = json_object_new_object();
	json_object_object_add(*out, "items", items);
	json_object_object_add(*out, "page", json_object_new_int64((int64_t)page));
	json_object_object_add(*out, "pageSize", json_object_new_int64((int64_t)page_size));
	json_object_object_add(*out, "totalItems", json_object_new_int64((int64_t)total));
	json_object_object_add(*out, "totalPages",
	                       json_object_new_int64((int64_t)((total + page_size - 1) / page_size)));
	return S3DB_OK;
}

/* Every field of filter equals the record's value at that (dotted) path. */
static int matches(json_object *record, json_object *filter)
{
	json_object_object_foreach(filter, k, want) {
		json_object *have = s3db_json_get_path(record, k);
		if (!json_object_equal(have, want)) {
			/* numbers compare by value whatever their JSON type */
			if (!have || !want ||
			    !(json_object_is_type(have, json_type_int) || json_object_is_type(have, json_type_double)) ||
			    !(json_object_is_type(want, json_type_int) || json_object_is_type(want, json_type_double)) ||
			    json_object_get_double(have) != json_object_get_double(want))
				return 0;
		}
	}
	return 1;
}

static s3db_code query_uncached(s3db_resource *res, json_object *filter,
                                const s3db_list_opts *opts, const s3db_ctx *ctx,
                                json_object **records, s3db_error *err)
{
	*records = NULL;
	if (filter && !json_object_is_type(filter, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "a query filter must be a JSON object");
	s3db_list_opts all = { 0 };
	if (opts) {
		all.partition = opts->partition;
		all.partition_values = opts->partition_values;
	}
	json_object *every = NULL;
	s3db_code rc = s3db_list(res, &all, ctx, &every, err);
	if (rc != S3DB_OK)
		return rc;
	json_object *out = json_object_new_array();
	size_t skipped = 0, off = opts ? opts->offset : 0, lim = opts ? opts->limit : 0;
	for (size_t i = 0; i < json_object_array_length(every); i++) {
		json_object *r = json_object_array_get_idx(every, i);
		if (filter && !matches(r, filter))
			continue;
		if (skipped++ < off)
			continue;
		if (lim && json_object_array_length(out) >= lim)
			break;
		json_object_array_add(out, json_object_get(r));
	}
	json_object_put(every);
	*records = out;
	return S3DB_OK;
}

/* Tells the read cache that the entry of (action, {id}) is stale
 * (defined with the read cache wrappers below). */
static void cache_forget(s3db_resource *res, const char *action, const char *id);

/* ---- binary content -------------------------------------------------------------------------- */

s3db_code s3db_set_content(s3db_resource *res, const char *id, const void *data, size_t len,
                           const char *content_type, s3db_error *err)
{
	const schema *s;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK)
		rc = need_writable(res, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	store_object obj;
	store_object_init(&obj);
	rc = fetch_object(res, id, &obj, err);
	if (rc == S3DB_OK && obj.body_len > 0 && !record_body_is_binary(&obj))
		rc = s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                    "%s/%s: the record keeps fields in its body (behavior %s), so it "
		                    "cannot also hold binary content", res->name, id, s->behavior);
	if (rc == S3DB_OK) {
		char *key = db_record_key(res->db, res->name, id);
		store_put_opts opts = {
			.content_type = content_type ? content_type : "application/octet-stream",
			.if_match = obj.etag,
		};
		rc = key ? store_put(res->db->store, key, &obj.meta, data ? data : "", len, &opts, NULL, err)
		         : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		free(key);
	}
	store_object_free(&obj);
	if (rc == S3DB_OK)
		cache_forget(res, "content", id); /* no event reports setContent */
	return rc;
}

static s3db_code get_content_uncached(s3db_resource *res, const char *id, void **data,
                                      size_t *len, char **content_type, s3db_error *err)
{
	const schema *s;
	*data = NULL;
	*len = 0;
	if (content_type)
		*content_type = NULL;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	store_object obj;
	store_object_init(&obj);
	rc = fetch_object(res, id, &obj, err);
	if (rc == S3DB_OK && (obj.body_len == 0 || !record_body_is_binary(&obj)))
		rc = s3db_error_set(err, S3DB_ERR_NOT_FOUND, "%s/%s: the record has no binary content",
		                    res->name, id);
	if (rc == S3DB_OK) {
		*data = obj.body;
		*len = obj.body_len;
		obj.body = NULL;
		if (content_type) {
			*content_type = obj.content_type;
			obj.content_type = NULL;
		}
	}
	store_object_free(&obj);
	return rc;
}

/* ---- for the file view ------------------------------------------------------------------------ */

static void meta_from_object(const store_object *obj, record_meta *meta)
{
	memset(meta, 0, sizeof *meta);
	memcpy(meta->etag, obj->etag, sizeof meta->etag);
	meta->etag[sizeof meta->etag - 1] = '\0';
	meta->last_modified_ms = obj->last_modified_ms;
	meta->size = obj->size;
	meta->has_content = obj->body_len > 0 && record_body_is_binary(obj);
	if (obj->content_type)
		snprintf(meta->content_type, sizeof meta->content_type, "%s", obj->content_type);
}

s3db_code resource_get_meta(s3db_resource *res, const char *id, const s3db_ctx *ctx,
                            json_object **out, record_meta *meta, s3db_error *err)
{
	return resource_get_meta_sized(res, id, -1, ctx, out, meta, err);
}

s3db_code resource_get_meta_sized(s3db_resource *res, const char *id, int64_t size_hint,
                                  const s3db_ctx *ctx, json_object **out, record_meta *meta,
                                  s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	*out = NULL;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	if (rc != S3DB_OK)
		return rc;
	rc = emit_before(res, S3DB_EV_BEFORE_GET, id, NULL, NULL, ctx, err);
	store_object obj;
	store_object_init(&obj);
	if (rc == S3DB_OK)
		rc = read_record_sized(res, id, size_hint, out, &obj, err);
	if (rc == S3DB_OK && meta)
		meta_from_object(&obj, meta);
	store_object_free(&obj);
	event_emit(res->db, S3DB_EV_AFTER_GET, res->name, id, NULL, *out, ctx, rc,
	           s3db_monotonic_ms() - t0);
	return rc;
}

s3db_code resource_head_meta(s3db_resource *res, const char *id, record_meta *meta,
                             s3db_error *err)
{
	char *key = db_record_key(res->db, res->name, id);
	if (!key)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	store_object obj;
	store_object_init(&obj);
	s3db_code rc = store_head(res->db->store, key, &obj, err);
	if (rc == S3DB_OK) {
		meta_from_object(&obj, meta);
		/* a HEAD cannot tell binary content from a JSON body */
		meta->has_content = obj.size > 0 && obj.content_type &&
		                    strcmp(obj.content_type, "application/json") != 0;
	}
	store_object_free(&obj);
	free(key);
	return rc;
}

typedef struct entry_walk {
	resource_entry_fn fn;
	void *ud;
	size_t prefix_len;
	char **segments;          /* partition: "f=v" segments to match */
} entry_walk;

static int walk_entry(void *ud, const store_entry *e)
{
	entry_walk *w = ud;
	const char *rest = e->key + w->prefix_len;
	const char *idp = strrchr(rest, '/');
	idp = idp ? idp + 1 : rest;
	if (!s3db_str_starts(idp, "id=") || !idp[3])
		return 0;
	for (size_t i = 0; w->segments && w->segments[i]; i++)
		if (!has_segment(rest, w->segments[i]))
			return 0;
	return w->fn(w->ud, idp + 3, e);
}

s3db_code resource_list_entries(s3db_resource *res, const s3db_list_opts *opts,
                                const s3db_ctx *ctx, resource_entry_fn fn, void *ud,
                                s3db_error *err)
{
	const schema *s;
	double t0 = s3db_monotonic_ms();
	s3db_code rc = need_schema(res, &s, err);
	if (rc != S3DB_OK)
		return rc;
	if (ctx && (rc = emit_before(res, S3DB_EV_BEFORE_LIST, NULL, NULL, NULL, ctx, err)) != S3DB_OK)
		return rc;
	char *prefix = NULL;
	int matchable = 1;
	entry_walk w = { .fn = fn, .ud = ud };
	rc = listing_prefix(res, s, opts, &prefix, &w.segments, &matchable, err);
	if (rc == S3DB_OK) {
		w.prefix_len = strlen(prefix);
		if (matchable)
			rc = store_list_all(res->db->store, prefix, walk_entry, &w, err);
		free(prefix);
		s3db_free_strv(w.segments);
	}
	if (ctx)
		event_emit(res->db, S3DB_EV_AFTER_LIST, res->name, NULL, NULL, NULL, ctx, rc,
		           s3db_monotonic_ms() - t0);
	return rc;
}

s3db *resource_db(s3db_resource *res)
{
	return res->db;
}

/* ---- the read cache ----------------------------------------------------------------------------
 *
 * The cacheable reads of s3db.h ask the read cache a plugin installed
 * (s3db_plugin.h; the CachePlugin) before they make a request, and give
 * it what they read after a miss.  Requests are named and parametrised
 * exactly as s3db.js 21.6.2's CachePlugin keys them (spec §6.2):
 *   get / exists / content {id}; getMany {ids}; count, list, listIds
 *   (no parameters); page {page, size}; query {filter, options}.
 * A read restricted to a partition passes the partition and its values;
 * one that names a partition without values (or with a null value), and
 * count / list / listIds with a limit or an offset, are not cached: their
 * §6.2 keys would equal those of different reads.  On a hit the read's
 * events are still emitted (a before-listener may still refuse it) and
 * no request is made.  Writes never read through the cache (they use
 * read_record), nor do the per-record reads inside list, page and
 * getMany (the whole result is cached instead).  Content is cached up to
 * CACHE_CONTENT_MAX bytes, as s3db.js's {buffer, contentType}. */

#define CACHE_CONTENT_MAX (256 * 1024)

typedef struct cache_read {
	const s3db_read_cache *cache;
	void *ud;
	s3db_cache_request rq;
	json_object *params;       /* owned */
} cache_read;

/* 1 when a partition restriction can be keyed: values given, none null. */
static int partition_keyable(const s3db_list_opts *opts)
{
	if (!opts || !opts->partition)
		return 1;
	json_object *v = opts->partition_values;
	if (!v || !json_object_is_type(v, json_type_object) || json_object_object_length(v) == 0)
		return 0;
	json_object_object_foreach(v, k, val) {
		(void)k;
		if (!val)
			return 0;
	}
	return 1;
}

/* Prepares a cacheable read (params is consumed).  0 when no cache is
 * installed or the read cannot be keyed: then c holds nothing. */
static int cache_begin(s3db_resource *res, cache_read *c, const char *action,
                       json_object *params, const s3db_list_opts *opts)
{
	memset(c, 0, sizeof *c);
	c->cache = db_read_cache(res->db, &c->ud);
	if (!c->cache || !partition_keyable(opts)) {
		json_object_put(params);
		c->cache = NULL;
		return 0;
	}
	c->params = params;
	c->rq.resource = res->name;
	c->rq.action = action;
	c->rq.params = params;
	if (opts && opts->partition) {
		c->rq.partition = opts->partition;
		c->rq.partition_values = opts->partition_values;
	}
	return 1;
}

/* 1 and *out (owned by the caller) when the cache holds a value of json
 * type `type` for c; else 0 and *out NULL (a value of another type is a
 * miss).  Counts hits and misses. */
static int cache_lookup(s3db_resource *res, cache_read *c, json_type type, json_object **out)
{
	*out = NULL;
	int hit = c->cache->lookup(c->ud, &c->rq, out) && *out && json_object_is_type(*out, type);
	if (!hit) {
		json_object_put(*out);
		*out = NULL;
	}
	atomic_fetch_add(hit ? &res->db->cache_hits : &res->db->cache_misses, 1);
	return hit;
}

/* Gives result (borrowed; NULL: nothing to keep) to the cache and frees
 * what cache_begin kept. */
static void cache_end(cache_read *c, json_object *result)
{
	if (c->cache && result)
		c->cache->store(c->ud, &c->rq, result);
	json_object_put(c->params);
	c->params = NULL;
}

static json_object *id_params(const char *id)
{
	json_object *p = json_object_new_object();
	json_object_object_add(p, "id", json_object_new_string(id));
	return p;
}

static void cache_forget(s3db_resource *res, const char *action, const char *id)
{
	cache_read c;
	if (cache_begin(res, &c, action, id_params(id), NULL)) {
		c.cache->store(c.ud, &c.rq, NULL);
		cache_end(&c, NULL);
	}
}

/* The events of a read answered from the cache: before (which may
 * refuse it), then after with the cached result. */
static s3db_code cached_events(s3db_resource *res, s3db_event_type before, const char *id,
                               json_object *result, const s3db_ctx *ctx, s3db_error *err)
{
	double t0 = s3db_monotonic_ms();
	s3db_code rc = emit_before(res, before, id, NULL, NULL, ctx, err);
	event_emit(res->db, (s3db_event_type)(before + 1), res->name, id, NULL,
	           rc == S3DB_OK ? result : NULL, ctx, rc, s3db_monotonic_ms() - t0);
	return rc;
}

/* cache_answer's `before` for reads that raise no events. */
#define NO_EVENTS S3DB_EV__COUNT

/* Answers a read whose result is a JSON value of type `type` from the
 * cache: on a hit, the read's cached events run when before is one
 * (not NO_EVENTS; they may refuse it), *out gets the value (owned by the
 * caller; NULL when refused), *rc the result, c is ended, and 1 is
 * returned.  On a miss 0: c stays open for the caller's cache_end after
 * the uncached read. */
static int cache_answer(s3db_resource *res, cache_read *c, json_type type, s3db_event_type before,
                        const char *id, const s3db_ctx *ctx, json_object **out, s3db_code *rc,
                        s3db_error *err)
{
	json_object *hit;
	if (!cache_lookup(res, c, type, &hit))
		return 0;
	*rc = before != NO_EVENTS ? cached_events(res, before, id, hit, ctx, err) : S3DB_OK;
	if (*rc == S3DB_OK)
		*out = hit;
	else
		json_object_put(hit);
	cache_end(c, NULL);
	return 1;
}

/* A read's arguments are checked before the cache is asked, so that a
 * bad id fails the same way with and without a cache. */
static s3db_code check_id_read(s3db_resource *res, const char *id, s3db_error *err)
{
	const schema *s;
	s3db_code rc = need_schema(res, &s, err);
	if (rc == S3DB_OK && (rc = s3db_id_check(id, err)) != S3DB_OK)
		s3db_error_prefix(err, "%s", res->name);
	return rc;
}

s3db_code s3db_get(s3db_resource *res, const char *id, const s3db_ctx *ctx, json_object **out,
                   s3db_error *err)
{
	*out = NULL;
	cache_read c;
	if (check_id_read(res, id, err) != S3DB_OK ||
	    !cache_begin(res, &c, "get", id_params(id), NULL))
		return get_uncached(res, id, ctx, out, err);
	s3db_code rc;
	if (cache_answer(res, &c, json_type_object, S3DB_EV_BEFORE_GET, id, ctx, out, &rc, err))
		return rc;
	rc = get_uncached(res, id, ctx, out, err);
	cache_end(&c, rc == S3DB_OK ? *out : NULL);
	return rc;
}

int s3db_exists(s3db_resource *res, const char *id, s3db_error *err)
{
	cache_read c;
	if (check_id_read(res, id, err) != S3DB_OK ||
	    !cache_begin(res, &c, "exists", id_params(id), NULL))
		return exists_uncached(res, id, err);
	json_object *hit;
	if (cache_lookup(res, &c, json_type_boolean, &hit)) {
		int yes = json_object_get_boolean(hit);
		json_object_put(hit);
		cache_end(&c, NULL);
		return yes;
	}
	int r = exists_uncached(res, id, err);
	json_object *v = r >= 0 ? json_object_new_boolean(r) : NULL;
	cache_end(&c, v);
	json_object_put(v);
	return r;
}

s3db_code s3db_get_many(s3db_resource *res, const char *const *ids, size_t n, const s3db_ctx *ctx,
                        json_object **results, s3db_error *err)
{
	if (results)
		*results = NULL;
	json_object *params = json_object_new_object(), *list = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(list, json_object_new_string(ids[i] ? ids[i] : ""));
	json_object_object_add(params, "ids", list);
	cache_read c;
	if (!results || !cache_begin(res, &c, "getMany", params, NULL)) {
		if (!results)
			json_object_put(params);
		return get_many_uncached(res, ids, n, ctx, results, err);
	}
	s3db_code rc;
	if (cache_answer(res, &c, json_type_array, NO_EVENTS, NULL, ctx, results, &rc, err))
		return rc;
	rc = get_many_uncached(res, ids, n, ctx, results, err);
	cache_end(&c, rc == S3DB_OK ? *results : NULL);
	return rc;
}

/* count / list / listIds take no parameters in their keys: a window
 * (limit, offset) makes a read uncacheable. */
static int windowed(const s3db_list_opts *opts)
{
	return opts && (opts->limit || opts->offset);
}

s3db_code s3db_list_ids(s3db_resource *res, const s3db_list_opts *opts, char ***ids, size_t *count,
                        s3db_error *err)
{
	*ids = NULL;
	cache_read c;
	if (windowed(opts) || !cache_begin(res, &c, "listIds", NULL, opts))
		return list_ids_uncached(res, opts, ids, count, err);
	json_object *hit;
	if (cache_lookup(res, &c, json_type_array, &hit)) {
		strv v;
		strv_init(&v);
		size_t n = json_object_array_length(hit);
		int bad = 0;
		for (size_t i = 0; i < n && !bad; i++)
			bad = strv_push(&v, json_object_get_string(json_object_array_get_idx(hit, i)));
		json_object_put(hit);
		cache_end(&c, NULL);
		if (bad || !(*ids = strv_steal(&v))) {
			strv_free(&v);
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		}
		if (count)
			*count = n;
		return S3DB_OK;
	}
	size_t n = 0;
	s3db_code rc = list_ids_uncached(res, opts, ids, &n, err);
	json_object *arr = NULL;
	if (rc == S3DB_OK) {
		arr = json_object_new_array_ext((int)n);
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, json_object_new_string((*ids)[i]));
		if (count)
			*count = n;
	}
	cache_end(&c, arr);
	json_object_put(arr);
	return rc;
}

s3db_code s3db_count(s3db_resource *res, const s3db_list_opts *opts, size_t *count,
                     const s3db_ctx *ctx, s3db_error *err)
{
	const schema *s;
	*count = 0;
	cache_read c;
	if (need_schema(res, &s, err) != S3DB_OK || windowed(opts) ||
	    !cache_begin(res, &c, "count", NULL, opts))
		return count_uncached(res, opts, count, ctx, err);
	json_object *hit;
	s3db_code rc;
	if (cache_lookup(res, &c, json_type_int, &hit) && json_object_get_int64(hit) >= 0) {
		rc = cached_events(res, S3DB_EV_BEFORE_COUNT, NULL, NULL, ctx, err);
		if (rc == S3DB_OK)
			*count = (size_t)json_object_get_int64(hit);
		json_object_put(hit);
		cache_end(&c, NULL);
		return rc;
	}
	json_object_put(hit);
	rc = count_uncached(res, opts, count, ctx, err);
	json_object *v = rc == S3DB_OK ? json_object_new_int64((int64_t)*count) : NULL;
	cache_end(&c, v);
	json_object_put(v);
	return rc;
}

s3db_code s3db_list(s3db_resource *res, const s3db_list_opts *opts, const s3db_ctx *ctx,
                    json_object **records, s3db_error *err)
{
	const schema *s;
	*records = NULL;
	cache_read c;
	if (need_schema(res, &s, err) != S3DB_OK || windowed(opts) ||
	    !cache_begin(res, &c, "list", NULL, opts))
		return list_uncached(res, opts, ctx, records, err);
	s3db_code rc;
	if (cache_answer(res, &c, json_type_array, S3DB_EV_BEFORE_LIST, NULL, ctx, records, &rc, err))
		return rc;
	rc = list_uncached(res, opts, ctx, records, err);
	cache_end(&c, rc == S3DB_OK ? *records : NULL);
	return rc;
}

s3db_code s3db_page(s3db_resource *res, size_t page, size_t page_size, const s3db_list_opts *opts,
                    const s3db_ctx *ctx, json_object **out, s3db_error *err)
{
	*out = NULL;
	json_object *params = json_object_new_object();
	json_object_object_add(params, "page", json_object_new_int64((int64_t)page));
	json_object_object_add(params, "size", json_object_new_int64((int64_t)page_size));
	cache_read c;
	if (page_size == 0 || !cache_begin(res, &c, "page", params, opts)) {
		if (page_size == 0)
			json_object_put(params);
		return page_uncached(res, page, page_size, opts, ctx, out, err);
	}
	s3db_code rc;
	if (cache_answer(res, &c, json_type_object, NO_EVENTS, NULL, ctx, out, &rc, err))
		return rc;
	rc = page_uncached(res, page, page_size, opts, ctx, out, err);
	cache_end(&c, rc == S3DB_OK ? *out : NULL);
	return rc;
}

s3db_code s3db_query(s3db_resource *res, json_object *filter, const s3db_list_opts *opts,
                     const s3db_ctx *ctx, json_object **records, s3db_error *err)
{
	*records = NULL;
	if (filter && !json_object_is_type(filter, json_type_object))
		return query_uncached(res, filter, opts, ctx, records, err);
	json_object *params = json_object_new_object(), *options = json_object_new_object();
	json_object *f = NULL;
	if (filter && json_object_deep_copy(filter, &f, NULL) != 0)
		f = NULL;
	json_object_object_add(params, "filter", f ? f : json_object_new_object());
	if (opts && opts->limit)
		json_object_object_add(options, "limit", json_object_new_int64((int64_t)opts->limit));
	if (opts && opts->offset)
		json_object_object_add(options, "offset", json_object_new_int64((int64_t)opts->offset));
	json_object_object_add(params, "options", options);
	cache_read c;
	if (!cache_begin(res, &c, "query", params, opts))
		return query_uncached(res, filter, opts, ctx, records, err);
	s3db_code rc;
	if (cache_answer(res, &c, json_type_array, NO_EVENTS, NULL, ctx, records, &rc, err))
		return rc;
	rc = query_uncached(res, filter, opts, ctx, records, err);
	cache_end(&c, rc == S3DB_OK ? *records : NULL);
	return rc;
}

/* {"buffer":{"type":"Buffer","data":[bytes]},"contentType":..} — what
 * JSON.stringify makes of s3db.js's content() result. */
static json_object *content_to_json(const void *data, size_t len, const char *content_type)
{
	json_object *bytes = json_object_new_array_ext((int)len), *buf = json_object_new_object();
	for (size_t i = 0; i < len; i++)
		json_object_array_add(bytes, json_object_new_int(((const unsigned char *)data)[i]));
	json_object_object_add(buf, "type", json_object_new_string("Buffer"));
	json_object_object_add(buf, "data", bytes);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "buffer", buf);
	json_object_object_add(o, "contentType",
	                       content_type ? json_object_new_string(content_type) : NULL);
	return o;
}

/* The bytes of content_to_json's form; 0, or -1 when v is not that form. */
static int content_from_json(json_object *v, void **data, size_t *len, char **content_type)
{
	json_object *buf = NULL, *bytes = NULL;
	if (!v || !json_object_object_get_ex(v, "buffer", &buf) ||
	    !json_object_object_get_ex(buf, "data", &bytes) ||
	    !json_object_is_type(bytes, json_type_array))
		return -1;
	size_t n = json_object_array_length(bytes);
	unsigned char *out = malloc(n + 1);
	if (!out)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int64_t b = json_object_get_int64(json_object_array_get_idx(bytes, i));
		if (b < 0 || b > 255) {
			free(out);
			return -1;
		}
		out[i] = (unsigned char)b;
	}
	out[n] = '\0';
	*data = out;
	*len = n;
	if (content_type)
		*content_type = s3db_strdup(s3db_json_get_string(v, "contentType"));
	return 0;
}

s3db_code s3db_get_content(s3db_resource *res, const char *id, void **data, size_t *len,
                           char **content_type, s3db_error *err)
{
	*data = NULL;
	*len = 0;
	if (content_type)
		*content_type = NULL;
	cache_read c;
	if (check_id_read(res, id, err) != S3DB_OK ||
	    !cache_begin(res, &c, "content", id_params(id), NULL))
		return get_content_uncached(res, id, data, len, content_type, err);
	json_object *hit;
	if (cache_lookup(res, &c, json_type_object, &hit) &&
	    content_from_json(hit, data, len, content_type) == 0) {
		json_object_put(hit);
		cache_end(&c, NULL);
		return S3DB_OK;
	}
	json_object_put(hit);
	char *ctype = NULL;
	s3db_code rc = get_content_uncached(res, id, data, len, &ctype, err);
	json_object *v = rc == S3DB_OK && *len <= CACHE_CONTENT_MAX
	                 ? content_to_json(*data, *len, ctype) : NULL;
	cache_end(&c, v);
	json_object_put(v);
	if (content_type)
		*content_type = ctype;
	else
		free(ctype);
	return rc;
}
