/*
 * database.c — opening a database and keeping its catalogue, s3db.json.
 *
 * s3db_open parses the connection string, opens the store (S3 or a local
 * directory), reads s3db.json — creating an empty 21.x catalogue when the
 * prefix holds none — and compiles a schema per resource.  A catalogue
 * written by s3db.js 7.x is read-only here (FORMAT_V7).  An unreadable
 * s3db.json fails the open with S3DB_ERR_CORRUPT naming it; it is never
 * replaced.  Closing the last open handle wipes the secret key cache.
 *
 * Catalogue changes (define, drop) follow s3db.js 21.x (spec §2.2, §2.3):
 * take the lock object with If-None-Match, re-read s3db.json, apply the
 * one change to that fresh copy (so concurrent writers' resources are
 * kept), write it pretty-printed, release the lock (deleting it only while
 * it still holds our lockId).  A definition whose
 * hash differs from the current version's adds version v<max+1>; the
 * schema registry keeps every short key stable and burns removed ones.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "creds.h"
#include "db.h"
#include "secret.h"

#define CATALOG_KEY "s3db.json"
#define LOCK_KEY "plugin=s3db-core/locks/namespace=metadata/s3db-metadata.json"
#define FORMAT_VERSION "21.6.2" /* the s3db.js format we write */

/* ---- keys ------------------------------------------------------------------ */

char *db_key(const s3db *db, const char *fmt, ...)
{
	va_list ap;
	char *rel = NULL;
	va_start(ap, fmt);
	if (vasprintf(&rel, fmt, ap) < 0)
		rel = NULL;
	va_end(ap);
	if (!rel)
		return NULL;
	char *full = conn_full_key(&db->conn, rel);
	free(rel);
	return full;
}

char *db_record_key(const s3db *db, const char *resource, const char *id)
{
	return db_key(db, "resource=%s/data/id=%s", resource, id);
}

/* ---- resources table --------------------------------------------------------- */

static void resource_free(s3db_resource *r)
{
	for (size_t i = 0; i < r->nall; i++)
		schema_free(r->all[i]);
	free(r->all);
	free(r->name);
	free(r);
}

static s3db_resource *resource_lookup(s3db *db, const char *name)
{
	for (size_t i = 0; i < db->nresources; i++)
		if (!strcmp(db->resources[i]->name, name))
			return db->resources[i];
	return NULL;
}

/* Keeps a compiled schema for the resource's lifetime. */
static int resource_keep(s3db_resource *r, schema *s)
{
	if (r->nall == r->capall) {
		size_t cap = r->capall ? r->capall * 2 : 4;
		schema **p = realloc(r->all, cap * sizeof *p);
		if (!p)
			return -1;
		r->all = p;
		r->capall = cap;
	}
	r->all[r->nall++] = s;
	return 0;
}

/* Compiles the current version of every resource of the catalogue;
 * called with db->lock held for writing. */
static s3db_code catalog_compile(s3db *db, s3db_error *err)
{
	json_object *resources = NULL;
	json_object_object_get_ex(db->catalog, "resources", &resources);
	if (!resources || !json_object_is_type(resources, json_type_object))
		return S3DB_OK;
	json_object_object_foreach(resources, name, entry) {
		schema *s = NULL;
		s3db_code rc = schema_compile(name, entry, NULL, db->format, &s, err);
		if (rc != S3DB_OK) {
			s3db_error_prefix(err, "s3db.json: resource '%s'", name);
			return rc == S3DB_ERR_NOMEM ? rc : S3DB_ERR_CORRUPT;
		}
		s3db_resource *r = resource_lookup(db, name);
		if (r && r->current && r->current->hash && s->hash &&
		    !strcmp(r->current->hash, s->hash) && !strcmp(r->current->version, s->version)) {
			schema_free(s); /* unchanged */
			continue;
		}
		if (!r) {
			r = calloc(1, sizeof *r);
			if (!r || !(r->name = strdup(name))) {
				free(r);
				schema_free(s);
				return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
			}
			r->db = db;
			if (db->nresources == db->capresources) {
				size_t cap = db->capresources ? db->capresources * 2 : 8;
				s3db_resource **p = realloc(db->resources, cap * sizeof *p);
				if (!p) {
					resource_free(r);
					schema_free(s);
					return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
				}
				db->resources = p;
				db->capresources = cap;
			}
			db->resources[db->nresources++] = r;
		}
		if (resource_keep(r, s)) {
			schema_free(s);
			return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
		}
		r->current = s;
	}
	/* resources gone from the catalogue: hide them (kept until close) */
	for (size_t i = 0; i < db->nresources; i++) {
		json_object *e;
		if (!json_object_object_get_ex(resources, db->resources[i]->name, &e))
			db->resources[i]->current = NULL;
	}
	return S3DB_OK;
}

