/* SPDX-License-Identifier: MIT */
/* Unit tests for libcore/msg.c: every message type round trip, the role
 * table, semantic validation, and hostile bytes. */
#include "config.h"
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <epsec/transport.h>

#define NBODY 12 /* HELLO .. WORKING */

/* Storage for one message of each type, filled with distinctive values. */
struct sample {
	epsec_msg env;
	Epsec__Hello hello;
	Epsec__Welcome welcome;
	Epsec__Event event;
	Epsec__Read read;
	Epsec__Data data;
	Epsec__Verdict verdict;
	Epsec__Error error;
	Epsec__Ping ping;
	Epsec__Pong pong;
	Epsec__Log log;
	Epsec__Generation generation;
	Epsec__Working working;
};

static uint64_t working_ids[] = { 14, 15, 1u << 31 };

static char *caps[] = { "cap-a", "cap-b" };
static char *engines[] = { "eicar", "yara" };
static uint8_t inline_bytes[300];

static void sample_init(struct sample *s, Epsec__Envelope__BodyCase body)
{
	epsec_msg env = EPSEC__ENVELOPE__INIT;
	Epsec__Hello h = EPSEC__HELLO__INIT;
	Epsec__Welcome w = EPSEC__WELCOME__INIT;
	Epsec__Event e = EPSEC__EVENT__INIT;
	Epsec__Read r = EPSEC__READ__INIT;
	Epsec__Data d = EPSEC__DATA__INIT;
	Epsec__Verdict v = EPSEC__VERDICT__INIT;
	Epsec__Error er = EPSEC__ERROR__INIT;
	Epsec__Ping pi = EPSEC__PING__INIT;
	Epsec__Pong po = EPSEC__PONG__INIT;
	Epsec__Log lg = EPSEC__LOG__INIT;
	Epsec__Generation g = EPSEC__GENERATION__INIT;
	Epsec__Working wk = EPSEC__WORKING__INIT;
	size_t i;

	for (i = 0; i < sizeof(inline_bytes); i++)
		inline_bytes[i] = (uint8_t)(i * 7);
	h.version_min = 1, h.version_max = 3, h.role = EPSEC__ROLE__ROLE_SVA;
	h.id = "sva-host", h.build = "0.1.0 (gtest)";
	h.n_capabilities = 2, h.capabilities = caps, h.n_engines = 2, h.engines = engines;
	h.has_generation = 1, h.generation = 42;
	w.version = 1, w.id = "mux", w.build = "0.1.0", w.n_capabilities = 1, w.capabilities = caps;
	e.req_id = 7, e.kind = EPSEC__EVENT_KIND__KIND_CLOSE_WRITE;
	e.has_dev = 1, e.dev = 0x801, e.has_ino = 1, e.ino = 123456789, e.has_size = 1, e.size = 300;
	e.has_mtime_ns = 1, e.mtime_ns = -5, e.has_ctime_ns = 1, e.ctime_ns = 1700000000123456789;
	e.has_mode = 1, e.mode = 0100644, e.has_uid = 1, e.uid = 1000, e.has_pid = 1, e.pid = 4242;
	e.exe = "/usr/bin/cp", e.path = "/srv/data/file.bin";
	e.has_inline_data = 1, e.inline_data.data = inline_bytes, e.inline_data.len = 300;
	r.req_id = 8, r.offset = 65536, r.length = EPSEC_READ_MAX;
	d.req_id = 9, d.offset = 65536, d.has_data = 1, d.data.data = inline_bytes, d.data.len = 100;
	v.req_id = 10, v.action = EPSEC__ACTION__ACTION_DELETE, v.engine = "eicar";
	v.signature = "Eicar-Test-Signature", v.has_cacheable = 1, v.cacheable = 1;
	v.has_generation = 1, v.generation = 42;
	er.has_req_id = 1, er.req_id = 11, er.code = EHOSTUNREACH, er.message = "no SVA";
	pi.seq = 12, po.seq = 13;
	lg.level = 6, lg.text = "hello from the agent", lg.source = "vsep";
	lg.has_time_ns = 1, lg.time_ns = 99;
	g.generation = 1795000000;
	s->env = env, s->hello = h, s->welcome = w, s->event = e, s->read = r, s->data = d;
	s->verdict = v, s->error = er, s->ping = pi, s->pong = po, s->log = lg;
	s->generation = g;
	wk.n_req_ids = 3, wk.req_ids = working_ids;
	s->working = wk;
	s->env.body_case = body;
	switch (body) {
	case EPSEC__ENVELOPE__BODY_HELLO: s->env.hello = &s->hello; break;
	case EPSEC__ENVELOPE__BODY_WELCOME: s->env.welcome = &s->welcome; break;
	case EPSEC__ENVELOPE__BODY_EVENT: s->env.event = &s->event; break;
	case EPSEC__ENVELOPE__BODY_READ: s->env.read = &s->read; break;
	case EPSEC__ENVELOPE__BODY_DATA: s->env.data = &s->data; break;
	case EPSEC__ENVELOPE__BODY_VERDICT: s->env.verdict = &s->verdict; break;
	case EPSEC__ENVELOPE__BODY_ERROR: s->env.error = &s->error; break;
	case EPSEC__ENVELOPE__BODY_PING: s->env.ping = &s->ping; break;
	case EPSEC__ENVELOPE__BODY_PONG: s->env.pong = &s->pong; break;
	case EPSEC__ENVELOPE__BODY_LOG: s->env.log = &s->log; break;
	case EPSEC__ENVELOPE__BODY_GENERATION: s->env.generation = &s->generation; break;
	case EPSEC__ENVELOPE__BODY_WORKING: s->env.working = &s->working; break;
	default: break;
	}
}

