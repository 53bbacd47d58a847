#!/usr/bin/env bash
# File descriptors: the broker raises RLIMIT_NOFILE to its hard limit, so
# one sandbox full of idle clients does not make another's spawns fail with
# EMFILE; a policy whose caps need more fds than the hard limit allows is
# refused at start, saying how many and what to change.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

broker_json '{
  "idle": { "trigger": { "listen": ["127.0.0.1:7601"] }, "exec": ["/bin/sh", "-c", "echo up; sleep 60"],
	    "filesystem": '"$FS_JSON"', "limits": { "handlers": 150, "pids": 4, "memory": "8M" } },
  "echo": { "trigger": { "listen": ["127.0.0.1:7602"] }, "exec": ["/opt/postern/echo"],
	    "filesystem": '"$FS_JSON"', "limits": { "handlers": 8 } }
}' >"$T/policy.json"

# soft limit 256, hard 8192: 150 idle handlers hold 300 fds, more than 256
broker_start "$T/policy.json"
kill -TERM "$BROKER_PID"; wait "$BROKER_PID"; BROKER_PID=
: >"$BROKER_LOG"
prlimit_start() { # prlimit_start SOFT:HARD: the broker under that RLIMIT_NOFILE
	nsenter --net=/run/netns/"$LAB" prlimit --nofile="$1" "$POSTERN" run "$T/policy.json" >>"$BROKER_LOG" 2>&1 &
	BROKER_PID=$!
	bg_pid "$BROKER_PID"
}
prlimit_start 256:8192
wait_for 10 grep -q 'event=start ' "$BROKER_LOG" || fail "broker did not start: $(cat "$BROKER_LOG")"
assert_eq "$(awk '/^Max open files/ {print $4}' /proc/$BROKER_PID/limits)" 8192 "soft limit raised to the hard one"
# 150 idle clients, all served by a handler that waits
in_lab bash -c 'for i in $(seq 1 150); do exec {fd}<>/dev/tcp/127.0.0.1/7601 || exit 1; done; sleep 30' &
clients=$!
bg_pid "$clients"
wait_for 30 sh -c "[ \"\$('$POSTERN' status --json -s '$CONTROL' | jq '.sandboxes[] | select(.name == \"idle\") | .active')\" = 150 ]" ||
	fail "150 idle handlers: $(sb_stat idle .active) active, $(grep -c spawn_failed "$BROKER_LOG") spawn failures"
note "broker fds with 150 idle handlers: $(ls /proc/$BROKER_PID/fd | wc -l)"
# the cgroup files kept open (cgroup v1, to reuse handler cgroups) are
# bounded for the whole broker (64 handler cgroups' at most 13 files each,
# 16's where children copy the broker's fd table), not per handler nor per
# sandbox: 150 handlers with theirs open would hold at least 150 x 8
cgfds=$(find /proc/$BROKER_PID/fd -lname '/sys/fs/cgroup/*' 2>/dev/null | wc -l)
note "of them on cgroupfs: $cgfds"
[ "$cgfds" -le $((64 * 13)) ] || fail "the broker holds $cgfds cgroup files for 150 handlers"
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7602 other)" other "another sandbox's request while one is full of idle clients"
assert_eq "$(sb_stat idle .refused.spawn_failed)" 0 "no spawn failed"
kill "$clients"; wait "$clients" 2>/dev/null
broker_stop

# a hard limit the caps do not fit: refused at start, saying how many
: >"$BROKER_LOG"
prlimit_start 256:256
wait "$BROKER_PID"; rc=$?
BROKER_PID=
assert_eq "$rc" 1 "exit status with caps over the fd limit"
out=$(cat "$BROKER_LOG")
assert_contains "$out" "event=load what=\"file descriptors\"" "refused at load"
assert_contains "$out" "but RLIMIT_NOFILE is 256: raise it (LimitNOFILE= in the unit" "says the limit and the fix"
assert_clean_lab
echo "fd budget: ok"
