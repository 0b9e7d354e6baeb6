#!/bin/sh
# Runs the wire fuzzer (frames + messages) for FUZZ_SECONDS (10) on a copy
# of the seed corpus; a crash is kept in the build tree's t/fuzz/. Skipped
# (exit 77) when configure found no clang with libFuzzer.
: "${top_builddir:=.}" "${top_srcdir:=.}"
fuzzer="$top_builddir/t/fuzz/fuzz_msg"
if [ ! -x "$fuzzer" ]; then
	echo "SKIP: $fuzzer not built: configure found no clang that links -fsanitize=fuzzer"
	exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/epsec-fuzz.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/out" || exit 99
cp "$top_srcdir"/t/fuzz/corpus/msg/* "$work/corpus/" || exit 99
# libFuzzer's own error exit code is 77, automake's "skipped": make it 1.
"$fuzzer" -max_total_time="${FUZZ_SECONDS:-10}" -max_len=8192 -timeout=10 \
	-error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/out/" "$work/corpus"
rc=$?
if [ "$rc" -ne 0 ]; then
	for f in "$work"/out/*; do
		[ -f "$f" ] || continue
		cp "$f" "$top_builddir/t/fuzz/" && echo "kept $top_builddir/t/fuzz/${f##*/}"
	done
fi
exit "$rc"
