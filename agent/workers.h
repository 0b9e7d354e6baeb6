/* SPDX-License-Identifier: MIT */
/* The threads between the kernel and the mux: one reader drains the
 * fanotify group into bounded per-worker queues (a process's events stay on
 * one worker), and workers turn each event into a held EVENT for the mux. */
#ifndef VSEP_WORKERS_H
#define VSEP_WORKERS_H

#include <stdint.h>
#include "vsep.h"

/* Starts the reader and s->workers workers on the fanotify group. */
int vsep_workers_start(const struct vsep_settings *s, int fanfd);
/* Queue an event the agent made itself (VSEP_KIND_SWEEP: an fd it opened
 * on a file found in a new directory); from any thread. Ends it by
 * policy, like a kernel event, when the queue is full. */
void vsep_workers_inject(const struct vsep_event *ev);
/* A verdict said its engines read `bytes` of a file (VERDICT.bytes_read):
 * later EVENTs carry no more inline bytes than engines lately needed.
 * Thread-safe. */
void vsep_workers_read_hint(uint64_t bytes);
/* What EVENTs carry now (status): inline_bytes, or less after hints; 0
 * before the workers start. */
size_t vsep_workers_inline_bytes(void);
/* Stops and joins them; events still queued end by on_disconnect policy. */
void vsep_workers_stop(void);

#endif
