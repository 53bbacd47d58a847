/* SPDX-License-Identifier: MIT */
/*
 * The policy's verifier: every rule that relates parsed values to each
 * other, across the keys of a sandbox, across sandboxes, with the broker's
 * own settings, or with the host's filesystem. It reads the plain structs
 * of broker.h (and, for messages, where the parsers found them); it never
 * walks JSON. pol_verify() is the list of what it refuses.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/policy_internal.h"

/* "sandboxes.NAME.key" */
static void sb_path(char *out, const struct pst_sandbox *s, const char *key)
{
	char base[POL_PATH_MAX];
	pol_join(base, "sandboxes", s->name);
	pol_join(out, base, key);
}

/* path lies strictly below dir (both normalised: no trailing or doubled
 * slashes). */
static bool path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1 && dir[0] == '/')
		return path[0] == '/' && path[1] != 0;
	return !strncmp(path, dir, n) && path[n] == '/';
}

/* ---- within one sandbox -------------------------------------------------------- */

static void verify_prewarm(struct pol_ctx *c, const struct pst_sandbox *s)
{
	char p[POL_PATH_MAX];
	if (!s->prewarm || s->trigger != PST_TRIGGER_STARTUP)
		return;
	sb_path(p, s, "prewarm");
	pol_err(c, p, NULL, "a startup sandbox has exactly one handler; prewarm does not apply");
}

/* A symlink in a bind source, in any component, the last included, is
 * refused: sandbox/ opens bind sources without following symlinks (one a
 * handler planted in a directory it writes must not lead the bind to the
 * host's /), so such a bind would fail at every spawn; and the operator
 * should see in the policy what is bound. The message gives the real path
 * to declare instead. Components that do not exist (yet), or that this
 * process may not look at, are left to the spawn, which reports them.
 * Returns whether src passed. */
static bool bind_source_ok(struct pol_ctx *c, const char *path, const struct cJSON *v,
                           const char *src)
{
	char buf[4096];
	size_t n = strlen(src);
	if (n >= sizeof(buf))
		return true;
	memcpy(buf, src, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		char save = buf[i];
		buf[i] = 0;
		struct stat st;
		if (lstat(buf, &st) < 0)
			return true;
		if (S_ISLNK(st.st_mode)) {
			char target[1024], real[PATH_MAX];
			ssize_t l = readlink(buf, target, sizeof(target) - 1);
			target[l > 0 ? l : 0] = 0;
			if (realpath(src, real))
				pol_err(
				    c, path, v,
				    "\"%s\" is a symlink (to \"%s\"): bind sources are not "
				    "followed "
				    "through symlinks; if that is what is meant, declare the real "
				    "path \"%s\"",
				    buf, target, real);
			else
				pol_err(c, path, v,
				        "\"%s\" is a symlink (to \"%s\"): bind sources are not "
				        "followed "
				        "through symlinks; use the real path (this one does not "
				        "resolve)",
				        buf, target);
			return false;
		}
		buf[i] = save;
	}
	return true;
}

/* f, at path, against g, an earlier entry (number gi in the policy): the
 * root is built without following symlinks, the policy's own included. */
static void verify_destination(struct pol_ctx *c, const char *path, const struct pst_fs *f,
                               const struct pst_fs *g, size_t gi)
{
	if (!strcmp(g->dst, f->dst))
		pol_err(c, path, NULL, "\"%s\" is already a destination of entry %zu", f->dst, gi);
	else if (g->kind == PST_FS_SYMLINK && path_below(f->dst, g->dst))
		pol_err(c, path, NULL,
		        "\"%s\" lies under the symlink of entry %zu (\"%s\"): mount points are not "
		        "made through symlinks; use the path the symlink points to",
		        f->dst, gi, g->dst);
	else if (f->kind == PST_FS_SYMLINK && path_below(g->dst, f->dst))
		pol_err(c, path, NULL,
		        "\"%s\" would be a symlink above entry %zu (\"%s\"): mount points are not "
		        "made through symlinks",
		        f->dst, gi, g->dst);
}

/* Bind sources without symlinks; each destination once, none through a
 * symlink entry. An entry refused (here or by its parser) is compared with
 * no other. */
