/* SPDX-License-Identifier: MIT */
/* libepsec: the partner SDK (EPSecLib). A scanner appliance connects to a
 * mux, receives file events from agents, reads file content through the
 * agent that holds the file, and answers verdicts.
 *
 * Threads: one session may be shared by any number of worker threads;
 * every function here is thread-safe unless it says otherwise. A session
 * runs one network thread of its own, which takes no process signals.
 *
 * Shape of an appliance (doc/libepsec.md has a complete one):
 *
 *   epsec_session_open(&cfg, &s);                  // main thread
 *   for (;;) {                                     // each worker thread
 *           int r = epsec_session_next(s, &ev, 500);
 *           if (r == -ETIMEDOUT)
 *                   continue;                      // (check a stop flag)
 *           if (r < 0)
 *                   break;                         // -ESHUTDOWN
 *           struct epsec_file *f = epsec_event_file(ev);
 *           ... f->pread(f, buf, len, off) ...
 *           epsec_event_verdict(ev, EPSEC_ACTION_ALLOW, NULL, NULL, true);
 *   }
 *   epsec_session_close(s);                        // after joining workers
 *
 * Every event handed out must be answered exactly once with
 * epsec_event_verdict, which also frees it. An event whose connection to
 * the mux has dropped is answered by the mux (it re-dispatches it); its
 * verdict just frees it.
 *
 * Plugins: libepsec.so carries its own transport plugin loader. The first
 * epsec_session_open initializes it (with that config's plugin_dir), the
 * last epsec_session_close releases it. (epsec-sva, built from the same
 * sources, initializes the loader itself for its engines and tells the
 * SDK so; a partner program has nothing to do.)
 *
 * Status: what the mux shows of an appliance comes from its HELLO (id,
 * engine names, signature generation), sent again on every reconnection;
 * epsec_session_connected and epsec_sdk_version are for its own status.
 *
 * Build: cc $(pkg-config --cflags --libs epsec). The build identity
 * "EPSEC_BUILD=<version> (<build>)" is embedded in libepsec.so, so
 * `strings libepsec.so | grep BUILD` tells which SDK an appliance ships. */
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

/* Everything is copied at open; the strings need not outlive the call. */
struct epsec_session_config {
	const char *mux_uri;   /* "tcp://127.0.0.1:48652", "unix:///run/epsec/sva.sock" */
	const char *id;        /* this appliance's name in the mux's status;
				* NULL or "" = "sva-<hostname>" */
	const char *engines;   /* comma-separated, reported in HELLO */
	uint64_t generation;   /* signature generation, travels in verdicts */
	const char *plugin_dir; /* where transport plugins live; NULL = default.
				 * $EPSEC_PLUGIN_PATH is searched first. Only the
				 * first session of a process sets it. */
};

/* Connect (and keep reconnecting) to the mux. Returns 0 or a negative errno:
 * -EINVAL (no config or not a URI), -ENOENT (no transport plugin for the
 * URI's scheme), -ENOMEM. Returns at once: the connection is made in the
 * background, HELLO/WELCOME first, and re-made after every loss with a
 * backoff from 100 ms up to 1 s; events flow only while connected.
 * Call from the main thread (transport plugins load here; libltdl is not
 * thread-safe) and after any fork(): the session's thread would not
 * survive one. */
int epsec_session_open(const struct epsec_session_config *cfg, struct epsec_session **out);
/* Wait up to timeout_ms (-1 forever, 0 just looks) for the next event.
 * 0 and *ev set, -ETIMEDOUT, or -ESHUTDOWN after epsec_session_close began.
 * Events still queued when their connection drops are never handed out.
 * Not to be called once epsec_session_close has returned. */
int epsec_session_next(struct epsec_session *s, struct epsec_event **ev, int timeout_ms);
/* Bump the signature generation (and the one in the HELLO of later
 * reconnects); agents drop cached verdicts of older ones: at once, since
 * the session tells the mux (GENERATION) and the mux tells every agent.
 * Thread-safe. A verdict
 * reports the generation current when its event was handed out by
 * epsec_session_next, so call this once the new signatures are in use:
 * an event scanned across the swap then reports the older generation,
 * never a newer one than its scan may have used. */
