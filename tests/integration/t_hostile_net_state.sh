#!/usr/bin/env bash
# The state dir and the start-up clean-up touch only what is postern's own.
#  - a state dir that is a symbolic link, one writable by others (also with
#    a planted netns -> elsewhere link), one under a directory writable by
#    others, one that holds what is not postern's (as /run would: here a
#    namespace mount and a file), and one another broker holds: each is
#    refused at start with a message that says what and how to fix it, and
#    nothing in it, nor where its links point, is touched;
#  - a missing state dir is made 0700;
#  - an `ip netns` namespace named TABLE-foo and a second broker's alias
#    (table TABLE-b, whose aliases start with "TABLE-") survive a broker's
#    start and stop, also where the broker would want the same alias name
#    (its sandbox "b-x"): it does without.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

echo_sb() { # name port
	echo '"'"$1"'": { "trigger": { "listen": ["127.0.0.1:'"$2"'"] }, "exec": ["/opt/postern/echo"],
	  "filesystem": '"$FS_JSON"' }'
}
# refused STATE_DIR WANT: a broker with that state dir exits 1 at start,
# logging WANT (as logfmt quotes it: \" for "); nothing of the table is made
refused() {
	STATE="$1" broker_json "{ $(echo_sb echo 7400) }" >"$T/refused.json"
	local out rc=0
	out=$(timeout 20 nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/refused.json" 2>&1) || rc=$?
	assert_eq "$rc" 1 "exit status with state dir $1 (output: $out)"
	assert_contains "$out" "$2" "refusal of state dir $1"
	assert_not_contains "$(in_lab nft list tables 2>/dev/null)" "$TABLE" "table made for a refused state dir"
	note "refused: $(grep -o 'netpolicy: state dir.*' <<<"$out" | head -n 1)"
}
# what a tree holds, to compare: path, type, mode, size
tree() { find "$1" -printf '%P %y %m %s\n' | sort; }

# a symbolic link as the state dir (planted where others can write), to a
# root-owned directory with postern-like names in it
mkdir -m 0700 "$T/victim" "$T/victim/netns"
echo precious >"$T/victim/netns/echo"; echo precious >"$T/victim/lock"
before=$(tree "$T/victim")
ln -s "$T/victim" "$T/link-state"
refused "$T/link-state" "netpolicy: state dir $T/link-state: is a symbolic link: use a root-owned directory with mode 0700 itself, not a link to one"
assert_eq "$(tree "$T/victim")" "$before" "the link's target"

# writable by others, with a netns -> victim link planted in it
mkdir "$T/open-state"; chmod 0777 "$T/open-state"
ln -s "$T/victim/netns" "$T/open-state/netns"
refused "$T/open-state" "netpolicy: state dir $T/open-state: writable by group or others (mode 0777): use a root-owned directory with mode 0700"
assert_eq "$(tree "$T/victim")" "$before" "what the planted link points to"
[ -L "$T/open-state/netns" ] || fail "the planted link was removed"
# the same dir made 0700: the planted link is still not postern's
chmod 0700 "$T/open-state"
refused "$T/open-state" "netpolicy: state dir $T/open-state: holds \\\"netns\\\", which is not postern's: use a directory of its own for broker.state_dir"
assert_eq "$(tree "$T/victim")" "$before" "what the planted link points to (0700)"

# under a directory others can write (not sticky)
mkdir "$T/open"; chmod 0777 "$T/open"; mkdir -m 0700 "$T/open/state"
refused "$T/open/state" "netpolicy: state dir $T/open/state: $T/open is writable by group or others (mode 0777): use a state dir whose parent directories only root can write"

# a directory that is not postern's, as /run is: a namespace mount of
# someone else's in netns/, and other files
FOO="$TABLE-foo"
ip netns add "$FOO" || fail "ip netns add $FOO"
on_exit "ip netns del $FOO 2>/dev/null"
mkdir -m 0755 "$T/run" "$T/run/netns"; echo x >"$T/run/utmp"
touch "$T/run/netns/theirs"; mount --bind "/run/netns/$FOO" "$T/run/netns/theirs" || fail "bind mount"
refused "$T/run" "netpolicy: state dir $T/run: holds \\\"utmp\\\", which is not postern's: use a directory of its own for broker.state_dir"
[ "$(stat -f -c %T "$T/run/netns/theirs")" = nsfs ] || fail "a namespace mount in a foreign state dir was removed"
[ -f "$T/run/utmp" ] || fail "a file of a foreign state dir was removed"
umount "$T/run/netns/theirs"

# a missing state dir is made, 0700; TABLE-foo (ip netns) and a second
# broker's aliases survive this broker's start and stop
B_TABLE="$TABLE-b" B_STATE="$T/state-b" B_CONTROL="$T/control-b.sock" B_LOG="$T/broker-b.log"
TABLE="$B_TABLE" STATE="$B_STATE" CONTROL="$B_CONTROL" broker_json "{ $(echo_sb x 7410) }" >"$T/b.json"
# (its cgroups are named after its table, which starts with ours: cg_cleanup
# finds them too; in service placement it gets a service cgroup of its own,
# as run_placed does, but started here so that $! is the broker itself)
if _pst_placed; then
	B_CG=$(_pst_service_cg helper) || exit 1
	# shellcheck disable=SC2016
	sh -c 'echo $$ >"$0/cgroup.procs" || exit 125; exec "$@"' "$B_CG" \
		nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/b.json" >>"$B_LOG" 2>&1 &
else
	nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$T/b.json" >>"$B_LOG" 2>&1 &
fi
B_PID=$!
bg_pid "$B_PID"
wait_for 10 grep -q 'event=start ' "$B_LOG" || { cat "$B_LOG" >&2; fail "broker b did not start"; }
[ "$(stat -f -c %T "/run/netns/$B_TABLE-x")" = nsfs ] || fail "broker b has no alias $B_TABLE-x"
b_ino=$(stat -c %i "/run/netns/$B_TABLE-x")

broker_json "{ $(echo_sb echo 7401), $(echo_sb b-x 7402) }" >"$T/policy.json"
[ ! -e "$STATE" ] || fail "state dir exists before the start"
broker_start "$T/policy.json"
assert_eq "$(stat -c '%a %u' "$STATE")" "700 0" "a state dir made by the broker"
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7401 "mine")" "mine" "echo"
[ "$(stat -f -c %T "/run/netns/$TABLE-echo")" = nsfs ] || fail "no alias $TABLE-echo"
assert_contains "$(cat "$BROKER_LOG")" "/run/netns/$B_TABLE-x exists and is not ours: no ip netns alias" "alias taken"
assert_eq "$(stat -c %i "/run/netns/$B_TABLE-x")" "$b_ino" "broker b's alias while the other runs"
ip netns list | grep -q "^$FOO\b" || fail "ip netns $FOO gone at the start"

