/*
 * fs_fuse.c — libfuse 3 high-level callbacks over the vfs (fs_fuse.h).
 *
 * Design.  One callback per FUSE operation, each a few lines: fill an
 * s3db_ctx with who asked, call the vfs, return what it returned (0, a
 * byte count or -errno).  The vfs decides everything a user can observe;
 * this file decides only what the kernel must be told:
 *
 *  - timeouts (entry/attr/negative) in init(), and later from the config
 *    watcher through fs_fuse_set_timeouts();
 *  - no writeback cache, so every write reaches the daemon and close()
 *    (FLUSH) returns only after the vfs stored the record in S3;
 *  - atomic O_TRUNC (open carries O_TRUNC; no separate setattr), parallel
 *    directory operations, readdirplus (a listing brings attributes, so
 *    `ls -l` costs no lookup or getattr per entry when the vfs knows
 *    them): entries are filled with offsets from a copy of the listing
 *    kept per open directory (dir_handle), the only way libfuse's
 *    high-level API passes readdirplus attributes to the kernel; the
 *    calls after the first look each entry up again (vfs_getattr, a
 *    cache hit), as the directory may have changed in between;
 *  - unlinked open files: libfuse keeps a file that is unlinked while
 *    open reachable by renaming it to ".fuse_hidden<n>" and unlinks that
 *    name at the last close; the high-level API cannot answer fstat()
 *    on such a file any other way (with hard_remove its node loses its
 *    path and getattr fails with ESTALE).  fs_rename turns that rename
 *    into vfs_hide (the vfs knows what unlinking a record while it is
 *    open means); libfuse hides an open rename target the same way just
 *    before renaming onto it, so when that rename fails, the hide is
 *    undone (vfs_unhide) and the target is not lost.  A per-thread note
 *    of the last hide pairs the two: libfuse makes both calls in a row on
 *    one thread, and every other callback clears the note.  An open of
 *    a hidden name that is gone answers ESTALE, not ENOENT
 *    (stale_if_hidden): a process may reach the hidden node through a
 *    name it resolved just before the rename, and ESTALE makes the
 *    kernel resolve that name again;
 *  - no_rofd_flush: closing a read-only descriptor sends no FLUSH;
 *  - per open file: keep_cache as the vfs says; direct_io when the vfs
 *    says so: content made at open (/.status, /.errors, plugins' files,
 *    so the kernel does not clip reads to a size it cached) and
 *    write-only opens (no GETXATTR security.capability per new file).
 *
 * nullpath_ok stays 0: vfs_getattr and vfs_truncate need the path when
 * FUSE hands us an open file (fstat, ftruncate), and libfuse tracks it
 * across renames for us (hidden names included); when a path is missing
 * all the same, getattr answers from the handle (vfs_fgetattr).
 *
 * The process name comes from /proc/<pid>/comm, remembered for 1 s in a
 * table shared by the worker threads (fs->comm, one slot per pid modulo
 * its size): a `cp` makes about five requests, each possibly on another
 * worker, so a per-thread cache read the name once per request.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fs_fuse.h"
#include "log.h"
#include "util.h"

#define COMM_TTL_MS 1000.0

/* ---- who asked ------------------------------------------------------------- */

/* The name process_name returned last on this thread. */
static __thread char thread_comm[sizeof ((fs_fuse_comm *)0)->name];

/* The last vfs_hide made on this thread (see the design note); fixed
 * buffers, so that a worker thread ending holds no memory. */
typedef struct hide_note {
	int set;
	char path[PATH_MAX];     /* the name hidden                         */
	char hidden[PATH_MAX];   /* where it went                           */
} hide_note;

static __thread hide_note thread_hide;

static void hide_note_clear(hide_note *h)
{
	h->set = 0;
}

