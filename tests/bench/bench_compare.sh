#!/usr/bin/env bash
# Side-by-side: postern (full isolation: sandbox network with egress rules,
# seccomp, cgroup and rlimit limits) running /usr/bin/cat, fresh per request
# ("postern") and pre-warmed ("postern-pw", prewarm BENCH_PREWARM; and
# "postern-pwb", a second broker run with --prewarm-refill=busy); tcpserver
# -HRl0 (fork+exec, no isolation) running the same cat; and an in-process
# epoll echo server (the upper bound). Alternating rounds, at concurrency 1
# and 16, ROUNDS rounds each, all inside a throwaway network namespace on
# loopback; plus one client with think time between connections ("1g").
# Prints medians, the postern/tcpserver ratios, the broker's own spawn
# breakdown, and CPU time per connection by category for each server (its
# own process, its children, the handlers' cgroups, kernel threads, the
# load generator, the rest of the machine) with the cores' idle share
# (cpu_account.sh; docs/performance.md says how each is measured); where
# perf works, one more round of each of: the run time of every task by
# category split at exec, the broker's top symbols, and its syscalls. The
# header gives this machine's fork+exec cost.
#
#   BENCH_ROUNDS=3 BENCH_N=3000 BENCH_SECONDS=10 BENCH_PREWARM=16 \
#   BENCH_CONCS="1 16 1g" BENCH_PERF=1 BENCH_PERF_N=1000 BENCH_FORK_N=200 \
#   tests/bench/bench_compare.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/build
ROUNDS=${BENCH_ROUNDS:-3}
N=${BENCH_N:-3000}
SECS=${BENCH_SECONDS:-10}
PRE=${BENCH_PREWARM:-16}
[ "$(id -u)" = 0 ] || { echo "bench_compare: needs root"; exit 1; }
for x in "$B/postern" "$B/tests/bench/loadgen" "$B/tests/bench/echo_server" "$B/tests/bench/cpuid_cost"; do
	[ -x "$x" ] || { echo "bench_compare: missing $x (make)"; exit 1; }
