/* SPDX-License-Identifier: MIT */
/* tcp:// transport over ZeroMQ: the mux binds a ROUTER, SVAs connect DEALERs,
 * so SVAs on any host come and go without the mux knowing them in advance.
 * A ROUTER carries every peer on one socket; this file splits it into one
 * virtual link per peer, so the host sees the same accept/recv model as on
 * unix://. All ZeroMQ use for links lives here; CURVE keys and the ZAP
 * handler that checks them are in curve.c. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <epsec/transport.h>
#include "curve.h"

#define PUMP_BUDGET 1024          /* ROUTER messages per accept() before yielding */
#define TOMB_TTL_MS 10000         /* how long a dropped peer's messages are ignored */
#define CONNECT_TIMEOUT_MS 3000
#define ROUTING_ID_MAX 255
#define HANDSHAKE_FAILED (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | \
			  ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
#define MON_EVENTS (ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED | HANDSHAKE_FAILED)
/* A key refused by the ZAP handler is logged there, with the key. */
#define ROUTER_EVENTS (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

enum link_kind { K_ROUTER, K_PEER, K_DEALER };
enum peer_state { P_PENDING, P_OPEN, P_TOMB };

struct qmsg {
	struct qmsg *next;
	size_t len;
	void *data;
};

struct router;

struct epsec_link {
	enum link_kind kind;
	int fd;                     /* what the host polls */
	char peer[320];
	const struct epsec_host *host;
	struct router *r;           /* K_ROUTER, K_PEER */
	/* K_PEER: one remote DEALER on the ROUTER, fd is an eventfd that is
	 * readable while messages are queued or the peer is dead */
	enum peer_state state;
	struct epsec_link *hnext, *pnext;
	uint8_t id[ROUTING_ID_MAX];
	size_t idlen;
	struct qmsg *qhead, **qtail;
	int err;                    /* sticky recv error once dead */
	uint64_t seen_ms;
	/* K_DEALER: fd is an epoll set of the socket, its monitor and `wake` */
	void *sock, *mon;
	int wake;
	bool dead;
};

/* The ROUTER shared by the listener and its virtual links; freed when the
 * listener and every open virtual link are closed. */
struct router {
	void *sock;
	int epfd, wake;
	struct epsec_link **table;
	size_t nbuckets, n;
	struct epsec_link *pending, **pending_tail;
	unsigned refs;
	bool closed;
	uint64_t last_sweep;
	/* CURVE: the ZAP domain of our allowed keys, and a monitor that tells
	 * of clients failing the handshake (no key, wrong server key) */
	char domain[32];
	void *mon;
	char ep[300];
	struct curve_ratelimit rl;
};

static void *zctx;
static pthread_once_t zctx_once = PTHREAD_ONCE_INIT;
static atomic_ulong monitor_seq;

/* One context per process, whoever connects first; never terminated
 * (zmq_ctx_term would block on any socket a host forgot to close). */
static void zctx_init(void)
{
	zctx = zmq_ctx_new();
	if (zctx)
		zmq_ctx_set(zctx, ZMQ_BLOCKY, 0);
}

static void *context(void)
{
	pthread_once(&zctx_once, zctx_init);
	return zctx;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, which is all we need */
	}
}

static void reset_fd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: not signalled */
	}
}

static int zevents(void *sock)
{
	int ev = 0;
	size_t sz = sizeof(ev);

	if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) < 0)
		return 0;
	return ev;
}

/* ZMQ_FD is edge-triggered and any call on the socket may swallow the edge
 * of a message that arrived meanwhile: after a send, ask the socket itself
 * and keep our own eventfd readable if something waits. */
static void rearm(void *sock, int wake)
{
	if (zevents(sock) & ZMQ_POLLIN)
		signal_fd(wake);
}

static int set_int(void *sock, int opt, int v)
{
	return zmq_setsockopt(sock, opt, &v, sizeof(v));
}

/* A peer that does not complete ZMTP's handshake (and CURVE's) in this
 * long is dropped: ZeroMQ's default, 30 s, let a peer sending garbage
 * hold a connection. A real one, even across a slow link, takes far
 * less. */
#define HANDSHAKE_MS 5000

