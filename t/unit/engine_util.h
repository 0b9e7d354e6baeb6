/* SPDX-License-Identifier: MIT */
/* Shared by the engine unit tests (test_eicar, test_clamav, test_yara): the plugin
 * loaded through the real loader beside a scratch directory, files in
 * memory behind epsec_file->pread, plugin options from a config string,
 * log lines captured for assertions, and refused options. */
#ifndef EPSEC_TEST_ENGINE_UTIL_H
#define EPSEC_TEST_ENGINE_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libconfig.h>
#include <epsec/plugin.h>

#include "host.h"
#include "loader.h"
#include "log.h"

/* ---------------------------------------------------------------- the group */

/* The engine under test and its scratch directory, for the whole group. */
static const struct epsec_verdict_plugin *plugin;
static char dir[64];

/* Logging (warnings and worse, to stderr) and the host as test_NAME, the
 * directory /tmp/epsec-NAME.XXXXXX, and plugin NAME through the loader. */
static inline int engine_setup(const char *name)
{
	static char program[64];
	int r;

	snprintf(program, sizeof(program), "test_%s", name);
	epsec_log_open(program, EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	epsec_host_init(program);
	snprintf(dir, sizeof(dir), "/tmp/epsec-%s.XXXXXX", name);
	if (!mkdtemp(dir)) {
		dir[0] = '\0';
		return -errno;
	}
	r = epsec_loader_init(NULL);
	return r ? r : epsec_loader_verdict(name, &plugin);
}

/* Once the group has closed every state it opened. */
static inline void engine_teardown(void)
{
	char cmd[128];

	epsec_loader_exit();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0] && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* A file in memory that counts what the plugin read. */
struct mem_file {
	struct epsec_file f;
	const unsigned char *data;
	size_t len;
	int fail;          /* errno for every pread, 0 = none */
	size_t max_chunk;  /* short reads: at most this many bytes, 0 = all */
	unsigned reads;
	uint64_t read_end; /* highest offset + length asked for */
};

static inline ssize_t mem_pread(struct epsec_file *f, void *buf, size_t len, uint64_t off)
{
	struct mem_file *m = f->ctx;
	size_t n;

	m->reads++;
	if (off + len > m->read_end)
		m->read_end = off + len;
	if (m->fail)
		return -m->fail;
	if (off >= m->len)
		return 0;
	n = m->len - (size_t)off < len ? m->len - (size_t)off : len;
	if (m->max_chunk && n > m->max_chunk)
		n = m->max_chunk;
	memcpy(buf, m->data + off, n);
	return (ssize_t)n;
}

static inline void mem_init(struct mem_file *m, const void *data, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->data = data;
	m->len = len;
	m->f.path = "/mem/test";
	m->f.exe = "";
	m->f.size = len;
	m->f.kind = EPSEC_EVENT_CLOSE_WRITE;
	m->f.pread = mem_pread;
	m->f.ctx = m;
}

static inline enum epsec_scan_result mem_scan(const struct epsec_verdict_plugin *p, void *state,
					      const void *data, size_t len,
					      struct epsec_scan_report *rep)
{
	struct mem_file m;

	mem_init(&m, data, len);
	memset(rep, 0, sizeof(*rep));
	return p->scan(state, &m.f, rep);
}

/* The EICAR test file, joined here: never whole in the repository. */
static inline void eicar_build(char out[69])
{
	snprintf(out, 69, "%s%s", "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
		 "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
}

/* Open `p` with the options group of a config text (printf format). */
static inline int open_opts(const struct epsec_verdict_plugin *p, void **out, const char *fmt,
			    ...) __attribute__((format(printf, 3, 4)));
static inline int open_opts(const struct epsec_verdict_plugin *p, void **out, const char *fmt,
			    ...)
{
	char text[8192];
	config_t cfg;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		fprintf(stderr, "bad test config: %s\n", config_error_text(&cfg));
		config_destroy(&cfg);
		return -100;
	}
	*out = NULL;
	/* Destroyed right after open: the plugin must copy what it keeps. */
	r = p->open(epsec_host_get(), config_lookup(&cfg, "options"), out);
	config_destroy(&cfg);
	return r;
}

/* ---------------------------------------------------------------- logs */

static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static char captured[65536];

static inline int capture_line(int level, const char *src, const char *line)
{
	size_t used;

	pthread_mutex_lock(&captured_lock);
	used = strlen(captured);
	snprintf(captured + used, sizeof(captured) - used, "%s\n", line);
	pthread_mutex_unlock(&captured_lock);
	fprintf(stderr, "  log: %s\n", line);
	return 0;
}

static inline void capture_start(void)
{
	captured[0] = '\0';
	epsec_log_set_forward(capture_line);
	epsec_log_set_dest(EPSEC_DEST_HOST);
}

static inline void capture_stop(void)
{
	epsec_log_set_dest(EPSEC_DEST_STDERR);
	epsec_log_set_forward(NULL);
}

static inline int captured_has(const char *needle)
{
	int r;

	pthread_mutex_lock(&captured_lock);
	r = strstr(captured, needle) != NULL;
	pthread_mutex_unlock(&captured_lock);
	return r;
}

/* `plugin` refuses the options of a config text (printf format) with
 * -EINVAL, opens nothing, and logs a line containing `needle`. */
static inline void refused(const char *needle, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void refused(const char *needle, const char *fmt, ...)
{
	void *s2 = (void *)1;
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	capture_start();
	assert_int_equal(open_opts(plugin, &s2, "%s", text), -EINVAL);
	capture_stop();
	assert_null(s2);
	if (!captured_has(needle))
		fail_msg("no \"%s\" in the log for %s", needle, text);
}

/* ---------------------------------------------------------------- files */

/* `name` in the directory `in` (dir, or one made under it). */
static inline int write_file(const char *in, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", in, name);
	f = fopen(path, "wb");
	if (!f)
		return -errno;
	n = fwrite(data, 1, len, f);
	if (fclose(f) != 0 || n != len)
		return -EIO;
	return 0;
}

static inline int write_text(const char *in, const char *name, const char *text)
{
	return write_file(in, name, text, strlen(text));
}

static inline void remove_file(const char *in, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", in, name);
	unlink(path);
}

/* Bytes from a fixed-seed generator: clean, and the same every run. */
static inline void fill_random(unsigned char *buf, size_t len, unsigned seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 24);
	}
}

#endif
