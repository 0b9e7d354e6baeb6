/* SPDX-License-Identifier: MIT */
/* The held events table and the one function every event ends in. An
 * entry leaves the table under the lock before anything else happens to
 * it, so whoever removed it is its only owner: that is what makes "every
 * permission event is answered exactly once" hold on every path. */
#include "config.h"
#include "held.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actions.h"
#include "cache.h"
#include "fanotify.h"
#include "detect.h"
#include "log.h"
#include "loop.h"
#include "unscanned.h"

#define EPSEC_LOG_SRC "held"

struct vsep_counters vsep_stats;

struct held {
	struct held *chain;          /* hash bucket */
	struct held *older, *newer;  /* age order: deadlines rise along it */
	uint64_t req_id;
	uint64_t deadline_ms;
	struct vsep_event ev;
	struct stat st; /* at the event: the cache's key */
	char *path;
};

/* Two age orders, so deadlines rise along each: held opens (the opener's
 * scan_timeout_ms) and scans nobody waits on (scan_max_ms). */
enum { AGE_PERM, AGE_BACKGROUND, AGES };

struct age {
	struct held *oldest, *newest;
};

static struct {
	pthread_mutex_t lock;
	struct held **buckets;
	size_t mask;
	struct age ages[AGES];
	size_t count, capacity;
	uint64_t next_id;
	unsigned timeout_ms, max_ms;
	int fanfd;
} table = { .lock = PTHREAD_MUTEX_INITIALIZER, .fanfd = -1 };

static struct age *age_of(const struct held *h)
{
	return &table.ages[vsep_event_is_perm(&h->ev) ? AGE_PERM : AGE_BACKGROUND];
}

int vsep_held_init(int fanfd, size_t capacity, unsigned timeout_ms, unsigned max_ms)
{
	size_t n = 64;

	while (n < capacity && n < ((size_t)1 << 20))
		n <<= 1;
	table.buckets = calloc(n, sizeof(*table.buckets));
	if (!table.buckets)
		return -ENOMEM;
	table.mask = n - 1;
	table.capacity = capacity;
	table.timeout_ms = timeout_ms;
	table.max_ms = max_ms;
	table.fanfd = fanfd;
	table.next_id = 1;
	return 0;
}

void vsep_held_fini(void)
{
	free(table.buckets);
	table.buckets = NULL;
}

static void count_end(const struct vsep_event *ev, bool allow, enum vsep_why why)
{
	switch (why) {
	case VSEP_WHY_TIMEOUT:
		atomic_fetch_add(&vsep_stats.timeouts, 1);
		break;
	case VSEP_WHY_DISCONNECT:
		atomic_fetch_add(&vsep_stats.disconnected, 1);
		break;
	case VSEP_WHY_OVERLOAD:
		atomic_fetch_add(&vsep_stats.overload, 1);
		break;
	case VSEP_WHY_ERROR:
		atomic_fetch_add(&vsep_stats.errors, 1);
		break;
	case VSEP_WHY_SELF:
	case VSEP_WHY_EXCLUDED:
		atomic_fetch_add(&vsep_stats.excluded, 1);
		break;
	case VSEP_WHY_TOO_BIG:
		atomic_fetch_add(&vsep_stats.too_big, 1);
		break;
	case VSEP_WHY_EMPTY:
		atomic_fetch_add(&vsep_stats.empty, 1);
		break;
	case VSEP_WHY_ENGINE_ERROR:
		atomic_fetch_add(&vsep_stats.engine_errors, 1);
		break;
	default:
		break;
	}
	if (vsep_event_is_perm(ev))
		atomic_fetch_add(allow ? &vsep_stats.allowed : &vsep_stats.denied, 1);
}

static int answer(const struct vsep_event *ev, bool allow)
{
	return vsep_event_is_perm(ev) ? vsep_fan_respond(table.fanfd, ev->fd, allow) : 0;
}

/* After the answer: nothing here may delay it. */
static void close_event(const struct vsep_event *ev, bool allow, enum vsep_why why, int r)
{
	close(ev->fd);
	count_end(ev, allow, why);
	if (r < 0)
		EPSEC_ERR("cannot answer the kernel for pid %d: %s", (int)ev->pid, strerror(-r));
}

void vsep_event_end(const struct vsep_event *ev, bool allow, enum vsep_why why)
{
	close_event(ev, allow, why, answer(ev, allow));
}

void vsep_event_end_cached(const struct vsep_event *ev, bool allow, const struct stat *st,
			   uint64_t generation)
{
	int r = answer(ev, allow);

	if (r == 0 && allow && vsep_event_is_perm(ev))
		vsep_cache_ignore(ev->fd, st, generation);
	close_event(ev, allow, VSEP_WHY_CACHE, r);
	vsep_unscanned_scanned(st);
}