/* The role table of the protocol, written out independently of msg.c. */
static bool expect_allowed(enum epsec_role role, int body)
{
	static const char *const table[] = {
		[EPSEC_ROLE_AGENT] = "HELLO EVENT DATA PING PONG LOG ERROR",
		[EPSEC_ROLE_SVA] = "HELLO READ VERDICT PING PONG ERROR LOG GENERATION WORKING",
		[EPSEC_ROLE_MUX] = "WELCOME EVENT READ DATA VERDICT ERROR PING PONG GENERATION",
		[EPSEC_ROLE_CTL] = "HELLO PING",
	};
	static const char *const names[] = { "", "HELLO", "WELCOME", "EVENT", "READ", "DATA",
					     "VERDICT", "ERROR", "PING", "PONG", "LOG",
					     "GENERATION", "WORKING" };
	const char *p = table[role];
	size_t n = strlen(names[body]);

	while ((p = strstr(p, names[body]))) {
		if (p[n] == ' ' || p[n] == '\0')
			return true;
		p += n;
	}
	return false;
}

static enum epsec_role sender_of(int body)
{
	static const enum epsec_role roles[] = { EPSEC_ROLE_AGENT, EPSEC_ROLE_SVA, EPSEC_ROLE_MUX,
						 EPSEC_ROLE_CTL };
	size_t i;

	for (i = 0; i < 4; i++)
		if (expect_allowed(roles[i], body))
			return roles[i];
	fail();
	return EPSEC_ROLE_AGENT;
}

static void encode_sample(Epsec__Envelope__BodyCase body, void **buf, size_t *len)
{
	struct sample s;

	sample_init(&s, body);
	assert_int_equal(epsec_msg_encode(&s.env, buf, len), 0);
}

/* Decode `buf` after patching: cb edits the decoded-from sample first. */
static int decode_edited(Epsec__Envelope__BodyCase body, void (*edit)(struct sample *),
			 enum epsec_role role)
{
	struct sample s;
	epsec_msg *m = NULL;
	void *buf;
	size_t len;
	int r;

