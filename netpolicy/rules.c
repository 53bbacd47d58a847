/* SPDX-License-Identifier: MIT */
/*
 * The nftables ruleset, built with libnftnl and committed in one netlink
 * batch. Layout (table inet T; C = NETPOLICY_MARK_CONN 0x70737463, L =
 * NETPOLICY_MARK_LISTEN 0x7073746c; "SYN" = tcp flags & (syn|ack) == syn,
 * a connection attempt, never part of an established flow):
 *
 *   set  sbx_ifs  { type ifname }                    host ends of sandbox veths
 *   map  sbx_in   { type ifname : verdict }          veth -> jump sb_NAME
 *   counter sb_NAME_acc, sb_NAME_rej                 per sandbox
 *   chain forward  (filter forward 0, policy accept)
 *       iifname vmap @sbx_in
 *       oifname @sbx_ifs ct state new counter drop   nobody opens toward a sandbox
 *   chain input    (filter input 0, policy accept)   the broker host itself
 *       iifname @sbx_ifs ct state established,related accept
 *       iifname @sbx_ifs icmpv6 type {nd-*} accept   neighbour discovery
 *       iifname @sbx_ifs meta l4proto tcp counter reject with tcp reset
 *       iifname @sbx_ifs counter reject with icmpx admin-prohibited
 *   chain output   (filter output 0, policy accept)  what the broker host sends
 *       oifname @sbx_ifs ct state new counter drop   not even the broker host opens toward a sandbox
 *       socket mark C SYN counter reject with tcp reset   a handed-over socket connects nowhere
 *       socket mark L SYN counter reject with tcp reset
 *   chain handed_in (filter input 0, policy accept)  toward handed-over sockets
 *       socket mark C SYN counter reject with tcp reset   a dissolved connection never listens
 *       socket mark L [ip|ip6 daddr A] tcp dport P return one per startup `sockets` address
 *       socket mark L SYN counter reject with tcp reset   nor, elsewhere, what a startup handler holds
 *   chain postrouting (nat postrouting 100)
 *       iifname @sbx_ifs masquerade
 *   chain sb_NAME
 *       ct state established,related accept
 *       [ip|ip6] daddr CIDR [meta l4proto P [th dport N]] counter name sb_NAME_acc accept
 *       meta l4proto tcp counter name sb_NAME_rej reject with tcp reset
 *       counter name sb_NAME_rej reject with icmpx admin-prohibited
 *
 * Every chain exists also when no sandbox has egress (the handed-over
 * socket rules matter most then). `socket mark` (nft_socket) reads the
 * sending or receiving socket's own mark, which no other ruleset can
 * rewrite, where `meta mark` would read the packet's, which any earlier
 * chain may have changed (kube-proxy ORs 0x4000 into it, for one). A
 * dissolved connection loses its port and can bind or autobind another;
 * a shut-down listener keeps its own. The connections a startup handler
 * accepts inherit its listener's mark L: they may accept nowhere but on
 * the listeners' addresses.
 *
 * The batch starts with add table / delete table / add table, so it replaces
 * whatever was there atomically (and a missing table is not an error).
 */
#include <errno.h>
#include <stdarg.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "netpolicy/internal.h"

#define CT_ESTABLISHED 0x2u
#define CT_RELATED 0x4u
#define CT_NEW 0x8u
#define TYPE_IFNAME 41
#define MAX_MSGS 65536

struct batch {
	struct mnl_nlmsg_batch *b;
	char *buf;
	size_t buflen;
	uint32_t seq, first_seq;
	const char *table;
	/* what each message was, for error messages */
	char (*what)[96];
	size_t n_what;
	uint32_t set_id;
	int err;
};

__attribute__((format(printf, 2, 3))) static void what(struct batch *b, const char *fmt, ...)
{
	va_list ap;
	if (b->n_what >= MAX_MSGS)
		return;
	va_start(ap, fmt);
	vsnprintf(b->what[b->n_what++], sizeof(b->what[0]), fmt, ap);
	va_end(ap);
}

static struct nlmsghdr *hdr(struct batch *b, uint16_t type, uint16_t flags)
{
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b->b), type, NFPROTO_INET,
				     flags | NLM_F_ACK, b->seq++);
}

static void table_msg(struct batch *b, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, b->table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	struct nlmsghdr *n = hdr(b, type, flags);
	nftnl_table_nlmsg_build_payload(n, t);
	nftnl_table_free(t);
	mnl_nlmsg_batch_next(b->b);
}

