/* SPDX-License-Identifier: MIT */
/* The control socket: a unix stream listener in the daemon's loop, one JSON
 * request per line in, one reply line out. Each client answers one request
 * at a time and is read only while its last reply is written, so a client
 * that never reads costs one reply of memory and never blocks the daemon. */
#include "config.h"
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define EPSEC_LOG_SRC "ctl"

#define CTL_LINE_MAX (64 * 1024)          /* one request, newline excluded */
#define CTL_REPLY_MAX (16 * 1024 * 1024)  /* client side */
/* A client that sends no whole request this long is dropped (slowloris:
 * one used to hold a connection open for ever), and no more than this
 * many are served at once (each holds a line's buffer). */
#define CTL_IDLE_MS 5000
#define CTL_CLIENTS_MAX 64
#define CTL_TICK_MS 1000

struct ctl_client {
	struct ctl_client *next;
	struct epsec_ctl *ctl;
	int fd;
	char in[CTL_LINE_MAX + 1];
	size_t in_len;
	char *out;
	size_t out_off, out_len;
	bool eof;     /* peer finished sending */
	bool closing; /* drop once the reply is out */
	uint64_t idle_since_ms; /* connected, or its last request */
};

struct epsec_ctl {
	struct epsec_loop *loop;
	int fd;
	char *path;
	epsec_ctl_fn fn;
	void *arg;
	struct ctl_client *clients;
	size_t n_clients;
	int timer;
};

/* ------------------------------------------------------------ clients */

static void client_free(struct ctl_client *c)
{
	struct ctl_client **p;

	for (p = &c->ctl->clients; *p && *p != c; p = &(*p)->next)
		;
	if (*p) {
		*p = c->next;
		c->ctl->n_clients--;
	}
	epsec_loop_del_fd(c->ctl->loop, c->fd);
	close(c->fd);
	free(c->out);
	free(c);
}

static void queue_reply(struct ctl_client *c, struct json_object *reply)
{
	const char *text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text);

	free(c->out);
	c->out_off = 0;
	c->out_len = 0;
	c->out = malloc(len + 1);
	if (!c->out) {
		c->closing = true;
		return;
	}
	memcpy(c->out, text, len);
	c->out[len] = '\n';
	c->out_len = len + 1;
}

