/* SPDX-License-Identifier: MIT */
/* epsec-sva's answers on its control socket (status, version, log-level,
 * reload), in the JSON shape every epsec daemon shares. Runs on the main
 * loop's thread while workers scan and reloads run: it reads only atomics
 * and thread-safe calls. */
#include "config.h"
#include "sva.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sdk.h"

/* How long `reload` holds the main loop waiting for the result: well
 * inside half of WatchdogSec (30 s in the shipped unit). A longer reload
 * goes on; its result is logged and shown in status. */
#define RELOAD_REPLY_MS 10000

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
	/* What `epsecctl compat` compares: libepsec's protocol range, and the
	 * verdict plugin ABI this appliance hosts. */
	json_object_object_add(o, "protocol_min", json_object_new_int(EPSEC_PROTO_VERSION_MIN));
	json_object_object_add(o, "protocol_max", json_object_new_int(EPSEC_PROTO_VERSION_MAX));
	json_object_object_add(o, "abi_major", json_object_new_int(EPSEC_VERDICT_ABI_MAJOR));
	json_object_object_add(o, "abi_minor", json_object_new_int(EPSEC_VERDICT_ABI_MINOR));
	return o;
}

static struct json_object *engine_status(struct sva_engine *en)
{
	struct json_object *o = json_object_new_object();
	char line[512];

	sva_engine_signatures(en, line, sizeof(line));
	json_object_object_add(o, "name", json_object_new_string(en->p->name));
	json_object_object_add(o, "version",
			       json_object_new_string(en->p->version ? en->p->version : ""));
	json_object_object_add(o, "action", json_object_new_string(sva_action_name(en->action)));
	json_object_object_add(o, "abi_major", json_object_new_int((int)en->p->abi_major));
	json_object_object_add(o, "abi_minor", json_object_new_int((int)en->p->abi_minor));
	json_object_object_add(o, "signatures", json_object_new_string(line));
	return o;
}

static struct json_object *counter(atomic_ullong *c)
{
	return json_object_new_int64((int64_t)atomic_load(c));
}

static struct json_object *reload_status(struct sva_reload *rl)
{
	struct json_object *o = json_object_new_object();

	pthread_mutex_lock(&rl->lock);
	json_object_object_add(o, "running", json_object_new_boolean(rl->running));
	json_object_object_add(o, "last_error", json_object_new_string(rl->error));
	pthread_mutex_unlock(&rl->lock);
	json_object_object_add(o, "ok", counter(&rl->ok));
	json_object_object_add(o, "failed", counter(&rl->failed));
	return o;
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* What the engines read and from where: the bench compares the total with
 * the size of what was scanned. */
static struct json_object *content_status(struct sva *sva)
{
	struct json_object *o = json_object_new_object();
	struct epsec_sva_read_totals t;

	epsec_sva_read_totals(sva->session, &t);
	add_u64(o, "bytes_read", t.inline_bytes + t.remote_bytes + t.local_bytes + t.mapped_bytes);
	add_u64(o, "inline_bytes", t.inline_bytes);
	add_u64(o, "remote_bytes", t.remote_bytes);
	add_u64(o, "local_bytes", t.local_bytes);
	add_u64(o, "mapped_bytes", t.mapped_bytes);
	add_u64(o, "staged", t.staged);
	add_u64(o, "staged_bytes", t.staged_bytes);
	add_u64(o, "stage_refused", t.stage_refused);
	add_u64(o, "stage_max", (uint64_t)sva->set.stage_max);
	return o;
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
	json_object_object_add(o, "generation",
			       json_object_new_int64((int64_t)atomic_load(&sva->generation)));
	json_object_object_add(o, "user", json_object_new_string(sva->user.name));
	for (size_t i = 0; i < sva->engines.n; i++)
		json_object_array_add(engines, engine_status(&sva->engines.v[i]));
	json_object_object_add(o, "engines", engines);
	json_object_object_add(counters, "scanned", counter(&sva->scanned));
	json_object_object_add(counters, "found", counter(&sva->found));
	json_object_object_add(counters, "errors", counter(&sva->errors));
	json_object_object_add(counters, "workers_killed", counter(&sva->workers_killed));
	json_object_object_add(o, "counters", counters);
	json_object_object_add(o, "content", content_status(sva));
	json_object_object_add(o, "reload", reload_status(&sva->reload));
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

/* {"ok":true,"generation":N,"reloaded":K} once the reload has finished;
 * a failure keeps the failing engine's old signatures and says why in the
 * plugin's own words. */
static struct json_object *reload(struct sva *sva)
{
	struct sva_reload *rl = &sva->reload;
	struct json_object *o;
	int64_t want = sva_reload_start(sva);
	unsigned n;

	if (want < 0)
		return reply_error("cannot start a reload: %s", strerror((int)-want));
	if (!sva_reload_wait(sva, (uint64_t)want, RELOAD_REPLY_MS)) {
		o = reply_error("reload still running after %d s: its result will be logged and "
				"shown in status",
				RELOAD_REPLY_MS / 1000);
		json_object_object_add(o, "running", json_object_new_boolean(1));
	} else {
		pthread_mutex_lock(&rl->lock);
		if (rl->result < 0) {
			o = reply_error("%s", rl->error);
		} else {
			o = json_object_new_object();
			json_object_object_add(o, "ok", json_object_new_boolean(1));
		}
		n = rl->reloaded;
		pthread_mutex_unlock(&rl->lock);
		json_object_object_add(o, "reloaded", json_object_new_int((int)n));
	}
	json_object_object_add(o, "generation",
			       json_object_new_int64((int64_t)atomic_load(&sva->generation)));
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
	if (!strcmp(cmd, "reload"))
		return reload(arg);
	return reply_error("unknown command \"%s\" (status, version, log-level, reload)", cmd);
}
