/*
 * sigv4.h — AWS Signature Version 4 for S3, as pure functions.
 *
 * The signer takes everything it depends on as input — method, canonical
 * URI, canonical query, the headers to sign, the payload hash, the keys,
 * region, service and the request time — so that tests can replay AWS's
 * published examples with a fixed date, and so that a verifier (a test
 * front that checks signatures) can rebuild the same canonical request
 * from what it received and compare signatures with sigv4_equal().
 *
 * The steps follow AWS's "Signature Calculations for the Authorization
 * Header: Transferring Payload in a Single Chunk":
 *   CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n
 *                      CanonicalHeaders \n SignedHeaders \n PayloadHash
 *   StringToSign     = "AWS4-HMAC-SHA256" \n AmzDate \n Scope \n
 *                      hex(SHA256(CanonicalRequest))
 *   SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, yyyymmdd),
 *                      region), service), "aws4_request")
 *   Signature        = hex(HMAC(SigningKey, StringToSign))
 * with Scope = yyyymmdd/region/service/aws4_request.
 *
 * Encoding rules (S3 flavour): the URI is encoded once, segment by
 * segment ('/' kept); query names and values are encoded with '/' as
 * %2F; only RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) stay as
 * they are, every other byte becomes %XX with upper-case hex.
 *
 * Ownership: every char* returned is malloc'd and belongs to the caller;
 * NULL means out of memory unless said otherwise.  Nothing here keeps
 * state of its own; every function is thread-safe.  The secret key is
 * never copied into any returned string.  The one piece of state is the
 * caller's: a sigv4_key_cache keeps the day's signing key, so that a
 * client signing many requests derives it once a day, not per request.
 */
#ifndef S3DB_SIGV4_H
#define S3DB_SIGV4_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of the empty string, the payload hash of a bodiless request. */
#define SIGV4_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A header or query parameter: name and value, both borrowed. */
typedef struct sigv4_pair {
	const char *name;
	const char *value;   /* NULL counts as "" */
} sigv4_pair;

/* What is signed.  canonical_uri and canonical_query are already in
 * canonical form (see sigv4_canonical_uri / sigv4_canonical_query);
 * headers are the ones to sign, in any order and letter case (values are
 * trimmed and inner runs of spaces collapsed, as AWS does; two headers of
 * the same name are joined with ','). */
typedef struct sigv4_request {
	const char *method;           /* "GET", "PUT", ...                  */
	const char *canonical_uri;    /* "/test%24file.text"                */
	const char *canonical_query;  /* "max-keys=2&prefix=J", or ""/NULL  */
	const sigv4_pair *headers;
	size_t header_count;
	const char *payload_hash;     /* hex SHA-256 or UNSIGNED-PAYLOAD    */
} sigv4_request;

/* The signing key of one secret key, kept for the scope (day, region,
 * service) it was derived for: sigv4_sign derives it again only when the
 * scope changes (four HMACs saved per request).  Thread-safe.  One cache
 * serves one secret key.  Its key is as secret as the secret key: keep the
 * struct out of logs and end it with sigv4_key_cache_destroy, which
 * cleanses it. */
typedef struct sigv4_key_cache {
	pthread_mutex_t lock;
	char scope[96];               /* "yyyymmdd/region/service", "" = none */
	unsigned char key[32];
} sigv4_key_cache;

void sigv4_key_cache_init(sigv4_key_cache *c);
void sigv4_key_cache_destroy(sigv4_key_cache *c);

/* Who signs, where and when.  amz_date is "YYYYMMDDTHHMMSSZ" (see
 * sigv4_amz_date); its first 8 characters date the scope. */
typedef struct sigv4_key {
	const char *access_key;
	const char *secret_key;
	const char *region;           /* "us-east-1"                        */
	const char *service;          /* NULL means "s3"                    */
	const char *amz_date;
	sigv4_key_cache *cache;       /* NULL: the key is derived per call  */
} sigv4_key;

/* Every intermediate of a signature, for tests and for debugging a
 * SignatureDoesNotMatch (compare with S3's <CanonicalRequest>). */
