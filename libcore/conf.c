/* SPDX-License-Identifier: MIT */
/* Configuration: the only file that calls libconfig. A program's whole file
 * is checked against a table before anything starts, and every mistake in
 * it is reported (one line each, "FILE:LINE: KEY: expected ...") at once. */
#include "config.h"
#include "conf.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "topts.h"

#define EPSEC_LOG_SRC "conf"

#define URI_HINT "a URI such as unix:///run/epsec/mux.sock or tcp://HOST:PORT"
#define UNIX_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

/* ------------------------------------------------------------ locations */

/* "engine[0].action": names joined by dots, list elements as [i]. */
static void setting_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *parent = config_setting_parent(s);
	size_t used;

	buf[0] = '\0';
	if (!parent)
		return;
	setting_path(parent, buf, len);
	used = strlen(buf);
	if (config_setting_name(s))
		snprintf(buf + used, len - used, "%s%s", used ? "." : "", config_setting_name(s));
	else
		snprintf(buf + used, len - used, "[%d]", config_setting_index(s));
}

/* libconfig names an included file as the @include line wrote it, though
 * it opened it in the include directory: name the file that was read. */
static const char *display_file(const config_t *cfg, const char *file, char *buf, size_t len)
{
	const char *main_file = cfg->num_filenames > 0 ? cfg->filenames[0] : NULL;

	if (!file || file[0] == '/' || !config_get_include_dir(cfg) ||
	    (main_file && !strcmp(file, main_file)))
		return file;
	snprintf(buf, len, "%s/%s", config_get_include_dir(cfg), file);
	return buf;
}

/* Settings read from a file know it; failing that (a root group read from
 * a string), libconfig's first file name is the main file. */
static const char *setting_file(const config_setting_t *s, char *buf, size_t len)
{
	const config_t *cfg = s->config;

	for (; s; s = config_setting_parent(s))
		if (config_setting_source_file(s))
			return display_file(cfg, config_setting_source_file(s), buf, len);
	if (cfg && cfg->num_filenames > 0 && cfg->filenames[0])
		return cfg->filenames[0];
	return "(config)";
}

static unsigned setting_line(const config_setting_t *s)
{
	unsigned line = config_setting_source_line(s);

	return line ? line : 1;
}

/* One error line about `s`, or about its member `child` when that is what
 * is missing (then the location is the enclosing group's). */
