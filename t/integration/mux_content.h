/* SPDX-License-Identifier: MIT */
/* The synthetic files of the mux tests: agent N's file for event S is the
 * text "agent-N/S;" repeated to its size, and its path is "/agent-N/S".
 * A test SVA that reads a file through the mux can tell from the path
 * alone what the bytes must be, so data from any other agent shows. */
#ifndef EPSEC_T_MUX_CONTENT_H
#define EPSEC_T_MUX_CONTENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static inline void mux_test_path(char *buf, size_t len, unsigned agent, uint64_t seq)
{
	snprintf(buf, len, "/agent-%05u/%llu", agent, (unsigned long long)seq);
}

/* 0, or -1 when the path is not one of ours. */
static inline int mux_test_parse(const char *path, unsigned *agent, uint64_t *seq)
{
	unsigned long long s;

	if (!path || sscanf(path, "/agent-%5u/%llu", agent, &s) != 2)
		return -1;
	*seq = s;
	return 0;
}

/* Bytes [off, off + len) of the file. */
static inline void mux_test_content(unsigned agent, uint64_t seq, uint64_t off, uint8_t *buf,
				    size_t len)
{
	char pat[48];
	int n = snprintf(pat, sizeof(pat), "agent-%05u/%llu;", agent, (unsigned long long)seq);

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)pat[(off + i) % (uint64_t)n];
}

#endif
