/*
 * fs_fuse.h — the FUSE face of s3dbfs: libfuse 3 high-level callbacks that
 * translate each request into the matching vfs_* call (vfs.h).
 *
 * The layer is thin on purpose: every policy (names, sizes, caching,
 * errno values) is the vfs's; here we only fill an s3db_ctx with who asked
 * (uid, gid, pid, process name), pick the file handle, and pass return
 * values through.  What FUSE itself must be told lives here: the kernel
 * cache timeouts, the connection's capabilities (no writeback cache: a
 * close() returns only after S3 accepted the write), keep_cache and
 * direct_io per open file.
 *
 * Usage (src/s3dbfs.c):
 *   fs_fuse fs; fs_fuse_init(&fs, v, attr, entry, negative);
 *   f = fuse_new(&args, fs_fuse_operations(), sizeof(struct fuse_operations), &fs);
 *   ... fuse_loop_mt ...; later fs_fuse_set_timeouts() from the config
 *   watcher; fs_fuse_destroy(&fs) after fuse_destroy().
 */
#ifndef S3DBFS_FS_FUSE_H
#define S3DBFS_FS_FUSE_H

#define FUSE_USE_VERSION 314
#include <fuse.h>
#include <pthread.h>
#include "vfs.h"

/* One remembered process name (fs_fuse.c's process_name). */
typedef struct fs_fuse_comm {
	pid_t pid;                     /* 0: empty                               */
	double when;                   /* monotonic ms it was read               */
	char name[32];
} fs_fuse_comm;

#define FS_FUSE_COMM_SLOTS 64

typedef struct fs_fuse {
	vfs *vfs;                      /* borrowed; outlives the FUSE loop      */
	pthread_mutex_t lock;          /* guards cfg and the three timeouts     */
	double attr_timeout, entry_timeout, negative_timeout;
	unsigned max_background;       /* kernel background requests (64)       */
	struct fuse_config *cfg;       /* libfuse's, known from init() on       */
	pthread_mutex_t comm_lock;     /* guards comm                           */
	fs_fuse_comm comm[FS_FUSE_COMM_SLOTS]; /* by pid % slots                */
} fs_fuse;

/* Prepares fs (the vfs is borrowed). */
void fs_fuse_init(fs_fuse *fs, vfs *v, double attr_timeout, double entry_timeout,
                  double negative_timeout);
void fs_fuse_destroy(fs_fuse *fs);

/* The callbacks; fuse_new's private_data must be an fs_fuse*. */
const struct fuse_operations *fs_fuse_operations(void);

/* Changes the kernel cache timeouts while mounted (config reload).  New
 * lookups use them; entries already cached keep theirs until they expire. */
void fs_fuse_set_timeouts(fs_fuse *fs, double attr_timeout, double entry_timeout,
                          double negative_timeout);

#endif /* S3DBFS_FS_FUSE_H */
