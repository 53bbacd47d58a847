/* SPDX-License-Identifier: MIT */
/*
 * Listeners: the sockets the broker accepts on (listen triggers) and the
 * `sockets` of startup sandboxes (handed over, marked, not polled): bound
 * here or taken from systemd (LISTEN_FDS); the accept loop, in batches,
 * that turns each connection into a request; and, for a reload, the new
 * generation's sockets found open (by address) or opened beside them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/daemon_internal.h"

#define LISTEN_BACKLOG 4096

static void on_listener_readable(uv_poll_t *p, int status, int events);

void listener_start(struct listener *ls)
{
	if (ls->passive || ls->polling || ls->d->stopping || ls->d->paused_emfile)
		return;
	if (uv_poll_start(&ls->poll, UV_READABLE, on_listener_readable) == 0)
		ls->polling = true;
}

void listener_stop(struct listener *ls)
{
	if (!ls->polling)
		return;
	uv_poll_stop(&ls->poll);
	ls->polling = false;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *ls = h->data;
	close(ls->fd);
	free(ls);
}

static void listener_close(struct listener *ls)
{
	listener_stop(ls);
	if (ls->addr.ss.ss_family == AF_UNIX && !ls->passive && !ls->inherited) {
		const struct sockaddr_un *un = (const void *)&ls->addr.ss;
		if (un->sun_path[0])
			unlink(un->sun_path);
	}
	uv_close((uv_handle_t *)&ls->poll, on_listener_closed);
}

void listeners_close_all(struct daemon *d)
{
	while (d->listeners) {
		struct listener *ls = d->listeners;
		d->listeners = ls->next;
		listener_close(ls);
	}
}

/* ---- the accept loop ------------------------------------------------------- */

/* Out of fds (or memory): every listener pauses 100 ms (on_tick resumes). */
static void pause_emfile(struct daemon *d)
{
	d->paused_emfile = true;
	d->emfile_resume_ns = pst_now_ns() + 100000000ull;
	for (struct listener *x = d->listeners; x; x = x->next)
		listener_stop(x);
}

void listeners_emfile_resume(struct daemon *d, uint64_t now)
{
	if (!d->paused_emfile || now < d->emfile_resume_ns)
		return;
	d->paused_emfile = false;
	for (struct listener *ls = d->listeners; ls; ls = ls->next)
		if (ls->sbx && !sbx_at_capacity(ls->sbx))
			listener_start(ls);
}

/* A request for an accepted connection: its peer, its source (inet: the
 * address; unix: the peer's uid), what a refusal names; a unix peer's
 * credentials (the one SO_PEERCRED also serves the environment). */
static void request_accepted(struct pst_request *req, int fd, const struct sockaddr_storage *ss)
{
	request_init(req, PST_TRIGGER_LISTEN);
	req->sock_fd = fd;
	req->has_src = true;
	if (pst_srckey_inet(ss, req->src)) {
		req->peer_sa = *ss;
		pst_peer_format(ss, req->peer, sizeof(req->peer));
		snprintf(req->label, sizeof(req->label), "%s", req->peer);
		return;
	}
	/* unix: the source is the peer's uid; spawn and exit lines name no peer */
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	req->src[0] = AF_UNIX;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		memcpy(req->src + 1, &cred.uid, sizeof(cred.uid));
		req->has_cred = true;
		req->cred = (struct pst_peer_cred){cred.uid, cred.gid, cred.pid};
		snprintf(req->label, sizeof(req->label), "unix:uid=%u", (unsigned)cred.uid);
	}
}

static void log_accept(struct sbx *s, struct listener *ls, const struct pst_request *req)
{
	struct pst_logline l;
	pst_ll_begin(&l, "debug", "accept");
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_str(&l, "listener", ls->addr.text);
	pst_ll_str(&l, "peer", req->label);
	pst_ll_end(&l);
}

static bool id_listed(const uint32_t *l, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (l[i] == id)
			return true;
	return false;
}

