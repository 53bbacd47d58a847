/* SPDX-License-Identifier: MIT */
/*
 * netpolicy/ public header: sandbox networks, egress rules, and the
 * confinement of the sockets the broker hands to handlers.
 *
 * Per sandbox: one network namespace, kept open for the broker's life and
 * bind-mounted at STATE_DIR/netns/NAME (and, when that name is free, at
 * /run/netns/TABLE-NAME for `ip netns exec`); with egress, a veth pair (host
 * end in the caller's namespace), addresses from the v4/v6 pools, lo up,
 * default routes. All via rtnetlink (libmnl).
 *
 * Rules: one nftables table (family inet) owned by the broker, built and
 * replaced in one netlink batch (libnftnl + libmnl); the layout is in
 * rules.c. A forward base chain dispatches by input interface through a
 * verdict map to one chain per sandbox: established/related accepted, each
 * egress entry accepted, the rest rejected with a counter. New connections
 * toward sandbox interfaces are dropped in forward and output (nothing on
 * the broker host opens one either); nat postrouting masquerades.
 *
 * Handed-over sockets: an accepted connection (or a startup sandbox's
 * `sockets` listener) lives in the broker's network namespace, where the
 * sandbox rules do not apply. The broker marks each with SO_MARK
 * (netpolicy_mark_socket(); a handler cannot change a mark without
 * CAP_NET_ADMIN over the broker's namespace, dup() or not), and the table
 * refuses every TCP SYN a marked socket sends (output: it cannot connect
 * anywhere once dissolved with connect(AF_UNSPEC) or shutdown()), every
 * SYN toward a NETPOLICY_MARK_CONN socket (input: a dissolved connection,
 * which has lost its port, cannot become a listener), and every SYN toward
 * a NETPOLICY_MARK_LISTEN socket but on the addresses in
 * netpolicy_config.listeners (the connections a startup handler accepts
 * inherit its listener's mark, and could be dissolved and listen
 * elsewhere). Matched with `socket mark` (the nft_socket expression,
 * kernel CONFIG_NFT_SOCKET), which other rulesets cannot rewrite as they
 * can a packet's mark.
 *
 * State dir: root-owned, not writable by group or others, reached without
 * following a link that is not root's in a root-only directory, created
 * 0700 when missing, locked (flock on STATE/lock) by one broker, and holding
 * only postern's names. Start-up clean-up removes only what is recorded
 * there: STATE/netns/NAME mounts, STATE/aliases/ALIAS (an /run/netns alias
 * and its namespace's inode), STATE/forwarding (the forwarding sysctls as
 * they were before the broker changed them, restored at stop or by the
 * next start). Each mount is checked to be nsfs before it is unmounted.
 *
 * Knows nothing of JSON or libuv. Library code does not log: functions return
 * a negative errno and fill struct netpolicy_error: the step, the object it
 * acted on, and a msg ready to log, e.g.
 *   netpolicy: sandbox "db": add rule: Operation not supported
 * (step "add rule", object "sb_db").
 * Informational events (e.g. "forwarding enabled") go to the optional log
 * callback in the config.
 */
#ifndef POSTERN_NETPOLICY_H
#define POSTERN_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The error record (the same fields as sandbox's): what failed, on what. */
struct netpolicy_error {
	int err;          /* positive errno */
	char step[32];    /* "state dir", "netns", "add veth", "add rule", ... */
	char object[256]; /* what it acted on: a path, a sandbox, a chain, ... */
	char msg[512];    /* full, ready to log */
	bool applied;     /* netpolicy_reload(): failed after the new rules took
	                   * effect (see there) */
};

struct netpolicy_cidr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order */
	uint8_t prefix;
};

struct netpolicy_rule {
	struct netpolicy_cidr to;
	uint8_t proto;         /* 0 any, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP (icmp+icmpv6) */
	const uint16_t *ports; /* tcp/udp only; n_ports == 0: any */
	size_t n_ports;
};

/* Socket marks (SO_MARK) of the sockets the broker hands to handlers:
 * ASCII "pstc" and "pstl", compared whole. Chosen not to collide with the
 * small values and single bits other software uses as fwmarks (kube-proxy
 * 0x4000/0x8000, WireGuard 0xca6c, Tailscale 0xff0000 mask, Istio 1337); a
 * firewall that tests single bits of the packet mark may still see some of
 * these set on the traffic of handed-over connections. */
#define NETPOLICY_MARK_CONN 0x70737463u   /* "pstc": an accepted connection */
#define NETPOLICY_MARK_LISTEN 0x7073746cu /* "pstl": a startup sandbox's listener */

/* A listening socket handed to a startup handler (a `sockets` entry): the
 * only address where a socket marked NETPOLICY_MARK_LISTEN may accept
 * connections. */
struct netpolicy_listener {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order; all zero: any address */
	uint16_t port;    /* host byte order */
};

