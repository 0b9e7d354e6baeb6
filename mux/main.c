/* SPDX-License-Identifier: MIT */
/* epsec-mux: command line, configuration, start and stop. The routing
 * itself lives in mux.c; this file decides what runs and in which order
 * (nothing starts unless the whole configuration is valid). */
#include "config.h"
#include "mux.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <epsec/version.h>

#include "conf.h"
#include "ctl.h"
#include "daemon.h"
#include "detect.h"
#include "host.h"
#include "loader.h"
#include "log.h"

#define EPSEC_LOG_SRC "mux"

#define PROGRAM "epsec-mux"
#define DEFAULT_CONF SYSCONFDIR "/epsec/epsec-mux.conf"
#define EX_FAIL 1

#define KEY(name, type, req, field, lo, hi) \
	{ name, type, req, offsetof(struct mux_settings, field), lo, hi, NULL }

static const struct epsec_conf_key schema[] = {
	EPSEC_DAEMON_SETTINGS_KEYS(struct mux_settings, common),
	KEY("agents", EPSEC_CONF_URILIST, true, agents, 0, 0),
	KEY("svas", EPSEC_CONF_URILIST, true, svas, 0, 0),
	KEY("agent_log_dir", EPSEC_CONF_STRING, false, agent_log_dir, 0, 0),
	KEY("sva_timeout_ms", EPSEC_CONF_INT, false, sva_timeout_ms, 100, 3600000),
	KEY("peer_timeout_ms", EPSEC_CONF_INT, false, peer_timeout_ms, 300, 600000),
	KEY("sva_window", EPSEC_CONF_INT, false, sva_window, 1, 900),
	KEY("pass_fds", EPSEC_CONF_BOOL, false, pass_fds, 0, 0),
	KEY("agent_max_events", EPSEC_CONF_INT, false, agent_max_events, 1, 1 << 24),
	KEY("agent_max_inline", EPSEC_CONF_SIZE, false, agent_max_inline, 0, 0),
	KEY("agent_log_rate", EPSEC_CONF_INT, false, agent_log_rate, 1, 1000000),
	KEY("detections_log", EPSEC_CONF_STRING, false, detections_log, 0, 0),
	KEY("on_detect", EPSEC_CONF_STRLIST, false, on_detect, 0, 0),
	KEY("on_detect_max", EPSEC_CONF_INT, false, on_detect_max, 1, 64),
	KEY("on_detect_timeout_ms", EPSEC_CONF_INT, false, on_detect_timeout_ms, 100, 600000),
	{ NULL, 0, false, 0, 0, 0, NULL },
};

static void defaults(struct mux_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->common.debug_level = EPSEC_LOG_WARNING;
	set->common.debug_dest = EPSEC_DEST_SYSLOG;
	set->common.id = "mux";
	set->common.control = RUNSTATEDIR "/epsec/" PROGRAM ".ctl";
	set->common.plugin_dir = NULL;
	set->agent_log_dir = LOCALSTATEDIR "/log/epsec/agents";
	set->sva_timeout_ms = 10000;
	set->peer_timeout_ms = 3000;
	set->sva_window = 256;
	set->pass_fds = true;
	set->agent_max_events = 8192;
	set->agent_max_inline = 64 << 20;
	set->agent_log_rate = 200;
	set->on_detect_max = 4;
	set->on_detect_timeout_ms = 10000;
}

/* Unset, detections_log goes beside agent_log_dir (/var/log/epsec/agents
 * -> /var/log/epsec/detections.log): a test's or a second mux's files
 * stay together. */
static void default_detections_log(struct mux_settings *set, char *buf, size_t len)
{
	const char *dir = set->agent_log_dir, *slash = strrchr(dir, '/');
	int n = slash && slash != dir ? (int)(slash - dir) : (int)strlen(dir);

	if (set->detections_log)
		return;
	snprintf(buf, len, "%.*s/detections.log", n, dir);
	set->detections_log = buf;
}

/* posix_spawn runs on_detect[0] as given: no PATH search, no shell. */
static int check_on_detect(const struct mux_settings *set, const char *path)
{
	if (set->on_detect.n && set->on_detect.v[0][0] != '/') {
		EPSEC_ERR("%s: on_detect: expected an absolute path first, got \"%s\"", path,
			  set->on_detect.v[0]);
		return -EINVAL;
	}
	return 0;
}

/* The control socket's directory (/run/epsec) may not exist after boot. */
static void make_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	make_parent(dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		EPSEC_DBG("mkdir %s: %s", dir, strerror(errno));
}

