/* SPDX-License-Identifier: MIT */
/* Logging for every epsec program. The level and destination are atomics so
 * the agent can change them at run time (DEBUG_LEVEL / DEBUG_DEST re-read
 * from vsep.conf) while worker threads log. */
#include "config.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static atomic_int log_level = EPSEC_LOG_WARNING;
static atomic_int log_dest = EPSEC_DEST_STDERR;
static _Atomic(epsec_log_forward_fn) log_forward;
static const char *log_program = "epsec";
static pthread_once_t syslog_once = PTHREAD_ONCE_INIT;
/* Until the daemon serves, its errors go to stderr too, whatever
 * DEBUG_DEST says: a start that fails after the file was read (a socket in
 * use) must reach the terminal or the init script that started it, not
 * only a syslog nobody is reading at that moment. */
static atomic_bool starting = true;

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

static void open_syslog(void)
{
	openlog(log_program, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void epsec_log_open(const char *program, enum epsec_log_dest dest, int level)
{
	log_program = program;
	epsec_log_set_dest(dest);
	epsec_log_set_level(level);
}

void epsec_log_set_level(int level)
{
	if (level < EPSEC_LOG_EMERG)
		level = EPSEC_LOG_EMERG;
	if (level > EPSEC_LOG_DEBUG)
		level = EPSEC_LOG_DEBUG;
	atomic_store(&log_level, level);
}

int epsec_log_get_level(void)
{
	return atomic_load(&log_level);
}

void epsec_log_set_dest(enum epsec_log_dest dest)
{
	if (dest != EPSEC_DEST_STDERR)
		pthread_once(&syslog_once, open_syslog);
	atomic_store(&log_dest, (int)dest);
}

enum epsec_log_dest epsec_log_get_dest(void)
{
	return (enum epsec_log_dest)atomic_load(&log_dest);
}

void epsec_log_started(void)
{
	atomic_store(&starting, false);
}

void epsec_log_set_forward(epsec_log_forward_fn fn)
{
	atomic_store(&log_forward, fn);
}

static void write_stderr(int level, const char *src, const char *line)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf per line so concurrent threads do not interleave. */
	fprintf(stderr, "%s.%03ld %s[%s] %s: %s\n", stamp, ts.tv_nsec / 1000000L, log_program,
		src ? src : "-", level_names[level], line);
}

void epsec_vlog(int level, const char *src, const char *fmt, va_list ap)
{
	char line[2048];
	epsec_log_forward_fn forward;

	if (level < EPSEC_LOG_EMERG)
		level = EPSEC_LOG_EMERG;
	if (level > EPSEC_LOG_DEBUG || level > atomic_load(&log_level))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);

	switch (atomic_load(&log_dest)) {
	case EPSEC_DEST_HOST:
		forward = atomic_load(&log_forward);
		if (forward && forward(level, src, line) == 0)
			return;
		/* No mux to take it (yet): the guest's syslog, as DEBUG_DEST=1. */
		/* fall through */
	case EPSEC_DEST_SYSLOG:
		syslog(level, "[%s] %s: %s", src ? src : "-", level_names[level], line);
		if (level <= EPSEC_LOG_ERR && atomic_load(&starting))
			write_stderr(level, src, line);
		return;
	default:
		write_stderr(level, src, line);
		return;
	}
}

void epsec_log(int level, const char *src, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	epsec_vlog(level, src, fmt, ap);
	va_end(ap);
}
