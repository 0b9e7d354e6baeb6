/* SPDX-License-Identifier: MIT */
/* epsec-mux's connections: HELLO/WELCOME with every peer, then events,
 * reads and verdicts passed between agents and SVAs. route.c decides who
 * owns what; this file only talks. Whatever a message changes in the
 * routing state is changed before the message is sent on, so nothing here
 * depends on a record surviving a send. */
#include "config.h"
#include "mux.h"

#include <errno.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <epsec/version.h>

#include "agentlog.h"
#include "detect.h"
#include "log.h"

#define EPSEC_LOG_SRC "mux"

#define HELLO_TIMEOUT_MS 10000u   /* a peer that never says HELLO */
#define REAP_MIN_MS 30000u        /* keep answered records this long at least */

static const char *role_word(const struct mux_conn *pc)
{
	return pc->endpoint->role == EPSEC_ROLE_SVA ? "sva" : "agent";
}

static const char *conn_name(const struct mux_conn *pc)
{
	return pc->id ? pc->id : "(no HELLO)";
}

static struct epsec_conn *peer_conn(const struct mux_peer *p)
{
	return ((const struct mux_conn *)p->owner)->conn;
}

/* ------------------------------------------------------------ sending */

static int send_error(struct epsec_conn *c, uint64_t req_id, uint32_t code)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Error err = EPSEC__ERROR__INIT;

	err.has_req_id = 1;
	err.req_id = req_id;
	err.code = code;
	err.message = (char *)strerror((int)code);
	env.body_case = EPSEC__ENVELOPE__BODY_ERROR;
	env.error = &err;
	return epsec_conn_send(c, &env);
}

/* A READ the mux cannot pass on is answered at once, so the SVA's scan
 * does not wait for its own timeout. */
static void send_data_error(struct epsec_conn *c, uint64_t id, uint64_t offset, int code)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Data data = EPSEC__DATA__INIT;

	data.req_id = id;
	data.offset = offset;
	data.has_error = 1;
	data.error = code;
	env.body_case = EPSEC__ENVELOPE__BODY_DATA;
	env.data = &data;
	epsec_conn_send(c, &env);
}

/* An answer the agent's link would not take: it ends by the agent's own
 * scan timeout. Counted, so status shows it. */
static void undelivered(struct mux *mx, const char *what, uint64_t req, int rc)
{
	mx->counters.undelivered++;
	EPSEC_DBG("%s for agent request %llu not passed on: %s", what, (unsigned long long)req,
		  strerror(-rc));
}

static void answer_error(struct mux *mx, struct epsec_conn *agent, uint64_t req, uint32_t code)
{
	int rc = send_error(agent, req, code);

	mx->counters.errors++;
	if (rc < 0)
		undelivered(mx, "ERROR", req, rc);
}

/* ------------------------------------------------------------ events */

/* The agent gets ERROR{code}; the record learns first. */
static void fail_event(struct mux *mx, struct mux_event *e, uint32_t code, bool sva_done)
{
	struct epsec_conn *agent = e->agent ? peer_conn(e->agent) : NULL;
	uint64_t req = e->agent_req;

	mux_route_finish(mx->route, e, sva_done, epsec_now_ms());
	if (agent)
		answer_error(mx, agent, req, code);
}

static void sva_gone(struct mux *mx, struct mux_conn *pc);

/* The agent's EVENT and the fd that came with it (-1: none), until the
 * first SVA has it: one that gets it again after its first SVA died
 * reads through READ, so the mux holds fds only for events not yet given. */
struct payload {
	epsec_msg *m;
	int fd;
	size_t *fds_held; /* the mux's count of such fds */
	size_t *inline_held; /* its agent's count of inline bytes */
	size_t inline_len;
};

static void payload_close_fd(struct payload *p)
{
	if (p->fd < 0)
		return;
	close(p->fd);
	p->fd = -1;
	(*p->fds_held)--;
}

static void free_payload(void *arg)
{
	struct payload *p = arg;

	payload_close_fd(p);
	*p->inline_held -= p->inline_len;
	epsec_msg_free(p->m);
	free(p);
}

/* Every event waiting for an SVA may hold an fd: past half the fd limit
 * (an agent flooding the mux), new ones go without theirs, so accepts and
 * SVA links still get fds. */
static int payload_take_fd(struct mux *mx, struct mux_conn *agent, epsec_msg *m)
{
	int fd = epsec_msg_carries_fd(m) ? epsec_conn_take_fd(agent->conn) : -1;

	if (fd < 0)
		return -1;
	if (mx->fds_held >= mx->fds_max) {
		close(fd);
		mx->counters.fds_refused++;
		return -1;
	}
	mx->fds_held++;
	return fd;
}

/* With the fd when that SVA takes fds; when its link cannot start one now,
 * the event waits in the backlog (-ENOBUFS) until the link drains. Without
 * (an SVA that takes none, or too many fds in flight), the SVA reads with
 * READ. */
