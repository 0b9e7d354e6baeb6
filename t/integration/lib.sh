# SPDX-License-Identifier: MIT
# Shared by the integration scripts: a private mount namespace with a tmpfs,
# real daemons from the build tree, and cleanup on every exit.
# Scripts source this, then call ns_enter "$@" first.

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
export EPSEC_PLUGIN_PATH="${EPSEC_PLUGIN_PATH:-$top_builddir/transports:$top_builddir/plugins}"

VSEP=$top_builddir/agent/vsep
MUX=$top_builddir/mux/epsec-mux
SVA=$top_builddir/sva/epsec-sva
CTL=$top_builddir/tools/epsecctl

PASSES=0
FAILS=0
DAEMON_PIDS=()

skip() { echo "SKIP: $*"; exit 77; }
note() { echo "# $*"; }
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check "description" command...
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}

# Re-run this script as root in a private mount namespace; everything it
# mounts disappears with it and / is never marked.
ns_enter() {
	[ "${EPSEC_IN_NS:-}" = 1 ] && return 0
	[ "$(id -u)" -eq 0 ] || skip "needs root for fanotify (running as uid $(id -u))"
	command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
	command -v jq >/dev/null || skip "jq is not installed"
	EPSEC_IN_NS=1 exec unshare -m --propagation private "$0" "$@"
}

# A fresh temp dir T with a tmpfs at $T/fs.
setup_tmpfs() {
	T=$(mktemp -d /tmp/epsec-it.XXXXXX)
	mkdir -p "$T/fs" "$T/run"
	mount -t tmpfs -o size=256m epsec-test "$T/fs" || skip "cannot mount tmpfs"
	trap cleanup EXIT
}

cleanup() {
	local rc=$?
	stop_daemons
	if [ -n "${T:-}" ]; then
		umount -l "$T/fs" 2>/dev/null
		if [ "$FAILS" -gt 0 ] || [ "$rc" -ne 0 ]; then
			for f in "$T"/*.log; do
				[ -f "$f" ] || continue
				echo "---- $f (last 40 lines)"
				tail -n 40 "$f"
			done
		fi
		rm -rf "$T"
	fi
}

# start NAME CMD... : run a daemon in the foreground, in the background,
# logging to $T/NAME.log.
start() {
	local name=$1; shift
	"$@" >"$T/$name.log" 2>&1 &
	DAEMON_PIDS+=($!)
	eval "PID_$(echo "$name" | tr -c 'A-Za-z0-9\n' _)=$!"
}

stop_daemons() {
	local p
	for p in "${DAEMON_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${DAEMON_PIDS[@]}"; do
		# A daemon that does not stop in 5 s is killed: tests never hang.
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	DAEMON_PIDS=()
}

# A TCP port nobody listens on.
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 30000))
		grep -qi ":$(printf '%04X' "$p") " /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$p"; return; }
	done
	echo 48652
}

# The EICAR test file, assembled here so the repository never holds it whole.
eicar() { printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'; }

status_json() { "$CTL" -r "$T/run" status --json 2>/dev/null; }

# wait_until SECONDS command... : poll every 50 ms.
wait_until() {
	local n=$(( $1 * 20 )); shift
	for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.05; done
	return 1
}

agent_connected() { status_json | jq -e '.vsep.mux.connected == true' >/dev/null; }
mux_has_sva() { status_json | jq -e '(.["epsec-mux"].svas | length) >= 1' >/dev/null; }

# plaintext KEY URI...: "KEY_options = { tcp = { insecure_plaintext = true; }; };"
# when a URI is tcp:// (the daemons refuse unauthenticated tcp otherwise;
# these tests run on the loopback of their own machine).
plaintext() {
	local key=$1 u; shift
	for u in "$@"; do
		case $u in tcp://*) echo "${key}_options = { tcp = { insecure_plaintext = true; }; };"; return;; esac
	done
}

# write_configs AGENT_URI SVA_URI PROTECT_DIR INLINE_BYTES
write_configs() {
	cat >"$T/run/epsec-mux.conf" <<EOC
DEBUG_LEVEL = 7;
DEBUG_DEST = 3;
id = "test-mux";
control = "$T/run/epsec-mux.ctl";
agents = [ "$1" ];
svas = [ "$2" ];
$(plaintext agents "$1")
$(plaintext svas "$2")
agent_log_dir = "$T/run/agents";
sva_timeout_ms = 3000;
EOC
	cat >"$T/run/epsec-sva.conf" <<EOC
DEBUG_LEVEL = 7;
DEBUG_DEST = 3;
id = "test-sva";
user = "root";
control = "$T/run/epsec-sva.ctl";
mux = "$2";
$(plaintext mux "$2")
workers = 2;
engine = ( { plugin = "eicar"; action = "delete"; } );
EOC
	cat >"$T/run/vsep.conf" <<EOC
DEBUG_LEVEL=7
DEBUG_DEST=3
id = "test-agent";
control = "$T/run/vsep.ctl";
state_dir = "$T/state";
mux = "$1";
$(plaintext mux "$1")
protect = [ "$3" ];
scan_timeout_ms = 2000;
on_timeout = "allow";
on_disconnect = "allow";
inline_bytes = ${4:-65536};
EOC
}

start_chain() {
	start sva "$SVA" -f -c "$T/run/epsec-sva.conf"
	start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
	start vsep "$VSEP" -f -c "$T/run/vsep.conf"
	wait_until 10 agent_connected || { fail "agent connected to the mux"; return 1; }
	wait_until 10 mux_has_sva || { fail "SVA connected to the mux"; return 1; }
}

finish() {
	echo "# $PASSES passed, $FAILS failed"
	[ "$FAILS" -eq 0 ]
}
