/* SPDX-License-Identifier: MIT */
/*
 * Handler isolation. sandbox_prepare() does everything that does not depend
 * on the request, once; sandbox_spawn() runs the plan:
 *
 *   parent: env, pipes, the handler's cgroups (made with their limits, each
 *           cgroup.procs opened) -> clone(CLONE_VM | CLONE_VFORK |
 *           CLONE_PIDFD | NEWNS | NEWPID | NEWIPC | NEWUTS) on a stack in
 *           its own frame -> suspended until the child execs or fails ->
 *           reads the error pipe: EOF means exec, a record a failed step.
 *   child:  the flat list of steps in child_main(), each reporting
 *           (step, object, errno) through the error pipe if it fails: it
 *           joins the sandbox netns and cgroups, builds the root as host
 *           root, then takes the handler's uid/gid and only then creates
 *           its own user namespace (see the comment above child_main()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "sandbox/internal.h"
#include "sandbox/warm.h"

#define ROOT_DIR "/tmp/.postern-root"	/* empty mount point for the new root */
#define HIGH_FD 900			/* scratch fds while arranging 0..n */
#define ERR_FD 1000			/* the error pipe while arranging */
#define ENV_MAX 128
#define ARGV_MAX 256			/* handler argv entries postern-warm passes on */
#define CHILD_STACK (64 * 1024)		/* on the caller's stack during a spawn */

struct sandbox {
	char *name;
	char **argv;
	char **env;		/* base environment, "K=V" */
	size_t n_env;
	uid_t uid;
	gid_t gid;
	struct sandbox_mount *mounts;
	size_t n_mounts;
	bool has_proc;
	int tmpl_fd;		/* mount namespace holding the root, which each
				 * handler copies; -1: each builds its own */
	int ll_fd;		/* Landlock ruleset each handler restricts itself
				 * with (landlock.c); -1: none on this kernel */
	const char *preload_interp;	/* pre-warmed handlers run under this loader
					 * can wait in their own process
					 * (postern-warm.so); NULL: never */
	enum sandbox_socket_mode socket_mode;
	struct sandbox_limits limits;
	struct sock_fprog prog;
	int cap_last_cap;
	char uid_map[32], gid_map[32];	/* "ID ID 1": the same id inside */
	struct sb_cg cg;	/* its handlers' cgroups (cgroup.c) */
};

/* The report a child sends when a step fails. */
struct child_err {
	int err;
	char step[32];
	char object[400];
};

void sb_error(struct sandbox_error *e, int err, const char *step, const char *fmt, ...)
{
	if (!e)
		return;
	va_list ap;
	e->err = err;
	snprintf(e->step, sizeof(e->step), "%s", step);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- prepare ---------------------------------------------------------------------- */

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static char **copy_strv(const char *const *v, size_t extra, size_t *n_out)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = calloc(n + extra + 1, sizeof(char *));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(v[i]))) {
			free_strv(c);
			return NULL;
		}
	if (n_out)
		*n_out = n;
	return c;
}

int sandbox_destroy(struct sandbox *sb, struct sandbox_error *err)
{
	if (!sb)
		return 0;
	int r = sb_cg_destroy(&sb->cg, err);
	pthread_mutex_destroy(&sb->cg.lock);
	free(sb->name);
	free_strv(sb->argv);
	free_strv(sb->env);
	for (size_t i = 0; i < sb->n_mounts; i++) {
		free((char *)sb->mounts[i].src);
		free((char *)sb->mounts[i].dst);
		free((char *)sb->mounts[i].target);
	}
	free(sb->mounts);
	free(sb->prog.filter);
	if (sb->tmpl_fd >= 0)
		close(sb->tmpl_fd);
	if (sb->ll_fd >= 0)
		close(sb->ll_fd);
	free(sb);
	return r;
}

void sandbox_free(struct sandbox *sb)
{
	sandbox_destroy(sb, NULL);
}

/* The dynamic loader this program runs under (its PT_INTERP), which
 * postern-warm.so was built for; NULL when static. */
static int interp_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_INTERP)
			*(const char **)data = (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	return 1;	/* the first object is the program itself */
}

static const char *own_interp_path;
static pthread_once_t own_interp_once = PTHREAD_ONCE_INIT;

static void own_interp_find(void)
{
	dl_iterate_phdr(interp_cb, &own_interp_path);
}

static const char *own_interp(void)
{
	pthread_once(&own_interp_once, own_interp_find);
	return own_interp_path;
}

static void tmpl_build(struct sandbox *sb);

