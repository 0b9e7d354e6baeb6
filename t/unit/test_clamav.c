/* SPDX-License-Identifier: MIT */
/* The clamav verdict plugin through the real loader, with real libclamav
 * and databases written here at run time (hash and body signatures for
 * files built in memory; EICAR joined from pieces), plus Debian's
 * clamav-testfiles when installed. Reload is exercised under load. */
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
#include <clamav.h>

#include <epsec/plugin.h>
#include "loader.h"
#include "engine_util.h"

#define NDB_MARKER "EPSEC-NDB-MARKER-0123456789"
#define TESTFILES "/usr/share/clamav-testfiles"

static void *state;
static char eicar[69];
static unsigned char *blob, *marked, *later; /* 300 KiB: clean, NDB marker, reload target */
#define BLOB_LEN (300u * 1024u)

static void md5_line(char *out, size_t len, const void *data, size_t n, const char *name)
{
	unsigned char md[16];
	unsigned int mdlen = sizeof(md);
	char hex[33];

	cl_hash_data("md5", data, n, md, &mdlen);
	for (int i = 0; i < 16; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	snprintf(out, len, "%s:%zu:%s\n", hex, n, name);
}

static void hex_of(char *out, const char *s)
{
	for (; *s; s++, out += 2)
		sprintf(out, "%02x", (unsigned char)*s);
}

static int write_dbs(void)
{
	char line[256], hex[128];

	md5_line(line, sizeof(line), eicar, 68, "Epsec.Test.EICAR");
	if (write_text(dir, "test.hdb", line) < 0)
		return -1;
	hex_of(hex, NDB_MARKER);
	snprintf(line, sizeof(line), "Epsec.Test.NDB:0:*:%s\n", hex);
	return write_text(dir, "test.ndb", line);
}

static int group_setup(void **st)
{
	int r = engine_setup("clamav");

	if (r < 0)
		return r;
	eicar_build(eicar);
	blob = malloc(BLOB_LEN);
	marked = malloc(BLOB_LEN);
	later = malloc(BLOB_LEN);
	if (!blob || !marked || !later)
		return -1;
	fill_random(blob, BLOB_LEN, 1);
	fill_random(marked, BLOB_LEN, 2);
	memcpy(marked + 200000, NDB_MARKER, strlen(NDB_MARKER));
	fill_random(later, BLOB_LEN, 3);
	if (write_dbs() < 0)
		return -1;
	return open_opts(plugin, &state, "options = { database = \"%s\"; };", dir);
}

static int group_teardown(void **st)
{
	if (plugin && state)
		plugin->close(state);
	engine_teardown();
	free(blob);
	free(marked);
	free(later);
	return 0;
}

static void test_descriptor(void **st)
{
	char line[512] = "";

	assert_string_equal(plugin->name, "clamav");
	assert_int_equal(plugin->abi_major, EPSEC_VERDICT_ABI_MAJOR);
	assert_non_null(plugin->reload);
	assert_int_equal(plugin->signatures(state, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "2 signatures"));
	assert_non_null(strstr(line, "db version"));
}

static void test_detects(void **st)
{
	struct epsec_scan_report rep;

	assert_int_equal(mem_scan(plugin, state, eicar, 68, &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "Epsec.Test.EICAR.UNOFFICIAL");
	assert_int_equal(mem_scan(plugin, state, marked, BLOB_LEN, &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "Epsec.Test.NDB.UNOFFICIAL");
	assert_int_equal(mem_scan(plugin, state, blob, BLOB_LEN, &rep), EPSEC_SCAN_CLEAN);
	assert_int_equal(mem_scan(plugin, state, "", 0, &rep), EPSEC_SCAN_CLEAN);
	/* A hash signature is for whole files only. */
	assert_int_equal(mem_scan(plugin, state, eicar, 67, &rep), EPSEC_SCAN_CLEAN);
}

/* Content arrives only through pread, in whatever pieces it returns, and
 * nothing past the end is asked for. */
static void test_reads(void **st)
{
	struct epsec_scan_report rep;
	struct mem_file m;

	mem_init(&m, marked, BLOB_LEN);
	m.max_chunk = 1000;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_FOUND);
	assert_true(m.reads >= BLOB_LEN / 1000);
	assert_true(m.read_end <= BLOB_LEN);
}

static void test_read_error(void **st)
{
	struct epsec_scan_report rep;
	struct mem_file m;

	mem_init(&m, blob, BLOB_LEN);
	m.fail = EIO;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_ERROR);
	assert_non_null(strstr(rep.signature, "read failed"));
	/* Shorter than its size says: not all of it was seen, not clean. */
	mem_init(&m, blob, BLOB_LEN);
	m.len = BLOB_LEN / 2;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_ERROR);
	assert_non_null(strstr(rep.signature, "shrank"));
}

