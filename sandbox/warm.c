/* SPDX-License-Identifier: MIT */
/*
 * Pre-warmed handlers: where they wait and how they get their request.
 *
 * Two waiters, both embedded at build time (Makefile): postern-warm.so
 * (sandbox/waiter/postern-warm-preload.c), written into the root and
 * preloaded into a handler that runs under this program's own dynamic
 * loader (the preloadable check), so it waits exec'd, before its main; and
 * postern-warm (sandbox/waiter/postern-warm.c), a static program exec'd
 * from a sealed memfd, for everything else. The hand-off (sandbox/warm.h):
 * "R" from the handler when it is ready, the far end of a request socket
 * to it, then at release the request queued there and one wake-up byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "sandbox/internal.h"
#include "sandbox/warm.h"

#define ARGV_MAX 256 /* handler argv entries postern-warm passes on */
#define WARM_SO_PATH "/.postern-warm.so"

/* postern-warm.so and postern-warm, embedded at build time (Makefile) */
extern const char pst_warm_so_blob[], pst_warm_so_blob_end[];
extern const char pst_warm_blob[], pst_warm_blob_end[];
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* ---- which waiter ------------------------------------------------------------------------ */

/* The dynamic loader this program runs under (its PT_INTERP), which
 * postern-warm.so was built for; NULL when static. */
static int interp_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_INTERP)
			*(const char **)data =
			    (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	return 1; /* the first object is the program itself */
}

static const char *own_interp_path;
static pthread_once_t own_interp_once = PTHREAD_ONCE_INIT;

static void own_interp_find(void)
{
	dl_iterate_phdr(interp_cb, &own_interp_path);
}

/* postern-warm.so is preloaded with LD_PRELOAD, so not where the policy
 * sets one of its own */
void sb_warm_prepare(struct sandbox *sb)
{
	pthread_once(&own_interp_once, own_interp_find);
	sb->preload_interp = own_interp_path;
	for (size_t i = 0; i < sb->n_env; i++)
		if (!strncmp(sb->env[i], "LD_PRELOAD=", 11))
			sb->preload_interp = NULL;
}

/* Whether the ELF file at fd (eh: its first n bytes) is of our class and
 * has interp as its PT_INTERP. */
static bool elf_interp_is(int fd, const ElfW(Ehdr) * eh, ssize_t n, const char *interp)
{
	ElfW(Phdr) ph[32];
	char want[256];
	bool ok = false;
	if (n < (ssize_t)sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
	    eh->e_phentsize != sizeof(ph[0]) || eh->e_phnum == 0 || eh->e_phnum > 32)
		return false;
	size_t len = eh->e_phnum * sizeof(ph[0]);
	if (pread(fd, ph, len, (off_t)eh->e_phoff) != (ssize_t)len)
		return false;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_INTERP || !ph[i].p_filesz || ph[i].p_filesz > sizeof(want))
			continue;
		ssize_t m = pread(fd, want, ph[i].p_filesz, (off_t)ph[i].p_offset);
		ok = m == (ssize_t)ph[i].p_filesz && !want[m - 1] && !strcmp(want, interp);
	}
	return ok;
}

/* Whether the program at path (inside the new root) runs under the dynamic
 * loader interp, so postern-warm.so can be preloaded into it: an ELF of our
 * class with that PT_INTERP, or a "#!" script whose interpreter is one. In
 * the child. */
bool sb_preloadable(const char *path, const char *interp, int depth)
{
	union {
		ElfW(Ehdr) eh;
		char b[256];
	} u;
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
		return depth == 0 && p[0] == '/' && sb_preloadable(p, interp, 1);
	}
	bool ok = elf_interp_is(fd, &u.eh, n, interp);
	close(fd);
	return ok;
}

/* postern-warm.so into the new root (before it turns read-only). In the child. */
void sb_warm_so_write(int efd)
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

/* postern-warm in a sealed memfd made once per process: exec'd by fd, it
 * needs no path inside any root. */
