/*
 * vfs_rename.c — mv, and the renames editors make.
 *
 * Renames never lose a record: record -> record inserts (or replaces) the
 * target first and deletes the source only then; record -> scratch name
 * (vim's and emacs's backup rename) moves the content into the scratch
 * file and hides the record locally (a tombstone) WITHOUT deleting it in
 * S3: the record is deleted only when that scratch copy is removed while
 * still the record's only copy, or moved onto another record name.  If a
 * new file of the record's name is created meanwhile (the editor writing
 * the new version) the tombstone ends and the new content replaces the
 * record; if the editor renames its backup back, the record is restored
 * (without a request when the copy was not modified).  Unmounting with a
 * tombstone pending leaves the record in S3.
 *
 * vfs_hide and vfs_unhide serve libfuse's way of keeping an unlinked
 * open file reachable: it renames the file to a hidden name (never
 * listed) and unlinks that name at the last close.  A record S3 has stays
 * in S3, hidden like a tombstoned one, until then (contract: vfs.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* ---- rename ----------------------------------------------------------------------------------- */

/* The current bytes of a record, content, schema or scratch file
 * (malloc'd): the local node's when it shadows S3, else S3's (through
 * the cache).  *remote: 1 when S3 has the record (records).  0 or
 * -errno. */
static int source_bytes(vfs *v, const vpath *p, char **text, size_t *len, int *remote,
                        const s3db_ctx *ctx)
{
	*text = NULL;
	*len = 0;
	*remote = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (vnode_shadows(n)) {
		*text = vbuf_dup(&n->buf, len);
		*remote = n->kind == NK_RECORD ? n->remote : 1;
		pthread_mutex_unlock(&v->lock);
		return *text ? 0 : -ENOMEM;
	}
	int hidden = vnode_tombstoned(v, p->key);
	pthread_mutex_unlock(&v->lock);
	if (p->kind == PK_SCRATCH || p->kind == PK_FREE)
		return -ENOENT;
	if (p->kind == PK_SCHEMA) {
		*text = vrender_schema(p->res, len);
		return *text ? 0 : -ENOMEM;
	}
	if (hidden)
		return -ENOENT;
	int rc = vlookup_ensure_record(v, p->res, p->id, WANT_OPEN, ctx);
	if (rc)
		return rc;
	if (p->kind == PK_CONTENT) {
		void *data = NULL;
		s3db_error err;
		s3db_error_clear(&err);
		s3db_code c = s3db_get_content(p->res, p->id, &data, len, NULL, &err);
		if (c != S3DB_OK)
			return vfs_errno_of(v, c);
		char *t = malloc(*len + 1);
		if (!t) {
			free(data);
			return -ENOMEM;
		}
		memcpy(t, data, *len);
		t[*len] = '\0';
		free(data);
		*text = t;
		return 0;
	}
	pthread_mutex_lock(&v->lock);
	vcache_rec *e = vcache_get(&v->cache, p->key);
	if (e) {
		*text = s3db_strndup(e->text, e->len);
		*len = e->len;
	}
	pthread_mutex_unlock(&v->lock);
	return e ? (*text ? 0 : -ENOMEM) : -EIO;
}

/* Makes path a scratch file holding text (replacing what was there);
 * origin (optional): the record key it is now the only copy of;
 * copy_of (optional): the record it is a copy of.  Lock held.  0 or
 * -errno. */
static int put_scratch(vfs *v, const vpath *to, const char *text, size_t len, const char *origin,
                       const char *copy_of)
{
	vnode *old = vmap_get(&v->nodes, to->path);
	if (old)
		vnode_unlink(v, old);
	vnode *n = vnode_new(v, to->path, to->dir, to->name, NK_SCRATCH, NULL, NULL);
	if (!n)
		return -ENOMEM;
	int rc = vbuf_set(&n->buf, text, len);
	if (!rc && origin && !(n->origin = strdup(origin)))
		rc = -ENOMEM;
	if (!rc)
		rc = vnode_link(v, n);
	if (rc) {
		vnode_free(n);
		return rc;
	}
	n->sseq = n->wseq; /* unchanged since it became a copy */
	if (copy_of) {
		n->copy_of = strdup(copy_of);
		n->copy_epoch = v->cache.epoch;
	}
	if (origin) {
		char *holder = strdup(n->path);
		char *prev = NULL;
		if (!holder || vmap_put(&v->tombs, origin, holder, (void **)&prev)) {
			free(holder);
			free(n->origin);
			n->origin = NULL;
		}
		free(prev);
	}
	return 0;
}

