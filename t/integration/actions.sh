#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What vsep does to infected files, real daemons and real fanotify on
# tmpfs in a private mount namespace: exec refused (file left), delete
# after a write, and quarantine after a write with its round trip through
# `epsecctl quarantine list|restore|delete` (owner, mode and content kept;
# never over an existing file, only where the file's owner could create it,
# never through a directory swapped for a symlink). Two tmpfs: the quarantine lives on the
# first, so a file from the second (mounted inside the first, so cleanup's
# lazy umount takes both) is copied in rather than renamed.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
setup_tmpfs

P=$T/fs/protected      # inode marks
P2=$T/fs/other         # a mount of its own: mount mark, another filesystem
Q=$T/fs/quarantine
mkdir -p "$P/sub" "$P/swap" "$P2"
mount -t tmpfs -o size=64m epsec-test2 "$P2" || skip "cannot mount a second tmpfs"
write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$P"
sed -i "s|^protect = .*|protect = [ \"$P\", \"$P2\" ];|" "$T/run/vsep.conf"
echo "quarantine_dir = \"$Q\";" >>"$T/run/vsep.conf"

ctl() { "$CTL" -r "$T/run" "$@"; }
counter() { status_json | jq -r ".vsep.counters.$1"; }
sum() { sha256sum | cut -d' ' -f1; }
want_sum=$(eicar | sum)

# Present before the agent starts, so no close_write verdict touches them.
eicar >"$P/infected.com"
printf '#!/bin/sh\necho clean-ran\n' >"$P/clean.sh"
chmod +x "$P/infected.com" "$P/clean.sh"

start_chain || exit 1
note "chain up, protecting $P and $P2, quarantine in $Q"

# (1) exec. bash reports the errno of execve itself: EPERM is the agent's
# answer (an unscanned EICAR file would fail with ENOEXEC and be run as a
# script instead).
out=$("$P/infected.com" 2>&1); rc=$?
check "exec of an infected file is refused with EPERM (rc $rc: $out)" \
	grep -q "Operation not permitted" <<<"$out"
check "exec refusal exits 126" test "$rc" -eq 126
check "the refused file stays in place" test -e "$P/infected.com"
check "exec of a clean script runs" test "$("$P/clean.sh")" = clean-ran

# (2) close-after-write with the engine's action delete.
eicar >"$P/sub/deleted.com"
check "infected file written is deleted (action delete)" \
	wait_until 3 test ! -e "$P/sub/deleted.com"
check "deleted counter" test "$(counter deleted)" -ge 1

# (3) The engine's action becomes quarantine: restart the SVA only.
kill "$PID_sva"; wait "$PID_sva" 2>/dev/null
sed -i 's/action = "delete"/action = "quarantine"/' "$T/run/epsec-sva.conf"
start sva "$SVA" -f -c "$T/run/epsec-sva.conf"
sva_quarantines() {
	status_json | jq -e '.["epsec-sva"].engines[0].action == "quarantine" and
		((.["epsec-mux"].svas | length) >= 1)' >/dev/null
}
wait_until 10 sva_quarantines || { fail "SVA back with action quarantine"; finish; exit 1; }

# Owner and mode first (an empty file scans clean), then the content.
install -m 0604 -o 1234 -g 5678 /dev/null "$P/sub/q1.com"
eicar >>"$P/sub/q1.com"
check "infected file written is moved out (action quarantine)" \
	wait_until 3 test ! -e "$P/sub/q1.com"
check "quarantined counter" test "$(counter quarantined)" -ge 1
check "quarantine dir is 0700" test "$(stat -c %a "$Q")" = 700
list=$(ctl quarantine list); rc=$?
note "quarantine list:"; sed 's/^/#   /' <<<"$list"
check "quarantine list exits 0" test "$rc" -eq 0
check "list shows the original path" grep -q " $P/sub/q1.com\$" <<<"$list"
check "list shows the engine's signature" grep -q "EICAR" <<<"$list"
json=$(ctl quarantine list --json)
id1=$(jq -r --arg p "$P/sub/q1.com" '.[] | select(.path == $p) | .id' <<<"$json")
record_ok() {
	jq -e --arg p "$P/sub/q1.com" '.[] | select(.path == $p) |
		.uid == 1234 and .gid == 5678 and .mode == "0604" and .size == 68 and
		.engine == "eicar" and .time > 0' <<<"$json" >/dev/null
}
check "the record keeps owner, mode, size and engine" record_ok
check "content kept as $id1.data, mode 0400" test "$(stat -c %a "$Q/$id1.data")" = 400
check "content unchanged in the quarantine" test "$(sum <"$Q/$id1.data")" = "$want_sum"

