/* SPDX-License-Identifier: MIT */
/*
 * nftables sets and their elements: the interface-name set and verdict map
 * the base chains dispatch with (sbx_ifs, sbx_in), and the interval sets
 * (sb_NAME_nK) that hold a sandbox's CIDRs of one kind when it lists
 * SET_MIN or more of them, with overlapping and adjacent ones merged, each
 * matched by one lookup. Sets cannot mix families: a kind is one family.
 */
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "netpolicy/internal.h"

#define TYPE_IFNAME 41
#define TYPE_IPADDR 7
#define TYPE_IP6ADDR 8
#define SET_MIN 4 /* CIDRs of one kind from which a set is used */

/* ---- sets of interface names ----------------------------------------------------------------- */

uint32_t np_set_msg(struct np_batch *b, const char *name, bool vmap)
{
	struct nftnl_set *s = nftnl_set_alloc();
	uint32_t id = ++b->set_id;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, b->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, TYPE_IFNAME);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, IFNAMSIZ);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	/* tells nft(8) the key is a string in host order, so that `nft list`
	 * shows interface names instead of "" */
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(64);
	if (ud) {
		nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, 1 /* host */);
		nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
		                   nftnl_udata_buf_len(ud));
		nftnl_udata_buf_free(ud);
	}
	if (vmap) {
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 0);
	}
	struct nlmsghdr *n = np_hdr(b, NFT_MSG_NEWSET, NLM_F_CREATE);
	nftnl_set_nlmsg_build_payload(n, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add set", name, "add set %s", name);
	return id;
}

/* One element of a set or verdict map: KEY (len bytes), optionally an
 * interval end, or with a jump verdict to a chain. */
static void elem_msg(struct np_batch *b, const char *set, uint32_t set_id, const void *key,
                     size_t len, bool interval_end, const char *jump)
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
	if (jump) {
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, NFT_JUMP);
		nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, jump);
	}
	nftnl_set_elem_add(s, e);
	struct nlmsghdr *n = np_hdr(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE);
	nftnl_set_elems_nlmsg_build_payload(n, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add element", set, "add element to set %s", set);
}

void np_ifname_elem(struct np_batch *b, const char *set, uint32_t set_id, const char *ifname,
                    const char *jump)
{
	char key[IFNAMSIZ] = {0};
	snprintf(key, sizeof(key), "%s", ifname);
	elem_msg(b, set, set_id, key, sizeof(key), false, jump);
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

/* An interval set of addresses (ip or ip6: v4) holding the CIDRs c[n], r:
 * room for n ranges. Returns its id. */
static uint32_t cidr_set(struct np_batch *b, const char *name, bool v4,
                         const struct netpolicy_cidr *c, size_t n, struct range *r)
{
	size_t len = v4 ? 4 : 16;
	size_t m = merged_ranges(c, n, r, len);
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
		elem_msg(b, name, id, zero, len, true, NULL);
	for (size_t i = 0; i < m; i++) {
		elem_msg(b, name, id, r[i].lo, len, false, NULL);
		uint8_t end[16];
		memcpy(end, r[i].hi, 16);
		if (addr_inc(end, len))
			elem_msg(b, name, id, end, len, true, NULL);
	}
	return id;
}

uint32_t np_cidr_set(struct np_batch *b, const char *name, bool v4, const struct netpolicy_cidr *c,
                     size_t n)
{
	_cleanup_free_ struct range *r = calloc(n + 1, sizeof(*r));
	if (!r)
		n = 0; /* an empty set: the batch still builds; the caller checked memory */
	return cidr_set(b, name, v4, c, n, r ? r : &(struct range){0});
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