static int vreport(const config_setting_t *s, const char *child, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static int vreport(const config_setting_t *s, const char *child, const char *fmt, va_list ap)
{
	char key[512], what[1024], file[PATH_MAX];
	size_t used;

	vsnprintf(what, sizeof(what), fmt, ap);
	if (!s) {
		/* A plugin reporting on its absent (NULL) options group. */
		epsec_log(EPSEC_LOG_ERR, EPSEC_LOG_SRC, "%s%s%s", child ? child : "",
			  child ? ": " : "", what);
		return -EINVAL;
	}
	setting_path(s, key, sizeof(key));
	if (child) {
		used = strlen(key);
		snprintf(key + used, sizeof(key) - used, "%s%s", used ? "." : "", child);
	}
	if (key[0])
		epsec_log(EPSEC_LOG_ERR, EPSEC_LOG_SRC, "%s:%u: %s: %s",
			  setting_file(s, file, sizeof(file)), setting_line(s), key, what);
	else
		epsec_log(EPSEC_LOG_ERR, EPSEC_LOG_SRC, "%s:%u: %s",
			  setting_file(s, file, sizeof(file)), setting_line(s), what);
	return -EINVAL;
}

int epsec_conf_error(const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vreport(s, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

static int report_missing(const config_setting_t *group, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int report_missing(const config_setting_t *group, const char *key, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vreport(group, key, fmt, ap);
	va_end(ap);
	return ret;
}

/* ------------------------------------------------------------ URIs */

int epsec_uri_split(const char *uri, char *scheme, size_t len, const char **rest)
{
	size_t n = 0;

	if (!uri || !(uri[0] >= 'a' && uri[0] <= 'z'))
		return -EINVAL;
	while ((uri[n] >= 'a' && uri[n] <= 'z') || (uri[n] >= '0' && uri[n] <= '9') ||
	       uri[n] == '+' || uri[n] == '.' || uri[n] == '-')
		n++;
	if (strncmp(uri + n, "://", 3) != 0)
		return -EINVAL;
	if (scheme) {
		if (n >= len)
			return -ENAMETOOLONG;
		memcpy(scheme, uri, n);
		scheme[n] = '\0';
	}
	if (rest)
		*rest = uri + n + 3;
	return 0;
}

/* A decimal number in [lo, hi] filling all of s[0..n). */
static bool number_in(const char *s, size_t n, unsigned long long lo, unsigned long long hi)
{
	unsigned long long v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v >= lo && v <= hi;
}

static bool all_of(const char *s, size_t n, const char *set)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr(set, s[i]) || s[i] == '\0')
			return false;
	return true;
}

#define DIGITS "0123456789"
#define HEX DIGITS "abcdefABCDEF"
#define NAME_CHARS DIGITS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_"

/* HOST:PORT with HOST = *, IPv4, a name, or [v6]. */
static bool tcp_address_ok(const char *a)
{
	const char *colon = strrchr(a, ':');
	size_t hlen;

	if (!colon || !number_in(colon + 1, strlen(colon + 1), 1, 65535))
		return false;
	hlen = (size_t)(colon - a);
	if (hlen == 1 && a[0] == '*')
		return true;
	if (hlen > 2 && a[0] == '[' && a[hlen - 1] == ']')
		return all_of(a + 1, hlen - 2, HEX ":.");
	return all_of(a, hlen, NAME_CHARS);
}

/* CID:PORT, CID a number or any/host/local (vsock and vmci). */
static bool cid_address_ok(const char *a)
{
	const char *colon = strchr(a, ':');
	size_t clen;

	if (!colon || !number_in(colon + 1, strlen(colon + 1), 0, UINT32_MAX - 1))
		return false;
	clen = (size_t)(colon - a);
	if ((clen == 3 && !strncmp(a, "any", 3)) || (clen == 4 && !strncmp(a, "host", 4)) ||
	    (clen == 5 && !strncmp(a, "local", 5)))
		return true;
	return number_in(a, clen, 0, UINT32_MAX);
}

static bool uri_ok(const char *uri)
{
	char scheme[32];
	const char *rest;

	if (epsec_uri_split(uri, scheme, sizeof(scheme), &rest) < 0)
		return false;
	if (!strcmp(scheme, "unix"))
		return rest[0] == '/' && rest[1] != '\0' && strlen(rest) < UNIX_PATH_MAX;
	if (!strcmp(scheme, "tcp"))
		return tcp_address_ok(rest);
	if (!strcmp(scheme, "vsock") || !strcmp(scheme, "vmci"))
		return cid_address_ok(rest);
	return rest[0] != '\0';
}

/* ------------------------------------------------------------ key checks */

/* Names of the allowed keys, from a plain list or from a schema. */
struct key_names {
	const char *const *list;
	const struct epsec_conf_key *schema;
};

static const char *key_name_at(const struct key_names *k, size_t i)
{
	return k->list ? k->list[i] : k->schema[i].name;
}

static bool key_known(const struct key_names *k, const char *name)
{
	for (size_t i = 0; key_name_at(k, i); i++)
		if (!strcmp(key_name_at(k, i), name))
			return true;
	return false;
}

static void key_list(const struct key_names *k, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; key_name_at(k, i) && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					 key_name_at(k, i));
}

static int check_members(const config_setting_t *group, const struct key_names *k)
{
	char names[768];
	int ret = 0;

	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);

		if (key_known(k, config_setting_name(m)) ||
		    (k->schema && epsec_topts_companion(k->schema, config_setting_name(m))))
			continue;
		key_list(k, names, sizeof(names));
		ret = names[0] ? epsec_conf_error(m, "unknown key; expected one of: %s", names)
			       : epsec_conf_error(m, "unknown key; this group takes no keys");
	}
	return ret;
}

int epsec_conf_check_keys(const config_setting_t *group, const char *const *allowed)
{
	static const char *const none[] = { NULL };
	struct key_names k = { .list = allowed ? allowed : none };

	if (!group)
		return 0;
	if (!config_setting_is_group(group))
		return epsec_conf_error(group, "expected a group such as { key = value; }");
	return check_members(group, &k);
}

/* ------------------------------------------------------------ values */

static void choice_list(const char *const *choices, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; choices && choices[i] && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", choices[i]);
}

