#!/usr/bin/env bash
# cgroup v2: where the broker places itself and its handlers, the limit
# files each handler's cgroup gets, the controllers enabled, an OOM kill by
# memory.max, a fork loop stopped by pids.max, a CPU hog throttled by
# cpu.max, cgroup.kill at a timeout (it kills a process of the handler's
# cgroup that is outside its pid namespace), the per-handler figures in
# status, the exit line and the metrics; nothing left after a stop and after
# SIGKILL + restart; and the refusals at start: a cgroup shared with another
# process, a controller not delegated, a read-only cgroup file system; a
# handler born in its cgroup (clone3), or where clone3 is refused, entering
# it through cgroup.procs.
#
# Needs a cgroup v2-only machine: make test-cgroup2 runs it in a VM, in the
# root cgroup and in a service-like cgroup (PST_CG_PLACEMENT). On a v1 host
# it is skipped, saying so, unless PST_REQUIRE_CGROUP2 is set (the VM tier
# sets it: there a skip is a failure).
. "$(dirname "$0")/lib.sh"
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
	[ -z "${PST_REQUIRE_CGROUP2:-}" ] || fail "cgroup v2 required, but /sys/fs/cgroup is not a cgroup2 mount"
	skip "needs a cgroup v2-only machine (make test-cgroup2 runs it in a VM)"
fi
. "$(dirname "$0")/broker_lib.sh"

cgfile() { cat "$1" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
# the v2 cgroup directory of a pid, from the host's view
v2dir() { local p; p=$(sed -n 's/^0:://p' "/proc/$1/cgroup"); echo "/sys/fs/cgroup${p%/}"; }
# the handler pid of a sandbox's first running handler
hpid_of() { status_json | jq -r --arg n "$1" '.sandboxes[] | select(.name == $n) | .handlers[0].pid'; }
metric() { # metric NAME SANDBOX: its value at the metrics endpoint
	in_lab "$CLIENT" 127.0.0.1:9201 $'GET /metrics HTTP/1.0\r\n\r\n' |
		awk -v k="$1{sandbox=\"$2\"}" '$1 == k {print $2}'
}
# rmdir a cgroup tree bottom-up (for this test's own cgroups)
cg_rmtree() { [ -d "$1" ] && find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; true; }

broker_json '{
  "probe": { "trigger": { "listen": ["127.0.0.1:7201"] },
	     "exec": ["/bin/sh", "-c", "echo up; cat /proc/self/cgroup; sleep 30"],
	     "filesystem": '"$FS_PROC"', "limits": { "memory": "48M", "pids": 12, "cpu": 0.5 } },
  "hog": { "trigger": { "listen": ["127.0.0.1:7202"] },
	   "exec": ["/bin/sh", "-c", "x=$(head -c 200000000 /dev/zero | tr \"\\\\0\" x); echo survived"],
	   "filesystem": '"$FS_PROC"', "limits": { "memory": "32M", "timeout": "30s" } },
  "bomb": { "trigger": { "listen": ["127.0.0.1:7203"] },
	    "exec": ["/bin/sh", "-c", "n=0; while [ $n -lt 100 ]; do sleep 30 & n=$((n+1)); echo forked=$n; done"],
	    "filesystem": '"$FS_PROC"', "limits": { "pids": 10, "timeout": "30s" } },
  "quick": { "trigger": { "listen": ["127.0.0.1:7205"] }, "exec": ["/bin/sh", "-c", "echo quick"],
	     "filesystem": '"$FS_PROC"' },
  "spin": { "trigger": { "listen": ["127.0.0.1:7204"] }, "exec": ["/bin/sh", "-c", "echo up; while :; do :; done"],
	    "filesystem": '"$FS_PROC"', "limits": { "cpu": 0.2, "timeout": "6s" } }
}' '"metrics": "127.0.0.1:9201"' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }

# ---- refusals at start, before anything is touched ----------------------
# a cgroup of this test's, with the controllers, to place brokers in
SL=/sys/fs/cgroup/$(uname_ cg).slice
mkdir "$SL" || fail "mkdir $SL"
on_exit 'cg_rmtree "$SL"'
for c in memory pids cpu; do echo "+$c" >"$SL/cgroup.subtree_control" || fail "enable $c in $SL"; done
# run_in CGROUP [ENV...]: the broker started alone in CGROUP (it must
# refuse); its output and exit status in $out and $rc
run_in() {
	local cg=$1; shift
	out=$(env "$@" sh -c 'echo $$ >"$0/cgroup.procs" && exec nsenter --net="/run/netns/$1" "$2" run "$3"' \
		"$cg" "$LAB" "$POSTERN" "$T/policy.json" 2>&1)
	rc=$?
}
untouched() { # untouched CGROUP: the broker left CGROUP as it found it
	[ -z "$(find "$1" -mindepth 1 -type d)" ] || fail "a refused broker left cgroups: $(find "$1" -mindepth 1 -type d)"
	assert_eq "$(cgfile "$1/cgroup.subtree_control")" "" "a refused broker left controllers enabled in $1"
	assert_not_contains "$(in_lab nft list tables 2>/dev/null)" "$TABLE" "a refused broker made its table"
}

# 1. a cgroup that holds another process: refused, saying why and the fix
mkdir "$SL/shared.service"
sleep 300 &
other=$!
bg_pid "$other"
echo "$other" >"$SL/shared.service/cgroup.procs"
run_in "$SL/shared.service"
note "shared: $out"
[ "$rc" = 1 ] || fail "a broker sharing its cgroup exited $rc: $out"
assert_contains "$out" "event=start step=cgroup" "refused at start"
assert_contains "$out" "$SL/shared.service holds other processes ($other)" "names the other process"
assert_contains "$out" "Delegate=yes" "says what fixes it"
kill "$other"; wait "$other" 2>/dev/null
untouched "$SL/shared.service"

# 2. the memory controller not delegated: refused, naming the sandbox and
# the controller; the placement undone
mkdir "$SL/nodeleg.slice"
echo +pids >"$SL/nodeleg.slice/cgroup.subtree_control"
mkdir "$SL/nodeleg.slice/svc"
run_in "$SL/nodeleg.slice/svc"
note "not delegated: $out"
[ "$rc" = 1 ] || fail "a broker without the memory controller exited $rc: $out"
assert_contains "$out" 'sandbox \"probe\": cgroup: a memory limit is declared, but handlers cannot get the memory controller: not delegated to '"$SL"'/nodeleg.slice/svc (its cgroup.controllers: \"pids\")' "names the sandbox and the controller"
assert_contains "$out" "Delegate=yes" "says what fixes it"
untouched "$SL/nodeleg.slice/svc"

# 3. a read-only cgroup file system (a container without a writable one)
mkdir "$SL/ro.service"
# (moved there first, then the cgroup file system remounted read-only in a
# mount namespace of its own)
out=$(sh -c 'echo $$ >"$0/cgroup.procs" && exec unshare -m sh -c "mount -o remount,bind,ro /sys/fs/cgroup && exec nsenter --net=/run/netns/$1 $2 run $3"' \
	"$SL/ro.service" "$LAB" "$POSTERN" "$T/policy.json" 2>&1)
rc=$?
note "read-only: $out"
[ "$rc" = 1 ] || fail "a broker on a read-only cgroupfs exited $rc: $out"
assert_contains "$out" "Read-only file system" "says the cgroup file system is read-only"
assert_contains "$out" "event=start step=cgroup" "refused at start"
untouched "$SL/ro.service"

# ---- placement ------------------------------------------------------------
# the shipped unit asks systemd for what the service placement emulates:
# a cgroup of the broker's own, with its controllers delegated
unit=$ROOT/examples/systemd/postern.service
grep -qx 'Delegate=yes' "$unit" || fail "$unit does not delegate its cgroup"
grep -qx 'Type=notify' "$unit" || fail "$unit: not Type=notify"
broker_start "$T/policy.json"
line=$(grep 'event=cgroup ' "$BROKER_LOG")
note "$line"
assert_contains "$line" "mode=v2" "cgroup v2 in use"
assert_contains "$line" "controllers=memory,pids,cpu" "handlers get memory, pids and cpu"
assert_contains "$line" "kill=yes" "cgroup.kill"
base=$(status_json | jq -r .cgroup.base)
leaf=$(status_json | jq -r .cgroup.leaf)
own=$(dirname "$base")
assert_eq "$(basename "$base")" "$TABLE" "handler cgroups under OWN/TABLE"
if [ -z "$leaf" ]; then
	note "placement: root cgroup"
	assert_eq "$own" /sys/fs/cgroup "the broker's cgroup is the root"
	assert_eq "$(v2dir "$BROKER_PID")" "/sys/fs/cgroup" "the broker stays in the root cgroup"
