/*
 * vfs.c — the database as a file tree (contract: vfs.h).
 *
 * Pieces:
 *   paths     parse_path() turns a FUSE path into a vpath: which kind of
 *             entry (root, resource directory, record, content, schema,
 *             partition directory, scratch file, virtual file...), its
 *             resource, id and directory.  Names are decided here:
 *             <id>.json with a valid id is a record, <id>.bin its content,
 *             .schema.json the definition; any other name in a resource
 *             directory (or at the root) is a scratch file; a name ending
 *             in .json/.bin whose stem is not a valid id is refused
 *             (EINVAL on create) rather than silently kept local.
 *   cache     vfs_cache.c: rendered records with their validators,
 *             listings, negative entries, the persistent copy on disk.
 *   nodes     a vnode is the local state of one file: the bytes being
 *             written (vfs_buf), whether S3 has the record, what was
 *             stored last.  Nodes of records live while a handle is open
 *             or while they hold something S3 does not (an uncommitted or
 *             refused write, an empty file); scratch nodes live until
 *             they are removed.  Read-only opens get a private snapshot
 *             node (status, errors, partition views, clean records).
 *   handles   fh -> (node, open flags).
 *
 * Reading: getattr and open answer from the cache while it is fresh —
 * record_ttl since S3 last confirmed an entry, or a listing younger than
 * dir_ttl that confirmed it.  A stale entry is revalidated by listing its
 * directory again when that is cheaper than HEADs (relist_pays: one page,
 * or as many HEADs already spent there as the listing has pages), else
 * with one HEAD (resource_head_meta), and re-read only when the
 * validators differ (see vcache_validators_match for why ETags alone do
 * not do).  readdir of a resource is one LIST per 1,000 ids; the ids
 * whose entry the LIST does not confirm are looked up in the persistent
 * cache (confirmed by the LIST's validators) and the rest fetched
 * `prefetch` at a time (pool_run), one GET each when the LIST gives a
 * body size (HEAD when there is no body or a large one), so every getattr
 * that follows is a cache hit.  Lookups of names a fresh listing lacks
 * cost nothing: mkdir starts a known-empty listing, our writes and
 * deletes keep listings current, and a stale listing is listed again
 * (names only) rather than asked about name by name — in the background
 * (refresh_start: one thread per directory at a time, joined by the next
 * refresh or vfs_close) while, for a window past dir_ttl, the stale
 * listing still answers lookups (stale-while-revalidate, ensure_record),
 * so that writers never wait for a relist; a large directory whose last
 * relist found nothing changed by another client is relisted for
 * lookups only every 20 times what listing it again would cost at its
 * present size (lookup_ttl_ms: changes of ours in flight are told apart
 * by v->busy; at most every minute).
 *
 * Writing: a record file open for writing is a buffer; flush, fsync and
 * release commit it (validate + insert or replace) and return only once
 * S3 accepted it.  A refusal leaves S3 untouched, keeps the buffer, and
 * is appended to /.errors and the log.  An empty (or blank) record file
 * is never stored: `truncate -s0 x.json; echo ... > x.json`, touch, and
 * editors that create then write all pass through an empty state, which
 * stays local until content arrives.  Unchanged content is not written
 * again (a `:w` without change costs nothing).
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
 * Locking: v->lock (a mutex) guards every table and node; it is never
 * held across a request or disk I/O.  Operations that change a record in
 * S3 (commit, unlink, rename) also hold the record's stripe lock (64
 * stripes by key hash), taken before v->lock, in index order when two
 * are needed: two writes of one record never interleave.  A fetch that
 * ran concurrently with a local change is not installed (cache epochs).
 * v->refreshes (the background listings) is guarded by v->lock too.
 *
 * Requests: the vfs installs the database's request hook, counts requests
 * by command for /.status, and forwards each to the observers plugins
 * add, and to a hook installed before vfs_open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "vfs.h"
#include "db.h"
#include "log.h"
#include "vfs_buf.h"
#include "vfs_cache.h"
#include "vfs_map.h"
#include "util.h"

#define VFS_ERRORS_KEPT 1000
#define VFS_STRIPES 64
#define VFS_NAME_MAX 255
/* local changes remembered for the listings in flight (change_apply):
 * enough for a listing of several seconds while writers store hundreds
 * of records a second; a listing that outlives them is not trusted */
#define VFS_CHANGES_KEPT 16384
#define VFS_RENDER_KEEP_MS 1000.0
/* relists of a quiet directory for lookups: see lookup_ttl_ms */
#define RELIST_COST_FACTOR 20.0
#define RELIST_QUIET_MAX_MS 60000.0

/* ---- types ------------------------------------------------------------------- */

typedef struct vvirt {
	char *path;              /* "/.costs" (no query)                    */
	vfs_read_fn read_fn;
	vfs_write_fn write_fn;
	void *ud;
	int listed;
} vvirt;

typedef struct vobserver {
	int id;
	s3db_request_hook fn;
	void *ud;
} vobserver;

typedef enum nkind {
	NK_RECORD,               /* /<res>/<id>.json, linked               */
	NK_CONTENT,              /* /<res>/<id>.bin, linked                */
	NK_SCHEMA,               /* /<res>/.schema.json, linked            */
	NK_SCRATCH,              /* local file, linked                     */
	NK_SNAPSHOT,             /* private read-only copy                 */
	NK_VIRTUAL               /* private; plugin file                   */
} nkind;

typedef struct vnode {
	char *path;
	char *dir;               /* "/" or "/<res>"                         */
	char *name;              /* last component                          */
	nkind kind;
	char *res;               /* record, content, schema                 */
	char *id;                /* record, content                         */
	vbuf buf;
	int remote;              /* record: 1 in S3, 0 not, -1 unknown      */
	int created;             /* created here, never stored              */
	int excl;                /* created with O_EXCL                     */
	int linked;              /* in v->nodes                             */
	int refs;                /* open handles                            */
	uint64_t wseq;           /* bumped by every change of buf           */
	uint64_t sseq;           /* wseq when stored/loaded (scratch: when
	                            it became a record's copy)              */
	uint64_t aseq;           /* wseq at the last commit attempt         */
	int last_rc;             /* that attempt's result                   */
	char *origin;            /* scratch: "res/id" it holds, tombstoned  */
	int unlisted;            /* scratch: an unlinked open file's hidden
	                            name (vfs_hide): never listed           */
	char *copy_of;           /* scratch: "res/id" it was renamed from    */
	uint64_t copy_epoch;     /* cache epoch at that rename               */
	struct timespec atime, mtime;
	const vvirt *virt;
	char *query;
	/* who last opened it for writing (process name copied into
	 * writer_process): the context of a store made at release, where
	 * FUSE gives no caller, or at unmount */
	s3db_ctx writer;
	char writer_process[64];
} vnode;

typedef struct vhandle {
	vnode *node;
	int flags;
} vhandle;

typedef struct vchange {
	uint64_t epoch;
	char *key;               /* "res/id"                                */
	int exists;
} vchange;

/* A background relist of one resource's listing (stale-while-
 * revalidate, see ensure_record): a thread of its own, joined by the next
 * refresh to start or by vfs_close. */
typedef struct vrefresh {
	pthread_t thread;
	struct vfs *v;
	s3db_resource *res;
	char *rname;
	int done;                /* the thread has ended its work (lock)    */
	struct vrefresh *next;
} vrefresh;

typedef struct vrender {
	char *text;
	size_t len;
	double made_ms;
} vrender;

struct vfs {
	s3db *db;
	vfs_options o;           /* o.prefetch > 0 and o.max_file_size > 0:
	                            vfs_open and vfs_reconfigure see to it   */
	char *cache_dir, *scratch_dir;
	int read_only;           /* a v7 database                           */
	double start_ms;
	int64_t start_wall_ms;

	pthread_mutex_t lock;
	vcache cache;
	vcache_disk disk;
	vmap nodes;              /* path -> vnode (linked nodes)            */
	vmap handles;            /* "fh" -> vhandle                         */
	uint64_t next_fh;
	vmap tombs;              /* "res/id" -> scratch path (char *)        */
	vmap renders;            /* path -> vrender (getattr -> open)       */
	pthread_mutex_t dir_lock; /* guards dir_times only (a leaf lock)   */
	vmap dir_times;          /* dir path -> int64_t ms (malloc'd): the
	                            latest change made or seen in it        */
	vchange changes[VFS_CHANGES_KEPT];
	size_t nchanges;         /* total ever recorded                     */
	uint64_t hits, misses, revalidations;
	char *errors[VFS_ERRORS_KEPT];
	size_t nerrors;          /* total ever recorded                     */
	vvirt **virt;             /* pointers: nodes and paths keep them   */
	size_t nvirt;

	pthread_mutex_t stripes[VFS_STRIPES];
	pthread_mutex_t busy_lock; /* a leaf lock (taken with or without
	                            v->lock, nothing taken under it): busy */
	vmap busy;               /* record keys a change is in flight for
	                            (their stripes held) -> how many, as a
	                            pointer-sized count                     */
	pthread_mutex_t catalog_lock;
	double catalog_ms;       /* when s3db.json was last read            */

	pthread_rwlock_t obs_lock;
	vobserver *obs;
	size_t nobs;
	int next_obs;
	s3db_request_hook prev_hook;
	void *prev_ud;
	atomic_uint_fast64_t req[S3DB_CMD__COUNT];
	atomic_uint_fast64_t req_errors, bytes_sent, bytes_received;
	pthread_cond_t list_cv;  /* a resource listing in flight ended     */
	struct vrefresh *refreshes; /* background relists (lock): running or
	                            ended but not yet joined                */
	int closing;             /* vfs_close began: no new refresh        */
};

/* ---- small helpers --------------------------------------------------------------- */

static double mono(void)
{
	return s3db_monotonic_ms();
}

static double ttl_ms(double seconds)
{
	return seconds > 0 ? seconds * 1000.0 : 0;
}

static int is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return 0;
	return 1;
}

static struct timespec ts_of_ms(int64_t ms)
{
	struct timespec t;
	t.tv_sec = (time_t)(ms / 1000);
	t.tv_nsec = (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000L;
	}
	return t;
}

static struct timespec ts_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return t;
}

/* An s3db_code as -errno. */
static int errno_of(const vfs *v, s3db_code c)
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
static int busy_has(vfs *v, const char *key)
{
	pthread_mutex_lock(&v->busy_lock);
	int busy = vmap_get(&v->busy, key) != NULL;
	pthread_mutex_unlock(&v->busy_lock);
	return busy;
}

/* Locks the stripes of a and b (b may be NULL) in index order, and
 * counts both keys as in flight (busy) until stripes_unlock. */
static void stripes_lock(vfs *v, const char *a, const char *b)
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

static void stripes_unlock(vfs *v, const char *a, const char *b)
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

/* ---- catalogue ------------------------------------------------------------------- */

/* The resource named name; when it is unknown and s3db.json was read
 * longer than dir_ttl ago, reads s3db.json again first (a resource made
 * by another mount shows up). */
static s3db_resource *find_resource(vfs *v, const char *name)
{
	s3db_resource *r = s3db_resource_find(v->db, name);
	if (r)
		return r;
	pthread_mutex_lock(&v->catalog_lock);
	if (mono() - v->catalog_ms >= ttl_ms(v->o.dir_ttl)) {
		s3db_error err;
		s3db_error_clear(&err);
		if (s3db_reload(v->db, &err) != S3DB_OK)
			log_msg(LOG_LVL_WARN, "reading s3db.json: %s", err.message);
		v->catalog_ms = mono();
	}
	pthread_mutex_unlock(&v->catalog_lock);
	return s3db_resource_find(v->db, name);
}

/* Reads s3db.json again when it is older than dir_ttl (root listing). */
static void refresh_catalog(vfs *v)
{
	pthread_mutex_lock(&v->catalog_lock);
	if (mono() - v->catalog_ms >= ttl_ms(v->o.dir_ttl)) {
		s3db_error err;
		s3db_error_clear(&err);
		if (s3db_reload(v->db, &err) != S3DB_OK)
			log_msg(LOG_LVL_WARN, "reading s3db.json: %s", err.message);
		v->catalog_ms = mono();
	}
	pthread_mutex_unlock(&v->catalog_lock);
}

/* "<version>:<hash>" of a schema (for the persistent cache). */
static void schema_tag(const schema *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s:%s", s && s->version ? s->version : "",
	         s && s->hash ? s->hash : "");
}

/* The fields of a partition in the order its keys hold them (the order
 * partition.c sorts them in, read back from a prefix it builds), into
 * *out.  0, or -ENOENT when the resource has no such partition. */
