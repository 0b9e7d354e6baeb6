/* SPDX-License-Identifier: MIT */
/* The verdict cache and the kernel's copy of it (fanotify ignore marks).
 * Ignore marks live here rather than in fanotify.c because their whole
 * life is the cache's: placed after a clean answer, dropped by the kernel
 * on a write, flushed with the cache on a new signature generation. */
#include "config.h"
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include "fanotify.h"
#include "log.h"
#include "loop.h"

#define EPSEC_LOG_SRC "cache"

/* Set-associative: a lookup touches one set of WAYS entries under one of
 * NLOCKS striped locks, and the table never allocates after start-up. */
#define WAYS 8
#define NLOCKS 64

#if HAVE_DECL_FAN_OPEN_EXEC_PERM
#define IGNORE_EXEC FAN_OPEN_EXEC_PERM
#else
#define IGNORE_EXEC 0
#endif

struct entry {
	uint64_t dev, ino, gen;
	int64_t size, mtime_ns, ctime_ns;
	uint32_t used; /* the set's tick at the last hit or store */
	uint8_t action;
	bool valid;
};

struct set {
	uint32_t tick;
	struct entry e[WAYS];
};

static struct {
	struct set *sets;
	size_t nsets;
	pthread_mutex_t locks[NLOCKS];
	/* The newest generation any verdict carried: entries of another
	 * one are dead without being touched. */
	_Atomic uint64_t gen;
} C;

/* Ignore marks. Placing takes `lock` shared and checks the generation
 * under it; a flush takes it exclusive, so no mark of an old generation
 * can land after the flush that was meant to remove it. Placing never
 * waits for a flush (it skips the mark): the reader thread places marks.
 * Writers first, so a steady stream of placements cannot starve a flush. */
static struct {
	int fanfd;
	size_t max; /* 0: off */
	atomic_size_t placed;
	_Atomic uint64_t mask;
	pthread_rwlock_t lock;
} M = { .fanfd = -1, .lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP };

/* ------------------------------------------------------------ verdicts */

/* Unsigned: a far-future time a user sets must not overflow (ctime, which
 * no user can set, keeps distinct states distinct). */
