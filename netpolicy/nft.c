/* SPDX-License-Identifier: MIT */
/*
 * nftables over netlink (libnftnl + libmnl): a batch of messages (tables,
 * chains, counters, rules), the expressions rules are made of, sending a
 * batch as one transaction with the error of the message the kernel
 * refused, and reading a named counter. What the ruleset holds: rules.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "netpolicy/internal.h"

#define MAX_MSGS 65536

static void obj_freep(struct nftnl_obj **o)
{
	if (*o)
		nftnl_obj_free(*o);
}
#define _cleanup_nftnl_obj_ __attribute__((cleanup(obj_freep)))

/* ---- the batch --------------------------------------------------------------------------- */

int np_batch_start(struct np_batch *b, const char *table, size_t msgs)
{
	memset(b, 0, sizeof(*b));
	b->table = table;
	if (msgs > MAX_MSGS)
		return -E2BIG;
	b->buflen = 2 * (msgs * 1024 + 65536);
	b->buf = malloc(b->buflen);
	b->cap_what = msgs + 8;
	b->what = calloc(b->cap_what, sizeof(*b->what));
	if (!b->buf || !b->what) {
		np_batch_free(b);
		return -ENOMEM;
	}
	b->seq = b->first_seq = (uint32_t)time(NULL);
	/* libmnl lets the last message run past the limit: half the buffer */
	b->b = mnl_nlmsg_batch_start(b->buf, b->buflen / 2);
	nftnl_batch_begin(mnl_nlmsg_batch_current(b->b), b->seq++);
	mnl_nlmsg_batch_next(b->b);
	return 0;
}

void np_batch_free(struct np_batch *b)
{
	if (b->b)
		mnl_nlmsg_batch_stop(b->b);
	free(b->buf);
	free(b->what);
	b->b = NULL;
	b->buf = NULL;
	b->what = NULL;
}

int np_batch_finish(struct np_batch *b, void **out_buf, size_t *out_len, struct np_what **out_what,
                    size_t *out_n, uint32_t *first_seq)
{
	nftnl_batch_end(mnl_nlmsg_batch_current(b->b), b->seq++);
	mnl_nlmsg_batch_next(b->b);
	size_t len = mnl_nlmsg_batch_size(b->b);
	void *buf = malloc(len);
	if (!buf) {
		np_batch_free(b);
		return -ENOMEM;
	}
	memcpy(buf, mnl_nlmsg_batch_head(b->b), len);
	*out_buf = buf;
	*out_len = len;
	*out_what = b->what;
	*out_n = b->n_what;
	*first_seq = b->first_seq + 1; /* the batch-begin message has no ack */
	b->what = NULL;                /* handed to the caller */
	np_batch_free(b);
	return 0;
}

void np_what(struct np_batch *b, const char *step, const char *object, const char *fmt, ...)
{
	va_list ap;
	if (b->n_what >= b->cap_what)
		return;
	struct np_what *w = &b->what[b->n_what++];
	snprintf(w->step, sizeof(w->step), "%s", step);
	snprintf(w->object, sizeof(w->object), "%s", object);
	va_start(ap, fmt);
	vsnprintf(w->desc, sizeof(w->desc), fmt, ap);
	va_end(ap);
}

struct nlmsghdr *np_hdr(struct np_batch *b, uint16_t type, uint16_t flags)
{
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b->b), type, NFPROTO_INET,
	                             flags | NLM_F_ACK, b->seq++);
}

/* ---- messages ------------------------------------------------------------------------------ */

void np_table_msg(struct np_batch *b, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, b->table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	struct nlmsghdr *n = np_hdr(b, type, flags);
	nftnl_table_nlmsg_build_payload(n, t);
	nftnl_table_free(t);
	mnl_nlmsg_batch_next(b->b);
	const char *step = type == NFT_MSG_DELTABLE ? "delete table" : "add table";
	np_what(b, step, b->table, "%s %s", step, b->table);
}

void np_chain_msg(struct np_batch *b, const char *name, const char *type, int hook, int prio)
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
	struct nlmsghdr *n = np_hdr(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
	nftnl_chain_nlmsg_build_payload(n, c);
	nftnl_chain_free(c);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add chain", name, "add chain %s", name);
}

void np_counter_msg(struct np_batch *b, const char *name)
{
	struct nftnl_obj *o = nftnl_obj_alloc();
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, b->table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	struct nlmsghdr *n = np_hdr(b, NFT_MSG_NEWOBJ, NLM_F_CREATE);
	nftnl_obj_nlmsg_build_payload(n, o);
	nftnl_obj_free(o);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add counter", name, "add counter %s", name);
}

struct nftnl_rule *np_rule_new(struct np_batch *b, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, b->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	return r;
}

/* The rule into the batch, and freed. */
void np_rule_msg(struct np_batch *b, struct nftnl_rule *r, const char *desc)
{
	struct nlmsghdr *n = np_hdr(b, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE);
	nftnl_rule_nlmsg_build_payload(n, r);
	mnl_nlmsg_batch_next(b->b);
	np_what(b, "add rule", nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), "%s", desc);
	nftnl_rule_free(r);
}

/* ---- expressions ---------------------------------------------------------- */

void np_e_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
}

void np_e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	nftnl_rule_add_expr(r, e);
}

void np_e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
}

void np_e_bitwise(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	uint8_t zero[16] = {0};
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	nftnl_rule_add_expr(r, e);
}

void np_e_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id, bool vmap)
{
	struct nftnl_expr *e = nftnl_expr_alloc("lookup");
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (vmap)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_rule_add_expr(r, e);
}

void np_e_lookup_inv(struct nftnl_rule *r, const char *set, uint32_t set_id)
{
	struct nftnl_expr *e = nftnl_expr_alloc("lookup");
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	nftnl_rule_add_expr(r, e);
}

