/*
 * store_s3.c — the object store over S3's REST API, with libcurl.
 *
 * Design
 *  - Requests are signed here with sigv4.c (never CURLOPT_AWS_SIGV4), so
 *    the exact bytes signed are the bytes sent: the URL's path and query
 *    are the canonical URI and canonical query themselves, and the Host
 *    header is set explicitly.
 *  - Thread safety: the store keeps a pool of at most `parallelism` CURL
 *    easy handles.  An operation takes one handle for its whole duration
 *    (retries and the ETag check of a conditional put included) and gives
 *    it back; when all are busy the caller waits on a condition variable.
 *    Each handle keeps its own keep-alive connections; DNS and TLS
 *    sessions are shared through a CURLSH guarded by one mutex per data
 *    kind.  The connection cache is deliberately NOT shared: libcurl does
 *    not support sharing it between concurrently running threads.
 *  - Bodies are never decompressed (no CURLOPT_ACCEPT_ENCODING): a
 *    Content-Encoding: gzip object reads back as the stored bytes.
 *  - Retries: exponential backoff with full jitter (a random delay in
 *    [0, min(5 s, retry_base_ms * 2^n)]) on 500/502/503/504, 408, 429,
 *    409 ConditionalRequestConflict, timeouts, and connections that broke
 *    after they were made (reset, nothing received, partial transfer, TLS
 *    handshake cut).  A refused or unresolvable connection is reported at
 *    once.  Only idempotent requests are sent, so a retry never changes
 *    the outcome — except a conditional put whose first try may have
 *    succeeded unseen: when its retry answers 412, a HEAD compares the
 *    object with what we sent (ETag = MD5 of our body, content type and
 *    encoding, every x-amz-meta-* value), and equality means the write
 *    was ours (store.h's invariant).  libcurl itself silently re-sends a
 *    request once when a reused keep-alive connection turns out dead
 *    before any answer; the pre-request callback (called each time libcurl
 *    is about to send the request) counts the sends, so such a re-send
 *    counts as a retry too (and in the call stats).  No debug output is
 *    asked for: CURLOPT_VERBOSE would make libcurl format every info line.
 *  - Responses are parsed with a small XML reader that matches elements
 *    by local name (s3rver's namespace is not AWS's) and decodes entities
 *    and CDATA.  Listings ask for encoding-type=url and decode keys only
 *    when the answer says <EncodingType>url</EncodingType>.
 *  - Errors map to s3db_code (see map_error); messages name the command,
 *    the key, the HTTP status, S3's Code and Message — never a header, a
 *    signature or a secret.
 *
 * Invariants: a handle is used by one thread at a time; secret_key is only
 * read by sign_request(); every s3_resp is reset before each attempt.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "codec.h"
#include "sigv4.h"
#include "store.h"
#include "util.h"

#define S3_DEFAULT_PARALLELISM 16
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_DEFAULT_RETRIES 5
#define S3_DEFAULT_RETRY_BASE_MS 100
#define S3_RETRY_CAP_MS 5000
#define S3_CONNECT_TIMEOUT_MS 10000
#define S3_USER_AGENT "s3dbfs/" S3DB_VERSION

/* ---- the store ------------------------------------------------------------ */

typedef struct s3_store {
	store base;                 /* first: a store* is an s3_store*      */
	char *scheme;               /* "http" / "https"                      */
	char *host;                 /* Host header and URL authority         */
	char *path_prefix;          /* raw, "" or "/base" + "/bucket" (path style) */
	char *bucket;
	char *region;
	char *access_key;           /* NULL: unsigned (anonymous) requests  */
	char *secret_key;
	sigv4_key_cache signing_key; /* the day's key derived from secret_key */
	char *session_token;
	int timeout_ms;
	int max_retries;
	int retry_base_ms;

	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	CURL **idle;                /* handles not in use                   */
	size_t idle_count;
	int created;                /* handles in existence                 */
	int parallelism;            /* the most that may exist              */
} s3_store;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small helpers ---------------------------------------------------------- */

/* sbuf_steal that always hands back a NUL-terminated string. */
static char *steal_str(sbuf *b)
{
	sbuf_append(b, "", 0);
	return sbuf_steal(b);
}

/* Keys can be 1024 bytes; messages show at most this much of one. */
#define KEYFMT "%.200s"

static void md5_of(const void *data, size_t len, unsigned char md[16])
{
	unsigned int n = 16;
	EVP_Digest(data ? data : "", len, md, &n, EVP_md5(), NULL);
}

/* "\"<hex md5>\"" — the ETag S3 gives a single-part, unencrypted object. */
static void md5_etag(const void *data, size_t len, char out[72])
{
	unsigned char md[16];
	md5_of(data, len, md);
	char *p = out;
	*p++ = '"';
	for (int i = 0; i < 16; i++)
		p += sprintf(p, "%02x", md[i]);
	*p++ = '"';
	*p = '\0';
}

static void md5_base64(const void *data, size_t len, char out[32])
{
	unsigned char md[16];
	md5_of(data, len, md);
	EVP_EncodeBlock((unsigned char *)out, md, 16);
}

static void copy_etag(char dst[72], const char *src)
{
	snprintf(dst, 72, "%s", src ? src : "");
}

/* ---- thread-local randomness for the jitter --------------------------------- */

static __thread uint64_t rng_state;

static uint64_t rng_next(void)
{
	if (!rng_state) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		            (uint64_t)(uintptr_t)&rng_state;
		if (!rng_state)
			rng_state = 0x9e3779b97f4a7c15ULL;
	}
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Sleeps a random time in [0, min(cap, base * 2^retry)] ms. */
static void backoff(const s3_store *s, int retry)
{
	uint64_t ceiling = (uint64_t)s->retry_base_ms;
	for (int i = 0; i < retry && ceiling < S3_RETRY_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > S3_RETRY_CAP_MS)
		ceiling = S3_RETRY_CAP_MS;
	uint64_t ms = rng_next() % (ceiling + 1);
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- a minimal XML reader ------------------------------------------------------ */

/* An element: local name, the concatenation of its direct text (entities
 * and CDATA decoded), and its children. */
typedef struct xnode {
	char *name;
	sbuf text;
	struct xnode *parent, *child, *last_child, *next;
} xnode;

static void xml_free(xnode *n)
{
	while (n) {
		xnode *next = n->next;
		xml_free(n->child);
		free(n->name);
		sbuf_free(&n->text);
		free(n);
		n = next;
	}
}

static void put_utf8(sbuf *b, unsigned long cp)
{
	char u[4];
	if (cp < 0x80) {
		sbuf_putc(b, (char)cp);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		sbuf_append(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		sbuf_append(b, u, 3);
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		sbuf_append(b, u, 4);
	}
}

/* Appends len bytes of XML character data to b, decoding the five named
 * entities and numeric references; an unknown entity is kept verbatim. */
static void xml_decode_into(sbuf *b, const char *s, size_t len)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
	const char *end = s + len;
	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		if (!amp) {
			sbuf_append(b, s, (size_t)(end - s));
			return;
		}
		sbuf_append(b, s, (size_t)(amp - s));
		const char *semi = memchr(amp, ';', (size_t)(end - amp));
		int done = 0;
		if (semi && semi - amp > 1 && semi - amp < 12) {
			const char *ent = amp + 1;
			size_t elen = (size_t)(semi - ent);
			if (*ent == '#') {
				char tmp[12];
				memcpy(tmp, ent + 1, elen - 1);
				tmp[elen - 1] = '\0';
				char *ep;
				int hex = tmp[0] == 'x' || tmp[0] == 'X';
				unsigned long cp = strtoul(hex ? tmp + 1 : tmp, &ep, hex ? 16 : 10);
				if (*ep == '\0' && ep != (hex ? tmp + 1 : tmp) && cp <= 0x10ffff) {
					put_utf8(b, cp);
					done = 1;
				}
			} else {
				for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
					if (strlen(named[i].name) == elen && memcmp(ent, named[i].name, elen) == 0) {
						sbuf_putc(b, named[i].c);
						done = 1;
						break;
					}
				}
			}
		}
		if (done) {
			s = semi + 1;
		} else {
			sbuf_putc(b, '&');
			s = amp + 1;
		}
	}
}

