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

# ---- cgroups ---------------------------------------------------------------
# Which hierarchy is in use: v2 when /sys/fs/cgroup is cgroup2 (as systemd
# mounts it: Debian 12, Ubuntu, Fedora), else the v1 hierarchies under
# /sys/fs/cgroup/<controller>, and on a hybrid host also the cgroup2 at
# /sys/fs/cgroup/unified.
cg_is_v2() { [ -f /sys/fs/cgroup/cgroup.controllers ]; }
# cg_roots: the hierarchies a broker's cgroups can be in, one per line.
cg_roots() {
	if cg_is_v2; then echo /sys/fs/cgroup; return; fi
	local c
	for c in memory pids cpu; do [ -d /sys/fs/cgroup/$c ] && echo /sys/fs/cgroup/$c; done
	[ -f /sys/fs/cgroup/unified/cgroup.controllers ] && echo /sys/fs/cgroup/unified
	true
}
# cg_find FIND_TESTS...: find under every hierarchy in use (deep enough for
# a broker in a service cgroup: <slice>/<service>/<table>/<sandbox>/h<N>).
cg_find() {
	local r
	for r in $(cg_roots); do find -H "$r" -mindepth 1 -maxdepth 8 "$@" 2>/dev/null; done
}
# pid_cgroups PID [CONTROLLER...]: the cgroup directories of PID, absolute,
# one per line: on v2 its one cgroup (CONTROLLERs do not matter); on v1 the
# ones of the CONTROLLERs (default memory and pids). /proc/PID/cgroup read
# from here shows host paths, also for a handler in a cgroup namespace of
# its own. Fails if PID is gone or has none of them.
pid_cgroups() {
	local pid=$1 f out; shift
	f=$(cat "/proc/$pid/cgroup" 2>/dev/null) && [ -n "$f" ] || return 1
	if cg_is_v2; then
		out=$(sed -n 's|^0::/*\(.*\)$|/sys/fs/cgroup/\1|p' <<<"$f" | sed 's|/$||')
	else
		out=$(awk -F: -v want="${*:-memory pids}" '
			BEGIN { n = split(want, w, " ") }
			{ path = $3; for (i = 4; i <= NF; i++) path = path ":" $i
			  if (path == "/") path = ""
			  m = split($2, have, ",")
			  for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
				  if (have[j] == w[i]) print "/sys/fs/cgroup/" w[i] path }' <<<"$f")
	fi
	[ -n "$out" ] && echo "$out"
}

# Placement (PST_CG_PLACEMENT): where broker_start puts the broker.
#   unset: service on a cgroup v2 machine where the test runs in a cgroup
#     other than the root (a login shell, a CI job: there a broker in the
#     test's own cgroup would be refused, not alone), else root
#   root: in the cgroup of the test (the runner's)
#   service (cgroup v2 only; tests/vm/run.sh): as systemd places a
#     Delegate=yes service, each broker in a fresh cgroup that holds only
#     the broker, $PST_CG_SLICE/broker-<table>-<n>.service (n: the first
#     free; PST_CG_SLICE, default /sys/fs/cgroup/pst.slice, gets memory,
#     pids and cpu in its subtree_control). A broker started again gets a
#     new one, as a restarted unit gets its cgroup made anew: what a killed
#     broker left stays in the old one, until the test removes it (or at
#     exit). The name does not start with the table's, so the leftover
#     checks only see what a broker makes below it (<its cgroup>/<table>/...).
BROKER_CG=
_pst_slice=${PST_CG_SLICE:-/sys/fs/cgroup/pst.slice}
if [ -z "${PST_CG_PLACEMENT:-}" ]; then
	if cg_is_v2 && [ "$(sed -n 's/^0:://p' /proc/self/cgroup)" != / ]; then
		PST_CG_PLACEMENT=service
	else
		PST_CG_PLACEMENT=root
	fi
fi
_pst_placed() { [ "$PST_CG_PLACEMENT" = service ] && cg_is_v2; }
# broker_cgroup: the cgroup directory broker_start placed the broker in
# (empty in other placements).
broker_cgroup() { echo "$BROKER_CG"; }
# broker_cg_trim: what systemd does to a stopped service's cgroup: kill what
# is left in it and remove it whole (service placement; else nothing). For
# a test that restarts a killed broker as a supervisor would.
broker_cg_trim() {
	local cg=$BROKER_CG
	[ -n "$cg" ] && [ -d "$cg" ] || return 0
	echo 1 >"$cg/cgroup.kill"
	wait_for 5 sh -c "[ -z \"\$(find '$cg' -name cgroup.procs -exec cat {} +)\" ]" || fail "processes left in $cg"
	wait_for 5 sh -c "find '$cg' -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -e '$cg' ]" || fail "could not remove $cg"
	BROKER_CG=
}
# _pst_service_cg KIND: a new service cgroup of the slice for KIND (broker,
# helper) of this run; its path on stdout. Found by name at exit, so also
# when made in a subshell.
_pst_service_cg() {
	local c d n=1
	[ -d "$_pst_slice" ] || mkdir "$_pst_slice" || fail "mkdir $_pst_slice"
	for c in memory pids cpu; do
		grep -qw "$c" "$_pst_slice/cgroup.subtree_control" ||
			echo "+$c" >"$_pst_slice/cgroup.subtree_control" ||
			fail "enable $c in $_pst_slice/cgroup.subtree_control"
	done
	while d="$_pst_slice/$1-$TABLE-$n.service"; ! mkdir "$d" 2>/dev/null; do
		[ -e "$d" ] || fail "mkdir $d"
		n=$((n + 1))
	done
	echo "$d"
}
# the service cgroups of this run, bottom-up, after the processes are
# stopped (retried: a killed broker's handlers die after it)
_pst_service_cg_rm() {
	local d left _
	for _ in $(seq 1 $((50 * PST_TIME_SCALE))); do
		left=
		for d in "$_pst_slice"/*-"$TABLE"-*.service; do
			[ -d "$d" ] || continue
			find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
			[ ! -d "$d" ] || left="$left $d"
		done
		[ -n "$left" ] || return 0
		sleep 0.1
	done
	echo "broker_lib: service cgroups left:$(cg_tree "$(tr ' ' '\n' <<<"${left# }")")" >&2
}
! _pst_placed || on_exit _pst_service_cg_rm
# run_placed CMD...: run CMD (a program, not a shell function) placed as
# broker_start places a broker: in service placement in a fresh service
# cgroup of its own (helper-<table>-<n>.service), for a program that makes
# cgroups as the broker does (tests/helpers/spawn-signals, a broker
# started by hand); else as it is. In a subshell (CMD &, $(...)) it execs,
# so that $! is CMD's pid.
run_placed() {
	if _pst_placed; then
		local d; d=$(_pst_service_cg helper) || exit 1
		# shellcheck disable=SC2016
		set -- sh -c 'echo $$ >"$0/cgroup.procs" || { echo "run_placed: cannot enter $0" >&2; exit 125; }
		       exec "$@"' "$d" "$@"
	fi
	if [ "$BASHPID" != "$$" ]; then exec "$@"; else "$@"; fi
}

# ip netns aliases of this run's broker, also after a failure
on_exit 'for n in /run/netns/"$TABLE"-*; do [ -e "$n" ] && { umount -l "$n"; rm -f "$n"; }; done 2>/dev/null; true'
# cgroups of this run's broker (named after its table), also after a failure
# (retried for up to 5 s: the handlers of a broker that was killed die
# after it)
cg_cleanup() {
	local _
	for _ in $(seq 1 $((50 * PST_TIME_SCALE))); do
		cg_find -depth -type d -path "*/$TABLE*" -exec rmdir {} +
		[ -n "$(cg_find -type d -path "*/$TABLE*" -print -quit)" ] || break
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

# broker_start POLICY_FILE [OPTION...]: run the broker in the lab (placed as
# PST_CG_PLACEMENT says; through the command PST_BROKER_WRAP when set); wait
# until it serves (10 s, times PST_TIME_SCALE).
broker_start() {
	# nsenter, not "ip netns exec": that one also mounts a fresh /sys, without cgroups
	local starts
	starts=$(grep -c 'event=start ' "$BROKER_LOG" 2>/dev/null)
	BROKER_CG=
	if _pst_placed; then
		BROKER_CG=$(_pst_service_cg broker) || exit 1
		# shellcheck disable=SC2016
		sh -c 'echo $$ >"$0/cgroup.procs" || { echo "broker_start: cannot enter $0" >&2; exit 125; }
		       exec "$@"' "$BROKER_CG" \
			nsenter --net=/run/netns/"$LAB" ${PST_BROKER_WRAP:-} "$POSTERN" run "${@:2}" "$1" >>"$BROKER_LOG" 2>&1 &
	else
		nsenter --net=/run/netns/"$LAB" ${PST_BROKER_WRAP:-} "$POSTERN" run "${@:2}" "$1" >>"$BROKER_LOG" 2>&1 &
	fi
	BROKER_PID=$!
	bg_pid "$BROKER_PID"
	wait_for 10 sh -c "[ \$(grep -c 'event=start ' '$BROKER_LOG') -gt ${starts:-0} ]" ||
		{ cat "$BROKER_LOG" >&2; fail "broker did not start"; }
}

# broker_stop [SIGNAL]: stop it and check it exits 0 within the grace period
# (15 s, times PST_TIME_SCALE).
broker_stop() {
	kill -"${1:-TERM}" "$BROKER_PID"
	local rc=0
	wait_for 15 sh -c "! kill -0 $BROKER_PID 2>/dev/null" || { cat "$BROKER_LOG" >&2; fail "broker did not exit"; }
	wait "$BROKER_PID" || rc=$?
	[ "$rc" = 0 ] || { cat "$BROKER_LOG" >&2; fail "broker exited $rc"; }
	BROKER_PID=
}

# spawn_strace PORT OUT [REQUEST]: strace (-f: every thread of the broker
# and the children it spawns; -y: fds with their paths) over one request
# to PORT, until its handler's exit line; the trace of its clone, clone3,
# openat and write calls (SPAWN_STRACE_CALLS: others) in OUT. Fails where
# strace is missing.
spawn_strace() {
	command -v strace >/dev/null || fail "strace is needed (Debian package strace)"
	local exits st i
	exits=$(grep -c 'event=exit ' "$BROKER_LOG")
	strace -f -qq -y -s 64 -e trace="${SPAWN_STRACE_CALLS:-clone,clone3,openat,write}" -p "$BROKER_PID" -o "$2" 2>/dev/null &
	st=$!
	# attached once its first line (the loop's epoll_wait is not traced:
	# wait for strace to have stopped the broker's threads)
	for i in $(seq 1 $((50 * PST_TIME_SCALE))); do
		grep -q "TracerPid:[[:space:]]*$st" "/proc/$BROKER_PID/status" && break
		sleep 0.1
	done
	in_lab "$CLIENT" -t $((20000 * PST_TIME_SCALE)) "127.0.0.1:$1" "${3:-}" >/dev/null
	wait_for 10 sh -c "[ \$(grep -c 'event=exit ' '$BROKER_LOG') -gt $exits ]" || fail "no exit line for the traced request"
	kill -INT "$st"; wait "$st" 2>/dev/null
	true
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
	for cg in $(cg_roots); do
		left=$(find -H "$cg" -mindepth 1 -maxdepth 8 -type d -name "$TABLE*" 2>/dev/null)
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
