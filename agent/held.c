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
#include "fanotify.h"
#include "log.h"
#include "loop.h"

#define EPSEC_LOG_SRC "held"

struct vsep_counters vsep_stats;

struct held {
	struct held *chain;          /* hash bucket */
	struct held *older, *newer;  /* age order: deadlines rise along it */
	uint64_t req_id;
	uint64_t deadline_ms;
	struct vsep_event ev;
	dev_t dev;
	ino_t ino;
	char *path;
};

static struct {
	pthread_mutex_t lock;
	struct held **buckets;
	size_t mask;
	struct held *oldest, *newest;
	size_t count, capacity;
	uint64_t next_id;
	unsigned timeout_ms;
	int fanfd;
} table = { .lock = PTHREAD_MUTEX_INITIALIZER, .fanfd = -1 };

int vsep_held_init(int fanfd, size_t capacity, unsigned timeout_ms)
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
	default:
		break;
	}
	if (vsep_event_is_perm(ev))
		atomic_fetch_add(allow ? &vsep_stats.allowed : &vsep_stats.denied, 1);
}

void vsep_event_end(const struct vsep_event *ev, bool allow, enum vsep_why why)
{
	int r = 0;

	if (vsep_event_is_perm(ev))
		r = vsep_fan_respond(table.fanfd, ev->fd, allow);
	close(ev->fd);
	count_end(ev, allow, why);
	if (r < 0)
		EPSEC_ERR("cannot answer the kernel for pid %d: %s", (int)ev->pid, strerror(-r));
}

/* Caller holds the lock. */
static void link_entry(struct held *h)
{
	struct held **b = &table.buckets[h->req_id & table.mask];

	h->chain = *b;
	*b = h;
	h->newer = NULL;
	h->older = table.newest;
	if (table.newest)
		table.newest->newer = h;
	else
		table.oldest = h;
	table.newest = h;
	table.count++;
}

/* Caller holds the lock. */
static void unlink_entry(struct held *h)
{
	struct held **p = &table.buckets[h->req_id & table.mask];

	while (*p != h)
		p = &(*p)->chain;
	*p = h->chain;
	if (h->older)
		h->older->newer = h->newer;
	else
		table.oldest = h->newer;
	if (h->newer)
		h->newer->older = h->older;
	else
		table.newest = h->older;
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
	h->dev = st->st_dev;
	h->ino = st->st_ino;
	pthread_mutex_lock(&table.lock);
	if (table.count >= table.capacity) {
		pthread_mutex_unlock(&table.lock);
		free(h->path);
		free(h);
		return -ENOSPC;
	}
	h->req_id = table.next_id++;
	h->deadline_ms = epsec_now_ms() + table.timeout_ms;
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

	if (o->why != VSEP_WHY_VERDICT)
		return;
	if (o->action == VSEP_ACT_ALLOW) {
		atomic_fetch_add(&vsep_stats.allowed, 1);
		return;
	}
	r = vsep_action_apply(o->action, h->path, h->dev, h->ino, o->signature);
	if (o->action == VSEP_ACT_DELETE)
		atomic_fetch_add(r == 0 ? &vsep_stats.deleted : &vsep_stats.errors, 1);
	else
		atomic_fetch_add(&vsep_stats.denied, 1);
}

static const char *why_name(enum vsep_why why)
{
	static const char *const names[] = {
		[VSEP_WHY_VERDICT] = "verdict", [VSEP_WHY_SELF] = "own pid",
		[VSEP_WHY_EXCLUDED] = "excluded", [VSEP_WHY_TIMEOUT] = "timeout",
		[VSEP_WHY_DISCONNECT] = "no scanner", [VSEP_WHY_OVERLOAD] = "overload",
		[VSEP_WHY_ERROR] = "error", [VSEP_WHY_SHUTDOWN] = "shutdown",
	};

	return (unsigned)why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

static void log_verdict(const struct held *h, const struct vsep_outcome *o, bool allow)
{
	if (o->why != VSEP_WHY_VERDICT) {
		EPSEC_DBG("%s (req %llu): %s by policy (%s)", h->path, (unsigned long long)h->req_id,
			  allow ? "allowed" : "denied", why_name(o->why));
	} else if (o->action == VSEP_ACT_ALLOW) {
		EPSEC_DBG("%s (req %llu): clean", h->path, (unsigned long long)h->req_id);
	} else if (vsep_event_is_perm(&h->ev)) {
		EPSEC_WARN("%s: %s found by %s: access denied to pid %d", h->path,
			   o->signature ? o->signature : "infected", o->engine ? o->engine : "?",
			   (int)h->ev.pid);
	}
}

/* h is out of the table: we own it. */
static void finish(struct held *h, const struct vsep_outcome *o)
{
	bool allow = o->action == VSEP_ACT_ALLOW;

	if (!vsep_event_is_perm(&h->ev))
		apply_close_write(h, o);
	vsep_event_end(&h->ev, allow, o->why);
	log_verdict(h, o, allow);
	free(h->path);
	free(h);
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

ssize_t vsep_held_pread(uint64_t req_id, void *buf, size_t len, uint64_t offset)
{
	struct held *h;
	ssize_t n;
	int fd = -1, err = ENOENT;

	/* A dup, so the event may end (and its fd be closed and reused)
	 * while we read without holding the lock. */
	pthread_mutex_lock(&table.lock);
	h = table.buckets ? find(req_id) : NULL;
	if (h) {
		fd = fcntl(h->ev.fd, F_DUPFD_CLOEXEC, 0);
		err = errno;
	}
	pthread_mutex_unlock(&table.lock);
	if (fd < 0)
		return -err;
	n = pread(fd, buf, len, (off_t)offset);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

/* Move the oldest entries (all, or those past `now`) to a private list. */
static struct held *take_oldest(bool all, uint64_t now)
{
	struct held *list = NULL, **tail = &list, *h;

	pthread_mutex_lock(&table.lock);
	while ((h = table.oldest) && (all || h->deadline_ms <= now)) {
		unlink_entry(h);
		h->newer = NULL;
		*tail = h;
		tail = &h->newer;
	}
	pthread_mutex_unlock(&table.lock);
	return list;
}

static void finish_list(struct held *list, int policy, enum vsep_why why)
{
	struct vsep_outcome o = {
		.action = vsep_policy_allows(policy) ? VSEP_ACT_ALLOW : VSEP_ACT_DENY,
		.why = why,
	};
	struct held *next;

	for (; list; list = next) {
		next = list->newer;
		finish(list, &o);
	}
}

void vsep_held_sweep(uint64_t now_ms, int policy)
{
	if (table.buckets)
		finish_list(take_oldest(false, now_ms), policy, VSEP_WHY_TIMEOUT);
}

void vsep_held_drain(int policy, enum vsep_why why)
{
	if (table.buckets)
		finish_list(take_oldest(true, 0), policy, why);
}

size_t vsep_held_count(void)
{
	size_t n;

	pthread_mutex_lock(&table.lock);
	n = table.count;
	pthread_mutex_unlock(&table.lock);
	return n;
}
