# SPDX-License-Identifier: MIT
# mux tests (fragment owned by one part of the work; see t/Makefile.inc)
# The mux at scale with real processes: mux_agents plays many agents over
# the real transports, mux_sva is a test appliance on libepsec (the SDK).
# The benchmark (t/bench/mux.sh) runs the same two programs.
check_PROGRAMS += t/integration/mux_agents t/integration/mux_sva
t_integration_mux_agents_SOURCES = t/integration/mux_agents.c t/integration/mux_content.h
t_integration_mux_agents_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
t_integration_mux_agents_LDADD = libcore/libepsec-core.la
t_integration_mux_sva_SOURCES = t/integration/mux_sva.c t/integration/mux_content.h
t_integration_mux_sva_LDADD = sva/libepsec.la -lpthread

MUX_TESTS = \
	t/integration/mux-scale.sh \
	t/integration/mux-failover.sh \
	t/integration/mux-restart.sh
TESTS += $(MUX_TESTS)
EXTRA_DIST += $(MUX_TESTS) t/integration/mux-lib.sh
BENCH_RUNNERS += t/bench/mux.sh
