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
 * handler (sandbox/waiter/warm_wait.h). EOF on CTL_FD (the broker discarded
 * it) exits 0. An exec failure goes to stderr. Used for handlers that
 * postern-warm.so cannot be preloaded into (static, not glibc, scripts
 * whose interpreter is either, LD_PRELOAD in the sandbox's env).
 */
#include <stdlib.h>

#include "sandbox/waiter/warm_wait.h"

extern char **environ;

int main(int argc, char **argv)
{
	if (argc < 6 || strcmp(argv[4], "--") != 0)
		return 126;
	int code;
	char **envp =
	    warm_wait(atoi(argv[1]), strcmp(argv[2], "stdio") == 0, atoi(argv[3]), environ, &code);
	if (!envp)
		return code;
	char **hargv = argv + 5;
	execve(hargv[0], hargv, envp);
	int e = errno;
	fprintf(stderr, "postern: exec %s: %s\n", hargv[0], strerror(e));
	return 127;
}