/* allow_uids / allow_gids of a unix listener (both empty: everyone): the
 * peer's uid, its primary gid, or one of its supplementary groups
 * (SO_PEERGROUPS) listed. Credentials that cannot be read are refused. */
static bool unix_peer_allowed(int fd, const struct pst_listen_opt *o)
{
	if (!o || (!o->n_allow_uids && !o->n_allow_gids))
		return true;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		return false;
	if (id_listed(o->allow_uids, o->n_allow_uids, cred.uid) ||
	    id_listed(o->allow_gids, o->n_allow_gids, cred.gid))
		return true;
	if (!o->n_allow_gids)
		return false;
	gid_t groups[256];
	socklen_t glen = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0)
		return false; /* ERANGE: more than 256 groups; refused rather than half-checked */
	for (size_t i = 0; i < glen / sizeof(gid_t); i++)
		if (id_listed(o->allow_gids, o->n_allow_gids, groups[i]))
			return true;
	return false;
}

/* One accepted connection -> admit() -> handler_spawn(). */
static void accepted(struct daemon *d, struct listener *ls, int fd,
                     const struct sockaddr_storage *ss)
{
	struct sbx *s = ls->sbx;
	/* marked: the table refuses any new connection from or to it, so
	 * dissolving it (connect AF_UNSPEC) leads nowhere (netpolicy.h) */
	if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
		int mr = netpolicy_mark_socket(fd, false, NULL);
		if (mr < 0) {
			pst_log_errno_throttled(&s->stats.log.accept, "accept", s->conf->name,
			                        "mark the connection (SO_MARK)", -mr);
			close(fd);
			return;
		}
	}
	struct pst_request req;
	request_accepted(&req, fd, ss);
	if (ss->ss_family == AF_UNIX && !unix_peer_allowed(fd, ls->opt)) {
		admission_refused(s, REFUSE_PEER, req.label);
		request_close(&req);
		return;
	}
	if (admit(d, s, &req) != ADMIT_YES) {
		request_close(&req);
		return;
	}
	socklen_t llen = sizeof(req.local_sa);
	if (req.peer[0] && getsockname(fd, (struct sockaddr *)&req.local_sa, &llen) < 0)
		req.local_sa.ss_family = AF_UNSPEC;
	if (pst_log_debug)
		log_accept(s, ls, &req);
	handler_spawn(d, s, &req);
}

static void on_listener_readable(uv_poll_t *p, int status, int events)
{
	struct listener *ls = p->data;
	struct daemon *d = ls->d;
	struct sbx *s = ls->sbx;
	(void)events;

	if (status < 0 || !s)
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		if (!admission_room(d, s))
			return; /* let the kernel backlog hold the rest */
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		/* blocking, as inetd programs expect: the broker does no I/O
		 * on it (a refused one is closed, without linger) */
		int fd = accept4(ls->fd, (struct sockaddr *)&ss, &slen, SOCK_CLOEXEC);
		if (fd >= 0) {
			accepted(d, ls, fd, &ss);
			continue;
		}
		int e = errno;
		if (e == EINTR || e == ECONNABORTED)
			continue;
		if (e == EAGAIN)
			return;
		pst_log_errno_throttled(&s->stats.log.accept, "accept", s->conf->name,
		                        ls->addr.text, e);
		if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
			pause_emfile(d);
		return;
	}
}

/* ---- opening sockets ------------------------------------------------------- */

static bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	if (a->ss_family == AF_UNIX) {
		const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
		return !strcmp(x->sun_path, y->sun_path);
	}
	return false;
}

/* The address of a socket systemd passed, as the policy writes it. */
static void addr_text(struct pst_sockaddr *a)
{
	if (a->ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)&a->ss;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		char path[sizeof(un->sun_path) + 1] = "";
		bool abstract = a->len > off + 1 && un->sun_path[0] == 0;
		if (abstract)
			memcpy(path, un->sun_path + 1, a->len - off - 1);
		else
			memcpy(path, un->sun_path, sizeof(un->sun_path));
		snprintf(a->text, sizeof(a->text), "unix:%s%s", abstract ? "@" : "", path);
		return;
	}
	pst_peer_format(&a->ss, a->text, sizeof(a->text));
}

