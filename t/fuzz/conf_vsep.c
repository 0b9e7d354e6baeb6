/* SPDX-License-Identifier: MIT */
/* vsep's configuration as vsep loads it (its own schema, defaults and
 * checks in agent/main.c), for fuzz_conf. */
#include "config.h"
#include "conf_fuzz.h"
#include "../../agent/main.c"
#undef main

int fuzz_conf_vsep(const char *path)
{
	struct vsep v = { .fanfd = -1 };
	int r;

	v.d.conf_path = path;
	defaults(&v.s);
	r = load(&v);
	if (r == 0) {
		fuzz_conf_check(schema, &v.s);
		check_fd_budget(&v.s);
	} else if (r != -EINVAL) {
		abort();
	}
	fuzz_conf_free(&v.conf, r == 0 ? schema : NULL, &v.s);
	epsec_strlist_free(&v.s.protect);
	epsec_strlist_free(&v.s.exclude_paths);
	epsec_strlist_free(&v.s.exclude_exes);
	epsec_intlist_free(&v.s.exclude_uids);
	free(v.conf_abs);
	return r;
}
