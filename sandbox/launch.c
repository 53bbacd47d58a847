/* SPDX-License-Identifier: MIT */
/*
 * Starting a handler's process: its environment, its stderr pipe, its
 * cgroups, the vfork-style clone, and the error record, which the child
 * writes into this thread's memory when a step fails (child_fail(),
 * SB_ERR_MEM) and leaves unset when it execs (a pre-warmed one's goes
 * through the socket pair it waits on):
 *
 *   parent: env, pipe, the handler's cgroups (made with their limits, each
 *           file to enter each by opened) -> clone(CLONE_VM | CLONE_VFORK |
 *           CLONE_PIDFD | NEWPID, NEWNS without a root template, NEWNET
 *           without the sandbox's network namespace, NEWIPC when the
 *           sandbox's seccomp allows System V IPC) on a stack in its own
 *           frame -> suspended until the child execs or fails -> the
 *           record: none means exec, one a failed step.
 *   child:  child.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/close_range.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "sandbox/internal.h"
#include "sandbox/warm.h"

uint64_t sb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the environment ----------------------------------------------------------------------- */

int sb_env_prepare(struct sandbox *sb, const struct sandbox_config *cfg)
{
	if (!(sb->env = sb_strv_copy(cfg->env, 1, &sb->n_env)))
		return -ENOMEM;
	bool has_path = false;
	for (size_t i = 0; i < sb->n_env; i++)
		has_path |= !strncmp(sb->env[i], "PATH=", 5);
	if (!has_path && !(sb->env[sb->n_env++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin")))
		return -ENOMEM;
	return 0;
}

/* The handler's environment: the sandbox's, the request's, then LISTEN_*
 * (nlisten fds from 3: listeners of a startup handler, or the connection). */
struct env_bufs {
	char lfds[32], lnames[WARM_FDNAMES_MAX];
};

static void make_envp(const struct sandbox *sb, const char *const *extra, int nlisten,
                      bool listeners, char **envp, struct env_bufs *b)
{
	size_t n = 0;
	for (size_t i = 0; i < sb->n_env && n < ENV_MAX; i++)
		envp[n++] = sb->env[i];
	for (size_t i = 0; extra && extra[i] && n < ENV_MAX; i++)
		envp[n++] = (char *)extra[i];
	if (nlisten) {
		snprintf(b->lfds, sizeof(b->lfds), "LISTEN_FDS=%d", nlisten);
		warm_fdnames(b->lnames, sizeof(b->lnames), listeners ? "listener" : "connection",
		             nlisten);
		envp[n++] = b->lfds;
		envp[n++] = (char *)"LISTEN_PID=1";
		envp[n++] = b->lnames;
	}
	envp[n] = NULL;
}

static int listen_count(const struct sandbox *sb, const struct sandbox_spawn_args *a, bool has_sock)
{
	return a->listen_fds > 0                                            ? a->listen_fds
	       : (sb->socket_mode == SANDBOX_SOCKET_LISTEN_FDS && has_sock) ? 1
	                                                                    : 0;
}

/* ---- the error record, both ways ------------------------------------------------------------- */

__thread struct child_err_mem *sb_child_err_mem;

void child_fail(int fd, int e, const char *step, const char *fmt, ...)
{
	struct child_err ce = {.err = e};
	va_list ap;
	snprintf(ce.step, sizeof(ce.step), "%s", step);
	va_start(ap, fmt);
	vsnprintf(ce.object, sizeof(ce.object), fmt, ap);
	va_end(ap);
	struct child_err_mem *m = sb_child_err_mem;
	if (fd == SB_ERR_MEM && m) {
		m->ce = ce;
		__atomic_store_n(&m->set, 1, __ATOMIC_RELEASE);
	} else if (fd >= 0) {
		ssize_t w = write(fd, &ce, sizeof(ce));
		(void)w;
	}
	_exit(127);
}

int sb_child_error(const struct sandbox *sb, struct child_err *ce, struct sandbox_error *err)
{
	ce->step[sizeof(ce->step) - 1] = 0;
	ce->object[sizeof(ce->object) - 1] = 0;
	int e = ce->err ? ce->err : EIO;
	if (ce->object[0])
		sb_error(err, e, ce->step, ce->object, "sandbox \"%s\": %s %s: %s", sb->name,
		         ce->step, ce->object, strerror(e));
	else
		sb_error(err, e, ce->step, sb->name, "sandbox \"%s\": %s: %s", sb->name, ce->step,
		         strerror(e));
	return -e;
}

/* ---- the clone ----------------------------------------------------------------------------------
 */

/* Under AddressSanitizer the child's frames poison the shadow of the stack
 * array and it execs without running their epilogues; left so, the next
 * child (or whatever later lives at that address) trips over stale marks.
 * Clear them around each clone. */
static inline void asan_stack_clean(void *p, size_t n)
{
#if defined(__SANITIZE_ADDRESS__)
	__asan_unpoison_memory_region(p, n);
#else
	(void)p, (void)n;
#endif
}

/*
 * clone3() with CLONE_INTO_CGROUP (Linux 5.7): the child is born in its
 * cgroup, where writing cgroup.procs would take the kernel's global
 * cgroup_threadgroup_rwsem for writing (see enter_file() in
 * cgroup_handler.c). glibc has no clone3() that runs a function on a given
 * stack, so a few instructions do what its clone() does: the child, on
 * the new stack with the parent's registers, calls fn(arg) and exits with
 * its result. x86-64 only; elsewhere it fails with ENOSYS and the caller
 * falls back to clone() and cgroup.procs.
 */
struct sb_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
	    set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#if defined(__x86_64__)
long sb_clone3_raw(struct sb_clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(".text\n"
        ".globl sb_clone3_raw\n"
        ".hidden sb_clone3_raw\n"
        ".type sb_clone3_raw, @function\n"
        "sb_clone3_raw:\n"
        "	endbr64\n"
        "	movq %rdx, %r8\n" /* fn and arg where the child finds them */
        "	movq %rcx, %r9\n"
        "	movl $435, %eax\n" /* __NR_clone3 */
        "	syscall\n"
        "	testq %rax, %rax\n"
        "	jz 1f\n"
        "	ret\n" /* the parent: the pid or -errno */
        "1:	xorl %ebp, %ebp\n"
        "	movq %r9, %rdi\n"
        "	callq *%r8\n"
        "	movl %eax, %edi\n"
        "	movl $60, %eax\n" /* __NR_exit */
        "	syscall\n"
        "	hlt\n"
        ".size sb_clone3_raw, .-sb_clone3_raw\n");
#else
static long sb_clone3_raw(struct sb_clone_args *args, size_t size, int (*fn)(void *), void *arg)
{
	(void)args, (void)size, (void)fn, (void)arg;
	return -ENOSYS;
}
#endif

/* Whether clone3() with CLONE_INTO_CGROUP is still to be tried: cleared
 * for the process at its first ENOSYS (no clone3, or a seccomp filter of a
 * container refusing it), E2BIG or EINVAL (a kernel before 5.7). */
static int clone3_ok = 1;

bool sb_clone_into_cgroup_ok(void)
{
	return __atomic_load_n(&clone3_ok, __ATOMIC_RELAXED);
}

pid_t sb_vfork_clone_into(int (*fn)(void *), char *stack, size_t size, int flags, void *arg,
                          int *pidfd, int cgroup_fd)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	asan_stack_clean(stack, size);
	pid_t pid;
	int e;
	if (cgroup_fd >= 0) {
		struct sb_clone_args ca = {
		    .flags = (uint64_t)(unsigned)((CLONE_VM | CLONE_VFORK | flags) & ~CSIGNAL) |
		             CLONE_INTO_CGROUP,
		    .pidfd = (uint64_t)(uintptr_t)pidfd,
		    .exit_signal = (uint64_t)(flags & CSIGNAL),
		    .stack = (uint64_t)(uintptr_t)stack,
		    .stack_size = size,
		    .cgroup = (uint64_t)cgroup_fd,
		};
		long r = sb_clone3_raw(&ca, sizeof(ca), fn, arg);
		pid = r < 0 ? -1 : (pid_t)r;
		e = r < 0 ? (int)-r : 0;
		if (e == ENOSYS || e == E2BIG || e == EINVAL)
			__atomic_store_n(&clone3_ok, 0, __ATOMIC_RELAXED);
	} else {
		pid = clone(fn, stack + size, CLONE_VM | CLONE_VFORK | flags, arg, pidfd);
		e = errno;
	}
	asan_stack_clean(stack, size);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
}

pid_t sb_vfork_clone(int (*fn)(void *), char *stack, size_t size, int flags, void *arg, int *pidfd)
{
	return sb_vfork_clone_into(fn, stack, size, flags, arg, pidfd, -1);
}

int sb_setup_child(int (*fn)(void *), int flags, void *arg, int *err_fd, char tag, int *fds,
                   int nfd, struct child_err *ce, const char **step)
{
	int ep[2];
	*step = "socketpair";
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ep) < 0)
		return -errno;
	_cleanup_close_ int rd = ep[0];
	char stack[CHILD_STACK] __attribute__((aligned(64)));
	*err_fd = ep[1];
	*step = "clone";
	pid_t pid = sb_vfork_clone(fn, stack, sizeof(stack), flags | SIGCHLD, arg, NULL);
	int e = errno;
	close(ep[1]);
	if (pid < 0)
		return -e;
	int st = -1;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int r = sb_recv_fds(rd, tag, fds, nfd, ce);
	if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		for (int i = 0; i < nfd; i++)
			sb_close(&fds[i]);
		r = -1;
	}
	return r < 0 ? 2 : r;
}

