/* SPDX-License-Identifier: MIT */
/* The files vsep let pass without a verdict (the chain was away, slow or
 * overloaded, or the engines could not decide): remembered by dev/ino and
 * path, scanned again once a verdict path is back, and kept in state_dir
 * across restarts. Nothing that was let pass unscanned is forgotten
 * without a counter saying so. */
#ifndef VSEP_UNSCANNED_H
#define VSEP_UNSCANNED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include "vsep.h"

/* Load what a previous run left in s->state_dir (a damaged or foreign
 * file is ignored with a warning, never trusted in part) and start the
 * thread that rescans: while ready() says the mux link is up, due files
 * are opened and handed to inject() as VSEP_KIND_RESCAN events. */
int vsep_unscanned_start(const struct vsep_settings *s, bool (*ready)(void),
			 void (*inject)(const struct vsep_event *ev));
/* Stop the thread (before the workers stop: it feeds them). */
void vsep_unscanned_stop(void);
/* Save what is left and free it all; after the last event ended. */
void vsep_unscanned_fini(void);

/* An event of `kind` on the file at `st`/`path` ended without a verdict,
 * for `why`; `allowed` whether the opener got through. Remembered when
 * the file was let pass unscanned. Thread-safe, cheap. */
void vsep_unscanned_note(enum vsep_kind kind, const struct stat *st, const char *path,
			 enum vsep_why why, bool allowed);
/* A verdict about the file at `st` came (clean or infected): forgotten. */
void vsep_unscanned_scanned(const struct stat *st);

/* Files waiting for a scan. */
size_t vsep_unscanned_count(void);

#endif
