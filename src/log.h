/*
 * log.h — the diagnostic log of s3dbfs: one line per event, with a level.
 *
 * Lines go to stderr by default ("2026-11-27T00:14:16.366Z s3dbfs[123]
 * warn: message"), or to a handler the daemon installs (syslog, the
 * journal).  A line is written with one call, so lines of concurrent
 * threads never interleave.  Messages are built from s3db_error texts and
 * paths, never from credentials: callers must not pass secrets here.
 *
 * The level is process-wide: messages above it are dropped before they
 * are formatted.  Default: warn (S3DB_LOG_LEVEL=error|warn|info|debug
 * in the environment overrides it the first time the log is used).
 */
#ifndef S3DB_LOG_H
#define S3DB_LOG_H

#include <stdio.h>
#include "util.h"

/* Lower is more severe.  (Not LOG_ERR & co: syslog.h owns those names.) */
typedef enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG
} log_level;

/* A replacement sink: receives the level and the message (no time, no
 * trailing newline). */
typedef void (*log_handler)(void *ud, log_level level, const char *message);

void log_set_level(log_level level);
log_level log_get_level(void);
/* "error", "warn", "info", "debug" (case-insensitive); 0 on success,
 * -1 for an unknown name (*out untouched). */
int log_level_parse(const char *name, log_level *out);
/* "error", "warn", ... (static). */
const char *log_level_name(log_level level);
/* Sends lines to fn (NULL: back to the stream).  ud is borrowed. */
void log_set_handler(log_handler fn, void *ud);
/* Sends lines to a stream (NULL: stderr) when no handler is set. */
void log_set_stream(FILE *stream);
/* 1 when a message at `level` would be written. */
int log_enabled(log_level level);
/* Writes one line when level is enabled. */
void log_msg(log_level level, const char *fmt, ...) S3DB_PRINTF(2, 3);

#endif /* S3DB_LOG_H */
