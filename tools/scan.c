/* SPDX-License-Identifier: MIT */
/* epsecctl scan FILE...: on-demand scans through the chain (clamdscan's
 * job). epsecctl joins the mux as a short-lived agent of its own, sends one
 * ONDEMAND EVENT per file and answers the SVA's READs from the file: the
 * scanner never needs access to the files, only the caller does. */
#include "config.h"
#include "epsecctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <epsec/version.h>

#include "conf.h"
#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"

#define EPSEC_LOG_SRC "scan"

#define EX_FOUND 1
#define EX_ERROR 2
#define INLINE_BYTES (64 * 1024)
#define WINDOW 32             /* EVENTs in flight at once (each holds its fd) */
#define HELLO_TIMEOUT_MS 5000
#define TICK_MS 100
/* Nobody waits on an on-demand scan as on a held open: a big file may
 * take minutes, and the SVA's engines get the whole budget. */
#define DEFAULT_TIMEOUT_S 600

enum job_state { JOB_WAITING, JOB_SENT, JOB_DONE };
enum job_result { RES_OK, RES_FOUND, RES_ERROR };

/* One file; its req_id is its index + 1. */
struct job {
	char *path;
	char *open_path; /* the symlink argument's target, resolved; else NULL */
	int fd;
	enum job_state state;
	enum job_result result;
	char *text;   /* signature, or why it failed */
	uint64_t deadline_ms;
};

static struct {
	struct epsec_loop *loop;
	struct epsec_conn *conn;
	const char *uri;
	char id[HOST_NAME_MAX + 64];
	char exe[PATH_MAX];
	bool welcomed, infected_only, summary;
	bool fds;      /* the mux takes our files' fds: no bytes sent at all */
	unsigned timeout_ms;
	size_t inline_bytes;
	uint64_t hello_deadline_ms;
	struct job *jobs;
	size_t n, cap, next_send, next_print, in_flight;
	unsigned long scanned, found, errors;
} S;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: epsecctl scan [--mux URI] [-c VSEP_CONF] [--timeout SECONDS]\n"
		"                     [--inline-bytes N] [-i|--infected] [--no-summary]\n"
		"                     FILE|DIR...\n"
		"Scans each file (directories recursively) through the mux and an SVA,\n"
		"printing \"FILE: OK\", \"FILE: SIGNATURE FOUND\" or \"FILE: ERROR (WHY)\";\n"
		"a file the engines could not scan is an ERROR, never OK.\n"
		"  --mux URI        the mux's agent endpoint (default: the mux key of\n"
		"                   " SYSCONFDIR "/vsep/vsep.conf, or of -c FILE)\n"
		"  --timeout S      give up on a file after S seconds (default %d)\n"
		"  --inline-bytes N bytes sent with each EVENT (0-%d, default all of\n"
		"                   them); the scanner READs the rest through the mux\n"
		"  -i, --infected   print only infected files and errors\n"
		"  --no-summary     no summary at the end\n"
		"exit status: 0 all clean, 1 something found, 2 an error.\n",
		DEFAULT_TIMEOUT_S, INLINE_BYTES);
}

/* ------------------------------------------------------------ the files */

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d) {
		fprintf(stderr, "epsecctl: scan: out of memory\n");
		exit(EX_ERROR);
	}
	return d;
}

static struct job *add_job(const char *path)
{
	struct job *j;

	if (S.n == S.cap) {
		size_t cap = S.cap ? S.cap * 2 : 64;
		struct job *v = realloc(S.jobs, cap * sizeof(*v));

		if (!v) {
			fprintf(stderr, "epsecctl: scan: out of memory\n");
			exit(EX_ERROR);
		}
		S.jobs = v;
		S.cap = cap;
	}
	j = &S.jobs[S.n++];
	*j = (struct job){ .path = xstrdup(path), .fd = -1 };
	return j;
}

/* A file that fails before it is sent: decided now, printed in order. */
static void job_fail(struct job *j, const char *why)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	free(j->text);
	j->text = xstrdup(why);
	j->result = RES_ERROR;
	j->state = JOB_DONE;
}