/* The first occurrence of the n-byte needle in len bytes of hay, or NULL. */
static const char *find_seq(const char *hay, size_t len, const char *needle, size_t n)
{
	for (size_t i = 0; i + n <= len; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
			return hay + i;
	return NULL;
}

static int is_name_end(char c)
{
	return c == '\0' || c == '>' || c == '/' || isspace((unsigned char)c);
}

/* Parses len bytes of XML into a tree whose root is returned (caller
 * frees with xml_free); NULL when the text is not well-formed enough to
 * read or has no element. */
static xnode *xml_parse(const char *s, size_t len)
{
	const char *p = s, *end = s + len;
	xnode *root = NULL, *cur = NULL;
	while (p < end) {
		if (*p != '<') {
			const char *lt = memchr(p, '<', (size_t)(end - p));
			const char *stop = lt ? lt : end;
			if (cur)
				xml_decode_into(&cur->text, p, (size_t)(stop - p));
			p = stop;
			continue;
		}
		size_t left = (size_t)(end - p);
		if (left >= 4 && memcmp(p, "<!--", 4) == 0) {
			const char *e = find_seq(p + 4, left - 4, "-->", 3);
			if (!e)
				goto bad;
			p = e + 3;
		} else if (left >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
			const char *e = find_seq(p + 9, left - 9, "]]>", 3);
			if (!e)
				goto bad;
			if (cur)
				sbuf_append(&cur->text, p + 9, (size_t)(e - p - 9));
			p = e + 3;
		} else if (left >= 2 && (p[1] == '?' || p[1] == '!')) {
			const char *e = memchr(p, '>', left);
			if (!e)
				goto bad;
			p = e + 1;
		} else if (left >= 2 && p[1] == '/') {
			const char *e = memchr(p, '>', left);
			if (!e || !cur)
				goto bad;
			cur = cur->parent;
			p = e + 1;
			if (!cur)
				break;  /* the root closed: ignore what follows */
		} else {
			const char *n = p + 1, *ne = n;
			while (ne < end && !is_name_end(*ne))
				ne++;
			if (ne == n || ne >= end)
				goto bad;
			const char *colon = memchr(n, ':', (size_t)(ne - n));
			if (colon)
				n = colon + 1;
			/* find the tag's end, skipping quoted attribute values */
			const char *q = ne;
			char quote = 0;
			while (q < end && (quote || *q != '>')) {
				if (quote && *q == quote)
					quote = 0;
				else if (!quote && (*q == '"' || *q == '\''))
					quote = *q;
				q++;
			}
			if (q >= end)
				goto bad;
			int self_closing = q[-1] == '/';
			if (!cur && root)
				break;  /* a second root: stop */
			xnode *node = calloc(1, sizeof *node);
			if (!node)
				goto bad;
			node->name = s3db_strndup(n, (size_t)(ne - n));
			sbuf_init(&node->text);
			node->parent = cur;
			if (!node->name) {
				free(node);
				goto bad;
			}
			if (cur) {
				if (cur->last_child)
					cur->last_child->next = node;
				else
					cur->child = node;
				cur->last_child = node;
			} else {
				root = node;
			}
			if (!self_closing)
				cur = node;
			p = q + 1;
		}
	}
	return root;
bad:
	xml_free(root);
	return NULL;
}

/* First child of n with this local name, or NULL. */
static xnode *xml_child(const xnode *n, const char *name)
{
	for (xnode *c = n ? n->child : NULL; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* Text of n's child `name`, or NULL when absent (borrowed). */
static const char *xml_text(const xnode *n, const char *name)
{
	xnode *c = xml_child(n, name);
	if (!c)
		return NULL;
	sbuf_append(&c->text, "", 0);  /* make sure there is a buffer */
	return c->text.data;
}

/* Appends s XML-escaped (for request bodies). */
static void xml_escape_into(sbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '&': sbuf_puts(b, "&amp;"); break;
		case '<': sbuf_puts(b, "&lt;"); break;
		case '>': sbuf_puts(b, "&gt;"); break;
		case '"': sbuf_puts(b, "&quot;"); break;
		case '\'': sbuf_puts(b, "&apos;"); break;
		default:
			if (c < 0x20)
				sbuf_printf(b, "&#x%X;", c);
			else
				sbuf_putc(b, (char)c);
		}
	}
}

/* ---- requests and responses ---------------------------------------------------- */

/* Headers of a request: owned names and values. */
typedef struct hdr_list {
	sigv4_pair *items;
	size_t count, cap;
	int oom;
} hdr_list;

static void hdr_add(hdr_list *h, const char *name, const char *value)
{
	if (h->oom)
		return;
	sigv4_pair *p = s3db_array_room(h->items, &h->cap, h->count, sizeof *p, 16);
	if (!p) {
		h->oom = 1;
		return;
	}
	h->items = p;
	char *n = s3db_strdup(name), *v = s3db_strdup(value ? value : "");
	if (!n || !v) {
		free(n);
		free(v);
		h->oom = 1;
		return;
	}
	h->items[h->count].name = n;
	h->items[h->count].value = v;
	h->count++;
}

static void hdr_free(hdr_list *h)
{
	for (size_t i = 0; i < h->count; i++) {
		free((char *)h->items[i].name);
		free((char *)h->items[i].value);
	}
	free(h->items);
	memset(h, 0, sizeof *h);
}

typedef struct s3_req {
	s3db_command cmd;           /* for messages                          */
	const char *method;
	const char *key;            /* NULL: the bucket itself               */
	const sigv4_pair *query;    /* raw parameters                        */
	size_t nquery;
	hdr_list headers;           /* sent, and signed when the policy says */
	const void *body;
	size_t body_len;
} s3_req;

typedef struct s3_resp {
	long status;                /* 0 when no HTTP answer                 */
	CURLcode curl_rc;
	char curl_msg[CURL_ERROR_SIZE];
	sbuf body;
	strv hnames;                /* lower case                            */
	strv hvalues;               /* trimmed                               */
	char *err_code;             /* S3's <Code>, when the body had one   */
	char *err_message;          /* S3's <Message>                        */
	int sends;                  /* times the request went out: libcurl
	                               re-sends by itself when a reused
	                               connection dies before any answer    */
} s3_resp;

static void resp_init(s3_resp *r)
{
	memset(r, 0, sizeof *r);
	sbuf_init(&r->body);
	strv_init(&r->hnames);
	strv_init(&r->hvalues);
}

static void resp_free(s3_resp *r)
{
	sbuf_free(&r->body);
	strv_free(&r->hnames);
	strv_free(&r->hvalues);
	free(r->err_code);
	free(r->err_message);
	resp_init(r);
}

/* The value of response header `name` (lower case), or NULL; borrowed. */
static const char *resp_header(const s3_resp *r, const char *name)
{
	for (size_t i = 0; i < r->hnames.count; i++)
		if (strcmp(r->hnames.items[i], name) == 0)
			return r->hvalues.items[i];
	return NULL;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	s3_resp *r = ud;
	sbuf_append(&r->body, data, size * nmemb);
	return r->body.oom ? 0 : size * nmemb;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	s3_resp *r = ud;
	size_t len = size * nmemb;
	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue): forget earlier headers */
		strv_free(&r->hnames);
		strv_free(&r->hvalues);
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon || colon == data)
		return len;
	char *name = s3db_strndup(data, (size_t)(colon - data));
	const char *v = colon + 1, *e = data + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && isspace((unsigned char)e[-1]))
		e--;
	char *value = s3db_strndup(v, (size_t)(e - v));
	if (!name || !value) {
		free(name);
		free(value);
		return 0;
	}
	for (char *c = name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strv_push_owned(&r->hnames, name)) {
		free(value);
		return 0;
	}
	if (strv_push_owned(&r->hvalues, value))
		return 0;
	return len;
}

