/* SPDX-License-Identifier: MIT */
/* Many test agents in one process, speaking the real protocol over the real
 * transports (libcore's link layer), for the mux tests and benchmark. Each
 * agent keeps a window of events in flight; its files are synthetic
 * (mux_content.h), so a READ is answered with bytes that name the agent,
 * and a READ for a request the agent does not have in flight is counted as
 * foreign. Every answer is checked: VERDICT (ALLOW expected) or ERROR, in
 * time, for one of its own requests.
 *
 *   mux_agents [options] URI
 *     -n N      agents (<= 1024)             -w N   events in flight per agent
 *     -e N      events per agent (0: -d)     -d S   seconds to run (with -e 0)
 *     -s B      file size                    -i B   inline bytes (READ the rest)
 *     -T MS     an answer later than this is a failure (default 10000)
 *     -x WHAT   answers expected: verdict (default), error, any
 *     -r N      of the agents, N are rogues: they send an SVA's VERDICT and
 *               must be refused (ERROR, dropped)
 *     -R        survive losing the mux: reconnect (backoff 50..500 ms) and
 *               report the longest time from loss to WELCOME
 *     -k K -S URI   also play K null SVAs on URI (bench: no SVA process)
 *     -D        direct: URI is an SVA endpoint; play the mux for SVAs that
 *               connect there (-k K of them) and send the events straight on
 *     -g MS     think time: an agent waits MS after an answer before its
 *               next event (a busy but not saturated load)
 *     -H MS     when done, print "done" and keep the links open MS longer
 *               (a test reads the mux's status meanwhile)
 *     -q        no "ready"/progress lines
 *
 * Prints one summary line of key=value; exits 0 when every check held. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <epsec/version.h>

#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "mux_content.h"

#define AGENTS_MAX 1024u
#define WINDOW_MAX 1024u
#define SVAS_MAX 64u
#define HIST_US 200000u /* exact histogram up to 200 ms, then one bucket */
#define TICK_MS 5u
#define BACKOFF_MIN_MS 50u
#define BACKOFF_MAX_MS 500u

/* req_id = seq << 20 | agent << 10 | slot: who and which slot, from the id. */
#define REQ(seq, agent, slot) ((uint64_t)(seq) << 20 | (uint64_t)(agent) << 10 | (slot))
#define REQ_AGENT(req) ((unsigned)((req) >> 10) & 1023u)
#define REQ_SLOT(req) ((unsigned)(req) & 1023u)
#define REQ_SEQ(req) ((req) >> 20)

enum expect { X_VERDICT, X_ERROR, X_ANY };
enum astate { A_IDLE, A_HELLO, A_READY, A_GONE };

struct slot {
	uint64_t req, sent_us;
	bool used;
};

struct agent {
	unsigned idx;
	char id[48];
	struct epsec_conn *conn;
	enum astate state;
	bool rogue, refused, ever_ready;
	struct slot slots[WINDOW_MAX];
	unsigned in_flight;
	uint64_t seq, next_try_ms, lost_us, next_send_ms;
	unsigned backoff_ms;
};

struct sva {
	struct epsec_conn *conn;
	bool ready;
};

static struct {
	unsigned agents, window, rogues, svas;
	uint64_t events, size, inline_bytes, timeout_ms;
	unsigned duration_s, linger_ms, gap_ms;
	enum expect expect;
	bool reconnect, direct, quiet;
	const char *uri, *sva_uri;
} opt = { .agents = 1, .window = 1, .events = 100, .size = 64, .inline_bytes = 64,
	  .timeout_ms = 10000, .duration_s = 5 };

static struct {
	uint64_t sent, verdicts, errors, policy, reads, foreign_reads, bad_verdicts, late,
		unexpected, reconnects, reconnect_max_us, refused, conn_errors, in_window;
	uint64_t hist[HIST_US + 1];
	uint64_t samples, max_us;
} st;

