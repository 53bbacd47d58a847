#!/usr/bin/env bash
# Handler cgroups reused: a reaped handler's empty cgroup serves the next
# request of its sandbox (one after another, handlers 1: the same cgroup),
# and what the next handler reads of it is its own (CPU time, memory peak,
# OOM kills); a hostile handler that burns CPU, exhausts its memory (OOM
# kill) or leaves its tmpfs full does not leave the next request short or
# its figures wrong. On cgroup v2, where a cgroup cannot be reused
# (memory.peak and cpu.stat cannot be reset), every request gets a new one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

FS='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
      { "symlink": "/lib64", "target": "usr/lib64" },
      { "bind": "'"$BUILD"'/tests/helpers", "to": "/opt/helpers" }, { "tmpfs": "/tmp", "size": "56M" },
      { "bind": "'"$T"'/data", "to": "/data", "mode": "rw" } ]'
mkdir -m 777 "$T/data"
broker_json '{
  "t": { "trigger": { "listen": ["127.0.0.1:7400"] }, "exec": ["/opt/helpers/cg-tenant"],
	 "filesystem": '"$FS"', "limits": { "handlers": 1, "memory": "64M", "timeout": "'"$((20 * PST_TIME_SCALE))"'s" } }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"

# whether reuse applies here: not on v2
reuse=1
if cg_is_v2; then reuse=0; fi

