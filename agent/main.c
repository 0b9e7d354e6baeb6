/* SPDX-License-Identifier: MIT */
/* vsep, the thin agent: options, the vsep.conf schema, start-up in an
 * order that reports every failure on the terminal before detaching, the
 * runbook's DEBUG_LEVEL/DEBUG_DEST re-read, and a stop that answers every
 * held event before exit. */
#include "config.h"
#include "vsep.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <epsec/version.h>

#include "cache.h"
#include "caps.h"
#include "control.h"
#include "ctl.h"
#include "daemon.h"
#include "detect.h"
#include "fanotify.h"
#include "held.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "mux.h"
#include "quarantine.h"
#include "unscanned.h"
#include "watch.h"
#include "workers.h"

#define EPSEC_LOG_SRC "vsep"

#define SWEEP_MS 50
#define DEBUG_REREAD_MS 2000
/* fds beyond the held and queued events: the daemon's own (sockets, logs,
 * plugins, dups for READ) and the ones the kernel opens for the events of
 * one read() of the group before the reader can answer them (64 KiB of
 * 24-byte records). Running out makes the kernel deny what it could not
 * hand over. */
#define FD_RESERVE (256 + 65536 / 24)

static const char *const policies[] = { "allow", "deny", NULL };

#define KEY(name, type, req, field, lo, hi) \
	{ name, type, req, offsetof(struct vsep_settings, field), lo, hi, NULL }
#define CHOICE(name, field) \
	{ name, EPSEC_CONF_CHOICE, false, offsetof(struct vsep_settings, field), 0, 0, policies }

static const struct epsec_conf_key schema[] = {
	EPSEC_DAEMON_SETTINGS_KEYS(struct vsep_settings, common),
	KEY("mux", EPSEC_CONF_URI, true, mux, 0, 0),
	KEY("protect", EPSEC_CONF_STRLIST, true, protect, 0, 0),
	KEY("exclude_paths", EPSEC_CONF_STRLIST, false, exclude_paths, 0, 0),
	KEY("exclude_uids", EPSEC_CONF_INTLIST, false, exclude_uids, 0, 4294967294L),
	KEY("exclude_exes", EPSEC_CONF_STRLIST, false, exclude_exes, 0, 0),
	KEY("max_file_size", EPSEC_CONF_SIZE, false, max_file_size, 0, 0),
	KEY("scan_timeout_ms", EPSEC_CONF_INT, false, scan_timeout_ms, 1, 3600000),
	CHOICE("on_timeout", on_timeout),
	CHOICE("on_disconnect", on_disconnect),
	CHOICE("on_overload", on_overload),
	CHOICE("on_error", on_error),
	KEY("scan_max_ms", EPSEC_CONF_INT, false, scan_max_ms, 1000, 86400000),
	KEY("state_dir", EPSEC_CONF_STRING, false, state_dir, 0, 0),
	KEY("unscanned_max", EPSEC_CONF_INT, false, unscanned_max, 0, 1 << 24),
	KEY("inline_bytes", EPSEC_CONF_INT, false, inline_bytes, 0, 1 << 20),
	KEY("workers", EPSEC_CONF_INT, false, workers, 1, 256),
	KEY("queue_size", EPSEC_CONF_INT, false, queue_size, 1, 1 << 20),
	KEY("max_held", EPSEC_CONF_INT, false, max_held, 16, 1 << 20),
	KEY("cache_size", EPSEC_CONF_INT, false, cache_size, 0, 1 << 24),
	KEY("ignore_marks", EPSEC_CONF_BOOL, false, ignore_marks, 0, 0),
	KEY("ignore_marks_max", EPSEC_CONF_INT, false, ignore_marks_max, 0, 1 << 24),
	KEY("quarantine_dir", EPSEC_CONF_STRING, false, quarantine_dir, 0, 0),
	{ NULL },
};

