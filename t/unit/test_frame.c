/* SPDX-License-Identifier: MIT */
/* Unit tests for libcore/frame.c: the pure parser and the non-blocking
 * framer over real socketpairs, fd passing (SCM_RIGHTS) included; each fd
 * test counts /proc/self/fd before and after, so a leaked fd fails it. */
#include "config.h"
#include "frame.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <epsec/transport.h>

struct pair {
	int fd[2];
	struct epsec_framer f[2];
};

static int pair_setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));

	if (!p || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd) < 0)
		return -1;
	epsec_framer_init(&p->f[0], p->fd[0], 0);
	epsec_framer_init(&p->f[1], p->fd[1], 0);
	*state = p;
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;

	epsec_framer_free(&p->f[0]);
	epsec_framer_free(&p->f[1]);
	if (p->fd[0] >= 0)
		close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	free(p);
	return 0;
}

/* A buffer of n frames; frame i has length i*37 % 301 filled with (i+k). */
static uint8_t *make_frames(int n, size_t *total)
{
	size_t len = 0, off = 0;
	uint8_t *buf;
	int i;

	for (i = 0; i < n; i++)
		len += 4 + (size_t)(i * 37 % 301);
	buf = malloc(len);
	assert_non_null(buf);
	for (i = 0; i < n; i++) {
		size_t fl = (size_t)(i * 37 % 301), k;

		epsec_frame_header(buf + off, (uint32_t)fl);
		for (k = 0; k < fl; k++)
			buf[off + 4 + k] = (uint8_t)(i + k);
		off += 4 + fl;
	}
	*total = len;
	return buf;
}

static void check_frame(int i, const uint8_t *body, size_t len)
{
	size_t k;

	assert_int_equal(len, (size_t)(i * 37 % 301));
	for (k = 0; k < len; k++)
		assert_int_equal(body[k], (uint8_t)(i + k));
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		assert_true(w > 0);
		p += w;
		len -= (size_t)w;
	}
}

static void test_header_big_endian(void **state)
{
	uint8_t h[4];

	epsec_frame_header(h, 0x01020304u);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[1], 2);
	assert_int_equal(h[2], 3);
	assert_int_equal(h[3], 4);
}

static void test_parse_many(void **state)
{
	size_t total, off = 0, blen, used;
	const uint8_t *body;
	uint8_t *buf = make_frames(200, &total);
	int i;

	for (i = 0; i < 200; i++) {
		assert_int_equal(epsec_frame_parse(buf + off, total - off, EPSEC_FRAME_MAX, &body,
						   &blen, &used), 0);
		check_frame(i, body, blen);
		assert_int_equal(used, 4 + blen);
		off += used;
	}
	assert_int_equal(off, total);
	assert_int_equal(epsec_frame_parse(buf + off, 0, EPSEC_FRAME_MAX, &body, &blen, &used),
			 -EAGAIN);
	free(buf);
}

static void test_parse_truncated(void **state)
{
	uint8_t buf[4 + 10];
	const uint8_t *body;
	size_t blen, used, n;

	epsec_frame_header(buf, 10);
	memset(buf + 4, 'x', 10);
	for (n = 0; n < sizeof(buf); n++)
		assert_int_equal(epsec_frame_parse(buf, n, 100, &body, &blen, &used), -EAGAIN);
	assert_int_equal(epsec_frame_parse(buf, sizeof(buf), 100, &body, &blen, &used), 0);
	assert_int_equal(blen, 10);
}

static void test_parse_oversized(void **state)
{
	uint8_t buf[4];
	const uint8_t *body;
	size_t blen, used;

	epsec_frame_header(buf, 101);
	assert_int_equal(epsec_frame_parse(buf, 4, 100, &body, &blen, &used), -EMSGSIZE);
	epsec_frame_header(buf, 100);
	assert_int_equal(epsec_frame_parse(buf, 4, 100, &body, &blen, &used), -EAGAIN);
	epsec_frame_header(buf, 0xffffffffu);
	assert_int_equal(epsec_frame_parse(buf, 4, EPSEC_FRAME_MAX, &body, &blen, &used),
			 -EMSGSIZE);
}

