/* SPDX-License-Identifier: MIT */
/* Unit test of vsep's quarantine: a file moves in (by rename, and by copy
 * across filesystems), is listed with its record, comes back with its
 * content, owner, mode and mtime, never over an existing file, and can be
 * deleted; a path that names another inode, a bad ID and a directory that
 * is not the agent's are refused, and so is a path with a directory swapped
 * for a symlink (both ways), a restore where the owner could not create the
 * file, and a record with uid -1. Real files in /tmp (and /dev/shm); run
 * twice, the second time with openat2 made ENOSYS by seccomp. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <cmocka.h>

#include "quarantine.h"

#define TOP_TEMPLATE "/tmp/test_quarantine.XXXXXX"

static char top[] = TOP_TEMPLATE;
static char qdir[256];

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *read_file(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static int setup(void **state)
{
	memcpy(top, TOP_TEMPLATE, sizeof(top));
	if (!mkdtemp(top))
		return -1;
	/* Two levels that do not exist yet: init creates them. */
	snprintf(qdir, sizeof(qdir), "%s/var/quarantine", top);
	vsep_quarantine_init(qdir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* Quarantine `path` as it is now; returns the ID in id. */
static int quarantine(const char *path, char id[VSEP_QUARANTINE_ID_LEN])
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return vsep_quarantine_file(path, st.st_dev, st.st_ino, "eicar", "Test-Sig", id);
}

static size_t count(void)
{
	int err = 0;
	struct json_object *items = vsep_quarantine_list(&err);
	size_t n;

	assert_non_null(items);
	n = json_object_array_length(items);
	json_object_put(items);
	return n;
}

