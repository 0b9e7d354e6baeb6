/* SPDX-License-Identifier: MIT */
/* The yara verdict plugin through the real loader, with real libyara and
 * rules written here: text, hex, counted and positional strings, an
 * include, a private rule, precompiled rules, syntax errors (reported with
 * file and line), files scanned whole and in overlapping blocks, and
 * reload while threads scan. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <yara.h>

#include <epsec/plugin.h>
#include "loader.h"
#include "engine_util.h"

#define MIB (1u << 20)
#define BIG_LEN (3u * MIB)

static void *state; /* rules = DIR/main.yar, files read whole */
static void *blocks; /* the same rules, files over 64 KiB scanned in blocks */
static unsigned char *big;

static const char main_yar[] =
	"include \"inc/common.yar\"\n"
	"\n"
	"rule Str\n"
	"{\n"
	"  meta:\n"
	"    author = \"epsec\"\n"
	"    description = \"plain text marker\"\n"
	"  strings:\n"
	"    $a = \"EPSEC-YARA-TEXT\"\n"
	"  condition:\n"
	"    $a\n"
	"}\n"
	"\n"
	"rule Hex\n"
	"{\n"
	"  strings:\n"
	"    $h = { 45 50 53 45 43 ?? 48 45 58 [2-4] 21 }\n"
	"  condition:\n"
	"    $h\n"
	"}\n"
	"\n"
	"rule Counted\n"
	"{\n"
	"  strings:\n"
	"    $x = \"alpha-epsec\"\n"
	"    $y = \"beta-epsec\"\n"
	"  condition:\n"
	"    #x == 2 and $y\n"
	"}\n"
	"\n"
	"rule Header\n"
	"{\n"
	"  condition:\n"
	"    uint32(0) == 0x43535045 and filesize > 10\n"
	"}\n"
	"\n"
	"private rule Hidden\n"
	"{\n"
	"  strings:\n"
	"    $p = \"PRIVATE-EPSEC\"\n"
	"  condition:\n"
	"    $p\n"
	"}\n"
	"\n"
	"rule UsesHidden\n"
	"{\n"
	"  condition:\n"
	"    Hidden\n"
	"}\n";

static const char common_yar[] =
	"rule Included\n"
	"{\n"
	"  strings:\n"
	"    $i = \"INCLUDED-MARK\"\n"
	"  condition:\n"
	"    $i at 100\n"
	"}\n";

static int write_rules(void)
{
	char sub[128];

	snprintf(sub, sizeof(sub), "%s/inc", dir);
	if (mkdir(sub, 0755) < 0)
		return -1;
	if (write_text(dir, "main.yar", main_yar) < 0 || write_text(sub, "common.yar", common_yar) < 0)
		return -1;
	return 0;
}

static int group_setup(void **st)
{
	int r = engine_setup("yara");

	if (r < 0)
		return r;
	big = malloc(BIG_LEN);
	if (!big || write_rules() < 0)
		return -1;
	r = open_opts(plugin, &state, "options = { rules = \"%s/main.yar\"; };", dir);
	if (r == 0)
		r = open_opts(plugin, &blocks, "options = { rules = \"%s/main.yar\"; "
			      "whole_file_max = \"64K\"; timeout = 30; };", dir);
	return r;
}

static int group_teardown(void **st)
{
	if (blocks)
		plugin->close(blocks);
	if (state)
		plugin->close(state);
	engine_teardown();
	free(big);
	return 0;
}

/* Scans with both instances: the verdict must not depend on the mode. */
static void expect(const void *data, size_t len, const char *signature)
{
	struct epsec_scan_report rep;
	void *states[] = { state, blocks };

	for (int i = 0; i < 2; i++) {
		enum epsec_scan_result r = mem_scan(plugin, states[i], data, len, &rep);

		if (!signature) {
			if (r != EPSEC_SCAN_CLEAN)
				fail_msg("%s mode: expected clean, got %d (%s)", i ? "block" : "whole",
					 r, rep.signature);
			continue;
		}
		if (r != EPSEC_SCAN_FOUND || strcmp(rep.signature, signature) != 0)
			fail_msg("%s mode: expected %s, got %d (%s)", i ? "block" : "whole",
				 signature, r, rep.signature);
	}
}

/* `big` filled with clean bytes, then `s` placed at each offset given. */
static void big_with(const char *s, size_t n, const size_t *offs)
{
	fill_random(big, BIG_LEN, 7);
	for (size_t i = 0; i < n; i++)
		memcpy(big + offs[i], s, strlen(s));
}

