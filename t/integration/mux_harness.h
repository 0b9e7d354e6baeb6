/* SPDX-License-Identifier: MIT */
/* The harness of the tests that run the real epsec-mux (test_mux_chain,
 * test_fdpass): agents and SVAs played over libcore's links, the loop
 * pumped until a condition or a timeout, and the mux started from a
 * written config, read through its control socket and stopped. Header
 * only, like mux_content.h: each of those tests is a program of one file. */
#ifndef EPSEC_T_MUX_HARNESS_H
#define EPSEC_T_MUX_HARNESS_H

#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <epsec/version.h>

#include "ctl.h"
#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"

#define QMAX 256
#define WAIT_MS 3000
#define QUIET_MS 200
#define NPEERS 8
/* What the test SVAs' HELLOs and VERDICTs say, so a VERDICT moves nothing. */
#define SVA_GENERATION 7

/* The test's end of one link: what came, in order, with the fd of each. */
struct peer {
	struct epsec_conn *conn;
	epsec_msg *q[QMAX];
	int qfd[QMAX];      /* the fd that came with q[i], or -1 */
	size_t n;
	bool closed;
	bool leave_fds;     /* do not take passed fds: link.c must close them */
};

/* One epsec-mux of one test, in its own directory. */
struct chain {
	char dir[64];
	char agents_uri[160], svas_uri[160], ctl[128];
	pid_t pid;
	pid_t sva_pid;   /* a real SVA process the test started, stopped first */
	unsigned nofile; /* RLIMIT_NOFILE of the mux, soft and hard (0: as ours) */
};

static struct epsec_loop *loop;
/* Peers live here, not on a test's stack: a failed test longjmps away,
 * and the teardown still closes what it left open. */
static struct peer peers[NPEERS];
static bool peer_used[NPEERS];

/* ------------------------------------------------------------ the group */

/* Logging to stderr at `level` (everything with EPSEC_TEST_VERBOSE), the
 * loader for the transports, and the loop every peer runs on. */
static inline int harness_open(const char *program, int level)
{
	epsec_log_open(program, EPSEC_DEST_STDERR,
		       getenv("EPSEC_TEST_VERBOSE") ? EPSEC_LOG_DEBUG : level);
	signal(SIGPIPE, SIG_IGN);
	if (epsec_loader_init(NULL) < 0 || epsec_loop_new(&loop) < 0)
		return -1;
	return 0;
}

static inline void harness_close(void)
{
	epsec_loop_free(loop);
	epsec_loader_exit();
}

/* ------------------------------------------------------------ the loop */

static inline void peer_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct peer *p = arg;
	int fd = -1;

	if (epsec_msg_carries_fd(m) && !p->leave_fds)
		fd = epsec_conn_take_fd(c);
	if (p->n < QMAX) {
		p->qfd[p->n] = fd < 0 ? -1 : fd;
		p->q[p->n++] = m;
		return;
	}
	epsec_msg_free(m);
	if (fd >= 0)
		close(fd);
}

static inline void peer_close(struct epsec_conn *c, int reason, void *arg)
{
	struct peer *p = arg;

	p->closed = true;
	p->conn = NULL;
}

struct pump {
	bool (*done)(struct peer *p);
	struct peer *p;
	uint64_t deadline;
	bool ok;
};

static inline void pump_tick(struct epsec_loop *l, void *arg)
{
	struct pump *pu = arg;

	if (pu->done && pu->done(pu->p))
		pu->ok = true;
	if (pu->ok || epsec_now_ms() >= pu->deadline)
		epsec_loop_stop(l);
}

/* Run the loop until done(p) or timeout_ms. */
static inline bool pump(bool (*done)(struct peer *), struct peer *p, unsigned timeout_ms)
{
	struct pump pu = { done, p, epsec_now_ms() + timeout_ms, false };
	int id = epsec_loop_add_timer(loop, 5, pump_tick, &pu);

	assert_true(id > 0);
	epsec_loop_run(loop);
	epsec_loop_del_timer(loop, id);
	return pu.ok;
}

