/*
 * cache_body.c — encoding and decoding of S3 cache object bodies
 * (contract and format: cache_body.h).
 *
 * The body is written with s3db_json_stringify, i.e. JSON.stringify byte
 * for byte, members in the order s3db.js adds them, so an object written
 * here equals the one s3db.js writes for the same result and clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>
#include "cache_body.h"
#include "codec.h"
#include "util.h"

#define GCM_IV 12
#define GCM_TAG 16
#define KDF_SALT "s3dbfs/CachePlugin"
#define KDF_ITERATIONS 100000

int cache_crypto_derive(cache_crypto *c, const char *passphrase)
{
	memset(c, 0, sizeof *c);
	if (!passphrase || !*passphrase)
		return -1;
	if (!PKCS5_PBKDF2_HMAC(passphrase, (int)strlen(passphrase), (const unsigned char *)KDF_SALT,
	                       (int)strlen(KDF_SALT), KDF_ITERATIONS, EVP_sha256(), 32, c->key))
		return -1;
	c->on = 1;
	return 0;
}

/* Runs zlib over in; gzip: 1 to deflate with a gzip wrapper, 0 to inflate
 * gzip or zlib streams. */
static int zlib_run(int gzip, const void *in, size_t len, unsigned char **out, size_t *out_len)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	int rc = gzip ? deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	                             Z_DEFAULT_STRATEGY)
	              : inflateInit2(&zs, 15 + 32);
	if (rc != Z_OK)
		return -1;
	size_t cap = gzip ? deflateBound(&zs, (uLong)len) + 32 : len * 4 + 64;
	unsigned char *buf = malloc(cap);
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	int done = 0, failed = !buf;
	while (!failed && !done) {
		if (zs.total_out == cap) {
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb) {
				failed = 1;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		zs.next_out = buf + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out);
		rc = gzip ? deflate(&zs, Z_FINISH) : inflate(&zs, Z_FINISH);
		if (rc == Z_STREAM_END)
			done = 1;
		else if (rc != Z_OK && rc != Z_BUF_ERROR)
			failed = 1;
		else if (rc == Z_BUF_ERROR && zs.avail_out > 0)
			failed = 1; /* truncated input */
	}
	if (gzip)
		deflateEnd(&zs);
	else
		inflateEnd(&zs);
	if (failed) {
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = zs.total_out;
	return 0;
}

int cache_gzip(const void *in, size_t len, unsigned char **out, size_t *out_len)
{
	return zlib_run(1, in, len, out, out_len);
}

int cache_gunzip(const void *in, size_t len, unsigned char **out, size_t *out_len)
{
	return zlib_run(0, in, len, out, out_len);
}

void cache_ratio_text(size_t num, size_t den, char *buf, size_t size)
{
	double x = den ? (double)num / (double)den : 0;
	char exact[512];
	snprintf(exact, sizeof exact, "%.60f", x); /* glibc prints the exact value */
	char *dot = strchr(exact, '.');
	long long whole = atoll(exact);
	int cents = (dot[1] - '0') * 10 + (dot[2] - '0');
	if (dot[3] >= '5') /* half or more: toFixed rounds up */
		cents++;
	if (cents == 100) {
		whole++;
		cents = 0;
	}
	snprintf(buf, size, "%lld.%02d", whole, cents);
}

/* AES-256-GCM over in with aad; *out = iv || ct || tag (malloc'd). */
static int seal(const cache_crypto *c, const char *aad, const unsigned char *in, size_t len,
                unsigned char **out, size_t *out_len)
{
	unsigned char *buf = malloc(GCM_IV + len + GCM_TAG);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok = buf && ctx && RAND_bytes(buf, GCM_IV) == 1 &&
	                EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, c->key, buf) == 1;
	if (ok && aad)
		ok = EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1;
	ok = ok && EVP_EncryptUpdate(ctx, buf + GCM_IV, &n, in, (int)len) == 1 &&
	     EVP_EncryptFinal_ex(ctx, buf + GCM_IV + n, &n) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, buf + GCM_IV + len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = GCM_IV + len + GCM_TAG;
	return 0;
}

/* Opens iv || ct || tag; *out malloc'd (NUL-terminated). -1 on failure. */
static int unseal(const cache_crypto *c, const char *aad, const unsigned char *in, size_t len,
                  unsigned char **out, size_t *out_len)
{
	if (len < GCM_IV + GCM_TAG)
		return -1;
	size_t ct_len = len - GCM_IV - GCM_TAG;
	unsigned char *buf = malloc(ct_len + 1);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok = buf && ctx &&
	                EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, c->key, in) == 1;
	if (ok && aad)
		ok = EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1;
	ok = ok && EVP_DecryptUpdate(ctx, buf, &n, in + GCM_IV, (int)ct_len) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG,
	                         (void *)(in + GCM_IV + ct_len)) == 1 &&
	     EVP_DecryptFinal_ex(ctx, buf + n, &n) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		free(buf);
		return -1;
	}
	buf[ct_len] = '\0';
	*out = buf;
	*out_len = ct_len;
	return 0;
}

/* The "data" member: the text itself, or base64 of its gzip and/or
 * sealed form.  *compressed says whether gzip was applied. */