/* Reads the format of a catalogue: 21.x when any resource carries a
 * schemaRegistry or s3dbVersion's major is 8 or more; else 7.x. */
static void catalog_detect_format(s3db *db)
{
	const char *ver = s3db_json_get_string(db->catalog, "s3dbVersion");
	int major = ver ? atoi(ver) : 21;
	db->format = major >= 8 ? FORMAT_21 : FORMAT_V7;
	json_object *resources = NULL;
	if (json_object_object_get_ex(db->catalog, "resources", &resources) &&
	    json_object_is_type(resources, json_type_object)) {
		json_object_object_foreach(resources, name, entry) {
			(void)name;
			if (json_object_object_get_ex(entry, "schemaRegistry", NULL))
				db->format = FORMAT_21;
		}
	}
	db->v74 = 0;
	if (db->format == FORMAT_V7 && ver) {
		int a = 0, b = 0, c = 0;
		sscanf(ver, "%d.%d.%d", &a, &b, &c);
		db->v74 = a > 7 || (a == 7 && (b > 4 || (b == 4 && c >= 1)));
	}
}

static json_object *catalog_new(void)
{
	char now[40];
	s3db_iso8601(s3db_now_ms(), now, sizeof now);
	json_object *c = json_object_new_object();
	json_object_object_add(c, "version", json_object_new_string("1"));
	json_object_object_add(c, "s3dbVersion", json_object_new_string(FORMAT_VERSION));
	json_object_object_add(c, "lastUpdated", json_object_new_string(now));
	json_object_object_add(c, "resources", json_object_new_object());
	return c;
}

/* GETs and parses s3db.json.  NOT_FOUND passes through; an unreadable
 * catalogue is S3DB_ERR_CORRUPT (never silently replaced). */
static s3db_code catalog_fetch(s3db *db, json_object **out, char *etag, s3db_error *err)
{
	char *key = db_key(db, CATALOG_KEY);
	store_object obj;
	store_object_init(&obj);
	*out = NULL;
	if (!key)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	s3db_code rc = store_get(db->store, key, &obj, err);
	if (rc == S3DB_OK) {
		if (etag)
			memcpy(etag, obj.etag, sizeof obj.etag);
		rc = s3db_json_parse((const char *)obj.body, obj.body_len, out, err);
		if (rc == S3DB_OK && !json_object_is_type(*out, json_type_object)) {
			json_object_put(*out);
			*out = NULL;
			rc = s3db_error_set(err, S3DB_ERR_CORRUPT, "not a JSON object");
		}
		if (rc != S3DB_OK) {
			s3db_error_prefix(err, "%s is corrupt", key);
			rc = err ? (err->code = S3DB_ERR_CORRUPT) : S3DB_ERR_CORRUPT;
		} else {
			json_object *res = NULL;
			if (!json_object_object_get_ex(*out, "resources", &res))
				json_object_object_add(*out, "resources", json_object_new_object());
			else if (!json_object_is_type(res, json_type_object)) {
				json_object_put(*out);
				*out = NULL;
				rc = s3db_error_set(err, S3DB_ERR_CORRUPT,
				                    "%s is corrupt: \"resources\" is not an object", key);
			}
		}
	}
	store_object_free(&obj);
	free(key);
	return rc;
}

static s3db_code catalog_store(s3db *db, json_object *catalog, s3db_error *err)
{
	char now[40];
	s3db_iso8601(s3db_now_ms(), now, sizeof now);
	json_object_object_add(catalog, "s3dbVersion", json_object_new_string(FORMAT_VERSION));
	json_object_object_add(catalog, "lastUpdated", json_object_new_string(now));
	char *text = s3db_json_stringify(catalog, 2);
	char *key = db_key(db, CATALOG_KEY);
	s3db_code rc = S3DB_ERR_NOMEM;
	if (text && key) {
		store_put_opts opts = { .content_type = "application/json" };
		store_meta none;
		store_meta_init(&none);
		rc = store_put(db->store, key, &none, text, strlen(text), &opts, NULL, err);
	} else {
		s3db_error_set(err, rc, NULL);
	}
	free(text);
	free(key);
	return rc;
}

/* ---- the catalogue lock (§2.3) ---------------------------------------------- */