static struct epsec_loop *loop;
static struct agent *agents;
static struct sva svas[SVAS_MAX];
static unsigned n_svas, rr;
static uint64_t t_start_us, t_last_us, stop_sending_ms, give_up_ms, linger_until_ms;
static bool all_ready, stopping;
static int exit_code;

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The first few failures of each kind are worth a line; the rest counted. */
static void complain(const char *fmt, ...)
{
	static unsigned said;
	va_list ap;

	if (++said > 20)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "mux_agents: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* ------------------------------------------------------------ sending */

static struct epsec_conn *event_target(const struct agent *a)
{
	if (!opt.direct)
		return a->conn;
	for (unsigned k = 0; k < n_svas; k++) {
		struct sva *s = &svas[(rr + k) % n_svas];

		if (s->ready && s->conn) {
			rr = (rr + k + 1) % n_svas;
			return s->conn;
		}
	}
	return NULL;
}

static int send_event(struct agent *a, unsigned slot)
{
	static uint8_t data[1u << 20];
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Event ev = EPSEC__EVENT__INIT;
	struct epsec_conn *c = event_target(a);
	uint64_t seq = a->seq + 1;
	char path[64];
	size_t n = opt.inline_bytes < opt.size ? opt.inline_bytes : opt.size;
	uint64_t t0;
	int r;

	if (!c)
		return -ENOTCONN;
	mux_test_path(path, sizeof(path), a->idx, seq);
	mux_test_content(a->idx, seq, 0, data, n);
	ev.req_id = REQ(seq, a->idx, slot);
	ev.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	ev.has_size = 1;
	ev.size = opt.size;
	ev.path = path;
	ev.exe = "/usr/bin/mux-test";
	ev.has_inline_data = 1;
	ev.inline_data.data = data;
	ev.inline_data.len = n;
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &ev;
	t0 = epsec_now_us();
	r = epsec_conn_send(c, &env);
	if (r < 0)
		return r;
	a->seq = seq;
	a->slots[slot] = (struct slot){ ev.req_id, t0, true };
	a->in_flight++;
	st.sent++;
	return 0;
}

static bool may_send(const struct agent *a)
{
	if (a->state != A_READY || a->rogue || stopping || !all_ready)
		return false;
	if (opt.gap_ms && epsec_now_ms() < a->next_send_ms)
		return false;
	if (opt.events)
		return a->seq < opt.events;
	return epsec_now_ms() < stop_sending_ms;
}

static void fill_window(struct agent *a)
{
	for (unsigned s = 0; s < opt.window && may_send(a); s++)
		if (!a->slots[s].used && send_event(a, s) < 0)
			return;
}

static void send_hello(struct epsec_conn *c, Epsec__Role role, const char *id)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;
	char *engines[] = { "null" };

	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	h.role = role;
	h.id = (char *)id;
	h.build = "mux_agents";
	if (role == EPSEC__ROLE__ROLE_SVA) {
		h.n_engines = 1;
		h.engines = engines;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	epsec_conn_send(c, &env);
}

/* A rogue agent sends what only an SVA may: the mux must refuse it. */
static void send_rogue(struct agent *a)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;

	v.req_id = REQ(1, (a->idx + 1) % opt.agents, 0); /* another agent's */
	v.action = EPSEC__ACTION__ACTION_DENY;
	env.body_case = EPSEC__ENVELOPE__BODY_VERDICT;
	env.verdict = &v;
	epsec_conn_send(a->conn, &env);
}

/* ------------------------------------------------------------ answers */

static void record_latency(uint64_t us)
{
	st.hist[us < HIST_US ? us : HIST_US]++;
	st.samples++;
	if (us > st.max_us)
		st.max_us = us;
}

/* The agent's slot for req, or NULL when it is not one of its own. */
static struct slot *own_slot(struct agent *a, uint64_t req)
{
	struct slot *s = &a->slots[REQ_SLOT(req)];

	if (REQ_AGENT(req) != a->idx || REQ_SLOT(req) >= opt.window || !s->used || s->req != req)
		return NULL;
	return s;
}

static void answered(struct agent *a, struct slot *s)
{
	uint64_t now = epsec_now_us(), us = now - s->sent_us;

	t_last_us = now;
	if (now <= stop_sending_ms * 1000u)
		st.in_window++; /* the rate of a timed run: what came back while sending */
	record_latency(us);
	if (us / 1000 > opt.timeout_ms) {
		st.late++;
		complain("%s: request %llu answered after %llu ms", a->id,
			 (unsigned long long)s->req, (unsigned long long)(us / 1000));
	}
	s->used = false;
	a->in_flight--;
	a->next_send_ms = opt.gap_ms ? now / 1000 + opt.gap_ms : 0;
	fill_window(a);
}

static void on_verdict(struct agent *a, const Epsec__Verdict *v)
{
	struct slot *s = own_slot(a, v->req_id);

	if (!s) {
		st.unexpected++;
		complain("%s: VERDICT for request %llu it does not have", a->id,
			 (unsigned long long)v->req_id);
		return;
	}
	st.verdicts++;
	if (v->action != EPSEC__ACTION__ACTION_ALLOW) {
		st.bad_verdicts++;
		complain("%s: request %llu: action %d (%s)", a->id, (unsigned long long)v->req_id,
			 (int)v->action, v->signature ? v->signature : "");
	}
	answered(a, s);
}

