/* SPDX-License-Identifier: MIT */
/* Test plugin the loader must refuse: a shared object that exports a
 * near-miss of the descriptor name, not epsec_verdict_plugin. */
#include "config.h"

#include <epsec/plugin.h>

const struct epsec_verdict_plugin epsec_verdict_plugins = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "no_symbol",
};
