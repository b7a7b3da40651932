/*
 * cli.c — the `s3db` command: a database from the shell, JSON in and out.
 *
 *   s3db [OPTIONS] CONNECTION COMMAND [ARGS]      (s3db --help for the list)
 *
 * Design.  A thin layer over the public API (s3db.h) only, so it is also
 * the first user of that API: parse the arguments (GNU getopt, options
 * may come anywhere; "--" ends them), open the database, run one command,
 * print the result and map the outcome to an exit status scripts can test:
 *
 *   0 ok, 1 not found (record or resource), 2 usage error (arguments,
 *   connection string), 3 invalid input (JSON, validation, id), 4 storage,
 *   network or credentials error, 5 anything else.
 *
 * Output goes to stdout as JSON.stringify(value, null, 2) plus a newline:
 * two-space indentation, "{}"/"[]" for empty containers, numbers in
 * JavaScript's shortest form (json-c would print 0.1 as
 * 0.10000000000000001), '/' unescaped.  Errors go to stderr as
 * "s3db: <what>: <message>", where the message is the library's (which
 * never holds a secret).
 *
 * Secrets: the passphrase comes from --passphrase-file or, inside the
 * library, from S3DB_PASSPHRASE — never from an argument, which any user
 * can read with ps.  Credentials may come from the environment (AWS_*),
 * the library reads them.
 *
 * Plugins: --config FILE reads the daemon's JSON configuration (the same
 * reader, mountopts/config.c: connectionString, passphrase, plugins) and
 * --plugin NAME|PATH adds one more, so that writes made here go through
 * the same plugins as writes made through the mount (a cache plugin
 * must see them to invalidate).  The plugins are set up and started
 * after the open and stopped at close; their virtual files are not shown
 * and only their warnings and errors are printed (on stderr).  With a
 * configuration that gives connectionString, CONNECTION may be left out.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "builtin.h"
#include "mountopts.h"
#include "s3db.h"
#include "s3db_plugin.h"

enum cli_exit {
	EXIT_OK_ = 0,
	EXIT_NOT_FOUND = 1,
	EXIT_USAGE = 2,
	EXIT_INPUT = 3,
	EXIT_STORAGE = 4,
	EXIT_OTHER = 5,
};

#define CLI_MAX_PARALLELISM 1024
#define CLI_MAX_PASSPHRASE (64 * 1024)

static const char usage_text[] =
"Usage: s3db [OPTIONS] CONNECTION COMMAND [ARGS]\n"
"\n"
"Reads and writes an s3db database (the s3db.js format) in an S3 bucket or\n"
"a local directory.  Records and definitions are JSON, read from stdin and\n"
"printed on stdout.\n"
"\n"
"Connection strings:\n"
"  s3://[KEY:SECRET@]BUCKET[/PREFIX][?region=REGION]\n"
"  http(s)://[KEY:SECRET@]HOST[:PORT][/BUCKET[/PREFIX]]\n"
"  file:///absolute/dir    file://./relative/dir\n"
"  Credentials left out come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
"  AWS_SESSION_TOKEN or AWS_PROFILE.\n"
"\n"
"Commands:\n"
"  resources                     the resource names (JSON array)\n"
"  ls RES [LIST OPTIONS] [--ids] the records (JSON array); --ids: the ids,\n"
"                                one per line\n"
"  get RES ID                    one record\n"
"  put RES [ID] < record.json    insert a record, or replace it when it\n"
"                                exists (the id is ID, or \"id\" in the JSON,\n"
"                                or generated); prints the stored record\n"
"  update RES ID < patch.json    merge a patch into a record; prints it\n"
"  rm RES ID...                  delete records\n"
"  count RES [LIST OPTIONS]      the number of records\n"
"  schema RES                    the resource's definition\n"
"  schema RES < definition.json  create the resource or change its definition\n"
"                                (s3db.js createResource() argument as JSON)\n"
"  query RES [LIST OPTIONS] < filter.json\n"
"                                the records whose fields equal every field\n"
"                                of the filter object (dotted paths allowed)\n"
"\n"
"List options:\n"
"  --partition NAME    only the records of partition NAME\n"
"  --values JSON       the partition's field values, e.g. '{\"region\":\"eu\"}'\n"
"  --limit N           at most N records\n"
"  --offset N          skip the first N records\n"
"\n"
"Options:\n"
"  --passphrase-file FILE  passphrase for 'secret' fields: the contents of\n"
"                          FILE without its trailing newline (default: the\n"
"                          S3DB_PASSPHRASE variable, else s3db.js's default)\n"
"  --parallelism N         requests in flight (default 16)\n"
"  --config FILE           the s3dbfs JSON configuration: connectionString\n"
"                          (CONNECTION may then be left out), passphrase and\n"
"                          plugins, which see this command's operations\n"
"  --plugin NAME|PATH      one more plugin: a built-in by name or a .so\n"
"                          (repeatable)\n"
"  -h, --help              show this help\n"
"  -V, --version           show the version\n"
"  --                      ends the options: an id that starts with '-'\n"
"                          goes after it (s3db C get users -- -x1)\n"
"\n"
"Exit status: 0 ok, 1 not found, 2 usage error, 3 invalid input (JSON,\n"
"validation, id), 4 storage, network or credentials error, 5 other error.\n";

/* ---- options ----------------------------------------------------------- */

