/*
 * t_vfs.c — the file tree (src/vfs*.c) driven as the FUSE layer drives
 * it: lookups (getattr), readdir, open/create, read/write, flush,
 * release, truncate, rename, unlink, mkdir/rmdir, xattrs — on the local
 * backend and on S3 through the strict front (one body, two cases:
 * file__name and s3__name).
 *
 * Every case opens two database handles on one fresh bucket prefix: the
 * tree's, and `other`, which plays a second client (another process,
 * another mount).  Requests of the tree are counted with a request
 * observer (vfs_add_request_observer), so the request costs the design
 * promises — warm listings and reads cost nothing, a revalidation is one
 * HEAD, a remount with a persistent cache lists and nothing more — are
 * checked, not assumed.  Where the racy-LastModified rule of
 * vfs_cache.h matters (an entry read within two seconds of its object's
 * LastModified is never confirmed by validators), the case waits those
 * two seconds after writing its records.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "db.h"
#include "log.h"
#include "vfs.h"

/* ---- context ---------------------------------------------------------------- */

typedef struct tctx {
	int is_file;
	char *connstr;
	char *tmp;                /* private directory (cache_dir, ...)     */
	s3db *db;                 /* the tree's database                    */
	s3db *other;              /* a second client of the same bucket     */
	vfs *v;
	vfs_options o;
	atomic_uint_fast64_t req[S3DB_CMD__COUNT];
	pthread_mutex_t mu;
	strv list_prefixes;       /* prefixes of the tree's LIST requests    */
} tctx;

static void observe(void *ud, const s3db_request_info *info)
{
	tctx *c = ud;
	atomic_fetch_add(&c->req[info->command], 1);
	if (info->command == S3DB_CMD_LIST_OBJECTS_V2) {
		pthread_mutex_lock(&c->mu);
		strv_push(&c->list_prefixes, info->key ? info->key : "");
		pthread_mutex_unlock(&c->mu);
	}
}

static void reset(tctx *c)
{
	for (int i = 0; i < S3DB_CMD__COUNT; i++)
		atomic_store(&c->req[i], 0);
	pthread_mutex_lock(&c->mu);
	strv_free(&c->list_prefixes);
	strv_init(&c->list_prefixes);
	pthread_mutex_unlock(&c->mu);
}

static uint64_t nreq(tctx *c, s3db_command cmd)
{
	return atomic_load(&c->req[cmd]);
}

static uint64_t total(tctx *c)
{
	uint64_t t = 0;
	for (int i = 0; i < S3DB_CMD__COUNT; i++)
		t += atomic_load(&c->req[i]);
	return t;
}

/* "PutObject=2 HeadObject=1" for failure messages (static buffer). */
static const char *counts(tctx *c)
{
	static char buf[256];
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; i < S3DB_CMD__COUNT; i++)
		if (atomic_load(&c->req[i]))
			n += (size_t)snprintf(buf + n, sizeof buf - n, "%s=%lu ",
			                      s3db_command_name((s3db_command)i),
			                      (unsigned long)atomic_load(&c->req[i]));
	return buf;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void ctx_open(tctx *c, const char *backend, const char *name)
{
	memset(c, 0, sizeof *c);
	pthread_mutex_init(&c->mu, NULL);
	strv_init(&c->list_prefixes);
	log_set_level(LOG_LVL_ERROR);
	c->is_file = !strcmp(backend, "file");
	c->connstr = c->is_file ? testlib_file_connstr() : testlib_s3_connstr(testlib_unique_prefix(name));
	ATF_REQUIRE(c->connstr != NULL);
	const char *tmp = getenv("TMPDIR");
	c->tmp = s3db_asprintf("%s/t_vfs.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ATF_REQUIRE(c->tmp && mkdtemp(c->tmp));
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_open(c->connstr, NULL, &c->db, &err), &err);
	CHECK_OK(s3db_open(c->connstr, NULL, &c->other, &err), &err);
	vfs_options_default(&c->o);
	c->o.record_ttl = 60;
	c->o.dir_ttl = 60;
	c->o.negative_ttl = 60;
}

/* Opens the tree with c->o and starts counting its requests. */
static void tree_open(tctx *c)
{
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(vfs_open(c->db, &c->o, &c->v, &err), &err);
	ATF_REQUIRE(vfs_add_request_observer(c->v, observe, c) > 0);
	reset(c);
}

static void tree_close(tctx *c)
{
	if (c->v)
		vfs_close(c->v);
	c->v = NULL;
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *sub = s3db_asprintf("%s/%s", path, de->d_name);
			if (sub)
				rm_tree(sub);
			free(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int collect_key(void *ud, const store_entry *e)
{
	return strv_push((strv *)ud, e->key) != 0;
}

/* Every key of the database, raw (the store under the tree). */
static void raw_keys(tctx *c, strv *keys)
{
	strv_init(keys);
	s3db_error err;
	s3db_error_clear(&err);
	const char *prefix = c->other->conn.prefix && *c->other->conn.prefix ? c->other->conn.prefix : "";
	char *p = *prefix ? s3db_asprintf("%s/", prefix) : strdup("");
	CHECK_OK(store_list_all(c->other->store, p, collect_key, keys, &err), &err);
	free(p);
}

static void ctx_close(tctx *c)
{
	tree_close(c);
	if (!c->is_file && c->other) {
		strv keys;
		raw_keys(c, &keys);
		s3db_error err;
		if (keys.count)
			store_delete_many(c->other->store, (const char *const *)keys.items, keys.count, &err);
		strv_free(&keys);
	}
	s3db_close(c->db);
	s3db_close(c->other);
	rm_tree(c->tmp);
	free(c->tmp);
	free(c->connstr);
	strv_free(&c->list_prefixes);
	pthread_mutex_destroy(&c->mu);
}

typedef void (*case_fn)(tctx *c);

static void run_case(const char *backend, const char *name, case_fn fn)
{
	tctx c;
	ctx_open(&c, backend, name);
	fn(&c);
	ctx_close(&c);
}

/* One body, two test cases: file__name and s3__name. */
#define VFS_CASE(name)                                                         \
	static void case_##name(tctx *c);                                        \
	ATF_TC_WITHOUT_HEAD(file__##name);                                       \
	ATF_TC_BODY(file__##name, tc) { run_case("file", #name, case_##name); }  \
	ATF_TC_WITHOUT_HEAD(s3__##name);                                         \
	ATF_TC_BODY(s3__##name, tc) { run_case("s3", #name, case_##name); }      \
	static void case_##name(tctx *c)

#define ADD_CASE(tp, name)                                                     \
	do {                                                                     \
		ATF_TP_ADD_TC(tp, file__##name);                                     \
		ATF_TP_ADD_TC(tp, s3__##name);                                       \
	} while (0)

/* ---- the database, as the second client sees it --------------------------------- */

static json_object *parse(const char *text)
{
	json_object *o = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_json_parse(text, strlen(text), &o, &err), &err);
	return o;
}

/* Defines a resource through the tree's handle (the other one reloads). */
static void define(tctx *c, const char *res, const char *def)
{
	json_object *d = parse(def);
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_resource_define(c->db, res, d, NULL, &err), &err);
	json_object_put(d);
	CHECK_OK(s3db_reload(c->other, &err), &err);
}

static void insert(tctx *c, const char *res, const char *rec)
{
	json_object *o = parse(rec);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_resource *r = s3db_resource_find(c->other, res);
	ATF_REQUIRE_MSG(r, "no resource %s", res);
	CHECK_OK(s3db_insert(r, o, NULL, NULL, &err), &err);
	json_object_put(o);
}

/* The record as the other client reads it; NULL when absent. */
static json_object *get_rec(tctx *c, const char *res, const char *id)
{
	s3db_resource *r = s3db_resource_find(c->other, res);
	if (!r) {
		s3db_error err;
		s3db_reload(c->other, &err);
		r = s3db_resource_find(c->other, res);
	}
	ATF_REQUIRE_MSG(r, "no resource %s", res);
	json_object *o = NULL;
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code rc = s3db_get(r, id, NULL, &o, &err);
	if (rc == S3DB_ERR_NOT_FOUND)
		return NULL;
	CHECK_OK(rc, &err);
	return o;
}

/* 1 when the other client finds the record. */
static int rec_exists(tctx *c, const char *res, const char *id)
{
	json_object *o = get_rec(c, res, id);
	json_object_put(o);
	return o != NULL;
}

/* The text <id>.json must show: JSON.stringify(get(), null, 2) + "\n". */
static char *rendered(tctx *c, const char *res, const char *id)
{
	json_object *o = get_rec(c, res, id);
	ATF_REQUIRE_MSG(o, "%s/%s is not in the database", res, id);
	char *s = s3db_json_stringify(o, 2);
	json_object_put(o);
	char *t = s3db_asprintf("%s\n", s);
	free(s);
	return t;
}

static const char *field(json_object *o, const char *k)
{
	return s3db_json_get_string(o, k);
}

/* ---- the tree, as FUSE drives it ---------------------------------------------- */

static int t_stat(tctx *c, const char *path, struct stat *st)
{
	return vfs_getattr(c->v, path, st, NULL);
}

/* cat: open, read to the end, release.  0 or -errno. */
static int t_read(tctx *c, const char *path, char **out, size_t *len)
{
	uint64_t fh = 0;
	int keep = 0;
	*out = NULL;
	int rc = vfs_open_file(c->v, path, O_RDONLY, &fh, &keep, NULL);
	if (rc)
		return rc;
	sbuf b;
	sbuf_init(&b);
	char buf[4096];
	off_t off = 0;
	for (;;) {
		int n = vfs_read(c->v, fh, buf, sizeof buf, off);
		if (n < 0) {
			rc = n;
			break;
		}
		if (n == 0)
			break;
		sbuf_append(&b, buf, (size_t)n);
		off += n;
	}
	vfs_release(c->v, fh, NULL);
	if (len)
		*len = b.len;
	if (!b.data)
		sbuf_puts(&b, "");
	*out = sbuf_steal(&b);
	return rc;
}

/* The whole content of path; fails the test when it cannot be read. */
static char *cat(tctx *c, const char *path)
{
	char *s = NULL;
	int rc = t_read(c, path, &s, NULL);
	ATF_REQUIRE_MSG(rc == 0, "cat %s: %s", path, strerror(-rc));
	return s;
}

/* Opens as the kernel would for open(2) with flags: a lookup, then
 * create when O_CREAT and the name is missing, else open. */
static int t_open(tctx *c, const char *path, int flags, uint64_t *fh)
{
	struct stat st;
	if ((flags & O_CREAT) && t_stat(c, path, &st) == -ENOENT)
		return vfs_create(c->v, path, 0644, flags, fh, NULL);
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	return vfs_open_file(c->v, path, flags & ~O_CREAT, fh, NULL, NULL);
}

/* open + write(text) + close: the result close(2) returns (flush). */
static int t_write(tctx *c, const char *path, const char *text, int flags)
{
	uint64_t fh = 0;
	int rc = t_open(c, path, flags, &fh);
	if (rc)
		return rc;
	size_t len = strlen(text);
	int n = len ? vfs_write(c->v, fh, text, len, 0) : 0;
	if (n < 0) {
		vfs_release(c->v, fh, NULL);
		return n;
	}
	ATF_REQUIRE_EQ((size_t)n, len);
	rc = vfs_flush(c->v, fh, NULL);
	vfs_release(c->v, fh, NULL);
	return rc;
}

#define WRITE_NEW (O_WRONLY | O_CREAT | O_TRUNC)

static int fill_names(void *ud, const char *name, const struct stat *st)
{
	strv_push((strv *)ud, name);
	return 0;
}

/* ls -a: names of a directory. */
static void ls(tctx *c, const char *path, strv *names)
{
	strv_init(names);
	int rc = vfs_readdir(c->v, path, fill_names, names, NULL);
	ATF_REQUIRE_MSG(rc == 0, "readdir %s: %s", path, strerror(-rc));
}

static int has(const strv *names, const char *name)
{
	for (size_t i = 0; i < names->count; i++)
		if (!strcmp(names->items[i], name))
			return 1;
	return 0;
}

/* ls -l: readdir, then a lookup of every name (what `ls -l` makes the
 * kernel do), then cat of every record when read_too. */
static void ls_l(tctx *c, const char *dir, int read_too)
{
	strv names;
	ls(c, dir, &names);
	for (size_t i = 0; i < names.count; i++) {
		if (!strcmp(names.items[i], ".") || !strcmp(names.items[i], ".."))
			continue;
		char *path = s3db_asprintf("%s/%s", dir, names.items[i]);
		struct stat st;
		int rc = t_stat(c, path, &st);
		ATF_REQUIRE_MSG(rc == 0, "stat %s: %s", path, strerror(-rc));
		if (read_too && S_ISREG(st.st_mode) && s3db_str_ends(path, ".json")) {
			char *s = cat(c, path);
			ATF_REQUIRE_EQ_MSG(strlen(s), (size_t)st.st_size, "%s: size %ld, read %zu bytes",
			                   path, (long)st.st_size, strlen(s));
			free(s);
		}
		free(path);
	}
	strv_free(&names);
}

/* The lines of /.errors. */
static json_object *errors_lines(tctx *c)
{
	char *s = cat(c, "/.errors");
	json_object *arr = json_object_new_array();
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
		json_object_array_add(arr, parse(line));
	free(s);
	return arr;
}

/* The last /.errors line, checked against path, operation and errno. */
static void expect_error_line(tctx *c, const char *path, int err_no, const char *reason_part)
{
	json_object *arr = errors_lines(c);
	size_t n = json_object_array_length(arr);
	ATF_REQUIRE_MSG(n > 0, "/.errors is empty");
	json_object *last = json_object_array_get_idx(arr, n - 1);
	ATF_REQUIRE_STREQ(field(last, "path"), path);
	json_object *e = NULL;
	ATF_REQUIRE(json_object_object_get_ex(last, "errno", &e));
	ATF_REQUIRE_EQ(json_object_get_int(e), err_no);
	ATF_REQUIRE(field(last, "time") && field(last, "operation") && field(last, "reason"));
	if (reason_part)
		ATF_REQUIRE_MSG(strstr(field(last, "reason"), reason_part), "reason '%s' lacks '%s'",
		                field(last, "reason"), reason_part);
	json_object_put(arr);
}

static const char *USERS =
	"{\"attributes\":{\"name\":\"string\",\"email\":\"string|optional\","
	"\"age\":\"number|optional\",\"region\":\"string|optional\",\"tier\":\"string|optional\"},"
	"\"behavior\":\"user-managed\","
	"\"partitions\":{\"byRegion\":{\"fields\":{\"region\":\"string\"}},"
	"\"byRegionTier\":{\"fields\":{\"tier\":\"string\",\"region\":\"string\"}}}}";

/* users with a, b, c; the tree opened. */
static void users_abc(tctx *c)
{
	define(c, "users", USERS);
	insert(c, "users", "{\"id\":\"a\",\"name\":\"Ada\",\"age\":36,\"region\":\"europe\",\"tier\":\"gold\"}");
	insert(c, "users", "{\"id\":\"b\",\"name\":\"Bob\",\"region\":\"asia\"}");
	insert(c, "users", "{\"id\":\"c\",\"name\":\"Cy\",\"email\":\"cy@example.com\",\"region\":\"europe\"}");
	tree_open(c);
}

/* ---- listing and reading ------------------------------------------------------- */

VFS_CASE(lists_resources_and_records_with_exact_sizes_and_content)
{
	define(c, "people", "{\"attributes\":{\"name\":\"string\"}}");
	users_abc(c);
	strv names;
	ls(c, "/", &names);
	ATF_REQUIRE(has(&names, ".") && has(&names, ".."));
	ATF_REQUIRE(has(&names, "users") && has(&names, "people"));
	ATF_REQUIRE(has(&names, ".status") && has(&names, ".errors"));
	strv_free(&names);
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "a.json") && has(&names, "b.json") && has(&names, "c.json"));
	ATF_REQUIRE(has(&names, ".schema.json") && has(&names, ".partitions"));
	ATF_REQUIRE(!has(&names, "a.bin"));
	strv_free(&names);

	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/", &st), 0);
	ATF_REQUIRE(S_ISDIR(st.st_mode));
	ATF_REQUIRE_EQ(st.st_mode & 07777, 0755);
	ATF_REQUIRE_EQ(t_stat(c, "/users", &st), 0);
	ATF_REQUIRE(S_ISDIR(st.st_mode));
	ATF_REQUIRE_EQ(st.st_uid, c->o.uid);
	ATF_REQUIRE_EQ(st.st_gid, c->o.gid);
	const char *ids[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		char path[64];
		snprintf(path, sizeof path, "/users/%s.json", ids[i]);
		char *want = rendered(c, "users", ids[i]);
		ATF_REQUIRE_EQ(t_stat(c, path, &st), 0);
		ATF_REQUIRE(S_ISREG(st.st_mode));
		ATF_REQUIRE_EQ(st.st_mode & 07777, 0644);
		ATF_REQUIRE_EQ((size_t)st.st_size, strlen(want));
		char *got = cat(c, path);
		ATF_REQUIRE_STREQ(got, want);
		/* "id" first, two-space indent, trailing newline */
		char head[32];
		snprintf(head, sizeof head, "{\n  \"id\": \"%s\",\n", ids[i]);
		ATF_REQUIRE_MSG(s3db_str_starts(got, head), "%s starts: %.40s", path, got);
		ATF_REQUIRE(s3db_str_ends(got, "}\n"));
		free(got);
		free(want);
	}
	/* keys in schema order */
	char *a = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(a, "{\n  \"id\": \"a\",\n  \"name\": \"Ada\",\n  \"age\": 36,\n"
	                     "  \"region\": \"europe\",\n  \"tier\": \"gold\"\n}\n");
	free(a);
	/* mtime: LastModified (no timestamps here), close to now */
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_MSG(labs((long)(st.st_mtime - time(NULL))) < 120, "mtime %ld", (long)st.st_mtime);
	ATF_REQUIRE_EQ(t_stat(c, "/users/zz.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/nope", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/nope/a.json", &st), -ENOENT);
}

VFS_CASE(record_times_come_from_updated_at_when_the_resource_keeps_timestamps)
{
	define(c, "stamped", "{\"attributes\":{\"name\":\"string\"},\"timestamps\":true}");
	tree_open(c);
	ATF_REQUIRE_EQ(t_write(c, "/stamped/s.json", "{\"name\":\"S\"}", WRITE_NEW), 0);
	json_object *rec = get_rec(c, "stamped", "s");
	int64_t ms = 0;
	ATF_REQUIRE(s3db_parse_iso8601(field(rec, "updatedAt"), &ms) == 0);
	json_object_put(rec);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/stamped/s.json", &st), 0);
	ATF_REQUIRE_EQ((int64_t)st.st_mtime, ms / 1000);
	ATF_REQUIRE_EQ((int64_t)st.st_mtim.tv_nsec, (ms % 1000) * 1000000);
	/* the same after a fresh read from S3 */
	tree_close(c);
	tree_open(c);
	ATF_REQUIRE_EQ(t_stat(c, "/stamped/s.json", &st), 0);
	ATF_REQUIRE_EQ((int64_t)st.st_mtime, ms / 1000);
	char *text = cat(c, "/stamped/s.json");
	ATF_REQUIRE(strstr(text, "\"createdAt\"") && strstr(text, "\"updatedAt\""));
	free(text);
}

/* ---- writes -------------------------------------------------------------------- */

VFS_CASE(creates_replaces_and_deletes_records)
{
	users_abc(c);
	/* create with the id from the name */
	ATF_REQUIRE_EQ(t_write(c, "/users/d.json", "{\"name\":\"Dee\",\"age\":5}", WRITE_NEW), 0);
	json_object *d = get_rec(c, "users", "d");
	ATF_REQUIRE(d);
	ATF_REQUIRE_STREQ(field(d, "name"), "Dee");
	json_object_put(d);
	char *want = rendered(c, "users", "d");
	char *got = cat(c, "/users/d.json");
	ATF_REQUIRE_STREQ(got, want);
	free(got);
	free(want);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "d.json"));
	strv_free(&names);
	/* an "id" inside that matches is fine */
	ATF_REQUIRE_EQ(t_write(c, "/users/e.json", "{\"id\":\"e\",\"name\":\"Eve\"}", WRITE_NEW), 0);
	json_object *e = get_rec(c, "users", "e");
	ATF_REQUIRE(e);
	json_object_put(e);
	/* one that differs is refused, nothing stored */
	ATF_REQUIRE_EQ(t_write(c, "/users/f.json", "{\"id\":\"g\",\"name\":\"Fay\"}", WRITE_NEW), -EINVAL);
	expect_error_line(c, "/users/f.json", EINVAL, "differs");
	ATF_REQUIRE(!rec_exists(c, "users", "f"));
	ATF_REQUIRE(!rec_exists(c, "users", "g"));
	/* rewrite replaces the whole record */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada L.\"}", O_WRONLY | O_TRUNC), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ada L.");
	ATF_REQUIRE(!json_object_object_get_ex(a, "age", NULL));
	ATF_REQUIRE(!json_object_object_get_ex(a, "region", NULL));
	json_object_put(a);
	want = rendered(c, "users", "a");
	got = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(got, want);
	free(got);
	free(want);
	/* rm deletes */
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/b.json", NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "b"));
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/b.json", &st), -ENOENT);
	ls(c, "/users", &names);
	ATF_REQUIRE(!has(&names, "b.json"));
	strv_free(&names);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/b.json", NULL), -ENOENT);
	/* names that cannot be record ids are refused, not kept aside */
	ATF_REQUIRE_EQ(t_write(c, "/users/x%y.json", "{\"name\":\"X\"}", WRITE_NEW), -EINVAL);
	expect_error_line(c, "/users/x%y.json", EINVAL, "valid record id");
}

VFS_CASE(o_excl_on_an_existing_record_is_eexist)
{
	users_abc(c);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(vfs_create(c->v, "/users/a.json", 0644, O_WRONLY | O_CREAT | O_EXCL, &fh, NULL),
	               -EEXIST);
	ATF_REQUIRE_EQ(vfs_create(c->v, "/users/n.json", 0644, O_WRONLY | O_CREAT | O_EXCL, &fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, "{\"name\":\"New\"}", 14, 0), 14);
	ATF_REQUIRE_EQ(vfs_flush(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	json_object *n = get_rec(c, "users", "n");
	ATF_REQUIRE(n);
	json_object_put(n);
	ATF_REQUIRE_EQ(vfs_create(c->v, "/users/.schema.json", 0644, O_WRONLY | O_CREAT | O_EXCL, &fh,
	                          NULL), -EEXIST);
}

VFS_CASE(refused_writes_leave_s3_unchanged_and_are_listed_in_errors)
{
	users_abc(c);
	char *before = rendered(c, "users", "a");
	/* invalid JSON */
	reset(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\": \"Ada\",", O_WRONLY | O_TRUNC), -EINVAL);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_PUT_OBJECT), 0, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_DELETE_OBJECT), 0, "%s", counts(c));
	expect_error_line(c, "/users/a.json", EINVAL, "invalid JSON");
	char *now = rendered(c, "users", "a");
	ATF_REQUIRE_STREQ(now, before);
	free(now);
	/* the refused text stays, so the user can fix it */
	char *kept = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(kept, "{\"name\": \"Ada\",");
	free(kept);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 15);
	/* schema violation: age is a number; unknown fields are refused */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada\",\"age\":\"old\"}", O_WRONLY | O_TRUNC),
	               -EINVAL);
	expect_error_line(c, "/users/a.json", EINVAL, "age");
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada\",\"shoe\":42}", O_WRONLY | O_TRUNC),
	               -EINVAL);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "[1,2]", O_WRONLY | O_TRUNC), -EINVAL);
	expect_error_line(c, "/users/a.json", EINVAL, "JSON object");
	now = rendered(c, "users", "a");
	ATF_REQUIRE_STREQ(now, before);
	free(now);
	/* a retry with valid content is stored */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada\",\"age\":37}", O_WRONLY | O_TRUNC), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_EQ(json_object_get_int(json_object_object_get(a, "age")), 37);
	json_object_put(a);
	/* over the 2 KB metadata limit with enforce-limits: EFBIG */
	define(c, "limited", "{\"attributes\":{\"text\":\"string\"},\"behavior\":\"enforce-limits\"}");
	char *big = malloc(4000);
	strcpy(big, "{\"text\":\"");
	memset(big + 9, 'x', 3000);
	strcpy(big + 3009, "\"}");
	ATF_REQUIRE_EQ(t_write(c, "/limited/l1.json", big, WRITE_NEW), -EFBIG);
	expect_error_line(c, "/limited/l1.json", EFBIG, NULL);
	ATF_REQUIRE(!rec_exists(c, "limited", "l1"));
	free(big);
	/* larger than max_file_size: EFBIG at write */
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/a.json", O_WRONLY, &fh), 0);
	char chunk[1024];
	memset(chunk, ' ', sizeof chunk);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, chunk, sizeof chunk, (off_t)c->o.max_file_size), -EFBIG);
	vfs_release(c->v, fh, NULL);
	free(before);
}

