/* SPDX-License-Identifier: MIT */
/* Links over real transports: unix:// sockets and tcp://127.0.0.1 through
 * ZeroMQ, driven by link.c and the event loop, with the plugins loaded from
 * the build tree. Hostile peers are raw sockets (or a raw ZeroMQ DEALER). */
#include "config.h"
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>
#include <libconfig.h>
#include <zmq.h>
#include <epsec/transport.h>

#include "frame.h"
#include "loader.h"
#include "log.h"
#include "loop.h"

#define MAXPEERS 8
#define BIG (3u * 1024u * 1024u)

struct t;

struct peer {
	struct t *t;
	struct epsec_conn *c;
	int msgs, closed, reason;
	int hellos, welcomes, events, verdicts, errors;
	uint32_t error_code;
	uint64_t last_req;
	int order_errors;
	size_t big_len;
	bool big_ok;
};

struct t {
	bool tcp;
	char dir[64];
	char path[96];
	char uri[160];
	int port;
	struct epsec_loop *loop;
	struct epsec_listener *l;
	struct peer srv[MAXPEERS];
	int nsrv;
	bool welcome;               /* server answers HELLO with WELCOME */
	bool close_all_on_hello;    /* server closes every conn on a HELLO */
	void *zctx;
	void *zsocks[4];            /* raw ZeroMQ peers, closed by teardown */
	int nzsocks;
};

/* ------------------------------------------------------------ log capture */

static char last_warn[2048];
static int warn_count;

static int capture_log(int level, const char *src, const char *line)
{
	if (level <= EPSEC_LOG_WARNING && src && !strcmp(src, "link")) {
		snprintf(last_warn, sizeof(last_warn), "%s", line);
		warn_count++;
	}
	fprintf(stderr, "[%s] %s\n", src ? src : "-", line);
	return 0;
}

/* ------------------------------------------------------------ the loop */

static void stop_cb(struct epsec_loop *loop, void *arg)
{
	epsec_loop_stop(loop);
}

static void run_for(struct t *t, unsigned ms)
{
	int id = epsec_loop_add_timer(t->loop, ms, stop_cb, NULL);

	assert_true(id > 0);
	epsec_loop_run(t->loop);
	epsec_loop_del_timer(t->loop, id);
}

/* `cond` is evaluated once per turn (it may consume what it tests). */
#define WAIT_FOR(t, cond, ms)                                                                \
	({                                                                                   \
		uint64_t deadline_ = epsec_now_ms() + (ms);                                  \
		bool ok_;                                                                    \
		while (!(ok_ = (cond)) && epsec_now_ms() < deadline_)                        \
			run_for((t), 2);                                                     \
		ok_;                                                                         \
	})

/* ------------------------------------------------------------ messages */

static uint8_t big_pattern(size_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

static void record(struct peer *p, epsec_msg *m)
{
	p->msgs++;
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_HELLO:
		p->hellos++;
		break;
	case EPSEC__ENVELOPE__BODY_WELCOME:
		p->welcomes++;
		break;
	case EPSEC__ENVELOPE__BODY_EVENT:
	case EPSEC__ENVELOPE__BODY_VERDICT: {
		uint64_t id = m->body_case == EPSEC__ENVELOPE__BODY_EVENT ? m->event->req_id
									   : m->verdict->req_id;

		if (m->body_case == EPSEC__ENVELOPE__BODY_EVENT)
			p->events++;
		else
			p->verdicts++;
		if (id != p->last_req + 1)
			p->order_errors++;
		p->last_req = id;
		if (m->body_case == EPSEC__ENVELOPE__BODY_EVENT && m->event->has_inline_data) {
			size_t i, n = m->event->inline_data.len;

			p->big_len = n;
			p->big_ok = true;
			for (i = 0; i < n; i++)
				if (m->event->inline_data.data[i] != big_pattern(i))
					p->big_ok = false;
		}
		break;
	}
	case EPSEC__ENVELOPE__BODY_ERROR:
		p->errors++;
		p->error_code = m->error->code;
		break;
	case EPSEC__ENVELOPE__BODY_PING:
	case EPSEC__ENVELOPE__BODY_PONG:
		fail_msg("link.c passed a %s up", epsec_msg_name(m->body_case));
		break;
	default:
		break;
	}
}

