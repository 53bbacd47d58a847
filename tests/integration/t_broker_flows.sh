#!/usr/bin/env bash
# The request-driven flows: a listen handler queues a message on a pipe
# channel that starts a worker handler; a startup handler accepts on its own
# sockets and passes each connection over an fdpass channel to per-request
# echo handlers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
for e in pipe-sender pipe-receiver fd-listener; do [ -x "$BUILD/examples/$e" ] || fail "missing example $e"; done

broker_json '{
  "front": { "trigger": { "listen": ["127.0.0.1:7200"] }, "exec": ["/opt/postern/pipe-sender"],
	     "send": ["jobs"], "filesystem": '"$FS_JSON"' },
  "worker": { "trigger": { "pipe": "jobs" }, "exec": ["/opt/postern/pipe-receiver"],
	      "filesystem": '"$FS_JSON"' },
  "listener": { "trigger": { "startup": true }, "sockets": ["127.0.0.1:7300"], "send": ["conns"],
		"restart": "on-failure", "exec": ["/opt/postern/fd-listener"], "filesystem": '"$FS_JSON"' },
  "request": { "trigger": { "fdpass": "conns" }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' },
  "envdump": { "trigger": { "startup": true }, "sockets": ["127.0.0.1:7310", "127.0.0.1:7311"],
	       "exec": ["/bin/sh", "-c", "env >&2; sleep 30"], "filesystem": '"$FS_JSON"' }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"

out=$(in_lab "$CLIENT" 127.0.0.1:7200 "job-one")
assert_contains "$out" "queued" "pipe-sender answer"
wait_for 5 grep -q 'event=stderr sandbox=worker .*received: job-one' "$BROKER_LOG" || fail "worker did not receive the message"
assert_eq "$(sb_stat worker .started)" 1 "worker handlers"

wait_for 5 sh -c "ip netns exec $LAB ss -ltn | grep -q 127.0.0.1:7300" || fail "startup socket not listening"
for i in 1 2 3; do
	out=$(in_lab "$CLIENT" 127.0.0.1:7300 "passed-$i")
	assert_eq "$out" "passed-$i" "fdpass echo $i"
done
assert_eq "$(sb_stat request .started)" 3 "request handlers"
assert_eq "$(sb_stat listener .active)" 1 "startup handler running"
grep -q 'event=exit .*sandbox=request .*peer=127.0.0.1:' "$BROKER_LOG" || fail "fdpass handler exit line has no peer"

# a startup handler with two sockets: one name per fd (sd_listen_fds_with_names())
wait_for 5 grep -q 'event=stderr sandbox=envdump .*line="\?LISTEN_FDNAMES=' "$BROKER_LOG" || fail "envdump printed no LISTEN_FDNAMES"
assert_contains "$(grep 'event=stderr sandbox=envdump ' "$BROKER_LOG")" "LISTEN_FDNAMES=listener:listener" "names of two startup sockets"
assert_contains "$(grep 'event=stderr sandbox=envdump ' "$BROKER_LOG")" "LISTEN_FDS=2" "two startup sockets"

broker_stop
assert_clean_lab
echo "pipe and fdpass flows: ok"
