#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsec-sva started as root runs as its unprivileged user once its plugins
# and control socket are open: user = "nobody" gives uid and gid 65534
# (real, effective, saved), no capabilities and no_new_privs, and the
# chain still scans. A signature file only root can read loads at start,
# but a reload, which runs as the user, fails and keeps the old
# signatures. No such user: refused at start (78). user = "root" stays root.
set -u
. "$(dirname "$0")/sdk-lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root to start epsec-sva as root (running as uid $(id -u))"
getent passwd nobody >/dev/null || skip "no user nobody on this system"
capeff=$((16#$(awk '$1 == "CapEff:" { print $2 }' /proc/self/status)))
(( (capeff >> 6 & 3) == 3 )) || skip "root without CAP_SETGID and CAP_SETUID cannot switch users"
sdk_setup
nobody_uid=$(id -u nobody)
nobody_gid=$(id -g nobody)

printf 'Sig-Alpha ALPHA-MARK\n' >"$T/words"
chmod 600 "$T/words"
echo "ALPHA-MARK" >"$T/alpha.txt"
echo "clean" >"$T/clean.txt"
engines="  { plugin = \"eicar\"; action = \"delete\"; },
  { plugin = \"$WORDLIST\"; action = \"deny\"; options = { file = \"$T/words\"; }; }"

# proc_field PID NAME: the values of one line of /proc/PID/status, by spaces.
proc_field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }

mux_config
sva_config "$engines" 'user = "nobody";'
start_mux_sva || exit 1
check "uid: real, effective, saved, fs all nobody's" \
	test "$(proc_field "$PID_sva" Uid)" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid"
check "gid: all nobody's" \
	test "$(proc_field "$PID_sva" Gid)" = "$nobody_gid $nobody_gid $nobody_gid $nobody_gid"
no_root_group() { ! tr ' ' '\n' <<<"$(proc_field "$1" Groups)" | grep -qx 0; }
check "no root group left among the supplementary groups" no_root_group "$PID_sva"
check "no effective or permitted capabilities" \
	test "$(proc_field "$PID_sva" CapEff)$(proc_field "$PID_sva" CapPrm)" = \
	"00000000000000000000000000000000"
check "no_new_privs set" test "$(proc_field "$PID_sva" NoNewPrivs)" = 1
# A non-dumpable process's /proc files are root's: nobody's here means a
# crash would leave a core.
check "dumpable after the drop: a crash leaves a core" \
	test "$(stat -c %u "/proc/$PID_sva/status")" = "$(id -u nobody)"
check "status reports the user" jqe '.user == "nobody"' < <(sva_status)

"$AGENT" "$MUX_AGENTS" "$T/alpha.txt" "$T/clean.txt" >"$T/verdicts" 2>"$T/agent.log"
check "the chain scans as nobody: signature file read as root at start" \
	test "$(verdict_of "$T/alpha.txt")" = "deny wordlist Sig-Alpha"
check "... clean allowed" test "$(verdict_of "$T/clean.txt")" = "allow - -"

printf 'Sig-Beta BETA-MARK\n' >"$T/words"
r=$(sva_call reload)
check "reload as nobody of a root-only file fails, saying why ($(jq -r .error <<<"$r"))" \
	jqe '.ok == false and (.error | test("Permission denied"))' <<<"$r"
"$AGENT" "$MUX_AGENTS" "$T/alpha.txt" >"$T/verdicts" 2>"$T/agent.log"
check "... and the old signatures still answer" \
	test "$(verdict_of "$T/alpha.txt")" = "deny wordlist Sig-Alpha"
chmod 755 "$T"
chmod 644 "$T/words"
check "readable by the user: reload works" jqe '.ok == true and .reloaded == 1' < <(sva_call reload)
"$AGENT" "$MUX_AGENTS" "$T/alpha.txt" >"$T/verdicts" 2>"$T/agent.log"
check "... with the new signatures" test "$(verdict_of "$T/alpha.txt")" = "allow - -"

kill "$PID_sva"
wait "$PID_sva"
check "SIGTERM: exit 0 as nobody" test $? -eq 0
stop_daemons

sva_config "$engines" 'user = "no-such-user-epsec";'
sva_refuses "unknown user refused with file and line" 78 \
	"epsec-sva.conf:8: user: no user \"no-such-user-epsec\" on this system"

if command -v setpriv >/dev/null; then
	# As the shipped unit did once: root, but no capability to switch.
	sva_config "$engines" 'user = "nobody";'
	out=$(timeout 10 setpriv --bounding-set=-setuid,-setgid "$SVA" -f \
		-c "$T/run/epsec-sva.conf" 2>&1)
	rc=$?
	check "root without CAP_SETUID/CAP_SETGID: refuses to start (exit $rc)" test "$rc" -eq 1
	check "... saying why" grep -q "cannot run as user nobody: setgroups: Operation not permitted" \
		<<<"$out"
else
	note "setpriv (util-linux) not installed: no check without CAP_SETUID"
fi

sva_config "$engines" 'user = "root";'
start_mux_sva || exit 1
check "user = \"root\" keeps root" test "$(proc_field "$PID_sva" Uid | cut -d' ' -f2)" = 0
check "... and says so in status" jqe '.user == "root"' < <(sva_status)
check "... without the warning" sh -c "! grep -q 'running as root' '$T/sva.log'"
stop_daemons

SVA_NO_USER=1 sva_config "$engines"
start_mux_sva || exit 1
if getent passwd epsec >/dev/null; then
	check "no user setting: the epsec user" \
		test "$(proc_field "$PID_sva" Uid | cut -d' ' -f2)" = "$(id -u epsec)"
else
	check "no user setting, no epsec user: never root, nobody's ids" \
		test "$(proc_field "$PID_sva" Uid | cut -d' ' -f2)" = "$(id -u nobody)"
	check "... and says which, once" \
		test "$(grep -c 'there is no user "epsec": running as nobody' "$T/sva.log")" = 1
fi

finish
