/* SPDX-License-Identifier: MIT */
/*
 * The public API of netpolicy/ (netpolicy.h): an instance's life. Create:
 * the state dir checked and locked (state.c), what an earlier instance of
 * the table left removed, then per sandbox a namespace (netns.c) and with
 * egress a veth (links.c), forwarding (sysctl.c), and the ruleset in one
 * transaction (rules.c). Reload, counters, destroy, and the clean-up of
 * leftovers without an instance.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>

#include "netpolicy/internal.h"

void np_say(struct netpolicy *np, const char *fmt, ...)
{
	char m[384];
	va_list ap;
	if (!np || !np->log)
		return;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	np->log(np->log_ctx, m);
}

static int check_config(const struct netpolicy_config *cfg, struct netpolicy_error *err)
{
	char ifn[16];
	if (!cfg->table || !cfg->table[0] || !cfg->ifprefix || !cfg->state_dir) {
		np_error(err, EINVAL, "config",
		         !cfg->table || !cfg->table[0] ? "table"
		         : !cfg->ifprefix              ? "ifprefix"
		                                       : "state_dir",
		         "netpolicy: table, interface prefix and state directory are required");
		return -EINVAL;
	}
	if (!np_own_name(cfg->table) || strlen(cfg->table) > 32) {
		np_error(err, EINVAL, "config", cfg->table,
		         "netpolicy: table \"%s\": not a valid table name", cfg->table);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		const char *name = cfg->sandboxes[i].name;
		if (!np_own_name(name) || strlen(name) > 12) {
			np_error(err, EINVAL, "config", name,
			         "netpolicy: sandbox \"%s\": not a valid sandbox name", name);
			return -EINVAL;
		}
		if (np_ifname(cfg->ifprefix, name, ifn) < 0) {
			np_error(err, ENAMETOOLONG, "config", name,
			         "netpolicy: sandbox \"%s\": interface name %s%s: %s", name,
			         cfg->ifprefix, name, strerror(ENAMETOOLONG));
			return -ENAMETOOLONG;
		}
	}
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].family != AF_INET && cfg->listeners[i].family != AF_INET6) {
			np_error(err, EAFNOSUPPORT, "config", "listener",
			         "netpolicy: handed-over listener %zu: %s", i,
			         strerror(EAFNOSUPPORT));
			return -EAFNOSUPPORT;
		}
	return 0;
}

/* The ruleset for a config. */
static int commit(const struct netpolicy_config *cfg, struct netpolicy_error *err)
{
	_cleanup_free_ struct np_rules_sb *rs = calloc(cfg->n_sandboxes + 1, sizeof(*rs));
	if (!rs) {
		np_error(err, ENOMEM, "build ruleset", cfg->table, "netpolicy: table \"%s\": %s",
		         cfg->table, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		rs[i].cfg = &cfg->sandboxes[i];
		np_ifname(cfg->ifprefix, cfg->sandboxes[i].name, rs[i].ifname);
		rs[i].has_veth = cfg->sandboxes[i].n_rules > 0;
	}
	struct np_rules_in in = {cfg->listeners, cfg->n_listeners, cfg->access, cfg->n_access};
	return np_rules_commit(cfg->table, rs, cfg->n_sandboxes, &in, false, err);
}

/* ---- a sandbox's network ------------------------------------------------------------------- */

/* Its namespace, and with egress its veth. */
static int sb_up(struct netpolicy *np, struct np_sb *s, bool egress, struct netpolicy_error *err)
{
	int r = np_netns_new(np->netns_dfd, s->name, &s->netns_fd, err);
	if (r < 0) {
		s->netns_fd = -1;
		return r;
	}
	np_alias_add(np, s); /* a convenience: its absence is not an error */
	return egress ? np_veth_up(np, s, err) : 0;
}

static void sb_down(struct netpolicy *np, struct np_sb *s)
{
	if (s->has_veth) {
		_cleanup_mnl_ struct mnl_socket *nl = np_nl_open();
		if (nl)
			np_link_del(nl, s->ifname);
		s->has_veth = false;
	}
	if (s->alias[0])
		np_alias_remove(np->aliases_dfd, s->alias, s->alias_ino);
	s->alias[0] = 0;
	np_close(&s->netns_fd);
	if (s->name[0] && np->netns_dfd >= 0)
		np_ns_remove_at(np->netns_dfd, s->name, 0, true);
}

static struct np_sb *find(struct netpolicy *np, const char *name)
{
	for (size_t i = 0; i < np->n; i++)
		if (!strcmp(np->sbs[i].name, name))
			return &np->sbs[i];
	return NULL;
}

/* What an earlier instance of this table left: its table, its veths (by
 * their alias), and what it recorded in the state dir sfd (locked by the
 * caller). Never a name-prefix match under /run/netns. */
static int cleanup_at(struct netpolicy *np, const char *table, const char *ifprefix, int sfd,
                      struct netpolicy_error *err)
{
	int r = np_rules_commit(table, NULL, 0, NULL, true, err);
	np_links_del_owned(ifprefix, table);
	if (sfd < 0)
		return r;
	np_aliases_clean(sfd);
	np_netns_mounts_clean(sfd);
	np_fwd_restore_recorded(np, sfd);
	return r;
}

/* ---- public ------------------------------------------------------------------------- */

int netpolicy_mark_socket(int fd, bool listener, struct netpolicy_error *err)
{
	uint32_t mark = listener ? NETPOLICY_MARK_LISTEN : NETPOLICY_MARK_CONN;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		int e = errno;
		np_error(err, e, "mark", listener ? "listener" : "connection",
		         "netpolicy: mark the handed-over %s (SO_MARK 0x%08x): %s",
		         listener ? "listener" : "connection", mark, strerror(e));
		return -e;
	}
	return 0;
}

