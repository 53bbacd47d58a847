/* SPDX-License-Identifier: MIT */
/*
 * The policy's section parsers: a sandbox (exec, filesystem, egress,
 * limits, seccomp, env and its other keys; its trigger is
 * policy_trigger.c's) and the broker section.
 * Each turns one JSON object into the plain structs of broker.h and refuses
 * what a value cannot be on its own: its type, range, format, the keys an
 * object may have. What values may not be together is the verifier's
 * (policy_verify.c), with one exception kept here with the keys: `restart`
 * and `sockets` are keys of startup sandboxes only, whatever their value.
 */
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cJSON.h>
#include <seccomp.h>

#include "broker/policy_internal.h"

#define PREWARM_MAX 1024
#define TIMEOUT_MAX_MS (24ull * 3600 * 1000)
#define GRACE_MAX_MS (3600ull * 1000)
#define MEMORY_MIN (1ull << 20)
#define NOFILE_MAX 1048576u
#define PIDS_MAX 4194304u
#define HANDLERS_MAX 65536u
#define CPU_MAX 1024.0
#define CPU_PERIOD_US 100000u  /* sandbox/cgroup_handler.c: cpu.max "QUOTA 100000" */
#define CPU_QUOTA_MIN_US 1000u /* the kernel refuses a smaller quota (EINVAL) */
#define RATE_MAX 1000000.0

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- exec, lists ------------------------------------------------------------ */

static void parse_exec(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                       struct pol_sandbox_origin *o)
{
	if (!pol_is_array(c, path, v, true))
		return;
	size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
	s->exec = calloc(n + 1, sizeof(char *));
	if (!s->exec) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i);
		bool ok = i == 0 ? pol_get_abs_path(c, p, it, false, &s->exec[s->n_exec])
		                 : pol_get_string(c, p, it, &s->exec[s->n_exec]);
		if (!ok)
			return; /* argv must stay contiguous */
		s->n_exec++;
		i++;
	}
}

static bool syscall_known(const char *name)
{
	return seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}

/* An array of unique strings, each checked: syscall names (resolved with
 * libseccomp) or channel names. */
static void parse_unique_list(struct pol_ctx *c, const char *path, const cJSON *v, bool syscalls,
                              char ***out, size_t *n)
{
	if (!pol_is_array(c, path, v, false))
		return;
	*out = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(char *));
	if (!*out) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX], *name = NULL;
		pol_join_idx(p, path, i++);
		if (syscalls) {
			if (!cJSON_IsString(it)) {
				pol_type_err(c, p, it, "a syscall name");
				continue;
			}
			if (!syscall_known(it->valuestring)) {
				pol_err(c, p, it, "unknown syscall (libseccomp does not know it)");
				continue;
			}
			if (!(name = pol_strdup(c, it->valuestring)))
				continue;
		} else if (!pol_get_name(c, p, it, "channel name", &name)) {
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < *n; j++)
			dup |= !strcmp((*out)[j], name);
		if (dup) {
			pol_err(c, p, it, "listed twice");
			free(name);
			continue;
		}
		(*out)[(*n)++] = name;
	}
}

/* ---- filesystem ------------------------------------------------------------- */

/* Exactly one of the kind keys makes an entry; returns how many it has. */
static int fs_kind(const cJSON *e, enum pst_fs_kind *kind)
{
	static const struct pol_enum kinds[] = {{"bind", PST_FS_BIND},
	                                        {"tmpfs", PST_FS_TMPFS},
	                                        {"proc", PST_FS_PROC},
	                                        {"symlink", PST_FS_SYMLINK}};
	int n = 0;
	for (size_t i = 0; i < N_ELEMS(kinds); i++)
		if (pol_item(e, kinds[i].name)) {
			n++;
			*kind = (enum pst_fs_kind)kinds[i].value;
		}
	return n;
}

