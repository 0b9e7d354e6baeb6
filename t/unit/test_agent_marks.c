/* SPDX-License-Identifier: MIT */
/* Unit test of vsep's marks (agent/fanotify.c) on a real tmpfs in a
 * private mount namespace: inode and mount marks, re-marking after a flush
 * (also from several threads at once), new directories marked and swept,
 * directories deleted or moved out forgotten, mounts picked up. A child
 * process opens files; the test answers its permission events and counts
 * them. Needs root (exit 77 otherwise). The tests run in order. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fanotify.h"

static char root[] = "/tmp/test_marks.XXXXXX";
static int fanfd = -1;
static struct vsep_mark tree, mnt;

static void path_of(char *buf, const char *rel)
{
	snprintf(buf, PATH_MAX, "%s/%s", root, rel);
}

static void mkdirs(const char *rel)
{
	char p[PATH_MAX], *s;

	path_of(p, rel);
	for (s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
}

static void put(const char *rel)
{
	char p[PATH_MAX];
	int fd;

	path_of(p, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

/* ------------------------------------------------------------ probing */

/* Every permission event is answered by this thread, the test's own
 * opens in marked directories included: the test never waits on itself. */
static struct {
	pthread_mutex_t lock;
	pthread_t thread;
	atomic_bool stop;
	pid_t child;
	int seen;
} ans = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void on_event(const struct vsep_event *ev, void *arg)
{
	/* counted before the answer lets the opener go on */
	pthread_mutex_lock(&ans.lock);
	if (ev->pid == ans.child && ev->kind == VSEP_KIND_OPEN)
		ans.seen++;
	pthread_mutex_unlock(&ans.lock);
	if (vsep_event_is_perm(ev))
		vsep_fan_respond(fanfd, ev->fd, true);
	close(ev->fd);
}

static void *answerer(void *arg)
{
	struct pollfd pfd = { .fd = fanfd, .events = POLLIN };

	while (!atomic_load(&ans.stop)) {
		if (poll(&pfd, 1, 50) > 0)
			vsep_fan_read(fanfd, on_event, NULL);
	}
	return NULL;
}

/* How many open permission events a child's open of rel raises. */
static int probe(const char *rel)
{
	char path[PATH_MAX];
	int status, seen;
	pid_t pid;

	path_of(path, rel);
	pthread_mutex_lock(&ans.lock);
	ans.seen = 0;
	pid = ans.child = fork();
	if (pid == 0) {
		int fd = open(path, O_RDONLY);

		_exit(fd < 0 ? 1 : 0);
	}
	pthread_mutex_unlock(&ans.lock);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pthread_mutex_lock(&ans.lock);
	seen = ans.seen;
	ans.child = 0;
	pthread_mutex_unlock(&ans.lock);
	return seen;
}

/* ------------------------------------------------------------ sweeping */

struct swept {
	char names[16][64];
	int n;
};

static void on_file(int dirfd, const char *name, void *arg)
{
	struct swept *s = arg;
	struct stat st;

	assert_int_equal(fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	if (s->n < 16)
		snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
}

static bool was_swept(const struct swept *s, const char *name)
{
	for (int i = 0; i < s->n; i++) {
		if (strcmp(s->names[i], name) == 0)
			return true;
	}
	return false;
}

/* Whatever directory events are pending, handled. */
static void drain_dirents(struct swept *s)
{
	struct pollfd pfd = { .fd = vsep_fan_dirent_fd(), .events = POLLIN };

	assert_true(pfd.fd >= 0);
	while (poll(&pfd, 1, 100) > 0)
		assert_int_equal(vsep_fan_dirent_read(fanfd, on_file, s), 0);
}

static void add_mount(const char *path, void *arg)
{
	snprintf(arg, PATH_MAX, "%s", path);
}

static unsigned dirs_now(char *mount)
{
	if (mount)
		mount[0] = '\0';
	return vsep_fan_mark_status(&tree, mount ? add_mount : NULL, mount);
}

/* ------------------------------------------------------------ tests */

static void test_marks(void **state)
{
	static char p[PATH_MAX], m[PATH_MAX]; /* vsep_fan_mark keeps them */

	mkdirs("p/a/b");
	put("p/a/b/f");
	mkdirs("m");
	path_of(m, "m");
	assert_int_equal(mount("marks-m", m, "tmpfs", 0, "size=1m"), 0);
	put("m/g");
	path_of(p, "p");
	assert_int_equal(vsep_fan_mark(fanfd, p, &tree), 0);
	assert_false(tree.mount);
	assert_int_equal(tree.dirs, 3);
	assert_int_equal(vsep_fan_mark(fanfd, m, &mnt), 0);
	assert_true(mnt.mount);
	assert_int_equal(mnt.dirs, 0);
	assert_int_equal(probe("p/a/b/f"), 1);
	assert_int_equal(probe("m/g"), 1);
	put("outside");
	assert_int_equal(probe("outside"), 0);
	assert_int_equal(vsep_fan_mark(fanfd, "/nonexistent/dir", &(struct vsep_mark){ 0 }),
			 -ENOENT);
}

static void test_remark(void **state)
{
	assert_int_equal(fanotify_mark(fanfd, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL), 0);
	assert_int_equal(probe("p/a/b/f"), 0);
	assert_int_equal(probe("m/g"), 1); /* mount marks survive the flush */
	assert_int_equal(vsep_fan_remark(fanfd), 0);
	assert_int_equal(probe("p/a/b/f"), 1);
	assert_int_equal(dirs_now(NULL), 3);
}

static void *remarker(void *arg)
{
	for (int i = 0; i < 50; i++) {
		if (vsep_fan_remark(fanfd) < 0)
			return arg;
		vsep_fan_mark_status(&tree, NULL, NULL);
	}
	return NULL;
}

/* Re-marking from several threads while new directories are marked. */
static void test_remark_threads(void **state)
{
	pthread_t t[4];
	struct swept s = { 0 };
	char rel[64];
	void *failed;
	int i;

	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, remarker, NULL), 0);
	for (i = 0; i < 20; i++) {
		snprintf(rel, sizeof(rel), "p/c%d/d", i);
		mkdirs(rel);
		drain_dirents(&s);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &failed), 0);
		assert_null(failed);
	}
	assert_int_equal(dirs_now(NULL), 3 + 40);
	put("p/c19/d/h");
	assert_int_equal(probe("p/c19/d/h"), 1);
}

