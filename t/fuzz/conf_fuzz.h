/* SPDX-License-Identifier: MIT */
/* What the config fuzzer's per-daemon wrappers (conf_vsep.c, conf_mux.c,
 * conf_sva.c) offer it: each runs one daemon's own schema and load path,
 * compiled from the daemon's main.c, on a file. */
#ifndef EPSEC_CONF_FUZZ_H
#define EPSEC_CONF_FUZZ_H

#include "conf.h"

/* Load `path` as the daemon does before it starts; abort() on a broken
 * invariant. Returns the load's result (0 or a negative errno). */
int fuzz_conf_vsep(const char *path);
int fuzz_conf_mux(const char *path);
int fuzz_conf_sva(const char *path);

/* abort() unless every value `schema` stored in `out` is what the schema
 * promises (ints in range, a known choice, URIs that split, ...). */
void fuzz_conf_check(const struct epsec_conf_key *schema, const void *out);
/* abort() unless the transport options recorded for the URIs of `schema`
 * in `out` are gone once `conf` is freed: call instead of epsec_conf_free. */
void fuzz_conf_free(struct epsec_conf *conf, const struct epsec_conf_key *schema,
		    const void *out);

/* The daemons' main.c compiled into the fuzzer: main becomes an unused
 * static function, so nothing it alone calls is linked. */
#define main static __attribute__((unused)) fuzz_unused_main

#endif
