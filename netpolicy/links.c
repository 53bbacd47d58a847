/* SPDX-License-Identifier: MIT */
/*
 * Links over rtnetlink (libmnl): for a sandbox with egress a veth pair
 * (host end IFPREFIX+NAME, tagged with the alias "postern:TABLE"; peer
 * eth0 created directly inside the sandbox's namespace), a /30 from pool4
 * and a /64 from pool6 (host end .1 and ::1, sandbox end .2 and ::2),
 * default routes via the host end; the address plan; and the removal of
 * the veths an earlier instance of a table left, found by their tag.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "netpolicy/internal.h"

void np__mnl_closep(struct mnl_socket **nl)
{
	if (*nl)
		mnl_socket_close(*nl);
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
	if (strlen(prefix) + strlen(sandbox) > 15 ||
	    snprintf(out, 16, "%s%s", prefix, sandbox) >= 16)
		return -ENAMETOOLONG;
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

struct mnl_socket *np_nl_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

/* An RTM_*LINK request for the link named name. */
static struct nlmsghdr *link_msg(char *buf, uint16_t type, uint16_t flags, const char *name,
                                 struct ifinfomsg **ifm)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	*ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(**ifm));
	(*ifm)->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return nlh;
}

int np_link_up(struct mnl_socket *nl, const char *name)
{
	char buf[512];
	struct ifinfomsg *ifm;
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, 0, name, &ifm);
	ifm->ifi_change = IFF_UP;
	ifm->ifi_flags = IFF_UP;
	return nl_talk(nl, nlh);
}

int np_link_del(struct mnl_socket *nl, const char *name)
{
	char buf[512];
	struct ifinfomsg *ifm;
	return nl_talk(nl, link_msg(buf, RTM_DELLINK, 0, name, &ifm));
}

static int veth_add(struct mnl_socket *nl, const char *host, const char *peer, int peer_ns,
                    const char *tag)
{
	char buf[1024];
	struct ifinfomsg *ifm;
	struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, host, &ifm);
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
	nlh = link_msg(buf, RTM_NEWLINK, 0, host, &ifm);
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

/* ---- a sandbox's veth ------------------------------------------------------------------------ */

/* The addresses of slot s: host and sandbox ends, v4 and v6. */
struct veth_addrs {
	uint8_t h4[4], p4[4], h6[16], p6[16];
};

/* The sandbox side, from inside its namespace (names resolve there); the
 * caller's thread back in its own namespace at once. */
static int veth_inside(const struct np_sb *s, const struct veth_addrs *a, const char **step)
{
	*step = "enter namespace";
	_cleanup_close_ int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (own < 0 || setns(s->netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	_cleanup_mnl_ struct mnl_socket *in = np_nl_open();
	int r;
	*step = "sandbox link";
	if (!in)
		r = -errno;
	else if ((r = np_link_up(in, "eth0")) == 0) {
		*step = "sandbox address";
		if ((r = addr_add(in, "eth0", AF_INET, a->p4, 30)) == 0 &&
		    (r = addr_add(in, "eth0", AF_INET6, a->p6, 64)) == 0) {
			*step = "default route";
			if ((r = route_default(in, "eth0", AF_INET, a->h4)) == 0)
				r = route_default(in, "eth0", AF_INET6, a->h6);
		}
	}
	if (setns(own, CLONE_NEWNET) < 0)
		abort(); /* the broker must never stay in a sandbox namespace */
	return r;
}

/* The veth and the host side; *step says what failed. */
static int veth_host(const struct netpolicy *np, struct np_sb *s, struct veth_addrs *a,
                     const char **step)
{
	const struct netpolicy_cidr *p4 = &np->pool4, *p6 = &np->pool6;
	int r;
	*step = "netlink socket";
	_cleanup_mnl_ struct mnl_socket *nl = np_nl_open();
	if (!nl)
		return -errno;
	*step = "address plan";
	if ((r = np_addr4(p4, s->slot, 1, a->h4)) < 0 ||
	    (r = np_addr4(p4, s->slot, 2, a->p4)) < 0 ||
	    (r = np_addr6(p6, s->slot, 1, a->h6)) < 0 || (r = np_addr6(p6, s->slot, 2, a->p6)) < 0)
		return r;
	*step = "add veth";
	char tag[96];
	snprintf(tag, sizeof(tag), "postern:%s", np->table);
	if ((r = veth_add(nl, s->ifname, "eth0", s->netns_fd, tag)) < 0)
		return r;
	s->has_veth = true;
	*step = "host address";
	if ((r = addr_add(nl, s->ifname, AF_INET, a->h4, 30)) < 0 ||
	    (r = addr_add(nl, s->ifname, AF_INET6, a->h6, 64)) < 0)
		return r;
	*step = "link up";
	return np_link_up(nl, s->ifname);
}

int np_veth_up(const struct netpolicy *np, struct np_sb *s, struct netpolicy_error *err)
{
	struct veth_addrs a;
	const char *step;
	int r = veth_host(np, s, &a, &step);
	if (r == 0)
		r = veth_inside(s, &a, &step);
	if (r < 0)
		np_error(err, -r, step, s->ifname, "netpolicy: sandbox \"%s\": %s %s: %s", s->name,
		         step, s->ifname, strerror(-r));
	return r;
}

/* ---- veths an earlier instance left ------------------------------------------------------------
 */

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
	const struct nlattr *tb[IFLA_MAX + 1] = {0};
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

/* Named with our prefix and tagged "postern:TABLE" in their alias (read over
 * netlink: sysfs may belong to another network namespace). */
void np_links_del_owned(const char *ifprefix, const char *table)
{
	char tag[96];
	snprintf(tag, sizeof(tag), "postern:%s", table);
	_cleanup_mnl_ struct mnl_socket *nl = np_nl_open();
	if (!nl)
		return;
	struct owned ow = {.prefix = ifprefix, .tag = tag};
	links_owned(nl, &ow);
	for (size_t i = 0; i < ow.n; i++)
		np_link_del(nl, ow.names[i]);
}
