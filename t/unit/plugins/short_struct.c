/* SPDX-License-Identifier: MIT */
/* Test verdict plugin the loader must refuse: a descriptor shorter than ABI 1.0 needs. */
#include "config.h"

#include <epsec/plugin.h>

static int short_struct_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	*state = 0;
	return 0;
}

static enum epsec_scan_result short_struct_scan(void *state, struct epsec_file *file,
					   struct epsec_scan_report *report)
{
	return EPSEC_SCAN_CLEAN;
}

static void short_struct_close(void *state)
{
}

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = 1,
	.abi_minor = 0,
	.struct_size = 16,
	.name = "short_struct",
	.version = "1.0",
	.open = short_struct_open,
	.scan = short_struct_scan,
	.close = short_struct_close,
};