/* Caller holds the lock. */
static void link_entry(struct held *h)
{
	struct held **b = &table.buckets[h->req_id & table.mask];
	struct age *a = age_of(h);

	h->chain = *b;
	*b = h;
	h->newer = NULL;
	h->older = a->newest;
	if (a->newest)
		a->newest->newer = h;
	else
		a->oldest = h;
	a->newest = h;
	table.count++;
}

/* Caller holds the lock. */
static void unlink_entry(struct held *h)
{
	struct held **p = &table.buckets[h->req_id & table.mask];
	struct age *a = age_of(h);

	while (*p != h)
		p = &(*p)->chain;
	*p = h->chain;
	if (h->older)
		h->older->newer = h->newer;
	else
		a->oldest = h->newer;
	if (h->newer)
		h->newer->older = h->older;
	else
		a->newest = h->older;
	table.count--;
}

/* Caller holds the lock. */
static struct held *find(uint64_t req_id)
{
	struct held *h = table.buckets[req_id & table.mask];

	while (h && h->req_id != req_id)
		h = h->chain;
	return h;
}

int vsep_held_add(const struct vsep_event *ev, const struct stat *st, const char *path,
		  uint64_t *req_id)
{
	struct held *h = calloc(1, sizeof(*h));

	if (!h || !(h->path = strdup(path))) {
		free(h);
		return -ENOMEM;
	}
	h->ev = *ev;
	h->st = *st;
	pthread_mutex_lock(&table.lock);
	if (table.count >= table.capacity) {
		pthread_mutex_unlock(&table.lock);
		free(h->path);
		free(h);
		return -ENOSPC;
	}
	h->req_id = table.next_id++;
	h->deadline_ms = epsec_now_ms() +
			 (vsep_event_is_perm(ev) ? table.timeout_ms : table.max_ms);
	link_entry(h);
	*req_id = h->req_id;
	pthread_mutex_unlock(&table.lock);
	return 0;
}

/* close_write: what the verdict does to the file, while our fd still pins
 * its inode. Policy answers leave the file alone. */
static void apply_close_write(struct held *h, const struct vsep_outcome *o)
{
	int r;

	/* A rescan's file was counted when it was let pass: not again. */
	bool counts = h->ev.kind != VSEP_KIND_RESCAN;

	if (o->why != VSEP_WHY_VERDICT)
		return;
	if (o->action == VSEP_ACT_ALLOW) {
		if (counts)
			atomic_fetch_add(&vsep_stats.allowed, 1);
		return;
	}
	r = vsep_action_apply_engine(o->action, h->path, h->st.st_dev, h->st.st_ino, o->engine,
				     o->signature);
	/* -ENOENT: already gone, e.g. deleted by the verdict of a second
	 * scan of the same file (close_write and a new-directory sweep). */
	if (o->action == VSEP_ACT_DELETE && r != -ENOENT)
		atomic_fetch_add(r == 0 ? &vsep_stats.deleted : &vsep_stats.errors, 1);
	else if (o->action != VSEP_ACT_DELETE && counts)
		atomic_fetch_add(&vsep_stats.denied, 1);
}

