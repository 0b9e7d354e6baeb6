#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The partner SDK as a vendor meets it: epsec installed into a temporary
# prefix (`make install prefix=...` from this build), then, with nothing
# but PKG_CONFIG_PATH pointing there:
#   - the skeleton verdict plugin, copied from the installed docs, built
#     out of tree and installed into pkg-config's plugindir, is loaded by
#     name by the installed epsec-sva (plugin_dir) and answers through the
#     installed epsec-mux, and reloads;
#   - the appliance printed in doc/libepsec.md builds against epsec.pc and
#     answers through the same mux;
#   - `strings libepsec.so | grep EPSEC_BUILD=` names the version.
set -u
. "$(dirname "$0")/sdk-lib.sh"
command -v pkg-config >/dev/null || skip "pkg-config is not installed"
sdk_setup
# A make of its own, not the one running the tests (whose jobserver it
# cannot share).
submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" "$@"; }
# The build tree's .pc files name the temporary prefix after the install:
# written again for the configured one on the way out.
restore_pc() { submake -s -C "$top_builddir" epsec.pc epsec-plugin.pc >/dev/null 2>&1; }
trap 'rc=$?; restore_pc; (exit $rc); cleanup' EXIT
# Partner code is built with this build's compiler and flags (a sanitizer
# build stays one); a partner would use its own.
CC=cc CFLAGS= LDFLAGS=
eval "$(submake -s --no-print-directory -C "$top_builddir" sdk-build-flags)"
command -v "${CC%% *}" >/dev/null || skip "no C compiler ($CC)"
note "partner code built with: $CC $CFLAGS $LDFLAGS"
P=$T/prefix
version=$(sed -n 's/^#define EPSEC_VERSION "\(.*\)"/\1/p' "$top_builddir/include/epsec/version.h")

# This build, installed elsewhere. `all` first, with the configured
# directories: overriding them must never recompile an object (they are
# compiled in). Every directory is named, so a build configured with an
# absolute --libdir or unit directory installs nothing outside the prefix.
submake -s -C "$top_builddir" all >"$T/install.log" 2>&1 &&
submake -s -C "$top_builddir" install \
	prefix="$P" exec_prefix="$P" bindir="$P/bin" sbindir="$P/sbin" libexecdir="$P/libexec" \
	libdir="$P/lib" includedir="$P/include" sysconfdir="$P/etc" localstatedir="$P/var" \
	runstatedir="$P/run" datarootdir="$P/share" datadir="$P/share" mandir="$P/share/man" \
	docdir="$P/share/doc/epsec" systemdsystemunitdir="$P/lib/systemd/system" \
	tmpfilesdir="$P/lib/tmpfiles.d" initddir="$P/etc/init.d" logrotatedir="$P/etc/logrotate.d" \
	>>"$T/install.log" 2>&1
check "make install prefix=$P" test $? -eq 0
[ -x "$P/sbin/epsec-sva" ] || { fail "nothing installed"; finish; exit 1; }

export PKG_CONFIG_PATH=$P/lib/pkgconfig
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
check "pkg-config finds epsec $version" test "$(pkg-config --modversion epsec)" = "$version"
check "epsec.pc: -I$P/include, -L$P/lib -lepsec" \
	test "$(pkg-config --cflags --libs epsec | xargs)" = "-I$P/include -L$P/lib -lepsec"
check "epsec-plugin.pc: Cflags -I$P/include" \
	grep -q -- "-I$P/include" <<<"$(pkg-config --cflags epsec-plugin)"
check "epsec-plugin.pc: Requires libconfig" \
	test "$(pkg-config --print-requires epsec-plugin | awk '{print $1}')" = libconfig
check "epsec-plugin.pc: plugindir $P/lib/epsec/plugins" \
	test "$(pkg-config --variable=plugindir epsec-plugin)" = "$P/lib/epsec/plugins"
check "strings libepsec.so | grep EPSEC_BUILD= names $version" \
	grep -q "^EPSEC_BUILD=$version " <<<"$(strings "$P/lib/libepsec.so" | grep EPSEC_BUILD=)"
for h in epsec.h plugin.h host.h transport.h version.h; do
	check "installed include/epsec/$h compiles alone, strict" sh -c \
		"printf '#include <epsec/$h>\nint main(void) { return 0; }\n' |
		 $CC $CFLAGS -std=c11 -Wall -Wextra -Werror -pedantic \$(pkg-config --cflags epsec) \
		 $LDFLAGS -x c - -o '$T/h.out'"
done
check "the skeleton is installed with the docs" \
	test -f "$P/share/doc/epsec/skeleton/skeleton.c" -a -f "$P/share/doc/epsec/skeleton/Makefile" \
	-a -f "$P/share/doc/epsec/skeleton/README.md"

# The partner's copy, out of every epsec tree.
cp -r "$P/share/doc/epsec/skeleton" "$T/myengine"
submake -C "$T/myengine" \
	CC="$CC" CFLAGS="$CFLAGS -O2 -g -Wall -Wextra -Werror" LDFLAGS="$LDFLAGS" \
	>"$T/skeleton-build.log" 2>&1
