/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the control socket (ctl.c) as a daemon serves it:
 * the input is what one client sends, in random pieces, to a real
 * listener in a real loop, with a handler table like the daemons' (one
 * that answers nothing, one that answers a non-object, one whose reply
 * fills the socket). Every non-blank line gets exactly one reply, a JSON
 * object with "ok"; a line over the limit gets the refusal and the end of
 * the connection; a client that leaves, even without reading, costs no fd. */
#include "config.h"
#include "ctl.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define LINE_MAX_BYTES 65536      /* ctl.c's CTL_LINE_MAX */
#define BIG_REPLY (512 * 1024)    /* more than a unix socket buffers */
#define PUMPS_MAX 20000

static char dir[] = "/tmp/epsec-fuzz-ctl.XXXXXX";
static char sock_path[sizeof(dir) + 16];
static struct epsec_loop *loop;
static struct epsec_ctl *ctl;
static unsigned calls_tagged, calls_bad;

/* ------------------------------------------------------------ the daemon */

static struct json_object *tagged(struct json_object *r)
{
	calls_tagged++;
	json_object_object_add(r, "h", json_object_new_boolean(1));
	return r;
}

static struct json_object *reply_ok(void)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(1));
	return r;
}

static struct json_object *handle(const char *cmd, struct json_object *req, void *arg)
{
	struct json_object *r, *n;
	char *pad;

	(void)arg;
	if (!strcmp(cmd, "null") || !strcmp(cmd, "array")) {
		calls_bad++;
		return cmd[0] == 'n' ? NULL : json_object_new_array();
	}
	r = reply_ok();
	if (!strcmp(cmd, "echo")) {
		json_object_object_add(r, "req", json_object_get(req));
	} else if (!strcmp(cmd, "big")) {
		size_t len = BIG_REPLY;

		if (json_object_object_get_ex(req, "n", &n) && json_object_is_type(n, json_type_int))
			len = (size_t)json_object_get_int(n) % BIG_REPLY;
		pad = malloc(len + 1);
		if (!pad)
			abort();
		memset(pad, 'x', len);
		pad[len] = '\0';
		json_object_object_add(r, "pad", json_object_new_string(pad));
		free(pad);
	} else if (strcmp(cmd, "status")) {
		json_object_object_add(r, "ok", json_object_new_boolean(0));
		json_object_object_add(r, "error", json_object_new_string("unknown command"));
	}
	return tagged(r);
}

static void cleanup(void)
{
	epsec_ctl_close(ctl);
	epsec_loop_free(loop);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	epsec_log_open("fuzz", EPSEC_DEST_STDERR, 0);
	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/ctl.sock", dir);
	if (epsec_loop_new(&loop) < 0 || epsec_ctl_listen(loop, sock_path, handle, NULL, &ctl) < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static void stop(struct epsec_loop *l, void *arg)
{
	(void)arg;
	epsec_loop_stop(l);
}

/* Posted work posted by posted work runs on the next turn: the fds ready
 * now are served first (stopping at once could starve them). */
static void stop_next_turn(struct epsec_loop *l, void *arg)
{
	if (epsec_loop_post(l, stop, arg) < 0)
		abort();
}

/* One turn of the daemon's loop. */
static void pump(void)
{
	if (epsec_loop_post(loop, stop_next_turn, NULL) < 0 || epsec_loop_run(loop) < 0)
		abort();
}

/* ------------------------------------------------------------ the client */

struct client {
	int fd;
	char *in;            /* replies received */
	size_t in_len, in_cap;
	bool eof;
	/* the model: what was sent, line by line */
	size_t line_len;     /* bytes of the current line so far */
	bool line_blank;
	bool refused;        /* a line went over the limit: the rest is ignored */
	unsigned expected;   /* replies due */
};

static bool blank_byte(uint8_t b)
{
	return b == ' ' || b == '\t' || b == '\r';
}

/* The model, a line at a time (memchr: a traced byte loop over 64 KiB
 * lines was most of each run). */
static void sent_bytes(struct client *c, const uint8_t *p, size_t n)
{
	while (n && !c->refused) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n;

		for (size_t i = 0; c->line_blank && i < seg; i++)
			c->line_blank = blank_byte(p[i]);
		c->line_len += seg;
		if (c->line_len > LINE_MAX_BYTES) {
			c->refused = true;
			c->expected++;
			return;
		}
		if (!nl)
			return;
		if (!c->line_blank)
			c->expected++;
		c->line_len = 0;
		c->line_blank = true;
		p += seg + 1;
		n -= seg + 1;
	}
}

static void client_read(struct client *c)
{
	for (;;) {
		ssize_t n;

		if (c->in_cap - c->in_len < 65536) {
			c->in_cap = c->in_cap * 2 + 65536;
			c->in = realloc(c->in, c->in_cap);
			if (!c->in)
				abort();
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		if (n == 0)
			c->eof = true;
		else if (errno != EAGAIN && errno != ECONNRESET)
			abort();
		return;
	}
}

/* Send all of p, turning the loop (and reading, unless told not to) while
 * the socket is full. */
static void client_send(struct client *c, const uint8_t *p, size_t n, bool reads)
{
	unsigned pumps = 0;

	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0) {
			/* a refused line closes the connection under us */
			if (errno == EPIPE || errno == ECONNRESET)
				return;
			if (errno != EAGAIN || ++pumps > PUMPS_MAX)
				abort();
			pump();
			if (reads || pumps % 64 == 0)
				client_read(c);
			continue;
		}
		sent_bytes(c, p, (size_t)w);
		p += w;
		n -= (size_t)w;
	}
}

