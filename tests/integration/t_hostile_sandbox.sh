#!/usr/bin/env bash
# Hostile handlers (tests/helpers/hostile-sandbox) against seccomp's socket
# rules and what keeps the handlers of one sandbox, which share its network
# namespace, apart:
#  - socket() is an allowlist (AF_UNIX, AF_INET, AF_INET6; stream, datagram,
#    seqpacket; no raw, SOCK_PACKET, SCTP, ...); socketpair() AF_UNIX only;
#    the same with "default": "kill" kills;
#  - by default no bind(), listen() or SO_PASSCRED: a handler cannot offer
#    an abstract unix socket, a TCP or UDP port or an autobound name to a
#    concurrent handler of its sandbox, which gets nothing across;
#  - Landlock alone (seccomp's bind, listen and setsockopt lifted): the
#    other handler cannot connect or send to the first one's abstract
#    sockets (ABI >= 6), nor can it bind TCP (ABI >= 4);
#  - "allow_bind": true: a TCP listener works and is reachable from a
#    concurrent handler (the opt-in), abstract sockets stay scoped;
#  - a pidfd of one handler passed to another (fdpass channel) cannot
#    signal it;
#  - the handlers of a sandbox share its uts and ipc namespaces (not the
#    broker's): System V IPC and POSIX message queues are refused, so none
#    can make an object there, and the hostname cannot be changed; with
#    those calls allowed, each handler has an ipc namespace of its own and
#    what one makes a concurrent one cannot find;
#  - a handler holds its socket and its stderr pipe, nothing of the
#    broker's (no pidfd, namespace, epoll set, listener or cgroup file),
#    whether the child made its own fd table or copied the broker's
#    (pidfd_getfd refused).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"

H=/opt/helpers/hostile-sandbox
FS_H=$(jq -c '. + [ { "proc": "/proc" } ]' <<<"$FS_JSON")
broker_json '{
  "sock": { "trigger": { "listen": ["127.0.0.1:7201"] }, "exec": ["'$H'"], "filesystem": '"$FS_H"' },
  "llk": { "trigger": { "listen": ["127.0.0.1:7202"] }, "exec": ["'$H'"], "filesystem": '"$FS_H"',
	   "seccomp": { "allow": ["bind", "listen", "setsockopt"] } },
  "binder": { "trigger": { "listen": ["127.0.0.1:7203"] }, "exec": ["'$H'"], "filesystem": '"$FS_H"',
	      "allow_bind": true },
  "siga": { "trigger": { "listen": ["127.0.0.1:7204"] }, "exec": ["'$H'", "pidfd-send", "sig", "2"],
	    "send": ["sig"], "filesystem": '"$FS_JSON"' },
  "sigb": { "trigger": { "fdpass": "sig" }, "exec": ["'$H'", "pidfd-kill"], "filesystem": '"$FS_JSON"' },
  "ipcpriv": { "trigger": { "listen": ["127.0.0.1:7206"] }, "exec": ["'$H'"], "filesystem": '"$FS_H"',
	       "seccomp": { "allow": ["shmget", "shmctl", "msgget", "semget", "mq_open", "mq_unlink"] } },
  "sockkill": { "trigger": { "listen": ["127.0.0.1:7205"] }, "exec": ["'$H'", "sockets"],
		"filesystem": '"$FS_JSON"', "seccomp": { "default": "kill" } }
}' >"$T/policy.json"
"$POSTERN" check "$T/policy.json" >/dev/null || { "$POSTERN" check "$T/policy.json"; fail "test policy invalid"; }
broker_start "$T/policy.json"

abi=$(in_lab "$CLIENT" 127.0.0.1:7201 "landlock" | sed -n 's/^landlock abi: //p')
[ -n "$abi" ] || fail "no Landlock ABI from the probe"
note "Landlock ABI $abi"
if [ "$abi" -lt 6 ]; then
	grep -q 'event=landlock .*abi='"$abi"' .*weaker=' "$BROKER_LOG" || fail "no landlock warning at start for ABI $abi"
