/*
 * s3dbfs.c — the s3dbfs daemon: an s3db database mounted as a file tree.
 *
 *   s3dbfs CONNECTION MOUNTPOINT [-o opt[,opt...]] [-f] [-d] [-s]
 *   s3dbfs -o config=FILE MOUNTPOINT
 *
 * Start-up, in this order, so that every error is reported on the
 * terminal and the exit status says whether the mount is there:
 *   1. options: command line (mountopts.c), then the config file
 *      (config.c), merged with the command line winning; the secret of a
 *      connection string given in argv is overwritten there at once;
 *   2. daemon mode: fork NOW, before any thread exists (the library and
 *      the vfs start threads; a fork after that would lose them — which
 *      is why fuse_daemonize(), which forks after the mount, is not used).
 *      The parent waits on a pipe for one status byte from the child and
 *      exits with it: 0 only once the file system is mounted;
 *   3. the mount point is checked (before any request), then credentials
 *      (passwd_file) and passphrase, s3db_open, vfs_open;
 *   4. plugins (the config's "plugins" and -o plugin=): each set up
 *      (built-ins by name, shared objects by path), their virtual files
 *      put in the tree; a plugin that fails refuses the mount;
 *   5. fuse_new + fuse_mount; signal handlers; the config watcher; the
 *      plugins started (their threads run from here);
 *   6. the child reports success, detaches stdio (its stderr is pumped to
 *      syslog so that library messages are kept) and serves requests.
 *
 * Shutdown (SIGTERM, SIGINT, `fusermount3 -u`): libfuse's handler ends the
 * loop, which joins the worker threads after their requests finish; then
 * further SIGTERMs are ignored, the config watcher stops, the mount is
 * detached (processes now get ENOTCONN instead of hanging), vfs_close()
 * stores the writes still pending in open files (plugins still see
 * those events), the plugins are stopped (threads joined, .so files
 * unloaded), and only then the database closes.  The exit status is 1 if a pending write could not be
 * stored (it is in the log).  With a config file, SIGHUP re-reads it
 * instead of unmounting.
 *
 * Exit status: 0 mounted (daemon) / clean unmount (foreground); 1 the
 * mount failed or a pending write was lost; 2 usage or configuration
 * error; 4 the database could not be opened (storage, network,
 * credentials).
 *
 * Logging: stderr in the foreground, syslog (daemon facility) when
 * daemonized; levels error..debug (log_level=); never a secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "builtin.h"
#include "fs_fuse.h"
#include "conn.h"
#include "log.h"
#include "mountopts.h"
#include "s3db_plugin.h"
#include "util.h"
#include "vfs.h"

enum {
	EXIT_OK_ = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_STORAGE = 4,
};

/* ---- logging ------------------------------------------------------------------ */

static int log_forced_debug;      /* -d: the config file cannot lower it */

/* Sets the level of the log (log.h) unless -d forced debug. */
static void set_log_level(int level)
{
	log_set_level(log_forced_debug ? LOG_LVL_DEBUG : (log_level)level);
}

/* The level the options ask for: log_level= (command line or config)
 * wins, else S3DB_LOG_LEVEL from the environment, else info. */
static void apply_log_level(const mopt *o)
{
	if ((o->set & (UINT64_C(1) << MOPT_LOG_LEVEL)) || !getenv("S3DB_LOG_LEVEL")) {
		set_log_level(o->log_level);
	} else {
		log_level l;
		if (log_level_parse(getenv("S3DB_LOG_LEVEL"), &l) == 0)
			set_log_level(l);
	}
}

/* The log's sink once daemonized. */
static void log_to_syslog(void *ud, log_level level, const char *message)
{
	static const int priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	syslog(priority[level <= LOG_LVL_DEBUG ? level : LOG_LVL_DEBUG], "%s", message);
}

/* ---- daemon mode ------------------------------------------------------------------ */

static int status_fd = -1;        /* the child's end of the status pipe */

/* Forks; the parent waits for the child's status byte and exits with it.
 * Returns in the child (or when foreground). */
static void daemonize_early(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		fprintf(stderr, "s3dbfs: pipe: %s\n", strerror(errno));
		exit(EXIT_FAIL);
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "s3dbfs: fork: %s\n", strerror(errno));
		exit(EXIT_FAIL);
	}
	if (pid > 0) {
		close(p[1]);
		unsigned char code;
		ssize_t n;
		do
			n = read(p[0], &code, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(code);
		int st;
		waitpid(pid, &st, 0);
		fprintf(stderr, "s3dbfs: the daemon exited during start-up%s\n",
		        WIFSIGNALED(st) ? " (killed by a signal)" : "");
		_exit(EXIT_FAIL);
	}
	close(p[0]);
	status_fd = p[1];
	setsid();
}

