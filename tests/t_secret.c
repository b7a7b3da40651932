/*
 * t_secret.c — tests of secret.c: the four vectors of spec §5.5 (V4 is
 * encrypted with its fixed salt and iv and compared byte for byte), the
 * secrets of the golden dumps written by s3db.js 21.6.2 and 7.x, error
 * cases, and the cache of derived keys (hits, LRU eviction, threads).
 *
 * Each key derivation costs 100,000 PBKDF2 rounds, so the tests use few
 * distinct (passphrase, salt) pairs.
 */
#include <atf-c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secret.h"

static const char V1[] =
	"0/ZiFqmDFw/pjDiwqbviSafN7C+APf5soHlh+hF6naLu+8XsvwBAqqC3Jh+wxsXlx4/NU593lC6u8+kV";
static const char V2[] =
	"YDSjL7rDnCh44l5B5PJSmykGEp0Yb/ptXYogCN3FKg46381qhJLV3WD6ROi+jKMyxk1Z";
static const char V3[] =
	"HpiKou+lL1OGekzhL1AdtLY1unHU4YHRqyKyHMd6j6NgX+la1/amrfBaZUllSTmj/Ga2yXM=";
static const char V4[] =
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaG8UMz7nYlxCLW6GFSyKmk0ivOMEagX5G";

/* salt 00..0f, iv 10..1b */
static const unsigned char V4_SALT_IV[28] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
	0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
};

