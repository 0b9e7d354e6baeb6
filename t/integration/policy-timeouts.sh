#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Nothing waits on a scanner that is slow, stopped or gone: the SVA slower
# than scan_timeout_ms, the SVA stopped mid-scan, the SVA killed mid-scan,
# the mux killed mid-scan and then absent. Every opener returns within the
# timeout (plus a margin) with the policy's answer, and the counters say
# which policy answered, once with every policy "allow" and once "deny".
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

P=$T/fs
TIMEOUT_MS=700
# The answer must come by the timeout; the margin is for the held table's
# 50 ms sweep and a loaded machine (make -j2 check).
LIMIT_MS=$((TIMEOUT_MS + 800))
for f in slow-1 slow-2 mid-1 mid-2 mid-3 fast.txt; do echo "$f" >"$P/$f"; done

# open_bg FILE: open in the background; bg_report FILE: its report, in $out.
open_bg() { "$POLICY_OPEN" "$P/$1" >"$T/$1.out" 2>&1 & OPENER=$!; }
bg_report() { wait "$OPENER"; out=$(cat "$T/$1.out"); }
kill9() { kill -9 "$1"; wait "$1" 2>/dev/null; }

# answered REPORT POLICY: one open, answered by POLICY within LIMIT_MS.
answered() {
	local want=ok
	[ "$2" = deny ] && want=denied
	[ "$(field "$want" "$1")" = 1 ] && [ "$(field max_ms "$1")" -le "$LIMIT_MS" ]
}

run_policy() {
	local pol=$1 t0 out
	stop_daemons
	# Each policy starts afresh: no backlog of files the last run let pass.
	rm -rf "$T/state"
	# slow-*: 3 s to scan, far beyond the timeout; mid-*: 400 ms, within it.
	policy_configs "\"$P\"" "$(slow_engine slow 3000), $(slow_engine mid 400)" <<EOC
DEBUG_LEVEL = 6;
scan_timeout_ms = $TIMEOUT_MS;
on_timeout = "$pol";
on_disconnect = "$pol";
on_overload = "$pol";
cache_size = 0;
ignore_marks = false;
EOC
	policy_start || return 1
	note "policy $pol"

	out=$("$POLICY_OPEN" "$P/fast.txt")
	check "[$pol] a clean file with a working SVA opens" test "$(field ok "$out")" = 1
	out=$("$POLICY_OPEN" "$P/mid-1")
	check "[$pol] a 400 ms scan within the timeout gives the verdict ($out)" \
		test "$(field ok "$out")" = 1
	check "[$pol] ... and counts no timeout" test "$(vc timeouts)" = 0

	# (1) The SVA slower than scan_timeout_ms, four openers at once.
	out=$("$POLICY_OPEN" -n 4 -p 4 "$P/slow-1")
	local want=ok; [ "$pol" = deny ] && want=denied
	check "[$pol] SVA slower than the timeout: 4 openers get '$pol' within ${LIMIT_MS} ms ($out)" \
		sh -c "[ '$(field "$want" "$out")' = 4 ] && [ '$(field max_ms "$out")' -le $LIMIT_MS ]"
	check "[$pol] ... the opener waited for the timeout, not less" \
		test "$(field max_ms "$out")" -ge $((TIMEOUT_MS - 50))
	check "[$pol] ... 4 timeouts counted" test "$(vc timeouts)" = 4

	# (2) The SVA stopped (SIGSTOP) in the middle of a 400 ms scan.
	open_bg mid-2
	sleep 0.15
	kill -STOP "$PID_sva"
	bg_report mid-2
	kill -CONT "$PID_sva"
	check "[$pol] SVA stopped mid-scan: the opener gets '$pol' within ${LIMIT_MS} ms ($out)" \
		answered "$out" "$pol"
	check "[$pol] ... counted as a timeout" test "$(vc timeouts)" = 5

	# (3) The SVA killed in the middle of a scan: the mux has no other.
	open_bg mid-3
	sleep 0.15
	kill9 "$PID_sva"
	bg_report mid-3
	check "[$pol] SVA killed mid-scan: the opener gets '$pol' within ${LIMIT_MS} ms ($out)" \
		answered "$out" "$pol"
	out=$("$POLICY_OPEN" "$P/fast.txt")
	check "[$pol] no SVA at all: '$pol' within ${LIMIT_MS} ms ($out)" answered "$out" "$pol"
	local lost=$(( $(vc timeouts) + $(vc disconnected) ))
	check "[$pol] ... counted as timeouts or no scanner ($lost)" test "$lost" -ge 7

	# (4) The mux killed in the middle of a scan (a new SVA scans slowly).
	start sva2 "$SVA" -f -c "$T/run/epsec-sva.conf"
	wait_until 10 mux_has_sva || fail "[$pol] a new SVA joined the mux"
	local d0; d0=$(vc disconnected)
	open_bg slow-2
	sleep 0.2
	t0=$(date +%s%3N)
	kill9 "$PID_mux"
	bg_report slow-2
	check "[$pol] mux killed mid-scan: the opener gets '$pol' at once ($out)" \
		answered "$out" "$pol"
	note "[$pol] answered $(( $(date +%s%3N) - t0 )) ms after the mux died"
	out=$("$POLICY_OPEN" -n 3 "$P/fast.txt")
	check "[$pol] mux gone: openers get '$pol' at once ($out)" \
		sh -c "[ '$(field "$want" "$out")' = 3 ] && [ '$(field max_ms "$out")' -le 200 ]"
	check "[$pol] ... counted as no scanner" test $(( $(vc disconnected) - d0 )) -ge 4

	local n; n=$(vc events)
	check "[$pol] every event answered: events ($n) = allowed + denied" \
		test "$n" -eq $(( $(vc allowed) + $(vc denied) ))
	if [ "$pol" = allow ]; then
		check "[$pol] nothing denied" test "$(vc denied)" = 0
	else
		check "[$pol] only the working scans were allowed (2)" test "$(vc allowed)" = 2
	fi
	check "[$pol] nothing held any more" in_flight_zero
	check "[$pol] vsep still runs" kill -0 "$PID_vsep"
}

run_policy allow
run_policy deny
finish
