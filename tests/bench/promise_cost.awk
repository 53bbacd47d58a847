# promise_cost.awk: the CPU a fresh spawn pays for each isolation promise,
# from `perf script -F comm,tid,ip,sym` of a `perf record -a -g` round of
# the fresh-spawn sandbox (bench_compare.sh). Each sample goes to the first
# promise one of its frames (kernel functions, in any task: the broker's
# threads, its children before exec, the handler's exit, kernel threads)
# belongs to; "postern" is the comm of the broker and of its children until
# they exec. Prints us of CPU per connection for each.
#   awk -v n=CONNECTIONS -v hz=SAMPLING_HZ -f promise_cost.awk
# Function names are those of Linux 6.x; a kernel that inlines one shows 0
# there.

function classify(   i, f, pre, prctl, seccomp, openat, procf) {
	pre = comm == "postern"
	for (i = 1; i <= nf; i++) {
		f = fr[i]
		if (f == "do_seccomp" || f ~ /^seccomp_(set_mode_filter|attach_filter|cache_prepare)/)
			return "seccomp_load"
		if (f ~ /^(bpf_prog_free_deferred|bpf_jit_free|__bpf_prog_free|bpf_jit_binary_pack_free)$/)
			return "seccomp_free"
		if (f ~ /sys_prctl$/) prctl = 1
		if (f ~ /sys_openat$/) openat = 1
		if (f ~ /^proc_/) procf = 1
	}
	if (pre && prctl)
		return "bset"
	for (i = 1; i <= nf; i++) {
		f = fr[i]
		if (f == "put_cred_rcu") return "cred_rcu"
		if (f ~ /^(create_user_ns|unshare_userns|free_user_ns|proc_id_map_open|proc_uid_map_write|proc_gid_map_write|proc_setgroups_write|proc_setgroups_open)$/)
			return "userns"
		if (f ~ /^(copy_mnt_ns|namespace_unlock|delayed_free_vfsmnt|put_mnt_ns)$/) return "mntns"
		if (f ~ /^(__cgroup1_procs_write|cgroup_attach_task|__cgroup_procs_write|cgroup_procs_write)$/)
			return "cgroup"
		if (f ~ /^(copy_pid_ns|create_pid_namespace|destroy_pid_namespace|destroy_pid_namespace_work|zap_pid_ns_processes|register_pidns_sysctls)$/)
			return "pidns"
		if (f ~ /landlock/ || f == "free_ruleset") return "landlock"
		if (f == "copy_cgroup_ns") return "joins"
		if (pre && f ~ /sys_(pidfd_getfd|close_range)$/) return "fdtable"
		if (pre && f ~ /sys_rt_sigaction$/) return "signals"
		if (pre && f ~ /sys_setns$/) return "joins"
	}
	# /proc/self and its map files, opened by the child
	if (pre && openat && procf)
		return "userns"
	# the expedited grace period a mount namespace's teardown waits for
	if (comm ~ /^rcu_exp/)
		return "mntns"
	return ""
}

function flush(   k) {
	if (comm == "") return
	k = classify()
	if (k != "") c[k]++
	comm = ""
	nf = 0
}

/^[^ \t]/ { flush(); comm = $1; next }
/^[ \t]+[0-9a-f]+ / { f = $2; sub(/\..*$/, "", f); fr[++nf] = f; next }
/^[ \t]*$/ { flush() }
END {
	flush()
	u = 1e6 / hz / (n > 0 ? n : 1)
	row("seccomp_load", "seccomp filter loaded (convert, JIT, per-syscall cache)")
	row("seccomp_free", "seccomp filter's JIT image freed (kworkers)")
	row("bset", "bounding set dropped (41 prctl, with the few others)")
	row("cred_rcu", "credentials freed by RCU (most the drops' 41)")
	row("userns", "a user namespace of its own, its maps")
	row("mntns", "a mount namespace of its own (copy, teardown)")
	row("cgroup", "cgroup attach (v1 tasks writes)")
	row("fdtable", "the child's own fd table")
	row("signals", "signal dispositions reset")
	row("pidns", "a pid namespace of its own")
	row("landlock", "Landlock")
	row("joins", "netns/uts/ipc joined, cgroup namespace")
	printf "  %-58s %5.0f\n", "all of these", t
}

# one line of the table, its figure added to the total
function row(k, label) {
	t += c[k] * u
	printf "  %-58s %5.0f\n", label, c[k] * u
}
