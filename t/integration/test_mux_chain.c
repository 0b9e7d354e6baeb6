/* SPDX-License-Identifier: MIT */
/* End-to-end tests of the real epsec-mux: the test starts mux/epsec-mux on
 * a unix agent endpoint and a tcp SVA endpoint, then plays agents and SVAs
 * itself through libcore's link layer, so every message crosses the real
 * transports, the real codec and the real routing. */
#include "config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "mux_harness.h"

/* Under WAIT_MS: test_timeout waits for the mux to give up on its SVA. */
#define SVA_TIMEOUT "sva_timeout_ms = 1500;\nagent_max_events = 64;\nagent_log_rate = 20;\n"

/* ------------------------------------------------------------ messages */

static void join(struct peer *p, const char *uri, Epsec__Role role, const char *id)
{
	epsec_msg *m = join_welcome(p, uri, role, id, false);

	assert_int_equal(m->welcome->version, EPSEC_PROTO_VERSION_MAX);
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

/* ------------------------------------------------------------ the mux */

static int start_mux(void **state)
{
	struct chain *ch = chain_new("mux");

	snprintf(ch->agents_uri, sizeof(ch->agents_uri), "unix://%s/mux.sock", ch->dir);
	snprintf(ch->svas_uri, sizeof(ch->svas_uri), "tcp://127.0.0.1:%d", free_port());
	mux_start(ch, SVA_TIMEOUT);
	*state = ch;
	return 0;
}

/* SIGTERM must be a clean exit that leaves no socket file behind. */
static int stop_mux(void **state)
{
	struct chain *ch = *state;
	const char *sock = ch->agents_uri + strlen("unix://");
	struct stat st;
	int status;

	peers_release();
	status = mux_stop(ch);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_not_equal(stat(sock, &st), 0);
	chain_free(ch);
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
	peer_connect(bad, ch->agents_uri);
	send_hello(bad, EPSEC__ROLE__ROLE_SVA, "intruder", 1, 1, false);
	expect_error(bad, 0, EPROTO);
	assert_true(pump(is_closed, bad, WAIT_MS));
	/* No version in common. */
	peer_connect(old, ch->agents_uri);
	send_hello(old, EPSEC__ROLE__ROLE_AGENT, "future", EPSEC_PROTO_VERSION_MAX + 1,
		   EPSEC_PROTO_VERSION_MAX + 5, false);
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

	peer_connect(agent, ch->agents_uri);
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

static void send_working(struct peer *p, uint64_t id)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Working w = EPSEC__WORKING__INIT;

	w.n_req_ids = 1;
	w.req_ids = &id;
	env.body_case = EPSEC__ENVELOPE__BODY_WORKING;
	env.working = &w;
	send_env(p, &env);
}

/* An SVA that says WORKING is never timed out, however long it takes:
 * 3 s of scanning with sva_timeout_ms at 1.5 s. */
static void test_working_keeps_alive(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *s = peer_new();
	uint64_t id;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 31, "/srv/long");
	id = expect_event(s, "/srv/long");
	for (int i = 0; i < 6; i++) {
		send_working(s, id);
		send_working(s, id + 1000); /* not its event: ignored, no violation */
		pump(NULL, NULL, 500);
		assert_int_equal(a->n, 0);
	}
	send_verdict(s, id, EPSEC__ACTION__ACTION_DENY);
	expect_verdict(a, 31, EPSEC__ACTION__ACTION_DENY);
	assert_int_equal(status_counter(ch, "rejected"), 0);
	peer_free(a);
	peer_free(s);
}

/* A second answer to one event costs only that answer: the agent hears
 * the first, the SVA keeps its link and is served on; counted. */
