#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A storm of signature generations opens no window: while the SVA reloads
# again and again (each reload a new generation, each making vsep drop its
# cached verdicts and ignore marks), four processes open a file known to
# be infected, in an inode-marked tree, thousands of times. Not one open
# may succeed: ignore marks go one by one, the directory marks that
# protect the tree never leave. The mux tells agents of new generations at
# most once a second.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

D=$T/fs/dir   # a plain directory on the tmpfs: inode marks, not a mount mark
mkdir -p "$D/sub"
eicar >"$D/sub/eicar.com"
for i in $(seq 1 200); do echo "clean $i" >"$D/c$i.txt"; done

policy_configs "\"$D\"" "$(eicar_engine deny), $(slow_engine "" 0)" <<EOC
DEBUG_LEVEL = 6;
scan_timeout_ms = 5000;
on_timeout = "allow";
on_disconnect = "allow";
cache_size = 4096;
ignore_marks = true;
EOC
policy_start || exit 1

out=$("$POLICY_OPEN" "$D/sub/eicar.com")
check "the infected file is refused before the storm ($out)" test "$(field denied "$out")" = 1
# Clean files with ignore marks, so every generation has marks to remove.
for i in $(seq 1 200); do cat "$D/c$i.txt" >/dev/null; done
marks0=$(vc ignore_marks)
check "clean files got ignore marks ($marks0)" test "$marks0" -ge 150

"$POLICY_OPEN" -n 4000 -p 4 "$D/sub/eicar.com" >"$T/storm.out" 2>&1 &
opener=$!
g0=$(sva_generation)
reloads=0
for i in $(seq 1 40); do
	"$CTL" -s "$T/run/epsec-sva.ctl" reload >/dev/null 2>&1 && reloads=$((reloads + 1))
	for j in $(seq 1 20); do cat "$D/c$j.txt" >/dev/null; done   # marks again
	sleep 0.05
done
wait "$opener"
out=$(cat "$T/storm.out")
note "storm: $reloads reloads, generation $g0 -> $(sva_generation); opens: $out"
check "the SVA changed generation many times" test "$reloads" -ge 30
check "not one open of the infected file succeeded during the storm" \
	test "$(field ok "$out")" = 0
check "  every open was answered (4000 denied)" test "$(field denied "$out")" = 4000
told=$(grep -c "signature generation .*: told" "$T/mux.log")
note "the mux told agents of a new generation $told time(s)"
check "  agents were told at most about once a second" test "$told" -le 12
check "  vsep still marks the tree: a clean file written now is scanned" \
	sh -c "s0=\$('$CTL' -s '$T/run/epsec-sva.ctl' status --json | jq '.[].counters.scanned'); echo new > '$D/sub/new.txt'; sleep 1; s1=\$('$CTL' -s '$T/run/epsec-sva.ctl' status --json | jq '.[].counters.scanned'); [ \$s1 -gt \$s0 ]"
check "  vsep never fell back to flushing every mark" sh -c "! grep -q 'flushing them all instead' '$T/vsep.log'"

stop_daemons
check "no sanitizer report in the daemons' logs" sh -c "! grep -l 'Sanitizer' '$T'/*.log"
note "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
