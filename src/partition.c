/*
 * partition.c — partition reference keys (spec §2.5).
 *
 * A record has one zero-byte reference object per partition whose fields
 * are all present:  resource=R/partition=N/f1=v1[/f2=v2...]/id=I
 * Fields are sorted as JavaScript's localeCompare sorts them (ICU root
 * collation: punctuation, then digits, then letters, case-insensitive
 * first, lower case before upper case on ties); values pass the
 * partition's rule (maxlength:N truncates, "date" rules keep the day)
 * and are written as JavaScript's String() writes them.  Values holding
 * '/' cannot be stored faithfully: partition_keys refuses them
 * (S3DB_ERR_VALIDATION).
 *
 * Listing by values: a listing's `values` object is keyed by field name,
 * dots included ({"profile.country": "BR"}); partition_prefix puts the
 * leading run of given fields in the prefix and partition_segments gives
 * the "f=v" segments to filter the rest with, rules applied to both.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "db.h"

/* ICU root order of ASCII punctuation and symbols (lowest first). */
static const char icu_punct[] = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

/* (class, rank) of a character for the primary comparison. */
static int collate_primary(unsigned char c)
{
	if (isdigit(c))
		return 1000 + (c - '0');
	if (isalpha(c))
		return 2000 + (tolower(c) - 'a');
	const char *p = c ? strchr(icu_punct, c) : NULL;
	if (p)
		return 100 + (int)(p - icu_punct);
	return 3000 + c; /* everything else after letters */
}

/* localeCompare for ASCII field names. */
static int locale_compare(const char *a, const char *b)
{
	size_t i;
	for (i = 0; a[i] && b[i]; i++) {
		int pa = collate_primary((unsigned char)a[i]), pb = collate_primary((unsigned char)b[i]);
		if (pa != pb)
			return pa < pb ? -1 : 1;
	}
	if (a[i] || b[i])
		return a[i] ? 1 : -1;
	for (i = 0; a[i]; i++) {
		if (a[i] != b[i])
			return islower((unsigned char)a[i]) ? -1 : 1;
	}
	return 0;
}

static int locale_compare_qsort(const void *x, const void *y)
{
	return locale_compare(*(char *const *)x, *(char *const *)y);
}

/* The partition's field names in key order (NULL-terminated vector). */
static char **sorted_fields(json_object *fields)
{
	strv v;
	strv_init(&v);
	json_object_object_foreach(fields, k, val) {
		(void)val;
		strv_push(&v, k);
	}
	if (v.count > 1)
		qsort(v.items, v.count, sizeof(char *), locale_compare_qsort);
	return strv_steal(&v);
}

/* JavaScript String() of a JSON value, as partition values are written. */
static char *js_string(json_object *v)
{
	char num[32];
	switch (json_object_get_type(v)) {
	case json_type_string:
		return strdup(json_object_get_string(v));
	case json_type_boolean:
		return strdup(json_object_get_boolean(v) ? "true" : "false");
	case json_type_int:
	case json_type_double:
		codec_js_number(json_object_get_double(v), num);
		return strdup(num);
	case json_type_array: {
		sbuf b;
		sbuf_init(&b);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *item = json_object_array_get_idx(v, i);
			char *s = item ? js_string(item) : strdup("");
			if (i)
				sbuf_putc(&b, ',');
			if (s)
				sbuf_puts(&b, s);
			free(s);
		}
		return sbuf_steal(&b);
	}
	case json_type_object:
		return strdup("[object Object]");
	default:
		return NULL;
	}
}

/* Truncates s to n UTF-16 code units (whole characters). */
static void truncate_utf16(char *s, size_t n)
{
	size_t units = 0;
	for (char *p = s; *p;) {
		unsigned char c = (unsigned char)*p;
		size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
		size_t u = len == 4 ? 2 : 1;
		if (units + u > n) {
			*p = '\0';
			return;
		}
		units += u;
		p += len;
	}
}

/* The text a value takes in a reference key, rule applied; NULL for
 * JSON null. */
static char *value_text(json_object *v, const char *rule)
{
	if (!v)
		return NULL; /* absent or null: no reference */
	char *s = js_string(v);
	if (!s)
		return NULL;
	const char *ml = rule ? strstr(rule, "maxlength:") : NULL;
	if (ml && json_object_is_type(v, json_type_string)) {
		long n = strtol(ml + 10, NULL, 10);
		if (n >= 0 && s3db_utf16_len(s) > (size_t)n)
			truncate_utf16(s, (size_t)n);
	}
	if (rule && strstr(rule, "date") && json_object_is_type(v, json_type_string)) {
		char *t = strchr(s, 'T');
		int64_t ms;
		if (t && strchr(s, 'Z')) {
			*t = '\0';
		} else if (s3db_parse_iso8601(s, &ms) == 0) {
			char iso[40];
			s3db_iso8601(ms, iso, sizeof iso);
			iso[10] = '\0';
			free(s);
			s = strdup(iso);
		}
	}
	return s;
}

char *partition_value(json_object *record, const char *field, const char *rule)
{
	return value_text(s3db_json_get_path(record, field), rule);
}

/* The rule string of a partition field, or NULL. */
static const char *field_rule(json_object *fields, const char *field)
{
	json_object *rule = NULL;
	json_object_object_get_ex(fields, field, &rule);
	return json_object_is_type(rule, json_type_string) ? json_object_get_string(rule) : NULL;
}

