/* SPDX-License-Identifier: MIT */
/* The event loop: epoll over level-triggered fd watches, one timerfd per
 * timer, and an eventfd that wakes the loop for posted work and for stop.
 * Watches carry a generation in the epoll data so an event that was already
 * fetched for a watch deleted (or replaced) meanwhile is never delivered. */
#include "config.h"
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define EPSEC_LOG_SRC "loop"

#define LOOP_BATCH 64

struct watch {
	epsec_loop_fd_fn fn;
	void *arg;
	uint32_t events;
	uint32_t gen; /* 0: no watch on this fd */
};

struct timer {
	struct timer *next;
	int id;
	int fd;
	epsec_loop_timer_fn fn;
	void *arg;
};

struct post {
	struct post *next;
	epsec_loop_post_fn fn;
	void *arg;
};

struct epsec_loop {
	int epfd;
	int wakefd;
	atomic_bool stop;
	struct watch *watches; /* indexed by fd */
	size_t nwatches;
	uint32_t next_gen;
	struct timer *timers;
	int next_timer_id;
	pthread_mutex_t lock; /* guards the post queue only */
	struct post *post_head, **post_tail;
};

uint64_t epsec_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t epsec_now_ms(void)
{
	return epsec_now_us() / 1000u;
}

/* ------------------------------------------------------------ fd watches */

static struct watch *watch_of(struct epsec_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nwatches || !loop->watches[fd].gen)
		return NULL;
	return &loop->watches[fd];
}

static int grow_watches(struct epsec_loop *loop, int fd)
{
	size_t n = loop->nwatches ? loop->nwatches : 64;
	struct watch *w;

	while (n <= (size_t)fd)
		n *= 2;
	if (n == loop->nwatches)
		return 0;
	w = realloc(loop->watches, n * sizeof(*w));
	if (!w)
		return -ENOMEM;
	memset(w + loop->nwatches, 0, (n - loop->nwatches) * sizeof(*w));
	loop->watches = w;
	loop->nwatches = n;
	return 0;
}

