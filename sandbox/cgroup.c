/* SPDX-License-Identifier: MIT */
/*
 * Handler cgroups: where they live, how they are made with their limits,
 * entered, killed, read and removed; cgroup v2 (unified) and v1 (one
 * hierarchy per controller).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/internal.h"

#define LEAF "_broker"
#define PENDING_MAX 256

static const char *const cg_names[CG_N] = { "memory", "pids", "cpu", "cpuacct" };
#define V2_CTRLS 3	/* memory, pids, cpu: what v2 handler cgroups use */

static struct {
	pthread_mutex_t lock;	/* init and fini; the rest is read-only after init */
	bool inited;
	enum sandbox_cg_mode mode;
	char group[64];
	/* v2 */
	char own[PATH_MAX];	/* OWN, absolute */
	char base[PATH_MAX];	/* OWN/GROUP: the parent of the sandboxes' cgroups */
	char leaf[PATH_MAX];	/* OWN/GROUP/_broker, or "" in the root cgroup */
	unsigned enabled;	/* controllers handlers get (bit per CG_*) */
	unsigned undo_own;	/* those this process enabled in OWN */
	char why[CG_N][160];	/* for a controller handlers do not get */
	bool has_kill;		/* cgroup.kill */
	/* v1 */
	char v1base[CG_N][PATH_MAX];	/* MOUNT/OWN/GROUP; "" no hierarchy */
	int v1same[CG_N];	/* index of an earlier controller of the same hierarchy, or -1 */
} cg = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- files ---------------------------------------------------------------- */

/* One write of data to path. EINTR is retried: cgroup v1 fails setting
 * memory.limit_in_bytes with it whenever a signal is pending, before it
 * even compares the limit with the usage. */
static int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(data);
	ssize_t w;
	int tries = 100;
	do
		w = write(fd, data, n);
	while (w < 0 && errno == EINTR && --tries);
	int e = w < 0 ? errno : 0;
	close(fd);
	if (w < 0)
		return -e;
	return w == (ssize_t)n ? 0 : -EIO;
}

static int write_at(const char *dir, const char *file, const char *data)
{
	char p[PATH_MAX + 64];
	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	return write_file(p, data);
}

/* The start of a file (NUL-terminated), its length, or a negative errno. */
static ssize_t read_at(const char *dir, const char *file, char *buf, size_t len)
{
	char p[PATH_MAX + 64];
	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = 0;
	return n;
}

static bool exists_at(const char *dir, const char *file)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

/* Whether a space-separated list (cgroup.controllers) holds word. */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == '\n') && (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

/* The value of "key N" in a flat-keyed file (cpu.stat, memory.events). */
static bool keyed(const char *buf, const char *key, uint64_t *out)
{
	size_t n = strlen(key);
	for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ') {
			*out = strtoull(p + n + 1, NULL, 10);
			return true;
		}
	return false;
}

static int mkdir_p(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, mode);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---- where the hierarchies are --------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
}

/* The directory of cgroup path (as /proc/self/cgroup gives it) under the
 * mount at dir whose root (mountinfo's 4th field) is root: 0, or -ENOENT
 * when the mount does not reach it. */
static int dir_of(const char *dir, const char *root, const char *path, char *out, size_t len)
{
	size_t rl = strlen(root);
	const char *rel = path;
	if (strcmp(root, "/")) {
		if (strncmp(path, root, rl) || (path[rl] && path[rl] != '/'))
			return -ENOENT;
		rel = path + rl;
	}
	if (!strcmp(rel, "/"))
		rel = "";
	return snprintf(out, len, "%s%s", dir, rel) < (int)len ? 0 : -ENAMETOOLONG;
}

/* This process's cgroup in the v2 hierarchy (ctrl NULL) or in the v1
 * hierarchy of ctrl, from the text of /proc/self/cgroup; *hier gets the
 * hierarchy's number. 0 or -ENOENT. */
static int own_cgroup(const char *self, const char *ctrl, char *out, size_t len, int *hier)
{
	for (const char *l = self; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char line[PATH_MAX + 256];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*a = *b = 0;
		bool match = false;
		if (!ctrl) {
			match = !strcmp(line, "0") && !a[1];
		} else {
			char *save = NULL;
			for (char *t = strtok_r(a + 1, ",", &save); t && !match; t = strtok_r(NULL, ",", &save))
				match = !strcmp(t, ctrl);
		}
		if (match) {
			snprintf(out, len, "%s", b + 1);
			if (hier)
				*hier = atoi(line);
			return 0;
		}
	}
	return -ENOENT;
}