/* 1 when the target of a rename exists (for RENAME_NOREPLACE). */
static int target_exists(vfs *v, const char *path, const s3db_ctx *ctx)
{
	struct stat st;
	return vfs_getattr(v, path, &st, ctx) == 0;
}

/* Moves a linked node to the path of b (a node there is unlinked first);
 * the tombstone it holds follows it.  Lock held.  0 or -ENOMEM. */
static int node_move(vfs *v, vnode *n, const vpath *b)
{
	vnode *old = vmap_get(&v->nodes, b->path);
	if (old == n)
		return 0;
	if (old)
		vnode_unlink(v, old);
	char *path = strdup(b->path), *dir = strdup(b->dir), *name = strdup(b->name);
	if (!path || !dir || !name) {
		free(path);
		free(dir);
		free(name);
		return -ENOMEM;
	}
	if (n->linked)
		vmap_del(&v->nodes, n->path);
	free(n->path);
	free(n->dir);
	free(n->name);
	n->path = path;
	n->dir = dir;
	n->name = name;
	n->linked = 1;
	if (vmap_put(&v->nodes, n->path, n, NULL)) {
		n->linked = 0; /* out of memory: the file is lost to the tree */
		vnode_release_origin(v, n);
		return -ENOMEM;
	}
	if (n->origin) {
		char *holder = strdup(n->path), *prev = NULL;
		if (holder && !vmap_put(&v->tombs, n->origin, holder, (void **)&prev))
			free(prev);
		else
			free(holder);
	}
	return 0;
}

static int rename_scratch_to_scratch(vfs *v, const vpath *a, const vpath *b)
{
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, a->path);
	int rc = n ? node_move(v, n, b) : -ENOENT;
	if (n && !rc) {
		n->unlisted = 0;
		n->mtime = vfs_ts_now();
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* A copy of a record, content or schema file as a scratch file; a
 * record's name is hidden until a new version is written (or the copy is
 * renamed back), and S3 keeps it until the copy is removed. */
static int rename_data_to_scratch(vfs *v, const vpath *a, const vpath *b, const s3db_ctx *ctx)
{
	int is_record = a->kind == PK_RECORD;
	if (is_record && v->read_only)
		return -EROFS;
	if (is_record)
		vfs_stripes_lock(v, a->key, NULL);
	char *text = NULL;
	size_t len = 0;
	int remote = 1;
	int rc = source_bytes(v, a, &text, &len, &remote, ctx);
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		const char *origin = is_record && remote != 0 ? a->key : NULL;
		rc = put_scratch(v, b, text, len, origin, is_record ? a->key : NULL);
		if (!rc && is_record)
			vunlink_drop_node_at(v, a->path);
		pthread_mutex_unlock(&v->lock);
	}
	free(text);
	if (is_record)
		vfs_stripes_unlock(v, a->key, NULL);
	return rc;
}

