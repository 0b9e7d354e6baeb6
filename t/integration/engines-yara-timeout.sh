#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A YARA rule too slow for a file's deadline is an engine error, never a
# clean: on a generated file, a rule quadratic in its size hits libyara's
# timeout, which follows from the event's deadline. `epsecctl scan` says
# ERROR (reason) and exits 2, the `yara` command times out the same way,
# and the held open is answered by policy at scan_timeout_ms, counted, and
# the file is remembered as unscanned rather than cached as clean.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
[ -f "$top_builddir/plugins/yara.la" ] || skip "yara plugin not built (--without-yara)"
command -v yara >/dev/null || skip "the yara command is not installed (Debian package yara)"
setup_tmpfs
chmod 755 "$T"
P=$T/fs/p
R=$T/rules
mkdir -p "$P" "$R"

# Every pair of bytes: about 10^12 steps for a 1 MB file.
cat > "$R/slow.yar" <<'EOF'
rule Quadratic
{
  condition:
    for any i in (0..filesize - 1) : (
      for any j in (i + 1..filesize - 1) : ( uint8(i) == 0xff and uint8(j) == 0xfe and j == 0 )
    )
}
EOF
chmod -R a+rX "$R"
head -c 1000000 /dev/zero | tr '\0' 'a' > "$P/big.txt"
echo "small" > "$P/small.txt"

t0=$(date +%s%3N)
yout=$(yara -a 2 "$R/slow.yar" "$P/big.txt" 2>&1); yrc=$?
note "yara -a 2: rc $yrc, $(( $(date +%s%3N) - t0 )) ms: $yout"
check "the yara command times out on it too (exit $yrc)" test "$yrc" -ne 0

write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$P" 65536
sed -i "s|^engine = .*|engine = ( { plugin = \"yara\"; action = \"deny\"; options = { rules = \"$R/slow.yar\"; }; } );|" \
	"$T/run/epsec-sva.conf"
start_chain || exit 1
vc() { status_json | jq -r ".vsep.counters.$1"; }

# On demand, with a 3 s budget: yara gets 3 s, then it is an ERROR.
t0=$(date +%s%3N)
out=$("$CTL" scan --mux "unix://$T/run/mux.sock" --timeout 3 "$P/big.txt" "$P/small.txt" 2>&1); rc=$?
ms=$(( $(date +%s%3N) - t0 ))
note "$out"
check "epsecctl scan: exit 2 (got $rc)" test "$rc" -eq 2
check "  the slow file is an ERROR naming yara's timeout" \
	grep -q "^$P/big.txt: ERROR (yara: .*timed out" <<<"$out"
check "  the small file is OK" grep -qx "$P/small.txt: OK" <<<"$out"
check "  answered by the deadline, not by the old fixed 10 s ($ms ms)" test "$ms" -lt 9000

# On access: the opener is answered at scan_timeout_ms (2 s) by on_timeout
# (allow), and the file is not cached: remembered as unscanned.
t0=$(date +%s%3N)
cat "$P/big.txt" > /dev/null; crc=$?
ms=$(( $(date +%s%3N) - t0 ))
check "the open is allowed by policy (rc $crc) at the deadline ($ms ms)" \
	sh -c "[ $crc = 0 ] && [ $ms -ge 1900 ] && [ $ms -lt 4000 ]"
check "  counted as a timeout or an engine error" \
	test $(( $(vc timeouts) + $(vc engine_errors) )) -ge 1
remembered() { [ "$(vc unscanned)" -ge 1 ]; }
check "  remembered as unscanned, not cached as clean" wait_until 5 remembered
check "  the SVA logged the engine's error" wait_until 5 grep -q "big.txt: not scanned: yara: .*timed out" "$T/sva.log"
t0=$(date +%s%3N)
cat "$P/big.txt" > /dev/null
ms=$(( $(date +%s%3N) - t0 ))
check "  a second open waits for a scan again ($ms ms): nothing said it was clean" test "$ms" -ge 1900

stop_daemons
check "no sanitizer report in the daemons' logs" sh -c "! grep -l 'Sanitizer' '$T'/*.log"
note "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
