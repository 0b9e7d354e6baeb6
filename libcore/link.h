/* SPDX-License-Identifier: MIT */
/* A connection to a peer over whatever transport its URI names, speaking
 * epsec messages. The link layer owns the transport plugin handle, adds the
 * loop watch, decodes incoming messages (dropping hostile peers after an
 * ERROR), and encodes outgoing ones. One loop thread per link. */
#ifndef EPSEC_LINK_H
#define EPSEC_LINK_H

#include <stdbool.h>
#include <libconfig.h>
#include "loop.h"
#include "msg.h"

struct epsec_conn;

/* Called for each valid message; the callee owns `m`. */
typedef void (*epsec_conn_msg_fn)(struct epsec_conn *c, epsec_msg *m, void *arg);
/* Called once when the connection is gone (closed by peer, error, or
 * dropped for a bad message); the connection is freed after it returns. */
typedef void (*epsec_conn_close_fn)(struct epsec_conn *c, int reason, void *arg);
/* A new peer on a listener. Return 0 to keep it (after setting callbacks
 * with epsec_conn_set_handlers), negative to refuse. */
typedef int (*epsec_conn_accept_fn)(struct epsec_conn *c, void *arg);

struct epsec_listener;

/* `peer_role`: the role peers on this endpoint must have (what they may
 * send). */
int epsec_listen(struct epsec_loop *loop, const char *uri, const config_setting_t *opts,
		 enum epsec_role peer_role, epsec_conn_accept_fn on_accept, void *arg,
		 struct epsec_listener **out);
void epsec_listener_close(struct epsec_listener *l);
/* Whether links accepted here can pass file descriptors (unix://). */
bool epsec_listener_passes_fds(const struct epsec_listener *l);

int epsec_connect(struct epsec_loop *loop, const char *uri, const config_setting_t *opts,
		  enum epsec_role peer_role, struct epsec_conn **out);
void epsec_conn_set_handlers(struct epsec_conn *c, epsec_conn_msg_fn on_msg,
			     epsec_conn_close_fn on_close, void *arg);
/* 0, or negative errno (-ENOBUFS: peer not reading). When the link turns
 * out dead, on_close runs later from the loop, never inside this call. */
int epsec_conn_send(struct epsec_conn *c, const epsec_msg *m);
/* Send ERROR(code, text) then drop the connection; on_close runs before
 * this returns, with reason -code. */
/* File descriptor passing (unix:// links). Whether this link can: */
bool epsec_conn_passes_fds(const struct epsec_conn *c);
/* As epsec_conn_send, with `fd` passed alongside (the caller keeps it).
 * -EAGAIN: it could not start now and nothing was sent: try again when
 * the drain handler runs (or send it without the fd). -ETOOMANYREFS: this
 * user has too many fds in flight (send it without). -EOPNOTSUPP: the
 * link cannot pass fds. */
int epsec_conn_send_fd(struct epsec_conn *c, const epsec_msg *m, int fd);
/* Called from the loop once a link whose send_fd said -EAGAIN has written
 * all it held: a message with an fd can start now. */
typedef void (*epsec_conn_drain_fn)(struct epsec_conn *c, void *arg);
void epsec_conn_set_drain_handler(struct epsec_conn *c, epsec_conn_drain_fn on_drain);
/* From on_msg, for a message that carries an fd (epsec_msg_carries_fd):
 * take it (the caller owns it from now), or -ENOENT when it was lost on
 * the way in (this process was out of fds). Not taken, it is closed when
 * on_msg returns. */
int epsec_conn_take_fd(struct epsec_conn *c);
void epsec_conn_reject(struct epsec_conn *c, uint32_t code, const char *why);
/* Close without callback. */
void epsec_conn_close(struct epsec_conn *c);
const char *epsec_conn_peer(const struct epsec_conn *c);
const char *epsec_conn_uri(const struct epsec_conn *c);
void epsec_conn_set_data(struct epsec_conn *c, void *data);
void *epsec_conn_get_data(const struct epsec_conn *c);

/* Link-level liveness, process-wide: a link that heard nothing for
 * ping_interval_ms sends PING (answered by the far link layer with PONG);
 * one silent for timeout_ms is closed with reason -ETIMEDOUT. Defaults
 * 1000 and 3000; tests shrink them. */
void epsec_link_set_liveness(unsigned ping_interval_ms, unsigned timeout_ms);

#endif
