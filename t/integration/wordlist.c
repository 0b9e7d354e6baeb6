/* SPDX-License-Identifier: MIT */
/* A verdict plugin for epsec-sva's own tests (never installed) whose reload
 * can be watched: it detects words listed in a file ("NAME WORD" per line),
 * and reload reads the file again into a new set swapped in beside the old
 * one, which the scans still using it keep alive. Options slow scans and
 * reloads down so they overlap, and make open fail on demand. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <epsec/plugin.h>

#define NAME "wordlist"
#ifndef WORDLIST_ABI_MAJOR
#define WORDLIST_ABI_MAJOR EPSEC_VERDICT_ABI_MAJOR
#endif
#define WORDS_MAX 64
#define WORD_LEN 64
#define SCAN_MAX (1024u * 1024u)

struct word {
	char name[WORD_LEN];
	char text[WORD_LEN];
};

struct set {
	unsigned refs; /* under state->lock */
	unsigned n;
	unsigned serial;
	struct word w[WORDS_MAX];
};

struct state {
	const struct epsec_host *host;
	char *file;
	int scan_delay_ms, reload_delay_ms;
	pthread_mutex_t lock;
	struct set *cur;
	unsigned serial;
	atomic_uint reloads;
	atomic_bool reloading;
	atomic_ullong overlapped; /* scans that ran while a reload did */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	if (ms > 0)
		nanosleep(&ts, NULL);
}

static int parse_line(struct state *st, char *line, unsigned lineno, struct set *s)
{
	char name[WORD_LEN], text[WORD_LEN], extra;
	int n;

	line[strcspn(line, "\r\n")] = '\0';
	if (!line[strspn(line, " \t")] || line[0] == '#')
		return 0;
	n = sscanf(line, "%63s %63s %c", name, text, &extra);
	if (n != 2 || s->n == WORDS_MAX) {
		st->host->log(EPSEC_LOG_ERR, NAME, "%s:%u: expected NAME WORD, got \"%s\"", st->file,
			      lineno, line);
		return -EINVAL;
	}
	memcpy(s->w[s->n].name, name, sizeof(name));
	memcpy(s->w[s->n].text, text, sizeof(text));
	s->n++;
	return 0;
}

static int load_set(struct state *st, struct set **out)
{
	struct set *s = calloc(1, sizeof(*s));
	char line[256];
	unsigned lineno = 0;
	FILE *f;
	int r = 0;

	if (!s)
		return -ENOMEM;
	f = fopen(st->file, "r");
	if (!f) {
		r = -errno;
		st->host->log(EPSEC_LOG_ERR, NAME, "%s: %s", st->file, strerror(errno));
		free(s);
		return r;
	}
	while (r == 0 && fgets(line, sizeof(line), f))
		r = parse_line(st, line, ++lineno, s);
	fclose(f);
	if (r < 0) {
		free(s);
		return r;
	}
	s->refs = 1;
	*out = s;
	return 0;
}

static struct set *set_get(struct state *st)
{
	struct set *s;

	pthread_mutex_lock(&st->lock);
	s = st->cur;
	s->refs++;
	pthread_mutex_unlock(&st->lock);
	return s;
}

static void set_put(struct state *st, struct set *s)
{
	unsigned left;

	pthread_mutex_lock(&st->lock);
	left = --s->refs;
	pthread_mutex_unlock(&st->lock);
	if (left == 0)
		free(s);
}

static int get_option(const struct epsec_host *host, const config_setting_t *cfg,
		      const char *key, int *value)
{
	const config_setting_t *s = cfg ? config_setting_get_member(cfg, key) : NULL;

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 0)
		return host->conf_error(s, "expected milliseconds (an integer >= 0)");
	*value = config_setting_get_int(s);
	return 0;
}

