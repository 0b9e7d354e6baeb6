/* End-to-end tests of the real epsec-mux: the test starts mux/epsec-mux on
 * a unix agent endpoint and a tcp SVA endpoint, then plays agents and SVAs
 * itself through libcore's link layer, so every message crosses the real
 * transports, the real codec and the real routing. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

#define QMAX 64
#define WAIT_MS 3000
#define QUIET_MS 200
#define SVA_TIMEOUT_MS 1500
#define NPEERS 8

struct peer {
	struct epsec_conn *conn;
	epsec_msg *q[QMAX];
	size_t n;
	bool closed;
};

struct chain {
	char dir[64];
	char agents_uri[160], svas_uri[64], ctl[128], sock[128];
	pid_t pid;
};

static struct epsec_loop *loop;
/* Peers live here, not on a test's stack: a failed test longjmps away,
 * and the teardown still closes what it left open. */
static struct peer peers[NPEERS];
static bool peer_used[NPEERS];

/* ------------------------------------------------------------ the loop */

static void peer_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct peer *p = arg;

	if (p->n < QMAX)
		p->q[p->n++] = m;
	else
		epsec_msg_free(m);
}

static void peer_close(struct epsec_conn *c, int reason, void *arg)
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

static void pump_tick(struct epsec_loop *l, void *arg)
{
	struct pump *pu = arg;

	if (pu->done && pu->done(pu->p))
		pu->ok = true;
	if (pu->ok || epsec_now_ms() >= pu->deadline)
		epsec_loop_stop(l);
}

/* Run the loop until done(p) or timeout_ms. */
static bool pump(bool (*done)(struct peer *), struct peer *p, unsigned timeout_ms)
{
	struct pump pu = { done, p, epsec_now_ms() + timeout_ms, false };
	int id = epsec_loop_add_timer(loop, 5, pump_tick, &pu);

	assert_true(id > 0);
	epsec_loop_run(loop);
	epsec_loop_del_timer(loop, id);
	return pu.ok;
}

static bool has_msg(struct peer *p)
{
	return p->n > 0;
}

static bool is_closed(struct peer *p)
{
	return p->closed;
}

static epsec_msg *next_msg(struct peer *p, unsigned timeout_ms)
{
	epsec_msg *m;

	if (!p->n && !pump(has_msg, p, timeout_ms))
		return NULL;
	m = p->q[0];
	memmove(p->q, p->q + 1, --p->n * sizeof(p->q[0]));
	return m;
}

static epsec_msg *expect(struct peer *p, Epsec__Envelope__BodyCase body)
{
	epsec_msg *m = next_msg(p, WAIT_MS);

	assert_non_null(m);
	if (m->body_case != body)
		fail_msg("expected %s, got %s", epsec_msg_name(body), epsec_msg_name(m->body_case));
	return m;
}

/* Nothing arrives for a while. */
static void expect_quiet(struct peer *p)
{
	pump(NULL, NULL, QUIET_MS);
	if (p->n)
		fail_msg("unexpected %s", epsec_msg_name(p->q[0]->body_case));
}

static struct peer *peer_new(void)
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
static void peer_free(struct peer *p)
{
	if (p->conn)
		epsec_conn_close(p->conn);
	p->conn = NULL;
	p->closed = true;
	for (size_t i = 0; i < p->n; i++)
		epsec_msg_free(p->q[i]);
	p->n = 0;
}

static void peers_release(void)
{
	for (size_t i = 0; i < NPEERS; i++) {
		if (peer_used[i])
			peer_free(&peers[i]);
		peer_used[i] = false;
	}
}

/* ------------------------------------------------------------ messages */

static void send_env(struct peer *p, Epsec__Envelope *env)
{
	assert_non_null(p->conn);
	assert_int_equal(epsec_conn_send(p->conn, env), 0);
}

static void send_hello(struct peer *p, Epsec__Role role, const char *id, uint32_t vmin,
		       uint32_t vmax)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;
	char *engines[] = { "eicar", "null" };

	h.version_min = vmin;
	h.version_max = vmax;
	h.role = role;
	h.id = (char *)id;
	h.build = "test";
	if (role == EPSEC__ROLE__ROLE_SVA) {
		h.n_engines = 2;
		h.engines = engines;
		h.has_generation = 1;
		h.generation = 7;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(p, &env);
}

