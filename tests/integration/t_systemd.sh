#!/usr/bin/env bash
# systemd's part played by tests/helpers/fake-systemd: sockets passed with
# LISTEN_FDS/LISTEN_FDNAMES and matched by name (echo served over them, the
# broker binding nothing itself), sd_notify READY/RELOADING+MONOTONIC_USEC/
# STATUS/WATCHDOG/STOPPING on the notify socket (abstract and path), a
# handler's environment without the broker's NOTIFY_SOCKET/LISTEN_*, a
# socket named like a sandbox but bound elsewhere refused at start, a wrong
# LISTEN_PID ignored; --log-format=json and logfmt lines parse (a hostile
# handler's stderr included); JOURNAL_STREAM gives <N> prefixes only when
# it names stderr; systemd-analyze verify of the shipped units.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

FAKE="$BUILD/tests/helpers/fake-systemd"
[ -x "$FAKE" ] || fail "missing $FAKE: run make first"
NLOG="$T/notify.log"
INFO="$T/info"

# ---- the units: systemd-analyze verify (offline; ExecStart at the build) --
# probe: can systemd-analyze verify a trivial unit here (offline, no manager)?
mkdir "$T/units"
printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$T/units/probe.service"
if command -v systemd-analyze >/dev/null &&
	[ -z "$(systemd-analyze verify --man=no "$T/units/probe.service" 2>&1)" ]; then
	sed "s|/usr/local/sbin/postern|$POSTERN|g" "$ROOT/examples/systemd/postern.service" >"$T/units/postern.service"
	cp "$ROOT/examples/systemd/postern.socket" "$T/units/"
	out=$(systemd-analyze verify --man=no "$T/units/postern.service" "$T/units/postern.socket" 2>&1) ||
		fail "systemd-analyze verify failed: $out"
	[ -z "$out" ] || fail "systemd-analyze verify complains: $out"
	# what the units promise the broker
	for k in Type=notify NotifyAccess=main Delegate=yes KillMode=mixed WatchdogSec= \
		"ExecReload=$POSTERN reload -c /etc/postern/postern.json" Sockets=postern.socket; do
		assert_contains "$(cat "$T/units/postern.service")" "$k" "postern.service"
	done
	for k in "ListenStream=127.0.0.1:7000" "ListenStream=[::1]:7000" FileDescriptorName=echo; do
		assert_contains "$(cat "$T/units/postern.socket")" "$k" "postern.socket (policies/echo.json's addresses)"
	done
else
	note "systemd-analyze does not run here: units not verified"
fi

# ---- JOURNAL_STREAM: <N> only when it names stderr (no lab needed) -------
: >"$T/j.log"
jst=$(stat -c '%d:%i' "$T/j.log")
JOURNAL_STREAM=$jst "$POSTERN" run "$T/none.json" 2>>"$T/j.log" && fail "a missing policy started"
assert_contains "$(head -1 "$T/j.log")" "<3>level=error event=policy" "journald: priority prefix, no ts"
assert_not_contains "$(cat "$T/j.log")" "ts=" "journald: no ts= (the journal stamps lines)"
: >"$T/j2.log"
JOURNAL_STREAM="$(stat -c '%d' "$T/j2.log"):1" "$POSTERN" run "$T/none.json" 2>>"$T/j2.log"
first=$(head -1 "$T/j2.log")
[ "${first:0:3}" = "ts=" ] || fail "JOURNAL_STREAM naming another file changed the format: $first"

# ---- the policy ------------------------------------------------------------
ENVSB='"envp": { "trigger": { "listen": ["127.0.0.1:7001"] }, "exec": ["/usr/bin/env"], "filesystem": '"$FS_JSON"' }'
ECHO='"echo": { "trigger": { "listen": ["127.0.0.1:7000", "[::1]:7000", "unix:'"$T"'/echo.sock"] }, "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"' }'
SLOW='"slow": { "trigger": { "listen": ["127.0.0.1:7004"] }, "exec": ["/bin/sh", "-c", "sleep 3; echo slow-done"], "filesystem": '"$FS_JSON"' }'
# writes hostile bytes (ESC, BEL, a quote, '=', invalid UTF-8) to its stderr
EVIL='"evil": { "trigger": { "listen": ["127.0.0.1:7003"] }, "exec": ["/bin/sh", "-c", "printf '"'"'a\\033]0;x\\007\\377\"b=c d\\n'"'"' >&2; echo ok"], "filesystem": '"$FS_JSON"' }'
broker_json "{ $ECHO, $ENVSB, $EVIL, $SLOW }" >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || fail "test policy invalid"

