/* SPDX-License-Identifier: MIT */
/*
 * The preflight: what a loaded policy asks of the host, checked before any
 * root is built, so that a mistake is an error of `check`, `run` or a
 * reload with its JSON path instead of a reset for every client. For each
 * sandbox: every bind source exists on the host; its exec[0], resolved in
 * the sandbox's root as the handler would see it (pf_resolve(): the
 * filesystem entries mapped to host paths, symlinks in bind sources
 * followed inside the root, never out of it), is a regular file the
 * sandbox's uid may execute, not on a noexec mount; a "#!" line's
 * interpreter is in the root and checked the same way; an ELF program's
 * PT_INTERP is in the root, and its DT_NEEDED libraries are found as ld.so
 * would find them (DT_RPATH, LD_LIBRARY_PATH from the policy's env,
 * DT_RUNPATH, with $ORIGIN; the root's /etc/ld.so.cache; the default
 * directories), those libraries' own in turn, within a bound on the work.
 * Nothing is run and nothing is mapped: files are read (the parsers are
 * preflight_elf.c's) with pread() at
 * offsets checked against their size, opened through the path the
 * resolver found with no symlink followed (a local user who can write
 * there may have left a crafted file, or swap a path for a link). Pre-
 * warmed handlers exec the same program (postern-warm waits, then execs
 * it; postern-warm.so is preloaded into it), so one check covers both.
 * Each problem is one line, with the fix when one is known.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "broker/internal.h"
#include "broker/policy_internal.h"
#include "broker/preflight.h"

#define PF_OBJECTS_MAX 128  /* objects (program, libraries) followed per exec */
#define PF_LOOKUPS_MAX 4096 /* path lookups per exec */
#define PF_CACHE_MAX (16u << 20)
#define PF_CACHE_WORK (1u << 22) /* cache entries looked at per exec, all names together */
#define PF_SCRIPT_DEPTH 4        /* nested #! interpreters (the kernel's own bound) */

/* ---- the virtual root --------------------------------------------------------------- */

/* path is dir or lies below it (both normalised). */
static bool at_or_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1 && dir[0] == '/')
		return true;
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == 0);
}

static bool strictly_below(const char *path, const char *dir)
{
	return at_or_below(path, dir) && strcmp(path, dir) != 0 && strcmp(path, "/") != 0;
}

/* The files the root gets of its own (sandbox/root.c). */
static bool own_file(const struct pf_root *root, const char *p)
{
	return root->identity_files &&
	       (!strcmp(p, "/etc/passwd") || !strcmp(p, "/etc/group") || !strcmp(p, "/etc/hosts"));
}

static bool may(const struct stat *st, uid_t uid, gid_t gid, unsigned bit)
{
	if (st->st_uid == uid)
		return st->st_mode & (bit << 6);
	if (st->st_gid == gid)
		return st->st_mode & (bit << 3);
	return st->st_mode & bit;
}

/* What one path (symlinks above it resolved) is in the root: 0 and *st
 * (from the host, or made up), with a symlink's target in link; or an
 * errno. */
struct node {
	enum pf_kind kind;
	int entry;
	struct stat st;
	bool is_link;
	char link[PATH_MAX];
	char host[PATH_MAX];
};

