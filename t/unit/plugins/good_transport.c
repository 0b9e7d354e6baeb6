/* SPDX-License-Identifier: MIT */
/* Test transport for the scheme "epsectest": a complete descriptor whose
 * operations refuse politely. Built as epsectest.la (found by its scheme)
 * and as otherscheme.la (which the loader must refuse for "otherscheme"). */
#include "config.h"

#include <errno.h>

#include <epsec/transport.h>

static int t_listen(const struct epsec_host *host, const char *address,
		    const config_setting_t *opts, struct epsec_link **out)
{
	return -EOPNOTSUPP;
}

static int t_connect(const struct epsec_host *host, const char *address,
		     const config_setting_t *opts, struct epsec_link **out)
{
	return -ECONNREFUSED;
}

static int t_accept(struct epsec_link *listener, struct epsec_link **out)
{
	return -EAGAIN;
}

static int t_send(struct epsec_link *link, const void *msg, size_t len)
{
	return -EPIPE;
}

static int t_flush(struct epsec_link *link)
{
	return 0;
}

static bool t_want_write(struct epsec_link *link)
{
	return false;
}

static int t_recv(struct epsec_link *link, void **msg, size_t *len)
{
	return -EAGAIN;
}

static int t_fd(struct epsec_link *link)
{
	return -1;
}

static const char *t_peer(struct epsec_link *link)
{
	return "nobody";
}

static void t_close(struct epsec_link *link)
{
}

const struct epsec_transport_plugin epsec_transport_plugin = {
	.abi_major = EPSEC_TRANSPORT_ABI_MAJOR,
	.abi_minor = EPSEC_TRANSPORT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_transport_plugin),
	.scheme = "epsectest",
	.description = "unit test transport",
	.listen = t_listen,
	.connect = t_connect,
	.accept = t_accept,
	.send = t_send,
	.flush = t_flush,
	.want_write = t_want_write,
	.recv = t_recv,
	.fd = t_fd,
	.peer = t_peer,
	.close = t_close,
};