static void test_parse_garbage(void **state)
{
	uint8_t buf[512];
	const uint8_t *body;
	size_t blen, used;
	int i, r;

	srand(1234);
	for (i = 0; i < 20000; i++) {
		size_t n = (size_t)rand() % sizeof(buf), k;

		for (k = 0; k < n; k++)
			buf[k] = (uint8_t)rand();
		/* Small headers now and then so whole frames get parsed too. */
		if (n >= 4 && i % 3 == 0)
			buf[0] = buf[1] = buf[2] = 0;
		r = epsec_frame_parse(buf, n, 300, &body, &blen, &used);
		assert_true(r == 0 || r == -EAGAIN || r == -EMSGSIZE);
		if (r == 0) {
			assert_true(blen <= 300);
			assert_true(used == blen + 4 && used <= n);
			assert_ptr_equal(body, buf + 4);
		}
	}
}

static void test_round_trip(void **state)
{
	struct pair *p = *state;
	void *msg;
	size_t len;

	assert_int_equal(epsec_framer_send(&p->f[0], "hello", 5), 0);
	assert_false(epsec_framer_want_write(&p->f[0]));
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(msg, "hello", 5);
	free(msg);
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), -EAGAIN);
	/* and back */
	assert_int_equal(epsec_framer_send(&p->f[1], "world!", 6), 0);
	assert_int_equal(epsec_framer_recv(&p->f[0], &msg, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(msg, "world!", 6);
	free(msg);
}

static void test_zero_length(void **state)
{
	struct pair *p = *state;
	void *msg = NULL;
	size_t len = 99;

	assert_int_equal(epsec_framer_send(&p->f[0], NULL, 0), 0);
	assert_int_equal(epsec_framer_send(&p->f[0], "x", 1), 0);
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), 0);
	assert_non_null(msg);
	assert_int_equal(len, 0);
	free(msg);
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), 0);
	assert_int_equal(len, 1);
	free(msg);
}

static void test_many_in_one_write(void **state)
{
	struct pair *p = *state;
	size_t total, len;
	uint8_t *buf = make_frames(500, &total);
	void *msg;
	int i;

	write_all(p->fd[0], buf, total);
	for (i = 0; i < 500; i++) {
		assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), 0);
		check_frame(i, msg, len);
		free(msg);
	}
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), -EAGAIN);
	free(buf);
}

/* Each split point of a run of frames: whatever arrived so far yields
 * exactly the whole frames in it, the rest after the second write. */
static void test_split_every_byte(void **state)
{
	size_t total, split, len;
	uint8_t *buf = make_frames(6, &total);

	for (split = 0; split <= total; split++) {
		int fd[2], got = 0;
		struct epsec_framer f;
		void *msg;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
		epsec_framer_init(&f, fd[1], 0);
		if (split)
			write_all(fd[0], buf, split);
		while (epsec_framer_recv(&f, &msg, &len) == 0) {
			check_frame(got++, msg, len);
			free(msg);
		}
		if (split < total)
			write_all(fd[0], buf + split, total - split);
		close(fd[0]);
		while (epsec_framer_recv(&f, &msg, &len) == 0) {
			check_frame(got++, msg, len);
			free(msg);
		}
		assert_int_equal(got, 6);
		assert_int_equal(epsec_framer_recv(&f, &msg, &len), -ECONNRESET);
		epsec_framer_free(&f);
		close(fd[1]);
	}
	free(buf);
}

static void test_truncated_then_eof(void **state)
{
	struct pair *p = *state;
	uint8_t buf[4 + 3];
	void *msg;
	size_t len;

	epsec_frame_header(buf, 50);
	memcpy(buf + 4, "abc", 3);
	write_all(p->fd[0], buf, sizeof(buf));
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), -EAGAIN);
	close(p->fd[0]);
	p->fd[0] = -1;
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), -ECONNRESET);
}

static void test_oversized_refused_before_alloc(void **state)
{
	struct pair *p = *state;
	uint8_t h[4];
	void *msg;
	size_t len;

	epsec_frame_header(h, EPSEC_FRAME_MAX + 1);
	write_all(p->fd[0], h, 4);
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), -EMSGSIZE);
	/* only the read chunk was ever allocated, not the 4 MiB announced */
	assert_true(p->f[1].in_cap < EPSEC_FRAME_MAX);

	{
		static uint8_t body[1001];

		epsec_framer_free(&p->f[0]);
		epsec_framer_init(&p->f[0], p->fd[0], 1000);
		assert_int_equal(epsec_framer_send(&p->f[0], body, 1001), -EMSGSIZE);
		assert_false(epsec_framer_want_write(&p->f[0]));
	}
}

