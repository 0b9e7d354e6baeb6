/* SPDX-License-Identifier: MIT */
/* The agent's connection to the mux: connect and reconnect with capped
 * backoff, HELLO/WELCOME, EVENTs out, READ/VERDICT/ERROR in, and LOG lines
 * for DEBUG_DEST=2. Runs on the loop thread; workers and the log hook hand
 * it work through a locked outbox. */
#ifndef VSEP_MUX_H
#define VSEP_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "loop.h"
#include "vsep.h"

/* One EVENT to send, built by a worker for an event already held. */
struct vsep_req {
	struct vsep_req *next;
	uint64_t req_id;
	enum vsep_kind kind;
	pid_t pid;
	struct stat st;
	char *path;
	char *exe;       /* NULL when unknown */
	bool has_data;
	size_t data_len;
	uint8_t data[];  /* the first inline_bytes of the file */
};

void vsep_req_free(struct vsep_req *r);

/* Starts connecting at once; the loop must outlive vsep_mux_stop. */
int vsep_mux_start(struct epsec_loop *loop, const struct vsep_settings *s);
/* Close the link; EVENTs not yet sent end by on_disconnect policy. */
void vsep_mux_stop(void);
/* Thread-safe: WELCOME received and the link is up. */
bool vsep_mux_ready(void);
/* Thread-safe: the mux takes fds with EVENTs (unix://, capability "fd"),
 * so EVENTs need no inline bytes: the SVA reads the file itself. */
bool vsep_mux_passes_fds(void);
/* Thread-safe: queue r for sending (takes ownership). If it cannot be
 * sent, its held event ends by the on_disconnect policy. */
void vsep_mux_submit(struct vsep_req *r);
/* epsec_log_forward_fn for DEBUG_DEST=2: LOG messages while connected. */
int vsep_mux_log_forward(int level, const char *src, const char *line);

#endif
