#!/usr/bin/env bash
# Inbound access control: allow_from / deny_from enforced on the SYN in the
# broker's table (a refused client gets a reset, the broker accepts and
# spawns nothing), counted per sandbox in status and metrics and by the
# nftables counter. Two client namespaces, A (allowed) and B, wired to the
# lab over IPv4 and IPv6; deny wins over allow; a listen address with its
# own lists; a dual-stack [::] socket (passed as systemd would) whose IPv4
# clients arrive as ::ffff:a.b.c.d and are judged by the IPv4 lists;
# loopback clients are subject too; a reload changes the lists at once,
# keeps the counts and leaves no stale sets; stop removes the table. Unix
# listeners: mode, owner, group applied; allow_uids / allow_gids checked
# with SO_PEERCRED (a supplementary group counts); a hostile user's
# symlink at the socket path, or a directory others can write, is refused
# and nothing of theirs is chmod'ed or chown'ed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

A=$(uname_ ca) B=$(uname_ cb)
netns_new "$A"; netns_new "$B"
wire() { # NS LAB_IF N: 10.9.N.0/24 and 2001:db8:N::/64, the lab at .1, the client at .10
	ip link add "$2" netns "$LAB" type veth peer name eth0 netns "$1" || fail "veth $2"
	in_lab ip addr add "10.9.$3.1/24" dev "$2"
	in_lab ip -6 addr add "2001:db8:$3::1/64" dev "$2" nodad
	in_lab ip link set "$2" up
	ip -n "$1" addr add "10.9.$3.10/24" dev eth0
	ip -n "$1" -6 addr add "2001:db8:$3::10/64" dev eth0 nodad
	ip -n "$1" link set eth0 up
}
wire "$A" "va$$" 1
wire "$B" "vb$$" 2
ca() { ip netns exec "$A" "$CLIENT" -t 3000 "$@"; }
cb() { ip netns exec "$B" "$CLIENT" -t 3000 "$@"; }
# refused CMD...: the connection is reset at once (no SYN-ACK: connect fails)
refused() {
	local out rc=0 start ms
	start=$(date +%s%N)
	out=$("$@" 2>&1) || rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	[ "$rc" = 1 ] || fail "$*: want a refused connect (exit 1), got exit $rc: $out"
	assert_contains "$out" "Connection refused" "$*"
	[ "$ms" -lt $((1500 * PST_TIME_SCALE)) ] || fail "$*: refused after ${ms}ms (want a reset at once)"
}
echoes() { assert_eq "$("$@" hello)" hello "$*"; }

mkdir -m 755 "$T/ux"
sb() { # NAME LISTEN_JSON [EXTRA_KEYS]
	echo '"'$1'": { "trigger": { "listen": '"$2"' }, "exec": ["/opt/postern/echo"],
	  "filesystem": '"$FS_JSON"', "limits": { "timeout": "10s" }'"${3:+, $3}"' }'
}
ACL_ALLOW='"allow_from": ["10.9.1.0/24", "2001:db8:1::/64", "127.0.0.0/8", "::1"]'
ACL_DENY='"deny_from": ["2001:db8:1::10"]'
broker_json "{
 $(sb acl '["0.0.0.0:7200", "[::]:7200"]' "$ACL_ALLOW, $ACL_DENY"),
 $(sb over '["[::]:7201", { "address": "0.0.0.0:7202", "allow_from": ["10.9.2.0/24"] }]' \
	'"allow_from": ["10.9.1.0/24", "2001:db8:1::/64"]'),
 $(sb dual '["[::]:7203"]' '"allow_from": ["10.9.1.0/24", "2001:db8:1::/64"]'),
 $(sb lo '["127.0.0.1:7204"]' '"allow_from": ["10.9.1.0/24"]'),
 $(sb ux '[{ "address": "unix:'"$T"'/ux/g.sock", "mode": "0660", "owner": "root", "group": "nogroup" },
	   { "address": "unix:'"$T"'/ux/m.sock", "mode": "0600", "group": 65534 },
	   { "address": "unix:'"$T"'/ux/p.sock", "mode": "0666", "allow_uids": [0], "allow_gids": [4242] }]')
}" '"metrics": "127.0.0.1:9464"' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }

