#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The yara engine on files of any size and on rule sets as public ones are
# written, through the whole chain, against the `yara` command:
#  - files over whole_file_max (1M here) are scanned whole (the fd the agent
#    passes, or a copy staged once over tcp): the elf module sees section
#    names of a built ELF over the bound and of real libraries;
#  - a rule directory with a subdirectory, rules that use fixed externals
#    (options.externals) and the per-file ones (filename, filepath,
#    extension, filetype, owner);
#  - what the SVA read (status content.bytes_read) for one large file is at
#    most 1.05x its size, with fd passing (unix) and through READ (tcp);
#  - above stage_max, blocks: the same bytes budget, and a warning that
#    module data is partial.
# BENCH_SIZES="1 8 29 64" (MiB) prints one bytes-read row per size and
# transport (unix, tcp, tcp with stage_max 1M) instead of the checks
# (t/bench/yara-bytes.sh, part of make bench).
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
[ -f "$top_builddir/plugins/yara.la" ] || skip "yara plugin not built (--without-yara)"
command -v yara >/dev/null || skip "the yara command is not installed (Debian package yara)"
command -v cc >/dev/null || skip "no C compiler to build the test ELF"
setup_tmpfs
mount -o remount,size=1g "$T/fs" 2>/dev/null
chmod 755 "$T"
P=$T/fs/p
S=$T/fs/stage # beside P, unprotected: files move in by rename, no close_write
R=$T/rules
K=$T/keep    # originals, outside the protected tree: copied from here
mkdir -p "$P/owned" "$S" "$K" "$R/sub/deeper"

# ---- rules: a directory with a subdirectory, modules, externals
cat > "$R/elf.yar" <<'EOF'
import "elf"
rule Epsec_Section
{
  condition:
    for any i in (0..elf.number_of_sections - 1) : (elf.sections[i].name == ".epsectest")
}
rule Init_Array_Section
{
  condition:
    for any i in (0..elf.number_of_sections - 1) : (elf.sections[i].name == ".init_array")
    and filesize > 2MB
}
EOF
cat > "$R/sub/text.yar" <<'EOF'
rule Deep_Marker { strings: $a = "EPSEC-DEEP-MARKER" condition: $a }
EOF
cat > "$R/sub/deeper/externals.yar" <<'EOF'
rule Ext_Fixed { strings: $a = "EXT-FIXED" condition: $a and env == "prod" and level == 3 and strict }
rule Ext_Name { strings: $a = "EXT-NAME" condition: $a and filename == "named.bin" }
rule Ext_Extension { strings: $a = "EXT-EXT" condition: $a and extension == ".vbs" }
rule Ext_Path_Owner
{
  strings: $a = "EXT-OWNER"
  condition: $a and filepath contains "/owned/" and owner == "root"
}
rule Ext_Type { strings: $a = "EXT-TYPE" condition: $a and filetype == "EXE" }
EOF
echo 'rule Not_Loaded { condition: true }' > "$R/sub/README.txt" # not a rule file name
ln -s .. "$R/sub/deeper/loop"                                     # a link back up
chmod -R a+rX "$R"
fixed=(-d env=prod -d level=3 -d strict=true)

rnd() { head -c "$1" /dev/urandom | tr -d 'A-Za-z'; }
put() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# An ELF over the bound with a section of its own, one without, one small.
cat > "$T/big.c" <<'EOF'
__attribute__((section(".epsectest"), used)) static const char mark[] = "epsec";
char big[BIG] = { 1 };
int main(void) { return big[0] + mark[0]; }
EOF
cc -O0 -DBIG=$((20 << 20)) -o "$P/elf-big" "$T/big.c" || skip "cannot build the test ELF"
sed 's/section(".epsectest"), //' "$T/big.c" > "$T/plain.c"
cc -O0 -DBIG=$((20 << 20)) -o "$P/elf-big-plain" "$T/plain.c"
cc -O0 -DBIG=1024 -o "$P/elf-small" "$T/big.c"
# Real libraries over the bound: their section headers sit at the end.
for lib in /usr/lib/x86_64-linux-gnu/libz3.so.4 /usr/lib/x86_64-linux-gnu/libicudata.so.72.1 \
	/usr/lib/x86_64-linux-gnu/libstdc++.so.6; do
	[ -f "$lib" ] && cp -L "$lib" "$P/$(basename "$lib")"
done
# Text far past the first MiB, and the externals' files.
rnd 6000000 | head -c 5000000 > "$P/deep.bin"; put "$P/deep.bin" 4000000 EPSEC-DEEP-MARKER
cp "$P/elf-big" "$P/deep.bin" "$K/"
{ rnd 100; printf 'EXT-FIXED'; } > "$P/fixed.bin"
{ rnd 100; printf 'EXT-NAME'; } > "$P/named.bin"
{ rnd 100; printf 'EXT-NAME'; } > "$P/other-name.bin"
{ rnd 100; printf 'EXT-EXT'; } > "$P/script.VBS"
{ rnd 100; printf 'EXT-EXT'; } > "$P/script.txt"
{ rnd 100; printf 'EXT-OWNER'; } > "$P/owned/mine.bin"
{ printf 'MZ'; rnd 100; printf 'EXT-TYPE'; } > "$P/prog.exe"
{ printf 'ZM'; rnd 100; printf 'EXT-TYPE'; } > "$P/not-prog.exe"
rnd 3000 > "$P/clean.bin"

