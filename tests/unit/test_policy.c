/* Unit tests of the policy loader: every class of error, with its message,
 * the value parsers at their limits, defaults, and the shipped policies. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/broker.h"

/* A minimal valid sandbox, to splice into test policies. */
#define SB_OK "\"trigger\": { \"listen\": [\"127.0.0.1:7000\"] }, \"exec\": [\"/bin/true\"]"

static char *wrap_sandbox(const char *body)
{
	char *s = NULL;
	if (asprintf(&s, "{ \"postern\": 1, \"sandboxes\": { \"a\": { %s } } }", body) < 0)
		return NULL;
	return s;
}

static int parse(const char *json, struct pst_policy **p, struct pst_diag *d)
{
	memset(d, 0, sizeof(*d));
	return pst_policy_parse("t.json", json, strlen(json), p, d);
}

/* Parse json and expect failure with a message containing `want`. */
static void expect_error(const char *json, const char *want)
{
	struct pst_policy *p = NULL;
	struct pst_diag d;
	int r = parse(json, &p, &d);
	bool found = false;
	for (size_t i = 0; i < d.n; i++)
		if (strstr(d.msgs[i], want))
			found = true;
	if (r != -EINVAL || !found || p) {
		fprintf(stderr, "policy: %s\nwant an error containing: %s\ngot r=%d:\n", json, want,
		        r);
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "  %s\n", d.msgs[i]);
	}
	assert_int_equal(r, -EINVAL);
	assert_null(p);
	assert_true(found);
	pst_diag_free(&d);
}

static void expect_sandbox_error(const char *body, const char *want)
{
	char *j = wrap_sandbox(body);
	assert_non_null(j);
	expect_error(j, want);
	free(j);
}

static struct pst_policy *expect_ok(const char *json)
{
	struct pst_policy *p = NULL;
	struct pst_diag d;
	int r = parse(json, &p, &d);
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "unexpected: %s\n", d.msgs[i]);
	assert_int_equal(r, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(p);
	pst_diag_free(&d);
	return p;
}

/* ---- table of sandbox-level errors ---------------------------------------- */

struct case_ {
	const char *body;
	const char *want;
};

