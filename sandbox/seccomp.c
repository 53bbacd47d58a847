/* SPDX-License-Identifier: MIT */
/* The seccomp profile: compiled once per sandbox to classic BPF (syscall
 * names resolved by libseccomp, the program ours: smaller than libseccomp's,
 * which costs every handler less to load), loaded by the child. */
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "sandbox/internal.h"

/* The default profile: denied with EPERM (or killed when the policy says
 * kill). Namespaces, mounts, tracing, kernel state, keyrings, BPF/perf,
 * io_uring, userfaultfd and file handles are not for request handlers. */
const char *const sb_seccomp_default_deny[] = {
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
const char *const sb_seccomp_ipc_calls[] = {
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

bool sb_ipc_private(const struct sandbox_config *cfg)
{
	for (const char *const *n = sb_seccomp_ipc_calls; *n; n++)
		if (listed(cfg->seccomp_allow, *n))
			return true;
	return false;
}

/* ---- what each syscall number gets ----------------------------------------
 *
 * The profile is a table, one entry per syscall number of this architecture:
 * allowed (the default), denied, ENOSYS (clone3), or decided by the
 * arguments (clone, socket, socketpair, setsockopt). The first rule a number
 * gets stays, as libseccomp, which built the filter before, kept it. */
enum sc_kind {
	SC_ALLOW,
	SC_DENY,
	SC_ENOSYS,
	SC_CLONE,
	SC_SOCKET,
	SC_SOCKETPAIR,
	SC_SETSOCKOPT,
	SC_KINDS
};
#define SC_NR_MAX 1024 /* syscall numbers of the native architecture: 0 .. 1023 */

struct sc_table {
	uint8_t kind[SC_NR_MAX];
};

/* name gets kind, unless it has a rule already; a name libseccomp does not
 * know is the policy's error (must_know), one it knows of another
 * architecture only is no syscall here */
static int mark(struct sc_table *t, const char *name, enum sc_kind kind, bool must_know,
                struct sandbox_error *err, const char *sbname)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		if (!must_know)
			return 0;
		sb_error(err, EINVAL, "seccomp", name,
		         "sandbox \"%s\": seccomp: unknown syscall \"%s\"", sbname, name);
		return -EINVAL;
	}
	if (nr < 0)
		return 0;
	if (nr >= SC_NR_MAX) {
		sb_error(err, ERANGE, "seccomp", name,
		         "sandbox \"%s\": seccomp: syscall \"%s\" is number %d, above %d", sbname,
		         name, nr, SC_NR_MAX - 1);
		return -ERANGE;
	}
	if (t->kind[nr] == SC_ALLOW)
		t->kind[nr] = (uint8_t)kind;
	return 0;
}

/* The default profile (but what the policy allows) and the policy's
 * denies; clone3 ENOSYS (its flags are in memory, out of seccomp's sight:
 * libc falls back to clone, whose namespace flags are denied); sockets: an
 * allowlist (sc_socket()); binding, unless the sandbox allows it: handlers
 * of a sandbox share its network namespace, and what one binds (a TCP or
 * UDP port on 127.0.0.1, an abstract unix name) another could reach. The
 * address is in memory, so every bind() and listen() is refused (listen()
 * would autobind a port), and SO_PASSCRED and SO_PASSPIDFD, with which the
 * first connect() or send of a unix socket autobinds an abstract name. */