# [::]:7203 passed in as systemd passes a socket (LISTEN_FDS), dual-stack
# (IPV6_V6ONLY off, as systemd makes it with BindIPv6Only=both)
REAL=$POSTERN
DUAL="$BUILD/tests/helpers/dualstack-fd"
[ -x "$DUAL" ] || fail "missing $DUAL: run make first"
cat >"$T/sa" <<EOF
#!/bin/sh
[ "\$1" = run ] || exec "$REAL" "\$@"
exec "$DUAL" 7203 "$REAL" "\$@"
EOF
chmod 755 "$T/sa"
POSTERN="$T/sa" broker_start "$T/policy.json"
assert_not_contains "$(cat "$BROKER_LOG")" "inherited_fd" "the passed socket serves [::]:7203"

# allowed; deny wins over allow; loopback subject too
echoes ca 10.9.1.1:7200
echoes in_lab "$CLIENT" 127.0.0.1:7200
refused ca "[2001:db8:1::1]:7200"
refused cb 10.9.2.1:7200
refused cb "[2001:db8:2::1]:7200"
# the sandbox's lists on [::]:7201, the address's own on 0.0.0.0:7202
echoes ca "[2001:db8:1::1]:7201"
refused cb "[2001:db8:2::1]:7201"
echoes cb 10.9.2.1:7202
refused ca 10.9.1.1:7202
# dual-stack [::]:7203: A's IPv4 connection reaches it (as ::ffff:10.9.1.10),
# B's is judged by the IPv4 list and refused
echoes ca 10.9.1.1:7203
grep -q 'event=spawn .*sandbox=dual .*peer=\[::ffff:10.9.1.10\]' "$BROKER_LOG" ||
	grep -q 'event=spawn .*sandbox=dual .*peer=10.9.1.10' "$BROKER_LOG" ||
	fail "dual-stack client not seen: $(grep 'sandbox=dual' "$BROKER_LOG")"
refused cb 10.9.2.1:7203
refused cb "[2001:db8:2::1]:7203"
refused in_lab "$CLIENT" -t 3000 127.0.0.1:7204

# unix: mode, owner, group on the files
assert_eq "$(stat -c '%a %u %g %F' "$T/ux/g.sock")" "660 0 65534 socket" "g.sock mode/owner/group"
assert_eq "$(stat -c '%a %u %g' "$T/ux/m.sock")" "600 0 65534" "m.sock mode/group"
assert_eq "$(stat -c '%a' "$T/ux/p.sock")" "666" "p.sock mode"
asuser() { local u=$1 g=$2; shift 2; setpriv --reuid="$u" --regid="$g" "$@"; }
# nobody's group may connect to g.sock; m.sock is root's alone
assert_eq "$(asuser 65534 65534 --clear-groups "$CLIENT" -t 3000 "unix:$T/ux/g.sock" gs)" gs "group connects"
out=$(asuser 65534 65534 --clear-groups "$CLIENT" -t 3000 "unix:$T/ux/m.sock" ms 2>&1) && fail "nobody connected to a 0600 root socket: $out"
assert_contains "$out" "Permission denied" "m.sock mode"
# p.sock: root listed, a member of 4242 (supplementary) too, nobody not
echoes "$CLIENT" -t 3000 "unix:$T/ux/p.sock"
assert_eq "$(asuser 4243 4243 --groups=4242 "$CLIENT" -t 3000 "unix:$T/ux/p.sock" sup)" sup "supplementary group allowed"
out=$(asuser 65534 65534 --clear-groups "$CLIENT" -t 3000 "unix:$T/ux/p.sock" no 2>&1) || true
assert_not_contains "$out" "no" "a peer not in allow_uids gets nothing"
wait_for 5 grep -q 'event=refuse .*sandbox=ux .*reason=peer .*peer="unix:uid=65534"' "$BROKER_LOG" ||
	fail "no refuse line for the unix peer"

