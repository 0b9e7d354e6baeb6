/* SPDX-License-Identifier: MIT */
/* The YARA engine: rule files and directories (source or precompiled,
 * read recursively) compiled into one shared set with the operator's and
 * the per-file external variables, a YR_SCANNER per scanning thread.
 * Content: small files read into memory, larger ones scanned whole through
 * epsec_file->content_fd as the `yara` command scans a file, or in cached
 * blocks when the host cannot give the whole file. Reload compiles a new
 * set beside the one in use; threads move to it at their next scan, and
 * the old set is freed when the last thread lets go of it. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yara.h>
#include <epsec/plugin.h>

#define SRC "yara"
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_WHOLE_MAX (16LL << 20)
/* Larger files are scanned in blocks. YARA matches each block on its own,
 * so blocks overlap: a string up to BLOCK_OVERLAP bytes long is found
 * wherever it sits (matches in the overlap are counted once: YARA keys
 * them by file offset). */
#define BLOCK_SIZE (1u << 20)
#define BLOCK_OVERLAP (64u << 10)
/* A thread keeps a read buffer up to this size between scans. */
#define KEEP_BUFFER (1u << 20)
/* Directories nested deeper than this are a mistake (or a loop). */
#define DIR_DEPTH_MAX 32

/* External variables the scanners built on public rule sets (LOKI, THOR)
 * set for every file: signature-base's rules test them. Declared as ""
 * at compile time, set per scan; an operator's fixed external may not take
 * one of these names. */
static const char *const per_file_vars[] = {
	"filename", "filepath", "extension", "filetype", "owner", NULL,
};

/* A fixed external from options.externals. */
struct yext {
	const char *name;  /* the config's */
	int type;          /* CONFIG_TYPE_INT/INT64/BOOL/FLOAT/STRING */
	long long i;
	double f;
	const char *str;   /* the config's */
};

/* One compiled generation: the sources compiled together, then one
 * YR_RULES per precompiled file (YARA cannot merge those). */
struct yset {
	atomic_uint refs;
	unsigned generation;
	size_t n;
	YR_RULES **rules;
	unsigned n_rules;
	time_t loaded;
};

struct yara;

/* One thread's scanners for one set, kept in the plugin's registry so
 * close() can free the scanners of threads that are still alive. */
struct ytls {
	struct yara *y;
	struct ytls *prev, *next;
	struct yset *set;
	YR_SCANNER **sc;
	uint8_t *buf;
	size_t cap;
	/* The last owner looked up: one NSS call per uid, not per file. */
	bool owner_known;
	uint32_t owner_uid;
	char owner[64];
};

struct yara {
	const struct epsec_host *host;
	char **paths; /* rule files or directories: one block, from host->conf_strlist */
	size_t n_paths;
	int compiled; /* -1: detect, 0: sources, 1: precompiled */
	int timeout;  /* seconds, 0 = none: the option, or the default */
	bool timeout_set; /* the operator's: caps the event's deadline */
	long long whole_max;
	struct yext *ext;
	size_t n_ext;

	pthread_key_t key;
	bool key_made;
	bool yr_ready;
	pthread_mutex_t reload_lock; /* one compile at a time */
	pthread_mutex_t lock;        /* set, threads */
	struct yset *set;
	atomic_uint generation;      /* set->generation, readable without the lock */
	struct ytls *threads;
};

/* A rule file found under a configured path. */
struct yfile {
	char *path;
	bool compiled;
};

struct ylist {
	struct yfile *v;
	size_t n;
};

/* ---------------------------------------------------------------- options */

static bool is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

/* rules = "file or dir"; or a list of them. */
static int parse_rules(struct yara *y, const config_setting_t *cfg)
{
	const config_setting_t *s = cfg ? config_setting_get_member(cfg, "rules") : NULL;

	if (!s)
		return y->host->conf_error(cfg, "yara needs options { rules = \"FILE or DIR\"; }");
	return y->host->conf_strlist(s, "rule files or directories", &y->paths, &y->n_paths);
}

static int parse_whole_max(struct yara *y, const config_setting_t *s)
{
	int64_t v = -1;

	if (y->host->conf_size(s, &v) < 0)
		v = -1;
	if (v < 0 || (unsigned long long)v > SIZE_MAX / 2)
		return y->host->conf_error(s, "expected a size such as 16M");
	y->whole_max = v;
	return 0;
}

static int parse_scalars(struct yara *y, const config_setting_t *cfg)
{
	const config_setting_t *s;
	int ret = 0;

	if ((s = config_setting_get_member(cfg, "compiled"))) {
		if (config_setting_type(s) == CONFIG_TYPE_BOOL)
			y->compiled = config_setting_get_bool(s);
		else
			ret = y->host->conf_error(s, "expected true or false");
	}
	if ((s = config_setting_get_member(cfg, "timeout"))) {
		if (is_int(s) && config_setting_get_int64(s) >= 0 &&
		    config_setting_get_int64(s) <= INT_MAX) {
			y->timeout = (int)config_setting_get_int64(s);
			y->timeout_set = true;
		} else {
			ret = y->host->conf_error(s, "expected seconds (0 = no limit)");
		}
	}
	if ((s = config_setting_get_member(cfg, "whole_file_max")) && parse_whole_max(y, s) < 0)
		ret = -EINVAL;
	return ret;
}

static bool reserved_var(const char *name)
{
	for (size_t i = 0; per_file_vars[i]; i++)
		if (!strcmp(name, per_file_vars[i]))
			return true;
	return false;
}

