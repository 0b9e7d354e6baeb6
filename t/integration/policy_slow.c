/* SPDX-License-Identifier: MIT */
/* A verdict plugin for the policy tests only (never installed): a scanner
 * that takes sleep_ms to say `result` ("clean", "found" or "error") for
 * files whose path contains `match` (every file when match is ""), so the
 * tests can make the SVA slower than the agent's scan_timeout_ms, stop it
 * mid-scan, or fail, on chosen files; other files are clean at once. It
 * keeps the file's deadline as a real engine does: a sleep that would
 * pass it ends there as an error. Its reload always works, so the tests
 * can bump the generation. */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <epsec/plugin.h>

/* result = "exploit": what a parser taken over by hostile content does
 * next, opening a socket; the SVA's seccomp filter must stop it. */
#define EXPLOIT ((enum epsec_scan_result)100)

struct slow {
	int sleep_ms;
	char *match;
	enum epsec_scan_result result;
};

static int parse_result(const struct epsec_host *host, const config_setting_t *cfg,
			enum epsec_scan_result *out)
{
	const config_setting_t *r = cfg ? config_setting_get_member(cfg, "result") : NULL;
	const char *v = r ? config_setting_get_string(r) : "clean";

	if (v && !strcmp(v, "clean"))
		*out = EPSEC_SCAN_CLEAN;
	else if (v && !strcmp(v, "found"))
		*out = EPSEC_SCAN_FOUND;
	else if (v && !strcmp(v, "error"))
		*out = EPSEC_SCAN_ERROR;
	else if (v && !strcmp(v, "exploit"))
		*out = EXPLOIT;
	else
		return host->conf_error(r, "expected \"clean\", \"found\", \"error\" or "
					   "\"exploit\"");
	return 0;
}

static int slow_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	static const char *const keys[] = { "sleep_ms", "match", "result", NULL };
	const char *match = "";
	struct slow *s;
	int r = host->conf_check_keys(cfg, keys);

	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if ((r = parse_result(host, cfg, &s->result)) < 0) {
		free(s);
		return r;
	}
	if (cfg) {
		config_setting_lookup_int(cfg, "sleep_ms", &s->sleep_ms);
		config_setting_lookup_string(cfg, "match", &match);
	}
	s->match = strdup(match);
	if (!s->match) {
		free(s);
		return -ENOMEM;
	}
	*state = s;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* false when the deadline came first. */
static bool sleep_within(int ms, int64_t deadline_ms)
{
	int64_t end = now_ms() + ms;
	bool cut = deadline_ms > 0 && deadline_ms < end;
	int64_t left = (cut ? deadline_ms : end) - now_ms();
	struct timespec t = { .tv_sec = left > 0 ? left / 1000 : 0,
			      .tv_nsec = left > 0 ? (long)(left % 1000) * 1000000L : 0 };

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
	return !cut;
}

static enum epsec_scan_result slow_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *report)
{
	struct slow *s = state;

	if (!file->path || !strstr(file->path, s->match))
		return EPSEC_SCAN_CLEAN;
	if (s->sleep_ms > 0 && !sleep_within(s->sleep_ms, file->deadline_ms)) {
		snprintf(report->signature, sizeof(report->signature),
			 "scan stopped at its deadline");
		return EPSEC_SCAN_ERROR;
	}
	if (s->result == EXPLOIT) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		snprintf(report->signature, sizeof(report->signature),
			 "the exploit ran: socket() gave %d", fd);
		return EPSEC_SCAN_FOUND;
	}
	if (s->result != EPSEC_SCAN_CLEAN)
		snprintf(report->signature, sizeof(report->signature), "%s",
			 s->result == EPSEC_SCAN_FOUND ? "Test.Slow.Found" : "test error, as asked");
	return s->result;
}

/* Nothing to recompile: a reload that succeeds, so that `epsecctl reload`
 * bumps the SVA's signature generation in the cache tests. */
static int slow_reload(void *state)
{
	return 0;
}

static void slow_close(void *state)
{
	struct slow *s = state;

	free(s->match);
	free(s);
}

extern const struct epsec_verdict_plugin epsec_verdict_plugin;

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "test_slow",
	.version = "test",
	.open = slow_open,
	.scan = slow_scan,
	.reload = slow_reload,
	.close = slow_close,
};