/* Printed as clamdscan does: absolute, symlinks not resolved. */
static void absolute(const char *arg, char *buf, size_t len)
{
	char cwd[PATH_MAX];
	size_t n;

	if (arg[0] == '/' || !getcwd(cwd, sizeof(cwd)) ||
	    snprintf(buf, len, "%s/%s", strcmp(cwd, "/") ? cwd : "", arg) >= (int)len)
		snprintf(buf, len, "%s", arg);
	n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
}

static void walk(const char *path, bool follow);

/* errno saved before add_job can change it. */
static void fail_errno(const char *path)
{
	int err = errno;

	job_fail(add_job(path), strerror(err));
}

/* Too long to open, but named as it is. */
static void fail_too_long(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *child = malloc(len);

	if (!child) {
		fprintf(stderr, "epsecctl: scan: out of memory\n");
		exit(EX_ERROR);
	}
	snprintf(child, len, "%s/%s", strcmp(dir, "/") ? dir : "", name);
	job_fail(add_job(child), "path too long");
	free(child);
}

/* Sorted, so the output is the same on every run. */
static void walk_dir(const char *dir)
{
	struct dirent **names;
	char child[PATH_MAX];
	int i, n = scandir(dir, &names, NULL, alphasort);

	if (n < 0) {
		fail_errno(dir);
		return;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i]->d_name;

		if (strcmp(name, ".") && strcmp(name, "..")) {
			if (snprintf(child, sizeof(child), "%s/%s", strcmp(dir, "/") ? dir : "",
				     name) >= (int)sizeof(child))
				fail_too_long(dir, name);
			else
				walk(child, false);
		}
		free(names[i]);
	}
	free(names);
}

/* A symlink given as an argument: followed, but decided on what it leads
 * to, so that a device or FIFO behind it is never opened; the file is then
 * opened by its resolved path without following anything at the end. */
static void walk_link(const char *path)
{
	char *real = realpath(path, NULL);
	struct stat st;

	if (!real || lstat(real, &st) < 0) {
		fail_errno(path);
	} else if (S_ISDIR(st.st_mode)) {
		walk_dir(path);
	} else if (S_ISREG(st.st_mode)) {
		add_job(path)->open_path = real;
		real = NULL;
	} else {
		job_fail(add_job(path), "not a regular file");
	}
	free(real);
}

/* Arguments are followed when symlinks; inside directories symlinks and
 * special files are skipped, as clamdscan does. Nothing but a regular file
 * is ever opened: opening a device can have side effects. */
static void walk(const char *path, bool follow)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		fail_errno(path);
		return;
	}
	if (S_ISLNK(st.st_mode) && follow)
		walk_link(path);
	else if (S_ISDIR(st.st_mode))
		walk_dir(path);
	else if (S_ISREG(st.st_mode))
		add_job(path);
	else if (follow)
		job_fail(add_job(path), "not a regular file");
}

/* ------------------------------------------------------------ output */

static void print_job(const struct job *j)
{
	switch (j->result) {
	case RES_OK:
		S.scanned++;
		if (!S.infected_only)
			printf("%s: OK\n", j->path);
		break;
	case RES_FOUND:
		S.scanned++;
		S.found++;
		printf("%s: %s FOUND\n", j->path, j->text);
		break;
	case RES_ERROR:
		S.errors++;
		printf("%s: ERROR (%s)\n", j->path, j->text);
		break;
	}
}

/* In argument order, whatever order the verdicts come in. */
static void print_ready(void)
{
	while (S.next_print < S.n && S.jobs[S.next_print].state == JOB_DONE)
		print_job(&S.jobs[S.next_print++]);
	fflush(stdout);
}

static void print_summary(uint64_t ms)
{
	printf("\n----------- SCAN SUMMARY -----------\n");
	printf("Scanned files: %lu\n", S.scanned);
	printf("Infected files: %lu\n", S.found);
	printf("Total errors: %lu\n", S.errors);
	printf("Time: %llu.%03llu sec\n", (unsigned long long)(ms / 1000),
	       (unsigned long long)(ms % 1000));
}

/* ------------------------------------------------------------ the link */

#define SET(msg, field, value) ((msg).has_##field = true, (msg).field = (value))

static int send_env(const epsec_msg *env)
{
	return S.conn ? epsec_conn_send(S.conn, env) : -ENOTCONN;
}

