/* SPDX-License-Identifier: MIT */
/* sandbox/ private header. */
#ifndef POSTERN_SANDBOX_INTERNAL_H
#define POSTERN_SANDBOX_INTERNAL_H

#include <limits.h>
#include <linux/filter.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "sandbox/sandbox.h"

__attribute__((format(printf, 4, 5))) void sb_error(struct sandbox_error *e, int err,
						       const char *step, const char *fmt, ...);
/* ---- cgroup.c: a sandbox's handler cgroups ---------------------------------- */
#define CG_STOCK 4		/* handler cgroups made ahead per sandbox */
#define CG_DIRS_MAX 1024	/* sizeof(sandbox_handler.cgroup) */
enum { CG_MEMORY, CG_PIDS, CG_CPU, CG_CPUACCT, CG_N };

struct sb_cg {
	bool on;		/* handlers get cgroups */
	const char *name;	/* the sandbox's, for messages */
	struct sandbox_limits limits;
	char dir[CG_N][PATH_MAX];	/* the sandbox's directories (v2: dir[0]); "" none */
	pthread_mutex_t lock;	/* the stock; initialized by the caller */
	char stock[CG_STOCK][CG_DIRS_MAX];	/* made ahead, with their limits */
	unsigned n_stock;
};

/* Where this process's cgroups are, from the text of /proc/self/mountinfo
 * and /proc/self/cgroup: its cgroup's directory in the v2 hierarchy and in
 * the v1 hierarchy of each controller ("" none; v1hier: the hierarchy's
 * number there), and which postern uses (v1 where it holds memory or pids,
 * else v2 where mounted). */
struct sb_cg_layout {
	enum sandbox_cg_mode mode;
	char v2[PATH_MAX];
	char v1[CG_N][PATH_MAX];
	int v1hier[CG_N];
};
int sb_cg_layout(const char *mountinfo, const char *self_cgroup, struct sb_cg_layout *out);

/* Set up c for sandbox name under group (NULL: no cgroups); places this
 * process first (sandbox_cg_init()) if nothing did. A declared limit whose
 * controller is missing is an error. */
int sb_cg_prepare(struct sb_cg *c, const char *group, const char *name,
		  const struct sandbox_limits *l, struct sandbox_error *err);
int sb_cg_destroy(struct sb_cg *c, struct sandbox_error *err);
/* A handler's cgroups into dirs (from the stock when use_stock), each
 * cgroup.procs opened into procs[CG_N] (-1 for the rest). */
int sb_cg_create(struct sb_cg *c, char *dirs, int *procs, bool use_stock, char *why, size_t whylen);
void sb_cg_remove(char *dirs);
unsigned sb_cg_stock_missing(struct sb_cg *c);
int sb_cg_stock(struct sb_cg *c, struct sandbox_error *err);
/* cgroup.kill of a handler's cgroup (v2); -EOPNOTSUPP where there is none. */
int sb_cg_kill(const char *dirs);

int sb_seccomp_compile(const struct sandbox_config *cfg, struct sock_fprog *out,
		       struct sandbox_error *err);

/* ---- landlock.c: a Landlock domain per handler ------------------------------ */
/* The sandbox's ruleset into *fd (CLOEXEC), or -1 when this kernel offers
 * nothing to restrict (sandbox_landlock_gaps() says what is missing). */
int sb_landlock_ruleset(const struct sandbox_config *cfg, int *fd, struct sandbox_error *err);

#endif
