/* SPDX-License-Identifier: MIT */
/*
 * Whether a policy file may be trusted by root: it says what root deletes,
 * mounts and runs, so, as sshd refuses keys others could write, it must be
 * a regular file owned by root and writable by nobody else, and so must
 * every directory on the way to it and every symlink's directory on the way
 * (a root-owned directory that others may write is trusted only with the
 * sticky bit, like /tmp: nobody else can then rename or remove root's
 * entries in it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"

#define MAX_LINKS 16

/* Why st (of path) is not trusted, or NULL. */
static const char *untrusted(const struct stat *st, bool dir)
{
	if (st->st_uid != 0)
		return "not owned by root";
	if (dir && (st->st_mode & S_IWOTH) && !(st->st_mode & S_ISVTX))
		return "writable by others";
	if (dir && (st->st_mode & S_IWGRP) && st->st_gid != 0 && !(st->st_mode & S_ISVTX))
		return "writable by its group";
	if (!dir && (st->st_mode & (S_IWGRP | S_IWOTH)))
		return "writable by group or others";
	return NULL;
}

/* The rest of a path (rest_in, after the link at link in directory dir),
 * from the link's target on, into rest (PATH_MAX), to be walked again from
 * /. */
static int follow(const char *link, const char *dir, const char *rest_in, char *rest)
{
	char target[PATH_MAX], joined[PATH_MAX];
	ssize_t t = readlink(link, target, sizeof(target) - 1);
	if (t < 0)
		return -errno;
	target[t] = 0;
	bool abs = target[0] == '/';
	if (snprintf(joined, sizeof(joined), "%s%s%s%s", abs ? "" : dir, abs ? "" : "/", target,
	             rest_in) >= (int)sizeof(joined))
		return -ENAMETOOLONG;
	memcpy(rest, joined, sizeof(joined));
	return 0;
}

/* Walk path from / one component at a time without following anything but
 * the symlinks it checks; *links counts them. */
static int walk(const char *path, int *links, bool want_dir, char *why, size_t whylen)
{
	char cur[PATH_MAX], rest[PATH_MAX];
	struct stat st;
	if (path[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if (snprintf(rest, sizeof(rest), "%s/%s", cwd, path) >= (int)sizeof(rest))
			return -ENAMETOOLONG;
	} else if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest)) {
		return -ENAMETOOLONG;
	}
	if (lstat("/", &st) < 0)
		return -errno;
	const char *bad = untrusted(&st, true);
	if (bad) {
		snprintf(why, whylen, "/ is %s", bad);
		return -EPERM;
	}
	strcpy(cur, "");
	char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char name[NAME_MAX + 1];
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, p, n);
		name[n] = 0;
		p += n;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			char *slash = strrchr(cur, '/');
			if (slash)
				*slash = 0;
			continue;
		}
		char next[PATH_MAX];
		if (snprintf(next, sizeof(next), "%s/%s", cur, name) >= (int)sizeof(next))
			return -ENAMETOOLONG;
		if (lstat(next, &st) < 0) {
			int e = errno;
			snprintf(why, whylen, "%s: %s", next, strerror(e));
			return -e;
		}
		if (S_ISLNK(st.st_mode)) {
			/* its directory (cur) was checked on the way: where it
			 * points is walked the same way */
			if (++*links > MAX_LINKS) {
				snprintf(why, whylen, "%s: %s", next, strerror(ELOOP));
				return -ELOOP;
			}
			int r = follow(next, cur, p, rest);
			if (r < 0)
				return r;
			p = rest;
			cur[0] = 0;
			continue;
		}
		bool last = !p[strspn(p, "/")];
		bad = untrusted(&st, S_ISDIR(st.st_mode));
		if (bad) {
			snprintf(why, whylen, "%s is %s (mode %04o, uid %u)", next, bad,
			         (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
			return -EPERM;
		}
		if (last && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			snprintf(why, whylen, "%s is not a regular file", next);
			return -EPERM;
		}
		snprintf(cur, sizeof(cur), "%s", next);
	}
	if (lstat(cur[0] ? cur : "/", &st) < 0)
		return -errno;
	if (want_dir && !S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "%s is not a directory", cur[0] ? cur : "/");
		return -ENOTDIR;
	}
	if (!want_dir && !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", cur[0] ? cur : "/");
		return -EPERM;
	}
	return 0;
}

int pst_policy_trust(const char *path, char *why, size_t whylen)
{
	int links = 0;
	why[0] = 0;
	int r = walk(path, &links, false, why, whylen);
	if (r < 0 && !why[0])
		snprintf(why, whylen, "%s: %s", path, strerror(-r));
	return r;
}

int pst_dir_trust(const char *path, char *why, size_t whylen)
{
	int links = 0;
	why[0] = 0;
	int r = walk(path, &links, true, why, whylen);
	if (r < 0 && !why[0])
		snprintf(why, whylen, "%s: %s", path, strerror(-r));
	return r;
}