#define LOCK_ID_SIZE 128

/* The lock object's body; lock_id receives its lockId, unique to this
 * acquisition (host, pid, time and a per-process counter), so that
 * release can tell our lock from one that replaced it. */
static char *lock_body(char lock_id[LOCK_ID_SIZE], int64_t now)
{
	static atomic_uint sequence;
	char host[64] = "";
	gethostname(host, sizeof host - 1);
	snprintf(lock_id, LOCK_ID_SIZE, "lock-holder-s3dbfs-%s-%d-%lld-%u", host, (int)getpid(),
	         (long long)now, atomic_fetch_add(&sequence, 1));
	return s3db_asprintf("{\"lockId\":\"%s\",\"holderId\":\"holder-s3dbfs-%s-%d\","
	                     "\"acquiredAt\":%lld,\"expiresAt\":%lld,\"_expiresAt\":%lld}",
	                     lock_id, host, (int)getpid(), (long long)now, (long long)(now + 30000),
	                     (long long)(now + 90000));
}

/* Takes the catalogue lock: create it with If-None-Match; if another
 * holder's lock has expired, take it over with If-Match; otherwise retry
 * with backoff.  Returns the lock object's key in *key_out (malloc'd) and
 * our lockId in lock_id_out. */
static s3db_code catalog_lock(s3db *db, char **key_out, char lock_id_out[LOCK_ID_SIZE],
                              s3db_error *err)
{
	char *key = db_key(db, LOCK_KEY);
	if (!key)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	store_meta none;
	store_meta_init(&none);
	for (int attempt = 0; attempt < 50; attempt++) {
		char lock_id[LOCK_ID_SIZE];
		int64_t now = s3db_now_ms();
		char *body = lock_body(lock_id, now);
		store_put_opts opts = { .content_type = "application/json", .if_none_match = 1 };
		s3db_error e = { 0 };
		s3db_code rc = store_put(db->store, key, &none, body, strlen(body), &opts, NULL, &e);
		if (rc == S3DB_ERR_PRECONDITION) {
			/* someone holds it: take it over when it has expired */
			store_object held;
			store_object_init(&held);
			if (store_get(db->store, key, &held, NULL) == S3DB_OK) {
				json_object *j = NULL;
				int64_t expires = 0;
				if (s3db_json_parse((const char *)held.body, held.body_len, &j, NULL) == S3DB_OK) {
					json_object *x;
					if (json_object_object_get_ex(j, "expiresAt", &x))
						expires = json_object_get_int64(x);
				}
				json_object_put(j);
				if (expires && expires <= now) {
					store_put_opts take = { .content_type = "application/json",
					                        .if_match = held.etag };
					rc = store_put(db->store, key, &none, body, strlen(body), &take, NULL, &e);
				}
			}
			store_object_free(&held);
		}
		free(body);
		if (rc == S3DB_OK) {
			*key_out = key;
			memcpy(lock_id_out, lock_id, LOCK_ID_SIZE);
			return S3DB_OK;
		}
		if (rc != S3DB_ERR_PRECONDITION && rc != S3DB_ERR_NOT_FOUND) {
			free(key);
			if (err)
				*err = e;
			return rc;
		}
		usleep((useconds_t)(100000 + (attempt < 10 ? attempt : 10) * 50000));
	}
	free(key);
	return s3db_error_set(err, S3DB_ERR_PRECONDITION,
	                      "s3db.json is locked by another writer (lock object %s)", LOCK_KEY);
}

/* Releases the lock (§2.3): deletes the lock object only while it still
 * holds our lockId — had ours expired and another writer taken it over,
 * deleting it would break that writer's lock.  When the object cannot be
 * read it is deleted anyway (it would otherwise block every writer until
 * it expires).  Frees key. */
static void catalog_unlock(s3db *db, char *key, const char *lock_id)
{
	store_object held;
	store_object_init(&held);
	s3db_code rc = store_get(db->store, key, &held, NULL);
	int ours = 1;
	if (rc == S3DB_ERR_NOT_FOUND) {
		ours = 0; /* already gone */
	} else if (rc == S3DB_OK) {
		json_object *j = NULL;
		if (s3db_json_parse((const char *)held.body, held.body_len, &j, NULL) == S3DB_OK) {
			const char *holder = s3db_json_get_string(j, "lockId");
			ours = holder && !strcmp(holder, lock_id);
		}
		json_object_put(j);
	}
	store_object_free(&held);
	if (ours)
		store_delete(db->store, key, NULL);
	free(key);
}

