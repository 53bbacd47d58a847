/* Unit tests: netpolicy's address plan, interface names and batch building
 * (the chains and expressions in it, parsed back with libnftnl); sandbox's
 * configuration checks and seccomp compilation. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netpolicy/internal.h"
#include "sandbox/sandbox.h"

static struct netpolicy_cidr cidr(int fam, const char *a, unsigned p)
{
	struct netpolicy_cidr c = {.family = fam, .prefix = (uint8_t)p};
	inet_pton(fam, a, c.addr);
	return c;
}

static void test_addr4_plan(void **state)
{
	(void)state;
	struct netpolicy_cidr pool = cidr(AF_INET, "100.127.0.0", 16);
	uint8_t a[4];
	char s[INET_ADDRSTRLEN];
	assert_int_equal(np_addr4(&pool, 0, 1, a), 0);
	assert_string_equal(inet_ntop(AF_INET, a, s, sizeof(s)), "100.127.0.1");
	assert_int_equal(np_addr4(&pool, 0, 2, a), 0);
	assert_string_equal(inet_ntop(AF_INET, a, s, sizeof(s)), "100.127.0.2");
	assert_int_equal(np_addr4(&pool, 1, 1, a), 0);
	assert_string_equal(inet_ntop(AF_INET, a, s, sizeof(s)), "100.127.0.5");
	assert_int_equal(np_addr4(&pool, 16383, 2, a), 0);
	assert_string_equal(inet_ntop(AF_INET, a, s, sizeof(s)), "100.127.255.254");
	assert_int_equal(np_addr4(&pool, 16384, 1, a), -ENOSPC);
	struct netpolicy_cidr small = cidr(AF_INET, "10.0.0.0", 30);
	assert_int_equal(np_addr4(&small, 0, 2, a), 0);
	assert_int_equal(np_addr4(&small, 1, 2, a), -ENOSPC);
	struct netpolicy_cidr v6 = cidr(AF_INET6, "fd00::", 48);
	assert_int_equal(np_addr4(&v6, 0, 1, a), -EINVAL);
}

static void test_addr6_plan(void **state)
{
	(void)state;
	struct netpolicy_cidr pool = cidr(AF_INET6, "fd70:6f73::", 48);
	uint8_t a[16];
	char s[INET6_ADDRSTRLEN];
	assert_int_equal(np_addr6(&pool, 0, 1, a), 0);
	assert_string_equal(inet_ntop(AF_INET6, a, s, sizeof(s)), "fd70:6f73::1");
	assert_int_equal(np_addr6(&pool, 5, 2, a), 0);
	assert_string_equal(inet_ntop(AF_INET6, a, s, sizeof(s)), "fd70:6f73:0:5::2");
	assert_int_equal(np_addr6(&pool, 65535, 2, a), 0);
	assert_string_equal(inet_ntop(AF_INET6, a, s, sizeof(s)), "fd70:6f73:0:ffff::2");
	assert_int_equal(np_addr6(&pool, 65536, 2, a), -ENOSPC);
	struct netpolicy_cidr p64 = cidr(AF_INET6, "2001:db8:1:2::", 64);
	assert_int_equal(np_addr6(&p64, 0, 2, a), 0);
	assert_string_equal(inet_ntop(AF_INET6, a, s, sizeof(s)), "2001:db8:1:2::2");
	assert_int_equal(np_addr6(&p64, 1, 2, a), -ENOSPC);
}

static void test_ifnames(void **state)
{
	(void)state;
	char n[16];
	assert_int_equal(np_ifname("pst", "echo", n), 0);
	assert_string_equal(n, "pstecho");
	assert_int_equal(np_ifname("pst", "abcdefghijkl", n), 0);
	assert_int_equal(strlen(n), 15);
	assert_int_equal(np_ifname("pstx", "abcdefghijkl", n), -ENAMETOOLONG);
}

static size_t rules_of(const void *buf, size_t len, char out[][512], size_t max);
static bool has_rule(char rules[][512], size_t n, const char *want);

static void test_batch_build(void **state)
{
	(void)state;
	uint16_t ports[] = {5432, 6432};
	struct netpolicy_rule rules[] = {
	    {.to = cidr(AF_INET, "10.152.163.0", 24), .proto = 6, .ports = ports, .n_ports = 2},
	    {.to = cidr(AF_INET6, "2001:db8::", 32)}};
	struct netpolicy_sandbox sb = {.name = "db", .rules = rules, .n_rules = 2};
	struct np_rules_sb rs = {.cfg = &sb, .ifname = "pstdb", .has_veth = true};
	void *buf;
	size_t len, n;
	struct np_what *what;
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, NULL, &buf, &len, &what, &n, &first, false),
	                 0);
	/* 3 table msgs, 2 counters, 9 chains, base rules (3 forward, 1
	 * to_sandbox, 2 input, 6 from_sandbox, 1+2 output, 2 handed_in, 1
	 * postrouting), sandbox chain: 1 + 3 + 2 */
	assert_int_equal(n, 3 + 2 + 9 + 18 + 6);
	assert_string_equal(what[0].desc, "add table t");
	assert_string_equal(what[n - 1].desc, "sandbox \"db\": add rule");
	assert_true(len > 0);
	/* no set decides what is a sandbox's: its interface name compared */
	static char rl[64][512];
	size_t nr = rules_of(buf, len, rl, 64);
	const char *pstdb = "meta cmp==70737464620000000000000000000000";
	char want[512];
	snprintf(want, sizeof(want), "forward: %s imm:%d", pstdb, NFT_JUMP);
	assert_true(has_rule(rl, nr, want));
	snprintf(want, sizeof(want), "to_sandbox: %s counter imm:%d", pstdb, NF_DROP);
	assert_true(has_rule(rl, nr, want));
	snprintf(want, sizeof(want), "input: %s imm:%d", pstdb, NFT_JUMP);
	assert_true(has_rule(rl, nr, want));
	snprintf(want, sizeof(want), "postrouting: %s masq", pstdb);
	assert_true(has_rule(rl, nr, want));
	for (size_t i = 0; i < nr; i++)
		assert_null(strstr(rl[i], "lookup"));
	free(buf);
	free(what);
	assert_int_equal(np_rules_build("t", NULL, 0, NULL, &buf, &len, &what, &n, &first, true),
	                 0);
	assert_int_equal(n, 2); /* add + delete: removes the table, tolerates its absence */
	free(buf);
	free(what);
}