static void test_announced_max_accepted(void **state)
{
	struct pair *p = *state;
	uint8_t *big = malloc(1000);
	void *msg;
	size_t len;

	assert_non_null(big);
	memset(big, 7, 1000);
	epsec_framer_free(&p->f[0]);
	epsec_framer_free(&p->f[1]);
	epsec_framer_init(&p->f[0], p->fd[0], 1000);
	epsec_framer_init(&p->f[1], p->fd[1], 1000);
	assert_int_equal(epsec_framer_send(&p->f[0], big, 1000), 0);
	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), 0);
	assert_int_equal(len, 1000);
	assert_memory_equal(msg, big, 1000);
	free(msg);
	free(big);
}

/* 3 MiB does not fit in a socket buffer: send buffers the rest, and
 * alternating flush/recv moves it over intact. */
static void test_large_frame_buffered(void **state)
{
	struct pair *p = *state;
	size_t n = 3u << 20, len = 0, i;
	uint8_t *big = malloc(n);
	void *msg = NULL;
	int r = -EAGAIN, spins = 0;

	assert_non_null(big);
	for (i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(epsec_framer_send(&p->f[0], big, n), 0);
	assert_true(epsec_framer_want_write(&p->f[0]));
	while (r == -EAGAIN && spins++ < 100000) {
		int fr = epsec_framer_flush(&p->f[0]);

		assert_true(fr == 0 || fr == -EAGAIN);
		r = epsec_framer_recv(&p->f[1], &msg, &len);
	}
	assert_int_equal(r, 0);
	assert_int_equal(len, n);
	assert_memory_equal(msg, big, n);
	assert_false(epsec_framer_want_write(&p->f[0]));
	free(msg);
	free(big);
}

static void test_high_water(void **state)
{
	struct pair *p = *state;
	size_t n = 1u << 20;
	uint8_t *blk = calloc(1, n);
	int i, r = 0;

	assert_non_null(blk);
	for (i = 0; i < 64 && r == 0; i++)
		r = epsec_framer_send(&p->f[0], blk, n);
	assert_int_equal(r, -ENOBUFS);
	assert_true(i > 2);
	assert_true(p->f[0].out_len - p->f[0].out_off <= p->f[0].out_high);
	assert_true(epsec_framer_want_write(&p->f[0]));
	free(blk);
}

static void test_send_to_closed_peer(void **state)
{
	struct pair *p = *state;
	int r;

	close(p->fd[1]);
	p->fd[1] = -1;
	/* MSG_NOSIGNAL: an error, not a SIGPIPE that kills the test */
	r = epsec_framer_send(&p->f[0], "x", 1);
	assert_int_equal(r, -EPIPE);
}

/* ------------------------------------------------------------ fd passing */

/* Open fds of this process: each fd test ends with as many as it began. */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* A pair whose framers pass fds, made inside the test so the count
 * taken before it covers everything the test opens. */
static void fdpair_open(struct pair *p, bool pass0, bool pass1)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd),
			 0);
	epsec_framer_init(&p->f[0], p->fd[0], 0);
	epsec_framer_init(&p->f[1], p->fd[1], 0);
	p->f[0].pass_fds = pass0;
	p->f[1].pass_fds = pass1;
}

static void fdpair_close(struct pair *p)
{
	epsec_framer_free(&p->f[0]);
	epsec_framer_free(&p->f[1]);
	close(p->fd[0]);
	close(p->fd[1]);
}

/* An unlinked temp file: its inode names it. */
static int temp_file(ino_t *ino)
{
	char path[] = "/tmp/epsec-test-frame.XXXXXX";
	int fd = mkstemp(path);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(fstat(fd, &st), 0);
	*ino = st.st_ino;
	return fd;
}