static void on_error(struct agent *a, const Epsec__Error *e)
{
	struct slot *s;

	if (!e->has_req_id) {
		st.conn_errors++;
		if (a->rogue)
			a->refused = true;
		else
			complain("%s: ERROR %u (%s)", a->id, e->code, e->message ? e->message : "");
		return;
	}
	s = own_slot(a, e->req_id);
	if (!s) {
		st.unexpected++;
		complain("%s: ERROR for request %llu it does not have", a->id,
			 (unsigned long long)e->req_id);
		return;
	}
	st.errors++;
	answered(a, s);
}

/* DATA with the bytes of this agent's file, or error EBADF for a request
 * it does not have (which is counted: the mux must never send one). */
static void on_read(struct agent *a, const Epsec__Read *rd, struct epsec_conn *reply)
{
	static uint8_t buf[1u << 20];
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;
	uint64_t end = rd->offset + rd->length;

	st.reads++;
	d.req_id = rd->req_id;
	d.offset = rd->offset;
	if (!own_slot(a, rd->req_id)) {
		st.foreign_reads++;
		complain("%s: READ for request %llu it does not have", a->id,
			 (unsigned long long)rd->req_id);
		d.has_error = 1;
		d.error = EBADF;
	} else {
		end = end < opt.size ? end : opt.size;
		d.has_data = 1;
		d.data.data = buf;
		d.data.len = end > rd->offset ? (size_t)(end - rd->offset) : 0;
		mux_test_content(a->idx, REQ_SEQ(rd->req_id), rd->offset, buf, d.data.len);
	}
	env.body_case = EPSEC__ENVELOPE__BODY_DATA;
	env.data = &d;
	epsec_conn_send(reply, &env);
}

/* ------------------------------------------------------------ agent links */

static void agent_welcomed(struct agent *a)
{
	a->state = A_READY;
	a->backoff_ms = BACKOFF_MIN_MS;
	if (a->lost_us) {
		uint64_t us = epsec_now_us() - a->lost_us;

		st.reconnects++;
		if (us > st.reconnect_max_us)
			st.reconnect_max_us = us;
		a->lost_us = 0;
	}
	a->ever_ready = true;
	if (a->rogue)
		send_rogue(a);
	fill_window(a);
}

static void agent_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct agent *a = arg;

	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_WELCOME:
		if (a->state == A_HELLO)
			agent_welcomed(a);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		on_verdict(a, m->verdict);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		on_error(a, m->error);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		on_read(a, m->read, c);
		break;
	default:
		st.unexpected++;
		complain("%s: unexpected %s", a->id, epsec_msg_name(m->body_case));
	}
	epsec_msg_free(m);
}

/* Held events end by the agent's policy when the mux goes away. */
static void agent_lost(struct agent *a)
{
	for (unsigned s = 0; s < opt.window; s++) {
		if (a->slots[s].used) {
			a->slots[s].used = false;
			st.policy++;
		}
	}
	a->in_flight = 0;
	a->conn = NULL;
	a->lost_us = a->lost_us ? a->lost_us : epsec_now_us();
	a->next_try_ms = epsec_now_ms() + a->backoff_ms;
	a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
	a->state = a->rogue || !opt.reconnect ? A_GONE : A_IDLE;
}

static void agent_close(struct epsec_conn *c, int reason, void *arg)
{
	struct agent *a = arg;

	if (a->rogue && a->ever_ready) {
		st.refused += a->refused;
		a->state = A_GONE;
		a->conn = NULL;
		return;
	}
	if (!stopping && !opt.reconnect && a->ever_ready)
		complain("%s: lost the mux: %s", a->id, strerror(reason < 0 ? -reason : EPIPE));
	agent_lost(a);
	/* Until it was first welcomed, an agent keeps trying (a thousand
	 * connecting at once may overflow the listen backlog). */
	if (!a->ever_ready && !a->rogue)
		a->state = A_IDLE;
	else if (a->rogue && !a->ever_ready)
		a->state = A_IDLE;
}

