/* SPDX-License-Identifier: MIT */
/* netpolicy/ private header. */
#ifndef POSTERN_NETPOLICY_INTERNAL_H
#define POSTERN_NETPOLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netpolicy/netpolicy.h"

/* One sandbox as the ruleset sees it. */
struct np_rules_sb {
	const struct netpolicy_sandbox *cfg;
	char ifname[16];	/* host end of its veth */
	bool has_veth;
};

__attribute__((format(printf, 3, 4))) void np_error(struct netpolicy_error *e, int err,
						       const char *fmt, ...);

/* The rules of sandboxes sbs[n] and of the handed-over listeners ls[n_ls]. */
int np_rules_build(const char *table, const struct np_rules_sb *sbs, size_t n,
		   const struct netpolicy_listener *ls, size_t n_ls, void **out_buf, size_t *out_len,
		   char (**out_what)[96], size_t *out_n, uint32_t *first_seq, bool remove_only);
int np_rules_commit(const char *table, const struct np_rules_sb *sbs, size_t n,
		    const struct netpolicy_listener *ls, size_t n_ls, bool remove_only,
		    struct netpolicy_error *err);
int np_counter_read(const char *table, const char *name, uint64_t *pkts);

/* Address plan: the n-th /30 of pool4 and /64 of pool6 (pure, unit-tested). */
int np_addr4(const struct netpolicy_cidr *pool, unsigned slot, unsigned host, uint8_t out[4]);
int np_addr6(const struct netpolicy_cidr *pool, unsigned slot, unsigned host, uint8_t out[16]);
int np_ifname(const char *prefix, const char *sandbox, char out[16]);

#endif
