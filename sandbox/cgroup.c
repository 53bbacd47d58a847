/* SPDX-License-Identifier: MIT */
/*
 * This process's cgroup placement: where handler cgroups live, under a
 * GROUP of this process's own, on cgroup v2 (unified) or v1 (one hierarchy
 * per controller), made once, undone at the end, and what an earlier
 * instance left there removed. The handler cgroups themselves:
 * cgroup_handler.c; the files: cgroup_fs.c.
 *
 * Placement (sandbox_cg_init(), once per process, before any sandbox):
 *  - v2, when no v1 hierarchy holds memory or pids: OWN is the process's
 *    cgroup (the "0::" line of /proc/self/cgroup, under the cgroup2 mount
 *    found in /proc/self/mountinfo). A non-root cgroup that holds processes
 *    cannot give controllers to its children ("no internal processes"), so
 *    OWN must hold this process alone (as systemd leaves a Delegate=yes
 *    service); it moves itself into a leaf OWN/GROUP/_broker and enables
 *    memory, pids and cpu, one at a time and only those OWN's
 *    cgroup.controllers lists, in OWN and OWN/GROUP, each write checked.
 *    In the root cgroup, where the rule does not apply, it stays. Handler
 *    cgroups: OWN/GROUP/SANDBOX/hN. sandbox_cg_fini() undoes all of it.
 *  - v1: MOUNT/OWN/GROUP/SANDBOX/hN in the memory, pids, cpu (only with a
 *    cpu limit) and cpuacct (CPU time) hierarchies, as mounted.
 * A declared limit whose controller is missing fails sandbox_prepare(),
 * naming the sandbox and the controller: never a failure per request.
 *
 * `_broker` cannot be a sandbox's directory: sandbox names start with
 * [a-z0-9].
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/internal.h"

#define LEAF "_broker"

struct sb_cg_place sb_cgp = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- placement ------------------------------------------------------------------ */

static const char fix_hint[] =
    "run postern alone in a cgroup of its own with its controllers delegated: Delegate=yes in "
    "its systemd unit (examples/systemd/postern.service), or `systemd-run --scope -p "
    "Delegate=yes postern run POLICY`";

/* Processes in a cgroup other than this one, as "pid pid" in buf; count. */
static int others_in(const char *dir, char *buf, size_t len)
{
	char procs[4096];
	int n = 0;
	buf[0] = 0;
	if (sb_cg_read_at(dir, "cgroup.procs", procs, sizeof(procs)) < 0)
		return 0;
	char *save = NULL;
	for (char *t = strtok_r(procs, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
		if (atoi(t) == (int)getpid())
			continue;
		if (n++ < 8) {
			size_t l = strlen(buf);
			snprintf(buf + l, len - l, "%s%s", l ? " " : "", t);
		}
	}
	return n;
}

/* Why handlers do not get controller i (for the error sandbox_prepare()
 * gives when a limit needs it); cut to fit if it must be. */
__attribute__((format(printf, 2, 3))) static void why_set(int i, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sb_cgp.why[i], sizeof(sb_cgp.why[i]), fmt, ap);
	va_end(ap);
}

