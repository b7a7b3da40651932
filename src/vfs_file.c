/*
 * vfs_file.c — open files: open and create pick the node a handle
 * reads and writes (a record's buffer, a scratch file, a schema, or a
 * private snapshot for read-only opens of rendered files); read and
 * write work on the node's buffer; flush, fsync and release commit it
 * (vstore_commit, vfs_store.c) and return only once S3 accepted it;
 * truncate changes a buffer, or a record through one.  An open that
 * reads or keeps a record's content gets the record as S3 has it now
 * (close-to-open: revalidated unless confirmed within record_ttl); one
 * that replaces it (O_TRUNC) or must find none (O_EXCL) only needs to
 * know whether it exists (see open_record).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vfs_int.h"

/* ---- open ------------------------------------------------------------------------------------- */

static int wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* Opens a private read-only copy of text.  0 or -errno. */
static int open_snapshot(vfs *v, const vpath *p, nkind kind, const char *text, size_t len,
                         int flags, uint64_t *fh)
{
	vnode *n = vnode_new(v, p->path, p->dir, p->name, kind, NULL, NULL);
	if (!n)
		return -ENOMEM;
	int rc = vbuf_set(&n->buf, text ? text : "", text ? len : 0);
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		rc = vhandle_new(v, n, flags, fh);
		pthread_mutex_unlock(&v->lock);
	}
	if (rc)
		vnode_free(n);
	return rc;
}

/* Opens a linked node: truncates it for O_TRUNC writers; lock held. */
static int attach(vfs *v, vnode *n, int flags, uint64_t *fh)
{
	if ((flags & O_TRUNC) && wants_write(flags) && n->buf.len > 0) {
		int rc = vbuf_truncate(&n->buf, 0, v->o.max_file_size);
		if (rc)
			return rc;
		n->wseq++;
		n->mtime = vfs_ts_now();
	} else if ((flags & O_TRUNC) && wants_write(flags) && !n->created) {
		n->wseq++; /* an existing record emptied */
		n->mtime = vfs_ts_now();
	}
	return vhandle_new(v, n, flags, fh);
}

/* Creates, links and opens a node; lock held.  *out (optional) the node. */
static int node_create_open(vfs *v, const vpath *p, nkind kind, const char *text, size_t len,
                            int flags, uint64_t *fh, vnode **out)
{
	vnode *n = vnode_new(v, p->path, p->dir, p->name, kind, p->resname, p->id);
	if (!n)
		return -ENOMEM;
	int rc = text ? vbuf_set(&n->buf, text, len) : 0;
	if (!rc)
		rc = vnode_link(v, n);
	if (rc) {
		vnode_free(n);
		return rc;
	}
	if (out)
		*out = n;
	rc = attach(v, n, flags, fh);
	if (rc)
		vnode_unlink(v, n);
	return rc;
}

