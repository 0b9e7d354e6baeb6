/* SPDX-License-Identifier: MIT */
/* The connection to the mux, owned by the loop thread. Workers and the log
 * hook never touch the link: they append to an outbox and wake the loop,
 * which sends. A lost link ends every held event by policy at once, and
 * new events are answered by policy until WELCOME: nothing waits for the
 * reconnect. */
#include "config.h"
#include "mux.h"
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <epsec/version.h>

#include "cache.h"
#include "held.h"
#include "reads.h"
#include "link.h"
#include "log.h"

#define EPSEC_LOG_SRC "mux"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define HELLO_TIMEOUT_MS 5000
#define TICK_MS 50
#define LOG_QUEUE_MAX 256
#define READ_MAX (1u << 20)
/* Two passes of the held table's 50 ms sweep. */
#define DEADLINE_MARGIN_MS 100

enum mux_state {
	MUX_IDLE,   /* no link; next attempt at next_try_ms */
	MUX_HELLO,  /* HELLO sent, waiting for WELCOME */
	MUX_READY,
};

struct logline {
	struct logline *next;
	int level;
	char *src;
	char text[];
};

static struct {
	struct epsec_loop *loop;
	const struct vsep_settings *s;
	struct epsec_conn *conn;
	enum mux_state state;
	atomic_bool ready;
	atomic_bool fds;    /* the mux takes the files' fds with EVENTs */
	uint64_t epoch;     /* bumped when a link goes: late reads are not sent */
	unsigned backoff_ms;
	uint64_t next_try_ms, hello_deadline_ms;
	bool warned;
	int timer;
	/* The outbox: filled by any thread, emptied by the loop. */
	pthread_mutex_t lock;
	struct vsep_req *reqs, **reqs_tail;
	/* The loop's alone: EVENTs waiting for the link to take an fd again
	 * (send_fd said -EAGAIN), in order. */
	struct vsep_req *stalled, **stalled_tail;
	struct logline *logs, **logs_tail;
	unsigned nlogs;
	bool wake_posted;
	bool stopping;
} mux = { .lock = PTHREAD_MUTEX_INITIALIZER };

void vsep_req_free(struct vsep_req *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->exe);
	free(r);
}

bool vsep_mux_ready(void)
{
	return atomic_load(&mux.ready);
}

bool vsep_mux_passes_fds(void)
{
	return atomic_load(&mux.fds);
}

static enum vsep_action policy_action(enum vsep_why why)
{
	return vsep_why_allows(mux.s, why) ? VSEP_ACT_ALLOW : VSEP_ACT_DENY;
}

static void end_by_policy(uint64_t req_id, enum vsep_why why)
{
	struct vsep_outcome o = { .why = why, .action = policy_action(why) };

	vsep_held_resolve(req_id, &o);
}

static int send_env(const epsec_msg *env)
{
	return mux.conn ? epsec_conn_send(mux.conn, env) : -ENOTCONN;
}

static void free_reqs(struct vsep_req *list)
{
	struct vsep_req *next;

	for (; list; list = next) {
		next = list->next;
		vsep_req_free(list);
	}
}

/* ------------------------------------------------------------ link state */

/* The link is gone (closed by either side): held events end now. */
static void lost(const char *why)
{
	bool was_ready = mux.state == MUX_READY;

	mux.conn = NULL;
	mux.state = MUX_IDLE;
	mux.epoch++;
	atomic_store(&mux.ready, false);
	atomic_store(&mux.fds, false);
	free_reqs(mux.stalled); /* their events end by policy just below */
	mux.stalled = NULL;
	mux.stalled_tail = &mux.stalled;
	vsep_held_drain(mux.s->on_disconnect, VSEP_WHY_DISCONNECT);
	mux.next_try_ms = epsec_now_ms() + mux.backoff_ms;
	if (was_ready || !mux.warned)
		EPSEC_WARN("mux %s: %s; retrying in %u ms", mux.s->mux, why, mux.backoff_ms);
	mux.warned = true;
	mux.backoff_ms = mux.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : mux.backoff_ms * 2;
}

