/* SPDX-License-Identifier: MIT */
/* The mux's routing state: in-flight event records indexed by mux id and
 * by (agent, req_id), the SVA pool with least-loaded choice, and the two
 * time-ordered lists (live by dispatch time, dead by time of death) that
 * make timeouts and reaping O(expired) instead of a scan. */
#include "config.h"
#include "route.h"

#include <errno.h>
#include <stdlib.h>

struct mux_route {
	struct mux_map by_id;
	struct mux_peer **svas;
	size_t n_svas, cap_svas;
	size_t cursor;          /* where the next tie-break starts */
	struct mux_list live;   /* oldest dispatch first */
	struct mux_list dead;   /* oldest death first */
	size_t n_live, n_records;
	uint64_t next_id;
	void (*free_payload)(void *);
};

#define EVENT_OF(ptr, member) MUX_CONTAINER(ptr, struct mux_event, member)

int mux_route_new(void (*free_payload)(void *), struct mux_route **out)
{
	struct mux_route *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	mux_map_init(&r->by_id);
	mux_list_init(&r->live);
	mux_list_init(&r->dead);
	r->free_payload = free_payload;
	*out = r;
	return 0;
}

static void drop_payload(struct mux_route *r, struct mux_event *e)
{
	if (e->payload && r->free_payload)
		r->free_payload(e->payload);
	e->payload = NULL;
}

static void free_list(struct mux_route *r, struct mux_list *head)
{
	while (!mux_list_empty(head)) {
		struct mux_event *e = EVENT_OF(head->next, time_link);

		mux_list_del(&e->time_link);
		drop_payload(r, e);
		free(e);
	}
}

void mux_route_free(struct mux_route *r)
{
	if (!r)
		return;
	free_list(r, &r->live);
	free_list(r, &r->dead);
	mux_map_free(&r->by_id);
	free(r->svas);
	free(r);
}

void mux_route_peer_init(struct mux_peer *p, bool is_sva, void *owner)
{
	p->owner = owner;
	mux_list_init(&p->events);
	mux_map_init(&p->by_req);
	mux_list_init(&p->backlog);
	p->n_backlog = 0;
	p->in_flight = 0;
	p->held = 0;
	p->slot = 0;
	p->is_sva = is_sva;
	p->pooled = false;
}

