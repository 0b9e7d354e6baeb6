/* SPDX-License-Identifier: MIT */
/* epsec-mux's configuration as the mux loads it (its own schema and
 * defaults in mux/main.c), for fuzz_conf. */
#include "config.h"
#include "conf_fuzz.h"
#include "../../mux/main.c"
#undef main

int fuzz_conf_mux(const char *path)
{
	struct mux_main mm = { 0 };
	int r;

	defaults(&mm.set);
	r = epsec_conf_load(&mm.conf, path, schema, &mm.set);
	if (r == 0)
		fuzz_conf_check(schema, &mm.set);
	else if (r != -EINVAL)
		abort();
	fuzz_conf_free(&mm.conf, r == 0 ? schema : NULL, &mm.set);
	epsec_strlist_free(&mm.set.agents);
	epsec_strlist_free(&mm.set.svas);
	return r;
}
