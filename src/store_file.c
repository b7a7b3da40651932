/*
 * store_file.c — the local directory backend (file:///path): S3 object
 * semantics on a POSIX file system, the embedded default of s3dbfs.
 *
 * Keys are arbitrary byte strings (S3 allows any UTF-8 up to 1024 bytes),
 * so a key is never used as a path directly.  The layout under the root:
 *
 *   <root>/.s3dbfs/layout        "s3dbfs-file-layout 1\n" (format marker)
 *   <root>/.s3dbfs/lock.00..3f   flock stripes for conditional writes
 *   <root>/<seg0>/<seg1>/.../<segN>
 *
 * A key is split at every '/' into segments (empty ones included: "a//b"
 * is "a", "", "b").  Every segment but the last names a directory, the last
 * names the object file, and each on-disk name is one type character
 * followed by the segment:
 *
 *   f<esc>  object file          d<esc>  directory (keys "<seg>/...")
 *   F<hex>  object file, long    D<hex>  directory, long
 *
 * <esc> keeps [A-Za-z0-9] and "-_.=+,@~" and writes every other byte as
 * %XX (upper-case hex), so '/', control bytes, '%', spaces and
 * non-ASCII bytes never reach the file system raw, and "." / ".." / ""
 * become "f.", "d..", "d" — ordinary names.  When "f<esc>" would exceed
 * NAME_LIMIT bytes the segment is named by the hex SHA-256 of its bytes
 * (F/D); the real segment is then recovered from the full key that every
 * object file carries in its header (for a D directory: from any object
 * below it), so no side file has to be kept consistent.  Because objects
 * and directories have distinct type characters, "a" and "a/b" coexist.
 * Names starting with '.' are never objects: temporary files (".t-...")
 * and the .s3dbfs directory are invisible to listings.  The root must be
 * on a case-sensitive file system (escaped names keep the key's letter
 * case: "fA" and "fa" are two keys).
 *
 * An object file holds everything about the object, so one rename
 * publishes body and metadata together and they can never mismatch:
 *
 *   "S3DBOBJ1 <n>\n" <n bytes of JSON header> "\n" <body>
 *
 * the header being {"key","size","etag","lastModified","contentType",
 * "contentEncoding","metadata":{...}} (etag = quoted hex MD5 of the body,
 * lastModified in epoch ms, metadata in insertion order).
 *
 * Writes: the object file is written under a unique temporary name in its
 * final directory, fsync'ed, then renamed over the final name and the
 * directory fsync'ed.  A reader opens either the old file or the new one,
 * never a partial one; a crash leaves at most a ".t-*" file, ignored by
 * every read and listing (S3DB_FILE_NOSYNC=1 in the environment skips the
 * fsyncs, for tests and benchmarks: still atomic, no longer durable).
 * Conditional writes (If-None-Match: *, If-Match)
 * take an exclusive flock on the key's stripe around check-then-rename;
 * plain puts and deletes take it shared, so they cannot slip between a
 * conditional write's check and its rename.  flock excludes across
 * processes and, since every call opens its own lock descriptor, across
 * threads too.
 *
 * Deletes unlink the object file and then rmdir its directories upwards
 * until one is not empty.  A writer that loses its directory to such a
 * rmdir (between mkdir and creating its temporary file) sees ENOENT and
 * creates the directories again; once its temporary file exists the
 * directory is not empty and cannot be removed.
 *
 * Listing walks the tree in byte order: a directory's entries are sorted
 * by their segment, a directory's segment taken with its '/' appended.
 * This is exactly key order, because every key below directory "x" starts
 * with "x/" and no other entry of that directory contains '/'.  The walk is
 * an explicit stack of directory frames; seeking to the first key after a
 * bound descends only along the bound's path, and skipping a common prefix
 * drops whole frames or runs of entries, so a delimiter listing of a big
 * tree reads only the directories it reports from.  Continuation tokens are
 * "1k<hex key>" (resume after that key) or "1p<hex prefix>" (resume after
 * every key under that common prefix).
 *
 * Invariants:
 *  - an object file under a name not starting with '.' is complete;
 *  - an object file's header key maps to the path the file lives at;
 *  - no state is shared between calls except the root descriptor, so every
 *    operation is thread-safe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include "store.h"
#include "util.h"

/* Longest escaped on-disk name we write, well below NAME_MAX (255 on every
 * file system we care about); longer segments get a hashed name. */
#define NAME_LIMIT 200
/* S3's limit on key length, in bytes. */
#define KEY_LIMIT 1024
/* Flock stripes: conditional writes to keys in different stripes never
 * wait for each other. */
#define LOCK_STRIPES 64
#define HEADER_MAGIC "S3DBOBJ1 "
#define LAYOUT_FILE ".s3dbfs/layout"
#define LAYOUT_TEXT "s3dbfs-file-layout 1\n"
#define DEFAULT_CONTENT_TYPE "binary/octet-stream"
#define MAX_DIR_RETRIES 1000

typedef struct file_store {
	store base;        /* must stay first */
	int rootfd;        /* O_DIRECTORY descriptor of the root */
	char *root;        /* the root path, for messages; owned */
	int sync;          /* fsync files and directories (default 1) */
} file_store;

/* Sequence number for temporary names (unique with the pid). */
static unsigned long tmp_seq;

/* ---- small helpers ---------------------------------------------------- */

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void stats_begin(void)
{
	store_call_stats_current()->attempts = 1;
}

/* An S3DB_ERR_IO error naming the operation, the key, and errno's text. */
static s3db_code io_error(s3db_error *err, const char *op, const char *key, const char *what,
                          int e)
{
	return s3db_error_set(err, S3DB_ERR_IO, "file store: %s '%s': %s: %s", op, key, what,
	                      strerror(e));
}

static s3db_code nomem(s3db_error *err, const char *op, const char *key)
{
	return s3db_error_set(err, S3DB_ERR_NOMEM, "file store: %s '%s': out of memory", op, key);
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Decodes lower- or upper-case hex of n characters into a malloc'd
 * NUL-terminated string; NULL on bad input (or a NUL byte in it). */
static char *hex_decode(const char *in, size_t n)
{
	if (n % 2)
		return NULL;
	char *out = malloc(n / 2 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = s3db_hex_value((unsigned char)in[2 * i]);
		int lo = s3db_hex_value((unsigned char)in[2 * i + 1]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[i] = (char)(hi * 16 + lo);
	}
	out[n / 2] = '\0';
	return out;
}

/* Quoted hex MD5 of data, as S3 gives a single-part upload's ETag. */
static void etag_of(const void *data, size_t len, char etag[72])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL);
	etag[0] = '"';
	hex_encode(md, 16, etag + 1);
	etag[33] = '"';
	etag[34] = '\0';
}

