#!/usr/bin/env bash
# postern top in a real terminal (tmux), at 80x24 and 132x43: what is on
# the screen fits it (no line wider, the header, the sandbox rows, the held
# handlers' pids), j/k move the selection, s the sort, Enter a sandbox's
# handlers, K asks y/n (n does nothing; y kills through the control socket
# once the broker has the kill verb), a resize redraws at the new width,
# a broker gone is "broker gone, retrying" and top keeps running until it
# is back, and q, SIGINT, SIGTERM and SIGHUP leave the terminal sane.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v tmux >/dev/null || skip "needs tmux (make deps)"

broker_json '{
  "echo": { "trigger": { "listen": ["127.0.0.1:7000"] },
	    "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"',
	    "limits": { "handlers": 8, "timeout": "120s" } },
  "slowpoke-12c": { "trigger": { "listen": ["127.0.0.1:7001", "[::1]:7001"] },
	    "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"',
	    "limits": { "handlers": 4, "timeout": "120s" } }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || fail "test policy invalid"
broker_start "$T/policy.json"

# two echo handlers held open by clients that say nothing (exec: the
# process that holds the connection is the one stopped later)
in_lab bash -c 'exec 3<>/dev/tcp/127.0.0.1/7000; exec sleep 100' >/dev/null &
C1=$!; bg_pid $C1
in_lab bash -c 'exec 3<>/dev/tcp/127.0.0.1/7000; exec sleep 100' >/dev/null &
C2=$!; bg_pid $C2
echo_handlers() { [ "$(sb_stat echo '.handlers | length')" = "$1" ]; }
wait_for 10 echo_handlers 2 || fail "two held handlers expected: $(status_json)"
read -r H1 H2 <<<"$(sb_stat echo '.handlers[].pid' | sort -n | tr '\n' ' ')"
[ -n "$H1" ] && [ -n "$H2" ] || fail "handler pids: '$H1' '$H2'"

# not a terminal: a clear error; --once: one plain frame
err=$("$POSTERN" top -s "$CONTROL" </dev/null 2>&1 >/dev/null) && fail "top without a terminal exited 0"
assert_contains "$err" "is not a terminal: use -b" "top without a terminal"
once=$("$POSTERN" top --once -w 80 -c "$T/policy.json") # -c: the socket from broker.control
assert_contains "$once" "postern top - pid $BROKER_PID" "--once header"
assert_contains "$once" " $H1 echo " "--once lists the held handler"
[ "$(awk '{ if (length > m) m = length } END { print m + 0 }' <<<"$once")" -le 80 ] || fail "--once -w 80 wider than 80: $once"

# ---- a terminal: tmux, one server of its own for this run -------------------
TMUX_L="pst-top-$RUN_ID"
tm() { tmux -L "$TMUX_L" -f "$T/tmux.conf" "$@"; }
on_exit 'tmux -L "$TMUX_L" kill-server 2>/dev/null; true'
printf 'set -g status off\nset -g remain-on-exit on\n' >"$T/tmux.conf"
# run-top.sh NAME: top, then (when it is gone) the terminal's settings and
# its exit status, in the same pane
# (the shell outlives a Ctrl-C to top: a trap, which top does not inherit)
cat >"$T/run-top.sh" <<EOF
#!/bin/sh
trap : INT
"$POSTERN" top -d 0.5 -s "$CONTROL"
rc=\$?
stty -a >"$T/stty.\$1"
echo "EXITED \$rc"
exec sleep 300
EOF
chmod +x "$T/run-top.sh"

