# `make bench` (not part of make check): each script in BENCH_RUNNERS runs
# its subjects against their baselines in one invocation and prints ratios.
noinst_PROGRAMS += t/bench/floor t/bench/mkcorpus
t_bench_floor_SOURCES = t/bench/floor.c
t_bench_mkcorpus_SOURCES = t/bench/mkcorpus.c
BENCH_RUNNERS += t/bench/run.sh
EXTRA_DIST += $(BENCH_RUNNERS)

bench: all
	@for s in $(BENCH_RUNNERS); do \
		echo "==== $$s"; \
		$(AM_TESTS_ENVIRONMENT) $(SHELL) $(srcdir)/$$s || exit 1; \
	done
.PHONY: bench