/* Tells the waiting parent how start-up ended (no-op in the foreground). */
static void report_status(int code)
{
	if (status_fd < 0)
		return;
	unsigned char c = (unsigned char)code;
	ssize_t n;
	do
		n = write(status_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	close(status_fd);
	status_fd = -1;
}

static pthread_t pump_thread;
static int pump_running;

/* Copies lines written to our stderr (by libfuse, the library, ASan) to
 * syslog. */
static void *stderr_pump(void *arg)
{
	FILE *in = fdopen((int)(intptr_t)arg, "r");
	if (!in)
		return NULL;
	char line[2048];
	while (fgets(line, sizeof line, in)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0])
			syslog(LOG_NOTICE, "%s", line);
	}
	fclose(in);
	return NULL;
}

/* After a successful mount: stdio off the terminal, log to syslog. */
static void detach_stdio(void)
{
	openlog("s3dbfs", LOG_PID, LOG_DAEMON);
	log_set_handler(log_to_syslog, NULL);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) == 0) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&pump_thread, NULL, stderr_pump, (void *)(intptr_t)p[0]) == 0) {
			pump_running = 1;
			dup2(p[1], STDERR_FILENO);
		} else {
			close(p[0]);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		close(p[1]);
	}
	if (!pump_running && (null = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (chdir("/") != 0)
		log_msg(LOG_LVL_WARN, "chdir /: %s", strerror(errno));
}

/* Ends the stderr pump (at exit, so that late messages still arrive). */
static void stop_pump(void)
{
	if (!pump_running)
		return;
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDERR_FILENO); /* closes the pipe's last writer */
		close(null);
	}
	pthread_join(pump_thread, NULL);
	pump_running = 0;
}

/* ---- the daemon's state ------------------------------------------------------------ */

typedef struct daemon_state {
	mopt cli;                 /* the command line, as given             */
	mopt running;             /* what is in effect                      */
	mopt_cmdline cl;
	s3db *db;
	vfs *vfs;
	vfs_options vopts;
	fs_fuse fs;
	struct fuse *fuse;
	mopt_watch *watch;
	s3db_plugin **plugins;    /* running.plugins[i]'s plugin, owned by db */
	size_t nplugins;
	pthread_mutex_t lock;     /* running, vopts (reload vs. shutdown)   */
} daemon_state;

static mopt_watch *signal_watch; /* for the SIGHUP handler */

static void on_sighup(int sig)
{
	(void)sig;
	mopt_watch_poke(signal_watch);
}

/* vfs_options from the option set. */
static void fill_vfs_options(vfs_options *vo, const mopt *o)
{
	vfs_options_default(vo);
	vo->uid = o->uid;
	vo->gid = o->gid;
	vo->umask = o->umask;
	vo->attr_ttl = o->attr_timeout;
	vo->entry_ttl = o->entry_timeout;
	vo->negative_ttl = o->negative_timeout;
	vo->record_ttl = o->record_ttl;
	vo->dir_ttl = o->dir_ttl;
	vo->prefetch = o->prefetch;
	vo->cache_dir = o->cache_dir;
	vo->scratch_dir = o->scratch_dir;
}

/* ---- plugins ------------------------------------------------------------------------- */

/* api->log of every plugin: the daemon's log, with the plugin's name. */
static void plugin_log(void *ud, s3db_plugin_log_level level, const char *plugin,
                       const char *message)
{
	log_level l = level == S3DB_PLUGIN_LOG_ERROR  ? LOG_LVL_ERROR
	              : level == S3DB_PLUGIN_LOG_WARN ? LOG_LVL_WARN
	              : level == S3DB_PLUGIN_LOG_INFO ? LOG_LVL_INFO
	                                              : LOG_LVL_DEBUG;
	log_msg(l, "plugin %s: %s", plugin, message);
}

