/*
 * config.c — the JSON configuration file of s3dbfs (-o config=FILE).
 *
 * Shape: the argument of s3db.js's constructor, new S3db({...}), plus a
 * "mount" object holding the -o options under their -o names:
 *
 *   {
 *     "connectionString": "s3://my-bucket/databases/app",
 *     "passphrase": "...",                       (optional; a secret)
 *     "plugins": [
 *       "CostsPlugin",                           (a name: no options)
 *       {"name": "CachePlugin", "options": {"driverType": "memory", "ttl": 600000}},
 *       {"path": "/usr/lib/s3dbfs/plugins/notify.so", "options": {...}}
 *     ],
 *     "mount": {"record_ttl": 5, "umask": "027", "log_level": "info"}
 *   }
 *
 * Validation is strict where a mistake would silently change behaviour:
 * unknown top-level keys, unknown "mount" options, unknown plugin names,
 * wrong JSON types are errors naming the file and the key path
 * ("config.json: plugins[1].options.ttl: must be a number").  Options of
 * the seven plugins are checked against the guide's tables (type, range,
 * enumerations; nested memoryOptions / s3Options, replicator and consumer
 * entries); an option the tables do not list is kept with a warning, since
 * plugins are configured by their own code (a later issue) and s3db.js
 * itself passes unknown options through.  Options that are JavaScript
 * functions in the guide (AuditPlugin.userId, ...) cannot be written in
 * JSON and are refused with that reason.
 *
 * Secrets: a file that holds one (a connection string with a secret key,
 * "passphrase", or plugin options with credentials — a key that looks
 * secret or a URL with a password) must not be readable by group or
 * others, as with passwd_file.  Secret values never enter a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mountopts.h"
#include "util.h"

#define CONFIG_MAX_SIZE (1024 * 1024)
#define CONFIG_WHERE_MAX 512   /* "name: plugins[1].options.x" */

/* ---- the plugins' option tables (from the guide) ----------------------------- */

typedef enum popt_type {
	PO_NUMBER,       /* min..max                                     */
	PO_BOOL,
	PO_STRING,       /* one of `choices` when given ("a|b")          */
	PO_STRING_NULL,  /* string or null                               */
	PO_STRINGS,      /* array of strings                             */
	PO_OBJECT,       /* object; checked against `sub` when given     */
	PO_REPLICATORS,  /* ReplicatorPlugin.replicators entries         */
	PO_CONSUMERS,    /* QueueConsumerPlugin.consumers entries        */
	PO_FUNCTION,     /* a JavaScript function: impossible in JSON    */
	PO_INSTANCE,     /* a JavaScript object instance: likewise       */
	PO_DRIVER        /* CachePlugin's driver: null, one of `choices`
	                    as a string ('s3' in s3db.js 21.x), or an
	                    object the plugin checks ({type, ...})       */
} popt_type;

typedef struct popt {
	const char *name;
	popt_type type;
	double min, max;
	const char *choices;
	const struct popt *sub;
} popt;

#define NUM(n) { n, PO_NUMBER, 0, INFINITY, NULL, NULL }
#define NUMR(n, lo, hi) { n, PO_NUMBER, lo, hi, NULL, NULL }
#define BOOL(n) { n, PO_BOOL, 0, 0, NULL, NULL }
#define STR(n) { n, PO_STRING, 0, 0, NULL, NULL }
#define ENUM(n, c) { n, PO_STRING, 0, 0, c, NULL }
#define STRS(n) { n, PO_STRINGS, 0, 0, NULL, NULL }
#define OBJ(n, s) { n, PO_OBJECT, 0, 0, NULL, s }
#define OF(n, t) { n, t, 0, 0, NULL, NULL }
#define END { NULL, PO_NUMBER, 0, 0, NULL, NULL }

