/* SPDX-License-Identifier: MIT */
/* The seccomp profile: compiled once per sandbox to BPF with libseccomp, loaded by the child. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "sandbox/internal.h"

/* The default profile: denied with EPERM (or killed when the policy says
 * kill). Namespaces, mounts, tracing, kernel state, keyrings, BPF/perf,
 * io_uring, userfaultfd and file handles are not for request handlers. */
static const char *const default_deny[] = {
    /* mounts and namespaces */
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    /* tracing and other processes' memory */
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    /* kernel facilities */
    "bpf",
    "perf_event_open",
    "add_key",
    "request_key",
    "keyctl",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "quotactl",
    "vhangup",
    "syslog",
    "iopl",
    "ioperm",
    "personality",
    "fanotify_init",
    "nfsservctl",
    NULL,
};

/* System V IPC and POSIX message queues: denied too, because a sandbox's
 * handlers share its ipc namespace (namespaces.c), where an object one
 * made another could find. A sandbox that allows any of them gives each
 * handler an ipc namespace of its own instead (sb_ipc_private()). "ipc"
 * is the multiplexer of the 32-bit architectures. */
static const char *const ipc_calls[] = {
    "shmget",          "shmat",     "shmdt",         "shmctl",    "msgget",
    "msgsnd",          "msgrcv",    "msgctl",        "semget",    "semop",
    "semtimedop",      "semctl",    "mq_open",       "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr", "ipc",       NULL,
};

static bool listed(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (!strcmp(*list, name))
			return true;
	return false;
}

static void ctx_release(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define _cleanup_seccomp_ __attribute__((cleanup(ctx_release)))

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, struct sandbox_error *err,
               const char *sbname)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		sb_error(err, EINVAL, "seccomp", name,
		         "sandbox \"%s\": seccomp: unknown syscall \"%s\"", sbname, name);
		return -EINVAL;
	}
	int r = seccomp_rule_add(ctx, action, nr, 0);
	if (r < 0 && r != -EEXIST) {
		sb_error(err, -r, "seccomp", name, "sandbox \"%s\": seccomp: rule for %s: %s",
		         sbname, name, strerror(-r));
		return r;
	}
	return 0;
}

bool sb_ipc_private(const struct sandbox_config *cfg)
{
	for (const char *const *n = ipc_calls; *n; n++)
		if (listed(cfg->seccomp_allow, *n))
			return true;
	return false;
}

/* The default profile (but what the policy allows) and the policy's denies. */
static int deny_lists(scmp_filter_ctx ctx, uint32_t deny, const struct sandbox_config *cfg,
                      struct sandbox_error *err)
{
	static const char *const *const defaults[] = {default_deny, ipc_calls};
	int r;
	for (size_t l = 0; l < sizeof(defaults) / sizeof(defaults[0]); l++)
		for (const char *const *n = defaults[l]; *n; n++) {
			if (listed(cfg->seccomp_allow, *n))
				continue;
			if (seccomp_syscall_resolve_name(*n) == __NR_SCMP_ERROR)
				continue; /* not on this architecture */
			if ((r = add(ctx, deny, *n, err, cfg->name)) < 0)
				return r;
		}
	for (const char *const *n = cfg->seccomp_deny; n && *n; n++)
		if ((r = add(ctx, deny, *n, err, cfg->name)) < 0)
			return r;
	return 0;
}

/* clone3 cannot be filtered on its flags (they are in memory): ENOSYS
 * makes libc fall back to clone, whose namespace flags are denied. */
static int clone_rules(scmp_filter_ctx ctx, uint32_t deny, const struct sandbox_config *cfg,
                       struct sandbox_error *err)
{
	if (!listed(cfg->seccomp_allow, "clone3"))
		seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (listed(cfg->seccomp_allow, "clone"))
		return 0;
	const uint64_t ns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
	                    CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
	/* one rule per namespace bit: any of them set is denied */
	for (unsigned b = 0; b < 64; b++) {
		uint64_t bit = 1ull << b;
		if (!(ns & bit))
			continue;
		int r = seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1,
		                         SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
		if (r < 0) {
			sb_error(err, -r, "seccomp", "clone",
			         "sandbox \"%s\": seccomp: clone rule: %s", cfg->name,
			         strerror(-r));
			return r;
		}
	}
	return 0;
}