static const struct case_ sandbox_cases[] = {
    /* trigger */
    {"\"exec\": [\"/x\"]", "sandboxes.a: missing required key \"trigger\""},
    {"\"trigger\": {}, \"exec\": [\"/x\"]",
     "exactly one of listen, pipe, fdpass, startup is required (found 0)"},
    {"\"trigger\": { \"listen\": [\"127.0.0.1:1\"], \"pipe\": \"c\" }, \"exec\": [\"/x\"]",
     "(found 2)"},
    {"\"trigger\": { \"listen\": [] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen: []: must not be empty"},
    {"\"trigger\": { \"listen\": \"127.0.0.1:1\" }, \"exec\": [\"/x\"]",
     "expected an array, got a string"},
    {"\"trigger\": { \"listen\": [\"127.0.0.1:0\"] }, \"exec\": [\"/x\"]",
     "port 0 is out of range 1-65535"},
    {"\"trigger\": { \"listen\": [\"127.0.0.1:65536\"] }, \"exec\": [\"/x\"]",
     "port 65536 is out of range 1-65535"},
    {"\"trigger\": { \"listen\": [\"127.0.0.1\"] }, \"exec\": [\"/x\"]",
     "expected IPv4:port, [IPv6]:port or unix:/path"},
    {"\"trigger\": { \"listen\": [\"300.0.0.1:80\"] }, \"exec\": [\"/x\"]",
     "\"300.0.0.1\" is not an IPv4 address"},
    {"\"trigger\": { \"listen\": [\"[::1:80\"] }, \"exec\": [\"/x\"]", "expected [IPv6]:port"},
    {"\"trigger\": { \"listen\": [\"::1:80\"] }, \"exec\": [\"/x\"]",
     "expected IPv4:port, [IPv6]:port or unix:/path"},
    {"\"trigger\": { \"listen\": [\"[fe80::1%eth0]:80\"] }, \"exec\": [\"/x\"]",
     "zone identifiers are not allowed"},
    {"\"trigger\": { \"listen\": [\"[::ffff:127.0.0.1]:80\"] }, \"exec\": [\"/x\"]",
     "IPv4-mapped IPv6 addresses are not allowed"},
    {"\"trigger\": { \"listen\": [\"[::1]:99999\"] }, \"exec\": [\"/x\"]",
     "port 99999 is out of range"},
    {"\"trigger\": { \"listen\": [\"unix:sock\"] }, \"exec\": [\"/x\"]",
     "unix socket path must be absolute"},
    {"\"trigger\": { \"listen\": [42] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0]: 42: expected an address string or object, got a number"},
    {"\"trigger\": { \"pipe\": \"Jobs\" }, \"exec\": [\"/x\"]", "invalid channel name"},
    {"\"trigger\": { \"startup\": false }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.startup: false: must be true"},
    {"\"trigger\": { \"cron\": \"* * *\" }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.cron: unknown key"},
    /* exec, socket, restart, prewarm, sockets */
    {"\"trigger\": { \"listen\": [\"127.0.0.1:1\"] }", "missing required key \"exec\""},
    {"\"trigger\": { \"listen\": [\"127.0.0.1:1\"] }, \"exec\": []",
     "sandboxes.a.exec: []: must not be empty"},
    {"\"trigger\": { \"listen\": [\"127.0.0.1:1\"] }, \"exec\": [\"bin/x\"]",
     "sandboxes.a.exec[0]: \"bin/x\": must be an absolute path"},
    {"\"trigger\": { \"listen\": [\"127.0.0.1:1\"] }, \"exec\": [\"/x\", 1]",
     "sandboxes.a.exec[1]: 1: expected a string, got a number"},
    {SB_OK ", \"socket\": \"fd3\"", "must be \"stdio\" or \"listen_fds\""},
    {SB_OK ", \"restart\": \"always\"", "only a startup sandbox can be restarted"},
    {SB_OK ", \"prewarm\": -1", "sandboxes.a.prewarm: -1: out of range 0-1024"},
    {SB_OK ", \"prewarm\": 1.5", "expected an integer, got a number"},
    {SB_OK ", \"sockets\": [\"127.0.0.1:9\"]", "only a startup sandbox can have sockets"},
    /* filesystem */
    {SB_OK ", \"filesystem\": [ { \"bind\": \"usr\" } ]",
     "sandboxes.a.filesystem[0].bind: \"usr\": must be an absolute path"},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/usr/../etc\" } ]",
     "\".\" and \"..\" components are not allowed"},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/usr\", \"mode\": \"rx\" } ]",
     "must be \"ro\" or \"rw\""},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/usr\", \"ro\": true } ]",
     "sandboxes.a.filesystem[0].ro: unknown key"},
    {SB_OK ", \"filesystem\": [ { \"tmpfs\": \"/\" } ]", "cannot be / itself"},
    {SB_OK ", \"filesystem\": [ { \"tmpfs\": \"/tmp\", \"size\": \"8X\" } ]", "not a size"},
    {SB_OK ", \"filesystem\": [ { \"symlink\": \"/lib\" } ]", "missing required key \"target\""},
    {SB_OK ", \"filesystem\": [ { \"proc\": \"/proc\", \"tmpfs\": \"/tmp\" } ]",
     "exactly one of bind, tmpfs, proc, symlink is required (found 2)"},
    {SB_OK
     ", \"filesystem\": [ { \"tmpfs\": \"/tmp\" }, { \"bind\": \"/srv\", \"to\": \"/tmp\" } ]",
     "\"/tmp\" is already a destination of entry 0"},
    {SB_OK ", \"filesystem\": { \"bind\": \"/usr\" }",
     "sandboxes.a.filesystem: {\"bind\":\"/usr\"}: expected an array, got an object"},
    {SB_OK ", \"filesystem\": [ { \"symlink\": \"/lib\", \"target\": \"usr/lib\" }, { \"bind\": "
           "\"/srv\", \"to\": \"/lib/x\" } ]",
     "sandboxes.a.filesystem[1].to: \"/lib/x\" lies under the symlink of entry 0 (\"/lib\"): mount "
     "points are not made through symlinks"},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/srv\", \"to\": \"/a/b\" }, { \"symlink\": \"/a\", "
           "\"target\": \"x\" } ]",
     "sandboxes.a.filesystem[1].symlink: \"/a\" would be a symlink above entry 0 (\"/a/b\")"},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/srv\", \"mode\": \"rw\" }, { \"bind\": "
           "\"/srv/pub\", \"to\": \"/pub\" } ]",
     "sandboxes.a.filesystem[1].bind: \"/srv/pub\": lies inside \"/srv\", an rw bind of this "
     "sandbox (filesystem[0]): its handlers could replace it with a symlink"},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/srv\", \"mode\": \"rw\" }, { \"bind\": "
           "\"/srv/sub\", \"to\": \"/sub\", \"mode\": \"rw\" } ]",
     "sandboxes.a.filesystem[1].bind: \"/srv/sub\": lies inside \"/srv\", an rw bind of this "
     "sandbox"},
    {SB_OK ", \"filesystem\": [ { \"bind\": \"/\", \"to\": \"/host\", \"mode\": \"rw\" }, { "
           "\"bind\": \"/usr\" } ]",
     "sandboxes.a.filesystem[1].bind: \"/usr\": lies inside \"/\", an rw bind of this sandbox"},
    /* egress */
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/33\" } ]",
     "sandboxes.a.egress[0].to: \"10.0.0.0/33\": prefix length 33 is out of range for IPv4"},
    {SB_OK ", \"egress\": [ { \"to\": \"2001:db8::/129\" } ]",
     "prefix length 129 is out of range for IPv6"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.1.2.3/8\" } ]",
     "host bits are set; the network is 10.0.0.0/8"},
    {SB_OK ", \"egress\": [ { \"to\": \"2001:db8::1/32\" } ]",
     "host bits are set; the network is 2001:db8::/32"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/x\" } ]", "prefix length \"x\" is not a number"},
    {SB_OK ", \"egress\": [ { \"to\": \"db.example\" } ]", "is not an IPv4 or IPv6 address"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/8\", \"ports\": [80] } ]",
     "ports need \"proto\": \"tcp\" or \"udp\""},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/8\", \"proto\": \"icmp\", \"ports\": [80] } ]",
     "ports need"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/8\", \"proto\": \"tcp\", \"ports\": [0] } ]",
     "sandboxes.a.egress[0].ports[0]: 0: out of range 1-65535"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/8\", \"proto\": \"tcp\", \"ports\": [80, 80] } ]",
     "duplicate port"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/8\", \"proto\": \"tcp\", \"ports\": [] } ]",
     "must not be empty"},
    {SB_OK ", \"egress\": [ { \"to\": \"10.0.0.0/8\", \"proto\": \"sctp\" } ]",
     "must be \"tcp\", \"udp\" or \"icmp\""},
    {SB_OK ", \"egress\": [ { \"proto\": \"tcp\" } ]",
     "sandboxes.a.egress[0]: missing required key \"to\""},
    {SB_OK ", \"egress\": [ { \"to\": \"100.127.0.0/24\" } ]",
     "overlaps the sandbox address pool 100.127.0.0/16"},
    /* limits */
    {SB_OK ", \"limits\": { \"handlers\": 0 }",
     "sandboxes.a.limits.handlers: 0: out of range 1-65536"},
    {SB_OK ", \"limits\": { \"pids\": \"16\" }",
     "sandboxes.a.limits.pids: \"16\": expected an integer, got a string"},
    {SB_OK ", \"limits\": { \"timeout\": \"30\" }",
     "not a duration: an integer followed by ms, s, m or h"},
    {SB_OK ", \"limits\": { \"timeout\": \"25h\" }", "duration too long (at most 86400s)"},
    {SB_OK ", \"limits\": { \"timeout\": \"0s\" }", "duration too short"},
    {SB_OK ", \"limits\": { \"timeout\": \"99999999999999999999s\" }", "duration too long"},
    {SB_OK ", \"limits\": { \"timeout\": \"-5s\" }", "not a duration"},
    {SB_OK ", \"limits\": { \"timeout\": \"1.5s\" }", "not a duration"},
    {SB_OK ", \"limits\": { \"memory\": \"512K\" }", "size too small (at least 1048576 bytes)"},
    {SB_OK ", \"limits\": { \"memory\": \"99999999999G\" }", "size too large"},
    {SB_OK ", \"limits\": { \"memory\": 64 }",
     "expected a size string such as \"64M\", got a number"},
    {SB_OK ", \"limits\": { \"nofile\": 2 }", "out of range 3-1048576"},
    {SB_OK ", \"limits\": { \"cpu\": 0 }", "must be more than 0"},
    {SB_OK ", \"limits\": { \"cpu\": 0.009 }",
     "limits.cpu: 0.009: a quota of 900 us per 100000 us period (cpu.max) is below the kernel's "
     "minimum of 1000 us: at least 0.01 cores"},
    {SB_OK ", \"identity_files\": 1", "identity_files: 1: expected"},
    {SB_OK ", \"identity_files\": true, \"filesystem\": [ { \"tmpfs\": \"/etc\" } ]",
     "sandboxes.a.filesystem[0].tmpfs: \"/etc\": \"identity_files\" writes /etc/passwd, "
     "/etc/group and /etc/hosts into the root, and this entry takes /etc:"},
    {SB_OK ", \"identity_files\": true, \"filesystem\": [ { \"bind\": \"/x\", \"to\": "
           "\"/etc/passwd\" } ]",
     "filesystem[0].to: \"/etc/passwd\": \"identity_files\" writes"},
    {SB_OK ", \"limits\": { \"rate\": \"200\" }", "not a rate"},
    {SB_OK ", \"limits\": { \"rate\": \"0/s\" }", "rate out of range"},
    {SB_OK ", \"limits\": { \"per_source\": 10, \"handlers\": 5 }",
     "10 is more than limits.handlers (5)"},
    {SB_OK ", \"limits\": { \"burst\": 5 }", "sandboxes.a.limits.burst: unknown key"},
    /* seccomp */
    {SB_OK ", \"seccomp\": { \"default\": \"trap\" }", "must be \"errno\" or \"kill\""},
    {SB_OK ", \"seccomp\": { \"deny\": [\"no_such_call\"] }",
     "sandboxes.a.seccomp.deny[0]: \"no_such_call\": unknown syscall"},
    {SB_OK ", \"seccomp\": { \"deny\": [\"ptrace\"], \"allow\": [\"ptrace\"] }",
     "\"ptrace\" is both allowed and denied"},
    {SB_OK ", \"seccomp\": { \"deny\": [\"ptrace\", \"ptrace\"] }", "listed twice"},
    /* env */
    {SB_OK ", \"env\": { \"LISTEN_FDS\": \"1\" }", "sandboxes.a.env.LISTEN_FDS: reserved"},
    {SB_OK ", \"env\": { \"POSTERN_X\": \"1\" }", "reserved"},
    /* what postern says of the client, ucspi-tcp6 and ucspi-unix style */
    {SB_OK ", \"env\": { \"TCP6REMOTEIP\": \"::1\" }", "sandboxes.a.env.TCP6REMOTEIP: reserved"},
    {SB_OK ", \"env\": { \"TCP6LOCALPORT\": \"1\" }", "sandboxes.a.env.TCP6LOCALPORT: reserved"},
    {SB_OK ", \"env\": { \"UNIXREMOTEUID\": \"0\" }", "sandboxes.a.env.UNIXREMOTEUID: reserved"},
    {SB_OK ", \"env\": { \"UNIXREMOTEEUID\": \"0\" }", "sandboxes.a.env.UNIXREMOTEEUID: reserved"},
    {SB_OK ", \"env\": { \"UNIXREMOTEPID\": \"1\" }", "sandboxes.a.env.UNIXREMOTEPID: reserved"},
    {SB_OK ", \"env\": { \"1X\": \"1\" }", "invalid variable name"},
    {SB_OK ", \"env\": { \"N\": 5 }", "sandboxes.a.env.N: 5: expected a string, got a number"},
    /* uid, allow_bind */
    {SB_OK ", \"uid\": 999", "sandboxes.a.uid: 999: out of range 1000-4294967294"},
    {SB_OK ", \"uid\": 0", "sandboxes.a.uid: 0: out of range 1000-4294967294"},
    {SB_OK ", \"uid\": 4294967295", "out of range 1000-4294967294"},
    {SB_OK ", \"uid\": 65534",
     "sandboxes.a.uid: 65534: 65534 is \"nobody\", shared with other programs"},
    {SB_OK ", \"uid\": \"5000\"", "sandboxes.a.uid: \"5000\": expected an integer, got a string"},
    {SB_OK ", \"uid\": 5000.5", "sandboxes.a.uid: 5000.5: expected an integer"},
    {SB_OK ", \"allow_bind\": 1", "sandboxes.a.allow_bind: 1: expected a boolean"},
    /* inbound access */
    {SB_OK ", \"allow_from\": [\"10.1.2.3/8\"]",
     "sandboxes.a.allow_from[0]: \"10.1.2.3/8\": host bits are set; the network is 10.0.0.0/8"},
    {SB_OK ", \"deny_from\": \"10.0.0.0/8\"",
     "sandboxes.a.deny_from: \"10.0.0.0/8\": expected an array, got a string"},
    {SB_OK ", \"allow_from\": [42]",
     "sandboxes.a.allow_from[0]: 42: expected a CIDR string such as \"10.0.0.0/8\""},
    {SB_OK ", \"allow_from\": [\"2001:db8::/32\"]",
     "sandboxes.a.allow_from[0]: 2001:db8::/32 never matches: every listen address it applies "
     "to is IPv4"},
    {"\"trigger\": { \"listen\": [\"[::1]:7000\"] }, \"exec\": [\"/x\"], \"deny_from\": "
     "[\"10.0.0.0/8\"]",
     "sandboxes.a.deny_from[0]: 10.0.0.0/8 never matches: every listen address it applies to is "
     "IPv6"},
    {"\"trigger\": { \"pipe\": \"jobs\" }, \"exec\": [\"/x\"], \"allow_from\": [\"10.0.0.0/8\"]",
     "sandboxes.a.allow_from: client address rules apply to listen triggers only (a pipe "
     "sandbox accepts no connections)"},
    {"\"trigger\": { \"listen\": [\"unix:/run/x.sock\"] }, \"exec\": [\"/x\"], \"deny_from\": "
     "[\"10.0.0.0/8\"]",
     "sandboxes.a.deny_from: no TCP listen address uses the sandbox's client address rules"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"127.0.0.1:1\", \"allow_from\": [] }] }, "
     "\"exec\": [\"/x\"], \"allow_from\": [\"10.0.0.0/8\"]",
     "sandboxes.a.allow_from: no TCP listen address uses the sandbox's client address rules"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"allow_from\": "
     "[\"10.0.0.0/8\"] }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].allow_from: only a TCP address has client address rules"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"127.0.0.1:1\", \"mode\": \"0600\" }] }, "
     "\"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].mode: only a unix socket address has a file mode"},
    {"\"trigger\": { \"listen\": [{ \"allow_from\": [] }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0]: missing required key \"address\""},
    {"\"trigger\": { \"listen\": [{ \"address\": \"127.0.0.1:1\", \"colour\": 1 }] }, "
     "\"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].colour: unknown key"},
    {"\"trigger\": { \"listen\": [{ \"address\": 80 }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].address: 80: expected an address string, got a number"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"[::1]:1\", \"allow_from\": "
     "[\"10.0.0.0/8\"] }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].allow_from[0]: 10.0.0.0/8 never matches"},
    {"\"trigger\": { \"listen\": [\"0.0.0.0:1\", { \"address\": \"[::]:1\", \"deny_from\": "
     "[\"10.0.0.0/8\"] }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[1].deny_from[0]: 10.0.0.0/8 never matches: every listen address "
     "it applies to is IPv6"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"mode\": \"01777\" }] "
     "}, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].mode: \"01777\": must be an octal mode string such as "
     "\"0660\" (at most 0777)"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"mode\": \"0968\" }] "
     "}, \"exec\": [\"/x\"]",
     "must be an octal mode string"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"mode\": 660 }] }, "
     "\"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].mode: 660: must be an octal mode string"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"owner\": "
     "\"no-such-user-pst\" }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].owner: \"no-such-user-pst\": no such user on this host"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"group\": "
     "\"no-such-group-pst\" }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].group: \"no-such-group-pst\": no such group on this host"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"allow_uids\": [-1] }] "
     "}, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].allow_uids[0]: -1: out of range"},
    {"\"trigger\": { \"listen\": [{ \"address\": \"unix:/run/x.sock\", \"allow_gids\": "
     "[true] }] }, \"exec\": [\"/x\"]",
     "sandboxes.a.trigger.listen[0].allow_gids[0]: true: expected a group name or gid"},
    /* unknown key */
    {SB_OK ", \"user\": \"nobody\"", "sandboxes.a.user: unknown key (allowed here: trigger,"},
};