static const popt cache_memory[] = { NUM("maxSize"), NUM("ttl"), NUM("checkPeriod"), END };
/* s3Options: the guide's bucket, prefix, client, then s3dbfs's own
 * (documented in s3dbfs(8)): compression, encryption, its own location */
static const popt cache_s3[] = {
	STR("bucket"), STR("prefix"), OF("client", PO_INSTANCE), BOOL("compression"),
	BOOL("encryption"), STR("encryptionKey"), STR("connectionString"), STR("accessKeyId"),
	STR("secretAccessKey"), END,
};
static const popt cache_opts[] = {
	ENUM("driverType", "memory|s3"), NUM("ttl"), NUM("maxSize"), BOOL("includePartitions"),
	{ "driver", PO_DRIVER, 0, 0, "memory|s3", NULL }, NUM("checkPeriod"),
	OBJ("memoryOptions", cache_memory), OBJ("s3Options", cache_s3), END,
};
/* the guide's structure's prices, as an option (s3dbfs) */
static const popt costs_prices[] = {
	NUM("put"), NUM("get"), NUM("head"), NUM("delete"), NUM("list"), END,
};
static const popt costs_opts[] = { OBJ("prices", costs_prices), END };
static const popt metrics_alerts[] = {
	NUMR("errorRate", 0, 1), NUM("avgResponseTime"), NUMR("memoryUsage", 0, 1), END,
};
static const popt metrics_names[] = { STR("metrics"), STR("errors"), STR("performance"), END };
static const popt audit_opts[] = {
	BOOL("enabled"), BOOL("includeData"), BOOL("includePartitions"), NUM("maxDataSize"),
	STRS("trackOperations"), STRS("excludeResources"), OF("userId", PO_FUNCTION),
	OF("metadata", PO_FUNCTION), END,
};
static const popt fulltext_opts[] = {
	BOOL("enabled"), STRS("fields"), NUM("minWordLength"), NUM("maxResults"), STR("language"),
	STRS("stopWords"), BOOL("stemming"), BOOL("caseSensitive"), BOOL("fuzzySearch"),
	STR("indexName"), END,
};
static const popt metrics_opts[] = {
	BOOL("enabled"), BOOL("collectPerformance"), BOOL("collectErrors"), BOOL("collectUsage"),
	NUM("retentionDays"), NUM("flushInterval"), NUMR("sampleRate", 0, 1),
	BOOL("trackSlowQueries"), NUM("slowQueryThreshold"), NUM("batchSize"),
	OBJ("alertThresholds", metrics_alerts), OBJ("resourceNames", metrics_names), END,
};
static const popt replicator_opts[] = {
	BOOL("enabled"), OF("replicators", PO_REPLICATORS), BOOL("persistReplicatorLog"),
	STR("replicatorLogResource"), NUM("batchSize"), NUM("retryAttempts"), NUM("retryDelay"),
	NUM("syncInterval"), END,
};
static const popt consumer_opts[] = {
	BOOL("enabled"), OF("consumers", PO_CONSUMERS), NUM("batchSize"), NUM("concurrency"),
	NUM("retryAttempts"), NUM("retryDelay"), OF("deadLetterQueue", PO_STRING_NULL), END,
};

static const struct {
	const char *name;
	const popt *options;
} known_plugins[] = {
	{ "CachePlugin", cache_opts },         { "CostsPlugin", costs_opts },
	{ "AuditPlugin", audit_opts },         { "FullTextPlugin", fulltext_opts },
	{ "MetricsPlugin", metrics_opts },     { "ReplicatorPlugin", replicator_opts },
	{ "QueueConsumerPlugin", consumer_opts },
};

int mopt_plugin_known(const char *name)
{
	for (size_t i = 0; i < sizeof known_plugins / sizeof known_plugins[0]; i++)
		if (strcmp(known_plugins[i].name, name) == 0)
			return 1;
	return 0;
}

static const popt *plugin_table(const char *name)
{
	for (size_t i = 0; i < sizeof known_plugins / sizeof known_plugins[0]; i++)
		if (strcmp(known_plugins[i].name, name) == 0)
			return known_plugins[i].options;
	return NULL;
}

