/* SPDX-License-Identifier: MIT */
/*
 * Sandbox networks over rtnetlink (libmnl): one network namespace per
 * sandbox, kept open and bind-mounted at STATE_DIR/netns/NAME; for sandboxes
 * with egress a veth pair (host end IFPREFIX+NAME, peer eth0 created directly
 * inside the namespace), a /30 from pool4 and a /64 from pool6 (host end .1
 * and ::1, sandbox end .2 and ::2), default routes via the host end.
 *
 * The state dir (see netpolicy.h) is opened once, by a walk from "/" that
 * follows no link it does not trust, and everything under it is reached
 * relative to that fd with O_NOFOLLOW: its layout is
 *
 *   lock              flock of the broker using it; holds its pid
 *   netns/NAME        nsfs bind mount of sandbox NAME's namespace
 *   aliases/ALIAS     "INODE\n": /run/netns/ALIAS was made for that namespace
 *   forwarding        "ipv4=V\nipv6=V\n": the sysctls before this broker set them
 *   forwarding.tmp    (being written)
 *
 * Nothing else under it is ever created or removed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "netpolicy/internal.h"

#define IP_NETNS_DIR "/run/netns"	/* where `ip netns exec NAME` looks */
#define ALIAS_MAX 64			/* TABLE (32) + "-" + NAME (12) */

struct np_sb {
	char name[16];
	char ifname[16];
	int netns_fd;
	unsigned slot;
	bool has_veth;
	char alias[ALIAS_MAX];	/* /run/netns/ALIAS made by us, or "" */
	unsigned long alias_ino;	/* of the namespace mounted there */
};

struct netpolicy {
	char table[64];
	char prefix[8];
	char state_dir[PATH_MAX];
	int state_fd;		/* the state dir (O_DIRECTORY) */
	int lock_fd;		/* STATE/lock, flock'ed */
	int netns_dfd;		/* STATE/netns */
	int aliases_dfd;	/* STATE/aliases */
	struct netpolicy_cidr pool4, pool6;
	struct np_sb *sbs;
	size_t n;
	bool forwarding;	/* needed and checked */
	bool fwd_changed;	/* by us: restored at destroy */
	char fwd4[4], fwd6[4];	/* as they were */
	void (*log)(void *, const char *);
	void *log_ctx;
};

void np_error(struct netpolicy_error *e, int err, const char *fmt, ...)
{
	if (!e)
		return;
	va_list ap;
	e->err = err;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* ---- address plan (pure) ------------------------------------------------------ */

int np_addr4(const struct netpolicy_cidr *pool, unsigned slot, unsigned host, uint8_t out[4])
{
	if (pool->family != AF_INET || pool->prefix > 30 || host > 3)
		return -EINVAL;
	uint64_t slots = 1ull << (30 - pool->prefix);
	if (slot >= slots)
		return -ENOSPC;
	uint32_t base;
	memcpy(&base, pool->addr, 4);
	uint32_t a = ntohl(base) + slot * 4 + host;
	a = htonl(a);
	memcpy(out, &a, 4);
	return 0;
}

int np_addr6(const struct netpolicy_cidr *pool, unsigned slot, unsigned host, uint8_t out[16])
{
	if (pool->family != AF_INET6 || pool->prefix > 64)
		return -EINVAL;
	unsigned bits = 64 - pool->prefix;
	if (bits < 32 && slot >= (1u << bits))
		return -ENOSPC;
	memcpy(out, pool->addr, 16);
	/* the slot goes in the subnet bits just above the interface id */
	uint64_t hi = 0;
	for (int i = 0; i < 8; i++)
		hi = hi << 8 | out[i];
	hi |= (uint64_t)slot;
	for (int i = 7; i >= 0; i--, hi >>= 8)
		out[i] = (uint8_t)hi;
	memset(out + 8, 0, 8);
	out[15] = (uint8_t)host;
	return 0;
}

int np_ifname(const char *prefix, const char *sandbox, char out[16])
{
	if (strlen(prefix) + strlen(sandbox) > 15)
		return -ENAMETOOLONG;
	snprintf(out, 16, "%s%s", prefix, sandbox);
	return 0;
}

/* ---- rtnetlink ----------------------------------------------------------------- */

static int nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh)
{
	static char buf[8192];
	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = (uint32_t)time(NULL) ^ (uint32_t)rand();
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	const struct nlmsghdr *h = (const void *)buf;
	if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
		return e->error;
	}
	return 0;
}

static struct mnl_socket *nl_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

static int link_up(struct mnl_socket *nl, const char *name)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_change = IFF_UP;
	ifm->ifi_flags = IFF_UP;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return nl_talk(nl, nlh);
}

static int link_del(struct mnl_socket *nl, const char *name)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_DELLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return nl_talk(nl, nlh);
}

static int veth_add(struct mnl_socket *nl, const char *host, const char *peer, int peer_ns,
		    const char *tag)
{
	char buf[1024];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host);
	struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	struct nlattr *pi = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	struct ifinfomsg *pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
	memset(pifm, 0, sizeof(*pifm));
	pifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_ns);
	mnl_attr_nest_end(nlh, pi);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, li);
	int r = nl_talk(nl, nlh);
	if (r < 0)
		return r;
	/* the owner, so that clean-up never touches another broker's veths
	 * (the kernel ignores an alias given at creation) */
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host);
	mnl_attr_put_strz(nlh, IFLA_IFALIAS, tag);
	return nl_talk(nl, nlh);
}

