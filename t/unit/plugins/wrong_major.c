/* SPDX-License-Identifier: MIT */
/* Test verdict plugin the loader must refuse: a future major ABI (2.0). */
#include "config.h"

#include <epsec/plugin.h>

static int wrong_major_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	*state = 0;
	return 0;
}

static enum epsec_scan_result wrong_major_scan(void *state, struct epsec_file *file,
					   struct epsec_scan_report *report)
{
	return EPSEC_SCAN_CLEAN;
}

static void wrong_major_close(void *state)
{
}

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = 2,
	.abi_minor = 0,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "wrong_major",
	.version = "1.0",
	.open = wrong_major_open,
	.scan = wrong_major_scan,
	.close = wrong_major_close,
};
