/*
 * s3db.h — public API of libs3db, the s3db document database in C.
 *
 * s3db keeps a database in an S3 bucket (or a local directory with the same
 * object semantics): each record is one object whose user metadata holds the
 * record's fields, encoded exactly as s3db.js 21.x does, so buckets written by
 * either library are read and written by the other.  Buckets written by
 * s3db.js 7.x are read.
 *
 * The API is small, in the manner of curl's: a database handle (s3db), a
 * resource handle (s3db_resource, owned by the database), records as json-c
 * objects, and one error enum with readable messages.  Every function that
 * can fail returns an s3db_code and, when given an s3db_error, fills it with
 * a message saying what failed and where.  Secrets never appear in messages.
 *
 * Ownership: a json_object returned through an out-parameter belongs to the
 * caller (json_object_put() it); strings returned through out-parameters are
 * malloc'd and belong to the caller unless stated otherwise; inputs are
 * borrowed, never consumed.
 *
 * Thread safety: an s3db handle may be used from many threads at once.
 */
#ifndef S3DB_H
#define S3DB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define S3DB_VERSION "0.1.0"

/* ---- errors ---------------------------------------------------------- */

typedef enum s3db_code {
	S3DB_OK = 0,
	S3DB_ERR_NOT_FOUND,          /* no such record / object / resource   */
	S3DB_ERR_EXISTS,             /* the record already exists            */
	S3DB_ERR_ACCESS_DENIED,      /* credentials refused (403)            */
	S3DB_ERR_SIGNATURE,          /* request signature does not match     */
	S3DB_ERR_METADATA_TOO_LARGE, /* over the 2 KB user-metadata limit    */
	S3DB_ERR_PRECONDITION,       /* a conditional request failed (412)   */
	S3DB_ERR_NETWORK,            /* connection refused / reset / DNS     */
	S3DB_ERR_TIMEOUT,            /* request timed out                    */
	S3DB_ERR_SERVER,             /* 5xx after retries                    */
	S3DB_ERR_NO_SUCH_BUCKET,     /* the bucket does not exist            */
	S3DB_ERR_BAD_REQUEST,        /* other 4xx answers                    */
	S3DB_ERR_INVALID_ARG,        /* a bad argument from the caller       */
	S3DB_ERR_INVALID_JSON,       /* input is not valid JSON              */
	S3DB_ERR_VALIDATION,         /* record violates the schema           */
	S3DB_ERR_BAD_ID,             /* id unusable as (part of) a key       */
	S3DB_ERR_BAD_CONNSTR,        /* malformed connection string          */
	S3DB_ERR_CORRUPT,            /* stored data cannot be decoded        */
	S3DB_ERR_NO_RESOURCE,        /* no such resource                     */
	S3DB_ERR_CRYPTO,             /* encryption / decryption failed       */
	S3DB_ERR_IO,                 /* local file system error              */
	S3DB_ERR_NOMEM,              /* out of memory                        */
	S3DB_ERR_UNSUPPORTED,        /* feature not supported                */
	S3DB_ERR_INTERNAL,           /* a bug: an invariant did not hold     */
	S3DB_ERR__COUNT
} s3db_code;

/* Detailed error: code, HTTP status when one was involved (else 0), and a
 * message that names what failed and where ("users/u1: field 'age': ...").*/
typedef struct s3db_error {
	s3db_code code;
	int http_status;
	char message[512];
} s3db_error;

/* Static, readable text for a code ("not found", "access denied", ...).   */
const char *s3db_strerror(s3db_code code);

/* ---- request observation (costs, metrics, benchmarks) ----------------- */

typedef enum s3db_command {
	S3DB_CMD_PUT_OBJECT = 0,
	S3DB_CMD_GET_OBJECT,
	S3DB_CMD_HEAD_OBJECT,
	S3DB_CMD_DELETE_OBJECT,
	S3DB_CMD_DELETE_OBJECTS,
	S3DB_CMD_LIST_OBJECTS_V2,
	S3DB_CMD_COPY_OBJECT,
	S3DB_CMD__COUNT
} s3db_command;

/* "PutObject", "GetObject", ... as AWS names the commands. */
const char *s3db_command_name(s3db_command cmd);

/* What the request hook sees for every request a store makes (one call per
 * logical request, after retries; `attempts` counts the tries). */
typedef struct s3db_request_info {
	s3db_command command;
	const char *key;         /* object key or list prefix (may be "")    */
	s3db_code result;        /* S3DB_OK or the error                     */
	int http_status;         /* 0 for the local backend                  */
	int attempts;            /* 1 + retries                              */
	uint64_t bytes_sent;
	uint64_t bytes_received;
	double duration_ms;
} s3db_request_info;