/* What a passed fd must be to serve: a listening stream socket of a family
 * the policy can name. 0, or -1 with why. */
static int inherited_validate(int fd, struct pst_sockaddr *a, char *why, size_t whylen)
{
	struct stat st;
	int type = 0, dom = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(dom), l3 = sizeof(acc);
	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "not an open fd: %s", strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, whylen, "not a socket (a FIFO or file: use ListenStream=)");
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l2) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l3) < 0) {
		snprintf(why, whylen, "getsockopt: %s", strerror(errno));
		return -1;
	}
	if (type != SOCK_STREAM) {
		snprintf(why, whylen, "a %s socket, not a stream one (use ListenStream=)",
		         type == SOCK_DGRAM       ? "datagram"
		         : type == SOCK_SEQPACKET ? "seqpacket"
		                                  : "raw");
		return -1;
	}
	if (dom != AF_INET && dom != AF_INET6 && dom != AF_UNIX) {
		snprintf(why, whylen, "of address family %d, not inet, inet6 or unix", dom);
		return -1;
	}
	if (!acc) {
		snprintf(why, whylen,
		         "not listening (Accept=yes passes connections: use Accept=no)");
		return -1;
	}
	a->len = sizeof(a->ss);
	if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) < 0) {
		snprintf(why, whylen, "getsockname: %s", strerror(errno));
		return -1;
	}
	addr_text(a);
	return 0;
}

/* A count or pid: decimal digits only; -1 if not. */
static long parse_count(const char *s)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || *end ? -1 : v;
}

static void inherit_error(const char *fd, const char *name, const char *addr, const char *why)
{
	pst_log("error", "inherit", "fd", fd, "name", name, "address", addr, "error", why, NULL);
}

/* The fds systemd passed (LISTEN_FDS from 3, LISTEN_PID this process),
 * each named by LISTEN_FDNAMES when set: CLOEXEC at once, checked, kept
 * for listeners_prepare(). The variables are removed (nothing spawned sees
 * them). 0, or -EINVAL (logged) for fds the broker cannot serve on. */
int listeners_inherit(struct daemon *d)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	int r = 0;
	if (!pid || !fds)
		goto out;
	if (parse_count(pid) != (long)getpid()) {
		char self[16];
		snprintf(self, sizeof(self), "%d", (int)getpid());
		pst_log("warn", "inherit", "listen_pid", pid, "pid", self, "error",
		        "LISTEN_PID is not this process: LISTEN_FDS ignored, the sockets are not "
		        "ours",
		        NULL);
		goto out;
	}
	long cnt = parse_count(fds);
	if (cnt < 0 || cnt > INHERITED_MAX) {
		pst_log("error", "inherit", "listen_fds", fds, "error",
		        "LISTEN_FDS is not a count of 0 to 64 sockets", NULL);
		r = -EINVAL;
		goto out;
	}
	size_t n_names = 0;
	if (names) {
		n_names = 1;
		for (const char *c = names; *c; c++)
			n_names += *c == ':';
		if (n_names != (size_t)cnt) {
			char nn[24];
			snprintf(nn, sizeof(nn), "%zu", n_names);
			pst_log("error", "inherit", "listen_fds", fds, "names", nn, "error",
			        "LISTEN_FDNAMES names a different number of fds than LISTEN_FDS",
			        NULL);
			r = -EINVAL;
			goto out;
		}
	}
	const char *c = names;
	for (long i = 0; i < cnt; i++) {
		struct inherited_fd *e = &d->inherited[d->n_inherited++];
		e->fd = 3 + (int)i;
		fcntl(e->fd, F_SETFD, FD_CLOEXEC);
		if (c) {
			size_t len = strcspn(c, ":");
			snprintf(e->name, sizeof(e->name), "%.*s", (int)len, c);
			c += len + (c[len] == ':');
		}
		char why[160], fd[16];
		if (inherited_validate(e->fd, &e->addr, why, sizeof(why)) < 0) {
			snprintf(fd, sizeof(fd), "%d", e->fd);
			inherit_error(fd, e->name, "-", why);
			r = -EINVAL;
		}
	}
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