# The owner (1234) may not write $P/sub (root's, 0755): refused, until it may.
out=$(ctl quarantine restore "$id1" 2>&1); rc=$?
check "restore where the owner may not create the file is refused, exit 1 ($out)" \
	test "$rc" -eq 1
check "  and says why" grep -q "owner may not create" <<<"$out"
check "  and creates nothing" test ! -e "$P/sub/q1.com"
chmod 755 "$T"
chown 1234 "$P/sub"
out=$(ctl quarantine restore "$id1"); rc=$?
check "restore exits 0 once the owner may write there ($out)" test "$rc" -eq 0
check "restore names the original path" grep -q "$P/sub/q1.com" <<<"$out"
check "restored file is back" test -e "$P/sub/q1.com"
check "restored with owner 1234:5678 and mode 0604" \
	test "$(stat -c '%u:%g %a' "$P/sub/q1.com")" = "1234:5678 604"
check "restored file is scanned again and denied on open" \
	sh -c "! cat '$P/sub/q1.com' >/dev/null 2>&1"
check "restored ID is gone from the list" sh -c "! '$CTL' -r '$T/run' quarantine list | grep -q '$id1'"

# (4) Another filesystem: copied in; a restore never replaces a new file.
eicar >"$P2/q2.com"
check "infected file on another filesystem is moved out" wait_until 3 test ! -e "$P2/q2.com"
id2=$(ctl quarantine list --json | jq -r --arg p "$P2/q2.com" '.[] | select(.path == $p) | .id')
check "it is listed" test -n "$id2"
echo "a new file, not to be replaced" >"$P2/q2.com"
out=$(ctl quarantine restore "$id2" 2>&1); rc=$?
check "restore over an existing file is refused, exit 1 ($out)" test "$rc" -eq 1
check "the existing file is untouched" \
	test "$(cat "$P2/q2.com")" = "a new file, not to be replaced"
rm -f "$P2/q2.com"
check "restore across filesystems once the path is free" ctl quarantine restore "$id2"

# (4b) A directory on the path swapped for a symlink (to /etc, say) before
# the restore: refused, nothing created where the symlink leads.
eicar >"$P/swap/q4.com"
check "infected file in swap/ is moved out" wait_until 3 test ! -e "$P/swap/q4.com"
id4=$(ctl quarantine list --json | jq -r --arg p "$P/swap/q4.com" '.[] | select(.path == $p) | .id')
mkdir "$T/elsewhere"
mv "$P/swap" "$P/swap.old"
ln -s "$T/elsewhere" "$P/swap"
out=$(ctl quarantine restore "$id4" 2>&1); rc=$?
check "restore through a symlinked directory is refused, exit 1 ($out)" test "$rc" -eq 1
check "  and creates nothing where the symlink leads" \
	test -z "$(ls -A "$T/elsewhere")"
check "  and it stays quarantined" test -e "$Q/$id4.data"
check "delete it" ctl quarantine delete "$id4"
rm "$P/swap"

# (5) delete.
eicar >"$P/sub/q3.com"
check "third infected file is moved out" wait_until 3 test ! -e "$P/sub/q3.com"
id3=$(ctl quarantine list --json | jq -r --arg p "$P/sub/q3.com" '.[] | select(.path == $p) | .id')
check "delete exits 0" ctl quarantine delete "$id3"
check "deleted ID no longer listed" sh -c "! '$CTL' -r '$T/run' quarantine list | grep -q '$id3'"
check "its content and record are gone" test ! -e "$Q/$id3.data" -a ! -e "$Q/$id3.json"
ctl quarantine delete "$id3" >/dev/null 2>&1; rc=$?
check "deleting it again exits 1" test "$rc" -eq 1
ctl quarantine restore ../../etc/passwd >/dev/null 2>&1; rc=$?
check "a malformed ID is refused, exit 1" test "$rc" -eq 1
ctl quarantine >/dev/null 2>&1; rc=$?
check "quarantine with no verb is a usage error, exit 2" test "$rc" -eq 2
check "the quarantine is empty again" sh -c "'$CTL' -r '$T/run' quarantine list | grep -q 'is empty'"

# (6) With the agent gone nothing intercepts: restored content is intact.
kill "$PID_vsep"; wait "$PID_vsep" 2>/dev/null
check "restored file has the content it had (rename)" test "$(sum <"$P/sub/q1.com")" = "$want_sum"
check "restored file has the content it had (copy)" test "$(sum <"$P2/q2.com")" = "$want_sum"
check "exec-refused file still has its content" test "$(sum <"$P/infected.com")" = "$want_sum"
stop_daemons
check "no sanitizer report in the daemons' logs" \
	sh -c "! grep -l 'Sanitizer\|runtime error' '$T'/*.log"

finish
