/* SPDX-License-Identifier: MIT */
/* The real chain from the SVA's side: epsec-mux and epsec-sva run as child
 * processes (tcp:// between them) and this test is the agent on the mux's
 * unix socket. An in-memory EICAR file (built at run time) must come back
 * DELETE from the eicar engine; a 1 MiB pattern file, whose bytes past the
 * inline 64 KiB the SVA can only get with READ/DATA, must be detected by
 * the test_pattern engine, and a copy with its last byte changed must not.
 * Also epsec-sva's control socket and its refusal of bad configs (78). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include <epsec/version.h>
#include "ctl.h"
#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"

#define EICAR_LEN 68
#define BIG (1024u * 1024u)
#define INLINE_BYTES 65536u
#define N_FILES 4
#define CHAIN_TIMEOUT_MS 20000

static const char *builddir;
static char tmp[64];

static uint8_t pattern_at(uint64_t i)
{
	return (uint8_t)(i * 31u + (i >> 11) + 7u);
}

/* ---------------------------------------------------------------- processes */

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmp, name);
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	path_in(path, sizeof(path), name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static pid_t spawn(const char *prog, const char *conf, const char *log)
{
	char exe[512], cpath[256], lpath[256];
	pid_t pid;
	int fd;

	snprintf(exe, sizeof(exe), "%s/%s", builddir, prog);
	path_in(cpath, sizeof(cpath), conf);
	path_in(lpath, sizeof(lpath), log);
	pid = fork();
	if (pid == 0) {
		fd = open(lpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(exe, exe, "-f", "-c", cpath, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Exit status (or 128+signal); -1 if still running after timeout_ms. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	int status;

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	return -1;
}

static int stop_proc(pid_t *pid)
{
	int r;

	if (*pid <= 0)
		return -1;
	kill(*pid, SIGTERM);
	r = wait_exit(*pid, 15000);
	if (r < 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
	return r;
}

static char *slurp(const char *name)
{
	char path[256];
	char *buf = calloc(1, 65537);
	FILE *f;
	size_t n;

	path_in(path, sizeof(path), name);
	f = fopen(path, "r");
	if (!f || !buf) {
		if (f)
			fclose(f);
		return buf;
	}
	n = fread(buf, 1, 65536, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void dump(const char *name)
{
	char *text = slurp(name);

	fprintf(stderr, "----- %s -----\n%s\n", name, text ? text : "");
	free(text);
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* ---------------------------------------------------------------- the agent */

struct file_spec {
	const uint8_t *data;
	size_t size;
	uint64_t resend_at; /* ms; 0 = nothing pending */
};

struct agent {
	struct epsec_loop *loop;
	struct epsec_conn *conn;
	char uri[160];
	bool welcomed;
	struct file_spec files[N_FILES]; /* req_id = index + 1 */
	epsec_msg *verdicts[N_FILES];
	unsigned n_verdicts;
	unsigned reads, bad_reads;
	uint64_t deadline;
};

static void agent_send_event(struct agent *a, unsigned i)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Event e = EPSEC__EVENT__INIT;
	const struct file_spec *f = &a->files[i];

	e.req_id = i + 1;
	e.kind = EPSEC__EVENT_KIND__KIND_CLOSE_WRITE;
	e.has_size = 1;
	e.size = f->size;
	e.has_ino = 1;
	e.ino = 1000 + i;
	e.path = "/chain/test/file";
	e.exe = "/usr/bin/test_sva_chain";
	e.has_inline_data = 1;
	e.inline_data.data = (uint8_t *)f->data;
	e.inline_data.len = f->size < INLINE_BYTES ? f->size : INLINE_BYTES;
	m.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	m.event = &e;
	assert_int_equal(epsec_conn_send(a->conn, &m), 0);
}

static void agent_read(struct agent *a, const Epsec__Read *rd)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;
	const struct file_spec *f;
	uint64_t end;

	a->reads++;
	if (rd->req_id < 1 || rd->req_id > N_FILES || rd->length > BIG) {
		a->bad_reads++;
		return;
	}
	f = &a->files[rd->req_id - 1];
	end = rd->offset + rd->length < f->size ? rd->offset + rd->length : f->size;
	d.req_id = rd->req_id;
	d.offset = rd->offset;
	d.has_data = 1;
	d.data.data = (uint8_t *)f->data + (rd->offset < f->size ? rd->offset : f->size);
	d.data.len = end > rd->offset ? end - rd->offset : 0;
	m.body_case = EPSEC__ENVELOPE__BODY_DATA;
	m.data = &d;
	epsec_conn_send(a->conn, &m);
}

static void agent_verdict(struct agent *a, epsec_msg *m)
{
	uint64_t id = m->verdict->req_id;

	if (id < 1 || id > N_FILES || a->verdicts[id - 1]) {
		epsec_msg_free(m);
		return;
	}
	a->verdicts[id - 1] = m;
	if (++a->n_verdicts == N_FILES)
		epsec_loop_stop(a->loop);
}

static void agent_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct agent *a = arg;
	const Epsec__Error *e;

	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_WELCOME:
		a->welcomed = true;
		for (unsigned i = 0; i < N_FILES; i++)
			agent_send_event(a, i);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		agent_read(a, m->read);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		agent_verdict(a, m);
		return;
	case EPSEC__ENVELOPE__BODY_ERROR:
		/* No SVA yet (it is still connecting): send again shortly. */
		e = m->error;
		if (e->has_req_id && e->req_id >= 1 && e->req_id <= N_FILES)
			a->files[e->req_id - 1].resend_at = epsec_now_ms() + 200;
		break;
	default:
		break;
	}
	epsec_msg_free(m);
}

static void agent_closed(struct epsec_conn *c, int reason, void *arg)
{
	struct agent *a = arg;

	a->conn = NULL;
	a->welcomed = false;
}

static void agent_connect(struct agent *a)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;

	if (epsec_connect(a->loop, a->uri, NULL, EPSEC_ROLE_MUX, &a->conn) < 0) {
		a->conn = NULL;
		return;
	}
	epsec_conn_set_handlers(a->conn, agent_msg, agent_closed, a);
	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	h.id = "chain-agent";
	h.build = "test";
	m.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	m.hello = &h;
	epsec_conn_send(a->conn, &m);
}

static void agent_tick(struct epsec_loop *loop, void *arg)
{
	struct agent *a = arg;
	uint64_t now = epsec_now_ms();

	if (now > a->deadline) {
		epsec_loop_stop(loop);
		return;
	}
	if (!a->conn) {
		agent_connect(a);
		return;
	}
	for (unsigned i = 0; i < N_FILES; i++) {
		if (a->welcomed && a->files[i].resend_at && now >= a->files[i].resend_at) {
			a->files[i].resend_at = 0;
			agent_send_event(a, i);
		}
	}
}

/* ---------------------------------------------------------------- fixture */

struct chain {
	pid_t mux, sva;
	int port;
	bool passed;
	uint8_t *eicar, *big, *big_changed;
	struct agent agent;
};

static void write_configs(struct chain *c, const char *engines)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "DEBUG_LEVEL = 6;\nDEBUG_DEST = 3;\nid = \"chain-mux\";\n"
		 "control = \"%s/mux.ctl\";\nagents = [ \"unix://%s/mux.sock\" ];\n"
		 "svas = [ \"tcp://127.0.0.1:%d\" ];\nagent_log_dir = \"%s/agents\";\n"
		 "svas_options = { tcp = { insecure_plaintext = true; }; };\n",
		 tmp, tmp, c->port, tmp);
	write_file("mux.conf", text);
	snprintf(text, sizeof(text),
		 "DEBUG_LEVEL = 6;\nDEBUG_DEST = 3;\nid = \"chain-sva\";\nuser = \"root\";\n"
		 "control = \"%s/sva.ctl\";\nmux = \"tcp://127.0.0.1:%d\";\nworkers = 3;\n"
		 "mux_options = { tcp = { insecure_plaintext = true; }; };\n"
		 "engine = (\n%s\n);\n",
		 tmp, c->port, engines);
	write_file("sva.conf", text);
}

static int setup(void **state)
{
	struct chain *c = calloc(1, sizeof(*c));

	snprintf(tmp, sizeof(tmp), "/tmp/test_sva_chain.XXXXXX");
	if (!c || !mkdtemp(tmp))
		return -1;
	c->port = free_port();
	*state = c;
	return c->port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct chain *c = *state;
	char cmd[128];

	stop_proc(&c->sva);
	stop_proc(&c->mux);
	if (!c->passed || getenv("EPSEC_TEST_VERBOSE")) {
		dump("mux.log");
		dump("sva.log");
	}
	for (unsigned i = 0; i < N_FILES; i++)
		epsec_msg_free(c->agent.verdicts[i]);
	free(c->eicar);
	free(c->big);
	free(c->big_changed);
	free(c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- tests */

static void make_files(struct chain *c)
{
	static const char small[] = "just a clean little file\n";

	c->eicar = malloc(EICAR_LEN + 1);
	c->big = malloc(BIG);
	c->big_changed = malloc(BIG);
	assert_true(c->eicar && c->big && c->big_changed);
	/* Two pieces, joined here: never whole in the repository. */
	snprintf((char *)c->eicar, EICAR_LEN + 1, "%s%s", "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
		 "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
	for (uint64_t i = 0; i < BIG; i++)
		c->big[i] = pattern_at(i);
	memcpy(c->big_changed, c->big, BIG);
	c->big_changed[BIG - 1] ^= 0x55;
	c->agent.files[0] = (struct file_spec){ .data = c->eicar, .size = EICAR_LEN };
	c->agent.files[1] = (struct file_spec){ .data = c->big, .size = BIG };
	c->agent.files[2] = (struct file_spec){ .data = c->big_changed, .size = BIG };
	c->agent.files[3] = (struct file_spec){ .data = (const uint8_t *)small,
						.size = sizeof(small) - 1 };
}

static void run_agent(struct chain *c)
{
	struct agent *a = &c->agent;
	int timer;

	snprintf(a->uri, sizeof(a->uri), "unix://%s/mux.sock", tmp);
	a->deadline = epsec_now_ms() + CHAIN_TIMEOUT_MS;
	assert_int_equal(epsec_loop_new(&a->loop), 0);
	timer = epsec_loop_add_timer(a->loop, 50, agent_tick, a);
	assert_true(timer > 0);
	epsec_loop_run(a->loop);
	if (a->conn)
		epsec_conn_close(a->conn);
	a->conn = NULL;
	epsec_loop_del_timer(a->loop, timer);
	epsec_loop_free(a->loop);
}

static const Epsec__Verdict *verdict(struct chain *c, unsigned i)
{
	assert_non_null(c->agent.verdicts[i]);
	return c->agent.verdicts[i]->verdict;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, key, &v));
	return v;
}

static void check_status(void)
{
	struct json_object *req = json_object_new_object(), *reply = NULL, *engines, *e0;
	char path[256];

	path_in(path, sizeof(path), "sva.ctl");
	json_object_object_add(req, "cmd", json_object_new_string("status"));
	assert_int_equal(epsec_ctl_call(path, req, 3000, &reply), 0);
	assert_true(json_object_get_boolean(get(reply, "ok")));
	assert_string_equal(json_object_get_string(get(reply, "program")), "epsec-sva");
	assert_string_equal(json_object_get_string(get(reply, "id")), "chain-sva");
	assert_true(json_object_get_boolean(get(get(reply, "mux"), "connected")));
	assert_int_equal(json_object_get_int(get(reply, "workers")), 3);
	engines = get(reply, "engines");
	assert_int_equal(json_object_array_length(engines), 2);
	e0 = json_object_array_get_idx(engines, 0);
	assert_string_equal(json_object_get_string(get(e0, "name")), "eicar");
	assert_string_equal(json_object_get_string(get(e0, "action")), "delete");
	assert_non_null(strstr(json_object_get_string(get(e0, "signatures")), "EICAR-Test-File"));
	assert_true(json_object_get_int(get(get(reply, "counters"), "scanned")) >= N_FILES);
	assert_true(json_object_get_int(get(get(reply, "counters"), "found")) >= 2);
	json_object_put(reply);
	json_object_put(req);
}

static void test_chain(void **state)
{
	struct chain *c = *state;
	char engines[1024];
	const Epsec__Verdict *v;

	snprintf(engines, sizeof(engines),
		 "  { plugin = \"eicar\"; action = \"delete\"; options = { }; },\n"
		 "  { plugin = \"%s/t/unit/test_sva_pattern.la\"; action = \"deny\"; }",
		 builddir);
	write_configs(c, engines);
	make_files(c);
	c->mux = spawn("mux/epsec-mux", "mux.conf", "mux.log");
	c->sva = spawn("sva/epsec-sva", "sva.conf", "sva.log");
	run_agent(c);
	assert_int_equal(c->agent.n_verdicts, N_FILES);

	v = verdict(c, 0);
	assert_int_equal(v->action, EPSEC__ACTION__ACTION_DELETE);
	assert_string_equal(v->engine, "eicar");
	assert_string_equal(v->signature, "EICAR-Test-File");
	assert_true(v->cacheable);
	/* The SVA's first generation is its start time in seconds. */
	assert_true(v->generation > 1000000000u && v->generation <= (uint64_t)time(NULL));
	v = verdict(c, 1);
	assert_int_equal(v->action, EPSEC__ACTION__ACTION_DENY);
	assert_string_equal(v->engine, "test_pattern");
	assert_string_equal(v->signature, "Test-Pattern");
	v = verdict(c, 2);
	assert_int_equal(v->action, EPSEC__ACTION__ACTION_ALLOW);
	assert_true(v->cacheable);
	v = verdict(c, 3);
	assert_int_equal(v->action, EPSEC__ACTION__ACTION_ALLOW);
	/* 2 files x (1 MiB - 64 KiB) came through READ/DATA. */
	assert_true(c->agent.reads >= 2);
	assert_int_equal(c->agent.bad_reads, 0);

	check_status();
	assert_int_equal(stop_proc(&c->sva), 0);
	c->passed = true;
}

/* epsec-sva refuses `engines` (the engine list's body) with exit 78 and a
 * log line containing `expect`. */
static void refuses(struct chain *c, const char *engines, const char *expect)
{
	char *log;
	int r;

	write_configs(c, engines);
	c->sva = spawn("sva/epsec-sva", "sva.conf", "sva.log");
	r = wait_exit(c->sva, 10000);
	c->sva = 0;
	log = slurp("sva.log");
	if (r != 78 || !strstr(log, expect))
		fprintf(stderr, "exit %d, wanted 78 and \"%s\" in:\n%s\n", r, expect, log);
	assert_int_equal(r, 78);
	assert_non_null(strstr(log, expect));
	free(log);
}

static void test_config_errors(void **state)
{
	struct chain *c = *state;

	refuses(c, "{ plugn = \"eicar\"; action = \"delete\"; }", "plugn");
	refuses(c, "{ plugin = \"eicar\"; action = \"explode\"; }", "explode");
	refuses(c, "{ plugin = \"eicar\"; action = \"delete\"; options = { depth = 3; }; }",
		"depth");
	refuses(c, "{ plugin = \"no_such_engine\"; action = \"deny\"; }", "no_such_engine");
	refuses(c, "", "engine");
	c->passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
	};
	int r;

	builddir = getenv("top_builddir") ? getenv("top_builddir") : ".";
	signal(SIGPIPE, SIG_IGN);
	epsec_log_open("test_sva_chain", EPSEC_DEST_STDERR, EPSEC_LOG_ERR);
	if (epsec_loader_init(NULL) < 0)
		return 1;
	r = cmocka_run_group_tests_name("epsec-sva chain", tests, NULL, NULL);
	epsec_loader_exit();
	return r;
}
