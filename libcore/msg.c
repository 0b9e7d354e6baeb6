/* SPDX-License-Identifier: MIT */
/* The wire protocol: protobuf-c pack/unpack of the envelope, plus what
 * protobuf cannot say: which role may send which message, and which field
 * values make sense. A message refused here never reaches a daemon. */
#include "config.h"
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <epsec/transport.h>

#define BIT(body) (1u << (body))

static const uint32_t role_may_send[] = {
	[EPSEC_ROLE_AGENT] = BIT(EPSEC__ENVELOPE__BODY_HELLO) | BIT(EPSEC__ENVELOPE__BODY_EVENT) |
			     BIT(EPSEC__ENVELOPE__BODY_DATA) | BIT(EPSEC__ENVELOPE__BODY_PING) |
			     BIT(EPSEC__ENVELOPE__BODY_PONG) | BIT(EPSEC__ENVELOPE__BODY_LOG) |
			     BIT(EPSEC__ENVELOPE__BODY_ERROR),
	[EPSEC_ROLE_SVA] = BIT(EPSEC__ENVELOPE__BODY_HELLO) | BIT(EPSEC__ENVELOPE__BODY_READ) |
			   BIT(EPSEC__ENVELOPE__BODY_VERDICT) | BIT(EPSEC__ENVELOPE__BODY_PING) |
			   BIT(EPSEC__ENVELOPE__BODY_PONG) | BIT(EPSEC__ENVELOPE__BODY_ERROR) |
			   BIT(EPSEC__ENVELOPE__BODY_LOG) | BIT(EPSEC__ENVELOPE__BODY_GENERATION) |
			   BIT(EPSEC__ENVELOPE__BODY_WORKING),
	[EPSEC_ROLE_MUX] = BIT(EPSEC__ENVELOPE__BODY_WELCOME) | BIT(EPSEC__ENVELOPE__BODY_EVENT) |
			   BIT(EPSEC__ENVELOPE__BODY_READ) | BIT(EPSEC__ENVELOPE__BODY_DATA) |
			   BIT(EPSEC__ENVELOPE__BODY_VERDICT) | BIT(EPSEC__ENVELOPE__BODY_ERROR) |
			   BIT(EPSEC__ENVELOPE__BODY_PING) | BIT(EPSEC__ENVELOPE__BODY_PONG) |
			   BIT(EPSEC__ENVELOPE__BODY_GENERATION),
	[EPSEC_ROLE_CTL] = BIT(EPSEC__ENVELOPE__BODY_HELLO) | BIT(EPSEC__ENVELOPE__BODY_PING),
};

static const char *const msg_names[] = {
	"NONE", "HELLO", "WELCOME", "EVENT", "READ", "DATA",
	"VERDICT", "ERROR", "PING", "PONG", "LOG", "GENERATION", "WORKING",
};

static const char *const role_names[] = { "none", "agent", "mux", "sva", "ctl" };

static _Thread_local char last_error[160];

