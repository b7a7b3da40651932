/*
 * vfs_cache.c — record cache, listings, negative entries and the
 * persistent cache of the file tree (see vfs_cache.h for the design).
 *
 * Invariants:
 *  - c->bytes is the sum over entries of len + sizeof(vcache_rec) +
 *    strlen(key): what eviction measures;
 *  - every entry of c->recs is on the LRU list exactly once;
 *  - listings' names are sorted (strcmp) and unique.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "vfs_cache.h"

/* ---- records ------------------------------------------------------------- */

void vcache_init(vcache *c, size_t max_bytes)
{
	memset(c, 0, sizeof *c);
	vmap_init(&c->recs);
	vmap_init(&c->dirs);
	vmap_init(&c->negs);
	c->max_bytes = max_bytes;
	c->next_gen = 1;
}

static size_t rec_cost(const vcache_rec *r)
{
	return r->len + sizeof *r + strlen(r->key);
}

static void rec_free(vcache_rec *r)
{
	free(r->key);
	free(r->text);
	free(r);
}

static int free_dir_cb(void *ud, const char *key, void *value)
{
	vcache_dir *d = value;
	strv_free(&d->names);
	free(d);
	return 0;
}

static int free_value_cb(void *ud, const char *key, void *value)
{
	free(value);
	return 0;
}

void vcache_free(vcache *c)
{
	vcache_rec *r = c->head;
	while (r) {
		vcache_rec *next = r->next;
		rec_free(r);
		r = next;
	}
	vmap_free(&c->recs);
	vmap_each(&c->dirs, free_dir_cb, NULL);
	vmap_free(&c->dirs);
	vmap_each(&c->negs, free_value_cb, NULL);
	vmap_free(&c->negs);
	memset(c, 0, sizeof *c);
}

char *vcache_key(const char *res, const char *id)
{
	return s3db_asprintf("%s/%s", res, id);
}

static void lru_unlink(vcache *c, vcache_rec *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		c->tail = r->prev;
	r->prev = r->next = NULL;
}

static void lru_push_front(vcache *c, vcache_rec *r)
{
	r->prev = NULL;
	r->next = c->head;
	if (c->head)
		c->head->prev = r;
	c->head = r;
	if (!c->tail)
		c->tail = r;
}

vcache_rec *vcache_get(vcache *c, const char *key)
{
	vcache_rec *r = vmap_get(&c->recs, key);
	if (r && r != c->head) {
		lru_unlink(c, r);
		lru_push_front(c, r);
	}
	return r;
}

static void remove_rec(vcache *c, vcache_rec *r)
{
	vmap_del(&c->recs, r->key);
	lru_unlink(c, r);
	c->bytes -= rec_cost(r);
	rec_free(r);
}

/* Evicts from the tail until the cache fits, sparing `keep`. */
static void evict(vcache *c, const vcache_rec *keep)
{
	while (c->max_bytes && c->bytes > c->max_bytes && c->tail && c->tail != keep) {
		remove_rec(c, c->tail);
		c->evictions++;
	}
}

vcache_rec *vcache_put(vcache *c, const char *key, char *text, size_t len,
                       const record_meta *meta, int64_t mtime_ms, double validated_ms,
                       int64_t read_wall_ms, const void *rendered_with)
{
	vcache_rec *r = vmap_get(&c->recs, key);
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r || !(r->key = strdup(key)) || vmap_put(&c->recs, key, r, NULL)) {
			if (r)
				free(r->key);
			free(r);
			free(text);
			return NULL;
		}
		lru_push_front(c, r);
		r->gen = c->next_gen++;
	} else {
		c->bytes -= rec_cost(r);
		if (r->len != len || memcmp(r->text, text, len) != 0)
			r->gen = c->next_gen++;
		free(r->text);
		if (r != c->head) {
			lru_unlink(c, r);
			lru_push_front(c, r);
		}
	}
	r->text = text;
	r->len = len;
	if (meta)
		r->meta = *meta;
	else
		memset(&r->meta, 0, sizeof r->meta);
	r->mtime_ms = mtime_ms;
	r->validated_ms = validated_ms;
	r->read_wall_ms = read_wall_ms;
	r->schema = rendered_with;
	r->list_changed = 0;
	c->bytes += rec_cost(r);
	vcache_neg *n = vmap_get(&c->negs, key);
	if (n) {
		if (n->epoch > r->epoch)
			r->epoch = n->epoch;
		free(vmap_del(&c->negs, key));
	}
	evict(c, r);
	return r;
}