/* Does the sandbox declare this address (trigger.listen or sockets)? */
static bool sandbox_declares(const struct pst_sandbox *sc, const struct pst_sockaddr *a)
{
	for (size_t j = 0; j < sc->n_listen; j++)
		if (sockaddr_equal(&sc->listen[j].ss, &a->ss))
			return true;
	for (size_t j = 0; j < sc->n_sockets; j++)
		if (sockaddr_equal(&sc->sockets[j].ss, &a->ss))
			return true;
	return false;
}

/* At start, before any socket is opened: a passed fd named like a sandbox
 * (FileDescriptorName=) must be bound to an address that sandbox declares.
 * 0, or -EINVAL with each mismatch logged. */
int listeners_inherited_check(struct daemon *d, const struct pst_policy *p)
{
	int r = 0;
	for (size_t i = 0; i < d->n_inherited; i++) {
		const struct inherited_fd *e = &d->inherited[i];
		const struct pst_sandbox *sc = e->name[0] ? pst_policy_find(p, e->name) : NULL;
		if (!sc || sandbox_declares(sc, &e->addr))
			continue;
		char fd[16], why[PST_NAME_MAX + PST_ADDR_TEXT_MAX + 200];
		snprintf(fd, sizeof(fd), "%d", e->fd);
		snprintf(why, sizeof(why),
		         "the socket named \"%s\" is bound to %s, which sandbox \"%s\" does not "
		         "declare (fix ListenStream= in the socket unit or the sandbox's "
		         "trigger.listen)",
		         e->name, e->addr.text, sc->name);
		inherit_error(fd, e->name, e->addr.text, why);
		r = -EINVAL;
	}
	return r;
}

/* At start, once the policy's sockets are open: what systemd passed and no
 * address of the policy took is closed. */
void listeners_inherited_unused(struct daemon *d)
{
	for (size_t i = 0; i < d->n_inherited; i++) {
		struct inherited_fd *e = &d->inherited[i];
		if (e->fd < 0)
			continue;
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", e->fd);
		pst_log("warn", "inherit", "fd", fd, "name", e->name[0] ? e->name : "-", "address",
		        e->addr.text, "error", "matches no address of the policy; closed", NULL);
		close(take_fd(&e->fd));
	}
}

/* A socket systemd passed us for this address of this sandbox, or -1: the
 * one named after the sandbox first, then any bound to the address. */
static int take_inherited(struct daemon *d, const char *sandbox, const struct pst_sockaddr *a)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < d->n_inherited; i++) {
			struct inherited_fd *e = &d->inherited[i];
			if (e->fd < 0 || (pass == 0 && strcmp(e->name, sandbox) != 0) ||
			    !sockaddr_equal(&e->addr.ss, &a->ss))
				continue;
			int fd = take_fd(&e->fd);
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
			return fd;
		}
	}
	return -1;
}

static int fail_errno(char *why, size_t whylen, const char *what)
{
	int e = errno;
	snprintf(why, whylen, "%s: %s", what, strerror(e));
	return -e;
}

/* The process umask, read without changing it (threads share it). */
static mode_t current_umask(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	unsigned m = 022;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Umask: %o", &m) == 1)
			break;
	if (f)
		fclose(f);
	return (mode_t)(m & 0777);
}

/* A unix listener's directory and every one above: root's and writable by
 * nobody else (or sticky, like /tmp). Otherwise someone could rename the
 * broker's socket away and put theirs in its place, and its clients would
 * talk to them. */
static int unix_dir_check(const char *path, char *why, size_t whylen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)], w[200];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	slash[slash == dir] = 0;
	int r = pst_dir_trust(dir, w, sizeof(w));
	if (r < 0)
		snprintf(why, whylen,
		         "its directory cannot be trusted: %s (another user could replace the "
		         "socket; put it in a directory only root can write, such as /run/postern)",
		         w);
	return r;
}

