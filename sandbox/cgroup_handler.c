/* SPDX-License-Identifier: MIT */
/*
 * A sandbox's cgroups and its handlers': SANDBOX/hN under this process's
 * GROUP (cgroup.c placed it) in each hierarchy in use, made with their
 * limits before the clone (or made ahead, the stock), put back into the
 * stock when the handler is reaped and they can serve the next one as if
 * new (sb_cg_finish()), else removed (one still busy is retried later,
 * never waited for on the caller's thread but by sb_cg_destroy()), killed
 * (cgroup.kill), and their figures read.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/internal.h"

#define PENDING_MAX 256

/* What went wrong with a handler's cgroups: the text, and the path acted on. */
__attribute__((format(printf, 3, 4))) static void why_set(struct sb_cg_why *w, const char *object,
                                                          const char *fmt, ...)
{
	va_list ap;
	snprintf(w->object, sizeof(w->object), "%s", object);
	va_start(ap, fmt);
	vsnprintf(w->text, sizeof(w->text), fmt, ap);
	va_end(ap);
}

/* ---- removal ---------------------------------------------------------------------------- */

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

/* ---- a sandbox's cgroups -------------------------------------------------------- */

/* The sandbox's directories: made, with controllers enabled below them on
 * v2. From a reload's older generation that removed them, too. */