static void join(struct peer *p, const char *uri, Epsec__Role role, const char *id)
{
	epsec_msg *m;

	assert_int_equal(epsec_connect(loop, uri, NULL, EPSEC_ROLE_MUX, &p->conn), 0);
	epsec_conn_set_handlers(p->conn, peer_msg, peer_close, p);
	send_hello(p, role, id, EPSEC_PROTO_VERSION_MIN, EPSEC_PROTO_VERSION_MAX);
	m = expect(p, EPSEC__ENVELOPE__BODY_WELCOME);
	assert_int_equal(m->welcome->version, EPSEC_PROTO_VERSION_MAX);
	assert_string_equal(m->welcome->id, "test-mux");
	epsec_msg_free(m);
}

static void send_event(struct peer *p, uint64_t req, const char *path)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Event ev = EPSEC__EVENT__INIT;

	ev.req_id = req;
	ev.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	ev.has_size = 1;
	ev.size = 4;
	ev.path = (char *)path;
	ev.exe = "/bin/cat";
	ev.has_inline_data = 1;
	ev.inline_data.data = (uint8_t *)"abcd";
	ev.inline_data.len = 4;
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &ev;
	send_env(p, &env);
}

static void send_read(struct peer *p, uint64_t id, uint64_t off, uint32_t len)
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

static void send_data(struct peer *p, uint64_t req, uint64_t off, const char *bytes)
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

static void send_verdict(struct peer *p, uint64_t id, Epsec__Action action)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;

	v.req_id = id;
	v.action = action;
	v.engine = "eicar";
	v.signature = "Test-Signature";
	v.has_generation = 1;
	v.generation = 7;
	env.body_case = EPSEC__ENVELOPE__BODY_VERDICT;
	env.verdict = &v;
	send_env(p, &env);
}

static void send_log(struct peer *p, unsigned level, const char *text)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Log l = EPSEC__LOG__INIT;

	l.level = level;
	l.text = (char *)text;
	l.source = "fanotify";
	env.body_case = EPSEC__ENVELOPE__BODY_LOG;
	env.log = &l;
	send_env(p, &env);
}

/* The SVA's copy of an agent's event: a mux id, the agent's content. */
static uint64_t expect_event(struct peer *sva, const char *path)
{
	epsec_msg *m = expect(sva, EPSEC__ENVELOPE__BODY_EVENT);
	uint64_t id = m->event->req_id;

	assert_string_equal(m->event->path, path);
	assert_int_equal(m->event->inline_data.len, 4);
	epsec_msg_free(m);
	return id;
}

static void expect_error(struct peer *p, uint64_t req, uint32_t code)
{
	epsec_msg *m = expect(p, EPSEC__ENVELOPE__BODY_ERROR);

	if (req) {
		assert_true(m->error->has_req_id);
		assert_int_equal(m->error->req_id, req);
	}
	assert_int_equal(m->error->code, code);
	epsec_msg_free(m);
}

static void expect_verdict(struct peer *agent, uint64_t req, Epsec__Action action)
{
	epsec_msg *m = expect(agent, EPSEC__ENVELOPE__BODY_VERDICT);

	assert_int_equal(m->verdict->req_id, req);
	assert_int_equal(m->verdict->action, action);
	assert_string_equal(m->verdict->signature, "Test-Signature");
	epsec_msg_free(m);
}

/* ------------------------------------------------------------ the mux */

static const char *mux_binary(void)
{
	static char path[4096];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/mux/epsec-mux", top ? top : ".");
	return path;
}

static int free_port(void)
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

static void write_conf(struct chain *ch, const char *path)
{
	FILE *f = fopen(path, "w");
	const char *verbose = getenv("EPSEC_TEST_VERBOSE");

	assert_non_null(f);
	fprintf(f,
		"DEBUG_LEVEL = %d;\nDEBUG_DEST = 3;\nid = \"test-mux\";\n"
		"control = \"%s\";\nagents = [ \"%s\" ];\nsvas = [ \"%s\" ];\n"
		"agent_log_dir = \"%s/agents\";\nsva_timeout_ms = %d;\n",
		verbose ? 7 : 4, ch->ctl, ch->agents_uri, ch->svas_uri, ch->dir, SVA_TIMEOUT_MS);
	fclose(f);
}

static struct json_object *mux_status(struct chain *ch)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	int rc;

	json_object_object_add(req, "cmd", json_object_new_string("status"));
	rc = epsec_ctl_call(ch->ctl, req, 1000, &reply);
	json_object_put(req);
	return rc == 0 ? reply : NULL;
}

static void wait_ready(struct chain *ch)
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