	sample_init(&s, body);
	edit(&s);
	assert_int_equal(epsec_msg_encode(&s.env, &buf, &len), 0);
	r = epsec_msg_decode(buf, len, role, &m);
	if (r == 0)
		assert_non_null(m);
	else
		assert_null(m);
	epsec_msg_free(m);
	free(buf);
	return r;
}

static void check_round_trip(const epsec_msg *m, Epsec__Envelope__BodyCase body)
{
	assert_int_equal(m->body_case, body);
	switch (body) {
	case EPSEC__ENVELOPE__BODY_HELLO:
		assert_int_equal(m->hello->version_min, 1);
		assert_int_equal(m->hello->version_max, 3);
		assert_int_equal(m->hello->role, EPSEC__ROLE__ROLE_SVA);
		assert_string_equal(m->hello->id, "sva-host");
		assert_int_equal(m->hello->n_engines, 2);
		assert_string_equal(m->hello->engines[1], "yara");
		assert_string_equal(m->hello->capabilities[0], "cap-a");
		assert_true(m->hello->has_generation && m->hello->generation == 42);
		break;
	case EPSEC__ENVELOPE__BODY_WELCOME:
		assert_int_equal(m->welcome->version, 1);
		assert_string_equal(m->welcome->id, "mux");
		break;
	case EPSEC__ENVELOPE__BODY_EVENT:
		assert_int_equal(m->event->req_id, 7);
		assert_int_equal(m->event->kind, EPSEC__EVENT_KIND__KIND_CLOSE_WRITE);
		assert_int_equal(m->event->ino, 123456789);
		assert_true(m->event->mtime_ns == -5);
		assert_true(m->event->ctime_ns == 1700000000123456789);
		assert_int_equal(m->event->mode, 0100644);
		assert_int_equal(m->event->pid, 4242);
		assert_string_equal(m->event->path, "/srv/data/file.bin");
		assert_string_equal(m->event->exe, "/usr/bin/cp");
		assert_int_equal(m->event->inline_data.len, 300);
		assert_memory_equal(m->event->inline_data.data, inline_bytes, 300);
		break;
	case EPSEC__ENVELOPE__BODY_READ:
		assert_int_equal(m->read->req_id, 8);
		assert_int_equal(m->read->offset, 65536);
		assert_int_equal(m->read->length, EPSEC_READ_MAX);
		break;
	case EPSEC__ENVELOPE__BODY_DATA:
		assert_int_equal(m->data->req_id, 9);
		assert_int_equal(m->data->data.len, 100);
		assert_memory_equal(m->data->data.data, inline_bytes, 100);
		assert_false(m->data->has_error);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		assert_int_equal(m->verdict->req_id, 10);
		assert_int_equal(m->verdict->action, EPSEC__ACTION__ACTION_DELETE);
		assert_string_equal(m->verdict->signature, "Eicar-Test-Signature");
		assert_true(m->verdict->cacheable);
		break;
	case EPSEC__ENVELOPE__BODY_ERROR:
		assert_int_equal(m->error->req_id, 11);
		assert_int_equal(m->error->code, EHOSTUNREACH);
		assert_string_equal(m->error->message, "no SVA");
		break;
	case EPSEC__ENVELOPE__BODY_PING:
		assert_int_equal(m->ping->seq, 12);
		break;
	case EPSEC__ENVELOPE__BODY_PONG:
		assert_int_equal(m->pong->seq, 13);
		break;
	case EPSEC__ENVELOPE__BODY_LOG:
		assert_int_equal(m->log->level, 6);
		assert_string_equal(m->log->text, "hello from the agent");
		assert_string_equal(m->log->source, "vsep");
		break;
	case EPSEC__ENVELOPE__BODY_GENERATION:
		assert_int_equal(m->generation->generation, 1795000000);
		break;
	case EPSEC__ENVELOPE__BODY_WORKING:
		assert_int_equal(m->working->n_req_ids, 3);
		assert_int_equal(m->working->req_ids[2], 1u << 31);
		break;
	default:
		fail();
	}
}