static int addr_add(struct mnl_socket *nl, const char *ifname, int family, const uint8_t *addr,
		    unsigned prefix)
{
	char buf[512];
	unsigned idx = if_nametoindex(ifname);
	if (!idx)
		return -errno;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = (uint8_t)prefix;
	ifa->ifa_index = idx;
	ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	size_t alen = family == AF_INET ? 4 : 16;
	mnl_attr_put(nlh, IFA_LOCAL, alen, addr);
	mnl_attr_put(nlh, IFA_ADDRESS, alen, addr);
	if (family == AF_INET6)
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	return nl_talk(nl, nlh);
}

static int route_default(struct mnl_socket *nl, const char *ifname, int family, const uint8_t *gw)
{
	char buf[512];
	unsigned idx = if_nametoindex(ifname);
	if (!idx)
		return -errno;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, family == AF_INET ? 4 : 16, gw);
	mnl_attr_put_u32(nlh, RTA_OIF, idx);
	return nl_talk(nl, nlh);
}


/* ---- helpers ----------------------------------------------------------------------- */

static void say(struct netpolicy *np, const char *fmt, ...)
{
	char m[384];
	va_list ap;
	if (!np || !np->log)
		return;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	np->log(np->log_ctx, m);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* "/proc/self/fd/N": how mount(2) and umount2(2) reach what an fd holds,
 * without resolving a path again */
static const char *fd_path(int fd, char buf[32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
	return buf;
}

/* A name postern writes below the state dir or /run/netns: table and
 * sandbox characters only (so never "." or ".."). */
static bool own_name(const char *n)
{
	size_t len = strlen(n);
	if (!len || len >= ALIAS_MAX)
		return false;
	for (const char *c = n; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			return false;
	return true;
}

/* Remove the namespace mount DIR/NAME (only if it is one: nsfs, and when
 * ino is given, that namespace), then the empty file it was mounted on
 * (with empty_ok, also one found with nothing mounted on it: a set-up that
 * died between the two). Returns 1 if something was removed. */
static int ns_remove_at(int dfd, const char *name, unsigned long ino, bool empty_ok)
{
	bool did = false;
	for (int depth = 0; depth < 8; depth++) {
		int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
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
			close(fd);
			return did;
		}
		int r = umount2(fd_path(fd, p), MNT_DETACH);
		close(fd);
		if (r < 0)
			return did;
		did = true;
		ino = 0;	/* below ours: only the file it was mounted on */
	}
	return did;
}

static int read_small(int dfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = 0;
	return 0;
}

/* Write a file below the state dir whole (NAME.tmp, then renamed). */
static int write_small(int dfd, const char *name, const char *text)
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

/* ---- the state dir ------------------------------------------------------------------ */

/* One directory on the way to the state dir (or the state dir itself):
 * root's, and writable by nobody else (on the way, a sticky directory
 * such as /tmp will do: others cannot replace root's entries there). */
static int dir_trusted(int fd, const char *state, const char *shown, bool final,
		       struct netpolicy_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		np_error(err, errno, "netpolicy: state dir %s: stat %s: %s", state, shown, strerror(errno));
		return -errno;
	}
	unsigned mode = (unsigned)st.st_mode & 07777;
	if (!S_ISDIR(st.st_mode)) {
		np_error(err, ENOTDIR, "netpolicy: state dir %s: %s%snot a directory: use a root-owned directory with mode 0700",
			 state, final ? "" : shown, final ? "" : " is ");
		return -ENOTDIR;
	}
	if (st.st_uid != 0) {
		if (final)
			np_error(err, EPERM, "netpolicy: state dir %s: owned by uid %u, not root: use a root-owned directory with mode 0700",
				 state, (unsigned)st.st_uid);
		else
			np_error(err, EPERM, "netpolicy: state dir %s: %s is owned by uid %u, not root: use a state dir whose parent directories only root can write",
				 state, shown, (unsigned)st.st_uid);
		return -EPERM;
	}
	if (mode & 022) {
		if (final) {
			np_error(err, EPERM, "netpolicy: state dir %s: writable by group or others (mode %04o): use a root-owned directory with mode 0700",
				 state, mode);
			return -EPERM;
		}
		if (!(mode & S_ISVTX)) {
			np_error(err, EPERM, "netpolicy: state dir %s: %s is writable by group or others (mode %04o): use a state dir whose parent directories only root can write",
				 state, shown, mode);
			return -EPERM;
		}
	}
	return 0;
}

/* Open the state dir (creating what is missing: parents 0755, itself 0700)
 * by a walk from "/" with O_NOFOLLOW at every step. A link on the way is
 * followed only when root owns it and only root can write where it is
 * (e.g. /var/run -> /run); the state dir itself must not be a link. Each
 * directory passes dir_trusted(). */
static int state_open(const char *state, bool create, int *out, struct netpolicy_error *err)
{
	char rem[2 * PATH_MAX], shown[PATH_MAX] = "";
	int fd = -1, r, links = 0;
	*out = -1;
	if (state[0] != '/' || strlen(state) >= PATH_MAX) {
		np_error(err, EINVAL, "netpolicy: state dir %s: not an absolute path", state);
		return -EINVAL;
	}
	snprintf(rem, sizeof(rem), "%s", state);
	if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		np_error(err, errno, "netpolicy: state dir %s: open /: %s", state, strerror(errno));
		return -errno;
	}
	if ((r = dir_trusted(fd, state, "/", false, err)) < 0)
		goto fail;
	char *p = rem;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char comp[NAME_MAX + 1];
		size_t len = strcspn(p, "/");
		if (len > NAME_MAX) {
			r = -ENAMETOOLONG;
			np_error(err, ENAMETOOLONG, "netpolicy: state dir %s: %s", state, strerror(ENAMETOOLONG));
			goto fail;
		}
		memcpy(comp, p, len);
		comp[len] = 0;
		p += len;
		bool last = !p[strspn(p, "/")];
		if (!strcmp(comp, "."))
			continue;
		char next[PATH_MAX];
		if (!strcmp(comp, "..")) {
			/* (from a link's target: ../run) up, and that one checked too */
			char *slash = strrchr(shown, '/');
			if (slash && slash != shown)
				*slash = 0;
			else
				snprintf(shown, sizeof(shown), "/");
			int nfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (nfd < 0) {
				r = -errno;
				np_error(err, errno, "netpolicy: state dir %s: open %s: %s", state, shown, strerror(errno));
				goto fail;
			}
			close(fd);
			fd = nfd;
			if ((r = dir_trusted(fd, state, shown, false, err)) < 0)
				goto fail;
			continue;
		}
		snprintf(next, sizeof(next), "%s/%s", strcmp(shown, "/") ? shown : "", comp);
		int nfd = openat(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, last ? 0700 : 0755) < 0 && errno != EEXIST) {
				r = -errno;
				np_error(err, errno, "netpolicy: state dir %s: create %s: %s", state, next, strerror(errno));
				goto fail;
			}
			nfd = openat(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			r = -errno;
			np_error(err, errno, "netpolicy: state dir %s: open %s: %s", state, next, strerror(errno));
			goto fail;
		}
		struct stat st, dst;
		if (fstat(nfd, &st) < 0 || fstat(fd, &dst) < 0) {
			r = -errno;
			np_error(err, errno, "netpolicy: state dir %s: stat %s: %s", state, next, strerror(errno));
			close(nfd);
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = -1;
			if (last) {
				np_error(err, ELOOP, "netpolicy: state dir %s: is a symbolic link: use a root-owned directory with mode 0700 itself, not a link to one",
					 state);
				r = -ELOOP;
			} else if (st.st_uid != 0 || (dst.st_mode & 022)) {
				np_error(err, ELOOP, "netpolicy: state dir %s: %s is a symbolic link %s: use a path without links others could have made",
					 state, next,
					 st.st_uid ? "not owned by root" : "in a directory others can write");
				r = -ELOOP;
			} else if (++links > 16 || (n = readlinkat(nfd, "", target, sizeof(target) - 1)) <= 0) {
				r = n < 0 ? -errno : -ELOOP;
				np_error(err, -r, "netpolicy: state dir %s: follow %s: %s", state, next, strerror(-r));
			}
			close(nfd);
			if (n <= 0)
				goto fail;
			target[n] = 0;
			char nrem[2 * PATH_MAX];
			if (snprintf(nrem, sizeof(nrem), "%s/%s", target, p) >= (int)sizeof(nrem)) {
				r = -ENAMETOOLONG;
				np_error(err, ENAMETOOLONG, "netpolicy: state dir %s: %s", state, strerror(ENAMETOOLONG));
				goto fail;
			}
			snprintf(rem, sizeof(rem), "%s", nrem);
			p = rem;
			if (target[0] == '/') {
				close(fd);
				if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
					r = -errno;
					goto fail;
				}
				snprintf(shown, sizeof(shown), "/");
			}
			continue;
		}
		if ((r = dir_trusted(nfd, state, next, last, err)) < 0) {
			close(nfd);
			goto fail;
		}
		close(fd);
		fd = nfd;
		snprintf(shown, sizeof(shown), "%s", next);
	}
	/* the state dir itself: no sticky bit excuses it */
	if (shown[0] && strcmp(shown, "/") && (r = dir_trusted(fd, state, shown, true, err)) < 0)
		goto fail;
	if (!shown[0] || !strcmp(shown, "/")) {
		r = -EINVAL;
		np_error(err, EINVAL, "netpolicy: state dir %s: is the root directory: use a directory of its own", state);
		goto fail;
	}
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		np_error(err, errno, "netpolicy: state dir %s: open: %s", state, strerror(errno));
		goto fail;
	}
	close(fd);
	*out = dfd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return r;
}

