/* SPDX-License-Identifier: MIT */
/*
 * The policy as the libraries take it: a sandbox's struct sandbox_config
 * (for sandbox_prepare()) and the policy's struct netpolicy_config, both
 * built from the loaded struct pst_policy; and the libraries' errors as log
 * fields (step=, then error=), logged once by the caller.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "broker/daemon_internal.h"

/* ---- library errors -> log fields ------------------------------------ */

void ll_sandbox_error(struct pst_logline *l, const struct sandbox_error *err, int r)
{
	if (err->step[0])
		pst_ll_str(l, "step", err->step);
	pst_ll_str(l, "error", err->msg[0] ? err->msg : strerror(-r));
}

void ll_netpolicy_error(struct pst_logline *l, const struct netpolicy_error *err, int r)
{
	if (err->step[0])
		pst_ll_str(l, "step", err->step);
	pst_ll_str(l, "error", err->msg[0] ? err->msg : strerror(-r));
}

void log_sandbox_error(const char *level, const char *event, const char *sandbox,
                       const struct sandbox_error *err, int r)
{
	struct pst_logline l;
	pst_ll_begin(&l, level, event);
	if (sandbox)
		pst_ll_str(&l, "sandbox", sandbox);
	ll_sandbox_error(&l, err, r);
	pst_ll_end(&l);
}

void log_netpolicy_error(const char *level, const char *event, const struct netpolicy_error *err,
                         int r)
{
	struct pst_logline l;
	pst_ll_begin(&l, level, event);
	ll_netpolicy_error(&l, err, r);
	pst_ll_end(&l);
}

/* ---- a sandbox ---------------------------------------------------------- */

static void strv_freep(char ***p)
{
	for (char **v = *p; v && *v; v++)
		free(*v);
	free(*p);
}
#define cleanup_strv __attribute__((cleanup(strv_freep)))

static int plan_nomem(const struct pst_sandbox *sc, struct sandbox_error *err)
{
	err->err = ENOMEM;
	snprintf(err->msg, sizeof(err->msg), "sandbox \"%s\": prepare: %s", sc->name,
	         strerror(ENOMEM));
	return -ENOMEM;
}

static void plan_mounts(const struct pst_sandbox *sc, struct sandbox_mount *mounts)
{
	for (size_t i = 0; i < sc->n_fs; i++) {
		const struct pst_fs *f = &sc->fs[i];
		struct sandbox_mount *m = &mounts[i];
		m->kind = f->kind == PST_FS_BIND    ? SANDBOX_MOUNT_BIND
		          : f->kind == PST_FS_TMPFS ? SANDBOX_MOUNT_TMPFS
		          : f->kind == PST_FS_PROC  ? SANDBOX_MOUNT_PROC
		                                    : SANDBOX_MOUNT_SYMLINK;
		m->src = f->src;
		m->dst = f->dst;
		m->rw = f->rw;
		m->size = f->size;
		m->target = f->target;
	}
}

static struct sandbox_limits plan_limits(const struct pst_limits *lim)
{
	/* all handlers of a sandbox share one uid; before Linux 5.14
	 * RLIMIT_NPROC counted every process of that uid, since then per
	 * user namespace (one per handler). The per-handler cap is the pids
	 * cgroup; this bound is safe with either accounting */
	uint64_t nproc = (uint64_t)lim->pids * lim->handlers;
	return (struct sandbox_limits){
	    .memory = lim->memory,
	    .pids = lim->pids,
	    .nofile = lim->nofile,
	    .nproc = nproc > UINT32_MAX ? UINT32_MAX : (uint32_t)nproc,
	    .cpu = lim->cpu,
	};
}

/* Policy sandbox -> sandbox/ config; sandbox_prepare() copies what it keeps. */
int plan_sandbox(const struct pst_policy *p, const struct pst_sandbox *sc, struct sandbox **out,
                 struct sandbox_error *err)
{
	cleanup_free struct sandbox_mount *mounts = calloc(sc->n_fs + 1, sizeof(*mounts));
	cleanup_strv char **env = calloc(sc->n_env + 1, sizeof(*env));
	cleanup_free const char **deny = calloc(sc->seccomp.n_deny + 1, sizeof(char *));
	cleanup_free const char **allow = calloc(sc->seccomp.n_allow + 1, sizeof(char *));