/* Puts one plugin virtual file in the tree (s3db_plugin_files callback). */
static int install_virtual_file(void *ud, const char *path, s3db_file_read_fn read_fn,
                                s3db_file_write_fn write_fn, void *file_ud, int listed)
{
	daemon_state *d = ud;
	int r = vfs_add_virtual_file(d->vfs, path, read_fn, write_fn, file_ud, listed);
	if (r < 0)
		log_msg(LOG_LVL_ERROR, "plugin virtual file %s: not shown: %s", path, strerror(-r));
	else
		log_msg(LOG_LVL_DEBUG, "plugin virtual file %s%s", path, write_fn ? " (writable)" : "");
	return 0;
}

/* Sets up every configured plugin, in order, and shows their virtual
 * files.  A plugin that cannot be set up refuses the mount (the ones
 * before it are stopped by the library).  Returns an exit status. */
static int load_plugins(daemon_state *d)
{
	const mopt *o = &d->running;
	s3db_plugin_set_logger(d->db, plugin_log, NULL);
	if (!o->nplugins)
		return EXIT_OK_;
	d->plugins = calloc(o->nplugins, sizeof *d->plugins);
	if (!d->plugins) {
		fprintf(stderr, "s3dbfs: out of memory\n");
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < o->nplugins; i++) {
		const mopt_plugin *mp = &o->plugins[i];
		s3db_error err = { 0 };
		if (plugins_add_entry(d->db, mp->name, mp->path, mp->options, mp->origin,
		                      &d->plugins[i], &err) != S3DB_OK) {
			fprintf(stderr, "s3dbfs: %s\n", err.message);
			free(d->plugins);
			d->plugins = NULL;
			return EXIT_USAGE;
		}
		d->nplugins = i + 1;
	}
	s3db_plugin_files(d->db, install_virtual_file, d);
	return EXIT_OK_;
}

/* Stops the plugins (threads joined, stop, destroy, .so unloaded). */
static void stop_plugins(daemon_state *d)
{
	if (!d->db)
		return;
	if (d->nplugins)
		log_msg(LOG_LVL_INFO, "stopping %zu plugin%s", d->nplugins, d->nplugins == 1 ? "" : "s");
	s3db_plugins_stop(d->db);
	free(d->plugins);
	d->plugins = NULL;
	d->nplugins = 0;
}

/* A running plugin's options changed in the config file: hand them over;
 * the running copy changes only when the plugin takes them.  Returns 1
 * when it took them, 0 when it refused (logged) or is not running. */
static int reconfigure_plugin(daemon_state *d, const mopt *next, const mopt_change *c)
{
	size_t i;
	if (sscanf(c->name, "plugins[%zu]", &i) != 1 || i >= d->nplugins || i >= next->nplugins ||
	    !d->plugins[i])
		return 0;
	mopt_plugin *run = &d->running.plugins[i];
	s3db_error err = { 0 };
	if (s3db_plugin_reconfigure(d->plugins[i], next->plugins[i].options, &err) != S3DB_OK) {
		log_msg(LOG_LVL_WARN, "config: %s %s: refused (%s); the running options stay", c->name,
		        c->to, err.message);
		return 0;
	}
	json_object *copy = NULL;
	if (json_object_deep_copy(next->plugins[i].options, &copy, NULL) == 0 && copy) {
		json_object_put(run->options);
		run->options = copy;
	}
	log_msg(LOG_LVL_INFO, "config: %s %s: applied", c->name, c->to);
	return 1;
}

/* ---- live reconfiguration ------------------------------------------------------------ */

typedef struct reload_ctx {
	daemon_state *d;
	const mopt *next;
	int timeouts, vfs_fields, applied, deferred, refused;
} reload_ctx;

