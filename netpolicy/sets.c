/*
 * nftables interval sets of addresses: a sandbox's egress CIDRs of one
 * kind when it lists SET_MIN or more of them (sb_NAME_nK), and the clients
 * a listener's allow_from/deny_from permit (access.c's sb_NAME_okV: the
 * allowed ranges less the denied ones). Overlapping and adjacent CIDRs
 * are merged; each set is matched by one lookup. Sets cannot mix
 * families: a kind is one family.
 */
/* SPDX-License-Identifier: MIT */
/*
 * nftables sets and their elements: the interval sets (sb_NAME_nK) that hold a sandbox's CIDRs of
 * one kind when it lists SET_MIN or more of them, with overlapping and adjacent ones merged, each
 * matched by one lookup. Sets cannot mix families: a kind is one family.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "netpolicy/internal.h"

#define TYPE_IPADDR 7
#define TYPE_IP6ADDR 8
#define SET_MIN 4 /* CIDRs of one kind from which a set is used */

/* ---- elements ----------------------------------------------------------------------- */

/* One element of a set: KEY (len bytes), optionally an interval end. */
static void elem_msg(struct np_batch *b, const char *set, uint32_t set_id, const void *key,
                     size_t len, bool interval_end)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	nftnl_set_set_str(s, NFTNL_SET_TABLE, b->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, set);
	nftnl_set_set_u32(s, NFTNL_SET_ID, set_id);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)len);
	if (interval_end)
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
	nftnl_set_elem_add(s, e);
	struct nlmsghdr *n = np_hdr(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE);
	nftnl_set_elems_nlmsg_build_payload(n, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add element", set, "add element to set %s", set);
}

/* ---- interval sets of CIDRs ---------------------------------------------------------------- */

struct range {
	uint8_t lo[16], hi[16]; /* inclusive, network byte order */
};

static int range_cmp(const void *a, const void *b)
{
	return memcmp(((const struct range *)a)->lo, ((const struct range *)b)->lo, 16);
}

/* v + 1 over len bytes; false if it wrapped (v was all ones) */
static bool addr_inc(uint8_t *v, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++v[i])
			return true;
	return false;
}

static bool same_kind(const struct netpolicy_rule *a, const struct netpolicy_rule *b)
{
	if (a->to.family != b->to.family || a->proto != b->proto || a->n_ports != b->n_ports)
		return false;
	return !a->n_ports || !memcmp(a->ports, b->ports, a->n_ports * sizeof(a->ports[0]));
}

/* CIDRs (one family, len bytes) as ranges into r, sorted, overlapping and
 * adjacent ones merged; how many. */
static size_t merged_ranges(const struct netpolicy_cidr *c, size_t n, struct range *r, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		memset(r[i].lo, 0, 16);
		memcpy(r[i].lo, c[i].addr, len);
		memcpy(r[i].hi, r[i].lo, 16);
		for (unsigned bit = c[i].prefix; bit < len * 8; bit++)
			r[i].hi[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	}
	qsort(r, n, sizeof(*r), range_cmp);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m) {
			uint8_t next[16];
			memcpy(next, r[m - 1].hi, 16);
			bool fits = addr_inc(next, len);
			if (!fits || memcmp(r[i].lo, next, 16) <= 0) {
				if (memcmp(r[i].hi, r[m - 1].hi, 16) > 0)
					memcpy(r[m - 1].hi, r[i].hi, 16);
				continue;
			}
		}
		r[m++] = r[i];
	}
	return m;
}

/* v - 1 over len bytes (v is not zero) */
static void addr_dec(uint8_t *v, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (v[i]--)
			return;
}

/* The ranges a[na] less the ranges d[nd] (both sorted and merged, as
 * merged_ranges() leaves them) into out (room for na + nd); how many. */
static size_t ranges_minus(const struct range *a, size_t na, const struct range *d, size_t nd,
                           struct range *out, size_t len)
{
	size_t k = 0, j = 0;
	for (size_t i = 0; i < na; i++) {
		struct range cur = a[i];
		bool left = true;
		while (j < nd && memcmp(d[j].hi, cur.lo, 16) < 0)
			j++; /* below this range, so below the next ones too */
		for (size_t x = j; left && x < nd && memcmp(d[x].lo, cur.hi, 16) <= 0; x++) {
			if (memcmp(d[x].lo, cur.lo, 16) > 0) {
				out[k] = cur;
				memcpy(out[k].hi, d[x].lo, 16);
				addr_dec(out[k].hi, len);
				k++;
			}
			if (memcmp(d[x].hi, cur.hi, 16) >= 0) {
				left = false;
			} else {
				memcpy(cur.lo, d[x].hi, 16);
				addr_inc(cur.lo, len);
			}
		}
		if (left)
			out[k++] = cur;
	}
	return k;
}

/* An interval set of addresses (ip or ip6: v4) holding the ranges r[m]
 * (sorted, merged). Returns its id. */
