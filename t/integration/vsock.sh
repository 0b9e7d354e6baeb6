#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# vsock:// end to end, where vsock://1:PORT works (a loopback transport):
# the agent reaches the mux over AF_VSOCK and is served; a mux whose
# allow_cids leaves the peer out refuses it and logs it. Elsewhere it skips
# and says why. vmci:// needs a VMware host on the other end: never run
# here (its parsing, options and errors are in t/unit/test_vsock).
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"

PROBE=$top_builddir/t/integration/tr_probe
# API-FACTS section 7: bind to VMADDR_CID_LOCAL succeeds iff a loopback
# transport is registered; vsock_loopback may only need loading.
if ! "$PROBE" vsock-loopback >/dev/null 2>&1 && command -v modprobe >/dev/null; then
	modprobe vsock_loopback 2>/dev/null
fi
why=$("$PROBE" vsock-loopback 2>&1) ||
	skip "vsock://1:PORT cannot work on this machine: $why (and modprobe vsock_loopback did not help)"
setup_tmpfs

port=$((20000 + RANDOM % 20000))
P=$T/fs/protected
mkdir -p "$P"
sva_uri="unix://$T/run/sva.sock"
write_configs "vsock://1:$port" "$sva_uri" "$P" 65536
# The mux listens on every CID; the agent's connection comes from CID 1.
sed -i "s|agents = \[ \"vsock://1:$port\" \];|agents = [ \"vsock://any:$port\" ];\\
agents_options = { vsock = { allow_cids = [ 1 ]; }; };|" "$T/run/epsec-mux.conf"
sed -i "s|^mux = .*|&\\
mux_options = { vsock = { connect_timeout_ms = 1000; }; };|" "$T/run/vsep.conf"

start_chain || exit 1
note "chain up over vsock://1:$port"
eicar >"$P/eicar.test"
check "agent over vsock is served (EICAR file deleted)" wait_until 3 test ! -e "$P/eicar.test"
check "the mux names the agent by CID" \
	sh -c "'$CTL' -r '$T/run' status --json 2>/dev/null |
	       jq -e '[.[\"epsec-mux\"].agents[].peer] | any(startswith(\"cid=1 \"))' >/dev/null"
out=$(timeout 10 "$PROBE" hello "vsock://1:$port" agent 2>&1)
check "a probe from CID 1 is welcomed ($out)" test $? -eq 0

# A mux that allows only CID 4242: CID 1 is refused and logged.
kill "$PID_mux"; wait "$PID_mux" 2>/dev/null
sed -i "s|allow_cids = \[ 1 \]|allow_cids = [ 4242 ]|" "$T/run/epsec-mux.conf"
start mux2 "$MUX" -f -c "$T/run/epsec-mux.conf"
sleep 0.5
out=$(timeout 10 "$PROBE" hello "vsock://1:$port" agent 2>&1); rc=$?
check "a CID not in allow_cids is dropped before WELCOME (status $rc: $out)" test "$rc" -eq 2
check "... and logged" \
	wait_until 2 grep -qE "refused peer cid=1 port=[0-9]+: cid 1 is not in allow_cids" "$T/mux2.log"
check "the mux still runs" kill -0 "$PID_mux2"

finish