static void on_close(struct epsec_conn *c, int reason, void *arg)
{
	lost(reason ? strerror(reason < 0 ? -reason : reason) : "connection closed");
}

static void drop(const char *why)
{
	struct epsec_conn *c = mux.conn;

	mux.conn = NULL;
	if (c)
		epsec_conn_close(c);
	lost(why);
}

static int send_hello(void)
{
	static char *caps[] = { (char *)EPSEC_CAP_GENERATION, (char *)EPSEC_CAP_FD };
	Epsec__Hello h = EPSEC__HELLO__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;

	h.n_capabilities = epsec_conn_passes_fds(mux.conn) ? 2 : 1;
	h.capabilities = caps;
	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	h.id = (char *)mux.s->common.id;
	h.build = EPSEC_VERSION " (" EPSEC_BUILD_ID ")";
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	return send_env(&env);
}

static void on_msg(struct epsec_conn *c, epsec_msg *m, void *arg);
static void on_drain(struct epsec_conn *c, void *arg);

static void try_connect(void)
{
	struct epsec_conn *c;
	int r = epsec_connect(mux.loop, mux.s->mux, NULL, EPSEC_ROLE_MUX, &c);

	if (r < 0) {
		lost(strerror(-r));
		return;
	}
	epsec_conn_set_handlers(c, on_msg, on_close, NULL);
	epsec_conn_set_drain_handler(c, on_drain);
	mux.conn = c;
	mux.state = MUX_HELLO;
	mux.hello_deadline_ms = epsec_now_ms() + HELLO_TIMEOUT_MS;
	r = send_hello();
	if (r < 0 && mux.conn)
		drop(strerror(-r));
}

static void on_welcome(const Epsec__Welcome *w)
{
	if (mux.state != MUX_HELLO)
		return;
	mux.state = MUX_READY;
	mux.backoff_ms = BACKOFF_MIN_MS;
	mux.warned = false;
	atomic_store(&mux.fds, epsec_conn_passes_fds(mux.conn) &&
				       epsec_caps_has(w->capabilities, w->n_capabilities,
						      EPSEC_CAP_FD));
	atomic_store(&mux.ready, true);
	EPSEC_NOTICE("connected to mux %s (%s, %s, protocol %u)", mux.s->mux,
		     w->id ? w->id : "?", w->build ? w->build : "?", w->version);
}

/* ------------------------------------------------------------ messages in */

static enum vsep_action verdict_action(Epsec__Action a, bool *known)
{
	*known = true;
	switch (a) {
	case EPSEC__ACTION__ACTION_ALLOW:
		return VSEP_ACT_ALLOW;
	case EPSEC__ACTION__ACTION_DENY:
		return VSEP_ACT_DENY;
	case EPSEC__ACTION__ACTION_DELETE:
		return VSEP_ACT_DELETE;
	case EPSEC__ACTION__ACTION_QUARANTINE:
		return VSEP_ACT_QUARANTINE;
	default:
		*known = false;
		return VSEP_ACT_DENY;
	}
}

static void on_verdict(const Epsec__Verdict *v)
{
	struct vsep_outcome o = { .why = VSEP_WHY_VERDICT, .engine = v->engine,
				  .signature = v->signature,
				  .cacheable = v->has_cacheable && v->cacheable,
				  .generation = v->has_generation ? v->generation : 0 };
	bool known;

	o.action = verdict_action(v->action, &known);
	if (v->error) {
		/* Not a verdict about the file: on_error decides, nothing is
		 * cached, and the reason travels where the signature would. */
		o.why = VSEP_WHY_ENGINE_ERROR;
		o.action = policy_action(o.why);
		o.cacheable = false;
		o.signature = v->error;
	} else if (!known) {
		end_by_policy(v->req_id, VSEP_WHY_ERROR);
		EPSEC_WARN("verdict with unknown action %d for req %llu", (int)v->action,
			   (unsigned long long)v->req_id);
		return;
	}
	if (v->has_bytes_read)
		vsep_workers_read_hint(v->bytes_read);
	if (vsep_held_resolve(v->req_id, &o) == -ENOENT)
		EPSEC_DBG("verdict for req %llu, which is no longer held",
			  (unsigned long long)v->req_id);
}

