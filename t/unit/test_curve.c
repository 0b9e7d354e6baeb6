/* SPDX-License-Identifier: MIT */
/* tcp:// with CURVE, through the real tcp.la and libcore's link layer: key
 * files and their option errors (FILE:LINE), a client with an allowed key
 * served and named by its key, and clients with no key, a key not allowed
 * or the wrong server key refused and logged, with nothing of theirs
 * reaching the host. */
#include "config.h"
#include "trtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

struct keys {
	char dir[64];
	char allowed[128];           /* DIR/allowed: a.pub, c.pub */
	char srv_pub[41];
	char a_pub[41];
};

static struct keys K;

/* ------------------------------------------------------------ key files */

static void write_pair(const char *dir, const char *name, char *pub_out)
{
	char pub[41], sec[41], path[256], text[512];

	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	snprintf(text, sizeof(text),
		 "#   ZeroMQ CURVE **Secret** Certificate\n"
		 "# public-key = \"not this line\"\n\nmetadata\ncurve\n"
		 "    public-key = \"%s\"\n    secret-key = \"%s\"\n", pub, sec);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	trt_write(path, text, 0600);
	snprintf(text, sizeof(text), "curve\n    public-key = \"%s\"\n", pub);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, name);
	trt_write(path, text, 0644);
	if (pub_out)
		memcpy(pub_out, pub, sizeof(pub));
}

static int group_setup(void **state)
{
	char cmd[512];

	(void)state;
	trt_mkdir(K.dir, sizeof(K.dir));
	snprintf(K.allowed, sizeof(K.allowed), "%s/allowed", K.dir);
	if (mkdir(K.allowed, 0755) < 0)
		return -1;
	write_pair(K.dir, "srv", K.srv_pub);
	write_pair(K.dir, "a", K.a_pub);   /* allowed */
	write_pair(K.dir, "b", NULL);      /* not allowed */
	write_pair(K.dir, "c", NULL);      /* allowed, but only on the first listener */
	write_pair(K.dir, "other", NULL);  /* a server key nobody uses */
	snprintf(cmd, sizeof(cmd), "cp %s/a.pub %s/c.pub %s/", K.dir, K.dir, K.allowed);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	trt_rmdir(K.dir);
	return 0;
}

static int port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	p = ntohs(sa.sin_port);
	close(fd);
	return p;
}

/* ------------------------------------------------------------ fixtures */

struct t {
	char uri[64];
	config_t scfg, ccfg;
	const config_setting_t *sopts, *copts;
	struct trt_server s;
	struct trt_peer c;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->uri, sizeof(t->uri), "tcp://127.0.0.1:%d", port());
	config_init(&t->scfg);
	config_init(&t->ccfg);
	trt_log_clear();
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	trt_peer_close(&t->c);
	trt_server_close(&t->s);
	config_destroy(&t->scfg);
	config_destroy(&t->ccfg);
	free(t);
	return 0;
}

static const config_setting_t *opts(config_t *cfg, const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	config_destroy(cfg);
	return trt_opts(cfg, K.dir, text);
}

static void curve_server(struct t *t)
{
	t->sopts = opts(&t->scfg, "curve_secret_key = \"%s/srv.key\";\n"
				  "curve_allowed_keys = \"%s\";\n", K.dir, K.allowed);
	assert_non_null(t->sopts);
	assert_int_equal(trt_listen(&t->s, t->uri, t->sopts), 0);
}

static const config_setting_t *client_opts(struct t *t, const char *name, const char *server)
{
	return t->copts = opts(&t->ccfg, "curve_key = \"%s/%s.key\";\ncurve_server_key = \"%s\";\n",
			       K.dir, name, server);
}

/* ------------------------------------------------------------ tests */

static void test_allowed_key_served(void **state)
{
	struct t *t = *state;
	char srv[128];

	curve_server(t);
	snprintf(srv, sizeof(srv), "%s/srv.pub", K.dir);
	assert_int_equal(trt_connect(&t->c, t->uri, client_opts(t, "a", srv)), 0);
	assert_true(TRT_WAIT(t->c.welcomes == 1, 3000));
	assert_int_equal(t->s.n, 1);
	assert_int_equal(t->s.srv[0].hellos, 1);
	/* named by the key it proved it holds */
	assert_non_null(strstr(t->s.srv[0].name, "key=a"));
	assert_non_null(strstr(t->s.srv[0].name, "tcp://127.0.0.1:"));
}

static void test_server_key_as_z85(void **state)
{
	struct t *t = *state;

	curve_server(t);
	assert_int_equal(trt_connect(&t->c, t->uri, client_opts(t, "c", K.srv_pub)), 0);
	assert_true(TRT_WAIT(t->c.welcomes == 1, 3000));
	assert_non_null(strstr(t->s.srv[0].name, "key=c"));
}

static void test_key_not_allowed(void **state)
{
	struct t *t = *state;

	curve_server(t);
	assert_int_equal(trt_connect(&t->c, t->uri, client_opts(t, "b", K.srv_pub)), -EACCES);
	trt_run(200);
	assert_int_equal(t->s.n, 0);
	assert_true(trt_log_has("is not in curve_allowed_keys"));
	assert_true(trt_log_has("refused client at 127.0.0.1"));
}

