/* SPDX-License-Identifier: MIT */
/*
 * The nftables ruleset: what the table holds, built into one batch (nft.c)
 * and committed as one transaction. Layout (table inet T; C =
 * NETPOLICY_MARK_CONN 0x70737463, L = NETPOLICY_MARK_LISTEN 0x7073746c;
 * "SYN" = tcp flags & (syn|ack) == syn, a connection attempt, never part of
 * an established flow; V = the host end of a sandbox's veth, one rule per
 * sandbox where V appears):
 *
 *   counter sb_NAME_acc, sb_NAME_rej                 per sandbox
 *   chain forward  (filter forward 0, policy accept)
 *       ct state established,related accept          what every sandbox chain accepts first
 *       iifname V jump sb_NAME
 *       ct state new jump to_sandbox
 *   chain to_sandbox
 *       oifname V counter drop                       nobody opens toward a sandbox
 *   chain input    (filter input 0, policy accept)   the broker host itself
 *       ct state established,related accept          what from_sandbox accepts first
 *       iifname V jump from_sandbox
 *   chain from_sandbox
 *       ct state established,related accept
 *       icmpv6 type {nd-*} accept                    neighbour discovery
 *       meta l4proto tcp counter reject with tcp reset
 *       counter reject with icmpx admin-prohibited
 *   chain output   (filter output 0, policy accept)  what the broker host sends
 *       ct state new jump to_sandbox                 not even the broker host opens toward one
 *       socket mark C SYN counter reject with tcp reset   a handed-over socket connects nowhere
 *       socket mark L SYN counter reject with tcp reset
 *   chain handed_in (filter input 0, policy accept)  toward handed-over sockets
 *       socket mark C SYN counter reject with tcp reset   a dissolved connection never listens
 *       socket mark L [ip|ip6 daddr A] tcp dport P return one per startup `sockets` address
 *       socket mark L SYN counter reject with tcp reset   nor, elsewhere, what a startup
 *                                                          handler holds
 *   chain postrouting (nat postrouting 100)
 *       iifname V masquerade
 *   chain sb_NAME
 *       ct state established,related accept
 *       [ip|ip6] daddr CIDR [meta l4proto P [th dport N]] counter name sb_NAME_acc accept
 *       meta l4proto tcp counter name sb_NAME_rej reject with tcp reset
 *       counter name sb_NAME_rej reject with icmpx admin-prohibited
 *
 * No set decides whether a packet is a sandbox's: an interface set (or a
 * verdict map) would be cheaper per packet, but it lets packets through
 * while a reload replaces the table. A packet in flight then runs the old
 * chain's rules (the rule generation is read once per chain) while a set
 * lookup in them reads the new generation, in which the old set's
 * elements are gone: the lookup misses, the dispatch falls through to the
 * chain's policy accept, and a sandbox's SYN leaves unfiltered (seen on
 * 6.18: 2 to 7 of about 1.5 million attempts at a denied address over 400
 * back-to-back replacements). A miss in an egress allow set (sets.c)
 * rejects, which fails closed; so does one in the access chain's sets of
 * permitted clients (access.c). The per-sandbox rules are linear, but only
 * the first packet of a flow walks them.
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
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "netpolicy/internal.h"

#define CT_ESTABLISHED 0x2u
#define CT_RELATED 0x4u
#define CT_NEW 0x8u

/* iifname (or oifname) NAME: a plain comparison, no set (see above) */
static void on_if(struct nftnl_rule *r, bool out, const char *ifname)
{
	char key[IFNAMSIZ] = {0};
	snprintf(key, sizeof(key), "%s", ifname);
	np_e_meta(r, out ? NFT_META_OIFNAME : NFT_META_IIFNAME);
	np_e_cmp(r, NFT_CMP_EQ, key, sizeof(key));
}

static bool has_chain(const struct np_rules_sb *s)
{
	return s->cfg->n_rules || s->has_veth;
}

/* ct state established,related accept, in chain `chain` */
static void established_accept(struct np_batch *b, const char *chain, const char *desc)
{
	struct nftnl_rule *r = np_rule_new(b, chain);
	np_e_ct_state(r, CT_ESTABLISHED | CT_RELATED);
	np_e_verdict(r, NF_ACCEPT);
	np_rule_msg(b, r, desc);
}

/* iifname V jump TARGET in chain `chain`, one per sandbox with a chain;
 * TARGET NULL: the sandbox's own, sb_NAME */
