/* SPDX-License-Identifier: MIT */
/* unix:// allow_uids (SO_PEERCRED) through the real unix.la: a peer of a
 * uid not allowed is refused and logged while root is served; the option
 * errors; and the X_options groups of config files, which the link layer
 * hands to transports when a daemon passes no options itself. */
#include "config.h"
#include "trtest.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "frame.h"
#include "topts.h"

#define NOBODY 65534

static char dir[64];
static char sock[100];
static char uri[160];

static int setup(void **state)
{
	(void)state;
	trt_mkdir(dir, sizeof(dir));
	chmod(dir, 0755); /* the other uid must reach the socket */
	snprintf(sock, sizeof(sock), "%.60s/s.sock", dir);
	snprintf(uri, sizeof(uri), "unix://%s", sock);
	trt_log_clear();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	trt_rmdir(dir);
	return 0;
}

/* As uid `uid`: connect, send one frame, and report how the far end
 * answered: 0 closed without a byte back, 1 sent something, 2 could not
 * connect, 3 could not become uid. */
static int child_as(uid_t uid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t hdr[4], buf[64];
	int fd;
	ssize_t n;

	if (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(3);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(2);
	epsec_frame_header(hdr, 3);
	if (send(fd, hdr, 4, MSG_NOSIGNAL) != 4 || send(fd, "abc", 3, MSG_NOSIGNAL) != 3)
		_exit(0); /* already closed on us */
	n = read(fd, buf, sizeof(buf));
	_exit(n > 0 ? 1 : 0);
}

static pid_t spawn_as(uid_t uid)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		child_as(uid);
	return pid;
}