static int sc_profile(struct sc_table *t, const struct sandbox_config *cfg,
                      struct sandbox_error *err)
{
	static const char *const *const defaults[] = {sb_seccomp_default_deny,
	                                              sb_seccomp_ipc_calls};
	const char *const *allow = cfg->seccomp_allow;
	int r = 0;
	memset(t, SC_ALLOW, sizeof(*t));
	for (size_t l = 0; l < sizeof(defaults) / sizeof(defaults[0]); l++)
		for (const char *const *n = defaults[l]; *n && r >= 0; n++)
			if (!listed(allow, *n))
				r = mark(t, *n, SC_DENY, false, err, cfg->name);
	for (const char *const *n = cfg->seccomp_deny; n && *n && r >= 0; n++)
		r = mark(t, *n, SC_DENY, true, err, cfg->name);
	static const struct {
		const char *name;
		enum sc_kind kind;
		bool unless_bind; /* lifted by allow_bind too */
	} special[] = {
	    {"clone3", SC_ENOSYS, false},
	    {"clone", SC_CLONE, false},
	    {"socket", SC_SOCKET, false},
	    {"socketpair", SC_SOCKETPAIR, false},
	    {"bind", SC_DENY, true},
	    {"listen", SC_DENY, true},
	    {"setsockopt", SC_SETSOCKOPT, true},
	};
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]) && r >= 0; i++)
		if (!listed(allow, special[i].name) && !(special[i].unless_bind && cfg->allow_bind))
			r = mark(t, special[i].name, special[i].kind, true, err, cfg->name);
	return r < 0 ? r : 0;
}

/* ---- a classic BPF assembler with labels ---------------------------------
 *
 * Instructions are emitted with symbolic targets (labels) and placed once
 * all are known. A conditional jump reaches 255 instructions ahead; a target
 * further away goes through a "ja" right after the jump (32-bit offset),
 * found by growing the program until every jump reaches. */
#define SC_NEXT (-1) /* the next instruction */

struct sc_insn {
	uint16_t code;
	uint32_t k;
	int jt, jf;        /* labels (or SC_NEXT); a ja's target is jt */
	bool far_t, far_f; /* through a ja of its own */
};

struct sc_asm {
	struct sc_insn ins[BPF_MAXINSNS];
	int n;
	int at[BPF_MAXINSNS + 16];  /* label -> instruction */
	int addr[BPF_MAXINSNS + 1]; /* instruction -> its address, far jumps placed */
	int nlabels;
	bool full;
};

static int sc_label(struct sc_asm *a)
{
	if (a->nlabels >= (int)(sizeof(a->at) / sizeof(a->at[0]))) {
		a->full = true;
		return 0;
	}
	a->at[a->nlabels] = -1;
	return a->nlabels++;
}

static void sc_here(struct sc_asm *a, int label)
{
	a->at[label] = a->n;
}

static int sc_emit(struct sc_asm *a, uint16_t code, uint32_t k, int jt, int jf)
{
	if (a->n >= BPF_MAXINSNS) {
		a->full = true;
		return 0;
	}
	a->ins[a->n] = (struct sc_insn){.code = code, .k = k, .jt = jt, .jf = jf};
	return a->n++;
}

static bool sc_cond(const struct sc_insn *i)
{
	return BPF_CLASS(i->code) == BPF_JMP && BPF_OP(i->code) != BPF_JA;
}

static int sc_size(const struct sc_insn *i)
{
	return 1 + i->far_t + i->far_f;
}

/* The address of instruction i, with the current far jumps. */
static void sc_place(const struct sc_asm *a, int *addr)
{
	addr[0] = 0;
	for (int i = 0; i < a->n; i++)
		addr[i + 1] = addr[i] + sc_size(&a->ins[i]);
}

static int sc_target(const struct sc_asm *a, const int *addr, int i, int label)
{
	return label == SC_NEXT ? addr[i + 1] : addr[a->at[label]];
}

/* Every jump goes forward, to a placed label. */
static bool sc_forward(const struct sc_asm *a)
{
	for (int i = 0; i < a->n; i++) {
		const struct sc_insn *in = &a->ins[i];
		bool ja = BPF_CLASS(in->code) == BPF_JMP && BPF_OP(in->code) == BPF_JA;
		int to[2] = {ja || sc_cond(in) ? in->jt : SC_NEXT, sc_cond(in) ? in->jf : SC_NEXT};
		for (int j = 0; j < 2; j++)
			if (to[j] != SC_NEXT && (to[j] < 0 || to[j] >= a->nlabels ||
			                         a->at[to[j]] <= i || a->at[to[j]] > a->n))
				return false;
	}
	return true;
}

