#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsecctl metrics (Prometheus text format, checked by promtool from
# Debian's prometheus package when it is installed) and epsecctl top (two
# screens, a second apart, with rates) against the real chain.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs
mkdir -p "$T/fs/p"
policy_configs "\"$T/fs/p\"" "$(eicar_engine delete)" </dev/null
policy_start || { finish; exit 1; }
eicar >"$T/fs/p/bad.com"
echo clean >"$T/fs/p/ok.txt"; cat "$T/fs/p/ok.txt" >/dev/null
wait_until 5 test ! -e "$T/fs/p/bad.com"

t0=$(date +%s%N)
m=$("$CTL" -r "$T/run" metrics); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "metrics: exit 0 (got $rc)" test "$rc" = 0
check "  in under a second ($ms ms)" test "$ms" -lt 1000
check "  every daemon up" test "$(grep -c '^epsec_up{.*} 1$' <<<"$m")" = 3
check "  vsep's counters" grep -q '^epsec_vsep_events_total{id="test-agent"} [1-9]' <<<"$m"
check "  the mux's gauges" grep -q '^epsec_mux_agents{id="test-mux"} 1$' <<<"$m"
check "  the mux's detections" grep -q '^epsec_mux_detections_total{id="test-mux"} 1$' <<<"$m"
check "  the appliance's scans" grep -q '^epsec_sva_found_total{id="test-sva"} [1-9]' <<<"$m"
check "  a TYPE for every family" test "$(grep -c '^# TYPE' <<<"$m")" = "$(grep -c '^# HELP' <<<"$m")"
PROMTOOL=${PROMTOOL:-$(command -v promtool)}
if [ -n "$PROMTOOL" ] && [ -x "$PROMTOOL" ]; then
	out=$("$PROMTOOL" check metrics <<<"$m" 2>&1); rc=$?
	check "  promtool check metrics: clean (got $rc: $out)" test "$rc" = 0
else
	note "promtool not installed (Debian package prometheus): format not checked by it"
fi

out=$("$CTL" -r "$T/run" top -n 2); rc=$?
check "top -n 2: exit 0 (got $rc)" test "$rc" = 0
check "  two screens" test "$(grep -c '^epsec top' <<<"$out")" = 2
check "  each daemon" test "$(grep -cE '^(vsep|epsec-mux|epsec-sva) ' <<<"$out")" = 6
check "  rates on the second screen" grep -q 'events [0-9]* (+[0-9]*/s)' <<<"$out"
check "  no terminal codes when not a terminal" bash -c '! grep -q $'"'"'\033'"'"' <<<"$1"' _ "$out"
finish
