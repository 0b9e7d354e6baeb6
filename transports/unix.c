/* SPDX-License-Identifier: MIT */
/* unix:// transport: AF_UNIX stream sockets carrying libcore's length-prefixed
 * frames (libcore/stream.c). The peer is named by SO_PEERCRED, which the
 * kernel vouches for, so it serves for authorization (allow_uids), not only
 * for logs. It alone passes file descriptors (SCM_RIGHTS): a scanner on the
 * same host reads the file itself instead of asking for its bytes. */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <epsec/transport.h>
#include "stream.h"

/* The listener's socket file, removed on close while it is still ours. */
struct sockfile {
	char *path;
	dev_t dev;
	ino_t ino;
};

/* libconfig reads `mode = 0660;` as decimal 660: take its digits as octal,
 * as an operator writing a file mode means; hex is taken as written. */
static int parse_mode(const struct epsec_host *host, const config_setting_t *opts, int *mode)
{
	const config_setting_t *s;
	int v, oct = 0, mul = 1;

	*mode = -1;
	if (!opts || !(s = config_setting_get_member(opts, "mode")))
		return 0;
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

static void name_peer(int fd, char *buf, size_t len, long long *id)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);

	*id = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) < 0) {
		snprintf(buf, len, "unknown");
		return;
	}
	*id = uc.uid;
	snprintf(buf, len, "uid=%u gid=%u pid=%d", (unsigned)uc.uid, (unsigned)uc.gid,
		 (int)uc.pid);
}

static void unix_on_close(struct epsec_link *l)
{
	struct sockfile *sf = l->priv;
	struct stat st;

	if (!sf)
		return;
	if (stat(sf->path, &st) == 0 && st.st_dev == sf->dev && st.st_ino == sf->ino)
		unlink(sf->path);
	free(sf->path);
	free(sf);
}

static const struct epsec_stream_ops unix_ops = {
	.src = "unix",
	.id_name = "uid",
	.allow_key = "allow_uids",
	.pass_fds = true,
	.name_peer = name_peer,
	.on_close = unix_on_close,
};

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

/* The socket file, remembered so close removes it only while it is ours. */
static struct sockfile *sockfile_new(const char *path)
{
	struct sockfile *sf = calloc(1, sizeof(*sf));
	struct stat st;

	if (!sf || !(sf->path = strdup(path))) {
		free(sf);
		return NULL;
	}
	if (stat(path, &st) == 0) {
		sf->dev = st.st_dev;
		sf->ino = st.st_ino;
	}
	return sf;
}

static int allow_add(struct epsec_allow *allow, long long uid)
{
	long long *v = realloc(allow->v, (allow->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	v[allow->n++] = uid;
	allow->v = v;
	return 0;
}

static long long uid_of(const char *name)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &found) != 0 || !found)
		return -1;
	return (long long)pw.pw_uid;
}

/* allow_users: account names, resolved when the socket is made, beside
 * allow_uids. A name with no account is skipped and said; the list
 * never turns into "everyone" because of it (uid -1 is nobody's). */
static int allow_users(const struct epsec_host *host, const config_setting_t *opts,
		       struct epsec_allow *allow)
{
	const config_setting_t *s = opts ? config_setting_get_member(opts, "allow_users") : NULL;
	char **names;
	size_t n;
	int r;

	if (!s)
		return 0;
	if ((r = host->conf_strlist(s, "user names", &names, &n)))
		return r;
	for (size_t i = 0; i < n && !r; i++) {
		long long uid = uid_of(names[i]);

		if (uid < 0)
			host->log(EPSEC_LOG_INFO, "unix", "allow_users: no user \"%s\" here; skipped",
				  names[i]);
		else
			r = allow_add(allow, uid);
	}
	free(names);
	return r ? r : allow_add(allow, -1);
}

static int listen_opts(const struct epsec_host *host, const config_setting_t *opts, int *mode,
		       struct epsec_allow *allow)
{
	static const char *const keys[] = { "mode", "allow_uids", "allow_users", NULL };
	int r = host->conf_check_keys(opts, keys);

	if (!r)
		r = parse_mode(host, opts, mode);
	if (!r)
		r = epsec_allow_parse(host, opts, "allow_uids", 0, UINT32_MAX - 1, allow);
	if (!r)
		r = allow_users(host, opts, allow);
	return r;
}

static int unix_listen(const struct epsec_host *host, const char *address,
		       const config_setting_t *opts, struct epsec_link **out)
{
	struct epsec_allow allow = { 0 };
	struct sockaddr_un sa;
	struct epsec_link *l;
	int fd, mode, r;

	if ((r = listen_opts(host, opts, &mode, &allow)) || (r = fill_addr(address, &sa)) ||
	    (r = clear_stale(&sa)))
		goto fail;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = bind_listen(fd, &sa, mode))) {
		close(fd);
		goto fail;
	}
	l = epsec_stream_new(host, &unix_ops, fd, true);
	if (l)
		l->priv = sockfile_new(address);
	if (!l || !l->priv) {
		unlink(sa.sun_path);
		if (l)
			epsec_stream_close(l);
		else
			close(fd);
		r = -ENOMEM;
		goto fail;
	}
	l->allow = allow;
	*out = l;
	return 0;
fail:
	epsec_allow_free(&allow);
	return r;
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
	r = epsec_stream_connect_fd(fd, &sa, sizeof(sa));
	l = r ? NULL : epsec_stream_new(host, &unix_ops, fd, false);
	if (!l) {
		close(fd);
		return r ? r : -ENOMEM;
	}
	*out = l;
	return 0;
}

const struct epsec_transport_plugin epsec_transport_plugin = {
	.abi_major = EPSEC_TRANSPORT_ABI_MAJOR,
	.abi_minor = EPSEC_TRANSPORT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_transport_plugin),
	.scheme = "unix",
	.description = "AF_UNIX stream sockets; peers named by SO_PEERCRED",
	.listen = unix_listen,
	.connect = unix_connect,
	.accept = epsec_stream_accept,
	.send = epsec_stream_send,
	.flush = epsec_stream_flush,
	.want_write = epsec_stream_want_write,
	.recv = epsec_stream_recv,
	.fd = epsec_stream_fd,
	.peer = epsec_stream_peer,
	.close = epsec_stream_close,
	.send_fd = epsec_stream_send_fd,
	.recv_fd = epsec_stream_recv_fd,
};
