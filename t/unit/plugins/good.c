/* SPDX-License-Identifier: MIT */
/* Test verdict plugin with a current ABI: finds the marker "BAD-MARKER" in
 * the first 4 KiB, read through the host's pread like a real engine. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <epsec/plugin.h>

struct state {
	const struct epsec_host *host;
};

static int good_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	static const char *const keys[] = { NULL };
	struct state *s;
	int ret = host->conf_check_keys(cfg, keys);

	if (ret < 0)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->host = host;
	*state = s;
	return 0;
}

static enum epsec_scan_result good_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *report)
{
	char buf[4096];
	ssize_t n = file->pread(file, buf, sizeof(buf), 0);

	if (n < 0) {
		strcpy(report->signature, "read error");
		return EPSEC_SCAN_ERROR;
	}
	if (memmem(buf, (size_t)n, "BAD-MARKER", 10)) {
		strcpy(report->signature, "Test.Marker");
		return EPSEC_SCAN_FOUND;
	}
	return EPSEC_SCAN_CLEAN;
}

static void good_close(void *state)
{
	free(state);
}

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "good",
	.version = "1.0",
	.open = good_open,
	.scan = good_scan,
	.close = good_close,
};