# fs_start FAKE_OPTION... -- POSTERN_RUN_OPTION...: the broker under
# fake-systemd in the lab (placed as broker_start places it); FS_PID,
# BROKER_PID set.
fs_start() {
	local opts=() cg=
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	rm -f "$INFO" "$NLOG"
	if _pst_placed; then cg=$(_pst_service_cg broker) || exit 1; opts+=(-c "$cg"); fi
	nsenter --net=/run/netns/"$LAB" "$FAKE" "${opts[@]}" -n "$NLOG" -i "$INFO" -- \
		"$POSTERN" run "$@" "$T/policy.json" >>"$BROKER_LOG" 2>&1 &
	FS_PID=$!
	bg_pid "$FS_PID"
	wait_for 5 grep -q '^pid ' "$INFO" || fail "fake-systemd did not start"
	BROKER_PID=$(awk '$1 == "pid" { print $2 }' "$INFO")
	bg_pid "$BROKER_PID"
}
nlines() { grep -c -- "$1" "$NLOG" 2>/dev/null || true; }
fs_wait_exit() {
	wait_for 15 grep -q '^EXIT ' "$NLOG" || fail "the broker did not exit"
	wait "$FS_PID" 2>/dev/null
	sed -n 's/^EXIT //p' "$NLOG"
}

# ---- socket activation, notify, watchdog ----------------------------------
fs_start -l echo=127.0.0.1:7000 -l "echo=[::1]:7000" -l envp=127.0.0.1:7001 -l other=127.0.0.1:7003 \
	-l -=127.0.0.1:7009 -l "echo=unix:$T/echo.sock" -w 400000 --
wait_for 10 grep -q ' READY=1$' "$NLOG" || fail "no READY=1: $(cat "$NLOG")"
# READY=1 means serving: the first connection right after it is answered
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 "over fd")" "over fd" "echo over the inherited IPv4 fd"
assert_eq "$(in_lab "$CLIENT" "[::1]:7000" "over fd6")" "over fd6" "echo over the inherited IPv6 fd"
assert_eq "$(in_lab "$CLIENT" "unix:$T/echo.sock" "over unix fd")" "over unix fd" "echo over the inherited unix fd"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7003 x)" "ok" "evil: unnamed-for-it fd matched by address"
# the listening socket is the helper's (same inode), held by the broker
ino=$(awk '$1 == "fd" && $4 == "127.0.0.1:7000" { print $5 }' "$INFO")
ssl=$(in_lab ss -Hltnpe 'sport = :7000' | grep -F '127.0.0.1:7000')
assert_eq "$(wc -l <<<"$ssl")" 1 "one listening socket on 127.0.0.1:7000"
assert_contains "$ssl" "ino:$ino " "the broker serves the socket the helper made"
assert_contains "$ssl" "pid=$BROKER_PID," "the broker holds the inherited socket"
grep -q 'event=inherit .*fd=7 name=- address=127.0.0.1:7009 .*closed' "$BROKER_LOG" ||
	fail "no warning for the unused inherited fd: $(grep event=inherit "$BROKER_LOG")"
# STATUS= in the READY=1 datagram, and the watchdog
assert_contains "$(cat "$NLOG")" "STATUS=serving 4 sandboxes, 0 handlers, 0 pre-warmed" "STATUS line"
# STATUS= follows a change (at most once a second)
in_lab "$CLIENT" -t 10000 127.0.0.1:7004 >"$T/slow.out" 2>&1 &
wait_for 5 grep -q 'STATUS=serving 4 sandboxes, 1 handler, 0 pre-warmed$' "$NLOG" ||
	fail "STATUS= did not follow a running handler: $(grep STATUS= "$NLOG")"
wait_for 10 grep -q slow-done "$T/slow.out" || fail "the slow handler did not finish"
wait_for 5 sh -c "tail -n 20 '$NLOG' | grep -q 'STATUS=serving 4 sandboxes, 0 handlers, 0 pre-warmed\$'" ||
	fail "STATUS= did not follow the handler's exit"
w0=$(nlines ' WATCHDOG=1$')
sleep 3
w1=$(nlines ' WATCHDOG=1$')
# every 200 ms: 15 in 3 s; loose bounds for a loaded machine
[ $((w1 - w0)) -ge 7 ] && [ $((w1 - w0)) -le 25 ] || fail "watchdog pings in 3 s: $((w1 - w0)) (want about 15)"

