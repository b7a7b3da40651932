/*
 * mountopts.h — the options of the s3dbfs daemon: one table, three sources.
 *
 * Every option a user tunes is described once (mountopts.c's table: name,
 * type, field, whether it can change while mounted).  Values come from
 *   1. built-in defaults                         (mopt_defaults)
 *   2. a JSON configuration file, -o config=FILE (config.c)
 *   3. the command line, -o name=value          (mountopts.c)
 * and are merged in that order, the command line winning
 * (mopt_merge).  Each source records which options it gave in a bit set,
 * so "given" and "default" are never confused.
 *
 * The configuration file mirrors s3db.js's constructor,
 *   new S3db({connectionString, passphrase, plugins: [...]})
 * plus a "mount" object holding the -o options under the same names:
 *   {"connectionString": "s3://bucket/prefix",
 *    "plugins": ["CostsPlugin", {"name": "CachePlugin", "options": {"ttl": 60000}},
 *                {"path": "/usr/lib/s3dbfs/plugins/mine.so", "options": {}}],
 *    "mount": {"record_ttl": 5, "log_level": "info"}}
 * The file is watched (watch.c); when it changes it is re-read, and the
 * options that can change live are applied (mopt_diff says which).
 *
 * Secrets (the connection string's secret key, the passphrase) live in
 * fields marked "secret" below; they are never logged nor put in messages.
 *
 * Messages (warnings about unknown plugin options, the watcher's news) go
 * to the project's log (log.h); errors are returned in an s3db_error.
 */
#ifndef S3DBFS_MOUNTOPTS_H
#define S3DBFS_MOUNTOPTS_H

#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>
#include "log.h"
#include "s3db.h"
#include "util.h"

/* ---- the options ------------------------------------------------------------ */

/* One bit per option of the table (mopt.set). */
typedef enum mopt_key {
	MOPT_UID = 0, MOPT_GID, MOPT_UMASK,
	MOPT_ATTR_TIMEOUT, MOPT_ENTRY_TIMEOUT, MOPT_NEGATIVE_TIMEOUT,
	MOPT_RECORD_TTL, MOPT_DIR_TTL, MOPT_PREFETCH,
	MOPT_PARALLELISM, MOPT_TIMEOUT, MOPT_RETRIES, MOPT_MAX_THREADS,
	MOPT_CACHE_DIR, MOPT_SCRATCH_DIR, MOPT_PASSWD_FILE, MOPT_PASSPHRASE_FILE,
	MOPT_CONFIG, MOPT_ALLOW_OTHER, MOPT_RO, MOPT_PLUGIN, MOPT_LOG_LEVEL,
	/* not -o options: the configuration file's top-level keys and the
	 * positional arguments */
	MOPT_CONNECTION, MOPT_PASSPHRASE, MOPT_PLUGINS, MOPT_MOUNTPOINT,
	MOPT__COUNT
} mopt_key;

/* A plugin entry: one of the guide's seven (name set, path NULL) or a
 * custom shared object (path set, name NULL). */
typedef struct mopt_plugin {
	char *name;              /* "CachePlugin", ...; NULL for a .so      */
	char *path;              /* absolute path of a .so; NULL otherwise  */
	json_object *options;    /* owned; an empty object when none given  */
	char *origin;            /* "config.json: plugins[1]" / "-o plugin" */
} mopt_plugin;

typedef struct mopt {
	uint64_t set;            /* bit (1 << mopt_key): the option was given */

	/* database */
	char *connection;        /* secret: never logged                     */
	char *passphrase;        /* secret: from the config file only        */
	char *passwd_file;       /* s3fs format ACCESS:SECRET, mode 0600/0400 */
	char *passphrase_file;
	int parallelism;         /* requests in flight; 0: the daemon uses
	                            max(16, prefetch)                       */
	double timeout;          /* seconds per request (library: 30)        */
	int retries;             /* retries of a failed request (library: 5) */

	/* the tree (vfs_options) */
	uid_t uid;
	gid_t gid;
	mode_t umask;
	double attr_timeout, entry_timeout, negative_timeout;
	double record_ttl, dir_ttl;
	int prefetch;
	char *cache_dir, *scratch_dir;

	/* FUSE and the daemon */
	char *mountpoint;
	char *config;            /* absolute path of the config file         */
	char *config_name;       /* the path as the user wrote it (messages) */
	int allow_other, ro;
	int max_threads;
	int log_level;           /* a log_level (log.h)                      */

	mopt_plugin *plugins;    /* config "plugins" then -o plugin= entries */
	size_t nplugins;
} mopt;

