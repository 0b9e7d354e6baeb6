/* SPDX-License-Identifier: MIT */
/* File descriptor passing end to end through the real epsec-mux: agents and
 * SVAs both on unix:// endpoints, played by the test over libcore's links,
 * so each fd crosses the real framer, link layer and routing twice; and
 * with t/integration/mux_sva, a real libepsec SVA that reads the fd only
 * when it is the file the EVENT names. Also counts /proc/<mux>/fd, so an
 * fd the mux forgets to close fails a test. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "mux_harness.h"
#include "mux_content.h"

#define NFILES 4
#define MANY 200
#define BATCH 20

/* What the agent's files hold: each test file has its own content. */
struct tfile {
	int fd;
	struct stat st;
	char text[64];
};

static struct tfile files[NFILES];

/* ------------------------------------------------------------ fds */

static int count_fds(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int mux_fds_now(const struct chain *ch)
{
	char dir[64];

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)ch->pid);
	return count_fds(dir);
}

/* A control connection just answered may still be open in the mux for a
 * moment: a baseline is taken once the count holds still. */
static int mux_fds(const struct chain *ch)
{
	int n = mux_fds_now(ch), prev = -1;

	for (int i = 0; i < 50 && n != prev; i++) {
		pump(NULL, NULL, 20);
		prev = n;
		n = mux_fds_now(ch);
	}
	return n;
}

/* The mux closes what it passed on from its loop: let it run a moment. */
static void expect_mux_fds(const struct chain *ch, int want)
{
	int n = mux_fds_now(ch);

	for (int i = 0; i < 100 && n != want; i++) {
		pump(NULL, NULL, 10);
		n = mux_fds_now(ch);
	}
	if (n != want) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)ch->pid);
		if (system(cmd) != 0)
			fprintf(stderr, "(cannot list them)\n");
		fail_msg("epsec-mux holds %d fds, expected %d", n, want);
	}
}

/* Unlinked temp files, each with its own content. */
static void files_open(void)
{
	for (int i = 0; i < NFILES; i++) {
		char path[] = "/tmp/epsec-test-fdpass.XXXXXX";
		struct tfile *f = &files[i];

		f->fd = mkstemp(path);
		assert_true(f->fd >= 0);
		assert_int_equal(unlink(path), 0);
		snprintf(f->text, sizeof(f->text), "file %d: the content the SVA reads itself", i);
		assert_int_equal(write(f->fd, f->text, strlen(f->text)), (ssize_t)strlen(f->text));
		assert_int_equal(fstat(f->fd, &f->st), 0);
	}
}

static void files_close(void)
{
	for (int i = 0; i < NFILES; i++) {
		if (files[i].fd >= 0)
			close(files[i].fd);
		files[i].fd = -1;
	}
}

/* An fd the SVA got is the agent's file: same inode, same bytes. */
static void check_same_file(int fd, const struct tfile *f)
{
	struct stat st;
	char buf[64] = "";
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_true(st.st_ino == f->st.st_ino);
	assert_true(st.st_dev == f->st.st_dev);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_int_equal(n, (ssize_t)strlen(f->text));
	assert_memory_equal(buf, f->text, (size_t)n);
}

/* ------------------------------------------------------------ messages */

/* Whether the mux's WELCOME offers fd passing. */
static bool join(struct peer *p, const char *uri, Epsec__Role role, const char *id, bool fds)
{
	epsec_msg *m = join_welcome(p, uri, role, id, fds);
	bool offered;

	assert_true(epsec_conn_passes_fds(p->conn));
	offered = epsec_caps_has(m->welcome->capabilities, m->welcome->n_capabilities,
				 EPSEC_CAP_FD);
	epsec_msg_free(m);
	return offered;
}

/* An EVENT for file f, as vsep sends it: local_fd set and f's fd passed
 * with it, no inline bytes. A broken agent's: says_fd false or fd -1. */