void epsec_session_set_generation(struct epsec_session *s, uint64_t generation);
/* The largest content file->content_fd copies from the agent (inline
 * bytes, then READs) into an anonymous memory file when the agent did not
 * pass its fd; larger files get -EFBIG and engines read them with pread.
 * 0 = never copy. Default 256 MiB. Thread-safe; applies to later calls. */
void epsec_session_set_stage_max(struct epsec_session *s, uint64_t bytes);
/* True while connected to a mux that welcomed us. */
bool epsec_session_connected(struct epsec_session *s);
/* Stops the network thread, fails pending reads (-ESHUTDOWN) and wakes
 * epsec_session_next callers (-ESHUTDOWN); verdicts already given are sent
 * first. Events not yet answered are answered by the mux's policy; threads
 * still holding one may call epsec_event_verdict (it returns -ESHUTDOWN
 * and frees the event): the session's memory lives until the last event
 * is freed. Not to be called concurrently with itself; NULL is a no-op. */
void epsec_session_close(struct epsec_session *s);

/* The file behind an event, with a pread that uses the inline bytes and
 * asks the agent (READ/DATA through the mux) for the rest. Valid until
 * the event is answered.
 *
 * file->pread(file, buf, len, off) fills as much of [off, off+len) as the
 * file has (clipped to file->size; 0 at or past the end), splitting the
 * rest into READs of at most 1 MiB, so engines need not loop. Errors:
 * the agent's errno (-EACCES...), -ETIMEDOUT (no DATA within 10 s),
 * -ECONNRESET (the connection to the mux dropped), -ESHUTDOWN (session
 * closing). file->deadline_ms is when the scan must have ended: the
 * agent's time budget for the event (EVENT.timeout_ms), counted from when
 * epsec_session_next handed it out, so time queued is not scan time; 0
 * when the agent set none. While an event is held, the session tells the
 * mux once a second that it is still being worked on: a scan is cut only
 * by its deadline, never for being long. Bytes read before an error are returned first; the next call
 * gets the error. Any number of threads may pread different events at
 * once; one event is read by one thread at a time.
 *
 * file->content_fd(file) gives an fd holding the whole content: the file
 * itself when the agent passed it, else a copy staged once (memfd) up to
 * the session's stage_max (-EFBIG above it), or the error that stopped
 * the copy. The same fd for every later call on this event; the event's
 * to close. */
struct epsec_file *epsec_event_file(struct epsec_event *ev);
/* Which agent sent it; "" while the protocol does not tell SVAs (v1). */
const char *epsec_event_agent(const struct epsec_event *ev);
/* Answer the event and free it. engine/signature may be NULL for allow;
 * cacheable lets the agent cache the verdict (false when an engine could
 * not decide). 0: queued for the mux. -ECONNRESET: its connection is gone
 * (the mux re-dispatches it); -ESHUTDOWN: the session is closing; -ENOMEM.
 * In all those cases the event is freed. -EINVAL (NULL event or an action
 * outside enum epsec_action): nothing happened, the event is still yours. */
int epsec_event_verdict(struct epsec_event *ev, enum epsec_action action,
			const char *engine, const char *signature, bool cacheable);

/* Answer that the event's file could not be scanned (an engine error, a
 * timeout, unreadable content) and free it: the agent applies its
 * on_error policy, never caches it, and reports it as an error, never as
 * clean. engine names the engine at fault (may be NULL), reason says why
 * ("scan timed out after 3 s"). Returns as epsec_event_verdict. */
int epsec_event_error(struct epsec_event *ev, const char *engine, const char *reason);

/* "0.1.0 (build)": the SDK's version, as sent in HELLO. */
const char *epsec_sdk_version(void);

#ifdef __cplusplus
}
#endif
#endif