/* Compares two ETags ignoring surrounding quotes. */
static int etag_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la >= 2 && a[0] == '"' && a[la - 1] == '"') {
		a++;
		la -= 2;
	}
	if (lb >= 2 && b[0] == '"' && b[lb - 1] == '"') {
		b++;
		lb -= 2;
	}
	return la == lb && memcmp(a, b, la) == 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes at off; returns bytes read (short at EOF) or -1. */
static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* ---- names and paths ---------------------------------------------------- */

static int name_char_is_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("-_.=+,@~", c) != NULL);
}

static size_t escaped_len(const char *seg, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += name_char_is_safe((unsigned char)seg[i]) ? 1 : 3;
	return n;
}

/* Appends the on-disk name of a segment; type is 'f' (object) or 'd'
 * (directory); long names become 'F'/'D' + hex SHA-256 of the segment. */
static void append_name(sbuf *out, char type, const char *seg, size_t len)
{
	if (1 + escaped_len(seg, len) <= NAME_LIMIT) {
		static const char digits[] = "0123456789ABCDEF";
		sbuf_putc(out, type);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)seg[i];
			if (name_char_is_safe(c)) {
				sbuf_putc(out, (char)c);
			} else {
				sbuf_putc(out, '%');
				sbuf_putc(out, digits[c >> 4]);
				sbuf_putc(out, digits[c & 15]);
			}
		}
		return;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	EVP_Digest(seg, len, md, &mdlen, EVP_sha256(), NULL);
	hex_encode(md, mdlen, hex);
	sbuf_putc(out, (char)(type - 'a' + 'A'));
	sbuf_puts(out, hex);
}

/* Decodes an escaped segment (the part after the type character); NULL
 * when the name is not one this backend writes. */
static char *unescape_name(const char *name)
{
	size_t n = strlen(name);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '%') {
			int hi = i + 2 < n ? s3db_hex_value((unsigned char)name[i + 1]) : -1;
			int lo = hi >= 0 ? s3db_hex_value((unsigned char)name[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (name_char_is_safe(c)) {
			out[o++] = (char)c;
		} else {
			free(out);
			return NULL;
		}
	}
	out[o] = '\0';
	return out;
}

/* The relative path of key's object file ("dA/dB/fC") into path;
 * *dir_len is the length of its directory part (0 for the root). */
static s3db_code key_path(const char *op, const char *key, sbuf *path, size_t *dir_len,
                          s3db_error *err)
{
	if (!key || !*key)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "file store: %s: empty key", op);
	if (strlen(key) > KEY_LIMIT)
		return s3db_error_set(err, S3DB_ERR_BAD_REQUEST,
		                      "file store: %s '%.64s...': key longer than %d bytes", op,
		                      key, KEY_LIMIT);
	sbuf_reset(path);
	*dir_len = 0;
	const char *seg = key;
	for (;;) {
		const char *slash = strchr(seg, '/');
		if (!slash) {
			append_name(path, 'f', seg, strlen(seg));
			break;
		}
		append_name(path, 'd', seg, (size_t)(slash - seg));
		*dir_len = path->len;
		sbuf_putc(path, '/');
		seg = slash + 1;
	}
	if (path->oom)
		return nomem(err, op, key);
	return S3DB_OK;
}

/* ---- directories -------------------------------------------------------- */

/* fsyncs a directory (relative to the root; "" is the root itself) so that
 * names created or removed in it survive a crash; nothing when syncing is
 * off (see store_file_open). */
static void fsync_dir(const file_store *fs, const char *dir)
{
	if (!fs->sync)
		return;
	int fd = openat(fs->rootfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Creates every directory of the relative path dir (length len), fsyncing
 * the parent of each one created.  Returns 0, or -1 with errno.  A
 * component removed concurrently (ENOENT) makes it start over, a bounded
 * number of times. */
static int make_dirs(const file_store *fs, const char *dir, size_t len)
{
	char *p = s3db_strndup(dir, len);
	if (!p)
		return -1;
	for (int attempt = 0; attempt < MAX_DIR_RETRIES; attempt++) {
		int again = 0;
		for (size_t i = 1; i <= len && !again; i++) {
			if (i < len && p[i] != '/')
				continue;
			p[i] = '\0';
			if (mkdirat(fs->rootfd, p, 0755) == 0) {
				char *slash = strrchr(p, '/');
				if (slash) {
					*slash = '\0';
					fsync_dir(fs, p);
					*slash = '/';
				} else {
					fsync_dir(fs, "");
				}
			} else if (errno == ENOENT) {
				again = 1;
			} else if (errno != EEXIST) {
				int e = errno;
				free(p);
				errno = e;
				return -1;
			}
			if (i < len)
				p[i] = '/';
		}
		if (!again) {
			free(p);
			return 0;
		}
	}
	free(p);
	errno = ENOENT;
	return -1;
}

/* Removes the directories of a relative path upwards while they are empty
 * (best effort: stops at the first one that is not). */
static void remove_empty_dirs(int rootfd, const char *dir, size_t len)
{
	char *p = s3db_strndup(dir, len);
	if (!p)
		return;
	while (*p) {
		if (unlinkat(rootfd, p, AT_REMOVEDIR) != 0)
			break;
		char *slash = strrchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	free(p);
}

/* ---- locks -------------------------------------------------------------- */

/* Opens and flocks the stripe of key (LOCK_SH or LOCK_EX); returns the
 * descriptor to close to release it, or -1 with errno. */
static int lock_key(file_store *fs, const char *key, int mode)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	char name[32];
	snprintf(name, sizeof name, ".s3dbfs/lock.%02x", (unsigned)(h % LOCK_STRIPES));
	int fd = openat(fs->rootfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	while (flock(fd, mode) != 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
	}
	return fd;
}

static void unlock_key(int fd)
{
	if (fd >= 0)
		close(fd);   /* closing the last descriptor releases the flock */
}

/* ---- object files ------------------------------------------------------- */

/* A parsed object header. */
typedef struct obj_header {
	json_object *json;       /* owned */
	const char *key;         /* borrowed from json */
	int64_t size;
	int64_t last_modified_ms;
	char etag[72];
	off_t body_offset;
} obj_header;

static void obj_header_free(obj_header *h)
{
	if (h->json)
		json_object_put(h->json);
	memset(h, 0, sizeof *h);
}

/* Reads and checks the header of the object file open on fd.  Returns
 * S3DB_OK, S3DB_ERR_CORRUPT for a file that is not a complete object, or
 * S3DB_ERR_IO / S3DB_ERR_NOMEM. */
static s3db_code read_header(int fd, const char *key, obj_header *h, s3db_error *err)
{
	memset(h, 0, sizeof *h);
	char first[64];
	ssize_t n = pread_full(fd, first, sizeof first - 1, 0);
	if (n < 0)
		return io_error(err, "read", key, "object header", errno);
	first[n] = '\0';
	size_t magic = strlen(HEADER_MAGIC);
	char *nl = memchr(first, '\n', (size_t)n);
	if ((size_t)n < magic || memcmp(first, HEADER_MAGIC, magic) != 0 || !nl)
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "file store: '%s': object file has no header", key);
	char *end;
	errno = 0;
	unsigned long long jlen = strtoull(first + magic, &end, 10);
	if (errno || end != nl || jlen == 0 || jlen > (1u << 20))
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "file store: '%s': bad object header length", key);
	size_t start = (size_t)(nl - first) + 1;
	char *text = malloc((size_t)jlen + 1);
	if (!text)
		return nomem(err, "read", key);
	n = pread_full(fd, text, (size_t)jlen + 1, (off_t)start);
	if (n < 0) {
		int e = errno;
		free(text);
		return io_error(err, "read", key, "object header", e);
	}
	if ((size_t)n != jlen + 1 || text[jlen] != '\n') {
		free(text);
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "file store: '%s': truncated object header", key);
	}
	json_tokener *tok = json_tokener_new();
	if (!tok) {
		free(text);
		return nomem(err, "read", key);
	}
	h->json = json_tokener_parse_ex(tok, text, (int)jlen);
	int ok = json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	free(text);
	json_object *k, *sz, *et, *lm;
	if (!ok || !h->json || !json_object_is_type(h->json, json_type_object) ||
	    !json_object_object_get_ex(h->json, "key", &k) || !json_object_is_type(k, json_type_string) ||
	    !json_object_object_get_ex(h->json, "size", &sz) || !json_object_is_type(sz, json_type_int) ||
	    !json_object_object_get_ex(h->json, "etag", &et) || !json_object_is_type(et, json_type_string) ||
	    !json_object_object_get_ex(h->json, "lastModified", &lm) ||
	    !json_object_is_type(lm, json_type_int) || json_object_get_string_len(et) >= 72) {
		obj_header_free(h);
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "file store: '%s': malformed object header", key);
	}
	h->key = json_object_get_string(k);
	h->size = json_object_get_int64(sz);
	h->last_modified_ms = json_object_get_int64(lm);
	snprintf(h->etag, sizeof h->etag, "%s", json_object_get_string(et));
	h->body_offset = (off_t)(start + jlen + 1);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		obj_header_free(h);
		return io_error(err, "read", key, "fstat", e);
	}
	if (h->size < 0 || st.st_size != h->body_offset + h->size) {
		obj_header_free(h);
		return s3db_error_set(err, S3DB_ERR_CORRUPT,
		                      "file store: '%s': object file size does not match its header",
		                      key);
	}
	return S3DB_OK;
}