static int sb_dirs_make(struct sb_cg *c, struct sb_cg_why *why)
{
	for (int i = 0; i < CG_N; i++) {
		if (!c->dir[i][0])
			continue;
		int r = sb_cg_mkdir_p(c->dir[i], 0755);
		if (r < 0) {
			why_set(why, c->dir[i], "cgroup mkdir %s: %s", c->dir[i], strerror(-r));
			return r;
		}
		if (sb_cgp.mode != SANDBOX_CG_V2)
			continue;
		for (int k = 0; k < V2_CTRLS; k++) {
			char w[32];
			snprintf(w, sizeof(w), "+%s", sb_cg_names[k]);
			if ((sb_cgp.enabled & (1u << k)) &&
			    (r = sb_cg_write_at(c->dir[i], "cgroup.subtree_control", w)) < 0) {
				why_set(why, c->dir[i],
				        "cgroup: enable %s in %s/cgroup.subtree_control: %s",
				        sb_cg_names[k], c->dir[i], strerror(-r));
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
	} need[] = {{l->memory > 0, CG_MEMORY}, {l->pids > 0, CG_PIDS}, {l->cpu > 0, CG_CPU}};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (need[i].want && !(sb_cgp.enabled & (1u << need[i].ctrl))) {
			sb_error(err, ENOENT, "cgroup", sb_cg_names[need[i].ctrl],
			         "sandbox \"%s\": cgroup: a %s limit is declared, but handlers "
			         "cannot get "
			         "the %s controller: %s, so the limit cannot be enforced%s",
			         name, sb_cg_names[need[i].ctrl], sb_cg_names[need[i].ctrl],
			         sb_cgp.why[need[i].ctrl],
			         sb_cgp.mode == SANDBOX_CG_V2 && sb_cgp.leaf[0]
			             ? "; delegate it to postern (Delegate=yes in its systemd unit)"
			             : "");
			return -ENOENT;
		}
	bool toolong = false;
	if (sb_cgp.mode == SANDBOX_CG_V2) {
		toolong |= snprintf(c->dir[0], sizeof(c->dir[0]), "%s/%s", sb_cgp.base, name) >=
		           (int)sizeof(c->dir[0]);
	} else if (sb_cgp.mode == SANDBOX_CG_V1) {
		for (int i = 0; i < CG_N; i++)
			if (sb_cgp.v1base[i][0] && (i != CG_CPU || l->cpu > 0))
				toolong |=
				    snprintf(c->dir[i], sizeof(c->dir[i]), "%s/%s",
				             sb_cgp.v1base[i], name) >= (int)sizeof(c->dir[i]);
		/* cpuacct beside cpu in one hierarchy: the cpu directory it is */
		if (sb_cgp.v1same[CG_CPUACCT] == CG_CPU && !c->dir[CG_CPU][0])
			toolong |=
			    snprintf(c->dir[CG_CPU], sizeof(c->dir[CG_CPU]), "%s/%s",
			             sb_cgp.v1base[CG_CPU], name) >= (int)sizeof(c->dir[CG_CPU]);
	}
	if (toolong) {
		sb_error(err, ENAMETOOLONG, "cgroup", name, "sandbox \"%s\": cgroup: %s/%s: %s",
		         name, sb_cgp.base, name, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	c->on = c->dir[0][0] || c->dir[1][0] || c->dir[2][0] || c->dir[3][0];
	struct sb_cg_why why = {"", ""};
	if (c->on && (r = sb_dirs_make(c, &why)) < 0) {
		sb_error(err, -r, "cgroup", why.object, "sandbox \"%s\": %s", name, why.text);
		return r;
	}
	return 0;
}

/* Handler cgroup names, h<N>: one number per handler for all its
 * controllers, counted per process, so that the generations of a sandbox,
 * which share its directory across a reload, never share a handler's. */
static uint64_t seq;

static int limit(const char *dir, const char *file, const char *val, bool optional,
                 struct sb_cg_why *why)
{
	int r = sb_cg_write_at(dir, file, val);
	if (r == -ENOENT && optional)
		return 0;
	if (r < 0)
		why_set(why, dir, "cgroup limit %s=%s in %s: %s", file, val, dir, strerror(-r));
	return r;
}

/* mkdir a handler's cgroup; the sandbox's directories again if an older
 * generation removed them. 0 or a negative errno (-EEXIST: taken). */
static int hmkdir(struct sb_cg *c, const char *dir, struct sb_cg_why *why)
{
	if (mkdir(dir, 0755) == 0)
		return 0;
	int r = -errno;
	if (r == -ENOENT && (r = sb_dirs_make(c, why)) == 0)
		r = mkdir(dir, 0755) == 0 ? 0 : -errno;
	if (r < 0 && r != -EEXIST && !why->text[0])
		why_set(why, dir, "cgroup mkdir %s: %s", dir, strerror(-r));
	return r;
}

/* A handler's cgroups with their limits, number n: the directories,
 * '\n'-separated, go to dirs (CG_DIRS_MAX; on failure those made so far). */
static int make_n(struct sb_cg *c, uint64_t n, char *dirs, struct sb_cg_why *why)
{
	char dir[PATH_MAX], val[64];
	const struct sandbox_limits *l = &c->limits;
	dirs[0] = 0;
	for (int i = 0; i < CG_N; i++) {
		if (!c->dir[i][0])
			continue;
		int r = snprintf(dir, sizeof(dir), "%s/h%llu", c->dir[i], (unsigned long long)n) <
		                (int)sizeof(dir)
		            ? hmkdir(c, dir, why)
		            : -ENAMETOOLONG;
		if (r < 0)
			return r;
		size_t len = strlen(dirs);
		snprintf(dirs + len, CG_DIRS_MAX - len, "%s%s", len ? "\n" : "", dir);
		if (sb_cgp.mode == SANDBOX_CG_V2) {
			if (l->memory) {
				snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory);
				if ((r = limit(dir, "memory.max", val, false, why)) < 0 ||
				    (r = limit(dir, "memory.swap.max", "0", true, why)) < 0)
					return r;
			}
			/* an OOM kill takes the whole handler, not one of its
			 * processes the others could go on without */
			if ((sb_cgp.enabled & (1u << CG_MEMORY)) &&
			    (r = limit(dir, "memory.oom.group", "1", true, why)) < 0)
				return r;
			snprintf(val, sizeof(val), "%u", l->pids);
			if (l->pids && (r = limit(dir, "pids.max", val, false, why)) < 0)
				return r;
			snprintf(val, sizeof(val), "%llu 100000",
			         (unsigned long long)(l->cpu * 100000));
			if (l->cpu > 0 && (r = limit(dir, "cpu.max", val, false, why)) < 0)
				return r;
		} else if (i == CG_MEMORY && l->memory) {
			snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory);
			if ((r = limit(dir, "memory.limit_in_bytes", val, false, why)) < 0)
				return r;
			/* only where swap accounting exists */
			(void)sb_cg_write_at(dir, "memory.memsw.limit_in_bytes", val);
		} else if (i == CG_PIDS && l->pids) {
			snprintf(val, sizeof(val), "%u", l->pids);
			if ((r = limit(dir, "pids.max", val, false, why)) < 0)
				return r;
		} else if (i == CG_CPU && l->cpu > 0) {
			snprintf(val, sizeof(val), "%llu", (unsigned long long)(l->cpu * 100000));
			if ((r = limit(dir, "cpu.cfs_period_us", "100000", false, why)) < 0 ||
			    (r = limit(dir, "cpu.cfs_quota_us", val, false, why)) < 0)
				return r;
		}
	}
	return 0;
}

/* make_n() under the next number; one that is taken (left by an earlier
 * broker of the same table, say) is skipped, never shared. */
static int make(struct sb_cg *c, char *dirs, struct sb_cg_why *why)
{
	for (int tries = 0;; tries++) {
		uint64_t n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
		why->text[0] = why->object[0] = 0;
		int r = make_n(c, n, dirs, why);
		if (r != -EEXIST || tries == 100) {
			if (r == -EEXIST && !why->text[0])
				why_set(why, c->dir[0], "cgroup mkdir under %s: %s", c->dir[0],
				        strerror(EEXIST));
			return r;
		}
		sb_cg_remove(dirs);
	}
}

/* ---- kept files ------------------------------------------------------------------------ */

/* Which controller's hierarchy a v1 handler directory is in. */
static int v1_ctrl_of(const char *dir)
{
	for (int i = 0; i < CG_N; i++) {
		size_t l = strlen(sb_cgp.v1base[i]);
		if (l && !strncmp(dir, sb_cgp.v1base[i], l) && dir[l] == '/')
			return i;
	}
	return -1;
}

static bool has_cpuacct(int ctrl)
{
	return ctrl == CG_CPUACCT || (ctrl == CG_CPU && sb_cgp.v1same[CG_CPUACCT] == CG_CPU);
}

static void files_close(int *fd)
{
	for (int i = 0; i < CG_FDS; i++)
		sb_close(&fd[i]);
}

/* The files kept per directory but its own (CGF_DIR): which controller's
 * directory has each (-1: all), and where it goes. */
static const struct {
	int ctrl, slot, flags;
	const char *file;
} kept_files[] = {
    {-1, CGF_PROCS, O_WRONLY, "tasks"}, /* v1 only: see enter_file() */
    {CG_MEMORY, CGF_A, O_RDONLY, "memory.usage_in_bytes"},
    {CG_MEMORY, CGF_B, O_RDONLY, "memory.oom_control"},
    {CG_MEMORY, CGF_C, O_RDWR, "memory.max_usage_in_bytes"},
    {CG_PIDS, CGF_A, O_RDONLY, "pids.current"},
    {CG_CPUACCT, CGF_A, O_RDWR, "cpuacct.usage"},
};
#define N_KEPT_FILES (sizeof(kept_files) / sizeof(kept_files[0]))

/* Whether the directory of hierarchy ctrl has kept_files[i]. */
static bool kept_file_in(size_t i, int ctrl)
{
	return kept_files[i].ctrl < 0 || kept_files[i].ctrl == ctrl ||
	       (kept_files[i].ctrl == CG_CPUACCT && has_cpuacct(ctrl));
}

/* The files of the k-th directory d that spawn and reap use, into row;
 * one that cannot be opened stays -1 and is used by its path. */
static void files_open_dir(const char *d, int *row)
{
	char p[PATH_MAX + 64];
	int ctrl = v1_ctrl_of(d);
	row[CGF_DIR] = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < N_KEPT_FILES; i++)
		if (kept_file_in(i, ctrl) &&
		    snprintf(p, sizeof(p), "%s/%s", d, kept_files[i].file) < (int)sizeof(p))
			row[kept_files[i].slot] = open(p, kept_files[i].flags | O_CLOEXEC);
}

/*
 * A new handler cgroup's files opened, to be kept while it lives and
 * while it waits in the stock, when it can be reused (cgroup v1) and this
 * process keeps fewer than keep_max(): a kernfs open costs about 3 us (7
 * beside other cgroups being made and removed; more on a path 9
 * components deep), a pread of an open one a tenth of that, and a reused
 * cgroup's files are the same files. Up to CG_KEEP (64, the stock's size)
 * where the children make an fd table of their own (launch.c), since what
 * the broker holds then costs a spawn nothing; CG_KEEP_COPY (16) where they
 * copy the broker's table, every fd of which a child takes and closes
 * again, ~0.12 us per fd per spawn (16 handler cgroups with 11 files each
 * cost ~21 us per spawn there, and spare ~50 in each spawn and reap that
 * uses one). Bounded for the whole process, not per sandbox; the handlers
 * beyond it use the paths. The slots go to the cgroups of the fresh path,
 * the one a request waits on: those made for the stock or for a fresh
 * spawn, and a reaped one going back to the stock; a pre-warmed handler's
 * cgroup is made and entered before its request comes, so it uses the
 * paths (in `make bench` the 16 pre-warmed handlers' cgroups, made first
 * at start, had held every slot, and the fresh path opened 8 files per
 * request).
 */
static unsigned keep_max(void)
{
	return sb_own_table_ok() ? CG_KEEP : CG_KEEP_COPY;
}

static unsigned n_kept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void files_keep(const char *dirs, bool want, bool *kept, int *fd)
{
	for (int i = 0; i < CG_FDS; i++)
		fd[i] = -1;
	*kept = false;
	if (!want || sb_cgp.mode != SANDBOX_CG_V1 || !dirs[0])
		return;
	pthread_mutex_lock(&kept_lock);
	*kept = n_kept < keep_max();
	n_kept += *kept;
	pthread_mutex_unlock(&kept_lock);
	if (!*kept)
		return;
	char list[CG_DIRS_MAX], *save = NULL;
	int k = 0;
	memcpy(list, dirs, sizeof(list));
	for (char *d = strtok_r(list, "\n", &save); d && k < CG_N;
	     d = strtok_r(NULL, "\n", &save), k++)
		files_open_dir(d, &fd[k * CGF_N]);
}

/* Kept files closed, and no longer counted. */
static void files_release(bool *kept, int *fd)
{
	if (!*kept)
		return;
	files_close(fd);
	*kept = false;
	pthread_mutex_lock(&kept_lock);
	n_kept--;
	pthread_mutex_unlock(&kept_lock);
}

unsigned sandbox_cg_kept_fds(void)
{
	unsigned n = 0;
	if (sb_cgp.mode != SANDBOX_CG_V1)
		return 0;
	/* per hierarchy in use its directory and its kept files */
	for (int c = 0; c < CG_N; c++) {
		if (!sb_cgp.v1base[c][0] || sb_cgp.v1same[c] >= 0)
			continue;
		n++;
		for (size_t i = 0; i < N_KEPT_FILES; i++)
			n += kept_file_in(i, c);
	}
	return keep_max() * n;
}

/*
 * The file through which the child enters a handler cgroup, writing "0"
 * (itself). On cgroup v1 its "tasks": the child is a single thread, so
 * moving the thread moves the process, and a thread that moves itself is
 * moved without the kernel's global cgroup_threadgroup_rwsem taken for
 * writing (Linux 6.0, "cgroup: Optimize single thread migration"), which
 * cgroup.procs takes once per hierarchy: it waits for every fork and exit
 * in progress on the machine, holds off new ones, and when the lock's
 * RCU-sync has gone idle, waits for a grace period. Under load at c=16 it
 * was the step with the longest tail of a spawn's (p50 23 us, mean 220).
 * On v2 a domain cgroup takes processes only, so cgroup.procs, and only
 * where clone3() is refused: the child is cloned into its cgroup there
 * (CLONE_INTO_CGROUP, sb_vfork_clone_into()), which takes the rwsem for
 * reading only, as every fork does.
 */
static const char *enter_file(void)
{
	return sb_cgp.mode == SANDBOX_CG_V1 ? "tasks" : "cgroup.procs";
}

int sb_cg_enter_file_at(int dirfd)
{
	return openat(dirfd, enter_file(), O_WRONLY | O_CLOEXEC);
}

int sb_cg_create(struct sb_cg *c, struct sandbox_handler *h, int *procs, unsigned *kept_procs,
                 int *into, bool use_stock, struct sb_cg_why *why)
{
	char *dirs = h->cgroup;
	for (int i = 0; i < CG_N; i++)
		procs[i] = -1;
	*kept_procs = 0;
	*into = -1;
	dirs[0] = 0;
	h->cg_kept = false;
	if (!c->on)
		return 0;
	pthread_mutex_lock(&c->lock);
	bool stocked = use_stock && c->n_stock > 0;
	if (stocked) {
		/* the last put back whose files are kept open, else the last */
		unsigned i = c->n_stock - 1;
		for (unsigned k = c->n_stock; k-- > 0;)
			if (c->stock[k].kept) {
				i = k;
				break;
			}
		struct sb_cg_ent *e = &c->stock[i];
		memcpy(dirs, e->dirs, CG_DIRS_MAX);
		h->cg_kept = e->kept;
		memcpy(h->cg_fd, e->fd, sizeof(h->cg_fd));
		if (i != --c->n_stock)
			*e = c->stock[c->n_stock];
	}
	pthread_mutex_unlock(&c->lock);
	int r;
	if (!stocked) {
		if ((r = make(c, dirs, why)) < 0)
			return r;
		files_keep(dirs, use_stock, &h->cg_kept, h->cg_fd);
	}
	if (sb_cgp.mode == SANDBOX_CG_V2 && sb_clone_into_cgroup_ok()) {
		/* one directory: the child is cloned into it */
		if ((*into = open(dirs, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			r = -errno;
			why_set(why, dirs, "cgroup open %s: %s", dirs, strerror(-r));
			return r;
		}
		return 0;
	}
	char list[CG_DIRS_MAX], file[PATH_MAX], *save = NULL;
	int np = 0;
	memcpy(list, dirs, sizeof(list));
	for (char *d = strtok_r(list, "\n", &save); d && np < CG_N;
	     d = strtok_r(NULL, "\n", &save)) {
		int kept = h->cg_kept ? h->cg_fd[np * CGF_N + CGF_PROCS] : -1;
		/* a kept one: lent to the child (not a copy: two syscalls less),
		 * open until the reap */
		if (kept >= 0)
			procs[np] = kept, *kept_procs |= 1u << np;
		else if (snprintf(file, sizeof(file), "%s/%s", d, enter_file()) < (int)sizeof(file))
			procs[np] = open(file, O_WRONLY | O_CLOEXEC);
		else
			errno = ENAMETOOLONG;
		if (procs[np] < 0) {
			r = -errno;
			why_set(why, d, "cgroup open %s/%s: %s", d, enter_file(), strerror(-r));
			return r;
		}
		np++;
	}
	return 0;
}

void sb_cg_drop(struct sandbox_handler *h)
{
	files_release(&h->cg_kept, h->cg_fd);
	if (h->cgroup[0])
		sb_cg_remove(h->cgroup);
}

unsigned sb_cg_stock_missing(struct sb_cg *c)
{
	if (!c->on)
		return 0;
	pthread_mutex_lock(&c->lock);
	unsigned n = c->n_stock < CG_AHEAD ? CG_AHEAD - c->n_stock : 0;
	pthread_mutex_unlock(&c->lock);
	return n;
}

int sb_cg_stock(struct sb_cg *c, struct sandbox_error *err)
{
	for (unsigned n = sb_cg_stock_missing(c); n > 0; n--) {
		struct sb_cg_ent e;
		struct sb_cg_why why = {"", ""};
		int r = make(c, e.dirs, &why);
		if (r < 0) {
			sb_cg_remove(e.dirs);
			sb_error(err, -r, "cgroup", why.object, "sandbox \"%s\": %s", c->name,
			         why.text);
			return r;
		}
		files_keep(e.dirs, true, &e.kept, e.fd);
		pthread_mutex_lock(&c->lock);
		bool room = c->n_stock < CG_STOCK;
		if (room)
			c->stock[c->n_stock++] = e;
		pthread_mutex_unlock(&c->lock);
		if (!room) {
			files_release(&e.kept, e.fd);
			sb_cg_remove(e.dirs);
		}
	}
	return 0;
}

/* ---- reuse -------------------------------------------------------------------------------- */

/* dir/file's start into buf (NUL-terminated) through its kept fd (>= 0),
 * else by its path: its length or a negative errno. */
static ssize_t rd(int fd, const char *dir, const char *file, char *buf, size_t len)
{
	if (fd < 0)
		return sb_cg_read_at(dir, file, buf, len);
	ssize_t n;
	do
		n = pread(fd, buf, len - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return n;
}

/* A counter of dir read into *v (through its kept fd when >= 0); when *ok
 * (the cgroup is still to be reused), reset to zero through the same open
 * file; *ok cleared when either fails. Whether it was read. */
static bool counter(int kept, const char *dir, const char *file, bool *ok, uint64_t *v)
{
	char buf[64];
	int fd = kept >= 0 ? kept
	                   : sb_cg_open_read(dir, file, *ok ? O_RDWR : O_RDONLY, buf, sizeof(buf));
	if (fd < 0 || (kept >= 0 && rd(kept, dir, file, buf, sizeof(buf)) < 0)) {
		*ok = false;
		return false;
	}
	*v = strtoull(buf, NULL, 10);
	if (*ok && sb_cg_write_fd(fd, "0") < 0)
		*ok = false;
	if (fd != kept)
		close(fd);
	return true;
}

/* One directory of a handler's cgroups: its figures added to st, through
 * its kept files (row, or NULL: by path). With mem_limit_for_reuse
 * (non-NULL: cgroup v1, the handler reaped), also whether it can serve
 * another handler as if new, its peak and CPU counters then reset through
 * the files just read: nobody in it, no cgroup below it (a kernfs
 * directory's link count is 2 + its subdirectories), no OOM kill (its
 * count is not resettable), at most a sixteenth of the memory limit still
 * charged. Nobody: its pids.current is 0 in the pids hierarchy, which then
 * stands for the others (by_pids: every process of a handler is in all
 * its cgroups, the child entered them before anything could fork, and
 * none can leave), else its cgroup.procs is empty. Without it, read-only,
 * and the result is false. */
static bool dir_figures(const char *d, const int *row, struct sandbox_cg_stats *st,
                        const uint64_t *mem_limit_for_reuse, bool by_pids)
{
	static const int none[CGF_N] = {-1, -1, -1, -1, -1};
	char buf[1024];
	uint64_t v;
	bool v2 = sb_cgp.mode == SANDBOX_CG_V2;
	int ctrl = v2 ? -1 : v1_ctrl_of(d);
	bool ok = mem_limit_for_reuse != NULL && !v2;
	struct stat sst;
	if (!row)
		row = none;
	if (ok && ((row[CGF_DIR] >= 0 ? fstat(row[CGF_DIR], &sst) : stat(d, &sst)) < 0 ||
	           sst.st_nlink != 2))
		ok = false;
	if (ok && !by_pids && ctrl != CG_PIDS &&
	    sb_cg_read_at(d, "cgroup.procs", buf, sizeof(buf)) != 0)
		ok = false;
	if (v2 || ctrl == CG_MEMORY) {
		if (rd(row[CGF_A], d, v2 ? "memory.current" : "memory.usage_in_bytes", buf,
		       sizeof(buf)) > 0) {
			st->mem_current = strtoull(buf, NULL, 10);
			st->has |= SANDBOX_CG_HAS_MEMORY;
			if (ok && *mem_limit_for_reuse &&
			    st->mem_current > *mem_limit_for_reuse / 16)
				ok = false;
		} else {
			ok = false;
		}
		if (rd(row[CGF_B], d, v2 ? "memory.events" : "memory.oom_control", buf,
		       sizeof(buf)) > 0 &&
		    sb_cg_keyed(buf, "oom_kill", &v)) {
			st->oom_kills = (uint32_t)v, st->has |= SANDBOX_CG_HAS_OOM;
			if (v)
				ok = false;
		}
		if (counter(row[CGF_C], d, v2 ? "memory.peak" : "memory.max_usage_in_bytes", &ok,
		            &st->mem_peak))
			st->has |= SANDBOX_CG_HAS_PEAK;
	}
	if (v2 || ctrl == CG_PIDS) {
		if (rd(row[CGF_A], d, "pids.current", buf, sizeof(buf)) > 0) {
			st->pids = (uint32_t)strtoul(buf, NULL, 10), st->has |= SANDBOX_CG_HAS_PIDS;
			if (st->pids)
				ok = false;
		} else {
			ok = false;
		}
	}
	if (v2) {
		if (sb_cg_read_at(d, "cpu.stat", buf, sizeof(buf)) > 0 &&
		    sb_cg_keyed(buf, "usage_usec", &v))
			st->cpu_usec = v, st->has |= SANDBOX_CG_HAS_CPU;
	} else if (has_cpuacct(ctrl)) {
		if (counter(row[CGF_A], d, "cpuacct.usage", &ok, &v))
			st->cpu_usec = v / 1000, st->has |= SANDBOX_CG_HAS_CPU;
	}
	return ok;
}

/*
 * Why a cgroup can serve the next handler of its sandbox: its limits are
 * the sandbox's (a reload makes new sandbox objects, with their own stock),
 * and what a handler reads of it is reset: processes, CPU time, the memory
 * peak. An OOM kill count is not resettable, so such a cgroup goes. The
 * memory charged to it that outlives its processes (page cache the
 * handler read or wrote; its tmpfs goes with its mount namespace, before
 * the reap) stays charged to the next handler: a cgroup with more than a
 * sixteenth of its memory limit charged is not reused, so that the next
 * handler's peak does not start there; the rest counts in its memory
 * figure and, being reclaimable, in no OOM decision. Nothing a handler can
 * do leaves more behind: it cannot write the cgroup's files (root's) nor
 * mount cgroupfs (seccomp), so no cgroup below its own.
 *
 * cgroup v1 only: on v2, memory.peak cannot be reset by path (Linux 6.12
 * resets it for the writer's file descriptor only), nor cpu.stat, so
 * there every handler gets a new cgroup.
 *
 * The figures are read after the reap: final (the last process's exit
 * accounted), and the same reads decide the reuse.
 */
void sb_cg_finish(struct sb_cg *c, bool reuse, struct sandbox_handler *h,
                  struct sandbox_cg_stats *st)
{
	struct sandbox_cg_stats scratch;
	if (st)
		memset(st, 0, sizeof(*st));
	if (!h->cgroup[0]) {
		files_release(&h->cg_kept, h->cg_fd);
		return;
	}
	reuse = reuse && c && c->on && sb_cgp.mode == SANDBOX_CG_V1;
	if (reuse) {
		pthread_mutex_lock(&c->lock);
		reuse = c->n_stock < CG_STOCK;
		pthread_mutex_unlock(&c->lock);
	}
	if (st || reuse) {
		if (!st)
			st = memset(&scratch, 0, sizeof(scratch));
		char list[CG_DIRS_MAX], *save = NULL;
		bool by_pids = false;
		int k = 0;
		memcpy(list, h->cgroup, sizeof(list));
		for (char *d = strtok_r(list, "\n", &save); d; d = strtok_r(NULL, "\n", &save))
			by_pids |= sb_cgp.mode == SANDBOX_CG_V1 && v1_ctrl_of(d) == CG_PIDS;
		memcpy(list, h->cgroup, sizeof(list));
		for (char *d = strtok_r(list, "\n", &save); d && k < CG_N;
		     d = strtok_r(NULL, "\n", &save), k++)
			reuse = dir_figures(d, h->cg_kept ? &h->cg_fd[k * CGF_N] : NULL, st,
			                    reuse ? &c->limits.memory : NULL, by_pids) &&
			        reuse;
	}
	bool room = false;
	if (reuse && !h->cg_kept) /* a pre-warmed handler's: the stock's is kept */
		files_keep(h->cgroup, true, &h->cg_kept, h->cg_fd);
	if (reuse) {
		pthread_mutex_lock(&c->lock);
		if ((room = c->n_stock < CG_STOCK)) {
			struct sb_cg_ent *e = &c->stock[c->n_stock++];
			memcpy(e->dirs, h->cgroup, CG_DIRS_MAX);
			e->kept = h->cg_kept;
			memcpy(e->fd, h->cg_fd, sizeof(e->fd));
		}
		pthread_mutex_unlock(&c->lock);
	}
	if (room)
		h->cg_kept = false; /* the stock's now */
	else
		sb_cg_drop(h);
	h->cgroup[0] = 0;
}

/* The sandbox's cgroups: its stock, its handlers' that were still busy when
 * they were reaped (waited for, up to 1 s), then its own directories,
 * which stay while a newer generation of the same sandbox has handlers in
 * them. */
int sb_cg_destroy(struct sb_cg *c, struct sandbox_error *err)
{
	for (unsigned i = 0; i < c->n_stock; i++) {
		files_release(&c->stock[i].kept, c->stock[i].fd);
		sb_cg_remove(c->stock[i].dirs);
	}
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
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	int r = 0;
	if (busy[0] && rmdir(busy) < 0 && errno != ENOENT) {
		r = -errno;
		char procs[128];
		sb_error(err, -r, "cgroup", busy,
		         "sandbox \"%s\": cgroup rmdir %s: %s (processes in it: %s)", c->name, busy,
		         strerror(-r), sb_cg_procs_of(busy, procs, sizeof(procs)));
	}
	for (int i = 0; i < CG_N; i++)
		if (c->dir[i][0])
			rmdir(c->dir[i]);
	return r;
}

/* ---- a handler's cgroup: kill, figures ------------------------------------------- */

int sb_cg_kill(const char *dirs)
{
	if (sb_cgp.mode != SANDBOX_CG_V2 || !sb_cgp.has_kill || !dirs[0])
		return -EOPNOTSUPP;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(dirs, "\n"), dirs);
	int r = sb_cg_write_at(dir, "cgroup.kill", "1");
	return r == -ENOENT ? 0 : r;
}

int sandbox_cg_stats(const struct sandbox_handler *h, struct sandbox_cg_stats *st)
{
	char list[CG_DIRS_MAX], *save = NULL;
	memset(st, 0, sizeof(*st));
	memcpy(list, h->cgroup, sizeof(list));
	if (!list[0])
		return -ENOENT;
	for (char *d = strtok_r(list, "\n", &save); d; d = strtok_r(NULL, "\n", &save))
		(void)dir_figures(d, NULL, st, NULL, false);
	return 0;
}
