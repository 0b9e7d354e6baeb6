/* SPDX-License-Identifier: MIT */
/* The transport plugin ABI: one plugin per URI scheme (unix, tcp, vsock,
 * vmci). A transport moves whole messages; it knows nothing of what they
 * mean. Every call is non-blocking and made from one thread at a time per
 * link (the owning event loop). */
#ifndef EPSEC_TRANSPORT_H
#define EPSEC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <epsec/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Transport ABI.
 * 1.0  first version.
 * 1.1  send_fd and recv_fd (file descriptor passing; NULL when the
 *      transport cannot). The host reads them only from a 1.1 plugin. */
#define EPSEC_TRANSPORT_ABI_MAJOR 1
#define EPSEC_TRANSPORT_ABI_MINOR 1

#define EPSEC_TRANSPORT_SYMBOL "epsec_transport_plugin"

/* Hard ceiling for one message on any transport; stream transports refuse
 * a frame header announcing more. */
#define EPSEC_FRAME_MAX (4u * 1024u * 1024u)

struct epsec_link; /* defined by each transport */

struct epsec_transport_plugin {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;
	const char *scheme; /* "unix" for unix://... */
	const char *description;

	/* `address` is the URI without "scheme://". `opts` is the endpoint's
	 * libconfig group or NULL. Return 0 or a negative errno. */
	int (*listen)(const struct epsec_host *host, const char *address,
		      const config_setting_t *opts, struct epsec_link **out);
	int (*connect)(const struct epsec_host *host, const char *address,
		       const config_setting_t *opts, struct epsec_link **out);
	/* A new peer of a listening link, or -EAGAIN when none is pending. A
	 * transport that multiplexes peers over one socket (ZeroMQ) also
	 * delivers their pending messages here, so the host calls accept
	 * until -EAGAIN whenever the listener's fd is readable. */
	int (*accept)(struct epsec_link *listener, struct epsec_link **out);
	/* Queue one whole message. 0: accepted (possibly still buffered);
	 * -ENOBUFS: the peer is not reading (caller decides); -EMSGSIZE: over
	 * EPSEC_FRAME_MAX; other negative errno: the link is dead. */
	int (*send)(struct epsec_link *link, const void *msg, size_t len);
	/* Push buffered output. 0 all written, -EAGAIN some left, <0 dead. */
	int (*flush)(struct epsec_link *link);
	/* True while output is buffered (the host then polls for writability). */
	bool (*want_write)(struct epsec_link *link);
	/* One whole message into *msg (malloc'd, caller frees with free()).
	 * 0: a message; -EAGAIN: none now; -ECONNRESET: peer closed;
	 * -EMSGSIZE / -EPROTO: hostile or broken framing (drop the peer). */
	int (*recv)(struct epsec_link *link, void **msg, size_t *len);
	/* Pollable fd: readable when recv/accept may have something. It may
	 * be edge-triggered (ZeroMQ), so the host drains recv to -EAGAIN. */
	int (*fd)(struct epsec_link *link);
	/* Names the remote end, for authorization and logs ("uid=0 pid=42"). */
	const char *(*peer)(struct epsec_link *link);
	void (*close)(struct epsec_link *link);

	/* 1.1. As send, with a duplicate of `fd` passed to the peer alongside
	 * the message's first byte; the caller keeps its own fd. Only starts
	 * on an empty output buffer: -EAGAIN when the message cannot start
	 * now (nothing sent), -ETOOMANYREFS when this user has too many fds
	 * in flight (the caller may send it without the fd). */
	int (*send_fd)(struct epsec_link *link, const void *msg, size_t len, int fd);
	/* 1.1. The oldest fd the peer passed and nobody took yet (the caller
	 * owns it): it came with a message recv has already returned.
	 * -EAGAIN when none is waiting; -ENOENT when one was passed but lost
	 * on the way in (this process was out of fds). */
	int (*recv_fd)(struct epsec_link *link);
};

#ifdef __cplusplus
}
#endif
#endif