static void test_limits(void **st)
{
	struct epsec_scan_report rep;
	void *s2;

	/* Over max_file_size: skipped (clean), or an alert when asked. */
	assert_int_equal(open_opts(plugin, &s2, "options = { database = \"%s/test.ndb\"; "
				   "max_file_size = \"100K\"; };", dir), 0);
	assert_int_equal(mem_scan(plugin, s2, marked, BLOB_LEN, &rep), EPSEC_SCAN_CLEAN);
	plugin->close(s2);
	assert_int_equal(open_opts(plugin, &s2, "options = { database = \"%s/test.ndb\"; "
				   "max_file_size = 102400; heuristic_exceeds_max = true; "
				   "max_scan_size = \"1M\"; max_recursion = 5; max_files = 100; };",
				   dir), 0);
	assert_int_equal(mem_scan(plugin, s2, blob, BLOB_LEN, &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "Heuristics.Limits.Exceeded.MaxFileSize");
	plugin->close(s2);
}

static void test_database_list(void **st)
{
	char line[512];
	void *s2;

	assert_int_equal(open_opts(plugin, &s2, "options = { database = [ \"%s/test.hdb\", "
				   "\"%s/test.ndb\" ]; };", dir, dir), 0);
	assert_int_equal(plugin->signatures(s2, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "2 signatures"));
	plugin->close(s2);
}

static void test_bad_options(void **st)
{
	char missing[128], empty[128];

	snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	mkdir(empty, 0755);
	refused("needs options", "options = { max_files = 3; };");
	refused("database", "options = { max_files = 3; };");
	refused("nothing-here", "options = { database = \"%s\"; };", missing);
	refused("No such file", "options = { database = \"%s\"; };", missing);
	refused("empty", "options = { database = \"%s\"; };", empty);
	refused("speed", "options = { database = \"/x\"; %s = 1; };", "speed");
	refused("max_file_size", "options = { database = \"/x\"; max_file_size = \"%s\"; };", "10X");
	refused("max_recursion", "options = { database = \"/x\"; max_recursion = %s; };", "0");
	refused("max_scan_size", "options = { database = \"/x\"; max_scan_size = %s; };", "-1");
	refused("heuristic_exceeds_max",
		"options = { database = \"/x\"; heuristic_exceeds_max = \"%s\"; };", "yes");
	refused("database", "options = { database = %s; };", "5");
	refused("database", "options = { database = %s; };", "[]");
	/* host->conf_strlist's lines, naming what the strings are. */
	refused("database: expected a string or a list of strings (database files or directories)",
		"options = { database = %s; };", "5");
	refused("database: expected at least one string (database files or directories)",
		"options = { database = %s; };", "[]");
	refused("database[1]: expected a string (database files",
		"options = { database = ( \"%s\", 5 ); };", dir);
	refused("database: expected a non-empty string", "options = { database = \"%s\"; };", "");
}

/* A malformed database: the message names it, with libclamav's reason. */
static void test_bad_database(void **st)
{
	char bad[128];

	snprintf(bad, sizeof(bad), "%s/bad", dir);
	mkdir(bad, 0755);
	assert_int_equal(write_text(bad, "broken.ndb", "Only:a:few:fields:zz\n"), 0);
	refused("bad", "options = { database = \"%s\"; };", bad);
	refused("Malformed", "options = { database = \"%s/broken.ndb\"; };", bad);
}

static void test_reload(void **st)
{
	struct epsec_scan_report rep;
	char line[256];

	assert_int_equal(mem_scan(plugin, state, later, BLOB_LEN, &rep), EPSEC_SCAN_CLEAN);
	md5_line(line, sizeof(line), later, BLOB_LEN, "Epsec.Test.Later");
	assert_int_equal(write_text(dir, "later.hdb", line), 0);
	assert_int_equal(mem_scan(plugin, state, later, BLOB_LEN, &rep), EPSEC_SCAN_CLEAN);
	assert_int_equal(plugin->reload(state), 0);
	assert_int_equal(mem_scan(plugin, state, later, BLOB_LEN, &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "Epsec.Test.Later.UNOFFICIAL");
	assert_int_equal(plugin->signatures(state, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "3 signatures"));

	/* A broken database on reload: refused, the old engine stays. */
	assert_int_equal(write_text(dir, "zz-broken.ndb", "Only:a:few:fields:zz\n"), 0);
	capture_start();
	assert_true(plugin->reload(state) < 0);
	capture_stop();
	assert_true(captured_has("reload failed"));
	assert_int_equal(mem_scan(plugin, state, later, BLOB_LEN, &rep), EPSEC_SCAN_FOUND);
	assert_int_equal(mem_scan(plugin, state, eicar, 68, &rep), EPSEC_SCAN_FOUND);
	remove_file(dir, "zz-broken.ndb");
	remove_file(dir, "later.hdb");
	assert_int_equal(plugin->reload(state), 0);
	assert_int_equal(mem_scan(plugin, state, later, BLOB_LEN, &rep), EPSEC_SCAN_CLEAN);
}

/* ---------------------------------------------------------------- under load */

struct load {
	atomic_bool stop;
	atomic_uint scans, wrong;
};

static void *scanner_thread(void *arg)
{
	struct load *l = arg;
	struct epsec_scan_report rep;
	enum epsec_scan_result r;

	while (!atomic_load(&l->stop)) {
		r = mem_scan(plugin, state, eicar, 68, &rep);
		if (r != EPSEC_SCAN_FOUND || strcmp(rep.signature, "Epsec.Test.EICAR.UNOFFICIAL"))
			atomic_fetch_add(&l->wrong, 1);
		r = mem_scan(plugin, state, marked, BLOB_LEN, &rep);
		if (r != EPSEC_SCAN_FOUND)
			atomic_fetch_add(&l->wrong, 1);
		r = mem_scan(plugin, state, blob, 4096, &rep);
		if (r != EPSEC_SCAN_CLEAN)
			atomic_fetch_add(&l->wrong, 1);
		atomic_fetch_add(&l->scans, 3);
	}
	return NULL;
}

static void test_reload_under_load(void **st)
{
	struct load l = { .stop = false };
	pthread_t th[4];
	unsigned before;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, scanner_thread, &l), 0);
	for (int i = 0; i < 20; i++) {
		before = atomic_load(&l.scans);
		assert_int_equal(plugin->reload(state), 0);
		/* Scans went on during the reload. */
		while (atomic_load(&l.scans) < before + 6)
			usleep(1000);
	}
	atomic_store(&l.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "  %u scans during 20 reloads, %u wrong\n", atomic_load(&l.scans),
		atomic_load(&l.wrong));
	assert_int_equal(atomic_load(&l.wrong), 0);
	assert_true(atomic_load(&l.scans) >= 120);
}