/* ---- validation --------------------------------------------------------------------- */

/* Formats a key path for messages ("config.json: plugins[1].options")
 * into buf, cut short when it does not fit. */
static void where_fmt(char *buf, size_t size, const char *fmt, ...) S3DB_PRINTF(3, 4);
static void where_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

static const char *type_word(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double:
	case json_type_int: return "a number";
	case json_type_string: return "a string";
	case json_type_array: return "an array";
	case json_type_object: return "an object";
	}
	return "?";
}

/* Whether choices ("a|b|c") holds s. */
static int choice_ok(const char *choices, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = choices; *p;) {
		size_t l = strcspn(p, "|");
		if (l == n && strncmp(p, s, n) == 0)
			return 1;
		p += l + (p[l] == '|');
	}
	return 0;
}

/* S3DB_OK when the string v is one of choices ("a|b|c"), else an error
 * naming them ("<where>: must be one of a,b,c"). */
static s3db_code check_choice(json_object *v, const char *choices, const char *where,
                              s3db_error *err)
{
	if (choice_ok(choices, json_object_get_string(v)))
		return S3DB_OK;
	char list[64];
	snprintf(list, sizeof list, "%s", choices);
	for (char *c = list; *c; c++)
		if (*c == '|')
			*c = ',';
	return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be one of %s", where, list);
}

static s3db_code check_options(json_object *obj, const popt *table, const char *plugin,
                               const char *where, s3db_error *err);

/* ReplicatorPlugin.replicators[i]: {driver, resources, config}. */
static s3db_code check_replicator(json_object *e, const char *where, s3db_error *err)
{
	if (!json_object_is_type(e, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be an object, not %s",
		                      where, type_word(e));
	json_object *v;
	if (!json_object_object_get_ex(e, "driver", &v) || !json_object_is_type(v, json_type_string))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s.driver: must be a string (s3db, sqs, bigquery or postgres)",
		                      where);
	if (!choice_ok("s3db|sqs|bigquery|postgres", json_object_get_string(v)))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s.driver: must be s3db, sqs, bigquery or postgres", where);
	if (json_object_object_get_ex(e, "resources", &v) &&
	    !json_object_is_type(v, json_type_array) && !json_object_is_type(v, json_type_object) &&
	    !json_object_is_type(v, json_type_string))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s.resources: must be an array, an object or a string", where);
	if (json_object_object_get_ex(e, "config", &v) && !json_object_is_type(v, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s.config: must be an object",
		                      where);
	return S3DB_OK;
}

/* QueueConsumerPlugin.consumers[i]: {driver, config, consumers}. */
static s3db_code check_consumer(json_object *e, const char *where, s3db_error *err)
{
	if (!json_object_is_type(e, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be an object, not %s",
		                      where, type_word(e));
	json_object *v;
	if (!json_object_object_get_ex(e, "driver", &v) || !json_object_is_type(v, json_type_string) ||
	    !choice_ok("sqs|rabbitmq", json_object_get_string(v)))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s.driver: must be \"sqs\" or \"rabbitmq\"", where);
	if (json_object_object_get_ex(e, "config", &v) && !json_object_is_type(v, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s.config: must be an object",
		                      where);
	if (json_object_object_get_ex(e, "consumers", &v) && !json_object_is_type(v, json_type_array))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s.consumers: must be an array",
		                      where);
	return S3DB_OK;
}

/* One option value against its row. */
static s3db_code check_value(json_object *v, const popt *p, const char *plugin, const char *where,
                             s3db_error *err)
{
	json_type t = json_object_get_type(v);
	switch (p->type) {
	case PO_NUMBER: {
		if (t != json_type_int && t != json_type_double)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be a number", where);
		double x = json_object_get_double(v);
		if (!(x >= p->min) || x > p->max) {
			if (isinf(p->max))
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "%s: must be a number >= %g", where, p->min);
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be a number from %g to %g", where, p->min,
			                      p->max);
		}
		return S3DB_OK;
	}
	case PO_BOOL:
		if (t != json_type_boolean)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be true or false",
			                      where);
		return S3DB_OK;
	case PO_STRING_NULL:
		if (t == json_type_null)
			return S3DB_OK;
		/* fall through */
	case PO_STRING:
		if (t != json_type_string)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be a string", where);
		return p->choices ? check_choice(v, p->choices, where, err) : S3DB_OK;
	case PO_STRINGS:
		if (t != json_type_array)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be an array of strings", where);
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "%s[%zu]: must be a string", where, i);
		return S3DB_OK;
	case PO_OBJECT:
		if (t != json_type_object)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be an object", where);
		return p->sub ? check_options(v, p->sub, plugin, where, err) : S3DB_OK;
	case PO_REPLICATORS:
	case PO_CONSUMERS:
		if (t != json_type_array)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be an array", where);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			char w[CONFIG_WHERE_MAX];
			where_fmt(w, sizeof w, "%s[%zu]", where, i);
			json_object *e = json_object_array_get_idx(v, i);
			s3db_code rc = p->type == PO_REPLICATORS ? check_replicator(e, w, err)
			                                         : check_consumer(e, w, err);
			if (rc != S3DB_OK)
				return rc;
		}
		return S3DB_OK;
	case PO_FUNCTION:
		if (t == json_type_null)
			return S3DB_OK;
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: is a JavaScript function in s3db.js and cannot be "
		                      "given in a configuration file", where);
	case PO_DRIVER:
		if (t == json_type_string)
			return check_choice(v, p->choices, where, err);
		if (t == json_type_object || t == json_type_null)
			return S3DB_OK;
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: must be \"memory\", \"s3\" or an object", where);
	case PO_INSTANCE:
		if (t == json_type_null)
			return S3DB_OK;
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: is a JavaScript object instance in s3db.js and cannot "
		                      "be given in a configuration file", where);
	}
	return S3DB_OK;
}