static int partition_fields(vfs *v, s3db_resource *res, const char *part, strv *out)
{
	const schema *s = db_current_schema(res);
	json_object *pdef = NULL, *fields = NULL;
	strv_init(out);
	if (!s || !s->partitions || !json_object_object_get_ex(s->partitions, part, &pdef) ||
	    !json_object_object_get_ex(pdef, "fields", &fields) ||
	    !json_object_is_type(fields, json_type_object) || json_object_object_length(fields) == 0)
		return -ENOENT;
	json_object *vals = json_object_new_object();
	json_object_object_foreach(fields, f, rule) {
		(void)rule;
		json_object_object_add(vals, f, json_object_new_string("x"));
	}
	char *base = NULL, *full = NULL;
	int exact;
	int rc = -ENOMEM;
	if (partition_prefix(v->db, s, part, NULL, &base, &exact, NULL) == S3DB_OK &&
	    partition_prefix(v->db, s, part, vals, &full, &exact, NULL) == S3DB_OK &&
	    s3db_str_starts(full, base)) {
		rc = 0;
		char *rest = full + strlen(base);
		for (char *seg = strtok(rest, "/"); seg; seg = strtok(NULL, "/")) {
			char *eq = strrchr(seg, '=');
			if (eq)
				*eq = '\0';
			strv_push(out, seg);
		}
		if (out->count != (size_t)json_object_object_length(fields))
			rc = -EIO;
	}
	json_object_put(vals);
	free(base);
	free(full);
	if (rc)
		strv_free(out);
	return rc;
}

/* 1 when the resource's current schema has partitions. */
static int has_partitions(s3db_resource *res)
{
	const schema *s = db_current_schema(res);
	return s && s->partitions && json_object_is_type(s->partitions, json_type_object) &&
	       json_object_object_length(s->partitions) > 0;
}

/* ---- paths ------------------------------------------------------------------------- */

typedef enum pkind {
	PK_ROOT,
	PK_STATUS,               /* /.status                               */
	PK_ERRORS,               /* /.errors                               */
	PK_VIRTUAL,              /* a plugin's file                        */
	PK_RES,                  /* /<res>                                  */
	PK_FREE,                 /* /<name>: no resource, no file (yet)     */
	PK_RECORD,               /* /<res>/<id>.json                        */
	PK_CONTENT,              /* /<res>/<id>.bin                         */
	PK_SCHEMA,               /* /<res>/.schema.json                     */
	PK_SCRATCH,              /* any other file name                     */
	PK_BADNAME,              /* <x>.json / <x>.bin, x not a valid id    */
	PK_PARTS,                /* /<res>/.partitions                      */
	PK_PART_DIR,             /* /<res>/.partitions/<p>[/<f>=<v>...]     */
	PK_PART_RECORD,          /* .../<f>=<v>/<id>.json                   */
	PK_PART_OTHER            /* any other name in a partition directory */
} pkind;

typedef struct vpath {
	pkind kind;
	char *path;              /* without a trailing '/'                  */
	char *dir;               /* parent directory ("/" for root names)   */
	char *name;              /* last component ("" for the root)        */
	s3db_resource *res;
	char *resname;
	char *id;
	char *key;               /* "res/id" (records, contents)            */
	char *part;              /* partition name: set once the path goes
	                            below .partitions, even when parse_path
	                            then fails on a later component         */
	strv segs;               /* "f=v" below the partition               */
	strv fields;             /* the partition's fields, in key order    */
	const vvirt *virt;
	char *query;             /* percent-decoded, NULL when none         */
} vpath;

static void vpath_free(vpath *p)
{
	free(p->path);
	free(p->dir);
	free(p->name);
	free(p->resname);
	free(p->id);
	free(p->key);
	free(p->part);
	strv_free(&p->segs);
	strv_free(&p->fields);
	free(p->query);
	memset(p, 0, sizeof *p);
}

/* Percent-decodes s (malloc'd). */
static char *pct_decode(const char *s)
{
	char *out = malloc(strlen(s) + 1), *w = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		int a, b;
		if (*s == '%' && (a = s3db_hex_value(s[1])) >= 0 && (b = s3db_hex_value(s[2])) >= 0) {
			*w++ = (char)(a * 16 + b);
			s += 2;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
	return out;
}

/* The registered virtual file at path (without query); lock held. */
static const vvirt *virt_find(vfs *v, const char *path)
{
	for (size_t i = 0; i < v->nvirt; i++)
		if (!strcmp(v->virt[i]->path, path))
			return v->virt[i];
	return NULL;
}

/* The stem of name when it ends with suffix and is a valid id (malloc'd
 * in *id); returns 1 valid, 0 not that suffix, -1 that suffix but an
 * invalid id. */
static int id_of_name(const char *name, const char *suffix, char **id)
{
	size_t n = strlen(name), sl = strlen(suffix);
	*id = NULL;
	if (n < sl || strcmp(name + n - sl, suffix) != 0)
		return 0;
	char *stem = s3db_strndup(name, n - sl);
	if (!stem)
		return -1;
	if (s3db_id_check(stem, NULL) != S3DB_OK) {
		free(stem);
		return -1;
	}
	*id = stem;
	return 1;
}

/* Parses an absolute path.  0, or -ENOENT (no such resource, partition,
 * or a path deeper than the tree), -ENAMETOOLONG, -ENOMEM, -EINVAL (not
 * absolute). */
static int parse_path(vfs *v, const char *path, vpath *p)
{
	memset(p, 0, sizeof *p);
	strv_init(&p->segs);
	strv_init(&p->fields);
	if (!path || path[0] != '/')
		return -EINVAL;
	size_t plen = strlen(path);
	while (plen > 1 && path[plen - 1] == '/')
		plen--;
	p->path = s3db_strndup(path, plen);
	if (!p->path)
		return -ENOMEM;

	/* plugin files, with or without a query */
	pthread_mutex_lock(&v->lock);
	char *q = strchr(p->path, '?');
	if (q) {
		*q = '\0';
		p->virt = virt_find(v, p->path);
		*q = '?';
	} else {
		p->virt = virt_find(v, p->path);
	}
	pthread_mutex_unlock(&v->lock);

	/* components */
	strv comps;
	strv_init(&comps);
	const char *s = p->path + 1;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n > VFS_NAME_MAX) {
			strv_free(&comps);
			return -ENAMETOOLONG;
		}
		if (n > 0) {
			char *c = s3db_strndup(s, n);
			if (!c || strv_push_owned(&comps, c)) {
				free(c);
				strv_free(&comps);
				return -ENOMEM;
			}
		}
		s += n;
		if (*s == '/')
			s++;
	}
	size_t nc = comps.count;
	if (nc == 0) {
		p->kind = PK_ROOT;
		p->name = strdup("");
		p->dir = strdup("/");
		strv_free(&comps);
		return 0;
	}
	p->name = strdup(comps.items[nc - 1]);
	char *slash = strrchr(p->path, '/');
	p->dir = slash == p->path ? strdup("/") : s3db_strndup(p->path, (size_t)(slash - p->path));
	int rc = 0;
	if (p->virt) {
		p->kind = PK_VIRTUAL;
		if (q)
			p->query = pct_decode(q + 1);
		goto out;
	}
	if (nc == 1) {
		const char *c0 = comps.items[0];
		pthread_mutex_lock(&v->lock);
		vnode *n = vmap_get(&v->nodes, p->path);
		pthread_mutex_unlock(&v->lock);
		if (!strcmp(c0, ".status")) {
			p->kind = PK_STATUS;
		} else if (!strcmp(c0, ".errors")) {
			p->kind = PK_ERRORS;
		} else if (n) {
			p->kind = PK_SCRATCH;
		} else if ((p->res = find_resource(v, c0)) != NULL) {
			p->kind = PK_RES;
			p->resname = strdup(c0);
		} else {
			p->kind = PK_FREE;
		}
		goto out;
	}
	p->resname = strdup(comps.items[0]);
	p->res = find_resource(v, comps.items[0]);
	if (!p->res) {
		rc = -ENOENT;
		goto out;
	}
	const char *c1 = comps.items[1];
	if (nc == 2) {
		int r;
		if (!strcmp(c1, ".schema.json")) {
			p->kind = PK_SCHEMA;
		} else if (!strcmp(c1, ".partitions")) {
			p->kind = PK_PARTS;
		} else if ((r = id_of_name(c1, ".json", &p->id)) != 0) {
			p->kind = r > 0 ? PK_RECORD : PK_BADNAME;
		} else if ((r = id_of_name(c1, ".bin", &p->id)) != 0) {
			p->kind = r > 0 ? PK_CONTENT : PK_BADNAME;
		} else {
			p->kind = PK_SCRATCH;
		}
		if (p->id)
			p->key = vcache_key(p->resname, p->id);
		goto out;
	}
	if (strcmp(c1, ".partitions") != 0) {
		rc = -ENOENT;
		goto out;
	}
	p->part = strdup(comps.items[2]);
	if ((rc = partition_fields(v, p->res, p->part, &p->fields)) != 0)
		goto out;
	p->kind = PK_PART_DIR;
	for (size_t i = 3; i < nc; i++) {
		size_t depth = i - 3;
		const char *c = comps.items[i];
		if (depth < p->fields.count) {
			const char *f = p->fields.items[depth];
			size_t fl = strlen(f);
			if (strncmp(c, f, fl) != 0 || c[fl] != '=') {
				rc = -ENOENT;
				goto out;
			}
			strv_push(&p->segs, c);
		} else if (depth == p->fields.count && i == nc - 1) {
			if (id_of_name(c, ".json", &p->id) > 0) {
				p->kind = PK_PART_RECORD;
				p->key = vcache_key(p->resname, p->id);
			} else {
				p->kind = PK_PART_OTHER; /* an editor's swap file... */
			}
		} else {
			rc = -ENOENT;
			goto out;
		}
	}
out:
	strv_free(&comps);
	if (!rc && (!p->name || !p->dir))
		rc = -ENOMEM;
	return rc;
}

/* The listing key of a partition directory: "res/.partitions/p/f=v...". */
static char *part_dir_key(const vpath *p)
{
	sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s/.partitions/%s", p->resname, p->part);
	for (size_t i = 0; i < p->segs.count; i++)
		sbuf_printf(&b, "/%s", p->segs.items[i]);
	return sbuf_steal(&b);
}

/* ---- nodes and handles --------------------------------------------------------------- */

static vnode *node_new(vfs *v, const char *path, const char *dir, const char *name, nkind kind,
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
	n->atime = n->mtime = ts_now();
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
		vbuf_free(&n->buf);
		free(n->path);
		free(n->dir);
		free(n->name);
		free(n->res);
		free(n->id);
		free(n);
		return NULL;
	}
	return n;
}

static void node_free(vnode *n)
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

static int node_dirty(const vnode *n)
{
	return n->wseq != n->sseq;
}

/* 1 when the node, rather than the cache, says what the file is. */
static int node_shadows(const vnode *n)
{
	return n && n->linked && (n->kind == NK_SCRATCH || n->created || node_dirty(n));
}

/* Inserts a node in the table; lock held.  0, -EEXIST (a node has the
 * path: the caller should have opened that one), or -ENOMEM. */
static int node_link(vfs *v, vnode *n)
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
static void scratch_release_origin(vfs *v, vnode *n)
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
static void node_unlink(vfs *v, vnode *n)
{
	if (n->linked) {
		vmap_del(&v->nodes, n->path);
		n->linked = 0;
	}
	scratch_release_origin(v, n);
	if (n->refs == 0)
		node_free(n);
}

/* Frees a node nobody needs: no handle, nothing S3 lacks; lock held. */
static void node_settle(vfs *v, vnode *n)
{
	if (n->refs > 0)
		return;
	if (!n->linked) {
		node_free(n);
		return;
	}
	if (n->kind != NK_SCRATCH && !n->created && !node_dirty(n))
		node_unlink(v, n);
}

/* Registers a handle on n; lock held.  0 or -ENOMEM. */
static int handle_new(vfs *v, vnode *n, int flags, uint64_t *fh)
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

static vhandle *handle_get(vfs *v, uint64_t fh)
{
	char key[32];
	snprintf(key, sizeof key, "%" PRIu64, fh);
	return vmap_get(&v->handles, key);
}

/* ---- the change log (listings made while we wrote) ------------------------------ */

/* Notes a local change of res/id at epoch; lock held. */
static void change_note(vfs *v, const char *key, uint64_t epoch, int exists)
{
	vchange *c = &v->changes[v->nchanges % VFS_CHANGES_KEPT];
	free(c->key);
	c->key = strdup(key);
	c->epoch = epoch;
	c->exists = exists;
	v->nchanges++;
}

/* Applies the local changes of resource res made after epoch `since` to
 * a listing just read; returns 0, or -1 when changes were forgotten (the
 * listing must then not be trusted).  Lock held. */
static int change_apply(vfs *v, const char *res, vcache_dir *d, uint64_t since)
{
	size_t kept = v->nchanges < VFS_CHANGES_KEPT ? v->nchanges : VFS_CHANGES_KEPT;
	size_t plen = strlen(res);
	int complete = kept < VFS_CHANGES_KEPT;
	for (size_t k = 0; k < kept; k++) {
		vchange *c = &v->changes[(v->nchanges - kept + k) % VFS_CHANGES_KEPT];
		if (!c->key)
			continue;
		if (c->epoch <= since) {
			complete = 1;
			continue;
		}
		if (strncmp(c->key, res, plen) != 0 || c->key[plen] != '/')
			continue;
		if (c->exists)
			vcache_dir_add(d, c->key + plen + 1);
		else
			vcache_dir_remove(d, c->key + plen + 1);
	}
	return complete ? 0 : -1;
}

