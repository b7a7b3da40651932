/*
 * secret.c — s3db's secret fields: AES-256-GCM under a PBKDF2-HMAC-SHA256
 * key (spec §3.8, §5.5), with OpenSSL.
 *
 *   stored = base64( salt[16] || iv[12] || ciphertext || tag[16] )
 *   key    = PBKDF2-HMAC-SHA256(passphrase, salt, 100000, 32 bytes)
 *
 * Every record carries its own random salt, so a key is derived per
 * (passphrase, salt) — 100,000 HMAC rounds, tens of milliseconds.  Reading
 * the same records again should not pay that again, so derived keys are
 * kept in a small cache:
 *   - keyed by (SHA-256 of the passphrase, salt); the passphrase itself is
 *     never stored;
 *   - at most SECRET_CACHE_SIZE entries; the least recently used one is
 *     evicted, and its key wiped with OPENSSL_cleanse;
 *   - one mutex guards it; it is never held while deriving, so two
 *     threads may derive the same key at once (harmless: same result).
 * Invariant: an entry with used == 0 is empty and its bytes are zero.
 *
 * Every buffer that held a key or plaintext is wiped before it is freed.
 * Messages never contain the passphrase, keys or plaintext.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "codec.h"
#include "secret.h"
#include "util.h"

#define SALT_LEN 16
#define IV_LEN 12
#define TAG_LEN 16
#define KEY_LEN 32
#define PBKDF2_ITERATIONS 100000
#define SECRET_CACHE_SIZE 256

typedef struct key_entry {
	unsigned char pass_hash[SHA256_DIGEST_LENGTH];
	unsigned char salt[SALT_LEN];
	unsigned char key[KEY_LEN];
	uint64_t used;  /* last use (a tick); 0 = empty slot */
} key_entry;

static key_entry key_cache[SECRET_CACHE_SIZE];
static size_t key_capacity = SECRET_CACHE_SIZE;  /* slots in use: [0, capacity) */
static uint64_t key_tick;
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;

/* Copies a cached key into key; 1 when found. */
static int cache_get(const unsigned char *ph, const unsigned char *salt, unsigned char *key)
{
	int found = 0;
	pthread_mutex_lock(&key_lock);
	for (size_t i = 0; i < key_capacity; i++) {
		key_entry *e = &key_cache[i];
		if (e->used && memcmp(e->salt, salt, SALT_LEN) == 0 &&
		    CRYPTO_memcmp(e->pass_hash, ph, sizeof e->pass_hash) == 0) {
			memcpy(key, e->key, KEY_LEN);
			e->used = ++key_tick;
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&key_lock);
	return found;
}

/* Stores a key, evicting (and wiping) the least recently used entry. */
static void cache_put(const unsigned char *ph, const unsigned char *salt, const unsigned char *key)
{
	pthread_mutex_lock(&key_lock);
	key_entry *victim = &key_cache[0];
	for (size_t i = 0; i < key_capacity; i++) {
		key_entry *e = &key_cache[i];
		if (e->used && memcmp(e->salt, salt, SALT_LEN) == 0 &&
		    CRYPTO_memcmp(e->pass_hash, ph, sizeof e->pass_hash) == 0) {
			victim = e;  /* derived twice concurrently: refresh */
			break;
		}
		if (e->used < victim->used)
			victim = e;
	}
	OPENSSL_cleanse(victim, sizeof *victim);
	memcpy(victim->pass_hash, ph, sizeof victim->pass_hash);
	memcpy(victim->salt, salt, SALT_LEN);
	memcpy(victim->key, key, KEY_LEN);
	victim->used = ++key_tick;
	pthread_mutex_unlock(&key_lock);
}

void secret_cache_clear(void)
{
	pthread_mutex_lock(&key_lock);
	OPENSSL_cleanse(key_cache, sizeof key_cache);
	key_tick = 0;
	pthread_mutex_unlock(&key_lock);
}

void secret_cache_set_capacity(size_t n)
{
	if (n < 1)
		n = 1;
	if (n > SECRET_CACHE_SIZE)
		n = SECRET_CACHE_SIZE;
	pthread_mutex_lock(&key_lock);
	for (size_t i = n; i < SECRET_CACHE_SIZE; i++)
		OPENSSL_cleanse(&key_cache[i], sizeof key_cache[i]);
	key_capacity = n;
	pthread_mutex_unlock(&key_lock);
}

size_t secret_cache_count(void)
{
	size_t n = 0;
	pthread_mutex_lock(&key_lock);
	for (size_t i = 0; i < SECRET_CACHE_SIZE; i++)
		if (key_cache[i].used)
			n++;
	pthread_mutex_unlock(&key_lock);
	return n;
}

/* The AES key for (passphrase, salt), from the cache or PBKDF2. */
static s3db_code derive_key(const char *passphrase, const unsigned char *salt,
                            unsigned char key[KEY_LEN], s3db_error *err)
{
	unsigned char ph[SHA256_DIGEST_LENGTH];
	size_t plen = strlen(passphrase);
	if (!SHA256((const unsigned char *)passphrase, plen, ph))
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "secret: SHA-256 failed");
	if (cache_get(ph, salt, key)) {
		OPENSSL_cleanse(ph, sizeof ph);
		return S3DB_OK;
	}
	if (plen > INT32_MAX ||
	    PKCS5_PBKDF2_HMAC(passphrase, (int)plen, salt, SALT_LEN, PBKDF2_ITERATIONS,
	                      EVP_sha256(), KEY_LEN, key) != 1) {
		OPENSSL_cleanse(ph, sizeof ph);
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "secret: key derivation failed");
	}
	cache_put(ph, salt, key);
	OPENSSL_cleanse(ph, sizeof ph);
	return S3DB_OK;
}