/* A scratch file committed as a record, content or schema. */
static int rename_scratch_to_data(vfs *v, const vpath *a, const vpath *b, int noreplace,
                                  const s3db_ctx *ctx)
{
	if (v->read_only) {
		vfs_record_error(v, b->path, "rename", EROFS,
		                 "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	pthread_mutex_lock(&v->lock);
	vnode *sn = vmap_get(&v->nodes, a->path);
	char *origin = sn && sn->origin ? strdup(sn->origin) : NULL;
	char *copy_of = sn && sn->copy_of ? strdup(sn->copy_of) : NULL;
	uint64_t copy_epoch = sn ? sn->copy_epoch : 0;
	int clean = sn && sn->wseq == sn->sseq;
	size_t len = 0;
	char *text = sn ? vbuf_dup(&sn->buf, &len) : NULL;
	pthread_mutex_unlock(&v->lock);
	if (!sn) {
		free(origin);
		return -ENOENT;
	}
	if (!text) {
		free(origin);
		return -ENOMEM;
	}
	const char *lockkey = b->kind == PK_SCHEMA ? NULL : b->key;
	char *schema_key = b->kind == PK_SCHEMA ? s3db_asprintf("%s/", b->resname) : NULL;
	if (!lockkey)
		lockkey = schema_key ? schema_key : "";
	const char *other = origin && strcmp(origin, lockkey) ? origin : NULL;
	vfs_stripes_lock(v, lockkey, other);
	char reason[VFS_REASON_CAP];
	reason[0] = '\0';
	int rc = 0;
	if (noreplace && target_exists(v, b->path, ctx))
		rc = -EEXIST;
	if (!rc && b->kind == PK_RECORD) {
		pthread_mutex_lock(&v->lock);
		vnode *rn = vmap_get(&v->nodes, b->path);
		int hidden = vnode_tombstoned(v, b->key);
		int remote = hidden ? 1 : vnode_shadows(rn) ? rn->remote : -1;
		/* vim putting its untouched backup back after a refused write:
		 * nothing was stored since the copy was made, and S3 (as last
		 * seen) has exactly this text */
		vcache_rec *e = vmap_get(&v->cache.recs, b->key);
		int restore = copy_of && !strcmp(copy_of, b->key) && clean && e && e->len == len &&
		              !memcmp(e->text, text, len) &&
		              !vcache_changed_since(&v->cache, b->key, copy_epoch);
		if (restore) {
			vstore_tomb_end(v, b->key);
			vunlink_drop_node_at(v, b->path);
			vunlink_drop_node_at(v, a->path);
			rc = 2;
		}
		pthread_mutex_unlock(&v->lock);
		if (rc == 0) {
			rc = vstore_record_text(v, b->resname, b->id, text, len, remote, 0, ctx, reason);
			if (rc == 1) {
				rc = -EINVAL;
				snprintf(reason, sizeof reason, "the file is empty: a record needs a JSON object");
			}
		}
	} else if (!rc && b->kind == PK_CONTENT) {
		rc = vlookup_ensure_record(v, b->res, b->id, WANT_ATTR, ctx);
		if (rc == -ENOENT)
			snprintf(reason, sizeof reason, "no record '%s' to hold the content", b->id);
		if (!rc)
			rc = vstore_content(v, b->resname, b->id, text, len, reason);
		if (rc == 1) {
			rc = -EINVAL;
			snprintf(reason, sizeof reason, "the file is empty");
		}
	} else if (!rc) {
		rc = vstore_schema(v, b->resname, text, len, reason);
		if (rc == 1) {
			rc = -EINVAL;
			snprintf(reason, sizeof reason, "the file is empty: a definition is a JSON object");
		}
	}
	if (rc == 0 && other) {
		/* the scratch file was the only copy of another record: that
		 * record moved here */
		char *rname = NULL, *id = NULL;
		rc = vpath_split_key(other, &rname, &id);
		if (!rc)
			rc = vunlink_delete_record(v, rname, id, a->path, "rename", 1, ctx);
		free(rname);
		free(id);
	}
	if (rc == 0) {
		pthread_mutex_lock(&v->lock);
		vunlink_drop_node_at(v, b->path);
		vunlink_drop_node_at(v, a->path);
		pthread_mutex_unlock(&v->lock);
	} else if (rc < 0 && reason[0]) {
		vfs_record_error(v, b->path, "rename", -rc, reason);
	}
	vfs_stripes_unlock(v, lockkey, other);
	free(schema_key);
	free(origin);
	free(copy_of);
	free(text);
	return rc == 2 ? 0 : rc;
}

/* a.json -> b.json (same or another resource; b may exist): the target
 * is written first, the source deleted only once that worked. */
static int rename_record_to_record(vfs *v, const vpath *a, const vpath *b, int noreplace,
                                   const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	if (!strcmp(a->key, b->key))
		return 0;
	vfs_stripes_lock(v, a->key, b->key);
	char reason[VFS_REASON_CAP];
	reason[0] = '\0';
	char *text = NULL;
	size_t len = 0;
	int remote_a = 1;
	int rc = source_bytes(v, a, &text, &len, &remote_a, ctx);
	int has_content = 0;
	if (!rc && noreplace && target_exists(v, b->path, ctx))
		rc = -EEXIST;
	json_object *o = NULL;
	if (!rc) {
		s3db_error err;
		s3db_error_clear(&err);
		if (vfs_is_blank(text, len)) {
			rc = -EINVAL;
			snprintf(reason, sizeof reason, "the file is empty: a record needs a JSON object");
		} else if (s3db_json_parse(text, len, &o, &err) != S3DB_OK ||
		           !json_object_is_type(o, json_type_object)) {
			rc = -EINVAL;
			vstore_set_reason(reason, "invalid JSON: %s",
			                  err.message[0] ? err.message : "not an object");
		} else {
			json_object_object_add(o, "id", json_object_new_string(b->id));
		}
	}
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		vnode *rn = vmap_get(&v->nodes, b->path);
		int remote_b = vnode_tombstoned(v, b->key) ? 1 : vnode_shadows(rn) ? rn->remote : -1;
		vcache_rec *e = remote_a ? vcache_get(&v->cache, a->key) : NULL;
		has_content = e && e->meta.has_content;
		pthread_mutex_unlock(&v->lock);
		rc = vstore_record_json(v, b->resname, b->id, o, NULL, 0, remote_b, 0, ctx, reason);
	}
	if (!rc && has_content) {
		/* binary content goes along (no loss) before the source goes */
		void *data = NULL;
		size_t clen = 0;
		char *ctype = NULL;
		s3db_error err;
		s3db_error_clear(&err);
		s3db_code c = s3db_get_content(a->res, a->id, &data, &clen, &ctype, &err);
		if (c == S3DB_OK)
			c = s3db_set_content(b->res, b->id, data, clen, ctype, &err);
		if (c != S3DB_OK) {
			rc = vfs_errno_of(v, c);
			vstore_set_reason(reason, "copying the binary content: %s", err.message);
		}
		free(data);
		free(ctype);
	}
	if (!rc && remote_a != 0)
		rc = vunlink_delete_record(v, a->resname, a->id, a->path, "rename", 1, ctx);
	else if (rc < 0 && reason[0])
		vfs_record_error(v, b->path, "rename", -rc, reason);
	if (!rc) {
		char *abin = s3db_asprintf("/%s/%s.bin", a->resname, a->id);
		pthread_mutex_lock(&v->lock);
		vunlink_drop_node_at(v, a->path);
		vunlink_drop_node_at(v, abin);
		vunlink_drop_node_at(v, b->path);
		pthread_mutex_unlock(&v->lock);
		free(abin);
	}
	json_object_put(o);
	free(text);
	vfs_stripes_unlock(v, a->key, b->key);
	return rc;
}

/* x.bin -> y.bin: y gets the content, x loses it. */
static int rename_content_to_content(vfs *v, const vpath *a, const vpath *b, int noreplace,
                                     const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	char *text = NULL;
	size_t len = 0;
	int remote = 1;
	int rc = source_bytes(v, a, &text, &len, &remote, ctx);
	if (!rc && noreplace && target_exists(v, b->path, ctx))
		rc = -EEXIST;
	char reason[VFS_REASON_CAP];
	reason[0] = '\0';
	if (!rc) {
		vfs_stripes_lock(v, b->key, NULL);
		rc = vstore_content(v, b->resname, b->id, text, len, reason);
		vfs_stripes_unlock(v, b->key, NULL);
		if (rc == 1)
			rc = 0; /* empty: nothing to move */
		if (rc < 0)
			vfs_record_error(v, b->path, "rename", -rc, reason);
	}
	if (!rc)
		rc = vfs_unlink(v, a->path, ctx);
	free(text);
	return rc;
}

int vfs_rename(vfs *v, const char *from, const char *to, unsigned int flags, const s3db_ctx *ctx)
{
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	int noreplace = (flags & RENAME_NOREPLACE) != 0;
	vpath a, b;
	int rc = vpath_parse(v, from, &a);
	int rb = vpath_parse(v, to, &b);
	if (rc || rb) {
		vpath_free(&a);
		vpath_free(&b);
		return rc ? rc : rb;
	}
	if (!strcmp(a.path, b.path)) {
		struct stat st;
		rc = vfs_getattr(v, a.path, &st, ctx);
		goto out;
	}
	switch (a.kind) {
	case PK_ROOT:
	case PK_RES:
	case PK_PARTS:
	case PK_PART_DIR:
	case PK_STATUS:
	case PK_ERRORS:
	case PK_VIRTUAL:
		rc = -EPERM;
		goto out;
	case PK_PART_RECORD:
		rc = -EROFS;
		goto out;
	case PK_FREE:
	case PK_BADNAME:
	case PK_PART_OTHER:
		rc = -ENOENT;
		goto out;
	default:
		break;
	}
	switch (b.kind) {
	case PK_ROOT:
	case PK_RES:
	case PK_PARTS:
		rc = -EISDIR;
		goto out;
	case PK_STATUS:
	case PK_ERRORS:
	case PK_VIRTUAL:
		rc = -EPERM;
		goto out;
	case PK_PART_DIR:
	case PK_PART_RECORD:
	case PK_PART_OTHER:
		rc = -EROFS;
		goto out;
	case PK_BADNAME:
		rc = -EINVAL;
		vfs_record_error(v, b.path, "rename", EINVAL,
		                 "the name is not <id>.json / <id>.bin with a valid record id");
		goto out;
	default:
		break;
	}
	int to_scratch = b.kind == PK_SCRATCH || b.kind == PK_FREE;
	if (to_scratch && noreplace && target_exists(v, b.path, ctx)) {
		rc = -EEXIST;
		goto out;
	}
	if (a.kind == PK_SCRATCH) {
		if (to_scratch)
			rc = rename_scratch_to_scratch(v, &a, &b);
		else
			rc = rename_scratch_to_data(v, &a, &b, noreplace, ctx);
	} else if (to_scratch) {
		rc = rename_data_to_scratch(v, &a, &b, ctx);
	} else if (a.kind == PK_RECORD && b.kind == PK_RECORD) {
		rc = rename_record_to_record(v, &a, &b, noreplace, ctx);
	} else if (a.kind == PK_CONTENT && b.kind == PK_CONTENT) {
		rc = rename_content_to_content(v, &a, &b, noreplace, ctx);
	} else {
		rc = -EPERM; /* a record into a schema or content file, ... */
	}
	if (!rc) {
		vstat_dir_changed(v, a.path);
		vstat_dir_changed(v, b.path);
	}
out:
	vpath_free(&a);
	vpath_free(&b);
	return rc;
}

/* ---- unlinking an open file -------------------------------------------------------------------- */

/* The node at b->path after a hide: unlisted; lock held. */
static void mark_unlisted(vfs *v, const vpath *b)
{
	vnode *n = vmap_get(&v->nodes, b->path);
	if (n)
		n->unlisted = 1;
}

static int hide_scratch(vfs *v, const vpath *a, const vpath *b)
{
	int rc = rename_scratch_to_scratch(v, a, b);
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		mark_unlisted(v, b);
		pthread_mutex_unlock(&v->lock);
	}
	return rc;
}

