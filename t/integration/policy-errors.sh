#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A file the engines could not scan is never called clean: an engine error
# is its own outcome end to end (VERDICT.error, vsep's on_error, counted,
# one warning per file, never cached, `epsecctl scan` says ERROR and exits
# 2). One deadline per event: the engine stops at the agent's
# scan_timeout_ms, and a scan nobody waits on (close-after-write) runs as
# long as it takes, the SVA telling the mux it is still working, while the
# mux's sva_timeout_ms is far shorter.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

P=$T/fs
TIMEOUT_MS=700
for f in err-1 err-2 dl-1 exploit-1 clean.txt; do echo "$f" >"$P/$f"; done

# err*: the engine fails at once; dl*: it would take 10 s, far past the
# opener's deadline; long*: an 11 s scan (longer than the mux's old fixed
# 10 s) that finds something.
ENGINES="$(slow_engine err 0 error), $(slow_engine dl 10000), $(slow_engine exploit 0 exploit), \
{ plugin = \"$SLOW_PLUGIN\"; action = \"delete\"; options = { match = \"long\"; sleep_ms = 11000; result = \"found\"; }; }"

run_chain() { # run_chain ON_ERROR
	stop_daemons
	rm -rf "$T/state"   # no backlog from the last chain: this one counts afresh
	policy_configs "\"$P\"" "$ENGINES" 1500 <<EOC
DEBUG_LEVEL = 6;
scan_timeout_ms = $TIMEOUT_MS;
on_error = "$1";
cache_size = 1024;
ignore_marks = true;
EOC
	policy_start
}
opened() { [ "$(field ok "$1")" = 1 ]; }
denied() { [ "$(field denied "$1")" = 1 ]; }
warnings_for() { grep -c "$1: not scanned" "$T/vsep.log"; }
sva_errors() { sva_json | jq -r '.counters.errors'; }

run_chain allow || exit 1

# 1. An engine error on open: allowed by on_error (default allow), counted,
# logged once per file, never cached or marked: each open asks again.
out=$("$POLICY_OPEN" "$P/err-1")
check "engine error, on_error allow: the open goes through ($out)" opened "$out"
check "  counted as engine_errors (1)" test "$(vc engine_errors)" = 1
check "  not counted as timeouts or no scanner" \
	test "$(vc timeouts)" = 0 -a "$(vc disconnected)" = 0
s0=$(sva_scanned)
out=$("$POLICY_OPEN" -n 3 "$P/err-1")
check "  never cached nor ignore-marked: 3 more opens, 3 more scans" \
	test $(( $(sva_scanned) - s0 )) -eq 3
check "  counted each time (4)" test "$(vc engine_errors)" = 4
check "  one warning for the file, with the engine and the reason" \
	sh -c "[ $(warnings_for "$P/err-1") = 1 ] && grep -q 'err-1: not scanned (test_slow: test error, as asked)' '$T/vsep.log'"
check "  the SVA says it too, and counts it" \
	sh -c "grep -q 'err-1: not scanned: test_slow' '$T/sva.log' && [ $(sva_errors) -ge 4 ]"
out=$("$POLICY_OPEN" "$P/clean.txt")
check "a clean file still opens ($out)" opened "$out"

# 2. epsecctl scan: ERROR (reason), exit status 2.
out=$("$CTL" scan --mux "unix://$T/run/mux.sock" "$P/err-2" "$P/clean.txt" 2>&1); rc=$?
note "$out"
check "epsecctl scan: exit 2 when a file could not be scanned (got $rc)" test "$rc" -eq 2
check "  FILE: ERROR (reason)" grep -qx "$P/err-2: ERROR (test_slow: test error, as asked)" <<<"$out"
check "  the clean file is OK" grep -qx "$P/clean.txt: OK" <<<"$out"

