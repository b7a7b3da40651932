/*
 * vfs_cache.h — what the file tree remembers of S3: rendered records,
 * directory listings, names known to be missing, and a persistent copy of
 * the rendered records on local disk.
 *
 * Records: keyed "res/id" (neither part can hold '/'); each entry keeps
 * the rendered text (pretty JSON + "\n"), the object's validators (ETag,
 * size, LastModified) and two clocks: `validated_ms` (monotonic: when S3
 * last confirmed the entry — the TTLs count from it) and `read_wall_ms`
 * (wall clock: when the content was read — see vcache_validators_match).
 * Entries are kept in LRU order and evicted past max_bytes; evicting costs
 * a re-read, never data (the cache holds nothing S3 does not have).
 *
 * Listings: keyed by the directory they list ("res", or a partition
 * directory "res/.partitions/p/f=v"); a sorted vector of names and the
 * time it was listed.
 *
 * Negative entries: keyed like records; valid until `until_ms`.
 *
 * Epochs: every local change of a record (write, delete) gets a new epoch
 * stored on its entry (record or negative).  A fetch remembers the epoch
 * counter when it starts and installs its result only if no local change
 * of that record happened since (vcache_changed_since): a slow read never
 * overwrites a newer write.
 *
 * The persistent cache (cache_dir): one file per record under
 * <cache_dir>/<database id>/<2 hex>/<62 hex>, named by the SHA-256 of
 * "res\0id", holding a header line (JSON: resource, id, validators,
 * clocks, schema hash, text length) and the text.  Written to a temporary
 * name and renamed (atomic); files 0600, directories 0700 (records may
 * hold decrypted secret fields).  A file is only a candidate: the caller
 * trusts it when the LIST or a HEAD shows the same validators.
 *
 * Not thread-safe, except the vcache_disk_* functions (they touch only
 * the file system): the vfs holds its lock around the others.
 */
#ifndef S3DB_VFS_CACHE_H
#define S3DB_VFS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "db.h"
#include "vfs_map.h"

typedef struct vcache_rec {
	char *key;               /* "res/id" (owned)                       */
	char *text;              /* rendered record (owned, NUL-terminated) */
	size_t len;
	record_meta meta;        /* meta.etag "" when unknown               */
	int64_t mtime_ms;        /* updatedAt, else LastModified            */
	double validated_ms;     /* monotonic ms of the last confirmation   */
	int64_t read_wall_ms;    /* wall-clock ms when the content was read */
	const void *schema;      /* the compiled schema it was rendered with */
	char version[16];        /* the object's _v when known, else ""     */
	uint64_t gen;            /* changes whenever the text changes       */
	uint64_t opened_gen;     /* gen handed to the kernel at the last open */
	uint64_t epoch;          /* epoch of the last local change          */
	int list_changed;        /* a listing showed other validators (or
	                            could not confirm a racy read): read it
	                            again; cleared by vcache_put            */
	int64_t list_size;       /* the size that listing showed            */
	struct vcache_rec *prev, *next; /* LRU list, most recent first      */
} vcache_rec;

typedef struct vcache_dir {
	strv names;              /* sorted, unique                          */
	double listed_ms;        /* monotonic ms the listing completed: its
	                            age counts from here                    */
	double started_ms;       /* monotonic ms it started: entries
	                            confirmed since are confirmed by it     */
	size_t listed_count;     /* names that listing found (the pages its
	                            duration paid for: lookup_ttl_ms)       */
	int names_only;          /* the records were not read with it (a
	                            relist for a lookup): a readdir lists
	                            again to read them                      */
	int listing;             /* a listing of it is in flight (the vfs
	                            waits for it rather than list twice)    */
	uint64_t heads;          /* revalidations by HEAD since the listing */
	int quiet;               /* this listing found nothing another client
	                            changed since the one before it (the vfs
	                            then lists it again less often for
	                            lookups: lookup_ttl_ms, vfs_lookup.c)   */
} vcache_dir;

typedef struct vcache_neg {
	double until_ms;         /* monotonic; missing until then           */
	uint64_t epoch;          /* epoch of the local delete (0: a miss)   */
} vcache_neg;

typedef struct vcache {
	vmap recs;
	vcache_rec *head, *tail;
	size_t bytes, max_bytes;
	uint64_t evictions;
	uint64_t next_gen;
	uint64_t epoch;          /* the latest epoch handed out             */
	vmap dirs;
	vmap negs;
} vcache;

void vcache_init(vcache *c, size_t max_bytes);
void vcache_free(vcache *c);

/* "res/id" (malloc'd). */
char *vcache_key(const char *res, const char *id);

/* ---- records ------------------------------------------------------------ */

/* The entry, moved to the front of the LRU; NULL when absent.  Borrowed:
 * valid until the next call that puts or deletes. */
vcache_rec *vcache_get(vcache *c, const char *key);
/* Creates or updates an entry; takes `text` (malloc'd).  gen changes when
 * the text differs from the entry's.  Evicts least recently used entries
 * past max_bytes (never the one just put).  Drops a negative entry of the
 * key.  Returns the entry, or NULL when out of memory (text freed). */
