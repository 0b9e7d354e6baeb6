/* SPDX-License-Identifier: MIT */
/* A test scanner appliance on libepsec, the partner SDK, for the mux tests
 * and benchmark. `check` reads every file through the mux and answers
 * ALLOW only when the bytes are the ones its path names (mux_content.h),
 * DENY "mismatch" otherwise (any other path: ALLOW); `null` answers ALLOW at once without reading;
 * `slow` waits -l ms first, so a test can kill it with events in flight.
 *
 *   mux_sva -u URI [-i ID] [-m check|null|slow] [-t THREADS] [-l MS]
 *
 * Runs until SIGTERM/SIGINT, then prints what it did. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <epsec/epsec.h>

#include "mux_content.h"

#define THREADS_MAX 64
#define FILE_MAX (4u * 1024u * 1024u)

enum mode { M_CHECK, M_NULL, M_SLOW };

static enum mode mode = M_CHECK;
static unsigned delay_ms = 200;
static volatile sig_atomic_t stop;
static atomic_ullong n_events, n_mismatch, n_failed;

static void on_signal(int sig)
{
	stop = 1;
}

/* NULL when the file holds what its path says, else why not. */
static const char *check_file(struct epsec_file *f, uint8_t *got, uint8_t *want)
{
	unsigned agent;
	uint64_t seq;
	ssize_t n;

	/* A real agent's file (the restart test runs vsep too): no opinion. */
	if (mux_test_parse(f->path, &agent, &seq) < 0)
		return NULL;
	if (f->size > FILE_MAX)
		return "too big";
	/* pread returns what it has before an error, the error next time. */
	for (uint64_t off = 0; off < f->size; off += (uint64_t)n) {
		n = f->pread(f, got + off, (size_t)(f->size - off), off);
		if (n < 0) {
			atomic_fetch_add(&n_failed, 1);
			return "read failed";
		}
		if (n == 0)
			return "short read";
	}
	mux_test_content(agent, seq, 0, want, (size_t)f->size);
	return memcmp(got, want, (size_t)f->size) ? "mismatch" : NULL;
}

static void answer(struct epsec_event *ev, uint8_t *got, uint8_t *want)
{
	struct epsec_file *f = epsec_event_file(ev);
	const char *why = NULL;

	if (mode == M_SLOW) {
		struct timespec ts = { delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	if (mode != M_NULL)
		why = check_file(f, got, want);
	atomic_fetch_add(&n_events, 1);
	if (why) {
		atomic_fetch_add(&n_mismatch, 1);
		fprintf(stderr, "mux_sva: %s: %s\n", f->path, why);
		epsec_event_verdict(ev, EPSEC_ACTION_DENY, "check", why, false);
		return;
	}
	epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, true);
}

static void *worker(void *arg)
{
	struct epsec_session *s = arg;
	uint8_t *got = malloc(FILE_MAX), *want = malloc(FILE_MAX);
	struct epsec_event *ev;

	while (got && want && !stop) {
		int r = epsec_session_next(s, &ev, 100);

		if (r == -ETIMEDOUT)
			continue;
		if (r < 0)
			break;
		answer(ev, got, want);
	}
	free(got);
	free(want);
	return NULL;
}

static int parse_mode(const char *s)
{
	if (!strcmp(s, "check"))
		mode = M_CHECK;
	else if (!strcmp(s, "null"))
		mode = M_NULL;
	else if (!strcmp(s, "slow"))
		mode = M_SLOW;
	else
		return -1;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: mux_sva -u URI [-i ID] [-m check|null|slow] [-t THREADS] [-l MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct epsec_session_config cfg = { .engines = "check", .generation = 1 };
	struct epsec_session *s;
	pthread_t th[THREADS_MAX];
	int opt, threads = 2, r;

	while ((opt = getopt(argc, argv, "u:i:m:t:l:")) != -1) {
		switch (opt) {
		case 'u': cfg.mux_uri = optarg; break;
		case 'i': cfg.id = optarg; break;
		case 'm': if (parse_mode(optarg) < 0) usage(); break;
		case 't': threads = atoi(optarg); break;
		case 'l': delay_ms = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (!cfg.mux_uri || threads < 1 || threads > THREADS_MAX)
		usage();
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	r = epsec_session_open(&cfg, &s);
	if (r < 0) {
		fprintf(stderr, "mux_sva: %s: %s\n", cfg.mux_uri, strerror(-r));
		return 1;
	}
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, s);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	epsec_session_close(s);
	printf("mux_sva %s: events %llu mismatches %llu read_failures %llu\n",
	       cfg.id ? cfg.id : "", (unsigned long long)n_events, (unsigned long long)n_mismatch,
	       (unsigned long long)n_failed);
	return 0;
}
