/* SPDX-License-Identifier: MIT */
/*
 * The child of a spawn: its steps, as a flat list in sb_child_main(),
 * each reporting (step, object, errno) when it fails (child_fail(): into
 * the launching thread's memory, or a pre-warmed one's socket).
 *
 * It runs in a CLONE_VM child on a stack in the spawning frame and shares
 * the broker's memory while the broker's thread is suspended (CLONE_VFORK)
 * until exec or exit. So it allocates nothing (no malloc), takes no lock,
 * uses no stdio, changes no shared state but its own child_args, and makes
 * raw syscalls where glibc would touch process-wide state (set*id()
 * broadcasts to threads, sigaction() keeps its own table).
 *
 * It does its setup as host root, in namespaces owned by the initial user
 * namespace, and creates its own user namespace last, after taking the
 * handler's uid and gid:
 *  - no round trip to the parent for uid/gid maps: a process may map its
 *    own euid into a namespace it creates;
 *  - setns() into the sandbox's network namespace needs CAP_SYS_ADMIN over
 *    its owner (the initial user namespace), which host root has;
 *  - creating mount points and reading root-only bind sources works (an
 *    unmapped host root in a fresh user namespace gets EOVERFLOW/EACCES);
 *  - every namespace the handler lives in is owned by the initial user
 *    namespace, so even the full capability set of its own user namespace
 *    (dropped anyway) could not mount, unmount or remount anything there.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "sandbox/internal.h"

/* Where the error socket, the kept fds and the scratch copies go while the
 * handler's fds are arranged: above every target and the three kept fds
 * placed right above them (child_fds()). Just above, not at a fixed 900:
 * a table of 64 fds (the child's own, child_own_table()) would grow to
 * 1,024 slots for one fd there, an allocation and a copy per spawn. */
static int child_fd_high(const struct child_args *c)
{
	int top = 3; /* the socket */
	for (size_t i = 0; i < c->a->n_fds; i++)
		if (c->a->fds[i].target > top)
			top = c->a->fds[i].target;
	return top + 4;
}

/* Every disposition to default: the handler must not inherit the broker's
 * SIG_IGN, and no broker handler may run on this stack. Signals stay
 * blocked (as the parent left them) until child_sigmask(). */
static void child_signals(struct child_args *c)
{
	(void)c;
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, _NSIG / 8);
}

static void child_pdeathsig(struct child_args *c)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(c->err_fd, errno, "pdeathsig", "%s", "");
}

static void child_netns(struct child_args *c)
{
	int fd = child_fd(c, c->a->netns_fd);
	if (fd >= 0 && setns(fd, CLONE_NEWNET) < 0)
		child_fail(c->err_fd, errno, "netns", "join the sandbox network namespace");
	child_fd_done(c, fd);
}

/* The handler's cgroups, before anything can fork. */
static void child_cgroups(struct child_args *c)
{
	for (int i = 0; i < CG_N; i++)
		if (c->procs[i] >= 0 && write(c->procs[i], "0", 1) != 1)
			child_fail(c->err_fd, errno, "cgroup", "enter the handler's cgroup");
}

/* A cgroup namespace rooted in the handler's cgroup. */
static void child_cgroupns(struct child_args *c)
{
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(c->err_fd, errno, "cgroupns", "%s", "");
}

/* A pre-warmed one's socket goes high, so arranging fds cannot clobber
 * it (a fresh one reports in memory, SB_ERR_MEM). */
static void child_err_high(struct child_args *c)
{
	if (c->err_fd >= 0 && (c->err_fd = fcntl(c->err_fd, F_DUPFD_CLOEXEC, child_fd_high(c))) < 0)
		_exit(125);
}

/* The host's /proc/<pid>, for the user namespace's maps later. */
static void child_proc_self(struct child_args *c)
{
	c->procfd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->procfd < 0)
		child_fail(c->err_fd, errno, "fds", "/proc/self");
}

/* Into the root template before arranging fds closes its fd (its /dev/null
 * is a device node like the host's); child_root() copies it. */
static void child_enter_template(struct child_args *c)
{
	int fd = child_fd(c, c->sb->tmpl_fd);
	if (fd >= 0 && setns(fd, CLONE_NEWNS) < 0)
		child_fail(c->err_fd, errno, "root", "enter the root template");
	child_fd_done(c, fd);
}

/* Put the fds where the handler expects them; close every other one except
 * the error socket and those kept right above the targets: c->procfd,
 * c->warm_fd (postern-warm) and c->ll_fd (the Landlock ruleset) when there
 * are. All CLOEXEC. Before the root is built: /dev/null is the host's. */