static int send_payload(struct mux *mx, struct mux_conn *sva, struct payload *p)
{
	Epsec__Event *ev = p->m->event;
	int rc = -ETOOMANYREFS;

	if (p->fd >= 0 && sva->fds) {
		ev->has_local_fd = ev->local_fd = true;
		rc = epsec_conn_send_fd(sva->conn, p->m, p->fd);
		if (rc == -EAGAIN)
			return -ENOBUFS;
		if (rc == 0)
			mx->counters.fds_passed++;
	}
	if (rc == -ETOOMANYREFS) {
		ev->has_local_fd = ev->local_fd = false;
		rc = epsec_conn_send(sva->conn, p->m);
	}
	if (rc == 0)
		payload_close_fd(p);
	return rc;
}

/* 0 sent, 1 the SVA cannot take more now, <0 it failed and e is gone: to
 * the agent as ERROR, or with the rest of a dead SVA's events to others. */
static int send_event(struct mux *mx, struct mux_event *e)
{
	struct mux_conn *sva = e->sva->owner;
	int rc = send_payload(mx, sva, e->payload);

	if (rc == -ENOBUFS)
		return 1;
	if (rc == 0) {
		mux_route_sent(e);
		/* Time in our backlog is no time the SVA was silent. */
		mux_route_touch(mx->route, e, epsec_now_ms());
		sva->events++;
		return 0;
	}
	EPSEC_DBG("event %llu not given to sva %s: %s", (unsigned long long)e->id, conn_name(sva),
		  strerror(-rc));
	if (rc == -EMSGSIZE || rc == -ENOMEM || rc == -EINVAL) {
		mux_route_sent(e);
		fail_event(mx, e, (uint32_t)-rc, true);
	} else {
		/* The link is dead and its on_close will follow: do not let
		 * what it holds wait for that. */
		sva_gone(mx, sva);
	}
	return rc;
}

/* An SVA holds at most sva_window events it has not answered: the rest
 * wait here, not in its queues, so ZeroMQ's high-water marks (1000 on
 * each side) are never reached (an SVA that finds its link full may drop
 * a verdict) and a slow SVA does not sit on events another could take. */
static bool sva_full(const struct mux *mx, const struct mux_peer *sva)
{
	return sva->held - sva->n_backlog >= (size_t)mx->set->sva_window;
}

/* Called whenever the SVA answers or shows it is reading (each message
 * from it) and on every tick. */
static void flush_backlog(struct mux *mx, struct mux_peer *sva)
{
	struct mux_event *e;

	while ((e = mux_route_deferred(sva)) && !sva_full(mx, sva) && send_event(mx, e) != 1)
		;
}

/* Events wait in the SVA's backlog, in order, while it is full. */
static void give_to_sva(struct mux *mx, struct mux_event *e)
{
	mux_route_defer(e);
	flush_backlog(mx, e->sva);
}

static void flush_all(struct mux *mx)
{
	for (struct mux_list *n = mx->svas.next; n != &mx->svas; n = n->next)
		flush_backlog(mx, &MUX_CONTAINER(n, struct mux_conn, link)->route);
}

/* One line per tick, not per event: a hung SVA may hold thousands. */
static void expire_events(struct mux *mx, uint64_t now)
{
	struct mux_event *e;
	size_t n = 0;

	while ((e = mux_route_expired(mx->route, now, (uint64_t)mx->set->sva_timeout_ms))) {
		EPSEC_DBG("event %llu of agent %s: sva %s did not answer in time",
			  (unsigned long long)e->id, conn_name(e->agent->owner),
			  conn_name(e->sva->owner));
		fail_event(mx, e, ETIMEDOUT, false);
		n++;
	}
	if (n)
		EPSEC_WARN("%zu event(s) an SVA said nothing about for %d ms: agents told ETIMEDOUT",
			   n, mx->set->sva_timeout_ms);
}

/* ------------------------------------------------------------ peers */

static void conn_free(struct mux_conn *pc)
{
	mux_list_del(&pc->link);
	if (pc->log_fd >= 0)
		close(pc->log_fd);
	for (size_t i = 0; i < pc->n_engines; i++)
		free(pc->engines[i]);
	free(pc->engines);
	free(pc->id);
	free(pc->build);
	free(pc);
}

/* A protocol violation: ERROR and drop this peer only. The connection may
 * be gone when epsec_conn_reject returns, so this is the caller's last
 * word about pc. */
static void violation(struct mux_conn *pc, uint32_t code, const char *why)
{
	struct mux *mx = pc->mux;

	EPSEC_WARN("%s %s (%s) on %s: %s; dropping it", role_word(pc), conn_name(pc),
		   epsec_conn_peer(pc->conn), pc->endpoint->uri, why);
	mx->counters.rejected++;
	pc->rejected = true;
	if (!pc->welcomed)
		mux_list_del(&pc->link); /* out of `pending`: not timed out twice */
	/* No new events for an SVA on its way out. */
	if (pc->route.is_sva)
		mux_route_remove_sva(mx->route, &pc->route);
	epsec_conn_reject(pc->conn, code, why);
}

/* The newest generation of the SVAs connected now: one that left (or
 * said a wrong, far-future one) does not stay the one agents are told. */
static void newest_generation(struct mux *mx)
{
	uint64_t g = 0;

	for (struct mux_list *n = mx->svas.next; n != &mx->svas; n = n->next) {
		const struct mux_conn *sva = MUX_CONTAINER(n, struct mux_conn, link);

		if (!sva->rejected && sva->generation > g)
			g = sva->generation;
	}
	mx->generation = g;
}