static void send_event(struct peer *p, uint64_t req, const struct tfile *f, bool says_fd,
		       int fd)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Event ev = EPSEC__EVENT__INIT;

	ev.req_id = req;
	ev.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	ev.has_dev = ev.has_ino = ev.has_size = 1;
	ev.dev = (uint64_t)f->st.st_dev;
	ev.ino = (uint64_t)f->st.st_ino;
	ev.size = (uint64_t)f->st.st_size;
	ev.path = "/srv/fdpass";
	ev.exe = "/bin/cat";
	ev.has_local_fd = ev.local_fd = says_fd;
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &ev;
	if (fd >= 0)
		assert_int_equal(epsec_conn_send_fd(p->conn, &env, fd), 0);
	else
		send_env(p, &env);
}

static void send_event_fd(struct peer *p, uint64_t req, const struct tfile *f)
{
	send_event(p, req, f, true, f->fd);
}

/* The SVA's EVENT, with the agent's file: its mux id. */
static uint64_t expect_event_with_fd(struct peer *sva, const struct tfile *f)
{
	int fd;
	epsec_msg *m = expect_fd(sva, EPSEC__ENVELOPE__BODY_EVENT, &fd);
	uint64_t id = m->event->req_id;

	assert_true(epsec_msg_carries_fd(m));
	assert_false(m->event->has_inline_data);
	if (fd < 0)
		fail_msg("EVENT %llu says local_fd but the SVA got no fd", (unsigned long long)id);
	check_same_file(fd, f);
	close(fd);
	epsec_msg_free(m);
	return id;
}

/* The SVA's EVENT without an fd: it reads with READ. */
static uint64_t expect_event_without_fd(struct peer *sva)
{
	epsec_msg *m = expect(sva, EPSEC__ENVELOPE__BODY_EVENT);
	uint64_t id = m->event->req_id;

	assert_false(epsec_msg_carries_fd(m));
	epsec_msg_free(m);
	return id;
}

/* READ from the SVA reaches the agent as its own request; DATA goes back. */
static void read_through_mux(struct peer *agent, uint64_t req, struct peer *sva, uint64_t id,
			     const struct tfile *f)
{
	epsec_msg *m;

	send_read(sva, id, 0, 64);
	m = expect(agent, EPSEC__ENVELOPE__BODY_READ);
	assert_int_equal(m->read->req_id, req);
	assert_int_equal(m->read->offset, 0);
	epsec_msg_free(m);
	send_data(agent, req, 0, f->text);
	m = expect(sva, EPSEC__ENVELOPE__BODY_DATA);
	assert_int_equal(m->data->req_id, id);
	assert_int_equal(m->data->data.len, strlen(f->text));
	assert_memory_equal(m->data->data.data, f->text, strlen(f->text));
	epsec_msg_free(m);
}