int sb_cg_layout(const char *mountinfo, const char *self, struct sb_cg_layout *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < CG_N; i++)
		out->v1hier[i] = -1;
	char path[PATH_MAX];
	for (const char *l = mountinfo; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SRC SUPEROPTS */
		char line[3 * PATH_MAX], *field[6], *save = NULL;
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = 0;
		int n = 0;
		for (char *t = strtok_r(line, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
			field[n++] = t;
		if (n < 5)
			continue;
		char *fstype = strtok_r(sep + 3, " ", &save);
		strtok_r(NULL, " ", &save);
		char *opts = strtok_r(NULL, " ", &save);
		if (!fstype)
			continue;
		unescape(field[3]);
		unescape(field[4]);
		if (!strcmp(fstype, "cgroup2") && !out->v2[0]) {
			if (own_cgroup(self, NULL, path, sizeof(path), NULL) == 0)
				dir_of(field[4], field[3], path, out->v2, sizeof(out->v2));
		} else if (!strcmp(fstype, "cgroup") && opts) {
			char *osave = NULL;
			for (char *o = strtok_r(opts, ",", &osave); o; o = strtok_r(NULL, ",", &osave))
				for (int i = 0; i < CG_N; i++)
					if (!strcmp(o, cg_names[i]) && !out->v1[i][0] &&
					    own_cgroup(self, cg_names[i], path, sizeof(path), &out->v1hier[i]) == 0)
						dir_of(field[4], field[3], path, out->v1[i], sizeof(out->v1[i]));
		}
	}
	/* v1 where it holds memory or pids (it cannot hold them beside v2:
	 * a controller is in one hierarchy), else v2 where it is mounted */
	if (out->v1[CG_MEMORY][0] || out->v1[CG_PIDS][0])
		out->mode = SANDBOX_CG_V1;
	else if (out->v2[0])
		out->mode = SANDBOX_CG_V2;
	else
		out->mode = SANDBOX_CG_NONE;
	return 0;
}

/* A whole (small, proc) file into a malloc'd string; NULL on failure. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (m) {
		char chunk[4096];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			fwrite(chunk, 1, n, m);
		fclose(m);
	}
	fclose(f);
	return buf;
}

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
	if (read_at(dir, "cgroup.procs", procs, sizeof(procs)) < 0)
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

static int v2_init(const char *own, struct sandbox_error *err)
{
	char list[512];
	int r;
	snprintf(cg.own, sizeof(cg.own), "%s", own);
	/* the root cgroup alone has no cgroup.events (in a cgroup namespace
	 * too: its root is some other cgroup, which has one) */
	bool root = !exists_at(cg.own, "cgroup.events");
	if (!root && others_in(cg.own, list, sizeof(list)) > 0) {
		sb_error(err, EBUSY, "cgroup",
			 "cgroup: %s holds other processes (%s), and cgroup v2 lets a cgroup with "
			 "processes give no controllers to cgroups below it; %s",
			 cg.own, list, fix_hint);
		return -EBUSY;
	}
	snprintf(cg.base, sizeof(cg.base), "%s/%s", cg.own, cg.group);
	if (mkdir(cg.base, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		sb_error(err, -r, "cgroup", "cgroup: mkdir %s: %s; %s", cg.base, strerror(-r),
			 r == -EROFS ? "the cgroup file system is read-only here (a container: give it a "
				       "writable cgroup namespace)"
				     : fix_hint);
		return r;
	}
	if (!root) {
		snprintf(cg.leaf, sizeof(cg.leaf), "%s/%s", cg.base, LEAF);
		r = mkdir(cg.leaf, 0755) < 0 && errno != EEXIST ? -errno : 0;
		if (r == 0)
			r = write_at(cg.leaf, "cgroup.procs", "0");
		if (r < 0) {
			sb_error(err, -r, "cgroup", "cgroup: move this process into %s: %s; %s", cg.leaf,
				 strerror(-r), fix_hint);
			cg.leaf[0] = 0;
			rmdir(cg.base);
			return r;
		}
	}
	/* the controllers: one at a time, only those offered, each checked */
	char avail[512] = "", on[512] = "";
	read_at(cg.own, "cgroup.controllers", avail, sizeof(avail));
	read_at(cg.own, "cgroup.subtree_control", on, sizeof(on));
	for (int i = 0; i < V2_CTRLS; i++) {
		char w[32];
		snprintf(w, sizeof(w), "+%s", cg_names[i]);
		if (!has_word(avail, cg_names[i])) {
			snprintf(cg.why[i], sizeof(cg.why[i]),
				 "not delegated to %s (its cgroup.controllers: \"%.*s\")", cg.own,
				 (int)strcspn(avail, "\n"), avail);
			continue;
		}
		if (!has_word(on, cg_names[i])) {
			if ((r = write_at(cg.own, "cgroup.subtree_control", w)) < 0) {
				snprintf(cg.why[i], sizeof(cg.why[i]), "enabling it in %s/cgroup.subtree_control: %s",
					 cg.own, strerror(-r));
				continue;
			}
			cg.undo_own |= 1u << i;
		}
		if ((r = write_at(cg.base, "cgroup.subtree_control", w)) < 0) {
			snprintf(cg.why[i], sizeof(cg.why[i]), "enabling it in %s/cgroup.subtree_control: %s",
				 cg.base, strerror(-r));
			continue;
		}
		cg.enabled |= 1u << i;
	}
	cg.has_kill = exists_at(cg.base, "cgroup.kill");
	return 0;
}

static int v1_init(const struct sb_cg_layout *lay, struct sandbox_error *err)
{
	for (int i = 0; i < CG_N; i++) {
		cg.v1base[i][0] = 0;
		cg.v1same[i] = -1;
		if (!lay->v1[i][0]) {
			snprintf(cg.why[i], sizeof(cg.why[i]), "no cgroup v1 hierarchy has it");
			continue;
		}
		for (int j = 0; j < i; j++)
			if (lay->v1[j][0] && lay->v1hier[j] == lay->v1hier[i])
				cg.v1same[i] = j;
		if (cg.v1same[i] >= 0)
			continue;
		snprintf(cg.v1base[i], sizeof(cg.v1base[i]), "%s/%s", lay->v1[i], cg.group);
		int r = mkdir_p(cg.v1base[i], 0755);
		if (r < 0) {
			snprintf(cg.why[i], sizeof(cg.why[i]), "mkdir %s/%s: %s", lay->v1[i], cg.group,
				 strerror(-r));
			cg.v1base[i][0] = 0;
			if (i == CG_MEMORY || i == CG_PIDS) {
				sb_error(err, -r, "cgroup", "cgroup: mkdir %s/%s: %s", lay->v1[i], cg.group,
					 strerror(-r));
				return r;
			}
			continue;
		}
		cg.enabled |= 1u << i;
	}
	for (int i = 0; i < CG_N; i++)
		if (cg.v1same[i] >= 0 && (cg.enabled & (1u << cg.v1same[i])))
			cg.enabled |= 1u << i;
	return 0;
}

static void fill_info(struct sandbox_cg_info *info)
{
	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	info->mode = cg.mode;
	info->kill = cg.has_kill;
	snprintf(info->base, sizeof(info->base), "%s",
		 cg.mode == SANDBOX_CG_V2 ? cg.base : cg.v1base[CG_MEMORY]);
	snprintf(info->leaf, sizeof(info->leaf), "%s", cg.leaf);
	for (int i = 0; i < CG_N; i++)
		if (cg.enabled & (1u << i)) {
			size_t l = strlen(info->controllers);
			snprintf(info->controllers + l, sizeof(info->controllers) - l, "%s%s", l ? "," : "",
				 cg_names[i]);
		}
	for (int i = 0; i < V2_CTRLS; i++)
		if (!(cg.enabled & (1u << i)) && !info->missing[0])
			snprintf(info->missing, sizeof(info->missing), "%s: %s", cg_names[i], cg.why[i]);
}

static int init_locked(const char *group, struct sandbox_error *err)
{
	if (cg.inited) {
		if (strcmp(group, cg.group)) {
			sb_error(err, EINVAL, "cgroup", "cgroup: group \"%s\" already set up as \"%s\"",
				 group, cg.group);
			return -EINVAL;
		}
		return 0;
	}
	if (!group[0] || strlen(group) >= sizeof(cg.group) || strchr(group, '/') || group[0] == '.') {
		sb_error(err, EINVAL, "cgroup", "cgroup: bad group name \"%s\"", group);
		return -EINVAL;
	}
	memset(cg.why, 0, sizeof(cg.why));
	cg.enabled = cg.undo_own = 0;
	cg.own[0] = cg.base[0] = cg.leaf[0] = 0;
	cg.has_kill = false;
	snprintf(cg.group, sizeof(cg.group), "%s", group);
	char *mi = slurp("/proc/self/mountinfo"), *self = slurp("/proc/self/cgroup");
	struct sb_cg_layout lay;
	int r = 0;
	if (!mi || !self) {
		r = -errno;
		sb_error(err, -r, "cgroup", "cgroup: read /proc/self/%s: %s", mi ? "cgroup" : "mountinfo",
			 strerror(-r));
	} else {
		sb_cg_layout(mi, self, &lay);
		cg.mode = lay.mode;
		if (cg.mode == SANDBOX_CG_V1)
			r = v1_init(&lay, err);
		else if (cg.mode == SANDBOX_CG_V2)
			r = v2_init(lay.v2, err);
		else
			for (int i = 0; i < CG_N; i++)
				snprintf(cg.why[i], sizeof(cg.why[i]),
					 "no cgroup hierarchy of this process is mounted");
	}
	free(mi);
	free(self);
	if (r < 0) {
		cg.mode = SANDBOX_CG_NONE;
		return r;
	}
	cg.inited = true;
	return 0;
}

int sandbox_cg_init(const char *group, struct sandbox_cg_info *info, struct sandbox_error *err)
{
	pthread_mutex_lock(&cg.lock);
	int r = init_locked(group, err);
	if (r == 0)
		fill_info(info);
	pthread_mutex_unlock(&cg.lock);
	return r;
}

/* ---- removal ---------------------------------------------------------------- */

/* Handler cgroups whose rmdir found them busy (processes still exiting),
 * retried by sandbox_cg_collect() and cg_remove(); spawns on other threads
 * add to it, so it is locked. */
static char *pending[PENDING_MAX];
static size_t n_pending;
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

unsigned sandbox_cg_collect(void)
{
	pthread_mutex_lock(&pending_lock);
	size_t k = 0;
	for (size_t i = 0; i < n_pending; i++) {
		if (rmdir(pending[i]) == 0 || errno == ENOENT)
			free(pending[i]);
		else
			pending[k++] = pending[i];
	}
	n_pending = k;
	pthread_mutex_unlock(&pending_lock);
	return (unsigned)k;
}

/* rmdir each of a handler's cgroups ('\n'-separated in list, emptied);
 * one still busy goes to the pending list, never waited for here. */
void sb_cg_remove(char *list)
{
	char *save = NULL;
	for (char *d = strtok_r(list, "\n", &save); d; d = strtok_r(NULL, "\n", &save)) {
		if (rmdir(d) == 0 || errno == ENOENT)
			continue;
		pthread_mutex_lock(&pending_lock);
		char *c = n_pending < PENDING_MAX ? strdup(d) : NULL;
		if (c)
			pending[n_pending++] = c;
		pthread_mutex_unlock(&pending_lock);
	}
	list[0] = 0;
}

/* Of the pending cgroups, those under dir: how many; the first to first. */
static size_t pending_under(const char *dir, char *first, size_t len)
{
	size_t n = 0, l = strlen(dir);
	pthread_mutex_lock(&pending_lock);
	for (size_t i = 0; i < n_pending; i++)
		if (!strncmp(pending[i], dir, l) && pending[i][l] == '/' && !n++)
			snprintf(first, len, "%s", pending[i]);
	pthread_mutex_unlock(&pending_lock);
	return n;
}

/* The first pids in a cgroup, space-separated, in buf; "none" if empty. */
static const char *procs_of(const char *dir, char *buf, size_t len)
{
	if (read_at(dir, "cgroup.procs", buf, len) < 0)
		buf[0] = 0;
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = c[1] ? ' ' : 0;
	return buf[0] ? buf : "none";
}

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
			    snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) < (int)sizeof(sub) &&
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
	struct cg_clean c = { 0 };
	if (cg.mode == SANDBOX_CG_V2) {
		/* what is under OWN/GROUP but this process's leaf */
		rmtree(cg.base, 0, cg.leaf[0] ? cg.leaf : NULL, false, &c);
	} else {
		for (int i = 0; i < CG_N; i++)
			if (cg.v1base[i][0])
				rmtree(cg.v1base[i], 0, NULL, false, &c);
	}
	if (c.err) {
		char procs[128];
		sb_error(err, c.err, "cgroup", "cgroup rmdir %s: %s (processes in it: %s)", c.stays,
			 strerror(c.err), procs_of(c.stays, procs, sizeof(procs)));
		return -c.err;
	}
	return (int)c.removed;
}