# nothing accepted or spawned for the refused: 8 spawns, one per echo
wait_for 5 sh -c "[ \$(grep -c 'event=exit ' '$BROKER_LOG') -ge 8 ]" || fail "8 exits expected"
assert_eq "$(grep -c 'event=spawn ' "$BROKER_LOG")" 8 "spawns: one per allowed connection"
assert_eq "$(grep 'event=spawn ' "$BROKER_LOG" | grep -c 'peer=10.9.2.10')" 1 "B spawned only on 7202"
for s in acl:2 over:2 dual:1 lo:0 ux:3; do
	assert_eq "$(sb_stat "${s%:*}" .started)" "${s#*:}" "started in ${s%:*}"
done
# the counts: status, the table's counters, metrics
for s in acl:3 over:2 dual:2 lo:1 ux:0; do
	assert_eq "$(sb_stat "${s%:*}" .refused.address)" "${s#*:}" "refused.address of ${s%:*}"
done
assert_eq "$(sb_stat ux .refused.peer)" 1 "refused.peer of ux"
assert_contains "$(in_lab nft list counter inet "$TABLE" sb_acl_addr)" "packets 3 " "the table's counter"
# the clients the sandbox's lists permit in its sets (allowed less
# denied), the address with its own lists in its own
assert_contains "$(in_lab nft list set inet "$TABLE" sb_over_l1_ok4)" "10.9.2.0/24" "the address's own set"
assert_contains "$(in_lab nft list set inet "$TABLE" sb_over_ok6)" "2001:db8:1::/64" "the sandbox's set"
assert_contains "$(in_lab nft list set inet "$TABLE" sb_over_ok6)" "::ffff:10.9.1.0/120" "IPv4 CIDRs mapped in the ip6 set"
acl6=$(in_lab nft list set inet "$TABLE" sb_acl_ok6)
assert_contains "$acl6" "2001:db8:1::/124," "the denied address cut out of the allowed /64 (below)"
assert_contains "$acl6" "2001:db8:1::11-2001:db8:1:0:ffff:ffff:ffff:ffff" "(above)"
human=$("$REAL" status -s "$CONTROL")
assert_contains "$human" "refused: address 3 " "status text"
m=$(in_lab bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' | tr -d '\r')
assert_line "$m" 'postern_sandbox_refused_total{sandbox="acl",reason="address"} 3' "metrics address"
assert_line "$m" 'postern_sandbox_refused_total{sandbox="ux",reason="peer"} 1' "metrics peer"

# a refused reload (an IPv6 CIDR where acl only listens on IPv4 after it)
# changes nothing: the old lists stay in force
cp "$T/policy.json" "$T/policy1.json"
broker_json "{ $(sb acl '["0.0.0.0:7200"]' '"allow_from": ["10.9.2.0/24", "2001:db8:2::/64"]') }" >"$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reload_invalid' "$BROKER_LOG" ||
	fail "no refused reload line: $(grep reload "$BROKER_LOG")"
grep -q 'never matches' "$BROKER_LOG" || fail "the refused reload does not say why"
echoes ca 10.9.1.1:7200
refused cb 10.9.2.1:7200
mv "$T/policy1.json" "$T/policy.json"
for s in acl:4; do
	assert_eq "$(sb_stat "${s%:*}" .refused.address)" "${s#*:}" "refused.address of ${s%:*} after a refused reload"
done

# a reload: B allowed on 7200, A not; "over" and "lo" gone with their sets
broker_json "{
 $(sb acl '["0.0.0.0:7200", "[::]:7200"]' '"allow_from": ["10.9.2.0/24", "2001:db8:2::/64"]'),
 $(sb dual '["[::]:7203"]' '"deny_from": ["10.9.2.0/24"]'),
 $(sb ux '[{ "address": "unix:'"$T"'/ux/g.sock", "mode": "0640", "group": "nogroup" }]')
}" '"metrics": "127.0.0.1:9464"' >"$T/policy2.json"
"$REAL" check "$T/policy2.json" >/dev/null || { "$REAL" check "$T/policy2.json"; fail "policy 2 invalid"; }
mv "$T/policy2.json" "$T/policy.json"
kill -HUP "$BROKER_PID"
wait_for 5 grep -q 'event=reloaded' "$BROKER_LOG" || fail "no reloaded line"
assert_eq "$(grep -c 'event=reloaded' "$BROKER_LOG")" 1 "one reload applied"
echoes cb 10.9.2.1:7200
echoes cb "[2001:db8:2::1]:7200"
refused ca 10.9.1.1:7200
refused ca "[2001:db8:1::1]:7200"
# dual: now only a deny list: A allowed (IPv4 and IPv6), B's IPv4 refused
echoes ca 10.9.1.1:7203
echoes ca "[2001:db8:1::1]:7203"
refused cb 10.9.2.1:7203
assert_eq "$(sb_stat acl .refused.address)" 6 "acl counts kept across the reload"
assert_eq "$(sb_stat dual .refused.address)" 3 "dual counts kept across the reload"
assert_eq "$(stat -c '%a %g' "$T/ux/g.sock")" "640 65534" "a kept unix socket gets the new mode"
table=$(in_lab nft list table inet "$TABLE")
for stale in sb_over_addr sb_lo_addr "10.9.1.0/24" "2001:db8:1::/64" "127.0.0.0"; do
	assert_not_contains "$table" "$stale" "stale after reload"
