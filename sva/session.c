/* SPDX-License-Identifier: MIT */
/* libepsec's session: one network thread per session keeps a link to the
 * mux (HELLO/WELCOME, reconnect with capped backoff), queues incoming
 * EVENTs for workers, completes their preads with DATA and sends what they
 * queue (READ, VERDICT). Workers never touch the link: only this thread does. */
#include "config.h"
#include <epsec/epsec.h>
#include "sdk.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"

#define EPSEC_LOG_SRC "libepsec"

#ifndef EPSEC_BUILD_STRING
#define EPSEC_BUILD_STRING "EPSEC_BUILD=" EPSEC_VERSION " (" EPSEC_BUILD_ID ")"
#endif

/* The runbook's check: `strings libepsec.so | grep BUILD`. */
static const char epsec_build_string[] __attribute__((used)) = EPSEC_BUILD_STRING;

#define TICK_MS 100u
/* WORKING: how often, and at most how many ids in one (more live events
 * than that is far beyond any worker pool; the rest time out as before). */
#define WORKING_MS 1000u
#define WORKING_IDS_MAX 65536u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 1000u
#define HANDSHAKE_MS 5000u

/* The loader is process-wide; the SDK initializes it only when the program
 * has not (a partner's appliance), and then once for all its sessions. */
static pthread_mutex_t loader_lock = PTHREAD_MUTEX_INITIALIZER;
static bool loader_external;
static unsigned loader_users;

const char *epsec_sdk_version(void)
{
	return EPSEC_VERSION " (" EPSEC_BUILD_ID ")";
}

void epsec_sva_loader_external(void)
{
	pthread_mutex_lock(&loader_lock);
	loader_external = true;
	pthread_mutex_unlock(&loader_lock);
}

static int loader_get(const char *plugin_dir, bool *owned)
{
	int r = 0;

	*owned = false;
	pthread_mutex_lock(&loader_lock);
	if (!loader_external) {
		if (loader_users == 0)
			r = epsec_loader_init(plugin_dir);
		if (r == 0) {
			loader_users++;
			*owned = true;
		}
	}
	pthread_mutex_unlock(&loader_lock);
	return r;
}

static void loader_put(bool owned)
{
	if (!owned)
		return;
	pthread_mutex_lock(&loader_lock);
	if (--loader_users == 0)
		epsec_loader_exit();
	pthread_mutex_unlock(&loader_lock);
}

/* Transports load on the caller's (main) thread, as ltdl wants; the
 * network thread's later connects find the scheme cached. */
static int preload_transport(const char *uri)
{
	const struct epsec_transport_plugin *t;
	const char *rest;
	char scheme[32];
	int r;

	r = epsec_uri_split(uri, scheme, sizeof(scheme), &rest);
	if (r < 0)
		return r;
	return epsec_loader_transport(scheme, &t);
}

static int split_engines(struct epsec_session *s, const char *list)
{
	const char *p = list ? list : "";
	size_t n = 0, len;

	s->engines = calloc(strlen(p) / 2 + 1, sizeof(char *));
	if (!s->engines)
		return -ENOMEM;
	while (*p) {
		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len == 0)
			break;
		s->engines[n] = strndup(p, len);
		if (!s->engines[n])
			return -ENOMEM;
		n++;
		s->n_engines = n;
		p += len;
	}
	return 0;
}

