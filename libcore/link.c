/* SPDX-License-Identifier: MIT */
/* Links: a connection to a peer over whatever transport its URI names. This
 * file owns the transport handle and its loop watch, decodes what arrives
 * with the peer's role (a hostile peer gets one ERROR and is dropped), and
 * answers PING itself and finds silent peers, so dead peers are noticed the
 * same way on every transport. */
#include "config.h"
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "host.h"
#include "loader.h"
#include "log.h"
#include "topts.h"

#define EPSEC_LOG_SRC "link"

#define SCHEME_MAX 32

/* Liveness: PING after ping_ms without hearing from the peer, drop it
 * after dead_ms. One timer per loop walks all its links. */
static atomic_uint ping_ms = 1000;
static atomic_uint dead_ms = 3000;

struct link_loop {
	struct link_loop *next;
	struct epsec_loop *loop;
	int timer;
	unsigned period;
	struct epsec_conn *conns;
	bool in_tick;
};

/* Loops run in different threads (libepsec has its own): the registry of
 * loops is locked; each loop's list of links is touched only by its thread. */
static pthread_mutex_t loops_lock = PTHREAD_MUTEX_INITIALIZER;
static struct link_loop *loops;

struct epsec_conn {
	struct epsec_conn *prev, *next; /* in ll->conns */
	struct link_loop *ll;
	struct epsec_loop *loop;
	const struct epsec_transport_plugin *tr;
	struct epsec_link *link;
	enum epsec_role peer_role;
	int fd;
	uint32_t events;
	epsec_conn_msg_fn on_msg;
	epsec_conn_close_fn on_close;
	void *arg, *data;
	char *uri, *peer;
	uint64_t last_rx_ms, last_ping_ms, ping_seq;
	unsigned refs;   /* 1 while open, +1 for each callback or post in flight */
	bool closed;
	int dead;        /* send found the link dead: on_close runs from the loop */
	int rx_fd;       /* the fd that came with the message being delivered */
	bool fds_lost_said;
	bool want_drain; /* send_fd said -EAGAIN: tell on_drain when it may not */
	epsec_conn_drain_fn on_drain;
};

struct epsec_listener {
	struct epsec_loop *loop;
	const struct epsec_transport_plugin *tr;
	struct epsec_link *link;
	enum epsec_role peer_role;
	int fd;
	epsec_conn_accept_fn on_accept;
	void *arg;
	char *uri;
	unsigned refs;
	uint64_t warned_ms;
	bool closed;
};

void epsec_link_set_liveness(unsigned ping_interval_ms, unsigned timeout_ms)
{
	atomic_store(&ping_ms, ping_interval_ms ? ping_interval_ms : 1);
	atomic_store(&dead_ms, timeout_ms ? timeout_ms : 1);
}

static unsigned tick_period(void)
{
	unsigned p = atomic_load(&ping_ms), d = atomic_load(&dead_ms);
	unsigned t = (p < d ? p : d) / 4;

	return t < 5 ? 5 : t > 250 ? 250 : t;
}

/* ------------------------------------------------------------ lifetime */

static void conn_ref(struct epsec_conn *c)
{
	c->refs++;
}

static void conn_unref(struct epsec_conn *c)
{
	if (--c->refs)
		return;
	free(c->uri);
	free(c->peer);
	free(c);
}

static void liveness_tick(struct epsec_loop *loop, void *arg);

static struct link_loop *ll_get(struct epsec_loop *loop)
{
	struct link_loop *ll;
	int t;

	pthread_mutex_lock(&loops_lock);
	for (ll = loops; ll && ll->loop != loop; ll = ll->next)
		;
	if (!ll && (ll = calloc(1, sizeof(*ll)))) {
		ll->loop = loop;
		ll->period = tick_period();
		t = epsec_loop_add_timer(loop, ll->period, liveness_tick, ll);
		if (t < 0) {
			free(ll);
			ll = NULL;
		} else {
			ll->timer = t;
			ll->next = loops;
			loops = ll;
		}
	}
	pthread_mutex_unlock(&loops_lock);
	return ll;
}

