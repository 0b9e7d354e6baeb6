/* All of fanotify for vsep: the group, marks that cover only the protected
 * trees (so the rest of the machine never waits on us), reading events and
 * writing answers. Nothing else in vsep includes <sys/fanotify.h>. */
#include "config.h"
#include "fanotify.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define EPSEC_LOG_SRC "fanotify"

#if HAVE_DECL_FAN_OPEN_EXEC_PERM
#define VSEP_EXEC_PERM FAN_OPEN_EXEC_PERM
#else
#define VSEP_EXEC_PERM 0
#endif

/* Dropped to the open/close events alone the first time the kernel refuses
 * the exec permission event (kernels before 5.0). */
static uint64_t fan_mask = FAN_OPEN_PERM | FAN_CLOSE_WRITE | VSEP_EXEC_PERM;

int vsep_fan_init(int *fanfd)
{
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NOATIME);

	if (fd < 0)
		return -errno;
	*fanfd = fd;
	return 0;
}

static int mark_add(int fanfd, unsigned flags, uint64_t extra, const char *path)
{
	if (fanotify_mark(fanfd, FAN_MARK_ADD | flags, fan_mask | extra, AT_FDCWD, path) == 0)
		return 0;
	if (errno != EINVAL || !(fan_mask & VSEP_EXEC_PERM))
		return -errno;
	fan_mask &= ~(uint64_t)VSEP_EXEC_PERM;
	EPSEC_WARN("kernel refuses FAN_OPEN_EXEC_PERM: exec is checked as a plain open");
	if (fanotify_mark(fanfd, FAN_MARK_ADD | flags, fan_mask | extra, AT_FDCWD, path) == 0)
		return 0;
	return -errno;
}

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* A bind mount of a directory of the same filesystem keeps st_dev, so the
 * mount table has the last word. */
static bool in_mountinfo(const char *real)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, mnt[PATH_MAX];
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		unescape(mnt);
		found = strcmp(mnt, real) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

static bool is_mount_point(const char *path, const struct stat *st)
{
	char parent[PATH_MAX], real[PATH_MAX];
	struct stat pst;

	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
		return false;
	if (stat(parent, &pst) == 0 &&
	    (pst.st_dev != st->st_dev || pst.st_ino == st->st_ino))
		return true;
	return realpath(path, real) && in_mountinfo(real);
}

/* nftw passes no user pointer; marking runs on the main thread only. */
static struct {
	int fanfd;
	unsigned dirs;
	int err;
} walk;

static int walk_dir(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	int r;

	if (type != FTW_D && type != FTW_DNR)
		return 0;
	r = mark_add(walk.fanfd, 0, FAN_EVENT_ON_CHILD, fpath);
	if (r == 0) {
		walk.dirs++;
		return 0;
	}
	if (ftw->level == 0) {
		walk.err = r;
		return 1;
	}
	EPSEC_WARN("cannot watch %s: %s", fpath, strerror(-r));
	return 0;
}

int vsep_fan_mark(int fanfd, const char *path, struct vsep_mark *out)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	out->path = path;
	out->dirs = 0;
	out->mount = is_mount_point(path, &st);
	if (out->mount)
		return mark_add(fanfd, FAN_MARK_MOUNT, 0, path);
	walk.fanfd = fanfd;
	walk.dirs = 0;
	walk.err = 0;
	if (nftw(path, walk_dir, 32, FTW_PHYS | FTW_MOUNT) < 0 && walk.err == 0)
		walk.err = -errno;
	out->dirs = walk.dirs;
	return walk.err;
}

static bool event_kind(uint64_t mask, enum vsep_kind *kind)
{
	if (mask & VSEP_EXEC_PERM)
		*kind = VSEP_KIND_EXEC;
	else if (mask & FAN_OPEN_PERM)
		*kind = VSEP_KIND_OPEN;
	else if (mask & FAN_CLOSE_WRITE)
		*kind = VSEP_KIND_CLOSE_WRITE;
	else
		return false;
	return true;
}

static void one_event(const struct fanotify_event_metadata *m, vsep_fan_event_fn fn, void *arg)
{
	struct vsep_event ev = { .fd = m->fd, .pid = m->pid };

	if (m->fd == FAN_NOFD) {
		if (m->mask & FAN_Q_OVERFLOW)
			EPSEC_WARN("kernel event queue overflowed: close-after-write events were lost");
		return;
	}
	if (!event_kind(m->mask, &ev.kind)) {
		close(m->fd);
		return;
	}
	fn(&ev, arg);
}

int vsep_fan_read(int fanfd, vsep_fan_event_fn fn, void *arg)
{
	static _Thread_local char buf[64 * 1024]
		__attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	const struct fanotify_event_metadata *m = (const void *)buf;
	ssize_t n = read(fanfd, buf, sizeof(buf));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		/* A future layout: its fds must still be closed, which we
		 * cannot do safely; the group is unusable. */
		if (m->vers != FANOTIFY_METADATA_VERSION)
			return -EPROTO;
		one_event(m, fn, arg);
	}
	return 0;
}

int vsep_fan_respond(int fanfd, int fd, bool allow)
{
	struct fanotify_response r = { .fd = fd, .response = allow ? FAN_ALLOW : FAN_DENY };

	while (write(fanfd, &r, sizeof(r)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}