int sandbox_prepare(const struct sandbox_config *cfg, struct sandbox **out,
		    struct sandbox_error *err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	int r = -ENOMEM;

	*out = NULL;
	if (!sb)
		goto oom;
	sb->tmpl_fd = sb->ll_fd = -1;
	pthread_mutex_init(&sb->cg.lock, NULL);
	if (!cfg->name || !cfg->argv || !cfg->argv[0] || cfg->argv[0][0] != '/') {
		sb_error(err, EINVAL, "config", "sandbox \"%s\": exec must be an absolute path",
			 cfg->name ? cfg->name : "?");
		free(sb);
		return -EINVAL;
	}
	if (cfg->uid == 0 || cfg->gid == 0) {
		sb_error(err, EPERM, "config", "sandbox \"%s\": refusing to run handlers as root",
			 cfg->name);
		free(sb);
		return -EPERM;
	}
	if (!(sb->name = strdup(cfg->name)) || !(sb->argv = copy_strv(cfg->argv, 0, NULL)))
		goto oom;
	/* base environment: the policy's, plus PATH unless it has one */
	if (!(sb->env = copy_strv(cfg->env, 1, &sb->n_env)))
		goto oom;
	bool has_path = false;
	for (size_t i = 0; i < sb->n_env; i++)
		has_path |= !strncmp(sb->env[i], "PATH=", 5);
	if (!has_path && !(sb->env[sb->n_env++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin")))
		goto oom;
	/* postern-warm.so is preloaded with LD_PRELOAD, so not where the
	 * policy sets one of its own */
	sb->preload_interp = own_interp();
	for (size_t i = 0; i < sb->n_env; i++)
		if (!strncmp(sb->env[i], "LD_PRELOAD=", 11))
			sb->preload_interp = NULL;
	sb->uid = cfg->uid;
	sb->gid = cfg->gid;
	sb->socket_mode = cfg->socket_mode;
	sb->limits = cfg->limits;
	if (cfg->n_mounts) {
		sb->mounts = calloc(cfg->n_mounts, sizeof(*sb->mounts));
		if (!sb->mounts)
			goto oom;
		for (size_t i = 0; i < cfg->n_mounts; i++) {
			const struct sandbox_mount *m = &cfg->mounts[i];
			struct sandbox_mount *c = &sb->mounts[sb->n_mounts++];
			*c = *m;
			c->src = xstrdup(m->src);
			c->dst = xstrdup(m->dst);
			c->target = xstrdup(m->target);
			if ((m->src && !c->src) || !c->dst || (m->target && !c->target))
				goto oom;
			if (!c->dst[0] || c->dst[0] != '/' || strlen(c->dst) > 1024) {
				sb_error(err, EINVAL, "config", "sandbox \"%s\": mount destination \"%s\" must be absolute",
					 cfg->name, c->dst);
				sandbox_free(sb);
				return -EINVAL;
			}
			sb->has_proc |= m->kind == SANDBOX_MOUNT_PROC;
		}
	}
	if ((r = sb_seccomp_compile(cfg, &sb->prog, err)) < 0 ||
	    (r = sb_landlock_ruleset(cfg, &sb->ll_fd, err)) < 0) {
		sandbox_free(sb);
		return r;
	}
	snprintf(sb->uid_map, sizeof(sb->uid_map), "%u %u 1\n", (unsigned)sb->uid, (unsigned)sb->uid);
	snprintf(sb->gid_map, sizeof(sb->gid_map), "%u %u 1\n", (unsigned)sb->gid, (unsigned)sb->gid);
	sb->cap_last_cap = CAP_LAST_CAP;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &sb->cap_last_cap) != 1 || sb->cap_last_cap < 0 ||
		    sb->cap_last_cap > 63)
			sb->cap_last_cap = CAP_LAST_CAP;
		fclose(f);
	}
	if (mkdir(ROOT_DIR, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		sb_error(err, errno, "root", "sandbox \"%s\": mkdir %s: %s", cfg->name, ROOT_DIR,
			 strerror(errno));
		sandbox_free(sb);
		return r;
	}
	tmpl_build(sb);
	if ((r = sb_cg_prepare(&sb->cg, cfg->cgroup_name, sb->name, &sb->limits, err)) < 0) {
		sandbox_free(sb);
		return r;
	}
	*out = sb;
	return 0;
oom:
	sb_error(err, ENOMEM, "prepare", "sandbox \"%s\": prepare: %s", cfg->name ? cfg->name : "?",
		 strerror(ENOMEM));
	sandbox_free(sb);
	return -ENOMEM;
}

/* ---- the child ------------------------------------------------------------------------ */

struct child_args {
	struct sandbox *sb;
	const struct sandbox_spawn_args *a;
	char *const *envp;
	int err_fd;		/* write end, CLOEXEC */
	int errw;		/* write end of the handler's stderr pipe */
	int procs[CG_N];	/* cgroup.procs to enter, or -1 */
	bool warm;		/* pre-warmed: wait on err_fd for the request */
	bool preload;		/* set by the child: waits in the handler itself
				 * (postern-warm.so), else in postern-warm */
	int warm_fd;		/* postern-warm (memfd), or -1 */
	uint64_t t[SANDBOX_PHASE_COUNT];	/* when each phase ended (the child
						 * writes them: memory is shared) */
};

const char *const sandbox_phase_names[SANDBOX_PHASE_COUNT] = {
	[SANDBOX_PHASE_PREPARE] = "prepare",	 [SANDBOX_PHASE_CLONE] = "clone",
	[SANDBOX_PHASE_NAMESPACES] = "namespaces", [SANDBOX_PHASE_ROOT] = "root",
	[SANDBOX_PHASE_IDENTITY] = "identity",	 [SANDBOX_PHASE_SECCOMP] = "seccomp",
	[SANDBOX_PHASE_EXEC] = "exec",
};

static __attribute__((noreturn)) void child_fail(int fd, int e, const char *step, const char *fmt, ...)
{
	struct child_err ce = { .err = e };
	va_list ap;
	snprintf(ce.step, sizeof(ce.step), "%s", step);
	va_start(ap, fmt);
	vsnprintf(ce.object, sizeof(ce.object), fmt, ap);
	va_end(ap);
	ssize_t w = write(fd, &ce, sizeof(ce));
	(void)w;
	_exit(127);
}

/* openat2() that never follows a symlink, nor a /proc magic link. */
static int open_nofollow(int dirfd, const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/*
 * Mount points inside the new root, found and made from the root's fd one
 * component at a time, never through a symlink. Part of the root can be a
 * host directory a handler writes (an rw bind, or an entry under one): had
 * it replaced a directory there with a symlink, a path-based mkdir, create
 * or mount (by a child that is still host root, in a copy of the host's
 * tree) would have made files, or mounted, wherever the link points, up to
 * the host's /. Here that component is ELOOP. The policy's own symlink
 * entries are not followed either (the loader refuses an entry under one).
 */

/* The parent directory of dst (absolute) inside the root at rootfd,
 * directories made as needed, as an O_PATH fd; *name: dst's last component
 * (in buf). Returns the fd or -errno. */
static int root_parent(int rootfd, const char *dst, char *buf, size_t len, const char **name)
{
	snprintf(buf, len, "%s", dst);
	char *p = buf;
	while (*p == '/')
		p++;
	int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	for (char *slash; (slash = strchr(p, '/'));) {
		*slash = 0;
		if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(fd);
			return -e;
		}
		int next = open_nofollow(fd, p, O_PATH | O_DIRECTORY);
		int e = errno;
		close(fd);
		if (next < 0)
			return -e;
		fd = next;
		for (p = slash + 1; *p == '/'; p++)
			;
	}
	*name = p;
	return fd;
}

/* dst's mount point inside the root at rootfd, made as needed: a directory,
 * or a file when !dir (made with O_EXCL: an existing one is never opened
 * for writing, so a FIFO there cannot block). An O_PATH fd or -errno. */
static int root_mountpoint(int rootfd, const char *dst, bool dir, mode_t mode)
{
	char buf[PATH_MAX];
	const char *name;
	int pfd = root_parent(rootfd, dst, buf, sizeof(buf), &name);
	if (pfd < 0)
		return pfd;
	int r = 0;
	if (dir) {
		if (mkdirat(pfd, name, mode) < 0 && errno != EEXIST)
			r = -errno;
	} else {
		int f = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			       0644);
		if (f >= 0)
			close(f);
		else if (errno != EEXIST)
			r = -errno;
	}
	int fd = r < 0 ? -1 : open_nofollow(pfd, name, O_PATH | (dir ? O_DIRECTORY : 0));
	if (r == 0 && fd < 0)
		r = -errno;
	close(pfd);
	return fd >= 0 ? fd : r;
}

/* The entries made per handler even when the root is copied from the
 * template: a tmpfs and a proc are the handler's own. */
static bool per_handler(const struct sandbox_mount *m)
{
	return m->kind == SANDBOX_MOUNT_TMPFS || m->kind == SANDBOX_MOUNT_PROC;
}

/* A bind: its source opened without following any symlink (a handler that
 * writes a directory above the source could have replaced the source with
 * one), the tree there cloned, made nosuid, nodev (and ro) on every
 * submount while it is still detached, and moved onto its mount point. */
