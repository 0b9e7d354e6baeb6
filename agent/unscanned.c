/* SPDX-License-Identifier: MIT */
/* The backlog of files let pass unscanned (unscanned.h). One table by
 * dev/ino, in arrival order; one thread that offers due files to the
 * workers as sweeps while the chain answers, and saves the table to
 * state_dir. While rescans fail (no SVA behind the mux), it sends one
 * probe a second instead of the whole backlog: the first verdict from
 * anywhere opens the gate again. */
#include "config.h"
#include "unscanned.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "held.h"
#include "log.h"
#include "loop.h"
#include "quarantine.h"

#define EPSEC_LOG_SRC "unscanned"

#define FILE_NAME "unscanned"
#define MAGIC "vsep-unscanned 1"
#define TICK_MS 250
#define SAVE_MS 1000
#define PROBE_MS 1000
#define RETRY_MS 1000
#define ERROR_RETRY_MS 60000
#define BATCH 64
/* An engine error on every one of these tries: given up, and said so. */
#define MAX_TRIES 3

struct entry {
	struct entry *chain;       /* hash bucket */
	struct entry *prev, *next; /* arrival order */
	uint64_t dev, ino;
	unsigned failures;         /* engine errors so far */
	uint64_t next_try_ms;
	char path[];
};

static struct {
	const struct vsep_settings *s;
	bool (*ready)(void);
	void (*inject)(const struct vsep_event *ev);
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct entry **buckets;
	size_t mask;
	struct entry *head, *tail;
	atomic_size_t count;
	atomic_bool dirty;
	bool warned_full;
	atomic_bool failing;       /* the last rescan got no verdict */
	uint64_t probe_ms, saved_ms;
	char *file;
	pthread_t thread;
	bool started, stopping;
} U = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* ------------------------------------------------------------ the table */

static size_t bucket_of(uint64_t dev, uint64_t ino)
{
	return (size_t)((dev * 0x9e3779b97f4a7c15ULL) ^ ino) & U.mask;
}

/* Caller holds the lock. */
static struct entry *find(uint64_t dev, uint64_t ino)
{
	struct entry *e = U.buckets[bucket_of(dev, ino)];

	while (e && (e->dev != dev || e->ino != ino))
		e = e->chain;
	return e;
}

/* Caller holds the lock. */
static void unlink_entry(struct entry *e)
{
	struct entry **p = &U.buckets[bucket_of(e->dev, e->ino)];

	while (*p != e)
		p = &(*p)->chain;
	*p = e->chain;
	if (e->prev)
		e->prev->next = e->next;
	else
		U.head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		U.tail = e->prev;
	atomic_fetch_sub(&U.count, 1);
	U.dirty = true;
	free(e);
}

/* Caller holds the lock. */
static struct entry *add(uint64_t dev, uint64_t ino, const char *path, unsigned failures)
{
	size_t n = strlen(path) + 1;
	struct entry *e = malloc(sizeof(*e) + n);
	struct entry **b;

	if (!e)
		return NULL;
	*e = (struct entry){ .dev = dev, .ino = ino, .failures = failures, .prev = U.tail };
	memcpy(e->path, path, n);
	b = &U.buckets[bucket_of(dev, ino)];
	e->chain = *b;
	*b = e;
	if (U.tail)
		U.tail->next = e;
	else
		U.head = e;
	U.tail = e;
	atomic_fetch_add(&U.count, 1);
	U.dirty = true;
	return e;
}

static bool let_pass_unscanned(enum vsep_kind kind, enum vsep_why why, bool allowed)
{
	switch (why) {
	case VSEP_WHY_TIMEOUT:
	case VSEP_WHY_DISCONNECT:
	case VSEP_WHY_OVERLOAD:
	case VSEP_WHY_ERROR:
	case VSEP_WHY_ENGINE_ERROR:
	case VSEP_WHY_SHUTDOWN:
		/* A denied opener did not get the file: its next open asks. */
		return allowed || !(kind == VSEP_KIND_OPEN || kind == VSEP_KIND_EXEC);
	default:
		return false;
	}
}