/* What a key of this kind should look like, for "expected ..." lines. */
static void describe(const struct epsec_conf_key *key, char *buf, size_t len)
{
	char list[512];

	switch (key->type) {
	case EPSEC_CONF_INT:
		if (key->min == 0 && key->max == 0)
			snprintf(buf, len, "an integer");
		else
			snprintf(buf, len, "an integer %ld..%ld", key->min, key->max);
		return;
	case EPSEC_CONF_BOOL:
		snprintf(buf, len, "true or false");
		return;
	case EPSEC_CONF_STRING:
		snprintf(buf, len, "a string");
		return;
	case EPSEC_CONF_URI:
		snprintf(buf, len, URI_HINT);
		return;
	case EPSEC_CONF_CHOICE:
		choice_list(key->choices, list, sizeof(list));
		snprintf(buf, len, "one of: %s", list);
		return;
	case EPSEC_CONF_STRLIST:
		snprintf(buf, len, "a list of strings such as [ \"a\", \"b\" ]");
		return;
	case EPSEC_CONF_URILIST:
		snprintf(buf, len, "a list of URIs such as [ \"unix:///run/epsec/mux.sock\" ]");
		return;
	case EPSEC_CONF_GROUP:
		snprintf(buf, len, "a group such as { key = value; }");
		return;
	case EPSEC_CONF_LIST:
		snprintf(buf, len, "a list of groups such as ( { key = value; } )");
		return;
	case EPSEC_CONF_SIZE:
		snprintf(buf, len, "a size in bytes such as 1048576 or \"100M\" (K, M, G)");
		return;
	case EPSEC_CONF_INTLIST:
		snprintf(buf, len, "a list of integers %ld..%ld such as [ 0, 33 ]", key->min, key->max);
		return;
	}
	snprintf(buf, len, "a known type");
}

static int bad_type(const config_setting_t *s, const struct epsec_conf_key *key)
{
	char what[640];

	describe(key, what, sizeof(what));
	return epsec_conf_error(s, "expected %s", what);
}

static bool is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64;
}

static int apply_int(const config_setting_t *s, const struct epsec_conf_key *key, int *out)
{
	long long v;
	long lo = key->min, hi = key->max;

	if (!is_int(s))
		return bad_type(s, key);
	/* libconfig silently wraps a big value without the L suffix: only
	 * 64-bit (INT64) values can be range-checked beyond int. */
	v = config_setting_get_int64(s);
	if (lo == 0 && hi == 0) {
		lo = INT_MIN;
		hi = INT_MAX;
	}
	if (v < lo || v > hi || v < INT_MIN || v > INT_MAX)
		return epsec_conf_error(s, "expected an integer %ld..%ld, got %lld", lo, hi, v);
	*out = (int)v;
	return 0;
}

static int apply_choice(const config_setting_t *s, const struct epsec_conf_key *key, int *out)
{
	char list[512];
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return bad_type(s, key);
	v = config_setting_get_string(s);
	for (int i = 0; key->choices && key->choices[i]; i++) {
		if (!strcmp(key->choices[i], v)) {
			*out = i;
			return 0;
		}
	}
	choice_list(key->choices, list, sizeof(list));
	return epsec_conf_error(s, "expected one of: %s, got \"%s\"", list, v);
}

static int apply_uri(const config_setting_t *s, const struct epsec_conf_key *key, const char **out)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return bad_type(s, key);
	if (!uri_ok(config_setting_get_string(s)))
		return epsec_conf_error(s, "expected " URI_HINT ", got \"%s\"",
					config_setting_get_string(s));
	*out = config_setting_get_string(s);
	return 0;
}

static bool is_sequence(const config_setting_t *s)
{
	return config_setting_is_array(s) || config_setting_is_list(s);
}

/* Every element is checked (and reported) before anything is stored. */
static int apply_strlist(const config_setting_t *s, const struct epsec_conf_key *key,
			 struct epsec_strlist *out)
{
	int n, ret = 0;
	const char **v;

	if (!is_sequence(s))
		return bad_type(s, key);
	n = config_setting_length(s);
	if (key->required && n == 0)
		return epsec_conf_error(s, "expected at least one entry");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			ret = epsec_conf_error(e, "expected a string");
		else if (key->type == EPSEC_CONF_URILIST && !uri_ok(config_setting_get_string(e)))
			ret = epsec_conf_error(e, "expected " URI_HINT ", got \"%s\"",
					       config_setting_get_string(e));
	}
	if (ret < 0)
		return ret;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		v[i] = config_setting_get_string_elem(s, i);
	epsec_strlist_free(out);
	out->n = (size_t)n;
	out->v = v;
	return 0;
}