static void verify_fs(struct pol_ctx *c, const struct pst_sandbox *s, const struct pol_fs_origin *o)
{
	bool whole[POL_LIST_MAX];
	char base[POL_PATH_MAX];
	sb_path(base, s, "filesystem");
	for (size_t k = 0; k < s->n_fs && k < POL_LIST_MAX; k++) {
		const struct pst_fs *f = &s->fs[k];
		char p[POL_PATH_MAX], q[POL_PATH_MAX];
		pol_join_idx(p, base, o[k].index);
		whole[k] = o[k].complete;
		if (f->kind == PST_FS_BIND) {
			pol_join(q, p, "bind");
			whole[k] = bind_source_ok(c, q, o[k].src, f->src) && whole[k];
		}
		if (!whole[k])
			continue;
		pol_join(q, p, o[k].dst_key);
		for (size_t j = 0; j < k; j++)
			if (whole[j])
				verify_destination(c, q, f, &s->fs[j], o[j].index);
	}
}

/* identity_files writes /etc/passwd, /etc/group and /etc/hosts into the
 * root's own tmpfs: no entry may take /etc or one of them (a bind would
 * put the host's files there instead, and an rw one would have the
 * broker write into the host's /etc; a tmpfs or a symlink would hide or
 * redirect them). Entries further below /etc are fine. */
static void verify_identity(struct pol_ctx *c, const struct pst_sandbox *s,
                            const struct pol_fs_origin *o)
{
	static const char *const files[] = {"/etc", "/etc/passwd", "/etc/group", "/etc/hosts"};
	char base[POL_PATH_MAX];
	if (!s->identity_files)
		return;
	sb_path(base, s, "filesystem");
	for (size_t k = 0; k < s->n_fs; k++)
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			char p[POL_PATH_MAX], q[POL_PATH_MAX];
			if (strcmp(s->fs[k].dst, files[i]))
				continue;
			pol_join_idx(p, base, o[k].index);
			pol_join(q, p, o[k].dst_key);
			pol_err_str(
			    c, q, s->fs[k].dst,
			    "\"identity_files\" writes /etc/passwd, /etc/group and /etc/hosts "
			    "into the root, and this entry takes %s%s: drop \"identity_files\" "
			    "(and provide the files in what is bound), or bind only what the "
			    "handler needs below /etc",
			    files[i],
			    s->fs[k].kind == PST_FS_BIND
			        ? " (the host's own would be there instead)"
			        : "");
		}
}

static void verify_seccomp(struct pol_ctx *c, const struct pst_sandbox *s)
{
	const struct pst_seccomp *sc = &s->seccomp;
	char p[POL_PATH_MAX];
	sb_path(p, s, "seccomp.allow");
	for (size_t i = 0; i < sc->n_allow; i++)
		for (size_t j = 0; j < sc->n_deny; j++)
			if (!strcmp(sc->allow[i], sc->deny[j]))
				pol_err(c, p, NULL, "\"%s\" is both allowed and denied",
				        sc->allow[i]);
}

static void verify_limits(struct pol_ctx *c, const struct pst_sandbox *s)
{
	char p[POL_PATH_MAX];
	if (s->limits.per_source <= s->limits.handlers)
		return;
	sb_path(p, s, "limits.per_source");
	pol_err(c, p, NULL, "%u is more than limits.handlers (%u)", s->limits.per_source,
	        s->limits.handlers);
}

/* ---- addresses ----------------------------------------------------------------- */

/* An address the broker binds: a sandbox's listen or sockets entry, or the
 * broker's own control socket or metrics address. */
struct bound {
	const struct pst_sockaddr *addr;
	const struct pst_sandbox *sb; /* NULL: the broker's own */
	const char *key;              /* sandbox: "trigger.listen" or "sockets" */
	size_t index;
	const char *what; /* the broker's: "control socket (broker.control)" */
};

static size_t collect_bound(const struct pst_policy *p, const struct pst_sockaddr *control,
                            struct bound *b)
{
	size_t n = 0;
	if (control)
		b[n++] = (struct bound){.addr = control, .what = "control socket (broker.control)"};
	if (p->broker.has_metrics)
		b[n++] = (struct bound){.addr = &p->broker.metrics,
		                        .what = "metrics address (broker.metrics)"};
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t a = 0; a < s->n_listen; a++)
			b[n++] = (struct bound){&s->listen[a], s, "trigger.listen", a, NULL};
		for (size_t a = 0; a < s->n_sockets; a++)
			b[n++] = (struct bound){&s->sockets[a], s, "sockets", a, NULL};
	}
	return n;
}