/* The mode, owner and group of a unix listener's file, set on the socket
 * bind() made (fresh: mode 0, ours) or made earlier (kept: dev/ino as
 * recorded), reached with O_PATH|O_NOFOLLOW: a link or another file put
 * in its place is refused, never followed. */
static int unix_apply(const char *path, const struct pst_listen_opt *o, bool fresh, dev_t *dev,
                      ino_t *ino, char *why, size_t whylen)
{
	if (!o || (!o->has_mode && !o->has_owner && !o->has_group))
		return 0;
	cleanup_close int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail_errno(why, whylen, "open the socket file");
	bool ours = S_ISSOCK(st.st_mode) && (fresh ? st.st_uid == geteuid() && !(st.st_mode & 07777)
	                                           : st.st_dev == *dev && st.st_ino == *ino);
	if (!ours) {
		snprintf(why, whylen,
		         "%s is not the socket the broker made (replaced by uid %u, mode %04o); "
		         "nothing changed on it",
		         path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EEXIST;
	}
	*dev = st.st_dev;
	*ino = st.st_ino;
	if ((o->has_owner || o->has_group) &&
	    fchownat(fd, "", o->has_owner ? (uid_t)o->owner : (uid_t)-1,
	             o->has_group ? (gid_t)o->group : (gid_t)-1, AT_EMPTY_PATH) < 0)
		return fail_errno(why, whylen, "chown the socket file");
	/* chmod through the O_PATH fd: the inode checked above, whatever the
	 * path names by now */
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	mode_t mode = o->has_mode ? (mode_t)o->mode : 0777 & ~current_umask();
	if (chmod(proc, mode) < 0)
		return fail_errno(why, whylen, "chmod the socket file");
	return 0;
}

/* Options and bind: 0 or a negative errno, with why. A unix socket with a
 * mode, owner or group is bound with mode 0 (fchmod on the socket before
 * bind: its file is made so), and gets them before listen(). */
static int socket_setup(int fd, const struct pst_sockaddr *a, const struct pst_listen_opt *o,
                        bool reuse_port, struct listener *ls, char *why, size_t whylen)
{
	int family = a->ss.ss_family, one = 1;
	bool attrs = o && (o->has_mode || o->has_owner || o->has_group);
	if (family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)&a->ss;
		struct stat st;
		int r = un->sun_path[0] ? unix_dir_check(un->sun_path, why, whylen) : 0;
		if (r < 0)
			return r;
		if (lstat(un->sun_path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				snprintf(why, whylen, "%s exists and is not a socket",
				         un->sun_path);
				return -EEXIST;
			}
			unlink(un->sun_path); /* stale socket of an earlier run */
		}
		if (attrs && fchmod(fd, 0) < 0)
			return fail_errno(why, whylen, "fchmod the socket");
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
			return fail_errno(why, whylen, "SO_REUSEPORT");
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		return fail_errno(why, whylen, "bind");
	if (family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)&a->ss;
		struct stat st;
		int r =
		    attrs ? unix_apply(un->sun_path, o, true, &ls->dev, &ls->ino, why, whylen) : 0;
		if (r < 0)
			return r;
		if (!attrs && un->sun_path[0] && lstat(un->sun_path, &st) == 0) {
			ls->dev = st.st_dev; /* for a reload that sets its mode */
			ls->ino = st.st_ino;
		}
	}
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return fail_errno(why, whylen, "listen");
	return 0;
}

static int open_socket(struct daemon *d, const char *sandbox, const struct pst_sockaddr *a,
                       const struct pst_listen_opt *o, bool reuse_port, struct listener *ls,
                       char *why, size_t whylen)
{
	int fd = take_inherited(d, sandbox, a);
	if (fd >= 0) {
		ls->inherited = true; /* mode, owner, group: systemd's (SocketMode=, ...) */
		return fd;
	}
	cleanup_close int s =
	    socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail_errno(why, whylen, "socket");
	int r = socket_setup(s, a, o, reuse_port, ls, why, whylen);
	return r < 0 ? r : take_fd(&s);
}

