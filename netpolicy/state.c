/* SPDX-License-Identifier: MIT */
/*
 * The state dir (see netpolicy.h): opened once, by a walk from "/" that
 * follows no link it does not trust, checked to hold only postern's names,
 * locked by one broker, and the small records in it. Everything under it
 * is reached relative to its fd with O_NOFOLLOW. Its layout:
 *
 *   lock              flock of the broker using it; holds its pid
 *   netns/NAME        nsfs bind mount of sandbox NAME's namespace
 *   aliases/ALIAS     "INODE\n": /run/netns/ALIAS was made for that namespace
 *   forwarding        "ipv4=V\nipv6=V\n": the sysctls before this broker set them
 *   forwarding.tmp    (being written)
 *
 * Nothing else under it is ever created or removed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "netpolicy/internal.h"

#define STEP "state dir"

bool np_own_name(const char *n)
{
	size_t len = strlen(n);
	if (!len || len >= ALIAS_MAX)
		return false;
	for (const char *c = n; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			return false;
	return true;
}

/* ---- small records ------------------------------------------------------------------------ */

int np_read_small(int dfd, const char *name, char *buf, size_t len)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

int np_write_small(int dfd, const char *name, const char *text)
{
	char tmp[ALIAS_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	unlinkat(dfd, tmp, 0);
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	int e = w < 0 ? errno : (size_t)w != len ? EIO : 0;
	if (!e && fsync(fd) < 0)
		e = errno;
	close(fd);
	if (!e && renameat(dfd, tmp, dfd, name) < 0)
		e = errno;
	if (e)
		unlinkat(dfd, tmp, 0);
	return -e;
}

/* ---- the walk to it ------------------------------------------------------------------------- */

/* One directory on the way to the state dir (or the state dir itself):
 * root's, and writable by nobody else (on the way, a sticky directory
 * such as /tmp will do: others cannot replace root's entries there). */
static int dir_trusted(int fd, const char *state, const char *shown, bool final,
                       struct netpolicy_error *err)
{
	struct stat st;
	const char *obj = final ? state : shown;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		np_error(err, e, STEP, obj, "netpolicy: state dir %s: stat %s: %s", state, shown,
		         strerror(e));
		return -e;
	}
	unsigned mode = (unsigned)st.st_mode & 07777;
	if (!S_ISDIR(st.st_mode)) {
		np_error(err, ENOTDIR, STEP, obj,
		         "netpolicy: state dir %s: %s%snot a directory: use a root-owned directory "
		         "with mode 0700",
		         state, final ? "" : shown, final ? "" : " is ");
		return -ENOTDIR;
	}
	if (st.st_uid != 0) {
		if (final)
			np_error(err, EPERM, STEP, obj,
			         "netpolicy: state dir %s: owned by uid %u, not root: use a "
			         "root-owned directory with mode 0700",
			         state, (unsigned)st.st_uid);
		else
			np_error(err, EPERM, STEP, obj,
			         "netpolicy: state dir %s: %s is owned by uid %u, not root: use a "
			         "state dir whose parent directories only root can write",
			         state, shown, (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((mode & 022) && (final || !(mode & S_ISVTX))) {
		if (final)
			np_error(err, EPERM, STEP, obj,
			         "netpolicy: state dir %s: writable by group or others (mode "
			         "%04o): use a root-owned directory with mode 0700",
			         state, mode);
		else
			np_error(
			    err, EPERM, STEP, obj,
			    "netpolicy: state dir %s: %s is writable by group or others (mode "
			    "%04o): use a state dir whose parent directories only root can write",
			    state, shown, mode);
		return -EPERM;
	}
	return 0;
}

/* Where the walk to the state dir is: the directory reached (fd, shown as
 * `shown`), and the path still to walk (p, in rem). */
struct walk {
	const char *state;
	bool create;
	int fd;
	int links;
	char *p;
	char rem[2 * PATH_MAX];
	char shown[PATH_MAX];
};

static int walk_fail(struct walk *w, int e, const char *obj, const char *what,
                     struct netpolicy_error *err)
{
	np_error(err, e, STEP, obj, "netpolicy: state dir %s: %s%s%s", w->state, what,
	         what[0] ? ": " : "", strerror(e));
	return -e;
}

/* "..": up, and that one checked too (from a link's target: ../run). */
static int walk_up(struct walk *w, struct netpolicy_error *err)
{
	char what[PATH_MAX + 8];
	char *slash = strrchr(w->shown, '/');
	if (slash && slash != w->shown)
		*slash = 0;
	else
		snprintf(w->shown, sizeof(w->shown), "/");
	int nfd = openat(w->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (nfd < 0) {
		snprintf(what, sizeof(what), "open %s", w->shown);
		return walk_fail(w, errno, w->shown, what, err);
	}
	close(w->fd);
	w->fd = nfd;
	return dir_trusted(w->fd, w->state, w->shown, false, err);
}

/* A link on the way (nfd, at next): followed only when root owns it and
 * only root can write where it is (dst: that directory), never the state
 * dir itself. Its target goes in front of what is left to walk. */
static int walk_link(struct walk *w, int nfd, const struct stat *st, const struct stat *dst,
                     const char *next, bool last, struct netpolicy_error *err)
{
	char target[PATH_MAX], nrem[2 * PATH_MAX], what[PATH_MAX + 8];
	ssize_t n = -1;
	int r = 0;
	if (last) {
		np_error(err, ELOOP, STEP, w->state,
		         "netpolicy: state dir %s: is a symbolic link: use a root-owned directory "
		         "with mode 0700 itself, not a link to one",
		         w->state);
		r = -ELOOP;
	} else if (st->st_uid != 0 || (dst->st_mode & 022)) {
		np_error(err, ELOOP, STEP, next,
		         "netpolicy: state dir %s: %s is a symbolic link %s: use a path without "
		         "links others could have made",
		         w->state, next,
		         st->st_uid ? "not owned by root" : "in a directory others can write");
		r = -ELOOP;
	} else if (++w->links > 16 || (n = readlinkat(nfd, "", target, sizeof(target) - 1)) <= 0) {
		snprintf(what, sizeof(what), "follow %s", next);
		r = walk_fail(w, n < 0 && w->links <= 16 ? errno : ELOOP, next, what, err);
	}
	close(nfd);
	if (r < 0)
		return r;
	target[n] = 0;
	if (snprintf(nrem, sizeof(nrem), "%s/%s", target, w->p) >= (int)sizeof(nrem))
		return walk_fail(w, ENAMETOOLONG, w->state, "", err);
	snprintf(w->rem, sizeof(w->rem), "%s", nrem);
	w->p = w->rem;
	if (target[0] == '/') {
		close(w->fd);
		if ((w->fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			return walk_fail(w, errno, "/", "open /", err);
		snprintf(w->shown, sizeof(w->shown), "/");
	}
	return 0;
}

/* One component of the path (not "." or ".."): opened without following
 * a link (made first when missing and create: parents 0755, itself 0700). */
static int walk_step(struct walk *w, const char *comp, bool last, struct netpolicy_error *err)
{
	char next[PATH_MAX], what[PATH_MAX + 8];
	if (snprintf(next, sizeof(next), "%s/%s", strcmp(w->shown, "/") ? w->shown : "", comp) >=
	    (int)sizeof(next)) {
		np_error(err, ENAMETOOLONG, "state dir", w->shown, "netpolicy: state dir %s/%s: %s",
		         w->shown, comp, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	int nfd = openat(w->fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (nfd < 0 && errno == ENOENT && w->create) {
		if (mkdirat(w->fd, comp, last ? 0700 : 0755) < 0 && errno != EEXIST) {
			snprintf(what, sizeof(what), "create %s", next);
			return walk_fail(w, errno, next, what, err);
		}
		nfd = openat(w->fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (nfd < 0) {
		snprintf(what, sizeof(what), "open %s", next);
		return walk_fail(w, errno, next, what, err);
	}
	struct stat st, dst;
	if (fstat(nfd, &st) < 0 || fstat(w->fd, &dst) < 0) {
		int e = errno;
		close(nfd);
		snprintf(what, sizeof(what), "stat %s", next);
		return walk_fail(w, e, next, what, err);
	}
	if (S_ISLNK(st.st_mode))
		return walk_link(w, nfd, &st, &dst, next, last, err);
	int r = dir_trusted(nfd, w->state, next, last, err);
	if (r < 0) {
		close(nfd);
		return r;
	}
	close(w->fd);
	w->fd = nfd;
	snprintf(w->shown, sizeof(w->shown), "%s", next);
	return 0;
}

/* The walk itself: component after component, until none is left. */
static int walk_all(struct walk *w, struct netpolicy_error *err)
{
	for (int r;;) {
		while (*w->p == '/')
			w->p++;
		if (!*w->p)
			return 0;
		char comp[NAME_MAX + 1];
		size_t len = strcspn(w->p, "/");
		if (len > NAME_MAX)
			return walk_fail(w, ENAMETOOLONG, w->state, "", err);
		memcpy(comp, w->p, len);
		comp[len] = 0;
		w->p += len;
		bool last = !w->p[strspn(w->p, "/")];
		if (!strcmp(comp, "."))
			continue;
		r = !strcmp(comp, "..") ? walk_up(w, err) : walk_step(w, comp, last, err);
		if (r < 0)
			return r;
	}
}

/* Open the state dir (creating what is missing: parents 0755, itself 0700)
 * by a walk from "/" with O_NOFOLLOW at every step. A link on the way is
 * followed only when root owns it and only root can write where it is
 * (e.g. /var/run -> /run); the state dir itself must not be a link. Each
 * directory passes dir_trusted(). */
int np_state_open(const char *state, bool create, int *out, struct netpolicy_error *err)
{
	struct walk w = {.state = state, .create = create, .fd = -1};
	int r;
	*out = -1;
	if (state[0] != '/' || strlen(state) >= PATH_MAX) {
		np_error(err, EINVAL, STEP, state, "netpolicy: state dir %s: not an absolute path",
		         state);
		return -EINVAL;
	}
	snprintf(w.rem, sizeof(w.rem), "%s", state);
	w.p = w.rem;
	if ((w.fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return walk_fail(&w, errno, "/", "open /", err);
	if ((r = dir_trusted(w.fd, state, "/", false, err)) < 0 || (r = walk_all(&w, err)) < 0)
		goto out;
	/* the state dir itself: no sticky bit excuses it */
	if (!w.shown[0] || !strcmp(w.shown, "/")) {
		r = -EINVAL;
		np_error(
		    err, EINVAL, STEP, state,
		    "netpolicy: state dir %s: is the root directory: use a directory of its own",
		    state);
		goto out;
	}
	if ((r = dir_trusted(w.fd, state, w.shown, true, err)) < 0)
		goto out;
	int dfd = openat(w.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = walk_fail(&w, errno, state, "open", err);
		goto out;
	}
	*out = dfd;
	r = 0;
out:
	np_close(&w.fd);
	return r;
}

/* ---- what is in it, who holds it ----------------------------------------------------------- */

/* What may be in a state dir: postern's own names, and in a shared
 * /run/postern the per-table lock files (*.lock) and control sockets. Any
 * other entry means it is not a directory of postern's own. */
static bool entry_ok(const char *n, const struct stat *st)
{
	size_t len = strlen(n);
	return S_ISSOCK(st->st_mode) ||
	       (S_ISREG(st->st_mode) &&
	        (!strcmp(n, "lock") || !strcmp(n, "forwarding") || !strcmp(n, "forwarding.tmp") ||
	         (len > 5 && !strcmp(n + len - 5, ".lock")))) ||
	       (S_ISDIR(st->st_mode) && (!strcmp(n, "netns") || !strcmp(n, "aliases")));
}

int np_state_entries_ok(int sfd, const char *state, struct netpolicy_error *err)
{
	int dup_fd = dup(sfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		int e = errno;
		if (dup_fd >= 0)
			close(dup_fd);
		np_error(err, e, STEP, state, "netpolicy: state dir %s: read: %s", state,
		         strerror(e));
		return -e;
	}
	rewinddir(d);
	struct dirent *e;
	int r = 0;
	while ((e = readdir(d))) {
		const char *n = e->d_name;
		struct stat st;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if (!entry_ok(n, &st)) {
			np_error(err, EEXIST, STEP, n,
			         "netpolicy: state dir %s: holds \"%s\", which is not postern's: "
			         "use a directory of its own for broker.state_dir",
			         state, n);
			r = -EEXIST;
			break;
		}
	}
	closedir(d);
	return r;
}

/* The lock is held by another: who, as its file says. */
static int lock_busy(int fd, int e, const char *state, struct netpolicy_error *err)
{
	char pid[24] = "";
	ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
	pid[n > 0 ? n : 0] = 0;
	pid[strcspn(pid, "\n")] = 0;
	if (e == EWOULDBLOCK) {
		np_error(err, EBUSY, STEP, state,
		         "netpolicy: state dir %s: in use by another broker (pid %s): give each "
		         "broker its own broker.state_dir",
		         state, pid[0] ? pid : "unknown");
		return -EBUSY;
	}
	np_error(err, e, STEP, state, "netpolicy: state dir %s: lock: %s", state, strerror(e));
	return -e;
}

int np_state_lock(int sfd, const char *state, int *out, struct netpolicy_error *err)
{
	*out = -1;
	for (int tries = 0; tries < 10; tries++) {
		_cleanup_close_ int fd =
		    openat(sfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			int e = errno;
			np_error(err, e, STEP, state, "netpolicy: state dir %s: open lock: %s",
			         state, strerror(e));
			return -e;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0)
			return lock_busy(fd, errno, state, err);
		/* the owner unlinks it at its end, holding the lock: still ours? */
		struct stat a, b;
		if (fstat(fd, &a) < 0 || fstatat(sfd, "lock", &b, AT_SYMLINK_NOFOLLOW) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
			continue;
		char pid[24];
		int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
			int e = errno;
			np_error(err, e, STEP, state, "netpolicy: state dir %s: write lock: %s",
			         state, strerror(e));
			return -e;
		}
		*out = TAKE_FD(fd);
		return 0;
	}
	np_error(err, EAGAIN, STEP, state, "netpolicy: state dir %s: lock: it keeps being replaced",
	         state);
	return -EAGAIN;
}

void np_state_unlock(int sfd, int *lock_fd)
{
	if (*lock_fd < 0)
		return;
	unlinkat(sfd, "lock", 0);
	np_close(lock_fd);
}

int np_state_subdir(int sfd, const char *name)
{
	if (mkdirat(sfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}
