/*
 * log.c — the diagnostic log (see log.h).
 *
 * State is a handful of globals guarded by one mutex: the level (read
 * without the lock through an atomic, so a disabled message costs one
 * load), the handler or stream, and whether the environment was read.
 * A line is formatted into a local buffer first and then written with a
 * single fputs under the lock: concurrent lines never interleave.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_current = LOG_LVL_WARN;
static atomic_int log_env_read;
static log_handler log_fn;
static void *log_fn_ud;
static FILE *log_stream;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* Reads S3DB_LOG_LEVEL once, unless a level was set explicitly before. */
static void log_read_env(void)
{
	if (atomic_exchange(&log_env_read, 1))
		return;
	log_level l;
	const char *e = getenv("S3DB_LOG_LEVEL");
	if (e && log_level_parse(e, &l) == 0)
		atomic_store(&log_current, (int)l);
}

void log_set_level(log_level level)
{
	atomic_store(&log_env_read, 1);
	if (level < LOG_LVL_ERROR)
		level = LOG_LVL_ERROR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	atomic_store(&log_current, (int)level);
}

log_level log_get_level(void)
{
	log_read_env();
	return (log_level)atomic_load(&log_current);
}

int log_level_parse(const char *name, log_level *out)
{
	if (!name)
		return -1;
	for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
		if (!strcasecmp(name, level_names[i])) {
			*out = (log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(name, "warning")) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

const char *log_level_name(log_level level)
{
	return level >= LOG_LVL_ERROR && level <= LOG_LVL_DEBUG ? level_names[level] : "?";
}

void log_set_handler(log_handler fn, void *ud)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_fn_ud = ud;
	pthread_mutex_unlock(&log_lock);
}

void log_set_stream(FILE *stream)
{
	pthread_mutex_lock(&log_lock);
	log_stream = stream;
	pthread_mutex_unlock(&log_lock);
}

int log_enabled(log_level level)
{
	return (int)level <= (int)log_get_level();
}

void log_msg(log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* one line per message: control characters would forge lines */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			*p = ' ';
	pthread_mutex_lock(&log_lock);
	if (log_fn) {
		log_fn(log_fn_ud, level, msg);
	} else {
		char now[40], line[2200];
		s3db_iso8601(s3db_now_ms(), now, sizeof now);
		snprintf(line, sizeof line, "%s s3dbfs[%ld] %s: %s\n", now, (long)getpid(),
		         log_level_name(level), msg);
		FILE *out = log_stream ? log_stream : stderr;
		fputs(line, out);
		fflush(out);
	}
	pthread_mutex_unlock(&log_lock);
}
