/*
 * vfs_map.h — a string-keyed hash map for the file tree's tables (record
 * cache, listings, open files, handles, tombstones).
 *
 * Chained buckets, doubled when the load passes 1; keys are copied and
 * owned by the map, values are opaque pointers owned by the caller.  Not
 * thread-safe: the vfs holds its lock around every call.
 */
#ifndef S3DB_VFS_MAP_H
#define S3DB_VFS_MAP_H

#include <stddef.h>

typedef struct vmap_entry {
	char *key;
	void *value;
	size_t hash;
	struct vmap_entry *next;
} vmap_entry;

typedef struct vmap {
	vmap_entry **buckets;
	size_t nbuckets;
	size_t count;
} vmap;

void vmap_init(vmap *m);
/* Frees the entries (not the values: walk the map first if they need
 * freeing). */
void vmap_free(vmap *m);
/* The value stored under key, or NULL. */
void *vmap_get(const vmap *m, const char *key);
/* Stores value under key (replacing and returning the previous value
 * through *old when non-NULL).  Returns 0, or -1 when out of memory (the
 * map is then unchanged). */
int vmap_put(vmap *m, const char *key, void *value, void **old);
/* Removes key; returns its value (NULL when absent). */
void *vmap_del(vmap *m, const char *key);

/* Calls fn(ud, key, value) for every entry; fn returns non-zero to stop.
 * fn must not change the map. */
typedef int (*vmap_fn)(void *ud, const char *key, void *value);
void vmap_each(const vmap *m, vmap_fn fn, void *ud);

/* FNV-1a of a string (also used for inode numbers). */
size_t vmap_hash(const char *s);

#endif /* S3DB_VFS_MAP_H */
