/* SPDX-License-Identifier: MIT */
/* The verdict cache, ours and the kernel's: verdicts keyed by what a write
 * changes (dev, ino, size, mtime, ctime) and by the SVA's signature
 * generation, and fanotify ignore marks that spare clean files the round
 * trip to this process altogether. */
#ifndef VSEP_CACHE_H
#define VSEP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "vsep.h"

/* From s: cache_size verdicts kept (0 = none), and with ignore_marks,
 * ignore_marks_max marks placed before all are flushed and counting starts
 * over (0 = none). Call before any worker runs; s must outlive the cache. */
int vsep_cache_init(const struct vsep_settings *s, int fanfd);
void vsep_cache_fini(void);

/* Whether there is a verdict table at all (cache_size > 0). */
bool vsep_cache_enabled(void);
/* The hot path: true and the cached action for the file as fstat saw it,
 * if a verdict of the current generation is cached. *generation is the
 * one to hand to vsep_cache_ignore. Counts cache_hits/cache_misses. */
bool vsep_cache_lookup(const struct stat *st, enum vsep_action *action,
		       uint64_t *generation);
/* Remember a cacheable verdict given for the file as it was at `st`. A
 * newer generation than any seen before drops every older verdict and
 * every ignore mark first; an older one is not kept. */
void vsep_cache_store(const struct stat *st, enum vsep_action action, uint64_t generation);
/* The mux says an SVA has a newer signature generation (GENERATION): as
 * for a verdict of it, every older verdict and ignore mark goes now. */
void vsep_cache_generation(uint64_t generation);
/* The newest generation heard of (0: none yet), for status. */
uint64_t vsep_cache_current_generation(void);
/* After allowing an open/exec of `fd` (a clean verdict of `generation`
 * for the file at `st`): ask the kernel not to report its opens again
 * until it is written. Never waits: does nothing when ignore marks are
 * off, ignore_marks_max are placed, a flush is running, the generation is
 * no longer current, or the file changed meanwhile. */
void vsep_cache_ignore(int fd, const struct stat *st, uint64_t generation);
/* Before a close_write is scanned: drop the file's ignore mark and cached
 * verdicts, whatever its state says (writes through mmap change none of
 * it). */
void vsep_cache_forget(int fd, const struct stat *st);
/* From the loop, every few ms: says once when ignore_marks_max is
 * reached (marks are then no longer placed; nothing is flushed). */
void vsep_cache_maintain(void);

#endif