static void chain_msg(struct batch *b, const char *name, const char *type, int hook, int prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, b->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	if (type) {
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	struct nlmsghdr *n = hdr(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
	nftnl_chain_nlmsg_build_payload(n, c);
	nftnl_chain_free(c);
	mnl_nlmsg_batch_next(b->b);
	what(b, "add chain %s", name);
}

static void counter_msg(struct batch *b, const char *name)
{
	struct nftnl_obj *o = nftnl_obj_alloc();
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, b->table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	struct nlmsghdr *n = hdr(b, NFT_MSG_NEWOBJ, NLM_F_CREATE);
	nftnl_obj_nlmsg_build_payload(n, o);
	nftnl_obj_free(o);
	mnl_nlmsg_batch_next(b->b);
	what(b, "add counter %s", name);
}

static uint32_t set_msg(struct batch *b, const char *name, bool vmap)
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
	struct nlmsghdr *n = hdr(b, NFT_MSG_NEWSET, NLM_F_CREATE);
	nftnl_set_nlmsg_build_payload(n, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	what(b, "add set %s", name);
	return id;
}

/* One element of a set or verdict map: KEY (len bytes), optionally an
 * interval end, or with a jump verdict to a chain. */
static void elem_msg(struct batch *b, const char *set, uint32_t set_id, const void *key,
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
	struct nlmsghdr *n = hdr(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE);
	nftnl_set_elems_nlmsg_build_payload(n, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	what(b, "add element to set %s", set);
}

static void ifname_elem(struct batch *b, const char *set, uint32_t set_id, const char *ifname,
			const char *jump)
{
	char key[IFNAMSIZ] = { 0 };
	snprintf(key, sizeof(key), "%s", ifname);
	elem_msg(b, set, set_id, key, sizeof(key), false, jump);
}

/* ---- expressions ---------------------------------------------------------- */

static void e_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	nftnl_rule_add_expr(r, e);
}

static void e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
}

static void e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
}

static void e_bitwise(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	uint8_t zero[16] = { 0 };
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	nftnl_rule_add_expr(r, e);
}

static void e_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id, bool vmap)
{
	struct nftnl_expr *e = nftnl_expr_alloc("lookup");
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (vmap)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_rule_add_expr(r, e);
}

static void e_ct_state(struct nftnl_rule *r, uint32_t bits)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
	e_bitwise(r, &bits, sizeof(bits));
	uint32_t zero = 0;
	e_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

static void e_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	nftnl_rule_add_expr(r, e);
}

static void e_counter(struct nftnl_rule *r, const char *named)
{
	struct nftnl_expr *e;
	if (named) {
		e = nftnl_expr_alloc("objref");
		nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
		nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, named);
	} else {
		e = nftnl_expr_alloc("counter");
	}
	nftnl_rule_add_expr(r, e);
}

static void e_reject(struct nftnl_rule *r, bool tcp_reset)
{
	struct nftnl_expr *e = nftnl_expr_alloc("reject");
	if (tcp_reset) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
	} else {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
	}
	nftnl_rule_add_expr(r, e);
}

/* socket mark == MARK (the socket found for the packet: the sender's on
 * output, the receiver's, listener or connection, on input) */
static void e_socket_mark(struct nftnl_rule *r, uint32_t mark)
{
	struct nftnl_expr *e = nftnl_expr_alloc("socket");
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
	e_cmp(r, NFT_CMP_EQ, &mark, sizeof(mark));
}

/* meta l4proto tcp tcp flags & (syn | ack) == syn: a connection attempt */
static void e_tcp_syn(struct nftnl_rule *r)
{
	uint8_t tcp = IPPROTO_TCP, mask = 0x12 /* syn|ack */, syn = 0x02;
	e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
	e_cmp(r, NFT_CMP_EQ, &tcp, 1);
	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
	e_bitwise(r, &mask, 1);
	e_cmp(r, NFT_CMP_EQ, &syn, 1);
}

static struct nftnl_rule *rule_new(struct batch *b, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, b->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	return r;
}

static void rule_msg(struct batch *b, struct nftnl_rule *r, const char *desc)
{
	struct nlmsghdr *n = hdr(b, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE);
	nftnl_rule_nlmsg_build_payload(n, r);
	nftnl_rule_free(r);
	mnl_nlmsg_batch_next(b->b);
	what(b, "%s", desc);
}