static ino_t fd_ino(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* As a level-triggered loop reads: -EAGAIN after a short read is answered
 * by asking again only when poll says the socket is readable. */
static void expect_frame(struct epsec_framer *f, const char *want)
{
	struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
	void *msg = NULL;
	size_t len = 0;
	int r = epsec_framer_recv(f, &msg, &len);

	if (r == -EAGAIN && poll(&pfd, 1, 0) == 1)
		r = epsec_framer_recv(f, &msg, &len);
	if (r)
		fail_msg("recv: %s, expected frame \"%s\"", strerror(-r), want);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(msg, want, len);
	free(msg);
}

/* The next fd to take is a new fd of the file with inode ino. */
static void take_fd_of(struct epsec_framer *f, ino_t ino)
{
	int got = epsec_framer_recv_fd(f);

	assert_true(got >= 0);
	assert_true(fd_ino(got) == ino);
	close(got);
}

/* The fd arrives as a new fd of the same file, close-on-exec; the sender
 * keeps its own. */
static void test_fd_round_trip(void **state)
{
	struct pair p;
	int before = fd_count(), file, got;
	ino_t ino;

	fdpair_open(&p, true, true);
	file = temp_file(&ino);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "event", 5, file), 0);
	assert_false(epsec_framer_want_write(&p.f[0]));
	assert_true(fcntl(file, F_GETFD) >= 0);
	expect_frame(&p.f[1], "event");
	got = epsec_framer_recv_fd(&p.f[1]);
	assert_true(got >= 0);
	assert_int_not_equal(got, file);
	assert_true(fd_ino(got) == ino);
	assert_true(fcntl(got, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	/* Frames without fds after it: still none to take. */
	assert_int_equal(epsec_framer_send(&p.f[0], "plain", 5), 0);
	expect_frame(&p.f[1], "plain");
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	close(got);
	close(file);
	fdpair_close(&p);
	assert_int_equal(fd_count(), before);
}

#define NFILES 5
#define NFRAMES 15

/* Frame i carries file i/3 when i % 3 != 1. */
static bool frame_has_fd(int i)
{
	return i % 3 != 1;
}

static void send_interleaved(struct pair *p, const int *files, int i)
{
	char body[32];

	snprintf(body, sizeof(body), "frame %d", i);
	if (frame_has_fd(i))
		assert_int_equal(epsec_framer_send_fd(&p->f[0], body, strlen(body), files[i / 3]),
				 0);
	else
		assert_int_equal(epsec_framer_send(&p->f[0], body, strlen(body)), 0);
}

/* What the link layer relies on: taking an fd after each frame that came
 * with one gives exactly that frame's fd, however the bytes were batched. */
static void recv_interleaved(struct pair *p, const ino_t *inos, int i)
{
	char body[32];

	snprintf(body, sizeof(body), "frame %d", i);
	expect_frame(&p->f[1], body);
	if (frame_has_fd(i)) {
		int got = epsec_framer_recv_fd(&p->f[1]);

		assert_true(got >= 0);
		if (fd_ino(got) != inos[i / 3])
			fail_msg("frame %d came with the wrong file's fd", i);
		close(got);
	}
}

static void test_fd_interleaved_order(void **state)
{
	struct pair p;
	int before = fd_count(), files[NFILES], i;
	ino_t inos[NFILES];
	void *msg;
	size_t len;

	for (i = 0; i < NFILES; i++)
		files[i] = temp_file(&inos[i]);
	fdpair_open(&p, true, true);
	/* All sent before any is read: recvmsg sees many frames at once. */
	for (i = 0; i < NFRAMES; i++)
		send_interleaved(&p, files, i);
	for (i = 0; i < NFRAMES; i++)
		recv_interleaved(&p, inos, i);
	assert_int_equal(epsec_framer_recv(&p.f[1], &msg, &len), -EAGAIN);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	/* One at a time. */
	for (i = 0; i < NFRAMES; i++) {
		send_interleaved(&p, files, i);
		recv_interleaved(&p, inos, i);
	}
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	/* Taken late, after several frames: still oldest first. */
	for (i = 0; i < NFILES; i++)
		assert_int_equal(epsec_framer_send_fd(&p.f[0], "late", 4, files[i]), 0);
	for (i = 0; i < NFILES; i++)
		expect_frame(&p.f[1], "late");
	for (i = 0; i < NFILES; i++) {
		int got = epsec_framer_recv_fd(&p.f[1]);

		assert_true(got >= 0);
		if (fd_ino(got) != inos[i])
			fail_msg("fd %d of %d taken late is not the %dth passed", i, NFILES, i);
		close(got);
	}
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	fdpair_close(&p);
	for (i = 0; i < NFILES; i++)
		close(files[i]);
	assert_int_equal(fd_count(), before);
}

/* More than EPSEC_FRAMER_FDS passed and none taken: the reader fails with
 * -EPROTO, and the fds it kept are closed with the framer. Taken as they
 * come, the same number is fine. */
static void test_fd_unclaimed_overflow(void **state)
{
	struct pair p;
	int before = fd_count(), file, i, r, got = 0;
	ino_t ino;
	void *msg;
	size_t len;

	file = temp_file(&ino);
	fdpair_open(&p, true, true);
	for (i = 0; i <= EPSEC_FRAMER_FDS; i++)
		assert_int_equal(epsec_framer_send_fd(&p.f[0], "x", 1, file), 0);
	while ((r = epsec_framer_recv(&p.f[1], &msg, &len)) == 0) {
		got++;
		free(msg);
	}
	assert_int_equal(r, -EPROTO);
	assert_int_equal(got, EPSEC_FRAMER_FDS);
	assert_int_equal(p.f[1].n_in_fds, EPSEC_FRAMER_FDS);
	fdpair_close(&p);
	assert_int_equal(fd_count(), before + 1);

	fdpair_open(&p, true, true);
	for (i = 0; i < 4 * EPSEC_FRAMER_FDS; i++)
		assert_int_equal(epsec_framer_send_fd(&p.f[0], "x", 1, file), 0);
	for (i = 0; i < 4 * EPSEC_FRAMER_FDS; i++) {
		int fd;

		expect_frame(&p.f[1], "x");
		fd = epsec_framer_recv_fd(&p.f[1]);
		assert_true(fd >= 0);
		close(fd);
	}
	assert_int_equal(epsec_framer_recv(&p.f[1], &msg, &len), -EAGAIN);
	fdpair_close(&p);
	close(file);
	assert_int_equal(fd_count(), before);
}

static uint8_t big_byte(size_t i)
{
	return (uint8_t)(i * 131 + 7);
}

/* Fill the socket with one big frame: the framer holds the rest. */
static void fill_socket(struct pair *p, size_t n)
{
	uint8_t *big = malloc(n);

	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = big_byte(i);
	assert_int_equal(epsec_framer_send(&p->f[0], big, n), 0);
	assert_true(epsec_framer_want_write(&p->f[0]));
	free(big);
}

/* Move everything pending across: one frame of n bytes, intact (a frame
 * sent in the middle of it would show). */
static void drain_big(struct pair *p, size_t n)
{
	uint8_t *msg = NULL;
	size_t len = 0, i;
	int r = -EAGAIN, spins = 0;

	while (r == -EAGAIN && spins++ < 100000) {
		int fr = epsec_framer_flush(&p->f[0]);

		assert_true(fr == 0 || fr == -EAGAIN);
		r = epsec_framer_recv(&p->f[1], (void **)&msg, &len);
	}
	assert_int_equal(r, 0);
	assert_int_equal(len, n);
	for (i = 0; i < n && msg[i] == big_byte(i); i++)
		;
	if (i < n)
		fail_msg("byte %zu of the big frame is wrong", i);
	free(msg);
	assert_int_equal(epsec_framer_flush(&p->f[0]), 0);
}

/* Read what the socket holds now, into the framer (no whole frame yet). */
static void read_some(struct pair *p)
{
	void *msg;
	size_t len;

	assert_int_equal(epsec_framer_recv(&p->f[1], &msg, &len), -EAGAIN);
	assert_true(p->f[1].in_len > 0);
}

/* send_fd starts only on an empty output buffer: pending bytes it cannot
 * flush make it -EAGAIN, with nothing sent and no fd passed, even when
 * the socket has room again (the fd frame must not overtake them). */
static void test_fd_send_pending(void **state)
{
	struct pair p;
	int before = fd_count(), file;
	size_t n = 2u << 20;
	ino_t ino;
	void *msg;
	size_t len;

	file = temp_file(&ino);
	fdpair_open(&p, true, true);
	fill_socket(&p, n);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "late", 4, file), -EAGAIN);
	read_some(&p);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "late", 4, file), -EAGAIN);
	drain_big(&p, n);
	assert_int_equal(epsec_framer_recv(&p.f[1], &msg, &len), -EAGAIN);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	/* Emptied, it goes. */
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "late", 4, file), 0);
	expect_frame(&p.f[1], "late");
	take_fd_of(&p.f[1], ino);
	fdpair_close(&p);
	close(file);
	assert_int_equal(fd_count(), before);
}

