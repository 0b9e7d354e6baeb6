/* SPDX-License-Identifier: MIT */
/* epsecctl support-bundle -o FILE: one tar.gz for a ticket. What the
 * daemons say about themselves (version, status, effective config with
 * secrets removed, quarantine index), recent logs, kernel and fanotify
 * facts, and a manifest of what is in it and what was left out. Files the
 * configs name (CURVE key files above all) are never read. */
#include "config.h"
#include "epsecctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <epsec/version.h>

#include "archive.h"
#include "ctl.h"
#include "json.h"

#define EX_FAILED 1
#define CALL_TIMEOUT_MS 900
#define TAIL_MAX (512 * 1024)        /* of each log file */
#define BUNDLE_MAX (16 * 1024 * 1024) /* of everything, before compression */
#define JSON_FLAGS (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const daemons[] = { "vsep", "epsec-mux", "epsec-sva" };
#define N_DAEMONS 3

struct bundle {
	const struct epsecctl_env *env;
	struct bundle_archive *a;
	char *manifest;
	size_t manifest_len, total;
	FILE *m;
	int err;
	struct json_object *status[N_DAEMONS];
};

static void note(struct bundle *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct bundle *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(b->m, fmt, ap);
	va_end(ap);
	fputc('\n', b->m);
}

/* Every entry goes through here: the size bound and the manifest. */
static void add(struct bundle *b, const char *name, const char *data, size_t len,
		const char *what)
{
	int r;

	if (b->err)
		return;
	if (b->total + len > BUNDLE_MAX) {
		note(b, "LEFT OUT  %s (%zu bytes): the bundle is limited to %d bytes", name, len,
		     BUNDLE_MAX);
		return;
	}
	r = bundle_archive_add(b->a, name, data, len);
	if (r < 0) {
		b->err = r;
		return;
	}
	b->total += len;
	note(b, "%-40s %8zu  %s", name, len, what);
}

static void add_json(struct bundle *b, const char *name, struct json_object *o, const char *what)
{
	const char *s = json_object_to_json_string_ext(o, JSON_FLAGS);

	add(b, name, s, strlen(s), what);
}

/* ------------------------------------------------------------ daemons */

static struct json_object *ask(struct bundle *b, int i, const char *cmd)
{
	struct json_object *reply;
	char path[PATH_MAX];
	int r;

	reply = epsecctl_ask(b->env, daemons[i], cmd, CALL_TIMEOUT_MS, &r);
	epsecctl_ctl_path(b->env, daemons[i], path, sizeof(path));
	if (!reply && !strcmp(cmd, "status"))
		note(b, "NOT HERE  %s: %s: %s", daemons[i], path, strerror(-r));
	return reply;
}

static void add_daemon(struct bundle *b, int i)
{
	struct json_object *o;
	char name[96];

	b->status[i] = ask(b, i, "status");
	if (!b->status[i])
		return;
	snprintf(name, sizeof(name), "%s/status.json", daemons[i]);
	add_json(b, name, b->status[i], "status --json");
	if ((o = ask(b, i, "version"))) {
		snprintf(name, sizeof(name), "%s/version.json", daemons[i]);
		add_json(b, name, o, "version and build");
		json_object_put(o);
	}
	if ((o = ask(b, i, "config"))) {
		snprintf(name, sizeof(name), "%s/effective.conf", daemons[i]);
		add(b, name, jstr(o, "config"), strlen(jstr(o, "config")),
		    "effective configuration, secrets removed");
		json_object_put(o);
	}
}

static void add_quarantine(struct bundle *b)
{
	struct json_object *o = b->status[0] ? ask(b, 0, "quarantine-list") : NULL;

	if (o)
		add_json(b, "vsep/quarantine.json", o, "quarantine index (records only, no files)");
	json_object_put(o);
}

/* ------------------------------------------------------------ files */

/* The last `max` bytes of a file, from a line start when truncated. */
static int read_tail(const char *path, size_t max, char **out, size_t *len, bool *cut)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	*cut = (size_t)st.st_size > max;
	*len = *cut ? max : (size_t)st.st_size;
	*out = malloc(*len + 1);
	n = *out ? pread(fd, *out, *len, st.st_size - (off_t)*len) : -1;
	if (n < 0)
		r = *out ? -errno : -ENOMEM;
	else
		*len = (size_t)n;
	close(fd);
	return r;
}

