/* SPDX-License-Identifier: MIT */
/* Detections on the mux host: one JSON line per detection in
 * detections_log (every guest's in one place), a notice in syslog, and the
 * on_detect command run for each, never through a shell. */
#ifndef MUX_DETECT_H
#define MUX_DETECT_H

#include <stdint.h>
#include <json-c/json.h>

#include "loop.h"
#include "mux.h"

struct mux_detect;

/* Reads set->detections_log, on_detect, on_detect_max, on_detect_timeout_ms;
 * `set` must outlive it. The log is opened on the first detection. */
int mux_detect_new(struct epsec_loop *loop, const struct mux_settings *set,
		   struct mux_detect **out);
/* Kills commands still running (they were given their time already). */
void mux_detect_free(struct mux_detect *d);
/* An agent's LOG of source "detection": `text` its JSON record; `agent`
 * and `peer` as the mux knows the sender. */
void mux_detect_record(struct mux_detect *d, const char *agent, const char *peer,
		       const char *text);
/* Counters for status (a new object). */
struct json_object *mux_detect_status(const struct mux_detect *d);

#endif