/* Builds the whole header ("S3DBOBJ1 <n>\n<json>\n") into out. */
static int build_header(sbuf *out, const char *key, const store_meta *meta,
                        const char *content_type, const char *content_encoding,
                        const char *etag, int64_t last_modified_ms, size_t size)
{
	json_object *o = json_object_new_object();
	json_object *m = json_object_new_object();
	if (!o || !m) {
		json_object_put(o);
		json_object_put(m);
		return -1;
	}
	json_object_object_add(o, "key", json_object_new_string(key));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
	json_object_object_add(o, "etag", json_object_new_string(etag));
	json_object_object_add(o, "lastModified", json_object_new_int64(last_modified_ms));
	if (content_type)
		json_object_object_add(o, "contentType", json_object_new_string(content_type));
	if (content_encoding)
		json_object_object_add(o, "contentEncoding",
		                       json_object_new_string(content_encoding));
	for (size_t i = 0; meta && i < meta->count; i++)
		json_object_object_add(m, meta->items[i].key,
		                       json_object_new_string(meta->items[i].value));
	json_object_object_add(o, "metadata", m);
	size_t jlen = 0;
	const char *text = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &jlen);
	if (!text) {
		json_object_put(o);
		return -1;
	}
	sbuf_printf(out, "%s%zu\n", HEADER_MAGIC, jlen);
	sbuf_append(out, text, jlen);
	sbuf_putc(out, '\n');
	json_object_put(o);
	return out->oom ? -1 : 0;
}

/* Fills out's metadata, content type and encoding from a header. */
static s3db_code header_to_object(const obj_header *h, const char *key, store_object *out,
                                  s3db_error *err)
{
	json_object *v;
	if (json_object_object_get_ex(h->json, "contentType", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    !(out->content_type = strdup(json_object_get_string(v))))
		return nomem(err, "read", key);
	if (json_object_object_get_ex(h->json, "contentEncoding", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    !(out->content_encoding = strdup(json_object_get_string(v))))
		return nomem(err, "read", key);
	if (json_object_object_get_ex(h->json, "metadata", &v) &&
	    json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, mk, mv) {
			if (!json_object_is_type(mv, json_type_string))
				continue;
			if (store_meta_set(&out->meta, mk, json_object_get_string(mv)))
				return nomem(err, "read", key);
		}
	}
	snprintf(out->etag, sizeof out->etag, "%s", h->etag);
	out->last_modified_ms = h->last_modified_ms;
	out->size = h->size;
	return S3DB_OK;
}

/* Opens key's object file read-only.  Returns the descriptor, or -1 after
 * setting err (S3DB_ERR_NOT_FOUND when there is no such object). */
static int open_object(file_store *fs, const char *op, const char *key, s3db_error *err,
                       s3db_code *rc)
{
	sbuf path;
	size_t dir_len;
	sbuf_init(&path);
	*rc = key_path(op, key, &path, &dir_len, err);
	if (*rc != S3DB_OK) {
		sbuf_free(&path);
		return -1;
	}
	int fd = openat(fs->rootfd, path.data, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			*rc = s3db_error_set(err, S3DB_ERR_NOT_FOUND,
			                     "file store: %s '%s': no such key", op, key);
		else
			*rc = io_error(err, op, key, path.data, errno);
	}
	sbuf_free(&path);
	return fd;
}

/* Resolves the requested bytes [first, last] of an object of `size` bytes
 * (first < 0: all of it; last < 0 or past the end: to the end) into the
 * inclusive [*from, *to] (*to = *from - 1 when nothing is to be read).
 * As S3: a start past the end is not satisfiable (S3DB_ERR_BAD_REQUEST,
 * S3's 416); last < first is the caller's mistake (S3DB_ERR_INVALID_ARG). */
static s3db_code resolve_range(const char *op, const char *key, int64_t size, int64_t first,
                               int64_t last, int64_t *from, int64_t *to, s3db_error *err)
{
	*from = 0;
	*to = size - 1;
	if (first < 0)
		return S3DB_OK;
	if (last >= 0 && last < first)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "file store: %s '%s': range %" PRId64 "-%" PRId64 " is empty",
		                      op, key, first, last);
	if (first >= size)
		return s3db_error_set(err, S3DB_ERR_BAD_REQUEST,
		                      "file store: %s '%s': range %" PRId64
		                      "- not satisfiable (size %" PRId64 ")",
		                      op, key, first, size);
	*from = first;
	if (last >= 0 && last < *to)
		*to = last;
	return S3DB_OK;
}