else
	! grep -q 'event=landlock' "$BROKER_LOG" || fail "a landlock warning with ABI $abi: $(grep event=landlock "$BROKER_LOG")"
fi
assert_eq "$(grep -c 'event=landlock' "$BROKER_LOG")" "$([ "$abi" -lt 6 ] && echo 1 || echo 0)" "landlock logged once at most"

# ---- item 3: socket families, types and protocols ----------------------------
out=$(in_lab "$CLIENT" 127.0.0.1:7201 "sockets")
note "$out"
for ok in "AF_UNIX stream" "AF_UNIX dgram" "AF_UNIX seqpacket" "AF_INET stream" "AF_INET tcp" \
	"AF_INET udp" "AF_INET6 stream" "AF_INET6 dgram"; do
	assert_line "$out" "socket $ok: ALLOWED" "$ok"
done
assert_line "$out" "socketpair AF_UNIX: ALLOWED" "socketpair AF_UNIX"
for no in "AF_INET raw" "AF_INET raw nonblock" "AF_INET6 raw" "AF_INET SOCK_PACKET" "AF_INET sctp" \
	"AF_INET6 sctp seqpacket" "AF_INET mptcp" "AF_INET udplite" "AF_UNSPEC" "AF_VSOCK stream" \
	"AF_VSOCK dgram" "AF_NETLINK" "AF_NETLINK dgram" "AF_PACKET" "AF_PACKET dgram" "AF_ALG" \
	"AF_BLUETOOTH" "AF_XDP" "AF_KEY" "AF_TIPC" "AF_RDS" "AF_CAN" "AF_SMC" "AF_MCTP" "AF_APPLETALK" \
	"AF_X25" "AF_LLC" "AF_PPPOX" "family 255" "AF_VSOCK in a 64-bit register" "AF_UNIX in a 64-bit register"; do
	assert_line "$out" "socket $no: refused (Operation not permitted)" "$no"
done
for no in AF_INET AF_VSOCK AF_TIPC; do
	assert_line "$out" "socketpair $no: refused (Operation not permitted)" "socketpair $no"
done
# with "default": "kill", the first refused socket() kills the handler
out=$(in_lab "$CLIENT" 127.0.0.1:7205 "")
assert_line "$out" "socket AF_INET6 dgram: ALLOWED" "kill: the allowed ones first"
assert_not_contains "$out" "socket AF_INET raw" "kill: nothing after the first refused socket"
wait_for 5 grep -q 'event=exit sandbox=sockkill .*signal=SYS' "$BROKER_LOG" || fail "sockkill not killed by SIGSYS: $(grep 'sandbox=sockkill' "$BROKER_LOG")"

# ---- item 4: two concurrent handlers of one sandbox --------------------------
# serve_probe PORT: a "serve" handler and, while it waits, a "probe" one; their
# outputs in $serve and $probe
serve_probe() {
	local port=$1 name="pst-h-$RUN_ID-$1" peer
	rm -f "$T/serve.$port"
	in_lab "$CLIENT" -t 20000 "127.0.0.1:$port" "serve $name 7777 4" >"$T/serve.$port" 2>&1 &
	local sp=$!
	wait_for 10 grep -q '^peer ' "$T/serve.$port" || fail "no serve handler on $port: $(cat "$T/serve.$port")"
	peer=$(sed -n 's/^peer //p' "$T/serve.$port")
	probe=$(in_lab "$CLIENT" -t 10000 "127.0.0.1:$port" "probe $peer")
	wait "$sp" || fail "serve client on $port failed: $(cat "$T/serve.$port")"
	serve=$(cat "$T/serve.$port")
	note "serve $port: $serve"
	note "probe $port: $probe"
}

# default: nothing to bind, nothing crosses
serve_probe 7201
for what in "bind abstract unix" "bind tcp 127.0.0.1" "listen tcp without bind" "bind udp 127.0.0.1" \
	"setsockopt SO_PASSCRED"; do
	assert_line "$serve" "$what: refused (Operation not permitted)" "default: $what"
