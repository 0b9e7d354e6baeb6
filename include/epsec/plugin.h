/* SPDX-License-Identifier: MIT */
/* The verdict plugin ABI: what an engine (eicar, clamav, yara, a partner's)
 * exports and what it is given. Build with `pkg-config --cflags epsec-plugin`
 * and install into `pkg-config --variable=plugindir epsec-plugin`. */
#ifndef EPSEC_PLUGIN_H
#define EPSEC_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <epsec/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Verdict plugin ABI. The loader accepts a plugin whose major equals the
 * host's and whose minor is not newer, and whose struct_size covers every
 * field of the minor it claims.
 * 1.0  first version.
 * 1.1  struct epsec_file: deadline_ms and content_fd. A plugin that
 *      claims 1.1 is only loaded by hosts that fill them. */
#define EPSEC_VERDICT_ABI_MAJOR 1
#define EPSEC_VERDICT_ABI_MINOR 1

/* The one symbol a verdict plugin exports. */
#define EPSEC_VERDICT_SYMBOL "epsec_verdict_plugin"

enum epsec_event_kind {
	EPSEC_EVENT_OPEN = 1,
	EPSEC_EVENT_EXEC = 2,
	EPSEC_EVENT_CLOSE_WRITE = 3,
	EPSEC_EVENT_ONDEMAND = 4, /* epsecctl scan */
};

/* A file under scan. The plugin never learns whether the bytes come from a
 * local fd or through the mux from a remote agent. */
struct epsec_file {
	const char *path;
	const char *exe;  /* process that caused the event, may be "" */
	uint64_t size;
	uint64_t dev;
	uint64_t ino;
	uint32_t mode;
	uint32_t uid;
	int32_t pid;
	enum epsec_event_kind kind;
	/* Read up to len bytes at off; returns bytes read (0 at end of file)
	 * or a negative errno. Safe to call from the scanning thread only. */
	ssize_t (*pread)(struct epsec_file *file, void *buf, size_t len, uint64_t off);
	void *ctx; /* the host's, not the plugin's */

	/* 1.1: when this scan must have ended, in CLOCK_MONOTONIC ms (the
	 * event's own deadline, counted from when a worker started the scan;
	 * 0 = none). An engine with a timeout of its own takes what is left;
	 * past it the scan is an EPSEC_SCAN_ERROR, never a clean. */
	int64_t deadline_ms;
	/* 1.1, may be NULL: a read-only fd holding the whole content from
	 * offset 0, for engines that scan a file or a mapping at once
	 * (libyara's scan_fd, libclamav's cl_scandesc), so their modules see
	 * everything, as the `yara` command does. The file itself when the
	 * agent passed it; otherwise a copy the host stages once from the
	 * agent. The host's to close, valid until the verdict; use pread or
	 * mmap, never its offset. Negative errno: -EFBIG larger than the host
	 * stages (fall back to pread), or why the content could not be had. */
	int (*content_fd)(struct epsec_file *file);
};

/* Scan outcomes: their own enum, never an errno. */
enum epsec_scan_result {
	EPSEC_SCAN_CLEAN = 0,
	EPSEC_SCAN_FOUND = 1,
	EPSEC_SCAN_ERROR = 2, /* could not decide; detail in verdict->signature */
};

#define EPSEC_SIGNATURE_MAX 256

struct epsec_scan_report {
	char signature[EPSEC_SIGNATURE_MAX]; /* name of what was found, or why ERROR */
};

struct epsec_verdict_plugin {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;
	const char *name;    /* "eicar"; also the log source */
	const char *version; /* the engine's own version, for status */

	/* Validate `cfg` (may be NULL: no options group) and build the state.
	 * Errors are reported through host->conf_error/log and returned as a
	 * negative errno; the daemon then refuses to start. */
	int (*open)(const struct epsec_host *host, const config_setting_t *cfg, void **state);
	/* Called from many threads at once. */
	enum epsec_scan_result (*scan)(void *state, struct epsec_file *file,
				       struct epsec_scan_report *report);
	/* Optional (NULL): recompile signatures beside the old ones, swap. */
	int (*reload)(void *state);
	/* Optional (NULL): one line about the loaded signatures, for status. */
	int (*signatures)(void *state, char *buf, size_t len);
	void (*close)(void *state);
};

#ifdef __cplusplus
}
#endif
#endif
