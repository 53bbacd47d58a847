#!/usr/bin/env bash
# The control verbs: `postern reload` prints exactly what changed (sandboxes
# added, removed, changed; listeners opened, closed) or every error of a
# policy it refuses (the old one still serving), also while SIGHUPs come;
# `kill PID` kills a handler serving a request with its children and
# refuses every pid that is not one (nothing signalled); `postern status`
# finds the socket from -c and -s; the hints a non-root caller and a
# missing broker get are true; `postern stop` stops the broker cleanly and
# its stop line counts serving and pre-warmed handlers apart. A handler that
# sees the control socket (its directory bound in) cannot use it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

sb() { # NAME PORT [EXTRA_KEYS]: an echo sandbox
	echo '"'"$1"'": { "trigger": { "listen": ["127.0.0.1:'"$2"'"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"${3:+, $3}' }'
}
# a handler with a child, both sleeping: the client waits for them
slow='"slow": { "trigger": { "listen": ["127.0.0.1:7002"] }, "exec": ["/bin/sh", "-c", "sleep 120 & echo up; wait; echo done"], "filesystem": '"$FS_JSON"' }'
warm='"warm": { "trigger": { "listen": ["127.0.0.1:7006"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"', "prewarm": 2 }'
policy() { broker_json "{ $1 }" >"$T/policy.json"; }
policy "$(sb echo 7000), $slow, $(sb gone 7003), $(sb chg 7004)"
broker_start "$T/policy.json"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 a)" a "echo before any reload"

# ---- status: -s and -c (broker.control of the policy) ----------------------
out=$("$POSTERN" status -s "$CONTROL") || fail "status -s: $out"
assert_contains "$out" "gone" "status -s lists the sandboxes"
out=$("$POSTERN" status -c "$T/policy.json") || fail "status -c: $out"
assert_contains "$out" "chg" "status -c lists the sandboxes"
assert_eq "$("$POSTERN" status --json -c "$T/policy.json" | jq -r .pid)" "$BROKER_PID" "status -c asks this broker"
rc=0; "$POSTERN" status -s "$CONTROL" -c "$T/policy.json" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "status with both -s and -c: bad usage"

# ---- reload: nothing changed, then exactly what changed ---------------------
out=$("$POSTERN" reload -c "$T/policy.json" 2>&1) || fail "reload without changes: exit $?: $out"
assert_eq "$out" "no change" "reload of the same policy"
policy "$(sb echo 7000), $slow, $(sb chg 7004 '"env": { "X": "1" }'), $(sb added 7005)"
out=$("$POSTERN" reload -c "$T/policy.json" 2>"$T/reload.err") || fail "reload: exit $?: $out $(cat "$T/reload.err")"
assert_eq "$out" "sandbox added: added
sandbox removed: gone
sandbox changed: chg
listener opened: 127.0.0.1:7005 (added)
listener closed: 127.0.0.1:7003 (gone)" "the changes a reload prints"
assert_eq "$(cat "$T/reload.err")" "" "errors of a good reload"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7005 b)" b "the added sandbox serves"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 c)" c "echo after the reload"
if in_lab "$CLIENT" -t 2000 127.0.0.1:7003 x >/dev/null 2>&1; then fail "the removed sandbox still answers"; fi
# the JSON answer
js=$("$POSTERN" reload --json -s "$CONTROL") || fail "reload --json: $js"
assert_eq "$(jq -c . <<<"$js")" '{"sandboxes":{"added":[],"removed":[],"changed":[]},"listeners":{"opened":[],"closed":[]},"errors":[],"applied":true}' "reload --json"

# ---- an invalid policy: exit 1, every error, the old policy serves ----------
cp "$T/policy.json" "$T/good.json"
broker_json '{ "Bad Name": {}, "echo": { "trigger": { "listen": ["127.0.0.1:7000"] }, "exec": ["relative"], "filesystem": [] }, "x": { "exec": ["/bin/true"] } }' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >"$T/check.out" 2>&1 && fail "check passed the bad policy"
nerr=$(grep -c "^$T/policy.json: sandboxes" "$T/check.out")
[ "$nerr" -ge 3 ] || fail "want 3 or more errors from check: $(cat "$T/check.out")"
rc=0
"$POSTERN" reload -c "$T/good.json" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
assert_eq "$rc" 1 "exit code of a refused reload"
assert_eq "$(cat "$T/bad.out")" "" "a refused reload prints no change"
while read -r line; do
	grep -qxF -- "error: $line" "$T/bad.err" || fail "error '$line' of check not printed by reload: $(cat "$T/bad.err")"
done < <(grep "^$T/policy.json: sandboxes" "$T/check.out")
assert_contains "$(tail -n 1 "$T/bad.err")" "reload refused: the broker keeps its policy" "refusal line"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 d)" d "the old policy serves after a refused reload"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7005 e)" e "the old policy's added sandbox serves"

