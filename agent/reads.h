/* SPDX-License-Identifier: MIT */
/* READs from the SVA are answered off the loop thread: a pread of a file on
 * a mount that hangs (NFS, FUSE) must not stop the loop that delivers
 * verdicts and ends events at their deadline. */
#ifndef VSEP_READS_H
#define VSEP_READS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "loop.h"

/* What a read gave: n bytes in buf, or n = -errno. Handed to the loop. */
struct vsep_read_done {
	uint64_t req_id, offset;
	uint64_t epoch; /* the link it was asked on */
	ssize_t n;
	uint8_t *buf;
};

/* `deliver` runs on `loop`'s thread with each finished read, and frees
 * it with vsep_read_done_free. */
int vsep_reads_start(struct epsec_loop *loop, void (*deliver)(struct vsep_read_done *d));
/* Queue a read of the held event req_id: 0, or -EBUSY when
 * VSEP_READS_MAX are already waiting (answer it at once as failed). */
int vsep_reads_submit(uint64_t req_id, uint64_t offset, size_t len, uint64_t epoch);
/* Joins the thread (after the read it is in, waiting 2 s at most for a
 * hung one); what waits is dropped: the link it was for is gone. */
void vsep_reads_stop(void);
void vsep_read_done_free(struct vsep_read_done *d);

#define VSEP_READS_MAX 64

#endif