static void test_sandbox_case(void **state)
{
	const struct case_ *c = *state;
	expect_sandbox_error(c->body, c->want);
}

/* ---- top level, broker, syntax ------------------------------------------------ */

static const struct case_ top_cases[] = {
    {"[]", "(top level): []: expected an object, got an array"},
    {"{ \"sandboxes\": { \"a\": { " SB_OK " } } }", "postern: missing required key"},
    {"{ \"postern\": 2, \"sandboxes\": { \"a\": { " SB_OK " } } }",
     "postern: 2: unsupported format version"},
    {"{ \"postern\": 1 }", "sandboxes: missing required key"},
    {"{ \"postern\": 1, \"sandboxes\": {} }", "sandboxes: at least one sandbox is required"},
    {"{ \"postern\": 1, \"sandboxes\": [] }", "sandboxes: []: expected an object, got an array"},
    {"{ \"postern\": 1, \"sandboxes\": { \"Echo\": { " SB_OK " } } }",
     "sandboxes.Echo: invalid sandbox name"},
    {"{ \"postern\": 1, \"sandboxes\": { \"abcdefghijklm\": { " SB_OK " } } }",
     "invalid sandbox name"},
    {"{ \"postern\": 1, \"extra\": 1, \"sandboxes\": { \"a\": { " SB_OK " } } }",
     "t.json: extra: unknown key"},
    {"{ \"postern\": 1, \"postern\": 1, \"sandboxes\": { \"a\": { " SB_OK " } } }",
     "t.json: postern: duplicate key"},
    {"{ \"postern\": 1, \"broker\": { \"table\": \"my table\" }, \"sandboxes\": { \"a\": { " SB_OK
     " } } }",
     "broker.table: \"my table\": must match"},
    {"{ \"postern\": 1, \"broker\": { \"control\": \"run/x.sock\" }, \"sandboxes\": { \"a\": "
     "{ " SB_OK " } } }",
     "broker.control: \"run/x.sock\": must be an absolute path"},
    {"{ \"postern\": 1, \"broker\": { \"sandbox_net\": \"fd00::/48\" }, \"sandboxes\": { \"a\": "
     "{ " SB_OK " } } }",
     "must be an IPv4 CIDR"},
    {"{ \"postern\": 1, \"broker\": { \"sandbox_net6\": \"fd00::/65\" }, \"sandboxes\": { \"a\": "
     "{ " SB_OK " } } }",
     "at most /64"},
    {"{ \"postern\": 1, \"broker\": { \"uid_base\": 0 }, \"sandboxes\": { \"a\": { " SB_OK " } } }",
     "broker.uid_base: 0: out of range 1000-"},
    {"{ \"postern\": 1, \"broker\": { \"grace\": \"2h\" }, \"sandboxes\": { \"a\": { " SB_OK
     " } } }",
     "broker.grace: \"2h\": duration too long"},
    {"{ \"postern\": 1, \"broker\": { \"reuse_port\": \"yes\" }, \"sandboxes\": { \"a\": { " SB_OK
     " } } }",
     "expected a boolean"},
    {"{ \"postern\": 1, \"broker\": { \"metrics\": \"0.0.0.0:9100\" }, \"sandboxes\": { \"a\": "
     "{ " SB_OK " } } }",
     "must be a loopback address:port"},
    {"{ \"postern\": 1, \"broker\": { \"sandbox_net\": \"10.0.0.0/30\" }, \"sandboxes\": { \"a\": "
     "{ " SB_OK
     " }, \"b\": { \"trigger\": { \"listen\": [\"127.0.0.1:2\"] }, \"exec\": [\"/x\"] } } }",
     "holds 1 sandboxes (a /30 each), the policy has 2"},
};

