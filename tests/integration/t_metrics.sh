#!/usr/bin/env bash
# The metrics endpoint as Prometheus reads it: `promtool check metrics`
# (Debian's, unpacked into build/ by tests/metrics/get-promtool.sh) and
# tests/metrics/expocheck.py pass on what the broker serves, and both fail
# on broken samples; the spawn-time histogram counts every spawn;
# postern_build_info and the process_* figures are there and plausible.
# Then the handler environment a client gets: IPv6 (PROTO=TCP6, TCP6*),
# an IPv4 client of a dual-stack socket systemd passed (IPv4, no TCP6*),
# a unix client (PROTO=UNIX, its uid, gid and pid from SO_PEERCRED), and
# both again through pre-warmed handlers (the environment sent at release).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v systemd-socket-activate >/dev/null || skip "needs systemd-socket-activate"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
EXPOCHECK="$SRC/tests/metrics/expocheck.py"

# ---- the checkers themselves: a clean sample passes, broken ones fail ------
good='# HELP a_total Things.
# TYPE a_total counter
a_total{sandbox="x\"y\\z\nw"} 3
# HELP b_seconds Times.
# TYPE b_seconds histogram
b_seconds_bucket{sandbox="x",le="0.1"} 1
b_seconds_bucket{sandbox="x",le="+Inf"} 2
b_seconds_sum{sandbox="x"} 0.5
b_seconds_count{sandbox="x"} 2'
python3 "$EXPOCHECK" <<<"$good" >"$T/ck" || fail "expocheck refuses a clean sample: $(cat "$T/ck")"
declare -A broken=(
	[no_type]=$'# HELP a_total Things.\na_total 1'
	[no_help]=$'# TYPE a_total counter\na_total 1'
	[counter_name]=$'# HELP a Things.\n# TYPE a counter\na 1'
	[unescaped_quote]=$'# HELP a_total T.\n# TYPE a_total counter\na_total{sandbox="x"y"} 1'
	[bad_escape]=$'# HELP a_total T.\n# TYPE a_total counter\na_total{sandbox="x\\q"} 1'
	[quantile_gauge]=$'# HELP s_seconds T.\n# TYPE s_seconds gauge\ns_seconds{quantile="0.5"} 1'
	[not_cumulative]=$'# HELP h_seconds T.\n# TYPE h_seconds histogram\nh_seconds_bucket{le="0.1"} 2\nh_seconds_bucket{le="+Inf"} 1\nh_seconds_sum 1\nh_seconds_count 1'
	[no_inf]=$'# HELP h_seconds T.\n# TYPE h_seconds histogram\nh_seconds_bucket{le="0.1"} 2\nh_seconds_sum 1\nh_seconds_count 2'
	[inf_ne_count]=$'# HELP h_seconds T.\n# TYPE h_seconds histogram\nh_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 1\nh_seconds_count 3'
	[split_family]=$'# HELP a_total T.\n# TYPE a_total counter\na_total{x="1"} 1\n# HELP b T.\n# TYPE b gauge\nb 1\na_total{x="2"} 1'
	[duplicate]=$'# HELP b T.\n# TYPE b gauge\nb{x="1"} 1\nb{x="1"} 2'
	[bad_value]=$'# HELP b T.\n# TYPE b gauge\nb 1,5'
)
for k in "${!broken[@]}"; do
	if python3 "$EXPOCHECK" <<<"${broken[$k]}" >"$T/ck"; then fail "expocheck passes the broken sample $k"; fi
	[ -s "$T/ck" ] || fail "expocheck says nothing of the broken sample $k"
done
PROMTOOL=$("$SRC/tests/metrics/get-promtool.sh" "$BUILD") || PROMTOOL=
if [ -n "$PROMTOOL" ]; then
	"$PROMTOOL" check metrics <<<"$good" >"$T/ck" 2>&1 || fail "promtool refuses the clean sample: $(cat "$T/ck")"
	# the format this endpoint used to serve: a gauge with quantile labels
	if "$PROMTOOL" check metrics <<<"${broken[quantile_gauge]}" >"$T/ck" 2>&1; then fail "promtool passes a quantile gauge"; fi
	if "$PROMTOOL" check metrics <<<"${broken[counter_name]}" >"$T/ck" 2>&1; then fail "promtool passes a counter without _total"; fi
else
	note "promtool could not be had (apt-get download prometheus): expocheck.py alone"
fi

# ---- a broker with a dual-stack socket passed as systemd would -------------
broker_json '{
  "echo": { "trigger": { "listen": ["127.0.0.1:7101"] },
	    "exec": ["/opt/postern/echo"], "filesystem": '"$FS_JSON"', "limits": { "handlers": 4 } },
  "env": { "trigger": { "listen": ["[::1]:7102", "[::]:7103", "unix:'"$T"'/env.sock"] },
	   "exec": ["/usr/bin/env"], "filesystem": '"$FS_JSON"', "limits": { "handlers": 4 } },
  "warm": { "trigger": { "listen": ["[::1]:7104", "unix:'"$T"'/warm.sock"] },
	    "exec": ["/usr/bin/env"], "filesystem": '"$FS_JSON"', "prewarm": 1 }
}' '"metrics": "127.0.0.1:9466"' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || fail "test policy invalid"
# a policy cannot set what postern says of the client
sed 's|"exec": \["/usr/bin/env"\]|&, "env": { "TCP6REMOTEIP": "2001:db8::1" }|' "$T/policy.json" >"$T/bad.json"
out=$("$POSTERN" check "$T/bad.json" 2>&1) && fail "a policy setting TCP6REMOTEIP passes check"
assert_contains "$out" "sandboxes.env.env.TCP6REMOTEIP: reserved" "reserved environment name"