/* Pending output that the socket now takes whole is flushed first, then
 * the frame with the fd goes after it, in order. */
static void test_fd_send_after_flush(void **state)
{
	struct pair p;
	int before = fd_count(), file, sent = 0, i;
	char body[32];
	ino_t ino;

	file = temp_file(&ino);
	fdpair_open(&p, true, true);
	while (!epsec_framer_want_write(&p.f[0])) {
		snprintf(body, sizeof(body), "small %d", sent++);
		assert_int_equal(epsec_framer_send(&p.f[0], body, strlen(body)), 0);
	}
	for (i = 0; i < sent; i++) {
		snprintf(body, sizeof(body), "small %d", i);
		/* The tail is still in f[0]'s buffer: send_fd flushes it. */
		if (i == sent / 2)
			assert_int_equal(epsec_framer_send_fd(&p.f[0], "late", 4, file), 0);
		expect_frame(&p.f[1], body);
	}
	assert_false(epsec_framer_want_write(&p.f[0]));
	expect_frame(&p.f[1], "late");
	take_fd_of(&p.f[1], ino);
	fdpair_close(&p);
	close(file);
	assert_int_equal(fd_count(), before);
}

/* A frame bigger than the socket takes goes in part; the fd rides on the
 * part that went, and the frame after it comes with its own fd. */