void np_e_ct_state(struct nftnl_rule *r, uint32_t bits)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
	np_e_bitwise(r, &bits, sizeof(bits));
	uint32_t zero = 0;
	np_e_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

void np_e_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	nftnl_rule_add_expr(r, e);
}

void np_e_jump(struct nftnl_rule *r, const char *chain)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)NFT_JUMP);
	nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	nftnl_rule_add_expr(r, e);
}

void np_e_counter(struct nftnl_rule *r, const char *named)
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

void np_e_reject(struct nftnl_rule *r, bool tcp_reset)
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
void np_e_socket_mark(struct nftnl_rule *r, uint32_t mark)
{
	struct nftnl_expr *e = nftnl_expr_alloc("socket");
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
	nftnl_rule_add_expr(r, e);
	np_e_cmp(r, NFT_CMP_EQ, &mark, sizeof(mark));
}

/* meta l4proto PROTO */
void np_e_l4proto(struct nftnl_rule *r, uint8_t proto)
{
	np_e_meta(r, NFT_META_L4PROTO);
	np_e_cmp(r, NFT_CMP_EQ, &proto, 1);
}

/* meta nfproto ipv4|ipv6 */
void np_e_nfproto(struct nftnl_rule *r, uint8_t nfproto)
{
	np_e_meta(r, NFT_META_NFPROTO);
	np_e_cmp(r, NFT_CMP_EQ, &nfproto, 1);
}

/* meta l4proto tcp tcp flags & (syn | ack) == syn: a connection attempt */
void np_e_tcp_syn(struct nftnl_rule *r)
{
	uint8_t mask = 0x12 /* syn|ack */, syn = 0x02;
	np_e_l4proto(r, IPPROTO_TCP);
	np_e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
	np_e_bitwise(r, &mask, 1);
	np_e_cmp(r, NFT_CMP_EQ, &syn, 1);
}

/* ---- over netlink ----------------------------------------------------------------------- */

static struct mnl_socket *nft_open(void)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(nl);
		errno = e;
		return NULL;
	}
	return nl;
}

/* The error the kernel answered message w with: "socket mark" rules need nft_socket. */
static int batch_refused(const char *table, const struct np_what *w, int r,
                         struct netpolicy_error *err)
{
	const char *step = w ? w->step : "commit", *obj = w ? w->object : table;
	const char *desc = w ? w->desc : "commit";
	/* messages already carry "sandbox ..." where it applies */
	if (!strncmp(desc, "sandbox", 7))
		np_error(err, -r, step, obj, "netpolicy: %s: %s", desc, strerror(-r));
	else
		np_error(
		    err, -r, step, obj, "netpolicy: table \"%s\": %s: %s%s", table, desc,
		    strerror(-r),
		    strstr(desc, "socket mark") && (r == -ENOENT || r == -EOPNOTSUPP)
		        ? " (the kernel needs nft_socket, CONFIG_NFT_SOCKET, with the output hook)"
		        : "");
	return r;
}

int np_batch_send(const char *table, const void *buf, size_t len, const struct np_what *what,
                  size_t n_what, uint32_t first, struct netpolicy_error *err)
{
	_cleanup_mnl_ struct mnl_socket *nl = nft_open();
	if (!nl) {
		int e = errno;
		np_error(err, e, "netlink", table, "netpolicy: table \"%s\": netlink socket: %s",
		         table, strerror(e));
		return -e;
	}
	int sz = 16 << 20;
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	if (mnl_socket_sendto(nl, buf, len) < 0) {
		int e = errno;
		np_error(err, e, "send batch", table, "netpolicy: table \"%s\": send batch: %s",
		         table, strerror(e));
		return -e;
	}
	/* one ack per message (NLM_F_ACK); the first error names its message */
	static char rbuf[65536];
	uint32_t portid = mnl_socket_get_portid(nl);
	for (size_t acks = 0; acks < n_what;) {
		ssize_t got = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (got < 0) {
			int e = errno;
			np_error(err, e, "receive acks", table,
			         "netpolicy: table \"%s\": receive acks: %s", table, strerror(e));
			return -e;
		}
		const struct nlmsghdr *h = (const void *)rbuf;
		int left = (int)got;
		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			if (h->nlmsg_pid != portid || h->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
			acks++;
			/* the kernel aborted the batch: no more acks come */
			if (e->error) {
				uint32_t idx = h->nlmsg_seq - first;
				return batch_refused(table, idx < n_what ? &what[idx] : NULL,
				                     e->error, err);
			}
		}
	}
	return 0;
}

int np_counter_read(const char *table, const char *name, uint64_t *pkts)
{
	static char buf[16384];
	_cleanup_mnl_ struct mnl_socket *nl = nft_open();
	if (!nl)
		return -errno;
	uint32_t seq = (uint32_t)time(NULL);
	_cleanup_nftnl_obj_ struct nftnl_obj *o = nftnl_obj_alloc();
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	struct nlmsghdr *h =
	    nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETOBJ, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_obj_nlmsg_build_payload(h, o);
	if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0)
		return -errno;
	ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (got < 0)
		return -errno;
	int r = -EIO;
	const struct nlmsghdr *m = (const void *)buf;
	int left = (int)got;
	for (; mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
		if (m->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
			if (e->error)
				return e->error;
			continue;
		}
		_cleanup_nftnl_obj_ struct nftnl_obj *ro = nftnl_obj_alloc();
		if (nftnl_obj_nlmsg_parse(m, ro) == 0) {
			*pkts = nftnl_obj_get_u64(ro, NFTNL_OBJ_CTR_PKTS);
			r = 0;
		}
	}
	return r;
}
