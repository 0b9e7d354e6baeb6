/* epsec-sva's engines: the `engine` list of its config, each a verdict
 * plugin with an action, run in order on every event. */
#ifndef EPSEC_SVA_ENGINES_H
#define EPSEC_SVA_ENGINES_H

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
const char *sva_action_name(int action);

#endif
