/*
 * vfs_lookup.c — what the vfs knows of S3: the record cache and the
 * listings of resources and partitions.
 *
 * getattr and open answer from the cache while it is fresh — record_ttl
 * since S3 last confirmed an entry, or a listing younger than dir_ttl
 * that confirmed it.  A stale entry is revalidated by listing its
 * directory again when that is cheaper than HEADs (relist_pays: one page,
 * or as many HEADs already spent there as the listing has pages), else
 * with one HEAD (resource_head_meta), and re-read only when the
 * validators differ (see vcache_validators_match for why ETags alone do
 * not do).  readdir of a resource is one LIST per 1,000 ids; the ids
 * whose entry the LIST does not confirm are looked up in the persistent
 * cache (confirmed by the LIST's validators) and the rest fetched
 * `prefetch` at a time (pool_run), one GET each when the LIST gives a
 * body size (HEAD when there is no body or a large one), so every getattr
 * that follows is a cache hit.  Lookups of names a fresh listing lacks
 * cost nothing: mkdir starts a known-empty listing, our writes and
 * deletes keep listings current, and a stale listing is listed again
 * (names only) rather than asked about name by name — in the background
 * (refresh_start: one thread per directory at a time, joined by the next
 * refresh or vfs_close) while, for a window past dir_ttl, the stale
 * listing still answers lookups (stale-while-revalidate,
 * vlookup_ensure_record), so that writers never wait for a relist; a
 * large directory whose last relist found nothing changed by another
 * client is relisted for lookups only every 20 times what listing it
 * again would cost at its present size (lookup_ttl_ms: changes of ours in
 * flight are told apart by v->busy; at most every minute).
 *
 * The change log (v->changes) remembers our own writes and deletes made
 * while a listing was in flight, so that the listing, older than they
 * are, is corrected before it is installed (change_apply).  A fetch that
 * ran concurrently with a local change is not installed (cache epochs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vfs_int.h"

/* ---- the change log (listings made while we wrote) ------------------------------ */

/* Notes a local change of res/id at epoch; lock held. */
void vlookup_change_note(vfs *v, const char *key, uint64_t epoch, int exists)
{
	vchange *c = &v->changes[v->nchanges % VFS_CHANGES_KEPT];
	free(c->key);
	c->key = strdup(key);
	c->epoch = epoch;
	c->exists = exists;
	v->nchanges++;
}

/* Applies the local changes of resource res made after epoch `since` to
 * a listing just read; returns 0, or -1 when changes were forgotten (the
 * listing must then not be trusted).  Lock held. */
static int change_apply(vfs *v, const char *res, vcache_dir *d, uint64_t since)
{
	size_t kept = v->nchanges < VFS_CHANGES_KEPT ? v->nchanges : VFS_CHANGES_KEPT;
	size_t plen = strlen(res);
	int complete = kept < VFS_CHANGES_KEPT;
	for (size_t k = 0; k < kept; k++) {
		vchange *c = &v->changes[(v->nchanges - kept + k) % VFS_CHANGES_KEPT];
		if (!c->key)
			continue;
		if (c->epoch <= since) {
			complete = 1;
			continue;
		}
		if (strncmp(c->key, res, plen) != 0 || c->key[plen] != '/')
			continue;
		if (c->exists)
			vcache_dir_add(d, c->key + plen + 1);
		else
			vcache_dir_remove(d, c->key + plen + 1);
	}
	return complete ? 0 : -1;
}

/* ---- the record cache ---------------------------------------------------------------- */

/* The mtime of a record: its updatedAt when the resource keeps
 * timestamps and the value parses, else fallback_ms. */
int64_t vlookup_record_mtime(const schema *s, json_object *rec, int64_t fallback_ms)
{
	int64_t ms;
	const char *u = s && s->timestamps ? s3db_json_get_string(rec, "updatedAt") : NULL;
	if (u && s3db_parse_iso8601(u, &ms) == 0)
		return ms;
	return fallback_ms;
}

/* Writes an entry to the persistent cache (no lock held). */
static void disk_store_entry(vfs *v, const char *res, const char *id, const char *text,
                             size_t len, const record_meta *meta, int64_t mtime_ms,
                             int64_t read_wall_ms, const schema *s)
{
	if (!v->disk.dir)
		return;
	vcache_disk_rec dr;
	memset(&dr, 0, sizeof dr);
	dr.meta = *meta;
	dr.mtime_ms = mtime_ms;
	dr.read_wall_ms = read_wall_ms;
	vcatalog_schema_tag(s, dr.schema_hash, sizeof dr.schema_hash);
	dr.text = (char *)text;
	dr.len = len;
	int rc = vcache_disk_store(&v->disk, res, id, &dr);
	if (rc)
		log_msg(LOG_LVL_INFO, "persistent cache: %s/%s: %s", res, id, strerror(-rc));
}

