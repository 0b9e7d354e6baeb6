/* SPDX-License-Identifier: MIT */
/* Transport options in configuration files: next to any URI setting X (such
 * as the mux's `agents`, the agent's `mux`), an optional group X_options
 * holds one group per scheme, handed to the transport of each of X's URIs
 * with that scheme:
 *     agents = [ "unix:///run/epsec/mux.sock", "tcp://0.0.0.0:48651" ];
 *     agents_options = { unix = { allow_uids = [ 0 ]; };
 *                        tcp = { curve_secret_key = "/etc/epsec/mux.key"; ... }; };
 * conf.c checks and records them while it loads a file; the link layer
 * looks them up for links opened without explicit options. The transport
 * itself validates what is inside (unknown keys are errors there). */
#ifndef EPSEC_TOPTS_H
#define EPSEC_TOPTS_H

#include <stdbool.h>
#include <libconfig.h>
#include "conf.h"

/* Is `name` the X_options of a URI or URI-list key X of `schema`? */
bool epsec_topts_companion(const struct epsec_conf_key *schema, const char *name);
/* Check the X_options groups of `group` (each member a group named after
 * the scheme of one of X's URIs; errors "FILE:LINE: KEY: ...") and record
 * them. 0 or -EINVAL. */
int epsec_topts_apply(const config_setting_t *group, const struct epsec_conf_key *schema);
/* Secure by default: every tcp:// URI of the schema's URI keys in `group`
 * needs CURVE keys (curve_secret_key or curve_key) or an explicit
 * insecure_plaintext = true in its X_options tcp group; otherwise an
 * error at the URI's FILE:LINE. The daemons call it on their files. */
int epsec_topts_check_auth(const config_setting_t *group, const struct epsec_conf_key *schema);
/* Drop what was recorded from `cfg` (before it is destroyed). */
void epsec_topts_forget(const config_t *cfg);
/* The options group for `uri` ("tcp://..."), or NULL. Thread-safe. */
const config_setting_t *epsec_topts_find(const char *uri);

#endif
