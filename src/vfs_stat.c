/*
 * vfs_stat.c — what stat and ls show: attributes of every kind of entry
 * (getattr, readlink, fgetattr through vstat_node), directory listings
 * (readdir: the root's resources, a resource's records, partitions as
 * directories and their records as symlinks to the record), directory
 * times, statfs, and utimens/chmod/chown: scratch files keep the times
 * they are given; a record's times come from its data, so touching it is
 * accepted and changes nothing; modes and owners are the mount's (its
 * options), so chmod and chown succeed only when they change nothing
 * (else EPERM).  Answers come from the record cache and listings
 * of vfs_lookup.c, and from the nodes of files being written, which
 * shadow what S3 holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* ---- attributes ------------------------------------------------------------------------ */

static void stat_common(vfs *v, struct stat *st, const char *path)
{
	memset(st, 0, sizeof *st);
	st->st_ino = (ino_t)(vmap_hash(path) | 1);
	st->st_uid = v->o.uid;
	st->st_gid = v->o.gid;
	st->st_blksize = 4096;
}

static void stat_dir(vfs *v, struct stat *st, const char *path, int writable)
{
	stat_common(v, st, path);
	st->st_mode = S_IFDIR | ((writable && !v->read_only ? 0777 : 0555) & ~v->o.umask);
	st->st_nlink = 2;
	st->st_size = 4096;
	st->st_blocks = 8;
	st->st_atim = st->st_mtim = st->st_ctim = vfs_ts_of_ms(v->start_wall_ms);
}

static void stat_file(vfs *v, struct stat *st, const char *path, int64_t size, int64_t mtime_ms,
                      int writable)
{
	stat_common(v, st, path);
	st->st_mode = S_IFREG | ((writable && !v->read_only ? 0666 : 0444) & ~v->o.umask);
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_atim = st->st_mtim = st->st_ctim = vfs_ts_of_ms(mtime_ms);
}

/* Attributes of a node's local file; lock held. */
void vstat_node(vfs *v, struct stat *st, const vnode *n)
{
	stat_file(v, st, n->path, (int64_t)n->buf.len, 0, 1);
	if (n->kind == NK_SCRATCH)
		st->st_mode = S_IFREG | (0666 & ~v->o.umask);
	st->st_atim = n->atime;
	st->st_mtim = st->st_ctim = n->mtime;
}

/* Attributes of a cached record (or its content); lock held. */
static void stat_rec(vfs *v, struct stat *st, const char *path, const vcache_rec *e, int content,
                     int writable)
{
	stat_file(v, st, path, content ? e->meta.size : (int64_t)e->len, e->mtime_ms, writable);
}

/* Attributes of a symbolic link to target (a partition entry); lock
 * held or not. */
static void stat_link(vfs *v, struct stat *st, const char *path, const char *target,
                      int64_t mtime_ms)
{
	stat_common(v, st, path);
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(target);
	st->st_atim = st->st_mtim = st->st_ctim = vfs_ts_of_ms(mtime_ms);
}

/* ---- directory times ------------------------------------------------------------------- */

/* A directory's mtime and ctime are the latest of: the mount's start,
 * the last change this mount made in it (an entry created, removed or
 * renamed), and, for a resource, the newest LastModified seen when it
 * was listed.  The root takes each of its resources' times too.  Kept
 * under dir_lock, a leaf lock taken with or without v->lock. */

/* Notes time ms for directory dir (and the root) when it is later than
 * what they have. */
static void dir_touch(vfs *v, const char *dir, int64_t ms)
{
	const char *dirs[2] = { dir, "/" };
	pthread_mutex_lock(&v->dir_lock);
	for (int i = 0; i < (strcmp(dir, "/") ? 2 : 1); i++) {
		int64_t *t = vmap_get(&v->dir_times, dirs[i]);
		if (t) {
			if (*t < ms)
				*t = ms;
		} else if ((t = malloc(sizeof *t)) != NULL) {
			*t = ms;
			if (vmap_put(&v->dir_times, dirs[i], t, NULL))
				free(t);
		}
	}
	pthread_mutex_unlock(&v->dir_lock);
}

/* dir_touch(now) for the directory holding path. */
void vstat_dir_changed(vfs *v, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return;
	char *dir = slash == path ? strdup("/") : s3db_strndup(path, (size_t)(slash - path));
	if (dir)
		dir_touch(v, dir, s3db_now_ms());
	free(dir);
}

