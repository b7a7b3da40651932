/*
 * vfs_node.c — nodes and handles.  A vnode is the local state of one
 * file: the bytes being written (vfs_buf), whether S3 has the record,
 * what was stored last.  Nodes of records live while a handle is open or
 * while they hold something S3 does not (an uncommitted or refused
 * write, an empty file); scratch nodes live until they are removed.
 * Read-only opens get a private snapshot node (status, errors, partition
 * views, clean records).  A handle maps a FUSE fh to (node, open flags).
 * Tombstones (v->tombs: "res/id" -> the scratch file holding its copy)
 * hide records renamed onto scratch names; see vfs_rename.c.  Every
 * function here is called with v->lock held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* A new, unlinked node of no bytes (scratch nodes in a file of
 * scratch_dir when there is one, else in memory); res and id may be
 * NULL.  Caller owns it (vnode_link hands it to v->nodes); NULL when out
 * of memory. */
vnode *vnode_new(vfs *v, const char *path, const char *dir, const char *name, nkind kind,
                 const char *res, const char *id)
{
	vnode *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->path = strdup(path);
	n->dir = strdup(dir);
	n->name = strdup(name);
	n->kind = kind;
	n->res = res ? strdup(res) : NULL;
	n->id = id ? strdup(id) : NULL;
	n->remote = -1;
	n->atime = n->mtime = vfs_ts_now();
	vbuf_init(&n->buf);
	if (kind == NK_SCRATCH && v->scratch_dir) {
		int rc = vbuf_init_file(&n->buf, v->scratch_dir);
		if (rc) {
			log_msg(LOG_LVL_WARN, "scratch file in %s: %s; keeping %s in memory",
			        v->scratch_dir, strerror(-rc), path);
			vbuf_init(&n->buf);
		}
	}
	if (!n->path || !n->dir || !n->name || (res && !n->res) || (id && !n->id)) {
		vnode_free(n);
		return NULL;
	}
	return n;
}

/* Frees n and what it owns; taking it out of v->nodes and v->handles
 * is the caller's (vnode_unlink, vfs_close). */
void vnode_free(vnode *n)
{
	vbuf_free(&n->buf);
	free(n->path);
	free(n->dir);
	free(n->name);
	free(n->res);
	free(n->id);
	free(n->origin);
	free(n->copy_of);
	free(n->query);
	free(n);
}

/* 1 when n holds bytes not yet stored (or loaded) since they changed. */
int vnode_dirty(const vnode *n)
{
	return n->wseq != n->sseq;
}

/* 1 when the node, rather than the cache, says what the file is. */
int vnode_shadows(const vnode *n)
{
	return n && n->linked && (n->kind == NK_SCRATCH || n->created || vnode_dirty(n));
}

/* Inserts a node in the table; lock held.  0, -EEXIST (a node has the
 * path: the caller should have opened that one), or -ENOMEM. */
int vnode_link(vfs *v, vnode *n)
{
	if (vmap_get(&v->nodes, n->path))
		return -EEXIST;
	if (vmap_put(&v->nodes, n->path, n, NULL))
		return -ENOMEM;
	n->linked = 1;
	return 0;
}

/* A scratch node no longer holds its record's copy: the tombstone ends
 * (the record shows again); lock held. */
void vnode_release_origin(vfs *v, vnode *n)
{
	if (!n->origin)
		return;
	char *holder = vmap_get(&v->tombs, n->origin);
	if (holder && !strcmp(holder, n->path))
		free(vmap_del(&v->tombs, n->origin));
	free(n->origin);
	n->origin = NULL;
}

/* Takes a node out of the table (open handles keep it alive, orphaned:
 * what they write is never stored); lock held. */
void vnode_unlink(vfs *v, vnode *n)
{
	if (n->linked) {
		vmap_del(&v->nodes, n->path);
		n->linked = 0;
	}
	vnode_release_origin(v, n);
	if (n->refs == 0)
		vnode_free(n);
}

/* Frees a node nobody needs: no handle, nothing S3 lacks; lock held. */
void vnode_settle(vfs *v, vnode *n)
{
	if (n->refs > 0)
		return;
	if (!n->linked) {
		vnode_free(n);
		return;
	}
	if (n->kind != NK_SCRATCH && !n->created && !vnode_dirty(n))
		vnode_unlink(v, n);
}

/* Registers a handle on n; lock held.  0 or -ENOMEM. */
int vhandle_new(vfs *v, vnode *n, int flags, uint64_t *fh)
{
	vhandle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->node = n;
	h->flags = flags;
	char key[32];
	uint64_t id = ++v->next_fh;
	snprintf(key, sizeof key, "%" PRIu64, id);
	if (vmap_put(&v->handles, key, h, NULL)) {
		free(h);
		return -ENOMEM;
	}
	n->refs++;
	*fh = id;
	return 0;
}

/* The handle fh, or NULL; lock held.  Borrowed: valid until released. */
vhandle *vhandle_get(vfs *v, uint64_t fh)
{
	char key[32];
	snprintf(key, sizeof key, "%" PRIu64, fh);
	return vmap_get(&v->handles, key);
}

/* 1 when res/id is hidden by a rename onto a scratch name; lock held. */
int vnode_tombstoned(vfs *v, const char *key)
{
	return key && vmap_get(&v->tombs, key) != NULL;
}
