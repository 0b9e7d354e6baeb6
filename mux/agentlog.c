/* SPDX-License-Identifier: MIT */
/* The per-agent log files of DEBUG_DEST=2. An agent names itself, so its id
 * is made safe before it becomes a file name, and its text is made one
 * line before it is appended. */
#include "config.h"
#include "agentlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_ID 128
#define TEXT_MAX 8192

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

static int name_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

void mux_agentlog_name(const char *id, char *out, size_t len)
{
	size_t n = 0;

	if (len < sizeof("unknown.log"))
		return;
	for (; id && id[n] && n < NAME_MAX_ID && n + sizeof(".log") < len; n++)
		out[n] = name_char_ok(id[n]) ? id[n] : '_';
	if (n == 0)
		n = (size_t)snprintf(out, len, "unknown");
	snprintf(out + n, len - n, ".log");
}

/* mkdir -p: the log directory may live on a fresh /var/log or /run. */
static int make_dirs(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int mux_agentlog_open(const char *dir, const char *id)
{
	char name[NAME_MAX_ID + 16], path[4096 + sizeof(name)];
	int fd, rc = make_dirs(dir);

	if (rc < 0)
		return rc;
	mux_agentlog_name(id, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	return fd < 0 ? -errno : fd;
}

static size_t stamp(char *buf, size_t len, int64_t time_ns)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (time_ns > 0) {
		ts.tv_sec = (time_t)(time_ns / 1000000000LL);
		ts.tv_nsec = (long)(time_ns % 1000000000LL);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
	}
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03ld", ts.tv_nsec / 1000000L);
	return n;
}

/* Copy text as one line: newlines and other control characters would let
 * an agent forge lines of its own. */
static size_t one_line(char *out, size_t len, const char *text)
{
	size_t n = 0;

	for (; text && text[n] && n + 1 < len; n++)
		out[n] = ((unsigned char)text[n] < 0x20 || text[n] == 0x7f) ? ' ' : text[n];
	out[n] = '\0';
	return n;
}

int mux_agentlog_write(int fd, int64_t time_ns, unsigned level, const char *source,
		       const char *text)
{
	char line[TEXT_MAX + 256], when[48], src[64], lvl[16];
	ssize_t w;
	int n;

	stamp(when, sizeof(when), time_ns);
	one_line(src, sizeof(src), source && *source ? source : "-");
	if (level < sizeof(level_names) / sizeof(level_names[0]))
		snprintf(lvl, sizeof(lvl), "%s", level_names[level]);
	else
		snprintf(lvl, sizeof(lvl), "level%u", level);
	n = snprintf(line, sizeof(line), "%s %s [%s] ", when, lvl, src);
	n += (int)one_line(line + n, sizeof(line) - (size_t)n - 1, text);
	line[n++] = '\n';
	/* One write per line: O_APPEND keeps lines of two agents of the same
	 * id whole. */
	w = write(fd, line, (size_t)n);
	if (w < 0)
		return -errno;
	return w == n ? 0 : -EIO;
}