VFS_CASE(renames_records_within_and_across_resources_and_onto_existing_ones)
{
	define(c, "people", USERS);
	users_abc(c);
	/* a -> z: the record under its new id, the old one gone */
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/a.json", "/users/z.json", 0, NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "a"));
	json_object *z = get_rec(c, "users", "z");
	ATF_REQUIRE(z);
	ATF_REQUIRE_STREQ(field(z, "id"), "z");
	ATF_REQUIRE_STREQ(field(z, "name"), "Ada");
	ATF_REQUIRE_EQ(json_object_get_int(json_object_object_get(z, "age")), 36);
	json_object_put(z);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), -ENOENT);
	char *zt = cat(c, "/users/z.json");
	ATF_REQUIRE(strstr(zt, "\"id\": \"z\""));
	free(zt);
	/* across resources: moved */
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/z.json", "/people/z.json", 0, NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "z"));
	json_object *pz = get_rec(c, "people", "z");
	ATF_REQUIRE(pz);
	ATF_REQUIRE_STREQ(field(pz, "name"), "Ada");
	json_object_put(pz);
	/* onto an existing record: replaced */
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/b.json", "/users/c.json", RENAME_NOREPLACE, NULL), -EEXIST);
	ATF_REQUIRE(rec_exists(c, "users", "b"));
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/b.json", "/users/c.json", 0, NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "b"));
	json_object *cc = get_rec(c, "users", "c");
	ATF_REQUIRE_STREQ(field(cc, "name"), "Bob");
	ATF_REQUIRE(!json_object_object_get_ex(cc, "email", NULL));
	json_object_put(cc);
	/* a move the target refuses deletes nothing */
	define(c, "strict", "{\"attributes\":{\"title\":\"string\"}}");
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/c.json", "/strict/c.json", 0, NULL), -EINVAL);
	ATF_REQUIRE(rec_exists(c, "users", "c"));
	ATF_REQUIRE(!rec_exists(c, "strict", "c"));
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/c.json", "/users/c.json", RENAME_EXCHANGE, NULL), -EINVAL);
}

/* ---- editors ------------------------------------------------------------------------ */

/* What vim does on :w (backupcopy=auto, writebackup): swap file, the 4913
 * probe, backup by rename, new file, fsync, backup removed. */
static int vim_save(tctx *c, const char *dir, const char *name, const char *text)
{
	char path[256], swp[256], probe[256], backup[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(swp, sizeof swp, "%s/.%s.swp", dir, name);
	snprintf(probe, sizeof probe, "%s/4913", dir);
	snprintf(backup, sizeof backup, "%s/%s~", dir, name);
	uint64_t fh = 0;
	struct stat st, orig;
	ATF_REQUIRE_EQ(t_stat(c, path, &orig), 0);
	ATF_REQUIRE_EQ(t_open(c, swp, O_RDWR | O_CREAT | O_EXCL, &fh), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, "b0VIM 9.0", 9, 0), 9);
	ATF_REQUIRE_EQ(vfs_fsync(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	/* the probe: same mode as the original means rename is safe */
	ATF_REQUIRE_EQ(t_open(c, probe, O_WRONLY | O_CREAT | O_EXCL, &fh), 0);
	vfs_chown(c->v, probe, orig.st_uid, orig.st_gid);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, probe, &st), 0);
	ATF_REQUIRE_EQ(st.st_mode, orig.st_mode);
	ATF_REQUIRE_EQ(st.st_uid, orig.st_uid);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, probe, NULL), 0);
	/* backup by rename, then the new file */
	ATF_REQUIRE_EQ(vfs_rename(c->v, path, backup, 0, NULL), 0);
	ATF_REQUIRE_EQ(t_open(c, path, O_WRONLY | O_CREAT | O_TRUNC, &fh), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, text, strlen(text), 0), (int)strlen(text));
	int rc = vfs_fsync(c->v, fh, NULL);
	int rc2 = vfs_flush(c->v, fh, NULL);
	vfs_release(c->v, fh, NULL);
	if (rc == 0 && rc2 == 0) {
		vfs_chmod(c->v, path, orig.st_mode & 07777);
		ATF_REQUIRE_EQ(vfs_unlink(c->v, backup, NULL), 0);
	} else {
		/* the write failed: vim puts the original back */
		ATF_REQUIRE_EQ(vfs_rename(c->v, backup, path, 0, NULL), 0);
	}
	ATF_REQUIRE_EQ(vfs_unlink(c->v, swp, NULL), 0);
	return rc ? rc : rc2;
}

