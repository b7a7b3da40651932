/*
 * watch.c — notices when the configuration file changes (libinotifytools).
 *
 * Design.  Editors rarely rewrite a file in place: vim, sed -i, jq > t &&
 * mv t f all put a new inode at the name by rename(2), and an inotify
 * watch on the old inode would then never fire again.  So the watch is on
 * the file's directory, and events are filtered by name: IN_CLOSE_WRITE
 * (written in place), IN_MOVED_TO (renamed onto the name), IN_CREATE and
 * IN_ATTRIB (a mode change can make the file acceptable or not),
 * IN_DELETE / IN_MOVED_FROM (logged: the running configuration stays).
 *
 * One thread waits for events with a 1 s timeout (that also bounds how
 * long mopt_watch_stop takes; libinotifytools 3.22 has no non-blocking
 * read).  A relevant event is acted on once a wait ends with no event, so
 * bursts (write + rename + chmod) give one reload, about 1 s after the
 * last of them.  Before calling back,
 * the file's bytes are compared with those of the last reload, so a touch
 * or a save without changes costs nothing.
 *
 * libinotifytools keeps its state in globals: one mopt_watch per process
 * (a second mopt_watch_start fails).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <inotifytools/inotifytools.h>
#include "mountopts.h"
#include "util.h"

#define WATCH_WAIT_S 1
#define WATCH_MAX_FILE (1024 * 1024)

struct mopt_watch {
	pthread_t thread;
	atomic_int stop;
	atomic_int poked;        /* set by mopt_watch_poke (signal handler) */
	char *path;              /* the file                                */
	char *dir;               /* its directory (watched)                 */
	char *base;              /* its name in dir                         */
	mopt_reload_fn fn;
	void *ud;
	char *last;              /* bytes of the last reload (NULL: none)   */
	size_t last_len;
};

static atomic_int watch_in_use;

/* The file's bytes (malloc'd) or NULL (errno set) when it cannot be read. */
static char *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	sbuf b;
	sbuf_init(&b);
	char chunk[8192];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || b.len + (size_t)r > WATCH_MAX_FILE)
			break;
		sbuf_append(&b, chunk, (size_t)r);
	}
	close(fd);
	*len = b.len;
	char *s = sbuf_steal(&b);
	if (!s)
		s = strdup("");
	return s;
}

/* Reloads when the bytes changed since the last reload (or when forced). */
static void maybe_reload(mopt_watch *w, int forced)
{
	size_t len = 0;
	char *now = read_all(w->path, &len);
	if (!now) {
		log_msg(LOG_LVL_WARN, "config: %s: %s; keeping the running configuration",
		        w->path, strerror(errno));
		return;
	}
	/* the mode matters too (a secret in a readable file is refused) */
	int same = w->last && len == w->last_len && memcmp(now, w->last, len) == 0;
	if (same && !forced) {
		log_msg(LOG_LVL_DEBUG, "config: %s: touched, content unchanged", w->path);
		explicit_bzero(now, len);
		free(now);
		return;
	}
	if (w->last) {
		explicit_bzero(w->last, w->last_len);
		free(w->last);
	}
	w->last = now;
	w->last_len = len;
	w->fn(w->ud);
}

static void *watch_main(void *arg)
{
	mopt_watch *w = arg;
	int pending = 0;        /* a relevant event waits for quiet        */
	int attrib_only = 1;
	while (!atomic_load(&w->stop)) {
		/* libinotifytools 3.22 blocks for any timeout <= 0: wait at
		 * most 1 s, which is also the quiet period after an event */
		struct inotify_event *ev = inotifytools_next_event(WATCH_WAIT_S);
		if (atomic_load(&w->stop))
			break;
		if (ev && ev->len > 0 && strcmp(ev->name, w->base) == 0) {
			if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
				log_msg(LOG_LVL_WARN, "config: %s was removed; keeping the running "
				        "configuration", w->path);
			} else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB)) {
				pending = 1;
				if (!(ev->mask & IN_ATTRIB))
					attrib_only = 0;
			}
		} else if (ev && (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF))) {
			log_msg(LOG_LVL_ERROR, "config: the directory %s went away; no longer "
			        "watching %s", w->dir, w->path);
			break;
		}
		if (atomic_exchange(&w->poked, 0)) {
			log_msg(LOG_LVL_INFO, "config: reload requested (SIGHUP)");
			maybe_reload(w, 1);
			pending = 0;
			continue;
		}
		if (pending && !ev) {
			/* quiet: a chmod alone changes no bytes but may change
			 * whether the file is acceptable, so it forces a reload */
			pending = 0;
			maybe_reload(w, attrib_only);
			attrib_only = 1;
		}
	}
	return NULL;
}

s3db_code mopt_watch_start(const char *path, mopt_reload_fn fn, void *ud, mopt_watch **out,
                           s3db_error *err)
{
	*out = NULL;
	if (atomic_exchange(&watch_in_use, 1))
		return s3db_error_set(err, S3DB_ERR_INTERNAL, "config: a watch already runs");
	mopt_watch *w = calloc(1, sizeof *w);
	if (!w) {
		atomic_store(&watch_in_use, 0);
		return s3db_error_set(err, S3DB_ERR_NOMEM, "config: out of memory");
	}
	w->fn = fn;
	w->ud = ud;
	w->path = strdup(path);
	const char *slash = strrchr(path, '/');
	if (slash) {
		w->dir = slash == path ? strdup("/") : s3db_strndup(path, (size_t)(slash - path));
		w->base = strdup(slash + 1);
	} else {
		w->dir = strdup(".");
		w->base = strdup(path);
	}
	atomic_init(&w->stop, 0);
	atomic_init(&w->poked, 0);
	s3db_code rc = S3DB_OK;
	if (!w->path || !w->dir || !w->base) {
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, "config: out of memory");
		goto fail;
	}
	w->last = read_all(w->path, &w->last_len);
	if (!inotifytools_initialize()) {
		rc = s3db_error_set(err, S3DB_ERR_IO, "config: inotify: %s",
		                    strerror(inotifytools_error()));
		goto fail;
	}
	if (!inotifytools_watch_file(w->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB |
	                                     IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF |
	                                     IN_MOVE_SELF)) {
		rc = s3db_error_set(err, S3DB_ERR_IO, "config: cannot watch %s: %s", w->dir,
		                    strerror(inotifytools_error()));
		inotifytools_cleanup();
		goto fail;
	}
	/* the thread takes no signals: they belong to the FUSE loop */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&w->thread, NULL, watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		rc = s3db_error_set(err, S3DB_ERR_INTERNAL, "config: cannot start the watch: %s",
		                    strerror(e));
		inotifytools_cleanup();
		goto fail;
	}
	*out = w;
	return S3DB_OK;
fail:
	free(w->path);
	free(w->dir);
	free(w->base);
	free(w->last);
	free(w);
	atomic_store(&watch_in_use, 0);
	return rc;
}

void mopt_watch_poke(mopt_watch *w)
{
	if (w)
		atomic_store(&w->poked, 1);
}

void mopt_watch_stop(mopt_watch *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
	inotifytools_cleanup();
	free(w->path);
	free(w->dir);
	free(w->base);
	if (w->last) {
		explicit_bzero(w->last, w->last_len);
		free(w->last);
	}
	free(w);
	atomic_store(&watch_in_use, 0);
}
