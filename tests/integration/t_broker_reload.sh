#!/usr/bin/env bash
# SIGHUP: a valid new policy is applied atomically (new listener, removed
# listener, running handlers untouched); an invalid one is logged and the old
# policy kept. A handler of the new policy never shares the cgroup of one
# still running from the old.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

one='"echo": { "trigger": { "listen": ["127.0.0.1:7000"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' }'
two='"echo2": { "trigger": { "listen": ["127.0.0.1:7001"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' }'
slow='"slow": { "trigger": { "listen": ["127.0.0.1:7002"] }, "exec": ["/bin/sh", "-c", "sleep '"$((3 * PST_TIME_SCALE))"'; echo slow-done"], "filesystem": '"$FS_JSON"' }'
broker_json "{ $one, $slow }" >"$T/policy.json"
broker_start "$T/policy.json"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 a)" a "before reload"

in_lab "$CLIENT" -t $((10000 * PST_TIME_SCALE)) 127.0.0.1:7002 >"$T/slow.out" 2>&1 &
wait_for 5 sh -c "[ \$(\"$POSTERN\" status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"slow\") | .active') = 1 ]" || fail "slow not active"

# valid: add echo2, drop nothing
broker_json "{ $one, $two, $slow }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reloaded' "$BROKER_LOG" || fail "no reloaded line"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7001 b)" b "new listener after reload"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 c)" c "old listener after reload"
assert_eq "$(sb_stat slow .active)" 1 "running handler kept across reload"
# the same sandbox in the new generation: its handler gets cgroups of its own
in_lab "$CLIENT" -t $((10000 * PST_TIME_SCALE)) 127.0.0.1:7002 >"$T/slow2.out" 2>&1 &
wait_for 5 sh -c "[ \$(grep -c 'event=spawn sandbox=slow ' '$BROKER_LOG') = 2 ]" || fail "second slow handler not started"
pids=$(grep 'event=spawn sandbox=slow ' "$BROKER_LOG" | sed 's/.* pid=\([0-9]*\).*/\1/')
cg1=$(pid_cgroups "$(head -1 <<<"$pids")" memory pids) || fail "first slow handler gone too early"
cg2=$(pid_cgroups "$(tail -1 <<<"$pids")" memory pids) || fail "second slow handler gone too early"
assert_contains "$cg1" "/$TABLE/slow/h" "first handler's cgroups"
while read -r line; do
	if grep -qxF -- "$line" <<<"$cg2"; then fail "a cgroup shared across the reload: $line"; fi
done <<<"$cg1"
wait_for 5 grep -q slow-done "$T/slow.out" || fail "handler running during reload did not finish"
wait_for 5 grep -q slow-done "$T/slow2.out" || fail "second slow handler did not finish"

# invalid: logged, old policy kept
echo '{ "postern": 1, "sandboxes": { "Bad Name": {} } }' >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reload_failed' "$BROKER_LOG" || fail "no reload_failed line"
grep -q 'event=reload_invalid' "$BROKER_LOG" || fail "the invalid policy's errors were not logged"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7001 d)" d "still serving after a bad reload"

# valid again: echo removed -> its port closes
broker_json "{ $two }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') = 2 ]" || fail "second reload"
if in_lab "$CLIENT" -t 2000 127.0.0.1:7000 e >/dev/null 2>&1; then fail "removed listener still answers"; fi
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7001 f)" f "kept listener"
assert_eq "$(status_json | jq '.reloads')" 2 "reload count"
assert_eq "$(status_json | jq '.reload_failures')" 1 "reload failure count"

broker_stop
assert_clean_lab
echo "reload: ok"