/* The store says res/id does not exist: remember that for negative_ttl
 * and drop it from the listing and the persistent cache — unless the cache
 * changed since epoch0 (a write of ours raced the request).  No lock held. */
static void forget_missing_record(vfs *v, const char *key, const char *rname, const char *id,
                                  uint64_t epoch0)
{
	pthread_mutex_lock(&v->lock);
	if (!vcache_changed_since(&v->cache, key, epoch0)) {
		vcache_neg_put(&v->cache, key, s3db_monotonic_ms() + vfs_ttl_ms(v->o.negative_ttl), 0);
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		if (d)
			vcache_dir_remove(d, id);
	}
	pthread_mutex_unlock(&v->lock);
	vcache_disk_remove(&v->disk, rname, id);
}

/* Reads res/id from S3 and installs it in the cache and the persistent
 * cache: one GET when a listing said its size (size_hint, see
 * resource_get_meta_sized), else HEAD (+ GET when it has a body).  0,
 * -ENOENT (then a negative entry), or -errno.  No lock held. */
static int fetch_record_sized(vfs *v, s3db_resource *res, const char *id, int64_t size_hint,
                              const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	char *key = vcache_key(rname, id);
	if (!key)
		return -ENOMEM;
	const schema *s = db_current_schema(res);
	pthread_mutex_lock(&v->lock);
	uint64_t epoch0 = v->cache.epoch;
	v->misses++;
	pthread_mutex_unlock(&v->lock);
	int64_t wall0 = s3db_now_ms();
	json_object *rec = NULL;
	record_meta meta;
	memset(&meta, 0, sizeof meta);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = resource_get_meta_sized(res, id, size_hint, ctx, &rec, &meta, &err);
	int rc = 0;
	if (c == S3DB_ERR_NOT_FOUND) {
		forget_missing_record(v, key, rname, id, epoch0);
		rc = -ENOENT;
	} else if (c != S3DB_OK) {
		rc = vfs_errno_of(v, c);
		log_msg(LOG_LVL_WARN, "reading %s/%s: %s", rname, id, err.message);
	} else {
		size_t len = 0;
		char *text = vrender_record(rec, &len);
		int64_t mtime = vlookup_record_mtime(s, rec, meta.last_modified_ms);
		char *copy = text && v->disk.dir ? s3db_strndup(text, len) : NULL;
		if (!text) {
			rc = -ENOMEM;
		} else {
			pthread_mutex_lock(&v->lock);
			if (!vcache_changed_since(&v->cache, key, epoch0))
				vcache_put(&v->cache, key, text, len, &meta, mtime, s3db_monotonic_ms(),
				           wall0, s);
			else
				free(text);
			pthread_mutex_unlock(&v->lock);
		}
		if (copy)
			disk_store_entry(v, rname, id, copy, len, &meta, mtime, wall0, s);
		free(copy);
	}
	json_object_put(rec);
	free(key);
	return rc;
}

/* fetch_record_sized without a size: HEAD (+ GET). */
static int fetch_record(vfs *v, s3db_resource *res, const char *id, const s3db_ctx *ctx)
{
	return fetch_record_sized(v, res, id, -1, ctx);
}

/* One HEAD: confirms the entry of res/id (0), or re-reads it when it
 * changed (fetch_record's result).  No lock held. */
static int revalidate_record(vfs *v, s3db_resource *res, const char *id, const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	char *key = vcache_key(rname, id);
	if (!key)
		return -ENOMEM;
	const schema *s = db_current_schema(res);
	pthread_mutex_lock(&v->lock);
	uint64_t epoch0 = v->cache.epoch;
	pthread_mutex_unlock(&v->lock);
	record_meta m;
	memset(&m, 0, sizeof m);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = resource_head_meta(res, id, &m, &err);
	int rc;
	if (c == S3DB_ERR_NOT_FOUND) {
		forget_missing_record(v, key, rname, id, epoch0);
		rc = -ENOENT;
	} else if (c != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "revalidating %s/%s: %s", rname, id, err.message);
		rc = vfs_errno_of(v, c);
	} else {
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, key);
		int same = e && e->schema == (const void *)s &&
		           vcache_validators_match(e, m.etag, m.size, m.last_modified_ms);
		if (same) {
			e->validated_ms = s3db_monotonic_ms();
			v->revalidations++;
		}
		pthread_mutex_unlock(&v->lock);
		rc = same ? 0 : fetch_record(v, res, id, ctx);
	}
	free(key);
	return rc;
}

/* Installs the persistent cache's copy of res/id as a stale entry (to be
 * confirmed by a HEAD or a LIST) when it was rendered with the current
 * schema; 1 when installed.  No lock held. */
