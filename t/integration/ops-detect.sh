#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Detections on the real chain: each is one JSON line in the mux's
# detections_log (time, agent, path, engine, signature, action, result), a
# notice in the mux's log, and on_detect run with the fields in its
# environment, never through a shell: a file named with $(...), `...` and ;
# reaches it as it is and runs nothing. At most on_detect_max at once; a
# command past on_detect_timeout_ms is killed and counted.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs
mkdir -p "$T/fs/p" "$T/hc"
cat >"$T/hook" <<EOH
#!/bin/sh
cd "$T/hc" || exit 1
case "\$EPSEC_PATH" in *slow*) sleep 30;; esac
printf '%s|%s|%s|%s|%s|%s\n' "\$EPSEC_PATH" "\$EPSEC_AGENT" "\$EPSEC_ENGINE" \
	"\$EPSEC_SIGNATURE" "\$EPSEC_ACTION" "\$EPSEC_RESULT" >>"$T/hook.out"
EOH
chmod +x "$T/hook"
policy_configs "\"$T/fs/p\"" "$(eicar_engine delete)" </dev/null
cat >>"$T/run/epsec-mux.conf" <<EOC
on_detect = [ "$T/hook" ];
on_detect_max = 2;
on_detect_timeout_ms = 1000;
EOC
policy_start || { finish; exit 1; }
mux_json() { "$CTL" -s "$T/run/epsec-mux.ctl" status --json 2>/dev/null | jq '.[]'; }

name='x$(touch pwned1)`touch pwned2`;touch pwned3;'"'"'q'"'"' "d".com'
eicar >"$T/fs/p/$name"
wait_until 5 test -s "$T/hook.out" || fail "on_detect ran"
line=$(head -1 "$T/run/detections.log")
note "detections.log: $line"
check "one JSON line per detection" test "$(jq -c . "$T/run/detections.log" | wc -l)" = 1
check "  path exactly as named" test "$(jq -r .path <<<"$line")" = "$T/fs/p/$name"
check "  agent as the mux knows it" test "$(jq -r .agent <<<"$line")" = test-agent
check "  engine and signature" test "$(jq -r '.engine + " " + .signature' <<<"$line")" = "eicar EICAR-Test-File"
check "  action and its result" test "$(jq -r '.action + ": " + .result' <<<"$line")" = "delete: deleted"
check "  a time" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' <<<"$(jq -r .time <<<"$line")"
check "a notice in the mux's log" grep -q "notice: detection: agent test-agent: $T/fs/p/x" "$T/mux.log"
check "on_detect got the fields in its environment" \
	test "$(head -1 "$T/hook.out")" = "$T/fs/p/$name|test-agent|eicar|EICAR-Test-File|delete|deleted"
check "the hostile name ran nothing" test -z "$(ls -A "$T/hc")"

# Slow commands: two at a time, each killed after 1 s.
for i in 1 2 3 4; do eicar >"$T/fs/p/slow$i.com"; done
wait_until 5 bash -c '[ "$("$1" -s "$2" status --json | jq ".[].detections.detections")" -ge 5 ]' _ "$CTL" "$T/run/epsec-mux.ctl"
st=$(mux_json | jq -c .detections)
note "detections status: $st"
check "at most on_detect_max running" test "$(jq .on_detect_running <<<"$st")" -le 2
check "  the others waiting" test "$(jq .on_detect_waiting <<<"$st")" -ge 1
wait_until 10 bash -c '[ "$("$1" -s "$2" status --json | jq ".[].detections.on_detect_killed")" = 4 ]' _ "$CTL" "$T/run/epsec-mux.ctl"
st=$(mux_json | jq -c .detections)
note "detections status: $st"
check "each slow command killed after its timeout" test "$(jq .on_detect_killed <<<"$st")" = 4
check "  not counted as failed too" test "$(jq .on_detect_failed <<<"$st")" = 0
check "  and said so" grep -q "on_detect $T/hook (pid [0-9]*): killed after 1000 ms" "$T/mux.log"
check "five records in the log" test "$(wc -l <"$T/run/detections.log")" = 5
finish