/* What the command line says besides the options.  fuse_argv holds
 * argv[0] and every -o option the table does not know (passed to FUSE),
 * plus -d, allow_other and ro (the kernel enforces those). */
typedef struct mopt_cmdline {
	int foreground, debug, single_thread, show_help, show_version;
	int positional;          /* how many positional arguments were given */
	char **fuse_argv;        /* NULL-terminated, owned (mopt_cmdline_free) */
	int fuse_argc;
} mopt_cmdline;

/* Fills o with the defaults: uid/gid of the caller, umask 022, attr /
 * entry / negative timeouts 1 s, record_ttl 5, dir_ttl 5, prefetch 32,
 * max_threads 64, log_level info; nothing marked as set. */
void mopt_defaults(mopt *o);
/* Frees every string and plugin of o, wiping the secrets; o is zeroed. */
void mopt_free(mopt *o);

/* Parses the command line:
 *   s3dbfs CONNECTION MOUNTPOINT [-o opt[,opt...]] [-f] [-d] [-s]
 *   s3dbfs -o config=FILE MOUNTPOINT
 * into o (only what is given is marked set) and cl.  Paths are made
 * absolute against the current directory.  The connection string is
 * copied, then its secret (if any) is overwritten in argv with '*' so
 * that ps shows no secret.  Errors name the option ("-o umask: not an
 * octal mode between 000 and 777").  Returns S3DB_ERR_INVALID_ARG on a
 * usage error (S3DB_ERR_NOMEM when out of memory). */
s3db_code mopt_parse_cmdline(int argc, char **argv, mopt *o, mopt_cmdline *cl,
                             s3db_error *err);
void mopt_cmdline_free(mopt_cmdline *cl);

/* Sets one option from its text form ("record_ttl", "2.5"); `where` prefixes
 * error messages; relative paths are taken from the current directory.
 * Marks the option set. */
s3db_code mopt_set_text(mopt *o, const char *name, const char *value, const char *where,
                        s3db_error *err);

/* out = defaults, then every option `file` set, then every option `cli`
 * set; plugins: the file's list followed by the command line's.  out is
 * overwritten (not freed first).  S3DB_ERR_NOMEM on failure. */
s3db_code mopt_merge(mopt *out, const mopt *file, const mopt *cli);

/* Checks the merged options as a whole: a connection string and a mount
 * point are present.  Messages say where to give what is missing. */
s3db_code mopt_check(const mopt *o, s3db_error *err);

/* One difference between two option sets, for the reload log. */
typedef struct mopt_change {
	mopt_key key;
	const char *name;        /* "record_ttl", "connectionString", "plugins[0]" */
	char from[96], to[96];   /* printable values; for secrets from is ""
	                            and to "changed"                      */
	int live;                /* can be applied without remounting        */
} mopt_change;

typedef void (*mopt_change_fn)(void *ud, const mopt_change *change);
/* Calls fn once per option whose value differs between a and b (plugin
 * entries included: a plugin whose options changed is live; added or
 * removed plugins are not).  Returns the number of differences. */
size_t mopt_diff(const mopt *a, const mopt *b, mopt_change_fn fn, void *ud);

/* The help text of the options (for --help). */
const char *mopt_help(void);

/* ---- the table (for config.c and the tests) --------------------------------- */

typedef enum mopt_type {
	MT_UID, MT_GID,          /* number, or a user / group name          */
	MT_MODE,                 /* octal text "022"                        */
	MT_SECONDS,              /* number >= 0                             */
	MT_COUNT, MT_POSITIVE,   /* whole number >= 0 / >= 1, up to max     */
	MT_PATH,                 /* made absolute                           */
	MT_FLAG,                 /* -o name; JSON true/false                */
	MT_LOGLEVEL,             /* error|warn|info|debug (log.h)           */
	MT_PLUGIN,               /* a plugin name or .so path, appended     */
	MT_SECRET                /* a string never printed                  */
} mopt_type;

