#!/usr/bin/env bash
# make bench: the clamav and yara engines through the whole chain against
# their libraries used directly, on the same generated corpus and the same
# signatures, in this one invocation. Chain: every file of the corpus is
# opened once (BENCH_READERS readers in parallel, each open held for a
# verdict; epsec-sva with BENCH_WORKERS workers). Baselines: libclamav in a
# program of ours (t/bench/clamdirect) and the `yara` command, each on
# BENCH_THREADS threads. Direct and chain runs alternate, so both see the
# same machine; medians of BENCH_REPS. Ratio = chain throughput / direct
# throughput (target >= 0.9). BENCH_ENGINE_FILES (2000) sizes the corpus.
set -u
. "$(dirname "$0")/../integration/lib.sh"
ns_enter "$@"
FILES=${BENCH_ENGINE_FILES:-2000}
REPS=${BENCH_REPS:-3}
WORKERS=${BENCH_WORKERS:-2}
THREADS=${BENCH_THREADS:-2}
READERS=${BENCH_READERS:-4}
INLINE=${BENCH_INLINE:-65536}
setup_tmpfs
trap 'umount -l "$T/src" 2>/dev/null; cleanup' EXIT
chmod 755 "$T" # the SVA may drop root
mkdir -p "$T/src"
mount -t tmpfs -o size=2g epsec-bench-src "$T/src"
mount -o remount,size=2g "$T/fs"
"$top_builddir/t/bench/mkcorpus" "$T/src/c" "$FILES" || exit 1
note "corpus: $FILES files, $(du -sh "$T/src/c" | cut -f1); $REPS reps; $WORKERS SVA workers," \
	"$THREADS baseline threads, $READERS readers, inline_bytes $INLINE"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fresh_corpus() { rm -rf "$T/fs/c"; cp -a "$T/src/c" "$T/fs/c"; } # new inodes: nothing cached
open_all() { find "$T/fs/c" -type f -print0 | xargs -0 -P "$READERS" -n 32 cat > /dev/null 2>&1; }

# chain_setup ENGINE_LINE writes the configs; chain_once copies the corpus
# with no agent running, starts the chain, opens every file once, prints ms.
chain_setup() {
	write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$T/fs/c" "$INLINE"
	sed -i "s|^engine = .*|$1|; s/^workers = .*/workers = $WORKERS;/" "$T/run/epsec-sva.conf"
	sed -i 's/DEBUG_LEVEL *= *7/DEBUG_LEVEL = 4/; s/DEBUG_LEVEL=7/DEBUG_LEVEL=4/' "$T"/run/*.conf
	sed -i 's/^scan_timeout_ms = .*/scan_timeout_ms = 30000;/; s/^on_timeout = .*/on_timeout = "deny";/' \
		"$T/run/vsep.conf"
}
chain_once() {
	local t0 t1
	fresh_corpus
	start_chain >&2 || return 1
	t0=$(ms); open_all; t1=$(ms)
	stop_daemons
	echo $((t1 - t0))
}
clam_direct() {
	local out
	fresh_corpus
	out=$(find "$T/fs/c" -type f | "$top_builddir/t/bench/clamdirect" "$T/db" "$THREADS")
	note "clamdirect: $out" >&2
	sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<<"$out"
}
yara_direct() {
	local t0 t1
	fresh_corpus
	t0=$(ms); yara -r -p "$THREADS" "$T/bench.yar" "$T/fs/c" > "$T/yara.out"; t1=$(ms)
	echo $((t1 - t0))
}

declare -A R
# measure NAME DIRECT_FN ENGINE_LINE
measure() {
	local d=() c=() i
	for i in $(seq 1 "$REPS"); do
		d+=("$($2)")
		chain_setup "$3"
		c+=("$(chain_once)") || return 1
		note "$1 rep $i: direct ${d[-1]} ms, chain ${c[-1]} ms"
	done
	R[$1.direct]=$(printf '%s\n' "${d[@]}" | median)
	R[$1.chain]=$(printf '%s\n' "${c[@]}" | median)
}

# The chain's own cost, for reference: the eicar engine reads 129 bytes.
times=()
chain_setup 'engine = ( { plugin = "eicar"; action = "deny"; } );'
for _ in $(seq 1 "$REPS"); do times+=("$(chain_once)"); done
R[eicar.chain]=$(printf '%s\n' "${times[@]}" | median)

# ---- clamav: a generated database (hashes of corpus files, a body
# signature, EICAR's hash), the same for both sides.
if [ -f "$top_builddir/plugins/clamav.la" ] && [ -x "$top_builddir/t/bench/clamdirect" ]; then
	mkdir -p "$T/db"
	for f in $(find "$T/src/c" -type f | sort | head -n 5); do
		echo "$(md5sum "$f" | cut -d' ' -f1):$(stat -c %s "$f"):Bench.Hash.$(basename "$f")"
	done > "$T/db/bench.hdb"
	echo "44d88612fea8a8f36de82e1278abb02f:68:Bench.EICAR" >> "$T/db/bench.hdb"
	echo "Bench.NDB:0:*:$(printf 'EPSEC-BENCH-NDB-MARK' | od -An -tx1 | tr -d ' \n')" \
		> "$T/db/bench.ndb"
	chmod -R a+rX "$T/db"
	measure clam clam_direct "engine = ( { plugin = \"clamav\"; action = \"deny\"; options = { database = \"$T/db\"; }; } );" || exit 1
else
	note "clamav plugin or clamdirect not built: clamav skipped"
fi

# ---- yara: a few rules of each kind, the same file for both sides.
if [ -f "$top_builddir/plugins/yara.la" ] && command -v yara >/dev/null; then
	cat > "$T/bench.yar" <<'RULES'
rule Bench_Text { strings: $a = "EPSEC-BENCH-TEXT" $b = "epsec-bench-wide" wide condition: any of them }
rule Bench_Hex { strings: $h = { 45 50 53 45 43 ?? 42 45 4E 43 48 [2-8] 21 } condition: $h }
rule Bench_Header { condition: uint32(0) == 0x43535045 and filesize < 10MB }
rule Bench_Count { strings: $x = "alpha-bench" $y = "beta-bench" condition: #x > 2 and $y }
RULES
	chmod a+r "$T/bench.yar"
	measure yara yara_direct "engine = ( { plugin = \"yara\"; action = \"deny\"; options = { rules = \"$T/bench.yar\"; }; } );" || exit 1
else
	note "yara plugin or the yara command missing: yara skipped"
fi

echo
printf '%-8s %12s %12s %24s\n' "" "direct" "chain" "chain/direct throughput"
for e in clam yara; do
	[ -n "${R[$e.chain]:-}" ] || continue
	printf '%-8s %9s ms %9s ms %23sx\n' "$e" "${R[$e.direct]}" "${R[$e.chain]}" \
		"$(ratio "${R[$e.direct]}" "${R[$e.chain]}")"
done
echo "eicar chain (reads 129 bytes a file: the chain's own cost): ${R[eicar.chain]} ms"
echo "(target: >= 0.90; $FILES files of 1-256 KiB)"