static void test_round_trip_every_type(void **state)
{
	int body;

	for (body = 1; body <= NBODY; body++) {
		epsec_msg *m;
		void *buf;
		size_t len;

		encode_sample(body, &buf, &len);
		assert_int_equal(epsec_msg_decode(buf, len, sender_of(body), &m), 0);
		check_round_trip(m, body);
		epsec_msg_free(m);
		free(buf);
	}
}

static void test_role_table(void **state)
{
	static const enum epsec_role roles[] = { EPSEC_ROLE_AGENT, EPSEC_ROLE_SVA, EPSEC_ROLE_MUX,
						 EPSEC_ROLE_CTL };
	size_t i;
	int body;

	for (body = 1; body <= NBODY; body++) {
		void *buf;
		size_t len;

		encode_sample(body, &buf, &len);
		for (i = 0; i < 4; i++) {
			epsec_msg *m = NULL;
			bool want = expect_allowed(roles[i], body);
			int r = epsec_msg_decode(buf, len, roles[i], &m);

			assert_int_equal(epsec_msg_allowed(roles[i], body), want);
			assert_int_equal(r, want ? 0 : -EPERM);
			if (!want) {
				assert_null(m);
				assert_non_null(strstr(epsec_msg_last_error(), "may not send"));
			}
			epsec_msg_free(m);
		}
		/* no role at all may send nothing */
		{
			epsec_msg *m = NULL;

			assert_int_equal(epsec_msg_decode(buf, len, (enum epsec_role)0, &m), -EPERM);
			assert_int_equal(epsec_msg_decode(buf, len, (enum epsec_role)77, &m), -EPERM);
		}
		free(buf);
	}
	assert_false(epsec_msg_allowed(EPSEC_ROLE_AGENT, EPSEC__ENVELOPE__BODY__NOT_SET));
	assert_false(epsec_msg_allowed(EPSEC_ROLE_AGENT, (Epsec__Envelope__BodyCase)99));
}

/* The envelope is one length-delimited field: every proper prefix cuts it. */
static void test_truncated(void **state)
{
	int body;

	for (body = 1; body <= NBODY; body++) {
		void *buf;
		size_t len, n;

		encode_sample(body, &buf, &len);
		for (n = 0; n < len; n++) {
			epsec_msg *m = (epsec_msg *)&m;

			assert_int_equal(epsec_msg_decode(buf, n, sender_of(body), &m), -EBADMSG);
			assert_null(m);
		}
		free(buf);
	}
}

static void check_invariants(const epsec_msg *m, enum epsec_role role)
{
	assert_int_not_equal(m->body_case, EPSEC__ENVELOPE__BODY__NOT_SET);
	assert_true(expect_allowed(role, m->body_case));
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_READ:
		assert_true(m->read->req_id && m->read->length >= 1 &&
			    m->read->length <= EPSEC_READ_MAX);
		break;
	case EPSEC__ENVELOPE__BODY_EVENT:
		assert_true(m->event->req_id && m->event->kind >= 1 && m->event->kind <= 4);
		break;
	case EPSEC__ENVELOPE__BODY_VERDICT:
		assert_true(m->verdict->req_id && m->verdict->action >= 1 &&
			    m->verdict->action <= 4);
		break;
	case EPSEC__ENVELOPE__BODY_HELLO:
		assert_true(m->hello->role >= 1 && m->hello->role <= 4);
		break;
	default:
		break;
	}
}