/* Decrypts and compares; fails the test with the message otherwise. */
static void check_decrypts(const char *pass, const char *stored, const char *want)
{
	s3db_error err = { 0 };
	char *pt = NULL;
	s3db_code rc = secret_decrypt(pass, stored, &pt, &err);
	ATF_CHECK_MSG(rc == S3DB_OK, "decrypt(%.20s...): %s", stored, err.message);
	if (rc == S3DB_OK)
		ATF_CHECK_MSG(strcmp(pt, want) == 0, "decrypt(%.20s...) = \"%s\", want \"%s\"",
		              stored, pt, want);
	free(pt);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

ATF_TC_WITHOUT_HEAD(decrypts_vector_v1_written_by_v7);
ATF_TC_BODY(decrypts_vector_v1_written_by_v7, tc)
{
	check_decrypts("my-passphrase", V1, "top-secret-value");
}

ATF_TC_WITHOUT_HEAD(decrypts_vector_v2_written_by_21_6_2);
ATF_TC_BODY(decrypts_vector_v2_written_by_21_6_2, tc)
{
	check_decrypts("my-passphrase", V2, "hunter2");
}

ATF_TC_WITHOUT_HEAD(decrypts_vector_v3_to_undefined_with_default_passphrase);
ATF_TC_BODY(decrypts_vector_v3_to_undefined_with_default_passphrase, tc)
{
	check_decrypts("secret", V3, "undefined");
}

ATF_TC_WITHOUT_HEAD(encrypts_vector_v4_byte_for_byte);
ATF_TC_BODY(encrypts_vector_v4_byte_for_byte, tc)
{
	s3db_error err = { 0 };
	char *out = NULL;
	ATF_REQUIRE_MSG(secret_encrypt("my-passphrase", "hunter2", V4_SALT_IV, &out, &err) == S3DB_OK,
	                "%s", err.message);
	ATF_CHECK_STREQ(out, V4);
	free(out);
	check_decrypts("my-passphrase", V4, "hunter2");
}

ATF_TC_WITHOUT_HEAD(decrypts_golden_dump_secrets);
ATF_TC_BODY(decrypts_golden_dump_secrets, tc)
{
	/* latest-21.6.2 demo users: absent passwords (R8), passphrase "secret" */
	check_decrypts("secret",
	               "SJV4nElP6lxXu1sy6yq5IKRYkoNhZ7wSdBgB4HnDJs3CqEd6LBzICv/tSPxASjW4hNqkklo=",
	               "undefined");
	check_decrypts("secret",
	               "UZBQGWBUhBflFYLBPaXtEU3EZng1GtsFdgMdFyCGZeYoKp5wToMa6AhOvU1au2ncUrdBVk4=",
	               "undefined");
	/* §8.5: v7.3.5 users/user-1 x-amz-meta-e; v7.4.2 the same user */
	check_decrypts("my-passphrase",
	               "OYZaE27ncwFjfF15QspeRNTP1i2ERw77xd3W1myBwt3D3DvJuRaQgVohsXbEQv6pZnhJ",
	               "hunter2");
	check_decrypts("my-passphrase",
	               "4OLoSNEE8BPOcX4VGetfspvoyjOdyNtf+b/GJDvkOgIH80nDbCvQYdx/OPSmgPv9xFKo",
	               "hunter2");
}

ATF_TC_WITHOUT_HEAD(wrong_passphrase_is_a_crypto_error);
ATF_TC_BODY(wrong_passphrase_is_a_crypto_error, tc)
{
	s3db_error err = { 0 };
	char *pt = (char *)1;
	ATF_CHECK_EQ(secret_decrypt("not-my-passphrase", V2, &pt, &err), S3DB_ERR_CRYPTO);
	ATF_CHECK(pt == NULL);
	ATF_CHECK_EQ(err.code, S3DB_ERR_CRYPTO);
	ATF_CHECK(err.message[0] != '\0');
	ATF_CHECK_MSG(strstr(err.message, "not-my-passphrase") == NULL, "passphrase in message");
	/* s3db.js 21.6.2 ignores a top-level passphrase: its demo secrets
	 * open only with "secret" */
	ATF_CHECK_EQ(secret_decrypt("my-passphrase", V3, &pt, &err), S3DB_ERR_CRYPTO);
}

ATF_TC_WITHOUT_HEAD(non_envelope_is_a_crypto_error);
ATF_TC_BODY(non_envelope_is_a_crypto_error, tc)
{
	static const char *const bad[] = {
		"", "hello", "hunter2", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==",  /* 28 bytes */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKg==",  /* 43 bytes */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		s3db_error err = { 0 };
		char *pt = NULL;
		ATF_CHECK_MSG(secret_decrypt("pw-xyzzy", bad[i], &pt, &err) == S3DB_ERR_CRYPTO,
		              "\"%s\" accepted", bad[i]);
		ATF_CHECK(pt == NULL);
		ATF_CHECK(err.message[0] != '\0' && strstr(err.message, "pw-xyzzy") == NULL);
	}
}

ATF_TC_WITHOUT_HEAD(tampered_envelope_is_a_crypto_error);
ATF_TC_BODY(tampered_envelope_is_a_crypto_error, tc)
{
	/* change one character in the salt, the ciphertext and the tag */
	static const size_t where[] = { 3, 40, 60 };
	for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
		char v[sizeof V4];
		memcpy(v, V4, sizeof V4);
		v[where[i]] = v[where[i]] == 'A' ? 'B' : 'A';
		s3db_error err = { 0 };
		char *pt = NULL;
		ATF_CHECK_MSG(secret_decrypt("my-passphrase", v, &pt, &err) == S3DB_ERR_CRYPTO,
		              "tampered at %zu accepted", where[i]);
		free(pt);
	}
}

ATF_TC_WITHOUT_HEAD(envelope_length_follows_formula);
ATF_TC_BODY(envelope_length_follows_formula, tc)
{
	/* 4 * ceil((44 + n) / 3) characters for n plaintext bytes (§5.5) */
	static const char *const texts[] = { "", "a", "hunter2", "undefined", "null",
	                                     "\346\227\245\346\234\254\350\252\236 \360\237\230\200" };
	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		char *out = NULL;
		s3db_error err = { 0 };
		ATF_REQUIRE(secret_encrypt("my-passphrase", texts[i], V4_SALT_IV, &out, &err) == S3DB_OK);
		size_t n = strlen(texts[i]);
		ATF_CHECK_EQ(strlen(out), 4 * ((44 + n + 2) / 3));
		check_decrypts("my-passphrase", out, texts[i]);
		free(out);
	}
}