static int parse_ext(struct yara *y, const config_setting_t *s, struct yext *e)
{
	e->name = config_setting_name(s);
	e->type = config_setting_type(s);
	if (reserved_var(e->name))
		return y->host->conf_error(s, "\"%s\" is set per file by the engine (filename, "
					   "filepath, extension, filetype, owner)", e->name);
	switch (e->type) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		e->i = config_setting_get_int64(s);
		return 0;
	case CONFIG_TYPE_BOOL:
		e->i = config_setting_get_bool(s);
		return 0;
	case CONFIG_TYPE_FLOAT:
		e->f = config_setting_get_float(s);
		return 0;
	case CONFIG_TYPE_STRING:
		e->str = config_setting_get_string(s);
		return 0;
	}
	return y->host->conf_error(s, "expected a string, an integer, a float or true/false");
}

/* externals = { name = value; ... }: defined on every compiler. */
static int parse_externals(struct yara *y, const config_setting_t *cfg)
{
	const config_setting_t *g = config_setting_get_member(cfg, "externals");
	int n, ret = 0;

	if (!g)
		return 0;
	if (!config_setting_is_group(g))
		return y->host->conf_error(g, "expected a group: externals = { name = value; }");
	n = config_setting_length(g);
	y->ext = calloc(n > 0 ? (size_t)n : 1, sizeof(*y->ext));
	if (!y->ext)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		if (parse_ext(y, config_setting_get_elem(g, (unsigned)i), &y->ext[y->n_ext++]) < 0)
			ret = -EINVAL;
	return ret;
}

static int parse_options(struct yara *y, const config_setting_t *cfg)
{
	static const char *const keys[] = { "rules", "compiled", "timeout", "whole_file_max",
					    "externals", NULL };
	int r, ret;

	y->compiled = -1;
	y->timeout = DEFAULT_TIMEOUT_S;
	y->whole_max = DEFAULT_WHOLE_MAX;
	r = y->host->conf_check_keys(cfg, keys);
	if (r < 0)
		return r;
	ret = parse_rules(y, cfg);
	if (cfg && (r = parse_scalars(y, cfg)) < 0 && ret == 0)
		ret = r;
	if (cfg && (r = parse_externals(y, cfg)) < 0 && ret == 0)
		ret = r;
	return ret;
}

/* ---------------------------------------------------------------- rule files */

static int list_add(struct ylist *l, const char *path, bool compiled)
{
	struct yfile *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	l->v[l->n].path = strdup(path);
	if (!l->v[l->n].path)
		return -ENOMEM;
	l->v[l->n].compiled = compiled;
	l->n++;
	return 0;
}

static void list_free(struct ylist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

/* The directories on the way down, by dev/ino: a symlink back up is
 * skipped, not followed forever. */
struct ywalk {
	struct yara *y;
	struct ylist *l;
	dev_t dev[DIR_DEPTH_MAX];
	ino_t ino[DIR_DEPTH_MAX];
	int depth;
	char *err;
	size_t len;
};

static bool on_path(const struct ywalk *w, const struct stat *st)
{
	for (int i = 0; i < w->depth; i++)
		if (w->dev[i] == st->st_dev && w->ino[i] == st->st_ino)
			return true;
	return false;
}

static int walk_dir(struct ywalk *w, const char *dir, const struct stat *st);

/* *.yar and *.yara are sources, *.yarc precompiled; other names are left
 * alone (files meant only for `include` live among them), and so are
 * hidden ones (.git). Subdirectories are walked in name order. */
static int walk_entry(struct ywalk *w, const char *dir, const char *name)
{
	bool src = ends_with(name, ".yar") || ends_with(name, ".yara");
	bool bin = ends_with(name, ".yarc");
	char path[PATH_MAX];
	struct stat st;

	if (name[0] == '.')
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) < 0)
		return 0; /* a dangling link: nothing to load */
	if (S_ISDIR(st.st_mode))
		return walk_dir(w, path, &st);
	if (!S_ISREG(st.st_mode) || !(src || bin))
		return 0;
	return list_add(w->l, path, w->y->compiled == 1 || (w->y->compiled == -1 && bin));
}