static void add_file(struct bundle *b, const char *name, const char *path, size_t max,
		     const char *what)
{
	char *data = NULL, desc[PATH_MAX + 128];
	size_t len = 0, skip = 0;
	bool cut = false;
	int r = read_tail(path, max, &data, &len, &cut);

	if (r < 0) {
		note(b, "NOT READ  %s: %s", path, strerror(-r));
		free(data);
		return;
	}
	while (cut && skip < len && data[skip++] != '\n')
		;
	snprintf(desc, sizeof(desc), "%s%s", what, cut ? " (TRUNCATED: the last lines only)" : "");
	add(b, name, data + skip, len - skip, desc);
	free(data);
}

/* DEBUG_DEST=2: one file per agent under the mux's agent_log_dir. */
static void add_agent_logs(struct bundle *b)
{
	const char *dir = b->status[1] ? jstr(b->status[1], "agent_log_dir") : NULL;
	char path[PATH_MAX], name[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (!dir || !(d = opendir(dir))) {
		if (dir)
			note(b, "NOT READ  %s: %s", dir, strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		snprintf(name, sizeof(name), "logs/agents/%.200s", e->d_name);
		add_file(b, name, path, TAIL_MAX, "an agent's host log (DEBUG_DEST=2)");
	}
	closedir(d);
}

/* Lines of the daemons in the system log, from its last TAIL_MAX * 4. */
static void add_syslog(struct bundle *b)
{
	static const char *const logs[] = { "/var/log/syslog", "/var/log/messages" };
	char *data = NULL, *line, *save = NULL, *out;
	size_t len = 0, n = 0;
	bool cut;

	for (size_t i = 0; i < 2 && !data; i++)
		if (read_tail(logs[i], TAIL_MAX * 4, &data, &len, &cut) < 0)
			free(data), data = NULL;
	if (!data) {
		note(b, "NOT READ  /var/log/syslog, /var/log/messages: absent (journald only? "
			"attach: journalctl -t vsep -t epsec-mux -t epsec-sva)");
		return;
	}
	data[len] = '\0';
	out = malloc(len + 1);
	for (line = strtok_r(data, "\n", &save); out && line; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, "vsep") || strstr(line, "epsec-"))
			n += (size_t)sprintf(out + n, "%s\n", line);
	if (out)
		add(b, "logs/syslog", out, n, "the daemons' lines of the system log (recent)");
	free(out);
	free(data);
}

/* ------------------------------------------------------------ kernel */

static void add_text(struct bundle *b, const char *name, const char *what,
		     void (*fill)(struct bundle *b, FILE *f))
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	fill(b, f);
	fclose(f);
	add(b, name, text, len, what);
	free(text);
}

static void cat_into(FILE *f, const char *path)
{
	char line[512];
	FILE *in = fopen(path, "r");

	if (!in) {
		fprintf(f, "%s: %s\n", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), in))
		fprintf(f, "%s: %s", path, line);
	fclose(in);
}

static void fill_kernel(struct bundle *b, FILE *f)
{
	static const char *const limits[] = { "max_queued_events", "max_user_groups",
					      "max_user_marks" };
	char path[128];
	struct utsname u;

	(void)b;
	if (uname(&u) == 0)
		fprintf(f, "uname: %s %s %s %s %s\n", u.sysname, u.nodename, u.release, u.version,
			u.machine);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/sys/fs/fanotify/%s", limits[i]);
		cat_into(f, path);
	}
	cat_into(f, "/proc/sys/fs/file-nr");
}

/* vsep's fanotify groups and their marks, as the kernel lists them. */
static void fill_marks(struct bundle *b, FILE *f)
{
	long long pid = b->status[0] ? jint(b->status[0], "pid") : 0;
	char dir[64], link[PATH_MAX], path[PATH_MAX + 64], info[PATH_MAX + 64];
	struct dirent *e;
	ssize_t n;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%lld/fd", pid);
	if (pid <= 0 || !(d = opendir(dir))) {
		fprintf(f, "vsep's fds: %s\n", pid <= 0 ? "vsep not running here" : strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0 || (link[n] = '\0', !strstr(link, "fanotify")))
			continue;
		snprintf(info, sizeof(info), "/proc/%lld/fdinfo/%s", pid, e->d_name);
		cat_into(f, info);
	}
	closedir(d);
}

