/*
 * vfs.c — the database as a file tree (contract: vfs.h): the vfs's life
 * (vfs_open, vfs_set_options, vfs_close), the requests it sees, the
 * errors it keeps for /.errors, the files plugins add, and the figures
 * /.status and the benchmarks read.  How the tree is built is told in
 * vfs_int.h; each piece lives in a file of its own (vfs_path.c,
 * vfs_node.c, vfs_lookup.c, vfs_stat.c, vfs_file.c, vfs_store.c,
 * vfs_unlink.c, vfs_rename.c, vfs_dir.c, vfs_xattr.c, vfs_render.c,
 * vfs_catalog.c).
 *
 * Requests: the vfs installs the database's request hook, counts requests
 * by command for /.status, and forwards each to the observers plugins
 * add, and to a hook installed before vfs_open.
 *
 * Records in S3 change only under their stripe lock (vfs_stripes_lock):
 * 64 stripes by key hash, taken before v->lock, in index order when two
 * are needed, and the keys they guard counted in v->busy meanwhile so
 * that a listing can tell a quiet directory from one we are writing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "vfs_int.h"

/* ---- errors as errno, stripe locks --------------------------------------------- */

/* An s3db_code as -errno. */
int vfs_errno_of(const vfs *v, s3db_code c)
{
	switch (c) {
	case S3DB_OK:
		return 0;
	case S3DB_ERR_NOT_FOUND:
	case S3DB_ERR_NO_RESOURCE:
		return -ENOENT;
	case S3DB_ERR_EXISTS:
		return -EEXIST;
	case S3DB_ERR_ACCESS_DENIED:
	case S3DB_ERR_SIGNATURE:
		return -EACCES;
	case S3DB_ERR_METADATA_TOO_LARGE:
		return -EFBIG;
	case S3DB_ERR_PRECONDITION:
		return -EAGAIN;
	case S3DB_ERR_INVALID_ARG:
	case S3DB_ERR_INVALID_JSON:
	case S3DB_ERR_VALIDATION:
	case S3DB_ERR_BAD_ID:
	case S3DB_ERR_BAD_CONNSTR:
		return -EINVAL;
	case S3DB_ERR_NOMEM:
		return -ENOMEM;
	case S3DB_ERR_UNSUPPORTED:
		return v->read_only ? -EROFS : -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

static const char *errno_name(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case EFBIG: return "EFBIG";
	case EACCES: return "EACCES";
	case EIO: return "EIO";
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	case EROFS: return "EROFS";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EPERM: return "EPERM";
	case ENOTEMPTY: return "ENOTEMPTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "error";
	}
}

static pthread_mutex_t *stripe_of(vfs *v, const char *key)
{
	return &v->stripes[vmap_hash(key) % VFS_STRIPES];
}

/* Counts a change of key in flight up (delta 1) or down (-1); a key
 * whose count falls to 0 leaves v->busy.  Out of memory, the key is not
 * counted (it only makes a listing look less quiet: list_resource_now).
 * Takes busy_lock. */
static void busy_count(vfs *v, const char *key, int delta)
{
	pthread_mutex_lock(&v->busy_lock);
	uintptr_t n = (uintptr_t)vmap_get(&v->busy, key);
	if (delta > 0)
		vmap_put(&v->busy, key, (void *)(n + 1), NULL);
	else if (n > 1)
		vmap_put(&v->busy, key, (void *)(n - 1), NULL);
	else if (n == 1)
		vmap_del(&v->busy, key);
	pthread_mutex_unlock(&v->busy_lock);
}

/* 1 when a change of key is in flight (its stripe held for it). */
int vfs_busy_has(vfs *v, const char *key)
{
	pthread_mutex_lock(&v->busy_lock);
	int busy = vmap_get(&v->busy, key) != NULL;
	pthread_mutex_unlock(&v->busy_lock);
	return busy;
}

/* Locks the stripes of a and b (b may be NULL) in index order, and
 * counts both keys as in flight (busy) until vfs_stripes_unlock. */
void vfs_stripes_lock(vfs *v, const char *a, const char *b)
{
	pthread_mutex_t *x = stripe_of(v, a), *y = b ? stripe_of(v, b) : NULL;
	if (y && y < x) {
		pthread_mutex_t *t = x;
		x = y;
		y = t;
	}
	pthread_mutex_lock(x);
	if (y && y != x)
		pthread_mutex_lock(y);
	busy_count(v, a, 1);
	if (b)
		busy_count(v, b, 1);
}

/* Ends vfs_stripes_lock(v, a, b): the same a and b. */
void vfs_stripes_unlock(vfs *v, const char *a, const char *b)
{
	pthread_mutex_t *x = stripe_of(v, a), *y = b ? stripe_of(v, b) : NULL;
	busy_count(v, a, -1);
	if (b)
		busy_count(v, b, -1);
	pthread_mutex_unlock(x);
	if (y && y != x)
		pthread_mutex_unlock(y);
}

/* ---- options, requests, errors ------------------------------------------------- */

void vfs_options_default(vfs_options *o)
{
	memset(o, 0, sizeof *o);
	o->uid = getuid();
	o->gid = getgid();
	o->umask = 022;
	o->attr_ttl = 1.0;
	o->entry_ttl = 1.0;
	o->negative_ttl = 1.0;
	o->record_ttl = 5.0;
	o->dir_ttl = 5.0;
	o->prefetch = VFS_PREFETCH_DEFAULT;
	o->cache_dir = NULL;
	o->scratch_dir = NULL;
	o->max_file_size = 16u << 20;
	o->cache_max_bytes = 256u << 20;
}

/* The database's request hook while the vfs is open. */
static void vfs_on_request(void *ud, const s3db_request_info *info)
{
	vfs *v = ud;
	if ((unsigned)info->command < S3DB_CMD__COUNT)
		atomic_fetch_add(&v->req[info->command], 1);
	if (info->result != S3DB_OK)
		atomic_fetch_add(&v->req_errors, 1);
	atomic_fetch_add(&v->bytes_sent, info->bytes_sent);
	atomic_fetch_add(&v->bytes_received, info->bytes_received);
	pthread_rwlock_rdlock(&v->obs_lock);
	for (size_t i = 0; i < v->nobs; i++)
		v->obs[i].fn(v->obs[i].ud, info);
	pthread_rwlock_unlock(&v->obs_lock);
	if (v->prev_hook)
		v->prev_hook(v->prev_ud, info);
}

int vfs_add_request_observer(vfs *v, s3db_request_hook fn, void *userdata)
{
	if (!fn)
		return 0;
	pthread_rwlock_wrlock(&v->obs_lock);
	vobserver *p = realloc(v->obs, (v->nobs + 1) * sizeof *p);
	int id = 0;
	if (p) {
		v->obs = p;
		id = ++v->next_obs;
		p[v->nobs++] = (vobserver){ .id = id, .fn = fn, .ud = userdata };
	}
	pthread_rwlock_unlock(&v->obs_lock);
	return id;
}

void vfs_remove_request_observer(vfs *v, int id)
{
	pthread_rwlock_wrlock(&v->obs_lock);
	for (size_t i = 0; i < v->nobs; i++) {
		if (v->obs[i].id == id) {
			memmove(v->obs + i, v->obs + i + 1, (v->nobs - i - 1) * sizeof *v->obs);
			v->nobs--;
			break;
		}
	}
	pthread_rwlock_unlock(&v->obs_lock);
}

void vfs_request_counts(vfs *v, uint64_t counts[S3DB_CMD__COUNT])
{
	for (int i = 0; i < S3DB_CMD__COUNT; i++)
		counts[i] = atomic_load(&v->req[i]);
}

void vfs_record_error(vfs *v, const char *path, const char *operation, int err_no,
                      const char *reason)
{
	if (err_no < 0)
		err_no = -err_no;
	char now[40];
	s3db_iso8601(s3db_now_ms(), now, sizeof now);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "time", json_object_new_string(now));
	json_object_object_add(o, "path", json_object_new_string(path ? path : ""));
	json_object_object_add(o, "operation", json_object_new_string(operation ? operation : ""));
	json_object_object_add(o, "errno", json_object_new_int(err_no));
	json_object_object_add(o, "reason", json_object_new_string(reason ? reason : ""));
	char *text = s3db_json_stringify(o, 0);
	json_object_put(o);
	char *line = text ? s3db_asprintf("%s\n", text) : NULL;
	free(text);
	log_msg(LOG_LVL_WARN, "%s %s refused (%s): %s", operation ? operation : "?",
	        path ? path : "?", errno_name(err_no), reason ? reason : "");
	if (!line)
		return;
	pthread_mutex_lock(&v->lock);
	size_t slot = v->nerrors % VFS_ERRORS_KEPT;
	free(v->errors[slot]);
	v->errors[slot] = line;
	v->nerrors++;
	pthread_mutex_unlock(&v->lock);
}