int sandbox_cg_fini(struct sandbox_error *err)
{
	pthread_mutex_lock(&cg.lock);
	int r = 0;
	if (!cg.inited)
		goto out;
	sandbox_cg_collect();
	if (cg.mode == SANDBOX_CG_V1) {
		for (int i = 0; i < CG_N; i++)
			if (cg.v1base[i][0] && rmdir(cg.v1base[i]) < 0 && errno != ENOENT && !r) {
				r = -errno;
				sb_error(err, -r, "cgroup", "cgroup rmdir %s: %s", cg.v1base[i], strerror(-r));
			}
	} else if (cg.mode == SANDBOX_CG_V2) {
		/* back to where this process was placed, as it was: the
		 * controllers off bottom-up (a parent's cannot go while a
		 * child has them on), then out of the leaf, which can go */
		const char *step = "";
		char w[32];
		if (cg.leaf[0]) {
			for (int i = V2_CTRLS - 1; i >= 0 && !r; i--) {
				snprintf(w, sizeof(w), "-%s", cg_names[i]);
				if ((cg.enabled & (1u << i)) &&
				    (r = write_at(cg.base, "cgroup.subtree_control", w)) < 0)
					step = cg.base;
			}
			for (int i = V2_CTRLS - 1; i >= 0 && !r; i--) {
				snprintf(w, sizeof(w), "-%s", cg_names[i]);
				if ((cg.undo_own & (1u << i)) &&
				    (r = write_at(cg.own, "cgroup.subtree_control", w)) < 0)
					step = cg.own;
			}
			if (!r && (r = write_at(cg.own, "cgroup.procs", "0")) < 0)
				step = cg.own;
			if (!r && rmdir(cg.leaf) < 0)
				r = -errno, step = cg.leaf;
		}
		if (!r && rmdir(cg.base) < 0 && errno != ENOENT)
			r = -errno, step = cg.base;
		if (r < 0) {
			char procs[128];
			sb_error(err, -r, "cgroup", "cgroup: undo the placement in %s: %s (processes in %s: %s)",
				 step, strerror(-r), cg.base, procs_of(cg.base, procs, sizeof(procs)));
		}
	}
	cg.inited = false;
out:
	pthread_mutex_unlock(&cg.lock);
	return r;
}

