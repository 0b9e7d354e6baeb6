#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Mounts under protected paths: one mounted before vsep starts, and new
# ones mounted while it runs (under an inode-marked path and under a
# mount-marked one) are given their own mount mark without a restart, show
# up in status, and are dropped from it once unmounted.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
setup_tmpfs

I=$T/fs/inode          # a plain directory: inode marks
M=$T/fs/mnt            # a mount point: a mount mark
mkdir -p "$I/deep/x" "$I/pre" "$M"
mount -t tmpfs marks-m "$M" || skip "cannot mount tmpfs"
mount -t tmpfs marks-pre "$I/pre" || skip "cannot mount tmpfs"
mkdir -p "$M/sub" "$I/deep/new"
write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$I"
sed -i "s|^protect = .*|protect = [ \"$I\", \"$M\" ];|" "$T/run/vsep.conf"
# deny, not delete: an infected file stays, so opening it shows the mark.
sed -i 's|action = "delete"|action = "deny"|' "$T/run/epsec-sva.conf"

# Present before the agent starts, in the mount that was there already.
eicar > "$I/pre/before.com"

start_chain || exit 1

prot() { status_json | jq -r ".vsep.protect[$1].$2"; }
mounts() { status_json | jq -r ".vsep.protect[$1].mounts[]"; }
has_mount() { mounts "$1" | grep -qx "$2"; }
lacks_mount() { ! has_mount "$1" "$2"; }
counter() { status_json | jq -r ".vsep.counters.$1"; }
refused() { ! cat "$1" >/dev/null 2>&1 && [ -e "$1" ]; }

# (c) status: how each path is marked
check "status: $I has inode marks" test "$(prot 0 mark)" = inode
check "status: $I has 4 directories marked (inode, deep, deep/x, deep/new)" test "$(prot 0 dirs)" = 4
check "status: $M has a mount mark" test "$(prot 1 mark)" = mount
check "status: a mount mark counts no directories" test "$(prot 1 dirs)" = 0
check "status: the mount there before start is listed" has_mount 0 "$I/pre"
check "EICAR in a mount there before start is refused" refused "$I/pre/before.com"
text=$("$CTL" -r "$T/run" status 2>/dev/null)
check "status text: inode marks and their count" grep -qF "protect: $I (inode marks on 4 directories)" <<<"$text"
check "status text: the mount mark" grep -qF "protect: $M (mount mark)" <<<"$text"
check "status text: the mount under the inode-marked path" grep -qF "+ $I/pre (mounted under it" <<<"$text"

# (1) A tmpfs filled where nobody watches, then moved under the
# inode-marked path: its file raised no event there, the sweep finds it.
mkdir -p "$T/stage"
mount -t tmpfs marks-stage "$T/stage" || skip "cannot mount tmpfs"
eicar > "$T/stage/staged.com"
swept0=$(counter swept)
mount --move "$T/stage" "$I/deep/new" || skip "mount --move is refused here"
check "a mount moved under an inode-marked path shows up in status" wait_until 2 has_mount 0 "$I/deep/new"
check "EICAR in the moved-in mount is refused within 2 s" wait_until 2 refused "$I/deep/new/staged.com"
check "the new in-memory mount was swept" wait_until 2 test "$(counter swept)" -gt "$swept0"
echo clean > "$I/deep/new/clean.txt"
check "clean file in the new mount reads" test "$(cat "$I/deep/new/clean.txt")" = clean

# A fresh tmpfs mounted there, and an EICAR file written into it at once
# (maybe before its mark lands: the sweep or the mark catches it).
mount -t tmpfs marks-new "$I/deep/x"
eicar > "$I/deep/x/at-once.com"
check "new mount under an inode-marked path shows up in status" wait_until 2 has_mount 0 "$I/deep/x"
check "EICAR written into the new mount at once is refused within 2 s" \
	wait_until 2 refused "$I/deep/x/at-once.com"
eicar > "$I/deep/x/later.com"
check "EICAR written later into the new mount is refused" refused "$I/deep/x/later.com"

# (2) Under the mount-marked path: its mount mark does not reach a mount
# on top of a subdirectory; that one gets its own.
mount -t tmpfs marks-sub "$M/sub"
check "new mount under a mount-marked path shows up in status" wait_until 2 has_mount 1 "$M/sub"
eicar > "$M/sub/e.com"
check "EICAR in the mount under a mount-marked path is refused" wait_until 2 refused "$M/sub/e.com"

# (3) Unmounted: gone from status; the path below is the old directory.
umount "$I/deep/new" "$I/deep/x"
check "unmounted mounts leave status" wait_until 2 lacks_mount 0 "$I/deep/new"
check "both of them" lacks_mount 0 "$I/deep/x"
umount "$M/sub"
check "an unmounted mount under the mount-marked path leaves status" wait_until 2 lacks_mount 1 "$M/sub"
check "agent is still running" kill -0 "$PID_vsep"
finish
