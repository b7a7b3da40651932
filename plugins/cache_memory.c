/*
 * cache_memory.c — LRU map of the memory driver (contract:
 * cache_memory.h).
 *
 * Layout: a chained hash table (FNV-1a over the key, a power-of-two
 * bucket count of about twice maxSize) for lookups, and a doubly linked
 * list in recency order (head = most recent) for eviction.  One mutex
 * guards both; nothing slow happens under it except copying a value.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "cache_memory.h"
#include "util.h"

typedef struct mem_entry {
	char *key;
	json_object *value;
	size_t bytes;
	int64_t stored_ms;               /* when set: expiry is stored + ttl  */
	struct mem_entry *chain;         /* next in the bucket               */
	struct mem_entry *prev, *next;   /* recency list                     */
} mem_entry;

struct cache_memory {
	pthread_mutex_t lock;
	mem_entry **buckets;
	size_t nbuckets;
	mem_entry *head, *tail;
	size_t entries, bytes, max_size;
	int64_t ttl_ms;
	uint64_t evictions, expirations;
};

static size_t key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

/* The bucket count for max_size entries: a power of two >= 64, about
 * twice max_size, at most 2^20. */
static size_t buckets_for(size_t max_size)
{
	size_t n = 64;
	while (n < 2 * max_size && n < (1u << 20))
		n *= 2;
	return n;
}