static void ifname_load(struct nftnl_rule *r, bool out)
{
	e_meta(r, out ? NFT_META_OIFNAME : NFT_META_IIFNAME, NFT_REG_1);
}

/* The accept rule of one egress entry (one per port when ports are listed). */
static void egress_rule(struct batch *b, const char *chain, const char *acc,
			const struct netpolicy_rule *er, int port, const char *desc)
{
	struct nftnl_rule *r = rule_new(b, chain);
	bool v4 = er->to.family == AF_INET;
	uint8_t nfproto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
	e_meta(r, NFT_META_NFPROTO, NFT_REG_1);
	e_cmp(r, NFT_CMP_EQ, &nfproto, 1);
	if (er->to.prefix) {
		uint32_t alen = v4 ? 4 : 16;
		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, alen);
		if (er->to.prefix < alen * 8) {
			uint8_t mask[16] = { 0 };
			for (unsigned i = 0; i < er->to.prefix; i++)
				mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
			e_bitwise(r, mask, alen);
		}
		e_cmp(r, NFT_CMP_EQ, er->to.addr, alen);
	}
	if (er->proto) {
		uint8_t p = er->proto == IPPROTO_ICMP && !v4 ? IPPROTO_ICMPV6 : er->proto;
		e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
		e_cmp(r, NFT_CMP_EQ, &p, 1);
		if (port >= 0) {
			uint16_t be = htons((uint16_t)port);
			e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
			e_cmp(r, NFT_CMP_EQ, &be, 2);
		}
	}
	e_counter(r, acc);
	e_verdict(r, NF_ACCEPT);
	rule_msg(b, r, desc);
}

/* ---- interval sets for sandboxes that list many CIDRs --------------------- */

#define SET_MIN 4		/* CIDRs of one kind from which a set is used */
#define TYPE_IPADDR 7
#define TYPE_IP6ADDR 8

struct range {
	uint8_t lo[16], hi[16];	/* inclusive, network byte order */
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

/* An interval set holding the CIDRs of rules[idx...] of the same kind
 * (overlaps merged). Returns its id. */
static uint32_t interval_set(struct batch *b, const char *name, const struct netpolicy_rule *rules,
			     size_t n, const bool *member)
{
	bool v4 = false;
	size_t k = 0, len;
	struct range *r = calloc(n, sizeof(*r));
	for (size_t i = 0; i < n; i++) {
		if (!member[i])
			continue;
		v4 = rules[i].to.family == AF_INET;
		len = v4 ? 4 : 16;
		memset(r[k].lo, 0, 16);
		memcpy(r[k].lo, rules[i].to.addr, len);
		memcpy(r[k].hi, r[k].lo, 16);
		for (unsigned bit = rules[i].to.prefix; bit < len * 8; bit++)
			r[k].hi[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		k++;
	}
	len = v4 ? 4 : 16;
	qsort(r, k, sizeof(*r), range_cmp);
	/* merge overlapping and adjacent ranges */
	size_t m = 0;
	for (size_t i = 0; i < k; i++) {
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
	struct nftnl_set *s = nftnl_set_alloc();
	uint32_t id = ++b->set_id;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, b->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, v4 ? TYPE_IPADDR : TYPE_IP6ADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)len);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	struct nlmsghdr *nh = hdr(b, NFT_MSG_NEWSET, NLM_F_CREATE);
	nftnl_set_nlmsg_build_payload(nh, s);
	nftnl_set_free(s);
	mnl_nlmsg_batch_next(b->b);
	what(b, "add set %s", name);
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
	free(r);
	return id;
}

/* The accept rule(s) of a set of CIDRs of one kind, one per port. */
static void set_rule(struct batch *b, const char *chain, const char *acc, const char *set,
		     uint32_t id, const struct netpolicy_rule *kind, const char *desc)
{
	bool v4 = kind->to.family == AF_INET;
	bool ports = kind->n_ports && (kind->proto == IPPROTO_TCP || kind->proto == IPPROTO_UDP);
	for (size_t p = 0; p < (ports ? kind->n_ports : 1); p++) {
		struct nftnl_rule *r = rule_new(b, chain);
		uint8_t nfproto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
		e_meta(r, NFT_META_NFPROTO, NFT_REG_1);
		e_cmp(r, NFT_CMP_EQ, &nfproto, 1);
		e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16);
		e_lookup(r, set, id, false);
		if (kind->proto) {
			uint8_t pr = kind->proto == IPPROTO_ICMP && !v4 ? IPPROTO_ICMPV6 : kind->proto;
			e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
			e_cmp(r, NFT_CMP_EQ, &pr, 1);
			if (ports) {
				uint16_t be = htons(kind->ports[p]);
				e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
				e_cmp(r, NFT_CMP_EQ, &be, 2);
			}
		}
		e_counter(r, acc);
		e_verdict(r, NF_ACCEPT);
		rule_msg(b, r, desc);
	}
}

