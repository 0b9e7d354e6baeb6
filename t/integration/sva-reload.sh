#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Reload under load: while an agent keeps 8 events in flight, the word
# list engine's signatures change three times (the control socket's
# reload, SIGHUP, reload again) and one reload fails. Every event must be
# answered, none with an error; the generation in the verdicts goes up
# with each successful reload; verdicts of a generation never use older
# signatures; the failed reload keeps the old signatures, answers ok:false
# with the plugin's own message, and leaves the generation alone.
set -u
. "$(dirname "$0")/sdk-lib.sh"
sdk_setup

words() { printf '%s\n' "$@" >"$T/words.new" && mv -f "$T/words.new" "$T/words"; }
words "Sig-Alpha ALPHA-MARK"
echo "ALPHA-MARK" >"$T/alpha.txt"
echo "BETA-MARK" >"$T/beta.txt"
echo "clean" >"$T/clean.txt"
{ head -c 200000 /dev/urandom | tr -d 'A-Z'; echo "ALPHA-MARK"; } >"$T/big.bin"
eicar >"$T/eicar.com"

mux_config
# Slow scans and a slow reload (its "compilation"): they must overlap.
sva_config "  { plugin = \"eicar\"; action = \"delete\"; },
  { plugin = \"$WORDLIST\"; action = \"deny\";
    options = { file = \"$T/words\"; scan_delay_ms = 3; reload_delay_ms = 400; }; }"
start_mux_sva || exit 1
g0=$(sva_generation)

# 4 KiB inline: big.bin's mark is read through the mux while reloads run.
"$AGENT" -d 7 -j 8 -i 4096 "$MUX_AGENTS" "$T/alpha.txt" "$T/beta.txt" "$T/clean.txt" \
	"$T/big.bin" "$T/eicar.com" >"$T/verdicts" 2>"$T/agent.log" &
agent=$!
sleep 1

words "Sig-Alpha ALPHA-MARK" "Sig-Beta BETA-MARK"
r1=$(sva_call reload)
g1=$(jq -r .generation <<<"$r1")
check "reload (control socket): ok, 1 engine reloaded" jqe '.ok == true and .reloaded == 1' <<<"$r1"
check "... generation up ($g0 -> $g1)" test "$g1" -gt "$g0"
sleep 1

words "Sig-Beta BETA-MARK"
kill -HUP "$PID_sva"
newer_than() { test "$(sva_generation)" -gt "$1"; }
check "reload (SIGHUP): generation up" wait_until 5 newer_than "$g1"
g2=$(sva_generation)
sleep 0.7

words "this line is broken"
r3=$(sva_call reload)
check "broken signatures: reload answers ok:false" jqe '.ok == false' <<<"$r3"
check "... with the plugin's message ($(jq -r .error <<<"$r3"))" \
	jqe --arg m "wordlist: $T/words:1: expected NAME WORD" '.error | startswith($m)' <<<"$r3"
check "... and the generation stays ($g2)" test "$(jq -r .generation <<<"$r3")" = "$g2"
check "... and status shows the failure" \
	jqe '.reload.failed == 1 and (.reload.last_error | length) > 0' < <(sva_status)
sleep 0.5

words "Sig-Beta BETA-MARK"
r4=$(sva_call reload)
g3=$(jq -r .generation <<<"$r4")
check "reload after the fix: ok, generation up ($g2 -> $g3)" \
	jqe --argjson g "$g2" '.ok == true and .generation > $g' <<<"$r4"

# Asked for while one runs: one more run after it, and the reply waits
# for that one.
kill -HUP "$PID_sva"
sleep 0.1
r5=$(sva_call reload)
check "reload asked for during a reload: answered after a run of its own" \
	jqe --argjson g "$g3" '.ok == true and .generation > $g' <<<"$r5"

wait "$agent"
rc=$?
note "$(cat "$T/agent.log")"
check "the agent got a verdict for every event, no error, no lost event" test "$rc" -eq 0
n=$(wc -l <"$T/verdicts")
check "many events under load ($n)" test "$n" -ge 200

gens=$(awk '{print $5}' "$T/verdicts" | sort -un | tr '\n' ' ')
note "generations in verdicts: $gens"
check "verdicts carry at least 3 generations" test "$(wc -w <<<"$gens")" -ge 3
check "... all of them the SVA's, from its first to its last" \
	awk -v lo="$g0" -v hi="$(sva_generation)" '$5 < lo || $5 > hi { bad = 1 } END { exit bad }' \
	"$T/verdicts"
# Generation g was current when the event was handed out: its scan used
# those signatures or newer ones, never older.
check "beta is denied in every verdict of generation >= $g1" \
	awk -v g="$g1" '$1 ~ /beta/ && $5 >= g && $2 != "deny" { bad = 1 } END { exit bad }' \
	"$T/verdicts"
check "alpha is allowed in every verdict of generation >= $g2" \
	awk -v g="$g2" '$1 ~ /alpha|big/ && $5 >= g && $2 != "allow" { bad = 1 } END { exit bad }' \
	"$T/verdicts"
check "the old signatures answered before the first reload (alpha denied, beta allowed)" \
	sh -c "grep -q 'alpha.txt deny wordlist Sig-Alpha $g0\$' '$T/verdicts' &&
	       grep -q 'beta.txt allow - - $g0\$' '$T/verdicts'"
check "big.bin (mark past the inline bytes) detected too" \
	grep -q "big.bin deny wordlist Sig-Alpha" "$T/verdicts"
check "clean is always allowed, EICAR always deleted" \
	awk '($1 ~ /clean/ && $2 != "allow") || ($1 ~ /eicar/ && $2 != "delete") { bad = 1 }
	     END { exit bad }' "$T/verdicts"
st=$(sva_status)
note "wordlist: $(jq -r '.engines[1].signatures' <<<"$st")"
check "scans ran while reloads did" \
	jqe '.engines[1].signatures | capture("scans during reloads (?<n>[0-9]+)").n | tonumber > 0' \
	<<<"$st"
check "the SVA counted no scan error" jqe '.counters.errors == 0' <<<"$st"
check "status: reloads ok 4 (one asked twice), failed 1" \
	jqe '.reload.ok >= 4 and .reload.failed == 1' <<<"$st"

# The generation travels in HELLO too: a new mux learns the current one.
kill "$PID_mux"
wait "$PID_mux" 2>/dev/null
start mux "$MUX" -f -c "$T/run/epsec-mux.conf"
check "the SVA reconnects to a restarted mux" wait_until 10 mux_sees_sva
check "... whose status shows the SVA's current generation ($(sva_generation))" \
	jqe --argjson g "$(sva_generation)" '[.. | objects | select(has("svas")) | .svas[].generation]
	     == [$g]' < <("$CTL" -s "$T/run/epsec-mux.ctl" status --json)

finish