static bool fs_bind(struct pol_ctx *c, const char *p, const cJSON *e, struct pst_fs *f,
                    struct pol_fs_origin *o)
{
	static const char *const keys[] = {"bind", "to", "mode", NULL};
	static const struct pol_enum modes[] = {{"ro", 0}, {"rw", 1}};
	char q[POL_PATH_MAX];
	pol_check_keys(c, p, e, keys);
	pol_join(q, p, "bind");
	o->src = pol_item(e, "bind");
	bool ok = pol_get_abs_path(c, q, o->src, true, &f->src);
	const cJSON *to = pol_item(e, "to");
	o->dst_key = to ? "to" : "bind";
	pol_join(q, p, "to");
	if (ok && to) {
		ok = pol_get_abs_path(c, q, to, false, &f->dst);
	} else if (ok && !strcmp(f->src, "/")) {
		pol_err(c, q, NULL, "binding / needs a \"to\" other than /");
		ok = false;
	} else if (ok) {
		f->dst = pol_strdup(c, f->src);
		ok = f->dst != NULL;
	}
	const cJSON *mode = pol_item(e, "mode");
	int rw;
	pol_join(q, p, "mode");
	if (mode && pol_get_enum(c, q, mode, modes, N_ELEMS(modes), &rw))
		f->rw = rw;
	else if (mode)
		ok = false;
	return ok;
}

static bool fs_tmpfs(struct pol_ctx *c, const char *p, const cJSON *e, struct pst_fs *f,
                     struct pol_fs_origin *o)
{
	static const char *const keys[] = {"tmpfs", "size", NULL};
	char q[POL_PATH_MAX];
	pol_check_keys(c, p, e, keys);
	o->dst_key = "tmpfs";
	pol_join(q, p, "tmpfs");
	bool ok = pol_get_abs_path(c, q, pol_item(e, "tmpfs"), false, &f->dst);
	f->size = PST_DEFAULT_TMPFS_SIZE;
	const cJSON *sz = pol_item(e, "size");
	pol_join(q, p, "size");
	if (sz && !pol_get_size(c, q, sz, 4096, &f->size))
		ok = false;
	return ok;
}

static bool fs_proc(struct pol_ctx *c, const char *p, const cJSON *e, struct pst_fs *f,
                    struct pol_fs_origin *o)
{
	static const char *const keys[] = {"proc", NULL};
	char q[POL_PATH_MAX];
	pol_check_keys(c, p, e, keys);
	o->dst_key = "proc";
	pol_join(q, p, "proc");
	return pol_get_abs_path(c, q, pol_item(e, "proc"), false, &f->dst);
}

static bool fs_symlink(struct pol_ctx *c, const char *p, const cJSON *e, struct pst_fs *f,
                       struct pol_fs_origin *o)
{
	static const char *const keys[] = {"symlink", "target", NULL};
	char q[POL_PATH_MAX];
	pol_check_keys(c, p, e, keys);
	o->dst_key = "symlink";
	pol_join(q, p, "symlink");
	bool ok = pol_get_abs_path(c, q, pol_item(e, "symlink"), false, &f->dst);
	const cJSON *t = pol_item(e, "target");
	pol_join(q, p, "target");
	if (!t) {
		pol_err(c, p, NULL, "missing required key \"target\"");
		ok = false;
	} else if (pol_get_string(c, q, t, &f->target) && !f->target[0]) {
		pol_err(c, q, t, "must not be empty");
		ok = false;
	}
	return ok;
}

static void parse_fs(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                     struct pol_sandbox_origin *o)
{
	if (!pol_is_array(c, path, v, false))
		return;
	size_t cap = (size_t)cJSON_GetArraySize(v) + 1, i = 0;
	s->fs = calloc(cap, sizeof(*s->fs));
	o->fs = calloc(cap, sizeof(*o->fs));
	if (!s->fs || !o->fs) {
		free(s->fs), s->fs = NULL;
		free(o->fs), o->fs = NULL;
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i++);
		if (!pol_is_object(c, p, e))
			continue;
		struct pst_fs *f = &s->fs[s->n_fs];
		struct pol_fs_origin *fo = &o->fs[s->n_fs];
		int kinds = fs_kind(e, &f->kind);
		if (kinds != 1) {
			pol_err(c, p, NULL,
			        "exactly one of bind, tmpfs, proc, symlink is required (found %d)",
			        kinds);
			continue;
		}
		bool ok = f->kind == PST_FS_BIND    ? fs_bind(c, p, e, f, fo)
		          : f->kind == PST_FS_TMPFS ? fs_tmpfs(c, p, e, f, fo)
		          : f->kind == PST_FS_PROC  ? fs_proc(c, p, e, f, fo)
		                                    : fs_symlink(c, p, e, f, fo);
		/* an entry that did not parse whole stays only for the
		 * verifier to look at its bind source */
		if (!ok && !(f->kind == PST_FS_BIND && f->src && f->dst)) {
			free(f->src);
			free(f->dst);
			free(f->target);
			memset(f, 0, sizeof(*f));
			memset(fo, 0, sizeof(*fo));
			continue;
		}
		fo->index = i - 1;
		fo->complete = ok;
		s->n_fs++;
	}
}