static int64_t ns(const struct timespec *t)
{
	return (int64_t)((uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec);
}

static void key_of(const struct stat *st, struct entry *k)
{
	k->dev = (uint64_t)st->st_dev;
	k->ino = (uint64_t)st->st_ino;
	k->size = (int64_t)st->st_size;
	k->mtime_ns = ns(&st->st_mtim);
	k->ctime_ns = ns(&st->st_ctim);
}

static bool same_key(const struct entry *a, const struct entry *b)
{
	return a->ino == b->ino && a->dev == b->dev && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

static size_t set_of(const struct entry *k)
{
	uint64_t x = k->ino ^ (k->dev << 32 | k->dev >> 32);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (size_t)(x % C.nsets);
}

static pthread_mutex_t *lock_of(size_t set)
{
	return &C.locks[set % NLOCKS];
}

/* Caller holds the set's lock. */
static struct entry *find(struct set *s, const struct entry *k, uint64_t gen)
{
	for (int i = 0; i < WAYS; i++) {
		struct entry *e = &s->e[i];

		if (e->valid && e->gen == gen && same_key(e, k))
			return e;
	}
	return NULL;
}

/* Caller holds the set's lock: the same file's entry, a dead one, or the
 * least recently used. */
static struct entry *victim(struct set *s, const struct entry *k, uint64_t gen)
{
	struct entry *v = &s->e[0];

	for (int i = 0; i < WAYS; i++) {
		struct entry *e = &s->e[i];

		if (!e->valid || e->gen != gen || (e->ino == k->ino && e->dev == k->dev))
			return e;
		if ((uint32_t)(s->tick - e->used) > (uint32_t)(s->tick - v->used))
			v = e;
	}
	return v;
}

bool vsep_cache_enabled(void)
{
	return C.sets != NULL;
}

bool vsep_cache_lookup(const struct stat *st, enum vsep_action *action, uint64_t *generation)
{
	struct entry k, *e;
	size_t i;
	uint64_t gen = atomic_load(&C.gen);

	if (!C.sets)
		return false;
	key_of(st, &k);
	i = set_of(&k);
	pthread_mutex_lock(lock_of(i));
	e = find(&C.sets[i], &k, gen);
	if (e) {
		e->used = ++C.sets[i].tick;
		*action = (enum vsep_action)e->action;
		*generation = gen;
	}
	pthread_mutex_unlock(lock_of(i));
	atomic_fetch_add(e ? &vsep_stats.cache_hits : &vsep_stats.cache_misses, 1);
	return e != NULL;
}

/* ------------------------------------------------------------ ignore marks */

/* Caller holds M.lock exclusive. FAN_MARK_FLUSH of inode marks takes the
 * marks on protected directories with it, so they are placed again: opens
 * in inode-marked trees go unseen for the time that takes. */
/* Ignore marks go one by one, so the directory marks that protect the
 * trees never leave: a FAN_MARK_FLUSH takes them too, and every open in
 * the moment before they are placed again would go unscanned (a storm of
 * generations made that a window anyone could use). The flush stays only
 * for a mark the handles cannot reach, and says so. */
static void flush_locked(const char *why)
{
	size_t cleared = 0;
	int r;

	atomic_store(&M.placed, 0);
	r = vsep_fan_clear_ignores(M.fanfd, &cleared);
	if (r == 0) {
		EPSEC_INFO("%zu ignore mark(s) removed: %s", cleared, why);
		return;
	}
	EPSEC_WARN("removing ignore marks one by one (%s): %s; flushing them all instead",
		   why, strerror(-r));
	if (fanotify_mark(M.fanfd, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL) < 0)
		r = -errno;
	else
		r = vsep_fan_remark(M.fanfd);
	if (r < 0)
		EPSEC_ERR("flushing ignore marks (%s): %s", why, strerror(-r));
}

/* The kernel drops an ignore mark by itself when its file is written,
 * deleted or evicted, so `placed` only ever over-counts: the group's
 * fdinfo lists the marks that really are there. */
static size_t count_ignore_marks(void)
{
	char path[64], line[512];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", M.fanfd);
	f = fopen(path, "re");
	if (!f)
		return M.max;
	while (fgets(line, sizeof(line), f)) {
		const char *im = strstr(line, " ignored_mask:");

		if (strncmp(line, "fanotify ino:", 13) == 0 && im && strtoul(im + 14, NULL, 16))
			n++;
	}
	fclose(f);
	return n;
}

/* A flush of every ignore mark also takes the marks on protected
 * directories with it for a moment; a user who could cause one at will
 * (by opening ignore_marks_max new files) could open files unseen. So a
 * full table is never flushed: it is counted again (at most once a
 * second), and while it is really full, further clean files are answered
 * from the verdict cache in the reader, nearly as cheaply. Only a new
 * signature generation, which an operator causes, flushes. */
void vsep_cache_maintain(void)
{
	static uint64_t last_ms;
	static atomic_bool told;
	uint64_t now = epsec_now_ms();
	size_t n;

	if (!M.max || atomic_load(&M.placed) < M.max || now - last_ms < 1000)
		return;
	last_ms = now;
	n = count_ignore_marks();
	atomic_store(&M.placed, n);
	if (n >= M.max && !atomic_exchange(&told, true))
		EPSEC_NOTICE("ignore_marks_max (%zu) reached: further clean files are answered "
			     "from the verdict cache", M.max);
}

static bool same_state(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && ns(&a->st_mtim) == ns(&b->st_mtim) &&
	       ns(&a->st_ctim) == ns(&b->st_ctim);
}

static int mark(unsigned how, int fd)
{
	uint64_t mask = atomic_load(&M.mask);

	while (fanotify_mark(M.fanfd, how | FAN_MARK_IGNORED_MASK, mask, fd, NULL) < 0) {
		if (errno != EINVAL || !(mask & IGNORE_EXEC))
			return -errno;
		/* A kernel without exec permission events (before 5.0). */
		mask &= ~(uint64_t)IGNORE_EXEC;
		atomic_store(&M.mask, mask);
	}
	return 0;
}

/* Caller holds M.lock shared. The kernel drops an ignore mark on a write
 * only once the mark exists: a write between the scan and now must be
 * caught here, by the file's state. */
static int place(int fd, const struct stat *st)
{
	struct stat now;
	int r = mark(FAN_MARK_ADD, fd);

	if (r < 0)
		return r;
	if (fstat(fd, &now) < 0 || !same_state(st, &now)) {
		mark(FAN_MARK_REMOVE, fd);
		return -ESTALE;
	}
	return 0;
}

/* -ENOSPC when the bound (ours or the kernel's) is reached. -EBUSY while
 * a flush runs. */
static int try_ignore(int fd, const struct stat *st, uint64_t gen)
{
	int r;

	if (pthread_rwlock_tryrdlock(&M.lock) != 0)
		return -EBUSY;
	if (gen != atomic_load(&C.gen)) {
		r = -ESTALE;
	} else if (atomic_fetch_add(&M.placed, 1) >= M.max) {
		atomic_fetch_sub(&M.placed, 1);
		r = -ENOSPC;
	} else {
		r = place(fd, st);
		if (r == -ENOSPC)
			atomic_store(&M.placed, M.max);
		else if (r < 0)
			atomic_fetch_sub(&M.placed, 1);
	}
	pthread_rwlock_unlock(&M.lock);
	return r;
}

void vsep_cache_ignore(int fd, const struct stat *st, uint64_t generation)
{
	int r;

	if (!M.max)
		return;
	r = try_ignore(fd, st, generation);
	if (r == 0)
		atomic_fetch_add(&vsep_stats.ignore_marks, 1);
	else if (r != -ESTALE && r != -ENOSPC && r != -EBUSY)
		EPSEC_DBG("no ignore mark: %s", strerror(-r));
}

/* A write through a shared mapping changes neither size nor times and
 * raises no modify event, so neither the key nor the kernel drops what we
 * know: every close_write forgets the file before it is scanned again. */
void vsep_cache_forget(int fd, const struct stat *st)
{
	struct entry k;
	size_t i;

	if (M.max && fanotify_mark(M.fanfd, FAN_MARK_REMOVE | FAN_MARK_IGNORED_MASK,
				   atomic_load(&M.mask), fd, NULL) == 0)
		atomic_fetch_sub(&M.placed, atomic_load(&M.placed) > 0 ? 1 : 0);
	if (!C.sets)
		return;
	key_of(st, &k);
	i = set_of(&k);
	pthread_mutex_lock(lock_of(i));
	for (int w = 0; w < WAYS; w++) {
		struct entry *e = &C.sets[i].e[w];

		if (e->valid && e->ino == k.ino && e->dev == k.dev)
			e->valid = false;
	}
	pthread_mutex_unlock(lock_of(i));
}

/* ------------------------------------------------------------ generations */

static void advance(uint64_t gen)
{
	uint64_t old;

	pthread_rwlock_wrlock(&M.lock);
	old = atomic_load(&C.gen);
	if (gen > old) {
		atomic_store(&C.gen, gen);
		if (atomic_load(&M.placed) > 0)
			flush_locked("new signature generation");
	}
	pthread_rwlock_unlock(&M.lock);
	if (gen > old && old > 0)
		EPSEC_NOTICE("signature generation %llu (was %llu): cached verdicts dropped",
			     (unsigned long long)gen, (unsigned long long)old);
}

uint64_t vsep_cache_current_generation(void)
{
	return atomic_load(&C.gen);
}

void vsep_cache_generation(uint64_t generation)
{
	if (generation > atomic_load(&C.gen))
		advance(generation);
}

void vsep_cache_store(const struct stat *st, enum vsep_action action, uint64_t generation)
{
	struct entry k, *e;
	size_t i;

	if (generation > atomic_load(&C.gen))
		advance(generation);
	if (!C.sets || generation != atomic_load(&C.gen))
		return;
	key_of(st, &k);
	i = set_of(&k);
	pthread_mutex_lock(lock_of(i));
	e = victim(&C.sets[i], &k, generation);
	*e = k;
	e->gen = generation;
	e->action = (uint8_t)action;
	e->valid = true;
	e->used = ++C.sets[i].tick;
	pthread_mutex_unlock(lock_of(i));
}

/* ------------------------------------------------------------ start/stop */

int vsep_cache_init(const struct vsep_settings *s, int fanfd)
{
	size_t entries = s->cache_size > 0 ? (size_t)s->cache_size : 0;

	M.fanfd = fanfd;
	M.max = s->ignore_marks && s->ignore_marks_max > 0 ? (size_t)s->ignore_marks_max : 0;
	atomic_store(&M.mask, FAN_OPEN_PERM | IGNORE_EXEC);
	atomic_store(&M.placed, 0);
	atomic_store(&C.gen, 0);
	if (entries == 0)
		return 0;
	C.nsets = (entries + WAYS - 1) / WAYS;
	C.sets = calloc(C.nsets, sizeof(*C.sets));
	if (!C.sets)
		return -ENOMEM;
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&C.locks[i], NULL);
	return 0;
}

void vsep_cache_fini(void)
{
	if (C.sets) {
		for (int i = 0; i < NLOCKS; i++)
			pthread_mutex_destroy(&C.locks[i]);
	}
	free(C.sets);
	C.sets = NULL;
	C.nsets = 0;
	M.max = 0;
}
