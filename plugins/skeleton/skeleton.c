/* SPDX-License-Identifier: MIT */
/* skeleton: the epsec verdict plugin to copy when you write your own.
 *
 * It is a complete, working engine: it detects byte strings listed in a
 * signature file, one "NAME=TEXT" per line, anywhere in a file. Replace
 * the matching with your engine and keep the rest: option checking, a
 * signature set that reloads beside the one in use, reading through
 * file->pread, the status line, and the one exported descriptor.
 *
 * Build it against an installed epsec with nothing but pkg-config:
 *
 *   cc $(pkg-config --cflags epsec-plugin) -fPIC -shared -fvisibility=hidden \
 *      -o skeleton.so skeleton.c $(pkg-config --libs epsec-plugin)
 *
 * (the Makefile beside this file does that, and `make install` puts it in
 * `pkg-config --variable=plugindir epsec-plugin`) and name it in
 * epsec-sva.conf:
 *
 *   engine = (
 *     { plugin = "skeleton"; action = "deny";
 *       options = { signatures = "/etc/epsec/skeleton.sigs"; }; }
 *   );
 *
 * The threads: epsec-sva calls scan from all its workers at once; reload
 * and signatures come from other threads while scans run, but never two
 * of them at the same time, and never before open or after close. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <epsec/plugin.h>

/* The only symbol this plugin exports (built with -fvisibility=hidden). */
#define EXPORT __attribute__((visibility("default")))

#define NAME "skeleton"          /* also the log source and the engine name */
#define VERSION "1.0"
#define CHUNK (64u * 1024u)       /* bytes per pread */
#define MAX_SCAN_DEFAULT (16u * 1024u * 1024u)
#define LINE_MAX_LEN 1024

/* ------------------------------------------------------------ signatures */

struct sig {
	char *name;
	char *text;
	size_t len;
};

/* One compiled signature set. Scans hold a reference while they use it,
 * so a reload can swap in a new set without waiting for them and without
 * pulling the old one from under their feet. */
struct sigset {
	unsigned refs; /* under state->lock */
	size_t n;
	size_t longest;
	struct sig *v;
};

struct state {
	const struct epsec_host *host; /* logging and config errors: ours to keep */
	char *path;                    /* the signature file */
	uint64_t max_scan;             /* bytes of each file looked at */
	pthread_mutex_t lock;          /* guards cur and every refs */
	struct sigset *cur;
	unsigned loads;                /* sets loaded, for the status line */
};

static void sigset_free(struct sigset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].text);
	}
	free(s->v);
	free(s);
}

/* "NAME=TEXT": both non-empty. Errors name the file and line, the way an
 * operator wants to read them. */
static int sigset_add(struct state *st, struct sigset *s, char *line, unsigned lineno)
{
	char *eq = strchr(line, '=');
	struct sig *v;

	if (!eq || eq == line || !eq[1]) {
		st->host->log(EPSEC_LOG_ERR, NAME, "%s:%u: expected NAME=TEXT", st->path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	v[s->n].name = strdup(line);
	v[s->n].text = strdup(eq + 1);
	if (!v[s->n].name || !v[s->n].text) {
		free(v[s->n].name);
		free(v[s->n].text);
		return -ENOMEM;
	}
	v[s->n].len = strlen(eq + 1);
	if (v[s->n].len > s->longest)
		s->longest = v[s->n].len;
	s->n++;
	return 0;
}

/* Read the whole file into a new set; the current one is not touched, so
 * a broken file leaves the engine as it was. */
static int sigset_load(struct state *st, struct sigset **out)
{
	struct sigset *s = calloc(1, sizeof(*s));
	char line[LINE_MAX_LEN];
	unsigned lineno = 0;
	FILE *f;
	int r = 0;

	if (!s)
		return -ENOMEM;
	f = fopen(st->path, "re");
	if (!f) {
		r = -errno;
		st->host->log(EPSEC_LOG_ERR, NAME, "%s: %s", st->path, strerror(errno));
		free(s);
		return r;
	}
	while (r == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] && line[0] != '#')
			r = sigset_add(st, s, line, lineno);
	}
	fclose(f);
	if (r == 0 && s->n == 0) {
		st->host->log(EPSEC_LOG_ERR, NAME, "%s: no signatures", st->path);
		r = -EINVAL;
	}
	if (r < 0) {
		sigset_free(s);
		return r;
	}
	s->refs = 1; /* the state's own reference */
	*out = s;
	return 0;
}

static struct sigset *sigset_get(struct state *st)
{
	struct sigset *s;

	pthread_mutex_lock(&st->lock);
	s = st->cur;
	s->refs++;
	pthread_mutex_unlock(&st->lock);
	return s;
}

static void sigset_put(struct state *st, struct sigset *s)
{
	unsigned left;

	pthread_mutex_lock(&st->lock);
	left = --s->refs;
	pthread_mutex_unlock(&st->lock);
	if (left == 0)
		sigset_free(s);
}

/* ------------------------------------------------------------ open */

/* The `options` group of this engine in epsec-sva.conf. Refuse what you do
 * not know: a typo must stop the appliance, not be ignored. */
