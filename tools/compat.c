/* SPDX-License-Identifier: MIT */
/* epsecctl compat: every component reachable from here, with version,
 * build, protocol range and plugin ABI, and one verdict per pair. The mux
 * knows every agent and SVA that said HELLO to it, on any host, and the
 * ones it refused: on the mux's host, compat covers the whole chain. */
#include "config.h"
#include "epsecctl.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <epsec/plugin.h>
#include <epsec/version.h>

#include "ctl.h"
#include "json.h"

#define EX_INCOMPATIBLE 1
#define CALL_TIMEOUT_MS 900 /* the whole command answers in under a second */

struct compat {
	struct json_object *vsep, *mux, *sva; /* status replies, NULL when absent */
	int pairs, bad;
};

static struct json_object *ask_status(const struct epsecctl_env *env, const char *daemon)
{
	return epsecctl_ask(env, daemon, "status", CALL_TIMEOUT_MS, NULL);
}

static void pair(struct compat *c, bool ok, const char *a, const char *b, const char *why)
{
	c->pairs++;
	if (!ok)
		c->bad++;
	printf("  %s <-> %s: %s%s\n", a, b, ok ? "compatible" : "NOT COMPATIBLE", why);
}

static void proto_range(struct json_object *o, char *buf, size_t len)
{
	if (jget(o, "protocol_min"))
		snprintf(buf, len, "%lld-%lld", jint(o, "protocol_min"), jint(o, "protocol_max"));
	else
		snprintf(buf, len, "unknown (older than compat)");
}

static void component(const char *what, struct json_object *o, const char *extra)
{
	char proto[64];

	proto_range(o, proto, sizeof(proto));
	printf("  %-10s %-16s %s (%s), protocol %s%s\n", what, jstr(o, "id"), jstr(o, "version"),
	       jstr(o, "build"), proto, extra);
}

/* ------------------------------------------------------------ components */

/* A peer of the mux, on any host, as its HELLO said (build, range, and for
 * an SVA its engines; their ABI and signatures are on the SVA's host). */
static void peer_component(const char *role, struct json_object *p)
{
	struct json_object *engines = jget(p, "engines");

	printf("    %-8s %-16s %s, protocol %lld-%lld (from its HELLO)", role, jstr(p, "id"),
	       jstr(p, "build"), jint(p, "protocol_min"), jint(p, "protocol_max"));
	for (size_t i = 0; i < jlen(engines); i++)
		printf("%s%s", i ? "," : "; engines ", jelem(engines, i));
	printf("\n");
}

static void list_components(const struct compat *c)
{
	char abi[96];

	printf("components:\n  %-10s %-16s %s (%s), protocol %d-%d\n", "epsecctl", "(here)",
	       EPSEC_VERSION, EPSEC_BUILD_ID, EPSEC_PROTO_VERSION_MIN, EPSEC_PROTO_VERSION_MAX);
	if (c->vsep)
		component("vsep", c->vsep, "");
	if (c->mux)
		component("epsec-mux", c->mux, "");
	for (size_t i = 0; c->mux && i < jlen(jget(c->mux, "agents")); i++)
		peer_component("agent", json_object_array_get_idx(jget(c->mux, "agents"), i));
	for (size_t i = 0; c->mux && i < jlen(jget(c->mux, "svas")); i++)
		peer_component("sva", json_object_array_get_idx(jget(c->mux, "svas"), i));
	if (c->sva) {
		snprintf(abi, sizeof(abi), ", hosts verdict plugin ABI %lld.%lld",
			 jint(c->sva, "abi_major"), jint(c->sva, "abi_minor"));
		component("epsec-sva", c->sva, abi);
	}
	for (size_t i = 0; c->sva && i < jlen(jget(c->sva, "engines")); i++) {
		struct json_object *e = json_object_array_get_idx(jget(c->sva, "engines"), i);

		printf("    engine %s %s: plugin ABI %lld.%lld, action %s, signatures: %s\n",
		       jstr(e, "name"), jstr(e, "version"), jint(e, "abi_major"),
		       jint(e, "abi_minor"), jstr(e, "action"), jstr(e, "signatures"));
	}
}

/* ------------------------------------------------------------ pairs */

static void welcomed_pair(struct compat *c, const char *role, struct json_object *peer)
{
	char a[128], why[160];

	snprintf(a, sizeof(a), "%s %s (%s)", role, jstr(peer, "id"), jstr(peer, "build"));
	snprintf(why, sizeof(why), " (speaking protocol %lld; it offers %lld-%lld, the mux %lld-%lld)",
		 jint(peer, "version"), jint(peer, "protocol_min"), jint(peer, "protocol_max"),
		 jint(c->mux, "protocol_min"), jint(c->mux, "protocol_max"));
	pair(c, true, a, "epsec-mux", why);
}