static int lookup(const struct pf_root *root, const char *p, struct node *n)
{
	memset(n, 0, sizeof(*n));
	n->entry = -1;
	/* /dev is the root's own, made before the entries (sandbox/root.c):
	 * only an entry under /dev (a tmpfs at /dev/shm) lies over it */
	bool in_dev = at_or_below(p, "/dev");
	for (size_t i = root->n_fs; i-- > 0;) {
		const struct pst_fs *f = &root->fs[i];
		if (!at_or_below(p, f->dst) || (in_dev && !strictly_below(f->dst, "/dev")))
			continue;
		if (f->kind != PST_FS_SYMLINK && strcmp(p, f->dst))
			for (size_t j = i + 1; j < root->n_fs; j++)
				if (strictly_below(root->fs[j].dst, p)) {
					/* the parent of a later entry's mount point,
					 * made in this one when that entry is mounted */
					n->entry = (int)i;
					n->kind = PF_VIRTUAL;
					n->st.st_mode = S_IFDIR | 0755;
					return 0;
				}
		n->entry = (int)i;
		if (f->kind == PST_FS_SYMLINK) {
			/* the loader refuses entries under a symlink one: p is it */
			n->is_link = true;
			snprintf(n->link, sizeof(n->link), "%s", f->target);
			n->st.st_mode = S_IFLNK | 0777;
			return 0;
		}
		if (f->kind != PST_FS_BIND) {
			n->kind = strcmp(p, f->dst) ? PF_VIRTUAL : PF_TMPFS;
			if (f->kind == PST_FS_TMPFS && n->kind == PF_VIRTUAL)
				return ENOENT; /* empty when the handler starts */
			n->st.st_mode = (n->kind == PF_TMPFS ? S_IFDIR : S_IFREG) | 0555;
			return 0;
		}
		const char *rest = p + (strcmp(f->dst, "/") ? strlen(f->dst) : 0);
		if ((size_t)snprintf(n->host, sizeof(n->host), "%s%s",
		                     strcmp(f->src, "/") ? f->src : "", rest) >= sizeof(n->host))
			return ENAMETOOLONG;
		if (!n->host[0])
			snprintf(n->host, sizeof(n->host), "/");
		n->kind = PF_HOST;
		if (lstat(n->host, &n->st) < 0)
			return errno;
		if (S_ISLNK(n->st.st_mode)) {
			ssize_t l = readlink(n->host, n->link, sizeof(n->link) - 1);
			if (l <= 0)
				return l < 0 ? errno : ENOENT;
			n->link[l] = 0;
			n->is_link = true;
		}
		return 0;
	}
	if (in_dev) {
		n->kind = PF_VIRTUAL;
		n->st.st_mode = (strcmp(p, "/dev") ? S_IFCHR : S_IFDIR) | 0755;
		return 0;
	}
	/* the root's own tmpfs: the mount points' parents, its own files */
	n->kind = PF_ROOTDIR;
	n->st.st_mode = S_IFDIR | 0755;
	if (!strcmp(p, "/") || (root->identity_files && !strcmp(p, "/etc")))
		return 0;
	for (size_t i = 0; i < root->n_fs; i++)
		if (strictly_below(root->fs[i].dst, p))
			return 0;
	if (own_file(root, p)) {
		n->kind = PF_VIRTUAL;
		n->st.st_mode = S_IFREG | 0444;
		return 0;
	}
	return ENOENT;
}

static void res_fail(struct pf_res *o, int err, const char *at)
{
	o->err = err;
	snprintf(o->at, sizeof(o->at), "%s", at);
}

