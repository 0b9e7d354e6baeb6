/* SPDX-License-Identifier: MIT */
/* epsecctl keygen NAME: a ZeroMQ CURVE key pair for tcp:// links, written
 * as NAME.key (both keys, 0600) and NAME.pub (public key, 0644) in czmq's
 * zcert layout, which transports/curve.c reads. Never overwrites a key. */
#include "config.h"
#include "epsecctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define EX_FAIL 1

static void stamp(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	if (!localtime_r(&now, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "?");
}

/* The zcert text: a secret file carries both keys, a public one only the
 * public key. */
static int format_cert(char *buf, size_t len, const char *pub, const char *sec)
{
	char when[32];
	int n;

	stamp(when, sizeof(when));
	n = snprintf(buf, len,
		     "#   ****  Generated on %s by epsecctl keygen  ****\n"
		     "#   ZeroMQ CURVE %s Certificate\n"
		     "#   %s\n"
		     "\n"
		     "metadata\n"
		     "curve\n"
		     "    public-key = \"%s\"\n"
		     "%s%s%s",
		     when, sec ? "**Secret**" : "Public",
		     sec ? "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
			 : "Give this file to the peer that must let this key in.",
		     pub, sec ? "    secret-key = \"" : "", sec ? sec : "", sec ? "\"\n" : "");
	return n > 0 && (size_t)n < len ? n : -1;
}

/* Create `path` (never an existing one) with exactly `mode`, whatever the
 * umask says. 0 or -errno. */
static int write_new(const char *path, mode_t mode, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode), r = 0;

	if (fd < 0)
		return -errno;
	errno = 0;
	if (fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (r)
		unlink(path);
	return r;
}

static int refuse_existing(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		fprintf(stderr, "epsecctl: keygen: %s exists; not overwriting a key\n", path);
		return -EEXIST;
	}
	return 0;
}

static int write_pair(const char *keyf, const char *pubf, const char *pub, const char *sec)
{
	char text[1024];
	int n, r;

	n = format_cert(text, sizeof(text), pub, sec);
	r = n < 0 ? -ENOMEM : write_new(keyf, 0600, text, (size_t)n);
	explicit_bzero(text, sizeof(text));
	if (r) {
		fprintf(stderr, "epsecctl: keygen: %s: %s\n", keyf, strerror(-r));
		return r;
	}
	n = format_cert(text, sizeof(text), pub, NULL);
	r = n < 0 ? -ENOMEM : write_new(pubf, 0644, text, (size_t)n);
	if (r) {
		fprintf(stderr, "epsecctl: keygen: %s: %s\n", pubf, strerror(-r));
		unlink(keyf);
	}
	return r;
}

int epsecctl_keygen(const struct epsecctl_env *env, int argc, char **argv)
{
	char keyf[PATH_MAX], pubf[PATH_MAX], pub[41], sec[41];
	int r;

	(void)env;
	if (argc != 2 || !argv[1][0] || argv[1][0] == '-') {
		fprintf(stderr, "usage: epsecctl keygen NAME   (writes NAME.key and NAME.pub)\n");
		return EPSECCTL_EX_USAGE;
	}
	if ((size_t)snprintf(keyf, sizeof(keyf), "%s.key", argv[1]) >= sizeof(keyf) ||
	    (size_t)snprintf(pubf, sizeof(pubf), "%s.pub", argv[1]) >= sizeof(pubf)) {
		fprintf(stderr, "epsecctl: keygen: %s: name too long\n", argv[1]);
		return EPSECCTL_EX_USAGE;
	}
	if (refuse_existing(keyf) || refuse_existing(pubf))
		return EX_FAIL;
	if (zmq_curve_keypair(pub, sec) < 0) {
		fprintf(stderr, "epsecctl: keygen: %s\n", zmq_strerror(errno));
		return EX_FAIL;
	}
	r = write_pair(keyf, pubf, pub, sec);
	explicit_bzero(sec, sizeof(sec));
	if (r)
		return EX_FAIL;
	printf("%s: secret key (mode 0600, keep it on this host)\n"
	       "%s: public key %s (give it to the other side)\n", keyf, pubf, pub);
	return 0;
}