/* A tree built where nobody watches, moved in: marked, files swept. */
static void test_new_dir_swept(void **state)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct swept s = { 0 };

	mkdirs("stage/s/t");
	put("stage/s/x");
	put("stage/s/y");
	put("stage/s/t/z");
	path_of(from, "stage/s");
	path_of(to, "p/a/s");
	assert_int_equal(rename(from, to), 0);
	drain_dirents(&s);
	assert_int_equal(s.n, 3);
	assert_true(was_swept(&s, "x") && was_swept(&s, "y") && was_swept(&s, "z"));
	assert_int_equal(dirs_now(NULL), 43 + 2);
	assert_int_equal(probe("p/a/s/t/z"), 1);
	/* known now: a second event for it sweeps nothing again */
	path_of(from, "p/a/s");
	path_of(to, "p/a/s2");
	assert_int_equal(rename(from, to), 0);
	s.n = 0;
	drain_dirents(&s);
	assert_int_equal(s.n, 0);
	assert_int_equal(dirs_now(NULL), 45);
}

static void test_gone(void **state)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct swept s = { 0 };

	path_of(from, "p/a/s2/t/z");
	assert_int_equal(unlink(from), 0);
	path_of(from, "p/a/s2/t");
	assert_int_equal(rmdir(from), 0);
	drain_dirents(&s);
	assert_int_equal(dirs_now(NULL), 44);
	mkdirs("out");
	path_of(from, "p/a/s2");
	path_of(to, "out/s2");
	assert_int_equal(rename(from, to), 0);
	drain_dirents(&s);
	assert_int_equal(dirs_now(NULL), 43);
	assert_int_equal(probe("out/s2/x"), 0); /* its marks went with it */
}

static void test_mounts(void **state)
{
	char m[PATH_MAX], seen[PATH_MAX];
	struct swept s = { 0 };
	struct statx sx;

	mkdirs("p/a/b/m");
	path_of(m, "p/a/b/m");
	assert_int_equal(mount("marks-n", m, "tmpfs", 0, "size=1m"), 0);
	put("p/a/b/m/early");
	assert_int_equal(statx(AT_FDCWD, m, 0, STATX_MNT_ID, &sx), 0);
	vsep_fan_mounts_update(fanfd, &(struct vsep_mount){ (int)sx.stx_mnt_id, m, "tmpfs" }, 1,
			       on_file, &s);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "early");
	dirs_now(seen);
	assert_string_equal(seen, m);
	assert_int_equal(probe("p/a/b/m/early"), 1);
	/* the same table again: nothing new, nothing swept */
	vsep_fan_mounts_update(fanfd, &(struct vsep_mount){ (int)sx.stx_mnt_id, m, "tmpfs" }, 1,
			       on_file, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(umount(m), 0);
	vsep_fan_mounts_update(fanfd, NULL, 0, on_file, &s);
	dirs_now(seen);
	assert_string_equal(seen, "");
}

/* ------------------------------------------------------------ setup */

static int group_setup(void **state)
{
	alarm(120); /* a bug here must fail the test, not hang make check */
	if (geteuid() != 0) {
		printf("SKIP: needs root for fanotify\n");
		exit(77);
	}
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		printf("SKIP: no private mount namespace: %s\n", strerror(errno));
		exit(77);
	}
	if (!mkdtemp(root) || mount("marks-test", root, "tmpfs", 0, "size=16m") < 0)
		return -1;
	if (vsep_fan_init(&fanfd) < 0)
		return -1;
	if (vsep_fan_dirent_fd() < 0) {
		printf("SKIP: the kernel reports no directory entry events\n");
		exit(77);
	}
	return pthread_create(&ans.thread, NULL, answerer, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	atomic_store(&ans.stop, true);
	pthread_join(ans.thread, NULL);
	vsep_fan_fini();
	close(fanfd);
	umount2(root, MNT_DETACH);
	rmdir(root);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_remark),
		cmocka_unit_test(test_remark_threads),
		cmocka_unit_test(test_new_dir_swept),
		cmocka_unit_test(test_gone),
		cmocka_unit_test(test_mounts),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