static int common_opts(void *sock)
{
	int64_t max = EPSEC_FRAME_MAX;

	/* ZeroMQ's heartbeats only speed up finding a dead TCP peer; link.c's
	 * PING/PONG is what the host relies on. */
	if (set_int(sock, ZMQ_LINGER, 0) < 0 ||
	    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) < 0 ||
	    set_int(sock, ZMQ_HEARTBEAT_IVL, 1000) < 0 ||
	    set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, 3000) < 0 ||
	    set_int(sock, ZMQ_HEARTBEAT_TTL, 3000) < 0 ||
	    set_int(sock, ZMQ_HANDSHAKE_IVL, HANDSHAKE_MS) < 0)
		return -errno;
	return 0;
}

static int endpoint(char *buf, size_t len, const char *address)
{
	if (!*address || !strchr(address, ':'))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "tcp://%s", address) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* An epoll set polled as one fd by the host's loop. */
static int poll_set(const int *fds, int n)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), i, r;

	if (ep < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			r = -errno;
			close(ep);
			return r;
		}
	}
	return ep;
}

static int zmq_fd_of(void *sock)
{
	int fd = -1;
	size_t sz = sizeof(fd);

	zmq_getsockopt(sock, ZMQ_FD, &fd, &sz);
	return fd;
}

/* Skip the remaining parts of a multi-part message. */
static void skip_parts(void *sock, zmq_msg_t *m)
{
	while (zmq_msg_more(m) && zmq_msg_recv(m, sock, ZMQ_DONTWAIT) >= 0)
		;
}

/* One whole single-part message into a malloc'd buffer; our peers never
 * send more parts, so one that does is broken or hostile (-EPROTO). */
static int take_msg(void *sock, void **msg, size_t *len)
{
	zmq_msg_t m;
	void *copy;
	size_t n;

	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
		int e = errno;

		zmq_msg_close(&m);
		return e == EAGAIN ? -EAGAIN : -e;
	}
	if (zmq_msg_more(&m)) {
		skip_parts(sock, &m);
		zmq_msg_close(&m);
		return -EPROTO;
	}
	n = zmq_msg_size(&m);
	copy = malloc(n ? n : 1);
	if (copy)
		memcpy(copy, zmq_msg_data(&m), n);
	zmq_msg_close(&m);
	if (!copy)
		return -ENOMEM;
	*msg = copy;
	*len = n;
	return 0;
}

/* Next monitor event (and its value, when asked), or 0 when none is
 * waiting. */
static int monitor_read(void *mon, uint32_t *value)
{
	zmq_msg_t m;
	uint16_t ev = 0;
	uint32_t v = 0;

	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return 0;
	}
	if (zmq_msg_size(&m) >= sizeof(ev) + sizeof(v)) {
		memcpy(&ev, zmq_msg_data(&m), sizeof(ev));
		memcpy(&v, (uint8_t *)zmq_msg_data(&m) + sizeof(ev), sizeof(v));
	}
	skip_parts(mon, &m);
	zmq_msg_close(&m);
	if (value)
		*value = v;
	return ev ? ev : ZMQ_EVENT_MONITOR_STOPPED;
}