static void jump_by_iif(struct np_batch *b, const char *chain, const struct np_rules_sb *sbs,
                        size_t n, const char *target, const char *desc)
{
	for (size_t i = 0; i < n; i++) {
		if (!has_chain(&sbs[i]))
			continue;
		char own[48];
		snprintf(own, sizeof(own), "sb_%s", sbs[i].cfg->name);
		struct nftnl_rule *r = np_rule_new(b, chain);
		on_if(r, false, sbs[i].ifname);
		np_e_jump(r, target ? target : own);
		np_rule_msg(b, r, desc);
	}
}

/* The accept rule of one egress entry (one per port when ports are listed). */
static void egress_rule(struct np_batch *b, const char *chain, const char *acc,
                        const struct netpolicy_rule *er, int port, const char *desc)
{
	struct nftnl_rule *r = np_rule_new(b, chain);
	bool v4 = er->to.family == AF_INET;
	np_e_nfproto(r, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
	if (er->to.prefix) {
		uint32_t alen = v4 ? 4 : 16;
		np_e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, alen);
		if (er->to.prefix < alen * 8) {
			uint8_t mask[16] = {0};
			for (unsigned i = 0; i < er->to.prefix; i++)
				mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
			np_e_bitwise(r, mask, alen);
		}
		np_e_cmp(r, NFT_CMP_EQ, er->to.addr, alen);
	}
	if (er->proto) {
		np_e_l4proto(r, er->proto == IPPROTO_ICMP && !v4 ? IPPROTO_ICMPV6 : er->proto);
		if (port >= 0) {
			uint16_t be = htons((uint16_t)port);
			np_e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
			np_e_cmp(r, NFT_CMP_EQ, &be, 2);
		}
	}
	np_e_counter(r, acc);
	np_e_verdict(r, NF_ACCEPT);
	np_rule_msg(b, r, desc);
}

/* ... counter reject with tcp reset, or with icmpx admin-prohibited */
static void reject_rule(struct np_batch *b, struct nftnl_rule *r, const char *counter,
                        bool tcp_reset, const char *desc)
{
	np_e_counter(r, counter);
	np_e_reject(r, tcp_reset);
	np_rule_msg(b, r, desc);
}

/* ---- the base chains ---------------------------------------------------------------------- */

/* The counters and chains. */
static void base_objects(struct np_batch *b, const struct np_rules_sb *sbs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char acc[48], rej[48];
		snprintf(acc, sizeof(acc), "sb_%s_acc", sbs[i].cfg->name);
		snprintf(rej, sizeof(rej), "sb_%s_rej", sbs[i].cfg->name);
		np_counter_msg(b, acc);
		np_counter_msg(b, rej);
	}
	np_chain_msg(b, "forward", "filter", NF_INET_FORWARD, 0);
	np_chain_msg(b, "input", "filter", NF_INET_LOCAL_IN, 0);
	np_chain_msg(b, "output", "filter", NF_INET_LOCAL_OUT, 0);
	np_chain_msg(b, "handed_in", "filter", NF_INET_LOCAL_IN, 0);
	np_chain_msg(b, "postrouting", "nat", NF_INET_POST_ROUTING, 100);
	np_chain_msg(b, "to_sandbox", NULL, 0, 0);
	np_chain_msg(b, "from_sandbox", NULL, 0, 0);
	for (size_t i = 0; i < n; i++) {
		if (!has_chain(&sbs[i]))
			continue;
		char chain[48];
		snprintf(chain, sizeof(chain), "sb_%s", sbs[i].cfg->name);
		np_chain_msg(b, chain, NULL, 0, 0);
	}
}

/* ct state new jump to_sandbox, in chain `chain` */
static void new_to_sandbox(struct np_batch *b, const char *chain)
{
	struct nftnl_rule *r = np_rule_new(b, chain);
	np_e_ct_state(r, CT_NEW);
	np_e_jump(r, "to_sandbox");
	char desc[64];
	snprintf(desc, sizeof(desc), "add rule %s: ct state new jump to_sandbox", chain);
	np_rule_msg(b, r, desc);
}

/* forward: established flows pass (every sandbox chain lets them), the
 * rest by input interface to its sandbox's chain; nothing new toward a
 * sandbox (to_sandbox) */
static void forward_rules(struct np_batch *b, const struct np_rules_sb *sbs, size_t n)
{
	established_accept(b, "forward", "add rule forward: ct state established,related accept");
	jump_by_iif(b, "forward", sbs, n, NULL, "add rule forward: iifname jump");
	new_to_sandbox(b, "forward");
}

/* to_sandbox: a new flow toward a sandbox's veth is dropped (counted) */
static void to_sandbox_rules(struct np_batch *b, const struct np_rules_sb *sbs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!has_chain(&sbs[i]))
			continue;
		struct nftnl_rule *r = np_rule_new(b, "to_sandbox");
		on_if(r, true, sbs[i].ifname);
		np_e_counter(r, NULL);
		np_e_verdict(r, NF_DROP);
		np_rule_msg(b, r, "add rule to_sandbox: oifname drop");
	}
}

