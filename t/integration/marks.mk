# SPDX-License-Identifier: MIT
# What vsep marks and how the marks follow the protected trees: new
# directories marked and swept, new mounts picked up, status showing it.
MARKS_TESTS = \
	t/integration/marks-newdirs.sh \
	t/integration/marks-mounts.sh
TESTS += $(MARKS_TESTS)
EXTRA_DIST += $(MARKS_TESTS)

# The marks alone, on a tmpfs in a private mount namespace (needs root):
# re-marking after a flush, from several threads; new directories marked
# and swept; directories deleted or moved out forgotten; mounts picked up.
if HAVE_CMOCKA
check_PROGRAMS += t/unit/test_agent_marks
TESTS += t/unit/test_agent_marks
t_unit_test_agent_marks_SOURCES = t/unit/test_agent_marks.c agent/fanotify.c
t_unit_test_agent_marks_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
t_unit_test_agent_marks_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
t_unit_test_agent_marks_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) -lpthread
endif