# what only the running broker can refuse: a key that cannot change
sed "s/\"table\": \"$TABLE\"/\"table\": \"${TABLE}x\"/" "$T/good.json" >"$T/policy.json"
rc=0
"$POSTERN" reload -s "$CONTROL" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
assert_eq "$rc" 1 "exit code of a reload that changes broker.table"
assert_line "$(cat "$T/bad.err")" "error: $T/policy.json: broker: broker.table, broker.state_dir, broker.control and broker.metrics cannot change on reload; restart the broker" "broker.table change refused"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 g)" g "the old policy serves after the broker.table refusal"

# ---- reloads while SIGHUPs come: each one answered, none lost ---------------
cp "$T/good.json" "$T/policy.json"
before=$(count_log 'event=reloaded')
pids=()
for i in 1 2 3 4; do
	"$POSTERN" reload -s "$CONTROL" >"$T/conc$i.out" 2>&1 &
	pids+=($!)
	kill -HUP "$BROKER_PID"
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || fail "concurrent reload $i: $(cat "$T/conc$i.out")"
	assert_eq "$(cat "$T/conc$i.out")" "no change" "concurrent reload $i"
done
# each request is a reload of its own; SIGHUPs that come while one is
# pending merge into it (the kernel's, and libuv's): at least one of them
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') -ge $((before + 5)) ]" ||
	fail "5 or more reloads wanted, $(($(count_log 'event=reloaded') - before)) done"
assert_eq "$(count_log 'event=reload_failed')" 2 "failed reloads (the invalid policy, the broker.table change)"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 f)" f "echo after the concurrent reloads"

# clients that go away before their reload's answer: the reloads run, the
# broker stays
before=$(count_log 'event=reloaded')
for i in 1 2 3; do "$CLIENT" -t 1 "unix:$CONTROL" $'reload\n' >/dev/null 2>&1 || true; done
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') -ge $((before + 3)) ]" || fail "reloads of clients that went away"
kill -0 "$BROKER_PID" || fail "the broker died of clients that went away"
assert_eq "$("$POSTERN" reload -s "$CONTROL")" "no change" "reload after clients that went away"

# ---- kill PID ---------------------------------------------------------------
ctl() { "$CLIENT" -t 5000 "unix:$CONTROL" "$1"$'\n'; }
in_lab "$CLIENT" -t 60000 127.0.0.1:7002 >"$T/slow.out" 2>&1 &
slow_client=$!
bg_pid "$slow_client"
wait_for 5 grep -q up "$T/slow.out" || fail "slow handler did not start"
hpid=$(sb_stat slow '.handlers[0].pid')
[ -n "$hpid" ] && [ "$hpid" != null ] || fail "no pid of the slow handler in status"
hcg=$(pid_cgroups "$hpid" pids | head -1) || fail "no cgroup of the slow handler"
procs=$(cat "$hcg/cgroup.procs")
[ "$(wc -w <<<"$procs")" -ge 2 ] || fail "the handler and its child, wanted in $hcg: $procs"

# pids that are not handlers: refused, nothing signalled
sleep 120 &
bystander=$!
bg_pid "$bystander"
for p in "$BROKER_PID" 1 $$ "$bystander" 0 -1 "$hpid " abc 99999999999; do
	ans=$(ctl "kill $p") || fail "kill $p: no answer"
	assert_eq "$(jq -r 'has("error")' <<<"$ans")" true "kill $p refused: $ans"
	if jq -e 'has("killed")' <<<"$ans" >/dev/null; then fail "kill $p: $ans"; fi
done
assert_contains "$(ctl "kill $BROKER_PID")" "is not a handler of this broker; nothing was signalled" "refusal text"
kill -0 "$BROKER_PID" || fail "the broker was signalled"
kill -0 "$bystander" || fail "the bystander was signalled"
kill -0 "$hpid" || fail "the handler was signalled by a refused request"
assert_eq "$(sb_stat slow .active)" 1 "the handler after the refused kills"

ans=$(ctl "kill $hpid")
assert_eq "$(jq -c . <<<"$ans")" "{\"killed\":$hpid,\"sandbox\":\"slow\"}" "kill of the handler"
wait_for 5 sh -c "! kill -0 $slow_client 2>/dev/null" || fail "the client's connection did not end"
assert_not_contains "$(cat "$T/slow.out")" done "the handler finished instead of being killed"
for p in $procs; do
	wait_for 5 sh -c "! kill -0 $p 2>/dev/null" || fail "process $p of the killed handler is alive"
done
wait_for 5 grep -q "event=exit sandbox=slow pid=$hpid .*signal=KILL.* reason=killed" "$BROKER_LOG" ||
	fail "no exit line with reason=killed: $(grep 'event=exit sandbox=slow' "$BROKER_LOG")"
grep -q "event=kill sandbox=slow pid=$hpid .*by=control client_pid=" "$BROKER_LOG" || fail "no kill line"
assert_contains "$(ctl "kill $hpid")" "is not a handler of this broker" "kill of a reaped handler"

