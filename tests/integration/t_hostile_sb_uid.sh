#!/usr/bin/env bash
# A sandbox's host uid follows its name, not its position: a reload that
# reorders sandboxes and inserts one in front, while a handler of the first
# runs, leaves every uid as it was, so no handler of another sandbox can
# read the files the running handler made its own (mode 0600). A reload
# that would change the uid of a sandbox with running handlers, or give
# their uid to a sandbox of another name, is refused, and goes through once
# they are gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

mkdir -p "$T/adata"
chmod 777 "$T/adata"
FS_A=$(jq -c --arg d "$T/adata" '. + [ { "bind": $d, "to": "/data", "mode": "rw" } ]' <<<"$FS_JSON")
FS_R=$(jq -c --arg d "$T/adata" '. + [ { "bind": $d, "to": "/adata" } ]' <<<"$FS_JSON")
a() { # a [EXTRA_KEYS]: the owner; its handler writes a file of its own and stays a while
	echo '"a": { "trigger": { "listen": ["127.0.0.1:7501"] }, "filesystem": '"$FS_A"''"${1:+, $1}"',
	       "exec": ["/bin/sh", "-c", "umask 077; echo secret-of-a >/data/secret; echo \"wrote uid=$(id -u)\"; sleep 3; echo done"] }'
}
reader() { # reader NAME PORT: reads what a wrote
	echo '"'"$1"'": { "trigger": { "listen": ["127.0.0.1:'"$2"'"] }, "filesystem": '"$FS_R"',
	       "exec": ["/bin/sh", "-c", "echo \"uid=$(id -u)\"; cat /adata/secret 2>&1"] }'
}
uid_of() { sed -n "s/.* event=sandbox name=$1 .* uid=\([0-9]*\) .*/\1/p" "$BROKER_LOG" | tail -1; }

broker_json "{ $(a), $(reader b 7502) }" >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"
uid_a=$(uid_of a)
uid_b=$(uid_of b)
[ -n "$uid_a" ] && [ -n "$uid_b" ] && [ "$uid_a" != "$uid_b" ] || fail "uids a=$uid_a b=$uid_b"

# a handler of a runs and writes its file
in_lab "$CLIENT" -t 10000 127.0.0.1:7501 "" >"$T/a.out" 2>&1 &
apid=$!
wait_for 5 grep -q wrote "$T/a.out" || fail "a did not write: $(cat "$T/a.out")"
assert_contains "$(cat "$T/a.out")" "wrote uid=$uid_a" "a's handler runs as a's uid"
assert_eq "$(stat -c %u "$T/adata/secret")" "$uid_a" "the file is a's"

# reload: c inserted in front, b before a. Positions change, uids do not.
broker_json "{ $(reader c 7503), $(reader b 7502), $(a) }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reloaded' "$BROKER_LOG" || fail "the reorder was not reloaded: $(grep reload "$BROKER_LOG")"
for r in b:7502 c:7503; do
	out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:"${r#*:}" "")
	note "${r%:*} after the reorder: $out"
	assert_not_contains "$out" "secret-of-a" "sandbox ${r%:*} reads what a's running handler wrote"
	assert_contains "$out" "Permission denied" "${r%:*}: a's file is not its to read"
	! grep -qx "uid=$uid_a" <<<"$out" || fail "sandbox ${r%:*} runs with a's uid $uid_a"
done
assert_contains "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7502 "")" "uid=$uid_b" "b keeps its uid"
assert_eq "$(sb_stat a .active)" 1 "a's handler still runs"

# a's uid cannot change while its handler runs, nor go to another name
broker_json "{ $(reader c 7503), $(reader b 7502), $(a '"uid": 4123456') }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q "event=reload_failed sandbox=a uid=$uid_a new_uid=4123456 running=a" "$BROKER_LOG" ||
	fail "a uid change under a running handler was not refused: $(grep reload_ "$BROKER_LOG")"
broker_json "{ $(reader c 7503), \"z\": { \"trigger\": { \"listen\": [\"127.0.0.1:7504\"] }, \"exec\": [\"/bin/true\"], \"uid\": $uid_a } }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q "event=reload_failed sandbox=z uid=- new_uid=$uid_a running=a" "$BROKER_LOG" ||
	fail "a's running uid given to another sandbox was not refused: $(grep reload_ "$BROKER_LOG")"
assert_eq "$(grep -c 'event=reloaded' "$BROKER_LOG")" 1 "only the reorder was applied"

# once a's handler is gone, the uid change goes through
wait "$apid"
assert_contains "$(cat "$T/a.out")" "done" "a's handler finished undisturbed"
wait_for 5 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"a\") | .active')\" = 0 ]" || fail "a still active"
broker_json "{ $(reader c 7503), $(reader b 7502), $(a '"uid": 4123456') }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 sh -c "[ \$(grep -c 'event=reloaded' '$BROKER_LOG') = 2 ]" || fail "the uid change was not applied once a was idle"

broker_stop
assert_clean_lab
echo "hostile uid: ok"