static void sva_gone(struct mux *mx, struct mux_conn *pc)
{
	struct mux_event *e;

	mux_route_remove_sva(mx->route, &pc->route);
	while ((e = mux_route_orphan(&pc->route))) {
		if (mux_route_dispatch(mx->route, e, epsec_now_ms()) < 0) {
			fail_event(mx, e, EHOSTUNREACH, true);
			continue;
		}
		mx->counters.redispatched++;
		give_to_sva(mx, e);
	}
}

/* The reasons link.c drops a peer for: a message its role may not send,
 * one that makes no sense, broken or oversized framing. */
static bool hostile(int reason)
{
	return reason == -EPERM || reason == -EBADMSG || reason == -EPROTO || reason == -EMSGSIZE;
}

static void on_close(struct epsec_conn *c, int reason, void *arg)
{
	struct mux_conn *pc = arg;
	struct mux *mx = pc->mux;
	bool refused = !pc->rejected && hostile(reason), was_sva = pc->route.is_sva;

	/* link.c refused what it sent and said why; this names who. */
	if (refused)
		mx->counters.rejected++;
	if (refused || (pc->welcomed && !pc->rejected))
		EPSEC_INFO("%s %s (%s) on %s gone: %s", role_word(pc), conn_name(pc),
			   epsec_conn_peer(c), pc->endpoint->uri,
			   reason ? strerror(reason < 0 ? -reason : reason) : "closed");
	if (pc->route.is_sva)
		sva_gone(mx, pc);
	else
		mux_route_remove_agent(mx->route, &pc->route, epsec_now_ms());
	conn_free(pc);
	if (was_sva)
		newest_generation(mx);
}

/* ------------------------------------------------------------ HELLO */

/* NULL when acceptable, else why not (and the ERROR code). */
/* An agent's id names its host log and its line in status: one live
 * connection per id, so nobody can write into another agent's log or
 * pass for it while it is connected. A restarted agent whose old link is
 * not yet known dead retries, and gets in once peer_timeout_ms drops it. */
static bool agent_id_taken(const struct mux_conn *pc)
{
	const struct mux *mx = pc->mux;

	for (const struct mux_list *n = mx->agents.next; n != &mx->agents; n = n->next) {
		const struct mux_conn *other = MUX_CONTAINER(n, struct mux_conn, link);

		if (other != pc && !other->rejected && !strcmp(other->id, pc->id)) {
			pc->mux->counters.id_taken++;
			return true;
		}
	}
	return false;
}

static const char *check_hello(const struct mux_conn *pc, const Epsec__Hello *h,
			       uint32_t *code, uint32_t *version)
{
	uint32_t lo = h->version_min > EPSEC_PROTO_VERSION_MIN ? h->version_min
							       : EPSEC_PROTO_VERSION_MIN;
	uint32_t hi = h->version_max < EPSEC_PROTO_VERSION_MAX ? h->version_max
							       : EPSEC_PROTO_VERSION_MAX;

	*code = EPROTO;
	if ((enum epsec_role)h->role != pc->endpoint->role)
		return pc->endpoint->role == EPSEC_ROLE_SVA ? "only SVAs may connect here"
							    : "only agents may connect here";
	*code = EPROTONOSUPPORT;
	if (lo > hi)
		return "no protocol version in common";
	*code = EADDRINUSE;
	if (!pc->route.is_sva && agent_id_taken(pc))
		return "an agent with this id is connected already";
	*version = hi;
	return NULL;
}

static int copy_engines(struct mux_conn *pc, const Epsec__Hello *h)
{
	if (!h->n_engines)
		return 0;
	pc->engines = calloc(h->n_engines, sizeof(*pc->engines));
	if (!pc->engines)
		return -ENOMEM;
	for (size_t i = 0; i < h->n_engines; i++) {
		pc->engines[i] = strdup(h->engines[i] ? h->engines[i] : "");
		if (!pc->engines[i])
			return -ENOMEM;
		pc->n_engines = i + 1;
	}
	return 0;
}

static int adopt_hello(struct mux_conn *pc, const Epsec__Hello *h)
{
	pc->id = strdup(h->id && *h->id ? h->id : epsec_conn_peer(pc->conn));
	pc->build = strdup(h->build ? h->build : "");
	if (!pc->id || !pc->build)
		return -ENOMEM;
	pc->generation = h->has_generation ? h->generation : 0;
	pc->proto_min = h->version_min;
	pc->proto_max = h->version_max;
	/* An agent sends no bytes with an fd: offered only when an SVA can
	 * get the fd in turn, else every scan would pull all through READ. */
	pc->fds = pc->mux->set->pass_fds && epsec_conn_passes_fds(pc->conn) &&
		  (pc->route.is_sva || pc->mux->sva_fds) &&
		  epsec_caps_has(h->capabilities, h->n_capabilities, EPSEC_CAP_FD);
	pc->takes_generation =
		epsec_caps_has(h->capabilities, h->n_capabilities, EPSEC_CAP_GENERATION);
	return copy_engines(pc, h);
}