static bool same_address(const struct pst_sockaddr *x, const struct pst_sockaddr *y)
{
	return x->len == y->len && !memcmp(&x->ss, &y->ss, x->len);
}

/* Two different addresses of one family and port, one of them the wildcard
 * (0.0.0.0 or ::; listeners are IPV6_V6ONLY, so the families stay apart):
 * the kernel refuses the second bind, or with SO_REUSEPORT gives each
 * connection to the more specific one. */
static bool wildcard_overlap(const struct pst_sockaddr *x, const struct pst_sockaddr *y)
{
	if (x->ss.ss_family != y->ss.ss_family)
		return false;
	if (x->ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)&x->ss, *b = (const void *)&y->ss;
		return a->sin_port == b->sin_port && (a->sin_addr.s_addr == htonl(INADDR_ANY) ||
		                                      b->sin_addr.s_addr == htonl(INADDR_ANY));
	}
	if (x->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)&x->ss, *b = (const void *)&y->ss;
		return a->sin6_port == b->sin6_port && (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) ||
		                                        IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr));
	}
	return false;
}

/* e, a sandbox's address, against f, one declared before it. */
static void verify_bound_pair(struct pol_ctx *c, const struct bound *e, const struct bound *f)
{
	char path[POL_PATH_MAX], key[64], owner[64];
	bool same = same_address(e->addr, f->addr);
	if (!same && !wildcard_overlap(e->addr, f->addr))
		return;
	snprintf(key, sizeof(key), "%s[%zu]", e->key, e->index);
	sb_path(path, e->sb, key);
	if (same && f->sb) {
		pol_err(c, path, NULL, "\"%s\" is already declared by sandbox \"%s\"",
		        e->addr->text, f->sb->name);
		return;
	}
	if (same) {
		pol_err(c, path, NULL, "\"%s\" is the broker's %s", e->addr->text, f->what);
		return;
	}
	if (f->sb)
		snprintf(owner, sizeof(owner), "declared by sandbox \"%s\"", f->sb->name);
	else
		snprintf(owner, sizeof(owner), "the broker's %s", f->what);
	pol_err(c, path, NULL,
	        "\"%s\" overlaps \"%s\", %s: a wildcard address takes its port on every local "
	        "address of its family; use distinct ports or specific addresses",
	        e->addr->text, f->addr->text, owner);
}

/* No address twice, no wildcard address over another one on its port, none
 * of the broker's own: listen and sockets entries across all sandboxes, the
 * control socket and the metrics address. A sandbox's entry is the one
 * named: the broker's come first. */
static void verify_addresses(struct pol_ctx *c, const struct pst_policy *p)
{
	size_t n = 2;
	for (size_t i = 0; i < p->n_sandboxes; i++)
		n += p->sandboxes[i].n_listen + p->sandboxes[i].n_sockets;
	pol_autofree struct bound *b = calloc(n, sizeof(*b));
	pol_autofree char *control_text = NULL;
	struct pst_sockaddr control;
	char why[160];
	if (!b || asprintf(&control_text, "unix:%s", p->broker.control) < 0) {
		pol_err(c, "(policy)", NULL, "out of memory");
		return;
	}
	bool has_control = pst_parse_sockaddr(control_text, &control, why, sizeof(why)) == 0;
	n = collect_bound(p, has_control ? &control : NULL, b);
	for (size_t e = 0; e < n; e++)
		for (size_t f = 0; b[e].sb && f < e; f++)
			verify_bound_pair(c, &b[e], &b[f]);
}

/* ---- channels -------------------------------------------------------------------- */

