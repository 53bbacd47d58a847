/* SPDX-License-Identifier: MIT */
/*
 * The handler's root file system: the mount plan (the config's entries,
 * checked at prepare), the mount point new roots are mounted on, and, in
 * the child (child_root() and what it calls), the root itself: an empty
 * tmpfs, the declared entries (binds by fd), a minimal /dev, pivot_root,
 * read-only. And the root template: that root built once per sandbox in a
 * mount namespace that each handler copies.
 *
 * The root mount point. A new root is attached to a directory this
 * process made for itself: ROOT_BASE/PID.XXXXXX (mkdtemp), in ROOT_BASE,
 * which must be root's and writable by nobody else (made 0700 when
 * missing), made by the first sandbox_prepare() and removed by the last
 * sandbox_destroy(). The child opens it without following a symlink,
 * checks that it is that directory (device and inode), makes the tmpfs
 * detached (fsopen, fsmount) and attaches it to that fd (move_mount): a
 * path another user could make first (a fixed name in /tmp, or a symlink
 * there) is never mounted on, nor followed. Each process holds an flock on
 * its directory; one that dies without removing it (SIGKILL) leaves it
 * empty and unlocked, and the next process to make its own removes it.
 *
 * Mount points inside the new root are found and made from the root's fd
 * one component at a time, never through a symlink. Part of the root can
 * be a host directory a handler writes (an rw bind, or an entry under
 * one): had it replaced a directory there with a symlink, a path-based
 * mkdir, create or mount (by a child that is still host root, in a copy of
 * the host's tree) would have made files, or mounted, wherever the link
 * points, up to the host's /. Here that component is ELOOP. The policy's
 * own symlink entries are not followed either (the loader refuses an
 * entry under one).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <linux/mount.h>
#include <linux/openat2.h>

#include "sandbox/internal.h"

#define ROOT_BASE "/run/postern-root" /* root's, 0700: the mount points of new roots */
#define LOOP_NOTE " (a symlink on the way, not followed)"

/* The root mount point of this process (see above). Set while a sandbox
 * holds it, so read without the lock by spawns (and their children). */
