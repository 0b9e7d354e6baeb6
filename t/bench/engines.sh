#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench: the clamav and yara engines through the whole chain against
# their libraries used directly, on the same generated corpus and the same
# signatures, in this one invocation. Two ways through the chain:
#   on-demand  epsec-mux + epsec-sva only; `epsecctl scan DIR` sends every
#              file as an EVENT (a window of them in flight), the SVA gets
#              the rest of the file through the link: the engine's
#              throughput through the chain (clamdscan's job). The >= 0.9
#              target is for this row.
#   on-access  vsep + epsec-mux + epsec-sva; every file is opened once by
#              `cat` (BENCH_READERS in parallel), each open held by fanotify
#              until its verdict: the opener's latency-bound path. Reported.
# Baselines: libclamav in a program of ours (t/bench/clamdirect) and the
# `yara` command. Direct and chain runs alternate, so all see the same
# machine; medians of BENCH_REPS. Ratio = chain throughput / direct
# throughput. A chain run whose result differs from the direct run's (files
# found, errors, files scanned) fails the bench: no ratio is reported.
#
# Environment:
#   BENCH_ENGINE_FILES  corpus size in files of 1-256 KiB (2000); a few
#                       files that the signatures detect are added to it
#   BENCH_REPS          repetitions; medians are reported (3)
#   BENCH_WORKERS       epsec-sva scan workers, and baseline threads (2)
#   BENCH_THREADS       baseline threads only (BENCH_WORKERS): set it apart
#                       only to see what the threads alone change
#   BENCH_READERS       parallel readers for the on-access phase (4)
#   BENCH_INLINE        bytes sent with each EVENT (65536; epsecctl scan
#                       takes at most 65536)
set -u
. "$(dirname "$0")/../integration/lib.sh"
ns_enter "$@"
FILES=${BENCH_ENGINE_FILES:-2000}
REPS=${BENCH_REPS:-3}
WORKERS=${BENCH_WORKERS:-2}
THREADS=${BENCH_THREADS:-$WORKERS}
READERS=${BENCH_READERS:-4}
INLINE=${BENCH_INLINE:-65536}
SCAN_INLINE=$(( INLINE < 65536 ? INLINE : 65536 ))
setup_tmpfs
trap 'rc=$?; umount -l "$T/src" 2>/dev/null; (exit $rc); cleanup' EXIT # cleanup reads $?
chmod 755 "$T" # the SVA may drop root
mkdir -p "$T/src"
mount -t tmpfs -o size=2g epsec-bench-src "$T/src"
mount -o remount,size=2g "$T/fs"
"$top_builddir/t/bench/mkcorpus" "$T/src/c" "$FILES" || exit 1

