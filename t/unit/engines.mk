# SPDX-License-Identifier: MIT
# t/unit/engines.mk: the verdict plugins, libepsec (the SDK) and epsec-sva.
# Plugins load from the build tree through EPSEC_PLUGIN_PATH
# (AM_TESTS_ENVIRONMENT), so each test depends on the plugins it loads.
if HAVE_CMOCKA
ENGINE_TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PROTOBUF_C_CFLAGS)

# eicar.la through the real loader.
check_PROGRAMS += t/unit/test_eicar
TESTS += t/unit/test_eicar
t_unit_test_eicar_SOURCES = t/unit/test_eicar.c t/unit/engine_util.h
t_unit_test_eicar_CFLAGS = $(ENGINE_TEST_CFLAGS)
t_unit_test_eicar_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(LIBCONFIG_LIBS)
EXTRA_t_unit_test_eicar_DEPENDENCIES = plugins/eicar.la

# libepsec against a small mux built from the real link layer.
check_PROGRAMS += t/unit/test_sva_session
TESTS += t/unit/test_sva_session
t_unit_test_sva_session_SOURCES = t/unit/test_sva_session.c
t_unit_test_sva_session_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/sva
t_unit_test_sva_session_CFLAGS = $(ENGINE_TEST_CFLAGS)
t_unit_test_sva_session_LDADD = sva/libepsec-sdk.la libcore/libepsec-core.la $(CMOCKA_LIBS) -lpthread
EXTRA_t_unit_test_sva_session_DEPENDENCIES = transports/unix.la

# The chain from the SVA's side: this test is the agent, epsec-mux and
# epsec-sva run as children. test_sva_pattern.la is an engine for it only.
check_LTLIBRARIES += t/unit/test_sva_pattern.la
t_unit_test_sva_pattern_la_SOURCES = t/unit/test_sva_pattern.c
t_unit_test_sva_pattern_la_LDFLAGS = $(PLUGIN_LDFLAGS) -rpath /nowhere

check_PROGRAMS += t/unit/test_sva_chain
TESTS += t/unit/test_sva_chain
t_unit_test_sva_chain_SOURCES = t/unit/test_sva_chain.c
t_unit_test_sva_chain_CFLAGS = $(ENGINE_TEST_CFLAGS) $(JSONC_CFLAGS)
t_unit_test_sva_chain_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS)
EXTRA_t_unit_test_sva_chain_DEPENDENCIES = t/unit/test_sva_pattern.la plugins/eicar.la \
	transports/unix.la transports/tcp.la mux/epsec-mux sva/epsec-sva
endif
