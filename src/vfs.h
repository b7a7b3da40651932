/*
 * vfs.h — the database as a file tree: every policy of s3dbfs, no FUSE.
 *
 * The FUSE layer (fs_fuse.c) only translates callbacks into these calls;
 * everything a user sees — names, sizes, times, what a write does, what is
 * cached for how long, which errno a refusal gives — is decided here, so it
 * is tested without mounting anything (tests/t_vfs.c).
 *
 * The tree:
 *   /                                  resources as directories
 *   /.status  /.errors                 virtual files (read-only)
 *   /<res>/<id>.json                   one record, pretty JSON + "\n"
 *   /<res>/<id>.bin                    the record's binary content, if any
 *   /<res>/.schema.json                the resource definition (writable)
 *   /<res>/.partitions/<p>/<f>=<v>/[<f2>=<v2>/...]<id>.json
 *                                      symbolic links to ../../../<id>.json
 *                                      (one more ../ per nested field)
 *   /<res>/<anything else>             scratch files: local only, never in
 *                                      S3; renaming one onto <id>.json
 *                                      commits it as that record
 *   /<anything else>                   scratch files at the root, likewise
 * A name <x>.json or <x>.bin whose x is not a valid id (s3db_id_check)
 * is refused (-EINVAL on create or rename) rather than kept as a scratch
 * file the user would take for a record.  The .partitions tree is
 * read-only (-EROFS); a <f>=<v> directory exists for any value (empty
 * when no record has it).  Its entries are symbolic links to the records,
 * so that tools walking the tree (grep -r, find, du) meet each record
 * once, while cat, jq or an editor reach it through the link.  <id>.bin needs its record (-ENOENT).
 * Plugins add virtual files through vfs_add_virtual_file().
 *
 * Writes: a record file opened for writing is an in-memory buffer (the
 * current JSON, or empty with O_TRUNC); flush/fsync/release validate and
 * store it (insert or replace) and return only after S3 accepted it.  A
 * refused write returns the errno (EINVAL invalid JSON or schema, EFBIG
 * over the limit, EACCES credentials, EIO storage) and appends the reason
 * to /.errors and the log; nothing in S3 changes, and the refused text
 * stays the file's content (readable, editable) until a write succeeds
 * or the file is removed.  An empty (or blank) record file is never
 * stored: it stays local, listed with size 0, S3 untouched (touch,
 * truncate -s0 then write, editors that create then write).  A save that
 * changes nothing writes nothing (one HEAD makes sure).
 *
 * Renames never lose a record: record -> record writes the target, then
 * deletes the source; record -> scratch name (an editor's backup) hides
 * the record and keeps it in S3 until that copy is removed (then the
 * record is deleted) or a new file of the record's name is written
 * (then that is the record's next version); unmounting meanwhile keeps
 * the record.
 *
 * Directories: the mtime and ctime of a directory are the latest of the
 * mount's start, the last entry this mount created, removed or renamed in
 * it, and (resources) the newest LastModified seen in its listing; the
 * root's also follow its resources'.
 *
 * Sizes: record, content and schema files hold at most max_file_size
 * bytes (EFBIG); scratch files are bounded only by their storage: the
 * scratch_dir's file system, or memory (EFBIG past the machine's memory,
 * ENOSPC when it runs out).
 *
 * Every function returns 0 (or a byte count) on success and -errno on
 * failure, as FUSE wants.  Paths are absolute, '/'-separated, as FUSE
 * gives them.  All functions are thread-safe.
 */
#ifndef S3DB_VFS_H
#define S3DB_VFS_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include "s3db.h"

typedef struct vfs vfs;

/* Records fetched in parallel by a directory listing unless told: 64 —
 * a server working through 32 requests idles while the daemon reads
 * their answers (measured on s3rver: `ls -l` cold of 3,000 records
 * 12 % faster than with 32). */
#define VFS_PREFETCH_DEFAULT 64

