/* SPDX-License-Identifier: MIT */
/* netpolicy/ private header: what the files of the module share, one section per file. */
#ifndef POSTERN_NETPOLICY_INTERNAL_H
#define POSTERN_NETPOLICY_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "netpolicy/netpolicy.h"

struct mnl_socket;
struct nftnl_rule;
struct mnl_nlmsg_batch;

/* ---- cleanup helpers ---------------------------------------------------------------- */

static inline void np__closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void np__freep(void *p)
{
	free(*(void **)p);
}

void np__mnl_closep(struct mnl_socket **nl); /* links.c */

/* An fd closed, a buffer freed, a netlink socket closed at the end of its scope. */
#define _cleanup_close_ __attribute__((cleanup(np__closep)))
#define _cleanup_free_ __attribute__((cleanup(np__freep)))
#define _cleanup_mnl_ __attribute__((cleanup(np__mnl_closep)))

/* Close *fd now (if open) and leave -1 there. */
static inline void np_close(int *fd)
{
	np__closep(fd);
	*fd = -1;
}

/* Ownership handed off: the fd, with -1 left behind for the cleanup. */
static inline int np__take_fd(int *fd)
{
	int f = *fd;
	*fd = -1;
	return f;
}
#define TAKE_FD(fd) np__take_fd(&(fd))

/* ---- error.c: the error record ---------------------------------------------------------- */

/* Fill e (may be NULL): err (positive errno), step, object, and the message. */
__attribute__((format(printf, 5, 6))) void np_error(struct netpolicy_error *e, int err,
                                                    const char *step, const char *object,
                                                    const char *fmt, ...);

/* ---- netpolicy.c: the instance ------------------------------------------------------------ */

#define ALIAS_MAX 64 /* TABLE (32) + "-" + NAME (12) */

/* The network of one sandbox. */
struct np_sb {
	char name[16];
	uint64_t addr_base; /* refused_address counted by earlier tables (reloads) */
	char ifname[16];
	int netns_fd;
	unsigned slot;
	bool has_veth;
	char alias[ALIAS_MAX];   /* /run/netns/ALIAS made by us, or "" */
	unsigned long alias_ino; /* of the namespace mounted there */
};

struct netpolicy {
	char table[64];
	char prefix[8];
	char state_dir[PATH_MAX];
	int state_fd;    /* the state dir (O_DIRECTORY) */
	int lock_fd;     /* STATE/lock, flock'ed */
	int netns_dfd;   /* STATE/netns */
	int aliases_dfd; /* STATE/aliases */
	struct netpolicy_cidr pool4, pool6;
	struct np_sb *sbs;
	size_t n;
	bool forwarding;       /* needed and checked */
	bool fwd_changed;      /* by us: restored at destroy */
	char fwd4[4], fwd6[4]; /* as they were */
	void (*log)(void *, const char *);
	void *log_ctx;
};

/* An informational event to the config's log callback (np may be NULL). */
__attribute__((format(printf, 2, 3))) void np_say(struct netpolicy *np, const char *fmt, ...);

/* ---- state.c: the state dir, its lock and records ----------------------------------------- */

/* Open, check and (with create) make the state dir; *out: its fd. */
int np_state_open(const char *state, bool create, int *out, struct netpolicy_error *err);
/* It holds only postern's names. */
int np_state_entries_ok(int sfd, const char *state, struct netpolicy_error *err);
/* One broker per state dir: STATE/lock, flock'ed and holding the pid. */
int np_state_lock(int sfd, const char *state, int *out, struct netpolicy_error *err);
void np_state_unlock(int sfd, int *lock_fd);
/* A subdirectory, made if need be, opened without following a link; -errno. */
int np_state_subdir(int sfd, const char *name);
/* A small file below dfd read whole (NUL-terminated), written whole (via NAME.tmp). */
int np_read_small(int dfd, const char *name, char *buf, size_t len);
int np_write_small(int dfd, const char *name, const char *text);
/* A name postern writes below the state dir or /run/netns: table and
 * sandbox characters only (so never "." or ".."). */
