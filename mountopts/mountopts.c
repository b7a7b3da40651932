/*
 * mountopts.c — the option table of s3dbfs and the command line.
 *
 * Design.  One table (mopt_table) names every -o option with its type,
 * the field of struct mopt it fills, and whether a change can apply while
 * mounted.  Everything else is driven by it: parsing a text value
 * (command line) or a JSON value (the config file's "mount" object, via
 * mopt_set_json), merging defaults < file < command line by the `set`
 * bits, printing values for the reload log, and diffing two option sets.
 * Adding an option means adding a field and a table row.
 *
 * The command line is read with libfuse's fuse_opt so that -o lists,
 * "-oa,b" and "-o a -o b" behave as every FUSE program's; options the
 * table does not know are kept and handed to fuse_new(), which rejects
 * what it does not know either.
 *
 * Secrets.  The connection string may carry a secret key ("KEY:SECRET@");
 * after parsing, the copy we keep is the only one: the argv bytes of the
 * secret are overwritten with '*' (mopt_conn_scrub) so ps and
 * /proc/PID/cmdline show none.  Secrets never enter an error message.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_opt.h>

#include "conn.h"
#include "mountopts.h"
#include "vfs.h"

#define MOPT_MAX_SECRET_FILE (64 * 1024)

/* ---- the table ------------------------------------------------------------ */

#define F(field) offsetof(mopt, field)
/* a number macro as a string literal, for the help texts */
#define MOPT_STR_(x) #x
#define MOPT_STR(x) MOPT_STR_(x)

const mopt_desc mopt_table[] = {
	{ MOPT_UID, "uid", MT_UID, F(uid), 1, 0,
	  "owner of every file and directory (number or user name; default: yours)" },
	{ MOPT_GID, "gid", MT_GID, F(gid), 1, 0,
	  "group of every file and directory (number or group name)" },
	{ MOPT_UMASK, "umask", MT_MODE, F(umask), 1, 0,
	  "octal mask applied to 0777 directories and 0666 files (022)" },
	{ MOPT_ATTR_TIMEOUT, "attr_timeout", MT_SECONDS, F(attr_timeout), 1, 0,
	  "seconds the kernel caches attributes (1)" },
	{ MOPT_ENTRY_TIMEOUT, "entry_timeout", MT_SECONDS, F(entry_timeout), 1, 0,
	  "seconds the kernel caches names (1)" },
	{ MOPT_NEGATIVE_TIMEOUT, "negative_timeout", MT_SECONDS, F(negative_timeout), 1, 0,
	  "seconds a missing name stays missing (1)" },
	{ MOPT_RECORD_TTL, "record_ttl", MT_SECONDS, F(record_ttl), 1, 0,
	  "seconds before a cached record is revalidated with one HEAD (5)" },
	{ MOPT_DIR_TTL, "dir_ttl", MT_SECONDS, F(dir_ttl), 1, 0,
	  "seconds before a directory is listed again (5)" },
	{ MOPT_PREFETCH, "prefetch", MT_POSITIVE, F(prefetch), 1, 4096,
	  "records fetched in parallel when a directory is listed (" MOPT_STR(VFS_PREFETCH_DEFAULT) ")" },
	{ MOPT_PARALLELISM, "parallelism", MT_POSITIVE, F(parallelism), 0, 1024,
	  "S3 requests in flight for bulk operations (16)" },
	{ MOPT_TIMEOUT, "timeout", MT_SECONDS, F(timeout), 0, 0,
	  "seconds before one S3 request times out (30)" },
	{ MOPT_RETRIES, "retries", MT_COUNT, F(retries), 0, 100,
	  "retries of a failed S3 request (5)" },
	{ MOPT_MAX_THREADS, "max_threads", MT_POSITIVE, F(max_threads), 0, 100000,
	  "FUSE worker threads at most (64)" },
	{ MOPT_CACHE_DIR, "cache_dir", MT_PATH, F(cache_dir), 0, 0,
	  "persistent cache directory (created 0700; default: memory only)" },
	{ MOPT_SCRATCH_DIR, "scratch_dir", MT_PATH, F(scratch_dir), 0, 0,
	  "where scratch (non-record) files live (default: memory)" },
	{ MOPT_PASSWD_FILE, "passwd_file", MT_PATH, F(passwd_file), 0, 0,
	  "credentials file, ACCESS:SECRET or BUCKET:ACCESS:SECRET, mode 0600" },
	{ MOPT_PASSPHRASE_FILE, "passphrase_file", MT_PATH, F(passphrase_file), 0, 0,
	  "file holding the passphrase of 'secret' fields" },
	{ MOPT_CONFIG, "config", MT_PATH, F(config), 0, 0,
	  "JSON configuration file (watched; see s3dbfs(8))" },
	{ MOPT_ALLOW_OTHER, "allow_other", MT_FLAG, F(allow_other), 0, 0,
	  "let other users in (the kernel checks the modes)" },
	{ MOPT_RO, "ro", MT_FLAG, F(ro), 0, 0, "read-only mount" },
	{ MOPT_PLUGIN, "plugin", MT_PLUGIN, 0, 0, 0,
	  "plugin: one of the seven by name, or a .so path (repeatable)" },
	{ MOPT_LOG_LEVEL, "log_level", MT_LOGLEVEL, F(log_level), 1, 0,
	  "error, warn, info (default) or debug" },
	/* not -o options */
	{ MOPT_CONNECTION, "connectionString", MT_SECRET, F(connection), 0, 0, NULL },
	{ MOPT_PASSPHRASE, "passphrase", MT_SECRET, F(passphrase), 0, 0, NULL },
	{ MOPT_PLUGINS, "plugins", MT_PLUGIN, 0, 1, 0, NULL },
	{ MOPT_MOUNTPOINT, "mountpoint", MT_PATH, F(mountpoint), 0, 0, NULL },
};
const size_t mopt_table_len = sizeof mopt_table / sizeof mopt_table[0];