# a second broker on the same state dir is refused, and the first keeps
# what it has there
B2="$T/b2.json"
TABLE="${TABLE}c" CONTROL="$T/control-c.sock" broker_json "{ $(echo_sb echo 7420) }" >"$B2"
out=$(timeout 20 nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$B2" 2>&1) && fail "a second broker started on the same state dir: $out"
assert_contains "$out" "netpolicy: state dir $STATE: in use by another broker (pid $BROKER_PID): give each broker its own broker.state_dir" "shared state dir"
for n in echo b-x; do
	[ "$(stat -f -c %T "$STATE/netns/$n")" = nsfs ] || fail "the first broker's $STATE/netns/$n after a second one tried"
done
assert_eq "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7402 "still")" "still" "the first broker after a second one tried"
in_lab nft list table inet "${TABLE}c" >/dev/null 2>&1 && fail "the refused broker made its table"

broker_stop
ip netns list | grep -q "^$FOO\b" || fail "ip netns $FOO removed by the broker"
assert_eq "$(stat -f -c %T "/run/netns/$B_TABLE-x")" nsfs "broker b's alias after the other's stop"
assert_eq "$(stat -c %i "/run/netns/$B_TABLE-x")" "$b_ino" "broker b's alias after the other's stop"
[ ! -e "/run/netns/$TABLE-echo" ] || fail "alias $TABLE-echo left"
assert_eq "$("$POSTERN" status --json -s "$B_CONTROL" | jq -r '.sandboxes[0].name')" x "broker b still serves"

# and again: a restart of this broker (its clean-up) leaves them alone
broker_start "$T/policy.json"
broker_stop
ip netns list | grep -q "^$FOO\b" || fail "ip netns $FOO removed by a restart"
assert_eq "$(stat -c %i "/run/netns/$B_TABLE-x")" "$b_ino" "broker b's alias after a restart of the other"
kill -TERM "$B_PID"; wait "$B_PID" || fail "broker b exited $?"
[ ! -e "/run/netns/$B_TABLE-x" ] || fail "broker b's alias left after its stop"
ip netns del "$FOO"
assert_clean_lab
echo "state dir: ok"
