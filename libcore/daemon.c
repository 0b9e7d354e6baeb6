/* SPDX-License-Identifier: MIT */
/* What every epsec daemon does the same way: its command line, its version
 * line, detaching, and signals. Signals arrive through a signalfd in the
 * loop, so no handler ever runs inside some thread's critical section. */
#include "config.h"
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <epsec/version.h>

#include "log.h"

#define EPSEC_LOG_SRC "daemon"

#define EX_USAGE 64 /* sysexits.h */

/* One per process: signals are process-wide. */
static struct {
	int fd;
	struct epsec_loop *loop;
	epsec_daemon_hup_fn on_hup;
	void *arg;
} sig = { .fd = -1 };

void epsec_daemon_print_version(const char *program)
{
	printf("%s %s (build %s)\n", program, EPSEC_VERSION, EPSEC_BUILD_ID);
	fflush(stdout);
}

static void usage(FILE *f, const char *program, const char *default_conf)
{
	fprintf(f,
		"Usage: %s [-c FILE] [-f] [-t] [-v] [-h]\n"
		"  -c FILE  configuration file (default %s)\n"
		"  -f       stay in the foreground\n"
		"  -t       check the configuration (every error, FILE:LINE: KEY), print\n"
		"           the effective settings with defaults filled in, then exit\n"
		"           (0 good, 78 bad)\n"
		"  -v       print the version and build, then exit\n"
		"  -h       print this help, then exit\n",
		program, default_conf);
}

void epsec_daemon_args(struct epsec_daemon *d, int argc, char **argv, const char *program,
		       const char *default_conf)
{
	int opt;

	d->program = program;
	d->conf_path = default_conf;
	d->foreground = false;
	d->test_config = false;
	optind = 1;
	while ((opt = getopt(argc, argv, "c:ftvh")) != -1) {
		switch (opt) {
		case 'c':
			d->conf_path = optarg;
			break;
		case 'f':
			d->foreground = true;
			break;
		case 't':
			d->test_config = true;
			break;
		case 'v':
			epsec_daemon_print_version(program);
			exit(0);
		case 'h':
			usage(stdout, program, default_conf);
			exit(0);
		default:
			usage(stderr, program, default_conf);
			exit(EX_USAGE);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument: %s\n", program, argv[optind]);
		usage(stderr, program, default_conf);
		exit(EX_USAGE);
	}
}

static void handled_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

int epsec_daemon_block_signals(void)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t set;
	int ret;

	handled_signals(&set);
	ret = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (ret)
		return -ret;
	/* A peer that goes away mid-write is an EPIPE for that link only. */
	if (sigaction(SIGPIPE, &ign, NULL) < 0)
		return -errno;
	return 0;
}

static int detach(void)
{
	pid_t pid = fork();
	int null;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0 || chdir("/") < 0)
		return -errno;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return -errno;
	/* dup2 clears O_CLOEXEC on the copies, as stdio needs. */
	if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) {
		close(null);
		return -errno;
	}
	if (null > 2)
		close(null);
	return 0;
}

static void signal_ready(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			EPSEC_INFO("%s received: stopping", strsignal((int)si.ssi_signo));
			epsec_loop_stop(loop);
			break;
		case SIGHUP:
			EPSEC_INFO("SIGHUP received");
			if (sig.on_hup)
				sig.on_hup(sig.arg);
			break;
		}
	}
}

static int watch_signals(struct epsec_loop *loop)
{
	sigset_t set;
	int ret;

	/* Started again (tests): an earlier loop may be gone already. */
	if (sig.fd >= 0) {
		if (sig.loop == loop)
			epsec_loop_del_fd(loop, sig.fd);
		close(sig.fd);
		sig.fd = -1;
	}
	ret = epsec_daemon_block_signals();
	if (ret < 0)
		return ret;
	handled_signals(&set);
	sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig.fd < 0)
		return -errno;
	ret = epsec_loop_add_fd(loop, sig.fd, EPSEC_LOOP_IN, signal_ready, NULL);
	if (ret < 0) {
		close(sig.fd);
		sig.fd = -1;
		return ret;
	}
	sig.loop = loop;
	return 0;
}

int epsec_daemon_start(struct epsec_daemon *d, struct epsec_loop *loop,
		       epsec_daemon_hup_fn on_hup, void *arg)
{
	int ret;

	if (!d->foreground) {
		ret = detach();
		if (ret < 0)
			return ret;
	}
	sig.on_hup = on_hup;
	sig.arg = arg;
	return watch_signals(loop);
}

/* The sd_notify protocol is one datagram to $NOTIFY_SOCKET: a few lines of
 * our own instead of a dependency on libsystemd. */
static void sd_notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
		EPSEC_DBG("sd_notify %s: %s", state, strerror(errno));
	close(fd);
}

static void watchdog_pet(struct epsec_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	sd_notify_send("WATCHDOG=1");
}

void epsec_daemon_ready(struct epsec_loop *loop)
{
	const char *usec = getenv("WATCHDOG_USEC");
	unsigned long long interval = usec ? strtoull(usec, NULL, 10) : 0;

	sd_notify_send("READY=1");
	epsec_log_started();
	/* Petting from the loop means a wedged loop stops the petting, and
	 * systemd restarts the daemon: the watchdog watches what matters. */
	if (interval >= 2000)
		epsec_loop_add_timer(loop, (unsigned)(interval / 2000), watchdog_pet, NULL);
}

void epsec_daemon_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		EPSEC_WARN("cannot raise the open file limit to %llu: %s",
			   (unsigned long long)rl.rlim_max, strerror(errno));
}
