/* SPDX-License-Identifier: MIT */
/* epsec-sva's signature reloads (SIGHUP, `epsecctl reload`): each engine's
 * own reload, one run at a time on a thread of its own so that scans and
 * the main loop go on meanwhile, then the generation bump that makes
 * agents drop verdicts cached under the old signatures. */
#include "config.h"
#include "sva.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define EPSEC_LOG_SRC "reload"

uint64_t sva_generation_first(void)
{
	time_t now = time(NULL);

	return now > 0 ? (uint64_t)now : 1;
}

/* Up by one, or to the time if that is larger: never backwards, even when
 * the clock is, and ahead of a predecessor unless it reloaded more than
 * once a second on average. */
static uint64_t generation_next(uint64_t old)
{
	uint64_t now = sva_generation_first();

	return now > old ? now : old + 1;
}

void sva_reload_init(struct sva_reload *rl)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&rl->lock, NULL);
	pthread_condattr_init(&attr);
	/* Waits must not jump with the wall clock. */
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&rl->done, &attr);
	pthread_condattr_destroy(&attr);
	atomic_init(&rl->ok, 0);
	atomic_init(&rl->failed, 0);
}

static void report(const struct sva *sva, int r, unsigned n, const char *err, uint64_t gen)
{
	if (r == 0 && n == 0)
		EPSEC_NOTICE("reload: no engine has signatures to reload; generation stays %" PRIu64,
			     gen);
	else if (r == 0)
		EPSEC_NOTICE("reload: %u engine%s reloaded, generation %" PRIu64, n,
			     n == 1 ? "" : "s", gen);
	else if (n == 0)
		EPSEC_ERR("reload failed, old signatures kept (generation %" PRIu64 "): %s", gen,
			  err);
	else
		EPSEC_ERR("reload failed in part: %u engine%s reloaded (generation %" PRIu64
			  "), the others kept their old signatures: %s",
			  n, n == 1 ? "" : "s", gen, err);
}

static void run_once(struct sva *sva)
{
	struct sva_reload *rl = &sva->reload;
	char err[sizeof(rl->error)];
	uint64_t gen = atomic_load(&sva->generation);
	unsigned n;
	int r;

	r = sva_engines_reload(&sva->engines, &n, err, sizeof(err));
	/* Engines that took new signatures make old verdicts stale, even
	 * when another engine failed. Bumped after the swap: an event handed
	 * out before this reports the old generation (libepsec keeps it). */
	if (n > 0) {
		gen = generation_next(gen);
		atomic_store(&sva->generation, gen);
		epsec_session_set_generation(sva->session, gen);
	}
	atomic_fetch_add(r < 0 ? &rl->failed : &rl->ok, 1);
	report(sva, r, n, err, gen);
	pthread_mutex_lock(&rl->lock);
	rl->result = r;
	rl->reloaded = n;
	memcpy(rl->error, err, sizeof(rl->error));
	rl->finished++;
	pthread_cond_broadcast(&rl->done);
	pthread_mutex_unlock(&rl->lock);
}

static void *reload_main(void *arg)
{
	struct sva *sva = arg;
	struct sva_reload *rl = &sva->reload;
	bool more;

	do {
		run_once(sva);
		pthread_mutex_lock(&rl->lock);
		/* Asked for while this ran: the files may have changed after
		 * this run read them, so run once more. */
		more = rl->again && !rl->stopping;
		rl->again = false;
		if (more)
			rl->started++;
		else
			rl->running = false;
		pthread_mutex_unlock(&rl->lock);
	} while (more);
	return NULL;
}

int64_t sva_reload_start(struct sva *sva)
{
	struct sva_reload *rl = &sva->reload;
	int64_t want = 0;
	int r = 0;

	pthread_mutex_lock(&rl->lock);
	if (rl->stopping) {
		r = -ESHUTDOWN;
	} else if (rl->running) {
		rl->again = true;
		want = (int64_t)rl->started + 1;
	} else {
		/* The last thread has set running = false and only returns. */
		if (rl->thread_live)
			pthread_join(rl->thread, NULL);
		rl->thread_live = false;
		want = (int64_t)++rl->started;
		rl->running = true;
		r = -pthread_create(&rl->thread, NULL, reload_main, sva);
		if (r == 0) {
			rl->thread_live = true;
		} else {
			rl->running = false;
			rl->started--;
		}
	}
	pthread_mutex_unlock(&rl->lock);
	return r < 0 ? r : want;
}

bool sva_reload_wait(struct sva *sva, uint64_t want, int timeout_ms)
{
	struct sva_reload *rl = &sva->reload;
	struct timespec deadline;
	bool done;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rl->lock);
	while (rl->finished < want)
		if (pthread_cond_timedwait(&rl->done, &rl->lock, &deadline) == ETIMEDOUT)
			break;
	done = rl->finished >= want;
	pthread_mutex_unlock(&rl->lock);
	return done;
}

void sva_reload_on_hup(void *arg)
{
	struct sva *sva = arg;
	int64_t r = sva_reload_start(sva);

	if (r < 0)
		EPSEC_ERR("SIGHUP: cannot start a reload: %s", strerror((int)-r));
}

void sva_reload_stop(struct sva_reload *rl)
{
	bool live;

	pthread_mutex_lock(&rl->lock);
	rl->stopping = true;
	rl->again = false;
	live = rl->thread_live;
	rl->thread_live = false;
	pthread_mutex_unlock(&rl->lock);
	/* A plugin's reload cannot be interrupted: engines close after it. */
	if (live)
		pthread_join(rl->thread, NULL);
}