typedef void (*s3db_request_hook)(void *userdata, const s3db_request_info *info);

/* ---- events (the bus plugins build on) -------------------------------- */

typedef enum s3db_event_type {
	S3DB_EV_BEFORE_INSERT = 0, S3DB_EV_AFTER_INSERT,
	S3DB_EV_BEFORE_UPDATE, S3DB_EV_AFTER_UPDATE,
	S3DB_EV_BEFORE_DELETE, S3DB_EV_AFTER_DELETE,
	S3DB_EV_BEFORE_GET, S3DB_EV_AFTER_GET,
	S3DB_EV_BEFORE_LIST, S3DB_EV_AFTER_LIST,
	S3DB_EV_BEFORE_COUNT, S3DB_EV_AFTER_COUNT,
	S3DB_EV__COUNT
} s3db_event_type;

const char *s3db_event_name(s3db_event_type type); /* "beforeInsert", ... */

/* Who asked for an operation.  The FUSE layer fills it from the request;
 * library callers may pass NULL (the event then carries zeros and ""). */
typedef struct s3db_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	const char *process;     /* process name, may be NULL                */
	const char *origin;      /* "cli", "fuse", "api", ...                */
} s3db_ctx;

typedef struct s3db_event {
	s3db_event_type type;
	const char *resource;
	const char *id;              /* NULL for list/count                   */
	json_object *old_record;     /* borrowed; NULL when none              */
	json_object *new_record;     /* borrowed; NULL when none              */
	const s3db_ctx *ctx;         /* never NULL                            */
	s3db_code result;            /* after-events: outcome of the operation*/
	double duration_ms;          /* after-events                          */
} s3db_event;

/* A listener returns S3DB_OK; from a before-event any other code cancels
 * the operation with that code. */
typedef s3db_code (*s3db_listener)(void *userdata, const s3db_event *ev);

/* ---- database --------------------------------------------------------- */

typedef struct s3db s3db;
typedef struct s3db_resource s3db_resource;

typedef struct s3db_options {
	const char *passphrase;      /* secrets; default "secret"             */
	int parallelism;             /* requests in flight; default 16        */
	int timeout_ms;              /* per request; default 30000            */
	int max_retries;             /* default 5                             */
	int create_if_missing;       /* 0 (default): write s3db.json when it is
	                                absent; negative: fail with NOT_FOUND   */
} s3db_options;

/* Opens the database named by a connection string:
 *   s3://KEY:SECRET@BUCKET/prefix[?region=..&forcePathStyle=..]
 *   http(s)://KEY:SECRET@host:port/BUCKET/prefix
 *   file:///absolute/dir  (local backend; "file://./rel" too)
 * Credentials missing from the string come from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or AWS_PROFILE in
 * ~/.aws/credentials; AWS_REGION and AWS_ENDPOINT_URL likewise.
 * opts may be NULL.  On success *out owns the handle (s3db_close it). */
s3db_code s3db_open(const char *connection_string, const s3db_options *opts,
                    s3db **out, s3db_error *err);
void s3db_close(s3db *db);

/* The connection string with the secret replaced by "***" (caller frees). */
char *s3db_describe(const s3db *db);

/* Observe every storage request.  One hook; NULL removes it. */
void s3db_set_request_hook(s3db *db, s3db_request_hook hook, void *userdata);

/* Subscribe to events; returns a listener id > 0 (for s3db_off) or 0. */
int s3db_on(s3db *db, s3db_listener fn, void *userdata);
void s3db_off(s3db *db, int listener_id);

/* Re-read s3db.json from storage. */
s3db_code s3db_reload(s3db *db, s3db_error *err);

/* Names of the resources, sorted; *names is a NULL-terminated malloc'd
 * array of malloc'd strings (free with s3db_free_strv). */
s3db_code s3db_resource_names(s3db *db, char ***names, s3db_error *err);
void s3db_free_strv(char **strv);

/* Creates a resource or, when it exists, changes its definition (a new
 * version when the definition hash changes, as s3db.js does).  The
 * definition is s3db.js's createResource() argument as JSON:
 * {attributes, behavior, timestamps, partitions, idSize, paranoid, ...}.  */
s3db_code s3db_resource_define(s3db *db, const char *name, json_object *definition,
                               s3db_resource **out, s3db_error *err);
/* Looks a resource up; NULL when absent.  Owned by db. */
s3db_resource *s3db_resource_find(s3db *db, const char *name);
/* Deletes every record of a resource and removes it from s3db.json. */
s3db_code s3db_resource_drop(s3db *db, const char *name, s3db_error *err);
/* The current definition, as stored in s3db.json (caller puts it). */
json_object *s3db_resource_definition(s3db_resource *res);
const char *s3db_resource_name(const s3db_resource *res);