int mux_route_add_sva(struct mux_route *r, struct mux_peer *sva)
{
	if (sva->pooled)
		return 0;
	if (r->n_svas == r->cap_svas) {
		size_t cap = r->cap_svas ? r->cap_svas * 2 : 8;
		struct mux_peer **v = realloc(r->svas, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->svas = v;
		r->cap_svas = cap;
	}
	sva->slot = r->n_svas;
	sva->pooled = true;
	r->svas[r->n_svas++] = sva;
	return 0;
}

static void pool_remove(struct mux_route *r, struct mux_peer *sva)
{
	struct mux_peer *last;

	if (!sva->pooled)
		return;
	last = r->svas[--r->n_svas];
	r->svas[sva->slot] = last;
	last->slot = sva->slot;
	sva->pooled = false;
}

/* SVAs are few (a pool of appliances), events many: a pass over the pool
 * per event is cheap, and a rotating start spreads ties. */
struct mux_peer *mux_route_pick(struct mux_route *r)
{
	struct mux_peer *best = NULL;
	size_t n = r->n_svas;

	if (!n)
		return NULL;
	for (size_t k = 0; k < n; k++) {
		struct mux_peer *s = r->svas[(r->cursor + k) % n];

		if (!best || s->held < best->held)
			best = s;
	}
	r->cursor = (r->cursor + 1) % n;
	return best;
}

static void attach_sva(struct mux_event *e, struct mux_peer *sva)
{
	e->sva = sva;
	mux_list_add_tail(&sva->events, &e->sva_link);
	sva->held++;
	if (!e->dead)
		sva->in_flight++;
}

static bool deferred(const struct mux_event *e)
{
	return !mux_list_empty(&e->wait_link);
}

void mux_route_defer(struct mux_event *e)
{
	if (deferred(e) || !e->sva)
		return;
	mux_list_add_tail(&e->sva->backlog, &e->wait_link);
	e->sva->n_backlog++;
}

struct mux_event *mux_route_deferred(const struct mux_peer *sva)
{
	if (mux_list_empty(&sva->backlog))
		return NULL;
	return EVENT_OF(sva->backlog.next, wait_link);
}

void mux_route_sent(struct mux_event *e)
{
	if (!deferred(e))
		return;
	mux_list_del(&e->wait_link);
	e->sva->n_backlog--;
}

static void detach_sva(struct mux_event *e)
{
	struct mux_peer *sva = e->sva;

	mux_route_sent(e);
	mux_list_del(&e->sva_link);
	sva->held--;
	if (!e->dead)
		sva->in_flight--;
	e->sva = NULL;
}

static void detach_agent(struct mux_event *e)
{
	struct mux_peer *agent = e->agent;

	mux_list_del(&e->agent_link);
	mux_map_del(&agent->by_req, e->agent_req);
	if (!e->dead)
		agent->in_flight--;
	e->agent = NULL;
}

static void free_record(struct mux_route *r, struct mux_event *e)
{
	mux_map_del(&r->by_id, e->id);
	mux_list_del(&e->time_link);
	if (!e->dead)
		r->n_live--;
	drop_payload(r, e);
	r->n_records--;
	free(e);
}

/* Let go of what a dead record no longer needs; free it when nobody can
 * name it any more. */
static void settle(struct mux_route *r, struct mux_event *e)
{
	if (!e->dead)
		return;
	if (e->agent && e->reads == 0)
		detach_agent(e);
	if (!e->agent && !e->sva)
		free_record(r, e);
}

static void mark_dead(struct mux_route *r, struct mux_event *e, uint64_t now_ms)
{
	if (e->dead)
		return;
	if (e->sva)
		e->sva->in_flight--;
	if (e->agent)
		e->agent->in_flight--;
	e->dead = true;
	r->n_live--;
	drop_payload(r, e);
	mux_list_del(&e->time_link);
	mux_list_add_tail(&r->dead, &e->time_link);
	e->since_ms = now_ms;
}

/* A dead record the agent reuses the req_id of: the agent has moved on. */
static int take_req(struct mux_route *r, struct mux_peer *agent, uint64_t req)
{
	struct mux_event *old = mux_map_get(&agent->by_req, req);

	if (!old)
		return 0;
	if (!old->dead)
		return -EEXIST;
	detach_agent(old);
	settle(r, old);
	return 0;
}

static int index_record(struct mux_route *r, struct mux_peer *agent, struct mux_event *e)
{
	int rc = mux_map_put(&r->by_id, e->id, e);

	if (rc < 0)
		return rc;
	rc = mux_map_put(&agent->by_req, e->agent_req, e);
	if (rc < 0)
		mux_map_del(&r->by_id, e->id);
	return rc;
}

int mux_route_submit(struct mux_route *r, struct mux_peer *agent, uint64_t agent_req,
		     void *payload, uint64_t now_ms, struct mux_event **out)
{
	struct mux_peer *sva;
	struct mux_event *e;
	int rc = take_req(r, agent, agent_req);

	if (rc < 0)
		return rc;
	sva = mux_route_pick(r);
	if (!sva)
		return -EHOSTUNREACH;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	mux_list_init(&e->wait_link);
	e->id = ++r->next_id;
	e->agent_req = agent_req;
	rc = index_record(r, agent, e);
	if (rc < 0) {
		free(e);
		return rc;
	}
	e->agent = agent;
	mux_list_add_tail(&agent->events, &e->agent_link);
	agent->in_flight++;
	attach_sva(e, sva);
	e->payload = payload;
	e->since_ms = now_ms;
	mux_list_add_tail(&r->live, &e->time_link);
	r->n_live++;
	r->n_records++;
	*out = e;
	return 0;
}

int mux_route_dispatch(struct mux_route *r, struct mux_event *e, uint64_t now_ms)
{
	struct mux_peer *sva = mux_route_pick(r);

	if (!sva)
		return -EHOSTUNREACH;
	attach_sva(e, sva);
	/* A fresh deadline: the new SVA starts from scratch. */
	e->since_ms = now_ms;
	mux_list_del(&e->time_link);
	mux_list_add_tail(&r->live, &e->time_link);
	return 0;
}

void mux_route_finish(struct mux_route *r, struct mux_event *e, bool sva_done, uint64_t now_ms)
{
	/* Never sent: the SVA will not name it. */
	if (deferred(e))
		sva_done = true;
	mark_dead(r, e, now_ms);
	if (sva_done && e->sva)
		detach_sva(e);
	settle(r, e);
}

void mux_route_remove_sva(struct mux_route *r, struct mux_peer *sva)
{
	struct mux_list *n, *next;

	pool_remove(r, sva);
	for (n = sva->events.next; n != &sva->events; n = next) {
		struct mux_event *e = EVENT_OF(n, sva_link);

		next = n->next;
		if (e->dead) {
			detach_sva(e);
			settle(r, e);
		}
	}
}

struct mux_event *mux_route_orphan(struct mux_peer *sva)
{
	struct mux_event *e;

	if (mux_list_empty(&sva->events))
		return NULL;
	e = EVENT_OF(sva->events.next, sva_link);
	detach_sva(e);
	return e;
}

void mux_route_remove_agent(struct mux_route *r, struct mux_peer *agent, uint64_t now_ms)
{
	while (!mux_list_empty(&agent->events)) {
		struct mux_event *e = EVENT_OF(agent->events.next, agent_link);

		if (deferred(e))
			detach_sva(e); /* never sent: no SVA will name it */
		mark_dead(r, e, now_ms);
		detach_agent(e);
		settle(r, e);
	}
	mux_map_free(&agent->by_req);
}

int mux_route_sva_ref(struct mux_route *r, const struct mux_peer *sva, uint64_t id,
		      struct mux_event **out)
{
	struct mux_event *e = mux_map_get(&r->by_id, id);

	if (!e || e->sva != sva)
		return -EPROTO;
	*out = e;
	return e->dead ? 1 : 0;
}

int mux_route_agent_ref(const struct mux_peer *agent, uint64_t req, struct mux_event **out)
{
	struct mux_event *e = mux_map_get(&agent->by_req, req);

	if (!e)
		return -EPROTO;
	*out = e;
	return e->dead ? 1 : 0;
}

void mux_route_read_sent(struct mux_event *e)
{
	e->reads++;
}

void mux_route_data_seen(struct mux_route *r, struct mux_event *e)
{
	if (e->reads)
		e->reads--;
	settle(r, e);
}

void mux_route_sva_done(struct mux_route *r, struct mux_event *e)
{
	if (e->sva)
		detach_sva(e);
	settle(r, e);
}

void mux_route_touch(struct mux_route *r, struct mux_event *e, uint64_t now_ms)
{
	if (e->dead)
		return;
	e->since_ms = now_ms;
	mux_list_del(&e->time_link);
	mux_list_add_tail(&r->live, &e->time_link);
}

void mux_route_touch_backlog(struct mux_route *r, struct mux_peer *sva, uint64_t now_ms)
{
	for (struct mux_list *n = sva->backlog.next; n != &sva->backlog; n = n->next)
		mux_route_touch(r, EVENT_OF(n, wait_link), now_ms);
}

/* Callers read the clock at different moments: a record stamped after
 * `now` was taken is young, not 2^64 ms old. */
static uint64_t age(uint64_t now_ms, uint64_t since_ms)
{
	return now_ms > since_ms ? now_ms - since_ms : 0;
}

struct mux_event *mux_route_expired(struct mux_route *r, uint64_t now_ms, uint64_t timeout_ms)
{
	struct mux_event *e;

	if (mux_list_empty(&r->live))
		return NULL;
	e = EVENT_OF(r->live.next, time_link);
	if (age(now_ms, e->since_ms) < timeout_ms)
		return NULL;
	return e;
}

void mux_route_reap(struct mux_route *r, uint64_t now_ms, uint64_t ttl_ms)
{
	while (!mux_list_empty(&r->dead)) {
		struct mux_event *e = EVENT_OF(r->dead.next, time_link);

		if (age(now_ms, e->since_ms) < ttl_ms)
			return;
		if (e->sva)
			detach_sva(e);
		if (e->agent)
			detach_agent(e);
		free_record(r, e);
	}
}

size_t mux_route_live(const struct mux_route *r)
{
	return r->n_live;
}

size_t mux_route_records(const struct mux_route *r)
{
	return r->n_records;
}