	if (!mounts || !env || !deny || !allow)
		return plan_nomem(sc, err);
	plan_mounts(sc, mounts);
	for (size_t i = 0; i < sc->n_env; i++)
		if (asprintf(&env[i], "%s=%s", sc->env[i].key, sc->env[i].value) < 0) {
			env[i] = NULL;
			return plan_nomem(sc, err);
		}
	for (size_t i = 0; i < sc->seccomp.n_deny; i++)
		deny[i] = sc->seccomp.deny[i];
	for (size_t i = 0; i < sc->seccomp.n_allow; i++)
		allow[i] = sc->seccomp.allow[i];
	struct sandbox_config cfg = {
	    .name = sc->name,
	    .argv = (const char *const *)sc->exec,
	    .env = (const char *const *)env,
	    .uid = sc->uid,
	    .gid = sc->uid,
	    .mounts = mounts,
	    .n_mounts = sc->n_fs,
	    .socket_mode = sc->socket == PST_SOCKET_LISTEN_FDS ? SANDBOX_SOCKET_LISTEN_FDS
	                                                       : SANDBOX_SOCKET_STDIO,
	    .limits = plan_limits(&sc->limits),
	    .seccomp_action = sc->seccomp.action == PST_SECCOMP_KILL ? SANDBOX_SECCOMP_KILL
	                                                             : SANDBOX_SECCOMP_ERRNO,
	    .seccomp_deny = deny,
	    .seccomp_allow = allow,
	    .cgroup_name = p->broker.table,
	    .allow_bind = sc->allow_bind,
	    .identity_files = sc->identity_files,
	};
	return sandbox_prepare(&cfg, out, err);
}

/* ---- the policy's networks and rules ------------------------------------ */

static void np_log(void *ctx, const char *msg)
{
	(void)ctx;
	pst_log("info", "netpolicy", "msg", msg, NULL);
}

static void cidr_to_np(const struct pst_cidr *c, struct netpolicy_cidr *o)
{
	o->family = c->family;
	memcpy(o->addr, c->addr, sizeof(o->addr));
	o->prefix = c->prefix;
}

static int np_rules(const struct pst_sandbox *sc, struct netpolicy_sandbox *o)
{
	o->name = sc->name;
	if (!sc->n_egress)
		return 0;
	struct netpolicy_rule *rules = calloc(sc->n_egress, sizeof(*rules));
	if (!rules)
		return -ENOMEM;
	for (size_t j = 0; j < sc->n_egress; j++) {
		cidr_to_np(&sc->egress[j].to, &rules[j].to);
		rules[j].proto = (uint8_t)sc->egress[j].proto;
		rules[j].ports = sc->egress[j].ports;
		rules[j].n_ports = sc->egress[j].n_ports;
	}
	o->rules = rules;
	o->n_rules = sc->n_egress;
	return 0;
}

/* The `sockets` of startup sandboxes: handed over, and the only addresses
 * where a socket with their mark may accept connections. */
static int np_listeners(const struct pst_policy *p, struct netpolicy_config *cfg)
{
	size_t nl = 0;
	for (size_t i = 0; i < p->n_sandboxes; i++)
		nl += p->sandboxes[i].trigger == PST_TRIGGER_LISTEN ? 0 : p->sandboxes[i].n_sockets;
	struct netpolicy_listener *nls = calloc(nl + 1, sizeof(*nls));
	if (!nls)
		return -ENOMEM;
	cfg->listeners = nls;
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		for (size_t j = 0; sc->trigger != PST_TRIGGER_LISTEN && j < sc->n_sockets; j++) {
			const struct sockaddr_storage *ss = &sc->sockets[j].ss;
			struct netpolicy_listener *l = &nls[cfg->n_listeners];
			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *in = (const void *)ss;
				memcpy(l->addr, &in->sin_addr, 4);
				l->port = ntohs(in->sin_port);
			} else if (ss->ss_family == AF_INET6) {
				const struct sockaddr_in6 *in6 = (const void *)ss;
				memcpy(l->addr, &in6->sin6_addr, 16);
				l->port = ntohs(in6->sin6_port);
			} else {
				continue;
			}
			l->family = ss->ss_family;
			cfg->n_listeners++;
		}
	}
	return 0;
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
	return 0;
}

/* Some IPv4 socket of the policy holds this port: a [::]:P listener then
 * gets no IPv4 client (the IPv4 rules of P are that socket's). */
