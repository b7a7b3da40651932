/*
 * vfs_map.c — string-keyed hash map (see vfs_map.h).
 *
 * Invariant: every entry sits in bucket hash % nbuckets; nbuckets is a
 * power of two (or 0 before the first put).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "vfs_map.h"

size_t vmap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

void vmap_init(vmap *m)
{
	memset(m, 0, sizeof *m);
}

void vmap_free(vmap *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		vmap_entry *e = m->buckets[i];
		while (e) {
			vmap_entry *next = e->next;
			free(e->key);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	memset(m, 0, sizeof *m);
}

static vmap_entry *find(const vmap *m, const char *key, size_t h)
{
	if (!m->nbuckets)
		return NULL;
	for (vmap_entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
		if (e->hash == h && !strcmp(e->key, key))
			return e;
	return NULL;
}

void *vmap_get(const vmap *m, const char *key)
{
	vmap_entry *e = find(m, key, vmap_hash(key));
	return e ? e->value : NULL;
}

/* Doubles the bucket array; on failure the map keeps working, fuller. */
static void grow(vmap *m)
{
	size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
	vmap_entry **b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		vmap_entry *e = m->buckets[i];
		while (e) {
			vmap_entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

int vmap_put(vmap *m, const char *key, void *value, void **old)
{
	size_t h = vmap_hash(key);
	vmap_entry *e = find(m, key, h);
	if (e) {
		if (old)
			*old = e->value;
		e->value = value;
		return 0;
	}
	if (old)
		*old = NULL;
	if (m->count >= m->nbuckets)
		grow(m);
	if (!m->nbuckets)
		return -1;
	e = malloc(sizeof *e);
	if (!e || !(e->key = strdup(key))) {
		free(e);
		return -1;
	}
	e->value = value;
	e->hash = h;
	e->next = m->buckets[h & (m->nbuckets - 1)];
	m->buckets[h & (m->nbuckets - 1)] = e;
	m->count++;
	return 0;
}

void *vmap_del(vmap *m, const char *key)
{
	if (!m->nbuckets)
		return NULL;
	size_t h = vmap_hash(key);
	for (vmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)]; *pp; pp = &(*pp)->next) {
		vmap_entry *e = *pp;
		if (e->hash == h && !strcmp(e->key, key)) {
			void *v = e->value;
			*pp = e->next;
			free(e->key);
			free(e);
			m->count--;
			return v;
		}
	}
	return NULL;
}

void vmap_each(const vmap *m, vmap_fn fn, void *ud)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (vmap_entry *e = m->buckets[i]; e; e = e->next)
			if (fn(ud, e->key, e->value))
				return;
}
