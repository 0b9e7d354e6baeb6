# SPDX-License-Identifier: MIT
# engines tests (fragment owned by one part of the work; see t/Makefile.inc)
# The clamav and yara verdict plugins: unit tests through the real loader
# (cmocka), the whole chain compared with clamscan and yara, a benchmark.
ENGINE_UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/t/unit
EXTRA_DIST += t/unit/engine_util.h

if HAVE_CMOCKA
if BUILD_PLUGIN_CLAMAV
check_PROGRAMS += t/unit/test_clamav
TESTS += t/unit/test_clamav
t_unit_test_clamav_SOURCES = t/unit/test_clamav.c
t_unit_test_clamav_CFLAGS = $(ENGINE_UNIT_CFLAGS) $(CLAMAV_CFLAGS)
t_unit_test_clamav_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(LIBCONFIG_LIBS) \
	$(CLAMAV_LIBS) -lpthread
EXTRA_t_unit_test_clamav_DEPENDENCIES = plugins/clamav.la
endif

if BUILD_PLUGIN_YARA
check_PROGRAMS += t/unit/test_yara
TESTS += t/unit/test_yara
t_unit_test_yara_SOURCES = t/unit/test_yara.c
t_unit_test_yara_CFLAGS = $(ENGINE_UNIT_CFLAGS) $(YARA_CFLAGS)
t_unit_test_yara_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(LIBCONFIG_LIBS) \
	$(YARA_LIBS) -lpthread
EXTRA_t_unit_test_yara_DEPENDENCIES = plugins/yara.la
endif
endif

# Through the whole chain (each skips, exit 77, when its engine is not built
# or the reference command is missing).
ENGINE_INTEGRATION_TESTS = t/integration/engines-clamav.sh t/integration/engines-yara.sh \
	t/integration/engines-yara-files.sh t/integration/engines-yara-timeout.sh
TESTS += $(ENGINE_INTEGRATION_TESTS)
EXTRA_DIST += $(ENGINE_INTEGRATION_TESTS)

# make bench: the engines through the chain against their libraries used
# directly (t/bench/clamdirect) and the yara command.
BENCH_RUNNERS += t/bench/engines.sh t/bench/yara-bytes.sh
if BUILD_PLUGIN_CLAMAV
noinst_PROGRAMS += t/bench/clamdirect
t_bench_clamdirect_SOURCES = t/bench/clamdirect.c
t_bench_clamdirect_CFLAGS = $(AM_CFLAGS) $(CLAMAV_CFLAGS)
t_bench_clamdirect_LDADD = $(CLAMAV_LIBS) -lpthread
endif