/* Notes a hide; a path too long to note is not paired (no undo). */
static void hide_note_set(hide_note *h, const char *path, const char *hidden)
{
	h->set = strlen(path) < sizeof h->path && strlen(hidden) < sizeof h->hidden;
	if (h->set) {
		strcpy(h->path, path);
		strcpy(h->hidden, hidden);
	}
}

/* 1 when path's last component is a name libfuse hides open files
 * under. */
static int is_hidden_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return !strncmp(slash ? slash + 1 : path, ".fuse_hidden", 12);
}

/* rc, or -ESTALE for an open's ENOENT about a hidden name.  libfuse
 * keeps a hidden node's ".fuse_hidden<n>" name in its table after the
 * last close unlinked it, and the kernel may still reach that node
 * through a dentry it resolved just before the rename that hid it (a
 * `cat` of a record another process is replacing with mv).  ENOENT would
 * fail that open; ESTALE makes the kernel walk the path again with
 * LOOKUP_REVAL and open the record now under that name.  Opens only:
 * libfuse probes a free hidden name with getattr, which must say
 * ENOENT. */
static int stale_if_hidden(const char *path, int rc)
{
	return rc == -ENOENT && path && is_hidden_name(path) ? -ESTALE : rc;
}

/* Reads the name of process pid into name (cap bytes); "" when unknown. */
static void read_comm(pid_t pid, char *name, size_t cap)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	name[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, name, cap - 1);
	close(fd);
	if (n < 0)
		n = 0;
	name[n] = '\0';
	name[strcspn(name, "\n")] = '\0';
}

/* The name of process pid (borrowed from a per-thread buffer, valid until
 * the next call in this thread); "" when unknown.  Read from /proc at most
 * once a COMM_TTL_MS per pid while its slot is not taken by another. */
static const char *process_name(fs_fuse *fs, pid_t pid)
{
	if (pid <= 0)
		return "";
	fs_fuse_comm *slot = &fs->comm[(unsigned)pid % FS_FUSE_COMM_SLOTS];
	double now = s3db_monotonic_ms();
	pthread_mutex_lock(&fs->comm_lock);
	int known = slot->pid == pid && now - slot->when < COMM_TTL_MS;
	if (known)
		memcpy(thread_comm, slot->name, sizeof thread_comm);
	pthread_mutex_unlock(&fs->comm_lock);
	if (known)
		return thread_comm;
	read_comm(pid, thread_comm, sizeof thread_comm);
	pthread_mutex_lock(&fs->comm_lock);
	slot->pid = pid;
	slot->when = now;
	memcpy(slot->name, thread_comm, sizeof slot->name);
	pthread_mutex_unlock(&fs->comm_lock);
	return thread_comm;
}

/* Fills ctx from the current FUSE request and returns the vfs.  Ends
 * the pairing of a hide with the rename that may follow it. */
static vfs *request(s3db_ctx *ctx)
{
	hide_note_clear(&thread_hide);
	struct fuse_context *fc = fuse_get_context();
	ctx->uid = fc->uid;
	ctx->gid = fc->gid;
	ctx->pid = fc->pid;
	ctx->process = process_name(fc->private_data, fc->pid);
	ctx->origin = "fuse";
	return ((fs_fuse *)fc->private_data)->vfs;
}

static vfs *the_vfs(void)
{
	hide_note_clear(&thread_hide);
	return ((fs_fuse *)fuse_get_context()->private_data)->vfs;
}

/* Logs a mutating operation at debug level (nothing is formatted when
 * debug is off: log_msg filters first). */
