/*
 * schema.h — resource definitions: attributes, rules, short keys, hashes,
 * and the catalogue s3db.json that holds them.
 *
 * A resource definition is kept as s3db.js writes it in s3db.json (JSON,
 * key order preserved: v7 rebuilds short keys from attribute order) and
 * compiled into a `schema`: one entry per attribute path with its parsed
 * rules and its short key.  A schema is immutable once compiled, so many
 * threads read it without locks; a definition change compiles a new one.
 *
 * Rules: the shorthand "number|integer:true|optional|min:2" and the
 * object form {type:"number", integer:true, optional:true} both compile
 * into the same rule object {type, optional, integer, min, ...} (see
 * schema_parse_rule).  Nested objects {"$$type":"object|optional", a:...}
 * give attributes "parent.a".
 *
 * Formats: FORMAT_21 (s3db.js 21.x, registry-based base36 short keys) and
 * FORMAT_V7 (read only; base62 short keys by position, v0-based versions).
 */
#ifndef S3DB_SCHEMA_H
#define S3DB_SCHEMA_H

#include <json-c/json.h>
#include "s3db.h"

typedef enum schema_format { FORMAT_21 = 21, FORMAT_V7 = 7 } schema_format;

/* How a value is encoded (spec §3.4 order of recognition). */
typedef enum attr_kind {
	KIND_STRING = 0,   /* string, email, url, enum, any string type    */
	KIND_NUMBER,       /* decimal encoding                             */
	KIND_INTEGER,      /* number|integer:true -> base62                */
	KIND_BOOLEAN,
	KIND_ARRAY,        /* see item_kind                                */
	KIND_OBJECT,       /* object (JSON text)                           */
	KIND_JSON,         /* json (JSON text; strings as is)              */
	KIND_DATE,         /* date: JSON-quoted ISO text                   */
	KIND_DATETIME,     /* base62 epoch ms (21.x); ISO text in v7       */
	KIND_DATEONLY,     /* base62 days                                  */
	KIND_SECRET,       /* AES-GCM envelope                             */
	KIND_ANY,          /* stored as text / JSON text                   */
	KIND_NESTED,       /* a nested-object node (not stored itself)     */
	KIND_RAW           /* object-form or unsupported type: text as is  */
} attr_kind;

typedef struct attr {
	char *path;            /* dotted path: "profile.country"            */
	char *short_key;       /* header key: "a", "10"; NULL if not stored */
	attr_kind kind;
	attr_kind item_kind;   /* arrays: KIND_STRING/NUMBER/INTEGER/ANY    */
	json_object *rule;     /* compiled rule object (owned)              */
	int optional;
	int in_key_list;       /* has a short key                           */
} attr;

typedef struct schema {
	schema_format format;
	char *resource;
	char *version;          /* "v1" / "v0"                              */
	char *behavior;         /* "user-managed" ...                       */
	int timestamps;
	int id_size;            /* default 22                               */
	json_object *attributes; /* as stored (owned reference)             */
	json_object *partitions; /* {name:{fields:{path:rule}}} (owned ref) */
	attr *attrs;            /* every attribute path, declaration order  */
	size_t nattrs;
	char *hash;             /* "sha256:<hex>"                           */
} schema;

/* Parses a rule (string shorthand or object form) into a new rule object
 * {type:..., optional:bool, <rule>:<value>...}.  Shorthand values are
 * coerced as fastest-validator does: true/false, numbers, else strings.
 * Returns NULL with err set when the rule is malformed. */
json_object *schema_parse_rule(json_object *def, const char *path, s3db_error *err);

/* 1 when an object definition is a nested object ({"$$type": ..., child:
 * ...}) rather than the object form of a rule ({type:"string", ...}): it
 * has "$$type", or no "type" string free of '|'.  0 for non-objects. */
int schema_def_is_nested(json_object *def);

/* The ordered key list of §3.2 for an attributes object (malloc'd
 * NULL-terminated vector of malloc'd dotted paths). */
char **schema_key_list(json_object *attributes);

/* "sha256:" + hex SHA-256 of the canonical JSON of
 * {attributes (without createdAt/updatedAt when timestamps), behavior,
 *  partitions} (§2.2.3).  malloc'd. */
char *schema_definition_hash(json_object *attributes, const char *behavior,
                             json_object *partitions, int timestamps);

/* Canonical JSON (keys sorted by code unit, recursively, compact). */
char *schema_canonical_json(json_object *o);

/* Compiles one version entry of a resource.
 *   entry:   resources[R] of s3db.json (for schemaRegistry)
 *   version: the key into entry.versions ("v1"); NULL: currentVersion
 * FORMAT_21 short keys: base36 of schemaRegistry.mapping[path] (else of
 * the path's latest burned index, for older versions; a catalogue without
 * registry gives base36 of the key-list position).  FORMAT_V7: base62 of
 * the key-list position.  Paths with no index get short_key NULL.
 * s->hash is computed (schema_definition_hash), not copied.
 * The result owns references to the JSON it keeps. */
s3db_code schema_compile(const char *resource, json_object *entry, const char *version,
                         schema_format format, schema **out, s3db_error *err);
void schema_free(schema *s);

/* Lookups on a compiled schema (borrowed pointers; NULL when absent). */
const attr *schema_attr_by_path(const schema *s, const char *path);
const attr *schema_attr_by_key(const schema *s, const char *short_key);

/* ---- registry (21.x) ---------------------------------------------------- */

/* Brings entry.schemaRegistry up to date with the key list of
 * `attributes`: existing indices are kept, new keys get nextIndex++,
 * keys no longer present are burned (never reused).  Creates the
 * registry when missing (from a v7 catalogue: index = position). */
s3db_code schema_registry_update(json_object *entry, json_object *attributes,
                                 s3db_error *err);

/* ---- validation ---------------------------------------------------------- */

/* Validates `in` against the schema and returns the normalised record as
 * s3db.js stores it (strings trimmed, numbers/booleans converted,
 * defaults applied, json values stringified, datetimes normalised to ISO,
 * secrets NOT yet encrypted).  Unknown fields are refused, at the top
 * level and inside nested objects (we refuse rather than drop silently),
 * except when the schema has no attributes at all (a free-form resource,
 * copied as is).  `id` (even when declared) and undeclared top-level keys
 * starting with '_' or '$' are not fields: they are left out of *out.
 * On failure returns S3DB_ERR_VALIDATION with a message naming every
 * offending field ("field 'age': must be a number; field 'name': ...").
 * *out is a new object owned by the caller. */
s3db_code schema_validate(const schema *s, json_object *in, json_object **out,
                          s3db_error *err);

#endif /* S3DB_SCHEMA_H */