static int send_welcome(struct mux_conn *pc)
{
	char *caps[3] = { (char *)EPSEC_CAP_GENERATION };
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Welcome w = EPSEC__WELCOME__INIT;

	w.n_capabilities = 1;
	if (pc->fds)
		caps[w.n_capabilities++] = (char *)EPSEC_CAP_FD;
	if (pc->route.is_sva)
		caps[w.n_capabilities++] = (char *)EPSEC_CAP_WORKING;
	w.capabilities = caps;
	w.version = pc->version;
	w.id = (char *)pc->mux->set->common.id;
	w.build = (char *)(EPSEC_VERSION " (" EPSEC_BUILD_ID ")");
	env.body_case = EPSEC__ENVELOPE__BODY_WELCOME;
	env.welcome = &w;
	return epsec_conn_send(pc->conn, &env);
}

static void log_welcome(const struct mux_conn *pc)
{
	char engines[256] = "";
	size_t n = 0;

	for (size_t i = 0; i < pc->n_engines && n < sizeof(engines); i++)
		n += (size_t)snprintf(engines + n, sizeof(engines) - n, "%s%s", i ? "," : "",
				      pc->engines[i]);
	if (pc->route.is_sva)
		EPSEC_NOTICE("sva %s (%s) on %s: engines %s, generation %llu", pc->id,
			     epsec_conn_peer(pc->conn), pc->endpoint->uri,
			     n ? engines : "(none)", (unsigned long long)pc->generation);
	else
		EPSEC_INFO("agent %s (%s) on %s, build %s", pc->id, epsec_conn_peer(pc->conn),
			   pc->endpoint->uri, pc->build);
}

/* 0, or why the peer is refused (then it has been). */
static int welcome(struct mux_conn *pc, const Epsec__Hello *h)
{
	struct mux *mx = pc->mux;
	uint32_t code = ENOMEM, version = 0;
	const char *why = NULL;
	int rc = 0;

	/* Adopted first, so a refusal names the peer as it named itself. */
	if (adopt_hello(pc, h) < 0)
		why = "out of memory";
	if (!why)
		why = check_hello(pc, h, &code, &version);
	pc->version = version;
	if (!why && (rc = send_welcome(pc)) < 0)
		why = "WELCOME not sent", code = (uint32_t)-rc;
	if (!why && pc->route.is_sva && mux_route_add_sva(mx->route, &pc->route) < 0)
		why = "out of memory", code = ENOMEM;
	if (why) {
		mux_status_refused(mx, pc, why);
		violation(pc, code, why);
		return -EPROTO;
	}
	return 0;
}

/* ------------------------------------------------------------ generations */

static int send_generation(struct mux_conn *agent, uint64_t generation)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Generation g = EPSEC__GENERATION__INIT;

	if (!agent->takes_generation)
		return 0;
	g.generation = generation;
	env.body_case = EPSEC__ENVELOPE__BODY_GENERATION;
	env.generation = &g;
	return epsec_conn_send(agent->conn, &env);
}

/* An SVA has signatures newer than any before (a reload, or a new SVA):
 * every agent hears it now, so verdicts it cached and ignore marks it
 * placed under older signatures go before the next open, not after the
 * next verdict. */
/* A count worth a log line: its 1st, 2nd, 4th, 8th... time, so a peer
 * that keeps doing it cannot flood the log. */
static bool worth_saying(uint64_t n)
{
	return (n & (n - 1)) == 0;
}

/* Agents hear a new generation at most once a second: each one makes
 * them drop every cached verdict and ignore mark, so an SVA sending a
 * storm of them (or a verdict with a newer one each) must not make every
 * agent rescan everything all the time. Changes in between are announced
 * together, at the next tick. */
static void announce_generation(struct mux *mx)
{
	uint64_t now = epsec_now_ms();
	size_t told = 0;

	if (mx->generation <= mx->announced || now - mx->announced_ms < GENERATION_GAP_MS)
		return;
	mx->announced = mx->generation;
	mx->announced_ms = now;
	for (struct mux_list *n = mx->agents.next; n != &mx->agents; n = n->next) {
		struct mux_conn *agent = MUX_CONTAINER(n, struct mux_conn, link);

		if (!agent->rejected && agent->takes_generation &&
		    send_generation(agent, mx->announced) == 0)
			told++;
	}
	EPSEC_INFO("signature generation %llu: told %zu agent(s)",
		   (unsigned long long)mx->announced, told);
}

/* Generations are the time of a reload, in seconds: one far in the future
 * would leave every agent's cache dead until it restarts. */
static bool sane_generation(struct mux *mx, struct mux_conn *sva, uint64_t generation)
{
	uint64_t limit = (uint64_t)time(NULL) + GENERATION_FUTURE_S;

	if (generation <= limit)
		return true;
	mx->counters.bad_generations++;
	if (worth_saying(mx->counters.bad_generations))
		EPSEC_WARN("sva %s says signature generation %llu, far in the future: ignored "
			   "(%llu so far)", conn_name(sva), (unsigned long long)generation,
			   (unsigned long long)mx->counters.bad_generations);
	return false;
}

/* An SVA has signatures newer than any before (a reload, or a new SVA):
 * every agent hears it soon, so verdicts it cached and ignore marks it
 * placed under older signatures go before the next open. */
static void note_generation(struct mux *mx, struct mux_conn *sva, uint64_t generation)
{
	if (!sane_generation(mx, sva, generation))
		return;
	/* A verdict scanned across a reload says the older one. */
	if (generation > sva->generation)
		sva->generation = generation;
	if (generation <= mx->generation)
		return;
	mx->generation = generation;
	EPSEC_INFO("signature generation %llu (sva %s)", (unsigned long long)generation,
		   conn_name(sva));
	announce_generation(mx);
}

