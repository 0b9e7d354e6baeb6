/* unix:// transport: AF_UNIX stream sockets carrying libcore's length-prefixed
 * frames. The peer is named by SO_PEERCRED, which the kernel vouches for,
 * so it can serve for authorization and not only for logs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <epsec/transport.h>
#include "frame.h"

#define SRC "unix"

struct epsec_link {
	const struct epsec_host *host;
	int fd;
	bool listening;
	struct epsec_framer fr;
	char peer[80];
	/* listener: its socket file, removed on close while it is still ours */
	char *path;
	dev_t dev;
	ino_t ino;
};

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
	size_t n = strlen(path);

	if (!n)
		return -EINVAL;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

/* libconfig reads `mode = 0660;` as decimal 660: take its digits as octal,
 * as an operator writing a file mode means; hex is taken as written. */
static int parse_mode(const struct epsec_host *host, const config_setting_t *opts, int *mode)
{
	static const char *const keys[] = { "mode", NULL };
	const config_setting_t *s;
	int v, oct = 0, mul = 1;
	int r = host->conf_check_keys(opts, keys);

	*mode = -1;
	if (r || !opts || !(s = config_setting_get_member(opts, "mode")))
		return r;
	if (config_setting_type(s) != CONFIG_TYPE_INT || (v = config_setting_get_int(s)) < 0)
		return host->conf_error(s, "expected a file mode such as 0660");
	if (config_setting_get_format(s) == CONFIG_FORMAT_HEX)
		oct = v;
	else
		for (; v; v /= 10, mul *= 8) {
			if (v % 10 > 7)
				return host->conf_error(s, "expected a file mode such as 0660");
			oct += (v % 10) * mul;
		}
	if (oct > 07777)
		return host->conf_error(s, "expected a file mode such as 0660");
	*mode = oct;
	return 0;
}

/* A socket file left by a dead daemon is removed; one with a live listener,
 * or anything that is not a socket, is left alone. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	r = r == 0 || errno != ECONNREFUSED ? -EADDRINUSE : 0;
	close(fd);
	if (!r && unlink(sa->sun_path) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

static struct epsec_link *link_new(const struct epsec_host *host, int fd)
{
	struct epsec_link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->host = host;
	l->fd = fd;
	epsec_framer_init(&l->fr, fd, EPSEC_FRAME_MAX);
	return l;
}

static void set_peer(struct epsec_link *l)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);

	if (getsockopt(l->fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) == 0)
		snprintf(l->peer, sizeof(l->peer), "uid=%u gid=%u pid=%d", (unsigned)uc.uid,
			 (unsigned)uc.gid, (int)uc.pid);
	else
		snprintf(l->peer, sizeof(l->peer), "unknown");
}

static int bind_listen(int fd, const struct sockaddr_un *sa, int mode)
{
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		return -errno;
	if ((mode >= 0 && chmod(sa->sun_path, (mode_t)mode) < 0) || listen(fd, SOMAXCONN) < 0) {
		int r = -errno;

		unlink(sa->sun_path);
		return r;
	}
	return 0;
}

static int unix_listen(const struct epsec_host *host, const char *address,
		       const config_setting_t *opts, struct epsec_link **out)
{
	struct sockaddr_un sa;
	struct epsec_link *l;
	struct stat st;
	int fd, mode, r;

	if ((r = parse_mode(host, opts, &mode)) || (r = fill_addr(address, &sa)) ||
	    (r = clear_stale(&sa)))
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = bind_listen(fd, &sa, mode);
	l = r ? NULL : link_new(host, fd);
	if (l)
		l->path = strdup(address);
	if (!r && (!l || !l->path)) {
		free(l);
		unlink(sa.sun_path);
		r = -ENOMEM;
	}
	if (r) {
		close(fd);
		return r;
	}
	l->listening = true;
	if (stat(address, &st) == 0) {
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	snprintf(l->peer, sizeof(l->peer), "listening");
	*out = l;
	return 0;
}

/* Synchronous: the far end is local, so connect either succeeds at once or
 * fails with a useful errno; non-blocking from then on. */
static int unix_connect(const struct epsec_host *host, const char *address,
			const config_setting_t *opts, struct epsec_link **out)
{
	static const char *const keys[] = { NULL };
	struct sockaddr_un sa;
	struct epsec_link *l;
	int fd, r;

	if ((r = host->conf_check_keys(opts, keys)) || (r = fill_addr(address, &sa)))
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	l = link_new(host, fd);
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	set_peer(l);
	*out = l;
	return 0;
}

static int unix_accept(struct epsec_link *listener, struct epsec_link **out)
{
	struct epsec_link *l;
	int fd;

	if (!listener->listening)
		return -EINVAL;
	for (;;) {
		fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		if (errno != EINTR && errno != ECONNABORTED)
			return -errno;
	}
	l = link_new(listener->host, fd);
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	set_peer(l);
	*out = l;
	return 0;
}

static int unix_send(struct epsec_link *l, const void *msg, size_t len)
{
	return l->listening ? -EINVAL : epsec_framer_send(&l->fr, msg, len);
}

static int unix_flush(struct epsec_link *l)
{
	return l->listening ? 0 : epsec_framer_flush(&l->fr);
}

static bool unix_want_write(struct epsec_link *l)
{
	return !l->listening && epsec_framer_want_write(&l->fr);
}

static int unix_recv(struct epsec_link *l, void **msg, size_t *len)
{
	return l->listening ? -EINVAL : epsec_framer_recv(&l->fr, msg, len);
}

static int unix_fd(struct epsec_link *l)
{
	return l->fd;
}

static const char *unix_peer(struct epsec_link *l)
{
	return l->peer;
}

static void unix_close(struct epsec_link *l)
{
	struct stat st;

	if (!l)
		return;
	if (l->path && stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	close(l->fd);
	epsec_framer_free(&l->fr);
	free(l->path);
	free(l);
}

const struct epsec_transport_plugin epsec_transport_plugin = {
	.abi_major = EPSEC_TRANSPORT_ABI_MAJOR,
	.abi_minor = EPSEC_TRANSPORT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_transport_plugin),
	.scheme = "unix",
	.description = "AF_UNIX stream sockets; peers named by SO_PEERCRED",
	.listen = unix_listen,
	.connect = unix_connect,
	.accept = unix_accept,
	.send = unix_send,
	.flush = unix_flush,
	.want_write = unix_want_write,
	.recv = unix_recv,
	.fd = unix_fd,
	.peer = unix_peer,
	.close = unix_close,
};
