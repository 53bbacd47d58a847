#!/usr/bin/env bash
# A Python handler, with the root README's "Writing handlers" gives it: /usr
# and the merged-/usr links, the script bound read-only, a tmpfs /tmp
# (tempfile) and a tmpfs /dev/shm (multiprocessing's semaphores: an entry
# under postern's own /dev), and, where the policy loader knows it,
# "identity_files": true (a passwd entry for its uid, /etc/hosts with
# localhost). The handler reports what it found over its socket. Then the
# README's own Python example, as it is written there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no $PY"

cat >"$T/hello.py" <<'PY'
import multiprocessing, os, pwd, socket, sys, tempfile
line = sys.stdin.readline().strip()
with tempfile.TemporaryFile() as f:            # /tmp
    f.write(b"x")
lock = multiprocessing.Lock()                  # /dev/shm
try:
    user = pwd.getpwuid(os.getuid()).pw_name   # /etc/passwd
except KeyError:
    user = "-"
try:
    host = socket.gethostbyname("localhost")   # /etc/hosts
except OSError:
    host = "-"
print(line, os.environ["PROTO"], os.environ["TCPREMOTEIP"], user, host, flush=True)
PY
chmod 644 "$T/hello.py"

fs='[ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
      { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" },
      { "bind": "'"$T"'/hello.py", "to": "/srv/hello.py" },
      { "tmpfs": "/tmp", "size": "16M" }, { "tmpfs": "/dev/shm", "size": "16M" } ]'
sb() { echo '{ "hello": { "trigger": { "listen": ["127.0.0.1:7000"] },
	 "exec": ["'"$PY"'", "/srv/hello.py"], "filesystem": '"$fs"' '"$1"',
	 "limits": { "memory": "128M", "timeout": "20s" } } }'; }
broker_json "$(sb ', "identity_files": true')" >"$T/policy.json"
ident=1
if ! "$POSTERN" check -q "$T/policy.json" 2>"$T/check.err"; then
	grep -q 'identity_files: unknown key' "$T/check.err" || fail "python policy invalid: $(cat "$T/check.err")"
	note "this postern has no identity_files: asserting the rest"
	ident=0
	broker_json "$(sb '')" >"$T/policy.json"
	"$POSTERN" check -q "$T/policy.json" || fail "python policy invalid"
fi
broker_start "$T/policy.json"
out=$(in_lab "$CLIENT" 127.0.0.1:7000 "hi")
if [ "$ident" = 1 ]; then
	assert_eq "$out" "hi TCP 127.0.0.1 postern 127.0.0.1" "what the Python handler found"
else
	assert_eq "$out" "hi TCP 127.0.0.1 - -" "what the Python handler found"
fi
assert_eq "$(count_log 'event=spawn_failed')" 0 "spawn failures"
# the same twice at once: each handler has its own /dev/shm
in_lab "$CLIENT" 127.0.0.1:7000 "a" >"$T/a.out" &
apid=$!
b=$(in_lab "$CLIENT" 127.0.0.1:7000 "b")
wait "$apid"
assert_contains "$(cat "$T/a.out")" "a TCP" "the first of two at once"
assert_contains "$b" "b TCP" "the second of two at once"
broker_stop

# README's example ("Writing handlers", "In any language") as it is there:
# its policy (with this run's broker keys and the script's path) and script
awk '/^A complete policy for one/ { f = 1 } f && /^```json$/ { p = 1; next } p && /^```$/ { exit } p' \
	"$ROOT/README.md" >"$T/readme.json"
awk '/^with `\/srv\/hello\/hello.py`:/ { f = 1 } f && /^```python$/ { p = 1; next } p && /^```$/ { exit } p' \
	"$ROOT/README.md" >"$T/readme.py"
[ -s "$T/readme.json" ] && [ -s "$T/readme.py" ] || fail "README's Python example not found"
chmod 644 "$T/readme.py"
jq --arg t "$TABLE" --arg c "$CONTROL" --arg s "$STATE" --argjson u "$UID_BASE" --arg py "$T/readme.py" \
	--argjson ident "$ident" '
	.broker = { table: $t, control: $c, state_dir: $s, uid_base: $u, grace: "3s" }
	| .sandboxes.hello.filesystem |= map(if .bind == "/srv/hello/hello.py" then .bind = $py else . end)
	| if $ident == 1 then . else del(.sandboxes.hello.identity_files) end' \
	"$T/readme.json" >"$T/policy.json" || fail "README's Python policy is not JSON"
"$POSTERN" check -q "$T/policy.json" || fail "README's Python policy is invalid"
broker_start "$T/policy.json"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:8000 "hi")" "hello 127.0.0.1, you said 'hi'" "README's Python example"
broker_stop
assert_clean_lab
