#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A flood against a small agent: 20,000 opens by 48 processes against a
# queue of 16, 2 workers and 16 held events, the cache off so each open is
# an event. No hang, no fd leak (vsep's /proc/PID/fd before and after),
# every event answered exactly once (the counters add up to the opens),
# overload answered by on_overload ("deny" here: each denied open is one
# overload). Then the fd budget against RLIMIT_NOFILE at start-up.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

OPENS=20000
PROCS=48
P=$T/fs
for i in $(seq 1 64); do echo "file $i" >"$P/f$i"; done

policy_configs "\"$P\"" "$(eicar_engine)" <<EOC
DEBUG_LEVEL = 4;
scan_timeout_ms = 10000;
on_timeout = "allow";
on_disconnect = "allow";
on_overload = "deny";
queue_size = 16;
workers = 2;
max_held = 16;
cache_size = 0;
ignore_marks = false;
EOC
policy_start || exit 1

fds0=$(fd_count "$PID_vsep")
for c in events allowed denied overload timeouts disconnected errors; do
	eval "${c}0=\$(vc $c)"
done
t0=$(date +%s%3N)
out=$(timeout 120 "$POLICY_OPEN" -n "$OPENS" -p "$PROCS" "$P"/f*)
rc=$?
took=$(( $(date +%s%3N) - t0 ))
note "$OPENS opens by $PROCS processes in $took ms: $out"
check "the flood finished (no opener hung)" test "$rc" -eq 0
check "every open got an answer (allowed or denied, nothing else)" \
	test "$(field opens "$out")" -eq "$OPENS" -a "$(field other "$out")" -eq 0
check "no open waited long (max $(field max_ms "$out") ms < 5000)" \
	test "$(field max_ms "$out")" -lt 5000
wait_until 10 in_flight_zero
d() { echo $(( $(vc "$1") - $(eval echo "\$${1}0") )); }
note "counters: events $(d events) allowed $(d allowed) denied $(d denied)" \
	"overload $(d overload) timeouts $(d timeouts) disconnected $(d disconnected) errors $(d errors)"
check "vsep saw every open as an event" test "$(d events)" -eq "$OPENS"
check "every event answered once: allowed + denied = events" \
	test $(( $(d allowed) + $(d denied) )) -eq "$(d events)"
check "vsep's allowed = the openers' successes" test "$(d allowed)" -eq "$(field ok "$out")"
check "the queue overflowed (overload > 0)" test "$(d overload)" -gt 0
check "on_overload = deny applied: each overload is one denied open" \
	test "$(d overload)" -eq "$(field denied "$out")" -a "$(d denied)" -eq "$(d overload)"
check "nothing timed out, nothing failed" test "$(d timeouts)$(d errors)$(d disconnected)" = 000
fds1=$(fd_count "$PID_vsep")
check "no fd leak: vsep holds $fds1 fds after, $fds0 before" test "$fds1" -eq "$fds0"
check "vsep still runs" kill -0 "$PID_vsep"
stop_daemons

# ---------------------------------------------------------------- fd budget
command -v prlimit >/dev/null || { note "no prlimit (util-linux): fd budget not checked"; finish; exit; }
sed -i 's/^max_held = 16;/max_held = 5000;/; s/^queue_size = 16;/queue_size = 1000;/' \
	"$T/run/vsep.conf"
out=$(prlimit --nofile=1024:1024 "$VSEP" -f -c "$T/run/vsep.conf" 2>&1)
rc=$?
check "max_held + queue_size beyond RLIMIT_NOFILE: vsep refuses to start (exit 78, got $rc)" \
	test "$rc" -eq 78
check "... saying why and what to change" \
	grep -q "max_held (5000) + queue_size (1000) .* RLIMIT_NOFILE is 1024: lower max_held/queue_size or raise LimitNOFILE=" <<<"$out"
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -ge 9000 ]; then
	start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
	start vsep prlimit --nofile="1024:$hard" "$VSEP" -f -c "$T/run/vsep.conf"
	wait_until 10 agent_connected
	soft=$(awk '/Max open files/ {print $4}' "/proc/$PID_vsep/limits" 2>/dev/null)
	check "a soft limit below the need is raised to the hard one ($hard; soft now ${soft:-?})" \
		test "${soft:-0}" = "$hard"
else
	note "hard RLIMIT_NOFILE $hard: raising the soft limit not checked"
fi
finish