/* Counts the times libcurl is about to send the request (the first time
 * and its own re-sends on a dead reused connection).  Always lets it go. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
	s3_resp *r = ud;
	r->sends++;
	return CURL_PREREQFUNC_OK;
}

/* ---- the handle pool and the share --------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	s3_store *s = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&s->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	s3_store *s = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&s->share_mu[data]);
}

/* Takes a free handle, creating one while fewer than `parallelism` exist,
 * else waiting for one.  NULL only when curl_easy_init fails. */
static CURL *handle_acquire(s3_store *s)
{
	CURL *h = NULL;
	pthread_mutex_lock(&s->pool_mu);
	while (s->idle_count == 0 && s->created >= s->parallelism)
		pthread_cond_wait(&s->pool_cv, &s->pool_mu);
	if (s->idle_count > 0) {
		h = s->idle[--s->idle_count];
	} else {
		s->created++;
		pthread_mutex_unlock(&s->pool_mu);
		h = curl_easy_init();
		if (h)
			return h;
		pthread_mutex_lock(&s->pool_mu);
		s->created--;
		pthread_cond_signal(&s->pool_cv);
	}
	pthread_mutex_unlock(&s->pool_mu);
	return h;
}

static void handle_release(s3_store *s, CURL *h)
{
	pthread_mutex_lock(&s->pool_mu);
	s->idle[s->idle_count++] = h;
	pthread_cond_signal(&s->pool_cv);
	pthread_mutex_unlock(&s->pool_mu);
}

/* ---- one attempt ---------------------------------------------------------------- */

/* The raw (unencoded) request path: [/base][/bucket]/key. */
static char *raw_path(const s3_store *s, const char *key)
{
	if (!key)
		return s3db_strdup(*s->path_prefix ? s->path_prefix : "/");
	return s3db_asprintf("%s/%s", s->path_prefix, key);
}

/* Adds the signing headers and Authorization to hdrs (for what is about to
 * be sent) and fills the curl header list.  Returns 0 or -1 (out of memory). */
static int sign_request(s3_store *s, const s3_req *r, const char *canonical_uri,
                        const char *canonical_query, struct curl_slist **out)
{
	char amz_date[17], payload[65];
	sigv4_amz_date(time(NULL), amz_date);
	sigv4_payload_hash(r->body, r->body_len, 0, payload);

	hdr_list all = {0};
	hdr_add(&all, "host", s->host);
	for (size_t i = 0; i < r->headers.count; i++)
		hdr_add(&all, r->headers.items[i].name, r->headers.items[i].value);
	if (s->access_key) {
		hdr_add(&all, "x-amz-date", amz_date);
		hdr_add(&all, "x-amz-content-sha256", payload);
		if (s->session_token)
			hdr_add(&all, "x-amz-security-token", s->session_token);
	}
	if (all.oom) {
		hdr_free(&all);
		return -1;
	}

	struct curl_slist *list = NULL;
	int rc = 0;
	if (s->access_key) {
		/* the headers to sign are a subset of those sent */
		sigv4_pair *signed_h = calloc(all.count, sizeof *signed_h);
		size_t n = 0;
		if (!signed_h) {
			hdr_free(&all);
			return -1;
		}
		for (size_t i = 0; i < all.count; i++)
			if (sigv4_header_is_signed(all.items[i].name))
				signed_h[n++] = all.items[i];
		sigv4_request sreq = {r->method, canonical_uri, canonical_query, signed_h, n, payload};
		sigv4_key key = {s->access_key, s->secret_key, s->region, "s3", amz_date,
		                 &s->signing_key};
		sigv4_result res;
		if (sigv4_sign(&sreq, &key, &res) == 0) {
			char *line = s3db_asprintf("Authorization: %s", res.authorization);
			struct curl_slist *l2 = line ? curl_slist_append(list, line) : NULL;
			if (line)
				OPENSSL_cleanse(line, strlen(line));
			free(line);
			if (l2)
				list = l2;
			else
				rc = -1;
		} else {
			rc = -1;
		}
		sigv4_result_free(&res);
		free(signed_h);
	}
	for (size_t i = 0; i < all.count && rc == 0; i++) {
		const char *name = all.items[i].name, *value = all.items[i].value;
		/* curl drops "Name:" with nothing after it; "Name;" sends it empty */
		char *line = *value ? s3db_asprintf("%s: %s", name, value)
		                    : s3db_asprintf("%s;", name);
		struct curl_slist *l2 = line ? curl_slist_append(list, line) : NULL;
		free(line);
		if (l2)
			list = l2;
		else
			rc = -1;
	}
	/* no Expect: 100-continue round trip; no form content type on bodies */
	struct curl_slist *l2 = rc == 0 ? curl_slist_append(list, "Expect:") : NULL;
	if (l2)
		list = l2;
	else
		rc = -1;
	int has_ct = 0;
	for (size_t i = 0; i < r->headers.count; i++)
		has_ct |= strcasecmp(r->headers.items[i].name, "content-type") == 0;
	if (rc == 0 && !has_ct) {
		l2 = curl_slist_append(list, "Content-Type:");
		if (l2)
			list = l2;
		else
			rc = -1;
	}
	hdr_free(&all);
	if (rc) {
		curl_slist_free_all(list);
		return -1;
	}
	*out = list;
	return 0;
}

