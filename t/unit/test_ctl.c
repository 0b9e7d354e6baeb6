/* SPDX-License-Identifier: MIT */
/* libcore/ctl.c: a real control socket served by a loop thread, talked to
 * by epsec_ctl_call and by raw clients that misbehave (bad JSON, huge
 * lines, never reading their replies). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "log.h"
#include "loop.h"

static char dir[] = "/tmp/test_ctl.XXXXXX";
static char sock_path[PATH_MAX];
static struct epsec_loop *loop;
static struct epsec_ctl *ctl;
static pthread_t loop_thread;
static int handled;

static struct json_object *handler(const char *cmd, struct json_object *req, void *arg)
{
	struct json_object *r = json_object_new_object(), *payload;

	handled++;
	if (!strcmp(cmd, "status")) {
		json_object_object_add(r, "ok", json_object_new_boolean(1));
		json_object_object_add(r, "program", json_object_new_string(arg));
	} else if (!strcmp(cmd, "echo") && json_object_object_get_ex(req, "data", &payload)) {
		json_object_object_add(r, "ok", json_object_new_boolean(1));
		json_object_object_add(r, "data", json_object_get(payload));
	} else {
		json_object_object_add(r, "ok", json_object_new_boolean(0));
		json_object_object_add(r, "error", json_object_new_string("unknown command"));
	}
	return r;
}

static void *run_loop(void *arg)
{
	epsec_loop_run(loop);
	return NULL;
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	/* The parent directory does not exist yet: listen creates it. */
	snprintf(sock_path, sizeof(sock_path), "%s/run/epsec/test.ctl", dir);
	epsec_log_open("test_ctl", EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	if (epsec_loop_new(&loop) < 0)
		return -1;
	if (epsec_ctl_listen(loop, sock_path, handler, "test-program", &ctl) < 0)
		return -1;
	return pthread_create(&loop_thread, NULL, run_loop, NULL);
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	struct stat st;

	epsec_loop_stop(loop);
	pthread_join(loop_thread, NULL);
	epsec_ctl_close(ctl);
	if (stat(sock_path, &st) == 0)
		return -1; /* close removes the socket */
	epsec_loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* ------------------------------------------------------------ raw clients */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void raw_send(int fd, const char *text, size_t len)
{
	assert_int_equal(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* One line (without newline), or NULL at EOF; times out as a failure. */
static char *raw_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_int_equal(poll(&p, 1, 3000), 1);
		r = recv(fd, buf + n, 1, 0);
		/* Dropped with our unread bytes in its queue: a reset, after
		 * everything it sent us. */
		if (r < 0 && errno == ECONNRESET)
			r = 0;
		assert_true(r >= 0);
		if (r == 0)
			return n ? buf : NULL;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return buf;
		}
		n++;
	}
	fail_msg("reply line too long");
	return NULL;
}

static void assert_reply(const char *line, bool ok, const char *error_part)
{
	struct json_object *r = json_tokener_parse(line), *v;

	assert_non_null(r);
	assert_true(json_object_object_get_ex(r, "ok", &v));
	assert_int_equal(json_object_get_boolean(v), ok);
	if (error_part) {
		assert_true(json_object_object_get_ex(r, "error", &v));
		if (!strstr(json_object_get_string(v), error_part))
			fail_msg("error \"%s\" lacks \"%s\"", json_object_get_string(v), error_part);
	}
	json_object_put(r);
}

/* ------------------------------------------------------------ tests */

static void call_status(void **state)
{
	struct json_object *req = json_object_new_object(), *reply = NULL, *v;
	struct stat st;
	char parent[PATH_MAX];

	assert_int_equal(stat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	snprintf(parent, sizeof(parent), "%s/run/epsec", dir);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755 & ~umask(022));

	json_object_object_add(req, "cmd", json_object_new_string("status"));
	assert_int_equal(epsec_ctl_call(sock_path, req, 2000, &reply), 0);
	assert_true(json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(reply, "program", &v));
	assert_string_equal(json_object_get_string(v), "test-program");
	json_object_put(reply);
	json_object_put(req);
}

