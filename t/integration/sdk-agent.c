/* SPDX-License-Identifier: MIT */
/* A stand-in agent for epsec-sva's tests: connects to a mux's agent
 * endpoint, sends an EVENT per file named on the command line (content
 * from memory: the first -i bytes inline, the rest served to READs) and
 * prints one line per VERDICT: "FILE ACTION ENGINE SIGNATURE GENERATION".
 * With -d SECONDS it keeps -j events in flight for that long, cycling
 * through the files, so reloads can be timed against a steady load; an
 * ERROR from the mux is then a failure, never retried. Exit 0 when every
 * event was answered with a verdict. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <epsec/version.h>

#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"

#define TICK_MS 20
#define RETRY_MS 200

struct file {
	const char *path;
	uint8_t *data;
	size_t size;
};

struct req {
	unsigned file;
	uint64_t resend_at; /* one-shot mode: no SVA yet, send again */
	bool answered;
};

struct agent {
	struct epsec_loop *loop;
	struct epsec_conn *conn;
	const char *uri;
	bool welcomed;
	struct file *files;
	unsigned n_files;
	size_t inline_bytes;
	unsigned inflight_max, inflight;
	uint64_t load_until, deadline; /* ms; load_until 0 = one-shot */
	struct req *reqs;
	size_t n_reqs, cap_reqs;
	unsigned answered, errors, next_file;
	bool lost;
};

static const char *const action_names[] = { "none", "allow", "deny", "delete", "quarantine" };

static int read_file(const char *path, struct file *f)
{
	FILE *in = fopen(path, "rb");
	long len;

	if (!in)
		return -errno;
	fseek(in, 0, SEEK_END);
	len = ftell(in);
	rewind(in);
	f->path = path;
	f->size = len > 0 ? (size_t)len : 0;
	f->data = malloc(f->size + 1);
	if (!f->data || fread(f->data, 1, f->size, in) != f->size) {
		fclose(in);
		return -EIO;
	}
	fclose(in);
	return 0;
}

static void send_event(struct agent *a, uint64_t id)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Event e = EPSEC__EVENT__INIT;
	const struct file *f = &a->files[a->reqs[id - 1].file];

	e.req_id = id;
	e.kind = EPSEC__EVENT_KIND__KIND_OPEN;
	e.has_size = 1;
	e.size = f->size;
	e.has_ino = 1;
	e.ino = 5000 + a->reqs[id - 1].file;
	e.path = (char *)f->path;
	e.exe = "/usr/bin/sdk-agent";
	e.has_inline_data = 1;
	e.inline_data.data = f->data;
	e.inline_data.len = f->size < a->inline_bytes ? f->size : a->inline_bytes;
	m.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	m.event = &e;
	if (epsec_conn_send(a->conn, &m) < 0)
		a->errors++;
}

static int new_req(struct agent *a, unsigned file)
{
	struct req *r;

	if (a->n_reqs == a->cap_reqs) {
		a->cap_reqs = a->cap_reqs ? 2 * a->cap_reqs : 64;
		r = realloc(a->reqs, a->cap_reqs * sizeof(*r));
		if (!r)
			return -ENOMEM;
		a->reqs = r;
	}
	a->reqs[a->n_reqs] = (struct req){ .file = file };
	a->n_reqs++;
	a->inflight++;
	send_event(a, a->n_reqs);
	return 0;
}

/* Load mode: top the window up while the load lasts. */
static void fill(struct agent *a)
{
	if (!a->welcomed || epsec_now_ms() >= a->load_until)
		return;
	while (a->inflight < a->inflight_max) {
		if (new_req(a, a->next_file) < 0)
			return;
		a->next_file = (a->next_file + 1) % a->n_files;
	}
}

static void on_read(struct agent *a, const Epsec__Read *rd)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;
	const struct file *f;
	uint64_t end;

	if (rd->req_id < 1 || rd->req_id > a->n_reqs)
		return;
	f = &a->files[a->reqs[rd->req_id - 1].file];
	end = rd->offset + rd->length < f->size ? rd->offset + rd->length : f->size;
	d.req_id = rd->req_id;
	d.offset = rd->offset;
	d.has_data = 1;
	d.data.data = f->data + (rd->offset < f->size ? rd->offset : f->size);
	d.data.len = end > rd->offset ? end - rd->offset : 0;
	m.body_case = EPSEC__ENVELOPE__BODY_DATA;
	m.data = &d;
	epsec_conn_send(a->conn, &m);
}

static void on_verdict(struct agent *a, const Epsec__Verdict *v)
{
	struct req *r;

	if (v->req_id < 1 || v->req_id > a->n_reqs || a->reqs[v->req_id - 1].answered) {
		fprintf(stderr, "sdk-agent: unexpected verdict for %llu\n",
			(unsigned long long)v->req_id);
		a->errors++;
		return;
	}
	r = &a->reqs[v->req_id - 1];
	r->answered = true;
	a->answered++;
	a->inflight--;
	printf("%s %s %s %s %llu\n", a->files[r->file].path,
	       v->action < 5 ? action_names[v->action] : "?", v->engine ? v->engine : "-",
	       v->signature && v->signature[0] ? v->signature : "-",
	       (unsigned long long)(v->has_generation ? v->generation : 0));
	fill(a);
}

