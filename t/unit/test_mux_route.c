/* SPDX-License-Identifier: MIT */
/* Unit tests of the mux's routing state (mux/route.c) and its hash map
 * (mux/map.c): least-loaded choice, ownership checks, late messages,
 * re-dispatch, timeouts and reaping, and scale; and the latency window
 * (mux/latency.c). */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "latency.h"
#include "map.h"
#include "route.h"

static int payloads_freed;

static void count_free(void *p)
{
	payloads_freed++;
	free(p);
}

static void *new_payload(void)
{
	void *p = malloc(16);

	assert_non_null(p);
	return p;
}

struct fixture {
	struct mux_route *r;
	struct mux_peer agent, agent2, sva1, sva2;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(mux_route_new(count_free, &f->r), 0);
	mux_route_peer_init(&f->agent, false, NULL);
	mux_route_peer_init(&f->agent2, false, NULL);
	mux_route_peer_init(&f->sva1, true, NULL);
	mux_route_peer_init(&f->sva2, true, NULL);
	payloads_freed = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mux_route_remove_agent(f->r, &f->agent, 0);
	mux_route_remove_agent(f->r, &f->agent2, 0);
	mux_route_remove_sva(f->r, &f->sva1);
	mux_route_remove_sva(f->r, &f->sva2);
	/* Everything is dead and unnamed by now: nothing may be left. */
	assert_int_equal(mux_route_records(f->r), 0);
	mux_route_free(f->r);
	free(f);
	return 0;
}

static struct mux_event *submit(struct fixture *f, struct mux_peer *agent, uint64_t req,
				uint64_t now)
{
	struct mux_event *e = NULL;

	assert_int_equal(mux_route_submit(f->r, agent, req, new_payload(), now, &e), 0);
	assert_non_null(e);
	assert_int_equal(e->agent_req, req);
	return e;
}

static void test_map_many(void **state)
{
	struct mux_map m;
	const uint64_t n = 100000;

	(void)state;
	mux_map_init(&m);
	for (uint64_t k = 0; k < n; k++)
		assert_int_equal(mux_map_put(&m, k * 7, (void *)(uintptr_t)(k + 1)), 0);
	assert_int_equal(mux_map_put(&m, 7, (void *)1), -EEXIST);
	assert_int_equal(mux_map_put(&m, 1, NULL), -EINVAL);
	/* Delete every other key: the survivors must stay reachable. */
	for (uint64_t k = 0; k < n; k += 2)
		assert_ptr_equal(mux_map_del(&m, k * 7), (void *)(uintptr_t)(k + 1));
	assert_int_equal(m.len, n / 2);
	for (uint64_t k = 0; k < n; k++) {
		void *want = (k % 2) ? (void *)(uintptr_t)(k + 1) : NULL;

		assert_ptr_equal(mux_map_get(&m, k * 7), want);
	}
	assert_null(mux_map_del(&m, 0));
	assert_null(mux_map_get(&m, 3));
	mux_map_free(&m);
	assert_null(mux_map_get(&m, 7));
}

/* Keys that share a home slot: deleting from the middle of a chain. */
static void test_map_collisions(void **state)
{
	struct mux_map m;
	int vals[64];

	(void)state;
	mux_map_init(&m);
	for (int i = 0; i < 64; i++)
		assert_int_equal(mux_map_put(&m, (uint64_t)i << 40, &vals[i]), 0);
	for (int i = 0; i < 64; i += 3)
		assert_ptr_equal(mux_map_del(&m, (uint64_t)i << 40), &vals[i]);
	for (int i = 0; i < 64; i++)
		assert_ptr_equal(mux_map_get(&m, (uint64_t)i << 40), i % 3 ? &vals[i] : NULL);
	mux_map_free(&m);
}

static void test_no_sva(void **state)
{
	struct fixture *f = *state;
	struct mux_event *e = NULL;
	void *p = new_payload();

	assert_null(mux_route_pick(f->r));
	assert_int_equal(mux_route_submit(f->r, &f->agent, 1, p, 0, &e), -EHOSTUNREACH);
	assert_null(e);
	assert_int_equal(mux_route_records(f->r), 0);
	free(p); /* still the caller's */
	assert_int_equal(payloads_freed, 0);
}