/* No key of the database holds a scratch name. */
static void no_scratch_in_s3(tctx *c)
{
	strv keys;
	raw_keys(c, &keys);
	ATF_REQUIRE(keys.count > 0);
	const char *prefix = c->other->conn.prefix ? c->other->conn.prefix : "";
	for (size_t i = 0; i < keys.count; i++) {
		const char *k = keys.items[i] + (*prefix ? strlen(prefix) + 1 : 0);
		ATF_REQUIRE_MSG(!strstr(k, "swp") && !strstr(k, "4913") && !strstr(k, "~") &&
		                !strstr(k, "sed") && !strstr(k, "tmp") && !strstr(k, "#") &&
		                !strstr(k, "notes"),
		                "a scratch file reached S3: %s", k);
	}
	strv_free(&keys);
}

VFS_CASE(vim_saves_through_swap_probe_and_backup_without_losing_the_record)
{
	users_abc(c);
	char *orig = rendered(c, "users", "a");
	ATF_REQUIRE_EQ(vim_save(c, "/users", "a.json",
	                        "{\n  \"id\": \"a\",\n  \"name\": \"Ada V.\",\n  \"age\": 36\n}\n"), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ada V.");
	json_object_put(a);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "a.json"));
	ATF_REQUIRE(!has(&names, "a.json~") && !has(&names, ".a.json.swp") && !has(&names, "4913"));
	strv_free(&names);
	no_scratch_in_s3(c);
	free(orig);

	/* a refused save: vim's backup comes back, S3 keeps the record, and
	 * putting the untouched backup back costs no request */
	orig = rendered(c, "users", "a");
	reset(c);
	ATF_REQUIRE_EQ(vim_save(c, "/users", "a.json", "{\"name\": oops}"), -EINVAL);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_PUT_OBJECT) + nreq(c, S3DB_CMD_DELETE_OBJECT), 0, "%s",
	                   counts(c));
	char *now = rendered(c, "users", "a");
	ATF_REQUIRE_STREQ(now, orig);
	char *shown = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(shown, orig);
	free(shown);
	free(now);
	free(orig);

	/* while the backup is the record's only copy the record is hidden
	 * but kept in S3; removing that copy deletes it (mv x y; rm y) */
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/b.json", "/users/b.bak", 0, NULL), 0);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/b.json", &st), -ENOENT);
	ATF_REQUIRE(rec_exists(c, "users", "b"));
	char *bak = cat(c, "/users/b.bak");
	ATF_REQUIRE(strstr(bak, "\"Bob\""));
	free(bak);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/b.bak", NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "b"));
	/* and moving it onto another record name moves the record */
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/c.json", "/users/c.orig", 0, NULL), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/c.orig", "/users/c2.json", 0, NULL), -EINVAL);
	ATF_REQUIRE(rec_exists(c, "users", "c")); /* "id": "c" inside: refused */
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/c.orig", "/users/c.json", 0, NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/c.json", &st), 0);
}

VFS_CASE(emacs_autosave_and_backup_rename)
{
	users_abc(c);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/#a.json#", O_WRONLY | O_CREAT | O_TRUNC, &fh), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, "{autosave", 9, 0), 9);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/a.json", "/users/a.json~", 0, NULL), 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada E.\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/#a.json#", NULL), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ada E.");
	json_object_put(a);
	/* emacs keeps its backup: a plain scratch file now; removing it
	 * leaves the record alone */
	char *bak = cat(c, "/users/a.json~");
	ATF_REQUIRE(strstr(bak, "\"Ada\""));
	free(bak);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/a.json~", NULL), 0);
	ATF_REQUIRE(rec_exists(c, "users", "a"));
	no_scratch_in_s3(c);
}

VFS_CASE(sed_in_place_writes_a_temporary_file_and_renames_it)
{
	users_abc(c);
	char *text = cat(c, "/users/a.json");
	char *p = strstr(text, "Ada");
	ATF_REQUIRE(p);
	memcpy(p, "Ida", 3);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/sedAb12Cd", O_RDWR | O_CREAT | O_EXCL, &fh), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, text, strlen(text), 0), (int)strlen(text));
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_EQ(vfs_chown(c->v, "/users/sedAb12Cd", st.st_uid, st.st_gid), 0);
	ATF_REQUIRE_EQ(vfs_chmod(c->v, "/users/sedAb12Cd", st.st_mode & 07777), 0);
	ATF_REQUIRE_EQ(vfs_flush(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ada"); /* scratch: not stored */
	json_object_put(a);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/sedAb12Cd", "/users/a.json", 0, NULL), 0);
	a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ida");
	json_object_put(a);
	ATF_REQUIRE_EQ(t_stat(c, "/users/sedAb12Cd", &st), -ENOENT);
	free(text);
	no_scratch_in_s3(c);
}

VFS_CASE(jq_into_a_temporary_file_then_mv)
{
	users_abc(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/tmp", "{\"id\":\"b\",\"name\":\"Bo\",\"age\":9}\n", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/tmp", "/users/b.json", 0, NULL), 0);
	json_object *b = get_rec(c, "users", "b");
	ATF_REQUIRE_STREQ(field(b, "name"), "Bo");
	json_object_put(b);
	/* a refused mv keeps the temporary file and the record */
	ATF_REQUIRE_EQ(t_write(c, "/users/tmp", "{\"name\":\"Bo\",\"age\":\"nine\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/tmp", "/users/b.json", 0, NULL), -EINVAL);
	expect_error_line(c, "/users/b.json", EINVAL, "age");
	char *t = cat(c, "/users/tmp");
	ATF_REQUIRE_STREQ(t, "{\"name\":\"Bo\",\"age\":\"nine\"}");
	free(t);
	b = get_rec(c, "users", "b");
	ATF_REQUIRE_STREQ(field(b, "name"), "Bo");
	json_object_put(b);
	/* mv of a new name inserts */
	ATF_REQUIRE_EQ(t_write(c, "/users/tmp", "{\"name\":\"Nu\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/tmp", "/users/nu.json", RENAME_NOREPLACE, NULL), 0);
	json_object *nu = get_rec(c, "users", "nu");
	ATF_REQUIRE(nu);
	json_object_put(nu);
	no_scratch_in_s3(c);
}

VFS_CASE(nano_and_truncate_rewrite_in_place)
{
	users_abc(c);
	/* nano: O_TRUNC and write */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada N.\"}\n", O_WRONLY | O_TRUNC), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ada N.");
	json_object_put(a);
	/* truncate -s0: nothing stored, the record stays in S3 */
	char *before = rendered(c, "users", "b");
	ATF_REQUIRE_EQ(vfs_truncate(c->v, "/users/b.json", 0, 0, NULL), 0);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/b.json", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 0);
	char *now = rendered(c, "users", "b");
	ATF_REQUIRE_STREQ(now, before);
	free(now);
	free(before);
	/* ... then written (>> appends to the empty file) */
	ATF_REQUIRE_EQ(t_write(c, "/users/b.json", "{\"name\":\"Bob T.\"}", O_WRONLY | O_APPEND), 0);
	json_object *b = get_rec(c, "users", "b");
	ATF_REQUIRE_STREQ(field(b, "name"), "Bob T.");
	json_object_put(b);
	/* ftruncate on an open file, then write */
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/c.json", O_RDWR, &fh), 0);
	ATF_REQUIRE_EQ(vfs_truncate(c->v, "/users/c.json", 0, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, "{\"name\":\"Cy T.\"}", 16, 0), 16);
	ATF_REQUIRE_EQ(vfs_flush(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	json_object *cc = get_rec(c, "users", "c");
	ATF_REQUIRE_STREQ(field(cc, "name"), "Cy T.");
	json_object_put(cc);
	/* touch of a new name: an empty local file, nothing stored */
	ATF_REQUIRE_EQ(t_write(c, "/users/t.json", "", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/t.json", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 0);
	ATF_REQUIRE(!rec_exists(c, "users", "t"));
	ATF_REQUIRE_EQ(vfs_utimens(c->v, "/users/t.json", NULL, NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/t.json", NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/t.json", &st), -ENOENT);
}

VFS_CASE(scratch_files_stay_local_and_behave_like_files)
{
	users_abc(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/notes.txt", "hello", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/notes.txt", " world", O_WRONLY | O_APPEND), 0);
	char *t = cat(c, "/users/notes.txt");
	ATF_REQUIRE_STREQ(t, "hello world");
	free(t);
	ATF_REQUIRE_EQ(t_write(c, "/notes-at-root", "x", WRITE_NEW), 0);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "notes.txt"));
	strv_free(&names);
	ls(c, "/", &names);
	ATF_REQUIRE(has(&names, "notes-at-root"));
	strv_free(&names);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/notes.txt", &st), 0);
	ATF_REQUIRE(S_ISREG(st.st_mode));
	ATF_REQUIRE_EQ(st.st_size, 11);
	struct timespec tv[2] = { { 1000, 0 }, { 2000, 0 } };
	ATF_REQUIRE_EQ(vfs_utimens(c->v, "/users/notes.txt", tv, NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/notes.txt", &st), 0);
	ATF_REQUIRE_EQ(st.st_mtime, 2000);
	ATF_REQUIRE_EQ(st.st_atime, 1000);
	/* records: times come from the data, utimens is accepted */
	ATF_REQUIRE_EQ(vfs_utimens(c->v, "/users/a.json", tv, NULL), 0);
	ATF_REQUIRE_EQ(vfs_truncate(c->v, "/users/notes.txt", 5, 0, NULL), 0);
	t = cat(c, "/users/notes.txt");
	ATF_REQUIRE_STREQ(t, "hello");
	free(t);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/notes.txt", "/users/notes2.txt", 0, NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/notes.txt", &st), -ENOENT);
	no_scratch_in_s3(c);
	ATF_REQUIRE_EQ(vfs_rmdir(c->v, "/users", NULL), -ENOTEMPTY);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/notes2.txt", NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/notes-at-root", NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/notes2.txt", &st), -ENOENT);
	ls(c, "/users", &names);
	ATF_REQUIRE(!has(&names, "notes2.txt"));
	strv_free(&names);
}

VFS_CASE(scratch_files_can_live_in_the_scratch_directory)
{
	c->o.scratch_dir = c->tmp;
	users_abc(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/big.tmp", "{\"name\":\"Scratch\"}", WRITE_NEW), 0);
	char *t = cat(c, "/users/big.tmp");
	ATF_REQUIRE_STREQ(t, "{\"name\":\"Scratch\"}");
	free(t);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/big.tmp", "/users/s.json", 0, NULL), 0);
	json_object *s = get_rec(c, "users", "s");
	ATF_REQUIRE_STREQ(field(s, "name"), "Scratch");
	json_object_put(s);
}

/* ---- costs -------------------------------------------------------------------------- */

#define NREC 40

static void insert_many(tctx *c, const char *res, int n)
{
	json_object *arr = json_object_new_array();
	for (int i = 0; i < n; i++) {
		char rec[160];
		snprintf(rec, sizeof rec, "{\"id\":\"r%03d\",\"name\":\"Record %d\",\"age\":%d,\"region\":\"%s\"}",
		         i, i, i, i % 2 ? "asia" : "europe");
		json_object_array_add(arr, parse(rec));
	}
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_insert_many(s3db_resource_find(c->other, res), arr, NULL, NULL, &err), &err);
	json_object_put(arr);
}

/* The requests /.status reports, by command. */
static uint64_t status_count(tctx *c, const char *cmd)
{
	char *s = cat(c, "/.status");
	json_object *o = parse(s);
	free(s);
	json_object *req = NULL, *by = NULL, *n = NULL;
	ATF_REQUIRE(json_object_object_get_ex(o, "requests", &req));
	ATF_REQUIRE(json_object_object_get_ex(req, "byCommand", &by));
	ATF_REQUIRE(json_object_object_get_ex(by, cmd, &n));
	uint64_t v = (uint64_t)json_object_get_int64(n);
	json_object_put(o);
	return v;
}

VFS_CASE(cold_listing_fetches_in_parallel_and_warm_listing_costs_nothing)
{
	define(c, "users", USERS);
	insert_many(c, "users", NREC);
	tree_open(c);
	ls_l(c, "/users", 1);
	/* one LIST, one read of each record (HEAD; their fields are in
	 * metadata), nothing else */
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_HEAD_OBJECT), NREC, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), NREC + 1, "%s", counts(c));
	uint64_t lists = status_count(c, "ListObjectsV2");
	ATF_REQUIRE_EQ(lists, 1);
	ATF_REQUIRE_EQ(status_count(c, "HeadObject"), NREC);
	reset(c);
	ls_l(c, "/users", 1);
	ATF_REQUIRE_EQ_MSG(total(c), 0, "warm ls -l + cat: %s", counts(c));
	vfs_cache_stats cs;
	vfs_cache_stats_get(c->v, &cs);
	ATF_REQUIRE_EQ(cs.entries, NREC);
	ATF_REQUIRE(cs.hits >= 2 * NREC);
	ATF_REQUIRE_EQ(cs.misses, NREC);
	/* /.status: version, database without the secret, cache figures */
	char *s = cat(c, "/.status");
	json_object *o = parse(s);
	ATF_REQUIRE_STREQ(field(o, "version"), S3DB_VERSION);
	ATF_REQUIRE(field(o, "database"));
	if (!c->is_file) {
		ATF_REQUIRE(!strstr(s, testlib_secret_key()));
		ATF_REQUIRE_STREQ(field(o, "bucket"), testlib_s3_bucket());
	}
	json_object *cache = NULL, *entries = NULL;
	ATF_REQUIRE(json_object_object_get_ex(o, "cache", &cache));
	ATF_REQUIRE(json_object_object_get_ex(cache, "entries", &entries));
	ATF_REQUIRE_EQ(json_object_get_int(entries), NREC);
	json_object_put(o);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/.status", &st), 0);
	ATF_REQUIRE_EQ(vfs_direct_io(c->v, "/.status", O_RDONLY), 1);
	ATF_REQUIRE_EQ(vfs_direct_io(c->v, "/users/r001.json", O_RDONLY), 0);
	ATF_REQUIRE_EQ(vfs_direct_io(c->v, "/users/r001.json", O_RDWR), 0);
	/* a write-only descriptor has no use for cached pages */
	ATF_REQUIRE_EQ(vfs_direct_io(c->v, "/users/r001.json", O_WRONLY | O_TRUNC), 1);
	free(s);
}