/* Every key of obj against table: known keys checked, unknown ones warned
 * about (kept). */
static s3db_code check_options(json_object *obj, const popt *table, const char *plugin,
                               const char *where, s3db_error *err)
{
	json_object_object_foreach(obj, key, val) {
		char w[CONFIG_WHERE_MAX];
		where_fmt(w, sizeof w, "%s.%s", where, key);
		const popt *p = NULL;
		for (const popt *q = table; q->name; q++)
			if (strcmp(q->name, key) == 0)
				p = q;
		if (!p) {
			log_msg(LOG_LVL_WARN, "%s: not an option of %s in the s3db.js guide (kept)", w,
			        plugin);
			continue;
		}
		s3db_code rc = check_value(val, p, plugin, w, err);
		if (rc != S3DB_OK)
			return rc;
	}
	return S3DB_OK;
}

/* ---- secrets ------------------------------------------------------------------------ */

static int key_looks_secret(const char *k)
{
	static const char *const words[] = { "secret", "password", "passphrase", "token",
	                                     "credential", "privatekey" };
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcasestr(k, words[i]))
			return 1;
	return 0;
}

/* Whether a JSON value holds something secret: a value under a
 * secret-looking key, or a URL with a password. */
static int json_has_secret(json_object *v, const char *key)
{
	switch (json_object_get_type(v)) {
	case json_type_string: {
		const char *s = json_object_get_string(v);
		if (key && key_looks_secret(key) && *s)
			return 1;
		return mopt_conn_has_secret(s);
	}
	case json_type_object: {
		json_object_object_foreach(v, k, val) {
			if (key_looks_secret(k) && json_object_is_type(val, json_type_object) &&
			    json_object_object_length(val) > 0)
				return 1;
			if (json_has_secret(val, k))
				return 1;
		}
		return 0;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (json_has_secret(json_object_array_get_idx(v, i), key))
				return 1;
		return 0;
	default:
		return 0;
	}
}

/* Whether a parsed (valid) configuration holds a secret: a connection
 * string with a password or token, a passphrase, or plugin options that
 * look like credentials.  The "mount" object holds paths, never secrets. */
static int config_has_secret(json_object *root)
{
	json_object *v;
	if (json_object_object_get_ex(root, "passphrase", &v))
		return 1;
	if (json_object_object_get_ex(root, "connectionString", &v) &&
	    mopt_conn_has_secret(json_object_get_string(v)))
		return 1;
	return json_object_object_get_ex(root, "plugins", &v) && json_has_secret(v, NULL);
}

/* ---- the file --------------------------------------------------------------------------- */

/* plugins[i] of the file: a string (name or .so path) or an object
 * {"name"|"path", "options"}. */
static s3db_code parse_plugin(mopt *o, json_object *e, size_t i, const char *name,
                              const char *dir, s3db_error *err)
{
	char where[CONFIG_WHERE_MAX], origin[CONFIG_WHERE_MAX];
	where_fmt(where, sizeof where, "%s: plugins[%zu]", name, i);
	where_fmt(origin, sizeof origin, "%s: plugins[%zu]", name, i);
	if (json_object_is_type(e, json_type_string))
		return mopt_add_plugin_text(o, json_object_get_string(e), origin, dir, where, err);
	if (!json_object_is_type(e, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: must be a plugin name, a .so path or an object "
		                      "{\"name\" or \"path\", \"options\"}", where);
	json_object *vname = NULL, *vpath = NULL, *vopts = NULL;
	json_object_object_foreach(e, k, val) {
		if (strcmp(k, "name") == 0)
			vname = val;
		else if (strcmp(k, "path") == 0)
			vpath = val;
		else if (strcmp(k, "options") == 0)
			vopts = val;
		else
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s.%s: unknown key (expected name or path, and options)",
			                      where, k);
	}
	if (!vname == !vpath)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: give either \"name\" (one of the seven plugins) or "
		                      "\"path\" (a .so)", where);
	json_object *v = vname ? vname : vpath;
	char w[CONFIG_WHERE_MAX + 64];
	where_fmt(w, sizeof w, "%s.%s", where, vname ? "name" : "path");
	if (!json_object_is_type(v, json_type_string))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be a string", w);
	const char *text = json_object_get_string(v);
	if (vname && !mopt_plugin_known(text))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: unknown plugin '%s' (known: CachePlugin, CostsPlugin, "
		                      "AuditPlugin, FullTextPlugin, MetricsPlugin, ReplicatorPlugin, "
		                      "QueueConsumerPlugin; a custom plugin is given by \"path\")", w,
		                      text);
	if (vpath && !s3db_str_ends(text, ".so"))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: must name a shared object (.so)", w);
	if (vopts && !json_object_is_type(vopts, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s.options: must be an object",
		                      where);
	if (vopts && vname) {
		char ow[CONFIG_WHERE_MAX + 64];
		where_fmt(ow, sizeof ow, "%s.options", where);
		s3db_code rc = check_options(vopts, plugin_table(text), text, ow, err);
		if (rc != S3DB_OK)
			return rc;
	}
	s3db_code rc = mopt_add_plugin_text(o, text, origin, dir, w, err);
	if (rc != S3DB_OK)
		return rc;
	if (vopts) {
		mopt_plugin *p = &o->plugins[o->nplugins - 1];
		json_object_put(p->options);
		p->options = NULL;
		if (json_object_deep_copy(vopts, &p->options, NULL) != 0 || !p->options)
			return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory", where);
	}
	return S3DB_OK;
}

s3db_code mopt_config_parse(const char *text, size_t len, const char *name, const char *dir,
                            mopt *o, s3db_error *err)
{
	memset(o, 0, sizeof *o);
	json_object *root = NULL;
	s3db_error perr = { 0 };
	if (s3db_json_parse(text, len, &root, &perr) != S3DB_OK)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: %s", name, perr.message);
	s3db_code rc = S3DB_OK;
	if (!json_object_is_type(root, json_type_object)) {
		rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                    "%s: must hold a JSON object, not %s", name, type_word(root));
		goto out;
	}
	json_object_object_foreach(root, key, val) {
		char where[CONFIG_WHERE_MAX];
		where_fmt(where, sizeof where, "%s: %s", name, key);
		if (strcmp(key, "connectionString") == 0 || strcmp(key, "passphrase") == 0) {
			if (!json_object_is_type(val, json_type_string) || !*json_object_get_string(val)) {
				rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                    "%s: must be a non-empty string", where);
				goto out;
			}
			rc = mopt_set_text(o, key, json_object_get_string(val), where, err);
		} else if (strcmp(key, "plugins") == 0) {
			if (!json_object_is_type(val, json_type_array)) {
				rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be an array",
				                    where);
				goto out;
			}
			for (size_t i = 0; rc == S3DB_OK && i < json_object_array_length(val); i++)
				rc = parse_plugin(o, json_object_array_get_idx(val, i), i, name, dir, err);
			o->set |= UINT64_C(1) << MOPT_PLUGINS;
		} else if (strcmp(key, "mount") == 0) {
			if (!json_object_is_type(val, json_type_object)) {
				rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be an object",
				                    where);
				goto out;
			}
			json_object_object_foreach(val, mkey, mval) {
				char mw[CONFIG_WHERE_MAX + 64];
				where_fmt(mw, sizeof mw, "%s: mount.%s", name, mkey);
				const mopt_desc *d = mopt_desc_find(mkey);
				if (!d || !d->help) {
					rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
					                    "%s: unknown option (see s3dbfs(8) for the -o "
					                    "options)", mw);
					goto out;
				}
				rc = mopt_set_json(o, mkey, mval, dir, mw, err);
				if (rc != S3DB_OK)
					goto out;
			}
		} else if (key[0] == '$') {
			continue; /* "$schema", "$comment" */
		} else {
			rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                    "%s: unknown key (expected connectionString, passphrase, "
			                    "plugins, mount)", where);
		}
		if (rc != S3DB_OK)
			goto out;
	}