/* Reads an object: its header always, its body (or the bytes [first,
 * last] of it) when want_body.  out is initialised here. */
static s3db_code read_object(file_store *fs, const char *op, const char *key, int want_body,
                             int64_t first, int64_t last, store_object *out, s3db_error *err)
{
	store_object_init(out);
	s3db_code rc;
	int fd = open_object(fs, op, key, err, &rc);
	if (fd < 0)
		return rc;
	obj_header h;
	rc = read_header(fd, key, &h, err);
	if (rc != S3DB_OK) {
		close(fd);
		return rc;
	}
	if (strcmp(h.key, key) != 0) {
		/* a SHA-256 collision of a long segment: not this key */
		obj_header_free(&h);
		close(fd);
		return s3db_error_set(err, S3DB_ERR_NOT_FOUND, "file store: %s '%s': no such key",
		                      op, key);
	}
	rc = header_to_object(&h, key, out, err);
	int64_t from, to;
	if (rc == S3DB_OK && want_body &&
	    (rc = resolve_range(op, key, h.size, first, last, &from, &to, err)) == S3DB_OK) {
		size_t n = (size_t)(to - from + 1);
		ssize_t got;
		if (!(out->body = malloc(n + 1)))
			rc = nomem(err, op, key);
		else if ((got = pread_full(fd, out->body, n, h.body_offset + from)) < 0)
			rc = io_error(err, op, key, "read body", errno);
		else if ((size_t)got != n)
			rc = s3db_error_set(err, S3DB_ERR_CORRUPT,
			                    "file store: %s '%s': body shorter than its header says",
			                    op, key);
		else {
			out->body[n] = '\0';
			out->body_len = n;
			store_call_stats_current()->bytes_received = n;
		}
	}
	obj_header_free(&h);
	close(fd);
	if (rc != S3DB_OK)
		store_object_free(out);
	return rc;
}

/* Writes an object atomically: temporary file, fsync, check the condition
 * under the key's stripe lock, rename, fsync the directory.  On failure the
 * previous object (or none) is left as it was. */