/* Applies `change` to a fresh copy of the catalogue under the lock, then
 * stores it and recompiles.  change returns S3DB_OK to write. */
typedef s3db_code (*catalog_change_fn)(s3db *db, json_object *catalog, void *ud, s3db_error *err);

static s3db_code catalog_update(s3db *db, catalog_change_fn change, void *ud, s3db_error *err)
{
	if (db->format == FORMAT_V7)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "this database was written by s3db.js 7.x and is read-only here");
	char *lock = NULL, lock_id[LOCK_ID_SIZE];
	s3db_code rc = catalog_lock(db, &lock, lock_id, err);
	if (rc != S3DB_OK)
		return rc;
	json_object *fresh = NULL;
	rc = catalog_fetch(db, &fresh, NULL, err);
	if (rc == S3DB_ERR_NOT_FOUND) {
		fresh = catalog_new();
		rc = S3DB_OK;
	}
	if (rc == S3DB_OK)
		rc = change(db, fresh, ud, err);
	if (rc == S3DB_OK)
		rc = catalog_store(db, fresh, err);
	catalog_unlock(db, lock, lock_id);
	if (rc == S3DB_OK) {
		pthread_rwlock_wrlock(&db->lock);
		json_object_put(db->catalog);
		db->catalog = fresh;
		fresh = NULL;
		rc = catalog_compile(db, err);
		pthread_rwlock_unlock(&db->lock);
	}
	json_object_put(fresh);
	return rc;
}

/* ---- defining resources ------------------------------------------------------ */

static s3db_code check_resource_name(const char *name, s3db_error *err)
{
	if (!name || !*name)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "resource name is empty");
	if (strlen(name) > 200)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "resource name is longer than 200 bytes");
	if (name[0] == '.' || !s3db_utf8_valid(name, strlen(name)))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "resource name '%s' is not allowed", name);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || strchr("/\\=%", *p))
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "resource name '%s' contains '%c', which s3db names cannot hold",
			                      name, *p < 0x20 ? '?' : *p);
	return S3DB_OK;
}

