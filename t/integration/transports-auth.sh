#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Links no stranger can use, on a real chain: the mux takes agents on tcp
# (CURVE, keys from `epsecctl keygen`, allowed by a directory of .pub files)
# and on unix (allow_uids = [ 0 ]), and SVAs on tcp (CURVE, another key
# list). The agent and the SVA with allowed keys are served; a tcp client
# with no key, a key not allowed, the wrong server key, or a key allowed
# only on the other endpoint, and a unix peer of another uid are refused
# and logged, and everyone else is still served afterwards.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
setup_tmpfs

PROBE=$top_builddir/t/integration/tr_probe
K=$T/keys
P=$T/fs/protected
mkdir -p "$K/agents.d" "$P"
# The unix peer of another uid must reach the socket: only the uid check
# may stop it.
chmod 755 "$T" "$T/run"

# ---------------------------------------------------------------- keys
for n in mux agent1 sva1 probe-ok intruder fakemux; do
	"$CTL" keygen "$K/$n" >/dev/null || { fail "epsecctl keygen $n"; finish; exit 1; }
done
check "keygen: secret key file is mode 0600" test "$(stat -c %a "$K/mux.key")" = 600
check "keygen: public key file is mode 0644" test "$(stat -c %a "$K/mux.pub")" = 644
check "keygen: NAME.key holds both keys" \
	test "$(grep -c -E '^ +(public|secret)-key = "' "$K/mux.key")" = 2
check "keygen: NAME.pub holds no secret" sh -c "! grep -q secret-key '$K/mux.pub'"
check "keygen: the two files carry the same public key" \
	test "$(grep public-key "$K/mux.key")" = "$(grep public-key "$K/mux.pub")"
out=$("$CTL" keygen "$K/mux" 2>&1); rc=$?
check "keygen: refuses to overwrite a key (exit 1)" test "$rc" -eq 1
check "keygen: says why" grep -q "exists; not overwriting" <<<"$out"
cp "$K/agent1.pub" "$K/probe-ok.pub" "$K/agents.d/"

A=$(free_port)
S=$(free_port)
while [ "$S" = "$A" ]; do S=$(free_port); done
agent_uri="tcp://127.0.0.1:$A"
sva_uri="tcp://127.0.0.1:$S"
unix_uri="unix://$T/run/mux.sock"

# ---------------------------------------------------------------- configs
cat >"$T/run/epsec-mux.conf" <<EOC
DEBUG_LEVEL = 7;
DEBUG_DEST = 3;
id = "test-mux";
control = "$T/run/epsec-mux.ctl";
agents = [ "$agent_uri", "$unix_uri" ];
svas = [ "$sva_uri" ];
agents_options = {
  tcp = { curve_secret_key = "$K/mux.key"; curve_allowed_keys = "$K/agents.d"; };
  unix = { mode = 0666; allow_uids = [ 0 ]; };
};
svas_options = {
  tcp = { curve_secret_key = "$K/mux.key"; curve_allowed_keys = [ "$K/sva1.pub" ]; };
};
agent_log_dir = "$T/run/agents";
sva_timeout_ms = 3000;
EOC
cat >"$T/run/epsec-sva.conf" <<EOC
DEBUG_LEVEL = 7;
DEBUG_DEST = 3;
id = "test-sva";
user = "root";
control = "$T/run/epsec-sva.ctl";
mux = "$sva_uri";
mux_options = { tcp = { curve_server_key = "$K/mux.pub"; curve_key = "$K/sva1.key"; }; };
workers = 2;
engine = ( { plugin = "eicar"; action = "delete"; } );
EOC
cat >"$T/run/vsep.conf" <<EOC
DEBUG_LEVEL=7
DEBUG_DEST=3
id = "test-agent";
control = "$T/run/vsep.ctl";
state_dir = "$T/state";
mux = "$agent_uri";
mux_options = { tcp = { curve_server_key = "$K/mux.pub"; curve_key = "$K/agent1.key"; }; };
protect = [ "$P" ];
scan_timeout_ms = 2000;
on_timeout = "allow";
on_disconnect = "allow";
EOC

# probe_opts NAME KEY SERVER_PUB: an options file for tr_probe
probe_opts() {
	printf 'curve_key = "%s";\ncurve_server_key = "%s";\n' "$2" "$3" >"$T/$1.opts"
	echo "$T/$1.opts"
}
# probe EXPECTED_STATUS WHAT ARGS... : run tr_probe hello ARGS, check its status
probe() {
	local want=$1 what=$2 out rc; shift 2
	out=$(timeout 20 "$@" 2>&1); rc=$?
	if [ "$rc" -eq "$want" ]; then pass "$what ($out)"; else fail "$what: status $rc, want $want ($out)"; fi
}
mux_log_has() { grep -qE -- "$1" "$T/mux.log"; }

start_chain || exit 1
note "chain up: agent and SVA over tcp with CURVE"

# ---------------------------------------------------------------- served
served() {
	eicar >"$P/eicar-$1.test"
	wait_until 3 test ! -e "$P/eicar-$1.test"
}
check "allowed agent and SVA are served (EICAR file deleted)" served 1
check "the mux names the agent by its key" \
	sh -c "'$CTL' -r '$T/run' status --json 2>/dev/null |
	       jq -e '[.[\"epsec-mux\"].agents[].peer] | any(contains(\"key=agent1\"))' >/dev/null"