static s3db_code write_object(file_store *fs, const char *op, const char *key,
                              const store_meta *meta, const char *content_type,
                              const char *content_encoding, const void *body, size_t len,
                              int if_none_match, const char *if_match, char etag_out[72],
                              s3db_error *err)
{
	size_t msize = store_meta_size(meta);
	if (msize > STORE_METADATA_LIMIT)
		return s3db_error_set(err, S3DB_ERR_METADATA_TOO_LARGE,
		                      "file store: %s '%s': metadata is %zu bytes, over the %d-byte limit",
		                      op, key, msize, STORE_METADATA_LIMIT);
	sbuf path, tmp, head;
	size_t dir_len;
	sbuf_init(&path);
	sbuf_init(&tmp);
	sbuf_init(&head);
	s3db_code rc = key_path(op, key, &path, &dir_len, err);
	if (rc != S3DB_OK)
		goto out;

	char etag[72];
	etag_of(body ? body : "", len, etag);
	if (build_header(&head, key, meta, content_type ? content_type : DEFAULT_CONTENT_TYPE,
	                 content_encoding, etag, s3db_now_ms(), len)) {
		rc = nomem(err, op, key);
		goto out;
	}

	/* the temporary file, in the final directory (created as needed) */
	int fd = -1;
	for (int attempt = 0; fd < 0 && attempt < MAX_DIR_RETRIES; attempt++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		sbuf_reset(&tmp);
		sbuf_append(&tmp, path.data, dir_len);
		sbuf_printf(&tmp, "%s.t-%ld-%lu-%lx", dir_len ? "/" : "", (long)getpid(),
		            __atomic_add_fetch(&tmp_seq, 1, __ATOMIC_RELAXED),
		            (unsigned long)ts.tv_nsec);
		if (tmp.oom) {
			rc = nomem(err, op, key);
			goto out;
		}
		fd = openat(fs->rootfd, tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			break;
		if (errno == ENOENT && dir_len > 0) {
			if (make_dirs(fs, path.data, dir_len) != 0) {
				rc = io_error(err, op, key, "mkdir", errno);
				goto out;
			}
		} else if (errno != EEXIST) {
			rc = io_error(err, op, key, "create temporary file", errno);
			goto out;
		}
	}
	if (fd < 0) {
		rc = io_error(err, op, key, "create temporary file", errno);
		goto out;
	}
	if (write_all(fd, head.data, head.len) != 0 || write_all(fd, body, len) != 0 ||
	    (fs->sync && fsync(fd) != 0)) {
		rc = io_error(err, op, key, "write temporary file", errno);
		close(fd);
		unlinkat(fs->rootfd, tmp.data, 0);
		goto out;
	}
	if (close(fd) != 0) {
		rc = io_error(err, op, key, "close temporary file", errno);
		unlinkat(fs->rootfd, tmp.data, 0);
		goto out;
	}

	int conditional = if_none_match || if_match;
	int lock = lock_key(fs, key, conditional ? LOCK_EX : LOCK_SH);
	if (lock < 0) {
		rc = io_error(err, op, key, "lock", errno);
		unlinkat(fs->rootfd, tmp.data, 0);
		goto out;
	}
	if (if_none_match) {
		struct stat st;
		if (fstatat(fs->rootfd, path.data, &st, AT_SYMLINK_NOFOLLOW) == 0)
			rc = s3db_error_set(err, S3DB_ERR_PRECONDITION,
			                    "file store: %s '%s': object exists (If-None-Match: *)",
			                    op, key);
		else if (errno != ENOENT)
			rc = io_error(err, op, key, "stat", errno);
	} else if (if_match) {
		store_object cur;
		s3db_error cerr;
		s3db_error_clear(&cerr);
		rc = read_object(fs, op, key, 0, -1, -1, &cur, &cerr);
		if (rc == S3DB_OK) {
			if (strcmp(if_match, "*") != 0 && !etag_equal(cur.etag, if_match))
				rc = s3db_error_set(err, S3DB_ERR_PRECONDITION,
				                    "file store: %s '%s': ETag is %s, not %s (If-Match)",
				                    op, key, cur.etag, if_match);
			store_object_free(&cur);
		} else {
			if (err)
				*err = cerr;
		}
	}
	if (rc == S3DB_OK && renameat(fs->rootfd, tmp.data, fs->rootfd, path.data) != 0)
		rc = io_error(err, op, key, "rename", errno);
	unlock_key(lock);
	if (rc != S3DB_OK) {
		unlinkat(fs->rootfd, tmp.data, 0);
		remove_empty_dirs(fs->rootfd, path.data, dir_len);
		goto out;
	}
	path.data[dir_len] = '\0';
	fsync_dir(fs, path.data);
	snprintf(etag_out, 72, "%s", etag);
	store_call_stats_current()->bytes_sent = len;
out:
	sbuf_free(&path);
	sbuf_free(&tmp);
	sbuf_free(&head);
	return rc;
}

/* ---- the operations ------------------------------------------------------ */

static s3db_code file_put(store *s, const char *key, const store_meta *meta, const void *body,
                          size_t len, const store_put_opts *opts, char etag_out[72],
                          s3db_error *err)
{
	file_store *fs = (file_store *)s;
	stats_begin();
	return write_object(fs, "put", key, meta, opts ? opts->content_type : NULL,
	                    opts ? opts->content_encoding : NULL, body, len,
	                    opts ? opts->if_none_match : 0, opts ? opts->if_match : NULL,
	                    etag_out, err);
}

static s3db_code file_get(store *s, const char *key, int64_t range_first, int64_t range_last,
                          store_object *out, s3db_error *err)
{
	stats_begin();
	return read_object((file_store *)s, "get", key, 1, range_first, range_last, out, err);
}

static s3db_code file_head(store *s, const char *key, store_object *out, s3db_error *err)
{
	stats_begin();
	return read_object((file_store *)s, "head", key, 0, -1, -1, out, err);
}

/* Deletes one key (absent keys succeed) and the directories it emptied. */
static s3db_code delete_key(file_store *fs, const char *key, s3db_error *err)
{
	sbuf path;
	size_t dir_len;
	sbuf_init(&path);
	s3db_code rc = key_path("delete", key, &path, &dir_len, err);
	if (rc != S3DB_OK) {
		sbuf_free(&path);
		return rc;
	}
	int lock = lock_key(fs, key, LOCK_SH);
	if (lock < 0) {
		rc = io_error(err, "delete", key, "lock", errno);
		sbuf_free(&path);
		return rc;
	}
	int removed = unlinkat(fs->rootfd, path.data, 0) == 0;
	int e = errno;
	unlock_key(lock);
	if (!removed && e != ENOENT && e != ENOTDIR)
		rc = io_error(err, "delete", key, path.data, e);
	if (removed) {
		path.data[dir_len] = '\0';
		fsync_dir(fs, path.data);
		remove_empty_dirs(fs->rootfd, path.data, dir_len);
	}
	sbuf_free(&path);
	return rc;
}

static s3db_code file_del(store *s, const char *key, s3db_error *err)
{
	stats_begin();
	return delete_key((file_store *)s, key, err);
}

static s3db_code file_del_many(store *s, const char *const *keys, size_t n, s3db_error *err)
{
	stats_begin();
	s3db_code first_rc = S3DB_OK;
	s3db_error first_err;
	size_t failed = 0;
	s3db_error_clear(&first_err);
	for (size_t i = 0; i < n; i++) {
		s3db_error e;
		s3db_error_clear(&e);
		s3db_code rc = delete_key((file_store *)s, keys[i], &e);
		if (rc != S3DB_OK && failed++ == 0) {
			first_rc = rc;
			first_err = e;
		}
	}
	if (first_rc != S3DB_OK)
		return s3db_error_set(err, first_rc, "file store: delete_many: %zu of %zu keys failed; %s",
		                      failed, n, first_err.message);
	return S3DB_OK;
}

static s3db_code file_copy(store *s, const char *src_key, const char *dst_key,
                           const store_meta *meta, const char *content_type, s3db_error *err)
{
	file_store *fs = (file_store *)s;
	stats_begin();
	if (!meta && src_key && dst_key && strcmp(src_key, dst_key) == 0)
		return s3db_error_set(err, S3DB_ERR_BAD_REQUEST,
		                      "file store: copy '%s' onto itself without replacing its metadata",
		                      src_key);
	store_object src;
	s3db_code rc = read_object(fs, "copy", src_key, 1, -1, -1, &src, err);
	if (rc != S3DB_OK)
		return rc;
	char etag[72];
	if (meta)
		rc = write_object(fs, "copy", dst_key, meta, content_type, NULL, src.body,
		                  src.body_len, 0, NULL, etag, err);
	else
		rc = write_object(fs, "copy", dst_key, &src.meta, src.content_type,
		                  src.content_encoding, src.body, src.body_len, 0, NULL, etag, err);
	store_object_free(&src);
	return rc;
}

/* ---- listing --------------------------------------------------------------- */

/* One directory entry: its segment (with '/' appended for a directory —
 * the string entries sort by) and its on-disk name. */
typedef struct lentry {
	char *sort;      /* owned */
	size_t len;      /* strlen(sort) */
	char *disk;      /* owned */
	int is_dir;
} lentry;

/* One directory on the walk's stack. */
typedef struct lframe {
	char *kprefix;   /* key prefix of the directory ("" or "a/b/"); owned */
	char *dpath;     /* relative on-disk path ("" for the root); owned */
	lentry *e;
	size_t n;
	size_t pos;      /* current entry */
} lframe;

/* The walk: a stack of frames, root first.  The current position is the
 * top frame's entry at pos: an object, or (at_dir) a directory whose keys
 * all fall into one common prefix, which the walk does not enter. */
typedef struct liter {
	file_store *fs;
	lframe *st;
	size_t depth;
	size_t cap;
	const char *prefix;   /* listing prefix and delimiter (NULL: none) */
	size_t plen;
	const char *delim;
	int at_dir;
	s3db_code rc;
	s3db_error *err;
} liter;

enum { SEEK_GE, SEEK_GT, SEEK_PAST };

static int lentry_cmp(const void *a, const void *b)
{
	return strcmp(((const lentry *)a)->sort, ((const lentry *)b)->sort);
}

static void lframe_free(lframe *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->e[i].sort);
		free(f->e[i].disk);
	}
	free(f->e);
	free(f->kprefix);
	free(f->dpath);
	memset(f, 0, sizeof *f);
}

static char *join_path(const char *dir, const char *name)
{
	return *dir ? s3db_asprintf("%s/%s", dir, name) : strdup(name);
}

