#!/usr/bin/env bash
# Admission and containment: the handlers cap holds connections in the kernel
# backlog (none refused); per_source and rate refuse and count; a timeout
# kills the handler and its grandchildren; a crashing handler and a failing
# spawn do not disturb the broker.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

sbx() { # name port exec_json limits_json
	echo '"'$1'": { "trigger": { "listen": ["127.0.0.1:'$2'"] }, "exec": '"$3"',
		"filesystem": '"$FS_JSON"', "limits": '"$4"' }'
}
broker_json "{
 $(sbx slow 7101 '["/bin/sh", "-c", "sleep 1; echo done"]' '{ "handlers": 2, "timeout": "20s" }'),
 $(sbx src 7102 '["/bin/sh", "-c", "sleep 2; echo hi"]' '{ "handlers": 10, "per_source": 1 }'),
 $(sbx rate 7103 '["/bin/sh", "-c", "echo hi"]' '{ "rate": "2/s" }'),
 $(sbx tmo 7104 '["/bin/sh", "-c", "sleep 60 & sleep 60; echo never"]' '{ "timeout": "500ms" }'),
 $(sbx crash 7105 '["/opt/helpers/crash"]' '{ "handlers": 4 }'),
 $(sbx broken 7106 '["/opt/postern/no-such-handler"]' '{ "handlers": 4 }'),
 $(sbx echo 7107 '["/opt/postern/echo"]' '{ "handlers": 4 }'),
 $(sbx many 7108 '["/bin/sh", "-c", "sleep 1; echo done"]' '{ "handlers": 8, "pids": 3 }')
}" >"$T/policy.json"
# a sandbox broken on purpose, for its spawn failures: past the preflight
"$POSTERN" check --no-preflight "$T/policy.json" >/dev/null || { "$POSTERN" check --no-preflight "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json" --no-preflight

# 1. handlers cap 2, six clients at once: all served, none refused, never > 2
for i in 1 2 3 4 5 6; do in_lab "$CLIENT" -t 20000 127.0.0.1:7101 >"$T/slow.$i" 2>&1 & done
max=0
for _ in $(seq 1 30); do
	a=$(sb_stat slow .active); [ "$a" -gt "$max" ] && max=$a
	sleep 0.1
done
wait_for 15 sh -c "[ \$(cat $T/slow.* | grep -c done) = 6 ]" || fail "slow: $(cat $T/slow.*)"
[ "$max" -le 2 ] || fail "handlers cap exceeded: $max active"
[ "$max" -ge 1 ] || fail "never saw an active handler"
assert_eq "$(sb_stat slow '.refused.per_source + .refused.rate')" 0 "slow refused"
assert_eq "$(sb_stat slow .started)" 6 "slow started"

# 2. per_source 1: the second concurrent connection from 127.0.0.1 is closed
in_lab "$CLIENT" -t 10000 127.0.0.1:7102 >"$T/src.1" 2>&1 &
wait_for 5 sh -c "[ \$(\"$POSTERN\" status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"src\") | .active') = 1 ]" || fail "src: first not active"
out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7102 2>&1); rc=$?
assert_eq "$out" "" "per_source refusal closes at once"
assert_eq "$(sb_stat src .refused.per_source)" 1 "per_source refusals"
wait_for 10 grep -q hi "$T/src.1" || fail "first src client not served"
grep -q 'event=refuse .*sandbox=src .*reason=per_source' "$BROKER_LOG" || fail "no per_source refuse line"

# 3. rate 2/s (burst 2): of 6 back-to-back connections, the burst and what
# the rate refills meanwhile are served (2-3 when they take under half a
# second, as on the host; more where they take longer, as under emulation),
# the rest refused
ok=0
start=$(date +%s%N)
for i in 1 2 3 4 5 6; do
	o=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7103 2>/dev/null)
	[ "$o" = hi ] && ok=$((ok + 1))
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
most=$(( 2 + (2 * ms + 999) / 1000 ))
# so slow (emulation) that the rate refilled for all six: none to refuse
[ "$most" -le 6 ] || most=6
note "rate: $ok of 6 served in ${ms} ms"
[ "$ok" -ge 2 ] && [ "$ok" -le "$most" ] || fail "rate: $ok of 6 served in ${ms} ms, want 2-$most (burst 2 + 2/s over ${ms} ms)"
r=$(sb_stat rate .refused.rate)
[ "$r" -ge $((6 - most)) ] || fail "rate refusals: $r"

# 4. timeout: killed after 500ms with its grandchild
start=$(date +%s%N)
out=$(in_lab "$CLIENT" -t 10000 127.0.0.1:7104 2>&1)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
assert_eq "$out" "" "timed-out handler wrote nothing"
[ "$ms" -lt $((5000 * PST_TIME_SCALE)) ] || fail "timeout took ${ms}ms"
wait_for 5 grep -q 'event=exit .*sandbox=tmo .*signal=KILL.*reason=timeout' "$BROKER_LOG" || fail "no timeout exit line"
tmo_uid=$(sed -n "s/.* event=sandbox name=tmo .* uid=\([0-9]*\) .*/\1/p" "$BROKER_LOG" | head -1)
wait_for 5 sh -c "! ps -o pid= -u $tmo_uid | grep -q ." || fail "processes of uid $tmo_uid survive: $(ps -o pid,cmd -u $tmo_uid)"
assert_eq "$(sb_stat tmo .exits.timeout)" 1 "timeout exits"

# 5. crash and 6. spawn failure: logged, counted, the broker keeps serving
in_lab "$CLIENT" -t 5000 127.0.0.1:7105 >/dev/null 2>&1
in_lab "$CLIENT" -t 5000 127.0.0.1:7106 >/dev/null 2>&1
wait_for 5 grep -q 'event=exit .*sandbox=crash .*signal=SEGV' "$BROKER_LOG" || fail "no SEGV exit line"
wait_for 5 grep -q 'event=spawn_failed .*sandbox=broken .*no-such-handler' "$BROKER_LOG" || fail "no spawn_failed line"
assert_eq "$(sb_stat broken .refused.spawn_failed)" 1 "spawn failures"
out=$(in_lab "$CLIENT" 127.0.0.1:7107 still-here)
assert_eq "$out" "still-here" "broker serves after crash and spawn failure"

# 7. more concurrent handlers than one handler's pids limit: all served (the
# per-uid process limit covers the sandbox, the pids cgroup each handler)
for i in 1 2 3 4 5 6; do in_lab "$CLIENT" -t 20000 127.0.0.1:7108 >"$T/many.$i" 2>&1 & done
wait_for 15 sh -c "[ \$(cat $T/many.* | grep -c done) = 6 ]" || fail "many: $(cat $T/many.*)"
assert_eq "$(sb_stat many .refused.spawn_failed)" 0 "spawn failures with many handlers"

broker_stop
assert_clean_lab
echo "limits: ok"
