#!/usr/bin/env bash
# A handler with an rw bind that holds the program of a pre-warmed sandbox
# replaces that program with a FIFO (tests/helpers/hostile-sandbox). The
# set-ups that follow check the program (preloadable: can postern-warm.so
# be preloaded into it?) without waiting on it: they go on (waiting in
# postern-warm), the threadpool stays free, pre-warming of other sandboxes
# goes on, the broker keeps serving, and SIGTERM stops it within its grace
# period.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

H=/opt/helpers/hostile-sandbox
mkdir -p "$T/x"
cp "$BUILD/examples/echo" "$T/x/h"
chmod 777 "$T/x"
chmod 755 "$T/x/h"
FS_VICTIM=$(jq -c --arg d "$T/x" '. + [ { "bind": $d, "to": "/opt/x" } ]' <<<"$FS_JSON")
FS_WEDGER=$(jq -c --arg d "$T/x" '. + [ { "bind": $d, "to": "/x", "mode": "rw" } ]' <<<"$FS_JSON")
broker_json '{
  "victim": { "trigger": { "listen": ["127.0.0.1:7401"] }, "exec": ["/opt/x/h"], "filesystem": '"$FS_VICTIM"',
	      "prewarm": 6 },
  "wedger": { "trigger": { "listen": ["127.0.0.1:7402"] }, "exec": ["'$H'"], "filesystem": '"$FS_WEDGER"' },
  "other": { "trigger": { "listen": ["127.0.0.1:7403"] }, "exec": ["/usr/bin/cat"], "filesystem": '"$FS_JSON"',
	     "prewarm": 2 },
  "plain": { "trigger": { "listen": ["127.0.0.1:7404"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"

ready() { "$POSTERN" status --json -s "$CONTROL" | jq -r --arg n "$1" '.sandboxes[] | select(.name == $n) | .prewarm.ready'; }
wait_for 15 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"victim\") | .prewarm.ready')\" = 6 ]" ||
	fail "victim: 6 pre-warmed handlers expected: $(sb_stat victim .prewarm)"
wait_for 10 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"other\") | .prewarm.ready')\" = 2 ]" ||
	fail "other: 2 pre-warmed handlers expected: $(sb_stat other .prewarm)"
assert_eq "$(sb_stat victim .prewarm.execd)" 6 "victim's handlers wait exec'd (its program is preloadable)"

out=$(in_lab "$CLIENT" 127.0.0.1:7402 "fifo /x/h")
assert_line "$out" "mkfifo: ALLOWED" "the wedger replaces the victim's program with a FIFO"
[ -p "$T/x/h" ] || fail "no FIFO at $T/x/h"

# use the waiting victim handlers (loaded before the swap, they still
# answer): each is replaced by a set-up that meets the FIFO; more set-ups
# than the threadpool has threads (4). A request that finds one of those
# set-ups ready fails (its program is a FIFO now).
for i in 1 2 3 4 5 6; do
	in_lab "$CLIENT" -t 5000 127.0.0.1:7401 "v$i" >/dev/null 2>&1 || true
done
[ "$(sb_stat victim .prewarm.used)" -ge 6 ] || fail "victim's pre-warmed handlers not used: $(sb_stat victim .prewarm)"
# the set-ups end (ready, waiting in postern-warm now: the FIFO is no
# program to preload into) instead of holding a thread each
wait_for 10 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"victim\") | .prewarm.starting')\" = 0 ]" ||
	fail "victim's set-ups do not end: $(sb_stat victim .prewarm)"

# pre-warming of another sandbox goes on: a used handler is replaced
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7403 "o1")" "o1" "other served"
sleep 0.2
wait_for 10 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"other\") | .prewarm.ready')\" = 2 ]" ||
	fail "other not refilled while victim's program is a FIFO: $(sb_stat other .prewarm)"
[ "$(sb_stat other .prewarm.used)" -ge 1 ] || fail "other's pre-warmed handler not used"
# fresh spawns too
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7404 "p1")" "p1" "plain served"
# and the victim's own requests fail at once, reported
in_lab "$CLIENT" -t 5000 127.0.0.1:7401 "v7" >/dev/null 2>&1 || true
wait_for 5 grep -q 'sandbox=victim .*exec /opt/x/h: Permission denied' "$BROKER_LOG" ||
	fail "the victim's failed exec is not reported: $(grep 'sandbox=victim' "$BROKER_LOG" | tail -3)"

# SIGTERM stops it within the grace period (3 s; broker_stop allows 15)
start=$(date +%s%N)
broker_stop
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -lt $((8000 * PST_TIME_SCALE)) ] || fail "the broker took ${ms} ms to stop"
assert_clean_lab
echo "hostile prewarm: ok"
