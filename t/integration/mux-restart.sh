#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Restarting epsec-mux while agents are busy, as `service epsec-mux restart`
# does it (TERM, wait, start) and as a crash does it (kill -9, start): 100
# test agents, the real epsec-sva and two test SVAs (libepsec), and, run as
# root, the real vsep on a tmpfs. Everyone reconnects by themselves within
# 2 s of the new mux answering; opens held by vsep meanwhile are answered
# by its policy; no agent ever gets another's READ or a wrong verdict.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mux-lib.sh"
WITH_VSEP=0
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
	ns_enter "$@"
	WITH_VSEP=1
fi
mux_setup
write_mux_conf "peer_timeout_ms = 1500;"
start_mux || exit 1

cat >"$T/run/epsec-sva.conf" <<EOC
DEBUG_LEVEL = 6;
DEBUG_DEST = 3;
id = "real-sva";
user = "root";
control = "$T/run/epsec-sva.ctl";
mux = "$SVA_URI";
$(plaintext mux "$SVA_URI")
workers = 2;
engine = ( { plugin = "eicar"; action = "delete"; } );
EOC
start sva "$SVA" -f -c "$T/run/epsec-sva.conf"
start_tsva 2 check -t 4
NSVAS=3
check "3 SVAs connected" wait_until 10 svas_connected 3

NAGENTS=100
if [ "$WITH_VSEP" = 1 ]; then
	mkdir -p "$T/fs"
	mount -t tmpfs -o size=64m epsec-mux-test "$T/fs" || skip "cannot mount tmpfs"
	cat >"$T/run/vsep.conf" <<EOC
DEBUG_LEVEL=6
DEBUG_DEST=3
id = "real-vsep";
control = "$T/run/vsep.ctl";
state_dir = "$T/state";
mux = "$AGENT_UNIX";
protect = [ "$T/fs" ];
scan_timeout_ms = 2000;
on_timeout = "allow";
on_disconnect = "allow";
EOC
	start vsep "$VSEP" -f -c "$T/run/vsep.conf"
	NAGENTS=101
	vsep_connected() { status_json | jq -e '.vsep.mux.connected == true' >/dev/null; }
	check "vsep connected" wait_until 10 vsep_connected
else
	note "not root: vsep is left out, the test agents and SVAs still run"
fi

# Busy: 100 agents (half on each endpoint) keep events in flight
# throughout, with READs, reconnecting by themselves when the mux goes.
ARGS=(-R -e 0 -d 11 -w 2 -g 10 -s 300 -i 16 -T 4000 -x any)
start agents-unix "$AGENTS" -n 50 "${ARGS[@]}" "$AGENT_UNIX"
start agents-tcp "$AGENTS" -n 50 "${ARGS[@]}" "$AGENT_TCP"
wait_ready "$T/agents-unix.log" && wait_ready "$T/agents-tcp.log" || fail "agents ready"
everyone_back() { svas_connected "$NSVAS" && agents_connected "$NAGENTS"; }
check "everyone connected" wait_until 10 everyone_back

# restart HOW [DOWN]: TERM (the init script's stop) or KILL (a crash),
# then start, after DOWN seconds (a slow restart: the clients' backoff has
# grown meanwhile, and must not keep them away long once the mux is back).
restart() {
	local how=$1 down=${2:-0} pid=$PID_mux t_up took
	sleep 1
	kill -"$how" "$pid"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	wait "$pid" 2>/dev/null
	if [ "$WITH_VSEP" = 1 ]; then
		# The mux is down: an open is held by vsep and answered by its
		# policy (on_disconnect = allow), not left waiting.
		echo "held while the mux is down ($how)" >"$T/fs/during-$how.txt"
		local t0=$(ms_now)
		check "open while the mux is down ($how) answered by policy" \
			timeout 5 cat "$T/fs/during-$how.txt" >/dev/null
		note "that open took $(( $(ms_now) - t0 )) ms"
	fi
	sleep "$down"
	start "mux-after-$how-$down" "$MUX" -f -c "$T/run/epsec-mux.conf"
	PID_mux=$!
	wait_until 5 mux_up || { fail "epsec-mux back after $how"; return; }
	t_up=$(ms_now)
	wait_until 5 everyone_back
	took=$(( $(ms_now) - t_up ))
	note "after $how (down ${down} s): $(mux_q '.agents | length') agents," \
		"$(mux_q '.svas | length') SVAs back in $took ms"
	check "after $how (down ${down} s) all $NAGENTS agents and $NSVAS SVAs are back within 2 s" \
		test "$took" -lt 2000
}
restart TERM
restart KILL
restart KILL 3.5

for side in unix tcp; do
	p=$(eval echo "\$PID_agents_$side")
	wait "$p"; rc=$?
	check "agents on $side: every event answered, every READ their own" test "$rc" -eq 0
	note "$side: $(tail -n 1 "$T/agents-$side.log")"
	check "agents on $side reconnected after each restart" \
		test "$(field "$T/agents-$side.log" reconnects)" -ge 150
	check "agents on $side were served after the restarts" \
		test "$(field "$T/agents-$side.log" verdicts)" -gt 2000
done
stop_mux_clean
finish
