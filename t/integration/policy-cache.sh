#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# vsep's verdict cache and ignore marks, on the real chain: the second open
# of an unchanged file makes no request; a write, a touch and a new
# signature generation each bring the request back. With ignore marks the
# kernel stops asking at all, under a mount mark and under a directory's
# inode mark alike.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs

M=$T/fs/mnt   # a mount point: a mount mark
D=$T/fs/dir   # a plain directory: inode marks
mkdir -p "$M" "$D"
mount -t tmpfs epsec-test-m "$M" || skip "cannot mount a second tmpfs"

# run_chain IGNORE_MARKS: a fresh chain with the cache on.
run_chain() {
	stop_daemons
	policy_configs "\"$M\", \"$D\"" "$(eicar_engine), $(slow_engine "" 0)" <<EOC
DEBUG_LEVEL = 6;
scan_timeout_ms = 5000;
cache_size = 1024;
ignore_marks = $1;
ignore_marks_max = ${2:-1000};
EOC
	policy_start
}

opens() { "$POLICY_OPEN" -n "${2:-1}" "$1" >/dev/null; }
# requests_for CMD...: how many files the SVA scanned while CMD ran.
requests_for() {
	local before after
	before=$(sva_scanned)
	"$@" >/dev/null
	wait_until 5 in_flight_zero
	after=$(sva_scanned)
	echo $((after - before))
}
events_for() {
	local before after
	before=$(vc events)
	"$@" >/dev/null
	wait_until 5 in_flight_zero
	after=$(vc events)
	echo $((after - before))
}

for d in "$M" "$D"; do
	for f in a b c d g; do echo "content $f" >"$d/$f.txt"; done
done
mkdir "$D/many"
for i in $(seq 1 200); do echo "file $i" >"$D/many/$i"; done

# ---------------------------------------------------------------- cache only
run_chain false || exit 1
for d in "$M" "$D"; do
	kind=$([ "$d" = "$M" ] && echo mount || echo inode)
	check "[$kind] first open of a file is scanned" test "$(requests_for opens "$d/a.txt")" -eq 1
	h0=$(vc cache_hits)
	check "[$kind] second open of the unchanged file makes no request" \
		test "$(requests_for opens "$d/a.txt" 5)" -eq 0
	check "[$kind] ... and is answered from the cache (5 hits)" test $(( $(vc cache_hits) - h0 )) -eq 5
	check "[$kind] a write makes a request (the close-after-write scan)" \
		test "$(requests_for sh -c "echo more >>'$d/a.txt'")" -eq 1
	check "[$kind] ... whose verdict answers the next open (no request)" \
		test "$(requests_for opens "$d/a.txt")" -eq 0
	# -h: utimensat without opening the file (no close-after-write).
	touch -h -d "2001-01-01" "$d/a.txt"
	check "[$kind] after a touch (mtime, ctime) the file is scanned again" \
		test "$(requests_for opens "$d/a.txt")" -eq 1