/* One consumer, at least one sender, no sending to oneself. */
static void verify_channels(struct pol_ctx *c, const struct pst_policy *p)
{
	char path[POL_PATH_MAX];
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		bool sender = false;
		sb_path(path, s, "trigger");
		for (size_t j = 0; s->channel && j < p->n_sandboxes; j++) {
			const struct pst_sandbox *t = &p->sandboxes[j];
			if (j < i && t->channel && !strcmp(t->channel, s->channel))
				pol_err(c, path, NULL,
				        "channel \"%s\" already has a consumer: sandbox \"%s\"",
				        s->channel, t->name);
			for (size_t k = 0; k < t->n_send; k++)
				sender |= !strcmp(t->send[k], s->channel);
		}
		if (s->channel && !sender)
			pol_err(c, path, NULL,
			        "channel \"%s\" has no sender (no sandbox lists it in \"send\")",
			        s->channel);
		for (size_t k = 0; k < s->n_send; k++) {
			char key[32];
			snprintf(key, sizeof(key), "send[%zu]", k);
			sb_path(path, s, key);
			if (s->channel && !strcmp(s->channel, s->send[k])) {
				pol_err(c, path, NULL,
				        "a sandbox cannot send to its own channel \"%s\"",
				        s->send[k]);
				continue;
			}
			bool consumer = false;
			for (size_t j = 0; j < p->n_sandboxes; j++)
				consumer |= p->sandboxes[j].channel &&
				            !strcmp(p->sandboxes[j].channel, s->send[k]);
			if (!consumer)
				pol_err(
				    c, path, NULL,
				    "channel \"%s\" has no consumer (no sandbox has it as pipe or "
				    "fdpass trigger)",
				    s->send[k]);
		}
	}
}

/* ---- address pools, uids, binds --------------------------------------------------- */

/* Room for every sandbox: a /30 each in sandbox_net, a /64 in sandbox_net6. */
static void verify_pool_room(struct pol_ctx *c, const struct pst_policy *p)
{
	const struct pst_cidr *net = &p->broker.sandbox_net, *net6 = &p->broker.sandbox_net6;
	unsigned long long need = p->n_sandboxes;
	char n1[64];
	if (32 - net->prefix < 63 && (1ull << (32 - net->prefix)) / 4 < need) {
		pst_cidr_format(net, n1, sizeof(n1));
		pol_err(c, "broker.sandbox_net", NULL,
		        "%s holds %llu sandboxes (a /30 each), the policy has %llu", n1,
		        (1ull << (32 - net->prefix)) / 4, need);
	}
	if (64 - net6->prefix < 40 && (1ull << (64 - net6->prefix)) < need) {
		pst_cidr_format(net6, n1, sizeof(n1));
		pol_err(c, "broker.sandbox_net6", NULL,
		        "%s holds %llu sandboxes (a /64 each), the policy has %llu", n1,
		        1ull << (64 - net6->prefix), need);
	}
}

/* Unique uids (given or derived from the name): two sandboxes of one uid
 * would own each other's files. */
static void verify_uids(struct pol_ctx *c, const struct pst_policy *p)
{
	char path[POL_PATH_MAX];
	if ((unsigned long long)p->broker.uid_base + PST_UID_RANGE - 1 > 4294967294ull)
		pol_err(c, "broker.uid_base", NULL, "uid_base + %u exceeds the uid range",
		        PST_UID_RANGE - 1);
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t j = 0; j < i; j++) {
			const struct pst_sandbox *t = &p->sandboxes[j];
			if (t->uid != s->uid)
				continue;
			if (s->uid_explicit)
				sb_path(path, s, "uid");
			else
				pol_join(path, "sandboxes", s->name);
			pol_err(c, path, NULL,
			        "uid %u (%s) is also the uid of sandbox \"%s\" (%s): two sandboxes "
			        "would own each other's files; set \"uid\" on one of them to a uid "
			        "of its own",
			        s->uid, s->uid_explicit ? "its \"uid\"" : "derived from its name",
			        t->name, t->uid_explicit ? "its \"uid\"" : "derived from its name");
		}
	}
}

/* The first rw bind of the policy that src lies inside, or NULL. */
static const struct pst_fs *rw_bind_above(const struct pst_policy *p, const char *src,
                                          const struct pst_sandbox **owner, size_t *index)
{
	for (size_t j = 0; j < p->n_sandboxes; j++) {
		const struct pst_sandbox *t = &p->sandboxes[j];
		for (size_t m = 0; m < t->n_fs; m++) {
			if (t->fs[m].kind != PST_FS_BIND || !t->fs[m].rw ||
			    !path_below(src, t->fs[m].src))
				continue;
			*owner = t;
			*index = m;
			return &t->fs[m];
		}
	}
	return NULL;
}

/* No bind source inside what a sandbox's handlers can write on the host (an
 * rw bind, of any sandbox, this one included): a handler could replace the
 * source with a symlink, and the next root built (a spawn, or a reload's
 * root template) would bind what it points to. tmpfs and proc entries are
 * no host paths: nothing is bound from them. The same path bound twice is
 * fine: the directory entry of an rw bind's own root is not the handlers'
 * to replace. */