/* Who may connect to one of the broker's TCP listeners: checked on the
 * SYN in the input hook (access.c), before any accept. A client in deny,
 * or (n_allow > 0) not in allow, gets a reset, counted by the sandbox's
 * counter sb_NAME_addr. IPv4 CIDRs are matched against IPv4 clients and,
 * as ::ffff:a.b.c.d, against IPv4-mapped IPv6 sources. */
struct netpolicy_access {
	const char *sandbox;
	int family;       /* of the listener: AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order; all zero: any address */
	uint16_t port;    /* host byte order */
	bool v4_too;      /* a [::]:P listener that may be dual-stack: IPv4 SYNs to P too */
	int listen_index; /* lists of this address alone (its sets sb_NAME_lI_*), or -1:
	                   * the sandbox's (sets sb_NAME_allow4 ... shared by its addresses) */
	const struct netpolicy_cidr *allow; /* n_allow == 0: everyone not denied */
	size_t n_allow;
	const struct netpolicy_cidr *deny;
	size_t n_deny;
};

struct netpolicy_sandbox {
	const char *name; /* [a-z0-9][a-z0-9_-]{0,11} */
	const struct netpolicy_rule *rules;
	size_t n_rules; /* 0: namespace with lo only, no veth */
};

struct netpolicy_config {
	const char *table;           /* nftables table name, e.g. "postern" */
	const char *ifprefix;        /* host-side veth prefix, e.g. "pst"; with the name <= 15 */
	const char *state_dir;       /* e.g. "/run/postern"; see "State dir" above */
	struct netpolicy_cidr pool4; /* e.g. 100.127.0.0/16; a /30 per sandbox */
	struct netpolicy_cidr pool6; /* e.g. fd70:6f73::/48; a /64 per sandbox */
	const struct netpolicy_sandbox *sandboxes;
	size_t n_sandboxes;
	const struct netpolicy_listener *listeners; /* the `sockets` of startup sandboxes */
	size_t n_listeners;
	const struct netpolicy_access *access; /* client address rules of TCP listeners */
	size_t n_access;
	void (*log)(void *ctx, const char *msg); /* optional */
	void *log_ctx;
};

struct netpolicy; /* opaque */

struct netpolicy_counters {
	uint64_t denied_packets; /* reject counter of the sandbox chain */
	uint64_t accepted_new;   /* new connections accepted by egress rules */
};

/* Open, check and lock the state dir (refused with a message saying what is
 * wrong and how to fix it, before anything under it is touched), remove the
 * leftovers a previous instance recorded there (and its veths, by their
 * "postern:TABLE" alias, and its table), then create namespaces, veths,
 * addresses, routes and the table. On failure nothing is left behind. */
int netpolicy_create(const struct netpolicy_config *cfg, struct netpolicy **out,
                     struct netpolicy_error *err);

/* Network namespace fd of a sandbox (owned by netpolicy; do not close), or
 * -ENOENT. */
int netpolicy_netns_fd(const struct netpolicy *np, const char *sandbox);

/* Replace the whole configuration: networks of new sandboxes are made, the
 * ruleset is replaced in one batch, then networks of removed sandboxes go.
 * A failure up to the rules (a new sandbox's network, the batch) changes
 * nothing: the previous rules stay in force, np is unchanged, and
 * err->applied is false. Only re-making the network of a sandbox whose
 * egress came or went (it cannot be made beside the old one) can fail after
 * that: the new configuration is then in force, that sandbox has no network
 * (netpolicy_netns_fd() says -ENOENT: its handlers get an empty network
 * namespace), and err->applied is true. */
int netpolicy_reload(struct netpolicy *np, const struct netpolicy_config *cfg,
                     struct netpolicy_error *err);

/* The egress counters of a sandbox (-ENOENT without egress). */
int netpolicy_counters(struct netpolicy *np, const char *sandbox, struct netpolicy_counters *out,
                       struct netpolicy_error *err);

/* Connections to a sandbox's listeners refused by its client address
 * rules (netpolicy_access) since netpolicy_create, kept across reloads (a
 * reload replaces the table: the old counter is read into a base first;
 * what is refused between that read and the commit, microseconds, is
 * lost). 0 for a sandbox without rules. One netlink request answered at
 * once by the kernel, no dump: cheap enough for the broker's loop. */
int netpolicy_refused_address(struct netpolicy *np, const char *sandbox, uint64_t *out,
                              struct netpolicy_error *err);

/* Remove table, veths, namespaces and state; frees np. Errors are collected
 * into err (first one kept) but removal goes on. */
int netpolicy_destroy(struct netpolicy *np, struct netpolicy_error *err);

/* Removal of leftovers without a live instance: the state dir is checked
 * and locked as by netpolicy_create (-EBUSY while a broker holds it). */
int netpolicy_cleanup(const char *table, const char *ifprefix, const char *state_dir,
                      struct netpolicy_error *err);

/* Mark a socket about to be handed to a handler (SO_MARK: needs
 * CAP_NET_ADMIN): NETPOLICY_MARK_LISTEN for a listener, else
 * NETPOLICY_MARK_CONN. Only AF_INET/AF_INET6 sockets need it. */
int netpolicy_mark_socket(int fd, bool listener, struct netpolicy_error *err);

#endif
