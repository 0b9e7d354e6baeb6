/* SPDX-License-Identifier: MIT */
/* epsec-sva, the reference scanner appliance: checks its whole config,
 * opens its engines and its control socket as root, becomes its
 * unprivileged user, then connects to the mux through libepsec and runs N
 * workers that scan each event with the engines in order. Everything that
 * can fail is done before detaching, so the operator sees why. */
#include "config.h"
#include "sva.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"
#include "daemon.h"
#include "host.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "sdk.h"

#define EPSEC_LOG_SRC "sva"

#define PROGRAM "epsec-sva"
#define WORKER_POLL_MS 250
#define WORKERS_MAX 256
/* How soon a worker killed by its seccomp filter is replaced. */
#define WATCH_MS 250

static const struct epsec_conf_key schema[] = {
	EPSEC_DAEMON_SETTINGS_KEYS(struct sva_settings, common),
	{ .name = "mux", .type = EPSEC_CONF_URI, .required = true,
	  .offset = offsetof(struct sva_settings, mux) },
	{ .name = "workers", .type = EPSEC_CONF_INT,
	  .offset = offsetof(struct sva_settings, workers), .min = 1, .max = WORKERS_MAX },
	{ .name = "user", .type = EPSEC_CONF_STRING,
	  .offset = offsetof(struct sva_settings, user) },
	{ .name = "engine", .type = EPSEC_CONF_LIST, .required = true,
	  .offset = offsetof(struct sva_settings, engine) },
	{ .name = "stage_max", .type = EPSEC_CONF_SIZE,
	  .offset = offsetof(struct sva_settings, stage_max) },
	{ .name = "core_dir", .type = EPSEC_CONF_STRING,
	  .offset = offsetof(struct sva_settings, core_dir) },
	{ .name = "seccomp", .type = EPSEC_CONF_BOOL,
	  .offset = offsetof(struct sva_settings, seccomp) },
	{ .name = NULL },
};

static void settings_defaults(struct sva_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->common.debug_level = EPSEC_LOG_WARNING;
	set->common.debug_dest = EPSEC_DEST_SYSLOG;
	set->common.control = RUNSTATEDIR "/epsec/" PROGRAM ".ctl";
	set->workers = 2;
	set->stage_max = (int64_t)EPSEC_SDK_STAGE_MAX_DEFAULT;
	set->seccomp = true;
}

static int resolve_id(struct sva *sva)
{
	char host[HOST_NAME_MAX + 1] = "localhost";

	if (sva->set.common.id && sva->set.common.id[0]) {
		sva->id = strdup(sva->set.common.id);
		return sva->id ? 0 : -ENOMEM;
	}
	gethostname(host, sizeof(host) - 1);
	return asprintf(&sva->id, "sva-%s", host) < 0 ? -ENOMEM : 0;
}

/* The whole file is checked, engines included, before anything starts. */
static int configure(struct sva *sva, struct epsec_conf *conf, const char *path)
{
	int r;

	settings_defaults(&sva->set);
	r = epsec_conf_load(conf, path, schema, &sva->set);
	if (epsec_conf_check_auth(conf, schema) < 0)
		r = -EINVAL;
	/* A well-formed engine list is checked even when other keys are
	 * wrong: the operator gets every mistake in one go. */
	if (sva->set.engine && sva_engines_parse(sva->set.engine, &sva->engines) < 0)
		r = -EINVAL;
	if (r == 0)
		r = sva_user_resolve(sva->set.user, config_lookup(&conf->cfg, "user"), &sva->user);
	if (r < 0)
		return r;
	epsec_log_set_level(sva->set.common.debug_level);
	return resolve_id(sva);
}

/* The loader is ours (the engines need it before the session exists);
 * the mux's transport is loaded here too, on the main thread. */
static int load_plugins(struct sva *sva)
{
	const struct epsec_transport_plugin *t;
	const char *rest;
	char scheme[32];
	int r;

	r = epsec_loader_init(sva->set.common.plugin_dir);
	if (r < 0)
		return r;
	epsec_sva_loader_external();
	r = sva_engines_open(&sva->engines);
	if (r < 0)
		return r;
	r = epsec_uri_split(sva->set.mux, scheme, sizeof(scheme), &rest);
	if (r == 0)
		r = epsec_loader_transport(scheme, &t);
	return r == -ENOMEM ? r : r < 0 ? -EINVAL : 0;
}

/* ---------------------------------------------------------------- workers */

/* After the verdict went: the file's path, copied before (the event
 * and its strings are freed by the verdict). */
static void log_outcome(const struct sva_outcome *o, const char *path, bool on_demand)
{
	if (o->engine && on_demand)
		EPSEC_NOTICE("%s: %s found by %s (on demand)", path, o->signature, o->engine);
	else if (o->engine)
		EPSEC_NOTICE("%s: %s found by %s, action %s", path, o->signature, o->engine,
			     sva_action_name(o->action));
	else if (o->errors)
		EPSEC_WARN("%s: not scanned: %s", path, o->error);
}