typedef struct vfs_options {
	uid_t uid;                /* owner of every entry                    */
	gid_t gid;
	mode_t umask;             /* applied to 0777 dirs / 0666 files (022) */
	double attr_ttl;          /* seconds the kernel may cache attributes */
	double entry_ttl;         /* ... names                               */
	double negative_ttl;      /* seconds a missing name stays missing    */
	double record_ttl;        /* a cached record older than this is
	                             revalidated when opened (close-to-open)
	                             or looked up: by its directory's
	                             listing when that is younger than
	                             dir_ttl, else 1 LIST per 1,000 names
	                             of its directory when that confirms
	                             more than it costs (one page, or as
	                             many HEADs spent there as pages), else
	                             1 HEAD; re-read (1 GET) only when S3
	                             shows other validators                  */
	double dir_ttl;           /* a directory listing older than this is
	                             listed again: 1 LIST per 1,000 names
	                             (for lookups of a directory of more
	                             than 1,000 names whose last relist
	                             found no other client's change: every
	                             20 x that listing's duration when
	                             longer, at most 60 s).  Lookups
	                             (getattr, create with O_TRUNC or
	                             O_EXCL) do not wait for that relist: for
	                             another window of twice the listing's
	                             own duration (at least 1 s, at most
	                             dir_ttl) the stale listing answers and
	                             a background thread lists it again; an
	                             open without O_TRUNC never answers from
	                             a stale listing.  So a change by another
	                             client shows within dir_ttl + that
	                             window + one listing's duration (at
	                             most 2 x dir_ttl + one listing); a
	                             create of a name another client made
	                             meanwhile is an insert that S3 refuses
	                             (If-None-Match), then a replace (EEXIST
	                             under O_EXCL): never a lost record      */
	int prefetch;             /* records fetched in parallel when a
	                             directory is listed (default
	                             VFS_PREFETCH_DEFAULT)                   */
	const char *cache_dir;    /* persistent cache; NULL: memory only     */
	const char *scratch_dir;  /* where scratch files live; NULL: memory  */
	size_t max_file_size;     /* largest record file accepted (16 MiB)   */
	size_t cache_max_bytes;   /* rendered records kept in memory before
	                             the least recently used go (256 MiB;
	                             0: no limit)                            */
} vfs_options;

/* Fills o with the defaults (uid/gid of the caller, umask 022, ttls 1 s
 * attr/entry/negative, 5 s record, 5 s dir, prefetch 64, max_file_size
 * 16 MiB, cache_max_bytes 256 MiB). */
void vfs_options_default(vfs_options *o);

/* Opens the tree over an open database (borrowed: it must outlive the
 * vfs).  *out owns the vfs (vfs_close). */
s3db_code vfs_open(s3db *db, const vfs_options *opts, vfs **out, s3db_error *err);
/* Stores every pending write, then frees everything.  Returns 0, or
 * -errno when a pending write could not be stored (it is in /.errors). */
int vfs_close(vfs *v);
/* Applies changed options while mounted: the TTLs, prefetch, uid, gid,
 * umask, max_file_size and cache_max_bytes take effect at once (entries
 * already cached are judged by the new TTLs); cache_dir and scratch_dir
 * are kept until the next vfs_open.  Returns 0, or -EINVAL when opts is
 * NULL. */
int vfs_set_options(vfs *v, const vfs_options *opts);

/* ---- reading the tree -------------------------------------------------- */

int vfs_getattr(vfs *v, const char *path, struct stat *st, const s3db_ctx *ctx);
/* Attributes of an open file (fstat), from its handle: what its
 * descriptors read and write, size included.  0 or -EBADF. */
int vfs_fgetattr(vfs *v, uint64_t fh, struct stat *st);
/* The target of a symbolic link (partition entries), NUL-terminated,
 * cut to size - 1 bytes.  0, -EINVAL (not a link), -ENOENT. */
int vfs_readlink(vfs *v, const char *path, char *buf, size_t size, const s3db_ctx *ctx);

/* Called once per entry ("." and ".." included); return non-zero to stop.
 * st may be NULL when the attributes are not known without a request. */
typedef int (*vfs_fill_fn)(void *ud, const char *name, const struct stat *st);
int vfs_readdir(vfs *v, const char *path, vfs_fill_fn fill, void *ud, const s3db_ctx *ctx);

int vfs_statfs(vfs *v, struct statvfs *st);

/* ---- files ------------------------------------------------------------- */