static void session_free(struct epsec_session *s)
{
	size_t i;

	for (i = 0; i < s->n_engines; i++)
		free(s->engines[i]);
	free(s->engines);
	free(s->uri);
	free(s->id);
	pthread_cond_destroy(&s->ready);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void epsec_sva_unref(struct epsec_session *s)
{
	unsigned left;

	pthread_mutex_lock(&s->lock);
	left = --s->refs;
	pthread_mutex_unlock(&s->lock);
	if (left == 0)
		session_free(s);
}

static int default_id(char **out)
{
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	return asprintf(out, "sva-%s", host) < 0 ? -ENOMEM : 0;
}

static int session_alloc(const struct epsec_session_config *cfg, struct epsec_session **out)
{
	struct epsec_session *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	epsec_sva_cond_init(&s->ready);
	s->refs = 1;
	s->epoch = 1;
	s->backoff_ms = BACKOFF_MIN_MS;
	atomic_init(&s->connected, false);
	atomic_init(&s->generation, cfg->generation);
	atomic_init(&s->stage_max, EPSEC_SDK_STAGE_MAX_DEFAULT);
	s->uri = strdup(cfg->mux_uri);
	if (cfg->id && *cfg->id)
		s->id = strdup(cfg->id);
	else if (default_id(&s->id) < 0)
		s->id = NULL;
	if (!s->uri || !s->id || split_engines(s, cfg->engines) < 0) {
		session_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------- wire */

static int send_hello(struct epsec_session *s)
{
	static char *caps[] = { (char *)EPSEC_CAP_GENERATION, (char *)EPSEC_CAP_FD };
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;

	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	h.role = EPSEC__ROLE__ROLE_SVA;
	h.id = s->id;
	h.build = (char *)epsec_sdk_version();
	h.n_engines = s->n_engines;
	h.engines = s->engines;
	/* Cleared before the read: a reload from now on is announced after
	 * WELCOME, one before it is in this HELLO. */
	atomic_store(&s->generation_news, false);
	h.has_generation = 1;
	h.generation = atomic_load(&s->generation);
	h.n_capabilities = epsec_conn_passes_fds(s->conn) ? 2 : 1;
	h.capabilities = caps;
	m.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	m.hello = &h;
	return epsec_conn_send(s->conn, &m);
}

static int send_read(struct epsec_session *s, const struct epsec_out_op *op)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Read rd = EPSEC__READ__INIT;

	rd.req_id = op->req_id;
	rd.offset = op->offset;
	rd.length = op->length;
	m.body_case = EPSEC__ENVELOPE__BODY_READ;
	m.read = &rd;
	return epsec_conn_send(s->conn, &m);
}

static int send_verdict(struct epsec_session *s, const struct epsec_out_op *op)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;

	v.req_id = op->req_id;
	v.action = (Epsec__Action)op->action;
	v.engine = op->engine;
	v.signature = op->signature;
	v.has_cacheable = 1;
	v.cacheable = op->cacheable;
	v.has_generation = 1;
	v.generation = op->generation;
	v.has_bytes_read = 1;
	v.bytes_read = op->bytes_read;
	v.error = op->error;
	m.body_case = EPSEC__ENVELOPE__BODY_VERDICT;
	m.verdict = &v;
	return epsec_conn_send(s->conn, &m);
}

/* -ENOBUFS: the transport's queue is full (ZeroMQ's high-water mark);
 * the op must be kept and sent later, not dropped. */
static bool transport_full(int r)
{
	return r == -ENOBUFS || r == -EAGAIN;
}

/* 0 sent or given up (reported), -ENOBUFS to be retried. */
static int send_op(struct epsec_session *s, const struct epsec_out_op *op, uint64_t epoch)
{
	int r;

	/* Ops of a lost connection: its waits already failed, and the mux
	 * re-dispatches its events. */
	if (!s->conn || op->epoch != epoch)
		return 0;
	r = op->kind == EPSEC__ENVELOPE__BODY_READ ? send_read(s, op) : send_verdict(s, op);
	if (transport_full(r))
		return -ENOBUFS;
	if (r < 0 && op->kind == EPSEC__ENVELOPE__BODY_READ) {
		pthread_mutex_lock(&s->lock);
		epsec_sva_fail_waits(s, op->req_id, r);
		pthread_mutex_unlock(&s->lock);
	} else if (r < 0) {
		EPSEC_WARN("verdict for request %llu not sent: %s",
			   (unsigned long long)op->req_id, strerror(-r));
	}
	return 0;
}

/* Put back what could not be sent, ahead of anything queued since. */
static void requeue(struct epsec_session *s, struct epsec_out_op *head)
{
	struct epsec_out_op *last = head;

	while (last->next)
		last = last->next;
	pthread_mutex_lock(&s->lock);
	last->next = s->out_head;
	if (!s->out_head)
		s->out_tail = last;
	s->out_head = head;
	pthread_mutex_unlock(&s->lock);
}

/* A full transport stops the drain; the next tick or wake-up goes on. */
static void drain_outbox(struct epsec_session *s)
{
	struct epsec_out_op *op, *next;
	uint64_t epoch;

	pthread_mutex_lock(&s->lock);
	op = s->out_head;
	s->out_head = s->out_tail = NULL;
	epoch = s->epoch;
	pthread_mutex_unlock(&s->lock);
	for (; op; op = next) {
		if (send_op(s, op, epoch) == -ENOBUFS) {
			requeue(s, op);
			return;
		}
		next = op->next;
		epsec_sva_out_free(op);
	}
}

/* ---------------------------------------------------------------- link state */

static const char *reason_text(int reason)
{
	return reason < 0 ? strerror(-reason) : "closed";
}

static void schedule_retry(struct epsec_session *s)
{
	s->next_connect_ms = epsec_now_ms() + s->backoff_ms;
	s->backoff_ms *= 2;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
}

static struct epsec_event *take_queue(struct epsec_session *s)
{
	struct epsec_event *head = s->head;

	s->head = s->tail = NULL;
	return head;
}

static void free_events(struct epsec_event *ev)
{
	struct epsec_event *next;

	for (; ev; ev = next) {
		next = ev->next;
		epsec_sva_event_free(ev);
	}
}

/* The link is gone (conn already freed or closed). Its queued events are
 * dropped: the mux re-sends them, to us or another SVA. */
static void conn_lost(struct epsec_session *s, int reason)
{
	struct epsec_event *dropped;

	if (s->welcomed) {
		EPSEC_WARN("lost the mux at %s (%s); reconnecting", s->uri, reason_text(reason));
		s->backoff_ms = BACKOFF_MIN_MS;
		s->lost_logged = true;
	}
	s->welcomed = false;
	atomic_store(&s->connected, false);
	pthread_mutex_lock(&s->lock);
	s->epoch++;
	epsec_sva_fail_waits(s, 0, -ECONNRESET);
	dropped = take_queue(s);
	pthread_mutex_unlock(&s->lock);
	free_events(dropped);
	schedule_retry(s);
}

static void connect_failed(struct epsec_session *s, int err)
{
	if (!s->lost_logged)
		EPSEC_WARN("cannot reach the mux at %s: %s; retrying", s->uri, strerror(-err));
	else
		EPSEC_DBG("cannot reach the mux at %s: %s", s->uri, strerror(-err));
	s->lost_logged = true;
	schedule_retry(s);
}

static void on_welcome(struct epsec_session *s, const Epsec__Welcome *w)
{
	if (s->welcomed)
		return;
	s->welcomed = true;
	s->mux_takes_generation =
		epsec_caps_has(w->capabilities, w->n_capabilities, EPSEC_CAP_GENERATION);
	s->mux_takes_working =
		epsec_caps_has(w->capabilities, w->n_capabilities, EPSEC_CAP_WORKING);
	s->lost_logged = false;
	s->backoff_ms = BACKOFF_MIN_MS;
	atomic_store(&s->connected, true);
	EPSEC_INFO("connected to mux %s at %s (protocol %u)", w->id ? w->id : "?", s->uri,
		   w->version);
}

static void on_event(struct epsec_session *s, epsec_msg *m)
{
	struct epsec_event *ev;
	int fd = epsec_msg_carries_fd(m) ? epsec_conn_take_fd(s->conn) : -1;

	if (!s->welcomed) {
		EPSEC_WARN("EVENT before WELCOME from %s; ignored", s->uri);
		epsec_msg_free(m);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (epsec_sva_event_new(s, m, fd, &ev) < 0) {
		EPSEC_ERR("out of memory for an event; the mux will time it out");
		epsec_msg_free(m);
		if (fd >= 0)
			close(fd);
		return;
	}
	pthread_mutex_lock(&s->lock);
	ev->epoch = s->epoch;
	if (s->tail)
		s->tail->next = ev;
	else
		s->head = ev;
	s->tail = ev;
	pthread_cond_signal(&s->ready);
	pthread_mutex_unlock(&s->lock);
}

static struct epsec_read_wait *find_wait(struct epsec_session *s, uint64_t req_id, uint64_t off)
{
	struct epsec_read_wait *w;

	for (w = s->waits; w; w = w->next)
		if (w->req_id == req_id && w->offset == off)
			return w;
	return NULL;
}

static void on_data(struct epsec_session *s, const Epsec__Data *d)
{
	struct epsec_read_wait *w;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	w = find_wait(s, d->req_id, d->offset);
	if (!w) {
		pthread_mutex_unlock(&s->lock);
		EPSEC_DBG("DATA for request %llu offset %llu that nobody waits for",
			  (unsigned long long)d->req_id, (unsigned long long)d->offset);
		return;
	}
	if (d->has_error && d->error != 0) {
		epsec_sva_complete_wait(s, w, d->error > 0 ? -d->error : -EIO);
	} else {
		if (d->has_data)
			n = d->data.len < w->len ? d->data.len : w->len;
		if (n)
			memcpy(w->buf, d->data.data, n);
		epsec_sva_complete_wait(s, w, (ssize_t)n);
	}
	pthread_mutex_unlock(&s->lock);
}

static void on_error(struct epsec_session *s, const Epsec__Error *e)
{
	int code = e->code ? (int)e->code : EIO;

	if (!e->has_req_id) {
		/* Refused before WELCOME (versions, role): once per outage. */
		if (s->welcomed || !s->lost_logged)
			EPSEC_WARN("the mux at %s reports: %s (%s)", s->uri,
				   e->message ? e->message : "-", strerror(code));
		else
			EPSEC_DBG("the mux at %s reports: %s", s->uri, e->message ? e->message : "-");
		if (!s->welcomed)
			s->lost_logged = true;
		return;
	}
	EPSEC_DBG("the mux fails request %llu: %s", (unsigned long long)e->req_id, strerror(code));
	pthread_mutex_lock(&s->lock);
	epsec_sva_fail_waits(s, e->req_id, -code);
	pthread_mutex_unlock(&s->lock);
}

static void net_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct epsec_session *s = arg;

	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_EVENT:
		on_event(s, m);
		return;
	case EPSEC__ENVELOPE__BODY_WELCOME:
		on_welcome(s, m->welcome);
		break;
	case EPSEC__ENVELOPE__BODY_DATA:
		on_data(s, m->data);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		on_error(s, m->error);
		break;
	default:
		EPSEC_DBG("ignoring %s from the mux", epsec_msg_name(m->body_case));
		break;
	}
	epsec_msg_free(m);
}

