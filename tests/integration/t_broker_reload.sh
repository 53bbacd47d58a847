#!/usr/bin/env bash
# SIGHUP: a valid new policy is applied atomically (new listener, removed
# listener, running handlers untouched); an invalid one is logged and the old
# policy kept. A handler of the new policy never shares the cgroup of one
# still running from the old. A reload that fails at its last step (the
# netpolicy one) leaves the old policy whole, channels included.
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

# A reload that fails at its last step (netpolicy: a new sandbox's veth
# cannot be made, its name taken) changes nothing, also of what it would
# have replaced: here the "jobs" channel, which it turns from pipe into
# fdpass. The old channel still carries messages, and a sender holding its
# end since before keeps it across the failed reload and the next good one.
BROKER_LOG="$T/broker2.log"
front='"front": { "trigger": { "listen": ["127.0.0.1:7400"] }, "exec": ["/opt/postern/pipe-sender"], "send": ["jobs"], "filesystem": '"$FS_JSON"' }'
hold='"hold": { "trigger": { "listen": ["127.0.0.1:7401"] }, "exec": ["/bin/sh", "-c", "read x; echo \"$x\" >&\"$POSTERN_SEND_JOBS\""], "send": ["jobs"], "filesystem": '"$FS_JSON"' }'
worker_pipe='"worker": { "trigger": { "pipe": "jobs" }, "exec": ["/opt/postern/pipe-receiver"], "filesystem": '"$FS_JSON"' }'
worker_fd='"worker": { "trigger": { "fdpass": "jobs" }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' }'
blocked='"blocked": { "trigger": { "listen": ["127.0.0.1:7402"] }, "exec": ["/opt/postern/echo"], "egress": [ { "to": "192.0.2.1" } ], "filesystem": '"$FS_JSON"' }'
broker_json "{ $front, $hold, $worker_pipe }" >"$T/policy.json"
broker_start "$T/policy.json"
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7400 job-one)" queued "pipe-sender before the reloads"
wait_for 5 grep -q 'event=stderr sandbox=worker .*received: job-one' "$BROKER_LOG" || fail "job-one not received"
# a sender that writes once its client says what (the fifo held open here)
mkfifo "$T/hold.in"
exec 7<>"$T/hold.in"
in_lab "$CLIENT" -t 20000 127.0.0.1:7401 <"$T/hold.in" >"$T/hold.out" 2>&1 7>&- &
hold_client=$!
bg_pid "$hold_client"
wait_for 5 sh -c "[ \$(\"$POSTERN\" status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"hold\") | .active') = 1 ]" || fail "hold not active"
# (pipe-sender's end goes once the broker has read its EOF)
wait_for 5 sh -c "[ \$(\"$POSTERN\" status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"worker\") | .channel_stats.senders') = 1 ]" ||
	fail "senders: $(sb_stat worker .channel_stats.senders), not the holding one alone"

in_lab ip link add pstblocked type veth peer name pstblocked-p || fail "make the colliding link"
broker_json "{ $front, $hold, $worker_fd, $blocked }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reload_failed' "$BROKER_LOG" || fail "no reload_failed line"
grep -q 'event=reload .*error=.*sandbox \\"blocked\\".*pstblocked: File exists' "$BROKER_LOG" ||
	fail "the netpolicy step's error was not logged: $(grep 'event=reload' "$BROKER_LOG")"
if grep -q 'event=reloaded' "$BROKER_LOG"; then fail "a failed reload said reloaded"; fi
assert_eq "$(sb_stat worker .trigger)" pipe "the channel's kind after the failed reload"
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7400 job-two)" queued "pipe-sender after the failed reload"
wait_for 5 grep -q 'event=stderr sandbox=worker .*received: job-two' "$BROKER_LOG" ||
	fail "the old channel lost its message after the failed reload"
if in_lab "$CLIENT" -t 2000 127.0.0.1:7402 x >/dev/null 2>&1; then fail "the failed reload's listener answers"; fi
wait_for 5 sh -c "[ \$(\"$POSTERN\" status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"worker\") | .channel_stats.senders') = 1 ]" ||
	fail "senders after the failed reload: $(sb_stat worker .channel_stats.senders)"

# the same policy again, with the name free: the channel is kept whole
in_lab ip link del pstblocked
broker_json "{ $front, $hold, $worker_pipe }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reloaded' "$BROKER_LOG" || fail "no reloaded line"
echo late-job >&7
exec 7>&-
wait_for 5 grep -q 'event=stderr sandbox=worker .*received: late-job' "$BROKER_LOG" ||
	fail "the sender's end did not survive the failed and the good reload"
wait "$hold_client" || fail "hold client: $(cat "$T/hold.out")"

# and a good reload does change the kind
broker_json "{ $front, $hold, $worker_fd }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') = 2 ]" || fail "kind-changing reload"
assert_eq "$(sb_stat worker .trigger)" fdpass "the channel's kind after a good reload"
assert_eq "$(status_json | jq '.reload_failures')" 1 "reload failure count"

# A reload that gives egress to a sandbox that had none must make its
# network anew, once the new rules are in force. Where that fails (its
# veth's name taken) the reload goes ahead, says why, and that sandbox's
# handlers get an empty network namespace: fail closed, never the old
# network under the new rules. A later reload makes the network.
ifs='"exec": ["/bin/sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" | sort | tr \"\\n\" \" \""], "filesystem": '"$FS_PROC"
kin_none='"kin": { "trigger": { "listen": ["127.0.0.1:7403"] }, '"$ifs"' }'
kin_egress='"kin": { "trigger": { "listen": ["127.0.0.1:7403"] }, "egress": [ { "to": "192.0.2.1" } ], '"$ifs"' }'
broker_json "{ $front, $hold, $worker_fd, $kin_none }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') = 3 ]" || fail "reload adding kin"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7403 "")" "lo " "kin without egress: lo alone"
in_lab ip link add pstkin type veth peer name pstkin-p || fail "make the colliding link"
broker_json "{ $front, $hold, $worker_fd, $kin_egress }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') = 4 ]" || fail "a reload that fails past its rules did not go ahead"
grep -q 'event=reload .*error=.*pstkin: File exists' "$BROKER_LOG" ||
	fail "the failed network was not logged: $(grep 'event=reload ' "$BROKER_LOG" | tail -n 2)"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7403 "")" "lo " "kin without its network: an empty network namespace"
in_lab ip link del pstkin
kill -HUP "$BROKER_PID"
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') = 5 ]" || fail "the next reload"
out=$(in_lab "$CLIENT" 127.0.0.1:7403 "")
[ "$(wc -w <<<"$out")" = 2 ] || fail "kin's network after the next reload: '$out'"
broker_stop
assert_clean_lab
echo "reload: ok"
