/* SPDX-License-Identifier: MIT */
/* epsecctl, the operator's command: asks the daemons' control sockets
 * (vsep, epsec-mux, epsec-sva) and prints the chain for a human, or as
 * JSON. One table of commands; each daemon answers one JSON line. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <epsec/version.h>
#include <json-c/json.h>

#include "ctl.h"
#include "epsecctl.h"
#include "json.h"

#define EX_DOWN 1
#define EX_USAGE_ERR 2
#define CALL_TIMEOUT_MS 3000
#define RELOAD_TIMEOUT_MS 15000 /* epsec-sva waits up to 10 s for a reload */
#define RUNDIR_ENV "EPSEC_RUNDIR"
#define JSON_FLAGS \
	(JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const daemons[] = { "vsep", "epsec-mux", "epsec-sva" };
#define N_DAEMONS (sizeof(daemons) / sizeof(daemons[0]))

/* One daemon asked: its socket, and its reply or why there is none. */
struct target {
	const char *name;  /* key in --json output */
	char path[PATH_MAX];
	struct json_object *reply;
	int rc;            /* 0 answered, else a negative errno */
	bool refused;      /* answered "ok": false */
};

struct ctl {
	struct target t[N_DAEMONS];
	size_t n;
	bool one;          /* -s: only that socket, which must answer */
	bool json;
	int argc;
	char **argv;       /* the command's own arguments */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: epsecctl [-r RUNDIR] [-s SOCKET] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  status [--json]  the chain: agent (vsep), router (epsec-mux), scanner\n"
		"                   appliance (epsec-sva); --json prints one object\n"
		"                   {\"vsep\":{..},\"epsec-mux\":{..},\"epsec-sva\":{..}}\n"
		"  version          this tool's version and each running daemon's\n"
		"  log-level N      set the log level (0-7, syslog severities) of each\n"
		"                   running daemon, until it restarts or re-reads DEBUG_LEVEL\n"
		"  reload           epsec-sva: load new signatures beside the old, swap\n"
		"  config           each running daemon's effective configuration, defaults\n"
		"                   filled in, secrets removed (what `DAEMON -t` prints)\n"
		"  scan FILE...     scan files on demand through the chain (like clamdscan);\n"
		"                   exit 0 all clean, 1 something found, 2 an error\n"
		"  compat           every component reachable here (through the mux: every\n"
		"                   agent and SVA, and the ones it refused) with version,\n"
		"                   build, protocol range, plugin ABI; one verdict per pair;\n"
		"                   exit 1 when a pair is not compatible\n"
		"  support-bundle -o FILE\n"
		"                   one tar.gz for a ticket: versions, status, effective\n"
		"                   configs (secrets removed), logs, kernel and fanotify facts,\n"
		"                   quarantine index, MANIFEST.txt; bounded in size\n"
		"  metrics          every running daemon's status in the Prometheus text format\n"
		"  top [-n N]       a live view, refreshed every second: counters and their\n"
		"                   rates per second (-n: N screens, then exit)\n"
		"  eicar-test DIR   the runbook's EICAR test, timed: a clean file opens, an\n"
		"                   EICAR file written gets the action, one never scanned is\n"
		"                   refused on open; nothing left behind; exit 0 all held\n"
		"  keygen NAME      write a CURVE key pair NAME.key (secret), NAME.pub\n"
		"  quarantine list | restore ID | delete ID\n"
		"                   what vsep quarantined\n"
		"  help             this text\n"
		"\n"
		"  -r RUNDIR  where the control sockets are: RUNDIR/vsep.ctl,\n"
		"             RUNDIR/epsec-mux.ctl, RUNDIR/epsec-sva.ctl\n"
		"             (default $" RUNDIR_ENV ", else " RUNSTATEDIR "/epsec)\n"
		"  -s SOCKET  talk to this one control socket only\n"
		"\n"
		"A daemon whose socket does not exist is reported as not running; that\n"
		"alone is no failure (the chain may span several hosts).\n"
		"exit status: 0 every daemon found answered; 1 a daemon did not answer or\n"
		"refused, none was found, or the -s socket did not answer; 2 usage error.\n");
}

