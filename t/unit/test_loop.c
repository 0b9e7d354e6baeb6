/* SPDX-License-Identifier: MIT */
/* libcore/loop.c: timers, posts and stop from other threads, and the
 * guarantee that a watch removed inside a callback gets no more events,
 * even ones already fetched in the same epoll batch. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

static struct epsec_loop *loop;

static int setup(void **state)
{
	return epsec_loop_new(&loop);
}

static int teardown(void **state)
{
	epsec_loop_free(loop);
	loop = NULL;
	return 0;
}

static void stop_cb(struct epsec_loop *l, void *arg)
{
	epsec_loop_stop(l);
}

/* Every test runs the loop under a watchdog timer, so a bug fails the
 * test instead of hanging it. */
static void run_for(unsigned max_ms)
{
	int id = epsec_loop_add_timer(loop, max_ms, stop_cb, NULL);

	assert_true(id > 0);
	assert_int_equal(epsec_loop_run(loop), 0);
	epsec_loop_del_timer(loop, id);
}

/* ------------------------------------------------------------ timers */

struct ticks {
	int count, stop_at, id;
};

static void tick(struct epsec_loop *l, void *arg)
{
	struct ticks *t = arg;

	if (++t->count == t->stop_at)
		epsec_loop_stop(l);
}

static void timers_fire(void **state)
{
	struct ticks fast = { .stop_at = 10 }, slow = { .stop_at = -1 };
	uint64_t start = epsec_now_ms(), took;

	fast.id = epsec_loop_add_timer(loop, 10, tick, &fast);
	slow.id = epsec_loop_add_timer(loop, 35, tick, &slow);
	assert_true(fast.id > 0 && slow.id > 0 && fast.id != slow.id);
	run_for(5000);
	took = epsec_now_ms() - start;
	assert_int_equal(fast.count, 10);
	assert_true(took >= 95 && took < 2000);
	/* 100 ms of a 35 ms timer: 2 or 3 ticks, whatever the scheduler did. */
	assert_in_range(slow.count, 2, 3);
	epsec_loop_del_timer(loop, fast.id);
	epsec_loop_del_timer(loop, slow.id);
	assert_int_equal(epsec_loop_add_timer(loop, 0, tick, &fast), -EINVAL);
}

static void self_deleting(struct epsec_loop *l, void *arg)
{
	struct ticks *t = arg;

	t->count++;
	epsec_loop_del_timer(l, t->id);
}

static void timer_deletes_itself(void **state)
{
	struct ticks t = { 0 };

	t.id = epsec_loop_add_timer(loop, 5, self_deleting, &t);
	run_for(100);
	assert_int_equal(t.count, 1);
}

/* ------------------------------------------------------------ threads */

struct posted {
	pthread_t runner;
	int ran;
};

static void record_thread(struct epsec_loop *l, void *arg)
{
	struct posted *p = arg;

	p->runner = pthread_self();
	p->ran++;
	epsec_loop_stop(l);
}

static void *post_from_thread(void *arg)
{
	usleep(20000);
	if (epsec_loop_post(loop, record_thread, arg) != 0)
		return (void *)1;
	return NULL;
}

static void post_runs_on_loop_thread(void **state)
{
	struct posted p = { 0 };
	pthread_t th;
	void *res;

	assert_int_equal(pthread_create(&th, NULL, post_from_thread, &p), 0);
	run_for(5000);
	pthread_join(th, &res);
	assert_null(res);
	assert_int_equal(p.ran, 1);
	assert_true(pthread_equal(p.runner, pthread_self()));
}

#define POSTERS 4
#define POSTS 500

struct order {
	pthread_mutex_t lock;
	int last[POSTERS];
	int total;
	bool in_order;
};

struct post_item {
	struct order *o;
	int thread, seq;
};

static struct post_item items[POSTERS][POSTS];

static void count_post(struct epsec_loop *l, void *arg)
{
	struct post_item *it = arg;

	/* FIFO per posting thread. */
	if (it->seq != it->o->last[it->thread] + 1)
		it->o->in_order = false;
	it->o->last[it->thread] = it->seq;
	if (++it->o->total == POSTERS * POSTS)
		epsec_loop_stop(l);
}

static void *poster(void *arg)
{
	struct post_item *mine = arg;

	for (int i = 0; i < POSTS; i++)
		if (epsec_loop_post(loop, count_post, &mine[i]) != 0)
			return (void *)1;
	return NULL;
}