void vcache_del(vcache *c, const char *key)
{
	vcache_rec *r = vmap_get(&c->recs, key);
	if (r)
		remove_rec(c, r);
}

typedef struct prefix_walk {
	const char *prefix;
	size_t plen;
	strv keys;
} prefix_walk;

static int collect_prefixed(void *ud, const char *key, void *value)
{
	prefix_walk *w = ud;
	if (!strncmp(key, w->prefix, w->plen))
		strv_push(&w->keys, key);
	return 0;
}

void vcache_drop_listings(vcache *c, const char *prefix)
{
	prefix_walk w = { .prefix = prefix, .plen = strlen(prefix) };
	strv_init(&w.keys);
	vmap_each(&c->dirs, collect_prefixed, &w);
	for (size_t i = 0; i < w.keys.count; i++)
		vcache_dir_del(c, w.keys.items[i]);
	strv_free(&w.keys);
}

void vcache_drop_prefix(vcache *c, const char *prefix)
{
	prefix_walk w = { .prefix = prefix, .plen = strlen(prefix) };
	strv_init(&w.keys);
	vmap_each(&c->recs, collect_prefixed, &w);
	for (size_t i = 0; i < w.keys.count; i++)
		vcache_del(c, w.keys.items[i]);
	strv_free(&w.keys);
	vcache_drop_listings(c, prefix);
}

uint64_t vcache_new_epoch(vcache *c)
{
	return ++c->epoch;
}

int vcache_changed_since(vcache *c, const char *key, uint64_t since)
{
	vcache_rec *r = vmap_get(&c->recs, key);
	if (r && r->epoch > since)
		return 1;
	vcache_neg *n = vmap_get(&c->negs, key);
	return n && n->epoch > since;
}

int vcache_validators_match(const vcache_rec *r, const char *etag, int64_t size,
                            int64_t last_modified_ms)
{
	if (!r->meta.etag[0] || !etag || strcmp(r->meta.etag, etag) != 0)
		return 0;
	if (r->meta.size != size)
		return 0;
	int64_t mine = r->meta.last_modified_ms / 1000, theirs = last_modified_ms / 1000;
	if (mine != theirs)
		return 0;
	/* racy: read within the LastModified second (+1 s of skew) */
	return r->read_wall_ms >= (theirs + 2) * 1000;
}

int vcache_validators_differ(const vcache_rec *r, const char *etag, int64_t size,
                             int64_t last_modified_ms)
{
	if (!r->meta.etag[0])
		return 0;
	return !etag || strcmp(r->meta.etag, etag) != 0 || r->meta.size != size ||
	       r->meta.last_modified_ms / 1000 != last_modified_ms / 1000;
}

/* ---- listings -------------------------------------------------------------- */

