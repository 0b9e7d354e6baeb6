/* SPDX-License-Identifier: MIT */
/* Reader thread and worker threads (fapolicyd's shape): the reader never
 * blocks on anything but short locks, so our own opens, files the verdict
 * cache knows clean and a full queue are answered at once; workers do the
 * slow part (inline data, which reads the file) and hand a held EVENT to
 * the mux side. When files go as fds there is no slow part: the reader
 * prepares the EVENT itself (path and exe from /proc, excludes). */
#include "config.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cache.h"
#include "fanotify.h"
#include "held.h"
#include "log.h"
#include "mux.h"
#include "unscanned.h"

#define EPSEC_LOG_SRC "agent"

/* An event and what the reader learnt of it. */
struct job {
	struct vsep_event ev;
	struct stat st;
	bool have_st;  /* st is the reader's fstat */
	bool infected; /* the cache holds an infected verdict (open/exec) */
	uint64_t gen;  /* that verdict's generation */
};

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *ring;
	size_t cap, head, len;
	pthread_t thread;
	bool started;
};

static struct {
	const struct vsep_settings *s;
	int fanfd, stopfd;
	pid_t self;
	pthread_t reader;
	bool reader_started;
	struct queue *q;
	int nq;
	atomic_bool stopping;
	char **exes; /* exclude_exes, resolved at start */
	size_t nexes;
} W = { .fanfd = -1, .stopfd = -1 };

/* ------------------------------------------------------------ queues */

static bool push(struct queue *q, const struct job *j)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	ok = q->len < q->cap;
	if (ok) {
		q->ring[(q->head + q->len) % q->cap] = *j;
		q->len++;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

/* Blocks; false once stopping (what is left is ended by stop). */
static bool pop(struct queue *q, struct job *j)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	while (q->len == 0 && !atomic_load(&W.stopping))
		pthread_cond_wait(&q->cond, &q->lock);
	ok = !atomic_load(&W.stopping);
	if (ok) {
		*j = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

static struct queue *queue_for(pid_t pid)
{
	uint32_t h = (uint32_t)pid * 2654435761u;

	return &W.q[h % (uint32_t)W.nq];
}

/* ------------------------------------------------------------ reader */

/* An empty file has nothing to scan: the open of every file an untar or
 * a compiler creates then costs no round trip. What is written into it is
 * scanned at close_write and on the next open. */
static bool empty_file(const struct vsep_event *ev, const struct job *j)
{
	if (!j->have_st || !S_ISREG(j->st.st_mode) || j->st.st_size != 0)
		return false;
	vsep_event_end(ev, true, VSEP_WHY_EMPTY);
	return true;
}

/* The cache's hot path is here rather than in a worker: handing a hit to
 * a worker costs more than all the rest of it (a hit answered here is as
 * cheap as an agent that allows everything at once). fstat adds no way to
 * block that read() did not have: it opened the file for us. */
static bool cached(const struct vsep_event *ev, struct job *j)
{
	enum vsep_action act;

	if (!j->have_st || !S_ISREG(j->st.st_mode))
		return false;
	/* A written file is always scanned again (and forgotten first). */
	if (!vsep_event_is_perm(ev)) {
		vsep_cache_forget(ev->fd, &j->st);
		return false;
	}
	if (!vsep_cache_enabled() || !vsep_cache_lookup(&j->st, &act, &j->gen))
		return false;
	if (act == VSEP_ACT_ALLOW) {
		vsep_event_end_cached(ev, true, &j->st, j->gen);
		return true;
	}
	j->infected = true;
	return false;
}

/* fstat for the reader, which must never wait on a remote or FUSE server
 * (whose own opens may be waiting on this very thread): what the kernel
 * has cached is enough to key the cache. */
static bool stat_nosync(int fd, struct stat *st)
{
	struct statx x;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_BASIC_STATS, &x) < 0)
		return false;
	*st = (struct stat){
		.st_dev = makedev(x.stx_dev_major, x.stx_dev_minor),
		.st_ino = x.stx_ino,
		.st_mode = x.stx_mode,
		.st_nlink = x.stx_nlink,
		.st_uid = x.stx_uid,
		.st_gid = x.stx_gid,
		.st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor),
		.st_size = (off_t)x.stx_size,
		.st_blksize = (blksize_t)x.stx_blksize,
		.st_blocks = (blkcnt_t)x.stx_blocks,
		.st_atim = { x.stx_atime.tv_sec, x.stx_atime.tv_nsec },
		.st_mtim = { x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec },
		.st_ctim = { x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec },
	};
	return true;
}

