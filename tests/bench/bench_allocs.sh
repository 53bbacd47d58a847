#!/usr/bin/env bash
# Heap allocations the broker makes per request, counted by uprobes on
# libc's malloc, calloc and realloc (perf probe), in all the broker's
# threads (the loop and the threadpool, not the handlers), over
# BENCH_ALLOC_N requests to a fresh-spawn sandbox and to a pre-warmed one,
# after BENCH_ALLOC_WARMUP requests each. Target: 0 per request.
#
#   BENCH_ALLOC_N=1000 BENCH_ALLOC_WARMUP=200 tests/bench/bench_allocs.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/build
N=${BENCH_ALLOC_N:-1000}
WARMUP=${BENCH_ALLOC_WARMUP:-200}
skip() { echo "bench_allocs: skipped: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root"
command -v perf >/dev/null || skip "perf not installed (linux-perf)"
for b in "$B/postern" "$B/tests/bench/loadgen"; do [ -x "$b" ] || { echo "missing $b: run make first" >&2; exit 1; }; done
LIBC=$(ldd "$B/postern" | awk '$1 ~ /^libc\.so/ { print $3 }')
[ -n "$LIBC" ] || skip "postern is not linked with a shared libc"

NS=pst-$$-$RANDOM-allocs
T=$(mktemp -d /tmp/pst-bench.XXXXXX)
chmod 755 "$T"
BP= ADDED=()
cleanup() {
	if [ -n "$BP" ]; then
		kill -TERM "$BP" 2>/dev/null; sleep 0.2; kill -TERM "$BP" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$BP" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$BP" 2>/dev/null; wait "$BP" 2>/dev/null
	fi
	for e in "${ADDED[@]}"; do perf probe -q --del "$e" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# the probes, unless they exist already (then they are left as they were)
EVENTS=()
for f in malloc calloc realloc; do
	ev=probe_libc:$f
	if ! perf probe -l 2>/dev/null | grep -q "^ *$ev "; then
		perf probe -q -x "$LIBC" --add "$f" 2>/dev/null || skip "perf probe cannot add uprobes here"
		ADDED+=("$ev")
	fi
	EVENTS+=("$ev")
done

ip netns add "$NS" && ip -n "$NS" link set lo up || exit 1
sandbox() {
	cat <<JSON
{ "trigger": { "listen": ["127.0.0.1:$1"] }, "exec": ["/usr/bin/cat"],
  "filesystem": [ { "bind": "/usr" }, { "symlink": "/lib", "target": "usr/lib" },
		  { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" } ],
  "egress": [ { "to": "192.0.2.0/24", "proto": "tcp", "ports": [9] } ],${2:+ $2,}
  "limits": { "handlers": 64, "timeout": "30s", "memory": "64M", "pids": 16, "nofile": 64 } }
JSON
}
cat >"$T/policy.json" <<JSON
{ "postern": 1,
  "broker": { "table": "pstallocs$$", "control": "$T/control.sock", "state_dir": "$T/state" },
  "sandboxes": { "cat": $(sandbox 7600), "catpw": $(sandbox 7601 '"prewarm": 4') } }
JSON
# nsenter, not "ip netns exec": that one mounts a /sys without cgroups
nsenter --net=/run/netns/"$NS" "$B/postern" run "$T/policy.json" >"$T/broker.log" 2>&1 &
BP=$!
for _ in $(seq 1 100); do grep -q 'event=start ' "$T/broker.log" && break; sleep 0.1; done
grep -q 'event=start ' "$T/broker.log" || { cat "$T/broker.log" >&2; exit 1; }

rc=0
printf '%-22s %8s %8s %8s %8s %12s\n' path requests malloc calloc realloc per_request
for path in fresh:7600 prewarmed:7601; do
	port=${path#*:}
	ip netns exec "$NS" "$B/tests/bench/loadgen" -c 1 -n "$WARMUP" -p 64 "127.0.0.1:$port" >/dev/null ||
		{ echo "warm-up failed" >&2; exit 1; }
	# -i: the broker's own threads, not the handlers it starts
	ev=$(IFS=,; echo "${EVENTS[*]}")
	perf stat -i -p "$BP" -e "$ev" -x, -o "$T/perf.txt" -- \
		ip netns exec "$NS" "$B/tests/bench/loadgen" -c 1 -n "$N" -p 64 "127.0.0.1:$port" >"$T/load.txt" ||
		{ cat "$T/load.txt" >&2; exit 1; }
	done_n=$(sed -n 's/.*completed=\([0-9]*\).*/\1/p' "$T/load.txt")
	m=$(awk -F, '$3 == "probe_libc:malloc" { print $1 }' "$T/perf.txt")
	c=$(awk -F, '$3 == "probe_libc:calloc" { print $1 }' "$T/perf.txt")
	r=$(awk -F, '$3 == "probe_libc:realloc" { print $1 }' "$T/perf.txt")
	per=$(awk -v a="$m" -v b="$c" -v d="$r" -v n="$done_n" 'BEGIN { printf "%.3f", (a + b + d) / n }')
	printf '%-22s %8s %8s %8s %8s %12s\n' "${path%%:*}" "$done_n" "$m" "$c" "$r" "$per"
	[ "$((m + c + r))" = 0 ] || rc=1
done
[ $rc = 0 ] && echo "target: no heap allocation in the broker per request: met" ||
	echo "target: no heap allocation in the broker per request: NOT met"
exit $rc
