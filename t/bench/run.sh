#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench: untar a corpus onto a tmpfs and read it back (twice, then once
# more after the agent restarts), with no agent, with the do-nothing listener
# (the floor), with the floor plus ignore marks, with the epsec chain (eicar,
# then eicar+yara) and with clamonacc+clamd; medians of BENCH_REPS runs and
# ratios to no agent and to the floor, all measured in this one invocation.
# BENCH_FILES (10000), BENCH_REPS (5), BENCH_CLAM_REPS (BENCH_REPS) size it.
# doc/bench.md says what each figure means.
set -u
export LC_ALL=C
. "$(dirname "$0")/../integration/lib.sh"
ns_enter "$@"

FILES=${BENCH_FILES:-10000}
REPS=${BENCH_REPS:-5}
CLAM_REPS=${BENCH_CLAM_REPS:-$REPS}
FLOOR=$top_builddir/t/bench/floor
POLL=0.02
BROKEN=0
declare -A RESULT NOTE
SUBJECTS=()
PHASES=(write settled read reread cold)
declare -A PHASE_NAME=([write]="write" [settled]="write+verdicts" [read]="read"
	[reread]="re-read" [cold]="cold read")

broken() { echo "BROKEN: $*"; BROKEN=1; }

# ------------------------------------------------------------ the corpus

prepare() {
	busy
	setup_tmpfs
	trap bench_cleanup EXIT
	local kb=$(( FILES * 300 + 65536 ))
	mkdir -p "$T/src"
	mount -t tmpfs -o "size=${kb}k" epsec-bench-src "$T/src" || skip "cannot mount a tmpfs"
	mount -o "remount,size=${kb}k" "$T/fs" || skip "cannot grow the tmpfs"
	"$top_builddir/t/bench/mkcorpus" "$T/src/c" "$FILES" || { broken "mkcorpus"; exit 1; }
	tar cf "$T/src/corpus.tar" -C "$T/src/c" . || { broken "tar cf"; exit 1; }
	note "corpus: $FILES files, $(du -sh "$T/src/c" | cut -f1) in $(find "$T/src/c" -type d | wc -l) directories; tar of $(du -h "$T/src/corpus.tar" | cut -f1), on its own tmpfs"
	rm -rf "$T/src/c"
	note "$(uname -sr), $(nproc) cpus, $REPS reps (clamonacc: $CLAM_REPS), medians"
}

# Ratios taken while something else loads the machine mean little: say so
# (before we load it ourselves), here and under the table.
BUSY=
busy() {
	local load
	read -r load _ </proc/loadavg
	if awk -v l="$load" 'BEGIN { exit !(l > 1.0) }'; then
		BUSY="WARNING: load average $load before the bench started: other work shares these $(nproc) cpus, the ratios are unreliable"
		echo "$BUSY"
	fi
}

bench_cleanup() {
	local rc=$?
	[ -n "${T:-}" ] && umount -l "$T/src" 2>/dev/null
	(exit "$rc")
	cleanup
}

read_all() { find "$T/fs/x" -type f -print0 | xargs -0 cat > /dev/null; }

# ------------------------------------------------------------ one subject

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.6f", m / 1e6 }'; }
secs() { printf '%.3f' "$1"; }
range() { sort -n | awk '{ a[NR] = $1 } END { printf "%.3f-%.3f", a[1] / 1e6, a[NR] / 1e6 }'; }