done
command -v tcpserver >/dev/null || { echo "bench_compare: tcpserver missing (make deps)"; exit 1; }
. "$ROOT/tests/bench/cpu_account.sh"
FORK_N=${BENCH_FORK_N:-200}
echo "fork+exec+wait from bash on this machine: cat $(fork_exec_ms "$FORK_N" /usr/bin/cat) ms," \
	"true $(fork_exec_ms "$FORK_N" /usr/bin/true) ms (each of $FORK_N; $(nproc) cpus, $(uname -r));" \
	"one cpuid $("$B/tests/bench/cpuid_cost") us (the dynamic loader runs dozens per exec)"

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
		      { "symlink": "/lib64", "target": "usr/lib64" }, { "symlink": "/bin", "target": "usr/bin" },
		      { "bind": "/etc/ld.so.cache" } ],
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
field() { sed -n "s/.*\b$2=\(-\?[0-9][0-9.]*\).*/\1/p" <<<"$1"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
cg_us() { # control-socket sandbox: its handlers' cgroups' CPU (exited and running), us
	"$B/postern" status --json -s "$T/$1" | jq ".sandboxes[] | select(.name==\"$2\") | .cgroup.cpu_us"
}
# the process each server's CPU is read from; and for postern its control
# socket and sandbox
server_of() {
	case $1 in
	postern) echo "${PIDS[0]} control.sock cat" ;;
	postern-pw) echo "${PIDS[0]} control.sock catpw" ;;
	postern-pwb) echo "${PIDS[1]} control-b.sock catpwb" ;;
	tcpserver) echo "${PIDS[2]}" ;;
	inproc) echo "${PIDS[3]}" ;;
	esac
}
# After a round, until the server's handlers are reaped and (pre-warmed)
# its pool is full again, at most 5 s: the CPU read then includes the
# teardown and the refill the round caused.
settle() { # name
	local sp cs sb i
	read -r sp cs sb <<<"$(server_of "$1")"
	for i in $(seq 1 50); do
		if [ -n "${cs:-}" ]; then
			"$B/postern" status --json -s "$T/$cs" | jq -e --arg s "$sb" '.sandboxes[] | select(.name==$s) |
				.active == 0 and ((.prewarm.ready // 0) >= (.prewarm.target // 0))' >/dev/null && return
		else
			[ -z "$(ps -o pid= --ppid "$sp")" ] && return
		fi
		sleep 0.1
	done
}
declare -A ACC
run() { # name port conc round
	local out u0= ws= sp cs sb cg0= cgd=
	read -r sp cs sb <<<"$(server_of "$1")"
	case $1 in
	postern-pw) ws="control.sock catpw" ;;
	postern-pwb) ws="control-b.sock catpwb" ;;
	esac
	[ -n "$ws" ] && u0=$(warm_used $ws)
	[ -n "${cs:-}" ] && cg0=$(cg_us "$cs" "$sb")
	acct_snap "$T/acct0" "${PIDS[@]}"
	if [ "$3" = 1g ]; then
		out=$(in_ns "$B/tests/bench/loadgen" -c 1 -g "$GAP" -n "$GAP_N" -d "$SECS" -p 64 "127.0.0.1:$2"
			r=$?; times >"$T/lg_t"; exit $r)
	else
		out=$(in_ns "$B/tests/bench/loadgen" -c "$3" -n "$N" -d "$SECS" -p 64 "127.0.0.1:$2"
			r=$?; times >"$T/lg_t"; exit $r)
	fi
	local rc=$?
	acct_stat "$T/acct1"
	settle "$1"
	acct_snap "$T/acct2" "${PIDS[@]}"
	[ -n "${cs:-}" ] && cgd=$(($(cg_us "$cs" "$sb") - cg0))
	# how many of the connections found a pre-warmed handler ready
	[ -n "$u0" ] && out="$out warm=$(($(warm_used $ws) - u0))"
	echo "  round $4 $1 c=$3: $out"
	RES["$1,$3,$4"]="$out"
	ACC["$1,$3,$4"]=$(acct_delta "$T/acct0" "$T/acct1" "$T/acct2" "$sp" "$(field "$out" completed)" \
		"$(times_us <"$T/lg_t")" "$cgd")
	echo "    cpu us/conn: ${ACC["$1,$3,$4"]}"
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
echo "postern/tcpserver conns/s at c=16:         $(ratio "$(med postern 16 conns_per_s)" "$(med tcpserver 16 conns_per_s)")"
echo "postern-pw/tcpserver conns/s at c=16:      $(ratio "$(med postern-pw 16 conns_per_s)" "$(med tcpserver 16 conns_per_s)")"
echo "postern/tcpserver p50 at c=1:              $(ratio "$(med postern 1 p50_us)" "$(med tcpserver 1 p50_us)")"
echo "postern-pw/tcpserver p50 at c=1 (prewarm): $(ratio "$(med postern-pw 1 p50_us)" "$(med tcpserver 1 p50_us)")"
echo "  with --prewarm-refill=busy:              p50 $(ratio "$(med postern-pwb 1 p50_us)" "$(med tcpserver 1 p50_us)"), p99 $(ratio "$(med postern-pwb 1 p99_us)" "$(med tcpserver 1 p99_us)") (fresh spawns' p99: $(ratio "$(med postern 1 p99_us)" "$(med tcpserver 1 p99_us)"))"
echo "p50 at c=1 with ${GAP} ms think time:      postern $(ratio "$(med postern 1g p50_us)" "$(med tcpserver 1g p50_us)"), postern-pw $(ratio "$(med postern-pw 1g p50_us)" "$(med tcpserver 1g p50_us)"), postern-pwb $(ratio "$(med postern-pwb 1g p50_us)" "$(med tcpserver 1g p50_us)") of tcpserver"
echo "spawn latency, broker's own timing (us):   fresh $(jq -c '.sandboxes[] | select(.name=="cat") | .spawn_us' <<<"$st")"
echo "                                           pre-warmed (release) $(jq -c '.sandboxes[] | select(.name=="catpw") | .spawn_us' <<<"$st")"
echo "fresh spawn breakdown, mean us:            $(jq -c '.sandboxes[] | select(.name=="cat") | .spawn_phases_us' <<<"$st")"
echo "pre-warmed handlers:                       $(jq -c '.sandboxes[] | select(.name=="catpw") | .prewarm | del(.pids)' <<<"$st")"

# CPU per connection by category (cpu_account.sh)
amed() { # name conc key: median over rounds, "-" when there is none
	local v
	v=$(for r in $(seq 1 "$ROUNDS"); do field "${ACC["$1,$2,$r"]:-}" "$3"; done)
	if [ -z "$v" ]; then
		echo -
	else
		median <<<"$v" | awk -v k="$3" '{ printf(k == "idle" || k == "steal" ? "%.1f\n" : "%.0f\n", $1) }'
	fi
}
echo
echo "CPU per connection, us of user+sys, median of rounds (how: docs/performance.md):"
echo "  server: the broker (all its threads) / tcpserver / the echo server's own process;"
echo "  children: what it reaped (postern: handlers, their set-up before exec included;"
echo "  tcpserver: its forks, which exec cat); cgroup: postern's handler cgroups (part of"
echo "  children); kthreads: kernel threads; rest: the machine's other busy time (other"
echo "  servers, other users); idle, steal: % of the $(nproc) cores while the load ran"
printf '%-12s %5s %8s %9s %7s %9s %8s %7s %7s %6s %6s\n' server conc server children cgroup kthreads loadgen rest total idle% steal%
for c in $CONCS; do
	for s in postern postern-pw postern-pwb tcpserver inproc; do
		printf '%-12s %5s %8s %9s %7s %9s %8s %7s %7s %6s %6s\n' "$s" "$c" "$(amed $s $c server)" \
			"$(amed $s $c children)" "$(amed $s $c cgroup)" "$(amed $s $c kthreads)" \
			"$(amed $s $c loadgen)" "$(amed $s $c rest)" "$(amed $s $c total)" "$(amed $s $c idle)" \
			"$(amed $s $c steal)"
	done
done
sum2() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }
echo "server+children CPU per connection, postern/tcpserver at c=16: $(ratio "$(sum2 "$(amed postern 16 server)" "$(amed postern 16 children)")" "$(sum2 "$(amed tcpserver 16 server)" "$(amed tcpserver 16 children)")"), postern-pw $(ratio "$(sum2 "$(amed postern-pw 16 server)" "$(amed postern-pw 16 children)")" "$(sum2 "$(amed tcpserver 16 server)" "$(amed tcpserver 16 children)")"); with kthreads: $(ratio "$(sum2 "$(sum2 "$(amed postern 16 server)" "$(amed postern 16 children)")" "$(amed postern 16 kthreads)")" "$(sum2 "$(sum2 "$(amed tcpserver 16 server)" "$(amed tcpserver 16 children)")" "$(amed tcpserver 16 kthreads)")")"
case " $CONCS " in *" 16 "*)
	echo "idle share of the cores during the c=16 rounds: postern $(amed postern 16 idle)%, postern-pw $(amed postern-pw 16 idle)%, postern-pwb $(amed postern-pwb 16 idle)%, tcpserver $(amed tcpserver 16 idle)%" ;;