out:
	json_object_put(root);
	if (rc != S3DB_OK)
		mopt_free(o);
	return rc;
}

s3db_code mopt_config_load(const char *path, const char *name, mopt *o, s3db_error *err)
{
	memset(o, 0, sizeof *o);
	if (!name)
		name = path;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: %s", name, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: not a regular file", name);
	}
	if (st.st_size > CONFIG_MAX_SIZE) {
		close(fd);
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: larger than 1 MiB", name);
	}
	char *text;
	size_t got;
	int read_rc = s3db_read_fd(fd, (size_t)st.st_size, &text, &got);
	close(fd);
	if (read_rc != 0)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory", name);

	/* the file's directory, for relative paths inside it */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else if (!getcwd(dir, sizeof dir))
		snprintf(dir, sizeof dir, ".");

	s3db_code rc = mopt_config_parse(text, got, name, dir, o, err);
	if (rc == S3DB_OK && (st.st_mode & 077)) {
		json_object *root = NULL;
		if (s3db_json_parse(text, got, &root, NULL) == S3DB_OK && config_has_secret(root))
			rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                    "%s: holds a secret (a password in a connection string, a "
			                    "passphrase or credentials) but its mode %04o lets group or "
			                    "others read it: chmod 600 it, or keep the secret in "
			                    "passwd_file / passphrase_file", name,
			                    (unsigned)(st.st_mode & 07777));
		json_object_put(root);
		if (rc != S3DB_OK)
			mopt_free(o);
	}
	explicit_bzero(text, got);
	free(text);
	return rc;
}
