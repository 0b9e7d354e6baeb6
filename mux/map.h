/* SPDX-License-Identifier: MIT */
/* A uint64 -> pointer hash map for the mux's routing tables: open
 * addressing, linear probing, backward-shift deletion, so lookups stay
 * O(1) with 100k events in flight and nothing is ever tombstoned. */
#ifndef EPSEC_MUX_MAP_H
#define EPSEC_MUX_MAP_H

#include <stddef.h>
#include <stdint.h>

struct mux_map_slot {
	uint64_t key;
	void *val; /* NULL: the slot is empty (values are never NULL) */
};

struct mux_map {
	struct mux_map_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two, or 0 */
	size_t len;
};

void mux_map_init(struct mux_map *m);
void mux_map_free(struct mux_map *m);
/* 0, -EEXIST (key present, nothing changed), -EINVAL (NULL val), -ENOMEM. */
int mux_map_put(struct mux_map *m, uint64_t key, void *val);
void *mux_map_get(const struct mux_map *m, uint64_t key);
/* The value removed, or NULL when the key was absent. */
void *mux_map_del(struct mux_map *m, uint64_t key);

#endif
