/* SPDX-License-Identifier: MIT */
/*
 * Sandbox networks over rtnetlink (libmnl): one network namespace per
 * sandbox, kept open and bind-mounted at STATE_DIR/netns/NAME; for sandboxes
 * with egress a veth pair (host end IFPREFIX+NAME, peer eth0 created directly
 * inside the namespace), a /30 from pool4 and a /64 from pool6 (host end .1
 * and ::1, sandbox end .2 and ::2), default routes via the host end.
 */
#include <arpa/inet.h>
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "netpolicy/internal.h"

#define IP_NETNS_DIR "/run/netns"	/* where `ip netns exec NAME` looks */

struct np_sb {
	char name[16];
	char ifname[16];
	int netns_fd;
	unsigned slot;
	bool has_veth;
	char mount[PATH_MAX];
	char alias[PATH_MAX];	/* /run/netns/TABLE-NAME */
};

struct netpolicy {
	char table[64];
	char prefix[8];
	char state_dir[PATH_MAX];
	struct netpolicy_cidr pool4, pool6;
	struct np_sb *sbs;
	size_t n;
	bool forwarding;
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

/* ---- namespaces ------------------------------------------------------------------- */

/* A fresh network namespace, opened and bind-mounted at path, lo up. */
static int netns_new(const char *path, int *out, char *why, size_t whylen)
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
	int mfd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (mfd < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(why, whylen, "create %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	if (mfd >= 0)
		close(mfd);
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	if (mount(src, path, NULL, MS_BIND, NULL) < 0) {
		r = -errno;
		snprintf(why, whylen, "bind-mount to %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

static void netns_remove(const char *path)
{
	umount2(path, MNT_DETACH);
	unlink(path);
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

static void say(struct netpolicy *np, const char *fmt, ...)
{
	char m[256];
	va_list ap;
	if (!np->log)
		return;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	np->log(np->log_ctx, m);
}

/* Create the network of one sandbox (namespace, and veth when with egress). */
static int sb_up(struct netpolicy *np, struct np_sb *s, bool egress, struct netpolicy_error *err)
{
	char why[300];
	int r = netns_new(s->mount, &s->netns_fd, why, sizeof(why));
	if (r < 0) {
		np_error(err, -r, "netpolicy: sandbox \"%s\": network namespace: %s", s->name, why);
		s->netns_fd = -1;
		return r;
	}
	/* also as `ip netns exec TABLE-NAME` knows it, for operators */
	snprintf(s->alias, sizeof(s->alias), "%s/%s-%s", IP_NETNS_DIR, np->table, s->name);
	if (mkdir(IP_NETNS_DIR, 0755) < 0 && errno != EEXIST) {
		s->alias[0] = 0;
	} else {
		int afd = open(s->alias, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
		char src[64];
		snprintf(src, sizeof(src), "/proc/self/fd/%d", s->netns_fd);
		if (afd < 0 || mount(src, s->alias, NULL, MS_BIND, NULL) < 0) {
			if (afd >= 0)
				unlink(s->alias);
			s->alias[0] = 0;	/* a convenience: its absence is not an error */
		}
		if (afd >= 0)
			close(afd);
	}
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
	(void)np;
	if (s->has_veth) {
		struct mnl_socket *nl = nl_open();
		if (nl) {
			link_del(nl, s->ifname);
			mnl_socket_close(nl);
		}
		s->has_veth = false;
	}
	if (s->netns_fd >= 0)
		close(s->netns_fd);
	s->netns_fd = -1;
	netns_remove(s->mount);
	if (s->alias[0])
		netns_remove(s->alias);
	s->alias[0] = 0;
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
	int r = np_rules_commit(cfg->table, rs, cfg->n_sandboxes, false, err);
	free(rs);
	return r;
}

static int set_forwarding(struct netpolicy *np, const struct netpolicy_config *cfg,
			  struct netpolicy_error *err)
{
	bool need = false;
	for (size_t i = 0; i < cfg->n_sandboxes; i++)
		need |= cfg->sandboxes[i].n_rules > 0;
	if (!need || np->forwarding)
		return 0;
	int r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
	if (r == 0)
		r = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
	if (r < 0) {
		np_error(err, -r, "netpolicy: enable forwarding: %s", strerror(-r));
		return r;
	}
	np->forwarding = true;
	say(np, "forwarding enabled in the broker's network namespace (sandboxes have egress)");
	return 0;
}

static int check_config(const struct netpolicy_config *cfg, struct netpolicy_error *err)
{
	char ifn[16];
	if (!cfg->table || !cfg->table[0] || !cfg->ifprefix || !cfg->state_dir) {
		np_error(err, EINVAL, "netpolicy: table, interface prefix and state directory are required");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++)
		if (np_ifname(cfg->ifprefix, cfg->sandboxes[i].name, ifn) < 0) {
			np_error(err, ENAMETOOLONG, "netpolicy: sandbox \"%s\": interface name %s%s: %s",
				 cfg->sandboxes[i].name, cfg->ifprefix, cfg->sandboxes[i].name,
				 strerror(ENAMETOOLONG));
			return -ENAMETOOLONG;
		}
	return 0;
}

static int mkdirs(const char *dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *c = p + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*c = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---- public ------------------------------------------------------------------------- */

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

int netpolicy_cleanup(const char *table, const char *ifprefix, const char *state_dir,
		      struct netpolicy_error *err)
{
	int r = np_rules_commit(table, NULL, 0, true, err);
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
	char dir[PATH_MAX], pfx[80];
	snprintf(pfx, sizeof(pfx), "%s-", table);
	DIR *d = opendir(IP_NETNS_DIR);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (strncmp(e->d_name, pfx, strlen(pfx)))
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", IP_NETNS_DIR, e->d_name);
			netns_remove(p);
		}
		closedir(d);
	}
	snprintf(dir, sizeof(dir), "%s/netns", state_dir);
	d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			netns_remove(p);
		}
		closedir(d);
	}
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
	np->pool4 = cfg->pool4;
	np->pool6 = cfg->pool6;
	np->log = cfg->log;
	np->log_ctx = cfg->log_ctx;

	/* leftovers of an instance that died without cleaning up */
	struct netpolicy_error cerr = { 0 };
	netpolicy_cleanup(np->table, np->prefix, np->state_dir, &cerr);

	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/netns", np->state_dir);
	if ((r = mkdirs(dir)) < 0) {
		np_error(err, -r, "netpolicy: state directory %s: %s", dir, strerror(-r));
		free(np->sbs);
		free(np);
		return r;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		struct np_sb *s = &np->sbs[np->n++];
		snprintf(s->name, sizeof(s->name), "%s", cfg->sandboxes[i].name);
		np_ifname(np->prefix, s->name, s->ifname);
		snprintf(s->mount, sizeof(s->mount), "%s/%s", dir, s->name);
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
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/netns", np->state_dir);
	/* keep networks of sandboxes that stay; create new ones */
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		const struct netpolicy_sandbox *c = &cfg->sandboxes[i];
		struct np_sb *old = find(np, c->name);
		bool egress = c->n_rules > 0;
		if (old && old->has_veth == egress) {
			nsb[i] = *old;
			old->netns_fd = -1;	/* moved */
			old->name[0] = 0;
			continue;
		}
		if (old) {
			sb_down(np, old);
			old->name[0] = 0;
		}
		struct np_sb *s = &nsb[i];
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		np_ifname(np->prefix, s->name, s->ifname);
		snprintf(s->mount, sizeof(s->mount), "%s/%s", dir, s->name);
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
	int r = np_rules_commit(np->table, NULL, 0, true, err);
	for (size_t i = 0; i < np->n; i++)
		sb_down(np, &np->sbs[i]);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/netns", np->state_dir);
	rmdir(dir);
	if (np->forwarding) {
		write_sysctl("/proc/sys/net/ipv4/ip_forward", "0");
		write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "0");
	}
	free(np->sbs);
	free(np);
	return r;
}
