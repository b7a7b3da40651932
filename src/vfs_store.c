/*
 * vfs_store.c — writing to S3.  A record file open for writing is a
 * buffer; flush, fsync and release commit it (vstore_commit: validate +
 * insert or replace) and return only once S3 accepted it.  A refusal
 * leaves S3 untouched, keeps the buffer, and is appended to /.errors and
 * the log.  An empty (or blank) record file is never stored: `truncate
 * -s0 x.json; echo ... > x.json`, touch, and editors that create then
 * write all pass through an empty state, which stays local until content
 * arrives.  Unchanged content is not written again (a `:w` without
 * change costs nothing).  What a write or delete leaves in the cache
 * (the stored record, the listing's names, partition listings dropped)
 * is installed here too, so that readers see it at once.  Every store
 * holds the record's stripe lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* ---- what writes leave in the cache ------------------------------------------------------- */

/* Ends the tombstone of key (a new version of the record was stored or
 * created): the scratch copy holding it becomes a plain scratch file;
 * lock held. */
void vstore_tomb_end(vfs *v, const char *key)
{
	char *holder = vmap_del(&v->tombs, key);
	if (!holder)
		return;
	vnode *s = vmap_get(&v->nodes, holder);
	if (s && s->origin && !strcmp(s->origin, key)) {
		free(s->origin);
		s->origin = NULL;
	}
	free(holder);
}

/* Drops the partition listings of a resource (a write may move records
 * between partitions) — listings only: no record is cached under a
 * partition's key, and a walk of every record per write would cost
 * O(cached records).  Lock held. */
static void drop_part_listings(vfs *v, const char *rname)
{
	char *prefix = s3db_asprintf("%s/.partitions/", rname);
	if (prefix)
		vcache_drop_listings(&v->cache, prefix);
	free(prefix);
}

/* Installs the record a write stored (as get() will read it back).  Its
 * ETag is not known (the library does not return it), so the entry is
 * fresh for record_ttl and re-read after that.  No lock held. */
static void install_written(vfs *v, s3db_resource *res, const char *id, json_object *stored)
{
	const char *rname = s3db_resource_name(res);
	const schema *s = db_current_schema(res);
	char *key = vcache_key(rname, id);
	size_t len = 0;
	char *text = stored ? vrender_record(stored, &len) : NULL;
	int64_t now = s3db_now_ms();
	pthread_mutex_lock(&v->lock);
	uint64_t epoch = vcache_new_epoch(&v->cache);
	if (key) {
		vcache_rec *prev = vmap_get(&v->cache.recs, key);
		record_meta meta;
		memset(&meta, 0, sizeof meta);
		if (prev) {
			meta.has_content = prev->meta.has_content;
			if (meta.has_content)
				meta.size = prev->meta.size;
		}
		meta.last_modified_ms = now;
		vcache_rec *e = NULL;
		if (text) {
			e = vcache_put(&v->cache, key, text, len, &meta,
			               vlookup_record_mtime(s, stored, now), s3db_monotonic_ms(), 0, s);
			text = NULL;
		} else {
			vcache_del(&v->cache, key);
		}
		if (e)
			e->epoch = epoch;
		else
			vcache_neg_put(&v->cache, key, 0, epoch); /* forget, keep the epoch */
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		if (d)
			vcache_dir_add(d, id);
		vlookup_change_note(v, key, epoch, 1);
		vstore_tomb_end(v, key);
	}
	drop_part_listings(v, rname);
	pthread_mutex_unlock(&v->lock);
	free(text);
	vcache_disk_remove(&v->disk, rname, id);
	free(key);
}

/* Forgets a record this vfs deleted.  No lock held. */
void vstore_install_deleted(vfs *v, const char *rname, const char *id)
{
	char *key = vcache_key(rname, id);
	pthread_mutex_lock(&v->lock);
	uint64_t epoch = vcache_new_epoch(&v->cache);
	if (key) {
		double ttl = vfs_ttl_ms(v->o.negative_ttl > v->o.dir_ttl ? v->o.negative_ttl : v->o.dir_ttl);
		vcache_neg_put(&v->cache, key, s3db_monotonic_ms() + ttl, epoch);
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		if (d)
			vcache_dir_remove(d, id);
		vlookup_change_note(v, key, epoch, 0);
	}
	drop_part_listings(v, rname);
	pthread_mutex_unlock(&v->lock);
	vcache_disk_remove(&v->disk, rname, id);
	free(key);
}