/* ---- plugins' files ---------------------------------------------------------------------- */

int vfs_add_virtual_file(vfs *v, const char *path, vfs_read_fn read_fn, vfs_write_fn write_fn,
                         void *ud, int listed)
{
	/* "/.search?" registers /.search as a file that takes a query: never
	 * listed; the '?' may only end the path */
	const char *q = path ? strchr(path, '?') : NULL;
	if (!path || path[0] != '/' || !path[1] || (q && q[1]) || q == path + 1 || !read_fn ||
	    s3db_str_ends(path, "/") || (q && q[-1] == '/'))
		return -EINVAL;
	if (q)
		listed = 0;
	vvirt *x = calloc(1, sizeof *x);
	if (!x || !(x->path = q ? s3db_strndup(path, (size_t)(q - path)) : strdup(path))) {
		free(x);
		return -ENOMEM;
	}
	path = x->path;
	x->read_fn = read_fn;
	x->write_fn = write_fn;
	x->ud = ud;
	x->listed = listed;
	int rc = 0;
	pthread_mutex_lock(&v->lock);
	if (vpath_find_virtual(v, path)) {
		rc = -EEXIST;
	} else {
		vvirt **p = realloc(v->virt, (v->nvirt + 1) * sizeof *p);
		if (!p) {
			rc = -ENOMEM;
		} else {
			v->virt = p;
			v->virt[v->nvirt++] = x;
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (rc) {
		free(x->path);
		free(x);
	}
	return rc;
}

/* ---- figures ------------------------------------------------------------------------------ */

void vfs_cache_stats_get(vfs *v, vfs_cache_stats *out)
{
	pthread_mutex_lock(&v->lock);
	out->hits = v->hits;
	out->misses = v->misses;
	out->revalidations = v->revalidations;
	out->evictions = v->cache.evictions;
	out->entries = v->cache.recs.count;
	pthread_mutex_unlock(&v->lock);
}

/* ---- open and close ------------------------------------------------------------------------ */

/* A name for the database in the persistent cache: SHA-256 of its
 * description (secrets masked), 16 hex digits. */
static char *database_id(s3db *db)
{
	char *desc = s3db_describe(db);
	if (!desc)
		return NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int ok = EVP_Digest(desc, strlen(desc), md, &n, EVP_sha256(), NULL) == 1 && n >= 8;
	free(desc);
	if (!ok)
		return NULL;
	char *out = malloc(17);
	if (!out)
		return NULL;
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return out;
}

static void vfs_free(vfs *v);

s3db_code vfs_open(s3db *db, const vfs_options *opts, vfs **out, s3db_error *err)
{
	*out = NULL;
	if (!db)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "vfs_open: no database");
	vfs *v = calloc(1, sizeof *v);
	if (!v)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	v->db = db;
	if (opts)
		v->o = *opts;
	else
		vfs_options_default(&v->o);
	if (v->o.prefetch <= 0)
		v->o.prefetch = VFS_PREFETCH_DEFAULT;
	if (v->o.max_file_size == 0)
		v->o.max_file_size = 16u << 20;
	v->cache_dir = v->o.cache_dir ? strdup(v->o.cache_dir) : NULL;
	v->scratch_dir = v->o.scratch_dir ? strdup(v->o.scratch_dir) : NULL;
	v->o.cache_dir = v->cache_dir;
	v->o.scratch_dir = v->scratch_dir;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->list_cv, NULL);
	pthread_mutex_init(&v->catalog_lock, NULL);
	for (int i = 0; i < VFS_STRIPES; i++)
		pthread_mutex_init(&v->stripes[i], NULL);
	pthread_mutex_init(&v->busy_lock, NULL);
	vmap_init(&v->busy);
	pthread_rwlock_init(&v->obs_lock, NULL);
	vcache_init(&v->cache, v->o.cache_max_bytes);
	vmap_init(&v->nodes);
	vmap_init(&v->handles);
	vmap_init(&v->tombs);
	vmap_init(&v->renders);
	pthread_mutex_init(&v->dir_lock, NULL);
	vmap_init(&v->dir_times);
	v->read_only = db->format == FORMAT_V7;
	v->start_ms = s3db_monotonic_ms();
	v->start_wall_ms = s3db_now_ms();
	v->catalog_ms = s3db_monotonic_ms();
	s3db_code c = S3DB_OK;
	if (v->scratch_dir) {
		struct stat st;
		if (stat(v->scratch_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
		    access(v->scratch_dir, W_OK) != 0)
			c = s3db_error_set(err, S3DB_ERR_IO, "scratch directory %s: not a writable directory",
			                   v->scratch_dir);
	}
	if (c == S3DB_OK && v->cache_dir) {
		char *dbid = database_id(db);
		c = dbid ? vcache_disk_open(&v->disk, v->cache_dir, dbid, err)
		         : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		free(dbid);
	}
	if (c != S3DB_OK) {
		vfs_free(v);
		return c;
	}
	pthread_rwlock_rdlock(&db->lock); /* db.h: it guards the hook pair */
	v->prev_hook = db->hook;
	v->prev_ud = db->hook_userdata;
	pthread_rwlock_unlock(&db->lock);
	s3db_set_request_hook(db, vfs_on_request, v);
	log_msg(LOG_LVL_INFO, "tree opened%s%s%s", v->read_only ? " read-only (s3db.js 7.x)" : "",
	        v->disk.dir ? ", persistent cache " : "", v->disk.dir ? v->disk.dir : "");
	*out = v;
	return S3DB_OK;
}

int vfs_set_options(vfs *v, const vfs_options *opts)
{
	if (!opts)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	v->o.uid = opts->uid;
	v->o.gid = opts->gid;
	v->o.umask = opts->umask;
	v->o.attr_ttl = opts->attr_ttl;
	v->o.entry_ttl = opts->entry_ttl;
	v->o.negative_ttl = opts->negative_ttl;
	v->o.record_ttl = opts->record_ttl;
	v->o.dir_ttl = opts->dir_ttl;
	v->o.prefetch = opts->prefetch > 0 ? opts->prefetch : VFS_PREFETCH_DEFAULT;
	v->o.max_file_size = opts->max_file_size ? opts->max_file_size : 16u << 20;
	v->o.cache_max_bytes = opts->cache_max_bytes;
	v->cache.max_bytes = opts->cache_max_bytes;
	pthread_mutex_unlock(&v->lock);
	if ((opts->cache_dir || v->cache_dir) &&
	    (!opts->cache_dir || !v->cache_dir || strcmp(opts->cache_dir, v->cache_dir)))
		log_msg(LOG_LVL_WARN, "cache_dir changes at the next mount");
	if ((opts->scratch_dir || v->scratch_dir) &&
	    (!opts->scratch_dir || !v->scratch_dir || strcmp(opts->scratch_dir, v->scratch_dir)))
		log_msg(LOG_LVL_WARN, "scratch_dir changes at the next mount");
	return 0;
}

typedef struct pending_walk {
	vnode **items;
	size_t n, cap;
} pending_walk;

static int collect_pending(void *ud, const char *key, void *value)
{
	pending_walk *w = ud;
	vnode *n = value;
	if (n->kind == NK_SCRATCH || n->kind == NK_SNAPSHOT || !vnode_dirty(n))
		return 0;
	vnode **p = s3db_array_room(w->items, &w->cap, w->n, sizeof *p, 16);
	if (!p)
		return 1;
	w->items = p;
	w->items[w->n++] = n;
	n->refs++; /* held while it is stored */
	return 0;
}

static int free_handle_cb(void *ud, const char *key, void *value)
{
	vhandle *h = value;
	h->node->refs--;
	if (!h->node->linked && h->node->refs == 0)
		vnode_free(h->node);
	free(h);
	return 0;
}

static int free_node_cb(void *ud, const char *key, void *value)
{
	vnode_free(value);
	return 0;
}

static int free_str_cb(void *ud, const char *key, void *value)
{
	free(value);
	return 0;
}

static int free_render_cb(void *ud, const char *key, void *value)
{
	vrender *r = value;
	free(r->text);
	free(r);
	return 0;
}

static void vfs_free(vfs *v)
{
	vmap_each(&v->handles, free_handle_cb, NULL);
	vmap_free(&v->handles);
	vmap_each(&v->nodes, free_node_cb, NULL);
	vmap_free(&v->nodes);
	vmap_each(&v->tombs, free_str_cb, NULL);
	vmap_free(&v->tombs);
	vmap_each(&v->renders, free_render_cb, NULL);
	vmap_free(&v->renders);
	vmap_each(&v->dir_times, free_str_cb, NULL);
	vmap_free(&v->dir_times);
	pthread_mutex_destroy(&v->dir_lock);
	for (size_t i = 0; i < VFS_CHANGES_KEPT; i++)
		free(v->changes[i].key);
	for (size_t i = 0; i < VFS_ERRORS_KEPT; i++)
		free(v->errors[i]);
	for (size_t i = 0; i < v->nvirt; i++) {
		free(v->virt[i]->path);
		free(v->virt[i]);
	}
	free(v->virt);
	free(v->obs);
	vcache_free(&v->cache);
	vcache_disk_close(&v->disk);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->list_cv);
	pthread_mutex_destroy(&v->catalog_lock);
	for (int i = 0; i < VFS_STRIPES; i++)
		pthread_mutex_destroy(&v->stripes[i]);
	pthread_mutex_destroy(&v->busy_lock);
	vmap_free(&v->busy);
	pthread_rwlock_destroy(&v->obs_lock);
	free(v->cache_dir);
	free(v->scratch_dir);
	free(v);
}

int vfs_close(vfs *v)
{
	if (!v)
		return 0;
	pending_walk w = { 0 };
	pthread_mutex_lock(&v->lock);
	v->closing = 1;
	vlookup_refresh_reap(v, 1);
	vmap_each(&v->nodes, collect_pending, &w);
	size_t tombs = v->tombs.count;
	pthread_mutex_unlock(&v->lock);
	int rc = 0;
	for (size_t i = 0; i < w.n; i++) {
		int r = vstore_commit(v, w.items[i], NULL, "unmount");
		if (r && !rc)
			rc = r;
		pthread_mutex_lock(&v->lock);
		w.items[i]->refs--;
		pthread_mutex_unlock(&v->lock);
	}
	free(w.items);
	if (tombs)
		log_msg(LOG_LVL_INFO, "%zu record(s) renamed to scratch names are kept in S3", tombs);
	pthread_rwlock_rdlock(&v->db->lock);
	int ours = v->db->hook == vfs_on_request && v->db->hook_userdata == v;
	pthread_rwlock_unlock(&v->db->lock);
	if (ours)
		s3db_set_request_hook(v->db, v->prev_hook, v->prev_ud);
	vfs_free(v);
	return rc;
}