bool np_own_name(const char *n);

/* ---- netns.c: namespaces, their mounts and /run/netns aliases ----------------------------- */

/* "/proc/self/fd/N": how mount(2) and umount2(2) reach what an fd holds. */
const char *np_fd_path(int fd, char buf[32]);
/* A fresh network namespace, lo up, bind-mounted at DFD/NAME; *out its fd. */
int np_netns_new(int dfd, const char *name, int *out, struct netpolicy_error *err);
/* Remove the nsfs mount DFD/NAME (of that inode, when ino), and its file. */
int np_ns_remove_at(int dfd, const char *name, unsigned long ino, bool empty_ok);
void np_alias_add(struct netpolicy *np, struct np_sb *s);
void np_alias_remove(int aliases_dfd, const char *name, unsigned long ino);
/* What an earlier instance recorded in the state dir sfd: its aliases, its mounts. */
void np_aliases_clean(int sfd);
void np_netns_mounts_clean(int sfd);

/* ---- links.c: veths, addresses, routes (rtnetlink) ------------------------------------------ */

/* Address plan: the n-th /30 of pool4 and /64 of pool6 (pure, unit-tested). */
int np_addr4(const struct netpolicy_cidr *pool, unsigned slot, unsigned host, uint8_t out[4]);
int np_addr6(const struct netpolicy_cidr *pool, unsigned slot, unsigned host, uint8_t out[16]);
int np_ifname(const char *prefix, const char *sandbox, char out[16]);
/* A rtnetlink socket of the caller's network namespace, or NULL (errno). */
struct mnl_socket *np_nl_open(void);
int np_link_up(struct mnl_socket *nl, const char *name);
int np_link_del(struct mnl_socket *nl, const char *name);
/* The veth of sandbox s (host end in ours, eth0 in its namespace),
 * addresses and default routes. */
int np_veth_up(const struct netpolicy *np, struct np_sb *s, struct netpolicy_error *err);
/* Delete the veths named ifprefix* whose alias is "postern:TABLE". */
void np_links_del_owned(const char *ifprefix, const char *table);

/* ---- sysctl.c: forwarding ----------------------------------------------------------------- */

/* Forwarding on when some sandbox has egress, the values before recorded. */
int np_fwd_set(struct netpolicy *np, const struct netpolicy_config *cfg,
               struct netpolicy_error *err);
/* Back to what they were (np's, or those recorded in the state dir sfd). */
void np_fwd_restore(struct netpolicy *np);
void np_fwd_restore_recorded(struct netpolicy *np, int sfd);

/* ---- nft.c: nftables messages, expressions, the batch over netlink -------------------- */

/* What a message of a batch does, for error messages. */
struct np_what {
	char desc[96];   /* "add chain forward", "sandbox \"db\": add rule", ... */
	char step[16];   /* "add table", "add chain", "add rule", ... */
	char object[64]; /* the table, chain, set or counter */
};

struct np_batch {
	struct mnl_nlmsg_batch *b;
	char *buf;
	size_t buflen;
	uint32_t seq, first_seq;
	const char *table;
	struct np_what *what; /* one per message that is acked */
	size_t n_what, cap_what;
	uint32_t set_id;
};

/* A batch for about msgs messages, begun; finished into one buffer. */
int np_batch_start(struct np_batch *b, const char *table, size_t msgs);
int np_batch_finish(struct np_batch *b, void **out_buf, size_t *out_len, struct np_what **out_what,
                    size_t *out_n, uint32_t *first_seq);
void np_batch_free(struct np_batch *b);
__attribute__((format(printf, 4, 5))) void np_what(struct np_batch *b, const char *step,
                                                   const char *object, const char *fmt, ...);