/* ---- egress ------------------------------------------------------------------ */

static bool egress_ports(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_egress *g)
{
	if (g->proto != PST_PROTO_TCP && g->proto != PST_PROTO_UDP) {
		pol_err(c, path, NULL, "ports need \"proto\": \"tcp\" or \"udp\"");
		return false;
	}
	if (!pol_is_array(c, path, v, true))
		return false;
	g->ports = calloc((size_t)cJSON_GetArraySize(v), sizeof(uint16_t));
	if (!g->ports) {
		pol_err(c, path, NULL, "out of memory");
		return false;
	}
	bool ok = true;
	size_t j = 0;
	const cJSON *pt;
	cJSON_ArrayForEach(pt, v)
	{
		char p[POL_PATH_MAX];
		uint32_t port;
		pol_join_idx(p, path, j++);
		if (!pol_get_u32(c, p, pt, 1, 65535, &port)) {
			ok = false;
			continue;
		}
		for (size_t x = 0; x < g->n_ports; x++)
			if (g->ports[x] == port) {
				pol_err(c, p, pt, "duplicate port");
				ok = false;
			}
		g->ports[g->n_ports++] = (uint16_t)port;
	}
	return ok;
}

static bool egress_entry(struct pol_ctx *c, const char *p, const cJSON *e, struct pst_egress *g)
{
	static const char *const keys[] = {"to", "proto", "ports", NULL};
	static const struct pol_enum protos[] = {
	    {"tcp", PST_PROTO_TCP}, {"udp", PST_PROTO_UDP}, {"icmp", PST_PROTO_ICMP}};
	char q[POL_PATH_MAX];
	bool ok = true;
	pol_check_keys(c, p, e, keys);
	const cJSON *to = pol_item(e, "to");
	pol_join(q, p, "to");
	if (!to) {
		pol_err(c, p, NULL, "missing required key \"to\"");
		ok = false;
	} else if (!pol_get_cidr(c, q, to, "a CIDR or address string", &g->to)) {
		ok = false;
	}
	const cJSON *proto = pol_item(e, "proto");
	int pr;
	pol_join(q, p, "proto");
	if (proto && pol_get_enum(c, q, proto, protos, N_ELEMS(protos), &pr))
		g->proto = (enum pst_proto)pr;
	else if (proto)
		ok = false;
	const cJSON *ports = pol_item(e, "ports");
	pol_join(q, p, "ports");
	if (ports && !egress_ports(c, q, ports, g))
		ok = false;
	return ok;
}

static void parse_egress(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                         struct pol_sandbox_origin *o)
{
	if (!pol_is_array(c, path, v, false))
		return;
	s->egress = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->egress));
	if (!s->egress) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		char p[POL_PATH_MAX];
		pol_join_idx(p, path, i++);
		if (!pol_is_object(c, p, e))
			continue;
		struct pst_egress *g = &s->egress[s->n_egress];
		if (!egress_entry(c, p, e, g)) {
			free(g->ports);
			memset(g, 0, sizeof(*g));
			continue;
		}
		s->n_egress++;
	}
}

/* ---- limits, seccomp, env ------------------------------------------------------- */