void pf_resolve(const struct pf_root *root, const char *path, bool follow, struct pf_res *o)
{
	char cur[PATH_MAX] = "", rest[PATH_MAX], next[PATH_MAX];
	struct node n;
	unsigned links = 0;
	memset(o, 0, sizeof(*o));
	o->entry = -1;
	if ((size_t)snprintf(rest, sizeof(rest), "%s", path) >= sizeof(rest))
		return res_fail(o, ENAMETOOLONG, path);
	/* the root itself */
	n = (struct node){.kind = PF_ROOTDIR, .entry = -1, .st.st_mode = S_IFDIR | 0755};
	if (lookup(root, "/", &n) != 0)
		n = (struct node){.kind = PF_ROOTDIR, .entry = -1, .st.st_mode = S_IFDIR | 0755};
	char *r = rest;
	for (;;) {
		while (*r == '/')
			r++;
		if (!*r)
			break;
		char *end = strchr(r, '/');
		size_t len = end ? (size_t)(end - r) : strlen(r);
		bool last = !end || !end[strspn(end, "/")];
		if (len == 1 && r[0] == '.') {
			r += len;
			continue;
		}
		if (len == 2 && r[0] == '.' && r[1] == '.') {
			char *s = strrchr(cur, '/');
			if (s)
				*s = 0;
			r += len;
			lookup(root, cur[0] ? cur : "/", &n);
			continue;
		}
		/* the directory we are in must be one, and searchable */
		if (!S_ISDIR(n.st.st_mode))
			return res_fail(o, ENOTDIR, cur[0] ? cur : "/");
		if (n.kind == PF_HOST && !may(&n.st, root->uid, root->gid, 1))
			return res_fail(o, EACCES, cur[0] ? cur : "/");
		size_t cl = strlen(cur);
		if (cl + 1 + len >= sizeof(cur))
			return res_fail(o, ENAMETOOLONG, path);
		char cand[PATH_MAX];
		memcpy(cand, cur, cl);
		cand[cl] = '/';
		memcpy(cand + cl + 1, r, len);
		cand[cl + 1 + len] = 0;
		r += len;
		int e = lookup(root, cand, &n);
		if (e)
			return res_fail(o, e, cand);
		if (n.is_link && (follow || !last)) {
			if (++links > PF_SYMLINKS_MAX)
				return res_fail(o, ELOOP, cand);
			if ((size_t)snprintf(next, sizeof(next), "%s/%s", n.link, r) >=
			    sizeof(next))
				return res_fail(o, ENAMETOOLONG, cand);
			memcpy(rest, next, sizeof(rest));
			r = rest;
			if (n.link[0] == '/')
				cur[0] = 0;
			lookup(root, cur[0] ? cur : "/", &n);
			continue;
		}
		memcpy(cur, cand, sizeof(cur));
	}
	snprintf(o->spath, sizeof(o->spath), "%s", cur[0] ? cur : "/");
	o->kind = n.kind;
	o->entry = n.entry;
	o->dir = S_ISDIR(n.st.st_mode);
	o->reg = S_ISREG(n.st.st_mode);
	memcpy(o->host, n.host, sizeof(o->host));
}

/* ---- a sandbox's checks ------------------------------------------------------------ */

struct pf {
	struct pol_ctx *c;
	const struct pst_sandbox *s;
	struct pf_root root;
	char path[POL_PATH_MAX]; /* sandboxes.S.exec[0] */
	const char *exec;
	unsigned lookups;
	bool cache_read;
	uint8_t *cache; /* the root's /etc/ld.so.cache, or NULL */
	size_t cache_len;
	size_t cache_budget;          /* cache entries still to look at (PF_CACHE_WORK) */
	char unusable[PATH_MAX + 96]; /* a library found that ld.so could not load */
};

/* One problem of exec[0]: "WHO PROBLEM" (who: NULL for exec[0] itself). */
__attribute__((format(printf, 3, 4))) static void pf_err(struct pf *f, const char *who,
                                                         const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(msg))
		pst_mark_truncated(msg, sizeof(msg));
	if (who)
		pol_err_str(f->c, f->path, f->exec, "%s %s", who, msg);
	else
		pol_err_str(f->c, f->path, f->exec, "%s", msg);
}

/* snprintf() for messages, cut with "..." when they do not fit. */
__attribute__((format(printf, 3, 4))) static void say(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	if (n >= (int)len)
		pst_mark_truncated(out, len);
}

/* The host as a root, for the hints: "/" bound on "/". */
static const struct pst_fs host_fs = {.kind = PST_FS_BIND, .src = "/", .dst = "/"};

static void host_root(const struct pf *f, struct pf_root *h)
{
	*h = (struct pf_root){.fs = &host_fs, .n_fs = 1, .uid = 0, .gid = 0};
	(void)f;
}

/* The fix for a path missing in the root, when one is known: the host
 * makes it a symlink the root lacks (merged /usr: /lib64 -> usr/lib64),
 * or the host has it, in a directory to bind. */
#define HINT_LINKS 4