static void test_descriptor(void **st)
{
	char line[512] = "";

	assert_string_equal(plugin->name, "yara");
	assert_non_null(plugin->reload);
	assert_int_equal(plugin->signatures(state, line, sizeof(line)), 0);
	/* Str, Hex, Counted, Header, Hidden, UsesHidden, Included. */
	assert_non_null(strstr(line, "7 rules in 1 set"));
	assert_non_null(strstr(line, "generation 1"));
}

static void test_small_files(void **st)
{
	unsigned char buf[4096];

	fill_random(buf, sizeof(buf), 11);
	expect(buf, sizeof(buf), NULL);
	memcpy(buf + 3000, "EPSEC-YARA-TEXT", 15);
	expect(buf, sizeof(buf), "YARA.Str (plain text marker)");
	fill_random(buf, sizeof(buf), 11);
	memcpy(buf + 50, "EPSEC_HEX12!", 12);
	expect(buf, sizeof(buf), "YARA.Hex");
	memcpy(buf + 50, "EPSEC_HEX12345!", 15); /* jump of 5: too far */
	expect(buf, sizeof(buf), NULL);
	fill_random(buf, sizeof(buf), 11);
	memcpy(buf + 10, "beta-epsec", 10);
	memcpy(buf + 500, "alpha-epsec", 11);
	expect(buf, sizeof(buf), NULL); /* one alpha: #x == 2 is false */
	memcpy(buf + 900, "alpha-epsec", 11);
	expect(buf, sizeof(buf), "YARA.Counted");
	memcpy(buf + 1900, "alpha-epsec", 11);
	expect(buf, sizeof(buf), NULL); /* three */
	expect("", 0, NULL);
}

static void test_conditions_and_include(void **st)
{
	unsigned char buf[4096];

	fill_random(buf, sizeof(buf), 12);
	memcpy(buf, "EPSC", 4);
	expect(buf, sizeof(buf), "YARA.Header");
	expect(buf, 8, NULL); /* filesize > 10 fails */
	fill_random(buf, sizeof(buf), 12);
	memcpy(buf + 100, "INCLUDED-MARK", 13);
	expect(buf, sizeof(buf), "YARA.Included");
	fill_random(buf, sizeof(buf), 12);
	memcpy(buf + 101, "INCLUDED-MARK", 13);
	expect(buf, sizeof(buf), NULL);
	/* A private rule is never the signature; the rule using it is. */
	fill_random(buf, sizeof(buf), 12);
	memcpy(buf + 7, "PRIVATE-EPSEC", 13);
	expect(buf, sizeof(buf), "YARA.UsesHidden");
}

/* Over whole_file_max: blocks of 1 MiB overlapping by 64 KiB. Strings
 * straddling a block end, counted in an overlap, positional conditions and
 * uint32() on the first block all still hold. */
static void test_blocks(void **st)
{
	struct epsec_scan_report rep;
	struct mem_file m;
	size_t at[3] = { 0 };

	big_with("x", 0, at);
	expect(big, BIG_LEN, NULL);
	at[0] = MIB - 7;
	big_with("EPSEC-YARA-TEXT", 1, at);
	expect(big, BIG_LEN, "YARA.Str (plain text marker)");
	at[0] = 2 * MIB - (64u << 10) - 5; /* across the start of block 2 */
	big_with("EPSEC-YARA-TEXT", 1, at);
	expect(big, BIG_LEN, "YARA.Str (plain text marker)");
	at[0] = BIG_LEN - 15;
	big_with("EPSEC-YARA-TEXT", 1, at);
	expect(big, BIG_LEN, "YARA.Str (plain text marker)");
	at[0] = MIB - 1000; /* inside the overlap: seen by two blocks, counted once */
	at[1] = 2 * MIB + MIB / 2;
	at[2] = 10;
	big_with("alpha-epsec", 2, at);
	memcpy(big + 10, "beta-epsec", 10);
	expect(big, BIG_LEN, "YARA.Counted");
	big_with("x", 0, at);
	memcpy(big, "EPSC", 4);
	expect(big, BIG_LEN, "YARA.Header");
	/* Large files are read in pieces, never past the end. */
	big_with("x", 0, at);
	mem_init(&m, big, BIG_LEN);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(blocks, &m.f, &rep), EPSEC_SCAN_CLEAN);
	assert_true(m.read_end <= BIG_LEN);
	assert_true(m.reads >= 3);
}

static void test_reads(void **st)
{
	struct epsec_scan_report rep;
	unsigned char buf[20000];
	struct mem_file m;

	fill_random(buf, sizeof(buf), 13);
	memcpy(buf + 15000, "EPSEC-YARA-TEXT", 15);
	mem_init(&m, buf, sizeof(buf));
	m.max_chunk = 333;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_FOUND);
	mem_init(&m, buf, sizeof(buf));
	m.fail = EIO;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_ERROR);
	assert_non_null(strstr(rep.signature, "read failed"));
	mem_init(&m, big, BIG_LEN);
	m.fail = EIO;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(blocks, &m.f, &rep), EPSEC_SCAN_ERROR);
}

