/* SPDX-License-Identifier: MIT */
/* Stream-socket links for the unix, vsock and vmci transports: one copy of
 * the framing, accept and allow-list code, so each of those plugins only
 * knows its address family. */
#include "config.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOG_BURST 10

static struct epsec_link *link_alloc(const struct epsec_host *host,
				      const struct epsec_stream_ops *ops, int fd, bool listening)
{
	struct epsec_link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->host = host;
	l->ops = ops;
	l->fd = fd;
	l->listening = listening;
	epsec_framer_init(&l->fr, fd, EPSEC_FRAME_MAX);
	l->fr.pass_fds = ops->pass_fds && !listening;
	return l;
}

struct epsec_link *epsec_stream_new(const struct epsec_host *host,
				    const struct epsec_stream_ops *ops, int fd, bool listening)
{
	struct epsec_link *l = link_alloc(host, ops, fd, listening);
	long long id;

	if (!l)
		return NULL;
	if (listening)
		snprintf(l->peer, sizeof(l->peer), "listening");
	else
		ops->name_peer(fd, l->peer, sizeof(l->peer), &id);
	return l;
}

/* ------------------------------------------------------------ options */

static bool is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

static int check_list(const struct epsec_host *host, const config_setting_t *s,
		      long long min, long long max)
{
	int i, n = config_setting_length(s), r = 0;

	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return host->conf_error(s, "expected a list of integers %lld..%lld such as [ 0, 998 ]",
					min, max);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		long long v = is_int(e) ? config_setting_get_int64(e) : min - 1;

		if (v < min || v > max)
			r = host->conf_error(e, "expected an integer %lld..%lld", min, max);
	}
	if (!r && n == 0)
		r = host->conf_error(s, "an empty list would refuse every peer; "
					"remove the key to allow all");
	return r;
}

int epsec_allow_parse(const struct epsec_host *host, const config_setting_t *opts,
		      const char *key, long long min, long long max, struct epsec_allow *out)
{
	const config_setting_t *s = opts ? config_setting_get_member(opts, key) : NULL;
	int i, n, r;

	out->n = 0;
	out->v = NULL;
	if (!s)
		return 0;
	if ((r = check_list(host, s, min, max)))
		return r;
	n = config_setting_length(s);
	out->v = calloc((size_t)n, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		out->v[i] = config_setting_get_int64(config_setting_get_elem(s, (unsigned)i));
	out->n = (size_t)n;
	return 0;
}

bool epsec_allow_has(const struct epsec_allow *a, long long id)
{
	size_t i;

	if (!a->n)
		return true;
	for (i = 0; i < a->n; i++)
		if (a->v[i] == id)
			return true;
	return false;
}

void epsec_allow_free(struct epsec_allow *a)
{
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

int epsec_opt_int(const struct epsec_host *host, const config_setting_t *opts,
		  const char *key, long long min, long long max, long long *out)
{
	const config_setting_t *s = opts ? config_setting_get_member(opts, key) : NULL;
	long long v;

	if (!s)
		return 0;
	v = is_int(s) ? config_setting_get_int64(s) : min - 1;
	if (v < min || v > max)
		return host->conf_error(s, "expected an integer %lld..%lld", min, max);
	*out = v;
	return 0;
}

/* ------------------------------------------------------------ connect/accept */

int epsec_stream_connect_fd(int fd, const void *sa, unsigned salen)
{
	int fl;

	while (connect(fd, sa, salen) < 0)
		if (errno != EINTR)
			return -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Next pending connection: fd, -EAGAIN when none, or -errno. */
static int next_fd(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0)
			return fd;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		if (errno != EINTR && errno != ECONNABORTED)
			return -errno;
	}
}

/* A peer that connects in a loop must not flood the log: at most
 * LOG_BURST lines per 10 s, the next one saying how many were left out. */
static bool log_refusal(struct epsec_link *l, unsigned *unlogged)
{
	struct timespec ts;
	uint64_t window;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	window = (uint64_t)ts.tv_sec / 10;
	if (window != l->log_window) {
		l->log_window = window;
		l->logged = 0;
	}
	if (l->logged >= LOG_BURST) {
		l->unlogged++;
		return false;
	}
	l->logged++;
	*unlogged = l->unlogged;
	l->unlogged = 0;
	return true;
}

/* The refusal is this layer's to log: the host never sees the peer. */
static bool admit(struct epsec_link *listener, int fd, char *peer, size_t len)
{
	const struct epsec_stream_ops *ops = listener->ops;
	long long id = -1;
	unsigned unlogged;
	char more[64] = "";

	ops->name_peer(fd, peer, len, &id);
	if (epsec_allow_has(&listener->allow, id))
		return true;
	if (!log_refusal(listener, &unlogged))
		return false;
	if (unlogged)
		snprintf(more, sizeof(more), " (and %u refused before, not logged)", unlogged);
	listener->host->log(EPSEC_LOG_WARNING, ops->src, "refused peer %s: %s %lld is not in %s%s",
			    peer, ops->id_name, id, ops->allow_key, more);
	return false;
}

int epsec_stream_accept(struct epsec_link *listener, struct epsec_link **out)
{
	char peer[sizeof(listener->peer)];
	struct epsec_link *l;
	int fd;

	if (!listener->listening)
		return -EINVAL;
	for (;;) {
		fd = next_fd(listener->fd);
		if (fd < 0)
			return fd;
		if (admit(listener, fd, peer, sizeof(peer)))
			break;
		close(fd);
	}
	l = link_alloc(listener->host, listener->ops, fd, false);
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	memcpy(l->peer, peer, sizeof(l->peer));
	*out = l;
	return 0;
}

/* ------------------------------------------------------------ the rest */

int epsec_stream_send(struct epsec_link *l, const void *msg, size_t len)
{
	return l->listening ? -EINVAL : epsec_framer_send(&l->fr, msg, len);
}

int epsec_stream_flush(struct epsec_link *l)
{
	return l->listening ? 0 : epsec_framer_flush(&l->fr);
}

bool epsec_stream_want_write(struct epsec_link *l)
{
	return !l->listening && epsec_framer_want_write(&l->fr);
}

int epsec_stream_recv(struct epsec_link *l, void **msg, size_t *len)
{
	return l->listening ? -EINVAL : epsec_framer_recv(&l->fr, msg, len);
}

int epsec_stream_send_fd(struct epsec_link *l, const void *msg, size_t len, int fd)
{
	if (l->listening || !l->fr.pass_fds)
		return -EOPNOTSUPP;
	return epsec_framer_send_fd(&l->fr, msg, len, fd);
}

int epsec_stream_recv_fd(struct epsec_link *l)
{
	return l->fr.pass_fds ? epsec_framer_recv_fd(&l->fr) : -EAGAIN;
}

int epsec_stream_fd(struct epsec_link *l)
{
	return l->fd;
}

const char *epsec_stream_peer(struct epsec_link *l)
{
	return l->peer;
}

void epsec_stream_close(struct epsec_link *l)
{
	if (!l)
		return;
	if (l->ops->on_close)
		l->ops->on_close(l);
	close(l->fd);
	epsec_framer_free(&l->fr);
	epsec_allow_free(&l->allow);
	free(l);
}
