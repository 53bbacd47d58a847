#!/usr/bin/env bash
# "Database subnet only" end to end: a handler (dbrelay) reaches the db host
# on 5432, seen with the lab's address (masquerade); the same host on another
# port and the public host are refused at once; status counts the denials.
# Nothing opens a connection toward a sandbox, not even a process of the
# broker host itself (the output chain): a listener inside the db sandbox's
# namespace is not reachable from the lab over IPv4 or IPv6, while the
# sandbox's egress still works. Forwarding is restored as it was at stop:
# 0 stays 0, and a lab where it was 1 before keeps 1; after a SIGKILL the
# next start restores it from the state dir.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v tcpserver >/dev/null || fail "tcpserver (ucspi-tcp) missing: make deps"
BANNER="$BUILD/tests/helpers/banner"
fwd() { in_lab cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding | tr '\n' ' '; }
assert_eq "$(fwd)" "0 0 " "forwarding in a fresh lab"

DB=$(uname_ db) PUB=$(uname_ pub)
netns_new "$DB"; netns_new "$PUB"
ip link add "vd$$" netns "$LAB" type veth peer name eth0 netns "$DB" || fail "veth db"
ip link add "vp$$" netns "$LAB" type veth peer name eth0 netns "$PUB" || fail "veth pub"
in_lab ip addr add 10.152.163.1/24 dev "vd$$"; in_lab ip link set "vd$$" up
in_lab ip addr add 198.51.100.1/24 dev "vp$$"; in_lab ip link set "vp$$" up
ip -n "$DB" addr add 10.152.163.10/24 dev eth0; ip -n "$DB" link set eth0 up
ip -n "$PUB" addr add 198.51.100.10/24 dev eth0; ip -n "$PUB" link set eth0 up
# db answers with the address it sees, then echoes; public would do the same
ip netns exec "$DB" tcpserver -HRl0 10.152.163.10 5432 sh -c 'echo "from=$TCPREMOTEIP"; exec cat' &
bg_pid $!
ip netns exec "$DB" tcpserver -HRl0 10.152.163.10 6000 sh -c 'echo wrong-port-reached' &
bg_pid $!
ip netns exec "$PUB" tcpserver -HRl0 198.51.100.10 80 sh -c 'echo public-reached' &
bg_pid $!
wait_for 5 sh -c "ip netns exec $DB ss -ltn | grep -q 10.152.163.10:5432" || fail "db server"

relay() { # name port target-host target-port egress
	echo '"'$1'": { "trigger": { "listen": ["127.0.0.1:'$2'"] },
	  "exec": ["/opt/postern/dbrelay", "'$3'", "'$4'"], "filesystem": '"$FS_JSON"',
	  "egress": '"$5"', "limits": { "timeout": "10s" } }'
}
EG='[ { "to": "10.152.163.0/24", "proto": "tcp", "ports": [5432] } ]'
# four CIDRs of one kind: an interval set (overlapping entries merged)
EGSET='[ { "to": "10.152.163.0/25", "proto": "tcp", "ports": [5432] },
	 { "to": "10.152.163.0/24", "proto": "tcp", "ports": [5432] },
	 { "to": "192.0.2.0/28", "proto": "tcp", "ports": [5432] },
	 { "to": "192.0.2.16/28", "proto": "tcp", "ports": [5432] } ]'
broker_json "{
 $(relay db 7100 10.152.163.10 5432 "$EGSET"),
 $(relay dbport 7101 10.152.163.10 6000 "$EG"),
 $(relay dbpub 7102 198.51.100.10 80 "$EG"),
 $(relay none 7103 10.152.163.10 5432 '[]')
}" >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"

out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7100 "select 1")
assert_contains "$out" "from=10.152.163.1" "db sees the lab's address (masquerade)"
assert_contains "$out" "select 1" "relay echo"

for p in 7101 7102; do
	start=$(date +%s%N)
	out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:$p "x" 2>&1)
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	assert_contains "$out" "dbrelay: connect" "port $p denied"
	assert_not_contains "$out" "reached" "port $p denied"
	[ "$ms" -lt $((1000 * PST_TIME_SCALE)) ] || fail "denied connect via $p took ${ms}ms (want < 1s)"
done
out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7103 "x" 2>&1)
assert_contains "$out" "dbrelay: connect" "no-egress sandbox reaches nothing"

