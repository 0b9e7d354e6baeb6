#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The yara engine through the whole chain (vsep -> epsec-mux -> epsec-sva,
# fanotify on a tmpfs in a private mount namespace): rules with text and hex
# strings, conditions and an include; every file's verdict must name the
# rule the `yara` command reports first for it. Also: a big file scanned in
# overlapping blocks, reload, engines in config order (clamav then yara),
# and a rule file with a syntax error stopping epsec-sva with file:line.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
[ -f "$top_builddir/plugins/yara.la" ] || skip "yara plugin not built (--without-yara)"
command -v yara >/dev/null || skip "the yara command is not installed (Debian package yara)"
setup_tmpfs
chmod 755 "$T" # the SVA may drop root; it reads the rules on reload
P=$T/fs/p
R=$T/rules
mkdir -p "$P/sub" "$R/inc"

cat > "$R/main.yar" <<'EOF'
include "inc/common.yar"

rule Text_Marker
{
  meta:
    description = "epsec text marker"
  strings:
    $a = "EPSEC-YARA-TEXT"
    $b = "epsec-yara-wide" wide
  condition:
    any of them
}

rule Hex_Pattern
{
  strings:
    $h = { 45 50 53 45 43 ?? 48 45 58 [2-4] 21 }
  condition:
    $h
}

rule Two_Alphas
{
  strings:
    $x = "alpha-epsec"
    $y = "beta-epsec"
  condition:
    #x == 2 and $y and filesize < 100KB
}

rule Magic_Header
{
  condition:
    uint32(0) == 0x43535045
}
EOF
cat > "$R/inc/common.yar" <<'EOF'
rule Included_At_100
{
  strings:
    $i = "INCLUDED-MARK"
  condition:
    $i at 100
}
EOF
chmod -R a+rX "$R"

rnd() { head -c "$1" /dev/urandom | tr -d 'A-Za-z'; } # no letters: no accidental matches
put() { # put FILE OFFSET STRING: write STRING at OFFSET of FILE
	printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# ---- the corpus, in place before the agent starts
rnd 4000 > "$P/clean.bin"
echo "plain text, nothing to see" > "$P/clean.txt"
{ rnd 500; printf 'EPSEC-YARA-TEXT'; rnd 500; } > "$P/text.bin"
{ rnd 100; printf 'e\0p\0s\0e\0c\0-\0y\0a\0r\0a\0-\0w\0i\0d\0e\0'; } > "$P/wide.bin"
{ rnd 300; printf 'EPSEC_HEX12!'; rnd 300; } > "$P/hex.bin"
{ rnd 300; printf 'EPSEC_HEX12345!'; rnd 300; } > "$P/hex-too-far.bin"
{ printf 'beta-epsec'; rnd 200; printf 'alpha-epsec'; rnd 200; printf 'alpha-epsec'; } > "$P/two.bin"
{ printf 'beta-epsec'; rnd 200; printf 'alpha-epsec'; } > "$P/one.bin"
{ printf 'EPSC'; rnd 1000; } > "$P/sub/magic.bin"
rnd 3000 > "$P/sub/at100.bin"; put "$P/sub/at100.bin" 100 INCLUDED-MARK
rnd 3000 > "$P/sub/at101.bin"; put "$P/sub/at101.bin" 101 INCLUDED-MARK
: > "$P/empty.txt"
# Over whole_file_max (1M here): scanned in blocks; the marker straddles the
# end of the first 1 MiB block and sits past the inline bytes.
rnd 4000000 | head -c 3000000 > "$P/sub/big.bin"
put "$P/sub/big.bin" $((1048576 - 7)) EPSEC-YARA-TEXT
rnd 4000000 | head -c 3000000 > "$P/sub/big-clean.bin"
head -c 3000 /dev/zero > "$P/later.bin"; put "$P/later.bin" 1000 EPSEC-LATER

# ---- what the yara command says, before anything protects the files
expected() { # expected FILE -> OK or the first rule yara reports
	local out
	out=$(yara "$R/main.yar" "$1" 2>&1) || { echo "yara-error($out)"; return; }
	[ -z "$out" ] && { echo OK; return; }
	echo "YARA.${out%% *}" | head -n1
}
declare -A WANT
while IFS= read -r f; do WANT[$f]=$(expected "$f"); done < <(find "$P" -type f | sort)

# ---- the chain, yara as its only engine; nothing allowed by default
engine_line() { echo "engine = ( { plugin = \"yara\"; action = \"deny\"; options = { $1 }; } );"; }
write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$P" 65536
sed -i "s|^engine = .*|$(engine_line "rules = \"$R/main.yar\"; whole_file_max = \"1M\";")|" \
	"$T/run/epsec-sva.conf"
sed -i 's/^on_timeout = .*/on_timeout = "deny";/; s/^on_disconnect = .*/on_disconnect = "deny";/' \
	"$T/run/vsep.conf"
start_chain || exit 1