/* Run the loop until the child is done; its exit status. */
static int reap(pid_t pid)
{
	int st = 0;
	uint64_t deadline = trt_now_ms() + 5000;

	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (trt_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		trt_run(5);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const config_setting_t *opts(config_t *cfg, const char *text)
{
	const config_setting_t *g = trt_opts(cfg, dir, text);

	assert_non_null(g);
	return g;
}

/* ------------------------------------------------------------ allow_uids */

static void test_uid_refused_root_served(void **state)
{
	struct trt_server s;
	struct trt_peer root;
	config_t cfg;
	struct stat st;

	(void)state;
	if (geteuid() != 0) {
		print_message("needs root to connect as another uid\n");
		skip();
	}
	/* the file mode lets anyone connect: only the uid check stops them */
	assert_int_equal(trt_listen(&s, uri, opts(&cfg, "mode = 0666;\nallow_uids = [ 0 ];")), 0);
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);

	assert_int_equal(reap(spawn_as(NOBODY)), 0);
	assert_int_equal(s.n, 0);
	assert_true(trt_log_has("refused peer uid=65534 gid=65534 pid="));
	assert_true(trt_log_has("uid 65534 is not in allow_uids"));

	assert_int_equal(trt_connect(&root, uri, NULL), 0);
	assert_true(TRT_WAIT(root.welcomes == 1, 3000));
	assert_int_equal(s.n, 1);
	assert_non_null(strstr(s.srv[0].name, "uid=0 "));
	/* one refused peer does not disturb the others */
	assert_int_equal(reap(spawn_as(NOBODY)), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(trt_log_count("is not in allow_uids"), 2);
	assert_int_equal(root.closed, 0);
	trt_peer_close(&root);
	trt_server_close(&s);
	config_destroy(&cfg);
}

static void test_uid_allowed(void **state)
{
	struct trt_server s;
	config_t cfg;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(trt_listen(&s, uri, opts(&cfg, "mode = 0666;\n"
							"allow_uids = [ 0, 65534 ];")), 0);
	/* served: the link layer answers its garbage frame (with ERROR) */
	assert_int_equal(reap(spawn_as(NOBODY)), 1);
	trt_run(50);
	assert_int_equal(s.n, 1);
	assert_false(trt_log_has("allow_uids"));
	trt_server_close(&s);
	config_destroy(&cfg);
}

/* A peer connecting in a loop cannot flood the log. */
static void test_refusals_rate_limited(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct trt_server s;
	config_t cfg;
	int i, fd;

	(void)state;
	assert_int_equal(trt_listen(&s, uri, opts(&cfg, "allow_uids = [ 4242 ];")), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	for (i = 0; i < 25; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		trt_run(2);
		close(fd);
	}
	trt_run(20);
	assert_int_equal(s.n, 0);
	/* 10 a window; 25 in under 10 s span at most two windows */
	assert_true(trt_log_count("is not in allow_uids") >= 10);
	assert_true(trt_log_count("is not in allow_uids") <= 20);
	trt_server_close(&s);
	config_destroy(&cfg);
}

static void expect_error(const char *text, bool listening, const char *msg)
{
	struct trt_server s;
	struct trt_peer p;
	config_t cfg;
	int r;

	trt_log_clear();
	r = listening ? trt_listen(&s, uri, opts(&cfg, text)) : trt_connect(&p, uri, opts(&cfg, text));
	if (r != -EINVAL)
		fail_msg("accepted: %s (%d)", text, r);
	if (!trt_log_has(msg) || !trt_log_has("opts.conf:"))
		fail_msg("%s: expected \"%s\" with FILE:LINE, got \"%s\"", text, msg, trt_log_last());
	config_destroy(&cfg);
	assert_int_equal(access(sock, F_OK), -1);
}

static void test_unix_option_errors(void **state)
{
	(void)state;
	expect_error("allow_uids = 0;", true, "expected a list of integers");
	expect_error("allow_uids = [ ];", true, "an empty list would refuse every peer");
	expect_error("allow_uids = [ -1 ];", true, "expected an integer 0..4294967294");
	expect_error("allow_uid = [ 0 ];", true, "unknown key; expected one of: mode, allow_uids");
	expect_error("mode = 0668;", true, "expected a file mode");
	expect_error("allow_uids = [ 0 ];", false, "unknown key; this group takes no keys");
}

/* ------------------------------------------------------------ X_options */

struct settings {
	struct epsec_strlist agents;
	const char *mux;
	int n;
};

static const struct epsec_conf_key schema[] = {
	{ "agents", EPSEC_CONF_URILIST, true, offsetof(struct settings, agents), 0, 0, NULL },
	{ "mux", EPSEC_CONF_URI, false, offsetof(struct settings, mux), 0, 0, NULL },
	{ "n", EPSEC_CONF_INT, false, offsetof(struct settings, n), 0, 9, NULL },
	{ NULL, 0, false, 0, 0, 0, NULL },
};

static int load(struct epsec_conf *c, struct settings *set, const char *fmt, ...)
{
	char text[2048], path[256];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/daemon.conf", dir);
	trt_write(path, text, 0644);
	memset(set, 0, sizeof(*set));
	trt_log_clear();
	r = epsec_conf_load(c, path, schema, set);
	epsec_strlist_free(&set->agents);
	return r;
}

static void test_options_recorded(void **state)
{
	struct epsec_conf c;
	struct settings set;
	const config_setting_t *g;
	int v;

	(void)state;
	assert_int_equal(load(&c, &set,
			      "agents = [ \"%s\", \"tcp://127.0.0.1:1\" ];\n"
			      "mux = \"vsock://2:48651\";\n"
			      "agents_options = {\n"
			      "  unix = { allow_uids = [ 0, 998 ]; };\n"
			      "};\n"
			      "mux_options = { vsock = { connect_timeout_ms = 500; }; };\n", uri), 0);
	g = epsec_topts_find(uri);
	assert_non_null(g);
	assert_int_equal(config_setting_length(config_setting_get_member(g, "allow_uids")), 2);
	assert_null(epsec_topts_find("tcp://127.0.0.1:1"));
	g = epsec_topts_find("vsock://2:48651");
	assert_non_null(g);
	assert_int_equal(config_setting_lookup_int(g, "connect_timeout_ms", &v), CONFIG_TRUE);
	assert_int_equal(v, 500);
	epsec_conf_free(&c);
	assert_null(epsec_topts_find(uri));
	assert_null(epsec_topts_find("vsock://2:48651"));
}

static void test_options_errors(void **state)
{
	struct epsec_conf c;
	struct settings set;

	(void)state;
	assert_int_equal(load(&c, &set, "agents = [ \"%s\" ];\n"
					"agents_options = { tcp = { }; };\n", uri), -EINVAL);
	assert_true(trt_log_has("daemon.conf:2: agents_options.tcp: no tcp:// URI in agents"));
	epsec_conf_free(&c);
	assert_int_equal(load(&c, &set, "agents = [ \"%s\" ];\n"
					"agents_options = { unix = 5; };\n", uri), -EINVAL);
	assert_true(trt_log_has("agents_options.unix: expected a group of unix:// options"));
	epsec_conf_free(&c);
	assert_int_equal(load(&c, &set, "agents = [ \"%s\" ];\n"
					"agents_options = [ 1 ];\n", uri), -EINVAL);
	assert_true(trt_log_has("agents_options: expected a group with one group per scheme"));
	epsec_conf_free(&c);
	/* only URI keys have X_options */
	assert_int_equal(load(&c, &set, "agents = [ \"%s\" ];\nn_options = { };\n", uri), -EINVAL);
	assert_true(trt_log_has("n_options: unknown key"));
	epsec_conf_free(&c);
	assert_int_equal(load(&c, &set, "agents = [ \"%s\" ];\n"
					"mux_options = { unix = { }; };\n", uri), -EINVAL);
	assert_true(trt_log_has("no unix:// URI in mux"));
	epsec_conf_free(&c);
	assert_null(epsec_topts_find(uri));
}

/* A daemon passes no options: the link layer finds them by URI (for a
 * connect to that URI too, so the client here passes its own, empty). */
static void test_link_uses_recorded_options(void **state)
{
	struct epsec_conf c;
	struct settings set;
	struct trt_server s;
	struct trt_peer p;
	config_t none;

	(void)state;
	assert_int_equal(load(&c, &set, "agents = [ \"%s\" ];\n"
					"agents_options = { unix = { allow_uids = [ 4242 ]; }; };\n",
			      uri), 0);
	assert_int_equal(trt_listen(&s, uri, NULL), 0);
	assert_int_equal(trt_connect(&p, uri, opts(&none, "")), 0);
	config_destroy(&none);
	assert_true(TRT_WAIT(p.closed == 1, 3000));
	assert_int_equal(s.n, 0);
	assert_int_equal(p.welcomes, 0);
	assert_true(trt_log_has("uid 0 is not in allow_uids"));
	trt_server_close(&s);
	epsec_conf_free(&c);
	/* freed: the same URI is open to all again */
	assert_int_equal(trt_listen(&s, uri, NULL), 0);
	assert_int_equal(trt_connect(&p, uri, NULL), 0);
	assert_true(TRT_WAIT(p.welcomes == 1, 3000));
	trt_peer_close(&p);
	trt_server_close(&s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_uid_refused_root_served),
		T(test_uid_allowed),
		T(test_refusals_rate_limited),
		T(test_unix_option_errors),
		T(test_options_recorded),
		T(test_options_errors),
		T(test_link_uses_recorded_options),
	};
	int r;

	trt_init("test_stream");
	r = cmocka_run_group_tests_name("stream", tests, NULL, NULL);
	trt_exit();
	return r;
}