/* Runs r once on handle h; fills resp (reset first) and the call stats. */
static void attempt(s3_store *s, CURL *h, const s3_req *r, s3_resp *resp)
{
	resp_free(resp);
	char *path = raw_path(s, r->key);
	char *curi = path ? sigv4_canonical_uri(path) : NULL;
	char *cquery = sigv4_canonical_query(r->query, r->nquery);
	char *url = curi && cquery ? s3db_asprintf("%s://%s%s%s%s", s->scheme, s->host, curi,
	                                           *cquery ? "?" : "", cquery)
	                           : NULL;
	struct curl_slist *headers = NULL;
	if (!url || sign_request(s, r, curi, cquery, &headers)) {
		resp->curl_rc = CURLE_OUT_OF_MEMORY;
		snprintf(resp->curl_msg, sizeof resp->curl_msg, "out of memory");
		goto done;
	}

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_SHARE, s->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);  /* keep "." and ".." in keys */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, S3_USER_AGENT);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(s->timeout_ms < S3_CONNECT_TIMEOUT_MS ? s->timeout_ms
	                                                              : S3_CONNECT_TIMEOUT_MS));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, resp->curl_msg);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(h, CURLOPT_PREREQDATA, resp);
	if (strcmp(r->method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		if (strcmp(r->method, "PUT") == 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}

	resp->curl_rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);

	store_call_stats *st = store_call_stats_current();
	if (st) {
		long req_size = 0, hdr_size = 0;
		curl_off_t up = 0, down = 0;
		curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size);
		curl_easy_getinfo(h, CURLINFO_HEADER_SIZE, &hdr_size);
		curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
		st->attempts += resp->sends > 1 ? resp->sends : 1;
		st->http_status = (int)resp->status;
		st->bytes_sent += (uint64_t)(req_size > 0 ? req_size : 0) + (uint64_t)(up > 0 ? up : 0);
		st->bytes_received += (uint64_t)(hdr_size > 0 ? hdr_size : 0) +
		                      (uint64_t)(down > 0 ? down : 0);
	}
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);

	/* an S3 error document: keep its Code and Message */
	if (resp->curl_rc == CURLE_OK && resp->body.len && (resp->status >= 300 || r->cmd == S3DB_CMD_COPY_OBJECT)) {
		xnode *x = xml_parse(resp->body.data, resp->body.len);
		if (x && strcmp(x->name, "Error") == 0) {
			resp->err_code = s3db_strdup(xml_text(x, "Code"));
			resp->err_message = s3db_strdup(xml_text(x, "Message"));
			if (resp->status < 300)
				resp->status = 500;  /* CopyObject's error inside a 200 */
		}
		xml_free(x);
	}
done:
	curl_slist_free_all(headers);
	free(url);
	free(cquery);
	free(curi);
	free(path);
}

/* ---- outcomes -------------------------------------------------------------------- */

static int curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return 1;
	default:
		return 0;
	}
}

static int status_retryable(const s3_resp *r)
{
	switch (r->status) {
	case 408: case 429: case 500: case 502: case 503: case 504:
		return 1;
	case 409:
		return r->err_code && strcmp(r->err_code, "ConditionalRequestConflict") == 0;
	default:
		return 0;
	}
}

/* The s3db_code for an HTTP error answer. */
static s3db_code map_error(long status, const char *code)
{
	if (!code)
		code = "";
	if (strcmp(code, "SignatureDoesNotMatch") == 0)
		return S3DB_ERR_SIGNATURE;
	if (strcmp(code, "NoSuchBucket") == 0)
		return S3DB_ERR_NO_SUCH_BUCKET;
	if (strcmp(code, "MetadataTooLarge") == 0)
		return S3DB_ERR_METADATA_TOO_LARGE;
	switch (status) {
	case 404:
		return S3DB_ERR_NOT_FOUND;
	case 403:
		return S3DB_ERR_ACCESS_DENIED;
	case 412:
		return S3DB_ERR_PRECONDITION;
	case 409:
		return strcmp(code, "ConditionalRequestConflict") == 0 ? S3DB_ERR_PRECONDITION
		                                                     : S3DB_ERR_BAD_REQUEST;
	case 408:
		return S3DB_ERR_TIMEOUT;
	case 429:
		return S3DB_ERR_SERVER;
	default:
		break;
	}
	if (status >= 500)
		return S3DB_ERR_SERVER;
	return S3DB_ERR_BAD_REQUEST;
}

/* Fills err from the last attempt's failure and returns its code. */
static s3db_code report(s3db_error *err, const s3_req *r, const s3_resp *resp, int attempts)
{
	const char *cmd = s3db_command_name(r->cmd);
	const char *key = r->key ? r->key : "";
	const char *space = *key ? " " : "";
	char tries[32] = "";
	if (attempts > 1)
		snprintf(tries, sizeof tries, " (after %d attempts)", attempts);
	if (resp->curl_rc != CURLE_OK) {
		s3db_code code = resp->curl_rc == CURLE_OPERATION_TIMEDOUT ? S3DB_ERR_TIMEOUT
		               : resp->curl_rc == CURLE_OUT_OF_MEMORY       ? S3DB_ERR_NOMEM
		                                                            : S3DB_ERR_NETWORK;
		if (err)
			err->http_status = (int)resp->status;
		return s3db_error_set(err, code, "%s%s" KEYFMT ": %s%s", cmd, space, key,
		                      resp->curl_msg[0] ? resp->curl_msg
		                                        : curl_easy_strerror(resp->curl_rc),
		                      tries);
	}
	s3db_code code = map_error(resp->status, resp->err_code);
	if (err)
		err->http_status = (int)resp->status;
	return s3db_error_set(err, code, "%s%s" KEYFMT ": HTTP %ld%s%s%s%.160s%s", cmd, space, key,
	                      resp->status, resp->err_code ? " " : "",
	                      resp->err_code ? resp->err_code : "",
	                      resp->err_message ? ": " : "",
	                      resp->err_message ? resp->err_message : "", tries);
}

/* Runs r with retries.  S3DB_OK for a 2xx answer (resp holds it); else the
 * mapped error, resp holding the last answer.  *retried (optional) tells
 * whether an earlier attempt failed in a way that may have reached the
 * server. */
static s3db_code perform(s3_store *s, CURL *h, const s3_req *r, s3_resp *resp,
                         s3db_error *err, int *retried)
{
	if (r->headers.oom)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory",
		                      s3db_command_name(r->cmd));
	if (r->key && !*r->key)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: the object key is empty",
		                      s3db_command_name(r->cmd));
	if (retried)
		*retried = 0;
	for (int i = 0;; i++) {
		attempt(s, h, r, resp);
		if (retried && resp->sends > 1)
			*retried = 1;
		int ok = resp->curl_rc == CURLE_OK && resp->status >= 200 && resp->status < 300;
		if (ok) {
			if (err)
				err->http_status = (int)resp->status;
			return S3DB_OK;
		}
		int again = resp->curl_rc != CURLE_OK ? curl_retryable(resp->curl_rc)
		                                      : status_retryable(resp);
		if (!again || i >= s->max_retries)
			return report(err, r, resp, i + 1);
		if (retried)
			*retried = 1;
		backoff(s, i);
	}
}

/* ---- request building -------------------------------------------------------------- */

