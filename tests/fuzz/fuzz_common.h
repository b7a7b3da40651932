/*
 * fuzz_common.h — what the libFuzzer targets share: a compiled schema of
 * every attribute kind, built once, in the 21.x and the v7 format.
 */
#ifndef S3DB_FUZZ_COMMON_H
#define S3DB_FUZZ_COMMON_H

#include <stdlib.h>
#include <string.h>
#include "schema.h"

static const char fuzz_attributes[] =
	"{\"name\":\"string|optional\",\"email\":\"email|optional\",\"age\":\"number|optional\","
	"\"score\":\"number|integer:true|optional\",\"active\":\"boolean|optional\","
	"\"tags\":\"array|items:string|optional\",\"ratings\":\"array|items:number|optional\","
	"\"counts\":\"array|items:number|integer:true|optional\","
	"\"profile\":{\"$$type\":\"object|optional\",\"bio\":\"string|optional\",\"country\":\"string|optional\"},"
	"\"settings\":\"object|optional\",\"meta\":\"json|optional\",\"born\":\"date|optional\","
	"\"seen\":\"datetime|optional\",\"day\":\"dateonly|optional\",\"password\":\"secret|optional\"}";

/* A schema with fuzz_attributes, `behavior` and `format` (caller frees). */
static schema *fuzz_schema(const char *behavior, schema_format format)
{
	json_object *attrs = json_tokener_parse(fuzz_attributes);
	json_object *parts = json_object_new_object();
	json_object *ve = json_object_new_object();
	json_object_object_add(ve, "attributes", attrs);
	json_object_object_add(ve, "behavior", json_object_new_string(behavior));
	json_object_object_add(ve, "timestamps", json_object_new_boolean(0));
	json_object_object_add(ve, "partitions", parts);
	json_object *versions = json_object_new_object();
	const char *v = format == FORMAT_V7 ? "v0" : "v1";
	json_object_object_add(versions, v, ve);
	json_object *entry = json_object_new_object();
	json_object_object_add(entry, "currentVersion", json_object_new_string(v));
	json_object_object_add(entry, "versions", versions);
	if (format == FORMAT_21)
		schema_registry_update(entry, attrs, NULL);
	schema *s = NULL;
	if (schema_compile("fuzz", entry, NULL, format, &s, NULL) != S3DB_OK)
		abort();
	json_object_put(entry);
	return s;
}

#endif
