/* SPDX-License-Identifier: MIT */
/* The mux's routing state, without any I/O: which agent and which SVA own
 * each in-flight event, which SVA gets the next one, what timed out. Kept
 * apart from the connections so it can be tested on its own.
 *
 * An event record lives from the agent's EVENT until neither side can
 * still name it: answered (VERDICT or ERROR to the agent) is "dead", but
 * the record stays while the SVA may still send READ/VERDICT for it or
 * the agent may still answer a READ, so those late messages are told
 * apart from protocol violations. Dead records are reaped after a TTL. */
#ifndef EPSEC_MUX_ROUTE_H
#define EPSEC_MUX_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "list.h"
#include "map.h"

/* The routing side of one agent or SVA connection. */
struct mux_peer {
	void *owner;             /* the caller's connection object */
	struct mux_list events;  /* records that still name this peer */
	struct mux_map by_req;   /* agent: its own req_id -> record */
	struct mux_list backlog; /* SVA: given it but not yet sent (it was full) */
	size_t n_backlog;
	size_t in_flight;        /* live events (given, not yet answered) */
	size_t held;             /* SVA: live + dead ones it has not answered */
	size_t slot;             /* SVA: index in the pool */
	bool is_sva;
	bool pooled;             /* SVA: may be picked */
};

struct mux_event {
	uint64_t id;             /* mux-wide, what the SVA sees */
	uint64_t agent_req;      /* the agent's own req_id */
	struct mux_peer *agent;  /* NULL once the agent can no longer name it */
	struct mux_peer *sva;    /* NULL once the SVA can no longer name it */
	void *payload;           /* the original EVENT, for re-dispatch; NULL when dead */
	uint64_t since_ms;       /* dispatch time (live) or time of death */
	uint64_t recv_us;        /* when the agent's EVENT arrived (the caller's) */
	unsigned reads;          /* READs forwarded to the agent, not answered */
	bool dead;
	struct mux_list agent_link, sva_link, time_link;
	struct mux_list wait_link; /* in its SVA's backlog while not sent */
};

struct mux_route;

/* free_payload releases an event's payload when it dies (may be NULL). */
int mux_route_new(void (*free_payload)(void *), struct mux_route **out);
/* Frees every record; call mux_route_remove_* for live peers first. */
void mux_route_free(struct mux_route *r);

void mux_route_peer_init(struct mux_peer *p, bool is_sva, void *owner);
int mux_route_add_sva(struct mux_route *r, struct mux_peer *sva);
/* Take an SVA out of the pool. Its dead records are released; its live
 * ones stay with it until taken with mux_route_orphan. */
void mux_route_remove_sva(struct mux_route *r, struct mux_peer *sva);
/* Next live event of a removed SVA, detached from it (NULL: none left).
 * Hand it to mux_route_dispatch or mux_route_finish. */
struct mux_event *mux_route_orphan(struct mux_peer *sva);
/* The agent is gone: its events die, its records forget it. */
void mux_route_remove_agent(struct mux_route *r, struct mux_peer *agent, uint64_t now_ms);

/* The pooled SVA holding the fewest events (ties rotate), or NULL. */
struct mux_peer *mux_route_pick(struct mux_route *r);
/* A new event from `agent`: give it an id and an SVA. 0 and *out (the
 * record owns payload), -EEXIST (the agent already has this req_id in
 * flight), -EHOSTUNREACH (no SVA), -ENOMEM; on error payload stays the
 * caller's. */
int mux_route_submit(struct mux_route *r, struct mux_peer *agent, uint64_t agent_req,
		     void *payload, uint64_t now_ms, struct mux_event **out);
/* Re-dispatch an orphan: 0, or -EHOSTUNREACH with no SVA left. */
int mux_route_dispatch(struct mux_route *r, struct mux_event *e, uint64_t now_ms);
/* The agent has its answer (VERDICT or ERROR). sva_done: the SVA will not
 * name it again (it sent the VERDICT). */
void mux_route_finish(struct mux_route *r, struct mux_event *e, bool sva_done, uint64_t now_ms);

/* What an SVA names by mux id: 0 live and held by it, 1 dead but still
 * its own (late message: drop), -EPROTO unknown or someone else's. */
int mux_route_sva_ref(struct mux_route *r, const struct mux_peer *sva, uint64_t id,
		      struct mux_event **out);
/* What an agent names by its req_id: 0 live, 1 dead (late), -EPROTO unknown. */
int mux_route_agent_ref(const struct mux_peer *agent, uint64_t req, struct mux_event **out);
/* A READ went to the agent / its DATA came back. */
void mux_route_read_sent(struct mux_event *e);
void mux_route_data_seen(struct mux_route *r, struct mux_event *e);
/* The SVA answered a dead event: it will not name it again. */
void mux_route_sva_done(struct mux_route *r, struct mux_event *e);

/* An SVA that cannot take more now (-ENOBUFS) keeps its events in a
 * backlog, in order, until it can; answering or detaching an event takes
 * it off. An event that dies unsent is not waited for from the SVA. */
void mux_route_defer(struct mux_event *e);
struct mux_event *mux_route_deferred(const struct mux_peer *sva);
void mux_route_sent(struct mux_event *e);

/* Its SVA showed it still works on it (WORKING, READ): the timeout
 * counts from now. */
void mux_route_touch(struct mux_route *r, struct mux_event *e, uint64_t now_ms);
/* The same for every event waiting in the SVA's backlog. */
void mux_route_touch_backlog(struct mux_route *r, struct mux_peer *sva, uint64_t now_ms);

/* The oldest live event its SVA said nothing about for timeout_ms, or NULL. The
 * caller answers it and calls mux_route_finish before asking again. */
struct mux_event *mux_route_expired(struct mux_route *r, uint64_t now_ms, uint64_t timeout_ms);
/* Free dead records older than ttl_ms whatever still names them. */
void mux_route_reap(struct mux_route *r, uint64_t now_ms, uint64_t ttl_ms);

size_t mux_route_live(const struct mux_route *r);
size_t mux_route_records(const struct mux_route *r);

#endif
