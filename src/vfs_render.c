/*
 * vfs_render.c — the files the vfs makes rather than stores: a record's
 * text (pretty JSON and a newline), a resource's .schema.json, /.status,
 * /.errors and the plugins' virtual files.  A rendering of /.status,
 * /.errors or a plugin's file made for getattr is kept in v->renders for
 * VFS_RENDER_KEEP_MS so that the open and read that follow see the same
 * bytes (and the size getattr reported); vrender_purge drops the old
 * ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* The rendered record: pretty JSON + "\n" (malloc'd). */
char *vrender_record(json_object *rec, size_t *len)
{
	char *s = s3db_json_stringify(rec, 2);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*len = n + 1;
	return t;
}

/* The definition of a resource as .schema.json shows it (malloc'd). */
char *vrender_schema(s3db_resource *res, size_t *len)
{
	json_object *def = s3db_resource_definition(res);
	if (!def)
		def = json_object_new_object();
	char *t = vrender_record(def, len);
	json_object_put(def);
	return t;
}

static char *render_errors(vfs *v, size_t *len)
{
	sbuf b;
	sbuf_init(&b);
	pthread_mutex_lock(&v->lock);
	size_t kept = v->nerrors < VFS_ERRORS_KEPT ? v->nerrors : VFS_ERRORS_KEPT;
	for (size_t k = 0; k < kept; k++)
		sbuf_puts(&b, v->errors[(v->nerrors - kept + k) % VFS_ERRORS_KEPT]);
	pthread_mutex_unlock(&v->lock);
	if (!b.data)
		sbuf_puts(&b, "");
	*len = b.len;
	return sbuf_steal(&b);
}

typedef struct count_ud {
	size_t scratch, pending;
} count_ud;

static int count_node(void *ud, const char *key, void *value)
{
	count_ud *c = ud;
	vnode *n = value;
	if (n->kind == NK_SCRATCH)
		c->scratch++;
	else if (vnode_dirty(n))
		c->pending++;
	return 0;
}

static char *render_status(vfs *v, size_t *len)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_string(S3DB_VERSION));
	char *desc = s3db_describe(v->db);
	json_object_object_add(o, "database", json_object_new_string(desc ? desc : ""));
	free(desc);
	const conn_info *ci = &v->db->conn;
	json_object_object_add(o, "backend", json_object_new_string(ci->kind == CONN_FILE ? "file" : "s3"));
	if (ci->kind == CONN_FILE) {
		json_object_object_add(o, "root", json_object_new_string(ci->root ? ci->root : ""));
	} else {
		json_object_object_add(o, "endpoint", json_object_new_string(ci->endpoint ? ci->endpoint : ""));
		json_object_object_add(o, "bucket", json_object_new_string(ci->bucket ? ci->bucket : ""));
		json_object_object_add(o, "region", json_object_new_string(ci->region ? ci->region : ""));
	}
	json_object_object_add(o, "prefix", json_object_new_string(ci->prefix ? ci->prefix : ""));
	json_object_object_add(o, "readOnly", json_object_new_boolean(v->read_only));
	json_object_object_add(o, "uptimeSeconds",
	                       json_object_new_int64((int64_t)((s3db_monotonic_ms() - v->start_ms) / 1000.0)));
	count_ud cu = { 0 };
	pthread_mutex_lock(&v->lock);
	json_object *cache = json_object_new_object();
	json_object_object_add(cache, "hits", json_object_new_int64((int64_t)v->hits));
	json_object_object_add(cache, "misses", json_object_new_int64((int64_t)v->misses));
	json_object_object_add(cache, "revalidations", json_object_new_int64((int64_t)v->revalidations));
	json_object_object_add(cache, "evictions", json_object_new_int64((int64_t)v->cache.evictions));
	json_object_object_add(cache, "entries", json_object_new_int64((int64_t)v->cache.recs.count));
	json_object_object_add(cache, "bytes", json_object_new_int64((int64_t)v->cache.bytes));
	json_object_object_add(cache, "maxBytes", json_object_new_int64((int64_t)v->cache.max_bytes));
	json_object_object_add(cache, "listings", json_object_new_int64((int64_t)v->cache.dirs.count));
	vmap_each(&v->nodes, count_node, &cu);
	size_t open_files = v->handles.count;
	size_t nerrors = v->nerrors;
	pthread_mutex_unlock(&v->lock);
	json_object_object_add(cache, "persistentDir",
	                       v->disk.dir ? json_object_new_string(v->disk.dir) : NULL);
	json_object *ttl = json_object_new_object();
	json_object_object_add(ttl, "record", json_object_new_double(v->o.record_ttl));
	json_object_object_add(ttl, "dir", json_object_new_double(v->o.dir_ttl));
	json_object_object_add(ttl, "negative", json_object_new_double(v->o.negative_ttl));
	json_object_object_add(cache, "ttlSeconds", ttl);
	json_object_object_add(o, "cache", cache);
	json_object *req = json_object_new_object();
	json_object *by = json_object_new_object();
	uint64_t total = 0;
	for (int i = 0; i < S3DB_CMD__COUNT; i++) {
		uint64_t n = atomic_load(&v->req[i]);
		total += n;
		json_object_object_add(by, s3db_command_name((s3db_command)i),
		                       json_object_new_int64((int64_t)n));
	}
	json_object_object_add(req, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(req, "failed", json_object_new_int64((int64_t)atomic_load(&v->req_errors)));
	json_object_object_add(req, "byCommand", by);
	json_object_object_add(req, "bytesSent", json_object_new_int64((int64_t)atomic_load(&v->bytes_sent)));
	json_object_object_add(req, "bytesReceived",
	                       json_object_new_int64((int64_t)atomic_load(&v->bytes_received)));
	json_object_object_add(o, "requests", req);
	json_object *files = json_object_new_object();
	json_object_object_add(files, "open", json_object_new_int64((int64_t)open_files));
	json_object_object_add(files, "pendingWrites", json_object_new_int64((int64_t)cu.pending));
	json_object_object_add(files, "scratch", json_object_new_int64((int64_t)cu.scratch));
	json_object_object_add(o, "files", files);
	json_object_object_add(o, "errors", json_object_new_int64((int64_t)nerrors));
	char *t = vrender_record(o, len);
	json_object_put(o);
	return t;
}

