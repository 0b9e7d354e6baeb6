/* SPDX-License-Identifier: MIT */
/* A verdict plugin for the chain test only (never installed): it reads the
 * whole file through pread and detects "Test-Pattern" when every byte is
 * the pattern the test's agent serves. A detection thus proves that each
 * byte beyond the inline ones went agent -> mux -> SVA and arrived intact,
 * at the right offset. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <epsec/plugin.h>

#define CHUNK 100000 /* odd-sized, so reads straddle the inline end */
#define MIN_SIZE 1024

static uint8_t pattern_at(uint64_t i)
{
	return (uint8_t)(i * 31u + (i >> 11) + 7u);
}

static int pattern_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	static const char *const no_options[] = { NULL };

	*state = NULL;
	return host->conf_check_keys(cfg, no_options);
}

static bool chunk_matches(const uint8_t *buf, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pattern_at(off + i))
			return false;
	return true;
}

static enum epsec_scan_result pattern_scan(void *state, struct epsec_file *file,
					   struct epsec_scan_report *report)
{
	uint8_t *buf;
	uint64_t off = 0;
	ssize_t n = 0;
	enum epsec_scan_result r = EPSEC_SCAN_FOUND;

	if (file->size < MIN_SIZE)
		return EPSEC_SCAN_CLEAN;
	buf = malloc(CHUNK);
	if (!buf)
		return EPSEC_SCAN_ERROR;
	while (off < file->size && r == EPSEC_SCAN_FOUND) {
		n = file->pread(file, buf, CHUNK, off);
		if (n <= 0)
			break;
		if (!chunk_matches(buf, (size_t)n, off))
			r = EPSEC_SCAN_CLEAN;
		off += (uint64_t)n;
	}
	free(buf);
	if (r == EPSEC_SCAN_FOUND && off != file->size) {
		snprintf(report->signature, sizeof(report->signature), "read %llu of %llu: %s",
			 (unsigned long long)off, (unsigned long long)file->size,
			 n < 0 ? strerror((int)-n) : "short");
		return EPSEC_SCAN_ERROR;
	}
	if (r == EPSEC_SCAN_FOUND)
		snprintf(report->signature, sizeof(report->signature), "Test-Pattern");
	return r;
}

static void pattern_close(void *state)
{
}

extern const struct epsec_verdict_plugin epsec_verdict_plugin;

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "test_pattern",
	.version = "test",
	.open = pattern_open,
	.scan = pattern_scan,
	.close = pattern_close,
};