static inline bool has_msg(struct peer *p)
{
	return p->n > 0;
}

static inline bool is_closed(struct peer *p)
{
	return p->closed;
}

/* The next message and the fd that came with it (-1: none). */
static inline epsec_msg *next_msg(struct peer *p, unsigned timeout_ms, int *fd)
{
	epsec_msg *m;

	if (!p->n && !pump(has_msg, p, timeout_ms))
		return NULL;
	m = p->q[0];
	*fd = p->qfd[0];
	p->n--;
	memmove(p->q, p->q + 1, p->n * sizeof(p->q[0]));
	memmove(p->qfd, p->qfd + 1, p->n * sizeof(p->qfd[0]));
	return m;
}

static inline epsec_msg *expect_fd(struct peer *p, Epsec__Envelope__BodyCase body, int *fd)
{
	epsec_msg *m = next_msg(p, WAIT_MS, fd);

	if (!m)
		fail_msg("expected %s, got nothing", epsec_msg_name(body));
	if (m->body_case != body)
		fail_msg("expected %s, got %s", epsec_msg_name(body), epsec_msg_name(m->body_case));
	return m;
}

/* A message that came with no fd. */
static inline epsec_msg *expect(struct peer *p, Epsec__Envelope__BodyCase body)
{
	int fd;
	epsec_msg *m = expect_fd(p, body, &fd);

	if (fd >= 0)
		fail_msg("%s came with an fd", epsec_msg_name(body));
	return m;
}

/* Nothing arrives for a while. */
static inline void expect_quiet(struct peer *p)
{
	pump(NULL, NULL, QUIET_MS);
	if (p->n)
		fail_msg("unexpected %s", epsec_msg_name(p->q[0]->body_case));
}

static inline struct peer *peer_new(void)
{
	for (size_t i = 0; i < NPEERS; i++) {
		if (!peer_used[i]) {
			peer_used[i] = true;
			memset(&peers[i], 0, sizeof(peers[i]));
			return &peers[i];
		}
	}
	fail_msg("out of test peers");
	return NULL;
}

/* Close the link (as a peer that goes away); the slot stays taken. */
static inline void peer_free(struct peer *p)
{
	if (p->conn)
		epsec_conn_close(p->conn);
	p->conn = NULL;
	p->closed = true;
	for (size_t i = 0; i < p->n; i++) {
		epsec_msg_free(p->q[i]);
		if (p->qfd[i] >= 0)
			close(p->qfd[i]);
	}
	p->n = 0;
}

static inline void peers_release(void)
{
	for (size_t i = 0; i < NPEERS; i++) {
		if (peer_used[i])
			peer_free(&peers[i]);
		peer_used[i] = false;
	}
}

/* ------------------------------------------------------------ messages */

static inline void peer_connect(struct peer *p, const char *uri)
{
	assert_int_equal(epsec_connect(loop, uri, NULL, EPSEC_ROLE_MUX, &p->conn), 0);
	epsec_conn_set_handlers(p->conn, peer_msg, peer_close, p);
}

static inline void send_env(struct peer *p, Epsec__Envelope *env)
{
	assert_non_null(p->conn);
	assert_int_equal(epsec_conn_send(p->conn, env), 0);
}

/* An SVA's HELLO also names its engines and signature generation; `fds`
 * asks for fd passing. */
static inline void send_hello(struct peer *p, Epsec__Role role, const char *id, uint32_t vmin,
			      uint32_t vmax, bool fds)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;
	char *engines[] = { "eicar", "null" };
	char *caps[] = { (char *)EPSEC_CAP_FD };

	h.version_min = vmin;
	h.version_max = vmax;
	h.role = role;
	h.id = (char *)id;
	h.build = "test";
	if (fds) {
		h.n_capabilities = 1;
		h.capabilities = caps;
	}
	if (role == EPSEC__ROLE__ROLE_SVA) {
		h.n_engines = 2;
		h.engines = engines;
		h.has_generation = 1;
		h.generation = SVA_GENERATION;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(p, &env);
}