VFS_CASE(a_stale_record_is_revalidated_with_one_head)
{
	c->o.record_ttl = 0.3;
	c->o.dir_ttl = 0.3;
	define(c, "users", USERS);
	insert(c, "users", "{\"id\":\"a\",\"name\":\"Ada\"}");
	msleep(2100); /* past the racy second of its LastModified */
	tree_open(c);
	char *first = cat(c, "/users/a.json");
	msleep(400);
	reset(c);
	uint64_t fh = 0;
	int keep = -1;
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/users/a.json", O_RDONLY, &fh, &keep, NULL), 0);
	ATF_REQUIRE_EQ_MSG(total(c), 1, "%s", counts(c));
	ATF_REQUIRE_EQ(nreq(c, S3DB_CMD_HEAD_OBJECT), 1);
	ATF_REQUIRE_EQ(keep, 1);
	char buf[512];
	int n = vfs_read(c->v, fh, buf, sizeof buf - 1, 0);
	ATF_REQUIRE(n > 0);
	buf[n] = '\0';
	ATF_REQUIRE_STREQ(buf, first);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	vfs_cache_stats cs;
	vfs_cache_stats_get(c->v, &cs);
	ATF_REQUIRE_EQ(cs.revalidations, 1);
	/* within record_ttl again: nothing */
	reset(c);
	free(cat(c, "/users/a.json"));
	ATF_REQUIRE_EQ_MSG(total(c), 0, "%s", counts(c));
	/* saving it unchanged: one HEAD makes sure, nothing is written */
	reset(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", first, O_WRONLY | O_TRUNC), 0);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_PUT_OBJECT), 0, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), 1, "%s", counts(c));
	/* a change is written */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada 2\"}", O_WRONLY | O_TRUNC), 0);
	ATF_REQUIRE(nreq(c, S3DB_CMD_PUT_OBJECT) >= 1);
	free(first);
}

VFS_CASE(changes_by_another_client_show_after_the_ttls)
{
	c->o.record_ttl = 0.5;
	c->o.dir_ttl = 0.5;
	c->o.negative_ttl = 0.5;
	users_abc(c);
	ls_l(c, "/users", 1);
	char *old = cat(c, "/users/a.json");
	json_object *patch = parse("{\"name\":\"Ada Other\"}");
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_update(s3db_resource_find(c->other, "users"), "a", patch, NULL, NULL, &err), &err);
	json_object_put(patch);
	insert(c, "users", "{\"id\":\"new\",\"name\":\"New\"}");
	CHECK_OK(s3db_delete(s3db_resource_find(c->other, "users"), "b", NULL, &err), &err);
	/* within the TTLs: the cached view */
	char *same = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(same, old);
	free(same);
	msleep(700);
	uint64_t fh = 0;
	int keep = -1;
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/users/a.json", O_RDONLY, &fh, &keep, NULL), 0);
	ATF_REQUIRE_EQ(keep, 0);
	vfs_release(c->v, fh, NULL);
	char *now = cat(c, "/users/a.json");
	ATF_REQUIRE(strstr(now, "Ada Other"));
	free(now);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "new.json"));
	ATF_REQUIRE(!has(&names, "b.json"));
	strv_free(&names);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/b.json", &st), -ENOENT);
	/* a resource made by the other client appears after dir_ttl */
	json_object *def = parse("{\"attributes\":{\"title\":\"string\"}}");
	CHECK_OK(s3db_resource_define(c->other, "books", def, NULL, &err), &err);
	json_object_put(def);
	msleep(700);
	ATF_REQUIRE_EQ(t_stat(c, "/books", &st), 0);
	ATF_REQUIRE(S_ISDIR(st.st_mode));
	free(old);
}

VFS_CASE(options_change_while_mounted)
{
	users_abc(c);
	char *old = cat(c, "/users/a.json");
	json_object *patch = parse("{\"name\":\"Ada Live\"}");
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_update(s3db_resource_find(c->other, "users"), "a", patch, NULL, NULL, &err), &err);
	json_object_put(patch);
	char *same = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(same, old); /* record_ttl 60 s */
	vfs_options o = c->o;
	o.record_ttl = 0;
	o.umask = 077;
	ATF_REQUIRE_EQ(vfs_set_options(c->v, &o), 0);
	char *now = cat(c, "/users/a.json");
	ATF_REQUIRE(strstr(now, "Ada Live"));
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_EQ(st.st_mode & 07777, 0600);
	ATF_REQUIRE_EQ(vfs_set_options(c->v, NULL), -EINVAL);
	free(old);
	free(same);
	free(now);
}

VFS_CASE(a_remount_with_the_persistent_cache_only_lists)
{
	c->o.cache_dir = c->tmp;
	define(c, "users", USERS);
	insert_many(c, "users", NREC);
	msleep(2100);
	tree_open(c);
	ls_l(c, "/users", 1);
	ATF_REQUIRE_EQ_MSG(total(c), NREC + 1, "%s", counts(c));
	strv before;
	ls(c, "/users", &before);
	char *r7 = cat(c, "/users/r007.json");
	tree_close(c);
	tree_open(c);
	ls_l(c, "/users", 1);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), 1, "remount: %s", counts(c));
	char *again = cat(c, "/users/r007.json");
	ATF_REQUIRE_STREQ(again, r7);
	strv after;
	ls(c, "/users", &after);
	ATF_REQUIRE_EQ(after.count, before.count);
	/* a record changed meanwhile is read again, the rest still not */
	tree_close(c);
	json_object *patch = parse("{\"name\":\"Changed\"}");
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_update(s3db_resource_find(c->other, "users"), "r007", patch, NULL, NULL, &err),
	         &err);
	json_object_put(patch);
	tree_open(c);
	ls_l(c, "/users", 1);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_HEAD_OBJECT), 1, "%s", counts(c));
	char *changed = cat(c, "/users/r007.json");
	ATF_REQUIRE(strstr(changed, "Changed"));
	free(changed);
	free(again);
	free(r7);
	strv_free(&before);
	strv_free(&after);
}

/* ---- requests per operation (issue 3 §7's targets, as exact counts) ---------------- */

static const char *FREE_FORM = "{\"attributes\":{},\"behavior\":\"body-only\"}";

/* n records n0000.. with a JSON body (a free-form resource), written by
 * the other client. */
static void insert_bodies(tctx *c, const char *res, int n)
{
	json_object *arr = json_object_new_array();
	for (int i = 0; i < n; i++) {
		char rec[160];
		snprintf(rec, sizeof rec, "{\"id\":\"n%04d\",\"text\":\"note %d\",\"n\":%d}", i, i, i);
		json_object_array_add(arr, parse(rec));
	}
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_insert_many(s3db_resource_find(c->other, res), arr, NULL, NULL, &err), &err);
	json_object_put(arr);
}

VFS_CASE(creating_a_record_in_a_listed_or_new_directory_is_one_put)
{
	c->o.dir_ttl = 0.5;
	define(c, "users", USERS);
	tree_open(c);
	/* a directory made by mkdir is known empty: no lookup request */
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/notes", 0755, NULL), 0);
	reset(c);
	ATF_REQUIRE_EQ(t_write(c, "/notes/n1.json", "{\"text\":\"one\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_PUT_OBJECT), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), 1, "create in a new directory: %s", counts(c));
	ATF_REQUIRE(rec_exists(c, "notes", "n1"));
	/* a listed directory answers the lookup of a new name; a record
	 * without partition values is one PUT */
	strv names;
	ls(c, "/users", &names);
	strv_free(&names);
	reset(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/u1.json", "{\"name\":\"U1\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ_MSG(total(c), 1, "create in a listed directory: %s", counts(c));
	ATF_REQUIRE_EQ(nreq(c, S3DB_CMD_PUT_OBJECT), 1);
	/* + one PUT per partition reference */
	reset(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/u2.json", "{\"name\":\"U2\",\"region\":\"asia\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_PUT_OBJECT), 2, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), 2, "%s", counts(c));
	/* the listing went stale (dir_ttl): one LIST answers this lookup
	 * and the next ones, and shows what another client created */
	insert(c, "users", "{\"id\":\"other\",\"name\":\"O\"}");
	msleep(1100); /* past dir_ttl and the stale window (another dir_ttl) */
	reset(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/u3.json", "{\"name\":\"U3\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/u4.json", "{\"name\":\"U4\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_PUT_OBJECT), 2, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), 3, "creates after dir_ttl: %s", counts(c));
	/* a name another client created is not taken for a new one */
	ATF_REQUIRE_EQ(t_write(c, "/users/other.json", "{\"name\":\"O\"}", O_WRONLY | O_CREAT | O_EXCL),
	               -EEXIST);
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "other.json") && has(&names, "u1.json") && has(&names, "u4.json"));
	strv_free(&names);
}

VFS_CASE(a_cold_listing_is_a_list_per_1000_records_and_one_request_per_record)
{
	const int n = 1003;
	define(c, "notes", FREE_FORM);
	insert_bodies(c, "notes", n);
	tree_open(c);
	ls_l(c, "/notes", 0);
	/* each record has a JSON body: one GET carries it and the metadata */
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 2, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_GET_OBJECT), (uint64_t)n, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), (uint64_t)n + 2, "%s", counts(c));
	/* then reading them all costs nothing */
	reset(c);
	ls_l(c, "/notes", 1);
	ATF_REQUIRE_EQ_MSG(total(c), 0, "warm ls -l + cat: %s", counts(c));
	char *s = cat(c, "/notes/n0042.json");
	ATF_REQUIRE(strstr(s, "\"note 42\""));
	free(s);
}

VFS_CASE(rm_of_a_cached_record_is_at_most_two_requests)
{
	users_abc(c);
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/notes", 0755, NULL), 0);
	ATF_REQUIRE_EQ(t_write(c, "/notes/x.json", "{\"text\":\"x\"}", WRITE_NEW), 0);
	ls_l(c, "/users", 1);
	/* a has two partition references: the object and both references
	 * go in one DeleteObjects */
	reset(c);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/a.json", NULL), 0);
	ATF_REQUIRE_MSG(total(c) >= 1 && total(c) <= 2, "rm: %s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_HEAD_OBJECT) + nreq(c, S3DB_CMD_GET_OBJECT), 0, "%s",
	                   counts(c));
	/* our own delete needs no revalidation */
	reset(c);
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), -ENOENT);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(!has(&names, "a.json") && has(&names, "b.json"));
	strv_free(&names);
	ATF_REQUIRE_EQ_MSG(total(c), 0, "after rm: %s", counts(c));
	ATF_REQUIRE(!rec_exists(c, "users", "a"));
	strv keys;
	raw_keys(c, &keys);
	for (size_t i = 0; i < keys.count; i++)
		ATF_REQUIRE_MSG(!strstr(keys.items[i], "id=a") || strstr(keys.items[i], "id=a/") ||
		                    s3db_str_ends(keys.items[i], "id=ab"),
		                "a reference of a is left: %s", keys.items[i]);
	strv_free(&keys);
	/* no partitions: one DELETE */
	reset(c);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/notes/x.json", NULL), 0);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_DELETE_OBJECT), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(total(c), 1, "rm: %s", counts(c));
	ATF_REQUIRE(!rec_exists(c, "notes", "x"));
}

VFS_CASE(opening_after_record_ttl_revalidates_the_directory_with_one_list)
{
	const int n = 12;
	c->o.record_ttl = 0.4;
	c->o.dir_ttl = 0.4;
	define(c, "notes", FREE_FORM);
	insert_bodies(c, "notes", n);
	msleep(2100); /* past the racy second of their LastModified */
	tree_open(c);
	ls_l(c, "/notes", 1);
	/* another client changes one record meanwhile */
	json_object *patch = parse("{\"text\":\"changed elsewhere\"}");
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_update(s3db_resource_find(c->other, "notes"), "n0003", patch, NULL, NULL, &err),
	         &err);
	json_object_put(patch);
	msleep(600);
	reset(c);
	/* cat of every record, no readdir: the first open relists the
	 * directory, which confirms all the others */
	for (int i = 0; i < n; i++) {
		char path[64];
		snprintf(path, sizeof path, "/notes/n%04d.json", i);
		char *s = cat(c, path);
		ATF_REQUIRE(strstr(s, i == 3 ? "changed elsewhere" : "note"));
		free(s);
	}
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_HEAD_OBJECT), 0, "%s", counts(c));
	/* only the changed record is read again, with one GET */
	ATF_REQUIRE_EQ_MSG(total(c), 2, "%s", counts(c));
}

/* ---- resources, schemas, partitions, content --------------------------------------- */

VFS_CASE(mkdir_makes_a_free_form_resource_and_rmdir_removes_an_empty_one)
{
	tree_open(c);
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/notes", 0755, NULL), 0);
	ATF_REQUIRE(s3db_resource_find(c->db, "notes"));
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/notes", &st), 0);
	ATF_REQUIRE(S_ISDIR(st.st_mode));
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/notes", 0755, NULL), -EEXIST);
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/notes/sub", 0755, NULL), -EPERM);
	char *stext = cat(c, "/notes/.schema.json");
	ATF_REQUIRE(strstr(stext, "\"behavior\": \"body-only\""));
	free(stext);
	/* free-form: any object */
	ATF_REQUIRE_EQ(t_write(c, "/notes/n1.json",
	                       "{\"title\":\"Free\",\"tags\":[\"a\",\"b\"],\"deep\":{\"x\":1}}", WRITE_NEW), 0);
	json_object *n1 = get_rec(c, "notes", "n1");
	ATF_REQUIRE(n1);
	ATF_REQUIRE_STREQ(field(n1, "title"), "Free");
	json_object_put(n1);
	char *want = rendered(c, "notes", "n1");
	char *got = cat(c, "/notes/n1.json");
	ATF_REQUIRE_STREQ(got, want);
	free(got);
	free(want);
	ATF_REQUIRE_EQ(vfs_rmdir(c->v, "/notes", NULL), -ENOTEMPTY);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/notes/n1.json", NULL), 0);
	ATF_REQUIRE_EQ(vfs_rmdir(c->v, "/notes", NULL), 0);
	ATF_REQUIRE(s3db_resource_find(c->db, "notes") == NULL);
	ATF_REQUIRE_EQ(t_stat(c, "/notes", &st), -ENOENT);
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/.hidden", 0755, NULL), -EINVAL);
}

VFS_CASE(schema_file_shows_the_definition_and_writing_it_makes_a_new_version)
{
	users_abc(c);
	json_object *def = s3db_resource_definition(s3db_resource_find(c->db, "users"));
	char *s = s3db_json_stringify(def, 2);
	char *want = s3db_asprintf("%s\n", s);
	free(s);
	json_object_put(def);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/.schema.json", &st), 0);
	ATF_REQUIRE_EQ((size_t)st.st_size, strlen(want));
	char *got = cat(c, "/users/.schema.json");
	ATF_REQUIRE_STREQ(got, want);
	free(got);
	free(want);
	/* the same text again: no new version */
	char *same = cat(c, "/users/.schema.json");
	ATF_REQUIRE_EQ(t_write(c, "/users/.schema.json", same, O_WRONLY | O_TRUNC), 0);
	free(same);
	ATF_REQUIRE_STREQ(db_current_schema(s3db_resource_find(c->db, "users"))->version, "v1");
	/* a new attribute: v2, and records may use it */
	ATF_REQUIRE_EQ(t_write(c, "/users/.schema.json",
	                       "{\"attributes\":{\"name\":\"string\",\"email\":\"string|optional\","
	                       "\"age\":\"number|optional\",\"region\":\"string|optional\","
	                       "\"tier\":\"string|optional\",\"nick\":\"string|optional\"}}",
	                       O_WRONLY | O_TRUNC), 0);
	ATF_REQUIRE_STREQ(db_current_schema(s3db_resource_find(c->db, "users"))->version, "v2");
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_reload(c->other, &err), &err);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada\",\"nick\":\"A\"}", O_WRONLY | O_TRUNC), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "nick"), "A");
	json_object_put(a);
	/* invalid definitions are refused */
	ATF_REQUIRE_EQ(t_write(c, "/users/.schema.json", "{\"attributes\":", O_WRONLY | O_TRUNC), -EINVAL);
	ATF_REQUIRE_EQ(t_write(c, "/users/.schema.json", "{\"behavior\":\"sideways\"}", O_WRONLY | O_TRUNC),
	               -EINVAL);
	expect_error_line(c, "/users/.schema.json", EINVAL, "behavior");
	ATF_REQUIRE_STREQ(db_current_schema(s3db_resource_find(c->db, "users"))->version, "v2");
}