/* ETIMEDOUT: the SVA was too slow (on_timeout); ENOBUFS: this agent holds
 * all the mux takes of one agent (on_overload); anything else means no
 * scanner could take it (on_disconnect). */
static void on_error(const Epsec__Error *e)
{
	struct vsep_outcome o = { .why = VSEP_WHY_DISCONNECT };

	if (!e->has_req_id) {
		EPSEC_WARN("mux %s: error %u: %s", mux.s->mux, e->code,
			   e->message ? e->message : strerror((int)e->code));
		return;
	}
	if (e->code == ETIMEDOUT)
		o.why = VSEP_WHY_TIMEOUT;
	else if (e->code == ENOBUFS)
		o.why = VSEP_WHY_OVERLOAD; /* we hold too much in the mux */
	o.action = policy_action(o.why);
	vsep_held_resolve(e->req_id, &o);
	EPSEC_DBG("req %llu: error %u from mux", (unsigned long long)e->req_id, e->code);
}

static void send_data(uint64_t req_id, uint64_t offset, ssize_t n, uint8_t *buf)
{
	Epsec__Data d = EPSEC__DATA__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;

	d.req_id = req_id;
	d.offset = offset;
	if (n < 0) {
		d.has_error = true;
		d.error = (int32_t)-n;
	} else {
		d.has_data = true;
		d.data.data = buf;
		d.data.len = (size_t)n;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_DATA;
	env.data = &d;
	send_env(&env);
}

/* The reads thread's answer; one for a link that has gone since (its
 * events ended with it) is not sent on the next. */
static void read_done(struct vsep_read_done *d)
{
	if (d->epoch == mux.epoch && mux.state == MUX_READY)
		send_data(d->req_id, d->offset, d->n, d->buf);
	vsep_read_done_free(d);
}

static void on_read(const Epsec__Read *rd)
{
	size_t len = rd->length > READ_MAX ? READ_MAX : rd->length;
	int r = vsep_reads_submit(rd->req_id, rd->offset, len, mux.epoch);

	if (r < 0)
		send_data(rd->req_id, rd->offset, r, NULL);
}

static void on_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_WELCOME:
		on_welcome(m->welcome);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		if (mux.state == MUX_READY)
			on_verdict(m->verdict);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		on_error(m->error);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		if (mux.state == MUX_READY)
			on_read(m->read);
		break;
	case EPSEC__ENVELOPE__BODY_GENERATION:
		if (mux.state == MUX_READY)
			vsep_cache_generation(m->generation->generation);
		break;
	default:
		break;
	}
	epsec_msg_free(m);
}

/* ------------------------------------------------------------ outbox */

static Epsec__EventKind wire_kind(enum vsep_kind k)
{
	switch (k) {
	case VSEP_KIND_EXEC:
		return EPSEC__EVENT_KIND__KIND_EXEC;
	case VSEP_KIND_CLOSE_WRITE:
	case VSEP_KIND_SWEEP:
	case VSEP_KIND_RESCAN:
		return EPSEC__EVENT_KIND__KIND_CLOSE_WRITE;
	default:
		return EPSEC__EVENT_KIND__KIND_OPEN;
	}
}

#define SET(msg, field, value) ((msg).has_##field = true, (msg).field = (value))

/* The file goes along (the SVA then reads it itself) when the link has
 * room for it now; otherwise the EVENT goes alone and the SVA reads with
 * READ. An event already ended (its deadline passed) is not sent. */