else
	note "placement: $own, leaf $leaf"
	assert_eq "$leaf" "$base/_broker" "the broker's leaf"
	assert_eq "$(v2dir "$BROKER_PID")" "$leaf" "the broker moved itself into its leaf"
	assert_eq "$(cgfile "$own/cgroup.procs")" "" "its cgroup holds no process now"
	for c in memory pids cpu; do
		grep -qw "$c" "$own/cgroup.subtree_control" || fail "$c not enabled in $own"
	done
fi
for c in memory pids cpu; do
	grep -qw "$c" "$base/cgroup.subtree_control" || fail "$c not enabled in $base"
	grep -qw "$c" "$base/probe/cgroup.subtree_control" || fail "$c not enabled in $base/probe"
done

# ---- a handler's cgroup: path, limits, figures -----------------------------
in_lab "$CLIENT" -t 20000 127.0.0.1:7201 >"$T/probe" 2>&1 &
wait_for 5 grep -q up "$T/probe" || fail "probe did not start"
hpid=$(hpid_of probe)
hcg=$(v2dir "$hpid")
note "handler $hpid in $hcg"
case $hcg in "$base"/probe/h[0-9]*) ;; *) fail "handler cgroup $hcg not under $base/probe/hN" ;; esac
wait_for 5 grep -qx '0::/' "$T/probe" || fail "the handler does not see its cgroup namespace's root: $(cat "$T/probe")"
assert_eq "$(cgfile "$hcg/memory.max")" $((48 << 20)) "memory.max"
[ ! -e "$hcg/memory.swap.max" ] || assert_eq "$(cgfile "$hcg/memory.swap.max")" 0 "memory.swap.max"
assert_eq "$(cgfile "$hcg/memory.oom.group")" 1 "memory.oom.group"
assert_eq "$(cgfile "$hcg/pids.max")" 12 "pids.max"
assert_eq "$(cgfile "$hcg/cpu.max")" "50000 100000" "cpu.max"
h=$(status_json | jq -c '.sandboxes[] | select(.name == "probe") | .handlers[0]')
note "status: $h"
[ "$(jq .memory_bytes <<<"$h")" -gt 0 ] || fail "no memory figure for a running handler: $h"
[ "$(jq .pids <<<"$h")" -ge 2 ] || fail "pids figure: $h"
[ "$(jq .cpu_us <<<"$h")" != null ] || fail "no cpu figure: $h"
kill -KILL "$hpid"
wait_for 10 grep -q 'event=exit sandbox=probe ' "$BROKER_LOG" || fail "no exit line for probe"
line=$(grep 'event=exit sandbox=probe ' "$BROKER_LOG")
assert_contains "$line" "cpu_ms=" "CPU time in the exit line"
assert_contains "$line" "mem_peak=" "memory peak in the exit line"
wait_for 5 sh -c "[ ! -d '$hcg' ]" || fail "handler cgroup $hcg not removed"

# ---- born in its cgroup ------------------------------------------------------
# the spawn clones the child into its handler cgroup (clone3 with
# CLONE_INTO_CGROUP): no cgroup.procs is written, which takes the kernel's
# global cgroup_threadgroup_rwsem for writing, holding off every fork and
# exit on the machine meanwhile
spawn_strace 7205 "$T/spawn.strace"
grep -q 'clone3(.*CLONE_INTO_CGROUP' "$T/spawn.strace" ||
	fail "no clone3 with CLONE_INTO_CGROUP: $(grep -E 'clone' "$T/spawn.strace" | head -5)"