s3db_code secret_encrypt(const char *passphrase, const char *plaintext,
                         const unsigned char *salt_iv, char **out, s3db_error *err)
{
	*out = NULL;
	if (!passphrase || !plaintext)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "secret: missing passphrase or value");
	size_t n = strlen(plaintext);
	if (n > INT32_MAX - SALT_LEN - IV_LEN - TAG_LEN)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "secret: value too large");
	size_t total = SALT_LEN + IV_LEN + n + TAG_LEN;
	unsigned char *buf = malloc(total);
	if (!buf)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "secret: out of memory");
	unsigned char *salt = buf, *iv = buf + SALT_LEN, *ct = iv + IV_LEN, *tag = ct + n;
	if (salt_iv) {
		memcpy(buf, salt_iv, SALT_LEN + IV_LEN);
	} else if (RAND_bytes(buf, SALT_LEN + IV_LEN) != 1) {
		free(buf);
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "secret: no random bytes");
	}
	unsigned char key[KEY_LEN];
	s3db_code rc = derive_key(passphrase, salt, key, err);
	if (rc != S3DB_OK) {
		free(buf);
		return rc;
	}
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0;
	int ok = ctx &&
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
		EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) == 1 &&
		EVP_EncryptUpdate(ctx, ct, &len, (const unsigned char *)plaintext, (int)n) == 1 &&
		EVP_EncryptFinal_ex(ctx, ct + len, &fin) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(key, sizeof key);
	if (!ok) {
		OPENSSL_cleanse(buf, total);
		free(buf);
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "secret: AES-256-GCM encryption failed");
	}
	*out = codec_base64_encode(buf, total);
	OPENSSL_cleanse(buf, total);
	free(buf);
	if (!*out)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "secret: out of memory");
	return S3DB_OK;
}

/* Decrypts the envelope bytes; S3DB_ERR_CRYPTO on a bad tag. */
static s3db_code open_envelope(const char *passphrase, const unsigned char *raw, size_t n,
                               char **plaintext, s3db_error *err)
{
	const unsigned char *salt = raw, *iv = raw + SALT_LEN, *ct = iv + IV_LEN;
	size_t ctlen = n - SALT_LEN - IV_LEN - TAG_LEN;
	const unsigned char *tag = ct + ctlen;
	if (ctlen > INT32_MAX)
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "secret: value too large");
	unsigned char key[KEY_LEN];
	s3db_code rc = derive_key(passphrase, salt, key, err);
	if (rc != S3DB_OK)
		return rc;
	unsigned char *pt = malloc(ctlen + 1);
	if (!pt) {
		OPENSSL_cleanse(key, sizeof key);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "secret: out of memory");
	}
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0;
	int ok = ctx &&
		EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
		EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) == 1 &&
		EVP_DecryptUpdate(ctx, pt, &len, ct, (int)ctlen) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)tag) == 1 &&
		EVP_DecryptFinal_ex(ctx, pt + len, &fin) == 1;
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(key, sizeof key);
	if (!ok) {
		OPENSSL_cleanse(pt, ctlen + 1);
		free(pt);
		return s3db_error_set(err, S3DB_ERR_CRYPTO,
		                      "secret: cannot decrypt (wrong passphrase or damaged value)");
	}
	/* Node reads the bytes as UTF-8, replacing ill-formed sequences */
	char *text = codec_utf8_sanitize((const char *)pt, ctlen);
	OPENSSL_cleanse(pt, ctlen + 1);
	free(pt);
	if (!text)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "secret: out of memory");
	*plaintext = text;
	return S3DB_OK;
}

s3db_code secret_decrypt(const char *passphrase, const char *stored,
                         char **plaintext, s3db_error *err)
{
	*plaintext = NULL;
	if (!passphrase || !stored)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "secret: missing passphrase or value");
	size_t n;
	unsigned char *raw = codec_base64_decode(stored, &n);
	if (!raw)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "secret: out of memory");
	s3db_code rc;
	if (n < SALT_LEN + IV_LEN + TAG_LEN)
		rc = s3db_error_set(err, S3DB_ERR_CRYPTO,
		                    "secret: not an encrypted value (%zu bytes, need at least %d)",
		                    n, SALT_LEN + IV_LEN + TAG_LEN);
	else
		rc = open_envelope(passphrase, raw, n, plaintext, err);
	free(raw);
	return rc;
}

int secret_is_envelope(const char *passphrase, const char *stored)
{
	if (!passphrase || !stored)
		return 0;
	/* s3db.js writes canonical base64; anything else is not one of its
	 * envelopes, and need not cost a key derivation. */
	size_t n;
	unsigned char *raw = codec_base64_decode_strict(stored, &n);
	if (!raw)
		return 0;
	int yes = 0;
	if (n >= SALT_LEN + IV_LEN + TAG_LEN) {
		char *pt = NULL;
		if (open_envelope(passphrase, raw, n, &pt, NULL) == S3DB_OK) {
			yes = 1;
			OPENSSL_cleanse(pt, strlen(pt));
			free(pt);
		}
	}
	free(raw);
	return yes;
}
