/*
 * sigv4.c — AWS Signature Version 4, computed with OpenSSL's SHA-256 and
 * HMAC.  See sigv4.h for the steps and the encoding rules.
 *
 * Design: every step is a separate pure function over strings, so each can
 * be tested against AWS's published intermediates (canonical request,
 * string to sign, signature).  Strings are built in util.h's sbuf; an sbuf
 * that ran out of memory yields NULL from sbuf_steal, which the functions
 * pass on as NULL.
 *
 * Invariant: the secret key only ever flows into sigv4_signing_key(); the
 * derived keys live on the stack and are cleansed before returning, or in
 * a caller's sigv4_key_cache (cleansed when it is destroyed or re-derived
 * into).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "sigv4.h"
#include "util.h"

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_lower[in[i] >> 4];
		out[2 * i + 1] = hex_lower[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* sbuf_steal, with the NUL written even when nothing was appended. */
static char *steal_str(sbuf *b)
{
	sbuf_append(b, "", 0);
	return sbuf_steal(b);
}

/* Appends the encoding of len bytes of s to b. */
static void encode_into(sbuf *b, const char *s, size_t len, int keep_slash)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			sbuf_putc(b, (char)c);
		} else {
			char esc[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};
			sbuf_append(b, esc, 3);
		}
	}
}

char *sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
	sbuf b;
	sbuf_init(&b);
	encode_into(&b, s ? s : "", s ? len : 0, keep_slash);
	return steal_str(&b);
}

/* Encoding with '/' kept is exactly "each segment encoded once, the
 * separators kept": '/' is the only byte that is not encoded. */
char *sigv4_canonical_uri(const char *raw_path)
{
	if (!raw_path || !*raw_path)
		return s3db_strdup("/");
	return sigv4_uri_encode(raw_path, strlen(raw_path), 1);
}

char *sigv4_uri_decode(const char *s, size_t len, int plus_is_space, size_t *out_len)
{
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			if (len - i < 3) {
				free(out);
				return NULL;
			}
			int h = s3db_hex_value(s[i + 1]), l = s3db_hex_value(s[i + 2]);
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			out[o++] = ' ';
		} else {
			out[o++] = c;
		}
	}
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
}

/* ---- canonical query ---------------------------------------------------- */

typedef struct enc_param {
	char *name;   /* encoded */
	char *value;  /* encoded */
} enc_param;

static int enc_param_cmp(const void *a, const void *b)
{
	const enc_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

/* Sorts and joins n encoded parameters (consumes their strings). */
static char *join_params(enc_param *p, size_t n)
{
	qsort(p, n, sizeof *p, enc_param_cmp);
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_putc(&b, '&');
		sbuf_puts(&b, p[i].name);
		sbuf_putc(&b, '=');
		sbuf_puts(&b, p[i].value);
	}
	return steal_str(&b);
}

static void free_params(enc_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

char *sigv4_canonical_query(const sigv4_pair *params, size_t n)
{
	enc_param *p = calloc(n ? n : 1, sizeof *p);
	if (!p)
		return NULL;
	char *out = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *name = params[i].name ? params[i].name : "";
		const char *value = params[i].value ? params[i].value : "";
		p[i].name = sigv4_uri_encode(name, strlen(name), 0);
		p[i].value = sigv4_uri_encode(value, strlen(value), 0);
		if (!p[i].name || !p[i].value)
			goto done;
	}
	out = join_params(p, n);
done:
	free_params(p, n);
	return out;
}

