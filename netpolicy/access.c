/* SPDX-License-Identifier: MIT */
/*
 * Client address rules of the broker's TCP listeners (allow_from,
 * deny_from): checked on the SYN, in the base chain access_in (filter
 * input -10), so a refused client costs no accept and no spawn. Per
 * listener entry I (one per listen address of a sandbox) and family F
 * (ip, ip6) it applies to:
 *
 *   set sb_NAME_okV  { type ipv4_addr|ipv6_addr; flags interval }   V: 4, 6
 *       the clients the sandbox's lists permit: those of allow_from (every
 *       address without one) less those of deny_from; shared by its addresses
 *   set sb_NAME_lI_okV   the same for listen entry I with lists of its own
 *   counter sb_NAME_addr                                        per sandbox
 *   chain access_in
 *     meta nfproto F tcp flags & (syn|ack) == syn tcp dport P [F daddr A]
 *         F saddr != @..._okV counter name sb_NAME_addr reject with tcp reset
 *     (no set and no saddr match when the lists permit no client of
 *     family F; no rule when they permit every one)
 *
 * One set of what is permitted, never a set of what is denied: a set
 * lookup can miss for a packet in flight while a reload replaces the table
 * (rules.c says why), and a miss in a deny set would let that client in;
 * a miss here refuses it, which a client retries.
 *
 * The ip6 sets hold the IPv4 CIDRs too, as ::ffff:a.b.c.d/(96+n): an
 * IPv4-mapped source (which Linux drops on input anyway, since 4.x) is
 * judged by the IPv4 lists. A [::]:P listener that may be dual-stack (P
 * used by no IPv4 listener) gets the ip rules too, without a daddr: its
 * IPv4 clients arrive as IPv4 packets. Loopback is not exempt: lo traffic
 * passes the input hook like any other.
 *
 * A reset rather than a drop: the client fails at once instead of retrying
 * its SYN for a minute, each refused attempt is counted once (a dropped SYN
 * is retransmitted and would count again), and the answer is the one a
 * closed port gives. Only SYNs are judged: connections established before
 * a reload that now denies their client are left to finish.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "netpolicy/internal.h"

size_t np_access_msgs(const struct netpolicy_access *a, size_t n)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += 24 + 8 * (a[i].n_allow + a[i].n_deny);
	return m;
}

/* The CIDRs of list l[n] for family v4/v6 into out (room for n): IPv4 ones
 * as such, or IPv6 ones and the IPv4 ones mapped. */
static size_t family_cidrs(const struct netpolicy_cidr *l, size_t n, bool v4,
                           struct netpolicy_cidr *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v4 && l[i].family == AF_INET) {
			out[k++] = l[i];
		} else if (!v4 && l[i].family == AF_INET6) {
			out[k++] = l[i];
		} else if (!v4 && l[i].family == AF_INET) {
			struct netpolicy_cidr m = {.family = AF_INET6};
			m.addr[10] = m.addr[11] = 0xff;
			memcpy(m.addr + 12, l[i].addr, 4);
			m.prefix = (uint8_t)(96 + l[i].prefix);
			out[k++] = m;
		}
	}
	return k;
}

/* meta nfproto F tcp syn tcp dport P [daddr A] */
static struct nftnl_rule *match_listener(struct np_batch *b, const char *chain,
                                         const struct netpolicy_access *a, bool v4)
{
	static const uint8_t any[16];
	struct nftnl_rule *r = np_rule_new(b, chain);
	uint16_t be = htons(a->port);
	np_e_nfproto(r, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
	np_e_tcp_syn(r);
	np_e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
	np_e_cmp(r, NFT_CMP_EQ, &be, 2);
	bool own = (a->family == AF_INET) == v4;
	if (own && memcmp(a->addr, any, v4 ? 4 : 16)) {
		np_e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16);
		np_e_cmp(r, NFT_CMP_EQ, a->addr, v4 ? 4 : 16);
	}
	return r;
}