/* The program, into out (malloc'd); -E2BIG when it does not fit. */
static int sc_link(struct sc_asm *a, struct sock_fprog *out)
{
	int *addr = a->addr;
	if (!sc_forward(a))
		return -EINVAL;
	for (bool grew = true; grew;) {
		grew = false;
		sc_place(a, addr);
		if (addr[a->n] > BPF_MAXINSNS)
			return -E2BIG;
		for (int i = 0; i < a->n; i++) {
			struct sc_insn *in = &a->ins[i];
			if (!sc_cond(in))
				continue;
			if (!in->far_t && sc_target(a, addr, i, in->jt) - (addr[i] + 1) > 255)
				in->far_t = grew = true;
			if (!in->far_f && sc_target(a, addr, i, in->jf) - (addr[i] + 1) > 255)
				in->far_f = grew = true;
		}
	}
	struct sock_filter *f = calloc((size_t)addr[a->n], sizeof(*f));
	if (!f)
		return -ENOMEM;
	for (int i = 0; i < a->n; i++) {
		const struct sc_insn *in = &a->ins[i];
		int pc = addr[i];
		f[pc] = (struct sock_filter){.code = in->code, .k = in->k};
		if (BPF_CLASS(in->code) == BPF_JMP && BPF_OP(in->code) == BPF_JA) {
			f[pc].k = (uint32_t)(sc_target(a, addr, i, in->jt) - (pc + 1));
			continue;
		}
		if (!sc_cond(in))
			continue;
		int t = sc_target(a, addr, i, in->jt), e = sc_target(a, addr, i, in->jf);
		f[pc].jt = (uint8_t)(in->far_t ? 0 : t - (pc + 1));
		f[pc].jf = (uint8_t)(in->far_f ? in->far_t : e - (pc + 1));
		int slot = pc + 1;
		if (in->far_t) {
			f[slot] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA,
			                                       (uint32_t)(t - (slot + 1)), 0, 0);
			slot++;
		}
		if (in->far_f)
			f[slot] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA,
			                                       (uint32_t)(e - (slot + 1)), 0, 0);
	}
	out->len = (unsigned short)addr[a->n];
	out->filter = f;
	return 0;
}

/* ---- the program -----------------------------------------------------------
 *
 * The architecture (another one, or x32 on x86-64, is killed), then a
 * binary search over the runs of syscall numbers that get the same (a
 * comparison per run, not per syscall), then the blocks of the calls whose
 * arguments decide, then the returns. Arguments are 64 bits in two words;
 * an int argument's upper word is compared where libseccomp's rules did
 * (the filter's decisions are the same as before, tests/unit/test_seccomp.c). */
#define SC_ARG(i) ((uint32_t)offsetof(struct seccomp_data, args[i]))
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SC_LO(i) SC_ARG(i)
#define SC_HI(i) (SC_ARG(i) + 4)
#else
#define SC_LO(i) (SC_ARG(i) + 4)
#define SC_HI(i) SC_ARG(i)
#endif
#define SC_LD(k) (BPF_LD | BPF_W | BPF_ABS), (k), SC_NEXT, SC_NEXT
#define SC_JEQ (BPF_JMP | BPF_JEQ | BPF_K)

struct sc_prog {
	struct sc_asm a;
	int ret[SC_KINDS]; /* label of what each kind does */
	int allow, deny, enosys, kill;
	uint32_t lo[SC_NR_MAX + 1]; /* runs: first number and kind */
	uint8_t kind[SC_NR_MAX + 1];
};

/* The runs of table from 0 up, and the numbers above the table (allowed). */
static int sc_runs(struct sc_prog *p, const struct sc_table *t)
{
	int n = 0;
	for (int nr = 0; nr <= SC_NR_MAX; nr++) {
		uint8_t k = nr < SC_NR_MAX ? t->kind[nr] : SC_ALLOW;
		if (n && p->kind[n - 1] == k)
			continue;
		p->lo[n] = (uint32_t)nr, p->kind[n++] = k;
	}
	return n;
}

/* Runs i..j: a jge per split; a single run is its kind's label. */
static int sc_tree(struct sc_prog *p, int i, int j)
{
	if (i == j)
		return p->ret[p->kind[i]];
	struct sc_asm *a = &p->a;
	int mid = (i + j + 1) / 2, node = sc_label(a);
	sc_here(a, node);
	int at = sc_emit(a, BPF_JMP | BPF_JGE | BPF_K, p->lo[mid], SC_NEXT, SC_NEXT);
	int left = sc_tree(p, i, mid - 1);
	int right = sc_tree(p, mid, j);
	a->ins[at].jt = right, a->ins[at].jf = left;
	return node;
}

