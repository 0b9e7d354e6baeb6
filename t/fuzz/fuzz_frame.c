/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the stream framer (frame.c) as the links use it: a
 * script of writes (raw bytes, hostile headers, whole frames through a
 * sending framer, fds passed with SCM_RIGHTS) and reads over a real
 * socketpair or pipe, so frames arrive in random partial reads. A model of
 * the byte stream checks that every complete frame comes out once, in
 * order, that an oversized header is refused, that a frame's fd is queued
 * by the time the frame is, and that no fd leaks. */
#include "config.h"
#include "frame.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <epsec/transport.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FDS_MAX 256      /* fds one input may send */
#define RAW_FDS 7        /* fds one raw write may carry: more than a read takes (4) */
#define BIG_UNIT 2048u   /* framer sends of up to 255 of these: past FRAME_KEEP */

struct input {
	const uint8_t *p;
	size_t n;
};

struct run {
	bool sock;             /* socketpair, else a pipe */
	int wfd, rfd;
	struct epsec_framer s, r; /* sender on wfd, receiver on rfd */
	/* the model: every byte committed to the stream, in order */
	uint8_t *stream;
	size_t len, cap;
	size_t parsed;         /* stream bytes the receiver returned as frames */
	/* fds sent: their inode and the stream offset of the write carrying them */
	ino_t fd_ino[FDS_MAX];
	size_t fd_pos[FDS_MAX];
	size_t fds_sent, fds_taken;
	bool fds_may_be_lost;  /* a read ran out of fds */
	bool dead;             /* the receiver refused the stream */
	bool eof_sent;
};

static unsigned next(struct input *in)
{
	unsigned b;

	if (!in->n)
		return 0;
	b = in->p[0];
	in->p++;
	in->n--;
	return b;
}

static unsigned next16(struct input *in)
{
	unsigned hi = next(in);

	return hi << 8 | next(in);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void commit(struct run *u, const void *p, size_t n)
{
	if (u->len + n > u->cap) {
		u->cap = (u->len + n) * 2;
		u->stream = realloc(u->stream, u->cap);
		if (!u->stream)
			abort();
	}
	memcpy(u->stream + u->len, p, n);
	u->len += n;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What the model says comes next: 1 a whole frame, 0 not yet, -1 a header
 * over the receiver's ceiling. */
static int model_next(const struct run *u, size_t *body_len)
{
	size_t left = u->len - u->parsed;
	uint32_t n;

	if (left < 4)
		return 0;
	n = be32(u->stream + u->parsed);
	if (n > u->r.max)
		return -1;
	*body_len = n;
	return left - 4 >= n ? 1 : 0;
}

/* The k-th fd of the next write, known by its inode. */
static int new_fd(struct run *u, size_t k)
{
	struct stat st;
	int fd;

	if (u->fds_sent + k >= FDS_MAX)
		return -1;
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	u->fd_ino[u->fds_sent + k] = st.st_ino;
	return fd;
}

static void fd_went(struct run *u, size_t pos)
{
	u->fd_pos[u->fds_sent++] = pos;
}

/* Raw bytes past the sending framer, with 0-7 fds: only when it has
 * nothing pending, or they would land inside its frame. Past the 4 a read
 * takes, the kernel closes the rest (MSG_CTRUNC). */
static void op_raw(struct run *u, const uint8_t *p, size_t n, unsigned nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(RAW_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)p, n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[RAW_FDS];
	unsigned i;
	ssize_t w;

	if (epsec_framer_want_write(&u->s) && epsec_framer_flush(&u->s) != 0)
		return;
	if (!n)
		return;
	if (!u->sock) {
		w = write(u->wfd, p, n);
		if (w > 0)
			commit(u, p, (size_t)w);
		return;
	}
	for (i = 0; i < nfds && i < RAW_FDS; i++)
		if ((fds[i] = new_fd(u, i)) < 0)
			break;
	nfds = i;
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, nfds * sizeof(int));
	}
	w = sendmsg(u->wfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN)
		abort();
	if (w > 0 && nfds > 4)
		u->fds_may_be_lost = true;
	for (i = 0; i < nfds; i++) {
		if (w > 0)
			fd_went(u, u->len);
		close(fds[i]);
	}
	if (w > 0)
		commit(u, p, (size_t)w);
}