/* sockets: an allowlist. socket() makes AF_UNIX, AF_INET and AF_INET6
 * sockets only, of type stream, datagram or seqpacket, with protocol 0,
 * ICMP, TCP, UDP or ICMPv6: no netlink, packet, vsock, alg, xdp,
 * bluetooth, ..., no raw or SOCK_PACKET sockets (which turn into packet
 * ones), no SCTP, MPTCP, L2TP, SMC. libseccomp compares an argument once
 * per rule, so what is refused is written as ranges (value & mask == val),
 * each rule denying one; a value with any of its upper 32 bits set
 * (ignored by the kernel, for an int) is caught by the last rule of family
 * and protocol. socketpair() creates its two sockets before it asks the
 * family whether it can pair them: AF_UNIX only. */
static int socket_rules(scmp_filter_ctx ctx, uint32_t deny, const struct sandbox_config *cfg,
                        struct sandbox_error *err)
{
	struct range {
		uint64_t mask, val;
	};
	static const struct range fam_deny[] = {
	    {~0ull, 0}, {~0ull, 3}, {~3ull, 4}, {~1ull, 8}, /* 0, 3, 4-7, 8-9 */
	};
	/* the type's low 4 bits (SOCK_NONBLOCK and SOCK_CLOEXEC are above) */
	static const struct range type_deny[] = {
	    {0xf, 0}, {0xf, SOCK_RAW}, {0xf, SOCK_RDM}, {0xe, 6}, {0x8, 8}, /* 0, 3, 4, 6-7, 8-15 */
	};
	static const struct range proto_deny[] = {
	    {~1ull, 2},  {~1ull, 4},  {~0ull, 7},  {~7ull, 8},   {~0ull, 16},
	    {~1ull, 18}, {~3ull, 20}, {~7ull, 24}, {~15ull, 32}, {~7ull, 48},
	    {~1ull, 56}, {~0ull, 59}, {~3ull, 60}, /* all of 2-63 but 6, 17, 58 */
	};
	int r = 0;
	if (!listed(cfg->seccomp_allow, "socket")) {
		for (size_t i = 0; i < sizeof(fam_deny) / sizeof(fam_deny[0]) && r >= 0; i++)
			r = seccomp_rule_add(
			    ctx, deny, SCMP_SYS(socket), 1,
			    SCMP_A0(SCMP_CMP_MASKED_EQ, fam_deny[i].mask, fam_deny[i].val));
		if (r >= 0) /* 11 and up: only 10 (AF_INET6) is allowed above 2 */
			r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1,
			                     SCMP_A0(SCMP_CMP_GE, 11));
		for (size_t i = 0; i < sizeof(type_deny) / sizeof(type_deny[0]) && r >= 0; i++)
			r = seccomp_rule_add(
			    ctx, deny, SCMP_SYS(socket), 1,
			    SCMP_A1(SCMP_CMP_MASKED_EQ, type_deny[i].mask, type_deny[i].val));
		for (size_t i = 0; i < sizeof(proto_deny) / sizeof(proto_deny[0]) && r >= 0; i++)
			r = seccomp_rule_add(
			    ctx, deny, SCMP_SYS(socket), 1,
			    SCMP_A2(SCMP_CMP_MASKED_EQ, proto_deny[i].mask, proto_deny[i].val));
		if (r >= 0)
			r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1,
			                     SCMP_A2(SCMP_CMP_GE, 64));
	}
	if (r >= 0 && !listed(cfg->seccomp_allow, "socketpair"))
		r = seccomp_rule_add(ctx, deny, SCMP_SYS(socketpair), 1,
		                     SCMP_A0(SCMP_CMP_NE, AF_UNIX));
	if (r < 0)
		sb_error(err, -r, "seccomp", "socket", "sandbox \"%s\": seccomp: socket rules: %s",
		         cfg->name, strerror(-r));
	return r < 0 ? r : 0;
}

/* binding, unless the sandbox allows it: handlers of a sandbox share its
 * network namespace, and what one binds (a TCP or UDP port on 127.0.0.1,
 * an abstract unix name) another could reach. The address is in memory,
 * out of seccomp's sight, so every bind() and listen() is refused (listen()
 * would autobind a port), and SO_PASSCRED and SO_PASSPIDFD, with which the
 * first connect() or send of a unix socket autobinds an abstract name. */
