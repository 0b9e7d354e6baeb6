/* SPDX-License-Identifier: MIT */
/* Configuration: libconfig files validated against a table before any
 * program starts. Every error is one line "FILE:LINE: KEY: expected ...";
 * the caller exits with EPSEC_EX_CONFIG. All libconfig calls live in conf.c. */
#ifndef EPSEC_CONF_H
#define EPSEC_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <libconfig.h>

#define EPSEC_EX_CONFIG 78 /* sysexits.h EX_CONFIG */

enum epsec_conf_type {
	EPSEC_CONF_INT,      /* int, within [min, max] */
	EPSEC_CONF_BOOL,     /* bool */
	EPSEC_CONF_STRING,   /* const char * (owned by the config_t) */
	EPSEC_CONF_URI,      /* string "scheme://rest" with a known scheme form */
	EPSEC_CONF_CHOICE,   /* string that must be one of `choices`; stored as int index */
	EPSEC_CONF_STRLIST,  /* array/list of strings -> struct epsec_strlist */
	EPSEC_CONF_URILIST,  /* array/list of URIs -> struct epsec_strlist */
	EPSEC_CONF_GROUP,    /* const config_setting_t * (validated by someone else) */
	EPSEC_CONF_LIST,     /* const config_setting_t * of a list of groups */
	EPSEC_CONF_SIZE,     /* bytes: 1048576, 1048576L or "100M" (K, M, G) -> int64_t, >= 0 */
	EPSEC_CONF_INTLIST,  /* array/list of integers in [min, max] -> struct epsec_intlist */
};

struct epsec_strlist {
	size_t n;
	const char **v; /* malloc'd array, strings owned by the config_t */
};

struct epsec_intlist {
	size_t n;
	long long *v; /* malloc'd */
};

struct epsec_conf_key {
	const char *name;
	enum epsec_conf_type type;
	bool required;
	size_t offset;                /* into the program's settings struct */
	long min, max;                /* EPSEC_CONF_INT, EPSEC_CONF_INTLIST */
	const char *const *choices;   /* EPSEC_CONF_CHOICE, NULL-terminated */
};

struct epsec_conf {
	config_t cfg;
	char *path;
};

/* Read `path` and fill `out` from `schema` (terminated by a {NULL} entry).
 * Keys absent from the file keep the values already in `out` (defaults).
 * Unknown keys, wrong types, out-of-range values, bad URIs and missing
 * required keys are each reported (all of them, not just the first) and
 * make it return -EINVAL. A file that cannot be read or parsed: -EINVAL
 * with the libconfig message. `conf` must be freed with epsec_conf_free
 * even on failure. */
int epsec_conf_load(struct epsec_conf *conf, const char *path,
		    const struct epsec_conf_key *schema, void *out);
void epsec_conf_free(struct epsec_conf *conf);
/* A daemon's own file: refuse unauthenticated tcp:// endpoints (see
 * epsec_topts_check_auth). 0 or -EINVAL (reported). */
int epsec_conf_check_auth(struct epsec_conf *conf, const struct epsec_conf_key *schema);
/* Lists filled by EPSEC_CONF_STRLIST/URILIST belong to the caller. */
void epsec_strlist_free(struct epsec_strlist *l);
void epsec_intlist_free(struct epsec_intlist *l);

/* Validate a group against a schema (for nested groups and plugins). */
int epsec_conf_apply(const config_setting_t *group, const struct epsec_conf_key *schema,
		     void *out);

/* "FILE:LINE: KEY: <fmt>" at error level; returns -EINVAL. */
int epsec_conf_error(const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Refuse keys of `group` missing from `allowed` (NULL-terminated). */
int epsec_conf_check_keys(const config_setting_t *group, const char *const *allowed);

/* A size as every epsec file takes it: an integer, or a string such as
 * "100M" (K, M, G). 0, or -EINVAL when it is neither (nothing reported). */
int epsec_conf_size(const config_setting_t *s, int64_t *out);

/* A string, or a non-empty list of non-empty strings (a plugin's "database"
 * or "rules"): 0, *out a NULL-terminated array of *n copies in one malloc'd
 * block that a single free(*out) releases. Each mistake is reported, with
 * `what` (may be NULL) in parentheses naming what the strings are, and
 * makes it -EINVAL; -ENOMEM is not reported. On failure *out is NULL. */
int epsec_conf_strlist(const config_setting_t *s, const char *what, char ***out, size_t *n);

/* Split "scheme://rest". 0, or -EINVAL when it is not a URI. The scheme is
 * copied into `scheme` (at most `len` bytes with NUL); *rest points into uri. */
int epsec_uri_split(const char *uri, char *scheme, size_t len, const char **rest);

/* Parse "allow"/"deny" style policy etc. through CHOICE; helpers for
 * reading only a few keys again later (the agent re-reads DEBUG_*). */
int epsec_conf_peek_int(const char *path, const char *key, int *value);
/* One string key, without a schema (other keys are not looked at): 0 and
 * a malloc'd copy in *value, -ENOENT no such key, -EINVAL unparseable or
 * not a string, else -errno reading the file. Quiet, like peek_int. */
int epsec_conf_peek_string(const char *path, const char *key, char **value);

/* The effective settings (schema + the filled `settings`, defaults
 * included, each key marked "# default" when the file did not set it, and
 * the X_options groups as written), in libconfig syntax: the -t output.
 * With `redact`, values of keys named *secret* or *password* are replaced. */
void epsec_conf_print(FILE *f, const struct epsec_conf *conf,
		      const struct epsec_conf_key *schema, const void *settings, bool redact);
/* Remember what the daemon runs with (all three must outlive the control
 * socket); epsec_conf_published gives it redacted, as malloc'd text:
 * 0, -ENOENT nothing published, -ENOMEM. Main thread only. */
void epsec_conf_publish(const struct epsec_conf *conf, const struct epsec_conf_key *schema,
			const void *settings);
int epsec_conf_published(char **text);

#endif