static int monitor_start(void *sock, int events, void **mon)
{
	char ep[64];

	snprintf(ep, sizeof(ep), "inproc://epsec-tcp-monitor-%lu",
		 atomic_fetch_add(&monitor_seq, 1));
	if (zmq_socket_monitor(sock, ep, events) < 0)
		return -errno;
	*mon = zmq_socket(context(), ZMQ_PAIR);
	if (!*mon || set_int(*mon, ZMQ_LINGER, 0) < 0 || zmq_connect(*mon, ep) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ ROUTER peers */

static size_t id_hash(const uint8_t *id, size_t len, size_t nbuckets)
{
	uint32_t h = 2166136261u;

	while (len--)
		h = (h ^ *id++) * 16777619u;
	return h & (nbuckets - 1);
}

static struct epsec_link *peer_find(struct router *r, const uint8_t *id, size_t len)
{
	struct epsec_link *p = r->table[id_hash(id, len, r->nbuckets)];

	while (p && (p->idlen != len || memcmp(p->id, id, len)))
		p = p->hnext;
	return p;
}

static void table_grow(struct router *r)
{
	size_t nb = r->nbuckets * 2, i;
	struct epsec_link **t = calloc(nb, sizeof(*t)), *p, *next;

	if (!t)
		return; /* longer chains, still correct */
	for (i = 0; i < r->nbuckets; i++)
		for (p = r->table[i]; p; p = next) {
			size_t h = id_hash(p->id, p->idlen, nb);

			next = p->hnext;
			p->hnext = t[h];
			t[h] = p;
		}
	free(r->table);
	r->table = t;
	r->nbuckets = nb;
}

static void table_remove(struct router *r, struct epsec_link *p)
{
	struct epsec_link **pp = &r->table[id_hash(p->id, p->idlen, r->nbuckets)];

	while (*pp && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = p->hnext;
		r->n--;
	}
}

static void queue_free(struct epsec_link *p)
{
	struct qmsg *q, *next;

	for (q = p->qhead; q; q = next) {
		next = q->next;
		free(q->data);
		free(q);
	}
	p->qhead = NULL;
	p->qtail = &p->qhead;
}

static void peer_free(struct epsec_link *p)
{
	queue_free(p);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

static void peer_fail(struct epsec_link *p, int err)
{
	if (!p->err) {
		p->err = err;
		signal_fd(p->fd);
	}
}

/* "tcp://IP:PORT" of the connection a message came in on. ZMQ_SRCFD is the
 * only way to the port; Peer-Address alone has just the IP. */
static void peer_name(struct epsec_link *p, zmq_msg_t *m)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "";
	const char *pa = zmq_msg_gets(m, "Peer-Address");
	int fd = zmq_msg_get(m, ZMQ_SRCFD);

	if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
			snprintf(p->peer, sizeof(p->peer), "tcp://%s:%u", ip, ntohs(in->sin_port));
			return;
		}
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
			snprintf(p->peer, sizeof(p->peer), "tcp://[%s]:%u", ip,
				 ntohs(in6->sin6_port));
			return;
		}
	}
	snprintf(p->peer, sizeof(p->peer), "tcp://%s", pa ? pa : "unknown");
}

/* The allowed key a CURVE peer proved it holds (the ZAP handler's user id),
 * appended to its name: "tcp://10.0.0.7:40112 key=agent7". */
static void peer_key(struct epsec_link *p, zmq_msg_t *m)
{
	const char *user = zmq_msg_gets(m, "User-Id");
	size_t n = strlen(p->peer);

	if (user && *user)
		snprintf(p->peer + n, sizeof(p->peer) - n, " key=%s", user);
}

static struct epsec_link *peer_new(struct router *r, zmq_msg_t *id, zmq_msg_t *body,
				   const struct epsec_host *host)
{
	struct epsec_link *p = calloc(1, sizeof(*p));
	size_t h;

	if (!p)
		return NULL;
	p->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->fd < 0) {
		free(p);
		return NULL;
	}
	p->kind = K_PEER;
	p->host = host;
	p->r = r;
	p->state = P_PENDING;
	p->idlen = zmq_msg_size(id);
	memcpy(p->id, zmq_msg_data(id), p->idlen);
	p->qtail = &p->qhead;
	peer_name(p, body);
	if (r->domain[0])
		peer_key(p, body);
	if (r->n >= r->nbuckets * 2)
		table_grow(r);
	h = id_hash(p->id, p->idlen, r->nbuckets);
	p->hnext = r->table[h];
	r->table[h] = p;
	r->n++;
	*r->pending_tail = p;
	r->pending_tail = &p->pnext;
	return p;
}

static void enqueue(struct epsec_link *p, zmq_msg_t *body)
{
	struct qmsg *q = malloc(sizeof(*q));
	size_t len = zmq_msg_size(body);

	if (!q || !(q->data = malloc(len ? len : 1))) {
		free(q);
		peer_fail(p, -ENOMEM);
		return;
	}
	memcpy(q->data, zmq_msg_data(body), len);
	q->len = len;
	q->next = NULL;
	if (!p->qhead)
		signal_fd(p->fd);
	*p->qtail = q;
	p->qtail = &q->next;
}