static void hint_missing(const struct pf *f, const char *path, char *out, size_t len)
{
	char targets[HINT_LINKS][PATH_MAX], dsts[HINT_LINKS][PATH_MAX];
	struct pf_root h;
	struct pf_res r;
	size_t added = 0;
	out[0] = 0;
	struct pst_fs *fs = calloc(f->root.n_fs + HINT_LINKS, sizeof(*fs));
	if (!fs)
		return;
	memcpy(fs, f->root.fs, f->root.n_fs * sizeof(*fs));
	struct pf_root with = f->root;
	with.fs = fs;
	/* where the root fails, the host has a symlink (merged /usr: /lib64 ->
	 * usr/lib64): would the root resolve the path with it, and the next? */
	for (pf_resolve(&with, path, true, &r); r.err == ENOENT && added < HINT_LINKS;
	     pf_resolve(&with, path, true, &r)) {
		struct stat st;
		ssize_t l;
		if (lstat(r.at, &st) < 0 || !S_ISLNK(st.st_mode) ||
		    (l = readlink(r.at, targets[added], PATH_MAX - 1)) <= 0)
			break;
		targets[added][l] = 0;
		snprintf(dsts[added], PATH_MAX, "%s", r.at);
		fs[with.n_fs++] = (struct pst_fs){
		    .kind = PST_FS_SYMLINK, .dst = dsts[added], .target = targets[added]};
		added++;
	}
	free(fs);
	if (!r.err && added) {
		size_t o = 0;
		for (size_t i = 0; i < added && o < len; i++) {
			int n = snprintf(out + o, len - o,
			                 "%s{ \"symlink\": \"%s\", \"target\": \"%s\" }",
			                 i ? " and " : " (add ", dsts[i], targets[i]);
			o += n > 0 ? (size_t)n : 0;
		}
		if (o < len)
			say(out + o, len - o, ")");
		else
			pst_mark_truncated(out, len);
		return;
	}
	host_root(f, &h);
	pf_resolve(&h, path, true, &r);
	if (r.err || r.dir)
		return;
	char *slash = strrchr(r.spath, '/');
	if (slash && slash != r.spath)
		*slash = 0;
	say(out, len, " (on the host it is %s: add { \"bind\": \"%s\" })", path, r.spath);
}

static const char *errtext(const struct pf_res *r, char *buf, size_t len)
{
	if (r->err == ENOENT)
		snprintf(buf, len, "%s does not exist there", r->at);
	else if (r->err == EACCES)
		snprintf(buf, len, "the directory %s is not searchable by the sandbox's uid",
		         r->at);
	else if (r->err == ELOOP)
		snprintf(buf, len, "more than %d symlinks at %s", PF_SYMLINKS_MAX, r->at);
	else
		snprintf(buf, len, "%s: %s", r->at, strerror(r->err));
	return buf;
}

/* Opens what r found on the host, no symlink followed on the way (a swap
 * since the resolve is refused, not followed). */
static int open_found(const struct pf_res *r)
{
	struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
	                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, r->host, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* A file the handler opens or executes: found (else reported, with the
 * fix), on the host, a regular file the sandbox's uid may read or execute
 * (bit: 4, 1) on a mount that allows it; its fd (st filled in) or -1. */
static int check_file(struct pf *f, const char *who, const char *what, const char *path,
                      unsigned bit, struct pf_res *r, struct stat *st)
{
	char hint[PATH_MAX + 128], e[PATH_MAX + 64];
	pf_resolve(&f->root, path, true, r);
	if (r->err) {
		if (r->err == ENOENT)
			hint_missing(f, path, hint, sizeof(hint));
		else
			hint[0] = 0;
		if (who)
			pf_err(f, who, "is not inside the sandbox's root: %s%s",
			       errtext(r, e, sizeof(e)), hint);
		else
			pf_err(f, NULL, "not found in the sandbox's root: %s%s",
			       errtext(r, e, sizeof(e)), hint);
		return -1;
	}
	if (r->kind != PF_HOST || !r->reg) {
		pf_err(f, who, "is %s, not a regular file",
		       r->dir ? "a directory"
		       : r->kind == PF_HOST
		           ? "a special file (a FIFO, a device, a socket)"
		           : "not a host file (under /dev or /proc, or made by postern)");
		return -1;
	}
	int fd = open_found(r);
	if (fd < 0) {
		pf_err(f, who, "cannot be opened (%s): %s", r->host, strerror(-fd));
		return -1;
	}
	struct statvfs vfs;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		pf_err(f, who, "is not a regular file (%s)", r->host);
		close(fd);
		return -1;
	}
	if (!may(st, f->s->uid, f->s->uid, bit)) {
		pf_err(f, who, "is not %s by the sandbox's uid %u (%s: mode %04o, owner %u:%u)%s",
		       bit == 1 ? "executable" : "readable", f->s->uid, r->host,
		       (unsigned)st->st_mode & 07777, (unsigned)st->st_uid, (unsigned)st->st_gid,
		       bit == 1 ? ": chmod o+x, or set the sandbox's \"uid\" to its owner" : "");
		close(fd);
		return -1;
	}
	if (bit == 1 && fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC)) {
		pf_err(f, who,
		       "lies on a noexec mount on the host (%s): the kernel refuses to execute it; "
		       "bind it from a file system mounted exec",
		       r->host);
		close(fd);
		return -1;
	}
	(void)what;
	return fd;
}