! grep -q 'cgroup.procs' "$T/spawn.strace" ||
	fail "a spawn opened cgroup.procs: $(grep 'cgroup.procs' "$T/spawn.strace" | head -3)"
wait_for 5 grep -q 'event=exit sandbox=quick .*status=0' "$BROKER_LOG" || fail "the traced quick handler: $(grep 'sandbox=quick' "$BROKER_LOG" | tail -2)"

# ---- the loop never waits for a spawn --------------------------------------
# the probe sandbox's cgroup frozen: a spawn's child stops where it enters
# its handler's cgroup, before its exec, and holds the thread that spawns
# it. Meanwhile the broker answers its control socket and serves another
# sandbox at once; thawed, the held spawn completes.
echo 1 >"$base/probe/cgroup.freeze" || fail "freeze $base/probe"
in_lab "$CLIENT" -t $((60000 * PST_TIME_SCALE)) 127.0.0.1:7201 >"$T/held" 2>&1 &
held=$!
sleep 1
t0=$(date +%s%N)
status_json >/dev/null || fail "status while a spawn is held"
assert_eq "$(in_lab "$CLIENT" -t 10000 127.0.0.1:7205 "")" quick "another sandbox while a spawn is held"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "status and a request while a spawn is held: ${ms} ms"
[ "$ms" -lt $((2000 * PST_TIME_SCALE)) ] || fail "the broker took ${ms} ms to answer while a spawn was held"
grep -q up "$T/held" && fail "the held spawn ran while its cgroup was frozen"
echo 0 >"$base/probe/cgroup.freeze"
wait_for 10 grep -q up "$T/held" || fail "the held spawn did not complete once thawed"
kill -KILL "$(hpid_of probe)"
wait "$held" 2>/dev/null

# ---- memory.max: an OOM kill, counted ------------------------------------
out=$(in_lab "$CLIENT" -t 30000 127.0.0.1:7202 "" 2>&1)
assert_not_contains "$out" "survived" "memory hog contained"
wait_for 10 grep -q 'event=exit sandbox=hog .*signal=KILL' "$BROKER_LOG" || fail "hog not killed: $(grep sandbox=hog "$BROKER_LOG")"
line=$(grep 'event=exit sandbox=hog ' "$BROKER_LOG")
assert_contains "$line" "oom_kills=" "the exit line says the OOM killer killed"
[ "$(sb_stat hog .cgroup.oom_kills)" -ge 1 ] || fail "status: no OOM kill counted for hog: $(sb_stat hog .cgroup)"
[ "$(metric postern_sandbox_oom_kills_total hog)" -ge 1 ] || fail "metrics: no OOM kill counted for hog"

# ---- pids.max: a fork loop stopped ---------------------------------------
out=$(in_lab "$CLIENT" -t 30000 127.0.0.1:7203 "" 2>&1)
n=$(sed -n 's/.*forked=\([0-9]*\).*/\1/p' <<<"$out" | tail -n 1)
[ -n "$n" ] && [ "$n" -lt 10 ] || fail "pids.max 10 not enforced: last fork count '$n'"
note "fork loop stopped after $n children"

# ---- cpu.max: a CPU hog throttled; cgroup.kill at its timeout ------------
in_lab "$CLIENT" -t 30000 127.0.0.1:7204 >"$T/spin" 2>&1 &
wait_for 5 grep -q up "$T/spin" || fail "spin did not start"
spid=$(hpid_of spin)
scg=$(v2dir "$spid")
stat() { awk -v k="$1" '$1 == k {print $2}' "$scg/cpu.stat"; }
t1=$(stat nr_throttled) u1=$(stat usage_usec)
sleep 1
t2=$(stat nr_throttled) u2=$(stat usage_usec)
note "spin: nr_throttled $t1 -> $t2, usage_usec $u1 -> $u2"
[ "$t2" -gt "$t1" ] || fail "cpu.max did not throttle the hog (nr_throttled $t1 -> $t2)"
# a process of the handler's cgroup that is not in its pid namespace: only
# cgroup.kill reaches it
sleep 300 &
intruder=$!
bg_pid "$intruder"
echo "$intruder" >"$scg/cgroup.procs" || fail "could not move a process into $scg"
wait_for 15 grep -q 'event=exit sandbox=spin .*reason=timeout' "$BROKER_LOG" || fail "spin not stopped at its timeout"
wait_for 5 sh -c "! kill -0 $intruder 2>/dev/null" || fail "cgroup.kill did not kill the process in the handler's cgroup"
wait "$intruder" 2>/dev/null
wait_for 5 sh -c "[ ! -d '$scg' ]" || fail "handler cgroup $scg not removed after its timeout"