static int send_hello(void)
{
	static char *caps[] = { (char *)EPSEC_CAP_FD };
	Epsec__Hello h = EPSEC__HELLO__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;

	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	h.id = S.id;
	h.build = EPSEC_VERSION " (" EPSEC_BUILD_ID ")";
	if (S.conn && epsec_conn_passes_fds(S.conn)) {
		h.n_capabilities = 1;
		h.capabilities = caps;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	return send_env(&env);
}

static ssize_t pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return got ? (ssize_t)got : -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void fill_event(Epsec__Event *e, const struct job *j, const struct stat *st)
{
	e->req_id = (uint64_t)(j - S.jobs) + 1;
	e->kind = EPSEC__EVENT_KIND__KIND_ONDEMAND;
	SET(*e, dev, st->st_dev);
	SET(*e, ino, st->st_ino);
	SET(*e, size, (uint64_t)st->st_size);
	SET(*e, mtime_ns, (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec);
	SET(*e, ctime_ns, (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec);
	SET(*e, mode, st->st_mode);
	SET(*e, uid, st->st_uid);
	SET(*e, pid, getpid());
	e->exe = S.exe;
	e->path = j->path;
	SET(*e, timeout_ms, S.timeout_ms);
}

/* With the fd, when the mux takes it and the link has room now: the SVA
 * then reads the file itself, with what access we have. */
static int send_event(const struct job *j, const struct stat *st)
{
	static uint8_t data[INLINE_BYTES];
	Epsec__Event e = EPSEC__EVENT__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	ssize_t n;
	int r;

	fill_event(&e, j, st);
	env.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	env.event = &e;
	if (S.fds) {
		e.has_local_fd = e.local_fd = true;
		r = epsec_conn_send_fd(S.conn, &env, j->fd);
		if (r != -EAGAIN)
			return r;
		e.has_local_fd = e.local_fd = false;
	}
	n = pread_full(j->fd, data, S.inline_bytes, 0);
	if (n < 0)
		return (int)n;
	e.has_inline_data = true;
	e.inline_data.data = data;
	e.inline_data.len = (size_t)n;
	return send_env(&env);
}

/* walk() saw a regular file, but it may have been replaced since:
 * O_NOFOLLOW and O_NONBLOCK so that a symlink or a FIFO put there is not
 * followed or waited for, and the fd checked again. */
static void start_job(struct job *j)
{
	const char *path = j->open_path ? j->open_path : j->path;
	struct stat st;
	int r;

	j->fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &st) < 0) {
		job_fail(j, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		job_fail(j, "not a regular file");
		return;
	}
	r = send_event(j, &st);
	if (r < 0) {
		job_fail(j, strerror(-r));
		return;
	}
	j->state = JOB_SENT;
	j->deadline_ms = epsec_now_ms() + S.timeout_ms;
	S.in_flight++;
}

static void pump(void)
{
	while (S.welcomed && S.in_flight < WINDOW && S.next_send < S.n) {
		struct job *j = &S.jobs[S.next_send++];

		if (j->state == JOB_WAITING)
			start_job(j);
	}
	print_ready();
	if (S.next_print == S.n && S.loop)
		epsec_loop_stop(S.loop);
}

static struct job *sent_job(uint64_t req_id)
{
	if (req_id == 0 || req_id > S.n || S.jobs[req_id - 1].state != JOB_SENT)
		return NULL;
	return &S.jobs[req_id - 1];
}

static void job_end(struct job *j, enum job_result res, const char *text)
{
	S.in_flight--;
	if (res == RES_ERROR) {
		job_fail(j, text);
		return;
	}
	close(j->fd);
	j->fd = -1;
	j->result = res;
	j->text = text ? xstrdup(text) : NULL;
	j->state = JOB_DONE;
}

/* Everything not yet answered fails with `why` (the link is gone). */
static void fail_rest(const char *why)
{
	size_t i;

	for (i = 0; i < S.n; i++) {
		if (S.jobs[i].state == JOB_SENT)
			job_end(&S.jobs[i], RES_ERROR, why);
		else if (S.jobs[i].state == JOB_WAITING)
			job_fail(&S.jobs[i], why);
	}
	pump();
}

/* ------------------------------------------------------------ messages in */

static void on_verdict(const Epsec__Verdict *v)
{
	struct job *j = sent_job(v->req_id);
	const char *sig = v->signature && *v->signature ? v->signature : "Unknown.Signature";

	if (!j)
		return;
	if (v->error)
		job_end(j, RES_ERROR, v->error);
	else if (v->action == EPSEC__ACTION__ACTION_ALLOW)
		job_end(j, RES_OK, NULL);
	else
		job_end(j, RES_FOUND, sig);
	pump();
}

static void on_error(const Epsec__Error *e)
{
	char why[256];
	struct job *j;

	snprintf(why, sizeof(why), "%s", e->message && *e->message ? e->message
								  : strerror((int)e->code));
	if (e->code == ETIMEDOUT)
		snprintf(why, sizeof(why), "scan timed out");
	if (!e->has_req_id) {
		fprintf(stderr, "epsecctl: scan: mux %s: %s\n", S.uri, why);
		return;
	}
	j = sent_job(e->req_id);
	if (j) {
		job_end(j, RES_ERROR, why);
		pump();
	}
}

static void on_read(const Epsec__Read *rd)
{
	static uint8_t buf[EPSEC_READ_MAX];
	Epsec__Data d = EPSEC__DATA__INIT;
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	struct job *j = sent_job(rd->req_id);
	size_t len = rd->length > sizeof(buf) ? sizeof(buf) : rd->length;
	ssize_t n = j ? pread_full(j->fd, buf, len, rd->offset) : -ENOENT;

	d.req_id = rd->req_id;
	d.offset = rd->offset;
	if (n < 0) {
		SET(d, error, (int32_t)-n);
	} else {
		d.has_data = true;
		d.data.data = buf;
		d.data.len = (size_t)n;
	}
	env.body_case = EPSEC__ENVELOPE__BODY_DATA;
	env.data = &d;
	send_env(&env);
}

static void on_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_WELCOME:
		S.welcomed = true;
		S.fds = epsec_conn_passes_fds(c) &&
			epsec_caps_has(m->welcome->capabilities, m->welcome->n_capabilities,
				       EPSEC_CAP_FD);
		pump();
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		on_verdict(m->verdict);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		on_error(m->error);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		on_read(m->read);
		break;
	default:
		break;
	}
	epsec_msg_free(m);
}