#undef F
#undef MOPT_STR
#undef MOPT_STR_

const mopt_desc *mopt_desc_find(const char *name)
{
	for (size_t i = 0; i < mopt_table_len; i++)
		if (strcmp(mopt_table[i].name, name) == 0)
			return &mopt_table[i];
	return NULL;
}

/* Field accessors: the table's offsets into struct mopt. */
#define FIELD(o, d, type) ((type *)(void *)((char *)(o) + (d)->offset))
#define CFIELD(o, d, type) ((const type *)(const void *)((const char *)(o) + (d)->offset))

/* ---- defaults, free, copy ---------------------------------------------------- */

void mopt_defaults(mopt *o)
{
	memset(o, 0, sizeof *o);
	o->uid = getuid();
	o->gid = getgid();
	o->umask = 022;
	o->attr_timeout = 1.0;
	o->entry_timeout = 1.0;
	o->negative_timeout = 1.0;
	o->record_ttl = 5.0;
	o->dir_ttl = 5.0;
	o->prefetch = VFS_PREFETCH_DEFAULT;
	o->parallelism = 16;
	o->timeout = 30.0;
	o->retries = 5;
	o->max_threads = 64;
	o->log_level = LOG_LVL_INFO;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void plugin_free(mopt_plugin *p)
{
	free(p->name);
	free(p->path);
	free(p->origin);
	json_object_put(p->options);
}

void mopt_free(mopt *o)
{
	if (!o)
		return;
	wipe_free(o->connection);
	wipe_free(o->passphrase);
	free(o->passwd_file);
	free(o->passphrase_file);
	free(o->cache_dir);
	free(o->scratch_dir);
	free(o->mountpoint);
	free(o->config);
	free(o->config_name);
	for (size_t i = 0; i < o->nplugins; i++)
		plugin_free(&o->plugins[i]);
	free(o->plugins);
	memset(o, 0, sizeof *o);
}

/* Appends a copy of p to o's plugins. */
static s3db_code plugin_append(mopt *o, const mopt_plugin *p)
{
	mopt_plugin *n = realloc(o->plugins, (o->nplugins + 1) * sizeof *n);
	if (!n)
		return S3DB_ERR_NOMEM;
	o->plugins = n;
	mopt_plugin *d = &n[o->nplugins];
	memset(d, 0, sizeof *d);
	d->name = s3db_strdup(p->name);
	d->path = s3db_strdup(p->path);
	d->origin = s3db_strdup(p->origin);
	d->options = NULL;
	if (p->options && json_object_deep_copy(p->options, &d->options, NULL) != 0)
		d->options = NULL;
	if (!d->options)
		d->options = json_object_new_object();
	o->nplugins++;
	if ((p->name && !d->name) || (p->path && !d->path) || !d->options)
		return S3DB_ERR_NOMEM;
	return S3DB_OK;
}

/* ---- setting one option --------------------------------------------------------- */

/* dir + "/" + path unless path is absolute; malloc'd.  dir NULL: the
 * current directory. */
static char *absolute_path(const char *path, const char *dir)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[PATH_MAX];
	if (!dir) {
		if (!getcwd(cwd, sizeof cwd))
			return NULL;
		dir = cwd;
	}
	if (strcmp(path, ".") == 0)
		return strdup(dir);
	if (strncmp(path, "./", 2) == 0)
		path += 2;
	return s3db_asprintf("%s%s%s", dir, s3db_str_ends(dir, "/") ? "" : "/", path);
}

