/* SPDX-License-Identifier: MIT */
/* epsec-sva's engines: checks the `engine` list, loads and opens each
 * verdict plugin with its own options group, runs them in order on a file
 * and reloads them. An engine that cannot decide never turns into a
 * detection. The plugins get epsec-sva's own host table, whose log keeps
 * a plugin's error lines during a reload so the reply can quote them. */
#include "config.h"
#include "engines.h"

#include <errno.h>
#include <stdarg.h>
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

/* ---------------------------------------------------------------- host */

/* A plugin's error lines while this thread calls it (its reload). */
struct capture {
	char first[512];
	unsigned count;
};

static _Thread_local struct capture *capture;
static struct epsec_host sva_host;

static void capture_line(const char *line)
{
	size_t n = strlen(line);

	if (capture->count++ > 0)
		return;
	if (n >= sizeof(capture->first))
		n = sizeof(capture->first) - 1;
	memcpy(capture->first, line, n);
	capture->first[n] = '\0';
}

static void host_log(int level, const char *src, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void host_log(int level, const char *src, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	if (!capture || level > EPSEC_LOG_ERR) {
		/* The scan path: no formatting unless the level is on. */
		epsec_vlog(level, src, fmt, ap);
		va_end(ap);
		return;
	}
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	capture_line(line);
	epsec_log(level, src, "%s", line);
}

static int host_conf_error(const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int host_conf_error(const config_setting_t *s, const char *fmt, ...)
{
	char msg[768], line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (capture) {
		const char *file = s ? config_setting_source_file(s) : NULL;

		snprintf(line, sizeof(line), "%s:%d: %s: %s", file ? file : "(config)",
			 s ? config_setting_source_line(s) : 0,
			 s && config_setting_name(s) ? config_setting_name(s) : "-", msg);
		capture_line(line);
	}
	return epsec_conf_error(s, "%s", msg);
}

static const struct epsec_host *host_get(void)
{
	if (!sva_host.log) {
		sva_host = *epsec_host_get();
		sva_host.log = host_log;
		sva_host.conf_error = host_conf_error;
	}
	return &sva_host;
}

/* ---------------------------------------------------------------- config */

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
	for (int i = 0; i < n; i++)
		pthread_mutex_init(&out->v[i].reload_lock, NULL);
	for (int i = 0; i < n; i++) {
		r = parse_one(config_setting_get_elem(list, (unsigned)i), &out->v[i]);
		if (r < 0 && ret == 0)
			ret = r;
	}
	if (ret < 0)
		sva_engines_close(out);
	return ret;
}

/* ---------------------------------------------------------------- open */

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
	r = en->p->open(host_get(), en->options, &en->state);
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
	for (size_t i = 0; i < e->n; i++) {
		if (e->v[i].opened)
			e->v[i].p->close(e->v[i].state);
		pthread_mutex_destroy(&e->v[i].reload_lock);
	}
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

/* ---------------------------------------------------------------- scan */

static void found(const struct sva_engine *en, const struct epsec_scan_report *rep,
		  struct sva_outcome *out)
{
	out->action = (enum epsec_action)en->action;
	out->engine = en->p->name;
	snprintf(out->signature, sizeof(out->signature), "%s",
		 rep->signature[0] ? rep->signature : "unnamed");
}

/* The later engines still run: one of them may find something, and a
 * detection decides. Without one, the file was not scanned. */
static void engine_failed(const struct sva_engine *en, const struct epsec_scan_report *rep,
			  struct sva_outcome *out)
{
	out->cacheable = false;
	if (out->errors++)
		return;
	out->error_engine = en->p->name;
	snprintf(out->error, sizeof(out->error), "%s: %s", en->p->name,
		 rep->signature[0] ? rep->signature : "no reason given");
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
		if (r != EPSEC_SCAN_CLEAN)
			engine_failed(en, &rep, out);
	}
}

/* ---------------------------------------------------------------- reload */

static int engine_reload(struct sva_engine *en, char *err, size_t len)
{
	struct capture cap = { .count = 0 };
	int r;

	pthread_mutex_lock(&en->reload_lock);
	capture = &cap;
	r = en->p->reload(en->state);
	capture = NULL;
	pthread_mutex_unlock(&en->reload_lock);
	if (r >= 0)
		return 0;
	if (cap.count == 0)
		snprintf(err, len, "%s: %s", en->p->name, strerror(-r));
	else if (cap.count == 1)
		snprintf(err, len, "%s: %s", en->p->name, cap.first);
	else
		snprintf(err, len, "%s: %s (and %u more, see the log)", en->p->name,
			 cap.first, cap.count - 1);
	return r;
}

int sva_engines_reload(struct sva_engines *e, unsigned *reloaded, char *err, size_t len)
{
	char one[768];
	size_t used;
	int ret = 0, r;

	*reloaded = 0;
	if (len)
		err[0] = '\0';
	for (size_t i = 0; i < e->n; i++) {
		struct sva_engine *en = &e->v[i];

		if (!en->opened || !en->p->reload)
			continue;
		r = engine_reload(en, one, sizeof(one));
		if (r == 0) {
			(*reloaded)++;
			continue;
		}
		if (ret == 0)
			ret = r;
		used = strlen(err);
		if (used + 2 < len)
			snprintf(err + used, len - used, "%s%s", used ? "; " : "", one);
	}
	return ret;
}

void sva_engine_signatures(struct sva_engine *en, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!en->opened || !en->p->signatures)
		return;
	if (pthread_mutex_trylock(&en->reload_lock) != 0) {
		snprintf(buf, len, "reloading");
		return;
	}
	if (en->p->signatures(en->state, buf, len) < 0)
		snprintf(buf, len, "unavailable");
	pthread_mutex_unlock(&en->reload_lock);
	buf[len - 1] = '\0';
}