char *sigv4_canonical_query_raw(const char *raw_query)
{
	if (!raw_query)
		raw_query = "";
	if (*raw_query == '?')
		raw_query++;
	size_t cap = 1;
	for (const char *s = raw_query; *s; s++)
		cap += *s == '&';
	enc_param *p = calloc(cap, sizeof *p);
	if (!p)
		return NULL;
	size_t n = 0;
	char *out = NULL;
	const char *s = raw_query;
	while (*s) {
		const char *end = strchr(s, '&');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		if (len) {
			const char *eq = memchr(s, '=', len);
			size_t nlen = eq ? (size_t)(eq - s) : len;
			const char *v = eq ? eq + 1 : s + len;
			size_t vlen = eq ? len - nlen - 1 : 0;
			char *dn = sigv4_uri_decode(s, nlen, 0, &nlen);
			char *dv = sigv4_uri_decode(v, vlen, 0, &vlen);
			if (dn && dv) {
				p[n].name = sigv4_uri_encode(dn, nlen, 0);
				p[n].value = sigv4_uri_encode(dv, vlen, 0);
			}
			free(dn);
			free(dv);
			n++;
			if (!p[n - 1].name || !p[n - 1].value)
				goto done;
		}
		if (!end)
			break;
		s = end + 1;
	}
	out = join_params(p, n);
done:
	free_params(p, n);
	return out;
}

/* ---- hashing ------------------------------------------------------------ */

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data ? data : (const void *)"", len, md);
	to_hex(md, sizeof md, out);
}

void sigv4_payload_hash(const void *body, size_t len, int unsigned_payload, char out[65])
{
	if (unsigned_payload) {
		memcpy(out, SIGV4_UNSIGNED_PAYLOAD, sizeof SIGV4_UNSIGNED_PAYLOAD);
		return;
	}
	sigv4_sha256_hex(body, body ? len : 0, out);
}

static void hmac_sha256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int olen = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &olen);
}

/* ---- signing ------------------------------------------------------------ */

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

typedef struct canon_header {
	char *name;     /* lower case, owned */
	const char *value;
	size_t order;   /* position in the input: keeps duplicates in order */
} canon_header;

static int canon_header_cmp(const void *a, const void *b)
{
	const canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Appends value trimmed, with inner runs of blanks collapsed to one space. */
static void put_trimmed(sbuf *b, const char *v)
{
	if (!v)
		return;
	while (*v == ' ' || *v == '\t')
		v++;
	int pending_space = 0;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			pending_space = 1;
			continue;
		}
		if (pending_space)
			sbuf_putc(b, ' ');
		pending_space = 0;
		sbuf_putc(b, *v);
	}
}

char *sigv4_canonical_request(const sigv4_request *req, char **signed_headers)
{
	if (signed_headers)
		*signed_headers = NULL;
	size_t n = req->header_count;
	canon_header *h = calloc(n ? n : 1, sizeof *h);
	if (!h)
		return NULL;
	char *out = NULL;
	sbuf b, sh;
	sbuf_init(&b);
	sbuf_init(&sh);
	for (size_t i = 0; i < n; i++) {
		const char *name = req->headers[i].name ? req->headers[i].name : "";
		size_t nl = strlen(name);
		while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
			nl--;
		if (!nl)
			goto done;
		h[i].name = s3db_strndup(name, nl);
		if (!h[i].name)
			goto done;
		for (char *c = h[i].name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		h[i].value = req->headers[i].value;
		h[i].order = i;
	}
	qsort(h, n, sizeof *h, canon_header_cmp);

	sbuf_puts(&b, req->method);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, req->canonical_uri && *req->canonical_uri ? req->canonical_uri : "/");
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, req->canonical_query ? req->canonical_query : "");
	sbuf_putc(&b, '\n');
	for (size_t i = 0; i < n; i++) {
		int same_as_prev = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
		if (same_as_prev) {
			sbuf_putc(&b, ',');
		} else {
			if (i > 0) {
				sbuf_putc(&b, '\n');
				sbuf_putc(&sh, ';');
			}
			sbuf_puts(&b, h[i].name);
			sbuf_putc(&b, ':');
			sbuf_puts(&sh, h[i].name);
		}
		put_trimmed(&b, h[i].value);
	}
	if (n)
		sbuf_putc(&b, '\n');
	sbuf_putc(&b, '\n');
	sbuf_append(&b, sh.data ? sh.data : "", sh.len);
	sbuf_putc(&b, '\n');
	sbuf_puts(&b, req->payload_hash ? req->payload_hash : SIGV4_EMPTY_SHA256);

	if (b.oom || sh.oom)
		goto done;
	out = steal_str(&b);
	if (signed_headers)
		*signed_headers = steal_str(&sh);