static uint64_t epoll_tag(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int epsec_loop_add_fd(struct epsec_loop *loop, int fd, uint32_t events, epsec_loop_fd_fn fn, void *arg)
{
	struct epoll_event ev = { .events = events };
	struct watch *w;
	int ret;

	if (fd < 0 || !fn)
		return -EINVAL;
	/* The kernel decides whether fd is watched: an fd closed without
	 * del_fd left the epoll set by itself, and its number may come back. */
	ret = grow_watches(loop, fd);
	if (ret < 0)
		return ret;
	if (++loop->next_gen == 0)
		loop->next_gen = 1;
	w = &loop->watches[fd];
	ev.data.u64 = epoll_tag(fd, loop->next_gen);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	if (w->gen)
		EPSEC_DBG("fd %d was closed without epsec_loop_del_fd", fd);
	*w = (struct watch){ .fn = fn, .arg = arg, .events = events, .gen = loop->next_gen };
	return 0;
}

int epsec_loop_mod_fd(struct epsec_loop *loop, int fd, uint32_t events)
{
	struct watch *w = watch_of(loop, fd);
	struct epoll_event ev = { .events = events };

	if (!w)
		return -ENOENT;
	if (w->events == events)
		return 0;
	ev.data.u64 = epoll_tag(fd, w->gen);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

void epsec_loop_del_fd(struct epsec_loop *loop, int fd)
{
	struct watch *w = watch_of(loop, fd);

	if (!w)
		return;
	/* The fd may already be closed (and so out of the epoll set). */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(w, 0, sizeof(*w));
}

/* Hang-ups reach the callback as ERR, plus IN for a reader so it reads
 * the end of the stream. */
static uint32_t callback_events(uint32_t got, uint32_t wanted)
{
	uint32_t ev = got & (EPSEC_LOOP_IN | EPSEC_LOOP_OUT | EPSEC_LOOP_ERR);

	if (got & (EPOLLHUP | EPOLLRDHUP))
		ev |= EPSEC_LOOP_ERR | (wanted & EPSEC_LOOP_IN);
	return ev & (wanted | EPSEC_LOOP_ERR);
}

static void dispatch(struct epsec_loop *loop, const struct epoll_event *e)
{
	int fd = (int)(uint32_t)e->data.u64;
	uint32_t gen = (uint32_t)(e->data.u64 >> 32);
	struct watch *w = watch_of(loop, fd);
	uint32_t ev;

	if (!w || w->gen != gen)
		return; /* deleted, or replaced, earlier in this batch */
	ev = callback_events(e->events, w->events);
	if (ev)
		w->fn(loop, fd, ev, w->arg);
}

/* ------------------------------------------------------------ timers */

static void timer_ready(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct timer *t = arg;
	uint64_t expirations;

	if (read(fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	/* t may be freed by its own callback: nothing touches it after. */
	t->fn(loop, t->arg);
}

int epsec_loop_add_timer(struct epsec_loop *loop, unsigned interval_ms, epsec_loop_timer_fn fn, void *arg)
{
	struct itimerspec its = { 0 };
	struct timer *t;
	int ret;

	if (interval_ms == 0 || !fn)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0) {
		ret = -errno;
		goto fail;
	}
	its.it_interval.tv_sec = interval_ms / 1000;
	its.it_interval.tv_nsec = (long)(interval_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = epsec_loop_add_fd(loop, t->fd, EPSEC_LOOP_IN, timer_ready, t);
	if (ret < 0)
		goto fail;
	if (loop->next_timer_id == INT32_MAX)
		loop->next_timer_id = 0;
	t->id = ++loop->next_timer_id;
	t->fn = fn;
	t->arg = arg;
	t->next = loop->timers;
	loop->timers = t;
	return t->id;
fail:
	if (t->fd >= 0)
		close(t->fd);
	free(t);
	return ret;
}

static void timer_free(struct epsec_loop *loop, struct timer *t)
{
	epsec_loop_del_fd(loop, t->fd);
	close(t->fd);
	free(t);
}

void epsec_loop_del_timer(struct epsec_loop *loop, int id)
{
	for (struct timer **p = &loop->timers; *p; p = &(*p)->next) {
		struct timer *t = *p;

		if (t->id == id) {
			*p = t->next;
			timer_free(loop, t);
			return;
		}
	}
}

/* ------------------------------------------------------------ wake-ups */

static void wake(struct epsec_loop *loop)
{
	uint64_t one = 1;
	ssize_t n;

	/* Only fails when the counter is saturated: the loop is awake then. */
	n = write(loop->wakefd, &one, sizeof(one));
	(void)n;
}

int epsec_loop_post(struct epsec_loop *loop, epsec_loop_post_fn fn, void *arg)
{
	struct post *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->next = NULL;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&loop->lock);
	*loop->post_tail = p;
	loop->post_tail = &p->next;
	pthread_mutex_unlock(&loop->lock);
	wake(loop);
	return 0;
}

/* Takes the whole queue at once, so work posted by a posted function runs
 * on the next turn and cannot starve the fds. */
static void run_posts(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct post *p, *next;
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		EPSEC_WARN("wake-up eventfd: %s", strerror(errno));
	pthread_mutex_lock(&loop->lock);
	p = loop->post_head;
	loop->post_head = NULL;
	loop->post_tail = &loop->post_head;
	pthread_mutex_unlock(&loop->lock);
	for (; p; p = next) {
		next = p->next;
		p->fn(loop, p->arg);
		free(p);
	}
}

void epsec_loop_stop(struct epsec_loop *loop)
{
	atomic_store(&loop->stop, true);
	wake(loop);
}

/* ------------------------------------------------------------ the loop */

int epsec_loop_new(struct epsec_loop **out)
{
	struct epsec_loop *loop = calloc(1, sizeof(*loop));
	int ret;

	if (!loop)
		return -ENOMEM;
	loop->wakefd = -1;
	pthread_mutex_init(&loop->lock, NULL);
	loop->post_tail = &loop->post_head;
	atomic_init(&loop->stop, false);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto fail_errno;
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wakefd < 0)
		goto fail_errno;
	ret = epsec_loop_add_fd(loop, loop->wakefd, EPSEC_LOOP_IN, run_posts, NULL);
	if (ret < 0)
		goto fail;
	*out = loop;
	return 0;
fail_errno:
	ret = -errno;
fail:
	epsec_loop_free(loop);
	return ret;
}

/* Posted work that never ran is dropped with the loop. */
void epsec_loop_free(struct epsec_loop *loop)
{
	struct post *p, *next;

	if (!loop)
		return;
	while (loop->timers) {
		struct timer *t = loop->timers;

		loop->timers = t->next;
		timer_free(loop, t);
	}
	for (p = loop->post_head; p; p = next) {
		next = p->next;
		free(p);
	}
	if (loop->wakefd >= 0)
		close(loop->wakefd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	pthread_mutex_destroy(&loop->lock);
	free(loop->watches);
	free(loop);
}

/* A stop requested before run (a signal during start-up) is honoured;
 * the flag is cleared on the way out so the loop can run again. */
int epsec_loop_run(struct epsec_loop *loop)
{
	struct epoll_event evs[LOOP_BATCH];
	int n, ret = 0;

	while (!atomic_load(&loop->stop)) {
		n = epoll_wait(loop->epfd, evs, LOOP_BATCH, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			EPSEC_ERR("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !atomic_load(&loop->stop); i++)
			dispatch(loop, &evs[i]);
	}
	atomic_store(&loop->stop, false);
	return ret;
}