static void decode_any(const uint8_t *buf, size_t len, int *ok)
{
	static const enum epsec_role roles[] = { EPSEC_ROLE_AGENT, EPSEC_ROLE_SVA, EPSEC_ROLE_MUX,
						 EPSEC_ROLE_CTL };
	size_t i;

	for (i = 0; i < 4; i++) {
		epsec_msg *m = NULL;
		int r = epsec_msg_decode(buf, len, roles[i], &m);

		assert_true(r == 0 || r == -EBADMSG || r == -EPERM);
		if (r == 0) {
			void *again;
			size_t alen;

			check_invariants(m, roles[i]);
			/* what we accept we can send on (the mux forwards) */
			assert_int_equal(epsec_msg_encode(m, &again, &alen), 0);
			free(again);
			epsec_msg_free(m);
			(*ok)++;
		}
	}
}

/* Random buffers may parse as protobuf (API-FACTS 9): no crash, and what
 * gets through satisfies the semantic rules. */
static void test_garbage(void **state)
{
	uint8_t buf[256];
	int i, ok = 0;

	srand(42);
	for (i = 0; i < 20000; i++) {
		size_t n = (size_t)rand() % sizeof(buf), k;

		for (k = 0; k < n; k++)
			buf[k] = (uint8_t)rand();
		if (n && i % 2)
			buf[0] = (uint8_t)((1 + rand() % NBODY) << 3 | 2); /* a plausible body tag */
		decode_any(buf, n, &ok);
	}
	print_message("random buffers accepted: %d\n", ok);
}

static void test_bit_flips(void **state)
{
	int body, bit, ok = 0;

	for (body = 1; body <= NBODY; body++) {
		uint8_t *buf;
		size_t len;

		encode_sample(body, (void **)&buf, &len);
		for (bit = 0; bit < (int)(len * 8) && bit < 4000; bit++) {
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			decode_any(buf, len, &ok);
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		free(buf);
	}
	assert_true(ok > 0);
}

static void req_id_zero(struct sample *s)
{
	s->event.req_id = s->read.req_id = s->data.req_id = s->verdict.req_id = 0;
}

static void test_req_id_required(void **state)
{
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_EVENT, req_id_zero, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_non_null(strstr(epsec_msg_last_error(), "req_id"));
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_READ, req_id_zero, EPSEC_ROLE_SVA),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_DATA, req_id_zero, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_VERDICT, req_id_zero, EPSEC_ROLE_SVA),
			 -EBADMSG);
}

static void read_too_long(struct sample *s) { s->read.length = EPSEC_READ_MAX + 1; }
static void read_empty(struct sample *s) { s->read.length = 0; }
static void read_one(struct sample *s) { s->read.length = 1; }
static void read_far(struct sample *s) { s->read.offset = UINT64_MAX - 10; }
static void data_too_long(struct sample *s) { s->data.data.len = EPSEC_READ_MAX + 1; }
static void data_neg_error(struct sample *s) { s->data.has_error = 1, s->data.error = -5; }
static void data_error(struct sample *s)
{
	s->data.has_data = 0, s->data.has_error = 1, s->data.error = EACCES;
}

static void test_read_and_data_limits(void **state)
{
	static uint8_t big[EPSEC_READ_MAX + 1];

	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_READ, read_too_long, EPSEC_ROLE_SVA),
			 -EBADMSG);
	assert_non_null(strstr(epsec_msg_last_error(), "length"));
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_READ, read_empty, EPSEC_ROLE_SVA),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_READ, read_one, EPSEC_ROLE_SVA), 0);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_READ, read_far, EPSEC_ROLE_SVA),
			 -EBADMSG);
	/* DATA answers a READ: never more than it may ask for */
	{
		struct sample s;
		epsec_msg *m = NULL;
		void *buf;
		size_t len;

		sample_init(&s, EPSEC__ENVELOPE__BODY_DATA);
		s.data.data.data = big;
		data_too_long(&s);
		assert_int_equal(epsec_msg_encode(&s.env, &buf, &len), 0);
		assert_int_equal(epsec_msg_decode(buf, len, EPSEC_ROLE_AGENT, &m), -EBADMSG);
		free(buf);
	}
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_DATA, data_neg_error, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_DATA, data_error, EPSEC_ROLE_AGENT), 0);
}

