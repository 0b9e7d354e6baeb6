/* SPDX-License-Identifier: MIT */
/* The benchmark's baseline for the clamav engine: libclamav called
 * directly (cl_scandesc on each file) with the scan options the plugin
 * uses, on N threads sharing one engine. Reads file names from stdin, one
 * a line; prints "files=N found=F errors=E ms=T" (load time excluded). */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <clamav.h>

struct job {
	struct cl_engine *engine;
	char **files;
	size_t n;
	atomic_size_t next;
	atomic_uint found, errors;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	struct cl_scan_options so = { .parse = ~0u, .general = CL_SCAN_GENERAL_HEURISTICS };
	const char *virname;
	unsigned long scanned;
	size_t i;
	int fd;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->n) {
		fd = open(j->files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			atomic_fetch_add(&j->errors, 1);
			continue;
		}
		virname = NULL;
		scanned = 0;
		switch (cl_scandesc(fd, NULL, &virname, &scanned, j->engine, &so)) {
		case CL_CLEAN: break;
		case CL_VIRUS: atomic_fetch_add(&j->found, 1); break;
		default: atomic_fetch_add(&j->errors, 1); break;
		}
		close(fd);
	}
	return NULL;
}

static int read_list(struct job *j)
{
	char line[4096];
	size_t cap = 0;
	char **v;

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		if (j->n == cap) {
			cap = cap ? cap * 2 : 1024;
			v = realloc(j->files, cap * sizeof(*v));
			if (!v)
				return -1;
			j->files = v;
		}
		if (!(j->files[j->n++] = strdup(line)))
			return -1;
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct job j = { .n = 0 };
	unsigned sigs = 0;
	pthread_t th[64];
	int threads;
	double t0;

	if (argc != 3 || (threads = atoi(argv[2])) < 1 || threads > 64) {
		fprintf(stderr, "usage: clamdirect DATABASE THREADS < files\n");
		return 2;
	}
	if (cl_init(CL_INIT_DEFAULT) != CL_SUCCESS || !(j.engine = cl_engine_new()) ||
	    cl_load(argv[1], j.engine, &sigs, CL_DB_STDOPT) != CL_SUCCESS ||
	    cl_engine_compile(j.engine) != CL_SUCCESS || read_list(&j) < 0) {
		fprintf(stderr, "clamdirect: cannot load %s or read the file list\n", argv[1]);
		return 1;
	}
	t0 = now_ms();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, &j);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	printf("files=%zu found=%u errors=%u ms=%.0f\n", j.n, atomic_load(&j.found),
	       atomic_load(&j.errors), now_ms() - t0);
	cl_engine_free(j.engine);
	for (size_t i = 0; i < j.n; i++)
		free(j.files[i]);
	free(j.files);
	return 0;
}