static void many_posts_in_order(void **state)
{
	struct order o = { .in_order = true };
	pthread_t th[POSTERS];

	for (int t = 0; t < POSTERS; t++) {
		o.last[t] = -1;
		for (int i = 0; i < POSTS; i++)
			items[t][i] = (struct post_item){ &o, t, i };
		assert_int_equal(pthread_create(&th[t], NULL, poster, items[t]), 0);
	}
	run_for(10000);
	for (int t = 0; t < POSTERS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(o.total, POSTERS * POSTS);
	assert_true(o.in_order);
}

static void *stop_later(void *arg)
{
	usleep(50000);
	epsec_loop_stop(loop);
	return NULL;
}

static void stop_from_thread(void **state)
{
	uint64_t start = epsec_now_ms(), took;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, stop_later, NULL), 0);
	run_for(5000);
	took = epsec_now_ms() - start;
	pthread_join(th, NULL);
	assert_true(took >= 45 && took < 2000);

	/* A stop before run is honoured once, then the loop runs again. */
	epsec_loop_stop(loop);
	start = epsec_now_ms();
	assert_int_equal(epsec_loop_run(loop), 0);
	assert_true(epsec_now_ms() - start < 50);
	start = epsec_now_ms();
	run_for(30);
	assert_true(epsec_now_ms() - start >= 25);
}

/* ------------------------------------------------------------ fd watches */

struct pipe_watch {
	int fds[2];
	int calls;
	struct pipe_watch *other; /* deleted by this one's callback */
	bool replace;             /* ...and its fd number reused at once */
	int new_fd;
	int new_calls;
};

