/* SPDX-License-Identifier: MIT */
/* libcore/loader.c against real shared objects built beside this test:
 * one good plugin, and one for each way a descriptor must be refused,
 * with the exact line the operator reads. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host.h"
#include "loader.h"
#include "log.h"

#ifndef TEST_PLUGIN_DIR
#error "TEST_PLUGIN_DIR must name the directory holding the test plugins"
#endif

#define MAX_LINES 16
static char lines[MAX_LINES][2048];
static int nlines;

static int capture(int level, const char *src, const char *line)
{
	if (level <= EPSEC_LOG_ERR && nlines < MAX_LINES)
		snprintf(lines[nlines++], sizeof(lines[0]), "%s", line);
	return 0;
}

static int group_setup(void **state)
{
	epsec_log_open("test_loader", EPSEC_DEST_HOST, EPSEC_LOG_DEBUG);
	epsec_log_set_forward(capture);
	epsec_host_init("test_loader");
	return epsec_loader_init(TEST_PLUGIN_DIR);
}

static int group_teardown(void **state)
{
	epsec_loader_exit();
	return 0;
}

static int reset(void **state)
{
	nlines = 0;
	return 0;
}

static void assert_only_line(const char *want)
{
	assert_int_equal(nlines, 1);
	assert_string_equal(lines[0], want);
}

/* ------------------------------------------------------------ a file to scan */

struct memfile {
	struct epsec_file file;
	const char *data;
	size_t len;
	bool fail;
};

static ssize_t mem_pread(struct epsec_file *file, void *buf, size_t len, uint64_t off)
{
	struct memfile *m = (struct memfile *)file;

	if (m->fail)
		return -EIO;
	if (off >= m->len)
		return 0;
	if (len > m->len - off)
		len = m->len - (size_t)off;
	memcpy(buf, m->data + off, len);
	return (ssize_t)len;
}

static enum epsec_scan_result scan_text(const struct epsec_verdict_plugin *p, void *st,
					const char *text, bool fail, char *sig)
{
	struct memfile m = {
		.file = { .path = "/mem", .exe = "", .size = strlen(text), .pread = mem_pread },
		.data = text,
		.len = strlen(text),
		.fail = fail,
	};
	struct epsec_scan_report report = { { 0 } };
	enum epsec_scan_result r = p->scan(st, &m.file, &report);

	strcpy(sig, report.signature);
	return r;
}

/* ------------------------------------------------------------ tests */

static void good_plugin_scans(void **state)
{
	const struct epsec_verdict_plugin *p = NULL, *again = NULL;
	char sig[EPSEC_SIGNATURE_MAX];
	void *st = NULL;

	assert_int_equal(epsec_loader_verdict("good", &p), 0);
	assert_int_equal(nlines, 0);
	assert_string_equal(p->name, "good");
	assert_int_equal(p->open(epsec_host_get(), NULL, &st), 0);
	assert_int_equal(scan_text(p, st, "hello, clean world", false, sig), EPSEC_SCAN_CLEAN);
	assert_int_equal(scan_text(p, st, "xx BAD-MARKER yy", false, sig), EPSEC_SCAN_FOUND);
	assert_string_equal(sig, "Test.Marker");
	assert_int_equal(scan_text(p, st, "whatever", true, sig), EPSEC_SCAN_ERROR);
	p->close(st);

	/* A path works too, and names the same loaded object. */
	assert_int_equal(epsec_loader_verdict(TEST_PLUGIN_DIR "/good.la", &again), 0);
	assert_ptr_equal(again, p);
	assert_int_equal(epsec_loader_verdict(TEST_PLUGIN_DIR "/good", &again), 0);
	assert_ptr_equal(again, p);
}

#define STR(x) #x
#define XSTR(x) STR(x)
/* The host's own verdict ABI, as the loader's messages spell it. */
#define HOST_VERDICT_ABI XSTR(EPSEC_VERDICT_ABI_MAJOR) "." XSTR(EPSEC_VERDICT_ABI_MINOR)