cache_memory *cache_memory_new(size_t max_size, int64_t ttl_ms)
{
	cache_memory *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->max_size = max_size ? max_size : 1;
	m->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
	m->nbuckets = buckets_for(m->max_size);
	m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
	if (!m->buckets) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

static mem_entry **slot_of(cache_memory *m, const char *key)
{
	mem_entry **p = &m->buckets[key_hash(key) & (m->nbuckets - 1)];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->chain;
	return p;
}

static void list_unlink(cache_memory *m, mem_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		m->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		m->tail = e->prev;
	e->prev = e->next = NULL;
}

static void list_push_front(cache_memory *m, mem_entry *e)
{
	e->prev = NULL;
	e->next = m->head;
	if (m->head)
		m->head->prev = e;
	m->head = e;
	if (!m->tail)
		m->tail = e;
}

/* Unlinks e from its bucket and the list and frees it.  Lock held. */
static void entry_drop(cache_memory *m, mem_entry *e)
{
	mem_entry **p = slot_of(m, e->key);
	if (*p == e)
		*p = e->chain;
	list_unlink(m, e);
	m->entries--;
	m->bytes -= e->bytes;
	json_object_put(e->value);
	free(e->key);
	free(e);
}

/* Lock held (m->ttl_ms may change under it). */
static int expired(const cache_memory *m, const mem_entry *e, int64_t now_ms)
{
	return m->ttl_ms && e->stored_ms + m->ttl_ms <= now_ms;
}

int cache_memory_get(cache_memory *m, const char *key, int64_t now_ms, json_object **out)
{
	*out = NULL;
	pthread_mutex_lock(&m->lock);
	mem_entry *e = *slot_of(m, key);
	if (e && expired(m, e, now_ms)) {
		entry_drop(m, e);
		m->expirations++;
		e = NULL;
	}
	if (e) {
		list_unlink(m, e);
		list_push_front(m, e);
		if (json_object_deep_copy(e->value, out, NULL) != 0)
			*out = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	return *out != NULL;
}

int cache_memory_set(cache_memory *m, const char *key, json_object *value, int64_t now_ms)
{
	json_object *copy = NULL;
	char *text = s3db_json_stringify(value, 0);
	mem_entry *e = calloc(1, sizeof *e);
	if (!text || !e || json_object_deep_copy(value, &copy, NULL) != 0 ||
	    !(e->key = strdup(key))) {
		free(text);
		if (e)
			free(e->key);
		free(e);
		json_object_put(copy);
		return -1;
	}
	e->value = copy;
	e->bytes = strlen(text) + strlen(key);
	e->stored_ms = now_ms;
	free(text);
	pthread_mutex_lock(&m->lock);
	mem_entry *old = *slot_of(m, key);
	if (old)
		entry_drop(m, old);
	while (m->entries >= m->max_size && m->tail) {
		entry_drop(m, m->tail);
		m->evictions++;
	}
	mem_entry **slot = slot_of(m, key);
	*slot = e;
	list_push_front(m, e);
	m->entries++;
	m->bytes += e->bytes;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int cache_memory_delete(cache_memory *m, const char *key)
{
	pthread_mutex_lock(&m->lock);
	mem_entry *e = *slot_of(m, key);
	if (e)
		entry_drop(m, e);
	pthread_mutex_unlock(&m->lock);
	return e != NULL;
}

size_t cache_memory_delete_if(cache_memory *m, int (*pred)(void *ud, const char *key), void *ud)
{
	size_t n = 0;
	pthread_mutex_lock(&m->lock);
	for (mem_entry *e = m->head, *next; e; e = next) {
		next = e->next;
		if (pred(ud, e->key)) {
			entry_drop(m, e);
			n++;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return n;
}

size_t cache_memory_purge(cache_memory *m, int64_t now_ms)
{
	size_t n = 0;
	pthread_mutex_lock(&m->lock);
	for (mem_entry *e = m->head, *next; e; e = next) {
		next = e->next;
		if (expired(m, e, now_ms)) {
			entry_drop(m, e);
			n++;
		}
	}
	m->expirations += n;
	pthread_mutex_unlock(&m->lock);
	return n;
}

void cache_memory_clear(cache_memory *m)
{
	pthread_mutex_lock(&m->lock);
	while (m->head)
		entry_drop(m, m->head);
	pthread_mutex_unlock(&m->lock);
}

/* Moves every entry into `buckets` (n of them, zeroed) and frees the old
 * table.  Lock held. */
static void rehash(cache_memory *m, mem_entry **buckets, size_t n)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (mem_entry *e = m->buckets[i], *next; e; e = next) {
			next = e->chain;
			mem_entry **slot = &buckets[key_hash(e->key) & (n - 1)];
			e->chain = *slot;
			*slot = e;
		}
	free(m->buckets);
	m->buckets = buckets;
	m->nbuckets = n;
}

size_t cache_memory_configure(cache_memory *m, size_t max_size, int64_t ttl_ms)
{
	if (!max_size)
		max_size = 1;
	size_t want = buckets_for(max_size);
	/* a bigger table is allocated outside the lock; out of memory keeps
	 * the old one (longer chains, still correct) */
	mem_entry **bigger = NULL;
	pthread_mutex_lock(&m->lock);
	size_t have = m->nbuckets;
	pthread_mutex_unlock(&m->lock);
	if (want > have)
		bigger = calloc(want, sizeof *bigger);
	size_t evicted = 0;
	pthread_mutex_lock(&m->lock);
	m->max_size = max_size;
	m->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
	while (m->entries > m->max_size && m->tail) {
		entry_drop(m, m->tail);
		m->evictions++;
		evicted++;
	}
	if (bigger && want > m->nbuckets)
		rehash(m, bigger, want);
	else
		free(bigger);
	pthread_mutex_unlock(&m->lock);
	return evicted;
}

void cache_memory_get_stats(cache_memory *m, cache_memory_stats *st)
{
	pthread_mutex_lock(&m->lock);
	st->entries = m->entries;
	st->bytes = m->bytes;
	st->max_size = m->max_size;
	st->evictions = m->evictions;
	st->expirations = m->expirations;
	pthread_mutex_unlock(&m->lock);
}

void cache_memory_free(cache_memory *m)
{
	if (!m)
		return;
	cache_memory_clear(m);
	pthread_mutex_destroy(&m->lock);
	free(m->buckets);
	free(m);
}
