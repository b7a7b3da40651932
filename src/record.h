/*
 * record.h — one record <-> one object: the mapping of spec §3 and §4.
 *
 * Encoding takes a validated record (schema_validate's output, without
 * id) and produces the user metadata, the body and its content type, as
 * the resource's behavior decides (user-managed, enforce-limits,
 * truncate-data, body-overflow, body-only).  Decoding takes an object as
 * the store returned it (metadata already RFC 2047-decoded) and gives the
 * record back as s3db.js's get() would, minus s3db.js's read defects.
 *
 * Invariants of what record_encode writes:
 *  - every header value is printable ASCII (metadataEncode, W2);
 *  - keys + values of the metadata fit STORE_METADATA_LIMIT - 1 (2047)
 *    or the call fails (never a PUT that AWS would refuse);
 *  - metadata and body never hold the same field (body-overflow);
 *  - a JSON body gets Content-Type application/json.
 */
#ifndef S3DB_RECORD_H
#define S3DB_RECORD_H

#include "schema.h"
#include "store.h"
#include "util.h"

/* The budget s3db.js works with (user metadata, keys + values). */
#define RECORD_METADATA_LIMIT 2047

typedef struct record_encoded {
	store_meta meta;
	sbuf body;
	const char *content_type;  /* static string or NULL */
	int truncated;             /* truncate-data cut something */
	int overflowed;            /* body-overflow moved fields */
} record_encoded;

void record_encoded_init(record_encoded *e);
void record_encoded_free(record_encoded *e);

/* Encodes `data` (validated, without id) for resource schema s.
 * passphrase: for secret fields (values already envelopes are kept).
 * Errors: S3DB_ERR_METADATA_TOO_LARGE (enforce-limits, or a field too
 * large to place anywhere), S3DB_ERR_CRYPTO. */
s3db_code record_encode(const schema *s, json_object *data, const char *id,
                        const char *passphrase, record_encoded *out, s3db_error *err);

/* Decodes an object into a new record object (caller puts it).
 *   s:          the schema to decode with (for v7 the schema of the
 *               object's _v version, see record_object_version)
 *   v74:        1 when the bucket was last written by s3db.js 7.4.1+
 *               (v7 non-ASCII values are unprefixed base64)
 * The record's keys come in schema order, "id" first.  For v7 objects
 * whose short keys collide after S3's case folding (B.4) and that no body
 * settles, the affected paths are left out and listed in a trailing
 * "$ambiguous" array (a '$' key: never written back). */
s3db_code record_decode(const schema *s, const store_object *obj, const char *id,
                        const char *passphrase, int v74, json_object **out,
                        s3db_error *err);

/* The _v of an object ("v1"), or NULL; borrowed from obj. */
const char *record_object_version(const store_object *obj);

/* 1 when the object's body is binary content (not a JSON object). */
int record_body_is_binary(const store_object *obj);
/* The object's body parsed, when it is a JSON object (the caller owns
 * it: json_object_put); NULL when there is no body or it is binary
 * content. */
json_object *record_body_json(const store_object *obj);

/* The sanitised, lower-cased header key for a field name (§3.11). */
char *record_header_key(const char *name);

#endif