static void ll_put(struct link_loop *ll)
{
	struct link_loop **pp;

	if (ll->conns || ll->in_tick)
		return;
	pthread_mutex_lock(&loops_lock);
	for (pp = &loops; *pp && *pp != ll; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = ll->next;
	pthread_mutex_unlock(&loops_lock);
	epsec_loop_del_timer(ll->loop, ll->timer);
	free(ll);
}

static void ll_add(struct link_loop *ll, struct epsec_conn *c)
{
	c->ll = ll;
	c->prev = NULL;
	c->next = ll->conns;
	if (ll->conns)
		ll->conns->prev = c;
	ll->conns = c;
}

static void ll_remove(struct epsec_conn *c)
{
	struct link_loop *ll = c->ll;

	if (c->prev)
		c->prev->next = c->next;
	else
		ll->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->ll = NULL;
	ll_put(ll);
}

/* Everything but the memory, which goes with the last reference. */
static void conn_shut(struct epsec_conn *c)
{
	c->closed = true;
	epsec_loop_del_fd(c->loop, c->fd);
	c->tr->close(c->link);
	c->link = NULL;
	ll_remove(c);
}

void epsec_conn_close(struct epsec_conn *c)
{
	if (!c || c->closed)
		return;
	conn_shut(c);
	conn_unref(c);
}

/* Close and tell the owner, once. The caller holds a reference, so `c`
 * stays readable while on_close runs even if it closes other links. */
static void conn_fail(struct epsec_conn *c, int reason)
{
	epsec_conn_close_fn fn = c->on_close;
	void *arg = c->arg;

	if (c->closed)
		return;
	conn_ref(c);
	conn_shut(c);
	if (fn)
		fn(c, reason, arg);
	c->refs--; /* the open reference; ours keeps c until the next line */
	conn_unref(c);
}

static void fail_posted(struct epsec_loop *loop, void *arg)
{
	struct epsec_conn *c = arg;

	conn_fail(c, c->dead);
	conn_unref(c);
}

/* A send that finds the link dead must not run on_close under its caller
 * (who may be walking the very list on_close edits): do it from the loop. */
static void conn_fail_later(struct epsec_conn *c, int reason)
{
	if (c->dead || c->closed)
		return;
	c->dead = reason;
	conn_ref(c);
	if (epsec_loop_post(c->loop, fail_posted, c) < 0)
		conn_unref(c); /* the liveness tick closes it instead */
}

/* ------------------------------------------------------------ sending */

static void conn_watch(struct epsec_conn *c)
{
	uint32_t want = EPSEC_LOOP_IN;

	if (c->want_drain || c->tr->want_write(c->link))
		want |= EPSEC_LOOP_OUT;
	if (want != c->events && epsec_loop_mod_fd(c->loop, c->fd, want) == 0)
		c->events = want;
}

/* A 1.0 transport descriptor ends before send_fd: never read past it. */
static bool tr_passes_fds(const struct epsec_transport_plugin *tr)
{
	return tr->abi_minor >= 1 && tr->send_fd && tr->recv_fd;
}

/* `fd` >= 0 goes along with the message (the caller checked the link can). */
static int conn_send_raw(struct epsec_conn *c, const epsec_msg *m, int fd)
{
	void *buf;
	size_t len;
	int r;

	if (c->closed)
		return -ENOTCONN;
	if (c->dead)
		return c->dead;
	r = epsec_msg_encode(m, &buf, &len);
	if (r < 0)
		return r;
	r = fd >= 0 ? c->tr->send_fd(c->link, buf, len, fd) : c->tr->send(c->link, buf, len);
	free(buf);
	if (r == 0)
		conn_watch(c);
	return r;
}

bool epsec_conn_passes_fds(const struct epsec_conn *c)
{
	return !c->closed && tr_passes_fds(c->tr);
}

int epsec_conn_send_fd(struct epsec_conn *c, const epsec_msg *m, int fd)
{
	int r = tr_passes_fds(c->tr) ? conn_send_raw(c, m, fd) : -EOPNOTSUPP;

	if (r == -EAGAIN && !c->closed) {
		c->want_drain = true;
		conn_watch(c);
	} else if (r < 0 && r != -EMSGSIZE && r != -ENOMEM && r != -ENOTCONN &&
		   r != -EOPNOTSUPP && r != -EINVAL && r != -ETOOMANYREFS) {
		conn_fail_later(c, r);
	}
	return r;
}

void epsec_conn_set_drain_handler(struct epsec_conn *c, epsec_conn_drain_fn on_drain)
{
	c->on_drain = on_drain;
}

int epsec_conn_take_fd(struct epsec_conn *c)
{
	int fd = c->rx_fd;

	c->rx_fd = -1;
	return fd >= 0 ? fd : -ENOENT;
}

int epsec_conn_send(struct epsec_conn *c, const epsec_msg *m)
{
	int r = conn_send_raw(c, m, -1);

	if (r < 0 && r != -ENOBUFS && r != -EMSGSIZE && r != -ENOTCONN && r != -EINVAL &&
	    r != -ENOMEM)
		conn_fail_later(c, r);
	return r;
}

static void send_error(struct epsec_conn *c, uint32_t code, const char *why)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Error err = EPSEC__ERROR__INIT;

	err.code = code;
	err.message = (char *)why;
	env.body_case = EPSEC__ENVELOPE__BODY_ERROR;
	env.error = &err;
	/* Best effort: the link is about to go whatever happens. */
	if (conn_send_raw(c, &env, -1) == 0)
		c->tr->flush(c->link);
}

