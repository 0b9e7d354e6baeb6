/* SPDX-License-Identifier: MIT */
/* A peer for the transport integration scripts: connects to a real mux
 * through the real transport plugins with the options of a file, says
 * HELLO, and reports how far it got. Also tells whether this machine has
 * a vsock loopback transport (API-FACTS section 7).
 *
 *   tr_probe hello URI agent|sva [OPTIONS_FILE]
 *     0 welcomed, 1 refused at connect, 2 dropped before WELCOME,
 *     3 no answer within 3 s, 4 usage or set-up error
 *     (env TR_PROBE_PROTO=MIN-MAX: say that protocol range in HELLO)
 *   tr_probe vsock-loopback
 *     0 bind to VMADDR_CID_LOCAL works (loopback transport), 1 not (why on
 *     stdout) */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>
#include <libconfig.h>
#include <epsec/version.h>

#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"

#define WAIT_MS 3000

struct probe {
	struct epsec_loop *loop;
	struct epsec_conn *c;
	int welcomed, closed, reason;
	char error[256];
};

static int vsock_loopback(void)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_LOCAL,
				  .svm_port = VMADDR_PORT_ANY };
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0), r;

	if (fd < 0) {
		printf("no AF_VSOCK: %s\n", strerror(errno));
		return 1;
	}
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0)
		printf("no vsock loopback transport: bind to CID 1: %s\n", strerror(errno));
	close(fd);
	return r < 0 ? 1 : 0;
}

static void on_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct probe *p = arg;

	(void)c;
	if (m->body_case == EPSEC__ENVELOPE__BODY_WELCOME)
		p->welcomed = 1;
	else if (m->body_case == EPSEC__ENVELOPE__BODY_ERROR && m->error->message)
		snprintf(p->error, sizeof(p->error), "%s", m->error->message);
	epsec_msg_free(m);
	if (p->welcomed)
		epsec_loop_stop(p->loop);
}

static void on_close(struct epsec_conn *c, int reason, void *arg)
{
	struct probe *p = arg;

	(void)c;
	p->closed = 1;
	p->reason = reason;
	p->c = NULL;
	epsec_loop_stop(p->loop);
}

static void on_timeout(struct epsec_loop *loop, void *arg)
{
	(void)arg;
	epsec_loop_stop(loop);
}

static int send_hello(struct probe *p, int role)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;
	char id[32];
	char *engines[] = { "probe" };

	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	/* TR_PROBE_PROTO=MIN-MAX: play a peer of another protocol range. */
	if (getenv("TR_PROBE_PROTO"))
		sscanf(getenv("TR_PROBE_PROTO"), "%u-%u", &h.version_min, &h.version_max);
	h.role = role;
	/* One live connection per agent id at the mux: each probe its own. */
	snprintf(id, sizeof(id), "tr-probe-%d", (int)getpid());
	h.id = id;
	h.build = "test";
	if (role == EPSEC__ROLE__ROLE_SVA) {
		h.n_engines = 1;
		h.engines = engines;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	return epsec_conn_send(p->c, &env);
}

static int hello(const char *uri, const char *role_name, const config_setting_t *opts)
{
	struct probe p = { 0 };
	int role = !strcmp(role_name, "sva") ? EPSEC__ROLE__ROLE_SVA : EPSEC__ROLE__ROLE_AGENT;
	int r;

	if (epsec_loop_new(&p.loop) < 0)
		return 4;
	r = epsec_connect(p.loop, uri, opts, EPSEC_ROLE_MUX, &p.c);
	if (r < 0) {
		printf("refused at connect: %s\n", strerror(-r));
		epsec_loop_free(p.loop);
		return 1;
	}
	epsec_conn_set_handlers(p.c, on_msg, on_close, &p);
	/* A failed send closes the link from the loop: run it either way. */
	send_hello(&p, role);
	epsec_loop_add_timer(p.loop, WAIT_MS, on_timeout, NULL);
	epsec_loop_run(p.loop);
	if (p.welcomed) {
		printf("welcomed as %s on %s\n", role_name, uri);
		r = 0;
	} else if (p.closed) {
		printf("dropped before WELCOME: %s%s%s\n", strerror(p.reason < 0 ? -p.reason : p.reason),
		       p.error[0] ? ": " : "", p.error);
		r = 2;
	} else {
		printf("no answer within %d ms\n", WAIT_MS);
		r = 3;
	}
	if (p.c)
		epsec_conn_close(p.c);
	/* what the link layer posted to itself (a failed send's close) runs
	 * before the loop goes */
	epsec_loop_add_timer(p.loop, 20, on_timeout, NULL);
	epsec_loop_run(p.loop);
	epsec_loop_free(p.loop);
	return r;
}

int main(int argc, char **argv)
{
	config_t cfg;
	int r;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 2 && !strcmp(argv[1], "vsock-loopback"))
		return vsock_loopback();
	if (argc < 4 || argc > 5 || strcmp(argv[1], "hello")) {
		fprintf(stderr, "usage: tr_probe hello URI agent|sva [OPTIONS_FILE]\n"
				"       tr_probe vsock-loopback\n");
		return 4;
	}
	epsec_log_open("tr_probe", EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	config_init(&cfg);
	if (argc == 5 && config_read_file(&cfg, argv[4]) != CONFIG_TRUE) {
		fprintf(stderr, "%s:%d: %s\n", argv[4], config_error_line(&cfg),
			config_error_text(&cfg));
		return 4;
	}
	if (epsec_loader_init(NULL) < 0)
		return 4;
	r = hello(argv[2], argv[3], argc == 5 ? config_root_setting(&cfg) : NULL);
	epsec_loader_exit();
	config_destroy(&cfg);
	return r;
}
