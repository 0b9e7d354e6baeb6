/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the configuration loader: the input is a config
 * file, loaded with each daemon's real schema and start-up checks (vsep,
 * epsec-mux, epsec-sva, see conf_*.c) and peeked as vsep re-reads it. What
 * a load accepts must be what the schema promises; what it records for
 * transports must be gone once the file is freed. */
#include "config.h"
#include "conf_fuzz.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "topts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[] = "/tmp/epsec-fuzz-conf.XXXXXX";
static char path[sizeof(dir) + 16];

static void cleanup(void)
{
	char inc[sizeof(path)];

	unlink(path);
	snprintf(inc, sizeof(inc), "%s/inc.conf", dir);
	unlink(inc);
	rmdir(dir);
}

/* One directory for the whole run: the file is rewritten for each input,
 * and an "inc.conf" beside it gives @include "inc.conf" something to read. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char inc_text[] = "workers = 3;\n";
	char inc[sizeof(path)];
	FILE *f;

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/f.conf", dir);
	snprintf(inc, sizeof(inc), "%s/inc.conf", dir);
	f = fopen(inc, "w");
	if (!f || fwrite(inc_text, 1, sizeof(inc_text) - 1, f) != sizeof(inc_text) - 1 || fclose(f))
		abort();
	atexit(cleanup);
	/* Errors are the point here; printing thousands a second is not. */
	epsec_log_open("fuzz", EPSEC_DEST_STDERR, 0);
	return 0;
}

static size_t count_choices(const char *const *c)
{
	size_t n = 0;

	while (c && c[n])
		n++;
	return n;
}

static void check_uri(const char *uri)
{
	const char *rest;
	char scheme[32];

	if (epsec_uri_split(uri, scheme, sizeof(scheme), &rest) != 0 || !rest[0])
		abort();
}

static void check_strlist(const struct epsec_conf_key *k, const struct epsec_strlist *l)
{
	if ((l->n && !l->v) || (k->required && !l->n))
		abort();
	for (size_t i = 0; i < l->n; i++) {
		if (!l->v[i])
			abort();
		if (k->type == EPSEC_CONF_URILIST)
			check_uri(l->v[i]);
	}
}

static void check_intlist(const struct epsec_conf_key *k, const struct epsec_intlist *l)
{
	if (l->n && !l->v)
		abort();
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] < k->min || l->v[i] > k->max)
			abort();
}

static void check_groups(const struct epsec_conf_key *k, const config_setting_t *s)
{
	if (!s) {
		if (k->required)
			abort();
		return;
	}
	if (k->type == EPSEC_CONF_GROUP) {
		if (!config_setting_is_group(s))
			abort();
		return;
	}
	if (!config_setting_is_list(s) || (k->required && config_setting_length(s) == 0))
		abort();
	for (int i = 0; i < config_setting_length(s); i++)
		if (!config_setting_is_group(config_setting_get_elem(s, (unsigned)i)))
			abort();
}

static void check_key(const struct epsec_conf_key *k, const char *field)
{
	int iv;

	switch (k->type) {
	case EPSEC_CONF_INT:
		memcpy(&iv, field, sizeof(iv));
		if ((k->min || k->max) && (iv < k->min || iv > k->max))
			abort();
		return;
	case EPSEC_CONF_BOOL:
		if (*(const unsigned char *)field > 1)
			abort();
		return;
	case EPSEC_CONF_STRING:
	case EPSEC_CONF_URI:
		if (!*(const char *const *)field) {
			if (k->required)
				abort();
		} else if (k->type == EPSEC_CONF_URI) {
			check_uri(*(const char *const *)field);
		} else {
			(void)strlen(*(const char *const *)field);
		}
		return;
	case EPSEC_CONF_CHOICE:
		memcpy(&iv, field, sizeof(iv));
		if (iv < 0 || (size_t)iv >= count_choices(k->choices))
			abort();
		return;
	case EPSEC_CONF_STRLIST:
	case EPSEC_CONF_URILIST:
		check_strlist(k, (const struct epsec_strlist *)(const void *)field);
		return;
	case EPSEC_CONF_GROUP:
	case EPSEC_CONF_LIST:
		check_groups(k, *(const config_setting_t *const *)field);
		return;
	case EPSEC_CONF_SIZE:
		if (*(const int64_t *)(const void *)field < 0)
			abort();
		return;
	case EPSEC_CONF_INTLIST:
		check_intlist(k, (const struct epsec_intlist *)(const void *)field);
		return;
	}
	abort();
}

void fuzz_conf_check(const struct epsec_conf_key *schema, const void *out)
{
	for (const struct epsec_conf_key *k = schema; k->name; k++)
		check_key(k, (const char *)out + k->offset);
}

/* The URIs of `schema`'s URI keys in `out`, copied (the config owns them). */
static size_t uris_of(const struct epsec_conf_key *schema, const void *out, char **v, size_t max)
{
	size_t n = 0;

	for (const struct epsec_conf_key *k = schema; k && k->name; k++) {
		const char *field = (const char *)out + k->offset;

		if (k->type == EPSEC_CONF_URI && *(const char *const *)field && n < max)
			v[n++] = strdup(*(const char *const *)field);
		if (k->type == EPSEC_CONF_URILIST) {
			const struct epsec_strlist *l = (const void *)field;

			for (size_t i = 0; i < l->n && n < max; i++)
				v[n++] = strdup(l->v[i]);
		}
	}
	return n;
}

void fuzz_conf_free(struct epsec_conf *conf, const struct epsec_conf_key *schema,
		    const void *out)
{
	char *uris[64];
	size_t n = uris_of(schema, out, uris, sizeof(uris) / sizeof(uris[0]));

	for (size_t i = 0; i < n; i++) {
		const config_setting_t *o = uris[i] ? epsec_topts_find(uris[i]) : NULL;

		if (o && !config_setting_is_group(o))
			abort();
	}
	epsec_conf_free(conf);
	for (size_t i = 0; i < n; i++) {
		if (uris[i] && epsec_topts_find(uris[i]))
			abort();
		free(uris[i]);
	}
}

/* What vsep re-reads every few seconds, without a schema. */
static void peek(void)
{
	char *s = NULL;
	int v = -1, r;

	r = epsec_conf_peek_int(path, "DEBUG_LEVEL", &v);
	if (r != 0 && r != -ENOENT && r != -EINVAL && r != -ERANGE)
		abort();
	r = epsec_conf_peek_string(path, "id", &s);
	if ((r == 0) != (s != NULL) || (r != 0 && r != -ENOENT && r != -EINVAL))
		abort();
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "w");

	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
		abort();
	fuzz_conf_vsep(path);
	fuzz_conf_mux(path);
	fuzz_conf_sva(path);
	/* epsec-sva sets the level its file asks for */
	epsec_log_set_level(0);
	peek();
	return 0;
}
