/* epsec-sva's answers on its control socket (status, version, log-level),
 * in the JSON shape every epsec daemon shares. Runs on the main loop's
 * thread while workers scan: it reads only atomics and thread-safe calls. */
#include "config.h"
#include "sva.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static struct json_object *reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct json_object *reply_error(const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(text));
	return o;
}

static struct json_object *reply_head(void)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "program", json_object_new_string("epsec-sva"));
	json_object_object_add(o, "version", json_object_new_string(EPSEC_VERSION));
	json_object_object_add(o, "build", json_object_new_string(EPSEC_BUILD_ID));
	return o;
}

static struct json_object *engine_status(const struct sva_engine *en)
{
	struct json_object *o = json_object_new_object();
	char line[512] = "";

	if (en->p->signatures && en->p->signatures(en->state, line, sizeof(line)) < 0)
		snprintf(line, sizeof(line), "unavailable");
	line[sizeof(line) - 1] = '\0';
	json_object_object_add(o, "name", json_object_new_string(en->p->name));
	json_object_object_add(o, "version",
			       json_object_new_string(en->p->version ? en->p->version : ""));
	json_object_object_add(o, "action", json_object_new_string(sva_action_name(en->action)));
	json_object_object_add(o, "signatures", json_object_new_string(line));
	return o;
}

static struct json_object *counter(atomic_ullong *c)
{
	return json_object_new_int64((int64_t)atomic_load(c));
}

static struct json_object *status(struct sva *sva)
{
	struct json_object *o = reply_head(), *mux = json_object_new_object();
	struct json_object *engines = json_object_new_array(), *counters = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(sva->id));
	json_object_object_add(mux, "uri", json_object_new_string(sva->set.mux));
	json_object_object_add(mux, "connected",
			       json_object_new_boolean(epsec_session_connected(sva->session)));
	json_object_object_add(o, "mux", mux);
	json_object_object_add(o, "workers", json_object_new_int(sva->set.workers));
	json_object_object_add(o, "generation", json_object_new_int64((int64_t)sva->generation));
	for (size_t i = 0; i < sva->engines.n; i++)
		json_object_array_add(engines, engine_status(&sva->engines.v[i]));
	json_object_object_add(o, "engines", engines);
	json_object_object_add(counters, "scanned", counter(&sva->scanned));
	json_object_object_add(counters, "found", counter(&sva->found));
	json_object_object_add(counters, "errors", counter(&sva->errors));
	json_object_object_add(o, "counters", counters);
	return o;
}

static struct json_object *version(void)
{
	struct json_object *o = reply_head();

	json_object_object_add(o, "sdk", json_object_new_string(epsec_sdk_version()));
	return o;
}

static struct json_object *log_level(struct json_object *req)
{
	struct json_object *o, *level;
	int n;

	if (!json_object_object_get_ex(req, "level", &level) ||
	    !json_object_is_type(level, json_type_int))
		return reply_error("expected \"level\": 0..7");
	n = json_object_get_int(level);
	if (n < EPSEC_LOG_EMERG || n > EPSEC_LOG_DEBUG)
		return reply_error("level %d out of range 0..7", n);
	epsec_log_set_level(n);
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "level", json_object_new_int(n));
	return o;
}

struct json_object *sva_control(const char *cmd, struct json_object *req, void *arg)
{
	if (!strcmp(cmd, "status"))
		return status(arg);
	if (!strcmp(cmd, "version"))
		return version();
	if (!strcmp(cmd, "log-level"))
		return log_level(req);
	return reply_error("unknown command \"%s\" (status, version, log-level)", cmd);
}