/* Route one ROUTER message (routing id + body) to its peer's queue. */
static void deliver(struct router *r, zmq_msg_t *id, const struct epsec_host *host)
{
	zmq_msg_t body, extra;
	bool more;
	struct epsec_link *p;

	zmq_msg_init(&body);
	if (!zmq_msg_more(id) || zmq_msg_recv(&body, r->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&body);
		return;
	}
	more = zmq_msg_more(&body);
	if (more) {
		zmq_msg_init(&extra);
		do
			if (zmq_msg_recv(&extra, r->sock, ZMQ_DONTWAIT) < 0)
				break;
		while (zmq_msg_more(&extra));
		zmq_msg_close(&extra);
	}
	p = peer_find(r, zmq_msg_data(id), zmq_msg_size(id));
	if (!p && zmq_msg_size(id) <= ROUTING_ID_MAX)
		p = peer_new(r, id, &body, host);
	if (!p)
		; /* out of memory: the message is lost, the peer will time out */
	else if (p->state == P_TOMB)
		p->seen_ms = now_ms();
	else if (more)
		peer_fail(p, -EPROTO); /* our peers send single-part messages */
	else if (!p->err)
		enqueue(p, &body);
	zmq_msg_close(&body);
}

/* Drain the ROUTER into the peer queues: 0 drained to EAGAIN, 1 budget
 * spent (the caller keeps the fd readable), negative errno. */
static int router_pump(struct router *r, const struct epsec_host *host)
{
	int i;

	for (i = 0; i < PUMP_BUDGET; i++) {
		zmq_msg_t id;

		zmq_msg_init(&id);
		if (zmq_msg_recv(&id, r->sock, ZMQ_DONTWAIT) < 0) {
			int e = errno;

			zmq_msg_close(&id);
			if (e == EINTR)
				continue;
			return e == EAGAIN ? 0 : -e;
		}
		deliver(r, &id, host);
		zmq_msg_close(&id);
	}
	return 1;
}

/* Forget dropped peers that stayed silent for TOMB_TTL_MS. */
static void sweep_tombs(struct router *r)
{
	uint64_t now = now_ms();
	size_t i;

	if (now - r->last_sweep < 1000)
		return;
	r->last_sweep = now;
	for (i = 0; i < r->nbuckets; i++) {
		struct epsec_link **pp = &r->table[i], *p;

		while ((p = *pp)) {
			if (p->state == P_TOMB && now - p->seen_ms > TOMB_TTL_MS) {
				*pp = p->hnext;
				r->n--;
				peer_free(p);
			} else {
				pp = &p->hnext;
			}
		}
	}
}

static void router_unref(struct router *r)
{
	size_t i;

	if (--r->refs)
		return;
	for (i = 0; i < r->nbuckets; i++)
		while (r->table[i]) {
			struct epsec_link *p = r->table[i];

			r->table[i] = p->hnext;
			peer_free(p);
		}
	free(r->table);
	free(r);
}

/* CURVE server: the ZAP handler must know our domain before we bind, or
 * a fast client could be let in unchecked. */
static int router_curve(struct router *r, const struct epsec_host *host,
			struct curve_server *cs)
{
	int e = curve_zap_add(context(), host, r->ep, &cs->allowed, r->domain);

	if (e)
		return e;
	if (set_int(r->sock, ZMQ_CURVE_SERVER, 1) < 0 ||
	    zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, cs->secret, CURVE_Z85) < 0 ||
	    zmq_setsockopt(r->sock, ZMQ_ZAP_DOMAIN, r->domain, strlen(r->domain)) < 0)
		return -errno;
	return monitor_start(r->sock, ROUTER_EVENTS, &r->mon);
}

static int router_open(struct router *r, const struct epsec_host *host,
		       struct curve_server *cs)
{
	int fds[3], n = 2, e;

	r->sock = zmq_socket(context(), ZMQ_ROUTER);
	if (!r->sock)
		return -errno;
	if (set_int(r->sock, ZMQ_ROUTER_MANDATORY, 1) < 0 || common_opts(r->sock) < 0)
		return -errno;
	if (cs->on && (e = router_curve(r, host, cs)))
		return e;
	if (zmq_bind(r->sock, r->ep) < 0)
		return -errno;
	r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->wake < 0)
		return -errno;
	fds[0] = zmq_fd_of(r->sock);
	fds[1] = r->wake;
	if (r->mon)
		fds[n++] = zmq_fd_of(r->mon);
	r->epfd = poll_set(fds, n);
	return r->epfd < 0 ? r->epfd : 0;
}