/* ---- the child's own fd table ---------------------------------------------------------------
 *
 * A child cloned without CLONE_FILES gets a copy of the broker's whole fd
 * table (every kept cgroup file, every live handler's pidfd and stderr
 * pipe, every client socket in flight: ~280 at 16 connections at once),
 * each fd taken and then closed again in the child: ~0.12 us a fd, twice.
 * So the child is cloned sharing the table, and its first step makes one
 * of its own holding only the broker's fds up to the broker's own pidfd
 * (opened by sandbox_process_init() right after stdio, so fd 3 in
 * `postern run`; else when the first sandbox is prepared):
 * close_range(pidfd + 1, ~0, CLOSE_RANGE_UNSHARE), Linux 5.9. It then
 * takes each fd it uses with pidfd_getfd() (Linux 5.6), still host root,
 * while the launching thread, which owns or holds every one of them, is
 * suspended: by number, so each must stay open until the launch returns
 * (the launch's own pipes and cgroup files; the sandbox's namespaces,
 * template, ruleset and channels; the request's socket and stdin: held by
 * the caller, its job and generation, until the launch returns), or the
 * child could be handed whatever took the number next. Where either is
 * refused (an older kernel, a seccomp profile of a container, an LSM
 * refusing the ptrace-mode check), the child says so in c->take_err and
 * exits, and the launch clones again, copying, as every later one then
 * does. */
