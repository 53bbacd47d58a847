/* Unit tests: netpolicy's address plan, interface names and batch building;
 * sandbox's configuration checks and seccomp compilation. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "netpolicy/internal.h"
#include "sandbox/sandbox.h"

static struct netpolicy_cidr cidr(int fam, const char *a, unsigned p)
{
	struct netpolicy_cidr c = { .family = fam, .prefix = (uint8_t)p };
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

static void test_batch_build(void **state)
{
	(void)state;
	uint16_t ports[] = { 5432, 6432 };
	struct netpolicy_rule rules[] = { { .to = cidr(AF_INET, "10.152.163.0", 24), .proto = 6,
					    .ports = ports, .n_ports = 2 },
					  { .to = cidr(AF_INET6, "2001:db8::", 32) } };
	struct netpolicy_sandbox sb = { .name = "db", .rules = rules, .n_rules = 2 };
	struct np_rules_sb rs = { .cfg = &sb, .ifname = "pstdb", .has_veth = true };
	void *buf;
	size_t len, n;
	char(*what)[96];
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, &buf, &len, &what, &n, &first, false), 0);
	/* 3 table msgs, 2 sets, 2 counters, 4 chains, 2 elements, base rules
	 * (2 forward, 1+3+2 input, 1 postrouting), sandbox chain: 1 + 3 + 2 */
	assert_int_equal(n, 3 + 2 + 2 + 4 + 2 + 9 + 6);
	assert_string_equal(what[0], "add table t");
	assert_string_equal(what[n - 1], "sandbox \"db\": add rule");
	assert_true(len > 0);
	free(buf);
	free(what);
	assert_int_equal(np_rules_build("t", NULL, 0, &buf, &len, &what, &n, &first, true), 0);
	assert_int_equal(n, 2);	/* add + delete: removes the table, tolerates its absence */
	free(buf);
	free(what);
}

static void test_batch_with_interval_set(void **state)
{
	(void)state;
	struct netpolicy_rule rules[5];
	for (int i = 0; i < 5; i++)
		rules[i] = (struct netpolicy_rule){ .to = cidr(AF_INET, "10.0.0.0", 8), .proto = 17 };
	rules[4].proto = 6;	/* another kind: a rule of its own */
	struct netpolicy_sandbox sb = { .name = "many", .rules = rules, .n_rules = 5 };
	struct np_rules_sb rs = { .cfg = &sb, .ifname = "pstmany", .has_veth = true };
	void *buf;
	size_t len, n;
	char(*what)[96];
	uint32_t first;
	assert_int_equal(np_rules_build("t", &rs, 1, &buf, &len, &what, &n, &first, false), 0);
	bool set = false;
	size_t elems = 0;
	for (size_t i = 0; i < n; i++) {
		set |= !strcmp(what[i], "add set sb_many_n0");
		elems += !strcmp(what[i], "add element to set sb_many_n0");
	}
	assert_true(set);
	/* four equal /8s merge into one range: zero end, start, end */
	assert_int_equal(elems, 3);
	free(buf);
	free(what);
}

static void test_sandbox_config_checks(void **state)
{
	(void)state;
	struct sandbox *sb = NULL;
	struct sandbox_error err = { 0 };
	const char *rel[] = { "bin/x", NULL }, *ok[] = { "/bin/true", NULL };
	struct sandbox_config c = { .name = "t", .argv = rel, .uid = 1000, .gid = 1000 };
	assert_int_equal(sandbox_prepare(&c, &sb, &err), -EINVAL);
	assert_string_equal(err.msg, "sandbox \"t\": exec must be an absolute path");
	c.argv = ok;
	c.uid = 0;
	assert_int_equal(sandbox_prepare(&c, &sb, &err), -EPERM);
	assert_string_equal(err.msg, "sandbox \"t\": refusing to run handlers as root");
	c.uid = 1000;
	const char *deny[] = { "no_such_syscall", NULL };
	c.seccomp_deny = deny;
	assert_int_equal(sandbox_prepare(&c, &sb, &err), -EINVAL);
	assert_string_equal(err.msg, "sandbox \"t\": seccomp: unknown syscall \"no_such_syscall\"");
	assert_null(sb);
}

static void test_sandbox_prepare_ok(void **state)
{
	(void)state;
	struct sandbox *sb = NULL;
	struct sandbox_error err = { 0 };
	const char *argv[] = { "/bin/true", NULL }, *deny[] = { "chmod", NULL }, *allow[] = { "ptrace", NULL };
	struct sandbox_config c = { .name = "t", .argv = argv, .uid = 1000, .gid = 1000,
				    .seccomp_deny = deny, .seccomp_allow = allow };
	assert_int_equal(sandbox_prepare(&c, &sb, &err), 0);
	assert_non_null(sb);
	sandbox_free(sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr4_plan),	cmocka_unit_test(test_addr6_plan),
		cmocka_unit_test(test_ifnames),		cmocka_unit_test(test_batch_build),
		cmocka_unit_test(test_batch_with_interval_set),
		cmocka_unit_test(test_sandbox_config_checks), cmocka_unit_test(test_sandbox_prepare_ok),
	};
	return cmocka_run_group_tests_name("netpolicy_sandbox", tests, NULL, NULL);
}
