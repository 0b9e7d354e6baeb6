#!/bin/sh
# SPDX-License-Identifier: MIT
# run-fuzz.sh TARGET: runs t/fuzz/fuzz_TARGET for FUZZ_SECONDS (5) on a copy
# of its kept corpus (t/fuzz/corpus/TARGET), as make check does; a crash is
# kept in the build tree's t/fuzz/. Skipped (exit 77) when configure found
# no clang with libFuzzer.
# run-fuzz.sh --merge TARGET: a long run (FUZZ_SECONDS, FUZZ_JOBS processes,
# 1 by default), then the inputs that reach new edges (not new hit counts:
# the corpus stays small) are merged into the kept corpus in the source
# tree (make fuzz).
: "${top_builddir:=.}" "${top_srcdir:=.}"
# The fuzzer runs in a scratch directory: every path absolute.
top_builddir=$(cd "$top_builddir" && pwd) && top_srcdir=$(cd "$top_srcdir" && pwd) || exit 99
merge=no
if [ "$1" = --merge ]; then
	merge=yes
	shift
fi
target=${1:?usage: run-fuzz.sh [--merge] msg|frame|conf|ctl}
fuzzer="$top_builddir/t/fuzz/fuzz_$target"
kept="$top_srcdir/t/fuzz/corpus/$target"
if [ ! -x "$fuzzer" ]; then
	echo "SKIP: $fuzzer not built: configure found no clang that links -fsanitize=fuzzer"
	exit 77
fi
# Inputs stay small, so the kept corpus does.
case $target in
conf) max_len=4096 ;;
ctl) max_len=2048 ;;
*) max_len=8192 ;;
esac
set --
[ -f "$top_srcdir/t/fuzz/$target.dict" ] && set -- -dict="$top_srcdir/t/fuzz/$target.dict"
jobs=${FUZZ_JOBS:-1}
[ "$merge" = yes ] && [ "$jobs" -gt 1 ] && set -- "$@" -jobs="$jobs" -workers="$jobs"
work=$(mktemp -d "${TMPDIR:-/tmp}/epsec-fuzz.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/out" || exit 99
cp "$kept"/* "$work/corpus/" || exit 99
LSAN_OPTIONS="suppressions=$top_srcdir/t/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
echo "fuzz_$target: ${FUZZ_SECONDS:-5} s from $(ls "$kept" | wc -l) kept inputs"
# libFuzzer's own error exit code is 77, automake's "skipped": make it 1.
# -jobs writes its logs in the current directory: the scratch one.
(cd "$work" && "$fuzzer" -max_total_time="${FUZZ_SECONDS:-5}" -max_len=$max_len -timeout=10 \
	-error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/out/" "$@" "$work/corpus")
rc=$?
[ "$merge" = yes ] && [ "$jobs" -gt 1 ] && cat "$work"/fuzz-*.log 2>/dev/null | grep -E '^stat::|Done'
if [ "$rc" -ne 0 ]; then
	for f in "$work"/out/*; do
		[ -f "$f" ] || continue
		cp "$f" "$top_builddir/t/fuzz/" && echo "kept $top_builddir/t/fuzz/${f##*/}"
	done
	exit "$rc"
fi
if [ "$merge" = yes ]; then
	before=$(ls "$kept" | wc -l)
	"$fuzzer" -merge=1 -use_counters=0 -max_len=$max_len -artifact_prefix="$work/out/" "$kept" "$work/corpus" \
		>"$work/merge.log" 2>&1 || { cat "$work/merge.log"; exit 1; }
	echo "fuzz_$target: kept corpus $before -> $(ls "$kept" | wc -l) inputs ($kept)"
fi
exit 0