/* ---- the whole table -------------------------------------------------------- */

/* The rules about the sockets handed to handlers (see the layout above). */
static void handed_rules(struct batch *b, const struct netpolicy_listener *ls, size_t n_ls)
{
	static const struct {
		uint32_t mark;
		const char *name;
	} marks[] = { { NETPOLICY_MARK_CONN, "connection" }, { NETPOLICY_MARK_LISTEN, "listener" } };
	struct nftnl_rule *r;
	char desc[96];
	for (size_t k = 0; k < 2; k++) {
		r = rule_new(b, "output");
		e_socket_mark(r, marks[k].mark);
		e_tcp_syn(r);
		e_counter(r, NULL);
		e_reject(r, true);
		snprintf(desc, sizeof(desc), "add rule output: socket mark (handed-over %s) syn reject",
			 marks[k].name);
		rule_msg(b, r, desc);
	}
	r = rule_new(b, "handed_in");
	e_socket_mark(r, NETPOLICY_MARK_CONN);
	e_tcp_syn(r);
	e_counter(r, NULL);
	e_reject(r, true);
	rule_msg(b, r, "add rule handed_in: socket mark (handed-over connection) syn reject");
	for (size_t i = 0; i < n_ls; i++) {
		static const uint8_t any[16];
		bool v4 = ls[i].family == AF_INET;
		uint8_t nfproto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6, tcp = IPPROTO_TCP;
		uint16_t be = htons(ls[i].port);
		r = rule_new(b, "handed_in");
		e_socket_mark(r, NETPOLICY_MARK_LISTEN);
		e_meta(r, NFT_META_NFPROTO, NFT_REG_1);
		e_cmp(r, NFT_CMP_EQ, &nfproto, 1);
		if (memcmp(ls[i].addr, any, v4 ? 4 : 16)) {
			e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16);
			e_cmp(r, NFT_CMP_EQ, ls[i].addr, v4 ? 4 : 16);
		}
		e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
		e_cmp(r, NFT_CMP_EQ, &tcp, 1);
		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
		e_cmp(r, NFT_CMP_EQ, &be, 2);
		e_verdict(r, NFT_RETURN);
		rule_msg(b, r, "add rule handed_in: socket mark (handed-over listener) on its address");
	}
	r = rule_new(b, "handed_in");
	e_socket_mark(r, NETPOLICY_MARK_LISTEN);
	e_tcp_syn(r);
	e_counter(r, NULL);
	e_reject(r, true);
	rule_msg(b, r, "add rule handed_in: socket mark (handed-over listener) syn reject");
}

