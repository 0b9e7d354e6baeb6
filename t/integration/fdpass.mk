# SPDX-License-Identifier: MIT
# t/integration/fdpass.mk: file descriptor passing end to end. The test
# starts the real mux/epsec-mux with agents and SVAs on unix:// and plays
# both over libcore's links, and runs mux_sva (mux.mk) as a real libepsec SVA.
if HAVE_CMOCKA
check_PROGRAMS += t/integration/test_fdpass
TESTS += t/integration/test_fdpass
t_integration_test_fdpass_SOURCES = t/integration/test_fdpass.c t/integration/mux_harness.h \
	t/integration/mux_content.h
t_integration_test_fdpass_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PROTOBUF_C_CFLAGS) $(JSONC_CFLAGS)
t_integration_test_fdpass_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS)
EXTRA_t_integration_test_fdpass_DEPENDENCIES = mux/epsec-mux transports/unix.la \
	t/integration/mux_sva
endif