/* "N/s", "N/m" or "N/h": N new handlers a second, a minute or an hour. */
static void parse_rate(struct pol_ctx *c, const char *path, const cJSON *v, double *rate)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a rate string such as \"200/s\"");
		return;
	}
	const char *s = v->valuestring, *slash = strchr(s, '/');
	pol_autofree char *num = slash ? strndup(s, (size_t)(slash - s)) : NULL;
	uint64_t n;
	if (slash && !num) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	if (!slash || pst_parse_size(num, &n) < 0 || !isdigit((unsigned char)slash[-1]) ||
	    (strcmp(slash, "/s") && strcmp(slash, "/m") && strcmp(slash, "/h"))) {
		pol_err(c, path, v, "not a rate: an integer followed by /s, /m or /h");
		return;
	}
	if (n == 0 || n > (uint64_t)RATE_MAX) {
		pol_err(c, path, v, "rate out of range 1-%.0f", RATE_MAX);
		return;
	}
	double per = slash[1] == 's' ? 1 : slash[1] == 'm' ? 60 : 3600;
	*rate = (double)n / per;
}

static void parse_limits(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                         struct pol_sandbox_origin *o)
{
	static const char *const keys[] = {"handlers", "per_source", "rate", "timeout", "memory",
	                                   "pids",     "nofile",     "cpu",  NULL};
	struct pst_limits *l = &s->limits;
	char p[POL_PATH_MAX];
	const cJSON *x;
	if (!pol_is_object(c, path, v))
		return;
	pol_check_keys(c, path, v, keys);
	if ((x = pol_item(v, "handlers"))) {
		pol_join(p, path, "handlers");
		pol_get_u32(c, p, x, 1, HANDLERS_MAX, &l->handlers);
	}
	if ((x = pol_item(v, "per_source"))) {
		pol_join(p, path, "per_source");
		pol_get_u32(c, p, x, 0, HANDLERS_MAX, &l->per_source);
	}
	if ((x = pol_item(v, "timeout"))) {
		pol_join(p, path, "timeout");
		pol_get_duration(c, p, x, 1, TIMEOUT_MAX_MS, &l->timeout_ms);
	}
	if ((x = pol_item(v, "memory"))) {
		pol_join(p, path, "memory");
		pol_get_size(c, p, x, MEMORY_MIN, &l->memory);
	}
	if ((x = pol_item(v, "pids"))) {
		pol_join(p, path, "pids");
		pol_get_u32(c, p, x, 1, PIDS_MAX, &l->pids);
	}
	if ((x = pol_item(v, "nofile"))) {
		pol_join(p, path, "nofile");
		pol_get_u32(c, p, x, 3, NOFILE_MAX, &l->nofile);
	}
	if ((x = pol_item(v, "cpu"))) {
		pol_join(p, path, "cpu");
		if (!cJSON_IsNumber(x))
			pol_type_err(c, p, x, "a number of cores");
		else if (!(x->valuedouble > 0) || x->valuedouble > CPU_MAX)
			pol_err(c, p, x, "must be more than 0 and at most %.0f cores", CPU_MAX);
		else if ((uint64_t)(x->valuedouble * CPU_PERIOD_US) < CPU_QUOTA_MIN_US)
			pol_err(c, p, x,
			        "a quota of %g us per %u us period (cpu.max) is below the kernel's "
			        "minimum of %u us: at least %g cores",
			        x->valuedouble * CPU_PERIOD_US, CPU_PERIOD_US, CPU_QUOTA_MIN_US,
			        (double)CPU_QUOTA_MIN_US / CPU_PERIOD_US);
		else
			l->cpu = x->valuedouble;
	}
	if ((x = pol_item(v, "rate"))) {
		pol_join(p, path, "rate");
		parse_rate(c, p, x, &l->rate);
	}
}

static void parse_seccomp(struct pol_ctx *c, const char *path, const cJSON *v,
                          struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	static const char *const keys[] = {"default", "deny", "allow", NULL};
	static const struct pol_enum actions[] = {{"errno", PST_SECCOMP_ERRNO},
	                                          {"kill", PST_SECCOMP_KILL}};
	struct pst_seccomp *sc = &s->seccomp;
	char p[POL_PATH_MAX];
	const cJSON *x;
	int action;
	if (!pol_is_object(c, path, v))
		return;
	pol_check_keys(c, path, v, keys);
	if ((x = pol_item(v, "default"))) {
		pol_join(p, path, "default");
		if (pol_get_enum(c, p, x, actions, N_ELEMS(actions), &action))
			sc->action = (enum pst_seccomp_action)action;
	}
	if ((x = pol_item(v, "deny"))) {
		pol_join(p, path, "deny");
		parse_unique_list(c, p, x, true, &sc->deny, &sc->n_deny);
	}
	if ((x = pol_item(v, "allow"))) {
		pol_join(p, path, "allow");
		parse_unique_list(c, p, x, true, &sc->allow, &sc->n_allow);
	}
}

