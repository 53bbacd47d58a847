#!/usr/bin/env bash
# Side-by-side: postern (full isolation: sandbox network with egress rules,
# seccomp, cgroup and rlimit limits) running /usr/bin/cat, fresh per request
# ("postern") and pre-warmed ("postern-pw", prewarm BENCH_PREWARM; and
# "postern-pwb", a second broker run with --prewarm-refill=busy); tcpserver
# -HRl0 (fork+exec, no isolation) running the same cat; and an in-process
# epoll echo server (the upper bound). Alternating rounds, at concurrency 1
# and 16, ROUNDS rounds each, all inside a throwaway network namespace on
# loopback; plus one client with think time between connections ("1g").
# Prints medians, the postern/tcpserver ratios and the broker's own spawn
# breakdown.
#
#   BENCH_ROUNDS=3 BENCH_N=3000 BENCH_SECONDS=10 BENCH_PREWARM=16 \
#   BENCH_CONCS="1 16 1g" tests/bench/bench_compare.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/build
ROUNDS=${BENCH_ROUNDS:-3}
N=${BENCH_N:-3000}
SECS=${BENCH_SECONDS:-10}
PRE=${BENCH_PREWARM:-16}
[ "$(id -u)" = 0 ] || { echo "bench_compare: needs root"; exit 1; }
for x in "$B/postern" "$B/tests/bench/loadgen" "$B/tests/bench/echo_server"; do
	[ -x "$x" ] || { echo "bench_compare: missing $x (make)"; exit 1; }
done
command -v tcpserver >/dev/null || { echo "bench_compare: tcpserver missing (make deps)"; exit 1; }

