/* SPDX-License-Identifier: MIT */
/*
 * postern-warm: what a pre-warmed handler runs while it waits. The sandbox
 * child execs it (from a sealed memfd, statically linked) once the handler
 * is fully confined, so the broker is not suspended meanwhile and the exec
 * of the real handler later starts from this tiny process instead of a copy
 * of the broker.
 *
 *   postern-warm CTL_FD stdio|listen_fds LISTEN_FDS -- HANDLER ARGV...
 *
 * It says "R" on CTL_FD, takes the request socket from there, waits for
 * the wake-up on CTL_FD, reads the request from the request socket
 * (sandbox/warm.h), puts the socket and stdin where a spawned handler would
 * have them (stdio: socket on 0 and 1, or stdin on 0; listen_fds: socket on
 * 3), adds the request's environment and LISTEN_* to its own and execs the
 * handler. EOF on CTL_FD (the broker discarded it) exits 0. An exec failure
 * goes to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/warm.h"

extern char **environ;

/* fd at number target, open across exec (a received fd may already sit
 * there, CLOEXEC, where dup2() would change nothing). */
static int place_fd(int fd, int target)
{
	if (fd == target)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target);
}

/* One message and up to two fds (CLOEXEC) from a SOCK_SEQPACKET socket.
 * Returns its length, or -1 (EOF, error, or truncated). */
static ssize_t recv_fds(int sock, char *buf, size_t size, int fds[2], int *nfd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct iovec iov = { buf, size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
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

int main(int argc, char **argv)
{
	if (argc < 6 || strcmp(argv[4], "--") != 0)
		return 126;
	int ctl = atoi(argv[1]);
	int stdio = strcmp(argv[2], "stdio") == 0;
	int startup_fds = atoi(argv[3]);
	char **hargv = argv + 5;

	char c = 'R';
	if (send(ctl, &c, 1, MSG_NOSIGNAL) != 1)
		return 0;
	static char buf[WARM_MSG_MAX + 1];
	int fds[2] = { -1, -1 }, nfd;
	ssize_t n = recv_fds(ctl, buf, 1, fds, &nfd);
	if (n < 0)
		return 0;	/* discarded */
	if (n != 1 || nfd != 1)
		return 126;
	int req = fds[0];
	do
		n = recv(ctl, &c, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c != WARM_WAKE)
		return 0;	/* discarded */
	struct warm_req rq;
	n = recv_fds(req, buf, WARM_MSG_MAX, fds, &nfd);
	close(req);	/* before it could sit on a target fd */
	if (n < (ssize_t)sizeof(rq))
		return 126;
	memcpy(&rq, buf, sizeof(rq));
	if (rq.magic != WARM_MAGIC || nfd != rq.has_sock + rq.has_stdin || rq.n_env > WARM_ENV_MAX)
		return 126;
	int sock = rq.has_sock ? fds[0] : -1, in = rq.has_stdin ? fds[rq.has_sock] : -1;
	if (stdio && sock >= 0) {
		if (place_fd(in >= 0 ? in : sock, 0) < 0 || place_fd(sock, 1) < 0)
			return 126;
	} else {
		if ((in >= 0 && place_fd(in, 0) < 0) || (sock >= 0 && place_fd(sock, 3) < 0))
			return 126;
	}
	close(ctl);

	/* the environment: ours (the sandbox's), the request's, LISTEN_* */
	static char *envp[256 + WARM_ENV_MAX + 4];
	size_t k = 0;
	for (char **e = environ; e && *e && k < 256; e++)
		envp[k++] = *e;
	buf[n] = 0;
	size_t off = sizeof(rq);
	for (unsigned i = 0; i < rq.n_env && off < (size_t)n; i++) {
		envp[k++] = buf + off;
		off += strlen(buf + off) + 1;
	}
	int nlisten = startup_fds > 0 ? startup_fds : (!stdio && sock >= 0) ? 1 : 0;
	char lfds[32], lnames[64];
	if (nlisten) {
		snprintf(lfds, sizeof(lfds), "LISTEN_FDS=%d", nlisten);
		snprintf(lnames, sizeof(lnames), "LISTEN_FDNAMES=%s", startup_fds > 0 ? "listener" : "connection");
		envp[k++] = lfds;
		envp[k++] = "LISTEN_PID=1";
		envp[k++] = lnames;
	}
	envp[k] = NULL;
	execve(hargv[0], hargv, envp);
	int e = errno;
	fprintf(stderr, "postern: exec %s: %s\n", hargv[0], strerror(e));
	return 127;
}