/* input: sandboxes do not reach the broker host itself (from_sandbox) */
static void input_rules(struct np_batch *b, const struct np_rules_sb *sbs, size_t n)
{
	established_accept(b, "input", "add rule input: ct state established,related accept");
	jump_by_iif(b, "input", sbs, n, "from_sandbox",
	            "add rule input: iifname jump from_sandbox");
	established_accept(b, "from_sandbox", "add rule from_sandbox: established");
	struct nftnl_rule *r;
	static const uint8_t nd[] = {133, 135, 136}; /* router sol., neighbour sol./adv. */
	for (size_t k = 0; k < sizeof(nd); k++) {
		r = np_rule_new(b, "from_sandbox");
		np_e_nfproto(r, NFPROTO_IPV6);
		np_e_l4proto(r, IPPROTO_ICMPV6);
		np_e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
		np_e_cmp(r, NFT_CMP_EQ, &nd[k], 1);
		np_e_verdict(r, NF_ACCEPT);
		np_rule_msg(b, r, "add rule from_sandbox: neighbour discovery");
	}
	for (int tcp = 1; tcp >= 0; tcp--) {
		r = np_rule_new(b, "from_sandbox");
		if (tcp)
			np_e_l4proto(r, IPPROTO_TCP);
		reject_rule(b, r, NULL, tcp, "add rule from_sandbox: reject");
	}
}

/* The rules about the sockets handed to handlers (see the layout above). */
static void handed_rules(struct np_batch *b, const struct netpolicy_listener *ls, size_t n_ls)
{
	static const struct {
		uint32_t mark;
		const char *name;
	} marks[] = {{NETPOLICY_MARK_CONN, "connection"}, {NETPOLICY_MARK_LISTEN, "listener"}};
	struct nftnl_rule *r;
	char desc[96];
	for (size_t k = 0; k < 2; k++) {
		r = np_rule_new(b, "output");
		np_e_socket_mark(r, marks[k].mark);
		np_e_tcp_syn(r);
		snprintf(desc, sizeof(desc),
		         "add rule output: socket mark (handed-over %s) syn reject", marks[k].name);
		reject_rule(b, r, NULL, true, desc);
	}
	r = np_rule_new(b, "handed_in");
	np_e_socket_mark(r, NETPOLICY_MARK_CONN);
	np_e_tcp_syn(r);
	reject_rule(b, r, NULL, true,
	            "add rule handed_in: socket mark (handed-over connection) syn reject");
	for (size_t i = 0; i < n_ls; i++) {
		static const uint8_t any[16];
		bool v4 = ls[i].family == AF_INET;
		uint16_t be = htons(ls[i].port);
		r = np_rule_new(b, "handed_in");
		np_e_socket_mark(r, NETPOLICY_MARK_LISTEN);
		np_e_nfproto(r, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
		if (memcmp(ls[i].addr, any, v4 ? 4 : 16)) {
			np_e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16);
			np_e_cmp(r, NFT_CMP_EQ, ls[i].addr, v4 ? 4 : 16);
		}
		np_e_l4proto(r, IPPROTO_TCP);
		np_e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
		np_e_cmp(r, NFT_CMP_EQ, &be, 2);
		np_e_verdict(r, NFT_RETURN);
		np_rule_msg(
		    b, r, "add rule handed_in: socket mark (handed-over listener) on its address");
	}
	r = np_rule_new(b, "handed_in");
	np_e_socket_mark(r, NETPOLICY_MARK_LISTEN);
	np_e_tcp_syn(r);
	reject_rule(b, r, NULL, true,
	            "add rule handed_in: socket mark (handed-over listener) syn reject");
}

/* output: the broker host itself opens nothing toward a sandbox (replies,
 * ICMP errors and rejects of ours are established or related; neighbour
 * discovery is untracked), nor does a handed-over socket; postrouting:
 * masquerade what sandboxes send out */
static void output_rules(struct np_batch *b, const struct np_rules_sb *sbs, size_t n,
                         const struct netpolicy_listener *ls, size_t n_ls)
{
	new_to_sandbox(b, "output");
	handed_rules(b, ls, n_ls);
	for (size_t i = 0; i < n; i++) {
		if (!has_chain(&sbs[i]))
			continue;
		struct nftnl_rule *r = np_rule_new(b, "postrouting");
		on_if(r, false, sbs[i].ifname);
		nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"));
		np_rule_msg(b, r, "add rule postrouting: masquerade");
	}
}

/* ---- a sandbox's chain -------------------------------------------------------------------- */

