/* SPDX-License-Identifier: MIT */
/* epsec-mux's control socket replies: status (the chain contract's JSON),
 * version and log-level, from a table of commands. */
#include "config.h"
#include "mux.h"

#include <string.h>
#include <epsec/version.h>

#include "detect.h"
#include "log.h"

#define EPSEC_LOG_SRC "mux"

static struct json_object *reply_error(const char *text)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(text));
	return o;
}

static struct json_object *reply_ok(const char *program)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	if (program)
		json_object_object_add(o, "program", json_object_new_string(program));
	return o;
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

/* "unix" for unix:///run/epsec/mux.sock: what the operator calls it. */
static void add_transport(struct json_object *o, const char *uri)
{
	const char *colon = strstr(uri, "://");
	int n = colon ? (int)(colon - uri) : (int)strlen(uri);

	json_object_object_add(o, "transport", json_object_new_string_len(uri, n));
}

static struct json_object *agent_status(const struct mux_conn *pc, uint64_t now)
{
	struct json_object *o = json_object_new_object();

	add_str(o, "id", pc->id);
	add_transport(o, pc->endpoint->uri);
	add_str(o, "peer", epsec_conn_peer(pc->conn));
	add_str(o, "endpoint", pc->endpoint->uri);
	add_u64(o, "version", pc->version);
	add_u64(o, "protocol_min", pc->proto_min);
	add_u64(o, "protocol_max", pc->proto_max);
	add_str(o, "build", pc->build);
	add_u64(o, "events", pc->events);
	add_u64(o, "in_flight", pc->route.in_flight);
	add_u64(o, "last_seen_ms", now - pc->last_seen_ms);
	json_object_object_add(o, "pass_fds", json_object_new_boolean(pc->fds));
	return o;
}

static struct json_object *sva_status(const struct mux_conn *pc, uint64_t now)
{
	struct json_object *o = json_object_new_object();
	struct json_object *engines = json_object_new_array();

	for (size_t i = 0; i < pc->n_engines; i++)
		json_object_array_add(engines, json_object_new_string(pc->engines[i]));
	add_str(o, "id", pc->id);
	add_transport(o, pc->endpoint->uri);
	add_str(o, "peer", epsec_conn_peer(pc->conn));
	add_str(o, "endpoint", pc->endpoint->uri);
	add_u64(o, "version", pc->version);
	add_u64(o, "protocol_min", pc->proto_min);
	add_u64(o, "protocol_max", pc->proto_max);
	add_str(o, "build", pc->build);
	json_object_object_add(o, "engines", engines);
	add_u64(o, "generation", pc->generation);
	/* Given to it, not answered; the backlog waits in the mux. */
	add_u64(o, "in_flight", pc->route.in_flight - pc->route.n_backlog);
	add_u64(o, "backlog", pc->route.n_backlog);
	add_u64(o, "events", pc->events);
	add_u64(o, "last_seen_ms", now - pc->last_seen_ms);
	json_object_object_add(o, "pass_fds", json_object_new_boolean(pc->fds));
	return o;
}

