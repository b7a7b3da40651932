/*
 * vfs_buf.c — file buffers in memory or in an unlinked temporary file
 * (see vfs_buf.h).
 *
 * Invariants: a memory buffer keeps data[len] == '\0' whenever data is
 * not NULL; a file buffer's `len` equals its file's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vfs_buf.h"

void vbuf_init(vbuf *b)
{
	memset(b, 0, sizeof *b);
	b->fd = -1;
}

int vbuf_init_file(vbuf *b, const char *dir)
{
	vbuf_init(b);
	size_t n = strlen(dir) + 32;
	char *templ = malloc(n);
	if (!templ)
		return -ENOMEM;
	snprintf(templ, n, "%s/.s3dbfs-scratch-XXXXXX", dir);
	int fd = mkostemp(templ, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(templ);
		return -e;
	}
	unlink(templ);
	free(templ);
	b->fd = fd;
	return 0;
}

void vbuf_free(vbuf *b)
{
	free(b->data);
	if (b->fd >= 0)
		close(b->fd);
	vbuf_init(b);
}

/* Makes room for `need` bytes plus the NUL in a memory buffer. */
static int reserve(vbuf *b, size_t need)
{
	if (need + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	if (!b->data)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

ssize_t vbuf_read(const vbuf *b, char *out, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if ((size_t)off >= b->len)
		return 0;
	size_t n = b->len - (size_t)off;
	if (n > size)
		n = size;
	if (b->fd < 0) {
		memcpy(out, b->data + off, n);
		return (ssize_t)n;
	}
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(b->fd, out + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t vbuf_write(vbuf *b, const char *data, size_t size, off_t off, size_t max)
{
	if (off < 0)
		return -EINVAL;
	if ((size_t)off > max || size > max - (size_t)off)
		return -EFBIG;
	size_t end = (size_t)off + size;
	if (b->fd >= 0) {
		size_t done = 0;
		while (done < size) {
			ssize_t w = pwrite(b->fd, data + done, size - done, off + (off_t)done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			done += (size_t)w;
		}
		if (end > b->len)
			b->len = end;
		return (ssize_t)size;
	}
	int rc = reserve(b, end > b->len ? end : b->len);
	if (rc)
		return rc;
	if ((size_t)off > b->len)
		memset(b->data + b->len, 0, (size_t)off - b->len);
	memcpy(b->data + off, data, size);
	if (end > b->len) {
		b->len = end;
		b->data[end] = '\0';
	}
	return (ssize_t)size;
}

int vbuf_truncate(vbuf *b, size_t size, size_t max)
{
	if (size > max)
		return -EFBIG;
	if (b->fd >= 0) {
		if (ftruncate(b->fd, (off_t)size) != 0)
			return -errno;
		b->len = size;
		return 0;
	}
	if (size > b->len) {
		int rc = reserve(b, size);
		if (rc)
			return rc;
		memset(b->data + b->len, 0, size - b->len);
	}
	b->len = size;
	if (b->data)
		b->data[size] = '\0';
	return 0;
}

int vbuf_set(vbuf *b, const char *data, size_t len)
{
	if (b->fd >= 0) {
		if (ftruncate(b->fd, 0) != 0)
			return -errno;
		b->len = 0;
		ssize_t w = vbuf_write(b, data, len, 0, (size_t)-1);
		return w < 0 ? (int)w : 0;
	}
	int rc = reserve(b, len);
	if (rc)
		return rc;
	if (len)
		memcpy(b->data, data, len);
	b->len = len;
	b->data[len] = '\0';
	return 0;
}

char *vbuf_dup(const vbuf *b, size_t *len)
{
	char *out = malloc(b->len + 1);
	if (!out)
		return NULL;
	ssize_t n = b->len ? vbuf_read(b, out, b->len, 0) : 0;
	if (n < 0 || (size_t)n != b->len) {
		free(out);
		return NULL;
	}
	out[b->len] = '\0';
	if (len)
		*len = b->len;
	return out;
}
