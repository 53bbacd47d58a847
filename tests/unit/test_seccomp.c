/* Unit tests: the seccomp filter sandbox/seccomp.c compiles. A small
 * interpreter of classic BPF runs it on every syscall number of this
 * architecture, foreign architectures, x32 numbers, and for the calls whose
 * arguments decide (clone, socket, socketpair, setsockopt) on every value
 * that matters, and compares each answer with what the policy says, written
 * here as plain C (expect()). Configurations: the default, kill, bind
 * allowed, allow and deny lists, and a deny list of every other syscall
 * (a program long enough for far jumps). Each program is also loaded in a
 * child, so the kernel's checker has accepted it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include <cmocka.h>

#include "sandbox/internal.h"

#define NR_MAX 1024

/* ---- an interpreter of the classic BPF seccomp takes -------------------- */

static uint32_t run(const struct sock_fprog *p, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0;
	for (unsigned pc = 0; pc < p->len; pc++) {
		const struct sock_filter *f = &p->filter[pc];
		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			assert_true(f->k % 4 == 0 && f->k + 4 <= sizeof(*d));
			memcpy(&a, (const char *)d + f->k, 4);
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			a &= f->k;
			break;
		case BPF_MISC | BPF_TAX:
			x = a;
			break;
		case BPF_JMP | BPF_JA:
			pc += f->k;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += a == f->k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGT | BPF_K:
			pc += a > f->k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			pc += a >= f->k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			pc += (a & f->k) ? f->jt : f->jf;
			break;
		case BPF_RET | BPF_K:
			return f->k;
		default:
			fail_msg("instruction %u: opcode 0x%x not interpreted", pc, f->code);
		}
	}
	(void)x;
	fail_msg("ran off the end of the program");
	return 0;
}

/* ---- what the policy says, written out ------------------------------------ */

struct conf {
	const char *name;
	struct sandbox_config cfg;
	bool deny[NR_MAX]; /* every syscall denied outright, from the lists */
};

static bool in(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (!strcmp(*list, name))
			return true;
	return false;
}

static int nr_of(const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	assert_true(nr < NR_MAX);
	return nr;
}

static void conf_init(struct conf *c)
{
	const struct sandbox_config *cfg = &c->cfg;
	memset(c->deny, 0, sizeof(c->deny));
	const char *const *lists[] = {sb_seccomp_default_deny, sb_seccomp_ipc_calls};
	for (size_t l = 0; l < 2; l++)
		for (const char *const *n = lists[l]; *n; n++) {
			int nr = nr_of(*n);
			if (nr >= 0 && !in(cfg->seccomp_allow, *n))
				c->deny[nr] = true;
		}
	for (const char *const *n = cfg->seccomp_deny; n && *n; n++) {
		int nr = nr_of(*n);
		assert_true(nr != __NR_SCMP_ERROR);
		if (nr >= 0)
			c->deny[nr] = true;
	}
	if (!cfg->allow_bind) {
		if (!in(cfg->seccomp_allow, "bind"))
			c->deny[nr_of("bind")] = true;
		if (!in(cfg->seccomp_allow, "listen"))
			c->deny[nr_of("listen")] = true;
	}
}

static uint64_t arg(const struct seccomp_data *d, int i)
{
	return d->args[i];
}

