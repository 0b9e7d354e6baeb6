/* SPDX-License-Identifier: MIT */
/* ZeroMQ CURVE for tcp.la: key files and options, and the ZAP handler that
 * decides which client keys a listener lets in. Without a ZAP handler a
 * CURVE server accepts any client that knows its public key, so a listener
 * with curve_secret_key always has curve_allowed_keys and a ZAP domain.
 *
 * Key files are czmq's zcert layout (what `epsecctl keygen` writes): lines
 *     public-key = "<40 Z85 characters>"
 *     secret-key = "<40 Z85 characters>"      (NAME.key only, mode 0600)
 * anywhere in the file, leading blanks allowed, lines starting with # and
 * everything else ignored. */
#ifndef EPSEC_TCP_CURVE_H
#define EPSEC_TCP_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <epsec/host.h>

#define CURVE_Z85 40

struct curve_allowed {
	size_t n, cap;
	uint8_t (*keys)[32];
	char **names;        /* "agent1" for agents.d/agent1.pub */
};

/* Listener: curve_secret_key (key pair file) and curve_allowed_keys (a
 * directory of .pub files, a .pub file, a Z85 key, or a list of those). */
struct curve_server {
	bool on;
	char secret[CURVE_Z85 + 1];
	struct curve_allowed allowed;
};

/* Connecting side: curve_key (its key pair file) and curve_server_key (the
 * server's .pub file or Z85 public key). */
struct curve_client {
	bool on;
	char public[CURVE_Z85 + 1];
	char secret[CURVE_Z85 + 1];
	char server[CURVE_Z85 + 1];
};

/* Validate and load (errors "FILE:LINE: KEY: ..." through the host). The
 * listener's options group takes only the server keys, the connecting
 * side's only the client keys. Free with the matching _free. */
int curve_server_opts(const struct epsec_host *host, const config_setting_t *opts,
		      struct curve_server *out);
void curve_server_free(struct curve_server *s);
int curve_client_opts(const struct epsec_host *host, const config_setting_t *opts,
		      struct curve_client *out);
void curve_client_free(struct curve_client *c);

/* Pure parsers, for tests: the Z85 `name` of a key file's text (0, or
 * -EINVAL when absent or malformed), and whether `z85` is a valid key. */
int curve_key_field(const char *text, const char *name, char out[CURVE_Z85 + 1]);
bool curve_z85_key(const char *z85, uint8_t out[32]);

/* Refusals a stranger can cause at will are logged at most 10 per 10 s
 * (per listener); pass returns false for one not to log, and else writes
 * into `more` how many were left out before it ("" when none). */
struct curve_ratelimit {
	uint64_t window;
	unsigned logged, unlogged;
};
bool curve_log_pass(struct curve_ratelimit *rl, char *more, size_t len);

/* Register a listener's allowed keys (taken over, even on failure) under a
 * new ZAP domain written to `domain`; the first call binds the handler to
 * inproc://zeromq.zap.01 in `ctx` and starts its thread, which must happen
 * before the listener binds. Refused clients are logged through `host`,
 * naming `where`. 0 or -errno. */
int curve_zap_add(void *ctx, const struct epsec_host *host, const char *where,
		  struct curve_allowed *allowed, char domain[32]);
void curve_zap_remove(const char *domain);

#endif
