# `make bench` (not part of make check): runs the chain against the floor and
# no agent on a tmpfs, prints medians and ratios.
noinst_PROGRAMS += t/bench/floor t/bench/mkcorpus
t_bench_floor_SOURCES = t/bench/floor.c
t_bench_mkcorpus_SOURCES = t/bench/mkcorpus.c
EXTRA_DIST += t/bench/run.sh

bench: all
	$(AM_TESTS_ENVIRONMENT) $(SHELL) $(srcdir)/t/bench/run.sh
.PHONY: bench
