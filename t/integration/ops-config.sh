#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `DAEMON -t`: every error of a file in one run (FILE:LINE: KEY, exit 78),
# or the effective settings with defaults filled in (exit 0) and nothing
# started; `epsecctl config` asks running daemons for the same, with the
# CURVE key files' names removed. Needs no root: nothing is marked.
set -u
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/epsec-opsconf.XXXXXX)
mkdir -p "$T/run"
trap 'stop_daemons; rm -rf "$T"' EXIT

# expect_errors PROGRAM FILE LINE:KEY... : -t reports all of them, exit 78.
expect_errors() {
	local prog=$1 file=$2 out rc lk; shift 2
	out=$(timeout 10 "$prog" -t -c "$file" 2>&1); rc=$?
	check "$(basename "$prog") -t bad file: exit 78 (got $rc)" test "$rc" = 78
	for lk in "$@"; do
		check "$(basename "$prog") -t: $file:${lk%%:*}: ${lk#*:}" \
			grep -qF "$file:${lk%%:*}: ${lk#*:}:" <<<"$out"
	done
}

cat >"$T/vsep-bad.conf" <<'EOC'
mux = "unix:///tmp/x.sock";
protect = [ "/tmp" ];
bogus_key = 1;
scan_timeout_ms = "soon";
on_error = "maybe";
EOC
expect_errors "$VSEP" "$T/vsep-bad.conf" 3:bogus_key 4:scan_timeout_ms 5:on_error

cat >"$T/mux-bad.conf" <<'EOC'
agents = [ "unix:///tmp/a.sock" ];
svas = [ "tcp://127.0.0.1" ];
sva_window = 0;
EOC
expect_errors "$MUX" "$T/mux-bad.conf" 2:svas[0] 3:sva_window

cat >"$T/sva-bad.conf" <<'EOC'
mux = "unix:///tmp/s.sock";
workers = 0;
engine = ( { plugin = "eicar"; action = "explode"; } );
EOC
expect_errors "$SVA" "$T/sva-bad.conf" 2:workers 3:engine[0].action

cat >"$T/vsep.conf" <<EOC
mux = "unix://$T/run/mux.sock";
protect = [ "$T" ];
control = "$T/run/vsep.ctl";
scan_timeout_ms = 1500;
EOC
out=$("$VSEP" -t -c "$T/vsep.conf" 2>&1); rc=$?
check "vsep -t good file: exit 0 (got $rc)" test "$rc" = 0
check "vsep -t: a key from the file" grep -qx 'scan_timeout_ms = 1500;' <<<"$out"
check "vsep -t: a default filled in and marked" grep -qx 'on_timeout = "allow";  # default' <<<"$out"
check "vsep -t: started nothing (no control socket)" test ! -e "$T/run/vsep.ctl"

cat >"$T/sva.conf" <<EOC
mux = "unix://$T/run/sva.sock";
user = "root";
control = "$T/run/epsec-sva.ctl";
engine = ( { plugin = "eicar"; action = "delete"; } );
EOC
out=$("$SVA" -t -c "$T/sva.conf" 2>&1); rc=$?
check "epsec-sva -t good file: exit 0 (got $rc)" test "$rc" = 0
check "epsec-sva -t: workers default" grep -qx 'workers = 2;  # default' <<<"$out"
check "epsec-sva -t: the engine list as written" grep -q 'action = "delete";' <<<"$out"

# A running mux with a CURVE listener: `epsecctl config` shows its settings
# but neither the key file's name nor its contents.
"$CTL" keygen "$T/mux" >/dev/null && "$CTL" keygen "$T/agent" >/dev/null
port=$(free_port)
cat >"$T/mux.conf" <<EOC
DEBUG_DEST = 3;
control = "$T/run/epsec-mux.ctl";
agents = [ "unix://$T/run/mux.sock", "tcp://127.0.0.1:$port" ];
agents_options = { tcp = { curve_secret_key = "$T/mux.key"; curve_allowed_keys = "$T/agent.pub"; }; };
svas = [ "unix://$T/run/sva.sock" ];
agent_log_dir = "$T/run/agents";
EOC
out=$("$MUX" -t -c "$T/mux.conf" 2>&1); rc=$?
check "epsec-mux -t good file: exit 0 (got $rc)" test "$rc" = 0
start mux "$MUX" -f -c "$T/mux.conf"
wait_until 10 test -S "$T/run/epsec-mux.ctl" || fail "mux control socket"
t0=$(date +%s%N)
out=$("$CTL" -s "$T/run/epsec-mux.ctl" config); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "epsecctl config: exit 0 (got $rc)" test "$rc" = 0
check "epsecctl config answers in under a second ($ms ms)" test "$ms" -lt 1000
check "epsecctl config: the mux's settings" grep -q "^peer_timeout_ms = 3000;  # default" <<<"$out"
check "epsecctl config: curve_secret_key removed" grep -q 'curve_secret_key = "(removed)"' <<<"$out"
check "epsecctl config: no key file name" bash -c '! grep -qF "$1" <<<"$2"' _ "$T/mux.key" "$out"
secret=$(sed -n 's/^ *secret-key = "\(.*\)"/\1/p' "$T/mux.key")
check "epsecctl config: no secret key text" bash -c '[ -n "$1" ] && ! grep -qF "$1" <<<"$2"' _ "$secret" "$out"
finish