done
assert_line "$serve" "received: unix=0 tcp=0 tcp-autobind=0 udp=0 dgram=0" "default: nothing from the other handler"
assert_contains "$probe" "connect abstract unix of the other handler: refused" "default: abstract unix"
assert_contains "$probe" "connect tcp of the other handler: refused" "default: tcp"
assert_line "$probe" "/proc/net/unix shows @pst-h-$RUN_ID-7201: no" "default: no socket of the other handler"

# Landlock alone: seccomp lets the first handler bind; the second still
# cannot reach its abstract sockets (ABI >= 6), and TCP bind is refused
# (ABI >= 4). What seccomp alone kept out then crosses: UDP and a TCP
# listener on an autobound port (README, "Isolation of a handler").
serve_probe 7202
if [ "$abi" -ge 6 ]; then
	assert_line "$serve" "bind abstract unix: ALLOWED" "landlock: binding is the handler's own business"
	assert_line "$probe" "connect abstract unix of the other handler: refused (Operation not permitted)" "landlock: scoped abstract unix"
	assert_line "$probe" "send to autobound abstract unix of the other handler: refused (Operation not permitted)" "landlock: scoped autobound name"
	assert_contains "$serve" "received: unix=0 " "landlock: no unix connection crossed"
	assert_contains "$serve" " dgram=0" "landlock: no datagram crossed"
fi
if [ "$abi" -ge 4 ]; then
	assert_line "$serve" "bind tcp 127.0.0.1: refused (Permission denied)" "landlock: no TCP bind"
	assert_contains "$serve" " tcp=0 " "landlock: no TCP connection on a bound port"
fi

# allow_bind: a TCP listener, reachable from the sandbox's other handlers;
# abstract unix sockets stay each handler's own (ABI >= 6)
serve_probe 7203
assert_line "$serve" "bind tcp 127.0.0.1: ALLOWED" "allow_bind: bind"
assert_line "$serve" "listen tcp 127.0.0.1: ALLOWED" "allow_bind: listen"
assert_line "$probe" "connect tcp of the other handler: ALLOWED" "allow_bind: a listener of one handler reached from another"
if [ "$abi" -ge 6 ]; then
	assert_line "$probe" "connect abstract unix of the other handler: refused (Operation not permitted)" "allow_bind: abstract unix still scoped"
fi

# signals: one handler's pidfd in another handler's hands cannot kill it
out=$(in_lab "$CLIENT" -t 10000 127.0.0.1:7204 "")
assert_line "$out" "pidfd_open self: ALLOWED" "pidfd"
assert_line "$out" "pass the pidfd on the channel: ALLOWED" "passed"
assert_line "$out" "alive after 2s" "the handler whose pidfd was passed survives"
wait_for 5 grep -q 'sandbox=sigb .*line="pidfd_send_signal SIGKILL to the other handler: refused' "$BROKER_LOG" ||
	fail "the pidfd was not refused: $(grep 'sandbox=sigb' "$BROKER_LOG")"

# ---- ipc and uts: shared per sandbox, nothing to share ------------------------
# Two handlers at once each time: a namespace's inode number is reused once
# it is gone, so only live ones can be told apart.
host_ipc=$(readlink "/proc/$BROKER_PID/ns/ipc")
ns_of() { sed -n 's/^ipc ns: //p' <<<"$1"; }
# hold PORT KEY: a handler running "ipc KEY 4" in the background, once it
# holds; held PORT: when it is done, its output in $held
hold() {
	rm -f "$T/hold.$1"
	in_lab "$CLIENT" -t 20000 "127.0.0.1:$1" "ipc $2 4" >"$T/hold.$1" 2>&1 &
	hold_pid=$!
	wait_for 10 grep -q '^holding' "$T/hold.$1" || fail "no holding handler on $1: $(cat "$T/hold.$1")"
}
held() {
	wait "$hold_pid" || fail "the holding handler's client failed: $(cat "$T/hold.$1")"
	held=$(cat "$T/hold.$1")
	note "held: $held"
}
key=$((20000 + RANDOM))

