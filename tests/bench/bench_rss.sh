#!/usr/bin/env bash
# The broker's memory with many live handlers: its resident set (VmRSS,
# and its peak VmHWM) idle, and with BENCH_RSS_N (default 1000) handlers
# alive at once, each a full-isolation `cat` holding a connection open
# (tests/bench/holdconns), inside a throwaway network namespace. The
# performance issue's target: <= 20 MB with 1,000 live handlers.
set -u
B=$(cd "$(dirname "$0")/../.." && pwd)/build
N=${BENCH_RSS_N:-1000}
[ "$(id -u)" = 0 ] || { echo "bench_rss: needs root"; exit 1; }
for x in "$B/postern" "$B/tests/bench/holdconns"; do
	[ -x "$x" ] || { echo "bench_rss: $x missing (make all)"; exit 1; }
done
NS=pstrss$$
T=$(mktemp -d /tmp/pst-rss.XXXXXX)
chmod 755 "$T"
BPID= HPID=
cleanup() {
	local p i
	rm -f "$T/hold"
	for p in $HPID $BPID; do kill -TERM "$p" 2>/dev/null; done
	for i in $(seq 1 100); do
		kill -0 "$BPID" 2>/dev/null || kill -0 "$HPID" 2>/dev/null || break
		sleep 0.1
	done
	for p in $HPID $BPID; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	grep -F " $T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS" && ip -n "$NS" link set lo up || exit 1
cat >"$T/policy.json" <<JSON
{
  "postern": 1,
  "broker": { "table": "pstrss", "control": "$T/control.sock", "state_dir": "$T/state" },
  "sandboxes": {
    "hold": {
      "trigger": { "listen": ["127.0.0.1:7500"] },
      "exec": ["/usr/bin/cat"],
      "filesystem": [ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
		      { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" },
		      { "bind": "/etc/ld.so.cache" } ],
      "egress": [ { "to": "192.0.2.0/24", "proto": "tcp", "ports": [9] } ],
      "limits": { "handlers": $((N + 16)), "timeout": "300s", "memory": "16M", "pids": 4, "nofile": 16 }
    }
  }
}
JSON
nsenter --net=/run/netns/"$NS" "$B/postern" run "$T/policy.json" 2>"$T/broker.log" &
BPID=$!
for _ in $(seq 1 100); do ip netns exec "$NS" ss -ltn | grep -q 127.0.0.1:7500 && break; sleep 0.1; done
st() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$BPID/status"; }
active() { "$B/postern" status --json -s "$T/control.sock" | jq '.sandboxes[0].active'; }
# warm: a few requests, so that what a request touches is resident
ip netns exec "$NS" "$B/tests/bench/holdconns" 127.0.0.1:7500 50 /nonexistent 1 >/dev/null
for _ in $(seq 1 100); do [ "$(active)" = 0 ] && break; sleep 0.1; done
idle_rss=$(st VmRSS)
touch "$T/hold"
ip netns exec "$NS" "$B/tests/bench/holdconns" 127.0.0.1:7500 "$N" "$T/hold" 600 >"$T/holdconns.out" &
HPID=$!
t0=$(date +%s)
for _ in $(seq 1 1200); do
	grep -q '^held=' "$T/holdconns.out" 2>/dev/null && break
	kill -0 "$HPID" 2>/dev/null || break
	sleep 0.1
done
held=$(sed -n 's/^held=//p' "$T/holdconns.out")
live=$(active)
rss=$(st VmRSS) hwm=$(st VmHWM)
fds=$(ls "/proc/$BPID/fd" | wc -l)
echo "live handlers: $live (holdconns: held=${held:-none}, $(($(date +%s) - t0)) s to open them)"
echo "broker VmRSS: idle $idle_rss MB, with $live live handlers $rss MB (peak VmHWM $hwm MB); its fds: $fds"
rm -f "$T/hold"
wait "$HPID" 2>/dev/null
HPID=
for _ in $(seq 1 300); do [ "$(active)" = 0 ] && break; sleep 0.1; done
echo "after they ended: VmRSS $(st VmRSS) MB, live handlers $(active)"
ok=$(awk -v r="$rss" 'BEGIN { print (r + 0 <= 20) ? "met" : "not met" }')
[ "${held%% *}" = "$N" ] || ok="not measured (only ${held:-0} of $N connections held: $(tail -n 1 "$T/holdconns.out"))"
echo "target (the performance issue): broker RSS <= 20 MB with $N live handlers: $ok"
[ "${held%% *}" = "$N" ]
