/* SPDX-License-Identifier: MIT */
/* epsecctl commands that live in their own file (scan, keygen, quarantine):
 * each gets its own arguments and where the control sockets are, and
 * returns the process's exit status. */
#ifndef EPSECCTL_H
#define EPSECCTL_H

#include <stddef.h>

#define EPSECCTL_EX_USAGE 2

struct epsecctl_env {
	const char *rundir; /* -r, else $EPSEC_RUNDIR, else RUNSTATEDIR/epsec */
	const char *socket; /* -s, or NULL */
};

/* The control socket of `daemon` ("vsep", "epsec-mux", "epsec-sva"): -s
 * when given, else RUNDIR/<daemon>.ctl. */
void epsecctl_ctl_path(const struct epsecctl_env *env, const char *daemon, char *buf,
		       size_t len);

/* Ask `daemon` for `cmd` within timeout_ms: its reply when it answered
 * "ok": true, else NULL with *err (may be NULL) the negative errno
 * (-EPROTO: it refused). */
struct json_object;
struct json_object *epsecctl_ask(const struct epsecctl_env *env, const char *daemon,
				 const char *cmd, int timeout_ms, int *err);

/* argv[0] is the command's name. */
int epsecctl_scan(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_keygen(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_quarantine(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_support_bundle(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_metrics(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_top(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_compat(const struct epsecctl_env *env, int argc, char **argv);
int epsecctl_eicar_test(const struct epsecctl_env *env, int argc, char **argv);

#endif