static void wrong_major_refused(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;

	assert_int_equal(epsec_loader_verdict("wrong_major", &p), -EPROTO);
	assert_null(p);
	assert_only_line(TEST_PLUGIN_DIR "/wrong_major.la: verdict plugin ABI 2.0 refused: "
			 "this epsec speaks " HOST_VERDICT_ABI " (major versions must match)");
}

static void newer_minor_refused(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;

	assert_int_equal(epsec_loader_verdict("newer_minor", &p), -EPROTO);
	assert_null(p);
	assert_only_line(TEST_PLUGIN_DIR "/newer_minor.la: verdict plugin ABI 1.3 refused: "
			 "newer than this epsec's " HOST_VERDICT_ABI);
}

static void short_struct_refused(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;
	char want[512];

	assert_int_equal(epsec_loader_verdict("short_struct", &p), -EPROTO);
	assert_null(p);
	snprintf(want, sizeof(want),
		 TEST_PLUGIN_DIR "/short_struct.la: verdict plugin ABI 1.0 refused: "
		 "descriptor is 16 bytes, ABI 1.0 needs %zu",
		 sizeof(struct epsec_verdict_plugin));
	assert_only_line(want);
}

static void missing_symbol_refused(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;

	assert_int_equal(epsec_loader_verdict("no_symbol", &p), -ENOEXEC);
	assert_null(p);
	assert_only_line(TEST_PLUGIN_DIR "/no_symbol.la: not an epsec verdict plugin "
			 "(no symbol epsec_verdict_plugin)");

	/* A transport is not a verdict plugin either. */
	nlines = 0;
	assert_int_equal(epsec_loader_verdict("epsectest", &p), -ENOEXEC);
	assert_only_line(TEST_PLUGIN_DIR "/epsectest.la: not an epsec verdict plugin "
			 "(no symbol epsec_verdict_plugin)");
}

static void null_op_refused(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;

	assert_int_equal(epsec_loader_verdict("null_ops", &p), -EPROTO);
	assert_null(p);
	assert_only_line(TEST_PLUGIN_DIR "/null_ops.la: verdict plugin refused: descriptor has no scan");
}

static void not_found(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;

	assert_int_equal(epsec_loader_verdict("nothere", &p), -ENOENT);
	assert_null(p);
	assert_int_equal(nlines, 1);
	assert_non_null(strstr(lines[0], "verdict plugin \"nothere\" not found (searched "));
	assert_non_null(strstr(lines[0], TEST_PLUGIN_DIR "/plugins:" TEST_PLUGIN_DIR ")"));

	nlines = 0;
	assert_int_equal(epsec_loader_verdict("/no/such/dir/x", &p), -ENOENT);
	assert_only_line("verdict plugin \"/no/such/dir/x\" not found (searched /no/such/dir/x)");
}

/* A file that is there but is no shared object. */
static void garbage_refused(void **state)
{
	char dir[] = "/tmp/test_loader.XXXXXX", file[PATH_MAX], want[PATH_MAX + 64];
	const struct epsec_verdict_plugin *p = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/junk.so", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	assert_int_equal(epsec_loader_verdict(file, &p), -ENOEXEC);
	assert_int_equal(nlines, 1);
	snprintf(want, sizeof(want), "%s: cannot load: ", file);
	assert_ptr_equal(strstr(lines[0], want), lines[0]);
	unlink(file);
	rmdir(dir);
}