struct nlmsghdr *np_hdr(struct np_batch *b, uint16_t type, uint16_t flags);
void np_table_msg(struct np_batch *b, uint16_t type, uint16_t flags);
void np_chain_msg(struct np_batch *b, const char *name, const char *type, int hook, int prio);
void np_counter_msg(struct np_batch *b, const char *name);
struct nftnl_rule *np_rule_new(struct np_batch *b, const char *chain);
void np_rule_msg(struct np_batch *b, struct nftnl_rule *r, const char *desc);
/* Expressions (they load into register 1 and compare it). */
void np_e_meta(struct nftnl_rule *r, uint32_t key);
void np_e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len);
void np_e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len);
void np_e_bitwise(struct nftnl_rule *r, const void *mask, uint32_t len);
void np_e_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id, bool vmap);
void np_e_lookup_inv(struct nftnl_rule *r, const char *set, uint32_t set_id); /* != @set */
void np_e_ct_state(struct nftnl_rule *r, uint32_t bits);
void np_e_verdict(struct nftnl_rule *r, int verdict);
void np_e_jump(struct nftnl_rule *r, const char *chain);
void np_e_counter(struct nftnl_rule *r, const char *named);
void np_e_reject(struct nftnl_rule *r, bool tcp_reset);
void np_e_socket_mark(struct nftnl_rule *r, uint32_t mark);
void np_e_tcp_syn(struct nftnl_rule *r);
void np_e_l4proto(struct nftnl_rule *r, uint8_t proto);
void np_e_nfproto(struct nftnl_rule *r, uint8_t nfproto);
/* Send a finished batch, collect one ack per message; the first error,
 * with the message it answers, into err. */
int np_batch_send(const char *table, const void *buf, size_t len, const struct np_what *what,
                  size_t n_what, uint32_t first, struct netpolicy_error *err);
/* One named counter's packets; a negative errno for the caller to report. */
int np_counter_read(const char *table, const char *name, uint64_t *pkts);

/* ---- sets.c: sets and their elements ---------------------------------------------------- */

/* A sandbox's egress entries of one kind (family, protocol, ports), SET_MIN
 * or more, into interval sets, each with its accept rules; done[k] marks
 * the entries handled so. */
void np_egress_sets(struct np_batch *b, const struct netpolicy_sandbox *s, const char *chain,
                    const char *acc, const char *desc, bool *done);

/* The addresses of family v4 (ip, else ip6) in allow[n_allow] (every one
 * when n_allow is 0) and not in deny[n_deny]: NP_PERMIT_ALL or
 * NP_PERMIT_NONE (no set made), or NP_PERMIT_SET with the interval set
 * NAME made and its id in *id; -ENOMEM. */
enum { NP_PERMIT_NONE, NP_PERMIT_ALL, NP_PERMIT_SET };
int np_permit_set(struct np_batch *b, const char *name, bool v4, const struct netpolicy_cidr *allow,
                  size_t n_allow, const struct netpolicy_cidr *deny, size_t n_deny, uint32_t *id);

/* ---- access.c: client address rules of the broker's listeners ----------------------------- */

/* Sets, counters and rules of a[n] into chain `chain` (an input base chain). */
int np_access_rules(struct np_batch *b, const char *chain, const struct netpolicy_access *a,
                    size_t n);
/* Messages np_access_rules() may add. */
size_t np_access_msgs(const struct netpolicy_access *a, size_t n);

/* ---- rules.c: the ruleset ----------------------------------------------------------------- */

/* One sandbox as the ruleset sees it. */
struct np_rules_sb {
	const struct netpolicy_sandbox *cfg;
	char ifname[16]; /* host end of its veth */
	bool has_veth;
};

/* The rules of sandboxes sbs[n] and of the handed-over listeners ls[n_ls]. */
struct np_rules_in {
	const struct netpolicy_listener *ls; /* handed-over listeners */
	size_t n_ls;
	const struct netpolicy_access *acc; /* client address rules */
	size_t n_acc;
};
int np_rules_build(const char *table, const struct np_rules_sb *sbs, size_t n,
                   const struct np_rules_in *in, void **out_buf, size_t *out_len,
                   struct np_what **out_what, size_t *out_n, uint32_t *first_seq, bool remove_only);
int np_rules_commit(const char *table, const struct np_rules_sb *sbs, size_t n,
                    const struct np_rules_in *in, bool remove_only, struct netpolicy_error *err);

#endif
