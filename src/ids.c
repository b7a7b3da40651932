/*
 * ids.c — record ids: generation as s3db.js does it (nanoid's URL
 * alphabet, 22 characters unless idSize says otherwise, spec §5.1) and
 * the check every caller-supplied id passes before it becomes part of a
 * key.  Ids are refused rather than escaped: s3db.js writes them raw into
 * keys, so an id with '/' or '=' could not be read back faithfully.
 */
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include "db.h"

static const char id_alphabet[] =
	"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";

char *id_generate(int size)
{
	if (size <= 0)
		size = 22;
	unsigned char *bytes = malloc((size_t)size);
	char *id = malloc((size_t)size + 1);
	if (!bytes || !id || RAND_bytes(bytes, size) != 1) {
		free(bytes);
		free(id);
		return NULL;
	}
	for (int i = 0; i < size; i++)
		id[i] = id_alphabet[bytes[i] & 63];
	id[size] = '\0';
	free(bytes);
	return id;
}

/* The longest id we accept: keys stay well inside S3's 1,024 bytes. */
#define ID_MAX_BYTES 512

s3db_code s3db_id_check(const char *id, s3db_error *err)
{
	if (!id || !*id)
		return s3db_error_set(err, S3DB_ERR_BAD_ID, "id is empty");
	size_t len = strlen(id);
	if (len > ID_MAX_BYTES)
		return s3db_error_set(err, S3DB_ERR_BAD_ID, "id is %zu bytes long; the limit is %d",
		                      len, ID_MAX_BYTES);
	if (!s3db_utf8_valid(id, len))
		return s3db_error_set(err, S3DB_ERR_BAD_ID, "id is not valid UTF-8");
	if (!strcmp(id, ".") || !strcmp(id, ".."))
		return s3db_error_set(err, S3DB_ERR_BAD_ID, "id '%s' is reserved", id);
	for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return s3db_error_set(err, S3DB_ERR_BAD_ID,
			                      "id contains a control character (0x%02x)", *p);
		if (strchr("/\\=%", *p))
			return s3db_error_set(err, S3DB_ERR_BAD_ID,
			                      "id '%s' contains '%c', which s3db ids cannot hold", id, *p);
	}
	return S3DB_OK;
}
