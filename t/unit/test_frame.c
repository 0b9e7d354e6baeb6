/* Unit tests for libcore/frame.c: the pure parser and the non-blocking
 * framer over real socketpairs. */
#include "config.h"
#include "frame.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