static void on_close(struct epsec_conn *c, int reason, void *arg)
{
	char why[256];

	S.conn = NULL;
	snprintf(why, sizeof(why), "connection to the mux lost (%s)",
		 reason ? strerror(reason < 0 ? -reason : reason) : "closed");
	if (!S.welcomed)
		fprintf(stderr, "epsecctl: scan: mux %s refused or closed the connection\n", S.uri);
	fail_rest(why);
}

static void on_tick(struct epsec_loop *loop, void *arg)
{
	uint64_t now = epsec_now_ms();
	char why[64];
	size_t i;

	if (!S.welcomed && now >= S.hello_deadline_ms) {
		fprintf(stderr, "epsecctl: scan: no WELCOME from mux %s\n", S.uri);
		fail_rest("mux not answering");
		return;
	}
	snprintf(why, sizeof(why), "no verdict in %u s", S.timeout_ms / 1000);
	for (i = 0; i < S.n; i++) {
		if (S.jobs[i].state == JOB_SENT && now >= S.jobs[i].deadline_ms)
			job_end(&S.jobs[i], RES_ERROR, why);
	}
	pump();
}

/* ------------------------------------------------------------ set-up */

static void identity(void)
{
	char host[HOST_NAME_MAX + 1] = "localhost";
	ssize_t n;

	gethostname(host, sizeof(host) - 1);
	snprintf(S.id, sizeof(S.id), "epsecctl-%s-%d", host, (int)getpid());
	n = readlink("/proc/self/exe", S.exe, sizeof(S.exe) - 1);
	S.exe[n > 0 ? n : 0] = '\0';
}

/* 0 when the loop should run; else the exit status (already reported). */
static int connect_mux(const char *plugin_dir)
{
	int r = epsec_loader_init(plugin_dir);

	if (r == 0)
		r = epsec_loop_new(&S.loop);
	if (r == 0 && (r = epsec_loop_add_timer(S.loop, TICK_MS, on_tick, NULL)) > 0)
		r = epsec_connect(S.loop, S.uri, NULL, EPSEC_ROLE_MUX, &S.conn);
	if (r < 0) {
		fprintf(stderr, "epsecctl: scan: cannot connect to mux %s: %s\n", S.uri,
			strerror(-r));
		return EX_ERROR;
	}
	epsec_conn_set_handlers(S.conn, on_msg, on_close, NULL);
	S.hello_deadline_ms = epsec_now_ms() + HELLO_TIMEOUT_MS;
	r = send_hello();
	if (r < 0) {
		fprintf(stderr, "epsecctl: scan: mux %s: %s\n", S.uri, strerror(-r));
		return EX_ERROR;
	}
	return 0;
}