static void router_close_sockets(struct router *r)
{
	if (r->sock && r->mon)
		zmq_socket_monitor(r->sock, NULL, 0);
	if (r->mon)
		zmq_close(r->mon);
	if (r->sock)
		zmq_close(r->sock);
	if (r->wake >= 0)
		close(r->wake);
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->domain[0])
		curve_zap_remove(r->domain);
	r->sock = r->mon = NULL;
	r->wake = r->epfd = -1;
	r->domain[0] = '\0';
}

static struct router *router_new(const char *ep)
{
	struct router *r = calloc(1, sizeof(*r));

	if (!r || !(r->table = calloc(64, sizeof(*r->table)))) {
		free(r);
		return NULL;
	}
	r->nbuckets = 64;
	r->refs = 1;
	r->wake = r->epfd = -1;
	r->pending_tail = &r->pending;
	snprintf(r->ep, sizeof(r->ep), "%s", ep);
	return r;
}

static int tcp_listen(const struct epsec_host *host, const char *address,
		      const config_setting_t *opts, struct epsec_link **out)
{
	struct curve_server cs;
	char ep[300];
	struct epsec_link *l;
	struct router *r;
	int e;

	if ((e = endpoint(ep, sizeof(ep), address)) || (e = curve_server_opts(host, opts, &cs)))
		return e;
	l = context() ? calloc(1, sizeof(*l)) : NULL;
	r = l ? router_new(ep) : NULL;
	if (!r) {
		free(l);
		curve_server_free(&cs);
		return -ENOMEM;
	}
	e = router_open(r, host, &cs);
	curve_server_free(&cs);
	if (e) {
		router_close_sockets(r);
		router_unref(r);
		free(l);
		return e;
	}
	l->kind = K_ROUTER;
	l->host = host;
	l->r = r;
	l->fd = r->epfd;
	snprintf(l->peer, sizeof(l->peer), "listening on %s", ep);
	*out = l;
	return 0;
}

static const char *handshake_why(int ev, uint32_t value)
{
	if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
	    value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
		return "it does not speak CURVE (no curve_key configured?)";
	if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
	    (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ||
	     value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE))
		return "its handshake does not decrypt (wrong curve_server_key?)";
	if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
		return "the handshake broke off (a client without CURVE, or with other keys?)";
	return "protocol error";
}

/* Clients that failed the CURVE handshake never become peers: this is the
 * only place they are seen. */
static void router_events(struct router *r, const struct epsec_host *host)
{
	char more[64];
	uint32_t value;
	int ev;

	while ((ev = monitor_read(r->mon, &value)))
		if ((ev & ROUTER_EVENTS) && curve_log_pass(&r->rl, more, sizeof(more)))
			host->log(EPSEC_LOG_WARNING, "tcp", "refused a client on %s: %s (%s 0x%x)%s",
				  r->ep, handshake_why(ev, value),
				  ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ? "errno" : "code",
				  value, more);
}

static int router_accept(struct epsec_link *l, struct epsec_link **out)
{
	struct router *r = l->r;
	struct epsec_link *p;

	if (r->mon)
		router_events(r, l->host);
	if (!r->pending) {
		int e;

		reset_fd(r->wake);
		e = router_pump(r, l->host);
		if (e > 0)
			signal_fd(r->wake);
		sweep_tombs(r);
		if (e < 0)
			return e;
	}
	p = r->pending;
	if (!p)
		return -EAGAIN;
	r->pending = p->pnext;
	if (!r->pending)
		r->pending_tail = &r->pending;
	p->pnext = NULL;
	p->state = P_OPEN;
	r->refs++;
	*out = p;
	return 0;
}

/* The ROUTER is one socket: closing the listener ends every peer on it. */
static void router_close(struct epsec_link *l)
{
	struct router *r = l->r;
	size_t i;

	router_close_sockets(r);
	r->closed = true;
	for (i = 0; i < r->nbuckets; i++) {
		struct epsec_link **pp = &r->table[i], *p;

		while ((p = *pp)) {
			if (p->state == P_OPEN) {
				peer_fail(p, -ECONNRESET);
				pp = &p->hnext;
			} else {
				*pp = p->hnext;
				r->n--;
				peer_free(p);
			}
		}
	}
	r->pending = NULL;
	r->pending_tail = &r->pending;
	router_unref(r);
	free(l);
}