vcache_rec *vcache_put(vcache *c, const char *key, char *text, size_t len,
                       const record_meta *meta, int64_t mtime_ms, double validated_ms,
                       int64_t read_wall_ms, const void *rendered_with);
void vcache_del(vcache *c, const char *key);
/* Drops every record and listing whose key starts with prefix (a walk
 * of every record). */
void vcache_drop_prefix(vcache *c, const char *prefix);
/* Drops the listings whose key starts with prefix (records stay: a walk
 * of the listings only, for the writes that must forget partition
 * listings). */
void vcache_drop_listings(vcache *c, const char *prefix);
/* A new epoch (for a local change). */
uint64_t vcache_new_epoch(vcache *c);
/* 1 when a local change of key happened after epoch `since`. */
int vcache_changed_since(vcache *c, const char *key, uint64_t since);

/* 1 when what S3 reports (etag, size, last_modified) is the object the
 * entry was read from, beyond doubt.  ETags alone do not tell: an object
 * with an empty body (fields in metadata) always has the ETag of the
 * empty string, so LastModified must match too — compared in whole
 * seconds, since HEAD gives seconds where LIST gives milliseconds.  Two
 * writes within one second cannot be told apart that way, so an entry
 * read less than two seconds after its LastModified second (one for the
 * resolution, one for clock skew) is never confirmed: it is read again. */
int vcache_validators_match(const vcache_rec *r, const char *etag, int64_t size,
                            int64_t last_modified_ms);
/* 1 when what S3 reports shows, beyond doubt, another object than the
 * one the entry was read from: the entry's validators came from S3 (a
 * record we wrote keeps no ETag) and the ETag, the size or the
 * LastModified second differ.  Not the same as !vcache_validators_match,
 * which also doubts an entry read too close to its LastModified. */
int vcache_validators_differ(const vcache_rec *r, const char *etag, int64_t size,
                             int64_t last_modified_ms);

/* ---- listings ------------------------------------------------------------ */

vcache_dir *vcache_dir_get(vcache *c, const char *key);
/* Stores a listing that started at started_ms and completed at
 * listed_ms; takes names (sorted here; listed_count is their number);
 * names_only and heads start at 0, `listing` is kept.  0, or -1 out of
 * memory (names freed). */
int vcache_dir_put(vcache *c, const char *key, strv *names, double started_ms, double listed_ms);
void vcache_dir_del(vcache *c, const char *key);
int vcache_dir_has(const vcache_dir *d, const char *name);
/* Adds or removes one name, keeping the order (best effort on oom). */
void vcache_dir_add(vcache_dir *d, const char *name);
void vcache_dir_remove(vcache_dir *d, const char *name);

/* ---- negative entries ----------------------------------------------------- */

/* Negative entries are kept past their time so their epochs guard slow
 * fetches; once there are VCACHE_NEG_PURGE_AT of them, those expired for
 * longer than VCACHE_NEG_GRACE_MS (far beyond any request's retries)
 * are dropped. */
#define VCACHE_NEG_PURGE_AT 4096
#define VCACHE_NEG_GRACE_MS (10.0 * 60 * 1000)

void vcache_neg_put(vcache *c, const char *key, double until_ms, uint64_t epoch);
/* Drops long-expired negative entries (see above). */
void vcache_neg_purge(vcache *c, double now_ms);
/* 1 when key is known missing at now_ms. */
int vcache_neg_valid(vcache *c, const char *key, double now_ms);
void vcache_neg_del(vcache *c, const char *key);

/* ---- persistent cache ----------------------------------------------------- */

typedef struct vcache_disk {
	char *dir;               /* <cache_dir>/<database id>; NULL: off    */
} vcache_disk;

/* What a cache file holds. */
typedef struct vcache_disk_rec {
	record_meta meta;
	int64_t mtime_ms;
	int64_t read_wall_ms;
	char schema_hash[96];    /* schema version + hash it was rendered with */
	char version[16];
	char *text;              /* malloc'd */
	size_t len;
} vcache_disk_rec;

/* Prepares <cache_dir>/<database id> (created 0700); database_id names
 * the database (a hash of its description).  S3DB_ERR_IO when the
 * directory cannot be made. */
s3db_code vcache_disk_open(vcache_disk *d, const char *cache_dir, const char *database_id,
                           s3db_error *err);
void vcache_disk_close(vcache_disk *d);
/* Reads the file of res/id into *out (0), or returns -1 when there is
 * none or it does not parse (then it is removed). */
int vcache_disk_load(const vcache_disk *d, const char *res, const char *id,
                     vcache_disk_rec *out);
void vcache_disk_rec_free(vcache_disk_rec *r);
/* Writes (atomically) the file of res/id; 0 or -errno (logged by the
 * caller; a cache that cannot be written only costs requests later). */
int vcache_disk_store(const vcache_disk *d, const char *res, const char *id,
                      const vcache_disk_rec *rec);
void vcache_disk_remove(const vcache_disk *d, const char *res, const char *id);

#endif /* S3DB_VFS_CACHE_H */