static int start_mux(void **state)
{
	struct chain *ch = calloc(1, sizeof(*ch));
	char conf[128];

	assert_non_null(ch);
	snprintf(ch->dir, sizeof(ch->dir), "/tmp/epsec-mux-test.XXXXXX");
	assert_non_null(mkdtemp(ch->dir));
	snprintf(ch->sock, sizeof(ch->sock), "%s/mux.sock", ch->dir);
	snprintf(ch->agents_uri, sizeof(ch->agents_uri), "unix://%s", ch->sock);
	snprintf(ch->svas_uri, sizeof(ch->svas_uri), "tcp://127.0.0.1:%d", free_port());
	snprintf(ch->ctl, sizeof(ch->ctl), "%s/epsec-mux.ctl", ch->dir);
	snprintf(conf, sizeof(conf), "%s/epsec-mux.conf", ch->dir);
	write_conf(ch, conf);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		/* EPSEC_MUX_WRAPPER="valgrind --error-exitcode=9 ..." checks the mux too. */
		if (getenv("EPSEC_MUX_WRAPPER"))
			execl("/bin/sh", "sh", "-c", "exec $EPSEC_MUX_WRAPPER \"$0\" -f -c \"$1\"",
			      mux_binary(), conf, (char *)NULL);
		else
			execl(mux_binary(), "epsec-mux", "-f", "-c", conf, (char *)NULL);
		_exit(127);
	}
	wait_ready(ch);
	*state = ch;
	return 0;
}