static int parse_long(const char *s, long long *out)
{
	if (!*s)
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* Adds a plugin given by name or .so path (-o plugin=, config strings). */
s3db_code mopt_add_plugin_text(mopt *o, const char *value, const char *origin, const char *dir,
                               const char *where, s3db_error *err)
{
	mopt_plugin p = { 0 };
	char *abs = NULL;
	if (mopt_plugin_known(value)) {
		p.name = (char *)value;
	} else if (strchr(value, '/') || s3db_str_ends(value, ".so")) {
		abs = absolute_path(value, dir);
		if (!abs)
			return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory", where);
		struct stat st;
		if (stat(abs, &st) != 0) {
			s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: %s: %s", where, abs,
			               strerror(errno));
			free(abs);
			return S3DB_ERR_INVALID_ARG;
		}
		if (!S_ISREG(st.st_mode)) {
			s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: %s: not a regular file", where,
			               abs);
			free(abs);
			return S3DB_ERR_INVALID_ARG;
		}
		p.path = abs;
	} else {
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: unknown plugin '%s' (known: CachePlugin, CostsPlugin, "
		                      "AuditPlugin, FullTextPlugin, MetricsPlugin, ReplicatorPlugin, "
		                      "QueueConsumerPlugin; or the path of a .so)", where, value);
	}
	p.origin = (char *)origin;
	s3db_code rc = plugin_append(o, &p);
	free(abs);
	if (rc != S3DB_OK)
		return s3db_error_set(err, rc, "%s: out of memory", where);
	return S3DB_OK;
}

/* Sets the field of d from text; where prefixes messages; dir resolves
 * relative paths (NULL: the current directory). */
static s3db_code set_text(mopt *o, const mopt_desc *d, const char *value, const char *dir,
                          const char *where, s3db_error *err)
{
	long long n;
	char *end;
	switch (d->type) {
	case MT_UID: {
		uid_t *f = FIELD(o, d, uid_t);
		if (parse_long(value, &n) == 0) {
			if (n < 0 || n >= (long long)UINT32_MAX)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: out of range", where);
			*f = (uid_t)n;
		} else {
			struct passwd *pw = getpwnam(value);
			if (!pw)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "%s: no such user '%s'", where, value);
			*f = pw->pw_uid;
		}
		break;
	}
	case MT_GID: {
		gid_t *f = FIELD(o, d, gid_t);
		if (parse_long(value, &n) == 0) {
			if (n < 0 || n >= (long long)UINT32_MAX)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: out of range", where);
			*f = (gid_t)n;
		} else {
			struct group *gr = getgrnam(value);
			if (!gr)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "%s: no such group '%s'", where, value);
			*f = gr->gr_gid;
		}
		break;
	}
	case MT_MODE: {
		errno = 0;
		unsigned long m = *value ? strtoul(value, &end, 8) : 0;
		if (!*value || errno || *end || m > 0777)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: not an octal mode between 000 and 777", where);
		*FIELD(o, d, mode_t) = (mode_t)m;
		break;
	}
	case MT_SECONDS: {
		errno = 0;
		double v = *value ? strtod(value, &end) : NAN;
		if (!*value || errno || *end || !isfinite(v) || v < 0 || v > 1e7)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be a number of seconds >= 0", where);
		if (d->key == MOPT_TIMEOUT && v < 0.001)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be more than 0 seconds", where);
		*FIELD(o, d, double) = v;
		break;
	}
	case MT_COUNT:
	case MT_POSITIVE: {
		long long lo = d->type == MT_POSITIVE ? 1 : 0;
		if (parse_long(value, &n) != 0 || n < lo || n > d->max)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be a whole number from %lld to %d", where, lo,
			                      d->max);
		*FIELD(o, d, int) = (int)n;
		break;
	}
	case MT_PATH: {
		if (!*value)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: empty path", where);
		char *abs = absolute_path(value, dir);
		if (!abs)
			return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory", where);
		char **f = FIELD(o, d, char *);
		free(*f);
		*f = abs;
		if (d->key == MOPT_CONFIG) {
			free(o->config_name);
			o->config_name = strdup(value);
		}
		break;
	}
	case MT_FLAG: {
		int v;
		if (!value || strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0 ||
		    strcasecmp(value, "yes") == 0)
			v = 1;
		else if (strcmp(value, "0") == 0 || strcasecmp(value, "false") == 0 ||
		         strcasecmp(value, "no") == 0)
			v = 0;
		else
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: takes no value", where);
		*FIELD(o, d, int) = v;
		break;
	}
	case MT_LOGLEVEL: {
		log_level l;
		if (!value || log_level_parse(value, &l) != 0)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be error, warn, info or debug", where);
		*FIELD(o, d, int) = (int)l;
		break;
	}
	case MT_PLUGIN: {
		s3db_code rc = mopt_add_plugin_text(o, value, "-o plugin", dir, where, err);
		if (rc != S3DB_OK)
			return rc;
		break;
	}
	case MT_SECRET: {
		char **f = FIELD(o, d, char *);
		wipe_free(*f);
		*f = strdup(value);
		if (!*f)
			return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory", where);
		break;
	}
	}
	o->set |= UINT64_C(1) << d->key;
	return S3DB_OK;
}

