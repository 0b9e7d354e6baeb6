#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A burst lets nothing through: three writers close 30,000 files at once in
# the protected tree (300 of them EICAR files) while 16 processes open a
# file known to be infected. The kernel's queue is unlimited, so no open
# passes unscanned and no close-after-write event is lost: every EICAR
# file of the burst is deleted, whatever vsep's own queues had to answer
# by policy meanwhile (those files are remembered and scanned later).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs
BURST=$top_builddir/t/integration/burst-write
[ -x "$BURST" ] || skip "$BURST is not built"

P=$T/fs
mkdir -p "$P/burst"
eicar >"$P/infected.com"
eicar >"$T/sample.com"

policy_configs "\"$P\"" "$(eicar_engine delete)" <<EOC
DEBUG_LEVEL = 5;
scan_timeout_ms = 5000;
cache_size = 65536;
EOC
policy_start || exit 1
out=$("$POLICY_OPEN" "$P/infected.com")
check "the infected file is refused before the burst ($out)" test "$(field denied "$out")" = 1

"$POLICY_OPEN" -n 8000 -p 16 "$P/infected.com" >"$T/opens.out" 2>&1 &
opener=$!
t0=$(date +%s%3N)
note "$("$BURST" "$P/burst" 10000 3 100 "$T/sample.com")"
wait "$opener"
out=$(cat "$T/opens.out")
note "16 openers during the burst: $out"
check "not one open of the infected file succeeded during the burst" test "$(field ok "$out")" = 0
check "  every one answered (8000 denied)" test "$(field denied "$out")" = 8000
left() { ls "$P/burst" | grep -c '\.com$'; }
done_all() { [ "$(left)" = 0 ] && [ "$(vc unscanned)" = 0 ] && in_flight_zero; }
check "every EICAR file written in the burst is deleted" wait_until 120 done_all
note "caught up $(( $(date +%s%3N) - t0 )) ms after the burst began; $(left) EICAR file(s) left; overload $(vc overload), rescanned $(vc rescanned)"
check "  and every clean one kept" test "$(ls "$P/burst" | wc -l)" -eq 29700
check "the kernel's queue never overflowed" sh -c "! grep -q 'queue overflowed' '$T/vsep.log'"

stop_daemons
check "no sanitizer report in the daemons' logs" sh -c "! grep -l 'Sanitizer' '$T'/*.log"
note "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
