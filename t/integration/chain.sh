#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole chain, real daemons, real fanotify on a tmpfs in a private mount
# namespace: agent -> mux -> SVA (eicar engine) over the transport given as
# $1 (unix or tcp). With unix the protected path is the tmpfs itself (a
# mount mark); with tcp it is a directory inside it (inode marks).
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
transport=${1:?usage: chain.sh unix|tcp}
setup_tmpfs

case $transport in
unix)
	agent_uri="unix://$T/run/mux.sock"
	sva_uri="unix://$T/run/sva.sock"
	P=$T/fs
	;;
tcp)
	agent_uri="tcp://127.0.0.1:$(free_port)"
	sva_uri="tcp://127.0.0.1:$(free_port)"
	P=$T/fs/protected
	# Fewer inline bytes than the eicar engine reads: every scan pulls the
	# rest through the mux with READ/DATA.
	inline=16
	;;
*) echo "unknown transport $transport"; exit 2 ;;
esac
mkdir -p "$P/sub/deeper"
write_configs "$agent_uri" "$sva_uri" "$P" "${inline:-65536}"

# Present before the agent starts: must not be openable once it runs.
eicar > "$P/sub/deeper/pre-existing.com"
echo "clean content" > "$P/clean.txt"

start_chain || exit 1
note "chain up over $transport, protecting $P"

# (1) The runbook's EICAR test: save eicar.test, it is gone within 2 s.
eicar > "$P/eicar.test"
check "saved EICAR file is deleted within 2 s" wait_until 2 test ! -e "$P/eicar.test"

# (2) A pre-existing EICAR file cannot be opened; clean files can.
out=$(cat "$P/sub/deeper/pre-existing.com" 2>&1)
check "open of pre-existing EICAR file fails with EPERM" \
	grep -q "Operation not permitted" <<<"$out"
check "denied file is not deleted on open" test -e "$P/sub/deeper/pre-existing.com"
check "cat of a clean file works" test "$(cat "$P/clean.txt")" = "clean content"

head -c 300000 /dev/urandom > "$T/big.bin"
cp "$T/big.bin" "$P/big.bin"
check "large clean file reads back intact after its scan" cmp -s "$T/big.bin" "$P/big.bin"
{ head -c 100 /dev/zero; eicar; } > "$P/embedded.bin"
sleep 0.3
check "EICAR inside a larger file is not the EICAR test file" test -e "$P/embedded.bin"

# Once running, the agent holds only the capabilities it uses: CHOWN 0,
# DAC_OVERRIDE 1, DAC_READ_SEARCH 2, FOWNER 3, SETGID 6, SETUID 7 (restore as
# the file's owner), SYS_PTRACE 19, SYS_ADMIN 21.
check "vsep keeps only the capabilities it needs (CapEff 2800cf)" \
	grep -q "^CapEff:[[:space:]]*00000000002800cf$" "/proc/$PID_vsep/status"
check "vsep's bounding set is the same" \
	grep -q "^CapBnd:[[:space:]]*00000000002800cf$" "/proc/$PID_vsep/status"

counters() { status_json | jq -r ".vsep.counters.$1"; }
if [ "$transport" = unix ]; then
	# On one host the SVA reads the file through the fd that came with
	# each EVENT: no content travels on the links.
	check "every EVENT went to the SVA with the file's fd" \
		test "$(status_json | jq -r '.["epsec-mux"].counters | .fds_passed == .events')" = true
	check "... so EVENTs carry no inline bytes" \
		test "$(status_json | jq -r .vsep.inline_bytes)" -eq 0
	text=$("$CTL" -r "$T/run" status 2>/dev/null)
	check "status text says so: the agent's files go as fds" \
		grep -qF "files go to the mux as fds" <<<"$text"
	check "... and the SVA takes them" grep -q "engines eicar .* takes fds" <<<"$text"
fi
check "agent counted events" test "$(counters events)" -gt 0
check "agent counted a denial" test "$(counters denied)" -ge 1
check "agent counted a deletion" test "$(counters deleted)" -ge 1

# (3) SVA stopped: the agent keeps answering (fail-open), nothing hangs.
kill "$PID_sva"; wait "$PID_sva" 2>/dev/null
echo "after sva" > "$P/after-sva.txt"
start_ms=$(date +%s%3N)
check "open with the SVA stopped is allowed by policy" \
	sh -c "timeout 10 cat '$P/after-sva.txt' >/dev/null"
took=$(( $(date +%s%3N) - start_ms ))
note "open with no SVA answered in ${took} ms"
check "no-SVA answer comes within scan_timeout_ms (2 s)" test "$took" -lt 2500
eicar > "$P/eicar2.test"
check "EICAR open with the SVA stopped is allowed (fail-open)" \
	sh -c "timeout 10 cat '$P/eicar2.test' >/dev/null"

# The mux gone too: still answered, by on_disconnect.
kill "$PID_mux"; wait "$PID_mux" 2>/dev/null
check "open with the mux stopped is allowed by policy" \
	sh -c "timeout 10 cat '$P/clean.txt' >/dev/null"
check "agent is still running" kill -0 "$PID_vsep"

finish
