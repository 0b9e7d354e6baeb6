#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SVAs that hang or die with events in flight. 100 agents keep 2 events
# each in flight on 3 slow SVAs (100 ms a scan, with READs). One SVA is
# stopped (SIGSTOP: its link stays up but it misses heartbeats): the mux
# finds it silent after peer_timeout_ms and gives its events to the others,
# so every event still gets its VERDICT; woken up, it comes back by itself.
# One is killed (kill -9): the same. Then the last ones are killed: every
# agent gets ERROR within sva_timeout_ms, none waits longer. A new SVA then
# serves everyone again.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mux-lib.sh"
mux_setup
SVA_TIMEOUT_MS=4000
write_mux_conf "peer_timeout_ms = 1500;"
start_mux || exit 1
start_tsva 3 slow -l 100 -t 16
check "3 SVAs connected" wait_until 10 svas_connected 3

counter() { mux_q ".counters.$1"; }
holds() { mux_q ".svas[] | select(.id == \"$1\") | .in_flight"; }

# lose_one NAME SIGNAL LOG: with events in flight, NAME gets SIGNAL; every
# event must still get its VERDICT, from the others.
lose_one() {
	local name=$1 sig=$2 log=$3 pid held before rc
	pid=$(eval echo "\$PID_$(tr - _ <<<"$name")")
	start "$log" "$AGENTS" -n 100 -w 2 -e 8 -s 300 -i 16 -T "$SVA_TIMEOUT_MS" -x verdict \
		"$AGENT_UNIX"
	wait_ready "$T/$log.log" || fail "agents ready"
	sleep 0.5
	held=$(holds "$name")
	before=$(counter redispatched)
	note "$name holds ${held:-0} events when it gets SIG$sig"
	check "$name holds events in flight" test "${held:-0}" -gt 0
	kill -"$sig" "$pid"
	[ "$sig" = KILL ] && wait "$pid" 2>/dev/null
	wait "$(eval echo "\$PID_$log")"; rc=$?
	check "SIG$sig: every event answered by a VERDICT from another SVA" test "$rc" -eq 0
	note "$(tail -n 1 "$T/$log.log")"
	check "SIG$sig: its events were re-dispatched" \
		test "$(( $(counter redispatched) - before ))" -ge "${held:-1}"
}

# (1) One SVA hangs (misses heartbeats), then wakes up and comes back.
lose_one tsva-1 STOP agents1
check "the hung SVA left the pool" wait_until 5 test "$(mux_q '.svas | length')" -eq 2
kill -CONT "$PID_tsva_1"
check "woken up, it reconnects by itself" wait_until 10 svas_connected 3

# (2) One SVA killed.
lose_one tsva-1 KILL agents1b
check "the dead SVA left the pool" wait_until 5 test "$(mux_q '.svas | length')" -eq 2

# (2) All SVAs killed: ERROR to every agent within the timeout.
start agents2 "$AGENTS" -n 100 -w 2 -e 8 -s 300 -i 16 -T "$SVA_TIMEOUT_MS" -x error "$AGENT_TCP"
wait_ready "$T/agents2.log" || fail "agents ready"
sleep 0.3
t0=$(ms_now)
kill -9 "$PID_tsva_2" "$PID_tsva_3"
wait "$PID_tsva_2" "$PID_tsva_3" 2>/dev/null
wait "$PID_agents2"; rc=$?
took=$(( $(ms_now) - t0 ))
check "every event answered (ERROR once no SVA is left), none later than sva_timeout_ms" \
	test "$rc" -eq 0
note "$(tail -n 1 "$T/agents2.log"); all answered ${took} ms after the kill"
check "agents were told by ERROR" test "$(field "$T/agents2.log" errors)" -gt 0
check "no SVA left in the pool" test "$(mux_q '.svas | length')" -eq 0

# (3) SVAs come back at any time: served again.
start tsva-4 "$TSVA" -u "$SVA_URI" -i tsva-4 -m check
check "a new SVA connected" wait_until 10 svas_connected 1
start agents3 "$AGENTS" -n 100 -w 2 -e 4 -s 300 -i 16 -T 5000 -x verdict "$AGENT_UNIX"
wait "$PID_agents3"; rc=$?
check "the new SVA serves every agent" test "$rc" -eq 0
check "the mux is still running" kill -0 "$PID_mux"
stop_mux_clean
finish
