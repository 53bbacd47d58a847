/* SPDX-License-Identifier: MIT */
/*
 * netpolicy/ public header: sandbox networks and egress rules.
 *
 * Per sandbox: one network namespace, kept open for the broker's life and
 * bind-mounted at STATE_DIR/netns/NAME; with egress, a veth pair (host end in
 * the caller's namespace), addresses from the v4/v6 pools, lo up, default
 * routes. All via rtnetlink (libmnl).
 *
 * Rules: one nftables table (family inet) owned by the broker, built and
 * replaced in one netlink batch (libnftnl + libmnl): a forward base chain
 * dispatching by input interface through a verdict map to one chain per
 * sandbox; established/related accepted; each egress entry accepted; the
 * rest rejected (icmpx admin-prohibited) with a counter; new connections
 * toward sandboxes dropped; nat postrouting masquerade.
 *
 * Knows nothing of JSON or libuv. Library code does not log: functions return
 * a negative errno and fill struct netpolicy_error, whose msg is ready to log:
 *   netpolicy: sandbox "db": add rule: Operation not supported
 * Informational events (e.g. "forwarding enabled") go to the optional log
 * callback in the config.
 */
#ifndef POSTERN_NETPOLICY_H
#define POSTERN_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netpolicy_error {
	int err;		/* positive errno */
	char msg[512];
};

struct netpolicy_cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network byte order */
	uint8_t prefix;
};

struct netpolicy_rule {
	struct netpolicy_cidr to;
	uint8_t proto;		/* 0 any, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP (icmp+icmpv6) */
	const uint16_t *ports;	/* tcp/udp only; n_ports == 0: any */
	size_t n_ports;
};

struct netpolicy_sandbox {
	const char *name;	/* [a-z0-9][a-z0-9_-]{0,11} */
	const struct netpolicy_rule *rules;
	size_t n_rules;		/* 0: namespace with lo only, no veth */
};

struct netpolicy_config {
	const char *table;	/* nftables table name, e.g. "postern" */
	const char *ifprefix;	/* host-side veth prefix, e.g. "pst"; with the name <= 15 */
	const char *state_dir;	/* e.g. "/run/postern"; netns mounts go to STATE_DIR/netns */
	struct netpolicy_cidr pool4;	/* e.g. 100.127.0.0/16; a /30 per sandbox */
	struct netpolicy_cidr pool6;	/* e.g. fd70:6f73::/48; a /64 per sandbox */
	const struct netpolicy_sandbox *sandboxes;
	size_t n_sandboxes;
	void (*log)(void *ctx, const char *msg);	/* optional */
	void *log_ctx;
};

struct netpolicy;		/* opaque */

struct netpolicy_counters {
	uint64_t denied_packets;	/* reject counter of the sandbox chain */
	uint64_t accepted_new;		/* new connections accepted by egress rules */
};

/* Remove leftovers of a previous instance (same table, prefix, state dir),
 * then create namespaces, veths, addresses, routes and the table. On failure
 * nothing is left behind. */
int netpolicy_create(const struct netpolicy_config *cfg, struct netpolicy **out,
		     struct netpolicy_error *err);

/* Network namespace fd of a sandbox (owned by netpolicy; do not close), or
 * -ENOENT. */
int netpolicy_netns_fd(const struct netpolicy *np, const char *sandbox);

/* Replace the whole configuration: networks of removed sandboxes go, new ones
 * come, and the ruleset is replaced in one batch. On failure the previous
 * rules stay in force and np is unchanged. */
int netpolicy_reload(struct netpolicy *np, const struct netpolicy_config *cfg,
		     struct netpolicy_error *err);

int netpolicy_counters(struct netpolicy *np, const char *sandbox, struct netpolicy_counters *out,
		       struct netpolicy_error *err);

/* Remove table, veths, namespaces and state; frees np. Errors are collected
 * into err (first one kept) but removal goes on. */
int netpolicy_destroy(struct netpolicy *np, struct netpolicy_error *err);

/* Removal of leftovers without a live instance (also used by create). */
int netpolicy_cleanup(const char *table, const char *ifprefix, const char *state_dir,
		      struct netpolicy_error *err);

#endif
