/* SPDX-License-Identifier: MIT */
/* The agents' own log lines (DEBUG_DEST=2, "log on the host"): one file per
 * agent id under agent_log_dir, one line per LOG message. */
#ifndef EPSEC_MUX_AGENTLOG_H
#define EPSEC_MUX_AGENTLOG_H

#include <stddef.h>
#include <stdint.h>

/* The file name for an agent id: [A-Za-z0-9._-] kept, anything else '_',
 * ".log" appended; never empty, never a path. */
void mux_agentlog_name(const char *id, char *out, size_t len);
/* Create `dir` (and its parents) if needed and open the agent's file for
 * appending. An fd, or a negative errno. */
int mux_agentlog_open(const char *dir, const char *id);
/* Append "TIMESTAMP LEVEL [source] text\n" in one write. time_ns 0: now.
 * Control characters in text become spaces, so one LOG is one line. */
int mux_agentlog_write(int fd, int64_t time_ns, unsigned level, const char *source,
		       const char *text);

#endif