static int send_retry(struct t *t, struct epsec_conn *c, const epsec_msg *m)
{
	int r, tries = 0;

	while ((r = epsec_conn_send(c, m)) == -ENOBUFS && tries++ < 2000)
		run_for(t, 1);
	return r;
}

static void send_hello(struct t *t, struct epsec_conn *c)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;

	h.version_min = h.version_max = 1;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	h.id = "test-agent";
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	assert_int_equal(send_retry(t, c, &env), 0);
}

static void send_welcome(struct t *t, struct epsec_conn *c)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Welcome w = EPSEC__WELCOME__INIT;

	w.version = 1;
	w.id = "test-mux";
	env.body_case = EPSEC__ENVELOPE__BODY_WELCOME;
	env.welcome = &w;
	assert_int_equal(send_retry(t, c, &env), 0);
}

static void send_event(struct t *t, struct epsec_conn *c, uint64_t req, size_t inline_len)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Event e = EPSEC__EVENT__INIT;
	uint8_t *data = NULL;
	size_t i;

	e.req_id = req;
	e.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	e.path = "/srv/data/x";
	if (inline_len) {
		data = malloc(inline_len);
		assert_non_null(data);
		for (i = 0; i < inline_len; i++)
			data[i] = big_pattern(i);
		e.has_inline_data = 1;
		e.inline_data.data = data;
		e.inline_data.len = inline_len;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &e;
	assert_int_equal(send_retry(t, c, &env), 0);
	free(data);
}

static void send_verdict(struct t *t, struct epsec_conn *c, uint64_t req)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;

	v.req_id = req;
	v.action = EPSEC__ACTION__ACTION_ALLOW;
	env.body_case = EPSEC__ENVELOPE__BODY_VERDICT;
	env.verdict = &v;
	assert_int_equal(send_retry(t, c, &env), 0);
}

/* ------------------------------------------------------------ both ends */

static void peer_closed(struct epsec_conn *c, int reason, void *arg)
{
	struct peer *p = arg;

	assert_ptr_equal(p->c, c);
	p->closed++;
	p->reason = reason;
	p->c = NULL;
}

static void srv_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct peer *p = arg;
	struct t *t = p->t;
	int i;

	record(p, m);
	if (m->body_case == EPSEC__ENVELOPE__BODY_HELLO && t->close_all_on_hello) {
		/* closes itself and others from inside its own callback */
		for (i = 0; i < t->nsrv; i++)
			if (t->srv[i].c) {
				struct epsec_conn *other = t->srv[i].c;

				t->srv[i].c = NULL;
				epsec_conn_close(other);
			}
	} else if (m->body_case == EPSEC__ENVELOPE__BODY_HELLO && t->welcome) {
		send_welcome(t, c);
	}
	epsec_msg_free(m);
}

static void cli_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	record(arg, m);
	epsec_msg_free(m);
}

static int on_accept(struct epsec_conn *c, void *arg)
{
	struct t *t = arg;
	struct peer *p;

	if (t->nsrv == MAXPEERS)
		return -EMFILE;
	p = &t->srv[t->nsrv++];
	p->t = t;
	p->c = c;
	epsec_conn_set_handlers(c, srv_msg, peer_closed, p);
	return 0;
}

static void do_listen(struct t *t)
{
	assert_int_equal(epsec_listen(t->loop, t->uri, NULL, EPSEC_ROLE_AGENT, on_accept, t, &t->l),
			 0);
}

static void do_connect(struct t *t, struct peer *p)
{
	memset(p, 0, sizeof(*p));
	p->t = t;
	assert_int_equal(epsec_connect(t->loop, t->uri, NULL, EPSEC_ROLE_MUX, &p->c), 0);
	epsec_conn_set_handlers(p->c, cli_msg, peer_closed, p);
}

static void close_peer(struct peer *p)
{
	if (p->c)
		epsec_conn_close(p->c);
	p->c = NULL;
}

/* ------------------------------------------------------------ fixtures */