done
echo plain >"$T/fs/plain.txt"
note "open cost: unprotected $(field mean_us "$("$POLICY_OPEN" -n 2000 "$T/fs/plain.txt")") us," \
	"scanned (200 small files, eicar) $(field mean_us "$("$POLICY_OPEN" -n 200 "$D"/many/*)") us," \
	"from vsep's cache $(field mean_us "$("$POLICY_OPEN" -n 2000 "$D/a.txt")") us"
eicar >"$D/e.com" 2>/dev/null
wait_until 5 in_flight_zero
denied0=$(vc denied)
out=$("$POLICY_OPEN" -n 3 "$D/e.com")
check "an infected file is denied every time" test "$(field denied "$out")" -eq 3
check "... and from the cache after the first verdict" \
	test "$(requests_for opens "$D/e.com" 3)" -eq 0
check "denials are counted" test $(( $(vc denied) - denied0 )) -ge 6
check "cache misses are counted" test "$(vc cache_misses)" -gt 0
check "no ignore marks when they are off" test "$(vc ignore_marks)" -eq 0

# ---------------------------------------------------------------- ignore marks
run_chain true || exit 1
for d in "$M" "$D"; do
	kind=$([ "$d" = "$M" ] && echo mount || echo inode)
	m0=$(vc ignore_marks)
	check "[$kind] first open of a file is an event" test "$(events_for opens "$d/b.txt")" -eq 1
	check "[$kind] a clean verdict places an ignore mark" test $(( $(vc ignore_marks) - m0 )) -eq 1
	check "[$kind] with the ignore mark the kernel asks nothing (20 opens, 0 events)" \
		test "$(events_for opens "$d/b.txt" 20)" -eq 0
	echo "more" >>"$d/b.txt"
	wait_until 5 in_flight_zero
	check "[$kind] after a write the kernel asks again" \
		test "$(events_for opens "$d/b.txt")" -eq 1
	check "[$kind] ... and the mark is back after that answer" \
		test "$(events_for opens "$d/b.txt" 5)" -eq 0
	out=$("$POLICY_OPEN" -n 2000 "$d/b.txt")
	note "[$kind] open cost with an ignore mark: $(field mean_us "$out") us (2000 opens)"
done

# A new signature generation: every cached verdict and every ignore mark
# goes at once: the SVA tells the mux, the mux tells the agent (GENERATION),
# with no open in between.
vsep_generation() { vsep_json | jq -r '.generation'; }
agent_has_sva_generation() { [ "$(vsep_generation)" = "$(sva_generation)" ]; }
g0=$(sva_generation)
check "the agent knows the SVA's generation" wait_until 5 agent_has_sva_generation
reload=$("$CTL" -s "$T/run/epsec-sva.ctl" reload 2>&1)
if [ "$(sva_generation)" = "$g0" ]; then
	fail "epsecctl reload bumps the SVA's generation ($reload)"
else
	check "after a reload the agent hears the new generation with no open" \
		wait_until 5 agent_has_sva_generation
	for d in "$M" "$D"; do
		kind=$([ "$d" = "$M" ] && echo mount || echo inode)
		check "[$kind] after a generation bump an ignore-marked file is scanned again" \
			test "$(requests_for opens "$d/b.txt")" -eq 1
	done
	check "protected trees are still watched after the flush" \
		test "$(events_for opens "$D/c.txt")" -eq 1
fi

# ignore_marks_max: bounded, and never flushed for being full (a flush
# would open a moment in which opens go unseen). When full, clean files
# are answered from the cache; marks the kernel dropped (file deleted) are
# found by a recount at most once a second, and marking resumes.
run_chain true 3 || exit 1
for f in a b c; do opens "$D/$f.txt"; done
wait_until 5 in_flight_zero
check "3 files, 3 ignore marks" test "$(vc ignore_marks)" -eq 3
opens "$D/d.txt"
wait_until 5 in_flight_zero
check "a 4th clean file gets no mark: ignore_marks stays 3" test "$(vc ignore_marks)" -eq 3
check "... its next open is still reported" test "$(events_for opens "$D/d.txt")" -eq 1
check "... and answered from the cache (no scan)" test "$(requests_for opens "$D/d.txt")" -eq 0
check "the full table is said once" \
	wait_until 3 grep -q "ignore_marks_max (3) reached" "$T/vsep.log"
check "and never flushed" sh -c "! grep -q 'flushed' '$T/vsep.log'"
rm "$D/c.txt"
sleep 1.2
opens "$D/d.txt"
wait_until 5 in_flight_zero
check "after a marked file is deleted, the recount frees a place: d is marked" \
	test "$(vc ignore_marks)" -eq 4
check "... and its opens are no longer reported" test "$(events_for opens "$D/d.txt")" -eq 0
check "the tree is still watched" test "$(events_for opens "$D/g.txt")" -eq 1
check "vsep is still running" kill -0 "$PID_vsep"
finish
