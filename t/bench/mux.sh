#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench: epsec-mux's routing with synthetic agents (mux_agents, the
# real protocol on unix://) and a null engine (mux_sva -m null: a libepsec
# appliance that answers ALLOW at once, over tcp://): events per second and
# p50/p99 latency at light load (one agent, one event at a time), with 100
# agents and with 1,000 agents, beside the baseline of one agent talking
# straight to the same appliance with no mux between (mux_agents -D), all
# in this one invocation. The mux's own figure (EVENT in to VERDICT out,
# last 4096 events) comes from its status.
# BENCH_MUX_SECS (5) is the length of each run.
set -u
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/mux-lib.sh"
SECS=${BENCH_MUX_SECS:-5}
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
# The agents and the appliance are check programs: build them if need be.
make -s -C "$top_builddir" t/integration/mux_agents t/integration/mux_sva >/dev/null 2>&1
mux_setup
# Each agent is an fd in the mux and one in mux_agents; both raise their
# soft limit to the hard one.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
MANY=1000
if [ "$nofile" -lt 1100 ]; then
	MANY=$((nofile - 100))
	note "RLIMIT_NOFILE hard limit $nofile: the 1,000-agent run uses $MANY agents"
fi

declare -A R
# run NAME [mux_agents args...]: one run, its summary kept in R[NAME].
run() {
	local name=$1 out; shift
	out=$("$AGENTS" -q -e 0 -d "$SECS" -s 256 "$@" 2>"$T/$name.err")
	R[$name]=$out
	R[$name.mux]=""
	[ -n "$out" ] || { note "$name failed: $(tail -n 3 "$T/$name.err")"; return 1; }
}
val() { grep -o "\b$2=[0-9.]*" <<<"${R[$1]}" | cut -d= -f2; }

# Baseline: no mux. mux_agents plays the mux for the appliance.
direct() {
	local name=$1 uri="tcp://127.0.0.1:$(free_port)"; shift
	"$AGENTS" -q -D -k 1 -e 0 -d "$SECS" -s 256 "$@" "$uri" >"$T/$name.out" 2>"$T/$name.err" &
	local a=$!
	sleep 0.2
	"$TSVA" -u "$uri" -m null -t 1 >/dev/null 2>&1 &
	local s=$!
	wait "$a" || note "$name failed: $(tail -n 3 "$T/$name.err")"
	kill "$s" 2>/dev/null; wait "$s" 2>/dev/null
	R[$name]=$(grep '^agents=' "$T/$name.out")
	R[$name.mux]=""
}
direct direct-light -n 1 -w 1
direct direct-peak -n 1 -w 64

MUX_DEBUG_LEVEL=4 write_mux_conf
start_mux || exit 1
start tsva "$TSVA" -u "$SVA_URI" -i null-sva -m null -t 1
wait_until 10 svas_connected 1 || { echo "the null appliance did not connect"; exit 1; }
through() { # through NAME ARGS...: a run through the mux, with its own figure
	local name=$1; shift
	run "$name" "$@" "$AGENT_UNIX" || return
	R[$name.mux]=$(mux_q '.latency | "\(.p50_us) \(.p99_us)"')
}
through mux-light -n 1 -w 1
through mux-100 -n 100 -w 4
through mux-many -n "$MANY" -w 2
stop_daemons

echo
echo "epsec-mux routing, null engine, ${SECS} s per run (agents on unix://, appliance on tcp://)"
printf '%-18s %6s %6s %11s %8s %8s %9s %9s\n' run agents window events/s p50_us p99_us mux_p50 mux_p99
for n in direct-light direct-peak mux-light mux-100 mux-many; do
	[ -n "${R[$n]:-}" ] || { printf '%-18s failed\n' "$n"; continue; }
	read -r mp50 mp99 <<<"${R[$n.mux]:-- -}"
	printf '%-18s %6s %6s %11s %8s %8s %9s %9s\n' "$n" "$(val "$n" agents)" "$(val "$n" window)" \
		"$(val "$n" rate)" "$(val "$n" p50_us)" "$(val "$n" p99_us)" "${mp50:--}" "${mp99:--}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "mux-light p99 / direct-light p99: $(ratio "$(val mux-light p99_us)" "$(val direct-light p99_us)")x"
echo "mux-100 events/s / direct-peak events/s: $(ratio "$(val mux-100 rate)" "$(val direct-peak rate)")x"
echo "mux-many events/s / direct-peak events/s: $(ratio "$(val mux-many rate)" "$(val direct-peak rate)")x"
target() { if awk -v a="$2" -v b="$3" "BEGIN { exit !(a $4 b) }"; then echo "$1: met ($2)"; else echo "$1: MISSED ($2)"; fi; }
target ">= 100000 events/s with $MANY agents" "$(val mux-many rate)" 100000 '>='
target "p99 < 300 us at light load (mux-light)" "$(val mux-light p99_us)" 300 '<'
# A MISS is printed, not an error; a run that broke is.
for n in direct-light direct-peak mux-light mux-100 mux-many; do
	[ -n "$(val "$n" rate)" ] || exit 1
done
awk -v l="$LOAD0" 'BEGIN { exit !(l > 1) }' &&
	echo "(load average $LOAD0 before it started: other work shared the machine)"
exit 0
