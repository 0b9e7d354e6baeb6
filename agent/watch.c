/* SPDX-License-Identifier: MIT */
/* The thread that keeps vsep's marks right: it drains the directory-entry
 * group (new directories: marked, then their files swept through the
 * workers) and follows the mount table, which the kernel flags with
 * POLLPRI on /proc/self/mountinfo whenever a mount comes or goes. */
#include "config.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fanotify.h"
#include "held.h"
#include "log.h"
#include "workers.h"

#define EPSEC_LOG_SRC "watch"

#define MOUNTINFO "/proc/self/mountinfo"
/* A sweep that finds the queue full waits and tries again, this often. */
#define SWEEP_RETRIES 200
#define SWEEP_RETRY_US 5000

static struct {
	const struct vsep_settings *s;
	int fanfd, stopfd, mntfd;
	pid_t self;
	pthread_t thread;
	bool started;
	atomic_bool stopping;
	bool warned_lost;
} W = { .fanfd = -1, .stopfd = -1, .mntfd = -1 };

/* ------------------------------------------------------------ sweeping */

static int open_file(int dirfd, const char *name)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd = openat(dirfd, name, flags | O_NOATIME);
	struct stat st;

	/* O_NOATIME is refused on files we do not own without CAP_FOWNER. */
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, flags);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Sweeps wait for a verdict each: a big tree moved in must not take the
 * whole held table from the openers waiting in the kernel. */
static void pace(void)
{
	size_t limit = (size_t)W.s->max_held / 2;
	int i;

	for (i = 0; i < 5000 && vsep_held_count() >= limit && !atomic_load(&W.stopping); i++)
		usleep(1000);
}

/* vsep_workers_inject ends an event at once when the queue is full,
 * counting it as overload: then this one is opened and offered again (a
 * coincidence with someone else's overload costs a second scan, never a
 * miss). */
static void sweep_file(int dirfd, const char *name, void *arg)
{
	struct vsep_event ev = { .pid = W.self, .kind = VSEP_KIND_SWEEP };
	unsigned long before;
	int tries;

	for (tries = 0; tries < SWEEP_RETRIES && !atomic_load(&W.stopping); tries++) {
		if (tries)
			usleep(SWEEP_RETRY_US);
		ev.fd = open_file(dirfd, name);
		if (ev.fd < 0)
			return;
		pace();
		before = atomic_load(&vsep_stats.overload);
		vsep_workers_inject(&ev);
		if (atomic_load(&vsep_stats.overload) == before) {
			atomic_fetch_add(&vsep_stats.swept, 1);
			EPSEC_DBG("swept %s (found in a directory marked just now)", name);
			return;
		}
	}
	if (!W.warned_lost)
		EPSEC_WARN("queue full: %s, found in a new directory, was not scanned", name);
	W.warned_lost = true;
}

/* ------------------------------------------------------------ mounts */

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

struct table {
	struct vsep_mount *m;
	size_t n, cap;
};

static void table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free((char *)t->m[i].path);
		free((char *)t->m[i].fstype);
	}
	free(t->m);
}

/* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the
 * id first, the mount point fifth, the type after the " - ". */
static int parse_line(const char *line, struct vsep_mount *m)
{
	char path[4096], type[64];
	const char *dash = strstr(line, " - ");
	int id;

	if (!dash || sscanf(line, "%d %*d %*s %*s %4095s", &id, path) != 2 ||
	    sscanf(dash + 3, "%63s", type) != 1)
		return -EINVAL;
	unescape(path);
	m->id = id;
	m->path = strdup(path);
	m->fstype = strdup(type);
	if (m->path && m->fstype)
		return 0;
	free((char *)m->path);
	free((char *)m->fstype);
	return -ENOMEM;
}

static int table_read(struct table *t)
{
	FILE *f = fopen(MOUNTINFO, "re");
	char *line = NULL;
	size_t cap = 0;
	struct vsep_mount *m;

	*t = (struct table){ 0 };
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		if (t->n == t->cap) {
			m = realloc(t->m, (t->cap * 2 + 16) * sizeof(*m));
			if (!m)
				break;
			t->m = m;
			t->cap = t->cap * 2 + 16;
		}
		if (parse_line(line, &t->m[t->n]) == 0)
			t->n++;
	}
	free(line);
	fclose(f);
	return 0;
}

static void mounts_changed(bool sweep)
{
	struct table t;
	int r = table_read(&t);

	if (r < 0) {
		EPSEC_ERR("cannot read %s: %s", MOUNTINFO, strerror(-r));
		return;
	}
	vsep_fan_mounts_update(W.fanfd, t.m, t.n, sweep ? sweep_file : NULL, NULL);
	table_free(&t);
}

/* ------------------------------------------------------------ thread */

static void *watch_main(void *arg)
{
	struct pollfd p[3] = { { .fd = W.stopfd, .events = POLLIN },
			       { .fd = W.mntfd, .events = POLLPRI },
			       { .fd = vsep_fan_dirent_fd(), .events = POLLIN } };
	int r, failures = 0;

	while (!atomic_load(&W.stopping)) {
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & (POLLPRI | POLLERR))
			mounts_changed(true);
		if (!(p[2].revents & POLLIN))
			continue;
		r = vsep_fan_dirent_read(W.fanfd, sweep_file, NULL);
		if (r < 0 && failures++ == 0)
			EPSEC_ERR("reading directory events: %s", strerror(-r));
		if (r < 0)
			usleep(10000);
		else
			failures = 0;
	}
	return NULL;
}

int vsep_watch_start(const struct vsep_settings *s, int fanfd)
{
	int r;

	W.s = s;
	W.fanfd = fanfd;
	W.self = getpid();
	W.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (W.stopfd < 0)
		return -errno;
	/* Opened before the table is read: a mount that comes in between
	 * is flagged on it. */
	W.mntfd = open(MOUNTINFO, O_RDONLY | O_CLOEXEC);
	if (W.mntfd < 0)
		EPSEC_WARN("cannot follow the mount table (%s): new mounts under protected "
			   "paths will not be marked", strerror(errno));
	mounts_changed(false);
	r = -pthread_create(&W.thread, NULL, watch_main, NULL);
	W.started = r == 0;
	return r;
}

void vsep_watch_stop(void)
{
	uint64_t one = 1;

	atomic_store(&W.stopping, true);
	if (W.started && write(W.stopfd, &one, sizeof(one)) < 0)
		EPSEC_ERR("cannot stop the watch thread: %s", strerror(errno));
	if (W.started)
		pthread_join(W.thread, NULL);
	W.started = false;
	if (W.stopfd >= 0)
		close(W.stopfd);
	if (W.mntfd >= 0)
		close(W.mntfd);
	W.stopfd = W.mntfd = -1;
}
