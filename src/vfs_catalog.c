/*
 * vfs_catalog.c — the resources as the vfs sees them: the database's
 * catalog (s3db.json) read again when a listing of the root is older than
 * dir_ttl, a resource looked up by name, a schema's tag (what the
 * persistent cache records a rendering was made with), and a resource's
 * partitions and their fields.  Nothing here holds v->lock;
 * v->catalog_lock serializes the catalog's reloads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* The resource named name; when it is unknown and s3db.json was read
 * longer than dir_ttl ago, reads s3db.json again first (a resource made
 * by another mount shows up). */
s3db_resource *vcatalog_find_resource(vfs *v, const char *name)
{
	s3db_resource *r = s3db_resource_find(v->db, name);
	if (r)
		return r;
	vcatalog_refresh(v);
	return s3db_resource_find(v->db, name);
}

/* Reads s3db.json again when it is older than dir_ttl (a root listing,
 * a lookup of an unknown resource); a failure is logged and leaves the
 * catalog as it was.  Takes catalog_lock. */
void vcatalog_refresh(vfs *v)
{
	pthread_mutex_lock(&v->catalog_lock);
	if (s3db_monotonic_ms() - v->catalog_ms >= vfs_ttl_ms(v->o.dir_ttl)) {
		s3db_error err;
		s3db_error_clear(&err);
		if (s3db_reload(v->db, &err) != S3DB_OK)
			log_msg(LOG_LVL_WARN, "reading s3db.json: %s", err.message);
		v->catalog_ms = s3db_monotonic_ms();
	}
	pthread_mutex_unlock(&v->catalog_lock);
}

/* "<version>:<hash>" of a schema (for the persistent cache). */
void vcatalog_schema_tag(const schema *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s:%s", s && s->version ? s->version : "",
	         s && s->hash ? s->hash : "");
}

/* The fields of a partition in the order its keys hold them (the order
 * partition.c sorts them in, read back from a prefix it builds), into
 * *out.  0, or -ENOENT when the resource has no such partition. */
int vcatalog_partition_fields(vfs *v, s3db_resource *res, const char *part, strv *out)
{
	const schema *s = db_current_schema(res);
	json_object *pdef = NULL, *fields = NULL;
	strv_init(out);
	if (!s || !s->partitions || !json_object_object_get_ex(s->partitions, part, &pdef) ||
	    !json_object_object_get_ex(pdef, "fields", &fields) ||
	    !json_object_is_type(fields, json_type_object) || json_object_object_length(fields) == 0)
		return -ENOENT;
	json_object *vals = json_object_new_object();
	json_object_object_foreach(fields, f, rule) {
		(void)rule;
		json_object_object_add(vals, f, json_object_new_string("x"));
	}
	char *base = NULL, *full = NULL;
	int exact;
	int rc = -ENOMEM;
	if (partition_prefix(v->db, s, part, NULL, &base, &exact, NULL) == S3DB_OK &&
	    partition_prefix(v->db, s, part, vals, &full, &exact, NULL) == S3DB_OK &&
	    s3db_str_starts(full, base)) {
		rc = 0;
		char *rest = full + strlen(base);
		for (char *seg = strtok(rest, "/"); seg; seg = strtok(NULL, "/")) {
			char *eq = strrchr(seg, '=');
			if (eq)
				*eq = '\0';
			strv_push(out, seg);
		}
		if (out->count != (size_t)json_object_object_length(fields))
			rc = -EIO;
	}
	json_object_put(vals);
	free(base);
	free(full);
	if (rc)
		strv_free(out);
	return rc;
}

/* 1 when the resource's current schema has partitions. */
int vcatalog_has_partitions(s3db_resource *res)
{
	const schema *s = db_current_schema(res);
	return s && s->partitions && json_object_is_type(s->partitions, json_type_object) &&
	       json_object_object_length(s->partitions) > 0;
}
