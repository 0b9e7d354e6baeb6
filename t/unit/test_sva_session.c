/* SPDX-License-Identifier: MIT */
/* libepsec against a small mux made of the real link layer: a listener on
 * a unix socket that records what the SDK sends (HELLO, READ, VERDICT) and
 * answers READs from an in-memory file, fails them, ignores them, or drops
 * the connection. Covers the handshake, inline and remote preads, reads of
 * several events at once, connection loss, reconnects and close. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <epsec/epsec.h>
#include "link.h"
#include "loader.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "sdk.h"

#define FILE_MAX (3u * 1024u * 1024u + 12345u)
#define MIB (1024u * 1024u)

enum read_mode { READ_ANSWER, READ_FAIL, READ_IGNORE, READ_DROP };

struct fake {
	struct epsec_loop *loop;
	pthread_t thread;
	struct epsec_listener *listener;
	struct epsec_conn *conn; /* loop thread only */
	char dir[64];
	char uri[128];
	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum read_mode mode;
	unsigned connections, closes, hellos, reads, verdict_count;
	uint32_t max_read;
	epsec_msg *hello;       /* the last one */
	epsec_msg *verdicts[16];
};

static uint8_t *pattern;

static uint8_t pattern_at(uint64_t i)
{
	return (uint8_t)(i * 31u + (i >> 11) + 7u);
}

/* ---------------------------------------------------------------- mux side */

static void send_data(struct epsec_conn *c, const Epsec__Read *rd, int error)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;
	uint64_t end = rd->offset + rd->length;

	d.req_id = rd->req_id;
	d.offset = rd->offset;
	if (error) {
		d.has_error = 1;
		d.error = error;
	} else {
		if (end > FILE_MAX)
			end = FILE_MAX;
		d.has_data = 1;
		d.data.data = pattern + rd->offset;
		d.data.len = end > rd->offset ? end - rd->offset : 0;
	}
	m.body_case = EPSEC__ENVELOPE__BODY_DATA;
	m.data = &d;
	epsec_conn_send(c, &m);
}

static bool on_read(struct fake *f, struct epsec_conn *c, const Epsec__Read *rd)
{
	enum read_mode mode;

	pthread_mutex_lock(&f->lock);
	f->reads++;
	if (rd->length > f->max_read)
		f->max_read = rd->length;
	mode = f->mode;
	pthread_mutex_unlock(&f->lock);
	switch (mode) {
	case READ_ANSWER:
		send_data(c, rd, 0);
		break;
	case READ_FAIL:
		send_data(c, rd, EACCES);
		break;
	case READ_IGNORE:
		break;
	case READ_DROP:
		epsec_conn_reject(c, ECONNABORTED, "test drops the SVA");
		return true;
	}
	return false;
}

static void fake_msg(struct epsec_conn *c, epsec_msg *m, void *arg)
{
	struct fake *f = arg;

	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_HELLO:
		pthread_mutex_lock(&f->lock);
		epsec_msg_free(f->hello);
		f->hello = m;
		f->hellos++;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		return;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		pthread_mutex_lock(&f->lock);
		if (f->verdict_count < 16) {
			f->verdicts[f->verdict_count++] = m;
			m = NULL;
		}
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		on_read(f, c, m->read);
		break;
	default:
		break;
	}
	epsec_msg_free(m);
}