check "the skeleton builds out of tree with pkg-config alone, -Werror" test $? -eq 0
check "... exporting one symbol, the descriptor" \
	test "$(nm -D --defined-only "$T/myengine/skeleton.so" | awk '$3 !~ /^_/ {print $3}')" = \
	epsec_verdict_plugin
submake -C "$T/myengine" install \
	>>"$T/skeleton-build.log" 2>&1
check "make install puts it in pkg-config's plugindir" test -f "$P/lib/epsec/plugins/skeleton.so"

# The installed daemons find their plugins through plugin_dir only.
unset EPSEC_PLUGIN_PATH
printf '# test signatures\nSkeleton-Test=SKELETON-TEST-STRING\n' >"$T/skeleton.sigs"
{ head -c 65530 /dev/zero | tr '\0' 'a'; printf 'SKELETON-TEST-STRING'; head -c 70000 /dev/zero; } \
	>"$T/straddle.bin"
echo "clean" >"$T/clean.txt"
eicar >"$T/eicar.com"
MUX_EXTRA="plugin_dir = \"$P/lib/epsec\";"
mux_config
sva_config "  { plugin = \"eicar\"; action = \"delete\"; },
  { plugin = \"skeleton\"; action = \"deny\"; options = { signatures = \"$T/skeleton.sigs\"; }; }" \
	"plugin_dir = \"$P/lib/epsec\";"
MUX_BIN=$P/sbin/epsec-mux SVA_BIN=$P/sbin/epsec-sva start_mux_sva || exit 1
check "the installed epsec-sva loaded the skeleton by name" \
	grep -q "engine skeleton 1.0 ready (action deny)" "$T/sva.log"

# 4 KiB inline: the signature straddles the skeleton's 64 KiB chunks,
# past the inline bytes, so it arrives by READ/DATA through the mux.
agent() { EPSEC_PLUGIN_PATH=$P/lib/epsec/transports "$AGENT" -i 4096 "$MUX_AGENTS" "$@" \
	>"$T/verdicts" 2>"$T/agent.log"; }
agent "$T/straddle.bin" "$T/clean.txt" "$T/eicar.com"
check "the skeleton answers through the chain" \
	test "$(verdict_of "$T/straddle.bin")" = "deny skeleton Skeleton-Test"
check "... clean allowed" test "$(verdict_of "$T/clean.txt")" = "allow - -"
check "... eicar still first" test "$(verdict_of "$T/eicar.com")" = "delete eicar EICAR-Test-File"
check "status shows the skeleton's line" \
	jqe '.engines[1].signatures | startswith("1 signatures from")' < <(sva_status)

printf 'Other=SOMETHING-ELSE\n' >"$T/skeleton.sigs"
check "the skeleton reloads" jqe '.ok == true and .reloaded == 1' < <(sva_call reload)
agent "$T/straddle.bin"
check "... and answers with its new signatures" test "$(verdict_of "$T/straddle.bin")" = "allow - -"
printf 'no equals sign\n' >"$T/skeleton.sigs"
r=$(sva_call reload)
check "a broken signature file: ok:false, the skeleton's message ($(jq -r .error <<<"$r"))" \
	jqe --arg m "skeleton: $T/skeleton.sigs:1: expected NAME=TEXT" '.ok == false and .error == $m' \
	<<<"$r"
kill "$PID_sva"
wait "$PID_sva"
check "the installed epsec-sva stops cleanly" test $? -eq 0

# The appliance of doc/libepsec.md, against epsec.pc.
awk '/^```c$/ { inside = 1; next } /^```$/ { if (inside) exit } inside' \
	"$top_srcdir/doc/libepsec.md" | sed "s|tcp://127.0.0.1:48652|tcp://127.0.0.1:$SVA_PORT|" \
	>"$T/mz-sva.c"
check "doc/libepsec.md has the appliance" grep -q "epsec_session_open" "$T/mz-sva.c"
# shellcheck disable=SC2046
$CC $CFLAGS -std=gnu11 -Wall -Wextra -Werror -o "$T/mz-sva" "$T/mz-sva.c" \
	$(pkg-config --cflags --libs epsec) $LDFLAGS -Wl,-rpath,"$P/lib" -lpthread \
	>"$T/mz-build.log" 2>&1
check "it builds with pkg-config --cflags --libs epsec, -Werror" test $? -eq 0
start mz env EPSEC_PLUGIN_PATH="$P/lib/epsec/transports" "$T/mz-sva"
mz_connected() {
	"$CTL" -s "$T/run/epsec-mux.ctl" status --json 2>/dev/null | grep -q '"mz-sva"'
}
check "it connects to the mux" wait_until 10 mz_connected
printf 'MZ\x90\x00 a windows program' >"$T/prog.exe"
agent "$T/prog.exe" "$T/clean.txt"
check "it answers: MZ denied" test "$(verdict_of "$T/prog.exe")" = "deny mz Windows-Executable"
check "... the rest allowed" test "$(verdict_of "$T/clean.txt")" = "allow - -"
check "it printed the SDK's version" grep -q "^libepsec $version (" "$T/mz.log"

finish
