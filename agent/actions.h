/* What a verdict does to a file after its write (close_write): delete, or
 * nothing. The file must still be the one that was scanned. */
#ifndef VSEP_ACTIONS_H
#define VSEP_ACTIONS_H

#include <sys/types.h>
#include "vsep.h"

/* Apply `act` to the file the scan saw at `path` as (dev, ino); the
 * caller still holds an fd on it, so the inode cannot be reused meanwhile.
 * Logs what it did. 0 done (or nothing to do), -errno on failure
 * (-ESTALE: path now names another file; -ENOTSUP: quarantine). */
int vsep_action_apply(enum vsep_action act, const char *path, dev_t dev, ino_t ino,
		      const char *signature);
const char *vsep_action_name(enum vsep_action act);

#endif