n_exits() { grep -c 'event=exit ' "$BROKER_LOG"; }
# req CMD: one request, its answer on stdout; waits for its exit line
req() {
	local before; before=$(n_exits)
	in_lab "$CLIENT" -t $((20000 * PST_TIME_SCALE)) 127.0.0.1:7400 "$1"
	wait_for 10 sh -c "[ \$(grep -c 'event=exit ' '$BROKER_LOG') -gt $before ]" || fail "no exit line after '$1'"
}
last_exit() { grep 'event=exit ' "$BROKER_LOG" | tail -n 1; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
# the memory cgroup of a running handler of t (v1: the memory line; v2: 0::)
held_cgroup() {
	local before pid cg
	before=$(grep -c 'event=spawn ' "$BROKER_LOG")
	# (held long enough to be looked at, also in the VM tier)
	in_lab "$CLIENT" -t $((20000 * PST_TIME_SCALE)) 127.0.0.1:7400 "hold $((1500 * PST_TIME_SCALE))" >"$T/hold.out" &
	local c=$!
	wait_for 10 sh -c "[ \$(grep -c 'event=spawn ' '$BROKER_LOG') -gt $before ]" || fail "no spawn for hold"
	pid=$(grep 'event=spawn ' "$BROKER_LOG" | tail -n 1 | sed -n 's/.* pid=\([0-9]*\).*/\1/p')
	if cg_is_v2; then cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup"); else cg=$(sed -n 's/^[0-9]*:memory://p' "/proc/$pid/cgroup"); fi
	wait "$c"
	wait_for 10 sh -c "grep 'event=exit ' '$BROKER_LOG' | grep -q 'pid=$pid '" || fail "hold $pid did not exit"
	echo "$cg"
}

# 1. one after another: the same cgroup (or, without reuse, a new one)
a=$(held_cgroup); b=$(held_cgroup)
[ -n "$a" ] && [ -n "$b" ] || fail "no handler cgroup seen ($a, $b)"
assert_contains "$a" "/t/h" "a handler cgroup of t"
if [ $reuse = 1 ]; then
	assert_eq "$b" "$a" "the next request reuses the reaped handler's cgroup"
else
	[ "$b" != "$a" ] || fail "cgroup v2 with memory limits: a cgroup reused ($a)"
fi

# 2. CPU: a handler burns 400 ms (times the scale); the next one's figure
# is its own. Charged the burn, it would be at least the burn's figure;
# its own is a small request's (~10 ms here, 100-400 ms in the emulated
# VM): half the burn tells them apart.
burn=$((400 * PST_TIME_SCALE))
assert_eq "$(req "burn $burn")" "done burn $burn" "burn"
burned=$(field cpu_ms "$(last_exit)")
[ "${burned%.*}" -ge $((burn * 3 / 4)) ] || fail "the burning handler's CPU time: $burned ms"
assert_eq "$(req 'alloc 1')" "done alloc 1" "a small request after it"
small=$(field cpu_ms "$(last_exit)")
[ "${small%.*}" -lt $((${burned%.*} / 2)) ] || fail "the next handler is charged the previous one's CPU: $small ms (it burned $burned)"

# 3. memory: a handler with a 40 MiB peak; the next one's peak is its own
assert_eq "$(req 'alloc 40')" "done alloc 40" "a big request"
big=$(field mem_peak "$(last_exit)")
[ "$big" -ge $((40 << 20)) ] || fail "the big request's peak: $big"
assert_eq "$(req 'alloc 1')" "done alloc 1" "a small request after it"
peak=$(field mem_peak "$(last_exit)")
[ "$peak" -lt $((24 << 20)) ] || fail "the next handler's memory peak is the previous one's: $peak"
# a handler that leaves 24 MiB of page cache charged (a file it wrote to
# a host directory): the next one's peak does not start there
assert_eq "$(req 'cache 24')" "done cache 24" "page cache left behind"
assert_eq "$(req 'alloc 1')" "done alloc 1" "a small request after it"
peak=$(field mem_peak "$(last_exit)")
[ "$peak" -lt $((16 << 20)) ] || fail "the next handler starts with the previous one's page cache: peak $peak"

# an OOM-killed handler; the next one gets neither its OOM kill nor its
# peak
req 'alloc 200' >/dev/null
line=$(last_exit)
assert_contains "$line" "oom_kills=" "the hog was OOM-killed: $line"
# (the kernel may count more than one kill for it: it can run out again
# before the first kill takes effect)
hog_kills=$(field oom_kills "$line")
assert_eq "$(req 'alloc 1')" "done alloc 1" "a small request after the hog"
line=$(last_exit)
assert_not_contains "$line" "oom_kills=" "the next handler inherits no OOM kill: $line"
peak=$(field mem_peak "$line")
[ -n "$peak" ] && [ "$peak" -lt $((24 << 20)) ] || fail "the next handler's memory peak is the hog's: $peak"

# 4. a handler leaves 48 MiB in its tmpfs (a limit of 64M): the next one
# still gets 40 MiB
assert_eq "$(req 'fill 48')" "done fill 48" "fill the tmpfs"
assert_eq "$(req 'alloc 40')" "done alloc 40" "the next request is not left short of memory"
line=$(last_exit)
assert_contains "$line" "status=0" "the next handler exited normally: $line"
assert_not_contains "$line" "oom_kills=" "no OOM kill after a full tmpfs: $line"

# 5. a process put into a running handler's cgroups from outside (root
# can): it outlives the handler, so that cgroup serves nobody else
if [ $reuse = 1 ]; then
	sleep 60 & intruder=$!
	bg_pid $intruder
	before=$(grep -c 'event=spawn ' "$BROKER_LOG")
	in_lab "$CLIENT" -t $((20000 * PST_TIME_SCALE)) 127.0.0.1:7400 "hold $((1500 * PST_TIME_SCALE))" >/dev/null &
	c=$!
	wait_for 10 sh -c "[ \$(grep -c 'event=spawn ' '$BROKER_LOG') -gt $before ]" || fail "no spawn for hold"
	pid=$(grep 'event=spawn ' "$BROKER_LOG" | tail -n 1 | sed -n 's/.* pid=\([0-9]*\).*/\1/p')
	taken=$(sed -n 's/^[0-9]*:memory://p' "/proc/$pid/cgroup")
	# every v1 hierarchy the handler is in (memory, pids, cpuacct ...)
	while IFS=: read -r _ ctrls path; do
		case $path in */t/h*) ;; *) continue ;; esac
		d=$(awk -v c="${ctrls#name=}" '$9 == "cgroup" && ("," $NF ",") ~ ("," c ",") { print $5; exit }' /proc/self/mountinfo)
		[ -n "$d" ] && echo "$intruder" >"$d$path/cgroup.procs"
	done <"/proc/$pid/cgroup"
	grep -q "$taken" "/proc/$intruder/cgroup" || fail "the intruder did not get into $taken"
	wait "$c"
	wait_for 10 sh -c "grep 'event=exit ' '$BROKER_LOG' | grep -q 'pid=$pid '" || fail "hold $pid did not exit"
	next=$(held_cgroup)
	[ "$next" != "$taken" ] || fail "a cgroup with a process in it was reused: $next"
	kill "$intruder"; wait "$intruder" 2>/dev/null
fi

# 6. a handler enters its v1 cgroups through "tasks" (itself, a single
# thread, with "0"), not cgroup.procs, which takes the kernel's global
# cgroup_threadgroup_rwsem for writing, holding off every fork and exit on
# the machine meanwhile (v2: t_cgroup2, clone3 into the cgroup)
if [ $reuse = 1 ]; then
	spawn_strace 7400 "$T/spawn.strace" 'alloc 1'
	enters=$(grep 'write([0-9]*</sys/fs/cgroup/[^>]*/t/h[0-9]*/[a-z.]*>, "0", 1)' "$T/spawn.strace")
	[ -n "$enters" ] || fail "no write of \"0\" into the handler's cgroups: $(grep 'write(' "$T/spawn.strace" | head -5)"
	assert_not_contains "$enters" "cgroup.procs>" "a handler entered its cgroup through cgroup.procs"
	[ "$(grep -c '/tasks>' <<<"$enters")" = "$(wc -l <<<"$enters")" ] || fail "entered through: $enters"
	[ "$(wc -l <<<"$enters")" -ge 2 ] || fail "one cgroup hierarchy entered: $enters"