static void test_top_case(void **state)
{
	const struct case_ *c = *state;
	expect_error(c->body, c->want);
}

static void test_syntax_error_line_col(void **state)
{
	(void)state;
	expect_error("{\n  \"postern\": 1,\n  \"sandboxes\": { \"a\": { \"exec\": [\"/x\"], }\n}\n",
	             "t.json:3:");
	expect_error("{\n  \"postern\": 1,\n  \"sandboxes\": { \"a\": { \"exec\": [\"/x\"], }\n}\n",
	             "JSON syntax error near");
	expect_error("{ \"postern\": 1 } trailing", "t.json:1:18: JSON syntax error near");
	expect_error("", "JSON syntax error");
	struct pst_policy *p = NULL;
	struct pst_diag d = {0};
	const char nul[] = "{ \"postern\": 1\0 }";
	assert_int_equal(pst_policy_parse("t.json", nul, sizeof(nul) - 1, &p, &d), -EINVAL);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.msgs[0], "t.json:1:15: JSON syntax error"));
	pst_diag_free(&d);
}

static void test_all_errors_collected(void **state)
{
	(void)state;
	struct pst_policy *p = NULL;
	struct pst_diag d;
	char *j = wrap_sandbox(SB_OK ", \"limits\": { \"pids\": \"x\", \"nofile\": 1 },"
	                             " \"egress\": [ { \"to\": \"1.2.3.4/33\" } ], \"colour\": 1");
	assert_int_equal(parse(j, &p, &d), -EINVAL);
	assert_int_equal(d.n, 4);
	pst_diag_free(&d);
	free(j);
}

static void test_cross_checks(void **state)
{
	(void)state;
	expect_error(
	    "{ \"postern\": 1, \"sandboxes\": { \"a\": { " SB_OK " }, "
	    "\"b\": { \"trigger\": { \"listen\": [\"127.0.0.1:7000\"] }, \"exec\": [\"/x\"] } } }",
	    "sandboxes.b.trigger.listen[0]: \"127.0.0.1:7000\" is already declared by sandbox "
	    "\"a\"");
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { \"trigger\": { \"listen\": "
	             "[\"127.0.0.1:7000\", \"127.0.0.1:7000\"] }, \"exec\": [\"/x\"] } } }",
	             "is already declared by sandbox \"a\"");
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"w\": { \"trigger\": { \"pipe\": "
	             "\"jobs\" }, \"exec\": [\"/x\"] } } }",
	             "channel \"jobs\" has no sender");
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { " SB_OK
	             ", \"send\": [\"jobs\"] } } }",
	             "sandboxes.a.send[0]: channel \"jobs\" has no consumer");
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { " SB_OK ", \"send\": [\"c\"] }, "
	             "\"w1\": { \"trigger\": { \"pipe\": \"c\" }, \"exec\": [\"/x\"] }, "
	             "\"w2\": { \"trigger\": { \"fdpass\": \"c\" }, \"exec\": [\"/x\"] } } }",
	             "channel \"c\" already has a consumer: sandbox \"w1\"");
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { " SB_OK ", \"send\": [\"c\"] }, "
	             "\"w\": { \"trigger\": { \"pipe\": \"c\" }, \"exec\": [\"/x\"], \"send\": "
	             "[\"c\"] } } }",
	             "a sandbox cannot send to its own channel");
	expect_error(
	    "{ \"postern\": 1, \"sandboxes\": { \"l\": { \"trigger\": { \"startup\": true }, "
	    "\"sockets\": [\"127.0.0.1:7000\"], \"exec\": [\"/x\"] }, \"a\": { " SB_OK " } } }",
	    "already declared by sandbox \"l\"");
}

/* Addresses the broker would bind twice: a wildcard address takes its port
 * on every address of its family (the second bind fails with EADDRINUSE, or
 * with reuse_port the more specific one takes its connections), and the
 * broker's own control socket and metrics address are not the sandboxes'. */
static void test_address_overlaps(void **state)
{
	(void)state;
	const char *why =
	    ": a wildcard address takes its port on every local address of its family; "
	    "use distinct ports or specific addresses";
	char want[400];
	snprintf(want, sizeof(want),
	         "t.json: sandboxes.b.trigger.listen[0]: \"127.0.0.1:7000\" overlaps "
	         "\"0.0.0.0:7000\", declared by sandbox \"a\"%s",
	         why);
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { \"trigger\": { \"listen\": "
	             "[\"0.0.0.0:7000\"] }, "
	             "\"exec\": [\"/x\"] }, \"b\": { " SB_OK " } } }",
	             want);
	/* either order; reuse_port does not make it fine */
	expect_error(
	    "{ \"postern\": 1, \"broker\": { \"reuse_port\": true }, \"sandboxes\": { \"a\": "
	    "{ " SB_OK " }, "
	    "\"b\": { \"trigger\": { \"listen\": [\"0.0.0.0:7000\"] }, \"exec\": [\"/x\"] } } }",
	    "sandboxes.b.trigger.listen[0]: \"0.0.0.0:7000\" overlaps \"127.0.0.1:7000\", declared "
	    "by sandbox \"a\"");
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { \"trigger\": { \"listen\": "
	             "[\"[::1]:7000\", \"[::]:7000\"] }, "
	             "\"exec\": [\"/x\"] } } }",
	             "sandboxes.a.trigger.listen[1]: \"[::]:7000\" overlaps \"[::1]:7000\", "
	             "declared by sandbox \"a\"");
	expect_error(
	    "{ \"postern\": 1, \"sandboxes\": { \"l\": { \"trigger\": { \"startup\": true }, "
	    "\"sockets\": [\"0.0.0.0:7000\"], \"exec\": [\"/x\"] }, \"a\": { " SB_OK " } } }",
	    "sandboxes.a.trigger.listen[0]: \"127.0.0.1:7000\" overlaps \"0.0.0.0:7000\", declared "
	    "by sandbox \"l\"");
	/* the broker's own */
	expect_error("{ \"postern\": 1, \"broker\": { \"metrics\": \"127.0.0.1:7000\" }, "
	             "\"sandboxes\": { \"a\": { " SB_OK " } } }",
	             "t.json: sandboxes.a.trigger.listen[0]: \"127.0.0.1:7000\" is the broker's "
	             "metrics address (broker.metrics)");
	snprintf(want, sizeof(want),
	         "sandboxes.a.trigger.listen[0]: \"0.0.0.0:9100\" overlaps \"127.0.0.1:9100\", the "
	         "broker's metrics address (broker.metrics)%s",
	         why);
	expect_error("{ \"postern\": 1, \"broker\": { \"metrics\": \"127.0.0.1:9100\" }, "
	             "\"sandboxes\": { \"a\": { "
	             "\"trigger\": { \"listen\": [\"0.0.0.0:9100\"] }, \"exec\": [\"/x\"] } } }",
	             want);
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"a\": { \"trigger\": { \"listen\": "
	             "[\"unix:/run/postern/control.sock\"] }, \"exec\": [\"/x\"] } } }",
	             "sandboxes.a.trigger.listen[0]: \"unix:/run/postern/control.sock\" is the "
	             "broker's control socket (broker.control)");
	expect_error("{ \"postern\": 1, \"broker\": { \"control\": \"/run/p//c.sock\" }, "
	             "\"sandboxes\": { \"l\": { "
	             "\"trigger\": { \"startup\": true }, \"sockets\": [\"unix:/run/p/c.sock\"], "
	             "\"exec\": [\"/x\"] } } }",
	             "sandboxes.l.sockets[0]: \"unix:/run/p/c.sock\" is the broker's control "
	             "socket (broker.control)");
	/* every one reported */
	struct pst_policy *p = NULL;
	struct pst_diag d;
	assert_int_equal(
	    parse(
	        "{ \"postern\": 1, \"broker\": { \"metrics\": \"127.0.0.1:9100\" }, \"sandboxes\": "
	        "{ "
	        "\"a\": { \"trigger\": { \"listen\": [\"0.0.0.0:7000\"] }, \"exec\": [\"/x\"] }, "
	        "\"b\": { \"trigger\": { \"listen\": [\"127.0.0.1:7000\", \"0.0.0.0:9100\", "
	        "\"unix:/run/postern/control.sock\", \"0.0.0.0:7000\"] }, \"exec\": [\"/x\"] } } }",
	        &p, &d),
	    -EINVAL);
	assert_int_equal(d.n, 5); /* the last: overlaps b's own 127.0.0.1:7000 and duplicates a's */
	pst_diag_free(&d);
	/* fine: the families apart (listeners are IPV6_V6ONLY), other
	 * addresses or ports, another control socket */
	p = expect_ok("{ \"postern\": 1, \"broker\": { \"metrics\": \"127.0.0.1:9100\", "
	              "\"control\": \"/run/p/c.sock\" }, "
	              "\"sandboxes\": { \"a\": { \"trigger\": { \"listen\": [\"0.0.0.0:7000\", "
	              "\"[::]:7000\", "
	              "\"127.0.0.1:7001\", \"127.0.0.2:9100\", \"unix:/run/postern/control.sock\"] "
	              "}, \"exec\": [\"/x\"] }, "
	              "\"b\": { \"trigger\": { \"listen\": [\"127.0.0.2:7001\", \"[::1]:9100\", "
	              "\"unix:/run/p/d.sock\"] }, "
	              "\"exec\": [\"/x\"] } } }");
	pst_policy_free(p);
}

