/* SPDX-License-Identifier: MIT */
/* vsock:// and vmci:// on a machine with neither a loopback transport nor
 * a VMCI device: address parsing, options and their FILE:LINE errors,
 * buffer sizes on a real AF_VSOCK socket, and the error paths of the real
 * plugins (bounded connect, missing /dev/vmci). The end-to-end test is
 * t/integration/vsock.sh, where vsock://1:PORT works. */
#include "config.h"
#include "trtest.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>
#include <cmocka.h>

#include "host.h"
#include "vsockio.h"

static char dir[64];

static int group_setup(void **state)
{
	(void)state;
	trt_mkdir(dir, sizeof(dir));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	trt_rmdir(dir);
	return 0;
}

static bool have_vsock(void)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* A port nobody listens on, above the privileged range. */
static unsigned vport(void)
{
	return 20000u + (unsigned)(getpid() % 20000) + (unsigned)(rand() % 1000);
}

/* ------------------------------------------------------------ addresses */

static void test_address(void **state)
{
	static const struct {
		const char *a;
		bool listening;
		int r;
		uint32_t cid, port;
	} cases[] = {
		{ "3:5000", false, 0, 3, 5000 },
		{ "2:0", false, 0, 2, 0 },
		{ "host:48651", false, 0, VMADDR_CID_HOST, 48651 },
		{ "local:1", false, 0, VMADDR_CID_LOCAL, 1 },
		{ "any:48651", true, 0, VMADDR_CID_ANY, 48651 },
		{ "-1:7", true, 0, VMADDR_CID_ANY, 7 },
		{ "4294967295:7", true, 0, VMADDR_CID_ANY, 7 },
		{ "4294967294:4294967294", false, 0, 4294967294u, 4294967294u },
		{ "any:48651", false, -EINVAL, 0, 0 },     /* connect needs a CID */
		{ "-1:7", false, -EINVAL, 0, 0 },
		{ "3:4294967295", false, -EINVAL, 0, 0 },  /* VMADDR_PORT_ANY */
		{ "4294967296:1", true, -EINVAL, 0, 0 },
		{ "3", false, -EINVAL, 0, 0 },
		{ "3:", false, -EINVAL, 0, 0 },
		{ ":5", false, -EINVAL, 0, 0 },
		{ "cid:5", false, -EINVAL, 0, 0 },
		{ "3:5x", false, -EINVAL, 0, 0 },
		{ "3:-5", false, -EINVAL, 0, 0 },
		{ " 3:5", false, -EINVAL, 0, 0 },
		{ "", true, -EINVAL, 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t cid = 0, port = 0;
		int r = epsec_vsock_address(cases[i].a, cases[i].listening, &cid, &port);

		if (r != cases[i].r || (r == 0 && (cid != cases[i].cid || port != cases[i].port)))
			fail_msg("\"%s\" (%s): got %d cid %u port %u", cases[i].a,
				 cases[i].listening ? "listen" : "connect", r, cid, port);
	}
}

/* ------------------------------------------------------------ options */

/* opts from text through epsec_vsock_opts; its error must name the line. */
static int parse(const char *text, bool listening, unsigned flags, struct epsec_vsock_opts *o)
{
	config_t cfg;
	const config_setting_t *g = trt_opts(&cfg, dir, text);
	int r;

	assert_non_null(g);
	trt_log_clear();
	r = epsec_vsock_opts(epsec_host_get(), g, listening, flags, o);
	config_destroy(&cfg);
	return r;
}

static void expect_error(const char *text, bool listening, unsigned flags, const char *msg)
{
	struct epsec_vsock_opts o;

	if (parse(text, listening, flags, &o) != -EINVAL)
		fail_msg("accepted: %s", text);
	if (!trt_log_has(msg) || !trt_log_has("opts.conf:"))
		fail_msg("%s: expected \"%s\" with FILE:LINE, got \"%s\"", text, msg, trt_log_last());
}

static void test_options_good(void **state)
{
	struct epsec_vsock_opts o;

	(void)state;
	assert_int_equal(parse("allow_cids = ( 3, 4, 4294967295L );", true, 0, &o), 0);
	assert_int_equal(o.allow.n, 3);
	assert_true(epsec_allow_has(&o.allow, 4));
	assert_false(epsec_allow_has(&o.allow, 5));
	epsec_vsock_opts_free(&o);

	assert_int_equal(parse("", true, 0, &o), 0);
	assert_int_equal(o.allow.n, 0);
	assert_true(epsec_allow_has(&o.allow, 12345)); /* no list: everyone */
	assert_int_equal(o.buffer_size, -1);
	epsec_vsock_opts_free(&o);

	assert_int_equal(parse("connect_timeout_ms = 250;", false, 0, &o), 0);
	assert_int_equal(o.connect_timeout_ms, 250);
	epsec_vsock_opts_free(&o);
	assert_int_equal(parse("", false, 0, &o), 0);
	assert_int_equal(o.connect_timeout_ms, EPSEC_VSOCK_CONNECT_TIMEOUT_MS);
	epsec_vsock_opts_free(&o);

	assert_int_equal(parse("allow_cids = [ 2 ]; buffer_size = 262144; "
			       "buffer_min_size = 4096; buffer_max_size = 1048576;",
			       true, EPSEC_VSOCK_BUFFERS, &o), 0);
	assert_int_equal(o.buffer_size, 262144);
	assert_int_equal(o.buffer_min_size, 4096);
	assert_int_equal(o.buffer_max_size, 1048576);
	epsec_vsock_opts_free(&o);
}

static void test_options_bad(void **state)
{
	(void)state;
	/* vsock takes no buffer sizes, a listener no timeout, a client no list */
	expect_error("buffer_size = 65536;", true, 0, "unknown key");
	expect_error("connect_timeout_ms = 100;", true, 0, "unknown key");
	expect_error("allow_cids = [ 3 ];", false, EPSEC_VSOCK_BUFFERS, "unknown key");
	expect_error("allow_cid = [ 3 ];", true, 0, "unknown key; expected one of: allow_cids");
	expect_error("allow_cids = 3;", true, 0, "expected a list of integers");
	expect_error("allow_cids = [ ];", true, 0, "an empty list would refuse every peer");
	expect_error("allow_cids = [ -1 ];", true, 0, "expected an integer 0..4294967295");
	expect_error("allow_cids = ( 3, \"4\" );", true, 0, "expected an integer");
	expect_error("connect_timeout_ms = 0;", false, 0, "expected an integer 1..600000");
	expect_error("connect_timeout_ms = \"1s\";", false, 0, "expected an integer");
	expect_error("buffer_size = 0;", true, EPSEC_VSOCK_BUFFERS, "expected an integer 1..");
	expect_error("buffer_size = 4096; buffer_min_size = 8192;", true, EPSEC_VSOCK_BUFFERS,
		     "buffer_min_size <= buffer_size <= buffer_max_size");
	expect_error("buffer_size = 8192; buffer_max_size = 4096;", false, EPSEC_VSOCK_BUFFERS,
		     "buffer_min_size <= buffer_size <= buffer_max_size");
	expect_error("buffer_min_size = 8192; buffer_max_size = 4096;", true,
		     EPSEC_VSOCK_BUFFERS, "buffer_min_size <= buffer_size <= buffer_max_size");
}

/* The VMCI socket options reach the kernel: read them back. */
static void test_buffers_on_socket(void **state)
{
	struct epsec_vsock_opts o;
	unsigned long long v;
	socklen_t sl = sizeof(v);
	int fd;

	(void)state;
	if (!have_vsock())
		skip();
	assert_int_equal(parse("buffer_size = 131072; buffer_min_size = 8192; "
			       "buffer_max_size = 524288;", true, EPSEC_VSOCK_BUFFERS, &o), 0);
	fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(epsec_vsock_set_buffers(fd, &o), 0);
	assert_int_equal(getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &v, &sl), 0);
	assert_int_equal(v, 131072);
	assert_int_equal(getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MIN_SIZE, &v, &sl), 0);
	assert_int_equal(v, 8192);
	assert_int_equal(getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &v, &sl), 0);
	assert_int_equal(v, 524288);
	close(fd);
	epsec_vsock_opts_free(&o);
}