done:
	for (size_t i = 0; i < n; i++)
		free(h[i].name);
	free(h);
	sbuf_free(&b);
	sbuf_free(&sh);
	return out;
}

char *sigv4_string_to_sign(const char *amz_date, const char *scope,
                           const char *canonical_request)
{
	char hash[65];
	sigv4_sha256_hex(canonical_request, strlen(canonical_request), hash);
	return s3db_asprintf("%s\n%s\n%s\n%s", SIGV4_ALGORITHM, amz_date, scope, hash);
}

void sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
                       const char *service, unsigned char out[32])
{
	size_t slen = strlen(secret_key);
	unsigned char *k0 = malloc(slen + 5);
	unsigned char k1[32], k2[32], k3[32];
	if (!k0) {
		memset(out, 0, 32);
		return;
	}
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret_key, slen + 1);
	hmac_sha256(k0, slen + 4, date8, k1);
	hmac_sha256(k1, 32, region, k2);
	hmac_sha256(k2, 32, service, k3);
	hmac_sha256(k3, 32, "aws4_request", out);
	OPENSSL_cleanse(k0, slen + 4);
	OPENSSL_cleanse(k1, sizeof k1);
	OPENSSL_cleanse(k2, sizeof k2);
	OPENSSL_cleanse(k3, sizeof k3);
	free(k0);
}

void sigv4_key_cache_init(sigv4_key_cache *c)
{
	memset(c, 0, sizeof *c);
	pthread_mutex_init(&c->lock, NULL);
}

void sigv4_key_cache_destroy(sigv4_key_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	OPENSSL_cleanse(c->key, sizeof c->key);
	c->scope[0] = '\0';
}

/* The signing key for key's secret and (date8, region, service), from
 * key->cache when it holds that scope, else derived (and kept there). */