static void test_batch_with_interval_set(void **state)
{
	(void)state;
	struct netpolicy_rule rules[5];
	for (int i = 0; i < 5; i++)
		rules[i] = (struct netpolicy_rule){.to = cidr(AF_INET, "10.0.0.0", 8), .proto = 17};
	rules[4].proto = 6; /* another kind: a rule of its own */
	struct netpolicy_sandbox sb = {.name = "many", .rules = rules, .n_rules = 5};
	struct np_rules_sb rs = {.cfg = &sb, .ifname = "pstmany", .has_veth = true};
	void *buf;
	size_t len, n;
	struct np_what *what;
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, NULL, &buf, &len, &what, &n, &first, false),
	                 0);
	bool set = false;
	size_t elems = 0;
	for (size_t i = 0; i < n; i++) {
		set |= !strcmp(what[i].desc, "add set sb_many_n0");
		elems += !strcmp(what[i].desc, "add element to set sb_many_n0");
	}
	assert_true(set);
	/* four equal /8s merge into one range: zero end, start, end */
	assert_int_equal(elems, 3);
	free(buf);
	free(what);
}

/* Two kinds with a set each: the second set holds its own CIDRs only (an
 * earlier kind's entries once leaked into it, opening 10/8 on port 2 too). */
static void test_batch_two_interval_sets(void **state)
{
	(void)state;
	uint16_t p1[] = {1}, p2[] = {2};
	struct netpolicy_rule rules[8];
	for (int i = 0; i < 8; i++)
		rules[i] =
		    (struct netpolicy_rule){.to = cidr(AF_INET, i < 4 ? "10.0.0.0" : "12.0.0.0", 8),
		                            .proto = 6,
		                            .ports = i < 4 ? p1 : p2,
		                            .n_ports = 1};
	struct netpolicy_sandbox sb = {.name = "two", .rules = rules, .n_rules = 8};
	struct np_rules_sb rs = {.cfg = &sb, .ifname = "psttwo", .has_veth = true};
	void *buf;
	size_t len, n;
	struct np_what *what;
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, NULL, &buf, &len, &what, &n, &first, false),
	                 0);
	size_t e0 = 0, e1 = 0;
	for (size_t i = 0; i < n; i++) {
		e0 += !strcmp(what[i].desc, "add element to set sb_two_n0");
		e1 += !strcmp(what[i].desc, "add element to set sb_two_n1");
	}
	/* one range each: zero end, start, end */
	assert_int_equal(e0, 3);
	assert_int_equal(e1, 3);
	free(buf);
	free(what);
}