/* Sets a directory's mtime and ctime from what dir_touch noted. */
static void stat_dir_times(vfs *v, struct stat *st, const char *dir)
{
	pthread_mutex_lock(&v->dir_lock);
	int64_t *t = vmap_get(&v->dir_times, dir);
	if (t && *t > v->start_wall_ms)
		st->st_mtim = st->st_ctim = vfs_ts_of_ms(*t);
	pthread_mutex_unlock(&v->dir_lock);
}

/* ---- getattr ------------------------------------------------------------------------------ */

/* Attributes of a record, its content or its schema file. */
static int getattr_data(vfs *v, const vpath *p, struct stat *st, const s3db_ctx *ctx)
{
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (vnode_shadows(n)) {
		vstat_node(v, st, n);
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	int hidden = vnode_tombstoned(v, p->key);
	pthread_mutex_unlock(&v->lock);
	if (p->kind == PK_SCHEMA) {
		size_t len = 0;
		char *t = vrender_schema(p->res, &len);
		if (!t)
			return -ENOMEM;
		free(t);
		stat_file(v, st, p->path, (int64_t)len, v->start_wall_ms, 1);
		return 0;
	}
	if (hidden)
		return -ENOENT;
	for (int attempt = 0; attempt < 3; attempt++) {
		int rc = vlookup_ensure_record(v, p->res, p->id, WANT_ATTR, ctx);
		if (rc)
			return rc;
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, p->key);
		if (e) {
			int content = p->kind == PK_CONTENT;
			rc = content && !e->meta.has_content ? -ENOENT : 0;
			if (!rc)
				stat_rec(v, st, p->path, e, content, 1);
		}
		pthread_mutex_unlock(&v->lock);
		if (e)
			return rc;
	}
	return -EIO; /* evicted three times over: a cache far too small */
}

/* The target of a partition entry's symbolic link: the record, relative
 * to the link's directory (/<res>/.partitions/<p>/<f>=<v>[/...]), e.g.
 * "../../../<id>.json" (malloc'd; NULL when out of memory). */
static char *part_link_target(const char *id, size_t nsegs)
{
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < nsegs + 2; i++)
		sbuf_puts(&b, "../");
	sbuf_printf(&b, "%s.json", id);
	return sbuf_steal(&b);
}

/* The mtime of a partition entry: its record's, when cached; lock held. */
static int64_t part_link_mtime(vfs *v, const char *key)
{
	vcache_rec *e = key ? vmap_get(&v->cache.recs, key) : NULL;
	return e ? e->mtime_ms : v->start_wall_ms;
}

/* Checks that a partition view lists p->id (0, else -ENOENT) and, when
 * st is not NULL, stats the entry as the symbolic link it is (to the
 * record, see part_link_target).  Costs the partition's listing only
 * (cached for dir_ttl), never the record. */
int vstat_part_record(vfs *v, const vpath *p, struct stat *st, const s3db_ctx *ctx)
{
	vpath dirp = *p;
	dirp.kind = PK_PART_DIR;
	strv names;
	int rc = vlookup_list_part_dir(v, &dirp, ctx, &names);
	if (rc)
		return rc;
	int listed = 0;
	for (size_t i = 0; i < names.count && !listed; i++)
		listed = !strcmp(names.items[i], p->id);
	strv_free(&names);
	if (!listed)
		return -ENOENT;
	if (!st)
		return 0;
	char *target = part_link_target(p->id, p->segs.count);
	if (!target)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	stat_link(v, st, p->path, target, part_link_mtime(v, p->key));
	pthread_mutex_unlock(&v->lock);
	free(target);
	return 0;
}

int vfs_readlink(vfs *v, const char *path, char *buf, size_t size, const s3db_ctx *ctx)
{
	if (size == 0)
		return -EINVAL;
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (!rc && p.kind != PK_PART_RECORD)
		rc = p.kind == PK_FREE || p.kind == PK_BADNAME || p.kind == PK_PART_OTHER ? -ENOENT
		                                                                       : -EINVAL;
	if (!rc)
		rc = vstat_part_record(v, &p, NULL, ctx);
	if (!rc) {
		char *target = part_link_target(p.id, p.segs.count);
		if (target)
			snprintf(buf, size, "%s", target);
		else
			rc = -ENOMEM;
		free(target);
	}
	vpath_free(&p);
	return rc;
}

