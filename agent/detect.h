/* SPDX-License-Identifier: MIT */
/* Detections: every file an engine found is one structured record (time,
 * path, engine, signature, action taken, its result) sent to the mux, which
 * writes one detections log for all guests and runs on_detect. */
#ifndef VSEP_DETECT_H
#define VSEP_DETECT_H

#include "vsep.h"

/* Where records go: vsep_mux_log_forward as LOG source "detection" (main.c
 * sets it; NULL, as in unit tests: nowhere). Returns < 0 when not sent. */
typedef int (*vsep_detect_sink)(int level, const char *src, const char *line);
void vsep_detect_set_sink(vsep_detect_sink sink);

/* One record; any thread. `result` says what became of the file. */
void vsep_detect_report(const char *path, const char *engine, const char *signature,
			enum vsep_action action, const char *result);

#endif