/* A record file unlinked while open: its local node (the one writable
 * descriptors use), or else a copy of its bytes, becomes the hidden
 * scratch file.  A record S3 has is tombstoned, not deleted: the hidden
 * file's removal deletes it, unless a new version is written first. */
static int hide_record(vfs *v, const vpath *a, const vpath *b, const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	vfs_stripes_lock(v, a->key, NULL);
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, a->path);
	if (vnode_tombstoned(v, a->key)) {
		rc = -ENOENT;
	} else if (n) {
		if (n->remote != 0 && !(n->origin = strdup(a->key)))
			rc = -ENOMEM;
		else if (!(rc = node_move(v, n, b))) {
			n->kind = NK_SCRATCH;
			free(n->res);
			free(n->id);
			n->res = n->id = NULL;
			n->created = n->excl = 0;
			n->sseq = n->aseq = n->wseq;
			n->unlisted = 1;
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (rc == 1) {
		char *text = NULL;
		size_t len = 0;
		int remote = 1;
		rc = source_bytes(v, a, &text, &len, &remote, ctx);
		if (!rc) {
			pthread_mutex_lock(&v->lock);
			rc = put_scratch(v, b, text, len, remote != 0 ? a->key : NULL, NULL);
			if (!rc)
				mark_unlisted(v, b);
			pthread_mutex_unlock(&v->lock);
		}
		free(text);
	}
	vfs_stripes_unlock(v, a->key, NULL);
	return rc;
}

/* A content file unlinked while open: S3 loses the content at once (as
 * rm x.bin); the hidden file keeps a copy for fstat. */
static int hide_content(vfs *v, const vpath *a, const vpath *b, const s3db_ctx *ctx)
{
	char *text = NULL;
	size_t len = 0;
	int remote = 1;
	int rc = source_bytes(v, a, &text, &len, &remote, ctx);
	if (!rc)
		rc = vunlink_content(v, a, ctx);
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		rc = put_scratch(v, b, text, len, NULL, NULL);
		if (!rc)
			mark_unlisted(v, b);
		pthread_mutex_unlock(&v->lock);
	}
	free(text);
	return rc;
}