VFS_CASE(partition_directories_list_only_their_prefix)
{
	users_abc(c);
	strv names;
	ls(c, "/users/.partitions", &names);
	ATF_REQUIRE(has(&names, "byRegion") && has(&names, "byRegionTier"));
	strv_free(&names);
	ls(c, "/users/.partitions/byRegion", &names);
	ATF_REQUIRE(has(&names, "region=europe") && has(&names, "region=asia"));
	ATF_REQUIRE_EQ(names.count, 4);
	strv_free(&names);
	reset(c);
	ls(c, "/users/.partitions/byRegion/region=europe", &names);
	ATF_REQUIRE(has(&names, "a.json") && has(&names, "c.json") && !has(&names, "b.json"));
	strv_free(&names);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	pthread_mutex_lock(&c->mu);
	ATF_REQUIRE_EQ(c->list_prefixes.count, 1);
	ATF_REQUIRE_MSG(strstr(c->list_prefixes.items[0], "partition=byRegion/region=europe/"),
	                "listed %s", c->list_prefixes.items[0]);
	pthread_mutex_unlock(&c->mu);
	/* entries are symbolic links to the record: walking the tree meets
	 * each record once; the link costs no request beyond the listing */
	reset(c);
	char target[64];
	ATF_REQUIRE_EQ(vfs_readlink(c->v, "/users/.partitions/byRegion/region=europe/a.json", target,
	                            sizeof target, NULL), 0);
	ATF_REQUIRE_STREQ(target, "../../../a.json");
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/.partitions/byRegion/region=europe/a.json", &st), 0);
	ATF_REQUIRE(S_ISLNK(st.st_mode));
	ATF_REQUIRE_EQ(st.st_size, (off_t)strlen("../../../a.json"));
	ATF_REQUIRE_EQ_MSG(total(c), 0, "%s", counts(c));
	ATF_REQUIRE_EQ(t_stat(c, "/users/.partitions/byRegion/region=asia/a.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(vfs_readlink(c->v, "/users/.partitions/byRegion/region=asia/a.json", target,
	                            sizeof target, NULL), -ENOENT);
	ATF_REQUIRE_EQ(vfs_readlink(c->v, "/users/a.json", target, sizeof target, NULL), -EINVAL);
	/* cut to the buffer, NUL-terminated, as readlink wants */
	ATF_REQUIRE_EQ(vfs_readlink(c->v, "/users/.partitions/byRegion/region=europe/a.json", target,
	                            6, NULL), 0);
	ATF_REQUIRE_STREQ(target, "../..");
	/* nothing new can be linked into the tree: it is read-only, while a
	 * link in a resource directory is merely not supported */
	ATF_REQUIRE_EQ(vfs_make_special(c->v, "/users/.partitions/byRegion/region=asia/b.json"),
	               -EROFS);
	ATF_REQUIRE_EQ(vfs_make_special(c->v, "/users/.partitions/byRegion/new"), -EROFS);
	ATF_REQUIRE_EQ(vfs_make_special(c->v, "/users/.partitions/byRegion/region=asia/fifo"),
	               -EROFS);
	ATF_REQUIRE_EQ(vfs_make_special(c->v, "/users/soft.json"), -EPERM);
	/* two fields: nested in key order (region, then tier) */
	ls(c, "/users/.partitions/byRegionTier", &names);
	ATF_REQUIRE(has(&names, "region=europe"));
	ATF_REQUIRE(!has(&names, "region=asia")); /* b has no tier: no reference */
	strv_free(&names);
	ls(c, "/users/.partitions/byRegionTier/region=europe", &names);
	ATF_REQUIRE(has(&names, "tier=gold"));
	strv_free(&names);
	ls(c, "/users/.partitions/byRegionTier/region=europe/tier=gold", &names);
	ATF_REQUIRE(has(&names, "a.json") && !has(&names, "c.json"));
	strv_free(&names);
	ATF_REQUIRE_EQ(vfs_readlink(c->v, "/users/.partitions/byRegionTier/region=europe/tier=gold/a.json",
	                            target, sizeof target, NULL), 0);
	ATF_REQUIRE_STREQ(target, "../../../../a.json");
	ATF_REQUIRE_EQ(t_stat(c, "/users/.partitions/byRegionTier/tier=gold", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/users/.partitions/nope", &st), -ENOENT);
	/* read-only views; a link is followed by the kernel, never opened */
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/users/.partitions/byRegion/region=europe/a.json", O_RDONLY,
	                             &fh, NULL, NULL), -ELOOP);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/.partitions/byRegion/region=europe/a.json", NULL), -EROFS);
	ATF_REQUIRE_EQ(vfs_create(c->v, "/users/.partitions/byRegion/region=europe/.a.json.swp", 0644,
	                          O_WRONLY | O_CREAT | O_EXCL, &fh, NULL), -EROFS);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/a.json", "/users/.partitions/byRegion/region=europe/x.json",
	                          0, NULL), -EROFS);
	/* a record moving region leaves the old partition after a write */
	ATF_REQUIRE_EQ(t_write(c, "/users/c.json", "{\"name\":\"Cy\",\"region\":\"asia\"}", O_WRONLY | O_TRUNC),
	               0);
	ls(c, "/users/.partitions/byRegion/region=europe", &names);
	ATF_REQUIRE(!has(&names, "c.json"));
	strv_free(&names);
	ls(c, "/users/.partitions/byRegion/region=asia", &names);
	ATF_REQUIRE(has(&names, "c.json"));
	strv_free(&names);
}

VFS_CASE(binary_content_shows_as_a_bin_file_beside_its_record)
{
	users_abc(c);
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_set_content(s3db_resource_find(c->other, "users"), "a", "\x01\x02\x03\x00zz", 6,
	                          "image/png", &err), &err);
	tree_close(c);
	tree_open(c);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "a.bin"));
	ATF_REQUIRE(!has(&names, "b.bin"));
	strv_free(&names);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.bin", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 6);
	char *data = NULL;
	size_t len = 0;
	ATF_REQUIRE_EQ(t_read(c, "/users/a.bin", &data, &len), 0);
	ATF_REQUIRE_EQ(len, 6);
	ATF_REQUIRE(!memcmp(data, "\x01\x02\x03\x00zz", 6));
	free(data);
	ATF_REQUIRE_EQ(t_stat(c, "/users/b.bin", &st), -ENOENT);
	/* writing it sets the content */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.bin", "new bytes", O_WRONLY | O_TRUNC), 0);
	void *got = NULL;
	char *ctype = NULL;
	CHECK_OK(s3db_get_content(s3db_resource_find(c->other, "users"), "a", &got, &len, &ctype, &err),
	         &err);
	ATF_REQUIRE_EQ(len, 9);
	ATF_REQUIRE(!memcmp(got, "new bytes", 9));
	free(got);
	free(ctype);
	/* the record still reads the same */
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Ada");
	json_object_put(a);
	/* a record file rewrite keeps the content; rm of the .bin removes it */
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada B.\"}", O_WRONLY | O_TRUNC), 0);
	CHECK_OK(s3db_get_content(s3db_resource_find(c->other, "users"), "a", &got, &len, NULL, &err),
	         &err);
	ATF_REQUIRE_EQ(len, 9);
	free(got);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/a.bin", NULL), 0);
	ATF_REQUIRE_EQ(s3db_get_content(s3db_resource_find(c->other, "users"), "a", &got, &len, NULL, &err),
	               S3DB_ERR_NOT_FOUND);
	ATF_REQUIRE(rec_exists(c, "users", "a"));
	/* a .bin needs its record */
	ATF_REQUIRE_EQ(t_write(c, "/users/ghost.bin", "x", WRITE_NEW), -ENOENT);
}

VFS_CASE(modes_owners_and_xattrs_are_read_only)
{
	users_abc(c);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_EQ(vfs_chmod(c->v, "/users/a.json", 0600), -EPERM);
	ATF_REQUIRE_EQ(vfs_chmod(c->v, "/users/a.json", st.st_mode & 07777), 0);
	ATF_REQUIRE_EQ(vfs_chown(c->v, "/users/a.json", st.st_uid + 1, (gid_t)-1), -EPERM);
	ATF_REQUIRE_EQ(vfs_chown(c->v, "/users/a.json", (uid_t)-1, (gid_t)-1), 0);
	ATF_REQUIRE_EQ(vfs_chmod(c->v, "/users", 0700), -EPERM);
	ATF_REQUIRE_EQ(vfs_chmod(c->v, "/users/zz.json", 0644), -ENOENT);
	char buf[256];
	int n = vfs_listxattr(c->v, "/users/a.json", NULL, 0);
	ATF_REQUIRE(n > 0);
	ATF_REQUIRE_EQ(vfs_listxattr(c->v, "/users/a.json", buf, sizeof buf), n);
	ATF_REQUIRE(!memcmp(buf, "user.s3db.etag", 15));
	n = vfs_getxattr(c->v, "/users/a.json", "user.s3db.key", buf, sizeof buf - 1);
	ATF_REQUIRE(n > 0);
	buf[n] = '\0';
	ATF_REQUIRE_MSG(s3db_str_ends(buf, "resource=users/data/id=a"), "key %s", buf);
	n = vfs_getxattr(c->v, "/users/a.json", "user.s3db.etag", buf, sizeof buf - 1);
	ATF_REQUIRE(n > 2);
	buf[n] = '\0';
	ATF_REQUIRE_EQ(buf[0], '"');
	ATF_REQUIRE_EQ(vfs_getxattr(c->v, "/users/a.json", "user.s3db.etag", NULL, 0), n);
	ATF_REQUIRE_EQ(vfs_getxattr(c->v, "/users/a.json", "user.s3db.etag", buf, 2), -ERANGE);
	n = vfs_getxattr(c->v, "/users/a.json", "user.s3db.version", buf, sizeof buf - 1);
	ATF_REQUIRE(n > 0);
	buf[n] = '\0';
	ATF_REQUIRE_STREQ(buf, "v1");
	ATF_REQUIRE_EQ(vfs_getxattr(c->v, "/users/a.json", "user.other", buf, sizeof buf), -ENODATA);
	ATF_REQUIRE_EQ(vfs_getxattr(c->v, "/users", "user.s3db.key", buf, sizeof buf), -ENODATA);
	ATF_REQUIRE_EQ(vfs_setxattr(c->v, "/users/a.json", "user.x", "1", 1, 0), -ENOTSUP);
	ATF_REQUIRE_EQ(vfs_removexattr(c->v, "/users/a.json", "user.s3db.etag"), -ENOTSUP);
	struct statvfs sv;
	ATF_REQUIRE_EQ(vfs_statfs(c->v, &sv), 0);
	ATF_REQUIRE(sv.f_bavail > 0 && sv.f_namemax == 255);
}

VFS_CASE(close_stores_pending_writes)
{
	users_abc(c);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/a.json", O_WRONLY | O_TRUNC, &fh), 0);
	const char *t = "{\"name\":\"Stored at close\"}";
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, t, strlen(t), 0), (int)strlen(t));
	ATF_REQUIRE_EQ(vfs_close(c->v), 0);
	c->v = NULL;
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Stored at close");
	json_object_put(a);
}

static int plugin_read(void *ud, const char *query, char **text, size_t *len)
{
	*text = s3db_asprintf("hello %s\n", query ? query : "world");
	*len = strlen(*text);
	return 0;
}

static int plugin_write(void *ud, const char *data, size_t len)
{
	sbuf *got = ud;
	sbuf_reset(got);
	sbuf_append(got, data, len);
	return len && data[0] == '!' ? -EINVAL : 0;
}

VFS_CASE(plugins_add_virtual_files_and_request_observers)
{
	users_abc(c);
	sbuf got;
	sbuf_init(&got);
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/.hello", plugin_read, plugin_write, &got, 1), 0);
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/.hello", plugin_read, NULL, NULL, 1), -EEXIST);
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/users/.q", plugin_read, NULL, NULL, 0), 0);
	strv names;
	ls(c, "/", &names);
	ATF_REQUIRE(has(&names, ".hello"));
	strv_free(&names);
	ls(c, "/users", &names);
	ATF_REQUIRE(!has(&names, ".q"));
	strv_free(&names);
	char *s = cat(c, "/.hello");
	ATF_REQUIRE_STREQ(s, "hello world\n");
	free(s);
	s = cat(c, "/users/.q?name=a%20b");
	ATF_REQUIRE_STREQ(s, "hello name=a b\n");
	free(s);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/.q?x", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, (off_t)strlen("hello x\n"));
	ATF_REQUIRE_EQ(t_write(c, "/.hello", "written", O_WRONLY | O_TRUNC), 0);
	ATF_REQUIRE_STREQ(got.data, "written");
	ATF_REQUIRE_EQ(t_write(c, "/.hello", "!no", O_WRONLY | O_TRUNC), -EINVAL);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/users/.q", O_WRONLY, &fh, NULL, NULL), -EACCES);
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/.status", O_WRONLY, &fh, NULL, NULL), -EACCES);
	sbuf_free(&got);
}

/* A counter plugin file: reads show "n=<count>", writing "reset" zeroes
 * it, anything else is -EINVAL. */
static int counter_read(void *ud, const char *query, char **text, size_t *len)
{
	*text = s3db_asprintf("n=%d%s%s\n", *(int *)ud, query ? " q=" : "", query ? query : "");
	*len = strlen(*text);
	return 0;
}

static int counter_write(void *ud, const char *data, size_t len)
{
	if (len >= 5 && !strncmp(data, "reset", 5)) {
		*(int *)ud = 0;
		return 0;
	}
	return -EINVAL;
}

