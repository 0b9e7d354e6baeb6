/* Reader thread and worker threads (fapolicyd's shape): the reader never
 * blocks on anything but a short queue lock, so our own opens and a full
 * queue are answered at once; workers do the slow part (stat, paths,
 * inline data) and hand a held EVENT to the mux side. */
#include "config.h"
#include "workers.h"

#include <errno.h>
#include <limits.h>
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
#include "mux.h"

#define EPSEC_LOG_SRC "agent"

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vsep_event *ring;
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
} W = { .fanfd = -1, .stopfd = -1 };

/* ------------------------------------------------------------ queues */

static bool push(struct queue *q, const struct vsep_event *ev)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	ok = q->len < q->cap;
	if (ok) {
		q->ring[(q->head + q->len) % q->cap] = *ev;
		q->len++;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

/* Blocks; false once stopping (what is left is ended by stop). */
static bool pop(struct queue *q, struct vsep_event *ev)
{
	bool ok;

	pthread_mutex_lock(&q->lock);
	while (q->len == 0 && !atomic_load(&W.stopping))
		pthread_cond_wait(&q->cond, &q->lock);
	ok = !atomic_load(&W.stopping);
	if (ok) {
		*ev = q->ring[q->head];
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

static void dispatch(const struct vsep_event *ev, void *arg)
{
	atomic_fetch_add(&vsep_stats.events, 1);
	if (ev->pid == W.self && ev->kind != VSEP_KIND_SWEEP) {
		vsep_event_end(ev, true, VSEP_WHY_SELF);
		return;
	}
	if (!push(queue_for(ev->pid), ev))
		vsep_event_end(ev, vsep_policy_allows(W.s->on_disconnect), VSEP_WHY_OVERLOAD);
}

void vsep_workers_inject(const struct vsep_event *ev)
{
	dispatch(ev, NULL);
}

static void *reader_main(void *arg)
{
	struct pollfd p[2] = { { .fd = W.fanfd, .events = POLLIN },
			       { .fd = W.stopfd, .events = POLLIN } };
	int r, failures = 0;

	while (!atomic_load(&W.stopping)) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		r = vsep_fan_read(W.fanfd, dispatch, NULL);
		/* EMFILE/ENFILE: the kernel denies the event it could not
		 * give us; say so once per burst, and let fds come back. */
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

static int fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

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

/* Prefixes match whole path components: /srv/tmp covers /srv/tmp/x, not
 * /srv/tmpfoo. */
static bool excluded(const char *path)
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

static struct vsep_req *build_req(const struct vsep_event *ev, const struct stat *st,
				  const char *path)
{
	size_t want = (size_t)W.s->inline_bytes;
	struct vsep_req *r;

	if ((uint64_t)st->st_size < want)
		want = (size_t)st->st_size;
	r = calloc(1, sizeof(*r) + want);
	if (!r || !(r->path = strdup(path))) {
		free(r);
		return NULL;
	}
	r->kind = ev->kind;
	r->pid = ev->pid;
	r->st = *st;
	r->exe = pid_exe(ev->pid);
	read_inline(r, ev->fd, want);
	return r;
}

/* Everything the worker does before the event is held; returns false
 * when it ended the event itself. */
static bool screen(const struct vsep_event *ev, struct stat *st, char *path, size_t len)
{
	bool fail_open = vsep_policy_allows(W.s->on_disconnect);

	if (fstat(ev->fd, st) < 0 || fd_path(ev->fd, path, len) < 0) {
		vsep_event_end(ev, fail_open, VSEP_WHY_ERROR);
		return false;
	}
	if (!S_ISREG(st->st_mode) || excluded(path)) {
		vsep_event_end(ev, true, VSEP_WHY_EXCLUDED);
		return false;
	}
	if (!vsep_mux_ready()) {
		vsep_event_end(ev, fail_open, VSEP_WHY_DISCONNECT);
		return false;
	}
	return true;
}

static void handle(const struct vsep_event *ev)
{
	char path[PATH_MAX];
	struct stat st;
	struct vsep_req *r;
	int err;

	if (!screen(ev, &st, path, sizeof(path)))
		return;
	r = build_req(ev, &st, path);
	err = r ? vsep_held_add(ev, &st, path, &r->req_id) : -ENOMEM;
	if (err < 0) {
		vsep_req_free(r);
		vsep_event_end(ev, vsep_policy_allows(W.s->on_disconnect),
			       err == -ENOSPC ? VSEP_WHY_OVERLOAD : VSEP_WHY_ERROR);
		return;
	}
	vsep_mux_submit(r);
}

static void *worker_main(void *arg)
{
	struct queue *q = arg;
	struct vsep_event ev;

	while (pop(q, &ev))
		handle(&ev);
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

int vsep_workers_start(const struct vsep_settings *s, int fanfd)
{
	int i, r;

	W.s = s;
	W.fanfd = fanfd;
	W.self = getpid();
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
		vsep_event_end(&q->ring[q->head], vsep_policy_allows(W.s->on_disconnect),
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
	if (W.stopfd >= 0)
		close(W.stopfd);
	W.stopfd = -1;
}