/* The verifier's checks within one sandbox run beside the parse errors, as
 * when they were part of the parsers: all errors in one go. */
static void test_verifier_beside_parse_errors(void **state)
{
	(void)state;
	struct pst_policy *p = NULL;
	struct pst_diag d;
	char *j = wrap_sandbox(
	    "\"trigger\": { \"startup\": true }, \"exec\": [\"/x\"], \"prewarm\": 2, \"env\": { "
	    "\"N\": 5 },"
	    " \"limits\": { \"per_source\": 10, \"handlers\": 5, \"pids\": \"x\" },"
	    " \"seccomp\": { \"deny\": [\"ptrace\", \"no_such_call\"], \"allow\": [\"ptrace\"] }");
	assert_int_equal(parse(j, &p, &d), -EINVAL);
	assert_null(p);
	const char *want[] = {"sandboxes.a.env.N: 5: expected a string",
	                      "sandboxes.a.limits.pids: \"x\": expected an integer",
	                      "sandboxes.a.seccomp.deny[1]: \"no_such_call\": unknown syscall",
	                      "sandboxes.a.prewarm: a startup sandbox has exactly one handler; "
	                      "prewarm does not apply",
	                      "sandboxes.a.limits.per_source: 10 is more than limits.handlers (5)",
	                      "sandboxes.a.seccomp.allow: \"ptrace\" is both allowed and denied"};
	assert_int_equal(d.n, 6);
	for (size_t i = 0; i < 6; i++) {
		bool found = false;
		for (size_t k = 0; k < d.n; k++)
			found |= strstr(d.msgs[k], want[i]) != NULL;
		if (!found)
			fprintf(stderr, "missing: %s\n", want[i]);
		assert_true(found);
	}
	pst_diag_free(&d);
	free(j);
	/* the cross-checks wait for a whole policy: no channel message here */
	expect_error("{ \"postern\": 1, \"sandboxes\": { \"w\": { \"trigger\": { \"pipe\": "
	             "\"jobs\" }, \"exec\": [\"/x\"], "
	             "\"prewarm\": \"1\" } } }",
	             "sandboxes.w.prewarm: \"1\": expected an integer");
	assert_int_equal(
	    parse(
	        "{ \"postern\": 1, \"sandboxes\": { \"w\": { \"trigger\": { \"pipe\": \"jobs\" }, "
	        "\"exec\": [\"/x\"], \"prewarm\": \"1\" } } }",
	        &p, &d),
	    -EINVAL);
	assert_int_equal(d.n, 1);
	pst_diag_free(&d);
}

/* "entry N" in a filesystem message is the entry's place in the policy,
 * whatever entries before it were refused. */
static void test_fs_entry_numbers(void **state)
{
	(void)state;
	expect_sandbox_error(
	    SB_OK ", \"filesystem\": [ { \"bind\": \"rel\" }, { \"tmpfs\": \"/tmp\" }, { "
	          "\"tmpfs\": \"/tmp\" } ]",
	    "sandboxes.a.filesystem[2].tmpfs: \"/tmp\" is already a destination of entry 1");
	expect_sandbox_error(SB_OK ", \"filesystem\": [ { \"proc\": 1 }, { \"symlink\": \"/lib\", "
	                           "\"target\": \"usr/lib\" }, "
	                           "{ \"tmpfs\": \"/lib/x\" } ]",
	                     "sandboxes.a.filesystem[2].tmpfs: \"/lib/x\" lies under the symlink "
	                     "of entry 1 (\"/lib\")");
}

/* ---- uids, binds ---------------------------------------------------------------- */

/* the derivation, written again here: 32-bit FNV-1a of the name */
static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

#define SB_AT(name, port)                                                                          \
	"\"" name "\": { \"trigger\": { \"listen\": [\"127.0.0.1:" port "\"] }, \"exec\": "        \
	"[\"/x\"]"

static void test_uid_derivation(void **state)
{
	(void)state;
	/* known values: FNV-1a("a") = 0xe40c292c, ("echo") = 0xd49dd484 */
	assert_int_equal(pst_sandbox_default_uid(200000, "a"), 200000 + 0x292c);
	assert_int_equal(pst_sandbox_default_uid(200000, "echo"), 200000 + 0xd484);
	assert_int_equal(pst_sandbox_default_uid(1000, "probe"),
	                 1000 + fnv1a("probe") % PST_UID_RANGE);
	/* the policy's uids: derived from the names, whatever their order */
	struct pst_policy *p = expect_ok(
	    "{ \"postern\": 1, \"broker\": { \"uid_base\": 5000 }, \"sandboxes\": { " SB_AT(
	        "a", "1") " }, " SB_AT("b", "2") " } } }");
	struct pst_policy *q = expect_ok(
	    "{ \"postern\": 1, \"broker\": { \"uid_base\": 5000 }, \"sandboxes\": { " SB_AT(
	        "c", "3") " }, " SB_AT("b", "2") " }, " SB_AT("a", "1") " } } }");
	assert_int_equal(pst_policy_find(p, "a")->uid, 5000 + fnv1a("a") % 65536);
	assert_int_equal(pst_policy_find(p, "a")->uid, pst_policy_find(q, "a")->uid);
	assert_int_equal(pst_policy_find(p, "b")->uid, pst_policy_find(q, "b")->uid);
	assert_int_not_equal(pst_policy_find(q, "c")->uid, pst_policy_find(p, "a")->uid);
	assert_false(pst_policy_find(p, "a")->uid_explicit);
	assert_int_equal(pst_policy_find(q, "a")->index, 2);
	pst_policy_free(p);
	pst_policy_free(q);
	/* an explicit uid */
	p = expect_ok("{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	    "a", "1") ", \"uid\": 70000 }, " SB_AT("b", "2") ", \"uid\": 1000 } } }");
	assert_int_equal(pst_policy_find(p, "a")->uid, 70000);
	assert_true(pst_policy_find(p, "a")->uid_explicit);
	assert_int_equal(pst_policy_find(p, "b")->uid, 1000);
	pst_policy_free(p);
	/* the largest uid_base leaves room for every derived uid */
	p = expect_ok(
	    "{ \"postern\": 1, \"broker\": { \"uid_base\": 4000000000 }, \"sandboxes\": { " SB_AT(
	        "a", "1") " } } }");
	assert_true(pst_policy_find(p, "a")->uid >= 4000000000u &&
	            pst_policy_find(p, "a")->uid < 4000065536u);
	pst_policy_free(p);
}