static void test_least_loaded(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a, *b, *c;

	assert_int_equal(mux_route_add_sva(f->r, &f->sva1), 0);
	assert_int_equal(mux_route_add_sva(f->r, &f->sva2), 0);
	a = submit(f, &f->agent, 1, 0);
	b = submit(f, &f->agent, 2, 0);
	/* One each: ties do not all land on the first SVA. */
	assert_ptr_not_equal(a->sva, b->sva);
	assert_int_equal(f->sva1.in_flight, 1);
	assert_int_equal(f->sva2.in_flight, 1);
	mux_route_finish(f->r, a, true, 0);
	/* a's SVA now holds fewer: it must get the next one. */
	c = submit(f, &f->agent, 3, 0);
	assert_ptr_not_equal(c->sva, b->sva);
	assert_int_not_equal(c->id, b->id);
	assert_int_equal(f->agent.in_flight, 2);
}

static void test_ownership(void **state)
{
	struct fixture *f = *state;
	struct mux_event *e, *got = NULL;

	mux_route_add_sva(f->r, &f->sva1);
	e = submit(f, &f->agent, 42, 0);
	mux_route_add_sva(f->r, &f->sva2);
	assert_ptr_equal(e->sva, &f->sva1);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, e->id, &got), 0);
	assert_ptr_equal(got, e);
	/* Another SVA, or an id never issued: violations. */
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva2, e->id, &got), -EPROTO);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, e->id + 1000, &got), -EPROTO);
	/* The agent names it by its own id; another agent cannot. */
	assert_int_equal(mux_route_agent_ref(&f->agent, 42, &got), 0);
	assert_ptr_equal(got, e);
	assert_int_equal(mux_route_agent_ref(&f->agent2, 42, &got), -EPROTO);
	assert_int_equal(mux_route_agent_ref(&f->agent, e->id == 42 ? 43 : e->id, &got), -EPROTO);
	/* The same req_id twice while in flight. */
	assert_int_equal(mux_route_submit(f->r, &f->agent, 42, e, 0, &got), -EEXIST);
	/* Another agent may use the same number. */
	submit(f, &f->agent2, 42, 0);
}

static void test_verdict_forgets(void **state)
{
	struct fixture *f = *state;
	struct mux_event *e, *got;
	uint64_t id;

	mux_route_add_sva(f->r, &f->sva1);
	e = submit(f, &f->agent, 7, 0);
	id = e->id;
	mux_route_finish(f->r, e, true, 5);
	assert_int_equal(payloads_freed, 1);
	assert_int_equal(mux_route_records(f->r), 0);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, id, &got), -EPROTO);
	assert_int_equal(mux_route_agent_ref(&f->agent, 7, &got), -EPROTO);
	assert_int_equal(f->sva1.in_flight, 0);
	assert_int_equal(f->sva1.held, 0);
	/* The agent may now reuse its id. */
	submit(f, &f->agent, 7, 6);
}

/* A READ forwarded to the agent, then the event is answered: the agent's
 * DATA that follows is late, not a violation, and then the record goes. */
static void test_late_data(void **state)
{
	struct fixture *f = *state;
	struct mux_event *e, *got;

	mux_route_add_sva(f->r, &f->sva1);
	e = submit(f, &f->agent, 9, 0);
	mux_route_read_sent(e);
	mux_route_finish(f->r, e, true, 1);
	assert_int_equal(mux_route_records(f->r), 1);
	assert_int_equal(mux_route_agent_ref(&f->agent, 9, &got), 1);
	mux_route_data_seen(f->r, got);
	assert_int_equal(mux_route_records(f->r), 0);
	assert_int_equal(mux_route_agent_ref(&f->agent, 9, &got), -EPROTO);
}

/* Timed out: the SVA's later READ/VERDICT are late, then it is forgotten. */
static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a, *b, *got;

	mux_route_add_sva(f->r, &f->sva1);
	a = submit(f, &f->agent, 1, 100);
	b = submit(f, &f->agent, 2, 150);
	assert_null(mux_route_expired(f->r, 1099, 1000));
	assert_ptr_equal(mux_route_expired(f->r, 1100, 1000), a);
	mux_route_finish(f->r, a, false, 1100);
	assert_null(mux_route_expired(f->r, 1100, 1000));
	assert_ptr_equal(mux_route_expired(f->r, 1150, 1000), b);
	/* The slow SVA still counts it as load, not as in flight. */
	assert_int_equal(f->sva1.in_flight, 1);
	assert_int_equal(f->sva1.held, 2);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, a->id, &got), 1);
	assert_ptr_equal(got, a);
	mux_route_sva_done(f->r, a);
	assert_int_equal(f->sva1.held, 1);
	assert_int_equal(mux_route_records(f->r), 1);
	assert_int_equal(mux_route_live(f->r), 1);
}