static void test_fd_partial_frame(void **state)
{
	struct pair p;
	int before = fd_count(), a, b;
	size_t n = 2u << 20;
	uint8_t *big = malloc(n);
	ino_t ino_a, ino_b;

	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = big_byte(i);
	a = temp_file(&ino_a);
	b = temp_file(&ino_b);
	fdpair_open(&p, true, true);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], big, n, a), 0);
	assert_true(epsec_framer_want_write(&p.f[0]));
	drain_big(&p, n);
	take_fd_of(&p.f[1], ino_a);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "b", 1, b), 0);
	expect_frame(&p.f[1], "b");
	take_fd_of(&p.f[1], ino_b);
	fdpair_close(&p);
	close(a);
	close(b);
	free(big);
	assert_int_equal(fd_count(), before);
}

/* A reader that does not pass fds gets the frames; the kernel closes the
 * fds that came with them (seen through a pipe: once its last write end
 * is closed, the read end says EOF). */
static void test_fd_reader_without_pass(void **state)
{
	struct pair p;
	int before = fd_count(), pipefd[2];
	char c;

	assert_int_equal(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC), 0);
	fdpair_open(&p, true, false);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "one", 3, pipefd[1]), 0);
	assert_int_equal(epsec_framer_send(&p.f[0], "two", 3), 0);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "three", 5, pipefd[1]), 0);
	close(pipefd[1]);
	/* In flight, the write end is still open. */
	assert_int_equal(read(pipefd[0], &c, 1), -1);
	assert_int_equal(errno, EAGAIN);
	expect_frame(&p.f[1], "one");
	expect_frame(&p.f[1], "two");
	expect_frame(&p.f[1], "three");
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	assert_int_equal(read(pipefd[0], &c, 1), 0);
	fdpair_close(&p);
	close(pipefd[0]);
	assert_int_equal(fd_count(), before);
}

/* The same through a reader that passes fds: the write end lives on in
 * the fd it took until that is closed. */
static void test_fd_pipe_kept_until_closed(void **state)
{
	struct pair p;
	int before = fd_count(), pipefd[2], got;
	char c;

	assert_int_equal(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC), 0);
	fdpair_open(&p, true, true);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "one", 3, pipefd[1]), 0);
	close(pipefd[1]);
	expect_frame(&p.f[1], "one");
	got = epsec_framer_recv_fd(&p.f[1]);
	assert_true(got >= 0);
	assert_int_equal(write(got, "z", 1), 1);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	close(got);
	assert_int_equal(read(pipefd[0], &c, 1), 0);
	fdpair_close(&p);
	close(pipefd[0]);
	assert_int_equal(fd_count(), before);
}