/* Each message says its step and what it acts on, for the error record. */
static void test_batch_what(void **state)
{
	(void)state;
	struct netpolicy_rule rules[] = {{.to = cidr(AF_INET, "10.0.0.0", 8)}};
	struct netpolicy_sandbox sb = {.name = "db", .rules = rules, .n_rules = 1};
	struct np_rules_sb rs = {.cfg = &sb, .ifname = "pstdb", .has_veth = true};
	void *buf;
	size_t len, n;
	struct np_what *what;
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, NULL, &buf, &len, &what, &n, &first, false),
	                 0);
	assert_string_equal(what[0].step, "add table");
	assert_string_equal(what[0].object, "t");
	assert_string_equal(what[1].step, "delete table");
	assert_string_equal(what[n - 1].step, "add rule");
	assert_string_equal(what[n - 1].object, "sb_db");
	bool chain = false, elem = false;
	for (size_t i = 0; i < n; i++) {
		chain |= !strcmp(what[i].step, "add chain") && !strcmp(what[i].object, "handed_in");
		elem |= !strcmp(what[i].step, "add chain") && !strcmp(what[i].object, "to_sandbox");
	}
	assert_true(chain && elem);
	free(buf);
	free(what);
}

static void hex(const void *p, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", ((const uint8_t *)p)[i]);
	out[2 * len] = 0;
}

/* Each rule of a batch as "CHAIN: EXPR EXPR ...", an expression being its
 * name, with socket:mark, cmp==BYTES or cmp!=BYTES (in memory order),
 * bitwise&MASK, lookup:SET, imm:VERDICT, payload:BASE/OFFSET/LEN. */
