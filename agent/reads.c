/* SPDX-License-Identifier: MIT */
/* READs from the SVA, answered by a thread of their own (reads.h says why):
 * one at a time, in the order they came, each result posted back to the
 * loop, which sends it if the link it was asked on is still the one up. */
#include "config.h"
#include "reads.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "held.h"
#include "log.h"

#define EPSEC_LOG_SRC "agent"

struct job {
	struct job *next;
	uint64_t req_id, offset, epoch;
	size_t len;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	size_t n;
	bool stopping, started;
	pthread_t thread;
	struct epsec_loop *loop;
	void (*deliver)(struct vsep_read_done *d);
} R = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .tail = &R.head };

void vsep_read_done_free(struct vsep_read_done *d)
{
	if (!d)
		return;
	free(d->buf);
	free(d);
}

static void posted(struct epsec_loop *loop, void *arg)
{
	R.deliver(arg);
}

static struct vsep_read_done *do_read(const struct job *j)
{
	struct vsep_read_done *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->req_id = j->req_id;
	d->offset = j->offset;
	d->epoch = j->epoch;
	d->buf = malloc(j->len ? j->len : 1);
	d->n = d->buf ? vsep_held_pread(j->req_id, d->buf, j->len, j->offset) : -ENOMEM;
	return d;
}

static struct job *next_job(void)
{
	struct job *j;

	pthread_mutex_lock(&R.lock);
	while (!R.head && !R.stopping)
		pthread_cond_wait(&R.cond, &R.lock);
	j = R.stopping ? NULL : R.head;
	if (j) {
		R.head = j->next;
		if (!R.head)
			R.tail = &R.head;
		R.n--;
	}
	pthread_mutex_unlock(&R.lock);
	return j;
}

/* Under the lock, so nothing is posted once stop has begun (the loop
 * may be gone by the time a hung read returns). Out of memory, a read
 * gets no DATA: the SVA's read times out and the event ends by the
 * agent's own deadline, as any unanswered one does. */
static void hand_back(struct vsep_read_done *d)
{
	pthread_mutex_lock(&R.lock);
	if (R.stopping || epsec_loop_post(R.loop, posted, d) < 0)
		vsep_read_done_free(d);
	pthread_mutex_unlock(&R.lock);
}

static void *reads_main(void *arg)
{
	struct job *j;

	while ((j = next_job())) {
		struct vsep_read_done *d = do_read(j);

		free(j);
		if (d)
			hand_back(d);
	}
	return NULL;
}

int vsep_reads_start(struct epsec_loop *loop, void (*deliver)(struct vsep_read_done *d))
{
	int r;

	R.loop = loop;
	R.deliver = deliver;
	R.stopping = false;
	r = pthread_create(&R.thread, NULL, reads_main, NULL);
	if (r)
		return -r;
	R.started = true;
	return 0;
}

int vsep_reads_submit(uint64_t req_id, uint64_t offset, size_t len, uint64_t epoch)
{
	struct job *j = malloc(sizeof(*j));
	int r = 0;

	if (!j)
		return -ENOMEM;
	j->next = NULL;
	j->req_id = req_id;
	j->offset = offset;
	j->len = len;
	j->epoch = epoch;
	pthread_mutex_lock(&R.lock);
	if (R.n >= VSEP_READS_MAX || R.stopping) {
		r = -EBUSY;
	} else {
		*R.tail = j;
		R.tail = &j->next;
		R.n++;
		pthread_cond_signal(&R.cond);
	}
	pthread_mutex_unlock(&R.lock);
	if (r)
		free(j);
	return r;
}

/* A read stuck on a hung mount must not stop vsep from exiting: after a
 * while the thread is left to the exit (it posts nothing any more). */
static void join_or_leave(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	if (pthread_timedjoin_np(R.thread, NULL, &ts) != 0) {
		EPSEC_WARN("a read of a protected file has not returned in 2 s; exiting without it");
		pthread_detach(R.thread);
	}
}

void vsep_reads_stop(void)
{
	struct job *j, *next;

	pthread_mutex_lock(&R.lock);
	R.stopping = true;
	pthread_cond_broadcast(&R.cond);
	pthread_mutex_unlock(&R.lock);
	if (R.started)
		join_or_leave();
	R.started = false;
	for (j = R.head; j; j = next) {
		next = j->next;
		free(j);
	}
	R.head = NULL;
	R.tail = &R.head;
	R.n = 0;
}