static uint32_t expect(const struct conf *c, const struct seccomp_data *d)
{
	const struct sandbox_config *cfg = &c->cfg;
	uint32_t deny = cfg->seccomp_action == SANDBOX_SECCOMP_KILL ? SECCOMP_RET_KILL_PROCESS
	                                                            : SECCOMP_RET_ERRNO | EPERM;
	if (d->arch != seccomp_arch_native())
		return SECCOMP_RET_KILL_PROCESS;
	uint32_t nr = (uint32_t)d->nr;
#ifdef __x86_64__
	if (nr >= 0x40000000u && nr != 0xffffffffu) /* x32 */
		return SECCOMP_RET_KILL_PROCESS;
#endif
	if (nr >= NR_MAX)
		return SECCOMP_RET_ALLOW;
	if (c->deny[nr])
		return deny;
	if ((int)nr == nr_of("clone3") && !in(cfg->seccomp_allow, "clone3"))
		return SECCOMP_RET_ERRNO | ENOSYS;
	if ((int)nr == nr_of("clone") && !in(cfg->seccomp_allow, "clone")) {
		uint64_t ns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
		              CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
		return arg(d, 0) & ns ? deny : SECCOMP_RET_ALLOW;
	}
	if ((int)nr == nr_of("socket") && !in(cfg->seccomp_allow, "socket")) {
		uint64_t fam = arg(d, 0), type = arg(d, 1) & 0xf, proto = arg(d, 2);
		bool ok = (fam == AF_UNIX || fam == AF_INET || fam == AF_INET6) &&
		          (type == SOCK_STREAM || type == SOCK_DGRAM || type == SOCK_SEQPACKET) &&
		          (proto == 0 || proto == 1 || proto == 6 || proto == 17 || proto == 58);
		return ok ? SECCOMP_RET_ALLOW : deny;
	}
	if ((int)nr == nr_of("socketpair") && !in(cfg->seccomp_allow, "socketpair"))
		return arg(d, 0) == AF_UNIX ? SECCOMP_RET_ALLOW : deny;
	if ((int)nr == nr_of("setsockopt") && !cfg->allow_bind &&
	    !in(cfg->seccomp_allow, "setsockopt")) {
		bool pass =
		    arg(d, 1) == SOL_SOCKET && (arg(d, 2) == SO_PASSCRED || arg(d, 2) == 76);
		return pass ? deny : SECCOMP_RET_ALLOW;
	}
	return SECCOMP_RET_ALLOW;
}

/* ---- the comparison ---------------------------------------------------------- */

/* Argument values that matter: each small number, each single bit, the
 * same with upper 32 bits set, and a few masks. */
static size_t values(uint64_t *v)
{
	size_t n = 0;
	for (uint64_t i = 0; i < 80; i++)
		v[n++] = i;
	for (int b = 0; b < 64; b++)
		v[n++] = 1ull << b;
	static const uint64_t more[] = {0x100000000ull | AF_INET,
	                                0xffffffff00000000ull | AF_UNIX,
	                                0x80000000ull | 17,
	                                0xffffffffull,
	                                0xffffffffffffffffull,
	                                SOCK_STREAM | SOCK_CLOEXEC,
	                                SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	                                0x100000000ull | SOL_SOCKET,
	                                0x100000000ull | SO_PASSCRED,
	                                CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
	                                    CLONE_THREAD,
	                                0x7ffffff0ull,
	                                255,
	                                256,
	                                0x10f,
	                                0x1000000000000002ull};
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		v[n++] = more[i];
	return n;
}

static unsigned long compared;

static void check(const struct conf *c, const struct sock_fprog *p, const struct seccomp_data *d)
{
	uint32_t got = run(p, d), want = expect(c, d);
	compared++;
	if (got != want)
		fail_msg("config %s: arch 0x%x nr %d args %#llx %#llx %#llx: filter says 0x%x, "
		         "policy 0x%x",
		         c->name, d->arch, d->nr, (unsigned long long)d->args[0],
		         (unsigned long long)d->args[1], (unsigned long long)d->args[2], got, want);
}

/* The kernel takes it (its checker, and the JIT where there is one). */
static void kernel_takes(const struct sock_fprog *p)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p) < 0)
			_exit(1);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The program's length; how many jumps went far (a ja) added to *far. */