static void test_wrong_server_key(void **state)
{
	struct t *t = *state;
	char srv[128];
	int r;

	curve_server(t);
	snprintf(srv, sizeof(srv), "%s/other.pub", K.dir);
	r = trt_connect(&t->c, t->uri, client_opts(t, "a", srv));
	assert_true(r < 0);
	assert_true(TRT_WAIT(trt_log_has("refused a client on tcp://127.0.0.1:"), 2000));
	assert_true(trt_log_has("wrong curve_server_key"));
	assert_int_equal(t->s.n, 0);
}

/* A raw DEALER without CURVE: what it sends never reaches the host. */
static void test_no_key_never_gets_through(void **state)
{
	struct t *t = *state;
	void *ctx = zmq_ctx_new(), *d;
	int zero = 0;

	curve_server(t);
	d = zmq_socket(ctx, ZMQ_DEALER);
	assert_non_null(d);
	zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
	assert_int_equal(zmq_connect(d, t->uri), 0);
	assert_int_equal(zmq_send(d, "hello?", 6, ZMQ_DONTWAIT), 6);
	/* "does not speak CURVE", or a hang-up when the DEALER saw the mismatch
	 * first */
	assert_true(TRT_WAIT(trt_log_has("refused a client on tcp://127.0.0.1:"), 2000));
	trt_run(300);
	assert_int_equal(t->s.n, 0);
	zmq_close(d);
	zmq_ctx_term(ctx);
	/* and a link-layer client without keys fails to connect at all */
	assert_true(trt_connect(&t->c, t->uri, NULL) < 0);
	assert_int_equal(t->s.n, 0);
}

/* Two CURVE listeners, two key lists: each ZAP domain has its own. The
 * second lists its key as Z85 text. */
static void test_keys_per_listener(void **state)
{
	struct t *t = *state;
	struct trt_server s2;
	config_t cfg2;
	char uri2[64];
	const config_setting_t *o2;

	curve_server(t);
	snprintf(uri2, sizeof(uri2), "tcp://127.0.0.1:%d", port());
	config_init(&cfg2);
	o2 = opts(&cfg2, "curve_secret_key = \"%s/srv.key\";\n"
			 "curve_allowed_keys = [ \"%s\" ];\n", K.dir, K.a_pub);
	assert_int_equal(trt_listen(&s2, uri2, o2), 0);
	assert_int_equal(trt_connect(&t->c, t->uri, client_opts(t, "c", K.srv_pub)), 0);
	assert_true(TRT_WAIT(t->c.welcomes == 1, 3000));
	trt_peer_close(&t->c);
	assert_int_equal(trt_connect(&t->c, uri2, t->copts), -EACCES);
	assert_int_equal(s2.n, 0);
	assert_int_equal(trt_connect(&t->c, uri2, client_opts(t, "a", K.srv_pub)), 0);
	assert_true(TRT_WAIT(t->c.welcomes == 1, 3000));
	assert_non_null(strstr(s2.srv[0].name, "key=key-"));
	trt_peer_close(&t->c);
	trt_server_close(&s2);
	config_destroy(&cfg2);
}

/* With a ZAP handler in the process, a plain listener still serves plain
 * clients (its NULL handshakes are not ours to refuse). */
static void test_plain_listener_unaffected(void **state)
{
	struct t *t = *state;
	struct trt_server plain;
	char uri2[64];

	curve_server(t);
	snprintf(uri2, sizeof(uri2), "tcp://127.0.0.1:%d", port());
	assert_int_equal(trt_listen(&plain, uri2, NULL), 0);
	assert_int_equal(trt_connect(&t->c, uri2, NULL), 0);
	assert_true(TRT_WAIT(t->c.welcomes == 1, 3000));
	assert_null(strstr(plain.srv[0].name, "key="));
	trt_peer_close(&t->c);
	trt_server_close(&plain);
}

/* ------------------------------------------------------------ option errors */

static void expect_listen_error(struct t *t, const char *text, const char *msg)
{
	t->sopts = opts(&t->scfg, "%s", text);
	assert_non_null(t->sopts);
	trt_log_clear();
	assert_int_equal(trt_listen(&t->s, t->uri, t->sopts), -EINVAL);
	if (!trt_log_has(msg) || !trt_log_has("opts.conf:"))
		fail_msg("expected \"%s\" with FILE:LINE, got \"%s\"", msg, trt_log_last());
}