static void test_bad_options(void **st)
{
	refused("needs options", "options = { timeout = 3; };");
	refused("rules", "options = { rules = 3; };");
	refused("rules", "options = { rules = []; };");
	/* host->conf_strlist's lines, naming what the strings are. */
	refused("rules: expected a string or a list of strings (rule files or directories)",
		"options = { rules = 3; };");
	refused("rules: expected at least one string (rule files or directories)",
		"options = { rules = []; };");
	refused("rules[0]: expected a non-empty string (rule files or directories)",
		"options = { rules = [ \"\", \"%s/main.yar\" ]; };", dir);
	refused("rules[1]: expected a string", "options = { rules = ( \"%s/main.yar\", true ); };",
		dir);
	refused("nope", "options = { rules = \"%s/nope.yar\"; };", dir);
	refused("fast", "options = { rules = \"%s/main.yar\"; fast = true; };", dir);
	refused("timeout", "options = { rules = \"%s/main.yar\"; timeout = -1; };", dir);
	refused("whole_file_max", "options = { rules = \"%s/main.yar\"; whole_file_max = \"1Q\"; };",
		dir);
	refused("compiled", "options = { rules = \"%s/main.yar\"; compiled = 1; };", dir);
	refused("inc", "options = { rules = \"%s/inc/none\"; };", dir);
}

/* Syntax errors name the file and line, also inside an included file. */
static void test_syntax_errors(void **st)
{
	char sub[128];

	assert_int_equal(write_text(dir, "bad.yar", "rule Bad\n{\n  strings: $a = \"x\"\n"
				    "  condition: $a and and\n}\n"), 0);
	refused("bad.yar:4: error", "options = { rules = \"%s/bad.yar\"; };", dir);
	snprintf(sub, sizeof(sub), "%s/inc", dir);
	assert_int_equal(write_text(sub, "broken.yar", "rule Broken\n{ condition: nothing_here }\n"),
			 0);
	assert_int_equal(write_text(dir, "badinc.yar", "include \"inc/broken.yar\"\n"), 0);
	refused("inc/broken.yar:2: error", "options = { rules = \"%s/badinc.yar\"; };", dir);
	refused("badinc.yar does not compile", "options = { rules = \"%s/badinc.yar\"; };", dir);
	/* Two files defining the same rule. */
	refused("duplicated", "options = { rules = [ \"%s/main.yar\", \"%s/main.yar\" ]; };", dir,
		dir);
	remove_file(dir, "bad.yar");
	remove_file(dir, "badinc.yar");
}

static int save_compiled(const char *path, const char *source)
{
	YR_COMPILER *c = NULL;
	YR_RULES *rules = NULL;
	int r = -1;

	if (yr_initialize() != ERROR_SUCCESS)
		return -1;
	if (yr_compiler_create(&c) == ERROR_SUCCESS && yr_compiler_add_string(c, source, NULL) == 0 &&
	    yr_compiler_get_rules(c, &rules) == ERROR_SUCCESS)
		r = yr_rules_save(rules, path) == ERROR_SUCCESS ? 0 : -1;
	if (rules)
		yr_rules_destroy(rules);
	if (c)
		yr_compiler_destroy(c);
	yr_finalize();
	return r;
}

