/* SPDX-License-Identifier: MIT */
/* What every epsec daemon does the same way: command line (-c FILE, -f, -v,
 * -h), version line, detaching, and signals turned into loop events through
 * a signalfd (so no handler runs in a random thread). */
#ifndef EPSEC_DAEMON_H
#define EPSEC_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include "conf.h"
#include "loop.h"

struct epsec_daemon {
	const char *program;    /* "vsep" */
	const char *conf_path;  /* -c, or the default */
	bool foreground;        /* -f */
	bool test_config;       /* -t: check the file, print the effective settings, exit */
};

/* Parse argv. -v prints the version line and exits 0; -h prints usage and
 * exits 0; a bad option prints usage and exits 64 (EX_USAGE). */
void epsec_daemon_args(struct epsec_daemon *d, int argc, char **argv, const char *program,
		       const char *default_conf);
/* "vsep 0.1.0 (build g1234abc)" on stdout. */
void epsec_daemon_print_version(const char *program);

typedef void (*epsec_daemon_hup_fn)(void *arg);
/* Block SIGTERM/SIGINT/SIGHUP in every thread (call before creating any),
 * ignore SIGPIPE. */
int epsec_daemon_block_signals(void);
/* Detach unless foreground (fork, setsid, stdio to /dev/null), then route
 * SIGTERM/SIGINT to epsec_loop_stop and SIGHUP to on_hup (may be NULL)
 * through a signalfd watched by `loop`. */
int epsec_daemon_start(struct epsec_daemon *d, struct epsec_loop *loop,
		       epsec_daemon_hup_fn on_hup, void *arg);

/* Tell systemd (Type=notify) that start-up is complete, and from then on
 * pet its watchdog from `loop` when WatchdogSec is set. A no-op outside
 * systemd. Call once the daemon serves. */
void epsec_daemon_ready(struct epsec_loop *loop);
/* The open file limit raised to its hard limit (the soft one is often
 * 1024): for daemons holding an fd per peer or per event. Logs a warning
 * when it cannot. */
void epsec_daemon_raise_nofile(void);

/* The settings every daemon's config file takes, as the runbook has them. */
struct epsec_daemon_settings {
	int debug_level;        /* DEBUG_LEVEL: 0-7, syslog severities */
	int debug_dest;         /* DEBUG_DEST: 1 syslog, 2 the host via the mux, 3 stderr */
	const char *id;         /* id: this daemon's name in the chain */
	const char *control;    /* control: its control socket */
	const char *plugin_dir; /* plugin_dir: transports/ and plugins/ below it */
};

/* Their schema entries, for a settings struct `type` holding them as
 * `field` (struct epsec_daemon_settings). */
#define EPSEC_DAEMON_SETTINGS_KEYS(type, field)                                              \
	{ "DEBUG_LEVEL", EPSEC_CONF_INT, false, offsetof(type, field.debug_level), 0, 7, NULL }, \
	{ "DEBUG_DEST", EPSEC_CONF_INT, false, offsetof(type, field.debug_dest), 1, 3, NULL },  \
	{ "id", EPSEC_CONF_STRING, false, offsetof(type, field.id), 0, 0, NULL },               \
	{ "control", EPSEC_CONF_STRING, false, offsetof(type, field.control), 0, 0, NULL },     \
	{ "plugin_dir", EPSEC_CONF_STRING, false, offsetof(type, field.plugin_dir), 0, 0, NULL }

#endif
