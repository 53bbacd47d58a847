/* SPDX-License-Identifier: MIT */
/* The sandbox the spawn helpers and spawn_bench start /usr/bin/true in:
 * /usr and the merged-/usr symlinks, nothing else. true_sandbox() gives a
 * config to adjust (limits, cgroup_name) and pass to sandbox_prepare(). */
#ifndef POSTERN_TESTS_TRUE_SANDBOX_H
#define POSTERN_TESTS_TRUE_SANDBOX_H

#include "sandbox/sandbox.h"

static const struct sandbox_mount true_sandbox_mounts[] = {
    {.kind = SANDBOX_MOUNT_BIND, .src = "/usr", .dst = "/usr"},
    {.kind = SANDBOX_MOUNT_SYMLINK, .dst = "/lib", .target = "usr/lib"},
    {.kind = SANDBOX_MOUNT_SYMLINK, .dst = "/lib64", .target = "usr/lib64"},
    {.kind = SANDBOX_MOUNT_SYMLINK, .dst = "/bin", .target = "usr/bin"},
};
static const char *const true_sandbox_argv[] = {"/usr/bin/true", NULL};

/* name, and id as the handlers' uid and gid */
static inline struct sandbox_config true_sandbox(const char *name, unsigned id)
{
	return (struct sandbox_config){.name = name,
	                               .argv = true_sandbox_argv,
	                               .uid = id,
	                               .gid = id,
	                               .mounts = true_sandbox_mounts,
	                               .n_mounts = sizeof(true_sandbox_mounts) /
	                                           sizeof(true_sandbox_mounts[0]),
	                               .limits = {.nofile = 64}};
}

#endif
