/* SPDX-License-Identifier: MIT */
/* libepsec's events, on the worker side: the file an engine scans (read
 * from the fd the agent passed when it is on this host; otherwise inline
 * bytes first, the rest pulled from the agent with READ/DATA through the
 * mux) and the verdict that answers it. Workers only queue work; the
 * network thread (session.c) sends it and completes their waits. */
#include "config.h"
#include <epsec/epsec.h>
#include "sdk.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define EPSEC_LOG_SRC "libepsec"

int epsec_sva_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int r;

	pthread_condattr_init(&attr);
	/* Deadlines must not jump with the wall clock. */
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	r = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return -r;
}

void epsec_sva_deadline(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	if (timeout_ms <= 0)
		return;
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void epsec_sva_complete_wait(struct epsec_session *s, struct epsec_read_wait *w, ssize_t result)
{
	struct epsec_read_wait **p;

	for (p = &s->waits; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	w->next = NULL;
	w->result = result;
	w->done = true;
	pthread_cond_broadcast(w->cond);
}

void epsec_sva_fail_waits(struct epsec_session *s, uint64_t req_id, ssize_t err)
{
	struct epsec_read_wait *w = s->waits, *next;

	for (; w; w = next) {
		next = w->next;
		if (req_id == 0 || w->req_id == req_id)
			epsec_sva_complete_wait(s, w, err);
	}
}

int epsec_sva_queue_op(struct epsec_session *s, struct epsec_out_op *op)
{
	if (s->closing)
		return -ESHUTDOWN;
	if (op->epoch != s->epoch)
		return -ECONNRESET;
	if (s->out_tail)
		s->out_tail->next = op;
	else
		s->out_head = op;
	s->out_tail = op;
	return 0;
}

void epsec_sva_out_free(struct epsec_out_op *op)
{
	free(op->engine);
	free(op->signature);
	free(op->error);
	free(op);
}

/* ---------------------------------------------------------------- live */

static void live_link(struct epsec_session *s, struct epsec_event *ev)
{
	ev->live_prev = NULL;
	ev->live_next = s->live;
	if (s->live)
		s->live->live_prev = ev;
	s->live = ev;
}

static void live_unlink(struct epsec_session *s, struct epsec_event *ev)
{
	if (ev->live_prev)
		ev->live_prev->live_next = ev->live_next;
	else
		s->live = ev->live_next;
	if (ev->live_next)
		ev->live_next->live_prev = ev->live_prev;
}

size_t epsec_sva_live_ids(struct epsec_session *s, uint64_t *ids, size_t max)
{
	size_t n = 0;

	for (struct epsec_event *ev = s->live; ev && n < max; ev = ev->live_next)
		if (ev->epoch == s->epoch)
			ids[n++] = ev->req_id;
	return n;
}

void epsec_sva_event_start(struct epsec_event *ev)
{
	struct timespec now;

	if (!ev->timeout_ms)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ev->file.deadline_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
			       ev->timeout_ms;
}

/* ---------------------------------------------------------------- pread */

static ssize_t wait_data(struct epsec_session *s, struct epsec_read_wait *w)
{
	struct timespec deadline;

	epsec_sva_deadline(&deadline, EPSEC_SDK_READ_TIMEOUT_MS);
	pthread_mutex_lock(&s->lock);
	while (!w->done)
		if (pthread_cond_timedwait(w->cond, &s->lock, &deadline) == ETIMEDOUT)
			break;
	if (!w->done)
		epsec_sva_complete_wait(s, w, -ETIMEDOUT);
	pthread_mutex_unlock(&s->lock);
	return w->result;
}

static ssize_t remote_read(struct epsec_event *ev, void *buf, size_t len, uint64_t off)
{
	struct epsec_session *s = ev->s;
	struct epsec_read_wait w = {
		.req_id = ev->req_id, .offset = off, .buf = buf, .len = len, .cond = &ev->cond,
	};
	struct epsec_out_op *op = calloc(1, sizeof(*op));
	int r;

	if (!op)
		return -ENOMEM;
	op->kind = EPSEC__ENVELOPE__BODY_READ;
	op->epoch = ev->epoch;
	op->req_id = ev->req_id;
	op->offset = off;
	op->length = (uint32_t)len;
	pthread_mutex_lock(&s->lock);
	r = epsec_sva_queue_op(s, op);
	if (r == 0) {
		w.next = s->waits;
		s->waits = &w;
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		free(op);
		return r;
	}
	epsec_sva_kick(s);
	return wait_data(s, &w);
}

static ssize_t local_read(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static void count(_Atomic uint64_t *c, ssize_t n)
{
	if (n > 0)
		atomic_fetch_add_explicit(c, (uint64_t)n, memory_order_relaxed);
}

static ssize_t read_some(struct epsec_event *ev, uint8_t *buf, size_t len, uint64_t off)
{
	struct epsec_sva_read_stats *st = &ev->s->reads;
	ssize_t n;

	if (ev->fd >= 0) {
		n = local_read(ev->fd, buf, len, off);
		count(&st->local_bytes, n);
	} else if (off < ev->inline_len) {
		n = (ssize_t)(ev->inline_len - (size_t)off);
		n = (size_t)n < len ? n : (ssize_t)len;
		memcpy(buf, ev->inline_data + off, (size_t)n);
		count(&st->inline_bytes, n);
	} else {
		n = remote_read(ev, buf, len < EPSEC_SDK_READ_MAX ? len : EPSEC_SDK_READ_MAX, off);
		count(&st->remote_bytes, n);
	}
	return n;
}

/* Fills as much of the range as the file has: engines need not loop. An
 * error after some bytes returns those bytes; the next call gets it. */
static ssize_t event_pread(struct epsec_file *f, void *buf, size_t len, uint64_t off)
{
	struct epsec_event *ev = f->ctx;
	size_t done = 0;
	ssize_t n = 0;

	if (!buf && len)
		return -EINVAL;
	if (off >= f->size)
		return 0;
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (done < len) {
		n = read_some(ev, (uint8_t *)buf + done, len - done, off + done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (off + done > ev->read_end)
		ev->read_end = off + done;
	return done ? (ssize_t)done : n;
}

/* ---------------------------------------------------------------- content_fd */

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The content copied once into a memfd, through event_pread (inline bytes
 * first, then READs of up to 1 MiB): engines that want the whole file
 * (yara's modules) then map it, and a second engine shares the copy
 * instead of pulling the file through the mux again. */
static int stage(struct epsec_event *ev)
{
	struct epsec_file *f = &ev->file;
	size_t chunk = EPSEC_SDK_READ_MAX;
	uint8_t *buf = malloc(chunk);
	uint64_t off = 0;
	ssize_t n = 0;
	int fd, r = 0;

	fd = buf ? memfd_create("epsec-content", MFD_CLOEXEC) : -ENOMEM;
	if (fd < 0) {
		free(buf);
		return buf ? -errno : -ENOMEM;
	}
	while (r == 0 && (n = event_pread(f, buf, chunk, off)) > 0) {
		r = write_all(fd, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	if (r == 0 && n < 0)
		r = (int)n;
	if (r < 0) {
		close(fd);
		return r;
	}
	atomic_fetch_add_explicit(&ev->s->reads.staged, 1, memory_order_relaxed);
	count(&ev->s->reads.staged_bytes, (ssize_t)off);
	return fd;
}

static int content_of(struct epsec_event *ev)
{
	struct epsec_sva_read_stats *st = &ev->s->reads;
	uint64_t max = atomic_load_explicit(&ev->s->stage_max, memory_order_relaxed);

	if (ev->fd >= 0) {
		/* The engine maps or reads the file itself: count it whole. */
		count(&st->mapped_bytes, (ssize_t)ev->file.size);
		if (ev->file.size > ev->read_end)
			ev->read_end = ev->file.size;
		return ev->fd;
	}
	if (max == 0 || ev->file.size > max) {
		atomic_fetch_add_explicit(&st->stage_refused, 1, memory_order_relaxed);
		return -EFBIG;
	}
	return stage(ev);
}

static int event_content_fd(struct epsec_file *f)
{
	struct epsec_event *ev = f->ctx;

	if (!ev->content_asked)
		ev->content = content_of(ev);
	ev->content_asked = true;
	return ev->content;
}

void epsec_session_set_stage_max(struct epsec_session *s, uint64_t bytes)
{
	if (s)
		atomic_store(&s->stage_max, bytes);
}

static uint64_t load(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void epsec_sva_read_totals(struct epsec_session *s, struct epsec_sva_read_totals *out)
{
	struct epsec_sva_read_stats *st;

	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	st = &s->reads;
	out->inline_bytes = load(&st->inline_bytes);
	out->remote_bytes = load(&st->remote_bytes);
	out->local_bytes = load(&st->local_bytes);
	out->mapped_bytes = load(&st->mapped_bytes);
	out->staged = load(&st->staged);
	out->staged_bytes = load(&st->staged_bytes);
	out->stage_refused = load(&st->stage_refused);
}

/* ---------------------------------------------------------------- events */

static void fill_file(struct epsec_event *ev, const Epsec__Event *e)
{
	struct epsec_file *f = &ev->file;

	f->path = e->path ? e->path : "";
	f->exe = e->exe ? e->exe : "";
	/* The inline bytes are real even if the file grew past its stat. */
	f->size = e->has_size ? e->size : 0;
	if (f->size < ev->inline_len)
		f->size = ev->inline_len;
	f->dev = e->dev;
	f->ino = e->ino;
	f->mode = e->mode;
	f->uid = e->uid;
	f->pid = e->pid;
	f->kind = (enum epsec_event_kind)e->kind;
	f->pread = event_pread;
	f->content_fd = event_content_fd;
	f->ctx = ev;
}

/* A broken agent does it for every event: the 1st, 2nd, 4th, 8th... time
 * and every 1000th, with the count. */
static unsigned long long refused_now(void)
{
	static atomic_ullong refused;
	unsigned long long n = atomic_fetch_add(&refused, 1) + 1;

	return (n & (n - 1)) == 0 || n % 1000 == 0 ? n : 0;
}

/* A passed fd is used only for the file the EVENT names: a regular file
 * with its dev and ino (an EVENT that names none gets no fd read). Anything
 * else (a broken or hostile agent) is closed, and the content is read
 * through the mux as without one. */
static int checked_fd(int fd, const Epsec__Event *e)
{
	unsigned long long n;
	struct stat st;

	if (fd < 0)
		return -1;
	if (e->has_dev && e->has_ino && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_dev == e->dev && st.st_ino == e->ino)
		return fd;
	if ((n = refused_now()))
		EPSEC_WARN("EVENT %llu came with a file descriptor that is not the file it names "
			   "(%llu so far); reading through the mux instead",
			   (unsigned long long)e->req_id, n);
	close(fd);
	return -1;
}

int epsec_sva_event_new(struct epsec_session *s, epsec_msg *m, int fd,
			struct epsec_event **out)
{
	const Epsec__Event *e = m->event;
	struct epsec_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return -ENOMEM;
	if (epsec_sva_cond_init(&ev->cond) < 0) {
		free(ev);
		return -ENOMEM;
	}
	ev->s = s;
	ev->msg = m;
	ev->req_id = e->req_id;
	ev->fd = checked_fd(fd, e);
	if (e->has_inline_data) {
		ev->inline_data = e->inline_data.data;
		ev->inline_len = e->inline_data.len;
	}
	ev->timeout_ms = e->has_timeout_ms ? e->timeout_ms : 0;
	fill_file(ev, e);
	pthread_mutex_lock(&s->lock);
	s->refs++;
	live_link(s, ev);
	pthread_mutex_unlock(&s->lock);
	*out = ev;
	return 0;
}

void epsec_sva_event_free(struct epsec_event *ev)
{
	struct epsec_session *s = ev->s;

	pthread_mutex_lock(&s->lock);
	live_unlink(s, ev);
	pthread_mutex_unlock(&s->lock);
	epsec_msg_free(ev->msg);
	if (ev->content_asked && ev->content >= 0 && ev->content != ev->fd)
		close(ev->content);
	if (ev->fd >= 0)
		close(ev->fd);
	pthread_cond_destroy(&ev->cond);
	free(ev);
	epsec_sva_unref(s);
}

struct epsec_file *epsec_event_file(struct epsec_event *ev)
{
	return &ev->file;
}

const char *epsec_event_agent(const struct epsec_event *ev)
{
	/* Protocol 1 gives SVAs no agent identity: the mux keeps it. */
	return "";
}

struct verdict_text {
	const char *engine, *signature, *error;
};

static char *dup_or_null(const char *text, bool *failed)
{
	char *copy = text ? strdup(text) : NULL;

	if (text && !copy)
		*failed = true;
	return copy;
}

static int verdict_op(struct epsec_event *ev, enum epsec_action action,
		      const struct verdict_text *t, bool cacheable, struct epsec_out_op **out)
{
	bool failed = false;
	struct epsec_out_op *op = calloc(1, sizeof(*op));

	if (!op)
		return -ENOMEM;
	op->kind = EPSEC__ENVELOPE__BODY_VERDICT;
	op->epoch = ev->epoch;
	op->req_id = ev->req_id;
	op->action = action;
	op->cacheable = cacheable;
	op->generation = ev->generation;
	op->bytes_read = ev->read_end;
	op->engine = dup_or_null(t->engine, &failed);
	op->signature = dup_or_null(t->signature, &failed);
	op->error = dup_or_null(t->error, &failed);
	if (failed) {
		epsec_sva_out_free(op);
		return -ENOMEM;
	}
	*out = op;
	return 0;
}

static int answer(struct epsec_event *ev, enum epsec_action action,
		  const struct verdict_text *t, bool cacheable)
{
	struct epsec_session *s = ev->s;
	struct epsec_out_op *op = NULL;
	int r;

	r = verdict_op(ev, action, t, cacheable, &op);
	if (r == 0) {
		pthread_mutex_lock(&s->lock);
		r = epsec_sva_queue_op(s, op);
		pthread_mutex_unlock(&s->lock);
		if (r < 0)
			epsec_sva_out_free(op);
		else
			epsec_sva_kick(s);
	}
	epsec_sva_event_free(ev);
	return r;
}

int epsec_event_verdict(struct epsec_event *ev, enum epsec_action action, const char *engine,
			const char *signature, bool cacheable)
{
	struct verdict_text t = { .engine = engine, .signature = signature };

	if (!ev || action < EPSEC_ACTION_ALLOW || action > EPSEC_ACTION_QUARANTINE)
		return -EINVAL;
	return answer(ev, action, &t, cacheable);
}

/* Action ALLOW and not cacheable: what an agent that does not know
 * VERDICT.error does with it, as it always did. */
int epsec_event_error(struct epsec_event *ev, const char *engine, const char *reason)
{
	struct verdict_text t = { .engine = engine,
				  .error = reason && *reason ? reason : "no reason given" };

	if (!ev)
		return -EINVAL;
	return answer(ev, EPSEC_ACTION_ALLOW, &t, false);
}
