/* SPDX-License-Identifier: MIT */
/* Plugin loader: the only file that calls libltdl. It finds a plugin by
 * name on the search path, reads its descriptor and refuses it, with one
 * log line naming the file and both versions, when the ABI does not fit. */
#include "config.h"
#include "loader.h"

#include <errno.h>
#include <stddef.h>
#include <ltdl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define EPSEC_LOG_SRC "loader"

#ifndef PKGLIBDIR
#define PKGLIBDIR "/usr/local/lib/epsec"
#endif

/* Every handle this process opened; closed only by epsec_loader_exit,
 * since descriptors and code stay in use until then. */
struct module {
	struct module *next;
	lt_dlhandle handle;
	const struct epsec_transport_plugin *transport; /* cached by scheme */
};

static struct module *modules;
static char *search_path; /* colon-separated, for messages too */
static bool ready;

/* ------------------------------------------------------------ ABI rule */

enum abi_fit {
	ABI_OK,
	ABI_MAJOR,
	ABI_NEWER,
	ABI_SHORT,
};

static enum abi_fit abi_judge(uint32_t major, uint32_t minor, uint32_t size, uint32_t host_major,
			      uint32_t host_minor, size_t needed)
{
	if (major != host_major)
		return ABI_MAJOR;
	if (minor > host_minor)
		return ABI_NEWER;
	if (size < needed)
		return ABI_SHORT;
	return ABI_OK;
}

int epsec_abi_check(uint32_t major, uint32_t minor, uint32_t size, uint32_t host_major,
		    uint32_t host_minor, size_t needed)
{
	return abi_judge(major, minor, size, host_major, host_minor, needed) == ABI_OK ? 0 : -EPROTO;
}

/* The first three fields every descriptor starts with. */
struct abi_head {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;
};

/* Bytes the host reads of a descriptor claiming `minor`: a field added in
 * a minor version is read only from plugins that claim it. */
static size_t needed_size(const char *kind, uint32_t minor)
{
	if (!strcmp(kind, "verdict"))
		return sizeof(struct epsec_verdict_plugin);
	if (minor < 1)
		return offsetof(struct epsec_transport_plugin, send_fd);
	return sizeof(struct epsec_transport_plugin);
}

static int abi_accept(const char *file, const char *kind, const struct abi_head *d,
		      uint32_t host_major, uint32_t host_minor)
{
	size_t needed = needed_size(kind, d->abi_minor);

	switch (abi_judge(d->abi_major, d->abi_minor, d->struct_size, host_major, host_minor,
			  needed)) {
	case ABI_OK:
		return 0;
	case ABI_MAJOR:
		EPSEC_ERR("%s: %s plugin ABI %u.%u refused: this epsec speaks %u.%u "
			  "(major versions must match)",
			  file, kind, d->abi_major, d->abi_minor, host_major, host_minor);
		break;
	case ABI_NEWER:
		EPSEC_ERR("%s: %s plugin ABI %u.%u refused: newer than this epsec's %u.%u", file,
			  kind, d->abi_major, d->abi_minor, host_major, host_minor);
		break;
	case ABI_SHORT:
		EPSEC_ERR("%s: %s plugin ABI %u.%u refused: descriptor is %u bytes, ABI %u.%u "
			  "needs %zu",
			  file, kind, d->abi_major, d->abi_minor, d->struct_size, d->abi_major,
			  d->abi_minor, needed);
		break;
	}
	return -EPROTO;
}

/* ------------------------------------------------------------ set-up */

static int path_append(char **path, const char *dir, const char *sub)
{
	char *next;
	int n;

	if (!dir || !*dir)
		return 0;
	n = asprintf(&next, "%s%s%s%s%s", *path ? *path : "", *path ? ":" : "", dir,
		     sub ? "/" : "", sub ? sub : "");
	if (n < 0)
		return -ENOMEM;
	free(*path);
	*path = next;
	return 0;
}

