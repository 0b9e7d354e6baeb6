/* SPDX-License-Identifier: MIT */
/* The wire protocol: libcore/epsec.proto compiled by protobuf-c, wrapped
 * so the rest of epsec speaks in envelopes and roles. Decoding checks the
 * semantics, not just the bytes: a message that parses but makes no sense
 * (no body, missing ids, wrong role) is refused here. */
#ifndef EPSEC_MSG_H
#define EPSEC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "epsec.pb-c.h"

typedef Epsec__Envelope epsec_msg;

/* Largest READ length (and DATA payload) a peer may ask for or send. */
#define EPSEC_READ_MAX (1024u * 1024u)
/* Longest names a peer may give: HELLO id, build, engine names; a file's
 * path and executable; one LOG line. Longer is malformed. */
#define EPSEC_ID_MAX 255u
#define EPSEC_PATH_MAX 4096u
#define EPSEC_LOG_TEXT_MAX 16384u /* a detection record names a path */

/* HELLO/WELCOME capability: this peer passes and takes file descriptors
 * with EVENTs (Event.local_fd) on links that can carry them. */
#define EPSEC_CAP_FD "fd"
/* HELLO/WELCOME capability: this peer takes GENERATION messages. */
#define EPSEC_CAP_GENERATION "generation"
/* WELCOME capability: this mux takes WORKING messages and times out only
 * the events an SVA has gone silent about. */
#define EPSEC_CAP_WORKING "working"

enum epsec_role {
	EPSEC_ROLE_AGENT = EPSEC__ROLE__ROLE_AGENT,
	EPSEC_ROLE_MUX = EPSEC__ROLE__ROLE_MUX,
	EPSEC_ROLE_SVA = EPSEC__ROLE__ROLE_SVA,
	EPSEC_ROLE_CTL = EPSEC__ROLE__ROLE_CTL,
};

/* Decode one message received from a peer of `sender_role`. 0 and *out
 * (free with epsec_msg_free), -EBADMSG unparseable or semantically
 * invalid, -EPERM a type that role may not send. */
int epsec_msg_decode(const void *buf, size_t len, enum epsec_role sender_role, epsec_msg **out);
void epsec_msg_free(epsec_msg *m);
/* Why the last failed epsec_msg_decode of this thread refused the message
 * ("READ length 0 not in 1..1048576"), for the one log line of the caller. */
const char *epsec_msg_last_error(void);
/* Pack into a malloc'd buffer. 0 or -ENOMEM / -EMSGSIZE. */
int epsec_msg_encode(const epsec_msg *m, void **buf, size_t *len);
/* May `role` send a message with this body? */
bool epsec_msg_allowed(enum epsec_role role, Epsec__Envelope__BodyCase body);
const char *epsec_msg_name(Epsec__Envelope__BodyCase body);
const char *epsec_role_name(enum epsec_role role);
/* Whether `cap` is among the n capabilities. */
bool epsec_caps_has(char *const *caps, size_t n, const char *cap);
/* Whether an fd travels with this message (an EVENT with local_fd). */
bool epsec_msg_carries_fd(const epsec_msg *m);

#endif
