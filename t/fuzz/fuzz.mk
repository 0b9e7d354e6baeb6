# t/fuzz/fuzz.mk: libFuzzer targets. They are built with $(CLANG) whatever CC
# is (automake cannot switch compilers per target), straight from the
# sources they exercise, only when a test needs them; run-fuzz.sh skips
# (77) when configure found no libFuzzer.
FUZZ_FLAGS = -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_MSG_SOURCES = $(srcdir)/t/fuzz/fuzz_msg.c $(srcdir)/libcore/frame.c \
	$(srcdir)/libcore/msg.c $(srcdir)/libcore/log.c

TESTS += t/fuzz/run-fuzz.sh
EXTRA_DIST += t/fuzz/run-fuzz.sh t/fuzz/fuzz_msg.c t/fuzz/corpus
CLEANFILES += t/fuzz/fuzz_msg

if HAVE_LIBFUZZER
t/fuzz/fuzz_msg: $(FUZZ_MSG_SOURCES) libcore/epsec.pb-c.c libcore/epsec.pb-c.h
	$(AM_V_CCLD)$(MKDIR_P) t/fuzz && \
	$(CLANG) $(FUZZ_FLAGS) $(DEFS) $(DEFAULT_INCLUDES) $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS) \
		-o $@ $(FUZZ_MSG_SOURCES) libcore/epsec.pb-c.c $(PROTOBUF_C_LIBS)
# the harness names a test's log after it, with or without .sh in TEST_EXTENSIONS
t/fuzz/run-fuzz.log t/fuzz/run-fuzz.sh.log: t/fuzz/fuzz_msg
endif
