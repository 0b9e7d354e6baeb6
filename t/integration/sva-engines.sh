#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epsec-sva's engines: they run in config order and the first detection
# decides, with that engine's action; a plugin built for another ABI is
# refused, and one whose open fails stops the SVA, each with a clear
# message and exit status 78 (EX_CONFIG) before anything starts. A reload
# with no engine that can reload changes nothing.
set -u
. "$(dirname "$0")/sdk-lib.sh"
sdk_setup

printf 'First-Sig SHARED-MARK\n' >"$T/words1"
printf 'Second-Sig SHARED-MARK\nOnly-Second OTHER-MARK\n' >"$T/words2"
echo "a file with SHARED-MARK inside" >"$T/shared.txt"
echo "a file with OTHER-MARK inside" >"$T/other.txt"
echo "nothing to see" >"$T/clean.txt"
eicar >"$T/eicar.com"

engines="  { plugin = \"eicar\"; action = \"delete\"; },
  { plugin = \"$WORDLIST\"; action = \"deny\"; options = { file = \"$T/words1\"; }; },
  { plugin = \"$WORDLIST\"; action = \"quarantine\"; options = { file = \"$T/words2\"; }; }"
mux_config
sva_config "$engines"
start_mux_sva || exit 1

"$AGENT" "$MUX_AGENTS" "$T/shared.txt" "$T/other.txt" "$T/clean.txt" "$T/eicar.com" \
	>"$T/verdicts" 2>"$T/agent.log"
check "every event answered" test $? -eq 0
check "the first detection decides (engine 2 of 3, deny)" \
	test "$(verdict_of "$T/shared.txt")" = "deny wordlist First-Sig"
check "a later engine decides what earlier ones pass (quarantine)" \
	test "$(verdict_of "$T/other.txt")" = "quarantine wordlist Only-Second"
check "clean file allowed" test "$(verdict_of "$T/clean.txt")" = "allow - -"
check "EICAR file: eicar engine, delete" \
	test "$(verdict_of "$T/eicar.com")" = "delete eicar EICAR-Test-File"
check "status lists the three engines in order with their actions" \
	test "$(sva_status | jq -r '[.engines[] | .name + ":" + .action] | join(",")')" = \
	"eicar:delete,wordlist:deny,wordlist:quarantine"
stop_daemons

# Only engines without reload: nothing to reload, the generation stays.
sva_config '  { plugin = "eicar"; action = "delete"; }'
start_mux_sva || exit 1
gen=$(sva_generation)
now=$(date +%s)
check "the first generation is the start time in seconds ($gen)" \
	test "$gen" -ge $((now - 30)) -a "$gen" -le "$now"
reply=$(sva_call reload)
check "reload with no reloadable engine: ok, nothing reloaded" \
	jqe '.ok == true and .reloaded == 0' <<<"$reply"
check "... and the generation stays" test "$(jq -r .generation <<<"$reply")" = "$gen"
check "epsecctl reload prints the generation" \
	test "$("$CTL" -r "$T/run" reload)" = "epsec-sva: reloaded, generation $gen"
stop_daemons

# Refusals, before anything starts.
sva_config "  { plugin = \"$top_builddir/t/integration/wordlist_abi9.la\"; action = \"deny\"; }"
sva_refuses "wrong ABI refused" 78 "verdict plugin ABI 9.$(sed -n "s/^#define EPSEC_VERDICT_ABI_MINOR //p" "$top_srcdir/include/epsec/plugin.h") refused: this epsec speaks 1."
sva_refuses "wrong ABI: the file is named" 78 "wordlist_abi9"

sva_config "  { plugin = \"eicar\"; action = \"delete\"; },
  { plugin = \"$WORDLIST\"; action = \"deny\";
    options = { fail_open = \"licence expired on 2026-01-01: call your vendor\"; }; }"
sva_refuses "open failure stops the SVA with the plugin's message" 78 \
	"licence expired on 2026-01-01: call your vendor"
sva_refuses "open failure names the engine" 78 "engine wordlist"

sva_config "  { plugin = \"$WORDLIST\"; action = \"deny\"; options = { file = \"$T/nowhere\"; }; }"
sva_refuses "missing signature file stops the SVA" 78 "$T/nowhere: No such file or directory"

sva_config "  { plugin = \"$WORDLIST\"; action = \"deny\"; options = { file = \"$T/words1\"; speed = 3; }; }"
sva_refuses "unknown plugin option: file, line and key" 78 "epsec-sva.conf:10: engine[0].options.speed: unknown key"

finish