static void agent_connect(struct agent *a)
{
	int r = epsec_connect(loop, opt.uri, NULL, EPSEC_ROLE_MUX, &a->conn);

	if (r < 0) {
		a->conn = NULL;
		agent_lost(a);
		if (!a->ever_ready)
			a->state = A_IDLE;
		return;
	}
	epsec_conn_set_handlers(a->conn, agent_msg, agent_close, a);
	a->state = A_HELLO;
	send_hello(a->conn, EPSEC__ROLE__ROLE_AGENT, a->id);
}

/* ------------------------------------------------------------ SVAs */

/* An in-process null SVA (bench): ALLOW at once, nothing read. */
static void null_sva_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct sva *s = arg;
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;

	if (m->body_case == EPSEC__ENVELOPE__BODY_WELCOME) {
		s->ready = true;
	} else if (m->body_case == EPSEC__ENVELOPE__BODY_EVENT) {
		v.req_id = m->event->req_id;
		v.action = EPSEC__ACTION__ACTION_ALLOW;
		v.has_cacheable = 1;
		v.cacheable = 1;
		env.body_case = EPSEC__ENVELOPE__BODY_VERDICT;
		env.verdict = &v;
		epsec_conn_send(c, &env);
	}
	epsec_msg_free(m);
}

static void sva_close(struct epsec_conn *c, int reason, void *arg)
{
	struct sva *s = arg;

	s->conn = NULL;
	s->ready = false;
	if (!stopping)
		complain("an SVA link closed: %s", strerror(reason < 0 ? -reason : EPIPE));
}

static int start_null_svas(void)
{
	char id[32];

	for (unsigned i = 0; i < opt.svas; i++) {
		struct sva *s = &svas[n_svas++];
		int r = epsec_connect(loop, opt.sva_uri, NULL, EPSEC_ROLE_MUX, &s->conn);

		if (r < 0) {
			fprintf(stderr, "mux_agents: SVA connect %s: %s\n", opt.sva_uri, strerror(-r));
			return r;
		}
		epsec_conn_set_handlers(s->conn, null_sva_msg, sva_close, s);
		snprintf(id, sizeof(id), "null-sva-%u", i);
		send_hello(s->conn, EPSEC__ROLE__ROLE_SVA, id);
	}
	return 0;
}

/* Direct mode: we are the mux for real SVAs; their answers go straight to
 * the agent the request id names. */
static struct agent *agent_of(uint64_t req)
{
	unsigned i = REQ_AGENT(req);

	return i < opt.agents ? &agents[i] : NULL;
}

static void send_welcome(struct epsec_conn *c)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Welcome w = EPSEC__WELCOME__INIT;

	w.version = EPSEC_PROTO_VERSION_MAX;
	w.id = "mux_agents";
	env.body_case = EPSEC__ENVELOPE__BODY_WELCOME;
	env.welcome = &w;
	epsec_conn_send(c, &env);
}

static void direct_sva_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct sva *s = arg;
	struct agent *a = NULL;

	if (m->body_case == EPSEC__ENVELOPE__BODY_HELLO) {
		send_welcome(c);
		s->ready = true;
	} else if (m->body_case == EPSEC__ENVELOPE__BODY_VERDICT) {
		if ((a = agent_of(m->verdict->req_id)))
			on_verdict(a, m->verdict);
	} else if (m->body_case == EPSEC__ENVELOPE__BODY_READ) {
		if ((a = agent_of(m->read->req_id)))
			on_read(a, m->read, c);
	} else if (m->body_case == EPSEC__ENVELOPE__BODY_ERROR && m->error->has_req_id) {
		if ((a = agent_of(m->error->req_id)))
			on_error(a, m->error);
	}
	if (!a && m->body_case != EPSEC__ENVELOPE__BODY_HELLO)
		st.unexpected++;
	epsec_msg_free(m);
}

static int direct_accept(struct epsec_conn *c, void *arg)
{
	struct sva *s;

	if (n_svas == SVAS_MAX)
		return -ENOSPC;
	s = &svas[n_svas++];
	s->conn = c;
	epsec_conn_set_handlers(c, direct_sva_msg, sva_close, s);
	return 0;
}

/* ------------------------------------------------------------ the run */

static bool svas_ready(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < n_svas; i++)
		n += svas[i].ready;
	return n >= opt.svas;
}

static bool agents_ready(void)
{
	if (opt.direct)
		return true;
	for (unsigned i = 0; i < opt.agents; i++)
		if (!agents[i].ever_ready)
			return false;
	return true;
}

static void start_sending(void)
{
	all_ready = true;
	t_start_us = epsec_now_us();
	stop_sending_ms = epsec_now_ms() + opt.duration_s * 1000u;
	if (!opt.quiet) {
		printf("ready\n");
		fflush(stdout);
	}
	for (unsigned i = 0; i < opt.agents; i++)
		fill_window(&agents[i]);
}