/* Connect and say HELLO with every version this build speaks: the test
 * mux's WELCOME, for the caller to check further and free. */
static inline epsec_msg *join_welcome(struct peer *p, const char *uri, Epsec__Role role,
				      const char *id, bool fds)
{
	epsec_msg *m;

	peer_connect(p, uri);
	send_hello(p, role, id, EPSEC_PROTO_VERSION_MIN, EPSEC_PROTO_VERSION_MAX, fds);
	m = expect(p, EPSEC__ENVELOPE__BODY_WELCOME);
	assert_string_equal(m->welcome->id, "test-mux");
	return m;
}

static inline void send_read(struct peer *p, uint64_t id, uint64_t off, uint32_t len)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Read rd = EPSEC__READ__INIT;

	rd.req_id = id;
	rd.offset = off;
	rd.length = len;
	env.body_case = EPSEC__ENVELOPE__BODY_READ;
	env.read = &rd;
	send_env(p, &env);
}

static inline void send_data(struct peer *p, uint64_t req, uint64_t off, const char *bytes)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;

	d.req_id = req;
	d.offset = off;
	d.has_data = 1;
	d.data.data = (uint8_t *)bytes;
	d.data.len = strlen(bytes);
	env.body_case = EPSEC__ENVELOPE__BODY_DATA;
	env.data = &d;
	send_env(p, &env);
}

static inline void send_verdict(struct peer *p, uint64_t id, Epsec__Action action)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;

	v.req_id = id;
	v.action = action;
	v.engine = "eicar";
	v.signature = "Test-Signature";
	v.has_generation = 1;
	v.generation = SVA_GENERATION;
	env.body_case = EPSEC__ENVELOPE__BODY_VERDICT;
	env.verdict = &v;
	send_env(p, &env);
}

/* req 0: any request, or none. */
static inline void expect_error(struct peer *p, uint64_t req, uint32_t code)
{
	epsec_msg *m = expect(p, EPSEC__ENVELOPE__BODY_ERROR);

	if (req) {
		assert_true(m->error->has_req_id);
		assert_int_equal(m->error->req_id, req);
	}
	assert_int_equal(m->error->code, code);
	epsec_msg_free(m);
}

/* The agent's copy of a VERDICT send_verdict sent: its own req id. */
static inline void expect_verdict(struct peer *agent, uint64_t req, Epsec__Action action)
{
	epsec_msg *m = expect(agent, EPSEC__ENVELOPE__BODY_VERDICT);

	assert_int_equal(m->verdict->req_id, req);
	assert_int_equal(m->verdict->action, action);
	assert_string_equal(m->verdict->signature, "Test-Signature");
	epsec_msg_free(m);
}

/* ------------------------------------------------------------ the mux */

static inline const char *mux_binary(void)
{
	static char path[4096];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/mux/epsec-mux", top ? top : ".");
	return path;
}

/* A tcp port on the loopback nobody listens on (for a moment). */
static inline int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* The status reply, or NULL when the mux does not answer (yet). */
static inline struct json_object *mux_status(const struct chain *ch)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	int rc;

	json_object_object_add(req, "cmd", json_object_new_string("status"));
	rc = epsec_ctl_call(ch->ctl, req, 1000, &reply);
	json_object_put(req);
	return rc == 0 ? reply : NULL;
}

/* Counter `name` of the status reply, -1 when it has none. */
static inline long long status_counter(const struct chain *ch, const char *name)
{
	struct json_object *st = mux_status(ch), *counters, *v;
	long long n = -1;

	assert_non_null(st);
	if (json_object_object_get_ex(st, "counters", &counters) &&
	    json_object_object_get_ex(counters, name, &v))
		n = json_object_get_int64(v);
	json_object_put(st);
	return n;
}

