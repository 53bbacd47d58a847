/* SPDX-License-Identifier: MIT */
/* One broker per table on a host: a lock taken before anything named after
 * the table (rules, veths, namespaces, cgroups) is touched, because
 * starting removes what an earlier instance of the table left. The cgroups
 * are the host's (or the cgroup namespace's), whatever network namespace
 * each broker runs in. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"

int pst_instance_lock(const char *dir, const char *table, struct pst_instance_lock *lk, char *why,
                      size_t whylen)
{
	lk->fd = -1;
	lk->path[0] = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		snprintf(why, whylen, "mkdir %s: %s", dir, strerror(e));
		return -e;
	}
	if (snprintf(lk->path, sizeof(lk->path), "%s/%s.lock", dir, table) >=
	    (int)sizeof(lk->path)) {
		snprintf(why, whylen, "lock file name: %s", strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	/* the owner unlinks the file at its end, holding the lock: one locked
	 * here may be a file that is gone, so check it is still the path's */
	for (int tries = 0; tries < 10; tries++) {
		int fd = open(lk->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			int e = errno;
			snprintf(why, whylen, "open %s: %s", lk->path, strerror(e));
			return -e;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;
			char pid[24] = "";
			ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			close(fd);
			if (e == EWOULDBLOCK)
				snprintf(
				    why, whylen,
				    "table \"%s\" is in use by another broker (pid %s; lock %s)",
				    table, pid[0] ? pid : "unknown", lk->path);
			else
				snprintf(why, whylen, "lock %s: %s", lk->path, strerror(e));
			return e == EWOULDBLOCK ? -EBUSY : -e;
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(lk->path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino) {
			char pid[24];
			int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
			if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
				int e = errno;
				snprintf(why, whylen, "write %s: %s", lk->path, strerror(e));
				close(fd);
				return -e;
			}
			lk->fd = fd;
			return 0;
		}
		close(fd);
	}
	snprintf(why, whylen, "lock %s: it keeps being replaced", lk->path);
	return -EAGAIN;
}

void pst_instance_unlock(struct pst_instance_lock *lk)
{
	if (lk->fd < 0)
		return;
	unlink(lk->path);
	close(lk->fd);
	lk->fd = -1;
}