/* ---- libraries, as ld.so finds them ----------------------------------------------------- */

/* An object of the program: the program itself, its libraries. */
struct obj {
	struct pf_elf elf;
	char spath[PATH_MAX]; /* in the root, resolved: its $ORIGIN */
	char name[256];       /* the DT_NEEDED name it was loaded for */
};

/* The root's /etc/ld.so.cache (the "glibc-ld.so.cache1.1" format, alone
 * or after the old one), read once, whole, if small enough. */
static void cache_load(struct pf *f)
{
	struct pf_res r;
	struct stat st;
	f->cache_read = true;
	pf_resolve(&f->root, "/etc/ld.so.cache", true, &r);
	if (r.err || r.kind != PF_HOST || !r.reg)
		return;
	int fd = open_found(&r);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= PF_CACHE_MAX && (f->cache = malloc((size_t)st.st_size))) {
		f->cache_len = (size_t)st.st_size;
		if (pf_fd_read(&fd, 0, f->cache, f->cache_len) < 0) {
			free(f->cache);
			f->cache = NULL;
		}
	}
	close(fd);
}

/* One candidate: found, an ELF object of the program's class and machine
 * (ld.so skips others), readable by the uid. */
static bool lib_try(struct pf *f, const struct obj *prog, const char *path, struct obj *out,
                    bool *unreadable)
{
	struct pf_res r;
	struct stat st;
	char why[128];
	if (++f->lookups > PF_LOOKUPS_MAX)
		return false;
	pf_resolve(&f->root, path, true, &r);
	if (r.err || r.kind != PF_HOST || r.dir)
		return false;
	int fd = r.reg ? open_found(&r) : -1;
	if (fd < 0)
		return false;
	struct pf_reader rd = {pf_fd_read, &fd};
	struct statvfs vfs;
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	          pf_elf_parse(&rd, &out->elf, why, sizeof(why)) == 1 &&
	          out->elf.cls == prog->elf.cls && out->elf.machine == prog->elf.machine;
	bool noexec = ok && fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC);
	close(fd);
	if (ok && (noexec || !may(&st, f->s->uid, f->s->uid, 4))) {
		/* ld.so would fail on it: open (EACCES), or mmap PROT_EXEC */
		*unreadable = true;
		say(f->unusable, sizeof(f->unusable), ": %s is there, but %s", r.spath,
		    noexec ? "on a noexec mount on the host" : "not readable by the sandbox's uid");
		return false;
	}
	if (ok)
		snprintf(out->spath, sizeof(out->spath), "%s", r.spath);
	return ok;
}

/* Each directory of a search list (':' or ';' separated), $ORIGIN
 * replaced by the object's directory; those with another $ skipped. */
