# SPDX-License-Identifier: MIT
# Shared by the epsec-sva / SDK scripts (sdk.mk): a mux and an SVA from the
# build tree, with agents on a unix socket and the SVA on tcp://127.0.0.1,
# and two helpers: sdk-agent (events from files, one verdict line each:
# "FILE ACTION ENGINE SIGNATURE GENERATION") and ctl-call (a control
# request, the reply as one JSON line). No fanotify: no namespace needed.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AGENT=$top_builddir/t/integration/sdk-agent
CTLCALL=$top_builddir/t/integration/ctl-call
WORDLIST=$top_builddir/t/integration/wordlist.la

sdk_setup() {
	command -v jq >/dev/null || skip "jq is not installed"
	T=$(mktemp -d /tmp/epsec-sdk.XXXXXX)
	mkdir -p "$T/run"
	trap cleanup EXIT
	SVA_PORT=$(free_port)
	MUX_AGENTS="unix://$T/run/mux.sock"
}

# mux_config: agents on $MUX_AGENTS, SVAs on tcp://127.0.0.1:$SVA_PORT.
mux_config() {
	cat >"$T/run/epsec-mux.conf" <<EOC
DEBUG_LEVEL = 6;
DEBUG_DEST = 3;
id = "sdk-mux";
control = "$T/run/epsec-mux.ctl";
agents = [ "$MUX_AGENTS" ];
svas = [ "tcp://127.0.0.1:$SVA_PORT" ];
svas_options = { tcp = { insecure_plaintext = true; }; };
agent_log_dir = "$T/run/agents";
${MUX_EXTRA:-}
EOC
}

# sva_config ENGINES [MORE SETTINGS]: ENGINES is the body of `engine = (...)`.
# The SVA stays root unless MORE SETTINGS names a user (or SVA_NO_USER=1
# leaves the setting out): with a system user epsec present (the packages
# create one) it would otherwise drop to it and lose the test's root-owned
# files and keys. It goes last, so the line numbers tests expect in errors
# stay what they were.
sva_config() {
	local user='user = "root";'
	case "${2:-}" in *"user ="*) user= ;; esac
	[ -z "${SVA_NO_USER:-}" ] || user=
	cat >"$T/run/epsec-sva.conf" <<EOC
DEBUG_LEVEL = 6;
DEBUG_DEST = 3;
id = "sdk-sva";
control = "$T/run/epsec-sva.ctl";
mux = "tcp://127.0.0.1:$SVA_PORT";
mux_options = { tcp = { insecure_plaintext = true; }; };
workers = 3;
${2:-}
engine = (
$1
);
$user
EOC
}

# jq -e, but empty input (no reply at all) is a failure too.
jqe() { local in; in=$(cat); [ -n "$in" ] && jq -e "$@" >/dev/null <<<"$in"; }
sva_call() { "$CTLCALL" "$T/run/epsec-sva.ctl" "$@"; }
sva_status() { sva_call status; }
sva_generation() { sva_status | jq -r .generation; }
mux_sees_sva() {
	"$CTL" -s "$T/run/epsec-mux.ctl" status --json 2>/dev/null |
		jq -e '[.. | objects | select(has("svas")) | .svas | length] | max >= 1' >/dev/null
}

# start_mux_sva [SVA COMMAND...]: both up, the SVA known to the mux.
start_mux_sva() {
	start mux "${MUX_BIN:-$MUX}" -f -c "$T/run/epsec-mux.conf"
	start sva "${@:-${SVA_BIN:-$SVA}}" -f -c "$T/run/epsec-sva.conf"
	wait_until 10 mux_sees_sva || { fail "the SVA connected to the mux"; return 1; }
}

# sva_refuses NAME EXPECT_RC TEXT: run epsec-sva on $T/run/epsec-sva.conf,
# which must exit with EXPECT_RC and print TEXT.
sva_refuses() {
	local what=$1 want=$2 text=$3 out rc
	out=$(timeout 10 "$SVA" -f -c "$T/run/epsec-sva.conf" 2>&1); rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$what: exit status $rc, expected $want: $out"
	elif ! grep -qF -- "$text" <<<"$out"; then
		fail "$what: no \"$text\" in: $out"
	else
		pass "$what (exit $rc: $(grep -F -- "$text" <<<"$out" | head -1 | sed 's/^.*\] //'))"
	fi
}

# verdict FILE: the line sdk-agent printed for FILE (one-shot mode).
verdict_of() { grep -F "$1 " "$T/verdicts" | head -1 | cut -d' ' -f2-4; }