int vfs_getattr(vfs *v, const char *path, struct stat *st, const s3db_ctx *ctx)
{
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (rc) {
		vpath_free(&p);
		return rc;
	}
	char *text = NULL;
	size_t len = 0;
	switch (p.kind) {
	case PK_ROOT:
	case PK_RES:
		stat_dir(v, st, p.path, 1);
		stat_dir_times(v, st, p.path);
		break;
	case PK_PARTS:
		if (vcatalog_has_partitions(p.res))
			stat_dir(v, st, p.path, 0);
		else
			rc = -ENOENT;
		break;
	case PK_PART_DIR:
		stat_dir(v, st, p.path, 0);
		break;
	case PK_STATUS:
	case PK_ERRORS:
	case PK_VIRTUAL:
		rc = vrender_virtual(v, &p, 1, &text, &len);
		if (!rc)
			stat_file(v, st, p.path, (int64_t)len, s3db_now_ms(),
			          p.kind == PK_VIRTUAL && p.virt->write_fn);
		free(text);
		break;
	case PK_SCRATCH: {
		pthread_mutex_lock(&v->lock);
		vnode *n = vmap_get(&v->nodes, p.path);
		if (n && n->linked)
			vstat_node(v, st, n);
		else
			rc = -ENOENT;
		pthread_mutex_unlock(&v->lock);
		break;
	}
	case PK_RECORD:
	case PK_CONTENT:
	case PK_SCHEMA:
		rc = getattr_data(v, &p, st, ctx);
		break;
	case PK_PART_RECORD:
		rc = vstat_part_record(v, &p, st, ctx);
		break;
	case PK_FREE:
	case PK_BADNAME:
	default:
		rc = -ENOENT;
		break;
	}
	vpath_free(&p);
	return rc;
}

int vfs_direct_io(vfs *v, const char *path, int flags)
{
	if ((flags & O_ACCMODE) == O_WRONLY)
		return 1;
	vpath p;
	int rc = vpath_parse(v, path, &p);
	int direct = !rc && (p.kind == PK_STATUS || p.kind == PK_ERRORS || p.kind == PK_VIRTUAL);
	vpath_free(&p);
	return direct;
}

/* ---- readdir ------------------------------------------------------------------------------ */

typedef struct dent {
	char *name;
	struct stat st;
	int has_st;
} dent;

typedef struct dents {
	dent *items;
	size_t n, cap;
} dents;

static void dents_add(dents *d, const char *name, const struct stat *st)
{
	if (strlen(name) > VFS_NAME_MAX)
		return;
	dent *items = s3db_array_room(d->items, &d->cap, d->n, sizeof *items, 64);
	if (!items)
		return;
	d->items = items;
	dent *e = &items[d->n];
	if (!(e->name = strdup(name)))
		return;
	e->has_st = st != NULL;
	if (st)
		e->st = *st;
	d->n++;
}

static void dents_free(dents *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->items[i].name);
	free(d->items);
	memset(d, 0, sizeof *d);
}

typedef struct dir_nodes {
	vfs *v;
	const char *dir;
	dents *out;
} dir_nodes;

/* Adds the files of one directory that only nodes know (scratch files,
 * records created or changed here); lock held. */
static int add_dir_node(void *ud, const char *key, void *value)
{
	dir_nodes *w = ud;
	vnode *n = value;
	if (strcmp(n->dir, w->dir) != 0 || !vnode_shadows(n) || n->unlisted)
		return 0;
	struct stat st;
	vstat_node(w->v, &st, n);
	dents_add(w->out, n->name, &st);
	return 0;
}

/* Adds the listed plugin files of a directory; lock held. */
static void add_dir_virtuals(vfs *v, const char *dir, dents *out)
{
	for (size_t i = 0; i < v->nvirt; i++) {
		const vvirt *x = v->virt[i];
		if (!x->listed)
			continue;
		const char *slash = strrchr(x->path, '/');
		size_t dl = (size_t)(slash - x->path);
		int here = !strcmp(dir, "/") ? dl == 0 : strlen(dir) == dl && !strncmp(dir, x->path, dl);
		if (!here)
			continue;
		dents_add(out, slash + 1, NULL); /* size known at getattr only */
	}
}

static int readdir_root(vfs *v, const vpath *p, dents *out)
{
	vcatalog_refresh(v);
	char **names = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = s3db_resource_names(v->db, &names, &err);
	if (c != S3DB_OK)
		return vfs_errno_of(v, c);
	struct stat st;
	stat_dir(v, &st, "/", 1);
	stat_dir_times(v, &st, "/");
	dents_add(out, ".", &st);
	dents_add(out, "..", NULL);
	for (size_t i = 0; names[i]; i++) {
		char *path = s3db_asprintf("/%s", names[i]);
		if (path) {
			stat_dir(v, &st, path, 1);
			stat_dir_times(v, &st, path);
			dents_add(out, names[i], &st);
		}
		free(path);
	}
	s3db_free_strv(names);
	dents_add(out, ".status", NULL);
	dents_add(out, ".errors", NULL);
	pthread_mutex_lock(&v->lock);
	dir_nodes w = { .v = v, .dir = "/", .out = out };
	vmap_each(&v->nodes, add_dir_node, &w);
	add_dir_virtuals(v, "/", out);
	pthread_mutex_unlock(&v->lock);
	(void)p;
	return 0;
}

