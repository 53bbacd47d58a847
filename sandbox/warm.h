/* SPDX-License-Identifier: MIT */
/* How a pre-warmed handler gets its request (sandbox_release() ->
 * postern-warm or postern-warm.so, sandbox/waiter/warm_wait.h). Two sockets: CTL (the child's error
 * socket) carries "R" from the handler when it is ready, then to it REQ's far end (SCM_RIGHTS, sent
 * by sandbox_warm_ready()) and at release one WARM_WAKE byte; REQ carries the request: this header,
 * then its environment ("K=V\0..."), with the socket and/or stdin fd attached (SCM_RIGHTS, in that
 * order). The handler waits on CTL only, so queueing the request on REQ does not wake it. */
#ifndef POSTERN_SANDBOX_WARM_H
#define POSTERN_SANDBOX_WARM_H

#include <stdint.h>

struct warm_req {
	uint32_t magic;
	uint8_t has_sock, has_stdin;
	uint16_t n_env;
};
#define WARM_MAGIC 0x7073746eu /* "pstn" */
#define WARM_WAKE 'G'
#define WARM_MSG_MAX 8192
#define WARM_ENV_MAX 128

/* "LISTEN_FDNAMES=NAME:NAME:..." with one NAME per fd, as
 * sd_listen_fds_with_names() wants (and postern's own inheritance checks),
 * into buf (cap bytes; WARM_FDNAMES_MAX holds 16 names of 10). Plain
 * bytes: the preloaded waiter has no libc. */
#define WARM_FDNAMES_MAX 192
static inline void warm_fdnames(char *buf, unsigned cap, const char *name, int n)
{
	static const char key[] = "LISTEN_FDNAMES=";
	unsigned o = 0;
	for (const char *k = key; *k && o + 1 < cap; k++)
		buf[o++] = *k;
	for (int i = 0; i < n; i++) {
		if (i && o + 1 < cap)
			buf[o++] = ':';
		for (const char *c = name; *c && o + 1 < cap; c++)
			buf[o++] = *c;
	}
	buf[o] = 0;
}

#endif