struct vsep {
	struct epsec_daemon d;
	struct vsep_settings s;
	struct epsec_conf conf;
	struct epsec_loop *loop;
	struct epsec_ctl *ctl;
	struct vsep_mark *marks;
	int fanfd;
	int sweep_timer, debug_timer;
	struct timespec conf_mtime;
	char *conf_abs; /* re-read after detaching, which chdirs to / */
	bool workers_up, mux_up, held_up;
};

static void defaults(struct vsep_settings *s)
{
	static char host[HOST_NAME_MAX + 1];

	if (gethostname(host, sizeof(host) - 1) < 0)
		strcpy(host, "vsep");
	*s = (struct vsep_settings){
		.common.debug_level = EPSEC_LOG_WARNING,
		.common.debug_dest = EPSEC_DEST_HOST,
		.common.id = host,
		.common.control = RUNSTATEDIR "/epsec/vsep.ctl",
		.common.plugin_dir = PKGLIBDIR,
		.scan_timeout_ms = 5000,
		.on_timeout = VSEP_POLICY_ALLOW,
		.on_disconnect = VSEP_POLICY_ALLOW,
		.inline_bytes = 65536,
		.workers = 2,
		.queue_size = 1024,
		.on_overload = VSEP_POLICY_ALLOW,
		.on_error = VSEP_POLICY_ALLOW,
		.scan_max_ms = 600000,
		.state_dir = LOCALSTATEDIR "/lib/epsec/vsep",
		.unscanned_max = 100000,
		.max_file_size = 0,
		.max_held = 4096,
		.cache_size = 65536,
		.ignore_marks = true,
		.ignore_marks_max = 65536,
		.quarantine_dir = LOCALSTATEDIR "/lib/epsec/quarantine",
	};
}

static bool all_absolute(const char *path, const char *key, const struct epsec_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i][0] != '/') {
			EPSEC_ERR("%s: %s: expected absolute paths, got \"%s\"", path, key, l->v[i]);
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------ logging */

static void apply_debug(int level, int dest)
{
	epsec_log_set_level(level);
	epsec_log_set_dest((enum epsec_log_dest)dest);
}

/* The runbook: "The thin agent periodically checks for this level".
 * Only a changed file is read again. */
static void reread_debug(struct epsec_loop *loop, void *arg)
{
	struct vsep *v = arg;
	struct stat st;
	int level = epsec_log_get_level(), dest = (int)epsec_log_get_dest();

	if (stat(v->conf_abs, &st) < 0 ||
	    (st.st_mtim.tv_sec == v->conf_mtime.tv_sec &&
	     st.st_mtim.tv_nsec == v->conf_mtime.tv_nsec))
		return;
	v->conf_mtime = st.st_mtim;
	if (epsec_conf_peek_int(v->conf_abs, "DEBUG_LEVEL", &level) < 0 ||
	    level < EPSEC_LOG_EMERG || level > EPSEC_LOG_DEBUG)
		level = epsec_log_get_level();
	if (epsec_conf_peek_int(v->conf_abs, "DEBUG_DEST", &dest) < 0 ||
	    dest < EPSEC_DEST_SYSLOG || dest > EPSEC_DEST_STDERR)
		dest = (int)epsec_log_get_dest();
	if (level == epsec_log_get_level() && dest == (int)epsec_log_get_dest())
		return;
	apply_debug(level, dest);
	EPSEC_NOTICE("DEBUG_LEVEL=%d DEBUG_DEST=%d from %s", level, dest, v->conf_abs);
}

static void on_hup(void *arg)
{
	struct vsep *v = arg;

	v->conf_mtime = (struct timespec){ 0 };
	reread_debug(v->loop, v);
}

/* ------------------------------------------------------------ start */

/* Every held or queued event keeps an fd: what the configuration may hold
 * must fit RLIMIT_NOFILE (raised to its hard limit when it is short), or
 * vsep refuses to start rather than fail opens later. */
static int check_fd_budget(const struct vsep_settings *s)
{
	rlim_t need = (rlim_t)s->max_held + (rlim_t)s->queue_size + FD_RESERVE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = rl.rlim_max = 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		EPSEC_ERR("max_held (%d) + queue_size (%d) + %d reserved = %llu file descriptors, "
			  "but RLIMIT_NOFILE is %llu: lower max_held/queue_size or raise "
			  "LimitNOFILE=", s->max_held, s->queue_size, FD_RESERVE,
			  (unsigned long long)need, (unsigned long long)rl.rlim_cur);
		return -EMFILE;
	}
	return 0;
}

