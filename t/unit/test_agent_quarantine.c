/* Unit test of vsep's quarantine: a file moves in (by rename, and by copy
 * across filesystems), is listed with its record, comes back with its
 * content, owner, mode and mtime, never over an existing file, and can be
 * deleted; a path that names another inode, a bad ID and a directory that
 * is not the agent's are refused. Real files in /tmp (and /dev/shm). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "quarantine.h"

static char top[] = "/tmp/test_quarantine.XXXXXX";
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_made_private),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_restore_never_overwrites),
		cmocka_unit_test(test_other_inode_left_alone),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_across_filesystems),
		cmocka_unit_test(test_control_commands),
		cmocka_unit_test(test_foreign_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