static int disk_candidate(vfs *v, s3db_resource *res, const char *id, const char *key)
{
	if (!v->disk.dir)
		return 0;
	const char *rname = s3db_resource_name(res);
	const schema *s = db_current_schema(res);
	vcache_disk_rec dr;
	if (vcache_disk_load(&v->disk, rname, id, &dr) != 0)
		return 0;
	char tag[96];
	vcatalog_schema_tag(s, tag, sizeof tag);
	int ok = 0;
	if (!strcmp(tag, dr.schema_hash)) {
		pthread_mutex_lock(&v->lock);
		if (!vmap_get(&v->cache.recs, key)) {
			vcache_rec *e = vcache_put(&v->cache, key, dr.text, dr.len, &dr.meta, dr.mtime_ms,
			                           -1e18, dr.read_wall_ms, s);
			dr.text = NULL;
			if (e)
				snprintf(e->version, sizeof e->version, "%s", dr.version);
			ok = e != NULL;
		}
		pthread_mutex_unlock(&v->lock);
	}
	vcache_disk_rec_free(&dr);
	return ok;
}

static int sync_listing(vfs *v, s3db_resource *res, list_mode mode, int force,
                        const char *want_id, int64_t *want_size, const s3db_ctx *ctx);

/* The LIST pages (STORE_LIST_PAGE_MAX keys each) a listing of n names takes. */
static uint64_t listing_pages(size_t n)
{
	return (n + STORE_LIST_PAGE_MAX - 1) / STORE_LIST_PAGE_MAX;
}

/* 1 when revalidating a stale entry of directory d by listing d again
 * (which confirms every entry of it at once) pays better than one HEAD:
 * the listing is one page, or this directory has already cost as many
 * HEADs since it was listed as a listing has pages (so listing never
 * costs more than twice the HEADs it replaces).  Lock held. */
static int relist_pays(const vcache_dir *d)
{
	uint64_t pages = listing_pages(d->names.count);
	return pages <= 1 || d->heads + 1 >= pages;
}

static int refresh_start(vfs *v, s3db_resource *res);

/* How long past dir_ttl a listing may still answer while it is listed
 * again in the background (stale-while-revalidate): twice the time its
 * own listing took, at least 1 s, at most dir_ttl (so nothing with
 * dir_ttl 0).  Lock held. */
static double stale_window_ms(const vfs *v, const vcache_dir *d)
{
	double ttl = vfs_ttl_ms(v->o.dir_ttl);
	double w = 2 * (d->listed_ms - d->started_ms);
	if (w < 1000)
		w = 1000;
	return w < ttl ? w : ttl;
}

/* What listing directory d again would cost now, in ms: what its last
 * listing took, by page, times the pages its names fill now (our own
 * writes since make it grow).  Lock held. */
static double relist_cost_ms(const vcache_dir *d)
{
	double pages_then = (double)listing_pages(d->listed_count);
	double pages_now = (double)listing_pages(d->names.count);
	if (pages_then < 1)
		pages_then = 1;
	return (d->listed_ms - d->started_ms) / pages_then * pages_now;
}

/* How long a listing answers lookups (getattr) before it is listed
 * again: dir_ttl — or, for a quiet directory of more than one LIST page
 * (d->quiet: its last relist found nothing another client had changed;
 * one page is one request, cheap anywhere), RELIST_COST_FACTOR times
 * what listing it again would cost now (relist_cost_ms) when that is
 * longer, capped at RELIST_QUIET_MAX_MS (or dir_ttl when longer).  A
 * listing costs the server about its own duration (s3rver scans the
 * whole prefix for every page: ~2 s for 10,000 keys), so a create loop
 * or parallel copies in a large directory nobody else writes spend at
 * most 1/RELIST_COST_FACTOR of the server's time on relists instead of
 * one listing every dir_ttl.  The cost is priced at the directory's
 * size now, not at its last listing's: in a directory our own writes
 * make grow, a listing gets dearer as fast as time passes, so a create
 * loop lists it again about never (at most every RELIST_QUIET_MAX_MS)
 * rather than every 20 times a listing of the smaller directory it
 * was; one our deletes shrink is priced cheaper, and listed again
 * sooner, the same way.  A directory others write in is relisted every dir_ttl, and
 * readdir and opens (close-to-open) keep dir_ttl and record_ttl
 * whatever the directory.  dir_ttl 0 stays 0.  Lock held. */
static double lookup_ttl_ms(const vfs *v, const vcache_dir *d)
{
	double ttl = vfs_ttl_ms(v->o.dir_ttl);
	if (!d || !d->quiet || ttl <= 0 || d->names.count <= 1000)
		return ttl;
	double quiet = RELIST_COST_FACTOR * relist_cost_ms(d);
	if (quiet > RELIST_QUIET_MAX_MS)
		quiet = RELIST_QUIET_MAX_MS;
	return quiet > ttl ? quiet : ttl;
}