/* "100M" style sizes: what operators write for limits. */
static int parse_size(const char *str, long long *out)
{
	char *end;
	unsigned long long v, mult = 1;

	errno = 0;
	v = strtoull(str, &end, 10);
	if (errno || end == str || *str == '-')
		return -EINVAL;
	switch (*end) {
	case 'G': mult <<= 10; /* fall through */
	case 'M': mult <<= 10; /* fall through */
	case 'K': mult <<= 10; end++; break;
	default: break;
	}
	if (*end || v > (unsigned long long)LLONG_MAX / mult)
		return -EINVAL;
	*out = (long long)(v * mult);
	return 0;
}

int epsec_conf_size(const config_setting_t *s, int64_t *out)
{
	long long v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (parse_size(config_setting_get_string(s), &v) < 0)
			return -EINVAL;
	} else if (is_int(s)) {
		v = config_setting_get_int64(s);
	} else {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int apply_size(const config_setting_t *s, const struct epsec_conf_key *key, int64_t *out)
{
	int64_t v;

	if (epsec_conf_size(s, &v) < 0 || v < 0)
		return bad_type(s, key);
	*out = v;
	return 0;
}

/* Plugins' "a path or a list of paths" keys, checked alike in every plugin. */
static int strlist_error(const config_setting_t *s, const char *what, const char *expected)
{
	return what ? epsec_conf_error(s, "expected %s (%s)", expected, what)
		    : epsec_conf_error(s, "expected %s", expected);
}

static int strlist_entry(const config_setting_t *e, const char *what)
{
	if (config_setting_type(e) != CONFIG_TYPE_STRING)
		return strlist_error(e, what, "a string");
	if (!config_setting_get_string(e)[0])
		return strlist_error(e, what, "a non-empty string");
	return 0;
}

/* Every entry is checked (and reported) before anything is copied. */
static int strlist_check(const config_setting_t *s, const char *what, int *count)
{
	int n, ret = 0, r;

	*count = 1;
	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		return strlist_entry(s, what);
	if (!is_sequence(s))
		return strlist_error(s, what, "a string or a list of strings");
	n = config_setting_length(s);
	if (n == 0)
		return strlist_error(s, what, "at least one string");
	for (int i = 0; i < n; i++)
		if ((r = strlist_entry(config_setting_get_elem(s, (unsigned)i), what)) < 0)
			ret = r;
	*count = n;
	return ret;
}

static const char *strlist_at(const config_setting_t *s, int i)
{
	return config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s)
							    : config_setting_get_string_elem(s, i);
}

/* One block, pointers then the strings: the plugin keeps it past the
 * config_t and frees it without a host call. */
int epsec_conf_strlist(const config_setting_t *s, const char *what, char ***out, size_t *n)
{
	size_t bytes = 0, len;
	int count, r;
	char **v, *p;

	*out = NULL;
	*n = 0;
	r = strlist_check(s, what, &count);
	if (r < 0)
		return r;
	for (int i = 0; i < count; i++)
		bytes += strlen(strlist_at(s, i)) + 1;
	v = malloc(((size_t)count + 1) * sizeof(*v) + bytes);
	if (!v)
		return -ENOMEM;
	p = (char *)(v + count + 1);
	for (int i = 0; i < count; i++) {
		len = strlen(strlist_at(s, i)) + 1;
		v[i] = memcpy(p, strlist_at(s, i), len);
		p += len;
	}
	v[count] = NULL;
	*out = v;
	*n = (size_t)count;
	return 0;
}

static int apply_intlist(const config_setting_t *s, const struct epsec_conf_key *key,
			 struct epsec_intlist *out)
{
	int n, ret = 0;
	long long *v;

	if (!is_sequence(s))
		return bad_type(s, key);
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		long long x = is_int(e) ? config_setting_get_int64(e) : 0;

		if (!is_int(e) || x < key->min || x > key->max)
			ret = epsec_conf_error(e, "expected an integer %ld..%ld", key->min, key->max);
	}
	if (ret < 0)
		return ret;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		v[i] = config_setting_get_int64(config_setting_get_elem(s, (unsigned)i));
	epsec_intlist_free(out);
	out->n = (size_t)n;
	out->v = v;
	return 0;
}

static int apply_groups(const config_setting_t *s, const struct epsec_conf_key *key,
			const config_setting_t **out)
{
	int n, ret = 0;

	if (key->type == EPSEC_CONF_GROUP) {
		if (!config_setting_is_group(s))
			return bad_type(s, key);
		*out = s;
		return 0;
	}
	if (!config_setting_is_list(s))
		return bad_type(s, key);
	n = config_setting_length(s);
	if (key->required && n == 0)
		return epsec_conf_error(s, "expected at least one { ... } group");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (!config_setting_is_group(e))
			ret = epsec_conf_error(e, "expected a group such as { key = value; }");
	}
	if (ret == 0)
		*out = s;
	return ret;
}