static void net_closed(struct epsec_conn *c, int reason, void *arg)
{
	struct epsec_session *s = arg;

	s->conn = NULL;
	conn_lost(s, reason);
}

/* ---------------------------------------------------------------- loop */

static bool is_closing(struct epsec_session *s)
{
	bool closing;

	pthread_mutex_lock(&s->lock);
	closing = s->closing;
	pthread_mutex_unlock(&s->lock);
	return closing;
}

static void maybe_connect(struct epsec_session *s)
{
	struct epsec_conn *c;
	int r;

	if (s->conn || epsec_now_ms() < s->next_connect_ms || is_closing(s))
		return;
	r = epsec_connect(s->loop, s->uri, NULL, EPSEC_ROLE_MUX, &c);
	if (r < 0) {
		connect_failed(s, r);
		return;
	}
	epsec_conn_set_handlers(c, net_msg, net_closed, s);
	s->conn = c;
	s->connect_started_ms = epsec_now_ms();
	r = send_hello(s);
	/* A link that died inside send has already run net_closed. */
	if (r < 0 && s->conn == c) {
		epsec_conn_close(c);
		s->conn = NULL;
		connect_failed(s, r);
	}
}

static void check_handshake(struct epsec_session *s)
{
	if (!s->conn || s->welcomed || epsec_now_ms() - s->connect_started_ms < HANDSHAKE_MS)
		return;
	EPSEC_WARN("no WELCOME from the mux at %s within %u ms", s->uri, HANDSHAKE_MS);
	epsec_conn_close(s->conn);
	s->conn = NULL;
	conn_lost(s, -ETIMEDOUT);
}

