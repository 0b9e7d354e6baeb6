/* SPDX-License-Identifier: MIT */
/* libcore/daemon.c: the command line every daemon shares (checked in a
 * child, since -v/-h/bad options exit) and signals delivered through the
 * loop: SIGHUP to the callback, SIGTERM stopping the loop. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <epsec/version.h>

#include "daemon.h"
#include "loop.h"

/* Run epsec_daemon_args in a child; returns its exit status and what it
 * printed on stdout (and stderr) in out. */
static int run_args(int argc, char **argv, char *out, size_t len)
{
	int pipefd[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(pipefd), 0);
	/* The child exits through stdio: it must not flush our output too. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct epsec_daemon d;

		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		epsec_daemon_args(&d, argc, argv, "testd", "/etc/testd.conf");
		_exit(100 + d.foreground);
	}
	close(pipefd[1]);
	while (n + 1 < len && (r = read(pipefd[0], out + n, len - n - 1)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void version_line(void **state)
{
	char *argv[] = { "testd", "-v", NULL }, out[512], want[512];

	assert_int_equal(run_args(2, argv, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "testd %s (build %s)\n", EPSEC_VERSION, EPSEC_BUILD_ID);
	assert_string_equal(out, want);
}

static void usage_and_errors(void **state)
{
	char *help[] = { "testd", "-h", NULL }, *bad[] = { "testd", "-x", NULL },
	     *extra[] = { "testd", "stray", NULL }, *noarg[] = { "testd", "-c", NULL }, out[2048];

	assert_int_equal(run_args(2, help, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "Usage: testd [-c FILE] [-f] [-t] [-v] [-h]"));
	assert_non_null(strstr(out, "-t       check the configuration"));
	assert_non_null(strstr(out, "/etc/testd.conf"));
	assert_int_equal(run_args(2, bad, out, sizeof(out)), 64);
	assert_non_null(strstr(out, "Usage: testd"));
	assert_int_equal(run_args(2, extra, out, sizeof(out)), 64);
	assert_non_null(strstr(out, "unexpected argument: stray"));
	assert_int_equal(run_args(2, noarg, out, sizeof(out)), 64);
}

static void options_parsed(void **state)
{
	char *argv[] = { "testd", "-f", "-c", "/tmp/x.conf", NULL }, *none[] = { "testd", NULL };
	char *test[] = { "testd", "-t", NULL };
	struct epsec_daemon d;
	char out[64];

	epsec_daemon_args(&d, 2, test, "testd", "/etc/testd.conf");
	assert_true(d.test_config);
	epsec_daemon_args(&d, 4, argv, "testd", "/etc/testd.conf");
	assert_true(d.foreground);
	assert_false(d.test_config);
	assert_string_equal(d.conf_path, "/tmp/x.conf");
	assert_string_equal(d.program, "testd");
	epsec_daemon_args(&d, 1, none, "testd", "/etc/testd.conf");
	assert_false(d.foreground);
	assert_string_equal(d.conf_path, "/etc/testd.conf");
	assert_int_equal(run_args(2, (char *[]){ "testd", "-f", NULL }, out, sizeof(out)), 101);
}

static int hups;

static void on_hup(void *arg)
{
	hups++;
	/* Raised from the loop: a SIGTERM arriving now must stop it. */
	kill(getpid(), SIGTERM);
}

static void send_hup(struct epsec_loop *loop, void *arg)
{
	kill(getpid(), SIGHUP);
}

static void watchdog(struct epsec_loop *loop, void *arg)
{
	*(int *)arg = 1;
	epsec_loop_stop(loop);
}

static void signals_through_loop(void **state)
{
	struct epsec_daemon d = { .program = "testd", .conf_path = "/x", .foreground = true };
	struct epsec_loop *loop;
	int timed_out = 0;

	assert_int_equal(epsec_daemon_block_signals(), 0);
	assert_int_equal(epsec_loop_new(&loop), 0);
	assert_int_equal(epsec_daemon_start(&d, loop, on_hup, NULL), 0);
	assert_int_equal(epsec_loop_post(loop, send_hup, NULL), 0);
	assert_true(epsec_loop_add_timer(loop, 3000, watchdog, &timed_out) > 0);
	assert_int_equal(epsec_loop_run(loop), 0);
	assert_int_equal(timed_out, 0);
	assert_int_equal(hups, 1);
	/* SIGPIPE is ignored: a write to a closed pipe is just EPIPE. */
	{
		int p[2];

		assert_int_equal(pipe(p), 0);
		close(p[0]);
		assert_int_equal(write(p[1], "x", 1), -1);
		assert_int_equal(errno, EPIPE);
		close(p[1]);
	}
	epsec_loop_free(loop);
}

/* The detached process: a session leader in /, stdio on /dev/null, and
 * still stopped by SIGTERM through its loop. It reports to `report`. */
static void detached_child(const char *report)
{
	struct epsec_daemon d = { .program = "testd", .conf_path = "/x", .foreground = false };
	struct epsec_loop *loop;
	char cwd[256] = "", out[256] = "", line[1024];
	FILE *f;
	ssize_t n;

	if (epsec_daemon_block_signals() < 0 || epsec_loop_new(&loop) < 0 ||
	    epsec_daemon_start(&d, loop, NULL, NULL) < 0)
		_exit(3);
	/* From here on, this is the detached grandchild. */
	if (!getcwd(cwd, sizeof(cwd)))
		_exit(4);
	n = readlink("/proc/self/fd/1", out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	snprintf(line, sizeof(line), "%d %d %s %s\n", (int)getpid(), (int)getsid(0), cwd, out);
	f = fopen(report, "w");
	if (!f)
		_exit(5);
	fputs(line, f);
	fclose(f);
	epsec_loop_run(loop);
	f = fopen(report, "a");
	if (f) {
		fputs("stopped\n", f);
		fclose(f);
	}
	epsec_loop_free(loop);
	_exit(0);
}

static void detaches(void **state)
{
	char report[] = "/tmp/test_daemon.XXXXXX", buf[1024] = "", cwd[256], out[256];
	int fd = mkstemp(report), status, pid = 0, sid = 0;
	pid_t child;
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	unlink(report);
	fflush(stdout);
	fflush(stderr);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		detached_child(report);
	/* The process we started returns at once; its child lives on. */
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (int i = 0; i < 300 && !pid; i++) {
		usleep(10000);
		f = fopen(report, "r");
		if (f && fgets(buf, sizeof(buf), f) && strchr(buf, '\n'))
			assert_int_equal(sscanf(buf, "%d %d %255s %255s", &pid, &sid, cwd, out), 4);
		if (f)
			fclose(f);
	}
	assert_true(pid > 0);
	assert_int_not_equal(pid, child);
	assert_int_equal(sid, pid);
	assert_string_equal(cwd, "/");
	assert_string_equal(out, "/dev/null");
	assert_int_equal(kill(pid, SIGTERM), 0);
	for (int i = 0; i < 300 && kill(pid, 0) == 0; i++)
		usleep(10000);
	f = fopen(report, "r");
	assert_non_null(f);
	buf[0] = '\0';
	while (fgets(buf, sizeof(buf), f) && strcmp(buf, "stopped\n"))
		;
	fclose(f);
	assert_string_equal(buf, "stopped\n");
	unlink(report);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(version_line),
		cmocka_unit_test(usage_and_errors),
		cmocka_unit_test(options_parsed),
		cmocka_unit_test(signals_through_loop),
		cmocka_unit_test(detaches),
	};

	return cmocka_run_group_tests_name("daemon", tests, NULL, NULL);
}