static void test_reap(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a, *b;

	mux_route_add_sva(f->r, &f->sva1);
	a = submit(f, &f->agent, 1, 0);
	b = submit(f, &f->agent, 2, 0);
	mux_route_read_sent(b);
	mux_route_finish(f->r, a, false, 10);
	mux_route_finish(f->r, b, true, 20);
	assert_int_equal(mux_route_records(f->r), 2);
	/* A clock read before the records were stamped reaps nothing. */
	mux_route_reap(f->r, 5, 10);
	assert_int_equal(mux_route_records(f->r), 2);
	assert_null(mux_route_expired(f->r, 0, 10));
	mux_route_reap(f->r, 20, 10);
	assert_int_equal(mux_route_records(f->r), 1);
	assert_int_equal(f->sva1.held, 0);
	mux_route_reap(f->r, 29, 10);
	assert_int_equal(mux_route_records(f->r), 1);
	mux_route_reap(f->r, 30, 10);
	assert_int_equal(mux_route_records(f->r), 0);
	assert_int_equal(payloads_freed, 2);
}

static void test_sva_gone(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a, *b, *o;
	uint64_t now = 0;

	mux_route_add_sva(f->r, &f->sva1);
	a = submit(f, &f->agent, 1, now);
	b = submit(f, &f->agent, 2, now);
	mux_route_finish(f->r, b, false, now); /* dead but still named by sva1 */
	mux_route_add_sva(f->r, &f->sva2);
	mux_route_remove_sva(f->r, &f->sva1);
	assert_int_equal(mux_route_records(f->r), 1);
	o = mux_route_orphan(&f->sva1);
	assert_ptr_equal(o, a);
	assert_null(o->sva);
	assert_null(mux_route_orphan(&f->sva1));
	assert_int_equal(mux_route_dispatch(f->r, o, 500), 0);
	assert_ptr_equal(o->sva, &f->sva2);
	assert_non_null(o->payload);
	/* The new SVA gets a fresh deadline. */
	assert_null(mux_route_expired(f->r, 1000, 1000));
	assert_ptr_equal(mux_route_expired(f->r, 1500, 1000), o);
	/* And when it goes too, nothing is left to take it. */
	mux_route_remove_sva(f->r, &f->sva2);
	o = mux_route_orphan(&f->sva2);
	assert_ptr_equal(o, a);
	assert_int_equal(mux_route_dispatch(f->r, o, 600), -EHOSTUNREACH);
	mux_route_finish(f->r, o, true, 600);
	assert_int_equal(mux_route_records(f->r), 0);
	assert_int_equal(payloads_freed, 2);
}

static void test_agent_gone(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a, *b, *got;
	uint64_t ida, idb;

	mux_route_add_sva(f->r, &f->sva1);
	a = submit(f, &f->agent, 1, 0);
	b = submit(f, &f->agent2, 1, 0);
	ida = a->id;
	idb = b->id;
	mux_route_read_sent(a);
	mux_route_remove_agent(f->r, &f->agent, 3);
	/* The SVA's late messages about it are dropped, not violations. */
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, ida, &got), 1);
	assert_int_equal(mux_route_live(f->r), 1);
	assert_int_equal(f->sva1.in_flight, 1);
	mux_route_sva_done(f->r, got);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, ida, &got), -EPROTO);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, idb, &got), 0);
	assert_int_equal(mux_route_records(f->r), 1);
}

/* A full SVA keeps events in order; one answered or orphaned unsent
 * leaves the backlog, and one that dies unsent is not waited for. */
