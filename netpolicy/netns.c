/* SPDX-License-Identifier: MIT */
/*
 * Network namespaces of sandboxes: each made fresh (lo up), kept open and
 * bind-mounted at STATE_DIR/netns/NAME; an alias at /run/netns/TABLE-NAME
 * for `ip netns exec` when that name is free (recorded first in
 * STATE_DIR/aliases/ALIAS with the namespace's inode); and their removal,
 * which unmounts only an nsfs mount (of the recorded namespace, for an
 * alias), never by a name-prefix match.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <libmnl/libmnl.h>
#include <linux/magic.h>

#include "netpolicy/internal.h"

#define IP_NETNS_DIR "/run/netns" /* where `ip netns exec NAME` looks */
#define NETNS_FAIL "netpolicy: sandbox \"%s\": network namespace: %s: %s"

const char *np_fd_path(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

/* ---- a namespace ------------------------------------------------------------------------- */

/* A fresh network namespace, opened, lo up; the caller's thread back in its
 * own at once. */
static int netns_fresh(const char *name, int *out, struct netpolicy_error *err)
{
	_cleanup_close_ int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (own < 0) {
		int e = errno;
		np_error(err, e, "netns", name, NETNS_FAIL, name, "open own netns", strerror(e));
		return -e;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		int e = errno;
		np_error(err, e, "netns", name, NETNS_FAIL, name, "unshare", strerror(e));
		return -e;
	}
	_cleanup_close_ int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int r = fd < 0 ? -errno : 0;
	_cleanup_mnl_ struct mnl_socket *nl = r == 0 ? np_nl_open() : NULL;
	if (setns(own, CLONE_NEWNET) < 0)
		abort(); /* the broker must never stay in a sandbox namespace */
	if (r < 0) {
		np_error(err, -r, "netns", name, NETNS_FAIL, name, "open new netns", strerror(-r));
		return r;
	}
	if (!nl || (r = np_link_up(nl, "lo")) < 0) {
		r = nl ? r : -EIO;
		np_error(err, -r, "netns", name, NETNS_FAIL, name, "lo up", strerror(-r));
		return r;
	}
	*out = TAKE_FD(fd);
	return 0;
}

int np_netns_new(int dfd, const char *name, int *out, struct netpolicy_error *err)
{
	_cleanup_close_ int fd = -1;
	char src[32], dst[32], what[64];
	int r = netns_fresh(name, &fd, err);
	if (r < 0)
		return r;
	/* clean-up removed whatever an earlier instance left there */
	_cleanup_close_ int mfd =
	    openat(dfd, name, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (mfd < 0) {
		int e = errno;
		snprintf(what, sizeof(what), "create netns/%s", name);
		np_error(err, e, "netns", name, NETNS_FAIL, name, what, strerror(e));
		return -e;
	}
	if (mount(np_fd_path(fd, src), np_fd_path(mfd, dst), NULL, MS_BIND, NULL) < 0) {
		int e = errno;
		snprintf(what, sizeof(what), "bind-mount to netns/%s", name);
		np_error(err, e, "netns", name, NETNS_FAIL, name, what, strerror(e));
		unlinkat(dfd, name, 0);
		return -e;
	}
	*out = TAKE_FD(fd);
	return 0;
}

int np_ns_remove_at(int dfd, const char *name, unsigned long ino, bool empty_ok)
{
	bool did = false;
	for (int depth = 0; depth < 8; depth++) {
		_cleanup_close_ int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return did;
		struct statfs sf;
		struct stat st;
		char p[32];
		bool ns = fstatfs(fd, &sf) == 0 && sf.f_type == NSFS_MAGIC && fstat(fd, &st) == 0 &&
		          (!ino || st.st_ino == ino);
		if (!ns) {
			/* what is left once unmounted: the empty file we made */
			if ((did || empty_ok) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
			    st.st_size == 0 && unlinkat(dfd, name, 0) == 0)
				did = true;
			return did;
		}
		if (umount2(np_fd_path(fd, p), MNT_DETACH) < 0)
			return did;
		did = true;
		ino = 0; /* below ours: only the file it was mounted on */
	}
	return did;
}

/* ---- /run/netns aliases -------------------------------------------------------------------- */

/* /run/netns, when it is root's and only root can write it (made if
 * missing); -1 otherwise: the aliases are a convenience. */
static int ip_netns_dir(bool create)
{
	if (create && mkdir(IP_NETNS_DIR, 0755) < 0 && errno != EEXIST)
		return -1;
	int fd = open(IP_NETNS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)))
		np_close(&fd);
	return fd;
}

