/* SPDX-License-Identifier: MIT */
/*
 * The namespaces a sandbox's handlers share: its uts namespace and its ipc
 * namespace, made once here and joined by each handler (child_shared_ns())
 * instead of a pair made by each spawn's clone and torn down at each reap
 * (~75 us of CPU per handler, the ipc namespace's teardown in a kworker
 * included; docs/performance.md). Nothing of a request lives in them:
 *  - uts: the hostname, the sandbox's name, is set here. A handler cannot
 *    change it: the namespace belongs to the initial user namespace, over
 *    which a handler holds no capability (child.c).
 *  - ipc: System V IPC and POSIX message queues are denied by the seccomp
 *    profile, so no handler can make an object in it for another to find
 *    or to squat. A sandbox whose seccomp allows any of those calls
 *    (sb_ipc_private()) gives each handler an ipc namespace of its own, as
 *    the clone makes it: what one handler makes, a concurrent one cannot
 *    see (t_hostile_sandbox).
 * The network namespace is shared the same way (netpolicy/), with bind()
 * and listen() denied.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/internal.h"

struct ns_args {
	const struct sandbox *sb;
	bool ipc;
	int err_fd; /* a socket: a failed step's record, or the namespaces */
};

static int ns_main(void *arg)
{
	const struct ns_args *n = arg;
	const char *name = n->sb->name;
	if (sethostname(name, strlen(name)) < 0)
		child_fail(n->err_fd, errno, "hostname", "%s", name);
	int fds[2] = {open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC), -1};
	if (fds[0] < 0)
		child_fail(n->err_fd, errno, "namespaces", "/proc/thread-self/ns/uts");
	if (n->ipc && (fds[1] = open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC)) < 0)
		child_fail(n->err_fd, errno, "namespaces", "/proc/thread-self/ns/ipc");
	int r = sb_send_fds(n->err_fd, "N", 1, fds, n->ipc ? 2 : 1);
	if (r < 0)
		child_fail(n->err_fd, -r, "namespaces", "hand over the uts and ipc namespaces");
	_exit(0);
}

int sb_ns_build(struct sandbox *sb, bool ipc_private, struct sandbox_error *err)
{
	struct ns_args na = {.sb = sb, .ipc = !ipc_private};
	struct child_err ce;
	const char *step;
	int fds[2] = {-1, -1};
	int r = sb_setup_child(ns_main, CLONE_NEWUTS | (na.ipc ? CLONE_NEWIPC : 0), &na, &na.err_fd,
	                       'N', fds, na.ipc ? 2 : 1, &ce, &step);
	if (r == 0) {
		sb->uts_fd = fds[0];
		sb->ipc_fd = fds[1];
		return 0;
	}
	if (r == 1)
		return sb_child_error(sb, &ce, err);
	if (r == 2) {
		sb_error(err, EIO, "namespaces", sb->name,
		         "sandbox \"%s\": namespaces: the child that makes them failed", sb->name);
		return -EIO;
	}
	sb_error(err, -r, "namespaces", sb->name,
	         "sandbox \"%s\": namespaces: %s (new uts and ipc namespaces): %s", sb->name, step,
	         strerror(-r));
	return r;
}

/* Into the sandbox's namespaces: as host root (setns() needs CAP_SYS_ADMIN
 * over their owner, the initial user namespace). */
void child_shared_ns(struct child_args *c)
{
	int uts = child_fd(c, c->sb->uts_fd), ipc = child_fd(c, c->sb->ipc_fd);
	if (setns(uts, CLONE_NEWUTS) < 0)
		child_fail(c->err_fd, errno, "namespaces", "join the sandbox's uts namespace");
	if (ipc >= 0 && setns(ipc, CLONE_NEWIPC) < 0)
		child_fail(c->err_fd, errno, "namespaces", "join the sandbox's ipc namespace");
	child_fd_done(c, uts);
	child_fd_done(c, ipc);
}