static void test_uid_collisions(void **state)
{
	(void)state;
	/* "98" and "a6b" hash to the same uid */
	assert_int_equal(fnv1a("98") % 65536, fnv1a("a6b") % 65536);
	expect_error("{ \"postern\": 1, \"sandboxes\": { " SB_AT("98", "1") " }, " SB_AT(
	                 "a6b", "2") " } } }",
	             "t.json: sandboxes.a6b: uid 242340 (derived from its name) is also the uid of "
	             "sandbox \"98\" "
	             "(derived from its name): two sandboxes would own each other's files; set "
	             "\"uid\" on one "
	             "of them to a uid of its own");
	/* fixed by an explicit uid on one of them */
	struct pst_policy *p = expect_ok("{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	    "98", "1") " }, " SB_AT("a6b", "2") ", \"uid\": 300000 } } }");
	pst_policy_free(p);
	expect_error("{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	                 "a", "1") ", \"uid\": 7000 }, " SB_AT("b", "2") ", \"uid\": 7000 } } }",
	             "sandboxes.b.uid: uid 7000 (its \"uid\") is also the uid of sandbox \"a\" "
	             "(its \"uid\")");
	char *j = NULL;
	assert_true(asprintf(&j,
	                     "{ \"postern\": 1, \"sandboxes\": { " SB_AT("a", "1") " }, " SB_AT(
	                         "b", "2") ", \"uid\": %u } } }",
	                     pst_sandbox_default_uid(200000, "a")) > 0);
	expect_error(j, "sandboxes.b.uid: uid 210540 (its \"uid\") is also the uid of sandbox "
	                "\"a\" (derived from its name)");
	free(j);
}

static void test_bind_sources(void **state)
{
	(void)state;
	/* inside another sandbox's rw bind */
	expect_error(
	    "{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	        "w", "1") ", \"filesystem\": [ { \"bind\": \"/srv/data\", "
	                  "\"to\": \"/data\", \"mode\": \"rw\" } ] }, " SB_AT(
	                      "r", "2") ", \"filesystem\": [ { \"bind\": \"/usr\" }, "
	                                "{ \"bind\": \"/srv/data/pub\", \"to\": \"/pub\" } ] } } }",
	    "t.json: sandboxes.r.filesystem[1].bind: \"/srv/data/pub\": lies inside \"/srv/data\", "
	    "an rw bind of "
	    "sandbox \"w\" (filesystem[0]): its handlers could replace it with a symlink to any "
	    "host path; "
	    "bind a path outside every rw bind");
	/* the same path, an ancestor, a sibling, a tmpfs: fine */
	struct pst_policy *p = expect_ok("{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	    "w", "1") ", \"filesystem\": [ { \"bind\": \"/srv/data\", "
	              "\"to\": \"/data\", \"mode\": \"rw\" }, { \"tmpfs\": \"/tmp\" } ] }, " SB_AT(
	                  "r", "2") ", \"filesystem\": [ "
	                            "{ \"bind\": \"/srv/data\", \"to\": \"/d\" }, { \"bind\": "
	                            "\"/srv\" }, { \"bind\": \"/srv/data2\", \"to\": \"/d2\" }, "
	                            "{ \"bind\": \"/tmp\" } ], \"allow_bind\": true } } }");
	assert_true(pst_policy_find(p, "r")->allow_bind);
	assert_false(pst_policy_find(p, "w")->allow_bind);
	pst_policy_free(p);

	/* a symlink in a source: refused with the real path */
	char dir[] = "/tmp/pst-unit-XXXXXX", path[256], link[300], json[1024];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/real", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/real/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink("real", link), 0);
	snprintf(
	    json, sizeof(json),
	    "{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	        "a",
	        "1") ", \"filesystem\": [ { \"bind\": \"%s/link/sub\", \"to\": \"/s\" } ] } } }",
	    dir);
	char want[600];
	snprintf(want, sizeof(want),
	         "sandboxes.a.filesystem[0].bind: \"%s/link/sub\": \"%s/link\" is a symlink (to "
	         "\"real\"): bind sources are not followed through symlinks; if that is what is "
	         "meant, declare the "
	         "real path \"%s/real/sub\"",
	         dir, dir, dir);
	expect_error(json, want);
	/* beside a bad mode, and compared with no other entry */
	struct pst_diag d;
	snprintf(
	    json, sizeof(json),
	    "{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	        "a",
	        "1") ", \"filesystem\": [ { \"bind\": \"%s/link/sub\", \"to\": \"/s\", \"mode\": "
	             "\"rx\" }, "
	             "{ \"bind\": \"%s/link\", \"to\": \"/t\" }, { \"tmpfs\": \"/t\" } ] } } }",
	    dir, dir);
	assert_int_equal(parse(json, &p, &d), -EINVAL);
	assert_int_equal(d.n, 3);
	assert_non_null(
	    strstr(d.msgs[0], "sandboxes.a.filesystem[0].mode: \"rx\": must be \"ro\" or \"rw\""));
	assert_non_null(strstr(d.msgs[1], "sandboxes.a.filesystem[0].bind: "));
	assert_non_null(strstr(d.msgs[2], "sandboxes.a.filesystem[1].bind: "));
	pst_diag_free(&d);
	/* the last component too */
	snprintf(
	    json, sizeof(json),
	    "{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	        "a", "1") ", \"filesystem\": [ { \"bind\": \"%s/link\", \"to\": \"/s\" } ] } } }",
	    dir);
	expect_error(json, "is a symlink (to \"real\")");
	/* dangling */
	snprintf(path, sizeof(path), "%s/dangling", dir);
	assert_int_equal(symlink("nowhere", path), 0);
	snprintf(
	    json, sizeof(json),
	    "{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	        "a",
	        "1") ", \"filesystem\": [ { \"bind\": \"%s/dangling\", \"to\": \"/s\" } ] } } }",
	    dir);
	expect_error(json, "use the real path (this one does not resolve)");
	/* missing (yet): left to the spawn */
	snprintf(json, sizeof(json),
	         "{ \"postern\": 1, \"sandboxes\": { " SB_AT(
	             "a", "1") ", \"filesystem\": [ { \"bind\": \"%s/real/none/deeper\", \"to\": "
	                       "\"/s\" } ] } } }",
	         dir);
	p = expect_ok(json);
	pst_policy_free(p);
	snprintf(path, sizeof(path), "%s/dangling", dir), unlink(path);
	unlink(link);
	snprintf(path, sizeof(path), "%s/real/sub", dir), rmdir(path);
	snprintf(path, sizeof(path), "%s/real", dir), rmdir(path);
	rmdir(dir);
}

/* ---- successful loads ------------------------------------------------------------ */

static void test_defaults_applied(void **state)
{
	(void)state;
	char *j = wrap_sandbox(SB_OK);
	struct pst_policy *p = expect_ok(j);
	free(j);
	assert_string_equal(p->broker.table, "postern");
	assert_string_equal(p->broker.control, "/run/postern/control.sock");
	assert_string_equal(p->broker.state_dir, "/run/postern");
	assert_int_equal(p->broker.uid_base, 200000);
	assert_int_equal(p->broker.grace_ms, 10000);
	assert_false(p->broker.reuse_port);
	char b[64];
	pst_cidr_format(&p->broker.sandbox_net, b, sizeof(b));
	assert_string_equal(b, "100.127.0.0/16");
	pst_cidr_format(&p->broker.sandbox_net6, b, sizeof(b));
	assert_string_equal(b, "fd70:6f73::/48");
	const struct pst_sandbox *s = pst_policy_find(p, "a");
	assert_non_null(s);
	assert_null(pst_policy_find(p, "b"));
	assert_int_equal(s->limits.handlers, PST_DEFAULT_HANDLERS);
	assert_int_equal(s->limits.timeout_ms, PST_DEFAULT_TIMEOUT_MS);
	assert_int_equal(s->limits.memory, PST_DEFAULT_MEMORY);
	assert_int_equal(s->limits.pids, PST_DEFAULT_PIDS);
	assert_int_equal(s->limits.nofile, PST_DEFAULT_NOFILE);
	assert_int_equal(s->limits.per_source, 0);
	assert_true(s->limits.rate == 0);
	assert_int_equal(s->socket, PST_SOCKET_STDIO);
	assert_int_equal(s->seccomp.action, PST_SECCOMP_ERRNO);
	assert_false(s->allow_bind);
	assert_false(s->uid_explicit);
	assert_int_equal(s->uid, pst_sandbox_default_uid(PST_DEFAULT_UID_BASE, "a"));
	assert_int_equal(s->n_exec, 1);
	assert_null(s->exec[1]);
	pst_policy_free(p);
}

