#!/usr/bin/env bash
# Started with stdin, stdout and stderr closed (a supervisor that closes
# what it does not pass), the broker puts /dev/null on fds 0-2 before it
# opens anything: its lock file, libuv's epoll set and signal pipe do not
# take those numbers (log lines went into them, and the broker aborted at
# SIGTERM); its own pidfd comes right after, so each spawn's child copies
# 4 fds of the broker's. It serves, answers its control socket, and stops
# with status 0, leaving nothing behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

broker_json '{
  "echo": { "trigger": { "listen": ["127.0.0.1:7321"] }, "exec": ["/opt/postern/echo"],
	    "filesystem": '"$FS_JSON"' }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || fail "test policy invalid"

nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/policy.json" 0<&- 1>&- 2>&- &
BROKER_PID=$!
bg_pid "$BROKER_PID"
wait_for 10 sh -c "'$POSTERN' status -s '$CONTROL' >/dev/null 2>&1" || fail "the broker did not start (or its control socket does not answer)"

for fd in 0 1 2; do
	assert_eq "$(readlink /proc/"$BROKER_PID"/fd/$fd)" /dev/null "the broker's fd $fd"
done
t3=$(readlink /proc/"$BROKER_PID"/fd/3)
assert_contains "$t3" pidfd "the broker's fd 3 (its own pidfd, right after stdio)"

assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7321 "closed stdio")" "closed stdio" "echo"
assert_eq "$(sb_stat echo .exits.ok)" 1 "status: the handler's exit"

kill -TERM "$BROKER_PID"
wait_for 15 sh -c "! kill -0 $BROKER_PID 2>/dev/null" || fail "the broker did not exit at SIGTERM"
rc=0
wait "$BROKER_PID" || rc=$?
assert_eq "$rc" 0 "exit status at SIGTERM"
BROKER_PID=
assert_clean_lab
