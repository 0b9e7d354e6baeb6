/* SPDX-License-Identifier: MIT */
/* The X_options groups of configuration files (see topts.h): checked here
 * against the URIs they go with, and recorded per URI for the link layer,
 * so no daemon has to carry transport options around itself. */
#include "config.h"
#include "topts.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SUFFIX "_options"
#define SCHEME_MAX 32

struct entry {
	const char *uri;                 /* owned by the config_t */
	const config_setting_t *opts;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static size_t n_entries, cap_entries;

static bool is_uri_key(const struct epsec_conf_key *k)
{
	return k->type == EPSEC_CONF_URI || k->type == EPSEC_CONF_URILIST;
}

/* The URI key of `schema` that `name` is the X_options of, or NULL. */
static const struct epsec_conf_key *owner_of(const struct epsec_conf_key *schema,
					     const char *name)
{
	size_t n = strlen(name), s = strlen(SUFFIX);

	if (n <= s || strcmp(name + n - s, SUFFIX))
		return NULL;
	for (; schema->name; schema++)
		if (is_uri_key(schema) && strlen(schema->name) == n - s &&
		    !strncmp(schema->name, name, n - s))
			return schema;
	return NULL;
}

bool epsec_topts_companion(const struct epsec_conf_key *schema, const char *name)
{
	return owner_of(schema, name) != NULL;
}

/* The URIs of key `uris` (a string or a list of strings), i-th or NULL. */
static const char *uri_at(const config_setting_t *uris, int i)
{
	const config_setting_t *e;

	if (!uris)
		return NULL;
	if (config_setting_type(uris) == CONFIG_TYPE_STRING)
		return i == 0 ? config_setting_get_string(uris) : NULL;
	if (!config_setting_is_array(uris) && !config_setting_is_list(uris))
		return NULL;
	e = config_setting_get_elem(uris, (unsigned)i);
	return e && config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e)
								 : NULL;
}

static bool has_scheme(const char *uri, const char *scheme)
{
	char s[SCHEME_MAX];

	return epsec_uri_split(uri, s, sizeof(s), NULL) == 0 && !strcmp(s, scheme);
}

static int record(const char *uri, const config_setting_t *opts)
{
	int r = 0;

	pthread_mutex_lock(&lock);
	if (n_entries == cap_entries) {
		size_t cap = cap_entries ? cap_entries * 2 : 8;
		struct entry *e = realloc(entries, cap * sizeof(*e));

		if (e) {
			entries = e;
			cap_entries = cap;
		}
	}
	if (n_entries < cap_entries)
		entries[n_entries++] = (struct entry){ uri, opts };
	else
		r = -ENOMEM;
	pthread_mutex_unlock(&lock);
	return r;
}

/* One scheme's group: it must serve at least one URI of the key. */
static int apply_scheme(const config_setting_t *g, const struct epsec_conf_key *key,
			const config_setting_t *uris)
{
	const char *scheme = config_setting_name(g), *uri;
	bool used = false;
	int i, r = 0;

	if (!config_setting_is_group(g))
		return epsec_conf_error(g, "expected a group of %s:// options such as { key = value; }",
					scheme);
	for (i = 0; (uri = uri_at(uris, i)) && !r; i++)
		if (has_scheme(uri, scheme)) {
			used = true;
			r = record(uri, g);
		}
	if (!used && !r)
		r = epsec_conf_error(g, "no %s:// URI in %s to apply these options to", scheme,
				     key->name);
	return r;
}

static int apply_one(const config_setting_t *group, const config_setting_t *s,
		     const struct epsec_conf_key *key)
{
	const config_setting_t *uris = config_setting_get_member(group, key->name);
	int i, n, r, ret = 0;

	if (!config_setting_is_group(s))
		return epsec_conf_error(s, "expected a group with one group per scheme, such as "
					   "{ unix = { allow_uids = [ 0 ]; }; }");
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		r = apply_scheme(config_setting_get_elem(s, (unsigned)i), key, uris);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

/* ------------------------------------------------------------ secure by default */

/* A tcp:// link is authenticated by CURVE (the listener's secret key, the
 * connecting side's key pair); without it any local user, or any host
 * that reaches the port, could join as a peer. Only an explicit, loudly
 * named insecure_plaintext = true; accepts that. */
static bool tcp_authenticated(const config_setting_t *tcp)
{
	int plain = 0;

	if (!tcp)
		return false;
	if (config_setting_get_member(tcp, "curve_secret_key") ||
	    config_setting_get_member(tcp, "curve_key"))
		return true;
	return config_setting_lookup_bool(tcp, "insecure_plaintext", &plain) == CONFIG_TRUE &&
	       plain;
}

static int check_tcp(const config_setting_t *group, const struct epsec_conf_key *key)
{
	const config_setting_t *uris = config_setting_get_member(group, key->name), *opts, *tcp;
	char name[128];
	const char *uri;

	snprintf(name, sizeof(name), "%s%s", key->name, SUFFIX);
	opts = config_setting_get_member(group, name);
	tcp = opts && config_setting_is_group(opts) ? config_setting_get_member(opts, "tcp") : NULL;
	for (int i = 0; (uri = uri_at(uris, i)); i++)
		if (has_scheme(uri, "tcp") && !tcp_authenticated(tcp))
			return epsec_conf_error(uris, "%s is not authenticated: any local user or host "
						"could join as a peer; give it CURVE keys in "
						"%s = { tcp = { ... }; } (epsecctl keygen, "
						"doc/transports.md), or write insecure_plaintext = "
						"true; there to accept that", uri, name);
	return 0;
}

static int check_all_tcp(const config_setting_t *group, const struct epsec_conf_key *schema)
{
	int r, ret = 0;

	for (; schema->name; schema++) {
		if (!is_uri_key(schema))
			continue;
		r = check_tcp(group, schema);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

int epsec_topts_check_auth(const config_setting_t *group, const struct epsec_conf_key *schema)
{
	return group ? check_all_tcp(group, schema) : 0;
}

int epsec_topts_apply(const config_setting_t *group, const struct epsec_conf_key *schema)
{
	int i, n = config_setting_length(group), r, ret = 0;

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const struct epsec_conf_key *key = owner_of(schema, config_setting_name(s));

		if (!key)
			continue;
		r = apply_one(group, s, key);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

void epsec_topts_forget(const config_t *cfg)
{
	size_t i, j = 0;

	pthread_mutex_lock(&lock);
	for (i = 0; i < n_entries; i++)
		if (entries[i].opts->config != cfg)
			entries[j++] = entries[i];
	n_entries = j;
	if (!n_entries) {
		free(entries);
		entries = NULL;
		cap_entries = 0;
	}
	pthread_mutex_unlock(&lock);
}

/* The newest file loaded wins, should one URI be recorded twice. */
const config_setting_t *epsec_topts_find(const char *uri)
{
	const config_setting_t *found = NULL;
	size_t i;

	if (!uri)
		return NULL;
	pthread_mutex_lock(&lock);
	for (i = n_entries; i-- > 0 && !found;)
		if (!strcmp(entries[i].uri, uri))
			found = entries[i].opts;
	pthread_mutex_unlock(&lock);
	return found;
}