static int readdir_resource(vfs *v, const vpath *p, dents *out, const s3db_ctx *ctx)
{
	int rc = vlookup_list_resource(v, p->res, ctx);
	if (rc)
		return rc;
	size_t slen = 0;
	char *schema_text = vrender_schema(p->res, &slen);
	free(schema_text);
	struct stat st;
	struct stat dot;
	stat_dir(v, &dot, p->path, 1);
	size_t dot_at = out->n;
	dents_add(out, ".", &dot);
	dents_add(out, "..", NULL);
	int64_t newest = 0;      /* the newest LastModified listed */
	char *spath = s3db_asprintf("%s/.schema.json", p->path);
	const schema *s = db_current_schema(p->res);
	pthread_mutex_lock(&v->lock);
	vnode *sn = spath ? vmap_get(&v->nodes, spath) : NULL;
	if (!vnode_shadows(sn)) { /* else listed with the nodes below */
		stat_file(v, &st, spath ? spath : "", (int64_t)slen, v->start_wall_ms, 1);
		dents_add(out, ".schema.json", &st);
	}
	free(spath);
	if (vcatalog_has_partitions(p->res)) {
		stat_dir(v, &st, "/.partitions", 0);
		dents_add(out, ".partitions", &st);
	}
	vcache_dir *d = vcache_dir_get(&v->cache, p->resname);
	sbuf path;
	sbuf_init(&path);
	for (size_t i = 0; d && i < d->names.count; i++) {
		const char *id = d->names.items[i];
		char *key = vcache_key(p->resname, id);
		if (!key || vnode_tombstoned(v, key)) {
			free(key);
			continue;
		}
		sbuf_reset(&path);
		sbuf_printf(&path, "%s/%s.json", p->path, id);
		vnode *rn = path.data ? vmap_get(&v->nodes, path.data) : NULL;
		vcache_rec *e = vmap_get(&v->cache.recs, key);
		if (e && e->schema != (const void *)s)
			e = NULL;
		if (e && e->meta.last_modified_ms > newest)
			newest = e->meta.last_modified_ms;
		if (!vnode_shadows(rn)) {
			if (e)
				stat_rec(v, &st, path.data, e, 0, 1);
			dents_add(out, path.data + strlen(p->path) + 1, e ? &st : NULL);
		}
		if (e && e->meta.has_content) {
			sbuf_reset(&path);
			sbuf_printf(&path, "%s/%s.bin", p->path, id);
			vnode *cn = path.data ? vmap_get(&v->nodes, path.data) : NULL;
			if (!vnode_shadows(cn)) {
				stat_rec(v, &st, path.data, e, 1, 1);
				dents_add(out, path.data + strlen(p->path) + 1, &st);
			}
		}
		free(key);
	}
	sbuf_free(&path);
	dir_nodes w = { .v = v, .dir = p->path, .out = out };
	vmap_each(&v->nodes, add_dir_node, &w);
	add_dir_virtuals(v, p->path, out);
	pthread_mutex_unlock(&v->lock);
	if (newest)
		dir_touch(v, p->path, newest);
	stat_dir_times(v, &dot, p->path);
	if (dot_at < out->n && !strcmp(out->items[dot_at].name, "."))
		out->items[dot_at].st = dot;
	return 0;
}

