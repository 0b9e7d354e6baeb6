/* SPDX-License-Identifier: MIT */
/* Percentiles of the latency window, computed on demand: sorting 4096
 * integers costs well under a millisecond, once per status request, and
 * keeps the per-verdict cost to one store. */
#include "config.h"
#include "latency.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least pct% of them at or below. */
static uint32_t rank(const uint32_t *sorted, size_t n, unsigned pct)
{
	size_t k = (n * pct + 99) / 100;

	return sorted[k ? k - 1 : 0];
}

void mux_latency_summary(const struct mux_latency *l, struct mux_latency_summary *out)
{
	static uint32_t copy[MUX_LATENCY_WINDOW];
	size_t n = l->n < MUX_LATENCY_WINDOW ? (size_t)l->n : MUX_LATENCY_WINDOW;

	memset(out, 0, sizeof(*out));
	if (!n)
		return;
	memcpy(copy, l->us, n * sizeof(copy[0]));
	qsort(copy, n, sizeof(copy[0]), cmp_u32);
	out->samples = n;
	out->p50_us = rank(copy, n, 50);
	out->p99_us = rank(copy, n, 99);
	out->max_us = copy[n - 1];
}
