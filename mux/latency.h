/* SPDX-License-Identifier: MIT */
/* The mux's routing latency: the time from an agent's EVENT arriving to
 * its VERDICT being forwarded, over the last MUX_LATENCY_WINDOW events.
 * A ring of samples: one store per verdict on the hot path, percentiles
 * sorted out of a copy only when someone asks (status). */
#ifndef EPSEC_MUX_LATENCY_H
#define EPSEC_MUX_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define MUX_LATENCY_WINDOW 4096u /* a power of two */

struct mux_latency {
	uint64_t n; /* samples ever added */
	uint32_t us[MUX_LATENCY_WINDOW];
};

struct mux_latency_summary {
	size_t samples; /* in the window, <= MUX_LATENCY_WINDOW */
	uint32_t p50_us, p99_us, max_us;
};

static inline void mux_latency_add(struct mux_latency *l, uint64_t us)
{
	l->us[l->n++ & (MUX_LATENCY_WINDOW - 1)] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Percentiles of the window (all zero when it is empty). */
void mux_latency_summary(const struct mux_latency *l, struct mux_latency_summary *out);

#endif
