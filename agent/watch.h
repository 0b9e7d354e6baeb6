/* SPDX-License-Identifier: MIT */
/* Keeping the marks right while vsep runs: new directories of inode-marked
 * trees are marked as they appear and swept once, new mounts under a
 * protected path get their own mount mark (agent/fanotify.c places them). */
#ifndef VSEP_WATCH_H
#define VSEP_WATCH_H

#include "vsep.h"

/* After the workers run (sweeps go to them): the mounts already under a
 * protected path are marked, then a thread follows directory events and
 * the mount table. 0 or -errno. */
int vsep_watch_start(const struct vsep_settings *s, int fanfd);
/* Before the workers stop; harmless when not started. */
void vsep_watch_stop(void);

#endif