static void test_duplicate_verdict(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *s = peer_new();
	uint64_t id;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-1");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	send_event(a, 41, "/srv/twice");
	id = expect_event(s, "/srv/twice");
	send_verdict(s, id, EPSEC__ACTION__ACTION_ALLOW);
	send_verdict(s, id, EPSEC__ACTION__ACTION_DELETE);
	expect_verdict(a, 41, EPSEC__ACTION__ACTION_ALLOW);
	expect_quiet(a);
	send_event(a, 42, "/srv/after");
	send_verdict(s, expect_event(s, "/srv/after"), EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(a, 42, EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(status_counter(ch, "duplicates"), 1);
	assert_int_equal(status_counter(ch, "rejected"), 0);
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

static size_t lines_in(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* One agent holding its agent_max_events (64) in the mux: its next ones are
 * refused with ENOBUFS and counted; another agent is served as before. */
static void test_agent_limits(void **state)
{
	struct chain *ch = *state;
	struct peer *greedy = peer_new(), *other = peer_new(), *s = peer_new();
	char path[32];

	join(greedy, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "greedy");
	join(other, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "other");
	join(s, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1");
	for (uint64_t i = 1; i <= 70; i++) {
		snprintf(path, sizeof(path), "/srv/g%llu", (unsigned long long)i);
		send_event(greedy, i, path);
	}
	for (uint64_t i = 65; i <= 70; i++)
		expect_error(greedy, i, ENOBUFS);
	for (int i = 0; i < 64; i++)
		epsec_msg_free(expect(s, EPSEC__ENVELOPE__BODY_EVENT));
	send_event(other, 1, "/srv/o");
	send_verdict(s, expect_event(s, "/srv/o"), EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(other, 1, EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(status_counter(ch, "over_limit"), 6);
	peer_free(greedy);
	peer_free(other);
	peer_free(s);
}

/* One live connection per agent id: a second HELLO with it is refused
 * (ERROR EADDRINUSE, dropped) and cannot write into the first's log; once
 * the first is gone the id is free again. */
static void test_agent_id_taken(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new(), *impostor = peer_new(), *back = peer_new();

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-7");
	peer_connect(impostor, ch->agents_uri);
	send_hello(impostor, EPSEC__ROLE__ROLE_AGENT, "host-7", EPSEC_PROTO_VERSION_MIN,
		   EPSEC_PROTO_VERSION_MAX, false);
	expect_error(impostor, 0, EADDRINUSE);
	assert_true(pump(is_closed, impostor, WAIT_MS));
	assert_int_equal(status_counter(ch, "id_taken"), 1);
	peer_free(a);
	pump(NULL, NULL, 200);
	join(back, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-7");
	peer_free(impostor);
	peer_free(back);
}

/* LOG lines past agent_log_rate (20/s, bursts of 200) are dropped and
 * counted: no peer fills the disk. */
static void test_agent_log_rate(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new();
	char path[256];
	size_t n;

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "chatty");
	for (int i = 0; i < 1000; i++)
		send_log(a, EPSEC_LOG_WARNING, "again and again");
	pump(NULL, NULL, 500);
	snprintf(path, sizeof(path), "%s/agents/chatty.log", ch->dir);
	n = lines_in(path);
	assert_true(n >= 200 && n <= 230);
	assert_true(status_counter(ch, "logs_dropped") >= 770);
	peer_free(a);
}

/* A tcp peer that never speaks ZMTP (connects, sends nothing, or garbage)
 * is dropped by the handshake timeout within seconds, not 30. */
static void test_zmtp_silent_dropped(void **state)
{
	struct chain *ch = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int port = atoi(strrchr(ch->svas_uri, ':') + 1);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t t0 = epsec_now_ms();
	char buf[256];

	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* ZeroMQ greets first; read its greeting, answer nothing. */
	while (poll(&p, 1, 9000) == 1 && recv(fd, buf, sizeof(buf), 0) > 0)
		;
	assert_true(epsec_now_ms() - t0 < 8000);
	close(fd);
}

/* SIGHUP (logrotate's postrotate, `service epsec-mux reload`) reopens the
 * agents' log files: after a rename the next line goes to a new file. */
static void test_agent_log_reopen(void **state)
{
	struct chain *ch = *state;
	struct peer *a = peer_new();
	char path[256], rotated[272];

	join(a, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-rot");
	send_log(a, EPSEC_LOG_WARNING, "before rotation");
	pump(NULL, NULL, 200);
	snprintf(path, sizeof(path), "%s/agents/host-rot.log", ch->dir);
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	assert_true(file_has(path, "before rotation\n"));
	assert_int_equal(rename(path, rotated), 0);
	assert_int_equal(kill(ch->pid, SIGHUP), 0);
	pump(NULL, NULL, 200);
	send_log(a, EPSEC_LOG_WARNING, "after rotation");
	pump(NULL, NULL, 200);
	assert_true(file_has(path, "after rotation\n"));
	assert_false(file_has(path, "before rotation"));
	assert_false(file_has(rotated, "after rotation"));
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
	return harness_open("test_mux_chain", EPSEC_LOG_WARNING);
}

static int group_teardown(void **state)
{
	harness_close();
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
		T(test_working_keeps_alive),
		T(test_duplicate_verdict),
		T(test_agent_gone),
		T(test_agent_log),
		T(test_agent_limits),
		T(test_agent_id_taken),
		T(test_agent_log_rate),
		T(test_zmtp_silent_dropped),
		T(test_agent_log_reopen),
		T(test_status),
	};

	return cmocka_run_group_tests_name("mux_chain", tests, group_setup, group_teardown);
}