static int apply_key(const config_setting_t *s, const struct epsec_conf_key *key, void *out)
{
	char *field = (char *)out + key->offset;

	switch (key->type) {
	case EPSEC_CONF_INT:
		return apply_int(s, key, (int *)field);
	case EPSEC_CONF_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return bad_type(s, key);
		*(bool *)field = config_setting_get_bool(s);
		return 0;
	case EPSEC_CONF_STRING:
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return bad_type(s, key);
		*(const char **)field = config_setting_get_string(s);
		return 0;
	case EPSEC_CONF_URI:
		return apply_uri(s, key, (const char **)field);
	case EPSEC_CONF_CHOICE:
		return apply_choice(s, key, (int *)field);
	case EPSEC_CONF_STRLIST:
	case EPSEC_CONF_URILIST:
		return apply_strlist(s, key, (struct epsec_strlist *)field);
	case EPSEC_CONF_GROUP:
	case EPSEC_CONF_LIST:
		return apply_groups(s, key, (const config_setting_t **)field);
	case EPSEC_CONF_SIZE:
		return apply_size(s, key, (int64_t *)field);
	case EPSEC_CONF_INTLIST:
		return apply_intlist(s, key, (struct epsec_intlist *)field);
	}
	return epsec_conf_error(s, "expected a known type (schema error)");
}

static int apply_missing(const config_setting_t *group, const struct epsec_conf_key *key)
{
	char what[640];

	describe(key, what, sizeof(what));
	return report_missing(group, key->name, "missing required key; expected %s", what);
}

int epsec_conf_apply(const config_setting_t *group, const struct epsec_conf_key *schema,
		     void *out)
{
	struct key_names k = { .schema = schema };
	int ret = 0, r;

	if (group && !config_setting_is_group(group))
		return epsec_conf_error(group, "expected a group such as { key = value; }");
	if (group)
		ret = check_members(group, &k);
	for (const struct epsec_conf_key *key = schema; key->name; key++) {
		const config_setting_t *s = group ? config_setting_get_member(group, key->name) : NULL;

		r = s ? apply_key(s, key, out) : key->required ? apply_missing(group, key) : 0;
		if (r < 0 && ret == 0)
			ret = r;
	}
	r = group ? epsec_topts_apply(group, schema) : 0;
	return ret ? ret : r;
}

void epsec_strlist_free(struct epsec_strlist *l)
{
	if (!l)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ------------------------------------------------------------ files */

#define INCLUDE_FILES 64 /* distinct files checked per load, at most */

static char *slurp(const char *path, size_t *size)
{
	size_t len = 0, cap = 4096, n;
	char *buf = malloc(cap), *grown;
	FILE *f = buf ? fopen(path, "r") : NULL;

	if (!f) {
		free(buf);
		return NULL;
	}
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len > 1)
			continue;
		grown = realloc(buf, cap * 2);
		if (!grown) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = grown;
		cap *= 2;
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	*size = len;
	return buf;
}

/* The files an @include check has read (each once: includes may loop). */
struct include_check {
	const char *dir;
	struct stat seen[INCLUDE_FILES];
	size_t n;
	char *why;
	size_t len;
};

static int check_includes(struct include_check *c, const char *file);

/* The path of the @include whose quoted name starts at *p (before end),
 * as libconfig 1.5's scanner builds it: \\ and \" stand for \ and ",
 * another backslash is dropped, and each run of plain characters ends at
 * a NUL (it is appended as a C string). Joined to `dir` unless absolute;
 * *p moves past it. NULL when unterminated. */