NS="pst-bench-$$"
T=$(mktemp -d /tmp/pst-bench.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
	# TERM, up to 3 s to finish, then KILL: never an unbounded wait
	local p i
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for i in $(seq 1 30); do
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && break; p=; done
		[ -z "$p" ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	grep -F " $T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS" && ip -n "$NS" link set lo up || exit 1
in_ns() { ip netns exec "$NS" "$@"; }

# cat_sandbox PORT [EXTRA_KEYS]: the benchmarked sandbox, full isolation
cat_sandbox() {
	cat <<JSON
{
      "trigger": { "listen": ["127.0.0.1:$1"] },
      "exec": ["/usr/bin/cat"],
      "filesystem": [ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
		      { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" } ],
      "egress": [ { "to": "192.0.2.0/24", "proto": "tcp", "ports": [9] } ],${2:+ $2,}
      "limits": { "handlers": 64, "timeout": "30s", "memory": "64M", "pids": 16, "nofile": 64 }
    }
JSON
}
cat >"$T/policy.json" <<JSON
{
  "postern": 1,
  "broker": { "table": "pstbench", "control": "$T/control.sock", "state_dir": "$T/state" },
  "sandboxes": {
    "cat": $(cat_sandbox 7400),
    "catpw": $(cat_sandbox 7403 "\"prewarm\": $PRE")
  }
}
JSON
cat >"$T/policy-busy.json" <<JSON
{
  "postern": 1,
  "broker": { "table": "pstbenchb", "control": "$T/control-b.sock", "state_dir": "$T/state-b" },
  "sandboxes": { "catpwb": $(cat_sandbox 7404 "\"prewarm\": $PRE") }
}
JSON
nsenter --net=/run/netns/"$NS" "$B/postern" run "$T/policy.json" 2>"$T/broker.log" &
PIDS+=($!)
nsenter --net=/run/netns/"$NS" "$B/postern" run --prewarm-refill=busy "$T/policy-busy.json" \
	2>"$T/broker-b.log" &
PIDS+=($!)
ip netns exec "$NS" tcpserver -HRl0 -c 200 127.0.0.1 7401 /usr/bin/cat 2>/dev/null &
PIDS+=($!)
ip netns exec "$NS" "$B/tests/bench/echo_server" 127.0.0.1:7402 &
PIDS+=($!)
for _ in $(seq 1 100); do
	l=$(in_ns ss -ltn)
	grep -q 127.0.0.1:7400 <<<"$l" && grep -q 127.0.0.1:7401 <<<"$l" && grep -q 127.0.0.1:7402 <<<"$l" &&
		grep -q 127.0.0.1:7403 <<<"$l" && grep -q 127.0.0.1:7404 <<<"$l" && break
	sleep 0.1
done

declare -A RES
# conc "1g": one client with GAP ms of think time between connections (a
# service that is not saturated); GAP_N connections
GAP=${BENCH_GAP_MS:-20}
GAP_N=${BENCH_GAP_N:-150}
warm_used() { # control-socket sandbox
	"$B/postern" status --json -s "$T/$1" | jq ".sandboxes[] | select(.name==\"$2\") | .prewarm.used"
}
run() { # name port conc round
	local out u0= ws=
	case $1 in
	postern-pw) ws="control.sock catpw" ;;
	postern-pwb) ws="control-b.sock catpwb" ;;
	esac
	[ -n "$ws" ] && u0=$(warm_used $ws)
	if [ "$3" = 1g ]; then
		out=$(in_ns "$B/tests/bench/loadgen" -c 1 -g "$GAP" -n "$GAP_N" -d "$SECS" -p 64 "127.0.0.1:$2")
	else
		out=$(in_ns "$B/tests/bench/loadgen" -c "$3" -n "$N" -d "$SECS" -p 64 "127.0.0.1:$2")
	fi
	local rc=$?
	# how many of the connections found a pre-warmed handler ready
	[ -n "$u0" ] && out="$out warm=$(($(warm_used $ws) - u0))"
	echo "  round $4 $1 c=$3: $out"
	RES["$1,$3,$4"]="$out"
	return $rc
}
fail=0
# warm-up: page cache, cgroup and netns set-up
for p in 7400 7403 7404 7401 7402; do in_ns "$B/tests/bench/loadgen" -c 4 -n 200 -d 10 "127.0.0.1:$p" >/dev/null || fail=1; done
CONCS=${BENCH_CONCS:-1 16 1g}
for r in $(seq 1 "$ROUNDS"); do
	for c in $CONCS; do
		run postern 7400 "$c" "$r" || fail=1
		run postern-pw 7403 "$c" "$r" || fail=1
		run postern-pwb 7404 "$c" "$r" || fail=1
		run tcpserver 7401 "$c" "$r" || fail=1
		run inproc 7402 "$c" "$r" || fail=1
	done
done

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
med() { # name conc field
	for r in $(seq 1 "$ROUNDS"); do field "${RES["$1,$2,$r"]:-}" "$3"; done | median
}
echo
printf '%-12s %5s %12s %10s %10s %10s %8s\n' server conc conns/s p50_us p99_us max_us failed
for c in $CONCS; do
	for s in postern postern-pw postern-pwb tcpserver inproc; do
		failed=0
		for r in $(seq 1 "$ROUNDS"); do failed=$((failed + $(field "${RES["$s,$c,$r"]}" failed))); done
		printf '%-12s %5s %12s %10s %10s %10s %8s\n' "$s" "$c" "$(med $s $c conns_per_s)" \
			"$(med $s $c p50_us)" "$(med $s $c p99_us)" "$(med $s $c max_us)" "$failed"
	done
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
st=$("$B/postern" status --json -s "$T/control.sock")
echo "postern/tcpserver conns/s at c=16:         $(ratio "$(med postern 16 conns_per_s)" "$(med tcpserver 16 conns_per_s)")  (target >= 1.0)"
echo "postern-pw/tcpserver conns/s at c=16:      $(ratio "$(med postern-pw 16 conns_per_s)" "$(med tcpserver 16 conns_per_s)")"
echo "postern/tcpserver p50 at c=1:              $(ratio "$(med postern 1 p50_us)" "$(med tcpserver 1 p50_us)")  (target <= 1.2)"
echo "postern-pw/tcpserver p50 at c=1 (prewarm): $(ratio "$(med postern-pw 1 p50_us)" "$(med tcpserver 1 p50_us)")  (target <= 0.7)"
echo "  with --prewarm-refill=busy:              p50 $(ratio "$(med postern-pwb 1 p50_us)" "$(med tcpserver 1 p50_us)"), p99 $(ratio "$(med postern-pwb 1 p99_us)" "$(med tcpserver 1 p99_us)") (fresh spawns' p99: $(ratio "$(med postern 1 p99_us)" "$(med tcpserver 1 p99_us)"))"
echo "p50 at c=1 with ${GAP} ms think time:      postern $(ratio "$(med postern 1g p50_us)" "$(med tcpserver 1g p50_us)"), postern-pw $(ratio "$(med postern-pw 1g p50_us)" "$(med tcpserver 1g p50_us)"), postern-pwb $(ratio "$(med postern-pwb 1g p50_us)" "$(med tcpserver 1g p50_us)") of tcpserver"
echo "spawn latency, broker's own timing (us):   fresh $(jq -c '.sandboxes[] | select(.name=="cat") | .spawn_us' <<<"$st")"
echo "                                           pre-warmed (release) $(jq -c '.sandboxes[] | select(.name=="catpw") | .spawn_us' <<<"$st")"
echo "fresh spawn breakdown, mean us:            $(jq -c '.sandboxes[] | select(.name=="cat") | .spawn_phases_us' <<<"$st")"
echo "pre-warmed handlers:                       $(jq -c '.sandboxes[] | select(.name=="catpw") | .prewarm | del(.pids)' <<<"$st")"
echo "prewarm=$PRE rounds=$ROUNDS n=$N date=$(date -u +%F) $(nproc) cpus $(uname -r)"
exit $fail
