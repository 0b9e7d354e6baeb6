/* SPDX-License-Identifier: MIT */
/* What every part of vsep shares: its settings (vsep.conf), the shape of
 * one fanotify event while the agent owns it, how events end, and the
 * counters `epsecctl status` shows. */
#ifndef VSEP_H
#define VSEP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "conf.h"
#include "daemon.h"

/* on_timeout / on_disconnect: the index into the schema's choice list. */
enum vsep_policy {
	VSEP_POLICY_ALLOW = 0,
	VSEP_POLICY_DENY = 1,
};

struct vsep_settings {
	struct epsec_daemon_settings common; /* DEBUG_*, id, control, plugin_dir */
	const char *mux;
	struct epsec_strlist protect;
	struct epsec_strlist exclude_paths;
	struct epsec_intlist exclude_uids;   /* processes of these uids: allowed unscanned */
	struct epsec_strlist exclude_exes;   /* executables, by resolved path */
	int64_t max_file_size;               /* larger files: allowed unscanned; 0 = no limit */
	int scan_timeout_ms;
	int on_timeout;    /* enum vsep_policy */
	int on_disconnect; /* enum vsep_policy */
	int on_overload;   /* enum vsep_policy: queue or held table full */
	int on_error;      /* enum vsep_policy: the engines could not decide */
	int scan_max_ms;   /* upper bound for scans nobody waits on */
	const char *state_dir; /* what survives a restart ("" = nothing) */
	int unscanned_max; /* files remembered as let pass unscanned */
	int inline_bytes;
	int workers;
	int queue_size;
	int max_held;      /* events held at once, each with an fd */
	int cache_size;    /* verdict cache entries; 0 = off */
	bool ignore_marks; /* tell the kernel about clean files (fanotify ignore marks) */
	int ignore_marks_max;
	const char *quarantine_dir;
};

enum vsep_kind {
	VSEP_KIND_OPEN,
	VSEP_KIND_EXEC,
	VSEP_KIND_CLOSE_WRITE,
	VSEP_KIND_SWEEP, /* a file the agent opened itself (new directory sweep):
			  * scanned as after a write, no answer owed */
	VSEP_KIND_RESCAN, /* the same, for a file let pass unscanned earlier
			   * (not counted as an event: it is the same one) */
};

/* One event from the kernel. `fd` is ours to close; for open/exec the
 * opener waits in the kernel until we write exactly one answer. */
struct vsep_event {
	int fd;
	pid_t pid;
	enum vsep_kind kind;
};

static inline bool vsep_event_is_perm(const struct vsep_event *ev)
{
	return ev->kind == VSEP_KIND_OPEN || ev->kind == VSEP_KIND_EXEC;
}

/* A file vsep opened itself: no opener to answer or exclude. */
static inline bool vsep_event_is_own(const struct vsep_event *ev)
{
	return ev->kind == VSEP_KIND_SWEEP || ev->kind == VSEP_KIND_RESCAN;
}

/* What a verdict asks for (the wire's Action, without its NONE). */
enum vsep_action {
	VSEP_ACT_ALLOW,
	VSEP_ACT_DENY,
	VSEP_ACT_DELETE,
	VSEP_ACT_QUARANTINE,
};

/* Why an event ended; each reason but VERDICT/SHUTDOWN/IRREGULAR is a
 * counter (SELF counts as excluded). */
enum vsep_why {
	VSEP_WHY_VERDICT,
	VSEP_WHY_SELF,       /* our own pid */
	VSEP_WHY_EXCLUDED,   /* exclude_paths, exclude_uids, exclude_exes */
	VSEP_WHY_TIMEOUT,    /* scan_timeout_ms passed, or the mux timed it out */
	VSEP_WHY_DISCONNECT, /* no mux, or no SVA behind it */
	VSEP_WHY_OVERLOAD,   /* queue or held table full, mux not reading */
	VSEP_WHY_ERROR,      /* internal error */
	VSEP_WHY_SHUTDOWN,
	VSEP_WHY_CACHE,      /* the verdict cache answered */
	VSEP_WHY_TOO_BIG,    /* over max_file_size */
	VSEP_WHY_IRREGULAR,  /* not a regular file: nothing to scan */
	VSEP_WHY_EMPTY,      /* an empty regular file: nothing to scan */
	VSEP_WHY_ENGINE_ERROR, /* the engines could not decide (on_error), or a
				* scan nobody waits on passed scan_max_ms */
};

/* allowed/denied count every permission answer whatever its reason, and
 * close_write verdicts (deny or quarantine count as denied). */
struct vsep_counters {
	atomic_ulong events;
	atomic_ulong cache_hits;
	atomic_ulong allowed;
	atomic_ulong denied;
	atomic_ulong deleted;
	atomic_ulong timeouts;
	atomic_ulong disconnected;
	atomic_ulong errors;
	atomic_ulong overload;
	atomic_ulong excluded;     /* exclude_paths/uids/exes, our own pid */
	atomic_ulong too_big;      /* over max_file_size */
	atomic_ulong cache_misses;
	atomic_ulong ignore_marks; /* ignore marks placed */
	atomic_ulong quarantined;
	atomic_ulong empty;        /* empty files: allowed, nothing to scan */
	atomic_ulong swept;        /* files found in new directories and scanned */
	atomic_ulong engine_errors; /* verdicts that said the engines could not decide */
	atomic_ulong rescanned;    /* files let pass unscanned, scanned since */
	atomic_ulong unscanned_dropped; /* not remembered: unscanned_max reached */
	atomic_ulong unscanned_given_up; /* engine errors on every try */
};

extern struct vsep_counters vsep_stats;

static inline bool vsep_policy_allows(int policy)
{
	return policy == VSEP_POLICY_ALLOW;
}

/* The one rule from why an event ended without a verdict to its answer:
 * each way of failing has its own policy; the rest (internal errors,
 * shutdown) fail like a lost scanner. */
static inline bool vsep_why_allows(const struct vsep_settings *s, enum vsep_why why)
{
	switch (why) {
	case VSEP_WHY_TIMEOUT:
		return vsep_policy_allows(s->on_timeout);
	case VSEP_WHY_OVERLOAD:
		return vsep_policy_allows(s->on_overload);
	case VSEP_WHY_ENGINE_ERROR:
		return vsep_policy_allows(s->on_error);
	default:
		return vsep_policy_allows(s->on_disconnect);
	}
}

#endif