static int build_search_path(const char *plugin_dir, char **out)
{
	const char *env = getenv(EPSEC_PLUGIN_PATH_ENV);
	char *path = NULL;
	int ret = 0;

	ret = path_append(&path, env, NULL);
	if (ret == 0)
		ret = path_append(&path, plugin_dir, "transports");
	if (ret == 0)
		ret = path_append(&path, plugin_dir, "plugins");
	if (ret == 0)
		ret = path_append(&path, plugin_dir, NULL);
	if (ret < 0) {
		free(path);
		return ret;
	}
	*out = path;
	return 0;
}

int epsec_loader_init(const char *plugin_dir)
{
	char *path;
	int ret;

	ret = build_search_path(plugin_dir ? plugin_dir : PKGLIBDIR, &path);
	if (ret < 0)
		return ret;
	if (!ready && lt_dlinit() != 0) {
		EPSEC_ERR("cannot initialise libltdl: %s", lt_dlerror());
		free(path);
		return -ENOEXEC;
	}
	ready = true;
	free(search_path);
	search_path = path;
	/* Names are resolved here (so messages name the file), but ltdl
	 * also gets the path for whatever it resolves by itself. */
	lt_dlsetsearchpath(search_path);
	return 0;
}

void epsec_loader_exit(void)
{
	while (modules) {
		struct module *m = modules;

		modules = m->next;
		lt_dlclose(m->handle);
		free(m);
	}
	if (ready)
		lt_dlexit();
	ready = false;
	free(search_path);
	search_path = NULL;
}

/* ------------------------------------------------------------ finding */

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "dir/name.la" wins over "dir/name.so" anywhere on the path, as in
 * lt_dlopenext. A name with a slash is a path (extension optional). */
static char *find_module(const char *name)
{
	static const char *const exts[] = { ".la", ".so", "" };
	char *file;

	for (size_t e = 0; e < sizeof(exts) / sizeof(exts[0]); e++) {
		if (strchr(name, '/')) {
			if (asprintf(&file, "%s%s", name, exts[e]) < 0)
				return NULL;
			if (is_file(file))
				return file;
			free(file);
			continue;
		}
		if (!exts[e][0])
			break;
		for (const char *d = search_path; d && *d;) {
			size_t len = strcspn(d, ":");

			if (asprintf(&file, "%.*s/%s%s", (int)len, d, name, exts[e]) < 0)
				return NULL;
			if (is_file(file))
				return file;
			free(file);
			d += len + (d[len] == ':');
		}
	}
	return NULL;
}

/* RTLD_LOCAL: every plugin exports the same symbol name. */
static lt_dlhandle open_module(const char *file)
{
	lt_dladvise advise;
	lt_dlhandle h = NULL;

	if (lt_dladvise_init(&advise) != 0)
		return NULL;
	if (lt_dladvise_local(&advise) == 0)
		h = lt_dlopenadvise(file, advise);
	lt_dladvise_destroy(&advise);
	return h;
}

static int remember(lt_dlhandle h, const struct epsec_transport_plugin *transport)
{
	struct module *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->handle = h;
	m->transport = transport;
	m->next = modules;
	modules = m;
	return 0;
}

/* Open the module `name` of `kind` and find its descriptor symbol. On
 * success *file is the malloc'd path it came from. */
static int load(const char *name, const char *kind, const char *symbol, lt_dlhandle *hp,
		const void **desc, char **file)
{
	lt_dlhandle h;

	if (!ready && epsec_loader_init(NULL) < 0)
		return -ENOEXEC;
	*file = find_module(name);
	if (!*file) {
		EPSEC_ERR("%s plugin \"%s\" not found (searched %s)", kind, name,
			  strchr(name, '/') ? name : search_path);
		return -ENOENT;
	}
	h = open_module(*file);
	if (!h) {
		EPSEC_ERR("%s: cannot load: %s", *file, lt_dlerror());
		return -ENOEXEC;
	}
	*desc = lt_dlsym(h, symbol);
	if (!*desc) {
		EPSEC_ERR("%s: not an epsec %s plugin (no symbol %s)", *file, kind, symbol);
		lt_dlclose(h);
		return -ENOEXEC;
	}
	*hp = h;
	return 0;
}

