#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Nothing passes unscanned because the chain was away: a file written while
# the SVA is down, or opened then by on_disconnect's "allow", is remembered
# and scanned once an SVA is back (an infected one gets its action, with
# nobody opening it), also across a restart of vsep; a damaged state file
# is ignored with a warning; the bound and what passes it are counted.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

P=$T/fs
STATE=$T/state/unscanned

configs() { # configs [UNSCANNED_MAX]
	policy_configs "\"$P\"" "$(eicar_engine delete)" 2000 <<EOC
DEBUG_LEVEL = 6;
scan_timeout_ms = 2000;
on_disconnect = "allow";
unscanned_max = ${1:-100000};
EOC
}
sva_down() { kill "$PID_sva" 2>/dev/null; wait "$PID_sva" 2>/dev/null
	wait_until 5 sh -c "! '$CTL' -r '$T/run' status --json | jq -e '.[\"epsec-mux\"].svas | length > 0' >/dev/null"; }
sva_up() { start sva "$SVA" -f -c "$T/run/epsec-sva.conf"; wait_until 10 mux_has_sva; }
vsep_restart() {
	kill "$PID_vsep"; wait "$PID_vsep" 2>/dev/null
	start vsep "$VSEP" -f -c "$T/run/vsep.conf"
	wait_until 10 agent_connected
}
waiting() { [ "$(vc unscanned)" = "$1" ]; }

configs
policy_start || exit 1

# 1. Written while the SVA is down: remembered, deleted once it is back.
sva_down
eicar >"$P/written.com"
check "an EICAR file written with no SVA is remembered (unscanned 1)" wait_until 5 waiting 1
status=$("$CTL" -r "$T/run" status 2>&1)
check "  epsecctl status says the backlog is not empty" grep -q "BACKLOG: 1 file" <<<"$status"
sleep 1
check "  still there while no SVA can scan it" test -e "$P/written.com"
sva_up
check "  deleted after the SVA starts, nobody opening it" wait_until 10 test ! -e "$P/written.com"
check "  backlog empty, rescanned counted" sh -c "[ $(vc unscanned) = 0 ] && [ $(vc rescanned) -ge 1 ]"

# 2. Opened while the SVA is down (on_disconnect allow): scanned later.
stop_daemons
eicar >"$P/opened.com"   # written before vsep runs: never scanned yet
policy_start || exit 1
sva_down
out=$("$POLICY_OPEN" "$P/opened.com")
check "an unscanned file opened with no SVA is allowed by policy ($out)" \
	test "$(field ok "$out")" = 1
check "  and remembered" wait_until 5 waiting 1
sva_up
check "  deleted once the SVA is back" wait_until 10 test ! -e "$P/opened.com"

# 3. Across a restart of vsep: the backlog is kept in state_dir.
sva_down
eicar >"$P/restart.com"
check "written with no SVA: remembered" wait_until 5 waiting 1
vsep_restart
check "  the backlog file is in state_dir" test -s "$STATE"
check "  vsep, restarted, still knows it (unscanned 1)" wait_until 5 waiting 1
check "  and says so at start" grep -q "let pass unscanned before the restart" "$T/vsep.log"
sva_up
check "  deleted once the SVA is back" wait_until 10 test ! -e "$P/restart.com"

# 4. A damaged state file is ignored, never trusted in part.
kill "$PID_vsep"; wait "$PID_vsep" 2>/dev/null
printf 'vsep-unscanned 1\n1 2 0 9 /fs/a.txt\n' >"$STATE"   # torn: no end line
start vsep "$VSEP" -f -c "$T/run/vsep.conf"
wait_until 10 agent_connected
check "a torn state file: ignored with a warning" grep -q "is damaged or not vsep's; ignored" "$T/vsep.log"
check "  nothing of it kept" waiting 0

# 5. A backlog of 1,000 files (10 of them EICAR) cleared when the SVA is back.
sva_down
mkdir -p "$P/many"
for i in $(seq 1 990); do echo "clean $i" >"$P/many/f$i.txt"; done
for i in $(seq 1 10); do eicar >"$P/many/e$i.com"; done
check "1,000 files written with no SVA: all remembered" wait_until 20 waiting 1000
t0=$(date +%s%3N)
sva_up
check "  the backlog clears" wait_until 60 waiting 0
note "1,000-file backlog cleared in $(( $(date +%s%3N) - t0 )) ms after the SVA started"
check "  every EICAR file deleted" sh -c "! ls '$P/many'/e*.com 2>/dev/null | grep -q ."
check "  every clean file kept" test "$(ls "$P/many" | wc -l)" -eq 990

# 6. Past unscanned_max: counted and said, never silently forgotten.
stop_daemons
rm -rf "$T/state"
configs 5
policy_start || exit 1
sva_down
for i in $(seq 1 8); do echo "over $i" >"$P/over$i.txt"; done
check "unscanned_max 5: 5 remembered" wait_until 5 waiting 5
check "  3 counted as unscanned_dropped" test "$(vc unscanned_dropped)" = 3
check "  and warned about" grep -q "unscanned_max (5) reached" "$T/vsep.log"
status=$("$CTL" -r "$T/run" status 2>&1)
check "  epsecctl status says files were not scanned" grep -q "NOT SCANNED: 3 file" <<<"$status"

stop_daemons
check "no sanitizer report in the daemons' logs" \
	sh -c "! grep -l 'Sanitizer' '$T'/*.log"
note "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