static bool lib_in_list(struct pf *f, const struct obj *prog, const struct obj *o, const char *list,
                        const char *name, struct obj *out, bool *unreadable)
{
	char origin[PATH_MAX];
	snprintf(origin, sizeof(origin), "%s", o->spath);
	char *sl = strrchr(origin, '/');
	if (sl)
		sl == origin ? (void)(sl[1] = 0) : (void)(*sl = 0);
	for (const char *p = list; p && *p;) {
		size_t n = strcspn(p, ":;");
		char dir[PATH_MAX], cand[PATH_MAX];
		size_t d = 0;
		bool skip = n == 0;
		for (size_t i = 0; i < n && !skip;) {
			const char *sub = NULL;
			size_t used = 0;
			if (!strncmp(p + i, "$ORIGIN", 7) && (i + 7 == n || p[i + 7] == '/'))
				sub = origin, used = 7;
			else if (!strncmp(p + i, "${ORIGIN}", 9) && i + 9 <= n)
				sub = origin, used = 9;
			else if (p[i] == '$')
				skip = true;
			if (sub) {
				size_t l = strlen(sub);
				if (d + l >= sizeof(dir))
					skip = true;
				else
					memcpy(dir + d, sub, l), d += l;
				i += used;
			} else if (!skip) {
				if (d + 1 >= sizeof(dir))
					skip = true;
				else
					dir[d++] = p[i++];
			}
		}
		dir[d] = 0;
		if (!skip && dir[0] == '/' &&
		    (size_t)snprintf(cand, sizeof(cand), "%s/%s", dir, name) < sizeof(cand) &&
		    lib_try(f, prog, cand, out, unreadable))
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

static const char *env_get(const struct pst_sandbox *s, const char *key)
{
	for (size_t i = 0; i < s->n_env; i++)
		if (!strcmp(s->env[i].key, key))
			return s->env[i].value;
	return NULL;
}

/* The default directories of the program's machine (multiarch first). */
static const char *default_dirs(const struct pf_elf *e)
{
	if (e->machine == EM_X86_64 && e->cls == ELFCLASS64)
		return "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/usr/lib64:/lib:/"
		       "usr/lib";
	if (e->machine == EM_AARCH64)
		return "/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu:/lib64:/usr/lib64:/lib:/"
		       "usr/lib";
	if (e->machine == EM_386)
		return "/lib/i386-linux-gnu:/usr/lib/i386-linux-gnu:/lib32:/usr/lib32:/lib:/usr/"
		       "lib";
	return e->cls == ELFCLASS64 ? "/lib64:/usr/lib64:/lib:/usr/lib" : "/lib:/usr/lib";
}

/* ld.so's order: DT_RPATH of the object and then of the program (unless
 * the object has DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, the cache, the
 * default directories; a name with a slash is a path. */
static bool lib_find(struct pf *f, const struct obj *prog, const struct obj *o, const char *name,
                     struct obj *out, bool *unreadable)
{
	if (strchr(name, '/')) {
		char cand[PATH_MAX];
		snprintf(cand, sizeof(cand), "%s%s", name[0] == '/' ? "" : "/", name);
		return lib_try(f, prog, cand, out, unreadable);
	}
	if (!o->elf.has_runpath) {
		if (o->elf.has_rpath &&
		    lib_in_list(f, prog, o, o->elf.rpath, name, out, unreadable))
			return true;
		if (o != prog && prog->elf.has_rpath && !prog->elf.has_runpath &&
		    lib_in_list(f, prog, prog, prog->elf.rpath, name, out, unreadable))
			return true;
	}
	const char *llp = env_get(f->s, "LD_LIBRARY_PATH");
	if (llp && lib_in_list(f, prog, o, llp, name, out, unreadable))
		return true;
	if (o->elf.has_runpath && lib_in_list(f, prog, o, o->elf.runpath, name, out, unreadable))
		return true;
	if (!f->cache_read)
		cache_load(f);
	size_t ci = 0;
	for (const char *v;
	     (v = pf_cache_next(f->cache, f->cache_len, name, &ci, &f->cache_budget));)
		if (v[0] == '/' && lib_try(f, prog, v, out, unreadable))
			return true;
	return lib_in_list(f, prog, o, default_dirs(&prog->elf), name, out, unreadable);
}

/* Where the host has name, for the hint: the default directories. */
static void hint_lib(struct pf *f, const struct obj *prog, const char *name, char *out, size_t len)
{
	struct pf_root saved = f->root;
	struct obj found;
	bool unreadable = false;
	unsigned lookups = f->lookups;
	out[0] = 0;
	host_root(f, &f->root);
	f->lookups = 0;
	if (!strchr(name, '/') &&
	    lib_in_list(f, prog, prog, default_dirs(&prog->elf), name, &found, &unreadable)) {
		char *sl = strrchr(found.spath, '/');
		if (sl && sl != found.spath)
			*sl = 0;
		say(out, len, " (the host has it in %s: add { \"bind\": \"%s\" })", found.spath,
		    found.spath);
	}
	f->root = saved;
	f->lookups = lookups;
}

static bool loaded(struct obj **objs, size_t n, const char *interp, const char *name)
{
	const char *base = interp ? strrchr(interp, '/') : NULL;
	if (base && !strcmp(base + 1, name))
		return true; /* ld.so is loaded already, under its name */
	for (size_t i = 0; i < n; i++) {
		const char *b = strrchr(objs[i]->spath, '/');
		if (!strcmp(objs[i]->name, name) || (b && !strcmp(b + 1, name)))
			return true;
	}
	return false;
}

/* The program's libraries and theirs, breadth first as ld.so loads them. */
static void check_libs(struct pf *f, const char *who, struct obj *prog)
{
	struct obj *objs[PF_OBJECTS_MAX];
	const char *interp = prog->elf.has_interp ? prog->elf.interp : NULL;
	size_t n = 1;
	objs[0] = prog;
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < objs[i]->elf.n_needed; k++) {
			const char *name = pf_elf_needed(&objs[i]->elf, k);
			if (loaded(objs, n, interp, name))
				continue;
			if (n == PF_OBJECTS_MAX || f->lookups > PF_LOOKUPS_MAX) {
				pf_err(f, who, "needs more libraries than preflight follows (%d)",
				       PF_OBJECTS_MAX);
				goto out;
			}
			struct obj *lib = malloc(sizeof(*lib));
			bool unreadable = false;
			if (!lib) {
				pf_err(f, who, "out of memory");
				goto out;
			}
			if (lib_find(f, prog, objs[i], name, lib, &unreadable)) {
				snprintf(lib->name, sizeof(lib->name), "%s", name);
				objs[n++] = lib;
				continue;
			}
			free(lib);
			if (f->lookups > PF_LOOKUPS_MAX) {
				pf_err(f, who,
				       "needs more library lookups than preflight makes (%d)",
				       PF_LOOKUPS_MAX);
				goto out;
			}
			char hint[PATH_MAX + 128], by[PATH_MAX + 32] = "";
			if (i)
				snprintf(by, sizeof(by), " (needed by %s)", objs[i]->spath);
			if (unreadable)
				snprintf(hint, sizeof(hint), "%s", f->unusable);
			else
				hint_lib(f, prog, name, hint, sizeof(hint));
			pf_err(
			    f, who,
			    "%slibrary %s%s, which is not inside the sandbox's root as ld.so "
			    "searches it "
			    "(DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.cache, the default "
			    "directories)%s",
			    "needs the ", name, by, hint);
		}
	}
out:
	for (size_t i = 1; i < n; i++)
		free(objs[i]);
}