static int traced(const char *op, const char *path, const char *to, int rc, const s3db_ctx *ctx)
{
	log_msg(LOG_LVL_DEBUG, "%s %s%s%s: %s (pid %d %s)", op, path ? path : "(open file)",
	        to ? " -> " : "", to ? to : "", rc < 0 ? strerror(-rc) : "ok", (int)ctx->pid,
	        ctx->process);
	return rc;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	fs_fuse *fs = fuse_get_context()->private_data;

	pthread_mutex_lock(&fs->lock);
	fs->cfg = cfg;
	cfg->entry_timeout = fs->entry_timeout;
	cfg->attr_timeout = fs->attr_timeout;
	cfg->negative_timeout = fs->negative_timeout;
	pthread_mutex_unlock(&fs->lock);
	cfg->use_ino = 0;
	cfg->readdir_ino = 0;
	cfg->nullpath_ok = 0;
	cfg->hard_remove = 0; /* unlinked open files: see the design note */
	cfg->no_rofd_flush = 1;
	/* the vfs owns uid/gid/umask and caching decisions */
	cfg->set_uid = cfg->set_gid = cfg->set_mode = 0;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->direct_io = 0;

	/* close() must reach us: never let the kernel cache writes */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	unsigned wanted = FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS |
	                  FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO |
	                  FUSE_CAP_AUTO_INVAL_DATA;
	conn->want |= wanted & conn->capable;
	/* no locks in the daemon: the kernel keeps them locally */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	if (fs->max_background)
		conn->max_background = fs->max_background;
	conn->congestion_threshold = conn->max_background * 3 / 4;
	log_msg(LOG_LVL_DEBUG, "fuse: protocol %u.%u, max_write %u, max_background %u",
	        conn->proto_major, conn->proto_minor, conn->max_write, conn->max_background);
	return fs;
}

static void fs_destroy(void *private_data)
{
	/* the daemon closes the vfs itself, after unmounting (s3dbfs.c) */
	(void)private_data;
}

/* ---- reading the tree ----------------------------------------------------------- */

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	memset(st, 0, sizeof *st);
	if (!path)
		return fi ? vfs_fgetattr(v, fi->fh, st) : -ENOENT;
	int rc = vfs_getattr(v, path, st, &ctx);
	if (rc == -ENOENT && fi)
		rc = vfs_fgetattr(v, fi->fh, st);
	return rc;
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	return vfs_readlink(v, path, buf, size, &ctx);
}

/* One open directory (opendir .. releasedir): the entries vfs_readdir
 * gave when it was read from its start, served from here to the calls
 * that follow at higher offsets.  Offsets are entry index + 1: libfuse's
 * high-level API gives the kernel a readdirplus entry's attributes (and
 * makes its node) only when the file system passes offsets; entries
 * filled without offsets reach the kernel with ino 0, which it answers
 * with a LOOKUP (and GETATTR) per name.  With offsets, `ls -l` of a
 * listed directory costs no lookup per name. */
typedef struct dir_entry {
	char *name;
	struct stat st;
	int has_st;
} dir_entry;

typedef struct dir_handle {
	pthread_mutex_t lock;    /* libfuse may read one handle on two threads */
	dir_entry *items;
	size_t n, cap;
	int filled;              /* read from its start since opendir/rewind */
	int oom;
} dir_handle;

static void dir_handle_clear(dir_handle *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->items[i].name);
	d->n = 0;
	d->filled = 0;
	d->oom = 0;
}

