/* SPDX-License-Identifier: MIT */
/*
 * shim_failwatch.so, preloaded into the broker (LD_PRELOAD): every
 * epoll_ctl(EPOLL_CTL_ADD) of a pidfd fails with ENOSPC, as past
 * fs.epoll.max_user_watches, for t_broker_watchfail: a handler whose pidfd
 * the broker cannot watch must be killed and still reaped (its timer polls
 * the pidfd), with nothing left behind. Every other call passes through;
 * the broker adds pidfds to its own watch set only (libuv polls none). A
 * pidfd is told by pidfd_send_signal(fd, 0): EBADF for any other fd.
 * Each refusal is counted in the file PST_FAILWATCH_LOG names, if set.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

static int is_pidfd(int fd)
{
	if (syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0)
		return 1;
	return errno == ESRCH; /* a pidfd of a process that has gone */
}

static void count(void)
{
	const char *p = getenv("PST_FAILWATCH_LOG");
	int fd = p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd < 0)
		return;
	ssize_t w = write(fd, "refused\n", 8);
	(void)w;
	close(fd);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	static int (*real)(int, int, int, struct epoll_event *);
	if (!real)
		real = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
	if (op == EPOLL_CTL_ADD) {
		int e = errno;
		int p = is_pidfd(fd);
		errno = e;
		if (p) {
			count();
			errno = ENOSPC;
			return -1;
		}
	}
	return real(epfd, op, fd, ev);
}