/* ---- a program --------------------------------------------------------------------- */

/* An ELF program's interpreter (in the root, executable, an ELF file of
 * no interpreter of its own) and, through it, its libraries. */
static void check_dynamic(struct pf *f, const char *who, struct obj *prog)
{
	char sub[PATH_MAX + 64], why[160];
	if (!prog->elf.has_interp) {
		if (prog->elf.n_needed)
			pf_err(f, who,
			       "needs libraries (DT_NEEDED) but names no interpreter (PT_INTERP)");
		return;
	}
	if (who)
		snprintf(sub, sizeof(sub), "%s: its interpreter %s", who, prog->elf.interp);
	else
		snprintf(sub, sizeof(sub), "its interpreter %s", prog->elf.interp);
	struct pf_res ir;
	struct stat ist;
	int ifd = check_file(f, sub, "interpreter", prog->elf.interp, 1, &ir, &ist);
	if (ifd < 0)
		return; /* its libraries are the interpreter's to find */
	struct pf_elf *ie = malloc(sizeof(*ie));
	struct pf_reader ird = {pf_fd_read, &ifd};
	int ie_r = ie ? pf_elf_parse(&ird, ie, why, sizeof(why)) : -1;
	if (ie_r != 1 || ie->has_interp)
		pf_err(f, sub, "is not an ELF interpreter (%s)", ir.host);
	free(ie);
	close(ifd);
	check_libs(f, who, prog);
}
/* path (exec[0], or an interpreter of it: who says which) executable in the
 * root: a "#!" script whose interpreter is, or an ELF program whose
 * PT_INTERP and libraries are. */
