/* SPDX-License-Identifier: MIT */
/* The eicar verdict plugin, loaded through the real loader from the build
 * tree ($EPSEC_PLUGIN_PATH), so its descriptor is checked as epsec-sva
 * checks it. Files are in memory; the EICAR string is built at run time. */
#include "config.h"

#include "engine_util.h"

#define EICAR_LEN 68

static void *state;
static char eicar[EICAR_LEN + 1];

static enum epsec_scan_result scan_buf(const void *data, size_t len, struct epsec_scan_report *rep)
{
	struct mem_file m;

	mem_init(&m, data, len);
	memset(rep, 0, sizeof(*rep));
	return plugin->scan(state, &m.f, rep);
}

/* EICAR followed by `pad` bytes of `c`, into buf; returns the length. */
static size_t eicar_padded(unsigned char *buf, size_t pad, int c)
{
	memcpy(buf, eicar, EICAR_LEN);
	memset(buf + EICAR_LEN, c, pad);
	return EICAR_LEN + pad;
}

static int group_setup(void **st)
{
	int r;

	/* Two pieces, joined here: never whole in the repository. */
	snprintf(eicar, sizeof(eicar), "%s%s", "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
		 "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
	if (strlen(eicar) != EICAR_LEN)
		return -1;
	if (!getenv(EPSEC_PLUGIN_PATH_ENV))
		fprintf(stderr, "warning: %s is not set; the installed eicar may be used\n",
			EPSEC_PLUGIN_PATH_ENV);
	r = engine_setup("eicar");
	if (r == 0)
		r = plugin->open(epsec_host_get(), NULL, &state);
	return r;
}

static int group_teardown(void **st)
{
	if (plugin && state)
		plugin->close(state);
	engine_teardown();
	return 0;
}

static void test_descriptor(void **st)
{
	char line[256] = "";

	assert_int_equal(plugin->abi_major, EPSEC_VERDICT_ABI_MAJOR);
	assert_true(plugin->abi_minor <= EPSEC_VERDICT_ABI_MINOR);
	assert_true(plugin->struct_size >= sizeof(struct epsec_verdict_plugin));
	assert_string_equal(plugin->name, "eicar");
	assert_non_null(plugin->version);
	assert_null(plugin->reload);
	assert_non_null(plugin->signatures);
	assert_int_equal(plugin->signatures(state, line, sizeof(line)), 0);
	assert_non_null(strstr(line, "EICAR-Test-File"));
}

static void test_exact(void **st)
{
	struct epsec_scan_report rep;
	struct mem_file m;

	mem_init(&m, eicar, EICAR_LEN);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_FOUND);
	assert_string_equal(rep.signature, "EICAR-Test-File");
	/* It asks for at most 129 bytes, however it splits its reads. */
	assert_true(m.read_end <= 129);
	assert_true(m.reads >= 1);
}

static void test_trailing_whitespace(void **st)
{
	static const int blanks[] = { ' ', '\t', '\r', '\n', 0x1a };
	unsigned char buf[256];
	struct epsec_scan_report rep;

	for (size_t i = 0; i < sizeof(blanks) / sizeof(blanks[0]); i++) {
		size_t n = eicar_padded(buf, 3, blanks[i]);

		assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_FOUND);
		assert_string_equal(rep.signature, "EICAR-Test-File");
	}
	memcpy(buf, eicar, EICAR_LEN);
	memcpy(buf + EICAR_LEN, "\r\n \t\x1a\n", 6);
	assert_int_equal(scan_buf(buf, EICAR_LEN + 6, &rep), EPSEC_SCAN_FOUND);
}

static void test_trailing_junk(void **st)
{
	unsigned char buf[256];
	struct epsec_scan_report rep;
	size_t n;

	n = eicar_padded(buf, 1, 'x');
	assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_CLEAN);
	n = eicar_padded(buf, 10, ' ');
	buf[n - 1] = 'A';
	assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_CLEAN);
	n = eicar_padded(buf, 1, '\0');
	assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_CLEAN);
	n = eicar_padded(buf, 1, '\v'); /* not in EICAR's whitespace list */
	assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_CLEAN);
}