static struct {
	pthread_mutex_t lock;
	unsigned users;
	int fd; /* the directory, flock'ed while this process uses it */
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
} root_dir = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* openat2() that never follows a symlink, nor a /proc magic link. */
static int open_nofollow(int dirfd, const char *path, int flags)
{
	struct open_how how = {.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
	                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* ---- the root mount point -------------------------------------------------------------- */

/* ROOT_BASE, made 0700 when missing: a directory of root's nobody else can
 * write. Its fd, or a negative errno. */
static int root_base_open(const char *name, struct sandbox_error *err)
{
	if (mkdir(ROOT_BASE, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		sb_error(err, e, "root", ROOT_BASE, "sandbox \"%s\": mkdir %s: %s", name, ROOT_BASE,
		         strerror(e));
		return -e;
	}
	_cleanup_close_ int fd = open(ROOT_BASE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		sb_error(err, e, "root", ROOT_BASE, "sandbox \"%s\": open %s: %s%s", name,
		         ROOT_BASE, strerror(e),
		         e == ELOOP || e == ENOTDIR ? " (must be a directory, not a link)" : "");
		return -e;
	}
	if (st.st_uid != 0 || (st.st_mode & 022)) {
		sb_error(err, EPERM, "root", ROOT_BASE,
		         "sandbox \"%s\": %s: owned by uid %u with mode %04o: the mount points of "
		         "handler roots must be in a directory only root can write",
		         name, ROOT_BASE, (unsigned)st.st_uid, (unsigned)st.st_mode & 07777);
		return -EPERM;
	}
	return TAKE_FD(fd);
}

/* The directories of processes that are gone (their flock is free: also a
 * process of another pid namespace holds its own), removed. */
static void root_dirs_sweep(int bfd)
{
	int dfd = dup(bfd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		_cleanup_close_ int fd =
		    openat(bfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(bfd, e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* This process's directory, made and flock'ed while ROOT_BASE is (so that
 * no sweep takes it between the two); those of processes gone removed. */
static int root_dir_make(const char *name, struct sandbox_error *err)
{
	char path[PATH_MAX];
	struct stat st;
	_cleanup_close_ int bfd = root_base_open(name, err);
	if (bfd < 0)
		return bfd;
	flock(bfd, LOCK_EX);
	root_dirs_sweep(bfd);
	snprintf(path, sizeof(path), "%s/%d.XXXXXX", ROOT_BASE, (int)getpid());
	if (!mkdtemp(path)) {
		int e = errno;
		sb_error(err, e, "root", path, "sandbox \"%s\": mkdtemp %s: %s", name, path,
		         strerror(e));
		return -e;
	}
	_cleanup_close_ int fd = open_nofollow(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		sb_error(err, e, "root", path, "sandbox \"%s\": open %s: %s", name, path,
		         strerror(e));
		rmdir(path);
		return -e;
	}
	snprintf(root_dir.path, sizeof(root_dir.path), "%s", path);
	root_dir.dev = st.st_dev;
	root_dir.ino = st.st_ino;
	root_dir.fd = TAKE_FD(fd);
	return 0;
}

int sb_root_dir_get(struct sandbox *sb, struct sandbox_error *err)
{
	pthread_mutex_lock(&root_dir.lock);
	int r = root_dir.users ? 0 : root_dir_make(sb->name, err);
	if (r == 0) {
		root_dir.users++;
		sb->root_dir = true;
	}
	pthread_mutex_unlock(&root_dir.lock);
	return r;
}

void sb_root_dir_put(struct sandbox *sb)
{
	if (!sb->root_dir)
		return;
	sb->root_dir = false;
	pthread_mutex_lock(&root_dir.lock);
	if (--root_dir.users == 0) {
		rmdir(root_dir.path);
		root_dir.path[0] = 0;
		sb_close(&root_dir.fd);
	}
	pthread_mutex_unlock(&root_dir.lock);
}

/* ---- the mount plan ----------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int sb_mounts_copy(struct sandbox *sb, const struct sandbox_config *cfg, struct sandbox_error *err)
{
	if (!cfg->n_mounts)
		return 0;
	if (!(sb->mounts = calloc(cfg->n_mounts, sizeof(*sb->mounts))))
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
			sb_error(err, EINVAL, "config", c->dst,
			         "sandbox \"%s\": mount destination \"%s\" must be absolute",
			         cfg->name, c->dst);
			return -EINVAL;
		}
		sb->has_proc |= m->kind == SANDBOX_MOUNT_PROC;
	}
	return 0;
oom:
	sb_error(err, ENOMEM, "prepare", cfg->name, "sandbox \"%s\": prepare: %s", cfg->name,
	         strerror(ENOMEM));
	return -ENOMEM;
}

void sb_mounts_free(struct sandbox *sb)
{
	for (size_t i = 0; i < sb->n_mounts; i++) {
		free((char *)sb->mounts[i].src);
		free((char *)sb->mounts[i].dst);
		free((char *)sb->mounts[i].target);
	}
	free(sb->mounts);
	sb->mounts = NULL;
	sb->n_mounts = 0;
}

/* The entries made per handler even when the root is copied from the
 * template: a tmpfs and a proc are the handler's own. */
static bool per_handler(const struct sandbox_mount *m)
{
	return m->kind == SANDBOX_MOUNT_TMPFS || m->kind == SANDBOX_MOUNT_PROC;
}

static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

/* ---- mount points, by fd (in the child) ---------------------------------------------- */

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
		int f =
		    openat(pfd, name,
		           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
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

/* ---- the entries (in the child) ------------------------------------------------------------ */

/* A bind: its source opened without following any symlink (a handler that
 * writes a directory above the source could have replaced the source with
 * one), the tree there cloned, made nosuid, nodev (and ro) on every
 * submount while it is still detached, and moved onto its mount point. */
static void bind_entry(int efd, const struct sandbox_mount *m, int rootfd)
{
	int sfd = open_nofollow(AT_FDCWD, m->src, O_PATH);
	if (sfd < 0)
		child_fail(efd, errno, "bind", "%s -> %s%s", m->src, m->dst,
		           errno == ELOOP
		               ? " (a symlink in the source path: bind sources are not followed)"
		               : "");
	struct stat st;
	if (fstat(sfd, &st) < 0)
		child_fail(efd, errno, "bind", "%s -> %s (stat)", m->src, m->dst);
	int tfd = (int)syscall(SYS_open_tree, sfd, "",
	                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
	if (tfd < 0)
		child_fail(efd, errno, "bind", "%s -> %s (open_tree)", m->src, m->dst);
	close(sfd);
	/* mount_setattr() only adds flags, so flags locked on the source stay */
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
	                                      (m->rw ? 0 : MOUNT_ATTR_RDONLY)};
	if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) <
	    0)
		child_fail(efd, errno, "bind", "%s -> %s (set %s)", m->src, m->dst,
		           m->rw ? "nosuid,nodev" : "ro,nosuid,nodev");
	int dfd = root_mountpoint(rootfd, m->dst, S_ISDIR(st.st_mode), 0755);
	if (dfd < 0)
		child_fail(efd, -dfd, "bind", "%s -> %s (mount point%s)", m->src, m->dst,
		           dfd == -ELOOP ? ": a symlink on the way, not followed" : "");
	if (syscall(SYS_move_mount, tfd, "", dfd, "",
	            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		child_fail(efd, errno, "bind", "%s -> %s", m->src, m->dst);
	close(tfd);
	close(dfd);
}

/* A tmpfs or proc entry, mounted on its mount point as the cwd (then the
 * cwd is rootfd again). */
static void fs_entry(int efd, const struct sandbox_mount *m, int rootfd, const char *step)
{
	bool tmpfs = m->kind == SANDBOX_MOUNT_TMPFS;
	int dfd = root_mountpoint(rootfd, m->dst, true, tmpfs ? 0755 : 0555);
	if (dfd < 0)
		child_fail(efd, -dfd, step, "%s (mkdir)%s", m->dst, dfd == -ELOOP ? LOOP_NOTE : "");
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
}

/* One entry of the root at rootfd (the new root while building, or "/"
 * inside it). */
static void setup_mount(int efd, const struct sandbox_mount *m, int rootfd)
{
	const char *step = m->kind == SANDBOX_MOUNT_BIND    ? "bind"
	                   : m->kind == SANDBOX_MOUNT_TMPFS ? "tmpfs"
	                   : m->kind == SANDBOX_MOUNT_PROC  ? "proc"
	                                                    : "symlink";
	switch (m->kind) {
	case SANDBOX_MOUNT_BIND:
		bind_entry(efd, m, rootfd);
		break;
	case SANDBOX_MOUNT_TMPFS:
	case SANDBOX_MOUNT_PROC:
		fs_entry(efd, m, rootfd, step);
		break;
	case SANDBOX_MOUNT_SYMLINK: {
		char buf[PATH_MAX];
		const char *name;
		int pfd = root_parent(rootfd, m->dst, buf, sizeof(buf), &name);
		if (pfd < 0)
			child_fail(efd, -pfd, step, "%s -> %s%s", m->dst, m->target,
			           pfd == -ELOOP ? LOOP_NOTE : "");
		if (symlinkat(m->target, pfd, name) < 0)
			child_fail(efd, errno, step, "%s -> %s", m->dst, m->target);
		close(pfd);
		break;
	}
	}
}

/* A minimal /dev, made in place (the child is still host root): one mknod
 * each, where binding the host's nodes costs a create, a bind and a
 * remount. Made before the declared entries, so that one under /dev (a
 * tmpfs at /dev/shm, as Python's multiprocessing wants) gets its mount
 * point there; read-only after them (seal_dev). */
static void setup_dev(int efd, int rootfd, bool has_proc)
{
	static const struct {
		const char *name;
		unsigned minor;
	} nodes[] = {{"null", 3}, {"zero", 5}, {"full", 7}, {"random", 8}, {"urandom", 9}};
	static const char *const links[][2] = {{"fd", "/proc/self/fd"},
	                                       {"stdin", "/proc/self/fd/0"},
	                                       {"stdout", "/proc/self/fd/1"},
	                                       {"stderr", "/proc/self/fd/2"}};
	int dfd = root_mountpoint(rootfd, "/dev", true, 0755);
	if (dfd < 0)
		child_fail(efd, -dfd, "dev", "/dev (mkdir)");
	if (fchdir(dfd) < 0 ||
	    mount("tmpfs", ".", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") < 0)
		child_fail(efd, errno, "dev", "/dev (tmpfs)");
	close(dfd);
	/* the tmpfs just mounted there, reached from the root */
	int dev = openat(rootfd, "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dev < 0)
		child_fail(efd, errno, "dev", "/dev (open)");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
		if (mknodat(dev, nodes[i].name, S_IFCHR | 0666, makedev(1, nodes[i].minor)) < 0)
			child_fail(efd, errno, "dev", "/dev/%s", nodes[i].name);
	for (size_t i = 0; has_proc && i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][1], dev, links[i][0]) < 0)
			child_fail(efd, errno, "dev", "/dev/%s", links[i][0]);
	close(dev);
}

static void seal_dev(int efd, int rootfd)
{
	int dev = openat(rootfd, "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dev < 0)
		child_fail(efd, errno, "dev", "/dev (open)");
	if (fchdir(dev) == 0)
		mount(NULL, ".", NULL, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY,
		      "size=64k,mode=0755");
	close(dev);
}

/* ---- identity files (in the child) ------------------------------------------------------ */

/* One file of the root's own, made new (never an existing one opened:
 * O_EXCL, O_NOFOLLOW), root's and read-only; the root is remounted
 * read-only after. */
static void identity_file(int efd, int etc, const char *name, const char *text)
{
	int fd = openat(etc, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		child_fail(efd, errno, "identity", "create /etc/%s", name);
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w <= 0)
			child_fail(efd, w < 0 ? errno : EIO, "identity", "write /etc/%s", name);
		off += (size_t)w;
	}
	close(fd);
}

/* /etc/passwd, /etc/group, /etc/hosts for programs that look their uid or
 * localhost up (getpwuid(), Python's getpass, resolvers): in the root's
 * own tmpfs, under a /etc made there (or made there as a mount point's
 * parent: the loader refuses a mount at /etc or on these files). */
static void identity_files(int efd, int rootfd, const struct sandbox *sb)
{
	char passwd[256], group[128];
	snprintf(passwd, sizeof(passwd),
	         "root:x:0:0:root:/root:/usr/sbin/nologin\n"
	         "postern:x:%u:%u:postern:/:/usr/sbin/nologin\n",
	         (unsigned)sb->uid, (unsigned)sb->gid);
	snprintf(group, sizeof(group), "root:x:0:\npostern:x:%u:\n", (unsigned)sb->gid);
	if (mkdirat(rootfd, "etc", 0755) < 0 && errno != EEXIST)
		child_fail(efd, errno, "identity", "mkdir /etc");
	int etc = open_nofollow(rootfd, "etc", O_PATH | O_DIRECTORY);
	if (etc < 0)
		child_fail(efd, errno, "identity", "/etc%s", errno == ELOOP ? LOOP_NOTE : "");
	identity_file(efd, etc, "passwd", passwd);
	identity_file(efd, etc, "group", group);
	identity_file(efd, etc, "hosts",
	              "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	close(etc);
}

/* ---- the root (in the child) ---------------------------------------------------------------- */

/* The new root: a tmpfs made detached and attached to the root mount point,
 * opened without following a symlink and checked to be the directory
 * sb_root_dir_get() made. Returns the fd of the root. */
static int root_tmpfs(int efd)
{
	const char *p = root_dir.path;
	struct stat st;
	int dfd = open_nofollow(AT_FDCWD, p, O_PATH | O_DIRECTORY);
	if (dfd < 0)
		child_fail(efd, errno, "root", "open %s", p);
	if (fstat(dfd, &st) < 0)
		child_fail(efd, errno, "root", "stat %s", p);
	if (st.st_dev != root_dir.dev || st.st_ino != root_dir.ino)
		child_fail(efd, ESTALE, "root", "%s (not the directory this process made)", p);
	int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", "1m", 0) < 0 ||
	    syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
	    syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		child_fail(efd, errno, "root", "tmpfs on %s", p);
	int rootfd =
	    (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (rootfd < 0)
		child_fail(efd, errno, "root", "tmpfs on %s", p);
	close(fs);
	if (syscall(SYS_move_mount, rootfd, "", dfd, "",
	            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		child_fail(efd, errno, "root", "tmpfs on %s", p);
	close(dfd);
	return rootfd;
}

/* pivot_root into the root at rootfd; the old root detached. */
static void root_pivot(int efd, int rootfd)
{
	if (fchdir(rootfd) < 0)
		child_fail(efd, errno, "pivot_root", "chdir %s", root_dir.path);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(efd, errno, "pivot_root", "%s", root_dir.path);
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(efd, errno, "pivot_root", "detach old root");
	if (chdir("/") < 0)
		child_fail(efd, errno, "pivot_root", "chdir /");
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
	int rootfd = root_tmpfs(efd);
	setup_dev(efd, rootfd, sb->has_proc);
	for (size_t i = 0; i < sb->n_mounts; i++) {
		const struct sandbox_mount *m = &sb->mounts[i];
		if (!tmpl || !per_handler(m)) {
			setup_mount(efd, m, rootfd);
			continue;
		}
		int fd = root_mountpoint(rootfd, m->dst, true,
		                         m->kind == SANDBOX_MOUNT_PROC ? 0555 : 0755);
		if (fd < 0)
			child_fail(efd, -fd, "mkdir", "%s%s", m->dst,
			           fd == -ELOOP ? LOOP_NOTE : "");
		close(fd);
	}
	if (sb->identity_files)
		identity_files(efd, rootfd, sb);
	seal_dev(efd, rootfd);
	root_pivot(efd, rootfd);
	close(rootfd);
	*so = *so && (tmpl || sb_preloadable(sb->argv[0], sb->preload_interp, 0));
	if (*so)
		sb_warm_so_write(efd);
	/* the root itself is read-only: only declared paths can be written */
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
	    0)
		child_fail(efd, errno, "root", "remount / read-only");
}

/* The root step: a copy of the sandbox's template with the handler's own
 * tmpfs and proc mounts, or built here. A pre-warmed handler waits in its
 * own process, after its exec, where postern-warm.so can be preloaded into
 * it (c->preload). */
void child_root(struct child_args *c)
{
	struct sandbox *sb = c->sb;
	int efd = c->err_fd;
	if (sb->tmpl_fd < 0) {
		bool so = c->warm && sb->preload_interp;
		build_root(efd, sb, false, &so);
		c->preload = so;
		return;
	}
	umask(0);
	/* the copy's root and working directory are the template's copied */
	if (unshare(CLONE_NEWNS) < 0)
		child_fail(efd, errno, "root", "copy the root template");
	int rootfd = -1;
	for (size_t i = 0; i < sb->n_mounts; i++) {
		if (!per_handler(&sb->mounts[i]))
			continue;
		if (rootfd < 0 && (rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			child_fail(efd, errno, "root", "open /");
		setup_mount(efd, &sb->mounts[i], rootfd);
	}
	if (rootfd >= 0)
		close(rootfd);
	c->preload =
	    c->warm && sb->preload_interp && sb_preloadable(sb->argv[0], sb->preload_interp, 0);
}

/* ---- the root template ----------------------------------------------------------------- */

/*
 * The root template: a mount namespace holding the sandbox's root, built
 * once here. A handler enters it and copies it (unshare) instead of
 * building its own: one copy of a few mounts where a spawn made a tmpfs, a
 * bind and an attribute change per entry and /dev, and pivoted and detached
 * the host's tree (whose copy it no longer makes either). Its tmpfs and
 * proc entries are still its own. Not when an entry lies under a tmpfs or
 * proc entry (it would be hidden by the handler's own), nor when the build
 * fails (a bind source missing now): each handler then builds its root,
 * and reports what fails, as before. The child that builds it has fds of
 * its own and hands the namespace over its error socket.
 */
struct tmpl_args {
	struct sandbox *sb;
	int err_fd; /* a socket: a failed step's record, or the namespace */
};

static int tmpl_main(void *arg)
{
	struct tmpl_args *t = arg;
	int ns = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		child_fail(t->err_fd, errno, "root", "template: open its mount namespace");
	bool so = t->sb->preload_interp != NULL;
	build_root(t->err_fd, t->sb, true, &so);
	/* the namespace to the caller; the fds are this child's own (no
	 * CLONE_FILES), so whatever a failed step left open goes with it */
	int r = sb_send_fds(t->err_fd, "T", 1, &ns, 1);
	if (r < 0)
		child_fail(t->err_fd, -r, "root", "template: hand over its mount namespace");
	_exit(0);
}

void sb_tmpl_build(struct sandbox *sb)
{
	for (size_t i = 0; i < sb->n_mounts; i++)
		for (size_t j = 0; j < sb->n_mounts; j++)
			if (i != j && per_handler(&sb->mounts[i]) &&
			    path_under(sb->mounts[j].dst, sb->mounts[i].dst))
				return;
	struct tmpl_args ta = {.sb = sb};
	struct child_err ce;
	const char *step;
	int ns = -1;
	/* a failure: no template */
	if (sb_setup_child(tmpl_main, CLONE_NEWNS, &ta, &ta.err_fd, 'T', &ns, 1, &ce, &step) == 0)
		sb->tmpl_fd = ns;
}
