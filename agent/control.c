/* SPDX-License-Identifier: MIT */
/* Answers epsecctl on vsep's control socket. The status reply is the chain
 * contract's: mux link, what is marked and how, the counters, in flight. */
#include "config.h"
#include "control.h"
#include "workers.h"

#include <string.h>
#include <unistd.h>
#include <json-c/json.h>
#include <epsec/version.h>

#include "ctl.h"
#include "cache.h"
#include "held.h"
#include "log.h"
#include "unscanned.h"
#include "mux.h"
#include "quarantine.h"

#define EPSEC_LOG_SRC "control"

static struct {
	const struct vsep_settings *s;
	const struct vsep_mark *marks;
	size_t nmarks;
} ctl;

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

static void add_num(struct json_object *o, const char *k, unsigned long v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static struct json_object *reply(bool ok, const char *error)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	if (!ok)
		add_str(o, "error", error);
	return o;
}

static struct json_object *identity(void)
{
	struct json_object *o = reply(true, NULL);

	add_str(o, "program", "vsep");
	add_str(o, "id", ctl.s->common.id);
	add_str(o, "version", EPSEC_VERSION);
	add_str(o, "build", EPSEC_BUILD_ID);
	/* support-bundle reads the fanotify marks from /proc/PID/fdinfo. */
	add_num(o, "pid", (unsigned long)getpid());
	add_num(o, "protocol_min", EPSEC_PROTO_VERSION_MIN);
	add_num(o, "protocol_max", EPSEC_PROTO_VERSION_MAX);
	return o;
}

static void add_mount(const char *path, void *arg)
{
	json_object_array_add(arg, json_object_new_string(path));
}

/* Per protected path: how it is marked, the directories an inode-marked
 * tree has marked now, and the mounts found under it since (each with a
 * mount mark of its own). */
static struct json_object *protect_list(void)
{
	struct json_object *a = json_object_new_array();
	size_t i;

	for (i = 0; i < ctl.nmarks; i++) {
		struct json_object *m = json_object_new_object();
		struct json_object *mounts = json_object_new_array();
		unsigned dirs = vsep_fan_mark_status(&ctl.marks[i], add_mount, mounts);

		add_str(m, "path", ctl.marks[i].path);
		add_str(m, "mark", ctl.marks[i].mount ? "mount" : "inode");
		add_num(m, "dirs", dirs);
		json_object_object_add(m, "mounts", mounts);
		json_object_array_add(a, m);
	}
	return a;
}

static struct json_object *counters(void)
{
	struct json_object *c = json_object_new_object();

	add_num(c, "events", atomic_load(&vsep_stats.events));
	add_num(c, "cache_hits", atomic_load(&vsep_stats.cache_hits));
	add_num(c, "allowed", atomic_load(&vsep_stats.allowed));
	add_num(c, "denied", atomic_load(&vsep_stats.denied));
	add_num(c, "deleted", atomic_load(&vsep_stats.deleted));
	add_num(c, "timeouts", atomic_load(&vsep_stats.timeouts));
	add_num(c, "disconnected", atomic_load(&vsep_stats.disconnected));
	add_num(c, "errors", atomic_load(&vsep_stats.errors));
	add_num(c, "overload", atomic_load(&vsep_stats.overload));
	add_num(c, "excluded", atomic_load(&vsep_stats.excluded));
	add_num(c, "too_big", atomic_load(&vsep_stats.too_big));
	add_num(c, "cache_misses", atomic_load(&vsep_stats.cache_misses));
	add_num(c, "ignore_marks", atomic_load(&vsep_stats.ignore_marks));
	add_num(c, "quarantined", atomic_load(&vsep_stats.quarantined));
	add_num(c, "empty", atomic_load(&vsep_stats.empty));
	add_num(c, "swept", atomic_load(&vsep_stats.swept));
	add_num(c, "engine_errors", atomic_load(&vsep_stats.engine_errors));
	add_num(c, "unscanned", vsep_unscanned_count());
	add_num(c, "rescanned", atomic_load(&vsep_stats.rescanned));
	add_num(c, "unscanned_dropped", atomic_load(&vsep_stats.unscanned_dropped));
	add_num(c, "unscanned_given_up", atomic_load(&vsep_stats.unscanned_given_up));
	return c;
}

static struct json_object *status(void)
{
	struct json_object *o = identity();
	struct json_object *m = json_object_new_object();

	add_str(m, "uri", ctl.s->mux);
	json_object_object_add(m, "connected", json_object_new_boolean(vsep_mux_ready()));
	json_object_object_add(m, "pass_fds", json_object_new_boolean(vsep_mux_passes_fds()));
	json_object_object_add(o, "mux", m);
	json_object_object_add(o, "protect", protect_list());
	json_object_object_add(o, "counters", counters());
	add_num(o, "in_flight", vsep_held_count());
	add_num(o, "inline_bytes", vsep_workers_inline_bytes());
	add_num(o, "generation", vsep_cache_current_generation());
	return o;
}

static struct json_object *log_level(struct json_object *req)
{
	struct json_object *v, *o;
	int level;

	if (!json_object_object_get_ex(req, "level", &v) || !json_object_is_type(v, json_type_int))
		return reply(false, "log-level needs \"level\": 0..7");
	level = json_object_get_int(v);
	if (level < EPSEC_LOG_EMERG || level > EPSEC_LOG_DEBUG)
		return reply(false, "log-level needs \"level\": 0..7");
	epsec_log_set_level(level);
	EPSEC_NOTICE("log level set to %d by the control socket", level);
	o = reply(true, NULL);
	add_num(o, "level", (unsigned long)level);
	return o;
}

static struct json_object *on_cmd(const char *cmd, struct json_object *req, void *arg)
{
	if (strcmp(cmd, "status") == 0)
		return status();
	if (strcmp(cmd, "version") == 0)
		return identity();
	if (strcmp(cmd, "log-level") == 0)
		return log_level(req);
	if (strncmp(cmd, "quarantine-", 11) == 0)
		return vsep_quarantine_cmd(cmd, req);
	return reply(false, "unknown command");
}

int vsep_control_start(struct epsec_loop *loop, const struct vsep_settings *s,
		       const struct vsep_mark *marks, size_t nmarks, struct epsec_ctl **out)
{
	ctl.s = s;
	ctl.marks = marks;
	ctl.nmarks = nmarks;
	return epsec_ctl_listen(loop, s->common.control, on_cmd, NULL, out);
}
