# SPDX-License-Identifier: MIT
# Actions on infected files (deny on exec, delete, quarantine and its
# round trip through epsecctl) and epsecctl scan, clamdscan's job.
ACTIONS_TESTS = \
	t/integration/actions.sh \
	t/integration/scan.sh
TESTS += $(ACTIONS_TESTS)
EXTRA_DIST += $(ACTIONS_TESTS)

# The quarantine alone: rename and copy, records, restore, refusals.
if HAVE_CMOCKA
check_PROGRAMS += t/unit/test_agent_quarantine
TESTS += t/unit/test_agent_quarantine
t_unit_test_agent_quarantine_SOURCES = t/unit/test_agent_quarantine.c agent/quarantine.c
t_unit_test_agent_quarantine_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
t_unit_test_agent_quarantine_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(JSONC_CFLAGS)
t_unit_test_agent_quarantine_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(JSONC_LIBS) -lpthread
endif
