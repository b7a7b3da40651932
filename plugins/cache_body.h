/*
 * cache_body.h — the body of one S3 cache object (spec §6.2, s3db.js
 * 21.6.2's S3Cache over body-only plugin storage, §6.1):
 *
 *   {"data":"<JSON text of the result>","compressed":false,
 *    "originalSize":<length of that text>,"_expiresAt":<ms>}
 *
 * When compression is on and the JSON text has >= 1024 characters (UTF-16
 * code units, as JavaScript counts): data = base64(gzip(text)),
 * "compressed":true, plus "compressedSize" (the base64 length) and
 * "compressionRatio" (compressedSize / originalSize as toFixed(2) text);
 * Content-Type application/gzip instead of application/json.
 * "_expiresAt" = now + ttl rounded up to whole seconds, only when ttl > 0.
 *
 * Encryption (s3Options.encryption, an s3dbfs extension): the bytes that
 * would go into data (the text, or the gzip stream) are sealed with
 * AES-256-GCM under a 12-byte random IV, with the object's cache key as
 * additional data (an object copied to another key does not open), and
 * data = base64(iv || ciphertext || tag); the body gains
 * "encrypted":"aes-256-gcm" before "_expiresAt" and its Content-Type is
 * application/octet-stream.  The key is PBKDF2-HMAC-SHA256(passphrase,
 * salt "s3dbfs/CachePlugin", 100000 iterations, 32 bytes), derived once at
 * setup.  s3db.js cannot read such objects (it would JSON.parse the
 * ciphertext); it treats them as corrupt entries.
 */
#ifndef S3DB_CACHE_BODY_H
#define S3DB_CACHE_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "s3db.h"

#define CACHE_BODY_COMPRESS_MIN 1024   /* characters, as s3db.js */

typedef struct cache_crypto {
	int on;
	unsigned char key[32];
} cache_crypto;

/* Derives the key from passphrase (see above).  0, or -1 on failure. */
int cache_crypto_derive(cache_crypto *c, const char *passphrase);

typedef struct cache_body_opts {
	int compression;              /* 1: gzip texts >= 1024 characters   */
	int64_t ttl_ms;               /* 0: no _expiresAt                   */
	int64_t now_ms;               /* the clock (tests pass a fixed one)  */
	const cache_crypto *crypto;   /* NULL or !on: clear text            */
	const char *aad;              /* the object's cache key (encryption)*/
} cache_body_opts;

/* Encodes result into *body (malloc'd, NUL-terminated, *len bytes) and
 * *content_type (static text).  S3DB_OK, S3DB_ERR_NOMEM or
 * S3DB_ERR_CRYPTO / S3DB_ERR_INTERNAL (zlib) with err set. */
s3db_code cache_body_encode(json_object *result, const cache_body_opts *o, char **body,
                            size_t *len, const char **content_type, s3db_error *err);

/* Decodes a body: *expired = 1 (and *result NULL) when _expiresAt is
 * before now_ms; else *result (owned by the caller) is the cached value.
 * An encrypted body needs crypto (S3DB_ERR_CRYPTO without it, or when the
 * tag does not verify); a malformed one gives S3DB_ERR_CORRUPT. */
s3db_code cache_body_decode(const char *body, size_t len, int64_t now_ms,
                            const cache_crypto *crypto, const char *aad, json_object **result,
                            int *expired, s3db_error *err);

/* gzip (as Node's zlib.gzip, default level) and gunzip; *out malloc'd.
 * 0, or -1 on failure. */
int cache_gzip(const void *in, size_t len, unsigned char **out, size_t *out_len);
int cache_gunzip(const void *in, size_t len, unsigned char **out, size_t *out_len);

/* (num / den).toFixed(2) as JavaScript prints it (round half up on the
 * exact decimal value of the double) into buf (>= 32 bytes). */
void cache_ratio_text(size_t num, size_t den, char *buf, size_t size);

#endif