static void hello_no_role(struct sample *s) { s->hello.role = EPSEC__ROLE__ROLE_NONE; }
static void hello_bad_role(struct sample *s) { s->hello.role = (Epsec__Role)9; }
static void hello_bad_range(struct sample *s) { s->hello.version_min = 5; }
static void event_bad_kind(struct sample *s) { s->event.kind = (Epsec__EventKind)77; }
static void event_no_kind(struct sample *s) { s->event.kind = EPSEC__EVENT_KIND__KIND_NONE; }
static void verdict_no_action(struct sample *s) { s->verdict.action = EPSEC__ACTION__ACTION_NONE; }
static void verdict_bad_action(struct sample *s) { s->verdict.action = (Epsec__Action)-3; }
static void log_bad_level(struct sample *s) { s->log.level = 8; }
static void error_no_code(struct sample *s) { s->error.code = 0; }
static void generation_zero(struct sample *s) { s->generation.generation = 0; }

static void test_semantics(void **state)
{
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_no_role, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_bad_role, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_bad_range, EPSEC_ROLE_SVA),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_EVENT, event_bad_kind, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_EVENT, event_no_kind, EPSEC_ROLE_MUX),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_VERDICT, verdict_no_action,
				       EPSEC_ROLE_SVA), -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_VERDICT, verdict_bad_action,
				       EPSEC_ROLE_MUX), -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_GENERATION, generation_zero,
				       EPSEC_ROLE_SVA), -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_LOG, log_bad_level, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_ERROR, error_no_code, EPSEC_ROLE_MUX),
			 -EBADMSG);
}

/* Names are bounded: one peer must not make the mux's memory or everyone's
 * status huge. The longest allowed passes, one byte more does not. */
static char long_text[EPSEC_LOG_TEXT_MAX + 2];

static char *text_of(size_t n)
{
	memset(long_text, 'x', n);
	long_text[n] = '\0';
	return long_text;
}

static void hello_id_max(struct sample *s) { s->hello.id = text_of(EPSEC_ID_MAX); }
static void hello_id_over(struct sample *s) { s->hello.id = text_of(EPSEC_ID_MAX + 1); }
static void hello_build_over(struct sample *s) { s->hello.build = text_of(EPSEC_ID_MAX + 1); }
static void hello_many_caps(struct sample *s)
{
	static char *caps33[33];

	for (size_t i = 0; i < 33; i++)
		caps33[i] = "fd";
	s->hello.capabilities = caps33;
	s->hello.n_capabilities = 33;
}
static void event_path_max(struct sample *s) { s->event.path = text_of(EPSEC_PATH_MAX); }
static void event_path_over(struct sample *s) { s->event.path = text_of(EPSEC_PATH_MAX + 1); }
static void event_exe_over(struct sample *s) { s->event.exe = text_of(EPSEC_PATH_MAX + 1); }
static void log_text_over(struct sample *s) { s->log.text = text_of(EPSEC_LOG_TEXT_MAX + 1); }

static void test_bounds(void **state)
{
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_id_max, EPSEC_ROLE_AGENT), 0);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_id_over, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_build_over,
				       EPSEC_ROLE_SVA), -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_HELLO, hello_many_caps, EPSEC_ROLE_SVA),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_EVENT, event_path_max, EPSEC_ROLE_AGENT),
			 0);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_EVENT, event_path_over,
				       EPSEC_ROLE_AGENT), -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_EVENT, event_exe_over, EPSEC_ROLE_AGENT),
			 -EBADMSG);
	assert_int_equal(decode_edited(EPSEC__ENVELOPE__BODY_LOG, log_text_over, EPSEC_ROLE_AGENT),
			 -EBADMSG);
}

