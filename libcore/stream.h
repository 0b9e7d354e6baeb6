/* SPDX-License-Identifier: MIT */
/* Stream-socket links shared by the unix, vsock and vmci transports: framing
 * over a non-blocking socket, and accept with an allow-list on the id the
 * kernel vouches for (SO_PEERCRED uid, AF_VSOCK CID). Linked into those
 * plugins (libepsec-stream.la): no globals, logging through the host. */
#ifndef EPSEC_STREAM_H
#define EPSEC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <epsec/transport.h>
#include "frame.h"

/* Ids a listener serves; n == 0 means everyone. */
struct epsec_allow {
	size_t n;
	long long *v;
};

struct epsec_link;

/* What differs between the address families. */
struct epsec_stream_ops {
	const char *src;        /* log source: "unix", "vsock", "vmci" */
	const char *id_name;    /* what the allow-list holds: "uid", "cid" */
	const char *allow_key;  /* its option: "allow_uids" */
	bool pass_fds;          /* SCM_RIGHTS works (AF_UNIX) */
	/* Name the peer of a connected socket ("uid=0 gid=0 pid=42") and give
	 * its id, or -1 when the kernel does not say. */
	void (*name_peer)(int fd, char *buf, size_t len, long long *id);
	/* Listener teardown beyond closing the socket (the unix socket file). */
	void (*on_close)(struct epsec_link *l);
};

struct epsec_link {
	const struct epsec_host *host;
	const struct epsec_stream_ops *ops;
	int fd;
	bool listening;
	struct epsec_framer fr;
	char peer[96];
	struct epsec_allow allow;   /* listener */
	/* listener: refusals logged in this 10 s window, and those not */
	uint64_t log_window;
	unsigned logged, unlogged;
	void *priv;                 /* the transport's own (freed by on_close) */
};

/* A link over `fd` (non-blocking, owned from now on); connected links get
 * their peer named. NULL when out of memory (fd left open). */
struct epsec_link *epsec_stream_new(const struct epsec_host *host,
				    const struct epsec_stream_ops *ops, int fd, bool listening);

/* The integer list `key` of `opts` (absent: everyone) with each entry in
 * [min, max]; errors through host->conf_error. */
int epsec_allow_parse(const struct epsec_host *host, const config_setting_t *opts,
		      const char *key, long long min, long long max, struct epsec_allow *out);
bool epsec_allow_has(const struct epsec_allow *a, long long id);
void epsec_allow_free(struct epsec_allow *a);

/* An integer option in [min, max]; *out untouched when absent. */
int epsec_opt_int(const struct epsec_host *host, const config_setting_t *opts,
		  const char *key, long long min, long long max, long long *out);

/* Blocking connect of `fd`, then non-blocking. 0 or -errno. */
int epsec_stream_connect_fd(int fd, const void *sa, unsigned salen);

/* The transport ops. accept refuses (logs and closes) peers whose id is
 * not in the listener's allow-list, and goes on with the next one. */
int epsec_stream_accept(struct epsec_link *listener, struct epsec_link **out);
int epsec_stream_send(struct epsec_link *l, const void *msg, size_t len);
int epsec_stream_flush(struct epsec_link *l);
bool epsec_stream_want_write(struct epsec_link *l);
int epsec_stream_recv(struct epsec_link *l, void **msg, size_t *len);
/* For ops with pass_fds (-EOPNOTSUPP otherwise). */
int epsec_stream_send_fd(struct epsec_link *l, const void *msg, size_t len, int fd);
int epsec_stream_recv_fd(struct epsec_link *l);
int epsec_stream_fd(struct epsec_link *l);
const char *epsec_stream_peer(struct epsec_link *l);
void epsec_stream_close(struct epsec_link *l);

#endif