/* ---- the sockets of a generation ------------------------------------------ */

static struct listener *find_listener(struct daemon *d, const char *text)
{
	for (struct listener *ls = d->listeners; ls; ls = ls->next)
		if (!strcmp(ls->addr.text, text))
			return ls;
	return NULL;
}

static int set_mark(struct listener *ls, uint32_t mark, const struct pst_sandbox *sc)
{
	struct netpolicy_error me = {0};
	int r;
	if (mark)
		r = netpolicy_mark_socket(ls->fd, true, &me);
	else if ((r = setsockopt(ls->fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) < 0)
		r = -errno;
	if (r < 0) {
		struct pst_logline l;
		pst_ll_begin(&l, "error", "listen");
		pst_ll_str(&l, "sandbox", sc->name);
		pst_ll_str(&l, "address", ls->addr.text);
		ll_netpolicy_error(&l, &me, r);
		pst_ll_end(&l);
		return r;
	}
	ls->mark = mark;
	return 0;
}

/* The mark a socket of this role has: a startup sandbox's inet `sockets`
 * entry is handed to its handler, and marked, so that the table refuses
 * any connection it would make once shut down (netpolicy.h); listeners of
 * listen triggers are never handed over. */
static uint32_t role_mark(const struct pst_sockaddr *a, bool passive)
{
	return passive && (a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6)
	           ? NETPOLICY_MARK_LISTEN
	           : 0;
}

/* A socket opened for a, not linked yet. 0 or a negative errno (logged). */
static int listener_open(struct daemon *d, struct gen *g, const struct pst_sandbox *sc,
                         const struct pst_sockaddr *a, struct plan_listener *pl)
{
	char why[512] = "";
	struct listener *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	ls->fd = open_socket(d, sc->name, a, pl->opt, g->policy->broker.reuse_port, ls, why,
	                     sizeof(why));
	if (ls->fd < 0) {
		int e = ls->fd;
		pst_log("error", "listen", "sandbox", sc->name, "address", a->text, "error", why,
		        NULL);
		free(ls);
		return e;
	}
	ls->d = d;
	ls->addr = *a;
	int r = role_mark(a, pl->passive) ? set_mark(ls, role_mark(a, pl->passive), sc) : 0;
	if (r == 0 && (r = uv_poll_init(d->loop, &ls->poll, ls->fd)) < 0)
		pst_log("error", "listen", "sandbox", sc->name, "address", a->text, "error",
		        uv_strerror(r), NULL);
	if (r < 0) {
		close(ls->fd);
		free(ls);
		return r;
	}
	ls->poll.data = ls;
	pl->ls = ls;
	pl->fresh = true;
	return 0;
}

/* One address of the new generation: the open socket (its mark set to what
 * its new role wants, the old one kept to restore), or a new one. */
static int plan_address(struct daemon *d, struct gen_plan *pl, struct sbx *s,
                        const struct pst_sockaddr *a, const struct pst_listen_opt *opt)
{
	struct plan_listener *p = &pl->ls[pl->n_ls];
	p->s = s;
	p->passive = s->conf->trigger != PST_TRIGGER_LISTEN;
	p->opt = opt;
	struct listener *ls = find_listener(d, a->text);
	if (!ls) {
		int r = listener_open(d, pl->g, s->conf, a, p);
		if (r == 0)
			pl->n_ls++;
		return r;
	}
	p->ls = ls;
	pl->n_ls++;
	if (a->ss.ss_family == AF_UNIX && !ls->inherited) {
		/* a kept socket file gets the new mode, owner, group (not undone
		 * if the reload is refused later) */
		char why[512] = "";
		const struct sockaddr_un *un = (const void *)&a->ss;
		int r = unix_apply(un->sun_path, opt, false, &ls->dev, &ls->ino, why, sizeof(why));
		if (r < 0) {
			pst_log("error", "listen", "sandbox", s->conf->name, "address", a->text,
			        "error", why, NULL);
			return r;
		}
	}
	uint32_t want = role_mark(a, p->passive);
	if (want == ls->mark)
		return 0;
	p->mark_was = ls->mark;
	int r = set_mark(ls, want, s->conf);
	p->remarked = r == 0;
	return r;
}

/* The startup sockets a sandbox's handlers get, from fd 3. */
static void wire_sockets(struct gen_plan *pl, struct sbx *s)
{
	s->send.n_socket_fds = 0;
	for (size_t i = 0; i < pl->n_ls; i++) {
		struct plan_listener *p = &pl->ls[i];
		if (p->s == s && p->passive && s->send.n_socket_fds < MAX_SOCKETS) {
			size_t j = s->send.n_socket_fds++;
			s->send.socket_fds[j].fd = p->ls->fd;
			s->send.socket_fds[j].target = 3 + (int)j;
		}
	}
}

/* Every address of the new generation (listen triggers and startup
 * `sockets`), found open or opened beside the open ones. 0 or a negative
 * errno (logged; listeners_abort() undoes what was done). */
int listeners_prepare(struct daemon *d, struct gen_plan *pl)
{
	struct gen *g = pl->g;
	size_t n = 0;
	for (size_t i = 0; i < g->n_sbx; i++)
		n += g->sbx[i].conf->n_listen + g->sbx[i].conf->n_sockets;
	pl->ls = calloc(n + 1, sizeof(*pl->ls));
	if (!pl->ls) {
		pst_log_errno("listen", NULL, "allocate", ENOMEM);
		return -ENOMEM;
	}
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		const struct pst_sandbox *sc = s->conf;
		bool listen = sc->trigger == PST_TRIGGER_LISTEN;
		const struct pst_sockaddr *addrs = listen ? sc->listen : sc->sockets;
		size_t na = listen ? sc->n_listen : sc->n_sockets;
		for (size_t j = 0; j < na; j++) {
			const struct pst_listen_opt *o =
			    listen && sc->listen_opt ? &sc->listen_opt[j] : NULL;
			int r = plan_address(d, pl, s, &addrs[j], o);
			if (r < 0)
				return r;
		}
		wire_sockets(pl, s);
	}
	return 0;
}