fi

# the sandbox's totals: the hog's OOM kills, counted once
assert_eq "$(sb_stat t .cgroup.oom_kills)" "$hog_kills" "status: the hog's OOM kills, nobody else's"
broker_stop TERM
assert_clean_lab

# 7. the handler cgroups whose files the broker keeps open (v1, at most 16
# in the process) are the fresh path's: a sandbox's stock, not the cgroups
# of 18 pre-warmed handlers, made and entered before their requests come
# (they had taken every slot at start, first come)
if [ $reuse = 1 ]; then
	broker_json '{
  "pw": { "trigger": { "listen": ["127.0.0.1:7401"] }, "exec": ["/opt/helpers/cg-tenant"],
	  "filesystem": '"$FS"', "prewarm": 18, "limits": { "memory": "64M" } },
  "fresh": { "trigger": { "listen": ["127.0.0.1:7402"] }, "exec": ["/opt/helpers/cg-tenant"],
	     "filesystem": '"$FS"', "limits": { "memory": "64M" } }
}' >"$T/policy-kept.json"
	broker_start "$T/policy-kept.json"
	wait_for 20 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"pw\") | .prewarm.ready')\" = 18 ]" ||
		fail "pw: 18 pre-warmed handlers expected: $(sb_stat pw .prewarm)"
	# the broker's fds on handler cgroups of a sandbox (directories and files)
	kept_of() { find /proc/"$BROKER_PID"/fd -lname "*/$1/h*" 2>/dev/null | wc -l; }
	# (its first request starts its stock)
	assert_eq "$(in_lab "$CLIENT" -t $((20000 * PST_TIME_SCALE)) 127.0.0.1:7402 'alloc 1')" "done alloc 1" "a fresh request"
	wait_for 10 sh -c "[ \$(find /proc/$BROKER_PID/fd -lname '*/fresh/h*' 2>/dev/null | wc -l) -gt 0 ]" ||
		fail "the fresh sandbox's cgroups keep no files open"
	assert_eq "$(kept_of pw)" 0 "pre-warmed handlers' cgroup files kept open by the broker"
	broker_stop TERM
	assert_clean_lab
fi

# 8. a burst of requests, 16 at a time: the loop reaps and spawns in
# batches, so the stock swings between empty and full; every cgroup made
# stays for reuse, none is removed (a stock of at most 16 removed one
# cgroup for about every seventh request, and made as many again)
if [ $reuse = 1 ]; then
	broker_json '{
  "burst": { "trigger": { "listen": ["127.0.0.1:7403"] }, "exec": ["/usr/bin/cat"],
	     "filesystem": '"$FS"', "limits": { "handlers": 64, "memory": "64M" } }
}' >"$T/policy-burst.json"
	broker_start "$T/policy-burst.json"
	out=$(in_lab "$LOADGEN" -c 16 -n 800 -d $((120 * PST_TIME_SCALE)) -p 64 127.0.0.1:7403) || fail "loadgen: $out"
	assert_contains "$out" "completed=800 failed=0" "the burst"
	wait_for 20 sh -c "[ \$(grep -c 'event=exit ' '$BROKER_LOG') -ge 800 ]" || fail "not every handler of the burst was reaped"
	mem=$(awk '$9 == "cgroup" && ("," $NF ",") ~ /,memory,/ { print $5; exit }' /proc/self/mountinfo)
	[ -n "$mem" ] || fail "no cgroup v1 memory hierarchy mounted"
	made=0 kept=0
	for d in $(find "$mem" -mindepth 1 -maxdepth 12 -type d -path "*/$TABLE/burst/h*"); do
		n=${d##*/h}
		kept=$((kept + 1))
		[ "$n" -gt "$made" ] && made=$n
	done
	[ "$made" -gt 0 ] || fail "no handler cgroup of burst under $mem"
	assert_eq "$kept" "$made" "handler cgroups kept of those made for 800 requests (none removed)"
	[ "$made" -le 68 ] || fail "$made handler cgroups made for 800 requests at most 16 at a time"
	broker_stop TERM
	assert_clean_lab
fi
