/* The YARA engine: rule files and directories (source or precompiled)
 * compiled into one shared set, a YR_SCANNER per scanning thread, content
 * read through epsec_file->pread. Reload compiles a new set beside the one
 * in use; threads move to it at their next scan, and the old set is freed
 * when the last thread lets go of it. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
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
};

struct yara {
	const struct epsec_host *host;
	char **paths; /* rule files or directories: one block, from host->conf_strlist */
	size_t n_paths;
	int compiled; /* -1: detect, 0: sources, 1: precompiled */
	int timeout;
	long long whole_max;

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
		    config_setting_get_int64(s) <= INT_MAX)
			y->timeout = (int)config_setting_get_int64(s);
		else
			ret = y->host->conf_error(s, "expected seconds (0 = no limit)");
	}
	if ((s = config_setting_get_member(cfg, "whole_file_max")) && parse_whole_max(y, s) < 0)
		ret = -EINVAL;
	return ret;
}

static int parse_options(struct yara *y, const config_setting_t *cfg)
{
	static const char *const keys[] = { "rules", "compiled", "timeout", "whole_file_max",
					    NULL };
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

/* A directory's *.yar and *.yara are sources, *.yarc precompiled; other
 * names are left alone (files meant only for `include` live among them). */
static int list_dir(struct yara *y, const char *dir, struct ylist *l, char *err, size_t len)
{
	struct dirent **ents;
	char path[PATH_MAX];
	int n, r = 0;

	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		snprintf(err, len, "cannot read %s: %s", dir, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		bool src = ends_with(name, ".yar") || ends_with(name, ".yara");
		bool bin = ends_with(name, ".yarc");

		if (r == 0 && (src || bin)) {
			snprintf(path, sizeof(path), "%s/%s", dir, name);
			r = list_add(l, path, y->compiled == 1 || (y->compiled == -1 && bin));
		}
		free(ents[i]);
	}
	free(ents);
	return r;
}

static int list_files(struct yara *y, struct ylist *l, char *err, size_t len)
{
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
		r = S_ISDIR(st.st_mode) ? list_dir(y, y->paths[i], l, err, len)
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
	unsigned errors;
};

/* Every compiler message names the file and line: rule authors fix them. */
static void on_compile_msg(int level, const char *file, int line, const YR_RULE *rule,
			   const char *msg, void *ud)
{
	struct ycompile *cc = ud;
	bool error = level == YARA_ERROR_LEVEL_ERROR;

	if (error)
		cc->errors++;
	cc->y->host->log(error ? EPSEC_LOG_ERR : EPSEC_LOG_WARNING, SRC, "%s:%d: %s: %s",
			 file ? file : "(rules)", line, error ? "error" : "warning", msg);
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

static int add_source(YR_COMPILER *comp, struct ycompile *cc, const char *path, char *err,
		      size_t len)
{
	FILE *f = fopen(path, "r");
	int n;

	if (!f) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -errno;
	}
	/* The file name makes includes resolve beside the including file. */
	n = yr_compiler_add_file(comp, f, NULL, path);
	fclose(f);
	if (n > 0 || cc->errors) {
		snprintf(err, len, "%s does not compile (%u error%s, see above)", path,
			 cc->errors ? cc->errors : (unsigned)n, cc->errors == 1 ? "" : "s");
		return -EINVAL;
	}
	return 0;
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
	struct ycompile cc = { .y = y };
	YR_COMPILER *comp = NULL;
	YR_RULES *rules;
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; i < l->n; i++)
		n += source[i];
	if (n == 0)
		return 0;
	if (yr_compiler_create(&comp) != ERROR_SUCCESS) {
		snprintf(err, len, "cannot create a YARA compiler");
		return -ENOMEM;
	}
	yr_compiler_set_callback(comp, on_compile_msg, &cc);
	for (size_t i = 0; i < l->n && r == 0; i++)
		if (source[i])
			r = add_source(comp, &cc, l->v[i].path, err, len);
	if (r == 0 && yr_compiler_get_rules(comp, &rules) != ERROR_SUCCESS) {
		snprintf(err, len, "cannot build the compiled rules");
		r = -ENOMEM;
	}
	if (r == 0)
		r = set_add_rules(set, rules);
	yr_compiler_destroy(comp);
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
		/* Matching rules only; data is ours, in memory: no fault guard. */
		yr_scanner_set_flags(t->sc[i],
				     SCAN_FLAGS_REPORT_RULES_MATCHING | SCAN_FLAGS_NO_TRYCATCH);
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

struct yscan {
	struct epsec_file *file;
	/* Block iterator's buffers. The first block has its own: modules (pe,
	 * elf) parse it once and keep pointers into it while conditions
	 * fetch other blocks. */
	uint8_t *buf0, *buf;
	YR_MEMORY_BLOCK block;
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

	if (s->block.base + s->block.size >= s->file->size)
		return NULL;
	return block_at(it, s->block.base + BLOCK_SIZE - BLOCK_OVERLAP);
}

static const uint8_t *block_fetch(YR_MEMORY_BLOCK *block)
{
	struct yscan *s = block->context;
	uint8_t *buf = block->base == 0 ? s->buf0 : s->buf;
	ssize_t n = read_range(s, buf, block->size, block->base);

	return n == (ssize_t)block->size ? buf : NULL;
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
	return yr_scanner_scan_mem_blocks(sc, &it);
}

/* Each rule set in turn until one matches. */
static int scan_sets(struct ytls *t, struct yscan *s, const uint8_t *data, size_t len)
{
	int r = ERROR_SUCCESS;

	for (size_t i = 0; i < t->set->n && !s->found; i++) {
		yr_scanner_set_callback(t->sc[i], on_scan_msg, s);
		r = data ? yr_scanner_scan_mem(t->sc[i], data, len) : scan_blocks(s, t->sc[i]);
		if (r != ERROR_SUCCESS && !s->found)
			return r;
	}
	return ERROR_SUCCESS;
}

/* Whole file in memory (as the yara command scans), the buffer kept for
 * the thread's next scan when it is small. */
static int scan_whole(struct ytls *t, struct yscan *s, size_t size)
{
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
	r = n < 0 ? ERROR_COULD_NOT_READ_FILE : scan_sets(t, s, buf, (size_t)n);
	if (buf != t->buf)
		free(buf);
	return r;
}

static int scan_large(struct ytls *t, struct yscan *s)
{
	int r;

	s->buf0 = malloc(BLOCK_SIZE);
	s->buf = malloc(BLOCK_SIZE);
	r = s->buf0 && s->buf ? scan_sets(t, s, NULL, 0) : ERROR_INSUFFICIENT_MEMORY;
	free(s->buf0);
	free(s->buf);
	return r;
}

static enum epsec_scan_result yara_scan(void *state, struct epsec_file *file,
					struct epsec_scan_report *rep)
{
	struct yscan s = { .file = file };
	struct yara *y = state;
	struct ytls *t = tls_current(y);
	int r;

	if (!t) {
		snprintf(rep->signature, sizeof(rep->signature), "no YARA scanner for this thread");
		return EPSEC_SCAN_ERROR;
	}
	if ((long long)file->size <= y->whole_max)
		r = scan_whole(t, &s, (size_t)file->size);
	else
		r = scan_large(t, &s);
	if (s.found) {
		snprintf(rep->signature, sizeof(rep->signature), "%s", s.name);
		return EPSEC_SCAN_FOUND;
	}
	if (s.read_errno)
		snprintf(rep->signature, sizeof(rep->signature), "read failed: %s",
			 strerror(s.read_errno));
	else if (r == ERROR_SCAN_TIMEOUT)
		snprintf(rep->signature, sizeof(rep->signature), "YARA scan timed out after %d s",
			 y->timeout);
	else if (r != ERROR_SUCCESS)
		snprintf(rep->signature, sizeof(rep->signature), "YARA error %d", r);
	else
		return EPSEC_SCAN_CLEAN;
	return EPSEC_SCAN_ERROR;
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
