#!/usr/bin/env bash
# Bind sources and mount points are never followed through a symlink a
# handler planted (tests/helpers/hostile-sandbox):
#  - `check` refuses a bind source inside an rw bind (of any sandbox, or the
#    same one), and a bind source with a symlink in its path (saying the
#    real path);
#  - where the check cannot see it (the rw directory reaches the source by
#    another path: a bind mount on the host), a handler with the rw bind
#    replaces the other sandbox's bind source with a symlink to /etc: the
#    other sandbox's next spawn fails naming the bind, and its handler never
#    sees the host's /etc; a reload is refused by the check;
#  - a handler replaces a directory on the way to a mount point (inside its
#    rw bind) with a symlink to a host directory: the next root built (a
#    spawn, or a root template at a reload) creates nothing there, and the
#    spawn fails naming the bind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

H=/opt/helpers/hostile-sandbox
mkdir -p "$T/shared/pub" "$T/rw2" "$T/conf" "$T/outside" "$T/alias"
echo marker >"$T/shared/pub/marker"
echo setting >"$T/conf/app.conf"
chmod 777 "$T/shared" "$T/rw2"
chmod 755 "$T/shared/pub" "$T/conf" "$T/outside"
chmod 644 "$T/shared/pub/marker" "$T/conf/app.conf"
ln -s shared "$T/link"

# ---- check: nested and symlinked sources ---------------------------------------
sb() { # sb NAME PORT FS_EXTRA: a sandbox running the probe
	echo '"'"$1"'": { "trigger": { "listen": ["127.0.0.1:'"$2"'"] }, "exec": ["'$H'"], "filesystem": '"$(jq -c ". + $3" <<<"$FS_JSON")"' }'
}
writer=$(sb writer 7301 '[ { "bind": "'"$T"'/shared", "to": "/data", "mode": "rw" } ]')
broker_json "{ $writer, $(sb reader 7302 '[ { "bind": "'"$T"'/shared/pub", "to": "/pub" } ]') }" >"$T/nested.json"
rc=0; err=$("$POSTERN" check "$T/nested.json" 2>&1) || rc=$?
assert_eq "$rc" 1 "check: a bind source inside an rw bind of another sandbox"
assert_contains "$err" "sandboxes.reader.filesystem[7].bind: \"$T/shared/pub\": lies inside \"$T/shared\", an rw bind of sandbox \"writer\" (filesystem[7])" "nested source, other sandbox"
broker_json "{ $(sb self 7303 '[ { "bind": "'"$T"'/shared", "to": "/data", "mode": "rw" }, { "bind": "'"$T"'/shared/pub", "to": "/pub" } ]') }" >"$T/self.json"
rc=0; err=$("$POSTERN" check "$T/self.json" 2>&1) || rc=$?
assert_eq "$rc" 1 "check: a bind source inside an rw bind of the same sandbox"
assert_contains "$err" "sandboxes.self.filesystem[8].bind: \"$T/shared/pub\": lies inside \"$T/shared\", an rw bind of this sandbox" "nested source, same sandbox"
broker_json "{ $(sb viasym 7304 '[ { "bind": "'"$T"'/link/pub", "to": "/pub" } ]') }" >"$T/sym.json"
rc=0; err=$("$POSTERN" check "$T/sym.json" 2>&1) || rc=$?
assert_eq "$rc" 1 "check: a symlink in a bind source"
assert_contains "$err" "\"$T/link\" is a symlink (to \"shared\"): bind sources are not followed through symlinks; if that is what is meant, declare the real path \"$T/shared/pub\"" "symlinked source"

# ---- a source swapped for a symlink, where the check cannot see it -------------
# $T/alias is $T/shared by another name: a bind mount made on the host.
# reader and dstw build their root at each spawn (a bind under a tmpfs entry:
# no root template); dstt copies its root template, built at each load.
mount --bind "$T/shared" "$T/alias" || fail "bind mount for the alias"
on_exit "umount -l '$T/alias' 2>/dev/null"
mkdir -p "$T/rw3" && chmod 777 "$T/rw3"
notmpl='{ "tmpfs": "/w" }, { "bind": "'"$T"'/conf", "to": "/w/conf" }'
reader=$(sb reader 7302 '[ '"$notmpl"', { "bind": "'"$T"'/alias/pub", "to": "/pub" } ]')
dstw=$(sb dstw 7305 '[ '"$notmpl"', { "bind": "'"$T"'/rw2", "to": "/data", "mode": "rw" }, { "bind": "'"$T"'/conf/app.conf", "to": "/data/etc/app.conf" } ]')
dstt=$(sb dstt 7306 '[ { "bind": "'"$T"'/rw3", "to": "/data", "mode": "rw" }, { "bind": "'"$T"'/conf/app.conf", "to": "/data/etc/app.conf" } ]')
broker_json "{ $writer, $reader, $dstw, $dstt }" >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"