/* Reads the header key of the object file at rel; NULL when unreadable. */
static char *read_key_at(int rootfd, const char *rel)
{
	int fd = openat(rootfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	obj_header h;
	char *key = NULL;
	if (read_header(fd, rel, &h, NULL) == S3DB_OK) {
		key = strdup(h.key);
		obj_header_free(&h);
	}
	close(fd);
	return key;
}

/* The key of some object below directory rel (depth-first); NULL if none. */
static char *any_key_below(int rootfd, const char *rel, int depth)
{
	if (depth > KEY_LIMIT + 1)
		return NULL;
	int dfd = openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return NULL;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return NULL;
	}
	char *key = NULL;
	struct dirent *de;
	while (!key && (de = readdir(d)) != NULL) {
		char t = de->d_name[0];
		if (t != 'f' && t != 'F' && t != 'd' && t != 'D')
			continue;
		char *sub = join_path(rel, de->d_name);
		if (!sub)
			break;
		key = (t == 'f' || t == 'F') ? read_key_at(rootfd, sub)
		                             : any_key_below(rootfd, sub, depth + 1);
		free(sub);
	}
	closedir(d);
	return key;
}

/* The segment a long (hashed) entry stands for, recovered from a key that
 * lives at or below it; NULL when none can be (the entry is skipped). */
static char *long_segment(liter *it, const lframe *f, const char *disk, int is_dir)
{
	char *rel = join_path(f->dpath, disk);
	if (!rel)
		return NULL;
	char *key = is_dir ? any_key_below(it->fs->rootfd, rel, 0)
	                   : read_key_at(it->fs->rootfd, rel);
	free(rel);
	if (!key)
		return NULL;
	char *seg = NULL;
	size_t kp = strlen(f->kprefix);
	if (strncmp(key, f->kprefix, kp) == 0) {
		const char *rest = key + kp;
		const char *slash = strchr(rest, '/');
		if (is_dir ? slash != NULL : slash == NULL)
			seg = s3db_strndup(rest, is_dir ? (size_t)(slash - rest) : strlen(rest));
	}
	free(key);
	if (seg) {
		/* it must hash to the entry's name, or the entry is not ours */
		sbuf want;
		sbuf_init(&want);
		append_name(&want, is_dir ? 'd' : 'f', seg, strlen(seg));
		if (want.oom || strcmp(want.data, disk) != 0) {
			free(seg);
			seg = NULL;
		}
		sbuf_free(&want);
	}
	return seg;
}

/* Reads frame f's directory into sorted entries.  A directory that no
 * longer exists is empty. */
static int lframe_load(liter *it, lframe *f)
{
	int dfd = openat(it->fs->rootfd, *f->dpath ? f->dpath : ".",
	                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		it->rc = io_error(it->err, "list", f->kprefix, "open directory", errno);
		return -1;
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		it->rc = io_error(it->err, "list", f->kprefix, "open directory", errno);
		close(dfd);
		return -1;
	}
	size_t cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		char t = de->d_name[0];
		int is_dir = t == 'd' || t == 'D';
		char *seg = NULL;
		if (t == 'f' || t == 'd')
			seg = unescape_name(de->d_name + 1);
		else if (t == 'F' || t == 'D')
			seg = long_segment(it, f, de->d_name, is_dir);
		else
			continue;
		if (!seg)
			continue;
		lentry *p = s3db_array_room(f->e, &cap, f->n, sizeof *p, 64);
		if (!p) {
			free(seg);
			goto oom;
		}
		f->e = p;
		lentry *e = &f->e[f->n];
		e->is_dir = is_dir;
		e->sort = is_dir ? s3db_asprintf("%s/", seg) : seg;
		if (is_dir)
			free(seg);
		e->disk = strdup(de->d_name);
		if (!e->sort || !e->disk) {
			free(e->sort);
			free(e->disk);
			goto oom;
		}
		e->len = strlen(e->sort);
		f->n++;
		errno = 0;
	}
	closedir(d);
	if (f->n > 1)
		qsort(f->e, f->n, sizeof *f->e, lentry_cmp);
	return 0;
oom:
	closedir(d);
	it->rc = nomem(it->err, "list", f->kprefix);
	return -1;
}

/* Pushes the root (parent == NULL) or the directory entry at parent->pos. */
static int it_push(liter *it)
{
	lframe *p = s3db_array_room(it->st, &it->cap, it->depth, sizeof *p, 8);
	if (!p) {
		it->rc = nomem(it->err, "list", "");
		return -1;
	}
	it->st = p;
	lframe *f = &it->st[it->depth];
	memset(f, 0, sizeof *f);
	if (it->depth == 0) {
		f->kprefix = strdup("");
		f->dpath = strdup("");
	} else {
		const lframe *parent = &it->st[it->depth - 1];
		const lentry *e = &parent->e[parent->pos];
		f->kprefix = s3db_asprintf("%s%s", parent->kprefix, e->sort);
		f->dpath = join_path(parent->dpath, e->disk);
	}
	it->depth++;
	if (!f->kprefix || !f->dpath) {
		it->rc = nomem(it->err, "list", "");
		return -1;
	}
	return lframe_load(it, f);
}

static void it_pop(liter *it)
{
	lframe_free(&it->st[--it->depth]);
}

static void it_free(liter *it)
{
	while (it->depth > 0)
		it_pop(it);
	free(it->st);
}

/* 1 when every key below the directory entry at f->pos starts with the
 * listing prefix and has the delimiter inside the directory's own path,
 * so that all of them make one common prefix. */
static int dir_is_rolled_up(const liter *it, const lframe *f)
{
	if (!it->delim)
		return 0;
	const lentry *e = &f->e[f->pos];
	size_t kp = strlen(f->kprefix);
	size_t len = kp + e->len;
	if (len < it->plen)
		return 0;
	char *dirkey = malloc(len + 1);
	if (!dirkey)
		return 0;   /* then the walk just goes inside */
	memcpy(dirkey, f->kprefix, kp);
	memcpy(dirkey + kp, e->sort, e->len + 1);
	int yes = strncmp(dirkey, it->prefix, it->plen) == 0 &&
	          strstr(dirkey + it->plen, it->delim) != NULL;
	free(dirkey);
	return yes;
}

/* 1 when some object file exists at or below directory rel (depth
 * first, stopping at the first one). */
static int has_object_below(int rootfd, const char *rel, int depth)
{
	if (depth > KEY_LIMIT + 1)
		return 0;
	int dfd = openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	int found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL) {
		char t = de->d_name[0];
		if (t == 'f' || t == 'F') {
			found = 1;
		} else if (t == 'd' || t == 'D') {
			char *sub = join_path(rel, de->d_name);
			found = sub && has_object_below(rootfd, sub, depth + 1);
			free(sub);
		}
	}
	closedir(d);
	return found;
}

/* Moves to the first object at or after the current positions, descending
 * into directories and leaving exhausted ones.  Afterwards the top frame's
 * current entry is an object, or a rolled-up directory (at_dir, not
 * entered), or the stack is empty (end, or an error). */