/* What may be in a state dir: postern's own names, and in a shared
 * /run/postern the per-table lock files (*.lock) and control sockets. Any
 * other entry means it is not a directory of postern's own. */
static int state_entries_ok(int sfd, const char *state, struct netpolicy_error *err)
{
	int dup_fd = dup(sfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		np_error(err, errno, "netpolicy: state dir %s: read: %s", state, strerror(errno));
		return -errno;
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
			continue;	/* gone meanwhile */
		size_t len = strlen(n);
		bool ok = S_ISSOCK(st.st_mode) ||
			  (S_ISREG(st.st_mode) && (!strcmp(n, "lock") || !strcmp(n, "forwarding") ||
						   !strcmp(n, "forwarding.tmp") ||
						   (len > 5 && !strcmp(n + len - 5, ".lock")))) ||
			  (S_ISDIR(st.st_mode) && (!strcmp(n, "netns") || !strcmp(n, "aliases")));
		if (!ok) {
			np_error(err, EEXIST, "netpolicy: state dir %s: holds \"%s\", which is not postern's: use a directory of its own for broker.state_dir",
				 state, n);
			r = -EEXIST;
			break;
		}
	}
	closedir(d);
	return r;
}

/* One broker per state dir: an flock on STATE/lock, which holds its pid. */
static int state_lock(int sfd, const char *state, int *out, struct netpolicy_error *err)
{
	*out = -1;
	for (int tries = 0; tries < 10; tries++) {
		int fd = openat(sfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			np_error(err, errno, "netpolicy: state dir %s: open lock: %s", state, strerror(errno));
			return -errno;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;
			char pid[24] = "";
			ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			close(fd);
			if (e == EWOULDBLOCK)
				np_error(err, EBUSY, "netpolicy: state dir %s: in use by another broker (pid %s): give each broker its own broker.state_dir",
					 state, pid[0] ? pid : "unknown");
			else
				np_error(err, e, "netpolicy: state dir %s: lock: %s", state, strerror(e));
			return e == EWOULDBLOCK ? -EBUSY : -e;
		}
		/* the owner unlinks it at its end, holding the lock: still ours? */
		struct stat a, b;
		if (fstat(fd, &a) == 0 && fstatat(sfd, "lock", &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			char pid[24];
			int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
			if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
				int e = errno;
				np_error(err, e, "netpolicy: state dir %s: write lock: %s", state, strerror(e));
				close(fd);
				return -e;
			}
			*out = fd;
			return 0;
		}
		close(fd);
	}
	np_error(err, EAGAIN, "netpolicy: state dir %s: lock: it keeps being replaced", state);
	return -EAGAIN;
}

