# Shared helpers for integration tests; source it first.
#
# Safety: everything that touches networking happens inside namespaces the
# test creates (names unique per run: pst-<pid>-<rand>-...), and every
# namespace, veth, cgroup, nft table, process and temp dir registered here is
# removed on exit, also when the test fails. Processes are stopped by PID only.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
POSTERN=${PST_POSTERN:-$BUILD/postern}
RUN_ID="$$-$RANDOM"
# PST_TIME_SCALE (integer, default 1): every bounded wait here and in
# broker_lib.sh (and run.sh's per-test timeout) is multiplied by it, for a
# slow machine (tests/vm/run.sh sets it: the tests run emulated there).
# What the tests assert is not scaled.
PST_TIME_SCALE=${PST_TIME_SCALE:-1}
[[ $PST_TIME_SCALE =~ ^[1-9][0-9]*$ ]] || { echo "FAIL: PST_TIME_SCALE must be a positive integer, got '$PST_TIME_SCALE'" >&2; exit 1; }
export PST_TIME_SCALE
_pst_netns=() _pst_pids=() _pst_dirs=() _pst_cleanups=()

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "$*"; exit 77; }
note() { echo "# $*"; }
assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', want '$2'"; }
assert_contains() { grep -qF -- "$2" <<<"$1" || fail "${3:-missing text}: '$2' not in: $1"; }
# assert_line TEXT LINE [WHAT]: TEXT has a line that is exactly LINE.
assert_line() { grep -qxF -- "$2" <<<"$1" || fail "${3:-missing line}: '$2' not a line of: $1"; }
assert_not_contains() { ! grep -qF -- "$2" <<<"$1" || fail "${3:-unexpected text}: '$2' in: $1"; }

# A unique name for this run: uname SUFFIX -> pst-<pid>-<rand>-SUFFIX
uname_() { echo "pst-$RUN_ID-$1"; }

# netns_new NAME: create a namespace (ip netns) registered for deletion.
netns_new() { ip netns add "$1" || fail "ip netns add $1"; _pst_netns+=("$1"); ip -n "$1" link set lo up; }
# bg_pid PID: a process to kill (by PID) at exit.
bg_pid() { _pst_pids+=("$1"); }
# tmpdir_new VAR: make a temp dir, removed at exit (after unmounting anything
# in it), and set VAR to it. Not "$(tmpdir_new)": a command substitution is a
# subshell, and the registration would be lost with it.
tmpdir_new() {
	local d
	d=$(mktemp -d /tmp/pst-test.XXXXXX) || fail "mktemp"
	_pst_dirs+=("$d")
	printf -v "$1" '%s' "$d"
}
# on_exit CMD: run CMD (eval) at exit, last registered first.
on_exit() { _pst_cleanups=("$1" "${_pst_cleanups[@]}"); }

_pst_cleanup() {
	local rc=$? c p n d
	# processes first, so that what they hold (cgroups, mounts) can go: a
	# second SIGTERM makes a broker kill its handlers and finish at once
	for p in "${_pst_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	[ ${#_pst_pids[@]} = 0 ] || sleep 0.1
	for p in "${_pst_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${_pst_pids[@]}"; do
		for _ in $(seq 1 $((30 * PST_TIME_SCALE))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
	done
	for c in "${_pst_cleanups[@]}"; do eval "$c"; done
	for n in "${_pst_netns[@]}"; do ip netns del "$n" 2>/dev/null; done
	for d in "${_pst_dirs[@]}"; do
		grep -F " $d" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
		rm -rf "$d"
	done
	exit $rc
}
trap _pst_cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS CMD...: poll CMD every 50ms until it succeeds, for at
# most SECONDS times PST_TIME_SCALE of wall-clock time. The bound is a
# deadline, not a count of polls: where one poll costs more than the 50 ms
# sleep (a `postern status | jq` in the emulated VM costs ~0.3 s), a count
# stretched a 60 s wait to four minutes.
wait_for() {
	local t=$1; shift
	local now=${EPOCHREALTIME/[.,]/}
	local end=$((now + t * PST_TIME_SCALE * 1000000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		now=${EPOCHREALTIME/[.,]/}
		[ "$now" -lt "$end" ] || return 1
		sleep 0.05
	done
}