static void test_compiled(void **st)
{
	struct epsec_scan_report rep;
	unsigned char buf[1000];
	char path[128], line[512];
	void *s2;

	snprintf(path, sizeof(path), "%s/bin.yarc", dir);
	assert_int_equal(save_compiled(path, "rule Bin { strings: $b = \"EPSEC-COMPILED\" "
				       "condition: $b }"), 0);
	fill_random(buf, sizeof(buf), 14);
	memcpy(buf + 10, "EPSEC-COMPILED", 14);
	/* Detected as compiled, and said so. */
	assert_int_equal(open_opts(plugin, &s2, "options = { rules = \"%s\"; };", path), 0);
	assert_int_equal(mem_scan(plugin, s2, buf, sizeof(buf), &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "YARA.Bin");
	plugin->close(s2);
	assert_int_equal(open_opts(plugin, &s2, "options = { rules = \"%s\"; compiled = true; };",
				   path), 0);
	plugin->close(s2);
	/* Sources and a compiled file together: one set each. */
	assert_int_equal(open_opts(plugin, &s2, "options = { rules = [ \"%s/main.yar\", \"%s\" ]; };",
				   dir, path), 0);
	assert_int_equal(mem_scan(plugin, s2, buf, sizeof(buf), &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "YARA.Bin");
	memcpy(buf + 500, "EPSEC-YARA-TEXT", 15);
	assert_int_equal(mem_scan(plugin, s2, buf, sizeof(buf), &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "YARA.Str (plain text marker)"); /* sources first */
	assert_int_equal(plugin->signatures(s2, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "8 rules in 2 sets"));
	plugin->close(s2);
	refused("cannot load compiled rules", "options = { rules = \"%s/main.yar\"; compiled = true; };",
		dir);
	remove_file(dir, "bin.yarc");
}

/* ---------------------------------------------------------------- reload */

static const char reload_old[] = "rule Old { strings: $o = \"RELOAD-OLD\" condition: $o }\n";
static const char reload_new[] = "rule New { strings: $n = \"RELOAD-NEW\" condition: $n }\n";

static void test_reload(void **st)
{
	struct epsec_scan_report rep;
	char rdir[128], line[512];
	void *s2;

	snprintf(rdir, sizeof(rdir), "%s/reload", dir);
	assert_int_equal(mkdir(rdir, 0755), 0);
	assert_int_equal(write_text(rdir, "a.yar", reload_old), 0);
	assert_int_equal(write_text(rdir, "notes.txt", "not a rule file"), 0);
	assert_int_equal(open_opts(plugin, &s2, "options = { rules = \"%s\"; };", rdir), 0);
	assert_int_equal(mem_scan(plugin, s2, "xx RELOAD-OLD", 13, &rep), EPSEC_SCAN_FOUND);
	assert_int_equal(mem_scan(plugin, s2, "xx RELOAD-NEW", 13, &rep), EPSEC_SCAN_CLEAN);
	assert_int_equal(write_text(rdir, "b.yara", reload_new), 0);
	assert_int_equal(plugin->reload(s2), 0);
	assert_int_equal(mem_scan(plugin, s2, "xx RELOAD-NEW", 13, &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "YARA.New");
	assert_int_equal(plugin->signatures(s2, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "2 rules in 1 set, generation 2"));
	/* A broken file: reload refused with file:line, the rules in use stay. */
	assert_int_equal(write_text(rdir, "c.yar", "rule C {\n condition: ??\n}\n"), 0);
	capture_start();
	assert_true(plugin->reload(s2) < 0);
	capture_stop();
	assert_true(captured_has("c.yar:2: error"));
	assert_true(captured_has("reload failed"));
	assert_int_equal(mem_scan(plugin, s2, "xx RELOAD-NEW", 13, &rep), EPSEC_SCAN_FOUND);
	remove_file(rdir, "c.yar");
	plugin->close(s2);
}

struct load {
	void *state;
	atomic_bool stop;
	atomic_uint scans, wrong;
};

static void *scanner_thread(void *arg)
{
	struct load *l = arg;
	struct epsec_scan_report rep;
	unsigned char buf[8192];

	fill_random(buf, sizeof(buf), 15);
	memcpy(buf + 4000, "RELOAD-OLD", 10);
	while (!atomic_load(&l->stop)) {
		if (mem_scan(plugin, l->state, buf, sizeof(buf), &rep) != EPSEC_SCAN_FOUND ||
		    strcmp(rep.signature, "YARA.Old") != 0)
			atomic_fetch_add(&l->wrong, 1);
		if (mem_scan(plugin, l->state, buf, 3000, &rep) != EPSEC_SCAN_CLEAN)
			atomic_fetch_add(&l->wrong, 1);
		atomic_fetch_add(&l->scans, 2);
	}
	return NULL;
}

/* Threads end while holding scanners of old generations: they are freed
 * with the threads (the leak checker sees it). */
static void test_reload_under_load(void **st)
{
	struct load l = { .stop = false };
	char rdir[128], line[512];
	pthread_t th[4];
	unsigned before;

	snprintf(rdir, sizeof(rdir), "%s/reload", dir);
	assert_int_equal(open_opts(plugin, &l.state, "options = { rules = \"%s/a.yar\"; };", rdir),
			 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, scanner_thread, &l), 0);
	for (int i = 0; i < 20; i++) {
		before = atomic_load(&l.scans);
		assert_int_equal(plugin->reload(l.state), 0);
		while (atomic_load(&l.scans) < before + 8)
			usleep(1000);
	}
	atomic_store(&l.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "  %u scans during 20 reloads, %u wrong\n", atomic_load(&l.scans),
		atomic_load(&l.wrong));
	assert_int_equal(atomic_load(&l.wrong), 0);
	assert_int_equal(plugin->signatures(l.state, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "generation 21"));
	plugin->close(l.state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test(test_small_files),
		cmocka_unit_test(test_conditions_and_include),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_reads),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_compiled),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_reload_under_load),
	};

	return cmocka_run_group_tests_name("yara", tests, group_setup, group_teardown);
}