/* ---- a sandbox's cgroups -------------------------------------------------------- */

/* The sandbox's directories: made, with controllers enabled below them on
 * v2. From a reload's older generation that removed them, too. */
static int sb_dirs_make(struct sb_cg *c, char *why, size_t whylen)
{
	for (int i = 0; i < CG_N; i++) {
		if (!c->dir[i][0])
			continue;
		int r = mkdir_p(c->dir[i], 0755);
		if (r < 0) {
			snprintf(why, whylen, "cgroup mkdir %s: %s", c->dir[i], strerror(-r));
			return r;
		}
		if (cg.mode != SANDBOX_CG_V2)
			continue;
		for (int k = 0; k < V2_CTRLS; k++) {
			char w[32];
			snprintf(w, sizeof(w), "+%s", cg_names[k]);
			if ((cg.enabled & (1u << k)) &&
			    (r = write_at(c->dir[i], "cgroup.subtree_control", w)) < 0) {
				snprintf(why, whylen, "cgroup: enable %s in %s/cgroup.subtree_control: %s",
					 cg_names[k], c->dir[i], strerror(-r));
				return r;
			}
		}
	}
	return 0;
}

int sb_cg_prepare(struct sb_cg *c, const char *group, const char *name,
		  const struct sandbox_limits *l, struct sandbox_error *err)
{
	memset(c->dir, 0, sizeof(c->dir));
	c->name = name;
	c->limits = *l;
	c->n_stock = 0;
	if (!group)
		return 0;
	int r = sandbox_cg_init(group, NULL, err);
	if (r < 0)
		return r;
	/* declared limits that cannot be enforced are an error, not a warning */
	const struct {
		bool want;
		int ctrl;
	} need[] = { { l->memory > 0, CG_MEMORY }, { l->pids > 0, CG_PIDS }, { l->cpu > 0, CG_CPU } };
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (need[i].want && !(cg.enabled & (1u << need[i].ctrl))) {
			sb_error(err, ENOENT, "cgroup",
				 "sandbox \"%s\": cgroup: a %s limit is declared, but handlers cannot get "
				 "the %s controller: %s, so the limit cannot be enforced%s",
				 name, cg_names[need[i].ctrl], cg_names[need[i].ctrl], cg.why[need[i].ctrl],
				 cg.mode == SANDBOX_CG_V2 && cg.leaf[0]
					 ? "; delegate it to postern (Delegate=yes in its systemd unit)"
					 : "");
			return -ENOENT;
		}
	if (cg.mode == SANDBOX_CG_V2) {
		snprintf(c->dir[0], sizeof(c->dir[0]), "%s/%s", cg.base, name);
	} else if (cg.mode == SANDBOX_CG_V1) {
		for (int i = 0; i < CG_N; i++)
			if (cg.v1base[i][0] && (i != CG_CPU || l->cpu > 0))
				snprintf(c->dir[i], sizeof(c->dir[i]), "%s/%s", cg.v1base[i], name);
		/* cpuacct beside cpu in one hierarchy: the cpu directory it is */
		if (cg.v1same[CG_CPUACCT] == CG_CPU && !c->dir[CG_CPU][0])
			snprintf(c->dir[CG_CPU], sizeof(c->dir[CG_CPU]), "%s/%s", cg.v1base[CG_CPU], name);
	}
	c->on = c->dir[0][0] || c->dir[1][0] || c->dir[2][0] || c->dir[3][0];
	char why[600];
	if (c->on && (r = sb_dirs_make(c, why, sizeof(why))) < 0) {
		sb_error(err, -r, "cgroup", "sandbox \"%s\": %s", name, why);
		return r;
	}
	return 0;
}