static int v2_init(const char *own, struct sandbox_error *err)
{
	char list[512];
	int r;
	if (snprintf(sb_cgp.own, sizeof(sb_cgp.own), "%s", own) >= (int)sizeof(sb_cgp.own))
		return -ENAMETOOLONG;
	/* the root cgroup alone has no cgroup.events (in a cgroup namespace
	 * too: its root is some other cgroup, which has one) */
	bool root = !sb_cg_exists_at(sb_cgp.own, "cgroup.events");
	if (!root && others_in(sb_cgp.own, list, sizeof(list)) > 0) {
		sb_error(err, EBUSY, "cgroup", sb_cgp.own,
		         "cgroup: %s holds other processes (%s), and cgroup v2 lets a cgroup with "
		         "processes give no controllers to cgroups below it; %s",
		         sb_cgp.own, list, fix_hint);
		return -EBUSY;
	}
	if (snprintf(sb_cgp.base, sizeof(sb_cgp.base), "%s/%s", sb_cgp.own, sb_cgp.group) >=
	        (int)sizeof(sb_cgp.base) ||
	    snprintf(sb_cgp.leaf, sizeof(sb_cgp.leaf), "%s/%s", sb_cgp.base, LEAF) >=
	        (int)sizeof(sb_cgp.leaf)) {
		sb_error(err, ENAMETOOLONG, "cgroup", sb_cgp.own, "cgroup: %s/%s: %s", sb_cgp.own,
		         sb_cgp.group, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	if (root)
		sb_cgp.leaf[0] = 0;
	if (mkdir(sb_cgp.base, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		sb_error(err, -r, "cgroup", sb_cgp.base, "cgroup: mkdir %s: %s; %s", sb_cgp.base,
		         strerror(-r),
		         r == -EROFS
		             ? "the cgroup file system is read-only here (a container: give it a "
		               "writable cgroup namespace)"
		             : fix_hint);
		return r;
	}
	if (!root) {
		r = mkdir(sb_cgp.leaf, 0755) < 0 && errno != EEXIST ? -errno : 0;
		if (r == 0)
			r = sb_cg_write_at(sb_cgp.leaf, "cgroup.procs", "0");
		if (r < 0) {
			sb_error(err, -r, "cgroup", sb_cgp.leaf,
			         "cgroup: move this process into %s: %s; %s", sb_cgp.leaf,
			         strerror(-r), fix_hint);
			sb_cgp.leaf[0] = 0;
			rmdir(sb_cgp.base);
			return r;
		}
	}
	/* the controllers: one at a time, only those offered, each checked */
	char avail[512] = "", on[512] = "";
	sb_cg_read_at(sb_cgp.own, "cgroup.controllers", avail, sizeof(avail));
	sb_cg_read_at(sb_cgp.own, "cgroup.subtree_control", on, sizeof(on));
	for (int i = 0; i < V2_CTRLS; i++) {
		char w[32];
		snprintf(w, sizeof(w), "+%s", sb_cg_names[i]);
		if (!sb_cg_has_word(avail, sb_cg_names[i])) {
			why_set(i, "not delegated to %s (its cgroup.controllers: \"%.*s\")",
			        sb_cgp.own, (int)strcspn(avail, "\n"), avail);
			continue;
		}
		if (!sb_cg_has_word(on, sb_cg_names[i])) {
			if ((r = sb_cg_write_at(sb_cgp.own, "cgroup.subtree_control", w)) < 0) {
				why_set(i, "enabling it in %s/cgroup.subtree_control: %s",
				        sb_cgp.own, strerror(-r));
				continue;
			}
			sb_cgp.undo_own |= 1u << i;
		}
		if ((r = sb_cg_write_at(sb_cgp.base, "cgroup.subtree_control", w)) < 0) {
			why_set(i, "enabling it in %s/cgroup.subtree_control: %s", sb_cgp.base,
			        strerror(-r));
			continue;
		}
		sb_cgp.enabled |= 1u << i;
	}
	sb_cgp.has_kill = sb_cg_exists_at(sb_cgp.base, "cgroup.kill");
	return 0;
}

static int v1_init(const struct sb_cg_layout *lay, struct sandbox_error *err)
{
	for (int i = 0; i < CG_N; i++) {
		sb_cgp.v1base[i][0] = 0;
		sb_cgp.v1same[i] = -1;
		if (!lay->v1[i][0]) {
			why_set(i, "no cgroup v1 hierarchy has it");
			continue;
		}
		for (int j = 0; j < i; j++)
			if (lay->v1[j][0] && lay->v1hier[j] == lay->v1hier[i])
				sb_cgp.v1same[i] = j;
		if (sb_cgp.v1same[i] >= 0)
			continue;
		snprintf(sb_cgp.v1base[i], sizeof(sb_cgp.v1base[i]), "%s/%s", lay->v1[i],
		         sb_cgp.group);
		int r = sb_cg_mkdir_p(sb_cgp.v1base[i], 0755);
		if (r < 0) {
			why_set(i, "mkdir %s/%s: %s", lay->v1[i], sb_cgp.group, strerror(-r));
			sb_cgp.v1base[i][0] = 0;
			if (i == CG_MEMORY || i == CG_PIDS) {
				char path[PATH_MAX + 64];
				snprintf(path, sizeof(path), "%s/%s", lay->v1[i], sb_cgp.group);
				sb_error(err, -r, "cgroup", path, "cgroup: mkdir %s/%s: %s",
				         lay->v1[i], sb_cgp.group, strerror(-r));
				return r;
			}
			continue;
		}
		sb_cgp.enabled |= 1u << i;
	}
	for (int i = 0; i < CG_N; i++)
		if (sb_cgp.v1same[i] >= 0 && (sb_cgp.enabled & (1u << sb_cgp.v1same[i])))
			sb_cgp.enabled |= 1u << i;
	return 0;
}

static void fill_info(struct sandbox_cg_info *info)
{
	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	info->mode = sb_cgp.mode;
	info->kill = sb_cgp.has_kill;
	memcpy(info->base, sb_cgp.mode == SANDBOX_CG_V2 ? sb_cgp.base : sb_cgp.v1base[CG_MEMORY],
	       sizeof(info->base));
	memcpy(info->leaf, sb_cgp.leaf, sizeof(info->leaf));
	for (int i = 0; i < CG_N; i++)
		if (sb_cgp.enabled & (1u << i)) {
			size_t l = strlen(info->controllers);
			snprintf(info->controllers + l, sizeof(info->controllers) - l, "%s%s",
			         l ? "," : "", sb_cg_names[i]);
		}
	for (int i = 0; i < V2_CTRLS; i++)
		if (!(sb_cgp.enabled & (1u << i)) && !info->missing[0])
			snprintf(info->missing, sizeof(info->missing), "%s: %s", sb_cg_names[i],
			         sb_cgp.why[i]);
}

static int init_locked(const char *group, struct sandbox_error *err)
{
	if (sb_cgp.inited) {
		if (strcmp(group, sb_cgp.group)) {
			sb_error(err, EINVAL, "cgroup", group,
			         "cgroup: group \"%s\" already set up as \"%s\"", group,
			         sb_cgp.group);
			return -EINVAL;
		}
		return 0;
	}
	if (!group[0] || strlen(group) >= sizeof(sb_cgp.group) || strchr(group, '/') ||
	    group[0] == '.') {
		sb_error(err, EINVAL, "cgroup", group, "cgroup: bad group name \"%s\"", group);
		return -EINVAL;
	}
	memset(sb_cgp.why, 0, sizeof(sb_cgp.why));
	sb_cgp.enabled = sb_cgp.undo_own = 0;
	sb_cgp.own[0] = sb_cgp.base[0] = sb_cgp.leaf[0] = 0;
	sb_cgp.has_kill = false;
	snprintf(sb_cgp.group, sizeof(sb_cgp.group), "%s", group);
	char *mi = sb_slurp("/proc/self/mountinfo"), *self = sb_slurp("/proc/self/cgroup");
	struct sb_cg_layout lay;
	int r = 0;
	if (!mi || !self) {
		r = -errno;
		sb_error(err, -r, "cgroup", mi ? "/proc/self/cgroup" : "/proc/self/mountinfo",
		         "cgroup: read /proc/self/%s: %s", mi ? "cgroup" : "mountinfo",
		         strerror(-r));
	} else {
		sb_cg_layout(mi, self, &lay);
		sb_cgp.mode = lay.mode;
		if (sb_cgp.mode == SANDBOX_CG_V1)
			r = v1_init(&lay, err);
		else if (sb_cgp.mode == SANDBOX_CG_V2)
			r = v2_init(lay.v2, err);
		else
			for (int i = 0; i < CG_N; i++)
				why_set(i, "no cgroup hierarchy of this process is mounted");
	}
	free(mi);
	free(self);
	if (r < 0) {
		sb_cgp.mode = SANDBOX_CG_NONE;
		return r;
	}
	sb_cgp.inited = true;
	return 0;
}

int sandbox_cg_init(const char *group, struct sandbox_cg_info *info, struct sandbox_error *err)
{
	pthread_mutex_lock(&sb_cgp.lock);
	int r = init_locked(group, err);
	if (r == 0)
		fill_info(info);
	pthread_mutex_unlock(&sb_cgp.lock);
	return r;
}

/* ---- removal ---------------------------------------------------------------- */

/* rmdir a cgroup directory and those under it (to depth 3: sandbox,
 * handler, whatever a handler made), counting what goes; the first that
 * stays goes to c. skip: a directory to leave alone (this process's leaf). */
struct cg_clean {
	unsigned removed;
	int err;
	char stays[PATH_MAX];
};

static void rmtree(const char *dir, int depth, const char *skip, bool self, struct cg_clean *c)
{
	DIR *d = depth < 3 ? opendir(dir) : NULL;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			char sub[PATH_MAX];
			if (e->d_type == DT_DIR && e->d_name[0] != '.' &&
			    snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) <
			        (int)sizeof(sub) &&
			    (!skip || strcmp(sub, skip)))
				rmtree(sub, depth + 1, skip, true, c);
		}
		closedir(d);
	}
	if (!self)
		return;
	if (rmdir(dir) == 0)
		c->removed++;
	else if (errno != ENOENT && !c->err) {
		c->err = errno;
		snprintf(c->stays, sizeof(c->stays), "%s", dir);
	}
}

