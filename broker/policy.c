/* SPDX-License-Identifier: MIT */
/*
 * The policy loader, in order: read the file, parse the JSON (syntax errors
 * with line and column), fill in the defaults, call the section parsers
 * (policy_sandbox.c), derive what depends on parsed values, then the
 * verifier (policy_verify.c). Parsing never stops at the first problem:
 * each one becomes a line "FILE: PATH: VALUE: message" in the diagnostics,
 * and the policy is returned only if there were none. No cJSON type leaves
 * the loader.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "broker/policy_internal.h"

#define POLICY_MAX_BYTES (1u << 20)

/* ---- defaults ---------------------------------------------------------------- */

static int broker_defaults(struct pst_broker_conf *b)
{
	char why[64];
	b->table = strdup(PST_DEFAULT_TABLE);
	b->control = strdup(PST_DEFAULT_CONTROL);
	b->state_dir = strdup(PST_DEFAULT_STATE_DIR);
	pst_parse_cidr(PST_DEFAULT_SANDBOX_NET, &b->sandbox_net, why, sizeof(why));
	pst_parse_cidr(PST_DEFAULT_SANDBOX_NET6, &b->sandbox_net6, why, sizeof(why));
	b->uid_base = PST_DEFAULT_UID_BASE;
	b->grace_ms = PST_DEFAULT_GRACE_MS;
	return b->table && b->control && b->state_dir ? 0 : -ENOMEM;
}

static void sandbox_defaults(struct pst_sandbox *s)
{
	s->limits.handlers = PST_DEFAULT_HANDLERS;
	s->limits.timeout_ms = PST_DEFAULT_TIMEOUT_MS;
	s->limits.memory = PST_DEFAULT_MEMORY;
	s->limits.pids = PST_DEFAULT_PIDS;
	s->limits.nofile = PST_DEFAULT_NOFILE;
	s->socket = PST_SOCKET_STDIO;
	s->restart = PST_RESTART_NO;
	s->seccomp.action = PST_SECCOMP_ERRNO;
}

/* The defaults that depend on parsed values: a uid is stable per name (a
 * reorder or an insert changes none). */
static void derived_defaults(struct pst_policy *p)
{
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		struct pst_sandbox *s = &p->sandboxes[i];
		if (!s->uid_explicit && s->name)
			s->uid = pst_sandbox_default_uid(p->broker.uid_base, s->name);
	}
}

uint32_t pst_sandbox_default_uid(uint32_t uid_base, const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a, 32 bits */
	for (const unsigned char *q = (const unsigned char *)name; *q; q++)
		h = (h ^ *q) * 16777619u;
	return uid_base + h % PST_UID_RANGE;
}

/* ---- JSON syntax ----------------------------------------------------------------- */

