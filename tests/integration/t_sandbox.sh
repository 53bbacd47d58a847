#!/usr/bin/env bash
# Handler isolation, asserted from inside (examples/confine) and outside:
# capabilities zero, no_new_privs, seccomp filter, root = declared entries,
# host files invisible, read-only binds, refused syscalls, pid 1, non-root
# host uid, no stray fds; memory and pids limits; listen_fds mode; setup
# errors with step and errno; per-handler cgroups removed; concurrent
# spawns and pre-warm set-ups; spawns with cgroup limits under a stream of
# signals.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

# a read-only bind whose source has a submount: read-only all the way down
mkdir -p "$T/robind/sub"
mount -t tmpfs -o size=1m pst-test "$T/robind/sub" || fail "tmpfs for the submount test"
# a bind under a tmpfs entry: no root template for that sandbox
mkdir -p "$T/nest" && echo nested-file >"$T/nest/f" && chmod 755 "$T/nest" && chmod 644 "$T/nest/f"
FS_NEST=$(jq -c --arg d "$T/nest" '. + [ { "tmpfs": "/work" }, { "bind": $d, "to": "/work/in" } ]' <<<"$FS_JSON")
broker_json '{
  "probe": { "trigger": { "listen": ["127.0.0.1:7001"] }, "exec": ["/opt/postern/confine"], "filesystem": '"$FS_PROC"' },
  "sysd": { "trigger": { "listen": ["127.0.0.1:7002"] }, "exec": ["/opt/postern/confine"], "socket": "listen_fds",
	    "filesystem": '"$FS_PROC"' },
  "hog": { "trigger": { "listen": ["127.0.0.1:7003"] },
	   "exec": ["/bin/sh", "-c", "x=$(head -c 200000000 /dev/zero | tr \"\\\\0\" x); echo survived"],
	   "filesystem": '"$FS_PROC"', "limits": { "memory": "32M", "timeout": "20s" } },
  "bomb": { "trigger": { "listen": ["127.0.0.1:7004"] },
	    "exec": ["/bin/sh", "-c", "n=0; while [ $n -lt 100 ]; do sleep 30 & n=$((n+1)); echo forked=$n; done"],
	    "filesystem": '"$FS_PROC"', "limits": { "pids": 10, "timeout": "20s" } },
  "sleeper": { "trigger": { "listen": ["127.0.0.1:7005"] }, "exec": ["/bin/sh", "-c", "echo up; sleep 30"],
	       "filesystem": '"$FS_PROC"' },
  "devs": { "trigger": { "listen": ["127.0.0.1:7007"] },
	    "exec": ["/bin/sh", "-c", "echo hi >/dev/null && head -c 8 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c && ls -l /dev | tail -n +2 | cut -c1-10 | sort | uniq -c | tr -s \" \" && ls /dev | tr \"\\n\" \" \""],
	    "filesystem": '"$FS_JSON"' },
  "badbind": { "trigger": { "listen": ["127.0.0.1:7006"] }, "exec": ["/opt/postern/echo"],
	       "filesystem": [ { "bind": "/srv/postern-no-such-dir", "to": "/data" } ] },
  "tmpw": { "trigger": { "listen": ["127.0.0.1:7009"] },
	    "exec": ["/bin/sh", "-c", "echo \"root=$(stat -c %d /) shared=$(grep -c shared: /proc/self/mountinfo) tmp=$(ls -A /tmp | wc -l)\"; echo x >/tmp/mark; sleep 0.5"],
	    "filesystem": '"$FS_PROC"' },
  "nested": { "trigger": { "listen": ["127.0.0.1:7010"] },
	      "exec": ["/bin/sh", "-c", "echo \"root=$(stat -c %d /) in=$(cat /work/in/f)\"; touch /work/w && echo tmpfs-writable; sleep 0.5"],
	      "filesystem": '"$FS_NEST"' },
  "rosub": { "trigger": { "listen": ["127.0.0.1:7008"] },
	     "exec": ["/bin/sh", "-c", "touch /data/sub/x 2>&1 || echo refused; touch /data/y 2>&1 || echo refused"],
	     "filesystem": [ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
			     { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" },
			     { "bind": "'"$T"'/robind", "to": "/data" } ] },
  "cwd": { "trigger": { "listen": ["127.0.0.1:7011"] },
	   "exec": ["/bin/sh", "-c", "[ . -ef / ] && echo \"cwd=$(pwd) at the root\""],
	   "filesystem": [ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
			   { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" } ] },
  "cwdtmp": { "trigger": { "listen": ["127.0.0.1:7012"] },
	      "exec": ["/bin/sh", "-c", "[ . -ef / ] && echo \"cwd=$(pwd) at the root\""], "filesystem": '"$FS_JSON"' }
}' >"$T/policy.json"
# badbind is broken on purpose, for its spawn failure: past the preflight
"$POSTERN" check --no-preflight "$T/policy.json" >/dev/null || { "$POSTERN" check --no-preflight "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json" --no-preflight

out=$(in_lab "$CLIENT" 127.0.0.1:7001 "")
note "$out"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
	assert_contains "$out" "$(printf '%s:\t0000000000000000' $cap)" "$cap"
done
assert_contains "$out" "$(printf 'NoNewPrivs:\t1')" "no_new_privs"
assert_contains "$out" "$(printf 'Seccomp:\t2')" "seccomp filter mode"
assert_contains "$out" "pid: 1, hostname: probe" "pid 1 and hostname"
assert_contains "$out" "root: bin dev lib lib64 opt proc tmp usr" "root holds exactly the declared entries"
assert_contains "$out" "open /etc/shadow: refused (No such file or directory)" "host files invisible"
assert_contains "$out" "write /usr: refused (Read-only file system)" "read-only bind"
assert_contains "$out" "clone3: refused (Function not implemented)" "clone3: ENOSYS, so libc falls back to clone"
assert_contains "$out" "fork: ALLOWED" "clone without namespace flags"
for what in "mount tmpfs" "clone(CLONE_NEWUTS)" "clone(CLONE_NEWNET)" "unshare(CLONE_NEWNS)" "unshare(CLONE_NEWUSER)" "ptrace(TRACEME)" "raw socket" "packet socket" "netlink socket"; do
	assert_contains "$out" "$what: refused (Operation not permitted)" "$what"
done
assert_line "$out" "open fds: 0 1 2" "no fd beyond the socket and stderr"
assert_line "$out" "socket: blocking" "the client's socket is blocking, as inetd programs expect"
# its fd table is the small one the child made (64 slots): arranging the
# fds did not move one to a high number, which would have grown it to 1,024
assert_contains "$out" "$(printf 'FDSize:\t64')" "the handler's fd table stayed small"
uid=$(sed -n "s/.* event=sandbox name=probe .* uid=\([0-9]*\) .*/\1/p" "$BROKER_LOG" | head -1)
assert_contains "$out" "uid: $uid (effective $uid), gid: $uid" "unprivileged uid inside"

# the child does not copy the broker's fd table: cloned sharing it, it
# makes one of its own with the broker's few lowest fds only (up to the
# broker's own pidfd) and takes the fds it uses into it one by one
own_table_trace() { SPAWN_STRACE_CALLS=clone,clone3,close_range,pidfd_getfd spawn_strace 7001 "$1"; }
own_table_trace "$T/own.strace"
grep -Eq 'clone3?\(.*CLONE_VM\|CLONE_FILES.*CLONE_VFORK' "$T/own.strace" ||
	fail "the child was not cloned sharing the fd table: $(grep clone "$T/own.strace" | grep -v CLONE_THREAD | head -3)"
grep -Eq 'close_range\([0-9]+, 4294967295, CLOSE_RANGE_UNSHARE\) += 0' "$T/own.strace" ||
	fail "the child made no table of its own: $(grep close_range "$T/own.strace" | head -3)"
[ "$(grep -Ec 'pidfd_getfd\(.*\) += [0-9]+' "$T/own.strace")" -ge 3 ] ||
	fail "the child took too few fds: $(grep pidfd_getfd "$T/own.strace" | head -5)"

# the handler starts at its root, with or without mounts of its own
# (a tmpfs) on the copy of its sandbox's root template
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7011 "")" "cwd=/ at the root" "working directory, no per-handler mounts"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7012 "")" "cwd=/ at the root" "working directory, a tmpfs of its own"
out=$(in_lab "$CLIENT" 127.0.0.1:7008 "")
assert_contains "$out" "touch: cannot touch '/data/sub/x': Read-only file system" "submount of a read-only bind is read-only"
assert_contains "$out" "touch: cannot touch '/data/y': Read-only file system" "read-only bind"
[ ! -e "$T/robind/sub/x" ] || fail "a handler wrote into a submount of a read-only bind"

# the root is copied from the sandbox's template (the same read-only
# tmpfs, seen by two handlers alive at once), but /tmp is each handler's own
two() { # two() PORT: two requests at once, their first lines
	in_lab "$CLIENT" "127.0.0.1:$1" "" >"$T/two1" &
	local p=$!
	in_lab "$CLIENT" "127.0.0.1:$1" "" >"$T/two2"
	wait "$p"
	head -n 1 "$T/two1"; head -n 1 "$T/two2"
}
out=$(two 7009)
note "tmpw: $out"
assert_eq "$(grep -c ' tmp=0$' <<<"$out")" 2 "each handler starts with an empty /tmp of its own"
assert_eq "$(grep -c ' shared=0 ' <<<"$out")" 2 "no mount of a handler propagates anywhere"
assert_eq "$(cut -d' ' -f1 <<<"$out" | sort -u | wc -l)" 1 "handlers of one sandbox share the template's root"
out=$(in_lab "$CLIENT" 127.0.0.1:7009 "")
assert_contains "$out" " tmp=0" "a later handler: empty /tmp, not an earlier one's"
# an entry under a tmpfs entry: each handler builds its root
out=$(two 7010)
note "nested: $out"
assert_eq "$(grep -c ' in=nested-file$' <<<"$out")" 2 "bind under a tmpfs entry"
assert_eq "$(cut -d' ' -f1 <<<"$out" | sort -u | wc -l)" 2 "a sandbox with a bind under its tmpfs: a root per handler"
assert_contains "$(in_lab "$CLIENT" 127.0.0.1:7010 "")" "tmpfs-writable" "the tmpfs above that bind is writable"

# the minimal /dev: usable character devices, nothing else
out=$(in_lab "$CLIENT" 127.0.0.1:7007 "")
note "$out"
assert_line "$out" "8" "read /dev/urandom"
assert_line "$out" "3" "read /dev/zero"
assert_line "$out" " 5 crw-rw-rw-" "five character devices, mode 0666"
assert_line "$out" "full null random urandom zero " "/dev holds exactly the five devices"

# systemd style: the socket on fd 3, stdin /dev/null, LISTEN_FDS set
out=$(in_lab "$CLIENT" 127.0.0.1:7002 "")
assert_line "$out" "open fds: 0 1 2 3" "listen_fds: socket on fd 3"

# from outside: the handler runs as the sandbox's host uid, in its own cgroups
in_lab "$CLIENT" -t 10000 127.0.0.1:7005 >"$T/sleeper" 2>&1 &
wait_for 5 grep -q up "$T/sleeper" || fail "sleeper did not start"
hpid=$(status_json | jq '.sandboxes[] | select(.name=="sleeper") | .handlers[0].pid')
[ -n "$hpid" ] && [ "$hpid" != null ] || fail "no sleeper pid in status"
huid=$(awk '/^Uid:/ {print $2}' /proc/"$hpid"/status)
assert_eq "$huid" "$(sed -n "s/.* event=sandbox name=sleeper .* uid=\([0-9]*\) .*/\1/p" "$BROKER_LOG" | head -1)" "host uid of the handler"
cgs=$(pid_cgroups "$hpid") || fail "no cgroups of the handler"
assert_contains "$cgs" "/$TABLE/sleeper/h" "handler cgroup"
cgdir=$(pid_cgroups "$hpid" pids) || fail "no pids cgroup of the handler"
kill -TERM "$BROKER_PID"	# shutdown kills it after the grace period (3s)
wait_for 10 sh -c "! kill -0 $hpid 2>/dev/null" || fail "handler survived shutdown"
wait "$BROKER_PID" 2>/dev/null
[ ! -d "$cgdir" ] || fail "handler cgroup left: $cgdir"
assert_clean_lab
BROKER_PID=
: >"$BROKER_LOG"
broker_start "$T/policy.json" --no-preflight

# memory: a 200 MB shell variable under a 32M limit does not survive; the
# second time in cgroups made ahead (after the first spawn)
for i in 1 2; do
	out=$(in_lab "$CLIENT" -t 20000 127.0.0.1:7003 "" 2>&1)
	assert_not_contains "$out" "survived" "memory hog contained ($i)"
	wait_for 10 sh -c "[ \$(grep -c 'event=exit sandbox=hog .*signal=KILL' '$BROKER_LOG') -ge $i ]" ||
		fail "hog not killed by the memory limit ($i)"
done

# pids: a fork loop is stopped at the pids limit (twice, as above)
for i in 1 2; do
	out=$(in_lab "$CLIENT" -t 20000 127.0.0.1:7004 "" 2>&1)
	n=$(sed -n 's/.*forked=\([0-9]*\).*/\1/p' <<<"$out" | tail -n 1)
	[ -n "$n" ] && [ "$n" -lt 10 ] || fail "pids limit 10 not enforced ($i): last fork count '$n'"
	note "fork loop stopped after $n children ($i)"
done

# set-up errors reach the log with the step and errno
in_lab "$CLIENT" -t 5000 127.0.0.1:7006 x >/dev/null 2>&1
wait_for 5 grep -q 'sandbox \\"badbind\\": bind /srv/postern-no-such-dir -> /data: No such file or directory' "$BROKER_LOG" ||
	fail "bind error not reported with step and errno: $(grep badbind "$BROKER_LOG")"

broker_stop
assert_clean_lab

# where pidfd_getfd is refused (ENOSYS, as a seccomp profile that does not
# know it makes it): the child that could not take its fds exits, the
# launch clones again copying the table, and so does every later one; the
# handler gets the same fds and nothing more
: >"$BROKER_LOG"
PST_BROKER_WRAP="$BUILD/tests/helpers/enosys pidfd_getfd" broker_start "$T/policy.json" --no-preflight
own_table_trace "$T/fallback.strace"
grep -q 'pidfd_getfd(.* = -1 ENOSYS' "$T/fallback.strace" || fail "pidfd_getfd not tried and refused: $(grep -E 'pidfd|close_range' "$T/fallback.strace" | head -3)"
grep CLONE_VFORK "$T/fallback.strace" | grep -vq CLONE_FILES ||
	fail "no clone copying the table after the refusal: $(grep CLONE_VFORK "$T/fallback.strace" | head -3)"
out=$(in_lab "$CLIENT" 127.0.0.1:7001 "")
assert_line "$out" "open fds: 0 1 2" "copying the table: no fd beyond the socket and stderr"
own_table_trace "$T/fallback2.strace"
grep -q CLONE_VFORK "$T/fallback2.strace" || fail "no clone traced: $(head -3 "$T/fallback2.strace")"
! grep CLONE_VFORK "$T/fallback2.strace" | grep -q CLONE_FILES ||
	fail "tried sharing the table again after the refusal: $(grep CLONE_VFORK "$T/fallback2.strace" | head -2)"
broker_stop
assert_clean_lab

# spawns and pre-warm set-ups of one sandbox on two threads at once (they
# share the caller's memory until exec): none may fail
out=$(unshare -n "$BUILD/tests/helpers/spawn-stress" 300 2>&1) || fail "concurrent set-ups: $out"
assert_contains "$out" "spawned=300 prewarmed=300 failed=0" "concurrent set-ups"

# spawns with cgroup limits while signals keep arriving (the broker's own
# SIGHUP or SIGTERM may come at any moment): none may fail with EINTR
out=$(run_placed unshare -n "$BUILD/tests/helpers/spawn-signals" 200 "$TABLE-signals" 2>&1) || fail "spawns under signals: $out"
assert_contains "$out" "spawned=200 failed=0" "spawns under signals"
note "$out"
echo "sandbox isolation: ok"
