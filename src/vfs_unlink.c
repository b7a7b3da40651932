/*
 * vfs_unlink.c — rm: unlinking a record deletes it in S3 (without
 * reading it first when the cache knows it: resource_delete_known);
 * unlinking its content (<id>.bin) removes the body and keeps the
 * record; a scratch file is removed locally, and if it was the only copy
 * of a tombstoned record (an editor's backup) the record is deleted then.
 * The schema, status and partition views cannot be removed
 * (vunlink_refused says which errno).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* 1 when a delete of res/id can go without reading the record first
 * (resource_delete_known): the cache holds it, and when the resource
 * has partitions (whose references the record's values name) it was
 * confirmed within record_ttl.  *known gets the cached record (new
 * reference).  No lock held. */
static int known_record(vfs *v, s3db_resource *res, const char *id, json_object **known)
{
	const schema *s = db_current_schema(res);
	int parts = s && s->partitions && json_object_object_length(s->partitions) > 0;
	char *key = vcache_key(s3db_resource_name(res), id);
	char *text = NULL;
	size_t len = 0;
	*known = NULL;
	pthread_mutex_lock(&v->lock);
	vcache_rec *e = key ? vmap_get(&v->cache.recs, key) : NULL;
	if (e && e->schema == (const void *)s &&
	    (!parts || s3db_monotonic_ms() - e->validated_ms < vfs_ttl_ms(v->o.record_ttl))) {
		text = s3db_strndup(e->text, e->len);
		len = e->len;
	}
	pthread_mutex_unlock(&v->lock);
	free(key);
	if (text && s3db_json_parse(text, len, known, NULL) != S3DB_OK)
		*known = NULL;
	free(text);
	return *known != NULL;
}

/* Deletes record rname/id in S3 (absent already: 0) and forgets it.
 * A record the cache holds is deleted without being read (known_record:
 * one DELETE, or one DeleteObjects with its partition references); S3
 * cannot then say whether it still existed, so that is 0 too.
 * The caller holds its stripe.  0 or -errno (recorded for path/op). */
