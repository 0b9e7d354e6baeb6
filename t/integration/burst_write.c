/* SPDX-License-Identifier: MIT */
/* The writer of the burst test: PROCS processes write N files each into
 * DIR at once (so their close-after-write events come in a burst), every
 * EVERY-th of them with the bytes of SAMPLE (the EICAR file the script
 * made), the rest with a line of its own.
 *
 *   burst-write DIR N PROCS EVERY SAMPLE
 *   -> written=N sampled=N */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t read_sample(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len) : -1;

	if (fd >= 0)
		close(fd);
	return n > 0 ? (size_t)n : 0;
}

static void write_one(const char *path, const char *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return;
	if (write(fd, bytes, len) != (ssize_t)len)
		perror(path);
	close(fd);
}

static void writer(const char *dir, long n, int proc, long every, const char *sample,
		   size_t sample_len)
{
	char path[4096], line[64];

	for (long i = 0; i < n; i++) {
		bool sampled = every > 0 && i % every == 0;

		snprintf(path, sizeof(path), "%s/w%d-%ld%s", dir, proc, i, sampled ? ".com" : ".txt");
		snprintf(line, sizeof(line), "burst %d %ld\n", proc, i);
		if (sampled)
			write_one(path, sample, sample_len);
		else
			write_one(path, line, strlen(line));
	}
}

int main(int argc, char **argv)
{
	char sample[4096];
	size_t sample_len;
	long n, every;
	int procs;

	if (argc != 6) {
		fprintf(stderr, "usage: burst-write DIR N PROCS EVERY SAMPLE\n");
		return 2;
	}
	n = atol(argv[2]);
	procs = atoi(argv[3]);
	every = atol(argv[4]);
	sample_len = read_sample(argv[5], sample, sizeof(sample));
	for (int p = 0; p < procs; p++) {
		if (fork() == 0) {
			writer(argv[1], n, p, every, sample, sample_len);
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	printf("written=%ld sampled=%ld\n", n * procs, every > 0 ? procs * ((n + every - 1) / every) : 0);
	return 0;
}
