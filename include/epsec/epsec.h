/* libepsec: the partner SDK (EPSecLib). A scanner appliance connects to a
 * mux, receives file events from agents, reads file content through the
 * agent that holds the file, and answers verdicts.
 *
 * Threads: one session may be shared by any number of worker threads;
 * every function here is thread-safe unless it says otherwise. A session
 * runs one network thread of its own. */
#ifndef EPSEC_EPSEC_H
#define EPSEC_EPSEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <epsec/version.h>
#include <epsec/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

enum epsec_action {
	EPSEC_ACTION_ALLOW = 1,
	EPSEC_ACTION_DENY = 2,
	EPSEC_ACTION_DELETE = 3,
	EPSEC_ACTION_QUARANTINE = 4,
};

struct epsec_session;
struct epsec_event;

struct epsec_session_config {
	const char *mux_uri;   /* "tcp://127.0.0.1:48652", "unix:///run/epsec/sva.sock" */
	const char *id;        /* this appliance's name in the mux's status */
	const char *engines;   /* comma-separated, reported in HELLO */
	uint64_t generation;   /* signature generation, travels in verdicts */
	const char *plugin_dir; /* where transport plugins live; NULL = default */
};

/* Connect (and keep reconnecting) to the mux. Returns 0 or a negative errno. */
int epsec_session_open(const struct epsec_session_config *cfg, struct epsec_session **out);
/* Wait up to timeout_ms (-1 forever) for the next event. 0 and *ev set,
 * -ETIMEDOUT, or -ESHUTDOWN after epsec_session_close began. */
int epsec_session_next(struct epsec_session *s, struct epsec_event **ev, int timeout_ms);
/* Bump the signature generation reported in later verdicts. */
void epsec_session_set_generation(struct epsec_session *s, uint64_t generation);
/* True while connected to a mux that welcomed us. */
bool epsec_session_connected(struct epsec_session *s);
/* Stops the network thread, fails pending reads; events not yet answered
 * are answered by the mux's policy. Not to be called concurrently with
 * itself. */
void epsec_session_close(struct epsec_session *s);

/* The file behind an event, with a pread that uses the inline bytes and
 * asks the agent (READ/DATA through the mux) for the rest. Valid until
 * the event is answered. */
struct epsec_file *epsec_event_file(struct epsec_event *ev);
/* Which agent sent it. */
const char *epsec_event_agent(const struct epsec_event *ev);
/* Answer the event and free it. engine/signature may be NULL for allow. */
int epsec_event_verdict(struct epsec_event *ev, enum epsec_action action,
			const char *engine, const char *signature, bool cacheable);

/* "0.1.0 (build)" */
const char *epsec_sdk_version(void);

#ifdef __cplusplus
}
#endif
#endif