__attribute__((format(printf, 2, 3)))
static int refuse(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *epsec_msg_last_error(void)
{
	return last_error;
}

const char *epsec_msg_name(Epsec__Envelope__BodyCase body)
{
	if ((unsigned)body < sizeof(msg_names) / sizeof(msg_names[0]))
		return msg_names[body];
	return "UNKNOWN";
}

const char *epsec_role_name(enum epsec_role role)
{
	if ((unsigned)role < sizeof(role_names) / sizeof(role_names[0]))
		return role_names[role];
	return "unknown";
}

bool epsec_caps_has(char *const *caps, size_t n, const char *cap)
{
	for (size_t i = 0; i < n; i++)
		if (caps[i] && !strcmp(caps[i], cap))
			return true;
	return false;
}

bool epsec_msg_carries_fd(const epsec_msg *m)
{
	return m->body_case == EPSEC__ENVELOPE__BODY_EVENT && m->event->has_local_fd &&
	       m->event->local_fd;
}

bool epsec_msg_allowed(enum epsec_role role, Epsec__Envelope__BodyCase body)
{
	if ((unsigned)role >= sizeof(role_may_send) / sizeof(role_may_send[0]))
		return false;
	if ((unsigned)body > EPSEC__ENVELOPE__BODY_WORKING)
		return false;
	return role_may_send[role] & BIT(body);
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	unsigned shift;

	for (shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;

		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* One field's key, and how many value bytes follow (varints consumed). */
static int read_field(const uint8_t **p, const uint8_t *end, uint64_t *key, uint64_t *len)
{
	static const uint8_t fixed[8] = { [1] = 8, [5] = 4 };

	if (!read_varint(p, end, key))
		return refuse(-EBADMSG, "malformed field key");
	switch (*key & 7) {
	case 0:
		if (!read_varint(p, end, len))
			return refuse(-EBADMSG, "malformed varint");
		*len = 0;
		return 0;
	case 2:
		return read_varint(p, end, len) ? 0 : refuse(-EBADMSG, "malformed length");
	case 1:
	case 5:
		*len = fixed[*key & 7];
		return 0;
	default:
		return refuse(-EBADMSG, "unsupported wire type %u", (unsigned)(*key & 7));
	}
}

/* What protobuf-c lets through but must not pass here, found by walking the
 * wire bytes with the descriptors:
 * - an embedded NUL in a string: protobuf-c NUL-terminates strings, so
 *   "a\0b" would reach a log or a path check as "a";
 * - field number 0 written as an overlong varint (80 80 00): protobuf-c
 *   keeps it as an unknown field and packs it again as 00, which it then
 *   refuses, so the mux would forward a message the SVA must drop (found by
 *   t/fuzz/fuzz_msg). */
static int wire_clean(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
		      unsigned depth)
{
	const uint8_t *end = p + n;
	uint64_t key = 0, v = 0;
	int r;

	while (p < end) {
		const ProtobufCFieldDescriptor *f;

		if ((r = read_field(&p, end, &key, &v)))
			return r;
		if (v > (uint64_t)(end - p))
			return refuse(-EBADMSG, "field runs past the end");
		if (key >> 3 == 0)
			return refuse(-EBADMSG, "field number 0 in %s", d->short_name);
		f = key >> 3 <= UINT32_MAX ?
			protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
		if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)v))
			return refuse(-EBADMSG, "%s.%s contains a NUL byte", d->short_name, f->name);
		if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 4 &&
		    (r = wire_clean(f->descriptor, p, (size_t)v, depth + 1)))
			return r;
		p += v;
	}
	return 0;
}

/* Strings a peer names itself and its files with are short: one peer
 * must not make everyone's status (or the mux's memory) huge. */
static int check_len(const char *what, const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;

	return n > max ? refuse(-EBADMSG, "%s longer than %zu bytes", what, max) : 0;
}

static int check_list(const char *what, char *const *v, size_t n, size_t max_n, size_t max_len)
{
	int r = 0;

	if (n > max_n)
		return refuse(-EBADMSG, "%s: %zu entries, at most %zu", what, n, max_n);
	for (size_t i = 0; i < n && !r; i++)
		r = check_len(what, v[i], max_len);
	return r;
}

static int check_hello(const Epsec__Hello *h)
{
	int r;

	if (h->role <= EPSEC__ROLE__ROLE_NONE || h->role > EPSEC__ROLE__ROLE_CTL)
		return refuse(-EBADMSG, "HELLO role %d invalid", (int)h->role);
	if (h->version_min > h->version_max)
		return refuse(-EBADMSG, "HELLO version range %u..%u empty", h->version_min,
			      h->version_max);
	if ((r = check_len("HELLO id", h->id, EPSEC_ID_MAX)) ||
	    (r = check_len("HELLO build", h->build, EPSEC_ID_MAX)) ||
	    (r = check_list("HELLO capabilities", h->capabilities, h->n_capabilities, 32, 64)))
		return r;
	return check_list("HELLO engines", h->engines, h->n_engines, 64, EPSEC_ID_MAX);
}

static int check_event(const Epsec__Event *e)
{
	int r;

	if (!e->req_id)
		return refuse(-EBADMSG, "EVENT req_id 0");
	if (e->kind <= EPSEC__EVENT_KIND__KIND_NONE || e->kind > EPSEC__EVENT_KIND__KIND_ONDEMAND)
		return refuse(-EBADMSG, "EVENT kind %d invalid", (int)e->kind);
	if ((r = check_len("EVENT path", e->path, EPSEC_PATH_MAX)))
		return r;
	return check_len("EVENT exe", e->exe, EPSEC_PATH_MAX);
}