static void test_backlog(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a, *b, *c, *got;
	uint64_t idb;

	mux_route_add_sva(f->r, &f->sva1);
	a = submit(f, &f->agent, 1, 0);
	b = submit(f, &f->agent, 2, 0);
	c = submit(f, &f->agent, 3, 0);
	idb = b->id;
	assert_null(mux_route_deferred(&f->sva1));
	mux_route_defer(a);
	mux_route_defer(b);
	mux_route_defer(c);
	mux_route_defer(a); /* twice is once */
	assert_int_equal(f->sva1.n_backlog, 3);
	assert_ptr_equal(mux_route_deferred(&f->sva1), a);
	mux_route_sent(a);
	assert_ptr_equal(mux_route_deferred(&f->sva1), b);
	/* b times out unsent: the SVA never saw it, nothing is kept for it. */
	mux_route_finish(f->r, b, false, 1);
	assert_int_equal(mux_route_sva_ref(f->r, &f->sva1, idb, &got), -EPROTO);
	assert_int_equal(mux_route_records(f->r), 2);
	assert_ptr_equal(mux_route_deferred(&f->sva1), c);
	assert_int_equal(f->sva1.n_backlog, 1);
	/* The SVA goes: its orphans leave the backlog with it. */
	mux_route_remove_sva(f->r, &f->sva1);
	while ((got = mux_route_orphan(&f->sva1)))
		mux_route_finish(f->r, got, true, 2);
	assert_int_equal(f->sva1.n_backlog, 0);
	assert_null(mux_route_deferred(&f->sva1));
	assert_int_equal(mux_route_records(f->r), 0);
}

/* The agent goes while its event waits unsent: it is dropped at once. */
static void test_backlog_agent_gone(void **state)
{
	struct fixture *f = *state;
	struct mux_event *a;

	mux_route_add_sva(f->r, &f->sva1);
	a = submit(f, &f->agent, 1, 0);
	mux_route_defer(a);
	mux_route_remove_agent(f->r, &f->agent, 1);
	assert_null(mux_route_deferred(&f->sva1));
	assert_int_equal(f->sva1.held, 0);
	assert_int_equal(mux_route_records(f->r), 0);
}

static void test_scale(void **state)
{
	struct fixture *f = *state;
	const uint64_t n = 100000;
	struct mux_event *e, *got;

	mux_route_add_sva(f->r, &f->sva1);
	mux_route_add_sva(f->r, &f->sva2);
	for (uint64_t i = 0; i < n; i++)
		submit(f, i % 2 ? &f->agent : &f->agent2, i, i);
	assert_int_equal(mux_route_live(f->r), n);
	assert_int_equal(f->sva1.in_flight + f->sva2.in_flight, n);
	assert_true(f->sva1.in_flight >= n / 2 - 1 && f->sva1.in_flight <= n / 2 + 1);
	for (uint64_t i = 0; i < n; i++) {
		struct mux_peer *agent = i % 2 ? &f->agent : &f->agent2;

		assert_int_equal(mux_route_agent_ref(agent, i, &got), 0);
		assert_int_equal(mux_route_sva_ref(f->r, got->sva, got->id, &e), 0);
		assert_ptr_equal(e, got);
		mux_route_finish(f->r, e, true, n);
	}
	assert_int_equal(mux_route_records(f->r), 0);
	assert_int_equal(payloads_freed, (int)n);
}

/* The latency window: nearest-rank percentiles over the last 4096
 * samples only, older ones forgotten. */
static void test_latency(void **state)
{
	static struct mux_latency l;
	struct mux_latency_summary sum;

	mux_latency_summary(&l, &sum);
	assert_int_equal(sum.samples, 0);
	assert_int_equal(sum.p99_us, 0);
	for (uint64_t us = 100; us >= 1; us--)
		mux_latency_add(&l, us);
	mux_latency_summary(&l, &sum);
	assert_int_equal(sum.samples, 100);
	assert_int_equal(sum.p50_us, 50);
	assert_int_equal(sum.p99_us, 99);
	assert_int_equal(sum.max_us, 100);
	/* A full window of 7 us pushes every earlier sample out. */
	for (unsigned i = 0; i < MUX_LATENCY_WINDOW; i++)
		mux_latency_add(&l, 7);
	mux_latency_add(&l, (uint64_t)1 << 40); /* clamped, not wrapped */
	mux_latency_summary(&l, &sum);
	assert_int_equal(sum.samples, MUX_LATENCY_WINDOW);
	assert_int_equal(sum.p50_us, 7);
	assert_int_equal(sum.p99_us, 7);
	assert_int_equal(sum.max_us, UINT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_many),
		cmocka_unit_test(test_map_collisions),
		cmocka_unit_test_setup_teardown(test_no_sva, setup, teardown),
		cmocka_unit_test_setup_teardown(test_least_loaded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ownership, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict_forgets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sva_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_agent_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
		cmocka_unit_test(test_latency),
	};

	return cmocka_run_group_tests_name("mux_route", tests, NULL, NULL);
}