/* ------------------------------------------------------------ asking */

static const char *default_rundir(const char *rundir)
{
	if (!rundir)
		rundir = getenv(RUNDIR_ENV);
	return rundir && *rundir ? rundir : RUNSTATEDIR "/epsec";
}

void epsecctl_ctl_path(const struct epsecctl_env *env, const char *daemon, char *buf, size_t len)
{
	if (env->socket)
		snprintf(buf, len, "%s", env->socket);
	else
		snprintf(buf, len, "%s/%s.ctl", default_rundir(env->rundir), daemon);
}

struct json_object *epsecctl_ask(const struct epsecctl_env *env, const char *daemon,
				 const char *cmd, int timeout_ms, int *err)
{
	struct json_object *req = json_object_new_object(), *reply = NULL;
	char path[PATH_MAX];
	int r;

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	epsecctl_ctl_path(env, daemon, path, sizeof(path));
	r = epsec_ctl_call(path, req, timeout_ms, &reply);
	json_object_put(req);
	if (r == 0 && !jbool(reply, "ok"))
		r = -EPROTO;
	if (r < 0) {
		json_object_put(reply);
		reply = NULL;
	}
	if (err)
		*err = r;
	return reply;
}

static void targets_init(struct ctl *c, const char *rundir, const char *socket)
{
	if (socket) {
		c->one = true;
		c->n = 1;
		c->t[0].name = socket;
		snprintf(c->t[0].path, sizeof(c->t[0].path), "%s", socket);
		return;
	}
	rundir = default_rundir(rundir);
	c->n = N_DAEMONS;
	for (size_t i = 0; i < N_DAEMONS; i++) {
		c->t[i].name = daemons[i];
		snprintf(c->t[i].path, sizeof(c->t[i].path), "%s/%s.ctl", rundir, daemons[i]);
	}
}

static void ask_one_within(struct target *t, struct json_object *req, int timeout_ms)
{
	struct json_object *ok;

	t->rc = epsec_ctl_call(t->path, req, timeout_ms, &t->reply);
	if (t->rc < 0) {
		t->reply = NULL;
		return;
	}
	if (!json_object_object_get_ex(t->reply, "ok", &ok) || !json_object_get_boolean(ok)) {
		t->rc = -EPROTO;
		t->refused = true;
	}
}

static void ask_one(struct target *t, struct json_object *req)
{
	ask_one_within(t, req, CALL_TIMEOUT_MS);
}

static void ask_all(struct ctl *c, struct json_object *req)
{
	for (size_t i = 0; i < c->n; i++)
		ask_one(&c->t[i], req);
	json_object_put(req);
}

static struct json_object *request(const char *cmd)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	return req;
}

static void ask_cmd(struct target *t, const char *cmd, int timeout_ms)
{
	struct json_object *req = request(cmd);

	ask_one_within(t, req, timeout_ms);
	json_object_put(req);
}

/* Missing socket: not running here, unless -s named it. */
static bool absent(const struct ctl *c, const struct target *t)
{
	return !c->one && t->rc == -ENOENT;
}

static int exit_status(const struct ctl *c)
{
	size_t answered = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (c->t[i].rc == 0)
			answered++;
		else if (!absent(c, &c->t[i]))
			return EX_DOWN;
	}
	return answered ? 0 : EX_DOWN;
}

static void free_targets(struct ctl *c)
{
	for (size_t i = 0; i < c->n; i++)
		json_object_put(c->t[i].reply);
}

/* ------------------------------------------------------------ status text */

static void print_down(const struct target *t)
{
	if (t->refused)
		printf("%s: error: %s\n", t->name, jstr(t->reply, "error"));
	else
		printf("%s: not running (%s: %s)\n", t->name, t->path, strerror(-t->rc));
}

static void print_head(struct json_object *o, const char *what)
{
	printf("%s (%s) %s: version %s (%s)\n", jstr(o, "program"), what, jstr(o, "id"),
	       jstr(o, "version"), jstr(o, "build"));
}