static uint32_t ranges_set(struct np_batch *b, const char *name, bool v4, const struct range *r,
                           size_t m)
{
	size_t len = v4 ? 4 : 16;
	struct nftnl_set *s = nftnl_set_alloc();
	uint32_t id = ++b->set_id;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, b->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, v4 ? TYPE_IPADDR : TYPE_IP6ADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)len);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	struct nlmsghdr *nh = np_hdr(b, NFT_MSG_NEWSET, NLM_F_CREATE);
	nftnl_set_nlmsg_build_payload(nh, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add set", name, "add set %s", name);
	/* as nft does: an interval end at zero when the first range starts above it */
	static const uint8_t zero[16];
	if (m && memcmp(r[0].lo, zero, len))
		elem_msg(b, name, id, zero, len, true);
	for (size_t i = 0; i < m; i++) {
		elem_msg(b, name, id, r[i].lo, len, false);
		uint8_t end[16];
		memcpy(end, r[i].hi, 16);
		if (addr_inc(end, len))
			elem_msg(b, name, id, end, len, true);
	}
	return id;
}

/* An interval set of addresses (ip or ip6: v4) holding the CIDRs c[n], r:
 * room for n ranges. Returns its id. */
static uint32_t cidr_set(struct np_batch *b, const char *name, bool v4,
                         const struct netpolicy_cidr *c, size_t n, struct range *r)
{
	return ranges_set(b, name, v4, r, merged_ranges(c, n, r, v4 ? 4 : 16));
}

int np_permit_set(struct np_batch *b, const char *name, bool v4, const struct netpolicy_cidr *allow,
                  size_t n_allow, const struct netpolicy_cidr *deny, size_t n_deny, uint32_t *id)
{
	size_t len = v4 ? 4 : 16;
	_cleanup_free_ struct range *a = calloc(n_allow + 1, sizeof(*a));
	_cleanup_free_ struct range *d = calloc(n_deny + 1, sizeof(*d));
	_cleanup_free_ struct range *out = calloc(n_allow + n_deny + 1, sizeof(*out));
	if (!a || !d || !out)
		return -ENOMEM;
	size_t na = 1;
	if (n_allow)
		na = merged_ranges(allow, n_allow, a, len);
	else
		memset(a[0].hi, 0xff, len); /* everyone */
	size_t nd = merged_ranges(deny, n_deny, d, len);
	size_t m = ranges_minus(a, na, d, nd, out, len);
	if (!m)
		return NP_PERMIT_NONE;
	uint8_t ones[16] = {0};
	memset(ones, 0xff, len);
	static const uint8_t zero[16];
	if (m == 1 && !memcmp(out[0].lo, zero, 16) && !memcmp(out[0].hi, ones, 16))
		return NP_PERMIT_ALL;
	*id = ranges_set(b, name, v4, out, m);
	return NP_PERMIT_SET;
}

/* An interval set holding the CIDRs of the member rules (one kind, so one
 * family), r: room for them. Returns its id. */
static uint32_t interval_set(struct np_batch *b, const char *name,
                             const struct netpolicy_rule *rules, size_t n, const bool *member,
                             struct range *r)
{
	_cleanup_free_ struct netpolicy_cidr *c = calloc(n + 1, sizeof(*c));
	bool v4 = false;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (member[i]) {
			v4 = rules[i].to.family == AF_INET;
			if (c)
				c[k++] = rules[i].to;
		}
	return cidr_set(b, name, v4, c, k, r);
}

/* The accept rule(s) of a set of CIDRs of one kind, one per port. */
static void set_rule(struct np_batch *b, const char *chain, const char *acc, const char *set,
                     uint32_t id, const struct netpolicy_rule *kind, const char *desc)
{
	bool v4 = kind->to.family == AF_INET;
	bool ports = kind->n_ports && (kind->proto == IPPROTO_TCP || kind->proto == IPPROTO_UDP);
	for (size_t p = 0; p < (ports ? kind->n_ports : 1); p++) {
		struct nftnl_rule *r = np_rule_new(b, chain);
		np_e_nfproto(r, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
		np_e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16);
		np_e_lookup(r, set, id, false);
		if (kind->proto) {
			np_e_l4proto(r, kind->proto == IPPROTO_ICMP && !v4 ? IPPROTO_ICMPV6
			                                                   : kind->proto);
			if (ports) {
				uint16_t be = htons(kind->ports[p]);
				np_e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
				np_e_cmp(r, NFT_CMP_EQ, &be, 2);
			}
		}
		np_e_counter(r, acc);
		np_e_verdict(r, NF_ACCEPT);
		np_rule_msg(b, r, desc);
	}
}

void np_egress_sets(struct np_batch *b, const struct netpolicy_sandbox *s, const char *chain,
                    const char *acc, const char *desc, bool *done)
{
	_cleanup_free_ bool *member = calloc(s->n_rules + 1, sizeof(bool));
	_cleanup_free_ struct range *r = calloc(s->n_rules + 1, sizeof(*r));
	unsigned nset = 0;
	if (!member || !r)
		return; /* each entry gets its own rule instead */
	for (size_t k = 0; k < s->n_rules; k++) {
		if (done[k])
			continue;
		size_t same = 0;
		for (size_t j = k; j < s->n_rules; j++)
			same += !done[j] && same_kind(&s->rules[k], &s->rules[j]);
		if (same < SET_MIN)
			continue;
		/* this kind only: none of an earlier set's entries */
		memset(member, 0, (s->n_rules + 1) * sizeof(bool));
		for (size_t j = k; j < s->n_rules; j++) {
			member[j] = !done[j] && same_kind(&s->rules[k], &s->rules[j]);
			done[j] |= member[j];
		}
		char setname[48];
		snprintf(setname, sizeof(setname), "sb_%s_n%u", s->name, nset++);
		uint32_t id = interval_set(b, setname, s->rules, s->n_rules, member, r);
		set_rule(b, chain, acc, setname, id, &s->rules[k], desc);
	}
}
