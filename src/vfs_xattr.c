/*
 * vfs_xattr.c — extended attributes: user.s3db.etag, user.s3db.version
 * and user.s3db.key of records and contents that S3 has (read-only: the
 * ETag and version from the record cache, else one HEAD); setting or
 * removing an attribute is refused with ENOTSUP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

static const char xattr_names[] = "user.s3db.etag\0user.s3db.version\0user.s3db.key\0";

/* 1 when path is a record (or its content) that S3 has; 0 when it is
 * something else that exists; -errno. */
static int xattr_target(vfs *v, const char *path, vpath *p)
{
	int rc = vpath_parse(v, path, p);
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
	int local = vnode_shadows(n) && n->created;
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
	return vfs_errno_of(v, c);
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