/* Caller holds the lock. An entry already there is the same file again. */
static void remember(const struct stat *st, const char *path, enum vsep_why why)
{
	struct entry *e = find(st->st_dev, st->st_ino);

	if (!e && atomic_load(&U.count) >= (size_t)U.s->unscanned_max) {
		atomic_fetch_add(&vsep_stats.unscanned_dropped, 1);
		if (!U.warned_full)
			EPSEC_WARN("%s let pass unscanned, not remembered: unscanned_max (%d) "
				   "reached (counted as unscanned_dropped)", path,
				   U.s->unscanned_max);
		U.warned_full = true;
		return;
	}
	if (!e && !(e = add(st->st_dev, st->st_ino, path, 0)))
		return;
	if (why != VSEP_WHY_ENGINE_ERROR) {
		e->next_try_ms = epsec_now_ms() + RETRY_MS;
		return;
	}
	/* The chain answered: only time (new signatures, a lighter load) may
	 * make the next try different. */
	e->next_try_ms = epsec_now_ms() + ERROR_RETRY_MS * (uint64_t)(e->failures + 1);
	if (++e->failures < MAX_TRIES)
		return;
	atomic_fetch_add(&vsep_stats.unscanned_given_up, 1);
	EPSEC_WARN("%s: the engines could not scan it %d times; not tried again until it "
		   "changes (counted as unscanned_given_up)", path, MAX_TRIES);
	unlink_entry(e);
}

void vsep_unscanned_note(enum vsep_kind kind, const struct stat *st, const char *path,
			 enum vsep_why why, bool allowed)
{
	if (!U.buckets || !let_pass_unscanned(kind, why, allowed))
		return;
	if (why != VSEP_WHY_ENGINE_ERROR)
		atomic_store(&U.failing, true);
	pthread_mutex_lock(&U.lock);
	remember(st, path, why);
	pthread_cond_signal(&U.cond);
	pthread_mutex_unlock(&U.lock);
}

void vsep_unscanned_scanned(const struct stat *st)
{
	struct entry *e;

	if (!U.buckets)
		return;
	atomic_store(&U.failing, false);
	if (atomic_load(&U.count) == 0)
		return;
	pthread_mutex_lock(&U.lock);
	e = find(st->st_dev, st->st_ino);
	if (e) {
		unlink_entry(e);
		atomic_fetch_add(&vsep_stats.rescanned, 1);
	}
	pthread_mutex_unlock(&U.lock);
}

size_t vsep_unscanned_count(void)
{
	return atomic_load(&U.count);
}

/* ------------------------------------------------------------ rescans */

struct due {
	uint64_t dev, ino;
	char *path;
};

/* Up to `max` due files, copied out; each is not due again before its
 * scan can have ended (every event ends by scan_max_ms at the latest). */
static size_t take_due(struct due *out, size_t max, uint64_t now)
{
	size_t n = 0;

	pthread_mutex_lock(&U.lock);
	for (struct entry *e = U.head; e && n < max; e = e->next) {
		if (e->next_try_ms > now || !(out[n].path = strdup(e->path)))
			continue;
		out[n].dev = e->dev;
		out[n].ino = e->ino;
		e->next_try_ms = now + (uint64_t)U.s->scan_max_ms + 5000;
		n++;
	}
	pthread_mutex_unlock(&U.lock);
	return n;
}

static void forget(uint64_t dev, uint64_t ino)
{
	struct entry *e;

	pthread_mutex_lock(&U.lock);
	if ((e = find(dev, ino)))
		unlink_entry(e);
	pthread_mutex_unlock(&U.lock);
}

static int open_again(const char *path)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	int fd = open(path, flags | O_NOATIME);

	/* O_NOATIME is refused on files we do not own without CAP_FOWNER. */
	if (fd < 0 && errno == EPERM)
		fd = open(path, flags);
	return fd;
}