static void refuse(struct np_batch *b, struct nftnl_rule *r, const char *counter, const char *desc)
{
	np_e_counter(r, counter);
	np_e_reject(r, true);
	np_rule_msg(b, r, desc);
}

/* The sets made so far in this batch, by name (the sandbox's are shared),
 * with what np_permit_set() said. */
struct made {
	char name[48];
	uint32_t id;
	int kind;
};
struct made_sets {
	struct made *v;
	size_t n, cap;
};

static void set_name(char *out, size_t len, const struct netpolicy_access *a, bool v4)
{
	if (a->listen_index < 0)
		snprintf(out, len, "sb_%s_ok%c", a->sandbox, v4 ? '4' : '6');
	else
		snprintf(out, len, "sb_%s_l%d_ok%c", a->sandbox, a->listen_index, v4 ? '4' : '6');
}

/* The rule of entry a for one family: the clients it permits in one set. */
static int family_rules(struct np_batch *b, struct made_sets *m, const char *chain,
                        const struct netpolicy_access *a, bool v4)
{
	char counter[48], set[48], desc[96];
	_cleanup_free_ struct netpolicy_cidr *allow = calloc(a->n_allow + 1, sizeof(*allow));
	_cleanup_free_ struct netpolicy_cidr *deny = calloc(a->n_deny + 1, sizeof(*deny));
	if (!allow || !deny)
		return -ENOMEM;
	snprintf(counter, sizeof(counter), "sb_%s_addr", a->sandbox);
	snprintf(desc, sizeof(desc), "sandbox \"%s\": add client address rule", a->sandbox);
	set_name(set, sizeof(set), a, v4);
	struct made *made = NULL;
	for (size_t i = 0; i < m->n && !made; i++)
		if (!strcmp(m->v[i].name, set))
			made = &m->v[i];
	struct made now = {.kind = NP_PERMIT_NONE};
	if (!made) {
		size_t na = family_cidrs(a->allow, a->n_allow, v4, allow);
		size_t nd = family_cidrs(a->deny, a->n_deny, v4, deny);
		/* an allow list without an entry of this family permits none of it */
		if (!a->n_allow || na) {
			now.kind = np_permit_set(b, set, v4, allow, na, deny, nd, &now.id);
			if (now.kind < 0)
				return now.kind;
		}
		if (m->n < m->cap) {
			snprintf(now.name, sizeof(now.name), "%s", set);
			m->v[m->n++] = now;
		}
		made = &now;
	}
	if (made->kind == NP_PERMIT_ALL)
		return 0;
	struct nftnl_rule *r = match_listener(b, chain, a, v4);
	if (made->kind == NP_PERMIT_SET) {
		np_e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 12 : 8, v4 ? 4 : 16);
		np_e_lookup_inv(r, set, made->id);
	}
	refuse(b, r, counter, desc);
	return 0;
}

int np_access_rules(struct np_batch *b, const char *chain, const struct netpolicy_access *a,
                    size_t n)
{
	/* one counter per sandbox, before the rules naming it */
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(a[j].sandbox, a[i].sandbox);
		if (seen)
			continue;
		char counter[48];
		snprintf(counter, sizeof(counter), "sb_%s_addr", a[i].sandbox);
		np_counter_msg(b, counter);
	}
	_cleanup_free_ struct made *made = calloc(2 * n + 1, sizeof(*made));
	if (!made)
		return -ENOMEM;
	struct made_sets m = {made, 0, 2 * n};
	for (size_t i = 0; i < n; i++) {
		bool v4 = a[i].family == AF_INET;
		int r = family_rules(b, &m, chain, &a[i], v4);
		if (r == 0 && a[i].family == AF_INET6 && a[i].v4_too)
			r = family_rules(b, &m, chain, &a[i], true);
		if (r < 0)
			return r;
	}
	return 0;
}