static void state_unlock(int sfd, int *lock_fd)
{
	if (*lock_fd < 0)
		return;
	unlinkat(sfd, "lock", 0);
	close_fd(lock_fd);
}

/* A subdirectory of the state dir, made if need be, opened without
 * following a link. */
static int state_subdir(int sfd, const char *name)
{
	if (mkdirat(sfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* /run/netns, when it is root's and only root can write it (made if
 * missing); -1 otherwise: the aliases are a convenience. */
static int ip_netns_dir(bool create)
{
	if (create && mkdir(IP_NETNS_DIR, 0755) < 0 && errno != EEXIST)
		return -1;
	int fd = open(IP_NETNS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)))
		close_fd(&fd);
	return fd;
}

/* ---- forwarding ------------------------------------------------------------------------ */

#define FWD4 "/proc/sys/net/ipv4/ip_forward"
#define FWD6 "/proc/sys/net/ipv6/conf/all/forwarding"

static int read_sysctl(const char *path, char out[4])
{
	char buf[16];
	int r = read_small(AT_FDCWD, path, buf, sizeof(buf));
	if (r < 0)
		return r;
	buf[strcspn(buf, " \n")] = 0;
	if (strcmp(buf, "0") && strcmp(buf, "1") && strcmp(buf, "2"))
		return -EINVAL;
	snprintf(out, 4, "%s", buf);
	return 0;
}

static int write_sysctl(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, v, strlen(v));
	int e = errno;
	close(fd);
	return w < 0 ? -e : 0;
}

/* The values a broker recorded before it changed them, restored and the
 * record removed (a crashed broker's, at the next start). */
static void fwd_restore_recorded(struct netpolicy *np, int sfd)
{
	char buf[64], v4[4] = "", v6[4] = "";
	if (read_small(sfd, "forwarding", buf, sizeof(buf)) < 0)
		return;
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "ipv4=", 5) && (!strcmp(l + 5, "0") || !strcmp(l + 5, "1")))
			snprintf(v4, sizeof(v4), "%s", l + 5);
		if (!strncmp(l, "ipv6=", 5) && (!strcmp(l + 5, "0") || !strcmp(l + 5, "1")))
			snprintf(v6, sizeof(v6), "%s", l + 5);
	}
	if (v4[0])
		write_sysctl(FWD4, v4);
	if (v6[0])
		write_sysctl(FWD6, v6);
	unlinkat(sfd, "forwarding", 0);
	say(np, "forwarding restored to what it was before an earlier instance (ipv4 %s, ipv6 %s)",
	    v4[0] ? v4 : "?", v6[0] ? v6 : "?");
}

/* Enable forwarding when some sandbox has egress: the values before are
 * recorded in the state dir first (so that the next start can restore
 * them after a crash), and restored by netpolicy_destroy(). */
static int set_forwarding(struct netpolicy *np, const struct netpolicy_config *cfg,
			  struct netpolicy_error *err)
{
	bool need = false;
	for (size_t i = 0; i < cfg->n_sandboxes; i++)
		need |= cfg->sandboxes[i].n_rules > 0;
	if (!need || np->forwarding)
		return 0;
	char v4[4], v6[4];
	int r = read_sysctl(FWD4, v4);
	if (r == 0)
		r = read_sysctl(FWD6, v6);
	if (r < 0) {
		np_error(err, -r, "netpolicy: read forwarding sysctls: %s", strerror(-r));
		return r;
	}
	if (!strcmp(v4, "1") && !strcmp(v6, "1")) {
		np->forwarding = true;	/* as it was: nothing to restore */
		return 0;
	}
	char rec[64];
	snprintf(rec, sizeof(rec), "ipv4=%s\nipv6=%s\n", v4, v6);
	if ((r = write_small(np->state_fd, "forwarding", rec)) < 0) {
		np_error(err, -r, "netpolicy: state dir %s: record forwarding: %s", np->state_dir,
			 strerror(-r));
		return r;
	}
	snprintf(np->fwd4, sizeof(np->fwd4), "%s", v4);
	snprintf(np->fwd6, sizeof(np->fwd6), "%s", v6);
	np->fwd_changed = true;
	r = strcmp(v4, "1") ? write_sysctl(FWD4, "1") : 0;
	if (r == 0 && strcmp(v6, "1"))
		r = write_sysctl(FWD6, "1");
	if (r < 0) {
		np_error(err, -r, "netpolicy: enable forwarding: %s", strerror(-r));
		return r;
	}
	np->forwarding = true;
	say(np, "forwarding enabled in the broker's network namespace (sandboxes have egress; "
		"was ipv4 %s, ipv6 %s, restored at stop)", v4, v6);
	return 0;
}