/* 1 when name can be an x-amz-meta- header name. */
static int meta_key_ok(const char *k)
{
	if (!*k)
		return 0;
	for (; *k; k++) {
		unsigned char c = (unsigned char)*k;
		if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c)))
			return 0;
	}
	return 1;
}

static int meta_value_ok(const char *v)
{
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Adds meta as x-amz-meta-* headers; INVALID_ARG for names or values that
 * cannot travel in a header, METADATA_TOO_LARGE over AWS's limit (checked
 * here so that no request is sent). */
static s3db_code add_meta(s3_req *r, const store_meta *meta, const char *key, s3db_error *err)
{
	if (!meta)
		return S3DB_OK;
	size_t size = store_meta_size(meta);
	if (size > STORE_METADATA_LIMIT)
		return s3db_error_set(err, S3DB_ERR_METADATA_TOO_LARGE,
		                      "%s " KEYFMT ": metadata is %zu bytes, over S3's %d-byte limit",
		                      s3db_command_name(r->cmd), key, size, STORE_METADATA_LIMIT);
	for (size_t i = 0; i < meta->count; i++) {
		const store_kv *kv = &meta->items[i];
		if (!meta_key_ok(kv->key))
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s " KEYFMT ": metadata name '%.64s' is not a header token",
			                      s3db_command_name(r->cmd), key, kv->key);
		if (!meta_value_ok(kv->value))
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s " KEYFMT ": metadata '%.64s' has a control character",
			                      s3db_command_name(r->cmd), key, kv->key);
		char *name = s3db_asprintf("x-amz-meta-%s", kv->key);
		if (!name)
			return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
		for (char *c = name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		hdr_add(&r->headers, name, kv->value);
		free(name);
	}
	return r->headers.oom ? s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory") : S3DB_OK;
}

/* Reads the object's properties from the response headers into o. */
static s3db_code parse_object_headers(const s3_resp *resp, store_object *o, s3db_error *err)
{
	const char *v;
	if ((v = resp_header(resp, "etag")))
		copy_etag(o->etag, v);
	if ((v = resp_header(resp, "last-modified")))
		s3db_parse_http_date(v, &o->last_modified_ms);
	if ((v = resp_header(resp, "content-type")) && !(o->content_type = s3db_strdup(v)))
		goto oom;
	if ((v = resp_header(resp, "content-encoding")) && !(o->content_encoding = s3db_strdup(v)))
		goto oom;
	o->size = -1;
	if ((v = resp_header(resp, "content-range"))) {
		const char *slash = strchr(v, '/');
		if (slash && slash[1] != '*')
			o->size = strtoll(slash + 1, NULL, 10);
	}
	if (o->size < 0 && resp->status != 206 && (v = resp_header(resp, "content-length")))
		o->size = strtoll(v, NULL, 10);
	for (size_t i = 0; i < resp->hnames.count; i++) {
		const char *name = resp->hnames.items[i];
		if (strncmp(name, "x-amz-meta-", 11) != 0 || !name[11])
			continue;
		char *value = codec_rfc2047_decode(resp->hvalues.items[i]);
		if (!value)
			goto oom;
		int rc = store_meta_set(&o->meta, name + 11, value);
		free(value);
		if (rc)
			goto oom;
	}
	return S3DB_OK;
oom:
	return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory reading response headers");
}

/* ---- the operations ---------------------------------------------------------------- */

static s3db_code head_with(s3_store *s, CURL *h, const char *key, store_object *out,
                           s3db_error *err)
{
	s3_req r = {.cmd = S3DB_CMD_HEAD_OBJECT, .method = "HEAD", .key = key};
	s3_resp resp;
	resp_init(&resp);
	s3db_code rc = perform(s, h, &r, &resp, err, NULL);
	if (rc == S3DB_OK) {
		rc = parse_object_headers(&resp, out, err);
		if (out->size < 0)
			out->size = 0;
	}
	resp_free(&resp);
	return rc;
}

static s3db_code s3_head(store *st, const char *key, store_object *out, s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	store_object_init(out);
	CURL *h = handle_acquire(s);
	if (!h)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "HeadObject: cannot create a curl handle");
	s3db_code rc = head_with(s, h, key, out, err);
	handle_release(s, h);
	if (rc != S3DB_OK)
		store_object_free(out);
	return rc;
}

static s3db_code s3_get(store *st, const char *key, int64_t first, int64_t last,
                        store_object *out, s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	store_object_init(out);
	s3_req r = {.cmd = S3DB_CMD_GET_OBJECT, .method = "GET", .key = key};
	char range[64];
	if (first >= 0) {
		if (last >= 0 && last < first)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "GetObject " KEYFMT ": range %" PRId64 "-%" PRId64 " is empty",
			                      key, first, last);
		if (last >= 0)
			snprintf(range, sizeof range, "bytes=%" PRId64 "-%" PRId64, first, last);
		else
			snprintf(range, sizeof range, "bytes=%" PRId64 "-", first);
		hdr_add(&r.headers, "Range", range);
	}
	CURL *h = handle_acquire(s);
	if (!h) {
		hdr_free(&r.headers);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "GetObject: cannot create a curl handle");
	}
	s3_resp resp;
	resp_init(&resp);
	s3db_code rc = perform(s, h, &r, &resp, err, NULL);
	handle_release(s, h);
	if (rc == S3DB_OK)
		rc = parse_object_headers(&resp, out, err);
	if (rc == S3DB_OK) {
		size_t off = 0, len = resp.body.len;
		if (out->size < 0)
			out->size = (int64_t)resp.body.len;
		if (first >= 0 && resp.status == 200) {
			/* the server ignored Range: cut the part out ourselves */
			off = (uint64_t)first < len ? (size_t)first : len;
			size_t stop = last >= 0 && (uint64_t)last + 1 < len ? (size_t)last + 1 : len;
			len = stop > off ? stop - off : 0;
		}
		if (off)
			memmove(resp.body.data, resp.body.data + off, len);
		resp.body.len = len;
		out->body_len = len;
		out->body = (unsigned char *)steal_str(&resp.body);
		if (!out->body)
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, "GetObject " KEYFMT ": out of memory", key);
	}
	resp_free(&resp);
	hdr_free(&r.headers);
	if (rc != S3DB_OK)
		store_object_free(out);
	return rc;
}

/* 1 when a HEAD answer describes the object this put would have written:
 * the ETag is the MD5 of our body, the content type and encoding are the
 * ones we sent, and the x-amz-meta-* headers are exactly our metadata (raw
 * values, compared before any RFC 2047 decoding).  Bodies alone would not
 * do: many s3db objects have an empty body and all data in metadata. */
