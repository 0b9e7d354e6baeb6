/* SPDX-License-Identifier: MIT */
/* epsecctl eicar-test DIR: the runbook's EICAR check, timed. A clean file
 * must open; an EICAR file closed after its write must get the action; an
 * EICAR file the chain never saw finished (as one that was already there)
 * must be refused on open. Each step printed with its time; nothing left. */
#include "config.h"
#include "epsecctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "ctl.h"

#define EX_FAILED 1
#define CALL_TIMEOUT_MS 3000
#define ACTION_WAIT_MS 5000 /* the close_write scan runs after close returns */
#define POLL_US 2000

/* Two halves joined at run time: neither the repository nor this binary
 * holds the whole test string (the binary would be detected itself). */
static const char *volatile eicar_half[2] = {
	"X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
	"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
};
static const char clean_text[] = "epsec eicar-test: a clean file\n";

struct eicar_test {
	const struct epsecctl_env *env;
	char dir[PATH_MAX];
	char clean[PATH_MAX + 64], written[PATH_MAX + 64], unscanned[PATH_MAX + 64];
	char eicar[128];
	struct timespec t0;
	int failed;
};

static double ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void step(struct eicar_test *t, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void step(struct eicar_test *t, bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%8.1f ms  %-4s  ", ms_since(&t->t0), ok ? "OK" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		t->failed++;
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n = write(fd, buf, len);

	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), r;

	if (fd < 0)
		return -errno;
	r = write_all(fd, text, strlen(text));
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* 0 the whole file read back as `text`, else the open's or read's -errno. */
static int read_back(const char *path, const char *text)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(text) && !memcmp(buf, text, (size_t)n) ? 0 : -EIO;
}

/* ------------------------------------------------------------ vsep */

static int ask_vsep(struct eicar_test *t, struct json_object *req, struct json_object **reply)
{
	char path[PATH_MAX];
	int r;

	epsecctl_ctl_path(t->env, "vsep", path, sizeof(path));
	r = epsec_ctl_call(path, req, CALL_TIMEOUT_MS, reply);
	json_object_put(req);
	return r;
}

static struct json_object *request(const char *cmd)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	return req;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static bool under(const char *dir, const char *top)
{
	size_t n = strlen(top);

	while (n > 1 && top[n - 1] == '/')
		n--;
	return !strncmp(dir, top, n) && (dir[n] == '/' || dir[n] == '\0' || n == 1);
}

/* Which protected path DIR is under, per vsep's status; NULL none. */
static const char *protecting(struct json_object *status, const char *dir)
{
	struct json_object *protect = NULL;

	json_object_object_get_ex(status, "protect", &protect);
	for (size_t i = 0; json_object_is_type(protect, json_type_array) &&
			   i < json_object_array_length(protect); i++) {
		const char *p = jstr(json_object_array_get_idx(protect, i), "path");

		if (p && under(dir, p))
			return p;
	}
	return NULL;
}

/* Without vsep's socket (another rundir, no permission) the file checks
 * still say whether this directory is protected. */
static int check_vsep(struct eicar_test *t)
{
	struct json_object *status = NULL;
	const char *top;
	int r = ask_vsep(t, request("status"), &status);

	if (r < 0) {
		printf("%8.1f ms  note  vsep's control socket did not answer (%s): not checking "
		       "that %s is protected\n", ms_since(&t->t0), strerror(-r), t->dir);
		return 0;
	}
	top = protecting(status, t->dir);
	if (top)
		step(t, true, "vsep %s protects %s (under %s)", jstr(status, "id"), t->dir, top);
	else
		step(t, false, "vsep %s does not protect %s", jstr(status, "id"), t->dir);
	json_object_put(status);
	return top ? 0 : -ENOENT;
}

/* ------------------------------------------------------------ steps */

static void check_clean(struct eicar_test *t)
{
	int r = write_file(t->clean, clean_text);

	if (r == 0)
		r = read_back(t->clean, clean_text);
	if (r == 0)
		step(t, true, "a clean file written, closed and opened again: read back whole");
	else
		step(t, false, "a clean file %s: %s", t->clean,
		     r == -EPERM ? "refused on open (EPERM)" : strerror(-r));
}

/* The action on a file scanned at close_write: gone (delete, quarantine)
 * or kept but refused on open (deny). A refusal comes first with every
 * action (the open is scanned too): only a file still there DENY_GRACE_MS
 * after its first refusal counts as kept. 0 neither yet, 1 gone, 2 kept. */
#define DENY_GRACE_MS 300

static int action_seen(struct eicar_test *t, double *refused_at)
{
	if (access(t->written, F_OK) < 0 && errno == ENOENT)
		return 1;
	if (*refused_at < 0 && read_back(t->written, t->eicar) == -EPERM)
		*refused_at = ms_since(&t->t0);
	return *refused_at >= 0 && ms_since(&t->t0) - *refused_at > DENY_GRACE_MS ? 2 : 0;
}

