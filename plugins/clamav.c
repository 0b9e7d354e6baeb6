/* SPDX-License-Identifier: MIT */
/* The ClamAV engine: libclamav scanning content it reads through
 * epsec_file->pread (cl_fmap_open_handle), so a remote file is scanned in
 * place, never copied whole first. Reload compiles a new engine beside the
 * one in use and swaps it; scans hold a reference, so none is disturbed. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <clamav.h>
#include <clamav-version.h>
#include <epsec/plugin.h>

#define SRC "clamav"
/* libclamav clamps larger values to this (it cannot scan 2 GiB files). */
#define CLAM_FILESIZE_MAX 2147483645LL

/* Engine limits an operator may set: key, libclamav field, whether "100M"
 * strings are accepted, and the range libclamav can honour. */
struct clam_limit {
	const char *key;
	enum cl_engine_field field;
	bool size;
	long long min, max;
};

static const struct clam_limit clam_limits[] = {
	{ "max_file_size", CL_ENGINE_MAX_FILESIZE, true, 0, CLAM_FILESIZE_MAX },
	{ "max_scan_size", CL_ENGINE_MAX_SCANSIZE, true, 0, LLONG_MAX },
	{ "max_recursion", CL_ENGINE_MAX_RECURSION, false, 1, INT_MAX },
	{ "max_files", CL_ENGINE_MAX_FILES, false, 0, INT_MAX },
};
#define N_LIMITS (sizeof(clam_limits) / sizeof(clam_limits[0]))

struct clam {
	const struct epsec_host *host;
	char **db; /* database files or directories: one block, from host->conf_strlist */
	size_t n_db;
	long long limit[N_LIMITS];
	bool limit_set[N_LIMITS];
	struct cl_scan_options opts;

	pthread_mutex_t reload_lock; /* one reload at a time */
	pthread_mutex_t lock;        /* guards the fields below */
	struct cl_engine *engine;    /* holds one reference of its own */
	unsigned sigs;
	time_t loaded;
};

/* One scan: what the pread and virus-found callbacks share. */
struct clam_scan {
	struct epsec_file *file;
	int read_errno;
	bool truncated; /* the file ended before its size */
	char virname[EPSEC_SIGNATURE_MAX];
};

/* libclamav's messages are process-wide; they go to the first host seen. */
static const struct epsec_host *clam_log_host;
static pthread_once_t clam_once = PTHREAD_ONCE_INIT;
static cl_error_t clam_init_result;

/* ---------------------------------------------------------------- options */

static bool is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

static int parse_limit(struct clam *c, const config_setting_t *s, size_t i)
{
	const struct clam_limit *l = &clam_limits[i];
	int64_t v;

	if (l->size && config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (c->host->conf_size(s, &v) < 0)
			return c->host->conf_error(s, "expected a size such as 100M or 1G, got \"%s\"",
						   config_setting_get_string(s));
	} else if (is_int(s)) {
		v = config_setting_get_int64(s);
	} else {
		return c->host->conf_error(s, "expected %s", l->size ? "a size such as 100M"
								    : "an integer");
	}
	if (v < l->min || v > l->max)
		return c->host->conf_error(s, "expected %lld..%lld, got %lld", l->min, l->max,
					   (long long)v);
	c->limit[i] = v;
	c->limit_set[i] = true;
	return 0;
}

/* database = "dir or file"; or a list of them. */
static int parse_database(struct clam *c, const config_setting_t *cfg)
{
	const config_setting_t *s = cfg ? config_setting_get_member(cfg, "database") : NULL;

	if (!s)
		return c->host->conf_error(cfg, "clamav needs options { database = \"DIR or FILE\"; }");
	return c->host->conf_strlist(s, "database files or directories", &c->db, &c->n_db);
}

static int parse_options(struct clam *c, const config_setting_t *cfg)
{
	static const char *const keys[] = { "database", "max_file_size", "max_scan_size",
					    "max_recursion", "max_files",
					    "heuristic_exceeds_max", NULL };
	const config_setting_t *s;
	int r, ret;

	r = c->host->conf_check_keys(cfg, keys);
	if (r < 0)
		return r;
	ret = parse_database(c, cfg);
	for (size_t i = 0; cfg && i < N_LIMITS; i++) {
		s = config_setting_get_member(cfg, clam_limits[i].key);
		if (s && (r = parse_limit(c, s, i)) < 0 && ret == 0)
			ret = r;
	}
	s = cfg ? config_setting_get_member(cfg, "heuristic_exceeds_max") : NULL;
	if (s && config_setting_type(s) != CONFIG_TYPE_BOOL) {
		r = c->host->conf_error(s, "expected true or false");
		ret = ret ? ret : r;
	}
	/* clamscan's defaults: every parser, heuristic alerts on. */
	c->opts.parse = ~0u;
	c->opts.general = CL_SCAN_GENERAL_HEURISTICS;
	if (s && config_setting_type(s) == CONFIG_TYPE_BOOL && config_setting_get_bool(s))
		c->opts.heuristic |= CL_SCAN_HEURISTIC_EXCEEDS_MAX;
	return ret;
}