/* Every counter the daemon reports, in its order: new ones show up too. */
static void print_counters(struct json_object *o)
{
	struct json_object *counters = jget(o, "counters");
	const char *sep = "  ";

	if (!counters || !json_object_is_type(counters, json_type_object))
		return;
	json_object_object_foreach(counters, key, val) {
		printf("%s%s %s", sep, key, json_object_get_string(val));
		sep = ", ";
	}
	printf("\n");
}

static void print_link(struct json_object *o)
{
	struct json_object *mux = jget(o, "mux");

	printf("  mux: %s, %s\n", jstr(mux, "uri"),
	       jbool(mux, "connected") ? "connected" : "NOT connected");
}

/* What an operator must not miss: files that passed without a scan. */
static void print_backlog(struct json_object *c)
{
	long long waiting = jint(c, "unscanned"), errors = jint(c, "engine_errors");

	if (waiting > 0)
		printf("  BACKLOG: %lld file(s) let pass unscanned, scanned when the chain "
		       "answers (%lld done so far)\n", waiting, jint(c, "rescanned"));
	if (jint(c, "unscanned_dropped") > 0 || jint(c, "unscanned_given_up") > 0)
		printf("  NOT SCANNED: %lld file(s) over unscanned_max, %lld the engines could "
		       "not scan after every try\n", jint(c, "unscanned_dropped"),
		       jint(c, "unscanned_given_up"));
	if (errors > 0)
		printf("  engine errors: %lld (see the log: each file is named once)\n", errors);
}

static void print_vsep(struct json_object *o)
{
	struct json_object *protect = jget(o, "protect");

	print_head(o, "agent");
	print_link(o);
	for (size_t i = 0; i < jlen(protect); i++) {
		struct json_object *p = json_object_array_get_idx(protect, i);

		if (!strcmp(jstr(p, "mark"), "mount"))
			printf("  protect: %s (mount mark)\n", jstr(p, "path"));
		else
			printf("  protect: %s (%s marks on %lld directories)\n", jstr(p, "path"),
			       jstr(p, "mark"), jint(p, "dirs"));
		for (size_t j = 0; j < jlen(jget(p, "mounts")); j++)
			printf("    + %s (mounted under it: its own mount mark)\n",
			       jelem(jget(p, "mounts"), j));
	}
	print_counters(o);
	printf("  in flight: %lld; signature generation %lld; files go to the mux ",
	       jint(o, "in_flight"), jint(o, "generation"));
	if (jbool(jget(o, "mux"), "pass_fds"))
		printf("as fds (an SVA that takes them reads the file itself)\n");
	else
		printf("with up to %lld bytes inline\n", jint(o, "inline_bytes"));
	print_backlog(jget(o, "counters"));
}

static void join_strings(struct json_object *a, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < jlen(a) && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", jelem(a, i));
	if (!buf[0])
		snprintf(buf, len, "(none)");
}

static void print_mux(struct json_object *o)
{
	struct json_object *agents = jget(o, "agents"), *svas = jget(o, "svas"), *lat;
	char engines[512];

	print_head(o, "router");
	printf("  agents: %zu\n", jlen(agents));
	for (size_t i = 0; i < jlen(agents); i++) {
		struct json_object *a = json_object_array_get_idx(agents, i);

		printf("    %s  %s  %s  version %lld  events %lld  in flight %lld  last seen %lld ms "
		       "ago%s\n", jstr(a, "id"), jstr(a, "transport"), jstr(a, "peer"),
		       jint(a, "version"), jint(a, "events"), jint(a, "in_flight"),
		       jint(a, "last_seen_ms"), jbool(a, "pass_fds") ? "  passes fds" : "");
	}
	printf("  svas: %zu\n", jlen(svas));
	for (size_t i = 0; i < jlen(svas); i++) {
		struct json_object *s = json_object_array_get_idx(svas, i);

		join_strings(jget(s, "engines"), engines, sizeof(engines));
		printf("    %s  %s  engines %s  generation %lld  in flight %lld  events %lld%s\n",
		       jstr(s, "id"), jstr(s, "peer"), engines, jint(s, "generation"),
		       jint(s, "in_flight"), jint(s, "events"),
		       jbool(s, "pass_fds") ? "  takes fds" : "");
	}
	printf("  signature generation (newest of the svas): %lld\n", jint(o, "generation"));
	print_counters(o);
	lat = jget(o, "latency");
	printf("  routing latency (last %lld verdicts): p50 %lld us, p99 %lld us, max %lld us\n",
	       jint(lat, "samples"), jint(lat, "p50_us"), jint(lat, "p99_us"), jint(lat, "max_us"));
}