static int open_scratch(vfs *v, const vpath *p, int flags, uint64_t *fh)
{
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	int rc;
	if (n) {
		rc = (flags & O_CREAT) && (flags & O_EXCL) ? -EEXIST : attach(v, n, flags, fh);
	} else if (!(flags & O_CREAT)) {
		rc = -ENOENT;
	} else {
		vpath q = *p;
		q.resname = NULL;
		q.id = NULL;
		rc = node_create_open(v, &q, NK_SCRATCH, NULL, 0, flags, fh, NULL);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* Opens (or creates) the record file p.  What S3 must confirm first
 * depends on the flags: an open that will read or keep the content (no
 * O_TRUNC, no O_EXCL) needs the record as S3 has it now (WANT_OPEN:
 * close-to-open); a create that replaces the content (O_TRUNC) or must
 * find no record (O_CREAT|O_EXCL) only needs to know whether it exists
 * (WANT_ATTR, which a stale listing may answer: the insert is
 * conditional, so a record another client made meanwhile still turns
 * into a replace, or EEXIST under O_EXCL, when the file is stored).
 * 0 with *fh set, or -errno. */
static int open_record(vfs *v, const vpath *p, int flags, uint64_t *fh, int *keep_cache,
                       const s3db_ctx *ctx)
{
	int wr = wants_write(flags);
	if (wr && v->read_only)
		return -EROFS;
	if (wr)
		vfs_stripes_lock(v, p->key, NULL);
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (vnode_shadows(n) || (wr && n)) {
		rc = (flags & O_CREAT) && (flags & O_EXCL) ? -EEXIST : attach(v, n, flags, fh);
	} else if (vnode_tombstoned(v, p->key)) {
		/* the record was renamed onto a scratch name: a new file of its
		 * name is its next version (vim and emacs after their backup
		 * rename); S3 still has the record */
		if (!(flags & O_CREAT)) {
			rc = -ENOENT;
		} else {
			vnode *nn = NULL;
			rc = node_create_open(v, p, NK_RECORD, NULL, 0, flags, fh, &nn);
			if (!rc) {
				nn->created = 1;
				nn->remote = 1;
				vstore_tomb_end(v, p->key);
			}
		}
	}
	pthread_mutex_unlock(&v->lock);
	for (int attempt = 0; rc == 1 && attempt < 3; attempt++) {
		int replaces = wr && ((flags & O_TRUNC) || ((flags & O_CREAT) && (flags & O_EXCL)));
		int er = vlookup_ensure_record(v, p->res, p->id, replaces ? WANT_ATTR : WANT_OPEN, ctx);
		pthread_mutex_lock(&v->lock);
		if (er == -ENOENT) {
			if (!(flags & O_CREAT)) {
				rc = -ENOENT;
			} else {
				vnode *nn = NULL;
				rc = node_create_open(v, p, NK_RECORD, NULL, 0, flags, fh, &nn);
				if (!rc) {
					nn->created = 1;
					nn->remote = 0;
					nn->excl = (flags & O_EXCL) != 0;
				}
			}
		} else if (er) {
			rc = er;
		} else if ((flags & O_CREAT) && (flags & O_EXCL)) {
			rc = -EEXIST;
		} else {
			vcache_rec *e = vcache_get(&v->cache, p->key);
			if (e && !wr) {
				if (keep_cache)
					*keep_cache = e->gen == e->opened_gen;
				e->opened_gen = e->gen;
				char *copy = s3db_strndup(e->text, e->len);
				size_t len = e->len;
				pthread_mutex_unlock(&v->lock);
				rc = copy ? open_snapshot(v, p, NK_SNAPSHOT, copy, len, flags, fh) : -ENOMEM;
				free(copy);
				pthread_mutex_lock(&v->lock);
			} else if (e) {
				vnode *nn = NULL;
				rc = node_create_open(v, p, NK_RECORD, e->text, e->len, flags, fh, &nn);
				if (!rc)
					nn->remote = 1;
			}
		}
		pthread_mutex_unlock(&v->lock);
	}
	if (wr)
		vfs_stripes_unlock(v, p->key, NULL);
	return rc == 1 ? -EIO : rc;
}

static int open_content(vfs *v, const vpath *p, int flags, uint64_t *fh, const s3db_ctx *ctx)
{
	int wr = wants_write(flags);
	if (wr && v->read_only)
		return -EROFS;
	if (wr)
		vfs_stripes_lock(v, p->key, NULL);
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (vnode_shadows(n) || (wr && n))
		rc = (flags & O_CREAT) && (flags & O_EXCL) ? -EEXIST : attach(v, n, flags, fh);
	else if (vnode_tombstoned(v, p->key))
		rc = -ENOENT;
	pthread_mutex_unlock(&v->lock);
	if (rc == 1)
		rc = vlookup_ensure_record(v, p->res, p->id, WANT_OPEN, ctx);
	if (rc == 0) {
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, p->key);
		int has = e && e->meta.has_content;
		pthread_mutex_unlock(&v->lock);
		void *data = NULL;
		size_t len = 0;
		if (!has && !(flags & O_CREAT)) {
			rc = -ENOENT;
		} else if (has && (flags & O_CREAT) && (flags & O_EXCL)) {
			rc = -EEXIST;
		} else if (has && !(wr && (flags & O_TRUNC))) {
			s3db_error err;
			s3db_error_clear(&err);
			s3db_code c = s3db_get_content(p->res, p->id, &data, &len, NULL, &err);
			if (c != S3DB_OK) {
				log_msg(LOG_LVL_WARN, "reading %s: %s", p->path, err.message);
				rc = vfs_errno_of(v, c);
			}
		}
		if (rc == 0 && !wr) {
			rc = open_snapshot(v, p, NK_SNAPSHOT, data, len, flags, fh);
		} else if (rc == 0) {
			pthread_mutex_lock(&v->lock);
			vnode *nn = NULL;
			rc = node_create_open(v, p, NK_CONTENT, data, len, flags, fh, &nn);
			if (!rc) {
				nn->remote = 1;
				nn->created = !has;
			}
			pthread_mutex_unlock(&v->lock);
		}
		free(data);
	}
	if (wr)
		vfs_stripes_unlock(v, p->key, NULL);
	return rc;
}

static int open_schema(vfs *v, const vpath *p, int flags, uint64_t *fh)
{
	int wr = wants_write(flags);
	if (wr && v->read_only)
		return -EROFS;
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (vnode_shadows(n) || (wr && n))
		rc = attach(v, n, flags, fh);
	pthread_mutex_unlock(&v->lock);
	if (rc != 1)
		return rc;
	size_t len = 0;
	char *text = vrender_schema(p->res, &len);
	if (!text)
		return -ENOMEM;
	if (!wr) {
		rc = open_snapshot(v, p, NK_SNAPSHOT, text, len, flags, fh);
	} else {
		pthread_mutex_lock(&v->lock);
		vnode *nn = NULL;
		n = vmap_get(&v->nodes, p->path);
		rc = n ? attach(v, n, flags, fh)
		       : node_create_open(v, p, NK_SCHEMA, text, len, flags, fh, &nn);
		if (!rc && nn)
			nn->remote = 1;
		pthread_mutex_unlock(&v->lock);
	}
	free(text);
	return rc;
}

static int open_common(vfs *v, const char *path, int flags, uint64_t *fh, int *keep_cache,
                       const s3db_ctx *ctx)
{
	*fh = 0;
	if (keep_cache)
		*keep_cache = 0;
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (rc) {
		vpath_free(&p);
		return rc;
	}
	int wr = wants_write(flags);
	int excl = (flags & O_CREAT) && (flags & O_EXCL);
	char *text = NULL;
	size_t len = 0;
	switch (p.kind) {
	case PK_ROOT:
	case PK_RES:
	case PK_PARTS:
	case PK_PART_DIR:
		rc = excl ? -EEXIST : -EISDIR;
		break;
	case PK_STATUS:
	case PK_ERRORS:
		if (excl)
			rc = -EEXIST;
		else if (wr)
			rc = -EACCES;
		else if (!(rc = vrender_virtual(v, &p, 0, &text, &len)))
			rc = open_snapshot(v, &p, NK_SNAPSHOT, text, len, flags, fh);
		break;
	case PK_VIRTUAL:
		if (excl) {
			rc = -EEXIST;
		} else if (wr && !p.virt->write_fn) {
			rc = -EACCES;
		} else if ((flags & O_TRUNC) && wr) {
			rc = open_snapshot(v, &p, NK_VIRTUAL, "", 0, flags, fh);
		} else if (!(rc = vrender_virtual(v, &p, 0, &text, &len))) {
			rc = open_snapshot(v, &p, NK_VIRTUAL, text, len, flags, fh);
		}
		if (!rc) {
			pthread_mutex_lock(&v->lock);
			vhandle *h = vhandle_get(v, *fh);
			if (h) {
				h->node->virt = p.virt;
				h->node->query = p.query ? strdup(p.query) : NULL;
				if ((flags & O_TRUNC) && wr)
					h->node->wseq++;
			}
			pthread_mutex_unlock(&v->lock);
		}
		break;
	case PK_PART_RECORD:
		/* a symbolic link: the kernel follows it to the record before
		 * opening; a link itself is opened only with O_NOFOLLOW */
		rc = (flags & O_CREAT) ? -EROFS : vstat_part_record(v, &p, NULL, ctx);
		if (!rc)
			rc = -ELOOP;
		break;
	case PK_PART_OTHER:
		rc = flags & O_CREAT ? -EROFS : -ENOENT;
		break;
	case PK_FREE:
	case PK_SCRATCH:
		rc = open_scratch(v, &p, flags, fh);
		break;
	case PK_BADNAME:
		if (flags & O_CREAT) {
			rc = -EINVAL;
			vfs_record_error(v, p.path, "create", EINVAL,
			                 "the name is not <id>.json / <id>.bin with a valid record id "
			                 "(ids cannot hold '/', '\\', '=', '%' or control characters)");
		} else {
			rc = -ENOENT;
		}
		break;
	case PK_RECORD:
		rc = open_record(v, &p, flags, fh, keep_cache, ctx);
		break;
	case PK_CONTENT:
		rc = open_content(v, &p, flags, fh, ctx);
		break;
	case PK_SCHEMA:
		rc = open_schema(v, &p, flags, fh);
		break;
	}
	if (rc == -EROFS && (p.kind == PK_RECORD || p.kind == PK_CONTENT || p.kind == PK_SCHEMA))
		vfs_record_error(v, p.path, "open", EROFS,
		                 "the database was written by s3db.js 7.x and is read-only");
	free(text);
	vpath_free(&p);
	return rc;
}

/* Remembers ctx as the writer of the node behind a handle opened for
 * writing, so that a store made later without a caller (release,
 * unmount) reports who wrote.  Nothing for read-only handles or an
 * unknown caller (pid 0). */
static void note_writer(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	if (!ctx || ctx->pid == 0)
		return;
	pthread_mutex_lock(&v->lock);
	vhandle *h = vhandle_get(v, fh);
	if (h && wants_write(h->flags)) {
		vnode *n = h->node;
		n->writer = *ctx;
		snprintf(n->writer_process, sizeof n->writer_process, "%s",
		         ctx->process ? ctx->process : "");
		n->writer.process = n->writer_process;
	}
	pthread_mutex_unlock(&v->lock);
}

int vfs_open_file(vfs *v, const char *path, int flags, uint64_t *fh, int *keep_cache,
                  const s3db_ctx *ctx)
{
	int rc = open_common(v, path, flags, fh, keep_cache, ctx);
	if (!rc)
		note_writer(v, *fh, ctx);
	return rc;
}

int vfs_create(vfs *v, const char *path, mode_t mode, int flags, uint64_t *fh,
               const s3db_ctx *ctx)
{
	(void)mode;
	int rc = open_common(v, path, flags | O_CREAT, fh, NULL, ctx);
	if (!rc) {
		note_writer(v, *fh, ctx);
		vstat_dir_changed(v, path);
	}
	return rc;
}

/* ---- read, write, flush, release -------------------------------------------------------------- */

/* The largest a node's file may grow: records, contents and schemas are
 * bounded by max_file_size; scratch files (editors' swap and backup
 * files, sed's temporary file...) only by their storage: the scratch
 * directory's file system (which answers EFBIG or ENOSPC itself), or,
 * without one, the machine's memory (EFBIG past its size, ENOSPC when
 * an allocation fails). */
static size_t node_size_cap(const vfs *v, const vnode *n)
{
	if (n->kind != NK_SCRATCH)
		return v->o.max_file_size;
	if (n->buf.fd >= 0)
		return SIZE_MAX / 2;
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || page <= 0)
		return SIZE_MAX / 2;
	return (size_t)pages * (size_t)page;
}