static void test_no_body(void **state)
{
	epsec_msg *m = NULL;
	uint8_t unknown_only[] = { ((99 << 3 | 0) & 0x7f) | 0x80, 99 >> 4, 1 };

	assert_int_equal(epsec_msg_decode("", 0, EPSEC_ROLE_AGENT, &m), -EBADMSG);
	assert_int_equal(epsec_msg_decode(unknown_only, sizeof(unknown_only), EPSEC_ROLE_AGENT, &m),
			 -EBADMSG);
	assert_non_null(strstr(epsec_msg_last_error(), "no message body"));
}

/* "a\0b" cannot be built with C strings: build "aXb" and patch the bytes. */
static int decode_with_nul(Epsec__Envelope__BodyCase body, enum epsec_role role)
{
	struct sample s;
	epsec_msg *m = NULL;
	uint8_t *buf, *x;
	size_t len;
	int r;

	sample_init(&s, body);
	s.hello.id = s.event.path = s.log.text = s.verdict.signature = "pre-aXb-post";
	assert_int_equal(epsec_msg_encode(&s.env, (void **)&buf, &len), 0);
	x = memmem(buf, len, "aXb", 3);
	assert_non_null(x);
	x[1] = '\0';
	r = epsec_msg_decode(buf, len, role, &m);
	epsec_msg_free(m);
	free(buf);
	return r;
}

static void test_nul_in_strings(void **state)
{
	assert_int_equal(decode_with_nul(EPSEC__ENVELOPE__BODY_HELLO, EPSEC_ROLE_SVA), -EBADMSG);
	assert_non_null(strstr(epsec_msg_last_error(), "NUL"));
	assert_int_equal(decode_with_nul(EPSEC__ENVELOPE__BODY_EVENT, EPSEC_ROLE_AGENT), -EBADMSG);
	assert_non_null(strstr(epsec_msg_last_error(), "path"));
	assert_int_equal(decode_with_nul(EPSEC__ENVELOPE__BODY_LOG, EPSEC_ROLE_AGENT), -EBADMSG);
	assert_int_equal(decode_with_nul(EPSEC__ENVELOPE__BODY_VERDICT, EPSEC_ROLE_SVA), -EBADMSG);
}

static void test_nul_in_bytes_is_fine(void **state)
{
	static uint8_t zeros[64];
	struct sample s;
	epsec_msg *m;
	void *buf;
	size_t len;

	sample_init(&s, EPSEC__ENVELOPE__BODY_EVENT);
	s.event.inline_data.data = zeros;
	s.event.inline_data.len = sizeof(zeros);
	assert_int_equal(epsec_msg_encode(&s.env, &buf, &len), 0);
	assert_int_equal(epsec_msg_decode(buf, len, EPSEC_ROLE_AGENT, &m), 0);
	assert_int_equal(m->event->inline_data.len, sizeof(zeros));
	epsec_msg_free(m);
	free(buf);
}

/* A newer peer's extra fields are ignored, at the top and inside a body. */
static void test_unknown_fields_ignored(void **state)
{
	struct sample s;
	epsec_msg *m;
	uint8_t *buf, *more;
	size_t len;

	sample_init(&s, EPSEC__ENVELOPE__BODY_PING);
	assert_int_equal(epsec_msg_encode(&s.env, (void **)&buf, &len), 0);
	/* envelope: 0x42 = field 8 (ping), len; ping body = 08 0c. Add field 15
	 * (varint) inside the ping and field 20 (bytes) after it. */
	assert_int_equal(len, 4);
	more = malloc(len + 2 + 5);
	assert_non_null(more);
	more[0] = buf[0];
	more[1] = (uint8_t)(buf[1] + 2);
	memcpy(more + 2, buf + 2, 2);
	more[4] = 15 << 3 | 0;
	more[5] = 5;
	more[6] = ((20 << 3 | 2) & 0x7f) | 0x80;
	more[7] = (20 << 3 | 2) >> 7;
	more[8] = 2;
	more[9] = 'h';
	more[10] = 'i';
	assert_int_equal(epsec_msg_decode(more, 11, EPSEC_ROLE_AGENT, &m), 0);
	assert_int_equal(m->body_case, EPSEC__ENVELOPE__BODY_PING);
	assert_int_equal(m->ping->seq, 12);
	epsec_msg_free(m);
	free(more);
	free(buf);
}

