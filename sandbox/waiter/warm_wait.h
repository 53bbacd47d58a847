/* SPDX-License-Identifier: MIT */
/*
 * The pre-warmed handler's side of sandbox/warm.h, shared by the two
 * programs a pre-warmed handler waits in: postern-warm (a static waiter
 * that execs the handler) and postern-warm.so (preloaded into the handler
 * itself, which returns to the handler's main). Header-only: each is built
 * on its own, postern-warm.so without libc at link time (it takes libc's
 * functions from the handler it is loaded into).
 */
#ifndef POSTERN_WARM_WAIT_H
#define POSTERN_WARM_WAIT_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/warm.h"

#define WARM_BASE_ENV_MAX 256

/* fd at number target, open across exec (a received fd may already sit
 * there, CLOEXEC, where dup2() would change nothing). */
static int warm_place_fd(int fd, int target)
{
	if (fd == target)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target);
}

/* One message and up to two fds (CLOEXEC) from a SOCK_SEQPACKET socket.
 * Returns its length, or -1 (EOF, error, or truncated). */
static ssize_t warm_recv_fds(int sock, char *buf, size_t size, int fds[2], int *nfd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct iovec iov = {buf, size};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	*nfd = 0;
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	if (n > 0 && ch && ch->cmsg_level == SOL_SOCKET && ch->cmsg_type == SCM_RIGHTS) {
		*nfd = (int)((ch->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(ch), (size_t)(*nfd > 2 ? 2 : *nfd) * sizeof(int));
	}
	if (n <= 0 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)))
		return -1;
	return n;
}

/*
 * Say "R" on ctl, take the request socket from there, wait for the wake-up
 * on ctl, read the request, put the socket and stdin where a spawned
 * handler has them (stdio: socket on 0 and 1, or stdin on 0; else socket on
 * 3), close ctl. Returns the handler's environment: base_env, the
 * request's, and LISTEN_* (startup_fds listeners, or the connection when
 * not stdio); static storage, NULL-terminated. Or NULL with *code the exit
 * status: 0 when the broker discarded the handler (EOF), 126 on a broken
 * request.
 */
static char **warm_wait(int ctl, int stdio, int startup_fds, char *const *base_env, int *code)
{
	static char buf[WARM_MSG_MAX + 1];
	static char *envp[WARM_BASE_ENV_MAX + WARM_ENV_MAX + 4];
	static char lfds[32], lnames[WARM_FDNAMES_MAX];
	int fds[2] = {-1, -1}, nfd;
	char c = 'R';

	*code = 0;
	if (send(ctl, &c, 1, MSG_NOSIGNAL) != 1)
		return NULL;
	ssize_t n = warm_recv_fds(ctl, buf, 1, fds, &nfd);
	if (n < 0)
		return NULL; /* discarded */
	*code = 126;
	if (n != 1 || nfd != 1)
		return NULL;
	int req = fds[0];
	do
		n = recv(ctl, &c, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c != WARM_WAKE) {
		*code = 0; /* discarded */
		return NULL;
	}
	struct warm_req rq;
	n = warm_recv_fds(req, buf, WARM_MSG_MAX, fds, &nfd);
	close(req); /* before it could sit on a target fd */
	if (n < (ssize_t)sizeof(rq))
		return NULL;
	memcpy(&rq, buf, sizeof(rq));
	if (rq.magic != WARM_MAGIC || nfd != rq.has_sock + rq.has_stdin || rq.n_env > WARM_ENV_MAX)
		return NULL;
	int sock = rq.has_sock ? fds[0] : -1, in = rq.has_stdin ? fds[rq.has_sock] : -1;
	/* where they go: stdin on 0; the socket on 1 (and on 0 without
	 * stdin) for stdio, else on 3 */
	int in_at = 0, s_at = 3, s_at2 = -1;
	if (stdio && sock >= 0) {
		s_at = 1;
		if (in < 0)
			s_at2 = 0;
	}
	if ((in >= 0 && warm_place_fd(in, in_at) < 0) ||
	    (sock >= 0 && warm_place_fd(sock, s_at) < 0) ||
	    (sock >= 0 && s_at2 >= 0 && warm_place_fd(sock, s_at2) < 0))
		return NULL;
	/* the received fds themselves, unless placed where they arrived */
	if (in >= 0 && in != in_at && in != s_at && in != s_at2)
		close(in);
	if (sock >= 0 && sock != s_at && sock != s_at2 && sock != in_at)
		close(sock);
	close(ctl);

	size_t k = 0;
	for (char *const *e = base_env; e && *e && k < WARM_BASE_ENV_MAX; e++)
		envp[k++] = *e;
	buf[n] = 0;
	size_t off = sizeof(rq);
	for (unsigned i = 0; i < rq.n_env && off < (size_t)n; i++) {
		envp[k++] = buf + off;
		off += strlen(buf + off) + 1;
	}
	int nlisten = startup_fds > 0 ? startup_fds : (!stdio && sock >= 0) ? 1 : 0;
	if (nlisten) {
		snprintf(lfds, sizeof(lfds), "LISTEN_FDS=%d", nlisten);
		warm_fdnames(lnames, sizeof(lnames), startup_fds > 0 ? "listener" : "connection",
		             nlisten);
		envp[k++] = lfds;
		envp[k++] = (char *)"LISTEN_PID=1";
		envp[k++] = lnames;
	}
	envp[k] = NULL;
	*code = 0;
	return envp;
}

#endif
