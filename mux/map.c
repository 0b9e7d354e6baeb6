/* SPDX-License-Identifier: MIT */
/* The mux's uint64 hash map. Linear probing keeps a probe in one or two
 * cache lines; backward-shift deletion keeps chains short under the
 * constant insert/delete churn of in-flight events. */
#include "config.h"
#include "map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#define MAP_MIN_CAP 16u

/* splitmix64's finalizer: request ids are sequential, so spread them. */
static uint64_t map_hash(uint64_t k)
{
	k ^= k >> 30;
	k *= 0xbf58476d1ce4e5b9ULL;
	k ^= k >> 27;
	k *= 0x94d049bb133111ebULL;
	k ^= k >> 31;
	return k;
}

void mux_map_init(struct mux_map *m)
{
	m->slots = NULL;
	m->mask = 0;
	m->len = 0;
}

void mux_map_free(struct mux_map *m)
{
	free(m->slots);
	mux_map_init(m);
}

static size_t map_find(const struct mux_map *m, uint64_t key, bool *found)
{
	size_t i = map_hash(key) & m->mask;

	while (m->slots[i].val) {
		if (m->slots[i].key == key) {
			*found = true;
			return i;
		}
		i = (i + 1) & m->mask;
	}
	*found = false;
	return i;
}

static int map_grow(struct mux_map *m)
{
	size_t cap = m->slots ? (m->mask + 1) * 2 : MAP_MIN_CAP;
	struct mux_map_slot *old = m->slots;
	size_t old_cap = m->slots ? m->mask + 1 : 0;
	bool found;

	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->mask = cap - 1;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].val)
			m->slots[map_find(m, old[i].key, &found)] = old[i];
	}
	free(old);
	return 0;
}

int mux_map_put(struct mux_map *m, uint64_t key, void *val)
{
	bool found;
	size_t i;
	int rc;

	if (!val)
		return -EINVAL;
	/* Keep the load under 1/2: probes stay short even for clustered ids. */
	if (!m->slots || (m->len + 1) * 2 > m->mask + 1) {
		rc = map_grow(m);
		if (rc < 0)
			return rc;
	}
	i = map_find(m, key, &found);
	if (found)
		return -EEXIST;
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->len++;
	return 0;
}

void *mux_map_get(const struct mux_map *m, uint64_t key)
{
	bool found;
	size_t i;

	if (!m->slots)
		return NULL;
	i = map_find(m, key, &found);
	return found ? m->slots[i].val : NULL;
}

/* Move later members of the probe chain back into the hole, so every key
 * stays reachable from its home slot without tombstones. */
static void map_close_hole(struct mux_map *m, size_t hole)
{
	size_t i = hole;

	for (;;) {
		i = (i + 1) & m->mask;
		if (!m->slots[i].val)
			break;
		size_t home = map_hash(m->slots[i].key) & m->mask;
		/* Movable when home is not cyclically within (hole, i]. */
		if (((i - home) & m->mask) >= ((i - hole) & m->mask)) {
			m->slots[hole] = m->slots[i];
			hole = i;
		}
	}
	m->slots[hole].val = NULL;
	m->slots[hole].key = 0;
}

void *mux_map_del(struct mux_map *m, uint64_t key)
{
	bool found;
	size_t i;
	void *val;

	if (!m->slots)
		return NULL;
	i = map_find(m, key, &found);
	if (!found)
		return NULL;
	val = m->slots[i].val;
	map_close_hole(m, i);
	m->len--;
	return val;
}