int netpolicy_cleanup(const char *table, const char *ifprefix, const char *state_dir,
                      struct netpolicy_error *err)
{
	int sfd = -1, lock = -1, r;
	if ((r = np_state_open(state_dir, false, &sfd, err)) < 0) {
		if (r != -ENOENT)
			return r;
		/* no state dir: only the table and the veths */
		return cleanup_at(NULL, table, ifprefix, -1, err);
	}
	if ((r = np_state_entries_ok(sfd, state_dir, err)) < 0 ||
	    (r = np_state_lock(sfd, state_dir, &lock, err)) < 0) {
		close(sfd);
		return r;
	}
	r = cleanup_at(NULL, table, ifprefix, sfd, err);
	unlinkat(sfd, "netns", AT_REMOVEDIR);
	unlinkat(sfd, "aliases", AT_REMOVEDIR);
	np_state_unlock(sfd, &lock);
	close(sfd);
	return r;
}

static struct netpolicy *np_new(const struct netpolicy_config *cfg)
{
	struct netpolicy *np = calloc(1, sizeof(*np));
	if (!np || !(np->sbs = calloc(cfg->n_sandboxes + 1, sizeof(*np->sbs)))) {
		free(np);
		return NULL;
	}
	snprintf(np->table, sizeof(np->table), "%s", cfg->table);
	snprintf(np->prefix, sizeof(np->prefix), "%s", cfg->ifprefix);
	snprintf(np->state_dir, sizeof(np->state_dir), "%s", cfg->state_dir);
	np->state_fd = np->lock_fd = np->netns_dfd = np->aliases_dfd = -1;
	np->pool4 = cfg->pool4;
	np->pool6 = cfg->pool6;
	np->log = cfg->log;
	np->log_ctx = cfg->log_ctx;
	return np;
}

/* The state dir before anything: checked, postern's own, ours alone; then
 * the leftovers of an instance that died without cleaning up are removed,
 * and the subdirectories made. */
static int state_take(struct netpolicy *np, struct netpolicy_error *err)
{
	int r;
	if ((r = np_state_open(np->state_dir, true, &np->state_fd, err)) < 0 ||
	    (r = np_state_entries_ok(np->state_fd, np->state_dir, err)) < 0 ||
	    (r = np_state_lock(np->state_fd, np->state_dir, &np->lock_fd, err)) < 0)
		return r;
	struct netpolicy_error cerr = {0};
	cleanup_at(np, np->table, np->prefix, np->state_fd, &cerr);
	if ((np->netns_dfd = np_state_subdir(np->state_fd, "netns")) < 0 ||
	    (np->aliases_dfd = np_state_subdir(np->state_fd, "aliases")) < 0) {
		const char *sub = np->netns_dfd < 0 ? "netns" : "aliases";
		r = np->netns_dfd < 0 ? np->netns_dfd : np->aliases_dfd;
		np_error(err, -r, "state dir", sub, "netpolicy: state dir %s: create %s: %s",
		         np->state_dir, sub, strerror(-r));
		return r;
	}
	return 0;
}