/* Nothing left to scan (gone, emptied, replaced by a non-file, over
 * max_file_size) is forgotten; anything else goes to the workers as a
 * rescan, whose verdict (or its absence) comes back through held.c. */
static void rescan(const struct due *d)
{
	struct vsep_event ev = { .pid = getpid(), .kind = VSEP_KIND_RESCAN };
	struct stat st;

	ev.fd = open_again(d->path);
	if (ev.fd < 0 || fstat(ev.fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
	    (U.s->max_file_size > 0 && st.st_size > U.s->max_file_size)) {
		EPSEC_DBG("%s: nothing to scan any more; forgotten", d->path);
		if (ev.fd >= 0)
			close(ev.fd);
		forget(d->dev, d->ino);
		return;
	}
	/* Another file under that name now: the one let pass is gone from
	 * it; this one is scanned all the same, which costs one scan. */
	if (st.st_dev != d->dev || st.st_ino != d->ino)
		forget(d->dev, d->ino);
	EPSEC_DBG("scanning %s, let pass unscanned earlier", d->path);
	U.inject(&ev);
}

/* Sweeps take at most a quarter of the held table: openers first. */
static bool busy(void)
{
	return vsep_held_count() >= (size_t)U.s->max_held / 4;
}

static void rescan_due(uint64_t now)
{
	struct due d[BATCH];
	size_t n, max = BATCH;

	if (atomic_load(&U.count) == 0 || !U.ready() || busy())
		return;
	if (atomic_load(&U.failing)) {
		if (now - U.probe_ms < PROBE_MS)
			return;
		U.probe_ms = now;
		max = 1;
	}
	n = take_due(d, max, now);
	for (size_t i = 0; i < n; i++) {
		if (!U.stopping)
			rescan(&d[i]);
		free(d[i].path);
	}
}

/* ------------------------------------------------------------ the file */

/* One line a file: dev ino failures length path. The end line's count
 * tells a whole file from a torn one. */
static int write_entries(FILE *f)
{
	size_t n = 0;

	fprintf(f, "%s\n", MAGIC);
	pthread_mutex_lock(&U.lock);
	for (struct entry *e = U.head; e; e = e->next, n++)
		fprintf(f, "%llu %llu %u %zu %s\n", (unsigned long long)e->dev,
			(unsigned long long)e->ino, e->failures, strlen(e->path), e->path);
	U.dirty = false;
	pthread_mutex_unlock(&U.lock);
	fprintf(f, "end %zu\n", n);
	return fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
}

/* Written beside, then renamed over: a crash leaves the old or the new. */
static void save(void)
{
	char tmp[4096];
	FILE *f;
	int r;

	snprintf(tmp, sizeof(tmp), "%s.new", U.file);
	f = fopen(tmp, "we");
	if (!f) {
		EPSEC_WARN("cannot save the unscanned backlog to %s: %s", tmp, strerror(errno));
		return;
	}
	r = write_entries(f);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, U.file) < 0)
		r = -errno;
	if (r < 0) {
		EPSEC_WARN("cannot save the unscanned backlog to %s: %s", U.file, strerror(-r));
		unlink(tmp);
		U.dirty = true;
	}
}

static int read_entry(FILE *f, bool *end, size_t *n_end)
{
	unsigned long long dev, ino;
	unsigned failures;
	size_t len;
	char path[4097];

	if (fscanf(f, "end %zu\n", n_end) == 1) {
		*end = true;
		return fgetc(f) == EOF ? 0 : -EBADMSG;
	}
	if (fscanf(f, "%llu %llu %u %zu ", &dev, &ino, &failures, &len) != 4 || len == 0 ||
	    len >= sizeof(path) || failures >= MAX_TRIES)
		return -EBADMSG;
	if (fread(path, 1, len, f) != len || fgetc(f) != '\n' || path[0] != '/')
		return -EBADMSG;
	path[len] = '\0';
	if (memchr(path, '\0', len))
		return -EBADMSG;
	pthread_mutex_lock(&U.lock);
	if (!find(dev, ino) && atomic_load(&U.count) < (size_t)U.s->unscanned_max)
		add(dev, ino, path, failures);
	pthread_mutex_unlock(&U.lock);
	return 0;
}