static size_t rules_of(const void *buf, size_t len, char out[][512], size_t max)
{
	size_t k = 0;
	const struct nlmsghdr *h = buf;
	int left = (int)len;
	for (; mnl_nlmsg_ok(h, left) && k < max; h = mnl_nlmsg_next(h, &left)) {
		if (h->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE))
			continue;
		struct nftnl_rule *r = nftnl_rule_alloc();
		assert_int_equal(nftnl_rule_nlmsg_parse(h, r), 0);
		char *o = out[k];
		size_t room = 512;
		int w = snprintf(o, room, "%s:", nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
		struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
		for (struct nftnl_expr *e = nftnl_expr_iter_next(it); e;
		     e = nftnl_expr_iter_next(it)) {
			const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
			char x[64];
			if (!strcmp(name, "socket")) {
				snprintf(x, sizeof(x), "socket:%s",
				         nftnl_expr_get_u32(e, NFTNL_EXPR_SOCKET_KEY) ==
				                 NFT_SOCKET_MARK
				             ? "mark"
				             : "?");
			} else if (!strcmp(name, "cmp") || !strcmp(name, "bitwise")) {
				bool cmp = !strcmp(name, "cmp");
				uint32_t dl = 0;
				const void *d = nftnl_expr_get(
				    e, cmp ? NFTNL_EXPR_CMP_DATA : NFTNL_EXPR_BITWISE_MASK, &dl);
				char hx[40];
				hex(d, dl < 16 ? dl : 16, hx);
				snprintf(x, sizeof(x), "%s%s",
				         !cmp ? "bitwise&"
				         : nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP) == NFT_CMP_NEQ
				             ? "cmp!="
				             : "cmp==",
				         hx);
			} else if (!strcmp(name, "lookup")) {
				snprintf(x, sizeof(x), "lookup%s:%s",
				         nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) &
				                 NFT_LOOKUP_F_INV
				             ? "!="
				             : "",
				         nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET));
			} else if (!strcmp(name, "immediate")) {
				snprintf(x, sizeof(x), "imm:%d",
				         (int)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT));
			} else if (!strcmp(name, "payload")) {
				snprintf(x, sizeof(x), "payload:%u/%u/%u",
				         nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE),
				         nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET),
				         nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN));
			} else {
				snprintf(x, sizeof(x), "%s", name);
			}
			w += snprintf(o + w, room - (size_t)w, " %s", x);
		}
		nftnl_expr_iter_destroy(it);
		nftnl_rule_free(r);
		k++;
	}
	return k;
}

static bool has_rule(char rules[][512], size_t n, const char *want)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rules[i], want))
			return true;
	for (size_t i = 0; i < n; i++)
		print_message("  %s\n", rules[i]);
	print_message("missing: %s\n", want);
	return false;
}

/* The handed-over socket rules and the output chain: present also when no
 * sandbox has egress, one exception per startup listener. */
static void test_batch_handed_sockets(void **state)
{
	(void)state;
	struct netpolicy_sandbox sb = {.name = "none"};
	struct np_rules_sb rs = {.cfg = &sb, .ifname = "pstnone", .has_veth = false};
	struct netpolicy_listener ls[2] = {{.family = AF_INET, .port = 7200},
	                                   {.family = AF_INET6, .port = 7201}};
	inet_pton(AF_INET, "127.0.0.1", ls[0].addr); /* ls[1]: any address */
	void *buf;
	size_t len, n;
	struct np_what *what;
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, &(struct np_rules_in){ls, 2, NULL, 0}, &buf,
	                                &len, &what, &n, &first, false),
	                 0);
	bool out = false, in = false;
	for (size_t i = 0; i < n; i++) {
		out |= !strcmp(what[i].desc, "add chain output");
		in |= !strcmp(what[i].desc, "add chain handed_in");
	}
	assert_true(out && in);
	static char rules[64][512];
	size_t nr = rules_of(buf, len, rules, 64);
	assert_int_equal(NETPOLICY_MARK_CONN, 0x70737463);   /* "pstc" */
	assert_int_equal(NETPOLICY_MARK_LISTEN, 0x7073746c); /* "pstl" */
	uint32_t m = NETPOLICY_MARK_CONN, newbit = 0x8;
	char conn[16], lis[16], ctnew[16], want[512];
	hex(&m, 4, conn);
	m = NETPOLICY_MARK_LISTEN;
	hex(&m, 4, lis);
	hex(&newbit, 4, ctnew);
	/* SYN: meta l4proto tcp, tcp flags & (syn|ack) == syn */
	const char *syn = "meta cmp==06 payload:2/13/1 bitwise&12 cmp==02";
	/* no set decides what is a sandbox's: plain comparisons of the name */
	snprintf(want, sizeof(want), "output: ct bitwise&%s cmp!=00000000 imm:%d", ctnew, NFT_JUMP);
	assert_true(has_rule(rules, nr, want));

	snprintf(want, sizeof(want), "output: socket:mark cmp==%s %s counter reject", conn, syn);
	assert_true(has_rule(rules, nr, want));
	snprintf(want, sizeof(want), "output: socket:mark cmp==%s %s counter reject", lis, syn);
	assert_true(has_rule(rules, nr, want));
	snprintf(want, sizeof(want), "handed_in: socket:mark cmp==%s %s counter reject", conn, syn);
	assert_true(has_rule(rules, nr, want));
	/* 127.0.0.1:7200 (ip daddr at network offset 16), any [::]:7201 */
	snprintf(want, sizeof(want),
	         "handed_in: socket:mark cmp==%s meta cmp==02 payload:1/16/4 cmp==7f000001 meta "
	         "cmp==06 payload:2/2/2 cmp==1c20 imm:%d",
	         lis, NFT_RETURN);
	assert_true(has_rule(rules, nr, want));
	snprintf(want, sizeof(want),
	         "handed_in: socket:mark cmp==%s meta cmp==0a meta cmp==06 payload:2/2/2 cmp==1c21 "
	         "imm:%d",
	         lis, NFT_RETURN);
	assert_true(has_rule(rules, nr, want));
	snprintf(want, sizeof(want), "handed_in: socket:mark cmp==%s %s counter reject", lis, syn);
	assert_true(has_rule(rules, nr, want));
	/* the exceptions come before the listener's reject */
	size_t exc = nr, rej = nr;
	for (size_t i = 0; i < nr; i++) {
		if (strstr(rules[i], "handed_in:") && strstr(rules[i], lis) &&
		    strstr(rules[i], "imm:") && exc == nr)
			exc = i;
		if (strstr(rules[i], "handed_in:") && strstr(rules[i], lis) &&
		    strstr(rules[i], "reject"))
			rej = i;
	}
	assert_true(exc < rej && rej < nr);
	free(buf);
	free(what);
}