/* A header alone, of a length near the interesting ones. */
static void op_header(struct run *u, struct input *in)
{
	unsigned sel = next(in), v = next16(in);
	uint32_t n;
	uint8_t hdr[4];

	switch (sel % 5) {
	case 0: n = (uint32_t)u->r.max; break;
	case 1: n = (uint32_t)u->r.max + 1; break;
	case 2: n = v % 512; break;
	case 3: n = UINT32_MAX - (v % 4); break;
	default: n = (uint32_t)v << 8 | next(in); break;
	}
	epsec_frame_header(hdr, n);
	op_raw(u, hdr, sizeof(hdr), 0);
}

/* A body told apart from the others by its seed byte and its number at
 * both ends (memset: a loop here would be most of the run's time, every
 * comparison traced for libFuzzer). */
static uint8_t *body_of(size_t len, unsigned seed)
{
	static uint64_t serial;
	uint8_t *b = malloc(len ? len : 1);

	if (!b)
		abort();
	memset(b, (int)seed, len);
	serial++;
	if (len >= 2 * sizeof(serial)) {
		memcpy(b, &serial, sizeof(serial));
		memcpy(b + len - sizeof(serial), &serial, sizeof(serial));
	}
	return b;
}

/* A frame through the sending framer, with an fd or not. */
static void op_send(struct run *u, struct input *in, bool big, bool with_fd)
{
	size_t len = big ? (size_t)next(in) * BIG_UNIT + next(in) : next16(in) % 2048;
	size_t pending = u->s.out_len - u->s.out_off;
	uint8_t *body = body_of(len, next(in)), hdr[4];
	int fd = -1, r;

	if (with_fd && u->sock && (fd = new_fd(u, 0)) >= 0)
		r = epsec_framer_send_fd(&u->s, body, len, fd);
	else
		r = epsec_framer_send(&u->s, body, len);
	if (len > u->s.max) {
		if (r != -EMSGSIZE)
			abort();
	} else if (r == 0) {
		if (fd >= 0)
			fd_went(u, u->len);
		epsec_frame_header(hdr, (uint32_t)len);
		commit(u, hdr, 4);
		commit(u, body, len);
	} else if (!(r == -ENOBUFS && pending && fd < 0) && !(r == -EAGAIN && fd >= 0)) {
		abort();
	}
	if (fd >= 0)
		close(fd);
	free(body);
}

/* Every fd of a frame the receiver returned is queued, or taken, by then. */
static void check_fds_arrived(const struct run *u)
{
	size_t due = 0;

	if (!u->sock || !u->r.pass_fds || u->fds_may_be_lost)
		return;
	while (due < u->fds_sent && u->fd_pos[due] < u->parsed)
		due++;
	if (u->fds_taken + u->r.n_in_fds < due)
		abort();
}

/* One receive, checked against the model. false once the link is dead. */
static bool recv_one(struct run *u, int *result)
{
	size_t want = 0, len;
	void *msg = NULL;
	int m = model_next(u, &want), r;

	r = epsec_framer_recv(&u->r, &msg, &len);
	*result = r;
	switch (r) {
	case 0:
		if (m != 1 || len != want || memcmp(msg, u->stream + u->parsed + 4, len))
			abort();
		u->parsed += 4 + len;
		free(msg);
		check_fds_arrived(u);
		return true;
	case -EAGAIN:
		return true;
	case -EMSGSIZE:
		if (m != -1)
			abort();
		break;
	case -EPROTO:
		if (!u->r.pass_fds || u->fds_sent - u->fds_taken <= EPSEC_FRAMER_FDS)
			abort();
		break;
	case -ECONNRESET:
		/* Everything whole was returned, and all bytes were read. */
		if (!u->eof_sent || m != 0 || u->r.in_len - u->r.in_off != u->len - u->parsed)
			abort();
		break;
	default:
		abort();
	}
	u->dead = true;
	return false;
}