# the handler's environment: nothing of the broker's systemd
envout=$(in_lab "$CLIENT" 127.0.0.1:7001 "")
assert_contains "$envout" "PROTO=TCP" "the env handler ran"
for v in NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID LISTEN_FDS LISTEN_PID LISTEN_FDNAMES JOURNAL_STREAM; do
	assert_not_contains "$envout" "$v=" "handler environment"
done

# ---- reload: RELOADING=1 + MONOTONIC_USEC, then READY=1 (applied, refused)
r0=$(nlines ' READY=1$')
kill -HUP "$BROKER_PID"
wait_for 10 sh -c "[ \$(grep -c ' READY=1\$' '$NLOG') -gt $r0 ]" || fail "no READY=1 after the reload"
rel=$(grep ' RELOADING=1$' "$NLOG" | tail -1)
[ -n "$rel" ] || fail "no RELOADING=1"
mono=$(grep ' MONOTONIC_USEC=' "$NLOG" | tail -1)
recv=${mono%% *} sent=${mono##*=}
[ "$sent" -le "$recv" ] && [ $((recv - sent)) -lt 2000000 ] ||
	fail "MONOTONIC_USEC=$sent not just before its arrival at $recv"
# RELOADING=1 comes before the READY=1 that ends it
awk '/ RELOADING=1$/ { r = NR } / READY=1$/ { y = NR } END { exit !(r && y > r) }' "$NLOG" ||
	fail "READY=1 not after RELOADING=1: $(cat "$NLOG")"
grep -q 'event=reloaded' "$BROKER_LOG" || fail "the reload was not applied"
# refused: still READY=1 after it
cp "$T/policy.json" "$T/policy.good"
echo '{ "postern": 1, "sandboxes": ' >"$T/policy.json"
r1=$(nlines ' READY=1$') l1=$(nlines ' RELOADING=1$')
kill -HUP "$BROKER_PID"
wait_for 10 sh -c "[ \$(grep -c ' READY=1\$' '$NLOG') -gt $r1 ]" || fail "no READY=1 after a refused reload"
assert_eq "$(nlines ' RELOADING=1$')" $((l1 + 1)) "RELOADING=1 for the refused reload"
grep -q 'event=reload_failed' "$BROKER_LOG" || fail "the broken policy was not refused"
cp "$T/policy.good" "$T/policy.json"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7000 still)" still "serving after the refused reload"

# ---- stop: STOPPING=1 -------------------------------------------------------
kill -TERM "$BROKER_PID"
assert_eq "$(fs_wait_exit)" 0 "the broker's exit status"
grep -q ' STOPPING=1$' "$NLOG" || fail "no STOPPING=1"
BROKER_PID=
# the unix socket is systemd's: its file stays
[ -S "$T/echo.sock" ] || fail "the broker unlinked the inherited unix socket's file"

# ---- a path notify socket, a name mismatch: refused at start ---------------
fs_start -p "$T/notify.sock" -l echo=127.0.0.1:7000 -l "echo=[::1]:7000" -l echo=127.0.0.1:7005 --
assert_eq "$(fs_wait_exit)" 1 "a socket named echo on an address echo does not declare"
line=$(grep 'event=inherit ' "$BROKER_LOG" | grep 'address=127.0.0.1:7005' | tail -1)
assert_contains "$line" 'name=echo' "the error names the fd's name"
assert_contains "$line" 'sandbox \"echo\" does not declare' "the error names the sandbox"
assert_not_contains "$(cat "$NLOG")" "READY=1" "no READY=1 for a refused start"

# ---- what the broker cannot serve on: refused at start, saying why ----------
fs_start -l "echo=dgram:127.0.0.1:7000" --
assert_eq "$(fs_wait_exit)" 1 "a datagram socket passed"
grep -q 'event=inherit fd=3 name=echo .*a datagram socket, not a stream one (use ListenStream=)' "$BROKER_LOG" ||
	fail "no error for the datagram socket: $(grep event=inherit "$BROKER_LOG" | tail -2)"
fs_start -l "echo=bound:127.0.0.1:7000" --
assert_eq "$(fs_wait_exit)" 1 "a socket not listening passed"
grep -q 'event=inherit fd=3 name=echo .*not listening' "$BROKER_LOG" ||
	fail "no error for the socket not listening: $(grep event=inherit "$BROKER_LOG" | tail -2)"

fs_start -N -l echo=127.0.0.1:7000 --
assert_eq "$(fs_wait_exit)" 1 "LISTEN_FDNAMES naming more fds than LISTEN_FDS"
grep -q 'event=inherit .*LISTEN_FDNAMES names a different number of fds' "$BROKER_LOG" ||
	fail "no error for LISTEN_FDNAMES not matching LISTEN_FDS"

