/* SPDX-License-Identifier: MIT */
/* An intrusive circular doubly linked list: O(1) unlink from the middle,
 * which the routing records (on three lists at once) and the peer lists
 * need. */
#ifndef EPSEC_MUX_LIST_H
#define EPSEC_MUX_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct mux_list {
	struct mux_list *prev, *next;
};

#define MUX_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void mux_list_init(struct mux_list *l)
{
	l->prev = l->next = l;
}

static inline bool mux_list_empty(const struct mux_list *l)
{
	return l->next == l;
}

static inline void mux_list_add_tail(struct mux_list *head, struct mux_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void mux_list_del(struct mux_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	mux_list_init(n);
}

#endif
