/* SPDX-License-Identifier: MIT */
/* AF_VSOCK for the vsock and vmci transports: one copy of the address
 * parsing, options, listen and connect, so vsock.c and vmci.c only say
 * which options they take and what they require of the machine. */
#include "config.h"
#include "vsockio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define PORT_MAX (UINT32_MAX - 1)   /* -1U is VMADDR_PORT_ANY */
#define BUFFER_MAX (1LL << 32)

/* Decimal digits only, at most 10 of them, into *v. */
static bool decimal(const char *s, size_t n, uint64_t *v)
{
	size_t i;

	if (!n || n > 10)
		return false;
	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return true;
}

static bool is_word(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && !strncmp(s, w, n);
}

static int parse_cid(const char *s, size_t n, bool listening, uint32_t *cid)
{
	uint64_t v;

	if (is_word(s, n, "any") || is_word(s, n, "-1"))
		v = VMADDR_CID_ANY;
	else if (is_word(s, n, "host"))
		v = VMADDR_CID_HOST;
	else if (is_word(s, n, "local"))
		v = VMADDR_CID_LOCAL;
	else if (!decimal(s, n, &v) || v > UINT32_MAX)
		return -EINVAL;
	if (v == VMADDR_CID_ANY && !listening)
		return -EINVAL;
	*cid = (uint32_t)v;
	return 0;
}

int epsec_vsock_address(const char *address, bool listening, uint32_t *cid, uint32_t *port)
{
	const char *colon = address ? strchr(address, ':') : NULL;
	uint64_t p;

	if (!colon || !decimal(colon + 1, strlen(colon + 1), &p) || p > PORT_MAX)
		return -EINVAL;
	if (parse_cid(address, (size_t)(colon - address), listening, cid) < 0)
		return -EINVAL;
	*port = (uint32_t)p;
	return 0;
}

/* ------------------------------------------------------------ options */

static int check_keys(const struct epsec_host *host, const config_setting_t *opts,
		      bool listening, unsigned flags)
{
	static const char *const sets[4][6] = {
		{ "connect_timeout_ms", NULL },
		{ "allow_cids", NULL },
		{ "connect_timeout_ms", "buffer_size", "buffer_min_size", "buffer_max_size", NULL },
		{ "allow_cids", "buffer_size", "buffer_min_size", "buffer_max_size", NULL },
	};
	unsigned i = (listening ? 1u : 0u) + (flags & EPSEC_VSOCK_BUFFERS ? 2u : 0u);

	return host->conf_check_keys(opts, sets[i]);
}

/* min <= size <= max among those given, or the kernel would quietly clamp
 * one of them. */
static int check_buffers(const struct epsec_host *host, const config_setting_t *opts,
			 const struct epsec_vsock_opts *o)
{
	long long lo = o->buffer_min_size, mid = o->buffer_size, hi = o->buffer_max_size;
	const char *bad = NULL;

	if (lo >= 0 && mid >= 0 && lo > mid)
		bad = "buffer_min_size";
	else if (mid >= 0 && hi >= 0 && mid > hi)
		bad = "buffer_size";
	else if (lo >= 0 && hi >= 0 && lo > hi)
		bad = "buffer_min_size";
	if (!bad)
		return 0;
	return host->conf_error(config_setting_get_member(opts, bad),
				"expected buffer_min_size <= buffer_size <= buffer_max_size");
}

static int parse_buffers(const struct epsec_host *host, const config_setting_t *opts,
			 struct epsec_vsock_opts *o)
{
	int r = epsec_opt_int(host, opts, "buffer_size", 1, BUFFER_MAX, &o->buffer_size);

	if (!r)
		r = epsec_opt_int(host, opts, "buffer_min_size", 1, BUFFER_MAX, &o->buffer_min_size);
	if (!r)
		r = epsec_opt_int(host, opts, "buffer_max_size", 1, BUFFER_MAX, &o->buffer_max_size);
	return r ? r : check_buffers(host, opts, o);
}

int epsec_vsock_opts(const struct epsec_host *host, const config_setting_t *opts,
		     bool listening, unsigned flags, struct epsec_vsock_opts *o)
{
	int r;

	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = EPSEC_VSOCK_CONNECT_TIMEOUT_MS;
	o->buffer_size = o->buffer_min_size = o->buffer_max_size = -1;
	if ((r = check_keys(host, opts, listening, flags)))
		return r;
	if (listening)
		r = epsec_allow_parse(host, opts, "allow_cids", 0, UINT32_MAX, &o->allow);
	else
		r = epsec_opt_int(host, opts, "connect_timeout_ms", 1, 600000,
				  &o->connect_timeout_ms);
	if (!r && (flags & EPSEC_VSOCK_BUFFERS))
		r = parse_buffers(host, opts, o);
	if (r)
		epsec_vsock_opts_free(o);
	return r;
}

void epsec_vsock_opts_free(struct epsec_vsock_opts *o)
{
	epsec_allow_free(&o->allow);
}

