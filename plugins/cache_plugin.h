/*
 * cache_plugin.h — the CachePlugin's pieces shared between its files:
 * the parsed options (cache_config.c) and the built-in definition
 * (cache.c).  The options and their defaults are listed in cache.c.
 */
#ifndef S3DB_CACHE_PLUGIN_H
#define S3DB_CACHE_PLUGIN_H

#include "cache_body.h"
#include "cache_key.h"
#include "cache_memory.h"
#include "cache_s3.h"
#include "s3db_plugin.h"

extern const s3db_plugin_def cache_plugin_def;

typedef struct cache_config {
	int memory;                 /* 1: memory driver, 0: S3 driver       */
	int64_t ttl_ms;             /* the chosen driver's                  */
	size_t max_size;
	int include_partitions;
	int stats;
	int64_t check_period_ms;
	/* S3 driver */
	char *key_prefix;           /* "cache" (from prefix "cache/")       */
	char *bucket;               /* NULL: the database's                 */
	char *connection_string;    /* NULL: the database's (or bucket)     */
	char *access_key, *secret_key;
	int compression;
	int encryption;
	char *encryption_key;
} cache_config;

/* Reads the plugin's options into *cfg (defaults for what is absent).
 * Fails with S3DB_ERR_INVALID_ARG and a message naming the option on a
 * bad type or value.  cache_config_free releases it either way. */
s3db_code cache_config_parse(json_object *options, cache_config *cfg, s3db_error *err);
void cache_config_free(cache_config *cfg);

/* What the stored entries depend on: the driver and, for the S3 driver,
 * where the objects are and how they are sealed.  A change of any of it
 * while the plugin runs would orphan or misread the entries, so live
 * reconfiguration refuses it.  Secrets (connection string, credentials,
 * encryption key) are kept only as SHA-256 digests. */
typedef struct cache_identity {
	int memory;
	char *key_prefix;                      /* S3 driver; NULL for memory */
	char *bucket;                          /* NULL: none given           */
	int encryption;
	unsigned char connection_string[32];   /* digests; zeros: none given */
	unsigned char credentials[32];
	unsigned char encryption_key[32];
} cache_identity;

/* Fills *id from a parsed configuration (cache_identity_free it). */
s3db_code cache_identity_of(const cache_config *cfg, cache_identity *id, s3db_error *err);
/* The option name ("driver", "s3Options.bucket", ...) of the first part
 * of the identity that differs between a and b, or NULL when none does. */
const char *cache_identity_change(const cache_identity *a, const cache_identity *b);
void cache_identity_free(cache_identity *id);

/* Prepares the S3 driver: the target database (the plugin's own, or one
 * opened for s3Options.bucket / connectionString), key base, compression
 * and the encryption key. */
s3db_code cache_config_open_s3(const cache_config *cfg, const s3db_plugin_api *api, s3db *db,
                               cache_s3 *out, s3db_error *err);
/* Closes what cache_config_open_s3 opened and wipes the key. */
void cache_config_close_s3(cache_s3 *c);

/* The connection string of the database described by `described`
 * (s3db_describe's text) moved to another bucket, with the given
 * credentials or, when access_key is NULL, none (s3db_open then takes
 * them from the environment).  malloc'd; NULL when the database is not on
 * S3 (file://) or out of memory. */
char *cache_config_bucket_connstr(const char *described, const char *bucket,
                                  const char *access_key, const char *secret_key);

#endif