/* /run/netns/TABLE-NAME too, as `ip netns exec` knows it, for operators:
 * recorded in STATE/aliases first, made only if that name is free. */
void np_alias_add(struct netpolicy *np, struct np_sb *s)
{
	char alias[ALIAS_MAX], rec[32], src[32], dst[32];
	struct stat st;
	s->alias[0] = 0;
	if (snprintf(alias, sizeof(alias), "%s-%s", np->table, s->name) >= (int)sizeof(alias) ||
	    fstat(s->netns_fd, &st) < 0)
		return;
	_cleanup_close_ int rd = ip_netns_dir(true);
	if (rd < 0)
		return;
	snprintf(rec, sizeof(rec), "%lu\n", (unsigned long)st.st_ino);
	if (np_write_small(np->aliases_dfd, alias, rec) < 0)
		return;
	_cleanup_close_ int afd =
	    openat(rd, alias, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (afd < 0) {
		if (errno == EEXIST)
			np_say(np,
			       "sandbox \"%s\": %s/%s exists and is not ours: no ip netns alias",
			       s->name, IP_NETNS_DIR, alias);
		unlinkat(np->aliases_dfd, alias, 0);
		return;
	}
	if (mount(np_fd_path(s->netns_fd, src), np_fd_path(afd, dst), NULL, MS_BIND, NULL) < 0) {
		np_close(&afd);
		unlinkat(rd, alias, 0);
		unlinkat(np->aliases_dfd, alias, 0);
		return;
	}
	snprintf(s->alias, sizeof(s->alias), "%s", alias);
	s->alias_ino = (unsigned long)st.st_ino;
}

/* Remove the alias recorded as NAME (with its namespace's inode) in the
 * aliases dir, if /run/netns/NAME is still that namespace, and the record. */
void np_alias_remove(int aliases_dfd, const char *name, unsigned long ino)
{
	_cleanup_close_ int rd = ip_netns_dir(false);
	if (rd >= 0 && ino)
		np_ns_remove_at(rd, name, ino, false);
	unlinkat(aliases_dfd, name, 0);
}

/* ---- leftovers ------------------------------------------------------------------------------- */

/* The /run/netns aliases recorded, each removed if still the namespace it was. */
void np_aliases_clean(int sfd)
{
	int ad = openat(sfd, "aliases", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = ad >= 0 ? fdopendir(ad) : NULL;
	if (!d) {
		if (ad >= 0)
			close(ad);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		char rec[32];
		if (!np_own_name(e->d_name)) {
			size_t len = strlen(e->d_name);
			/* a record being written when the broker died */
			if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp"))
				unlinkat(ad, e->d_name, 0);
			continue;
		}
		unsigned long ino = 0;
		if (np_read_small(ad, e->d_name, rec, sizeof(rec)) == 0)
			ino = strtoul(rec, NULL, 10);
		np_alias_remove(ad, e->d_name, ino);
	}
	closedir(d);
}

/* The namespace mounts in the state dir. */
void np_netns_mounts_clean(int sfd)
{
	int nd = openat(sfd, "netns", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = nd >= 0 ? fdopendir(nd) : NULL;
	if (!d) {
		if (nd >= 0)
			close(nd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (np_own_name(e->d_name))
			np_ns_remove_at(nd, e->d_name, 0, true);
	closedir(d);
}