static char *include_path(const char *dir, const char **p, const char *end)
{
	const char *s = *p;
	size_t n = 0, dlen = strlen(dir);
	char *out = malloc(dlen + 2 + (size_t)(end - s));
	bool cut = false;

	if (!out)
		return NULL;
	for (; s < end && *s != '"'; s++) {
		if (*s == '\\' && s + 1 < end && (s[1] == '\\' || s[1] == '"')) {
			out[n++] = *++s;
			cut = false;
		} else if (*s == '\\') {
			cut = false;
		} else if (*s == '\0') {
			cut = true;
		} else if (!cut) {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	*p = s;
	if (s == end) {
		free(out);
		return NULL;
	}
	if (out[0] != '/') {
		memmove(out + dlen + 1, out, n + 1);
		memcpy(out, dir, dlen);
		out[dlen] = '/';
	}
	return out;
}

/* One @include: a name that cannot be opened is libconfig's to report;
 * anything else but a regular file is refused here. */
static int check_include(struct include_check *c, const char *file, unsigned line,
			 const char *inc)
{
	struct stat st;

	if (stat(inc, &st) < 0)
		return 0;
	if (!S_ISREG(st.st_mode)) {
		snprintf(c->why, c->len, "%s:%u: @include \"%s\": not a regular file", file, line,
			 inc);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		if (c->seen[i].st_dev == st.st_dev && c->seen[i].st_ino == st.st_ino)
			return 0;
	if (c->n == INCLUDE_FILES)
		return 0;
	c->seen[c->n++] = st;
	return check_includes(c, inc);
}

/* libconfig 1.5 opens an @include naming a directory ("", ".") and its
 * scanner then exit()s the whole program ("input in flex scanner
 * failed"), which a running vsep re-reading its file must not do: every
 * included path, nested ones too (resolved against the include directory
 * as libconfig does), must be a regular file first. Comments are not
 * skipped, so a commented-out @include of a directory is refused too.
 * 0, or -1 with the reason in c->why. */
static int check_includes(struct include_check *c, const char *file)
{
	size_t size = 0;
	char *text = slurp(file, &size), *inc;
	const char *p, *q, *end;
	unsigned line = 1;
	int ret = 0;

	if (!text)
		return 0; /* libconfig says why it cannot read it */
	end = text + size;
	/* the text is NUL-terminated, so the prefix tests stop at end */
	for (p = text; p && ret == 0; line++) {
		q = p + strspn(p, " \t");
		if (!strncmp(q, "@include", 8) && (q[8] == ' ' || q[8] == '\t')) {
			q += 8 + strspn(q + 8, " \t");
			if (*q == '"') {
				q++;
				inc = include_path(c->dir, &q, end);
				if (inc)
					ret = check_include(c, file, line, inc);
				free(inc);
			}
		}
		p = memchr(p, '\n', (size_t)(end - p));
		if (p)
			p++;
	}
	free(text);
	return ret;
}

/* libconfig reports a missing file as "file I/O error" with no name and
 * resolves @include against the CWD: check the file first, and point
 * includes at the file's own directory. Returns 0, an errno, or -1 when
 * libconfig refused the text (its message is in cfg), or -2 when an
 * @include names no regular file (the message in `why`). */
static int read_config(config_t *cfg, const char *path, char *why, size_t len)
{
	struct include_check check = { .n = 0 };
	struct stat st = { .st_ino = 0 };
	char *copy;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return errno;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return EISDIR;
	}
	fclose(f);
	check.seen[check.n++] = st;
	copy = strdup(path);
	if (!copy)
		return ENOMEM;
	config_set_include_dir(cfg, dirname(copy));
	free(copy);
	check.dir = config_get_include_dir(cfg);
	check.why = why;
	check.len = len;
	if (check_includes(&check, path) < 0)
		return -2;
	return config_read_file(cfg, path) == CONFIG_TRUE ? 0 : -1;
}

int epsec_conf_load(struct epsec_conf *conf, const char *path,
		    const struct epsec_conf_key *schema, void *out)
{
	char where[PATH_MAX];
	int err;

	memset(conf, 0, sizeof(*conf));
	config_init(&conf->cfg);
	conf->path = strdup(path);
	if (!conf->path)
		return -ENOMEM;
	err = read_config(&conf->cfg, path, where, sizeof(where));
	if (err == -2) {
		EPSEC_ERR("%s", where);
		return -EINVAL;
	}
	if (err < 0) {
		const char *file = config_error_file(&conf->cfg);

		if (!file || !strcmp(file, path))
			file = path;
		else
			file = display_file(&conf->cfg, file, where, sizeof(where));
		EPSEC_ERR("%s:%d: %s", file,
			  config_error_line(&conf->cfg), config_error_text(&conf->cfg));
		return -EINVAL;
	}
	if (err) {
		EPSEC_ERR("%s: cannot read: %s", path, strerror(err));
		return -EINVAL;
	}
	return epsec_conf_apply(config_root_setting(&conf->cfg), schema, out);
}

int epsec_conf_check_auth(struct epsec_conf *conf, const struct epsec_conf_key *schema)
{
	return epsec_topts_check_auth(config_root_setting(&conf->cfg), schema);
}

void epsec_conf_free(struct epsec_conf *conf)
{
	/* config_destroy zeroes the config_t, so a second call is harmless. */
	epsec_topts_forget(&conf->cfg);
	if (config_root_setting(&conf->cfg))
		config_destroy(&conf->cfg);
	free(conf->path);
	conf->path = NULL;
}

/* Read `path` and give `key`'s setting to `fn`. Quiet on purpose: the
 * agent calls it every few seconds and keeps its current settings when the
 * file is briefly broken. */
static int peek(const char *path, const char *key,
		int (*fn)(const config_setting_t *s, void *out), void *out)
{
	const config_setting_t *s;
	char why[PATH_MAX + 64];
	config_t cfg;
	int err, ret;

	config_init(&cfg);
	err = read_config(&cfg, path, why, sizeof(why));
	if (err)
		ret = err < 0 ? -EINVAL : -err;
	else if (!(s = config_lookup(&cfg, key)))
		ret = -ENOENT;
	else
		ret = fn(s, out);
	config_destroy(&cfg);
	return ret;
}

static int int_of(const config_setting_t *s, void *out)
{
	long long v;

	if (!is_int(s))
		return -EINVAL;
	v = config_setting_get_int64(s);
	if (v < INT_MIN || v > INT_MAX)
		return -ERANGE;
	*(int *)out = (int)v;
	return 0;
}

static int string_of(const config_setting_t *s, void *out)
{
	const char *v = config_setting_get_string(s);

	if (!v)
		return -EINVAL;
	*(char **)out = strdup(v);
	return *(char **)out ? 0 : -ENOMEM;
}

int epsec_conf_peek_int(const char *path, const char *key, int *value)
{
	return peek(path, key, int_of, value);
}

int epsec_conf_peek_string(const char *path, const char *key, char **value)
{
	return peek(path, key, string_of, value);
}

void epsec_intlist_free(struct epsec_intlist *l)
{
	if (!l)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ------------------------------------------------------------ effective settings */

/* Keys whose values an operator must never paste into a ticket: CURVE key
 * pair files (curve_secret_key, curve_key) and anything named a secret. */
static bool is_secret(const char *name)
{
	return name && (strstr(name, "secret") || strstr(name, "password") ||
			!strcmp(name, "curve_key"));
}

static void print_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\x%02x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void print_setting(FILE *f, const config_setting_t *s, int depth, bool redact);

static void print_members(FILE *f, const config_setting_t *s, int depth, bool redact)
{
	int n = config_setting_length(s);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);

		if (config_setting_is_group(s))
			fprintf(f, "%*s%s = ", depth * 2, "", config_setting_name(m));
		else
			fprintf(f, "%*s", depth * 2, "");
		print_setting(f, m, depth, redact);
		fprintf(f, config_setting_is_group(s) ? ";\n" : i + 1 < n ? ",\n" : "\n");
	}
}

/* Arrays hold scalars only: one line. */
static void print_array(FILE *f, const config_setting_t *s)
{
	int n = config_setting_length(s);

	fprintf(f, "[ ");
	for (int i = 0; i < n; i++) {
		print_setting(f, config_setting_get_elem(s, (unsigned)i), 0, false);
		fprintf(f, i + 1 < n ? ", " : " ");
	}
	fprintf(f, "]");
}

/* A libconfig value as the file could have written it. */
static void print_setting(FILE *f, const config_setting_t *s, int depth, bool redact)
{
	if (redact && is_secret(config_setting_name(s))) {
		fprintf(f, "\"(removed)\"");
		return;
	}
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		fprintf(f, "%lld", (long long)config_setting_get_int64(s));
		return;
	case CONFIG_TYPE_FLOAT:
		fprintf(f, "%g", config_setting_get_float(s));
		return;
	case CONFIG_TYPE_BOOL:
		fprintf(f, config_setting_get_bool(s) ? "true" : "false");
		return;
	case CONFIG_TYPE_STRING:
		print_string(f, config_setting_get_string(s));
		return;
	default:
		break;
	}
	if (config_setting_is_array(s)) {
		print_array(f, s);
		return;
	}
	fprintf(f, config_setting_is_group(s) ? "{\n" : "(\n");
	print_members(f, s, depth + 1, redact);
	fprintf(f, "%*s%s", depth * 2, "", config_setting_is_group(s) ? "}" : ")");
}