static void drop_all(void)
{
	pthread_mutex_lock(&U.lock);
	while (U.head)
		unlink_entry(U.head);
	pthread_mutex_unlock(&U.lock);
}

/* All or nothing: a torn or foreign file is ignored, never trusted in part. */
static void load(void)
{
	char magic[64];
	bool end = false;
	size_t n_end = 0;
	FILE *f = fopen(U.file, "re");
	int r = 0;

	if (!f) {
		if (errno != ENOENT)
			EPSEC_WARN("%s: %s; starting with an empty backlog", U.file, strerror(errno));
		return;
	}
	if (!fgets(magic, sizeof(magic), f) || strcmp(magic, MAGIC "\n") != 0)
		r = -EBADMSG;
	while (r == 0 && !end)
		r = read_entry(f, &end, &n_end);
	fclose(f);
	if (r == 0 && n_end != atomic_load(&U.count))
		r = -EBADMSG;
	if (r < 0) {
		EPSEC_WARN("%s is damaged or not vsep's; ignored (its files are scanned when "
			   "next opened or written)", U.file);
		drop_all();
		return;
	}
	U.dirty = false;
	if (n_end)
		EPSEC_NOTICE("%zu file(s) let pass unscanned before the restart: scanning them "
			     "when the chain answers", n_end);
}

/* ------------------------------------------------------------ the thread */

static void tick(uint64_t now)
{
	rescan_due(now);
	if (U.file && U.dirty && now - U.saved_ms >= SAVE_MS) {
		U.saved_ms = now;
		save();
	}
}

static void *unscanned_main(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&U.lock);
	while (!U.stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&U.cond, &U.lock, &ts);
		pthread_mutex_unlock(&U.lock);
		tick(epsec_now_ms());
		pthread_mutex_lock(&U.lock);
	}
	pthread_mutex_unlock(&U.lock);
	return NULL;
}

static int open_state(const char *dir)
{
	size_t n = strlen(dir) + sizeof(FILE_NAME) + 2;
	int r;

	if (!dir[0])
		return 0;
	if (dir[0] != '/')
		return -EINVAL;
	r = vsep_make_private_dir(dir);
	if (r < 0) {
		EPSEC_WARN("state_dir %s: %s; the unscanned backlog is not kept across restarts",
			   dir, strerror(-r));
		return 0;
	}
	U.file = malloc(n);
	if (!U.file)
		return -ENOMEM;
	snprintf(U.file, n, "%s/%s", dir, FILE_NAME);
	load();
	return 0;
}

int vsep_unscanned_start(const struct vsep_settings *s, bool (*ready)(void),
			 void (*inject)(const struct vsep_event *ev))
{
	size_t n = 1024;
	int r;

	while (n < (size_t)s->unscanned_max / 2 && n < ((size_t)1 << 18))
		n <<= 1;
	U.buckets = calloc(n, sizeof(*U.buckets));
	if (!U.buckets)
		return -ENOMEM;
	U.mask = n - 1;
	U.s = s;
	U.ready = ready;
	U.inject = inject;
	r = open_state(s->state_dir);
	if (r == 0)
		r = -pthread_create(&U.thread, NULL, unscanned_main, NULL);
	U.started = r == 0;
	return r;
}

void vsep_unscanned_stop(void)
{
	if (!U.started)
		return;
	pthread_mutex_lock(&U.lock);
	U.stopping = true;
	pthread_cond_signal(&U.cond);
	pthread_mutex_unlock(&U.lock);
	pthread_join(U.thread, NULL);
	U.started = false;
}

void vsep_unscanned_fini(void)
{
	vsep_unscanned_stop();
	if (U.file && U.dirty)
		save();
	if (U.buckets)
		drop_all();
	free(U.buckets);
	U.buckets = NULL;
	free(U.file);
	U.file = NULL;
}