void epsec_conn_reject(struct epsec_conn *c, uint32_t code, const char *why)
{
	if (!c || c->closed)
		return;
	if (!code)
		code = ECONNABORTED;
	send_error(c, code, why);
	conn_fail(c, -(int)code);
}

/* A peer that broke the protocol: one log line, ERROR, gone. */
static void conn_hostile(struct epsec_conn *c, int err, const char *why)
{
	EPSEC_WARN("dropping %s peer %s on %s: %s", epsec_role_name(c->peer_role), c->peer, c->uri,
		   why);
	send_error(c, (uint32_t)-err, why);
	conn_fail(c, err);
}

/* ------------------------------------------------------------ receiving */

static void send_pong(struct epsec_conn *c, uint64_t seq)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Pong pong = EPSEC__PONG__INIT;

	pong.seq = seq;
	env.body_case = EPSEC__ENVELOPE__BODY_PONG;
	env.pong = &pong;
	epsec_conn_send(c, &env);
}

/* The fd a message says it carries, kept for on_msg to take. One the
 * kernel dropped (we were out of fds) is said once and the message goes
 * on without it; one never sent is a broken peer. */
static int conn_claim_fd(struct epsec_conn *c, epsec_msg *m)
{
	int fd = tr_passes_fds(c->tr) ? c->tr->recv_fd(c->link) : -EAGAIN;

	if (fd >= 0) {
		c->rx_fd = fd;
		return 0;
	}
	if (fd != -ENOENT)
		return -EPROTO;
	if (!c->fds_lost_said)
		EPSEC_WARN("%s peer %s on %s: a passed file descriptor was lost (out of fds?); "
			   "the file is read through the link instead",
			   epsec_role_name(c->peer_role), c->peer, c->uri);
	c->fds_lost_said = true;
	m->event->local_fd = false;
	return 0;
}

static void conn_deliver(struct epsec_conn *c, epsec_msg *m)
{
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_PING:
		send_pong(c, m->ping->seq);
		epsec_msg_free(m);
		return;
	case EPSEC__ENVELOPE__BODY_PONG:
		epsec_msg_free(m);
		return;
	default:
		if (c->on_msg)
			c->on_msg(c, m, c->arg);
		else
			epsec_msg_free(m);
	}
}

static void conn_lost(struct epsec_conn *c, int r)
{
	if (r == -EMSGSIZE) {
		conn_hostile(c, r, "frame over the size limit");
	} else if (r == -EPROTO) {
		conn_hostile(c, r, "broken framing");
	} else {
		EPSEC_DBG("%s peer %s on %s: %s", epsec_role_name(c->peer_role), c->peer, c->uri,
			  strerror(-r));
		conn_fail(c, r);
	}
}

/* To -EAGAIN every time: a transport's fd may be edge-triggered (ZeroMQ),
 * and a stream transport may hold whole frames already read. */
static void conn_drain(struct epsec_conn *c)
{
	while (!c->closed) {
		epsec_msg *m;
		void *buf;
		size_t len;
		int r = c->tr->recv(c->link, &buf, &len);

		if (r == -EAGAIN)
			return;
		if (r < 0) {
			conn_lost(c, r);
			return;
		}
		c->last_rx_ms = epsec_now_ms();
		r = epsec_msg_decode(buf, len, c->peer_role, &m);
		free(buf);
		if (r < 0) {
			conn_hostile(c, r, epsec_msg_last_error());
			return;
		}
		if (epsec_msg_carries_fd(m) && conn_claim_fd(c, m) < 0) {
			epsec_msg_free(m);
			conn_hostile(c, -EPROTO, "EVENT says a file descriptor came with it; none did");
			return;
		}
		conn_deliver(c, m);
		if (c->rx_fd >= 0) {
			close(c->rx_fd);
			c->rx_fd = -1;
		}
	}
}

static void conn_io(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct epsec_conn *c = arg;

	conn_ref(c);
	if (events & EPSEC_LOOP_OUT) {
		int r = c->tr->flush(c->link);

		if (r < 0 && r != -EAGAIN)
			conn_lost(c, r);
		else if (r == 0 && c->want_drain) {
			c->want_drain = false;
			if (c->on_drain)
				c->on_drain(c, c->arg);
		}
	}
	if (!c->closed && (events & (EPSEC_LOOP_IN | EPSEC_LOOP_ERR)))
		conn_drain(c);
	if (!c->closed)
		conn_watch(c);
	conn_unref(c);
}