# ---- what `yara` says, given the externals LOKI would give it
filetype_of() {
	case "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" in
	7f454c46) echo ELF ;;
	4d5a*) echo EXE ;;
	*) echo UNKNOWN ;;
	esac
}
expected() { # OK or the first rule yara reports, over every rule file
	local f=$1 b ext out
	b=$(basename "$f"); ext=""
	case "$b" in *.*) ext=".${b##*.}" ;; esac
	ext=$(printf '%s' "$ext" | tr 'A-Z' 'a-z')
	out=$(find "$R" -name '*.yar' | sort | while read -r r; do
		yara "${fixed[@]}" -d "filename=$b" -d "filepath=$f" -d "extension=$ext" \
			-d "filetype=$(filetype_of "$f")" -d owner=root "$r" "$f" 2>&1
	done)
	[ -z "$out" ] && { echo OK; return; }
	echo "$out" | awk '{print $1}' | sort | tr '\n' ' '
}
declare -A WANT
while IFS= read -r f; do WANT[$f]=$(expected "$f"); done < <(find "$P" -type f | sort)

# ---- the chain
engine_line() { echo "engine = ( { plugin = \"yara\"; action = \"deny\"; options = { $1 }; } );"; }
OPTS="rules = \"$R\"; whole_file_max = \"1M\"; externals = { env = \"prod\"; level = 3; strict = true; };"
chain() { # chain unix|tcp [stage_max]
	local a s
	stop_daemons
	if [ "$1" = unix ]; then
		a="unix://$T/run/mux.sock" s="unix://$T/run/sva.sock"
	else
		a="tcp://127.0.0.1:$(free_port)" s="tcp://127.0.0.1:$(free_port)"
	fi
	write_configs "$a" "$s" "$P" 65536
	sed -i "s|^engine = .*|$(engine_line "$OPTS")|" "$T/run/epsec-sva.conf"
	[ -n "${2:-}" ] && echo "stage_max = \"$2\";" >> "$T/run/epsec-sva.conf"
	sed -i 's/^on_timeout = .*/on_timeout = "deny";/; s/^on_disconnect = .*/on_disconnect = "deny";/; s/^scan_timeout_ms = .*/scan_timeout_ms = 20000;/' \
		"$T/run/vsep.conf"
	: > "$T/sva.log"
	start_chain
}
through_chain() { # OK, or the rule the SVA logged for the file
	local f=$1 sig
	if cat "$f" > /dev/null 2> "$T/open.err"; then echo OK; return; fi
	grep -q "Operation not permitted" "$T/open.err" || { echo "open-error"; return; }
	wait_until 40 grep -qF "$f: " "$T/sva.log"
	sig=$(grep -F "$f: " "$T/sva.log" | sed -n "s|.*: YARA\.\([^ ]*\).* found by yara, action .*|\1|p" | head -n1)
	echo "${sig:-denied-without-signature}"
}
sva_read() { status_json | jq '.["epsec-sva"].content.bytes_read // empty'; }
# read_ratio FILE: a fresh copy moved in, opened once; prints the SVA's
# bytes read for it divided by its size; the verdict goes to $T/verdict.
read_ratio() {
	local src=$1 name=$2 before after size
	cp "$src" "$S/$name"; size=$(stat -c %s "$S/$name")
	before=$(sva_read); mv "$S/$name" "$P/$name"
	through_chain "$P/$name" > "$T/verdict"
	sleep 0.2; after=$(sva_read); rm -f "$P/$name"
	awk -v a="$after" -v b="$before" -v s="$size" 'BEGIN { printf "%.4f\n", (a - b) / s }'
}
ratio_ok() { [[ $1 =~ ^[0-9.]+$ ]] && awk -v r="$1" 'BEGIN { exit !(r > 0 && r <= 1.05) }'; }

if [ -n "${BENCH_SIZES:-}" ]; then
	for tr in unix tcp tcp-blocks; do
		# tcp-blocks: stage_max 1M, every size but the first in blocks.
		if [ "$tr" = tcp-blocks ]; then chain tcp 1M || exit 1; else chain "$tr" || exit 1; fi
		for mib in $BENCH_SIZES; do
			rnd $((mib * 1100000)) | head -c $((mib << 20)) > "$T/b.bin"
			echo "yara bytes-read $tr ${mib}MiB: $(read_ratio "$T/b.bin" "bench-$mib.bin")x file size"
		done
	done
	exit 0
fi