/* 1 when d, older than lookup_ttl_ms, may still answer lookups (see
 * vlookup_ensure_record): it is a complete listing (not one dropped by an
 * overflow of the change log) kept current by our own writes, and
 * within stale_window_ms past lookup_ttl_ms.  Lock held. */
static int dir_serves_stale(const vfs *v, const vcache_dir *d, double now)
{
	return d && now - d->listed_ms < lookup_ttl_ms(v, d) + stale_window_ms(v, d);
}

/* Makes the cache hold res/id, fresh enough for w.  0, -ENOENT, -errno.
 *
 * A name the directory's fresh listing lacks is missing without a
 * request (a directory made by mkdir starts with an empty listing; our
 * own writes keep it current).  A name looked up in a directory listed
 * before but not within dir_ttl lists the directory again (names and
 * validators, one LIST per 1,000 ids) rather than asking S3 about that
 * one name: the next lookups (a create loop, parallel copies) are then
 * answered from it.  A stale entry is revalidated by listing its
 * directory again when relist_pays(), else with one HEAD.
 *
 * Stale-while-revalidate: for a getattr (WANT_ATTR, which a create with
 * O_TRUNC or O_EXCL also uses), a listing past dir_ttl but within
 * dir_serves_stale still answers — a name it lacks is missing, an entry
 * it confirmed is fresh — and the directory is listed again by a
 * background thread (refresh_start; one per directory at a time), so a
 * lookup never waits for a relist.  An open without O_TRUNC
 * (close-to-open, appends) never answers from a stale listing.  A
 * create answered "missing" is an insert with If-None-Match: a record
 * another client made meanwhile turns it into a replace (or EEXIST
 * under O_EXCL), never a lost record.  No lock held. */
int vlookup_ensure_record(vfs *v, s3db_resource *res, const char *id, want w, const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	char *key = vcache_key(rname, id);
	if (!key)
		return -ENOMEM;
	const schema *s = db_current_schema(res);
	int64_t size_hint = -1;  /* from our listing: -2 not listed, else bytes */
	int listed = 0, rc = 1;
	uint64_t epoch0 = 0;     /* the cache's epoch before our listing     */
	for (;;) {
		double now = s3db_monotonic_ms();
		int via_list = 0;
		rc = 1; /* 1: still to decide */
		pthread_mutex_lock(&v->lock);
		vcache_rec *e = vcache_get(&v->cache, key);
		vcache_dir *d = vcache_dir_get(&v->cache, rname);
		int dir_fresh = d && now - d->listed_ms < (w == WANT_ATTR ? lookup_ttl_ms(v, d)
		                                                        : vfs_ttl_ms(v->o.dir_ttl));
		int dir_stale_ok = !dir_fresh && w == WANT_ATTR && dir_serves_stale(v, d, now);
		if (e && e->schema == (const void *)s) {
			int fresh = now - e->validated_ms < vfs_ttl_ms(v->o.record_ttl);
			if (!fresh && w == WANT_ATTR && dir_fresh && e->validated_ms >= d->started_ms)
				fresh = 1;
			if (!fresh && dir_stale_ok && e->validated_ms >= d->started_ms &&
			    refresh_start(v, res) == 0)
				fresh = 1;
			if (fresh) {
				v->hits++;
				rc = 0;
			} else if (e->list_changed) {
				rc = 3; /* a listing showed it changed: read it again */
				size_hint = e->list_size;
			} else {
				rc = 2; /* revalidate */
			}
		} else if (!e && vcache_neg_valid(&v->cache, key, now)) {
			v->hits++;
			rc = -ENOENT;
		} else if (!e && dir_fresh && !vcache_dir_has(d, id)) {
			v->hits++;
			rc = -ENOENT;
		} else if (!e && dir_stale_ok && !vcache_dir_has(d, id) && refresh_start(v, res) == 0) {
			v->hits++;
			rc = -ENOENT;
		}
		if (!listed && d && ((rc == 1 && !dir_fresh) || (rc == 2 && relist_pays(d))))
			via_list = 1;
		else if (rc == 2 && d)
			d->heads++;
		epoch0 = v->cache.epoch;
		pthread_mutex_unlock(&v->lock);
		if (!via_list)
			break;
		listed = 1;
		if (sync_listing(v, res, LIST_NAMES, rc == 2, id, &size_hint, ctx) != 0)
			break; /* the listing failed: ask about the name itself */
	}
	if (rc == 2 && listed && size_hint == -2) {
		/* our listing does not have it: gone */
		forget_missing_record(v, key, rname, id, epoch0);
		rc = -ENOENT;
	} else if (rc == 2 && listed && size_hint >= 0) {
		/* listed with other validators (or read too close to its
		 * LastModified to be confirmed): read it again */
		rc = fetch_record_sized(v, res, id, size_hint, ctx);
	} else if (rc == 2) {
		rc = revalidate_record(v, res, id, ctx);
	} else if (rc == 3) {
		rc = fetch_record_sized(v, res, id, size_hint, ctx);
	} else if (rc == 1) {
		rc = disk_candidate(v, res, id, key) ? revalidate_record(v, res, id, ctx)
		                                     : fetch_record_sized(v, res, id, size_hint, ctx);
	}
	free(key);
	return rc;
}

