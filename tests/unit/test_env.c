/* Unit tests: a handler's per-request environment (broker/wire.c,
 * pst_env_build) from the addresses of its connection, and the peer text
 * and per-source key the broker derives from them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "broker/internal.h"

static struct sockaddr_storage in4(const char *a, int port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in = (void *)&ss;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage in6(const char *a, int port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *in = (void *)&ss;
	in->sin6_family = AF_INET6;
	in->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, a, &in->sin6_addr), 1);
	return ss;
}

static struct sockaddr_storage unix_sa(const char *path)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_un *un = (void *)&ss;
	un->sun_family = AF_UNIX;
	snprintf(un->sun_path, sizeof(un->sun_path), "%s", path);
	return ss;
}

/* envp is exactly want (NULL-terminated). */
static void expect_env(const struct pst_req_env *e, size_t n, const char *const *want)
{
	size_t k = 0;
	for (; want[k]; k++) {
		assert_non_null(e->envp[k]);
		assert_string_equal(e->envp[k], want[k]);
	}
	assert_null(e->envp[k]);
	assert_int_equal(n, k);
}

static const char *const send_env[] = {"POSTERN_SEND_JOBS=3", "POSTERN_SEND_CONNS=4", NULL};

static void test_ipv4(void **state)
{
	(void)state;
	struct pst_req_env e;
	struct sockaddr_storage peer = in4("192.0.2.10", 51234), local = in4("127.0.0.1", 7000);
	size_t n = pst_env_build(&e, &peer, &local, NULL, send_env);
	static const char *const want[] = {
	    "REMOTE_ADDR=192.0.2.10",
	    "REMOTE_PORT=51234",
	    "TCPREMOTEIP=192.0.2.10",
	    "TCPREMOTEPORT=51234",
	    "TCPLOCALIP=127.0.0.1",
	    "TCPLOCALPORT=7000",
	    "PROTO=TCP",
	    "POSTERN_SEND_JOBS=3",
	    "POSTERN_SEND_CONNS=4",
	    NULL,
	};
	expect_env(&e, n, want);
}