static int head_matches_put(const s3_resp *resp, const char *etag_mine, const store_meta *meta,
                            const store_put_opts *opts)
{
	const char *v = resp_header(resp, "etag");
	if (!v || strcmp(v, etag_mine) != 0)
		return 0;
	if (opts->content_type && (!(v = resp_header(resp, "content-type")) ||
	                           strcmp(v, opts->content_type) != 0))
		return 0;
	if (opts->content_encoding && (!(v = resp_header(resp, "content-encoding")) ||
	                               strcmp(v, opts->content_encoding) != 0))
		return 0;
	size_t seen = 0;
	for (size_t i = 0; i < resp->hnames.count; i++)
		seen += strncmp(resp->hnames.items[i], "x-amz-meta-", 11) == 0;
	if (seen != (meta ? meta->count : 0))
		return 0;
	for (size_t i = 0; meta && i < meta->count; i++) {
		char *name = s3db_asprintf("x-amz-meta-%s", meta->items[i].key);
		if (!name)
			return 0;
		for (char *c = name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		v = resp_header(resp, name);
		free(name);
		/* the server drops blanks around a header value */
		const char *want = meta->items[i].value;
		while (*want == ' ')
			want++;
		size_t wlen = strlen(want);
		while (wlen && want[wlen - 1] == ' ')
			wlen--;
		if (!v || strlen(v) != wlen || memcmp(v, want, wlen) != 0)
			return 0;
	}
	return 1;
}

static s3db_code s3_put(store *st, const char *key, const store_meta *meta, const void *body,
                        size_t len, const store_put_opts *opts, char etag_out[72],
                        s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	s3_req r = {.cmd = S3DB_CMD_PUT_OBJECT, .method = "PUT", .key = key,
	            .body = body, .body_len = len};
	s3db_code rc = add_meta(&r, meta, key, err);
	if (rc != S3DB_OK) {
		hdr_free(&r.headers);
		return rc;
	}
	char md5[32], etag_mine[72];
	md5_base64(body, len, md5);
	md5_etag(body, len, etag_mine);
	hdr_add(&r.headers, "Content-MD5", md5);
	if (opts && opts->content_type)
		hdr_add(&r.headers, "Content-Type", opts->content_type);
	if (opts && opts->content_encoding)
		hdr_add(&r.headers, "Content-Encoding", opts->content_encoding);
	if (opts && opts->if_none_match)
		hdr_add(&r.headers, "If-None-Match", "*");
	if (opts && opts->if_match)
		hdr_add(&r.headers, "If-Match", opts->if_match);

	CURL *h = handle_acquire(s);
	if (!h) {
		hdr_free(&r.headers);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "PutObject: cannot create a curl handle");
	}
	s3_resp resp;
	resp_init(&resp);
	int retried = 0;
	rc = perform(s, h, &r, &resp, err, &retried);
	if (rc == S3DB_OK) {
		const char *etag = resp_header(&resp, "etag");
		copy_etag(etag_out, etag ? etag : etag_mine);
	} else if (rc == S3DB_ERR_PRECONDITION && retried &&
	           opts && (opts->if_none_match || opts->if_match)) {
		/* An earlier try may have written the object before its answer
		 * was lost: if what is there now is exactly what we sent, the
		 * put succeeded. */
		store_call_stats *stats = store_call_stats_current();
		int attempts = stats ? stats->attempts : 0;
		s3_req hr = {.cmd = S3DB_CMD_HEAD_OBJECT, .method = "HEAD", .key = key};
		s3_resp hresp;
		resp_init(&hresp);
		s3db_error herr = {0};
		if (perform(s, h, &hr, &hresp, &herr, NULL) == S3DB_OK &&
		    head_matches_put(&hresp, etag_mine, meta, opts)) {
			copy_etag(etag_out, etag_mine);
			rc = S3DB_OK;
			s3db_error_clear(err);
			if (err)
				err->http_status = 200;
			if (stats)
				stats->http_status = 200;
		}
		if (stats)
			stats->attempts = attempts;
		resp_free(&hresp);
	}
	handle_release(s, h);
	resp_free(&resp);
	hdr_free(&r.headers);
	return rc;
}

static s3db_code s3_del(store *st, const char *key, s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	s3_req r = {.cmd = S3DB_CMD_DELETE_OBJECT, .method = "DELETE", .key = key};
	CURL *h = handle_acquire(s);
	if (!h)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "DeleteObject: cannot create a curl handle");
	s3_resp resp;
	resp_init(&resp);
	s3db_code rc = perform(s, h, &r, &resp, err, NULL);
	if (rc == S3DB_ERR_NOT_FOUND)
		rc = S3DB_OK;  /* deleting what is absent succeeds, as on AWS */
	handle_release(s, h);
	resp_free(&resp);
	return rc;
}

/* Whether a per-key DeleteObjects error is worth another try. */
static int delete_error_retryable(const char *code)
{
	return code && (strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ||
	                strcmp(code, "ServiceUnavailable") == 0);
}

static s3db_code s3_del_many(store *st, const char *const *keys, size_t n, s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	if (n == 0)
		return S3DB_OK;
	if (n > STORE_DELETE_BATCH_MAX)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "DeleteObjects: %zu keys, at most %d a request", n,
		                      STORE_DELETE_BATCH_MAX);
	strv pending;  /* keys still to delete */
	strv_init(&pending);
	for (size_t i = 0; i < n; i++)
		if (strv_push(&pending, keys[i]))
			goto oom;

	CURL *h = handle_acquire(s);
	if (!h) {
		strv_free(&pending);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "DeleteObjects: cannot create a curl handle");
	}
	s3db_code rc = S3DB_OK;
	for (int round = 0;; round++) {
		sbuf xml;
		sbuf_init(&xml);
		sbuf_puts(&xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		                "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		                "<Quiet>true</Quiet>");
		for (size_t i = 0; i < pending.count; i++) {
			sbuf_puts(&xml, "<Object><Key>");
			xml_escape_into(&xml, pending.items[i]);
			sbuf_puts(&xml, "</Key></Object>");
		}
		sbuf_puts(&xml, "</Delete>");
		if (xml.oom) {
			sbuf_free(&xml);
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, "DeleteObjects: out of memory");
			break;
		}
		char md5[32];
		md5_base64(xml.data, xml.len, md5);
		sigv4_pair q[] = {{"delete", ""}};
		s3_req r = {.cmd = S3DB_CMD_DELETE_OBJECTS, .method = "POST", .key = NULL,
		            .query = q, .nquery = 1, .body = xml.data, .body_len = xml.len};
		hdr_add(&r.headers, "Content-MD5", md5);
		hdr_add(&r.headers, "Content-Type", "application/xml");
		s3_resp resp;
		resp_init(&resp);
		rc = perform(s, h, &r, &resp, err, NULL);
		hdr_free(&r.headers);
		sbuf_free(&xml);
		if (rc != S3DB_OK) {
			if (err)
				s3db_error_prefix(err, "%zu keys starting at '" KEYFMT "'", pending.count,
				                  pending.items[0]);
			resp_free(&resp);
			break;
		}
		/* <DeleteResult><Error><Key/><Code/><Message/></Error>... */
		xnode *x = xml_parse(resp.body.data ? resp.body.data : "", resp.body.len);
		strv again;
		strv_init(&again);
		size_t failed = 0;
		int all_retryable = 1;
		const char *first_key = NULL, *first_code = NULL, *first_msg = NULL;
		for (xnode *c = x ? x->child : NULL; c; c = c->next) {
			if (strcmp(c->name, "Error") != 0)
				continue;
			const char *k = xml_text(c, "Key"), *code = xml_text(c, "Code");
			failed++;
			if (!first_key) {
				first_key = k ? k : "";
				first_code = code ? code : "";
				first_msg = xml_text(c, "Message");
			}
			if (!delete_error_retryable(code))
				all_retryable = 0;
			else if (k && strv_push(&again, k))
				all_retryable = 0;
		}
		if (failed && all_retryable && round < s->max_retries && again.count) {
			strv_free(&pending);
			pending = again;
			xml_free(x);
			resp_free(&resp);
			backoff(s, round);
			continue;
		}
		if (failed) {
			s3db_code code = S3DB_ERR_SERVER;
			if (strcmp(first_code, "AccessDenied") == 0)
				code = S3DB_ERR_ACCESS_DENIED;
			else if (!delete_error_retryable(first_code))
				code = map_error(400, first_code);
			rc = s3db_error_set(err, code, "DeleteObjects: %zu of %zu keys failed; first '"
			                    KEYFMT "': %s%s%.160s", failed, pending.count, first_key,
			                    first_code, first_msg ? ": " : "", first_msg ? first_msg : "");
		} else if (!x && resp.body.len) {
			rc = s3db_error_set(err, S3DB_ERR_SERVER, "DeleteObjects: unreadable answer");
		}
		strv_free(&again);
		xml_free(x);
		resp_free(&resp);
		break;
	}
	handle_release(s, h);
	strv_free(&pending);
	return rc;