typedef struct render_purge {
	double now, keep_ms;
	strv old;
} render_purge;

static int collect_old_render(void *ud, const char *key, void *value)
{
	render_purge *w = ud;
	if (w->now - ((vrender *)value)->made_ms >= w->keep_ms)
		strv_push(&w->old, key);
	return 0;
}

/* Drops the renders made keep_ms or more ago: those no open came for
 * (stat without open) with VFS_RENDER_KEEP_MS, every one with 0 (a write
 * to a plugin's file may change what any of them shows). */
void vrender_purge(vfs *v, double keep_ms)
{
	render_purge w = { .now = s3db_monotonic_ms(), .keep_ms = keep_ms };
	strv_init(&w.old);
	pthread_mutex_lock(&v->lock);
	vmap_each(&v->renders, collect_old_render, &w);
	for (size_t i = 0; i < w.old.count; i++) {
		vrender *r = vmap_del(&v->renders, w.old.items[i]);
		if (r) {
			free(r->text);
			free(r);
		}
	}
	pthread_mutex_unlock(&v->lock);
	strv_free(&w.old);
}

/* The text of /.status, /.errors or a plugin file.  Made at getattr, it
 * is kept for the open that follows (within a second) so both agree on
 * the size.  0 or -errno; *text malloc'd. */
int vrender_virtual(vfs *v, const vpath *p, int for_getattr, char **text, size_t *len)
{
	*text = NULL;
	*len = 0;
	if (!for_getattr) {
		pthread_mutex_lock(&v->lock);
		vrender *r = vmap_del(&v->renders, p->path);
		pthread_mutex_unlock(&v->lock);
		if (r && s3db_monotonic_ms() - r->made_ms < VFS_RENDER_KEEP_MS) {
			*text = r->text;
			*len = r->len;
			free(r);
			return 0;
		}
		if (r) {
			free(r->text);
			free(r);
		}
	}
	int rc = 0;
	if (p->kind == PK_STATUS) {
		*text = render_status(v, len);
	} else if (p->kind == PK_ERRORS) {
		*text = render_errors(v, len);
	} else {
		rc = p->virt->read_fn(p->virt->ud, p->query, text, len);
		if (rc > 0)
			rc = -rc;
		if (rc == 0 && !*text)
			*text = strdup("");
	}
	if (rc == 0 && !*text)
		rc = -ENOMEM;
	if (rc) {
		free(*text);
		*text = NULL;
		return rc;
	}
	if (for_getattr) {
		vrender_purge(v, VFS_RENDER_KEEP_MS);
		vrender *r = calloc(1, sizeof *r);
		if (r && (r->text = malloc(*len + 1)) != NULL) {
			memcpy(r->text, *text, *len);
			r->text[*len] = '\0';
			r->len = *len;
			r->made_ms = s3db_monotonic_ms();
			pthread_mutex_lock(&v->lock);
			vrender *old = NULL;
			if (vmap_put(&v->renders, p->path, r, (void **)&old) == 0)
				r = NULL;
			pthread_mutex_unlock(&v->lock);
			if (old) {
				free(old->text);
				free(old);
			}
		}
		if (r) {
			free(r->text);
			free(r);
		}
	}
	return 0;
}
