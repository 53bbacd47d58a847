/* SPDX-License-Identifier: MIT */
/* The seccomp profile, compiled once per sandbox to BPF with libseccomp. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/filter.h>
#include <seccomp.h>

#include "sandbox/internal.h"

/* The default profile: denied with EPERM (or killed when the policy says
 * kill). Namespaces, mounts, tracing, kernel state, keyrings, BPF/perf,
 * io_uring, userfaultfd and file handles are not for request handlers. */
static const char *const default_deny[] = {
	/* mounts and namespaces */
	"mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
	"fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns",
	/* tracing and other processes' memory */
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	/* kernel facilities */
	"bpf", "perf_event_open", "add_key", "request_key", "keyctl", "init_module",
	"finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
	"swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "quotactl", "vhangup",
	"syslog", "iopl", "ioperm", "personality", "fanotify_init", "nfsservctl",
	NULL,
};

static bool listed(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (!strcmp(*list, name))
			return true;
	return false;
}

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, struct sandbox_error *err,
	       const char *sbname)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		sb_error(err, EINVAL, "seccomp", "sandbox \"%s\": seccomp: unknown syscall \"%s\"",
			 sbname, name);
		return -EINVAL;
	}
	int r = seccomp_rule_add(ctx, action, nr, 0);
	if (r < 0 && r != -EEXIST) {
		sb_error(err, -r, "seccomp", "sandbox \"%s\": seccomp: rule for %s: %s", sbname, name,
			 strerror(-r));
		return r;
	}
	return 0;
}

int sb_seccomp_compile(const struct sandbox_config *cfg, struct sock_fprog *out,
		       struct sandbox_error *err)
{
	uint32_t deny = cfg->seccomp_action == SANDBOX_SECCOMP_KILL ? SCMP_ACT_KILL_PROCESS
								    : SCMP_ACT_ERRNO(EPERM);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = -ENOMEM, memfd = -1;

	if (!ctx) {
		sb_error(err, ENOMEM, "seccomp", "sandbox \"%s\": seccomp: init: %s", cfg->name,
			 strerror(ENOMEM));
		return -ENOMEM;
	}
	/* foreign architectures (and x32 on x86-64) are killed */
	seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* a binary tree of syscall numbers: loading the filter costs about
	 * 50 us less per handler (the kernel runs it for every syscall number
	 * to build its cache); without it (libseccomp < 2.5) a linear list */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (const char *const *n = default_deny; *n; n++) {
		if (listed(cfg->seccomp_allow, *n))
			continue;
		if (seccomp_syscall_resolve_name(*n) == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
		if ((r = add(ctx, deny, *n, err, cfg->name)) < 0)
			goto out;
	}
	for (const char *const *n = cfg->seccomp_deny; n && *n; n++)
		if ((r = add(ctx, deny, *n, err, cfg->name)) < 0)
			goto out;

	/* clone3 cannot be filtered on its flags (they are in memory): ENOSYS
	 * makes libc fall back to clone, whose flags are checked below. */
	if (!listed(cfg->seccomp_allow, "clone3"))
		seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (!listed(cfg->seccomp_allow, "clone")) {
		const uint64_t ns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
				    CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
		/* one rule per namespace bit: any of them set is denied */
		for (unsigned b = 0; b < 64; b++) {
			uint64_t bit = 1ull << b;
			if (!(ns & bit))
				continue;
			r = seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1,
					     SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
			if (r < 0) {
				sb_error(err, -r, "seccomp", "sandbox \"%s\": seccomp: clone rule: %s",
					 cfg->name, strerror(-r));
				goto out;
			}
		}
	}
	/* raw, packet and netlink sockets */
	if (!listed(cfg->seccomp_allow, "socket")) {
		int fams[] = { AF_NETLINK, AF_PACKET };
		for (size_t i = 0; i < 2; i++) {
			r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, (uint64_t)fams[i]));
			if (r < 0)
				goto rule_err;
		}
		r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));
		if (r < 0)
			goto rule_err;
	}

	/* export to memory */
	memfd = memfd_create("postern-seccomp", MFD_CLOEXEC);
	if (memfd < 0) {
		r = -errno;
		sb_error(err, errno, "seccomp", "sandbox \"%s\": seccomp: memfd: %s", cfg->name,
			 strerror(errno));
		goto out;
	}
	r = seccomp_export_bpf(ctx, memfd);
	if (r < 0) {
		sb_error(err, -r, "seccomp", "sandbox \"%s\": seccomp: export: %s", cfg->name,
			 strerror(-r));
		goto out;
	}
	struct stat st;
	if (fstat(memfd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)) {
		r = -EIO;
		sb_error(err, EIO, "seccomp", "sandbox \"%s\": seccomp: export: bad size", cfg->name);
		goto out;
	}
	struct sock_filter *f = malloc((size_t)st.st_size);
	if (!f || pread(memfd, f, (size_t)st.st_size, 0) != st.st_size) {
		free(f);
		r = -EIO;
		sb_error(err, EIO, "seccomp", "sandbox \"%s\": seccomp: read back: %s", cfg->name,
			 strerror(EIO));
		goto out;
	}
	out->filter = f;
	out->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	r = 0;
	goto out;
rule_err:
	sb_error(err, -r, "seccomp", "sandbox \"%s\": seccomp: socket rule: %s", cfg->name,
		 strerror(-r));
out:
	if (memfd >= 0)
		close(memfd);
	seccomp_release(ctx);
	return r;
}