static unsigned compare(struct conf *c, unsigned *far)
{
	conf_init(c);
	c->cfg.name = c->name;
	struct sock_fprog p = {0};
	struct sandbox_error err = {0};
	int r = sb_seccomp_compile(&c->cfg, &p, &err);
	if (r < 0)
		fail_msg("config %s: %s", c->name, err.msg);
	kernel_takes(&p);
	for (unsigned i = 0; far && i < p.len; i++)
		*far += p.filter[i].code == (BPF_JMP | BPF_JA);
	unsigned len = p.len;

	static uint64_t v[256];
	size_t nv = values(v);
	struct seccomp_data d = {.arch = seccomp_arch_native()};
	int argful[] = {nr_of("clone"), nr_of("socket"), nr_of("socketpair"), nr_of("setsockopt")};
	/* every number, with arguments that decide nothing and with some that
	 * would */
	for (uint32_t nr = 0; nr < NR_MAX; nr++) {
		d.nr = (int)nr;
		memset(d.args, 0, sizeof(d.args));
		check(c, &p, &d);
		for (int i = 0; i < 6; i++)
			d.args[i] = 0x4000000000000001ull * (uint64_t)(i + 1);
		check(c, &p, &d);
	}
	static const uint32_t odd[] = {0x40000000u, 0x40000000u + 1, 0x40000000u + 41,
	                               0x4000ffffu, 0x7fffffffu,     0x80000000u,
	                               0xfffffffeu, 0xffffffffu,     NR_MAX + 5};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		d.nr = (int)odd[i];
		check(c, &p, &d);
	}
	/* foreign architectures */
	static const uint32_t arches[] = {AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64,
	                                  AUDIT_ARCH_ARM, 0};
	for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++) {
		d.arch = arches[i];
		for (uint32_t nr = 0; nr < 500; nr += 7) {
			d.nr = (int)nr;
			check(c, &p, &d);
		}
	}
	d.arch = seccomp_arch_native();
	/* the calls whose arguments decide: each argument alone over every
	 * value, the others over a few; socket's three against each other */
	memset(d.args, 0, sizeof(d.args));
	for (size_t k = 0; k < sizeof(argful) / sizeof(argful[0]); k++) {
		d.nr = argful[k];
		for (size_t i = 0; i < nv; i++)
			for (size_t j = 0; j < nv; j++) {
				d.args[0] = v[i], d.args[1] = v[j], d.args[2] = 0;
				check(c, &p, &d);
				d.args[0] = AF_INET, d.args[1] = v[i], d.args[2] = v[j];
				check(c, &p, &d);
				d.args[0] = v[i], d.args[1] = SOCK_STREAM, d.args[2] = v[j];
				check(c, &p, &d);
				d.args[0] = v[j], d.args[1] = SOL_SOCKET, d.args[2] = v[i];
				check(c, &p, &d);
			}
	}
	free(p.filter);
	return len;
}

static void test_default(void **state)
{
	(void)state;
	static struct conf c = {.name = "default"};
	unsigned len = compare(&c, NULL);
	/* 206 instructions from libseccomp 2.5 (binary tree); ours 112 */
	assert_true(len < 130);
}

static void test_kill(void **state)
{
	(void)state;
	static struct conf c = {.name = "kill", .cfg = {.seccomp_action = SANDBOX_SECCOMP_KILL}};
	compare(&c, NULL);
}

static void test_allow_bind(void **state)
{
	(void)state;
	static struct conf c = {.name = "allow_bind", .cfg = {.allow_bind = true}};
	compare(&c, NULL);
}

static void test_allow_lists(void **state)
{
	(void)state;
	static const char *const a1[] = {"socket", "clone", "bind", "shmget", "mount", NULL};
	static const char *const a2[] = {"clone3", "socketpair", "setsockopt",
	                                 "listen", "ipc",        NULL};
	static struct conf c1 = {.name = "allow1", .cfg = {.seccomp_allow = a1}};
	static struct conf c2 = {.name = "allow2", .cfg = {.seccomp_allow = a2}};
	compare(&c1, NULL);
	compare(&c2, NULL);
}

static void test_deny_lists(void **state)
{
	(void)state;
	/* denied outright, the calls whose arguments decide among them;
	 * neighbours of denied numbers (ranges) */
	static const char *const d1[] = {"clone",  "socket", "clone3", "setsockopt",
	                                 "getpid", "read",   "chmod",  "fchmod",
	                                 "chown",  "fchown", NULL};
	static const char *const a1[] = {"socketpair", NULL};
	static struct conf c1 = {.name = "deny1",
	                         .cfg = {.seccomp_deny = d1,
	                                 .seccomp_allow = a1,
	                                 .seccomp_action = SANDBOX_SECCOMP_KILL}};
	compare(&c1, NULL);
}

/* Every other syscall denied: a program long enough to need far jumps. */
static void test_deny_many(void **state)
{
	(void)state;
	static const char *names[NR_MAX / 2 + 1];
	size_t n = 0;
	for (int nr = 0; nr < NR_MAX; nr += 2) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (s && strcmp(s, "clone") && strcmp(s, "socket"))
			names[n++] = s;
		else
			free(s);
	}
	names[n] = NULL;
	static struct conf c = {.name = "deny_many"};
	c.cfg.seccomp_deny = names;
	unsigned far = 0, len = compare(&c, &far);
	assert_true(len > 256);
	assert_true(far > 0);
	for (size_t i = 0; i < n; i++)
		free((char *)names[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default),    cmocka_unit_test(test_kill),
	    cmocka_unit_test(test_allow_bind), cmocka_unit_test(test_allow_lists),
	    cmocka_unit_test(test_deny_lists), cmocka_unit_test(test_deny_many),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	fprintf(stderr, "test_seccomp: %lu decisions compared\n", compared);
	return r;
}