typedef struct mopt_desc {
	mopt_key key;
	const char *name;        /* "-o name=" and the config's key          */
	mopt_type type;
	size_t offset;           /* of the field in struct mopt              */
	int live;                /* a change applies without remounting      */
	int max;                 /* MT_COUNT / MT_POSITIVE upper bound       */
	const char *help;        /* NULL: not an -o option                   */
} mopt_desc;

extern const mopt_desc mopt_table[];
extern const size_t mopt_table_len;
/* The row named name; NULL when none. */
const mopt_desc *mopt_desc_find(const char *name);

/* Sets one option from a JSON value (the config file's "mount" object):
 * the JSON type must fit the option ("must be a number", "must be true or
 * false", ...).  Relative paths are resolved against dir.  `where`
 * prefixes messages ("config.json: mount.record_ttl"). */
s3db_code mopt_set_json(mopt *o, const char *name, json_object *v, const char *dir,
                        const char *where, s3db_error *err);
/* Appends a plugin given as text: one of the seven names, or the path of
 * a shared object (relative to dir; it must exist).  origin is stored
 * with the entry. */
s3db_code mopt_add_plugin_text(mopt *o, const char *value, const char *origin, const char *dir,
                               const char *where, s3db_error *err);

/* ---- secrets in connection strings ------------------------------------------ */

/* Whether s holds a secret: a secret key in the userinfo or a
 * secret-looking query option (sessionToken...). */
int mopt_conn_has_secret(const char *s);
/* Overwrites the bytes of the secrets of s with '*' in place (the length
 * does not change).  Returns how many bytes were overwritten. */
size_t mopt_conn_scrub(char *s);

/* Reads an s3fs-style password file: lines "ACCESS:SECRET" (the default)
 * or "BUCKET:ACCESS:SECRET" (for that bucket); '#' starts a comment.  The
 * file must be a regular file with no group/other permission bits (0600
 * or 0400), or it is refused.  bucket may be NULL.  *access and *secret
 * are malloc'd (wipe and free the secret). */
s3db_code mopt_read_passwd_file(const char *path, const char *bucket, char **access,
                                char **secret, s3db_error *err);
/* Reads a passphrase file: its contents minus one trailing newline.
 * *out malloc'd (wipe and free it). */
s3db_code mopt_read_passphrase_file(const char *path, char **out, s3db_error *err);

/* ---- the configuration file (config.c) --------------------------------------- */

/* Reads and validates the JSON configuration file at `path` (`name` is how
 * the user wrote it, used in messages) into o (zeroed first; only what the
 * file gives is marked set).  Relative paths inside the file are taken
 * relative to the file's directory.  Errors name the file and the key:
 *   "config.json: plugins[1].options.ttl: must be a number"
 * A file holding a secret (a connection string with a secret key, a
 * passphrase) must not be readable by group or others.  Unknown plugin
 * options are logged as warnings and kept. */
s3db_code mopt_config_load(const char *path, const char *name, mopt *o, s3db_error *err);
/* The same from text already read (tests). */
s3db_code mopt_config_parse(const char *text, size_t len, const char *name, const char *dir,
                            mopt *o, s3db_error *err);
/* The guide's seven plugins: 1 when name is one of them. */
int mopt_plugin_known(const char *name);

/* ---- watching the configuration file (watch.c) ------------------------------ */

typedef struct mopt_watch mopt_watch;
/* Called from the watch thread when the file's content changed (or on
 * mopt_watch_poke).  The callback re-reads the file itself. */
typedef void (*mopt_reload_fn)(void *ud);

/* Watches the directory of `path` (editors replace files by rename, so
 * the inode is not enough) with inotify, in a thread of its own.  Events
 * about the file are debounced (acted on after 1 s of quiet) and a reload
 * happens only when the bytes changed.  *out owns the watch (mopt_watch_stop). */
s3db_code mopt_watch_start(const char *path, mopt_reload_fn fn, void *ud, mopt_watch **out,
                           s3db_error *err);
/* Asks for a reload even without a change (SIGHUP); async-signal-safe. */
void mopt_watch_poke(mopt_watch *w);
/* Stops the thread (within about a second) and frees w.  NULL is allowed. */
void mopt_watch_stop(mopt_watch *w);

#endif /* S3DBFS_MOUNTOPTS_H */