static size_t count_what(const struct np_what *w, size_t n, const char *desc)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += !strcmp(w[i].desc, desc);
	return k;
}

/* The elements of set SET in a batch, as "KEY" or "KEY/end" (hex) joined
 * by spaces. */
static void elems_of(const void *buf, size_t len, const char *set, char *out, size_t room)
{
	const struct nlmsghdr *h = buf;
	int left = (int)len;
	out[0] = 0;
	size_t w = 0;
	for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
		if (h->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM))
			continue;
		struct nftnl_set *s = nftnl_set_alloc();
		assert_int_equal(nftnl_set_elems_nlmsg_parse(h, s), 0);
		if (strcmp(nftnl_set_get_str(s, NFTNL_SET_NAME), set)) {
			nftnl_set_free(s);
			continue;
		}
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
		for (struct nftnl_set_elem *e = nftnl_set_elems_iter_next(it); e;
		     e = nftnl_set_elems_iter_next(it)) {
			uint32_t klen = 0;
			const void *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen);
			char x[40];
			hex(key, klen, x);
			bool end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
			           (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) &
			            NFT_SET_ELEM_INTERVAL_END);
			w += (size_t)snprintf(out + w, room - w, "%s%s%s", w ? " " : "", x,
			                      end ? "/end" : "");
			assert_true(w < room);
		}
		nftnl_set_elems_iter_destroy(it);
		nftnl_set_free(s);
	}
}

/* Client address rules: one set per family of the clients permitted (the
 * allow list less the deny list, every address less the deny list without
 * an allow list), the sandbox's shared by its addresses, an address's own
 * in its own, IPv4 CIDRs mapped into the ip6 sets, one counter per
 * sandbox; no set when the lists permit nobody or everybody. */
