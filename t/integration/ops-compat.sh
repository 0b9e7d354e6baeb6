#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsecctl compat against the real chain: every component with version,
# build, protocol range and ABI, one verdict per pair, exit 0; a peer that
# offers another protocol range (tr_probe, TR_PROBE_PROTO) is refused by
# the mux and shown NOT COMPATIBLE with why, exit 1; from the mux's socket
# alone (the mux's host) the agent, the SVA and the refused peer all show.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
PROBE=$top_builddir/t/integration/tr_probe
ns_enter "$@"
[ -x "$PROBE" ] || skip "t/integration/tr_probe is not built"
setup_tmpfs
mkdir -p "$T/fs/p"
policy_configs "\"$T/fs/p\"" "$(eicar_engine delete)" </dev/null
policy_start || { finish; exit 1; }

compat() { # compat [RUNDIR]: output in $out, status in $rc, time in $ms
	local t0; t0=$(date +%s%N)
	out=$("$CTL" -r "${1:-$T/run}" compat 2>&1); rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "$out" | sed 's/^/#   /'
}

compat
check "a good chain: exit 0 (got $rc)" test "$rc" = 0
check "  in under a second ($ms ms)" test "$ms" -lt 1000
check "  vsep with its protocol range" grep -q "vsep  *test-agent .*protocol 1-1" <<<"$out"
check "  the agent <-> mux pair" grep -q "agent test-agent .* <-> epsec-mux: compatible (speaking protocol 1" <<<"$out"
check "  the sva <-> mux pair" grep -q "sva test-sva .* <-> epsec-mux: compatible" <<<"$out"
check "  the engine with its ABI and signatures" grep -q "engine eicar .*plugin ABI 1\.[0-9]*, action delete, signatures:" <<<"$out"
check "  the sva <-> engine pair" grep -q "epsec-sva test-sva <-> engine eicar .*: compatible (plugin ABI" <<<"$out"

probe=$(TR_PROBE_PROTO=0-0 "$PROBE" hello "unix://$T/run/sva.sock" sva)
check "an SVA offering protocol 0-0 is refused by the mux ($probe)" grep -q "dropped before WELCOME" <<<"$probe"
compat
check "with it: exit 1 (got $rc)" test "$rc" = 1
check "  NOT COMPATIBLE, with why" grep -q "sva tr-probe-[0-9]* .* <-> epsec-mux: NOT COMPATIBLE: no protocol version in common (it offers protocol 0-0, the mux 1-1" <<<"$out"
check "  the good pairs still compatible" grep -q "agent test-agent .*: compatible" <<<"$out"

# The mux's host only: what compat sees through the mux.
mkdir -p "$T/muxonly"
ln -s "$T/run/epsec-mux.ctl" "$T/muxonly/epsec-mux.ctl"
TR_PROBE_PROTO=5-9 "$PROBE" hello "unix://$T/run/mux.sock" agent >/dev/null
compat "$T/muxonly"
check "mux alone: exit 1 (got $rc)" test "$rc" = 1
check "  the remote agent from the mux" grep -q "agent test-agent .*: compatible" <<<"$out"
check "  the remote sva from the mux" grep -q "sva test-sva .*: compatible" <<<"$out"
check "  a newer agent refused, with its range" grep -q "agent tr-probe-[0-9]* .*NOT COMPATIBLE: no protocol version in common (it offers protocol 5-9" <<<"$out"
finish
