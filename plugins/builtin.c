/*
 * builtin.c — the table of plugins compiled in (see builtin.h).
 *
 * Adding a plugin: one `extern` line and one table line below, and its
 * source file in Makefile.am's plugins/libs3db_plugins.la.  The guide's
 * names that have no entry are answered "not available in this build".
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "builtin.h"
#include "util.h"

/* ---- the plugins built in (one line each) ---------------------------------------- */

extern const s3db_plugin_def costs_plugin_def;
extern const s3db_plugin_def metrics_plugin_def;
extern const s3db_plugin_def cache_plugin_def;

static const struct builtin {
	const char *name;
	const s3db_plugin_def *def;
} builtins[] = {
	{ "CostsPlugin", &costs_plugin_def },
	{ "MetricsPlugin", &metrics_plugin_def },
	{ "CachePlugin", &cache_plugin_def },
	{ NULL, NULL } /* end */
};

/* The seven plugins of the guide (../shared/seed/PLUGINS.md). */
static const char *const guide_plugins[] = {
	"CachePlugin", "CostsPlugin", "AuditPlugin", "FullTextPlugin",
	"MetricsPlugin", "ReplicatorPlugin", "QueueConsumerPlugin",
};

const s3db_plugin_def *plugins_builtin_find(const char *name)
{
	for (size_t i = 0; name && builtins[i].name; i++)
		if (!strcmp(builtins[i].name, name))
			return builtins[i].def;
	return NULL;
}

static char builtin_names[512];
static pthread_once_t builtin_names_once = PTHREAD_ONCE_INIT;

static void builtin_names_make(void)
{
	size_t n = 0;
	for (size_t i = 0; builtins[i].name && n < sizeof builtin_names; i++)
		n += (size_t)snprintf(builtin_names + n, sizeof builtin_names - n, "%s%s",
		                      i ? ", " : "", builtins[i].name);
	if (!builtin_names[0])
		snprintf(builtin_names, sizeof builtin_names, "none");
}

const char *plugins_builtin_names(void)
{
	pthread_once(&builtin_names_once, builtin_names_make);
	return builtin_names;
}

static int is_guide_plugin(const char *name)
{
	for (size_t i = 0; i < sizeof guide_plugins / sizeof guide_plugins[0]; i++)
		if (!strcmp(guide_plugins[i], name))
			return 1;
	return 0;
}

s3db_code plugins_builtin_get(const char *name, const char *origin, const s3db_plugin_def **out,
                              s3db_error *err)
{
	*out = plugins_builtin_find(name);
	if (*out)
		return S3DB_OK;
	const char *pre = origin ? origin : "", *sep = origin ? ": " : "";
	if (name && is_guide_plugin(name))
		return s3db_error_set(err, S3DB_ERR_UNSUPPORTED,
		                      "%s%s%s: not available in this build (built in: %s)", pre, sep,
		                      name, plugins_builtin_names());
	return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
	                      "%s%sunknown plugin '%s' (built in: %s; a custom plugin is given by "
	                      "the path of its .so)", pre, sep, name ? name : "",
	                      plugins_builtin_names());
}

s3db_code plugins_add_entry(s3db *db, const char *name, const char *path, json_object *options,
                            const char *origin, s3db_plugin **out, s3db_error *err)
{
	if (path)
		return s3db_plugin_load(db, path, options, origin, out, err);
	const s3db_plugin_def *def = NULL;
	s3db_code rc = plugins_builtin_get(name, origin, &def, err);
	if (rc != S3DB_OK)
		return rc;
	return s3db_plugin_add(db, def, options, origin ? origin : name, out, err);
}
