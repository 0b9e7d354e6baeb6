# SPDX-License-Identifier: MIT
# `make bench` (not part of make check): each script in BENCH_RUNNERS runs
# its subjects against their baselines in one invocation and prints ratios.
# A script that exits 77 (the machine lacks something) is reported, not failed.
noinst_PROGRAMS += t/bench/floor t/bench/mkcorpus
t_bench_floor_SOURCES = t/bench/floor.c
t_bench_mkcorpus_SOURCES = t/bench/mkcorpus.c
BENCH_RUNNERS += t/bench/run.sh
EXTRA_DIST += $(BENCH_RUNNERS)

bench: all
	@for s in $(BENCH_RUNNERS); do \
		echo "==== $$s"; \
		rc=0; ($(AM_TESTS_ENVIRONMENT) bash $(srcdir)/$$s) || rc=$$?; \
		if [ $$rc -eq 77 ]; then echo "==== $$s: skipped"; \
		elif [ $$rc -ne 0 ]; then echo "==== $$s: FAILED ($$rc)"; exit 1; fi; \
	done
.PHONY: bench