vcache_dir *vcache_dir_get(vcache *c, const char *key)
{
	return vmap_get(&c->dirs, key);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vcache_dir_put(vcache *c, const char *key, strv *names, double started_ms, double listed_ms)
{
	vcache_dir *d = vmap_get(&c->dirs, key);
	int fresh = !d;
	if (fresh && !(d = calloc(1, sizeof *d))) {
		strv_free(names);
		return -1;
	}
	if (!fresh)
		strv_free(&d->names);
	d->names = *names;
	strv_init(names);
	if (d->names.count > 1)
		qsort(d->names.items, d->names.count, sizeof(char *), cmp_str);
	/* unique */
	size_t w = 0;
	for (size_t r = 0; r < d->names.count; r++) {
		if (w && !strcmp(d->names.items[w - 1], d->names.items[r])) {
			free(d->names.items[r]);
			continue;
		}
		d->names.items[w++] = d->names.items[r];
	}
	d->names.count = w;
	if (d->names.items)
		d->names.items[w] = NULL;
	d->listed_ms = listed_ms;
	d->started_ms = started_ms;
	d->listed_count = w;
	d->names_only = 0;
	d->heads = 0;
	d->quiet = 0;
	if (fresh && vmap_put(&c->dirs, key, d, NULL)) {
		strv_free(&d->names);
		free(d);
		return -1;
	}
	return 0;
}

void vcache_dir_del(vcache *c, const char *key)
{
	vcache_dir *d = vmap_del(&c->dirs, key);
	if (d)
		free_dir_cb(NULL, key, d);
}

/* Index of name, or of where it would go (*found says which). */
static size_t dir_search(const vcache_dir *d, const char *name, int *found)
{
	size_t lo = 0, hi = d->names.count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(d->names.items[mid], name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

int vcache_dir_has(const vcache_dir *d, const char *name)
{
	int found;
	dir_search(d, name, &found);
	return found;
}

void vcache_dir_add(vcache_dir *d, const char *name)
{
	int found;
	size_t at = dir_search(d, name, &found);
	if (found || strv_push(&d->names, name))
		return;
	char *s = d->names.items[d->names.count - 1];
	memmove(d->names.items + at + 1, d->names.items + at,
	        (d->names.count - 1 - at) * sizeof(char *));
	d->names.items[at] = s;
}

void vcache_dir_remove(vcache_dir *d, const char *name)
{
	int found;
	size_t at = dir_search(d, name, &found);
	if (!found)
		return;
	free(d->names.items[at]);
	memmove(d->names.items + at, d->names.items + at + 1,
	        (d->names.count - at - 1) * sizeof(char *));
	d->names.count--;
	d->names.items[d->names.count] = NULL;
}

/* ---- negative entries -------------------------------------------------------- */

void vcache_neg_put(vcache *c, const char *key, double until_ms, uint64_t epoch)
{
	vcache_neg *n = vmap_get(&c->negs, key);
	if (!n) {
		n = calloc(1, sizeof *n);
		if (!n || vmap_put(&c->negs, key, n, NULL)) {
			free(n);
			return;
		}
	}
	vcache_rec *r = vmap_get(&c->recs, key);
	if (r && r->epoch > epoch)
		epoch = r->epoch;
	n->until_ms = until_ms;
	if (epoch > n->epoch)
		n->epoch = epoch;
	vcache_del(c, key);
	vcache_neg_purge(c, s3db_monotonic_ms());
}

typedef struct neg_purge {
	double before;
	strv old;
} neg_purge;

static int collect_old_neg(void *ud, const char *key, void *value)
{
	neg_purge *w = ud;
	if (((vcache_neg *)value)->until_ms < w->before)
		strv_push(&w->old, key);
	return 0;
}

void vcache_neg_purge(vcache *c, double now_ms)
{
	if (c->negs.count < VCACHE_NEG_PURGE_AT)
		return;
	neg_purge w = { .before = now_ms - VCACHE_NEG_GRACE_MS };
	strv_init(&w.old);
	vmap_each(&c->negs, collect_old_neg, &w);
	for (size_t i = 0; i < w.old.count; i++)
		free(vmap_del(&c->negs, w.old.items[i]));
	strv_free(&w.old);
}

int vcache_neg_valid(vcache *c, const char *key, double now_ms)
{
	vcache_neg *n = vmap_get(&c->negs, key);
	return n && now_ms < n->until_ms;
}

void vcache_neg_del(vcache *c, const char *key)
{
	vcache_neg *n = vmap_get(&c->negs, key);
	if (n)
		n->until_ms = 0; /* keep the epoch: it still guards fetches */
}

/* ---- persistent cache -------------------------------------------------------- */

#define DISK_MAGIC "s3dbfs-cache 1\n"
#define DISK_MAX_FILE (64u << 20)

/* mkdir -p with mode 0700 for every component it creates; 0 or -errno. */
static int mkdirs(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			free(p);
			return -e;
		}
		*s = '/';
	}
	int rc = mkdir(p, 0700) != 0 && errno != EEXIST ? -errno : 0;
	free(p);
	return rc;
}

s3db_code vcache_disk_open(vcache_disk *d, const char *cache_dir, const char *database_id,
                           s3db_error *err)
{
	d->dir = s3db_asprintf("%s/%s", cache_dir, database_id);
	if (!d->dir)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	int rc = mkdirs(d->dir);
	if (rc) {
		s3db_error_set(err, S3DB_ERR_IO, "cache directory %s: %s", d->dir, strerror(-rc));
		free(d->dir);
		d->dir = NULL;
		return S3DB_ERR_IO;
	}
	return S3DB_OK;
}

void vcache_disk_close(vcache_disk *d)
{
	free(d->dir);
	d->dir = NULL;
}

/* <dir>/<2 hex>/<62 hex> of SHA-256("res\0id"); *subdir the directory.
 * malloc'd. */
static char *disk_path(const vcache_disk *d, const char *res, const char *id, char **subdir)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return NULL;
	int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(ctx, res, strlen(res) + 1) == 1 &&
	         EVP_DigestUpdate(ctx, id, strlen(id)) == 1 &&
	         EVP_DigestFinal_ex(ctx, md, &n) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || n != 32)
		return NULL;
	char hex[65];
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (subdir)
		*subdir = s3db_asprintf("%s/%.2s", d->dir, hex);
	return s3db_asprintf("%s/%.2s/%s", d->dir, hex, hex + 2);
}