static int walk_dir(struct ywalk *w, const char *dir, const struct stat *st)
{
	struct dirent **ents;
	int n, r = 0;

	if (on_path(w, st)) {
		w->y->host->log(EPSEC_LOG_WARNING, SRC, "%s: skipped, a link back to a directory "
				"above it", dir);
		return 0;
	}
	if (w->depth == DIR_DEPTH_MAX) {
		snprintf(w->err, w->len, "%s: rule directories nested deeper than %d", dir,
			 DIR_DEPTH_MAX);
		return -ELOOP;
	}
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		snprintf(w->err, w->len, "cannot read %s: %s", dir, strerror(errno));
		return -errno;
	}
	w->dev[w->depth] = st->st_dev;
	w->ino[w->depth++] = st->st_ino;
	for (int i = 0; i < n; i++) {
		if (r == 0)
			r = walk_entry(w, dir, ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	w->depth--;
	return r;
}

static int list_files(struct yara *y, struct ylist *l, char *err, size_t len)
{
	struct ywalk w = { .y = y, .l = l, .err = err, .len = len };
	struct stat st;
	size_t before;
	int r;

	for (size_t i = 0; i < y->n_paths; i++) {
		if (stat(y->paths[i], &st) < 0) {
			snprintf(err, len, "%s: %s", y->paths[i], strerror(errno));
			return -ENOENT;
		}
		before = l->n;
		/* A single file: compiled = true/false decides, else it is
		 * sniffed (yr_rules_load) when loaded. */
		r = S_ISDIR(st.st_mode) ? walk_dir(&w, y->paths[i], &st)
					: list_add(l, y->paths[i], y->compiled == 1);
		if (r < 0)
			return r;
		if (S_ISDIR(st.st_mode) && l->n == before) {
			snprintf(err, len, "%s: no *.yar, *.yara or *.yarc files", y->paths[i]);
			return -ENOENT;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- compiling */

struct ycompile {
	struct yara *y;
	unsigned errors; /* in the file being added */
	bool quiet;      /* files added again: their messages were logged */
};

/* Every compiler message names the file and line: rule authors fix them. */
static void on_compile_msg(int level, const char *file, int line, const YR_RULE *rule,
			   const char *msg, void *ud)
{
	struct ycompile *cc = ud;
	bool error = level == YARA_ERROR_LEVEL_ERROR;

	if (cc->quiet)
		return;
	if (error)
		cc->errors++;
	cc->y->host->log(error ? EPSEC_LOG_ERR : EPSEC_LOG_WARNING, SRC, "%s:%d: %s: %s",
			 file ? file : "(rules)", line, error ? "error" : "warning", msg);
}

static int define_ext(YR_COMPILER *comp, const struct yext *e)
{
	switch (e->type) {
	case CONFIG_TYPE_BOOL:
		return yr_compiler_define_boolean_variable(comp, e->name, (int)e->i);
	case CONFIG_TYPE_FLOAT:
		return yr_compiler_define_float_variable(comp, e->name, e->f);
	case CONFIG_TYPE_STRING:
		return yr_compiler_define_string_variable(comp, e->name, e->str);
	}
	return yr_compiler_define_integer_variable(comp, e->name, e->i);
}

/* Before any rule: a rule may only use externals defined by then. */
static int define_vars(struct yara *y, YR_COMPILER *comp, char *err, size_t len)
{
	for (size_t i = 0; per_file_vars[i]; i++)
		if (yr_compiler_define_string_variable(comp, per_file_vars[i], "") != ERROR_SUCCESS) {
			snprintf(err, len, "cannot define the external %s", per_file_vars[i]);
			return -ENOMEM;
		}
	for (size_t i = 0; i < y->n_ext; i++)
		if (define_ext(comp, &y->ext[i]) != ERROR_SUCCESS) {
			snprintf(err, len, "cannot define the external %s", y->ext[i].name);
			return -EINVAL;
		}
	return 0;
}

static int set_add_rules(struct yset *set, YR_RULES *rules)
{
	YR_RULES **v = realloc(set->rules, (set->n + 1) * sizeof(*v));

	if (!v) {
		yr_rules_destroy(rules);
		return -ENOMEM;
	}
	set->rules = v;
	set->rules[set->n++] = rules;
	set->n_rules += rules->num_rules;
	return 0;
}

/* The sources of one set, compiled together. */
struct ysources {
	struct yara *y;
	struct ycompile cc;
	YR_COMPILER *comp;
	const struct ylist *l;
	const bool *source;
	bool *bad;       /* files that did not compile */
	unsigned failed; /* how many */
	unsigned errors; /* compiler errors in them */
	char names[512]; /* the first of them, for the one-line summary */
};

static int new_compiler(struct ysources *ss, char *err, size_t len)
{
	int r;

	if (yr_compiler_create(&ss->comp) != ERROR_SUCCESS) {
		snprintf(err, len, "cannot create a YARA compiler");
		return -ENOMEM;
	}
	yr_compiler_set_callback(ss->comp, on_compile_msg, &ss->cc);
	r = define_vars(ss->y, ss->comp, err, len);
	if (r < 0) {
		yr_compiler_destroy(ss->comp);
		ss->comp = NULL;
	}
	return r;
}

/* The number of errors adding the file (0: it compiled), or -errno when it
 * cannot be opened. */
static int add_source(struct ysources *ss, const char *path)
{
	FILE *f = fopen(path, "r");
	int n, e;

	if (!f) {
		e = errno;
		ss->y->host->log(EPSEC_LOG_ERR, SRC, "%s: %s", path, strerror(e));
		return -e;
	}
	ss->cc.errors = 0;
	/* The file name makes includes resolve beside the including file. */
	n = yr_compiler_add_file(ss->comp, f, NULL, path);
	fclose(f);
	return n > 0 || ss->cc.errors ? (int)(ss->cc.errors ? ss->cc.errors : (unsigned)n) : 0;
}

/* libyara's compiler is unusable after an error (it asserts errors == 0),
 * so a new one is given the files before `upto` that compiled, quietly, and
 * goes on: every failing file is reported in one run, and the later ones
 * are compiled with the rules they may use. */
static int restart(struct ysources *ss, size_t upto, char *err, size_t len)
{
	int r;

	yr_compiler_destroy(ss->comp);
	ss->comp = NULL;
	r = new_compiler(ss, err, len);
	ss->cc.quiet = true;
	for (size_t i = 0; i < upto && r == 0; i++)
		if (ss->source[i] && !ss->bad[i] && add_source(ss, ss->l->v[i].path) != 0)
			r = -EIO; /* it compiled a moment ago: the file changed */
	ss->cc.quiet = false;
	if (r == -EIO)
		snprintf(err, len, "rule files changed while they were compiled");
	return r;
}

static void note_failure(struct ysources *ss, size_t i, int n)
{
	size_t used = strlen(ss->names);

	ss->bad[i] = true;
	ss->failed++;
	ss->errors += n > 0 ? (unsigned)n : 1;
	if (used + 4 < sizeof(ss->names))
		snprintf(ss->names + used, sizeof(ss->names) - used, "%s%s", used ? ", " : "",
			 ss->l->v[i].path);
}

static void failure_text(const struct ysources *ss, char *err, size_t len)
{
	if (ss->failed == 1)
		snprintf(err, len, "%s does not compile (%u error%s, see above)", ss->names,
			 ss->errors, ss->errors == 1 ? "" : "s");
	else
		snprintf(err, len, "%u rule files do not compile (%u errors, see above): %s",
			 ss->failed, ss->errors, ss->names);
}

static int add_all(struct ysources *ss, char *err, size_t len)
{
	int n, r = 0;

	for (size_t i = 0; i < ss->l->n && r == 0; i++) {
		if (!ss->source[i])
			continue;
		n = add_source(ss, ss->l->v[i].path);
		if (n == 0)
			continue;
		note_failure(ss, i, n);
		if (n > 0)
			r = restart(ss, i, err, len);
	}
	if (r == 0 && ss->failed) {
		failure_text(ss, err, len);
		r = -EINVAL;
	}
	return r;
}

/* Precompiled rules; with detection, a file YARA does not recognise as
 * compiled is a source file (*is_source). */
static int load_compiled(const struct yfile *f, bool detect, YR_RULES **out, bool *is_source,
			 char *err, size_t len)
{
	int r = yr_rules_load(f->path, out);

	if (r == ERROR_SUCCESS)
		return 0;
	*out = NULL;
	if (detect && r == ERROR_INVALID_FILE) {
		*is_source = true;
		return 0;
	}
	snprintf(err, len, "%s: cannot load compiled rules (%s)", f->path,
		 r == ERROR_UNSUPPORTED_FILE_VERSION ? "made by another YARA version"
		 : r == ERROR_COULD_NOT_OPEN_FILE ? "cannot open"
		 : r == ERROR_INSUFFICIENT_MEMORY ? "out of memory" : "not a compiled rules file");
	return -EINVAL;
}

static int compile_sources(struct yara *y, struct yset *set, const struct ylist *l,
			   const bool *source, char *err, size_t len)
{
	struct ysources ss = { .y = y, .cc = { .y = y }, .l = l, .source = source };
	YR_RULES *rules;
	size_t n = 0;
	int r;

	for (size_t i = 0; i < l->n; i++)
		n += source[i];
	if (n == 0)
		return 0;
	ss.bad = calloc(l->n, sizeof(*ss.bad));
	r = ss.bad ? new_compiler(&ss, err, len) : -ENOMEM;
	if (r == 0)
		r = add_all(&ss, err, len);
	if (r == 0 && yr_compiler_get_rules(ss.comp, &rules) != ERROR_SUCCESS) {
		snprintf(err, len, "cannot build the compiled rules");
		r = -ENOMEM;
	}
	if (r == 0)
		r = set_add_rules(set, rules);
	if (ss.comp)
		yr_compiler_destroy(ss.comp);
	free(ss.bad);
	return r;
}

static void set_unref(struct yset *set)
{
	if (!set || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	for (size_t i = 0; i < set->n; i++)
		yr_rules_destroy(set->rules[i]);
	free(set->rules);
	free(set);
}

/* The sources compiled together come first, then each precompiled file. */
static int set_fill(struct yara *y, struct yset *set, const struct ylist *l, char *err,
		    size_t len)
{
	YR_RULES **bin = calloc(l->n ? l->n : 1, sizeof(*bin));
	bool *source = calloc(l->n ? l->n : 1, sizeof(*source));
	int r = (bin && source) ? 0 : -ENOMEM;

	for (size_t i = 0; i < l->n && r == 0; i++) {
		if (l->v[i].compiled || y->compiled == -1)
			r = load_compiled(&l->v[i], !l->v[i].compiled, &bin[i], &source[i], err, len);
		else
			source[i] = true;
	}
	if (r == 0)
		r = compile_sources(y, set, l, source, err, len);
	for (size_t i = 0; bin && i < l->n; i++) {
		if (bin[i] && r == 0)
			r = set_add_rules(set, bin[i]);
		else if (bin[i])
			yr_rules_destroy(bin[i]);
	}
	free(bin);
	free(source);
	return r;
}

static int set_build(struct yara *y, struct yset **out, char *err, size_t len)
{
	struct ylist l = { .n = 0 };
	struct yset *set = calloc(1, sizeof(*set));
	int r;

	if (!set)
		return -ENOMEM;
	atomic_init(&set->refs, 1);
	r = list_files(y, &l, err, len);
	if (r == 0)
		r = set_fill(y, set, &l, err, len);
	list_free(&l);
	if (r < 0) {
		set_unref(set);
		return r;
	}
	set->loaded = time(NULL);
	*out = set;
	return 0;
}

/* Installs `set` (taking its reference) as the next generation. */
static void set_swap(struct yara *y, struct yset *set)
{
	struct yset *old;

	pthread_mutex_lock(&y->lock);
	old = y->set;
	set->generation = old ? old->generation + 1 : 1;
	y->set = set;
	atomic_store(&y->generation, set->generation);
	pthread_mutex_unlock(&y->lock);
	set_unref(old);
}

/* ---------------------------------------------------------------- threads */

static void tls_drop_scanners(struct ytls *t)
{
	for (size_t i = 0; t->set && i < t->set->n; i++)
		if (t->sc[i])
			yr_scanner_destroy(t->sc[i]);
	free(t->sc);
	t->sc = NULL;
	set_unref(t->set);
	t->set = NULL;
}

static void tls_free(struct ytls *t)
{
	tls_drop_scanners(t);
	free(t->buf);
	free(t);
}

/* Thread exit: the scanners go with the thread. */
static void tls_destructor(void *p)
{
	struct ytls *t = p;
	struct yara *y = t->y;

	pthread_mutex_lock(&y->lock);
	if (t->prev)
		t->prev->next = t->next;
	else
		y->threads = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&y->lock);
	tls_free(t);
}

static struct ytls *tls_get(struct yara *y)
{
	struct ytls *t = pthread_getspecific(y->key);

	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->y = y;
	if (pthread_setspecific(y->key, t) != 0) {
		free(t);
		return NULL;
	}
	pthread_mutex_lock(&y->lock);
	t->next = y->threads;
	if (t->next)
		t->next->prev = t;
	y->threads = t;
	pthread_mutex_unlock(&y->lock);
	return t;
}

static int tls_build(struct ytls *t, struct yara *y)
{
	tls_drop_scanners(t);
	pthread_mutex_lock(&y->lock);
	t->set = y->set;
	atomic_fetch_add(&t->set->refs, 1);
	pthread_mutex_unlock(&y->lock);
	t->sc = calloc(t->set->n ? t->set->n : 1, sizeof(*t->sc));
	if (!t->sc)
		return -ENOMEM;
	for (size_t i = 0; i < t->set->n; i++) {
		if (yr_scanner_create(t->set->rules[i], &t->sc[i]) != ERROR_SUCCESS)
			return -ENOMEM;
		yr_scanner_set_timeout(t->sc[i], y->timeout);
	}
	return 0;
}

/* This thread's scanners for the current generation. */
static struct ytls *tls_current(struct yara *y)
{
	struct ytls *t = tls_get(y);

	if (!t)
		return NULL;
	if (t->set && t->set->generation == atomic_load(&y->generation))
		return t;
	if (tls_build(t, y) < 0) {
		tls_drop_scanners(t);
		return NULL;
	}
	return t;
}

/* ---------------------------------------------------------------- scanning */

/* A block buffer of the block iterator: what it holds, so a block asked
 * for again (libyara fetches the block of each uint32(off) a condition
 * reads) is not read again. */
struct ybuf {
	uint8_t *p;
	uint64_t base;
	size_t len;
	bool valid;
};

/* The per-file externals, as LOKI and THOR set them. */
struct yvars {
	const char *filename, *filepath;
	char extension[32];
	char filetype[16];
	const char *owner;
};

struct yscan {
	const struct yara *y;
	struct epsec_file *file;
	/* Block 0 has its own buffer: modules (pe, elf) parse it once and
	 * keep pointers into it while conditions fetch other blocks. */
	struct ybuf b0, cur;
	struct ybuf *last; /* the one fetched last: the next block's overlap */
	bool pass_done;    /* libyara has been through every block once */
	YR_MEMORY_BLOCK block;
	struct yvars vars;
	int timeout; /* seconds given to libyara, for the report */
	int read_errno;
	bool found;
	char name[EPSEC_SIGNATURE_MAX];
};

/* "YARA.<rule>", or "YARA.<rule> (<description>)" when the rule has a
 * string `description` in its meta. */
static void name_rule(struct yscan *s, const YR_RULE *rule)
{
	const YR_META *meta;

	yr_rule_metas_foreach(rule, meta) {
		if (meta->type == META_TYPE_STRING && !strcmp(meta->identifier, "description")) {
			snprintf(s->name, sizeof(s->name), "YARA.%s (%s)", rule->identifier,
				 meta->string);
			return;
		}
	}
	snprintf(s->name, sizeof(s->name), "YARA.%s", rule->identifier);
}

static int on_scan_msg(YR_SCAN_CONTEXT *ctx, int message, void *data, void *ud)
{
	struct yscan *s = ud;

	if (message != CALLBACK_MSG_RULE_MATCHING)
		return CALLBACK_CONTINUE;
	s->found = true;
	name_rule(s, data);
	/* The first matching rule, in rule order, decides. */
	return CALLBACK_ABORT;
}

/* Fills buf from `off`; short only at end of file. */
static ssize_t read_range(struct yscan *s, uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = s->file->pread(s->file, buf + done, len - done, off + done);
		if (n < 0) {
			s->read_errno = (int)-n;
			return n;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* ------------------------------------------------------- per-file values */

/* LOKI's names for the first bytes (signature-base's file-type table), the
 * types its rules test first; "UNKNOWN" otherwise. */
static const struct {
	const char *magic;
	size_t len;
	const char *type;
} file_types[] = {
	{ "\x7f" "ELF", 4, "ELF" },
	{ "\xcf\xfa\xed\xfe", 4, "MACH-O" }, { "\xce\xfa\xed\xfe", 4, "MACH-O" },
	{ "\xfe\xed\xfa\xcf", 4, "MACH-O" }, { "\xfe\xed\xfa\xce", 4, "MACH-O" },
	{ "MDMP", 4, "MDMP" },
	{ "PK\x03\x04", 4, "ZIP" },
	{ "%PDF", 4, "PDF" },
	{ "{\\rt", 4, "RTF" },
	{ "<?php", 5, "PHP" },
	{ "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "OLE" },
	{ "Rar!\x1a\x07", 6, "RAR" },
	{ "7z\xbc\xaf\x27\x1c", 6, "7Zip" },
	{ "\x1f\x8b\x08", 3, "GZIP" },
	{ "BZh", 3, "BZip2" },
	{ "#!", 2, "Script" },
	{ "MZ", 2, "EXE" },
};

static void file_type(struct yscan *s, char *out, size_t len)
{
	uint8_t head[8];
	ssize_t n = s->file->pread(s->file, head, sizeof(head), 0);

	for (size_t i = 0; n > 0 && i < sizeof(file_types) / sizeof(file_types[0]); i++) {
		if ((size_t)n >= file_types[i].len &&
		    !memcmp(head, file_types[i].magic, file_types[i].len)) {
			snprintf(out, len, "%s", file_types[i].type);
			return;
		}
	}
	snprintf(out, len, "UNKNOWN");
}

/* The user name on this host, or the number: the agent's uid may mean
 * nobody here. */
static const char *owner_of(struct ytls *t, uint32_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (t->owner_known && t->owner_uid == uid)
		return t->owner;
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(t->owner, sizeof(t->owner), "%s", pw.pw_name);
	else
		snprintf(t->owner, sizeof(t->owner), "%u", uid);
	t->owner_known = true;
	t->owner_uid = uid;
	return t->owner;
}

/* extension: ".exe", lower case with its dot, as LOKI's
 * os.path.splitext(path)[1].lower() (signature-base tests ".vbs"). */
static void fill_vars(struct ytls *t, struct yscan *s)
{
	const char *path = s->file->path ? s->file->path : "";
	const char *base = strrchr(path, '/'), *dot;
	size_t i;

	s->vars.filepath = path;
	s->vars.filename = base ? base + 1 : path;
	dot = strrchr(s->vars.filename, '.');
	if (!dot || dot == s->vars.filename)
		dot = "";
	for (i = 0; dot[i] && i < sizeof(s->vars.extension) - 1; i++)
		s->vars.extension[i] = (char)tolower((unsigned char)dot[i]);
	s->vars.extension[i] = '\0';
	file_type(s, s->vars.filetype, sizeof(s->vars.filetype));
	s->vars.owner = owner_of(t, s->file->uid);
}

/* A precompiled set may not declare them: libyara then refuses, harmlessly. */
static void set_vars(YR_SCANNER *sc, const struct yvars *v)
{
	yr_scanner_define_string_variable(sc, "filename", v->filename);
	yr_scanner_define_string_variable(sc, "filepath", v->filepath);
	yr_scanner_define_string_variable(sc, "extension", v->extension);
	yr_scanner_define_string_variable(sc, "filetype", v->filetype);
	yr_scanner_define_string_variable(sc, "owner", v->owner);
}

/* libyara's timeout is whole seconds from the start of a scan: the time
 * left to the event's deadline, rounded up, at least 1; the operator's
 * timeout caps it. Without a deadline, the option (or its default). */
static int scan_timeout(const struct yara *y, const struct epsec_file *f)
{
	struct timespec now;
	int64_t left;

	if (f->deadline_ms <= 0)
		return y->timeout;
	clock_gettime(CLOCK_MONOTONIC, &now);
	left = f->deadline_ms - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	left = left <= 0 ? 1 : (left + 999) / 1000;
	if (y->timeout_set && y->timeout > 0 && y->timeout < left)
		left = y->timeout;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* ---------------------------------------------------------------- blocks */

static YR_MEMORY_BLOCK *block_at(YR_MEMORY_BLOCK_ITERATOR *it, uint64_t base)
{
	struct yscan *s = it->context;
	uint64_t size = s->file->size;

	if (base >= size)
		return NULL;
	s->block.base = base;
	s->block.size = size - base < BLOCK_SIZE ? (size_t)(size - base) : BLOCK_SIZE;
	return &s->block;
}

static YR_MEMORY_BLOCK *block_first(YR_MEMORY_BLOCK_ITERATOR *it)
{
	return block_at(it, 0);
}

static YR_MEMORY_BLOCK *block_next(YR_MEMORY_BLOCK_ITERATOR *it)
{
	struct yscan *s = it->context;

	if (s->block.base + s->block.size >= s->file->size) {
		s->pass_done = true;
		return NULL;
	}
	return block_at(it, s->block.base + BLOCK_SIZE - BLOCK_OVERLAP);
}

/* The block into `dst`: the bytes the block fetched last shares with it
 * (the overlap) are copied, only the rest is read. */
static const uint8_t *fill_block(struct yscan *s, struct ybuf *dst, const YR_MEMORY_BLOCK *b)
{
	const struct ybuf *src = s->last;
	size_t keep = 0;
	ssize_t n;

	if (dst->valid && dst->base == b->base && dst->len == b->size)
		return dst->p;
	if (src && src->valid && b->base > src->base && b->base < src->base + src->len) {
		keep = (size_t)(src->base + src->len - b->base);
		keep = keep < b->size ? keep : b->size;
		memmove(dst->p, src->p + (b->base - src->base), keep);
	}
	dst->valid = false;
	n = read_range(s, dst->p + keep, b->size - keep, b->base + keep);
	if (n != (ssize_t)(b->size - keep))
		return NULL;
	dst->base = b->base;
	dst->len = b->size;
	dst->valid = true;
	s->last = dst;
	return dst->p;
}

/* After the pass, modules (elf, pe) walk every block again looking for a
 * header, and conditions fetch the block of each integer they read: only
 * the first block and the last one fetched are given then, so no byte is
 * read twice (module data and integers past them are undefined, as the
 * docs say). */
static const uint8_t *block_fetch(YR_MEMORY_BLOCK *block)
{
	struct yscan *s = block->context;

	if (block->base == 0)
		return fill_block(s, &s->b0, block);
	if (s->pass_done && !(s->cur.valid && s->cur.base == block->base))
		return NULL;
	return fill_block(s, &s->cur, block);
}

static uint64_t block_file_size(YR_MEMORY_BLOCK_ITERATOR *it)
{
	struct yscan *s = it->context;

	return s->file->size;
}

static int scan_blocks(struct yscan *s, YR_SCANNER *sc)
{
	YR_MEMORY_BLOCK_ITERATOR it = {
		.context = s, .first = block_first, .next = block_next,
		.file_size = block_file_size, .last_error = ERROR_SUCCESS,
	};

	s->block.context = s;
	s->block.fetch_data = block_fetch;
	s->pass_done = false;
	return yr_scanner_scan_mem_blocks(sc, &it);
}

/* ---------------------------------------------------------------- scanning */

/* What one set scans: a buffer, an fd holding the whole file, or blocks. */
struct ysource {
	const uint8_t *data;
	size_t len;
	int fd; /* >= 0: scan_fd */
};

static int scan_one(struct yscan *s, YR_SCANNER *sc, const struct ysource *src)
{
	/* A mapped file can shrink under the scan (SIGBUS): libyara guards
	 * it. Memory is ours: no guard needed. */
	int flags = SCAN_FLAGS_REPORT_RULES_MATCHING | (src->fd >= 0 ? 0 : SCAN_FLAGS_NO_TRYCATCH);

	yr_scanner_set_flags(sc, flags);
	yr_scanner_set_callback(sc, on_scan_msg, s);
	set_vars(sc, &s->vars);
	/* Counted from now: reading and staging took their share already. */
	s->timeout = scan_timeout(s->y, s->file);
	yr_scanner_set_timeout(sc, s->timeout);
	if (src->fd >= 0)
		return yr_scanner_scan_fd(sc, src->fd);
	if (src->data)
		return yr_scanner_scan_mem(sc, src->data, src->len);
	return scan_blocks(s, sc);
}

/* Each rule set in turn until one matches. */
static int scan_sets(struct ytls *t, struct yscan *s, const struct ysource *src)
{
	int r;

	for (size_t i = 0; i < t->set->n && !s->found; i++) {
		r = scan_one(s, t->sc[i], src);
		if (r != ERROR_SUCCESS && !s->found)
			return r;
	}
	return ERROR_SUCCESS;
}

/* Whole file in memory (as the yara command scans), the buffer kept for
 * the thread's next scan when it is small. */
static int scan_whole(struct ytls *t, struct yscan *s, size_t size)
{
	struct ysource src = { .fd = -1 };
	uint8_t *buf = t->buf;
	ssize_t n;
	int r;

	if (size > t->cap) {
		buf = malloc(size ? size : 1);
		if (!buf)
			return ERROR_INSUFFICIENT_MEMORY;
		if (size <= KEEP_BUFFER) {
			free(t->buf);
			t->buf = buf;
			t->cap = size;
		}
	}
	n = read_range(s, buf, size, 0);
	src.data = buf;
	src.len = n > 0 ? (size_t)n : 0;
	r = n < 0 ? ERROR_COULD_NOT_READ_FILE : scan_sets(t, s, &src);
	if (buf != t->buf)
		free(buf);
	return r;
}

/* Blocks: each byte read once in order; the elf and pe modules see the
 * first block only, so the operator is told, once per file. */
static int scan_in_blocks(struct ytls *t, struct yscan *s)
{
	struct ysource src = { .fd = -1 };
	int r;

	t->y->host->log(EPSEC_LOG_WARNING, SRC, "%s (%llu bytes): larger than the host "
			"stages, scanned in blocks: module data (elf, pe...) covers its first "
			"1 MiB only", s->file->path, (unsigned long long)s->file->size);
	s->b0.p = malloc(BLOCK_SIZE);
	s->cur.p = malloc(BLOCK_SIZE);
	r = s->b0.p && s->cur.p ? scan_sets(t, s, &src) : ERROR_INSUFFICIENT_MEMORY;
	free(s->b0.p);
	free(s->cur.p);
	return r;
}

/* The whole file from the host (the file itself, or a copy it staged
 * once), scanned as `yara FILE` does; blocks when it is too large to be
 * staged or the host offers no fd. */
static int scan_large(struct ytls *t, struct yscan *s)
{
	struct ysource src = { .fd = -ENOSYS };

	if (s->file->content_fd)
		src.fd = s->file->content_fd(s->file);
	if (src.fd >= 0)
		return scan_sets(t, s, &src);
	if (src.fd == -EFBIG || src.fd == -ENOSYS)
		return scan_in_blocks(t, s);
	s->read_errno = -src.fd;
	return ERROR_COULD_NOT_READ_FILE;
}

static enum epsec_scan_result scan_report(struct yscan *s, int r, struct epsec_scan_report *rep)
{
	if (s->found) {
		snprintf(rep->signature, sizeof(rep->signature), "%s", s->name);
		return EPSEC_SCAN_FOUND;
	}
	if (s->read_errno)
		snprintf(rep->signature, sizeof(rep->signature), "read failed: %s",
			 strerror(s->read_errno));
	else if (r == ERROR_SCAN_TIMEOUT)
		snprintf(rep->signature, sizeof(rep->signature), "YARA scan timed out after %d s",
			 s->timeout);
	else if (r != ERROR_SUCCESS)
		snprintf(rep->signature, sizeof(rep->signature), "YARA error %d", r);
	else
		return EPSEC_SCAN_CLEAN;
	return EPSEC_SCAN_ERROR;
}

static enum epsec_scan_result yara_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *rep)
{
	struct yara *y = state;
	struct yscan s = { .y = y, .file = file };
	struct ytls *t = tls_current(y);
	int r;

	if (!t) {
		snprintf(rep->signature, sizeof(rep->signature), "no YARA scanner for this thread");
		return EPSEC_SCAN_ERROR;
	}
	fill_vars(t, &s);
	if ((long long)file->size <= y->whole_max || file->size == 0)
		r = scan_whole(t, &s, (size_t)file->size);
	else
		r = scan_large(t, &s);
	return scan_report(&s, r, rep);
}

/* ---------------------------------------------------------------- ops */

static void yara_close(void *state)
{
	struct yara *y = state;
	struct ytls *t, *next;

	if (!y)
		return;
	/* No scan runs now: the scanners of live threads go too. */
	for (t = y->threads; t; t = next) {
		next = t->next;
		tls_free(t);
	}
	if (y->key_made) {
		pthread_setspecific(y->key, NULL);
		pthread_key_delete(y->key);
	}
	set_unref(y->set);
	free(y->paths);
	free(y->ext);
	if (y->yr_ready)
		yr_finalize();
	pthread_mutex_destroy(&y->lock);
	pthread_mutex_destroy(&y->reload_lock);
	free(y);
}

static int yara_start(struct yara *y, const config_setting_t *cfg)
{
	const config_setting_t *where = config_setting_get_member(cfg, "rules");
	char err[PATH_MAX + 256] = "";
	struct yset *set;
	int r;

	if (yr_initialize() != ERROR_SUCCESS)
		return y->host->conf_error(where, "libyara cannot start");
	y->yr_ready = true;
	if (pthread_key_create(&y->key, tls_destructor) != 0)
		return -ENOMEM;
	y->key_made = true;
	r = set_build(y, &set, err, sizeof(err));
	if (r == -ENOMEM && !err[0])
		return r;
	if (r < 0)
		return y->host->conf_error(where, "%s", err);
	set_swap(y, set);
	y->host->log(EPSEC_LOG_INFO, SRC, "%u rules loaded from %s%s", set->n_rules, y->paths[0],
		     y->n_paths > 1 ? " and others" : "");
	return 0;
}

/* Called from the main thread (yr_initialize is not thread-safe). */
static int yara_open(const struct epsec_host *host, const config_setting_t *cfg, void **state)
{
	struct yara *y = calloc(1, sizeof(*y));
	int r;

	if (!y)
		return -ENOMEM;
	y->host = host;
	pthread_mutex_init(&y->lock, NULL);
	pthread_mutex_init(&y->reload_lock, NULL);
	r = parse_options(y, cfg);
	if (r == 0)
		r = yara_start(y, cfg);
	if (r < 0) {
		yara_close(y);
		return r;
	}
	*state = y;
	return 0;
}

static int yara_reload(void *state)
{
	struct yara *y = state;
	char err[PATH_MAX + 256] = "out of memory";
	struct yset *set;
	int r;

	pthread_mutex_lock(&y->reload_lock);
	r = set_build(y, &set, err, sizeof(err));
	if (r == 0)
		set_swap(y, set);
	pthread_mutex_unlock(&y->reload_lock);
	if (r < 0)
		y->host->log(EPSEC_LOG_ERR, SRC, "reload failed, keeping the rules in use: %s", err);
	else
		y->host->log(EPSEC_LOG_INFO, SRC, "reloaded: %u rules (generation %u)",
			     set->n_rules, set->generation);
	return r;
}

static int yara_signatures(void *state, char *buf, size_t len)
{
	struct yara *y = state;
	unsigned rules, gen;
	size_t sets;
	char loaded[32];
	struct tm tm;
	time_t t;

	pthread_mutex_lock(&y->lock);
	rules = y->set->n_rules;
	sets = y->set->n;
	gen = y->set->generation;
	t = y->set->loaded;
	pthread_mutex_unlock(&y->lock);
	strftime(loaded, sizeof(loaded), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	snprintf(buf, len, "%u rules in %zu set%s, generation %u, loaded %s (libyara %s)", rules,
		 sets, sets == 1 ? "" : "s", gen, loaded, YR_VERSION);
	return 0;
}

extern const struct epsec_verdict_plugin epsec_verdict_plugin;

const struct epsec_verdict_plugin epsec_verdict_plugin = {
	.abi_major = EPSEC_VERDICT_ABI_MAJOR,
	.abi_minor = EPSEC_VERDICT_ABI_MINOR,
	.struct_size = sizeof(struct epsec_verdict_plugin),
	.name = "yara",
	.version = "libyara " YR_VERSION,
	.open = yara_open,
	.scan = yara_scan,
	.reload = yara_reload,
	.signatures = yara_signatures,
	.close = yara_close,
};