static void on_change(void *ud, const mopt_change *c)
{
	reload_ctx *r = ud;
	daemon_state *d = r->d;
	if (c->live && c->key == MOPT_PLUGINS) {
		if (reconfigure_plugin(d, r->next, c))
			r->applied++;
		else
			r->refused++;
		return;
	}
	if (!c->live) {
		r->deferred++;
		if (c->from[0])
			log_msg(LOG_LVL_WARN, "config: %s %s -> %s: takes effect at the next mount",
			        c->name, c->from, c->to);
		else
			log_msg(LOG_LVL_WARN, "config: %s %s: takes effect at the next mount", c->name,
			        c->to);
		return;
	}
	r->applied++;
	if (c->from[0])
		log_msg(LOG_LVL_INFO, "config: %s %s -> %s", c->name, c->from, c->to);
	else
		log_msg(LOG_LVL_INFO, "config: %s %s", c->name, c->to);
	mopt *run = &d->running;
	const mopt *n = r->next;
	switch (c->key) {
	case MOPT_UID:
		run->uid = n->uid;
		r->vfs_fields = 1;
		break;
	case MOPT_GID:
		run->gid = n->gid;
		r->vfs_fields = 1;
		break;
	case MOPT_UMASK:
		run->umask = n->umask;
		r->vfs_fields = 1;
		break;
	case MOPT_ATTR_TIMEOUT:
		run->attr_timeout = n->attr_timeout;
		r->timeouts = r->vfs_fields = 1;
		break;
	case MOPT_ENTRY_TIMEOUT:
		run->entry_timeout = n->entry_timeout;
		r->timeouts = r->vfs_fields = 1;
		break;
	case MOPT_NEGATIVE_TIMEOUT:
		run->negative_timeout = n->negative_timeout;
		r->timeouts = r->vfs_fields = 1;
		break;
	case MOPT_RECORD_TTL:
		run->record_ttl = n->record_ttl;
		r->vfs_fields = 1;
		break;
	case MOPT_DIR_TTL:
		run->dir_ttl = n->dir_ttl;
		r->vfs_fields = 1;
		break;
	case MOPT_PREFETCH:
		run->prefetch = n->prefetch;
		r->vfs_fields = 1;
		break;
	case MOPT_LOG_LEVEL:
		run->log_level = n->log_level;
		set_log_level(n->log_level);
		break;
	default:
		break;
	}
}

/* The watcher's callback: re-read, validate, apply what can be applied. */
static void on_config_changed(void *ud)
{
	daemon_state *d = ud;
	const char *name = d->cli.config_name ? d->cli.config_name : d->cli.config;
	mopt file, next;
	s3db_error err = { 0 };
	if (mopt_config_load(d->cli.config, name, &file, &err) != S3DB_OK) {
		log_msg(LOG_LVL_ERROR, "config: %s; change rejected, the running configuration stays",
		        err.message);
		return;
	}
	s3db_code rc = mopt_merge(&next, &file, &d->cli);
	mopt_free(&file);
	if (rc != S3DB_OK) {
		mopt_free(&next);
		log_msg(LOG_LVL_ERROR, "config: out of memory; the running configuration stays");
		return;
	}
	pthread_mutex_lock(&d->lock);
	reload_ctx r = { .d = d, .next = &next };
	size_t n = mopt_diff(&d->running, &next, on_change, &r);
	if (r.timeouts)
		fs_fuse_set_timeouts(&d->fs, d->running.attr_timeout, d->running.entry_timeout,
		                     d->running.negative_timeout);
	if (r.vfs_fields) {
		fill_vfs_options(&d->vopts, &d->running);
		int vr = vfs_set_options(d->vfs, &d->vopts);
		if (vr < 0)
			log_msg(LOG_LVL_ERROR, "config: the vfs refused the new options: %s",
			        strerror(-vr));
	}
	pthread_mutex_unlock(&d->lock);
	if (n == 0)
		log_msg(LOG_LVL_INFO, "config: %s re-read: nothing changed", name);
	else
		log_msg(LOG_LVL_INFO, "config: %s re-read: %d applied, %d refused, %d at the next mount",
		        name, r.applied, r.refused, r.deferred);
	mopt_free(&next);
}

/* ---- start-up pieces ----------------------------------------------------------------- */

/* mkdir -p with mode 0700 for the last component. */
static int make_dir(const char *path, const char *what)
{
	struct stat st;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		fprintf(stderr, "s3dbfs: %s %s: not a directory\n", what, path);
		return -1;
	}
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "s3dbfs: %s %s: %s\n", what, buf, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "s3dbfs: %s %s: %s\n", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* encodeURIComponent of s into b. */
static void uri_encode(sbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    strchr("-_.!~*'()", *p)) {
			sbuf_putc(b, (char)*p);
		} else {
			sbuf_putc(b, '%');
			sbuf_putc(b, hex[*p >> 4]);
			sbuf_putc(b, hex[*p & 15]);
		}
	}
}

/* The connection string to open: the configured one, with the
 * credentials of passwd_file put in and retries=0 added when asked
 * (s3db_options cannot say 0).  *out is malloc'd and may hold a secret:
 * wipe it.  Returns an exit status. */
