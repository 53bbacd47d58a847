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

#endif
