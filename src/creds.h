/*
 * creds.h — where the S3 backend's credentials, region and endpoint come
 * from when the connection string does not say, in the order the AWS CLI
 * and SDKs use:
 *
 *   credentials  1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
 *                   (+ AWS_SESSION_TOKEN) from the environment;
 *                2. profile AWS_PROFILE (default "default") in
 *                   AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials
 *                   (aws_access_key_id, aws_secret_access_key,
 *                   aws_session_token);
 *                3. none: the requests go unsigned (anonymous).
 *   region       AWS_REGION, then AWS_DEFAULT_REGION, then `region` of
 *                the profile in AWS_CONFIG_FILE or ~/.aws/config
 *                ([default] or [profile NAME]).
 *   endpoint     AWS_ENDPOINT_URL.
 *
 * ~ is $HOME, or the password database's home when HOME is unset.
 * Empty environment variables count as unset.
 *
 * Ownership: every string in a creds belongs to it (creds_free).  Secrets
 * are wiped from memory when freed and never appear in error messages.
 */
#ifndef S3DB_CREDS_H
#define S3DB_CREDS_H

#include "s3db.h"

typedef struct creds {
	char *access_key;      /* NULL: anonymous                          */
	char *secret_key;
	char *session_token;   /* NULL when none                           */
	char *region;          /* NULL when nothing says                   */
	char *endpoint;        /* NULL when nothing says                   */
	const char *source;    /* static: "env", "profile", or NULL        */
} creds;

void creds_init(creds *c);
/* Frees (and wipes) every field; c is left initialised. */
void creds_free(creds *c);

/* Fills the fields of c that are NULL: the key pair (with the token) only
 * when access_key and secret_key are both NULL, region when region is NULL,
 * endpoint when endpoint is NULL.  Returns S3DB_OK also when nothing was
 * found (anonymous access); S3DB_ERR_BAD_CONNSTR when AWS_PROFILE names a
 * profile that no file has, or the profile lacks one half of the key pair;
 * S3DB_ERR_NOMEM. */
s3db_code creds_fill(creds *c, s3db_error *err);

/* creds_init + creds_fill. */
s3db_code creds_resolve(creds *c, s3db_error *err);

/* Reads `key` of [section] in the INI file at path: *value (malloc'd) or
 * NULL when the file, the section or the key is absent.  Lines are
 * "key = value" with blanks trimmed; '#' and ';' start comment lines;
 * section names are matched exactly, key names without regard to case.
 * Returns 0, 1 when the section exists but not the key (*value NULL),
 * 2 when the section is absent, 3 when the file cannot be read, -1 when
 * out of memory. */
int creds_ini_get(const char *path, const char *section, const char *key, char **value);

#endif /* S3DB_CREDS_H */
