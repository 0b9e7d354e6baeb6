/* SPDX-License-Identifier: MIT */
/* What the two halves of libepsec share: session.c (the network thread,
 * handshake, reconnects) and event.c (events, pread through the mux,
 * verdicts). Not installed: partners only see include/epsec/epsec.h. */
#ifndef EPSEC_SVA_SDK_H
#define EPSEC_SVA_SDK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <epsec/epsec.h>
#include "msg.h"

/* Largest READ the protocol allows; longer preads are split. */
#define EPSEC_SDK_READ_MAX (1024u * 1024u)
/* How long a pread waits for the agent's DATA. */
#define EPSEC_SDK_READ_TIMEOUT_MS 10000

/* A pread blocked on DATA; lives on the reading thread's stack and is
 * linked into the session while it waits. */
struct epsec_read_wait {
	struct epsec_read_wait *next;
	uint64_t req_id;
	uint64_t offset;
	void *buf;
	size_t len;
	ssize_t result;
	bool done;
	pthread_cond_t *cond;
};

/* Work for the network thread, queued by workers (READ, VERDICT). */
struct epsec_out_op {
	struct epsec_out_op *next;
	Epsec__Envelope__BodyCase kind;
	uint64_t epoch;
	uint64_t req_id;
	uint64_t offset;
	uint32_t length;
	enum epsec_action action;
	char *engine;
	char *signature;
	char *error; /* VERDICT.error: the engines could not decide, why */
	bool cacheable;
	uint64_t generation;
	uint64_t bytes_read;
};

struct epsec_event {
	struct epsec_file file; /* file.ctx points back here */
	struct epsec_session *s;
	struct epsec_event *next;
	/* Every event from arrival to free, for WORKING (under s->lock). */
	struct epsec_event *live_prev, *live_next;
	epsec_msg *msg; /* owns path, exe and the inline bytes */
	const uint8_t *inline_data;
	size_t inline_len;
	int fd;  /* the file itself, when the agent passed it; else -1 */
	uint64_t req_id;
	uint64_t epoch; /* the connection it arrived on */
	/* The session's generation when the event was handed out: what its
	 * verdict reports, so a scan that straddles a reload never claims
	 * signatures newer than the ones it may have used. */
	uint64_t generation;
	uint64_t read_end; /* the furthest byte the engines read (one thread) */
	uint32_t timeout_ms; /* EVENT.timeout_ms, 0 = none: the deadline starts
			      * when a worker takes the event */
	/* content_fd's answer, kept for the next engine (one thread): an fd
	 * (ev->fd itself, or a staged memfd this event owns) or -errno. */
	bool content_asked;
	int content;
	pthread_cond_t cond;
};

/* What the engines read, for status and the bench (relaxed atomics). */
struct epsec_sva_read_stats {
	_Atomic uint64_t inline_bytes; /* served from the EVENT's own bytes */
	_Atomic uint64_t remote_bytes; /* arrived in DATA, through the mux */
	_Atomic uint64_t local_bytes;  /* pread from the passed fd */
	_Atomic uint64_t mapped_bytes; /* passed fds handed out whole (their size) */
	_Atomic uint64_t staged;       /* content copies made */
	_Atomic uint64_t staged_bytes;
	_Atomic uint64_t stage_refused; /* larger than stage_max */
};

struct epsec_session {
	/* Shared with workers: under `lock`. */
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct epsec_event *head, *tail;
	struct epsec_event *live; /* every event not yet freed, any epoch */
	struct epsec_read_wait *waits;
	struct epsec_out_op *out_head, *out_tail;
	bool wake_posted;
	unsigned posting; /* threads inside epsec_loop_post; close waits */
	bool closing;
	unsigned refs;  /* 1 for the open session + 1 per live event */
	uint64_t epoch; /* bumped whenever a connection is lost */
	atomic_bool connected;
	_Atomic uint64_t generation;
	atomic_bool generation_news; /* set: tell the mux (if it listens) */

	/* The network thread's alone once it runs. */
	struct epsec_loop *loop;
	pthread_t thread;
	struct epsec_conn *conn;
	bool welcomed;
	bool mux_takes_generation; /* its WELCOME said "generation" */
	bool mux_takes_working;    /* its WELCOME said "working" */
	uint64_t working_sent_ms;
	bool lost_logged;
	int timer;
	unsigned backoff_ms;
	uint64_t next_connect_ms;
	uint64_t connect_started_ms;

	/* Copied from the config at open. */
	char *uri;
	char *id;
	char **engines;
	size_t n_engines;
	bool loader_owned;

	_Atomic uint64_t stage_max; /* epsec_session_set_stage_max */
	struct epsec_sva_read_stats reads;
};

/* Internal functions are named epsec_sva_*: libepsec.so exports only
 * epsec_(session|event|sdk)_*, so these stay private to the library.
 * event.c, called by session.c on the network thread. Takes `m`, and
 * `fd` (the file, passed with the EVENT, or -1) on success only. */
int epsec_sva_event_new(struct epsec_session *s, epsec_msg *m, int fd,
			struct epsec_event **out);
void epsec_sva_event_free(struct epsec_event *ev);
/* Wake the network thread to drain the outbox (call without the lock). */
void epsec_sva_kick(struct epsec_session *s);
/* Under the lock: unlink `w`, give it its result and wake its reader. */
void epsec_sva_complete_wait(struct epsec_session *s, struct epsec_read_wait *w, ssize_t result);
/* Under the lock: complete every wait with `err` (or just the one for
 * req_id when req_id != 0). */
void epsec_sva_fail_waits(struct epsec_session *s, uint64_t req_id, ssize_t err);
void epsec_sva_out_free(struct epsec_out_op *op);
/* Under the lock: the req_ids of the current connection's live events,
 * at most max of them. */
size_t epsec_sva_live_ids(struct epsec_session *s, uint64_t *ids, size_t max);
/* Under the lock, as a worker takes ev: its deadline starts now. */
void epsec_sva_event_start(struct epsec_event *ev);
/* Monotonic condvars and deadlines, for every wait in the SDK. */
int epsec_sva_cond_init(pthread_cond_t *cond);
void epsec_sva_deadline(struct timespec *ts, int timeout_ms);
/* Under the lock: append to the outbox unless the session is closing
 * (-ESHUTDOWN) or the op's connection is gone (-ECONNRESET). */
int epsec_sva_queue_op(struct epsec_session *s, struct epsec_out_op *op);
/* Drop one reference to the session; frees it on the last one. */
void epsec_sva_unref(struct epsec_session *s);

/* Default for epsec_session_set_stage_max. */
#define EPSEC_SDK_STAGE_MAX_DEFAULT (256ull << 20)

/* A snapshot of what the engines read, for epsec-sva's status. */
struct epsec_sva_read_totals {
	uint64_t inline_bytes, remote_bytes, local_bytes, mapped_bytes;
	uint64_t staged, staged_bytes, stage_refused;
};
void epsec_sva_read_totals(struct epsec_session *s, struct epsec_sva_read_totals *out);

/* For epsec-sva, which initializes the plugin loader itself (it needs it
 * for its engines before the session starts): tells the SDK not to call
 * epsec_loader_init/exit. Main thread, before epsec_session_open. Not
 * exported from libepsec.so. */
void epsec_sva_loader_external(void);

#endif
