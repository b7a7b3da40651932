/*
 * cache_config.c — the CachePlugin's options (contract: cache_plugin.h;
 * the table of options is in cache.c) and the S3 driver's target.
 *
 * Precedence: a driver object's members, then memoryOptions /
 * s3Options, then the top-level ttl / maxSize, then the guide's
 * defaults.  Unknown members are ignored (the guide's examples carry
 * options of other drivers); wrong types are errors naming the option.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "cache_plugin.h"
#include "codec.h"
#include "util.h"

#define DEFAULT_TTL_MS 300000
#define DEFAULT_MAX_SIZE 1000
#define DEFAULT_CHECK_PERIOD_MS 600000

/* The member `name` of the first object in objs that has it (NULL: none). */
static json_object *pick(json_object *const *objs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		json_object *v;
		if (objs[i] && json_object_object_get_ex(objs[i], name, &v) && v)
			return v;
	}
	return NULL;
}

static s3db_code get_number(json_object *const *objs, size_t n, const char *name, int64_t dflt,
                            int64_t min, int64_t *out, s3db_error *err)
{
	json_object *v = pick(objs, n, name);
	*out = dflt;
	if (!v)
		return S3DB_OK;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CachePlugin: %s must be a number",
		                      name);
	double d = json_object_get_double(v);
	if (d < (double)min || d > 9.0e15)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "CachePlugin: %s must be at least %lld", name, (long long)min);
	*out = (int64_t)d;
	return S3DB_OK;
}

static s3db_code get_bool(json_object *const *objs, size_t n, const char *name, int dflt,
                          int *out, s3db_error *err)
{
	json_object *v = pick(objs, n, name);
	*out = dflt;
	if (!v)
		return S3DB_OK;
	if (!json_object_is_type(v, json_type_boolean))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CachePlugin: %s must be true or false",
		                      name);
	*out = json_object_get_boolean(v);
	return S3DB_OK;
}

static s3db_code get_string(json_object *const *objs, size_t n, const char *name, char **out,
                            s3db_error *err)
{
	json_object *v = pick(objs, n, name);
	*out = NULL;
	if (!v)
		return S3DB_OK;
	if (!json_object_is_type(v, json_type_string))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CachePlugin: %s must be a string",
		                      name);
	*out = strdup(json_object_get_string(v));
	return *out ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

static json_object *object_member(json_object *o, const char *name)
{
	json_object *v;
	if (o && json_object_object_get_ex(o, name, &v) && v && json_object_is_type(v, json_type_object))
		return v;
	return NULL;
}

/* Which driver: driver (string or {type}) over driverType, default "s3". */
static s3db_code pick_driver(json_object *options, int *memory, json_object **driver_obj,
                             s3db_error *err)
{
	json_object *d = NULL, *t = NULL;
	const char *name = "s3";
	*driver_obj = NULL;
	if (json_object_object_get_ex(options, "driverType", &t) && t) {
		if (!json_object_is_type(t, json_type_string))
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "CachePlugin: driverType must be \"memory\" or \"s3\"");
		name = json_object_get_string(t);
	}
	if (json_object_object_get_ex(options, "driver", &d) && d) {
		if (json_object_is_type(d, json_type_string)) {
			name = json_object_get_string(d);
		} else if (json_object_is_type(d, json_type_object)) {
			*driver_obj = d;
			const char *type = s3db_json_get_string(d, "type");
			if (type)
				name = type;
			else if (!t)
				name = "memory"; /* the guide's custom driver is a MemoryCache */
		} else {
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "CachePlugin: driver must be \"memory\", \"s3\" or an object");
		}
	}
	if (!strcmp(name, "memory"))
		*memory = 1;
	else if (!strcmp(name, "s3"))
		*memory = 0;
	else
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "CachePlugin: unknown driver '%s' (\"memory\" or \"s3\")", name);
	return S3DB_OK;
}

static s3db_code parse_memory(json_object *const *objs, size_t n, cache_config *cfg,
                              s3db_error *err)
{
	int64_t max_size, period;
	s3db_code rc = get_number(objs, n, "maxSize", DEFAULT_MAX_SIZE, 1, &max_size, err);
	if (rc == S3DB_OK)
		rc = get_number(objs, n, "checkPeriod", DEFAULT_CHECK_PERIOD_MS, 0, &period, err);
	if (rc == S3DB_OK)
		rc = get_bool(objs, n, "stats", 1, &cfg->stats, err);
	const char *names[] = { "evictionPolicy", "algorithm" };
	for (size_t i = 0; rc == S3DB_OK && i < 2; i++) {
		json_object *v = pick(objs, n, names[i]);
		if (v && (!json_object_is_type(v, json_type_string) ||
		          strcasecmp(json_object_get_string(v), "lru") != 0))
			rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                    "CachePlugin: %s: only \"lru\" is supported", names[i]);
	}
	cfg->max_size = (size_t)max_size;
	cfg->check_period_ms = period;
	return rc;
}