static void on_hello(struct mux_conn *pc, const Epsec__Hello *h)
{
	struct mux *mx = pc->mux;

	if (welcome(pc, h) < 0)
		return;
	pc->welcomed = true;
	mux_list_del(&pc->link);
	mux_list_add_tail(pc->route.is_sva ? &mx->svas : &mx->agents, &pc->link);
	log_welcome(pc);
	if (pc->route.is_sva)
		note_generation(mx, pc, pc->generation);
	else if (mx->announced)
		send_generation(pc, mx->announced);
}

/* ------------------------------------------------------------ agents */

static size_t inline_len(const epsec_msg *m)
{
	return m->event->has_inline_data ? m->event->inline_data.len : 0;
}

/* What one agent may hold in the mux (events waiting for an SVA or its
 * verdict, and their inline bytes): past it, its new EVENTs are refused
 * with ERROR ENOBUFS (its on_overload) and counted, and everyone else is
 * served as before. */
static bool over_limit(struct mux_conn *pc, const epsec_msg *m)
{
	const struct mux_settings *set = pc->mux->set;

	if (pc->route.in_flight < (size_t)set->agent_max_events &&
	    pc->inline_held + inline_len(m) <= (uint64_t)set->agent_max_inline)
		return false;
	pc->over_limit++;
	pc->mux->counters.over_limit++;
	if (worth_saying(pc->over_limit))
		EPSEC_WARN("agent %s holds %zu events and %zu inline bytes in the mux: its new "
			   "events are refused (%llu so far; agent_max_events, agent_max_inline)",
			   pc->id, pc->route.in_flight, pc->inline_held,
			   (unsigned long long)pc->over_limit);
	return true;
}

static void agent_event(struct mux_conn *pc, epsec_msg *m)
{
	struct mux *mx = pc->mux;
	uint64_t req = m->event->req_id;
	struct payload *p;
	struct mux_event *e;
	int rc;

	pc->events++;
	mx->counters.events++;
	if (over_limit(pc, m)) {
		payload_close_fd(&(struct payload){ .fd = payload_take_fd(mx, pc, m),
						    .fds_held = &mx->fds_held });
		epsec_msg_free(m);
		answer_error(mx, pc->conn, req, ENOBUFS);
		return;
	}
	p = malloc(sizeof(*p));
	rc = p ? 0 : -ENOMEM;
	if (p) {
		p->m = m;
		p->fds_held = &mx->fds_held;
		p->fd = payload_take_fd(mx, pc, m);
		p->inline_held = &pc->inline_held;
		p->inline_len = inline_len(m);
		pc->inline_held += p->inline_len;
		rc = mux_route_submit(mx->route, &pc->route, req, p, mx->now_us / 1000, &e);
	}
	if (rc < 0) {
		if (p)
			free_payload(p);
		else
			epsec_msg_free(m);
	}
	if (rc == -EEXIST) {
		violation(pc, EPROTO, "EVENT reuses a req_id still in flight");
		return;
	}
	if (rc < 0) {
		answer_error(mx, pc->conn, req, (uint32_t)-rc);
		return;
	}
	e->recv_us = mx->now_us;
	m->event->req_id = e->id;
	give_to_sva(mx, e);
}

static void agent_data(struct mux_conn *pc, epsec_msg *m)
{
	struct mux *mx = pc->mux;
	struct mux_event *e;
	struct epsec_conn *sva;
	int rc = mux_route_agent_ref(&pc->route, m->data->req_id, &e);

	if (rc < 0) {
		epsec_msg_free(m);
		violation(pc, EPROTO, "DATA for an event it does not have");
		return;
	}
	if (rc == 0) {
		sva = peer_conn(e->sva);
		m->data->req_id = e->id;
	} else {
		sva = NULL; /* answered meanwhile: nobody waits for it */
	}
	mux_route_data_seen(mx->route, e);
	if (sva && (rc = epsec_conn_send(sva, m)) < 0)
		EPSEC_DBG("DATA for event %llu not passed on: %s",
			  (unsigned long long)m->data->req_id, strerror(-rc));
	epsec_msg_free(m);
}

/* LOG lines of a peer (DEBUG_DEST=2) go to agent_log_dir/<its id>.log. */
/* A token bucket per peer: agent_log_rate lines a second, bursts of ten
 * seconds' worth; the rest is dropped and counted, so no peer can fill
 * the disk or drown the others' lines. */
static bool log_allowed(struct mux_conn *pc)
{
	uint64_t now = pc->mux->now_us / 1000;
	double rate = pc->mux->set->agent_log_rate, burst = rate * 10;

	if (!pc->log_refill_ms)
		pc->log_tokens = burst;
	else
		pc->log_tokens += (double)(now - pc->log_refill_ms) * rate / 1000.0;
	if (pc->log_tokens > burst)
		pc->log_tokens = burst;
	pc->log_refill_ms = now;
	if (pc->log_tokens >= 1) {
		pc->log_tokens -= 1;
		return true;
	}
	pc->logs_dropped++;
	pc->mux->counters.logs_dropped++;
	if (worth_saying(pc->logs_dropped))
		EPSEC_WARN("%s %s logs faster than agent_log_rate (%d lines/s): %llu line(s) "
			   "dropped so far", role_word(pc), pc->id, pc->mux->set->agent_log_rate,
			   (unsigned long long)pc->logs_dropped);
	return false;
}