static int waiter_fd_locked(int *fd, const struct sandbox *sb, struct sandbox_error *err)
{
	if (*fd >= 0)
		return *fd;
	errno = 0;
	_cleanup_close_ int m =
	    memfd_create("postern-warm", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (m < 0 && errno == EINVAL) /* before Linux 6.3: executable anyway */
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
		sb_error(err, e, "prewarm", "postern-warm",
		         "sandbox \"%s\": load postern-warm into a memfd: %s", sb->name,
		         strerror(e));
		return -e;
	}
	*fd = TAKE_FD(m);
	return *fd;
}

int sb_waiter_fd(const struct sandbox *sb, struct sandbox_error *err)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int fd = -1;
	pthread_mutex_lock(&lock);
	int r = waiter_fd_locked(&fd, sb, err);
	pthread_mutex_unlock(&lock);
	return r;
}

/* ---- the waiters, exec'd (in the child) ----------------------------------------------------- */

/* Exec the handler now; postern-warm.so waits before its main. */
void child_exec_preloaded(struct child_args *c)
{
	const struct sandbox *sb = c->sb;
	const char *mode = sb->socket_mode == SANDBOX_SOCKET_STDIO ? "stdio" : "listen_fds";
	char *penv[ENV_MAX + 8 + 3], pw[64];
	size_t k = 0;
	for (char *const *e = c->envp; *e && k < ENV_MAX + 8; e++)
		penv[k++] = *e;
	snprintf(pw, sizeof(pw), "POSTERN_WARM=%d:%s:%d", c->err_fd, mode,
	         c->a->listen_fds > 0 ? c->a->listen_fds : 0);
	penv[k++] = (char *)"LD_PRELOAD=" WARM_SO_PATH;
	penv[k++] = pw;
	penv[k] = NULL;
	if (fcntl(c->err_fd, F_SETFD, 0) < 0)
		child_fail(c->err_fd, errno, "prewarm", "keep the request socket");
	execve(sb->argv[0], sb->argv, penv);
	child_fail(c->err_fd, errno, "exec", "%s", sb->argv[0]);
}

/* Wait in postern-warm, which inherits the error socket. */
void child_exec_waiter(struct child_args *c)
{
	const struct sandbox *sb = c->sb;
	char fdnum[16], nl[16];
	char *wargv[5 + ARGV_MAX + 1];
	size_t k = 0;
	snprintf(fdnum, sizeof(fdnum), "%d", c->err_fd);
	snprintf(nl, sizeof(nl), "%d", c->a->listen_fds > 0 ? c->a->listen_fds : 0);
	wargv[k++] = (char *)"postern-warm";
	wargv[k++] = fdnum;
	wargv[k++] = (char *)(sb->socket_mode == SANDBOX_SOCKET_STDIO ? "stdio" : "listen_fds");
	wargv[k++] = nl;
	wargv[k++] = (char *)"--";
	for (size_t i = 0; sb->argv[i] && i < ARGV_MAX; i++)
		wargv[k++] = sb->argv[i];
	wargv[k] = NULL;
	if (fcntl(c->err_fd, F_SETFD, 0) < 0)
		child_fail(c->err_fd, errno, "prewarm", "keep the request socket");
	syscall(SYS_execveat, c->warm_fd, "", wargv, c->envp, AT_EMPTY_PATH);
	child_fail(c->err_fd, errno, "prewarm", "exec postern-warm");
}

/* ---- the hand-off -------------------------------------------------------------------------------
 */