static void fake_closed(struct epsec_conn *c, int reason, void *arg)
{
	struct fake *f = arg;

	if (f->conn == c)
		f->conn = NULL;
	pthread_mutex_lock(&f->lock);
	f->closes++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static int fake_accept(struct epsec_conn *c, void *arg)
{
	struct fake *f = arg;

	epsec_conn_set_handlers(c, fake_msg, fake_closed, f);
	f->conn = c;
	pthread_mutex_lock(&f->lock);
	f->connections++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* Work the test thread hands the mux's loop. */
struct job {
	struct fake *f;
	Epsec__Envelope__BodyCase what;
	uint64_t req_id, size;
	size_t inline_len;
};

static void send_welcome(struct fake *f)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Welcome w = EPSEC__WELCOME__INIT;

	w.version = EPSEC_PROTO_VERSION_MAX;
	w.id = "fake-mux";
	m.body_case = EPSEC__ENVELOPE__BODY_WELCOME;
	m.welcome = &w;
	epsec_conn_send(f->conn, &m);
}

static void send_event(struct fake *f, const struct job *j)
{
	Epsec__Envelope m = EPSEC__ENVELOPE__INIT;
	Epsec__Event e = EPSEC__EVENT__INIT;

	e.req_id = j->req_id;
	e.kind = EPSEC__EVENT_KIND__KIND_CLOSE_WRITE;
	e.has_size = 1;
	e.size = j->size;
	e.has_ino = 1;
	e.ino = 4242;
	e.has_uid = 1;
	e.uid = 1000;
	e.path = "/srv/data/file.bin";
	e.exe = "/usr/bin/cp";
	e.has_inline_data = 1;
	e.inline_data.data = pattern;
	e.inline_data.len = j->inline_len;
	m.body_case = EPSEC__ENVELOPE__BODY_EVENT;
	m.event = &e;
	epsec_conn_send(f->conn, &m);
}

static void run_job(struct epsec_loop *loop, void *arg)
{
	struct job *j = arg;

	if (j->f->conn) {
		if (j->what == EPSEC__ENVELOPE__BODY_WELCOME)
			send_welcome(j->f);
		else if (j->what == EPSEC__ENVELOPE__BODY_EVENT)
			send_event(j->f, j);
		else
			epsec_conn_reject(j->f->conn, ECONNABORTED, "test drops the SVA");
	}
	free(j);
}

static void post_job(struct fake *f, Epsec__Envelope__BodyCase what, uint64_t req_id,
		     uint64_t size, size_t inline_len)
{
	struct job *j = calloc(1, sizeof(*j));

	assert_non_null(j);
	j->f = f;
	j->what = what;
	j->req_id = req_id;
	j->size = size;
	j->inline_len = inline_len;
	assert_int_equal(epsec_loop_post(f->loop, run_job, j), 0);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	epsec_loop_run(f->loop);
	return NULL;
}

static void set_mode(struct fake *f, enum read_mode mode)
{
	pthread_mutex_lock(&f->lock);
	f->mode = mode;
	pthread_mutex_unlock(&f->lock);
}

/* Wait until *counter >= n; false after timeout_ms. */
static bool wait_count(struct fake *f, unsigned *counter, unsigned n, int timeout_ms)
{
	uint64_t end = epsec_now_ms() + (uint64_t)timeout_ms;
	bool ok;

	pthread_mutex_lock(&f->lock);
	while (*counter < n && epsec_now_ms() < end) {
		pthread_mutex_unlock(&f->lock);
		usleep(2000);
		pthread_mutex_lock(&f->lock);
	}
	ok = *counter >= n;
	pthread_mutex_unlock(&f->lock);
	return ok;
}

static unsigned count(struct fake *f, const unsigned *counter)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = *counter;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static uint32_t max_read(struct fake *f)
{
	uint32_t n;

	pthread_mutex_lock(&f->lock);
	n = f->max_read;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static bool wait_connected(struct epsec_session *s, bool want, int timeout_ms)
{
	uint64_t end = epsec_now_ms() + (uint64_t)timeout_ms;

	while (epsec_session_connected(s) != want && epsec_now_ms() < end)
		usleep(2000);
	return epsec_session_connected(s) == want;
}

/* ---------------------------------------------------------------- fixture */

struct ctx {
	struct fake f;
	struct epsec_session *s;
};

static int fake_start(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_sva_session.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->uri, sizeof(f->uri), "unix://%s/mux.sock", f->dir);
	if (epsec_loop_new(&f->loop) < 0)
		return -1;
	if (epsec_listen(f->loop, f->uri, NULL, EPSEC_ROLE_SVA, fake_accept, f, &f->listener) < 0)
		return -1;
	return pthread_create(&f->thread, NULL, fake_main, f) == 0 ? 0 : -1;
}

static void stop_job(struct epsec_loop *loop, void *arg)
{
	struct fake *f = arg;

	if (f->conn)
		epsec_conn_close(f->conn);
	f->conn = NULL;
	epsec_listener_close(f->listener);
	epsec_loop_stop(loop);
}

static void fake_stop(struct fake *f)
{
	char path[160];

	epsec_loop_post(f->loop, stop_job, f);
	pthread_join(f->thread, NULL);
	epsec_loop_free(f->loop);
	epsec_msg_free(f->hello);
	for (unsigned i = 0; i < f->verdict_count; i++)
		epsec_msg_free(f->verdicts[i]);
	snprintf(path, sizeof(path), "%s/mux.sock", f->dir);
	unlink(path);
	rmdir(f->dir);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}

static int open_session(struct ctx *c)
{
	struct epsec_session_config cfg = {
		.mux_uri = c->f.uri,
		.id = "test-sva",
		.engines = "eicar, clamav,,yara",
		.generation = 7,
	};

	return epsec_session_open(&cfg, &c->s);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c || fake_start(&c->f) < 0 || open_session(c) < 0)
		return -1;
	*state = c;
	return 0;
}