static void fwd_restore(struct netpolicy *np)
{
	if (!np->fwd_changed)
		return;
	/* exactly what was there: 1 stays 1 */
	write_sysctl(FWD4, np->fwd4);
	write_sysctl(FWD6, np->fwd6);
	unlinkat(np->state_fd, "forwarding", 0);
	np->fwd_changed = false;
	np->forwarding = false;
}

/* ---- namespaces ------------------------------------------------------------------- */

/* A fresh network namespace, opened and bind-mounted at DIR/NAME, lo up. */
static int netns_new(int dfd, const char *name, int *out, char *why, size_t whylen)
{
	int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), fd = -1, r;
	if (own < 0) {
		snprintf(why, whylen, "open own netns: %s", strerror(errno));
		return -errno;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		r = -errno;
		snprintf(why, whylen, "unshare: %s", strerror(errno));
		close(own);
		return r;
	}
	fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	struct mnl_socket *nl = r == 0 ? nl_open() : NULL;
	if (setns(own, CLONE_NEWNET) < 0)
		abort();	/* the broker must never stay in a sandbox namespace */
	close(own);
	if (r < 0) {
		snprintf(why, whylen, "open new netns: %s", strerror(-r));
		return r;
	}
	if (!nl || (r = link_up(nl, "lo")) < 0) {
		r = nl ? r : -EIO;
		snprintf(why, whylen, "lo up: %s", strerror(-r));
		if (nl)
			mnl_socket_close(nl);
		close(fd);
		return r;
	}
	mnl_socket_close(nl);
	/* clean-up removed whatever an earlier instance left there */
	int mfd = openat(dfd, name, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (mfd < 0) {
		r = -errno;
		snprintf(why, whylen, "create netns/%s: %s", name, strerror(errno));
		close(fd);
		return r;
	}
	char src[32], dst[32];
	if (mount(fd_path(fd, src), fd_path(mfd, dst), NULL, MS_BIND, NULL) < 0) {
		r = -errno;
		snprintf(why, whylen, "bind-mount to netns/%s: %s", name, strerror(errno));
		close(mfd);
		unlinkat(dfd, name, 0);
		close(fd);
		return r;
	}
	close(mfd);
	*out = fd;
	return 0;
}

/* /run/netns/TABLE-NAME too, as `ip netns exec` knows it, for operators:
 * recorded in STATE/aliases first, made only if that name is free. */