static void check_prog(struct pf *f, const char *who, const char *path, unsigned depth)
{
	struct pf_res r;
	struct stat st;
	char why[160];
	int fd = check_file(f, who, "program", path, 1, &r, &st);
	if (fd < 0)
		return;
	char head[256];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	char interp[256], sub[PATH_MAX + 64];
	int sh = n > 0 ? pf_shebang(head, (size_t)n, interp, sizeof(interp)) : 0;
	if (sh != 0) {
		close(fd);
		if (sh < 0) {
			pf_err(f, who, "has a \"#!\" line that names no interpreter");
			return;
		}
		if (!may(&st, f->s->uid, f->s->uid, 4)) {
			pf_err(f, who,
			       "is a script not readable by the sandbox's uid %u (%s: mode %04o): "
			       "its interpreter could not read it",
			       f->s->uid, r.host, (unsigned)st.st_mode & 07777);
			return;
		}
		if (depth >= PF_SCRIPT_DEPTH) {
			pf_err(f, who, "nests \"#!\" interpreters deeper than the kernel allows");
			return;
		}
		if (who)
			snprintf(sub, sizeof(sub), "%s: its interpreter %s (#!)", who, interp);
		else
			snprintf(sub, sizeof(sub), "its interpreter %s (#!)", interp);
		if (interp[0] != '/') {
			pf_err(f, who, "has a \"#!\" interpreter %s that is not an absolute path",
			       interp);
			return;
		}
		check_prog(f, sub, interp, depth + 1);
		return;
	}
	struct obj *prog = calloc(1, sizeof(*prog));
	struct pf_reader rd = {pf_fd_read, &fd};
	int e = prog ? pf_elf_parse(&rd, &prog->elf, why, sizeof(why)) : -1;
	close(fd);
	if (!prog) {
		pf_err(f, who, "out of memory");
		return;
	}
	if (e == 0)
		pf_err(f, who,
		       "is neither an ELF program nor a \"#!\" script: the kernel would refuse to "
		       "execute it");
	else if (e < 0)
		pf_err(f, who, "is a malformed ELF file (%s): %s", r.host, why);
	if (e <= 0) {
		free(prog);
		return;
	}
	snprintf(prog->spath, sizeof(prog->spath), "%s", r.spath);
	check_dynamic(f, who, prog);
	free(prog);
}

/* ---- the policy ----------------------------------------------------------------------- */

static void sb_path(char *out, const struct pst_sandbox *s, const char *key)
{
	char base[POL_PATH_MAX];
	pol_join(base, "sandboxes", s->name);
	pol_join(out, base, key);
}

/* Every bind source on the host (a spawn fails without it). */
static void check_binds(struct pol_ctx *c, const struct pst_sandbox *s)
{
	for (size_t k = 0; k < s->n_fs; k++) {
		const struct pst_fs *fs = &s->fs[k];
		struct stat st;
		char key[64], p[POL_PATH_MAX];
		if (fs->kind != PST_FS_BIND || lstat(fs->src, &st) == 0)
			continue;
		int e = errno;
		snprintf(key, sizeof(key), "filesystem[%zu].bind", k);
		sb_path(p, s, key);
		pol_err_str(c, p, fs->src, "%s on the host (every spawn would fail to bind it)",
		            e == ENOENT ? "does not exist" : strerror(e));
	}
}

size_t pst_preflight(const struct pst_policy *p, struct pst_diag *diag)
{
	struct pol_ctx c = {.file = p->file, .diag = diag};
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		struct pf f = {.c = &c, .s = s, .exec = s->exec[0], .cache_budget = PF_CACHE_WORK};
		f.root = (struct pf_root){.fs = s->fs,
		                          .n_fs = s->n_fs,
		                          .identity_files = s->identity_files,
		                          .uid = s->uid,
		                          .gid = s->uid};
		check_binds(&c, s);
		sb_path(f.path, s, "exec[0]");
		check_prog(&f, NULL, s->exec[0], 0);
		free(f.cache);
	}
	return c.errors;
}