/* ---- listings ---------------------------------------------------------------------------- */

typedef struct lent {
	char *id;
	char etag[72];
	int64_t size, lm;
} lent;

typedef struct lents {
	lent *items;
	size_t n, cap;
	int oom;
} lents;

static int collect_entry(void *ud, const char *id, const store_entry *e)
{
	lents *l = ud;
	lent *items = s3db_array_room(l->items, &l->cap, l->n, sizeof *items, 256);
	if (items)
		l->items = items;
	lent *it = items ? &items[l->n] : NULL;
	if (!it || !(it->id = strdup(id))) {
		l->oom = 1;
		return 1;
	}
	snprintf(it->etag, sizeof it->etag, "%s", e->etag);
	it->size = e->size;
	it->lm = e->last_modified_ms;
	l->n++;
	return 0;
}

static void lents_free(lents *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].id);
	free(l->items);
	memset(l, 0, sizeof *l);
}

typedef struct fetch_job {
	vfs *v;
	s3db_resource *res;
	char **ids;
	int64_t *sizes;          /* fetch_record: sizes the LIST gave, or NULL */
	want w;
	int use_ensure;          /* 1: vlookup_ensure_record, 0: fetch_record */
	const s3db_ctx *ctx;
	int *rcs;
} fetch_job;

static void fetch_one(void *ud, size_t i)
{
	fetch_job *j = ud;
	j->rcs[i] = j->use_ensure ? vlookup_ensure_record(j->v, j->res, j->ids[i], j->w, j->ctx)
	                          : fetch_record_sized(j->v, j->res, j->ids[i],
	                                               j->sizes ? j->sizes[i] : -1, j->ctx);
}

/* 1 when the sorted name lists a (a listing kept current by our
 * changes) and b (a new listing of resource rname, our changes noted
 * since it started applied) differ only in names with a change of ours
 * in flight (busy): S3 may show such a change before it is noted.
 * Lock held. */
static int same_names_but_ours(vfs *v, const char *rname, const strv *a, const strv *b)
{
	size_t i = 0, j = 0;
	while (i < a->count || j < b->count) {
		int cmp = i == a->count ? 1 : j == b->count ? -1 : strcmp(a->items[i], b->items[j]);
		const char *odd = cmp < 0 ? a->items[i] : cmp > 0 ? b->items[j] : NULL;
		if (cmp <= 0)
			i++;
		if (cmp >= 0)
			j++;
		if (!odd)
			continue;
		char *key = vcache_key(rname, odd);
		int ours = key && vfs_busy_has(v, key);
		free(key);
		if (!ours)
			return 0;
	}
	return 1;
}

/* The listing itself (sync_listing): LIST, confirm, read what mode
 * asks, install the names; the directory is quiet (lookup_ttl_ms) when
 * the names equal those of the listing it replaces and no record
 * changed but by us.  epoch0: the cache's epoch before the LIST (local
 * changes since are applied to the names).  No lock held. */