static void verify_rw_binds(struct pol_ctx *c, const struct pst_policy *p)
{
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t k = 0; k < s->n_fs; k++) {
			const struct pst_sandbox *t;
			size_t m;
			if (s->fs[k].kind != PST_FS_BIND)
				continue;
			const struct pst_fs *rw = rw_bind_above(p, s->fs[k].src, &t, &m);
			if (!rw)
				continue;
			char path[POL_PATH_MAX], key[64], owner[64];
			snprintf(key, sizeof(key), "filesystem[%zu].bind", k);
			sb_path(path, s, key);
			if (t == s)
				snprintf(owner, sizeof(owner), "this sandbox");
			else
				snprintf(owner, sizeof(owner), "sandbox \"%s\"", t->name);
			pol_err_str(
			    c, path, s->fs[k].src,
			    "lies inside \"%s\", an rw bind of %s (filesystem[%zu]): its "
			    "handlers could replace it with a symlink to any host path; bind a "
			    "path outside every rw bind",
			    rw->src, owner, m);
		}
	}
}

static bool cidr_overlap(const struct pst_cidr *a, const struct pst_cidr *b)
{
	if (a->family != b->family)
		return false;
	unsigned p = a->prefix < b->prefix ? a->prefix : b->prefix;
	for (unsigned i = 0; i < p; i++) {
		unsigned byte = i / 8, bit = 7 - i % 8;
		if (((a->addr[byte] >> bit) & 1) != ((b->addr[byte] >> bit) & 1))
			return false;
	}
	return true;
}

/* No egress into the sandbox address pools: sandboxes may not reach each
 * other. */
static void verify_egress_pools(struct pol_ctx *c, const struct pst_policy *p)
{
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t k = 0; k < s->n_egress; k++) {
			const struct pst_cidr *pool = s->egress[k].to.family == AF_INET
			                                  ? &p->broker.sandbox_net
			                                  : &p->broker.sandbox_net6;
			if (!cidr_overlap(&s->egress[k].to, pool))
				continue;
			char path[POL_PATH_MAX], key[32], n1[64], n2[64];
			snprintf(key, sizeof(key), "egress[%zu].to", k);
			sb_path(path, s, key);
			pst_cidr_format(&s->egress[k].to, n1, sizeof(n1));
			pst_cidr_format(pool, n2, sizeof(n2));
			pol_err(c, path, NULL,
			        "%s overlaps the sandbox address pool %s: sandboxes may not reach "
			        "each other",
			        n1, n2);
		}
	}
}

/* ---- inbound access -------------------------------------------------------------- */

static bool is_inet(const struct pst_sockaddr *a)
{
	return a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6;
}

static bool v6_wildcard(const struct pst_sockaddr *a)
{
	const struct sockaddr_in6 *in6 = (const void *)&a->ss;
	return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

static uint16_t sa_port(const struct pst_sockaddr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)&a->ss)->sin6_port);
}

/* An IPv4 socket of the policy on this port takes its IPv4 clients: a
 * [::]:P listener then gets none (broker/plan.c gives it no IPv4 rules). */
static bool v4_port_taken(const struct pst_policy *p, uint16_t port)
{
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t j = 0; j < s->n_listen; j++)
			if (s->listen[j].ss.ss_family == AF_INET && sa_port(&s->listen[j]) == port)
				return true;
		for (size_t j = 0; j < s->n_sockets; j++)
			if (s->sockets[j].ss.ss_family == AF_INET &&
			    sa_port(&s->sockets[j]) == port)
				return true;
	}
	return false;
}

/* The entries of one list that no listener it applies to can ever see: an
 * IPv6 CIDR where every listener is IPv4, an IPv4 CIDR where every one is
 * a specific IPv6 address ([::]:P may be dual-stack, inherited from
 * systemd, unless an IPv4 socket of the policy holds P). Refused rather than warned of: a rule that
 * never matches is a mistake in a firewall's policy (the operator believes it does something). */
