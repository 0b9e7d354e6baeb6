/* SPDX-License-Identifier: MIT */
/* AF_VSOCK links for the vsock and vmci transports, which differ only in the
 * kernel transport underneath (virtio/hyper-v vs VMware VMCI) and in which
 * options they take: "CID:PORT" addresses, the allow_cids list, connect
 * timeout, socket buffer sizes. Linked into those plugins
 * (libepsec-vsock.la), on top of libcore/stream.c. */
#ifndef EPSEC_VSOCKIO_H
#define EPSEC_VSOCKIO_H

#include <stdbool.h>
#include <stdint.h>
#include "stream.h"

/* Options beyond allow_cids (listen) and connect_timeout_ms (connect). */
#define EPSEC_VSOCK_BUFFERS 0x1u /* buffer_size, buffer_min_size, buffer_max_size */

#define EPSEC_VSOCK_CONNECT_TIMEOUT_MS 2000

struct epsec_vsock_opts {
	struct epsec_allow allow;       /* listen: peer CIDs served (none: all) */
	long long connect_timeout_ms;   /* connect */
	long long buffer_size;          /* -1: the kernel's default */
	long long buffer_min_size;
	long long buffer_max_size;
};

/* "CID:PORT". CID: a number, "host" (2), "local" (1), and when listening
 * "any" (or -1) for every CID. PORT: 0..4294967294. 0 or -EINVAL. */
int epsec_vsock_address(const char *address, bool listening, uint32_t *cid, uint32_t *port);

/* Validate `opts` (NULL: defaults) for a listener or a connecting link;
 * `flags` says which extra options the transport takes. Unknown keys and
 * bad values go through host->conf_error. Free with epsec_vsock_opts_free. */
int epsec_vsock_opts(const struct epsec_host *host, const config_setting_t *opts,
		     bool listening, unsigned flags, struct epsec_vsock_opts *o);
void epsec_vsock_opts_free(struct epsec_vsock_opts *o);

/* Set the buffer sizes of `o` on an AF_VSOCK socket (max, then min, then
 * size, as the kernel clamps each against the others). 0 or -errno. */
int epsec_vsock_set_buffers(int fd, const struct epsec_vsock_opts *o);

/* Names a connected peer "cid=3 port=1234"; *id is its CID. */
void epsec_vsock_name_peer(int fd, char *buf, size_t len, long long *id);

/* The transport's listen and connect, given its ops (log source and so
 * on) and flags. connect is synchronous, bounded by connect_timeout_ms. */
int epsec_vsock_listen(const struct epsec_host *host, const struct epsec_stream_ops *ops,
		       unsigned flags, const char *address, const config_setting_t *opts,
		       struct epsec_link **out);
int epsec_vsock_connect(const struct epsec_host *host, const struct epsec_stream_ops *ops,
			unsigned flags, const char *address, const config_setting_t *opts,
			struct epsec_link **out);

#endif
