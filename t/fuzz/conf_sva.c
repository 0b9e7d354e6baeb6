/* SPDX-License-Identifier: MIT */
/* epsec-sva's configuration as the SVA loads it (its own schema, the
 * engine list and the user in sva/main.c), for fuzz_conf. */
#include "config.h"
#include "conf_fuzz.h"
#include "../../sva/main.c"
#undef main

int fuzz_conf_sva(const char *path)
{
	struct sva sva = { .id = NULL };
	struct epsec_conf conf = { .path = NULL };
	int r;

	r = configure(&sva, &conf, path);
	if (r == 0) {
		fuzz_conf_check(schema, &sva.set);
		if (!sva.id || sva.engines.n == 0 || sva.engines.n != (size_t)config_setting_length(sva.set.engine))
			abort();
		for (size_t i = 0; i < sva.engines.n; i++)
			if (!sva.engines.v[i].plugin || !sva.engines.v[i].plugin[0])
				abort();
	} else if (r != -EINVAL) {
		abort();
	}
	sva_engines_close(&sva.engines);
	fuzz_conf_free(&conf, r == 0 ? schema : NULL, &sva.set);
	free(sva.id);
	return r;
}