/* All sent and answered: -e events each, or -d seconds over; an agent
 * that lost the mux for good (no -R) or a refused rogue has nothing left. */
static bool agent_done(const struct agent *a, uint64_t now)
{
	if (a->in_flight)
		return false;
	if (a->state == A_GONE)
		return true;
	if (a->rogue)
		return false;
	if (opt.events)
		return a->seq >= opt.events;
	return now >= stop_sending_ms;
}

static bool finished(void)
{
	uint64_t now = epsec_now_ms();

	for (unsigned i = 0; i < opt.agents; i++)
		if (!agent_done(&agents[i], now))
			return false;
	return true;
}

static void progress(uint64_t now_ms)
{
	static uint64_t last;

	if (opt.quiet || now_ms - last < 1000)
		return;
	last = now_ms;
	printf("progress sent=%llu verdicts=%llu errors=%llu policy=%llu\n",
	       (unsigned long long)st.sent, (unsigned long long)st.verdicts,
	       (unsigned long long)st.errors, (unsigned long long)st.policy);
	fflush(stdout);
}

static void on_tick(struct epsec_loop *l, void *arg)
{
	uint64_t now = epsec_now_ms();

	for (unsigned i = 0; i < opt.agents && !opt.direct; i++) {
		struct agent *a = &agents[i];

		if (a->state == A_IDLE && now >= a->next_try_ms)
			agent_connect(a);
		else if (a->state == A_READY)
			fill_window(a); /* what a full link refused earlier */
	}
	if (!all_ready && agents_ready() && svas_ready())
		start_sending();
	progress(now);
	if (now >= give_up_ms) {
		complain("gave up: still running after the deadline");
		exit_code = 1;
		epsec_loop_stop(l);
	} else if (linger_until_ms) {
		if (now >= linger_until_ms)
			epsec_loop_stop(l);
	} else if (all_ready && finished()) {
		linger_until_ms = now + opt.linger_ms;
		if (opt.linger_ms) {
			printf("done\n");
			fflush(stdout);
		}
	}
}

/* ------------------------------------------------------------ summary */

static uint64_t percentile(unsigned pct)
{
	uint64_t want = (st.samples * pct + 99) / 100, seen = 0;

	for (uint64_t us = 0; us <= HIST_US; us++) {
		seen += st.hist[us];
		if (seen >= want && seen)
			return us;
	}
	return 0;
}

#define U(x) ((unsigned long long)(x))

static void summary(void)
{
	uint64_t end_us = opt.events ? t_last_us : stop_sending_ms * 1000u;
	double secs = end_us > t_start_us ? (double)(end_us - t_start_us) / 1e6 : 0;
	uint64_t answered = opt.events ? st.verdicts + st.errors : st.in_window;

	printf("agents=%u window=%u sent=%llu verdicts=%llu errors=%llu policy=%llu reads=%llu "
	       "foreign_reads=%llu bad_verdicts=%llu unexpected=%llu late=%llu refused=%llu "
	       "reconnects=%llu reconnect_max_ms=%llu rate=%.0f p50_us=%llu p99_us=%llu "
	       "max_us=%llu\n",
	       opt.agents, opt.window, U(st.sent), U(st.verdicts), U(st.errors), U(st.policy),
	       U(st.reads), U(st.foreign_reads), U(st.bad_verdicts), U(st.unexpected), U(st.late),
	       U(st.refused), U(st.reconnects), U(st.reconnect_max_us / 1000),
	       secs > 0 ? (double)answered / secs : 0.0, U(percentile(50)), U(percentile(99)),
	       U(st.max_us));
}

static void verdict_fail(const char *what)
{
	fprintf(stderr, "mux_agents: FAILED: %s\n", what);
	exit_code = 1;
}