ATF_TC_WITHOUT_HEAD(random_salts_make_distinct_envelopes);
ATF_TC_BODY(random_salts_make_distinct_envelopes, tc)
{
	char *a = NULL, *b = NULL;
	s3db_error err = { 0 };
	ATF_REQUIRE(secret_encrypt("pw", "same text", NULL, &a, &err) == S3DB_OK);
	ATF_REQUIRE(secret_encrypt("pw", "same text", NULL, &b, &err) == S3DB_OK);
	ATF_CHECK(strcmp(a, b) != 0);
	ATF_CHECK(strncmp(a, b, 20) != 0);  /* the salts differ */
	check_decrypts("pw", a, "same text");
	check_decrypts("pw", b, "same text");
	free(a);
	free(b);
}

ATF_TC_WITHOUT_HEAD(is_envelope_tells_envelopes_from_plain_values);
ATF_TC_BODY(is_envelope_tells_envelopes_from_plain_values, tc)
{
	ATF_CHECK_EQ(secret_is_envelope("my-passphrase", V4), 1);
	ATF_CHECK_EQ(secret_is_envelope("my-passphrase", V2), 1);
	ATF_CHECK_EQ(secret_is_envelope("secret", V3), 1);
	ATF_CHECK_EQ(secret_is_envelope("wrong", V4), 0);
	ATF_CHECK_EQ(secret_is_envelope("my-passphrase", "hunter2"), 0);
	ATF_CHECK_EQ(secret_is_envelope("my-passphrase", ""), 0);
	ATF_CHECK_EQ(secret_is_envelope(NULL, V4), 0);
	ATF_CHECK_EQ(secret_is_envelope("my-passphrase", NULL), 0);
	/* not canonical base64 (a space inside): not written by s3db.js */
	char v[sizeof V4 + 1];
	snprintf(v, sizeof v, "%.10s %s", V4, V4 + 10);
	ATF_CHECK_EQ(secret_is_envelope("my-passphrase", v), 0);
}

ATF_TC_WITHOUT_HEAD(null_arguments_are_invalid);
ATF_TC_BODY(null_arguments_are_invalid, tc)
{
	s3db_error err = { 0 };
	char *out = (char *)1;
	ATF_CHECK_EQ(secret_encrypt(NULL, "x", NULL, &out, &err), S3DB_ERR_INVALID_ARG);
	ATF_CHECK(out == NULL);
	ATF_CHECK_EQ(secret_encrypt("p", NULL, NULL, &out, &err), S3DB_ERR_INVALID_ARG);
	ATF_CHECK_EQ(secret_decrypt(NULL, V4, &out, &err), S3DB_ERR_INVALID_ARG);
	ATF_CHECK_EQ(secret_decrypt("p", NULL, &out, NULL), S3DB_ERR_INVALID_ARG);
}

ATF_TC_WITHOUT_HEAD(derived_keys_are_cached);
ATF_TC_BODY(derived_keys_are_cached, tc)
{
	secret_cache_clear();
	ATF_CHECK_EQ(secret_cache_count(), 0);
	double t0 = now_ms();
	check_decrypts("my-passphrase", V1, "top-secret-value");
	double first = now_ms() - t0;
	ATF_CHECK_EQ(secret_cache_count(), 1);
	t0 = now_ms();
	for (int i = 0; i < 10; i++)
		check_decrypts("my-passphrase", V1, "top-secret-value");
	double ten = now_ms() - t0;
	ATF_CHECK_EQ(secret_cache_count(), 1);
	ATF_CHECK_MSG(ten < first, "10 cached decrypts took %.2f ms, one derivation %.2f ms", ten, first);
	/* another passphrase with the same salt is another key */
	char *pt = NULL;
	ATF_CHECK_EQ(secret_decrypt("other", V1, &pt, NULL), S3DB_ERR_CRYPTO);
	ATF_CHECK_EQ(secret_cache_count(), 2);
	secret_cache_clear();
	ATF_CHECK_EQ(secret_cache_count(), 0);
	check_decrypts("my-passphrase", V1, "top-secret-value");  /* derives again */
	ATF_CHECK_EQ(secret_cache_count(), 1);
}

