/* SPDX-License-Identifier: MIT */
/* Plugin loader: the only file that calls libltdl. Plugins are loaded from
 * the main thread at start-up only (ltdl keeps global state). */
#ifndef EPSEC_LOADER_H
#define EPSEC_LOADER_H

#include <epsec/plugin.h>
#include <epsec/transport.h>

/* Environment variable: colon-separated directories searched before
 * plugin_dir; the test suite points it at the build tree. */
#define EPSEC_PLUGIN_PATH_ENV "EPSEC_PLUGIN_PATH"

/* `plugin_dir` from config (NULL: the installed default). Directories
 * searched: $EPSEC_PLUGIN_PATH, then plugin_dir/transports and
 * plugin_dir/plugins, then plugin_dir itself. */
int epsec_loader_init(const char *plugin_dir);
void epsec_loader_exit(void);

/* Load "name" (file name without extension, or a path to a .la/.so) and
 * check its descriptor. -ENOENT not found, -ENOEXEC no descriptor symbol,
 * -EPROTO ABI refused; each failure logged once, here, naming the file and
 * both versions. */
int epsec_loader_verdict(const char *name, const struct epsec_verdict_plugin **out);
/* Transport for a URI scheme ("unix" loads unix.la). Cached per scheme. */
int epsec_loader_transport(const char *scheme, const struct epsec_transport_plugin **out);

/* Pure ABI rule, exposed for unit tests: 0 when a plugin declaring
 * (major, minor, size) is acceptable to a host at (host_major, host_minor)
 * that needs `needed` bytes for that minor; -EPROTO otherwise. */
int epsec_abi_check(uint32_t major, uint32_t minor, uint32_t size,
		    uint32_t host_major, uint32_t host_minor, size_t needed);

#endif