chain unix || exit 1
compare() { # compare LABEL: every file, the chain's rule against yara's
	local f got want mism=0 n=0 found=0
	for f in $(printf '%s\n' "${!WANT[@]}" | sort); do
		got=$(through_chain "$f"); n=$((n + 1))
		want=${WANT[$f]}
		[ "$got" != OK ] && found=$((found + 1))
		if [ "$want" = OK ] && [ "$got" = OK ]; then continue; fi
		# yara lists every rule; the chain names the first: it must be one of them.
		case " $want" in *" $got "*) ;; *) mism=$((mism + 1)); note "MISMATCH $f: yara $want, chain $got" ;; esac
	done
	note "$1: $n files, chain $found detections, yara $(printf '%s\n' "${WANT[@]}" | grep -vc '^OK$')"
	check "$1: the chain reports exactly the files yara reports ($n files)" test "$mism" -eq 0
}
compare "unix (fd passed)"
check "an ELF over the bound matched on a section name (unix)" \
	grep -q "elf-big: YARA.Epsec_Section found" "$T/sva.log"
check "a string 4 MB into a 5 MB file, from a subdirectory's rule" \
	grep -q "deep.bin: YARA.Deep_Marker found" "$T/sva.log"
check "the file named README.txt is not a rule file" sh -c "! grep -q Not_Loaded '$T/sva.log'"
check "the link back up is skipped with a warning" grep -q "loop: skipped, a link back" "$T/sva.log"
check "no engine errors" sh -c "! grep -q 'could not scan' '$T/sva.log'"
r=$(read_ratio "$K/elf-big" fresh-elf)
note "bytes read for a 20 MiB ELF, fd passed: ${r}x its size"
check "unix: the SVA read <= 1.05x the file (${r}x)" ratio_ok "$r"
check "unix: ... and matched the section" test "$(cat "$T/verdict")" = Epsec_Section

chain tcp || exit 1
compare "tcp (READ, staged)"
r=$(read_ratio "$K/elf-big" fresh-elf)
note "bytes read for a 20 MiB ELF through READ over tcp: ${r}x its size"
check "tcp: the SVA read <= 1.05x the file (${r}x)" ratio_ok "$r"
check "tcp: ... and matched the section" test "$(cat "$T/verdict")" = Epsec_Section
check "tcp: the content was staged" \
	sh -c "'$CTL' -r '$T/run' status --json | jq -e '.[\"epsec-sva\"].content.staged >= 1' > /dev/null"

# Above stage_max: blocks, each byte read once; modules see the first MiB.
chain tcp 4M || exit 1
r=$(read_ratio "$K/deep.bin" fresh-deep)
note "bytes read for a 5 MB file in blocks (over stage_max 4M): ${r}x its size"
check "blocks: the SVA read <= 1.05x the file (${r}x)" ratio_ok "$r"
check "blocks: a string 4 MB in is still found" test "$(cat "$T/verdict")" = Deep_Marker
r=$(read_ratio "$K/elf-big" fresh-elf2)
check "blocks: the SVA read <= 1.05x the ELF (${r}x)" ratio_ok "$r"
check "blocks: the section is not seen (module data partial), as documented" \
	test "$(cat "$T/verdict")" = OK
check "blocks: the warning says module data is partial" \
	grep -q "fresh-elf2 (.* bytes): larger than the host stages, scanned in blocks: module data" \
	"$T/sva.log"
stop_daemons

# ---- config errors: a reserved name; several failing rule files, all named
sed "s|^engine = .*|$(engine_line "rules = \"$R\"; externals = { filename = \"x\"; };")|" \
	"$T/run/epsec-sva.conf" > "$T/run/fail.conf"
timeout 20 "$SVA" -f -c "$T/run/fail.conf" > "$T/fail.log" 2>&1; rc=$?
check "a fixed external named filename: exit 78, got $rc" test "$rc" -eq 78
check "... with the config line and key" grep -q 'fail.conf:[0-9]*: .*externals.filename: .*set per file' "$T/fail.log"
mkdir -p "$T/bad/sub"
printf 'rule A { condition: true }\nrule B { condition: ) }\n' > "$T/bad/a.yar"
printf 'rule C { condition: true }\n' > "$T/bad/b.yar"
printf 'rule D {\n condition: nosuch == 1 }\n' > "$T/bad/sub/c.yar"
sed "s|^engine = .*|$(engine_line "rules = \"$T/bad\";")|" "$T/run/epsec-sva.conf" > "$T/run/fail.conf"
timeout 20 "$SVA" -f -c "$T/run/fail.conf" > "$T/fail.log" 2>&1; rc=$?
check "two failing rule files: exit 78, got $rc" test "$rc" -eq 78
check "... the first one with FILE:LINE" grep -q "$T/bad/a.yar:2: error" "$T/fail.log"
check "... and the second, in a subdirectory, in the same run" grep -q "$T/bad/sub/c.yar:2: error" "$T/fail.log"
check "... and the summary names both" grep -q "2 rule files do not compile .*a.yar, .*c.yar" "$T/fail.log"

finish