static int send_outcome(struct epsec_event *ev, const struct sva_outcome *o)
{
	if (!o->engine && o->errors)
		return epsec_event_error(ev, o->error_engine, o->error);
	return epsec_event_verdict(ev, o->action, o->engine, o->engine ? o->signature : NULL,
				   o->cacheable);
}

static void answer(struct sva_worker *w, struct epsec_event *ev)
{
	struct sva *sva = w->sva;
	struct epsec_file *f = epsec_event_file(ev);
	bool on_demand = f->kind == EPSEC_EVENT_ONDEMAND;
	struct sva_outcome o;
	char path[PATH_MAX];
	int r;

	snprintf(w->path, sizeof(w->path), "%s", f->path);
	atomic_store(&w->current, ev);
	sva_engines_scan(&sva->engines, f, &o);
	atomic_store(&w->current, NULL);
	atomic_fetch_add(&sva->scanned, 1);
	if (o.errors && !o.engine)
		atomic_fetch_add(&sva->errors, 1);
	if (o.engine)
		atomic_fetch_add(&sva->found, 1);
	if (o.engine || o.errors)
		snprintf(path, sizeof(path), "%s", f->path);
	r = send_outcome(ev, &o);
	if (o.engine || o.errors)
		log_outcome(&o, path, on_demand);
	if (r < 0)
		EPSEC_DBG("verdict not sent (%s): the mux re-dispatches the event",
			  strerror(-r));
}

static void *worker_main(void *arg)
{
	struct sva_worker *w = arg;
	struct sva *sva = w->sva;
	struct epsec_event *ev;
	int r;

	atomic_store(&w->tid, (int)gettid());
	/* A kernel that refuses the filter: the worker scans unconfined, and
	 * says so, rather than leave the appliance with nobody scanning. */
	if (sva->set.seccomp && (r = sva_confine_worker()) < 0)
		EPSEC_ERR("cannot confine a scan worker (seccomp): %s; it scans unconfined",
			  strerror(-r));
	while (!atomic_load(&sva->stop)) {
		r = epsec_session_next(sva->session, &ev, WORKER_POLL_MS);
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0)
			break;
		answer(w, ev);
	}
	return NULL;
}

static int start_worker(struct sva_worker *w)
{
	int r;

	atomic_store(&w->tid, 0);
	atomic_store(&w->current, NULL);
	r = pthread_create(&w->thread, NULL, worker_main, w);
	w->started = r == 0;
	return -r;
}

/* A worker its seccomp filter killed is gone without a word: its event
 * is answered as not scanned (the file is named), and another takes its
 * place. Dead means the kernel no longer knows its thread id. */
static void replace_dead(struct sva *sva, struct sva_worker *w)
{
	struct epsec_event *ev;
	int tid = atomic_load(&w->tid);

	if (!w->started || tid == 0 || atomic_load(&sva->stop) ||
	    syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH)
		return;
	pthread_join(w->thread, NULL);
	w->started = false;
	atomic_fetch_add(&sva->workers_killed, 1);
	ev = atomic_exchange(&w->current, NULL);
	EPSEC_ERR("a scan worker was killed (a forbidden system call, seccomp) while scanning "
		  "%s: the file is reported as not scanned; a new worker takes its place",
		  ev ? w->path : "nothing");
	if (ev)
		epsec_event_error(ev, "epsec-sva", "epsec-sva: the scan worker was killed: a "
						   "forbidden system call while scanning it (seccomp)");
	if (start_worker(w) < 0)
		EPSEC_ERR("cannot start a new scan worker: %s", strerror(errno));
}

static void watch_workers(struct epsec_loop *loop, void *arg)
{
	struct sva *sva = arg;

	for (size_t i = 0; i < sva->n_workers; i++)
		replace_dead(sva, &sva->workers[i]);
}

static int start_workers(struct sva *sva, struct epsec_loop *loop)
{
	int r;

	if (sva->set.seccomp && !sva_confine_available())
		EPSEC_WARN("built without libseccomp: scan workers are not confined");
	sva->workers = calloc((size_t)sva->set.workers, sizeof(*sva->workers));
	if (!sva->workers)
		return -ENOMEM;
	for (int i = 0; i < sva->set.workers; i++) {
		sva->workers[i].sva = sva;
		r = start_worker(&sva->workers[i]);
		if (r < 0)
			return r;
		sva->n_workers++;
	}
	r = epsec_loop_add_timer(loop, WATCH_MS, watch_workers, sva);
	sva->watch_timer = r > 0 ? r : 0;
	return r < 0 ? r : 0;
}