through_chain() { # OK, or the signature the SVA logged for the file
	local f=$1 sig=""
	if cat "$f" > /dev/null 2> "$T/open.err"; then echo OK; return; fi
	grep -q "Operation not permitted" "$T/open.err" || { echo "open-error"; return; }
	wait_until 2 grep -qF "$f: " "$T/sva.log"
	sig=$(grep -F "$f: " "$T/sva.log" | sed -n "s|.*: \(.*\) found by $2, action .*|\1|p" | head -n1)
	echo "${sig:-denied-without-signature}"
}
rule_of() { local s=${1%% (*}; echo "$s"; } # "YARA.R (description)" -> "YARA.R"

mismatches=0 compared=0 found=0
for f in $(printf '%s\n' "${!WANT[@]}" | grep -v later.bin | sort); do
	got=$(through_chain "$f" yara)
	compared=$((compared + 1))
	[ "$got" != OK ] && found=$((found + 1))
	if [ "${WANT[$f]}" != "$(rule_of "$got")" ]; then
		mismatches=$((mismatches + 1))
		note "MISMATCH $f: yara ${WANT[$f]}, chain $got"
	fi
done
note "compared $compared files with the yara command ($found detections)"
check "every verdict through the chain names yara's first rule ($compared files)" \
	test "$mismatches" -eq 0
check "the detections are the expected ones (7)" test "$found" -eq 7
check "meta description is part of the signature" \
	grep -q 'text.bin: YARA.Text_Marker (epsec text marker) found by yara' "$T/sva.log"
check "a string straddling two blocks of a 3 MB file is found" \
	grep -q 'big.bin: YARA.Text_Marker' "$T/sva.log"
check "no engine errors" sh -c "! grep -q 'could not scan' '$T/sva.log'"

# ---- reload: a new rule file; new files are judged by it
cat > "$R/inc/later.yar" <<'EOF'
rule Later_Rule { strings: $l = "EPSEC-LATER" condition: $l }
EOF
echo 'include "inc/later.yar"' >> "$R/main.yar"
check "epsecctl reload" sh -c "'$CTL' -r '$T/run' reload > '$T/reload.out' 2>&1"
{ rnd 300; printf 'EPSEC-LATER'; } > "$P/later-copy.bin"
check "a rule added before the reload detects through the chain" \
	test "$(through_chain "$P/later-copy.bin" yara)" = "YARA.Later_Rule"
echo 'rule Broken { condition: ) }' > "$R/inc/later.yar"
"$CTL" -r "$T/run" reload > "$T/reload2.out" 2>&1
check "a reload with a syntax error is refused" grep -qi 'error\|fail' "$T/reload2.out"
check "... and logged with file:line" wait_until 2 grep -q 'inc/later.yar:1: error' "$T/sva.log"
{ rnd 300; printf 'EPSEC-YARA-TEXT'; } > "$P/text-copy.bin"
check "... and the rules in use keep working" \
	test "$(rule_of "$(through_chain "$P/text-copy.bin" yara)")" = "YARA.Text_Marker"
stop_daemons

# ---- engines in config order: the first detection decides
if [ -f "$top_builddir/plugins/clamav.la" ]; then
	mkdir -p "$T/db"
	echo "Epsec.Test.NDB:0:*:$(printf 'EPSEC-YARA-TEXT' | od -An -tx1 | tr -d ' \n')" \
		> "$T/db/t.ndb"
	chmod -R a+rX "$T/db"
	sed -i "s|^engine = .*|engine = ( { plugin = \"clamav\"; action = \"deny\"; options = { database = \"$T/db\"; }; }, $(engine_line "rules = \"$R/main.yar\";" | sed 's/^engine = ( //; s/ );$//') );|" \
		"$T/run/epsec-sva.conf"
	echo 'rule Later_Rule { strings: $l = "EPSEC-LATER" condition: $l }' > "$R/inc/later.yar"
	start_chain || exit 1
	{ rnd 300; printf 'EPSEC-YARA-TEXT'; } > "$P/order-both.bin"
	{ rnd 300; printf 'EPSEC_HEX12!'; } > "$P/order-yara.bin"
	check "a file both engines detect is reported by the first (clamav)" \
		test "$(through_chain "$P/order-both.bin" clamav)" = "Epsec.Test.NDB.UNOFFICIAL"
	check "a file only the second detects is reported by it (yara)" \
		test "$(through_chain "$P/order-yara.bin" yara)" = "YARA.Hex_Pattern"
	stop_daemons
fi

# ---- a rule file with a syntax error: epsec-sva refuses to start
printf 'rule Ok { condition: true }\n\nrule Bad {\n  strings: $a = "x"\n  condition: $a and\n}\n' \
	> "$T/bad.yar"
sed "s|^engine = .*|$(engine_line "rules = \"$T/bad.yar\";")|" "$T/run/epsec-sva.conf" \
	> "$T/run/fail.conf"
timeout 20 "$SVA" -f -c "$T/run/fail.conf" > "$T/fail.log" 2>&1; rc=$?
check "syntax error: epsec-sva exits 78 (EX_CONFIG), got $rc" test "$rc" -eq 78
check "syntax error: the message has the rule file and line" grep -q "$T/bad.yar:6: error" "$T/fail.log"
check "syntax error: the config line is named too" grep -q 'fail.conf:[0-9]*: .*bad.yar does not compile' "$T/fail.log"
sed "s|^engine = .*|$(engine_line "rules = \"$T/none.yar\";")|" "$T/run/epsec-sva.conf" \
	> "$T/run/fail.conf"
timeout 20 "$SVA" -f -c "$T/run/fail.conf" > "$T/fail.log" 2>&1; rc=$?
check "missing rules: epsec-sva exits 78, got $rc" test "$rc" -eq 78
check "missing rules: the message names the file" grep -q "$T/none.yar: No such file" "$T/fail.log"

finish