static int free_tcp_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int setup(void **state, bool tcp)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	t->tcp = tcp;
	t->welcome = true;
	snprintf(t->dir, sizeof(t->dir), "/tmp/epsec-wire-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	snprintf(t->path, sizeof(t->path), "%s/link.sock", t->dir);
	if (tcp) {
		t->port = free_tcp_port();
		if (t->port < 0)
			return -1;
		snprintf(t->uri, sizeof(t->uri), "tcp://127.0.0.1:%d", t->port);
	} else {
		snprintf(t->uri, sizeof(t->uri), "unix://%s", t->path);
	}
	if (epsec_loop_new(&t->loop) < 0)
		return -1;
	epsec_link_set_liveness(1000, 3000);
	last_warn[0] = '\0';
	warn_count = 0;
	*state = t;
	return 0;
}

static int setup_unix(void **state)
{
	return setup(state, false);
}

static int setup_tcp(void **state)
{
	return setup(state, true);
}

static int teardown(void **state)
{
	struct t *t = *state;
	int i;

	for (i = 0; i < t->nsrv; i++)
		close_peer(&t->srv[i]);
	epsec_listener_close(t->l);
	epsec_loop_free(t->loop);
	for (i = 0; i < t->nzsocks; i++)
		zmq_close(t->zsocks[i]);
	if (t->zctx)
		zmq_ctx_term(t->zctx);
	unlink(t->path);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* ------------------------------------------------------------ raw peers */

static int raw_unix(struct t *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static void raw_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EAGAIN)
			continue;
		assert_true(w > 0);
		p += w;
		len -= (size_t)w;
	}
}

static void *raw_zmq(struct t *t)
{
	void *s;
	char ep[64];
	int zero = 0;

	if (!t->zctx)
		t->zctx = zmq_ctx_new();
	s = zmq_socket(t->zctx, ZMQ_DEALER);
	assert_non_null(s);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", t->port);
	assert_int_equal(zmq_connect(s, ep), 0);
	assert_true(t->nzsocks < 4);
	t->zsocks[t->nzsocks++] = s;
	return s;
}

/* Wait (running the loop) for one message on a raw peer and decode it as
 * coming from the mux side. */
static int raw_recv_unix(struct t *t, struct epsec_framer *f, epsec_msg **m)
{
	void *buf = NULL;
	size_t len;
	int r = -EAGAIN;

	WAIT_FOR(t, (r = epsec_framer_recv(f, &buf, &len)) != -EAGAIN, 5000);
	if (r < 0)
		return r;
	r = epsec_msg_decode(buf, len, EPSEC_ROLE_MUX, m);
	free(buf);
	return r;
}

static int raw_recv_zmq(struct t *t, void *s, epsec_msg **m)
{
	uint8_t buf[65536];
	int n = -1;

	WAIT_FOR(t, (n = zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT)) >= 0, 5000);
	if (n < 0)
		return -EAGAIN;
	return epsec_msg_decode(buf, (size_t)n, EPSEC_ROLE_MUX, m);
}

static void *encoded_hello(size_t *len)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;
	void *buf;

	h.version_min = h.version_max = 1;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	assert_int_equal(epsec_msg_encode(&env, &buf, len), 0);
	return buf;
}

static void *encoded_ping(uint64_t seq, size_t *len)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Ping p = EPSEC__PING__INIT;
	void *buf;

	p.seq = seq;
	env.body_case = EPSEC__ENVELOPE__BODY_PING;
	env.ping = &p;
	assert_int_equal(epsec_msg_encode(&env, &buf, len), 0);
	return buf;
}

/* ------------------------------------------------------------ tests */