typedef struct sigv4_result {
	char *canonical_request;      /* owned */
	char *string_to_sign;         /* owned */
	char *signed_headers;         /* owned, "host;range;x-amz-date"     */
	char *scope;                  /* owned, "20130524/us-east-1/s3/aws4_request" */
	char *authorization;          /* owned, the Authorization header value */
	char signature[65];           /* hex                                 */
} sigv4_result;

/* ---- encoding ----------------------------------------------------------- */

/* Percent-encodes len bytes of s: unreserved characters stay, '/' stays
 * when keep_slash is set, every other byte becomes %XX (upper case). */
char *sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* The canonical URI of a raw (not yet encoded) path: each '/'-separated
 * segment encoded once, empty segments kept, "" becomes "/". */
char *sigv4_canonical_uri(const char *raw_path);

/* The canonical query of raw (not yet encoded) parameters: each name and
 * value encoded, sorted by encoded name then encoded value, joined as
 * n=v&n=v; a NULL or "" value gives "n=" (so ?delete signs as
 * "delete=").  n == 0 gives "".  The same string serves as the query of
 * the request URL, so what is sent is what is signed. */
char *sigv4_canonical_query(const sigv4_pair *params, size_t n);

/* The canonical query of a query string as received ("b=2&a&c=%2F"):
 * each part percent-decoded, then encoded and sorted as above.  For a
 * verifier.  NULL also when the text has a malformed %-escape. */
char *sigv4_canonical_query_raw(const char *raw_query);

/* Decodes %XX escapes in len bytes of s; with plus_is_space, '+' becomes
 * ' ' (form/URL-list encoding).  *out_len (optional) receives the length.
 * Returns NULL on a malformed escape (or out of memory). */
char *sigv4_uri_decode(const char *s, size_t len, int plus_is_space, size_t *out_len);

/* ---- hashing ------------------------------------------------------------ */

/* hex(SHA-256(data)) into out (65 bytes with the NUL). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* The x-amz-content-sha256 value: SIGV4_UNSIGNED_PAYLOAD when unsigned is
 * set, else hex SHA-256 of the body (NULL body with len 0 allowed). */
void sigv4_payload_hash(const void *body, size_t len, int unsigned_payload,
                        char out[65]);

/* ---- signing ------------------------------------------------------------ */

/* "YYYYMMDDTHHMMSSZ" for t (UTC) into out (17 bytes with the NUL). */
void sigv4_amz_date(time_t t, char out[17]);

/* The canonical request; *signed_headers (optional) receives the
 * ';'-joined lower-case names (malloc'd).  NULL when out of memory or
 * when a header name is empty. */
char *sigv4_canonical_request(const sigv4_request *req, char **signed_headers);

/* The string to sign for a canonical request. */
char *sigv4_string_to_sign(const char *amz_date, const char *scope,
                           const char *canonical_request);

/* The signing key (32 bytes) for secret, the date "YYYYMMDD", region and
 * service.  Callers should OPENSSL_cleanse it when done. */
void sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
                       const char *service, unsigned char out[32]);

/* Signs req with key: fills every field of *out.  Returns 0, or -1 when
 * out of memory or an input is missing (then *out holds nothing to free,
 * though sigv4_result_free is still safe). */
int sigv4_sign(const sigv4_request *req, const sigv4_key *key, sigv4_result *out);
void sigv4_result_free(sigv4_result *r);

/* 1 when name (any case) is a header the S3 backend signs: host,
 * content-type, content-md5, content-encoding, range, if-match,
 * if-none-match and every x-amz-* header; 0 otherwise. */
int sigv4_header_is_signed(const char *name);

/* ---- verifying ---------------------------------------------------------- */

/* The parts of an Authorization header value. */
typedef struct sigv4_auth {
	char access_key[128];
	char date8[9];
	char region[64];
	char service[32];
	char signed_headers[1024];    /* "host;x-amz-date"                  */
	char signature[65];
} sigv4_auth;

/* Parses "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,
 * SignedHeaders=..., Signature=..." (spaces after commas optional).
 * Returns 0, or -1 when the value is not of that form. */
int sigv4_parse_authorization(const char *value, sigv4_auth *out);

/* Constant-time comparison of two hex signatures: 1 when equal. */
int sigv4_equal(const char *a, const char *b);

#endif /* S3DB_SIGV4_H */