static int connection_to_open(const mopt *o, char **out)
{
	*out = NULL;
	conn_info ci;
	s3db_error err = { 0 };
	if (conn_parse(o->connection, &ci, &err) != S3DB_OK) {
		fprintf(stderr, "s3dbfs: %s\n", err.message);
		return EXIT_USAGE;
	}
	sbuf b;
	sbuf_init(&b);
	int status = EXIT_OK_;
	char *ak = NULL, *sk = NULL;
	if (o->passwd_file) {
		/* read (and check its mode) even where it is not used */
		if (mopt_read_passwd_file(o->passwd_file, ci.bucket, &ak, &sk, &err) != S3DB_OK) {
			fprintf(stderr, "s3dbfs: %s\n", err.message);
			status = EXIT_USAGE;
		} else if (ci.kind == CONN_FILE) {
			log_msg(LOG_LVL_WARN, "passwd_file is not used by file:// connections");
		} else if (ci.access_key) {
			fprintf(stderr, "s3dbfs: the connection string already holds credentials; "
			        "remove them from it or drop passwd_file\n");
			status = EXIT_USAGE;
		}
	}
	if (status == EXIT_OK_ && ak && ci.kind != CONN_FILE) {
		const char *sep = strstr(o->connection, "://");
		sbuf_append(&b, o->connection, (size_t)(sep - o->connection) + 3);
		uri_encode(&b, ak);
		sbuf_putc(&b, ':');
		uri_encode(&b, sk);
		sbuf_putc(&b, '@');
		sbuf_puts(&b, sep + 3);
	} else if (status == EXIT_OK_) {
		sbuf_puts(&b, o->connection);
	}
	if (sk) {
		explicit_bzero(sk, strlen(sk));
		free(sk);
	}
	free(ak);
	if (status == EXIT_OK_ && (o->set & (UINT64_C(1) << MOPT_RETRIES)) && o->retries == 0 &&
	    !strstr(o->connection, "retries="))
		sbuf_puts(&b, strchr(b.data, '?') ? "&retries=0" : "?retries=0");
	conn_info_free(&ci);
	if (status != EXIT_OK_ || b.oom) {
		if (b.data)
			explicit_bzero(b.data, b.len);
		sbuf_free(&b);
		if (status == EXIT_OK_) {
			fprintf(stderr, "s3dbfs: out of memory\n");
			status = EXIT_FAIL;
		}
		return status;
	}
	*out = sbuf_steal(&b);
	return EXIT_OK_;
}

/* Requests the store may have in flight: -o parallelism, else the
 * connection string's, else at least prefetch (the library's default,
 * 16, would hold a directory's prefetch of 64 to 16 requests at once). */
static int store_parallelism(const mopt *o)
{
	if (o->set & (UINT64_C(1) << MOPT_PARALLELISM))
		return o->parallelism;
	conn_info ci;
	s3db_error err = { 0 };
	int named = 0;
	if (conn_parse(o->connection, &ci, &err) == S3DB_OK) {
		named = ci.parallelism > 0;
		conn_info_free(&ci);
	}
	if (named)
		return 0; /* the connection string's */
	return o->prefetch > 16 ? o->prefetch : 16;
}

/* Opens the database.  Returns an exit status. */
static int open_database(daemon_state *d)
{
	const mopt *o = &d->running;
	char *conn = NULL;
	int status = connection_to_open(o, &conn);
	if (status != EXIT_OK_)
		return status;
	char *pass = NULL;
	if (o->passphrase_file) {
		s3db_error err = { 0 };
		if (mopt_read_passphrase_file(o->passphrase_file, &pass, &err) != S3DB_OK) {
			fprintf(stderr, "s3dbfs: %s\n", err.message);
			explicit_bzero(conn, strlen(conn));
			free(conn);
			return EXIT_USAGE;
		}
	}
	s3db_options so;
	memset(&so, 0, sizeof so);
	so.passphrase = pass ? pass : o->passphrase;
	so.parallelism = store_parallelism(o);
	so.timeout_ms = (o->set & (UINT64_C(1) << MOPT_TIMEOUT)) ? (int)(o->timeout * 1000.0) : 0;
	so.max_retries = (o->set & (UINT64_C(1) << MOPT_RETRIES)) ? o->retries : 0;
	so.create_if_missing = 1;
	s3db_error err = { 0 };
	s3db_code rc = s3db_open(conn, &so, &d->db, &err);
	explicit_bzero(conn, strlen(conn));
	free(conn);
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		free(pass);
	}
	if (rc != S3DB_OK) {
		fprintf(stderr, "s3dbfs: cannot open the database: %s\n", err.message);
		return rc == S3DB_ERR_BAD_CONNSTR || rc == S3DB_ERR_INVALID_ARG ? EXIT_USAGE
		                                                                 : EXIT_STORAGE;
	}
	return EXIT_OK_;
}

