/* SPDX-License-Identifier: MIT */
/* What a verdict does to a file after its write (close_write, sweep):
 * delete, quarantine, or nothing. The file must still be the one that
 * was scanned. */
#ifndef VSEP_ACTIONS_H
#define VSEP_ACTIONS_H

#include <sys/types.h>
#include "vsep.h"

/* Apply `act` to the file the scan saw at `path` as (dev, ino); the
 * caller still holds an fd on it, so the inode cannot be reused meanwhile.
 * Logs what it did; a quarantine counts vsep_stats.quarantined (or
 * errors), the caller counts the rest. 0 done (or nothing to do), -errno
 * on failure (-ESTALE: path now names another file). */
int vsep_action_apply(enum vsep_action act, const char *path, dev_t dev, ino_t ino,
		      const char *signature);
/* The same, naming the engine that decided (kept in the quarantine's
 * record); engine may be NULL. */
int vsep_action_apply_engine(enum vsep_action act, const char *path, dev_t dev, ino_t ino,
			     const char *engine, const char *signature);
const char *vsep_action_name(enum vsep_action act);

#endif
