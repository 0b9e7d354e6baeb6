#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsecctl eicar-test DIR against the real chain on a tmpfs: passes with
# each action (delete, quarantine, deny), in under a second, leaving
# nothing; fails (exit 1) on a directory vsep does not protect and when the
# scanner is gone (vsep lets the EICAR file open by on_disconnect = allow).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs
mkdir -p "$T/fs/p" "$T/fs/other" "$T/q"

# run_chain ACTION: the chain with the eicar engine's action ACTION.
run_chain() {
	stop_daemons
	policy_configs "\"$T/fs/p\"" "$(eicar_engine "$1")" <<EOC
quarantine_dir = "$T/q";
EOC
	policy_start
}

# eicar_ok ACTION: the test holds, fast, and leaves nothing.
eicar_ok() {
	local out rc t0 ms
	t0=$(date +%s%N)
	out=$("$CTL" -r "$T/run" eicar-test "$T/fs/p" 2>&1); rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "$out" | sed 's/^/#   /'
	check "$1: eicar-test exits 0 (got $rc)" test "$rc" = 0
	check "$1: in under a second ($ms ms)" test "$ms" -lt 1000
	check "$1: every step timed" test "$(grep -c '^ *[0-9.]* ms  OK' <<<"$out")" -ge 5
	check "$1: nothing left in the directory" test -z "$(ls -A "$T/fs/p")"
	check "$1: nothing left in the quarantine" \
		test "$("$CTL" -r "$T/run" quarantine list --json | jq length)" = 0
}

for action in delete quarantine deny; do
	run_chain "$action" || { finish; exit 1; }
	eicar_ok "$action"
done
grep -q "refused on open .* kept" <<<"$("$CTL" -r "$T/run" eicar-test "$T/fs/p")" &&
	pass "deny: the written file is reported kept and refused" ||
	fail "deny: the written file is reported kept and refused"

out=$("$CTL" -r "$T/run" eicar-test "$T/fs/other" 2>&1); rc=$?
check "a directory vsep does not protect: exit 1 (got $rc)" test "$rc" = 1
check "  and says so" grep -q "does not protect $T/fs/other" <<<"$out"

kill "$PID_sva"; wait "$PID_sva" 2>/dev/null
wait_until 10 bash -c '! "$1" -r "$2" status --json | jq -e ".[\"epsec-mux\"].svas | length > 0" >/dev/null' _ "$CTL" "$T/run"
out=$("$CTL" -r "$T/run" eicar-test "$T/fs/p" 2>&1); rc=$?
echo "$out" | sed 's/^/#   /'
check "no scanner (on_disconnect allow): exit 1 (got $rc)" test "$rc" = 1
check "  the unscanned EICAR file is reported opened" grep -q "FAIL.*never scanned: opened" <<<"$out"
check "  nothing left behind even so" test -z "$(ls -A "$T/fs/p")"
finish