s3db_code mopt_set_text(mopt *o, const char *name, const char *value, const char *where,
                        s3db_error *err)
{
	const mopt_desc *d = mopt_desc_find(name);
	if (!d)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: unknown option '%s'", where,
		                      name);
	return set_text(o, d, value, NULL, where, err);
}

s3db_code mopt_set_json(mopt *o, const char *name, json_object *v, const char *dir,
                        const char *where, s3db_error *err)
{
	const mopt_desc *d = mopt_desc_find(name);
	if (!d || d->key >= MOPT_CONNECTION)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: unknown option", where);
	if (d->key == MOPT_CONFIG)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: a configuration file cannot name another one", where);
	if (d->key == MOPT_PLUGIN)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "%s: list plugins in the top-level \"plugins\" array", where);
	char buf[64];
	const char *text = NULL;
	json_type t = json_object_get_type(v);
	switch (d->type) {
	case MT_UID:
	case MT_GID:
		if (t == json_type_int) {
			snprintf(buf, sizeof buf, "%" PRId64, json_object_get_int64(v));
			text = buf;
		} else if (t == json_type_string) {
			text = json_object_get_string(v);
			if (parse_long(text, &(long long){ 0 }) == 0)
				break;
		} else {
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be a number or a %s name", where,
			                      d->type == MT_UID ? "user" : "group");
		}
		break;
	case MT_MODE:
		if (t != json_type_string)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be an octal string such as \"022\"", where);
		text = json_object_get_string(v);
		break;
	case MT_SECONDS:
		if (t != json_type_int && t != json_type_double)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be a number", where);
		snprintf(buf, sizeof buf, "%.17g", json_object_get_double(v));
		text = buf;
		break;
	case MT_COUNT:
	case MT_POSITIVE:
		if (t == json_type_double) {
			double x = json_object_get_double(v);
			if (x != floor(x) || fabs(x) > 1e9)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "%s: must be a whole number", where);
			snprintf(buf, sizeof buf, "%.0f", x);
		} else if (t == json_type_int) {
			snprintf(buf, sizeof buf, "%" PRId64, json_object_get_int64(v));
		} else {
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be a number", where);
		}
		text = buf;
		break;
	case MT_PATH:
	case MT_LOGLEVEL:
	case MT_SECRET:
		if (t != json_type_string)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s: must be a string", where);
		text = json_object_get_string(v);
		break;
	case MT_FLAG:
		if (t != json_type_boolean)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s: must be true or false", where);
		text = json_object_get_boolean(v) ? "1" : "0";
		break;
	case MT_PLUGIN:
		return s3db_error_set(err, S3DB_ERR_INTERNAL, "%s: not settable here", where);
	}
	return set_text(o, d, text, dir, where, err);
}

/* ---- the command line ------------------------------------------------------------- */

enum {
	KEY_FOREGROUND = 1000, KEY_DEBUG, KEY_DEBUG_OPT, KEY_SINGLE, KEY_HELP, KEY_VERSION,
};

typedef struct cmdline_ctx {
	mopt *o;
	mopt_cmdline *cl;
	s3db_error *err;
	int failed;
	char *positional[2];
} cmdline_ctx;