enum {
	OPT_PASSPHRASE_FILE = 256, OPT_PARALLELISM, OPT_PARTITION, OPT_VALUES,
	OPT_LIMIT, OPT_OFFSET, OPT_IDS, OPT_CONFIG, OPT_PLUGIN,
};

static const struct option long_options[] = {
	{ "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE },
	{ "parallelism", required_argument, NULL, OPT_PARALLELISM },
	{ "partition", required_argument, NULL, OPT_PARTITION },
	{ "values", required_argument, NULL, OPT_VALUES },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "offset", required_argument, NULL, OPT_OFFSET },
	{ "ids", no_argument, NULL, OPT_IDS },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "plugin", required_argument, NULL, OPT_PLUGIN },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* What the command line asked for.  Strings point into argv. */
typedef struct cli_args {
	const char *passphrase_file;
	int parallelism;
	const char *partition;
	const char *values;
	size_t limit, offset;
	int have_limit, have_offset, ids_only;
	const char *config;      /* --config FILE                           */
	mopt plugin_opts;        /* --plugin entries (plugins only); owned  */
	const char *conn;        /* NULL: the config's connectionString     */
	const char *command;
	char **rest;             /* the command's arguments */
	int nrest;
} cli_args;

/* Everything a command needs: the open database and who is asking. */
typedef struct cli {
	s3db *db;
	cli_args *args;
	s3db_ctx ctx;
	s3db_list_opts list;     /* from the list options */
	json_object *values;     /* parsed --values; owned */
} cli;

/* ---- errors ------------------------------------------------------------- */

/* The exit status for a library error code. */
static int exit_for(s3db_code code)
{
	switch (code) {
	case S3DB_OK:
		return EXIT_OK_;
	case S3DB_ERR_NOT_FOUND:
	case S3DB_ERR_NO_RESOURCE:
		return EXIT_NOT_FOUND;
	case S3DB_ERR_BAD_CONNSTR:
		return EXIT_USAGE;
	case S3DB_ERR_INVALID_ARG:
	case S3DB_ERR_INVALID_JSON:
	case S3DB_ERR_VALIDATION:
	case S3DB_ERR_BAD_ID:
	case S3DB_ERR_METADATA_TOO_LARGE:
		return EXIT_INPUT;
	case S3DB_ERR_ACCESS_DENIED:
	case S3DB_ERR_SIGNATURE:
	case S3DB_ERR_PRECONDITION:
	case S3DB_ERR_NETWORK:
	case S3DB_ERR_TIMEOUT:
	case S3DB_ERR_SERVER:
	case S3DB_ERR_NO_SUCH_BUCKET:
	case S3DB_ERR_BAD_REQUEST:
	case S3DB_ERR_CORRUPT:
	case S3DB_ERR_CRYPTO:
	case S3DB_ERR_IO:
		return EXIT_STORAGE;
	default:
		return EXIT_OTHER;
	}
}

/* Prints "s3db: <what>: <message>" and returns the exit status of code. */
static int fail(const char *what, s3db_code code, const s3db_error *err)
{
	const char *msg = err && err->message[0] ? err->message : s3db_strerror(code);
	fprintf(stderr, "s3db: %s: %s\n", what, msg);
	return exit_for(code);
}

/* Like fail() for an operation of command `verb` on resource res (and
 * record id): the message names the target unless the library's message
 * already starts with it ("users/u1: no such record"). */