static bool env_name_ok(const char *k)
{
	bool ok = (k[0] == '_' || (k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z'));
	for (const char *q = k; ok && *q; q++)
		ok = *q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
		     (*q >= '0' && *q <= '9');
	return ok;
}

static bool env_reserved(const char *k)
{
	static const char *const reserved[] = {
	    "LISTEN_FDS",     "LISTEN_PID",     "LISTEN_FDNAMES", "REMOTE_ADDR",   "REMOTE_PORT",
	    "TCPREMOTEIP",    "TCPREMOTEPORT",  "TCPLOCALIP",     "TCPLOCALPORT",  "TCP6REMOTEIP",
	    "TCP6REMOTEPORT", "TCP6LOCALIP",    "TCP6LOCALPORT",  "UNIXREMOTEUID", "UNIXREMOTEGID",
	    "UNIXREMOTEPID",  "UNIXREMOTEEUID", "UNIXREMOTEEGID", "PROTO",         NULL};
	for (const char *const *r = reserved; *r; r++)
		if (!strcmp(*r, k))
			return true;
	return !strncmp(k, "POSTERN_", 8);
}

static void parse_env(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                      struct pol_sandbox_origin *o)
{
	if (!pol_is_object(c, path, v))
		return;
	s->env = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->env));
	if (!s->env) {
		pol_err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		pol_join(p, path, it->string);
		if (!env_name_ok(it->string)) {
			pol_err(c, p, NULL,
			        "invalid variable name: must match [A-Za-z_][A-Za-z0-9_]*");
			continue;
		}
		if (env_reserved(it->string)) {
			pol_err(c, p, NULL, "reserved: postern sets this variable itself");
			continue;
		}
		if (!cJSON_IsString(it)) {
			pol_type_err(c, p, it, "a string");
			continue;
		}
		struct pst_env *e = &s->env[s->n_env];
		e->key = pol_strdup(c, it->string);
		e->value = pol_strdup(c, it->valuestring);
		if (e->key && e->value) {
			s->n_env++;
			continue;
		}
		free(e->key);
		free(e->value);
		e->key = e->value = NULL;
	}
}

/* ---- the other keys of a sandbox ------------------------------------------------- */

static void parse_restart(struct pol_ctx *c, const char *path, const cJSON *v,
                          struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	static const struct pol_enum names[] = {{"no", PST_RESTART_NO},
	                                        {"on-failure", PST_RESTART_ON_FAILURE},
	                                        {"always", PST_RESTART_ALWAYS}};
	int r;
	if (pol_get_enum(c, path, v, names, N_ELEMS(names), &r))
		s->restart = (enum pst_restart)r;
	if (s->trigger && s->trigger != PST_TRIGGER_STARTUP)
		pol_err(c, path, NULL, "only a startup sandbox can be restarted");
}

static void parse_prewarm(struct pol_ctx *c, const char *path, const cJSON *v,
                          struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	pol_get_u32(c, path, v, 0, PREWARM_MAX, &s->prewarm);
}

static void parse_send(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                       struct pol_sandbox_origin *o)
{
	parse_unique_list(c, path, v, false, &s->send, &s->n_send);
}

static void parse_sockets(struct pol_ctx *c, const char *path, const cJSON *v,
                          struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	if (s->trigger && s->trigger != PST_TRIGGER_STARTUP)
		pol_err(c, path, NULL, "only a startup sandbox can have sockets");
	else
		pol_parse_addr_list(c, path, v, &s->sockets, &s->n_sockets);
}

static void parse_socket(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                         struct pol_sandbox_origin *o)
{
	static const struct pol_enum modes[] = {{"stdio", PST_SOCKET_STDIO},
	                                        {"listen_fds", PST_SOCKET_LISTEN_FDS}};
	int m;
	if (pol_get_enum(c, path, v, modes, N_ELEMS(modes), &m))
		s->socket = (enum pst_socket_mode)m;
}