oom:
	strv_free(&pending);
	return s3db_error_set(err, S3DB_ERR_NOMEM, "DeleteObjects: out of memory");
}

/* Copies text (decoded from encoding-type=url when url is set). */
static char *list_text(const char *text, int url)
{
	if (!text)
		return NULL;
	return url ? sigv4_uri_decode(text, strlen(text), 1, NULL) : s3db_strdup(text);
}

static s3db_code parse_list(const s3_resp *resp, store_list_page *out, s3db_error *err)
{
	xnode *x = xml_parse(resp->body.data ? resp->body.data : "", resp->body.len);
	if (!x || strcmp(x->name, "ListBucketResult") != 0) {
		xml_free(x);
		return s3db_error_set(err, S3DB_ERR_SERVER, "ListObjectsV2: unreadable answer");
	}
	const char *enc = xml_text(x, "EncodingType");
	int url = enc && strcmp(enc, "url") == 0;
	size_t ncontents = 0, nprefixes = 0;
	for (xnode *c = x->child; c; c = c->next) {
		ncontents += strcmp(c->name, "Contents") == 0;
		nprefixes += strcmp(c->name, "CommonPrefixes") == 0;
	}
	out->entries = calloc(ncontents ? ncontents : 1, sizeof *out->entries);
	out->common_prefixes = calloc(nprefixes ? nprefixes : 1, sizeof *out->common_prefixes);
	if (!out->entries || !out->common_prefixes)
		goto oom;
	for (xnode *c = x->child; c; c = c->next) {
		if (strcmp(c->name, "Contents") == 0) {
			store_entry *e = &out->entries[out->count];
			const char *k = xml_text(c, "Key");
			if (!k)
				continue;
			if (!(e->key = list_text(k, url)))
				goto bad_key;
			out->count++;
			const char *v;
			if ((v = xml_text(c, "Size")))
				e->size = strtoll(v, NULL, 10);
			if ((v = xml_text(c, "ETag")))
				copy_etag(e->etag, v);
			if ((v = xml_text(c, "LastModified")))
				s3db_parse_iso8601(v, &e->last_modified_ms);
		} else if (strcmp(c->name, "CommonPrefixes") == 0) {
			const char *p = xml_text(c, "Prefix");
			if (!p)
				continue;
			if (!(out->common_prefixes[out->prefix_count] = list_text(p, url)))
				goto bad_key;
			out->prefix_count++;
		}
	}
	const char *t = xml_text(x, "IsTruncated");
	out->truncated = t && strcmp(t, "true") == 0;
	if (out->truncated) {
		const char *tok = xml_text(x, "NextContinuationToken");
		if (!tok || !*tok) {
			xml_free(x);
			return s3db_error_set(err, S3DB_ERR_SERVER,
			                      "ListObjectsV2: truncated answer without a continuation token");
		}
		if (!(out->next_token = s3db_strdup(tok)))
			goto oom;
	}
	xml_free(x);
	return S3DB_OK;
bad_key:
	xml_free(x);
	return s3db_error_set(err, S3DB_ERR_SERVER, "ListObjectsV2: a key is not valid URL encoding");
oom:
	xml_free(x);
	return s3db_error_set(err, S3DB_ERR_NOMEM, "ListObjectsV2: out of memory");
}

static s3db_code s3_list(store *st, const store_list_opts *opts, store_list_page *out,
                         s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	memset(out, 0, sizeof *out);
	store_list_opts none = {0};
	if (!opts)
		opts = &none;
	if (opts->max_keys < 0 || opts->max_keys > STORE_LIST_PAGE_MAX)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "ListObjectsV2: max_keys %d is not in 1..%d", opts->max_keys,
		                      STORE_LIST_PAGE_MAX);
	char max_keys[16];
	snprintf(max_keys, sizeof max_keys, "%d", opts->max_keys ? opts->max_keys : STORE_LIST_PAGE_MAX);
	sigv4_pair q[8];
	size_t n = 0;
	q[n++] = (sigv4_pair){"list-type", "2"};
	q[n++] = (sigv4_pair){"encoding-type", "url"};
	q[n++] = (sigv4_pair){"max-keys", max_keys};
	if (opts->prefix && *opts->prefix)
		q[n++] = (sigv4_pair){"prefix", opts->prefix};
	if (opts->delimiter && *opts->delimiter)
		q[n++] = (sigv4_pair){"delimiter", opts->delimiter};
	if (opts->continuation && *opts->continuation)
		q[n++] = (sigv4_pair){"continuation-token", opts->continuation};
	else if (opts->start_after && *opts->start_after)
		q[n++] = (sigv4_pair){"start-after", opts->start_after};

	s3_req r = {.cmd = S3DB_CMD_LIST_OBJECTS_V2, .method = "GET", .key = NULL,
	            .query = q, .nquery = n};
	CURL *h = handle_acquire(s);
	if (!h)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "ListObjectsV2: cannot create a curl handle");
	s3_resp resp;
	resp_init(&resp);
	s3db_code rc = perform(s, h, &r, &resp, err, NULL);
	handle_release(s, h);
	if (rc == S3DB_OK)
		rc = parse_list(&resp, out, err);
	else if (err)
		s3db_error_prefix(err, "prefix '" KEYFMT "'", opts->prefix ? opts->prefix : "");
	if (rc != S3DB_OK)
		store_list_page_free(out);
	resp_free(&resp);
	return rc;
}

