# SPDX-License-Identifier: MIT
# t/fuzz/fuzz.mk: libFuzzer targets. They are built with $(CLANG) whatever CC
# is (automake cannot switch compilers per target), straight from the
# sources they exercise, only when a test needs them; run-fuzz.sh skips
# (77) when configure found no libFuzzer. make check runs each for a few
# seconds over its kept corpus (t/fuzz/corpus/TARGET); make fuzz runs them
# longer and merges what reaches new code into that corpus.
FUZZ_FLAGS = -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_CC = $(CLANG) $(FUZZ_FLAGS) $(DEFS) $(DEFAULT_INCLUDES) $(AM_CPPFLAGS) $(CPPFLAGS) \
	$(PROTOBUF_C_CFLAGS) $(JSONC_CFLAGS)
FUZZ_TARGETS = msg frame conf ctl

FUZZ_MSG_SRC = $(srcdir)/t/fuzz/fuzz_msg.c $(srcdir)/libcore/frame.c \
	$(srcdir)/libcore/msg.c $(srcdir)/libcore/log.c
FUZZ_FRAME_SRC = $(srcdir)/t/fuzz/fuzz_frame.c $(srcdir)/libcore/frame.c
FUZZ_CTL_SRC = $(srcdir)/t/fuzz/fuzz_ctl.c $(srcdir)/libcore/ctl.c \
	$(srcdir)/libcore/loop.c $(srcdir)/libcore/log.c $(srcdir)/libcore/conf.c \
	$(srcdir)/libcore/topts.c
# Each daemon's main.c is compiled into conf_<daemon>.c for its schema.
FUZZ_CONF_SRC = $(srcdir)/t/fuzz/fuzz_conf.c $(srcdir)/t/fuzz/conf_vsep.c \
	$(srcdir)/t/fuzz/conf_mux.c $(srcdir)/t/fuzz/conf_sva.c $(srcdir)/libcore/conf.c \
	$(srcdir)/libcore/topts.c $(srcdir)/libcore/log.c $(srcdir)/libcore/host.c \
	$(srcdir)/libcore/loader.c $(srcdir)/sva/engines.c $(srcdir)/sva/user.c
FUZZ_CONF_DEPS = $(srcdir)/t/fuzz/conf_fuzz.h $(srcdir)/agent/main.c $(srcdir)/mux/main.c \
	$(srcdir)/sva/main.c

# automake writes a rule per test it sees here, so they are spelled out
TESTS += t/fuzz/fuzz-msg.sh t/fuzz/fuzz-frame.sh t/fuzz/fuzz-conf.sh t/fuzz/fuzz-ctl.sh
EXTRA_DIST += t/fuzz/run-fuzz.sh t/fuzz/fuzz-msg.sh t/fuzz/fuzz-frame.sh t/fuzz/fuzz-conf.sh \
	t/fuzz/fuzz-ctl.sh t/fuzz/fuzz_msg.c t/fuzz/fuzz_frame.c t/fuzz/fuzz_ctl.c \
	t/fuzz/fuzz_conf.c t/fuzz/conf_fuzz.h t/fuzz/conf_vsep.c t/fuzz/conf_mux.c \
	t/fuzz/conf_sva.c t/fuzz/conf.dict t/fuzz/lsan.supp t/fuzz/corpus
CLEANFILES += $(FUZZ_TARGETS:%=t/fuzz/fuzz_%) $(FUZZ_TARGETS:%=t/fuzz/fuzz_%-cov) \
	t/fuzz/coverage.profdata

if HAVE_LIBFUZZER
t/fuzz/fuzz_msg$(FUZZ_SUFFIX): $(FUZZ_MSG_SRC) libcore/epsec.pb-c.c libcore/epsec.pb-c.h
	$(AM_V_CCLD)$(MKDIR_P) t/fuzz && \
	$(FUZZ_CC) -o $@ $(FUZZ_MSG_SRC) libcore/epsec.pb-c.c $(PROTOBUF_C_LIBS)
