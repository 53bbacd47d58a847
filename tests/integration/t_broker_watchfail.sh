#!/usr/bin/env bash
# A handler the broker cannot watch (its pidfd refused by the watch set:
# ENOSPC, as past fs.epoll.max_user_watches; tests/helpers/shim_failwatch.so
# preloaded into the broker) is killed at once rather than left running
# unwatched, and is still reaped: its timer polls the pidfd. Each request
# gets an exit line with reason=killed, no handler, pidfd or stderr pipe is
# left in the broker, the refusals are logged (throttled), the broker goes
# on serving, and it stops cleanly (leak-checked in the ASan tier).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

SHIM="$BUILD/tests/helpers/shim_failwatch.so"
[ -f "$SHIM" ] || fail "missing $SHIM: run make first"

# a handler that would run for 30 s: only the broker's kill ends it sooner
broker_json '{
  "sleeper": { "trigger": { "listen": ["127.0.0.1:7311"] },
	       "exec": ["/bin/sh", "-c", "sleep 30"], "filesystem": '"$FS_JSON"',
	       "limits": { "handlers": 4, "timeout": "60s" } }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || fail "test policy invalid"

# pidfds and pipes the broker holds (its own pidfd, libuv's pipes)
fd_kinds() {
	local f t pidfds=0 pipes=0
	for f in /proc/"$BROKER_PID"/fd/*; do
		t=$(readlink "$f" 2>/dev/null) || continue
		case "$t" in
		*pidfd*) pidfds=$((pidfds + 1)) ;;
		pipe:*) pipes=$((pipes + 1)) ;;
		esac
	done
	echo "pidfds=$pidfds pipes=$pipes"
}
children() { cat /proc/"$BROKER_PID"/task/*/children 2>/dev/null | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }

# ASan wants its runtime first among the loaded libraries; a test shim may precede it
PST_BROKER_WRAP="env LD_PRELOAD=$SHIM PST_FAILWATCH_LOG=$T/refused ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
broker_start "$T/policy.json"
before=$(fd_kinds)

N=3
start=$(date +%s)
for i in $(seq "$N"); do
	in_lab "$CLIENT" -t 10000 127.0.0.1:7311 "request $i" >/dev/null 2>&1 || true
done
wait_for 10 sh -c "[ \$(grep -c 'event=exit sandbox=sleeper' '$BROKER_LOG') -ge $N ]" ||
	fail "no exit line for each of $N unwatched handlers: $(grep 'sandbox=sleeper' "$BROKER_LOG" | tail -5)"
took=$(($(date +%s) - start))
[ "$took" -lt 15 ] || fail "the unwatched handlers took ${took}s to end: not killed at once"

assert_eq "$(wc -l <"$T/refused" 2>/dev/null)" "$N" "pidfds the shim refused"
assert_eq "$(count_log 'event=exit sandbox=sleeper .*signal=KILL reason=killed')" "$N" \
	"exit lines: killed (SIGKILL)"
# logged, and throttled: not necessarily one line per refusal
n_logged=$(count_log "event=watch sandbox=sleeper what=\"watch the handler's pidfd (it is killed)\" error=\"No space left on device\"")
[ "$n_logged" -ge 1 ] || fail "the refusal is not logged: $(grep 'event=watch' "$BROKER_LOG")"
[ "$n_logged" -le "$N" ] || fail "$n_logged watch lines for $N refusals"

wait_for 5 sh -c "[ \"\$('$POSTERN' status --json -s '$CONTROL' | jq '.sandboxes[0].active')\" = 0 ]" ||
	fail "handlers still counted active: $(status_json | jq -c '.sandboxes[0]')"
assert_eq "$(sb_stat sleeper .exits.signaled)" "$N" "status: exits by signal"
assert_eq "$(children)" "" "processes left under the broker"
assert_eq "$(fd_kinds)" "$before" "the broker's pidfds and pipes after the reaps"

# still serving (each one killed the same way), and a clean stop
in_lab "$CLIENT" -t 10000 127.0.0.1:7311 "one more" >/dev/null 2>&1 || true
wait_for 10 sh -c "[ \$(grep -c 'event=exit sandbox=sleeper' '$BROKER_LOG') -ge $((N + 1)) ]" ||
	fail "the broker stopped serving after the refusals"
broker_stop
assert_clean_lab