static int cmdline_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	cmdline_ctx *c = data;
	if (c->failed)
		return -1;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (c->cl->positional >= 2) {
			s3db_error_set(c->err, S3DB_ERR_INVALID_ARG,
			               "too many arguments (at most CONNECTION and MOUNTPOINT)");
			c->failed = 1;
			return -1;
		}
		if (!(c->positional[c->cl->positional++] = strdup(arg))) {
			s3db_error_set(c->err, S3DB_ERR_NOMEM, "out of memory");
			c->failed = 1;
			return -1;
		}
		return 0;
	case KEY_FOREGROUND:
		c->cl->foreground = 1;
		return 0;
	case KEY_DEBUG:
	case KEY_DEBUG_OPT:
		c->cl->debug = 1;
		c->cl->foreground = 1;
		return 1; /* fuse_new prints its own request trace */
	case KEY_SINGLE:
		c->cl->single_thread = 1;
		return 0;
	case KEY_HELP:
		c->cl->show_help = 1;
		return 0;
	case KEY_VERSION:
		c->cl->show_version = 1;
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-' && arg[1] != 'o') {
			s3db_error_set(c->err, S3DB_ERR_INVALID_ARG, "unknown option '%s'", arg);
			c->failed = 1;
			return -1;
		}
		return 1; /* an -o option for FUSE */
	default:
		break;
	}
	if (key < 0 || (size_t)key >= mopt_table_len)
		return 1;
	const mopt_desc *d = &mopt_table[key];
	const char *eq = strchr(arg, '=');
	char where[160];
	snprintf(where, sizeof where, "-o %.*s", (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
	if (set_text(c->o, d, eq ? eq + 1 : NULL, NULL, where, c->err) != S3DB_OK) {
		c->failed = 1;
		return -1;
	}
	/* the kernel enforces these two: FUSE must see them too */
	return d->key == MOPT_ALLOW_OTHER || d->key == MOPT_RO;
}

s3db_code mopt_parse_cmdline(int argc, char **argv, mopt *o, mopt_cmdline *cl, s3db_error *err)
{
	memset(o, 0, sizeof *o);
	memset(cl, 0, sizeof *cl);

	/* fuse_opt templates from the table: "name=" or, for flags, "name" */
	struct fuse_opt spec[64];
	char templ[64][48];
	size_t n = 0;
	for (size_t i = 0; i < mopt_table_len; i++) {
		const mopt_desc *d = &mopt_table[i];
		if (!d->help)
			continue; /* not an -o option */
		snprintf(templ[n], sizeof templ[n], "%s%s", d->name, d->type == MT_FLAG ? "" : "=");
		spec[n] = (struct fuse_opt)FUSE_OPT_KEY(templ[n], (int)i);
		n++;
	}
	static const struct fuse_opt fixed[] = {
		FUSE_OPT_KEY("-f", KEY_FOREGROUND), FUSE_OPT_KEY("-d", KEY_DEBUG),
		FUSE_OPT_KEY("debug", KEY_DEBUG_OPT), FUSE_OPT_KEY("-s", KEY_SINGLE),
		FUSE_OPT_KEY("-h", KEY_HELP), FUSE_OPT_KEY("--help", KEY_HELP),
		FUSE_OPT_KEY("-V", KEY_VERSION), FUSE_OPT_KEY("--version", KEY_VERSION),
		FUSE_OPT_END,
	};
	memcpy(&spec[n], fixed, sizeof fixed);

	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	cmdline_ctx c = { .o = o, .cl = cl, .err = err };
	int rc = fuse_opt_parse(&args, &c, spec, cmdline_proc);
	char *first = c.positional[0], *second = c.positional[1];
	if (rc != 0 || c.failed) {
		if (!c.failed)
			s3db_error_set(err, S3DB_ERR_INVALID_ARG, "cannot parse the arguments");
		fuse_opt_free_args(&args);
		wipe_free(first);
		wipe_free(second);
		return S3DB_ERR_INVALID_ARG;
	}
	cl->fuse_argc = args.argc;
	cl->fuse_argv = calloc((size_t)args.argc + 1, sizeof *cl->fuse_argv);
	for (int i = 0; cl->fuse_argv && i < args.argc; i++)
		cl->fuse_argv[i] = strdup(args.argv[i]);
	fuse_opt_free_args(&args);
	if (!cl->fuse_argv) {
		wipe_free(first);
		wipe_free(second);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
	}

	s3db_code code = S3DB_OK;
	const char *mnt = NULL;
	if (cl->positional == 2) {
		o->connection = first;
		o->set |= UINT64_C(1) << MOPT_CONNECTION;
		first = NULL;
		mnt = second;
	} else if (cl->positional == 1) {
		mnt = first;
		if (strstr(first, "://"))
			code = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "missing MOUNTPOINT after the connection string");
	}
	if (code == S3DB_OK && mnt) {
		o->mountpoint = absolute_path(mnt, NULL);
		if (!o->mountpoint)
			code = s3db_error_set(err, S3DB_ERR_NOMEM, "out of memory");
		/* "mnt/" is "mnt", as /proc/mounts will say */
		for (size_t l = o->mountpoint ? strlen(o->mountpoint) : 0;
		     l > 1 && o->mountpoint[l - 1] == '/'; l--)
			o->mountpoint[l - 1] = '\0';
		o->set |= UINT64_C(1) << MOPT_MOUNTPOINT;
	}
	wipe_free(first);
	free(second);

	/* ps must not show the secret: overwrite every argv copy of it */
	if (o->connection && mopt_conn_has_secret(o->connection))
		for (int i = 1; i < argc; i++)
			if (strcmp(argv[i], o->connection) == 0)
				mopt_conn_scrub(argv[i]);
	return code;
}

void mopt_cmdline_free(mopt_cmdline *cl)
{
	if (!cl)
		return;
	for (int i = 0; cl->fuse_argv && i < cl->fuse_argc; i++)
		free(cl->fuse_argv[i]);
	free(cl->fuse_argv);
	memset(cl, 0, sizeof *cl);
}

/* ---- merging and checking ---------------------------------------------------------- */

