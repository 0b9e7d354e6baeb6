#!/usr/bin/env bash
# make bench: untar and read a corpus on a tmpfs with no agent, with the
# do-nothing listener (the floor), with the floor plus ignore marks, and with
# the whole epsec chain (eicar engine); medians of BENCH_REPS runs, ratios to
# no agent and to the floor, all in this one invocation.
# BENCH_FILES (10000) and BENCH_REPS (8) size it.
set -u
. "$(dirname "$0")/../integration/lib.sh"
ns_enter "$@"
FILES=${BENCH_FILES:-10000}
REPS=${BENCH_REPS:-8}
FLOOR=$top_builddir/t/bench/floor
setup_tmpfs
mkdir -p "$T/src"
mount -t tmpfs -o size=4g epsec-bench-src "$T/src"
mount -o remount,size=4g "$T/fs"
"$top_builddir/t/bench/mkcorpus" "$T/src/c" "$FILES" || exit 1
tar cf "$T/src/corpus.tar" -C "$T/src" c
note "corpus: $FILES files, $(du -sh "$T/src/c" | cut -f1), $REPS reps"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
read_all() { find "$T/fs/x" -type f -print0 | xargs -0 cat > /dev/null; }
chain_idle() { status_json | jq -e '.vsep.in_flight == 0' >/dev/null; }

declare -A RESULT
# measure MODE: untar, (wait for verdicts), read, re-read; REPS times.
measure() {
	local mode=$1 untar=() settled=() read1=() read2=() t0 t1
	for _ in $(seq 1 "$REPS"); do
		rm -rf "$T/fs/x"; mkdir "$T/fs/x"
		t0=$(ms); tar xf "$T/src/corpus.tar" -C "$T/fs/x"; t1=$(ms)
		untar+=($((t1 - t0)))
		if [ "$mode" = vsep ]; then wait_until 600 chain_idle; fi
		settled+=($(( $(ms) - t0 )))
		t0=$(ms); read_all; read1+=($(( $(ms) - t0 )))
		t0=$(ms); read_all; read2+=($(( $(ms) - t0 )))
	done
	RESULT[$mode.untar]=$(printf '%s\n' "${untar[@]}" | median)
	RESULT[$mode.settled]=$(printf '%s\n' "${settled[@]}" | median)
	RESULT[$mode.read1]=$(printf '%s\n' "${read1[@]}" | median)
	RESULT[$mode.read2]=$(printf '%s\n' "${read2[@]}" | median)
	note "$mode: untar ${RESULT[$mode.untar]} ms (verdicts in: ${RESULT[$mode.settled]} ms), read ${RESULT[$mode.read1]} ms, re-read ${RESULT[$mode.read2]} ms"
}

with_floor() { # with_floor NAME [-i]
	local name=$1; shift
	"$FLOOR" "$T/fs" "$@" > "$T/$name.log" 2>&1 & local pid=$!
	wait_until 5 grep -q ready "$T/$name.log"
	measure "$name"
	kill "$pid"; wait "$pid" 2>/dev/null
}

measure none
with_floor floor
with_floor floor-ignore -i

write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$T/fs" 65536
sed -i 's/DEBUG_LEVEL *= *7/DEBUG_LEVEL = 4/; s/DEBUG_LEVEL=7/DEBUG_LEVEL=4/' "$T"/run/*.conf
start_chain || exit 1
measure vsep
stop_daemons

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
printf '%-14s %10s %10s %10s %10s\n' "" "untar" "verdicts" "read" "re-read"
for m in none floor floor-ignore vsep; do
	printf '%-14s %8s ms %8s ms %8s ms %8s ms\n' "$m" "${RESULT[$m.untar]}" \
		"${RESULT[$m.settled]}" "${RESULT[$m.read1]}" "${RESULT[$m.read2]}"
done
echo
for k in untar settled read1 read2; do
	printf '%-8s vsep/none %sx   vsep/floor %sx   floor/none %sx   floor-ignore/none %sx\n' "$k" \
		"$(ratio "${RESULT[vsep.$k]}" "${RESULT[none.$k]}")" \
		"$(ratio "${RESULT[vsep.$k]}" "${RESULT[floor.$k]}")" \
		"$(ratio "${RESULT[floor.$k]}" "${RESULT[none.$k]}")" \
		"$(ratio "${RESULT[floor-ignore.$k]}" "${RESULT[none.$k]}")"
done