static void bind_entry(int efd, const struct sandbox_mount *m, int rootfd)
{
	int sfd = open_nofollow(AT_FDCWD, m->src, O_PATH);
	if (sfd < 0)
		child_fail(efd, errno, "bind", "%s -> %s%s", m->src, m->dst,
			   errno == ELOOP ? " (a symlink in the source path: bind sources are not followed)" : "");
	struct stat st;
	if (fstat(sfd, &st) < 0)
		child_fail(efd, errno, "bind", "%s -> %s (stat)", m->src, m->dst);
	int tfd = (int)syscall(SYS_open_tree, sfd, "",
			       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
	if (tfd < 0)
		child_fail(efd, errno, "bind", "%s -> %s (open_tree)", m->src, m->dst);
	close(sfd);
	/* mount_setattr() only adds flags, so flags locked on the source stay */
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					       (m->rw ? 0 : MOUNT_ATTR_RDONLY) };
	if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		child_fail(efd, errno, "bind", "%s -> %s (set %s)", m->src, m->dst,
			   m->rw ? "nosuid,nodev" : "ro,nosuid,nodev");
	int dfd = root_mountpoint(rootfd, m->dst, S_ISDIR(st.st_mode), 0755);
	if (dfd < 0)
		child_fail(efd, -dfd, "bind", "%s -> %s (mount point%s)", m->src, m->dst,
			   dfd == -ELOOP ? ": a symlink on the way, not followed" : "");
	if (syscall(SYS_move_mount, tfd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		child_fail(efd, errno, "bind", "%s -> %s", m->src, m->dst);
	close(tfd);
	close(dfd);
}

/* One entry of the root at rootfd (the new root while building, or "/"
 * inside it). A tmpfs or proc is mounted on the mount point as the cwd
 * (then the cwd is rootfd again). */
static void setup_mount(int efd, const struct sandbox_mount *m, int rootfd)
{
	const char *step = m->kind == SANDBOX_MOUNT_BIND    ? "bind"
			   : m->kind == SANDBOX_MOUNT_TMPFS ? "tmpfs"
			   : m->kind == SANDBOX_MOUNT_PROC  ? "proc"
							    : "symlink";
	const char *loop = " (a symlink on the way, not followed)";
	switch (m->kind) {
	case SANDBOX_MOUNT_BIND:
		bind_entry(efd, m, rootfd);
		break;
	case SANDBOX_MOUNT_TMPFS:
	case SANDBOX_MOUNT_PROC: {
		bool tmpfs = m->kind == SANDBOX_MOUNT_TMPFS;
		int dfd = root_mountpoint(rootfd, m->dst, true, tmpfs ? 0755 : 0555);
		if (dfd < 0)
			child_fail(efd, -dfd, step, "%s (mkdir)%s", m->dst, dfd == -ELOOP ? loop : "");
		if (fchdir(dfd) < 0)
			child_fail(efd, errno, step, "%s (chdir)", m->dst);
		close(dfd);
		char opt[64];
		if (tmpfs && m->size)
			snprintf(opt, sizeof(opt), "size=%llu,mode=1777", (unsigned long long)m->size);
		else
			snprintf(opt, sizeof(opt), "mode=1777");
		if (tmpfs ? mount("tmpfs", ".", "tmpfs", MS_NOSUID | MS_NODEV, opt) < 0
			  : mount("proc", ".", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			child_fail(efd, errno, step, "%s", m->dst);
		if (fchdir(rootfd) < 0)
			child_fail(efd, errno, step, "%s (chdir back)", m->dst);
		break;
	}
	case SANDBOX_MOUNT_SYMLINK: {
		char buf[PATH_MAX];
		const char *name;
		int pfd = root_parent(rootfd, m->dst, buf, sizeof(buf), &name);
		if (pfd < 0)
			child_fail(efd, -pfd, step, "%s -> %s%s", m->dst, m->target, pfd == -ELOOP ? loop : "");
		if (symlinkat(m->target, pfd, name) < 0)
			child_fail(efd, errno, step, "%s -> %s", m->dst, m->target);
		close(pfd);
		break;
	}
	}
}

static void setup_dev(int efd, bool has_proc)
{
	/* made in place (the child is still host root): one mknod each, where
	 * binding the host's nodes costs a create, a bind and a remount */
	static const struct {
		const char *name;
		unsigned minor;
	} nodes[] = { { "null", 3 }, { "zero", 5 }, { "full", 7 }, { "random", 8 }, { "urandom", 9 } };
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/dev", ROOT_DIR);
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		child_fail(efd, errno, "dev", "/dev (mkdir)");
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") < 0)
		child_fail(efd, errno, "dev", "/dev (tmpfs)");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		snprintf(p, sizeof(p), "%s/dev/%s", ROOT_DIR, nodes[i].name);
		if (mknod(p, S_IFCHR | 0666, makedev(1, nodes[i].minor)) < 0)
			child_fail(efd, errno, "dev", "/dev/%s", nodes[i].name);
	}
	if (has_proc) {
		static const char *const links[][2] = { { "fd", "/proc/self/fd" },
							{ "stdin", "/proc/self/fd/0" },
							{ "stdout", "/proc/self/fd/1" },
							{ "stderr", "/proc/self/fd/2" } };
		for (size_t i = 0; i < 4; i++) {
			snprintf(p, sizeof(p), "%s/dev/%s", ROOT_DIR, links[i][0]);
			if (symlink(links[i][1], p) < 0)
				child_fail(efd, errno, "dev", "/dev/%s", links[i][0]);
		}
	}
	snprintf(p, sizeof(p), "%s/dev", ROOT_DIR);
	mount(NULL, p, NULL, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "size=64k,mode=0755");
}

/* Put the fds where the handler expects them; close every other one except
 * the error pipe and those returned right above the targets: *procfd (the
 * host's /proc/<pid>, O_PATH) for the user namespace's maps, *warm_fd
 * (postern-warm) and *ll_fd (the Landlock ruleset) when there are. All
 * CLOEXEC. */
static void arrange_fds(int efd, const struct child_args *c, int *procfd, int *warm_fd, int *ll_fd)
{
	const struct sandbox_spawn_args *a = c->a;
	int errw = c->errw;
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		child_fail(efd, errno, "fds", "/dev/null");
	struct {
		int src, dst;
	} map[3 + 64 + 8];
	size_t n = 0;
	int in = a->stdin_fd >= 0 ? a->stdin_fd : devnull;
	if (c->sb->socket_mode == SANDBOX_SOCKET_STDIO && a->sock_fd >= 0) {
		map[n].src = a->stdin_fd >= 0 ? a->stdin_fd : a->sock_fd, map[n++].dst = 0;
		map[n].src = a->sock_fd, map[n++].dst = 1;
	} else {
		map[n].src = in, map[n++].dst = 0;
		map[n].src = errw, map[n++].dst = 1;
		if (a->sock_fd >= 0)
			map[n].src = a->sock_fd, map[n++].dst = 3;
	}
	map[n].src = errw, map[n++].dst = 2;
	for (size_t i = 0; i < a->n_fds && n < sizeof(map) / sizeof(map[0]); i++)
		map[n].src = a->fds[i].fd, map[n++].dst = a->fds[i].target;

	int maxdst = 2;
	/* first copy every source and the kept fds above the target range,
	 * then place them */
	int *keep[] = { procfd, warm_fd, ll_fd };
	static const char *const kept[] = { "keep /proc/self", "keep postern-warm", "keep the Landlock ruleset" };
	for (size_t i = 0; i < 3; i++)
		if (*keep[i] >= 0 && (*keep[i] = fcntl(*keep[i], F_DUPFD_CLOEXEC, HIGH_FD)) < 0)
			child_fail(efd, errno, "fds", "%s", kept[i]);
	int tmp[sizeof(map) / sizeof(map[0])];
	for (size_t i = 0; i < n; i++) {
		tmp[i] = fcntl(map[i].src, F_DUPFD_CLOEXEC, HIGH_FD);
		if (tmp[i] < 0)
			child_fail(efd, errno, "fds", "dup fd %d", map[i].src);
	}
	for (size_t i = 0; i < n; i++) {
		if (dup2(tmp[i], map[i].dst) < 0)
			child_fail(efd, errno, "fds", "fd %d -> %d", map[i].src, map[i].dst);
		if (map[i].dst > maxdst)
			maxdst = map[i].dst;
	}
	/* the kept fds right above the targets, then everything else goes */
	int first = maxdst + 1;
	for (size_t i = 0; i < 3; i++) {
		if (*keep[i] < 0)
			continue;
		if (dup3(*keep[i], first, O_CLOEXEC) < 0)
			child_fail(efd, errno, "fds", "%s", kept[i]);
		*keep[i] = first++;
	}
	if (efd > first)
		syscall(SYS_close_range, first, efd - 1, 0);
	syscall(SYS_close_range, efd + 1, ~0U, 0);
}

/* Write one of our own /proc files (uid_map, setgroups, gid_map) after
 * taking the handler's uid. They are ours to open only while our memory
 * (mm) is dumpable, and every vfork-style child shares the broker's mm:
 * another child taking its own uid at the same moment makes it non-dumpable
 * again. So: mark it dumpable and open, a bounded number of times. */
static int write_at(int dirfd, const char *file, const char *data)
{
	int fd = -1;
	for (int tries = 0; tries < 1000 && fd < 0; tries++) {
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
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

/* The handler's environment: the sandbox's, the request's, then LISTEN_*
 * (nlisten fds from 3: listeners of a startup handler, or the connection). */
struct env_bufs {
	char lfds[32], lnames[64];
};

static void make_envp(const struct sandbox *sb, const char *const *extra, int nlisten,
		      bool listeners, char **envp, struct env_bufs *b)
{
	size_t n = 0;
	for (size_t i = 0; i < sb->n_env && n < ENV_MAX; i++)
		envp[n++] = sb->env[i];
	for (size_t i = 0; extra && extra[i] && n < ENV_MAX; i++)
		envp[n++] = (char *)extra[i];
	if (nlisten) {
		snprintf(b->lfds, sizeof(b->lfds), "LISTEN_FDS=%d", nlisten);
		snprintf(b->lnames, sizeof(b->lnames), "LISTEN_FDNAMES=%s", listeners ? "listener" : "connection");
		envp[n++] = b->lfds;
		envp[n++] = (char *)"LISTEN_PID=1";
		envp[n++] = b->lnames;
	}
	envp[n] = NULL;
}

static int listen_count(const struct sandbox *sb, const struct sandbox_spawn_args *a, bool has_sock)
{
	return a->listen_fds > 0 ? a->listen_fds
	       : (sb->socket_mode == SANDBOX_SOCKET_LISTEN_FDS && has_sock) ? 1 : 0;
}

/* postern-warm.so (sandbox/waiter/postern-warm-preload.c), embedded at
 * build time (Makefile); a pre-warmed handler that can wait in its own
 * process finds it here in its root. */
extern const char pst_warm_so_blob[], pst_warm_so_blob_end[];
#define WARM_SO_PATH "/.postern-warm.so"

/* Whether the program at path (inside the new root) runs under the dynamic
 * loader interp, so postern-warm.so can be preloaded into it: an ELF of our
 * class with that PT_INTERP, or a "#!" script whose interpreter is one. */
static bool preloadable(const char *path, const char *interp, int depth)
{
	union {
		ElfW(Ehdr) eh;
		char b[256];
	} u;
	ElfW(Phdr) ph[32];
	char want[256];
	bool ok = false;
	/* never a wait: the exec path may lie in an rw bind, where a handler
	 * can have replaced the program with a FIFO (whose open would block
	 * until a writer comes, holding the broker's thread in the vfork).
	 * Symlinks are followed (/bin/sh -> dash is common): this runs inside
	 * the handler's root, where a link reaches nothing but the root, and
	 * whatever the path leads to must be a regular file. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return false;
	}
	ssize_t n = pread(fd, u.b, sizeof(u.b) - 1, 0);
	if (n > 2 && u.b[0] == '#' && u.b[1] == '!') {
		close(fd);
		u.b[n] = 0;
		char *p = u.b + 2 + strspn(u.b + 2, " \t");
		p[strcspn(p, " \t\n")] = 0;
		return depth == 0 && p[0] == '/' && preloadable(p, interp, 1);
	}
	if (n >= (ssize_t)sizeof(u.eh) && !memcmp(u.eh.e_ident, ELFMAG, SELFMAG) &&
	    u.eh.e_ident[EI_CLASS] == (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) &&
	    u.eh.e_phentsize == sizeof(ph[0]) && u.eh.e_phnum > 0 && u.eh.e_phnum <= 32) {
		size_t len = u.eh.e_phnum * sizeof(ph[0]);
		if (pread(fd, ph, len, (off_t)u.eh.e_phoff) == (ssize_t)len)
			for (int i = 0; i < u.eh.e_phnum; i++) {
				if (ph[i].p_type != PT_INTERP || !ph[i].p_filesz ||
				    ph[i].p_filesz > sizeof(want))
					continue;
				ssize_t m = pread(fd, want, ph[i].p_filesz, (off_t)ph[i].p_offset);
				ok = m == (ssize_t)ph[i].p_filesz && !want[m - 1] && !strcmp(want, interp);
			}
	}
	close(fd);
	return ok;
}

/* postern-warm.so into the new root (before it turns read-only) */
static void write_warm_so(int efd)
{
	int fd = open(WARM_SO_PATH, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		child_fail(efd, errno, "prewarm", "create %s", WARM_SO_PATH);
	size_t len = (size_t)(pst_warm_so_blob_end - pst_warm_so_blob), off = 0;
	while (off < len) {
		ssize_t w = write(fd, pst_warm_so_blob + off, len - off);
		if (w <= 0)
			child_fail(efd, w < 0 ? errno : EIO, "prewarm", "write %s", WARM_SO_PATH);
		off += (size_t)w;
	}
	close(fd);
}

/*
 * Build the sandbox's root in the caller's own mount namespace and pivot
 * into it: an empty tmpfs, the declared entries, /dev, read-only. tmpl: for
 * the template (sandbox_prepare()), where the per-handler entries get only
 * their mount points and postern-warm.so is written when *so. Else it is
 * written when *so and the handler can wait exec'd; *so says whether.
 */
static void build_root(int efd, const struct sandbox *sb, bool tmpl, bool *so)
{
	/* modes as given (0666 device nodes); the child has its own umask */
	umask(0);
	/* nothing we mount may propagate back to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(efd, errno, "mount", "make / private");
	if (mount("tmpfs", ROOT_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
		child_fail(efd, errno, "root", "tmpfs on %s", ROOT_DIR);
	int rootfd = open(ROOT_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		child_fail(efd, errno, "root", "open %s", ROOT_DIR);
	for (size_t i = 0; i < sb->n_mounts; i++) {
		const struct sandbox_mount *m = &sb->mounts[i];
		if (!tmpl || !per_handler(m)) {
			setup_mount(efd, m, rootfd);
			continue;
		}
		int fd = root_mountpoint(rootfd, m->dst, true, m->kind == SANDBOX_MOUNT_PROC ? 0555 : 0755);
		if (fd < 0)
			child_fail(efd, -fd, "mkdir", "%s%s", m->dst,
				   fd == -ELOOP ? " (a symlink on the way, not followed)" : "");
		close(fd);
	}
	close(rootfd);
	setup_dev(efd, sb->has_proc);
	if (chdir(ROOT_DIR) < 0)
		child_fail(efd, errno, "pivot_root", "chdir %s", ROOT_DIR);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(efd, errno, "pivot_root", "%s", ROOT_DIR);
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(efd, errno, "pivot_root", "detach old root");
	if (chdir("/") < 0)
		child_fail(efd, errno, "pivot_root", "chdir /");
	*so = *so && (tmpl || preloadable(sb->argv[0], sb->preload_interp, 0));
	if (*so)
		write_warm_so(efd);
	/* the root itself is read-only: only declared paths can be written */
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		child_fail(efd, errno, "root", "remount / read-only");
}

/*
 * The child runs on a stack in sandbox_spawn()'s frame and shares the
 * broker's memory (CLONE_VM) while the broker's thread is suspended
 * (CLONE_VFORK) until exec or exit. So it allocates nothing, changes no
 * shared state but its own child_args, uses raw syscalls where glibc would
 * touch process-wide state (set*id broadcasts to threads), and reports a
 * failing step through the CLOEXEC error pipe.
 *
 * It does its setup as host root, in namespaces owned by the initial user
 * namespace, and creates its own user namespace last, after taking the
 * handler's uid and gid:
 *  - no round trip to the parent for uid/gid maps: a process may map its
 *    own euid into a namespace it creates;
 *  - setns() into the sandbox's network namespace needs CAP_SYS_ADMIN over
 *    its owner (the initial user namespace), which host root has;
 *  - creating mount points and reading root-only bind sources works (an
 *    unmapped host root in a fresh user namespace gets EOVERFLOW/EACCES);
 *  - every namespace the handler lives in is owned by the initial user
 *    namespace, so even the full capability set of its own user namespace
 *    (dropped anyway) could not mount, unmount or remount anything there.
 */
static int child_main(void *arg)
{
	struct child_args *c = arg;
	struct sandbox *sb = c->sb;
	int efd = c->err_fd;

	c->t[SANDBOX_PHASE_CLONE] = now_ns();
	/* every disposition to default: the handler must not inherit the
	 * broker's SIG_IGN, and no broker handler may run on this stack.
	 * Signals stay blocked (as the parent left them) until just before
	 * seccomp. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, _NSIG / 8);

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(efd, errno, "pdeathsig", "");
	if (c->a->netns_fd >= 0 && setns(c->a->netns_fd, CLONE_NEWNET) < 0)
		child_fail(efd, errno, "netns", "join the sandbox network namespace");
	/* enter the handler's cgroups before anything can fork, then root a
	 * cgroup namespace there */
	for (int i = 0; i < CG_N; i++)
		if (c->procs[i] >= 0 && write(c->procs[i], "0", 1) != 1)
			child_fail(efd, errno, "cgroup", "enter the handler's cgroup");
	if (unshare(CLONE_NEWCGROUP) < 0)
		child_fail(efd, errno, "cgroupns", "");
	if (sethostname(sb->name, strlen(sb->name)) < 0)
		child_fail(efd, errno, "hostname", "%s", sb->name);
	/* the error pipe goes high, so arranging fds cannot clobber it */
	if ((efd = fcntl(efd, F_DUPFD_CLOEXEC, ERR_FD)) < 0)
		_exit(125);
	int procfd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		child_fail(efd, errno, "fds", "/proc/self");
	/* into the root template before arranging fds closes its fd (its
	 * /dev/null is a device node like the host's); copied below */
	if (sb->tmpl_fd >= 0 && setns(sb->tmpl_fd, CLONE_NEWNS) < 0)
		child_fail(efd, errno, "root", "enter the root template");
	/* fds before the root is built: /dev/null is opened from the host */
	int warm_fd = c->warm_fd, ll_fd = sb->ll_fd;
	arrange_fds(efd, c, &procfd, &warm_fd, &ll_fd);
	c->t[SANDBOX_PHASE_NAMESPACES] = now_ns();

	/* the root: a copy of the sandbox's template with the handler's own
	 * tmpfs and proc mounts, or built here. A pre-warmed handler waits
	 * in its own process, after its exec, where postern-warm.so can be
	 * preloaded into it. */
	if (sb->tmpl_fd >= 0) {
		umask(0);
		if (unshare(CLONE_NEWNS) < 0)
			child_fail(efd, errno, "root", "copy the root template");
		int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rootfd < 0 || fchdir(rootfd) < 0)
			child_fail(efd, errno, "root", "chdir /");
		for (size_t i = 0; i < sb->n_mounts; i++)
			if (per_handler(&sb->mounts[i]))
				setup_mount(efd, &sb->mounts[i], rootfd);
		close(rootfd);
		c->preload = c->warm && sb->preload_interp && preloadable(sb->argv[0], sb->preload_interp, 0);
	} else {
		bool so = c->warm && sb->preload_interp;
		build_root(efd, sb, false, &so);
		c->preload = so;
	}
	c->t[SANDBOX_PHASE_ROOT] = now_ns();

	/* rlimits (RLIMIT_NPROC below, once the user namespace exists) */
	struct {
		int res;
		rlim_t v;
		const char *name;
	} rl[] = {
		{ RLIMIT_NOFILE, sb->limits.nofile, "nofile" },
		{ RLIMIT_FSIZE, sb->limits.fsize, "fsize" },
		{ RLIMIT_CPU, sb->limits.cpu_seconds, "cpu" },
		{ RLIMIT_CORE, 0, "core" },
	};
	for (size_t i = 0; i < sizeof(rl) / sizeof(rl[0]); i++) {
		if (!rl[i].v && rl[i].res != RLIMIT_CORE)
			continue;
		struct rlimit r = { rl[i].v, rl[i].v };
		if (setrlimit(rl[i].res, &r) < 0)
			child_fail(efd, errno, "rlimit", "%s", rl[i].name);
	}
	/* identity: no supplementary groups, the handler's gid and uid. Leaving
	 * uid 0 clears every host capability and the parent-death signal. */
	if (syscall(SYS_setgroups, 0, NULL) < 0)
		child_fail(efd, errno, "setgroups", "");
	if (syscall(SYS_setresgid, sb->gid, sb->gid, sb->gid) < 0)
		child_fail(efd, errno, "setresgid", "%u", (unsigned)sb->gid);
	if (syscall(SYS_setresuid, sb->uid, sb->uid, sb->uid) < 0)
		child_fail(efd, errno, "setresuid", "%u", (unsigned)sb->uid);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(efd, errno, "pdeathsig", "");
	/* the uid change made us non-dumpable, which leaves /proc/self owned
	 * by root and the maps unwritable until write_at() marks it dumpable
	 * again; execve decides this anew */
	if (unshare(CLONE_NEWUSER) < 0)
		child_fail(efd, errno, "userns", "");
	if (write_at(procfd, "uid_map", sb->uid_map) < 0)
		child_fail(efd, errno, "idmap", "uid_map %u", (unsigned)sb->uid);
	if (write_at(procfd, "setgroups", "deny") < 0)
		child_fail(efd, errno, "idmap", "setgroups deny");
	if (write_at(procfd, "gid_map", sb->gid_map) < 0)
		child_fail(efd, errno, "idmap", "gid_map %u", (unsigned)sb->gid);
	close(procfd);

	/* capabilities: the new user namespace granted a full set; all go */
	for (int cap = 0; cap <= sb->cap_last_cap; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(efd, errno, "caps", "bounding set drop %d", cap);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		child_fail(efd, errno, "caps", "ambient clear");
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	if (syscall(SYS_capset, &hdr, data) < 0)
		child_fail(efd, errno, "caps", "capset");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(efd, errno, "no_new_privs", "");
	/* a Landlock domain of its own (landlock.c): what it binds or signals
	 * stays with it, apart from the sandbox's other handlers */
	if (ll_fd >= 0) {
		if (syscall(SYS_landlock_restrict_self, ll_fd, 0) < 0)
			child_fail(efd, errno, "landlock", "restrict self");
		close(ll_fd);
	}
	if (sb->limits.nproc) {
		struct rlimit r = { sb->limits.nproc, sb->limits.nproc };
		if (setrlimit(RLIMIT_NPROC, &r) < 0)
			child_fail(efd, errno, "rlimit", "nproc");
	}
	c->t[SANDBOX_PHASE_IDENTITY] = now_ns();

	/* a clean signal mask for the handler; seccomp last, then execve */
	sigset_t none;
	sigemptyset(&none);
	(void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sb->prog) < 0)
		child_fail(efd, errno, "seccomp", "load filter");
	c->t[SANDBOX_PHASE_SECCOMP] = now_ns();
	const char *mode = sb->socket_mode == SANDBOX_SOCKET_STDIO ? "stdio" : "listen_fds";
	int startup_fds = c->a->listen_fds > 0 ? c->a->listen_fds : 0;
	if (c->preload) {
		/* exec the handler now; postern-warm.so waits before its main */
		char *penv[ENV_MAX + 8 + 3], pw[64];
		size_t k = 0;
		for (char *const *e = c->envp; *e && k < ENV_MAX + 8; e++)
			penv[k++] = *e;
		snprintf(pw, sizeof(pw), "POSTERN_WARM=%d:%s:%d", efd, mode, startup_fds);
		penv[k++] = (char *)"LD_PRELOAD=" WARM_SO_PATH;
		penv[k++] = pw;
		penv[k] = NULL;
		if (fcntl(efd, F_SETFD, 0) < 0)
			child_fail(efd, errno, "prewarm", "keep the request socket");
		execve(sb->argv[0], sb->argv, penv);
		child_fail(efd, errno, "exec", "%s", sb->argv[0]);
	}
	if (c->warm) {
		/* wait in postern-warm, which inherits the error socket */
		char fdnum[16], nl[16];
		char *wargv[5 + ARGV_MAX + 1];
		size_t k = 0;
		snprintf(fdnum, sizeof(fdnum), "%d", efd);
		snprintf(nl, sizeof(nl), "%d", startup_fds);
		wargv[k++] = (char *)"postern-warm";
		wargv[k++] = fdnum;
		wargv[k++] = (char *)mode;
		wargv[k++] = nl;
		wargv[k++] = (char *)"--";
		for (size_t i = 0; sb->argv[i] && i < ARGV_MAX; i++)
			wargv[k++] = sb->argv[i];
		wargv[k] = NULL;
		if (fcntl(efd, F_SETFD, 0) < 0)
			child_fail(efd, errno, "prewarm", "keep the request socket");
		syscall(SYS_execveat, warm_fd, "", wargv, c->envp, AT_EMPTY_PATH);
		child_fail(efd, errno, "prewarm", "exec postern-warm");
	}
	execve(sb->argv[0], sb->argv, c->envp);
	child_fail(efd, errno, "exec", "%s", sb->argv[0]);
}

/* ---- spawn ------------------------------------------------------------------------------ */

/* postern-warm, embedded at build time (Makefile), in a sealed memfd made
 * once per process: exec'd by fd, it needs no path inside any root. */
extern const char pst_warm_blob[], pst_warm_blob_end[];
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static int waiter_fd_locked(int *fd, const struct sandbox *sb, struct sandbox_error *err)
{
	if (*fd >= 0)
		return *fd;
	errno = 0;
	int m = memfd_create("postern-warm", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (m < 0 && errno == EINVAL)	/* before Linux 6.3: executable anyway */
		m = memfd_create("postern-warm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t len = (size_t)(pst_warm_blob_end - pst_warm_blob), off = 0;
	while (m >= 0 && off < len) {
		ssize_t w = write(m, pst_warm_blob + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (m < 0 || off != len ||
	    fcntl(m, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		int e = errno ? errno : EIO;
		sb_error(err, e, "prewarm", "sandbox \"%s\": load postern-warm into a memfd: %s", sb->name,
			 strerror(e));
		if (m >= 0)
			close(m);
		return -e;
	}
	*fd = m;
	return m;
}

static int waiter_fd(const struct sandbox *sb, struct sandbox_error *err)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int fd = -1;
	pthread_mutex_lock(&lock);
	int r = waiter_fd_locked(&fd, sb, err);
	pthread_mutex_unlock(&lock);
	return r;
}

/* The message of a child's failure record. */
static int child_error(const struct sandbox *sb, struct child_err *ce, struct sandbox_error *err)
{
	ce->step[sizeof(ce->step) - 1] = 0;
	ce->object[sizeof(ce->object) - 1] = 0;
	int e = ce->err ? ce->err : EIO;
	if (ce->object[0])
		sb_error(err, e, ce->step, "sandbox \"%s\": %s %s: %s", sb->name, ce->step, ce->object,
			 strerror(e));
	else
		sb_error(err, e, ce->step, "sandbox \"%s\": %s: %s", sb->name, ce->step, strerror(e));
	return -e;
}

/* One message on a SOCK_SEQPACKET socket with up to two fds attached.
 * Returns 0 or a negative errno. */
static int send_with_fds(int sock, const void *data, size_t len, const int *fds, int nfd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { (void *)data, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfd > 0) {
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfd * sizeof(int));
		struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
		memcpy(CMSG_DATA(ch), fds, (size_t)nfd * sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

/* Under AddressSanitizer the child's frames poison the shadow of the stack
 * array and it execs without running their epilogues; left so, the next
 * child (or whatever later lives at that address) trips over stale marks.
 * Clear them around each clone. */
static inline void asan_stack_clean(void *p, size_t n)
{
#if defined(__SANITIZE_ADDRESS__)
	__asan_unpoison_memory_region(p, n);
#else
	(void)p, (void)n;
#endif
}

/* clone(CLONE_VM | CLONE_VFORK | flags) of fn on the stack given, which
 * lives in the caller's frame: this thread is suspended until the child
 * execs or exits, with every signal blocked so that no handler of ours runs
 * on the child's stack. Returns the pid, or -1 with errno. */
static pid_t vfork_clone(int (*fn)(void *), char *stack, size_t size, int flags, void *arg,
			 int *pidfd)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	asan_stack_clean(stack, size);
	pid_t pid = clone(fn, stack + size, CLONE_VM | CLONE_VFORK | flags, arg, pidfd);
	int e = errno;
	asan_stack_clean(stack, size);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
}

/*
 * The root template: a mount namespace holding the sandbox's root, built
 * once here. A handler enters it and copies it (unshare) instead of
 * building its own: one copy of a few mounts where a spawn made a tmpfs, a
 * bind and an attribute change per entry and /dev, and pivoted and detached
 * the host's tree (whose copy it no longer makes either). Its tmpfs and
 * proc entries are still its own. Not when an entry lies under a tmpfs or
 * proc entry (it would be hidden by the handler's own), nor when the build
 * fails (a bind source missing now): each handler then builds its root,
 * and reports what fails, as before.
 */
struct tmpl_args {
	struct sandbox *sb;
	int err_fd;
	int ns_fd;
};

static int tmpl_main(void *arg)
{
	struct tmpl_args *t = arg;
	/* shares the caller's fds (CLONE_FILES): this one stays its */
	t->ns_fd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (t->ns_fd < 0)
		child_fail(t->err_fd, errno, "root", "template: open its mount namespace");
	bool so = t->sb->preload_interp != NULL;
	build_root(t->err_fd, t->sb, true, &so);
	_exit(0);
}

static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

static void tmpl_build(struct sandbox *sb)
{
	for (size_t i = 0; i < sb->n_mounts; i++)
		for (size_t j = 0; j < sb->n_mounts; j++)
			if (i != j && per_handler(&sb->mounts[i]) &&
			    path_under(sb->mounts[j].dst, sb->mounts[i].dst))
				return;
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return;
	char stack[CHILD_STACK] __attribute__((aligned(64)));
	struct tmpl_args ta = { .sb = sb, .err_fd = ep[1], .ns_fd = -1 };
	pid_t pid = vfork_clone(tmpl_main, stack, sizeof(stack), CLONE_FILES | CLONE_NEWNS | SIGCHLD,
				&ta, NULL);
	int st = -1;
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	close(ep[1]);
	struct child_err ce;
	ssize_t got = read(ep[0], &ce, sizeof(ce));
	close(ep[0]);
	if (pid > 0 && got == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && ta.ns_fd >= 0)
		sb->tmpl_fd = ta.ns_fd;
	else if (ta.ns_fd >= 0)
		close(ta.ns_fd);
}

/* Start a child, vfork-style, returning once it has exec'd the handler (a
 * pre-warmed one with postern-warm.so, h->preloaded) or postern-warm, with
 * h->ctl_fd to a pre-warmed one. */
static int launch(struct sandbox *sb, const struct sandbox_spawn_args *a, struct sandbox_handler *h,
		  bool warm, struct sandbox_error *err)
{
	uint64_t t0 = now_ns();
	int ep[2] = { -1, -1 }, se[2] = { -1, -1 };
	int pidfd = -1, r;
	char why[600];
	pid_t pid = -1;
	/* the child's stack: this thread is suspended while the child uses it */
	char stack[CHILD_STACK] __attribute__((aligned(64)));

	memset(h, 0, sizeof(*h));
	h->pidfd = h->stderr_fd = h->ctl_fd = h->req_fd = -1;
	h->pid = -1;

	char *envp[ENV_MAX + 8];
	struct env_bufs eb;
	make_envp(sb, a->extra_env, listen_count(sb, a, a->sock_fd >= 0), a->listen_fds > 0, envp, &eb);

	struct child_args ca = { .sb = sb, .a = a, .envp = envp, .warm = warm, .warm_fd = -1 };
	if (warm && (ca.warm_fd = waiter_fd(sb, err)) < 0)
		return ca.warm_fd;
	for (int i = 0; i < CG_N; i++)
		ca.procs[i] = -1;
	/* the error report: a pipe, or for a pre-warmed handler a socket that
	 * also carries "ready" and then the request */
	int er = warm ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ep) : pipe2(ep, O_CLOEXEC);
	if (er < 0 || pipe2(se, O_CLOEXEC) < 0) {
		r = -errno;
		sb_error(err, errno, "pipe", "sandbox \"%s\": pipe: %s", sb->name, strerror(errno));
		goto fail;
	}
	ca.err_fd = ep[1];
	ca.errw = se[1];
	why[0] = 0;
	if ((r = sb_cg_create(&sb->cg, h->cgroup, ca.procs, !warm, why, sizeof(why))) < 0) {
		sb_error(err, -r, "cgroup", "sandbox \"%s\": %s", sb->name, why);
		goto fail;
	}

	/* vfork-style: the child shares our memory and runs on the stack
	 * above while this thread is suspended until it execs or exits. No
	 * page tables to copy, no copy-on-write faults. */
	int flags = CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
		    (sb->tmpl_fd >= 0 ? 0 : CLONE_NEWNS) | (a->netns_fd >= 0 ? 0 : CLONE_NEWNET) | SIGCHLD;
	ca.t[SANDBOX_PHASE_PREPARE] = now_ns();
	pid = vfork_clone(child_main, stack, sizeof(stack), flags, &ca, &pidfd);
	int clone_errno = errno;
	uint64_t t_back = now_ns();
	if (pid < 0) {
		r = -clone_errno;
		sb_error(err, clone_errno, "clone", "sandbox \"%s\": clone: %s", sb->name,
			 strerror(clone_errno));
		goto fail;
	}
	close(ep[1]);
	ep[1] = -1;
	close(se[1]);
	se[1] = -1;
	for (int i = 0; i < CG_N; i++)
		if (ca.procs[i] >= 0) {
			close(ca.procs[i]);
			ca.procs[i] = -1;
		}
	if (warm) {
		/* it waits in postern-warm.so or postern-warm now (or failed:
		 * its record waits on the socket, or, in the handler's loader,
		 * it exits); sandbox_warm_ready() reads which */
		fcntl(ep[0], F_SETFL, fcntl(ep[0], F_GETFL) | O_NONBLOCK);
		fcntl(se[0], F_SETFL, fcntl(se[0], F_GETFL) | O_NONBLOCK);
		h->pid = pid;
		h->pidfd = pidfd;
		h->stderr_fd = se[0];
		h->ctl_fd = ep[0];
		h->preloaded = ca.preload;
		h->spawn_ns = now_ns() - t0;
		return 0;
	}

	/* EOF on the error pipe: exec happened; a record: a step failed */
	struct child_err ce;
	ssize_t got;
	do
		got = read(ep[0], &ce, sizeof(ce));
	while (got < 0 && errno == EINTR);
	close(ep[0]);
	ep[0] = -1;
	if (got > 0) {
		r = child_error(sb, &ce, err);
		goto fail_child;
	}

	fcntl(se[0], F_SETFL, fcntl(se[0], F_GETFL) | O_NONBLOCK);
	h->pid = pid;
	h->pidfd = pidfd;
	h->stderr_fd = se[0];
	h->spawn_ns = now_ns() - t0;
	/* the breakdown: each phase from the end of the one before */
	ca.t[SANDBOX_PHASE_EXEC] = t_back;
	uint64_t prev = t0;
	for (int i = 0; i < SANDBOX_PHASE_COUNT; i++) {
		uint64_t t = ca.t[i] > prev ? ca.t[i] : prev;
		h->phase_ns[i] = (uint32_t)(t - prev > UINT32_MAX ? UINT32_MAX : t - prev);
		prev = t;
	}
	return 0;

fail_child:
	if (pidfd >= 0)
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	else
		kill(pid, SIGKILL);
	waitpid(pid, NULL, __WALL);
fail:
	if (h->cgroup[0])
		sb_cg_remove(h->cgroup);
	for (int i = 0; i < CG_N; i++)
		if (ca.procs[i] >= 0)
			close(ca.procs[i]);
	for (int i = 0; i < 2; i++) {
		if (ep[i] >= 0)
			close(ep[i]);
		if (se[i] >= 0)
			close(se[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	h->pidfd = h->stderr_fd = -1;
	h->pid = -1;
	return r;
}

int sandbox_spawn(struct sandbox *sb, const struct sandbox_spawn_args *a,
		  struct sandbox_handler *h, struct sandbox_error *err)
{
	return launch(sb, a, h, false, err);
}

int sandbox_prewarm(struct sandbox *sb, const struct sandbox_spawn_args *a,
		    struct sandbox_handler *h, struct sandbox_error *err)
{
	if (a->sock_fd >= 0 || a->stdin_fd >= 0) {
		sb_error(err, EINVAL, "prewarm", "sandbox \"%s\": prewarm: the request's fds come with sandbox_release()",
			 sb->name);
		return -EINVAL;
	}
	return launch(sb, a, h, true, err);
}

int sandbox_warm_ready(struct sandbox *sb, struct sandbox_handler *h, struct sandbox_error *err)
{
	struct child_err ce;
	ssize_t n;
	do
		n = recv(h->ctl_fd, &ce, sizeof(ce), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (n == 1 && ((char *)&ce)[0] == 'R') {
		/* give it the far end of the request socket (sandbox/warm.h);
		 * only now: were the child to die with it unread, the record
		 * of a failed set-up would be lost to ECONNRESET */
		int rq[2], r = 0;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rq) < 0)
			r = -errno;
		else if ((r = send_with_fds(h->ctl_fd, "Q", 1, &rq[1], 1)) < 0)
			close(rq[0]);
		if (r < 0) {
			sb_error(err, -r, "prewarm", "sandbox \"%s\": pre-warmed handler %d: request socket: %s",
				 sb->name, (int)h->pid, strerror(-r));
			return r;
		}
		close(rq[1]);
		h->req_fd = rq[0];
		return 0;
	}
	if (n == (ssize_t)sizeof(ce))
		return child_error(sb, &ce, err);
	int e = n < 0 ? errno : EPIPE;
	sb_error(err, e, "prewarm", "sandbox \"%s\": pre-warmed handler %d: %s", sb->name, (int)h->pid,
		 n == 0 ? "exited during set-up" : strerror(e));
	return -e;
}

int sandbox_warm_wait(struct sandbox *sb, struct sandbox_handler *h, int timeout_ms,
		      struct sandbox_error *err)
{
	uint64_t until = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int r = sandbox_warm_ready(sb, h, err);
		if (r != -EAGAIN)
			return r;
		uint64_t now = now_ns();
		struct pollfd p = { .fd = h->ctl_fd, .events = POLLIN };
		if (now >= until || (poll(&p, 1, (int)((until - now) / 1000000u) + 1) < 0 && errno != EINTR)) {
			int e = now >= until ? ETIMEDOUT : errno;
			sb_error(err, e, "prewarm", "sandbox \"%s\": pre-warmed handler %d: wait: %s",
				 sb->name, (int)h->pid, strerror(e));
			return -e;
		}
	}
}

int sandbox_release(struct sandbox *sb, struct sandbox_handler *h, int sock_fd, int stdin_fd,
		    const char *const *extra_env, struct sandbox_error *err)
{
	char buf[WARM_MSG_MAX];
	struct warm_req rq = { .magic = WARM_MAGIC, .has_sock = sock_fd >= 0, .has_stdin = stdin_fd >= 0 };
	size_t off = sizeof(rq);
	for (size_t i = 0; extra_env && extra_env[i]; i++) {
		size_t l = strlen(extra_env[i]) + 1;
		if (off + l > sizeof(buf) || rq.n_env >= ENV_MAX) {
			sb_error(err, E2BIG, "release", "sandbox \"%s\": release: environment too large",
				 sb->name);
			return -E2BIG;
		}
		memcpy(buf + off, extra_env[i], l);
		off += l;
		rq.n_env++;
	}
	memcpy(buf, &rq, sizeof(rq));
	int fds[2], nfd = 0;
	if (sock_fd >= 0)
		fds[nfd++] = sock_fd;
	if (stdin_fd >= 0)
		fds[nfd++] = stdin_fd;
	/* queue the request where the handler is not waiting, drop our
	 * copies, then wake it (sandbox.h says why in this order) */
	int r = send_with_fds(h->req_fd, buf, off, fds, nfd);
	if (r < 0) {
		sb_error(err, -r, "release", "sandbox \"%s\": release pre-warmed handler %d: %s", sb->name,
			 (int)h->pid, strerror(-r));
		return r;
	}
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	/* a handler that died just now is seen exiting, like any other */
	char wake = WARM_WAKE;
	(void)send(h->ctl_fd, &wake, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	return 0;
}

int sandbox_kill(struct sandbox_handler *h)
{
	if (h->pidfd < 0)
		return -EBADF;
	int r = 0;
	if (syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		r = -errno;
	/* cgroup v2: every process of its cgroup too, also one that got out
	 * of its pid namespace's reach */
	(void)sb_cg_kill(h->cgroup);
	return r;
}

unsigned sandbox_cg_stock_missing(struct sandbox *sb)
{
	return sb_cg_stock_missing(&sb->cg);
}

int sandbox_cg_stock(struct sandbox *sb, struct sandbox_error *err)
{
	return sb_cg_stock(&sb->cg, err);
}

int sandbox_reap(struct sandbox_handler *h, int *wstatus)
{
	siginfo_t si;
	int r = 0;
	memset(&si, 0, sizeof(si));
	if (h->pidfd >= 0) {
		while (waitid(P_PIDFD, (id_t)h->pidfd, &si, WEXITED | __WALL) < 0) {
			if (errno != EINTR) {
				r = -errno;
				break;
			}
		}
	}
	if (r == 0 && wstatus) {
		if (si.si_code == CLD_EXITED)
			*wstatus = (si.si_status & 0xff) << 8;
		else
			*wstatus = (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
	}
	if (h->cgroup[0])
		sb_cg_remove(h->cgroup);
	if (h->pidfd >= 0)
		close(h->pidfd);
	if (h->stderr_fd >= 0)
		close(h->stderr_fd);
	if (h->ctl_fd >= 0)
		close(h->ctl_fd);
	if (h->req_fd >= 0)
		close(h->req_fd);
	h->pidfd = h->stderr_fd = h->ctl_fd = h->req_fd = -1;
	return r;
}