int np_rules_build(const char *table, const struct np_rules_sb *sbs, size_t n,
		   const struct netpolicy_listener *ls, size_t n_ls, void **out_buf, size_t *out_len,
		   char (**out_what)[96], size_t *out_n, uint32_t *first_seq, bool remove_only)
{
	struct batch b = { .table = table };
	/* worst case per sandbox: chains, counters, elements, rules per port */
	size_t msgs = 48 + n_ls;
	for (size_t i = 0; i < n; i++) {
		msgs += 8;
		for (size_t k = 0; k < sbs[i].cfg->n_rules; k++)
			msgs += 3 + (sbs[i].cfg->rules[k].n_ports ? sbs[i].cfg->rules[k].n_ports : 1);
	}
	if (msgs > MAX_MSGS)
		return -E2BIG;
	b.buflen = 2 * (msgs * 1024 + 65536);
	b.buf = malloc(b.buflen);
	b.what = calloc(msgs + 8, sizeof(*b.what));
	if (!b.buf || !b.what) {
		free(b.buf);
		free(b.what);
		return -ENOMEM;
	}
	b.seq = b.first_seq = (uint32_t)time(NULL);
	/* libmnl lets the last message run past the limit: half the buffer */
	b.b = mnl_nlmsg_batch_start(b.buf, b.buflen / 2);

	nftnl_batch_begin(mnl_nlmsg_batch_current(b.b), b.seq++);
	mnl_nlmsg_batch_next(b.b);
	/* add + delete + add: replaces an existing table, tolerates a missing one */
	table_msg(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	what(&b, "add table %s", table);
	table_msg(&b, NFT_MSG_DELTABLE, 0);
	what(&b, "delete table %s", table);
	if (!remove_only) {
		table_msg(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
		what(&b, "add table %s", table);

		uint32_t ifs_id = set_msg(&b, "sbx_ifs", false);
		uint32_t in_id = set_msg(&b, "sbx_in", true);
		for (size_t i = 0; i < n; i++) {
			char acc[48], rej[48];
			snprintf(acc, sizeof(acc), "sb_%s_acc", sbs[i].cfg->name);
			snprintf(rej, sizeof(rej), "sb_%s_rej", sbs[i].cfg->name);
			counter_msg(&b, acc);
			counter_msg(&b, rej);
		}
		chain_msg(&b, "forward", "filter", NF_INET_FORWARD, 0);
		chain_msg(&b, "input", "filter", NF_INET_LOCAL_IN, 0);
		chain_msg(&b, "output", "filter", NF_INET_LOCAL_OUT, 0);
		chain_msg(&b, "handed_in", "filter", NF_INET_LOCAL_IN, 0);
		chain_msg(&b, "postrouting", "nat", NF_INET_POST_ROUTING, 100);
		for (size_t i = 0; i < n; i++) {
			if (!sbs[i].cfg->n_rules && !sbs[i].has_veth)
				continue;
			char chain[48];
			snprintf(chain, sizeof(chain), "sb_%s", sbs[i].cfg->name);
			chain_msg(&b, chain, NULL, 0, 0);
			ifname_elem(&b, "sbx_ifs", ifs_id, sbs[i].ifname, NULL);
			ifname_elem(&b, "sbx_in", in_id, sbs[i].ifname, chain);
		}
		struct nftnl_rule *r;
		/* forward: dispatch by input interface; nothing new toward sandboxes */
		r = rule_new(&b, "forward");
		ifname_load(r, false);
		e_lookup(r, "sbx_in", in_id, true);
		rule_msg(&b, r, "add rule forward: iifname vmap @sbx_in");
		r = rule_new(&b, "forward");
		ifname_load(r, true);
		e_lookup(r, "sbx_ifs", ifs_id, false);
		e_ct_state(r, CT_NEW);
		e_counter(r, NULL);
		e_verdict(r, NF_DROP);
		rule_msg(&b, r, "add rule forward: oifname @sbx_ifs ct state new drop");
		/* input: sandboxes do not reach the broker host itself */
		r = rule_new(&b, "input");
		ifname_load(r, false);
		e_lookup(r, "sbx_ifs", ifs_id, false);
		e_ct_state(r, CT_ESTABLISHED | CT_RELATED);
		e_verdict(r, NF_ACCEPT);
		rule_msg(&b, r, "add rule input: established");
		static const uint8_t nd[] = { 133, 135, 136 };	/* router sol., neighbour sol./adv. */
		for (size_t k = 0; k < sizeof(nd); k++) {
			uint8_t v6 = NFPROTO_IPV6, icmp6 = IPPROTO_ICMPV6;
			r = rule_new(&b, "input");
			ifname_load(r, false);
			e_lookup(r, "sbx_ifs", ifs_id, false);
			e_meta(r, NFT_META_NFPROTO, NFT_REG_1);
			e_cmp(r, NFT_CMP_EQ, &v6, 1);
			e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
			e_cmp(r, NFT_CMP_EQ, &icmp6, 1);
			e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
			e_cmp(r, NFT_CMP_EQ, &nd[k], 1);
			e_verdict(r, NF_ACCEPT);
			rule_msg(&b, r, "add rule input: neighbour discovery");
		}
		for (int tcp = 1; tcp >= 0; tcp--) {
			r = rule_new(&b, "input");
			ifname_load(r, false);
			e_lookup(r, "sbx_ifs", ifs_id, false);
			if (tcp) {
				uint8_t t = IPPROTO_TCP;
				e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
				e_cmp(r, NFT_CMP_EQ, &t, 1);
			}
			e_counter(r, NULL);
			e_reject(r, tcp);
			rule_msg(&b, r, "add rule input: reject");
		}
		/* output: the broker host itself opens nothing toward a sandbox
		 * (replies, ICMP errors and rejects of ours are established or
		 * related; neighbour discovery is untracked) */
		r = rule_new(&b, "output");
		ifname_load(r, true);
		e_lookup(r, "sbx_ifs", ifs_id, false);
		e_ct_state(r, CT_NEW);
		e_counter(r, NULL);
		e_verdict(r, NF_DROP);
		rule_msg(&b, r, "add rule output: oifname @sbx_ifs ct state new drop");
		handed_rules(&b, ls, n_ls);
		/* masquerade what sandboxes send out */
		r = rule_new(&b, "postrouting");
		ifname_load(r, false);
		e_lookup(r, "sbx_ifs", ifs_id, false);
		nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"));
		rule_msg(&b, r, "add rule postrouting: masquerade");

		for (size_t i = 0; i < n; i++) {
			const struct netpolicy_sandbox *s = sbs[i].cfg;
			if (!s->n_rules && !sbs[i].has_veth)
				continue;
			char chain[48], acc[48], rej[48], desc[96];
			snprintf(chain, sizeof(chain), "sb_%s", s->name);
			snprintf(acc, sizeof(acc), "sb_%s_acc", s->name);
			snprintf(rej, sizeof(rej), "sb_%s_rej", s->name);
			snprintf(desc, sizeof(desc), "sandbox \"%s\": add rule", s->name);
			r = rule_new(&b, chain);
			e_ct_state(r, CT_ESTABLISHED | CT_RELATED);
			e_verdict(r, NF_ACCEPT);
			rule_msg(&b, r, desc);
			/* CIDRs of one kind (family, protocol, ports): SET_MIN or
			 * more go into an interval set matched by one lookup */
			bool *done = calloc(s->n_rules + 1, sizeof(bool));
			bool *member = calloc(s->n_rules + 1, sizeof(bool));
			unsigned nset = 0;
			for (size_t k = 0; done && member && k < s->n_rules; k++) {
				if (done[k])
					continue;
				size_t same = 0;
				for (size_t j = k; j < s->n_rules; j++)
					same += !done[j] && same_kind(&s->rules[k], &s->rules[j]);
				if (same < SET_MIN)
					continue;
				for (size_t j = k; j < s->n_rules; j++) {
					member[j] = !done[j] && same_kind(&s->rules[k], &s->rules[j]);
					done[j] |= member[j];
				}
				char setname[48];
				snprintf(setname, sizeof(setname), "sb_%s_n%u", s->name, nset++);
				uint32_t id = interval_set(&b, setname, s->rules, s->n_rules, member);
				set_rule(&b, chain, acc, setname, id, &s->rules[k], desc);
			}
			for (size_t k = 0; k < s->n_rules; k++) {
				const struct netpolicy_rule *er = &s->rules[k];
				if (done && done[k])
					continue;
				bool ports = er->n_ports && (er->proto == IPPROTO_TCP || er->proto == IPPROTO_UDP);
				if (!ports)
					egress_rule(&b, chain, acc, er, -1, desc);
				for (size_t p = 0; ports && p < er->n_ports; p++)
					egress_rule(&b, chain, acc, er, er->ports[p], desc);
			}
			free(done);
			free(member);
			/* TCP gets a reset: Linux treats an ICMP error to a SYN as
			 * soft and would only fail the connect on the first
			 * retransmission, a second later. Everything else gets
			 * icmpx admin-prohibited. */
			for (int tcp = 1; tcp >= 0; tcp--) {
				r = rule_new(&b, chain);
				if (tcp) {
					uint8_t t = IPPROTO_TCP;
					e_meta(r, NFT_META_L4PROTO, NFT_REG_1);
					e_cmp(r, NFT_CMP_EQ, &t, 1);
				}
				e_counter(r, rej);
				e_reject(r, tcp);
				rule_msg(&b, r, desc);
			}
		}
	}
	nftnl_batch_end(mnl_nlmsg_batch_current(b.b), b.seq++);
	mnl_nlmsg_batch_next(b.b);

	size_t len = mnl_nlmsg_batch_size(b.b);
	void *buf = malloc(len);
	if (!buf) {
		mnl_nlmsg_batch_stop(b.b);
		free(b.buf);
		free(b.what);
		return -ENOMEM;
	}
	memcpy(buf, mnl_nlmsg_batch_head(b.b), len);
	mnl_nlmsg_batch_stop(b.b);
	free(b.buf);
	*out_buf = buf;
	*out_len = len;
	*out_what = b.what;
	*out_n = b.n_what;
	*first_seq = b.first_seq + 1;	/* the batch-begin message has no ack */
	return 0;
}

/* Send a batch, collect the acks; on error say which message failed. */
int np_rules_commit(const char *table, const struct np_rules_sb *sbs, size_t n,
		    const struct netpolicy_listener *ls, size_t n_ls, bool remove_only,
		    struct netpolicy_error *err)
{
	void *buf = NULL;
	size_t len = 0, n_what = 0;
	char (*whats)[96] = NULL;
	uint32_t first = 0;
	int r = np_rules_build(table, sbs, n, ls, n_ls, &buf, &len, &whats, &n_what, &first,
			       remove_only);
	if (r < 0) {
		np_error(err, -r, "netpolicy: table \"%s\": build ruleset: %s", table, strerror(-r));
		return r;
	}
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		np_error(err, errno, "netpolicy: table \"%s\": netlink socket: %s", table, strerror(errno));
		goto out;
	}
	int sz = 16 << 20;
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	if (mnl_socket_sendto(nl, buf, len) < 0) {
		r = -errno;
		np_error(err, errno, "netpolicy: table \"%s\": send batch: %s", table, strerror(errno));
		goto out;
	}
	/* one ack per message (NLM_F_ACK); the first error names its message */
	static char rbuf[65536];
	size_t acks = 0;
	r = 0;
	uint32_t portid = mnl_socket_get_portid(nl);
	while (acks < n_what) {
		ssize_t got = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (got < 0) {
			r = -errno;
			np_error(err, errno, "netpolicy: table \"%s\": receive acks: %s", table, strerror(errno));
			break;
		}
		const struct nlmsghdr *h = (const void *)rbuf;
		int left = (int)got;
		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			if (h->nlmsg_pid != portid || h->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
			acks++;
			if (e->error && !r) {
				uint32_t idx = h->nlmsg_seq - first;
				const char *w = idx < n_what ? whats[idx] : "commit";
				r = e->error;
				/* messages already carry "sandbox ..." where it applies */
				if (!strncmp(w, "sandbox", 7))
					np_error(err, -r, "netpolicy: %s: %s", w, strerror(-r));
				else
					np_error(err, -r, "netpolicy: table \"%s\": %s: %s%s", table, w, strerror(-r),
						 strstr(w, "socket mark") && (r == -ENOENT || r == -EOPNOTSUPP)
							 ? " (the kernel needs nft_socket, CONFIG_NFT_SOCKET, with the output hook)"
							 : "");
				/* the kernel aborted the batch: no more acks come */
				goto out;
			}
		}
	}
out:
	if (nl)
		mnl_socket_close(nl);
	free(buf);
	free(whats);
	return r;
}

/* Read one named counter's packets. */
int np_counter_read(const char *table, const char *name, uint64_t *pkts)
{
	static char buf[16384];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	int r = -EIO;
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		if (nl)
			mnl_socket_close(nl);
		return r;
	}
	uint32_t seq = (uint32_t)time(NULL);
	struct nftnl_obj *o = nftnl_obj_alloc();
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	struct nlmsghdr *h = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETOBJ, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_obj_nlmsg_build_payload(h, o);
	nftnl_obj_free(o);
	if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0) {
		r = -errno;
		goto out;
	}
	ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (got < 0) {
		r = -errno;
		goto out;
	}
	const struct nlmsghdr *m = (const void *)buf;
	int left = (int)got;
	for (; mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
		if (m->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
			if (e->error) {
				r = e->error;
				goto out;
			}
			continue;
		}
		struct nftnl_obj *ro = nftnl_obj_alloc();
		if (nftnl_obj_nlmsg_parse(m, ro) == 0) {
			*pkts = nftnl_obj_get_u64(ro, NFTNL_OBJ_CTR_PKTS);
			r = 0;
		}
		nftnl_obj_free(ro);
	}
out:
	mnl_socket_close(nl);
	return r;
}