/* A reload's new generation, to a mux that passes it on to the agents:
 * their cached verdicts go now, not at the next verdict they get. */
static void send_generation(struct epsec_session *s)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Generation g = EPSEC__GENERATION__INIT;

	if (!s->welcomed || !s->mux_takes_generation ||
	    !atomic_exchange(&s->generation_news, false))
		return;
	g.generation = atomic_load(&s->generation);
	m.body_case = EPSEC__ENVELOPE__BODY_GENERATION;
	m.generation = &g;
	if (epsec_conn_send(s->conn, &m) < 0)
		atomic_store(&s->generation_news, true); /* again next tick */
}

/* Once a second, every event we hold on this connection (queued or
 * scanning): the mux then times out only what we went silent about, and
 * a long scan is never cut for being long. */
static void send_working(struct epsec_session *s)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Working w = EPSEC__WORKING__INIT;
	uint64_t now = epsec_now_ms(), *ids;

	if (!s->welcomed || !s->mux_takes_working || now - s->working_sent_ms < WORKING_MS)
		return;
	s->working_sent_ms = now;
	ids = malloc(WORKING_IDS_MAX * sizeof(*ids));
	if (!ids)
		return;
	pthread_mutex_lock(&s->lock);
	w.n_req_ids = epsec_sva_live_ids(s, ids, WORKING_IDS_MAX);
	pthread_mutex_unlock(&s->lock);
	w.req_ids = ids;
	m.body_case = EPSEC__ENVELOPE__BODY_WORKING;
	m.working = &w;
	if (w.n_req_ids)
		epsec_conn_send(s->conn, &m);
	free(ids);
}