static void reply_error(struct ctl_client *c, const char *why)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(why));
	queue_reply(c, r);
	json_object_put(r);
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* The whole line must be one JSON object, nothing after it. */
static struct json_object *parse_request(const char *line, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *req;
	size_t end;

	if (!tok)
		return NULL;
	req = json_tokener_parse_ex(tok, line, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (req && (json_tokener_get_error(tok) != json_tokener_success ||
		    !blank(line + end, len - end))) {
		json_object_put(req);
		req = NULL;
	}
	json_tokener_free(tok);
	return req;
}

/* {"cmd":"config"}: the effective settings, secrets removed, the same
 * in every daemon (conf.c knows what each one runs with). */
static struct json_object *config_reply(void)
{
	struct json_object *o = json_object_new_object();
	char *text;
	int r = epsec_conf_published(&text);

	json_object_object_add(o, "ok", json_object_new_boolean(r == 0));
	if (r == 0)
		json_object_object_add(o, "config", json_object_new_string(text));
	else
		json_object_object_add(o, "error", json_object_new_string(strerror(-r)));
	free(text);
	return o;
}

/* Commands the control plane answers for every daemon; NULL: the daemon's. */
static struct json_object *common_command(const char *cmd)
{
	if (!strcmp(cmd, "config"))
		return config_reply();
	return NULL;
}

static void handle_line(struct ctl_client *c, const char *line, size_t len)
{
	struct json_object *req = parse_request(line, len), *cmd, *reply;

	if (!req || !json_object_is_type(req, json_type_object)) {
		reply_error(c, "expected one JSON object per line");
		goto out;
	}
	if (!json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		reply_error(c, "expected a \"cmd\" string");
		goto out;
	}
	reply = common_command(json_object_get_string(cmd));
	if (!reply)
		reply = c->ctl->fn(json_object_get_string(cmd), req, c->ctl->arg);
	if (!reply || !json_object_is_type(reply, json_type_object)) {
		EPSEC_ERR("command \"%s\": handler gave no reply object",
			  json_object_get_string(cmd));
		reply_error(c, "internal error");
	} else {
		queue_reply(c, reply);
	}
	json_object_put(reply);
out:
	json_object_put(req);
}

/* Handle the next complete line; false when there is none. */
static bool next_request(struct ctl_client *c)
{
	char *nl = memchr(c->in, '\n', c->in_len);
	size_t len, used;

	if (!nl && c->in_len > CTL_LINE_MAX) {
		reply_error(c, "request too long (more than 65536 bytes)");
		c->closing = true;
		return true;
	}
	if (!nl && !(c->eof && c->in_len))
		return false;
	len = nl ? (size_t)(nl - c->in) : c->in_len;
	used = nl ? len + 1 : len;
	if (!blank(c->in, len))
		handle_line(c, c->in, len);
	c->idle_since_ms = epsec_now_ms();
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	return true;
}

/* 0 all written, -EAGAIN some left, other: dead. */
static int flush_out(struct ctl_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EINTR ? 0 : errno == EAGAIN ? -EAGAIN : -errno;
		c->out_off += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_len = 0;
	return 0;
}

/* Write what is pending, then serve lines until one reply cannot be
 * written at once; wait for whichever side is needed next. */
static void client_pump(struct ctl_client *c)
{
	for (;;) {
		int ret = flush_out(c);

		if (ret == -EAGAIN) {
			epsec_loop_mod_fd(c->ctl->loop, c->fd, EPSEC_LOOP_OUT);
			return;
		}
		if (ret < 0) {
			client_free(c);
			return;
		}
		if (c->closing || !next_request(c))
			break;
	}
	if (c->closing || c->eof) {
		client_free(c);
		return;
	}
	epsec_loop_mod_fd(c->ctl->loop, c->fd, EPSEC_LOOP_IN);
}

static void client_ready(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct ctl_client *c = arg;
	ssize_t n;

	if ((events & EPSEC_LOOP_ERR) && !(events & EPSEC_LOOP_IN)) {
		client_free(c);
		return;
	}
	/* A full buffer holds a complete line or is refused as too long, so
	 * it is never full here; a zero-length recv would read as EOF. */
	if ((events & EPSEC_LOOP_IN) && c->in_len < sizeof(c->in)) {
		n = recv(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			client_free(c);
			return;
		}
		if (n == 0)
			c->eof = true;
		if (n > 0)
			c->in_len += (size_t)n;
	}
	client_pump(c);
}

/* ------------------------------------------------------------ listener */

static void refuse_busy(int fd)
{
	static const char line[] = "{\"ok\":false,\"error\":\"too many control clients\"}\n";

	if (send(fd, line, sizeof(line) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		EPSEC_DBG("control client refused: %s", strerror(errno));
	close(fd);
}

/* Clients with a reply still going out are busy, not idle. */
static void drop_idle(struct epsec_loop *loop, void *arg)
{
	struct epsec_ctl *ctl = arg;
	uint64_t now = epsec_now_ms();
	struct ctl_client *c, *next;

	for (c = ctl->clients; c; c = next) {
		next = c->next;
		if (!c->out && now - c->idle_since_ms >= CTL_IDLE_MS) {
			EPSEC_DBG("control client dropped: no request in %d ms", CTL_IDLE_MS);
			client_free(c);
		}
	}
}

static void accept_ready(struct epsec_loop *loop, int fd, uint32_t events, void *arg)
{
	struct epsec_ctl *ctl = arg;
	struct ctl_client *c;
	int cfd;

	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (ctl->n_clients >= CTL_CLIENTS_MAX) {
			refuse_busy(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || epsec_loop_add_fd(loop, cfd, EPSEC_LOOP_IN, client_ready, c) < 0) {
			EPSEC_WARN("control client dropped: out of memory");
			free(c);
			close(cfd);
			continue;
		}
		c->ctl = ctl;
		c->fd = cfd;
		c->idle_since_ms = epsec_now_ms();
		c->next = ctl->clients;
		ctl->clients = c;
		ctl->n_clients++;
	}
	if (errno != EAGAIN && errno != EINTR)
		EPSEC_WARN("%s: accept: %s", ctl->path, strerror(errno));
}

static int make_parent(const char *path)
{
	char *dir = strdup(path), *slash;
	int ret = 0;

	if (!dir)
		return -ENOMEM;
	for (slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*slash = '/';
	}
	free(dir);
	return ret;
}

static int unix_address(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* A socket nobody answers on is stale; one that answers belongs to a
 * daemon still running, which must not lose its socket to us. */
static int remove_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (ret == 0)
		return -EADDRINUSE;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int bind_socket(const char *path, int *out)
{
	struct sockaddr_un sa;
	int fd, ret;

	ret = unix_address(path, &sa);
	if (ret == 0)
		ret = make_parent(path);
	if (ret == 0)
		ret = remove_stale(path, &sa);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* chmod between bind and listen: nobody can connect before it. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
	    listen(fd, 16) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

int epsec_ctl_listen(struct epsec_loop *loop, const char *path, epsec_ctl_fn fn, void *arg,
		     struct epsec_ctl **out)
{
	struct epsec_ctl *ctl = calloc(1, sizeof(*ctl));
	int ret;

	if (!ctl)
		return -ENOMEM;
	ctl->fd = -1;
	ctl->loop = loop;
	ctl->fn = fn;
	ctl->arg = arg;
	ctl->path = strdup(path);
	if (!ctl->path) {
		free(ctl);
		return -ENOMEM;
	}
	ctl->timer = -1;
	ret = bind_socket(path, &ctl->fd);
	if (ret == 0)
		ret = epsec_loop_add_fd(loop, ctl->fd, EPSEC_LOOP_IN, accept_ready, ctl);
	if (ret == 0 && (ret = epsec_loop_add_timer(loop, CTL_TICK_MS, drop_idle, ctl)) >= 0) {
		ctl->timer = ret;
		ret = 0;
	}
	if (ret < 0) {
		epsec_ctl_close(ctl);
		return ret;
	}
	*out = ctl;
	return 0;
}

void epsec_ctl_close(struct epsec_ctl *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_free(ctl->clients);
	if (ctl->timer >= 0)
		epsec_loop_del_timer(ctl->loop, ctl->timer);
	if (ctl->fd >= 0) {
		epsec_loop_del_fd(ctl->loop, ctl->fd);
		close(ctl->fd);
		unlink(ctl->path);
	}
	free(ctl->path);
	free(ctl);
}

/* ------------------------------------------------------------ client side */

/* Wait for `events` on fd until `deadline` (epsec_now_ms; 0: forever). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int ms = -1, n;

	if (deadline) {
		uint64_t now = epsec_now_ms();

		if (now >= deadline)
			return -ETIMEDOUT;
		ms = (int)(deadline - now);
	}
	n = poll(&p, 1, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* A full backlog makes a non-blocking unix connect fail with EAGAIN (it
 * is never "in progress"): retry until the deadline. */
static int call_connect(const char *path, uint64_t deadline, int *out)
{
	struct sockaddr_un sa;
	int fd, ret;

	ret = unix_address(path, &sa);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		if (ret == -EAGAIN || ret == -EINTR)
			ret = deadline && epsec_now_ms() >= deadline ? -ETIMEDOUT : 0;
		if (ret < 0) {
			close(fd);
			return ret;
		}
		poll(NULL, 0, 10);
	}
	*out = fd;
	return 0;
}

static int call_send(int fd, const char *text, uint64_t deadline)
{
	size_t len = strlen(text), off = 0;

	while (off < len) {
		ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		int ret;

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* One reply line into a malloc'd, NUL-terminated buffer. */
static int call_recv(int fd, uint64_t deadline, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *grown;
	int ret = 0;

	while (buf && !memchr(buf, '\n', len)) {
		ssize_t n;

		if (len + 1 >= cap) {
			grown = cap >= CTL_REPLY_MAX ? NULL : realloc(buf, cap * 2);
			if (!grown) {
				ret = cap >= CTL_REPLY_MAX ? -EMSGSIZE : -ENOMEM;
				break;
			}
			buf = grown;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			break;
		}
		ret = (errno == EAGAIN || errno == EINTR) ? wait_fd(fd, POLLIN, deadline) : -errno;
		if (ret < 0)
			break;
	}
	if (!buf)
		return -ENOMEM;
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*(char *)memchr(buf, '\n', len) = '\0';
	*out = buf;
	return 0;
}

int epsec_ctl_call(const char *path, struct json_object *req, int timeout_ms,
		   struct json_object **reply)
{
	uint64_t deadline = timeout_ms >= 0 ? epsec_now_ms() + (uint64_t)timeout_ms : 0;
	char *line = NULL, *text = NULL;
	int fd = -1, ret;

	ret = call_connect(path, deadline, &fd);
	if (ret < 0)
		return ret;
	if (asprintf(&text, "%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) < 0) {
		ret = -ENOMEM;
		text = NULL;
		goto out;
	}
	ret = call_send(fd, text, deadline);
	if (ret == 0)
		ret = call_recv(fd, deadline, &line);
	if (ret < 0)
		goto out;
	*reply = json_tokener_parse(line);
	if (!*reply || !json_object_is_type(*reply, json_type_object)) {
		json_object_put(*reply);
		*reply = NULL;
		ret = -EPROTO;
	}
out:
	free(line);
	free(text);
	close(fd);
	return ret;
}
