/*
 * secret.h — secret fields: AES-256-GCM with a PBKDF2-HMAC-SHA256 key,
 * exactly as s3db.js (v7 and 21.x) stores them (spec §5.5):
 *   stored = base64( salt[16] || iv[12] || ciphertext || tag[16] )
 *   key    = PBKDF2(passphrase, salt, 100000 iterations, 32 bytes)
 * Key derivation is the slow part; derived keys are cached per
 * (passphrase, salt), so re-reading a record does not pay it again.
 */
#ifndef S3DB_SECRET_H
#define S3DB_SECRET_H

#include <stddef.h>
#include "s3db.h"

/* Encrypts plaintext (a NUL-terminated UTF-8 string).  salt_iv: 28 bytes
 * (salt then iv) for deterministic tests, or NULL for fresh random bytes.
 * *out is malloc'd base64.  The passphrase never appears in err. */
s3db_code secret_encrypt(const char *passphrase, const char *plaintext,
                         const unsigned char *salt_iv, char **out, s3db_error *err);
/* Decrypts a stored value; S3DB_ERR_CRYPTO when it is not an envelope or
 * the passphrase is wrong.  *plaintext is malloc'd. */
s3db_code secret_decrypt(const char *passphrase, const char *stored,
                         char **plaintext, s3db_error *err);
/* 1 when stored decrypts with passphrase (s3db.js leaves such values
 * as they are instead of encrypting them twice). */
int secret_is_envelope(const char *passphrase, const char *stored);

/* The cache of derived keys (at most 256, least recently used evicted and
 * wiped).  secret_cache_clear() wipes and empties it (call it when the
 * last database closes); secret_cache_count() says how many keys it
 * holds (for tests). */
void secret_cache_clear(void);
size_t secret_cache_count(void);
/* Limits the cache to n keys (1..256; 256 is the default); entries past
 * the new limit are wiped.  For tests of eviction. */
void secret_cache_set_capacity(size_t n);

#endif
