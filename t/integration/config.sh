#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every daemon refuses a wrong config before starting: one line
# "FILE:LINE: KEY: what was expected", exit status 78 (EX_CONFIG).
set -u
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/epsec-conf.XXXXXX)
trap 'rm -rf "$T"' EXIT

# expect_conf_error PROGRAM FILE LINE KEY : run, check status and message.
expect_conf_error() {
	local prog=$1 file=$2 line=$3 key=$4 out rc
	out=$(timeout 10 "$prog" -f -c "$file" 2>&1); rc=$?
	if [ "$rc" -ne 78 ]; then
		fail "$(basename "$prog") $(basename "$file"): exit status $rc, expected 78 ($out)"
		return
	fi
	if grep -qF "$file:$line: $key:" <<<"$out"; then
		pass "$(basename "$prog") $(basename "$file"): $file:$line: $key"
	else
		fail "$(basename "$prog") $(basename "$file"): no '$file:$line: $key:' in: $out"
	fi
}

cat >"$T/unknown.conf" <<'EOC'
DEBUG_LEVEL=4
mux = "unix:///tmp/x.sock";
protect = [ "/tmp" ];
bogus_key = 1;
EOC
expect_conf_error "$VSEP" "$T/unknown.conf" 4 bogus_key

cat >"$T/level.conf" <<'EOC'
mux = "unix:///tmp/x.sock";
protect = [ "/tmp" ];
DEBUG_LEVEL=9
EOC
expect_conf_error "$VSEP" "$T/level.conf" 3 DEBUG_LEVEL

cat >"$T/type.conf" <<'EOC'
mux = "unix:///tmp/x.sock";
protect = [ "/tmp" ];
scan_timeout_ms = "soon";
EOC
expect_conf_error "$VSEP" "$T/type.conf" 3 scan_timeout_ms

cat >"$T/uri.conf" <<'EOC'
protect = [ "/tmp" ];

mux = "tcp://127.0.0.1";
EOC
expect_conf_error "$VSEP" "$T/uri.conf" 3 mux

# Secure by default: a tcp:// endpoint without CURVE keys is refused by
# every daemon, at the URI's line, unless insecure_plaintext says so.
cat >"$T/plain-mux.conf" <<'EOC'
agents = [ "unix:///tmp/m.sock" ];
svas = [ "tcp://127.0.0.1:48652" ];
EOC
expect_conf_error "$MUX" "$T/plain-mux.conf" 2 svas
out=$(timeout 10 "$MUX" -f -c "$T/plain-mux.conf" 2>&1)
check "epsec-mux: an unauthenticated tcp:// endpoint is refused, saying what to do" \
	grep -q "tcp://127.0.0.1:48652 is not authenticated: any local user or host could join as a peer.*insecure_plaintext" <<<"$out"
cat >"$T/plain-sva.conf" <<'EOC'
mux = "tcp://127.0.0.1:48652";
engine = ( { plugin = "eicar"; action = "deny"; } );
EOC
expect_conf_error "$SVA" "$T/plain-sva.conf" 1 mux
cat >"$T/plain-vsep.conf" <<'EOC'
protect = [ "/tmp" ];
mux = "tcp://127.0.0.1:48652";
EOC
expect_conf_error "$VSEP" "$T/plain-vsep.conf" 2 mux
cat >"$T/plain-optout.conf" <<EOC
agents = [ "unix://$T/optout.sock" ];
svas = [ "tcp://127.0.0.1:$(free_port)" ];
svas_options = { tcp = { insecure_plaintext = true; }; };
control = "$T/optout.ctl";
EOC
timeout 2 "$MUX" -f -c "$T/plain-optout.conf" >"$T/optout.log" 2>&1; rc=$?
check "insecure_plaintext = true: the operator's explicit opt-out starts (rc $rc: killed by timeout)" \
	test "$rc" -eq 124

cat >"$T/policy.conf" <<'EOC'
mux = "unix:///tmp/x.sock";
protect = [ "/tmp" ];
on_timeout = "maybe";
EOC
expect_conf_error "$VSEP" "$T/policy.conf" 3 on_timeout

cat >"$T/missing.conf" <<'EOC'
protect = [ "/tmp" ];
EOC
expect_conf_error "$VSEP" "$T/missing.conf" 1 mux

cat >"$T/mux.conf" <<'EOC'
agents = [ "unix:///tmp/m.sock" ];
svas = [ "tcp://127.0.0.1:0x" ];
EOC
expect_conf_error "$MUX" "$T/mux.conf" 2 "svas[0]"

cat >"$T/mux-unknown.conf" <<'EOC'
agents = [ "unix:///tmp/m.sock" ];
svas = [ "tcp://127.0.0.1:48652" ];
listen_everywhere = true;
EOC
expect_conf_error "$MUX" "$T/mux-unknown.conf" 3 listen_everywhere

cat >"$T/sva-action.conf" <<'EOC'
mux = "unix:///tmp/epsec-none.sock";
engine = (
  { plugin = "eicar";
    action = "explode"; }
);
EOC
out=$(timeout 10 "$SVA" -f -c "$T/sva-action.conf" 2>&1); rc=$?
check "epsec-sva bad engine action: exit 78" test "$rc" -eq 78
check "epsec-sva bad engine action names line 4 and the key" \
	grep -qE "$T/sva-action.conf:4: engine[^:]*action:" <<<"$out"

cat >"$T/sva-plugin.conf" <<'EOC'
mux = "unix:///tmp/epsec-none.sock";
engine = ( { plugin = "no-such-engine"; action = "deny"; } );
EOC
out=$(timeout 10 "$SVA" -f -c "$T/sva-plugin.conf" 2>&1); rc=$?
check "epsec-sva unknown plugin refuses to start" test "$rc" -ne 0
check "epsec-sva unknown plugin is named" grep -q "no-such-engine" <<<"$out"

cat >"$T/syntax.conf" <<'EOC'
mux = "unix:///tmp/x.sock";
protect = [ "/tmp" ;
EOC
out=$(timeout 10 "$VSEP" -f -c "$T/syntax.conf" 2>&1); rc=$?
check "vsep syntax error: exit 78" test "$rc" -eq 78
check "vsep syntax error names file and line" grep -qF "$T/syntax.conf:2" <<<"$out"

out=$(timeout 10 "$VSEP" -f -c "$T/does-not-exist.conf" 2>&1); rc=$?
check "vsep missing config file: exit 78" test "$rc" -eq 78
check "vsep missing config file is named" grep -qF "$T/does-not-exist.conf" <<<"$out"

for prog in "$VSEP" "$MUX" "$SVA"; do
	out=$("$prog" -v 2>&1)
	check "$(basename "$prog") -v prints version and build" \
		grep -qE "^$(basename "$prog") [0-9]+\.[0-9]+\.[0-9]+ \(build [^)]+\)" <<<"$out"
done

finish