int vfs_hide(vfs *v, const char *path, const char *hidden, const s3db_ctx *ctx)
{
	vpath a, b;
	int rc = vpath_parse(v, path, &a);
	int rb = vpath_parse(v, hidden, &b);
	if (!rc && rb)
		rc = rb;
	if (!rc && (strcmp(a.dir, b.dir) != 0 || (b.kind != PK_SCRATCH && b.kind != PK_FREE)))
		rc = -EINVAL;
	if (!rc && !(rc = vunlink_refused(a.kind))) {
		switch (a.kind) {
		case PK_SCRATCH:
			rc = hide_scratch(v, &a, &b);
			break;
		case PK_RECORD:
			rc = hide_record(v, &a, &b, ctx);
			break;
		case PK_CONTENT:
			rc = hide_content(v, &a, &b, ctx);
			break;
		default:
			break;
		}
	}
	if (!rc)
		vstat_dir_changed(v, a.path);
	vpath_free(&a);
	vpath_free(&b);
	return rc;
}

int vfs_unhide(vfs *v, const char *hidden, const char *path)
{
	vpath b;
	int rc = vpath_parse(v, path, &b);
	if (rc) {
		vpath_free(&b);
		return rc;
	}
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, hidden);
	if (!n || !n->unlisted) {
		rc = -ENOENT;
	} else if (n->origin) {
		/* S3 still has the record: it shows again */
		vnode_release_origin(v, n);
	} else if ((b.kind == PK_SCRATCH || b.kind == PK_FREE) && !vmap_get(&v->nodes, b.path)) {
		rc = node_move(v, n, &b);
		if (!rc)
			n->unlisted = 0;
	}
	pthread_mutex_unlock(&v->lock);
	vpath_free(&b);
	return rc;
}

int vfs_fgetattr(vfs *v, uint64_t fh, struct stat *st)
{
	pthread_mutex_lock(&v->lock);
	vhandle *h = vhandle_get(v, fh);
	if (h)
		vstat_node(v, st, h->node);
	pthread_mutex_unlock(&v->lock);
	return h ? 0 : -EBADF;
}