static void test_full_sandbox_values(void **state)
{
	(void)state;
	char *j = wrap_sandbox(
	    "\"trigger\": { \"listen\": [\"127.0.0.1:7000\", \"[::1]:7000\", \"unix:/run/e.sock\"] "
	    "},"
	    "\"exec\": [\"/usr/bin/echo\", \"-n\", \"x\"], \"socket\": \"listen_fds\","
	    "\"filesystem\": [ { \"bind\": \"/usr//\" }, { \"bind\": \"/srv\", \"to\": \"/data\", "
	    "\"mode\": \"rw\" },"
	    "  { \"tmpfs\": \"/tmp\", \"size\": \"8M\" }, { \"proc\": \"/proc\" }, { \"symlink\": "
	    "\"/lib\", \"target\": \"usr/lib\" } ],"
	    "\"egress\": [ { \"to\": \"10.152.163.0/24\", \"proto\": \"tcp\", \"ports\": [5432, "
	    "6432] },"
	    "  { \"to\": \"10.1.2.3\" }, { \"to\": \"2001:db8:5::/64\", \"proto\": \"udp\" }, { "
	    "\"to\": \"::1\" } ],"
	    "\"limits\": { \"handlers\": 256, \"per_source\": 32, \"rate\": \"120/m\", "
	    "\"timeout\": \"250ms\","
	    "  \"memory\": \"1G\", \"pids\": 16, \"nofile\": 64, \"cpu\": 0.5 },"
	    "\"seccomp\": { \"default\": \"kill\", \"deny\": [\"ptrace\"], \"allow\": [\"bpf\"] },"
	    "\"env\": { \"LANG\": \"C.UTF-8\", \"_X1\": \"\" }");
	struct pst_policy *p = expect_ok(j);
	free(j);
	const struct pst_sandbox *s = &p->sandboxes[0];
	assert_int_equal(s->trigger, PST_TRIGGER_LISTEN);
	assert_int_equal(s->n_listen, 3);
	assert_int_equal(s->listen[0].ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&s->listen[0].ss)->sin_port), 7000);
	assert_int_equal(s->listen[1].ss.ss_family, AF_INET6);
	assert_int_equal(s->listen[2].ss.ss_family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&s->listen[2].ss)->sun_path, "/run/e.sock");
	assert_string_equal(s->listen[1].text, "[::1]:7000");
	assert_int_equal(s->n_exec, 3);
	assert_string_equal(s->exec[2], "x");
	assert_int_equal(s->socket, PST_SOCKET_LISTEN_FDS);
	assert_int_equal(s->n_fs, 5);
	assert_string_equal(s->fs[0].src, "/usr");
	assert_string_equal(s->fs[0].dst, "/usr");
	assert_false(s->fs[0].rw);
	assert_string_equal(s->fs[1].dst, "/data");
	assert_true(s->fs[1].rw);
	assert_int_equal(s->fs[2].kind, PST_FS_TMPFS);
	assert_int_equal(s->fs[2].size, 8u << 20);
	assert_int_equal(s->fs[3].kind, PST_FS_PROC);
	assert_string_equal(s->fs[4].target, "usr/lib");
	assert_int_equal(s->n_egress, 4);
	assert_int_equal(s->egress[0].proto, PST_PROTO_TCP);
	assert_int_equal(s->egress[0].n_ports, 2);
	assert_int_equal(s->egress[0].ports[1], 6432);
	assert_int_equal(s->egress[1].to.prefix, 32);
	assert_int_equal(s->egress[1].proto, PST_PROTO_ANY);
	assert_int_equal(s->egress[2].to.family, AF_INET6);
	assert_int_equal(s->egress[2].to.prefix, 64);
	assert_int_equal(s->egress[3].to.prefix, 128);
	assert_int_equal(s->limits.handlers, 256);
	assert_true(s->limits.rate > 1.99 && s->limits.rate < 2.01);
	assert_int_equal(s->limits.timeout_ms, 250);
	assert_int_equal(s->limits.memory, 1ull << 30);
	assert_true(s->limits.cpu == 0.5);
	assert_int_equal(s->seccomp.action, PST_SECCOMP_KILL);
	assert_string_equal(s->seccomp.allow[0], "bpf");
	assert_int_equal(s->n_env, 2);
	assert_string_equal(s->env[0].key, "LANG");
	assert_string_equal(s->env[0].value, "C.UTF-8");
	pst_policy_free(p);
}

static void test_access_values(void **state)
{
	(void)state;
	char *j = wrap_sandbox(
	    "\"trigger\": { \"listen\": [\"0.0.0.0:80\", { \"address\": \"[::]:81\", "
	    "\"deny_from\": "
	    "[\"::ffff:10.1.0.0/112\", \"2001:db8::/32\"] }, { \"address\": \"unix:/run/x.sock\", "
	    "\"mode\": \"0660\", \"owner\": \"root\", \"group\": \"0\", \"allow_uids\": [0, 4242], "
	    "\"allow_gids\": [\"root\", 5] }] },"
	    "\"exec\": [\"/x\"], \"allow_from\": [\"10.0.0.0/8\", \"192.0.2.1\"], \"deny_from\": "
	    "[\"10.0.0.0/16\"]");
	struct pst_policy *p = expect_ok(j);
	free(j);
	const struct pst_sandbox *s = &p->sandboxes[0];
	assert_int_equal(s->n_listen, 3);
	assert_int_equal(s->access.n_allow, 2);
	assert_int_equal(s->access.allow[1].prefix, 32);
	assert_int_equal(s->access.n_deny, 1); /* overlapping allow and deny: fine, deny wins */
	assert_false(s->listen_opt[0].own_access);
	assert_ptr_equal(pst_listen_access(s, 0), &s->access);
	assert_true(s->listen_opt[1].own_access);
	assert_ptr_equal(pst_listen_access(s, 1), &s->listen_opt[1].access);
	const struct pst_access *a = pst_listen_access(s, 1);
	assert_int_equal(a->n_allow, 0);
	assert_int_equal(a->n_deny, 2);
	/* an IPv4-mapped CIDR is the IPv4 one */
	assert_int_equal(a->deny[0].family, AF_INET);
	assert_int_equal(a->deny[0].prefix, 16);
	assert_memory_equal(a->deny[0].addr, "\x0a\x01\x00\x00", 4);
	assert_int_equal(a->deny[1].family, AF_INET6);
	const struct pst_listen_opt *u = &s->listen_opt[2];
	assert_true(u->has_mode && u->has_owner && u->has_group);
	assert_int_equal(u->mode, 0660);
	assert_int_equal(u->owner, 0);
	assert_int_equal(u->group, 0);
	assert_int_equal(u->n_allow_uids, 2);
	assert_int_equal(u->allow_uids[1], 4242);
	assert_int_equal(u->n_allow_gids, 2);
	assert_int_equal(u->allow_gids[0], 0);
	assert_int_equal(u->allow_gids[1], 5);
	/* a string is still an address, its options zero */
	assert_false(s->listen_opt[0].has_mode);
	pst_policy_free(p);
}

static void test_channels_and_startup(void **state)
{
	(void)state;
	struct pst_policy *p =
	    expect_ok("{ \"postern\": 1, \"broker\": { \"uid_base\": 5000, \"grace\": \"1m\", "
	              "\"reuse_port\": true,"
	              "  \"metrics\": \"[::1]:9100\", \"table\": \"pst_test-1\" },"
	              "\"sandboxes\": {"
	              " \"l\": { \"trigger\": { \"startup\": true }, \"restart\": \"on-failure\", "
	              "\"sockets\": [\"127.0.0.1:7300\"],"
	              "        \"send\": [\"conns\", \"jobs\"], \"exec\": [\"/x\"] },"
	              " \"r\": { \"trigger\": { \"fdpass\": \"conns\" }, \"exec\": [\"/x\"], "
	              "\"prewarm\": 4 },"
	              " \"w\": { \"trigger\": { \"pipe\": \"jobs\" }, \"exec\": [\"/x\"] } } }");
	assert_int_equal(p->n_sandboxes, 3);
	assert_int_equal(p->sandboxes[0].trigger, PST_TRIGGER_STARTUP);
	assert_int_equal(p->sandboxes[0].restart, PST_RESTART_ON_FAILURE);
	assert_int_equal(p->sandboxes[0].n_sockets, 1);
	assert_int_equal(p->sandboxes[0].n_send, 2);
	assert_int_equal(p->sandboxes[1].trigger, PST_TRIGGER_FDPASS);
	assert_string_equal(p->sandboxes[1].channel, "conns");
	assert_int_equal(p->sandboxes[1].prewarm, 4);
	assert_int_equal(p->sandboxes[2].index, 2);
	assert_int_equal(p->broker.uid_base, 5000);
	assert_int_equal(p->broker.grace_ms, 60000);
	assert_true(p->broker.reuse_port);
	assert_true(p->broker.has_metrics);
	assert_string_equal(p->broker.table, "pst_test-1");
	pst_policy_free(p);
}