/* ------------------------------------------------------------ the plugins */

static void test_vsock_listen_any(void **state)
{
	struct trt_server s;
	config_t cfg;
	const config_setting_t *g = trt_opts(&cfg, dir, "allow_cids = [ 2, 3 ];");
	char uri[64];
	int r;

	(void)state;
	if (!have_vsock()) {
		config_destroy(&cfg);
		skip();
	}
	snprintf(uri, sizeof(uri), "vsock://any:%u", vport());
	r = trt_listen(&s, uri, g);
	assert_int_equal(r, 0);
	trt_run(20);
	assert_int_equal(s.n, 0);
	trt_server_close(&s);
	/* the port is free again once closed */
	assert_int_equal(trt_listen(&s, uri, NULL), 0);
	trt_server_close(&s);
	config_destroy(&cfg);
}

static void test_vsock_connect_errors(void **state)
{
	struct trt_peer p;
	config_t cfg;
	const config_setting_t *g;
	char uri[64];
	uint64_t t0, took;
	int r;

	(void)state;
	trt_log_clear();
	assert_int_equal(trt_connect(&p, "vsock://any:5000", NULL), -EINVAL);
	assert_true(trt_log_has("vsock://any:5000: expected CID:PORT"));
	if (!have_vsock())
		skip();
	/* Nobody there: refused at once (a loopback transport, an own CID) or,
	 * with no loopback, routed to the host and bounded by the timeout. */
	g = trt_opts(&cfg, dir, "connect_timeout_ms = 300;");
	snprintf(uri, sizeof(uri), "vsock://1:%u", vport());
	t0 = trt_now_ms();
	r = trt_connect(&p, uri, g);
	took = trt_now_ms() - t0;
	print_message("connect %s: %s after %llu ms\n", uri, strerror(-r),
		      (unsigned long long)took);
	assert_true(r < 0);
	assert_true(took < 1500);
	if (r == -ETIMEDOUT)
		assert_true(took >= 250);
	config_destroy(&cfg);
	g = trt_opts(&cfg, dir, "allow_cids = [ 3 ];");
	assert_int_equal(trt_connect(&p, uri, g), -EINVAL);
	assert_true(trt_log_has("unknown key; expected one of: connect_timeout_ms"));
	config_destroy(&cfg);
}

