/* SPDX-License-Identifier: MIT */
/* The control socket every daemon offers epsecctl: a unix stream socket,
 * one JSON object per line each way ({"cmd":"status"} -> {...}). All
 * json-c use for control lives here and in tools/epsecctl.c. */
#ifndef EPSEC_CTL_H
#define EPSEC_CTL_H

#include <json-c/json.h>
#include "loop.h"

struct epsec_ctl;

/* Return a new reference to the reply object (must contain "ok":bool). */
typedef struct json_object *(*epsec_ctl_fn)(const char *cmd, struct json_object *req, void *arg);

/* Listen on `path` (removing a stale socket), mode 0660. */
int epsec_ctl_listen(struct epsec_loop *loop, const char *path, epsec_ctl_fn fn, void *arg,
		     struct epsec_ctl **out);
void epsec_ctl_close(struct epsec_ctl *ctl);

/* Client side: send `req`, wait up to timeout_ms for the reply. */
int epsec_ctl_call(const char *path, struct json_object *req, int timeout_ms,
		   struct json_object **reply);

#endif