static void test_batch_access(void **state)
{
	(void)state;
	struct netpolicy_cidr allow[] = {cidr(AF_INET, "10.0.0.0", 8),
	                                 cidr(AF_INET6, "2001:db8::", 32)};
	struct netpolicy_cidr deny[] = {cidr(AF_INET, "10.1.0.0", 16)};
	struct netpolicy_cidr deny2[] = {cidr(AF_INET, "192.0.2.0", 24)};
	struct netpolicy_cidr allow3[] = {cidr(AF_INET, "10.1.0.0", 16)};
	struct netpolicy_cidr deny3[] = {cidr(AF_INET, "10.0.0.0", 8)};
	struct netpolicy_cidr all[] = {cidr(AF_INET, "0.0.0.0", 0)};
	struct netpolicy_access acc[5] = {
	    {.sandbox = "w",
	     .family = AF_INET,
	     .port = 80,
	     .listen_index = -1,
	     .allow = allow,
	     .n_allow = 2,
	     .deny = deny,
	     .n_deny = 1},
	    {.sandbox = "w",
	     .family = AF_INET6,
	     .port = 80,
	     .listen_index = -1,
	     .allow = allow,
	     .n_allow = 2,
	     .deny = deny,
	     .n_deny = 1},
	    {.sandbox = "w",
	     .family = AF_INET,
	     .port = 81,
	     .listen_index = 2,
	     .deny = deny2,
	     .n_deny = 1},
	    {.sandbox = "z",
	     .family = AF_INET,
	     .port = 82,
	     .listen_index = -1,
	     .allow = allow3,
	     .n_allow = 1,
	     .deny = deny3,
	     .n_deny = 1},
	    {.sandbox = "e",
	     .family = AF_INET,
	     .port = 83,
	     .listen_index = -1,
	     .allow = all,
	     .n_allow = 1},
	};
	inet_pton(AF_INET, "127.0.0.1", acc[2].addr);
	void *buf;
	size_t len, n;
	struct np_what *what;
	uint32_t first;
	assert_int_equal(np_rules_build("t", NULL, 0, &(struct np_rules_in){NULL, 0, acc, 5}, &buf,
	                                &len, &what, &n, &first, false),
	                 0);
	assert_int_equal(count_what(what, n, "add counter sb_w_addr"), 1);
	assert_int_equal(count_what(what, n, "add chain access_in"), 1);
	const char *once[] = {"add set sb_w_ok4", "add set sb_w_ok6", "add set sb_w_l2_ok4"};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(count_what(what, n, once[i]), 1);
	assert_int_equal(count_what(what, n, "add counter sb_z_addr"), 1);
	assert_int_equal(count_what(what, n, "add set sb_z_ok4"), 0);
	assert_int_equal(count_what(what, n, "add set sb_e_ok4"), 0);
	char el[1024];
	/* 10.0.0.0/8 less 10.1.0.0/16: an end at zero, then two ranges */
	elems_of(buf, len, "sb_w_ok4", el, sizeof(el));
	assert_string_equal(el, "00000000/end 0a000000 0a010000/end 0a020000 0b000000/end");
	/* everyone less 192.0.2.0/24: from zero, and up to the last address */
	elems_of(buf, len, "sb_w_l2_ok4", el, sizeof(el));
	assert_string_equal(el, "00000000 c0000200/end c0000300");
	/* ::ffff:10.0.0.0/104 less ::ffff:10.1.0.0/112, and 2001:db8::/32 */
	elems_of(buf, len, "sb_w_ok6", el, sizeof(el));
	assert_string_equal(
	    el, "00000000000000000000000000000000/end "
	        "00000000000000000000ffff0a000000 00000000000000000000ffff0a010000/end "
	        "00000000000000000000ffff0a020000 00000000000000000000ffff0b000000/end "
	        "20010db8000000000000000000000000 20010db9000000000000000000000000/end");
	static char rules[64][512];
	size_t nr = rules_of(buf, len, rules, 64);
	const char *syn4 = "meta cmp==02 meta cmp==06 payload:2/13/1 bitwise&12 cmp==02";
	const char *syn6 = "meta cmp==0a meta cmp==06 payload:2/13/1 bitwise&12 cmp==02";
	char want[512];
	snprintf(want, sizeof(want),
	         "access_in: %s payload:2/2/2 cmp==0050 payload:1/12/4 lookup!=:sb_w_ok4 objref "
	         "reject",
	         syn4);
	assert_true(has_rule(rules, nr, want));
	snprintf(want, sizeof(want),
	         "access_in: %s payload:2/2/2 cmp==0050 payload:1/8/16 lookup!=:sb_w_ok6 objref "
	         "reject",
	         syn6);
	assert_true(has_rule(rules, nr, want));
	snprintf(
	    want, sizeof(want),
	    "access_in: %s payload:2/2/2 cmp==0051 payload:1/16/4 cmp==7f000001 payload:1/12/4 "
	    "lookup!=:sb_w_l2_ok4 objref reject",
	    syn4);
	assert_true(has_rule(rules, nr, want));
	/* z permits nobody: every SYN to its port refused, without a set */
	snprintf(want, sizeof(want), "access_in: %s payload:2/2/2 cmp==0052 objref reject", syn4);
	assert_true(has_rule(rules, nr, want));
	size_t in_access = 0;
	for (size_t i = 0; i < nr; i++) {
		in_access += !strncmp(rules[i], "access_in:", 10);
		assert_null(strstr(rules[i], "cmp==0053")); /* e permits everybody */
	}
	assert_int_equal(in_access, 4);
	free(buf);
	free(what);
}