static void handle(struct job *j);

/* An event ended by policy before it was held: remembered when that let
 * its file pass unscanned. */
static void end_unheld(const struct vsep_event *ev, const struct stat *st, const char *path,
		       enum vsep_why why)
{
	bool allow = vsep_why_allows(W.s, why);
	char buf[PATH_MAX];

	if (st && !path && vsep_fan_fd_path(ev->fd, buf, sizeof(buf)) == 0)
		path = buf;
	vsep_event_end(ev, allow, why);
	if (st && path)
		vsep_unscanned_note(ev->kind, st, path, why, allow);
}

static void dispatch(const struct vsep_event *ev, void *arg)
{
	struct job j = { .ev = *ev };

	if (ev->kind != VSEP_KIND_RESCAN)
		atomic_fetch_add(&vsep_stats.events, 1);
	if (ev->pid == W.self && !vsep_event_is_own(ev)) {
		vsep_event_end(ev, true, VSEP_WHY_SELF);
		return;
	}
	j.have_st = stat_nosync(ev->fd, &j.st);
	if (empty_file(ev, &j) || cached(ev, &j))
		return;
	/* With the fd passed, nothing left reads the file (no inline bytes):
	 * the rest is done here, sparing a hand-over to a worker. */
	if (vsep_mux_passes_fds()) {
		handle(&j);
		return;
	}
	if (!push(queue_for(ev->pid), &j))
		end_unheld(ev, j.have_st ? &j.st : NULL, NULL, VSEP_WHY_OVERLOAD);
}

void vsep_workers_inject(const struct vsep_event *ev)
{
	dispatch(ev, NULL);
}

/* Nobody would answer the kernel any more: stop the daemon, which answers
 * what it holds, and closing the group lets the kernel allow the rest. */
static void reader_failed(int err)
{
	EPSEC_ERR("fanotify reader stopped: %s; vsep is exiting", strerror(err));
	kill(getpid(), SIGTERM);
}

static void *reader_main(void *arg)
{
	struct pollfd p[2] = { { .fd = W.fanfd, .events = POLLIN },
			       { .fd = W.stopfd, .events = POLLIN } };
	int r, failures = 0;

	while (!atomic_load(&W.stopping)) {
		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			reader_failed(errno);
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		r = vsep_fan_read(W.fanfd, dispatch, NULL);
		/* EMFILE/ENFILE: the kernel denies the event it could not
		 * give us; say so once per burst, and let fds come back. */
		if (r < 0 && r != -EMFILE && r != -ENFILE && r != -ENOMEM) {
			reader_failed(-r);
			break;
		}
		if (r < 0 && failures++ == 0)
			EPSEC_ERR("reading fanotify events: %s", strerror(-r));
		if (r < 0)
			usleep(10000);
		else
			failures = 0;
	}
	return NULL;
}

/* ------------------------------------------------------------ workers */