int sandbox_cg_clean(const char *group, struct sandbox_error *err)
{
	int r = sandbox_cg_init(group, NULL, err);
	if (r < 0)
		return r;
	struct cg_clean c = {0};
	if (sb_cgp.mode == SANDBOX_CG_V2) {
		/* what is under OWN/GROUP but this process's leaf */
		rmtree(sb_cgp.base, 0, sb_cgp.leaf[0] ? sb_cgp.leaf : NULL, false, &c);
	} else {
		for (int i = 0; i < CG_N; i++)
			if (sb_cgp.v1base[i][0])
				rmtree(sb_cgp.v1base[i], 0, NULL, false, &c);
	}
	if (c.err) {
		char procs[128];
		sb_error(err, c.err, "cgroup", c.stays, "cgroup rmdir %s: %s (processes in it: %s)",
		         c.stays, strerror(c.err), sb_cg_procs_of(c.stays, procs, sizeof(procs)));
		return -c.err;
	}
	return (int)c.removed;
}

int sandbox_cg_fini(struct sandbox_error *err)
{
	pthread_mutex_lock(&sb_cgp.lock);
	int r = 0;
	if (!sb_cgp.inited)
		goto out;
	sandbox_cg_collect();
	if (sb_cgp.mode == SANDBOX_CG_V1) {
		for (int i = 0; i < CG_N; i++)
			if (sb_cgp.v1base[i][0] && rmdir(sb_cgp.v1base[i]) < 0 && errno != ENOENT &&
			    !r) {
				r = -errno;
				sb_error(err, -r, "cgroup", sb_cgp.v1base[i], "cgroup rmdir %s: %s",
				         sb_cgp.v1base[i], strerror(-r));
			}
	} else if (sb_cgp.mode == SANDBOX_CG_V2) {
		/* back to where this process was placed, as it was: the
		 * controllers off bottom-up (a parent's cannot go while a
		 * child has them on), then out of the leaf, which can go */
		const char *step = "";
		char w[32];
		if (sb_cgp.leaf[0]) {
			for (int i = V2_CTRLS - 1; i >= 0 && !r; i--) {
				snprintf(w, sizeof(w), "-%s", sb_cg_names[i]);
				if ((sb_cgp.enabled & (1u << i)) &&
				    (r = sb_cg_write_at(sb_cgp.base, "cgroup.subtree_control", w)) <
				        0)
					step = sb_cgp.base;
			}
			for (int i = V2_CTRLS - 1; i >= 0 && !r; i--) {
				snprintf(w, sizeof(w), "-%s", sb_cg_names[i]);
				if ((sb_cgp.undo_own & (1u << i)) &&
				    (r = sb_cg_write_at(sb_cgp.own, "cgroup.subtree_control", w)) <
				        0)
					step = sb_cgp.own;
			}
			if (!r && (r = sb_cg_write_at(sb_cgp.own, "cgroup.procs", "0")) < 0)
				step = sb_cgp.own;
			if (!r && rmdir(sb_cgp.leaf) < 0)
				r = -errno, step = sb_cgp.leaf;
		}
		if (!r && rmdir(sb_cgp.base) < 0 && errno != ENOENT)
			r = -errno, step = sb_cgp.base;
		if (r < 0) {
			char procs[128];
			sb_error(err, -r, "cgroup", step,
			         "cgroup: undo the placement in %s: %s (processes in %s: %s)", step,
			         strerror(-r), sb_cgp.base,
			         sb_cg_procs_of(sb_cgp.base, procs, sizeof(procs)));
		}
	}
	sb_cgp.inited = false;
out:
	pthread_mutex_unlock(&sb_cgp.lock);
	return r;
}