static void peer_log(struct mux_conn *pc, const Epsec__Log *l)
{
	const char *dir = pc->mux->set->agent_log_dir;
	int rc;

	/* An agent's detection record (agent/detect.c): detections log. */
	if (!pc->route.is_sva && pc->mux->detect && l->source && !strcmp(l->source, "detection")) {
		mux_detect_record(pc->mux->detect, pc->id, epsec_conn_peer(pc->conn), l->text);
		return;
	}

	if (!log_allowed(pc))
		return;
	if (pc->log_fd < 0 && !pc->log_failed) {
		rc = mux_agentlog_open(dir, pc->id);
		if (rc < 0) {
			pc->log_failed = true;
			EPSEC_WARN("%s %s: cannot open its log in %s: %s", role_word(pc), pc->id,
				   dir, strerror(-rc));
			return;
		}
		pc->log_fd = rc;
	}
	if (pc->log_fd < 0)
		return;
	rc = mux_agentlog_write(pc->log_fd, l->has_time_ns ? l->time_ns : 0, l->level, l->source,
				l->text);
	if (rc < 0) {
		EPSEC_WARN("%s %s: cannot write its log in %s: %s", role_word(pc), pc->id, dir,
			   strerror(-rc));
		close(pc->log_fd);
		pc->log_fd = -1;
		pc->log_failed = true;
	}
}

static void agent_msg(struct mux_conn *pc, epsec_msg *m)
{
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_EVENT:
		agent_event(pc, m);
		return;
	case EPSEC__ENVELOPE__BODY_DATA:
		agent_data(pc, m);
		return;
	case EPSEC__ENVELOPE__BODY_LOG:
		peer_log(pc, m->log);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		EPSEC_INFO("agent %s reports: %s (%u)", pc->id,
			   m->error->message ? m->error->message : "", m->error->code);
		break;
	default:
		epsec_msg_free(m);
		violation(pc, EPROTO, "message not allowed from an agent here");
		return;
	}
	epsec_msg_free(m);
}

/* ------------------------------------------------------------ SVAs */

/* false: the SVA was dropped (pc is gone). */
static bool sva_read(struct mux_conn *pc, epsec_msg *m)
{
	struct mux *mx = pc->mux;
	Epsec__Read *rd = m->read;
	uint64_t id = rd->req_id;
	struct mux_event *e;
	int rc = mux_route_sva_ref(mx->route, &pc->route, id, &e);

	if (rc < 0 || rd->length > EPSEC_READ_MAX) {
		epsec_msg_free(m);
		violation(pc, EPROTO,
			  rc < 0 ? "READ for an event it does not hold" : "READ longer than 1 MiB");
		return false;
	}
	if (rc == 1) {
		send_data_error(pc->conn, id, rd->offset, ECANCELED);
	} else {
		rd->req_id = e->agent_req;
		mux_route_read_sent(e);
		mux_route_touch(mx->route, e, mx->now_us / 1000);
		rc = epsec_conn_send(peer_conn(e->agent), m);
		if (rc < 0) {
			mux_route_data_seen(mx->route, e);
			send_data_error(pc->conn, id, rd->offset, -rc);
		}
	}
	epsec_msg_free(m);
	return true;
}

static bool answered_before(const struct mux_conn *pc, uint64_t id)
{
	for (unsigned i = 0; i < MUX_ANSWERED_KEPT; i++)
		if (pc->answered[i] == id)
			return true;
	return false;
}

static void note_answered(struct mux_conn *pc, uint64_t id)
{
	pc->answered[pc->answered_next++ % MUX_ANSWERED_KEPT] = id;
}

/* A second answer to an event it answered lately: a slip an honest SVA
 * can make (a retry after a stall); only the first answer counts. */
static void duplicate_verdict(struct mux_conn *pc, uint64_t id)
{
	pc->duplicates++;
	pc->mux->counters.duplicates++;
	if (worth_saying(pc->duplicates))
		EPSEC_WARN("sva %s answered event %llu twice (%llu so far): the second answer "
			   "is dropped", pc->id, (unsigned long long)id,
			   (unsigned long long)pc->duplicates);
}

static bool sva_verdict(struct mux_conn *pc, epsec_msg *m)
{
	struct mux *mx = pc->mux;
	struct mux_event *e;
	struct epsec_conn *agent;
	uint64_t recv_us;
	int rc = mux_route_sva_ref(mx->route, &pc->route, m->verdict->req_id, &e);

	if (rc < 0 && answered_before(pc, m->verdict->req_id)) {
		duplicate_verdict(pc, m->verdict->req_id);
		epsec_msg_free(m);
		return true;
	}
	if (rc < 0) {
		epsec_msg_free(m);
		violation(pc, EPROTO, "VERDICT for an event it does not hold");
		return false;
	}
	note_answered(pc, m->verdict->req_id);
	if (rc == 1) {
		mux_route_sva_done(mx->route, e);
		epsec_msg_free(m);
		return true;
	}
	agent = peer_conn(e->agent);
	m->verdict->req_id = e->agent_req;
	recv_us = e->recv_us;
	mux_route_finish(mx->route, e, true, mx->now_us / 1000);
	mx->counters.verdicts++;
	/* A reload bumps the generation; the SVA's HELLO said the old one. */
	if (m->verdict->has_generation)
		note_generation(mx, pc, m->verdict->generation);
	/* Agents see only announced generations: a verdict of newer
	 * signatures is cached as of the older, and so dropped sooner. */
	if (m->verdict->has_generation && m->verdict->generation > mx->announced)
		m->verdict->generation = mx->announced;
	if ((rc = epsec_conn_send(agent, m)) < 0)
		undelivered(mx, "VERDICT", m->verdict->req_id, rc);
	else
		mux_latency_add(&mx->latency, mx->now_us - recv_us);
	epsec_msg_free(m);
	return true;
}

