/* SPDX-License-Identifier: MIT */
/* Shared by the transport option tests (test_curve, test_vsock,
 * test_stream): the real plugins from the build tree, one event loop,
 * thread-safe log capture (the ZAP handler logs from its own thread),
 * option groups read from files (so errors carry FILE:LINE), and peers
 * that speak HELLO/WELCOME through libcore's link layer. */
#ifndef TRTEST_H
#define TRTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <libconfig.h>
#include "link.h"
#include "loop.h"

void trt_init(const char *program);
void trt_exit(void);
struct epsec_loop *trt_loop(void);
/* Run the loop for `ms`. */
void trt_run(unsigned ms);
uint64_t trt_now_ms(void);

/* Wait up to ms for cond, running the loop between looks. */
#define TRT_WAIT(cond, ms)                                                                  \
	({                                                                                  \
		uint64_t deadline_ = trt_now_ms() + (ms);                                   \
		bool ok_;                                                                   \
		while (!(ok_ = (cond)) && trt_now_ms() < deadline_)                         \
			trt_run(2);                                                         \
		ok_;                                                                        \
	})

/* Log lines at warning or worse (and debug lines of `src` when asked). */
void trt_log_clear(void);
bool trt_log_has(const char *needle);
/* Count of captured lines containing needle. */
int trt_log_count(const char *needle);
const char *trt_log_last(void);

/* A fresh directory under /tmp, removed by trt_rmdir. */
void trt_mkdir(char *buf, size_t len);
void trt_rmdir(const char *dir);
void trt_write(const char *path, const char *text, mode_t mode);

/* `text` written to DIR/opts.conf and read back: the root group (NULL if
 * it does not parse); keep cfg until config_destroy. */
const config_setting_t *trt_opts(config_t *cfg, const char *dir, const char *text);

/* A peer: counts what it hears. */
struct trt_peer {
	struct epsec_conn *c;
	int msgs, hellos, welcomes, closed, reason;
	char name[160];        /* epsec_conn_peer at accept */
};

#define TRT_MAXSRV 8
struct trt_server {
	struct epsec_listener *l;
	struct trt_peer srv[TRT_MAXSRV];
	int n;
};

/* Listen with `opts`; each accepted peer answers HELLO with WELCOME. */
int trt_listen(struct trt_server *s, const char *uri, const config_setting_t *opts);
void trt_server_close(struct trt_server *s);
/* Connect with opts and send HELLO (as an agent). 0 or -errno. */
int trt_connect(struct trt_peer *p, const char *uri, const config_setting_t *opts);
void trt_peer_close(struct trt_peer *p);
/* Total HELLOs the server heard. */
int trt_hellos(const struct trt_server *s);

#endif
