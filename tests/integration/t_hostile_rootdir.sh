#!/usr/bin/env bash
# A local user's trap where postern once mounted every new root: before the
# broker starts, an unprivileged user (uid 65534) makes /tmp/.postern-root
# a directory of its own, then a symlink to a directory of its own. Spawns
# still work, with a root template and without one (a bind under a tmpfs
# entry: each spawn builds its root), and nothing is mounted or made
# through the link or in the user's directory: the new root is mounted on
# a directory the broker made for itself (root's, 0700, in the root-only
# /run/postern-root), removed when its last sandbox goes, or, after a
# SIGKILL, by the next broker.
#
# The user's entries are made in a /tmp of this test's own (a private
# mount namespace with a fresh tmpfs on /tmp; a checkout under /tmp is
# bound back in place), so that no other broker on the machine meets them.
if [ -z "${PST_HOSTILE_ROOTDIR_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
	here=$(cd "$(dirname "$0")" && pwd)
	checkout=$(cd "$here/../.." && pwd)
	exec env PST_HOSTILE_ROOTDIR_NS=1 unshare -m --propagation private bash -c '
		set -e
		exec 9</tmp	# the /tmp of the host, for what must stay visible
		mount -t tmpfs -o mode=1777,size=64m pst-hostile-tmp /tmp
		case $1/ in
		/tmp/*) mkdir -p "$1" && mount --no-canonicalize --bind "/proc/self/fd/9/${1#/tmp/}" "$1" ;;
		esac
		exec 9<&-
		exec bash "$2"' _ "$checkout" "$here/$(basename "$0")"
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"

as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
TRAP=/tmp/.postern-root
TARGET=/tmp/pst-hostile-target	# where the link leads: the user's own directory
as_user mkdir -m 0777 "$TARGET" || fail "the user could not make $TARGET"

mkdir -p "$T/nest" && echo nested-file >"$T/nest/f" && chmod 755 "$T/nest" && chmod 644 "$T/nest/f"
FS_NEST=$(jq -c --arg d "$T/nest" '. + [ { "tmpfs": "/work" }, { "bind": $d, "to": "/work/in" } ]' <<<"$FS_JSON")
broker_json '{
  "tmpl": { "trigger": { "listen": ["127.0.0.1:7101"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' },
  "own": { "trigger": { "listen": ["127.0.0.1:7102"] },
	   "exec": ["/bin/sh", "-c", "echo \"own root: $(cat /work/in/f)\""], "filesystem": '"$FS_NEST"' }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }

# mounts of the broker's namespace at PATH (or below it), as "MOUNTPOINT FSTYPE"
mounts_at() { awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5, $(NF - 2) }' /proc/"$BROKER_PID"/mountinfo; }
# spawns of both sandboxes work, three times each
serve() {
	local i out
	for i in 1 2 3; do
		out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7101 "hello $1 $i" 2>&1)
		assert_eq "$out" "hello $1 $i" "$1: echo through a root template ($i)"
		out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7102 "" 2>&1)
		assert_eq "$out" "own root: nested-file" "$1: a root built by the spawn itself ($i)"
	done
	assert_eq "$(count_log 'event=spawn_failed')" 0 "$1: no spawn failed"
}

# 1. a directory of the user's, with a file in it
as_user mkdir -m 0755 "$TRAP" && as_user touch "$TRAP/mine" || fail "the user could not make $TRAP"
broker_start "$T/policy.json"
serve directory
assert_eq "$(stat -c '%u %a' "$TRAP")" "65534 755" "the user's directory is left as it was"
assert_eq "$(ls -A "$TRAP")" "mine" "nothing made in the user's directory"
assert_eq "$(mounts_at "$TRAP")" "" "nothing mounted on the user's directory"
broker_stop

# 2. a symlink to a directory of the user's
as_user rm -rf "$TRAP" && as_user ln -s "$TARGET" "$TRAP" || fail "the user could not make the link"
: >"$BROKER_LOG"
broker_start "$T/policy.json"
serve symlink
# the broker's own mount point while it runs: root's, 0700, in root's 0700 dir
own=$(find /run/postern-root -mindepth 1 -maxdepth 1 -name "$BROKER_PID.*" 2>/dev/null)
[ -n "$own" ] || fail "no mount point of the broker (pid $BROKER_PID) in /run/postern-root: $(ls -la /run/postern-root 2>&1)"
assert_eq "$(stat -c '%u %a %F' /run/postern-root)" "0 700 directory" "/run/postern-root: root's alone"
assert_eq "$(stat -c '%u %a %F' "$own")" "0 700 directory" "the broker's mount point: root's alone"
assert_eq "$(mounts_at "$own")" "" "the mount point stays empty in the broker's namespace"
broker_stop
assert_eq "$(readlink "$TRAP")" "$TARGET" "the user's link is left as it was"
assert_eq "$(ls -A "$TARGET")" "" "nothing made through the link"
assert_eq "$(grep -c -e " $TARGET " -e " $TRAP " /proc/self/mountinfo)" 0 "nothing mounted through the link"
[ ! -e "$own" ] || fail "the broker's mount point $own is left after its stop"

# 3. a broker killed (SIGKILL) leaves its directory; the next one removes it
broker_start "$T/policy.json"
dead=$(find /run/postern-root -mindepth 1 -maxdepth 1 -name "$BROKER_PID.*" 2>/dev/null)
[ -n "$dead" ] || fail "no mount point of the broker (pid $BROKER_PID) in /run/postern-root"
kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null; BROKER_PID=
[ -d "$dead" ] || fail "$dead gone with its broker: the next start would not be tested"
broker_cg_trim
broker_start "$T/policy.json"
[ ! -e "$dead" ] || fail "the mount point $dead of a killed broker is left after the next start"
serve restart
broker_stop
assert_clean_lab
echo "hostile root mount point: ok"
