/* SPDX-License-Identifier: MIT */
/* Logging for every epsec program: one function with printf checking,
 * syslog severities, three destinations (the runbook's DEBUG_DEST). */
#ifndef EPSEC_LOG_H
#define EPSEC_LOG_H

#include <stdarg.h>
#include <epsec/host.h>

/* DEBUG_DEST values, as in the runbook. */
enum epsec_log_dest {
	EPSEC_DEST_SYSLOG = 1,
	EPSEC_DEST_HOST = 2,   /* LOG messages to the mux (falls back to syslog) */
	EPSEC_DEST_STDERR = 3,
};

/* Sends one formatted line elsewhere (DEBUG_DEST=2); returns 0 if taken. */
typedef int (*epsec_log_forward_fn)(int level, const char *src, const char *line);

void epsec_log_open(const char *program, enum epsec_log_dest dest, int level);
void epsec_log_set_level(int level);
int epsec_log_get_level(void);
void epsec_log_set_dest(enum epsec_log_dest dest);
enum epsec_log_dest epsec_log_get_dest(void);
/* The daemon serves: from now on errors go only where DEBUG_DEST says
 * (before, a syslog destination also gets them on stderr). */
void epsec_log_started(void);
void epsec_log_set_forward(epsec_log_forward_fn fn);
void epsec_log(int level, const char *src, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void epsec_vlog(int level, const char *src, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Each file defines EPSEC_LOG_SRC ("loader", "agent", ...) before use. */
#define EPSEC_ERR(...) epsec_log(EPSEC_LOG_ERR, EPSEC_LOG_SRC, __VA_ARGS__)
#define EPSEC_WARN(...) epsec_log(EPSEC_LOG_WARNING, EPSEC_LOG_SRC, __VA_ARGS__)
#define EPSEC_NOTICE(...) epsec_log(EPSEC_LOG_NOTICE, EPSEC_LOG_SRC, __VA_ARGS__)
#define EPSEC_INFO(...) epsec_log(EPSEC_LOG_INFO, EPSEC_LOG_SRC, __VA_ARGS__)
#define EPSEC_DBG(...) epsec_log(EPSEC_LOG_DEBUG, EPSEC_LOG_SRC, __VA_ARGS__)

#endif