static int check_read(const Epsec__Read *r)
{
	if (!r->req_id)
		return refuse(-EBADMSG, "READ req_id 0");
	if (r->length < 1 || r->length > EPSEC_READ_MAX)
		return refuse(-EBADMSG, "READ length %u not in 1..%u", r->length, EPSEC_READ_MAX);
	if (r->offset > (uint64_t)INT64_MAX - r->length)
		return refuse(-EBADMSG, "READ offset %llu out of range",
			      (unsigned long long)r->offset);
	return 0;
}

static int check_data(const Epsec__Data *d)
{
	if (!d->req_id)
		return refuse(-EBADMSG, "DATA req_id 0");
	if (d->offset > (uint64_t)INT64_MAX)
		return refuse(-EBADMSG, "DATA offset out of range");
	if (d->has_data && d->data.len > EPSEC_READ_MAX)
		return refuse(-EBADMSG, "DATA of %zu bytes over %u", d->data.len, EPSEC_READ_MAX);
	if (d->has_error && d->error < 0)
		return refuse(-EBADMSG, "DATA error %d negative", d->error);
	return 0;
}

static int check_verdict(const Epsec__Verdict *v)
{
	if (!v->req_id)
		return refuse(-EBADMSG, "VERDICT req_id 0");
	if (v->action <= EPSEC__ACTION__ACTION_NONE || v->action > EPSEC__ACTION__ACTION_QUARANTINE)
		return refuse(-EBADMSG, "VERDICT action %d invalid", (int)v->action);
	return 0;
}

static int check_body(const epsec_msg *m)
{
	switch (m->body_case) {
	case EPSEC__ENVELOPE__BODY_HELLO:
		return check_hello(m->hello);
	case EPSEC__ENVELOPE__BODY_EVENT:
		return check_event(m->event);
	case EPSEC__ENVELOPE__BODY_READ:
		return check_read(m->read);
	case EPSEC__ENVELOPE__BODY_DATA:
		return check_data(m->data);
	case EPSEC__ENVELOPE__BODY_VERDICT:
		return check_verdict(m->verdict);
	case EPSEC__ENVELOPE__BODY_ERROR:
		return m->error->code ? 0 : refuse(-EBADMSG, "ERROR code 0");
	case EPSEC__ENVELOPE__BODY_LOG:
		if (m->log->level > 7)
			return refuse(-EBADMSG, "LOG level %u", m->log->level);
		return check_len("LOG text", m->log->text, EPSEC_LOG_TEXT_MAX);
	case EPSEC__ENVELOPE__BODY_GENERATION:
		return m->generation->generation ? 0 : refuse(-EBADMSG, "GENERATION 0");
	default:
		return 0;
	}
}

static int check(const epsec_msg *m, enum epsec_role role, const void *buf, size_t len)
{
	int r;

	if (m->body_case == EPSEC__ENVELOPE__BODY__NOT_SET)
		return refuse(-EBADMSG, "no message body");
	if (!epsec_msg_allowed(role, m->body_case))
		return refuse(-EPERM, "%s may not send %s", epsec_role_name(role),
			      epsec_msg_name(m->body_case));
	r = check_body(m);
	if (r)
		return r;
	return wire_clean(&epsec__envelope__descriptor, buf, len, 0);
}

int epsec_msg_decode(const void *buf, size_t len, enum epsec_role sender_role, epsec_msg **out)
{
	epsec_msg *m;
	int r;

	*out = NULL;
	if (len > EPSEC_FRAME_MAX)
		return refuse(-EBADMSG, "message of %zu bytes over %u", len, EPSEC_FRAME_MAX);
	m = epsec__envelope__unpack(NULL, len, buf);
	if (!m)
		return refuse(-EBADMSG, "not a protobuf envelope (%zu bytes)", len);
	r = check(m, sender_role, buf, len);
	if (r) {
		epsec__envelope__free_unpacked(m, NULL);
		return r;
	}
	*out = m;
	return 0;
}

void epsec_msg_free(epsec_msg *m)
{
	if (m)
		epsec__envelope__free_unpacked(m, NULL);
}

int epsec_msg_encode(const epsec_msg *m, void **buf, size_t *len)
{
	size_t n;
	uint8_t *p;

	/* A required string left NULL would crash protobuf-c's packer. */
	if (!protobuf_c_message_check(&m->base))
		return -EINVAL;
	n = epsec__envelope__get_packed_size(m);
	if (n > EPSEC_FRAME_MAX)
		return -EMSGSIZE;
	p = malloc(n ? n : 1);
	if (!p)
		return -ENOMEM;
	epsec__envelope__pack(m, p);
	*buf = p;
	*len = n;
	return 0;
}