static void bad_requests_keep_serving(void **state)
{
	static const char input[] =
		"not json\n"
		"{\"nocmd\": 1}\n"
		"[1, 2]\n"
		"{\"cmd\": 5}\n"
		"{\"cmd\": \"status\"} trailing\n"
		"\n"
		"{\"cmd\": \"nope\"}\n"
		"{\"cmd\": \"status\"}\r\n";
	char buf[4096];
	int fd = raw_connect();

	raw_send(fd, input, sizeof(input) - 1);
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "JSON");
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "\"cmd\"");
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "JSON");
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "\"cmd\"");
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "JSON");
	/* The blank line gets no reply. */
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "unknown command");
	assert_reply(raw_line(fd, buf, sizeof(buf)), true, NULL);

	/* A last request without newline, then end of input. */
	raw_send(fd, "{\"cmd\":\"status\"}", 16);
	shutdown(fd, SHUT_WR);
	assert_reply(raw_line(fd, buf, sizeof(buf)), true, NULL);
	assert_null(raw_line(fd, buf, sizeof(buf)));
	close(fd);
}

static void oversized_request_dropped(void **state)
{
	size_t len = 70000;
	char *big = malloc(len), buf[4096];
	int fd = raw_connect();

	memset(big, 'x', len);
	raw_send(fd, big, len);
	assert_reply(raw_line(fd, buf, sizeof(buf)), false, "too long");
	assert_null(raw_line(fd, buf, sizeof(buf))); /* dropped */
	close(fd);
	free(big);

	/* Exactly 64 KiB of request is still served. */
	big = malloc(65536 + 1);
	memset(big, ' ', 65536);
	memcpy(big, "{\"cmd\":\"status\"}", 16);
	big[65536] = '\n';
	fd = raw_connect();
	raw_send(fd, big, 65537);
	assert_reply(raw_line(fd, buf, sizeof(buf)), true, NULL);
	close(fd);
	free(big);
}

/* Count the complete lines in buf, keeping the unfinished tail. */
static int count_lines(char *buf, size_t *len)
{
	int n = 0;

	for (char *nl; (nl = memchr(buf, '\n', *len));) {
		n++;
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len);
	}
	return n;
}

/* Send until the kernel refuses more; returns whole requests sent and
 * leaves *off at the bytes of the next one already sent. */
static int fill(int fd, const char *req, size_t reqlen, size_t *off)
{
	int sent = 0;

	for (;;) {
		ssize_t n = send(fd, req + *off, reqlen - *off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			return sent;
		}
		*off += (size_t)n;
		if (*off == reqlen) {
			*off = 0;
			sent++;
		}
	}
}

/* A client that sends many requests and reads nothing must not stop the
 * daemon answering others; it gets every reply once it reads. */
/* Slowloris: a client that never finishes a request is dropped within a
 * few seconds, and the daemon goes on answering others meanwhile. */
static void idle_client_dropped(void **state)
{
	char buf[256];
	int fd = raw_connect();
	struct pollfd p = { .fd = fd, .events = POLLIN };

	raw_send(fd, "{\"cmd\"", 6);
	assert_int_equal(poll(&p, 1, 8000), 1);
	assert_null(raw_line(fd, buf, sizeof(buf)));
	close(fd);
}

/* Past 64 clients at once, the next is told so and closed; the rest are
 * still served. */
static void too_many_clients(void **state)
{
	struct json_object *status = json_object_new_object(), *reply = NULL;
	int fds[64], extra;
	char buf[256];

	for (int i = 0; i < 64; i++)
		fds[i] = raw_connect();
	usleep(200000); /* the loop accepts them */
	extra = raw_connect();
	assert_string_equal(raw_line(extra, buf, sizeof(buf)),
			    "{\"ok\":false,\"error\":\"too many control clients\"}");
	close(extra);
	for (int i = 0; i < 64; i++)
		close(fds[i]);
	usleep(200000);
	json_object_object_add(status, "cmd", json_object_new_string("status"));
	assert_int_equal(epsec_ctl_call(sock_path, status, 2000, &reply), 0);
	json_object_put(reply);
	json_object_put(status);
}