/* ---------------------------------------------------------------- engines */

/* Which database file cl_load failed on: libclamav names it only in its
 * messages ("Can't load FILE: why", after "Problem parsing database at
 * line N"), and cl_load returns just the directory's error. */
struct clam_load {
	char file[PATH_MAX];
	int line;
};

static _Thread_local struct clam_load *clam_loading;

static void note_load_msg(struct clam_load *ld, const char *msg)
{
	const char *p = strstr(msg, "Can't load "), *end;
	int line;

	if (sscanf(msg, "Problem parsing database at line %d", &line) == 1)
		ld->line = line;
	if (!p || ld->file[0])
		return;
	p += strlen("Can't load ");
	end = strstr(p, ": ");
	if (end && (size_t)(end - p) < sizeof(ld->file))
		snprintf(ld->file, sizeof(ld->file), "%.*s", (int)(end - p), p);
}

static void clam_msg(enum cl_msg severity, const char *fullmsg, const char *msg, void *ctx)
{
	int level = severity == CL_MSG_ERROR ? EPSEC_LOG_ERR
		  : severity == CL_MSG_WARN ? EPSEC_LOG_WARNING : EPSEC_LOG_DEBUG;
	size_t n = strlen(msg);

	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	if (clam_loading) {
		/* Loading: our own line names the file and is the error (the
		 * one a reload reply quotes); libclamav's steps are detail. */
		note_load_msg(clam_loading, msg);
		if (level == EPSEC_LOG_ERR)
			level = EPSEC_LOG_WARNING;
	}
	if (clam_log_host)
		clam_log_host->log(level, SRC, "libclamav: %.*s", (int)n, msg);
}

static void clam_init_once(void)
{
	cl_set_clcb_msg(clam_msg);
	clam_init_result = cl_init(CL_INIT_DEFAULT);
}

/* The name libclamav found, whatever kind of alert it was: the virname
 * out-parameter stays NULL for heuristic limit alerts. */
static void clam_found(int fd, const char *virname, void *ctx)
{
	struct clam_scan *s = ctx;

	if (s && virname && !s->virname[0])
		snprintf(s->virname, sizeof(s->virname), "%s", virname);
}

static int set_limits(struct clam *c, struct cl_engine *e, char *err, size_t len)
{
	cl_error_t r;

	for (size_t i = 0; i < N_LIMITS; i++) {
		if (!c->limit_set[i])
			continue;
		r = cl_engine_set_num(e, clam_limits[i].field, c->limit[i]);
		if (r != CL_SUCCESS) {
			snprintf(err, len, "%s: %s", clam_limits[i].key, cl_strerror(r));
			return -EINVAL;
		}
	}
	return 0;
}

static cl_error_t load_one(const char *path, struct cl_engine *e, unsigned *sigs,
			   struct clam_load *ld)
{
	cl_error_t r;

	memset(ld, 0, sizeof(*ld));
	clam_loading = ld;
	r = cl_load(path, e, sigs, CL_DB_STDOPT);
	clam_loading = NULL;
	return r;
}

static int load_all(struct clam *c, struct cl_engine *e, unsigned *sigs, char *err, size_t len)
{
	struct clam_load ld;
	struct stat st;
	cl_error_t r;

	*sigs = 0;
	for (size_t i = 0; i < c->n_db; i++) {
		if (stat(c->db[i], &st) < 0) {
			snprintf(err, len, "cannot load %s: %s", c->db[i], strerror(errno));
			return -ENOENT;
		}
		r = load_one(c->db[i], e, sigs, &ld);
		if (r != CL_SUCCESS && ld.file[0] && ld.line)
			snprintf(err, len, "cannot load %s:%d: %s", ld.file, ld.line, cl_strerror(r));
		else if (r != CL_SUCCESS && ld.file[0])
			snprintf(err, len, "cannot load %s: %s", ld.file, cl_strerror(r));
		else if (r != CL_SUCCESS)
			snprintf(err, len, "cannot load %s: %s%s", c->db[i], cl_strerror(r),
				 S_ISDIR(st.st_mode) && r == CL_EOPEN ?
				 " (no database files in the directory?)" : "");
		if (r != CL_SUCCESS)
			return -EINVAL;
	}
	return 0;
}