VFS_CASE(a_write_to_a_plugin_file_shows_in_the_next_read_at_once)
{
	tree_open(c);
	int n = 7;
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/.counter", counter_read, counter_write, &n, 1), 0);
	struct stat st;
	/* the shell's `echo reset > /.counter; cat /.counter`: lookup
	 * (getattr), open, write, close, then getattr + open again */
	ATF_REQUIRE_EQ(t_stat(c, "/.counter", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, (off_t)strlen("n=7\n"));
	ATF_REQUIRE_EQ(t_write(c, "/.counter", "reset\n", O_WRONLY | O_TRUNC), 0);
	ATF_REQUIRE_EQ(n, 0);
	char *s = cat(c, "/.counter");
	ATF_REQUIRE_STREQ(s, "n=0\n");
	free(s);
	ATF_REQUIRE_EQ(t_write(c, "/.counter", "bogus\n", O_WRONLY | O_TRUNC), -EINVAL);
}

VFS_CASE(a_file_registered_for_queries_is_never_listed)
{
	tree_open(c);
	int n = 3;
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/.search?", counter_read, NULL, &n, 1), 0);
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/.search", counter_read, NULL, &n, 1), -EEXIST);
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/.bad?x", counter_read, NULL, &n, 1), -EINVAL);
	ATF_REQUIRE_EQ(vfs_add_virtual_file(c->v, "/?", counter_read, NULL, &n, 1), -EINVAL);
	strv names;
	ls(c, "/", &names);
	ATF_REQUIRE(!has(&names, ".search"));
	strv_free(&names);
	char *s = cat(c, "/.search?q=big%20cat");
	ATF_REQUIRE_STREQ(s, "n=3 q=q=big cat\n");
	free(s);
	s = cat(c, "/.search");
	ATF_REQUIRE_STREQ(s, "n=3\n");
	free(s);
}

typedef struct seen_ctx {
	int events;
	pid_t pid;
	char process[32];
} seen_ctx;

static s3db_code remember_writer(void *ud, const s3db_event *ev)
{
	seen_ctx *w = ud;
	if (ev->type == S3DB_EV_AFTER_INSERT || ev->type == S3DB_EV_AFTER_UPDATE) {
		w->events++;
		w->pid = ev->ctx->pid;
		snprintf(w->process, sizeof w->process, "%s", ev->ctx->process ? ev->ctx->process : "");
	}
	return S3DB_OK;
}

VFS_CASE(a_record_stored_at_release_carries_the_writer_s_context)
{
	users_abc(c);
	seen_ctx w = { 0 };
	int id = s3db_on(c->db, remember_writer, &w);
	s3db_ctx tee = { .uid = 1000, .gid = 1000, .pid = 4242, .process = "tee", .origin = "fuse" };
	s3db_ctx nobody = { .process = "", .origin = "fuse" }; /* FUSE's release: pid 0 */
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/users/a.json", O_WRONLY | O_TRUNC, &fh, NULL, &tee), 0);
	const char *t = "{\"name\":\"Written by tee\"}";
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, t, strlen(t), 0), (int)strlen(t));
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, &nobody), 0);
	ATF_REQUIRE_EQ(w.events, 1);
	ATF_REQUIRE_EQ(w.pid, 4242);
	ATF_REQUIRE_STREQ(w.process, "tee");
	/* and at unmount, where there is no caller at all */
	ATF_REQUIRE_EQ(vfs_open_file(c->v, "/users/b.json", O_WRONLY | O_TRUNC, &fh, NULL, &tee), 0);
	t = "{\"name\":\"Stored at unmount\"}";
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, t, strlen(t), 0), (int)strlen(t));
	ATF_REQUIRE_EQ(vfs_close(c->v), 0);
	c->v = NULL;
	ATF_REQUIRE_EQ(w.events, 2);
	ATF_REQUIRE_EQ(w.pid, 4242);
	ATF_REQUIRE_STREQ(w.process, "tee");
	s3db_off(c->db, id);
}

typedef struct seen_lists {
	int before, after;
	char process[32];
} seen_lists;

static s3db_code count_lists(void *ud, const s3db_event *ev)
{
	seen_lists *w = ud;
	if (ev->type == S3DB_EV_BEFORE_LIST)
		w->before++;
	if (ev->type == S3DB_EV_AFTER_LIST) {
		w->after++;
		snprintf(w->process, sizeof w->process, "%s", ev->ctx->process ? ev->ctx->process : "");
	}
	return S3DB_OK;
}

static int count_entries(void *ud, const char *name, const struct stat *st)
{
	(*(int *)ud)++;
	return 0;
}

VFS_CASE(listing_a_resource_is_a_list_operation_on_the_event_bus)
{
	users_abc(c);
	seen_lists w = { 0 };
	int id = s3db_on(c->db, count_lists, &w);
	s3db_ctx ls_ctx = { .uid = 1000, .gid = 1000, .pid = 77, .process = "ls", .origin = "fuse" };
	int n = 0;
	ATF_REQUIRE_EQ(vfs_readdir(c->v, "/users", count_entries, &n, &ls_ctx), 0);
	ATF_REQUIRE(n >= 3);
	ATF_REQUIRE_EQ(w.before, 1);
	ATF_REQUIRE_EQ(w.after, 1);
	ATF_REQUIRE_STREQ(w.process, "ls");
	s3db_off(c->db, id);
}

VFS_CASE(a_database_written_by_s3db_js_7_is_read_only)
{
	/* put a 7.x catalogue in place */
	json_object *cat7 = testlib_fixture_json("schema/v7.3.5-demo.json");
	char *text = s3db_json_stringify(cat7, 0);
	json_object_put(cat7);
	char *key = db_key(c->db, "s3db.json");
	store_meta meta;
	store_meta_init(&meta);
	s3db_error err;
	s3db_error_clear(&err);
	store_put_opts po = { .content_type = "application/json" };
	CHECK_OK(store_put(c->db->store, key, &meta, text, strlen(text), &po, NULL, &err), &err);
	CHECK_OK(s3db_reload(c->db, &err), &err);
	free(key);
	free(text);
	tree_open(c);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users", &st), 0);
	ATF_REQUIRE_EQ(st.st_mode & 0222, 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/x.json", "{\"name\":\"X\",\"email\":\"x@example.com\"}", WRITE_NEW),
	               -EROFS);
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/more", 0755, NULL), -EROFS);
	ATF_REQUIRE_EQ(t_write(c, "/users/.schema.json", "{}", O_WRONLY | O_TRUNC), -EROFS);
	struct statvfs sv;
	ATF_REQUIRE_EQ(vfs_statfs(c->v, &sv), 0);
	ATF_REQUIRE(sv.f_flag & ST_RDONLY);
	store_meta_free(&meta);
}

typedef struct worker {
	tctx *c;
	int n;
	int failures;
} worker;

static void *write_and_read(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < 5; i++) {
		char path[64], text[96];
		snprintf(path, sizeof path, "/users/w%d-%d.json", w->n, i);
		snprintf(text, sizeof text, "{\"name\":\"Worker %d item %d\",\"age\":%d}", w->n, i, i);
		if (t_write(w->c, path, text, WRITE_NEW) != 0)
			w->failures++;
		char *back = NULL;
		if (t_read(w->c, path, &back, NULL) != 0 || !strstr(back, "Worker"))
			w->failures++;
		free(back);
		strv names;
		strv_init(&names);
		if (vfs_readdir(w->c->v, "/users", fill_names, &names, NULL) != 0)
			w->failures++;
		strv_free(&names);
	}
	return NULL;
}

VFS_CASE(concurrent_writers_and_readers_see_their_records)
{
	c->o.dir_ttl = 0.05;
	users_abc(c);
	pthread_t th[8];
	worker w[8];
	for (int i = 0; i < 8; i++) {
		w[i] = (worker){ .c = c, .n = i };
		ATF_REQUIRE(pthread_create(&th[i], NULL, write_and_read, &w[i]) == 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ATF_REQUIRE_EQ_MSG(w[i].failures, 0, "worker %d", i);
	}
	strv names;
	ls(c, "/users", &names);
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 5; j++) {
			char name[32];
			snprintf(name, sizeof name, "w%d-%d.json", i, j);
			ATF_REQUIRE_MSG(has(&names, name), "%s missing from the listing", name);
		}
	strv_free(&names);
	size_t count = 0;
	s3db_error err;
	s3db_error_clear(&err);
	CHECK_OK(s3db_count(s3db_resource_find(c->other, "users"), NULL, &count, NULL, &err), &err);
	ATF_REQUIRE_EQ(count, 3 + 8 * 5);
}

/* ---- storage failures (S3 only: faults injected by the strict front) ---------- */

#define S3_CASE(name)                                                          \
	static void case_##name(tctx *c);                                        \
	ATF_TC_WITHOUT_HEAD(s3__##name);                                         \
	ATF_TC_BODY(s3__##name, tc) { run_case("s3", #name, case_##name); }      \
	static void case_##name(tctx *c)

/* A fault for this case's keys only. */
static void fault(tctx *c, const char *rest)
{
	char *rule = s3db_asprintf("{\"bucket\":\"%s\",\"key_prefix\":\"%s/\",%s}",
	                           testlib_s3_bucket(), c->other->conn.prefix, rest);
	ATF_REQUIRE_MSG(testlib_front_fault(rule) == 0, "the front refused %s", rule);
	free(rule);
}

S3_CASE(storage_failures_give_eio_and_refused_credentials_eacces)
{
	users_abc(c);
	char *before = rendered(c, "users", "a");
	fault(c, "\"command\":\"PutObject\",\"status\":500");
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Never\"}", O_WRONLY | O_TRUNC), -EIO);
	expect_error_line(c, "/users/a.json", EIO, NULL);
	testlib_front_clear_faults();
	char *now = rendered(c, "users", "a");
	ATF_REQUIRE_STREQ(now, before);
	free(now);
	/* the buffer stayed: a retry (fsync) stores it once S3 is back */
	char *kept = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(kept, "{\"name\":\"Never\"}");
	free(kept);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Later\"}", O_WRONLY | O_TRUNC), 0);
	json_object *a = get_rec(c, "users", "a");
	ATF_REQUIRE_STREQ(field(a, "name"), "Later");
	json_object_put(a);
	fault(c, "\"command\":\"PutObject\",\"status\":403,\"code\":\"AccessDenied\"");
	ATF_REQUIRE_EQ(t_write(c, "/users/b.json", "{\"name\":\"Nope\"}", O_WRONLY | O_TRUNC), -EACCES);
	expect_error_line(c, "/users/b.json", EACCES, NULL);
	testlib_front_clear_faults();
	json_object *b = get_rec(c, "users", "b");
	ATF_REQUIRE_STREQ(field(b, "name"), "Bob");
	json_object_put(b);
	/* a failed delete leaves the record where it was */
	fault(c, "\"command\":\"DeleteObject\",\"status\":403,\"code\":\"AccessDenied\"");
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/c.json", NULL), -EACCES);
	testlib_front_clear_faults();
	ATF_REQUIRE(rec_exists(c, "users", "c"));
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/c.json", &st), 0);
	free(before);
}

/* ---- POSIX: unlinked open files, directory times, sizes (vfs-posix) ------------------ */

/* vfs_hide is what libfuse's unlink of an open file becomes (fs_fuse.c):
 * the name goes, the descriptors keep working, the record stays deleted. */
VFS_CASE(an_open_record_unlinked_stays_usable_until_its_last_close)
{
	users_abc(c);
	/* a writer: open, write, unlink, then fstat/pread/pwrite on the fd */
	uint64_t wfh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/a.json", O_RDWR, &wfh), 0);
	const char *text = "{\"name\":\"Unlinked\"}";
	ATF_REQUIRE_EQ(vfs_write(c->v, wfh, text, strlen(text), 0), (int)strlen(text));
	ATF_REQUIRE_EQ(vfs_truncate(c->v, NULL, (off_t)strlen(text), wfh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/a.json", "/users/.fuse_hidden0000000100000001", NULL), 0);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, wfh, &st), 0);
	ATF_REQUIRE_EQ(st.st_size, (off_t)strlen(text));
	ATF_REQUIRE_EQ(t_stat(c, "/users/.fuse_hidden0000000100000001", &st), 0);
	ATF_REQUIRE_EQ(st.st_size, (off_t)strlen(text));
	char buf[64] = { 0 };
	ATF_REQUIRE_EQ(vfs_read(c->v, wfh, buf, sizeof buf - 1, 0), (int)strlen(text));
	ATF_REQUIRE_STREQ(buf, text);
	ATF_REQUIRE_EQ(vfs_write(c->v, wfh, "{\"name\":\"More\"}   ", 18, 0), 18);
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, wfh, &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 19);
	/* neither name is listed */
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(!has(&names, "a.json") && has(&names, "b.json"));
	for (size_t i = 0; i < names.count; i++)
		ATF_REQUIRE_MSG(strncmp(names.items[i], ".fuse_hidden", 12), "%s listed", names.items[i]);
	strv_free(&names);
	/* close stores nothing; the last close (libfuse unlinks the hidden
	 * name) deletes the record, and it stays deleted */
	ATF_REQUIRE_EQ(vfs_flush(c->v, wfh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, wfh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/.fuse_hidden0000000100000001", NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "a"));
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), -ENOENT);
	/* a reader (a private snapshot) likewise */
	uint64_t rfh = 0;
	char *want = rendered(c, "users", "b");
	ATF_REQUIRE_EQ(t_open(c, "/users/b.json", O_RDONLY, &rfh), 0);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/b.json", "/users/.fuse_hidden0000000200000002", NULL), 0);
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, rfh, &st), 0);
	ATF_REQUIRE_EQ(st.st_size, (off_t)strlen(want));
	char rbuf[256] = { 0 };
	ATF_REQUIRE_EQ(vfs_read(c->v, rfh, rbuf, sizeof rbuf - 1, 0), (int)strlen(want));
	ATF_REQUIRE_STREQ(rbuf, want);
	ATF_REQUIRE_EQ(vfs_release(c->v, rfh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/.fuse_hidden0000000200000002", NULL), 0);
	ATF_REQUIRE(!rec_exists(c, "users", "b"));
	free(want);
	/* the hidden name must be a free name in the same directory */
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/c.json", "/.fuse_hidden03", NULL), -EINVAL);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/nobody.json", "/users/.fuse_hidden04", NULL), -ENOENT);
	ATF_REQUIRE(rec_exists(c, "users", "c"));
}

/* libfuse hides an open rename target before renaming onto it: the new
 * version replaces the record; a rename that fails gives the name back. */
