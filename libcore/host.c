/* SPDX-License-Identifier: MIT */
/* The one struct epsec_host of this process: what every plugin it loads
 * may call back into (logging, config error reporting and config values
 * read the way epsec's own files read them). */
#include "config.h"
#include "host.h"

#include "conf.h"
#include "log.h"

static struct epsec_host host = {
	.abi_major = EPSEC_HOST_ABI_MAJOR,
	.abi_minor = EPSEC_HOST_ABI_MINOR,
	.struct_size = sizeof(struct epsec_host),
	.program = "epsec",
	.log = epsec_log,
	.conf_error = epsec_conf_error,
	.conf_check_keys = epsec_conf_check_keys,
	.conf_size = epsec_conf_size,
	.conf_strlist = epsec_conf_strlist,
};

void epsec_host_init(const char *program)
{
	host.program = program;
}

const struct epsec_host *epsec_host_get(void)
{
	return &host;
}
