/* epsec-sva's state, shared by main.c (which runs it) and control.c
 * (which reports it on the control socket). */
#ifndef EPSEC_SVA_SVA_H
#define EPSEC_SVA_SVA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include <libconfig.h>
#include <epsec/epsec.h>

#include "engines.h"

/* epsec-sva.conf, filled by epsec_conf_load. */
struct sva_settings {
	int debug_level;
	int debug_dest;
	const char *id;
	const char *control;
	const char *plugin_dir;
	const char *mux;
	int workers;
	const config_setting_t *engine;
};

struct sva {
	struct sva_settings set;
	char *id; /* set.id or "sva-<hostname>" */
	struct sva_engines engines;
	struct epsec_session *session;
	uint64_t generation;
	pthread_t *threads;
	size_t n_threads;
	atomic_bool stop;
	atomic_ullong scanned, found, errors;
};

/* The control socket handler (epsec_ctl_fn): status, version, log-level. */
struct json_object *sva_control(const char *cmd, struct json_object *req, void *arg);

#endif
