/*
 * builtin.h — the plugins compiled into s3dbfs and the s3db CLI, found by
 * the name the configuration gives them ("CostsPlugin").
 *
 * Each built-in plugin lives in its own file (plugins/costs.c, ...) and
 * exports one definition, `extern const s3db_plugin_def
 * <name>_plugin_def;`, which builtin.c lists in its table.  The guide
 * names seven plugins; those not built yet are known by name, so that a
 * configuration naming one says so plainly instead of "unknown".
 *
 * plugins_add_entry is what the daemon and the CLI call for each
 * configured entry: a name goes through the table, a path through
 * s3db_plugin_load.
 */
#ifndef S3DB_PLUGINS_BUILTIN_H
#define S3DB_PLUGINS_BUILTIN_H

#include "s3db_plugin.h"

/* The built-in plugin called name; NULL when there is none in this build
 * (plugins_builtin_get says why). */
const s3db_plugin_def *plugins_builtin_find(const char *name);

/* The same with a message: S3DB_ERR_UNSUPPORTED "AuditPlugin: not
 * available in this build" for a guide plugin not built here,
 * S3DB_ERR_INVALID_ARG "unknown plugin 'X' (built in: ...)" otherwise.
 * origin (may be NULL) prefixes the message. */
s3db_code plugins_builtin_get(const char *name, const char *origin, const s3db_plugin_def **out,
                              s3db_error *err);

/* The names built in, comma-separated ("CostsPlugin, MetricsPlugin"), or
 * "none" (static). */
const char *plugins_builtin_names(void);

/* Adds one configured plugin to db: a built-in by name (path NULL) or a
 * shared object by path (name NULL), with options (borrowed, NULL: {}).
 * origin names the configuration entry for messages.  *out (optional)
 * is the plugin, owned by db. */
s3db_code plugins_add_entry(s3db *db, const char *name, const char *path, json_object *options,
                            const char *origin, s3db_plugin **out, s3db_error *err);

#endif
