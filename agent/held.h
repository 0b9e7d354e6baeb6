/* SPDX-License-Identifier: MIT */
/* Held events: every event sent to the mux waits here, by req_id, until its
 * verdict, an ERROR, its deadline, a disconnect or shutdown ends it. Every
 * event ends in vsep_event_end, held or not: the one place where a
 * permission event gets its answer and its fd is closed. */
#ifndef VSEP_HELD_H
#define VSEP_HELD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "vsep.h"

struct vsep_outcome {
	enum vsep_action action;
	enum vsep_why why;
	const char *engine;    /* from the verdict, or NULL */
	const char *signature; /* from the verdict, or NULL */
	bool cacheable;        /* the verdict may be cached */
	uint64_t generation;   /* the SVA's signature generation */
};

/* `capacity` bounds the events held at once (they each hold an fd).
 * Held opens end at timeout_ms, scans nobody waits on (close_write,
 * sweeps) at max_ms. */
int vsep_held_init(int fanfd, size_t capacity, unsigned timeout_ms, unsigned max_ms);
/* The thread that deletes and quarantines (without it, which unit tests
 * use, the thread giving the verdict does). Stop runs what is queued. */
int vsep_held_actions_start(void);
void vsep_held_actions_stop(void);
/* Call after vsep_held_drain, once nothing can add any more. */
void vsep_held_fini(void);

/* End an event that is not in the table: answer it (permission events)
 * BEFORE anything is logged, close its fd, count it. */
void vsep_event_end(const struct vsep_event *ev, bool allow, enum vsep_why why);
/* The same for an answer the verdict cache gave (of `generation`, for the
 * file at `st`): a clean open/exec also gets an ignore mark, placed after
 * the answer and before the fd is closed. */
void vsep_event_end_cached(const struct vsep_event *ev, bool allow, const struct stat *st,
			   uint64_t generation);

/* Take ownership of ev (its fd stays open until the event ends). `path`
 * is copied. 0 and *req_id, -ENOSPC when full, -ENOMEM. */
int vsep_held_add(const struct vsep_event *ev, const struct stat *st, const char *path,
		  uint64_t *req_id);
/* End the held event req_id with this outcome (close_write: apply the
 * action first). 0, or -ENOENT when no such event is held (any more). */
int vsep_held_resolve(uint64_t req_id, const struct vsep_outcome *o);
/* A duplicate of the held event's fd (caller closes it), or -errno
 * (-ENOENT: no such event held any more). */
int vsep_held_dup_fd(uint64_t req_id);
/* pread the held event's file. Bytes read, or -errno (-ENOENT: unknown). */
ssize_t vsep_held_pread(uint64_t req_id, void *buf, size_t len, uint64_t offset);
/* End every event whose deadline has passed: held opens by `policy`
 * (VSEP_WHY_TIMEOUT), scans nobody waits on as engine errors. */
void vsep_held_sweep(uint64_t now_ms, int policy);
/* End every held event by `policy`. */
void vsep_held_drain(int policy, enum vsep_why why);
size_t vsep_held_count(void);

#endif