# ---- stop: nothing left under the broker's cgroup --------------------------
broker_stop
assert_clean_lab
[ ! -e "$base" ] || fail "left under the broker's cgroup after stop: $(find "$base" -type d)"
if [ -n "$leaf" ]; then
	assert_eq "$(cgfile "$own/cgroup.subtree_control")" "" "the controllers the broker enabled are off again"
fi

# ---- SIGKILL, then a restart ------------------------------------------------
: >"$BROKER_LOG"
broker_start "$T/policy.json"
in_lab "$CLIENT" -t 20000 127.0.0.1:7201 >"$T/probe" 2>&1 &
wait_for 5 grep -q up "$T/probe" || fail "probe did not start"
base=$(status_json | jq -r .cgroup.base)
kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null
BROKER_PID=
left=$(find "$base" -mindepth 1 -type d ! -name _broker | wc -l)
note "after SIGKILL: $left cgroups under $base"
[ "$left" -gt 0 ] || fail "expected leftover cgroups after SIGKILL"
: >"$BROKER_LOG"
if [ -n "$(broker_cgroup)" ]; then
	# a service: when it stops, systemd kills what is left in its cgroup
	# and removes the cgroup whole; the next broker starts in a fresh one
	broker_cg_trim
	broker_start "$T/policy.json"
else
	# in the root cgroup, the next broker removes what the killed one left
	broker_start "$T/policy.json"
	grep -q "event=cleanup cgroups_removed=$left " "$BROKER_LOG" ||
		fail "start-up clean-up of $left leftover cgroups: $(grep 'event=cleanup' "$BROKER_LOG")"
	[ -z "$(find "$base" -mindepth 1 -type d -path '*/h[0-9]*')" ] || fail "leftover handler cgroups after the restart"
fi
nbase=$(status_json | jq -r .cgroup.base)
out=$(in_lab "$CLIENT" -t 10000 127.0.0.1:7203 "" 2>&1)
assert_contains "$out" "forked=" "serving after the restart"
broker_stop
assert_clean_lab
[ ! -e "$nbase" ] || fail "left under the broker's cgroup after the restart and stop: $(find "$nbase" -type d)"
[ ! -e "$base" ] || fail "the killed broker's cgroups are still there: $(find "$base" -type d)"

# ---- where clone3 is refused (ENOSYS, as a container's seccomp profile
# makes it): the child enters its cgroup through cgroup.procs, as before
: >"$BROKER_LOG"
PST_BROKER_WRAP="$BUILD/tests/helpers/enosys clone3" broker_start "$T/policy.json"
spawn_strace 7205 "$T/fallback.strace"
grep -q 'clone3({flags=.*CLONE_INTO_CGROUP.*= -1 ENOSYS' "$T/fallback.strace" ||
	fail "clone3 into the cgroup not tried and refused: $(grep clone "$T/fallback.strace" | head -5)"
grep -q 'write([0-9]*</sys/fs/cgroup/[^>]*/quick/h[0-9]*/cgroup.procs>, "0", 1) *= 1' "$T/fallback.strace" ||
	fail "the child did not enter its cgroup through cgroup.procs: $(grep -E 'cgroup.procs|"0", 1' "$T/fallback.strace" | head -5)"
wait_for 5 grep -q 'event=exit sandbox=quick .*status=0' "$BROKER_LOG" || fail "quick without clone3: $(grep 'sandbox=quick' "$BROKER_LOG" | tail -2)"
broker_stop
assert_clean_lab
echo "cgroup v2: ok"
