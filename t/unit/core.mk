# SPDX-License-Identifier: MIT
# t/unit/core.mk: unit tests of libcore's config, loop, loader and control
# socket, and the test-only plugins the loader test refuses or accepts.
if HAVE_CMOCKA
CORE_TESTS = t/unit/test_conf t/unit/test_loop t/unit/test_loader t/unit/test_ctl \
	t/unit/test_daemon
check_PROGRAMS += $(CORE_TESTS)
TESTS += $(CORE_TESTS)

CORE_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
CORE_TEST_LIBS = libcore/libepsec-core.la $(CMOCKA_LIBS)

t_unit_test_conf_SOURCES = t/unit/test_conf.c
t_unit_test_conf_CFLAGS = $(CORE_TEST_CFLAGS)
t_unit_test_conf_LDADD = $(CORE_TEST_LIBS)

t_unit_test_loop_SOURCES = t/unit/test_loop.c
t_unit_test_loop_CFLAGS = $(CORE_TEST_CFLAGS)
t_unit_test_loop_LDADD = $(CORE_TEST_LIBS) -lpthread

t_unit_test_ctl_SOURCES = t/unit/test_ctl.c
t_unit_test_ctl_CFLAGS = $(CORE_TEST_CFLAGS) $(JSONC_CFLAGS)
t_unit_test_ctl_LDADD = $(CORE_TEST_LIBS) $(JSONC_LIBS) -lpthread

t_unit_test_daemon_SOURCES = t/unit/test_daemon.c
t_unit_test_daemon_CFLAGS = $(CORE_TEST_CFLAGS)
t_unit_test_daemon_LDADD = $(CORE_TEST_LIBS)

# Test plugins: shared (-rpath /nowhere), loaded from the build tree.
TEST_PLUGINS = t/unit/plugins/good.la t/unit/plugins/wrong_major.la \
	t/unit/plugins/newer_minor.la t/unit/plugins/short_struct.la \
	t/unit/plugins/no_symbol.la t/unit/plugins/null_ops.la \
	t/unit/plugins/epsectest.la t/unit/plugins/otherscheme.la
check_LTLIBRARIES += $(TEST_PLUGINS)
TEST_PLUGIN_LDFLAGS = $(PLUGIN_LDFLAGS) -rpath /nowhere

t_unit_plugins_good_la_SOURCES = t/unit/plugins/good.c
t_unit_plugins_good_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
t_unit_plugins_wrong_major_la_SOURCES = t/unit/plugins/wrong_major.c
t_unit_plugins_wrong_major_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
t_unit_plugins_newer_minor_la_SOURCES = t/unit/plugins/newer_minor.c
t_unit_plugins_newer_minor_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
t_unit_plugins_short_struct_la_SOURCES = t/unit/plugins/short_struct.c
t_unit_plugins_short_struct_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
# Exports a near-miss name, so it must not go through the export filter.
t_unit_plugins_no_symbol_la_SOURCES = t/unit/plugins/no_symbol.c
t_unit_plugins_no_symbol_la_LDFLAGS = -module -avoid-version -no-undefined -shared -rpath /nowhere
t_unit_plugins_null_ops_la_SOURCES = t/unit/plugins/null_ops.c
t_unit_plugins_null_ops_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
# One transport, installed under its scheme's name and under another one.
t_unit_plugins_epsectest_la_SOURCES = t/unit/plugins/good_transport.c
t_unit_plugins_epsectest_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
t_unit_plugins_otherscheme_la_SOURCES = t/unit/plugins/good_transport.c
t_unit_plugins_otherscheme_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)

t_unit_test_loader_SOURCES = t/unit/test_loader.c
t_unit_test_loader_CPPFLAGS = $(AM_CPPFLAGS) \
	-DTEST_PLUGIN_DIR='"$(abs_top_builddir)/t/unit/plugins"'
t_unit_test_loader_CFLAGS = $(CORE_TEST_CFLAGS)
t_unit_test_loader_LDADD = $(CORE_TEST_LIBS)
EXTRA_t_unit_test_loader_DEPENDENCIES = $(TEST_PLUGINS)
endif