/* ---- the record cache ---------------------------------------------------------------- */

/* The rendered record: pretty JSON + "\n" (malloc'd). */
static char *render_record(json_object *rec, size_t *len)
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

/* The mtime of a record: its updatedAt when the resource keeps
 * timestamps and the value parses, else fallback_ms. */
static int64_t record_mtime(const schema *s, json_object *rec, int64_t fallback_ms)
{
	int64_t ms;
	const char *u = s && s->timestamps ? s3db_json_get_string(rec, "updatedAt") : NULL;
	if (u && s3db_parse_iso8601(u, &ms) == 0)
		return ms;
	return fallback_ms;
}

/* Writes an entry to the persistent cache (no lock held). */
static void disk_store_entry(vfs *v, const char *res, const char *id, const char *text,
                             size_t len, const record_meta *meta, int64_t mtime_ms,
                             int64_t read_wall_ms, const schema *s)
{
	if (!v->disk.dir)
		return;
	vcache_disk_rec dr;
	memset(&dr, 0, sizeof dr);
	dr.meta = *meta;
	dr.mtime_ms = mtime_ms;
	dr.read_wall_ms = read_wall_ms;
	schema_tag(s, dr.schema_hash, sizeof dr.schema_hash);
	dr.text = (char *)text;
	dr.len = len;
	int rc = vcache_disk_store(&v->disk, res, id, &dr);
	if (rc)
		log_msg(LOG_LVL_INFO, "persistent cache: %s/%s: %s", res, id, strerror(-rc));
}

/* The store says res/id does not exist: remember that for negative_ttl
 * and drop it from the listing and the persistent cache — unless the cache
 * changed since epoch0 (a write of ours raced the request).  No lock held. */
static void forget_missing_record(vfs *v, const char *key, const char *rname, const char *id,
                                  uint64_t epoch0)
{
	pthread_mutex_lock(&v->lock);
	if (!vcache_changed_since(&v->cache, key, epoch0)) {
		vcache_neg_put(&v->cache, key, mono() + ttl_ms(v->o.negative_ttl), 0);
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		if (d)
			vcache_dir_remove(d, id);
	}
	pthread_mutex_unlock(&v->lock);
	vcache_disk_remove(&v->disk, rname, id);
}

/* Reads res/id from S3 and installs it in the cache and the persistent
 * cache: one GET when a listing said its size (size_hint, see
 * resource_get_meta_sized), else HEAD (+ GET when it has a body).  0,
 * -ENOENT (then a negative entry), or -errno.  No lock held. */
static int fetch_record_sized(vfs *v, s3db_resource *res, const char *id, int64_t size_hint,
                              const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	char *key = vcache_key(rname, id);
	if (!key)
		return -ENOMEM;
	const schema *s = db_current_schema(res);
	pthread_mutex_lock(&v->lock);
	uint64_t epoch0 = v->cache.epoch;
	v->misses++;
	pthread_mutex_unlock(&v->lock);
	int64_t wall0 = s3db_now_ms();
	json_object *rec = NULL;
	record_meta meta;
	memset(&meta, 0, sizeof meta);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = resource_get_meta_sized(res, id, size_hint, ctx, &rec, &meta, &err);
	int rc = 0;
	if (c == S3DB_ERR_NOT_FOUND) {
		forget_missing_record(v, key, rname, id, epoch0);
		rc = -ENOENT;
	} else if (c != S3DB_OK) {
		rc = errno_of(v, c);
		log_msg(LOG_LVL_WARN, "reading %s/%s: %s", rname, id, err.message);
	} else {
		size_t len = 0;
		char *text = render_record(rec, &len);
		int64_t mtime = record_mtime(s, rec, meta.last_modified_ms);
		char *copy = text && v->disk.dir ? s3db_strndup(text, len) : NULL;
		if (!text) {
			rc = -ENOMEM;
		} else {
			pthread_mutex_lock(&v->lock);
			if (!vcache_changed_since(&v->cache, key, epoch0))
				vcache_put(&v->cache, key, text, len, &meta, mtime, mono(), wall0, s);
			else
				free(text);
			pthread_mutex_unlock(&v->lock);
		}
		if (copy)
			disk_store_entry(v, rname, id, copy, len, &meta, mtime, wall0, s);
		free(copy);
	}
	json_object_put(rec);
	free(key);
	return rc;
}

/* fetch_record_sized without a size: HEAD (+ GET). */
static int fetch_record(vfs *v, s3db_resource *res, const char *id, const s3db_ctx *ctx)
{
	return fetch_record_sized(v, res, id, -1, ctx);
}

/* One HEAD: confirms the entry of res/id (0), or re-reads it when it
 * changed (fetch_record's result).  No lock held. */
static int revalidate_record(vfs *v, s3db_resource *res, const char *id, const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	char *key = vcache_key(rname, id);
	if (!key)
		return -ENOMEM;
	const schema *s = db_current_schema(res);
	pthread_mutex_lock(&v->lock);
	uint64_t epoch0 = v->cache.epoch;
	pthread_mutex_unlock(&v->lock);
	record_meta m;
	memset(&m, 0, sizeof m);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = resource_head_meta(res, id, &m, &err);
	int rc;
	if (c == S3DB_ERR_NOT_FOUND) {
		forget_missing_record(v, key, rname, id, epoch0);
		rc = -ENOENT;
	} else if (c != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "revalidating %s/%s: %s", rname, id, err.message);
		rc = errno_of(v, c);
	} else {
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, key);
		int same = e && e->schema == (const void *)s &&
		           vcache_validators_match(e, m.etag, m.size, m.last_modified_ms);
		if (same) {
			e->validated_ms = mono();
			v->revalidations++;
		}
		pthread_mutex_unlock(&v->lock);
		rc = same ? 0 : fetch_record(v, res, id, ctx);
	}
	free(key);
	return rc;
}

typedef enum want {
	WANT_ATTR,               /* getattr: fresh by record_ttl or listing */
	WANT_OPEN                /* open: close-to-open, record_ttl only    */
} want;

/* Installs the persistent cache's copy of res/id as a stale entry (to be
 * confirmed by a HEAD or a LIST) when it was rendered with the current
 * schema; 1 when installed.  No lock held. */
static int disk_candidate(vfs *v, s3db_resource *res, const char *id, const char *key)
{
	if (!v->disk.dir)
		return 0;
	const char *rname = s3db_resource_name(res);
	const schema *s = db_current_schema(res);
	vcache_disk_rec dr;
	if (vcache_disk_load(&v->disk, rname, id, &dr) != 0)
		return 0;
	char tag[96];
	schema_tag(s, tag, sizeof tag);
	int ok = 0;
	if (!strcmp(tag, dr.schema_hash)) {
		pthread_mutex_lock(&v->lock);
		if (!vmap_get(&v->cache.recs, key)) {
			vcache_rec *e = vcache_put(&v->cache, key, dr.text, dr.len, &dr.meta, dr.mtime_ms,
			                           -1e18, dr.read_wall_ms, s);
			dr.text = NULL;
			if (e)
				snprintf(e->version, sizeof e->version, "%s", dr.version);
			ok = e != NULL;
		}
		pthread_mutex_unlock(&v->lock);
	}
	vcache_disk_rec_free(&dr);
	return ok;
}

typedef enum list_mode {
	LIST_NAMES,              /* names and validators only (a lookup)    */
	LIST_RECORDS             /* and read the records it does not confirm */
} list_mode;

static int sync_listing(vfs *v, s3db_resource *res, list_mode mode, int force,
                        const char *want_id, int64_t *want_size, const s3db_ctx *ctx);

/* The LIST pages (STORE_LIST_PAGE_MAX keys each) a listing of n names takes. */
static uint64_t listing_pages(size_t n)
{
	return (n + STORE_LIST_PAGE_MAX - 1) / STORE_LIST_PAGE_MAX;
}

/* 1 when revalidating a stale entry of directory d by listing d again
 * (which confirms every entry of it at once) pays better than one HEAD:
 * the listing is one page, or this directory has already cost as many
 * HEADs since it was listed as a listing has pages (so listing never
 * costs more than twice the HEADs it replaces).  Lock held. */
static int relist_pays(const vcache_dir *d)
{
	uint64_t pages = listing_pages(d->names.count);
	return pages <= 1 || d->heads + 1 >= pages;
}

static int refresh_start(vfs *v, s3db_resource *res);

/* How long past dir_ttl a listing may still answer while it is listed
 * again in the background (stale-while-revalidate): twice the time its
 * own listing took, at least 1 s, at most dir_ttl (so nothing with
 * dir_ttl 0).  Lock held. */
static double stale_window_ms(const vfs *v, const vcache_dir *d)
{
	double ttl = ttl_ms(v->o.dir_ttl);
	double w = 2 * (d->listed_ms - d->started_ms);
	if (w < 1000)
		w = 1000;
	return w < ttl ? w : ttl;
}

/* What listing directory d again would cost now, in ms: what its last
 * listing took, by page, times the pages its names fill now (our own
 * writes since make it grow).  Lock held. */
static double relist_cost_ms(const vcache_dir *d)
{
	double pages_then = (double)listing_pages(d->listed_count);
	double pages_now = (double)listing_pages(d->names.count);
	if (pages_then < 1)
		pages_then = 1;
	return (d->listed_ms - d->started_ms) / pages_then * pages_now;
}

/* How long a listing answers lookups (getattr) before it is listed
 * again: dir_ttl — or, for a quiet directory of more than one LIST page
 * (d->quiet: its last relist found nothing another client had changed;
 * one page is one request, cheap anywhere), RELIST_COST_FACTOR times
 * what listing it again would cost now (relist_cost_ms) when that is
 * longer, capped at RELIST_QUIET_MAX_MS (or dir_ttl when longer).  A
 * listing costs the server about its own duration (s3rver scans the
 * whole prefix for every page: ~2 s for 10,000 keys), so a create loop
 * or parallel copies in a large directory nobody else writes spend at
 * most 1/RELIST_COST_FACTOR of the server's time on relists instead of
 * one listing every dir_ttl.  The cost is priced at the directory's
 * size now, not at its last listing's: in a directory our own writes
 * make grow, a listing gets dearer as fast as time passes, so a create
 * loop lists it again about never (at most every RELIST_QUIET_MAX_MS)
 * rather than every 20 times a listing of the smaller directory it
 * was; one our deletes shrink is priced cheaper, and listed again
 * sooner, the same way.  A directory others write in is relisted every dir_ttl, and
 * readdir and opens (close-to-open) keep dir_ttl and record_ttl
 * whatever the directory.  dir_ttl 0 stays 0.  Lock held. */
static double lookup_ttl_ms(const vfs *v, const vcache_dir *d)
{
	double ttl = ttl_ms(v->o.dir_ttl);
	if (!d || !d->quiet || ttl <= 0 || d->names.count <= 1000)
		return ttl;
	double quiet = RELIST_COST_FACTOR * relist_cost_ms(d);
	if (quiet > RELIST_QUIET_MAX_MS)
		quiet = RELIST_QUIET_MAX_MS;
	return quiet > ttl ? quiet : ttl;
}

/* 1 when d, older than lookup_ttl_ms, may still answer lookups (see
 * ensure_record): it is a complete listing (not one dropped by an
 * overflow of the change log) kept current by our own writes, and
 * within stale_window_ms past lookup_ttl_ms.  Lock held. */
static int dir_serves_stale(const vfs *v, const vcache_dir *d, double now)
{
	return d && now - d->listed_ms < lookup_ttl_ms(v, d) + stale_window_ms(v, d);
}

/* Makes the cache hold res/id, fresh enough for w.  0, -ENOENT, -errno.
 *
 * A name the directory's fresh listing lacks is missing without a
 * request (a directory made by mkdir starts with an empty listing; our
 * own writes keep it current).  A name looked up in a directory listed
 * before but not within dir_ttl lists the directory again (names and
 * validators, one LIST per 1,000 ids) rather than asking S3 about that
 * one name: the next lookups (a create loop, parallel copies) are then
 * answered from it.  A stale entry is revalidated by listing its
 * directory again when relist_pays(), else with one HEAD.
 *
 * Stale-while-revalidate: for a getattr (WANT_ATTR, which a create with
 * O_TRUNC or O_EXCL also uses), a listing past dir_ttl but within
 * dir_serves_stale still answers — a name it lacks is missing, an entry
 * it confirmed is fresh — and the directory is listed again by a
 * background thread (refresh_start; one per directory at a time), so a
 * lookup never waits for a relist.  An open without O_TRUNC
 * (close-to-open, appends) never answers from a stale listing.  A
 * create answered "missing" is an insert with If-None-Match: a record
 * another client made meanwhile turns it into a replace (or EEXIST
 * under O_EXCL), never a lost record.  No lock held. */