static void test_hello(void **state)
{
	struct t *t = *state;
	struct peer cli;
	char want[128];

	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	assert_int_equal(t->nsrv, 1);
	assert_int_equal(t->srv[0].hellos, 1);
	assert_string_equal(epsec_conn_uri(t->srv[0].c), t->uri);
	assert_string_equal(epsec_conn_uri(cli.c), t->uri);
	if (t->tcp) {
		snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", t->port);
		assert_string_equal(epsec_conn_peer(cli.c), want);
		assert_non_null(strstr(epsec_conn_peer(t->srv[0].c), "tcp://127.0.0.1:"));
		assert_string_not_equal(epsec_conn_peer(t->srv[0].c), want);
	} else {
		snprintf(want, sizeof(want), "uid=%u gid=%u pid=%d", (unsigned)getuid(),
			 (unsigned)getgid(), (int)getpid());
		assert_string_equal(epsec_conn_peer(t->srv[0].c), want);
		assert_string_equal(epsec_conn_peer(cli.c), want);
	}
	epsec_conn_set_data(cli.c, &cli);
	assert_ptr_equal(epsec_conn_get_data(cli.c), &cli);
	assert_int_equal(cli.closed + t->srv[0].closed, 0);
	close_peer(&cli);
}

/* Messages both ways at once: each EVENT the server gets is answered at
 * once, while the client is still sending (ZMQ_FD's edge rules). */
static void test_thousand_both_ways(void **state)
{
	struct t *t = *state;
	struct peer cli;
	int i, answered = 0;

	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	for (i = 1; i <= 1000; i++) {
		send_event(t, cli.c, (uint64_t)i, 0);
		if (i % 50 == 0)
			run_for(t, 1);
		while (t->srv[0].c && answered < t->srv[0].events)
			send_verdict(t, t->srv[0].c, (uint64_t)++answered);
	}
	assert_true(WAIT_FOR(t, t->srv[0].events == 1000, 10000));
	while (answered < 1000)
		send_verdict(t, t->srv[0].c, (uint64_t)++answered);
	assert_true(WAIT_FOR(t, cli.verdicts == 1000, 10000));
	assert_int_equal(t->srv[0].order_errors, 0);
	assert_int_equal(cli.order_errors, 0);
	assert_int_equal(cli.closed + t->srv[0].closed, 0);
	close_peer(&cli);
}

/* ZeroMQ's ZMQ_FD is edge-triggered and any call on the socket (a send)
 * may swallow the edge of a message that arrived meanwhile: a message that
 * lands while we are not polling, followed by a send on the same socket,
 * must still be delivered. (zmq processes commands in send at most once a
 * millisecond, hence the sleeps.) Each half fails without tcp.c's rearm. */
static void test_edge_after_send(void **state)
{
	struct t *t = *state;
	struct peer cli;

	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	run_for(t, 20);
	/* into the server: the ROUTER's edge */
	send_event(t, cli.c, 1, 0);
	usleep(5000);
	send_verdict(t, t->srv[0].c, 1);
	assert_true(WAIT_FOR(t, t->srv[0].events == 1, 300));
	assert_true(WAIT_FOR(t, cli.verdicts == 1, 300));
	run_for(t, 20);
	/* into the client: the DEALER's edge */
	send_verdict(t, t->srv[0].c, 2);
	usleep(5000);
	send_event(t, cli.c, 2, 0);
	assert_true(WAIT_FOR(t, cli.verdicts == 2, 300));
	assert_true(WAIT_FOR(t, t->srv[0].events == 2, 300));
	close_peer(&cli);
}

static void test_big_message(void **state)
{
	struct t *t = *state;
	struct peer cli;

	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	send_event(t, cli.c, 1, BIG);
	assert_true(WAIT_FOR(t, t->srv[0].events == 1, 10000));
	assert_int_equal(t->srv[0].big_len, BIG);
	assert_true(t->srv[0].big_ok);
	send_event(t, t->srv[0].c, 1, BIG); /* the mux role may send EVENT too */
	assert_true(WAIT_FOR(t, cli.events == 1, 10000));
	assert_int_equal(cli.big_len, BIG);
	assert_true(cli.big_ok);
	assert_int_equal(cli.closed + t->srv[0].closed, 0);
	close_peer(&cli);
}

/* A peer announcing more than EPSEC_FRAME_MAX is dropped; the next peer
 * is served as if nothing happened. */