static int fail_op(const char *verb, const char *res, const char *id, s3db_code code,
                   const s3db_error *err)
{
	const char *msg = err && err->message[0] ? err->message : "";
	size_t rl = strlen(res);
	int named = strncmp(msg, res, rl) == 0 && (msg[rl] == '/' || msg[rl] == ':');
	char what[512];
	if (named || !res[0])
		snprintf(what, sizeof what, "%s", verb);
	else if (id)
		snprintf(what, sizeof what, "%s %s/%s", verb, res, id);
	else
		snprintf(what, sizeof what, "%s %s", verb, res);
	return fail(what, code, err);
}

/* Prints "s3db: <what>: <formatted message>" and returns status. */
static int failf(int status, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int failf(int status, const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "s3db: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("s3db: usage: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see s3db --help)\n", stderr);
	return EXIT_USAGE;
}

/* ---- JSON output: JSON.stringify(v, null, 2) ---------------------------- */

/* A double as JavaScript's Number::toString prints it. */
static void put_number(FILE *f, double d)
{
	if (!isfinite(d)) {
		fputs("null", f);
		return;
	}
	if (d == 0) {
		fputc('0', f);
		return;
	}
	char buf[48];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* buf: [-]D[.DDD]e[+-]X */
	const char *p = buf;
	if (*p == '-') {
		fputc('-', f);
		p++;
	}
	char digits[24];
	int k = 0;
	for (; *p && *p != 'e'; p++)
		if (*p != '.' && k < (int)sizeof digits - 1)
			digits[k++] = *p;
	digits[k] = '\0';
	int n = atoi(p + 1) + 1;  /* value = 0.DIGITS x 10^n */
	if (k <= n && n <= 21) {
		fputs(digits, f);
		for (int i = k; i < n; i++)
			fputc('0', f);
	} else if (0 < n && n <= 21) {
		fprintf(f, "%.*s.%s", n, digits, digits + n);
	} else if (-6 < n && n <= 0) {
		fputs("0.", f);
		for (int i = n; i < 0; i++)
			fputc('0', f);
		fputs(digits, f);
	} else {
		fputc(digits[0], f);
		if (k > 1)
			fprintf(f, ".%s", digits + 1);
		fprintf(f, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
	}
}

static void put_string(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

static void put_indent(FILE *f, int depth)
{
	fputc('\n', f);
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

static void put_json(FILE *f, json_object *o, int depth)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		fputs("null", f);
		break;
	case json_type_boolean:
		fputs(json_object_get_boolean(o) ? "true" : "false", f);
		break;
	case json_type_int:
		/* json-c prints integers exactly (int64 and uint64 alike) */
		fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), f);
		break;
	case json_type_double:
		put_number(f, json_object_get_double(o));
		break;
	case json_type_string:
		put_string(f, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		break;
	case json_type_array: {
		size_t n = json_object_array_length(o);
		if (n == 0) {
			fputs("[]", f);
			break;
		}
		fputc('[', f);
		for (size_t i = 0; i < n; i++) {
			put_indent(f, depth + 1);
			put_json(f, json_object_array_get_idx(o, i), depth + 1);
			if (i + 1 < n)
				fputc(',', f);
		}
		put_indent(f, depth);
		fputc(']', f);
		break;
	}
	case json_type_object: {
		if (json_object_object_length(o) == 0) {
			fputs("{}", f);
			break;
		}
		fputc('{', f);
		int first = 1;
		json_object_object_foreach(o, key, val) {
			if (!first)
				fputc(',', f);
			first = 0;
			put_indent(f, depth + 1);
			put_string(f, key, strlen(key));
			fputs(": ", f);
			put_json(f, val, depth + 1);
		}
		put_indent(f, depth);
		fputc('}', f);
		break;
	}
	}
}

static void print_json(json_object *o)
{
	put_json(stdout, o, 0);
	fputc('\n', stdout);
}

/* ---- JSON input ----------------------------------------------------------- */

/* Reads all of stdin into a malloc'd, NUL-terminated buffer; NULL on a
 * read error (errno set). */
