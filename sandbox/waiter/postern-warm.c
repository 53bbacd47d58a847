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
 * It says "R" on CTL_FD, waits for the request (sandbox/warm.h), puts the
 * socket and stdin where a spawned handler would have them (stdio: socket on
 * 0 and 1, or stdin on 0; listen_fds: socket on 3), adds the request's
 * environment and LISTEN_* to its own and execs the handler. EOF on CTL_FD
 * (the broker discarded it) exits 0. An exec failure goes to stderr.
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

int main(int argc, char **argv)
{
	if (argc < 6 || strcmp(argv[4], "--") != 0)
		return 126;
	int ctl = atoi(argv[1]);
	int stdio = strcmp(argv[2], "stdio") == 0;
	int startup_fds = atoi(argv[3]);
	char **hargv = argv + 5;

	char ready = 'R';
	if (send(ctl, &ready, 1, MSG_NOSIGNAL) != 1)
		return 0;
	static char buf[WARM_MSG_MAX + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct iovec iov = { buf, WARM_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	ssize_t n;
	do
		n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct warm_req rq;
	if (n < (ssize_t)sizeof(rq))
		return 0;	/* discarded */
	memcpy(&rq, buf, sizeof(rq));
	int fds[2] = { -1, -1 }, nfd = 0;
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	if (ch && ch->cmsg_level == SOL_SOCKET && ch->cmsg_type == SCM_RIGHTS) {
		nfd = (int)((ch->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(ch), (size_t)(nfd > 2 ? 2 : nfd) * sizeof(int));
	}
	if (rq.magic != WARM_MAGIC || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ||
	    nfd != rq.has_sock + rq.has_stdin || rq.n_env > WARM_ENV_MAX)
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