static bool under(const char *path, const char *top)
{
	size_t n = strlen(top);

	return !strncmp(path, top, n) && (path[n] == '\0' || path[n] == '/' || !strcmp(top, "/"));
}

/* The mounts a protected path lives on, and those mounted below it. */
static bool protected_mount(struct bundle *b, const char *mnt)
{
	struct json_object *p = b->status[0] ? jget(b->status[0], "protect") : NULL;

	for (size_t i = 0; i < jlen(p); i++) {
		const char *top = jstr(json_object_array_get_idx(p, i), "path");

		if (under(mnt, top) || under(top, mnt))
			return true;
	}
	return false;
}

/* mountinfo lines of the mounts holding or below the protected paths. */
static void fill_mounts(struct bundle *b, FILE *f)
{
	char line[4096], mnt[PATH_MAX];
	FILE *in = fopen("/proc/self/mountinfo", "r");

	if (!in) {
		fprintf(f, "/proc/self/mountinfo: %s\n", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), in))
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && protected_mount(b, mnt))
			fputs(line, f);
	fclose(in);
}

/* ------------------------------------------------------------ command */

static void collect(struct bundle *b)
{
	char head[256];
	int len;

	len = snprintf(head, sizeof(head), "epsecctl %s (%s), protocol %d-%d\n", EPSEC_VERSION,
		       EPSEC_BUILD_ID, EPSEC_PROTO_VERSION_MIN, EPSEC_PROTO_VERSION_MAX);
	add(b, "epsecctl-version.txt", head, (size_t)len, "this command's version and build");
	for (int i = 0; i < N_DAEMONS; i++)
		add_daemon(b, i);
	add_quarantine(b);
	add_agent_logs(b);
	add_syslog(b);
	add_text(b, "kernel/facts.txt", "kernel version, fanotify limits", fill_kernel);
	add_text(b, "kernel/fanotify-marks.txt", "vsep's fanotify groups and marks (fdinfo)",
		 fill_marks);
	add_text(b, "kernel/mounts-protected.txt", "mounts holding or under the protected paths",
		 fill_mounts);
}

static int finish(struct bundle *b, const char *out)
{
	int r;

	note(b, "NEVER    files the configurations name (CURVE key files, signature "
		"databases), quarantined files themselves");
	fclose(b->m);
	r = b->err ? b->err : bundle_archive_add(b->a, "MANIFEST.txt", b->manifest,
						 b->manifest_len);
	if (bundle_archive_close(b->a) < 0 && r == 0)
		r = -EIO;
	if (r == 0)
		printf("%s: %zu bytes of %s\n", out, b->total, "bundle (see MANIFEST.txt in it)");
	else
		fprintf(stderr, "epsecctl support-bundle: %s: %s\n", out, strerror(-r));
	free(b->manifest);
	for (int i = 0; i < N_DAEMONS; i++)
		json_object_put(b->status[i]);
	return r;
}

int epsecctl_support_bundle(const struct epsecctl_env *env, int argc, char **argv)
{
	struct bundle b = { .env = env };
	const char *out;
	int r;

	if (argc != 3 || strcmp(argv[1], "-o")) {
		fprintf(stderr, "usage: epsecctl support-bundle -o FILE.tar.gz\n");
		return EPSECCTL_EX_USAGE;
	}
	out = argv[2];
	r = bundle_archive_open(out, &b.a);
	if (r < 0) {
		fprintf(stderr, "epsecctl support-bundle: %s: %s\n", out,
			r == -ENOTSUP ? "built without libarchive (Debian package libarchive-dev)"
				      : strerror(-r));
		return EX_FAILED;
	}
	chmod(out, 0600);
	b.m = open_memstream(&b.manifest, &b.manifest_len);
	if (!b.m)
		return EX_FAILED;
	note(&b, "# epsec support bundle: every entry, its size, what it is; what was left out");
	collect(&b);
	return finish(&b, out) < 0 ? EX_FAILED : 0;
}
