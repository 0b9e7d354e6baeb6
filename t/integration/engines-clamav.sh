#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The clamav engine through the whole chain (vsep -> epsec-mux -> epsec-sva,
# fanotify on a tmpfs in a private mount namespace), with a ClamAV database
# generated here and Debian's clamav-testfiles when installed. Every file's
# verdict through the chain must equal what clamscan says about it with the
# same database. Also: reload while files are being opened, and a database
# that cannot load stops epsec-sva with the plugin's message.
set -u
. "$(dirname "$0")/lib.sh"
ns_enter "$@"
[ -f "$top_builddir/plugins/clamav.la" ] || skip "clamav plugin not built (--without-clamav)"
command -v clamscan >/dev/null || skip "clamscan is not installed (Debian package clamav)"
setup_tmpfs
chmod 755 "$T" # the SVA may drop root; it reads the database on reload
TESTFILES=/usr/share/clamav-testfiles
P=$T/fs/p
DB=$T/db
mkdir -p "$P/sub" "$DB"

md5() { md5sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
hdb() { echo "$(md5 "$1"):$(size "$1"):$2"; } # hdb FILE NAME
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
NDB_MARK="EPSEC-CHAIN-NDB-MARKER-$$"

# ---- the corpus, in place before the agent starts
eicar > "$P/eicar.com"
{ eicar; printf 'trailing'; } > "$P/eicar-plus.txt" # hash differs: clean here
head -c 10000 /dev/urandom > "$P/sample.bin"
head -c 300000 /dev/urandom > "$P/big-clean.bin"
{ head -c 150000 /dev/urandom; printf '%s' "$NDB_MARK"; head -c 200000 /dev/urandom; } \
	> "$P/sub/marked-far.bin" # past the inline bytes: read through the mux
head -c 2000000 /dev/urandom > "$P/sub/two-mb.bin"
: > "$P/empty.txt"
echo "just text" > "$P/clean.txt"
mkdir -p "$T/tar/in" && eicar > "$T/tar/in/eicar.com"
tar czf "$P/eicar.tar.gz" -C "$T/tar" in
head -c 5000 /dev/urandom > "$T/later.bin"
cp "$T/later.bin" "$P/later.bin"
if [ -d "$TESTFILES" ]; then
	mkdir -p "$P/testfiles"
	cp "$TESTFILES"/* "$P/testfiles/"
	echo "aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File" > "$DB/testfiles.hdb"
	note "with $(ls "$TESTFILES" | wc -l) clamav-testfiles"
else
	note "clamav-testfiles not installed: generated files only"
fi
for i in $(seq 1 60); do head -c $((RANDOM % 20000 + 1)) /dev/urandom > "$P/load-$i.txt"; done
for i in $(seq 1 10); do eicar > "$P/load-eicar-$i.com"; done

{ hdb "$P/eicar.com" Epsec.Test.EICAR; hdb "$P/sample.bin" Epsec.Test.Sample; } > "$DB/gen.hdb"
echo "Epsec.Test.NDB:0:*:$(hex "$NDB_MARK")" > "$DB/gen.ndb"
chmod -R a+rX "$DB"

# ---- what clamscan says, before anything protects the files
clamscan --no-summary -r -d "$DB" "$P" > "$T/clamscan.out" 2> "$T/clamscan.err"
note "clamscan: $(grep -c ' FOUND$' "$T/clamscan.out") found, $(grep -c ': OK$' "$T/clamscan.out") OK"
expected() { # expected FILE -> OK or the signature
	local line
	line=$(grep -F "$1: " "$T/clamscan.out" | head -n1)
	case $line in
	*" FOUND") line=${line#"$1: "}; echo "${line% FOUND}" ;;
	*": OK" | *": Empty file") echo OK ;;
	*) echo "unknown(${line:-no line})" ;;
	esac
}

# ---- the chain, clamav as its only engine; nothing allowed by default
write_configs "unix://$T/run/mux.sock" "unix://$T/run/sva.sock" "$P" 65536
sed -i "s|^engine = .*|engine = ( { plugin = \"clamav\"; action = \"deny\"; options = { database = \"$DB\"; max_file_size = \"50M\"; }; } );|" \
	"$T/run/epsec-sva.conf"
sed -i 's/^on_timeout = .*/on_timeout = "deny";/; s/^on_disconnect = .*/on_disconnect = "deny";/' \
	"$T/run/vsep.conf"
start_chain || exit 1

# What the chain decided about one file: OK, or the signature the SVA logged.
through_chain() {
	local f=$1 sig=""
	if cat "$f" > /dev/null 2> "$T/open.err"; then echo OK; return; fi
	grep -q "Operation not permitted" "$T/open.err" || { echo "open-error"; return; }
	wait_until 2 grep -qF "$f: " "$T/sva.log"
	sig=$(grep -F "$f: " "$T/sva.log" | sed -n 's|.*: \(.*\) found by clamav, action .*|\1|p' | head -n1)
	echo "${sig:-denied-without-signature}"
}

mismatches=0 compared=0
while IFS= read -r f; do
	case $f in */load-*) continue ;; esac
	want=$(expected "$f")
	got=$(through_chain "$f")
	compared=$((compared + 1))
	if [ "$want" != "$got" ]; then
		mismatches=$((mismatches + 1))
		note "MISMATCH $f: clamscan $want, chain $got"
	fi
