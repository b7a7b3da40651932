/*
 * vfs_int.h — the vfs's internals, shared by its files (not installed;
 * the contract is vfs.h).
 *
 * The vfs is the database as a file tree.  Its pieces, a file each:
 *   vfs.c          life (open, options, close), requests, /.errors,
 *                  plugins' files, figures; the stripe locks
 *   vfs_catalog.c  the resources, reread from s3db.json when stale
 *   vfs_path.c     a FUSE path -> a vpath (what kind of entry, which
 *                  resource, id, partition)
 *   vfs_node.c     nodes (the local state of a file) and handles
 *   vfs_lookup.c   the record cache and listings: what S3 holds, as
 *                  cheaply as it can be known
 *   vfs_render.c   records, schemas, /.status, /.errors as text
 *   vfs_stat.c     getattr, readdir, statfs, times and modes
 *   vfs_file.c     open, read, write, flush, release, truncate
 *   vfs_store.c    commits to S3 and what they leave in the cache
 *   vfs_unlink.c   rm
 *   vfs_rename.c   mv, editors' backup renames, unlinked open files
 *   vfs_dir.c      mkdir, rmdir
 *   vfs_xattr.c    extended attributes
 * and below them vfs_cache.c (the cache's tables and its copy on disk),
 * vfs_buf.c (a file's bytes) and vfs_map.c (string-keyed tables).
 *
 * Invariants, for every file:
 *  - v->lock (a mutex) guards every table and node; it is never held
 *    across a request or disk I/O.
 *  - Operations that change a record in S3 (commit, unlink, rename) also
 *    hold the record's stripe lock (VFS_STRIPES stripes by key hash,
 *    vfs_stripes_lock), taken before v->lock, in index order when two are
 *    needed: two writes of one record never interleave.
 *  - A fetch that ran concurrently with a local change is not installed
 *    (cache epochs, vfs_cache.h).
 *  - v->refreshes (the background listings) is guarded by v->lock too;
 *    v->dir_lock guards dir_times only and v->busy_lock the busy table,
 *    both leaf locks.
 * Each function's contract (above its definition) says which lock it
 * expects; "lock held" means v->lock.
 */
#ifndef S3DB_VFS_INT_H
#define S3DB_VFS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
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
 * revalidate, see vlookup_ensure_record): a thread of its own, joined by the next
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
	                            below .partitions, even when vpath_parse
	                            then fails on a later component         */
	strv segs;               /* "f=v" below the partition               */
	strv fields;             /* the partition's fields, in key order    */
	const vvirt *virt;
	char *query;             /* percent-decoded, NULL when none         */
} vpath;

typedef enum want {
	WANT_ATTR,               /* getattr: fresh by record_ttl or listing */
	WANT_OPEN                /* open: close-to-open, record_ttl only    */
} want;

typedef enum list_mode {
	LIST_NAMES,              /* names and validators only (a lookup)    */
	LIST_RECORDS             /* and read the records it does not confirm */
} list_mode;

/* the size of the buffer a refused store explains itself in (vstore_*) */
#define VFS_REASON_CAP 512

/* ---- small helpers ----------------------------------------------------------------- */

static inline double vfs_ttl_ms(double seconds)
{
	return seconds > 0 ? seconds * 1000.0 : 0;
}

static inline int vfs_is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return 0;
	return 1;
}

static inline struct timespec vfs_ts_of_ms(int64_t ms)
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

static inline struct timespec vfs_ts_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return t;
}

/* ---- functions shared between the vfs's files (contracts at their
 * definitions) ------------------------------------------------------------------------ */

/* vfs.c */
int vfs_errno_of(const vfs *v, s3db_code c);
int vfs_busy_has(vfs *v, const char *key);
void vfs_stripes_lock(vfs *v, const char *a, const char *b);
void vfs_stripes_unlock(vfs *v, const char *a, const char *b);

