/* SPDX-License-Identifier: MIT */
/* The opener of the policy tests: PROCS processes open FILEs (round robin)
 * OPENS times in all and report what the kernel answered and how long the
 * slowest open took, so a script can tell "every opener returned within
 * the timeout with the policy's answer" without forking a cat per open.
 *
 *   policy-open [-n OPENS] [-p PROCS] FILE...
 *   -> opens=N ok=N denied=N other=N max_ms=N mean_us=N */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tally {
	long opens, ok, denied, other;
	double max_ms, total_us;
};

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void one_open(const char *path, struct tally *t)
{
	double t0 = now_us(), us;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	us = now_us() - t0;
	t->opens++;
	t->total_us += us;
	if (us / 1000 > t->max_ms)
		t->max_ms = us / 1000;
	if (fd >= 0) {
		t->ok++;
		close(fd);
	} else if (errno == EPERM || errno == EACCES) {
		t->denied++;
	} else {
		t->other++;
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
	}
}

static void child(int out, int k, long n, char **files, int nfiles)
{
	struct tally t = { 0 };

	for (long i = 0; i < n; i++)
		one_open(files[(k + i) % nfiles], &t);
	if (write(out, &t, sizeof(t)) != (ssize_t)sizeof(t))
		_exit(1);
	_exit(0);
}

static void add(struct tally *sum, const struct tally *t)
{
	sum->opens += t->opens;
	sum->ok += t->ok;
	sum->denied += t->denied;
	sum->other += t->other;
	sum->total_us += t->total_us;
	if (t->max_ms > sum->max_ms)
		sum->max_ms = t->max_ms;
}

static int collect(int in, int procs, struct tally *sum)
{
	struct tally t;
	int status, bad = 0;

	for (int k = 0; k < procs; k++) {
		if (read(in, &t, sizeof(t)) == (ssize_t)sizeof(t))
			add(sum, &t);
		else
			bad++;
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	return bad;
}

int main(int argc, char **argv)
{
	long opens = 1;
	int procs = 1, c, p[2], bad;
	struct tally sum = { 0 };

	while ((c = getopt(argc, argv, "n:p:")) != -1) {
		if (c == 'n')
			opens = atol(optarg);
		else if (c == 'p')
			procs = atoi(optarg);
		else
			return 2;
	}
	if (optind >= argc || opens < 1 || procs < 1 || pipe(p) < 0) {
		fprintf(stderr, "usage: policy-open [-n OPENS] [-p PROCS] FILE...\n");
		return 2;
	}
	for (int k = 0; k < procs; k++) {
		long n = opens / procs + (k < opens % procs);

		if (fork() == 0) {
			close(p[0]);
			child(p[1], k, n, argv + optind, argc - optind);
		}
	}
	close(p[1]);
	bad = collect(p[0], procs, &sum);
	printf("opens=%ld ok=%ld denied=%ld other=%ld max_ms=%.0f mean_us=%.1f\n", sum.opens,
	       sum.ok, sum.denied, sum.other, sum.max_ms,
	       sum.opens ? sum.total_us / (double)sum.opens : 0.0);
	return bad ? 1 : 0;
}