static void make_readable_pipe(struct pipe_watch *p)
{
	assert_int_equal(pipe2(p->fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(write(p->fds[1], "x", 1), 1);
}

static void new_fd_cb(struct epsec_loop *l, int fd, uint32_t events, void *arg)
{
	struct pipe_watch *p = arg;

	p->new_calls++;
}

static void deleting_cb(struct epsec_loop *l, int fd, uint32_t events, void *arg)
{
	struct pipe_watch *p = arg, *o = p->other;
	int fds[2];

	p->calls++;
	assert_true(events & EPSEC_LOOP_IN);
	/* Never drained: level-triggered, it would fire again if watched. */
	epsec_loop_del_fd(l, fd);
	if (!o || o->calls)
		return;
	epsec_loop_del_fd(l, o->fds[0]);
	if (!o->replace)
		return;
	/* The fd number of the other watch, taken by a pipe with no data:
	 * an event fetched for the old watch must not reach the new one. */
	close(o->fds[0]);
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(fds[0], o->fds[0]);
	o->new_fd = fds[0];
	o->fds[0] = -1;
	close(o->fds[1]);
	o->fds[1] = fds[1];
	assert_int_equal(epsec_loop_add_fd(l, o->new_fd, EPSEC_LOOP_IN, new_fd_cb, o), 0);
}

static void close_pipe(struct pipe_watch *p)
{
	if (p->fds[0] >= 0)
		close(p->fds[0]);
	if (p->new_fd > 0) {
		epsec_loop_del_fd(loop, p->new_fd);
		close(p->new_fd);
	}
	close(p->fds[1]);
}

static void delete_in_callback(bool replace)
{
	struct pipe_watch a = { .new_fd = -1 }, b = { .new_fd = -1 };

	make_readable_pipe(&a);
	make_readable_pipe(&b);
	a.other = &b;
	b.other = &a;
	a.replace = b.replace = replace;
	/* Both readable before the loop starts: one epoll batch has both. */
	assert_int_equal(epsec_loop_add_fd(loop, a.fds[0], EPSEC_LOOP_IN, deleting_cb, &a), 0);
	assert_int_equal(epsec_loop_add_fd(loop, b.fds[0], EPSEC_LOOP_IN, deleting_cb, &b), 0);
	run_for(60);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(a.new_calls + b.new_calls, 0);
	if (replace) {
		/* The new watch works once there is something to read. */
		struct pipe_watch *o = a.calls ? &b : &a;

		assert_int_equal(write(o->fds[1], "y", 1), 1);
		run_for(30);
		assert_true(o->new_calls > 0);
	}
	close_pipe(&a);
	close_pipe(&b);
}

static void remove_fd_in_callback(void **state)
{
	delete_in_callback(false);
}

static void remove_and_reuse_fd_in_callback(void **state)
{
	delete_in_callback(true);
}

static void count_cb(struct epsec_loop *l, int fd, uint32_t events, void *arg)
{
	int *n = arg;

	(*n)++;
	if (events & EPSEC_LOOP_OUT)
		epsec_loop_mod_fd(l, fd, EPSEC_LOOP_IN);
}

static void level_triggered_and_mod(void **state)
{
	int fds[2], n = 0;

	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(epsec_loop_add_fd(loop, fds[0], EPSEC_LOOP_IN, count_cb, &n), 0);
	assert_int_equal(epsec_loop_add_fd(loop, fds[0], EPSEC_LOOP_IN, count_cb, &n), -EEXIST);
	run_for(30);
	assert_true(n > 3); /* not drained: fires on every turn */

	/* Write end: OUT once, then only IN wanted (never readable). */
	n = 0;
	assert_int_equal(epsec_loop_add_fd(loop, fds[1], EPSEC_LOOP_OUT, count_cb, &n), 0);
	epsec_loop_del_fd(loop, fds[0]);
	run_for(30);
	assert_int_equal(n, 1);
	epsec_loop_del_fd(loop, fds[1]);
	assert_int_equal(epsec_loop_mod_fd(loop, fds[1], EPSEC_LOOP_IN), -ENOENT);
	close(fds[1]);

	/* Closed while watched (no del_fd): its number can be watched again. */
	assert_int_equal(epsec_loop_add_fd(loop, fds[0], EPSEC_LOOP_IN, count_cb, &n), 0);
	close(fds[0]);
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	n = 0;
	assert_int_equal(epsec_loop_add_fd(loop, fds[0], EPSEC_LOOP_IN, count_cb, &n), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	run_for(20);
	assert_true(n > 0);
	epsec_loop_del_fd(loop, fds[0]);
	close(fds[0]);
	close(fds[1]);
}

struct writer {
	int fd, calls;
	struct writer *other;
};

static void quiet_both(struct epsec_loop *l, int fd, uint32_t events, void *arg)
{
	struct writer *w = arg;

	w->calls++;
	epsec_loop_mod_fd(l, w->fd, EPSEC_LOOP_IN);
	epsec_loop_mod_fd(l, w->other->fd, EPSEC_LOOP_IN);
}

/* After mod_fd, an event already fetched for what is no longer wanted
 * (OUT here) is not delivered. */
static void mod_inside_batch(void **state)
{
	int sv[2];
	struct writer a = { 0 }, b = { 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	a = (struct writer){ .fd = sv[0], .other = &b };
	b = (struct writer){ .fd = sv[1], .other = &a };
	assert_int_equal(epsec_loop_add_fd(loop, a.fd, EPSEC_LOOP_OUT, quiet_both, &a), 0);
	assert_int_equal(epsec_loop_add_fd(loop, b.fd, EPSEC_LOOP_OUT, quiet_both, &b), 0);
	run_for(30);
	assert_int_equal(a.calls + b.calls, 1);
	epsec_loop_del_fd(loop, a.fd);
	epsec_loop_del_fd(loop, b.fd);
	close(sv[0]);
	close(sv[1]);
}

static void hup_cb(struct epsec_loop *l, int fd, uint32_t events, void *arg)
{
	uint32_t *seen = arg;

	*seen |= events;
	epsec_loop_del_fd(l, fd);
}

/* A closed peer reaches a reader as IN (to read the end) plus ERR. */
static void hangup_reported(void **state)
{
	uint32_t seen = 0;
	int fds[2];

	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	close(fds[1]);
	assert_int_equal(epsec_loop_add_fd(loop, fds[0], EPSEC_LOOP_IN, NULL, NULL), -EINVAL);
	assert_int_equal(epsec_loop_add_fd(loop, fds[0], EPSEC_LOOP_IN, hup_cb, &seen), 0);
	run_for(30);
	assert_int_equal(seen, EPSEC_LOOP_IN | EPSEC_LOOP_ERR);
	close(fds[0]);
}

static void clocks(void **state)
{
	uint64_t a = epsec_now_us(), m = epsec_now_ms();

	usleep(2000);
	assert_true(epsec_now_us() - a >= 2000);
	assert_true(epsec_now_ms() >= m + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(timers_fire, setup, teardown),
		cmocka_unit_test_setup_teardown(timer_deletes_itself, setup, teardown),
		cmocka_unit_test_setup_teardown(post_runs_on_loop_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(many_posts_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_from_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(remove_fd_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(remove_and_reuse_fd_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(level_triggered_and_mod, setup, teardown),
		cmocka_unit_test_setup_teardown(mod_inside_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(hangup_reported, setup, teardown),
		cmocka_unit_test(clocks),
	};

	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
