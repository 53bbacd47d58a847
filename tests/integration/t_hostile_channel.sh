#!/usr/bin/env bash
# Hostile senders on channels (tests/helpers/hostile-channel run as
# handlers): an unterminated line is not the prefix of the next sender's
# message; a sender that shuts its channel fd down does not shut the channel
# for the others; 20,000 fd-less messages and a spawn failure per request
# give a few throttled lines with a suppressed count, not one line each.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
HC=/opt/helpers/hostile-channel
[ -x "$BUILD/tests/helpers/hostile-channel" ] || fail "missing hostile-channel: run make"

broker_json '{
  "partial": { "trigger": { "listen": ["127.0.0.1:7401"] }, "exec": ["'$HC'", "partial", "jobs", "EVIL-PREFIX-"],
	       "send": ["jobs"], "filesystem": '"$FS_JSON"' },
  "good": { "trigger": { "listen": ["127.0.0.1:7402"] }, "exec": ["'$HC'", "line", "jobs", "hello"],
	    "send": ["jobs"], "filesystem": '"$FS_JSON"' },
  "shutp": { "trigger": { "listen": ["127.0.0.1:7403"] }, "exec": ["'$HC'", "shutdown", "jobs"],
	     "send": ["jobs"], "filesystem": '"$FS_JSON"' },
  "worker": { "trigger": { "pipe": "jobs" }, "exec": ["/opt/postern/pipe-receiver"], "filesystem": '"$FS_JSON"' },
  "passer": { "trigger": { "listen": ["127.0.0.1:7404"] }, "exec": ["'$HC'", "pass", "conns"],
	      "send": ["conns"], "filesystem": '"$FS_JSON"' },
  "shutf": { "trigger": { "listen": ["127.0.0.1:7405"] }, "exec": ["'$HC'", "shutdown", "conns"],
	     "send": ["conns"], "filesystem": '"$FS_JSON"' },
  "fdless": { "trigger": { "listen": ["127.0.0.1:7406"] }, "exec": ["'$HC'", "fdless", "conns", "20000"],
	      "send": ["conns"], "filesystem": '"$FS_JSON"' },
  "request": { "trigger": { "fdpass": "conns" }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' },
  "badbind": { "trigger": { "listen": ["127.0.0.1:7407"] }, "exec": ["/opt/postern/echo"],
	       "filesystem": [ { "bind": "/srv/postern-no-such-dir", "to": "/data" } ] }
}' >"$T/policy.json"
# a sandbox broken on purpose, for its spawn failures: past the preflight
"$POSTERN" check --no-preflight "$T/policy.json" >/dev/null || { "$POSTERN" check --no-preflight "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json" --no-preflight

# 1. an unterminated line, then another sender's message: two senders, two
# messages; the unterminated one is dropped when its sender is gone
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7401 "")" "partial: wrote 12" "partial sender"
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7402 "")" "line: wrote 6" "good sender"
wait_for 5 grep -q 'event=stderr sandbox=worker .*received: ' "$BROKER_LOG" || fail "worker got no message"
got=$(grep 'event=stderr sandbox=worker .*received: ' "$BROKER_LOG")
note "$got"
assert_contains "$got" "received: hello" "the good sender's message"
assert_not_contains "$got" "EVIL-PREFIX-" "one sender's unterminated line is not the start of another's message"
wait_for 5 grep -q 'event=channel_drop channel=jobs reason="unterminated message' "$BROKER_LOG" ||
	fail "the unterminated message is not reported as dropped"
assert_eq "$(sb_stat worker .started)" 1 "one worker: the dropped message started none"

# 2. a sender shuts its channel fd down: the others still send
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7403 "")" "shutdown: " "pipe sender's shutdown"
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7405 "")" "shutdown: done" "fdpass sender shut its socket down"
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7404 "passed after a shutdown")" "passed after a shutdown" \
	"fdpass after another sender's shutdown"
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7402 "")" "line: wrote 6" "pipe after another sender's shutdown"
wait_for 5 sh -c "[ \$(grep -c 'event=stderr sandbox=worker .*received: hello' '$BROKER_LOG') = 2 ]" ||
	fail "the second good message did not arrive"

# (throttled lines: one a second at most, so a few more where the flood
# takes longer, as under emulation)
since() { echo $(( ($(date +%s%N) - $1) / 1000000000 + 2 )); }
# 3. 20,000 fd-less messages: all dropped and counted, a few lines logged
t0=$(date +%s%N)
assert_contains "$(in_lab "$CLIENT" -t 30000 127.0.0.1:7406 "")" "fdless: sent 20000" "fd-less flood"
wait_for 10 sh -c "[ \"\$('$POSTERN' status --json -s '$CONTROL' | jq '.sandboxes[] | select(.name == \"request\") | .channel_stats.dropped')\" = 20000 ]" ||
	fail "dropped fd-less messages: $(sb_stat request .channel_stats)"
n=$(count_log 'event=channel_drop channel=conns')
most=$(since "$t0")
note "fd-less flood: $n channel_drop lines for 20000 messages (at most $most)"
[ "$n" -le "$most" ] || fail "$n channel_drop lines for one flood: not throttled"

# 4. a spawn failure per request: counted, logged a few times
t0=$(date +%s%N)
for i in $(seq 1 30); do in_lab "$CLIENT" -t 2000 127.0.0.1:7407 x >/dev/null 2>&1; done
assert_eq "$(sb_stat badbind .refused.spawn_failed)" 30 "spawn failures counted"
n=$(count_log 'event=spawn_failed sandbox=badbind')
most=$(since "$t0")
note "30 failed spawns: $n spawn_failed lines (at most $most)"
[ "$n" -ge 1 ] && [ "$n" -le "$most" ] && [ "$n" -lt 30 ] || fail "$n spawn_failed lines for 30 failures: not throttled"
sleep 1.1
in_lab "$CLIENT" -t 2000 127.0.0.1:7407 x >/dev/null 2>&1
wait_for 5 grep -q 'event=spawn_failed sandbox=badbind .* suppressed=[1-9]' "$BROKER_LOG" ||
	fail "the next spawn_failed line does not say how many were suppressed: $(grep spawn_failed "$BROKER_LOG" | tail -n 1)"

broker_stop
assert_clean_lab
echo "hostile channel senders: ok"