static void net_service(struct epsec_session *s)
{
	maybe_connect(s);
	check_handshake(s);
	drain_outbox(s);
	send_generation(s);
	send_working(s);
}

static void net_tick(struct epsec_loop *loop, void *arg)
{
	net_service(arg);
}

static void net_wake(struct epsec_loop *loop, void *arg)
{
	struct epsec_session *s = arg;

	pthread_mutex_lock(&s->lock);
	s->wake_posted = false;
	pthread_mutex_unlock(&s->lock);
	net_service(s);
}

/* Verdicts queued before close still go out; then the link closes. */
static void net_shutdown(struct epsec_loop *loop, void *arg)
{
	struct epsec_session *s = arg;

	drain_outbox(s);
	if (s->conn) {
		epsec_conn_close(s->conn);
		s->conn = NULL;
	}
	epsec_loop_stop(loop);
}

void epsec_sva_kick(struct epsec_session *s)
{
	int r;

	pthread_mutex_lock(&s->lock);
	if (s->closing || s->wake_posted) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->wake_posted = true;
	s->posting++;
	pthread_mutex_unlock(&s->lock);
	r = epsec_loop_post(s->loop, net_wake, s);
	pthread_mutex_lock(&s->lock);
	if (r < 0)
		s->wake_posted = false; /* the tick drains it a little later */
	if (--s->posting == 0 && s->closing)
		pthread_cond_broadcast(&s->ready);
	pthread_mutex_unlock(&s->lock);
}