static char *read_stdin(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	for (;;) {
		if (n + 1 >= cap) {
			char *p = realloc(buf, cap * 2);
			if (!p) {
				free(buf);
				return NULL;
			}
			buf = p;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n - 1, stdin);
		n += got;
		if (got == 0) {
			if (ferror(stdin)) {
				int e = errno;
				free(buf);
				errno = e;
				return NULL;
			}
			break;
		}
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return 0;
	return 1;
}

/* Parses text[0..len) as exactly one JSON value (strict, UTF-8).  On
 * failure prints "s3db: <what>: invalid JSON: ..." and returns
 * EXIT_INPUT; on success *out is the caller's. */
static int parse_json(const char *what, const char *text, size_t len, json_object **out)
{
	*out = NULL;
	if (only_space(text, len))
		return failf(EXIT_INPUT, what, "invalid JSON: no input");
	if (memchr(text, '\0', len))
		return failf(EXIT_INPUT, what, "invalid JSON: NUL byte in the input");
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return failf(EXIT_OTHER, what, "out of memory");
	int flags = JSON_TOKENER_STRICT;
#ifdef JSON_TOKENER_VALIDATE_UTF8
	flags |= JSON_TOKENER_VALIDATE_UTF8;
#endif
	json_tokener_set_flags(tok, flags);
	json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		/* a number at the very end needs the end of input */
		o = json_tokener_parse_ex(tok, "", -1);
		jerr = json_tokener_get_error(tok);
		if (jerr == json_tokener_continue)
			jerr = json_tokener_error_parse_eof;
	}
	json_tokener_free(tok);
	if (jerr != json_tokener_success || !o) {
		size_t line = 1, col = 1;
		for (size_t i = 0; i < used && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		json_object_put(o);
		return failf(EXIT_INPUT, what, "invalid JSON: %s at line %zu, column %zu",
		             json_tokener_error_desc(jerr), line, col);
	}
	if (used < len && !only_space(text + used, len - used)) {
		json_object_put(o);
		return failf(EXIT_INPUT, what, "invalid JSON: text after the value");
	}
	*out = o;
	return EXIT_OK_;
}

/* Reads one JSON object from stdin into *out (the caller's). */
static int read_object(const char *what, const char *expected, json_object **out)
{
	size_t len = 0;
	char *text = read_stdin(&len);
	if (!text)
		return failf(EXIT_OTHER, what, "reading stdin: %s", strerror(errno));
	int rc = parse_json(what, text, len, out);
	free(text);
	if (rc != EXIT_OK_)
		return rc;
	if (!json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		return failf(EXIT_INPUT, what, "expected %s (a JSON object) on stdin", expected);
	}
	return EXIT_OK_;
}

/* ---- commands ----------------------------------------------------------- */

/* Looks up resource `name`; prints the error and returns 0 when absent. */
static s3db_resource *need_resource(cli *c, const char *what, const char *name)
{
	s3db_resource *res = s3db_resource_find(c->db, name);
	if (!res)
		failf(EXIT_NOT_FOUND, what, "no such resource '%s'", name);
	return res;
}

/* "cmd res" or "cmd res/id" for messages; static buffer. */
static const char *what_of(const char *cmd, const char *res, const char *id)
{
	static char buf[512];
	if (id)
		snprintf(buf, sizeof buf, "%s %s/%s", cmd, res, id);
	else if (res)
		snprintf(buf, sizeof buf, "%s %s", cmd, res);
	else
		snprintf(buf, sizeof buf, "%s", cmd);
	return buf;
}

static int cmd_resources(cli *c)
{
	s3db_error err = { 0 };
	char **names = NULL;
	s3db_code rc = s3db_resource_names(c->db, &names, &err);
	if (rc != S3DB_OK)
		return fail("resources", rc, &err);
	json_object *arr = json_object_new_array();
	for (char **p = names; *p; p++)
		json_object_array_add(arr, json_object_new_string(*p));
	s3db_free_strv(names);
	print_json(arr);
	json_object_put(arr);
	return EXIT_OK_;
}

static int cmd_ls(cli *c)
{
	const char *name = c->args->rest[0];
	const char *what = what_of("ls", name, NULL);
	s3db_resource *res = need_resource(c, what, name);
	if (!res)
		return EXIT_NOT_FOUND;
	s3db_error err = { 0 };
	if (c->args->ids_only) {
		char **ids = NULL;
		size_t n = 0;
		s3db_code rc = s3db_list_ids(res, &c->list, &ids, &n, &err);
		if (rc != S3DB_OK)
			return fail_op("ls", name, NULL, rc, &err);
		for (char **p = ids; p && *p; p++)
			printf("%s\n", *p);
		s3db_free_strv(ids);
		return EXIT_OK_;
	}
	json_object *records = NULL;
	s3db_code rc = s3db_list(res, &c->list, &c->ctx, &records, &err);
	if (rc != S3DB_OK)
		return fail_op("ls", name, NULL, rc, &err);
	print_json(records);
	json_object_put(records);
	return EXIT_OK_;
}

static int cmd_get(cli *c)
{
	const char *name = c->args->rest[0], *id = c->args->rest[1];
	const char *what = what_of("get", name, id);
	s3db_resource *res = need_resource(c, what, name);
	if (!res)
		return EXIT_NOT_FOUND;
	s3db_error err = { 0 };
	json_object *rec = NULL;
	s3db_code rc = s3db_get(res, id, &c->ctx, &rec, &err);
	if (rc != S3DB_OK)
		return fail_op("get", name, id, rc, &err);
	print_json(rec);
	json_object_put(rec);
	return EXIT_OK_;
}

static int cmd_put(cli *c)
{
	const char *name = c->args->rest[0];
	const char *id = c->args->nrest > 1 ? c->args->rest[1] : NULL;
	const char *what = what_of("put", name, id);
	s3db_resource *res = need_resource(c, what, name);
	if (!res)
		return EXIT_NOT_FOUND;
	json_object *data = NULL;
	int st = read_object(what, "a record", &data);
	if (st != EXIT_OK_)
		return st;
	json_object *idv = NULL;
	if (json_object_object_get_ex(data, "id", &idv)) {
		if (!json_object_is_type(idv, json_type_string)) {
			json_object_put(data);
			return failf(EXIT_INPUT, what, "the record's \"id\" must be a string");
		}
		if (id && strcmp(id, json_object_get_string(idv)) != 0) {
			failf(EXIT_INPUT, what, "the record's \"id\" (\"%s\") differs from the "
			      "ID argument", json_object_get_string(idv));
			json_object_put(data);
			return EXIT_INPUT;
		}
	} else if (id) {
		json_object_object_add(data, "id", json_object_new_string(id));
	}
	int has_id = json_object_object_get_ex(data, "id", NULL);
	s3db_error err = { 0 };
	json_object *stored = NULL;
	s3db_code rc = has_id ? s3db_upsert(res, data, &c->ctx, &stored, &err)
	                      : s3db_insert(res, data, &c->ctx, &stored, &err);
	json_object_put(data);
	if (rc != S3DB_OK)
		return fail_op("put", name, id, rc, &err);
	print_json(stored);
	json_object_put(stored);
	return EXIT_OK_;
}

static int cmd_update(cli *c)
{
	const char *name = c->args->rest[0], *id = c->args->rest[1];
	const char *what = what_of("update", name, id);
	s3db_resource *res = need_resource(c, what, name);
	if (!res)
		return EXIT_NOT_FOUND;
	json_object *patch = NULL;
	int st = read_object(what, "a patch", &patch);
	if (st != EXIT_OK_)
		return st;
	json_object *idv = NULL;
	if (json_object_object_get_ex(patch, "id", &idv) &&
	    (!json_object_is_type(idv, json_type_string) || strcmp(json_object_get_string(idv), id) != 0)) {
		json_object_put(patch);
		return failf(EXIT_INPUT, what, "a patch cannot change the record's \"id\"");
	}
	s3db_error err = { 0 };
	json_object *stored = NULL;
	s3db_code rc = s3db_update(res, id, patch, &c->ctx, &stored, &err);
	json_object_put(patch);
	if (rc != S3DB_OK)
		return fail_op("update", name, id, rc, &err);
	print_json(stored);
	json_object_put(stored);
	return EXIT_OK_;
}

/* Deletes every id given; reports each failure and exits with the status
 * of the first one. */
static int cmd_rm(cli *c)
{
	const char *name = c->args->rest[0];
	s3db_resource *res = need_resource(c, what_of("rm", name, NULL), name);
	if (!res)
		return EXIT_NOT_FOUND;
	int status = EXIT_OK_;
	for (int i = 1; i < c->args->nrest; i++) {
		const char *id = c->args->rest[i];
		s3db_error err = { 0 };
		s3db_code rc = s3db_delete(res, id, &c->ctx, &err);
		if (rc != S3DB_OK) {
			int st = fail_op("rm", name, id, rc, &err);
			if (status == EXIT_OK_)
				status = st;
		}
	}
	return status;
}

static int cmd_count(cli *c)
{
	const char *name = c->args->rest[0];
	const char *what = what_of("count", name, NULL);
	s3db_resource *res = need_resource(c, what, name);
	if (!res)
		return EXIT_NOT_FOUND;
	s3db_error err = { 0 };
	size_t n = 0;
	s3db_code rc = s3db_count(res, &c->list, &n, &c->ctx, &err);
	if (rc != S3DB_OK)
		return fail_op("count", name, NULL, rc, &err);
	printf("%zu\n", n);
	return EXIT_OK_;
}

/* 1 when stdin holds something to read: not a terminal, open, and (read
 * then) not empty.  The text read is handed over in *text. */
static int stdin_has_input(char **text, size_t *len)
{
	struct stat st;
	*text = NULL;
	*len = 0;
	if (fstat(STDIN_FILENO, &st) != 0 || isatty(STDIN_FILENO))
		return 0;
	*text = read_stdin(len);
	if (!*text)
		return -1;
	return !only_space(*text, *len);
}

static int cmd_schema(cli *c)
{
	const char *name = c->args->rest[0];
	const char *what = what_of("schema", name, NULL);
	char *text = NULL;
	size_t len = 0;
	int has = stdin_has_input(&text, &len);
	if (has < 0)
		return failf(EXIT_OTHER, what, "reading stdin: %s", strerror(errno));
	s3db_resource *res = NULL;
	if (has) {
		json_object *def = NULL;
		int st = parse_json(what, text, len, &def);
		free(text);
		if (st != EXIT_OK_)
			return st;
		if (!json_object_is_type(def, json_type_object)) {
			json_object_put(def);
			return failf(EXIT_INPUT, what, "expected a resource definition (a JSON object) on stdin");
		}
		s3db_error err = { 0 };
		s3db_code rc = s3db_resource_define(c->db, name, def, &res, &err);
		json_object_put(def);
		if (rc != S3DB_OK)
			return fail_op("schema", name, NULL, rc, &err);
	} else {
		free(text);
		res = need_resource(c, what, name);
		if (!res)
			return EXIT_NOT_FOUND;
	}
	json_object *def = s3db_resource_definition(res);
	if (!def)
		return failf(EXIT_OTHER, what, "the definition of '%s' cannot be read", name);
	print_json(def);
	json_object_put(def);
	return EXIT_OK_;
}

static int cmd_query(cli *c)
{
	const char *name = c->args->rest[0];
	const char *what = what_of("query", name, NULL);
	s3db_resource *res = need_resource(c, what, name);
	if (!res)
		return EXIT_NOT_FOUND;
	json_object *filter = NULL;
	int st = read_object(what, "a filter", &filter);
	if (st != EXIT_OK_)
		return st;
	s3db_error err = { 0 };
	json_object *records = NULL;
	s3db_code rc = s3db_query(res, filter, &c->list, &c->ctx, &records, &err);
	json_object_put(filter);
	if (rc != S3DB_OK)
		return fail_op("query", name, NULL, rc, &err);
	print_json(records);
	json_object_put(records);
	return EXIT_OK_;
}

/* ---- the command table ---------------------------------------------------- */

enum { TAKES_LIST = 1, TAKES_IDS = 2 };

typedef struct command {
	const char *name;
	int min_args, max_args;      /* after the command; -1: no maximum */
	int flags;
	const char *synopsis;
	int (*run)(cli *c);
} command;

static const command commands[] = {
	{ "resources", 0, 0, 0, "resources", cmd_resources },
	{ "ls", 1, 1, TAKES_LIST | TAKES_IDS, "ls RES [LIST OPTIONS] [--ids]", cmd_ls },
	{ "get", 2, 2, 0, "get RES ID", cmd_get },
	{ "put", 1, 2, 0, "put RES [ID] < record.json", cmd_put },
	{ "update", 2, 2, 0, "update RES ID < patch.json", cmd_update },
	{ "rm", 2, -1, 0, "rm RES ID...", cmd_rm },
	{ "count", 1, 1, TAKES_LIST, "count RES [LIST OPTIONS]", cmd_count },
	{ "schema", 1, 1, 0, "schema RES [< definition.json]", cmd_schema },
	{ "query", 1, 1, TAKES_LIST, "query RES [LIST OPTIONS] < filter.json", cmd_query },
};

static const command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* A non-negative decimal integer (digits only); 0 on success. */
static int parse_size(const char *s, size_t max, size_t *out)
{
	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18)
		return -1;
	unsigned long long v = strtoull(s, NULL, 10);
	if (v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* Parses argv into *a.  Returns -1 to go on, else an exit status (after
 * printing help, the version or a usage error). */
static int parse_args(int argc, char **argv, cli_args *a)
{
	memset(a, 0, sizeof *a);
	/* getopt would take "--passphrase X" as an abbreviation of
	 * --passphrase-file; refuse it before X lands in an error message */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strncmp(argv[i], "--passphrase", 12) == 0 &&
		    (argv[i][12] == '\0' || argv[i][12] == '='))
			return usage_error("there is no --passphrase option: a passphrase in the "
			                   "arguments shows in ps; use --passphrase-file FILE or "
			                   "S3DB_PASSPHRASE");
	opterr = 0;
	int opt;
	size_t v;
	while ((opt = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK_;
		case 'V':
			printf("s3db %s\n", S3DB_VERSION);
			return EXIT_OK_;
		case OPT_PASSPHRASE_FILE:
			a->passphrase_file = optarg;
			break;
		case OPT_PARALLELISM:
			if (parse_size(optarg, CLI_MAX_PARALLELISM, &v) || v == 0)
				return usage_error("--parallelism takes a number from 1 to %d",
				                   CLI_MAX_PARALLELISM);
			a->parallelism = (int)v;
			break;
		case OPT_PARTITION:
			a->partition = optarg;
			break;
		case OPT_VALUES:
			a->values = optarg;
			break;
		case OPT_LIMIT:
			if (parse_size(optarg, SIZE_MAX, &a->limit))
				return usage_error("--limit takes a non-negative integer");
			a->have_limit = 1;
			break;
		case OPT_OFFSET:
			if (parse_size(optarg, SIZE_MAX, &a->offset))
				return usage_error("--offset takes a non-negative integer");
			a->have_offset = 1;
			break;
		case OPT_IDS:
			a->ids_only = 1;
			break;
		case OPT_CONFIG:
			a->config = optarg;
			break;
		case OPT_PLUGIN: {
			s3db_error err = { 0 };
			if (mopt_add_plugin_text(&a->plugin_opts, optarg, "--plugin", NULL, "--plugin",
			                         &err) != S3DB_OK)
				return usage_error("%s", err.message);
			break;
		}
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt && optopt < 256)
				return usage_error("unknown option '-%c' (an id or other argument that "
				                   "starts with '-' goes after --)", optopt);
			/* a long option: missing argument or unknown */
			for (const struct option *lo = long_options; lo->name; lo++)
				if (strncmp(argv[optind - 1], "--", 2) == 0 &&
				    strcmp(argv[optind - 1] + 2, lo->name) == 0)
					return usage_error("option '%s' needs a value", argv[optind - 1]);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	int npos = argc - optind;
	/* with --config, CONNECTION may be left out: a first argument that is
	 * a command name and no connection string is the command */
	int skip_conn = a->config && npos >= 1 && find_command(argv[optind]) &&
	                !strstr(argv[optind], "://");
	if (npos == 0)
		return usage_error(a->config ? "missing COMMAND" : "missing CONNECTION and COMMAND");
	if (npos == 1 && !skip_conn)
		return usage_error("missing COMMAND after the connection string");
	a->conn = skip_conn ? NULL : argv[optind];
	a->command = argv[optind + (skip_conn ? 0 : 1)];
	a->rest = argv + optind + (skip_conn ? 1 : 2);
	a->nrest = npos - (skip_conn ? 1 : 2);

	const command *cmd = find_command(a->command);
	if (!cmd)
		return usage_error("unknown command '%s'", a->command);
	if (a->nrest < cmd->min_args || (cmd->max_args >= 0 && a->nrest > cmd->max_args))
		return usage_error("%s takes: %s", cmd->name, cmd->synopsis);
	if (!(cmd->flags & TAKES_LIST) &&
	    (a->partition || a->values || a->have_limit || a->have_offset))
		return usage_error("%s takes no --partition, --values, --limit or --offset", cmd->name);
	if (!(cmd->flags & TAKES_IDS) && a->ids_only)
		return usage_error("--ids goes with ls only");
	if (a->values && !a->partition)
		return usage_error("--values needs --partition");
	return -1;
}

/* Reads the passphrase file: its contents minus one trailing newline.
 * Returns a malloc'd string, or NULL after printing the error. */
static char *read_passphrase(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		failf(EXIT_USAGE, "--passphrase-file", "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CLI_MAX_PASSPHRASE + 1);
	if (!buf) {
		fclose(f);
		failf(EXIT_OTHER, "--passphrase-file", "out of memory");
		return NULL;
	}
	size_t n = fread(buf, 1, CLI_MAX_PASSPHRASE + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n > CLI_MAX_PASSPHRASE) {
		free(buf);
		failf(EXIT_USAGE, "--passphrase-file", "%s: %s", path,
		      bad ? "read error" : "longer than 64 KiB");
		return NULL;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0 || memchr(buf, '\0', n)) {
		free(buf);
		failf(EXIT_USAGE, "--passphrase-file", "%s: %s", path,
		      n ? "holds a NUL byte" : "is empty");
		return NULL;
	}
	return buf;
}

/* ---- plugins ------------------------------------------------------------- */

/* api->log: warnings and errors on stderr, the rest dropped (a command's
 * output is its JSON). */
static void plugin_log(void *ud, s3db_plugin_log_level level, const char *plugin,
                       const char *message)
{
	if (level <= S3DB_PLUGIN_LOG_WARN)
		fprintf(stderr, "s3db: plugin %s: %s\n", plugin, message);
}

/* Sets up and starts the plugins of the configuration, then those of
 * --plugin.  Returns EXIT_OK_ or an exit status after printing why. */
static int start_plugins(s3db *db, const mopt *file, const mopt *extra)
{
	s3db_plugin_set_logger(db, plugin_log, NULL);
	const mopt *lists[2] = { file, extra };
	s3db_error err = { 0 };
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->nplugins; i++) {
			const mopt_plugin *p = &lists[l]->plugins[i];
			s3db_code rc = plugins_add_entry(db, p->name, p->path, p->options, p->origin, NULL,
			                                 &err);
			if (rc != S3DB_OK)
				return failf(rc == S3DB_ERR_NOMEM ? EXIT_OTHER : EXIT_USAGE, "plugin", "%s",
				             err.message);
		}
	}
	s3db_code rc = s3db_plugins_start(db, &err);
	return rc == S3DB_OK ? EXIT_OK_ : failf(EXIT_OTHER, "plugin", "%s", err.message);
}

/* Runs the command with the arguments parsed; file is the configuration
 * (empty without --config). */
static int run(cli_args *args, mopt *file);

int main(int argc, char **argv)
{
	cli_args args;
	int status = parse_args(argc, argv, &args);
	if (status >= 0) {
		mopt_free(&args.plugin_opts);
		return status;
	}
	mopt file;
	memset(&file, 0, sizeof file);
	s3db_error err = { 0 };
	if (args.config && mopt_config_load(args.config, args.config, &file, &err) != S3DB_OK)
		status = failf(EXIT_USAGE, "--config", "%s", err.message);
	else if (!args.conn && !file.connection)
		status = usage_error("%s gives no connectionString: give CONNECTION", args.config);
	else
		status = run(&args, &file);
	mopt_free(&file);
	mopt_free(&args.plugin_opts);
	return status;
}

static int run(cli_args *args_in, mopt *file)
{
	cli_args args = *args_in;
	int status;
	if (!args.conn)
		args.conn = file->connection;

	cli c;
	memset(&c, 0, sizeof c);
	c.args = &args;
	c.ctx.uid = getuid();
	c.ctx.gid = getgid();
	c.ctx.pid = getpid();
	c.ctx.process = "s3db";
	c.ctx.origin = "cli";
	c.list.partition = args.partition;
	c.list.limit = args.limit;
	c.list.offset = args.offset;
	if (args.values) {
		int st = parse_json("--values", args.values, strlen(args.values), &c.values);
		if (st != EXIT_OK_)
			return st;
		if (!json_object_is_type(c.values, json_type_object)) {
			json_object_put(c.values);
			return failf(EXIT_INPUT, "--values", "expected a JSON object of field values");
		}
		c.list.partition_values = c.values;
	}

	char *passphrase = NULL;
	if (args.passphrase_file && !(passphrase = read_passphrase(args.passphrase_file))) {
		json_object_put(c.values);
		return EXIT_USAGE;
	}
	s3db_options opts;
	memset(&opts, 0, sizeof opts);
	opts.passphrase = passphrase ? passphrase : file->passphrase;
	opts.parallelism = args.parallelism;
	opts.create_if_missing = 1;
	s3db_error err = { 0 };
	s3db_code rc = s3db_open(args.conn, &opts, &c.db, &err);
	if (passphrase) {
		explicit_bzero(passphrase, strlen(passphrase));
		free(passphrase);
	}
	if (rc != S3DB_OK) {
		json_object_put(c.values);
		return fail("open", rc, &err);
	}

	status = start_plugins(c.db, file, &args.plugin_opts);
	if (status == EXIT_OK_)
		status = find_command(args.command)->run(&c);

	s3db_close(c.db);
	json_object_put(c.values);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "s3db: stdout: %s\n", strerror(errno));
		if (status == EXIT_OK_)
			status = EXIT_OTHER;
	}
	return status;
}
