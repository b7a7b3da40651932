/*
 * fuzz_metadata.c — the metadata decoder on hostile input: header values
 * through metadataDecode, RFC 2047 and the v7 heuristics, then whole
 * objects (metadata lines "key: value" and a body after an empty line)
 * through record_decode in both formats and every behavior.  Must never
 * crash, leak or read out of bounds; decoding must always give an object.
 */
#include <stdint.h>
#include "codec.h"
#include "fuzz_common.h"
#include "record.h"

static const char *const behaviors[] = { "user-managed", "enforce-limits", "truncate-data",
	                                 "body-overflow", "body-only" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static schema *schemas[2][5];
	if (!schemas[0][0])
		for (int b = 0; b < 5; b++) {
			schemas[0][b] = fuzz_schema(behaviors[b], FORMAT_21);
			schemas[1][b] = fuzz_schema(behaviors[b], FORMAT_V7);
		}
	char *text = strndup((const char *)data, size);
	if (!text)
		return 0;
	/* single values */
	char *out = NULL;
	if (codec_metadata_decode(text, &out) == CODEC_VALUE)
		free(out);
	free(codec_rfc2047_decode(text));
	free(codec_v74_decode(text));
	free(codec_latin1_to_utf8(text, strlen(text)));

	/* a whole object */
	store_object obj;
	store_object_init(&obj);
	char *body = strstr(text, "\n\n");
	if (body) {
		*body = '\0';
		body += 2;
		obj.body = (unsigned char *)strdup(body);
		obj.body_len = strlen(body);
		obj.size = (int64_t)obj.body_len;
	}
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char *value = codec_rfc2047_decode(colon + 1 + (colon[1] == ' '));
		store_meta_set(&obj.meta, line, value ? value : "");
		free(value);
	}
	unsigned pick = size ? data[0] : 0;
	const schema *s = schemas[pick & 1][(pick >> 1) % 5];
	json_object *rec = NULL;
	if (record_decode(s, &obj, "fuzz-id", "secret", (pick >> 4) & 1, &rec, NULL) != S3DB_OK ||
	    !json_object_is_type(rec, json_type_object))
		abort();
	char *dump = s3db_json_stringify(rec, 0);
	free(dump);
	json_object_put(rec);
	store_object_free(&obj);
	free(text);
	return 0;
}