static void print_sva(struct json_object *o)
{
	struct json_object *engines = jget(o, "engines");

	print_head(o, "scanner appliance");
	print_link(o);
	printf("  workers %lld, generation %lld\n", jint(o, "workers"), jint(o, "generation"));
	for (size_t i = 0; i < jlen(engines); i++) {
		struct json_object *e = json_object_array_get_idx(engines, i);

		printf("  engine %s %s: action %s; signatures: %s\n", jstr(e, "name"),
		       jstr(e, "version"), jstr(e, "action"), jstr(e, "signatures"));
	}
	print_counters(o);
}

static void print_other(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_FLAGS));
}

static const struct {
	const char *program;
	void (*print)(struct json_object *o);
} printers[] = {
	{ "vsep", print_vsep },
	{ "epsec-mux", print_mux },
	{ "epsec-sva", print_sva },
};

static void print_status(struct json_object *o)
{
	const char *program = jstr(o, "program");

	for (size_t i = 0; i < sizeof(printers) / sizeof(printers[0]); i++) {
		if (!strcmp(program, printers[i].program)) {
			printers[i].print(o);
			return;
		}
	}
	print_other(o);
}

/* ------------------------------------------------------------ commands */

static struct json_object *down_object(const struct target *t)
{
	struct json_object *o = json_object_new_object();
	char why[PATH_MAX + 128];

	snprintf(why, sizeof(why), "not running (%s: %s)", t->path, strerror(-t->rc));
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(why));
	return o;
}

static void print_json(struct ctl *c)
{
	struct json_object *all = json_object_new_object();

	for (size_t i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		json_object_object_add(all, t->name,
				       t->reply ? json_object_get(t->reply) : down_object(t));
	}
	printf("%s\n", json_object_to_json_string_ext(all, JSON_FLAGS));
	json_object_put(all);
}

static int cmd_status(struct ctl *c)
{
	if (c->argc > 1 && strcmp(c->argv[1], "--json") != 0)
		return -EINVAL;
	c->json = c->argc > 1;
	ask_all(c, request("status"));
	if (c->json) {
		print_json(c);
		return 0;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (i)
			printf("\n");
		if (c->t[i].rc == 0)
			print_status(c->t[i].reply);
		else
			print_down(&c->t[i]);
	}
	return 0;
}

static int cmd_version(struct ctl *c)
{
	printf("epsecctl %s (%s), protocol %d-%d\n", EPSEC_VERSION, EPSEC_BUILD_ID,
	       EPSEC_PROTO_VERSION_MIN, EPSEC_PROTO_VERSION_MAX);
	ask_all(c, request("version"));
	for (size_t i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		if (t->rc == 0)
			printf("%s %s (%s)\n", jstr(t->reply, "program"), jstr(t->reply, "version"),
			       jstr(t->reply, "build"));
		else
			print_down(t);
	}
	return 0;
}

static int parse_level(const char *s, int *level)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 7)
		return -EINVAL;
	*level = (int)v;
	return 0;
}

static int cmd_log_level(struct ctl *c)
{
	struct json_object *req;
	int level;

	if (c->argc != 2 || parse_level(c->argv[1], &level) < 0)
		return -EINVAL;
	req = request("log-level");
	json_object_object_add(req, "level", json_object_new_int(level));
	ask_all(c, req);
	for (size_t i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		if (t->rc == 0)
			printf("%s: log level %d\n", t->name, level);
		else
			print_down(t);
	}
	return 0;
}