static int set_u64(int fd, int opt, long long v)
{
	unsigned long long u = (unsigned long long)v;

	if (v < 0)
		return 0;
	return setsockopt(fd, AF_VSOCK, opt, &u, sizeof(u)) < 0 ? -errno : 0;
}

int epsec_vsock_set_buffers(int fd, const struct epsec_vsock_opts *o)
{
	int r = set_u64(fd, SO_VM_SOCKETS_BUFFER_MAX_SIZE, o->buffer_max_size);

	if (!r)
		r = set_u64(fd, SO_VM_SOCKETS_BUFFER_MIN_SIZE, o->buffer_min_size);
	if (!r)
		r = set_u64(fd, SO_VM_SOCKETS_BUFFER_SIZE, o->buffer_size);
	return r;
}

/* ------------------------------------------------------------ sockets */

void epsec_vsock_name_peer(int fd, char *buf, size_t len, long long *id)
{
	struct sockaddr_vm sa;
	socklen_t sl = sizeof(sa);

	*id = -1;
	if (getpeername(fd, (struct sockaddr *)&sa, &sl) < 0 || sa.svm_family != AF_VSOCK) {
		snprintf(buf, len, "unknown");
		return;
	}
	*id = sa.svm_cid;
	snprintf(buf, len, "cid=%u port=%u", sa.svm_cid, sa.svm_port);
}

static int new_socket(const struct epsec_host *host, const struct epsec_stream_ops *ops,
		      int flags)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);

	if (fd < 0 && errno == EAFNOSUPPORT)
		host->log(EPSEC_LOG_ERR, ops->src,
			  "this kernel has no AF_VSOCK (vsock module not loaded?)");
	return fd < 0 ? -errno : fd;
}

static struct sockaddr_vm vm_addr(uint32_t cid, uint32_t port)
{
	struct sockaddr_vm sa;

	memset(&sa, 0, sizeof(sa));
	sa.svm_family = AF_VSOCK;
	sa.svm_cid = cid;
	sa.svm_port = port;
	return sa;
}

static int bad_address(const struct epsec_host *host, const struct epsec_stream_ops *ops,
		       const char *address, bool listening)
{
	host->log(EPSEC_LOG_ERR, ops->src, "%s://%s: expected CID:PORT%s", ops->src, address,
		  listening ? " (CID a number, host, local or any)"
			    : " (CID a number, host or local)");
	return -EINVAL;
}

static int bind_listen(int fd, uint32_t cid, uint32_t port, const struct epsec_vsock_opts *o)
{
	struct sockaddr_vm sa = vm_addr(cid, port);
	int r = epsec_vsock_set_buffers(fd, o);

	if (r)
		return r;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0)
		return -errno;
	return 0;
}

int epsec_vsock_listen(const struct epsec_host *host, const struct epsec_stream_ops *ops,
		       unsigned flags, const char *address, const config_setting_t *opts,
		       struct epsec_link **out)
{
	struct epsec_vsock_opts o;
	struct epsec_link *l = NULL;
	uint32_t cid, port;
	int fd, r;

	if (epsec_vsock_address(address, true, &cid, &port) < 0)
		return bad_address(host, ops, address, true);
	if ((r = epsec_vsock_opts(host, opts, true, flags, &o)))
		return r;
	fd = new_socket(host, ops, SOCK_NONBLOCK);
	r = fd < 0 ? fd : bind_listen(fd, cid, port, &o);
	if (!r && !(l = epsec_stream_new(host, ops, fd, true)))
		r = -ENOMEM;
	if (r) {
		if (fd >= 0)
			close(fd);
		epsec_vsock_opts_free(&o);
		return r;
	}
	l->allow = o.allow;
	*out = l;
	return 0;
}

static int connect_fd(int fd, uint32_t cid, uint32_t port, const struct epsec_vsock_opts *o)
{
	struct sockaddr_vm sa = vm_addr(cid, port);
	struct timeval tv = { .tv_sec = o->connect_timeout_ms / 1000,
			      .tv_usec = (o->connect_timeout_ms % 1000) * 1000 };
	int r = epsec_vsock_set_buffers(fd, o);

	if (r)
		return r;
	if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv)) < 0)
		return -errno;
	return epsec_stream_connect_fd(fd, &sa, sizeof(sa));
}

int epsec_vsock_connect(const struct epsec_host *host, const struct epsec_stream_ops *ops,
			unsigned flags, const char *address, const config_setting_t *opts,
			struct epsec_link **out)
{
	struct epsec_vsock_opts o;
	struct epsec_link *l = NULL;
	uint32_t cid, port;
	int fd, r;

	if (epsec_vsock_address(address, false, &cid, &port) < 0)
		return bad_address(host, ops, address, false);
	if ((r = epsec_vsock_opts(host, opts, false, flags, &o)))
		return r;
	fd = new_socket(host, ops, 0);
	r = fd < 0 ? fd : connect_fd(fd, cid, port, &o);
	epsec_vsock_opts_free(&o);
	if (!r && !(l = epsec_stream_new(host, ops, fd, false)))
		r = -ENOMEM;
	if (r) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	*out = l;
	return 0;
}
