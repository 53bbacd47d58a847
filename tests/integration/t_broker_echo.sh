#!/usr/bin/env bash
# Echo end to end over IPv4, IPv6 and a unix listener; half-close; the log
# lines, `postern status` and the metrics endpoint; idle clients closed;
# SIGTERM leaves nothing behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

broker_json '{
  "echo": { "trigger": { "listen": ["127.0.0.1:7000", "[::1]:7000", "unix:'"$T"'/echo.sock"] },
	    "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"',
	    "limits": { "handlers": 8, "timeout": "10s" } }
}' '"metrics": "127.0.0.1:9464"' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || fail "test policy invalid"
broker_start "$T/policy.json"

out=$(in_lab "$CLIENT" 127.0.0.1:7000 "hello v4")
assert_eq "$out" "hello v4" "IPv4 echo"
out=$(in_lab "$CLIENT" "[::1]:7000" "hello v6")
assert_eq "$out" "hello v6" "IPv6 echo"
out=$(in_lab "$CLIENT" "unix:$T/echo.sock" "hello unix")
assert_eq "$out" "hello unix" "unix echo"
# a bigger payload, half-closed: the whole answer still arrives
head -c 300000 /dev/urandom >"$T/blob"
in_lab "$CLIENT" 127.0.0.1:7000 <"$T/blob" >"$T/blob.out"
cmp -s "$T/blob" "$T/blob.out" || fail "300 kB echo differs"

wait_for 5 sh -c "[ \$(grep -c 'event=exit ' '$BROKER_LOG') -ge 4 ]" || fail "4 exit lines expected"
spawn=$(grep 'event=spawn ' "$BROKER_LOG" | head -1)
for k in sandbox=echo pid= peer=127.0.0.1: spawn_ms= active=; do assert_contains "$spawn" "$k" "spawn line"; done
exit_line=$(grep 'event=exit ' "$BROKER_LOG" | head -1)
for k in sandbox=echo pid= duration_ms= status=0; do assert_contains "$exit_line" "$k" "exit line"; done
grep -q 'event=exit .*peer=\[::1\]:' "$BROKER_LOG" || fail "exit line of the IPv6 request has no peer"
# figures from the handler's cgroup (cgroup v1 here, v2 in make test-cgroup2)
for k in cpu_ms= mem_peak=; do assert_contains "$exit_line" "$k" "exit line figures from the cgroup"; done
peak=$(sed -n 's/.* mem_peak=\([0-9]*\).*/\1/p' <<<"$exit_line")
[ "$peak" -gt 100000 ] || fail "an echo handler's memory peak of $peak bytes is not plausible"

# status reflects it
assert_eq "$(sb_stat echo .started)" 4 "status started"
assert_eq "$(sb_stat echo .exits.ok)" 4 "status exits.ok"
assert_eq "$(sb_stat echo .active)" 0 "status active"
[ "$(sb_stat echo .spawn_us.p50)" -gt 0 ] || fail "no spawn latency in status"
[ "$(sb_stat echo .cgroup.cpu_us)" -gt 0 ] || fail "no CPU time of the exited handlers in status: $(sb_stat echo .cgroup)"
[ "$(sb_stat echo .cgroup.memory_peak_bytes)" -ge "$peak" ] || fail "status: memory peak below a handler's"
assert_eq "$(sb_stat echo .cgroup.oom_kills)" 0 "no OOM kill"
assert_contains "$(status_json | jq -r .cgroup.mode)" "v" "the cgroup hierarchy in use"
human=$("$POSTERN" status -s "$CONTROL")
assert_contains "$human" "echo" "status table"
assert_contains "$human" "0/8" "status table active/max"
assert_contains "$human" "cgroups: memory " "status: the sandbox's cgroup figures"
top=$("$POSTERN" top -n 1 -s "$CONTROL")
assert_contains "$top" "postern top" "top header"

# the metrics endpoint: Prometheus text over HTTP, on loopback in the lab
http() { in_lab bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "%s" "$1" >&3 && cat <&3' _ "$1"; }
m=$(http $'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n')
assert_contains "$m" "HTTP/1.0 200 OK" "metrics status line"
assert_contains "$m" "Content-Type: text/plain; version=0.0.4" "metrics content type"
assert_contains "$m" "# TYPE postern_sandbox_started_total counter" "metrics TYPE line"
assert_line "$(tr -d '\r' <<<"$m")" 'postern_sandbox_started_total{sandbox="echo"} 4' "started in metrics"
assert_line "$(tr -d '\r' <<<"$m")" 'postern_sandbox_exits_total{sandbox="echo",result="ok"} 4' "exits in metrics"
assert_contains "$m" 'postern_sandbox_spawn_phase_seconds{sandbox="echo",phase="root"}' "spawn phases in metrics"
assert_line "$(tr -d '\r' <<<"$m")" 'postern_sandbox_oom_kills_total{sandbox="echo"} 0' "OOM kills in metrics"
grep -q '^postern_sandbox_cpu_seconds_total{sandbox="echo"} 0\.0*[1-9]' <<<"$(tr -d '\r' <<<"$m")" || fail "CPU time in metrics: $(grep cpu_seconds <<<"$m")"
assert_contains "$(http $'GET /nope HTTP/1.0\r\n\r\n')" "404 Not Found" "unknown path"
assert_contains "$(http $'POST /metrics HTTP/1.0\r\n\r\n')" "405 Method Not Allowed" "POST refused"
# a client that never asks is closed after the idle timeout, not kept
in_lab bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464; sleep 12; cat <&3' >/dev/null &
idle=$!
sleep 0.5
ESTAB=$(in_lab ss -tn state established '( sport = :9464 )' | tail -n +2 | wc -l)
assert_eq "$ESTAB" 1 "idle metrics client connected"
wait_for 13 sh -c "[ \$(ip netns exec $LAB ss -tn state established '( sport = :9464 )' | tail -n +2 | wc -l) = 0 ]" ||
	fail "idle metrics client not closed"
wait "$idle"

# the control socket is 0600
mode=$(stat -c %a "$CONTROL")
assert_eq "$mode" 600 "control socket mode"

broker_stop TERM
grep -q 'event=stopped' "$BROKER_LOG" || fail "no stopped line"
assert_clean_lab
[ ! -e "$CONTROL" ] || fail "control socket left behind"
[ ! -e "$T/echo.sock" ] || fail "unix listener left behind"
echo "echo over v4, v6, unix; status; clean stop: ok"