done < <(find "$P" -type f ! -name 'load-*' | sort)
note "compared $compared files with clamscan"
check "every verdict through the chain equals clamscan's ($compared files)" test "$mismatches" -eq 0
check "the chain detected EICAR by the generated hash" \
	test "$(expected "$P/eicar.com")" = "Epsec.Test.EICAR.UNOFFICIAL"
check "a body signature 150 KB into a file (read through the mux) is found" \
	grep -q 'marked-far.bin: Epsec.Test.NDB.UNOFFICIAL found by clamav' "$T/sva.log"
check "EICAR inside a tar.gz is found" grep -q 'eicar.tar.gz: Epsec.Test.EICAR' "$T/sva.log"
if [ -d "$TESTFILES" ]; then
	n=$(grep -c 'testfiles/.*ClamAV-Test-File.UNOFFICIAL found by clamav' "$T/sva.log")
	check "clamav-testfiles detected through the chain ($n files)" test "$n" -ge 10
fi
check "no engine errors" sh -c "! grep -q 'could not scan' '$T/sva.log'"
sva_signatures() { status_json | jq -r '.["epsec-sva"].engines[0].signatures' | grep -q "$1"; }
check "status shows the clamav signatures" sva_signatures 'signatures, db version'

# ---- reload while files are opened
reader() {
	local bad=0 i
	for i in $(seq 1 60); do cat "$P/load-$i.txt" > /dev/null 2>&1 || bad=$((bad + 1)); done
	for i in $(seq 1 10); do cat "$P/load-eicar-$i.com" > /dev/null 2>&1 && bad=$((bad + 1)); done
	echo "$bad" > "$T/reader.out"
}
hdb "$P/later.bin" Epsec.Test.Later > "$DB/later.hdb"
reader & rpid=$!
reloads=0
for _ in 1 2 3 4 5; do
	"$CTL" -r "$T/run" reload > "$T/reload.out" 2>&1 && reloads=$((reloads + 1))
done
wait "$rpid"
check "5 reloads while files were opened" test "$reloads" -eq 5
check "no scan failed or went wrong during the reloads" test "$(cat "$T/reader.out")" -eq 0
cp "$T/later.bin" "$P/later-copy.bin" # a new inode: nothing cached about it
check "a signature added before the reload detects through the chain" \
	test "$(through_chain "$P/later-copy.bin")" = "Epsec.Test.Later.UNOFFICIAL"
check "a file found clean before the reload is judged again after it" \
	test "$(through_chain "$P/later.bin")" = "Epsec.Test.Later.UNOFFICIAL"
# A reload that fails names the database file, in the reply and the log.
echo "Broken:only:three" > "$DB/zz-broken.ndb"
"$CTL" -r "$T/run" reload > "$T/reload-bad.out" 2>&1
check "a failed reload's reply names the database file" \
	grep -q "cannot load $DB/zz-broken.ndb:1: Malformed database" "$T/reload-bad.out"
check "... and so does the log" \
	grep -q "reload failed, keeping the signatures in use: cannot load $DB/zz-broken.ndb:1" "$T/sva.log"
rm -f "$DB/zz-broken.ndb"
stop_daemons

# ---- a database that cannot load stops epsec-sva with the plugin's message
sva_fails() { # sva_fails OPTIONS -> exit status, output in $T/fail.log
	sed "s|^engine = .*|engine = ( { plugin = \"clamav\"; action = \"deny\"; options = { $1 }; } );|" \
		"$T/run/epsec-sva.conf" > "$T/run/fail.conf"
	timeout 20 "$SVA" -f -c "$T/run/fail.conf" > "$T/fail.log" 2>&1
}
sva_fails "database = \"$T/no-such-db\";"; rc=$?
check "missing database: epsec-sva exits 78 (EX_CONFIG), got $rc" test "$rc" -eq 78
check "missing database: the message names it" grep -q "cannot load $T/no-such-db" "$T/fail.log"
mkdir -p "$T/bad-db" && echo "Broken:only:three" > "$T/bad-db/broken.ndb"
sva_fails "database = \"$T/bad-db\";"; rc=$?
check "malformed database: epsec-sva exits 78, got $rc" test "$rc" -eq 78
check "malformed database: the message names the database file and line, and the config line" \
	grep -q "fail.conf:[0-9]*: .*cannot load $T/bad-db/broken.ndb:1: Malformed database" "$T/fail.log"
sva_fails "database = \"$DB\"; max_file_size = \"lots\";"; rc=$?
check "bad limit: epsec-sva exits 78, got $rc" test "$rc" -eq 78
check "bad limit: file:line and key in the message" grep -q 'fail.conf:[0-9]*: .*max_file_size' "$T/fail.log"

finish
