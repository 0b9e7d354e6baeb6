/* SPDX-License-Identifier: MIT */
/* The services a host program offers its plugins (verdict and transport).
 * A plugin links against nothing of ours: everything it needs from epsec
 * arrives through this table, handed to it at open/listen/connect. */
#ifndef EPSEC_HOST_H
#define EPSEC_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <libconfig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Syslog severities: 0 emerg .. 7 debug. */
enum epsec_log_level {
	EPSEC_LOG_EMERG = 0,
	EPSEC_LOG_ALERT = 1,
	EPSEC_LOG_CRIT = 2,
	EPSEC_LOG_ERR = 3,
	EPSEC_LOG_WARNING = 4,
	EPSEC_LOG_NOTICE = 5,
	EPSEC_LOG_INFO = 6,
	EPSEC_LOG_DEBUG = 7,
};

/* ABI of struct epsec_host.
 * 1.0  first version.
 * 1.1  conf_size. A plugin that calls it on a host that may be older
 *      checks host->struct_size covers it first.
 * 1.2  conf_strlist (the same check applies). */
#define EPSEC_HOST_ABI_MAJOR 1
#define EPSEC_HOST_ABI_MINOR 2

struct epsec_host {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;
	const char *program; /* "vsep", "epsec-mux", "epsec-sva" */

	/* Log one line; src names the plugin ("clamav"); no trailing newline. */
	void (*log)(int level, const char *src, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* Report a configuration error as "FILE:LINE: KEY: what"; returns -EINVAL
	 * so a plugin's open can `return host->conf_error(s, "...")`. */
	int (*conf_error)(const config_setting_t *setting, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));

	/* Refuse keys of `group` that are not in the NULL-terminated `allowed`
	 * list (reported through conf_error). NULL group is accepted. */
	int (*conf_check_keys)(const config_setting_t *group, const char *const *allowed);

	/* 1.1: a size as epsec's own files take it: an integer, or a string
	 * such as "100M" (K, M, G). 0 and *out, or -EINVAL when it is neither
	 * (not reported: the plugin says what it expected). */
	int (*conf_size)(const config_setting_t *setting, int64_t *out);

	/* 1.2: a string or a non-empty list of non-empty strings, such as
	 * `database = "/a";` or `rules = [ "/a", "/b" ];`. 0, and in *out a
	 * NULL-terminated array of *n copies the plugin owns: one malloc'd
	 * block, released by a single free(*out) (never free the strings).
	 * Every mistake is reported the way conf_error does (FILE:LINE: KEY:)
	 * "expected a string or a list of strings (WHAT)", "expected at least
	 * one string (WHAT)", or, at the entry at fault, "expected a string
	 * (WHAT)" / "expected a non-empty string (WHAT)"; WHAT is `what`, e.g.
	 * "rule files or directories" (NULL leaves it out). Then -EINVAL;
	 * -ENOMEM is not reported. `setting` must not be NULL. */
	int (*conf_strlist)(const config_setting_t *setting, const char *what, char ***out,
			    size_t *n);
};

#ifdef __cplusplus
}
#endif
#endif
