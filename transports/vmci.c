/* SPDX-License-Identifier: MIT */
/* vmci:// transport: VMware VMCI sockets. On Linux these are AF_VSOCK over
 * the VMCI transport (vmw_vsock_vmci_transport on vmw_vmci), so this is
 * vsock:// (libcore/vsockio.c) plus what VMCI adds: the device must be
 * there, and the VMCI socket buffer sizes come from config. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <epsec/transport.h>
#include "stream.h"
#include "vsockio.h"

#define VMCI_DEVICE "/dev/vmci"

static const struct epsec_stream_ops vmci_ops = {
	.src = "vmci",
	.id_name = "cid",
	.allow_key = "allow_cids",
	.name_peer = epsec_vsock_name_peer,
};

/* Without the device AF_VSOCK would quietly use another transport (or
 * none): say plainly that this is not a VMware VM, after the options are
 * known to be valid so config errors come first. */
static int need_device(const struct epsec_host *host, const char *address,
		       const config_setting_t *opts, bool listening)
{
	struct epsec_vsock_opts o;
	uint32_t cid, port;
	int r;

	if (epsec_vsock_address(address, listening, &cid, &port) < 0)
		return 0; /* reported by epsec_vsock_listen/connect, which refuse it */
	r = epsec_vsock_opts(host, opts, listening, EPSEC_VSOCK_BUFFERS, &o);
	epsec_vsock_opts_free(&o);
	if (r)
		return r;
	if (access(VMCI_DEVICE, F_OK) < 0) {
		host->log(EPSEC_LOG_ERR, "vmci",
			  "vmci://%s: " VMCI_DEVICE " is absent: no VMware VMCI device on this "
			  "machine (not a VMware VM, or the vmw_vmci module is not loaded); "
			  "use vsock:// on other hypervisors", address);
		return -ENODEV;
	}
	return 0;
}

static int vmci_listen(const struct epsec_host *host, const char *address,
		       const config_setting_t *opts, struct epsec_link **out)
{
	int r = need_device(host, address, opts, true);

	return r ? r : epsec_vsock_listen(host, &vmci_ops, EPSEC_VSOCK_BUFFERS, address, opts, out);
}

static int vmci_connect(const struct epsec_host *host, const char *address,
			const config_setting_t *opts, struct epsec_link **out)
{
	int r = need_device(host, address, opts, false);

	return r ? r
		 : epsec_vsock_connect(host, &vmci_ops, EPSEC_VSOCK_BUFFERS, address, opts, out);
}

const struct epsec_transport_plugin epsec_transport_plugin = {
	.abi_major = EPSEC_TRANSPORT_ABI_MAJOR,
	.abi_minor = EPSEC_TRANSPORT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_transport_plugin),
	.scheme = "vmci",
	.description = "VMware VMCI sockets (AF_VSOCK over VMCI); needs /dev/vmci",
	.listen = vmci_listen,
	.connect = vmci_connect,
	.accept = epsec_stream_accept,
	.send = epsec_stream_send,
	.flush = epsec_stream_flush,
	.want_write = epsec_stream_want_write,
	.recv = epsec_stream_recv,
	.fd = epsec_stream_fd,
	.peer = epsec_stream_peer,
	.close = epsec_stream_close,
};
