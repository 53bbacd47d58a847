/* SPDX-License-Identifier: MIT */
/*
 * The handler's identity: rlimits, no supplementary groups, its uid and
 * gid, a user namespace of its own with one-id maps, every capability set
 * emptied, no_new_privs, RLIMIT_NPROC. The maps and the highest capability
 * are worked out once (sb_identity_prepare()); the rest are steps of the
 * child (child.c lists them in order), which runs as host root until
 * child_ids() and creates its user namespace only after that.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include "sandbox/internal.h"

void sb_identity_prepare(struct sandbox *sb)
{
	snprintf(sb->uid_map, sizeof(sb->uid_map), "%u %u 1\n", (unsigned)sb->uid,
	         (unsigned)sb->uid);
	snprintf(sb->gid_map, sizeof(sb->gid_map), "%u %u 1\n", (unsigned)sb->gid,
	         (unsigned)sb->gid);
	sb->cap_last_cap = CAP_LAST_CAP;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &sb->cap_last_cap) != 1 || sb->cap_last_cap < 0 ||
		    sb->cap_last_cap > 63)
			sb->cap_last_cap = CAP_LAST_CAP;
		fclose(f);
	}
}

/* rlimits but RLIMIT_NPROC (child_nproc(), once the user namespace exists) */
void child_rlimits(struct child_args *c)
{
	const struct sandbox_limits *l = &c->sb->limits;
	struct {
		int res;
		rlim_t v;
		const char *name;
	} rl[] = {
	    {RLIMIT_NOFILE, l->nofile, "nofile"},
	    {RLIMIT_FSIZE, l->fsize, "fsize"},
	    {RLIMIT_CPU, l->cpu_seconds, "cpu"},
	    {RLIMIT_CORE, 0, "core"},
	};
	for (size_t i = 0; i < sizeof(rl) / sizeof(rl[0]); i++) {
		if (!rl[i].v && rl[i].res != RLIMIT_CORE)
			continue;
		struct rlimit r = {rl[i].v, rl[i].v};
		if (setrlimit(rl[i].res, &r) < 0)
			child_fail(c->err_fd, errno, "rlimit", "%s", rl[i].name);
	}
}

/* No supplementary groups, the handler's gid and uid: raw syscalls (glibc's
 * set*id() would signal the broker's other threads). Leaving uid 0 clears
 * every host capability, and the parent-death signal (set again next). */
void child_ids(struct child_args *c)
{
	const struct sandbox *sb = c->sb;
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		child_fail(c->err_fd, errno, "setgroups", "%s", "");
	if (syscall(SYS_setresgid, sb->gid, sb->gid, sb->gid) < 0)
		child_fail(c->err_fd, errno, "setresgid", "%u", (unsigned)sb->gid);
	if (syscall(SYS_setresuid, sb->uid, sb->uid, sb->uid) < 0)
		child_fail(c->err_fd, errno, "setresuid", "%u", (unsigned)sb->uid);
}

/* The uid change made us non-dumpable, which leaves /proc/self owned by
 * root and the maps unwritable until map_write() marks it dumpable again;
 * execve decides this anew. */
void child_userns(struct child_args *c)
{
	if (unshare(CLONE_NEWUSER) < 0)
		child_fail(c->err_fd, errno, "userns", "%s", "");
}

/* Write one of our own /proc files (uid_map, setgroups, gid_map) after
 * taking the handler's uid. They are ours to open only while our memory
 * (mm) is dumpable, and every vfork-style child shares the broker's mm:
 * another child taking its own uid at the same moment makes it non-dumpable
 * again. So: mark it dumpable (first, when the uid change has just cleared
 * it; else when refused) and open, a bounded number of times. */
static int map_write(int dirfd, const char *file, const char *data, bool first)
{
	int fd = -1;
	for (int tries = 0; tries < 1000 && fd < 0; tries++) {
		if ((first || tries > 0) && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			return -1;
		fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
		if (fd < 0 && errno != EACCES)
			return -1;
	}
	if (fd < 0)
		return -1;
	size_t len = strlen(data);
	ssize_t w = write(fd, data, len);
	int e = errno;
	close(fd);
	if (w == (ssize_t)len)
		return 0;
	errno = w < 0 ? e : EIO;
	return -1;
}

/* One-id maps of our own ids: a process may map its own euid into a
 * namespace it creates, so no round trip to the parent. */
void child_idmaps(struct child_args *c)
{
	const struct sandbox *sb = c->sb;
	if (map_write(c->procfd, "uid_map", sb->uid_map, true) < 0)
		child_fail(c->err_fd, errno, "idmap", "uid_map %u", (unsigned)sb->uid);
	if (map_write(c->procfd, "setgroups", "deny", false) < 0)
		child_fail(c->err_fd, errno, "idmap", "setgroups deny");
	if (map_write(c->procfd, "gid_map", sb->gid_map, false) < 0)
		child_fail(c->err_fd, errno, "idmap", "gid_map %u", (unsigned)sb->gid);
	close(c->procfd);
	c->procfd = -1;
}

/* The new user namespace granted a full set: all go, from every set. */
void child_caps(struct child_args *c)
{
	for (int cap = 0; cap <= c->sb->cap_last_cap; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(c->err_fd, errno, "caps", "bounding set drop %d", cap);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		child_fail(c->err_fd, errno, "caps", "ambient clear");
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {{0}};
	if (syscall(SYS_capset, &hdr, data) < 0)
		child_fail(c->err_fd, errno, "caps", "capset");
}

void child_no_new_privs(struct child_args *c)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(c->err_fd, errno, "no_new_privs", "%s", "");
}

void child_nproc(struct child_args *c)
{
	unsigned n = c->sb->limits.nproc;
	if (!n)
		return;
	struct rlimit r = {n, n};
	if (setrlimit(RLIMIT_NPROC, &r) < 0)
		child_fail(c->err_fd, errno, "rlimit", "nproc");
}
