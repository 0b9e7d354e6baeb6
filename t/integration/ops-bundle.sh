#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsecctl support-bundle -o FILE against the real chain (vsep logging to
# the host, DEBUG_DEST=2; the mux with a CURVE listener): one tar.gz, mode
# 0600, with every daemon's version, status and effective config, the
# per-agent host log, kernel and fanotify facts, the quarantine index and a
# manifest; never the CURVE secret key (neither its text nor its file's
# name); a log over the per-file bound is cut and the manifest says so.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policy-lib.sh"
ns_enter "$@"
setup_tmpfs
mkdir -p "$T/fs/p" "$T/q" "$T/x"
policy_configs "\"$T/fs/p\"" "$(eicar_engine quarantine)" <<EOC
quarantine_dir = "$T/q";
EOC
sed -i 's/^DEBUG_DEST = 3;/DEBUG_DEST = 2;\nDEBUG_LEVEL = 7;/' "$T/run/vsep.conf"
"$CTL" keygen "$T/mux" >/dev/null && "$CTL" keygen "$T/agent" >/dev/null
port=$(free_port)
sed -i "s|^agents = .*|agents = [ \"unix://$T/run/mux.sock\", \"tcp://127.0.0.1:$port\" ];\nagents_options = { tcp = { curve_secret_key = \"$T/mux.key\"; curve_allowed_keys = \"$T/agent.pub\"; }; };|" "$T/run/epsec-mux.conf"
policy_start || { finish; exit 1; }
eicar >"$T/fs/p/bad.com"
wait_until 5 test ! -e "$T/fs/p/bad.com"
# An agent log over the bound: only its last lines go in.
head -c 700000 /dev/zero | tr '\0' 'x' | fold -w 99 >"$T/run/agents/big.log"

t0=$(date +%s%N)
out=$("$CTL" -r "$T/run" support-bundle -o "$T/b.tar.gz" 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "$out"
check "support-bundle: exit 0 (got $rc)" test "$rc" = 0
check "  in under a second ($ms ms)" test "$ms" -lt 1000
check "  the file is mode 0600" test "$(stat -c %a "$T/b.tar.gz")" = 600
tar xzf "$T/b.tar.gz" -C "$T/x" || fail "tar xzf"
for f in MANIFEST.txt epsecctl-version.txt kernel/facts.txt kernel/fanotify-marks.txt \
	kernel/mounts-protected.txt vsep/quarantine.json; do
	check "  has $f" test -s "$T/x/$f"
done
for d in vsep epsec-mux epsec-sva; do
	for f in status.json version.json effective.conf; do
		check "  has $d/$f" test -s "$T/x/$d/$f"
	done
done
check "  the per-agent host log" grep -q "EICAR" "$T/x/logs/agents/test-agent.log"
check "  fanotify marks in place" grep -q "fanotify" "$T/x/kernel/fanotify-marks.txt"
check "  the protected tmpfs among the mounts" grep -q " $T/fs " "$T/x/kernel/mounts-protected.txt"
check "  the kernel version" grep -q "uname: Linux" "$T/x/kernel/facts.txt"
check "  the quarantined file in the index" jq -e '.items | length == 1' "$T/x/vsep/quarantine.json"
check "  curve_secret_key removed from the mux's config" grep -q 'curve_secret_key = "(removed)"' "$T/x/epsec-mux/effective.conf"
secret=$(sed -n 's/^ *secret-key = "\(.*\)"/\1/p' "$T/mux.key")
check "  the CURVE secret key is nowhere in the bundle" bash -c '[ -n "$1" ] && ! grep -rqF "$1" "$2"' _ "$secret" "$T/x"
check "  nor the key file's name" bash -c '! grep -rqF "$1" "$2"' _ "$T/mux.key" "$T/x"
check "  a big log is cut to the bound" test "$(stat -c %s "$T/x/logs/agents/big.log")" -le 524288
check "  and the manifest says so" grep -q "logs/agents/big.log.*TRUNCATED" "$T/x/MANIFEST.txt"
check "  the manifest says what is never included" grep -q "^NEVER.*CURVE key files" "$T/x/MANIFEST.txt"
sed 's/^/#   /' "$T/x/MANIFEST.txt"
finish