static int self_pidfd = -1;
static pid_t self_pid;
static int own_table_ok = 1;

void sb_own_table_prepare(void)
{
	if (__atomic_load_n(&self_pidfd, __ATOMIC_ACQUIRE) >= 0 && self_pid == getpid())
		return;
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (fd < 0) {
		__atomic_store_n(&own_table_ok, 0, __ATOMIC_RELAXED);
		return;
	}
	int old = -1;
	if (!__atomic_compare_exchange_n(&self_pidfd, &old, fd, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		close(fd);
		return;
	}
	self_pid = getpid();
}

/* Whether this launch's child makes a table of its own. */
static bool own_table_use(void)
{
	return __atomic_load_n(&own_table_ok, __ATOMIC_RELAXED) &&
	       __atomic_load_n(&self_pidfd, __ATOMIC_ACQUIRE) >= 0 && self_pid == getpid();
}

bool sb_own_table_ok(void)
{
	return __atomic_load_n(&own_table_ok, __ATOMIC_RELAXED);
}

/* In the child, first of all: its own table (see above). */
void child_own_table(struct child_args *c)
{
	if (!c->own_table)
		return;
	if (syscall(SYS_close_range, (unsigned)self_pidfd + 1, ~0U, CLOSE_RANGE_UNSHARE) < 0) {
		c->take_err = errno ? errno : EIO;
		_exit(126);
	}
	c->err_fd = child_fd(c, c->err_fd);
	c->errw = child_fd(c, c->errw);
	for (int i = 0; i < CG_N; i++)
		c->procs[i] = child_fd(c, c->procs[i]);
	c->warm_fd = child_fd(c, c->warm_fd);
	c->ll_fd = child_fd(c, c->ll_fd);
}

int child_fd(struct child_args *c, int fd)
{
	if (!c->own_table || fd < 0)
		return fd;
	int r = (int)syscall(SYS_pidfd_getfd, self_pidfd, fd, 0);
	if (r < 0) {
		c->take_err = errno ? errno : EIO;
		_exit(126);
	}
	return r;
}

void child_fd_done(struct child_args *c, int fd)
{
	if (c->own_table && fd >= 0)
		close(fd);
}

/* ---- a launch ----------------------------------------------------------------------------------
 */

/* What one launch holds until it hands it to the handler (or lets go of
 * it): the child's arguments, which the child reads from this frame, and
 * the fds, closed at the end of sb_launch() unless taken. */
struct launch {
	struct child_args ca;
	char *envp[ENV_MAX + 8];
	struct env_bufs eb;
	int ep[2];                 /* a pre-warmed handler's socket pair: its error record,
	                            * then "ready" and the request */
	struct child_err_mem fail; /* a fresh one's error record (SB_ERR_MEM) */
	int se[2];                 /* the handler's stderr */
	unsigned procs_kept;       /* bit i: ca.procs[i] is the handler's kept file, not ours */
	int pidfd;
	int into; /* cgroup v2: the handler cgroup to clone into, or -1 */
	pid_t pid;
	uint64_t t0, t_back; /* start; when the clone returned */
};

/* The files the child entered its cgroups by: ours closed, kept ones
 * let go of. */
static void procs_close(struct launch *l)
{
	for (int i = 0; i < CG_N; i++)
		if (l->procs_kept & (1u << i))
			l->ca.procs[i] = -1;
		else
			sb_close(&l->ca.procs[i]);
	l->procs_kept = 0;
}

static void launch_close(struct launch *l)
{
	procs_close(l);
	for (int i = 0; i < 2; i++) {
		sb__closep(&l->ep[i]);
		sb__closep(&l->se[i]);
	}
	sb__closep(&l->pidfd);
	sb__closep(&l->into);
}

/* Before the clone: environment, pipes, the handler's cgroups. */
static int launch_prepare(struct launch *l, struct sandbox *sb, const struct sandbox_spawn_args *a,
                          struct sandbox_handler *h, struct sandbox_error *err)
{
	struct child_args *ca = &l->ca;
	make_envp(sb, a->extra_env, listen_count(sb, a, a->sock_fd >= 0), a->listen_fds > 0,
	          l->envp, &l->eb);
	ca->envp = l->envp;
	if (ca->warm && (ca->warm_fd = sb_waiter_fd(sb, err)) < 0)
		return ca->warm_fd;
	if ((ca->warm && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, l->ep) < 0) ||
	    pipe2(l->se, O_CLOEXEC) < 0) {
		int e = errno;
		sb_error(err, e, "pipe", sb->name, "sandbox \"%s\": pipe: %s", sb->name,
		         strerror(e));
		return -e;
	}
	ca->err_fd = ca->warm ? l->ep[1] : SB_ERR_MEM;
	ca->errw = l->se[1];
	struct sb_cg_why why = {"", ""};
	int r = sb_cg_create(&sb->cg, h, ca->procs, &l->procs_kept, &l->into, !ca->warm, &why);
	if (r < 0) {
		sb_error(err, -r, "cgroup", why.object[0] ? why.object : sb->name,
		         "sandbox \"%s\": %s", sb->name, why.text);
		return r;
	}
	return 0;
}

