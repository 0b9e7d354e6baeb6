# SPDX-License-Identifier: MIT
# transports tests (fragment owned by one part of the work; see t/Makefile.inc):
# units for the transport options (CURVE, vsock/vmci, unix allow_uids,
# X_options in config files) and the integration scripts for CURVE and
# uid refusals on a real chain, and vsock end to end where it works.
if HAVE_CMOCKA
TRANSPORT_TESTS = t/unit/test_curve t/unit/test_vsock t/unit/test_stream
check_PROGRAMS += $(TRANSPORT_TESTS)
TESTS += $(TRANSPORT_TESTS)

TRT_SRC = t/unit/trtest.c t/unit/trtest.h
TRT_CF = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PROTOBUF_C_CFLAGS)
TRT_LD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(PROTOBUF_C_LIBS) $(LIBCONFIG_LIBS) -lpthread

t_unit_test_curve_SOURCES = t/unit/test_curve.c $(TRT_SRC)
t_unit_test_curve_CFLAGS = $(TRT_CF) $(ZMQ_CFLAGS)
t_unit_test_curve_LDADD = $(TRT_LD) $(ZMQ_LIBS)
EXTRA_t_unit_test_curve_DEPENDENCIES = transports/tcp.la

t_unit_test_vsock_SOURCES = t/unit/test_vsock.c $(TRT_SRC)
t_unit_test_vsock_CFLAGS = $(TRT_CF)
t_unit_test_vsock_LDADD = libcore/libepsec-vsock.la libcore/libepsec-stream.la $(TRT_LD)
EXTRA_t_unit_test_vsock_DEPENDENCIES = transports/vsock.la transports/vmci.la

t_unit_test_stream_SOURCES = t/unit/test_stream.c $(TRT_SRC)
t_unit_test_stream_CFLAGS = $(TRT_CF)
t_unit_test_stream_LDADD = $(TRT_LD)
EXTRA_t_unit_test_stream_DEPENDENCIES = transports/unix.la
endif

# Integration: CURVE and uid refusals on a real chain; vsock end to end
# where a loopback transport exists (skips with the reason elsewhere).
check_PROGRAMS += t/integration/tr_probe
t_integration_tr_probe_SOURCES = t/integration/tr_probe.c
t_integration_tr_probe_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
t_integration_tr_probe_LDADD = libcore/libepsec-core.la $(PROTOBUF_C_LIBS) $(LIBCONFIG_LIBS)
TRANSPORT_ITESTS = t/integration/transports-auth.sh t/integration/vsock.sh
TESTS += $(TRANSPORT_ITESTS)
EXTRA_DIST += $(TRANSPORT_ITESTS)
