/*
 * store.h — the object store: one interface, two backends.
 *
 * The database layer sees a bucket as a flat key space of objects, each
 * with a body, a content type and user metadata (the x-amz-meta-* pairs).
 * Two backends implement it: S3 over libcurl (store_s3.c) and a local
 * directory (store_file.c) with the same semantics — the 2 KB metadata
 * rule, ETags, LastModified, and prefix/delimiter listing in key order with
 * pagination.
 *
 * store.c wraps the backend operations: it times every request and calls
 * the request hook once per logical request (costs, metrics and benchmarks
 * build on it), so backends never deal with observation.
 *
 * Keys passed here are full keys inside the bucket (the database prefix is
 * already applied).  Metadata keys are stored lower-case without the
 * x-amz-meta- prefix; values are the exact header values (printable ASCII
 * as s3db.js writes them; a backend decodes RFC 2047 words it receives).
 *
 * Invariants:
 *  - every operation is thread-safe; many may run at once;
 *  - a failed put leaves the previous object (or none) intact — never a
 *    partial object;
 *  - a retried request never turns one write into two different states:
 *    only idempotent requests are retried, and a conditional put whose
 *    retry answers 412 after a lost 200 is resolved by comparing ETags.
 */
#ifndef S3DB_STORE_H
#define S3DB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "s3db.h"

/* AWS's limit on user metadata: keys + values, in bytes. */
#define STORE_METADATA_LIMIT 2048
/* S3's page size: a ListObjectsV2 page holds at most this many keys, and
 * a DeleteObjects request deletes at most this many. */
#define STORE_LIST_PAGE_MAX 1000
#define STORE_DELETE_BATCH_MAX 1000

/* ---- metadata: an ordered list of key/value pairs --------------------- */

typedef struct store_kv {
	char *key;     /* lower-case, without "x-amz-meta-"; owned */
	char *value;   /* owned */
} store_kv;

typedef struct store_meta {
	store_kv *items;
	size_t count;
	size_t cap;
} store_meta;

void store_meta_init(store_meta *m);
void store_meta_free(store_meta *m);
/* Sets key (lower-cased) to value, replacing an existing entry.
 * Returns 0, or -1 when out of memory. */
int store_meta_set(store_meta *m, const char *key, const char *value);
/* NULL when absent; the pointer is borrowed from m. */
const char *store_meta_get(const store_meta *m, const char *key);
int store_meta_remove(store_meta *m, const char *key);
/* Bytes AWS counts: sum of strlen(key) + strlen(value). */
size_t store_meta_size(const store_meta *m);
int store_meta_copy(store_meta *dst, const store_meta *src);

/* ---- objects ---------------------------------------------------------- */

typedef struct store_object {
	store_meta meta;
	char *content_type;        /* owned, may be NULL                     */
	char *content_encoding;    /* owned, may be NULL                     */
	char etag[72];             /* with quotes, as S3 gives it            */
	int64_t last_modified_ms;  /* epoch milliseconds                     */
	int64_t size;              /* the object's full size in bytes        */
	unsigned char *body;       /* owned; NULL for head; NUL-terminated   */
	size_t body_len;           /* bytes in body (a range may be shorter) */
} store_object;

void store_object_init(store_object *o);
void store_object_free(store_object *o);

typedef struct store_put_opts {
	const char *content_type;     /* NULL: none sent                      */
	const char *content_encoding; /* NULL: none                           */
	int if_none_match;            /* 1: fail with PRECONDITION if exists  */
	const char *if_match;         /* ETag the current object must have    */
} store_put_opts;

/* ---- listing ---------------------------------------------------------- */

typedef struct store_entry {
	char *key;                 /* owned */
	int64_t size;
	char etag[72];
	int64_t last_modified_ms;
} store_entry;

typedef struct store_list_page {
	store_entry *entries;      /* keys in byte order                     */
	size_t count;
	char **common_prefixes;    /* with the delimiter at the end          */
	size_t prefix_count;
	int truncated;
	char *next_token;          /* owned; NULL when not truncated         */
} store_list_page;

void store_list_page_free(store_list_page *p);

typedef struct store_list_opts {
	const char *prefix;        /* may be NULL / ""                       */
	const char *delimiter;     /* NULL: no grouping                      */
	const char *start_after;   /* NULL: from the start                   */
	const char *continuation;  /* token from a previous page, or NULL    */
	int max_keys;              /* 1..STORE_LIST_PAGE_MAX; 0: the maximum */
} store_list_opts;

