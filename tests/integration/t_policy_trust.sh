#!/usr/bin/env bash
# The policy file says what root mounts, deletes and runs: `postern run` and
# a reload refuse one that others could change (writable by group or
# others, owned by another user, or reached through a directory others may
# write, also through a symlink), naming the path and what is wrong;
# --insecure-policy takes it anyway, saying so.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

broker_json '{
  "echo": { "trigger": { "listen": ["127.0.0.1:7501"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' }
}' >"$T/policy.json"
chmod 644 "$T/policy.json"

refused() { # refused FILE TEXT: run refuses FILE, saying TEXT
	local out rc=0
	out=$(nsenter --net=/run/netns/"$LAB" "$POSTERN" run "$1" 2>&1) || rc=$?
	[ "$rc" = 1 ] || fail "run of $1 exited $rc: $out"
	assert_contains "$out" "$2" "refusal of $1"
	assert_contains "$out" "--insecure-policy" "the refusal says how to override it"
	assert_not_contains "$(in_lab nft list tables 2>/dev/null)" "$TABLE" "a refused start made its table"
}

# writable by others
cp "$T/policy.json" "$T/open.json"
chmod 666 "$T/open.json"
refused "$T/open.json" "$T/open.json is writable by group or others (mode 0666, uid 0)"
# owned by another user
cp "$T/policy.json" "$T/owned.json"
chown 65534 "$T/owned.json"
refused "$T/owned.json" "$T/owned.json is not owned by root"
# a good file reached through a symlink in a directory others may write
mkdir -m 0777 "$T/open-dir"
ln -s "$T/policy.json" "$T/open-dir/link.json"
refused "$T/open-dir/link.json" "$T/open-dir is writable by others (mode 0777"
# a symlink whose target lies in such a directory
cp "$T/policy.json" "$T/open-dir/real.json"
ln -s "$T/open-dir/real.json" "$T/via.json"
refused "$T/via.json" "$T/open-dir is writable by others"
# the sticky /tmp on the way is fine: the tests' own policies live there
broker_start "$T/policy.json"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7501 ok)" ok "a trusted policy"

# a reload of a policy that became writable by others: refused, old kept
chmod 666 "$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reload_invalid .*writable by group or others' "$BROKER_LOG" ||
	fail "reload of an untrusted policy not refused: $(grep reload "$BROKER_LOG")"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7501 still)" still "the old policy kept"
chmod 644 "$T/policy.json"
broker_stop

# --insecure-policy: taken, with a warning
: >"$BROKER_LOG"
broker_start "$T/open.json" --insecure-policy
grep -q 'event=policy .*trust="not checked (--insecure-policy)"' "$BROKER_LOG" || fail "no warning for --insecure-policy"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7501 dev)" dev "an untrusted policy with --insecure-policy"
broker_stop
assert_clean_lab
echo "policy trust: ok"