static json_object *get_or(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int get_bool(json_object *o, const char *key, int dflt)
{
	json_object *v = get_or(o, key);
	return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : dflt;
}

/* Builds versions[v] of s3db.json from a createResource() definition. */
static s3db_code version_entry_from_definition(json_object *def, json_object **out, s3db_error *err)
{
	json_object *attrs = get_or(def, "attributes");
	if (attrs && !json_object_is_type(attrs, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "\"attributes\" must be an object");
	const char *behavior = s3db_json_get_string(def, "behavior");
	static const char *const behaviors[] = { "user-managed", "enforce-limits", "truncate-data",
		                                 "body-overflow", "body-only", NULL };
	if (!behavior)
		behavior = "user-managed";
	int ok = 0;
	for (int i = 0; behaviors[i]; i++)
		ok |= !strcmp(behavior, behaviors[i]);
	if (!ok)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "unknown behavior '%s' (user-managed, enforce-limits, "
		                      "truncate-data, body-overflow, body-only)", behavior);
	int timestamps = get_bool(def, "timestamps", 0);
	json_object *parts = get_or(def, "partitions");
	if (parts && !json_object_is_type(parts, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "\"partitions\" must be an object");

	json_object *a = json_object_new_object();
	if (attrs) {
		json_object_object_foreach(attrs, k, v)
			json_object_object_add(a, k, json_object_get(v));
	}
	json_object *p = json_object_new_object();
	if (parts) {
		json_object_object_foreach(parts, pk, pv) {
			json_object *fields = get_or(pv, "fields");
			if (!fields || !json_object_is_type(fields, json_type_object)) {
				json_object_put(a);
				json_object_put(p);
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "partition '%s' needs an object \"fields\"", pk);
			}
			json_object_object_add(p, pk, json_object_get(pv));
		}
	}
	if (timestamps) {
		if (!get_or(a, "createdAt"))
			json_object_object_add(a, "createdAt", json_object_new_string("datetime|optional"));
		if (!get_or(a, "updatedAt"))
			json_object_object_add(a, "updatedAt", json_object_new_string("datetime|optional"));
		const char *auto_parts[][2] = { { "byCreatedDate", "createdAt" },
			                        { "byUpdatedDate", "updatedAt" } };
		for (int i = 0; i < 2; i++) {
			if (get_or(p, auto_parts[i][0]))
				continue;
			json_object *f = json_object_new_object();
			json_object_object_add(f, auto_parts[i][1], json_object_new_string("date|maxlength:10"));
			json_object *pd = json_object_new_object();
			json_object_object_add(pd, "fields", f);
			json_object_object_add(p, auto_parts[i][0], pd);
		}
	}
	char *hash = schema_definition_hash(a, behavior, p, timestamps);
	if (!hash) {
		json_object_put(a);
		json_object_put(p);
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	}
	json_object *idsize = get_or(def, "idSize");
	char now[40];
	s3db_iso8601(s3db_now_ms(), now, sizeof now);
	json_object *e = json_object_new_object();
	json_object_object_add(e, "hash", json_object_new_string(hash));
	json_object_object_add(e, "attributes", a);
	json_object_object_add(e, "behavior", json_object_new_string(behavior));
	json_object_object_add(e, "timestamps", json_object_new_boolean(timestamps));
	json_object_object_add(e, "partitions", p);
	json_object_object_add(e, "paranoid", json_object_new_boolean(get_bool(def, "paranoid", 1)));
	json_object_object_add(e, "allNestedObjectsOptional",
	                       json_object_new_boolean(get_bool(def, "allNestedObjectsOptional", 1)));
	json_object_object_add(e, "autoDecrypt", json_object_new_boolean(get_bool(def, "autoDecrypt", 1)));
	json_object_object_add(e, "cache", json_object_new_boolean(get_bool(def, "cache", 0)));
	json_object_object_add(e, "hooks", json_object_new_object());
	json_object_object_add(e, "idSize", json_object_new_int(idsize && json_object_get_int(idsize) > 0
	                                                            ? json_object_get_int(idsize) : 22));
	json_object_object_add(e, "idGenerator", json_object_new_string("default"));
	json_object_object_add(e, "createdAt", json_object_new_string(now));
	free(hash);
	*out = e;
	return S3DB_OK;
}

typedef struct define_args {
	const char *name;
	json_object *version_entry;
} define_args;

/* The largest n of the "v<n>" keys of versions (-1 when none). */
static int max_version(json_object *versions)
{
	int max = -1;
	json_object_object_foreach(versions, k, v) {
		(void)v;
		if (k[0] == 'v' && atoi(k + 1) > max)
			max = atoi(k + 1);
	}
	return max;
}

static s3db_code define_change(s3db *db, json_object *catalog, void *ud, s3db_error *err)
{
	define_args *a = ud;
	json_object *resources = get_or(catalog, "resources");
	json_object *entry = get_or(resources, a->name);
	const char *new_hash = s3db_json_get_string(a->version_entry, "hash");
	if (entry) {
		const char *cur = s3db_json_get_string(entry, "currentVersion");
		json_object *versions = get_or(entry, "versions");
		json_object *ce = cur ? get_or(versions, cur) : NULL;
		const char *cur_hash = s3db_json_get_string(ce, "hash");
		if (cur_hash && new_hash && !strcmp(cur_hash, new_hash))
			return S3DB_OK; /* same definition: nothing to do */
	} else {
		entry = json_object_new_object();
		json_object_object_add(entry, "currentVersion", json_object_new_string("v1"));
		json_object_object_add(entry, "partitions", json_object_new_object());
		json_object_object_add(entry, "createdBy", json_object_new_string("user"));
		json_object_object_add(entry, "versions", json_object_new_object());
		json_object_object_add(resources, a->name, entry);
	}
	json_object *versions = get_or(entry, "versions");
	if (!versions || !json_object_is_type(versions, json_type_object)) {
		versions = json_object_new_object();
		json_object_object_add(entry, "versions", versions);
	}
	int next = max_version(versions) + 1;
	if (next < 1)
		next = 1;
	char vname[32];
	snprintf(vname, sizeof vname, "v%d", next);
	json_object_object_add(versions, vname, json_object_get(a->version_entry));
	json_object_object_add(entry, "currentVersion", json_object_new_string(vname));
	json_object_object_add(entry, "partitions",
	                       json_object_get(get_or(a->version_entry, "partitions")));
	s3db_code rc = schema_registry_update(entry, get_or(a->version_entry, "attributes"), err);
	if (rc != S3DB_OK)
		return rc;
	if (!get_or(entry, "pluginSchemaRegistry"))
		json_object_object_add(entry, "pluginSchemaRegistry", json_object_new_object());
	(void)db;
	return S3DB_OK;
}

s3db_code s3db_resource_define(s3db *db, const char *name, json_object *definition,
                               s3db_resource **out, s3db_error *err)
{
	s3db_code rc = check_resource_name(name, err);
	if (rc != S3DB_OK)
		return rc;
	if (!definition || !json_object_is_type(definition, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "resource '%s': the definition must be "
		                      "a JSON object {attributes, behavior, ...}", name);
	define_args a = { .name = name };
	rc = version_entry_from_definition(definition, &a.version_entry, err);
	if (rc != S3DB_OK) {
		s3db_error_prefix(err, "resource '%s'", name);
		return rc;
	}
	/* compile once before writing: a definition that does not compile is
	 * refused without touching s3db.json */
	json_object *probe = json_object_new_object();
	json_object *pv = json_object_new_object();
	json_object_object_add(pv, "v1", json_object_get(a.version_entry));
	json_object_object_add(probe, "currentVersion", json_object_new_string("v1"));
	json_object_object_add(probe, "versions", pv);
	rc = schema_registry_update(probe, get_or(a.version_entry, "attributes"), err);
	schema *s = NULL;
	if (rc == S3DB_OK)
		rc = schema_compile(name, probe, NULL, FORMAT_21, &s, err);
	schema_free(s);
	json_object_put(probe);
	if (rc == S3DB_OK)
		rc = catalog_update(db, define_change, &a, err);
	json_object_put(a.version_entry);
	if (rc != S3DB_OK)
		return rc;
	if (out)
		*out = s3db_resource_find(db, name);
	return S3DB_OK;
}

static s3db_code drop_change(s3db *db, json_object *catalog, void *ud, s3db_error *err)
{
	json_object_object_del(get_or(catalog, "resources"), (const char *)ud);
	return S3DB_OK;
}

typedef struct key_collect {
	strv keys;
} key_collect;

static int collect_key(void *ud, const store_entry *e)
{
	return strv_push(&((key_collect *)ud)->keys, e->key) ? 1 : 0;
}

s3db_code s3db_resource_drop(s3db *db, const char *name, s3db_error *err)
{
	if (!s3db_resource_find(db, name))
		return s3db_error_set(err, S3DB_ERR_NO_RESOURCE, "no resource '%s'", name);
	if (db->format == FORMAT_V7)
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "this database was written by s3db.js 7.x and is read-only here");
	char *prefix = db_key(db, "resource=%s/", name);
	key_collect kc;
	strv_init(&kc.keys);
	s3db_code rc = prefix ? store_list_all(db->store, prefix, collect_key, &kc, err)
	                      : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (rc == S3DB_OK && kc.keys.count)
		rc = store_delete_many(db->store, (const char *const *)kc.keys.items, kc.keys.count, err);
	strv_free(&kc.keys);
	free(prefix);
	if (rc == S3DB_OK)
		rc = catalog_update(db, drop_change, (void *)name, err);
	return rc;
}

/* ---- open / close ----------------------------------------------------------- */

static s3db_code open_store(s3db *db, const char *connstr, s3db_error *err)
{
	if (db->conn.kind == CONN_FILE)
		return store_file_open(db->conn.root, &db->store, err);
	creds c;
	creds_init(&c);
	if (db->conn.access_key) {
		c.access_key = strdup(db->conn.access_key);
		c.secret_key = strdup(db->conn.secret_key ? db->conn.secret_key : "");
		if (db->conn.session_token)
			c.session_token = strdup(db->conn.session_token);
	}
	s3db_code rc = creds_fill(&c, err);
	if (rc != S3DB_OK) {
		creds_free(&c);
		return rc;
	}
	const char *region = db->conn.region;
	if (!strstr(connstr, "region=") && c.region)
		region = c.region;
	const char *endpoint = db->conn.endpoint;
	if (s3db_str_starts(connstr, "s3://") && !strstr(connstr, "endpoint=") && c.endpoint)
		endpoint = c.endpoint;
	store_s3_config cfg = {
		.endpoint = endpoint,
		.bucket = db->conn.bucket,
		.region = region,
		.path_style = db->conn.path_style,
		.access_key = c.access_key,
		.secret_key = c.secret_key,
		.session_token = c.session_token,
		.parallelism = db->parallelism,
		.timeout_ms = db->conn.timeout_ms,
		.max_retries = db->conn.max_retries,
	};
	rc = store_s3_open(&cfg, &db->store, err);
	creds_free(&c);
	return rc;
}

/* The store's hook: calls the database's hook, if any.  The pair (hook,
 * userdata) is read under the read lock so a hook is never called with
 * another hook's userdata while s3db_set_request_hook runs; the call
 * itself is made without the lock (a hook may use the database). */
static void request_hook_forward(void *ud, const s3db_request_info *info)
{
	s3db *db = ud;
	pthread_rwlock_rdlock(&db->lock);
	s3db_request_hook hook = db->hook;
	void *userdata = db->hook_userdata;
	pthread_rwlock_unlock(&db->lock);
	if (hook)
		hook(userdata, info);
	observer_list *ol = &db->observers;
	pthread_rwlock_rdlock(&ol->lock);
	for (size_t i = 0; i < ol->count; i++)
		ol->items[i].fn(ol->items[i].userdata, info);
	pthread_rwlock_unlock(&ol->lock);
}

/* ---- request observers and the read cache ------------------------------------ */

int db_observer_add(s3db *db, s3db_request_hook fn, void *userdata)
{
	if (!fn)
		return 0;
	observer_list *ol = &db->observers;
	int id = 0;
	pthread_rwlock_wrlock(&ol->lock);
	request_observer *p = realloc(ol->items, (ol->count + 1) * sizeof *p);
	if (p) {
		ol->items = p;
		id = ++ol->next_id;
		p[ol->count++] = (request_observer){ .id = id, .fn = fn, .userdata = userdata };
	}
	pthread_rwlock_unlock(&ol->lock);
	return id;
}

void db_observer_remove(s3db *db, int id)
{
	observer_list *ol = &db->observers;
	pthread_rwlock_wrlock(&ol->lock);
	for (size_t i = 0; i < ol->count; i++) {
		if (ol->items[i].id == id) {
			memmove(&ol->items[i], &ol->items[i + 1],
			        (ol->count - i - 1) * sizeof *ol->items);
			ol->count--;
			break;
		}
	}
	pthread_rwlock_unlock(&ol->lock);
}

const s3db_read_cache *db_read_cache(s3db *db, void **ud)
{
	pthread_rwlock_rdlock(&db->lock);
	const s3db_read_cache *c = db->read_cache;
	if (c)
		*ud = db->read_cache_ud;
	pthread_rwlock_unlock(&db->lock);
	return c;
}

void db_set_read_cache(s3db *db, const s3db_read_cache *cache, void *ud)
{
	pthread_rwlock_wrlock(&db->lock);
	db->read_cache = cache;
	db->read_cache_ud = cache ? ud : NULL;
	pthread_rwlock_unlock(&db->lock);
}

/* Handles opened and not yet closed.  When the last one closes, the
 * cache of derived secret keys is wiped (secret.h): key material must not
 * outlive every database that used it.  (An open racing that close only
 * costs a key derivation.) */
static atomic_int open_handles;

static void db_free(s3db *db);

s3db_code s3db_open(const char *connection_string, const s3db_options *opts, s3db **out,
                    s3db_error *err)
{
	*out = NULL;
	s3db *db = calloc(1, sizeof *db);
	if (!db)
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	pthread_rwlock_init(&db->lock, NULL);
	pthread_rwlock_init(&db->observers.lock, NULL);
	event_bus_init(&db->bus);
	s3db_code rc = conn_parse(connection_string, &db->conn, err);
	if (rc != S3DB_OK) {
		db_free(db);
		return rc;
	}
	if (opts && opts->timeout_ms > 0)
		db->conn.timeout_ms = opts->timeout_ms;
	if (opts && opts->max_retries > 0)
		db->conn.max_retries = opts->max_retries;
	db->parallelism = opts && opts->parallelism > 0 ? opts->parallelism
	                  : db->conn.parallelism > 0 ? db->conn.parallelism : 16;
	const char *pass = opts && opts->passphrase ? opts->passphrase : getenv("S3DB_PASSPHRASE");
	db->passphrase = strdup(pass && *pass ? pass : "secret");
	rc = open_store(db, connection_string, err);
	if (rc != S3DB_OK) {
		db_free(db);
		return rc;
	}
	store_set_hook(db->store, request_hook_forward, db);
	json_object *catalog = NULL;
	rc = catalog_fetch(db, &catalog, NULL, err);
	if (rc == S3DB_ERR_NOT_FOUND && (!opts || opts->create_if_missing >= 0)) {
		s3db_error_clear(err);
		catalog = catalog_new();
		rc = catalog_store(db, catalog, err);
	}
	if (rc != S3DB_OK) {
		json_object_put(catalog);
		db_free(db);
		return rc;
	}
	db->catalog = catalog;
	catalog_detect_format(db);
	rc = catalog_compile(db, err);
	if (rc != S3DB_OK) {
		db_free(db);
		return rc;
	}
	atomic_fetch_add(&open_handles, 1);
	*out = db;
	return S3DB_OK;
}

/* Frees a handle, opened or half-built by a failed open. */
static void db_free(s3db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nresources; i++)
		resource_free(db->resources[i]);
	free(db->resources);
	json_object_put(db->catalog);
	store_close(db->store);
	if (db->passphrase) {
		memset(db->passphrase, 0, strlen(db->passphrase));
		free(db->passphrase);
	}
	conn_info_free(&db->conn);
	event_bus_destroy(&db->bus);
	free(db->observers.items);
	pthread_rwlock_destroy(&db->observers.lock);
	pthread_rwlock_destroy(&db->lock);
	free(db);
}