VFS_CASE(a_hidden_open_target_is_replaced_by_the_rename_or_restored)
{
	users_abc(c);
	uint64_t rfh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/c.json", O_RDONLY, &rfh), 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/c.tmp", "{\"name\":\"Cy 2\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/c.json", "/users/.fuse_hidden05", NULL), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/c.tmp", "/users/c.json", 0, NULL), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, rfh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/.fuse_hidden05", NULL), 0);
	json_object *o = get_rec(c, "users", "c");
	ATF_REQUIRE(o);
	ATF_REQUIRE_STREQ(field(o, "name"), "Cy 2");
	json_object_put(o);
	/* the rename is refused (invalid JSON): the record keeps its name */
	char *before = rendered(c, "users", "a");
	ATF_REQUIRE_EQ(t_open(c, "/users/a.json", O_RDONLY, &rfh), 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.tmp", "{not json", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/a.json", "/users/.fuse_hidden06", NULL), 0);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/a.tmp", "/users/a.json", 0, NULL), -EINVAL);
	ATF_REQUIRE_EQ(vfs_unhide(c->v, "/users/.fuse_hidden06", "/users/a.json"), 0);
	ATF_REQUIRE_EQ(vfs_release(c->v, rfh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/.fuse_hidden06", NULL), 0);
	char *after = cat(c, "/users/a.json");
	ATF_REQUIRE_STREQ(after, before);
	ATF_REQUIRE(rec_exists(c, "users", "a"));
	free(after);
	free(before);
	/* a scratch file takes its name back */
	ATF_REQUIRE_EQ(t_write(c, "/users/notes.txt", "keep me", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/notes.txt", "/users/.fuse_hidden07", NULL), 0);
	ATF_REQUIRE_EQ(vfs_unhide(c->v, "/users/.fuse_hidden07", "/users/notes.txt"), 0);
	char *notes = cat(c, "/users/notes.txt");
	ATF_REQUIRE_STREQ(notes, "keep me");
	free(notes);
	ATF_REQUIRE_EQ(vfs_unhide(c->v, "/users/notes.txt", "/users/x.txt"), -ENOENT);
}

VFS_CASE(an_unlinked_open_scratch_file_is_kept_until_its_last_close)
{
	users_abc(c);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/swap.tmp", O_RDWR | O_CREAT | O_EXCL, &fh), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, "Hello, World!", 13, 0), 13);
	ATF_REQUIRE_EQ(vfs_hide(c->v, "/users/swap.tmp", "/users/.fuse_hidden08", NULL), 0);
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, "/users/swap.tmp", &st), -ENOENT);
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, fh, &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 13);
	char buf[16] = { 0 };
	ATF_REQUIRE_EQ(vfs_read(c->v, fh, buf, 13, 0), 13);
	ATF_REQUIRE_STREQ(buf, "Hello, World!");
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/.fuse_hidden08", NULL), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/.fuse_hidden08", &st), -ENOENT);
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, fh, &st), -EBADF);
}

/* The mtime of a directory, in ms (st_mtim). */
static int64_t dir_mtime_ms(tctx *c, const char *path)
{
	struct stat st;
	ATF_REQUIRE_EQ(t_stat(c, path, &st), 0);
	ATF_REQUIRE_EQ(st.st_mtim.tv_sec, st.st_ctim.tv_sec);
	ATF_REQUIRE_EQ(st.st_mtim.tv_nsec, st.st_ctim.tv_nsec);
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

VFS_CASE(directory_times_follow_entries_created_removed_and_renamed)
{
	users_abc(c);
	int64_t t0 = dir_mtime_ms(c, "/users");
	msleep(30);
	ATF_REQUIRE_EQ(t_write(c, "/users/d.json", "{\"name\":\"Di\"}", WRITE_NEW), 0);
	int64_t t1 = dir_mtime_ms(c, "/users");
	ATF_REQUIRE_MSG(t1 > t0, "create: %lld -> %lld", (long long)t0, (long long)t1);
	msleep(30);
	ATF_REQUIRE_EQ(vfs_rename(c->v, "/users/d.json", "/users/e.json", 0, NULL), 0);
	int64_t t2 = dir_mtime_ms(c, "/users");
	ATF_REQUIRE(t2 > t1);
	msleep(30);
	ATF_REQUIRE_EQ(vfs_unlink(c->v, "/users/e.json", NULL), 0);
	int64_t t3 = dir_mtime_ms(c, "/users");
	ATF_REQUIRE(t3 > t2);
	/* the root follows its resources, and mkdir */
	ATF_REQUIRE(dir_mtime_ms(c, "/") >= t3);
	msleep(30);
	ATF_REQUIRE_EQ(vfs_mkdir(c->v, "/notes", 0755, NULL), 0);
	ATF_REQUIRE(dir_mtime_ms(c, "/") > t3);
	/* rewriting a record in place is no change of the directory */
	msleep(30);
	ATF_REQUIRE_EQ(t_write(c, "/users/a.json", "{\"name\":\"Ada\"}", O_WRONLY | O_TRUNC), 0);
	ATF_REQUIRE_EQ(dir_mtime_ms(c, "/users"), t3);
}

VFS_CASE(a_listing_dates_a_resource_by_its_newest_record)
{
	users_abc(c);
	msleep(1100);
	insert(c, "users", "{\"id\":\"n\",\"name\":\"New\"}");
	c->o.dir_ttl = 0;
	ATF_REQUIRE_EQ(vfs_set_options(c->v, &c->o), 0);
	strv names;
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "n.json"));
	strv_free(&names);
	struct stat rec;
	ATF_REQUIRE_EQ(t_stat(c, "/users/n.json", &rec), 0);
	struct stat dir;
	ATF_REQUIRE_EQ(t_stat(c, "/users", &dir), 0);
	/* the record's LastModified, later than the mount's start */
	ATF_REQUIRE_MSG(dir.st_mtim.tv_sec >= rec.st_mtim.tv_sec, "dir %ld < record %ld",
	                (long)dir.st_mtim.tv_sec, (long)rec.st_mtim.tv_sec);
	ATF_REQUIRE(dir.st_mtim.tv_sec > (time_t)0);
}

VFS_CASE(scratch_files_are_not_bound_by_max_file_size)
{
	users_abc(c);
	c->o.max_file_size = 4096;
	ATF_REQUIRE_EQ(vfs_set_options(c->v, &c->o), 0);
	static char chunk[8192];
	memset(chunk, 'x', sizeof chunk);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/big.swp", O_RDWR | O_CREAT, &fh), 0);
	for (int i = 0; i < 8; i++)
		ATF_REQUIRE_EQ(vfs_write(c->v, fh, chunk, sizeof chunk, (off_t)i * (off_t)sizeof chunk),
		               (int)sizeof chunk);
	struct stat st;
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, fh, &st), 0);
	ATF_REQUIRE_EQ(st.st_size, 8 * (off_t)sizeof chunk);
	/* past what the storage (memory here) can hold: EFBIG, as a disk */
	ATF_REQUIRE_EQ(vfs_truncate(c->v, NULL, (off_t)1 << 62, fh, NULL), -EFBIG);
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
	/* records keep the limit */
	ATF_REQUIRE_EQ(t_open(c, "/users/a.json", O_WRONLY, &fh), 0);
	ATF_REQUIRE_EQ(vfs_write(c->v, fh, chunk, sizeof chunk, 0), -EFBIG);
	vfs_release(c->v, fh, NULL);
}

VFS_CASE(scratch_files_in_the_scratch_directory_are_not_bound_by_max_file_size)
{
	c->o.scratch_dir = c->tmp;
	c->o.max_file_size = 4096;
	users_abc(c);
	static char chunk[8192];
	memset(chunk, 'y', sizeof chunk);
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(t_open(c, "/users/big.swp", O_RDWR | O_CREAT, &fh), 0);
	for (int i = 0; i < 4; i++)
		ATF_REQUIRE_EQ(vfs_write(c->v, fh, chunk, sizeof chunk, (off_t)i * (off_t)sizeof chunk),
		               (int)sizeof chunk);
	ATF_REQUIRE_EQ(vfs_truncate(c->v, NULL, (off_t)1 << 30, fh, NULL), 0);
	struct stat st;
	ATF_REQUIRE_EQ(vfs_fgetattr(c->v, fh, &st), 0);
	ATF_REQUIRE_EQ(st.st_size, (off_t)1 << 30);
	char buf[8];
	ATF_REQUIRE_EQ(vfs_read(c->v, fh, buf, sizeof buf, 3 * (off_t)sizeof chunk), (int)sizeof buf);
	ATF_REQUIRE_EQ(buf[0], 'y');
	ATF_REQUIRE_EQ(vfs_release(c->v, fh, NULL), 0);
}

/* ---- stale-while-revalidate, readdirplus (perf2) ------------------------------------ */

/* Requests made on one thread (the test's): a lookup answered from a
 * stale listing must make none there. */
typedef struct thread_requests {
	pthread_t thread;
	atomic_uint_fast64_t n;
} thread_requests;

static void count_thread_requests(void *ud, const s3db_request_info *info)
{
	thread_requests *t = ud;
	(void)info;
	if (pthread_equal(pthread_self(), t->thread))
		atomic_fetch_add(&t->n, 1);
}

/* Polls getattr of path until it exists (5 s at most); its result. */
static int stat_until_found(tctx *c, const char *path)
{
	struct stat st;
	int rc = t_stat(c, path, &st);
	for (int i = 0; rc == -ENOENT && i < 500; i++) {
		msleep(10);
		rc = t_stat(c, path, &st);
	}
	return rc;
}

/* What the kernel sends after a lookup said "missing": create, write,
 * flush (close's result), release. */
static int create_write(tctx *c, const char *path, const char *text, int flags)
{
	uint64_t fh = 0;
	int rc = vfs_create(c->v, path, 0644, flags, &fh, NULL);
	if (rc)
		return rc;
	int n = vfs_write(c->v, fh, text, strlen(text), 0);
	ATF_REQUIRE_EQ((size_t)n, strlen(text));
	rc = vfs_flush(c->v, fh, NULL);
	vfs_release(c->v, fh, NULL);
	return rc;
}

/* The set-up of the stale-listing cases: users a, b, c in a tree with
 * dir_ttl 1 s; the tree lists /users; another client inserts rec; the
 * listing goes stale (past dir_ttl, within its window).  Returns the
 * count of requests made on this thread from then on (static: the
 * observer outlives the case's frame until the fixture closes the
 * tree). */
static thread_requests *listed_then_stale(tctx *c, const char *rec)
{
	static thread_requests own;
	c->o.dir_ttl = 1;
	users_abc(c);
	own.thread = pthread_self();
	ATF_REQUIRE(vfs_add_request_observer(c->v, count_thread_requests, &own) > 0);
	strv names;
	ls(c, "/users", &names);
	strv_free(&names);
	insert(c, "users", rec);
	msleep(1200);
	reset(c);
	atomic_store(&own.n, 0);
	return &own;
}

VFS_CASE(a_lookup_in_a_stale_listing_is_answered_at_once_and_the_listing_refreshed_behind)
{
	c->o.record_ttl = 1; /* stale too */
	thread_requests *own = listed_then_stale(c, "{\"id\":\"other\",\"name\":\"Other\"}");
	struct stat st;
	/* a name the listing lacks is missing, a record it confirmed has its
	 * attributes: both at once, without a request on this thread */
	ATF_REQUIRE_EQ(t_stat(c, "/users/nobody.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/other.json", &st), -ENOENT);
	ATF_REQUIRE_EQ_MSG(atomic_load(&own->n), 0, "requests on the lookup's thread: %s", counts(c));
	/* the directory is listed again behind them: the other client's
	 * record shows, after one LIST for all those lookups */
	ATF_REQUIRE_EQ(stat_until_found(c, "/users/other.json"), 0);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 1, "%s", counts(c));
	/* past dir_ttl and the window: the lookup waits for a listing, so a
	 * change shows within dir_ttl + the window + one listing */
	insert(c, "users", "{\"id\":\"late\",\"name\":\"Late\"}");
	msleep(2300);
	atomic_store(&own->n, 0);
	ATF_REQUIRE_EQ(t_stat(c, "/users/late.json", &st), 0);
	ATF_REQUIRE_MSG(atomic_load(&own->n) >= 1, "no request on the lookup's thread");
	/* an open without O_TRUNC (close-to-open) never answers from a
	 * stale listing: it revalidates on its own thread */
	msleep(1200);
	atomic_store(&own->n, 0);
	free(cat(c, "/users/a.json"));
	ATF_REQUIRE_MSG(atomic_load(&own->n) >= 1, "open answered from a stale listing");
	/* a refresh still running when the tree closes is joined by
	 * vfs_close (the fixture closes it now) */
	msleep(1200);
	ATF_REQUIRE_EQ(t_stat(c, "/users/nobody2.json", &st), -ENOENT);
}

/* cp creates a missing destination with O_WRONLY|O_CREAT|O_EXCL (no
 * O_TRUNC): a stale listing answers that open at once too — no request
 * before the write — and the conditional insert still refuses a record
 * another client made meanwhile (EEXIST), leaving theirs. */
VFS_CASE(an_exclusive_create_is_answered_from_a_stale_listing)
{
	thread_requests *own = listed_then_stale(c, "{\"id\":\"theirs\",\"name\":\"Theirs\"}");
	uint64_t fh = 0;
	ATF_REQUIRE_EQ(vfs_create(c->v, "/users/mine.json", 0644, O_WRONLY | O_CREAT | O_EXCL, &fh,
	                          NULL),
	               0);
	ATF_REQUIRE_EQ_MSG(atomic_load(&own->n), 0, "requests before the write: %s", counts(c));
	const char *text = "{\"name\":\"Mine\"}";
	ATF_REQUIRE_EQ((size_t)vfs_write(c->v, fh, text, strlen(text), 0), strlen(text));
	ATF_REQUIRE_EQ(vfs_flush(c->v, fh, NULL), 0);
	vfs_release(c->v, fh, NULL);
	json_object *o = get_rec(c, "users", "mine");
	ATF_REQUIRE(o);
	json_object_put(o);
	ATF_REQUIRE_EQ(create_write(c, "/users/theirs.json", "{\"name\":\"Mine\"}",
	                            O_WRONLY | O_CREAT | O_EXCL),
	               -EEXIST);
	o = get_rec(c, "users", "theirs");
	ATF_REQUIRE(o);
	ATF_REQUIRE_STREQ(field(o, "name"), "Theirs");
	json_object_put(o);
}

/* Polls getattr of path until it exists, at most ms; its result. */
static int stat_within(tctx *c, const char *path, int ms)
{
	struct stat st;
	int rc = t_stat(c, path, &st);
	for (int i = 0; rc == -ENOENT && i < ms / 10; i++) {
		msleep(10);
		rc = t_stat(c, path, &st);
	}
	return rc;
}

/* Waits until the tree has made n LIST requests since reset (10 s at
 * most), then for the listing to be installed. */
static void wait_lists(tctx *c, uint64_t n)
{
	for (int i = 0; nreq(c, S3DB_CMD_LIST_OBJECTS_V2) < n && i < 1000; i++)
		msleep(10);
	ATF_REQUIRE_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2) >= n, "%s", counts(c));
	msleep(200);
}

/* A listing of more than one page that found nothing changed by
 * another client makes its directory quiet: lookups trust it for 20
 * times what that listing took (when longer than dir_ttl), so a slow
 * listing of a large directory is not redone every dir_ttl under a
 * create loop.  A relist that finds another client's change ends that:
 * the next lookups relist every dir_ttl again.  (S3 only: the front
 * makes each LIST page take 150 ms.) */