done
assert_contains "$table" "10.9.2.0/24" "the new list in the table"
sets=$(in_lab nft -j list sets inet | jq -r ".nftables[].set | select(. != null and .table == \"$TABLE\") | .name" | grep -E '_ok[46]$' | sort | tr '\n' ' ')
# acl: the sandbox's lists, ip for 0.0.0.0:7200, ip6 for [::]:7200; dual
# [::]:7203: everyone less its deny list, for ip6 and (dual-stack) ip
assert_eq "$sets" "sb_acl_ok4 sb_acl_ok6 sb_dual_ok4 sb_dual_ok6 " "access sets after reload"
assert_contains "$(in_lab nft list set inet "$TABLE" sb_dual_ok4)" "0.0.0.0-10.9.1.255, 10.9.3.0-255.255.255.255" "everyone less 10.9.2.0/24"

broker_stop TERM
assert_clean_lab
[ ! -e "$T/ux/g.sock" ] || fail "unix listener left behind"

# hostile: nobody plants a symlink at the socket path in a sticky dir; the
# broker refuses to start and the file it points at keeps its mode and owner
mkdir -m 1777 "$T/st"
echo secret >"$T/victim"; chmod 600 "$T/victim"
setpriv --reuid=65534 --regid=65534 --clear-groups ln -s "$T/victim" "$T/st/s.sock" || fail "plant the link"
hostile() { # SOCKET_PATH: a policy with a unix listener there; the broker must refuse it
	broker_json "{ $(sb hx '[{ "address": "unix:'"$1"'", "mode": "0666", "owner": "nobody" }]') }" >"$T/hostile.json"
	local rc=0
	timeout $((20 * PST_TIME_SCALE)) nsenter --net=/run/netns/"$LAB" "$REAL" run "$T/hostile.json" >"$T/hostile.log" 2>&1 || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "broker started with $1 (rc $rc): $(cat "$T/hostile.log")"
}
hostile "$T/st/s.sock"
assert_contains "$(cat "$T/hostile.log")" "exists and is not a socket" "the planted link"
assert_eq "$(stat -c '%a %u' "$T/victim")" "600 0" "the link's target untouched"
assert_eq "$(stat -c '%u %F' "$T/st/s.sock")" "65534 symbolic link" "the link left as it was"
# a directory nobody may write: they could swap the socket later
mkdir -m 755 "$T/hd"; chown 65534:65534 "$T/hd"
hostile "$T/hd/s.sock"
assert_contains "$(cat "$T/hostile.log")" "its directory cannot be trusted" "a directory others own"
[ ! -e "$T/hd/s.sock" ] || fail "socket made in an untrusted directory"
assert_clean_lab
echo "access: allow/deny on the SYN over v4, v6, dual-stack and loopback, counted; reload; unix mode/owner/peers; hostile paths: ok"