static s3db_code parse_s3(json_object *const *objs, size_t n, cache_config *cfg,
                          s3db_error *err)
{
	char *prefix = NULL;
	if (pick(objs, n, "client"))
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "CachePlugin: s3Options.client (a client object) has no JSON form: "
		                      "give s3Options.bucket or s3Options.connectionString");
	s3db_code rc = get_string(objs, n, "keyPrefix", &cfg->key_prefix, err);
	if (rc == S3DB_OK)
		rc = get_string(objs, n, "prefix", &prefix, err);
	if (rc == S3DB_OK && !cfg->key_prefix) {
		/* the guide's prefix 'cache/' is s3db.js's keyPrefix 'cache' */
		const char *p = prefix ? prefix : "cache/";
		size_t len = strlen(p);
		while (len && p[len - 1] == '/')
			len--;
		while (len && *p == '/') {
			p++;
			len--;
		}
		cfg->key_prefix = s3db_strndup(p, len);
	}
	free(prefix);
	if (rc == S3DB_OK && (!cfg->key_prefix || !*cfg->key_prefix))
		rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CachePlugin: s3Options.prefix is empty");
	if (rc == S3DB_OK)
		rc = get_string(objs, n, "bucket", &cfg->bucket, err);
	if (rc == S3DB_OK)
		rc = get_string(objs, n, "connectionString", &cfg->connection_string, err);
	if (rc == S3DB_OK)
		rc = get_string(objs, n, "accessKeyId", &cfg->access_key, err);
	if (rc == S3DB_OK)
		rc = get_string(objs, n, "secretAccessKey", &cfg->secret_key, err);
	if (rc == S3DB_OK && !cfg->access_key != !cfg->secret_key)
		rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                    "CachePlugin: s3Options needs both accessKeyId and secretAccessKey");
	if (rc == S3DB_OK)
		rc = get_bool(objs, n, "compression", 1, &cfg->compression, err);
	if (rc == S3DB_OK)
		rc = get_bool(objs, n, "encryption", 0, &cfg->encryption, err);
	if (rc == S3DB_OK)
		rc = get_string(objs, n, "encryptionKey", &cfg->encryption_key, err);
	if (rc == S3DB_OK && cfg->encryption && (!cfg->encryption_key || !*cfg->encryption_key))
		rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                    "CachePlugin: s3Options.encryption needs s3Options.encryptionKey "
		                    "(the passphrase the AES-256-GCM key is derived from)");
	cfg->stats = 1;
	return rc;
}