/* A compiled engine from the configured databases. `from` (may be NULL)
 * lends its settings, so a reload keeps everything the old engine had. */
static int engine_build(struct clam *c, const struct cl_engine *from, struct cl_engine **out,
			unsigned *sigs, char *err, size_t len)
{
	struct cl_engine *e = cl_engine_new();
	struct cl_settings *set = NULL;
	cl_error_t cr;
	int r = -ENOMEM;

	if (!e)
		goto fail;
	if (from && (!(set = cl_engine_settings_copy(from)) ||
		     cl_engine_settings_apply(e, set) != CL_SUCCESS))
		goto fail;
	r = from ? 0 : set_limits(c, e, err, len);
	if (r == 0)
		r = load_all(c, e, sigs, err, len);
	if (r < 0)
		goto fail;
	cl_engine_set_clcb_virus_found(e, clam_found);
	cr = cl_engine_compile(e);
	if (cr != CL_SUCCESS) {
		snprintf(err, len, "cannot compile %s%s: %s", c->db[0], c->n_db > 1 ? " and others" : "",
			 cl_strerror(cr));
		r = -EINVAL;
		goto fail;
	}
	cl_engine_settings_free(set);
	*out = e;
	return 0;
fail:
	if (r == -ENOMEM)
		snprintf(err, len, "out of memory building the engine");
	if (set)
		cl_engine_settings_free(set);
	if (e)
		cl_engine_free(e);
	return r;
}

/* The engine in use, with a reference the caller drops (engine_put). */
static struct cl_engine *engine_get(struct clam *c)
{
	struct cl_engine *e;

	pthread_mutex_lock(&c->lock);
	e = c->engine;
	cl_engine_addref(e);
	pthread_mutex_unlock(&c->lock);
	return e;
}

static void engine_put(struct cl_engine *e)
{
	cl_engine_free(e);
}

/* Installs `e` (taking its reference); the old one goes when its last
 * scan ends. */
static void engine_swap(struct clam *c, struct cl_engine *e, unsigned sigs)
{
	struct cl_engine *old;

	pthread_mutex_lock(&c->lock);
	old = c->engine;
	c->engine = e;
	c->sigs = sigs;
	c->loaded = time(NULL);
	pthread_mutex_unlock(&c->lock);
	if (old)
		engine_put(old);
}

/* ---------------------------------------------------------------- ops */

static void clam_close(void *state)
{
	struct clam *c = state;

	if (!c)
		return;
	if (c->engine)
		engine_put(c->engine);
	free(c->db);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->reload_lock);
	free(c);
}

static int clam_start(struct clam *c, const config_setting_t *cfg)
{
	const config_setting_t *where = config_setting_get_member(cfg, "database");
	struct cl_engine *e;
	char err[PATH_MAX + 256];
	unsigned sigs;
	int r;

	pthread_once(&clam_once, clam_init_once);
	if (clam_init_result != CL_SUCCESS)
		return c->host->conf_error(where, "libclamav cannot start: %s",
					   cl_strerror(clam_init_result));
	r = engine_build(c, NULL, &e, &sigs, err, sizeof(err));
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return c->host->conf_error(where, "%s", err);
	engine_swap(c, e, sigs);
	c->host->log(EPSEC_LOG_INFO, SRC, "%u signatures loaded from %s%s", sigs, c->db[0],
		     c->n_db > 1 ? " and others" : "");
	return 0;
}

static int clam_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	struct clam *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->host = host;
	if (!clam_log_host)
		clam_log_host = host;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->reload_lock, NULL);
	r = parse_options(c, cfg);
	if (r == 0)
		r = clam_start(c, cfg);
	if (r < 0) {
		clam_close(c);
		return r;
	}
	*state = c;
	return 0;
}

/* clcb_pread: ordinary pread semantics. The fmap asks for whole ranges and
 * fails on a short read, so this fills the range unless the file ends. */