static void it_settle(liter *it)
{
	it->at_dir = 0;
	while (it->depth > 0 && it->rc == S3DB_OK) {
		lframe *f = &it->st[it->depth - 1];
		if (f->pos >= f->n) {
			it_pop(it);
			if (it->depth > 0)
				it->st[it->depth - 1].pos++;
			continue;
		}
		if (f->e[f->pos].is_dir) {
			if (dir_is_rolled_up(it, f)) {
				it->at_dir = 1;
				return;
			}
			if (it_push(it) != 0)
				return;
			continue;
		}
		return;
	}
}

static int it_valid(const liter *it)
{
	return it->rc == S3DB_OK && it->depth > 0;
}

/* The current key, or at_dir the directory's key prefix with its '/'
 * (malloc'd). */
static char *it_key(const liter *it)
{
	const lframe *f = &it->st[it->depth - 1];
	return s3db_asprintf("%s%s", f->kprefix, f->e[f->pos].sort);
}

static void it_next(liter *it)
{
	it->st[it->depth - 1].pos++;
	it_settle(it);
}

static int qualifies(const char *name, const char *t, int mode)
{
	int c = strcmp(name, t);
	if (mode == SEEK_GE)
		return c >= 0;
	if (mode == SEEK_GT)
		return c > 0;
	return c > 0 && !starts_with(name, t);
}

/* Positions the walk at the first key k with: k >= bound (SEEK_GE),
 * k > bound (SEEK_GT), or k > bound and not starting with bound
 * (SEEK_PAST).  Reads only the directories along the bound's path. */
static void it_seek(liter *it, const char *bound, int mode)
{
	if (it_push(it) != 0)
		return;
	const char *t = bound;
	for (;;) {
		lframe *f = &it->st[it->depth - 1];
		size_t p;
		int descend = 0;
		for (p = 0; p < f->n; p++) {
			const lentry *e = &f->e[p];
			if (!e->is_dir) {
				if (qualifies(e->sort, t, mode))
					break;
				continue;
			}
			if (starts_with(t, e->sort)) {
				descend = 1;   /* the bound lies inside this directory */
				break;
			}
			if (starts_with(e->sort, t)) {
				if (mode == SEEK_PAST)
					continue;
				break;
			}
			if (strcmp(e->sort, t) > 0)
				break;
		}
		f->pos = p;
		if (!descend) {
			it_settle(it);
			return;
		}
		t += f->e[p].len;
		if (it_push(it) != 0)
			return;
	}
}

/* Skips every key that starts with cp; the walk is at a key (or an at_dir
 * directory) that does. */
static void it_skip_prefix(liter *it, const char *cp)
{
	size_t d = 0;
	const char *tail = cp;
	for (const char *p = cp; *p; p++)
		if (*p == '/') {
			d++;
			tail = p + 1;
		}
	if (!*tail) {
		/* cp is a whole directory (entered, or at_dir): leave it */
		while (it->depth > d)
			it_pop(it);
		it->st[it->depth - 1].pos++;
	} else {
		while (it->depth > d + 1)
			it_pop(it);
		lframe *f = &it->st[it->depth - 1];
		while (f->pos < f->n && starts_with(f->e[f->pos].sort, tail))
			f->pos++;
	}
	it_settle(it);
}

/* has_object_below for the at_dir directory of the walk. */
static int dir_has_object(const liter *it)
{
	const lframe *f = &it->st[it->depth - 1];
	char *rel = join_path(f->dpath, f->e[f->pos].disk);
	int yes = rel && has_object_below(it->fs->rootfd, rel, 0);
	free(rel);
	return yes;
}

static char *make_token(char type, const char *value)
{
	size_t n = strlen(value);
	char *t = malloc(2 * n + 3);
	if (!t)
		return NULL;
	t[0] = '1';
	t[1] = type;
	hex_encode((const unsigned char *)value, n, t + 2);
	return t;
}

/* Reads size, ETag and LastModified of the object at the walk's position
 * into e; returns 0, or -1 when it vanished or is not a complete object
 * for that key (then it is left out of the listing). */
static int entry_info(liter *it, const char *key, store_entry *e)
{
	const lframe *f = &it->st[it->depth - 1];
	char *rel = join_path(f->dpath, f->e[f->pos].disk);
	if (!rel)
		return -1;
	int fd = openat(it->fs->rootfd, rel, O_RDONLY | O_CLOEXEC);
	free(rel);
	if (fd < 0)
		return -1;
	obj_header h;
	int rc = -1;
	if (read_header(fd, key, &h, NULL) == S3DB_OK) {
		if (strcmp(h.key, key) == 0) {
			e->size = h.size;
			e->last_modified_ms = h.last_modified_ms;
			snprintf(e->etag, sizeof e->etag, "%s", h.etag);
			rc = 0;
		}
		obj_header_free(&h);
	}
	close(fd);
	return rc;
}