static bool anything_to_send(void)
{
	size_t i;

	for (i = 0; i < S.n; i++) {
		if (S.jobs[i].state == JOB_WAITING)
			return true;
	}
	return false;
}

static int run(const char *plugin_dir)
{
	int r = 0;

	if (anything_to_send()) {
		identity();
		r = connect_mux(plugin_dir);
		if (r == 0)
			epsec_loop_run(S.loop);
		else
			fail_rest("not scanned: no mux");
	}
	print_ready();
	if (S.conn)
		epsec_conn_close(S.conn);
	if (S.loop)
		epsec_loop_free(S.loop);
	epsec_loader_exit();
	return r;
}

/* ------------------------------------------------------------ options */

struct opts {
	const char *mux, *conf;
	char *conf_mux, *conf_plugins;
};

static int parse_num(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "mux", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "inline-bytes", required_argument, NULL, 'I' },
		{ "infected", no_argument, NULL, 'i' },
		{ "no-summary", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long v;
	int c;

	optind = 0; /* glibc: start over, main() used getopt already */
	while ((c = getopt_long(argc, argv, "m:c:t:ih", longs, NULL)) != -1) {
		switch (c) {
		case 'm':
			o->mux = optarg;
			break;
		case 'c':
			o->conf = optarg;
			break;
		case 't':
			if (parse_num(optarg, 1, 86400, &v) < 0)
				return -EINVAL;
			S.timeout_ms = (unsigned)v * 1000;
			break;
		case 'I':
			if (parse_num(optarg, 0, INLINE_BYTES, &v) < 0)
				return -EINVAL;
			S.inline_bytes = (size_t)v;
			break;
		case 'i':
			S.infected_only = true;
			break;
		case 'S':
			S.summary = false;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	return optind < argc ? 0 : -EINVAL;
}

/* --mux, else the mux key of vsep.conf: scan where the agent would. */
static int find_mux(struct opts *o)
{
	int r;

	if (!o->conf)
		o->conf = SYSCONFDIR "/vsep/vsep.conf";
	epsec_conf_peek_string(o->conf, "plugin_dir", &o->conf_plugins);
	if (o->mux) {
		S.uri = o->mux;
		return 0;
	}
	r = epsec_conf_peek_string(o->conf, "mux", &o->conf_mux);
	if (r < 0) {
		fprintf(stderr, "epsecctl: scan: no mux given (--mux URI), and none in %s: %s\n",
			o->conf, r == -EINVAL ? "unreadable, or mux is not a string" : strerror(-r));
		return r;
	}
	S.uri = o->conf_mux;
	return 0;
}

int epsecctl_scan(const struct epsecctl_env *env, int argc, char **argv)
{
	struct opts o = { NULL };
	char path[PATH_MAX];
	uint64_t start = epsec_now_ms();
	int i, r;

	S.summary = true;
	S.timeout_ms = DEFAULT_TIMEOUT_S * 1000;
	S.inline_bytes = INLINE_BYTES;
	epsec_log_open("epsecctl", EPSEC_DEST_STDERR, EPSEC_LOG_ERR);
	if (parse(argc, argv, &o) < 0) {
		usage(stderr);
		return EPSECCTL_EX_USAGE;
	}
	if (find_mux(&o) < 0)
		return EX_ERROR;
	for (i = optind; i < argc; i++) {
		absolute(argv[i], path, sizeof(path));
		walk(path, true);
	}
	r = run(o.conf_plugins);
	if (S.summary)
		print_summary(epsec_now_ms() - start);
	for (size_t k = 0; k < S.n; k++) {
		free(S.jobs[k].path);
		free(S.jobs[k].open_path);
		free(S.jobs[k].text);
	}
	free(S.jobs);
	free(o.conf_mux);
	free(o.conf_plugins);
	if (r || S.errors)
		return EX_ERROR;
	return S.found ? EX_FOUND : 0;
}