ATF_TC_WITHOUT_HEAD(cache_evicts_least_recently_used);
ATF_TC_BODY(cache_evicts_least_recently_used, tc)
{
	secret_cache_clear();
	secret_cache_set_capacity(2);
	check_decrypts("my-passphrase", V1, "top-secret-value");  /* keys: V1        */
	check_decrypts("my-passphrase", V2, "hunter2");           /* keys: V1 V2     */
	check_decrypts("my-passphrase", V1, "top-secret-value");  /* V1 most recent  */
	check_decrypts("my-passphrase", V4, "hunter2");           /* evicts V2       */
	ATF_CHECK_EQ(secret_cache_count(), 2);
	double t0 = now_ms();
	check_decrypts("my-passphrase", V1, "top-secret-value");  /* still cached    */
	double hit = now_ms() - t0;
	t0 = now_ms();
	check_decrypts("my-passphrase", V2, "hunter2");           /* derived again   */
	double miss = now_ms() - t0;
	ATF_CHECK_MSG(hit < miss, "kept key took %.2f ms, evicted key %.2f ms", hit, miss);
	ATF_CHECK_EQ(secret_cache_count(), 2);
	secret_cache_set_capacity(1);
	ATF_CHECK(secret_cache_count() <= 1);
	secret_cache_set_capacity(256);
	secret_cache_clear();
}

struct worker {
	int id;
	int ok;
};

static void *decrypt_worker(void *arg)
{
	struct worker *w = arg;
	static const struct { const char *pass, *stored, *want; } v[] = {
		{ "my-passphrase", V1, "top-secret-value" }, { "my-passphrase", V2, "hunter2" },
		{ "secret", V3, "undefined" }, { "my-passphrase", V4, "hunter2" },
	};
	w->ok = 1;
	for (int i = 0; i < 6; i++) {  /* runs of 3 on one key, 2 keys a thread */
		char *pt = NULL;
		size_t k = (size_t)(i / 3 + w->id) % 4;
		if (secret_decrypt(v[k].pass, v[k].stored, &pt, NULL) != S3DB_OK ||
		    strcmp(pt, v[k].want) != 0)
			w->ok = 0;
		free(pt);
		if (k == 3) {
			char *enc = NULL;
			if (secret_encrypt("my-passphrase", "hunter2", V4_SALT_IV, &enc, NULL) != S3DB_OK ||
			    strcmp(enc, V4) != 0)
				w->ok = 0;
			free(enc);
		}
	}
	return NULL;
}

ATF_TC_WITHOUT_HEAD(concurrent_use_is_consistent);
ATF_TC_BODY(concurrent_use_is_consistent, tc)
{
	secret_cache_clear();
	secret_cache_set_capacity(3);  /* fewer slots than keys: evictions race too */
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i].id = i;
		ATF_REQUIRE(pthread_create(&th[i], NULL, decrypt_worker, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ATF_CHECK_MSG(w[i].ok, "worker %d saw a wrong result", i);
	}
	ATF_CHECK(secret_cache_count() <= 3);
	secret_cache_set_capacity(256);
	secret_cache_clear();
}

ATF_TP_ADD_TCS(tp)
{
	ATF_TP_ADD_TC(tp, decrypts_vector_v1_written_by_v7);
	ATF_TP_ADD_TC(tp, decrypts_vector_v2_written_by_21_6_2);
	ATF_TP_ADD_TC(tp, decrypts_vector_v3_to_undefined_with_default_passphrase);
	ATF_TP_ADD_TC(tp, encrypts_vector_v4_byte_for_byte);
	ATF_TP_ADD_TC(tp, decrypts_golden_dump_secrets);
	ATF_TP_ADD_TC(tp, wrong_passphrase_is_a_crypto_error);
	ATF_TP_ADD_TC(tp, non_envelope_is_a_crypto_error);
	ATF_TP_ADD_TC(tp, tampered_envelope_is_a_crypto_error);
	ATF_TP_ADD_TC(tp, envelope_length_follows_formula);
	ATF_TP_ADD_TC(tp, random_salts_make_distinct_envelopes);
	ATF_TP_ADD_TC(tp, is_envelope_tells_envelopes_from_plain_values);
	ATF_TP_ADD_TC(tp, null_arguments_are_invalid);
	ATF_TP_ADD_TC(tp, derived_keys_are_cached);
	ATF_TP_ADD_TC(tp, cache_evicts_least_recently_used);
	ATF_TP_ADD_TC(tp, concurrent_use_is_consistent);
	return atf_no_error();
}