# measure NAME REPS SETTLE_FN RESTART_FN: untar (then SETTLE_FN waits for
# the verdicts), read, re-read, RESTART_FN (empties the agent's caches; not
# timed), cold read. A function given as "-" skips its phase.
measure() {
	local name=$1 reps=$2 settle=$3 restart=$4 i t0 t1 t2 p
	local -A s=()

	for ((i = 0; i < reps; i++)); do
		rm -rf "$T/fs/x"; mkdir "$T/fs/x"
		[ "$settle" = - ] || "$settle" begin
		t0=${EPOCHREALTIME/./}; tar xf "$T/src/corpus.tar" -C "$T/fs/x" || broken "$name: tar xf"; t1=${EPOCHREALTIME/./}
		t2=$t1
		if [ "$settle" != - ] && ! "$settle" wait; then
			broken "$name: the verdicts of the untar were not all in after 600 s"
			t2=
		elif [ "$settle" != - ]; then
			t2=$SETTLED_AT
		fi
		s[write]+="$((t1 - t0)) "
		[ -n "$t2" ] && s[settled]+="$((t2 - t0)) "
		t0=${EPOCHREALTIME/./}; read_all; s[read]+="$(( ${EPOCHREALTIME/./} - t0 )) "
		t0=${EPOCHREALTIME/./}; read_all; s[reread]+="$(( ${EPOCHREALTIME/./} - t0 )) "
		[ "$restart" = - ] && continue
		"$restart" || { broken "$name: restart"; return 1; }
		t0=${EPOCHREALTIME/./}; read_all; s[cold]+="$(( ${EPOCHREALTIME/./} - t0 )) "
	done
	SUBJECTS+=("$name")
	local line="$name (median, range):"
	for p in "${PHASES[@]}"; do
		[ -n "${s[$p]:-}" ] || continue
		RESULT[$name.$p]=$(tr ' ' '\n' <<<"${s[$p]}" | grep . | median)
		line+=" ${PHASE_NAME[$p]} $(secs "${RESULT[$name.$p]}") ($(tr ' ' '\n' <<<"${s[$p]}" | grep . | range));"
	done
	note "$line"
}

# ------------------------------------------------------------ no agent, floor

bench_none() { measure none "$REPS" - restart_none; }
restart_none() { :; }

FLOOR_ARGS=()
start_floor() {
	start floor "$FLOOR" "$T/fs" "${FLOOR_ARGS[@]}"
	wait_until 5 grep -q ready "$T/floor.log" || { broken "floor did not start: $(cat "$T/floor.log")"; return 1; }
}
stop_floor() { kill "$PID_floor" 2>/dev/null; wait "$PID_floor" 2>/dev/null; }
restart_floor() { stop_floor; start_floor; }

# How many events one untar makes, counted by the floor: the verdicts of
# a write are all in once the agent has seen that many and ended them all.
calibrate() {
	local o c
	FLOOR_ARGS=()
	start_floor || exit 1
	mkdir "$T/fs/x"
	tar xf "$T/src/corpus.tar" -C "$T/fs/x"
	sleep 0.5
	stop_floor
	read -r o c <<<"$(sed -n 's/^floor: \([0-9]*\) open_perm allowed, \([0-9]*\) close_write.*/\1 \2/p' "$T/floor.log")"
	rm -rf "$T/fs/x"
	[ -n "${c:-}" ] && [ "$c" -ge "$FILES" ] || { broken "calibration: the floor saw ${c:-no} close_write events for $FILES files"; exit 1; }
	UNTAR_EVENTS=$((o + c))
	note "one untar: $o open_perm and $c close_write events (counted by the floor)"
}

bench_floor() { # bench_floor NAME [-i]
	local name=$1; shift
	FLOOR_ARGS=("$@")
	start_floor || return 1
	measure "$name" "$REPS" - restart_floor
	stop_floor
}

# ------------------------------------------------------------ vsep

ctl_snapshot() { # the counters that end an event, and what is still open
	status_json | jq -r '.vsep | select(.ok) | .counters as $c |
		"\($c.events) \($c.allowed + $c.denied + $c.deleted + $c.quarantined + $c.timeouts + $c.disconnected + $c.overload + $c.errors + $c.excluded + $c.too_big) \(.in_flight)"'
}

