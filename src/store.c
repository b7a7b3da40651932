/*
 * store.c — what every backend shares: metadata lists, object and listing
 * cleanup, and the operation wrappers that the rest of the library calls.
 *
 * Each wrapper zeroes the calling thread's store_call_stats, runs the
 * backend operation, and reports one s3db_request_info to the request
 * hook: one report per logical request, whatever the retries underneath.
 * This is the single point where costs, metrics and benchmarks see
 * traffic, so no backend needs to know about them.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"
#include "util.h"

/* ---- metadata ----------------------------------------------------------- */

void store_meta_init(store_meta *m)
{
	m->items = NULL;
	m->count = m->cap = 0;
}

void store_meta_free(store_meta *m)
{
	for (size_t i = 0; i < m->count; i++) {
		free(m->items[i].key);
		free(m->items[i].value);
	}
	free(m->items);
	store_meta_init(m);
}

static char *lowercase_dup(const char *s)
{
	char *d = strdup(s);
	if (d)
		for (char *p = d; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return d;
}

static ssize_t meta_index(const store_meta *m, const char *key)
{
	for (size_t i = 0; i < m->count; i++)
		if (strcasecmp(m->items[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

int store_meta_set(store_meta *m, const char *key, const char *value)
{
	char *v = strdup(value ? value : "");
	if (!v)
		return -1;
	ssize_t i = meta_index(m, key);
	if (i >= 0) {
		free(m->items[i].value);
		m->items[i].value = v;
		return 0;
	}
	store_kv *p = s3db_array_room(m->items, &m->cap, m->count, sizeof *p, 8);
	if (!p) {
		free(v);
		return -1;
	}
	m->items = p;
	char *k = lowercase_dup(key);
	if (!k) {
		free(v);
		return -1;
	}
	m->items[m->count].key = k;
	m->items[m->count].value = v;
	m->count++;
	return 0;
}

const char *store_meta_get(const store_meta *m, const char *key)
{
	ssize_t i = meta_index(m, key);
	return i >= 0 ? m->items[i].value : NULL;
}

int store_meta_remove(store_meta *m, const char *key)
{
	ssize_t i = meta_index(m, key);
	if (i < 0)
		return -1;
	free(m->items[i].key);
	free(m->items[i].value);
	memmove(&m->items[i], &m->items[i + 1], (m->count - (size_t)i - 1) * sizeof *m->items);
	m->count--;
	return 0;
}

size_t store_meta_size(const store_meta *m)
{
	size_t n = 0;
	for (size_t i = 0; m && i < m->count; i++)
		n += strlen(m->items[i].key) + strlen(m->items[i].value);
	return n;
}

int store_meta_copy(store_meta *dst, const store_meta *src)
{
	for (size_t i = 0; i < src->count; i++)
		if (store_meta_set(dst, src->items[i].key, src->items[i].value))
			return -1;
	return 0;
}

/* ---- objects and pages -------------------------------------------------- */

void store_object_init(store_object *o)
{
	memset(o, 0, sizeof *o);
	store_meta_init(&o->meta);
}

void store_object_free(store_object *o)
{
	store_meta_free(&o->meta);
	free(o->content_type);
	free(o->content_encoding);
	free(o->body);
	store_object_init(o);
}

void store_list_page_free(store_list_page *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->entries[i].key);
	free(p->entries);
	for (size_t i = 0; i < p->prefix_count; i++)
		free(p->common_prefixes[i]);
	free(p->common_prefixes);
	free(p->next_token);
	memset(p, 0, sizeof *p);
}

/* ---- per-request figures ------------------------------------------------ */

static __thread store_call_stats current_stats;

store_call_stats *store_call_stats_current(void)
{
	return &current_stats;
}

/* ---- the wrappers ------------------------------------------------------- */

typedef struct call {
	store *s;
	s3db_command cmd;
	const char *key;
	double start;
	s3db_error local_err;
	s3db_error *err;
} call;

/* Starts a call: zeroes the thread's figures and makes sure an error
 * record exists, so the report always has the HTTP status. */
static void call_begin(call *c, store *s, s3db_command cmd, const char *key, s3db_error *err)
{
	c->s = s;
	c->cmd = cmd;
	c->key = key ? key : "";
	memset(&current_stats, 0, sizeof current_stats);
	s3db_error_clear(&c->local_err);
	c->err = err ? err : &c->local_err;
	c->err->http_status = 0;
	c->start = s3db_monotonic_ms();
}

/* Ends a call: reports it to the hook and passes rc through. */
static s3db_code call_end(call *c, s3db_code rc)
{
	if (rc == S3DB_OK)
		c->err->code = S3DB_OK;
	if (c->s->hook) {
		s3db_request_info info = {
			.command = c->cmd,
			.key = c->key,
			.result = rc,
			.http_status = current_stats.http_status ? current_stats.http_status
			                                         : c->err->http_status,
			.attempts = current_stats.attempts ? current_stats.attempts : 1,
			.bytes_sent = current_stats.bytes_sent,
			.bytes_received = current_stats.bytes_received,
			.duration_ms = s3db_monotonic_ms() - c->start,
		};
		c->s->hook(c->s->hook_userdata, &info);
	}
	return rc;
}

s3db_code store_put(store *s, const char *key, const store_meta *meta, const void *body,
                    size_t len, const store_put_opts *opts, char etag_out[72], s3db_error *err)
{
	call c;
	char etag_local[72];
	call_begin(&c, s, S3DB_CMD_PUT_OBJECT, key, err);
	return call_end(&c, s->ops->put(s, key, meta, body, len, opts,
	                                 etag_out ? etag_out : etag_local, c.err));
}

s3db_code store_get_range(store *s, const char *key, int64_t first, int64_t last,
                          store_object *out, s3db_error *err)
{
	call c;
	call_begin(&c, s, S3DB_CMD_GET_OBJECT, key, err);
	return call_end(&c, s->ops->get(s, key, first, last, out, c.err));
}

s3db_code store_get(store *s, const char *key, store_object *out, s3db_error *err)
{
	return store_get_range(s, key, -1, -1, out, err);
}

s3db_code store_head(store *s, const char *key, store_object *out, s3db_error *err)
{
	call c;
	call_begin(&c, s, S3DB_CMD_HEAD_OBJECT, key, err);
	return call_end(&c, s->ops->head(s, key, out, c.err));
}

s3db_code store_delete(store *s, const char *key, s3db_error *err)
{
	call c;
	call_begin(&c, s, S3DB_CMD_DELETE_OBJECT, key, err);
	return call_end(&c, s->ops->del(s, key, c.err));
}

s3db_code store_delete_many(store *s, const char *const *keys, size_t n, s3db_error *err)
{
	for (size_t at = 0; at < n; at += STORE_DELETE_BATCH_MAX) {
		size_t batch = n - at < STORE_DELETE_BATCH_MAX ? n - at : STORE_DELETE_BATCH_MAX;
		call c;
		call_begin(&c, s, S3DB_CMD_DELETE_OBJECTS, keys[at], err);
		s3db_code rc = call_end(&c, s->ops->del_many(s, keys + at, batch, c.err));
		if (rc != S3DB_OK)
			return rc;
	}
	return S3DB_OK;
}

s3db_code store_list(store *s, const store_list_opts *opts, store_list_page *out,
                     s3db_error *err)
{
	call c;
	memset(out, 0, sizeof *out);
	call_begin(&c, s, S3DB_CMD_LIST_OBJECTS_V2, opts && opts->prefix ? opts->prefix : "", err);
	return call_end(&c, s->ops->list(s, opts, out, c.err));
}

s3db_code store_copy(store *s, const char *src_key, const char *dst_key,
                     const store_meta *meta, const char *content_type, s3db_error *err)
{
	call c;
	call_begin(&c, s, S3DB_CMD_COPY_OBJECT, dst_key, err);
	return call_end(&c, s->ops->copy(s, src_key, dst_key, meta, content_type, c.err));
}

void store_set_hook(store *s, s3db_request_hook hook, void *userdata)
{
	s->hook = hook;
	s->hook_userdata = userdata;
}

void store_close(store *s)
{
	if (s)
		s->ops->destroy(s);
}

s3db_code store_list_all(store *s, const char *prefix, store_key_fn fn, void *ud,
                         s3db_error *err)
{
	char *token = NULL;
	for (;;) {
		store_list_opts opts = { .prefix = prefix, .continuation = token, .max_keys = STORE_LIST_PAGE_MAX };
		store_list_page page;
		s3db_code rc = store_list(s, &opts, &page, err);
		free(token);
		token = NULL;
		if (rc != S3DB_OK)
			return rc;
		int stop = 0;
		for (size_t i = 0; i < page.count && !stop; i++)
			stop = fn(ud, &page.entries[i]);
		if (!stop && page.truncated && page.next_token)
			token = strdup(page.next_token);
		int more = !stop && page.truncated && token;
		store_list_page_free(&page);
		if (!more)
			return S3DB_OK;
	}
}