screen() { tm capture-pane -p -t "$1"; }
# on_screen SESSION TEXT [SECONDS]: TEXT shows within SECONDS (5)
on_screen() { wait_for "${3:-5}" sh -c "tmux -L '$TMUX_L' capture-pane -p -t '$1' | grep -qF -- '$2'"; }
expect_screen() { on_screen "$1" "$2" "${4:-5}" || fail "$3: '$2' not on screen:
$(screen "$1")"; }
# the widest line and the number of lines
widest() { screen "$1" | awk '{ if (length > m) m = length } END { print m + 0 }'; }
marked() { screen "$1" | grep '^>' || true; }
top_pid() { pgrep -P "$(tm display -p -t "$1" '#{pane_pid}')" -x postern; }
sane_after() { # SESSION NAME RC: top exited RC, the terminal back in cooked mode
	expect_screen "$1" "EXITED $3" "top's exit"
	local s; s=$(cat "$T/stty.$2")
	grep -qw -- icanon <<<"$s" && ! grep -qw -- -icanon <<<"$s" || fail "icanon not back after $2: $s"
	grep -qw -- echo <<<"$s" && ! grep -qw -- -echo <<<"$s" || fail "echo not back after $2: $s"
}

# ---- 80x24 ----------------------------------------------------------------
tm new-session -d -s a -x 80 -y 24 "$T/run-top.sh a"
expect_screen a "postern top - pid $BROKER_PID" "header"
expect_screen a "sandboxes 2  handlers 2 serving" "totals"
expect_screen a " $H2 echo " "the second held handler"
s=$(screen a)
assert_eq "$(wc -l <<<"$s")" 24 "lines on the 80x24 screen"
[ "$(widest a)" -le 80 ] || fail "a line wider than 80:
$s"
assert_contains "$s" " $H1 echo " "the first held handler"
assert_contains "$s" "SANDBOX*" "sorted by name, marked"
assert_contains "$s" "s sort: name" "the sort in the footer"
assert_not_contains "$s" "LISTEN" "no room for the listen column at 80"
grep -q '^> echo ' <<<"$s" || fail "the first sandbox is not selected: $s"
# j/k move the selection marker
tm send-keys -t a j
on_screen a "> slowpoke-12c" || fail "j: selection not on slowpoke-12c: $(marked a)"
tm send-keys -t a k
on_screen a "> echo " || fail "k: selection not back on echo: $(marked a)"
# s: the next sort column, shown in the header and the footer
tm send-keys -t a s
expect_screen a "s sort: active" "s"
expect_screen a "ACT/MAX*" "s marks the column"
assert_not_contains "$(screen a)" "SANDBOX*" "the old sort mark"
# active 2 first: echo on top, still selected (by name)
on_screen a "> echo " || fail "the selection did not follow echo: $(marked a)"
# Enter: echo's handlers only, the first selected
tm send-keys -t a Enter
expect_screen a "Esc back  j/k select  K kill" "Enter"
s=$(screen a)
assert_not_contains "$s" "slowpoke-12c" "Enter: the other sandbox left out"
assert_contains "$s" " $H1 echo " "Enter: echo's handlers"
sel=$(marked a)
assert_contains "$sel" " echo " "a handler of echo selected"
SEL_PID=$(awk '{ print $2 }' <<<"$sel")
[ "$SEL_PID" = "$H1" ] || [ "$SEL_PID" = "$H2" ] || fail "selected '$SEL_PID', not a held handler"
# K asks; n leaves it alone
tm send-keys -t a K
expect_screen a "kill handler $SEL_PID of echo? (y/n)" "K prompt"
tm send-keys -t a n
expect_screen a "kill cancelled" "n"
sleep 1.2 # two updates
kill -0 "$SEL_PID" 2>/dev/null || fail "n killed handler $SEL_PID"
assert_contains "$(screen a)" " $SEL_PID echo " "handler $SEL_PID still listed after n"
# K y: through the control socket (the verb may not be in this broker yet)
tm send-keys -t a K
expect_screen a "(y/n)" "K prompt again"
tm send-keys -t a y
on_screen a "kill $SEL_PID: broker says:" 3 || on_screen a "killed handler $SEL_PID" 3 ||
	fail "K y: no outcome on screen: $(screen a)"
if screen a | grep -qF "broker says: unknown request"; then
	echo "SKIPPED: K y kills handler $SEL_PID (this broker has no kill verb yet)"
else
	expect_screen a "killed handler $SEL_PID" "K y"
	wait_for 5 sh -c "! kill -0 $SEL_PID 2>/dev/null" || fail "K y: handler $SEL_PID still running"
	wait_for 5 sh -c "! tmux -L '$TMUX_L' capture-pane -p -t a | grep -qF ' $SEL_PID echo '" ||
		fail "K y: handler $SEL_PID still listed"
fi
# Esc: back to all sandboxes
tm send-keys -t a Escape
expect_screen a "Enter handlers" "Esc"
expect_screen a "slowpoke-12c" "Esc: every sandbox again"
# a resize redraws at the new width
tm resize-window -t a -x 132 -y 43
expect_screen a "LISTEN" "132 columns: the listen column"
wait_for 5 sh -c "[ \$(tmux -L '$TMUX_L' capture-pane -p -t a | wc -l) = 43 ]" || fail "not 43 lines after the resize"
[ "$(widest a)" -le 132 ] || fail "a line wider than 132: $(screen a)"
# the listen column: its first address, cut with '~' (the " +1" of the second)
expect_screen a "127.0.0.1:7001 ~" "the listen column's text"
tm resize-window -t a -x 80 -y 24
wait_for 5 sh -c "! tmux -L '$TMUX_L' capture-pane -p -t a | grep -q LISTEN" || fail "LISTEN still shown at 80"
[ "$(widest a)" -le 80 ] || fail "a line wider than 80 after resizing back: $(screen a)"

# the broker goes away: top says so and keeps trying
for c in $C1 $C2; do kill "$c" 2>/dev/null; done
broker_stop TERM
expect_screen a "broker gone, retrying (" "broker stopped"
TOP_A=$(top_pid a) || fail "top exited when the broker went away: $(screen a)"
gone_s() { screen a | sed -n 's/.*broker gone, retrying (\([0-9]*\)s).*/\1/p'; }
g1=$(gone_s)
sleep 2
kill -0 "$TOP_A" || fail "top exited while the broker was gone"
assert_not_contains "$(screen a)" "EXITED" "top exited while the broker was gone"
g2=$(gone_s)
[ -n "$g1" ] && [ -n "$g2" ] && [ "$g2" -gt "$g1" ] || fail "the time gone does not count: '$g1' then '$g2'"
# back: the data too
broker_start "$T/policy.json"
expect_screen a "postern top - pid $BROKER_PID" "the new broker's pid" 10
expect_screen a "sandboxes 2  handlers 0 serving" "totals back"
assert_not_contains "$(screen a)" "broker gone" "still gone"
# q: exit 0, the terminal sane
tm send-keys -t a q
sane_after a a 0

# ---- 132x43, Ctrl-C -----------------------------------------------------------
tm new-session -d -s b -x 132 -y 43 "$T/run-top.sh b"
expect_screen b "postern top - pid $BROKER_PID" "header at 132x43"
expect_screen b "LISTEN" "the listen column at 132"
s=$(screen b)
assert_eq "$(wc -l <<<"$s")" 43 "lines on the 132x43 screen"
[ "$(widest b)" -le 132 ] || fail "a line wider than 132: $s"
# p: the figures stand still (the broker's uptime), p again: they move
uptime_b() { screen b | sed -n 's/^postern top - pid [0-9]* - up \([^ ]*\) .*/\1/p'; }
tm send-keys -t b p
expect_screen b " - paused" "p pauses"
u1=$(uptime_b)
[ -n "$u1" ] || fail "no uptime in the header: $(screen b)"
sleep 1.5
assert_eq "$(uptime_b)" "$u1" "uptime while paused"
tm send-keys -t b p
wait_for 3 sh -c "! tmux -L '$TMUX_L' capture-pane -p -t b | grep -qF -- ' - paused'" || fail "p did not resume"
wait_for 3 sh -c "[ \"\$(tmux -L '$TMUX_L' capture-pane -p -t b | sed -n 's/^postern top - pid [0-9]* - up \([^ ]*\) .*/\1/p')\" != '$u1' ]" ||
	fail "uptime still $u1 after resuming"
tm send-keys -t b '?'
expect_screen b "K               kill the selected handler" "? help"
tm send-keys -t b x
tm send-keys -t b C-c
sane_after b b 130

# ---- SIGTERM, SIGHUP -----------------------------------------------------------
for sig in TERM HUP; do
	tm new-session -d -s "$sig" -x 80 -y 24 "$T/run-top.sh $sig"
	expect_screen "$sig" "postern top - pid $BROKER_PID" "header"
	pid=$(top_pid "$sig") || fail "no top in session $sig"
	kill -"$sig" "$pid"
	sane_after "$sig" "$sig" $((128 + $(kill -l "$sig")))
done

# a terminal ncurses cannot drive: said, exit 1, nothing changed
tm new-session -d -s bogus -x 80 -y 24 "TERM=pst-bogus-term $T/run-top.sh bogus"
expect_screen bogus "cannot use the terminal (TERM=pst-bogus-term): no terminfo entry" "unknown TERM"
sane_after bogus bogus 1

broker_stop TERM
echo "top at 80x24 and 132x43: layout, keys, resize, broker gone and back, exits: ok"