static int list_resource_now(vfs *v, s3db_resource *res, const schema *s, list_mode mode,
                             uint64_t epoch0, const char *want_id, int64_t *want_size,
                             const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	double t_list = s3db_monotonic_ms();
	lents l = { 0 };
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = resource_list_entries(res, NULL, ctx, collect_entry, &l, &err);
	if (c == S3DB_OK && l.oom)
		c = S3DB_ERR_NOMEM;
	if (c != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "listing %s: %s", rname, err.message);
		lents_free(&l);
		return vfs_errno_of(v, c);
	}
	char **need = calloc(l.n + 1, sizeof *need);
	size_t nneed = 0;
	int *gone = calloc(l.n + 1, sizeof *gone);
	size_t *need_idx = calloc(l.n + 1, sizeof *need_idx);
	int64_t *sizes = calloc(l.n + 1, sizeof *sizes);
	if (!need || !gone || !need_idx || !sizes) {
		free(need);
		free(gone);
		free(need_idx);
		free(sizes);
		lents_free(&l);
		return -ENOMEM;
	}
	/* what the LIST confirms */
	int *unconfirmed = gone; /* reuse: 1 = not confirmed yet, later 2 = gone */
	size_t foreign = 0;      /* records another client changed          */
	if (want_size)
		*want_size = -2;
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < l.n; i++) {
		if (want_size && want_id && !strcmp(l.items[i].id, want_id))
			*want_size = l.items[i].size;
		char *key = vcache_key(rname, l.items[i].id);
		vcache_rec *e = key ? vmap_get(&v->cache.recs, key) : NULL;
		if (e && e->schema == (const void *)s &&
		    vcache_validators_match(e, l.items[i].etag, l.items[i].size, l.items[i].lm)) {
			e->validated_ms = t_list;
			e->list_changed = 0;
			v->hits++;
		} else {
			unconfirmed[i] = 1;
			if (e && !vcache_changed_since(&v->cache, key, epoch0)) {
				e->list_changed = 1;
				e->list_size = l.items[i].size;
				if (e->schema == (const void *)s &&
				    vcache_validators_differ(e, l.items[i].etag, l.items[i].size,
				                             l.items[i].lm) &&
				    !vfs_busy_has(v, key))
					foreign++;
			}
		}
		free(key);
	}
	pthread_mutex_unlock(&v->lock);
	/* the persistent cache, confirmed by the LIST's validators */
	char tag[96];
	vcatalog_schema_tag(s, tag, sizeof tag);
	for (size_t i = 0; mode == LIST_RECORDS && i < l.n; i++) {
		if (!unconfirmed[i])
			continue;
		vcache_disk_rec dr;
		int ok = 0;
		if (v->disk.dir && vcache_disk_load(&v->disk, rname, l.items[i].id, &dr) == 0) {
			vcache_rec probe;
			memset(&probe, 0, sizeof probe);
			probe.meta = dr.meta;
			probe.read_wall_ms = dr.read_wall_ms;
			if (!strcmp(tag, dr.schema_hash) &&
			    vcache_validators_match(&probe, l.items[i].etag, l.items[i].size, l.items[i].lm)) {
				char *key = vcache_key(rname, l.items[i].id);
				pthread_mutex_lock(&v->lock);
				if (key && !vcache_changed_since(&v->cache, key, epoch0)) {
					vcache_rec *e = vcache_put(&v->cache, key, dr.text, dr.len, &dr.meta,
					                           dr.mtime_ms, t_list, dr.read_wall_ms, s);
					dr.text = NULL;
					if (e) {
						snprintf(e->version, sizeof e->version, "%s", dr.version);
						v->hits++;
						ok = 1;
					}
				}
				pthread_mutex_unlock(&v->lock);
				free(key);
			}
			vcache_disk_rec_free(&dr);
		}
		if (!ok) {
			need_idx[nneed] = i;
			sizes[nneed] = l.items[i].size;
			need[nneed++] = l.items[i].id;
		}
	}
	/* the rest, in parallel */
	int rc = 0;
	if (nneed) {
		int *rcs = calloc(nneed, sizeof *rcs);
		if (rcs) {
			fetch_job j = { .v = v, .res = res, .ids = need, .sizes = sizes, .ctx = ctx,
			                .rcs = rcs };
			pool_run(v->o.prefetch, nneed, fetch_one, &j);
			for (size_t k = 0; k < nneed; k++)
				if (rcs[k] == -ENOENT)
					gone[need_idx[k]] = 2;
			free(rcs);
		}
	}
	strv names;
	strv_init(&names);
	for (size_t i = 0; i < l.n; i++)
		if (gone[i] != 2 && strv_push(&names, l.items[i].id))
			rc = -ENOMEM;
	if (!rc) {
		pthread_mutex_lock(&v->lock);
		/* the listing it replaces, kept current by our own changes:
		 * the same names (and no record changed by another client)
		 * make the directory quiet */
		vcache_dir *od = vcache_dir_get(&v->cache, rname);
		strv before;
		strv_init(&before);
		int had = od && od->listed_ms > -1e17;
		if (od) {
			before = od->names;
			strv_init(&od->names);
		}
		if (vcache_dir_put(&v->cache, rname, &names, t_list, s3db_monotonic_ms()) == 0) {
			vcache_dir *nd = vcache_dir_get(&v->cache, rname);
			if (nd)
				nd->names_only = mode == LIST_NAMES;
			if (nd && change_apply(v, rname, nd, epoch0) < 0)
				nd->listed_ms = -1e18;
			else if (nd)
				nd->quiet = had && !foreign && same_names_but_ours(v, rname, &before,
				                                                    &nd->names);
			if (nd)
				log_msg(LOG_LVL_DEBUG, "listed %s: %zu names in %.0f ms, %zu changed by others%s",
				        rname, nd->names.count, nd->listed_ms - nd->started_ms, foreign,
				        nd->quiet ? ", quiet" : "");
		}
		strv_free(&before);
		pthread_mutex_unlock(&v->lock);
	}
	strv_free(&names);
	free(need);
	free(gone);
	free(need_idx);
	free(sizes);
	lents_free(&l);
	return rc;
}

/* Waits for a listing of rname in flight, then marks ours as in flight
 * (when the directory is known).  Returns 1 when one ended while we
 * waited.  Lock held. */