/* A listing's values are keyed by field name, and a nested field's name
 * holds dots ("profile.country"): look the member up by that name, never
 * as a path (which would look for values.profile.country). */
static char *values_value(json_object *values, const char *field, const char *rule)
{
	json_object *v = NULL;
	if (!values || !json_object_object_get_ex(values, field, &v))
		return NULL;
	return value_text(v, rule);
}

s3db_code partition_keys(const s3db *db, const schema *s, json_object *record, const char *id,
                         char ***keys, s3db_error *err)
{
	strv out;
	strv_init(&out);
	*keys = NULL;
	json_object_object_foreach(s->partitions, pname, pdef) {
		json_object *fields = NULL;
		if (!json_object_object_get_ex(pdef, "fields", &fields) ||
		    !json_object_is_type(fields, json_type_object))
			continue;
		char **names = sorted_fields(fields);
		sbuf rel;
		sbuf_init(&rel);
		sbuf_printf(&rel, "resource=%s/partition=%s", s->resource, pname);
		int complete = names != NULL;
		s3db_code rc = S3DB_OK;
		for (char **f = names; f && *f && complete; f++) {
			char *value = partition_value(record, *f, field_rule(fields, *f));
			if (!value) {
				complete = 0;
				break;
			}
			if (strchr(value, '/'))
				rc = s3db_error_set(err, S3DB_ERR_VALIDATION,
				                    "field '%s': value '%s' contains '/', which a partition "
				                    "key cannot hold (partition %s)", *f, value, pname);
			sbuf_printf(&rel, "/%s=%s", *f, value);
			free(value);
		}
		s3db_free_strv(names);
		if (rc != S3DB_OK) {
			sbuf_free(&rel);
			strv_free(&out);
			return rc;
		}
		if (complete) {
			sbuf_printf(&rel, "/id=%s", id);
			char *full = rel.data ? conn_full_key(&db->conn, rel.data) : NULL;
			if (!full || strv_push_owned(&out, full)) {
				sbuf_free(&rel);
				strv_free(&out);
				return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
			}
		}
		sbuf_free(&rel);
	}
	*keys = strv_steal(&out);
	return *keys ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

s3db_code partition_prefix(const s3db *db, const schema *s, const char *partition,
                           json_object *values, char **prefix, int *exact, s3db_error *err)
{
	json_object *pdef = NULL, *fields = NULL;
	*prefix = NULL;
	*exact = 1;
	if (!json_object_object_get_ex(s->partitions, partition, &pdef) ||
	    !json_object_object_get_ex(pdef, "fields", &fields))
		return s3db_error_set(err, S3DB_ERR_NOT_FOUND, "resource '%s' has no partition '%s'",
		                      s->resource, partition);
	if (values) {
		json_object_object_foreach(values, vk, vv) {
			(void)vv;
			json_object *r;
			if (!json_object_object_get_ex(fields, vk, &r))
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "partition '%s' has no field '%s'", partition, vk);
		}
	}
	char **names = sorted_fields(fields);
	sbuf rel;
	sbuf_init(&rel);
	sbuf_printf(&rel, "resource=%s/partition=%s/", s->resource, partition);
	int run = 1;
	for (char **f = names; f && *f; f++) {
		char *value = values_value(values, *f, field_rule(fields, *f));
		if (!value) {
			if (values && json_object_object_get_ex(values, *f, NULL))
				*exact = 0;
			run = 0;
			continue;
		}
		if (run)
			sbuf_printf(&rel, "%s=%s/", *f, value);
		else
			*exact = 0;
		free(value);
	}
	s3db_free_strv(names);
	*prefix = rel.data ? conn_full_key(&db->conn, rel.data) : NULL;
	/* conn_full_key may drop the trailing '/': put it back */
	if (*prefix && !s3db_str_ends(*prefix, "/")) {
		char *p = s3db_asprintf("%s/", *prefix);
		free(*prefix);
		*prefix = p;
	}
	sbuf_free(&rel);
	return *prefix ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}

s3db_code partition_segments(const schema *s, const char *partition, json_object *values,
                             char ***segments, int *matchable, s3db_error *err)
{
	json_object *pdef = NULL, *fields = NULL;
	*segments = NULL;
	*matchable = 1;
	if (!json_object_object_get_ex(s->partitions, partition, &pdef) ||
	    !json_object_object_get_ex(pdef, "fields", &fields))
		return s3db_error_set(err, S3DB_ERR_NOT_FOUND, "resource '%s' has no partition '%s'",
		                      s->resource, partition);
	strv out;
	strv_init(&out);
	if (values) {
		json_object_object_foreach(values, f, v) {
			(void)v;
			char *value = values_value(values, f, field_rule(fields, f));
			if (!value) {
				*matchable = 0; /* no reference holds a null value */
				continue;
			}
			char *seg = s3db_asprintf("%s=%s", f, value);
			free(value);
			if (!seg || strv_push_owned(&out, seg)) {
				free(seg);
				strv_free(&out);
				return s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
			}
		}
	}
	*segments = strv_steal(&out);
	return *segments ? S3DB_OK : s3db_error_set(err, S3DB_ERR_NOMEM, NULL);
}