check "the mux names the SVA by its key" \
	sh -c "'$CTL' -r '$T/run' status --json 2>/dev/null |
	       jq -e '[.[\"epsec-mux\"].svas[].peer] | any(contains(\"key=sva1\"))' >/dev/null"
probe 0 "another allowed agent key is welcomed" \
	"$PROBE" hello "$agent_uri" agent "$(probe_opts ok "$K/probe-ok.key" "$K/mux.pub")"
probe 0 "root on unix:// is welcomed" "$PROBE" hello "$unix_uri" agent

# ---------------------------------------------------------------- refused
probe 1 "a key not allowed is refused at connect" \
	"$PROBE" hello "$agent_uri" agent "$(probe_opts intruder "$K/intruder.key" "$K/mux.pub")"
check "... and logged with its key" \
	wait_until 2 mux_log_has "refused client at 127\.0\.0\.1 on tcp://127\.0\.0\.1:$A: its CURVE key .* is not in curve_allowed_keys"

probe_status() { timeout 20 "$@" >/dev/null 2>&1; echo $?; }
rc=$(probe_status "$PROBE" hello "$agent_uri" agent)
check "a client with no key is not welcomed (status $rc)" test "$rc" -ne 0
check "... and logged" wait_until 2 mux_log_has "refused a client on tcp://127\.0\.0\.1:$A"

rc=$(probe_status "$PROBE" hello "$agent_uri" agent \
	"$(probe_opts wrongsrv "$K/agent1.key" "$K/fakemux.pub")")
check "a client with the wrong server key is not welcomed (status $rc)" test "$rc" -ne 0
check "... and logged" \
	wait_until 2 mux_log_has "refused a client on tcp://127\.0\.0\.1:$A: its handshake (does not decrypt|broke off)"

probe 1 "the SVA's key is refused on the agent endpoint" \
	"$PROBE" hello "$agent_uri" agent "$(probe_opts svakey "$K/sva1.key" "$K/mux.pub")"
probe 1 "an agent's key is refused on the SVA endpoint" \
	"$PROBE" hello "$sva_uri" sva "$(probe_opts agentkey "$K/agent1.key" "$K/mux.pub")"
check "... and logged on the SVA endpoint" \
	wait_until 2 mux_log_has "refused client at 127\.0\.0\.1 on tcp://127\.0\.0\.1:$S"

rc=$(probe_status setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$PROBE" hello "$unix_uri" agent)
check "a unix peer of uid 65534 is dropped before WELCOME (status $rc)" test "$rc" -eq 2
check "... and logged" \
	wait_until 2 mux_log_has "refused peer uid=65534 gid=65534 pid=[0-9]+: uid 65534 is not in allow_uids"
# The mux names each peer whose HELLO it took: no refused one is there.
check "no refused peer's HELLO ever reached the mux" \
	sh -c "! grep tr-probe '$T/mux.log' | grep -qE 'uid=65534|key=(intruder|sva1|agent1)'"

# ---------------------------------------------------------------- still served
check "after the refusals the agent is still served" served 2
probe 0 "after the refusals an allowed probe is welcomed" \
	"$PROBE" hello "$agent_uri" agent "$T/ok.opts"
probe 0 "after the refusals root on unix:// is welcomed" "$PROBE" hello "$unix_uri" agent
check "the mux still runs" kill -0 "$PID_mux"

# ---------------------------------------------------------------- bad options
stop_daemons
sed "s|allow_uids = \[ 0 \]|allow_uids = \"root\"|" "$T/run/epsec-mux.conf" >"$T/bad-uids.conf"
out=$(timeout 10 "$MUX" -f -c "$T/bad-uids.conf" 2>&1); rc=$?
check "mux with a bad allow_uids does not run (status $rc)" test "$rc" -ne 0
check "... naming FILE:LINE and the key" \
	grep -qE "bad-uids.conf:[0-9]+: agents_options.unix.allow_uids: expected a list" <<<"$out"
sed "s|curve_allowed_keys = \"$K/agents.d\"; ||" "$T/run/epsec-mux.conf" >"$T/no-allowed.conf"
out=$(timeout 10 "$MUX" -f -c "$T/no-allowed.conf" 2>&1); rc=$?
check "mux with a server key but no allowed keys does not run (status $rc)" test "$rc" -ne 0
check "... and says why" grep -q "needs curve_allowed_keys too" <<<"$out"
cat >"$T/unused.conf" <<EOC
agents = [ "$unix_uri" ];
svas = [ "$sva_uri" ];
agents_options = { vsock = { allow_cids = [ 3 ]; }; };
EOC
out=$(timeout 10 "$MUX" -f -c "$T/unused.conf" 2>&1); rc=$?
check "options for a scheme no endpoint uses: exit 78 (status $rc)" test "$rc" -eq 78
check "... naming the group" grep -q "agents_options.vsock: no vsock:// URI in agents" <<<"$out"

finish
