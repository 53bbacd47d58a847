# CPU accounting for bench_compare.sh (sourced; not a benchmark of its own,
# so run.sh does not run it). How the categories are measured and what is
# exact: docs/performance.md, "How the CPU per connection is measured".
#
#   acct_snap FILE PID...   /proc/stat's cpu line, each PID's own and reaped
#                           children's CPU, every kernel thread's CPU
#   acct_stat FILE          /proc/stat's cpu line only
#   acct_delta BEFORE MID AFTER SERVER_PID CONNS LOADGEN_US CGROUP_US
#                           one "key=value ..." line of us per connection
#   fork_exec_ms N PROG     ms per fork+exec+wait of PROG </dev/null from bash
#   perf_sched_summary ...  the perf round's run time by category (below)

ACCT_HZ=$(getconf CLK_TCK)

acct_stat() { head -1 /proc/stat | sed 's/^cpu */stat /' >"$1"; }

acct_snap() {
	local f=$1 p
	shift
	acct_stat "$f"
	# /proc/PID/stat after the ") " ending comm: field 12 utime, 13 stime,
	# 14 cutime, 15 cstime (clock ticks); utime+stime covers every thread of
	# the process, cutime+cstime every child it has reaped (and theirs)
	for p in "$@"; do
		sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk -v p="$p" '{ print "pid", p, $12 + $13, $14 + $15 }'
	done >>"$f"
	# kernel threads: kthreadd (pid 2) and its children
	for p in /proc/[0-9]*/stat; do
		{ read -r l <"$p"; } 2>/dev/null && echo "$l"
	done | awk '{ pid = $1; sub(/.*\) /, ""); if (pid == 2 || $2 == 2) print "k", pid, $12 + $13 }' >>"$f"
}

# Delta of BEFORE..AFTER (idle: BEFORE..MID, the load's own window), per
# connection, in us: server (its own threads), children (reaped), cgroup (the
# handlers' cgroups, given in us), kthreads, loadgen (given in us), rest (the
# machine's non-idle time not in those), total, and idle/steal in % of the
# cores.
acct_delta() {
	awk -v hz="$ACCT_HZ" -v sp="$4" -v n="$5" -v lg="$6" -v cg="$7" '
	FNR == 1 { f++ }
	$1 == "stat" {
		# user nice system idle iowait irq softirq steal
		busy = $2 + $3 + $4 + $7 + $8; all = busy + $5 + $6 + $9
		idle = $5 + $6; steal = $9
		if (f == 1) { b0 = busy; a0 = all; i0 = idle; s0 = steal }
		else if (f == 2) { a1 = all; i1 = idle; s1 = steal }
		else { b2 = busy }
		next
	}
	$1 == "pid" && $2 == sp { if (f == 1) { s_0 = $3; c_0 = $4 } else if (f == 3) { s_2 = $3; c_2 = $4 } next }
	$1 == "k" {
		if (f == 1) k0[$2] = $3
		else if (f == 3) { o = 0; if ($2 in k0) o = k0[$2]; k += $3 - o }
		next
	}
	END {
		u = 1e6 / hz / (n > 0 ? n : 1)
		srv = (s_2 - s_0) * u; ch = (c_2 - c_0) * u; kt = k * u; tot = (b2 - b0) * u
		lgc = lg / (n > 0 ? n : 1); cgc = cg == "" ? "-" : sprintf("%.0f", cg / (n > 0 ? n : 1))
		rest = tot - srv - ch - kt - lgc
		printf "server=%.0f children=%.0f cgroup=%s kthreads=%.0f loadgen=%.0f rest=%.0f total=%.0f idle=%.1f steal=%.1f\n",
			srv, ch, cgc, kt, lgc, rest, tot,
			(a1 > a0 ? 100 * (i1 - i0) / (a1 - a0) : 0), (a1 > a0 ? 100 * (s1 - s0) / (a1 - a0) : 0)
	}' "$1" "$2" "$3"
}

# bash's `times` (second line: children's user and sys, as XmY.YYYs) in us
times_us() { awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); s += a[1] * 60 + a[2] } printf "%.0f", s * 1e6 }'; }

fork_exec_ms() { # N PROG
	local i t0 t1
	t0=$(date +%s%N)
	for ((i = 0; i < $1; i++)); do "$2" </dev/null; done
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" -v n="$1" 'BEGIN { printf "%.2f", (b - a) / 1e6 / n }'
}

# A tid list of processes (every thread), one a line.
tids_of() { local p; for p in "$@"; do ls "/proc/$p/task" 2>/dev/null; done; }

# perf_sched_summary SCRIPT SERVER_TIDS KTHREADS CONNS PRE_COMMS: SCRIPT is
# `perf script` of sched:sched_stat_runtime and sched:sched_process_fork on
# every CPU: the run time of every task, by who it is: the server's threads,
# their descendants (by the fork events) before they exec (comm still one
# of the PRE_COMMS regex, e.g. postern|postern-warm) and after (the
# handler), kernel threads, loadgen, perf, the rest (largest by comm).
perf_sched_summary() {
	awk -v n="$4" -v pre="^($5)$" '
	FILENAME == ARGV[1] { bt[$1] = 1; next }
	FILENAME == ARGV[2] { kt[$1] = 1; next }
	{
		c = ""; p = ""; r = 0; cp = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^comm=/) c = substr($i, 6)
			else if ($i ~ /^pid=/) p = substr($i, 5)
			else if ($i ~ /^runtime=/) r = substr($i, 9)
			else if ($i ~ /^child_pid=/) cp = substr($i, 11)
		}
		if (p == "") next
		if (cp != "") { if ((p in bt) || (p in ch)) ch[cp] = 1; next }
		if (p in bt) k = "server"
		else if (p in ch) k = (c ~ pre) ? "pre-exec" : "handler"
		else if ((p in kt) || c ~ /^(kworker|ksoftirqd|rcu|migration|kthreadd|cpuhp|idle_inject|watchdog|oom_reaper|kauditd|kcompactd|khugepaged|kswapd)/) k = "kthreads"
		else if (c == "loadgen") k = "loadgen"
		else if (c ~ /^perf/) k = "perf"
		else { k = "rest"; rc[c] += r }
		t[k] += r
	}
	END {
		printf "  "
		split("server pre-exec handler kthreads loadgen rest perf", o, " ")
		for (i = 1; i <= 7; i++) printf " %s=%.0f", o[i], t[o[i]] / 1000 / n
		printf "\n"
		m = 0
		for (c in rc) { m++; names[m] = c }
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (rc[names[j]] > rc[names[i]]) { x = names[i]; names[i] = names[j]; names[j] = x }
		printf "  rest, largest by comm:"
		for (i = 1; i <= m && i <= 5; i++) printf " %s=%.0f", names[i], rc[names[i]] / 1000 / n
		printf "\n"
	}' "$2" "$3" "$1"
}

# kernel threads now: pid 2 and its children
kthread_pids() { local p l; for p in /proc/[0-9]*/stat; do { read -r l <"$p"; } 2>/dev/null && echo "$l"; done | awk '{ pid = $1; sub(/.*\) /, ""); if (pid == 2 || $2 == 2) print pid }'; }