static int ensure_record(vfs *v, s3db_resource *res, const char *id, want w, const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	char *key = vcache_key(rname, id);
	if (!key)
		return -ENOMEM;
	const schema *s = db_current_schema(res);
	int64_t size_hint = -1;  /* from our listing: -2 not listed, else bytes */
	int listed = 0, rc = 1;
	uint64_t epoch0 = 0;     /* the cache's epoch before our listing     */
	for (;;) {
		double now = mono();
		int via_list = 0;
		rc = 1; /* 1: still to decide */
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, key);
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		int dir_fresh = d && now - d->listed_ms < (w == WANT_ATTR ? lookup_ttl_ms(v, d)
		                                                        : ttl_ms(v->o.dir_ttl));
		int dir_stale_ok = !dir_fresh && w == WANT_ATTR && dir_serves_stale(v, d, now);
		if (e && e->schema == (const void *)s) {
			int fresh = now - e->validated_ms < ttl_ms(v->o.record_ttl);
			if (!fresh && w == WANT_ATTR && dir_fresh && e->validated_ms >= d->started_ms)
				fresh = 1;
			if (!fresh && dir_stale_ok && e->validated_ms >= d->started_ms &&
			    refresh_start(v, res) == 0)
				fresh = 1;
			if (fresh) {
				v->hits++;
				rc = 0;
			} else if (e->list_changed) {
				rc = 3; /* a listing showed it changed: read it again */
				size_hint = e->list_size;
			} else {
				rc = 2; /* revalidate */
			}
		} else if (!e && vcache_neg_valid(&v->cache, key, now)) {
			v->hits++;
			rc = -ENOENT;
		} else if (!e && dir_fresh && !vcache_dir_has(d, id)) {
			v->hits++;
			rc = -ENOENT;
		} else if (!e && dir_stale_ok && !vcache_dir_has(d, id) && refresh_start(v, res) == 0) {
			v->hits++;
			rc = -ENOENT;
		}
		if (!listed && d && ((rc == 1 && !dir_fresh) || (rc == 2 && relist_pays(d))))
			via_list = 1;
		else if (rc == 2 && d)
			d->heads++;
		epoch0 = v->cache.epoch;
		pthread_mutex_unlock(&v->lock);
		if (!via_list)
			break;
		listed = 1;
		if (sync_listing(v, res, LIST_NAMES, rc == 2, id, &size_hint, ctx) != 0)
			break; /* the listing failed: ask about the name itself */
	}
	if (rc == 2 && listed && size_hint == -2) {
		/* our listing does not have it: gone */
		forget_missing_record(v, key, rname, id, epoch0);
		rc = -ENOENT;
	} else if (rc == 2 && listed && size_hint >= 0) {
		/* listed with other validators (or read too close to its
		 * LastModified to be confirmed): read it again */
		rc = fetch_record_sized(v, res, id, size_hint, ctx);
	} else if (rc == 2) {
		rc = revalidate_record(v, res, id, ctx);
	} else if (rc == 3) {
		rc = fetch_record_sized(v, res, id, size_hint, ctx);
	} else if (rc == 1) {
		rc = disk_candidate(v, res, id, key) ? revalidate_record(v, res, id, ctx)
		                                     : fetch_record_sized(v, res, id, size_hint, ctx);
	}
	free(key);
	return rc;
}

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
	st->st_atim = st->st_mtim = st->st_ctim = ts_of_ms(v->start_wall_ms);
}

static void stat_file(vfs *v, struct stat *st, const char *path, int64_t size, int64_t mtime_ms,
                      int writable)
{
	stat_common(v, st, path);
	st->st_mode = S_IFREG | ((writable && !v->read_only ? 0666 : 0444) & ~v->o.umask);
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_atim = st->st_mtim = st->st_ctim = ts_of_ms(mtime_ms);
}

/* Attributes of a node's local file; lock held. */
static void stat_node(vfs *v, struct stat *st, const vnode *n)
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
	st->st_atim = st->st_mtim = st->st_ctim = ts_of_ms(mtime_ms);
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
static void dir_changed(vfs *v, const char *path)
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
		st->st_mtim = st->st_ctim = ts_of_ms(*t);
	pthread_mutex_unlock(&v->dir_lock);
}

/* ---- rendered files -------------------------------------------------------------------- */

/* The definition of a resource as .schema.json shows it (malloc'd). */
static char *render_schema(s3db_resource *res, size_t *len)
{
	json_object *def = s3db_resource_definition(res);
	if (!def)
		def = json_object_new_object();
	char *t = render_record(def, len);
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
	else if (node_dirty(n))
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
	                       json_object_new_int64((int64_t)((mono() - v->start_ms) / 1000.0)));
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
	char *t = render_record(o, len);
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
static void purge_renders(vfs *v, double keep_ms)
{
	render_purge w = { .now = mono(), .keep_ms = keep_ms };
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
static int render_virtual(vfs *v, const vpath *p, int for_getattr, char **text, size_t *len)
{
	*text = NULL;
	*len = 0;
	if (!for_getattr) {
		pthread_mutex_lock(&v->lock);
		vrender *r = vmap_del(&v->renders, p->path);
		pthread_mutex_unlock(&v->lock);
		if (r && mono() - r->made_ms < VFS_RENDER_KEEP_MS) {
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
		purge_renders(v, VFS_RENDER_KEEP_MS);
		vrender *r = calloc(1, sizeof *r);
		if (r && (r->text = malloc(*len + 1)) != NULL) {
			memcpy(r->text, *text, *len);
			r->text[*len] = '\0';
			r->len = *len;
			r->made_ms = mono();
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

/* ---- listings ---------------------------------------------------------------------------- */

typedef struct lent {
	char *id;
	char etag[72];
	int64_t size, lm;
} lent;

typedef struct lents {
	lent *items;
	size_t n, cap;
	int oom;
} lents;

static int collect_entry(void *ud, const char *id, const store_entry *e)
{
	lents *l = ud;
	lent *items = s3db_array_room(l->items, &l->cap, l->n, sizeof *items, 256);
	if (items)
		l->items = items;
	lent *it = items ? &items[l->n] : NULL;
	if (!it || !(it->id = strdup(id))) {
		l->oom = 1;
		return 1;
	}
	snprintf(it->etag, sizeof it->etag, "%s", e->etag);
	it->size = e->size;
	it->lm = e->last_modified_ms;
	l->n++;
	return 0;
}

static void lents_free(lents *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].id);
	free(l->items);
	memset(l, 0, sizeof *l);
}

typedef struct fetch_job {
	vfs *v;
	s3db_resource *res;
	char **ids;
	int64_t *sizes;          /* fetch_record: sizes the LIST gave, or NULL */
	want w;
	int use_ensure;          /* 1: ensure_record, 0: fetch_record       */
	const s3db_ctx *ctx;
	int *rcs;
} fetch_job;

static void fetch_one(void *ud, size_t i)
{
	fetch_job *j = ud;
	j->rcs[i] = j->use_ensure ? ensure_record(j->v, j->res, j->ids[i], j->w, j->ctx)
	                          : fetch_record_sized(j->v, j->res, j->ids[i],
	                                               j->sizes ? j->sizes[i] : -1, j->ctx);
}

/* 1 when the sorted name lists a (a listing kept current by our
 * changes) and b (a new listing of resource rname, our changes noted
 * since it started applied) differ only in names with a change of ours
 * in flight (busy): S3 may show such a change before it is noted.
 * Lock held. */
static int same_names_but_ours(vfs *v, const char *rname, const strv *a, const strv *b)
{
	size_t i = 0, j = 0;
	while (i < a->count || j < b->count) {
		int cmp = i == a->count ? 1 : j == b->count ? -1 : strcmp(a->items[i], b->items[j]);
		const char *odd = cmp < 0 ? a->items[i] : cmp > 0 ? b->items[j] : NULL;
		if (cmp <= 0)
			i++;
		if (cmp >= 0)
			j++;
		if (!odd)
			continue;
		char *key = vcache_key(rname, odd);
		int ours = key && busy_has(v, key);
		free(key);
		if (!ours)
			return 0;
	}
	return 1;
}

/* The listing itself (sync_listing): LIST, confirm, read what mode
 * asks, install the names; the directory is quiet (lookup_ttl_ms) when
 * the names equal those of the listing it replaces and no record
 * changed but by us.  epoch0: the cache's epoch before the LIST (local
 * changes since are applied to the names).  No lock held. */
static int list_resource_now(vfs *v, s3db_resource *res, const schema *s, list_mode mode,
                             uint64_t epoch0, const char *want_id, int64_t *want_size,
                             const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	double t_list = mono();
	lents l = { 0 };
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = resource_list_entries(res, NULL, ctx, collect_entry, &l, &err);
	if (c == S3DB_OK && l.oom)
		c = S3DB_ERR_NOMEM;
	if (c != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "listing %s: %s", rname, err.message);
		lents_free(&l);
		return errno_of(v, c);
	}
	char **need = calloc(l.n + 1, sizeof *need);
	size_t nneed = 0;
	int *gone = calloc(l.n + 1, sizeof *gone);
	size_t *need_idx = calloc(l.n + 1, sizeof *need_idx);
	int64_t *sizes = calloc(l.n + 1, sizeof *sizes);
	if (!need || !gone || !need_idx || !sizes) {
		free(need);
		free(gone);
		free(need_idx);
		free(sizes);
		lents_free(&l);
		return -ENOMEM;
	}
	/* what the LIST confirms */
	int *unconfirmed = gone; /* reuse: 1 = not confirmed yet, later 2 = gone */
	size_t foreign = 0;      /* records another client changed          */
	if (want_size)
		*want_size = -2;
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < l.n; i++) {
		if (want_size && want_id && !strcmp(l.items[i].id, want_id))
			*want_size = l.items[i].size;
		char *key = vcache_key(rname, l.items[i].id);
		vcache_rec *e = key ? vmap_get(&v->cache.recs, key) : NULL;
		if (e && e->schema == (const void *)s &&
		    vcache_validators_match(e, l.items[i].etag, l.items[i].size, l.items[i].lm)) {
			e->validated_ms = t_list;
			e->list_changed = 0;
			v->hits++;
		} else {
			unconfirmed[i] = 1;
			if (e && !vcache_changed_since(&v->cache, key, epoch0)) {
				e->list_changed = 1;
				e->list_size = l.items[i].size;
				if (e->schema == (const void *)s &&
				    vcache_validators_differ(e, l.items[i].etag, l.items[i].size,
				                             l.items[i].lm) &&
				    !busy_has(v, key))
					foreign++;
			}
		}
		free(key);
	}
	pthread_mutex_unlock(&v->lock);
	/* the persistent cache, confirmed by the LIST's validators */
	char tag[96];
	schema_tag(s, tag, sizeof tag);
	for (size_t i = 0; mode == LIST_RECORDS && i < l.n; i++) {
		if (!unconfirmed[i])
			continue;
		vcache_disk_rec dr;
		int ok = 0;
		if (v->disk.dir && vcache_disk_load(&v->disk, rname, l.items[i].id, &dr) == 0) {
			vcache_rec probe;
			memset(&probe, 0, sizeof probe);
			probe.meta = dr.meta;
			probe.read_wall_ms = dr.read_wall_ms;
			if (!strcmp(tag, dr.schema_hash) &&
			    vcache_validators_match(&probe, l.items[i].etag, l.items[i].size, l.items[i].lm)) {
				char *key = vcache_key(rname, l.items[i].id);
				pthread_mutex_lock(&v->lock);
				if (key && !vcache_changed_since(&v->cache, key, epoch0)) {
					vcache_rec *e = vcache_put(&v->cache, key, dr.text, dr.len, &dr.meta,
					                           dr.mtime_ms, t_list, dr.read_wall_ms, s);
					dr.text = NULL;
					if (e) {
						snprintf(e->version, sizeof e->version, "%s", dr.version);
						v->hits++;
						ok = 1;
					}
				}
				pthread_mutex_unlock(&v->lock);
				free(key);
			}
			vcache_disk_rec_free(&dr);
		}
		if (!ok) {
			need_idx[nneed] = i;
			sizes[nneed] = l.items[i].size;
			need[nneed++] = l.items[i].id;
		}
	}
	/* the rest, in parallel */
	int rc = 0;
	if (nneed) {
		int *rcs = calloc(nneed, sizeof *rcs);
		if (rcs) {
			fetch_job j = { .v = v, .res = res, .ids = need, .sizes = sizes, .ctx = ctx,
			                .rcs = rcs };
			pool_run(v->o.prefetch, nneed, fetch_one, &j);
			for (size_t k = 0; k < nneed; k++)
				if (rcs[k] == -ENOENT)
					gone[need_idx[k]] = 2;
			free(rcs);
		}
	}
	strv names;
	strv_init(&names);
	for (size_t i = 0; i < l.n; i++)
		if (gone[i] != 2 && strv_push(&names, l.items[i].id))
			rc = -ENOMEM;
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		/* the listing it replaces, kept current by our own changes:
		 * the same names (and no record changed by another client)
		 * make the directory quiet */
		vcache_dir *od = vcache_dir_get(&v->cache, rname);
		strv before;
		strv_init(&before);
		int had = od && od->listed_ms > -1e17;
		if (od) {
			before = od->names;
			strv_init(&od->names);
		}
		if (vcache_dir_put(&v->cache, rname, &names, t_list, mono()) == 0) {
			vcache_dir *nd = vcache_dir_get(&v->cache, rname);
			if (nd)
				nd->names_only = mode == LIST_NAMES;
			if (nd && change_apply(v, rname, nd, epoch0) < 0)
				nd->listed_ms = -1e18;
			else if (nd)
				nd->quiet = had && !foreign && same_names_but_ours(v, rname, &before,
				                                                    &nd->names);
			if (nd)
				log_msg(LOG_LVL_DEBUG, "listed %s: %zu names in %.0f ms, %zu changed by others%s",
				        rname, nd->names.count, nd->listed_ms - nd->started_ms, foreign,
				        nd->quiet ? ", quiet" : "");
		}
		strv_free(&before);
		pthread_mutex_unlock(&v->lock);
	}
	strv_free(&names);
	free(need);
	free(gone);
	free(need_idx);
	free(sizes);
	lents_free(&l);
	return rc;
}