/* Opens (flags as open(2): O_RDONLY/O_WRONLY/O_RDWR, O_TRUNC, O_APPEND,
 * O_CREAT|O_EXCL) and returns a handle in *fh.  *keep_cache is set when
 * the kernel's page cache of the file is still valid. */
int vfs_open_file(vfs *v, const char *path, int flags, uint64_t *fh, int *keep_cache,
                  const s3db_ctx *ctx);
int vfs_create(vfs *v, const char *path, mode_t mode, int flags, uint64_t *fh,
               const s3db_ctx *ctx);
/* Bytes read (0 at end of file) or -errno. */
int vfs_read(vfs *v, uint64_t fh, char *buf, size_t size, off_t off);
/* Bytes written or -errno (EFBIG past max_file_size). */
int vfs_write(vfs *v, uint64_t fh, const char *buf, size_t size, off_t off);
/* Stores the file if it changed since the last store. */
int vfs_flush(vfs *v, uint64_t fh, const s3db_ctx *ctx);
int vfs_fsync(vfs *v, uint64_t fh, const s3db_ctx *ctx);
/* Stores if needed, then forgets the handle.  A failure here is logged
 * (close(2) has already returned by the time FUSE calls release). */
int vfs_release(vfs *v, uint64_t fh, const s3db_ctx *ctx);
/* truncate(2) (fh == 0) and ftruncate(2) (fh != 0). */
int vfs_truncate(vfs *v, const char *path, off_t size, uint64_t fh, const s3db_ctx *ctx);

/* ---- the namespace ------------------------------------------------------ */

int vfs_unlink(vfs *v, const char *path, const s3db_ctx *ctx);
/* flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE (-EINVAL: not supported). */
int vfs_rename(vfs *v, const char *from, const char *to, unsigned int flags,
               const s3db_ctx *ctx);
/* Unlink of a file that is still open: the name path goes at once, and
 * the open file stays reachable (getattr, open, rename, unlink) under
 * `hidden`, a name in the same directory that is never listed, until
 * that name is unlinked at the last close — what libfuse does for an
 * unlinked open file (fs_fuse.c).  The open descriptors keep reading and
 * writing the file, and nothing written to it is ever stored.  A record
 * S3 has stays in S3, hidden (as after a rename onto a scratch name),
 * until `hidden` is unlinked: then it is deleted.  If a new file of the
 * record's name is stored first (libfuse hides an open target the same
 * way before a rename onto it), that is the record's next version and
 * unlinking `hidden` deletes nothing.  A .bin file loses its content in
 * S3 at once.  0, or -errno as vfs_unlink; -EINVAL when hidden is not a
 * free name in path's directory. */
int vfs_hide(vfs *v, const char *path, const char *hidden, const s3db_ctx *ctx);
/* Undoes vfs_hide(path, hidden) after the rename that was to replace
 * path failed: a record shows again (S3 never lost it), a scratch file
 * takes its name back.  `hidden` stays the open file's name until it is
 * unlinked.  0 or -ENOENT (hidden is not a hidden file). */
int vfs_unhide(vfs *v, const char *hidden, const char *path);
int vfs_mkdir(vfs *v, const char *path, mode_t mode, const s3db_ctx *ctx);
/* What making a hard link, symbolic link or device node at path answers
 * (the tree holds records, scratch files and directories only; the kernel
 * has already answered -EEXIST for a name that exists): -EROFS inside a
 * resource's .partitions tree, which nothing can change, and on a
 * read-only tree; -EPERM elsewhere. */
int vfs_make_special(vfs *v, const char *path);
int vfs_rmdir(vfs *v, const char *path, const s3db_ctx *ctx);
/* Records take their times from the data: utimensat is accepted on
 * scratch files and is a no-op (0) on records (tools like cp -p and
 * touch must not fail); documented in s3dbfs(8). */
int vfs_utimens(vfs *v, const char *path, const struct timespec tv[2], const s3db_ctx *ctx);
/* chmod, chown, links: -EPERM (documented).  Exception: a chmod to the
 * mode the entry already has, and a chown to its current owner (or -1),
 * succeed and change nothing, so that cp -p, rsync, sed -i and vim, which
 * copy modes onto their new files, do not fail. */