static int bind_rules(scmp_filter_ctx ctx, uint32_t deny, const struct sandbox_config *cfg,
                      struct sandbox_error *err)
{
	static const char *const bind_calls[] = {"bind", "listen"};
	static const int passopts[] = {SO_PASSCRED, 76 /* SO_PASSPIDFD, Linux 6.5 */};
	int r;
	if (cfg->allow_bind)
		return 0;
	for (size_t i = 0; i < 2; i++)
		if (!listed(cfg->seccomp_allow, bind_calls[i]) &&
		    (r = add(ctx, deny, bind_calls[i], err, cfg->name)) < 0)
			return r;
	for (size_t i = 0; i < 2 && !listed(cfg->seccomp_allow, "setsockopt"); i++) {
		r = seccomp_rule_add(ctx, deny, SCMP_SYS(setsockopt), 2,
		                     SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
		                     SCMP_A2(SCMP_CMP_EQ, (uint64_t)passopts[i]));
		if (r < 0) {
			sb_error(err, -r, "seccomp", "socket",
			         "sandbox \"%s\": seccomp: socket rules: %s", cfg->name,
			         strerror(-r));
			return r;
		}
	}
	return 0;
}

/* The filter as BPF in memory, through a memfd. */
static int export_bpf(scmp_filter_ctx ctx, const char *name, struct sock_fprog *out,
                      struct sandbox_error *err)
{
	_cleanup_close_ int memfd = memfd_create("postern-seccomp", MFD_CLOEXEC);
	if (memfd < 0) {
		int e = errno;
		sb_error(err, e, "seccomp", "filter", "sandbox \"%s\": seccomp: memfd: %s", name,
		         strerror(e));
		return -e;
	}
	int r = seccomp_export_bpf(ctx, memfd);
	if (r < 0) {
		sb_error(err, -r, "seccomp", "filter", "sandbox \"%s\": seccomp: export: %s", name,
		         strerror(-r));
		return r;
	}
	struct stat st;
	if (fstat(memfd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)) {
		sb_error(err, EIO, "seccomp", "filter", "sandbox \"%s\": seccomp: export: bad size",
		         name);
		return -EIO;
	}
	_cleanup_free_ struct sock_filter *f = malloc((size_t)st.st_size);
	if (!f || pread(memfd, f, (size_t)st.st_size, 0) != st.st_size) {
		sb_error(err, EIO, "seccomp", "filter", "sandbox \"%s\": seccomp: read back: %s",
		         name, strerror(EIO));
		return -EIO;
	}
	out->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	out->filter = f;
	f = NULL; /* handed to out */
	return 0;
}

int sb_seccomp_compile(const struct sandbox_config *cfg, struct sock_fprog *out,
                       struct sandbox_error *err)
{
	uint32_t deny = cfg->seccomp_action == SANDBOX_SECCOMP_KILL ? SCMP_ACT_KILL_PROCESS
	                                                            : SCMP_ACT_ERRNO(EPERM);
	_cleanup_seccomp_ scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r;
	if (!ctx) {
		sb_error(err, ENOMEM, "seccomp", "filter", "sandbox \"%s\": seccomp: init: %s",
		         cfg->name, strerror(ENOMEM));
		return -ENOMEM;
	}
	/* foreign architectures (and x32 on x86-64) are killed */
	seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* a binary tree of syscall numbers: loading the filter costs about
	 * 50 us less per handler (the kernel runs it for every syscall number
	 * to build its cache); without it (libseccomp < 2.5) a linear list */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if ((r = deny_lists(ctx, deny, cfg, err)) < 0 ||
	    (r = clone_rules(ctx, deny, cfg, err)) < 0 ||
	    (r = socket_rules(ctx, deny, cfg, err)) < 0 ||
	    (r = bind_rules(ctx, deny, cfg, err)) < 0)
		return r;
	return export_bpf(ctx, cfg->name, out, err);
}

/* The filter, one prctl, the last step before exec. In the child. */
void child_seccomp(struct child_args *c)
{
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &c->sb->prog) < 0)
		child_fail(c->err_fd, errno, "seccomp", "load filter");
}
