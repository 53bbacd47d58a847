/* SPDX-License-Identifier: MIT */
/*
 * postern-warm.so: a pre-warmed handler that waits inside the handler's own
 * process, after its exec. The sandbox child writes this library into the
 * handler's root (/.postern-warm.so) and execs the handler itself with
 *
 *   LD_PRELOAD=/.postern-warm.so POSTERN_WARM=CTL_FD:stdio|listen_fds:LISTEN_FDS
 *
 * The dynamic loader maps the handler and its libraries, runs their
 * initializers and then this one, which waits for the request
 * (sandbox/waiter/warm_wait.h), places its fds, sets `environ` to the
 * handler's environment (without the two variables above) and returns: the
 * handler's main starts with the request in place. The exec, the loading
 * and the relocations are done before the request arrives.
 *
 * Linked with no libc and -z now: libc's functions come from the handler's
 * own libc, and a loader that could not resolve one stops the handler
 * before its main, never runs it without its request. EOF on CTL_FD (the
 * broker discarded the handler) exits 0, a broken request 126.
 */
#include <stdlib.h>

#include "sandbox/waiter/warm_wait.h"

extern char **environ;

__attribute__((constructor)) static void postern_warm_wait(void)
{
	static char *base[WARM_BASE_ENV_MAX + 1];
	const char *v = NULL;
	size_t k = 0;

	/* the last POSTERN_WARM is the sandbox child's (appended after the
	 * sandbox's own environment) */
	for (char **e = environ; e && *e; e++) {
		if (!strncmp(*e, "POSTERN_WARM=", 13))
			v = *e + 13;
		else if (strncmp(*e, "LD_PRELOAD=", 11) && k < WARM_BASE_ENV_MAX)
			base[k++] = *e;
	}
	if (!v)
		return; /* not started by postern: nothing to wait for */
	base[k] = NULL;
	char *end;
	int ctl = (int)strtol(v, &end, 10);
	if (*end != ':')
		_exit(126);
	int stdio = !strncmp(end + 1, "stdio:", 6);
	const char *nl = strrchr(end + 1, ':');
	int code;
	char **envp = warm_wait(ctl, stdio, nl ? atoi(nl + 1) : 0, base, &code);
	if (!envp)
		_exit(code);
	environ = envp;
}