static int dir_collect(void *ud, const char *name, const struct stat *st)
{
	dir_handle *d = ud;
	dir_entry *items = s3db_array_room(d->items, &d->cap, d->n, sizeof *items, 64);
	if (items)
		d->items = items;
	dir_entry *e = items ? &items[d->n] : NULL;
	if (!e || !(e->name = strdup(name))) {
		d->oom = 1;
		return 1;
	}
	e->has_st = st != NULL;
	if (st)
		e->st = *st;
	else
		memset(&e->st, 0, sizeof e->st);
	d->n++;
	return 0;
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	dir_handle *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)d;
	return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	dir_handle *d = (dir_handle *)(uintptr_t)fi->fh;
	if (d) {
		dir_handle_clear(d);
		free(d->items);
		pthread_mutex_destroy(&d->lock);
		free(d);
	}
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	dir_handle *d = (dir_handle *)(uintptr_t)fi->fh;
	if (!d || offset < 0)
		return -EBADF;
	int plus = (flags & FUSE_READDIR_PLUS) != 0;
	int rc = 0, fresh = 0;
	pthread_mutex_lock(&d->lock);
	if (offset == 0 || !d->filled) {
		/* from the start (opendir, rewinddir): read the directory now */
		dir_handle_clear(d);
		rc = vfs_readdir(v, path, dir_collect, d, &ctx);
		if (!rc && d->oom)
			rc = -ENOMEM;
		d->filled = rc == 0;
		fresh = 1;
	}
	char *full = NULL;
	size_t cap = 0;
	for (size_t i = (size_t)offset; !rc && i < d->n; i++) {
		const dir_entry *e = &d->items[i];
		struct stat now = e->st;
		int with_st = e->has_st;
		if (plus && with_st && !fresh) {
			/* a copy made by an earlier call: the directory may have
			 * changed since (the kernel holds its lock only during a
			 * call), and the kernel trusts a readdirplus entry like a
			 * lookup, so the entry is looked up again (a cache hit) */
			size_t need = strlen(path) + strlen(e->name) + 2;
			if (need > cap) {
				char *p = realloc(full, need);
				if (!p) {
					rc = -ENOMEM;
					break;
				}
				full = p;
				cap = need;
			}
			snprintf(full, cap, "%s%s%s", path, strcmp(path, "/") ? "/" : "", e->name);
			int g = strcmp(e->name, ".") && strcmp(e->name, "..")
			                ? vfs_getattr(v, full, &now, &ctx) : 0;
			if (g == -ENOENT)
				continue; /* gone since */
			with_st = g == 0;
		}
		if (filler(buf, e->name, with_st ? &now : NULL, (off_t)(i + 1),
		           plus && with_st ? FUSE_FILL_DIR_PLUS : 0))
			break; /* the kernel's buffer is full: it asks again from here */
	}
	free(full);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
	return vfs_statfs(the_vfs(), st);
}

static int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	return vfs_getxattr(the_vfs(), path, name, value, size);
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	return vfs_listxattr(the_vfs(), path, list, size);
}

/* ---- files ---------------------------------------------------------------------- */

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	uint64_t fh = 0;
	int keep = 0;
	int rc = stale_if_hidden(path, vfs_open_file(v, path, fi->flags, &fh, &keep, &ctx));
	if (rc < 0)
		return (fi->flags & O_ACCMODE) != O_RDONLY ? traced("open", path, NULL, rc, &ctx) : rc;
	fi->fh = fh;
	fi->keep_cache = keep ? 1 : 0;
	fi->direct_io = vfs_direct_io(v, path, fi->flags) ? 1 : 0;
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	uint64_t fh = 0;
	int rc = vfs_create(v, path, mode, fi->flags, &fh, &ctx);
	if (rc < 0)
		return traced("create", path, NULL, rc, &ctx);
	fi->fh = fh;
	fi->direct_io = vfs_direct_io(v, path, fi->flags) ? 1 : 0;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
	return vfs_read(the_vfs(), fi->fh, buf, size, off);
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	return vfs_write(the_vfs(), fi->fh, buf, size, off);
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	int rc = vfs_flush(v, fi->fh, &ctx);
	return rc < 0 ? traced("flush", path, NULL, rc, &ctx) : rc;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	int rc = vfs_fsync(v, fi->fh, &ctx);
	return rc < 0 ? traced("fsync", path, NULL, rc, &ctx) : rc;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	return vfs_release(v, fi->fh, &ctx);
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	return traced("truncate", path, NULL, vfs_truncate(v, path, size, fi ? fi->fh : 0, &ctx),
	              &ctx);
}

/* ---- the namespace ------------------------------------------------------------------ */