void s3db_close(s3db *db)
{
	if (!db)
		return;
	plugin_host_free(db); /* plugins stop while the database still works */
	db_free(db);
	if (atomic_fetch_sub(&open_handles, 1) == 1)
		secret_cache_clear();
}

s3db_code s3db_reload(s3db *db, s3db_error *err)
{
	json_object *catalog = NULL;
	s3db_code rc = catalog_fetch(db, &catalog, NULL, err);
	if (rc != S3DB_OK)
		return rc;
	pthread_rwlock_wrlock(&db->lock);
	json_object_put(db->catalog);
	db->catalog = catalog;
	catalog_detect_format(db);
	rc = catalog_compile(db, err);
	pthread_rwlock_unlock(&db->lock);
	return rc;
}

char *s3db_describe(const s3db *db)
{
	return conn_describe(&db->conn);
}

void s3db_set_request_hook(s3db *db, s3db_request_hook hook, void *userdata)
{
	pthread_rwlock_wrlock(&db->lock);
	db->hook_userdata = userdata;
	db->hook = hook;
	pthread_rwlock_unlock(&db->lock);
}

s3db_code s3db_resource_names(s3db *db, char ***names, s3db_error *err)
{
	strv v;
	strv_init(&v);
	pthread_rwlock_rdlock(&db->lock);
	for (size_t i = 0; i < db->nresources; i++)
		if (db->resources[i]->current)
			strv_push(&v, db->resources[i]->name);
	pthread_rwlock_unlock(&db->lock);
	strv_sort(&v);
	*names = strv_steal(&v);
	return *names ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

s3db_resource *s3db_resource_find(s3db *db, const char *name)
{
	pthread_rwlock_rdlock(&db->lock);
	s3db_resource *r = resource_lookup(db, name);
	if (r && !r->current)
		r = NULL;
	pthread_rwlock_unlock(&db->lock);
	return r;
}

const char *s3db_resource_name(const s3db_resource *res)
{
	return res->name;
}

json_object *s3db_resource_definition(s3db_resource *res)
{
	pthread_rwlock_rdlock(&res->db->lock);
	json_object *resources = get_or(res->db->catalog, "resources");
	json_object *entry = get_or(resources, res->name);
	json_object *copy = NULL;
	if (entry) {
		const char *cur = s3db_json_get_string(entry, "currentVersion");
		json_object *ve = cur ? get_or(get_or(entry, "versions"), cur) : NULL;
		if (ve)
			json_object_deep_copy(ve, &copy, NULL);
	}
	pthread_rwlock_unlock(&res->db->lock);
	return copy;
}

const schema *db_current_schema(s3db_resource *res)
{
	pthread_rwlock_rdlock(&res->db->lock);
	const schema *s = res->current;
	pthread_rwlock_unlock(&res->db->lock);
	return s;
}

const schema *db_schema_for_version(s3db_resource *res, const char *v)
{
	const schema *cur = db_current_schema(res);
	if (!v || !cur || !strcmp(cur->version, v) || res->db->format != FORMAT_V7)
		return cur; /* 21.x decodes with the current registry (§4.5) */
	s3db *db = res->db;
	pthread_rwlock_wrlock(&db->lock);
	const schema *found = NULL;
	for (size_t i = 0; i < res->nall && !found; i++)
		if (!strcmp(res->all[i]->version, v))
			found = res->all[i];
	if (!found) {
		json_object *entry = get_or(get_or(db->catalog, "resources"), res->name);
		schema *s = NULL;
		if (entry && get_or(get_or(entry, "versions"), v) &&
		    schema_compile(res->name, entry, v, db->format, &s, NULL) == S3DB_OK &&
		    resource_keep(res, s) == 0)
			found = s;
		else
			schema_free(s);
	}
	pthread_rwlock_unlock(&db->lock);
	return found ? found : cur;
}