# Every close_write of the untar answered: as many events came in as the
# floor counted for one untar (the O_CREAT opens, answered before tar went
# on, and the close_writes), every event that came in has ended (allowed,
# denied, deleted, quarantined, or a policy answer), and nothing is held.
SETTLED_AT=0
settle_vsep() {
	local ev en fl deadline
	if [ "$1" = begin ]; then
		read -r EV0 EN0 _ <<<"$(ctl_snapshot)"
		return 0
	fi
	deadline=$(( ${EPOCHREALTIME/./} + 600000000 ))
	while [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
		read -r ev en fl <<<"$(ctl_snapshot)"
		SETTLED_AT=${EPOCHREALTIME/./}
		if [ -n "${fl:-}" ] && [ "$fl" -eq 0 ] && [ $((ev - EV0)) -ge "$UNTAR_EVENTS" ] &&
			[ $((en - EN0)) -ge $((ev - EV0)) ]; then
			verify_settled "$ev" "$en"
			return 0
		fi
		sleep "$POLL"
	done
	note "vsep counters 600 s after the untar: $(status_json | jq -c '.vsep | {in_flight, counters}')"
	return 1
}

# A premature "settled" would flatter us: look again, untimed.
verify_settled() {
	local ev en fl
	sleep 0.3
	read -r ev en fl <<<"$(ctl_snapshot)"
	if [ "$ev" != "$1" ] || [ "$en" != "$2" ]; then
		note "WARNING: vsep counters moved after the verdicts were counted in ($1/$2 -> $ev/$en): write+verdicts may be short"
	fi
}

bench_configs() { # bench_configs ENGINE_LIST
	local marks=$(( FILES * 2 > 16384 ? FILES * 2 : 16384 ))
	cat >"$T/run/epsec-mux.conf" <<EOC
DEBUG_LEVEL = 4;
DEBUG_DEST = 3;
id = "bench-mux";
control = "$T/run/epsec-mux.ctl";
agents = [ "unix://$T/run/mux.sock" ];
svas = [ "unix://$T/run/sva.sock" ];
agent_log_dir = "$T/run/agents";
sva_timeout_ms = 10000;
EOC
	cat >"$T/run/epsec-sva.conf" <<EOC
DEBUG_LEVEL = 4;
DEBUG_DEST = 3;
id = "bench-sva";
user = "root";
control = "$T/run/epsec-sva.ctl";
mux = "unix://$T/run/sva.sock";
workers = $(nproc);
engine = ( $1 );
EOC
	cat >"$T/run/vsep.conf" <<EOC
DEBUG_LEVEL=4
DEBUG_DEST=3
id = "bench-agent";
control = "$T/run/vsep.ctl";
mux = "unix://$T/run/mux.sock";
protect = [ "$T/fs" ];
scan_timeout_ms = 10000;
on_timeout = "allow";
on_disconnect = "allow";
inline_bytes = 65536;
cache_size = $marks;
ignore_marks = true;
ignore_marks_max = $marks;
EOC
}

# The chain must be seen to work before it is timed: a file each engine
# detects (EICAR; with yara, also a file only the yara rule knows), written
# to the protected tmpfs, is deleted once closed.
probe_vsep() {
	local what
	for what in eicar "${PROBES[@]}"; do
		"$what" > "$T/fs/probe.com"
		wait_until 5 test ! -e "$T/fs/probe.com" && continue
		rm -f "$T/fs/probe.com"
		broken "vsep did not delete a file the engine detects ($what): the chain is not scanning"
		return 1
	done
}
PROBES=()

restart_vsep() {
	status_json | jq -c '.vsep.counters' >> "$T/vsep-counters.jsonl"
	kill "$PID_vsep" 2>/dev/null; wait "$PID_vsep" 2>/dev/null
	start vsep "$VSEP" -f -c "$T/run/vsep.conf"
	wait_until 10 agent_connected
}

# The counters of every vsep that ran (each restart starts from zero).
vsep_health() {
	local sum
	status_json | jq -c '.vsep.counters' >> "$T/vsep-counters.jsonl"
	sum=$(jq -s 'map(select(. != null)) | reduce .[] as $c ({}; reduce ($c | keys[]) as $k (.; .[$k] += $c[$k]))' "$T/vsep-counters.jsonl")
	rm -f "$T/vsep-counters.jsonl"
	jq -r '"# \(.events) events: \(.allowed) allowed, \(.denied) denied, \(.deleted) deleted, cache \(.cache_hits) hits / \(.cache_misses) misses, \(.ignore_marks) ignore marks; timeouts \(.timeouts), overload \(.overload), errors \(.errors), no scanner \(.disconnected)"' <<<"$sum"
	jq -e '.timeouts + .overload + .errors + .disconnected == 0' <<<"$sum" >/dev/null ||
		note "WARNING: some events were answered by policy, not by a verdict (see above)"
}

bench_vsep() { # bench_vsep NAME ENGINE_LIST
	bench_configs "$2"
	start_chain || { broken "$1: the chain did not start"; stop_daemons; return 1; }
	probe_vsep || { stop_daemons; return 1; }
	measure "$1" "$REPS" settle_vsep restart_vsep
	vsep_health
	stop_daemons
}

YARA_LA=$top_builddir/plugins/yara.la
yara_probe() { echo "epsec bench: only the yara rule knows this line"; }
# The EICAR rule the eicar engine applies, and one for yara_probe; written
# here so the repository never holds the EICAR string whole.
yara_rules() {
	local s
	s=$(eicar | sed 's/\\/\\\\/g; s/"/\\"/g')
	printf 'rule epsec_bench_eicar {\n  meta: description = "EICAR test file (bench)"\n  strings: $a = "%s"\n  condition: $a at 0 and filesize <= 128\n}\n' \
		"$s" > "$T/run/bench.yar"
	printf 'rule epsec_bench_probe {\n  strings: $a = "only the yara rule knows"\n  condition: $a\n}\n' >> "$T/run/bench.yar"
}

# ------------------------------------------------------------ clamonacc

clam_db() {
	local f=$CLAM/eicar.txt
	eicar > "$f"
	# The same test file two ways, as the eicar engine knows it: its bytes
	# at offset 0 (.ndb) and its hash (.hdb).
	echo "Epsec.Test.EICAR:0:0:$(od -An -tx1 "$f" | tr -d ' \n')" > "$CLAM/db/epsec.ndb"
	echo "$(md5sum < "$f" | cut -d' ' -f1):$(stat -c %s "$f"):Epsec.Test.EICAR.MD5" > "$CLAM/db/epsec.hdb"
	rm -f "$f"
}

clam_conf() {
	cat >"$CLAM/clamd.conf" <<EOC
LocalSocket $CLAM/run/clamd.sock
User clamav
Foreground yes
DatabaseDirectory $CLAM/db
LogFile $CLAM/run/clamd.log
LogTime yes
SelfCheck 0
PidFile $CLAM/run/clamd.pid
OnAccessIncludePath $T/fs
OnAccessPrevention yes
OnAccessExcludeUname clamav
EOC
}

# clamonacc blocks the probe (an open of an EICAR file fails) and lets a
# clean file through: only then is it working.
probe_clam() {
	eicar > "$T/fs/probe.com"
	echo clean > "$T/fs/clean.txt"
	local i ok=1
	for ((i = 0; i < 60; i++)); do
		if ! cat "$T/fs/probe.com" >/dev/null 2>&1; then ok=0; break; fi
		kill -0 "$PID_clamonacc" 2>/dev/null || break
		sleep 0.5
	done
	[ $ok -eq 0 ] && { [ "$(cat "$T/fs/clean.txt" 2>/dev/null)" = clean ] || ok=1; }
	rm -f "$T/fs/probe.com" "$T/fs/clean.txt"
	return $ok
}

clam_why() { tail -n 3 "$@" 2>/dev/null | tr '\n' ' '; }

# Starts clamd and clamonacc; sets CLAM_MODE, or CLAM_SKIP saying why not.
start_clam() {
	local mode
	command -v clamd >/dev/null && command -v clamonacc >/dev/null ||
		{ CLAM_SKIP="clamd/clamonacc not installed (Debian: apt-get install clamav-daemon)"; return 1; }
	id clamav >/dev/null 2>&1 || { CLAM_SKIP="no clamav user (clamav-daemon's package creates it)"; return 1; }
	CLAM=$T/clam
	chmod 755 "$T"
	mkdir -p "$CLAM/db" "$CLAM/run"
	chown clamav "$CLAM/run"
	clam_db; clam_conf
	start clamd clamd -c "$CLAM/clamd.conf"
	wait_until 120 test -S "$CLAM/run/clamd.sock" ||
		{ CLAM_SKIP="clamd did not start: $(clam_why "$T/clamd.log" "$CLAM/run/clamd.log")"; return 1; }
	for mode in --fdpass ""; do
		start clamonacc clamonacc -F -c "$CLAM/clamd.conf" $mode -l "$CLAM/run/clamonacc.log"
		if probe_clam; then
			CLAM_MODE=${mode:-"(no --fdpass)"}
			return 0
		fi
		note "clamonacc ${mode:-without --fdpass} did not block the probe: $(clam_why "$T/clamonacc.log" "$CLAM/run/clamonacc.log")"
		kill "$PID_clamonacc" 2>/dev/null; wait "$PID_clamonacc" 2>/dev/null
	done
	CLAM_SKIP="clamonacc did not block an EICAR file with or without --fdpass"
	return 1
}

bench_clam() {
	CLAM_SKIP=
	if ! start_clam; then
		note "SKIP clamonacc: $CLAM_SKIP"
		NOTE[clamonacc]="skipped: $CLAM_SKIP"
		stop_daemons
		return 0
	fi
	note "clamonacc $CLAM_MODE + clamd $(clamd --version | cut -d/ -f1 | sed 's/ClamAV //'), OnAccessPrevention, 2-signature database"
	# It scans opens and reads (FAN_OPEN_PERM, FAN_ACCESS_PERM), never a
	# close-after-write: the writer cannot finish before its verdicts, so
	# write+verdicts is the writer's time. It keeps no verdict cache of its
	# own to empty, so the cold read is not run.
	measure clamonacc "$CLAM_REPS" - -
	NOTE[clamonacc]="write+verdicts = write (clamonacc scans opens, not close-after-write; what was written is scanned at its next open); no cold read"
	note "clamd found $(grep -c "/fs/x/.*FOUND" "$CLAM/run/clamd.log" 2>/dev/null) files of the corpus infected (0 expected)"
	stop_daemons
}

# ------------------------------------------------------------ the report

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else printf "-" }'; }