static int peer_send(struct epsec_link *p, const void *msg, size_t len)
{
	struct router *r = p->r;

	if (r->closed)
		return -ECONNRESET;
	if (len > EPSEC_FRAME_MAX)
		return -EMSGSIZE;
	if (zmq_send(r->sock, p->id, p->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		int e = errno;

		if (e == EAGAIN)
			return -ENOBUFS;
		if (e != EHOSTUNREACH)
			return -e;
		peer_fail(p, -ECONNRESET);
		return -ECONNRESET;
	}
	if (zmq_send(r->sock, msg, len, ZMQ_DONTWAIT) < 0)
		return -errno;
	rearm(r->sock, r->wake);
	return 0;
}

static int peer_recv(struct epsec_link *p, void **msg, size_t *len)
{
	struct qmsg *q = p->qhead;

	if (!q) {
		if (p->err)
			return p->err;
		reset_fd(p->fd);
		return -EAGAIN;
	}
	p->qhead = q->next;
	if (!p->qhead) {
		p->qtail = &p->qhead;
		if (!p->err)
			reset_fd(p->fd);
	}
	*msg = q->data;
	*len = q->len;
	free(q);
	return 0;
}

/* A dropped peer stays in the table as a tombstone: ZeroMQ cannot hang up
 * on one ROUTER peer, so what it still sends must not come back as a new
 * peer. */
static void peer_close(struct epsec_link *p)
{
	struct router *r = p->r;

	queue_free(p);
	if (r->closed) {
		table_remove(r, p);
		peer_free(p);
	} else {
		close(p->fd);
		p->fd = -1;
		p->state = P_TOMB;
		p->seen_ms = now_ms();
	}
	router_unref(r);
}

/* ------------------------------------------------------------------ DEALER */

static int monitor_event(void *mon)
{
	return monitor_read(mon, NULL);
}

/* A server that refused our key says so (-EACCES); any other failed
 * handshake, such as a wrong server key, is -EPROTO. */
static int monitor_error(int ev)
{
	if (ev == ZMQ_EVENT_CONNECT_RETRIED)
		return -ECONNREFUSED;
	if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		return -EACCES;
	if (ev & HANDSHAKE_FAILED)
		return -EPROTO;
	if (ev & (ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_MONITOR_STOPPED))
		return -ECONNRESET;
	return 0;
}

/* Connect is synchronous like on unix://: wait until the DEALER can send
 * (ZMQ_IMMEDIATE: only once the handshake is done) or the monitor reports
 * a refusal, so the caller learns at once whether the mux is there. */
static int dealer_wait(struct epsec_link *l)
{
	uint64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;

	for (;;) {
		zmq_pollitem_t it[2] = { { l->sock, 0, ZMQ_POLLOUT, 0 }, { l->mon, 0, ZMQ_POLLIN, 0 } };
		uint64_t now = now_ms();
		int ev;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (zmq_poll(it, 2, (long)(deadline - now)) < 0 && errno != EINTR)
			return -errno;
		if (it[0].revents & ZMQ_POLLOUT)
			return 0;
		while ((ev = monitor_event(l->mon)))
			if (monitor_error(ev))
				return monitor_error(ev);
	}
}

static int dealer_curve(void *sock, const struct curve_client *cc)
{
	if (!cc->on)
		return 0;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, cc->server, CURVE_Z85) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, cc->public, CURVE_Z85) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, cc->secret, CURVE_Z85) < 0)
		return -errno;
	return 0;
}

static int dealer_open(struct epsec_link *l, const char *ep, const struct curve_client *cc)
{
	int fds[3], e;

	l->sock = zmq_socket(context(), ZMQ_DEALER);
	if (!l->sock)
		return -errno;
	if (common_opts(l->sock) < 0 || set_int(l->sock, ZMQ_IMMEDIATE, 1) < 0)
		return -errno;
	if ((e = dealer_curve(l->sock, cc)) || (e = monitor_start(l->sock, MON_EVENTS, &l->mon)))
		return e;
	if (zmq_connect(l->sock, ep) < 0)
		return -errno;
	l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake < 0)
		return -errno;
	fds[0] = zmq_fd_of(l->sock);
	fds[1] = zmq_fd_of(l->mon);
	fds[2] = l->wake;
	l->fd = poll_set(fds, 3);
	return l->fd < 0 ? l->fd : dealer_wait(l);
}