static void syntax_error(struct pol_ctx *c, const char *json, size_t len, const char *at)
{
	size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : len;
	unsigned line = 1, col = 1;
	for (size_t i = 0; i < off; i++) {
		if (json[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	/* show the text just before and at the error, within the line */
	char near[32];
	size_t from = off, n = 0;
	while (from > 0 && off - from < 12 && json[from - 1] != '\n')
		from--;
	for (size_t i = from; i < len && i < off + 4 && json[i] != '\n' && n < sizeof(near) - 1;
	     i++)
		near[n++] = json[i];
	near[n] = 0;
	while (n && (near[n - 1] == ' ' || near[n - 1] == '\t'))
		near[--n] = 0;
	const char *np = near;
	while (*np == ' ' || *np == '\t')
		np++;
	char *m = NULL;
	int r;
	if (off >= len)
		r = asprintf(&m, "%s:%u:%u: JSON syntax error: unexpected end of file", c->file,
		             line, col);
	else
		r = asprintf(&m, "%s:%u:%u: JSON syntax error near '%s'", c->file, line, col, np);
	c->errors++;
	if (r >= 0)
		pol_diag_add(c->diag, m);
}

/* The document, or NULL with the error reported. */
static cJSON *parse_json(struct pol_ctx *c, const char *json, size_t len)
{
	if (len > POLICY_MAX_BYTES) {
		pol_err(c, "(file)", NULL, "larger than %u bytes", POLICY_MAX_BYTES);
		return NULL;
	}
	const char *nul = memchr(json, 0, len);
	if (nul) {
		syntax_error(c, json, len, nul);
		return NULL;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (!root) {
		syntax_error(c, json, len, end ? end : cJSON_GetErrorPtr());
		return NULL;
	}
	/* trailing garbage after the document */
	for (const char *q = end; q && q < json + len; q++)
		if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r') {
			syntax_error(c, json, len, q);
			cJSON_Delete(root);
			return NULL;
		}
	return root;
}

/* ---- the top level ----------------------------------------------------------------- */

static void parse_sandboxes(struct pol_ctx *c, const cJSON *sbs, struct pst_policy *p)
{
	if (!sbs) {
		pol_err(c, "sandboxes", NULL, "missing required key: at least one sandbox");
		return;
	}
	if (!cJSON_IsObject(sbs)) {
		pol_type_err(c, "sandboxes", sbs, "an object");
		return;
	}
	if (!sbs->child) {
		pol_err(c, "sandboxes", NULL, "at least one sandbox is required");
		return;
	}
	size_t n = (size_t)cJSON_GetArraySize(sbs);
	if (n > POL_LIST_MAX) {
		pol_err(c, "sandboxes", NULL, "too many sandboxes (%zu; at most %d)", n,
		        POL_LIST_MAX);
		return;
	}
	p->sandboxes = calloc(n, sizeof(*p->sandboxes));
	c->origin = calloc(n, sizeof(*c->origin));
	if (!p->sandboxes || !c->origin) {
		pol_err(c, "sandboxes", NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, sbs)
	{
		char path[POL_PATH_MAX];
		pol_join(path, "sandboxes", it->string);
		if (!pol_name_ok(it->string)) {
			pol_err(c, path, NULL,
			        "invalid sandbox name: must match [a-z0-9][a-z0-9_-]{0,11}");
			continue;
		}
		struct pst_sandbox *s = &p->sandboxes[p->n_sandboxes];
		s->index = (uint32_t)p->n_sandboxes;
		s->name = strdup(it->string);
		s->source = cJSON_PrintUnformatted(it);
		if (!s->name || !s->source)
			pol_err(c, path, NULL, "out of memory");
		sandbox_defaults(s);
		pol_parse_sandbox(c, path, it, s, &c->origin[p->n_sandboxes++]);
	}
}

static void parse_top(struct pol_ctx *c, const cJSON *root, struct pst_policy *p)
{
	static const char *const keys[] = {"postern", "broker", "sandboxes", NULL};
	if (!cJSON_IsObject(root)) {
		pol_type_err(c, "(top level)", root, "an object");
		return;
	}
	pol_check_duplicates(c, "", root);
	pol_check_keys(c, "", root, keys);

	const cJSON *ver = pol_item(root, "postern");
	if (!ver)
		pol_err(c, "postern", NULL, "missing required key: the format version, 1");
	else if (!cJSON_IsNumber(ver) || ver->valuedouble != PST_POLICY_VERSION)
		pol_err(c, "postern", ver,
		        "unsupported format version: this postern reads version %d",
		        PST_POLICY_VERSION);

	const cJSON *br = pol_item(root, "broker");
	if (br)
		pol_parse_broker(c, br, &p->broker);
	parse_sandboxes(c, pol_item(root, "sandboxes"), p);
}

static struct pst_policy *policy_new(const char *file)
{
	struct pst_policy *p = calloc(1, sizeof(*p));
	if (p && (p->file = strdup(file)) && broker_defaults(&p->broker) == 0)
		return p;
	pst_policy_free(p);
	return NULL;
}

int pst_policy_parse(const char *file, const char *json, size_t len, struct pst_policy **out,
                     struct pst_diag *diag)
{
	struct pol_ctx c = {.file = file, .diag = diag};

	*out = NULL;
	pol_autojson cJSON *root = parse_json(&c, json, len);
	if (!root)
		return -EINVAL;
	pol_autopolicy struct pst_policy *p = policy_new(file);
	if (!p) {
		pol_err(&c, "(policy)", NULL, "out of memory");
		return -EINVAL;
	}
	parse_top(&c, root, p);
	derived_defaults(p);
	pol_verify(&c, p);
	for (size_t i = 0; c.origin && i < p->n_sandboxes; i++)
		free(c.origin[i].fs);
	free(c.origin);
	if (c.errors)
		return -EINVAL;
	*out = p;
	p = NULL;
	return 0;
}

/* ---- the file --------------------------------------------------------------------- */

/* size bytes of fd into buf; 0 or a negative errno. */
static int read_all(int fd, char *buf, size_t size)
{
	size_t len = 0;
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		len += (size_t)n;
	}
	return 0;
}

int pst_policy_load(const char *path, struct pst_policy **out, struct pst_diag *diag)
{
	struct pol_ctx c = {.file = path, .diag = diag};
	struct stat st;

	*out = NULL;
	pol_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		pol_err(&c, "(file)", NULL, "cannot open: %s", strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		pol_err(&c, "(file)", NULL, "not a regular file");
		return -EINVAL;
	}
	if (st.st_size > POLICY_MAX_BYTES) {
		pol_err(&c, "(file)", NULL, "larger than %u bytes", POLICY_MAX_BYTES);
		return -EFBIG;
	}
	size_t len = (size_t)st.st_size;
	pol_autofree char *buf = malloc(len + 1);
	if (!buf) {
		pol_err(&c, "(file)", NULL, "out of memory");
		return -ENOMEM;
	}
	int r = read_all(fd, buf, len);
	if (r < 0) {
		pol_err(&c, "(file)", NULL, "read: %s", strerror(-r));
		return r;
	}
	buf[len] = 0;
	return pst_policy_parse(path, buf, len, out, diag);
}

/* ---- the model ----------------------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void sandbox_free(struct pst_sandbox *s)
{
	free(s->name);
	free(s->source);
	free(s->listen);
	for (size_t j = 0; s->listen_opt && j < s->n_listen; j++) {
		free(s->listen_opt[j].access.allow);
		free(s->listen_opt[j].access.deny);
		free(s->listen_opt[j].allow_uids);
		free(s->listen_opt[j].allow_gids);
	}
	free(s->listen_opt);
	free(s->access.allow);
	free(s->access.deny);
	free(s->channel);
	free_strv(s->send, s->n_send);
	free(s->sockets);
	free_strv(s->exec, s->n_exec);
	for (size_t j = 0; j < s->n_fs; j++) {
		free(s->fs[j].src);
		free(s->fs[j].dst);
		free(s->fs[j].target);
	}
	free(s->fs);
	for (size_t j = 0; j < s->n_egress; j++)
		free(s->egress[j].ports);
	free(s->egress);
	free_strv(s->seccomp.deny, s->seccomp.n_deny);
	free_strv(s->seccomp.allow, s->seccomp.n_allow);
	for (size_t j = 0; j < s->n_env; j++) {
		free(s->env[j].key);
		free(s->env[j].value);
	}
	free(s->env);
}

void pst_policy_free(struct pst_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_sandboxes; i++)
		sandbox_free(&p->sandboxes[i]);
	free(p->sandboxes);
	free(p->broker.table);
	free(p->broker.control);
	free(p->broker.state_dir);
	free(p->file);
	free(p);
}

void pol_policy_freep(struct pst_policy **p)
{
	pst_policy_free(*p);
}

const struct pst_sandbox *pst_policy_find(const struct pst_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_sandboxes; i++)
		if (!strcmp(p->sandboxes[i].name, name))
			return &p->sandboxes[i];
	return NULL;
}

const struct pst_access *pst_listen_access(const struct pst_sandbox *s, size_t i)
{
	if (s->listen_opt && i < s->n_listen && s->listen_opt[i].own_access)
		return &s->listen_opt[i].access;
	return &s->access;
}