# a listener inside the db sandbox (its namespace, as a handler would run
# one), on its veth addresses: reachable from inside, not from the lab
SBNS="$STATE/netns/db"
nsenter --net="$SBNS" "$BANNER" 100.127.0.2 8080 sandbox4-reached & bg_pid $!
nsenter --net="$SBNS" "$BANNER" fd70:6f73::2 8080 sandbox6-reached & bg_pid $!
wait_for 5 sh -c "nsenter --net=$SBNS ss -ltn | grep -q 'fd70:6f73::2\]:8080'" || fail "sandbox listeners"
sbtcp() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/8080 && head -n 1 <&3"; }
assert_contains "$(nsenter --net="$SBNS" bash -c "$(declare -f sbtcp); sbtcp 100.127.0.2")" "sandbox4-reached" "listener in the sandbox"
assert_contains "$(nsenter --net="$SBNS" bash -c "$(declare -f sbtcp); sbtcp fd70:6f73::2")" "sandbox6-reached" "IPv6 listener in the sandbox"
# (to_sandbox's counter: the drops of new flows toward sandboxes, from
# forward and output)
to_sb_drops() { in_lab nft list chain inet "$TABLE" to_sandbox | awk '/oifname/ { for (i = 1; i <= NF; i++) if ($i == "packets") s += $(i + 1) } END { print s + 0 }'; }
drops0=$(to_sb_drops)
for a in 100.127.0.2 fd70:6f73::2; do
	if out=$(in_lab bash -c "$(declare -f sbtcp); sbtcp $a" 2>&1); then
		fail "the broker host opened a connection into the sandbox at $a: $out"
	fi
	assert_not_contains "$out" "reached" "connection from the lab into the sandbox at $a"
done
drops=$(( $(to_sb_drops) - drops0 ))
[ "$drops" -ge 2 ] || fail "the broker host's connections into the sandbox not dropped: $drops, want >= 2"
# and the sandbox's own egress is what it was
out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7100 "select 2")
assert_contains "$out" "from=10.152.163.1" "db egress after the inbound attempts"
assert_contains "$out" "select 2" "relay echo after the inbound attempts"

d1=$(sb_stat dbport .egress.denied_packets); d2=$(sb_stat dbpub .egress.denied_packets)
[ "$d1" -ge 1 ] && [ "$d2" -ge 1 ] || fail "denied counters: $d1 $d2"
a=$(sb_stat db .egress.accepted_new)
[ "$a" -ge 1 ] || fail "accepted counter: $a"
in_lab nft list table inet "$TABLE" >/dev/null || fail "table $TABLE missing while running"
set=$(in_lab nft list set inet "$TABLE" sb_db_n0) || fail "no interval set for the db sandbox"
assert_contains "$set" "10.152.163.0/24" "merged interval"
assert_contains "$set" "192.0.2.0/27" "adjacent ranges merged"

assert_eq "$(fwd)" "1 1 " "forwarding while sandboxes have egress"
broker_stop
assert_clean_lab
assert_eq "$(fwd)" "0 0 " "forwarding after the stop, 0 before the start"

# where forwarding was on before, it stays on (the lab as a router)
in_lab sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
: >"$BROKER_LOG"
broker_start "$T/policy.json"
assert_contains "$(in_lab "$CLIENT" -t 5000 127.0.0.1:7100 "select 3")" "from=10.152.163.1" "egress, forwarding on before"
broker_stop
assert_clean_lab
assert_eq "$(fwd)" "1 1 " "forwarding after the stop, 1 before the start"
# only one of them on before: each restored as it was
in_lab sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=1
broker_start "$T/policy.json"
assert_eq "$(fwd)" "1 1 " "forwarding while running"
broker_stop
assert_eq "$(fwd)" "0 1 " "forwarding after the stop, ipv4 0 and ipv6 1 before"
# a broker that dies leaves forwarding on; what it was is in the state dir,
# and the next start restores it, also one whose sandboxes need none
in_lab sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
broker_start "$T/policy.json"
kill -KILL "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null; BROKER_PID=
assert_eq "$(fwd)" "1 1 " "forwarding left on by a SIGKILL"
broker_json "{ $(relay none 7103 10.152.163.10 5432 '[]') }" >"$T/none.json"
broker_start "$T/none.json"
assert_eq "$(fwd)" "0 0 " "forwarding restored by the next start (no sandbox with egress)"
broker_stop
assert_clean_lab
assert_eq "$(fwd)" "0 0 " "forwarding after that broker's stop"
echo "egress: ok"