static void slow_client_does_not_block(void **state)
{
	enum { RBUF = 1 << 16 };
	char data[8192], req[8300], *rbuf = malloc(RBUF);
	struct json_object *status = json_object_new_object(), *reply = NULL;
	int fd = raw_connect(), sent, got = 0;
	size_t reqlen, off = 0, rlen = 0;
	bool done_sending = false;

	memset(data, 'a', sizeof(data) - 1);
	data[sizeof(data) - 1] = '\0';
	reqlen = (size_t)snprintf(req, sizeof(req), "{\"cmd\":\"echo\",\"data\":\"%s\"}\n", data);
	sent = fill(fd, req, reqlen, &off);
	assert_true(sent > 20);

	json_object_object_add(status, "cmd", json_object_new_string("status"));
	assert_int_equal(epsec_ctl_call(sock_path, status, 2000, &reply), 0);
	json_object_put(reply);
	json_object_put(status);

	/* Finish the partial request while reading, then read to the end. */
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (done_sending ? 0 : POLLOUT) };
		ssize_t n;

		if (!done_sending && off == 0) {
			done_sending = true;
			shutdown(fd, SHUT_WR);
			continue;
		}
		assert_int_equal(poll(&p, 1, 3000), 1);
		if (p.revents & POLLOUT) {
			n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0 && (off += (size_t)n) == reqlen) {
				off = 0;
				sent++;
			}
		}
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = recv(fd, rbuf + rlen, RBUF - rlen, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		rlen += (size_t)n;
		got += count_lines(rbuf, &rlen);
	}
	assert_true(done_sending);
	assert_int_equal(got, sent);
	close(fd);
	free(rbuf);
}

static void call_errors(void **state)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[PATH_MAX];
	uint64_t start;
	int fd;

	json_object_object_add(req, "cmd", json_object_new_string("status"));
	snprintf(path, sizeof(path), "%s/nobody.ctl", dir);
	assert_int_equal(epsec_ctl_call(path, req, 500, &reply), -ENOENT);

	/* A listener that never answers. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	start = epsec_now_ms();
	assert_int_equal(epsec_ctl_call(path, req, 200, &reply), -ETIMEDOUT);
	assert_true(epsec_now_ms() - start >= 190);
	assert_null(reply);
	close(fd);
	/* Now stale: nobody listens, connect is refused. */
	assert_int_equal(epsec_ctl_call(path, req, 200, &reply), -ECONNREFUSED);
	json_object_put(req);
}

static int noop(void **state)
{
	return 0;
}

/* Runs outside the shared loop thread: its own loop, never run. */
static void listen_paths(void **state)
{
	struct epsec_loop *l;
	struct epsec_ctl *c = NULL, *c2 = NULL;
	char d[] = "/tmp/test_ctl2.XXXXXX", p[PATH_MAX], cmd[PATH_MAX];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	FILE *f;
	int fd;

	assert_non_null(mkdtemp(d));
	assert_int_equal(epsec_loop_new(&l), 0);
	/* A stale socket (nobody listening) is replaced. */
	snprintf(p, sizeof(p), "%s/stale.ctl", d);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, p);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(epsec_ctl_listen(l, p, handler, "x", &c), 0);
	/* A live one is not taken over. */
	assert_int_equal(epsec_ctl_listen(l, p, handler, "x", &c2), -EADDRINUSE);
	epsec_ctl_close(c);
	/* Nor is a file that is not a socket. */
	snprintf(p, sizeof(p), "%s/file.ctl", d);
	f = fopen(p, "w");
	fclose(f);
	assert_int_equal(epsec_ctl_listen(l, p, handler, "x", &c2), -EEXIST);
	memset(p, 'a', sizeof(p) - 1);
	p[sizeof(p) - 1] = '\0';
	p[0] = '/';
	assert_int_equal(epsec_ctl_listen(l, p, handler, "x", &c2), -ENAMETOOLONG);
	epsec_loop_free(l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(call_status),
		cmocka_unit_test(bad_requests_keep_serving),
		cmocka_unit_test(oversized_request_dropped),
		cmocka_unit_test(slow_client_does_not_block),
		cmocka_unit_test(idle_client_dropped),
		cmocka_unit_test(too_many_clients),
		cmocka_unit_test(call_errors),
		cmocka_unit_test_setup(listen_paths, noop),
	};

	return cmocka_run_group_tests_name("ctl", tests, setup, teardown);
}
