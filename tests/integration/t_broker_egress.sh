#!/usr/bin/env bash
# "Database subnet only" end to end: a handler (dbrelay) reaches the db host
# on 5432, seen with the lab's address (masquerade); the same host on another
# port and the public host are refused at once; status counts the denials.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
command -v tcpserver >/dev/null || fail "tcpserver (ucspi-tcp) missing: make deps"

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
	[ "$ms" -lt 1000 ] || fail "denied connect via $p took ${ms}ms (want < 1s)"
done
out=$(in_lab "$CLIENT" -t 5000 127.0.0.1:7103 "x" 2>&1)
assert_contains "$out" "dbrelay: connect" "no-egress sandbox reaches nothing"

d1=$(sb_stat dbport .egress.denied_packets); d2=$(sb_stat dbpub .egress.denied_packets)
[ "$d1" -ge 1 ] && [ "$d2" -ge 1 ] || fail "denied counters: $d1 $d2"
a=$(sb_stat db .egress.accepted_new)
[ "$a" -ge 1 ] || fail "accepted counter: $a"
in_lab nft list table inet "$TABLE" >/dev/null || fail "table $TABLE missing while running"
set=$(in_lab nft list set inet "$TABLE" sb_db_n0) || fail "no interval set for the db sandbox"
assert_contains "$set" "10.152.163.0/24" "merged interval"
assert_contains "$set" "192.0.2.0/27" "adjacent ranges merged"

broker_stop
assert_clean_lab
echo "egress: ok"
