/* SPDX-License-Identifier: MIT */
/* vsock:// transport: AF_VSOCK stream sockets between a VM and its host (or
 * between VMs) on virtio, Hyper-V or loopback. All the work is shared with
 * vmci:// in libcore/vsockio.c; peers are named and allowed by CID. */
#include "config.h"

#include <epsec/transport.h>
#include "stream.h"
#include "vsockio.h"

static const struct epsec_stream_ops vsock_ops = {
	.src = "vsock",
	.id_name = "cid",
	.allow_key = "allow_cids",
	.name_peer = epsec_vsock_name_peer,
};

static int vsock_listen(const struct epsec_host *host, const char *address,
			const config_setting_t *opts, struct epsec_link **out)
{
	return epsec_vsock_listen(host, &vsock_ops, 0, address, opts, out);
}

static int vsock_connect(const struct epsec_host *host, const char *address,
			 const config_setting_t *opts, struct epsec_link **out)
{
	return epsec_vsock_connect(host, &vsock_ops, 0, address, opts, out);
}

const struct epsec_transport_plugin epsec_transport_plugin = {
	.abi_major = EPSEC_TRANSPORT_ABI_MAJOR,
	.abi_minor = EPSEC_TRANSPORT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_transport_plugin),
	.scheme = "vsock",
	.description = "AF_VSOCK stream sockets; peers named and allowed by CID",
	.listen = vsock_listen,
	.connect = vsock_connect,
	.accept = epsec_stream_accept,
	.send = epsec_stream_send,
	.flush = epsec_stream_flush,
	.want_write = epsec_stream_want_write,
	.recv = epsec_stream_recv,
	.fd = epsec_stream_fd,
	.peer = epsec_stream_peer,
	.close = epsec_stream_close,
};