void vcache_disk_rec_free(vcache_disk_rec *r)
{
	free(r->text);
	r->text = NULL;
	r->len = 0;
}

static char *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) == 0 && st.st_size >= 0 && (size_t)st.st_size <= DISK_MAX_FILE &&
	    (buf = malloc((size_t)st.st_size + 1)) != NULL) {
		size_t done = 0;
		while (done < (size_t)st.st_size) {
			ssize_t r = read(fd, buf + done, (size_t)st.st_size - done);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			done += (size_t)r;
		}
		buf[done] = '\0';
		*len = done;
	}
	close(fd);
	return buf;
}

static int64_t get_i64(json_object *o, const char *k)
{
	json_object *v = NULL;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

int vcache_disk_load(const vcache_disk *d, const char *res, const char *id,
                     vcache_disk_rec *out)
{
	memset(out, 0, sizeof *out);
	if (!d->dir)
		return -1;
	char *path = disk_path(d, res, id, NULL);
	size_t len = 0;
	char *buf = path ? read_all(path, &len) : NULL;
	if (!buf) {
		free(path);
		return -1;
	}
	int ok = 0;
	json_object *h = NULL;
	size_t ml = strlen(DISK_MAGIC);
	char *nl = len > ml && !memcmp(buf, DISK_MAGIC, ml) ? memchr(buf + ml, '\n', len - ml) : NULL;
	if (nl && s3db_json_parse(buf + ml, (size_t)(nl - buf - (ptrdiff_t)ml), &h, NULL) == S3DB_OK &&
	    json_object_is_type(h, json_type_object)) {
		const char *hres = s3db_json_get_string(h, "resource");
		const char *hid = s3db_json_get_string(h, "id");
		int64_t tlen = get_i64(h, "length");
		size_t body = len - (size_t)(nl + 1 - buf);
		if (hres && hid && !strcmp(hres, res) && !strcmp(hid, id) && tlen >= 0 &&
		    (size_t)tlen == body) {
			copy_str(out->meta.etag, sizeof out->meta.etag, s3db_json_get_string(h, "etag"));
			out->meta.last_modified_ms = get_i64(h, "lastModified");
			out->meta.size = get_i64(h, "size");
			json_object *hc = NULL;
			out->meta.has_content = json_object_object_get_ex(h, "hasContent", &hc) &&
			                        json_object_get_boolean(hc);
			copy_str(out->meta.content_type, sizeof out->meta.content_type,
			         s3db_json_get_string(h, "contentType"));
			out->mtime_ms = get_i64(h, "mtime");
			out->read_wall_ms = get_i64(h, "read");
			copy_str(out->schema_hash, sizeof out->schema_hash, s3db_json_get_string(h, "schema"));
			copy_str(out->version, sizeof out->version, s3db_json_get_string(h, "version"));
			out->text = s3db_strndup(nl + 1, body);
			out->len = body;
			ok = out->text != NULL;
		}
	}
	json_object_put(h);
	free(buf);
	if (!ok)
		unlink(path); /* torn or foreign: drop it */
	free(path);
	return ok ? 0 : -1;
}

static atomic_uint disk_tmp_counter;

int vcache_disk_store(const vcache_disk *d, const char *res, const char *id,
                      const vcache_disk_rec *rec)
{
	if (!d->dir)
		return 0;
	char *subdir = NULL;
	char *path = disk_path(d, res, id, &subdir);
	if (!path || !subdir) {
		free(path);
		free(subdir);
		return -ENOMEM;
	}
	json_object *h = json_object_new_object();
	json_object_object_add(h, "resource", json_object_new_string(res));
	json_object_object_add(h, "id", json_object_new_string(id));
	json_object_object_add(h, "etag", json_object_new_string(rec->meta.etag));
	json_object_object_add(h, "lastModified", json_object_new_int64(rec->meta.last_modified_ms));
	json_object_object_add(h, "size", json_object_new_int64(rec->meta.size));
	json_object_object_add(h, "hasContent", json_object_new_boolean(rec->meta.has_content));
	json_object_object_add(h, "contentType", json_object_new_string(rec->meta.content_type));
	json_object_object_add(h, "mtime", json_object_new_int64(rec->mtime_ms));
	json_object_object_add(h, "read", json_object_new_int64(rec->read_wall_ms));
	json_object_object_add(h, "schema", json_object_new_string(rec->schema_hash));
	json_object_object_add(h, "version", json_object_new_string(rec->version));
	json_object_object_add(h, "length", json_object_new_int64((int64_t)rec->len));
	char *header = s3db_json_stringify(h, 0);
	json_object_put(h);
	char *tmp = s3db_asprintf("%s.tmp.%ld.%u", path, (long)getpid(),
	                          atomic_fetch_add(&disk_tmp_counter, 1));
	int rc = 0;
	if (!header || !tmp) {
		rc = -ENOMEM;
		goto out;
	}
	rc = mkdirs(subdir);
	if (rc)
		goto out;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	sbuf b;
	sbuf_init(&b);
	sbuf_puts(&b, DISK_MAGIC);
	sbuf_puts(&b, header);
	sbuf_putc(&b, '\n');
	sbuf_append(&b, rec->text, rec->len);
	if (b.oom) {
		rc = -ENOMEM;
	} else {
		size_t done = 0;
		while (done < b.len) {
			ssize_t w = write(fd, b.data + done, b.len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = -errno;
				break;
			}
			done += (size_t)w;
		}
	}
	sbuf_free(&b);
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
out:
	free(header);
	free(tmp);
	free(path);
	free(subdir);
	return rc;
}

void vcache_disk_remove(const vcache_disk *d, const char *res, const char *id)
{
	if (!d->dir)
		return;
	char *path = disk_path(d, res, id, NULL);
	if (path)
		unlink(path);
	free(path);
}