/* Lower RLIMIT_NOFILE to `lowest` (the lowest free fd): no fd can be
 * made now. Valgrind emulates the limit for the program's own calls but
 * not for what the kernel installs from SCM_RIGHTS: skipped there. */
static void no_fds_left(int lowest, struct rlimit *old)
{
	const char *preload = getenv("LD_PRELOAD");
	struct rlimit low;

	if (preload && strstr(preload, "vgpreload"))
		skip();
	assert_int_equal(getrlimit(RLIMIT_NOFILE, old), 0);
	low = *old;
	low.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
}

/* Out of fds: the kernel drops the passed fd (MSG_CTRUNC); the frame
 * still comes, and recv_fd says -ENOENT once for it. */
static void test_fd_lost_out_of_fds(void **state)
{
	struct pair p;
	struct rlimit old;
	int before = fd_count(), file, lowest;
	ino_t ino;

	file = temp_file(&ino);
	fdpair_open(&p, true, true);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "lost", 4, file), 0);
	assert_int_equal(epsec_framer_send_fd(&p.f[0], "kept", 4, file), 0);
	/* No free fd below the limit: every fd below the lowest free one is open. */
	lowest = dup(0);
	assert_true(lowest >= 0);
	close(lowest);
	no_fds_left(lowest, &old);
	expect_frame(&p.f[1], "lost");
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -ENOENT);
	expect_frame(&p.f[1], "kept");
	take_fd_of(&p.f[1], ino);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	fdpair_close(&p);
	close(file);
	assert_int_equal(fd_count(), before);
}

/* Bytes straight onto the socket, with `fd` (or none: -1) on them, so a
 * frame can arrive in pieces the way a partial send leaves it. */
static void raw_send(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
}

/* A's fd lost while only A's first bytes were in; then the rest of A and
 * B with B's fd come in one read. A must get "lost", not B's file, and B
 * its own. */
static void test_fd_lost_keeps_order(void **state)
{
	static const uint8_t a[] = { 0, 0, 0, 8, 'A', 'A', 'A', 'A', 'A', 'A', 'A', 'A' };
	static const uint8_t b[] = { 0, 0, 0, 1, 'B' };
	struct pair p;
	struct rlimit old;
	int before = fd_count(), fa, fb, lowest;
	ino_t ino_a, ino_b;
	void *msg;
	size_t len;

	fa = temp_file(&ino_a);
	fb = temp_file(&ino_b);
	fdpair_open(&p, false, true);
	raw_send(p.fd[0], a, 6, fa);
	lowest = dup(0);
	assert_true(lowest >= 0);
	close(lowest);
	no_fds_left(lowest, &old);
	assert_int_equal(epsec_framer_recv(&p.f[1], &msg, &len), -EAGAIN);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	raw_send(p.fd[0], a + 6, sizeof(a) - 6, -1);
	raw_send(p.fd[0], b, sizeof(b), fb);
	expect_frame(&p.f[1], "AAAAAAAA");
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -ENOENT);
	expect_frame(&p.f[1], "B");
	take_fd_of(&p.f[1], ino_b);
	assert_int_equal(epsec_framer_recv_fd(&p.f[1]), -EAGAIN);
	fdpair_close(&p);
	close(fa);
	close(fb);
	assert_int_equal(fd_count(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_big_endian),
		cmocka_unit_test(test_parse_many),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_oversized),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test_setup_teardown(test_round_trip, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_zero_length, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_many_in_one_write, pair_setup, pair_teardown),
		cmocka_unit_test(test_split_every_byte),
		cmocka_unit_test_setup_teardown(test_truncated_then_eof, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_oversized_refused_before_alloc, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_announced_max_accepted, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_large_frame_buffered, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_high_water, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_send_to_closed_peer, pair_setup, pair_teardown),
		cmocka_unit_test(test_fd_round_trip),
		cmocka_unit_test(test_fd_interleaved_order),
		cmocka_unit_test(test_fd_unclaimed_overflow),
		cmocka_unit_test(test_fd_send_pending),
		cmocka_unit_test(test_fd_send_after_flush),
		cmocka_unit_test(test_fd_partial_frame),
		cmocka_unit_test(test_fd_reader_without_pass),
		cmocka_unit_test(test_fd_pipe_kept_until_closed),
		cmocka_unit_test(test_fd_lost_out_of_fds),
		cmocka_unit_test(test_fd_lost_keeps_order),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