/* Waits for a listing of rname in flight, then marks ours as in flight
 * (when the directory is known).  Returns 1 when one ended while we
 * waited.  Lock held. */
static int listing_begin(vfs *v, const char *rname)
{
	int waited = 0;
	vcache_dir *d;
	while ((d = vcache_dir_get(&v->cache, rname)) && d->listing) {
		pthread_cond_wait(&v->list_cv, &v->lock);
		waited = 1;
	}
	if (d)
		d->listing = 1;
	return waited;
}

/* Ends our listing of rname (listing_begin); lock held. */
static void listing_end(vfs *v, const char *rname)
{
	vcache_dir *d = vcache_dir_get(&v->cache, rname);
	if (d)
		d->listing = 0;
	pthread_cond_broadcast(&v->list_cv);
}

/* Lists a resource: one LIST per 1,000 ids; the cache entries whose
 * validators the LIST shows are confirmed (as of the LIST's start).  In
 * LIST_RECORDS mode (readdir) the persistent cache is tried for the
 * others and the rest are read, prefetch at a time, one request each
 * (fetch_record_sized with the LIST's size); in LIST_NAMES mode (a
 * lookup) nothing else is read.  Without `force`, nothing is done while
 * the listing is younger than dir_ttl (and, for LIST_RECORDS, was made
 * in that mode); with it, a listing that ended while this one waited to
 * start is enough.  One listing of a resource at a time: the others wait
 * for it.  *want_size (optional) gets the size the LIST gives want_id,
 * -2 when it lacks it, -1 when no LIST was made.  0 or -errno.  No lock
 * held. */