static void recv_fd_one(struct run *u)
{
	int fd = epsec_framer_recv_fd(&u->r);
	struct stat st;

	if (fd == -EAGAIN)
		return;
	if (fd == -ENOENT) {
		if (!u->fds_may_be_lost)
			abort();
		u->fds_taken++;
		return;
	}
	if (fd < 0 || fstat(fd, &st) < 0 || !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
		abort();
	if (!u->fds_may_be_lost) {
		if (u->fds_taken >= u->fds_sent || u->fd_ino[u->fds_taken] != st.st_ino)
			abort();
	} else {
		/* after a loss: later than the last one taken, in order */
		while (u->fds_taken < u->fds_sent && u->fd_ino[u->fds_taken] != st.st_ino)
			u->fds_taken++;
		if (u->fds_taken == u->fds_sent)
			abort();
	}
	u->fds_taken++;
	close(fd);
}

/* A read with no fd number free: the kernel drops what came along and
 * says MSG_CTRUNC. */
static void op_recv_tight(struct run *u)
{
	struct rlimit old, tight;
	int probe, r;

	if (getrlimit(RLIMIT_NOFILE, &old) < 0 || (probe = dup(0)) < 0)
		abort();
	close(probe);
	tight = old;
	tight.rlim_cur = (rlim_t)probe;
	if (setrlimit(RLIMIT_NOFILE, &tight) < 0)
		abort();
	u->fds_may_be_lost = true;
	recv_one(u, &r);
	if (setrlimit(RLIMIT_NOFILE, &old) < 0)
		abort();
}

static void setup(struct run *u, unsigned mode)
{
	static const size_t maxes[] = { 0, 64, 1000, 70000 };
	size_t max = maxes[(mode >> 1) & 3];
	int fds[2];

	memset(u, 0, sizeof(*u));
	u->sock = !(mode & 1);
	if (u->sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)
		    : pipe2(fds, O_NONBLOCK | O_CLOEXEC))
		abort();
	u->rfd = u->sock ? fds[1] : fds[0];
	u->wfd = u->sock ? fds[0] : fds[1];
	if (mode & 8) {
		int small = 4096;

		if (u->sock)
			setsockopt(u->wfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		else
			fcntl(u->wfd, F_SETPIPE_SZ, small);
	}
	epsec_framer_init(&u->s, u->wfd, max);
	epsec_framer_init(&u->r, u->rfd, max);
	if (mode & 16)
		u->s.out_high = 1024;
	u->s.pass_fds = u->sock;
	u->r.pass_fds = u->sock && !(mode & 32);
}

static void script(struct run *u, struct input *in)
{
	int r;

	while (in->n && !u->dead) {
		unsigned op = next(in), n;

		switch (op % 9) {
		case 0:
		case 1:
			n = next(in);
			if (n > in->n)
				n = (unsigned)in->n;
			op_raw(u, in->p, n, (op >> 4) & 7);
			in->p += n;
			in->n -= n;
			break;
		case 2: op_header(u, in); break;
		case 3: op_send(u, in, false, false); break;
		case 4: op_send(u, in, false, u->sock); break;
		/* big ones are slow (fresh pages): one op value in 36 */
		case 5: op_send(u, in, (op >> 4) >= 12, false); break;
		case 6: epsec_framer_flush(&u->s); break;
		case 7:
			for (n = (op >> 4) + 1; n && recv_one(u, &r); n--)
				;
			break;
		default:
			if ((op >> 4) & 1 && u->sock && u->r.pass_fds)
				op_recv_tight(u);
			else
				recv_fd_one(u);
			break;
		}
	}
}

/* Bytes still on their way: a round that moves none is idle. */
static size_t in_flight(const struct run *u)
{
	return (u->s.out_len - u->s.out_off) + (u->len - u->parsed) -
	       (u->r.in_len - u->r.in_off);
}

/* Whatever was sent must come out, then EOF; a reader that takes each
 * frame's fds as the links do. */
static void drain(struct run *u)
{
	unsigned idle = 0;
	int r, f;

	while (!u->dead && epsec_framer_want_write(&u->s)) {
		size_t was = in_flight(u), parsed = u->parsed;

		f = epsec_framer_flush(&u->s);
		if (f != 0 && f != -EAGAIN)
			abort();
		recv_one(u, &r);
		while (u->r.n_in_fds)
			recv_fd_one(u);
		idle = in_flight(u) == was && u->parsed == parsed ? idle + 1 : 0;
		if (idle > 3)
			abort();
	}
	if (u->dead)
		return;
	close(u->wfd);
	u->wfd = -1;
	u->eof_sent = true;
	/* -EAGAIN may come after every short read (skb boundaries): what
	 * must not happen is a turn that moves nothing, twice over */
	for (idle = 0; !u->dead;) {
		size_t was = in_flight(u), parsed = u->parsed;

		recv_one(u, &r);
		while (u->r.n_in_fds)
			recv_fd_one(u);
		idle = in_flight(u) == was && u->parsed == parsed ? idle + 1 : 0;
		if (idle > 3)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	int before = count_fds();
	struct run u;

	setup(&u, next(&in));
	script(&u, &in);
	drain(&u);
	epsec_framer_free(&u.s);
	epsec_framer_free(&u.r);
	if (u.wfd >= 0)
		close(u.wfd);
	close(u.rfd);
	free(u.stream);
	if (count_fds() != before)
		abort();
	return 0;
}
