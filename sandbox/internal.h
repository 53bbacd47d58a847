/* SPDX-License-Identifier: MIT */
/* sandbox/ private header. */
#ifndef POSTERN_SANDBOX_INTERNAL_H
#define POSTERN_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <stdio.h>

#include "sandbox/sandbox.h"

__attribute__((format(printf, 4, 5))) void sb_error(struct sandbox_error *e, int err,
						       const char *step, const char *fmt, ...);
int sb_seccomp_compile(const struct sandbox_config *cfg, struct sock_fprog *out,
		       struct sandbox_error *err);

#endif