static int sync_listing(vfs *v, s3db_resource *res, list_mode mode, int force,
                        const char *want_id, int64_t *want_size, const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	const schema *s = db_current_schema(res);
	if (want_size)
		*want_size = -1;
	pthread_mutex_lock(&v->lock);
	int waited = listing_begin(v, rname);
	vcache_dir *d = vcache_dir_get(&v->cache, rname);
	int fresh = force ? waited
	                  : d && mono() - d->listed_ms < ttl_ms(v->o.dir_ttl) &&
	                    (mode == LIST_NAMES || !d->names_only);
	uint64_t epoch0 = v->cache.epoch;
	if (fresh)
		listing_end(v, rname);
	pthread_mutex_unlock(&v->lock);
	if (fresh)
		return 0;
	int rc = list_resource_now(v, res, s, mode, epoch0, want_id, want_size, ctx);
	pthread_mutex_lock(&v->lock);
	listing_end(v, rname);
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* The background relist of refresh_start: a names-only listing, made
 * when the listing is still stale (sync_listing), with the mount's own
 * context (no caller waits for it). */
static void *refresh_main(void *arg)
{
	vrefresh *r = arg;
	vfs *v = r->v;
	s3db_ctx ctx = { .uid = getuid(), .gid = getgid(), .pid = getpid(), .process = "s3dbfs",
	                 .origin = "fuse" };
	int rc = sync_listing(v, r->res, LIST_NAMES, 0, NULL, NULL, &ctx);
	if (rc)
		log_msg(LOG_LVL_DEBUG, "background listing of %s: %s", r->rname, strerror(-rc));
	pthread_mutex_lock(&v->lock);
	r->done = 1;
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Joins and frees the refreshes that ended (all of them, waiting, when
 * `all`).  Lock held; released while waiting for a running one. */
static void refresh_reap(vfs *v, int all)
{
	vrefresh **pp = &v->refreshes;
	while (*pp) {
		vrefresh *r = *pp;
		if (!r->done && !all) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (!r->done)
			pthread_mutex_unlock(&v->lock);
		pthread_join(r->thread, NULL); /* a done thread only returns */
		if (!r->done)
			pthread_mutex_lock(&v->lock);
		free(r->rname);
		free(r);
		pp = &v->refreshes; /* the list may have changed meanwhile */
	}
}

/* Lists res again in the background unless a refresh of it is running
 * already (then nothing to do).  0 when one runs, -1 when none can start
 * (vfs_close began, out of memory, no thread): the caller lists in the
 * foreground instead.  Lock held. */
static int refresh_start(vfs *v, s3db_resource *res)
{
	const char *rname = s3db_resource_name(res);
	if (v->closing)
		return -1;
	refresh_reap(v, 0);
	for (vrefresh *r = v->refreshes; r; r = r->next)
		if (!r->done && !strcmp(r->rname, rname))
			return 0;
	vrefresh *r = calloc(1, sizeof *r);
	if (!r || !(r->rname = strdup(rname))) {
		free(r);
		return -1;
	}
	r->v = v;
	r->res = res;
	if (pthread_create(&r->thread, NULL, refresh_main, r) != 0) {
		free(r->rname);
		free(r);
		return -1;
	}
	r->next = v->refreshes;
	v->refreshes = r;
	return 0;
}

/* readdir's listing: sync_listing in LIST_RECORDS mode. */
static int list_resource(vfs *v, s3db_resource *res, const s3db_ctx *ctx)
{
	return sync_listing(v, res, LIST_RECORDS, 0, NULL, NULL, ctx);
}

/* A partition value from its directory name ("f=v" -> "v"). */
static const char *seg_value(const char *seg, const char *field)
{
	return seg + strlen(field) + 1;
}

/* Lists one level of a partition directory into *out (copied): the next
 * field's "f=v" directories (a delimiter LIST of the partition's prefix),
 * or, at the last level, the ids (resource_list_entries on the
 * partition's prefix, records read as for a resource).  0 or -errno. */
static int list_part_dir(vfs *v, const vpath *p, const s3db_ctx *ctx, strv *out)
{
	strv_init(out);
	char *key = part_dir_key(p);
	if (!key)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	vcache_dir *d = vcache_dir_get(&v->cache, key);
	if (d && mono() - d->listed_ms < ttl_ms(v->o.dir_ttl)) {
		for (size_t i = 0; i < d->names.count; i++)
			strv_push(out, d->names.items[i]);
		pthread_mutex_unlock(&v->lock);
		free(key);
		return 0;
	}
	pthread_mutex_unlock(&v->lock);
	double t_list = mono();
	const schema *s = db_current_schema(p->res);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = S3DB_OK;
	strv names;
	strv_init(&names);
	int leaf = p->segs.count == p->fields.count;
	if (!leaf) {
		char *base = NULL;
		int exact;
		c = partition_prefix(v->db, s, p->part, NULL, &base, &exact, &err);
		sbuf pre;
		sbuf_init(&pre);
		if (base)
			sbuf_puts(&pre, base);
		for (size_t i = 0; i < p->segs.count; i++)
			sbuf_printf(&pre, "%s/", p->segs.items[i]);
		free(base);
		char *token = NULL;
		while (c == S3DB_OK && pre.data) {
			store_list_opts lo = { .prefix = pre.data, .delimiter = "/", .continuation = token };
			store_list_page page;
			memset(&page, 0, sizeof page);
			c = store_list(v->db->store, &lo, &page, &err);
			if (c != S3DB_OK)
				break;
			for (size_t i = 0; i < page.prefix_count; i++) {
				const char *cp = page.common_prefixes[i] + pre.len;
				size_t n = strlen(cp);
				if (n && cp[n - 1] == '/')
					n--;
				char *seg = s3db_strndup(cp, n);
				if (seg && s3db_str_starts(seg, p->fields.items[p->segs.count]))
					strv_push_owned(&names, seg);
				else
					free(seg);
			}
			free(token);
			token = page.truncated && page.next_token ? strdup(page.next_token) : NULL;
			store_list_page_free(&page);
			if (!token)
				break;
		}
		free(token);
		sbuf_free(&pre);
	} else {
		json_object *vals = json_object_new_object();
		for (size_t i = 0; i < p->segs.count; i++)
			json_object_object_add(vals, p->fields.items[i],
			                       json_object_new_string(seg_value(p->segs.items[i],
			                                                        p->fields.items[i])));
		s3db_list_opts lo = { .partition = p->part, .partition_values = vals };
		lents l = { 0 };
		c = resource_list_entries(p->res, &lo, ctx, collect_entry, &l, &err);
		json_object_put(vals);
		if (c == S3DB_OK && l.oom)
			c = S3DB_ERR_NOMEM;
		for (size_t i = 0; c == S3DB_OK && i < l.n; i++)
			strv_push(&names, l.items[i].id);
		lents_free(&l);
		if (c == S3DB_OK && names.count) {
			int *rcs = calloc(names.count, sizeof *rcs);
			if (rcs) {
				fetch_job j = { .v = v, .res = p->res, .ids = names.items, .w = WANT_ATTR,
				                .use_ensure = 1, .ctx = ctx, .rcs = rcs };
				pool_run(v->o.prefetch, names.count, fetch_one, &j);
				free(rcs);
			}
		}
	}
	if (c != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "listing %s: %s", p->path, err.message);
		strv_free(&names);
		free(key);
		return errno_of(v, c);
	}
	pthread_mutex_lock(&v->lock);
	vcache_dir_put(&v->cache, key, &names, t_list, mono());
	d = vcache_dir_get(&v->cache, key);
	for (size_t i = 0; d && i < d->names.count; i++)
		strv_push(out, d->names.items[i]);
	pthread_mutex_unlock(&v->lock);
	free(key);
	return 0;
}

/* ---- getattr ------------------------------------------------------------------------------ */

/* 1 when res/id is hidden by a rename onto a scratch name; lock held. */
static int tombstoned(vfs *v, const char *key)
{
	return key && vmap_get(&v->tombs, key) != NULL;
}

/* Attributes of a record, its content or its schema file. */
static int getattr_data(vfs *v, const vpath *p, struct stat *st, const s3db_ctx *ctx)
{
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (node_shadows(n)) {
		stat_node(v, st, n);
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	int hidden = tombstoned(v, p->key);
	pthread_mutex_unlock(&v->lock);
	if (p->kind == PK_SCHEMA) {
		size_t len = 0;
		char *t = render_schema(p->res, &len);
		if (!t)
			return -ENOMEM;
		free(t);
		stat_file(v, st, p->path, (int64_t)len, v->start_wall_ms, 1);
		return 0;
	}
	if (hidden)
		return -ENOENT;
	for (int attempt = 0; attempt < 3; attempt++) {
		int rc = ensure_record(v, p->res, p->id, WANT_ATTR, ctx);
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
static int getattr_part_record(vfs *v, const vpath *p, struct stat *st, const s3db_ctx *ctx)
{
	vpath dirp = *p;
	dirp.kind = PK_PART_DIR;
	strv names;
	int rc = list_part_dir(v, &dirp, ctx, &names);
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
	int rc = parse_path(v, path, &p);
	if (!rc && p.kind != PK_PART_RECORD)
		rc = p.kind == PK_FREE || p.kind == PK_BADNAME || p.kind == PK_PART_OTHER ? -ENOENT
		                                                                       : -EINVAL;
	if (!rc)
		rc = getattr_part_record(v, &p, NULL, ctx);
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
	int rc = parse_path(v, path, &p);
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
		if (has_partitions(p.res))
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
		rc = render_virtual(v, &p, 1, &text, &len);
		if (!rc)
			stat_file(v, st, p.path, (int64_t)len, s3db_now_ms(),
			          p.kind == PK_VIRTUAL && p.virt->write_fn);
		free(text);
		break;
	case PK_SCRATCH: {
		pthread_mutex_lock(&v->lock);
		vnode *n = vmap_get(&v->nodes, p.path);
		if (n && n->linked)
			stat_node(v, st, n);
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
		rc = getattr_part_record(v, &p, st, ctx);
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
	int rc = parse_path(v, path, &p);
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
	if (strcmp(n->dir, w->dir) != 0 || !node_shadows(n) || n->unlisted)
		return 0;
	struct stat st;
	stat_node(w->v, &st, n);
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
	refresh_catalog(v);
	char **names = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = s3db_resource_names(v->db, &names, &err);
	if (c != S3DB_OK)
		return errno_of(v, c);
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
	int rc = list_resource(v, p->res, ctx);
	if (rc)
		return rc;
	size_t slen = 0;
	char *schema_text = render_schema(p->res, &slen);
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
	if (!node_shadows(sn)) { /* else listed with the nodes below */
		stat_file(v, &st, spath ? spath : "", (int64_t)slen, v->start_wall_ms, 1);
		dents_add(out, ".schema.json", &st);
	}
	free(spath);
	if (has_partitions(p->res)) {
		stat_dir(v, &st, "/.partitions", 0);
		dents_add(out, ".partitions", &st);
	}
	vcache_dir *d = vcache_dir_get(&v->cache, p->resname);
	sbuf path;
	sbuf_init(&path);
	for (size_t i = 0; d && i < d->names.count; i++) {
		const char *id = d->names.items[i];
		char *key = vcache_key(p->resname, id);
		if (!key || tombstoned(v, key)) {
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
		if (!node_shadows(rn)) {
			if (e)
				stat_rec(v, &st, path.data, e, 0, 1);
			dents_add(out, path.data + strlen(p->path) + 1, e ? &st : NULL);
		}
		if (e && e->meta.has_content) {
			sbuf_reset(&path);
			sbuf_printf(&path, "%s/%s.bin", p->path, id);
			vnode *cn = path.data ? vmap_get(&v->nodes, path.data) : NULL;
			if (!node_shadows(cn)) {
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
		if (!has_partitions(p->res))
			return -ENOENT;
		json_object_object_foreach(s->partitions, pname, pdef) {
			(void)pdef;
			dents_add(out, pname, &st);
		}
		return 0;
	}
	strv names;
	int rc = list_part_dir(v, p, ctx, &names);
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
	int rc = parse_path(v, path, &p);
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

/* ---- what writes leave in the cache ------------------------------------------------------- */

/* Ends the tombstone of key (a new version of the record was stored or
 * created): the scratch copy holding it becomes a plain scratch file;
 * lock held. */
static void tomb_end(vfs *v, const char *key)
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
	char *text = stored ? render_record(stored, &len) : NULL;
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
			e = vcache_put(&v->cache, key, text, len, &meta, record_mtime(s, stored, now), mono(),
			               0, s);
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
		change_note(v, key, epoch, 1);
		tomb_end(v, key);
	}
	drop_part_listings(v, rname);
	pthread_mutex_unlock(&v->lock);
	free(text);
	vcache_disk_remove(&v->disk, rname, id);
	free(key);
}

/* Forgets a record this vfs deleted.  No lock held. */
static void install_deleted(vfs *v, const char *rname, const char *id)
{
	char *key = vcache_key(rname, id);
	pthread_mutex_lock(&v->lock);
	uint64_t epoch = vcache_new_epoch(&v->cache);
	if (key) {
		double ttl = ttl_ms(v->o.negative_ttl > v->o.dir_ttl ? v->o.negative_ttl : v->o.dir_ttl);
		vcache_neg_put(&v->cache, key, mono() + ttl, epoch);
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		if (d)
			vcache_dir_remove(d, id);
		change_note(v, key, epoch, 0);
	}
	drop_part_listings(v, rname);
	pthread_mutex_unlock(&v->lock);
	vcache_disk_remove(&v->disk, rname, id);
	free(key);
}

/* ---- storing ------------------------------------------------------------------------------------ */

#define REASON_CAP 512

/* Fills a reason buffer (REASON_CAP bytes), cutting what does not fit. */
static void set_reason(char *reason, const char *fmt, ...) S3DB_PRINTF(2, 3);
static void set_reason(char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, REASON_CAP, fmt, ap);
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
		set_reason(reason, "invalid JSON: %s", err.message);
		return -EINVAL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(reason, REASON_CAP, "a record must be a JSON object");
		return -EINVAL;
	}
	json_object *idv = NULL;
	if (json_object_object_get_ex(o, "id", &idv) &&
	    (!json_object_is_type(idv, json_type_string) || strcmp(json_object_get_string(idv), id))) {
		snprintf(reason, REASON_CAP,
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
static int unchanged(vfs *v, s3db_resource *res, const char *id, const char *key,
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
		e->validated_ms = mono();
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
static int store_record_json(vfs *v, const char *rname, const char *id, json_object *o,
                             const char *text, size_t len, int remote, int excl,
                             const s3db_ctx *ctx, char *reason)
{
	if (v->read_only) {
		snprintf(reason, REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	s3db_resource *res = s3db_resource_find(v->db, rname);
	if (!res) {
		snprintf(reason, REASON_CAP, "no resource '%s'", rname);
		return -ENOENT;
	}
	const schema *s = db_current_schema(res);
	if (remote != 0 && text) {
		char *key = vcache_key(rname, id);
		int same = key && unchanged(v, res, id, key, s, text, len);
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
		rc = errno_of(v, c);
		snprintf(reason, REASON_CAP, "%s", err.message[0] ? err.message : s3db_strerror(c));
	}
	json_object_put(out);
	return rc;
}

/* store_record_json for the text of a record file: 0 stored (or already
 * there), 1 nothing stored (blank text: an empty file stays local),
 * -errno with reason filled. */
static int store_record_text(vfs *v, const char *rname, const char *id, const char *text,
                             size_t len, int remote, int excl, const s3db_ctx *ctx, char *reason)
{
	if (v->read_only) {
		snprintf(reason, REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	if (is_blank(text, len))
		return 1;
	json_object *o = NULL;
	int rc = parse_record_text(text, len, id, &o, reason);
	if (!rc)
		rc = store_record_json(v, rname, id, o, text, len, remote, excl, ctx, reason);
	json_object_put(o);
	return rc;
}

/* Stores bytes as the binary content of rname/id.  0, 1 (empty: nothing
 * stored), -errno.  The caller holds the record's stripe. */
static int store_content(vfs *v, const char *rname, const char *id, const char *data, size_t len,
                         char *reason)
{
	if (v->read_only) {
		snprintf(reason, REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	if (len == 0)
		return 1;
	s3db_resource *res = s3db_resource_find(v->db, rname);
	if (!res) {
		snprintf(reason, REASON_CAP, "no resource '%s'", rname);
		return -ENOENT;
	}
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = s3db_set_content(res, id, data, len, NULL, &err);
	if (c != S3DB_OK) {
		snprintf(reason, REASON_CAP, "%s", err.message[0] ? err.message : s3db_strerror(c));
		return errno_of(v, c);
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
static int store_schema(vfs *v, const char *rname, const char *text, size_t len, char *reason)
{
	if (v->read_only) {
		snprintf(reason, REASON_CAP, "the database was written by s3db.js 7.x and is read-only");
		return -EROFS;
	}
	if (is_blank(text, len))
		return 1;
	s3db_error err;
	s3db_error_clear(&err);
	json_object *def = NULL;
	if (s3db_json_parse(text, len, &def, &err) != S3DB_OK) {
		set_reason(reason, "invalid JSON: %s", err.message);
		return -EINVAL;
	}
	if (!json_object_is_type(def, json_type_object)) {
		json_object_put(def);
		snprintf(reason, REASON_CAP, "a resource definition must be a JSON object");
		return -EINVAL;
	}
	s3db_code c = s3db_resource_define(v->db, rname, def, NULL, &err);
	json_object_put(def);
	if (c != S3DB_OK) {
		snprintf(reason, REASON_CAP, "%s", err.message[0] ? err.message : s3db_strerror(c));
		return errno_of(v, c);
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
static int node_commit(vfs *v, vnode *n, const s3db_ctx *ctx, const char *op)
{
	if (n->kind == NK_SNAPSHOT || n->kind == NK_SCRATCH)
		return 0;
	s3db_ctx who;
	char who_process[sizeof n->writer_process];
	pthread_mutex_lock(&v->lock);
	ctx = commit_ctx(n, ctx, &who, who_process, sizeof who_process);
	pthread_mutex_unlock(&v->lock);
	char reason[REASON_CAP];
	reason[0] = '\0';
	int rc;
	if (n->kind == NK_VIRTUAL) {
		pthread_mutex_lock(&v->lock);
		if (!node_dirty(n) || n->aseq == n->wseq) {
			rc = node_dirty(n) ? n->last_rc : 0;
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
		purge_renders(v, 0);
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
	stripes_lock(v, lockkey, NULL);
	pthread_mutex_lock(&v->lock);
	if (!n->linked || !node_dirty(n)) {
		pthread_mutex_unlock(&v->lock);
		stripes_unlock(v, lockkey, NULL);
		free(lockkey);
		return 0;
	}
	if (n->aseq == n->wseq) {
		rc = n->last_rc;
		pthread_mutex_unlock(&v->lock);
		stripes_unlock(v, lockkey, NULL);
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
		rc = store_record_text(v, n->res, n->id, text, len, remote, excl, ctx, reason);
	else if (n->kind == NK_CONTENT)
		rc = store_content(v, n->res, n->id, text, len, reason);
	else
		rc = store_schema(v, n->res, text, len, reason);
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
	stripes_unlock(v, lockkey, NULL);
	free(lockkey);
	if (rc < 0) {
		if (!reason[0])
			snprintf(reason, sizeof reason, "%s", strerror(-rc));
		vfs_record_error(v, n->path, op, -rc, reason);
		return rc;
	}
	return 0;
}

/* ---- open ------------------------------------------------------------------------------------- */

static int wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* Opens a private read-only copy of text.  0 or -errno. */
static int open_snapshot(vfs *v, const vpath *p, nkind kind, const char *text, size_t len,
                         int flags, uint64_t *fh)
{
	vnode *n = node_new(v, p->path, p->dir, p->name, kind, NULL, NULL);
	if (!n)
		return -ENOMEM;
	int rc = vbuf_set(&n->buf, text ? text : "", text ? len : 0);
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		rc = handle_new(v, n, flags, fh);
		pthread_mutex_unlock(&v->lock);
	}
	if (rc)
		node_free(n);
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
		n->mtime = ts_now();
	} else if ((flags & O_TRUNC) && wants_write(flags) && !n->created) {
		n->wseq++; /* an existing record emptied */
		n->mtime = ts_now();
	}
	return handle_new(v, n, flags, fh);
}

/* Creates, links and opens a node; lock held.  *out (optional) the node. */
static int node_create_open(vfs *v, const vpath *p, nkind kind, const char *text, size_t len,
                            int flags, uint64_t *fh, vnode **out)
{
	vnode *n = node_new(v, p->path, p->dir, p->name, kind, p->resname, p->id);
	if (!n)
		return -ENOMEM;
	int rc = text ? vbuf_set(&n->buf, text, len) : 0;
	if (!rc)
		rc = node_link(v, n);
	if (rc) {
		node_free(n);
		return rc;
	}
	if (out)
		*out = n;
	rc = attach(v, n, flags, fh);
	if (rc)
		node_unlink(v, n);
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
		stripes_lock(v, p->key, NULL);
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (node_shadows(n) || (wr && n)) {
		rc = (flags & O_CREAT) && (flags & O_EXCL) ? -EEXIST : attach(v, n, flags, fh);
	} else if (tombstoned(v, p->key)) {
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
				tomb_end(v, p->key);
			}
		}
	}
	pthread_mutex_unlock(&v->lock);
	for (int attempt = 0; rc == 1 && attempt < 3; attempt++) {
		int replaces = wr && ((flags & O_TRUNC) || ((flags & O_CREAT) && (flags & O_EXCL)));
		int er = ensure_record(v, p->res, p->id, replaces ? WANT_ATTR : WANT_OPEN, ctx);
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
		stripes_unlock(v, p->key, NULL);
	return rc == 1 ? -EIO : rc;
}

static int open_content(vfs *v, const vpath *p, int flags, uint64_t *fh, const s3db_ctx *ctx)
{
	int wr = wants_write(flags);
	if (wr && v->read_only)
		return -EROFS;
	if (wr)
		stripes_lock(v, p->key, NULL);
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	if (node_shadows(n) || (wr && n))
		rc = (flags & O_CREAT) && (flags & O_EXCL) ? -EEXIST : attach(v, n, flags, fh);
	else if (tombstoned(v, p->key))
		rc = -ENOENT;
	pthread_mutex_unlock(&v->lock);
	if (rc == 1)
		rc = ensure_record(v, p->res, p->id, WANT_OPEN, ctx);
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
				rc = errno_of(v, c);
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
		stripes_unlock(v, p->key, NULL);
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
	if (node_shadows(n) || (wr && n))
		rc = attach(v, n, flags, fh);
	pthread_mutex_unlock(&v->lock);
	if (rc != 1)
		return rc;
	size_t len = 0;
	char *text = render_schema(p->res, &len);
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
	int rc = parse_path(v, path, &p);
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
		else if (!(rc = render_virtual(v, &p, 0, &text, &len)))
			rc = open_snapshot(v, &p, NK_SNAPSHOT, text, len, flags, fh);
		break;
	case PK_VIRTUAL:
		if (excl) {
			rc = -EEXIST;
		} else if (wr && !p.virt->write_fn) {
			rc = -EACCES;
		} else if ((flags & O_TRUNC) && wr) {
			rc = open_snapshot(v, &p, NK_VIRTUAL, "", 0, flags, fh);
		} else if (!(rc = render_virtual(v, &p, 0, &text, &len))) {
			rc = open_snapshot(v, &p, NK_VIRTUAL, text, len, flags, fh);
		}
		if (!rc) {
			pthread_mutex_lock(&v->lock);
			vhandle *h = handle_get(v, *fh);
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
		rc = (flags & O_CREAT) ? -EROFS : getattr_part_record(v, &p, NULL, ctx);
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
	vhandle *h = handle_get(v, fh);
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
		dir_changed(v, path);
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
	vhandle *h = handle_get(v, fh);
	ssize_t r = h ? vbuf_read(&h->node->buf, buf, size, off) : -EBADF;
	if (h && r >= 0 && h->node->kind == NK_SCRATCH)
		h->node->atime = ts_now();
	pthread_mutex_unlock(&v->lock);
	return (int)r;
}

int vfs_write(vfs *v, uint64_t fh, const char *buf, size_t size, off_t off)
{
	pthread_mutex_lock(&v->lock);
	vhandle *h = handle_get(v, fh);
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
			n->mtime = ts_now();
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
	vhandle *h = handle_get(v, fh);
	vnode *n = h && wants_write(h->flags) ? h->node : NULL;
	*bad = h == NULL;
	pthread_mutex_unlock(&v->lock);
	return n;
}

int vfs_flush(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	int bad;
	vnode *n = writable_node(v, fh, &bad);
	return bad ? -EBADF : n ? node_commit(v, n, ctx, "flush") : 0;
}

int vfs_fsync(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	int bad;
	vnode *n = writable_node(v, fh, &bad);
	return bad ? -EBADF : n ? node_commit(v, n, ctx, "fsync") : 0;
}

int vfs_release(vfs *v, uint64_t fh, const s3db_ctx *ctx)
{
	int bad;
	vnode *n = writable_node(v, fh, &bad);
	if (bad)
		return -EBADF;
	int rc = n ? node_commit(v, n, ctx, "release") : 0;
	char key[32];
	snprintf(key, sizeof key, "%" PRIu64, fh);
	pthread_mutex_lock(&v->lock);
	vhandle *h = vmap_del(&v->handles, key);
	if (h) {
		h->node->refs--;
		node_settle(v, h->node);
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
		vhandle *h = handle_get(v, fh);
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
			h->node->mtime = ts_now();
		}
		pthread_mutex_unlock(&v->lock);
		return rc;
	}
	vpath p;
	int rc = parse_path(v, path, &p);
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

/* ---- unlink ----------------------------------------------------------------------------------- */

/* Splits "res/id" (malloc'd parts). */
static int split_key(const char *key, char **res, char **id)
{
	const char *slash = strchr(key, '/');
	*res = slash ? s3db_strndup(key, (size_t)(slash - key)) : NULL;
	*id = slash ? strdup(slash + 1) : NULL;
	if (*res && *id)
		return 0;
	free(*res);
	free(*id);
	return -ENOMEM;
}

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
	    (!parts || mono() - e->validated_ms < ttl_ms(v->o.record_ttl))) {
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
static int delete_record(vfs *v, const char *rname, const char *id, const char *path,
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
		install_deleted(v, rname, id);
		return missing_ok ? 0 : -ENOENT;
	}
	if (c != S3DB_OK) {
		int rc = errno_of(v, c);
		vfs_record_error(v, path, op, -rc, err.message);
		return rc;
	}
	install_deleted(v, rname, id);
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
		int rc = split_key(origin, &rname, &id);
		if (!rc) {
			stripes_lock(v, origin, NULL);
			pthread_mutex_lock(&v->lock);
			char *holder = vmap_get(&v->tombs, origin);
			int still = holder && !strcmp(holder, p->path);
			pthread_mutex_unlock(&v->lock);
			if (still)
				rc = delete_record(v, rname, id, p->path, "unlink", 1, ctx);
			stripes_unlock(v, origin, NULL);
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
		node_unlink(v, n);
	pthread_mutex_unlock(&v->lock);
	return n ? 0 : -ENOENT;
}

/* Unlinks the node at path, if any; lock held. */
static void drop_node_at(vfs *v, const char *path)
{
	vnode *n = path ? vmap_get(&v->nodes, path) : NULL;
	if (n)
		node_unlink(v, n);
}

static int unlink_record(vfs *v, const vpath *p, const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	stripes_lock(v, p->key, NULL);
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	int hidden = tombstoned(v, p->key);
	int shadow = node_shadows(n);
	int local_only = shadow && n->created && n->remote == 0;
	pthread_mutex_unlock(&v->lock);
	int rc = 0;
	if (hidden)
		rc = -ENOENT;
	else if (!local_only)
		rc = delete_record(v, p->resname, p->id, p->path, "unlink", shadow, ctx);
	if (!rc) {
		char *bin = s3db_asprintf("/%s/%s.bin", p->resname, p->id);
		pthread_mutex_lock(&v->lock);
		drop_node_at(v, p->path);
		drop_node_at(v, bin);
		pthread_mutex_unlock(&v->lock);
		free(bin);
	}
	stripes_unlock(v, p->key, NULL);
	return rc;
}

static int unlink_content(vfs *v, const vpath *p, const s3db_ctx *ctx)
{
	if (v->read_only)
		return -EROFS;
	stripes_lock(v, p->key, NULL);
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	int local_only = node_shadows(n) && n->created;
	pthread_mutex_unlock(&v->lock);
	int rc = 0;
	if (!local_only) {
		rc = ensure_record(v, p->res, p->id, WANT_ATTR, ctx);
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = rc ? NULL : vcache_get(&v->cache, p->key);
		if (!rc && !(e && e->meta.has_content) && !node_shadows(n))
			rc = -ENOENT;
		pthread_mutex_unlock(&v->lock);
		if (!rc) {
			s3db_error err;
			s3db_error_clear(&err);
			s3db_code c = s3db_set_content(p->res, p->id, "", 0, NULL, &err);
			if (c != S3DB_OK) {
				rc = errno_of(v, c);
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
		drop_node_at(v, p->path);
		pthread_mutex_unlock(&v->lock);
	}
	stripes_unlock(v, p->key, NULL);
	return rc;
}

/* What removing an entry that is not a file answers, by kind: -EISDIR
 * for directories, -EPERM for the fixed files (/.status, /.errors, plugin
 * files, .schema.json), -EROFS in the partition tree, -ENOENT for names
 * that are nothing; 0 for scratch files, records and contents, which the
 * caller removes (unlink) or hides (vfs_hide). */
static int removal_refused(pkind kind)
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
	int rc = parse_path(v, path, &p);
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
	int rc = parse_path(v, path, &p);
	if (!rc && !(rc = removal_refused(p.kind))) {
		switch (p.kind) {
		case PK_SCRATCH:
			rc = unlink_scratch(v, &p, ctx);
			break;
		case PK_RECORD:
			rc = unlink_record(v, &p, ctx);
			break;
		case PK_CONTENT:
			rc = unlink_content(v, &p, ctx);
			break;
		default:
			break;
		}
	}
	if (!rc)
		dir_changed(v, p.path);
	vpath_free(&p);
	return rc;
}

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
	if (node_shadows(n)) {
		*text = vbuf_dup(&n->buf, len);
		*remote = n->kind == NK_RECORD ? n->remote : 1;
		pthread_mutex_unlock(&v->lock);
		return *text ? 0 : -ENOMEM;
	}
	int hidden = tombstoned(v, p->key);
	pthread_mutex_unlock(&v->lock);
	if (p->kind == PK_SCRATCH || p->kind == PK_FREE)
		return -ENOENT;
	if (p->kind == PK_SCHEMA) {
		*text = render_schema(p->res, len);
		return *text ? 0 : -ENOMEM;
	}
	if (hidden)
		return -ENOENT;
	int rc = ensure_record(v, p->res, p->id, WANT_OPEN, ctx);
	if (rc)
		return rc;
	if (p->kind == PK_CONTENT) {
		void *data = NULL;
		s3db_error err;
		s3db_error_clear(&err);
		s3db_code c = s3db_get_content(p->res, p->id, &data, len, NULL, &err);
		if (c != S3DB_OK)
			return errno_of(v, c);
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
		node_unlink(v, old);
	vnode *n = node_new(v, to->path, to->dir, to->name, NK_SCRATCH, NULL, NULL);
	if (!n)
		return -ENOMEM;
	int rc = vbuf_set(&n->buf, text, len);
	if (!rc && origin && !(n->origin = strdup(origin)))
		rc = -ENOMEM;
	if (!rc)
		rc = node_link(v, n);
	if (rc) {
		node_free(n);
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
		node_unlink(v, old);
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
		scratch_release_origin(v, n);
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
		n->mtime = ts_now();
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
		stripes_lock(v, a->key, NULL);
	char *text = NULL;
	size_t len = 0;
	int remote = 1;
	int rc = source_bytes(v, a, &text, &len, &remote, ctx);
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		const char *origin = is_record && remote != 0 ? a->key : NULL;
		rc = put_scratch(v, b, text, len, origin, is_record ? a->key : NULL);
		if (!rc && is_record)
			drop_node_at(v, a->path);
		pthread_mutex_unlock(&v->lock);
	}
	free(text);
	if (is_record)
		stripes_unlock(v, a->key, NULL);
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
	stripes_lock(v, lockkey, other);
	char reason[REASON_CAP];
	reason[0] = '\0';
	int rc = 0;
	if (noreplace && target_exists(v, b->path, ctx))
		rc = -EEXIST;
	if (!rc && b->kind == PK_RECORD) {
		pthread_mutex_lock(&v->lock);
		vnode *rn = vmap_get(&v->nodes, b->path);
		int hidden = tombstoned(v, b->key);
		int remote = hidden ? 1 : node_shadows(rn) ? rn->remote : -1;
		/* vim putting its untouched backup back after a refused write:
		 * nothing was stored since the copy was made, and S3 (as last
		 * seen) has exactly this text */
		vcache_rec *e = vmap_get(&v->cache.recs, b->key);
		int restore = copy_of && !strcmp(copy_of, b->key) && clean && e && e->len == len &&
		              !memcmp(e->text, text, len) &&
		              !vcache_changed_since(&v->cache, b->key, copy_epoch);
		if (restore) {
			tomb_end(v, b->key);
			drop_node_at(v, b->path);
			drop_node_at(v, a->path);
			rc = 2;
		}
		pthread_mutex_unlock(&v->lock);
		if (rc == 0) {
			rc = store_record_text(v, b->resname, b->id, text, len, remote, 0, ctx, reason);
			if (rc == 1) {
				rc = -EINVAL;
				snprintf(reason, sizeof reason, "the file is empty: a record needs a JSON object");
			}
		}
	} else if (!rc && b->kind == PK_CONTENT) {
		rc = ensure_record(v, b->res, b->id, WANT_ATTR, ctx);
		if (rc == -ENOENT)
			snprintf(reason, sizeof reason, "no record '%s' to hold the content", b->id);
		if (!rc)
			rc = store_content(v, b->resname, b->id, text, len, reason);
		if (rc == 1) {
			rc = -EINVAL;
			snprintf(reason, sizeof reason, "the file is empty");
		}
	} else if (!rc) {
		rc = store_schema(v, b->resname, text, len, reason);
		if (rc == 1) {
			rc = -EINVAL;
			snprintf(reason, sizeof reason, "the file is empty: a definition is a JSON object");
		}
	}
	if (rc == 0 && other) {
		/* the scratch file was the only copy of another record: that
		 * record moved here */
		char *rname = NULL, *id = NULL;
		rc = split_key(other, &rname, &id);
		if (!rc)
			rc = delete_record(v, rname, id, a->path, "rename", 1, ctx);
		free(rname);
		free(id);
	}
	if (rc == 0) {
		pthread_mutex_lock(&v->lock);
		drop_node_at(v, b->path);
		drop_node_at(v, a->path);
		pthread_mutex_unlock(&v->lock);
	} else if (rc < 0 && reason[0]) {
		vfs_record_error(v, b->path, "rename", -rc, reason);
	}
	stripes_unlock(v, lockkey, other);
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
	stripes_lock(v, a->key, b->key);
	char reason[REASON_CAP];
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
		if (is_blank(text, len)) {
			rc = -EINVAL;
			snprintf(reason, sizeof reason, "the file is empty: a record needs a JSON object");
		} else if (s3db_json_parse(text, len, &o, &err) != S3DB_OK ||
		           !json_object_is_type(o, json_type_object)) {
			rc = -EINVAL;
			set_reason(reason, "invalid JSON: %s",
			           err.message[0] ? err.message : "not an object");
		} else {
			json_object_object_add(o, "id", json_object_new_string(b->id));
		}
	}
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		vnode *rn = vmap_get(&v->nodes, b->path);
		int remote_b = tombstoned(v, b->key) ? 1 : node_shadows(rn) ? rn->remote : -1;
		vcache_rec *e = remote_a ? vcache_get(&v->cache, a->key) : NULL;
		has_content = e && e->meta.has_content;
		pthread_mutex_unlock(&v->lock);
		rc = store_record_json(v, b->resname, b->id, o, NULL, 0, remote_b, 0, ctx, reason);
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
			rc = errno_of(v, c);
			set_reason(reason, "copying the binary content: %s", err.message);
		}
		free(data);
		free(ctype);
	}
	if (!rc && remote_a != 0)
		rc = delete_record(v, a->resname, a->id, a->path, "rename", 1, ctx);
	else if (rc < 0 && reason[0])
		vfs_record_error(v, b->path, "rename", -rc, reason);
	if (!rc) {
		char *abin = s3db_asprintf("/%s/%s.bin", a->resname, a->id);
		pthread_mutex_lock(&v->lock);
		drop_node_at(v, a->path);
		drop_node_at(v, abin);
		drop_node_at(v, b->path);
		pthread_mutex_unlock(&v->lock);
		free(abin);
	}
	json_object_put(o);
	free(text);
	stripes_unlock(v, a->key, b->key);
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
	char reason[REASON_CAP];
	reason[0] = '\0';
	if (!rc) {
		stripes_lock(v, b->key, NULL);
		rc = store_content(v, b->resname, b->id, text, len, reason);
		stripes_unlock(v, b->key, NULL);
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
	int rc = parse_path(v, from, &a);
	int rb = parse_path(v, to, &b);
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
		dir_changed(v, a.path);
		dir_changed(v, b.path);
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
	stripes_lock(v, a->key, NULL);
	int rc = 1;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, a->path);
	if (tombstoned(v, a->key)) {
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
	stripes_unlock(v, a->key, NULL);
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
		rc = unlink_content(v, a, ctx);
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
	int rc = parse_path(v, path, &a);
	int rb = parse_path(v, hidden, &b);
	if (!rc && rb)
		rc = rb;
	if (!rc && (strcmp(a.dir, b.dir) != 0 || (b.kind != PK_SCRATCH && b.kind != PK_FREE)))
		rc = -EINVAL;
	if (!rc && !(rc = removal_refused(a.kind))) {
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
		dir_changed(v, a.path);
	vpath_free(&a);
	vpath_free(&b);
	return rc;
}

int vfs_unhide(vfs *v, const char *hidden, const char *path)
{
	vpath b;
	int rc = parse_path(v, path, &b);
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
		scratch_release_origin(v, n);
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
	vhandle *h = handle_get(v, fh);
	if (h)
		stat_node(v, st, h->node);
	pthread_mutex_unlock(&v->lock);
	return h ? 0 : -EBADF;
}

/* ---- directories ------------------------------------------------------------------------------ */

int vfs_mkdir(vfs *v, const char *path, mode_t mode, const s3db_ctx *ctx)
{
	(void)mode;
	vpath p;
	int rc = parse_path(v, path, &p);
	if (!rc) {
		switch (p.kind) {
		case PK_FREE: {
			if (v->read_only) {
				rc = -EROFS;
				break;
			}
			/* another mount may have made it since s3db.json was read:
			 * defining it again would replace its schema */
			s3db_error err;
			s3db_error_clear(&err);
			pthread_mutex_lock(&v->catalog_lock);
			if (s3db_reload(v->db, &err) == S3DB_OK)
				v->catalog_ms = mono();
			pthread_mutex_unlock(&v->catalog_lock);
			if (s3db_resource_find(v->db, p.name)) {
				rc = -EEXIST;
				break;
			}
			/* a free-form resource: any JSON object until a schema is
			 * written to its .schema.json */
			json_object *def = json_object_new_object();
			json_object_object_add(def, "attributes", json_object_new_object());
			json_object_object_add(def, "behavior", json_object_new_string("body-only"));
			s3db_code c = s3db_resource_define(v->db, p.name, def, NULL, &err);
			json_object_put(def);
			if (c != S3DB_OK) {
				rc = errno_of(v, c);
				vfs_record_error(v, p.path, "mkdir", -rc, err.message);
				break;
			}
			dir_changed(v, p.path);
			/* known empty: creating records in it asks S3 nothing */
			strv none;
			strv_init(&none);
			pthread_mutex_lock(&v->lock);
			double now = mono();
			vcache_dir_put(&v->cache, p.name, &none, now, now);
			pthread_mutex_unlock(&v->lock);
			break;
		}
		case PK_ROOT:
		case PK_RES:
		case PK_STATUS:
		case PK_ERRORS:
		case PK_VIRTUAL:
		case PK_PARTS:
		case PK_PART_DIR:
			rc = -EEXIST;
			break;
		case PK_SCRATCH:
			rc = !strcmp(p.dir, "/") ? -EEXIST : -EPERM;
			break;
		case PK_PART_RECORD:
		case PK_PART_OTHER:
			rc = -EROFS;
			break;
		default:
			rc = -EPERM; /* resources hold records, not directories */
			break;
		}
	}
	vpath_free(&p);
	return rc;
}

static int stop_at_first(void *ud, const char *id, const store_entry *e)
{
	*(int *)ud = 1;
	return 1;
}

typedef struct local_files {
	const char *dir;
	int found;
} local_files;

static int find_local_file(void *ud, const char *key, void *value)
{
	local_files *w = ud;
	vnode *n = value;
	if (!strcmp(n->dir, w->dir) && node_shadows(n) && n->kind != NK_SCHEMA) {
		w->found = 1;
		return 1;
	}
	return 0;
}

int vfs_rmdir(vfs *v, const char *path, const s3db_ctx *ctx)
{
	vpath p;
	int rc = parse_path(v, path, &p);
	if (!rc) {
		switch (p.kind) {
		case PK_ROOT:
			rc = -EBUSY;
			break;
		case PK_RES: {
			if (v->read_only) {
				rc = -EROFS;
				break;
			}
			local_files w = { .dir = p.path };
			pthread_mutex_lock(&v->lock);
			vmap_each(&v->nodes, find_local_file, &w);
			pthread_mutex_unlock(&v->lock);
			if (w.found) {
				rc = -ENOTEMPTY;
				break;
			}
			int any = 0;
			s3db_error err;
			s3db_error_clear(&err);
			s3db_code c = resource_list_entries(p.res, NULL, NULL, stop_at_first, &any, &err);
			if (c == S3DB_OK && any)
				rc = -ENOTEMPTY;
			else if (c == S3DB_OK)
				c = s3db_resource_drop(v->db, p.resname, &err);
			if (c != S3DB_OK) {
				rc = errno_of(v, c);
				vfs_record_error(v, p.path, "rmdir", -rc, err.message);
			} else if (!rc) {
				char *prefix = s3db_asprintf("%s/", p.resname);
				pthread_mutex_lock(&v->lock);
				if (prefix)
					vcache_drop_prefix(&v->cache, prefix);
				vcache_dir_del(&v->cache, p.resname);
				pthread_mutex_unlock(&v->lock);
				free(prefix);
				dir_changed(v, p.path);
			}
			break;
		}
		case PK_PARTS:
		case PK_PART_DIR:
			rc = -EROFS;
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
	vpath_free(&p);
	return rc;
}

/* ---- times, modes, owners ------------------------------------------------------------------- */

static struct timespec pick_time(const struct timespec *t, struct timespec cur)
{
	if (!t || t->tv_nsec == UTIME_NOW)
		return ts_now();
	if (t->tv_nsec == UTIME_OMIT)
		return cur;
	return *t;
}

int vfs_utimens(vfs *v, const char *path, const struct timespec tv[2], const s3db_ctx *ctx)
{
	vpath p;
	int rc = parse_path(v, path, &p);
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

/* ---- extended attributes ------------------------------------------------------------------- */

static const char xattr_names[] = "user.s3db.etag\0user.s3db.version\0user.s3db.key\0";

/* 1 when path is a record (or its content) that S3 has; 0 when it is
 * something else that exists; -errno. */
static int xattr_target(vfs *v, const char *path, vpath *p)
{
	int rc = parse_path(v, path, p);
	if (rc)
		return rc;
	struct stat st;
	rc = vfs_getattr(v, path, &st, NULL);
	if (rc)
		return rc;
	if (p->kind != PK_RECORD && p->kind != PK_CONTENT && p->kind != PK_PART_RECORD)
		return 0;
	pthread_mutex_lock(&v->lock);
	vnode *n = vmap_get(&v->nodes, p->path);
	int local = node_shadows(n) && n->created;
	pthread_mutex_unlock(&v->lock);
	return local ? 0 : 1;
}

static int xattr_value(const char *s, char *value, size_t size)
{
	size_t len = strlen(s);
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(value, s, len);
	return (int)len;
}

/* The object's ETag and _v with one HEAD (no cache change). */
static int head_object(vfs *v, const vpath *p, char *etag, size_t ecap, char *ver, size_t vcap)
{
	char *key = db_record_key(v->db, p->resname, p->id);
	if (!key)
		return -ENOMEM;
	store_object obj;
	store_object_init(&obj);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = store_head(v->db->store, key, &obj, &err);
	if (c == S3DB_OK) {
		snprintf(etag, ecap, "%s", obj.etag);
		const char *vv = store_meta_get(&obj.meta, "_v");
		snprintf(ver, vcap, "%s", vv ? vv : "");
	}
	store_object_free(&obj);
	free(key);
	return errno_of(v, c);
}

int vfs_getxattr(vfs *v, const char *path, const char *name, char *value, size_t size)
{
	vpath p;
	int rc = xattr_target(v, path, &p);
	if (rc <= 0) {
		vpath_free(&p);
		return rc < 0 ? rc : -ENODATA;
	}
	if (!strcmp(name, "user.s3db.key")) {
		char *key = db_record_key(v->db, p.resname, p.id);
		rc = key ? xattr_value(key, value, size) : -ENOMEM;
		free(key);
	} else if (!strcmp(name, "user.s3db.etag") || !strcmp(name, "user.s3db.version")) {
		int want_etag = !strcmp(name, "user.s3db.etag");
		char etag[72] = "", ver[16] = "";
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, p.key);
		if (e) {
			snprintf(etag, sizeof etag, "%s", e->meta.etag);
			snprintf(ver, sizeof ver, "%s", e->version);
		}
		pthread_mutex_unlock(&v->lock);
		rc = 0;
		if ((want_etag && !etag[0]) || (!want_etag && !ver[0])) {
			char hetag[72], hver[16];
			rc = head_object(v, &p, hetag, sizeof hetag, hver, sizeof hver);
			if (!rc) {
				pthread_mutex_lock(&v->lock);
				e = vcache_get(&v->cache, p.key);
				if (e && !strcmp(e->meta.etag, hetag))
					snprintf(e->version, sizeof e->version, "%s", hver);
				pthread_mutex_unlock(&v->lock);
				snprintf(etag, sizeof etag, "%s", hetag);
				snprintf(ver, sizeof ver, "%s", hver);
			}
		}
		if (!rc)
			rc = xattr_value(want_etag ? etag : ver, value, size);
	} else {
		rc = -ENODATA;
	}
	vpath_free(&p);
	return rc;
}

int vfs_listxattr(vfs *v, const char *path, char *list, size_t size)
{
	vpath p;
	int rc = xattr_target(v, path, &p);
	vpath_free(&p);
	if (rc <= 0)
		return rc;
	size_t len = sizeof xattr_names - 1;
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(list, xattr_names, len);
	return (int)len;
}

int vfs_setxattr(vfs *v, const char *path, const char *name, const char *value, size_t size,
                 int flags)
{
	struct stat st;
	int rc = vfs_getattr(v, path, &st, NULL);
	return rc ? rc : -ENOTSUP;
}

int vfs_removexattr(vfs *v, const char *path, const char *name)
{
	struct stat st;
	int rc = vfs_getattr(v, path, &st, NULL);
	return rc ? rc : -ENOTSUP;
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
	if (virt_find(v, path)) {
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
	v->start_ms = mono();
	v->start_wall_ms = s3db_now_ms();
	v->catalog_ms = mono();
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
	if (n->kind == NK_SCRATCH || n->kind == NK_SNAPSHOT || !node_dirty(n))
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		vnode **p = realloc(w->items, cap * sizeof *p);
		if (!p)
			return 1;
		w->items = p;
		w->cap = cap;
	}
	w->items[w->n++] = n;
	n->refs++; /* held while it is stored */
	return 0;
}

static int free_handle_cb(void *ud, const char *key, void *value)
{
	vhandle *h = value;
	h->node->refs--;
	if (!h->node->linked && h->node->refs == 0)
		node_free(h->node);
	free(h);
	return 0;
}

static int free_node_cb(void *ud, const char *key, void *value)
{
	node_free(value);
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
	refresh_reap(v, 1);
	vmap_each(&v->nodes, collect_pending, &w);
	size_t tombs = v->tombs.count;
	pthread_mutex_unlock(&v->lock);
	int rc = 0;
	for (size_t i = 0; i < w.n; i++) {
		int r = node_commit(v, w.items[i], NULL, "unmount");
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
