#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# New directories under an inode-marked protected path (a directory that is
# not a mount point): each is marked as it appears, and what was written in
# it before its mark landed is swept once. clamonacc misses 1-7 files in
# 10,000 exactly there; here every EICAR file must be caught.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
command -v tar >/dev/null || skip "tar is not installed"
setup_tmpfs

P=$T/fs/protected
S=$T/fs/stage     # same filesystem, not protected: mv from here raises no file events
mkdir -p "$P" "$S"
write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$P"
start_chain || exit 1

counter() { status_json | jq -r ".vsep.counters.$1"; }
prot() { status_json | jq -r ".vsep.protect[0].$1"; }
dirs_are() { [ "$(prot dirs)" = "$1" ]; }
dirs_under() { find "$1" -type d | wc -l; }
left() { find "$1" -name '*.com' | wc -l; }
none_left() { [ "$(left "$1")" -eq 0 ]; }

# (c) what status says before anything happens
check "status: the protected path has inode marks" test "$(prot mark)" = inode
check "status: one directory marked at start" dirs_are 1
check "status: no mounts picked up" test "$(status_json | jq -r '.vsep.protect[0].mounts | length')" = 0

# (1) A tree built where nobody watches, then moved in: no event is raised
# for the files inside it, so only the sweep can find them.
mkdir -p "$S/moved/a/b/c/d" "$S/moved/x/y"
eicar > "$S/moved/top.com"
eicar > "$S/moved/a/b/c/d/deep.com"
eicar > "$S/moved/x/y/side.com"
for i in 1 2 3 4 5; do echo "clean $i" > "$S/moved/a/b/clean$i.txt"; done
swept0=$(counter swept)
mv "$S/moved" "$P/"
check "sweep deletes every EICAR file of a moved-in tree (3 of 3)" wait_until 5 none_left "$P/moved"
check "clean files of the moved-in tree stay" test "$(cat "$P/moved/a/b/clean3.txt")" = "clean 3"
check "swept counter counts the moved-in files (>= 8)" test "$(( $(counter swept) - swept0 ))" -ge 8
check "status: dirs count includes the moved-in tree (1 + 7)" wait_until 2 dirs_are 8

# (2) After its sweep the moved-in tree is watched like the rest.
eicar > "$P/moved/x/y/later.com"
check "EICAR written later in a moved-in directory is deleted" wait_until 2 none_left "$P/moved"

# (3) An untar of many nested new directories, EICAR files deep inside:
# written within microseconds of their directory's creation, they are
# caught either by close-after-write (mark already there) or by the sweep.
src=$T/src
for d in $(seq 1 40); do
	mkdir -p "$src/t/d$d/e1/e2/e3"
	for f in $(seq 1 20); do echo "clean $d $f" > "$src/t/d$d/e1/f$f.txt"; done
	eicar > "$src/t/d$d/e1/e2/e3/infected.com"
	eicar > "$src/t/d$d/e1/e2/mid.com"
done
tar -C "$src" -cf "$T/tree.tar" t
n_eicar=$(find "$src" -name '*.com' | wc -l)
n_clean=$(find "$src" -name '*.txt' | wc -l)
tar -C "$P" -xf "$T/tree.tar"
wait_until 10 none_left "$P/t"
check "untar: every EICAR file deep in new directories is caught ($(left "$P/t") of $n_eicar missed)" none_left "$P/t"
check "untar: every clean file is there ($n_clean)" test "$(find "$P/t" -name '*.txt' | wc -l)" -eq "$n_clean"
expect=$(dirs_under "$P")
check "status: dirs count follows the untar ($expect)" wait_until 3 dirs_are "$expect"

# (4) mkdir -p and a write right after it, many times: the narrowest window.
for i in $(seq 1 50); do
	mkdir -p "$P/w/$i/a/b"
	eicar > "$P/w/$i/a/b/e.com"
done
wait_until 10 none_left "$P/w"
check "mkdir -p + write at once: every EICAR file is caught ($(left "$P/w") of 50 missed)" none_left "$P/w"

# (5) Directories going away: the count follows, and a tree moved out of
# the protected path stops being watched.
rm -rf "$P/t" "$P/w"
expect=$(dirs_under "$P")
check "status: dirs count drops when directories are removed ($expect)" wait_until 3 dirs_are "$expect"
mkdir -p "$T/fs/outside"
mv "$P/moved" "$T/fs/outside/"
expect=$(dirs_under "$P")
check "status: dirs count drops when a tree is moved out ($expect)" wait_until 3 dirs_are "$expect"
eicar > "$T/fs/outside/moved/a/b/c/d/not-protected.com"
sleep 0.5
check "a tree moved out is no longer scanned" test -e "$T/fs/outside/moved/a/b/c/d/not-protected.com"

# A file written before its directory's mark and closed after it is
# scanned twice (close-after-write and sweep): when both verdicts delete,
# the second finds it gone. That is the only error allowed here.
errs=$(counter errors)
gone=$(grep -c "not deleting .*No such file or directory" "$T/vsep.log")
note "errors: $errs, second deletes of a file already deleted: $gone"
check "every error is a second delete of a file already gone" test "$errs" -le "$gone"
check "agent is still running" kill -0 "$PID_vsep"
finish