/* ---------------------------------------------------------------- clamav-testfiles */

static unsigned char *slurp(const char *path, size_t *len)
{
	unsigned char *buf = NULL;
	struct stat sb;
	FILE *f = fopen(path, "rb");

	if (!f)
		return NULL;
	if (fstat(fileno(f), &sb) == 0 && (buf = malloc((size_t)sb.st_size + 1)))
		*len = fread(buf, 1, (size_t)sb.st_size, f);
	fclose(f);
	return buf;
}

/* Hash signatures apply to what libclamav extracts too: archives and
 * packed copies of clam.exe, read through pread like any file. */
static void test_clamav_testfiles(void **st)
{
	static const char *const files[] = { "clam.exe", "clam.zip", "clam.tar.gz", "clam.7z",
					     "clam.pdf", "clam-upx.exe", "clam.exe.bz2" };
	struct epsec_scan_report rep;
	unsigned char *data;
	char path[256];
	size_t len = 0;
	void *s2;

	if (access(TESTFILES "/clam.exe", R_OK) != 0)
		skip(); /* package clamav-testfiles not installed */
	assert_int_equal(write_text(dir, "testfiles.hdb",
				    "aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n"), 0);
	assert_int_equal(open_opts(plugin, &s2, "options = { database = \"%s/testfiles.hdb\"; };",
				   dir), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", TESTFILES, files[i]);
		data = slurp(path, &len);
		if (!data)
			continue;
		if (mem_scan(plugin, s2, data, len, &rep) != EPSEC_SCAN_FOUND)
			fail_msg("%s not detected", files[i]);
		assert_string_equal(rep.signature, "ClamAV-Test-File.UNOFFICIAL");
		free(data);
	}
	plugin->close(s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test(test_detects),
		cmocka_unit_test(test_reads),
		cmocka_unit_test(test_read_error),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_database_list),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_bad_database),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_reload_under_load),
		cmocka_unit_test(test_clamav_testfiles),
	};

	return cmocka_run_group_tests_name("clamav", tests, group_setup, group_teardown);
}