static int listing_begin(vfs *v, const char *rname)
{
	int waited = 0;
	vcache_dir *d;
	while ((d = vcache_dir_get(&v->cache, rname)) && d->listing) {
		pthread_cond_wait(&v->list_cv, &v->lock);
		waited = 1;
	}
	if (d)
		d->listing = 1;
	return waited;
}

/* Ends our listing of rname (listing_begin); lock held. */
static void listing_end(vfs *v, const char *rname)
{
	vcache_dir *d = vcache_dir_get(&v->cache, rname);
	if (d)
		d->listing = 0;
	pthread_cond_broadcast(&v->list_cv);
}

/* Lists a resource: one LIST per 1,000 ids; the cache entries whose
 * validators the LIST shows are confirmed (as of the LIST's start).  In
 * LIST_RECORDS mode (readdir) the persistent cache is tried for the
 * others and the rest are read, prefetch at a time, one request each
 * (fetch_record_sized with the LIST's size); in LIST_NAMES mode (a
 * lookup) nothing else is read.  Without `force`, nothing is done while
 * the listing is younger than dir_ttl (and, for LIST_RECORDS, was made
 * in that mode); with it, a listing that ended while this one waited to
 * start is enough.  One listing of a resource at a time: the others wait
 * for it.  *want_size (optional) gets the size the LIST gives want_id,
 * -2 when it lacks it, -1 when no LIST was made.  0 or -errno.  No lock
 * held. */