static int readdir_parts(vfs *v, const vpath *p, dents *out, const s3db_ctx *ctx)
{
	struct stat st;
	stat_dir(v, &st, p->path, 0);
	dents_add(out, ".", &st);
	dents_add(out, "..", NULL);
	if (p->kind == PK_PARTS) {
		const schema *s = db_current_schema(p->res);
		if (!vcatalog_has_partitions(p->res))
			return -ENOENT;
		json_object_object_foreach(s->partitions, pname, pdef) {
			(void)pdef;
			dents_add(out, pname, &st);
		}
		return 0;
	}
	strv names;
	int rc = vlookup_list_part_dir(v, p, ctx, &names);
	if (rc)
		return rc;
	int leaf = p->segs.count == p->fields.count;
	sbuf path;
	sbuf_init(&path);
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < names.count; i++) {
		sbuf_reset(&path);
		if (!leaf) {
			sbuf_printf(&path, "%s/%s", p->path, names.items[i]);
			stat_dir(v, &st, path.data ? path.data : "", 0);
			dents_add(out, names.items[i], &st);
			continue;
		}
		sbuf_printf(&path, "%s/%s.json", p->path, names.items[i]);
		char *key = vcache_key(p->resname, names.items[i]);
		char *target = part_link_target(names.items[i], p->segs.count);
		if (target && path.data) {
			stat_link(v, &st, path.data, target, part_link_mtime(v, key));
			dents_add(out, path.data + strlen(p->path) + 1, &st);
		}
		free(target);
		free(key);
	}
	pthread_mutex_unlock(&v->lock);
	sbuf_free(&path);
	strv_free(&names);
	return 0;
}

int vfs_readdir(vfs *v, const char *path, vfs_fill_fn fill, void *ud, const s3db_ctx *ctx)
{
	vpath p;
	int rc = vpath_parse(v, path, &p);
	dents out = { 0 };
	if (!rc) {
		switch (p.kind) {
		case PK_ROOT:
			rc = readdir_root(v, &p, &out);
			break;
		case PK_RES:
			rc = readdir_resource(v, &p, &out, ctx);
			break;
		case PK_PARTS:
		case PK_PART_DIR:
			rc = readdir_parts(v, &p, &out, ctx);
			break;
		case PK_FREE:
		case PK_BADNAME:
			rc = -ENOENT;
			break;
		default: {
			struct stat st;
			rc = vfs_getattr(v, path, &st, ctx);
			if (!rc)
				rc = -ENOTDIR;
			break;
		}
		}
	}
	for (size_t i = 0; !rc && i < out.n; i++)
		if (fill(ud, out.items[i].name, out.items[i].has_st ? &out.items[i].st : NULL))
			break;
	dents_free(&out);
	vpath_free(&p);
	return rc;
}

int vfs_statfs(vfs *v, struct statvfs *st)
{
	memset(st, 0, sizeof *st);
	st->f_bsize = 4096;
	st->f_frsize = 4096;
	st->f_blocks = (fsblkcnt_t)1 << 32;
	st->f_bfree = st->f_bavail = (fsblkcnt_t)1 << 32;
	st->f_files = (fsfilcnt_t)1 << 32;
	st->f_ffree = st->f_favail = (fsfilcnt_t)1 << 32;
	st->f_namemax = VFS_NAME_MAX;
	if (v->read_only)
		st->f_flag |= ST_RDONLY;
	return 0;
}

/* ---- times, modes, owners ------------------------------------------------------------------- */

static struct timespec pick_time(const struct timespec *t, struct timespec cur)
{
	if (!t || t->tv_nsec == UTIME_NOW)
		return vfs_ts_now();
	if (t->tv_nsec == UTIME_OMIT)
		return cur;
	return *t;
}

int vfs_utimens(vfs *v, const char *path, const struct timespec tv[2], const s3db_ctx *ctx)
{
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (!rc && (p.kind == PK_SCRATCH || p.kind == PK_FREE)) {
		pthread_mutex_lock(&v->lock);
		vnode *n = vmap_get(&v->nodes, p.path);
		if (n) {
			n->atime = pick_time(tv ? &tv[0] : NULL, n->atime);
			n->mtime = pick_time(tv ? &tv[1] : NULL, n->mtime);
		} else {
			rc = -ENOENT;
		}
		pthread_mutex_unlock(&v->lock);
	} else if (!rc) {
		struct stat st;
		rc = vfs_getattr(v, path, &st, ctx); /* records: times come from the data */
	}
	vpath_free(&p);
	return rc;
}

int vfs_chmod(vfs *v, const char *path, mode_t mode)
{
	struct stat st;
	int rc = vfs_getattr(v, path, &st, NULL);
	if (rc)
		return rc;
	return (mode & 07777) == (st.st_mode & 07777) ? 0 : -EPERM;
}

int vfs_chown(vfs *v, const char *path, uid_t uid, gid_t gid)
{
	struct stat st;
	int rc = vfs_getattr(v, path, &st, NULL);
	if (rc)
		return rc;
	int same = (uid == (uid_t)-1 || uid == st.st_uid) && (gid == (gid_t)-1 || gid == st.st_gid);
	return same ? 0 : -EPERM;
}
