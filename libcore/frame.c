/* SPDX-License-Identifier: MIT */
/* Stream framing: a 4-byte big-endian length, then the body. The ceiling is
 * checked on the header before anything is allocated for the body, so a
 * hostile peer cannot make us reserve memory it never sends, and output is
 * bounded by out_high so a peer that stops reading cannot grow it forever. */
#include "config.h"
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <epsec/transport.h>

#define FRAME_HDR 4u
#define FRAME_OUT_HIGH (16u * 1024u * 1024u)
#define FRAME_READ_CHUNK (64u * 1024u)
/* Buffers grown past this for one big message are released once empty, so
 * a single 4 MiB message does not pin 4 MiB on each of a thousand links. */
#define FRAME_KEEP (256u * 1024u)

void epsec_frame_header(uint8_t hdr[4], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

int epsec_frame_parse(const uint8_t *buf, size_t len, size_t max,
		      const uint8_t **body, size_t *body_len, size_t *consumed)
{
	uint32_t n;

	if (len < FRAME_HDR)
		return -EAGAIN;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (n > max)
		return -EMSGSIZE;
	if (len - FRAME_HDR < n)
		return -EAGAIN;
	*body = buf + FRAME_HDR;
	*body_len = n;
	*consumed = FRAME_HDR + (size_t)n;
	return 0;
}

void epsec_framer_init(struct epsec_framer *f, int fd, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->max = max ? max : EPSEC_FRAME_MAX;
	f->out_high = FRAME_OUT_HIGH;
}

void epsec_framer_free(struct epsec_framer *f)
{
	while (f->n_in_fds)
		if (f->in_fds[--f->n_in_fds] >= 0)
			close(f->in_fds[f->n_in_fds]);
	free(f->in);
	free(f->out);
	f->in = f->out = NULL;
	f->in_off = f->in_len = f->in_cap = 0;
	f->out_off = f->out_len = f->out_cap = 0;
}

/* sendmsg for MSG_NOSIGNAL: a plugin must not depend on the host ignoring
 * SIGPIPE. writev for fds that are not sockets (pipes in tests). */
static ssize_t write_vec(int fd, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	ssize_t r;

	do
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == ENOTSOCK) {
		do
			r = writev(fd, iov, n);
		while (r < 0 && errno == EINTR);
	}
	return r;
}

static int out_reserve(struct epsec_framer *f, size_t add)
{
	size_t pending = f->out_len - f->out_off, cap;
	uint8_t *p;

	if (f->out_cap - f->out_len >= add)
		return 0;
	if (f->out_off) {
		memmove(f->out, f->out + f->out_off, pending);
		f->out_off = 0;
		f->out_len = pending;
		if (f->out_cap - f->out_len >= add)
			return 0;
	}
	cap = f->out_cap ? f->out_cap * 2 : 4096;
	if (cap < pending + add)
		cap = pending + add;
	p = realloc(f->out, cap);
	if (!p)
		return -ENOMEM;
	f->out = p;
	f->out_cap = cap;
	return 0;
}

/* Buffer what the kernel did not take: `skip` bytes of header+body went. */
static int out_append(struct epsec_framer *f, const uint8_t hdr[4], const void *msg,
		      size_t len, size_t skip)
{
	size_t total = FRAME_HDR + len;
	int r = out_reserve(f, total - skip);

	if (r)
		return r;
	if (skip < FRAME_HDR) {
		memcpy(f->out + f->out_len, hdr + skip, FRAME_HDR - skip);
		f->out_len += FRAME_HDR - skip;
		skip = FRAME_HDR;
	}
	if (len)
		memcpy(f->out + f->out_len, (const uint8_t *)msg + (skip - FRAME_HDR),
		       total - skip);
	f->out_len += total - skip;
	return 0;
}