/* A scratch file kept in memory that cannot grow reports a full file
 * system, as a disk would. */
static int scratch_errno(const vnode *n, int rc)
{
	return rc == -ENOMEM && n->kind == NK_SCRATCH ? -ENOSPC : rc;
}

int vfs_read(vfs *v, uint64_t fh, char *buf, size_t size, off_t off)
{
	pthread_mutex_lock(&v->lock);
	vhandle *h = vhandle_get(v, fh);
	ssize_t r = h ? vbuf_read(&h->node->buf, buf, size, off) : -EBADF;
	if (h && r >= 0 && h->node->kind == NK_SCRATCH)
		h->node->atime = vfs_ts_now();
	pthread_mutex_unlock(&v->lock);
	return (int)r;
}

int vfs_write(vfs *v, uint64_t fh, const char *buf, size_t size, off_t off)
{
	pthread_mutex_lock(&v->lock);
	vhandle *h = vhandle_get(v, fh);
	ssize_t r;
	char *path = NULL;
	if (!h || !wants_write(h->flags) || h->node->kind == NK_SNAPSHOT) {
		r = -EBADF;
	} else {
		vnode *n = h->node;
		if (h->flags & O_APPEND)
			off = (off_t)n->buf.len;
		r = scratch_errno(n, (int)vbuf_write(&n->buf, buf, size, off, node_size_cap(v, n)));
		if (r >= 0) {
			n->wseq++;
			n->mtime = vfs_ts_now();
		} else if (r == -EFBIG && n->kind != NK_SCRATCH) {
			path = strdup(n->path);
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (path) {
		char reason[128];
		snprintf(reason, sizeof reason, "larger than the %zu bytes a file may hold here",
		         v->o.max_file_size);
		vfs_record_error(v, path, "write", EFBIG, reason);
		free(path);
	}
	return (int)r;
}

/* The node of a writable handle (NULL: read-only or unknown). */
static vnode *writable_node(vfs *v, uint64_t fh, int *bad)
{
	pthread_mutex_lock(&v->lock);
	vhandle *h = vhandle_get(v, fh);
	vnode *n = h && wants_write(h->flags) ? h->node : NULL;
	*bad = h == NULL;
	pthread_mutex_unlock(&v->lock);
	return n;
}

int vfs_flush(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	int bad;
	vnode *n = writable_node(v, fh, &bad);
	return bad ? -EBADF : n ? vstore_commit(v, n, ctx, "flush") : 0;
}

int vfs_fsync(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	int bad;
	vnode *n = writable_node(v, fh, &bad);
	return bad ? -EBADF : n ? vstore_commit(v, n, ctx, "fsync") : 0;
}

int vfs_release(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	int bad;
	vnode *n = writable_node(v, fh, &bad);
	if (bad)
		return -EBADF;
	int rc = n ? vstore_commit(v, n, ctx, "release") : 0;
	char key[32];
	snprintf(key, sizeof key, "%" PRIu64, fh);
	pthread_mutex_lock(&v->lock);
	vhandle *h = vmap_del(&v->handles, key);
	if (h) {
		h->node->refs--;
		vnode_settle(v, h->node);
		free(h);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int vfs_truncate(vfs *v, const char *path, off_t size, uint64_t fh, const s3db_ctx *ctx)
{
	if (size < 0)
		return -EINVAL;
	if (fh) {
		pthread_mutex_lock(&v->lock);
		vhandle *h = vhandle_get(v, fh);
		int rc;
		if (!h)
			rc = -EBADF;
		else if (!wants_write(h->flags) || h->node->kind == NK_SNAPSHOT)
			rc = -EINVAL;
		else if ((size_t)size == h->node->buf.len && !(size == 0 && !h->node->created))
			rc = 0;
		else if (!(rc = scratch_errno(h->node, vbuf_truncate(&h->node->buf, (size_t)size,
		                                                   node_size_cap(v, h->node))))) {
			h->node->wseq++;
			h->node->mtime = vfs_ts_now();
		}
		pthread_mutex_unlock(&v->lock);
		return rc;
	}
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (!rc) {
		switch (p.kind) {
		case PK_ROOT:
		case PK_RES:
		case PK_PARTS:
		case PK_PART_DIR:
			rc = -EISDIR;
			break;
		case PK_STATUS:
		case PK_ERRORS:
			rc = -EACCES;
			break;
		case PK_PART_RECORD:
			rc = -EROFS;
			break;
		case PK_FREE:
		case PK_BADNAME:
		case PK_PART_OTHER:
			rc = -ENOENT;
			break;
		default: {
			/* as open + ftruncate + close: an emptied record stays local,
			 * any other size is stored at once */
			uint64_t tfh = 0;
			int flags = O_WRONLY | (size == 0 ? O_TRUNC : 0);
			rc = open_common(v, path, flags, &tfh, NULL, ctx);
			if (!rc) {
				rc = vfs_truncate(v, path, size, tfh, ctx);
				int rr = vfs_release(v, tfh, ctx);
				if (!rc)
					rc = rr;
			}
			break;
		}
		}
	}
	vpath_free(&p);
	return rc;
}