/* ------------------------------------------------------------ liveness */

static void send_ping(struct epsec_conn *c, uint64_t now)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Ping ping = EPSEC__PING__INIT;

	ping.seq = ++c->ping_seq;
	env.body_case = EPSEC__ENVELOPE__BODY_PING;
	env.ping = &ping;
	c->last_ping_ms = now;
	epsec_conn_send(c, &env);
}

/* Pings cannot close anything synchronously (send defers), so the walk
 * only collects the links to drop, each under a reference. */
static size_t tick_walk(struct link_loop *ll, uint64_t now, struct epsec_conn ***drop)
{
	unsigned ping = atomic_load(&ping_ms), dead = atomic_load(&dead_ms);
	struct epsec_conn *c, **d;
	size_t n = 0, cap = 0;

	for (c = ll->conns; c; c = c->next) {
		if (c->dead || now - c->last_rx_ms >= dead) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				d = realloc(*drop, cap * sizeof(*d));
				if (!d)
					break; /* the rest next tick */
				*drop = d;
			}
			conn_ref(c);
			(*drop)[n++] = c;
		} else if (now - c->last_rx_ms >= ping && now - c->last_ping_ms >= ping) {
			send_ping(c, now);
		}
	}
	return n;
}

/* Dropped after the walk: one on_close may close other links. */
static void liveness_tick(struct epsec_loop *loop, void *arg)
{
	struct link_loop *ll = arg;
	uint64_t now = epsec_now_ms();
	struct epsec_conn **drop = NULL;
	size_t n, i;

	ll->in_tick = true;
	n = tick_walk(ll, now, &drop);
	for (i = 0; i < n; i++) {
		struct epsec_conn *c = drop[i];

		if (!c->closed && !c->dead)
			EPSEC_DBG("%s peer %s on %s silent for %llu ms", epsec_role_name(c->peer_role),
				  c->peer, c->uri, (unsigned long long)(now - c->last_rx_ms));
		conn_fail(c, c->dead ? c->dead : -ETIMEDOUT);
		conn_unref(c);
	}
	free(drop);
	ll->in_tick = false;
	if (ll->conns && ll->period != tick_period()) {
		int t = epsec_loop_add_timer(loop, tick_period(), liveness_tick, ll);

		if (t > 0) {
			epsec_loop_del_timer(loop, ll->timer);
			ll->timer = t;
			ll->period = tick_period();
		}
	}
	ll_put(ll);
}

/* ------------------------------------------------------------ set-up */

static int conn_new(struct epsec_loop *loop, const struct epsec_transport_plugin *tr,
		    struct epsec_link *link, enum epsec_role role, const char *uri,
		    struct epsec_conn **out)
{
	struct epsec_conn *c = calloc(1, sizeof(*c));
	const char *peer = tr->peer(link);
	int r = -ENOMEM;

	if (!c || !(c->uri = strdup(uri)) || !(c->peer = strdup(peer ? peer : "?")))
		goto fail;
	c->loop = loop;
	c->tr = tr;
	c->link = link;
	c->peer_role = role;
	c->fd = tr->fd(link);
	c->events = EPSEC_LOOP_IN;
	c->refs = 1;
	c->rx_fd = -1;
	c->last_rx_ms = epsec_now_ms();
	c->ll = ll_get(loop);
	if (!c->ll)
		goto fail;
	r = epsec_loop_add_fd(loop, c->fd, EPSEC_LOOP_IN, conn_io, c);
	if (r < 0) {
		ll_put(c->ll);
		goto fail;
	}
	ll_add(c->ll, c);
	*out = c;
	return 0;
fail:
	if (c) {
		free(c->uri);
		free(c->peer);
	}
	free(c);
	tr->close(link);
	return r;
}

static int transport_of(const char *uri, const struct epsec_transport_plugin **tr,
			const char **address)
{
	char scheme[SCHEME_MAX];
	int r = epsec_uri_split(uri, scheme, sizeof(scheme), address);

	return r < 0 ? r : epsec_loader_transport(scheme, tr);
}

int epsec_connect(struct epsec_loop *loop, const char *uri, const config_setting_t *opts,
		  enum epsec_role peer_role, struct epsec_conn **out)
{
	const struct epsec_transport_plugin *tr;
	struct epsec_link *link;
	const char *address;
	int r = transport_of(uri, &tr, &address);