static int sync_listing(vfs *v, s3db_resource *res, list_mode mode, int force,
                        const char *want_id, int64_t *want_size, const s3db_ctx *ctx)
{
	const char *rname = s3db_resource_name(res);
	const schema *s = db_current_schema(res);
	if (want_size)
		*want_size = -1;
	pthread_mutex_lock(&v->lock);
	int waited = listing_begin(v, rname);
	vcache_dir *d = vcache_dir_get(&v->cache, rname);
	int fresh = force ? waited
	                  : d && s3db_monotonic_ms() - d->listed_ms < vfs_ttl_ms(v->o.dir_ttl) &&
	                    (mode == LIST_NAMES || !d->names_only);
	uint64_t epoch0 = v->cache.epoch;
	if (fresh)
		listing_end(v, rname);
	pthread_mutex_unlock(&v->lock);
	if (fresh)
		return 0;
	int rc = list_resource_now(v, res, s, mode, epoch0, want_id, want_size, ctx);
	pthread_mutex_lock(&v->lock);
	listing_end(v, rname);
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* The background relist of refresh_start: a names-only listing, made
 * when the listing is still stale (sync_listing), with the mount's own
 * context (no caller waits for it). */
static void *refresh_main(void *arg)
{
	vrefresh *r = arg;
	vfs *v = r->v;
	s3db_ctx ctx = { .uid = getuid(), .gid = getgid(), .pid = getpid(), .process = "s3dbfs",
	                 .origin = "fuse" };
	int rc = sync_listing(v, r->res, LIST_NAMES, 0, NULL, NULL, &ctx);
	if (rc)
		log_msg(LOG_LVL_DEBUG, "background listing of %s: %s", r->rname, strerror(-rc));
	pthread_mutex_lock(&v->lock);
	r->done = 1;
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Joins and frees the refreshes that ended (all of them, waiting, when
 * `all`).  Lock held; released while waiting for a running one. */
void vlookup_refresh_reap(vfs *v, int all)
{
	vrefresh **pp = &v->refreshes;
	while (*pp) {
		vrefresh *r = *pp;
		if (!r->done && !all) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (!r->done)
			pthread_mutex_unlock(&v->lock);
		pthread_join(r->thread, NULL); /* a done thread only returns */
		if (!r->done)
			pthread_mutex_lock(&v->lock);
		free(r->rname);
		free(r);
		pp = &v->refreshes; /* the list may have changed meanwhile */
	}
}

/* Lists res again in the background unless a refresh of it is running
 * already (then nothing to do).  0 when one runs, -1 when none can start
 * (vfs_close began, out of memory, no thread): the caller lists in the
 * foreground instead.  Lock held. */
static int refresh_start(vfs *v, s3db_resource *res)
{
	const char *rname = s3db_resource_name(res);
	if (v->closing)
		return -1;
	vlookup_refresh_reap(v, 0);
	for (vrefresh *r = v->refreshes; r; r = r->next)
		if (!r->done && !strcmp(r->rname, rname))
			return 0;
	vrefresh *r = calloc(1, sizeof *r);
	if (!r || !(r->rname = strdup(rname))) {
		free(r);
		return -1;
	}
	r->v = v;
	r->res = res;
	if (pthread_create(&r->thread, NULL, refresh_main, r) != 0) {
		free(r->rname);
		free(r);
		return -1;
	}
	r->next = v->refreshes;
	v->refreshes = r;
	return 0;
}

/* readdir's listing: sync_listing in LIST_RECORDS mode. */
int vlookup_list_resource(vfs *v, s3db_resource *res, const s3db_ctx *ctx)
{
	return sync_listing(v, res, LIST_RECORDS, 0, NULL, NULL, ctx);
}

/* A partition value from its directory name ("f=v" -> "v"). */
static const char *seg_value(const char *seg, const char *field)
{
	return seg + strlen(field) + 1;
}

/* Lists one level of a partition directory into *out (copied): the next
 * field's "f=v" directories (a delimiter LIST of the partition's prefix),
 * or, at the last level, the ids (resource_list_entries on the
 * partition's prefix, records read as for a resource).  0 or -errno. */
int vlookup_list_part_dir(vfs *v, const vpath *p, const s3db_ctx *ctx, strv *out)
{
	strv_init(out);
	char *key = vpath_part_dir_key(p);
	if (!key)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	vcache_dir *d = vcache_dir_get(&v->cache, key);
	if (d && s3db_monotonic_ms() - d->listed_ms < vfs_ttl_ms(v->o.dir_ttl)) {
		for (size_t i = 0; i < d->names.count; i++)
			strv_push(out, d->names.items[i]);
		pthread_mutex_unlock(&v->lock);
		free(key);
		return 0;
	}
	pthread_mutex_unlock(&v->lock);
	double t_list = s3db_monotonic_ms();
	const schema *s = db_current_schema(p->res);
	s3db_error err;
	s3db_error_clear(&err);
	s3db_code c = S3DB_OK;
	strv names;
	strv_init(&names);
	int leaf = p->segs.count == p->fields.count;
	if (!leaf) {
		char *base = NULL;
		int exact;
		c = partition_prefix(v->db, s, p->part, NULL, &base, &exact, &err);
		sbuf pre;
		sbuf_init(&pre);
		if (base)
			sbuf_puts(&pre, base);
		for (size_t i = 0; i < p->segs.count; i++)
			sbuf_printf(&pre, "%s/", p->segs.items[i]);
		free(base);
		char *token = NULL;
		while (c == S3DB_OK && pre.data) {
			store_list_opts lo = { .prefix = pre.data, .delimiter = "/", .continuation = token };
			store_list_page page;
			memset(&page, 0, sizeof page);
			c = store_list(v->db->store, &lo, &page, &err);
			if (c != S3DB_OK)
				break;
			for (size_t i = 0; i < page.prefix_count; i++) {
				const char *cp = page.common_prefixes[i] + pre.len;
				size_t n = strlen(cp);
				if (n && cp[n - 1] == '/')
					n--;
				char *seg = s3db_strndup(cp, n);
				if (seg && s3db_str_starts(seg, p->fields.items[p->segs.count]))
					strv_push_owned(&names, seg);
				else
					free(seg);
			}
			free(token);
			token = page.truncated && page.next_token ? strdup(page.next_token) : NULL;
			store_list_page_free(&page);
			if (!token)
				break;
		}
		free(token);
		sbuf_free(&pre);
	} else {
		json_object *vals = json_object_new_object();
		for (size_t i = 0; i < p->segs.count; i++)
			json_object_object_add(vals, p->fields.items[i],
			                       json_object_new_string(seg_value(p->segs.items[i],
			                                                        p->fields.items[i])));
		s3db_list_opts lo = { .partition = p->part, .partition_values = vals };
		lents l = { 0 };
		c = resource_list_entries(p->res, &lo, ctx, collect_entry, &l, &err);
		json_object_put(vals);
		if (c == S3DB_OK && l.oom)
			c = S3DB_ERR_NOMEM;
		for (size_t i = 0; c == S3DB_OK && i < l.n; i++)
			strv_push(&names, l.items[i].id);
		lents_free(&l);
		if (c == S3DB_OK && names.count) {
			int *rcs = calloc(names.count, sizeof *rcs);
			if (rcs) {
				fetch_job j = { .v = v, .res = p->res, .ids = names.items, .w = WANT_ATTR,
				                .use_ensure = 1, .ctx = ctx, .rcs = rcs };
				pool_run(v->o.prefetch, names.count, fetch_one, &j);
				free(rcs);
			}
		}
	}
	if (c != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "listing %s: %s", p->path, err.message);
		strv_free(&names);
		free(key);
		return vfs_errno_of(v, c);
	}
	pthread_mutex_lock(&v->lock);
	vcache_dir_put(&v->cache, key, &names, t_list, s3db_monotonic_ms());
	d = vcache_dir_get(&v->cache, key);
	for (size_t i = 0; d && i < d->names.count; i++)
		strv_push(out, d->names.items[i]);
	pthread_mutex_unlock(&v->lock);
	free(key);
	return 0;
}