static int send_with_fd(epsec_msg *env, uint64_t req_id)
{
	int fd = vsep_held_dup_fd(req_id), r = -ETOOMANYREFS;

	if (fd == -ENOENT)
		return 0;
	if (fd >= 0) {
		env->event->has_local_fd = env->event->local_fd = true;
		r = epsec_conn_send_fd(mux.conn, env, fd);
		close(fd);
	}
	/* No fd to give (EMFILE) or too many in flight: it goes without, and
	 * the SVA reads with READ. -EAGAIN: it waits for on_drain. */
	if (r == -ETOOMANYREFS) {
		env->event->has_local_fd = env->event->local_fd = false;
		r = send_env(env);
	}
	return r;
}

static int send_event(struct vsep_req *r)
{
	Epsec__Event e = EPSEC__EVENT__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;

	e.req_id = r->req_id;
	e.kind = wire_kind(r->kind);
	SET(e, dev, r->st.st_dev);
	SET(e, ino, r->st.st_ino);
	SET(e, size, (uint64_t)r->st.st_size);
	SET(e, mtime_ns, (int64_t)r->st.st_mtim.tv_sec * 1000000000 + r->st.st_mtim.tv_nsec);
	SET(e, ctime_ns, (int64_t)r->st.st_ctim.tv_sec * 1000000000 + r->st.st_ctim.tv_nsec);
	SET(e, mode, r->st.st_mode);
	SET(e, uid, r->st.st_uid);
	SET(e, pid, r->pid);
	e.exe = r->exe;
	e.path = r->path;
	/* The scan's time budget: an opener waits scan_timeout_ms (and a
	 * little more for the engine, so that when both come at once the
	 * opener is answered by on_timeout, not by the engine's error); a
	 * scan nobody waits on may take up to scan_max_ms. */
	SET(e, timeout_ms, (uint32_t)(r->kind == VSEP_KIND_OPEN || r->kind == VSEP_KIND_EXEC
					      ? mux.s->scan_timeout_ms + DEADLINE_MARGIN_MS
					      : mux.s->scan_max_ms));
	if (r->has_data) {
		e.has_inline_data = true;
		e.inline_data.data = r->data;
		e.inline_data.len = r->data_len;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &e;
	return atomic_load(&mux.fds) ? send_with_fd(&env, r->req_id) : send_env(&env);
}

static enum vsep_why unsent_why(int err)
{
	if (mux.stopping)
		return VSEP_WHY_SHUTDOWN;
	return err == -ENOBUFS ? VSEP_WHY_OVERLOAD : VSEP_WHY_DISCONNECT;
}

/* Behind EVENTs already waiting for the link, in order. */
static void stall(struct vsep_req *list)
{
	*mux.stalled_tail = list;
	while (list->next)
		list = list->next;
	mux.stalled_tail = &list->next;
}

static void send_events(struct vsep_req *list)
{
	struct vsep_req *next;
	int r;

	if (list && mux.stalled) {
		stall(list);
		return;
	}
	for (; list; list = next) {
		next = list->next;
		r = mux.state == MUX_READY ? send_event(list) : -ENOTCONN;
		if (r == -EAGAIN) {
			stall(list);
			return;
		}
		if (r < 0)
			end_by_policy(list->req_id, unsent_why(r));
		vsep_req_free(list);
	}
}

/* The link took all it held: what waited for it goes now. */
static void on_drain(struct epsec_conn *c, void *arg)
{
	struct vsep_req *list = mux.stalled;

	mux.stalled = NULL;
	mux.stalled_tail = &mux.stalled;
	send_events(list);
}

static void send_logs(struct logline *list)
{
	Epsec__Log l = EPSEC__LOG__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	struct logline *next;

	env.body_case = EPSEC__ENVELOPE__BODY_LOG;
	env.log = &l;
	for (; list; list = next) {
		next = list->next;
		l.level = (uint32_t)list->level;
		l.text = list->text;
		l.source = list->src;
		if (mux.state == MUX_READY)
			send_env(&env);
		free(list);
	}
}

static void flush(void)
{
	struct vsep_req *reqs;
	struct logline *logs;

	pthread_mutex_lock(&mux.lock);
	reqs = mux.reqs;
	logs = mux.logs;
	mux.reqs = NULL;
	mux.reqs_tail = &mux.reqs;
	mux.logs = NULL;
	mux.logs_tail = &mux.logs;
	mux.nlogs = 0;
	mux.wake_posted = false;
	pthread_mutex_unlock(&mux.lock);
	send_logs(logs);
	send_events(reqs);
}

static void on_wake(struct epsec_loop *loop, void *arg)
{
	flush();
}

/* Caller holds the lock; returns whether the loop must be woken. */
static bool need_wake(void)
{
	bool first = !mux.wake_posted;

	mux.wake_posted = true;
	return first;
}

/* A failed post is not lost: the tick flushes the outbox too. */
static void wake(void)
{
	epsec_loop_post(mux.loop, on_wake, NULL);
}

void vsep_mux_submit(struct vsep_req *r)
{
	bool w;

	r->next = NULL;
	pthread_mutex_lock(&mux.lock);
	*mux.reqs_tail = r;
	mux.reqs_tail = &r->next;
	w = need_wake();
	pthread_mutex_unlock(&mux.lock);
	if (w)
		wake();
}

static int queue_log(int level, const char *src, const char *line)
{
	size_t tl = strlen(line) + 1, sl = src ? strlen(src) + 1 : 0;
	struct logline *l;
	bool w;

	l = malloc(sizeof(*l) + tl + sl);
	if (!l)
		return -ENOMEM;
	l->next = NULL;
	l->level = level;
	memcpy(l->text, line, tl);
	l->src = src ? memcpy(l->text + tl, src, sl) : NULL;
	pthread_mutex_lock(&mux.lock);
	if (mux.nlogs >= LOG_QUEUE_MAX) {
		pthread_mutex_unlock(&mux.lock);
		free(l);
		return -ENOBUFS;
	}
	*mux.logs_tail = l;
	mux.logs_tail = &l->next;
	mux.nlogs++;
	w = need_wake();
	pthread_mutex_unlock(&mux.lock);
	if (w)
		wake();
	return 0;
}

/* Called from any thread by log.c. It must never log itself; what it
 * refuses (not connected, too many queued) log.c sends to syslog. */
int vsep_mux_log_forward(int level, const char *src, const char *line)
{
	static _Thread_local bool inside;
	int r;

	if (inside || !atomic_load(&mux.ready))
		return -ENOTCONN;
	inside = true;
	r = queue_log(level, src, line);
	inside = false;
	return r;
}

/* ------------------------------------------------------------ start/stop */

static void on_tick(struct epsec_loop *loop, void *arg)
{
	uint64_t now = epsec_now_ms();

	flush();
	if (mux.state == MUX_IDLE && now >= mux.next_try_ms)
		try_connect();
	else if (mux.state == MUX_HELLO && now >= mux.hello_deadline_ms)
		drop("no WELCOME");
}

int vsep_mux_start(struct epsec_loop *loop, const struct vsep_settings *s)
{
	int r;

	mux.loop = loop;
	mux.s = s;
	mux.reqs_tail = &mux.reqs;
	mux.stalled = NULL;
	mux.stalled_tail = &mux.stalled;
	mux.logs_tail = &mux.logs;
	mux.backoff_ms = BACKOFF_MIN_MS;
	r = vsep_reads_start(loop, read_done);
	if (r < 0)
		return r;
	r = epsec_loop_add_timer(loop, TICK_MS, on_tick, NULL);
	if (r < 0) {
		vsep_reads_stop();
		return r;
	}
	mux.timer = r;
	try_connect();
	return 0;
}

void vsep_mux_stop(void)
{
	struct epsec_conn *c = mux.conn;

	atomic_store(&mux.ready, false);
	mux.stopping = true;
	if (mux.timer > 0)
		epsec_loop_del_timer(mux.loop, mux.timer);
	mux.timer = 0;
	mux.conn = NULL;
	mux.state = MUX_IDLE;
	mux.epoch++;
	if (c)
		epsec_conn_close(c);
	vsep_reads_stop();
	on_drain(NULL, NULL); /* not connected: what waited ends by policy */
	flush();
}