static int open_fanotify(struct vsep *v)
{
	size_t i;
	int r = vsep_fan_init(&v->fanfd);

	if (r == -EPERM) {
		EPSEC_ERR("vsep needs CAP_SYS_ADMIN (run as root)");
		return r;
	}
	if (r < 0) {
		EPSEC_ERR("fanotify_init: %s", strerror(-r));
		return r;
	}
	v->marks = calloc(v->s.protect.n, sizeof(*v->marks));
	if (!v->marks)
		return -ENOMEM;
	for (i = 0; i < v->s.protect.n; i++) {
		r = vsep_fan_mark(v->fanfd, v->s.protect.v[i], &v->marks[i]);
		if (r < 0) {
			EPSEC_ERR("protect path %s: %s", v->s.protect.v[i], strerror(-r));
			return r;
		}
	}
	return 0;
}

static void make_parent_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
}

/* What can fail with a message on the terminal, before detaching. */
static int prepare(struct vsep *v)
{
	int r;

	if (epsec_daemon_block_signals() < 0 || open_fanotify(v) < 0)
		return -1;
	r = epsec_loop_new(&v->loop);
	if (r == 0)
		r = epsec_loader_init(v->s.common.plugin_dir);
	if (r < 0) {
		EPSEC_ERR("cannot start: %s", strerror(-r));
		return r;
	}
	make_parent_dir(v->s.common.control);
	vsep_quarantine_init(v->s.quarantine_dir);
	r = vsep_control_start(v->loop, &v->s, v->marks, v->s.protect.n, &v->ctl);
	if (r < 0)
		EPSEC_ERR("control socket %s: %s", v->s.common.control, strerror(-r));
	return r;
}

static int add_timers(struct vsep *v);

/* After detaching: the threads, the mux link, the timers. */
static int launch(struct vsep *v)
{
	int r = vsep_caps_drop();

	if (r < 0) {
		EPSEC_ERR("cannot drop capabilities: %s", strerror(-r));
		return r;
	}
	r = vsep_held_init(v->fanfd, (size_t)v->s.max_held, (unsigned)v->s.scan_timeout_ms,
			   (unsigned)v->s.scan_max_ms);

	v->held_up = r == 0;
	if (r == 0)
		r = vsep_held_actions_start();
	if (r == 0)
		r = vsep_cache_init(&v->s, v->fanfd);
	if (r == 0) {
		r = vsep_workers_start(&v->s, v->fanfd);
		v->workers_up = true;
	}
	if (r == 0)
		r = vsep_watch_start(&v->s, v->fanfd);
	if (r == 0) {
		r = vsep_mux_start(v->loop, &v->s);
		v->mux_up = r == 0;
	}
	if (r == 0)
		r = vsep_unscanned_start(&v->s, vsep_mux_ready, vsep_workers_inject);
	if (r == 0)
		r = add_timers(v);
	if (r < 0)
		EPSEC_ERR("cannot start: %s", strerror(-r));
	return r;
}

static void sweep(struct epsec_loop *loop, void *arg)
{
	struct vsep *v = arg;

	vsep_held_sweep(epsec_now_ms(), v->s.on_timeout);
	vsep_cache_maintain();
}

static int add_timers(struct vsep *v)
{
	struct stat st;

	if (stat(v->conf_abs, &st) == 0)
		v->conf_mtime = st.st_mtim;
	v->sweep_timer = epsec_loop_add_timer(v->loop, SWEEP_MS, sweep, v);
	if (v->sweep_timer < 0)
		return v->sweep_timer;
	v->debug_timer = epsec_loop_add_timer(v->loop, DEBUG_REREAD_MS, reread_debug, v);
	return v->debug_timer < 0 ? v->debug_timer : 0;
}