static void *net_main(void *arg)
{
	struct epsec_session *s = arg;

	epsec_loop_run(s->loop);
	return NULL;
}

/* The network thread takes no process signals: they belong to the
 * program (epsec-sva routes them through a signalfd). */
static int start_thread(struct epsec_session *s)
{
	sigset_t all, old;
	int r;

	r = epsec_loop_new(&s->loop);
	if (r < 0)
		return r;
	r = epsec_loop_add_timer(s->loop, TICK_MS, net_tick, s);
	if (r < 0)
		return r;
	s->timer = r;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&s->thread, NULL, net_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	epsec_sva_kick(s);
	return 0;
}

/* ---------------------------------------------------------------- API */

int epsec_session_open(const struct epsec_session_config *cfg, struct epsec_session **out)
{
	struct epsec_session *s;
	int r;

	if (!cfg || !cfg->mux_uri || !out)
		return -EINVAL;
	r = session_alloc(cfg, &s);
	if (r < 0)
		return r;
	r = loader_get(cfg->plugin_dir, &s->loader_owned);
	if (r < 0)
		goto fail;
	r = preload_transport(s->uri);
	if (r < 0)
		goto fail;
	r = start_thread(s);
	if (r < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	if (s->loop)
		epsec_loop_free(s->loop);
	loader_put(s->loader_owned);
	session_free(s);
	return r;
}

int epsec_session_next(struct epsec_session *s, struct epsec_event **ev, int timeout_ms)
{
	struct timespec deadline;
	int r = -ETIMEDOUT;

	epsec_sva_deadline(&deadline, timeout_ms);
	pthread_mutex_lock(&s->lock);
	s->refs++; /* close may finish while we sleep */
	while (!s->head && !s->closing) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->ready, &s->lock);
		else if (pthread_cond_timedwait(&s->ready, &s->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (s->closing) {
		r = -ESHUTDOWN;
	} else if (s->head) {
		*ev = s->head;
		s->head = (*ev)->next;
		if (!s->head)
			s->tail = NULL;
		(*ev)->next = NULL;
		(*ev)->generation = atomic_load(&s->generation);
		epsec_sva_event_start(*ev);
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	epsec_sva_unref(s);
	return r;
}

void epsec_session_set_generation(struct epsec_session *s, uint64_t generation)
{
	atomic_store(&s->generation, generation);
	atomic_store(&s->generation_news, true);
	epsec_sva_kick(s);
}

bool epsec_session_connected(struct epsec_session *s)
{
	return atomic_load(&s->connected);
}

static void stop_thread(struct epsec_session *s)
{
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	epsec_sva_fail_waits(s, 0, -ESHUTDOWN);
	pthread_cond_broadcast(&s->ready);
	while (s->posting)
		pthread_cond_wait(&s->ready, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (epsec_loop_post(s->loop, net_shutdown, s) < 0)
		epsec_loop_stop(s->loop);
	pthread_join(s->thread, NULL);
}

void epsec_session_close(struct epsec_session *s)
{
	struct epsec_out_op *op, *next;
	struct epsec_event *dropped;

	if (!s)
		return;
	stop_thread(s);
	if (s->conn)
		epsec_conn_close(s->conn);
	s->conn = NULL;
	epsec_loop_del_timer(s->loop, s->timer);
	epsec_loop_free(s->loop);
	s->loop = NULL;
	atomic_store(&s->connected, false);
	pthread_mutex_lock(&s->lock);
	dropped = take_queue(s);
	op = s->out_head;
	s->out_head = s->out_tail = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; op; op = next) {
		next = op->next;
		epsec_sva_out_free(op);
	}
	free_events(dropped);
	loader_put(s->loader_owned);
	epsec_sva_unref(s);
}