static void refused_pair(struct compat *c, struct json_object *r)
{
	char a[160], why[320];

	snprintf(a, sizeof(a), "%s %s at %s (%s)", jstr(r, "role"), jstr(r, "id"), jstr(r, "peer"),
		 jstr(r, "build"));
	snprintf(why, sizeof(why), ": %s (it offers protocol %lld-%lld, the mux %lld-%lld; "
		 "refused %lld s ago)", jstr(r, "why"), jint(r, "protocol_min"),
		 jint(r, "protocol_max"), jint(c->mux, "protocol_min"), jint(c->mux, "protocol_max"),
		 jint(r, "ago_ms") / 1000);
	pair(c, false, a, "epsec-mux", why);
}

static void mux_pairs(struct compat *c)
{
	struct json_object *a = jget(c->mux, "agents"), *s = jget(c->mux, "svas");
	struct json_object *r = jget(c->mux, "refused");

	for (size_t i = 0; i < jlen(a); i++)
		welcomed_pair(c, "agent", json_object_array_get_idx(a, i));
	for (size_t i = 0; i < jlen(s); i++)
		welcomed_pair(c, "sva", json_object_array_get_idx(s, i));
	for (size_t i = 0; i < jlen(r); i++)
		refused_pair(c, json_object_array_get_idx(r, i));
}

/* A local daemon's link to a mux not asked here (another host): its
 * WELCOME is the mux's word that they are compatible. */
static void link_pair(struct compat *c, const char *what, struct json_object *o)
{
	struct json_object *mux = jget(o, "mux");
	char a[128], why[PATH_MAX];

	snprintf(a, sizeof(a), "%s %s", what, jstr(o, "id"));
	if (jbool(mux, "connected")) {
		snprintf(why, sizeof(why), " (welcomed by the mux at %s)", jstr(mux, "uri"));
		pair(c, true, a, "epsec-mux", why);
	} else {
		snprintf(why, sizeof(why), ": not known: not connected to %s (run compat on the "
			 "mux's host: it lists what it refused and why)", jstr(mux, "uri"));
		pair(c, false, a, "epsec-mux", why);
	}
}

/* The loader's rule (DESIGN.md, Plugins): same major, minor not newer. */
static void engine_pair(struct compat *c, struct json_object *e)
{
	long long maj = jint(e, "abi_major"), min = jint(e, "abi_minor");
	long long hmaj = jint(c->sva, "abi_major"), hmin = jint(c->sva, "abi_minor");
	char a[128], b[128], why[160];
	bool ok = maj == hmaj && min <= hmin;

	snprintf(a, sizeof(a), "epsec-sva %s", jstr(c->sva, "id"));
	snprintf(b, sizeof(b), "engine %s %s", jstr(e, "name"), jstr(e, "version"));
	snprintf(why, sizeof(why), "%s (plugin ABI %lld.%lld, host %lld.%lld)",
		 ok ? "" : ": ABI mismatch", maj, min, hmaj, hmin);
	pair(c, ok, a, b, why);
}

static bool listed(struct json_object *list, const char *id)
{
	for (size_t i = 0; i < jlen(list); i++)
		if (!strcmp(jstr(json_object_array_get_idx(list, i), "id"), id))
			return true;
	return false;
}

static void list_pairs(struct compat *c)
{
	printf("pairs:\n");
	if (c->mux)
		mux_pairs(c);
	if (c->vsep && !(c->mux && listed(jget(c->mux, "agents"), jstr(c->vsep, "id"))))
		link_pair(c, "vsep", c->vsep);
	if (c->sva && !(c->mux && listed(jget(c->mux, "svas"), jstr(c->sva, "id"))))
		link_pair(c, "epsec-sva", c->sva);
	for (size_t i = 0; c->sva && i < jlen(jget(c->sva, "engines")); i++)
		engine_pair(c, json_object_array_get_idx(jget(c->sva, "engines"), i));
}

int epsecctl_compat(const struct epsecctl_env *env, int argc, char **argv)
{
	struct compat c = { .pairs = 0 };

	if (argc != 1) {
		fprintf(stderr, "usage: epsecctl compat\n");
		return EPSECCTL_EX_USAGE;
	}
	c.vsep = ask_status(env, "vsep");
	c.mux = ask_status(env, "epsec-mux");
	c.sva = ask_status(env, "epsec-sva");
	list_components(&c);
	list_pairs(&c);
	if (!c.pairs)
		printf("  (none: no daemon answered here)\n");
	printf("%d pair(s), %d not compatible\n", c.pairs, c.bad);
	json_object_put(c.vsep);
	json_object_put(c.mux);
	json_object_put(c.sva);
	return c.bad || !c.pairs ? EX_INCOMPATIBLE : 0;
}