/* vfs_catalog.c */
s3db_resource *vcatalog_find_resource(vfs *v, const char *name);
void vcatalog_refresh(vfs *v);
void vcatalog_schema_tag(const schema *s, char *out, size_t cap);
int vcatalog_partition_fields(vfs *v, s3db_resource *res, const char *part, strv *out);
int vcatalog_has_partitions(s3db_resource *res);

/* vfs_path.c */
void vpath_free(vpath *p);
const vvirt *vpath_find_virtual(vfs *v, const char *path);
int vpath_parse(vfs *v, const char *path, vpath *p);
char *vpath_part_dir_key(const vpath *p);
int vpath_split_key(const char *key, char **res, char **id);

/* vfs_node.c */
vnode *vnode_new(vfs *v, const char *path, const char *dir, const char *name, nkind kind,
                 const char *res, const char *id);
void vnode_free(vnode *n);
int vnode_dirty(const vnode *n);
int vnode_shadows(const vnode *n);
int vnode_link(vfs *v, vnode *n);
void vnode_release_origin(vfs *v, vnode *n);
void vnode_unlink(vfs *v, vnode *n);
void vnode_settle(vfs *v, vnode *n);
int vhandle_new(vfs *v, vnode *n, int flags, uint64_t *fh);
vhandle *vhandle_get(vfs *v, uint64_t fh);
int vnode_tombstoned(vfs *v, const char *key);

/* vfs_lookup.c */
void vlookup_change_note(vfs *v, const char *key, uint64_t epoch, int exists);
int64_t vlookup_record_mtime(const schema *s, json_object *rec, int64_t fallback_ms);
int vlookup_ensure_record(vfs *v, s3db_resource *res, const char *id, want w, const s3db_ctx *ctx);
void vlookup_refresh_reap(vfs *v, int all);
int vlookup_list_resource(vfs *v, s3db_resource *res, const s3db_ctx *ctx);
int vlookup_list_part_dir(vfs *v, const vpath *p, const s3db_ctx *ctx, strv *out);

/* vfs_render.c */
char *vrender_record(json_object *rec, size_t *len);
char *vrender_schema(s3db_resource *res, size_t *len);
void vrender_purge(vfs *v, double keep_ms);
int vrender_virtual(vfs *v, const vpath *p, int for_getattr, char **text, size_t *len);

/* vfs_stat.c */
void vstat_node(vfs *v, struct stat *st, const vnode *n);
void vstat_dir_changed(vfs *v, const char *path);
int vstat_part_record(vfs *v, const vpath *p, struct stat *st, const s3db_ctx *ctx);

/* vfs_store.c */
void vstore_tomb_end(vfs *v, const char *key);
void vstore_install_deleted(vfs *v, const char *rname, const char *id);
void vstore_set_reason(char *reason, const char *fmt, ...) S3DB_PRINTF(2, 3);
int vstore_unchanged(vfs *v, s3db_resource *res, const char *id, const char *key, const schema *s,
                     const char *text, size_t len);
int vstore_record_json(vfs *v, const char *rname, const char *id, json_object *o, const char *text,
                       size_t len, int remote, int excl, const s3db_ctx *ctx, char *reason);
int vstore_record_text(vfs *v, const char *rname, const char *id, const char *text, size_t len,
                       int remote, int excl, const s3db_ctx *ctx, char *reason);
int vstore_content(vfs *v, const char *rname, const char *id, const char *data, size_t len,
                   char *reason);
int vstore_schema(vfs *v, const char *rname, const char *text, size_t len, char *reason);
int vstore_commit(vfs *v, vnode *n, const s3db_ctx *ctx, const char *op);

/* vfs_unlink.c */
int vunlink_delete_record(vfs *v, const char *rname, const char *id, const char *path,
                          const char *op, int missing_ok, const s3db_ctx *ctx);
void vunlink_drop_node_at(vfs *v, const char *path);
int vunlink_content(vfs *v, const vpath *p, const s3db_ctx *ctx);
int vunlink_refused(pkind kind);

#endif