static void signing_key_for(const sigv4_key *key, const char *date8, const char *service,
                            unsigned char out[32])
{
	sigv4_key_cache *c = key->cache;
	char scope[sizeof c->scope];
	int n = c ? snprintf(scope, sizeof scope, "%s/%s/%s", date8, key->region, service) : -1;
	if (n < 0 || (size_t)n >= sizeof scope) {
		sigv4_signing_key(key->secret_key, date8, key->region, service, out);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (strcmp(c->scope, scope) != 0) {
		sigv4_signing_key(key->secret_key, date8, key->region, service, c->key);
		memcpy(c->scope, scope, (size_t)n + 1);
	}
	memcpy(out, c->key, 32);
	pthread_mutex_unlock(&c->lock);
}

void sigv4_result_free(sigv4_result *r)
{
	if (!r)
		return;
	free(r->canonical_request);
	free(r->string_to_sign);
	free(r->signed_headers);
	free(r->scope);
	free(r->authorization);
	memset(r, 0, sizeof *r);
}

int sigv4_sign(const sigv4_request *req, const sigv4_key *key, sigv4_result *out)
{
	memset(out, 0, sizeof *out);
	if (!req || !req->method || !key || !key->access_key || !key->secret_key ||
	    !key->region || !key->amz_date || strlen(key->amz_date) != 16)
		return -1;
	const char *service = key->service ? key->service : "s3";
	char date8[9];
	memcpy(date8, key->amz_date, 8);
	date8[8] = '\0';

	out->canonical_request = sigv4_canonical_request(req, &out->signed_headers);
	out->scope = s3db_asprintf("%s/%s/%s/aws4_request", date8, key->region, service);
	if (!out->canonical_request || !out->signed_headers || !out->scope)
		goto fail;
	out->string_to_sign = sigv4_string_to_sign(key->amz_date, out->scope,
	                                           out->canonical_request);
	if (!out->string_to_sign)
		goto fail;

	unsigned char skey[32], sig[32];
	signing_key_for(key, date8, service, skey);
	hmac_sha256(skey, sizeof skey, out->string_to_sign, sig);
	OPENSSL_cleanse(skey, sizeof skey);
	to_hex(sig, sizeof sig, out->signature);

	out->authorization = s3db_asprintf("%s Credential=%s/%s,SignedHeaders=%s,Signature=%s",
	                                   SIGV4_ALGORITHM, key->access_key, out->scope,
	                                   out->signed_headers, out->signature);
	if (!out->authorization)
		goto fail;
	return 0;
fail:
	sigv4_result_free(out);
	return -1;
}

int sigv4_header_is_signed(const char *name)
{
	static const char *const always[] = {
		"host", "content-type", "content-md5", "content-encoding", "range",
		"if-match", "if-none-match",
	};
	if (!name)
		return 0;
	if (strncasecmp(name, "x-amz-", 6) == 0)
		return 1;
	for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
		if (strcasecmp(name, always[i]) == 0)
			return 1;
	return 0;
}

/* ---- verifying ---------------------------------------------------------- */

/* Copies the text [s, s+len) into dst of size cap; -1 when it does not fit. */
static int copy_field(char *dst, size_t cap, const char *s, size_t len)
{
	if (len >= cap)
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/* Splits the credential "AK/date/region/service/aws4_request". */
static int parse_credential(const char *s, size_t len, sigv4_auth *out)
{
	const char *parts[5];
	size_t lens[5];
	size_t k = 0;
	const char *start = s, *end = s + len;
	for (const char *p = s; p <= end; p++) {
		if (p == end || *p == '/') {
			if (k == 5)
				return -1;
			parts[k] = start;
			lens[k] = (size_t)(p - start);
			k++;
			start = p + 1;
		}
	}
	if (k != 5 || lens[1] != 8 || lens[4] != 12 || memcmp(parts[4], "aws4_request", 12) != 0)
		return -1;
	if (copy_field(out->access_key, sizeof out->access_key, parts[0], lens[0]) ||
	    copy_field(out->date8, sizeof out->date8, parts[1], lens[1]) ||
	    copy_field(out->region, sizeof out->region, parts[2], lens[2]) ||
	    copy_field(out->service, sizeof out->service, parts[3], lens[3]))
		return -1;
	return lens[0] && lens[2] && lens[3] ? 0 : -1;
}

int sigv4_parse_authorization(const char *value, sigv4_auth *out)
{
	memset(out, 0, sizeof *out);
	if (!value)
		return -1;
	size_t alen = strlen(SIGV4_ALGORITHM);
	if (strncmp(value, SIGV4_ALGORITHM, alen) != 0 || value[alen] != ' ')
		return -1;
	const char *s = value + alen;
	int seen = 0;
	while (*s) {
		while (*s == ' ' || *s == ',')
			s++;
		if (!*s)
			break;
		const char *eq = strchr(s, '=');
		if (!eq)
			return -1;
		const char *end = strchr(eq, ',');
		if (!end)
			end = eq + strlen(eq);
		size_t vlen = (size_t)(end - eq - 1);
		while (vlen && eq[vlen] == ' ')
			vlen--;
		size_t nlen = (size_t)(eq - s);
		if (nlen == 10 && memcmp(s, "Credential", 10) == 0) {
			if (parse_credential(eq + 1, vlen, out))
				return -1;
			seen |= 1;
		} else if (nlen == 13 && memcmp(s, "SignedHeaders", 13) == 0) {
			if (copy_field(out->signed_headers, sizeof out->signed_headers, eq + 1, vlen))
				return -1;
			seen |= 2;
		} else if (nlen == 9 && memcmp(s, "Signature", 9) == 0) {
			if (vlen != 64 || copy_field(out->signature, sizeof out->signature, eq + 1, vlen))
				return -1;
			seen |= 4;
		} else {
			return -1;
		}
		s = end;
	}
	return seen == 7 ? 0 : -1;
}

int sigv4_equal(const char *a, const char *b)
{
	if (!a || !b)
		return 0;
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}
