/* SPDX-License-Identifier: MIT */
/*
 * The policy's trigger section, and what belongs to listening: a sandbox's
 * trigger (listen, pipe, fdpass, startup), its listen entries (an address,
 * or an object with the address's own client lists and, for unix sockets,
 * the file's mode, owner, group and the peers allowed), address lists
 * (sockets) and client CIDR lists (allow_from, deny_from). As every
 * section parser (policy_sandbox.c): a value refused for what it cannot be
 * on its own; what may not be together is policy_verify.c's.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cJSON.h>

#include "broker/policy_internal.h"

void pol_parse_addr_list(struct pol_ctx *c, const char *path, const cJSON *v,
                         struct pst_sockaddr **out, size_t *n)
{
	if (!pol_is_array(c, path, v, true))
		return;
	size_t cnt = (size_t)cJSON_GetArraySize(v), i = 0;
	*out = calloc(cnt, sizeof(**out));
	if (!*out) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i++);
		if (pol_get_sockaddr(c, p, it, "an address string", &(*out)[*n]))
			(*n)++;
	}
}

/* ---- access lists ------------------------------------------------------------ */

/* ::ffff:a.b.c.d/96+n is the IPv4 a.b.c.d/n: the IPv4 lists are the ones
 * matched against such clients (netpolicy/access.c). */
static void cidr_unmap(struct pst_cidr *x)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (x->family != AF_INET6 || x->prefix < 96 || memcmp(x->addr, mapped, 12))
		return;
	memmove(x->addr, x->addr + 12, 4);
	memset(x->addr + 4, 0, 12);
	x->family = AF_INET;
	x->prefix = (uint8_t)(x->prefix - 96);
}

/* allow_from / deny_from: an array of CIDRs (a plain address is a /32 or
 * /128); host bits refused as in egress. */
void pol_parse_cidr_list(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_cidr **out,
                         size_t *n)
{
	if (!pol_is_array(c, path, v, false))
		return;
	free(*out);
	*n = 0;
	*out = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(**out));
	if (!*out) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i++);
		struct pst_cidr x;
		if (!pol_get_cidr(c, p, it, "a CIDR string such as \"10.0.0.0/8\"", &x))
			continue;
		cidr_unmap(&x);
		(*out)[(*n)++] = x;
	}
}

/* "0660": permission bits, octal, no set-id or sticky bit. */
static void listen_mode(struct pol_ctx *c, const char *path, const cJSON *v,
                        struct pst_listen_opt *o)
{
	const char *m = cJSON_IsString(v) ? v->valuestring : NULL;
	size_t n = m ? strlen(m) : 0;
	bool ok = n >= 3 && n <= 4 && (n == 3 || m[0] == '0');
	for (size_t k = 0; ok && k < n; k++)
		ok = m[k] >= '0' && m[k] <= '7';
	if (!ok) {
		pol_err(c, path, v, "must be an octal mode string such as \"0660\" (at most 0777)");
		return;
	}
	o->mode = (uint32_t)strtoul(m, NULL, 8);
	o->has_mode = true;
}

/* A user or group: a name resolved now, or a number. */
static bool listen_id(struct pol_ctx *c, const char *path, const cJSON *v, bool group,
                      uint32_t *out)
{
	if (cJSON_IsNumber(v))
		return pol_get_u32(c, path, v, 0, POL_UID_MAX, out);
	if (!cJSON_IsString(v) || !v->valuestring[0]) {
		pol_type_err(c, path, v, group ? "a group name or gid" : "a user name or uid");
		return false;
	}
	char *end;
	unsigned long x = strtoul(v->valuestring, &end, 10);
	if (isdigit((unsigned char)v->valuestring[0]) && !*end && x <= POL_UID_MAX) {
		*out = (uint32_t)x;
		return true;
	}
	if (group) {
		struct group *g = getgrnam(v->valuestring);
		if (g) {
			*out = (uint32_t)g->gr_gid;
			return true;
		}
	} else {
		struct passwd *pw = getpwnam(v->valuestring);
		if (pw) {
			*out = (uint32_t)pw->pw_uid;
			return true;
		}
	}
	pol_err(c, path, v, "no such %s on this host (add it, or give a number)",
	        group ? "group" : "user");
	return false;
}

static void listen_ids(struct pol_ctx *c, const char *path, const cJSON *v, bool group,
                       uint32_t **out, size_t *n)
{
	if (!pol_is_array(c, path, v, false))
		return;
	*out = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(**out));
	if (!*out) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i++);
		if (listen_id(c, p, it, group, &(*out)[*n]))
			(*n)++;
	}
}

/* One `trigger.listen` object: its address, and either TCP access lists or
 * the unix socket's file and peer settings. */
