/* SPDX-License-Identifier: MIT */
/* Stream framing for stream transports (unix, vsock, vmci): each message is
 * a 4-byte big-endian length then the body, at most EPSEC_FRAME_MAX bytes.
 * Non-blocking; linked into the transport plugins (no global state). */
#ifndef EPSEC_FRAME_H
#define EPSEC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* File descriptors received and not yet taken, at most: a peer passes one
 * with a message and the message's reader takes it at once, so more than
 * this waiting means a peer passing fds nobody asked for. */
#define EPSEC_FRAMER_FDS 16

struct epsec_framer {
	int fd;
	size_t max;              /* frame ceiling (EPSEC_FRAME_MAX by default) */
	/* input: bytes [in_off, in_len) are received but not yet returned */
	uint8_t *in;
	size_t in_off, in_len, in_cap;
	bool in_drained;         /* the last read emptied the fd */
	/* output */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	size_t out_high;         /* send refuses (-ENOBUFS) beyond this */
	/* fd passing (unix sockets): received fds in arrival order */
	bool pass_fds;
	int in_fds[EPSEC_FRAMER_FDS]; /* -1: one the kernel could not give us */
	size_t n_in_fds;
};

void epsec_framer_init(struct epsec_framer *f, int fd, size_t max);
void epsec_framer_free(struct epsec_framer *f);
/* Queue one frame and try to write it. 0 / -EMSGSIZE / -ENOBUFS / -errno. */
int epsec_framer_send(struct epsec_framer *f, const void *msg, size_t len);
/* 0 all written, -EAGAIN more pending, -errno dead. */
int epsec_framer_flush(struct epsec_framer *f);
bool epsec_framer_want_write(const struct epsec_framer *f);
/* Send one frame with `fd` passed alongside (SCM_RIGHTS), on an empty
 * output buffer only: -EAGAIN when it cannot start now. Otherwise as
 * epsec_framer_send. The caller keeps `fd`. */
int epsec_framer_send_fd(struct epsec_framer *f, const void *msg, size_t len, int fd);
/* The oldest received fd (caller owns it), -EAGAIN when none, -ENOENT
 * when one was lost on the way in (out of fds). Needs pass_fds. */
int epsec_framer_recv_fd(struct epsec_framer *f);
/* Next whole frame (malloc'd). 0, -EAGAIN, -ECONNRESET (EOF), -EMSGSIZE
 * (header announces more than max), -errno. -EAGAIN may come without a
 * read when the last read emptied the fd: call again once it is readable
 * (a level-triggered poll says so), not in a busy loop. With pass_fds,
 * -EPROTO when a peer passed more fds than anyone took. */
int epsec_framer_recv(struct epsec_framer *f, void **msg, size_t *len);

/* Pure decoder over a buffer, for tests and fuzzing: how many bytes of
 * `buf` the first frame occupies (header included) and where its body
 * is. 0 ok, -EAGAIN incomplete, -EMSGSIZE oversized. */
int epsec_frame_parse(const uint8_t *buf, size_t len, size_t max,
		      const uint8_t **body, size_t *body_len, size_t *consumed);
void epsec_frame_header(uint8_t hdr[4], uint32_t len);

#endif