static void test_server_option_errors(void **state)
{
	struct t *t = *state;
	char text[1024], empty[128], loose[128];

	snprintf(text, sizeof(text), "curve_secret_key = \"%s/srv.key\";\n", K.dir);
	expect_listen_error(t, text, "needs curve_allowed_keys too");
	snprintf(text, sizeof(text), "curve_allowed_keys = \"%s\";\n", K.allowed);
	expect_listen_error(t, text, "needs curve_secret_key");
	expect_listen_error(t, "curve_secret = \"x\";\n", "unknown key");
	snprintf(text, sizeof(text), "curve_secret_key = \"%s/nope.key\";\n"
		 "curve_allowed_keys = \"%s\";\n", K.dir, K.allowed);
	expect_listen_error(t, text, "cannot read key file");
	/* a .pub file has no secret key (nor is it private) */
	snprintf(text, sizeof(text), "curve_secret_key = \"%s/srv.pub\";\n"
		 "curve_allowed_keys = \"%s\";\n", K.dir, K.allowed);
	expect_listen_error(t, text, "readable by others");
	snprintf(text, sizeof(text), "cp %s/srv.pub %s/pubonly.key && chmod 600 %s/pubonly.key",
		 K.dir, K.dir, K.dir);
	assert_int_equal(system(text), 0);
	snprintf(text, sizeof(text), "curve_secret_key = \"%s/pubonly.key\";\n"
		 "curve_allowed_keys = \"%s\";\n", K.dir, K.allowed);
	expect_listen_error(t, text, "not a key file");
	snprintf(empty, sizeof(empty), "%s/empty", K.dir);
	mkdir(empty, 0755);
	snprintf(text, sizeof(text), "curve_secret_key = \"%s/srv.key\";\n"
		 "curve_allowed_keys = \"%s\";\n", K.dir, empty);
	expect_listen_error(t, text, "no client public keys found");
	snprintf(text, sizeof(text), "curve_secret_key = \"%s/srv.key\";\n"
		 "curve_allowed_keys = ( \"%s/a.pub\", 7 );\n", K.dir, K.dir);
	expect_listen_error(t, text, "expected a file name or a Z85 key");
	/* a secret key others can read is no secret */
	snprintf(loose, sizeof(loose), "%s/loose.key", K.dir);
	snprintf(text, sizeof(text), "cp %s/srv.key %s && chmod 644 %s", K.dir, loose, loose);
	assert_int_equal(system(text), 0);
	snprintf(text, sizeof(text), "curve_secret_key = \"%s\";\ncurve_allowed_keys = \"%s\";\n",
		 loose, K.allowed);
	expect_listen_error(t, text, "readable by others");
}

static void test_mismatched_pair(void **state)
{
	struct t *t = *state;
	char pub[41], sec[41], pub2[41], sec2[41], path[128], text[512];

	zmq_curve_keypair(pub, sec);
	zmq_curve_keypair(pub2, sec2);
	snprintf(path, sizeof(path), "%s/mixed.key", K.dir);
	snprintf(text, sizeof(text), "public-key = \"%s\"\nsecret-key = \"%s\"\n", pub2, sec);
	trt_write(path, text, 0600);
	snprintf(text, sizeof(text), "curve_secret_key = \"%s\";\ncurve_allowed_keys = \"%s\";\n",
		 path, K.allowed);
	expect_listen_error(t, text, "does not belong to its secret-key");
	/* a bad Z85 character */
	snprintf(text, sizeof(text), "secret-key = \"%.39s~\"\n", sec);
	trt_write(path, text, 0600);
	snprintf(text, sizeof(text), "curve_secret_key = \"%s\";\ncurve_allowed_keys = \"%s\";\n",
		 path, K.allowed);
	expect_listen_error(t, text, "not a key file");
}

static void test_client_option_errors(void **state)
{
	struct t *t = *state;
	char text[512];

	curve_server(t);
	snprintf(text, sizeof(text), "curve_key = \"%s/a.key\";\n", K.dir);
	t->copts = opts(&t->ccfg, "%s", text);
	trt_log_clear();
	assert_int_equal(trt_connect(&t->c, t->uri, t->copts), -EINVAL);
	assert_true(trt_log_has("needs curve_server_key"));
	t->copts = opts(&t->ccfg, "curve_server_key = \"%s\";\n", K.srv_pub);
	assert_int_equal(trt_connect(&t->c, t->uri, t->copts), -EINVAL);
	assert_true(trt_log_has("needs curve_key"));
	/* a server's listening options are not a client's */
	t->copts = opts(&t->ccfg, "curve_secret_key = \"%s/a.key\";\n", K.dir);
	assert_int_equal(trt_connect(&t->c, t->uri, t->copts), -EINVAL);
	assert_true(trt_log_has("unknown key"));
	t->copts = opts(&t->ccfg, "curve_key = \"%s/a.key\";\ncurve_server_key = \"tooshort\";\n",
			K.dir);
	assert_int_equal(trt_connect(&t->c, t->uri, t->copts), -EINVAL);
	assert_true(trt_log_has("cannot read key file tooshort"));
	assert_int_equal(t->s.n, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_allowed_key_served),
		T(test_server_key_as_z85),
		T(test_key_not_allowed),
		T(test_wrong_server_key),
		T(test_no_key_never_gets_through),
		T(test_keys_per_listener),
		T(test_plain_listener_unaffected),
		T(test_server_option_errors),
		T(test_mismatched_pair),
		T(test_client_option_errors),
	};
	int r;

	trt_init("test_curve");
	r = cmocka_run_group_tests_name("curve", tests, group_setup, group_teardown);
	trt_exit();
	return r;
}
