/*
 * vfs_path.c — paths: vpath_parse turns a FUSE path into a vpath: which
 * kind of entry (root, resource directory, record, content, schema,
 * partition directory, scratch file, virtual file...), its resource, id
 * and directory.  Names are decided here: <id>.json with a valid id is a
 * record, <id>.bin its content, .schema.json the definition; any other
 * name in a resource directory (or at the root) is a scratch file; a name
 * ending in .json/.bin whose stem is not a valid id is refused (EINVAL on
 * create) rather than silently kept local.  A path is parsed once per
 * operation; nothing here makes a request (the catalog aside, see
 * vfs_catalog.c) or keeps state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_int.h"

/* Frees what p owns and zeroes it; safe on a vpath vpath_parse failed
 * on (and twice). */
void vpath_free(vpath *p)
{
	free(p->path);
	free(p->dir);
	free(p->name);
	free(p->resname);
	free(p->id);
	free(p->key);
	free(p->part);
	strv_free(&p->segs);
	strv_free(&p->fields);
	free(p->query);
	memset(p, 0, sizeof *p);
}

/* Percent-decodes s (malloc'd). */
static char *pct_decode(const char *s)
{
	char *out = malloc(strlen(s) + 1), *w = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		int a, b;
		if (*s == '%' && (a = s3db_hex_value(s[1])) >= 0 && (b = s3db_hex_value(s[2])) >= 0) {
			*w++ = (char)(a * 16 + b);
			s += 2;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
	return out;
}

/* The registered virtual file at path (without query); lock held. */
const vvirt *vpath_find_virtual(vfs *v, const char *path)
{
	for (size_t i = 0; i < v->nvirt; i++)
		if (!strcmp(v->virt[i]->path, path))
			return v->virt[i];
	return NULL;
}

/* The stem of name when it ends with suffix and is a valid id (malloc'd
 * in *id); returns 1 valid, 0 not that suffix, -1 that suffix but an
 * invalid id. */
static int id_of_name(const char *name, const char *suffix, char **id)
{
	size_t n = strlen(name), sl = strlen(suffix);
	*id = NULL;
	if (n < sl || strcmp(name + n - sl, suffix) != 0)
		return 0;
	char *stem = s3db_strndup(name, n - sl);
	if (!stem)
		return -1;
	if (s3db_id_check(stem, NULL) != S3DB_OK) {
		free(stem);
		return -1;
	}
	*id = stem;
	return 1;
}

/* Parses an absolute path.  0, or -ENOENT (no such resource, partition,
 * or a path deeper than the tree), -ENAMETOOLONG, -ENOMEM, -EINVAL (not
 * absolute). */
int vpath_parse(vfs *v, const char *path, vpath *p)
{
	memset(p, 0, sizeof *p);
	strv_init(&p->segs);
	strv_init(&p->fields);
	if (!path || path[0] != '/')
		return -EINVAL;
	size_t plen = strlen(path);
	while (plen > 1 && path[plen - 1] == '/')
		plen--;
	p->path = s3db_strndup(path, plen);
	if (!p->path)
		return -ENOMEM;

	/* plugin files, with or without a query */
	pthread_mutex_lock(&v->lock);
	char *q = strchr(p->path, '?');
	if (q) {
		*q = '\0';
		p->virt = vpath_find_virtual(v, p->path);
		*q = '?';
	} else {
		p->virt = vpath_find_virtual(v, p->path);
	}
	pthread_mutex_unlock(&v->lock);

	/* components */
	strv comps;
	strv_init(&comps);
	const char *s = p->path + 1;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n > VFS_NAME_MAX) {
			strv_free(&comps);
			return -ENAMETOOLONG;
		}
		if (n > 0) {
			char *c = s3db_strndup(s, n);
			if (!c || strv_push_owned(&comps, c)) {
				free(c);
				strv_free(&comps);
				return -ENOMEM;
			}
		}
		s += n;
		if (*s == '/')
			s++;
	}
	size_t nc = comps.count;
	if (nc == 0) {
		p->kind = PK_ROOT;
		p->name = strdup("");
		p->dir = strdup("/");
		strv_free(&comps);
		return 0;
	}
	p->name = strdup(comps.items[nc - 1]);
	char *slash = strrchr(p->path, '/');
	p->dir = slash == p->path ? strdup("/") : s3db_strndup(p->path, (size_t)(slash - p->path));
	int rc = 0;
	if (p->virt) {
		p->kind = PK_VIRTUAL;
		if (q)
			p->query = pct_decode(q + 1);
		goto out;
	}
	if (nc == 1) {
		const char *c0 = comps.items[0];
		pthread_mutex_lock(&v->lock);
		vnode *n = vmap_get(&v->nodes, p->path);
		pthread_mutex_unlock(&v->lock);
		if (!strcmp(c0, ".status")) {
			p->kind = PK_STATUS;
		} else if (!strcmp(c0, ".errors")) {
			p->kind = PK_ERRORS;
		} else if (n) {
			p->kind = PK_SCRATCH;
		} else if ((p->res = vcatalog_find_resource(v, c0)) != NULL) {
			p->kind = PK_RES;
			p->resname = strdup(c0);
		} else {
			p->kind = PK_FREE;
		}
		goto out;
	}
	p->resname = strdup(comps.items[0]);
	p->res = vcatalog_find_resource(v, comps.items[0]);
	if (!p->res) {
		rc = -ENOENT;
		goto out;
	}
	const char *c1 = comps.items[1];
	if (nc == 2) {
		int r;
		if (!strcmp(c1, ".schema.json")) {
			p->kind = PK_SCHEMA;
		} else if (!strcmp(c1, ".partitions")) {
			p->kind = PK_PARTS;
		} else if ((r = id_of_name(c1, ".json", &p->id)) != 0) {
			p->kind = r > 0 ? PK_RECORD : PK_BADNAME;
		} else if ((r = id_of_name(c1, ".bin", &p->id)) != 0) {
			p->kind = r > 0 ? PK_CONTENT : PK_BADNAME;
		} else {
			p->kind = PK_SCRATCH;
		}
		if (p->id)
			p->key = vcache_key(p->resname, p->id);
		goto out;
	}
	if (strcmp(c1, ".partitions") != 0) {
		rc = -ENOENT;
		goto out;
	}
	p->part = strdup(comps.items[2]);
	if ((rc = vcatalog_partition_fields(v, p->res, p->part, &p->fields)) != 0)
		goto out;
	p->kind = PK_PART_DIR;
	for (size_t i = 3; i < nc; i++) {
		size_t depth = i - 3;
		const char *c = comps.items[i];
		if (depth < p->fields.count) {
			const char *f = p->fields.items[depth];
			size_t fl = strlen(f);
			if (strncmp(c, f, fl) != 0 || c[fl] != '=') {
				rc = -ENOENT;
				goto out;
			}
			strv_push(&p->segs, c);
		} else if (depth == p->fields.count && i == nc - 1) {
			if (id_of_name(c, ".json", &p->id) > 0) {
				p->kind = PK_PART_RECORD;
				p->key = vcache_key(p->resname, p->id);
			} else {
				p->kind = PK_PART_OTHER; /* an editor's swap file... */
			}
		} else {
			rc = -ENOENT;
			goto out;
		}
	}
out:
	strv_free(&comps);
	if (!rc && (!p->name || !p->dir))
		rc = -ENOMEM;
	return rc;
}

/* The listing key of a partition directory: "res/.partitions/p/f=v...". */
char *vpath_part_dir_key(const vpath *p)
{
	sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b, "%s/.partitions/%s", p->resname, p->part);
	for (size_t i = 0; i < p->segs.count; i++)
		sbuf_printf(&b, "/%s", p->segs.items[i]);
	return sbuf_steal(&b);
}

/* Splits "res/id" (malloc'd parts). */
int vpath_split_key(const char *key, char **res, char **id)
{
	const char *slash = strchr(key, '/');
	*res = slash ? s3db_strndup(key, (size_t)(slash - key)) : NULL;
	*id = slash ? strdup(slash + 1) : NULL;
	if (*res && *id)
		return 0;
	free(*res);
	free(*id);
	return -ENOMEM;
}