/* The fds of c as the launch has them (the child's numbers are its own). */
static void fds_restore(struct child_args *c, const struct child_args *mine)
{
	c->err_fd = mine->err_fd;
	c->errw = mine->errw;
	memcpy(c->procs, mine->procs, sizeof(c->procs));
	c->warm_fd = mine->warm_fd;
	c->procfd = mine->procfd;
	c->ll_fd = mine->ll_fd;
}

/* The clone (into the v2 cgroup into, if >= 0), the child making a table
 * of its own when ca.own_table; when it could not take its fds (it is gone
 * then), once more copying the table. The pid, or -1 with errno. */
static pid_t clone_child(struct launch *l, const struct child_args *mine, char *stack, size_t size,
                         int flags, int into)
{
	pid_t pid = sb_vfork_clone_into(sb_child_main, stack, size,
	                                flags | (l->ca.own_table ? CLONE_FILES : 0), &l->ca,
	                                &l->pidfd, into);
	int e = errno;
	fds_restore(&l->ca, mine);
	if (pid > 0 && l->ca.take_err) {
		int te = l->ca.take_err;
		waitpid(pid, NULL, __WALL);
		sb_close(&l->pidfd);
		if (te == ENOSYS || te == EPERM || te == EACCES || te == EINVAL)
			__atomic_store_n(&own_table_ok, 0, __ATOMIC_RELAXED);
		l->ca.own_table = false;
		l->ca.take_err = 0;
		pid =
		    sb_vfork_clone_into(sb_child_main, stack, size, flags, &l->ca, &l->pidfd, into);
		e = errno;
		fds_restore(&l->ca, mine);
	}
	errno = e;
	return pid;
}