/* The agent's file reaches the SVA with its fd; the SVA's ALLOW comes back. */
static void scan_with_fd(struct peer *agent, uint64_t req, struct peer *sva, const struct tfile *f)
{
	send_event_fd(agent, req, f);
	send_verdict(sva, expect_event_with_fd(sva, f), EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(agent, req, EPSEC__ACTION__ACTION_ALLOW);
}

/* The agent passes f's fd but the SVA gets none: it reads f through the
 * mux, and the mux ends holding no more fds than before. */
static void scan_without_fd(const struct chain *ch, struct peer *agent, uint64_t req,
			    struct peer *sva, const struct tfile *f)
{
	int before = mux_fds(ch);
	uint64_t id;

	send_event_fd(agent, req, f);
	id = expect_event_without_fd(sva);
	read_through_mux(agent, req, sva, id, f);
	send_verdict(sva, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(agent, req, EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(status_counter(ch, "fds_passed"), 0);
	expect_mux_fds(ch, before);
}

/* ------------------------------------------------------------ the mux */

/* "pass_fds" of the first peer in status's "agents" or "svas". */
static bool status_peer_fds(const struct chain *ch, const char *list)
{
	struct json_object *st = mux_status(ch), *peers_js, *v;
	bool fds;

	assert_non_null(st);
	assert_true(json_object_object_get_ex(st, list, &peers_js));
	assert_true(json_object_array_length(peers_js) >= 1);
	assert_true(json_object_object_get_ex(json_object_array_get_idx(peers_js, 0), "pass_fds",
					      &v));
	fds = json_object_get_boolean(v);
	json_object_put(st);
	return fds;
}

static int start_mux_with(void **state, const char *extra, bool svas_on_tcp, unsigned nofile)
{
	struct chain *ch = chain_new("fdpass");
	char settings[128];

	ch->nofile = nofile;
	snprintf(ch->agents_uri, sizeof(ch->agents_uri), "unix://%s/agents.sock", ch->dir);
	if (svas_on_tcp)
		snprintf(ch->svas_uri, sizeof(ch->svas_uri), "tcp://127.0.0.1:%d", free_port());
	else
		snprintf(ch->svas_uri, sizeof(ch->svas_uri), "unix://%s/svas.sock", ch->dir);
	snprintf(settings, sizeof(settings), "sva_timeout_ms = 5000;\n%s", extra);
	mux_start(ch, settings);
	files_open();
	*state = ch;
	return 0;
}

static int start_mux(void **state)
{
	return start_mux_with(state, "", false, 0);
}

static int start_mux_nofds(void **state)
{
	return start_mux_with(state, "pass_fds = false;\n", false, 0);
}

/* The SVA endpoint on tcp://, where no fds go. */
static int start_mux_tcp_svas(void **state)
{
	return start_mux_with(state, "", true, 0);
}

static int start_mux_window1(void **state)
{
	return start_mux_with(state, "sva_window = 1;\n", false, 0);
}

/* An fd limit of 200: the mux holds at most 100 fds of waiting events. */
static int start_mux_nofile200(void **state)
{
	return start_mux_with(state, "sva_window = 1;\n", false, 200);
}

/* A clean exit after all of it: an fd the mux mishandled (closed twice,
 * say) would show as a crash here under ASan. */
static int stop_mux(void **state)
{
	struct chain *ch = *state;
	int status;

	peers_release();
	files_close();
	status = mux_stop(ch);
	chain_free(ch);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	return 0;
}

/* ------------------------------------------------------------ tests */

/* (a) Both ends say "fd": the SVA gets the agent's file itself. */
static void test_fd_reaches_sva(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *sva = peer_new();
	uint64_t id;

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	assert_true(status_peer_fds(ch, "agents"));
	assert_true(status_peer_fds(ch, "svas"));
	assert_int_equal(status_counter(ch, "fds_passed"), 0);
	send_event_fd(agent, 1, &files[0]);
	id = expect_event_with_fd(sva, &files[0]);
	/* The agent keeps its own fd. */
	assert_true(fcntl(files[0].fd, F_GETFD) >= 0);
	send_verdict(sva, id, EPSEC__ACTION__ACTION_DENY);
	expect_verdict(agent, 1, EPSEC__ACTION__ACTION_DENY);
	scan_with_fd(agent, 2, sva, &files[1]);
	assert_int_equal(status_counter(ch, "fds_passed"), 2);
	assert_int_equal(status_counter(ch, "events"), 2);
	/* An agent that does not say "fd" is not offered it. */
	{
		struct peer *old = peer_new();

		assert_false(join(old, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-old", false));
		peer_free(old);
	}
	peer_free(agent);
	peer_free(sva);
}

/* (b) An SVA that did not say "fd": the EVENT goes without it, the SVA
 * reads through the mux, and the mux closes the fd it held. */
static void test_sva_without_fd(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *sva = peer_new();

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_false(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-old", false));
	assert_false(status_peer_fds(ch, "svas"));
	scan_without_fd(ch, agent, 5, sva, &files[2]);
	peer_free(agent);
	peer_free(sva);
}

/* (c) pass_fds = false: nobody is offered "fd"; an agent that sends one
 * anyway is still served, through READ, and its fd not kept. */
static void test_pass_fds_off(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *sva = peer_new();

	assert_false(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_false(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	assert_false(status_peer_fds(ch, "agents"));
	assert_false(status_peer_fds(ch, "svas"));
	scan_without_fd(ch, agent, 9, sva, &files[0]);
	peer_free(agent);
	peer_free(sva);
}

/* SVAs reached over tcp:// cannot get fds, so a unix agent is not offered
 * "fd": it would send no inline bytes, and every scan would pull the whole
 * file through READ. */
static void test_no_fd_offer_without_fd_svas(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new();

	assert_false(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_false(status_peer_fds(ch, "agents"));
	peer_free(agent);
}

/* (d) local_fd with no fd is a broken peer: ERROR, dropped; the agent next
 * to it is still served, with its fds. */
static void test_local_fd_without_fd(void **state)
{
	struct chain *ch = *state;
	struct peer *liar = peer_new(), *agent = peer_new(), *sva = peer_new();

	assert_true(join(liar, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-liar", true));
	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	/* It says an fd came with it; none did. */
	send_event(liar, 1, &files[0], true, -1);
	expect_error(liar, 0, EPROTO);
	assert_true(pump(is_closed, liar, WAIT_MS));
	expect_quiet(sva);
	assert_int_equal(status_counter(ch, "rejected"), 1);
	scan_with_fd(agent, 1, sva, &files[1]);
	peer_free(liar);
	peer_free(agent);
	peer_free(sva);
}

/* More than 16 fds passed with EVENTs that do not say local_fd: nobody
 * takes them, so the agent is dropped, and the mux keeps none of them. */
static void test_stray_fds(void **state)
{
	struct chain *ch = *state;
	struct peer *stray = peer_new(), *agent = peer_new(), *sva = peer_new();
	int before, i, unreachable = 0;
	epsec_msg *m;

	/* The agent first, so the mux's link timer outlives the stray's link. */
	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(stray, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-stray", true));
	before = mux_fds(ch);
	for (i = 0; i <= 16; i++)
		send_event(stray, (uint64_t)i + 1, &files[i % NFILES], false, files[i % NFILES].fd);
	/* No SVA yet: each EVENT the mux reads is answered EHOSTUNREACH. */
	for (;;) {
		m = expect(stray, EPSEC__ENVELOPE__BODY_ERROR);
		if (m->error->code != EHOSTUNREACH)
			break;
		unreachable++;
		epsec_msg_free(m);
	}
	assert_int_equal(m->error->code, EPROTO);
	epsec_msg_free(m);
	assert_int_equal(unreachable, 16);
	assert_true(pump(is_closed, stray, WAIT_MS));
	/* Its link's 16 fds went with it. */
	expect_mux_fds(ch, before - 1);
	expect_quiet(agent);
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	scan_with_fd(agent, 3, sva, &files[3]);
	peer_free(stray);
	peer_free(agent);
	peer_free(sva);
}

/* (e) The SVA that had the fd dies: the event goes to another SVA without
 * one, and READ serves it. */
static void test_redispatch_without_fd(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *s1 = peer_new(), *s2 = peer_new();
	uint64_t id;
	int before;

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(s1, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	before = mux_fds(ch);
	send_event_fd(agent, 11, &files[1]);
	expect_event_with_fd(s1, &files[1]);
	assert_int_equal(status_counter(ch, "fds_passed"), 1);
	assert_true(join(s2, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-2", true));
	peer_free(s1);
	id = expect_event_without_fd(s2);
	assert_int_equal(status_counter(ch, "redispatched"), 1);
	read_through_mux(agent, 11, s2, id, &files[1]);
	send_verdict(s2, id, EPSEC__ACTION__ACTION_DENY);
	expect_verdict(agent, 11, EPSEC__ACTION__ACTION_DENY);
	assert_int_equal(status_counter(ch, "fds_passed"), 1);
	/* s2's link replaced s1's: the same count as with s1. */
	expect_mux_fds(ch, before);
	peer_free(agent);
	peer_free(s2);
}

/* An event that waited in a dead SVA's backlog was never given to it: it
 * still has its fd, and the next SVA gets it (sva_window = 1). */
static void test_redispatch_backlog_keeps_fd(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *s1 = peer_new(), *s2 = peer_new();
	uint64_t id;

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(s1, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	send_event_fd(agent, 1, &files[0]);
	send_event_fd(agent, 2, &files[1]);
	expect_event_with_fd(s1, &files[0]);
	expect_quiet(s1);
	assert_true(join(s2, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-2", true));
	peer_free(s1);
	id = expect_event_without_fd(s2);
	read_through_mux(agent, 1, s2, id, &files[0]);
	send_verdict(s2, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(agent, 1, EPSEC__ACTION__ACTION_ALLOW);
	id = expect_event_with_fd(s2, &files[1]);
	send_verdict(s2, id, EPSEC__ACTION__ACTION_ALLOW);
	expect_verdict(agent, 2, EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(status_counter(ch, "fds_passed"), 2);
	peer_free(agent);
	peer_free(s2);
}

static const struct tfile *file_by_ino(uint64_t ino)
{
	for (int i = 0; i < NFILES; i++)
		if ((uint64_t)files[i].st.st_ino == ino)
			return &files[i];
	fail_msg("EVENT names no file of the agent's (ino %llu)", (unsigned long long)ino);
	return NULL;
}

/* Events waiting in the mux (sva_window = 1) hold their fds; when their
 * agent leaves, or their only SVA does, the mux closes every one. */
static void test_backlog_fds_released(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *keep = peer_new(), *sva = peer_new();
	int base, i;

	assert_true(join(keep, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-keep", true));
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	base = mux_fds(ch);
	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	for (i = 0; i < NFILES; i++)
		send_event_fd(agent, (uint64_t)i + 1, &files[i]);
	expect_event_with_fd(sva, &files[0]);
	expect_quiet(sva);
	/* Its link and the fds of the three events still waiting. */
	expect_mux_fds(ch, base + 1 + NFILES - 1);
	peer_free(agent);
	expect_mux_fds(ch, base);
	/* The SVA still holds the gone agent's event (unanswered), so all of
	 * these wait; when their only SVA goes: EHOSTUNREACH, fds closed. */
	for (i = 0; i < NFILES; i++)
		send_event_fd(keep, (uint64_t)i + 1, &files[i]);
	expect_quiet(sva);
	expect_mux_fds(ch, base + NFILES);
	peer_free(sva);
	for (i = 0; i < NFILES; i++)
		expect_error(keep, 0, EHOSTUNREACH);
	expect_mux_fds(ch, base - 1);
	peer_free(keep);
}

static bool all_events_in(const struct chain *ch, long long want)
{
	for (int i = 0; i < 200; i++) {
		if (status_counter(ch, "events") >= want)
			return true;
		usleep(10000);
	}
	return false;
}

/* An agent flooding the mux with fds while its only SVA holds one event
 * (sva_window 1) and answers none: past half its fd limit the mux closes
 * new fds on arrival, counts them, and still takes connections. */
static void test_fd_cap(void **state)
{
	enum { FLOOD = 180 };
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *sva = peer_new(), *late = peer_new();
	long long refused;

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	for (uint64_t req = 1; req <= FLOOD; req++)
		send_event_fd(agent, req, &files[req % NFILES]);
	assert_true(all_events_in(ch, FLOOD));
	refused = status_counter(ch, "fds_refused");
	/* 100 wait with theirs, one went to the SVA with its own. */
	assert_int_equal(refused, FLOOD - 101);
	assert_true(mux_fds(ch) < 200);
	assert_true(join(late, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-b", true));
	peer_free(late);
	peer_free(agent);
	peer_free(sva);
}

/* Answer `want` EVENTs, each checked to come with the file it names. */
static void answer_all(struct peer *sva, size_t want)
{
	for (size_t i = 0; i < want; i++) {
		int fd;
		epsec_msg *m = expect_fd(sva, EPSEC__ENVELOPE__BODY_EVENT, &fd);

		assert_true(epsec_msg_carries_fd(m));
		check_same_file(fd, file_by_ino(m->event->ino));
		close(fd);
		send_verdict(sva, m->event->req_id, EPSEC__ACTION__ACTION_ALLOW);
		epsec_msg_free(m);
	}
}

/* (f) 200 events with fds, all answered: the mux holds no more fds than
 * before, and neither does this process (the SVA side took each one). */
static void test_no_fd_leak(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *sva = peer_new();
	int before, self_before;
	uint64_t req = 1;

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	before = mux_fds(ch);
	self_before = count_fds("/proc/self/fd");
	for (int b = 0; b < MANY / BATCH; b++) {
		for (int i = 0; i < BATCH; i++, req++)
			send_event_fd(agent, req, &files[req % NFILES]);
		answer_all(sva, BATCH);
		for (int i = 0; i < BATCH; i++) {
			epsec_msg *m = expect(agent, EPSEC__ENVELOPE__BODY_VERDICT);

			assert_int_equal(m->verdict->req_id, req - BATCH + (uint64_t)i);
			epsec_msg_free(m);
		}
	}
	assert_int_equal(status_counter(ch, "fds_passed"), MANY);
	assert_int_equal(status_counter(ch, "verdicts"), MANY);
	expect_mux_fds(ch, before);
	assert_int_equal(count_fds("/proc/self/fd"), self_before);
	peer_free(agent);
	peer_free(sva);
}

/* An SVA whose on_msg does not take the fd: link.c closes it when on_msg
 * returns, so this process does not fill up with them. */
static void test_untaken_fd_closed(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new(), *sva = peer_new();
	int self_before;

	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	assert_true(join(sva, ch->svas_uri, EPSEC__ROLE__ROLE_SVA, "sva-1", true));
	sva->leave_fds = true;
	self_before = count_fds("/proc/self/fd");
	for (uint64_t req = 1; req <= 50; req++) {
		epsec_msg *m;

		send_event_fd(agent, req, &files[req % NFILES]);
		m = expect(sva, EPSEC__ENVELOPE__BODY_EVENT);
		assert_true(epsec_msg_carries_fd(m));
		send_verdict(sva, m->event->req_id, EPSEC__ACTION__ACTION_ALLOW);
		epsec_msg_free(m);
		expect_verdict(agent, req, EPSEC__ACTION__ACTION_ALLOW);
	}
	assert_int_equal(count_fds("/proc/self/fd"), self_before);
	assert_int_equal(status_counter(ch, "fds_passed"), 50);
	peer_free(agent);
	peer_free(sva);
}

/* ------------------------------------------------------------ libepsec */

#define REAL_AGENT 1u
#define REAL_SIZE 3000u

/* Files as mux_sva checks them: its content follows from its path. */
struct realfile {
	int fd;
	uint64_t seq;
	struct stat st;
};

static void realfile_open(struct realfile *f, uint64_t seq)
{
	char path[] = "/tmp/epsec-test-fdpass.XXXXXX";
	uint8_t buf[REAL_SIZE];

	f->seq = seq;
	f->fd = mkstemp(path);
	assert_true(f->fd >= 0);
	assert_int_equal(unlink(path), 0);
	mux_test_content(REAL_AGENT, seq, 0, buf, sizeof(buf));
	assert_int_equal(write(f->fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(fstat(f->fd, &f->st), 0);
}

static void start_real_sva(struct chain *ch)
{
	char bin[4096];
	const char *top = getenv("top_builddir");

	snprintf(bin, sizeof(bin), "%s/t/integration/mux_sva", top ? top : ".");
	ch->sva_pid = fork();
	assert_true(ch->sva_pid >= 0);
	if (ch->sva_pid == 0) {
		execl(bin, "mux_sva", "-u", ch->svas_uri, "-i", "sva-real", "-m", "check", "-t", "1",
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		struct json_object *st = mux_status(ch), *svas;
		bool up = st && json_object_object_get_ex(st, "svas", &svas) &&
			  json_object_array_length(svas) == 1;

		json_object_put(st);
		if (up)
			return;
		usleep(25000);
	}
	fail_msg("mux_sva did not join the mux");
}

/* DATA for a READ, from the named file's content as mux_sva expects it. */
static void answer_read(struct peer *agent, const Epsec__Read *rd, const struct realfile *named)
{
	uint8_t buf[REAL_SIZE];
	size_t n = rd->offset < REAL_SIZE ? REAL_SIZE - (size_t)rd->offset : 0;
	Epsec__Envelope out = EPSEC__ENVELOPE__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;

	n = n < rd->length ? n : rd->length;
	mux_test_content(REAL_AGENT, named->seq, rd->offset, buf, n);
	d.req_id = rd->req_id;
	d.offset = rd->offset;
	d.has_data = 1;
	d.data.data = buf;
	d.data.len = n;
	out.body_case = EPSEC__ENVELOPE__BODY_DATA;
	out.data = &d;
	send_env(agent, &out);
}

/* An EVENT naming file `named` (its path, dev, ino, size) with `fd` passed
 * alongside; the agent answers READs from `named`'s content. The verdict;
 * *reads counts the READs it took. */
static Epsec__Action real_event(struct peer *agent, uint64_t req, const struct realfile *named,
				int fd, unsigned *reads)
{
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Event ev = EPSEC__EVENT__INIT;
	char path[64];

	mux_test_path(path, sizeof(path), REAL_AGENT, named->seq);
	ev.req_id = req;
	ev.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	ev.has_dev = ev.has_ino = ev.has_size = 1;
	ev.dev = (uint64_t)named->st.st_dev;
	ev.ino = (uint64_t)named->st.st_ino;
	ev.size = REAL_SIZE;
	ev.path = path;
	ev.has_local_fd = ev.local_fd = 1;
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &ev;
	assert_int_equal(epsec_conn_send_fd(agent->conn, &env, fd), 0);
	*reads = 0;
	for (;;) {
		int got_fd;
		epsec_msg *m = next_msg(agent, WAIT_MS, &got_fd);
		Epsec__Action action;

		if (!m)
			fail_msg("no VERDICT for event %llu", (unsigned long long)req);
		assert_int_equal(got_fd, -1);
		if (m->body_case == EPSEC__ENVELOPE__BODY_READ) {
			assert_int_equal(m->read->req_id, req);
			answer_read(agent, m->read, named);
			(*reads)++;
			epsec_msg_free(m);
			continue;
		}
		if (m->body_case != EPSEC__ENVELOPE__BODY_VERDICT)
			fail_msg("expected VERDICT or READ, got %s", epsec_msg_name(m->body_case));
		assert_int_equal(m->verdict->req_id, req);
		action = m->verdict->action;
		epsec_msg_free(m);
		return action;
	}
}

/* libepsec reads the passed fd itself when it is the file the EVENT names
 * (no READ at all), and otherwise closes it and reads through the mux: an
 * fd of another file, or of a pipe, is never read. mux_sva answers DENY
 * when the bytes it read are not the named file's. */
static void test_libepsec_checks_fd(void **state)
{
	struct chain *ch = *state;
	struct peer *agent = peer_new();
	struct realfile a, b, pipe_named = { .fd = -1 };
	int pipefd[2], before;
	unsigned reads;

	start_real_sva(ch);
	assert_true(status_peer_fds(ch, "svas"));
	realfile_open(&a, 1);
	realfile_open(&b, 2);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	before = mux_fds(ch);
	/* The right file: read through the fd. */
	assert_int_equal(real_event(agent, 1, &a, a.fd, &reads), EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(reads, 0);
	assert_int_equal(real_event(agent, 2, &b, b.fd, &reads), EPSEC__ACTION__ACTION_ALLOW);
	assert_int_equal(reads, 0);
	/* Another file's fd for a: never read; READ gives a's bytes. */
	assert_int_equal(real_event(agent, 3, &a, b.fd, &reads), EPSEC__ACTION__ACTION_ALLOW);
	assert_true(reads >= 1);
	/* Not a regular file, though its dev and ino are the ones named. */
	pipe_named.seq = 3;
	assert_int_equal(fstat(pipefd[0], &pipe_named.st), 0);
	assert_int_equal(real_event(agent, 4, &pipe_named, pipefd[0], &reads),
			 EPSEC__ACTION__ACTION_ALLOW);
	assert_true(reads >= 1);
	assert_int_equal(status_counter(ch, "fds_passed"), 4);
	expect_mux_fds(ch, before);
	close(pipefd[0]);
	close(pipefd[1]);
	close(a.fd);
	close(b.fd);
	peer_free(agent);
}

/* A burst larger than the SVA's socket holds while the SVA is stopped:
 * once the link cannot start an EVENT with its fd, the rest wait in the
 * mux (not sent without their fd, which would leave the SVA with no bytes
 * and a READ for each), and all go with their fds when it reads again. */
static void test_burst_keeps_fds(void **state)
{
	enum { BURST = 250 };
	struct chain *ch = *state;
	struct peer *agent = peer_new();
	Epsec__Envelope env = EPSEC__ENVELOPE__INIT;
	Epsec__Event ev = EPSEC__EVENT__INIT;
	struct realfile a;
	char path[640];
	unsigned reads = 0, verdicts = 0;
	size_t n;

	start_real_sva(ch);
	realfile_open(&a, 1);
	assert_true(join(agent, ch->agents_uri, EPSEC__ROLE__ROLE_AGENT, "host-a", true));
	/* A long path, as deep trees have: fewer EVENTs fill the socket. */
	mux_test_path(path, sizeof(path), REAL_AGENT, a.seq);
	n = strlen(path);
	memset(path + n, 'd', sizeof(path) - n - 1);
	path[n] = '/';
	path[sizeof(path) - 1] = '\0';
	ev.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	ev.has_dev = ev.has_ino = ev.has_size = 1;
	ev.dev = (uint64_t)a.st.st_dev;
	ev.ino = (uint64_t)a.st.st_ino;
	ev.size = REAL_SIZE;
	ev.path = path;
	ev.has_local_fd = ev.local_fd = 1;
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &ev;
	assert_int_equal(kill(ch->sva_pid, SIGSTOP), 0);
	for (ev.req_id = 1; ev.req_id <= BURST; ev.req_id++) {
		int r;

		while ((r = epsec_conn_send_fd(agent->conn, &env, a.fd)) == -EAGAIN)
			pump(has_msg, agent, 20);
		assert_int_equal(r, 0);
	}
	usleep(300000);
	assert_int_equal(kill(ch->sva_pid, SIGCONT), 0);
	while (verdicts < BURST) {
		int fd;
		epsec_msg *m = next_msg(agent, WAIT_MS, &fd);

		if (!m)
			fail_msg("%u verdicts of %d", verdicts, BURST);
		if (m->body_case == EPSEC__ENVELOPE__BODY_READ) {
			answer_read(agent, m->read, &a);
			reads++;
		} else {
			assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_VERDICT);
			assert_int_equal(m->verdict->action, EPSEC__ACTION__ACTION_ALLOW);
			verdicts++;
		}
		epsec_msg_free(m);
	}
	assert_int_equal(reads, 0);
	assert_int_equal(status_counter(ch, "fds_passed"), BURST);
	close(a.fd);
	peer_free(agent);
}

static int group_setup(void **state)
{
	for (int i = 0; i < NFILES; i++)
		files[i].fd = -1;
	return harness_open("test_fdpass", EPSEC_LOG_ERR);
}

static int group_teardown(void **state)
{
	harness_close();
	return 0;
}

#define T(f, setup) cmocka_unit_test_setup_teardown(f, setup, stop_mux)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fd_reaches_sva, start_mux),
		T(test_sva_without_fd, start_mux),
		T(test_pass_fds_off, start_mux_nofds),
		T(test_no_fd_offer_without_fd_svas, start_mux_tcp_svas),
		T(test_local_fd_without_fd, start_mux),
		T(test_stray_fds, start_mux),
		T(test_redispatch_without_fd, start_mux),
		T(test_redispatch_backlog_keeps_fd, start_mux_window1),
		T(test_backlog_fds_released, start_mux_window1),
		T(test_no_fd_leak, start_mux),
		T(test_untaken_fd_closed, start_mux),
		T(test_libepsec_checks_fd, start_mux),
		T(test_burst_keeps_fds, start_mux),
		T(test_fd_cap, start_mux_nofile200),
	};

	return cmocka_run_group_tests_name("fdpass", tests, group_setup, group_teardown);
}