/* Connected and welcomed. */
static int setup_welcomed(void **state)
{
	struct ctx *c;

	if (setup(state) < 0)
		return -1;
	c = *state;
	if (!wait_count(&c->f, &c->f.hellos, 1, 3000))
		return -1;
	post_job(&c->f, EPSEC__ENVELOPE__BODY_WELCOME, 0, 0, 0);
	return wait_connected(c->s, true, 3000) ? 0 : -1;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	epsec_session_close(c->s);
	fake_stop(&c->f);
	free(c);
	return 0;
}

static struct epsec_event *next_event(struct ctx *c)
{
	struct epsec_event *ev = NULL;

	assert_int_equal(epsec_session_next(c->s, &ev, 3000), 0);
	assert_non_null(ev);
	return ev;
}

static void assert_pattern(const uint8_t *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_at(off + i))
			fail_msg("byte %llu differs", (unsigned long long)(off + i));
}

/* ---------------------------------------------------------------- tests */

static void test_hello_then_welcome(void **state)
{
	struct ctx *c = *state;
	Epsec__Hello *h;

	assert_true(wait_count(&c->f, &c->f.hellos, 1, 3000));
	assert_false(epsec_session_connected(c->s));
	/* No other HELLO comes while we look (asserting under the lock
	 * would leave it held for the teardown). */
	pthread_mutex_lock(&c->f.lock);
	h = c->f.hello->hello;
	pthread_mutex_unlock(&c->f.lock);
	assert_int_equal(h->role, EPSEC__ROLE__ROLE_SVA);
	assert_string_equal(h->id, "test-sva");
	assert_string_equal(h->build, epsec_sdk_version());
	assert_int_equal(h->version_min, EPSEC_PROTO_VERSION_MIN);
	assert_int_equal(h->version_max, EPSEC_PROTO_VERSION_MAX);
	assert_int_equal(h->n_engines, 3);
	assert_string_equal(h->engines[0], "eicar");
	assert_string_equal(h->engines[1], "clamav");
	assert_string_equal(h->engines[2], "yara");
	assert_true(h->has_generation);
	assert_int_equal(h->generation, 7);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_WELCOME, 0, 0, 0);
	assert_true(wait_connected(c->s, true, 3000));
}

static void test_file_fields(void **state)
{
	struct ctx *c = *state;
	struct epsec_event *ev;
	struct epsec_file *f;

	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 11, 5000, 100);
	ev = next_event(c);
	f = epsec_event_file(ev);
	assert_string_equal(f->path, "/srv/data/file.bin");
	assert_string_equal(f->exe, "/usr/bin/cp");
	assert_int_equal(f->size, 5000);
	assert_int_equal(f->ino, 4242);
	assert_int_equal(f->uid, 1000);
	assert_int_equal(f->kind, EPSEC_EVENT_CLOSE_WRITE);
	assert_non_null(f->pread);
	assert_non_null(epsec_event_agent(ev));
	assert_int_equal(epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, true), 0);
}

static void test_reads(void **state)
{
	struct ctx *c = *state;
	const size_t size = 2 * MIB + 500000, inl = 1000;
	uint8_t *buf = malloc(size + 10);
	struct epsec_event *ev;
	struct epsec_file *f;
	Epsec__Verdict *v;

	assert_non_null(buf);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 12, size, inl);
	ev = next_event(c);
	f = epsec_event_file(ev);
	/* Inside the inline bytes: no READ. */
	assert_int_equal(f->pread(f, buf, 600, 100), 600);
	assert_pattern(buf, 100, 600);
	assert_int_equal(count(&c->f, &c->f.reads), 0);
	/* Across the inline end. */
	assert_int_equal(f->pread(f, buf, 2000, 500), 2000);
	assert_pattern(buf, 500, 2000);
	assert_true(count(&c->f, &c->f.reads) >= 1);
	/* The whole file in one call: split into READs of at most 1 MiB. */
	assert_int_equal(f->pread(f, buf, size + 10, 0), (ssize_t)size);
	assert_pattern(buf, 0, size);
	assert_true(max_read(&c->f) <= MIB);
	assert_true(count(&c->f, &c->f.reads) >= 4);
	/* At and past the end. */
	assert_int_equal(f->pread(f, buf, 10, size), 0);
	assert_int_equal(f->pread(f, buf, 10, size + 100), 0);
	epsec_session_set_generation(c->s, 9);
	assert_int_equal(epsec_event_verdict(ev, EPSEC_ACTION_DELETE, "eicar", "EICAR-Test-File",
					     true), 0);
	assert_true(wait_count(&c->f, &c->f.verdict_count, 1, 3000));
	v = c->f.verdicts[0]->verdict;
	assert_int_equal(v->req_id, 12);
	assert_int_equal(v->action, EPSEC__ACTION__ACTION_DELETE);
	assert_string_equal(v->engine, "eicar");
	assert_string_equal(v->signature, "EICAR-Test-File");
	assert_true(v->has_cacheable && v->cacheable);
	/* The generation when the event was handed out (7), not the one
	 * set while it was scanned: it may have been scanned with older
	 * signatures. */
	assert_true(v->has_generation);
	assert_int_equal(v->generation, 7);
	free(buf);
}

