/* SPDX-License-Identifier: MIT */
/*
 * The cgroup file system, as sandbox/ reads and writes it: where this
 * process's hierarchies are (the cgroup2 mount and the v1 hierarchy of each
 * controller, from /proc/self/mountinfo; its own cgroup in each, from
 * /proc/self/cgroup; which of v1 or v2 postern uses: pure text parsing,
 * unit-tested in tests/unit/test_cgroup.c), and the small cgroup files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/internal.h"

const char *const sb_cg_names[CG_N] = {"memory", "pids", "cpu", "cpuacct"};

/* ---- files --------------------------------------------------------------------------- */

/* One write of data to the cgroup file fd, at its start (also when it was
 * just read). EINTR is retried: cgroup v1 fails setting
 * memory.limit_in_bytes with it whenever a signal is pending, before it
 * even compares the limit with the usage. */
int sb_cg_write_fd(int fd, const char *data)
{
	size_t n = strlen(data);
	ssize_t w;
	int tries = 100;
	do
		w = pwrite(fd, data, n, 0);
	while (w < 0 && errno == EINTR && --tries);
	if (w < 0)
		return -errno;
	return w == (ssize_t)n ? 0 : -EIO;
}

static int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = sb_cg_write_fd(fd, data);
	close(fd);
	return r;
}

int sb_cg_write_at(const char *dir, const char *file, const char *data)
{
	char p[PATH_MAX + 64];
	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	return write_file(p, data);
}

/* dir/file opened with flags (O_RDONLY or O_RDWR) and the start of it
 * read into buf (NUL-terminated): the fd, which the caller closes, or a
 * negative errno. O_RDWR: to reset a counter through the file just read,
 * one open instead of two. */
int sb_cg_open_read(const char *dir, const char *file, int flags, char *buf, size_t len)
{
	char p[PATH_MAX + 64];
	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	int fd = open(p, flags | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	buf[n] = 0;
	return fd;
}

/* The start of a file (NUL-terminated), its length, or a negative errno. */
ssize_t sb_cg_read_at(const char *dir, const char *file, char *buf, size_t len)
{
	int fd = sb_cg_open_read(dir, file, O_RDONLY, buf, len);
	if (fd < 0)
		return fd;
	close(fd);
	return (ssize_t)strlen(buf);
}

bool sb_cg_exists_at(const char *dir, const char *file)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

/* Whether a space-separated list (cgroup.controllers) holds word. */
bool sb_cg_has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
		    (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

/* The value of "key N" in a flat-keyed file (cpu.stat, memory.events). */
bool sb_cg_keyed(const char *buf, const char *key, uint64_t *out)
{
	size_t n = strlen(key);
	for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ') {
			*out = strtoull(p + n + 1, NULL, 10);
			return true;
		}
	return false;
}

int sb_cg_mkdir_p(char *path, mode_t mode)
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

/* The first pids in a cgroup, space-separated, in buf; "none" if empty. */
const char *sb_cg_procs_of(const char *dir, char *buf, size_t len)
{
	if (sb_cg_read_at(dir, "cgroup.procs", buf, len) < 0)
		buf[0] = 0;
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = c[1] ? ' ' : 0;
	return buf[0] ? buf : "none";
}

/* ---- where the hierarchies are -------------------------------------------------------- */

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
			for (char *t = strtok_r(a + 1, ",", &save); t && !match;
			     t = strtok_r(NULL, ",", &save))
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
		for (char *t = strtok_r(line, " ", &save); t && n < 6;
		     t = strtok_r(NULL, " ", &save))
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
			for (char *o = strtok_r(opts, ",", &osave); o;
			     o = strtok_r(NULL, ",", &osave))
				for (int i = 0; i < CG_N; i++)
					if (!strcmp(o, sb_cg_names[i]) && !out->v1[i][0] &&
					    own_cgroup(self, sb_cg_names[i], path, sizeof(path),
					               &out->v1hier[i]) == 0)
						dir_of(field[4], field[3], path, out->v1[i],
						       sizeof(out->v1[i]));
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
char *sb_slurp(const char *path)
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