static int sandbox_chain(struct np_batch *b, const struct netpolicy_sandbox *s)
{
	char chain[48], acc[48], rej[48], desc[96];
	snprintf(chain, sizeof(chain), "sb_%s", s->name);
	snprintf(acc, sizeof(acc), "sb_%s_acc", s->name);
	snprintf(rej, sizeof(rej), "sb_%s_rej", s->name);
	snprintf(desc, sizeof(desc), "sandbox \"%s\": add rule", s->name);
	established_accept(b, chain, desc);
	struct nftnl_rule *r;
	/* CIDRs of one kind (family, protocol, ports): SET_MIN or more go
	 * into an interval set matched by one lookup (sets.c) */
	_cleanup_free_ bool *done = calloc(s->n_rules + 1, sizeof(bool));
	if (!done)
		return -ENOMEM;
	np_egress_sets(b, s, chain, acc, desc, done);
	for (size_t k = 0; k < s->n_rules; k++) {
		const struct netpolicy_rule *er = &s->rules[k];
		if (done[k])
			continue;
		bool ports = er->n_ports && (er->proto == IPPROTO_TCP || er->proto == IPPROTO_UDP);
		if (!ports)
			egress_rule(b, chain, acc, er, -1, desc);
		for (size_t p = 0; ports && p < er->n_ports; p++)
			egress_rule(b, chain, acc, er, er->ports[p], desc);
	}
	/* TCP gets a reset: Linux treats an ICMP error to a SYN as soft and
	 * would only fail the connect on the first retransmission, a second
	 * later. Everything else gets icmpx admin-prohibited. */
	for (int tcp = 1; tcp >= 0; tcp--) {
		r = np_rule_new(b, chain);
		if (tcp)
			np_e_l4proto(r, IPPROTO_TCP);
		reject_rule(b, r, rej, tcp, desc);
	}
	return 0;
}

/* ---- the whole table ------------------------------------------------------------------------ */

int np_rules_build(const char *table, const struct np_rules_sb *sbs, size_t n,
                   const struct np_rules_in *in, void **out_buf, size_t *out_len,
                   struct np_what **out_what, size_t *out_n, uint32_t *first_seq, bool remove_only)
{
	struct np_batch b;
	/* worst case per sandbox: chains, counters, elements, rules per port */
	static const struct np_rules_in none;
	if (!in)
		in = &none;
	const struct netpolicy_listener *ls = in->ls;
	size_t n_ls = in->n_ls;
	size_t msgs = 48 + n_ls + np_access_msgs(in->acc, in->n_acc);
	for (size_t i = 0; i < n; i++) {
		msgs += 12;
		for (size_t k = 0; k < sbs[i].cfg->n_rules; k++)
			msgs +=
			    3 + (sbs[i].cfg->rules[k].n_ports ? sbs[i].cfg->rules[k].n_ports : 1);
	}
	int r = np_batch_start(&b, table, msgs);
	if (r < 0)
		return r;
	/* add + delete + add: replaces an existing table, tolerates a missing one */
	np_table_msg(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	np_table_msg(&b, NFT_MSG_DELTABLE, 0);
	if (!remove_only) {
		np_table_msg(&b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
		base_objects(&b, sbs, n);
		forward_rules(&b, sbs, n);
		to_sandbox_rules(&b, sbs, n);
		input_rules(&b, sbs, n);
		output_rules(&b, sbs, n, ls, n_ls);
		np_chain_msg(&b, "access_in", "filter", NF_INET_LOCAL_IN, -10);
		r = np_access_rules(&b, "access_in", in->acc, in->n_acc);
		for (size_t i = 0; i < n && r == 0; i++)
			if (has_chain(&sbs[i]))
				r = sandbox_chain(&b, sbs[i].cfg);
	}
	if (r < 0) {
		np_batch_free(&b);
		return r;
	}
	return np_batch_finish(&b, out_buf, out_len, out_what, out_n, first_seq);
}

int np_rules_commit(const char *table, const struct np_rules_sb *sbs, size_t n,
                    const struct np_rules_in *in, bool remove_only, struct netpolicy_error *err)
{
	_cleanup_free_ void *buf = NULL;
	_cleanup_free_ struct np_what *what = NULL;
	size_t len = 0, n_what = 0;
	uint32_t first = 0;
	int r = np_rules_build(table, sbs, n, in, &buf, &len, &what, &n_what, &first, remove_only);
	if (r < 0) {
		np_error(err, -r, "build ruleset", table,
		         "netpolicy: table \"%s\": build ruleset: %s", table, strerror(-r));
		return r;
	}
	return np_batch_send(table, buf, len, what, n_what, first, err);
}