/* Copies the field of d from src to dst (strings duplicated). */
static s3db_code copy_field(mopt *dst, const mopt *src, const mopt_desc *d)
{
	switch (d->type) {
	case MT_UID:
		*FIELD(dst, d, uid_t) = *CFIELD(src, d, uid_t);
		break;
	case MT_GID:
		*FIELD(dst, d, gid_t) = *CFIELD(src, d, gid_t);
		break;
	case MT_MODE:
		*FIELD(dst, d, mode_t) = *CFIELD(src, d, mode_t);
		break;
	case MT_SECONDS:
		*FIELD(dst, d, double) = *CFIELD(src, d, double);
		break;
	case MT_COUNT:
	case MT_POSITIVE:
	case MT_FLAG:
	case MT_LOGLEVEL:
		*FIELD(dst, d, int) = *CFIELD(src, d, int);
		break;
	case MT_PATH:
	case MT_SECRET: {
		char **f = FIELD(dst, d, char *);
		wipe_free(*f);
		*f = s3db_strdup(*CFIELD(src, d, char *));
		if (*CFIELD(src, d, char *) && !*f)
			return S3DB_ERR_NOMEM;
		if (d->key == MOPT_CONFIG) {
			free(dst->config_name);
			dst->config_name = s3db_strdup(src->config_name);
		}
		break;
	}
	case MT_PLUGIN:
		break; /* mopt_merge appends the lists */
	}
	dst->set |= UINT64_C(1) << d->key;
	return S3DB_OK;
}

s3db_code mopt_merge(mopt *out, const mopt *file, const mopt *cli)
{
	mopt_defaults(out);
	const mopt *layers[2] = { file, cli };
	for (int l = 0; l < 2; l++) {
		if (!layers[l])
			continue;
		for (size_t i = 0; i < mopt_table_len; i++) {
			const mopt_desc *d = &mopt_table[i];
			if (d->type == MT_PLUGIN || !(layers[l]->set & (UINT64_C(1) << d->key)))
				continue;
			if (copy_field(out, layers[l], d) != S3DB_OK)
				return S3DB_ERR_NOMEM;
		}
		/* plugins append: the file's list, then -o plugin= entries (the
		 * MOPT_PLUGIN and MOPT_PLUGINS rows share the one list) */
		uint64_t bits = layers[l]->set & ((UINT64_C(1) << MOPT_PLUGIN) |
		                                  (UINT64_C(1) << MOPT_PLUGINS));
		if (bits) {
			for (size_t i = 0; i < layers[l]->nplugins; i++)
				if (plugin_append(out, &layers[l]->plugins[i]) != S3DB_OK)
					return S3DB_ERR_NOMEM;
			out->set |= bits;
		}
	}
	return S3DB_OK;
}

s3db_code mopt_check(const mopt *o, s3db_error *err)
{
	if (!o->mountpoint)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "no MOUNTPOINT given");
	if (!o->connection || !*o->connection)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                      "no connection string: give it as the first argument, "
		                      "or as \"connectionString\" in -o config=FILE");
	return S3DB_OK;
}

/* ---- differences (the reload log) ---------------------------------------------------- */

/* The printable value of d in o. */
static void format_value(const mopt *o, const mopt_desc *d, char *buf, size_t size)
{
	switch (d->type) {
	case MT_UID:
		snprintf(buf, size, "%u", (unsigned)*CFIELD(o, d, uid_t));
		break;
	case MT_GID:
		snprintf(buf, size, "%u", (unsigned)*CFIELD(o, d, gid_t));
		break;
	case MT_MODE:
		snprintf(buf, size, "%03o", (unsigned)*CFIELD(o, d, mode_t));
		break;
	case MT_SECONDS:
		snprintf(buf, size, "%g", *CFIELD(o, d, double));
		break;
	case MT_COUNT:
	case MT_POSITIVE:
		snprintf(buf, size, "%d", *CFIELD(o, d, int));
		break;
	case MT_FLAG:
		snprintf(buf, size, "%s", *CFIELD(o, d, int) ? "on" : "off");
		break;
	case MT_LOGLEVEL:
		snprintf(buf, size, "%s", log_level_name((log_level)*CFIELD(o, d, int)));
		break;
	case MT_PATH: {
		const char *s = *CFIELD(o, d, char *);
		snprintf(buf, size, "%s", s ? s : "(none)");
		break;
	}
	case MT_SECRET:
	case MT_PLUGIN:
		snprintf(buf, size, "(%s)", *CFIELD(o, d, char *) ? "set" : "none");
		break;
	}
}