static void dealer_close(struct epsec_link *l)
{
	if (l->sock)
		zmq_socket_monitor(l->sock, NULL, 0);
	if (l->mon)
		zmq_close(l->mon);
	if (l->sock)
		zmq_close(l->sock);
	if (l->wake >= 0)
		close(l->wake);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static int tcp_connect(const struct epsec_host *host, const char *address,
		       const config_setting_t *opts, struct epsec_link **out)
{
	struct curve_client cc;
	char ep[300];
	struct epsec_link *l;
	int e;

	if ((e = endpoint(ep, sizeof(ep), address)) || (e = curve_client_opts(host, opts, &cc)))
		return e;
	l = context() ? calloc(1, sizeof(*l)) : NULL;
	if (!l) {
		curve_client_free(&cc);
		return -ENOMEM;
	}
	l->kind = K_DEALER;
	l->host = host;
	l->fd = l->wake = -1;
	snprintf(l->peer, sizeof(l->peer), "%s", ep);
	e = dealer_open(l, ep, &cc);
	curve_client_free(&cc);
	if (e) {
		dealer_close(l);
		return e;
	}
	*out = l;
	return 0;
}

static int dealer_send(struct epsec_link *l, const void *msg, size_t len)
{
	if (l->dead)
		return -ECONNRESET;
	if (len > EPSEC_FRAME_MAX)
		return -EMSGSIZE;
	if (zmq_send(l->sock, msg, len, ZMQ_DONTWAIT) < 0)
		return errno == EAGAIN ? -ENOBUFS : -errno;
	rearm(l->sock, l->wake);
	return 0;
}

/* Messages first (an ERROR sent just before the mux hung up is still read),
 * then what the monitor says about the connection. */
static int dealer_recv(struct epsec_link *l, void **msg, size_t *len)
{
	int r, ev;

	if (!l->dead) {
		r = take_msg(l->sock, msg, len);
		if (r != -EAGAIN)
			return r;
	}
	while ((ev = monitor_event(l->mon)))
		if (monitor_error(ev))
			l->dead = true;
	if (l->dead)
		return -ECONNRESET;
	reset_fd(l->wake);
	return -EAGAIN;
}

/* ------------------------------------------------------------- dispatch */

static int tcp_accept(struct epsec_link *l, struct epsec_link **out)
{
	return l->kind == K_ROUTER ? router_accept(l, out) : -EINVAL;
}

static int tcp_send(struct epsec_link *l, const void *msg, size_t len)
{
	if (l->kind == K_PEER)
		return peer_send(l, msg, len);
	return l->kind == K_DEALER ? dealer_send(l, msg, len) : -EINVAL;
}

static int tcp_flush(struct epsec_link *l)
{
	return 0; /* ZeroMQ queues whole messages itself */
}

static bool tcp_want_write(struct epsec_link *l)
{
	return false;
}

static int tcp_recv(struct epsec_link *l, void **msg, size_t *len)
{
	if (l->kind == K_PEER)
		return peer_recv(l, msg, len);
	return l->kind == K_DEALER ? dealer_recv(l, msg, len) : -EINVAL;
}

static int tcp_fd(struct epsec_link *l)
{
	return l->fd;
}

static const char *tcp_peer(struct epsec_link *l)
{
	return l->peer;
}

static void tcp_close(struct epsec_link *l)
{
	if (!l)
		return;
	if (l->kind == K_ROUTER)
		router_close(l);
	else if (l->kind == K_PEER)
		peer_close(l);
	else
		dealer_close(l);
}

const struct epsec_transport_plugin epsec_transport_plugin = {
	.abi_major = EPSEC_TRANSPORT_ABI_MAJOR,
	.abi_minor = EPSEC_TRANSPORT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_transport_plugin),
	.scheme = "tcp",
	.description = "TCP over ZeroMQ (ROUTER listens, DEALER connects)",
	.listen = tcp_listen,
	.connect = tcp_connect,
	.accept = tcp_accept,
	.send = tcp_send,
	.flush = tcp_flush,
	.want_write = tcp_want_write,
	.recv = tcp_recv,
	.fd = tcp_fd,
	.peer = tcp_peer,
	.close = tcp_close,
};