out=$(in_lab "$CLIENT" 127.0.0.1:7302 "look /pub")
assert_line "$out" "/pub: marker" "reader sees its bind"
out=$(in_lab "$CLIENT" 127.0.0.1:7301 "swap /data/pub /etc")
assert_line "$out" "rename: ALLOWED" "writer renames the other sandbox's bind source"
assert_line "$out" "symlink: ALLOWED" "writer plants a symlink to /etc there"
[ -L "$T/alias/pub" ] || fail "the source is not a symlink now"

# the next spawn of the reader binds the swapped source... or fails
out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7302 "look /pub" 2>&1 || true)
note "reader after the swap: $out"
assert_not_contains "$out" "passwd" "the reader's handler sees the host's /etc"
assert_not_contains "$out" "shadow" "the reader's handler sees the host's /etc"
wait_for 5 grep -q "event=spawn_failed sandbox=reader .*bind $T/alias/pub -> /pub (a symlink in the source path: bind sources are not followed): Too many levels of symbolic links" "$BROKER_LOG" ||
	fail "no spawn_failed naming the bind: $(grep 'sandbox=reader' "$BROKER_LOG" | tail -3)"

# a reload checks the policy again, and refuses the swapped source: the
# old roots stay
kill -HUP "$BROKER_PID"
wait_for 10 grep -q 'event=reload_failed' "$BROKER_LOG" || fail "the reload with a swapped source was not refused"
grep -q "event=reload_invalid .*alias/pub.* is a symlink (to .*/etc.*): bind sources are not followed" "$BROKER_LOG" ||
	fail "the reload's refusal does not name the swapped source: $(grep reload_invalid "$BROKER_LOG")"

# the destination side: a directory on the way to a mount point, in the
# handler's own rw bind, replaced with a symlink to a host directory; the
# next root built (dstw: the next spawn; dstt: its template, at a reload)
# must create nothing there
for sp in dstw:7305 dstt:7306; do
	out=$(in_lab "$CLIENT" 127.0.0.1:"${sp#*:}" "look /data/etc")
	assert_line "$out" "/data/etc: app.conf" "${sp%:*} sees its file bind"
	out=$(in_lab "$CLIENT" 127.0.0.1:"${sp#*:}" "swap /data/etc $T/outside")
	assert_line "$out" "symlink: ALLOWED" "${sp%:*} plants a symlink on the way to a mount point"
done
in_lab "$CLIENT" -t 5000 127.0.0.1:7305 "look /data" >/dev/null 2>&1
wait_for 5 grep -q "event=spawn_failed sandbox=dstw .*bind $T/conf/app.conf -> /data/etc/app.conf (mount point: a symlink on the way, not followed): Too many levels of symbolic links" "$BROKER_LOG" ||
	fail "dstw: no spawn_failed naming the mount point: $(grep 'sandbox=dstw' "$BROKER_LOG" | tail -3)"
# a policy the check accepts again (without reader): dstt's template is built anew
broker_json "{ $writer, $dstw, $dstt }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 10 grep -q 'event=reloaded' "$BROKER_LOG" || fail "no reloaded line"
in_lab "$CLIENT" -t 5000 127.0.0.1:7306 "look /data" >/dev/null 2>&1
wait_for 5 grep -q "event=spawn_failed sandbox=dstt .*bind $T/conf/app.conf -> /data/etc/app.conf (mount point: a symlink on the way, not followed): Too many levels of symbolic links" "$BROKER_LOG" ||
	fail "dstt: no spawn_failed naming the mount point: $(grep 'sandbox=dstt' "$BROKER_LOG" | tail -3)"
[ -z "$(ls -A "$T/outside")" ] || fail "a mount point was made in a host directory through a handler's symlink: $(ls -A "$T/outside")"

# the writer, untouched, still works
out=$(in_lab "$CLIENT" 127.0.0.1:7301 "look /data")
assert_contains "$out" "/data: " "writer still served"

broker_stop
assert_clean_lab
echo "hostile binds: ok"