static int word_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	static const char *const keys[] = { "file", "scan_delay_ms", "reload_delay_ms",
					    "fail_open", NULL };
	const char *file = NULL, *fail = NULL;
	struct state *st;
	int r;

	r = host->conf_check_keys(cfg, keys);
	if (r < 0)
		return r;
	if (cfg && config_setting_lookup_string(cfg, "fail_open", &fail)) {
		host->log(EPSEC_LOG_ERR, NAME, "%s", fail);
		return -EIO;
	}
	if (!cfg || !config_setting_lookup_string(cfg, "file", &file))
		return host->conf_error(cfg, "file: expected the path of a word list");
	st = calloc(1, sizeof(*st));
	if (!st || !(st->file = strdup(file))) {
		free(st);
		return -ENOMEM;
	}
	st->host = host;
	pthread_mutex_init(&st->lock, NULL);
	r = get_option(host, cfg, "scan_delay_ms", &st->scan_delay_ms);
	if (r == 0)
		r = get_option(host, cfg, "reload_delay_ms", &st->reload_delay_ms);
	if (r == 0)
		r = load_set(st, &st->cur);
	if (r < 0) {
		pthread_mutex_destroy(&st->lock);
		free(st->file);
		free(st);
		return r;
	}
	st->cur->serial = ++st->serial;
	*state = st;
	return 0;
}

static enum epsec_scan_result match(const struct set *s, const char *buf, size_t len,
				    struct epsec_scan_report *report)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (memmem(buf, len, s->w[i].text, strlen(s->w[i].text))) {
			snprintf(report->signature, sizeof(report->signature), "%s", s->w[i].name);
			return EPSEC_SCAN_FOUND;
		}
	}
	return EPSEC_SCAN_CLEAN;
}

static enum epsec_scan_result word_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *report)
{
	struct state *st = state;
	size_t len = file->size < SCAN_MAX ? (size_t)file->size : SCAN_MAX;
	char *buf = malloc(len + 1);
	enum epsec_scan_result r;
	struct set *s;
	ssize_t n;

	if (!buf)
		return EPSEC_SCAN_ERROR;
	s = set_get(st);
	if (atomic_load(&st->reloading))
		atomic_fetch_add(&st->overlapped, 1);
	sleep_ms(st->scan_delay_ms);
	n = file->pread(file, buf, len, 0);
	if (n < 0) {
		snprintf(report->signature, sizeof(report->signature), "read: %s",
			 strerror((int)-n));
		r = EPSEC_SCAN_ERROR;
	} else {
		r = match(s, buf, (size_t)n, report);
	}
	set_put(st, s);
	free(buf);
	return r;
}

static int word_reload(void *state)
{
	struct state *st = state;
	struct set *s, *old;
	int r;

	atomic_store(&st->reloading, true);
	/* Compiling takes a while: scans go on with the old set meanwhile. */
	sleep_ms(st->reload_delay_ms);
	r = load_set(st, &s);
	if (r == 0) {
		pthread_mutex_lock(&st->lock);
		old = st->cur;
		s->serial = ++st->serial;
		st->cur = s;
		pthread_mutex_unlock(&st->lock);
		set_put(st, old);
		atomic_fetch_add(&st->reloads, 1);
	}
	atomic_store(&st->reloading, false);
	return r;
}

static int word_signatures(void *state, char *buf, size_t len)
{
	struct state *st = state;
	struct set *s = set_get(st);

	snprintf(buf, len, "%u words from %s, set %u, reloads %u, scans during reloads %llu",
		 s->n, st->file, s->serial, atomic_load(&st->reloads),
		 (unsigned long long)atomic_load(&st->overlapped));
	set_put(st, s);
	return 0;
}

static void word_close(void *state)
{
	struct state *st = state;

	set_put(st, st->cur);
	pthread_mutex_destroy(&st->lock);
	free(st->file);
	free(st);
}

extern const struct epsec_verdict_plugin epsec_verdict_plugin;

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = WORDLIST_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = NAME,
	.version = "test",
	.open = word_open,
	.scan = word_scan,
	.reload = word_reload,
	.signatures = word_signatures,
	.close = word_close,
};
