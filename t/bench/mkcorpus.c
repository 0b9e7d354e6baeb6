/* SPDX-License-Identifier: MIT */
/* Writes the benchmark corpus: N files of 1..256 KiB (sizes and bytes from a
 * fixed-seed generator, so every run scans the same thing) spread over
 * directories of 100 files each. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int write_file(const char *path, size_t size)
{
	static uint64_t block[32768]; /* 256 KiB */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < (size + 7) / 8; i++)
		block[i] = next_random();
	if (write(fd, block, size) != (ssize_t)size) {
		close(fd);
		return -EIO;
	}
	return close(fd) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
	char path[4096];
	long n;

	if (argc != 3 || (n = strtol(argv[2], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: mkcorpus DIR COUNT\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		size_t size = 1024 + next_random() % (255 * 1024);

		snprintf(path, sizeof(path), "%s/d%03ld", argv[1], i / 100);
		if (i % 100 == 0 && mkdir(path, 0755) < 0 && errno != EEXIST) {
			perror(path);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/d%03ld/f%05ld.bin", argv[1], i / 100, i);
		if (write_file(path, size) < 0) {
			perror(path);
			return 1;
		}
	}
	return 0;
}
