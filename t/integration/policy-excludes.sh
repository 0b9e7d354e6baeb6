#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Excludes and the size limit on the real chain, against an EICAR file the
# SVA denies: an excluded path, an excluded uid (setpriv as another user),
# an excluded executable (a copied binary, configured through a symlink so
# only its resolved path can match) are each allowed without a scan and
# counted as `excluded`; a file over max_file_size is allowed unscanned and
# counted as `too_big`. Everyone else is still denied.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

P=$T/fs
chmod 755 "$T"   # other uids must reach the protected files
mkdir -p "$P/skip" "$T/bin"
cp "$(command -v cat)" "$T/bin/mycat"
ln -s mycat "$T/bin/alias"
eicar >"$P/eicar.com"
eicar >"$P/skip/eicar.com"
head -c 2000000 /dev/urandom >"$P/big.bin"
echo small >"$P/small.txt"
chmod 644 "$P"/*.com "$P"/skip/*.com "$P"/*.bin "$P"/*.txt

policy_configs "\"$P\"" "$(eicar_engine deny)" <<EOC
DEBUG_LEVEL = 6;
scan_timeout_ms = 5000;
cache_size = 0;
ignore_marks = false;
exclude_paths = [ "$P/skip" ];
exclude_uids = [ 4242 ];
exclude_exes = [ "$T/bin/alias" ];
max_file_size = "1M";
EOC
policy_start || exit 1

# delta COUNTER CMD...: $n = how much vsep's COUNTER grew while CMD ran,
# $ran = ok or failed (the command's exit).
delta() {
	local c=$1 before after; shift
	before=$(vc "$c")
	if "$@" >/dev/null 2>&1; then ran=ok; else ran=failed; fi
	wait_until 5 in_flight_zero
	after=$(vc "$c")
	n=$((after - before))
}
scans() {
	local before after; before=$(sva_scanned)
	"$@" >/dev/null 2>&1
	wait_until 5 in_flight_zero
	after=$(sva_scanned); echo $((after - before))
}

check "the EICAR file is denied to an ordinary opener" \
	sh -c "! cat '$P/eicar.com' >/dev/null 2>&1"

# exclude_paths
delta excluded cat "$P/skip/eicar.com"
check "exclude_paths: the file under $P/skip opens ($ran)" test "$ran" = ok
check "exclude_paths: counted as excluded ($n)" test "$n" -eq 1
check "exclude_paths: no scan" test "$(scans cat "$P/skip/eicar.com")" -eq 0

# exclude_exes, configured as a symlink to the binary
delta excluded "$T/bin/mycat" "$P/eicar.com"
check "exclude_exes: the excluded binary opens the EICAR file ($ran)" test "$ran" = ok
check "exclude_exes: counted as excluded ($n)" test "$n" -eq 1
delta excluded "$T/bin/alias" "$P/eicar.com"
check "exclude_exes: run through the symlink it is the same binary ($ran)" test "$ran" = ok
delta denied cat "$P/eicar.com"
check "exclude_exes: another binary is still denied ($ran, denied +$n)" \
	test "$ran" = failed -a "$n" -eq 1

# exclude_uids
if command -v setpriv >/dev/null; then
	as() { setpriv --reuid="$1" --regid="$1" --clear-groups "${@:2}"; }
	delta excluded as 4242 cat "$P/eicar.com"
	check "exclude_uids: uid 4242 opens the EICAR file ($ran)" test "$ran" = ok
	check "exclude_uids: counted as excluded ($n)" test "$n" -eq 1
	delta denied as 4243 cat "$P/eicar.com"
	check "exclude_uids: uid 4243 is still denied ($ran, denied +$n)" \
		test "$ran" = failed -a "$n" -eq 1
	check "exclude_uids: 4243 can read what is clean" \
		as 4243 sh -c "cat '$P/small.txt' >/dev/null"
else
	note "no setpriv (util-linux): exclude_uids not checked"
fi

# max_file_size
delta too_big cat "$P/big.bin"
check "max_file_size: a 2 MB file opens ($ran)" test "$ran" = ok
check "max_file_size: counted as too_big ($n)" test "$n" -eq 1
check "max_file_size: not scanned" test "$(scans cat "$P/big.bin")" -eq 0
check "max_file_size: a small file is still scanned" test "$(scans cat "$P/small.txt")" -eq 1

n=$(vc events)
check "every event answered: events ($n) = allowed + denied" \
	test "$n" -eq $(( $(vc allowed) + $(vc denied) ))
finish