static inline void wait_ready(const struct chain *ch)
{
	for (int i = 0; i < 200; i++) {
		struct json_object *st = mux_status(ch);

		if (st) {
			json_object_put(st);
			return;
		}
		usleep(25000);
	}
	fail_msg("epsec-mux did not answer on %s", ch->ctl);
}

/* A chain in a new /tmp/epsec-<name>-test.XXXXXX with its control socket
 * there: the caller names the endpoints, then calls mux_start. */
static inline struct chain *chain_new(const char *name)
{
	struct chain *ch = calloc(1, sizeof(*ch));

	assert_non_null(ch);
	snprintf(ch->dir, sizeof(ch->dir), "/tmp/epsec-%s-test.XXXXXX", name);
	assert_non_null(mkdtemp(ch->dir));
	snprintf(ch->ctl, sizeof(ch->ctl), "%s/epsec-mux.ctl", ch->dir);
	return ch;
}

/* `settings`: the test's own lines (sva_timeout_ms at least). */
static inline void write_conf(const struct chain *ch, const char *path, const char *settings)
{
	FILE *f = fopen(path, "w");
	const char *verbose = getenv("EPSEC_TEST_VERBOSE");

	assert_non_null(f);
	fprintf(f,
		"DEBUG_LEVEL = %d;\nDEBUG_DEST = 3;\nid = \"test-mux\";\n"
		"control = \"%s\";\nagents = [ \"%s\" ];\nsvas = [ \"%s\" ];\n"
		"agent_log_dir = \"%s/agents\";\n%s",
		verbose ? 7 : 4, ch->ctl, ch->agents_uri, ch->svas_uri, ch->dir, settings);
	/* The loopback of the test's own machine: plain tcp, said so. */
	if (!strncmp(ch->agents_uri, "tcp://", 6))
		fprintf(f, "agents_options = { tcp = { insecure_plaintext = true; }; };\n");
	if (!strncmp(ch->svas_uri, "tcp://", 6))
		fprintf(f, "svas_options = { tcp = { insecure_plaintext = true; }; };\n");
	fclose(f);
}

/* mux/epsec-mux in the foreground on the chain's endpoints; back once it
 * answers on its control socket. */
static inline void mux_start(struct chain *ch, const char *settings)
{
	char conf[128];

	snprintf(conf, sizeof(conf), "%s/epsec-mux.conf", ch->dir);
	write_conf(ch, conf, settings);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		/* A test of what the mux does near its fd limit sets this. */
		if (ch->nofile) {
			struct rlimit rl = { ch->nofile, ch->nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(126);
		}
		/* EPSEC_MUX_WRAPPER="valgrind --error-exitcode=9 ..." checks the mux too. */
		if (getenv("EPSEC_MUX_WRAPPER"))
			execl("/bin/sh", "sh", "-c", "exec $EPSEC_MUX_WRAPPER \"$0\" -f -c \"$1\"",
			      mux_binary(), conf, (char *)NULL);
		else
			execl(mux_binary(), "epsec-mux", "-f", "-c", conf, (char *)NULL);
		_exit(127);
	}
	wait_ready(ch);
}

/* SIGTERM to the chain's SVA process, which must exit 0, then to the mux:
 * the mux's wait status, for the caller to judge. */
static inline int mux_stop(const struct chain *ch)
{
	int status = 0;

	if (ch->sva_pid > 0) {
		assert_int_equal(kill(ch->sva_pid, SIGTERM), 0);
		assert_int_equal(waitpid(ch->sva_pid, &status, 0), ch->sva_pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("the SVA did not exit cleanly (status %#x)", status);
	}
	assert_int_equal(kill(ch->pid, SIGTERM), 0);
	assert_int_equal(waitpid(ch->pid, &status, 0), ch->pid);
	return status;
}

/* The chain's directory and the chain, once its processes are gone. */
static inline void chain_free(struct chain *ch)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ch->dir);
	assert_int_equal(system(cmd), 0);
	free(ch);
}

#endif