static void test_read_error(void **state)
{
	struct ctx *c = *state;
	struct epsec_event *ev;
	struct epsec_file *f;
	uint8_t buf[4096];

	set_mode(&c->f, READ_FAIL);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 13, 100000, 1000);
	ev = next_event(c);
	f = epsec_event_file(ev);
	assert_int_equal(f->pread(f, buf, 100, 0), 100);
	assert_int_equal(f->pread(f, buf, 100, 5000), -EACCES);
	/* Bytes before the failure are returned; the error comes next time. */
	assert_int_equal(f->pread(f, buf, 2000, 500), 500);
	assert_int_equal(epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, false), 0);
	assert_int_equal(epsec_event_verdict(NULL, EPSEC_ACTION_ALLOW, NULL, NULL, false),
			 -EINVAL);
}

static void test_connection_lost(void **state)
{
	struct ctx *c = *state;
	struct epsec_event *ev;
	struct epsec_file *f;
	uint8_t buf[4096];

	set_mode(&c->f, READ_DROP);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 14, 100000, 1000);
	ev = next_event(c);
	f = epsec_event_file(ev);
	assert_int_equal(f->pread(f, buf, 100, 50000), -ECONNRESET);
	assert_true(wait_connected(c->s, false, 3000));
	/* The event died with its link: answered by the mux, freed here. */
	assert_int_equal(epsec_event_verdict(ev, EPSEC_ACTION_DENY, "x", "y", true), -ECONNRESET);
	/* The SDK comes back by itself (backoff starts at 100 ms). */
	assert_true(wait_count(&c->f, &c->f.hellos, 2, 3000));
	set_mode(&c->f, READ_ANSWER);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_WELCOME, 0, 0, 0);
	assert_true(wait_connected(c->s, true, 3000));
	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 15, 100000, 1000);
	ev = next_event(c);
	f = epsec_event_file(ev);
	assert_int_equal(f->pread(f, buf, 100, 50000), 100);
	assert_pattern(buf, 50000, 100);
	assert_int_equal(epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, true), 0);
	assert_true(wait_count(&c->f, &c->f.verdict_count, 1, 3000));
	assert_int_equal(c->f.verdicts[0]->verdict->req_id, 15);
}

static void test_queued_events_dropped(void **state)
{
	struct ctx *c = *state;
	struct epsec_event *ev = NULL;

	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 16, 10, 10);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 17, 10, 10);
	post_job(&c->f, EPSEC__ENVELOPE__BODY__NOT_SET, 0, 0, 0); /* drop */
	assert_true(wait_count(&c->f, &c->f.hellos, 2, 3000));
	/* The mux re-sends them; the SDK must not hand out dead events. */
	assert_int_equal(epsec_session_next(c->s, &ev, 100), -ETIMEDOUT);
}

struct reader {
	struct ctx *c;
	int errors;
};

static void *read_one(void *arg)
{
	struct reader *r = arg;
	struct epsec_event *ev = NULL;
	const size_t chunk = 300000;
	uint8_t *buf = malloc(chunk);
	struct epsec_file *f;
	uint64_t off = 0;
	ssize_t n;

	if (!buf || epsec_session_next(r->c->s, &ev, 3000) < 0) {
		r->errors++;
		free(buf);
		return NULL;
	}
	f = epsec_event_file(ev);
	while ((n = f->pread(f, buf, chunk, off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern_at(off + (uint64_t)i))
				r->errors++;
		off += (uint64_t)n;
	}
	if (n < 0 || off != f->size)
		r->errors++;
	if (epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, true) < 0)
		r->errors++;
	free(buf);
	return NULL;
}