/* protobuf-c takes field number 0 written as an overlong varint, then packs
 * it as 00 and refuses its own output: the mux must not forward that. */
static void test_field_zero_refused(void **state)
{
	static const uint8_t ping_then_zero[] = { 0x42, 0x02, 0x08, 0x05, 0x80, 0x80, 0x00, 0x01 };
	static const uint8_t inner_zero[] = { 0x42, 0x05, 0x08, 0x05, 0x80, 0x80, 0x00 };
	epsec_msg *m = NULL;

	assert_int_equal(epsec_msg_decode(ping_then_zero, sizeof(ping_then_zero), EPSEC_ROLE_AGENT,
					  &m), -EBADMSG);
	assert_non_null(strstr(epsec_msg_last_error(), "field number 0"));
	assert_int_equal(epsec_msg_decode(inner_zero, sizeof(inner_zero), EPSEC_ROLE_AGENT, &m),
			 -EBADMSG);
	assert_null(m);
}

static void test_encode_checks(void **state)
{
	struct sample s;
	void *buf;
	size_t len;
	static uint8_t huge[EPSEC_FRAME_MAX + 1];

	sample_init(&s, EPSEC__ENVELOPE__BODY_LOG);
	s.log.text = NULL; /* required */
	assert_int_equal(epsec_msg_encode(&s.env, &buf, &len), -EINVAL);
	sample_init(&s, EPSEC__ENVELOPE__BODY_EVENT);
	s.event.inline_data.data = huge;
	s.event.inline_data.len = sizeof(huge);
	assert_int_equal(epsec_msg_encode(&s.env, &buf, &len), -EMSGSIZE);
	{
		epsec_msg *m = NULL;

		assert_int_equal(epsec_msg_decode(huge, sizeof(huge), EPSEC_ROLE_AGENT, &m),
				 -EBADMSG);
	}
}

static void test_names(void **state)
{
	assert_string_equal(epsec_msg_name(EPSEC__ENVELOPE__BODY_HELLO), "HELLO");
	assert_string_equal(epsec_msg_name(EPSEC__ENVELOPE__BODY_VERDICT), "VERDICT");
	assert_string_equal(epsec_msg_name(EPSEC__ENVELOPE__BODY_LOG), "LOG");
	assert_string_equal(epsec_msg_name(EPSEC__ENVELOPE__BODY__NOT_SET), "NONE");
	assert_string_equal(epsec_msg_name((Epsec__Envelope__BodyCase)1000), "UNKNOWN");
	assert_string_equal(epsec_role_name(EPSEC_ROLE_AGENT), "agent");
	assert_string_equal(epsec_role_name(EPSEC_ROLE_MUX), "mux");
	assert_string_equal(epsec_role_name(EPSEC_ROLE_SVA), "sva");
	assert_string_equal(epsec_role_name(EPSEC_ROLE_CTL), "ctl");
	assert_string_equal(epsec_role_name((enum epsec_role)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_role_table),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_req_id_required),
		cmocka_unit_test(test_read_and_data_limits),
		cmocka_unit_test(test_semantics),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_nul_in_strings),
		cmocka_unit_test(test_nul_in_bytes_is_fine),
		cmocka_unit_test(test_unknown_fields_ignored),
		cmocka_unit_test(test_field_zero_refused),
		cmocka_unit_test(test_encode_checks),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
