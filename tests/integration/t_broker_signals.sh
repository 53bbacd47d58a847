#!/usr/bin/env bash
# Shutdown: SIGTERM waits for running handlers up to broker.grace, a second
# signal kills them at once. reuse_port lets two brokers share a port; a
# second broker refuses to take over a live control socket, and one with
# the same table refuses before it touches anything, also in another
# network namespace. A handler
# cgroup that a foreign process keeps busy is reported at the stop.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

# (the handler outlives the checks before the stop, also in the VM tier,
# where they took 50 s: its sleep follows the time scale)
broker_json '{
  "slow": { "trigger": { "listen": ["127.0.0.1:7000"] }, "exec": ["/bin/sh", "-c", "echo up; sleep '"$((30 * PST_TIME_SCALE))"'"],
	    "filesystem": '"$FS_JSON"' }
}' '"reuse_port": true' | sed 's/"grace": "3s"/"grace": "20s"/' >"$T/policy.json"
broker_start "$T/policy.json"
in_lab "$CLIENT" -t 30000 127.0.0.1:7000 >"$T/c1" 2>&1 &
wait_for 5 grep -q up "$T/c1" || fail "handler did not start"

# a second broker with another control socket shares the port (SO_REUSEPORT)
sed -e "s|$CONTROL|$T/control2.sock|" -e "s|\"table\": \"$TABLE\"|\"table\": \"${TABLE}b\"|" \
	-e "s|$STATE|$T/state2|" "$T/policy.json" >"$T/policy2.json"
run_placed nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/policy2.json" >"$T/broker2.log" 2>&1 &
B2=$!
bg_pid "$B2"
wait_for 10 grep -q 'event=start ' "$T/broker2.log" || fail "second broker with reuse_port: $(cat "$T/broker2.log")"
kill -TERM "$B2"; wait "$B2" || fail "second broker exit status"
# the same policy again: refused before anything of the table is touched
nft_before=$(in_lab nft list table inet "$TABLE" | wc -l)
links_before=$(in_lab ip -o link show | grep -c pst)
if run_placed nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/policy.json" >"$T/broker-dup.log" 2>&1; then fail "a second broker of the table started"; fi
assert_contains "$(cat "$T/broker-dup.log")" "table \\\"$TABLE\\\" is in use by another broker (pid $BROKER_PID;" "same table refused"
assert_eq "$(in_lab nft list table inet "$TABLE" | wc -l)" "$nft_before" "the first broker's table after the refusal"
assert_eq "$(in_lab ip -o link show | grep -c pst)" "$links_before" "the first broker's veths after the refusal"
# also from another network namespace: the table names the broker's
# cgroups, which are the host's
LAB2=$(uname_ lab2)
netns_new "$LAB2"
sed -e "s|$CONTROL|$T/control4.sock|" -e "s|$STATE|$T/state4|" "$T/policy.json" >"$T/policy4.json"
if run_placed nsenter --net=/run/netns/"$LAB2" "$POSTERN" run "$T/policy4.json" >"$T/broker4.log" 2>&1; then fail "a second broker of the table started in another namespace"; fi
assert_contains "$(cat "$T/broker4.log")" "is in use by another broker (pid $BROKER_PID" "same table, other namespace"
# a third one on the live control socket of the first refuses to start
sed -e "s|\"table\": \"$TABLE\"|\"table\": \"${TABLE}c\"|" -e "s|$STATE|$T/state3|" "$T/policy.json" >"$T/policy3.json"
if run_placed nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/policy3.json" >"$T/broker3.log" 2>&1; then fail "third broker started"; fi
assert_contains "$(cat "$T/broker3.log")" "another broker answers on this control socket" "control socket takeover"

# something from outside keeps the handler's cgroup busy after the
# handler: its cgroup cannot go, and the stop says so. On cgroup v1 a
# process moved into the handler's memory cgroup outlives the handler; on
# v2 cgroup.kill ends such a process with the handler (checked below), so a
# cgroup made below the handler's keeps it busy
hpid=$(grep 'event=spawn sandbox=slow ' "$BROKER_LOG" | head -1 | sed 's/.* pid=\([0-9]*\).*/\1/')
hcg=$(pid_cgroups "$hpid" memory) || fail "no memory cgroup of the handler"
assert_contains "$hcg" "/$TABLE/slow/h" "handler's memory cgroup"
sleep 30 &
intruder=$!
bg_pid "$intruder"
echo "$intruder" >"$hcg/cgroup.procs" || fail "could not move a process into $hcg"
if cg_is_v2; then
	mkdir "$hcg/foreign" || fail "mkdir $hcg/foreign"
	on_exit 'rmdir "$hcg/foreign" "$hcg" 2>/dev/null; true'
	inside=none
else
	inside=$intruder
fi

start=$(date +%s%N)
kill -TERM "$BROKER_PID"
wait_for 5 grep -q 'event=stop signal=SIGTERM handlers=1 grace_ms=20000' "$BROKER_LOG" || fail "no stop line"
sleep 0.5
kill -0 "$BROKER_PID" || fail "broker exited before its grace period with a handler running"
# during the grace period nobody listens any more: new clients are refused
# by the kernel, not left in a backlog that nobody serves
out=$(in_lab "$CLIENT" -t 2000 127.0.0.1:7000 x 2>&1) && fail "a connection was accepted during the grace period: $out"
assert_contains "$out" "Connection refused" "listener closed at SIGTERM"
kill -TERM "$BROKER_PID"	# the second signal cuts the grace short
wait_for 5 sh -c "! kill -0 $BROKER_PID 2>/dev/null" || fail "second signal did not end the grace period"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -lt $((5000 * PST_TIME_SCALE)) ] || fail "shutdown took ${ms}ms"
wait "$BROKER_PID"; rc=$?
assert_eq "$rc" 0 "exit status after a shortened grace"
BROKER_PID=
grep -q 'event=exit sandbox=slow .*signal=KILL.*reason=shutdown' "$BROKER_LOG" || fail "no shutdown exit line"
warn=$(grep 'event=cleanup ' "$BROKER_LOG") || fail "no cleanup warning for the busy cgroup"
for k in level=warn sandbox=slow "cgroup rmdir $hcg: Device or resource busy" "processes in it: $inside"; do
	assert_contains "$warn" "$k" "cleanup warning"
done
if cg_is_v2; then
	# cgroup.kill at the stop ended the process in the handler's cgroup
	wait_for 5 sh -c "! kill -0 $intruder 2>/dev/null" || fail "a process in the handler's cgroup survived the stop"
	rmdir "$hcg/foreign"
fi
kill "$intruder" 2>/dev/null; wait "$intruder" 2>/dev/null
cg_cleanup
assert_clean_lab
echo "signals and reuse_port: ok"
