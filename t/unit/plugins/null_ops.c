/* SPDX-License-Identifier: MIT */
/* Test verdict plugin the loader must refuse: the ABI fits but the
 * mandatory scan() is missing. */
#include "config.h"

#include <epsec/plugin.h>

static int null_ops_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	*state = 0;
	return 0;
}

static void null_ops_close(void *state)
{
}

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "null_ops",
	.version = "1.0",
	.open = null_ops_open,
	.close = null_ops_close,
};