/* vfork-style: the child shares our memory and runs on the stack given
 * while this thread is suspended until it execs or exits. No page tables
 * to copy, no copy-on-write faults. */
static int launch_clone(struct launch *l, const struct sandbox_handler *h, char *stack, size_t size,
                        struct sandbox_error *err)
{
	const struct sandbox *sb = l->ca.sb;
	int flags = CLONE_PIDFD | CLONE_NEWPID | (sb->ipc_fd >= 0 ? 0 : CLONE_NEWIPC) |
	            (sb->tmpl_fd >= 0 ? 0 : CLONE_NEWNS) |
	            (l->ca.a->netns_fd >= 0 ? 0 : CLONE_NEWNET) | SIGCHLD;
	l->ca.t[SANDBOX_PHASE_PREPARE] = sb_now_ns();
	l->ca.own_table = own_table_use();
	/* the child renumbers the fds in ca as it takes them: ours are these */
	struct child_args mine = l->ca;
	sb_child_err_mem = &l->fail;
	l->pid = clone_child(l, &mine, stack, size, flags, l->into);
	int e = errno;
	if (l->pid < 0 && l->into >= 0 && !sb_clone_into_cgroup_ok()) {
		/* no clone3 here: the child enters by cgroup.procs */
		l->ca.procs[0] = sb_cg_enter_file_at(l->into);
		if (l->ca.procs[0] < 0) {
			e = errno;
			sb_error(err, e, "cgroup", h->cgroup,
			         "sandbox \"%s\": open %s/cgroup.procs: %s", sb->name, h->cgroup,
			         strerror(e));
			return -e;
		}
		sb_close(&l->into);
		mine.procs[0] = l->ca.procs[0];
		l->pid = clone_child(l, &mine, stack, size, flags, -1);
		e = errno;
	}
	l->t_back = sb_now_ns();
	sb_child_err_mem = NULL;
	if (l->pid < 0 && l->into >= 0) { /* the cgroup refused it (EBUSY, EOPNOTSUPP ...) */
		l->pidfd = -1;
		sb_error(err, e, "clone", h->cgroup, "sandbox \"%s\": clone into cgroup %s: %s",
		         sb->name, h->cgroup, strerror(e));
		return -e;
	}
	if (l->pid < 0) {
		l->pidfd = -1;
		sb_error(err, e, "clone", sb->name, "sandbox \"%s\": clone: %s", sb->name,
		         strerror(e));
		return -e;
	}
	/* the child's ends and the cgroup files it entered by are its now */
	sb_close(&l->ep[1]);
	sb_close(&l->se[1]);
	procs_close(l);
	sb_close(&l->into);
	return 0;
}