int sb_send_fds(int sock, const void *data, size_t len, const int *fds, int nfd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = {(void *)data, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
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

int sb_recv_fds(int sock, char tag, int *fds, int nfd, struct child_err *ce)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct iovec iov = {ce, sizeof(*ce)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	int got[2], ngot = 0;
	for (struct cmsghdr *ch = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; ch;
	     ch = CMSG_NXTHDR(&mh, ch)) {
		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
			if (ngot < 2)
				got[ngot++] = fd;
			else
				close(fd);
		}
	}
	bool ok = n == 1 && ((char *)ce)[0] == tag && ngot == nfd && !(mh.msg_flags & MSG_CTRUNC);
	for (int i = 0; i < ngot; i++) {
		if (ok)
			fds[i] = got[i];
		else
			close(got[i]);
	}
	if (ok)
		return 0;
	return n == (ssize_t)sizeof(*ce) && ngot == 0 ? 1 : -1;
}

/* A ready handler: give it the far end of the request socket
 * (sandbox/warm.h); only now: were the child to die with it unread, the
 * record of a failed set-up would be lost to ECONNRESET. */
static int warm_give_req(struct sandbox *sb, struct sandbox_handler *h, struct sandbox_error *err)
{
	int rq[2], r = 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rq) < 0)
		r = -errno;
	else if ((r = sb_send_fds(h->ctl_fd, "Q", 1, &rq[1], 1)) < 0)
		close(rq[0]), close(rq[1]);
	if (r < 0) {
		sb_error(err, -r, "prewarm", sb->name,
		         "sandbox \"%s\": pre-warmed handler %d: request socket: %s", sb->name,
		         (int)h->pid, strerror(-r));
		return r;
	}
	close(rq[1]);
	h->req_fd = rq[0];
	return 0;
}

int sb_warm_ready(struct sandbox *sb, struct sandbox_handler *h, struct sandbox_error *err)
{
	struct child_err ce;
	ssize_t n;
	do
		n = recv(h->ctl_fd, &ce, sizeof(ce), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (n == 1 && ((char *)&ce)[0] == 'R')
		return warm_give_req(sb, h, err);
	if (n == (ssize_t)sizeof(ce))
		return sb_child_error(sb, &ce, err);
	int e = n < 0 ? errno : EPIPE;
	sb_error(err, e, "prewarm", sb->name, "sandbox \"%s\": pre-warmed handler %d: %s", sb->name,
	         (int)h->pid, n == 0 ? "exited during set-up" : strerror(e));
	return -e;
}

int sb_warm_wait(struct sandbox *sb, struct sandbox_handler *h, int timeout_ms,
                 struct sandbox_error *err)
{
	uint64_t until = sb_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int r = sb_warm_ready(sb, h, err);
		if (r != -EAGAIN)
			return r;
		uint64_t now = sb_now_ns();
		struct pollfd p = {.fd = h->ctl_fd, .events = POLLIN};
		if (now >= until ||
		    (poll(&p, 1, (int)((until - now) / 1000000u) + 1) < 0 && errno != EINTR)) {
			int e = now >= until ? ETIMEDOUT : errno;
			sb_error(err, e, "prewarm", sb->name,
			         "sandbox \"%s\": pre-warmed handler %d: wait: %s", sb->name,
			         (int)h->pid, strerror(e));
			return -e;
		}
	}
}

int sb_release(struct sandbox *sb, struct sandbox_handler *h, int sock_fd, int stdin_fd,
               const char *const *extra_env, struct sandbox_error *err)
{
	char buf[WARM_MSG_MAX];
	struct warm_req rq = {
	    .magic = WARM_MAGIC, .has_sock = sock_fd >= 0, .has_stdin = stdin_fd >= 0};
	size_t off = sizeof(rq);
	for (size_t i = 0; extra_env && extra_env[i]; i++) {
		size_t l = strlen(extra_env[i]) + 1;
		if (off + l > sizeof(buf) || rq.n_env >= ENV_MAX) {
			sb_error(err, E2BIG, "release", sb->name,
			         "sandbox \"%s\": release: environment too large", sb->name);
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
	int r = sb_send_fds(h->req_fd, buf, off, fds, nfd);
	if (r < 0) {
		sb_error(err, -r, "release", sb->name,
		         "sandbox \"%s\": release pre-warmed handler %d: %s", sb->name, (int)h->pid,
		         strerror(-r));
		return r;
	}
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	/* a handler that died just now is seen exiting, like any other */
	char wake = WARM_WAKE;
	(void)send(h->ctl_fd, &wake, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	return 0;
}