static void alias_add(struct netpolicy *np, struct np_sb *s)
{
	char alias[ALIAS_MAX], rec[32], src[32], dst[32];
	struct stat st;
	s->alias[0] = 0;
	if (snprintf(alias, sizeof(alias), "%s-%s", np->table, s->name) >= (int)sizeof(alias) ||
	    fstat(s->netns_fd, &st) < 0)
		return;
	int rd = ip_netns_dir(true);
	if (rd < 0)
		return;
	snprintf(rec, sizeof(rec), "%lu\n", (unsigned long)st.st_ino);
	if (write_small(np->aliases_dfd, alias, rec) < 0) {
		close(rd);
		return;
	}
	int afd = openat(rd, alias, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (afd < 0) {
		if (errno == EEXIST)
			say(np, "sandbox \"%s\": %s/%s exists and is not ours: no ip netns alias", s->name,
			    IP_NETNS_DIR, alias);
		unlinkat(np->aliases_dfd, alias, 0);
		close(rd);
		return;
	}
	if (mount(fd_path(s->netns_fd, src), fd_path(afd, dst), NULL, MS_BIND, NULL) < 0) {
		close(afd);
		unlinkat(rd, alias, 0);
		unlinkat(np->aliases_dfd, alias, 0);
		close(rd);
		return;
	}
	close(afd);
	close(rd);
	snprintf(s->alias, sizeof(s->alias), "%s", alias);
	s->alias_ino = (unsigned long)st.st_ino;
}

/* Remove the alias recorded as NAME (with its namespace's inode) in the
 * aliases dir, if /run/netns/NAME is still that namespace, and the record. */
static void alias_remove(int aliases_dfd, const char *name, unsigned long ino)
{
	int rd = ip_netns_dir(false);
	if (rd >= 0 && ino)
		ns_remove_at(rd, name, ino, false);
	if (rd >= 0)
		close(rd);
	unlinkat(aliases_dfd, name, 0);
}

/* Create the network of one sandbox (namespace, and veth when with egress). */
static int sb_up(struct netpolicy *np, struct np_sb *s, bool egress, struct netpolicy_error *err)
{
	char why[300];
	int r = netns_new(np->netns_dfd, s->name, &s->netns_fd, why, sizeof(why));
	if (r < 0) {
		np_error(err, -r, "netpolicy: sandbox \"%s\": network namespace: %s", s->name, why);
		s->netns_fd = -1;
		return r;
	}
	alias_add(np, s);	/* a convenience: its absence is not an error */
	if (!egress)
		return 0;
	struct mnl_socket *nl = nl_open(), *in = NULL;
	uint8_t h4[4], p4[4], h6[16], p6[16];
	const char *step = "netlink socket";
	int own = -1;
	if (!nl) {
		r = -errno;
		goto out;
	}
	step = "address plan";
	if ((r = np_addr4(&np->pool4, s->slot, 1, h4)) < 0 || (r = np_addr4(&np->pool4, s->slot, 2, p4)) < 0 ||
	    (r = np_addr6(&np->pool6, s->slot, 1, h6)) < 0 || (r = np_addr6(&np->pool6, s->slot, 2, p6)) < 0)
		goto out;
	step = "add veth";
	char tag[96];
	snprintf(tag, sizeof(tag), "postern:%s", np->table);
	if ((r = veth_add(nl, s->ifname, "eth0", s->netns_fd, tag)) < 0)
		goto out;
	s->has_veth = true;
	step = "host address";
	if ((r = addr_add(nl, s->ifname, AF_INET, h4, 30)) < 0 ||
	    (r = addr_add(nl, s->ifname, AF_INET6, h6, 64)) < 0)
		goto out;
	step = "link up";
	if ((r = link_up(nl, s->ifname)) < 0)
		goto out;
	/* the sandbox side, from inside its namespace (names resolve there) */
	step = "enter namespace";
	own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (own < 0 || setns(s->netns_fd, CLONE_NEWNET) < 0) {
		r = -errno;
		goto out;
	}
	in = nl_open();
	step = "sandbox link";
	if (!in)
		r = -errno;
	else if ((r = link_up(in, "eth0")) == 0) {
		step = "sandbox address";
		if ((r = addr_add(in, "eth0", AF_INET, p4, 30)) == 0 &&
		    (r = addr_add(in, "eth0", AF_INET6, p6, 64)) == 0) {
			step = "default route";
			if ((r = route_default(in, "eth0", AF_INET, h4)) == 0)
				r = route_default(in, "eth0", AF_INET6, h6);
		}
	}
	if (setns(own, CLONE_NEWNET) < 0)
		abort();	/* the broker must never stay in a sandbox namespace */
	if (r < 0)
		goto out;
	r = 0;
out:
	if (r < 0)
		np_error(err, -r, "netpolicy: sandbox \"%s\": %s %s: %s", s->name, step, s->ifname,
			 strerror(-r));
	if (nl)
		mnl_socket_close(nl);
	if (in)
		mnl_socket_close(in);
	if (own >= 0)
		close(own);
	return r;
}

static void sb_down(struct netpolicy *np, struct np_sb *s)
{
	if (s->has_veth) {
		struct mnl_socket *nl = nl_open();
		if (nl) {
			link_del(nl, s->ifname);
			mnl_socket_close(nl);
		}
		s->has_veth = false;
	}
	if (s->alias[0])
		alias_remove(np->aliases_dfd, s->alias, s->alias_ino);
	s->alias[0] = 0;
	close_fd(&s->netns_fd);
	if (s->name[0] && np->netns_dfd >= 0)
		ns_remove_at(np->netns_dfd, s->name, 0, true);
}

static struct np_sb *find(struct netpolicy *np, const char *name)
{
	for (size_t i = 0; i < np->n; i++)
		if (!strcmp(np->sbs[i].name, name))
			return &np->sbs[i];
	return NULL;
}

/* The ruleset for a config, given the networks of np. */
static int commit(struct netpolicy *np, const struct netpolicy_config *cfg,
		  struct netpolicy_error *err)
{
	(void)np;
	struct np_rules_sb *rs = calloc(cfg->n_sandboxes + 1, sizeof(*rs));
	if (!rs) {
		np_error(err, ENOMEM, "netpolicy: table \"%s\": %s", cfg->table, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		rs[i].cfg = &cfg->sandboxes[i];
		np_ifname(cfg->ifprefix, cfg->sandboxes[i].name, rs[i].ifname);
		rs[i].has_veth = cfg->sandboxes[i].n_rules > 0;
	}
	int r = np_rules_commit(cfg->table, rs, cfg->n_sandboxes, cfg->listeners, cfg->n_listeners,
				false, err);
	free(rs);
	return r;
}

static int check_config(const struct netpolicy_config *cfg, struct netpolicy_error *err)
{
	char ifn[16];
	if (!cfg->table || !cfg->table[0] || !cfg->ifprefix || !cfg->state_dir) {
		np_error(err, EINVAL, "netpolicy: table, interface prefix and state directory are required");
		return -EINVAL;
	}
	if (!own_name(cfg->table) || strlen(cfg->table) > 32) {
		np_error(err, EINVAL, "netpolicy: table \"%s\": not a valid table name", cfg->table);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		if (!own_name(cfg->sandboxes[i].name) || strlen(cfg->sandboxes[i].name) > 12) {
			np_error(err, EINVAL, "netpolicy: sandbox \"%s\": not a valid sandbox name",
				 cfg->sandboxes[i].name);
			return -EINVAL;
		}
		if (np_ifname(cfg->ifprefix, cfg->sandboxes[i].name, ifn) < 0) {
			np_error(err, ENAMETOOLONG, "netpolicy: sandbox \"%s\": interface name %s%s: %s",
				 cfg->sandboxes[i].name, cfg->ifprefix, cfg->sandboxes[i].name,
				 strerror(ENAMETOOLONG));
			return -ENAMETOOLONG;
		}
	}
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].family != AF_INET && cfg->listeners[i].family != AF_INET6) {
			np_error(err, EAFNOSUPPORT, "netpolicy: handed-over listener %zu: %s", i,
				 strerror(EAFNOSUPPORT));
			return -EAFNOSUPPORT;
		}
	return 0;
}

/* ---- leftovers ---------------------------------------------------------------------- */

struct owned {
	const char *prefix, *tag;
	char names[256][IFNAMSIZ];
	size_t n;
};

static int owned_attr(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);
	if (type == IFLA_IFNAME || type == IFLA_IFALIAS)
		tb[type] = a;
	return MNL_CB_OK;
}

