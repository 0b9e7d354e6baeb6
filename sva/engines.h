/* SPDX-License-Identifier: MIT */
/* epsec-sva's engines: the `engine` list of its config, each a verdict
 * plugin with an action, run in order on every event, and reloaded (each
 * plugin's own reload) off the scan path. */
#ifndef EPSEC_SVA_ENGINES_H
#define EPSEC_SVA_ENGINES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <libconfig.h>
#include <epsec/epsec.h>
#include <epsec/plugin.h>

struct sva_engine {
	const char *plugin;              /* as configured: a name or a path */
	int action;                      /* enum epsec_action */
	const config_setting_t *options; /* the plugin's own group, or NULL */
	const config_setting_t *where;   /* the `plugin` setting, for messages */
	const struct epsec_verdict_plugin *p;
	void *state;
	bool opened;
	/* Held around reload and signatures, never around scan: a plugin
	 * sees reload alone, but scans run on beside it. */
	pthread_mutex_t reload_lock;
};

struct sva_engines {
	size_t n;
	struct sva_engine *v;
};

/* What the engines decided about one file. */
struct sva_outcome {
	enum epsec_action action;
	const char *engine;  /* the detecting engine, or NULL */
	char signature[EPSEC_SIGNATURE_MAX];
	bool cacheable;      /* false when an engine could not decide */
	unsigned errors;     /* engines that answered EPSEC_SCAN_ERROR */
	/* With no detection, errors > 0 make the outcome an engine error:
	 * the first engine that failed, and "engine: why". */
	const char *error_engine;
	char error[EPSEC_SIGNATURE_MAX + 64];
};

/* Check every entry of the `engine` list (reports all mistakes): 0 or
 * -EINVAL. Nothing is loaded yet. */
int sva_engines_parse(const config_setting_t *list, struct sva_engines *out);
/* Load each plugin and open it with its options; main thread only.
 * -EINVAL for configuration errors (reported), other negative errno
 * otherwise. */
int sva_engines_open(struct sva_engines *e);
void sva_engines_close(struct sva_engines *e);
/* "eicar,clamav": the names reported in HELLO; malloc'd. */
char *sva_engines_names(const struct sva_engines *e);
/* Engines in order; the first detection decides. Thread-safe. */
void sva_engines_scan(const struct sva_engines *e, struct epsec_file *file,
		      struct sva_outcome *out);
/* Each engine's reload in turn (engines without one are skipped), on the
 * calling thread while workers go on scanning; never concurrently with
 * itself. *reloaded counts the engines that took new signatures. 0, or
 * the first failure's negative errno with "engine: the plugin's message"
 * in err; the engines after a failure are still reloaded. */
int sva_engines_reload(struct sva_engines *e, unsigned *reloaded, char *err, size_t len);
/* The engine's one line about its signatures; "reloading" while a reload
 * runs (status must not wait for one). */
void sva_engine_signatures(struct sva_engine *en, char *buf, size_t len);
const char *sva_action_name(int action);

#endif
