#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsecctl scan, clamdscan's job, through a real mux and SVA (eicar
# engine): epsecctl joins the mux as a short-lived agent and answers the
# SVA's READs itself. Per-file lines and exit status as clamdscan's: 0 all
# clean, 1 something found, 2 an error. No fanotify here: the files are
# not protected, so no agent is needed.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
setup_tmpfs

agent_uri="unix://$T/run/mux.sock"
write_configs "$agent_uri" "unix://$T/run/sva.sock" "$T/fs/unused"
start sva "$SVA" -f -c "$T/run/epsec-sva.conf"
start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
wait_until 10 mux_has_sva || { fail "SVA connected to the mux"; finish; exit 1; }

D=$T/fs/files
mkdir -p "$D/tree/deeper" "$D/empty"
echo "nothing to see" >"$D/clean.txt"
eicar >"$D/eicar.com"
head -c 200000 /dev/urandom >"$D/tree/big.bin"
echo "also clean" >"$D/tree/a.txt"
eicar >"$D/tree/deeper/z.com"
ln -s "$D/eicar.com" "$D/tree/link.com"   # skipped inside a directory

# scan ARGS...: output in $out, exit status in $rc.
scan() { out=$("$CTL" scan "$@" 2>&1); rc=$?; }
has() { grep -qxF -- "$1" <<<"$out"; }
lacks() { ! grep -qF -- "$1" <<<"$out"; }

scan --mux "$agent_uri" "$D/clean.txt"
check "clean file: exit 0 (got $rc)" test "$rc" -eq 0
check "clean file: OK line" has "$D/clean.txt: OK"
check "summary counts it" has "Scanned files: 1"

scan --mux "$agent_uri" "$D/eicar.com"
check "infected file: exit 1 (got $rc)" test "$rc" -eq 1
check "infected file: FOUND line with the engine's signature" \
	grep -qx "$D/eicar.com: EICAR-Test-File FOUND" <<<"$out"
check "summary counts it infected" has "Infected files: 1"

# Two inline bytes: the engine must READ the rest through the mux from us.
scan --mux "$agent_uri" --inline-bytes 2 "$D/eicar.com"
check "infected file read through READ/DATA: exit 1 (got $rc)" test "$rc" -eq 1
check "  and FOUND" has "$D/eicar.com: EICAR-Test-File FOUND"

scan --mux "$agent_uri" "$D/missing.txt"
check "missing file: exit 2 (got $rc)" test "$rc" -eq 2
check "missing file: ERROR line" has "$D/missing.txt: ERROR (No such file or directory)"

scan --mux "$agent_uri" "$D"
note "scan of a directory:"; sed 's/^/#   /' <<<"$out"
check "directory with both: exit 1 (got $rc)" test "$rc" -eq 1
check "  clean file OK" has "$D/clean.txt: OK"
check "  large file OK" has "$D/tree/big.bin: OK"
check "  infected file FOUND" has "$D/eicar.com: EICAR-Test-File FOUND"
check "  nested infected file FOUND" has "$D/tree/deeper/z.com: EICAR-Test-File FOUND"
check "  symlink inside a directory skipped" lacks "link.com"
check "  5 files scanned" has "Scanned files: 5"
check "  2 infected" has "Infected files: 2"

scan --mux "$agent_uri" "$D/clean.txt" "$D/missing.txt" "$D/eicar.com"
check "found and error together: exit 2 (got $rc)" test "$rc" -eq 2
check "  lines in argument order" test "$(grep -c -e ': OK$' -e 'FOUND$' -e ': ERROR (' <<<"$out")" -eq 3

scan --mux "$agent_uri" -i --no-summary "$D"
check "-i prints infected files only" test "$(wc -l <<<"$out")" -eq 2
check "--no-summary" lacks "SUMMARY"

# More files than epsecctl keeps in flight (8): all answered, in order.
mkdir -p "$T/fs/many"
for i in $(seq -w 1 60); do
	if [ $((10#$i % 10)) -eq 0 ]; then eicar; else echo "file $i"; fi >"$T/fs/many/f$i"
done
scan --mux "$agent_uri" "$T/fs/many"
check "60 files: exit 1 (got $rc)" test "$rc" -eq 1
check "  60 scanned" has "Scanned files: 60"
check "  6 infected" has "Infected files: 6"
check "  f60 last and FOUND" test "$(grep -m1 -n "f60: EICAR-Test-File FOUND" <<<"$out" | cut -d: -f1)" = 60

(cd "$D/tree" && "$CTL" scan --mux "$agent_uri" a.txt) >"$T/rel.out" 2>&1
check "relative path printed absolute" grep -qx "$D/tree/a.txt: OK" "$T/rel.out"

# The mux URI from a vsep.conf (-c), as on a guest; other keys ignored.
cat >"$T/run/guest-vsep.conf" <<EOC
DEBUG_LEVEL=4
mux = "$agent_uri";
protect = [ "/srv" ];
EOC
scan -c "$T/run/guest-vsep.conf" "$D/eicar.com"
check "mux taken from -c vsep.conf: exit 1 (got $rc)" test "$rc" -eq 1
echo 'protect = [ "/srv" ];' >"$T/run/nomux.conf"
scan -c "$T/run/nomux.conf" "$D/clean.txt"
check "no mux anywhere: exit 2 (got $rc)" test "$rc" -eq 2
check "  and says to give --mux" grep -q -- "--mux" <<<"$out"

scan --mux "unix://$T/run/nobody.sock" "$D/clean.txt"
check "mux not running: exit 2 (got $rc)" test "$rc" -eq 2
check "  file reported as ERROR" grep -q "^$D/clean.txt: ERROR (.*)$" <<<"$out"
scan --mux "$agent_uri"
check "no file given: usage, exit 2" test "$rc" -eq 2

# With no SVA behind the mux the mux answers ERROR: reported per file.
kill "$PID_sva"; wait "$PID_sva" 2>/dev/null
wait_until 5 sh -c "'$CTL' -r '$T/run' status --json | jq -e '(.[\"epsec-mux\"].svas | length) == 0' >/dev/null"
scan --mux "$agent_uri" --timeout 5 "$D/clean.txt"
check "no SVA: exit 2 (got $rc)" test "$rc" -eq 2
check "  ERROR line" grep -q "^$D/clean.txt: ERROR (.*)$" <<<"$out"

stop_daemons
check "no sanitizer report in the daemons' logs" \
	sh -c "! grep -l 'Sanitizer\|runtime error' '$T'/*.log"
finish