	if (r < 0)
		return r;
	r = tr->connect(epsec_host_get(), address, opts ? opts : epsec_topts_find(uri), &link);
	if (r < 0)
		return r;
	return conn_new(loop, tr, link, peer_role, uri, out);
}

void epsec_conn_set_handlers(struct epsec_conn *c, epsec_conn_msg_fn on_msg,
			     epsec_conn_close_fn on_close, void *arg)
{
	c->on_msg = on_msg;
	c->on_close = on_close;
	c->arg = arg;
}

const char *epsec_conn_peer(const struct epsec_conn *c)
{
	return c->peer;
}

const char *epsec_conn_uri(const struct epsec_conn *c)
{
	return c->uri;
}

void epsec_conn_set_data(struct epsec_conn *c, void *data)
{
	c->data = data;
}

void *epsec_conn_get_data(const struct epsec_conn *c)
{
	return c->data;
}

/* ------------------------------------------------------------ listeners */

static void listener_unref(struct epsec_listener *l)
{
	if (--l->refs)
		return;
	free(l->uri);
	free(l);
}

void epsec_listener_close(struct epsec_listener *l)
{
	if (!l || l->closed)
		return;
	l->closed = true;
	epsec_loop_del_fd(l->loop, l->fd);
	l->tr->close(l->link);
	listener_unref(l);
}

bool epsec_listener_passes_fds(const struct epsec_listener *l)
{
	return !l->closed && tr_passes_fds(l->tr);
}

/* One fd kept in reserve for when the process runs out (EMFILE). */
static atomic_int spare_fd = -1;

static void spare_reserve(void)
{
	int expected = -1, fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && !atomic_compare_exchange_strong(&spare_fd, &expected, fd))
		close(fd);
}

/* accept failing leaves the listener readable, and the loop would spin on
 * it. Out of fds, the spare one lets us take the peer and hang up on it at
 * once (the peer sees a closed connection, not a hang); the warning is
 * rate-limited to one a second. */
static bool listener_shed(struct epsec_listener *l, int err)
{
	struct epsec_link *link;
	uint64_t now = epsec_now_ms();
	bool shed = false;
	int fd;

	if (now - l->warned_ms >= 1000) {
		EPSEC_WARN("%s: accept: %s; refusing new connections", l->uri, strerror(-err));
		l->warned_ms = now;
	}
	if (err != -EMFILE && err != -ENFILE)
		return false;
	fd = atomic_exchange(&spare_fd, -1);
	if (fd >= 0)
		close(fd);
	if (l->tr->accept(l->link, &link) == 0) {
		l->tr->close(link);
		shed = true;
	}
	spare_reserve();
	return shed;
}

static void listener_accept_one(struct epsec_listener *l, struct epsec_link *link)
{
	struct epsec_conn *c;

	if (conn_new(l->loop, l->tr, link, l->peer_role, l->uri, &c) < 0) {
		EPSEC_WARN("%s: cannot take a new connection: out of resources", l->uri);
		return;
	}
	if (l->on_accept && l->on_accept(c, l->arg) < 0)
		epsec_conn_close(c);
}

static void listener_io(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct epsec_listener *l = arg;

	l->refs++;
	while (!l->closed) {
		struct epsec_link *link;
		int r = l->tr->accept(l->link, &link);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			if (listener_shed(l, r))
				continue;
			break;
		}
		listener_accept_one(l, link);
	}
	listener_unref(l);
}

int epsec_listen(struct epsec_loop *loop, const char *uri, const config_setting_t *opts,
		 enum epsec_role peer_role, epsec_conn_accept_fn on_accept, void *arg,
		 struct epsec_listener **out)
{
	const struct epsec_transport_plugin *tr;
	struct epsec_listener *l;
	const char *address;
	int r = transport_of(uri, &tr, &address);

	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l || !(l->uri = strdup(uri))) {
		free(l);
		return -ENOMEM;
	}
	r = tr->listen(epsec_host_get(), address, opts ? opts : epsec_topts_find(uri), &l->link);
	if (r < 0)
		goto fail;
	l->loop = loop;
	l->tr = tr;
	l->peer_role = peer_role;
	l->on_accept = on_accept;
	l->arg = arg;
	l->refs = 1;
	l->fd = tr->fd(l->link);
	spare_reserve();
	r = epsec_loop_add_fd(loop, l->fd, EPSEC_LOOP_IN, listener_io, l);
	if (r < 0) {
		tr->close(l->link);
		goto fail;
	}
	*out = l;
	return 0;
fail:
	free(l->uri);
	free(l);
	return r;
}