static off_t clam_pread(void *handle, void *buf, size_t count, off_t off)
{
	struct clam_scan *s = handle;
	size_t done = 0;
	ssize_t n;

	while (done < count) {
		n = s->file->pread(s->file, (char *)buf + done, count - done,
				   (uint64_t)off + done);
		if (n < 0) {
			s->read_errno = (int)-n;
			return -1;
		}
		if (n == 0) {
			s->truncated = true;
			break;
		}
		done += (size_t)n;
	}
	return (off_t)done;
}

static enum epsec_scan_result scan_error(struct epsec_scan_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum epsec_scan_result scan_error(struct epsec_scan_report *rep, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rep->signature, sizeof(rep->signature), fmt, ap);
	va_end(ap);
	return EPSEC_SCAN_ERROR;
}

static enum epsec_scan_result clam_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *rep)
{
	struct clam_scan s = { .file = file };
	const char *virname = NULL;
	unsigned long scanned = 0;
	struct clam *c = state;
	struct cl_engine *e;
	cl_fmap_t *map;
	cl_error_t r;

	if (file->size == 0)
		return EPSEC_SCAN_CLEAN;
	if (file->size > SIZE_MAX)
		return scan_error(rep, "file too large to map");
	map = cl_fmap_open_handle(&s, 0, (size_t)file->size, clam_pread, 1);
	if (!map)
		return scan_error(rep, "cannot map the file for libclamav");
	e = engine_get(c);
	/* No file name: the path is the agent's, never one to open here. */
	r = cl_scanmap_callback(map, NULL, &virname, &scanned, e, &c->opts, &s);
	engine_put(e);
	cl_fmap_close(map);
	if (r == CL_VIRUS) {
		snprintf(rep->signature, sizeof(rep->signature), "%s",
			 s.virname[0] ? s.virname : virname ? virname : "ClamAV.Unnamed");
		return EPSEC_SCAN_FOUND;
	}
	/* libclamav calls a file it could not read clean: it is not. */
	if (s.read_errno)
		return scan_error(rep, "read failed: %s", strerror(s.read_errno));
	if (s.truncated)
		return scan_error(rep, "the file shrank while it was scanned");
	if (r == CL_CLEAN)
		return EPSEC_SCAN_CLEAN;
	return scan_error(rep, "libclamav: %s", cl_strerror(r));
}

static int clam_reload(void *state)
{
	struct clam *c = state;
	struct cl_engine *old, *e;
	char err[PATH_MAX + 256];
	unsigned sigs;
	int r;

	pthread_mutex_lock(&c->reload_lock);
	old = engine_get(c);
	r = engine_build(c, old, &e, &sigs, err, sizeof(err));
	engine_put(old);
	if (r == 0)
		engine_swap(c, e, sigs);
	pthread_mutex_unlock(&c->reload_lock);
	if (r < 0)
		c->host->log(EPSEC_LOG_ERR, SRC, "reload failed, keeping the signatures in use: %s",
			     err);
	else
		c->host->log(EPSEC_LOG_INFO, SRC, "reloaded: %u signatures", sigs);
	return r;
}

static int clam_signatures(void *state, char *buf, size_t len)
{
	struct clam *c = state;
	char loaded[32], dbtime[32] = "";
	unsigned sigs, version;
	time_t t, db_t;
	struct tm tm;
	int err = 0;

	pthread_mutex_lock(&c->lock);
	sigs = c->sigs;
	t = c->loaded;
	version = (unsigned)cl_engine_get_num(c->engine, CL_ENGINE_DB_VERSION, &err);
	db_t = (time_t)cl_engine_get_num(c->engine, CL_ENGINE_DB_TIME, &err);
	pthread_mutex_unlock(&c->lock);
	strftime(loaded, sizeof(loaded), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	if (db_t)
		strftime(dbtime, sizeof(dbtime), " %Y-%m-%dT%H:%M:%SZ", gmtime_r(&db_t, &tm));
	if (version)
		snprintf(buf, len, "%u signatures, db version %u%s, loaded %s (libclamav %s)",
			 sigs, version, dbtime, loaded, cl_retver());
	else
		snprintf(buf, len, "%u signatures, db version none (custom databases), loaded %s "
			 "(libclamav %s)", sigs, loaded, cl_retver());
	return 0;
}

extern const struct epsec_verdict_plugin epsec_verdict_plugin;

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "clamav",
	.version = "libclamav " CLAMAV_VERSION,
	.open = clam_open,
	.scan = clam_scan,
	.reload = clam_reload,
	.signatures = clam_signatures,
	.close = clam_close,
};
