/* SPDX-License-Identifier: MIT */
/* Unit test of the held events table: every event ends exactly once (one
 * answer for permission events, fd closed) on every path: verdict, timeout
 * sweep, drain, table full; close_write delete checks the inode. The
 * "fanotify fd" is a pipe, so the answers held.c writes can be read back. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "held.h"
#include "log.h"
#include "loop.h"

static int answers[2]; /* [0] read end: what held.c "answered" */
static char dir[] = "/tmp/test_held.XXXXXX";

static int setup(void **state)
{
	if (pipe2(answers, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	return vsep_held_init(answers[1], 8, 50, 60000);
}

static int teardown(void **state)
{
	vsep_held_drain(VSEP_POLICY_ALLOW, VSEP_WHY_SHUTDOWN);
	vsep_held_fini();
	close(answers[0]);
	close(answers[1]);
	return 0;
}

static struct vsep_event open_event(enum vsep_kind kind, const char *path, struct stat *st)
{
	struct vsep_event ev = { .fd = open(path, O_RDONLY | O_CLOEXEC), .pid = 4242,
				 .kind = kind };

	assert_true(ev.fd >= 0);
	assert_int_equal(fstat(ev.fd, st), 0);
	return ev;
}

static uint64_t hold(enum vsep_kind kind, const char *path, struct vsep_event *out)
{
	struct stat st;
	uint64_t id = 0;

	*out = open_event(kind, path, &st);
	assert_int_equal(vsep_held_add(out, &st, path, &id), 0);
	assert_true(id > 0);
	return id;
}

/* The next answer written, or -1 when there is none. */
static int next_answer(int *fd)
{
	struct fanotify_response r;

	if (read(answers[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
		return -1;
	*fd = r.fd;
	return (int)r.response;
}

static bool fd_closed(int fd)
{
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

static void verdict_answers_once(void **state)
{
	struct vsep_outcome allow = { .action = VSEP_ACT_ALLOW, .why = VSEP_WHY_VERDICT };
	struct vsep_outcome deny = { .action = VSEP_ACT_DENY, .why = VSEP_WHY_VERDICT };
	struct vsep_event a, b;
	uint64_t ia = hold(VSEP_KIND_OPEN, "/dev/null", &a);
	uint64_t ib = hold(VSEP_KIND_EXEC, "/dev/null", &b);
	int fd;

	assert_int_equal(vsep_held_count(), 2);
	assert_int_equal(vsep_held_resolve(ia, &allow), 0);
	assert_int_equal(next_answer(&fd), FAN_ALLOW);
	assert_int_equal(fd, a.fd);
	assert_true(fd_closed(a.fd));
	assert_int_equal(vsep_held_resolve(ia, &deny), -ENOENT);
	assert_int_equal(next_answer(&fd), -1);
	assert_int_equal(vsep_held_resolve(ib, &deny), 0);
	assert_int_equal(next_answer(&fd), FAN_DENY);
	assert_int_equal(fd, b.fd);
	assert_int_equal(vsep_held_count(), 0);
}

static void sweep_ends_only_expired(void **state)
{
	struct vsep_event a;
	unsigned long before = atomic_load(&vsep_stats.timeouts);
	uint64_t now = epsec_now_ms();
	int fd;

	hold(VSEP_KIND_OPEN, "/dev/null", &a);
	vsep_held_sweep(now, VSEP_POLICY_DENY);
	assert_int_equal(next_answer(&fd), -1);
	assert_int_equal(vsep_held_count(), 1);
	vsep_held_sweep(now + 1000, VSEP_POLICY_DENY);
	assert_int_equal(next_answer(&fd), FAN_DENY);
	assert_int_equal(fd, a.fd);
	assert_true(fd_closed(a.fd));
	assert_int_equal(atomic_load(&vsep_stats.timeouts), before + 1);
	vsep_held_sweep(now + 2000, VSEP_POLICY_DENY);
	assert_int_equal(next_answer(&fd), -1);
}

static void drain_and_full_table(void **state)
{
	struct vsep_event ev[8], extra;
	struct stat st;
	uint64_t id;
	int i, fd, seen = 0;

	for (i = 0; i < 8; i++)
		hold(VSEP_KIND_OPEN, "/dev/null", &ev[i]);
	extra = open_event(VSEP_KIND_OPEN, "/dev/null", &st);
	assert_int_equal(vsep_held_add(&extra, &st, "/dev/null", &id), -ENOSPC);
	close(extra.fd);
	vsep_held_drain(VSEP_POLICY_ALLOW, VSEP_WHY_DISCONNECT);
	while (next_answer(&fd) == FAN_ALLOW)
		seen++;
	assert_int_equal(seen, 8);
	for (i = 0; i < 8; i++)
		assert_true(fd_closed(ev[i].fd));
	assert_int_equal(vsep_held_count(), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void close_write_delete_checks_inode(void **state)
{
	struct vsep_outcome del = { .action = VSEP_ACT_DELETE, .why = VSEP_WHY_VERDICT,
				    .signature = "Test.Sig" };
	char path[256], other[256];
	struct vsep_event a, b;
	uint64_t id;
	int fd;

	snprintf(path, sizeof(path), "%s/bad", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	write_file(path, "bad");
	id = hold(VSEP_KIND_CLOSE_WRITE, path, &a);
	assert_int_equal(vsep_held_resolve(id, &del), 0);
	assert_int_equal(next_answer(&fd), -1); /* close_write gets no answer */
	assert_true(fd_closed(a.fd));
	assert_int_equal(access(path, F_OK), -1);

	/* Renamed over after the event: the path names another file now. */
	write_file(path, "bad");
	id = hold(VSEP_KIND_CLOSE_WRITE, path, &b);
	write_file(other, "innocent");
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(vsep_held_resolve(id, &del), 0);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
}

static void pread_held_and_unknown(void **state)
{
	struct vsep_outcome allow = { .action = VSEP_ACT_ALLOW, .why = VSEP_WHY_VERDICT };
	char path[256], buf[16] = { 0 };
	struct vsep_event a;
	uint64_t id;

	snprintf(path, sizeof(path), "%s/data", dir);
	write_file(path, "0123456789");
	id = hold(VSEP_KIND_OPEN, path, &a);
	assert_int_equal(vsep_held_pread(id, buf, 4, 3), 4);
	assert_memory_equal(buf, "3456", 4);
	assert_int_equal(vsep_held_pread(id + 1000, buf, 4, 0), -ENOENT);
	assert_int_equal(vsep_held_resolve(id, &allow), 0);
	assert_int_equal(vsep_held_pread(id, buf, 4, 0), -ENOENT);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(verdict_answers_once, setup, teardown),
		cmocka_unit_test_setup_teardown(sweep_ends_only_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(drain_and_full_table, setup, teardown),
		cmocka_unit_test_setup_teardown(close_write_delete_checks_inode, setup, teardown),
		cmocka_unit_test_setup_teardown(pread_held_and_unknown, setup, teardown),
	};
	int failed;

	epsec_log_open("test_held", EPSEC_DEST_STDERR, EPSEC_LOG_ERR);
	if (!mkdtemp(dir))
		return 1;
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return failed;
}