static void test_sandbox_config_checks(void **state)
{
	(void)state;
	struct sandbox *sb = NULL;
	struct sandbox_error err = {0};
	const char *rel[] = {"bin/x", NULL}, *ok[] = {"/bin/true", NULL};
	struct sandbox_config c = {.name = "t", .argv = rel, .uid = 1000, .gid = 1000};
	assert_int_equal(sandbox_prepare(&c, &sb, &err), -EINVAL);
	assert_string_equal(err.msg, "sandbox \"t\": exec must be an absolute path");
	assert_string_equal(err.step, "config");
	assert_string_equal(err.object, "t");
	c.argv = ok;
	c.uid = 0;
	assert_int_equal(sandbox_prepare(&c, &sb, &err), -EPERM);
	assert_string_equal(err.msg, "sandbox \"t\": refusing to run handlers as root");
	c.uid = 1000;
	const char *deny[] = {"no_such_syscall", NULL};
	c.seccomp_deny = deny;
	assert_int_equal(sandbox_prepare(&c, &sb, &err), -EINVAL);
	assert_string_equal(err.msg, "sandbox \"t\": seccomp: unknown syscall \"no_such_syscall\"");
	assert_string_equal(err.step, "seccomp");
	assert_string_equal(err.object, "no_such_syscall");
	assert_null(sb);
}

static void test_sandbox_prepare_ok(void **state)
{
	(void)state;
	struct sandbox *sb = NULL;
	struct sandbox_error err = {0};
	const char *argv[] = {"/bin/true", NULL}, *deny[] = {"chmod", NULL},
	           *allow[] = {"ptrace", NULL};
	struct sandbox_config c = {.name = "t",
	                           .argv = argv,
	                           .uid = 1000,
	                           .gid = 1000,
	                           .seccomp_deny = deny,
	                           .seccomp_allow = allow};
	int r = sandbox_prepare(&c, &sb, &err);
	if (geteuid() != 0) {
		/* the mount point of handler roots is root's to make */
		assert_int_not_equal(r, 0);
		assert_string_equal(err.step, "root");
		return;
	}
	assert_int_equal(r, 0);
	assert_non_null(sb);
	sandbox_free(sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr4_plan),
	    cmocka_unit_test(test_addr6_plan),
	    cmocka_unit_test(test_ifnames),
	    cmocka_unit_test(test_batch_build),
	    cmocka_unit_test(test_batch_with_interval_set),
	    cmocka_unit_test(test_batch_two_interval_sets),
	    cmocka_unit_test(test_batch_what),
	    cmocka_unit_test(test_batch_handed_sockets),
	    cmocka_unit_test(test_batch_access),
	    cmocka_unit_test(test_sandbox_config_checks),
	    cmocka_unit_test(test_sandbox_prepare_ok),
	};
	return cmocka_run_group_tests_name("netpolicy_sandbox", tests, NULL, NULL);
}