/* ---- the backend interface -------------------------------------------- */

typedef struct store store;

typedef struct store_ops {
	const char *name;  /* "s3", "file" */
	s3db_code (*put)(store *s, const char *key, const store_meta *meta,
	                 const void *body, size_t len, const store_put_opts *opts,
	                 char etag_out[72], s3db_error *err);
	/* range_first < 0: whole object; else bytes [first, last] (last < 0:
	 * to the end). */
	s3db_code (*get)(store *s, const char *key, int64_t range_first, int64_t range_last,
	                 store_object *out, s3db_error *err);
	s3db_code (*head)(store *s, const char *key, store_object *out, s3db_error *err);
	/* Deleting an absent key succeeds (as S3 does). */
	s3db_code (*del)(store *s, const char *key, s3db_error *err);
	/* Up to 1000 keys; failures per key are reported through err. */
	s3db_code (*del_many)(store *s, const char *const *keys, size_t n, s3db_error *err);
	s3db_code (*list)(store *s, const store_list_opts *opts, store_list_page *out,
	                  s3db_error *err);
	/* Server-side copy; meta != NULL replaces the metadata (REPLACE
	 * directive, with content_type), NULL copies it (COPY directive). */
	s3db_code (*copy)(store *s, const char *src_key, const char *dst_key,
	                  const store_meta *meta, const char *content_type, s3db_error *err);
	void (*destroy)(store *s);
} store_ops;

/* Every backend embeds this as its first member. */
struct store {
	const store_ops *ops;
	s3db_request_hook hook;
	void *hook_userdata;
};

/* Per-request figures a backend adds to while it serves one request on the
 * calling thread; store.c zeroes them before and reports them after. */
typedef struct store_call_stats {
	int attempts;
	int http_status;
	uint64_t bytes_sent;
	uint64_t bytes_received;
} store_call_stats;
store_call_stats *store_call_stats_current(void);

/* ---- backend constructors --------------------------------------------- */

typedef struct store_s3_config {
	const char *endpoint;        /* "https://s3.us-east-1.amazonaws.com"  */
	const char *bucket;
	const char *region;          /* "us-east-1"                          */
	int path_style;              /* 1: endpoint/bucket/key               */
	const char *access_key;      /* may be NULL: anonymous               */
	const char *secret_key;
	const char *session_token;   /* may be NULL                          */
	int parallelism;             /* connections kept; default 16         */
	int timeout_ms;              /* per request; default 30000           */
	int max_retries;             /* default 5                            */
	int retry_base_ms;           /* first backoff; default 100           */
} store_s3_config;

/* The S3 backend copies what it needs from cfg.  *out owns the store. */
s3db_code store_s3_open(const store_s3_config *cfg, store **out, s3db_error *err);

/* The local backend keeps objects under `root` (created if missing). */
s3db_code store_file_open(const char *root, store **out, s3db_error *err);

/* ---- the operations, as the rest of the library calls them ------------ */
/* Each forwards to the backend and reports the request to the hook.      */

s3db_code store_put(store *s, const char *key, const store_meta *meta,
                    const void *body, size_t len, const store_put_opts *opts,
                    char etag_out[72], s3db_error *err);
s3db_code store_get(store *s, const char *key, store_object *out, s3db_error *err);
s3db_code store_get_range(store *s, const char *key, int64_t first, int64_t last,
                          store_object *out, s3db_error *err);
s3db_code store_head(store *s, const char *key, store_object *out, s3db_error *err);
s3db_code store_delete(store *s, const char *key, s3db_error *err);
/* Any number of keys; batches of STORE_DELETE_BATCH_MAX. */
s3db_code store_delete_many(store *s, const char *const *keys, size_t n, s3db_error *err);
s3db_code store_list(store *s, const store_list_opts *opts, store_list_page *out,
                     s3db_error *err);
s3db_code store_copy(store *s, const char *src_key, const char *dst_key,
                     const store_meta *meta, const char *content_type, s3db_error *err);
void store_set_hook(store *s, s3db_request_hook hook, void *userdata);
void store_close(store *s);

/* Calls fn for every key under prefix, page by page (1000 a page).  fn
 * returns 0 to go on, non-zero to stop early. */
typedef int (*store_key_fn)(void *ud, const store_entry *e);
s3db_code store_list_all(store *s, const char *prefix, store_key_fn fn, void *ud,
                         s3db_error *err);

#endif /* S3DB_STORE_H */