static void rm_tree(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* SIGTERM must be a clean exit that leaves no socket file behind. */
static int stop_mux(void **state)
{
	struct chain *ch = *state;
	struct stat st;
	int status = 0;

	peers_release();
	assert_int_equal(kill(ch->pid, SIGTERM), 0);
	assert_int_equal(waitpid(ch->pid, &status, 0), ch->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_not_equal(stat(ch->sock, &st), 0);
	rm_tree(ch->dir);
	free(ch);
	return 0;
}

/* ------------------------------------------------------------ tests */

static void test_welcome_and_roles(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *bad = peer_new(), *old = peer_new(), *sva = peer_new();

	join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a");
	join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	/* An SVA on the agents' endpoint: ERROR, dropped. */
	assert_int_equal(epsec_connect(loop, ch->agents_uri, NULL, EPSEC_ROLE_MUX, &bad->conn), 0);
	epsec_conn_set_handlers(bad->conn, peer_msg, peer_close, bad);
	send_hello(bad, EPSEC__ROLE__ROLE_SVA, "intruder", 1, 1);
	expect_error(bad, 0, EPROTO);
	assert_true(pump(is_closed, bad, WAIT_MS));
	/* No version in common. */
	assert_int_equal(epsec_connect(loop, ch->agents_uri, NULL, EPSEC_ROLE_MUX, &old->conn), 0);
	epsec_conn_set_handlers(old->conn, peer_msg, peer_close, old);
	send_hello(old, EPSEC__ROLE__ROLE_AGENT, "future", EPSEC_PROTO_VERSION_MAX + 1,
		   EPSEC_PROTO_VERSION_MAX + 5);
	expect_error(old, 0, EPROTONOSUPPORT);
	assert_true(pump(is_closed, old, WAIT_MS));
	/* The others are still served. */
	send_event(agent, 1, "/srv/a");
	send_verdict(sva, expect_event(sva, "/srv/a"), EPSEC__ACTION__ACTION_ALLOW);
	epsec_msg_free(expect(agent, EPSEC__ENVELOPE__BODY_VERDICT));
	peer_free(agent);
	peer_free(bad);
	peer_free(old);
	peer_free(sva);
}

static void test_event_before_hello(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new();

	assert_int_equal(epsec_connect(loop, ch->agents_uri, NULL, EPSEC_ROLE_MUX, &agent->conn), 0);
	epsec_conn_set_handlers(agent->conn, peer_msg, peer_close, agent);
	send_event(agent, 1, "/srv/x");
	expect_error(agent, 0, EPROTO);
	assert_true(pump(is_closed, agent, WAIT_MS));
	peer_free(agent);
}

static void test_no_sva(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new();

	join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a");
	send_event(agent, 41, "/srv/a");
	expect_error(agent, 41, EHOSTUNREACH);
	peer_free(agent);
}

/* READ goes to the owning agent with its id; DATA back to that SVA only. */
static void test_route_read_data(void **state)
{
	struct chain *ch = *state;
	struct peer *a1 = peer_new(), *a2 = peer_new(), *s1 = peer_new(), *s2 = peer_new();
	uint64_t id1, id2;
	epsec_msg *m;

	join(a1, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(a2, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-2");
	join(s1, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	join(s2, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-2");
	/* Both agents use req_id 5: the mux ids must differ. */
	send_event(a1, 5, "/srv/one");
	pump(NULL, NULL, 50);
	send_event(a2, 5, "/srv/two");
	/* Fewest in flight: one event each. */
	id1 = expect_event(s1, "/srv/one");
	id2 = expect_event(s2, "/srv/two");
	assert_int_not_equal(id1, id2);
	send_read(s1, id1, 4, 100);
	m = expect(a1, EPSEC__ENVELOPE__BODY_READ);
	assert_int_equal(m->read->req_id, 5);
	assert_int_equal(m->read->offset, 4);
	epsec_msg_free(m);
	expect_quiet(a2);
	send_data(a1, 5, 4, "tail");
	m = expect(s1, EPSEC__ENVELOPE__BODY_DATA);
	assert_int_equal(m->data->req_id, id1);
	assert_memory_equal(m->data->data.data, "tail", 4);
	epsec_msg_free(m);
	expect_quiet(s2);
	send_verdict(s1, id1, EPSEC__ACTION__ACTION_DENY);
	expect_verdict(a1, 5, EPSEC__ACTION__ACTION_DENY);
	send_verdict(s2, id2, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(a2, 5, EPSEC__ACTION__ACTION_ALLOW);
	expect_quiet(a1);
	peer_free(a1);
	peer_free(a2);
	peer_free(s1);
	peer_free(s2);
}

/* A READ for another SVA's event drops that SVA only. */
static void test_foreign_read(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *s1 = peer_new(), *s2 = peer_new();
	uint64_t id;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s1, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 9, "/srv/f");
	id = expect_event(s1, "/srv/f");
	join(s2, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-2");
	send_read(s2, id, 0, 10);
	expect_error(s2, 0, EPROTO);
	expect_quiet(a);
	send_verdict(s1, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(a, 9, EPSEC__ACTION__ACTION_ALLOW);
	peer_free(a);
	peer_free(s1);
	peer_free(s2);
}

/* DATA for an event the agent does not have drops that agent only. */
static void test_foreign_data(void **state)
{
	struct chain *ch = *state;
	struct peer *a1 = peer_new(), *a2 = peer_new(), *s = peer_new();
	uint64_t id;

	join(a1, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(a2, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-2");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a1, 3, "/srv/d");
	id = expect_event(s, "/srv/d");
	send_data(a2, 3, 0, "forged");
	expect_error(a2, 0, EPROTO);
	assert_true(pump(is_closed, a2, WAIT_MS));
	expect_quiet(s);
	send_verdict(s, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(a1, 3, EPSEC__ACTION__ACTION_ALLOW);
	peer_free(a1);
	peer_free(a2);
	peer_free(s);
}

/* Each role sends only its own messages: an agent's READ (reading a file
 * of another agent) and an SVA's EVENT are refused with ERROR and the
 * sender dropped; the others are still served, and the mux counts both. */
static long long status_counter(struct chain *ch, const char *name);

static void test_wrong_role(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *thief = peer_new(), *s = peer_new(), *bad_sva = peer_new();
	uint64_t id;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(thief, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-thief");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 7, "/srv/secret");
	id = expect_event(s, "/srv/secret");
	send_read(thief, id, 0, 4);
	expect_error(thief, 0, EPERM);
	assert_true(pump(is_closed, thief, WAIT_MS));
	join(bad_sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-bad");
	send_event(bad_sva, 1, "/srv/forged");
	expect_error(bad_sva, 0, EPERM);
	expect_quiet(a);
	expect_quiet(s);
	send_read(s, id, 0, 4);
	epsec_msg_free(expect(a, EPSEC__ENVELOPE__BODY_READ));
	send_data(a, 7, 0, "abcd");
	epsec_msg_free(expect(s, EPSEC__ENVELOPE__BODY_DATA));
	send_verdict(s, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(a, 7, EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(status_counter(ch, "rejected"), 2);
	peer_free(a);
	peer_free(thief);
	peer_free(s);
	peer_free(bad_sva);
}

static long long status_counter(struct chain *ch, const char *name)
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

/* An SVA that goes away: its event goes to the other; with none left the
 * agent gets ERROR EHOSTUNREACH. */
static void test_redispatch(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *s1 = peer_new(), *s2 = peer_new();
	uint64_t id;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s1, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 11, "/srv/r");
	expect_event(s1, "/srv/r");
	join(s2, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-2");
	peer_free(s1);
	id = expect_event(s2, "/srv/r");
	assert_int_equal(status_counter(ch, "redispatched"), 1);
	send_read(s2, id, 0, 4);
	epsec_msg_free(expect(a, EPSEC__ENVELOPE__BODY_READ));
	peer_free(s2);
	expect_error(a, 11, EHOSTUNREACH);
	peer_free(a);
}

/* An SVA too slow: ERROR ETIMEDOUT; its late VERDICT is no violation. */
static void test_timeout(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *s = peer_new();
	uint64_t id;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 21, "/srv/slow");
	id = expect_event(s, "/srv/slow");
	expect_error(a, 21, ETIMEDOUT);
	send_verdict(s, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_quiet(a);
	expect_quiet(s);
	/* Still served. */
	send_event(a, 22, "/srv/next");
	send_verdict(s, expect_event(s, "/srv/next"), EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(a, 22, EPSEC__ACTION__ACTION_ALLOW);
	peer_free(a);
	peer_free(s);
}

/* The agent left: the SVA's READ is refused with DATA error, its VERDICT
 * dropped, and the SVA stays. */
static void test_agent_gone(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *b = peer_new(), *s = peer_new();
	uint64_t id;
	epsec_msg *m;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 31, "/srv/gone");
	id = expect_event(s, "/srv/gone");
	peer_free(a);
	pump(NULL, NULL, 100);
	send_read(s, id, 0, 10);
	m = expect(s, EPSEC__ENVELOPE__BODY_DATA);
	assert_int_equal(m->data->req_id, id);
	assert_int_equal(m->data->error, ECANCELED);
	epsec_msg_free(m);
	send_verdict(s, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_quiet(s);
	join(b, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-2");
	send_event(b, 1, "/srv/b");
	send_verdict(s, expect_event(s, "/srv/b"), EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(b, 1, EPSEC__ACTION__ACTION_ALLOW);
	peer_free(b);
	peer_free(s);
}

static bool file_has(const char *path, const char *needle)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* DEBUG_DEST=2: the agent's LOG lands in agent_log_dir/<safe id>.log. */
static void test_agent_log(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new();
	char path[256];

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "../evil/host 1");
	send_log(a, EPSEC_LOG_WARNING, "queue full\nforged line");
	pump(NULL, NULL, 200);
	snprintf(path, sizeof(path), "%s/agents/.._evil_host_1.log", ch->dir);
	assert_true(file_has(path, " warning [fanotify] queue full forged line\n"));
	peer_free(a);
}

static void test_status(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *s = peer_new();
	struct json_object *st, *agents, *svas, *v;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 1, "/srv/s");
	expect_event(s, "/srv/s");
	st = mux_status(ch);
	assert_non_null(st);
	assert_true(json_object_object_get_ex(st, "program", &v));
	assert_string_equal(json_object_get_string(v), "epsec-mux");
	assert_true(json_object_object_get_ex(st, "agents", &agents));
	assert_int_equal(json_object_array_length(agents), 1);
	v = json_object_array_get_idx(agents, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(v, "id")), "host-1");
	assert_int_equal(json_object_get_int(json_object_object_get(v, "events")), 1);
	assert_true(json_object_object_get_ex(st, "svas", &svas));
	v = json_object_array_get_idx(svas, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(v, "id")), "sva-1");
	assert_int_equal(json_object_get_int(json_object_object_get(v, "in_flight")), 1);
	assert_int_equal(json_object_get_int(json_object_object_get(v, "generation")), 7);
	json_object_put(st);
	peer_free(a);
	peer_free(s);
}

static int group_setup(void **state)
{
	epsec_log_open("test_mux_chain", EPSEC_DEST_STDERR,
		       getenv("EPSEC_TEST_VERBOSE") ? EPSEC_LOG_DEBUG : EPSEC_LOG_WARNING);
	signal(SIGPIPE, SIG_IGN);
	if (epsec_loader_init(NULL) < 0 || epsec_loop_new(&loop) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	epsec_loop_free(loop);
	epsec_loader_exit();
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, start_mux, stop_mux)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_welcome_and_roles),
		T(test_event_before_hello),
		T(test_no_sva),
		T(test_route_read_data),
		T(test_foreign_read),
		T(test_foreign_data),
		T(test_wrong_role),
		T(test_redispatch),
		T(test_timeout),
		T(test_agent_gone),
		T(test_agent_log),
		T(test_status),
	};

	return cmocka_run_group_tests_name("mux_chain", tests, group_setup, group_teardown);
}