static int owned_cb(const struct nlmsghdr *nlh, void *data)
{
	struct owned *ow = data;
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };
	mnl_attr_parse(nlh, sizeof(struct ifinfomsg), owned_attr, tb);
	if (!tb[IFLA_IFNAME] || !tb[IFLA_IFALIAS] || ow->n >= 256)
		return MNL_CB_OK;
	const char *name = mnl_attr_get_str(tb[IFLA_IFNAME]);
	if (!strncmp(name, ow->prefix, strlen(ow->prefix)) &&
	    !strcmp(mnl_attr_get_str(tb[IFLA_IFALIAS]), ow->tag))
		snprintf(ow->names[ow->n++], IFNAMSIZ, "%s", name);
	return MNL_CB_OK;
}

static void links_owned(struct mnl_socket *nl, struct owned *ow)
{
	static char buf[32768];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = (uint32_t)time(NULL);
	struct rtgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->rtgen_family = AF_PACKET;
	uint32_t seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n <= 0)
			return;
		int r = mnl_cb_run(buf, (size_t)n, seq, portid, owned_cb, ow);
		if (r <= MNL_CB_STOP)
			return;
	}
}

/* What an earlier instance of this table left: its table, its veths (by
 * their alias), and what it recorded in the state dir sfd (locked by the
 * caller). Never a name-prefix match under /run/netns. */
static int cleanup_at(struct netpolicy *np, const char *table, const char *ifprefix, int sfd,
		      struct netpolicy_error *err)
{
	int r = np_rules_commit(table, NULL, 0, NULL, 0, true, err);
	/* veths an earlier instance of this table made: named with our prefix
	 * and tagged "postern:TABLE" in their alias (read over netlink: sysfs
	 * may belong to another network namespace) */
	char tag[96];
	snprintf(tag, sizeof(tag), "postern:%s", table);
	struct mnl_socket *nl = nl_open();
	if (nl) {
		struct owned ow = { .prefix = ifprefix, .tag = tag };
		links_owned(nl, &ow);
		for (size_t i = 0; i < ow.n; i++)
			link_del(nl, ow.names[i]);
		mnl_socket_close(nl);
	}
	if (sfd < 0)
		return r;
	/* the /run/netns aliases recorded, each still the namespace it was */
	int ad = openat(sfd, "aliases", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = ad >= 0 ? fdopendir(ad) : NULL;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			char rec[32];
			if (!own_name(e->d_name)) {
				size_t len = strlen(e->d_name);
				/* a record being written when the broker died */
				if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp"))
					unlinkat(ad, e->d_name, 0);
				continue;
			}
			unsigned long ino = 0;
			if (read_small(ad, e->d_name, rec, sizeof(rec)) == 0)
				ino = strtoul(rec, NULL, 10);
			alias_remove(ad, e->d_name, ino);
		}
		closedir(d);
	} else if (ad >= 0) {
		close(ad);
	}
	/* the namespace mounts in the state dir */
	int nd = openat(sfd, "netns", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = nd >= 0 ? fdopendir(nd) : NULL;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (own_name(e->d_name))
				ns_remove_at(nd, e->d_name, 0, true);
		closedir(d);
	} else if (nd >= 0) {
		close(nd);
	}
	fwd_restore_recorded(np, sfd);
	return r;
}

/* ---- public ------------------------------------------------------------------------- */

int netpolicy_mark_socket(int fd, bool listener, struct netpolicy_error *err)
{
	uint32_t mark = listener ? NETPOLICY_MARK_LISTEN : NETPOLICY_MARK_CONN;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		int e = errno;
		np_error(err, e, "netpolicy: mark the handed-over %s (SO_MARK 0x%08x): %s",
			 listener ? "listener" : "connection", mark, strerror(e));
		return -e;
	}
	return 0;
}

int netpolicy_cleanup(const char *table, const char *ifprefix, const char *state_dir,
		      struct netpolicy_error *err)
{
	int sfd = -1, lock = -1, r;
	if ((r = state_open(state_dir, false, &sfd, err)) < 0) {
		if (r != -ENOENT)
			return r;
		/* no state dir: only the table and the veths */
		return cleanup_at(NULL, table, ifprefix, -1, err);
	}
	if ((r = state_entries_ok(sfd, state_dir, err)) < 0 ||
	    (r = state_lock(sfd, state_dir, &lock, err)) < 0) {
		close(sfd);
		return r;
	}
	r = cleanup_at(NULL, table, ifprefix, sfd, err);
	unlinkat(sfd, "netns", AT_REMOVEDIR);
	unlinkat(sfd, "aliases", AT_REMOVEDIR);
	state_unlock(sfd, &lock);
	close(sfd);
	return r;
}