int vfs_chmod(vfs *v, const char *path, mode_t mode);
int vfs_chown(vfs *v, const char *path, uid_t uid, gid_t gid);
/* Read-only extended attributes of records (<id>.json and <id>.bin):
 * user.s3db.etag (the ETag as S3 gives it, quotes included),
 * user.s3db.version (the schema version the object was written with,
 * "v1"), user.s3db.key (the object's full key).  size 0 asks for the
 * length; -ERANGE when size is too small; -ENODATA for other names. */
int vfs_getxattr(vfs *v, const char *path, const char *name, char *value, size_t size);
int vfs_listxattr(vfs *v, const char *path, char *list, size_t size);
/* Extended attributes cannot be set or removed: -ENOTSUP (-ENOENT when
 * the path does not exist). */
int vfs_setxattr(vfs *v, const char *path, const char *name, const char *value,
                 size_t size, int flags);
int vfs_removexattr(vfs *v, const char *path, const char *name);
/* 1 when an open of path with these open(2) flags should bypass the
 * kernel's page cache (the FUSE layer opens it with direct_io):
 *  - the file's content is made when it is opened and may differ in size
 *    from what getattr said (/.status, /.errors, plugin files);
 *  - a write-only open (O_WRONLY) of anything: a descriptor that cannot
 *    read has no use for cached pages, and a write through the page
 *    cache makes the kernel ask for the file's security.capability
 *    attribute (one more FUSE request) before the first write of every
 *    new file.  Readers of the same file stay coherent: a direct write
 *    drops the kernel's size and mtime, and with auto_inval_data the
 *    next read compares them and drops stale pages.
 * 0 otherwise. */
int vfs_direct_io(vfs *v, const char *path, int flags);

/* ---- figures and errors ------------------------------------------------- */

/* Appends a refused operation to /.errors (kept: the last 1,000) and the
 * log: {"time","path","operation","errno","reason"}. */
void vfs_record_error(vfs *v, const char *path, const char *operation, int err_no,
                      const char *reason);

/* Request observers: the vfs owns the database's request hook (one hook
 * per db; a hook installed before vfs_open is chained and restored by
 * vfs_close).  Plugins that need every request (costs, metrics) add an
 * observer instead of replacing the hook.  fn runs on the thread that
 * made the request, for every request, so it must be quick and
 * thread-safe.  Returns an id > 0 (for removal) or 0 when out of memory. */
int vfs_add_request_observer(vfs *v, s3db_request_hook fn, void *userdata);
void vfs_remove_request_observer(vfs *v, int id);
/* Requests made since vfs_open, by command (S3DB_CMD_*). */
void vfs_request_counts(vfs *v, uint64_t counts[S3DB_CMD__COUNT]);

typedef struct vfs_cache_stats {
	uint64_t hits, misses, revalidations, evictions;
	uint64_t entries;
} vfs_cache_stats;
void vfs_cache_stats_get(vfs *v, vfs_cache_stats *out);

/* ---- virtual files (plugins) ------------------------------------------- */

/* A read-only (or, with write_fn, writable) file whose content is made
 * when it is opened.  read_fn returns malloc'd text in *text (vfs frees
 * it); write_fn receives the whole written content at flush and returns 0
 * or -errno.  Paths like "/.costs" or "/<res>/.metrics".  Any opened
 * name may carry a query ("/.costs?x=1", "/.search?q=word"): the vfs
 * passes the part after '?' as `query` (percent-decoded; NULL without
 * one).  A path registered with a trailing '?' ("/.search?") is a file
 * made for queries: never listed, whatever `listed` says.  A write that
 * succeeds drops every render kept for a getattr, so the next open shows
 * its effect.  Returns 0, -EINVAL (bad path, no read_fn), -EEXIST,
 * -ENOMEM. */
typedef int (*vfs_read_fn)(void *ud, const char *query, char **text, size_t *len);
typedef int (*vfs_write_fn)(void *ud, const char *data, size_t len);
int vfs_add_virtual_file(vfs *v, const char *path, vfs_read_fn read_fn,
                         vfs_write_fn write_fn, void *ud, int listed);

#endif /* S3DB_VFS_H */