static bool v4_port_taken(const struct pst_policy *p, uint16_t port)
{
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		for (size_t j = 0; j < sc->n_listen; j++)
			if (sc->listen[j].ss.ss_family == AF_INET &&
			    sa_port(&sc->listen[j].ss) == port)
				return true;
		for (size_t j = 0; j < sc->n_sockets; j++)
			if (sc->sockets[j].ss.ss_family == AF_INET &&
			    sa_port(&sc->sockets[j].ss) == port)
				return true;
	}
	return false;
}

static struct netpolicy_cidr *cidrs_to_np(const struct pst_cidr *c, size_t n)
{
	struct netpolicy_cidr *o = calloc(n + 1, sizeof(*o));
	for (size_t i = 0; o && i < n; i++)
		cidr_to_np(&c[i], &o[i]);
	return o;
}

/* One access entry per TCP listen address with client address rules. */
static int np_access(const struct pst_policy *p, struct netpolicy_config *cfg)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_sandboxes; i++)
		n += p->sandboxes[i].trigger == PST_TRIGGER_LISTEN ? p->sandboxes[i].n_listen : 0;
	struct netpolicy_access *acc = calloc(n + 1, sizeof(*acc));
	if (!acc)
		return -ENOMEM;
	cfg->access = acc;
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		for (size_t j = 0; sc->trigger == PST_TRIGGER_LISTEN && j < sc->n_listen; j++) {
			const struct sockaddr_storage *ss = &sc->listen[j].ss;
			const struct pst_access *a = pst_listen_access(sc, j);
			if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
			    (!a->n_allow && !a->n_deny))
				continue;
			struct netpolicy_access *e = &acc[cfg->n_access++];
			e->sandbox = sc->name;
			e->listen_index = a == &sc->access ? -1 : (int)j;
			e->family = ss->ss_family;
			e->port = sa_port(ss);
			if (ss->ss_family == AF_INET) {
				memcpy(e->addr,
				       &((const struct sockaddr_in *)(const void *)ss)->sin_addr,
				       4);
			} else {
				const struct sockaddr_in6 *in6 = (const void *)ss;
				memcpy(e->addr, &in6->sin6_addr, 16);
				e->v4_too = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) &&
				            !v4_port_taken(p, e->port);
			}
			e->allow = cidrs_to_np(a->allow, a->n_allow);
			e->n_allow = a->n_allow;
			e->deny = cidrs_to_np(a->deny, a->n_deny);
			e->n_deny = a->n_deny;
			if (!e->allow || !e->deny)
				return -ENOMEM;
		}
	}
	return 0;
}

/* The netpolicy config of a policy; its arrays freed by plan_netpolicy_free()
 * (also after a failure). */
int plan_netpolicy(const struct pst_policy *p, struct netpolicy_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	struct netpolicy_sandbox *sbs = calloc(p->n_sandboxes + 1, sizeof(*sbs));
	if (!sbs)
		return -ENOMEM;
	cfg->table = p->broker.table;
	cfg->ifprefix = "pst";
	cfg->state_dir = p->broker.state_dir;
	cidr_to_np(&p->broker.sandbox_net, &cfg->pool4);
	cidr_to_np(&p->broker.sandbox_net6, &cfg->pool6);
	cfg->sandboxes = sbs;
	cfg->n_sandboxes = p->n_sandboxes;
	cfg->log = np_log;
	for (size_t i = 0; i < p->n_sandboxes; i++)
		if (np_rules(&p->sandboxes[i], &sbs[i]) < 0)
			return -ENOMEM;
	int r = np_listeners(p, cfg);
	return r < 0 ? r : np_access(p, cfg);
}

void plan_netpolicy_free(struct netpolicy_config *cfg)
{
	free((void *)cfg->listeners);
	cfg->listeners = NULL;
	for (size_t i = 0; cfg->access && i < cfg->n_access; i++) {
		free((void *)cfg->access[i].allow);
		free((void *)cfg->access[i].deny);
	}
	free((void *)cfg->access);
	cfg->access = NULL;
	if (!cfg->sandboxes)
		return;
	for (size_t i = 0; i < cfg->n_sandboxes; i++)
		free((void *)cfg->sandboxes[i].rules);
	free((void *)cfg->sandboxes);
	cfg->sandboxes = NULL;
}