static void abi_rule(void **state)
{
	static const struct {
		uint32_t major, minor, size, host_major, host_minor;
		size_t needed;
		int want;
	} rows[] = {
		{ 1, 0, 72, 1, 0, 72, 0 },
		{ 1, 0, 80, 1, 0, 72, 0 },        /* bigger is fine */
		{ 1, 0, 71, 1, 0, 72, -EPROTO },  /* short */
		{ 1, 0, 16, 1, 0, 72, -EPROTO },
		{ 1, 1, 72, 1, 0, 72, -EPROTO },  /* newer minor */
		{ 1, 0, 72, 1, 3, 72, 0 },        /* older minor */
		{ 1, 2, 96, 1, 3, 96, 0 },
		{ 1, 3, 100, 1, 3, 96, 0 },
		{ 2, 0, 72, 1, 0, 72, -EPROTO },  /* newer major */
		{ 0, 9, 72, 1, 0, 72, -EPROTO },  /* older major */
		{ 2, 0, 72, 2, 5, 72, 0 },
		{ 0, 0, 0, 0, 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int got = epsec_abi_check(rows[i].major, rows[i].minor, rows[i].size,
					  rows[i].host_major, rows[i].host_minor, rows[i].needed);

		if (got != rows[i].want)
			fail_msg("row %zu: %u.%u/%u on host %u.%u needing %zu: got %d, want %d", i,
				 rows[i].major, rows[i].minor, rows[i].size, rows[i].host_major,
				 rows[i].host_minor, rows[i].needed, got, rows[i].want);
	}
	assert_int_equal(nlines, 0); /* pure: it logs nothing */
}

static void transport_by_scheme(void **state)
{
	const struct epsec_transport_plugin *t = NULL, *again = NULL;
	struct epsec_link *link = NULL;

	assert_int_equal(epsec_loader_transport("epsectest", &t), 0);
	assert_int_equal(nlines, 0);
	assert_string_equal(t->scheme, "epsectest");
	assert_int_equal(t->connect(epsec_host_get(), "x", NULL, &link), -ECONNREFUSED);
	assert_int_equal(epsec_loader_transport("epsectest", &again), 0);
	assert_ptr_equal(again, t); /* cached */

	/* The same object under another scheme's file name. */
	t = NULL;
	assert_int_equal(epsec_loader_transport("otherscheme", &t), -EPROTO);
	assert_null(t);
	assert_only_line(TEST_PLUGIN_DIR "/otherscheme.la: transport plugin refused: "
			 "it serves epsectest://, not otherscheme://");

	nlines = 0;
	assert_int_equal(epsec_loader_transport("nosuchscheme", &t), -ENOENT);
	assert_int_equal(nlines, 1);
	assert_non_null(strstr(lines[0], "transport plugin \"nosuchscheme\" not found"));

	nlines = 0;
	assert_int_equal(epsec_loader_transport("../good", &t), -EINVAL);
	assert_int_equal(epsec_loader_transport("", &t), -EINVAL);
	assert_null(t);
}

/* $EPSEC_PLUGIN_PATH comes before plugin_dir. */
static void plugin_path_env(void **state)
{
	const struct epsec_verdict_plugin *p = NULL;

	setenv(EPSEC_PLUGIN_PATH_ENV, "/nonexistent:" TEST_PLUGIN_DIR, 1);
	assert_int_equal(epsec_loader_init("/also/nonexistent"), 0);
	assert_int_equal(epsec_loader_verdict("good", &p), 0);
	assert_string_equal(p->name, "good");
	assert_int_equal(epsec_loader_verdict("nothere", &p), -ENOENT);
	assert_non_null(strstr(lines[0], "(searched /nonexistent:" TEST_PLUGIN_DIR
				      ":/also/nonexistent/transports:/also/nonexistent/plugins:"
				      "/also/nonexistent)"));

	unsetenv(EPSEC_PLUGIN_PATH_ENV);
	assert_int_equal(epsec_loader_init("/also/nonexistent"), 0);
	nlines = 0;
	assert_int_equal(epsec_loader_verdict("newer_minor", &p), -ENOENT);
	assert_int_equal(epsec_loader_init(TEST_PLUGIN_DIR), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(good_plugin_scans, reset),
		cmocka_unit_test_setup(wrong_major_refused, reset),
		cmocka_unit_test_setup(newer_minor_refused, reset),
		cmocka_unit_test_setup(short_struct_refused, reset),
		cmocka_unit_test_setup(missing_symbol_refused, reset),
		cmocka_unit_test_setup(null_op_refused, reset),
		cmocka_unit_test_setup(not_found, reset),
		cmocka_unit_test_setup(garbage_refused, reset),
		cmocka_unit_test_setup(abi_rule, reset),
		cmocka_unit_test_setup(transport_by_scheme, reset),
		cmocka_unit_test_setup(plugin_path_env, reset),
	};

	/* make check points this at the real plugins; this test wants only
	 * its own directory on the path. */
	unsetenv(EPSEC_PLUGIN_PATH_ENV);
	return cmocka_run_group_tests_name("loader", tests, group_setup, group_teardown);
}