static int values_equal(const mopt *a, const mopt *b, const mopt_desc *d)
{
	switch (d->type) {
	case MT_UID:
		return *CFIELD(a, d, uid_t) == *CFIELD(b, d, uid_t);
	case MT_GID:
		return *CFIELD(a, d, gid_t) == *CFIELD(b, d, gid_t);
	case MT_MODE:
		return *CFIELD(a, d, mode_t) == *CFIELD(b, d, mode_t);
	case MT_SECONDS:
		return *CFIELD(a, d, double) == *CFIELD(b, d, double);
	case MT_COUNT:
	case MT_POSITIVE:
	case MT_FLAG:
	case MT_LOGLEVEL:
		return *CFIELD(a, d, int) == *CFIELD(b, d, int);
	case MT_PATH:
	case MT_SECRET: {
		const char *x = *CFIELD(a, d, char *), *y = *CFIELD(b, d, char *);
		return (!x && !y) || (x && y && strcmp(x, y) == 0);
	}
	case MT_PLUGIN:
		return 1; /* compared by plugin_diff */
	}
	return 1;
}

static int same_str(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* The keys whose values differ between two option objects, joined. */
static void changed_keys(json_object *a, json_object *b, char *buf, size_t size)
{
	sbuf s;
	sbuf_init(&s);
	json_object_object_foreach(a, k, va) {
		json_object *vb = NULL;
		if (!json_object_object_get_ex(b, k, &vb) || !json_object_equal(va, vb))
			sbuf_printf(&s, "%s%s", s.len ? ", " : "", k);
	}
	json_object_object_foreach(b, k2, vb2) {
		(void)vb2;
		if (!json_object_object_get_ex(a, k2, NULL))
			sbuf_printf(&s, "%s%s", s.len ? ", " : "", k2);
	}
	snprintf(buf, size, "%s", s.data ? s.data : "");
	sbuf_free(&s);
}

static size_t plugin_diff(const mopt *a, const mopt *b, mopt_change_fn fn, void *ud)
{
	int same_list = a->nplugins == b->nplugins;
	for (size_t i = 0; same_list && i < a->nplugins; i++)
		same_list = same_str(a->plugins[i].name, b->plugins[i].name) &&
		            same_str(a->plugins[i].path, b->plugins[i].path);
	mopt_change c;
	memset(&c, 0, sizeof c);
	c.key = MOPT_PLUGINS;
	if (!same_list) {
		c.name = "plugins";
		c.live = 0;
		snprintf(c.from, sizeof c.from, "%zu entr%s", a->nplugins,
		         a->nplugins == 1 ? "y" : "ies");
		snprintf(c.to, sizeof c.to, "%zu entr%s", b->nplugins, b->nplugins == 1 ? "y" : "ies");
		if (fn)
			fn(ud, &c);
		return 1;
	}
	size_t changes = 0;
	for (size_t i = 0; i < a->nplugins; i++) {
		if (json_object_equal(a->plugins[i].options, b->plugins[i].options))
			continue;
		char name[96];
		snprintf(name, sizeof name, "plugins[%zu] (%s) options", i,
		         a->plugins[i].name ? a->plugins[i].name : a->plugins[i].path);
		c.name = name;
		c.live = 1;
		c.from[0] = '\0';
		char keys[80];
		changed_keys(a->plugins[i].options, b->plugins[i].options, keys, sizeof keys);
		snprintf(c.to, sizeof c.to, "changed: %s", keys);
		if (fn)
			fn(ud, &c);
		changes++;
	}
	return changes;
}

size_t mopt_diff(const mopt *a, const mopt *b, mopt_change_fn fn, void *ud)
{
	size_t changes = 0;
	for (size_t i = 0; i < mopt_table_len; i++) {
		const mopt_desc *d = &mopt_table[i];
		if (d->type == MT_PLUGIN || values_equal(a, b, d))
			continue;
		mopt_change c;
		memset(&c, 0, sizeof c);
		c.key = d->key;
		c.name = d->name;
		c.live = d->live;
		if (d->type == MT_SECRET) {
			c.from[0] = '\0'; /* never printed */
			snprintf(c.to, sizeof c.to, "%s", "changed");
		} else {
			format_value(a, d, c.from, sizeof c.from);
			format_value(b, d, c.to, sizeof c.to);
		}
		if (fn)
			fn(ud, &c);
		changes++;
	}
	return changes + plugin_diff(a, b, fn, ud);
}

/* ---- help ------------------------------------------------------------------------------ */

const char *mopt_help(void)
{
	static char text[4096];
	if (text[0])
		return text;
	sbuf b;
	sbuf_init(&b);
	for (size_t i = 0; i < mopt_table_len; i++) {
		const mopt_desc *d = &mopt_table[i];
		if (!d->help)
			continue;
		char name[48];
		snprintf(name, sizeof name, "%s%s", d->name,
		         d->type == MT_FLAG ? "" : d->type == MT_PATH || d->type == MT_PLUGIN ? "=PATH"
		         : d->type == MT_SECONDS ? "=SECONDS" : d->type == MT_LOGLEVEL ? "=LEVEL"
		         : "=N");
		sbuf_printf(&b, "    -o %-26s %s\n", name, d->help);
	}
	snprintf(text, sizeof text, "%s", b.data ? b.data : "");
	sbuf_free(&b);
	return text;
}

/* ---- secrets ---------------------------------------------------------------------------- */

int mopt_conn_has_secret(const char *s)
{
	conn_span spans[16];
	return s && conn_secret_spans(s, spans, 16) > 0;
}

size_t mopt_conn_scrub(char *s)
{
	conn_span spans[16];
	size_t n = conn_secret_spans(s, spans, 16), bytes = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t k = spans[i].from; k < spans[i].to; k++, bytes++)
			s[k] = '*';
	return bytes;
}