static void test_shipped_policies_load(void **state)
{
	(void)state;
	const char *files[] = {"policies/echo.json", "policies/db-egress.json",
	                       "policies/pipes.json", "policies/fdpass.json"};
	for (size_t i = 0; i < 4; i++) {
		struct pst_policy *p = NULL;
		struct pst_diag d = {0};
		int r = pst_policy_load(files[i], &p, &d);
		for (size_t k = 0; k < d.n; k++)
			fprintf(stderr, "%s\n", d.msgs[k]);
		assert_int_equal(r, 0);
		assert_non_null(p);
		assert_string_equal(p->file, files[i]);
		pst_policy_free(p);
	}
}

static void test_load_missing_file(void **state)
{
	(void)state;
	struct pst_policy *p = NULL;
	struct pst_diag d = {0};
	assert_int_equal(pst_policy_load("/nonexistent/p.json", &p, &d), -ENOENT);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.msgs[0],
	                    "/nonexistent/p.json: (file): cannot open: No such file or directory");
	pst_diag_free(&d);
	assert_int_equal(pst_policy_load("/", &p, &d), -EINVAL);
	assert_non_null(strstr(d.msgs[0], "not a regular file"));
	pst_diag_free(&d);
}

/* ---- value parsers at their limits -------------------------------------------------- */

static void test_durations(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(pst_parse_duration_ms("0ms", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pst_parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(pst_parse_duration_ms("30s", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(pst_parse_duration_ms("5m", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(pst_parse_duration_ms("24h", &v), 0);
	assert_int_equal(v, 86400000);
	assert_int_equal(pst_parse_duration_ms("18446744073709551615ms", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(pst_parse_duration_ms("18446744073709551616ms", &v), -ERANGE);
	assert_int_equal(pst_parse_duration_ms("18446744073709551615s", &v), -ERANGE);
	assert_int_equal(pst_parse_duration_ms("30", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms("s", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms("-1s", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms("1.5s", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms("1S", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms(" 1s", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms("1s ", &v), -EINVAL);
	assert_int_equal(pst_parse_duration_ms("", &v), -EINVAL);
}

static void test_sizes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(pst_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pst_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(pst_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(pst_parse_size("64M", &v), 0);
	assert_int_equal(v, 64u << 20);
	assert_int_equal(pst_parse_size("1G", &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(pst_parse_size("17179869183G", &v), 0); /* (2^64-1) >> 30 */
	assert_int_equal(pst_parse_size("17179869184G", &v), -ERANGE);
	assert_int_equal(pst_parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(pst_parse_size("64MB", &v), -EINVAL);
	assert_int_equal(pst_parse_size("64m", &v), -EINVAL);
	assert_int_equal(pst_parse_size("M", &v), -EINVAL);
	assert_int_equal(pst_parse_size("-1M", &v), -EINVAL);
	assert_int_equal(pst_parse_size("1.5G", &v), -EINVAL);
}

static void test_cidrs(void **state)
{
	(void)state;
	struct pst_cidr c;
	char why[160], b[64];
	assert_int_equal(pst_parse_cidr("0.0.0.0/0", &c, why, sizeof(why)), 0);
	assert_int_equal(c.prefix, 0);
	assert_int_equal(pst_parse_cidr("10.152.163.0/24", &c, why, sizeof(why)), 0);
	pst_cidr_format(&c, b, sizeof(b));
	assert_string_equal(b, "10.152.163.0/24");
	assert_int_equal(pst_parse_cidr("192.0.2.7/32", &c, why, sizeof(why)), 0);
	assert_int_equal(pst_parse_cidr("192.0.2.7", &c, why, sizeof(why)), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(pst_parse_cidr("::/0", &c, why, sizeof(why)), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(pst_parse_cidr("2001:db8::/32", &c, why, sizeof(why)), 0);
	assert_int_equal(pst_parse_cidr("2001:db8::1", &c, why, sizeof(why)), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(pst_parse_cidr("2001:db8::1/128", &c, why, sizeof(why)), 0);
	assert_int_equal(pst_parse_cidr("10.0.0.0/33", &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "prefix length 33 is out of range for IPv4");
	assert_int_equal(pst_parse_cidr("::/129", &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "prefix length 129 is out of range for IPv6");
	assert_int_equal(pst_parse_cidr("10.0.0.1/31", &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "host bits are set; the network is 10.0.0.0/31");
	assert_int_equal(pst_parse_cidr("10.0.0.0/", &c, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_cidr("10.0.0.0/-1", &c, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_cidr("10.0.0.0/0024", &c, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_cidr("/8", &c, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_cidr("10.0.0/8", &c, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_cidr("fe80::1%lo/64", &c, why, sizeof(why)), -EINVAL);
}

static void test_sockaddrs(void **state)
{
	(void)state;
	struct pst_sockaddr a;
	char why[160];
	assert_int_equal(pst_parse_sockaddr("0.0.0.0:1", &a, why, sizeof(why)), 0);
	assert_int_equal(pst_parse_sockaddr("127.0.0.1:65535", &a, why, sizeof(why)), 0);
	assert_int_equal(pst_parse_sockaddr("[::]:80", &a, why, sizeof(why)), 0);
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));
	assert_int_equal(pst_parse_sockaddr("[fd00::1]:80", &a, why, sizeof(why)), 0);
	assert_int_equal(pst_parse_sockaddr("[::1]:", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_sockaddr("[]:80", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_sockaddr("[::1]:080000", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(pst_parse_sockaddr("localhost:80", &a, why, sizeof(why)), -EINVAL);
	char longp[200] = "unix:/";
	memset(longp + 6, 'a', 110);
	longp[116] = 0;
	assert_int_equal(pst_parse_sockaddr(longp, &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer than 107 bytes"));
	memset(longp + 6, 'a', 150);
	longp[156] = 0;
	assert_int_equal(pst_parse_sockaddr(longp, &a, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "address too long");
}

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

int main(void)
{
	const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_syntax_error_line_col),
	    cmocka_unit_test(test_all_errors_collected),
	    cmocka_unit_test(test_cross_checks),
	    cmocka_unit_test(test_address_overlaps),
	    cmocka_unit_test(test_verifier_beside_parse_errors),
	    cmocka_unit_test(test_fs_entry_numbers),
	    cmocka_unit_test(test_uid_derivation),
	    cmocka_unit_test(test_uid_collisions),
	    cmocka_unit_test(test_bind_sources),
	    cmocka_unit_test(test_defaults_applied),
	    cmocka_unit_test(test_full_sandbox_values),
	    cmocka_unit_test(test_access_values),
	    cmocka_unit_test(test_channels_and_startup),
	    cmocka_unit_test(test_shipped_policies_load),
	    cmocka_unit_test(test_load_missing_file),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_cidrs),
	    cmocka_unit_test(test_sockaddrs),
	};
	/* one test per row of the error tables, named after the expected message */
	size_t n = N_ELEMS(fixed) + N_ELEMS(sandbox_cases) + N_ELEMS(top_cases), k = 0;
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	if (!tests)
		return 1;
	for (size_t i = 0; i < N_ELEMS(sandbox_cases); i++) {
		tests[k].name = sandbox_cases[i].want;
		tests[k].test_func = test_sandbox_case;
		tests[k++].initial_state = (void *)&sandbox_cases[i];
	}
	for (size_t i = 0; i < N_ELEMS(top_cases); i++) {
		tests[k].name = top_cases[i].want;
		tests[k].test_func = test_top_case;
		tests[k++].initial_state = (void *)&top_cases[i];
	}
	for (size_t i = 0; i < N_ELEMS(fixed); i++)
		tests[k++] = fixed[i];
	int r = _cmocka_run_group_tests("policy", tests, n, NULL, NULL);
	free(tests);
	return r;
}