/* ---- storing ------------------------------------------------------------------------------------ */

/* Fills a reason buffer (VFS_REASON_CAP bytes), cutting what does not fit. */
void vstore_set_reason(char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, VFS_REASON_CAP, fmt, ap);
	va_end(ap);
}

/* Parses text as a record file for id: a JSON object whose "id", when
 * present, is id.  *out gets the object with "id" set.  0 or -EINVAL
 * (reason filled). */
static int parse_record_text(const char *text, size_t len, const char *id, json_object **out,
                             char *reason)
{
	s3db_error err;
	s3db_error_clear(&err);
	json_object *o = NULL;
	*out = NULL;
	if (s3db_json_parse(text, len, &o, &err) != S3DB_OK) {
		vstore_set_reason(reason, "invalid JSON: %s", err.message);
		return -EINVAL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(reason, VFS_REASON_CAP, "a record must be a JSON object");
		return -EINVAL;
	}
	json_object *idv = NULL;
	if (json_object_object_get_ex(o, "id", &idv) &&
	    (!json_object_is_type(idv, json_type_string) || strcmp(json_object_get_string(idv), id))) {
		snprintf(reason, VFS_REASON_CAP,
		         "the \"id\" inside the file (%s) differs from the file name's id (%s); "
		         "rename the file to change an id", idv ? json_object_to_json_string(idv) : "null",
		         id);
		json_object_put(o);
		return -EINVAL;
	}
	json_object_object_add(o, "id", json_object_new_string(id));
	*out = o;
	return 0;
}

/* 1 when text is what S3 holds for res/id: the cache holds this very
 * text and one HEAD confirms the object is the one it was read from
 * (cheaper than the read-modify-write a replace costs, and no spurious
 * updatedAt for a save without change).  No lock held. */
int vstore_unchanged(vfs *v, s3db_resource *res, const char *id, const char *key,
                     const schema *s, const char *text, size_t len)
{
	pthread_mutex_lock(&v->lock);
	vcache_rec *e = vmap_get(&v->cache.recs, key);
	int same = e && e->schema == (const void *)s && e->meta.etag[0] && e->len == len &&
	           !memcmp(e->text, text, len);
	pthread_mutex_unlock(&v->lock);
	if (!same)
		return 0;
	record_meta m;
	memset(&m, 0, sizeof m);
	if (resource_head_meta(res, id, &m, NULL) != S3DB_OK)
		return 0;
	pthread_mutex_lock(&v->lock);
	e = vmap_get(&v->cache.recs, key);
	same = e && e->schema == (const void *)s && e->len == len && !memcmp(e->text, text, len) &&
	       vcache_validators_match(e, m.etag, m.size, m.last_modified_ms);
	if (same) {
		e->validated_ms = s3db_monotonic_ms();
		v->revalidations++;
	}
	pthread_mutex_unlock(&v->lock);
	return same;
}

/* Stores record o (a JSON object whose "id" is id) as rname/id:
 * insert, or replace when S3 has it (`remote` is what is known: 1, 0 or
 * -1; S3 decides when the guess is wrong, unless excl: then an existing
 * record is -EEXIST).  text (optional) is o as written: when it is what
 * the cache holds, confirmed within record_ttl, nothing is written.
 * Returns 0 or -errno with reason filled.  The caller holds the
 * record's stripe. */