static void stop_workers(struct sva *sva)
{
	atomic_store(&sva->stop, true);
	for (size_t i = 0; i < sva->n_workers; i++)
		if (sva->workers[i].started)
			pthread_join(sva->workers[i].thread, NULL);
	free(sva->workers);
	sva->workers = NULL;
	sva->n_workers = 0;
}

/* ---------------------------------------------------------------- run */

static int open_session(struct sva *sva)
{
	struct epsec_session_config cfg = {
		.mux_uri = sva->set.mux,
		.id = sva->id,
		.generation = atomic_load(&sva->generation),
		.plugin_dir = sva->set.common.plugin_dir,
	};
	char *names = sva_engines_names(&sva->engines);
	int r;

	if (!names)
		return -ENOMEM;
	cfg.engines = names;
	r = epsec_session_open(&cfg, &sva->session);
	free(names);
	if (r == 0)
		epsec_session_set_stage_max(sva->session, (uint64_t)sva->set.stage_max);
	return r;
}

static int run(struct sva *sva, struct epsec_daemon *d, struct epsec_loop *loop)
{
	int r;

	r = epsec_daemon_start(d, loop, sva_reload_on_hup, sva);
	if (r < 0) {
		EPSEC_ERR("cannot start: %s", strerror(-r));
		return EXIT_FAILURE;
	}
	/* DEBUG_DEST=2 (to the host) is the agent's; here it means syslog. */
	epsec_log_set_dest(sva->set.common.debug_dest == EPSEC_DEST_STDERR ? EPSEC_DEST_STDERR
								     : EPSEC_DEST_SYSLOG);
	/* Plugins, their databases and the control socket are open: from
	 * here on (the first byte of content included) no root. */
	if (sva_user_drop(&sva->user) < 0 || sva_core_dumps(sva->set.core_dir) < 0)
		return EXIT_FAILURE;
	r = open_session(sva);
	if (r == 0)
		r = start_workers(sva, loop);
	if (r < 0) {
		EPSEC_ERR("cannot start: %s", strerror(-r));
		return EXIT_FAILURE;
	}
	EPSEC_INFO("%s %s (%s) serving the mux at %s with %d workers, generation %llu", PROGRAM,
		   EPSEC_VERSION, EPSEC_BUILD_ID, sva->set.mux, sva->set.workers,
		   (unsigned long long)atomic_load(&sva->generation));
	epsec_daemon_ready(loop);
	epsec_loop_run(loop);
	return EXIT_SUCCESS;
}

static void shut_down(struct sva *sva)
{
	/* A reload still running uses the engines and the session. */
	sva_reload_stop(&sva->reload);
	stop_workers(sva);
	epsec_session_close(sva->session);
	sva->session = NULL;
	sva_engines_close(&sva->engines);
}

static int start_failure(int r)
{
	return r == -ENOMEM ? EXIT_FAILURE : EPSEC_EX_CONFIG;
}

int main(int argc, char **argv)
{
	struct sva sva = { .id = NULL };
	struct epsec_daemon d;
	struct epsec_conf conf = { .path = NULL };
	struct epsec_loop *loop = NULL;
	struct epsec_ctl *ctl = NULL;
	int ret, r;

	epsec_daemon_args(&d, argc, argv, PROGRAM, SYSCONFDIR "/epsec/" PROGRAM ".conf");
	sva_no_new_privs();
	atomic_init(&sva.generation, sva_generation_first());
	sva_reload_init(&sva.reload);
	epsec_host_init(PROGRAM);
	/* stderr until started: configuration errors must reach the operator. */
	epsec_log_open(PROGRAM, EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	/* An fd per event in flight (passed with it), and the engines' own. */
	epsec_daemon_raise_nofile();
	r = epsec_daemon_block_signals();
	if (r == 0)
		r = configure(&sva, &conf, d.conf_path);
	if (r == 0)
		r = load_plugins(&sva);
	if (r < 0 || d.test_config) {
		ret = r < 0 ? start_failure(r) : 0;
		if (r == 0)
			epsec_conf_print(stdout, &conf, schema, &sva.set, false);
		goto out;
	}
	epsec_conf_publish(&conf, schema, &sva.set);
	ret = EXIT_FAILURE;
	r = epsec_loop_new(&loop);
	if (r == 0)
		r = epsec_ctl_listen(loop, sva.set.common.control, sva_control, &sva, &ctl);
	if (r < 0) {
		EPSEC_ERR("control socket %s: %s", sva.set.common.control, strerror(-r));
		goto out;
	}
	ret = run(&sva, &d, loop);
out:
	shut_down(&sva);
	epsec_ctl_close(ctl);
	if (loop)
		epsec_loop_free(loop);
	epsec_loader_exit();
	epsec_conf_free(&conf);
	free(sva.id);
	return ret;
}