/* An end of a pipe or socket pair made here: no other status flag to keep. */
static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, O_NONBLOCK);
}

/* A pre-warmed handler waits in postern-warm.so or postern-warm now (or
 * failed: its record waits on the socket, or, in the handler's loader, it
 * exits); sandbox_warm_ready() reads which. */
static void launch_warm_done(struct launch *l, struct sandbox_handler *h)
{
	set_nonblock(l->ep[0]);
	set_nonblock(l->se[0]);
	h->pid = l->pid;
	h->pidfd = TAKE_FD(l->pidfd);
	h->stderr_fd = TAKE_FD(l->se[0]);
	h->ctl_fd = TAKE_FD(l->ep[0]);
	h->preloaded = l->ca.preload;
	h->spawn_ns = sb_now_ns() - l->t0;
}

/* No record: exec happened (the child's last step failing after exec's
 * point of no return kills it; the reap tells); a record: a step failed. */
static int launch_exec_done(struct launch *l, struct sandbox_handler *h, struct sandbox_error *err)
{
	if (__atomic_load_n(&l->fail.set, __ATOMIC_ACQUIRE))
		return sb_child_error(l->ca.sb, &l->fail.ce, err);
	set_nonblock(l->se[0]);
	h->pid = l->pid;
	h->pidfd = TAKE_FD(l->pidfd);
	h->stderr_fd = TAKE_FD(l->se[0]);
	h->spawn_ns = sb_now_ns() - l->t0;
	/* the breakdown: each phase from the end of the one before */
	l->ca.t[SANDBOX_PHASE_EXEC] = l->t_back;
	uint64_t prev = l->t0;
	for (int i = 0; i < SANDBOX_PHASE_COUNT; i++) {
		uint64_t t = l->ca.t[i] > prev ? l->ca.t[i] : prev;
		h->phase_ns[i] = (uint32_t)(t - prev > UINT32_MAX ? UINT32_MAX : t - prev);
		prev = t;
	}
	return 0;
}

int sb_launch(struct sandbox *sb, const struct sandbox_spawn_args *a, struct sandbox_handler *h,
              bool warm, struct sandbox_error *err)
{
	/* the child's stack: this thread is suspended while the child uses it */
	char stack[CHILD_STACK] __attribute__((aligned(64)));
	__attribute__((cleanup(launch_close))) struct launch l = {
	    .ca = {.sb = sb,
	           .a = a,
	           .warm = warm,
	           .err_fd = -1,
	           .errw = -1,
	           .warm_fd = -1,
	           .procfd = -1,
	           .ll_fd = sb->ll_fd},
	    .ep = {-1, -1},
	    .se = {-1, -1},
	    .pidfd = -1,
	    .into = -1,
	    .pid = -1,
	    .t0 = sb_now_ns(),
	};
	for (int i = 0; i < CG_N; i++)
		l.ca.procs[i] = -1;
	memset(h, 0, sizeof(*h));
	h->pidfd = h->stderr_fd = h->ctl_fd = h->req_fd = -1;
	h->pid = -1;

	int r = launch_prepare(&l, sb, a, h, err);
	if (r == 0)
		r = launch_clone(&l, h, stack, sizeof(stack), err);
	if (r == 0 && warm) {
		launch_warm_done(&l, h);
		return 0;
	}
	if (r == 0 && (r = launch_exec_done(&l, h, err)) == 0)
		return 0;
	/* a child that failed a step is gone or going: reaped before its
	 * cgroups can go */
	if (l.pid > 0) {
		if (l.pidfd >= 0)
			syscall(SYS_pidfd_send_signal, l.pidfd, SIGKILL, NULL, 0);
		else
			kill(l.pid, SIGKILL);
		waitpid(l.pid, NULL, __WALL);
	}
	sb_cg_drop(h);
	return r;
}
