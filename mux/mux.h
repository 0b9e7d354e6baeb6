/* SPDX-License-Identifier: MIT */
/* epsec-mux's program state: settings, endpoints, connected peers and the
 * counters the control socket reports. Internal to the mux. */
#ifndef EPSEC_MUX_MUX_H
#define EPSEC_MUX_MUX_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include "conf.h"
#include "link.h"
#include "loop.h"
#include "latency.h"
#include "list.h"
#include "route.h"
#include "daemon.h"

struct mux_settings {
	struct epsec_daemon_settings common; /* DEBUG_*, id, control, plugin_dir */
	const char *agent_log_dir;
	struct epsec_strlist agents;
	struct epsec_strlist svas;
	int sva_timeout_ms;
	int peer_timeout_ms;     /* link liveness: PING after a third, drop after it */
	int sva_window;          /* events one SVA may hold unanswered */
	bool pass_fds;           /* offer fd passing on links that can */
	int agent_max_events;    /* one agent's events in the mux at once */
	int64_t agent_max_inline; /* and the inline bytes they hold */
	int agent_log_rate;      /* LOG lines a second one agent may write */
	const char *detections_log;   /* one JSON line per detection (detect.c) */
	struct epsec_strlist on_detect; /* argv run for each detection, no shell */
	int on_detect_max;            /* at once */
	int on_detect_timeout_ms;     /* then killed */
};

/* One listening URI and the role its peers must have. */
struct mux_endpoint {
	struct mux *mux;
	const char *uri;
	enum epsec_role role;
	struct epsec_listener *listener;
};

#define MUX_ANSWERED_KEPT 512

struct mux_conn {
	struct mux *mux;
	struct epsec_conn *conn;
	const struct mux_endpoint *endpoint;
	bool welcomed;
	bool rejected;           /* dropped: ignore what is still queued */
	char *id;
	char *build;
	uint32_t version;        /* agreed protocol version */
	uint32_t proto_min, proto_max; /* the range its HELLO said (epsecctl compat) */
	char **engines;          /* SVA */
	size_t n_engines;
	uint64_t generation;     /* SVA */
	bool fds;                /* both ends pass fds (capability "fd") */
	bool takes_generation;   /* agent: said capability "generation" */
	uint64_t events;         /* agent: EVENTs sent us; SVA: events given it */
	uint64_t last_seen_ms;
	int log_fd;              /* its DEBUG_DEST=2 file, -1 until needed */
	bool log_failed;         /* opening it failed (said once) */
	struct mux_peer route;
	struct mux_list link;    /* in mux->agents or mux->svas once welcomed */
	/* SVA: the ids it answered last, so that answering one twice costs
	 * the second answer (counted), not the connection. */
	uint64_t answered[MUX_ANSWERED_KEPT];
	unsigned answered_next;
	uint64_t duplicates;
	/* Agent: what it holds in the mux now, and what it was refused. */
	size_t inline_held;
	uint64_t over_limit;
	double log_tokens;       /* LOG lines it may still write (a bucket) */
	uint64_t log_refill_ms, logs_dropped;
};

struct mux_counters {
	uint64_t events, verdicts, errors, redispatched, rejected, undelivered;
	uint64_t fds_passed;     /* EVENTs given an SVA with the file's fd */
	uint64_t fds_refused;    /* fds closed on arrival: too many held */
	uint64_t duplicates;     /* second VERDICTs for one event, dropped */
	uint64_t over_limit;     /* EVENTs refused: their agent held too much */
	uint64_t logs_dropped;   /* LOG lines over an agent's rate */
	uint64_t id_taken;       /* HELLOs refused: that id is connected */
	uint64_t bad_generations; /* far-future generations ignored */
};

/* Agents hear a new generation at most this often. */
#define GENERATION_GAP_MS 1000
/* A generation is a reload's time: further ahead than this is a lie. */
#define GENERATION_FUTURE_S (366 * 86400)
/* A peer refused at HELLO, kept for `epsecctl compat`: an incompatible
 * peer never shows among the agents and SVAs. */
#define MUX_REFUSED_MAX 16
struct mux_refused {
	char id[64], build[64], peer[128], role[8], why[128];
	uint32_t proto_min, proto_max;
	uint64_t when_ms;
};

struct mux_detect;

struct mux {
	struct epsec_loop *loop;
	const struct mux_settings *set;
	struct mux_endpoint *endpoints;
	size_t n_endpoints;
	struct mux_route *route;
	struct mux_list agents, svas;
	struct mux_list pending;   /* connections before HELLO */
	struct mux_counters counters;
	struct mux_latency latency; /* EVENT in -> VERDICT out */
	uint64_t now_us;            /* when the message being handled arrived */
	int timer;
	uint64_t started_ms;
	uint64_t generation;        /* the newest any SVA has said */
	uint64_t announced;         /* the one agents were told */
	uint64_t announced_ms;
	bool sva_fds;               /* some SVA endpoint can take fds */
	size_t fds_held, fds_max;   /* fds of events not yet given an SVA */
	struct mux_refused refused[MUX_REFUSED_MAX]; /* a ring, newest at n_refused - 1 */
	uint64_t n_refused;
	struct mux_detect *detect;  /* main.c's; NULL: detections only logged */
};

/* Listen on every endpoint of `set` (which must outlive the mux) and start
 * the timeout timer. Failures are logged here. */
int mux_new(struct epsec_loop *loop, const struct mux_settings *set, struct mux **out);
/* Closes every connection and listener (unix socket files go too). */
void mux_free(struct mux *m);
/* SIGHUP: agent log files are reopened on their next line (logrotate). */
void mux_reopen_logs(struct mux *m);

/* Remember a peer refused at HELLO for status (status.c). */
void mux_status_refused(struct mux *mx, const struct mux_conn *pc, const char *why);
/* The control socket's handler (status.c); arg is the struct mux. */
struct json_object *mux_ctl(const char *cmd, struct json_object *req, void *arg);

#endif