int vstore_record_json(vfs *v, const char *rname, const char *id, json_object *o,
                       const char *text, size_t len, int remote, int excl,
                       const s3db_ctx *ctx, char *reason)
{
	if (v->read_only) {
		snprintf(reason, VFS_REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	s3db_resource *res = s3db_resource_find(v->db, rname);
	if (!res) {
		snprintf(reason, VFS_REASON_CAP, "no resource '%s'", rname);
		return -ENOENT;
	}
	const schema *s = db_current_schema(res);
	if (remote != 0 && text) {
		char *key = vcache_key(rname, id);
		int same = key && vstore_unchanged(v, res, id, key, s, text, len);
		free(key);
		if (same)
			return 0;
	}
	json_object *out = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = S3DB_OK;
	for (int attempt = 0; attempt < 3; attempt++) {
		s3db_error_clear(&err);
		json_object_put(out);
		out = NULL;
		if (remote != 0) {
			c = s3db_replace(res, id, o, ctx, &out, &err);
			if (c == S3DB_ERR_NOT_FOUND) {
				remote = 0;
				continue;
			}
		} else {
			c = s3db_insert(res, o, ctx, &out, &err);
			if (c == S3DB_ERR_EXISTS && !excl) {
				remote = 1;
				continue;
			}
		}
		if (c != S3DB_ERR_PRECONDITION)
			break;
	}
	int rc = 0;
	if (c == S3DB_OK) {
		install_written(v, res, id, out);
	} else {
		rc = vfs_errno_of(v, c);
		snprintf(reason, VFS_REASON_CAP, "%s", err.message[0] ? err.message : s3db_strerror(c));
	}
	json_object_put(out);
	return rc;
}

/* vstore_record_json for the text of a record file: 0 stored (or already
 * there), 1 nothing stored (blank text: an empty file stays local),
 * -errno with reason filled. */
int vstore_record_text(vfs *v, const char *rname, const char *id, const char *text,
                       size_t len, int remote, int excl, const s3db_ctx *ctx, char *reason)
{
	if (v->read_only) {
		snprintf(reason, VFS_REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	if (vfs_is_blank(text, len))
		return 1;
	json_object *o = NULL;
	int rc = parse_record_text(text, len, id, &o, reason);
	if (!rc)
		rc = vstore_record_json(v, rname, id, o, text, len, remote, excl, ctx, reason);
	json_object_put(o);
	return rc;
}

/* Stores bytes as the binary content of rname/id.  0, 1 (empty: nothing
 * stored), -errno.  The caller holds the record's stripe. */
int vstore_content(vfs *v, const char *rname, const char *id, const char *data, size_t len,
                   char *reason)
{
	if (v->read_only) {
		snprintf(reason, VFS_REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	if (len == 0)
		return 1;
	s3db_resource *res = s3db_resource_find(v->db, rname);
	if (!res) {
		snprintf(reason, VFS_REASON_CAP, "no resource '%s'", rname);
		return -ENOENT;
	}
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = s3db_set_content(res, id, data, len, NULL, &err);
	if (c != S3DB_OK) {
		snprintf(reason, VFS_REASON_CAP, "%s", err.message[0] ? err.message : s3db_strerror(c));
		return vfs_errno_of(v, c);
	}
	char *key = vcache_key(rname, id);
	pthread_mutex_lock(&v->lock);
	vcache_rec *e = key ? vmap_get(&v->cache.recs, key) : NULL;
	if (e) {
		e->meta.has_content = 1;
		e->meta.size = (int64_t)len;
		e->meta.etag[0] = '\0'; /* unknown now: re-read after record_ttl */
		e->epoch = vcache_new_epoch(&v->cache);
	}
	pthread_mutex_unlock(&v->lock);
	vcache_disk_remove(&v->disk, rname, id);
	free(key);
	return 0;
}

/* Defines resource rname from a .schema.json text.  0, 1 (blank),
 * -errno. */
int vstore_schema(vfs *v, const char *rname, const char *text, size_t len, char *reason)
{
	if (v->read_only) {
		snprintf(reason, VFS_REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	if (vfs_is_blank(text, len))
		return 1;
	s3db_error err;
	s3db_error_clear(&err);
	json_object *def = NULL;
	if (s3db_json_parse(text, len, &def, &err) != S3DB_OK) {
		vstore_set_reason(reason, "invalid JSON: %s", err.message);
		return -EINVAL;
	}
	if (!json_object_is_type(def, json_type_object)) {
		json_object_put(def);
		snprintf(reason, VFS_REASON_CAP, "a resource definition must be a JSON object");
		return -EINVAL;
	}
	s3db_code c = s3db_resource_define(v->db, rname, def, NULL, &err);
	json_object_put(def);
	if (c != S3DB_OK) {
		snprintf(reason, VFS_REASON_CAP, "%s", err.message[0] ? err.message : s3db_strerror(c));
		return vfs_errno_of(v, c);
	}
	pthread_mutex_lock(&v->lock);
	drop_part_listings(v, rname);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* The context a store of n runs with, copied into *out (process name in
 * buf): the caller's, or n's last writer when the caller is unknown (NULL
 * or pid 0).  Lock held. */
static const s3db_ctx *commit_ctx(const vnode *n, const s3db_ctx *ctx, s3db_ctx *out, char *buf,
                                  size_t cap)
{
	if ((!ctx || ctx->pid == 0) && n->writer.pid != 0)
		ctx = &n->writer;
	if (!ctx)
		return NULL;
	*out = *ctx;
	snprintf(buf, cap, "%s", ctx->process ? ctx->process : "");
	out->process = buf;
	return out;
}

/* Stores a node's content if it changed since it was last stored (or
 * tried).  0, or -errno (recorded in /.errors).  The node must be held
 * (a handle).  No lock held. */
int vstore_commit(vfs *v, vnode *n, const s3db_ctx *ctx, const char *op)
{
	if (n->kind == NK_SNAPSHOT || n->kind == NK_SCRATCH)
		return 0;
	s3db_ctx who;
	char who_process[sizeof n->writer_process];
	pthread_mutex_lock(&v->lock);
	ctx = commit_ctx(n, ctx, &who, who_process, sizeof who_process);
	pthread_mutex_unlock(&v->lock);
	char reason[VFS_REASON_CAP];
	reason[0] = '\0';
	int rc;
	if (n->kind == NK_VIRTUAL) {
		pthread_mutex_lock(&v->lock);
		if (!vnode_dirty(n) || n->aseq == n->wseq) {
			rc = vnode_dirty(n) ? n->last_rc : 0;
			pthread_mutex_unlock(&v->lock);
			return rc;
		}
		uint64_t seq = n->wseq;
		size_t len = 0;
		char *text = vbuf_dup(&n->buf, &len);
		pthread_mutex_unlock(&v->lock);
		rc = text ? n->virt->write_fn(n->virt->ud, text, len) : -ENOMEM;
		if (rc > 0)
			rc = -rc;
		free(text);
		/* the next open shows the content as it is now, not a render
		 * a getattr made before this write */
		vrender_purge(v, 0);
		pthread_mutex_lock(&v->lock);
		n->aseq = seq;
		n->last_rc = rc;
		if (!rc)
			n->sseq = seq;
		pthread_mutex_unlock(&v->lock);
		if (rc)
			vfs_record_error(v, n->path, op, -rc, "the plugin refused the content");
		return rc;
	}
	char *lockkey = n->kind == NK_SCHEMA ? s3db_asprintf("%s/", n->res) : vcache_key(n->res, n->id);
	if (!lockkey)
		return -ENOMEM;
	vfs_stripes_lock(v, lockkey, NULL);
	pthread_mutex_lock(&v->lock);
	if (!n->linked || !vnode_dirty(n)) {
		pthread_mutex_unlock(&v->lock);
		vfs_stripes_unlock(v, lockkey, NULL);
		free(lockkey);
		return 0;
	}
	if (n->aseq == n->wseq) {
		rc = n->last_rc;
		pthread_mutex_unlock(&v->lock);
		vfs_stripes_unlock(v, lockkey, NULL);
		free(lockkey);
		return rc;
	}
	uint64_t seq = n->wseq;
	size_t len = 0;
	char *text = vbuf_dup(&n->buf, &len);
	int remote = n->remote, excl = n->excl;
	pthread_mutex_unlock(&v->lock);
	if (!text)
		rc = -ENOMEM;
	else if (n->kind == NK_RECORD)
		rc = vstore_record_text(v, n->res, n->id, text, len, remote, excl, ctx, reason);
	else if (n->kind == NK_CONTENT)
		rc = vstore_content(v, n->res, n->id, text, len, reason);
	else
		rc = vstore_schema(v, n->res, text, len, reason);
	free(text);
	pthread_mutex_lock(&v->lock);
	n->aseq = seq;
	n->last_rc = rc < 0 ? rc : 0;
	if (rc == 0) {
		n->sseq = seq;
		n->remote = 1;
		n->created = 0;
		n->excl = 0;
	}
	pthread_mutex_unlock(&v->lock);
	vfs_stripes_unlock(v, lockkey, NULL);
	free(lockkey);
	if (rc < 0) {
		if (!reason[0])
			snprintf(reason, sizeof reason, "%s", strerror(-rc));
		vfs_record_error(v, n->path, op, -rc, reason);
		return rc;
	}
	return 0;
}
