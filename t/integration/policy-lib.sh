# SPDX-License-Identifier: MIT
# Shared by the policy-*.sh scripts (after lib.sh): the chain over unix
# sockets with vsep settings and SVA engines of the test's choosing, and
# quick readers for the daemons' counters.

POLICY_OPEN=$top_builddir/t/integration/policy-open
SLOW_PLUGIN=$top_builddir/t/integration/policy_slow.la

# policy_configs PROTECT ENGINES [MUX_SVA_TIMEOUT_MS]; vsep settings on stdin.
# PROTECT is a libconfig list body ("\"/a\", \"/b\""); ENGINES the SVA's
# engine list body.
policy_configs() {
	cat >"$T/run/epsec-mux.conf" <<EOC
DEBUG_LEVEL = 6;
DEBUG_DEST = 3;
id = "test-mux";
control = "$T/run/epsec-mux.ctl";
agents = [ "unix://$T/run/mux.sock" ];
svas = [ "unix://$T/run/sva.sock" ];
agent_log_dir = "$T/run/agents";
sva_timeout_ms = ${3:-10000};
EOC
	cat >"$T/run/epsec-sva.conf" <<EOC
DEBUG_LEVEL = 6;
DEBUG_DEST = 3;
id = "test-sva";
user = "root";
control = "$T/run/epsec-sva.ctl";
mux = "unix://$T/run/sva.sock";
workers = 8;
engine = ( $2 );
EOC
	{
		cat <<EOC
DEBUG_DEST = 3;
id = "test-agent";
control = "$T/run/vsep.ctl";
state_dir = "$T/state";
mux = "unix://$T/run/mux.sock";
protect = [ $1 ];
EOC
		cat
	} >"$T/run/vsep.conf"
}

slow_engine() { # slow_engine MATCH SLEEP_MS [RESULT]
	echo "{ plugin = \"$SLOW_PLUGIN\"; action = \"deny\"; options = { match = \"$1\"; sleep_ms = $2; result = \"${3:-clean}\"; }; }"
}
eicar_engine() { echo "{ plugin = \"eicar\"; action = \"${1:-deny}\"; }"; }

# One daemon's status (epsecctl -s keys the reply by socket path).
vsep_json() { "$CTL" -s "$T/run/vsep.ctl" status --json 2>/dev/null | jq '.[]'; }
sva_json() { "$CTL" -s "$T/run/epsec-sva.ctl" status --json 2>/dev/null | jq '.[]'; }
# vc NAME: one of vsep's counters ("null" when vsep does not answer).
vc() { vsep_json | jq -r ".counters.$1"; }
sva_scanned() { sva_json | jq -r '.counters.scanned'; }
sva_generation() { sva_json | jq -r '.generation'; }
in_flight_zero() { [ "$(vsep_json | jq -r '.in_flight')" = 0 ]; }

# field KEY LINE: KEY=value out of policy-open's report.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# The chain up: SVA, mux, vsep, and both links.
policy_start() {
	start sva "$SVA" -f -c "$T/run/epsec-sva.conf"
	start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
	start vsep "$VSEP" -f -c "$T/run/vsep.conf"
	wait_until 10 agent_connected || { fail "agent connected to the mux"; return 1; }
	wait_until 10 mux_has_sva || { fail "SVA connected to the mux"; return 1; }
}

# A daemon's fd count.
fd_count() { ls "/proc/$1/fd" | wc -l; }