static void on_error(struct agent *a, const Epsec__Error *e)
{
	if (!e->has_req_id || e->req_id < 1 || e->req_id > a->n_reqs) {
		fprintf(stderr, "sdk-agent: mux error %u: %s\n", e->code,
			e->message ? e->message : "");
		return;
	}
	if (a->load_until) {
		fprintf(stderr, "sdk-agent: event %llu failed: %s\n",
			(unsigned long long)e->req_id, e->message ? e->message : "");
		a->errors++;
		a->reqs[e->req_id - 1].answered = true;
		a->inflight--;
		fill(a);
		return;
	}
	/* One-shot: the SVA may still be connecting. */
	a->reqs[e->req_id - 1].resend_at = epsec_now_ms() + RETRY_MS;
}

static void on_welcome(struct agent *a)
{
	a->welcomed = true;
	if (a->load_until) {
		fill(a);
		return;
	}
	for (unsigned i = 0; i < a->n_files; i++)
		if (new_req(a, i) < 0)
			epsec_loop_stop(a->loop);
}

static void agent_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct agent *a = arg;

	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_WELCOME:
		on_welcome(a);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		on_read(a, m->read);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		on_verdict(a, m->verdict);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		on_error(a, m->error);
		break;
	default:
		break;
	}
	epsec_msg_free(m);
}

static void agent_closed(struct epsec_conn *c, int reason, void *arg)
{
	struct agent *a = arg;

	a->conn = NULL;
	if (a->welcomed) {
		/* Events in flight are lost with the link: a test failure. */
		fprintf(stderr, "sdk-agent: connection to the mux lost: %s\n", strerror(-reason));
		a->lost = true;
		epsec_loop_stop(a->loop);
	}
}

static void agent_connect(struct agent *a)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;

	if (epsec_connect(a->loop, a->uri, NULL, EPSEC_ROLE_MUX, &a->conn) < 0) {
		a->conn = NULL;
		return;
	}
	epsec_conn_set_handlers(a->conn, agent_msg, agent_closed, a);
	h.version_min = EPSEC_PROTO_VERSION_MIN;
	h.version_max = EPSEC_PROTO_VERSION_MAX;
	h.role = EPSEC__ROLE__ROLE_AGENT;
	h.id = "sdk-agent";
	h.build = "test";
	m.body_case = EPSEC__ENVELOPE__BODY_HELLO;
	m.hello = &h;
	epsec_conn_send(a->conn, &m);
}

static bool finished(const struct agent *a)
{
	if (a->load_until)
		return epsec_now_ms() >= a->load_until && a->inflight == 0;
	return a->answered == a->n_files;
}

static void tick(struct epsec_loop *loop, void *arg)
{
	struct agent *a = arg;
	uint64_t now = epsec_now_ms();

	if (finished(a) || now > a->deadline) {
		epsec_loop_stop(loop);
		return;
	}
	if (!a->conn) {
		agent_connect(a);
		return;
	}
	for (size_t i = 0; i < a->n_reqs; i++) {
		if (a->reqs[i].resend_at && now >= a->reqs[i].resend_at) {
			a->reqs[i].resend_at = 0;
			send_event(a, i + 1);
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: sdk-agent [-d SECONDS] [-j INFLIGHT] [-i INLINE_BYTES] "
			"[-t TIMEOUT_S] URI FILE...\n");
	exit(2);
}

static void parse_args(struct agent *a, int argc, char **argv, unsigned *load_s,
		       unsigned *timeout_s)
{
	int opt;

	while ((opt = getopt(argc, argv, "d:j:i:t:")) != -1) {
		switch (opt) {
		case 'd':
			*load_s = (unsigned)atoi(optarg);
			break;
		case 'j':
			a->inflight_max = (unsigned)atoi(optarg);
			break;
		case 'i':
			a->inline_bytes = (size_t)atol(optarg);
			break;
		case 't':
			*timeout_s = (unsigned)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (argc - optind < 2 || a->inflight_max == 0)
		usage();
	a->uri = argv[optind];
	a->n_files = (unsigned)(argc - optind - 1);
}

int main(int argc, char **argv)
{
	struct agent a = { .inline_bytes = 65536, .inflight_max = 8 };
	unsigned load_s = 0, timeout_s = 20;
	int timer, ok;

	parse_args(&a, argc, argv, &load_s, &timeout_s);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	epsec_log_open("sdk-agent", EPSEC_DEST_STDERR, EPSEC_LOG_WARNING);
	a.files = calloc(a.n_files, sizeof(*a.files));
	for (unsigned i = 0; a.files && i < a.n_files; i++) {
		if (read_file(argv[optind + 1 + i], &a.files[i]) < 0) {
			fprintf(stderr, "sdk-agent: cannot read %s\n", argv[optind + 1 + i]);
			return 2;
		}
	}
	if (!a.files || epsec_loader_init(NULL) < 0 || epsec_loop_new(&a.loop) < 0)
		return 2;
	a.deadline = epsec_now_ms() + 1000ull * (load_s + timeout_s);
	if (load_s)
		a.load_until = epsec_now_ms() + 1000ull * load_s;
	timer = epsec_loop_add_timer(a.loop, TICK_MS, tick, &a);
	if (timer < 0)
		return 2;
	epsec_loop_run(a.loop);
	if (a.conn)
		epsec_conn_close(a.conn);
	epsec_loop_del_timer(a.loop, timer);
	epsec_loop_free(a.loop);
	epsec_loader_exit();
	ok = !a.lost && a.errors == 0 && a.answered == a.n_reqs && a.n_reqs > 0;
	fprintf(stderr, "sdk-agent: sent %zu answered %u errors %u%s\n", a.n_reqs, a.answered,
		a.errors, a.lost ? " (connection lost)" : "");
	for (unsigned i = 0; i < a.n_files; i++)
		free(a.files[i].data);
	free(a.files);
	free(a.reqs);
	return ok ? 0 : 1;
}