/* Handler cgroup names, h<N>: one number per handler for all its
 * controllers, counted per process, so that the generations of a sandbox,
 * which share its directory across a reload, never share a handler's. */
static uint64_t seq;

static int limit(const char *dir, const char *file, const char *val, bool optional, char *why,
		 size_t whylen)
{
	int r = write_at(dir, file, val);
	if (r == -ENOENT && optional)
		return 0;
	if (r < 0)
		snprintf(why, whylen, "cgroup limit %s=%s in %s: %s", file, val, dir, strerror(-r));
	return r;
}

/* mkdir a handler's cgroup; the sandbox's directories again if an older
 * generation removed them. 0 or a negative errno (-EEXIST: taken). */
static int hmkdir(struct sb_cg *c, const char *dir, char *why, size_t whylen)
{
	if (mkdir(dir, 0755) == 0)
		return 0;
	int r = -errno;
	if (r == -ENOENT && (r = sb_dirs_make(c, why, whylen)) == 0)
		r = mkdir(dir, 0755) == 0 ? 0 : -errno;
	if (r < 0 && r != -EEXIST && !why[0])
		snprintf(why, whylen, "cgroup mkdir %s: %s", dir, strerror(-r));
	return r;
}

/* A handler's cgroups with their limits, number n: the directories,
 * '\n'-separated, go to dirs (CG_DIRS_MAX; on failure those made so far). */