int netpolicy_create(const struct netpolicy_config *cfg, struct netpolicy **out,
		     struct netpolicy_error *err)
{
	int r = check_config(cfg, err);
	*out = NULL;
	if (r < 0)
		return r;
	struct netpolicy *np = calloc(1, sizeof(*np));
	if (!np || !(np->sbs = calloc(cfg->n_sandboxes + 1, sizeof(*np->sbs)))) {
		free(np);
		np_error(err, ENOMEM, "netpolicy: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	snprintf(np->table, sizeof(np->table), "%s", cfg->table);
	snprintf(np->prefix, sizeof(np->prefix), "%s", cfg->ifprefix);
	snprintf(np->state_dir, sizeof(np->state_dir), "%s", cfg->state_dir);
	np->state_fd = np->lock_fd = np->netns_dfd = np->aliases_dfd = -1;
	np->pool4 = cfg->pool4;
	np->pool6 = cfg->pool6;
	np->log = cfg->log;
	np->log_ctx = cfg->log_ctx;

	/* the state dir before anything: checked, postern's own, ours alone */
	if ((r = state_open(np->state_dir, true, &np->state_fd, err)) < 0 ||
	    (r = state_entries_ok(np->state_fd, np->state_dir, err)) < 0 ||
	    (r = state_lock(np->state_fd, np->state_dir, &np->lock_fd, err)) < 0) {
		close_fd(&np->state_fd);
		free(np->sbs);
		free(np);
		return r;
	}

	/* leftovers of an instance that died without cleaning up */
	struct netpolicy_error cerr = { 0 };
	cleanup_at(np, np->table, np->prefix, np->state_fd, &cerr);

	if ((np->netns_dfd = state_subdir(np->state_fd, "netns")) < 0 ||
	    (np->aliases_dfd = state_subdir(np->state_fd, "aliases")) < 0) {
		r = np->netns_dfd < 0 ? np->netns_dfd : np->aliases_dfd;
		np_error(err, -r, "netpolicy: state dir %s: create %s: %s", np->state_dir,
			 np->netns_dfd < 0 ? "netns" : "aliases", strerror(-r));
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		struct np_sb *s = &np->sbs[np->n++];
		snprintf(s->name, sizeof(s->name), "%s", cfg->sandboxes[i].name);
		np_ifname(np->prefix, s->name, s->ifname);
		s->slot = (unsigned)i;
		s->netns_fd = -1;
		if ((r = sb_up(np, s, cfg->sandboxes[i].n_rules > 0, err)) < 0)
			goto fail;
	}
	if ((r = set_forwarding(np, cfg, err)) < 0 || (r = commit(np, cfg, err)) < 0)
		goto fail;
	*out = np;
	return 0;
fail:;
	struct netpolicy_error e2 = { 0 };
	netpolicy_destroy(np, &e2);
	return r;
}

int netpolicy_netns_fd(const struct netpolicy *np, const char *sandbox)
{
	for (size_t i = 0; i < np->n; i++)
		if (!strcmp(np->sbs[i].name, sandbox))
			return np->sbs[i].netns_fd >= 0 ? np->sbs[i].netns_fd : -ENOENT;
	return -ENOENT;
}

int netpolicy_reload(struct netpolicy *np, const struct netpolicy_config *cfg,
		     struct netpolicy_error *err)
{
	int r = check_config(cfg, err);
	if (r < 0)
		return r;
	if (strcmp(cfg->table, np->table)) {
		np_error(err, EINVAL, "netpolicy: the table name cannot change on reload");
		return -EINVAL;
	}
	/* rules first: if the kernel refuses them, nothing has changed */
	if ((r = commit(np, cfg, err)) < 0)
		return r;
	struct np_sb *nsb = calloc(cfg->n_sandboxes + 1, sizeof(*nsb));
	if (!nsb) {
		np_error(err, ENOMEM, "netpolicy: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	/* keep networks of sandboxes that stay; create new ones */
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		const struct netpolicy_sandbox *c = &cfg->sandboxes[i];
		struct np_sb *old = find(np, c->name);
		bool egress = c->n_rules > 0;
		if (old && old->has_veth == egress) {
			nsb[i] = *old;
			old->netns_fd = -1;	/* moved */
			old->name[0] = 0;
			old->alias[0] = 0;
			continue;
		}
		if (old) {
			sb_down(np, old);
			old->name[0] = 0;
		}
		struct np_sb *s = &nsb[i];
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		np_ifname(np->prefix, s->name, s->ifname);
		s->netns_fd = -1;
		/* a slot not used by any kept or new sandbox */
		for (unsigned slot = 0;; slot++) {
			bool used = false;
			for (size_t k = 0; k < i; k++)
				used |= nsb[k].slot == slot;
			for (size_t k = 0; k < np->n; k++)
				used |= np->sbs[k].name[0] && np->sbs[k].slot == slot;
			if (!used) {
				s->slot = slot;
				break;
			}
		}
		if ((r = sb_up(np, s, egress, err)) < 0) {
			/* rules are in force; this sandbox has no network */
			s->netns_fd = -1;
		}
	}
	/* networks of removed sandboxes go */
	for (size_t i = 0; i < np->n; i++)
		if (np->sbs[i].name[0])
			sb_down(np, &np->sbs[i]);
	free(np->sbs);
	np->sbs = nsb;
	np->n = cfg->n_sandboxes;
	set_forwarding(np, cfg, err);
	return r;
}

int netpolicy_counters(struct netpolicy *np, const char *sandbox, struct netpolicy_counters *out,
		       struct netpolicy_error *err)
{
	char name[64];
	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "sb_%s_rej", sandbox);
	int r = np_counter_read(np->table, name, &out->denied_packets);
	if (r == 0) {
		snprintf(name, sizeof(name), "sb_%s_acc", sandbox);
		r = np_counter_read(np->table, name, &out->accepted_new);
	}
	if (r < 0)
		np_error(err, -r, "netpolicy: sandbox \"%s\": read counter %s: %s", sandbox, name,
			 strerror(-r));
	return r;
}

int netpolicy_destroy(struct netpolicy *np, struct netpolicy_error *err)
{
	if (!np)
		return 0;
	int r = np_rules_commit(np->table, NULL, 0, NULL, 0, true, err);
	for (size_t i = 0; i < np->n; i++)
		sb_down(np, &np->sbs[i]);
	fwd_restore(np);
	close_fd(&np->netns_dfd);
	close_fd(&np->aliases_dfd);
	if (np->state_fd >= 0) {
		unlinkat(np->state_fd, "netns", AT_REMOVEDIR);
		unlinkat(np->state_fd, "aliases", AT_REMOVEDIR);
		state_unlock(np->state_fd, &np->lock_fd);
	}
	close_fd(&np->state_fd);
	free(np->sbs);
	free(np);
	return r;
}