t0=$(date +%s)
# as broker_start, but under systemd-socket-activate: it binds [::]:7103
# dual-stack (as a .socket unit's default BindIPv6Only=both) and, at the
# first connection, execs the broker with LISTEN_FDS=1
run_placed nsenter --net=/run/netns/"$LAB" systemd-socket-activate -l '[::]:7103' \
	"$POSTERN" run "$T/policy.json" >>"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
bg_pid "$BROKER_PID"
wait_for 5 sh -c "grep -q 'Listening on' '$BROKER_LOG'" || fail "systemd-socket-activate did not listen"
# that first connection: an IPv6 client of the dual-stack socket
in_lab "$CLIENT" -t 15000 "[::1]:7103" "" >"$T/first.env" &
first=$!
wait_for 10 sh -c "grep -q 'event=start ' '$BROKER_LOG'" || fail "broker did not start"
wait "$first" || fail "the first client failed"
assert_line "$(cat "$T/first.env")" "PROTO=TCP6" "IPv6 client of the dual-stack socket"
grep -q 'inherited_fd' "$BROKER_LOG" && fail "the passed socket was not taken for [::]:7103"
chmod 666 "$T/env.sock"

for i in 1 2 3; do assert_eq "$(in_lab "$CLIENT" 127.0.0.1:7101 "m$i")" "m$i" "echo $i"; done

# IPv6: PROTO=TCP6 and the TCP6 names, and the TCP names too (ucspi-tcp6)
v6=$(in_lab "$CLIENT" "[::1]:7102" "")
for l in PROTO=TCP6 TCP6REMOTEIP=::1 TCP6LOCALIP=::1 TCP6LOCALPORT=7102 TCPREMOTEIP=::1 \
	TCPLOCALIP=::1 TCPLOCALPORT=7102 REMOTE_ADDR=::1; do
	assert_line "$v6" "$l" "IPv6 client's environment"
done
port=$(sed -n 's/^TCP6REMOTEPORT=//p' <<<"$v6")
[ "$port" -gt 0 ] 2>/dev/null || fail "no TCP6REMOTEPORT: $v6"
assert_line "$v6" "TCPREMOTEPORT=$port" "IPv6 client's TCPREMOTEPORT"
assert_not_contains "$v6" "UNIXREMOTE" "IPv6 client's environment"

# an IPv4 client of the dual-stack socket: IPv4, dotted quads, no TCP6*
v4m=$(in_lab "$CLIENT" 127.0.0.1:7103 "")
for l in PROTO=TCP TCPREMOTEIP=127.0.0.1 TCPLOCALIP=127.0.0.1 TCPLOCALPORT=7103 REMOTE_ADDR=127.0.0.1; do
	assert_line "$v4m" "$l" "IPv4-mapped client's environment"
done
assert_not_contains "$v4m" "TCP6" "IPv4-mapped client's environment"
assert_not_contains "$v4m" "::ffff:" "IPv4-mapped client's environment"
grep -q 'event=spawn .*sandbox=env .*peer=127.0.0.1:' "$BROKER_LOG" || fail "the mapped client not logged as IPv4"

# unix: the client's credentials, as another user
setpriv --reuid=12345 --regid=12346 --clear-groups "$CLIENT" "unix:$T/env.sock" "" >"$T/unix.env" &
cpid=$!
wait "$cpid" || fail "unix client failed"
ux=$(cat "$T/unix.env")
for l in PROTO=UNIX UNIXREMOTEUID=12345 UNIXREMOTEGID=12346 UNIXREMOTEPID=$cpid \
	UNIXREMOTEEUID=12345 UNIXREMOTEEGID=12346; do
	assert_line "$ux" "$l" "unix client's environment"
done
assert_not_contains "$ux" "TCPREMOTEIP" "unix client's environment"
assert_not_contains "$ux" "REMOTE_ADDR" "unix client's environment"

# the same through a pre-warmed handler (the environment sent at release)
warm_ready() { wait_for 10 sh -c "[ \"\$($POSTERN status --json -s $CONTROL | jq '.sandboxes[] | select(.name==\"warm\") | .prewarm.ready')\" = 1 ]"; }
warm_ready || fail "warm: no pre-warmed handler: $(sb_stat warm .prewarm)"
w6=$(in_lab "$CLIENT" "[::1]:7104" "")
for l in PROTO=TCP6 TCP6REMOTEIP=::1 TCP6LOCALPORT=7104 TCPREMOTEIP=::1; do
	assert_line "$w6" "$l" "pre-warmed IPv6 client's environment"