static int read_options(struct state *st, const config_setting_t *cfg)
{
	static const char *const keys[] = { "signatures", "max_scan", NULL };
	const struct epsec_host *host = st->host;
	const config_setting_t *s;
	const char *path;
	int r;

	r = host->conf_check_keys(cfg, keys);
	if (r < 0)
		return r;
	s = cfg ? config_setting_get_member(cfg, "signatures") : NULL;
	if (!s)
		return host->conf_error(cfg, "signatures: expected the path of a signature file");
	path = config_setting_get_string(s);
	if (!path || !path[0])
		return host->conf_error(s, "expected the path of a signature file");
	st->path = strdup(path);
	if (!st->path)
		return -ENOMEM;
	st->max_scan = MAX_SCAN_DEFAULT;
	s = config_setting_get_member(cfg, "max_scan");
	if (s) {
		long long v = config_setting_get_int64(s);

		if ((config_setting_type(s) != CONFIG_TYPE_INT &&
		     config_setting_type(s) != CONFIG_TYPE_INT64) || v <= 0)
			return host->conf_error(s, "expected a number of bytes > 0");
		st->max_scan = (uint64_t)v;
	}
	return 0;
}

static void state_free(struct state *st)
{
	if (st->cur)
		sigset_put(st, st->cur);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

/* Called once, on epsec-sva's main thread, as root (before it drops to its
 * user): open databases here. A negative errno stops the appliance; say
 * why first, through host->log or host->conf_error. */
static int skeleton_open(const struct epsec_host *host, const config_setting_t *cfg,
			 void **state)
{
	struct state *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	st->host = host;
	pthread_mutex_init(&st->lock, NULL);
	r = read_options(st, cfg);
	if (r == 0)
		r = sigset_load(st, &st->cur);
	if (r < 0) {
		state_free(st);
		return r;
	}
	st->loads = 1;
	host->log(EPSEC_LOG_INFO, NAME, "%zu signatures from %s", st->cur->n, st->path);
	*state = st;
	return 0;
}

/* ------------------------------------------------------------ scan */

static const struct sig *match(const struct sigset *s, const char *buf, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (memmem(buf, len, s->v[i].text, s->v[i].len))
			return &s->v[i];
	return NULL;
}

/* Many threads at once. The bytes may come from a local file or through
 * the mux from an agent on another host: pread hides which. Read in
 * chunks, each starting with the last longest-1 bytes of the one before,
 * so a signature that straddles two chunks is still found. */
static enum epsec_scan_result skeleton_scan(void *state, struct epsec_file *file,
					    struct epsec_scan_report *report)
{
	struct state *st = state;
	struct sigset *s = sigset_get(st);
	uint64_t end = file->size < st->max_scan ? file->size : st->max_scan, off = 0;
	size_t keep = 0, overlap = s->longest ? s->longest - 1 : 0;
	enum epsec_scan_result r = EPSEC_SCAN_CLEAN;
	char *buf = malloc(overlap + CHUNK);
	const struct sig *hit = NULL;
	ssize_t n;

	if (!buf) {
		snprintf(report->signature, sizeof(report->signature), "out of memory");
		sigset_put(st, s);
		return EPSEC_SCAN_ERROR;
	}
	while (off < end && !hit) {
		size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK, total;

		n = file->pread(file, buf + keep, want, off);
		if (n <= 0) {
			if (n < 0) {
				/* Could not decide: say why; the verdict is not cached. */
				snprintf(report->signature, sizeof(report->signature), "read at %llu: %s",
					 (unsigned long long)off, strerror((int)-n));
				r = EPSEC_SCAN_ERROR;
			}
			break;
		}
		total = keep + (size_t)n;
		hit = match(s, buf, total);
		off += (uint64_t)n;
		keep = total < overlap ? total : overlap;
		memmove(buf, buf + total - keep, keep);
	}
	if (hit) {
		/* The signature name is what the agent logs and quarantines by. */
		snprintf(report->signature, sizeof(report->signature), "%s", hit->name);
		r = EPSEC_SCAN_FOUND;
	}
	free(buf);
	sigset_put(st, s);
	return r;
}

/* ------------------------------------------------------------ reload */

/* `epsecctl reload` and SIGHUP. Compile the new set beside the old one,
 * then swap: scans in flight finish with the set they hold. On failure
 * keep the old set and say why (epsec-sva quotes the first error line in
 * its reply). Runs as epsec-sva's unprivileged user: the file must be
 * readable by it. */
static int skeleton_reload(void *state)
{
	struct state *st = state;
	struct sigset *fresh, *old;
	int r;

	r = sigset_load(st, &fresh);
	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	old = st->cur;
	st->cur = fresh;
	st->loads++;
	pthread_mutex_unlock(&st->lock);
	sigset_put(st, old);
	st->host->log(EPSEC_LOG_INFO, NAME, "reloaded %zu signatures from %s", fresh->n,
		      st->path);
	return 0;
}

/* One line for `epsecctl status`. */
static int skeleton_signatures(void *state, char *buf, size_t len)
{
	struct state *st = state;
	struct sigset *s = sigset_get(st);

	snprintf(buf, len, "%zu signatures from %s (load %u)", s->n, st->path, st->loads);
	sigset_put(st, s);
	return 0;
}

static void skeleton_close(void *state)
{
	state_free(state);
}

/* ------------------------------------------------------------ descriptor */

/* The version fields come first and protect the rest: epsec-sva refuses a
 * plugin built for another major ABI, or for a newer minor, with a message
 * naming this file and both versions. */
EXPORT const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = NAME,
	.version = VERSION,
	.open = skeleton_open,
	.scan = skeleton_scan,
	.reload = skeleton_reload,
	.signatures = skeleton_signatures,
	.close = skeleton_close,
};
