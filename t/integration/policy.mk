# SPDX-License-Identifier: MIT
# policy tests (fragment owned by one part of the work; see t/Makefile.inc)
# vsep's policies when the scanner is slow, stopped or gone, under a flood
# of opens, its verdict cache and ignore marks, excludes, max_file_size and
# the fd budget: the real vsep, epsec-mux and epsec-sva.

# The opener the scripts time; a scanner engine that takes its time.
check_PROGRAMS += t/integration/policy-open t/integration/burst-write
t_integration_policy_open_SOURCES = t/integration/policy_open.c
t_integration_burst_write_SOURCES = t/integration/burst_write.c
check_LTLIBRARIES += t/integration/policy_slow.la
t_integration_policy_slow_la_SOURCES = t/integration/policy_slow.c
t_integration_policy_slow_la_LDFLAGS = $(PLUGIN_LDFLAGS) -rpath /nowhere
t_integration_policy_slow_la_LIBADD = $(LIBCONFIG_LIBS)

POLICY_TESTS = \
	t/integration/policy-timeouts.sh \
	t/integration/policy-errors.sh \
	t/integration/policy-backlog.sh \
	t/integration/policy-storm.sh \
	t/integration/policy-burst.sh \
	t/integration/policy-flood.sh \
	t/integration/policy-cache.sh \
	t/integration/policy-excludes.sh
TESTS += $(POLICY_TESTS)
EXTRA_DIST += $(POLICY_TESTS) t/integration/policy-lib.sh

# The verdict cache alone (ignore marks need fanotify: policy-cache.sh).
if HAVE_CMOCKA
check_PROGRAMS += t/unit/test_agent_cache
TESTS += t/unit/test_agent_cache
t_unit_test_agent_cache_SOURCES = t/unit/test_agent_cache.c agent/cache.c agent/fanotify.c
t_unit_test_agent_cache_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
t_unit_test_agent_cache_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
t_unit_test_agent_cache_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) -lpthread
endif
