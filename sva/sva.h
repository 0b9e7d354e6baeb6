/* SPDX-License-Identifier: MIT */
/* epsec-sva's state, shared by main.c (which runs it), control.c (which
 * reports it on the control socket), reload.c (signature reloads and the
 * generation) and user.c (dropping root). */
#ifndef EPSEC_SVA_SVA_H
#define EPSEC_SVA_SVA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>
#include <libconfig.h>
#include <epsec/epsec.h>

#include "engines.h"
#include "daemon.h"

/* epsec-sva.conf, filled by epsec_conf_load. */
struct sva_settings {
	struct epsec_daemon_settings common; /* DEBUG_*, id, control, plugin_dir */
	const char *mux;
	int workers;
	const char *user; /* NULL: "epsec" if that user exists */
	const config_setting_t *engine;
	int64_t stage_max; /* content_fd copies at most this much (0: never) */
	const char *core_dir; /* where a crash leaves its core (NULL: as the system says) */
	bool seccomp;      /* confine scan workers (when built with libseccomp) */
};

/* Who epsec-sva becomes once its plugins and sockets are open. */
struct sva_user {
	bool drop;     /* false: not root, or user = "root" */
	bool numeric;  /* no account by that name: ids only, no groups */
	char name[64]; /* who it runs as once started (status) */
	uid_t uid;
	gid_t gid;
};

/* Signature reloads run one at a time on a thread of their own, never on
 * a worker nor on the main loop (which keeps serving status and signals). */
struct sva_reload {
	pthread_mutex_t lock;
	pthread_cond_t done;
	pthread_t thread;
	bool thread_live; /* joinable */
	bool running;
	bool again;       /* asked for while one ran: run once more */
	bool stopping;
	uint64_t started, finished;
	/* The last finished run. */
	int result;
	unsigned reloaded;
	char error[1024];
	atomic_ullong ok, failed;
};

struct sva {
	struct sva_settings set;
	char *id; /* set.id or "sva-<hostname>" */
	struct sva_engines engines;
	struct epsec_session *session;
	struct sva_user user;
	struct sva_reload reload;
	_Atomic uint64_t generation;
	struct sva_worker *workers;
	size_t n_workers;
	int watch_timer;
	atomic_bool stop;
	atomic_ullong scanned, found, errors, workers_killed;
};

/* One scan worker. `current` is the event it scans, so that when its
 * seccomp filter kills it the watchdog can answer that event. */
struct sva_worker {
	struct sva *sva;
	pthread_t thread;
	_Atomic int tid;         /* 0 until it runs */
	_Atomic(struct epsec_event *) current;
	char path[256];          /* of `current`, for the log (cut) */
	bool started;
};

/* confine.c: the calling worker thread's seccomp filter (a forbidden
 * system call kills that thread). 0 or a negative libseccomp error; 0
 * and nothing done when built without libseccomp. */
int sva_confine_worker(void);
bool sva_confine_available(void);

/* The control socket handler (epsec_ctl_fn): status, version, log-level,
 * reload. */
struct json_object *sva_control(const char *cmd, struct json_object *req, void *arg);

/* reload.c. The first generation: the time in seconds, so a restarted SVA
 * never reuses one of its predecessor's (whose reloads went up by one,
 * or to the time, whichever is larger). */
uint64_t sva_generation_first(void);
void sva_reload_init(struct sva_reload *rl);
/* Start a reload (or, if one runs, ask for another after it): returns the
 * run that will answer this request (> 0) or a negative errno. Main loop. */
int64_t sva_reload_start(struct sva *sva);
/* Wait up to timeout_ms for run `want`: true when it has finished. */
bool sva_reload_wait(struct sva *sva, uint64_t want, int timeout_ms);
/* SIGHUP: start one, report in the log only. */
void sva_reload_on_hup(void *arg);
/* Wait for a running reload and forbid new ones (before closing engines). */
void sva_reload_stop(struct sva_reload *rl);

/* user.c. Set PR_SET_NO_NEW_PRIVS (before any thread exists). */
void sva_no_new_privs(void);
/* Decide who to run as from `user` (its setting for messages): 0 or
 * -EINVAL (reported: no such user). */
int sva_user_resolve(const char *name, const config_setting_t *where, struct sva_user *u);
/* setgroups/setgid/setuid to u, for good (0 or a negative errno; logged). */
int sva_user_drop(const struct sva_user *u);
/* After the drop: a crash of the process most likely to crash (it parses
 * hostile content) still leaves a core, in dir when set (the system's
 * core_pattern decides otherwise). 0 or a negative errno (logged). */
int sva_core_dumps(const char *dir);

#endif
