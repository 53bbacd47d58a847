/* SPDX-License-Identifier: MIT */
/*
 * Landlock: a domain per handler. Handlers of one sandbox share its network
 * namespace, so what one binds there another could reach; a Landlock
 * domain of its own keeps each handler to itself:
 *   - scopes (ABI >= 6): an abstract unix socket bound (or autobound) by
 *     one handler cannot be connected or sent to from another, and no
 *     signal leaves the handler's domain;
 *   - network (ABI >= 4): LANDLOCK_ACCESS_NET_BIND_TCP handled with no
 *     rule: no TCP bind, unless the sandbox allows binding (allow_bind).
 * No file system access is handled: the root (declared binds, read-only
 * unless rw) does that, and handling none keeps the domain free of path
 * rules. The ruleset is made once per sandbox (sb_landlock_ruleset(), from
 * sandbox_prepare()); the child restricts itself with it after
 * no_new_privs and before seccomp, one syscall. Siblings restricted from
 * one ruleset get one domain each: they are not in each other's domain.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "sandbox/internal.h"

/* Debian 12's kernel headers (6.1) know ABI 1 and 2 only */
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* struct landlock_ruleset_attr as of ABI 6; a kernel takes the prefix it
 * knows (the size says how much) */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

static int ll_abi;
static pthread_once_t ll_once = PTHREAD_ONCE_INIT;

static void ll_probe(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	ll_abi = v > 0 ? (int)v : 0; /* ENOSYS, or EOPNOTSUPP: disabled at boot */
}

int sandbox_landlock_abi(void)
{
	pthread_once(&ll_once, ll_probe);
	return ll_abi;
}

const char *sandbox_landlock_gaps(int abi)
{
	if (abi >= 6)
		return NULL;
	if (abi >= 4)
		return "no Landlock scopes (ABI < 6, Linux < 6.12): an abstract unix socket or a "
		       "signal is kept from crossing between handlers of one sandbox only by "
		       "seccomp "
		       "(bind, listen and SO_PASSCRED refused unless allow_bind) and by their pid "
		       "namespaces; with allow_bind, one handler can connect to another's abstract "
		       "socket";
	return "no Landlock network rules or scopes (ABI < 4, Linux < 6.7): handlers of one "
	       "sandbox are kept from each other's sockets only by seccomp (bind, listen and "
	       "SO_PASSCRED refused unless allow_bind) and from each other's processes by their "
	       "pid namespaces; seccomp.allow of bind or listen opens TCP and abstract unix "
	       "listeners to the other handlers";
}

int sb_landlock_ruleset(const struct sandbox_config *cfg, int *fd, struct sandbox_error *err)
{
	*fd = -1;
	int abi = sandbox_landlock_abi();
	struct ll_ruleset_attr a;
	size_t size = sizeof(a.handled_access_fs);
	memset(&a, 0, sizeof(a));
	if (abi >= 4) {
		size = offsetof(struct ll_ruleset_attr, scoped);
		if (!cfg->allow_bind)
			a.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP;
	}
	if (abi >= 6) {
		size = sizeof(a);
		a.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
	}
	if (!a.handled_access_net && !a.scoped)
		return 0; /* nothing this kernel could add: no domain */
	long r = syscall(SYS_landlock_create_ruleset, &a, size, 0);
	if (r < 0) {
		int e = errno;
		sb_error(err, e, "landlock", "ruleset",
		         "sandbox \"%s\": landlock: create the ruleset (ABI %d): %s", cfg->name,
		         abi, strerror(e));
		return -e;
	}
	*fd = (int)r; /* the kernel makes it CLOEXEC */
	return 0;
}

/* A Landlock domain of its own: what it binds or signals stays with it,
 * apart from the sandbox's other handlers. After no_new_privs, before
 * seccomp. In the child. */
void child_landlock(struct child_args *c)
{
	if (c->ll_fd < 0)
		return;
	if (syscall(SYS_landlock_restrict_self, c->ll_fd, 0) < 0)
		child_fail(c->err_fd, errno, "landlock", "restrict self");
	sb_close(&c->ll_fd);
}