static const char *why_name(enum vsep_why why)
{
	static const char *const names[] = {
		[VSEP_WHY_VERDICT] = "verdict", [VSEP_WHY_SELF] = "own pid",
		[VSEP_WHY_EXCLUDED] = "excluded", [VSEP_WHY_TIMEOUT] = "timeout",
		[VSEP_WHY_DISCONNECT] = "no scanner", [VSEP_WHY_OVERLOAD] = "overload",
		[VSEP_WHY_ERROR] = "error", [VSEP_WHY_SHUTDOWN] = "shutdown",
		[VSEP_WHY_CACHE] = "cached", [VSEP_WHY_TOO_BIG] = "too big",
		[VSEP_WHY_IRREGULAR] = "not a regular file", [VSEP_WHY_EMPTY] = "empty file",
		[VSEP_WHY_ENGINE_ERROR] = "engine error",
	};

	return (unsigned)why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

/* An engine error is worth a warning once per file, not once per open of
 * a file that always fails: a small table of the files warned about. */
static bool first_error_of(const struct stat *st)
{
	static _Atomic uint64_t warned[256];
	uint64_t key = ((uint64_t)st->st_dev * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)st->st_ino ^
		       ((uint64_t)st->st_mtim.tv_nsec << 32) ^ (uint64_t)st->st_mtim.tv_sec;

	key |= 1; /* 0 is an empty slot */
	return atomic_exchange(&warned[key % 256], key) != key;
}

static void log_engine_error(const struct held *h, const struct vsep_outcome *o, bool allow)
{
	const char *what = !vsep_event_is_perm(&h->ev) ? "kept, scanned again later"
			   : allow ? "allowed by on_error" : "denied by on_error";

	if (first_error_of(&h->st))
		EPSEC_WARN("%s: not scanned (%s): %s", h->path,
			   o->signature ? o->signature : "engine error", what);
	else
		EPSEC_DBG("%s: not scanned again (%s)", h->path,
			  o->signature ? o->signature : "engine error");
}

/* An open refused on a detection is a detection record too (detect.h). */
static void report_denied(const struct held *h, const struct vsep_outcome *o)
{
	char result[64];

	snprintf(result, sizeof(result), "open refused to pid %d", (int)h->ev.pid);
	vsep_detect_report(h->path, o->engine, o->signature, VSEP_ACT_DENY, result);
}

static void log_verdict(const struct held *h, const struct vsep_outcome *o, bool allow)
{
	if (o->why == VSEP_WHY_ENGINE_ERROR) {
		log_engine_error(h, o, allow);
	} else if (o->why != VSEP_WHY_VERDICT) {
		EPSEC_DBG("%s (req %llu): %s by policy (%s)", h->path, (unsigned long long)h->req_id,
			  allow ? "allowed" : "denied", why_name(o->why));
	} else if (o->action == VSEP_ACT_ALLOW) {
		EPSEC_DBG("%s (req %llu): clean", h->path, (unsigned long long)h->req_id);
	} else if (vsep_event_is_perm(&h->ev)) {
		EPSEC_WARN("%s: %s found by %s: access denied to pid %d", h->path,
			   o->signature ? o->signature : "infected", o->engine ? o->engine : "?",
			   (int)h->ev.pid);
		report_denied(h, o);
	}
}

/* A verdict worth keeping: in the cache, and for a clean open/exec in
 * the kernel too (an ignore mark, while our fd still names the file). */
static void remember(const struct held *h, const struct vsep_outcome *o, int answered)
{
	if (o->why != VSEP_WHY_VERDICT || !o->cacheable)
		return;
	vsep_cache_store(&h->st, o->action, o->generation);
	if (answered == 0 && o->action == VSEP_ACT_ALLOW && vsep_event_is_perm(&h->ev))
		vsep_cache_ignore(h->ev.fd, &h->st, o->generation);
}

/* h is out of the table: we own it. The answer comes before the log. */
static void finish_now(struct held *h, const struct vsep_outcome *o)
{
	bool allow = o->action == VSEP_ACT_ALLOW;
	int r;

	if (!vsep_event_is_perm(&h->ev))
		apply_close_write(h, o);
	r = answer(&h->ev, allow);
	remember(h, o, r);
	close_event(&h->ev, allow, o->why, r);
	if (o->why == VSEP_WHY_VERDICT)
		vsep_unscanned_scanned(&h->st);
	else
		vsep_unscanned_note(h->ev.kind, &h->st, h->path, o->why, allow);
	log_verdict(h, o, allow);
	free(h->path);
	free(h);
}

/* ------------------------------------------------------------ actions */

/* Delete and quarantine touch the filesystem (a quarantine across
 * filesystems copies the whole file): they run on their own thread, so the
 * loop that carries verdicts and enforces scan_timeout_ms never waits on
 * them. Nobody waits on a written file's event meanwhile. */
struct deferred {
	struct deferred *next;
	struct held *h;
	struct vsep_outcome o;
	char *engine, *signature; /* the outcome's, which the verdict owned */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct deferred *head, *tail;
	pthread_t thread;
	bool started, stopping;
} A = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void run_deferred(struct deferred *d)
{
	finish_now(d->h, &d->o);
	free(d->engine);
	free(d->signature);
	free(d);
}

static void *actions_main(void *arg)
{
	struct deferred *d;

	(void)arg;
	pthread_mutex_lock(&A.lock);
	for (;;) {
		while (!A.head && !A.stopping)
			pthread_cond_wait(&A.cond, &A.lock);
		d = A.head;
		if (!d)
			break;
		A.head = d->next;
		if (!A.head)
			A.tail = NULL;
		pthread_mutex_unlock(&A.lock);
		run_deferred(d);
		pthread_mutex_lock(&A.lock);
	}
	pthread_mutex_unlock(&A.lock);
	return NULL;
}

int vsep_held_actions_start(void)
{
	int r = pthread_create(&A.thread, NULL, actions_main, NULL);

	A.started = r == 0;
	return -r;
}

void vsep_held_actions_stop(void)
{
	if (!A.started)
		return;
	pthread_mutex_lock(&A.lock);
	A.stopping = true;
	pthread_cond_signal(&A.cond);
	pthread_mutex_unlock(&A.lock);
	pthread_join(A.thread, NULL); /* it runs what is queued first */
	A.started = false;
}

static bool defer(struct held *h, const struct vsep_outcome *o)
{
	struct deferred *d = calloc(1, sizeof(*d));

	if (!d || (o->engine && !(d->engine = strdup(o->engine))) ||
	    (o->signature && !(d->signature = strdup(o->signature)))) {
		if (d) {
			free(d->engine);
			free(d);
		}
		return false;
	}
	d->h = h;
	d->o = *o;
	d->o.engine = d->engine;
	d->o.signature = d->signature;
	pthread_mutex_lock(&A.lock);
	if (A.tail)
		A.tail->next = d;
	else
		A.head = d;
	A.tail = d;
	pthread_cond_signal(&A.cond);
	pthread_mutex_unlock(&A.lock);
	return true;
}

/* h is out of the table: we own it. */
static void finish(struct held *h, const struct vsep_outcome *o)
{
	bool acts = !vsep_event_is_perm(&h->ev) && o->why == VSEP_WHY_VERDICT &&
		    (o->action == VSEP_ACT_DELETE || o->action == VSEP_ACT_QUARANTINE);

	if (acts && A.started && !A.stopping && defer(h, o))
		return;
	finish_now(h, o);
}

int vsep_held_resolve(uint64_t req_id, const struct vsep_outcome *o)
{
	struct held *h;

	pthread_mutex_lock(&table.lock);
	h = table.buckets ? find(req_id) : NULL;
	if (h)
		unlink_entry(h);
	pthread_mutex_unlock(&table.lock);
	if (!h)
		return -ENOENT;
	finish(h, o);
	return 0;
}

/* A dup, so the event may end (and its fd be closed and reused) while
 * the caller uses it without holding the lock. */
int vsep_held_dup_fd(uint64_t req_id)
{
	struct held *h;
	int fd = -ENOENT;

	pthread_mutex_lock(&table.lock);
	h = table.buckets ? find(req_id) : NULL;
	if (h) {
		fd = fcntl(h->ev.fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			fd = -errno;
	}
	pthread_mutex_unlock(&table.lock);
	return fd;
}

ssize_t vsep_held_pread(uint64_t req_id, void *buf, size_t len, uint64_t offset)
{
	ssize_t n;
	int fd = vsep_held_dup_fd(req_id);

	if (fd < 0)
		return fd;
	n = pread(fd, buf, len, (off_t)offset);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

/* Move the oldest entries of one age order (all, or those past `now`)
 * to a private list. */
static struct held *take_oldest(struct age *a, bool all, uint64_t now)
{
	struct held *list = NULL, **tail = &list, *h;

	pthread_mutex_lock(&table.lock);
	while ((h = a->oldest) && (all || h->deadline_ms <= now)) {
		unlink_entry(h);
		h->newer = NULL;
		*tail = h;
		tail = &h->newer;
	}
	pthread_mutex_unlock(&table.lock);
	return list;
}

static void finish_list(struct held *list, int policy, enum vsep_why why, const char *reason)
{
	struct vsep_outcome o = {
		.action = vsep_policy_allows(policy) ? VSEP_ACT_ALLOW : VSEP_ACT_DENY,
		.why = why,
		.signature = reason,
	};
	struct held *next;

	for (; list; list = next) {
		next = list->newer;
		finish(list, &o);
	}
}

/* A scan nobody waits on that outlived scan_max_ms is an engine error:
 * its file was not scanned, whatever the policy says of opens. */
void vsep_held_sweep(uint64_t now_ms, int policy)
{
	if (!table.buckets)
		return;
	finish_list(take_oldest(&table.ages[AGE_PERM], false, now_ms), policy, VSEP_WHY_TIMEOUT,
		    NULL);
	finish_list(take_oldest(&table.ages[AGE_BACKGROUND], false, now_ms), VSEP_POLICY_ALLOW,
		    VSEP_WHY_ENGINE_ERROR, "no verdict within scan_max_ms");
}

void vsep_held_drain(int policy, enum vsep_why why)
{
	if (!table.buckets)
		return;
	for (int i = 0; i < AGES; i++)
		finish_list(take_oldest(&table.ages[i], true, 0), policy, why, NULL);
}

size_t vsep_held_count(void)
{
	size_t n;

	pthread_mutex_lock(&table.lock);
	n = table.count;
	pthread_mutex_unlock(&table.lock);
	return n;
}