static void child_fds(struct child_args *c)
{
	const struct sandbox_spawn_args *a = c->a;
	int efd = c->err_fd, errw = c->errw, high = child_fd_high(c);
	struct {
		int src, dst;
		bool ours; /* in the child's table already: else the broker's (child_fd()) */
	} map[3 + 64 + 8];
	size_t n = 0;
	bool stdio = c->sb->socket_mode == SANDBOX_SOCKET_STDIO && a->sock_fd >= 0;
	int in = a->stdin_fd;
	bool null_in = in < 0 && !stdio;
	if (null_in && (in = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		child_fail(efd, errno, "fds", "/dev/null");
	if (stdio) {
		map[n].src = a->stdin_fd >= 0 ? a->stdin_fd : a->sock_fd, map[n].ours = false,
		map[n++].dst = 0;
		map[n].src = a->sock_fd, map[n].ours = false, map[n++].dst = 1;
	} else {
		map[n].src = in, map[n].ours = null_in, map[n++].dst = 0;
		map[n].src = errw, map[n].ours = true, map[n++].dst = 1;
		if (a->sock_fd >= 0)
			map[n].src = a->sock_fd, map[n].ours = false, map[n++].dst = 3;
	}
	map[n].src = errw, map[n].ours = true, map[n++].dst = 2;
	for (size_t i = 0; i < a->n_fds && n < sizeof(map) / sizeof(map[0]); i++)
		map[n].src = a->fds[i].fd, map[n].ours = false, map[n++].dst = a->fds[i].target;

	int maxdst = 2;
	/* first copy every source and the kept fds above the target range,
	 * then place them */
	int *keep[] = {&c->procfd, &c->warm_fd, &c->ll_fd};
	static const char *const kept[] = {"keep /proc/self", "keep postern-warm",
	                                   "keep the Landlock ruleset"};
	for (size_t i = 0; i < 3; i++)
		if (*keep[i] >= 0 && (*keep[i] = fcntl(*keep[i], F_DUPFD_CLOEXEC, high)) < 0)
			child_fail(efd, errno, "fds", "%s", kept[i]);
	int tmp[sizeof(map) / sizeof(map[0])];
	for (size_t i = 0; i < n; i++) {
		int src = map[i].ours ? map[i].src : child_fd(c, map[i].src);
		tmp[i] = fcntl(src, F_DUPFD_CLOEXEC, high);
		if (tmp[i] < 0)
			child_fail(efd, errno, "fds", "dup fd %d", map[i].src);
		if (!map[i].ours)
			child_fd_done(c, src);
	}
	for (size_t i = 0; i < n; i++) {
		if (dup2(tmp[i], map[i].dst) < 0)
			child_fail(efd, errno, "fds", "fd %d -> %d", map[i].src, map[i].dst);
		if (map[i].dst > maxdst)
			maxdst = map[i].dst;
	}
	/* the kept fds right above the targets, then everything else goes */
	int first = maxdst + 1;
	for (size_t i = 0; i < 3; i++) {
		if (*keep[i] < 0)
			continue;
		if (dup3(*keep[i], first, O_CLOEXEC) < 0)
			child_fail(efd, errno, "fds", "%s", kept[i]);
		*keep[i] = first++;
	}
	if (efd < 0) {
		syscall(SYS_close_range, first, ~0U, 0);
		return;
	}
	if (efd > first)
		syscall(SYS_close_range, first, efd - 1, 0);
	syscall(SYS_close_range, efd + 1, ~0U, 0);
}

/* A clean signal mask for the handler. */
static void child_sigmask(struct child_args *c)
{
	(void)c;
	sigset_t none;
	sigemptyset(&none);
	(void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
}

/* The handler, or (pre-warmed) the wait for its request: in the handler's
 * own process (postern-warm.so preloaded) or in postern-warm. */
static __attribute__((noreturn)) void child_exec(struct child_args *c)
{
	const struct sandbox *sb = c->sb;
	if (c->preload)
		child_exec_preloaded(c);
	if (c->warm)
		child_exec_waiter(c);
	execve(sb->argv[0], sb->argv, c->envp);
	child_fail(c->err_fd, errno, "exec", "%s", sb->argv[0]);
}

int sb_child_main(void *arg)
{
	struct child_args *c = arg;
	c->t[SANDBOX_PHASE_CLONE] = sb_now_ns();
	child_own_table(c); /* first: the table is the broker's until then */

	/* namespaces, still host root (see the top of this file) */
	child_signals(c);
	child_pdeathsig(c);
	child_netns(c);          /* needs host root: the netns is the initial userns's */
	child_cgroups(c);        /* before anything can fork */
	child_cgroupns(c);       /* after: rooted in the handler's cgroup */
	child_shared_ns(c);      /* the sandbox's uts and ipc namespaces */
	child_err_high(c);       /* before the fds are arranged */
	child_proc_self(c);      /* the host's /proc, for child_idmaps() */
	child_enter_template(c); /* before child_fds() closes its fd */
	child_fds(c);            /* before the root: /dev/null is the host's */
	c->t[SANDBOX_PHASE_NAMESPACES] = sb_now_ns();

	/* the root: as host root, which may read root-only bind sources */
	child_root(c);
	c->t[SANDBOX_PHASE_ROOT] = sb_now_ns();

	/* identity: the uid first, the user namespace after it */
	child_rlimits(c);   /* before the uid: a raised nofile needs root */
	child_ids(c);       /* drops every host capability */
	child_pdeathsig(c); /* the uid change cleared it */
	child_userns(c);
	child_idmaps(c);
	child_caps(c);         /* the new user namespace's full set, dropped */
	child_no_new_privs(c); /* before Landlock and seccomp, which need it */
	child_landlock(c);
	child_nproc(c); /* once the user namespace exists */
	c->t[SANDBOX_PHASE_IDENTITY] = sb_now_ns();

	/* seccomp last before exec: nothing above is filtered */
	child_sigmask(c);
	child_seccomp(c);
	c->t[SANDBOX_PHASE_SECCOMP] = sb_now_ns();
	child_exec(c);
}