s3db_code cache_config_parse(json_object *options, cache_config *cfg, s3db_error *err)
{
	memset(cfg, 0, sizeof *cfg);
	if (options && !json_object_is_type(options, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CachePlugin: options must be an object");
	json_object *driver_obj = NULL;
	s3db_code rc = pick_driver(options, &cfg->memory, &driver_obj, err);
	if (rc != S3DB_OK)
		return rc;
	json_object *own = object_member(options, cfg->memory ? "memoryOptions" : "s3Options");
	json_object *objs[3] = { driver_obj, own, options };
	rc = get_number(objs, 3, "ttl", DEFAULT_TTL_MS, 0, &cfg->ttl_ms, err);
	if (rc == S3DB_OK)
		rc = get_bool(&options, 1, "includePartitions", 1, &cfg->include_partitions, err);
	if (rc == S3DB_OK)
		rc = cfg->memory ? parse_memory(objs, 3, cfg, err) : parse_s3(objs, 2, cfg, err);
	return rc;
}

void cache_config_free(cache_config *cfg)
{
	free(cfg->key_prefix);
	free(cfg->bucket);
	free(cfg->connection_string);
	free(cfg->access_key);
	if (cfg->secret_key)
		OPENSSL_cleanse(cfg->secret_key, strlen(cfg->secret_key));
	free(cfg->secret_key);
	if (cfg->encryption_key)
		OPENSSL_cleanse(cfg->encryption_key, strlen(cfg->encryption_key));
	free(cfg->encryption_key);
	memset(cfg, 0, sizeof *cfg);
}

/* SHA-256 of the texts (each with its NUL, NULL as nothing) into out;
 * all zeros when every text is NULL. */
static int identity_digest(const char *a, const char *b, unsigned char out[32])
{
	memset(out, 0, 32);
	if (!a && !b)
		return 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	         (!a || EVP_DigestUpdate(md, a, strlen(a) + 1) == 1) &&
	         EVP_DigestUpdate(md, "|", 1) == 1 &&
	         (!b || EVP_DigestUpdate(md, b, strlen(b) + 1) == 1) &&
	         EVP_DigestFinal_ex(md, out, &len) == 1 && len == 32;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

s3db_code cache_identity_of(const cache_config *cfg, cache_identity *id, s3db_error *err)
{
	memset(id, 0, sizeof *id);
	id->memory = cfg->memory;
	if (cfg->memory)
		return S3DB_OK;
	id->encryption = cfg->encryption;
	if (!(id->key_prefix = strdup(cfg->key_prefix ? cfg->key_prefix : "")) ||
	    (cfg->bucket && !(id->bucket = strdup(cfg->bucket))))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (identity_digest(cfg->connection_string, NULL, id->connection_string) ||
	    identity_digest(cfg->access_key, cfg->secret_key, id->credentials) ||
	    identity_digest(cfg->encryption ? cfg->encryption_key : NULL, NULL, id->encryption_key))
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "CachePlugin: cannot digest the options");
	return S3DB_OK;
}

static int same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

const char *cache_identity_change(const cache_identity *a, const cache_identity *b)
{
	if (a->memory != b->memory)
		return "driver (driverType)";
	if (a->memory)
		return NULL; /* the memory driver keeps nothing outside the process */
	if (!same_text(a->key_prefix, b->key_prefix))
		return "s3Options.prefix (keyPrefix)";
	if (!same_text(a->bucket, b->bucket))
		return "s3Options.bucket";
	if (CRYPTO_memcmp(a->connection_string, b->connection_string, 32) != 0)
		return "s3Options.connectionString";
	if (CRYPTO_memcmp(a->credentials, b->credentials, 32) != 0)
		return "s3Options.accessKeyId/secretAccessKey";
	if (a->encryption != b->encryption)
		return "s3Options.encryption";
	if (CRYPTO_memcmp(a->encryption_key, b->encryption_key, 32) != 0)
		return "s3Options.encryptionKey";
	return NULL;
}

void cache_identity_free(cache_identity *id)
{
	free(id->key_prefix);
	free(id->bucket);
	OPENSSL_cleanse(id, sizeof *id);
}

char *cache_config_bucket_connstr(const char *described, const char *bucket,
                                  const char *access_key, const char *secret_key)
{
	const char *sep = strstr(described, "://");
	if (!sep || !strncmp(described, "file:", 5))
		return NULL;
	const char *rest = sep + 3;
	const char *at = strchr(rest, '@'), *slash = strchr(rest, '/');
	if (at && (!slash || at < slash))
		rest = at + 1; /* drop the described (masked) credentials */
	char *creds = NULL;
	if (access_key) {
		char *k = codec_uri_encode_component(access_key);
		char *s = codec_uri_encode_component(secret_key);
		creds = k && s ? s3db_asprintf("%s:%s@", k, s) : NULL;
		free(k);
		if (s)
			OPENSSL_cleanse(s, strlen(s));
		free(s);
		if (!creds)
			return NULL;
	}
	int s3 = !strncmp(described, "s3:", 3);
	char *out;
	if (s3) {
		/* s3://BUCKET/prefix?query: the host is the bucket */
		const char *after = rest + strcspn(rest, "/?");
		out = s3db_asprintf("s3://%s%s%s", creds ? creds : "", bucket, after);
	} else {
		/* http(s)://host:port/BUCKET/prefix?query */
		size_t host_len = strcspn(rest, "/?");
		const char *path = rest + host_len;
		const char *after = *path == '/' ? path + 1 + strcspn(path + 1, "/?") : path;
		out = s3db_asprintf("%.*s%s%.*s/%s%s", (int)(sep + 3 - described), described,
		                    creds ? creds : "", (int)host_len, rest, bucket, after);
	}
	if (creds)
		OPENSSL_cleanse(creds, strlen(creds));
	free(creds);
	return out;
}

s3db_code cache_config_open_s3(const cache_config *cfg, const s3db_plugin_api *api, s3db *db,
                               cache_s3 *out, s3db_error *err)
{
	memset(out, 0, sizeof *out);
	out->api = api;
	out->target = db;
	if (!(out->base = s3db_asprintf("plugin=cache/%s/", cfg->key_prefix)))
		return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
	if (cfg->encryption && cache_crypto_derive(&out->crypto, cfg->encryption_key))
		return s3db_error_set(err, S3DB_ERR_CRYPTO, "CachePlugin: cannot derive the key");
	char *connstr = NULL;
	if (cfg->connection_string) {
		connstr = strdup(cfg->connection_string);
	} else if (cfg->bucket) {
		char *described = s3db_describe(db);
		connstr = described ? cache_config_bucket_connstr(described, cfg->bucket,
		                                                  cfg->access_key, cfg->secret_key)
		                    : NULL;
		free(described);
		if (!connstr)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "CachePlugin: s3Options.bucket needs a database on S3");
	}
	if (!connstr)
		return S3DB_OK;
	s3db_code rc = s3db_open(connstr, NULL, &out->own, err);
	OPENSSL_cleanse(connstr, strlen(connstr));
	free(connstr);
	if (rc != S3DB_OK) {
		s3db_error_prefix(err, "CachePlugin: opening the cache's own location");
		return rc;
	}
	out->target = out->own;
	return S3DB_OK;
}

void cache_config_close_s3(cache_s3 *c)
{
	if (c->own)
		s3db_close(c->own);
	free(c->base);
	OPENSSL_cleanse(&c->crypto, sizeof c->crypto);
	memset(c, 0, sizeof *c);
}