static void test_oversized_frame(void **state)
{
	struct t *t = *state;
	struct peer good;
	size_t hlen;
	void *hello = encoded_hello(&hlen);

	do_listen(t);
	if (!t->tcp) {
		struct epsec_framer f;
		epsec_msg *m = NULL;
		uint8_t hdr[4];
		int fd = raw_unix(t);

		epsec_framer_init(&f, fd, 0);
		epsec_frame_header(hdr, EPSEC_FRAME_MAX + 1);
		raw_write(fd, hdr, 4);
		raw_write(fd, "abcdefgh", 8);
		assert_true(WAIT_FOR(t, t->nsrv == 1 && t->srv[0].closed, 5000));
		assert_int_equal(t->srv[0].reason, -EMSGSIZE);
		/* it was told why, then hung up on */
		assert_int_equal(raw_recv_unix(t, &f, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_ERROR);
		assert_int_equal(m->error->code, EMSGSIZE);
		epsec_msg_free(m);
		assert_int_equal(raw_recv_unix(t, &f, &m), -ECONNRESET);
		assert_non_null(strstr(last_warn, "uid="));
		assert_non_null(strstr(last_warn, "size limit"));
		epsec_framer_free(&f);
		close(fd);
	} else {
		/* ZeroMQ refuses it (ZMQ_MAXMSGSIZE) and hangs up on the peer; a
		 * peer already known is then found gone by link.c. */
		void *s = raw_zmq(t);
		char *big = calloc(1, EPSEC_FRAME_MAX + 1);

		assert_non_null(big);
		assert_int_equal(zmq_send(s, hello, hlen, 0), (int)hlen);
		assert_true(WAIT_FOR(t, t->nsrv == 1 && t->srv[0].hellos == 1, 5000));
		epsec_link_set_liveness(100, 600);
		assert_int_equal(zmq_send(s, big, EPSEC_FRAME_MAX + 1, 0), EPSEC_FRAME_MAX + 1);
		assert_true(WAIT_FOR(t, t->srv[0].closed, 5000));
		assert_int_equal(t->srv[0].msgs, 1);
		free(big);
	}
	do_connect(t, &good);
	send_hello(t, good.c);
	assert_true(WAIT_FOR(t, good.welcomes == 1, 5000));
	assert_int_equal(t->nsrv, 2);
	assert_int_equal(t->srv[1].closed, 0);
	close_peer(&good);
	free(hello);
}

static void test_peer_disconnect(void **state)
{
	struct t *t = *state;
	struct peer a, b;

	epsec_link_set_liveness(100, 600);
	do_listen(t);
	do_connect(t, &a);
	send_hello(t, a.c);
	assert_true(WAIT_FOR(t, a.welcomes == 1, 5000));
	/* client goes: the server side hears of it */
	close_peer(&a);
	assert_true(WAIT_FOR(t, t->srv[0].closed == 1, 5000));
	assert_true(t->srv[0].reason < 0);
	assert_int_equal(a.closed, 0); /* epsec_conn_close runs no callback */

	/* server side goes (listener and all): the client hears of it */
	do_connect(t, &b);
	send_hello(t, b.c);
	assert_true(WAIT_FOR(t, b.welcomes == 1, 5000));
	epsec_listener_close(t->l);
	t->l = NULL;
	close_peer(&t->srv[1]);
	assert_true(WAIT_FOR(t, b.closed == 1, 5000));
	assert_true(b.reason < 0);
	assert_null(b.c);
}

/* Idle links stay up on PING/PONG alone (never seen by the callbacks); a
 * peer that stops answering is dropped with -ETIMEDOUT. */
static void test_liveness(void **state)
{
	struct t *t = *state;
	struct peer cli;
	size_t hlen, plen;
	void *hello = encoded_hello(&hlen), *ping = encoded_ping(77, &plen);
	uint64_t t0;

	epsec_link_set_liveness(50, 400);
	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	run_for(t, 1200);
	assert_int_equal(cli.closed + t->srv[0].closed, 0);
	assert_int_equal(cli.msgs, 1);
	assert_int_equal(t->srv[0].msgs, 1);
	close_peer(&cli);
	assert_true(WAIT_FOR(t, t->srv[0].closed == 1, 5000));

	/* a peer that connects, says HELLO, and then never answers */
	t0 = epsec_now_ms();
	if (!t->tcp) {
		int fd = raw_unix(t);
		struct epsec_framer f;
		epsec_msg *m = NULL;

		epsec_framer_init(&f, fd, 0);
		raw_write(fd, (uint8_t[]){ 0, 0, 0, (uint8_t)hlen }, 4);
		raw_write(fd, hello, hlen);
		assert_int_equal(raw_recv_unix(t, &f, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_WELCOME);
		epsec_msg_free(m);
		assert_int_equal(raw_recv_unix(t, &f, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_PING);
		epsec_msg_free(m);
		m = NULL;
		/* the link layer answers a PING itself */
		raw_write(fd, (uint8_t[]){ 0, 0, 0, (uint8_t)plen }, 4);
		raw_write(fd, ping, plen);
		do {
			epsec_msg_free(m);
			assert_int_equal(raw_recv_unix(t, &f, &m), 0);
		} while (m->body_case == EPSEC__ENVELOPE__BODY_PING);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_PONG);
		assert_int_equal(m->pong->seq, 77);
		epsec_msg_free(m);
		assert_true(WAIT_FOR(t, t->srv[1].closed == 1, 5000));
		epsec_framer_free(&f);
		close(fd);
	} else {
		void *s = raw_zmq(t);
		epsec_msg *m = NULL;

		assert_int_equal(zmq_send(s, hello, hlen, 0), (int)hlen);
		assert_int_equal(raw_recv_zmq(t, s, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_WELCOME);
		epsec_msg_free(m);
		assert_int_equal(raw_recv_zmq(t, s, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_PING);
		epsec_msg_free(m);
		m = NULL;
		assert_int_equal(zmq_send(s, ping, plen, 0), (int)plen);
		do {
			epsec_msg_free(m);
			assert_int_equal(raw_recv_zmq(t, s, &m), 0);
		} while (m->body_case == EPSEC__ENVELOPE__BODY_PING);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_PONG);
		assert_int_equal(m->pong->seq, 77);
		epsec_msg_free(m);
		assert_true(WAIT_FOR(t, t->srv[1].closed == 1, 5000));
	}
	assert_int_equal(t->srv[1].reason, -ETIMEDOUT);
	assert_true(epsec_now_ms() - t0 >= 400);
	free(hello);
	free(ping);
}

/* Bytes that are no message: ERROR{EBADMSG} to that peer, then it is gone;
 * and a tcp peer cannot come back as new on the same connection. */
static void test_garbage_message(void **state)
{
	struct t *t = *state;
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x42 };
	epsec_msg *m = NULL;
	struct peer good;

	do_listen(t);
	if (!t->tcp) {
		int fd = raw_unix(t);
		struct epsec_framer f;

		epsec_framer_init(&f, fd, 0);
		raw_write(fd, (uint8_t[]){ 0, 0, 0, sizeof(junk) }, 4);
		raw_write(fd, junk, sizeof(junk));
		assert_int_equal(raw_recv_unix(t, &f, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_ERROR);
		assert_int_equal(m->error->code, EBADMSG);
		epsec_msg_free(m);
		assert_int_equal(raw_recv_unix(t, &f, &m), -ECONNRESET);
		epsec_framer_free(&f);
		close(fd);
	} else {
		void *s = raw_zmq(t);
		size_t hlen;
		void *hello = encoded_hello(&hlen);

		assert_int_equal(zmq_send(s, junk, sizeof(junk), 0), (int)sizeof(junk));
		assert_int_equal(raw_recv_zmq(t, s, &m), 0);
		assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_ERROR);
		assert_int_equal(m->error->code, EBADMSG);
		epsec_msg_free(m);
		/* the dropped peer's next words are ignored, not a new peer */
		assert_int_equal(zmq_send(s, hello, hlen, 0), (int)hlen);
		run_for(t, 200);
		assert_int_equal(t->nsrv, 1);
		free(hello);
	}
	assert_int_equal(t->srv[0].closed, 1);
	assert_int_equal(t->srv[0].reason, -EBADMSG);
	assert_int_equal(t->srv[0].msgs, 0);
	assert_int_equal(warn_count, 1);
	assert_non_null(strstr(last_warn, t->tcp ? "tcp://127.0.0.1:" : "uid="));
	assert_non_null(strstr(last_warn, "protobuf"));
	do_connect(t, &good);
	send_hello(t, good.c);
	assert_true(WAIT_FOR(t, good.welcomes == 1, 5000));
	close_peer(&good);
}

/* A well-formed message its role may not send: the link layer refuses it
 * (EPERM) and the sender learns why before it is dropped. */
static void test_wrong_role(void **state)
{
	struct t *t = *state;
	struct peer cli;

	epsec_link_set_liveness(100, 600);
	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	send_verdict(t, cli.c, 5); /* agents do not send verdicts */
	assert_true(WAIT_FOR(t, cli.errors == 1, 5000));
	assert_int_equal(cli.error_code, EPERM);
	assert_true(WAIT_FOR(t, t->srv[0].closed == 1 && cli.closed == 1, 5000));
	assert_int_equal(t->srv[0].reason, -EPERM);
	assert_int_equal(t->srv[0].verdicts, 0);
	assert_non_null(strstr(last_warn, "agent may not send VERDICT"));
}

/* A callback may close its own link and others; on_close of the far ends
 * follows, and nothing is touched after it is freed (ASan/valgrind). */
static void test_close_in_callback(void **state)
{
	struct t *t = *state;
	struct peer a, b;

	epsec_link_set_liveness(100, 600);
	do_listen(t);
	do_connect(t, &a);
	send_hello(t, a.c);
	assert_true(WAIT_FOR(t, a.welcomes == 1, 5000));
	do_connect(t, &b);
	t->close_all_on_hello = true;
	send_hello(t, b.c);
	send_event(t, b.c, 1, 0); /* queued behind the HELLO that closes it */
	assert_true(WAIT_FOR(t, a.closed == 1 && b.closed == 1, 5000));
	assert_int_equal(t->srv[1].hellos, 1);
	assert_int_equal(t->srv[1].events, 0);
	assert_int_equal(t->srv[0].closed + t->srv[1].closed, 0);
}

static void test_reject(void **state)
{
	struct t *t = *state;
	struct peer cli;

	epsec_link_set_liveness(100, 600);
	do_listen(t);
	do_connect(t, &cli);
	send_hello(t, cli.c);
	assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
	epsec_conn_reject(t->srv[0].c, EPROTO, "test says no");
	assert_int_equal(t->srv[0].closed, 1);
	assert_int_equal(t->srv[0].reason, -EPROTO);
	assert_true(WAIT_FOR(t, cli.errors == 1, 5000));
	assert_int_equal(cli.error_code, EPROTO);
	assert_true(WAIT_FOR(t, cli.closed == 1, 5000));
}

static void test_connect_refused(void **state)
{
	struct t *t = *state;
	struct epsec_conn *c = NULL;
	uint64_t t0 = epsec_now_ms();

	assert_int_equal(epsec_connect(t->loop, t->uri, NULL, EPSEC_ROLE_MUX, &c),
			 t->tcp ? -ECONNREFUSED : -ENOENT);
	assert_true(epsec_now_ms() - t0 < 2000);
	assert_int_equal(epsec_connect(t->loop, "nosuch://x", NULL, EPSEC_ROLE_MUX, &c), -ENOENT);
	assert_int_equal(epsec_connect(t->loop, "not a uri", NULL, EPSEC_ROLE_MUX, &c), -EINVAL);
}

static void test_unix_socket_file(void **state)
{
	struct t *t = *state;
	struct epsec_listener *l2 = NULL;
	config_t cfg;
	struct stat st;
	int fd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	/* a stale socket file (its daemon died) is replaced */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	config_init(&cfg);
	assert_true(config_read_string(&cfg, "ok = { mode = 0600; }; bad = { mode = 0999; };"));
	assert_int_equal(epsec_listen(t->loop, t->uri, config_lookup(&cfg, "ok"), EPSEC_ROLE_AGENT,
				      on_accept, t, &t->l), 0);
	assert_int_equal(stat(t->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* a live one is not */
	assert_int_equal(epsec_listen(t->loop, t->uri, NULL, EPSEC_ROLE_AGENT, on_accept, t, &l2),
			 -EADDRINUSE);
	epsec_listener_close(t->l);
	t->l = NULL;
	assert_int_equal(stat(t->path, &st), -1);
	/* wrong option values and unknown keys are refused */
	assert_int_equal(epsec_listen(t->loop, t->uri, config_lookup(&cfg, "bad"),
				      EPSEC_ROLE_AGENT, on_accept, t, &l2), -EINVAL);
	config_destroy(&cfg);
	config_init(&cfg);
	assert_true(config_read_string(&cfg, "colour = \"blue\";"));
	assert_int_equal(epsec_listen(t->loop, t->uri, config_root_setting(&cfg), EPSEC_ROLE_AGENT,
				      on_accept, t, &l2), -EINVAL);
	config_destroy(&cfg);
	/* a regular file in the way is not removed */
	fd = open(t->path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(epsec_listen(t->loop, t->uri, NULL, EPSEC_ROLE_AGENT, on_accept, t, &l2),
			 -EEXIST);
	assert_int_equal(stat(t->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void tick_stop(struct epsec_loop *loop, void *arg)
{
	int *ticks = arg;

	if (--*ticks <= 0)
		epsec_loop_stop(loop);
}

/* Out of fds, a pending peer keeps the listener readable: it is taken with
 * the spare fd and hung up on (no busy loop, one warning), and peers are
 * served again once fds are free. Needs no new fd while starved, so the
 * loop runs on a timer made beforehand. */
static void test_accept_out_of_fds(void **state)
{
	struct t *t = *state;
	struct rlimit old, low;
	uint8_t byte;
	int ticks, id, lowest, fd1, fd2;

	do_listen(t);
	id = epsec_loop_add_timer(t->loop, 10, tick_stop, &ticks);
	assert_true(id > 0);
	fd1 = raw_unix(t);
	fd2 = raw_unix(t);
	lowest = open("/dev/null", O_RDONLY);
	assert_true(lowest >= 0);
	close(lowest);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	warn_count = 0;
	ticks = 20;
	epsec_loop_run(t->loop);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(t->nsrv, 0);
	assert_int_equal(warn_count, 1);
	assert_non_null(strstr(last_warn, "Too many open files"));
	/* both were hung up on, not left waiting */
	assert_int_equal(read(fd1, &byte, 1), 0);
	assert_int_equal(read(fd2, &byte, 1), 0);
	close(fd1);
	close(fd2);
	epsec_loop_del_timer(t->loop, id);
	{
		struct peer cli;

		do_connect(t, &cli);
		send_hello(t, cli.c);
		assert_true(WAIT_FOR(t, cli.welcomes == 1, 5000));
		close_peer(&cli);
	}
}

#define BOTH(fn)                                                                             \
	{ #fn "(unix)", fn, setup_unix, teardown, NULL },                                    \
	{ #fn "(tcp)", fn, setup_tcp, teardown, NULL }

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_hello),
		BOTH(test_thousand_both_ways),
		BOTH(test_edge_after_send),
		BOTH(test_big_message),
		BOTH(test_oversized_frame),
		BOTH(test_peer_disconnect),
		BOTH(test_liveness),
		BOTH(test_garbage_message),
		BOTH(test_wrong_role),
		BOTH(test_close_in_callback),
		BOTH(test_reject),
		BOTH(test_connect_refused),
		{ "test_unix_socket_file", test_unix_socket_file, setup_unix, teardown, NULL },
		{ "test_accept_out_of_fds", test_accept_out_of_fds, setup_unix, teardown, NULL },
	};
	const char *top = getenv("top_builddir");
	char path[4096];
	int r;

	/* `make check` sets EPSEC_PLUGIN_PATH; run by hand from the build dir too */
	snprintf(path, sizeof(path), "%s/transports", top ? top : ".");
	setenv(EPSEC_PLUGIN_PATH_ENV, path, 0);
	epsec_log_open("test_transport", EPSEC_DEST_HOST, EPSEC_LOG_INFO);
	epsec_log_set_forward(capture_log);
	if (epsec_loader_init(NULL) < 0)
		return 1;
	r = cmocka_run_group_tests_name("transport", tests, NULL, NULL);
	epsec_loader_exit();
	return r;
}