static void check_written(struct eicar_test *t)
{
	int r = write_file(t->written, t->eicar), seen = 0;
	double start = ms_since(&t->t0), refused_at = -1;

	if (r < 0) {
		step(t, false, "cannot write %s: %s", t->written, strerror(-r));
		return;
	}
	while (!(seen = action_seen(t, &refused_at)) && ms_since(&t->t0) - start < ACTION_WAIT_MS)
		usleep(POLL_US);
	if (seen == 1)
		step(t, true, "an EICAR file written and closed: gone %.1f ms after its close "
			      "(deleted or quarantined)", ms_since(&t->t0) - start);
	else if (seen == 2)
		step(t, true, "an EICAR file written and closed: refused on open %.1f ms after its "
			      "close, kept (action deny)", refused_at - start);
	else
		step(t, false, "an EICAR file written and closed: still there and readable after "
			       "%d ms", ACTION_WAIT_MS);
}

/* A name for content the chain never saw closed: O_TMPFILE, linked in,
 * the writer still open. Its open is decided by a scan on the spot, as
 * for a file that was there before vsep started. */
static int link_unscanned(struct eicar_test *t, int *wfd)
{
	char proc[64];
	int fd = open(t->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644), r;

	if (fd < 0)
		return -errno;
	r = write_all(fd, t->eicar, strlen(t->eicar));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (r == 0 && linkat(AT_FDCWD, proc, AT_FDCWD, t->unscanned, AT_SYMLINK_FOLLOW) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	*wfd = fd;
	return 0;
}

static void check_unscanned(struct eicar_test *t)
{
	int wfd = -1, r = link_unscanned(t, &wfd);

	if (r < 0) {
		step(t, false, "cannot make an unscanned EICAR file in %s (O_TMPFILE, linkat): %s",
		     t->dir, strerror(-r));
		return;
	}
	r = read_back(t->unscanned, t->eicar);
	if (r == -EPERM)
		step(t, true, "an EICAR file never scanned (as one already there): refused on "
			      "open (EPERM)");
	else
		step(t, false, "an EICAR file never scanned: %s", r == 0 ? "opened and read"
									 : strerror(-r));
	/* Gone first: the close below then has no name to be scanned under. */
	unlink(t->unscanned);
	close(wfd);
}

/* ------------------------------------------------------------ cleanup */

/* A quarantined test file is deleted from the quarantine too. */
static void unquarantine(struct eicar_test *t, const char *path)
{
	struct json_object *list = NULL, *items = NULL, *req;

	if (ask_vsep(t, request("quarantine-list"), &list) < 0)
		return;
	json_object_object_get_ex(list, "items", &items);
	for (size_t i = 0; json_object_is_type(items, json_type_array) &&
			   i < json_object_array_length(items); i++) {
		struct json_object *it = json_object_array_get_idx(items, i), *reply = NULL;
		const char *p = jstr(it, "path");

		if (!p || strcmp(p, path) || !jstr(it, "id"))
			continue;
		req = request("quarantine-delete");
		json_object_object_add(req, "id", json_object_new_string(jstr(it, "id")));
		ask_vsep(t, req, &reply);
		json_object_put(reply);
	}
	json_object_put(list);
}

static void cleanup(struct eicar_test *t)
{
	const char *files[] = { t->clean, t->written, t->unscanned };
	bool left = false;

	unquarantine(t, t->written);
	for (size_t i = 0; i < 3; i++) {
		if (unlink(files[i]) < 0 && errno != ENOENT) {
			step(t, false, "cannot remove %s: %s", files[i], strerror(errno));
			left = true;
		}
	}
	if (!left)
		step(t, true, "nothing left behind in %s (nor in vsep's quarantine)", t->dir);
}

/* Named for this run, so two runs (or an operator's files) never collide. */
static void name(struct eicar_test *t, char buf[PATH_MAX + 64], const char *what)
{
	snprintf(buf, PATH_MAX + 64, "%s/epsec-eicar-test-%d-%s", t->dir, (int)getpid(), what);
}

static int setup(struct eicar_test *t, const char *dir)
{
	if (!realpath(dir, t->dir)) {
		fprintf(stderr, "epsecctl eicar-test: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	snprintf(t->eicar, sizeof(t->eicar), "%s%s", eicar_half[0], eicar_half[1]);
	name(t, t->clean, "clean.txt");
	name(t, t->written, "written.com");
	name(t, t->unscanned, "unscanned.com");
	clock_gettime(CLOCK_MONOTONIC, &t->t0);
	return 0;
}

int epsecctl_eicar_test(const struct epsecctl_env *env, int argc, char **argv)
{
	struct eicar_test t = { .env = env };

	if (argc != 2) {
		fprintf(stderr, "usage: epsecctl eicar-test DIR\n");
		return EPSECCTL_EX_USAGE;
	}
	if (setup(&t, argv[1]) < 0)
		return EX_FAILED;
	if (check_vsep(&t) == 0) {
		check_clean(&t);
		check_written(&t);
		check_unscanned(&t);
		cleanup(&t);
	}
	printf("%s: %s\n", t.dir, t.failed ? "FAILED" : "every check held");
	return t.failed ? EX_FAILED : 0;
}
