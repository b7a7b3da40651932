/*
 * vfs_buf.h — the bytes of a file being written: in memory, or in an
 * unlinked temporary file under the scratch directory.
 *
 * Record, schema and content files always live in memory (they are
 * bounded by max_file_size); scratch files live wherever the vfs options
 * say.  A file-backed buffer is created with mkstemp and unlinked at
 * once: nothing is left behind, whatever happens to the process.
 *
 * Not thread-safe: the vfs holds its lock around every call.
 */
#ifndef S3DB_VFS_BUF_H
#define S3DB_VFS_BUF_H

#include <stddef.h>
#include <sys/types.h>

typedef struct vbuf {
	char *data;      /* memory: the bytes (NUL-terminated), may be NULL  */
	size_t len;      /* current length (both kinds)                      */
	size_t cap;
	int fd;          /* >= 0: the bytes live in this unlinked file        */
} vbuf;

/* An empty memory buffer. */
void vbuf_init(vbuf *b);
/* An empty buffer in an unlinked file under dir; 0 or -errno. */
int vbuf_init_file(vbuf *b, const char *dir);
void vbuf_free(vbuf *b);

/* Bytes read into out from off (0 at or past the end), or -errno. */
ssize_t vbuf_read(const vbuf *b, char *out, size_t size, off_t off);
/* Writes size bytes at off (a gap reads as zeros); -EFBIG when the file
 * would pass max bytes.  Returns size or -errno. */
ssize_t vbuf_write(vbuf *b, const char *data, size_t size, off_t off, size_t max);
/* Cuts or zero-extends to size; 0 or -errno (-EFBIG past max). */
int vbuf_truncate(vbuf *b, size_t size, size_t max);
/* Replaces the whole content; 0 or -errno. */
int vbuf_set(vbuf *b, const char *data, size_t len);
/* A malloc'd, NUL-terminated copy of the content; NULL when out of
 * memory or on a read error. */
char *vbuf_dup(const vbuf *b, size_t *len);

#endif /* S3DB_VFS_BUF_H */