done
warm_ready || fail "warm: not refilled: $(sb_stat warm .prewarm)"
chmod 666 "$T/warm.sock"
setpriv --reuid=12347 --regid=12348 --clear-groups "$CLIENT" "unix:$T/warm.sock" "" >"$T/warm.env" &
cpid=$!
wait "$cpid" || fail "unix client of warm failed"
for l in PROTO=UNIX UNIXREMOTEUID=12347 UNIXREMOTEGID=12348 UNIXREMOTEPID=$cpid; do
	assert_line "$(cat "$T/warm.env")" "$l" "pre-warmed unix client's environment"
done
assert_eq "$(sb_stat warm .prewarm.used)" 2 "both warm requests taken by pre-warmed handlers"

# ---- the metrics ------------------------------------------------------------
wait_for 5 sh -c "[ \$(grep -c 'event=exit ' '$BROKER_LOG') -ge 9 ]" || fail "9 exit lines expected"
in_lab bash -c 'exec 3<>/dev/tcp/127.0.0.1/9466 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' >"$T/resp" ||
	fail "GET /metrics"
head -n 1 "$T/resp" | grep -q '^HTTP/1.0 200 OK' || fail "metrics status: $(head -n 1 "$T/resp")"
# the body: after the empty line
tr -d '\r' <"$T/resp" | sed '1,/^$/d' >"$T/metrics.txt"
cp "$T/metrics.txt" "$BUILD/tests/integration/t_metrics.prom" 2>/dev/null # to look at
m=$(cat "$T/metrics.txt")
python3 "$EXPOCHECK" "$T/metrics.txt" >"$T/ck" || fail "expocheck: $(cat "$T/ck")"
if [ -n "$PROMTOOL" ]; then
	"$PROMTOOL" check metrics <"$T/metrics.txt" >"$T/ck" 2>&1 || fail "promtool check metrics: $(cat "$T/ck")"
fi
assert_not_contains "$m" "quantile=" "no gauge with quantiles"
val() { awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.txt"; }
# the histogram counts each spawn, as started_total does
assert_line "$m" "# TYPE postern_spawn_seconds histogram" "spawn histogram"
assert_eq "$(val 'postern_spawn_seconds_count{sandbox="echo"}')" 3 "echo spawns in the histogram"
assert_eq "$(val 'postern_spawn_seconds_count{sandbox="env"}')" 4 "env spawns in the histogram"
assert_eq "$(val 'postern_spawn_seconds_bucket{sandbox="echo",le="+Inf"}')" 3 "echo +Inf bucket"
assert_eq "$(val 'postern_spawn_seconds_bucket{sandbox="echo",le="10"}')" 3 "echo spawns under 10 s"
assert_eq "$(val 'postern_sandbox_started_total{sandbox="env"}')" 4 "env started"
# pre-warmed releases are spawns too
assert_eq "$(val 'postern_spawn_seconds_count{sandbox="warm"}')" 2 "warm releases in the histogram"
[ "$(val 'postern_spawn_seconds_bucket{sandbox="echo",le="0.0001"}')" -le 3 ] || fail "first bucket"
sum=$(val 'postern_spawn_seconds_sum{sandbox="echo"}')
awk -v s="$sum" 'BEGIN { exit !(s > 0 && s < 30) }' || fail "echo spawn time sum $sum"
# build info
ver=$("$POSTERN" --version | awk '{ print $2 }')
grep -q "^postern_build_info{version=\"$ver\",policy_version=\"1\",compiler=\"[^\"]*\"} 1\$" "$T/metrics.txt" ||
	fail "postern_build_info: $(grep build_info "$T/metrics.txt")"
# process figures, of the broker's process
for k in process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes \
	process_open_fds process_max_fds process_start_time_seconds; do
	assert_contains "$m" "# TYPE $k " "process metrics"
	[ -n "$(val "$k")" ] || fail "no $k"
done
fds=$(val process_open_fds)
have=$(find "/proc/$BROKER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
[ "$fds" -ge 5 ] && [ $((fds - have)) -le 3 ] && [ $((have - fds)) -le 3 ] ||
	fail "process_open_fds $fds, /proc/$BROKER_PID/fd holds $have"
[ "$fds" -lt "$(val process_max_fds)" ] || fail "open fds $fds not below max $(val process_max_fds)"
assert_eq "$(val process_max_fds)" "$(awk '/^Max open files/ { print $4 }' "/proc/$BROKER_PID/limits")" "process_max_fds"
rss=$(val process_resident_memory_bytes)
[ "$rss" -gt 1000000 ] && [ "$rss" -le "$(val process_virtual_memory_bytes)" ] || fail "resident memory $rss"
st=$(val process_start_time_seconds)
awk -v s="$st" -v t="$t0" 'BEGIN { exit !(s >= t - 2 && s <= t + 30) }' || fail "start time $st, test began $t0"

broker_stop TERM
assert_clean_lab
echo "metrics pass promtool and expocheck; histogram, build info, process figures; TCP6, mapped v4, UNIX env: ok"