static void print_strlist(FILE *f, const struct epsec_strlist *l)
{
	fprintf(f, "[ ");
	for (size_t i = 0; i < l->n; i++) {
		print_string(f, l->v[i]);
		fprintf(f, i + 1 < l->n ? ", " : " ");
	}
	fprintf(f, "]");
}

static void print_intlist(FILE *f, const struct epsec_intlist *l)
{
	fprintf(f, "[ ");
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "%lld%s", l->v[i], i + 1 < l->n ? ", " : " ");
	fprintf(f, "]");
}

/* A string key left NULL by the defaults: the program decides at run time. */
static bool unset(const struct epsec_conf_key *key, const char *field)
{
	return (key->type == EPSEC_CONF_STRING || key->type == EPSEC_CONF_URI) &&
	       !*(const char *const *)field;
}

static void print_value(FILE *f, const struct epsec_conf_key *key, const char *field,
			bool redact)
{
	const config_setting_t *g;

	switch (key->type) {
	case EPSEC_CONF_INT:
		fprintf(f, "%d", *(const int *)field);
		return;
	case EPSEC_CONF_BOOL:
		fprintf(f, *(const bool *)field ? "true" : "false");
		return;
	case EPSEC_CONF_STRING:
	case EPSEC_CONF_URI:
		print_string(f, *(const char *const *)field);
		return;
	case EPSEC_CONF_CHOICE:
		print_string(f, key->choices[*(const int *)field]);
		return;
	case EPSEC_CONF_STRLIST:
	case EPSEC_CONF_URILIST:
		print_strlist(f, (const struct epsec_strlist *)field);
		return;
	case EPSEC_CONF_SIZE:
		fprintf(f, "%lldL", (long long)*(const int64_t *)field);
		return;
	case EPSEC_CONF_INTLIST:
		print_intlist(f, (const struct epsec_intlist *)field);
		return;
	case EPSEC_CONF_GROUP:
	case EPSEC_CONF_LIST:
		g = *(const config_setting_t *const *)field;
		if (g)
			print_setting(f, g, 0, redact);
		else
			fprintf(f, key->type == EPSEC_CONF_GROUP ? "{ }" : "( )");
		return;
	}
}