/* The switch: every open socket leaves its owner; the new generation's
 * get theirs and their role (the new ones join the open ones); those it
 * does not have are closed. Polled from admission_resume() on. */
void listeners_commit(struct daemon *d, struct gen_plan *pl)
{
	for (struct listener *ls = d->listeners; ls; ls = ls->next) {
		listener_stop(ls);
		ls->sbx = NULL;
	}
	for (size_t i = 0; i < pl->n_ls; i++) {
		struct plan_listener *p = &pl->ls[i];
		p->ls->sbx = p->s;
		p->ls->passive = p->passive;
		p->ls->opt = p->opt;
		if (p->fresh) {
			p->ls->next = d->listeners;
			d->listeners = p->ls;
			p->fresh = false;
		}
	}
	struct listener **pp = &d->listeners;
	while (*pp) {
		struct listener *ls = *pp;
		if (!ls->sbx) {
			*pp = ls->next;
			listener_close(ls);
		} else {
			pp = &ls->next;
		}
	}
}

/* Undo listeners_prepare(): the sockets it opened closed, the marks it
 * changed restored; the open sockets are as they were. */
void listeners_abort(struct gen_plan *pl)
{
	for (size_t i = 0; i < pl->n_ls; i++) {
		struct plan_listener *p = &pl->ls[i];
		if (p->fresh) {
			listener_close(p->ls);
		} else if (p->remarked) {
			uint32_t m = p->mark_was;
			if (setsockopt(p->ls->fd, SOL_SOCKET, SO_MARK, &m, sizeof(m)) == 0)
				p->ls->mark = m;
		}
	}
	pl->n_ls = 0;
}