/* An SVA that cannot scan an event says so with ERROR{req_id}: the agent
 * gets the ERROR and applies its policy. */
static void sva_error(struct mux_conn *pc, const Epsec__Error *err)
{
	struct mux *mx = pc->mux;
	struct mux_event *e;
	int rc;

	if (!err->has_req_id) {
		EPSEC_WARN("sva %s reports: %s (%u)", pc->id, err->message ? err->message : "",
			   err->code);
		return;
	}
	rc = mux_route_sva_ref(mx->route, &pc->route, err->req_id, &e);
	if (rc == 0)
		fail_event(mx, e, err->code ? err->code : EIO, true);
	else if (rc == 1)
		mux_route_sva_done(mx->route, e);
}

/* The SVA still holds these events (queued or scanning): their silence
 * clock starts again, and so does that of what waits for it here (it is
 * alive, its queue moves). Ids it does not hold are ignored: a WORKING
 * crossing a verdict or a re-dispatch on the wire is no violation. */
static void sva_working(struct mux_conn *pc, const Epsec__Working *w)
{
	struct mux *mx = pc->mux;
	uint64_t now = mx->now_us / 1000;
	struct mux_event *e;

	for (size_t i = 0; i < w->n_req_ids; i++)
		if (mux_route_sva_ref(mx->route, &pc->route, w->req_ids[i], &e) == 0)
			mux_route_touch(mx->route, e, now);
	mux_route_touch_backlog(mx->route, &pc->route, now);
}

/* After each message the SVA may have room again (it answered, or it is
 * reading): its backlog moves on. */
static void sva_msg(struct mux_conn *pc, epsec_msg *m)
{
	bool alive = true;

	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_READ:
		alive = sva_read(pc, m);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		alive = sva_verdict(pc, m);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		sva_error(pc, m->error);
		epsec_msg_free(m);
		break;
	case EPSEC__ENVELOPE__BODY_LOG:
		peer_log(pc, m->log);
		epsec_msg_free(m);
		break;
	case EPSEC__ENVELOPE__BODY_GENERATION:
		note_generation(pc->mux, pc, m->generation->generation);
		epsec_msg_free(m);
		break;
	case EPSEC__ENVELOPE__BODY_WORKING:
		sva_working(pc, m->working);
		epsec_msg_free(m);
		break;
	default:
		epsec_msg_free(m);
		violation(pc, EPROTO, "message not allowed from an SVA here");
		return;
	}
	if (alive)
		flush_backlog(pc->mux, &pc->route);
}

/* ------------------------------------------------------------ link glue */

static void on_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct mux_conn *pc = arg;
	bool hello = m->body_case == EPSEC__ENVELOPE__BODY_HELLO;

	pc->mux->now_us = epsec_now_us();
	pc->last_seen_ms = pc->mux->now_us / 1000;
	if (pc->rejected || m->body_case == EPSEC__ENVELOPE__BODY_PING ||
	    m->body_case == EPSEC__ENVELOPE__BODY_PONG) {
		epsec_msg_free(m);
		return;
	}
	if (!pc->welcomed || hello) {
		if (pc->welcomed || !hello) {
			epsec_msg_free(m);
			violation(pc, EPROTO, hello ? "HELLO twice" : "expected HELLO first");
			return;
		}
		on_hello(pc, m->hello);
		epsec_msg_free(m);
		return;
	}
	if (pc->route.is_sva)
		sva_msg(pc, m);
	else
		agent_msg(pc, m);
}

/* An SVA link that could not start an EVENT with its fd has room again. */
static void on_drain(struct epsec_conn *c, void *arg)
{
	struct mux_conn *pc = arg;

	if (pc->route.is_sva && pc->welcomed && !pc->rejected)
		flush_backlog(pc->mux, &pc->route);
}

static int on_accept(struct epsec_conn *c, void *arg)
{
	struct mux_endpoint *ep = arg;
	struct mux_conn *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return -ENOMEM;
	pc->mux = ep->mux;
	pc->conn = c;
	pc->endpoint = ep;
	pc->log_fd = -1;
	pc->last_seen_ms = epsec_now_ms();
	mux_route_peer_init(&pc->route, ep->role == EPSEC_ROLE_SVA, pc);
	mux_list_add_tail(&ep->mux->pending, &pc->link);
	epsec_conn_set_handlers(c, on_msg, on_close, pc);
	epsec_conn_set_drain_handler(c, on_drain);
	EPSEC_DBG("%s connection from %s on %s", role_word(pc), epsec_conn_peer(c), ep->uri);
	return 0;
}