# ---- hints: non-root, no broker -------------------------------------------------
for verb in status reload stop; do
	rc=0
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$POSTERN" $verb -s "$CONTROL" 2>&1) || rc=$?
	[ "$rc" != 0 ] || fail "$verb as nobody succeeded: $out"
	assert_contains "$out" "the control socket is root-only; run as root" "$verb hint for a non-root caller"
	rc=0
	out=$("$POSTERN" $verb -s "$T/none.sock" 2>&1) || rc=$?
	assert_contains "$out" "no broker at $T/none.sock; pass -s or -c (is postern running?)" "$verb hint without a broker"
	[ $verb = status ] && want=1 || want=2
	assert_eq "$rc" "$want" "$verb exit code without a broker"
done
kill -0 "$BROKER_PID" || fail "a refused stop stopped the broker"
rc=0; "$POSTERN" reload -s "$CONTROL" extra >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "reload with a stray argument"

# ---- a handler that can see the control socket cannot use it ---------------
probe_fs=$(sed 's|\]$|, { "bind": "'"$T"'", "to": "/ctl" } ]|' <<<"$FS_JSON")
probe='"probe": { "trigger": { "listen": ["127.0.0.1:7007"] }, "exec": ["/opt/helpers/pst-client", "-t", "3000", "unix:/ctl/control.sock", "stop\n"], "filesystem": '"$probe_fs"' }'
policy "$(sb echo 7000), $slow, $warm, $probe"
out=$("$POSTERN" reload -c "$T/policy.json" 2>&1) || fail "reload to the probe policy: $out"
in_lab "$CLIENT" -t 5000 127.0.0.1:7007 x >/dev/null 2>&1 || true
wait_for 5 grep -q 'event=exit sandbox=probe ' "$BROKER_LOG" || fail "the probe did not end"
grep -q 'event=stderr sandbox=probe .*connect unix:/ctl/control.sock: Permission denied' "$BROKER_LOG" ||
	fail "the probe's connect: $(grep 'sandbox=probe' "$BROKER_LOG")"
if grep -q 'event=stop' "$BROKER_LOG"; then fail "a handler stopped the broker"; fi
kill -0 "$BROKER_PID" || fail "the broker is gone after the probe"

# ---- stop: serving and pre-warmed handlers counted apart, a clean end ----------
policy "$(sb echo 7000), $slow, $warm"
out=$("$POSTERN" reload -c "$T/policy.json" 2>&1) || fail "reload to the stop policy: $out"
wait_for 10 sh -c "[ \"\$(\"$POSTERN\" status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"warm\") | .prewarm.ready')\" = 2 ]" ||
	fail "pre-warmed handlers not ready: $(sb_stat warm .prewarm)"
# a pre-warmed handler serves no request: refused, not signalled
wpid=$(sb_stat warm '.prewarm.pids[0]')
assert_contains "$(ctl "kill $wpid")" "is a pre-warmed handler of sandbox warm, not serving a request; nothing was signalled" "kill of a pre-warmed handler"
kill -0 "$wpid" || fail "the pre-warmed handler was signalled"
assert_eq "$(sb_stat warm .prewarm.ready)" 2 "pre-warmed handlers after the refused kill"
in_lab "$CLIENT" -t 60000 127.0.0.1:7002 >"$T/slow2.out" 2>&1 &
bg_pid $!
wait_for 5 grep -q up "$T/slow2.out" || fail "second slow handler did not start"
# -t 0: asked, not waited for; the serving handler holds the broker in its
# grace period (3 s)
out=$("$POSTERN" stop -t 0 -c "$T/policy.json" 2>&1) || fail "stop -t 0: exit $?: $out"
assert_eq "$out" "postern stop: the broker at $CONTROL is stopping (grace 3000 ms)" "stop -t 0"
grep -Eq 'event=stop by=control handlers=[0-9]+ grace_ms=3000 serving=1 prewarmed=2' "$BROKER_LOG" ||
	fail "stop line: $(grep 'event=stop' "$BROKER_LOG")"
kill -0 "$BROKER_PID" || fail "the broker did not wait for its serving handler"
if out=$("$POSTERN" reload -s "$CONTROL" 2>&1); then fail "a stopping broker reloaded: $out"; fi
assert_contains "$out" "the broker is stopping: no reload" "reload while stopping"
# asked again: the grace is cut short, and this time it waits
out=$("$POSTERN" stop -c "$T/policy.json" 2>&1) || fail "stop: exit $?: $out"
assert_contains "$out" "is stopping already; its grace period is cut short" "second stop"
assert_contains "$out" "postern stop: stopped" "stop says it stopped"
grep -q 'event=stop by=control grace="cut short"' "$BROKER_LOG" || fail "no cut-short line: $(grep 'event=stop' "$BROKER_LOG")"
grep -q 'event=exit sandbox=slow .*reason=shutdown' "$BROKER_LOG" || fail "the serving handler was not killed at the second stop"
[ ! -e "$CONTROL" ] || fail "control socket left"
wait_for 10 sh -c "! kill -0 $BROKER_PID 2>/dev/null" || fail "broker did not exit"
rc=0; wait "$BROKER_PID" || rc=$?
assert_eq "$rc" 0 "broker exit code after stop"
BROKER_PID=
assert_clean_lab
echo "ok"