# 3. The agent's deadline reaches the engine: a 10 s scan of an open is
# cut at scan_timeout_ms by the engine itself, not 10 s later.
e0=$(sva_errors)
lost0=$(( $(vc timeouts) + $(vc engine_errors) ))
out=$("$POLICY_OPEN" "$P/dl-1")
check "an open past its deadline is allowed by policy in time ($out)" \
	sh -c "[ '$(field ok "$out")' = 1 ] && [ '$(field max_ms "$out")' -le $((TIMEOUT_MS + 800)) ]"
# Whichever comes first: vsep's own sweep (on_timeout) or the engine's
# error at the same deadline (on_error); never a clean.
lost=$(( $(vc timeouts) + $(vc engine_errors) - lost0 ))
check "  counted as a timeout or an engine error ($lost)" test "$lost" -eq 1
check "  the engine stopped at the deadline: the SVA's error within 2 s" \
	wait_until 2 sh -c "[ \$('$CTL' -s '$T/run/epsec-sva.ctl' status --json | jq '.[].counters.errors') -gt $e0 ]"
check "  with the reason" grep -q "dl-1: not scanned: test_slow: scan stopped at its deadline" "$T/sva.log"

# 4. A close-after-write scan of 11 s with the mux's sva_timeout_ms at
# 1.5 s: the SVA says it is working, nothing times out, the verdict acts.
t0=$(date +%s%3N)
echo "long scan" >"$P/long-1"
check "an 11 s scan after a write deletes the file" wait_until 20 test ! -e "$P/long-1"
note "deleted $(( $(date +%s%3N) - t0 )) ms after the write"
check "  the mux timed nothing out" sh -c "! grep -q 'said nothing about' '$T/mux.log'"
t1=$(( $(vc timeouts) + $(vc engine_errors) ))
check "  vsep counted no timeout nor error for it" test "$t1" -eq $(( lost0 + lost ))

# 5. Confinement: an engine doing what an exploited parser would (open a
# socket) is killed by the workers' seccomp filter; its file is reported
# as not scanned, and the SVA goes on with a new worker.
# AddressSanitizer keeps books on every thread, and a thread the kernel
# kills leaves them torn (the process then traps): not under ASan.
if grep -qa __asan_init "$SVA" "$top_builddir/sva/.libs/epsec-sva" 2>/dev/null; then
	note "built with AddressSanitizer: a thread killed by seccomp aborts it, not tested here"
elif grep -q '^#define HAVE_SECCOMP 1' "$top_builddir/config.h"; then
	out=$("$CTL" scan --mux "unix://$T/run/mux.sock" "$P/exploit-1" 2>&1); rc=$?
	note "$out"
	check "a forbidden system call while scanning: ERROR, exit 2 (got $rc)" \
		grep -q "^$P/exploit-1: ERROR (epsec-sva: the scan worker was killed" <<<"$out"
	check "  the SVA says which file" grep -q "scan worker was killed .* while scanning $P/exploit-1" "$T/sva.log"
	# Twice, as a rule: epsecctl's own open of the protected file is
	# scanned by vsep's chain too.
	killed=$(sva_json | jq -r '.counters.workers_killed')
	check "  and counts it ($killed)" test "$killed" -ge 1
	check "  and it never got its socket" sh -c "! grep -q 'the exploit ran' '$T/sva.log'"
	for i in 1 2 3; do
		out=$("$CTL" scan --mux "unix://$T/run/mux.sock" "$P/clean.txt" 2>&1)
	done
	check "  the SVA goes on serving with a new worker" grep -qx "$P/clean.txt: OK" <<<"$out"
else
	note "built without libseccomp: no confinement to test"
fi

# 6. on_error = deny: the open is refused, still never cached.
run_chain deny || exit 1
out=$("$POLICY_OPEN" "$P/err-1")
check "on_error deny: the open is refused ($out)" denied "$out"
check "  counted as an engine error" test "$(vc engine_errors)" = 1
out=$("$POLICY_OPEN" "$P/clean.txt")
check "  a clean file opens ($out)" opened "$out"

stop_daemons
check "no sanitizer report in the daemons' logs" \
	sh -c "! grep -l 'Sanitizer' '$T'/*.log"
note "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