# target PHASE: "BASE LIMIT" for vsep's rows (see DESIGN.md).
target() {
	case $1 in
	reread) echo "none 1.05" ;;
	*) echo "floor 1.10" ;;
	esac
}

row() { # row SUBJECT PHASE
	local m=$1 p=$2 v base limit b verdict=""
	v=${RESULT[$m.$p]:-}
	[ -n "$v" ] || return 0
	local fl=${RESULT[floor.$p]:-}
	[ "$p" = settled ] && fl=${RESULT[floor.write]:-}
	if [[ $m == vsep* ]]; then
		read -r base limit <<<"$(target "$p")"
		if [ "$base" = none ]; then b=${RESULT[none.$p]:-}; else b=$fl; fi
		if [ -z "$b" ]; then
			verdict="<= ${limit}x $base: n/a"
		elif awk -v a="$v" -v b="$b" -v l="$limit" 'BEGIN { exit !(a <= b * l) }'; then
			verdict="<= ${limit}x $base: PASS"; PASSED=$((PASSED + 1))
		else
			verdict="<= ${limit}x $base: MISS"; MISSED=$((MISSED + 1))
		fi
	fi
	printf '%-18s %-15s %9s %8s %8s   %s\n' "$m" "${PHASE_NAME[$p]}" "$(secs "$v")" \
		"$(ratio "$v" "${RESULT[none.$p]:-}")" "$(ratio "$v" "$fl")" "$verdict"
}