/* the loaded word is one of v[0..n-1]: on to yes, else to no */
static void sc_one_of(struct sc_asm *a, const uint32_t *v, size_t n, int yes, int no)
{
	for (size_t i = 0; i < n; i++)
		sc_emit(a, SC_JEQ, v[i], yes, i + 1 < n ? SC_NEXT : no);
}

/* clone: any namespace flag is denied (all in the lower word) */
static void sc_clone(struct sc_prog *p)
{
	const uint32_t ns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
	                    CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
	sc_emit(&p->a, SC_LD(SC_LO(0)));
	sc_emit(&p->a, BPF_JMP | BPF_JSET | BPF_K, ns, p->deny, p->allow);
}

/* socket() makes AF_UNIX, AF_INET and AF_INET6 sockets only, of type
 * stream, datagram or seqpacket, with protocol 0, ICMP, TCP, UDP or
 * ICMPv6: no netlink, packet, vsock, alg, xdp, bluetooth, ..., no raw or
 * SOCK_PACKET sockets (which turn into packet ones), no SCTP, MPTCP, L2TP,
 * SMC. The family and the protocol with their upper words 0; the type's low
 * 4 bits (SOCK_NONBLOCK and SOCK_CLOEXEC are above). */
static void sc_socket(struct sc_prog *p)
{
	static const uint32_t fam[] = {AF_UNIX, AF_INET, AF_INET6};
	static const uint32_t type[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
	static const uint32_t proto[] = {0, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6};
	struct sc_asm *a = &p->a;
	int type_l = sc_label(a), proto_l = sc_label(a);
	sc_emit(a, SC_LD(SC_HI(0)));
	sc_emit(a, SC_JEQ, 0, SC_NEXT, p->deny);
	sc_emit(a, SC_LD(SC_LO(0)));
	sc_one_of(a, fam, 3, type_l, p->deny);
	sc_here(a, type_l);
	sc_emit(a, SC_LD(SC_LO(1)));
	sc_emit(a, BPF_ALU | BPF_AND | BPF_K, 0xf, SC_NEXT, SC_NEXT);
	sc_one_of(a, type, 3, proto_l, p->deny);
	sc_here(a, proto_l);
	sc_emit(a, SC_LD(SC_HI(2)));
	sc_emit(a, SC_JEQ, 0, SC_NEXT, p->deny);
	sc_emit(a, SC_LD(SC_LO(2)));
	sc_one_of(a, proto, 5, p->allow, p->deny);
}

/* socketpair() creates its two sockets before it asks the family whether
 * it can pair them: AF_UNIX only. */
static void sc_socketpair(struct sc_prog *p)
{
	sc_emit(&p->a, SC_LD(SC_HI(0)));
	sc_emit(&p->a, SC_JEQ, 0, SC_NEXT, p->deny);
	sc_emit(&p->a, SC_LD(SC_LO(0)));
	sc_emit(&p->a, SC_JEQ, AF_UNIX, p->allow, p->deny);
}

/* setsockopt(SOL_SOCKET, SO_PASSCRED or SO_PASSPIDFD) is denied */
static void sc_setsockopt(struct sc_prog *p)
{
	static const uint32_t pass[] = {SO_PASSCRED, 76 /* SO_PASSPIDFD, Linux 6.5 */};
	struct sc_asm *a = &p->a;
	sc_emit(a, SC_LD(SC_HI(1)));
	sc_emit(a, SC_JEQ, 0, SC_NEXT, p->allow);
	sc_emit(a, SC_LD(SC_LO(1)));
	sc_emit(a, SC_JEQ, SOL_SOCKET, SC_NEXT, p->allow);
	sc_emit(a, SC_LD(SC_HI(2)));
	sc_emit(a, SC_JEQ, 0, SC_NEXT, p->allow);
	sc_emit(a, SC_LD(SC_LO(2)));
	sc_one_of(a, pass, 2, p->deny, p->allow);
}

static int sc_program(struct sc_prog *p, const struct sc_table *t, uint32_t deny,
                      struct sock_fprog *out)
{
	struct sc_asm *a = &p->a;
	a->n = a->nlabels = 0;
	a->full = false;
	p->allow = sc_label(a), p->deny = sc_label(a), p->enosys = sc_label(a);
	p->kill = sc_label(a);
	p->ret[SC_ALLOW] = p->allow, p->ret[SC_DENY] = p->deny, p->ret[SC_ENOSYS] = p->enosys;
	static void (*const block[SC_KINDS])(struct sc_prog *) = {[SC_CLONE] = sc_clone,
	                                                          [SC_SOCKET] = sc_socket,
	                                                          [SC_SOCKETPAIR] = sc_socketpair,
	                                                          [SC_SETSOCKOPT] = sc_setsockopt};
	for (int k = SC_CLONE; k < SC_KINDS; k++)
		p->ret[k] = sc_label(a);

	sc_emit(a, SC_LD((uint32_t)offsetof(struct seccomp_data, arch)));
	sc_emit(a, SC_JEQ, seccomp_arch_native(), SC_NEXT, p->kill);
	sc_emit(a, SC_LD((uint32_t)offsetof(struct seccomp_data, nr)));
	int tree = sc_label(a);
#ifdef __x86_64__
	/* x32 shares the architecture's token: its numbers have bit 30 set;
	 * -1 (a tracer's skipped call) is no syscall, let through as before */
	sc_emit(a, BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, SC_NEXT, tree);
	sc_emit(a, SC_JEQ, 0xffffffffu, p->allow, p->kill);
#endif
	sc_here(a, tree);
	int n = sc_runs(p, t);
	int root = sc_tree(p, 0, n - 1);
	if (n == 1)
		sc_emit(a, BPF_JMP | BPF_JA, 0, root, SC_NEXT);
	bool used[SC_KINDS] = {false};
	for (int i = 0; i < n; i++)
		used[p->kind[i]] = true;
	for (int k = SC_CLONE; k < SC_KINDS; k++)
		if (used[k]) {
			sc_here(a, p->ret[k]);
			block[k](p);
		}
	const uint32_t rets[] = {SECCOMP_RET_ALLOW, deny, SECCOMP_RET_ERRNO | ENOSYS,
	                         SECCOMP_RET_KILL_PROCESS};
	const int ret_l[] = {p->allow, p->deny, p->enosys, p->kill};
	for (int l = 0; l < 4; l++) {
		sc_here(a, ret_l[l]);
		sc_emit(a, BPF_RET | BPF_K, rets[l], SC_NEXT, SC_NEXT);
	}
	return a->full ? -E2BIG : sc_link(a, out);
}

int sb_seccomp_compile(const struct sandbox_config *cfg, struct sock_fprog *out,
                       struct sandbox_error *err)
{
	uint32_t deny = cfg->seccomp_action == SANDBOX_SECCOMP_KILL ? SECCOMP_RET_KILL_PROCESS
	                                                            : SECCOMP_RET_ERRNO | EPERM;
	_cleanup_free_ struct sc_table *t = malloc(sizeof(*t));
	_cleanup_free_ struct sc_prog *p = malloc(sizeof(*p));
	int r;
	if (!t || !p) {
		sb_error(err, ENOMEM, "seccomp", "filter", "sandbox \"%s\": seccomp: %s", cfg->name,
		         strerror(ENOMEM));
		return -ENOMEM;
	}
	if ((r = sc_profile(t, cfg, err)) < 0)
		return r;
	if ((r = sc_program(p, t, deny, out)) < 0)
		sb_error(err, -r, "seccomp", "filter",
		         "sandbox \"%s\": seccomp: build the filter: %s", cfg->name, strerror(-r));
	return r;
}

/* The filter, one prctl, the last step before exec. In the child. */
void child_seccomp(struct child_args *c)
{
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &c->sb->prog) < 0)
		child_fail(c->err_fd, errno, "seccomp", "load filter");
}
