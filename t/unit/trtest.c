/* SPDX-License-Identifier: MIT */
/* Helpers of the transport option tests (see trtest.h). */
#include "config.h"
#include "trtest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"
#include "msg.h"

#define LOG_LINES 256

static struct epsec_loop *loop;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *lines[LOG_LINES];
static int n_lines;

/* ------------------------------------------------------------ logs */

static int capture(int level, const char *src, const char *line)
{
	fprintf(stderr, "[%s] %s\n", src ? src : "-", line);
	pthread_mutex_lock(&log_lock);
	if (n_lines < LOG_LINES && (lines[n_lines] = strdup(line)))
		n_lines++;
	pthread_mutex_unlock(&log_lock);
	(void)level;
	return 0;
}

void trt_log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	while (n_lines)
		free(lines[--n_lines]);
	pthread_mutex_unlock(&log_lock);
}

int trt_log_count(const char *needle)
{
	int i, n = 0;

	pthread_mutex_lock(&log_lock);
	for (i = 0; i < n_lines; i++)
		if (strstr(lines[i], needle))
			n++;
	pthread_mutex_unlock(&log_lock);
	return n;
}

bool trt_log_has(const char *needle)
{
	return trt_log_count(needle) > 0;
}

const char *trt_log_last(void)
{
	static char last[2048];

	pthread_mutex_lock(&log_lock);
	snprintf(last, sizeof(last), "%s", n_lines ? lines[n_lines - 1] : "");
	pthread_mutex_unlock(&log_lock);
	return last;
}

/* ------------------------------------------------------------ set-up */

void trt_init(const char *program)
{
	const char *top = getenv("top_builddir");
	char path[4096];

	/* `make check` sets EPSEC_PLUGIN_PATH; run by hand from the build dir too */
	snprintf(path, sizeof(path), "%s/transports", top ? top : ".");
	setenv(EPSEC_PLUGIN_PATH_ENV, path, 0);
	epsec_log_open(program, EPSEC_DEST_HOST, EPSEC_LOG_INFO);
	epsec_log_set_forward(capture);
	if (epsec_loader_init(NULL) < 0 || epsec_loop_new(&loop) < 0)
		exit(1);
}

void trt_exit(void)
{
	epsec_loop_free(loop);
	epsec_loader_exit();
	trt_log_clear();
}

struct epsec_loop *trt_loop(void)
{
	return loop;
}

uint64_t trt_now_ms(void)
{
	return epsec_now_ms();
}

static void stop_cb(struct epsec_loop *l, void *arg)
{
	(void)arg;
	epsec_loop_stop(l);
}

void trt_run(unsigned ms)
{
	int id = epsec_loop_add_timer(loop, ms, stop_cb, NULL);

	if (id > 0) {
		epsec_loop_run(loop);
		epsec_loop_del_timer(loop, id);
	}
}

/* ------------------------------------------------------------ files */

void trt_mkdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/epsec-trt-XXXXXX");
	if (!mkdtemp(buf))
		abort();
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void trt_rmdir(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void trt_write(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t n = strlen(text);

	if (fd < 0 || write(fd, text, n) != (ssize_t)n || fchmod(fd, mode) < 0)
		abort();
	close(fd);
}

const config_setting_t *trt_opts(config_t *cfg, const char *dir, const char *text)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/opts.conf", dir);
	trt_write(path, text, 0644);
	config_init(cfg);
	if (config_read_file(cfg, path) != CONFIG_TRUE) {
		fprintf(stderr, "opts.conf:%d: %s\n", config_error_line(cfg), config_error_text(cfg));
		return NULL;
	}
	return config_root_setting(cfg);
}

/* ------------------------------------------------------------ peers */

static void send_body(struct epsec_conn *c, epsec_msg *env)
{
	int tries = 0;

	while (epsec_conn_send(c, env) == -ENOBUFS && tries++ < 1000)
		trt_run(1);
}

static void send_hello(struct epsec_conn *c)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;

	h.version_min = h.version_max = 1;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	h.id = "trt-agent";
	env.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_body(c, &env);
}

static void send_welcome(struct epsec_conn *c)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Welcome w = EPSEC__WELCOME__INIT;

	w.version = 1;
	w.id = "trt-mux";
	env.body_case = EPSEC__ENVELOPE__BODY_WELCOME;
	env.welcome = &w;
	send_body(c, &env);
}

static void on_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct trt_peer *p = arg;

	p->msgs++;
	if (m->body_case == EPSEC__ENVELOPE__BODY_HELLO) {
		p->hellos++;
		send_welcome(c);
	} else if (m->body_case == EPSEC__ENVELOPE__BODY_WELCOME) {
		p->welcomes++;
	}
	epsec_msg_free(m);
}

static void on_close(struct epsec_conn *c, int reason, void *arg)
{
	struct trt_peer *p = arg;

	(void)c;
	p->closed++;
	p->reason = reason;
	p->c = NULL;
}

static int on_accept(struct epsec_conn *c, void *arg)
{
	struct trt_server *s = arg;
	struct trt_peer *p;

	if (s->n == TRT_MAXSRV)
		return -EMFILE;
	p = &s->srv[s->n++];
	memset(p, 0, sizeof(*p));
	p->c = c;
	snprintf(p->name, sizeof(p->name), "%s", epsec_conn_peer(c));
	epsec_conn_set_handlers(c, on_msg, on_close, p);
	return 0;
}

int trt_listen(struct trt_server *s, const char *uri, const config_setting_t *opts)
{
	memset(s, 0, sizeof(*s));
	return epsec_listen(loop, uri, opts, EPSEC_ROLE_AGENT, on_accept, s, &s->l);
}

void trt_server_close(struct trt_server *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		trt_peer_close(&s->srv[i]);
	if (s->l)
		epsec_listener_close(s->l);
	s->l = NULL;
}

int trt_connect(struct trt_peer *p, const char *uri, const config_setting_t *opts)
{
	int r;

	memset(p, 0, sizeof(*p));
	r = epsec_connect(loop, uri, opts, EPSEC_ROLE_MUX, &p->c);
	if (r < 0)
		return r;
	epsec_conn_set_handlers(p->c, on_msg, on_close, p);
	snprintf(p->name, sizeof(p->name), "%s", epsec_conn_peer(p->c));
	send_hello(p->c);
	return 0;
}

void trt_peer_close(struct trt_peer *p)
{
	if (p->c)
		epsec_conn_close(p->c);
	p->c = NULL;
}

int trt_hellos(const struct trt_server *s)
{
	int i, n = 0;

	for (i = 0; i < s->n; i++)
		n += s->srv[i].hellos;
	return n;
}