static char *pid_exe(pid_t pid)
{
	char link[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

/* The real uid on the Uid: line of /proc/PID/status; -1 when the process
 * is gone. */
static long long pid_uid(pid_t pid)
{
	char name[64], buf[2048], *line;
	long long uid = -1;
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "/proc/%d/status", (int)pid);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	line = strstr(buf, "\nUid:");
	if (line && sscanf(line + 5, "%lld", &uid) != 1)
		uid = -1;
	return uid;
}

/* Prefixes match whole path components: /srv/tmp covers /srv/tmp/x, not
 * /srv/tmpfoo. */
static bool excluded_path(const char *path)
{
	size_t i, n;

	for (i = 0; i < W.s->exclude_paths.n; i++) {
		const char *p = W.s->exclude_paths.v[i];

		n = strlen(p);
		if (strncmp(path, p, n) == 0 &&
		    (path[n] == '\0' || path[n] == '/' || (n > 0 && p[n - 1] == '/')))
			return true;
	}
	return false;
}

static bool excluded_uid(pid_t pid)
{
	long long uid;
	size_t i;

	if (W.s->exclude_uids.n == 0)
		return false;
	uid = pid_uid(pid);
	for (i = 0; uid >= 0 && i < W.s->exclude_uids.n; i++) {
		if (W.s->exclude_uids.v[i] == uid)
			return true;
	}
	return false;
}

static bool excluded_exe(const char *exe)
{
	size_t i;

	for (i = 0; exe && i < W.nexes; i++) {
		if (strcmp(exe, W.exes[i]) == 0)
			return true;
	}
	return false;
}

/* Files the agent found itself (sweeps) have no opener to exclude. */
static bool excluded(const struct vsep_event *ev, const char *path, const char *exe)
{
	if (excluded_path(path))
		return true;
	if (vsep_event_is_own(ev))
		return false;
	return excluded_exe(exe) || excluded_uid(ev->pid);
}

static void read_inline(struct vsep_req *r, int fd, size_t want)
{
	size_t got = 0;
	ssize_t n;

	while (got < want) {
		n = pread(fd, r->data + got, want - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->has_data = false;
			return;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	r->has_data = true;
	r->data_len = got;
}

/* Takes exe (NULL: unknown). */
/* inline_bytes is the most an EVENT carries; sending more than the engines
 * read only costs copies (eicar reads at most 128 bytes, clamav whole
 * files). So EVENTs carry what the engines read in the last two windows of
 * HINT_WINDOW verdicts, rounded up, at least HINT_MIN; a scan that needs
 * more reads it with READ/DATA. Races between workers only blur the
 * windows. */
#define HINT_WINDOW 1024u
#define HINT_MIN 256u

static struct {
	atomic_bool seen;
	_Atomic uint64_t cur, prev;
	atomic_uint n;
} H;

void vsep_workers_read_hint(uint64_t bytes)
{
	uint64_t cur = atomic_load(&H.cur);

	while (bytes > cur && !atomic_compare_exchange_weak(&H.cur, &cur, bytes))
		;
	atomic_store(&H.seen, true);
	if (atomic_fetch_add(&H.n, 1) + 1 >= HINT_WINDOW) {
		atomic_store(&H.prev, atomic_exchange(&H.cur, 0));
		atomic_store(&H.n, 0);
	}
}

static size_t inline_want(void)
{
	uint64_t cur = atomic_load(&H.cur), prev = atomic_load(&H.prev);
	uint64_t want = cur > prev ? cur : prev;

	if (vsep_mux_passes_fds())
		return 0;
	if (!atomic_load(&H.seen))
		return (size_t)W.s->inline_bytes;
	want = want < HINT_MIN ? HINT_MIN : (want + 4095) & ~(uint64_t)4095;
	return want < (uint64_t)W.s->inline_bytes ? (size_t)want : (size_t)W.s->inline_bytes;
}

size_t vsep_workers_inline_bytes(void)
{
	return W.s ? inline_want() : 0;
}

static struct vsep_req *build_req(const struct vsep_event *ev, const struct stat *st,
				  const char *path, char *exe)
{
	size_t want = inline_want();
	struct vsep_req *r;

	if ((uint64_t)st->st_size < want)
		want = (size_t)st->st_size;
	r = calloc(1, sizeof(*r) + want);
	if (!r || !(r->path = strdup(path))) {
		free(r);
		free(exe);
		return NULL;
	}
	r->kind = ev->kind;
	r->pid = ev->pid;
	r->st = *st;
	r->exe = exe;
	read_inline(r, ev->fd, want);
	return r;
}

static bool fail_open(void)
{
	return vsep_why_allows(W.s, VSEP_WHY_DISCONNECT);
}

/* The cheap part, before anything is read or resolved: false when it
 * ended the event itself. A cached infected verdict is not applied here:
 * excluded openers still get through (see decide). */
static bool screen(struct job *j)
{
	const struct vsep_event *ev = &j->ev;

	if (!j->have_st && fstat(ev->fd, &j->st) < 0) {
		vsep_event_end(ev, fail_open(), VSEP_WHY_ERROR);
		return false;
	}
	if (!S_ISREG(j->st.st_mode)) {
		vsep_event_end(ev, true, VSEP_WHY_IRREGULAR);
		return false;
	}
	if (W.s->max_file_size > 0 && j->st.st_size > W.s->max_file_size) {
		vsep_event_end(ev, true, VSEP_WHY_TOO_BIG);
		return false;
	}
	return true;
}

/* Ends the event unless it must go to the mux; *exe is for the request. */
static bool decide(const struct vsep_event *ev, const struct stat *st, const char *path,
		   bool infected, uint64_t gen, char **exe)
{
	*exe = pid_exe(ev->pid);
	if (excluded(ev, path, *exe)) {
		vsep_event_end(ev, true, VSEP_WHY_EXCLUDED);
	} else if (infected) {
		vsep_event_end_cached(ev, false, st, gen);
		EPSEC_INFO("%s: access denied to pid %d (cached verdict)", path, (int)ev->pid);
	} else if (!vsep_mux_ready()) {
		end_unheld(ev, st, path, VSEP_WHY_DISCONNECT);
	} else {
		return true;
	}
	free(*exe);
	*exe = NULL;
	return false;
}

static void handle(struct job *j)
{
	const struct vsep_event *ev = &j->ev;
	char path[PATH_MAX], *exe;
	struct vsep_req *r;
	int err;

	if (!screen(j))
		return;
	if (vsep_fan_fd_path(ev->fd, path, sizeof(path)) < 0) {
		vsep_event_end(ev, fail_open(), VSEP_WHY_ERROR);
		return;
	}
	if (!decide(ev, &j->st, path, j->infected, j->gen, &exe))
		return;
	r = build_req(ev, &j->st, path, exe);
	err = r ? vsep_held_add(ev, &j->st, path, &r->req_id) : -ENOMEM;
	if (err == -ENOSPC) {
		end_unheld(ev, &j->st, path, VSEP_WHY_OVERLOAD);
	} else if (err < 0) {
		end_unheld(ev, &j->st, path, VSEP_WHY_ERROR);
	} else {
		vsep_mux_submit(r);
		return;
	}
	vsep_req_free(r);
}

static void *worker_main(void *arg)
{
	struct queue *q = arg;
	struct job j;

	while (pop(q, &j))
		handle(&j);
	return NULL;
}

/* ------------------------------------------------------------ start/stop */

static int queues_new(int n, size_t total)
{
	size_t cap = (total + (size_t)n - 1) / (size_t)n;
	int i;

	W.q = calloc((size_t)n, sizeof(*W.q));
	if (!W.q)
		return -ENOMEM;
	W.nq = n;
	for (i = 0; i < n; i++) {
		pthread_mutex_init(&W.q[i].lock, NULL);
		pthread_cond_init(&W.q[i].cond, NULL);
		W.q[i].cap = cap;
	}
	for (i = 0; i < n; i++) {
		W.q[i].ring = calloc(cap, sizeof(*W.q[i].ring));
		if (!W.q[i].ring)
			return -ENOMEM;
	}
	return 0;
}

/* /proc/PID/exe names the binary by its resolved path: so must we. */
static int exes_resolve(const struct epsec_strlist *l)
{
	char *p;

	W.exes = calloc(l->n ? l->n : 1, sizeof(*W.exes));
	if (!W.exes)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		p = realpath(l->v[i], NULL);
		if (!p)
			EPSEC_WARN("exclude_exes: %s: %s; compared as written", l->v[i],
				   strerror(errno));
		if (!p && !(p = strdup(l->v[i])))
			return -ENOMEM;
		W.exes[W.nexes++] = p;
	}
	return 0;
}

int vsep_workers_start(const struct vsep_settings *s, int fanfd)
{
	int i, r;

	W.s = s;
	W.fanfd = fanfd;
	W.self = getpid();
	r = exes_resolve(&s->exclude_exes);
	if (r < 0)
		return r;
	W.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (W.stopfd < 0)
		return -errno;
	r = queues_new(s->workers, (size_t)s->queue_size);
	for (i = 0; r == 0 && i < W.nq; i++) {
		r = -pthread_create(&W.q[i].thread, NULL, worker_main, &W.q[i]);
		W.q[i].started = r == 0;
	}
	if (r == 0) {
		r = -pthread_create(&W.reader, NULL, reader_main, NULL);
		W.reader_started = r == 0;
	}
	return r;
}

static void queue_stop(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (q->started)
		pthread_join(q->thread, NULL);
	for (; q->len; q->len--) {
		vsep_event_end(&q->ring[q->head].ev, vsep_policy_allows(W.s->on_disconnect),
			       VSEP_WHY_SHUTDOWN);
		q->head = (q->head + 1) % q->cap;
	}
	free(q->ring);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
}

void vsep_workers_stop(void)
{
	uint64_t one = 1;
	int i;

	atomic_store(&W.stopping, true);
	if (W.stopfd >= 0 && write(W.stopfd, &one, sizeof(one)) < 0)
		EPSEC_ERR("cannot stop the reader: %s", strerror(errno));
	if (W.reader_started)
		pthread_join(W.reader, NULL);
	for (i = 0; i < W.nq; i++)
		queue_stop(&W.q[i]);
	free(W.q);
	W.q = NULL;
	W.nq = 0;
	for (size_t j = 0; j < W.nexes; j++)
		free(W.exes[j]);
	free(W.exes);
	W.exes = NULL;
	W.nexes = 0;
	if (W.stopfd >= 0)
		close(W.stopfd);
	W.stopfd = -1;
}