int vunlink_delete_record(vfs *v, const char *rname, const char *id, const char *path,
                          const char *op, int missing_ok, const s3db_ctx *ctx)
{
	if (v->read_only) {
		vfs_record_error(v, path, op, EROFS,
		                 "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	s3db_resource *res = s3db_resource_find(v->db, rname);
	if (!res)
		return missing_ok ? 0 : -ENOENT;
	s3db_error err;
	s3db_error_clear(&err);
	json_object *known = NULL;
	s3db_code c = known_record(v, res, id, &known)
	                  ? resource_delete_known(res, id, known, ctx, &err)
	                  : s3db_delete(res, id, ctx, &err);
	json_object_put(known);
	if (c == S3DB_ERR_NOT_FOUND) {
		vstore_install_deleted(v, rname, id);
		return missing_ok ? 0 : -ENOENT;
	}
	if (c != S3DB_OK) {
		int rc = vfs_errno_of(v, c);
		vfs_record_error(v, path, op, -rc, err.message);
		return rc;
	}
	vstore_install_deleted(v, rname, id);
	return 0;
}

static int unlink_scratch(vfs *v, const vpath *p, const s3db_ctx *ctx)
{
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	char *origin = n && n->origin ? strdup(n->origin) : NULL;
	pthread_mutex_unlock(&v->lock);
	if (!n)
		return -ENOENT;
	if (origin) {
		/* the only copy of a record renamed here: removing it deletes
		 * the record (mv x.json x.bak; rm x.bak) */
		char *rname = NULL, *id = NULL;
		int rc = vpath_split_key(origin, &rname, &id);
		if (!rc) {
			vfs_stripes_lock(v, origin, NULL);
			pthread_mutex_lock(&v->lock);
			char *holder = vmap_get(&v->tombs, origin);
			int still = holder && !strcmp(holder, p->path);
			pthread_mutex_unlock(&v->lock);
			if (still)
				rc = vunlink_delete_record(v, rname, id, p->path, "unlink", 1, ctx);
			vfs_stripes_unlock(v, origin, NULL);
		}
		free(rname);
		free(id);
		free(origin);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&v->lock);
	n = vmap_get(&v->nodes, p->path);
	if (n)
		vnode_unlink(v, n);
	pthread_mutex_unlock(&v->lock);
	return n ? 0 : -ENOENT;
}

/* Unlinks the node at path, if any; lock held. */
void vunlink_drop_node_at(vfs *v, const char *path)
{
	vnode *n = path ? vmap_get(&v->nodes, path) : NULL;
	if (n)
		vnode_unlink(v, n);
}

static int unlink_record(vfs *v, const vpath *p, const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	vfs_stripes_lock(v, p->key, NULL);
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	int hidden = vnode_tombstoned(v, p->key);
	int shadow = vnode_shadows(n);
	int local_only = shadow && n->created && n->remote == 0;
	pthread_mutex_unlock(&v->lock);
	int rc = 0;
	if (hidden)
		rc = -ENOENT;
	else if (!local_only)
		rc = vunlink_delete_record(v, p->resname, p->id, p->path, "unlink", shadow, ctx);
	if (!rc) {
		char *bin = s3db_asprintf("/%s/%s.bin", p->resname, p->id);
		pthread_mutex_lock(&v->lock);
		vunlink_drop_node_at(v, p->path);
		vunlink_drop_node_at(v, bin);
		pthread_mutex_unlock(&v->lock);
		free(bin);
	}
	vfs_stripes_unlock(v, p->key, NULL);
	return rc;
}

/* Removes the content (body) of record p->key, keeping the record: an
 * empty body stored in S3, unless the .bin file was only ever local.
 * Holds the record's stripe.  0, -ENOENT (no content), -EROFS or the
 * store's -errno (recorded in /.errors). */
int vunlink_content(vfs *v, const vpath *p, const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	vfs_stripes_lock(v, p->key, NULL);
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	int local_only = vnode_shadows(n) && n->created;
	pthread_mutex_unlock(&v->lock);
	int rc = 0;
	if (!local_only) {
		rc = vlookup_ensure_record(v, p->res, p->id, WANT_ATTR, ctx);
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = rc ? NULL : vcache_get(&v->cache, p->key);
		if (!rc && !(e && e->meta.has_content) && !vnode_shadows(n))
			rc = -ENOENT;
		pthread_mutex_unlock(&v->lock);
		if (!rc) {
			s3db_error err;
			s3db_error_clear(&err);
			s3db_code c = s3db_set_content(p->res, p->id, "", 0, NULL, &err);
			if (c != S3DB_OK) {
				rc = vfs_errno_of(v, c);
				vfs_record_error(v, p->path, "unlink", -rc, err.message);
			} else {
				pthread_mutex_lock(&v->lock);
				e = vcache_get(&v->cache, p->key);
				if (e) {
					e->meta.has_content = 0;
					e->meta.size = 0;
					e->meta.etag[0] = '\0';
					e->epoch = vcache_new_epoch(&v->cache);
				}
				pthread_mutex_unlock(&v->lock);
				vcache_disk_remove(&v->disk, p->resname, p->id);
			}
		}
	}
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		vunlink_drop_node_at(v, p->path);
		pthread_mutex_unlock(&v->lock);
	}
	vfs_stripes_unlock(v, p->key, NULL);
	return rc;
}

/* What removing an entry that is not a file answers, by kind: -EISDIR
 * for directories, -EPERM for the fixed files (/.status, /.errors, plugin
 * files, .schema.json), -EROFS in the partition tree, -ENOENT for names
 * that are nothing; 0 for scratch files, records and contents, which the
 * caller removes (unlink) or hides (vfs_hide). */
int vunlink_refused(pkind kind)
{
	switch (kind) {
	case PK_ROOT:
	case PK_RES:
	case PK_PARTS:
	case PK_PART_DIR:
		return -EISDIR;
	case PK_STATUS:
	case PK_ERRORS:
	case PK_VIRTUAL:
	case PK_SCHEMA:
		return -EPERM;
	case PK_PART_RECORD:
		return -EROFS;
	case PK_SCRATCH:
	case PK_RECORD:
	case PK_CONTENT:
		return 0;
	default:
		return -ENOENT;
	}
}

int vfs_make_special(vfs *v, const char *path)
{
	vpath p;
	int rc = vpath_parse(v, path, &p);
	/* in the partition tree, whether or not the name under it means anything */
	int tree = (!rc && p.kind == PK_PARTS) || p.part;
	if (!rc || tree)
		rc = v->read_only || tree ? -EROFS : -EPERM;
	vpath_free(&p);
	return rc;
}

int vfs_unlink(vfs *v, const char *path, const s3db_ctx *ctx)
{
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (!rc && !(rc = vunlink_refused(p.kind))) {
		switch (p.kind) {
		case PK_SCRATCH:
			rc = unlink_scratch(v, &p, ctx);
			break;
		case PK_RECORD:
			rc = unlink_record(v, &p, ctx);
			break;
		case PK_CONTENT:
			rc = vunlink_content(v, &p, ctx);
			break;
		default:
			break;
		}
	}
	if (!rc)
		vstat_dir_changed(v, p.path);
	vpath_free(&p);
	return rc;
}
