/*
 * creds.c — credentials, region and endpoint from the environment and the
 * AWS shared files (see creds.h for the order).
 *
 * The INI reader is deliberately small: the AWS files are "key = value"
 * lines under [section] headers; continuation lines (used only for nested
 * settings such as s3 = ... blocks) are skipped, since none of the keys we
 * read is nested.  Nothing is cached: every call reads the environment and
 * the files afresh, so tests may change them between calls.
 */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "creds.h"
#include "util.h"

void creds_init(creds *c)
{
	memset(c, 0, sizeof *c);
}

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void creds_free(creds *c)
{
	if (!c)
		return;
	free(c->access_key);
	wipe_free(c->secret_key);
	wipe_free(c->session_token);
	free(c->region);
	free(c->endpoint);
	creds_init(c);
}

/* The variable's value, or NULL when unset or empty. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

int creds_ini_get(const char *path, const char *section, const char *key, char **value)
{
	*value = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return 3;
	char *line = NULL;
	size_t cap = 0;
	int in_section = 0, seen_section = 0, rc = 2;
	while (getline(&line, &cap, f) >= 0) {
		int indented = line[0] == ' ' || line[0] == '\t';
		char *s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *end = strrchr(s, ']');
			if (!end)
				continue;
			*end = '\0';
			in_section = strcmp(trim(s + 1), section) == 0;
			seen_section |= in_section;
			continue;
		}
		if (!in_section || indented)
			continue;
		char *eq = strchr(s, '=');
		if (!eq)
			continue;
		*eq = '\0';
		if (strcasecmp(trim(s), key) != 0)
			continue;
		*value = s3db_strdup(trim(eq + 1));
		rc = *value ? 0 : -1;
		break;  /* the first occurrence wins */
	}
	if (rc == 2 && seen_section)
		rc = 1;
	if (line) {
		OPENSSL_cleanse(line, cap);
		free(line);
	}
	fclose(f);
	return rc;
}

/* $HOME/rel, or the password database's home; NULL when neither. */
static char *home_path(const char *rel)
{
	const char *home = env("HOME");
	char buf[4096];
	struct passwd pw, *res = NULL;
	if (!home && getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
		home = res->pw_dir;
	return home ? s3db_asprintf("%s/%s", home, rel) : NULL;
}

/* Sets *dst to a copy of src when *dst is NULL; -1 when out of memory. */
static int fill(char **dst, const char *src)
{
	if (*dst || !src)
		return 0;
	*dst = s3db_strdup(src);
	return *dst ? 0 : -1;
}

static char *config_path(void)
{
	const char *env_file = env("AWS_CONFIG_FILE");
	return env_file ? s3db_strdup(env_file) : home_path(".aws/config");
}

static char *config_section(const char *profile)
{
	return strcmp(profile, "default") == 0 ? s3db_strdup("default")
	                                       : s3db_asprintf("profile %s", profile);
}

/* 1 when the config file has a section for profile. */
static int profile_in_config(const char *profile)
{
	char *path = config_path(), *section = config_section(profile), *v = NULL;
	int r = path && section ? creds_ini_get(path, section, "region", &v) : 3;
	free(v);
	free(path);
	free(section);
	return r == 0 || r == 1;
}

/* Reads the key pair (and token) of profile from the credentials file.
 * A missing file or profile leaves c anonymous unless the profile was
 * asked for explicitly. */
static s3db_code fill_from_profile(creds *c, const char *profile, int explicit_profile,
                                   s3db_error *err)
{
	const char *env_file = env("AWS_SHARED_CREDENTIALS_FILE");
	char *path = env_file ? s3db_strdup(env_file) : home_path(".aws/credentials");
	if (!path)
		return env_file ? s3db_error_set(err, S3DB_ERR_NOMEM, "credentials: out of memory")
		                : S3DB_OK;
	char *ak = NULL, *sk = NULL, *tok = NULL;
	s3db_code rc = S3DB_OK;
	int r1 = creds_ini_get(path, profile, "aws_access_key_id", &ak);
	int r2 = creds_ini_get(path, profile, "aws_secret_access_key", &sk);
	int r3 = creds_ini_get(path, profile, "aws_session_token", &tok);
	if (r1 < 0 || r2 < 0 || r3 < 0) {
		rc = s3db_error_set(err, S3DB_ERR_NOMEM, "credentials: out of memory");
	} else if (r1 >= 2) {
		if (explicit_profile && !profile_in_config(profile))
			rc = s3db_error_set(err, S3DB_ERR_BAD_CONNSTR,
			                    "credentials: AWS_PROFILE '%s' not found in %s",
			                    profile, path);
	} else if ((ak == NULL) != (sk == NULL)) {
		rc = s3db_error_set(err, S3DB_ERR_BAD_CONNSTR,
		                    "credentials: profile '%s' in %s has %s but not %s", profile,
		                    path, ak ? "aws_access_key_id" : "aws_secret_access_key",
		                    ak ? "aws_secret_access_key" : "aws_access_key_id");
	} else if (ak && *ak && sk && *sk) {
		c->access_key = ak;
		c->secret_key = sk;
		c->session_token = tok && *tok ? tok : NULL;
		c->source = "profile";
		ak = sk = NULL;
		if (c->session_token)
			tok = NULL;
	}
	free(ak);
	wipe_free(sk);
	wipe_free(tok);
	free(path);
	return rc;
}

/* region of the profile in the config file ([default] / [profile NAME]). */
static int region_from_config(creds *c, const char *profile)
{
	char *path = config_path();
	if (!path)
		return env("AWS_CONFIG_FILE") ? -1 : 0;
	char *section = config_section(profile);
	char *region = NULL;
	int r = section ? creds_ini_get(path, section, "region", &region) : -1;
	free(section);
	free(path);
	if (r < 0)
		return -1;
	if (region && *region)
		c->region = region;
	else
		free(region);
	return 0;
}

s3db_code creds_fill(creds *c, s3db_error *err)
{
	const char *profile = env("AWS_PROFILE");
	int explicit_profile = profile != NULL;
	if (!profile)
		profile = "default";

	if (!c->access_key && !c->secret_key) {
		const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
		if (ak && sk) {
			c->access_key = s3db_strdup(ak);
			c->secret_key = s3db_strdup(sk);
			if (!c->session_token)
				c->session_token = s3db_strdup(env("AWS_SESSION_TOKEN"));
			c->source = "env";
			if (!c->access_key || !c->secret_key ||
			    (env("AWS_SESSION_TOKEN") && !c->session_token))
				return s3db_error_set(err, S3DB_ERR_NOMEM, "credentials: out of memory");
		} else {
			s3db_code rc = fill_from_profile(c, profile, explicit_profile, err);
			if (rc != S3DB_OK)
				return rc;
		}
	}
	if (!c->region) {
		const char *r = env("AWS_REGION");
		if (!r)
			r = env("AWS_DEFAULT_REGION");
		if (r ? fill(&c->region, r) : region_from_config(c, profile))
			return s3db_error_set(err, S3DB_ERR_NOMEM, "credentials: out of memory");
	}
	if (fill(&c->endpoint, env("AWS_ENDPOINT_URL")))
		return s3db_error_set(err, S3DB_ERR_NOMEM, "credentials: out of memory");
	return S3DB_OK;
}

s3db_code creds_resolve(creds *c, s3db_error *err)
{
	creds_init(c);
	s3db_code rc = creds_fill(c, err);
	if (rc != S3DB_OK)
		creds_free(c);
	return rc;
}
