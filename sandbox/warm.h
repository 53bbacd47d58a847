/* SPDX-License-Identifier: MIT */
/* The request a pre-warmed handler receives (sandbox_release() ->
 * postern-warm): this header, then the request's environment ("K=V\0..."),
 * with the socket and/or stdin fd attached (SCM_RIGHTS, in that order). */
#ifndef POSTERN_SANDBOX_WARM_H
#define POSTERN_SANDBOX_WARM_H

#include <stdint.h>

struct warm_req {
	uint32_t magic;
	uint8_t has_sock, has_stdin;
	uint16_t n_env;
};
#define WARM_MAGIC 0x7073746eu	/* "pstn" */
#define WARM_MSG_MAX 8192
#define WARM_ENV_MAX 128

#endif