/* Only the scanner has signatures to reload (unless -s names a socket). */
static int cmd_reload(struct ctl *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		if (!c->one && strcmp(t->name, "epsec-sva")) {
			t->rc = -ENOENT; /* not asked: counts as absent */
			continue;
		}
		ask_cmd(t, "reload", RELOAD_TIMEOUT_MS);
		if (t->rc == 0)
			printf("%s: reloaded, generation %lld\n", t->name, jint(t->reply, "generation"));
		else
			print_down(t);
	}
	return 0;
}

/* What each running daemon runs with, secrets removed (the -t printout). */
static int cmd_config(struct ctl *c)
{
	ask_all(c, request("config"));
	for (size_t i = 0; i < c->n; i++) {
		struct target *t = &c->t[i];

		if (i)
			printf("\n");
		printf("# ---- %s (%s)\n", t->name, t->path);
		if (t->rc == 0)
			fputs(jstr(t->reply, "config"), stdout);
		else
			print_down(t);
	}
	return 0;
}

static int cmd_help(struct ctl *c)
{
	usage(stdout);
	return 1; /* nothing asked: exit 0 without looking at daemons */
}

static const struct command {
	const char *name;
	int max_args; /* the command's own, after its name */
	int (*run)(struct ctl *c);
} commands[] = {
	{ "status", 1, cmd_status },
	{ "version", 0, cmd_version },
	{ "log-level", 1, cmd_log_level },
	{ "reload", 0, cmd_reload },
	{ "config", 0, cmd_config },
	{ "help", 0, cmd_help },
};

/* Commands in their own files (epsecctl.h). */
static const struct standalone {
	const char *name;
	int (*run)(const struct epsecctl_env *env, int argc, char **argv);
} standalones[] = {
	{ "scan", epsecctl_scan },
	{ "keygen", epsecctl_keygen },
	{ "quarantine", epsecctl_quarantine },
	{ "eicar-test", epsecctl_eicar_test },
	{ "compat", epsecctl_compat },
	{ "support-bundle", epsecctl_support_bundle },
	{ "metrics", epsecctl_metrics },
	{ "top", epsecctl_top },
};

static const struct standalone *find_standalone(const char *name)
{
	for (size_t i = 0; i < sizeof(standalones) / sizeof(standalones[0]); i++) {
		if (!strcmp(name, standalones[i].name))
			return &standalones[i];
	}
	return NULL;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	}
	return NULL;
}

static int run(struct ctl *c)
{
	const struct command *cmd = find_command(c->argv[0]);
	int rc;

	if (!cmd || c->argc - 1 > cmd->max_args) {
		fprintf(stderr, "epsecctl: %s: %s\n", c->argv[0],
			cmd ? "too many arguments" : "unknown command");
		usage(stderr);
		return EX_USAGE_ERR;
	}
	rc = cmd->run(c);
	if (rc < 0) {
		fprintf(stderr, "epsecctl: %s: bad arguments\n", c->argv[0]);
		usage(stderr);
		return EX_USAGE_ERR;
	}
	return rc > 0 ? 0 : exit_status(c);
}

int main(int argc, char **argv)
{
	struct ctl c = { .n = 0 };
	const char *rundir = NULL, *socket = NULL;
	int opt, rc;

	while ((opt = getopt(argc, argv, "+r:s:h")) != -1) {
		switch (opt) {
		case 'r':
			rundir = optarg;
			break;
		case 's':
			socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE_ERR;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE_ERR;
	}
	if (find_standalone(argv[optind])) {
		struct epsecctl_env env = { .rundir = rundir, .socket = socket };

		return find_standalone(argv[optind])->run(&env, argc - optind, argv + optind);
	}
	targets_init(&c, rundir, socket);
	c.argc = argc - optind;
	c.argv = argv + optind;
	rc = run(&c);
	free_targets(&c);
	return rc;
}
