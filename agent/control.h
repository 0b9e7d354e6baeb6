/* SPDX-License-Identifier: MIT */
/* vsep's control socket: the status, version and log-level commands that
 * epsecctl sends (one JSON object per line; libcore/ctl.c does the I/O). */
#ifndef VSEP_CONTROL_H
#define VSEP_CONTROL_H

#include <stddef.h>
#include "fanotify.h"
#include "loop.h"
#include "vsep.h"

struct epsec_ctl;

/* s and marks must outlive the control socket. */
int vsep_control_start(struct epsec_loop *loop, const struct vsep_settings *s,
		       const struct vsep_mark *marks, size_t nmarks, struct epsec_ctl **out);

#endif