static void print_key(FILE *f, const config_setting_t *root, const struct epsec_conf_key *key,
		      const void *settings, bool redact)
{
	const char *field = (const char *)settings + key->offset;
	bool from_file = root && config_setting_get_member(root, key->name);

	if (unset(key, field)) {
		fprintf(f, "# %s: not set (decided at run time)\n", key->name);
		return;
	}
	fprintf(f, "%s = ", key->name);
	if (redact && is_secret(key->name))
		fprintf(f, "\"(removed)\"");
	else
		print_value(f, key, field, redact);
	fprintf(f, ";%s\n", from_file ? "" : "  # default");
}

/* The X_options groups go to the transports as written. */
static void print_companions(FILE *f, const config_setting_t *root,
			     const struct epsec_conf_key *schema, bool redact)
{
	for (int i = 0; root && i < config_setting_length(root); i++) {
		const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);

		if (!epsec_topts_companion(schema, config_setting_name(m)))
			continue;
		fprintf(f, "%s = ", config_setting_name(m));
		print_setting(f, m, 0, redact);
		fprintf(f, ";\n");
	}
}

void epsec_conf_print(FILE *f, const struct epsec_conf *conf,
		      const struct epsec_conf_key *schema, const void *settings, bool redact)
{
	const config_setting_t *root = config_root_setting(&conf->cfg);

	fprintf(f, "# effective configuration from %s: every key, defaults filled in\n",
		conf->path ? conf->path : "(no file)");
	for (const struct epsec_conf_key *key = schema; key->name; key++)
		print_key(f, root, key, settings, redact);
	print_companions(f, root, schema, redact);
}

/* What the daemon runs with, for its control socket's "config": set once
 * on the main thread before the socket listens, read on that thread. */
static struct {
	const struct epsec_conf *conf;
	const struct epsec_conf_key *schema;
	const void *settings;
} published;

void epsec_conf_publish(const struct epsec_conf *conf, const struct epsec_conf_key *schema,
			const void *settings)
{
	published.conf = conf;
	published.schema = schema;
	published.settings = settings;
}

int epsec_conf_published(char **text)
{
	size_t len;
	FILE *f;

	*text = NULL;
	if (!published.conf)
		return -ENOENT;
	f = open_memstream(text, &len);
	if (!f)
		return -errno;
	epsec_conf_print(f, published.conf, published.schema, published.settings, true);
	return fclose(f) == 0 ? 0 : -ENOMEM;
}