/* ---- records ---------------------------------------------------------- */

/* Inserts a record.  data may carry "id"; otherwise one is generated.
 * *out (optional) receives the stored record as get() would return it. */
s3db_code s3db_insert(s3db_resource *res, json_object *data, const s3db_ctx *ctx,
                      json_object **out, s3db_error *err);
/* Reads one record; S3DB_ERR_NOT_FOUND when absent. */
s3db_code s3db_get(s3db_resource *res, const char *id, const s3db_ctx *ctx,
                   json_object **out, s3db_error *err);
/* 1 when the record exists, 0 when not, -1 on error. */
int s3db_exists(s3db_resource *res, const char *id, s3db_error *err);
/* Merges `patch` into the stored record (deep merge of objects). */
s3db_code s3db_update(s3db_resource *res, const char *id, json_object *patch,
                      const s3db_ctx *ctx, json_object **out, s3db_error *err);
/* Replaces the whole record (the record must exist). */
s3db_code s3db_replace(s3db_resource *res, const char *id, json_object *data,
                       const s3db_ctx *ctx, json_object **out, s3db_error *err);
/* Inserts, or replaces when it exists (data must carry "id"). */
s3db_code s3db_upsert(s3db_resource *res, json_object *data, const s3db_ctx *ctx,
                      json_object **out, s3db_error *err);
s3db_code s3db_delete(s3db_resource *res, const char *id, const s3db_ctx *ctx,
                      s3db_error *err);

/* Bulk operations run `parallelism` requests at once.  results (optional)
 * receives an array, one entry per input in input order: the record, or
 * {"id":..,"error":"message"} for a failure.  The return code is the first
 * error met (the others are in results). */
s3db_code s3db_insert_many(s3db_resource *res, json_object *records, const s3db_ctx *ctx,
                           json_object **results, s3db_error *err);
s3db_code s3db_get_many(s3db_resource *res, const char *const *ids, size_t n,
                        const s3db_ctx *ctx, json_object **results, s3db_error *err);
s3db_code s3db_delete_many(s3db_resource *res, const char *const *ids, size_t n,
                           const s3db_ctx *ctx, s3db_error *err);

/* Listing.  partition may be NULL; values is a JSON object of
 * field -> value for the partition (NULL: every value). */
typedef struct s3db_list_opts {
	const char *partition;
	json_object *partition_values;
	size_t limit;        /* 0 = no limit */
	size_t offset;
} s3db_list_opts;

/* Ids in key order (NULL-terminated, free with s3db_free_strv). */
s3db_code s3db_list_ids(s3db_resource *res, const s3db_list_opts *opts,
                        char ***ids, size_t *count, s3db_error *err);
s3db_code s3db_count(s3db_resource *res, const s3db_list_opts *opts, size_t *count,
                     const s3db_ctx *ctx, s3db_error *err);
/* Records (array) in id order. */
s3db_code s3db_list(s3db_resource *res, const s3db_list_opts *opts, const s3db_ctx *ctx,
                    json_object **records, s3db_error *err);
/* One page: {items:[...], page, pageSize, totalItems, totalPages}. */
s3db_code s3db_page(s3db_resource *res, size_t page, size_t page_size,
                    const s3db_list_opts *opts, const s3db_ctx *ctx,
                    json_object **out, s3db_error *err);
/* Records whose fields equal every field of `filter` (exact match,
 * dotted paths allowed). */
s3db_code s3db_query(s3db_resource *res, json_object *filter, const s3db_list_opts *opts,
                     const s3db_ctx *ctx, json_object **records, s3db_error *err);

/* Binary content attached to a record (s3db.js setContent / content). */
s3db_code s3db_set_content(s3db_resource *res, const char *id, const void *data, size_t len,
                           const char *content_type, s3db_error *err);
/* *data is malloc'd (caller frees); *content_type likewise (may be NULL). */
s3db_code s3db_get_content(s3db_resource *res, const char *id, void **data, size_t *len,
                           char **content_type, s3db_error *err);

/* ---- ids -------------------------------------------------------------- */

/* Checks that id can be a record id: non-empty, at most 1024 bytes, valid
 * UTF-8, no '/', '\\', '=', '%', NUL or control characters, not "." or "..",
 * at most 512 bytes (so whole keys stay within S3's 1,024). */
s3db_code s3db_id_check(const char *id, s3db_error *err);

#ifdef __cplusplus
}
#endif
#endif /* S3DB_H */