struct mux_main {
	struct epsec_daemon d;
	char detections_log[PATH_MAX];
	struct mux_settings set;
	struct epsec_conf conf;
	struct epsec_loop *loop;
	struct mux *mux;
	struct epsec_ctl *ctl;
};

static void on_hup(void *arg)
{
	struct mux_main *mm = arg;

	if (mm->mux)
		mux_reopen_logs(mm->mux);
}

/* Everything that can be refused before the daemon detaches. */
static int prepare(struct mux_main *mm)
{
	int rc;

	/* A thousand agents, and an fd per event waiting for an SVA. */
	epsec_daemon_raise_nofile();
	epsec_link_set_liveness((unsigned)mm->set.peer_timeout_ms / 3,
				(unsigned)mm->set.peer_timeout_ms);
	rc = epsec_daemon_block_signals();
	if (rc == 0)
		rc = epsec_loader_init(mm->set.common.plugin_dir);
	if (rc == 0)
		rc = epsec_loop_new(&mm->loop);
	if (rc < 0)
		EPSEC_ERR("cannot start: %s", strerror(-rc));
	return rc;
}

/* After detaching: ZeroMQ's threads would not survive the fork. */
static int start(struct mux_main *mm)
{
	int rc = epsec_daemon_start(&mm->d, mm->loop, on_hup, mm);

	if (rc < 0) {
		EPSEC_ERR("cannot start: %s", strerror(-rc));
		return rc;
	}
	rc = mux_new(mm->loop, &mm->set, &mm->mux);
	if (rc < 0)
		return rc;
	make_parent(mm->set.detections_log);
	rc = mux_detect_new(mm->loop, &mm->set, &mm->mux->detect);
	if (rc < 0) {
		EPSEC_ERR("detections: %s", strerror(-rc));
		return rc;
	}
	make_parent(mm->set.common.control);
	rc = epsec_ctl_listen(mm->loop, mm->set.common.control, mux_ctl, mm->mux, &mm->ctl);
	if (rc < 0) {
		EPSEC_ERR("control socket %s: %s", mm->set.common.control, strerror(-rc));
		return rc;
	}
	EPSEC_NOTICE(PROGRAM " %s (%s) %s running: %zu agent and %zu SVA endpoints, control %s",
		     EPSEC_VERSION, EPSEC_BUILD_ID, mm->set.common.id, mm->set.agents.n, mm->set.svas.n,
		     mm->set.common.control);
	return 0;
}

static void stop(struct mux_main *mm)
{
	if (mm->ctl)
		epsec_ctl_close(mm->ctl);
	if (mm->mux)
		mux_detect_free(mm->mux->detect);
	mux_free(mm->mux);
	if (mm->loop)
		epsec_loop_free(mm->loop);
	epsec_loader_exit();
	epsec_strlist_free(&mm->set.agents);
	epsec_strlist_free(&mm->set.svas);
	epsec_strlist_free(&mm->set.on_detect);
	epsec_conf_free(&mm->conf);
}

int main(int argc, char **argv)
{
	struct mux_main mm = { 0 };
	int rc;

	epsec_host_init(PROGRAM);
	/* Until the configuration says otherwise: its errors go to stderr. */
	epsec_log_open(PROGRAM, EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	epsec_daemon_args(&mm.d, argc, argv, PROGRAM, DEFAULT_CONF);
	defaults(&mm.set);
	if ((epsec_conf_load(&mm.conf, mm.d.conf_path, schema, &mm.set) < 0) |
	    (epsec_conf_check_auth(&mm.conf, schema) < 0) |
	    (check_on_detect(&mm.set, mm.d.conf_path) < 0)) {
		stop(&mm);
		return EPSEC_EX_CONFIG;
	}
	default_detections_log(&mm.set, mm.detections_log, sizeof(mm.detections_log));
	if (mm.d.test_config) {
		epsec_conf_print(stdout, &mm.conf, schema, &mm.set, false);
		stop(&mm);
		return 0;
	}
	epsec_conf_publish(&mm.conf, schema, &mm.set);
	/* DEBUG_DEST=2 means "to the host": the mux is the host. */
	epsec_log_open(PROGRAM,
		       mm.set.common.debug_dest == EPSEC_DEST_HOST ? EPSEC_DEST_SYSLOG
							    : (enum epsec_log_dest)mm.set.common.debug_dest,
		       mm.set.common.debug_level);
	rc = prepare(&mm);
	if (rc == 0)
		rc = start(&mm);
	if (rc == 0) {
		epsec_daemon_ready(mm.loop);
		rc = epsec_loop_run(mm.loop);
	}
	if (rc == 0)
		EPSEC_NOTICE(PROGRAM " stopping");
	stop(&mm);
	return rc < 0 ? EX_FAIL : 0;
}