esac

# perf: one more round at c=16 (not in the medians) of the fresh-spawn
# sandbox and one of tcpserver, with the run time of every task
# (sched:sched_stat_runtime and sched:sched_process_fork on every CPU: a
# child is split at its exec, its comm being postern or tcpserver before and
# cat after), the first with a profile of the broker; and one round of the
# fresh-spawn sandbox with the broker's syscalls (perf trace), and one with
# every CPU profiled, its samples put under the isolation promise they
# serve (tests/bench/promise_cost.awk).
PERF=${BENCH_PERF:-1}
PERF_N=${BENCH_PERF_N:-1000}
perf_stop() { # pid: SIGINT, at most 10 s, then KILL
	local i
	kill -INT "$1" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	local k=()
	for i in "${PIDS[@]}"; do [ "$i" = "$1" ] || k+=("$i"); done
	PIDS=("${k[@]}")
}
perf_load() { in_ns "$B/tests/bench/loadgen" -c 16 -n "$PERF_N" -d "$SECS" -p 64 "127.0.0.1:$1"; }
# perf_around ERRFILE PERF-COMMAND...: the command in the background (its
# stderr in ERRFILE) around one more fresh-spawn round; sets out (the
# round's loadgen line) and n (connections completed)
perf_around() {
	local err=$1 p
	shift
	"$@" 2>"$err" &
	p=$!
	PIDS+=($p)
	sleep 1
	out=$(perf_load 7400)
	settle postern
	perf_stop "$p"
	n=$(field "$out" completed)
}
perf_sched_round() { # name port pre-exec-comms pid... (the server's processes)
	local name=$1 port=$2 pre=$3 p1 p2= out n
	shift 3
	tids_of "$@" >"$T/stids"
	perf record -a -q -e sched:sched_stat_runtime -e sched:sched_process_fork -o "$T/sched.data" 2>"$T/perf1.err" &
	p1=$!
	PIDS+=($p1)
	if [ "$name" = postern ]; then
		perf record -q -e cpu-clock -F 997 -g -p "$1" -o "$T/prof.data" 2>"$T/perf2.err" &
		p2=$!
		PIDS+=($p2)
	fi
	sleep 1
	out=$(perf_load "$port")
	settle "$name"
	kthread_pids >"$T/kthreads"
	[ -n "$p2" ] && perf_stop "$p2"
	perf_stop "$p1"
	n=$(field "$out" completed)
	echo " $name: $out"
	perf script -i "$T/sched.data" 2>/dev/null >"$T/sched.txt"
	perf_sched_summary "$T/sched.txt" "$T/stids" "$T/kthreads" "${n:-1}" "$pre" | tee "$T/sum.$name"
	rm -f "$T/sched.data" "$T/sched.txt"
}
echo
if [ "$PERF" = 0 ]; then
	echo "perf: not run (BENCH_PERF=0)"
