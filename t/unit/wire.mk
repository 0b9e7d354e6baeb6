# SPDX-License-Identifier: MIT
# t/unit/wire.mk: the wire layer (framing, protocol, links and transports).
if HAVE_CMOCKA
check_PROGRAMS += t/unit/test_frame t/unit/test_msg t/unit/test_transport
TESTS += t/unit/test_frame t/unit/test_msg t/unit/test_transport

t_unit_test_frame_SOURCES = t/unit/test_frame.c
t_unit_test_frame_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
t_unit_test_frame_LDADD = libcore/libepsec-frame.la $(CMOCKA_LIBS)

t_unit_test_msg_SOURCES = t/unit/test_msg.c
t_unit_test_msg_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PROTOBUF_C_CFLAGS)
t_unit_test_msg_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(PROTOBUF_C_LIBS)

t_unit_test_transport_SOURCES = t/unit/test_transport.c
t_unit_test_transport_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PROTOBUF_C_CFLAGS) $(ZMQ_CFLAGS)
t_unit_test_transport_LDADD = libcore/libepsec-core.la $(CMOCKA_LIBS) $(PROTOBUF_C_LIBS) \
	$(ZMQ_LIBS) $(LIBCONFIG_LIBS)
endif