static void test_ipv6(void **state)
{
	(void)state;
	struct pst_req_env e;
	struct sockaddr_storage peer = in6("2001:db8::1", 40000), local = in6("::1", 7000);
	size_t n = pst_env_build(&e, &peer, &local, NULL, NULL);
	static const char *const want[] = {
	    "REMOTE_ADDR=2001:db8::1",  "REMOTE_PORT=40000",    "TCPREMOTEIP=2001:db8::1",
	    "TCPREMOTEPORT=40000",      "TCPLOCALIP=::1",       "TCPLOCALPORT=7000",
	    "TCP6REMOTEIP=2001:db8::1", "TCP6REMOTEPORT=40000", "TCP6LOCALIP=::1",
	    "TCP6LOCALPORT=7000",       "PROTO=TCP6",           NULL,
	};
	expect_env(&e, n, want);
	/* the longest address text fits, in every entry */
	peer = in6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	local = in6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65534);
	n = pst_env_build(&e, &peer, &local, NULL, NULL);
	assert_int_equal(n, PST_ENV_OWN_MAX);
	assert_string_equal(e.envp[0], "REMOTE_ADDR=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_string_equal(e.envp[1], "REMOTE_PORT=65535");
	assert_string_equal(e.envp[6], "TCP6REMOTEIP=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_string_equal(e.envp[8], "TCP6LOCALIP=ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	assert_string_equal(e.envp[9], "TCP6LOCALPORT=65534");
}

/* A v4 client of a dual-stack socket ([::]:P, or an fd passed on by a
 * startup handler): an IPv4 client, dotted quads, PROTO=TCP, no TCP6*. */
static void test_v4_mapped(void **state)
{
	(void)state;
	struct pst_req_env e;
	struct sockaddr_storage peer = in6("::ffff:192.0.2.7", 1),
	                        local = in6("::ffff:10.0.0.1", 80);
	size_t n = pst_env_build(&e, &peer, &local, NULL, NULL);
	static const char *const want[] = {
	    "REMOTE_ADDR=192.0.2.7",
	    "REMOTE_PORT=1",
	    "TCPREMOTEIP=192.0.2.7",
	    "TCPREMOTEPORT=1",
	    "TCPLOCALIP=10.0.0.1",
	    "TCPLOCALPORT=80",
	    "PROTO=TCP",
	    NULL,
	};
	expect_env(&e, n, want);
	/* ::ffff:0:0/96 only: an IPv4-compatible or NAT64 address stays IPv6 */
	peer = in6("64:ff9b::c000:207", 2);
	n = pst_env_build(&e, &peer, &local, NULL, NULL);
	assert_string_equal(e.envp[0], "REMOTE_ADDR=64:ff9b::c000:207");
	assert_string_equal(e.envp[n - 1], "PROTO=TCP6");
	assert_string_equal(e.envp[4], "TCPLOCALIP=10.0.0.1");
}

/* A unix client: its credentials as ucspi-unix says them (and as the
 * agreed UNIXREMOTEUID/GID); without them, or a connection without an inet
 * peer: only the sandbox's own entries. */
static void test_unix(void **state)
{
	(void)state;
	struct pst_req_env e;
	struct sockaddr_storage peer = unix_sa(""), local = unix_sa("/run/x.sock");
	struct pst_peer_cred cred = {1001, 1002, 4242};
	size_t n = pst_env_build(&e, &peer, &local, &cred, send_env);
	static const char *const want_cred[] = {
	    "UNIXREMOTEUID=1001",  "UNIXREMOTEGID=1002",   "UNIXREMOTEPID=4242",
	    "UNIXREMOTEEUID=1001", "UNIXREMOTEEGID=1002",  "PROTO=UNIX",
	    "POSTERN_SEND_JOBS=3", "POSTERN_SEND_CONNS=4", NULL};
	expect_env(&e, n, want_cred);
	/* the widest values fit (uid_t, pid_t as the kernel gives them) */
	cred = (struct pst_peer_cred){4294967294u, 4294967295u, 2147483647};
	n = pst_env_build(&e, NULL, NULL, &cred, NULL);
	assert_int_equal(n, 6);
	assert_string_equal(e.envp[0], "UNIXREMOTEUID=4294967294");
	assert_string_equal(e.envp[1], "UNIXREMOTEGID=4294967295");
	assert_string_equal(e.envp[2], "UNIXREMOTEPID=2147483647");
	/* an inet client is never PROTO=UNIX, whatever cred says */
	struct sockaddr_storage p4 = in4("192.0.2.1", 9), l4 = in4("192.0.2.2", 10);
	n = pst_env_build(&e, &p4, &l4, &cred, NULL);
	assert_int_equal(n, 7);
	assert_string_equal(e.envp[6], "PROTO=TCP");
	n = pst_env_build(&e, &peer, &local, NULL, send_env);
	static const char *const want[] = {"POSTERN_SEND_JOBS=3", "POSTERN_SEND_CONNS=4", NULL};
	expect_env(&e, n, want);
	/* an inet peer with a local end of another family is no inet client */
	peer = in4("192.0.2.1", 5);
	n = pst_env_build(&e, &peer, &local, NULL, NULL);
	assert_int_equal(n, 0);
	assert_null(e.envp[0]);
}

static void test_no_peer(void **state)
{
	(void)state;
	struct pst_req_env e;
	struct sockaddr_storage local = in4("127.0.0.1", 7000);
	size_t n = pst_env_build(&e, NULL, &local, NULL, NULL);
	assert_int_equal(n, 0);
	assert_null(e.envp[0]);
	n = pst_env_build(&e, NULL, NULL, NULL, send_env);
	static const char *const want[] = {"POSTERN_SEND_JOBS=3", "POSTERN_SEND_CONNS=4", NULL};
	expect_env(&e, n, want);
	struct sockaddr_storage unspec;
	memset(&unspec, 0, sizeof(unspec));
	assert_int_equal(pst_env_build(&e, &unspec, &unspec, NULL, NULL), 0);
}

/* At most PST_ENV_EXTRA_MAX extra entries are taken. */
static void test_extra_bounded(void **state)
{
	(void)state;
	const char *many[PST_ENV_EXTRA_MAX + 4];
	for (size_t i = 0; i < PST_ENV_EXTRA_MAX + 3; i++)
		many[i] = "X=1";
	many[PST_ENV_EXTRA_MAX + 3] = NULL;
	struct pst_req_env e;
	struct sockaddr_storage peer = in4("192.0.2.1", 1), local = in4("192.0.2.2", 2);
	size_t n = pst_env_build(&e, &peer, &local, NULL, many);
	assert_int_equal(n, 7 + PST_ENV_EXTRA_MAX);
	assert_null(e.envp[n]);
	/* the most: an IPv6 client's own entries and all extras */
	peer = in6("2001:db8::1", 1);
	local = in6("2001:db8::2", 2);
	n = pst_env_build(&e, &peer, &local, NULL, many);
	assert_int_equal(n, PST_ENV_OWN_MAX + PST_ENV_EXTRA_MAX);
	assert_null(e.envp[n]);
}

static void test_peer_text_and_key(void **state)
{
	(void)state;
	char buf[64];
	uint8_t key[PST_SRCKEY_LEN];
	struct sockaddr_storage a = in4("192.0.2.10", 51234);
	pst_peer_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.10:51234");
	assert_true(pst_srckey_inet(&a, key));
	assert_int_equal(key[0], AF_INET);
	static const uint8_t v4[4] = {192, 0, 2, 10};
	assert_memory_equal(key + 1, v4, 4);
	for (size_t i = 5; i < PST_SRCKEY_LEN; i++)
		assert_int_equal(key[i], 0);

	a = in6("2001:db8::1", 443);
	pst_peer_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::1]:443");
	assert_true(pst_srckey_inet(&a, key));
	assert_int_equal(key[0], AF_INET6);
	assert_memory_equal(key + 1, &((struct sockaddr_in6 *)&a)->sin6_addr, 16);
	/* the port is no part of the source */
	uint8_t key2[PST_SRCKEY_LEN];
	a = in6("2001:db8::1", 444);
	assert_true(pst_srckey_inet(&a, key2));
	assert_memory_equal(key, key2, PST_SRCKEY_LEN);

	/* a v4 client of a dual-stack socket: logged, and counted per source,
	 * as the same client over IPv4 */
	a = in6("::ffff:192.0.2.10", 443);
	pst_peer_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.10:443");
	uint8_t key4[PST_SRCKEY_LEN];
	struct sockaddr_storage b = in4("192.0.2.10", 1);
	assert_true(pst_srckey_inet(&a, key2));
	assert_true(pst_srckey_inet(&b, key4));
	assert_memory_equal(key2, key4, PST_SRCKEY_LEN);

	a = unix_sa("/x");
	strcpy(buf, "junk");
	pst_peer_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "");
	assert_false(pst_srckey_inet(&a, key));
	assert_int_equal(key[0], AF_UNIX);
	/* truncated, never overrun */
	a = in4("192.0.2.10", 51234);
	char small[8];
	pst_peer_format(&a, small, sizeof(small));
	assert_string_equal(small, "192.0.2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_v4_mapped),
	    cmocka_unit_test(test_unix),
	    cmocka_unit_test(test_no_peer),
	    cmocka_unit_test(test_extra_bounded),
	    cmocka_unit_test(test_peer_text_and_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