/* A line of exactly `len` bytes (a request or plain filler) and '\n'. */
static void client_send_long(struct client *c, size_t len, bool json, bool newline)
{
	static const char head[] = "{\"cmd\":\"status\",\"pad\":\"";
	uint8_t *line = malloc(len + 1);

	if (!line)
		abort();
	memset(line, 'y', len);
	if (json && len >= sizeof(head) + 1) {
		memcpy(line, head, sizeof(head) - 1);
		line[len - 2] = '"';
		line[len - 1] = '}';
	}
	line[len] = '\n';
	client_send(c, line, len + newline, true);
	free(line);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Each reply line is an object with "ok"; the tagged ones came from the
 * handler, the others are ctl.c's own refusals. */
static void check_replies(const struct client *c, unsigned tagged_before, unsigned bad_before)
{
	unsigned replies = 0, tagged_seen = 0, internal = 0;
	bool too_long = false;
	size_t off = 0;

	while (off < c->in_len) {
		char *nl = memchr(c->in + off, '\n', c->in_len - off);
		struct json_object *r, *ok, *h, *err;

		if (!nl)
			abort();
		*nl = '\0';
		r = json_tokener_parse(c->in + off);
		if (!r || !json_object_is_type(r, json_type_object) ||
		    !json_object_object_get_ex(r, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
			abort();
		if (json_object_object_get_ex(r, "h", &h))
			tagged_seen++;
		else if (!json_object_object_get_ex(r, "error", &err) || json_object_get_boolean(ok))
			abort();
		else if (!strcmp(json_object_get_string(err), "internal error"))
			internal++;
		else if (!strncmp(json_object_get_string(err), "request too long", 16))
			too_long = true;
		if (too_long && nl + 1 != c->in + c->in_len)
			abort(); /* nothing after the refusal */
		json_object_put(r);
		replies++;
		off = (size_t)(nl - c->in) + 1;
	}
	if (replies != c->expected || too_long != c->refused ||
	    tagged_seen != calls_tagged - tagged_before || internal != calls_bad - bad_before)
		abort();
}

static int client_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	pump(); /* accepted */
	return fd;
}

/* Input: a flags byte, a piece-size byte, then the bytes to send. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned tagged_before = calls_tagged, bad_before = calls_bad, pumps = 0;
	struct client c = { .line_blank = true };
	unsigned flags = size > 0 ? data[0] : 0, piece = size > 1 ? data[1] : 0;
	bool reads = !(flags & 1), leave = flags & 2;
	int before = count_fds();

	data += size < 2 ? size : 2;
	size -= size < 2 ? size : 2;
	c.fd = client_connect();
	while (size) {
		size_t n = piece ? (piece < size ? piece : size) : size;

		client_send(&c, data, n, reads);
		data += n;
		size -= n;
		pump();
		if (reads)
			client_read(&c);
	}
	/* the line limit, exactly at it and one past */
	if (flags & 4)
		client_send_long(&c, LINE_MAX_BYTES - (flags & 8 ? 0 : 1), flags & 16, true);
	if (flags & 32)
		client_send_long(&c, LINE_MAX_BYTES + 1, flags & 16, !(flags & 64));
	if (leave) {
		/* gone without reading: the daemon must let go of it */
		close(c.fd);
		while (count_fds() != before)
			if (++pumps > PUMPS_MAX)
				abort();
			else
				pump();
		free(c.in);
		return 0;
	}
	/* a last line without its newline is served at EOF */
	if (!c.refused && !c.line_blank)
		c.expected++;
	shutdown(c.fd, SHUT_WR);
	while (!c.eof) {
		if (++pumps > PUMPS_MAX)
			abort();
		pump();
		client_read(&c);
	}
	close(c.fd);
	check_replies(&c, tagged_before, bad_before);
	free(c.in);
	if (count_fds() != before)
		abort();
	return 0;
}