static void parse_allow_bind(struct pol_ctx *c, const char *path, const cJSON *v,
                             struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	pol_get_bool(c, path, v, &s->allow_bind);
}

static void parse_allow_from(struct pol_ctx *c, const char *path, const cJSON *v,
                             struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	pol_parse_cidr_list(c, path, v, &s->access.allow, &s->access.n_allow);
}

static void parse_deny_from(struct pol_ctx *c, const char *path, const cJSON *v,
                            struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	pol_parse_cidr_list(c, path, v, &s->access.deny, &s->access.n_deny);
}

static void parse_identity_files(struct pol_ctx *c, const char *path, const cJSON *v,
                                 struct pst_sandbox *s, struct pol_sandbox_origin *o)
{
	pol_get_bool(c, path, v, &s->identity_files);
}

static void parse_uid(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                      struct pol_sandbox_origin *o)
{
	if (!pol_get_u32(c, path, v, PST_UID_MIN, POL_UID_MAX, &s->uid))
		return;
	if (s->uid == 65534)
		pol_err(
		    c, path, v,
		    "65534 is \"nobody\", shared with other programs: give the sandbox a uid of "
		    "its own");
	else
		s->uid_explicit = true;
}

/* The keys of a sandbox, in the order they are parsed: the trigger first,
 * since restart and sockets depend on it. */
static const struct {
	const char *key;
	bool required;
	void (*parse)(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
	              struct pol_sandbox_origin *o);
} sandbox_keys[] = {
    {"trigger", true, pol_parse_trigger},
    {"exec", true, parse_exec},
    {"restart", false, parse_restart},
    {"prewarm", false, parse_prewarm},
    {"send", false, parse_send},
    {"sockets", false, parse_sockets},
    {"socket", false, parse_socket},
    {"filesystem", false, parse_fs},
    {"egress", false, parse_egress},
    {"allow_from", false, parse_allow_from},
    {"deny_from", false, parse_deny_from},
    {"limits", false, parse_limits},
    {"seccomp", false, parse_seccomp},
    {"env", false, parse_env},
    {"allow_bind", false, parse_allow_bind},
    {"identity_files", false, parse_identity_files},
    {"uid", false, parse_uid},
};

void pol_parse_sandbox(struct pol_ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s,
                       struct pol_sandbox_origin *o)
{
	/* as documented, in this order, in the "unknown key" message */
	static const char *const keys[] = {
	    "trigger", "restart",    "prewarm",    "send",      "sockets",        "exec",
	    "socket",  "filesystem", "egress",     "limits",    "seccomp",        "env",
	    "uid",     "allow_bind", "allow_from", "deny_from", "identity_files", NULL};
	if (!pol_is_object(c, path, v))
		return;
	pol_check_keys(c, path, v, keys);
	for (size_t i = 0; i < N_ELEMS(sandbox_keys); i++) {
		char p[POL_PATH_MAX];
		const cJSON *x = pol_item(v, sandbox_keys[i].key);
		if (x) {
			pol_join(p, path, sandbox_keys[i].key);
			sandbox_keys[i].parse(c, p, x, s, o);
		} else if (sandbox_keys[i].required) {
			pol_err(c, path, NULL, "missing required key \"%s\"", sandbox_keys[i].key);
		}
	}
}

/* ---- the broker section ------------------------------------------------------------ */