static s3db_code s3_copy(store *st, const char *src_key, const char *dst_key,
                         const store_meta *meta, const char *content_type, s3db_error *err)
{
	s3_store *s = (s3_store *)st;
	s3_req r = {.cmd = S3DB_CMD_COPY_OBJECT, .method = "PUT", .key = dst_key};
	if (!src_key || !*src_key)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CopyObject: the source key is empty");
	char *src_raw = s3db_asprintf("/%s/%s", s->bucket, src_key);
	char *src = src_raw ? sigv4_uri_encode(src_raw, strlen(src_raw), 1) : NULL;
	free(src_raw);
	if (!src)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "CopyObject: out of memory");
	hdr_add(&r.headers, "x-amz-copy-source", src);
	free(src);
	s3db_code rc = S3DB_OK;
	if (meta) {
		hdr_add(&r.headers, "x-amz-metadata-directive", "REPLACE");
		if (content_type)
			hdr_add(&r.headers, "Content-Type", content_type);
		rc = add_meta(&r, meta, dst_key, err);
	} else {
		hdr_add(&r.headers, "x-amz-metadata-directive", "COPY");
	}
	if (rc == S3DB_OK) {
		CURL *h = handle_acquire(s);
		if (!h) {
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, "CopyObject: cannot create a curl handle");
		} else {
			s3_resp resp;
			resp_init(&resp);
			rc = perform(s, h, &r, &resp, err, NULL);
			handle_release(s, h);
			if (rc != S3DB_OK && err)
				s3db_error_prefix(err, "copy source '" KEYFMT "'", src_key);
			resp_free(&resp);
		}
	}
	hdr_free(&r.headers);
	return rc;
}

static void s3_destroy(store *st)
{
	s3_store *s = (s3_store *)st;
	if (!s)
		return;
	for (size_t i = 0; i < s->idle_count; i++)
		curl_easy_cleanup(s->idle[i]);
	free(s->idle);
	if (s->share)
		curl_share_cleanup(s->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->share_mu[i]);
	pthread_mutex_destroy(&s->pool_mu);
	pthread_cond_destroy(&s->pool_cv);
	free(s->scheme);
	free(s->host);
	free(s->path_prefix);
	free(s->bucket);
	free(s->region);
	free(s->access_key);
	if (s->secret_key) {
		OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
		free(s->secret_key);
	}
	sigv4_key_cache_destroy(&s->signing_key);
	if (s->session_token) {
		OPENSSL_cleanse(s->session_token, strlen(s->session_token));
		free(s->session_token);
	}
	free(s);
}

static const store_ops s3_ops = {
	.name = "s3",
	.put = s3_put,
	.get = s3_get,
	.head = s3_head,
	.del = s3_del,
	.del_many = s3_del_many,
	.list = s3_list,
	.copy = s3_copy,
	.destroy = s3_destroy,
};

/* ---- opening ---------------------------------------------------------------------- */

/* Splits endpoint "scheme://authority[/base]" into s's scheme, host and
 * path prefix, dropping a default port (so that the Host we sign is the
 * one a server reconstructs). */
static s3db_code parse_endpoint(s3_store *s, const char *endpoint, int path_style,
                                s3db_error *err)
{
	const char *sep = strstr(endpoint, "://");
	if (!sep)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "S3 endpoint '%.200s' has no scheme", endpoint);
	s->scheme = s3db_strndup(endpoint, (size_t)(sep - endpoint));
	if (!s->scheme)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	for (char *c = s->scheme; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strcmp(s->scheme, "http") != 0 && strcmp(s->scheme, "https") != 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "S3 endpoint '%.200s': scheme must be http or https", endpoint);
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	if (alen == 0 || memchr(auth, '@', alen))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "S3 endpoint '%.200s' needs a host and no user information",
		                      endpoint);
	char *host = s3db_strndup(auth, alen);
	if (!host)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	for (char *c = host; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	const char *dflt = strcmp(s->scheme, "https") == 0 ? ":443" : ":80";
	if (s3db_str_ends(host, dflt) && host[0] != '[')
		host[strlen(host) - strlen(dflt)] = '\0';
	else if (host[0] == '[' && s3db_str_ends(host, dflt) &&
	         host[strlen(host) - strlen(dflt) - 1] == ']')
		host[strlen(host) - strlen(dflt)] = '\0';

	const char *rest = auth + alen;
	size_t blen = strcspn(rest, "?#");
	while (blen && rest[blen - 1] == '/')
		blen--;
	char *base = s3db_strndup(rest, blen);
	if (!base) {
		free(host);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	}
	if (path_style) {
		s->host = host;
		s->path_prefix = s3db_asprintf("%s/%s", base, s->bucket);
		free(base);
	} else {
		s->host = s3db_asprintf("%s.%s", s->bucket, host);
		s->path_prefix = base;
		free(host);
	}
	if (!s->host || !s->path_prefix)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	return S3DB_OK;
}

s3db_code store_s3_open(const store_s3_config *cfg, store **out, s3db_error *err)
{
	*out = NULL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return s3db_error_set(err, S3DB_ERR_INTERNAL, "curl_global_init failed: %s",
		                      curl_easy_strerror(curl_init_rc));
	if (!cfg || !cfg->bucket || !*cfg->bucket)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "S3 store: no bucket given");
	if ((cfg->access_key == NULL) != (cfg->secret_key == NULL))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "S3 store: an access key needs its secret key and vice versa");

	s3_store *s = calloc(1, sizeof *s);
	if (!s)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->share_mu[i], NULL);
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_cond_init(&s->pool_cv, NULL);
	sigv4_key_cache_init(&s->signing_key);
	s->base.ops = &s3_ops;
	s->parallelism = cfg->parallelism > 0 ? cfg->parallelism : S3_DEFAULT_PARALLELISM;
	s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : S3_DEFAULT_TIMEOUT_MS;
	s->max_retries = cfg->max_retries >= 0 ? cfg->max_retries : S3_DEFAULT_RETRIES;
	s->retry_base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : S3_DEFAULT_RETRY_BASE_MS;
	s->region = s3db_strdup(cfg->region && *cfg->region ? cfg->region : "us-east-1");
	s->bucket = s3db_strdup(cfg->bucket);
	s->idle = calloc((size_t)s->parallelism, sizeof *s->idle);
	s3db_code rc = S3DB_OK;
	if (!s->region || !s->bucket || !s->idle)
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	if (rc == S3DB_OK && cfg->access_key && *cfg->access_key) {
		s->access_key = s3db_strdup(cfg->access_key);
		s->secret_key = s3db_strdup(cfg->secret_key);
		if (cfg->session_token && *cfg->session_token)
			s->session_token = s3db_strdup(cfg->session_token);
		if (!s->access_key || !s->secret_key ||
		    (cfg->session_token && *cfg->session_token && !s->session_token))
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	}
	if (rc == S3DB_OK) {
		char *dflt = NULL;
		const char *endpoint = cfg->endpoint;
		if (!endpoint || !*endpoint)
			endpoint = dflt = s3db_asprintf("https://s3.%s.amazonaws.com", s->region);
		rc = endpoint ? parse_endpoint(s, endpoint, cfg->path_style, err)
		              : s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
		free(dflt);
	}
	if (rc == S3DB_OK) {
		s->share = curl_share_init();
		if (!s->share ||
		    curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
		    curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
		    curl_share_setopt(s->share, CURLSHOPT_USERDATA, s) != CURLSHE_OK ||
		    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
		    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
			rc = s3db_error_set(err, S3DB_ERR_INTERNAL, "S3 store: cannot set up a curl share");
	}
	if (rc != S3DB_OK) {
		s3_destroy(&s->base);
		return rc;
	}
	*out = &s->base;
	return S3DB_OK;
}