static void judge(void)
{
	uint64_t want = opt.events * (opt.agents - opt.rogues);

	if (st.foreign_reads)
		verdict_fail("READs for requests the agent does not have");
	if (st.bad_verdicts)
		verdict_fail("verdicts other than ALLOW (the SVA saw wrong bytes)");
	if (st.unexpected)
		verdict_fail("answers for requests the agent does not have");
	if (st.late)
		verdict_fail("answers later than -T");
	if (st.sent != st.verdicts + st.errors + st.policy)
		verdict_fail("events left unanswered");
	if (opt.events && !opt.reconnect && st.sent != want)
		verdict_fail("not every event was sent");
	if (st.refused != opt.rogues)
		verdict_fail("a rogue agent was not refused with ERROR");
	if (opt.expect == X_VERDICT && (st.errors || st.policy))
		verdict_fail("events answered by ERROR or policy instead of a VERDICT");
	if (opt.expect == X_ERROR && !st.errors)
		verdict_fail("no event was answered with ERROR");
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
	fprintf(stderr, "usage: mux_agents [-n N] [-w N] [-e N|-d S] [-s B] [-i B] [-T MS] "
			"[-x verdict|error|any] [-r N] [-R] [-k K -S URI] [-D] [-g MS] [-H MS] [-q] URI\n");
	exit(2);
}

static unsigned num(const char *s, unsigned max)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || v > max)
		usage();
	return (unsigned)v;
}

static void parse_expect(const char *s)
{
	if (!strcmp(s, "verdict"))
		opt.expect = X_VERDICT;
	else if (!strcmp(s, "error"))
		opt.expect = X_ERROR;
	else if (!strcmp(s, "any"))
		opt.expect = X_ANY;
	else
		usage();
}

static void parse_args(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "n:w:e:d:s:i:T:x:r:Rk:S:DH:g:q")) != -1) {
		switch (c) {
		case 'n': opt.agents = num(optarg, AGENTS_MAX); break;
		case 'w': opt.window = num(optarg, WINDOW_MAX); break;
		case 'e': opt.events = num(optarg, 1u << 30); break;
		case 'd': opt.duration_s = num(optarg, 3600); break;
		case 's': opt.size = num(optarg, 64u << 20); break;
		case 'i': opt.inline_bytes = num(optarg, 1u << 20); break;
		case 'T': opt.timeout_ms = num(optarg, 3600000); break;
		case 'x': parse_expect(optarg); break;
		case 'r': opt.rogues = num(optarg, AGENTS_MAX); break;
		case 'R': opt.reconnect = true; break;
		case 'k': opt.svas = num(optarg, SVAS_MAX); break;
		case 'S': opt.sva_uri = optarg; break;
		case 'D': opt.direct = true; break;
		case 'H': opt.linger_ms = num(optarg, 600000); break;
		case 'g': opt.gap_ms = num(optarg, 600000); break;
		case 'q': opt.quiet = true; break;
		default: usage();
		}
	}
	if (optind + 1 != argc || !opt.agents || !opt.window || opt.rogues >= opt.agents ||
	    (opt.sva_uri && opt.direct) || (opt.direct && !opt.svas))
		usage();
	opt.uri = argv[optind];
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int setup(void)
{
	struct epsec_listener *l = NULL;
	int r;

	agents = calloc(opt.agents, sizeof(*agents));
	if (!agents)
		return -ENOMEM;
	for (unsigned i = 0; i < opt.agents; i++) {
		struct agent *a = &agents[i];

		a->idx = i;
		a->rogue = i >= opt.agents - opt.rogues;
		a->backoff_ms = BACKOFF_MIN_MS;
		/* Ids are one connection each at the mux: two runs side by side
		 * (one per transport) must not share them. */
		snprintf(a->id, sizeof(a->id), "%s-%d-%05u", a->rogue ? "rogue" : "agent",
			 (int)getpid(), i);
		a->state = opt.direct ? A_READY : A_IDLE;
		a->ever_ready = opt.direct;
	}
	if (opt.direct) {
		r = epsec_listen(loop, opt.uri, NULL, EPSEC_ROLE_SVA, direct_accept, NULL, &l);
		if (r < 0)
			fprintf(stderr, "mux_agents: listen %s: %s\n", opt.uri, strerror(-r));
		return r;
	}
	return opt.sva_uri ? start_null_svas() : 0;
}

int main(int argc, char **argv)
{
	int r;

	parse_args(argc, argv);
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	epsec_log_open("mux_agents", EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	if (epsec_loader_init(NULL) < 0 || epsec_loop_new(&loop) < 0)
		return 1;
	r = setup();
	if (r < 0)
		return 1;
	give_up_ms = epsec_now_ms() + 60000u + opt.duration_s * 1000u + 3 * opt.timeout_ms;
	if (epsec_loop_add_timer(loop, TICK_MS, on_tick, NULL) < 0)
		return 1;
	epsec_loop_run(loop);
	stopping = true;
	summary();
	judge();
	fflush(stdout);
	/* The links go with the process: closing a thousand of them one by one
	 * would only slow the benchmark's next run. */
	_exit(exit_code);
}