/* ------------------------------------------------------------ stop */

/* Reader and workers first (nothing new comes in), then what is queued
 * for the mux, then everything held: each ends by on_disconnect policy. */
static void shutdown_all(struct vsep *v)
{
	vsep_unscanned_stop();
	vsep_watch_stop();
	if (v->workers_up)
		vsep_workers_stop();
	epsec_log_set_forward(NULL);
	vsep_detect_set_sink(NULL);
	if (v->mux_up)
		vsep_mux_stop();
	if (v->held_up) {
		vsep_held_drain(v->s.on_disconnect, VSEP_WHY_SHUTDOWN);
		vsep_held_actions_stop();
		vsep_held_fini();
		vsep_cache_fini();
	}
	vsep_unscanned_fini(); /* with what the drain just let pass */
	if (v->ctl)
		epsec_ctl_close(v->ctl);
	if (v->loop)
		epsec_loop_free(v->loop);
	epsec_loader_exit();
	if (v->fanfd >= 0)
		close(v->fanfd);
	vsep_fan_fini();
	free(v->marks);
}

static int run(struct vsep *v)
{
	int r = prepare(v);

	if (r == 0) {
		r = epsec_daemon_start(&v->d, v->loop, on_hup, v);
		if (r < 0)
			EPSEC_ERR("cannot start: %s", strerror(-r));
	}
	if (r == 0) {
		apply_debug(v->s.common.debug_level, v->s.common.debug_dest);
		epsec_log_set_forward(vsep_mux_log_forward);
		vsep_detect_set_sink(vsep_mux_log_forward);
		r = launch(v);
	}
	if (r == 0) {
		EPSEC_NOTICE("vsep %s (%s) protecting %zu path(s), mux %s", EPSEC_VERSION,
			     EPSEC_BUILD_ID, v->s.protect.n, v->s.mux);
		epsec_daemon_ready(v->loop);
		epsec_loop_run(v->loop);
	}
	shutdown_all(v);
	if (r == 0)
		EPSEC_NOTICE("stopped");
	return r == 0 ? 0 : 1;
}

static int load(struct vsep *v)
{
	int r = epsec_conf_load(&v->conf, v->d.conf_path, schema, &v->s);

	if (epsec_conf_check_auth(&v->conf, schema) < 0)
		r = -EINVAL;
	/* Both lists checked even after other errors: every mistake at once. */
	if (!all_absolute(v->d.conf_path, "protect", &v->s.protect) |
	    !all_absolute(v->d.conf_path, "exclude_paths", &v->s.exclude_paths))
		r = -EINVAL;
	if (r == 0)
		v->conf_abs = realpath(v->d.conf_path, NULL);
	if (r == 0 && !v->conf_abs)
		r = -errno;
	return r;
}

int main(int argc, char **argv)
{
	struct vsep v = { .fanfd = -1 };
	int status;

	epsec_daemon_args(&v.d, argc, argv, "vsep", SYSCONFDIR "/vsep/vsep.conf");
	/* Start-up errors go to the terminal whatever DEBUG_DEST says. */
	epsec_log_open("vsep", EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	defaults(&v.s);
	if (load(&v) < 0 || check_fd_budget(&v.s) < 0) {
		status = EPSEC_EX_CONFIG;
	} else if (v.d.test_config) {
		epsec_conf_print(stdout, &v.conf, schema, &v.s, false);
		status = 0;
	} else {
		epsec_conf_publish(&v.conf, schema, &v.s);
		epsec_log_set_level(v.s.common.debug_level);
		status = run(&v);
	}
	epsec_strlist_free(&v.s.protect);
	epsec_strlist_free(&v.s.exclude_paths);
	epsec_strlist_free(&v.s.exclude_exes);
	epsec_intlist_free(&v.s.exclude_uids);
	epsec_conf_free(&v.conf);
	free(v.conf_abs);
	return status;
}