static void test_vmci_without_device(void **state)
{
	struct trt_server s;
	struct trt_peer p;
	char uri[64];

	(void)state;
	if (access("/dev/vmci", F_OK) == 0) {
		print_message("/dev/vmci exists here: its absence is not testable\n");
		skip();
	}
	trt_log_clear();
	snprintf(uri, sizeof(uri), "vmci://any:%u", vport());
	assert_int_equal(trt_listen(&s, uri, NULL), -ENODEV);
	assert_true(trt_log_has("/dev/vmci is absent"));
	trt_log_clear();
	assert_int_equal(trt_connect(&p, "vmci://2:48651", NULL), -ENODEV);
	assert_true(trt_log_has("vmci://2:48651: /dev/vmci is absent"));
}

/* Option errors come first, device or not; addresses are checked too. */
static void test_vmci_options_first(void **state)
{
	struct trt_server s;
	struct trt_peer p;
	config_t cfg;
	const config_setting_t *g = trt_opts(&cfg, dir, "allow_cids = [ 3 ];\nbuffer_size = -4;");

	(void)state;
	trt_log_clear();
	assert_int_equal(trt_listen(&s, "vmci://any:48651", g), -EINVAL);
	assert_true(trt_log_has("opts.conf:2: buffer_size: expected an integer 1.."));
	assert_false(trt_log_has("/dev/vmci"));
	trt_log_clear();
	assert_int_equal(trt_connect(&p, "vmci://any:48651", NULL), -EINVAL);
	assert_true(trt_log_has("vmci://any:48651: expected CID:PORT"));
	config_destroy(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_options_good),
		cmocka_unit_test(test_options_bad),
		cmocka_unit_test(test_buffers_on_socket),
		cmocka_unit_test(test_vsock_listen_any),
		cmocka_unit_test(test_vsock_connect_errors),
		cmocka_unit_test(test_vmci_without_device),
		cmocka_unit_test(test_vmci_options_first),
	};
	int r;

	srand((unsigned)getpid());
	trt_init("test_vsock");
	r = cmocka_run_group_tests_name("vsock", tests, group_setup, group_teardown);
	trt_exit();
	return r;
}