static void test_dir_made_private(void **state)
{
	struct stat st;

	assert_int_equal(stat(qdir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(st.st_uid, geteuid());
}

static void test_round_trip(void **state)
{
	char path[PATH_MAX], data[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN], *back = NULL;
	const struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 123456789 } };
	struct json_object *items, *it, *v;
	struct stat st;
	int err = 0;

	snprintf(path, sizeof(path), "%s/victim.txt", top);
	write_file(path, "infected content\n", 0640);
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_int_equal(quarantine(path, id), 0);
	assert_int_equal(access(path, F_OK), -1);

	snprintf(data, sizeof(data), "%s/%s.data", qdir, id);
	assert_int_equal(stat(data, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0400);
	assert_string_equal(read_file(data), "infected content\n");

	items = vsep_quarantine_list(&err);
	assert_non_null(items);
	assert_int_equal(json_object_array_length(items), 1);
	it = json_object_array_get_idx(items, 0);
	assert_true(json_object_object_get_ex(it, "path", &v));
	assert_string_equal(json_object_get_string(v), path);
	assert_true(json_object_object_get_ex(it, "signature", &v));
	assert_string_equal(json_object_get_string(v), "Test-Sig");
	assert_true(json_object_object_get_ex(it, "engine", &v));
	assert_string_equal(json_object_get_string(v), "eicar");
	assert_true(json_object_object_get_ex(it, "size", &v));
	assert_int_equal(json_object_get_int64(v), 17);
	assert_true(json_object_object_get_ex(it, "id", &v));
	assert_string_equal(json_object_get_string(v), id);
	json_object_put(items);

	assert_int_equal(vsep_quarantine_restore(id, &back), 0);
	assert_string_equal(back, path);
	free(back);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	assert_string_equal(read_file(path), "infected content\n");
	assert_int_equal(count(), 0);
	assert_int_equal(access(data, F_OK), -1);
	unlink(path);
}

static void test_restore_never_overwrites(void **state)
{
	char path[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN], *back = NULL;

	snprintf(path, sizeof(path), "%s/again.txt", top);
	write_file(path, "bad\n", 0600);
	assert_int_equal(quarantine(path, id), 0);
	write_file(path, "a new file, not to be replaced\n", 0644);
	assert_int_equal(vsep_quarantine_restore(id, &back), -EEXIST);
	assert_null(back);
	assert_string_equal(read_file(path), "a new file, not to be replaced\n");
	assert_int_equal(count(), 1);

	assert_int_equal(vsep_quarantine_delete(id), 0);
	assert_int_equal(count(), 0);
	assert_int_equal(vsep_quarantine_delete(id), -ENOENT);
	assert_int_equal(vsep_quarantine_restore(id, &back), -ENOENT);
	unlink(path);
}

static void test_other_inode_left_alone(void **state)
{
	char path[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN];
	struct stat st;

	snprintf(path, sizeof(path), "%s/swapped.txt", top);
	write_file(path, "scanned\n", 0600);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(vsep_quarantine_file(path, st.st_dev, st.st_ino + 1, "e", "s", id),
			 -ESTALE);
	assert_string_equal(read_file(path), "scanned\n");
	assert_int_equal(count(), 0);
	unlink(path);
	assert_int_equal(vsep_quarantine_file(path, st.st_dev, st.st_ino, "e", "s", id), -ENOENT);
	assert_int_equal(count(), 0);
}

static void test_bad_ids(void **state)
{
	char *back = NULL;

	assert_int_equal(vsep_quarantine_restore("../../etc/passwd", &back), -EINVAL);
	assert_int_equal(vsep_quarantine_restore("0123456789abcdeF", &back), -EINVAL);
	assert_int_equal(vsep_quarantine_delete("0123456789abcde"), -EINVAL);
	assert_int_equal(vsep_quarantine_delete(NULL), -EINVAL);
	assert_int_equal(vsep_quarantine_delete("0123456789abcdef"), -ENOENT);
}

/* /dev/shm is a tmpfs on another filesystem than /tmp on most machines:
 * the file is copied in and copied back out. */
static void test_across_filesystems(void **state)
{
	char src[] = "/dev/shm/test_quarantine.XXXXXX", path[PATH_MAX];
	char id[VSEP_QUARANTINE_ID_LEN], *back = NULL;
	struct stat a, b;

	if (!mkdtemp(src) || stat(src, &a) < 0 || stat(qdir, &b) < 0 || a.st_dev == b.st_dev) {
		rmdir(src);
		skip();
	}
	snprintf(path, sizeof(path), "%s/far.bin", src);
	write_file(path, "from another filesystem\n", 0604);
	assert_int_equal(quarantine(path, id), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count(), 1);
	assert_int_equal(vsep_quarantine_restore(id, &back), 0);
	free(back);
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(a.st_mode & 07777, 0604);
	assert_string_equal(read_file(path), "from another filesystem\n");
	assert_int_equal(count(), 0);
	unlink(path);
	rmdir(src);
}

static void test_control_commands(void **state)
{
	char path[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN];
	struct json_object *req, *rep, *v;

	snprintf(path, sizeof(path), "%s/ctl.txt", top);
	write_file(path, "x\n", 0600);
	assert_int_equal(quarantine(path, id), 0);

	rep = vsep_quarantine_cmd("quarantine-list", NULL);
	assert_true(json_object_object_get_ex(rep, "ok", &v) && json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(rep, "items", &v));
	assert_int_equal(json_object_array_length(v), 1);
	json_object_put(rep);

	req = json_object_new_object();
	json_object_object_add(req, "id", json_object_new_string(id));
	rep = vsep_quarantine_cmd("quarantine-restore", req);
	assert_true(json_object_object_get_ex(rep, "ok", &v) && json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(rep, "path", &v));
	assert_string_equal(json_object_get_string(v), path);
	json_object_put(rep);
	rep = vsep_quarantine_cmd("quarantine-delete", req);
	assert_true(json_object_object_get_ex(rep, "ok", &v) && !json_object_get_boolean(v));
	json_object_put(rep);
	json_object_put(req);

	rep = vsep_quarantine_cmd("quarantine-frobnicate", NULL);
	assert_true(json_object_object_get_ex(rep, "ok", &v) && !json_object_get_boolean(v));
	json_object_put(rep);
	unlink(path);
}

/* Someone else's directory in its place is refused; a loose mode fixed. */
static void test_foreign_dir(void **state)
{
	char path[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN];
	struct stat st;

	assert_int_equal(chmod(qdir, 0755), 0);
	assert_int_equal(count(), 0);
	assert_int_equal(stat(qdir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	if (geteuid() != 0)
		skip();
	assert_int_equal(chown(qdir, 4242, 4242), 0);
	snprintf(path, sizeof(path), "%s/kept.txt", top);
	write_file(path, "y\n", 0600);
	assert_int_equal(quarantine(path, id), -EPERM);
	assert_string_equal(read_file(path), "y\n");
	assert_int_equal(chown(qdir, 0, 0), 0);
	unlink(path);
}

/* d/sub/f.txt scanned, then d renamed away and a symlink put in its place
 * pointing to where it went: the same inode is reached through the path,
 * but through a symlink, so nothing is moved or deleted. */
static void test_parent_swapped_for_symlink(void **state)
{
	char d[PATH_MAX], real[PATH_MAX], path[PATH_MAX], moved[PATH_MAX];
	char id[VSEP_QUARANTINE_ID_LEN];
	struct stat st;
	int r;

	snprintf(d, sizeof(d), "%s/d", top);
	snprintf(real, sizeof(real), "%s/d.real", top);
	snprintf(path, sizeof(path), "%s/d/sub/f.txt", top);
	snprintf(moved, sizeof(moved), "%s/d.real/sub/f.txt", top);
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(mkdir(real, 0755), 0);
	assert_int_equal(rmdir(real), 0);
	snprintf(real, sizeof(real), "%s/d/sub", top);
	assert_int_equal(mkdir(real, 0755), 0);
	write_file(path, "scanned\n", 0600);
	assert_int_equal(lstat(path, &st), 0);

	snprintf(real, sizeof(real), "%s/d.real", top);
	assert_int_equal(rename(d, real), 0);
	assert_int_equal(symlink(real, d), 0);
	assert_int_equal(access(path, F_OK), 0); /* the old code's lstat would agree */

	r = vsep_quarantine_file(path, st.st_dev, st.st_ino, "e", "s", id);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	assert_string_equal(read_file(moved), "scanned\n");
	assert_int_equal(count(), 0);
	r = vsep_unlink_if_same(path, st.st_dev, st.st_ino);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	assert_string_equal(read_file(moved), "scanned\n");

	/* Without the symlink the same calls work. */
	assert_int_equal(unlink(d), 0);
	assert_int_equal(rename(real, d), 0);
	assert_int_equal(vsep_unlink_if_same(path, st.st_dev, st.st_ino), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(vsep_quarantine_file("d/sub/f.txt", st.st_dev, st.st_ino, "e", "s", id),
			 -EINVAL);
	snprintf(real, sizeof(real), "%s/d/sub", top);
	rmdir(real);
	rmdir(d);
}

static size_t entries(const char *dir)
{
	struct dirent **names;
	int i, n = scandir(dir, &names, NULL, NULL);

	assert_true(n >= 2);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return (size_t)n - 2;
}

static const char *cmd_error(const char *cmd, const char *id)
{
	static char buf[256];
	struct json_object *req = json_object_new_object(), *rep, *v;

	json_object_object_add(req, "id", json_object_new_string(id));
	rep = vsep_quarantine_cmd(cmd, req);
	assert_true(json_object_object_get_ex(rep, "ok", &v) && !json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(rep, "error", &v));
	snprintf(buf, sizeof(buf), "%s", json_object_get_string(v));
	json_object_put(rep);
	json_object_put(req);
	return buf;
}

/* r/x.txt quarantined, then r replaced by a symlink to another directory
 * (think /etc): the restore is refused and creates nothing there. */
static void test_restore_parent_now_symlink(void **state)
{
	char r[PATH_MAX], old[PATH_MAX], target[PATH_MAX], path[PATH_MAX];
	char id[VSEP_QUARANTINE_ID_LEN], *back = NULL;
	int rc;

	snprintf(r, sizeof(r), "%s/r", top);
	snprintf(old, sizeof(old), "%s/r.old", top);
	snprintf(target, sizeof(target), "%s/target", top);
	snprintf(path, sizeof(path), "%s/r/x.txt", top);
	assert_int_equal(mkdir(r, 0755), 0);
	assert_int_equal(mkdir(target, 0755), 0);
	write_file(path, "planted\n", 0644);
	assert_int_equal(quarantine(path, id), 0);

	assert_int_equal(rename(r, old), 0);
	assert_int_equal(symlink(target, r), 0);
	rc = vsep_quarantine_restore(id, &back);
	assert_true(rc == -ELOOP || rc == -ENOTDIR);
	assert_null(back);
	assert_int_equal(entries(target), 0);
	assert_int_equal(entries(old), 0);
	assert_int_equal(count(), 1);
	assert_non_null(strstr(cmd_error("quarantine-restore", id), "symlink"));

	assert_int_equal(unlink(r), 0);
	assert_int_equal(rename(old, r), 0);
	assert_int_equal(vsep_quarantine_restore(id, &back), 0);
	free(back);
	assert_string_equal(read_file(path), "planted\n");
	assert_int_equal(count(), 0);
	unlink(path);
	rmdir(r);
	rmdir(target);
}

/* A file of uid 4242 in a directory only root may write: restoring it
 * would create a file its owner never could. Refused, in `parent` on
 * /tmp and (copied back) on /dev/shm, until the owner may write there. */
static void owner_cannot_write(const char *parent)
{
	char dir[PATH_MAX], path[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN], *back = NULL;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/ro", parent);
	snprintf(path, sizeof(path), "%s/ro/y.txt", parent);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(path, "owned by 4242\n", 04750);
	assert_int_equal(chown(path, 4242, 4343), 0);
	assert_int_equal(chmod(path, 04750), 0);
	assert_int_equal(quarantine(path, id), 0);

	assert_int_equal(vsep_quarantine_restore(id, &back), -EACCES);
	assert_null(back);
	assert_int_equal(entries(dir), 0);
	assert_int_equal(count(), 1);
	assert_non_null(strstr(cmd_error("quarantine-restore", id), "owner"));

	assert_int_equal(chown(dir, 4242, 0), 0);
	assert_int_equal(vsep_quarantine_restore(id, &back), 0);
	free(back);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	assert_int_equal(st.st_mode & 07777, 04750);
	assert_string_equal(read_file(path), "owned by 4242\n");
	assert_int_equal(entries(dir), 1); /* no temporary left beside it */
	assert_int_equal(count(), 0);
	unlink(path);
	rmdir(dir);
}

static void test_restore_owner_cannot_write(void **state)
{
	char shm[] = "/dev/shm/test_quarantine.XXXXXX";

	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(top, 0755), 0);
	owner_cannot_write(top);
	if (mkdtemp(shm)) {
		assert_int_equal(chmod(shm, 0755), 0);
		owner_cannot_write(shm);
		rmdir(shm);
	}
	assert_int_equal(chmod(top, 0700), 0);
}

static void set_record_int(const char *id, const char *key, int64_t v)
{
	char rec[PATH_MAX];
	struct json_object *o;

	snprintf(rec, sizeof(rec), "%s/%s.json", qdir, id);
	o = json_object_from_file(rec);
	assert_non_null(o);
	json_object_object_add(o, key, json_object_new_int64(v));
	assert_int_equal(json_object_to_file(rec, o), 0);
	json_object_put(o);
}

/* 4294967295 is (uid_t)-1: "leave the owner as it is" to chown. */
static void test_record_bad_uid(void **state)
{
	char path[PATH_MAX], id[VSEP_QUARANTINE_ID_LEN], *back = NULL;

	snprintf(path, sizeof(path), "%s/u.txt", top);
	write_file(path, "u\n", 0600);
	assert_int_equal(quarantine(path, id), 0);
	set_record_int(id, "uid", 4294967295LL);
	assert_int_equal(vsep_quarantine_restore(id, &back), -EBADMSG);
	assert_int_equal(access(path, F_OK), -1);
	set_record_int(id, "uid", (int64_t)geteuid());
	set_record_int(id, "gid", 4294967295LL);
	assert_int_equal(vsep_quarantine_restore(id, &back), -EBADMSG);
	assert_int_equal(access(path, F_OK), -1);
	assert_null(back);
	assert_int_equal(count(), 1);
	assert_int_equal(vsep_quarantine_delete(id), 0);
}

/* Before any quarantine_dir: not mistaken for a bad ID. */
static void test_no_dir(void **state)
{
	assert_non_null(strstr(cmd_error("quarantine-restore", "0123456789abcdef"),
			       "quarantine_dir"));
	assert_non_null(strstr(cmd_error("quarantine-restore", "nonsense"), "bad quarantine ID"));
}

/* The same tests on a kernel without openat2, as far as the code can
 * tell: seccomp makes it fail with ENOSYS in a child. (No architecture
 * check in the filter: the child runs only this test program.) */
static int run_without_openat2(const struct CMUnitTest *tests, size_t n)
{
#ifdef SYS_openat2
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
			printf("# cannot install seccomp (%s): fallback not tested\n", strerror(errno));
			_exit(0);
		}
		_exit(_cmocka_run_group_tests("quarantine without openat2", tests, n, setup,
					      teardown) ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
#else
	(void)tests;
	(void)n;
	return 0;
#endif
}

int main(void)
{
	const struct CMUnitTest first[] = {
		cmocka_unit_test(test_no_dir),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_made_private),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_restore_never_overwrites),
		cmocka_unit_test(test_other_inode_left_alone),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_across_filesystems),
		cmocka_unit_test(test_control_commands),
		cmocka_unit_test(test_parent_swapped_for_symlink),
		cmocka_unit_test(test_restore_parent_now_symlink),
		cmocka_unit_test(test_restore_owner_cannot_write),
		cmocka_unit_test(test_record_bad_uid),
		cmocka_unit_test(test_foreign_dir),
	};
	int r;

	r = cmocka_run_group_tests_name("quarantine, before quarantine_dir", first, NULL, NULL);
	r |= cmocka_run_group_tests_name("quarantine", tests, setup, teardown);
	r |= run_without_openat2(tests, sizeof(tests) / sizeof(tests[0]));
	return r ? 1 : 0;
}