static bool listen_object(struct pol_ctx *c, const char *path, const cJSON *e,
                          struct pst_sockaddr *a, struct pst_listen_opt *o)
{
	static const char *const keys[] = {"address", "allow_from", "deny_from",  "mode", "owner",
	                                   "group",   "allow_uids", "allow_gids", NULL};
	static const char *const tcp_keys[] = {"allow_from", "deny_from", NULL};
	static const char *const unix_keys[] = {"mode",       "owner",      "group",
	                                        "allow_uids", "allow_gids", NULL};
	char q[POL_PATH_MAX];
	pol_check_keys(c, path, e, keys);
	pol_join(q, path, "address");
	const cJSON *addr = pol_item(e, "address");
	if (!addr) {
		pol_err(c, path, NULL, "missing required key \"address\"");
		return false;
	}
	if (!pol_get_sockaddr(c, q, addr, "an address string", a))
		return false;
	bool is_unix = a->ss.ss_family == AF_UNIX;
	const char *const *wrong = is_unix ? tcp_keys : unix_keys;
	for (size_t k = 0; wrong[k]; k++)
		if (pol_item(e, wrong[k])) {
			pol_join(q, path, wrong[k]);
			pol_err(c, q, NULL, "%s",
			        is_unix ? "only a TCP address has client address "
			                  "rules (a unix socket: allow_uids, allow_gids)"
			                : "only a unix socket address has a file mode, "
			                  "owner, group and peer uids/gids");
			return false;
		}
	const cJSON *x;
	if ((x = pol_item(e, "allow_from"))) {
		pol_join(q, path, "allow_from");
		pol_parse_cidr_list(c, q, x, &o->access.allow, &o->access.n_allow);
		o->own_access = true;
	}
	if ((x = pol_item(e, "deny_from"))) {
		pol_join(q, path, "deny_from");
		pol_parse_cidr_list(c, q, x, &o->access.deny, &o->access.n_deny);
		o->own_access = true;
	}
	if ((x = pol_item(e, "mode"))) {
		pol_join(q, path, "mode");
		listen_mode(c, q, x, o);
	}
	if ((x = pol_item(e, "owner"))) {
		pol_join(q, path, "owner");
		o->has_owner = listen_id(c, q, x, false, &o->owner);
	}
	if ((x = pol_item(e, "group"))) {
		pol_join(q, path, "group");
		o->has_group = listen_id(c, q, x, true, &o->group);
	}
	if ((x = pol_item(e, "allow_uids"))) {
		pol_join(q, path, "allow_uids");
		listen_ids(c, q, x, false, &o->allow_uids, &o->n_allow_uids);
	}
	if ((x = pol_item(e, "allow_gids"))) {
		pol_join(q, path, "allow_gids");
		listen_ids(c, q, x, true, &o->allow_gids, &o->n_allow_gids);
	}
	return true;
}

/* trigger.listen: address strings, or objects with an address. */
static void parse_listen(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	if (!pol_is_array(c, path, v, true))
		return;
	size_t cnt = (size_t)cJSON_GetArraySize(v), i = 0;
	s->listen = calloc(cnt, sizeof(*s->listen));
	s->listen_opt = calloc(cnt, sizeof(*s->listen_opt));
	if (!s->listen || !s->listen_opt) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i++);
		struct pst_sockaddr *a = &s->listen[s->n_listen];
		bool ok = cJSON_IsObject(it)
		              ? listen_object(c, p, it, a, &s->listen_opt[s->n_listen])
		              : pol_get_sockaddr(c, p, it, "an address string or object", a);
		if (ok) {
			s->n_listen++;
		} else {
			struct pst_listen_opt *o = &s->listen_opt[s->n_listen];
			free(o->access.allow);
			free(o->access.deny);
			free(o->allow_uids);
			free(o->allow_gids);
			memset(o, 0, sizeof(*o));
		}
	}
}

void pol_parse_trigger(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                       struct pol_sandbox_origin *o)
{
	static const char *const keys[] = {"listen", "pipe", "fdpass", "startup", NULL};
	if (!pol_is_object(c, path, v))
		return;
	pol_check_keys(c, path, v, keys);
	int n = cJSON_GetArraySize(v);
	if (n != 1) {
		pol_err(c, path, NULL,
		        "exactly one of listen, pipe, fdpass, startup is required (found %d)", n);
		if (n == 0)
			return;
	}
	char p[POL_PATH_MAX];
	const cJSON *t = v->child;
	pol_join(p, path, t->string);
	if (!strcmp(t->string, "listen")) {
		s->trigger = PST_TRIGGER_LISTEN;
		parse_listen(c, p, t, s);
	} else if (!strcmp(t->string, "pipe") || !strcmp(t->string, "fdpass")) {
		s->trigger = t->string[0] == 'p' ? PST_TRIGGER_PIPE : PST_TRIGGER_FDPASS;
		pol_get_name(c, p, t, "channel name", &s->channel);
	} else if (!strcmp(t->string, "startup")) {
		s->trigger = PST_TRIGGER_STARTUP;
		if (!cJSON_IsTrue(t))
			pol_err(c, p, t, "must be true");
	}
}