static s3db_code file_list(store *s, const store_list_opts *opts, store_list_page *out,
                           s3db_error *err)
{
	file_store *fs = (file_store *)s;
	stats_begin();
	memset(out, 0, sizeof *out);
	const char *prefix = opts && opts->prefix ? opts->prefix : "";
	const char *delim = opts && opts->delimiter && *opts->delimiter ? opts->delimiter : NULL;
	int max = opts && opts->max_keys > 0 ? opts->max_keys : STORE_LIST_PAGE_MAX;
	if (opts && opts->max_keys < 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "file store: list '%s': max_keys %d is negative", prefix,
		                      opts->max_keys);
	if (max > STORE_LIST_PAGE_MAX)
		max = STORE_LIST_PAGE_MAX;

	/* where to start: the token, else start-after, never before prefix */
	char *token_value = NULL;
	const char *bound = prefix;
	int mode = SEEK_GE;
	if (opts && opts->continuation && *opts->continuation) {
		const char *t = opts->continuation;
		if (t[0] != '1' || (t[1] != 'k' && t[1] != 'p') ||
		    !(token_value = hex_decode(t + 2, strlen(t + 2))))
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "file store: list '%s': invalid continuation token",
			                      prefix);
		int past = t[1] == 'p';
		if (past ? (strcmp(token_value, prefix) >= 0 || starts_with(prefix, token_value))
		         : strcmp(token_value, prefix) >= 0) {
			bound = token_value;
			mode = past ? SEEK_PAST : SEEK_GT;
		}
	} else if (opts && opts->start_after && strcmp(opts->start_after, prefix) >= 0) {
		bound = opts->start_after;
		mode = SEEK_GT;
	}

	size_t plen = strlen(prefix);
	liter it = { .fs = fs, .prefix = prefix, .plen = plen, .delim = delim, .rc = S3DB_OK,
	             .err = err };
	it_seek(&it, bound, mode);
	size_t ecap = 0, pcap = 0;
	int emitted = 0;
	char *last = NULL;
	char last_type = 'k';
	while (it_valid(&it)) {
		char *key = it_key(&it);
		if (!key) {
			it.rc = nomem(err, "list", prefix);
			break;
		}
		if (strncmp(key, prefix, plen) != 0) {
			free(key);
			break;   /* past the prefix: keys are in order */
		}
		const char *d = delim ? strstr(key + plen, delim) : NULL;
		if (d) {
			if (it.at_dir && !dir_has_object(&it)) {
				free(key);   /* nothing (left) inside: no prefix */
				it_next(&it);
				continue;
			}
			if (emitted == max) {
				out->truncated = 1;
				free(key);
				break;
			}
			key[(size_t)(d - key) + strlen(delim)] = '\0';
			char **p = s3db_array_room(out->common_prefixes, &pcap, out->prefix_count,
			                           sizeof *p, 16);
			if (!p) {
				free(key);
				it.rc = nomem(err, "list", prefix);
				break;
			}
			out->common_prefixes = p;
			out->common_prefixes[out->prefix_count++] = key;
			emitted++;
			last = key;
			last_type = 'p';
			it_skip_prefix(&it, key);
			continue;
		}
		store_entry e = { .key = key };
		if (entry_info(&it, key, &e) != 0) {
			free(key);   /* deleted meanwhile */
			it_next(&it);
			continue;
		}
		if (emitted == max) {
			out->truncated = 1;
			free(key);
			break;
		}
		store_entry *p = s3db_array_room(out->entries, &ecap, out->count, sizeof *p, 64);
		if (!p) {
			free(key);
			it.rc = nomem(err, "list", prefix);
			break;
		}
		out->entries = p;
		out->entries[out->count++] = e;
		emitted++;
		last = key;
		last_type = 'k';
		it_next(&it);
	}
	s3db_code rc = it.rc;
	it_free(&it);
	if (rc == S3DB_OK && out->truncated && !(out->next_token = make_token(last_type, last)))
		rc = nomem(err, "list", prefix);
	free(token_value);
	if (rc != S3DB_OK)
		store_list_page_free(out);
	return rc;
}

/* ---- open / close ---------------------------------------------------------- */

static void file_destroy(store *s)
{
	file_store *fs = (file_store *)s;
	if (fs->rootfd >= 0)
		close(fs->rootfd);
	free(fs->root);
	free(fs);
}

static const store_ops file_ops = {
	.name = "file",
	.put = file_put,
	.get = file_get,
	.head = file_head,
	.del = file_del,
	.del_many = file_del_many,
	.list = file_list,
	.copy = file_copy,
	.destroy = file_destroy,
};

/* mkdir -p for an absolute or relative path; 0 or -1 with errno. */
static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -1;
	size_t n = strlen(p);
	for (size_t i = 1; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			int e = errno;
			free(p);
			errno = e;
			return -1;
		}
		p[i] = c;
	}
	free(p);
	return 0;
}

/* Checks (or, in a new directory, writes) the layout marker. */
static s3db_code check_layout(file_store *fs, s3db_error *err)
{
	if (mkdirat(fs->rootfd, ".s3dbfs", 0755) != 0 && errno != EEXIST)
		return s3db_error_set(err, S3DB_ERR_IO, "file store: %s/.s3dbfs: %s", fs->root,
		                      strerror(errno));
	int fd = openat(fs->rootfd, LAYOUT_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		char tmp[64];
		snprintf(tmp, sizeof tmp, ".s3dbfs/.layout-%ld", (long)getpid());
		int w = openat(fs->rootfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (w < 0 || write_all(w, LAYOUT_TEXT, strlen(LAYOUT_TEXT)) != 0 || fsync(w) != 0 ||
		    renameat(fs->rootfd, tmp, fs->rootfd, LAYOUT_FILE) != 0) {
			int e = errno;
			if (w >= 0)
				close(w);
			unlinkat(fs->rootfd, tmp, 0);
			return s3db_error_set(err, S3DB_ERR_IO, "file store: %s/%s: %s", fs->root,
			                      LAYOUT_FILE, strerror(e));
		}
		close(w);
		fsync_dir(fs, ".s3dbfs");
		return S3DB_OK;
	}
	if (fd < 0)
		return s3db_error_set(err, S3DB_ERR_IO, "file store: %s/%s: %s", fs->root,
		                      LAYOUT_FILE, strerror(errno));
	char buf[64];
	ssize_t n = pread_full(fd, buf, sizeof buf - 1, 0);
	close(fd);
	if (n < 0)
		return s3db_error_set(err, S3DB_ERR_IO, "file store: %s/%s: %s", fs->root,
		                      LAYOUT_FILE, strerror(errno));
	buf[n] = '\0';
	if (strcmp(buf, LAYOUT_TEXT) != 0)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "file store: %s: unknown layout version in %s", fs->root,
		                      LAYOUT_FILE);
	return S3DB_OK;
}

/* Opens (creating it if missing) the store rooted at `root`, a path or a
 * file:// URL.  *out owns the store (store_close it).  The environment
 * variable S3DB_FILE_NOSYNC=1 turns fsync off for tests and benchmarks on
 * throwaway directories: writes stay atomic, but a power cut may lose
 * recent ones. */
s3db_code store_file_open(const char *root, store **out, s3db_error *err)
{
	*out = NULL;
	if (root && strncmp(root, "file://", 7) == 0)
		root += 7;
	if (!root || !*root)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "file store: empty root directory");
	file_store *fs = calloc(1, sizeof *fs);
	if (!fs || !(fs->root = strdup(root))) {
		free(fs);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "file store: out of memory");
	}
	fs->base.ops = &file_ops;
	fs->rootfd = -1;
	const char *nosync = getenv("S3DB_FILE_NOSYNC");
	fs->sync = !(nosync && *nosync && strcmp(nosync, "0") != 0);
	if (mkdir_p(root) != 0) {
		s3db_code rc = s3db_error_set(err, S3DB_ERR_IO, "file store: mkdir %s: %s", root,
		                              strerror(errno));
		file_destroy(&fs->base);
		return rc;
	}
	fs->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->rootfd < 0) {
		s3db_code rc = s3db_error_set(err, S3DB_ERR_IO, "file store: open %s: %s", root,
		                              strerror(errno));
		file_destroy(&fs->base);
		return rc;
	}
	s3db_code rc = check_layout(fs, err);
	if (rc != S3DB_OK) {
		file_destroy(&fs->base);
		return rc;
	}
	*out = &fs->base;
	return S3DB_OK;
}
