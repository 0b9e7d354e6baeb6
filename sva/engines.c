/* epsec-sva's engines: checks the `engine` list, loads and opens each
 * verdict plugin with its own options group, and runs them in order on a
 * file. An engine that cannot decide never turns into a detection. */
#include "config.h"
#include "engines.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "host.h"
#include "loader.h"
#include "log.h"

#define EPSEC_LOG_SRC "engines"

static const char *const action_choices[] = { "deny", "delete", "quarantine", NULL };
static const int action_values[] = {
	EPSEC_ACTION_DENY, EPSEC_ACTION_DELETE, EPSEC_ACTION_QUARANTINE,
};

struct engine_conf {
	const char *plugin;
	int action; /* index into action_choices */
	const config_setting_t *options;
};

static const struct epsec_conf_key engine_schema[] = {
	{ .name = "plugin", .type = EPSEC_CONF_STRING, .required = true,
	  .offset = offsetof(struct engine_conf, plugin) },
	{ .name = "action", .type = EPSEC_CONF_CHOICE, .required = true,
	  .offset = offsetof(struct engine_conf, action), .choices = action_choices },
	{ .name = "options", .type = EPSEC_CONF_GROUP,
	  .offset = offsetof(struct engine_conf, options) },
	{ .name = NULL },
};

const char *sva_action_name(int action)
{
	switch (action) {
	case EPSEC_ACTION_ALLOW:
		return "allow";
	case EPSEC_ACTION_DENY:
		return "deny";
	case EPSEC_ACTION_DELETE:
		return "delete";
	case EPSEC_ACTION_QUARANTINE:
		return "quarantine";
	}
	return "?";
}

static int parse_one(const config_setting_t *group, struct sva_engine *en)
{
	struct engine_conf c = { .action = 0 };
	int r;

	r = epsec_conf_apply(group, engine_schema, &c);
	if (r < 0)
		return r;
	en->where = config_setting_get_member(group, "plugin");
	if (!c.plugin[0])
		return epsec_conf_error(en->where, "expected a plugin name or path, got \"\"");
	en->plugin = c.plugin;
	en->action = action_values[c.action];
	en->options = c.options;
	return 0;
}

int sva_engines_parse(const config_setting_t *list, struct sva_engines *out)
{
	/* conf.h hands lists of groups over as the setting; walking them is
	 * the caller's (plain libconfig accessors, nothing parsed here). */
	int n = config_setting_length(list), ret = 0, r;

	memset(out, 0, sizeof(*out));
	if (n <= 0)
		return epsec_conf_error(list, "expected at least one engine { plugin = ...; }");
	out->v = calloc((size_t)n, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	out->n = (size_t)n;
	for (int i = 0; i < n; i++) {
		r = parse_one(config_setting_get_elem(list, (unsigned)i), &out->v[i]);
		if (r < 0 && ret == 0)
			ret = r;
	}
	if (ret < 0)
		sva_engines_close(out);
	return ret;
}

/* Whatever the loader refuses (missing, not a plugin, wrong ABI) was named
 * in the config: a configuration error. The loader said why; this line
 * says where. */
static int engine_open(struct sva_engine *en)
{
	int r;

	r = epsec_loader_verdict(en->plugin, &en->p);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return epsec_conf_error(en->where, "cannot use verdict plugin \"%s\" (see above)",
					en->plugin);
	r = en->p->open(epsec_host_get(), en->options, &en->state);
	if (r < 0) {
		/* -EINVAL: the plugin said why through host->conf_error. */
		if (r != -EINVAL)
			EPSEC_ERR("engine %s (%s) cannot start: %s", en->p->name, en->plugin,
				  strerror(-r));
		return r;
	}
	en->opened = true;
	EPSEC_INFO("engine %s %s ready (action %s)", en->p->name,
		   en->p->version ? en->p->version : "", sva_action_name(en->action));
	return 0;
}

int sva_engines_open(struct sva_engines *e)
{
	int r;

	for (size_t i = 0; i < e->n; i++) {
		r = engine_open(&e->v[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

void sva_engines_close(struct sva_engines *e)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].opened)
			e->v[i].p->close(e->v[i].state);
	free(e->v);
	e->v = NULL;
	e->n = 0;
}

char *sva_engines_names(const struct sva_engines *e)
{
	size_t len = 1;
	char *names;

	for (size_t i = 0; i < e->n; i++)
		len += strlen(e->v[i].p->name) + 1;
	names = calloc(1, len);
	if (!names)
		return NULL;
	for (size_t i = 0; i < e->n; i++) {
		if (i)
			strcat(names, ",");
		strcat(names, e->v[i].p->name);
	}
	return names;
}

static void found(const struct sva_engine *en, const struct epsec_scan_report *rep,
		  struct sva_outcome *out)
{
	out->action = (enum epsec_action)en->action;
	out->engine = en->p->name;
	snprintf(out->signature, sizeof(out->signature), "%s",
		 rep->signature[0] ? rep->signature : "unnamed");
}

void sva_engines_scan(const struct sva_engines *e, struct epsec_file *file,
		      struct sva_outcome *out)
{
	struct epsec_scan_report rep;
	enum epsec_scan_result r;

	memset(out, 0, sizeof(*out));
	out->action = EPSEC_ACTION_ALLOW;
	out->cacheable = true;
	for (size_t i = 0; i < e->n; i++) {
		const struct sva_engine *en = &e->v[i];

		memset(&rep, 0, sizeof(rep));
		r = en->p->scan(en->state, file, &rep);
		rep.signature[sizeof(rep.signature) - 1] = '\0';
		if (r == EPSEC_SCAN_FOUND) {
			found(en, &rep, out);
			return;
		}
		if (r != EPSEC_SCAN_CLEAN) {
			/* Not cacheable: the next scan may decide. */
			out->errors++;
			out->cacheable = false;
			EPSEC_WARN("engine %s could not scan %s: %s", en->p->name, file->path,
				   rep.signature[0] ? rep.signature : "no reason given");
		}
	}
}