bad() { echo "FAIL: $*" >&2; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fresh_corpus() { rm -rf "$T/fs/c"; cp -a "$T/src/c" "$T/fs/c"; } # new inodes: nothing cached

# ---- Planted files, so that every engine has something to find and the
# chain's results can be checked against the direct run's: the EICAR test
# file, and one file per clamav .ndb / yara rule, each mark past the first
# 64 KiB (not in the EVENT's inline bytes) unless it must be at offset 0.
P=$T/src/c/planted
mkdir -p "$P"
find "$T/src/c" -type f | sort | head -n 20 | xargs cat 2>/dev/null | head -c 131072 > "$T/base"
plant() { # plant NAME OFFSET TEXT
	cp "$T/base" "$P/$1"
	printf '%s' "$3" | dd of="$P/$1" bs=1 seek="$2" conv=notrunc status=none
}
eicar > "$P/eicar.com"
plant ndb-mark.bin 80000 'EPSEC-BENCH-NDB-MARK'
plant yara-text.bin 90000 'EPSEC-BENCH-TEXT'
plant yara-hex.bin 70000 'EPSEC_BENCH-x!'
plant yara-header.bin 0 'EPSC'
plant yara-count.bin 66000 'alpha-bench alpha-bench beta-bench alpha-bench'
NFILES=$(find "$T/src/c" -type f | wc -l)
EXPECT_EICAR=1 # eicar.com
EXPECT_CLAM=7  # 5 corpus files by hash (below), eicar.com, ndb-mark.bin
EXPECT_YARA=4  # the yara-*.bin
note "corpus: $NFILES files ($FILES generated, $((NFILES - FILES)) planted)," \
	"$(du -sh "$T/src/c" | cut -f1); $REPS reps; $WORKERS SVA workers, $THREADS baseline" \
	"threads, $READERS on-access readers, inline_bytes $INLINE ($SCAN_INLINE for epsecctl scan)"
[ "$THREADS" = "$WORKERS" ] ||
	note "WARNING: BENCH_THREADS ($THREADS) != BENCH_WORKERS ($WORKERS): not like for like"

# configure_chain ENGINE_LINE writes the configs of all three daemons.
configure_chain() {
	write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$T/fs/c" "$INLINE"
	sed -i "s|^engine = .*|$1|; s/^workers = .*/workers = $WORKERS;/" "$T/run/epsec-sva.conf"
	sed -i 's/DEBUG_LEVEL *= *7/DEBUG_LEVEL = 4/; s/DEBUG_LEVEL=7/DEBUG_LEVEL=4/' "$T"/run/*.conf
	sed -i 's/^scan_timeout_ms = .*/scan_timeout_ms = 30000;/; s/^on_timeout = .*/on_timeout = "deny";/' \
		"$T/run/vsep.conf"
}

# Each chain run copies the corpus afresh with no agent running, starts its
# daemons, scans, stops them, checks that it found EXPECTED files and
# nothing failed (else FAIL on stderr, status 1) and prints its ms.

# demand_once EXPECTED: epsecctl scan through mux and SVA; no vsep.
demand_once() {
	local t0 t1 rc scanned found errors
	fresh_corpus
	start sva "$SVA" -f -c "$T/run/epsec-sva.conf"
	start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
	if ! wait_until 10 mux_has_sva; then
		stop_daemons
		bad "on-demand: the SVA did not connect to the mux"
		return 1
	fi
	t0=$(ms)
	"$CTL" scan --mux "unix://$T/run/mux.sock" --inline-bytes "$SCAN_INLINE" -i "$T/fs/c" \
		> "$T/scan.out" 2>&1
	rc=$?
	t1=$(ms)
	stop_daemons
	scanned=$(sed -n 's/^Scanned files: //p' "$T/scan.out")
	found=$(sed -n 's/^Infected files: //p' "$T/scan.out")
	errors=$(sed -n 's/^Total errors: //p' "$T/scan.out")
	if [ "$rc" -ne $(( $1 > 0 )) ] || [ "${scanned:-}" != "$NFILES" ] ||
	   [ "${found:-}" != "$1" ] || [ "${errors:-}" != 0 ]; then
		bad "on-demand: epsecctl scan exited $rc; scanned ${scanned:-?} of $NFILES," \
			"infected ${found:-?} (direct: $1), errors ${errors:-?}"
		head -n 20 "$T/scan.out" >&2
		return 1
	fi
	echo $((t1 - t0))
}

# access_once EXPECTED: every file opened once under vsep; a detection is a
# denied open (EPERM), so cat's complaints are counted.
access_once() {
	local t0 t1 denied
	fresh_corpus
	start_chain >&2 || { stop_daemons; bad "on-access: the chain did not start"; return 1; }
	t0=$(ms)
	find "$T/fs/c" -type f -print0 | xargs -0 -P "$READERS" -n 32 cat > /dev/null 2> "$T/cat.err"
	t1=$(ms)
	stop_daemons
	denied=$(grep -o 'Operation not permitted' "$T/cat.err" | wc -l)
	if [ "$denied" -ne "$1" ]; then
		bad "on-access: $denied opens denied, expected $1 (direct); cat said:"
		head -n 20 "$T/cat.err" >&2
		return 1
	fi
	echo $((t1 - t0))
}

# The direct runs print "MS FOUND" (files found) and fail on any error.
clam_direct() {
	local out files found errors ms
	fresh_corpus
	out=$(find "$T/fs/c" -type f | "$top_builddir/t/bench/clamdirect" "$T/db" "$THREADS") ||
		{ bad "clamdirect failed: $out"; return 1; }
	note "clamdirect: $out" >&2
	read -r files found errors ms <<<"$(sed 's/[a-z]*=//g' <<<"$out")"
	if [ "$files" != "$NFILES" ] || [ "$errors" != 0 ]; then
		bad "clamdirect: $out (expected files=$NFILES errors=0)"
		return 1
	fi
	echo "$ms $found"
}
yara_direct() {
	local t0 t1
	fresh_corpus
	t0=$(ms)
	yara -r -p "$THREADS" "$T/bench.yar" "$T/fs/c" > "$T/yara.out" || { bad "yara failed"; return 1; }
	t1=$(ms)
	echo "$((t1 - t0)) $(cut -d' ' -f2- "$T/yara.out" | sort -u | wc -l)" # "RULE FILE" lines
}

declare -A R
# measure NAME DIRECT_FN EXPECTED ENGINE_LINE: per rep, direct, then
# on-demand, then on-access, each chain run checked against the direct one.
measure() {
	local d=() od=() oa=() i r found
	for i in $(seq 1 "$REPS"); do
		r=$($2) || return 1
		d+=("${r% *}")
		found=${r#* }
		if [ "$found" != "$3" ]; then
			bad "$1 direct found $found files, planted $3: signatures or corpus wrong"
			return 1
		fi
		configure_chain "$4"
		r=$(demand_once "$found") || return 1
		od+=("$r")
		r=$(access_once "$found") || return 1
		oa+=("$r")
		note "$1 rep $i: direct ${d[-1]} ms, on-demand ${od[-1]} ms," \
			"on-access ${oa[-1]} ms ($found found by each)"
	done
	R[$1.direct]=$(printf '%s\n' "${d[@]}" | median)
	R[$1.demand]=$(printf '%s\n' "${od[@]}" | median)
	R[$1.access]=$(printf '%s\n' "${oa[@]}" | median)
}

# The chain's own cost, for reference: the eicar engine reads 129 bytes.
od=() oa=()
configure_chain 'engine = ( { plugin = "eicar"; action = "deny"; } );'
for _ in $(seq 1 "$REPS"); do
	r=$(demand_once "$EXPECT_EICAR") || exit 1
	od+=("$r")
	r=$(access_once "$EXPECT_EICAR") || exit 1
	oa+=("$r")
done
R[eicar.demand]=$(printf '%s\n' "${od[@]}" | median)
R[eicar.access]=$(printf '%s\n' "${oa[@]}" | median)

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
	measure clam clam_direct "$EXPECT_CLAM" "engine = ( { plugin = \"clamav\"; action = \"deny\"; options = { database = \"$T/db\"; }; } );" || exit 1
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
	measure yara yara_direct "$EXPECT_YARA" "engine = ( { plugin = \"yara\"; action = \"deny\"; options = { rules = \"$T/bench.yar\"; }; } );" || exit 1
else
	note "yara plugin or the yara command missing: yara skipped"
fi

# ---- The table: on-demand rows against the target, on-access reported.
row() { # row ENGINE PHASE CHAIN_MS TARGETED
	local r verdict="(reported)"
	r=$(ratio "${R[$1.direct]}" "$3")
	[ "$4" = yes ] && verdict=$(awk -v r="$r" 'BEGIN { print (r + 0 >= 0.9) ? "PASS" : "MISS" }')
	printf '%-6s %-28s %9s ms %9s ms %7sx  %s\n' "$1" "$2" "${R[$1.direct]}" "$3" "$r" "$verdict"
}
echo
printf '%-6s %-28s %12s %12s %8s  %s\n' "" "" "direct" "chain" "ratio" "target >= 0.90"
for e in clam yara; do
	[ -n "${R[$e.demand]:-}" ] || continue
	row "$e" "on-demand (epsecctl scan)" "${R[$e.demand]}" yes
	row "$e" "on-access (cat, $READERS readers)" "${R[$e.access]}" no
done
echo "eicar chain (the engine reads 129 bytes a file: the chain's own cost):" \
	"on-demand ${R[eicar.demand]} ms, on-access ${R[eicar.access]} ms"
echo "(ratio = chain throughput / direct throughput, medians of $REPS; $NFILES files of" \
	"1-256 KiB; the target applies to on-demand, the engine's throughput through the chain;" \
	"on-access is the opener's latency-bound path, reported as well)"