/* The arguments for fuse_new: argv[0], our fixed options, then the -o
 * options the table did not know. */
static int build_fuse_args(daemon_state *d, struct fuse_args *args)
{
	*args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	char *desc = s3db_describe(d->db);
	char *opts = NULL;
	char *fsname = s3db_asprintf("fsname=%s", desc ? desc : "s3dbfs");
	free(desc);
	int bad = !fsname || fuse_opt_add_arg(args, d->cl.fuse_argv[0]) != 0 ||
	          fuse_opt_add_opt_escaped(&opts, fsname) != 0 ||
	          fuse_opt_add_opt(&opts, "subtype=s3dbfs") != 0 ||
	          fuse_opt_add_opt(&opts, "default_permissions") != 0 ||
	          fuse_opt_add_arg(args, "-o") != 0 || fuse_opt_add_arg(args, opts) != 0;
	free(fsname);
	free(opts);
	for (int i = 1; !bad && i < d->cl.fuse_argc; i++)
		bad = fuse_opt_add_arg(args, d->cl.fuse_argv[i]) != 0;
	return bad ? -1 : 0;
}

/* Copies a /proc/self/mountinfo field into out, undoing the octal escapes
 * (\040 for a space...). */
static void mountinfo_unescape(const char *in, size_t len, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < size; i++) {
		if (in[i] == '\\' && i + 3 < len && in[i + 1] >= '0' && in[i + 1] <= '3' &&
		    in[i + 2] >= '0' && in[i + 2] <= '7' && in[i + 3] >= '0' && in[i + 3] <= '7') {
			out[o++] = (char)((in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 +
			                  (in[i + 3] - '0'));
			i += 3;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
}

/* The type of the file system mounted on path ("fuse.s3dbfs"), into type;
 * 0 when path is a mount point, -1 when not. */
static int mount_type_at(const char *path, char *type, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[4096], mnt[PATH_MAX];
	int found = -1;
	while (fgets(line, sizeof line, f)) {
		/* id parent major:minor root MOUNTPOINT options... - TYPE source ... */
		char *p = line;
		for (int field = 0; field < 4 && p; field++)
			p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
		if (!p)
			continue;
		size_t len = strcspn(p, " ");
		mountinfo_unescape(p, len, mnt, sizeof mnt);
		const char *dash = strstr(p + len, " - ");
		if (strcmp(mnt, path) != 0 || !dash)
			continue;
		size_t tl = strcspn(dash + 3, " ");
		snprintf(type, size, "%.*s", (int)tl, dash + 3);
		found = 0; /* the last (topmost) mount wins */
	}
	fclose(f);
	return found;
}

/* Checks the mount point before libfuse does, to say what to do.  A FUSE
 * file system already there is refused: stat() alone cannot tell a dead
 * one (its daemon was killed) while the kernel still caches its root. */
static int check_mountpoint(const char *mnt)
{
	char type[64];
	if (mount_type_at(mnt, type, sizeof type) == 0 && strncmp(type, "fuse", 4) == 0) {
		fprintf(stderr, "s3dbfs: %s is already mounted (%s); if its daemon died "
		        "(\"Transport endpoint is not connected\"), run 'fusermount3 -u %s' first\n",
		        mnt, type, mnt);
		return -1;
	}
	struct stat st;
	if (stat(mnt, &st) != 0) {
		if (errno == ENOTCONN)
			fprintf(stderr, "s3dbfs: %s: %s: a crashed mount is still there; run "
			        "'fusermount3 -u %s' first\n", mnt, strerror(errno), mnt);
		else
			fprintf(stderr, "s3dbfs: mount point %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "s3dbfs: mount point %s: not a directory\n", mnt);
		return -1;
	}
	return 0;
}

static void usage(FILE *out)
{
	static const char *const flags[][2] = {
		{ "-f", "stay in the foreground, log to stderr" },
		{ "-d", "FUSE debug output (implies -f and log_level=debug)" },
		{ "-s", "serve requests with one thread" },
		{ "-h, --help", "this help" },
		{ "-V, --version", "the versions" },
	};
	fprintf(out,
	        "Usage: s3dbfs CONNECTION MOUNTPOINT [-o opt[,opt...]] [-f] [-d] [-s]\n"
	        "       s3dbfs -o config=FILE MOUNTPOINT [-o opt...]\n"
	        "\n"
	        "Mounts an s3db database (s3db.js format): resources as directories,\n"
	        "records as <id>.json files.  CONNECTION is s3://BUCKET/prefix,\n"
	        "http(s)://host:port/BUCKET/prefix or file:///dir; keep credentials out of\n"
	        "it (AWS_* variables, ~/.aws/credentials, or -o passwd_file=FILE).\n"
	        "\n");
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		fprintf(out, "    %-29s %s\n", flags[i][0], flags[i][1]);
	fprintf(out,
	        "%s"
	        "    other -o options go to FUSE (see fuse(8)).\n"
	        "\n"
	        "Exit status: 0 mounted, 1 mount failed, 2 usage or configuration error,\n"
	        "4 the database could not be opened.  See s3dbfs(8).\n",
	        mopt_help());
}

/* ---- serving -------------------------------------------------------------------------- */

/* Mounts and serves until unmounted or signalled.  Returns an exit status;
 * reports start-up status to the parent. */
static int serve(daemon_state *d)
{
	const mopt *o = &d->running;
	int status = open_database(d);
	if (status != EXIT_OK_)
		return status;
	if ((o->cache_dir && make_dir(o->cache_dir, "cache_dir") != 0) ||
	    (o->scratch_dir && make_dir(o->scratch_dir, "scratch_dir") != 0))
		return EXIT_USAGE;
	fill_vfs_options(&d->vopts, o);
	s3db_error err = { 0 };
	if (vfs_open(d->db, &d->vopts, &d->vfs, &err) != S3DB_OK) {
		fprintf(stderr, "s3dbfs: %s\n", err.message);
		return EXIT_STORAGE;
	}
	status = load_plugins(d);
	if (status != EXIT_OK_)
		return status;
	fs_fuse_init(&d->fs, d->vfs, o->attr_timeout, o->entry_timeout, o->negative_timeout);

	struct fuse_args args;
	if (build_fuse_args(d, &args) != 0) {
		fuse_opt_free_args(&args);
		fprintf(stderr, "s3dbfs: out of memory\n");
		return EXIT_FAIL;
	}
	d->fuse = fuse_new(&args, fs_fuse_operations(), sizeof(struct fuse_operations), &d->fs);
	fuse_opt_free_args(&args);
	if (!d->fuse)
		return EXIT_USAGE; /* libfuse said why (an unknown -o option...) */
	if (fuse_mount(d->fuse, o->mountpoint) != 0)
		return EXIT_FAIL;
	struct fuse_session *se = fuse_get_session(d->fuse);
	if (fuse_set_signal_handlers(se) != 0) {
		fuse_unmount(d->fuse);
		return EXIT_FAIL;
	}
	if (d->cli.config) {
		if (mopt_watch_start(d->cli.config, on_config_changed, d, &d->watch, &err) != S3DB_OK) {
			log_msg(LOG_LVL_WARN, "%s; changes to the file need a remount", err.message);
		} else {
			/* SIGHUP re-reads the file instead of unmounting */
			signal_watch = d->watch;
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = on_sighup;
			sigemptyset(&sa.sa_mask);
			sigaction(SIGHUP, &sa, NULL);
		}
	}

	if (s3db_plugins_start(d->db, &err) != S3DB_OK) {
		fprintf(stderr, "s3dbfs: %s\n", err.message);
		free(d->plugins);
		d->plugins = NULL;
		d->nplugins = 0;
		mopt_watch_stop(d->watch);
		d->watch = NULL;
		signal_watch = NULL;
		fuse_remove_signal_handlers(se);
		fuse_unmount(d->fuse);
		return EXIT_FAIL;
	}

	char *desc = s3db_describe(d->db);
	log_msg(LOG_LVL_INFO, "mounted %s on %s (pid %d)%s", desc ? desc : "?", o->mountpoint,
	        (int)getpid(), d->nplugins ? " with plugins" : "");
	free(desc);
	if (status_fd >= 0) {
		report_status(EXIT_OK_);
		detach_stdio();
		apply_log_level(o);
	}

	int rc;
	if (d->cl.single_thread) {
		rc = fuse_loop(d->fuse);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_max_threads(lc, (unsigned)o->max_threads);
		fuse_loop_cfg_set_clone_fd(lc, 0);
		rc = fuse_loop_mt(d->fuse, lc);
		fuse_loop_cfg_destroy(lc);
	}
	if (rc < 0)
		log_msg(LOG_LVL_ERROR, "the FUSE loop failed: %s", strerror(-rc));
	else if (rc > 0)
		log_msg(LOG_LVL_INFO, "signal %d: unmounting", rc);

	/* order matters: no more signals, no more reloads, detach the mount,
	 * then store what open files still hold, then close */
	fuse_remove_signal_handlers(se);
	/* a second SIGTERM (systemd sends one after ExecStop) must not cut
	 * the storing of pending writes short; SIGKILL still does */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	mopt_watch_stop(d->watch);
	d->watch = NULL;
	signal_watch = NULL;
	fuse_unmount(d->fuse);
	int vr = vfs_close(d->vfs);
	d->vfs = NULL;
	if (vr < 0) {
		log_msg(LOG_LVL_ERROR, "unmount: a pending write could not be stored: %s",
		        strerror(-vr));
		status = EXIT_FAIL;
	}
	stop_plugins(d);
	log_msg(LOG_LVL_INFO, "unmounted %s", o->mountpoint);
	return rc < 0 && status == EXIT_OK_ ? EXIT_FAIL : status;
}

int main(int argc, char **argv)
{
	daemon_state d;
	memset(&d, 0, sizeof d);
	pthread_mutex_init(&d.lock, NULL);
	s3db_error err = { 0 };

	/* first: copy the connection string and scrub its secret from argv */
	if (mopt_parse_cmdline(argc, argv, &d.cli, &d.cl, &err) != S3DB_OK) {
		fprintf(stderr, "s3dbfs: %s\n", err.message);
		fprintf(stderr, "Try 's3dbfs --help'.\n");
		mopt_free(&d.cli);
		mopt_cmdline_free(&d.cl);
		return EXIT_USAGE;
	}
	int status = EXIT_OK_;
	if (d.cl.show_help) {
		usage(stdout);
		goto out;
	}
	if (d.cl.show_version) {
		printf("s3dbfs %s (libs3db %s, libfuse %s)\n", S3DB_VERSION, S3DB_VERSION,
		       fuse_pkgversion());
		goto out;
	}
	if (d.cl.debug) {
		log_forced_debug = 1;
		set_log_level(LOG_LVL_DEBUG);
	} else if (d.cli.set & (UINT64_C(1) << MOPT_LOG_LEVEL)) {
		set_log_level(d.cli.log_level);
	}

	/* the configuration file, then the command line over it */
	mopt file;
	memset(&file, 0, sizeof file);
	if (d.cli.config &&
	    mopt_config_load(d.cli.config, d.cli.config_name, &file, &err) != S3DB_OK) {
		fprintf(stderr, "s3dbfs: %s\n", err.message);
		status = EXIT_USAGE;
		goto out;
	}
	s3db_code rc = mopt_merge(&d.running, &file, &d.cli);
	mopt_free(&file);
	if (rc != S3DB_OK || mopt_check(&d.running, &err) != S3DB_OK) {
		fprintf(stderr, "s3dbfs: %s\n", rc != S3DB_OK ? "out of memory" : err.message);
		fprintf(stderr, "Try 's3dbfs --help'.\n");
		status = rc != S3DB_OK ? EXIT_FAIL : EXIT_USAGE;
		goto out;
	}
	apply_log_level(&d.running);
	/* before any request: a wrong mount point costs no network */
	if (check_mountpoint(d.running.mountpoint) != 0) {
		status = EXIT_FAIL;
		goto out;
	}
	if (!d.cl.foreground) {
		/* until detached, only problems reach the terminal */
		if (log_get_level() > LOG_LVL_WARN && !log_forced_debug)
			log_set_level(LOG_LVL_WARN);
		daemonize_early();
	}
	status = serve(&d);
	report_status(status); /* start-up failures reach the parent */
	if (d.fuse)
		fuse_destroy(d.fuse);
	if (d.vfs)
		vfs_close(d.vfs);
	if (d.fs.vfs)
		fs_fuse_destroy(&d.fs);
	stop_plugins(&d);
	s3db_close(d.db);
	stop_pump();
out:
	mopt_free(&d.cli);
	mopt_free(&d.running);
	mopt_cmdline_free(&d.cl);
	pthread_mutex_destroy(&d.lock);
	return status;
}