/* Connections wait in `pending` in arrival order: only the head can be
 * overdue. Each is unlinked before it is rejected, whenever its
 * on_close runs. */
static void expire_pending(struct mux *mx, uint64_t now)
{
	while (!mux_list_empty(&mx->pending)) {
		struct mux_conn *pc = MUX_CONTAINER(mx->pending.next, struct mux_conn, link);

		if (now - pc->last_seen_ms < HELLO_TIMEOUT_MS)
			return;
		mux_list_del(&pc->link);
		violation(pc, ETIMEDOUT, "no HELLO");
	}
}

static void on_tick(struct epsec_loop *loop, void *arg)
{
	struct mux *mx = arg;
	uint64_t now = epsec_now_ms();
	uint64_t ttl = 3 * (uint64_t)mx->set->sva_timeout_ms;

	flush_all(mx);
	announce_generation(mx);
	expire_events(mx, now);
	mux_route_reap(mx->route, now, ttl > REAP_MIN_MS ? ttl : REAP_MIN_MS);
	expire_pending(mx, now);
}

/* ------------------------------------------------------------ life */

static int listen_all(struct mux *mx, const struct epsec_strlist *uris, enum epsec_role role)
{
	for (size_t i = 0; i < uris->n; i++) {
		struct mux_endpoint *ep = &mx->endpoints[mx->n_endpoints];
		int rc;

		ep->mux = mx;
		ep->uri = uris->v[i];
		ep->role = role;
		rc = epsec_listen(mx->loop, ep->uri, NULL, role, on_accept, ep, &ep->listener);
		if (rc < 0) {
			EPSEC_ERR("cannot listen for %ss on %s: %s",
				  role == EPSEC_ROLE_SVA ? "SVA" : "agent", ep->uri, strerror(-rc));
			return rc;
		}
		mx->n_endpoints++;
		if (role == EPSEC_ROLE_SVA && epsec_listener_passes_fds(ep->listener))
			mx->sva_fds = true;
		EPSEC_INFO("listening for %ss on %s", role == EPSEC_ROLE_SVA ? "SVA" : "agent",
			   ep->uri);
	}
	return 0;
}

static unsigned tick_ms(const struct mux_settings *set)
{
	unsigned t = (unsigned)set->sva_timeout_ms / 10;

	return t < 10 ? 10 : t > 500 ? 500 : t;
}

static size_t fds_max(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 65536;
	return rl.rlim_cur / 2 > 64 ? (size_t)(rl.rlim_cur / 2) : 64;
}

int mux_new(struct epsec_loop *loop, const struct mux_settings *set, struct mux **out)
{
	struct mux *mx = calloc(1, sizeof(*mx));
	int rc;

	if (!mx)
		return -ENOMEM;
	mx->loop = loop;
	mx->set = set;
	mx->timer = -1;
	mx->started_ms = epsec_now_ms();
	mx->fds_max = fds_max();
	mux_list_init(&mx->agents);
	mux_list_init(&mx->svas);
	mux_list_init(&mx->pending);
	mx->endpoints = calloc(set->agents.n + set->svas.n, sizeof(*mx->endpoints));
	rc = mx->endpoints ? mux_route_new(free_payload, &mx->route) : -ENOMEM;
	if (rc == 0)
		rc = listen_all(mx, &set->agents, EPSEC_ROLE_AGENT);
	if (rc == 0)
		rc = listen_all(mx, &set->svas, EPSEC_ROLE_SVA);
	if (rc == 0)
		rc = mx->timer = epsec_loop_add_timer(loop, tick_ms(set), on_tick, mx);
	if (rc < 0) {
		mux_free(mx);
		return rc;
	}
	*out = mx;
	return 0;
}

/* Shutdown: connections closed without callbacks, their records freed. */
static void close_all(struct mux *mx, struct mux_list *head)
{
	while (!mux_list_empty(head)) {
		struct mux_conn *pc = MUX_CONTAINER(head->next, struct mux_conn, link);

		epsec_conn_close(pc->conn);
		if (pc->route.is_sva)
			mux_route_remove_sva(mx->route, &pc->route);
		else
			mux_route_remove_agent(mx->route, &pc->route, 0);
		conn_free(pc);
	}
}

void mux_free(struct mux *mx)
{
	if (!mx)
		return;
	if (mx->timer > 0)
		epsec_loop_del_timer(mx->loop, mx->timer);
	/* Agents first: their events die, so the SVAs hold no live ones. */
	close_all(mx, &mx->agents);
	close_all(mx, &mx->pending);
	close_all(mx, &mx->svas);
	for (size_t i = 0; i < mx->n_endpoints; i++)
		epsec_listener_close(mx->endpoints[i].listener);
	mux_route_free(mx->route);
	free(mx->endpoints);
	free(mx);
}

void mux_reopen_logs(struct mux *mx)
{
	for (struct mux_list *n = mx->agents.next; n != &mx->agents; n = n->next) {
		struct mux_conn *pc = MUX_CONTAINER(n, struct mux_conn, link);

		if (pc->log_fd >= 0)
			close(pc->log_fd);
		pc->log_fd = -1;
		pc->log_failed = false;
	}
}