report() {
	local m p
	PASSED=0 MISSED=0
	echo
	echo "epsec bench: $FILES files (1 KiB-256 KiB) on a tmpfs, median seconds of $REPS reps"
	printf '%-18s %-15s %9s %8s %8s   %s\n' subject phase "median s" "x none" "x floor" target
	for m in "${SUBJECTS[@]}"; do
		for p in "${PHASES[@]}"; do row "$m" "$p"; done
	done
	echo
	for m in "${!NOTE[@]}"; do echo "$m: ${NOTE[$m]}"; done
	echo "write = tar xf as the writer sees it; write+verdicts = until the agent's counters show every"
	echo "close_write answered (the floor and no agent: the writer's time); read = every file once right"
	echo "after the write; re-read = again; cold read = again after the agent restarted (nothing cached)."
	echo "x floor: against the do-nothing listener (no ignore marks) in the same phase."
	echo "targets (vsep rows): re-read <= 1.05x no agent; write, write+verdicts, read, cold read <= 1.1x the floor"
	echo "targets: $PASSED PASS, $MISSED MISS"
	[ -z "$BUSY" ] || echo "$BUSY"
}

# ------------------------------------------------------------ main

prepare
calibrate
bench_none
bench_floor floor
bench_floor floor-ignore -i
bench_vsep vsep-eicar '{ plugin = "eicar"; action = "delete"; }'
if [ -f "$YARA_LA" ]; then
	yara_rules
	PROBES=(yara_probe)
	bench_vsep vsep-eicar+yara "{ plugin = \"eicar\"; action = \"delete\"; }, { plugin = \"yara\"; action = \"delete\"; options = { rules = \"$T/run/bench.yar\"; }; }"
else
	note "SKIP vsep-eicar+yara: $YARA_LA is not built (the yara engine is not there yet)"
	NOTE[vsep-eicar+yara]="skipped: plugins/yara.la not built"
fi
bench_clam
report
[ "$BROKEN" -eq 0 ]