# the default: one ipc namespace per sandbox, not the broker's, empty
hold 7201 "$key"
out=$(in_lab "$CLIENT" 127.0.0.1:7201 "ipc")
held 7201
note "ipc: $out"
assert_line "$out" "hostname: sock" "the sandbox's hostname"
assert_line "$out" "sethostname: refused (Operation not permitted)" "the hostname is not the handler's to change"
ns1=$(ns_of "$out")
[[ "$ns1" == ipc:* ]] || fail "no ipc namespace from the probe: $out"
assert_eq "$(ns_of "$held")" "$ns1" "two concurrent handlers of a sandbox share its ipc namespace"
[ "$ns1" != "$host_ipc" ] || fail "the handlers are in the broker's ipc namespace ($host_ipc)"
for what in "shmget IPC_PRIVATE" "msgget IPC_PRIVATE" "semget IPC_PRIVATE" "mq_open O_CREAT"; do
	assert_line "$out" "$what: refused (Operation not permitted)" "shared ipc namespace: $what"
done
assert_line "$held" "shm of key $key: refused (Operation not permitted)" "shared ipc namespace: a keyed segment"
assert_line "$held" "mq_open pst-KEY: refused (Operation not permitted)" "shared ipc namespace: a named queue"

# System V IPC and message queues allowed: an ipc namespace per handler, and
# what one makes a concurrent one cannot find
hold 7206 "$key"
look=$(in_lab "$CLIENT" -t 10000 127.0.0.1:7206 "ipc-look $key")
held 7206
note "look: $look"
assert_line "$held" "hostname: ipcpriv" "ipcpriv: its hostname"
assert_line "$held" "shmget IPC_PRIVATE: ALLOWED" "ipcpriv: shmget allowed"
assert_line "$held" "shm of key $key: ALLOWED" "ipcpriv: a keyed segment made"
assert_line "$held" "mq_open pst-KEY: ALLOWED" "ipcpriv: a message queue made"
assert_line "$held" "released" "ipcpriv: the holder held until the end"
assert_line "$look" "shm of the other handler's key: refused (No such file or directory)" "ipcpriv: the other handler's segment is not found"
assert_line "$look" "mq of the other handler: refused (No such file or directory)" "ipcpriv: the other handler's queue is not found"
nsh=$(ns_of "$held") nsl=$(ns_of "$look")
[[ "$nsh" == ipc:* && "$nsl" == ipc:* && "$nsh" != "$nsl" ]] ||
	fail "two concurrent handlers of ipcpriv: ipc namespaces '$nsh' and '$nsl'"
for ns in "$nsh" "$nsl"; do
	[[ "$ns" != "$ns1" && "$ns" != "$host_ipc" ]] ||
		fail "an ipcpriv handler in $ns (sock's: $ns1, the broker's: $host_ipc)"
done

# ---- the fds a handler holds ---------------------------------------------------
# every fd up to its nofile limit, tried as a pidfd, a namespace and an
# epoll set: only its own three
fds_line() { in_lab "$CLIENT" 127.0.0.1:7201 "fds" | grep '^fds:'; }
assert_eq "$(fds_line)" "fds: 0:socket 1:socket 2:fifo" "a handler's fds (the child's own table)"
broker_stop
assert_clean_lab

# the same where the child copies the broker's table and closes what is
# not the handler's (pidfd_getfd refused, as by a container's profile)
: >"$BROKER_LOG"
PST_BROKER_WRAP="$BUILD/tests/helpers/enosys pidfd_getfd" broker_start "$T/policy.json"
assert_eq "$(fds_line)" "fds: 0:socket 1:socket 2:fifo" "a handler's fds (the broker's table copied)"
broker_stop
assert_clean_lab
echo "hostile sandbox: ok"
