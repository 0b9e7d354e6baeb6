/* SPDX-License-Identifier: MIT */
/* epsecctl metrics: every running daemon's status in the Prometheus text
 * exposition format (0.0.4), for node_exporter's textfile collector or a
 * scrape wrapper. Counters are what the daemons count (monotonic, _total);
 * gauges what they hold now. Names are derived from the status keys, so a
 * counter a daemon adds shows up without a change here. */
#include "config.h"
#include "epsecctl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

#define CALL_TIMEOUT_MS 900

static const struct source {
	const char *daemon, *prefix;
	const char *const *gauges; /* keys of "counters" that are levels, not counts */
} sources[] = {
	{ "vsep", "epsec_vsep", (const char *const[]){ "unscanned", NULL } },
	{ "epsec-mux", "epsec_mux", (const char *const[]){ NULL } },
	{ "epsec-sva", "epsec_sva", (const char *const[]){ NULL } },
};
#define N_SOURCES (sizeof(sources) / sizeof(sources[0]))

/* Label values: backslash, double quote and newline escaped. */
static void label_value(FILE *f, const char *v)
{
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample with the label id="..." and an optional second label. */
static void sample(FILE *f, const char *name, const char *id, const char *key, const char *val,
		   long long v)
{
	fprintf(f, "%s{id=", name);
	label_value(f, id);
	if (key) {
		fprintf(f, ",%s=", key);
		label_value(f, val);
	}
	fprintf(f, "} %lld\n", v);
}

static bool listed(const char *const *names, const char *key)
{
	for (; *names; names++)
		if (!strcmp(*names, key))
			return true;
	return false;
}

/* Every integer member of `o` (a "counters" or "content" object). */
static void members(FILE *f, const struct source *s, const char *id, struct json_object *o,
		    const char *const *gauges)
{
	char name[160], help[200];

	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, key, val) {
		bool gauge = listed(gauges, key);

		if (!json_object_is_type(val, json_type_int))
			continue;
		snprintf(name, sizeof(name), "%s_%s%s", s->prefix, key, gauge ? "" : "_total");
		snprintf(help, sizeof(help), "%s status: %s (see epsecctl status)", s->daemon, key);
		family(f, name, gauge ? "gauge" : "counter", help);
		sample(f, name, id, NULL, NULL, json_object_get_int64(val));
	}
}

static void gauge(FILE *f, const struct source *s, const char *id, const char *key,
		  const char *help, long long v)
{
	char name[160];

	snprintf(name, sizeof(name), "%s_%s", s->prefix, key);
	family(f, name, "gauge", help);
	sample(f, name, id, NULL, NULL, v);
}

static void vsep_gauges(FILE *f, const struct source *s, const char *id, struct json_object *o)
{
	gauge(f, s, id, "in_flight", "events held or queued now", jint(o, "in_flight"));
	gauge(f, s, id, "mux_connected", "1 when connected to the mux",
	      jbool(jget(o, "mux"), "connected"));
	gauge(f, s, id, "protected_paths", "paths protected", (long long)jlen(jget(o, "protect")));
}

/* Prometheus wants base units: the mux counts microseconds. */
static void seconds(FILE *f, const char *name, const char *help, const char *id, long long us)
{
	family(f, name, "gauge", help);
	fprintf(f, "%s{id=", name);
	label_value(f, id);
	fprintf(f, "} %.6f\n", (double)us / 1e6);
}

static void mux_gauges(FILE *f, const struct source *s, const char *id, struct json_object *o)
{
	static const char *const no_gauges[] = { "on_detect_running", "on_detect_waiting", NULL };
	struct json_object *lat = jget(o, "latency"), *det = jget(o, "detections");

	gauge(f, s, id, "agents", "agents connected", (long long)jlen(jget(o, "agents")));
	gauge(f, s, id, "svas", "SVAs connected", (long long)jlen(jget(o, "svas")));
	gauge(f, s, id, "in_flight", "events between an agent and an SVA", jint(o, "in_flight"));
	seconds(f, "epsec_mux_latency_p50_seconds", "routing latency, median of recent verdicts",
		id, jint(lat, "p50_us"));
	seconds(f, "epsec_mux_latency_p99_seconds", "routing latency, p99 of recent verdicts",
		id, jint(lat, "p99_us"));
	if (det)
		members(f, s, id, det, no_gauges);
}

static void sva_gauges(FILE *f, const struct source *s, const char *id, struct json_object *o)
{
	static const char *const content_gauges[] = { "stage_max", NULL };
	struct json_object *engines = jget(o, "engines");

	gauge(f, s, id, "workers", "scanning threads", jint(o, "workers"));
	gauge(f, s, id, "mux_connected", "1 when connected to the mux",
	      jbool(jget(o, "mux"), "connected"));
	members(f, s, id, jget(o, "content"), content_gauges);
	family(f, "epsec_sva_engine_info", "gauge", "an engine loaded (label engine)");
	for (size_t i = 0; i < jlen(engines); i++)
		sample(f, "epsec_sva_engine_info", id, "engine",
		       jstr(json_object_array_get_idx(engines, i), "name"), 1);
}

static void one_daemon(FILE *f, const struct source *s, struct json_object *o)
{
	const char *id = jstr(o, "id");

	members(f, s, id, jget(o, "counters"), s->gauges);
	if (!strcmp(s->daemon, "vsep"))
		vsep_gauges(f, s, id, o);
	else if (!strcmp(s->daemon, "epsec-mux"))
		mux_gauges(f, s, id, o);
	else
		sva_gauges(f, s, id, o);
}

int epsecctl_metrics(const struct epsecctl_env *env, int argc, char **argv)
{
	struct json_object *o[N_SOURCES];
	int err[N_SOURCES], answered = 0;

	if (argc != 1) {
		fprintf(stderr, "usage: epsecctl metrics\n");
		return EPSECCTL_EX_USAGE;
	}
	for (size_t i = 0; i < N_SOURCES; i++)
		answered += !!(o[i] = epsecctl_ask(env, sources[i].daemon, "status",
						  CALL_TIMEOUT_MS, &err[i]));
	/* A daemon with no socket here runs elsewhere: no sample, not 0. */
	family(stdout, "epsec_up", "gauge", "1 when the daemon's control socket answered");
	for (size_t i = 0; i < N_SOURCES; i++)
		if (o[i] || err[i] != -ENOENT)
			sample(stdout, "epsec_up", o[i] ? jstr(o[i], "id") : "", "daemon",
			       sources[i].daemon, o[i] != NULL);
	family(stdout, "epsec_build_info", "gauge", "version and build (label build)");
	for (size_t i = 0; i < N_SOURCES; i++)
		if (o[i])
			sample(stdout, "epsec_build_info", jstr(o[i], "id"), "build",
			       jstr(o[i], "build"), 1);
	for (size_t i = 0; i < N_SOURCES; i++) {
		if (o[i])
			one_daemon(stdout, &sources[i], o[i]);
		json_object_put(o[i]);
	}
	return answered ? 0 : 1;
}