/* Reads a small secret file into a malloc'd NUL-terminated buffer; checks
 * that it is a regular file and, when strict, that group and others have
 * no access.  what names the option in messages. */
static s3db_code read_secret_file(const char *path, const char *what, int strict, char **out,
                                  size_t *len, s3db_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s %s: %s", what, path,
		                      strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s %s: not a regular file", what,
		                      path);
	}
	if (st.st_mode & 077) {
		if (strict) {
			close(fd);
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "%s %s: mode %04o lets group or others read it; "
			                      "it must be 0600 or 0400 (chmod 600 %s)", what, path,
			                      (unsigned)(st.st_mode & 07777), path);
		}
		log_msg(LOG_LVL_WARN, "%s %s: mode %04o lets group or others read it (chmod 600 it)",
		        what, path, (unsigned)(st.st_mode & 07777));
	}
	if (st.st_size > MOPT_MAX_SECRET_FILE) {
		close(fd);
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s %s: larger than 64 KiB", what,
		                      path);
	}
	char *buf;
	size_t got;
	int rc = s3db_read_fd(fd, (size_t)st.st_size, &buf, &got);
	close(fd);
	if (rc != 0)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "%s: out of memory", what);
	if (memchr(buf, '\0', got)) {
		explicit_bzero(buf, got);
		free(buf);
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "%s %s: holds a NUL byte", what,
		                      path);
	}
	*out = buf;
	*len = got;
	return S3DB_OK;
}

s3db_code mopt_read_passwd_file(const char *path, const char *bucket, char **access,
                                char **secret, s3db_error *err)
{
	*access = *secret = NULL;
	char *buf;
	size_t len;
	s3db_code rc = read_secret_file(path, "passwd_file", 1, &buf, &len, err);
	if (rc != S3DB_OK)
		return rc;
	char *dflt_ak = NULL, *dflt_sk = NULL, *ak = NULL, *sk = NULL;
	int lineno = 0;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line && rc == S3DB_OK;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		size_t l = strlen(line);
		while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
			line[--l] = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c1 || (c2 && strchr(c2 + 1, ':'))) {
			rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                    "passwd_file %s: line %d: expected ACCESS:SECRET or "
			                    "BUCKET:ACCESS:SECRET", path, lineno);
			break;
		}
		if (c2) {
			*c1 = *c2 = '\0';
			if (!*(c1 + 1) || !*(c2 + 1)) {
				rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                    "passwd_file %s: line %d: empty key", path, lineno);
				break;
			}
			if (bucket && strcmp(line, bucket) == 0 && !ak) {
				ak = c1 + 1;
				sk = c2 + 1;
			}
		} else {
			*c1 = '\0';
			if (!*line || !*(c1 + 1)) {
				rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                    "passwd_file %s: line %d: empty key", path, lineno);
				break;
			}
			if (!dflt_ak) {
				dflt_ak = line;
				dflt_sk = c1 + 1;
			}
		}
	}
	if (rc == S3DB_OK && !ak) {
		ak = dflt_ak;
		sk = dflt_sk;
	}
	if (rc == S3DB_OK && !ak)
		rc = s3db_error_set(err, S3DB_ERR_INVALID_ARG,
		                    "passwd_file %s: no ACCESS:SECRET line%s%s", path,
		                    bucket ? " for bucket " : "", bucket ? bucket : "");
	if (rc == S3DB_OK) {
		*access = strdup(ak);
		*secret = strdup(sk);
		if (!*access || !*secret) {
			wipe_free(*access);
			wipe_free(*secret);
			*access = *secret = NULL;
			rc = s3db_error_set(err, S3DB_ERR_NOMEM, "passwd_file: out of memory");
		}
	}
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

s3db_code mopt_read_passphrase_file(const char *path, char **out, s3db_error *err)
{
	size_t len;
	s3db_code rc = read_secret_file(path, "passphrase_file", 0, out, &len, err);
	if (rc != S3DB_OK)
		return rc;
	char *buf = *out;
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0) {
		free(buf);
		*out = NULL;
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "passphrase_file %s: is empty",
		                      path);
	}
	return S3DB_OK;
}