static struct json_object *peers_status(const struct mux_list *head, uint64_t now,
					struct json_object *(*one)(const struct mux_conn *,
								   uint64_t))
{
	struct json_object *a = json_object_new_array();

	for (const struct mux_list *n = head->next; n != head; n = n->next) {
		const struct mux_conn *pc = MUX_CONTAINER(n, struct mux_conn, link);

		if (!pc->rejected)
			json_object_array_add(a, one(pc, now));
	}
	return a;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

void mux_status_refused(struct mux *mx, const struct mux_conn *pc, const char *why)
{
	struct mux_refused *r = &mx->refused[mx->n_refused++ % MUX_REFUSED_MAX];

	copy_str(r->id, sizeof(r->id), pc->id);
	copy_str(r->build, sizeof(r->build), pc->build);
	copy_str(r->peer, sizeof(r->peer), epsec_conn_peer(pc->conn));
	copy_str(r->role, sizeof(r->role), pc->endpoint->role == EPSEC_ROLE_SVA ? "sva" : "agent");
	copy_str(r->why, sizeof(r->why), why);
	r->proto_min = pc->proto_min;
	r->proto_max = pc->proto_max;
	r->when_ms = epsec_now_ms();
}

/* The last MUX_REFUSED_MAX peers refused at HELLO, oldest first. */
static struct json_object *refused_status(const struct mux *mx, uint64_t now)
{
	struct json_object *a = json_object_new_array();
	uint64_t first = mx->n_refused > MUX_REFUSED_MAX ? mx->n_refused - MUX_REFUSED_MAX : 0;

	for (uint64_t i = first; i < mx->n_refused; i++) {
		const struct mux_refused *r = &mx->refused[i % MUX_REFUSED_MAX];
		struct json_object *o = json_object_new_object();

		add_str(o, "id", r->id);
		add_str(o, "role", r->role);
		add_str(o, "peer", r->peer);
		add_str(o, "build", r->build);
		add_u64(o, "protocol_min", r->proto_min);
		add_u64(o, "protocol_max", r->proto_max);
		add_str(o, "why", r->why);
		add_u64(o, "ago_ms", now - r->when_ms);
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *counters_status(const struct mux *mx)
{
	struct json_object *o = json_object_new_object();

	add_u64(o, "events", mx->counters.events);
	add_u64(o, "verdicts", mx->counters.verdicts);
	add_u64(o, "errors", mx->counters.errors);
	add_u64(o, "redispatched", mx->counters.redispatched);
	add_u64(o, "rejected", mx->counters.rejected);
	add_u64(o, "undelivered", mx->counters.undelivered);
	add_u64(o, "fds_passed", mx->counters.fds_passed);
	add_u64(o, "fds_refused", mx->counters.fds_refused);
	add_u64(o, "duplicates", mx->counters.duplicates);
	add_u64(o, "over_limit", mx->counters.over_limit);
	add_u64(o, "logs_dropped", mx->counters.logs_dropped);
	add_u64(o, "id_taken", mx->counters.id_taken);
	add_u64(o, "bad_generations", mx->counters.bad_generations);
	return o;
}

/* Over the last MUX_LATENCY_WINDOW verdicts, in microseconds. */
static struct json_object *latency_status(const struct mux *mx)
{
	struct json_object *o = json_object_new_object();
	struct mux_latency_summary sum;

	mux_latency_summary(&mx->latency, &sum);
	add_u64(o, "samples", sum.samples);
	add_u64(o, "p50_us", sum.p50_us);
	add_u64(o, "p99_us", sum.p99_us);
	add_u64(o, "max_us", sum.max_us);
	return o;
}

static struct json_object *cmd_status(struct mux *mx, struct json_object *req)
{
	struct json_object *o = reply_ok("epsec-mux");
	uint64_t now = epsec_now_ms();

	add_str(o, "id", mx->set->common.id);
	add_str(o, "version", EPSEC_VERSION);
	add_str(o, "build", EPSEC_BUILD_ID);
	add_u64(o, "uptime_ms", now - mx->started_ms);
	add_str(o, "agent_log_dir", mx->set->agent_log_dir);
	add_u64(o, "generation", mx->generation);
	json_object_object_add(o, "agents", peers_status(&mx->agents, now, agent_status));
	json_object_object_add(o, "svas", peers_status(&mx->svas, now, sva_status));
	json_object_object_add(o, "refused", refused_status(mx, now));
	add_u64(o, "protocol_min", EPSEC_PROTO_VERSION_MIN);
	add_u64(o, "protocol_max", EPSEC_PROTO_VERSION_MAX);
	json_object_object_add(o, "counters", counters_status(mx));
	add_u64(o, "in_flight", mux_route_live(mx->route));
	json_object_object_add(o, "latency", latency_status(mx));
	if (mx->detect)
		json_object_object_add(o, "detections", mux_detect_status(mx->detect));
	return o;
}

static struct json_object *cmd_version(struct mux *mx, struct json_object *req)
{
	struct json_object *o = reply_ok("epsec-mux");

	add_str(o, "version", EPSEC_VERSION);
	add_str(o, "build", EPSEC_BUILD_ID);
	add_u64(o, "protocol_min", EPSEC_PROTO_VERSION_MIN);
	add_u64(o, "protocol_max", EPSEC_PROTO_VERSION_MAX);
	return o;
}

static struct json_object *cmd_log_level(struct mux *mx, struct json_object *req)
{
	struct json_object *v, *o;
	int level;

	if (!json_object_object_get_ex(req, "level", &v) || !json_object_is_type(v, json_type_int))
		return reply_error("log-level: expected \"level\": 0-7");
	level = json_object_get_int(v);
	if (level < EPSEC_LOG_EMERG || level > EPSEC_LOG_DEBUG)
		return reply_error("log-level: expected \"level\": 0-7");
	epsec_log_set_level(level);
	o = reply_ok("epsec-mux");
	json_object_object_add(o, "level", json_object_new_int(level));
	return o;
}

static const struct {
	const char *name;
	struct json_object *(*fn)(struct mux *mx, struct json_object *req);
} commands[] = {
	{ "status", cmd_status },
	{ "version", cmd_version },
	{ "log-level", cmd_log_level },
};

struct json_object *mux_ctl(const char *cmd, struct json_object *req, void *arg)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (cmd && !strcmp(cmd, commands[i].name))
			return commands[i].fn(arg, req);
	}
	return reply_error("unknown command (epsec-mux knows: status, version, log-level)");
}
