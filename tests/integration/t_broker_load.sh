#!/usr/bin/env bash
# 2000 connections at concurrency 32, none failed; afterwards the broker's fd
# count and child count are back to their baseline and no zombie remains.
# The cgroup files it keeps open (cgroup v1: those of the handler cgroups
# it reuses) are counted apart: at most 64 handler cgroups' (13 files each)
# in the whole broker.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
[ -x "$LOADGEN" ] || fail "missing $LOADGEN"

broker_json '{
  "echo": { "trigger": { "listen": ["127.0.0.1:7000"] },
	    "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"',
	    "limits": { "handlers": 64, "timeout": "20s" } }
}' >"$T/policy.json"
broker_start "$T/policy.json"

fds() { find /proc/"$BROKER_PID"/fd -mindepth 1 ! -lname '/sys/fs/cgroup/*' 2>/dev/null | wc -l; }
cgfds() { find /proc/"$BROKER_PID"/fd -lname '/sys/fs/cgroup/*' 2>/dev/null | wc -l; }
children() { ps -o pid= --ppid "$BROKER_PID" | wc -l; }
in_lab "$CLIENT" 127.0.0.1:7000 warm >/dev/null || fail "warm-up"
wait_for 5 sh -c "[ \$(ps -o pid= --ppid $BROKER_PID | wc -l) = 0 ]"
base_fds=$(fds)

out=$(in_lab "$LOADGEN" -c 32 -n 2000 -d 300 -p 512 127.0.0.1:7000) || fail "loadgen: $out"
note "$out"
assert_contains "$out" "completed=2000" "completed"
assert_contains "$out" "failed=0" "failed"

wait_for 20 sh -c "[ \$(ps -o pid= --ppid $BROKER_PID | wc -l) = 0 ]" || fail "children left: $(children)"
wait_for 5 sh -c "[ \$(find /proc/$BROKER_PID/fd -mindepth 1 ! -lname '/sys/fs/cgroup/*' | wc -l) = $base_fds ]" ||
	fail "fds: $(fds), baseline $base_fds"
note "cgroup files kept open: $(cgfds)"
[ "$(cgfds)" -le $((64 * 13)) ] || fail "cgroup files kept open: $(cgfds), more than 64 handler cgroups'"
z=$(ps -eo stat=,ppid= | awk -v p="$BROKER_PID" '$2 == p && $1 ~ /^Z/' | wc -l)
assert_eq "$z" 0 "zombies"
assert_eq "$(sb_stat echo .started)" 2001 "started"
assert_eq "$(sb_stat echo .exits.ok)" 2001 "exits ok"
broker_stop
assert_clean_lab
echo "2000 connections at c=32: ok"
