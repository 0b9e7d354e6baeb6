/* SPDX-License-Identifier: MIT */
/* Unit test of vsep's verdict cache: hits only for the file as it was
 * (size, mtime, ctime) at the current generation, a newer generation
 * drops everything, older verdicts are not kept, the table stays within
 * its bound, and many threads may use it at once. Ignore marks are off
 * here (they need fanotify; the policy integration tests cover them). */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "cache.h"

struct vsep_counters vsep_stats;

static struct vsep_settings settings(int entries)
{
	return (struct vsep_settings){ .cache_size = entries, .ignore_marks = false };
}

static int setup_small(void **state)
{
	static struct vsep_settings s;

	s = settings(64);
	memset(&vsep_stats, 0, sizeof(vsep_stats));
	return vsep_cache_init(&s, -1);
}

static int teardown(void **state)
{
	vsep_cache_fini();
	return 0;
}

static struct stat file(uint64_t ino)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_dev = 42;
	st.st_ino = (ino_t)ino;
	st.st_size = 1000;
	st.st_mtim.tv_sec = 1700000000;
	st.st_ctim.tv_sec = 1700000000;
	st.st_mode = S_IFREG | 0644;
	return st;
}

static bool hit(const struct stat *st, enum vsep_action *act)
{
	uint64_t gen;

	return vsep_cache_lookup(st, act, &gen);
}

static void test_hit_and_miss(void **state)
{
	struct stat st = file(1);
	enum vsep_action act = VSEP_ACT_DENY;

	assert_true(vsep_cache_enabled());
	assert_false(hit(&st, &act));
	vsep_cache_store(&st, VSEP_ACT_ALLOW, 1);
	assert_true(hit(&st, &act));
	assert_int_equal(act, VSEP_ACT_ALLOW);
	assert_int_equal(atomic_load(&vsep_stats.cache_hits), 1);
	assert_int_equal(atomic_load(&vsep_stats.cache_misses), 1);
}

static void test_changed_file_misses(void **state)
{
	struct stat st = file(2), changed;
	enum vsep_action act;

	vsep_cache_store(&st, VSEP_ACT_DENY, 1);
	assert_true(hit(&st, &act));
	assert_int_equal(act, VSEP_ACT_DENY);
	changed = st;
	changed.st_size++;
	assert_false(hit(&changed, &act));
	changed = st;
	changed.st_mtim.tv_nsec++;
	assert_false(hit(&changed, &act));
	changed = st;
	changed.st_ctim.tv_nsec++;
	assert_false(hit(&changed, &act));
	changed = st;
	changed.st_dev++;
	assert_false(hit(&changed, &act));
	/* A newer verdict for the same inode replaces the old one. */
	changed = st;
	changed.st_size = 5;
	vsep_cache_store(&changed, VSEP_ACT_ALLOW, 1);
	assert_true(hit(&changed, &act));
	assert_int_equal(act, VSEP_ACT_ALLOW);
}

static void test_generations(void **state)
{
	struct stat a = file(3), b = file(4);
	enum vsep_action act;

	vsep_cache_store(&a, VSEP_ACT_ALLOW, 5);
	assert_true(hit(&a, &act));
	/* b's verdict comes from a reloaded SVA: a's is gone. */
	vsep_cache_store(&b, VSEP_ACT_ALLOW, 6);
	assert_false(hit(&a, &act));
	assert_true(hit(&b, &act));
	/* A late verdict of an older generation is not kept. */
	vsep_cache_store(&a, VSEP_ACT_ALLOW, 5);
	assert_false(hit(&a, &act));
	vsep_cache_store(&a, VSEP_ACT_ALLOW, 6);
	assert_true(hit(&a, &act));
}

static void test_bounded_lru(void **state)
{
	enum vsep_action act;
	struct stat st, hot = file(1000000);
	int kept = 0;

	vsep_cache_store(&hot, VSEP_ACT_ALLOW, 1);
	for (uint64_t i = 0; i < 10000; i++) {
		st = file(i + 10);
		vsep_cache_store(&st, VSEP_ACT_ALLOW, 1);
		/* Used all along: never the least recently used of its set. */
		assert_true(hit(&hot, &act));
	}
	for (uint64_t i = 0; i < 10000; i++) {
		st = file(i + 10);
		kept += hit(&st, &act);
	}
	/* 64 entries (8 sets of 8 ways): the hot file and the 63 newest. */
	assert_int_equal(kept, 63);
}

static void test_off(void **state)
{
	struct vsep_settings s = settings(0);
	struct stat st = file(7);
	enum vsep_action act;

	vsep_cache_fini();
	assert_int_equal(vsep_cache_init(&s, -1), 0);
	assert_false(vsep_cache_enabled());
	vsep_cache_store(&st, VSEP_ACT_ALLOW, 1);
	assert_false(hit(&st, &act));
	assert_int_equal(atomic_load(&vsep_stats.cache_misses), 0);
}

#define THREADS 4
#define ROUNDS 20000

static void *hammer(void *arg)
{
	uintptr_t k = (uintptr_t)arg;
	enum vsep_action act;
	long wrong = 0;

	for (uint64_t i = 0; i < ROUNDS; i++) {
		struct stat st = file(1 + (i * 7 + k) % 300);

		/* Each file's verdict is a function of its inode: a torn
		 * or mixed-up entry would show as the other action. */
		if (hit(&st, &act) && act != (st.st_ino % 2 ? VSEP_ACT_ALLOW : VSEP_ACT_DENY))
			wrong++;
		vsep_cache_store(&st, st.st_ino % 2 ? VSEP_ACT_ALLOW : VSEP_ACT_DENY, 1);
	}
	return (void *)wrong;
}

static void test_threads(void **state)
{
	struct vsep_settings s = settings(256);
	pthread_t t[THREADS];
	void *wrong;

	vsep_cache_fini();
	assert_int_equal(vsep_cache_init(&s, -1), 0);
	for (uintptr_t k = 0; k < THREADS; k++)
		assert_int_equal(pthread_create(&t[k], NULL, hammer, (void *)k), 0);
	for (int k = 0; k < THREADS; k++) {
		assert_int_equal(pthread_join(t[k], &wrong), 0);
		assert_null(wrong);
	}
	assert_int_equal(atomic_load(&vsep_stats.cache_hits) +
				 atomic_load(&vsep_stats.cache_misses),
			 THREADS * ROUNDS);
	assert_true(atomic_load(&vsep_stats.cache_hits) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_and_miss, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_changed_file_misses, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_generations, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_lru, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_off, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup_small, teardown),
	};

	return cmocka_run_group_tests_name("agent_cache", tests, NULL, NULL);
}