S3_CASE(a_quiet_directory_with_a_slow_listing_is_relisted_less_often_for_lookups)
{
	c->o.dir_ttl = 1;
	c->o.record_ttl = 1;
	users_abc(c);
	insert_many(c, "users", 1100); /* two pages */
	strv names;
	ls(c, "/users", &names); /* the first listing: nothing to compare with */
	strv_free(&names);
	fault(c, "\"command\":\"ListObjectsV2\",\"delay_ms\":150");
	struct stat st;
	msleep(1200);
	reset(c);
	/* stale: answered at once, listed again behind (slow, nothing new) */
	ATF_REQUIRE_EQ(t_stat(c, "/users/n1.json", &st), -ENOENT);
	wait_lists(c, 2);
	/* 1.5 s later (past dir_ttl and its stale window, well within 20 x
	 * 300 ms): no relist, another client's new record not seen yet */
	msleep(1500);
	insert(c, "users", "{\"id\":\"late\",\"name\":\"Late\"}");
	reset(c);
	ATF_REQUIRE_EQ(t_stat(c, "/users/n2.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/users/late.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/users/a.json", &st), 0);
	msleep(500); /* a relist started by them would be done now */
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 0, "%s", counts(c));
	/* a readdir keeps dir_ttl: it lists and shows the new record */
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "late.json"));
	strv_free(&names);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 2, "%s", counts(c));
	/* that listing found another client's record: not quiet, so a record
	 * made now shows in a lookup within dir_ttl + the window + a listing */
	insert(c, "users", "{\"id\":\"later\",\"name\":\"Later\"}");
	msleep(1200);
	ATF_REQUIRE_EQ(stat_within(c, "/users/later.json", 3000), 0);
	testlib_front_clear_faults();
}

/* Milliseconds on the monotonic clock. */
static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* Sleeps until the monotonic clock reads at least until_ms. */
static void sleep_until(double until_ms)
{
	double left = until_ms - mono_ms();
	if (left > 0)
		msleep((int)left + 1);
}

/* A create loop in a quiet directory makes it grow, and a listing of it
 * gets dearer with every page: lookups price a relist at the size the
 * directory has now, not at the size its last listing found.  The
 * relist of two pages takes T (the front makes each LIST page take
 * 200 ms); after 1,000 creates the directory fills three, so lookups
 * trust the listing for 20 x 3/2 T, not 20 T: no relist at 25 T, one
 * soon after 30 T.  (S3 only.) */
S3_CASE(a_directory_grown_by_our_own_creates_is_priced_at_its_present_size)
{
	c->o.dir_ttl = 1;
	c->o.record_ttl = 1;
	users_abc(c);
	insert_many(c, "users", 998); /* 1,001 names: two pages */
	strv names;
	ls(c, "/users", &names);
	strv_free(&names);
	fault(c, "\"command\":\"ListObjectsV2\",\"delay_ms\":200");
	struct stat st;
	msleep(1200);
	reset(c);
	/* stale: answered at once and listed again behind (nothing new:
	 * quiet); the listing ends with its second page (the observer
	 * counts a request when it has ended) */
	double started = mono_ms();
	ATF_REQUIRE_EQ(t_stat(c, "/users/n1.json", &st), -ENOENT);
	while (nreq(c, S3DB_CMD_LIST_OBJECTS_V2) < 2 && mono_ms() - started < 10000)
		msleep(5);
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 2, "%s", counts(c));
	double listed = mono_ms(), took = listed - started;
	msleep(100); /* installed */
	reset(c);
	/* the create loop: 1,000 new records, three pages */
	for (int i = 0; i < 1000; i++) {
		char path[64];
		snprintf(path, sizeof path, "/users/g%04d.json", i);
		ATF_REQUIRE_EQ_MSG(create_write(c, path, "{\"name\":\"Grown\"}",
		                                O_WRONLY | O_CREAT | O_EXCL),
		                   0, "%s", path);
	}
	ATF_REQUIRE_MSG(mono_ms() - listed < 24 * took, "the create loop took %.0f ms, T = %.0f ms",
	                mono_ms() - listed, took);
	insert(c, "users", "{\"id\":\"late\",\"name\":\"Late\"}");
	/* at 25 T: no relist, the other client's record not seen yet */
	sleep_until(listed + 25 * took);
	ATF_REQUIRE_EQ(t_stat(c, "/users/late.json", &st), -ENOENT);
	ATF_REQUIRE_EQ(t_stat(c, "/users/g0999.json", &st), 0);
	msleep(600); /* a relist started by them would be done now */
	ATF_REQUIRE_EQ_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2), 0, "%s (T = %.0f ms)", counts(c),
	                   took);
	/* past 30 T: a lookup lists the three pages again and then sees the
	 * other client's record */
	sleep_until(listed + 30 * took);
	int rc = -ENOENT;
	while (rc == -ENOENT && mono_ms() - listed < 40 * took) {
		rc = t_stat(c, "/users/late.json", &st);
		msleep(20);
	}
	ATF_REQUIRE_EQ_MSG(rc, 0, "not seen %.0f ms after the listing (T = %.0f ms)",
	                   mono_ms() - listed, took);
	ATF_REQUIRE_MSG(nreq(c, S3DB_CMD_LIST_OBJECTS_V2) >= 3, "%s", counts(c));
	testlib_front_clear_faults();
}

VFS_CASE(a_create_answered_from_a_stale_listing_replaces_a_record_made_meanwhile)
{
	c->o.dir_ttl = 1;
	users_abc(c);
	strv names;
	ls(c, "/users", &names);
	strv_free(&names);
	insert(c, "users", "{\"id\":\"x\",\"name\":\"Theirs\",\"region\":\"asia\"}");
	insert(c, "users", "{\"id\":\"y\",\"name\":\"Theirs too\"}");
	msleep(1200); /* stale, within the window: creates take x and y for new */
	/* the insert finds x (If-None-Match) and becomes a replace */
	ATF_REQUIRE_EQ(create_write(c, "/users/x.json", "{\"name\":\"Mine\",\"region\":\"europe\"}",
	                            O_WRONLY | O_CREAT | O_TRUNC),
	               0);
	json_object *o = get_rec(c, "users", "x");
	ATF_REQUIRE(o);
	ATF_REQUIRE_STREQ(field(o, "name"), "Mine");
	json_object_put(o);
	char *s = cat(c, "/users/x.json");
	ATF_REQUIRE(strstr(s, "\"Mine\""));
	free(s);
	/* with O_EXCL it is EEXIST, and their record stays */
	ATF_REQUIRE_EQ(create_write(c, "/users/y.json", "{\"name\":\"Mine\"}",
	                            O_WRONLY | O_CREAT | O_EXCL | O_TRUNC),
	               -EEXIST);
	o = get_rec(c, "users", "y");
	ATF_REQUIRE(o);
	ATF_REQUIRE_STREQ(field(o, "name"), "Theirs too");
	json_object_put(o);
	/* once listed again, the tree shows both */
	ATF_REQUIRE_EQ(stat_until_found(c, "/users/y.json"), 0);
	ls(c, "/users", &names);
	ATF_REQUIRE(has(&names, "x.json") && has(&names, "y.json"));
	strv_free(&names);
}

typedef struct plus_entry {
	char name[256];
	struct stat st;
	int has_st;
} plus_entry;

typedef struct plus_list {
	plus_entry items[64];
	size_t n;
} plus_list;

static int fill_plus(void *ud, const char *name, const struct stat *st)
{
	plus_list *l = ud;
	ATF_REQUIRE(l->n < 64);
	plus_entry *e = &l->items[l->n++];
	snprintf(e->name, sizeof e->name, "%s", name);
	e->has_st = st != NULL;
	if (st)
		e->st = *st;
	return 0;
}

/* The attributes readdir gives (FUSE readdirplus hands them to the
 * kernel, so `ls -l` makes no lookup per name) are getattr's. */
static void require_plus_equals_getattr(tctx *c, const char *dir)
{
	plus_list l = { .n = 0 };
	ATF_REQUIRE_EQ(vfs_readdir(c->v, dir, fill_plus, &l, NULL), 0);
	size_t records = 0;
	for (size_t i = 0; i < l.n; i++) {
		plus_entry *e = &l.items[i];
		size_t nl = strlen(e->name);
		int record = nl > 5 && !strcmp(e->name + nl - 5, ".json") && e->name[0] != '.';
		ATF_REQUIRE_MSG(!record || e->has_st, "%s/%s listed without attributes", dir, e->name);
		if (!e->has_st || !strcmp(e->name, ".."))
			continue;
		records += record;
		char *path = !strcmp(e->name, ".") ? strdup(dir)
		                                   : s3db_asprintf("%s%s%s", dir,
		                                                   strcmp(dir, "/") ? "/" : "", e->name);
		struct stat st;
		ATF_REQUIRE_EQ_MSG(t_stat(c, path, &st), 0, "%s", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_mode, st.st_mode, "%s mode", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_size, st.st_size, "%s size", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_nlink, st.st_nlink, "%s nlink", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_uid, st.st_uid, "%s uid", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_gid, st.st_gid, "%s gid", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_mtim.tv_sec, st.st_mtim.tv_sec, "%s mtime", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_mtim.tv_nsec, st.st_mtim.tv_nsec, "%s mtime", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_ctim.tv_sec, st.st_ctim.tv_sec, "%s ctime", path);
		ATF_REQUIRE_EQ_MSG(e->st.st_blocks, st.st_blocks, "%s blocks", path);
		free(path);
	}
	ATF_REQUIRE(!strcmp(dir, "/") || records >= 3);
}

VFS_CASE(readdir_attributes_are_getattr_s)
{
	users_abc(c);
	ATF_REQUIRE_EQ(t_write(c, "/users/d.json", "{\"name\":\"Di\"}", WRITE_NEW), 0);
	ATF_REQUIRE_EQ(t_write(c, "/users/notes.txt", "scratch\n", WRITE_NEW), 0);
	require_plus_equals_getattr(c, "/users");
	require_plus_equals_getattr(c, "/");
	/* and the lookups that follow cost nothing */
	reset(c);
	require_plus_equals_getattr(c, "/users");
	ATF_REQUIRE_EQ_MSG(total(c), 0, "%s", counts(c));
}

ATF_TP_ADD_TCS(tp)
{
	ADD_CASE(tp, lists_resources_and_records_with_exact_sizes_and_content);
	ADD_CASE(tp, record_times_come_from_updated_at_when_the_resource_keeps_timestamps);
	ADD_CASE(tp, creates_replaces_and_deletes_records);
	ADD_CASE(tp, o_excl_on_an_existing_record_is_eexist);
	ADD_CASE(tp, refused_writes_leave_s3_unchanged_and_are_listed_in_errors);
	ADD_CASE(tp, renames_records_within_and_across_resources_and_onto_existing_ones);
	ADD_CASE(tp, vim_saves_through_swap_probe_and_backup_without_losing_the_record);
	ADD_CASE(tp, emacs_autosave_and_backup_rename);
	ADD_CASE(tp, sed_in_place_writes_a_temporary_file_and_renames_it);
	ADD_CASE(tp, jq_into_a_temporary_file_then_mv);
	ADD_CASE(tp, nano_and_truncate_rewrite_in_place);
	ADD_CASE(tp, scratch_files_stay_local_and_behave_like_files);
	ADD_CASE(tp, scratch_files_can_live_in_the_scratch_directory);
	ADD_CASE(tp, cold_listing_fetches_in_parallel_and_warm_listing_costs_nothing);
	ADD_CASE(tp, a_stale_record_is_revalidated_with_one_head);
	ADD_CASE(tp, changes_by_another_client_show_after_the_ttls);
	ADD_CASE(tp, options_change_while_mounted);
	ADD_CASE(tp, a_remount_with_the_persistent_cache_only_lists);
	ADD_CASE(tp, creating_a_record_in_a_listed_or_new_directory_is_one_put);
	ADD_CASE(tp, a_cold_listing_is_a_list_per_1000_records_and_one_request_per_record);
	ADD_CASE(tp, rm_of_a_cached_record_is_at_most_two_requests);
	ADD_CASE(tp, opening_after_record_ttl_revalidates_the_directory_with_one_list);
	ADD_CASE(tp, mkdir_makes_a_free_form_resource_and_rmdir_removes_an_empty_one);
	ADD_CASE(tp, schema_file_shows_the_definition_and_writing_it_makes_a_new_version);
	ADD_CASE(tp, partition_directories_list_only_their_prefix);
	ADD_CASE(tp, binary_content_shows_as_a_bin_file_beside_its_record);
	ADD_CASE(tp, modes_owners_and_xattrs_are_read_only);
	ADD_CASE(tp, close_stores_pending_writes);
	ADD_CASE(tp, plugins_add_virtual_files_and_request_observers);
	ADD_CASE(tp, a_write_to_a_plugin_file_shows_in_the_next_read_at_once);
	ADD_CASE(tp, a_file_registered_for_queries_is_never_listed);
	ADD_CASE(tp, a_record_stored_at_release_carries_the_writer_s_context);
	ADD_CASE(tp, listing_a_resource_is_a_list_operation_on_the_event_bus);
	ADD_CASE(tp, a_database_written_by_s3db_js_7_is_read_only);
	ADD_CASE(tp, concurrent_writers_and_readers_see_their_records);
	ATF_TP_ADD_TC(tp, s3__storage_failures_give_eio_and_refused_credentials_eacces);
	ATF_TP_ADD_TC(tp, s3__a_quiet_directory_with_a_slow_listing_is_relisted_less_often_for_lookups);
	ATF_TP_ADD_TC(tp, s3__a_directory_grown_by_our_own_creates_is_priced_at_its_present_size);
	/* vfs-posix */
	ADD_CASE(tp, an_open_record_unlinked_stays_usable_until_its_last_close);
	ADD_CASE(tp, a_hidden_open_target_is_replaced_by_the_rename_or_restored);
	ADD_CASE(tp, an_unlinked_open_scratch_file_is_kept_until_its_last_close);
	ADD_CASE(tp, directory_times_follow_entries_created_removed_and_renamed);
	ADD_CASE(tp, a_listing_dates_a_resource_by_its_newest_record);
	ADD_CASE(tp, scratch_files_are_not_bound_by_max_file_size);
	ADD_CASE(tp, scratch_files_in_the_scratch_directory_are_not_bound_by_max_file_size);
	/* perf2 */
	ADD_CASE(tp, a_lookup_in_a_stale_listing_is_answered_at_once_and_the_listing_refreshed_behind);
	ADD_CASE(tp, a_create_answered_from_a_stale_listing_replaces_a_record_made_meanwhile);
	ADD_CASE(tp, an_exclusive_create_is_answered_from_a_stale_listing);
	ADD_CASE(tp, readdir_attributes_are_getattr_s);
	return atf_no_error();
}
