/*
 * vfs_dir.c — mkdir and rmdir.  mkdir at the root creates a resource
 * that accepts any JSON object until a schema is written (its listing
 * starts known-empty, so lookups in it cost nothing); rmdir removes a
 * resource only when S3 and the local state both hold nothing in it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

int vfs_mkdir(vfs *v, const char *path, mode_t mode, const s3db_ctx *ctx)
{
	(void)mode;
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (!rc) {
		switch (p.kind) {
		case PK_FREE: {
			if (v->read_only) {
				rc = -EROFS;
				break;
			}
			/* another mount may have made it since s3db.json was read:
			 * defining it again would replace its schema */
			s3db_error err;
			s3db_error_clear(&err);
			pthread_mutex_lock(&v->catalog_lock);
			if (s3db_reload(v->db, &err) == S3DB_OK)
				v->catalog_ms = s3db_monotonic_ms();
			pthread_mutex_unlock(&v->catalog_lock);
			if (s3db_resource_find(v->db, p.name)) {
				rc = -EEXIST;
				break;
			}
			/* a free-form resource: any JSON object until a schema is
			 * written to its .schema.json */
			json_object *def = json_object_new_object();
			json_object_object_add(def, "attributes", json_object_new_object());
			json_object_object_add(def, "behavior", json_object_new_string("body-only"));
			s3db_code c = s3db_resource_define(v->db, p.name, def, NULL, &err);
			json_object_put(def);
			if (c != S3DB_OK) {
				rc = vfs_errno_of(v, c);
				vfs_record_error(v, p.path, "mkdir", -rc, err.message);
				break;
			}
			vstat_dir_changed(v, p.path);
			/* known empty: creating records in it asks S3 nothing */
			strv none;
			strv_init(&none);
			pthread_mutex_lock(&v->lock);
			double now = s3db_monotonic_ms();
			vcache_dir_put(&v->cache, p.name, &none, now, now);
			pthread_mutex_unlock(&v->lock);
			break;
		}
		case PK_ROOT:
		case PK_RES:
		case PK_STATUS:
		case PK_ERRORS:
		case PK_VIRTUAL:
		case PK_PARTS:
		case PK_PART_DIR:
			rc = -EEXIST;
			break;
		case PK_SCRATCH:
			rc = !strcmp(p.dir, "/") ? -EEXIST : -EPERM;
			break;
		case PK_PART_RECORD:
		case PK_PART_OTHER:
			rc = -EROFS;
			break;
		default:
			rc = -EPERM; /* resources hold records, not directories */
			break;
		}
	}
	vpath_free(&p);
	return rc;
}

static int stop_at_first(void *ud, const char *id, const store_entry *e)
{
	*(int *)ud = 1;
	return 1;
}

typedef struct local_files {
	const char *dir;
	int found;
} local_files;

static int find_local_file(void *ud, const char *key, void *value)
{
	local_files *w = ud;
	vnode *n = value;
	if (!strcmp(n->dir, w->dir) && vnode_shadows(n) && n->kind != NK_SCHEMA) {
		w->found = 1;
		return 1;
	}
	return 0;
}

int vfs_rmdir(vfs *v, const char *path, const s3db_ctx *ctx)
{
	vpath p;
	int rc = vpath_parse(v, path, &p);
	if (!rc) {
		switch (p.kind) {
		case PK_ROOT:
			rc = -EBUSY;
			break;
		case PK_RES: {
			if (v->read_only) {
				rc = -EROFS;
				break;
			}
			local_files w = { .dir = p.path };
			pthread_mutex_lock(&v->lock);
			vmap_each(&v->nodes, find_local_file, &w);
			pthread_mutex_unlock(&v->lock);
			if (w.found) {
				rc = -ENOTEMPTY;
				break;
			}
			int any = 0;
			s3db_error err;
			s3db_error_clear(&err);
			s3db_code c = resource_list_entries(p.res, NULL, NULL, stop_at_first, &any, &err);
			if (c == S3DB_OK && any)
				rc = -ENOTEMPTY;
			else if (c == S3DB_OK)
				c = s3db_resource_drop(v->db, p.resname, &err);
			if (c != S3DB_OK) {
				rc = vfs_errno_of(v, c);
				vfs_record_error(v, p.path, "rmdir", -rc, err.message);
			} else if (!rc) {
				char *prefix = s3db_asprintf("%s/", p.resname);
				pthread_mutex_lock(&v->lock);
				if (prefix)
					vcache_drop_prefix(&v->cache, prefix);
				vcache_dir_del(&v->cache, p.resname);
				pthread_mutex_unlock(&v->lock);
				free(prefix);
				vstat_dir_changed(v, p.path);
			}
			break;
		}
		case PK_PARTS:
		case PK_PART_DIR:
			rc = -EROFS;
			break;
		case PK_FREE:
		case PK_BADNAME:
			rc = -ENOENT;
			break;
		default: {
			struct stat st;
			rc = vfs_getattr(v, path, &st, ctx);
			if (!rc)
				rc = -ENOTDIR;
			break;
		}
		}
	}
	vpath_free(&p);
	return rc;
}