t/fuzz/fuzz_frame$(FUZZ_SUFFIX): $(FUZZ_FRAME_SRC) $(srcdir)/libcore/frame.h
	$(AM_V_CCLD)$(MKDIR_P) t/fuzz && \
	$(FUZZ_CC) -o $@ $(FUZZ_FRAME_SRC)
t/fuzz/fuzz_ctl$(FUZZ_SUFFIX): $(FUZZ_CTL_SRC) $(srcdir)/libcore/ctl.h $(srcdir)/libcore/loop.h
	$(AM_V_CCLD)$(MKDIR_P) t/fuzz && \
	$(FUZZ_CC) -o $@ $(FUZZ_CTL_SRC) $(JSONC_LIBS) $(LIBCONFIG_LIBS) -lpthread
t/fuzz/fuzz_conf$(FUZZ_SUFFIX): $(FUZZ_CONF_SRC) $(FUZZ_CONF_DEPS) libcore/epsec.pb-c.h
	$(AM_V_CCLD)$(MKDIR_P) t/fuzz && \
	$(FUZZ_CC) -o $@ $(FUZZ_CONF_SRC) $(LIBCONFIG_LIBS) $(LIBLTDL)
# the harness names a test's log after it, with or without .sh in TEST_EXTENSIONS
t/fuzz/fuzz-msg.log t/fuzz/fuzz-msg.sh.log: t/fuzz/fuzz_msg
t/fuzz/fuzz-frame.log t/fuzz/fuzz-frame.sh.log: t/fuzz/fuzz_frame
t/fuzz/fuzz-conf.log t/fuzz/fuzz-conf.sh.log: t/fuzz/fuzz_conf
t/fuzz/fuzz-ctl.log t/fuzz/fuzz-ctl.sh.log: t/fuzz/fuzz_ctl

# make fuzz: FUZZ_SECONDS (600) per target, FUZZ_JOBS (1) processes each;
# FUZZ_TARGETS="frame ctl" picks some.
fuzz: $(FUZZ_TARGETS:%=t/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		top_builddir=$(top_builddir) top_srcdir=$(top_srcdir) \
		FUZZ_SECONDS=$${FUZZ_SECONDS:-600} \
		$(SHELL) $(srcdir)/t/fuzz/run-fuzz.sh --merge $$t || exit 1; \
	done

# make fuzz-coverage: the line coverage of the libcore files each target
# exercises, reached by its kept corpus alone (clang's source coverage).
LLVM_PROFDATA = llvm-profdata
LLVM_COV = llvm-cov
fuzz-coverage:
	@$(MAKE) $(AM_MAKEFLAGS) FUZZ_SUFFIX=-cov FUZZ_FLAGS="-g -O0 -std=gnu11 \
		-fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping" \
		$(FUZZ_TARGETS:%=t/fuzz/fuzz_%-cov) && \
	for t in $(FUZZ_TARGETS); do \
		rm -f t/fuzz/coverage.profraw && \
		LLVM_PROFILE_FILE=t/fuzz/coverage.profraw t/fuzz/fuzz_$$t-cov -runs=0 \
			$(srcdir)/t/fuzz/corpus/$$t >/dev/null 2>&1 && \
		$(LLVM_PROFDATA) merge -o t/fuzz/coverage.profdata t/fuzz/coverage.profraw && \
		echo "fuzz_$$t, kept corpus ($$(ls $(srcdir)/t/fuzz/corpus/$$t | wc -l) inputs):" && \
		$(LLVM_COV) report t/fuzz/fuzz_$$t-cov -instr-profile=t/fuzz/coverage.profdata | \
			grep -E '^(.*libcore/[a-z]+\.c )' | \
			awk '{ print $$1, "lines", $$(NF-3), "functions", $$(NF-6) }' || exit 1; \
	done; rm -f t/fuzz/coverage.profraw t/fuzz/coverage.profdata
else
fuzz-coverage fuzz:
	@echo "make fuzz: configure found no clang that links -fsanitize=fuzzer (apt-get install clang libclang-rt-14-dev)"; exit 1
endif
.PHONY: fuzz fuzz-coverage