static void test_concurrent_reads(void **state)
{
	struct ctx *c = *state;
	struct reader r[4];
	pthread_t t[4];
	bool seen[4] = { false };

	for (int i = 0; i < 4; i++)
		post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 100 + (uint64_t)i, FILE_MAX, 65536);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct reader){ .c = c };
		assert_int_equal(pthread_create(&t[i], NULL, read_one, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].errors, 0);
	}
	assert_true(wait_count(&c->f, &c->f.verdict_count, 4, 3000));
	for (int i = 0; i < 4; i++) {
		uint64_t id = c->f.verdicts[i]->verdict->req_id;

		assert_true(id >= 100 && id < 104);
		seen[id - 100] = true;
	}
	assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
}

static void *read_blocked(void *arg)
{
	struct reader *r = arg;
	struct epsec_event *ev = NULL;
	uint8_t buf[100];
	ssize_t n;

	if (epsec_session_next(r->c->s, &ev, 3000) < 0) {
		r->errors = 100;
		return NULL;
	}
	n = epsec_event_file(ev)->pread(epsec_event_file(ev), buf, sizeof(buf), 9000);
	r->errors = n == -ESHUTDOWN ? 0 : 1;
	/* After close: freed, not sent, and the session outlives us. */
	if (epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, true) != -ESHUTDOWN)
		r->errors++;
	return NULL;
}

static void test_close_while_reading(void **state)
{
	struct ctx *c = *state;
	struct reader r = { .c = c };
	uint64_t start;
	pthread_t t;

	set_mode(&c->f, READ_IGNORE);
	post_job(&c->f, EPSEC__ENVELOPE__BODY_EVENT, 18, 10000, 100);
	assert_int_equal(pthread_create(&t, NULL, read_blocked, &r), 0);
	assert_true(wait_count(&c->f, &c->f.reads, 1, 3000));
	start = epsec_now_ms();
	epsec_session_close(c->s);
	c->s = NULL;
	pthread_join(t, NULL);
	assert_true(epsec_now_ms() - start < 2000);
	assert_int_equal(r.errors, 0);
}

static void test_next_timeout(void **state)
{
	struct ctx *c = *state;
	struct epsec_event *ev = NULL;
	uint64_t start = epsec_now_ms();

	assert_int_equal(epsec_session_next(c->s, &ev, 150), -ETIMEDOUT);
	assert_true(epsec_now_ms() - start >= 140);
	assert_null(ev);
}

static void test_open_errors(void **state)
{
	struct epsec_session_config cfg = { .mux_uri = "no-scheme-here" };
	struct epsec_session *s = NULL;

	assert_int_equal(epsec_session_open(NULL, &s), -EINVAL);
	assert_int_equal(epsec_session_open(&cfg, &s), -EINVAL);
	cfg.mux_uri = "nosuchtransport://somewhere";
	assert_int_equal(epsec_session_open(&cfg, &s), -ENOENT);
	assert_null(s);
	epsec_session_close(NULL);
}

/* Nobody listens: open still succeeds and keeps trying; close is quick. */
static void test_no_mux(void **state)
{
	struct epsec_session_config cfg = { .mux_uri = "unix:///nonexistent/epsec/mux.sock" };
	struct epsec_session *s = NULL;
	uint64_t start;

	assert_int_equal(epsec_session_open(&cfg, &s), 0);
	usleep(300000);
	assert_false(epsec_session_connected(s));
	start = epsec_now_ms();
	epsec_session_close(s);
	assert_true(epsec_now_ms() - start < 1000);
}

static void test_version(void **state)
{
	const char *v = epsec_sdk_version();

	assert_non_null(v);
	assert_true(strncmp(v, EPSEC_VERSION " (", strlen(EPSEC_VERSION) + 2) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_no_mux),
		cmocka_unit_test_setup_teardown(test_hello_then_welcome, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_fields, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_reads, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_read_error, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_next_timeout, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_connection_lost, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_queued_events_dropped, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_reads, setup_welcomed, teardown),
		cmocka_unit_test_setup_teardown(test_close_while_reading, setup_welcomed, teardown),
	};
	int failed;

	epsec_log_open("test_sva_session", EPSEC_DEST_STDERR,
		       getenv("EPSEC_TEST_DEBUG") ? EPSEC_LOG_DEBUG : EPSEC_LOG_ERR);
	/* The fake mux shares this process's loader (and its unix transport)
	 * with the SDK, as epsec-sva's engines do: the program owns it. */
	if (epsec_loader_init(NULL) < 0)
		return 1;
	epsec_sva_loader_external();
	pattern = malloc(FILE_MAX);
	if (!pattern)
		return 1;
	for (uint64_t i = 0; i < FILE_MAX; i++)
		pattern[i] = pattern_at(i);
	failed = cmocka_run_group_tests_name("libepsec session", tests, NULL, NULL);
	free(pattern);
	epsec_loader_exit();
	return failed;
}
