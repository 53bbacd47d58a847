# Helpers for broker integration tests; source after lib.sh.
#
# Each test gets a lab network namespace (the broker host), a temp dir with
# the policy, state dir and control socket, a unique nftables table name, and
# the broker running inside the lab. Cleanup (lib.sh) stops the broker by PID,
# deletes the lab and unmounts/removes the temp dir, also on failure.

[ "$(id -u)" = 0 ] || skip "needs root"
for b in "$POSTERN" "$BUILD/examples/echo" "$BUILD/tests/helpers/pst-client"; do
	[ -x "$b" ] || fail "missing $b: run make first"
done

LAB=$(uname_ lab)
netns_new "$LAB"
tmpdir_new T
chmod 755 "$T"
TABLE="pt$$r$RANDOM"	# not the pid alone: pids come back (pid_max), leftovers may not go
STATE="$T/state"
CONTROL="$T/control.sock"
BROKER_LOG="$T/broker.log"
BROKER_PID=
CLIENT="$BUILD/tests/helpers/pst-client"
LOADGEN="$BUILD/tests/bench/loadgen"
UID_BASE=$((300000 + ($$ % 1000) * 64))

in_lab() { ip netns exec "$LAB" "$@"; }
# ip netns aliases of this run's broker, also after a failure
on_exit 'for n in /run/netns/"$TABLE"-*; do [ -e "$n" ] && { umount -l "$n"; rm -f "$n"; }; done 2>/dev/null; true'
# cgroups of this run's broker (named after its table), also after a failure
# (retried for up to 5 s: the handlers of a broker that was killed die
# after it)
cg_cleanup() {
	local cg left _
	for _ in $(seq 1 50); do
		left=
		for cg in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup/cpu /sys/fs/cgroup/unified /sys/fs/cgroup; do
			find "$cg" -maxdepth 5 -depth -type d -path "*/$TABLE*" -exec rmdir {} + 2>/dev/null
			[ -z "$(find "$cg" -maxdepth 5 -type d -path "*/$TABLE*" -print -quit 2>/dev/null)" ] || left=1
		done
		[ -n "$left" ] || break
		sleep 0.1
	done
	true
}
on_exit cg_cleanup
# the broker's log goes into the test's log (shown by the runner on failure)
on_exit '[ -s "$BROKER_LOG" ] && { echo "--- broker log (last 60 lines)"; tail -n 60 "$BROKER_LOG"; } >&2' 

# The filesystem every test sandbox gets: /usr, merged-/usr symlinks, and the
# example handlers at /opt/postern.
FS_JSON='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
	   { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" },
	   { "bind": "'"$BUILD"'/examples", "to": "/opt/postern" },
	   { "bind": "'"$BUILD"'/tests/helpers", "to": "/opt/helpers" }, { "tmpfs": "/tmp", "size": "4M" } ]'
# With /proc (and without /opt/helpers), for handlers that report on
# themselves (examples/confine).
FS_PROC='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
	   { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" },
	   { "bind": "'"$BUILD"'/examples", "to": "/opt/postern" }, { "proc": "/proc" },
	   { "tmpfs": "/tmp", "size": "4M" } ]'

# broker_json SANDBOXES_JSON [EXTRA_BROKER_KEYS]: a whole policy on stdout.
broker_json() {
	cat <<JSON
{
  "postern": 1,
  "broker": { "table": "$TABLE", "control": "$CONTROL", "state_dir": "$STATE",
	      "uid_base": $UID_BASE, "grace": "3s"${2:+, $2} },
  "sandboxes": $1
}
JSON
}

# broker_start POLICY_FILE [OPTION...]: run the broker in the lab; wait until
# it serves.
broker_start() {
	# nsenter, not "ip netns exec": that one also mounts a fresh /sys, without cgroups
	local starts
	starts=$(grep -c 'event=start ' "$BROKER_LOG" 2>/dev/null)
	nsenter --net=/run/netns/"$LAB" "$POSTERN" run "${@:2}" "$1" >>"$BROKER_LOG" 2>&1 &
	BROKER_PID=$!
	bg_pid "$BROKER_PID"
	wait_for 10 sh -c "[ \$(grep -c 'event=start ' '$BROKER_LOG') -gt ${starts:-0} ]" ||
		{ cat "$BROKER_LOG" >&2; fail "broker did not start"; }
}

# broker_stop [SIGNAL]: stop it and check it exits 0 within the grace period.
broker_stop() {
	kill -"${1:-TERM}" "$BROKER_PID"
	local rc=0
	wait_for 15 sh -c "! kill -0 $BROKER_PID 2>/dev/null" || { cat "$BROKER_LOG" >&2; fail "broker did not exit"; }
	wait "$BROKER_PID" || rc=$?
	[ "$rc" = 0 ] || { cat "$BROKER_LOG" >&2; fail "broker exited $rc"; }
	BROKER_PID=
}

status_json() { "$POSTERN" status --json -s "$CONTROL"; }

# sb_stat SANDBOX JQ_PATH: one value of a sandbox in `postern status --json`,
# e.g. sb_stat echo .started
sb_stat() { status_json | jq -r --arg n "$1" ".sandboxes[] | select(.name == \$n) | $2"; }
# count_log PATTERN: how many log lines match.
count_log() { grep -c -- "$1" "$BROKER_LOG" || true; }

# Nothing of the broker left in the lab: no table, no veth, no netns mount.
assert_clean_lab() {
	local t; t=$(in_lab nft list tables 2>/dev/null)
	assert_not_contains "$t" "$TABLE" "nft table left behind"
	local l; l=$(in_lab ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep '^pst' || true)
	[ -z "$l" ] || fail "veths left behind: $l"
	if grep -qF "$STATE/netns" /proc/self/mountinfo; then fail "netns mounts left behind"; fi
	if ls /run/netns 2>/dev/null | grep -q "^$TABLE-"; then fail "ip netns aliases left behind"; fi
	[ ! -e "/run/postern/$TABLE.lock" ] || fail "lock file left behind: /run/postern/$TABLE.lock"
	local cg left
	for cg in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup/unified; do
		left=$(find "$cg" -maxdepth 4 -type d -name "$TABLE*" 2>/dev/null)
		[ -z "$left" ] || fail "cgroup left behind under $cg: $(cg_tree "$left")"
	done
}

# cg_tree DIRS: each cgroup under DIRS (one per line), with the processes
# in it (for a failure message).
cg_tree() {
	local d p
	while read -r d; do find "$d" -type d; done <<<"$1" | while read -r d; do
		printf '\n  %s:' "$d"
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do
			printf ' %s(%s)' "$p" "$(tr -d '\n' </proc/"$p"/comm 2>/dev/null)"
		done
	done
}