elif ! command -v perf >/dev/null; then
	echo "perf: not installed (Debian linux-perf): no split at exec, broker profile or syscall counts"
elif ! perf stat -e sched:sched_stat_runtime true >/dev/null 2>&1; then
	echo "perf: sched tracepoints unavailable here: no split at exec, broker profile or syscall counts"
else
	echo "perf rounds at c=16, not in the medians: run time of every task per connection, us"
	echo "(sched:sched_stat_runtime, all CPUs); server: the broker's threads / tcpserver; pre-exec:"
	echo "its children and theirs before exec; handler: after (cat); perf: perf itself"
	tids_of "${PIDS[0]}" >"$T/btids0"
	perf_sched_round postern 7400 'postern|postern-warm' "${PIDS[0]}" "${PIDS[1]}"
	perf_sched_round tcpserver 7401 'tcpserver' "${PIDS[2]}"
	# the broker's threads only (its children are in the samples too)
	tl=$(tr '\n' , <"$T/btids0" | sed 's/,$//')
	echo " the broker's threads in the postern round (perf record -g -p, cpu-clock), % of their samples:"
	echo "  by syscall, with what it calls; us per connection of the broker's server= above:"
	perf report -i "$T/prof.data" --stdio --children -g none --tid "$tl" --percentage relative --sort sym 2>/dev/null |
		awk -v us="$(field "$(cat "$T/sum.postern")" server)" '$3 == "[k]" && $4 ~ /^__(x64|do)_sys_/ {
			v = $1; sub(/%/, "", v); printf "  %7s %6.0f us  %s\n", $1, v * us / 100, $4 }' | head -12
	echo "  top symbols, self:"
	perf report -i "$T/prof.data" --stdio --no-children -g none --tid "$tl" --percentage relative --sort dso,sym \
		--percent-limit 1.5 2>/dev/null | grep -v '^#' | grep -v '^ *$' | head -10 | sed 's/^/  /'
	rm -f "$T/prof.data"
	tids_of "${PIDS[0]}" >"$T/btids"
	perf_around "$T/perf3.err" perf trace -s -p "${PIDS[0]}" -o "$T/trace.txt"
	echo " syscalls per connection of the broker's threads, top 10 by calls (perf trace -s; one more round: $out):"
	awk -v n="${n:-1}" -v tids="$(tr '\n' ' ' <"$T/btids")" '
		BEGIN { split(tids, a, " "); for (i in a) bt[a[i]] = 1 }
		/ events, / { t = $0; sub(/.*\(/, "", t); sub(/\).*/, "", t); in_b = t in bt; next }
		in_b && $2 ~ /^[0-9]+$/ && NF >= 8 { c[$1] += $2; ms[$1] += $4 }
		END {
			m = 0; for (k in c) { m++; nm[m] = k }
			for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (c[nm[j]] > c[nm[i]]) { x = nm[i]; nm[i] = nm[j]; nm[j] = x }
			for (i = 1; i <= m && i <= 10; i++) printf "  %-18s %7.2f calls %9.1f us in it (wall)\n", nm[i], c[nm[i]] / n, ms[nm[i]] * 1000 / n
			if (!m) print "  (perf trace gave no summary)"
		}' "$T/trace.txt" 2>/dev/null
	# what the isolation costs, by promise: every sample on every CPU put
	# under the step its kernel functions belong to (promise_cost.awk)
	perf_around "$T/perf4.err" perf record -a -q -g -F 2000 -o "$T/promise.data"
	echo " the fresh spawn's isolation by promise, us of CPU per connection, any task (perf record -a -g; one more round: $out):"
	perf script -i "$T/promise.data" -F comm,tid,ip,sym 2>/dev/null |
		awk -v n="${n:-1}" -v hz=2000 -f "$ROOT/tests/bench/promise_cost.awk"
	rm -f "$T/promise.data"