static int make_n(struct sb_cg *c, uint64_t n, char *dirs, char *why, size_t whylen)
{
	char dir[PATH_MAX], val[64];
	const struct sandbox_limits *l = &c->limits;
	dirs[0] = 0;
	for (int i = 0; i < CG_N; i++) {
		if (!c->dir[i][0])
			continue;
		int r = snprintf(dir, sizeof(dir), "%s/h%llu", c->dir[i], (unsigned long long)n) <
				(int)sizeof(dir)
			? hmkdir(c, dir, why, whylen)
			: -ENAMETOOLONG;
		if (r < 0)
			return r;
		size_t len = strlen(dirs);
		snprintf(dirs + len, CG_DIRS_MAX - len, "%s%s", len ? "\n" : "", dir);
		if (cg.mode == SANDBOX_CG_V2) {
			if (l->memory) {
				snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory);
				if ((r = limit(dir, "memory.max", val, false, why, whylen)) < 0 ||
				    (r = limit(dir, "memory.swap.max", "0", true, why, whylen)) < 0)
					return r;
			}
			/* an OOM kill takes the whole handler, not one of its
			 * processes the others could go on without */
			if ((cg.enabled & (1u << CG_MEMORY)) &&
			    (r = limit(dir, "memory.oom.group", "1", true, why, whylen)) < 0)
				return r;
			snprintf(val, sizeof(val), "%u", l->pids);
			if (l->pids && (r = limit(dir, "pids.max", val, false, why, whylen)) < 0)
				return r;
			snprintf(val, sizeof(val), "%llu 100000", (unsigned long long)(l->cpu * 100000));
			if (l->cpu > 0 && (r = limit(dir, "cpu.max", val, false, why, whylen)) < 0)
				return r;
		} else if (i == CG_MEMORY && l->memory) {
			snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory);
			if ((r = limit(dir, "memory.limit_in_bytes", val, false, why, whylen)) < 0)
				return r;
			/* only where swap accounting exists */
			(void)write_at(dir, "memory.memsw.limit_in_bytes", val);
		} else if (i == CG_PIDS && l->pids) {
			snprintf(val, sizeof(val), "%u", l->pids);
			if ((r = limit(dir, "pids.max", val, false, why, whylen)) < 0)
				return r;
		} else if (i == CG_CPU && l->cpu > 0) {
			snprintf(val, sizeof(val), "%llu", (unsigned long long)(l->cpu * 100000));
			if ((r = limit(dir, "cpu.cfs_period_us", "100000", false, why, whylen)) < 0 ||
			    (r = limit(dir, "cpu.cfs_quota_us", val, false, why, whylen)) < 0)
				return r;
		}
	}
	return 0;
}

