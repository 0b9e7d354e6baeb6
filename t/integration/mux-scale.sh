#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 100 agents on two endpoints (unix:// and tcp://) and 3 SVAs on tcp://,
# through the real epsec-mux. Files are larger than the inline bytes, so
# every scan READs the rest through the mux; each agent answers only READs
# for its own requests, with bytes that name it, and the SVAs allow a file
# only when the bytes are the ones its path names. Two rogue agents send
# an SVA's VERDICT: refused and logged, everyone else served.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mux-lib.sh"
mux_setup
# 200 events in flight over 3 SVAs, at most 16 given to each: the rest
# wait in the mux (sva_window) and must still all be answered.
write_mux_conf "sva_window = 16;"
start_mux || exit 1
start_tsva 3 check -t 4
check "3 SVAs connected" wait_until 10 svas_connected 3

# 50 agents on each endpoint (2 rogues among the unix ones), 20 events of
# 300 bytes each with 16 inline: at least one READ per event.
ARGS=(-w 2 -e 20 -s 300 -i 16 -T 5000 -H 3000)
start agents-unix "$AGENTS" -n 50 -r 2 "${ARGS[@]}" "$AGENT_UNIX"
start agents-tcp "$AGENTS" -n 50 "${ARGS[@]}" "$AGENT_TCP"
check "agents on unix:// done" wait_until 30 grep -q '^done' "$T/agents-unix.log"
check "agents on tcp:// done" wait_until 30 grep -q '^done' "$T/agents-tcp.log"

# While they are still connected: who is there, on which transport.
st=$(mux_json)
check "no SVA holds more than sva_window events" \
	jqe 'all(.svas[]; .in_flight <= 16)' <<<"$st"
check "98 agents listed in status" test "$(jq '.agents | length' <<<"$st")" -eq 98
check "agents on both transports" test \
	"$(jq -r '[.agents[].transport] | unique | join(",")' <<<"$st")" = "tcp,unix"
check "each agent counted its 20 events" \
	jqe '[.agents[].events] | all(. == 20)' <<<"$st"
check "3 SVAs listed with engines and generation" \
	jqe '(.svas | length) == 3 and all(.svas[]; .engines == ["check"] and .generation == 1)' <<<"$st"
# Least outstanding work: every SVA took a fair share of the 1960 events.
check "load spread over the 3 SVAs" jqe '[.svas[].events] | all(. >= 300)' <<<"$st"
check "routing latency reported" jqe '.latency.samples > 0 and .latency.p99_us > 0' <<<"$st"
check "2 rogue agents counted as rejected" jqe '.counters.rejected == 2' <<<"$st"
note "latency $(jq -c .latency <<<"$st"), SVA events $(jq -c '[.svas[].events]' <<<"$st")"

text=$("$CTL" -r "$T/run" status 2>/dev/null)
check "epsecctl status prints agents with transport and version" \
	grep -Eq 'agent-[0-9]+-00007 +unix +uid=[0-9]+ .*version [0-9]+ +events 20' <<<"$text"
check "epsecctl status prints routing latency" grep -Eq 'latency.*p50 [0-9]+ us.*p99 [0-9]+ us' <<<"$text"

for side in unix tcp; do
	stop_pid=$(eval echo "\$PID_agents_$side")
	wait "$stop_pid"; rc=$?
	check "agents on $side: every event answered by a VERDICT, every READ their own" test "$rc" -eq 0
	note "$side: $(tail -n 1 "$T/agents-$side.log")"
done
check "agents on unix read through the mux" test "$(field "$T/agents-unix.log" reads)" -ge 960
check "agents on tcp read through the mux" test "$(field "$T/agents-tcp.log" reads)" -ge 1000
check "rogues refused with ERROR" test "$(field "$T/agents-unix.log" refused)" -eq 2
check "rogue refusals logged by the mux" \
	test "$(grep -c 'agent may not send VERDICT' "$T/mux.log")" -eq 2
check "the mux is still running" kill -0 "$PID_mux"
stop_mux_clean
finish
