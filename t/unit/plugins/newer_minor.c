/* SPDX-License-Identifier: MIT */
/* Test verdict plugin the loader must refuse: a minor ABI newer than the host's (1.3). */
#include "config.h"

#include <epsec/plugin.h>

static int newer_minor_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	*state = 0;
	return 0;
}

static enum epsec_scan_result newer_minor_scan(void *state, struct epsec_file *file,
					   struct epsec_scan_report *report)
{
	return EPSEC_SCAN_CLEAN;
}

static void newer_minor_close(void *state)
{
}

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = 1,
	.abi_minor = 3,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "newer_minor",
	.version = "1.0",
	.open = newer_minor_open,
	.scan = newer_minor_scan,
	.close = newer_minor_close,
};