/* make_n() under the next number; one that is taken (left by an earlier
 * broker of the same table, say) is skipped, never shared. */
static int make(struct sb_cg *c, char *dirs, char *why, size_t whylen)
{
	for (int tries = 0;; tries++) {
		uint64_t n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
		why[0] = 0;
		int r = make_n(c, n, dirs, why, whylen);
		if (r != -EEXIST || tries == 100) {
			if (r == -EEXIST && !why[0])
				snprintf(why, whylen, "cgroup mkdir under %s: %s", c->dir[0], strerror(EEXIST));
			return r;
		}
		sb_cg_remove(dirs);
	}
}

int sb_cg_create(struct sb_cg *c, char *dirs, int *procs, bool use_stock, char *why, size_t whylen)
{
	for (int i = 0; i < CG_N; i++)
		procs[i] = -1;
	dirs[0] = 0;
	if (!c->on)
		return 0;
	pthread_mutex_lock(&c->lock);
	bool stocked = use_stock && c->n_stock > 0;
	if (stocked)
		memcpy(dirs, c->stock[--c->n_stock], CG_DIRS_MAX);
	pthread_mutex_unlock(&c->lock);
	int r;
	if (!stocked && (r = make(c, dirs, why, whylen)) < 0)
		return r;
	char list[CG_DIRS_MAX], file[PATH_MAX], *save = NULL;
	int np = 0;
	memcpy(list, dirs, sizeof(list));
	for (char *d = strtok_r(list, "\n", &save); d && np < CG_N; d = strtok_r(NULL, "\n", &save)) {
		snprintf(file, sizeof(file), "%s/cgroup.procs", d);
		if ((procs[np] = open(file, O_WRONLY | O_CLOEXEC)) < 0) {
			r = -errno;
			snprintf(why, whylen, "cgroup open %s: %s", file, strerror(-r));
			return r;
		}
		np++;
	}
	return 0;
}

unsigned sb_cg_stock_missing(struct sb_cg *c)
{
	if (!c->on)
		return 0;
	pthread_mutex_lock(&c->lock);
	unsigned n = CG_STOCK - c->n_stock;
	pthread_mutex_unlock(&c->lock);
	return n;
}

int sb_cg_stock(struct sb_cg *c, struct sandbox_error *err)
{
	for (unsigned n = sb_cg_stock_missing(c); n > 0; n--) {
		char dirs[CG_DIRS_MAX], why[600];
		int r = make(c, dirs, why, sizeof(why));
		if (r < 0) {
			sb_cg_remove(dirs);
			sb_error(err, -r, "cgroup", "sandbox \"%s\": %s", c->name, why);
			return r;
		}
		pthread_mutex_lock(&c->lock);
		bool room = c->n_stock < CG_STOCK;
		if (room)
			memcpy(c->stock[c->n_stock++], dirs, sizeof(dirs));
		pthread_mutex_unlock(&c->lock);
		if (!room)
			sb_cg_remove(dirs);
	}
	return 0;
}

/* The sandbox's cgroups: its stock, its handlers' that were still busy when
 * they were reaped (waited for, up to 1 s), then its own directories,
 * which stay while a newer generation of the same sandbox has handlers in
 * them. */