fi
# the performance issue's targets, from the figures above: each "met" or
# "not met", or "n/a" where its figure is missing (a row or perf not run)
target() { # label value op limit
	local verdict
	verdict=$(awk -v v="$2" -v op="$3" -v l="$4" 'BEGIN {
		if (v == "" || v == "n/a" || v == "-") { print "n/a"; exit }
		ok = op == ">=" ? v + 0 >= l + 0 : v + 0 <= l + 0; print ok ? "met" : "not met" }')
	printf '  %-44s %8s  (%s %s) %s\n' "$1" "${2:-n/a}" "$3" "$4" "$verdict"
}
echo "targets (the performance issue; ratios to tcpserver in this run, zero failed connections: $([ "$fail" = 0 ] && echo yes || echo no)):"
[ -n "${RES[postern,16,1]:-}" ] &&
	target "fresh spawn, conns/s at c=16" "$(ratio "$(med postern 16 conns_per_s)" "$(med tcpserver 16 conns_per_s)")" ">=" 0.9
[ -n "${RES[postern,1,1]:-}" ] &&
	target "fresh spawn, p50 at c=1" "$(ratio "$(med postern 1 p50_us)" "$(med tcpserver 1 p50_us)")" "<=" 1.0
[ -n "${RES[postern-pw,1g,1]:-}" ] &&
	target "prewarm 16, ${GAP} ms think time, p50 at c=1" "$(ratio "$(med postern-pw 1g p50_us)" "$(med tcpserver 1g p50_us)")" "<=" 0.5
if [ -s "$T/sum.postern" ]; then
	target "broker + its pre-exec children, us per conn" \
		"$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
			END { if (f["server"] != "") print f["server"] + f["pre-exec"] }' "$T/sum.postern")" "<=" 300
fi
echo "prewarm=$PRE rounds=$ROUNDS n=$N date=$(date -u +%F) $(nproc) cpus $(uname -r)"
exit $fail