/* ------------------------------------------------------------ verdict */

static int verdict_usable(const char *file, const struct epsec_verdict_plugin *p)
{
	const char *missing = !p->name ? "name" : !p->open ? "open" : !p->scan ? "scan"
			    : !p->close ? "close" : NULL;

	if (abi_accept(file, "verdict", (const struct abi_head *)p, EPSEC_VERDICT_ABI_MAJOR,
		       EPSEC_VERDICT_ABI_MINOR) < 0)
		return -EPROTO;
	if (missing) {
		EPSEC_ERR("%s: verdict plugin refused: descriptor has no %s", file, missing);
		return -EPROTO;
	}
	return 0;
}

int epsec_loader_verdict(const char *name, const struct epsec_verdict_plugin **out)
{
	const void *desc;
	lt_dlhandle h;
	char *file = NULL;
	int ret;

	ret = load(name, "verdict", EPSEC_VERDICT_SYMBOL, &h, &desc, &file);
	if (ret < 0)
		goto out;
	ret = verdict_usable(file, desc);
	if (ret == 0)
		ret = remember(h, NULL);
	if (ret < 0) {
		lt_dlclose(h);
		goto out;
	}
	EPSEC_DBG("%s: verdict plugin %s loaded", file, ((const struct epsec_verdict_plugin *)desc)->name);
	*out = desc;
out:
	free(file);
	return ret;
}

/* ------------------------------------------------------------ transport */

static int transport_usable(const char *file, const char *scheme,
			    const struct epsec_transport_plugin *p)
{
	const char *missing = !p->scheme ? "scheme" : !p->listen ? "listen"
			    : !p->connect ? "connect" : !p->accept ? "accept"
			    : !p->send ? "send" : !p->flush ? "flush"
			    : !p->want_write ? "want_write" : !p->recv ? "recv"
			    : !p->fd ? "fd" : !p->peer ? "peer" : !p->close ? "close" : NULL;

	if (abi_accept(file, "transport", (const struct abi_head *)p, EPSEC_TRANSPORT_ABI_MAJOR,
		       EPSEC_TRANSPORT_ABI_MINOR) < 0)
		return -EPROTO;
	if (missing) {
		EPSEC_ERR("%s: transport plugin refused: descriptor has no %s", file, missing);
		return -EPROTO;
	}
	if (strcmp(p->scheme, scheme) != 0) {
		EPSEC_ERR("%s: transport plugin refused: it serves %s://, not %s://", file,
			  p->scheme, scheme);
		return -EPROTO;
	}
	return 0;
}

static bool scheme_ok(const char *scheme)
{
	if (!(scheme[0] >= 'a' && scheme[0] <= 'z'))
		return false;
	return strspn(scheme, "abcdefghijklmnopqrstuvwxyz0123456789+.-") == strlen(scheme);
}

int epsec_loader_transport(const char *scheme, const struct epsec_transport_plugin **out)
{
	const void *desc;
	lt_dlhandle h;
	char *file = NULL;
	int ret;

	for (struct module *m = modules; m; m = m->next) {
		if (m->transport && !strcmp(m->transport->scheme, scheme)) {
			*out = m->transport;
			return 0;
		}
	}
	if (!scheme_ok(scheme)) {
		EPSEC_ERR("\"%s\" is not a URI scheme", scheme);
		return -EINVAL;
	}
	ret = load(scheme, "transport", EPSEC_TRANSPORT_SYMBOL, &h, &desc, &file);
	if (ret < 0)
		goto out;
	ret = transport_usable(file, scheme, desc);
	if (ret == 0)
		ret = remember(h, desc);
	if (ret < 0) {
		lt_dlclose(h);
		goto out;
	}
	EPSEC_DBG("%s: transport %s:// loaded", file, scheme);
	*out = desc;
out:
	free(file);
	return ret;
}