int sb_cg_destroy(struct sb_cg *c, struct sandbox_error *err)
{
	for (unsigned i = 0; i < c->n_stock; i++)
		sb_cg_remove(c->stock[i]);
	c->n_stock = 0;
	if (!c->on)
		return 0;
	char busy[PATH_MAX] = "";
	for (int tries = 0; tries < 200; tries++) {
		sandbox_cg_collect();
		size_t n = 0;
		for (int i = 0; i < CG_N; i++)
			if (c->dir[i][0])
				n += pending_under(c->dir[i], busy, sizeof(busy));
		if (!n) {
			busy[0] = 0;
			break;
		}
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	int r = 0;
	if (busy[0] && rmdir(busy) < 0 && errno != ENOENT) {
		r = -errno;
		char procs[128];
		sb_error(err, -r, "cgroup", "sandbox \"%s\": cgroup rmdir %s: %s (processes in it: %s)",
			 c->name, busy, strerror(-r), procs_of(busy, procs, sizeof(procs)));
	}
	for (int i = 0; i < CG_N; i++)
		if (c->dir[i][0])
			rmdir(c->dir[i]);
	return r;
}

/* ---- a handler's cgroup: kill, figures ------------------------------------------- */

int sb_cg_kill(const char *dirs)
{
	if (cg.mode != SANDBOX_CG_V2 || !cg.has_kill || !dirs[0])
		return -EOPNOTSUPP;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(dirs, "\n"), dirs);
	int r = write_at(dir, "cgroup.kill", "1");
	return r == -ENOENT ? 0 : r;
}

/* Which controller's hierarchy a v1 handler directory is in. */
static int v1_ctrl_of(const char *dir)
{
	for (int i = 0; i < CG_N; i++) {
		size_t l = strlen(cg.v1base[i]);
		if (l && !strncmp(dir, cg.v1base[i], l) && dir[l] == '/')
			return i;
	}
	return -1;
}

int sandbox_cg_stats(const struct sandbox_handler *h, struct sandbox_cg_stats *st)
{
	char list[CG_DIRS_MAX], buf[1024], *save = NULL;
	uint64_t v;
	memset(st, 0, sizeof(*st));
	memcpy(list, h->cgroup, sizeof(list));
	if (!list[0])
		return -ENOENT;
	for (char *d = strtok_r(list, "\n", &save); d; d = strtok_r(NULL, "\n", &save)) {
		int ctrl = cg.mode == SANDBOX_CG_V2 ? -1 : v1_ctrl_of(d);
		if (cg.mode == SANDBOX_CG_V2 || ctrl == CG_MEMORY) {
			bool v2 = cg.mode == SANDBOX_CG_V2;
			if (read_at(d, v2 ? "memory.current" : "memory.usage_in_bytes", buf, sizeof(buf)) > 0)
				st->mem_current = strtoull(buf, NULL, 10), st->has |= SANDBOX_CG_HAS_MEMORY;
			if (read_at(d, v2 ? "memory.peak" : "memory.max_usage_in_bytes", buf, sizeof(buf)) > 0)
				st->mem_peak = strtoull(buf, NULL, 10), st->has |= SANDBOX_CG_HAS_PEAK;
			if (read_at(d, v2 ? "memory.events" : "memory.oom_control", buf, sizeof(buf)) > 0 &&
			    keyed(buf, "oom_kill", &v))
				st->oom_kills = (uint32_t)v, st->has |= SANDBOX_CG_HAS_OOM;
		}
		if (cg.mode == SANDBOX_CG_V2 || ctrl == CG_PIDS) {
			if (read_at(d, "pids.current", buf, sizeof(buf)) > 0)
				st->pids = (uint32_t)strtoul(buf, NULL, 10), st->has |= SANDBOX_CG_HAS_PIDS;
		}
		if (cg.mode == SANDBOX_CG_V2) {
			if (read_at(d, "cpu.stat", buf, sizeof(buf)) > 0 && keyed(buf, "usage_usec", &v))
				st->cpu_usec = v, st->has |= SANDBOX_CG_HAS_CPU;
		} else if (ctrl == CG_CPUACCT || (ctrl == CG_CPU && cg.v1same[CG_CPUACCT] == CG_CPU)) {
			if (read_at(d, "cpuacct.usage", buf, sizeof(buf)) > 0)
				st->cpu_usec = strtoull(buf, NULL, 10) / 1000, st->has |= SANDBOX_CG_HAS_CPU;
		}
	}
	return 0;
}
