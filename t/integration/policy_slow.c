/* A verdict plugin for the policy tests only (never installed): a scanner
 * that takes sleep_ms to say "clean" for files whose path contains `match`
 * (every file when match is ""), so the tests can make the SVA slower than
 * the agent's scan_timeout_ms, or stop it mid-scan, on chosen files; and
 * whose reload always works, so the tests can bump the generation. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <epsec/plugin.h>

struct slow {
	int sleep_ms;
	char *match;
};

static int slow_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	static const char *const keys[] = { "sleep_ms", "match", NULL };
	const char *match = "";
	struct slow *s;
	int r = host->conf_check_keys(cfg, keys);

	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
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

static enum epsec_scan_result slow_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *report)
{
	struct slow *s = state;
	struct timespec t = { .tv_sec = s->sleep_ms / 1000,
			      .tv_nsec = (long)(s->sleep_ms % 1000) * 1000000L };

	if (s->sleep_ms > 0 && file->path && strstr(file->path, s->match))
		while (nanosleep(&t, &t) < 0 && errno == EINTR)
			;
	return EPSEC_SCAN_CLEAN;
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
