# SPDX-License-Identifier: MIT
# Shared by the mux tests and benchmark (after lib.sh): a run directory,
# an epsec-mux with agents on unix:// and tcp:// and SVAs on tcp://, test
# SVAs (mux_sva, on libepsec) and the agents program (mux_agents).
AGENTS=$top_builddir/t/integration/mux_agents
TSVA=$top_builddir/t/integration/mux_sva

# No root needed: no fanotify here, just a temp dir.
mux_setup() {
	command -v jq >/dev/null || skip "jq is not installed"
	for p in "$MUX" "$AGENTS" "$TSVA" "$CTL"; do
		[ -x "$p" ] || skip "$p is not built"
	done
	T=$(mktemp -d /tmp/epsec-mux.XXXXXX)
	mkdir -p "$T/run"
	trap cleanup EXIT
	AGENT_UNIX="unix://$T/run/mux.sock"
	AGENT_TCP="tcp://127.0.0.1:$(free_port)"
	SVA_URI="tcp://127.0.0.1:$(free_port)"
}

# write_mux_conf [KEY = VALUE; ...]: extra settings appended.
write_mux_conf() {
	cat >"$T/run/epsec-mux.conf" <<EOC
DEBUG_LEVEL = ${MUX_DEBUG_LEVEL:-6};
DEBUG_DEST = 3;
id = "test-mux";
control = "$T/run/epsec-mux.ctl";
agents = [ "$AGENT_UNIX", "$AGENT_TCP" ];
svas = [ "$SVA_URI" ];
$(plaintext agents "$AGENT_TCP")
$(plaintext svas "$SVA_URI")
agent_log_dir = "$T/run/agents";
sva_timeout_ms = ${SVA_TIMEOUT_MS:-5000};
$*
EOC
}

mux_json() { "$CTL" -s "$T/run/epsec-mux.ctl" status --json 2>/dev/null | jq -c '.[]'; }
mux_up() { mux_json | jq -e '.ok == true' >/dev/null; }
mux_q() { mux_json | jq -r "$1"; }
svas_connected() { [ "$(mux_q '.svas | length')" -ge "$1" ]; }
agents_connected() { [ "$(mux_q '.agents | length')" -ge "$1" ]; }

start_mux() {
	start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
	wait_until 5 mux_up || { fail "epsec-mux answers on its control socket"; return 1; }
}

# start_tsva N MODE [ARGS...]: N test SVAs named tsva-1..N.
start_tsva() {
	local n=$1 mode=$2 i; shift 2
	for i in $(seq 1 "$n"); do
		start "tsva-$i" "$TSVA" -u "$SVA_URI" -i "tsva-$i" -m "$mode" "$@"
	done
}

# wait_ready LOGFILE: the agents program says "ready" once all are welcomed.
wait_ready() { wait_until "${2:-20}" grep -q '^ready' "$1"; }

# field LOGFILE KEY: a value of the agents program's summary line.
field() { grep -o "\b$2=[0-9.]*" "$1" | tail -n 1 | cut -d= -f2; }

ms_now() { date +%s%3N; }
jqe() { jq -e "$@" >/dev/null; }

# The mux stops cleanly on SIGTERM (exit 0; under a sanitizer, nothing
# reported in any of its logs).
stop_mux_clean() {
	local rc
	kill -TERM "$PID_mux"
	wait "$PID_mux"; rc=$?
	check "epsec-mux exits 0 on SIGTERM" test "$rc" -eq 0
	check "no sanitizer report from epsec-mux" \
		sh -c "! grep -qsE 'Sanitizer|runtime error' '$T'/mux*.log"
}