# ---- WATCHDOG_PID another process's: no pings --------------------------------
fs_start -p "$T/notify.sock" -w 100000 -W 1 --
wait_for 10 grep -q ' READY=1$' "$NLOG" || fail "no READY=1 (WATCHDOG_PID=1)"
sleep 0.5
assert_eq "$(nlines ' WATCHDOG=1$')" 0 "watchdog pings for WATCHDOG_PID=1"
kill -TERM "$BROKER_PID"
fs_wait_exit >/dev/null
BROKER_PID=

# ---- a LISTEN_PID not ours: the fds are not taken ----------------------------
fs_start -x -l echo=127.0.0.1:7000 --
fs_wait_exit >/dev/null
grep -q 'event=inherit .*LISTEN_PID is not this process' "$BROKER_LOG" || fail "a foreign LISTEN_PID was not reported"
BROKER_PID=

# ---- log formats -------------------------------------------------------------
# json: every line an object with ts, level, event; the hostile stderr decoded
: >"$BROKER_LOG"
fs_start -p "$T/notify.sock" -- --log-format=json
wait_for 10 grep -q ' READY=1$' "$NLOG" || fail "json: no READY=1"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7003 x)" "ok" "evil handler (json)"
wait_for 5 grep -q '"event":"exit"' "$BROKER_LOG" || fail "json: no exit line"
kill -TERM "$BROKER_PID"
fs_wait_exit >/dev/null
BROKER_PID=
jq -e -c 'select((.ts|type) != "string" or (.level|type) != "string" or (.event|type) != "string")' \
	"$BROKER_LOG" >"$T/bad.json" 2>&1 || true
jq -c . "$BROKER_LOG" >/dev/null 2>"$T/jq.err" || fail "json lines that do not parse: $(cat "$T/jq.err")"
[ ! -s "$T/bad.json" ] || fail "json lines without ts/level/event: $(cat "$T/bad.json")"
assert_eq "$(jq -r 'select(.event == "start") | .sandboxes' "$BROKER_LOG")" 4 "json start line"
assert_eq "$(jq -c 'select(.event == "sandbox" and .name == "echo") | .listen' "$BROKER_LOG")" \
	"[\"127.0.0.1:7000\",\"[::1]:7000\",\"unix:$T/echo.sock\"]" "json: a repeated key as an array"
got=$(jq -r 'select(.event == "stderr") | .line' "$BROKER_LOG" | od -An -c | tr -s ' ')
assert_contains "$got" 'a 033 ] 0 ; x \a 357 277 275 " b = c d' "json: the hostile stderr line, escaped and decoded (U+FFFD for \\377)"
raw=$(grep '"event":"stderr"' "$BROKER_LOG")
if printf '%s' "$raw" | grep -q $'[\x01-\x1f\x7f]'; then fail "json: raw control bytes in a line"; fi

# logfmt: every line parses as key=value pairs
: >"$BROKER_LOG"
fs_start -p "$T/notify.sock" -- --log-format=logfmt
wait_for 10 grep -q ' READY=1$' "$NLOG" || fail "logfmt: no READY=1"
assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7003 x)" "ok" "evil handler (logfmt)"
wait_for 5 grep -q 'event=exit ' "$BROKER_LOG" || fail "logfmt: no exit line"
kill -TERM "$BROKER_PID"
fs_wait_exit >/dev/null
BROKER_PID=
python3 - "$BROKER_LOG" <<'PY' || fail "logfmt lines that do not parse"
import re, sys, json
pair = re.compile(r'([A-Za-z0-9_.]+)=("(?:[^"\\]|\\.)*"|[^ "=\\]+)(?: |$)')
stderr = None
for n, line in enumerate(open(sys.argv[1], encoding="utf-8", errors="strict"), 1):
    line = line.rstrip("\n")
    pos, keys = 0, {}
    while pos < len(line):
        m = pair.match(line, pos)
        if not m:
            sys.exit(f"line {n}: does not parse at {pos}: {line!r}")
        v = m.group(2)
        keys[m.group(1)] = json.loads(v) if v.startswith('"') else v
        pos = m.end()
    for k in ("ts", "level", "event"):
        if k not in keys:
            sys.exit(f"line {n}: no {k}: {line!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in line):
        sys.exit(f"line {n}: raw control bytes: {line!r}")
    if keys["event"] == "stderr":
        stderr = keys["line"]
if stderr is None or not stderr.startswith('a\x1b]0;x\x07') or not stderr.endswith('"b=c d'):
    sys.exit(f"the hostile stderr line, unquoted: {stderr!r}")
PY
assert_clean_lab