int netpolicy_create(const struct netpolicy_config *cfg, struct netpolicy **out,
                     struct netpolicy_error *err)
{
	int r = check_config(cfg, err);
	*out = NULL;
	if (r < 0)
		return r;
	struct netpolicy *np = np_new(cfg);
	if (!np) {
		np_error(err, ENOMEM, "create", cfg->table, "netpolicy: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	if ((r = state_take(np, err)) < 0) {
		if (np->lock_fd < 0) {
			/* refused before anything under it was touched */
			np_close(&np->state_fd);
			free(np->sbs);
			free(np);
			return r;
		}
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		struct np_sb *s = &np->sbs[np->n++];
		snprintf(s->name, sizeof(s->name), "%s", cfg->sandboxes[i].name);
		np_ifname(np->prefix, s->name, s->ifname);
		s->slot = (unsigned)i;
		s->netns_fd = -1;
		if ((r = sb_up(np, s, cfg->sandboxes[i].n_rules > 0, err)) < 0)
			goto fail;
	}
	if ((r = np_fwd_set(np, cfg, err)) < 0 || (r = commit(cfg, err)) < 0)
		goto fail;
	*out = np;
	return 0;
fail:;
	struct netpolicy_error e2 = {0};
	netpolicy_destroy(np, &e2);
	return r;
}

int netpolicy_netns_fd(const struct netpolicy *np, const char *sandbox)
{
	for (size_t i = 0; i < np->n; i++)
		if (!strcmp(np->sbs[i].name, sandbox))
			return np->sbs[i].netns_fd >= 0 ? np->sbs[i].netns_fd : -ENOENT;
	return -ENOENT;
}

/* A slot (address plan) not used by any kept or new sandbox. */
static unsigned free_slot(const struct netpolicy *np, const struct np_sb *nsb, size_t n_new)
{
	for (unsigned slot = 0;; slot++) {
		bool used = false;
		for (size_t k = 0; k < n_new; k++)
			used |= nsb[k].slot == slot;
		for (size_t k = 0; k < np->n; k++)
			used |= np->sbs[k].name[0] && np->sbs[k].slot == slot;
		if (!used)
			return slot;
	}
}

/* The networks for a reloaded config into nsb: those of sandboxes that stay
 * (with the same egress or none) moved over, new ones made. */
/* Networks of sandboxes that are new by name: made beside the old ones
 * (nothing runs in them yet, so the rules can follow). A failure takes
 * down what this call made. */
static int reload_new_networks(struct netpolicy *np, const struct netpolicy_config *cfg,
                               struct np_sb *nsb, struct netpolicy_error *err)
{
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		const struct netpolicy_sandbox *c = &cfg->sandboxes[i];
		struct np_sb *s = &nsb[i];
		s->netns_fd = -1;
		if (find(np, c->name))
			continue;
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		np_ifname(np->prefix, s->name, s->ifname);
		s->slot = free_slot(np, nsb, i);
		int r = sb_up(np, s, c->n_rules > 0, err);
		if (r < 0) {
			for (size_t j = 0; j <= i; j++)
				if (nsb[j].name[0] && !find(np, nsb[j].name))
					sb_down(np, &nsb[j]);
			return r;
		}
	}
	return 0;
}

/* With the new rules in force: the sandboxes that stay keep their
 * networks; one whose egress came or went gets its network made anew (it
 * cannot live beside the old one: the same names); removed ones go. A
 * failure here leaves that sandbox without a network: its handlers get an
 * empty network namespace (fail closed). */
static int reload_switch(struct netpolicy *np, const struct netpolicy_config *cfg,
                         struct np_sb *nsb, struct netpolicy_error *err)
{
	int r = 0;
	for (size_t i = 0; i < cfg->n_sandboxes; i++) {
		const struct netpolicy_sandbox *c = &cfg->sandboxes[i];
		struct np_sb *old = find(np, c->name);
		if (!old)
			continue; /* new: made by reload_new_networks() */
		bool egress = c->n_rules > 0;
		if (old->has_veth == egress) {
			nsb[i] = *old;
			old->netns_fd = -1; /* moved */
			old->name[0] = 0;
			old->alias[0] = 0;
			continue;
		}
		uint64_t base = old->addr_base;
		sb_down(np, old);
		old->name[0] = 0;
		struct np_sb *s = &nsb[i];
		s->addr_base = base;
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		np_ifname(np->prefix, s->name, s->ifname);
		s->netns_fd = -1;
		s->slot = free_slot(np, nsb, i);
		int e = sb_up(np, s, egress, r < 0 ? NULL : err);
		if (e < 0) {
			sb_down(np, s); /* what of it was made; its name stays, unreachable */
			r = r < 0 ? r : e;
		}
	}
	/* networks of removed sandboxes go */
	for (size_t i = 0; i < np->n; i++)
		if (np->sbs[i].name[0])
			sb_down(np, &np->sbs[i]);
	return r;
}

