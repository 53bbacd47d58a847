#!/usr/bin/env bash
# A slow log sink never stalls the broker: with its stderr on a pipe that
# nobody reads (a journal under pressure), a handler flooding its stderr
# fills the pipe, and the broker still answers requests and its control
# socket at once; what did not fit is dropped, counted in status and
# metrics, and reported in a log_dropped line once the sink reads again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

broker_json '{
  "flood": { "trigger": { "listen": ["127.0.0.1:7301"] },
	     "exec": ["/bin/sh", "-c", "i=0; while [ $i -lt 30000 ]; do echo \"flood line $i with some padding to fill the pipe\" >&2; i=$((i+1)); done; echo flooded"],
	     "filesystem": '"$FS_JSON"', "limits": { "timeout": "60s" } },
  "echo": { "trigger": { "listen": ["127.0.0.1:7302"] }, "exec": ["/opt/postern/echo"],
	    "filesystem": '"$FS_JSON"' }
}' '"metrics": "127.0.0.1:9302"' >"$T/policy.json"

# the broker's stderr is a FIFO; a reader copies it into the log until it
# is stopped (SIGSTOP: the pipe fills), then goes on (SIGCONT)
mkfifo "$T/logpipe"
cat "$T/logpipe" >>"$BROKER_LOG" &
reader=$!
bg_pid "$reader"
nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/policy.json" 2>"$T/logpipe" &
BROKER_PID=$!
bg_pid "$BROKER_PID"
wait_for 10 grep -q 'event=start ' "$BROKER_LOG" || fail "broker did not start: $(cat "$BROKER_LOG")"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7302 ping)" ping "echo before the flood"

kill -STOP "$reader"
# the flood: far more than a pipe holds (64 KiB) and than the queue does
in_lab "$CLIENT" -t 60000 127.0.0.1:7301 "" >"$T/flood" 2>&1 &
flood=$!
wait_for 30 sh -c "[ \"\$('$POSTERN' status --json -s '$CONTROL' | jq .log_dropped)\" -gt 0 ]" ||
	fail "no log line dropped while the sink was stopped"
# the broker is not stalled: a request and the control socket answer now
start=$(date +%s%N)
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7302 pong)" pong "echo while the log sink is stalled"
status_json >/dev/null || fail "control socket while the log sink is stalled"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
note "request and status with a stalled log sink: ${ms} ms"
[ "$ms" -lt $((2000 * PST_TIME_SCALE)) ] || fail "the broker took ${ms} ms to answer with a stalled log sink"
dropped=$(status_json | jq .log_dropped)
m=$(in_lab "$CLIENT" 127.0.0.1:9302 $'GET /metrics HTTP/1.0\r\n\r\n' | tr -d '\r')
grep -q '^postern_log_dropped_lines_total [1-9]' <<<"$m" || fail "metrics: $(grep log_dropped <<<"$m")"

kill -CONT "$reader"
wait "$flood"
assert_contains "$(cat "$T/flood")" "flooded" "the flooding handler ran to its end"
wait_for 10 grep -q 'event=log_dropped lines=' "$BROKER_LOG" || fail "no log_dropped line once the sink read again"
n=$(sed -n 's/.*event=log_dropped lines=\([0-9]*\).*/\1/p' "$BROKER_LOG" | awk '{s += $1} END {print s}')
note "dropped $dropped by status, $n reported in log_dropped lines"
[ "$n" -ge "$dropped" ] || fail "log_dropped lines report $n, status said $dropped"
# every line in the log is whole (no line cut by a dropped one)
bad=$(grep -v '^ts=' "$BROKER_LOG" | head -3)
[ -z "$bad" ] || fail "a log line that is not a whole line: $bad"
broker_stop
assert_clean_lab
echo "log flood: ok"