static void test_not_at_offset_zero(void **st)
{
	unsigned char buf[256];
	struct epsec_scan_report rep;

	buf[0] = ' ';
	memcpy(buf + 1, eicar, EICAR_LEN);
	assert_int_equal(scan_buf(buf, EICAR_LEN + 1, &rep), EPSEC_SCAN_CLEAN);
	buf[0] = 'Z';
	assert_int_equal(scan_buf(buf, EICAR_LEN + 1, &rep), EPSEC_SCAN_CLEAN);
}

static void test_size_limit(void **st)
{
	unsigned char buf[256];
	struct epsec_scan_report rep;
	struct mem_file m;
	size_t n;

	n = eicar_padded(buf, 128 - EICAR_LEN, ' ');
	assert_int_equal(n, 128);
	assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_FOUND);
	n = eicar_padded(buf, 129 - EICAR_LEN, ' ');
	assert_int_equal(scan_buf(buf, n, &rep), EPSEC_SCAN_CLEAN);
	/* A size that understates the file: the 129th byte still counts. */
	mem_init(&m, buf, n);
	m.f.size = 100;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_CLEAN);
	assert_true(m.read_end <= 129);
}

static void test_large_file_not_read(void **st)
{
	unsigned char *big = calloc(1, 1 << 20);
	struct epsec_scan_report rep;
	struct mem_file m;

	assert_non_null(big);
	memcpy(big, eicar, EICAR_LEN);
	mem_init(&m, big, 1 << 20);
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_CLEAN);
	assert_int_equal(m.reads, 0);
	free(big);
}

static void test_truncated(void **st)
{
	struct epsec_scan_report rep;

	assert_int_equal(scan_buf(eicar, EICAR_LEN - 1, &rep), EPSEC_SCAN_CLEAN);
	assert_int_equal(scan_buf(eicar, 1, &rep), EPSEC_SCAN_CLEAN);
}

static void test_empty(void **st)
{
	struct epsec_scan_report rep;

	assert_int_equal(scan_buf("", 0, &rep), EPSEC_SCAN_CLEAN);
}

static void test_read_error(void **st)
{
	struct epsec_scan_report rep;
	struct mem_file m;

	mem_init(&m, eicar, EICAR_LEN);
	m.fail = EIO;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_ERROR);
	assert_true(rep.signature[0] != '\0');
	assert_null(strstr(rep.signature, "EICAR-Test-File"));
}

/* pread may return fewer bytes than asked; the plugin must go on. */
static ssize_t short_pread(struct epsec_file *f, void *buf, size_t len, uint64_t off)
{
	return mem_pread(f, buf, len > 7 ? 7 : len, off);
}

static void test_short_reads(void **st)
{
	struct epsec_scan_report rep;
	struct mem_file m;

	mem_init(&m, eicar, EICAR_LEN);
	m.f.pread = short_pread;
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(plugin->scan(state, &m.f, &rep), EPSEC_SCAN_FOUND);
	assert_true(m.reads >= EICAR_LEN / 7);
}

static int open_with(const char *text, void **out)
{
	config_t cfg;
	int r;

	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		config_destroy(&cfg);
		return -100;
	}
	r = plugin->open(epsec_host_get(), config_lookup(&cfg, "options"), out);
	config_destroy(&cfg);
	return r;
}

static void test_options(void **st)
{
	void *s2 = NULL;

	assert_int_equal(open_with("options = { };", &s2), 0);
	plugin->close(s2);
	s2 = NULL;
	assert_int_equal(open_with("options = { signatures = \"x\"; };", &s2), -EINVAL);
	assert_null(s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_trailing_whitespace),
		cmocka_unit_test(test_trailing_junk),
		cmocka_unit_test(test_not_at_offset_zero),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_large_file_not_read),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_read_error),
		cmocka_unit_test(test_short_reads),
		cmocka_unit_test(test_options),
	};

	return cmocka_run_group_tests_name("eicar", tests, group_setup, group_teardown);
}