/* The sb_NAME_addr counter of the table in force; 0 when it has none. */
static uint64_t addr_counter(const struct netpolicy *np, const char *sandbox)
{
	char name[64];
	uint64_t v = 0;
	snprintf(name, sizeof(name), "sb_%s_addr", sandbox);
	return np_counter_read(np->table, name, &v) == 0 ? v : 0;
}

int netpolicy_reload(struct netpolicy *np, const struct netpolicy_config *cfg,
                     struct netpolicy_error *err)
{
	if (err)
		err->applied = false;
	int r = check_config(cfg, err);
	if (r < 0)
		return r;
	if (strcmp(cfg->table, np->table)) {
		np_error(err, EINVAL, "config", cfg->table,
		         "netpolicy: the table name cannot change on reload");
		return -EINVAL;
	}
	_cleanup_free_ struct np_sb *nsb = calloc(cfg->n_sandboxes + 1, sizeof(*nsb));
	if (!nsb) {
		np_error(err, ENOMEM, "reload", cfg->table, "netpolicy: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	/* what can fail first, beside what is in force: new networks, then
	 * the rules in one transaction; either failing changes nothing */
	_cleanup_free_ uint64_t *refused = calloc(np->n + 1, sizeof(*refused));
	if (!refused) {
		np_error(err, ENOMEM, "reload", cfg->table, "netpolicy: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	if ((r = reload_new_networks(np, cfg, nsb, err)) < 0)
		return r;
	/* the refused_address counters of the table about to go */
	for (size_t i = 0; i < np->n; i++)
		refused[i] = addr_counter(np, np->sbs[i].name);
	if ((r = commit(cfg, err)) < 0) {
		for (size_t i = 0; i < cfg->n_sandboxes; i++)
			if (nsb[i].name[0])
				sb_down(np, &nsb[i]);
		return r;
	}
	for (size_t i = 0; i < np->n; i++)
		np->sbs[i].addr_base += refused[i];
	r = reload_switch(np, cfg, nsb, err);
	free(np->sbs);
	np->sbs = nsb;
	nsb = NULL;
	np->n = cfg->n_sandboxes;
	np_fwd_set(np, cfg, r < 0 ? NULL : err);
	if (r < 0 && err)
		err->applied = true;
	return r;
}

int netpolicy_counters(struct netpolicy *np, const char *sandbox, struct netpolicy_counters *out,
                       struct netpolicy_error *err)
{
	char name[64];
	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "sb_%s_rej", sandbox);
	int r = np_counter_read(np->table, name, &out->denied_packets);
	if (r == 0) {
		snprintf(name, sizeof(name), "sb_%s_acc", sandbox);
		r = np_counter_read(np->table, name, &out->accepted_new);
	}
	if (r < 0)
		np_error(err, -r, "read counter", name,
		         "netpolicy: sandbox \"%s\": read counter %s: %s", sandbox, name,
		         strerror(-r));
	return r;
}

int netpolicy_refused_address(struct netpolicy *np, const char *sandbox, uint64_t *out,
                              struct netpolicy_error *err)
{
	char name[64];
	uint64_t v = 0;
	struct np_sb *s = find(np, sandbox);
	*out = s ? s->addr_base : 0;
	snprintf(name, sizeof(name), "sb_%s_addr", sandbox);
	int r = np_counter_read(np->table, name, &v);
	if (r == -ENOENT)
		return 0; /* no client address rules now */
	if (r < 0) {
		np_error(err, -r, "read counter", name,
		         "netpolicy: sandbox \"%s\": read counter %s: %s", sandbox, name,
		         strerror(-r));
		return r;
	}
	*out += v;
	return 0;
}

int netpolicy_destroy(struct netpolicy *np, struct netpolicy_error *err)
{
	if (!np)
		return 0;
	int r = np_rules_commit(np->table, NULL, 0, NULL, true, err);
	for (size_t i = 0; i < np->n; i++)
		sb_down(np, &np->sbs[i]);
	np_fwd_restore(np);
	np_close(&np->netns_dfd);
	np_close(&np->aliases_dfd);
	if (np->state_fd >= 0) {
		unlinkat(np->state_fd, "netns", AT_REMOVEDIR);
		unlinkat(np->state_fd, "aliases", AT_REMOVEDIR);
		np_state_unlock(np->state_fd, &np->lock_fd);
	}
	np_close(&np->state_fd);
	free(np->sbs);
	free(np);
	return r;
}