static void broker_table(struct pol_ctx *c, const char *path, const cJSON *v,
                         struct pst_broker_conf *b)
{
	free(b->table);
	b->table = NULL;
	if (!pol_get_string(c, path, v, &b->table))
		return;
	size_t n = strlen(b->table);
	bool ok = n >= 1 && n <= PST_TABLE_MAX;
	for (size_t i = 0; ok && i < n; i++) {
		char ch = b->table[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		     (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
	}
	if (!ok)
		pol_err(c, path, v, "must match [A-Za-z0-9_-]{1,32}");
}

static void broker_control(struct pol_ctx *c, const char *path, const cJSON *v,
                           struct pst_broker_conf *b)
{
	free(b->control);
	b->control = NULL;
	if (pol_get_abs_path(c, path, v, false, &b->control) &&
	    strlen(b->control) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		pol_err(c, path, v, "unix socket path longer than 107 bytes");
}

static void broker_state_dir(struct pol_ctx *c, const char *path, const cJSON *v,
                             struct pst_broker_conf *b)
{
	free(b->state_dir);
	b->state_dir = NULL;
	pol_get_abs_path(c, path, v, false, &b->state_dir);
}

static void broker_sandbox_net(struct pol_ctx *c, const char *path, const cJSON *v,
                               struct pst_broker_conf *b)
{
	if (!pol_get_cidr(c, path, v, "a CIDR string", &b->sandbox_net))
		return;
	if (b->sandbox_net.family != AF_INET)
		pol_err(c, path, v, "must be an IPv4 CIDR (IPv6 goes in sandbox_net6)");
	else if (b->sandbox_net.prefix > 30)
		pol_err(c, path, v, "prefix /%u leaves no room: at most /30",
		        b->sandbox_net.prefix);
}

static void broker_sandbox_net6(struct pol_ctx *c, const char *path, const cJSON *v,
                                struct pst_broker_conf *b)
{
	if (!pol_get_cidr(c, path, v, "a CIDR string", &b->sandbox_net6))
		return;
	if (b->sandbox_net6.family != AF_INET6)
		pol_err(c, path, v, "must be an IPv6 CIDR");
	else if (b->sandbox_net6.prefix > 64)
		pol_err(c, path, v, "prefix /%u leaves no room: at most /64",
		        b->sandbox_net6.prefix);
}

static void broker_uid_base(struct pol_ctx *c, const char *path, const cJSON *v,
                            struct pst_broker_conf *b)
{
	pol_get_u32(c, path, v, 1000, 4000000000u, &b->uid_base);
}

static void broker_grace(struct pol_ctx *c, const char *path, const cJSON *v,
                         struct pst_broker_conf *b)
{
	pol_get_duration(c, path, v, 0, GRACE_MAX_MS, &b->grace_ms);
}

static void broker_reuse_port(struct pol_ctx *c, const char *path, const cJSON *v,
                              struct pst_broker_conf *b)
{
	pol_get_bool(c, path, v, &b->reuse_port);
}

static void broker_metrics(struct pol_ctx *c, const char *path, const cJSON *v,
                           struct pst_broker_conf *b)
{
	if (!pol_get_sockaddr(c, path, v, "an address string such as \"127.0.0.1:9100\"",
	                      &b->metrics))
		return;
	bool lo = false;
	if (b->metrics.ss.ss_family == AF_INET)
		lo = (ntohl(((struct sockaddr_in *)&b->metrics.ss)->sin_addr.s_addr) >> 24) == 127;
	else if (b->metrics.ss.ss_family == AF_INET6)
		lo = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&b->metrics.ss)->sin6_addr);
	if (!lo)
		pol_err(c, path, v, "must be a loopback address:port");
	else
		b->has_metrics = true;
}

/* The keys of the broker section, in the order they are parsed. */
static const struct {
	const char *key;
	void (*parse)(struct pol_ctx *c, const char *path, const cJSON *v,
	              struct pst_broker_conf *b);
} broker_keys[] = {
    {"table", broker_table},
    {"control", broker_control},
    {"state_dir", broker_state_dir},
    {"sandbox_net", broker_sandbox_net},
    {"sandbox_net6", broker_sandbox_net6},
    {"uid_base", broker_uid_base},
    {"grace", broker_grace},
    {"reuse_port", broker_reuse_port},
    {"metrics", broker_metrics},
};

void pol_parse_broker(struct pol_ctx *c, const cJSON *v, struct pst_broker_conf *b)
{
	static const char *const keys[] = {"table",    "control",   "sandbox_net", "sandbox_net6",
	                                   "uid_base", "state_dir", "grace",       "reuse_port",
	                                   "metrics",  NULL};
	if (!pol_is_object(c, "broker", v))
		return;
	pol_check_keys(c, "broker", v, keys);
	for (size_t i = 0; i < N_ELEMS(broker_keys); i++) {
		char p[POL_PATH_MAX];
		const cJSON *x = pol_item(v, broker_keys[i].key);
		if (x) {
			pol_join(p, "broker", broker_keys[i].key);
			broker_keys[i].parse(c, p, x, b);
		}
	}
}
