/* epsecctl scan: PLACEHOLDER being written by a helper; replaced before commit. */
#include "config.h"
#include "epsecctl.h"
#include <stdio.h>

int epsecctl_scan(const struct epsecctl_env *env, int argc, char **argv)
{
	(void)env;
	(void)argc;
	fprintf(stderr, "epsecctl: %s: not available in this build\n", argv[0]);
	return EPSECCTL_EX_USAGE;
}