static void verify_access_families(struct pol_ctx *c, const char *path, const char *key,
                                   const struct pst_cidr *l, size_t n, bool v4, bool v6)
{
	for (size_t k = 0; k < n; k++) {
		bool dead = l[k].family == AF_INET6 ? !v6 : !v4;
		if (!dead)
			continue;
		char q[POL_PATH_MAX], base[POL_PATH_MAX], t[64];
		pol_join(base, path, key);
		pol_join_idx(q, base, k);
		pst_cidr_format(&l[k], t, sizeof(t));
		pol_err(c, q, NULL,
		        "%s never matches: every listen address it applies to is %s (remove it, "
		        "or listen on an %s address too)",
		        t, l[k].family == AF_INET6 ? "IPv4" : "IPv6",
		        l[k].family == AF_INET6 ? "IPv6" : "IPv4");
	}
}

static void verify_access(struct pol_ctx *c, const struct pst_policy *p,
                          const struct pst_sandbox *s)
{
	char path[POL_PATH_MAX];
	bool lists = s->access.n_allow || s->access.n_deny;
	const char *key = s->access.n_allow ? "allow_from" : "deny_from";
	if (lists && s->trigger != PST_TRIGGER_LISTEN) {
		sb_path(path, s, key);
		pol_err(c, path, NULL,
		        "client address rules apply to listen triggers only (a %s sandbox accepts "
		        "no connections)",
		        s->trigger == PST_TRIGGER_PIPE      ? "pipe"
		        : s->trigger == PST_TRIGGER_FDPASS  ? "fdpass"
		        : s->trigger == PST_TRIGGER_STARTUP ? "startup"
		                                            : "non-listen");
		return;
	}
	bool v4 = false, v6 = false, any_inet = false;
	for (size_t i = 0; i < s->n_listen; i++) {
		const struct pst_sockaddr *a = &s->listen[i];
		const struct pst_listen_opt *o = s->listen_opt ? &s->listen_opt[i] : NULL;
		if (!is_inet(a))
			continue;
		bool lv4 =
		    a->ss.ss_family == AF_INET || (v6_wildcard(a) && !v4_port_taken(p, sa_port(a)));
		bool lv6 = a->ss.ss_family == AF_INET6;
		if (o && o->own_access) {
			char base[POL_PATH_MAX], lp[48];
			snprintf(lp, sizeof(lp), "trigger.listen[%zu]", i);
			sb_path(base, s, lp);
			verify_access_families(c, base, "allow_from", o->access.allow,
			                       o->access.n_allow, lv4, lv6);
			verify_access_families(c, base, "deny_from", o->access.deny,
			                       o->access.n_deny, lv4, lv6);
			continue;
		}
		any_inet = true;
		v4 |= lv4;
		v6 |= lv6;
	}
	if (!lists)
		return;
	if (!any_inet) {
		sb_path(path, s, key);
		pol_err(c, path, NULL,
		        "no TCP listen address uses the sandbox's client address rules (unix "
		        "sockets: allow_uids, allow_gids; an address with its own allow_from or "
		        "deny_from replaces them)");
		return;
	}
	char base[POL_PATH_MAX];
	pol_join(base, "sandboxes", s->name);
	verify_access_families(c, base, "allow_from", s->access.allow, s->access.n_allow, v4, v6);
	verify_access_families(c, base, "deny_from", s->access.deny, s->access.n_deny, v4, v6);
}

/* ---- the list ---------------------------------------------------------------------- */

void pol_verify(struct pol_ctx *c, const struct pst_policy *p)
{
	/* Within one sandbox: run on whatever parsed, beside the parse errors. */
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		if (!s->name)
			continue;                       /* out of memory, reported */
		verify_prewarm(c, s);                   /* not with a startup trigger */
		verify_fs(c, s, c->origin[i].fs);       /* bind sources, destinations */
		verify_identity(c, s, c->origin[i].fs); /* nothing over its /etc files */
		verify_seccomp(c, s);                   /* no syscall allowed and denied */
		verify_limits(c, s);                    /* per_source <= handlers */
		verify_access(c, p, s);                 /* listen only, families listened on */
	}
	/* Across sandboxes and the broker: only on a policy that is whole. */
	if (c->errors)
		return;
	verify_addresses(c, p);    /* duplicates, wildcard overlaps, the broker's */
	verify_channels(c, p);     /* one consumer, a sender, not oneself */
	verify_pool_room(c, p);    /* a /30 and a /64 per sandbox */
	verify_uids(c, p);         /* unique, given or derived */
	verify_rw_binds(c, p);     /* no bind source inside an rw bind */
	verify_egress_pools(c, p); /* no egress into the pools */
}