static int fs_unlink(const char *path)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	return traced("unlink", path, NULL, vfs_unlink(v, path, &ctx), &ctx);
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	/* whether the previous callback of this thread was a hide of `to` */
	int after_hide = thread_hide.set && !strcmp(thread_hide.path, to);
	char hidden[PATH_MAX];
	if (after_hide)
		strcpy(hidden, thread_hide.hidden);
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	int rc;
	if (flags == 0 && is_hidden_name(to)) {
		/* libfuse keeping an unlinked (or replaced) open file */
		rc = vfs_hide(v, from, to, &ctx);
		if (rc == 0)
			hide_note_set(&thread_hide, from, to);
		return traced("hide", from, to, rc, &ctx);
	}
	rc = vfs_rename(v, from, to, flags, &ctx);
	if (rc < 0 && after_hide) {
		/* the rename libfuse hid the open target for failed: put the
		 * target back rather than lose it at the last close */
		traced("unhide", hidden, to, vfs_unhide(v, hidden, to), &ctx);
	}
	return traced("rename", from, to, rc, &ctx);
}

static int fs_mkdir(const char *path, mode_t mode)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	return traced("mkdir", path, NULL, vfs_mkdir(v, path, mode, &ctx), &ctx);
}

static int fs_rmdir(const char *path)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	return traced("rmdir", path, NULL, vfs_rmdir(v, path, &ctx), &ctx);
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	s3db_ctx ctx;
	vfs *v = request(&ctx);
	if (!path)
		return 0; /* an unlinked open file: nothing to keep a time on */
	return vfs_utimens(v, path, tv, &ctx);
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return vfs_chmod(the_vfs(), path, mode);
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	return vfs_chown(the_vfs(), path, uid, gid);
}

static int fs_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
	return vfs_setxattr(the_vfs(), path, name, value, size, flags);
}

static int fs_removexattr(const char *path, const char *name)
{
	return vfs_removexattr(the_vfs(), path, name);
}

static int fs_link(const char *from, const char *to)
{
	(void)from;
	return vfs_make_special(the_vfs(), to);
}

static int fs_symlink(const char *target, const char *path)
{
	(void)target;
	return vfs_make_special(the_vfs(), path);
}

static int fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	(void)mode;
	(void)rdev;
	return vfs_make_special(the_vfs(), path);
}

/* ---- the table ------------------------------------------------------------------------ */

static const struct fuse_operations fs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.release = fs_release,
	.truncate = fs_truncate,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.utimens = fs_utimens,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.link = fs_link,
	.symlink = fs_symlink,
	.mknod = fs_mknod,
};

const struct fuse_operations *fs_fuse_operations(void)
{
	return &fs_ops;
}

void fs_fuse_init(fs_fuse *fs, vfs *v, double attr_timeout, double entry_timeout,
                  double negative_timeout)
{
	memset(fs, 0, sizeof *fs);
	fs->vfs = v;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->comm_lock, NULL);
	fs->attr_timeout = attr_timeout;
	fs->entry_timeout = entry_timeout;
	fs->negative_timeout = negative_timeout;
	fs->max_background = 64;
}

void fs_fuse_destroy(fs_fuse *fs)
{
	pthread_mutex_destroy(&fs->lock);
	pthread_mutex_destroy(&fs->comm_lock);
}

void fs_fuse_set_timeouts(fs_fuse *fs, double attr_timeout, double entry_timeout,
                          double negative_timeout)
{
	pthread_mutex_lock(&fs->lock);
	fs->attr_timeout = attr_timeout;
	fs->entry_timeout = entry_timeout;
	fs->negative_timeout = negative_timeout;
	if (fs->cfg) {
		/* libfuse reads these when it answers a lookup or getattr; an
		 * aligned double store is atomic on every platform we run on */
		__atomic_store(&fs->cfg->attr_timeout, &attr_timeout, __ATOMIC_RELAXED);
		__atomic_store(&fs->cfg->entry_timeout, &entry_timeout, __ATOMIC_RELAXED);
		__atomic_store(&fs->cfg->negative_timeout, &negative_timeout, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&fs->lock);
}