int epsec_framer_send(struct epsec_framer *f, const void *msg, size_t len)
{
	size_t pending = f->out_len - f->out_off, done = 0;
	uint8_t hdr[FRAME_HDR];
	int r;

	if (len > f->max)
		return -EMSGSIZE;
	/* An empty buffer always takes one frame (max <= out_high is not assumed). */
	if (pending && pending + FRAME_HDR + len > f->out_high)
		return -ENOBUFS;
	epsec_frame_header(hdr, (uint32_t)len);
	if (!pending) {
		/* Fast path: straight to the kernel, no copy unless it is full. */
		struct iovec iov[2] = { { hdr, FRAME_HDR }, { (void *)msg, len } };
		ssize_t w = write_vec(f->fd, iov, len ? 2 : 1);

		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (w > 0)
			done = (size_t)w;
		if (done == FRAME_HDR + len)
			return 0;
	}
	r = out_append(f, hdr, msg, len, done);
	if (r)
		return r;
	if (pending) {
		r = epsec_framer_flush(f);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	return 0;
}

/* The fd rides on the first byte the kernel takes, so a frame that goes
 * only in part still carries it; the rest is buffered as usual. */
int epsec_framer_send_fd(struct epsec_framer *f, const void *msg, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	uint8_t hdr[FRAME_HDR];
	struct iovec iov[2] = { { hdr, FRAME_HDR }, { (void *)msg, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;
	ssize_t w;

	if (len > f->max)
		return -EMSGSIZE;
	if (f->out_off < f->out_len && epsec_framer_flush(f) < 0)
		return -EAGAIN;
	epsec_frame_header(hdr, (uint32_t)len);
	memset(&ctl, 0, sizeof(ctl));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		w = sendmsg(f->fd, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
	if ((size_t)w == FRAME_HDR + len)
		return 0;
	return out_append(f, hdr, msg, len, (size_t)w);
}

/* A lost fd keeps its place in the queue (-1), so the fds after it still
 * go to their own messages. */
int epsec_framer_recv_fd(struct epsec_framer *f)
{
	int fd;

	if (!f->n_in_fds)
		return -EAGAIN;
	fd = f->in_fds[0];
	memmove(f->in_fds, f->in_fds + 1, --f->n_in_fds * sizeof(int));
	return fd >= 0 ? fd : -ENOENT;
}

int epsec_framer_flush(struct epsec_framer *f)
{
	while (f->out_off < f->out_len) {
		struct iovec v = { f->out + f->out_off, f->out_len - f->out_off };
		ssize_t w = write_vec(f->fd, &v, 1);

		if (w < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
		if (w == 0)
			return -EAGAIN;
		f->out_off += (size_t)w;
	}
	f->out_off = f->out_len = 0;
	if (f->out_cap > FRAME_KEEP) {
		free(f->out);
		f->out = NULL;
		f->out_cap = 0;
	}
	return 0;
}

bool epsec_framer_want_write(const struct epsec_framer *f)
{
	return f->out_off < f->out_len;
}

static void in_consumed(struct epsec_framer *f, size_t used)
{
	f->in_off += used;
	if (f->in_off < f->in_len)
		return;
	f->in_off = f->in_len = 0;
	if (f->in_cap > FRAME_KEEP) {
		free(f->in);
		f->in = NULL;
		f->in_cap = 0;
	}
}

/* 0 and a frame, -EAGAIN when the buffer holds no whole frame, -EMSGSIZE. */
static int take_frame(struct epsec_framer *f, void **msg, size_t *len)
{
	const uint8_t *body;
	size_t blen, used;
	void *copy;
	int r;

	if (!f->in)
		return -EAGAIN;
	r = epsec_frame_parse(f->in + f->in_off, f->in_len - f->in_off, f->max, &body, &blen,
			      &used);
	if (r)
		return r;
	copy = malloc(blen ? blen : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, body, blen);
	in_consumed(f, used);
	*msg = copy;
	*len = blen;
	return 0;
}

/* Room for the rest of the current frame (its size already checked against
 * max by take_frame), or a chunk when the header is not complete yet. */
static int in_reserve(struct epsec_framer *f)
{
	size_t have = f->in_len - f->in_off, want = FRAME_READ_CHUNK, cap;
	uint8_t *p;

	if (have >= FRAME_HDR) {
		const uint8_t *h = f->in + f->in_off;
		size_t total = FRAME_HDR + ((size_t)h[0] << 24 | (size_t)h[1] << 16 |
					    (size_t)h[2] << 8 | h[3]);

		if (total - have > want)
			want = total - have;
	}
	if (f->in_cap - f->in_len >= want)
		return 0;
	if (f->in_off) {
		memmove(f->in, f->in + f->in_off, have);
		f->in_off = 0;
		f->in_len = have;
		if (f->in_cap - f->in_len >= want)
			return 0;
	}
	cap = have + want;
	p = realloc(f->in, cap);
	if (!p)
		return -ENOMEM;
	f->in = p;
	f->in_cap = cap;
	return 0;
}

static int queue_fd(struct epsec_framer *f, int fd)
{
	if (f->n_in_fds == EPSEC_FRAMER_FDS)
		return -EPROTO;
	f->in_fds[f->n_in_fds++] = fd;
	return 0;
}

/* Keep the fds that came with the bytes; more waiting than anyone takes
 * is a peer passing what nobody asked for: -EPROTO. */
static int take_fds(struct epsec_framer *f, struct msghdr *mh)
{
	struct cmsghdr *cm;
	int r = 0;

	bool got = false;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t i, n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			got = true;
			if (queue_fd(f, fd) < 0) {
				close(fd);
				r = -EPROTO;
			}
		}
	}
	/* Truncated with nothing installed: the one fd this peer sends with
	 * a message was lost (out of fds); its place is kept. */
	if ((mh->msg_flags & MSG_CTRUNC) && !got && queue_fd(f, -1) < 0)
		r = -EPROTO;
	return r;
}

/* recvmsg stops after the bytes an fd came with, so a short read with
 * fds does not mean the socket is empty. */
static ssize_t read_in(struct epsec_framer *f, size_t room, bool *got_fds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { f->in + f->in_len, room };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	*got_fds = false;
	if (!f->pass_fds) {
		do
			r = read(f->fd, f->in + f->in_len, room);
		while (r < 0 && errno == EINTR);
		return r;
	}
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do
		r = recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r > 0 && (mh.msg_controllen || (mh.msg_flags & MSG_CTRUNC))) {
		*got_fds = true;
		if (take_fds(f, &mh) < 0) {
			errno = EPROTO;
			return -1;
		}
	}
	return r;
}

static int in_fill(struct epsec_framer *f)
{
	ssize_t r;
	size_t room;
	bool got_fds;
	int e = in_reserve(f);

	if (e)
		return e;
	room = f->in_cap - f->in_len;
	r = read_in(f, room, &got_fds);
	if (r == 0)
		return -ECONNRESET;
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : -errno;
	f->in_len += (size_t)r;
	f->in_drained = (size_t)r < room && !got_fds;
	return 0;
}

/* A read that came back short emptied the fd, so the next one would only
 * say EAGAIN: skip it (one syscall per wake-up saved, which is one per
 * message for a thousand agents with an event or two in flight each). The
 * owner's poll is level-triggered and wakes it again for what comes next. */
int epsec_framer_recv(struct epsec_framer *f, void **msg, size_t *len)
{
	for (;;) {
		int r = take_frame(f, msg, len);

		if (r != -EAGAIN)
			return r;
		if (f->in_drained) {
			f->in_drained = false;
			return -EAGAIN;
		}
		r = in_fill(f);
		if (r)
			return r;
	}
}