static s3db_code make_data(const char *text, size_t text_len, int compress,
                           const cache_body_opts *o, char **data, s3db_error *err)
{
	int encrypt = o->crypto && o->crypto->on;
	if (!compress && !encrypt) {
		*data = strdup(text);
		return *data ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	unsigned char *bytes = (unsigned char *)text, *gz = NULL, *sealed = NULL;
	size_t n = text_len;
	if (compress) {
		if (cache_gzip(text, text_len, &gz, &n))
			return s3db_error_set(err, S3DB_ERR_INTERNAL, "CachePlugin: gzip failed");
		bytes = gz;
	}
	if (encrypt) {
		if (seal(o->crypto, o->aad, bytes, n, &sealed, &n)) {
			free(gz);
			return s3db_error_set(err, S3DB_ERR_CRYPTO, "CachePlugin: encryption failed");
		}
		bytes = sealed;
	}
	*data = codec_base64_encode(bytes, n);
	free(gz);
	free(sealed);
	return *data ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

s3db_code cache_body_encode(json_object *result, const cache_body_opts *o, char **body,
                            size_t *len, const char **content_type, s3db_error *err)
{
	*body = NULL;
	char *text = s3db_json_stringify(result, 0);
	if (!text)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	size_t chars = s3db_utf16_len(text);
	int compress = o->compression && chars >= CACHE_BODY_COMPRESS_MIN;
	int encrypt = o->crypto && o->crypto->on;
	char *data = NULL;
	s3db_code rc = make_data(text, strlen(text), compress, o, &data, err);
	free(text);
	if (rc != S3DB_OK)
		return rc;
	json_object *b = json_object_new_object();
	size_t data_len = strlen(data);
	json_object_object_add(b, "data", json_object_new_string_len(data, (int)data_len));
	free(data);
	json_object_object_add(b, "compressed", json_object_new_boolean(compress));
	json_object_object_add(b, "originalSize", json_object_new_int64((int64_t)chars));
	if (compress) {
		char ratio[64];
		cache_ratio_text(data_len, chars, ratio, sizeof ratio);
		json_object_object_add(b, "compressedSize", json_object_new_int64((int64_t)data_len));
		json_object_object_add(b, "compressionRatio", json_object_new_string(ratio));
	}
	if (encrypt)
		json_object_object_add(b, "encrypted", json_object_new_string("aes-256-gcm"));
	if (o->ttl_ms > 0) {
		int64_t secs = (o->ttl_ms + 999) / 1000;
		json_object_object_add(b, "_expiresAt", json_object_new_int64(o->now_ms + secs * 1000));
	}
	*body = s3db_json_stringify(b, 0);
	json_object_put(b);
	if (!*body)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	*len = strlen(*body);
	*content_type = encrypt ? "application/octet-stream"
	                        : compress ? "application/gzip" : "application/json";
	return S3DB_OK;
}

/* The stored bytes of data, undone: base64, then unsealed, then gunzipped
 * as the flags say; *text malloc'd. */
static s3db_code open_data(const char *data, int compressed, int encrypted,
                           const cache_crypto *crypto, const char *aad, char **text,
                           s3db_error *err)
{
	if (!compressed && !encrypted) {
		*text = strdup(data);
		return *text ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	size_t n = 0;
	unsigned char *raw = codec_base64_decode_strict(data, &n), *plain = NULL, *gz = NULL;
	if (!raw)
		return s3db_error_set(err, S3DB_ERR_CORRUPT, "CachePlugin: data is not base64");
	unsigned char *bytes = raw;
	s3db_code rc = S3DB_OK;
	if (encrypted) {
		if (!crypto || !crypto->on)
			rc = s3db_error_set(err, S3DB_ERR_CRYPTO,
			                    "CachePlugin: an encrypted entry and no encryption key");
		else if (unseal(crypto, aad, raw, n, &plain, &n))
			rc = s3db_error_set(err, S3DB_ERR_CRYPTO,
			                    "CachePlugin: an entry does not decrypt with this key");
		bytes = plain;
	}
	if (rc == S3DB_OK && compressed) {
		if (cache_gunzip(bytes, n, &gz, &n))
			rc = s3db_error_set(err, S3DB_ERR_CORRUPT, "CachePlugin: data is not gzip");
		bytes = gz;
	}
	if (rc == S3DB_OK && !(*text = s3db_strndup((const char *)bytes, n)))
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	free(raw);
	free(plain);
	free(gz);
	return rc;
}

s3db_code cache_body_decode(const char *body, size_t len, int64_t now_ms,
                            const cache_crypto *crypto, const char *aad, json_object **result,
                            int *expired, s3db_error *err)
{
	*result = NULL;
	*expired = 0;
	json_object *b = NULL;
	s3db_code rc = s3db_json_parse(body, len, &b, err);
	if (rc != S3DB_OK)
		return s3db_error_set(err, S3DB_ERR_CORRUPT, "CachePlugin: body is not JSON");
	json_object *exp = NULL, *comp = NULL;
	if (!json_object_object_get_ex(b, "_expiresAt", &exp))
		json_object_object_get_ex(b, "_expiresat", &exp);
	const char *data = s3db_json_get_string(b, "data");
	if (exp && json_object_get_int64(exp) < now_ms) {
		*expired = 1;
	} else if (!data) {
		rc = s3db_error_set(err, S3DB_ERR_CORRUPT, "CachePlugin: body has no \"data\"");
	} else {
		json_object_object_get_ex(b, "compressed", &comp);
		int encrypted = s3db_json_get_string(b, "encrypted") != NULL;
		char *text = NULL;
		rc = open_data(data, comp && json_object_get_boolean(comp), encrypted, crypto, aad,
		               &text, err);
		if (rc == S3DB_OK) {
			rc = s3db_json_parse(text, strlen(text), result, err);
			if (rc != S3DB_OK)
				rc = s3db_error_set(err, S3DB_ERR_CORRUPT, "CachePlugin: data is not JSON");
		}
		free(text);
	}
	json_object_put(b);
	return rc;
}
