/* SPDX-License-Identifier: MIT */
/*
 * The policy loader: JSON (cJSON) -> struct pst_policy, with every rule of
 * the policy format checked. Parsing never stops at the first problem: each
 * one becomes a line "FILE: PATH: VALUE: message" in the diagnostics, and
 * the policy is returned only if there were none. No cJSON type leaves this
 * file.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <seccomp.h>

#include "broker/broker.h"

#define POLICY_MAX_BYTES (1u << 20)
#define PATH_MAX_LEN 256
#define VALUE_SHOWN_MAX 60
#define LIST_MAX 256		/* entries of any list in a policy */
#define PREWARM_MAX 1024
#define TIMEOUT_MAX_MS (24ull * 3600 * 1000)
#define GRACE_MAX_MS (3600ull * 1000)
#define MEMORY_MIN (1ull << 20)
#define NOFILE_MAX 1048576u
#define PIDS_MAX 4194304u
#define HANDLERS_MAX 65536u
#define CPU_MAX 1024.0
#define RATE_MAX 1000000.0

struct ctx {
	const char *file;
	struct pst_diag *diag;
	size_t errors;
};

/* ---- diagnostics ---------------------------------------------------------- */

static void diag_add(struct pst_diag *d, char *msg)
{
	if (!msg)
		return;
	char **n = realloc(d->msgs, (d->n + 1) * sizeof(*n));
	if (!n) {
		free(msg);
		return;
	}
	d->msgs = n;
	d->msgs[d->n++] = msg;
}

void pst_diag_free(struct pst_diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->msgs[i]);
	free(d->msgs);
	d->msgs = NULL;
	d->n = 0;
}

/* A short JSON rendering of v for messages. */
static void show_value(const cJSON *v, char *buf, size_t len)
{
	char *s = cJSON_PrintUnformatted(v);
	if (!s) {
		snprintf(buf, len, "?");
		return;
	}
	if (strlen(s) > VALUE_SHOWN_MAX)
		snprintf(buf, len, "%.*s...", VALUE_SHOWN_MAX, s);
	else
		snprintf(buf, len, "%s", s);
	free(s);
}

__attribute__((format(printf, 4, 5))) static void err(struct ctx *c, const char *path,
							const cJSON *v, const char *fmt, ...)
{
	char msg[512], val[VALUE_SHOWN_MAX + 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *line = NULL;
	int r;
	if (v) {
		show_value(v, val, sizeof(val));
		r = asprintf(&line, "%s: %s: %s: %s", c->file, path, val, msg);
	} else {
		r = asprintf(&line, "%s: %s: %s", c->file, path, msg);
	}
	c->errors++;
	if (r >= 0)
		diag_add(c->diag, line);
}

static const char *type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "an invalid value";
}

static void type_err(struct ctx *c, const char *path, const cJSON *v, const char *expected)
{
	err(c, path, v, "expected %s, got %s", expected, type_name(v));
}

/* Paths longer than PATH_MAX_LEN are cut: they only appear in messages. */
static void append(char *out, size_t *len, const char *s)
{
	while (*s && *len < PATH_MAX_LEN - 1)
		out[(*len)++] = *s++;
	out[*len] = 0;
}

static void join(char *out, const char *path, const char *key)
{
	size_t len = 0;
	out[0] = 0;
	append(out, &len, path);
	if (path[0])
		append(out, &len, ".");
	append(out, &len, key);
}

static void join_idx(char *out, const char *path, size_t i)
{
	char idx[32];
	size_t len = 0;
	sprintf(idx, "[%zu]", i);
	out[0] = 0;
	append(out, &len, path);
	append(out, &len, idx);
}

/* Unknown keys are errors; allowed is NULL-terminated. */
static void check_keys(struct ctx *c, const char *path, const cJSON *obj,
		       const char *const *allowed)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, obj)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, it->string))
				ok = true;
		if (!ok) {
			char p[PATH_MAX_LEN], list[256] = "";
			join(p, path, it->string);
			for (const char *const *a = allowed; *a; a++) {
				size_t l = strlen(list);
				snprintf(list + l, sizeof(list) - l, "%s%s", l ? ", " : "", *a);
			}
			err(c, p, NULL, "unknown key (allowed here: %s)", list);
		}
	}
}

/* cJSON keeps duplicate keys as siblings: report every repeat. */
static void check_duplicates(struct ctx *c, const char *path, const cJSON *v)
{
	const cJSON *it;
	size_t i = 0;
	cJSON_ArrayForEach(it, v)
	{
		char p[PATH_MAX_LEN];
		if (cJSON_IsObject(v)) {
			join(p, path, it->string);
			for (const cJSON *prev = v->child; prev != it; prev = prev->next)
				if (!strcmp(prev->string, it->string)) {
					err(c, p, NULL, "duplicate key");
					break;
				}
		} else {
			join_idx(p, path, i);
		}
		if (cJSON_IsObject(it) || cJSON_IsArray(it))
			check_duplicates(c, p, it);
		i++;
	}
}

/* ---- typed getters -------------------------------------------------------- */

static char *dup_or_oom(struct ctx *c, const char *s)
{
	char *d = strdup(s);
	if (!d)
		err(c, "(policy)", NULL, "out of memory");
	return d;
}

static bool get_string(struct ctx *c, const char *path, const cJSON *v, char **out)
{
	if (!cJSON_IsString(v)) {
		type_err(c, path, v, "a string");
		return false;
	}
	*out = dup_or_oom(c, v->valuestring);
	return *out != NULL;
}

static bool get_bool(struct ctx *c, const char *path, const cJSON *v, bool *out)
{
	if (!cJSON_IsBool(v)) {
		type_err(c, path, v, "a boolean (true or false)");
		return false;
	}
	*out = cJSON_IsTrue(v);
	return true;
}

static bool get_uint(struct ctx *c, const char *path, const cJSON *v, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) {
		type_err(c, path, v, "an integer");
		return false;
	}
	if (v->valuedouble < (double)min || v->valuedouble > (double)max) {
		err(c, path, v, "out of range %llu-%llu", (unsigned long long)min,
		    (unsigned long long)max);
		return false;
	}
	*out = (uint64_t)v->valuedouble;
	return true;
}

static bool get_u32(struct ctx *c, const char *path, const cJSON *v, uint32_t min, uint32_t max,
		    uint32_t *out)
{
	uint64_t x;
	if (!get_uint(c, path, v, min, max, &x))
		return false;
	*out = (uint32_t)x;
	return true;
}

static bool get_duration(struct ctx *c, const char *path, const cJSON *v, uint64_t min_ms,
			 uint64_t max_ms, uint64_t *out)
{
	if (!cJSON_IsString(v)) {
		type_err(c, path, v, "a duration string such as \"30s\"");
		return false;
	}
	uint64_t ms;
	int r = pst_parse_duration_ms(v->valuestring, &ms);
	if (r == -ERANGE || (r == 0 && ms > max_ms)) {
		err(c, path, v, "duration too long (at most %llus)", (unsigned long long)(max_ms / 1000));
		return false;
	}
	if (r < 0) {
		err(c, path, v, "not a duration: an integer followed by ms, s, m or h");
		return false;
	}
	if (ms < min_ms) {
		err(c, path, v, "duration too short (at least %llums)", (unsigned long long)min_ms);
		return false;
	}
	*out = ms;
	return true;
}

static bool get_size(struct ctx *c, const char *path, const cJSON *v, uint64_t min, uint64_t *out)
{
	if (!cJSON_IsString(v)) {
		type_err(c, path, v, "a size string such as \"64M\"");
		return false;
	}
	uint64_t b;
	int r = pst_parse_size(v->valuestring, &b);
	if (r == -ERANGE) {
		err(c, path, v, "size too large");
		return false;
	}
	if (r < 0) {
		err(c, path, v, "not a size: an integer, optionally followed by K, M or G");
		return false;
	}
	if (b < min) {
		err(c, path, v, "size too small (at least %llu bytes)", (unsigned long long)min);
		return false;
	}
	*out = b;
	return true;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > PST_NAME_MAX)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static bool get_name(struct ctx *c, const char *path, const cJSON *v, const char *what, char **out)
{
	if (!cJSON_IsString(v)) {
		type_err(c, path, v, "a string");
		return false;
	}
	if (!name_ok(v->valuestring)) {
		err(c, path, v, "invalid %s: must match [a-z0-9][a-z0-9_-]{0,11}", what);
		return false;
	}
	*out = dup_or_oom(c, v->valuestring);
	return *out != NULL;
}

/* Absolute path without "." or ".." components, not "/" itself. */
static bool abs_path_ok(struct ctx *c, const char *path, const cJSON *v, bool allow_root)
{
	const char *s = v->valuestring;
	if (s[0] != '/') {
		err(c, path, v, "must be an absolute path");
		return false;
	}
	if (!allow_root && !strcmp(s, "/")) {
		err(c, path, v, "cannot be / itself");
		return false;
	}
	if (strlen(s) >= 4096) {
		err(c, path, v, "path too long");
		return false;
	}
	for (const char *p = s; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			err(c, path, v, "\".\" and \"..\" components are not allowed");
			return false;
		}
		p += n;
	}
	return true;
}

static bool get_abs_path(struct ctx *c, const char *path, const cJSON *v, bool allow_root,
			 char **out)
{
	if (!cJSON_IsString(v)) {
		type_err(c, path, v, "a string");
		return false;
	}
	if (!abs_path_ok(c, path, v, allow_root))
		return false;
	/* normalise: no trailing or doubled slashes */
	char *d = malloc(strlen(v->valuestring) + 1), *o = d;
	if (!d) {
		err(c, path, NULL, "out of memory");
		return false;
	}
	for (const char *p = v->valuestring; *p; p++) {
		if (*p == '/' && o > d && o[-1] == '/')
			continue;
		*o++ = *p;
	}
	if (o - d > 1 && o[-1] == '/')
		o--;
	*o = 0;
	*out = d;
	return true;
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

/* A symlink in a bind source, in any component, the last included, is
 * refused: sandbox/ opens bind sources without following symlinks (one a
 * handler planted in a directory it writes must not lead the bind to the
 * host's /), so such a bind would fail at every spawn; and the operator
 * should see in the policy what is bound. The message gives the real path
 * to declare instead. Components that do not exist (yet), or that this
 * process may not look at, are left to the spawn, which reports them. */
static void check_bind_symlinks(struct ctx *c, const char *path, const cJSON *v, const char *src)
{
	char buf[4096];
	size_t n = strlen(src);
	if (n >= sizeof(buf))
		return;
	memcpy(buf, src, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		char save = buf[i];
		buf[i] = 0;
		struct stat st;
		if (lstat(buf, &st) < 0)
			return;
		if (S_ISLNK(st.st_mode)) {
			char target[1024], real[PATH_MAX];
			ssize_t l = readlink(buf, target, sizeof(target) - 1);
			target[l > 0 ? l : 0] = 0;
			if (realpath(src, real))
				err(c, path, v,
				    "\"%s\" is a symlink (to \"%s\"): bind sources are not followed "
				    "through symlinks; if that is what is meant, declare the real path \"%s\"",
				    buf, target, real);
			else
				err(c, path, v,
				    "\"%s\" is a symlink (to \"%s\"): bind sources are not followed "
				    "through symlinks; use the real path (this one does not resolve)",
				    buf, target);
			return;
		}
		buf[i] = save;
	}
}

static const cJSON *item(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

static bool is_array(struct ctx *c, const char *path, const cJSON *v, bool nonempty)
{
	if (!cJSON_IsArray(v)) {
		type_err(c, path, v, "an array");
		return false;
	}
	int n = cJSON_GetArraySize(v);
	if (nonempty && n == 0) {
		err(c, path, v, "must not be empty");
		return false;
	}
	if (n > LIST_MAX) {
		err(c, path, NULL, "too many entries (%d; at most %d)", n, LIST_MAX);
		return false;
	}
	return true;
}

static bool is_object(struct ctx *c, const char *path, const cJSON *v)
{
	if (!cJSON_IsObject(v)) {
		type_err(c, path, v, "an object");
		return false;
	}
	return true;
}

/* ---- sections -------------------------------------------------------------- */

static void parse_addr_list(struct ctx *c, const char *path, const cJSON *v,
			    struct pst_sockaddr **out, size_t *n)
{
	if (!is_array(c, path, v, true))
		return;
	size_t cnt = (size_t)cJSON_GetArraySize(v), i = 0;
	*out = calloc(cnt, sizeof(**out));
	if (!*out) {
		err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[PATH_MAX_LEN], why[160];
		join_idx(p, path, i++);
		if (!cJSON_IsString(it)) {
			type_err(c, p, it, "an address string");
			continue;
		}
		if (pst_parse_sockaddr(it->valuestring, &(*out)[*n], why, sizeof(why)) < 0) {
			err(c, p, it, "%s", why);
			continue;
		}
		(*n)++;
	}
}

static void parse_trigger(struct ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	static const char *const keys[] = { "listen", "pipe", "fdpass", "startup", NULL };
	if (!is_object(c, path, v))
		return;
	check_keys(c, path, v, keys);
	int n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, v) n++;
	if (n != 1) {
		err(c, path, NULL, "exactly one of listen, pipe, fdpass, startup is required (found %d)", n);
		if (n == 0)
			return;
	}
	char p[PATH_MAX_LEN];
	const cJSON *t = v->child;
	join(p, path, t->string);
	if (!strcmp(t->string, "listen")) {
		s->trigger = PST_TRIGGER_LISTEN;
		parse_addr_list(c, p, t, &s->listen, &s->n_listen);
	} else if (!strcmp(t->string, "pipe") || !strcmp(t->string, "fdpass")) {
		s->trigger = t->string[0] == 'p' ? PST_TRIGGER_PIPE : PST_TRIGGER_FDPASS;
		get_name(c, p, t, "channel name", &s->channel);
	} else if (!strcmp(t->string, "startup")) {
		s->trigger = PST_TRIGGER_STARTUP;
		if (!cJSON_IsTrue(t))
			err(c, p, t, "must be true");
	}
}

static void parse_exec(struct ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	if (!is_array(c, path, v, true))
		return;
	size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
	s->exec = calloc(n + 1, sizeof(char *));
	if (!s->exec) {
		err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[PATH_MAX_LEN];
		join_idx(p, path, i);
		if (i == 0) {
			if (get_abs_path(c, p, it, false, &s->exec[s->n_exec]))
				s->n_exec++;
			else
				return;	/* argv must stay contiguous */
		} else if (get_string(c, p, it, &s->exec[s->n_exec])) {
			s->n_exec++;
		} else {
			return;
		}
		i++;
	}
}

static void parse_fs(struct ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	static const char *const bind_keys[] = { "bind", "to", "mode", NULL };
	static const char *const tmpfs_keys[] = { "tmpfs", "size", NULL };
	static const char *const proc_keys[] = { "proc", NULL };
	static const char *const link_keys[] = { "symlink", "target", NULL };
	if (!is_array(c, path, v, false))
		return;
	s->fs = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->fs));
	if (!s->fs) {
		err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
		join_idx(p, path, i++);
		if (!is_object(c, p, e))
			continue;
		struct pst_fs *f = &s->fs[s->n_fs];
		const cJSON *k;
		int kinds = 0;
		if ((k = item(e, "bind"))) {
			kinds++;
			f->kind = PST_FS_BIND;
		}
		if ((k = item(e, "tmpfs"))) {
			kinds++;
			f->kind = PST_FS_TMPFS;
		}
		if ((k = item(e, "proc"))) {
			kinds++;
			f->kind = PST_FS_PROC;
		}
		if ((k = item(e, "symlink"))) {
			kinds++;
			f->kind = PST_FS_SYMLINK;
		}
		if (kinds != 1) {
			err(c, p, NULL, "exactly one of bind, tmpfs, proc, symlink is required (found %d)", kinds);
			continue;
		}
		bool ok = true;
		switch (f->kind) {
		case PST_FS_BIND: {
			check_keys(c, p, e, bind_keys);
			join(q, p, "bind");
			ok = get_abs_path(c, q, item(e, "bind"), true, &f->src);
			const cJSON *to = item(e, "to");
			join(q, p, "to");
			if (ok && to)
				ok = get_abs_path(c, q, to, false, &f->dst);
			else if (ok) {
				if (!strcmp(f->src, "/")) {
					err(c, q, NULL, "binding / needs a \"to\" other than /");
					ok = false;
				} else {
					f->dst = dup_or_oom(c, f->src);
					ok = f->dst != NULL;
				}
			}
			if (ok) {
				join(q, p, "bind");
				size_t before = c->errors;
				check_bind_symlinks(c, q, item(e, "bind"), f->src);
				ok = c->errors == before;
			}
			const cJSON *mode = item(e, "mode");
			join(q, p, "mode");
			if (mode) {
				if (!cJSON_IsString(mode)) {
					type_err(c, q, mode, "a string");
					ok = false;
				} else if (!strcmp(mode->valuestring, "rw")) {
					f->rw = true;
				} else if (strcmp(mode->valuestring, "ro")) {
					err(c, q, mode, "must be \"ro\" or \"rw\"");
					ok = false;
				}
			}
			break;
		}
		case PST_FS_TMPFS: {
			check_keys(c, p, e, tmpfs_keys);
			join(q, p, "tmpfs");
			ok = get_abs_path(c, q, item(e, "tmpfs"), false, &f->dst);
			f->size = PST_DEFAULT_TMPFS_SIZE;
			const cJSON *sz = item(e, "size");
			join(q, p, "size");
			if (sz && !get_size(c, q, sz, 4096, &f->size))
				ok = false;
			break;
		}
		case PST_FS_PROC:
			check_keys(c, p, e, proc_keys);
			join(q, p, "proc");
			ok = get_abs_path(c, q, item(e, "proc"), false, &f->dst);
			break;
		case PST_FS_SYMLINK: {
			check_keys(c, p, e, link_keys);
			join(q, p, "symlink");
			ok = get_abs_path(c, q, item(e, "symlink"), false, &f->dst);
			const cJSON *t = item(e, "target");
			join(q, p, "target");
			if (!t) {
				err(c, p, NULL, "missing required key \"target\"");
				ok = false;
			} else if (get_string(c, q, t, &f->target) && !f->target[0]) {
				err(c, q, t, "must not be empty");
				ok = false;
			}
			break;
		}
		}
		if (!ok) {
			free(f->src);
			free(f->dst);
			free(f->target);
			memset(f, 0, sizeof(*f));
			continue;
		}
		for (size_t j = 0; j < s->n_fs; j++) {
			char d[PATH_MAX_LEN];
			join(d, p, f->kind == PST_FS_BIND ? (item(e, "to") ? "to" : "bind")
				   : f->kind == PST_FS_TMPFS ? "tmpfs"
				   : f->kind == PST_FS_PROC  ? "proc"
							     : "symlink");
			if (!strcmp(s->fs[j].dst, f->dst))
				err(c, d, NULL, "\"%s\" is already a destination of entry %zu", f->dst, j);
			/* the root is built without following symlinks, the
			 * policy's own included */
			else if (s->fs[j].kind == PST_FS_SYMLINK && path_below(f->dst, s->fs[j].dst))
				err(c, d, NULL,
				    "\"%s\" lies under the symlink of entry %zu (\"%s\"): mount points are not "
				    "made through symlinks; use the path the symlink points to",
				    f->dst, j, s->fs[j].dst);
			else if (f->kind == PST_FS_SYMLINK && path_below(s->fs[j].dst, f->dst))
				err(c, d, NULL,
				    "\"%s\" would be a symlink above entry %zu (\"%s\"): mount points are not "
				    "made through symlinks",
				    f->dst, j, s->fs[j].dst);
		}
		s->n_fs++;
	}
}

static void parse_egress(struct ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	static const char *const keys[] = { "to", "proto", "ports", NULL };
	if (!is_array(c, path, v, false))
		return;
	s->egress = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->egress));
	if (!s->egress) {
		err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		char p[PATH_MAX_LEN], q[PATH_MAX_LEN], why[160];
		join_idx(p, path, i++);
		if (!is_object(c, p, e))
			continue;
		check_keys(c, p, e, keys);
		struct pst_egress *g = &s->egress[s->n_egress];
		bool ok = true;
		const cJSON *to = item(e, "to");
		join(q, p, "to");
		if (!to) {
			err(c, p, NULL, "missing required key \"to\"");
			ok = false;
		} else if (!cJSON_IsString(to)) {
			type_err(c, q, to, "a CIDR or address string");
			ok = false;
		} else if (pst_parse_cidr(to->valuestring, &g->to, why, sizeof(why)) < 0) {
			err(c, q, to, "%s", why);
			ok = false;
		}
		const cJSON *proto = item(e, "proto");
		join(q, p, "proto");
		if (proto) {
			if (!cJSON_IsString(proto)) {
				type_err(c, q, proto, "a string");
				ok = false;
			} else if (!strcmp(proto->valuestring, "tcp")) {
				g->proto = PST_PROTO_TCP;
			} else if (!strcmp(proto->valuestring, "udp")) {
				g->proto = PST_PROTO_UDP;
			} else if (!strcmp(proto->valuestring, "icmp")) {
				g->proto = PST_PROTO_ICMP;
			} else {
				err(c, q, proto, "must be \"tcp\", \"udp\" or \"icmp\"");
				ok = false;
			}
		}
		const cJSON *ports = item(e, "ports");
		join(q, p, "ports");
		if (ports) {
			if (g->proto != PST_PROTO_TCP && g->proto != PST_PROTO_UDP) {
				err(c, q, NULL, "ports need \"proto\": \"tcp\" or \"udp\"");
				ok = false;
			} else if (is_array(c, q, ports, true)) {
				g->ports = calloc((size_t)cJSON_GetArraySize(ports), sizeof(uint16_t));
				size_t j = 0;
				const cJSON *pt;
				cJSON_ArrayForEach(pt, ports)
				{
					char r[PATH_MAX_LEN];
					uint32_t port;
					join_idx(r, q, j++);
					if (!g->ports || !get_u32(c, r, pt, 1, 65535, &port)) {
						ok = false;
						continue;
					}
					for (size_t x = 0; x < g->n_ports; x++)
						if (g->ports[x] == port) {
							err(c, r, pt, "duplicate port");
							ok = false;
						}
					g->ports[g->n_ports++] = (uint16_t)port;
				}
			} else {
				ok = false;
			}
		}
		if (!ok) {
			free(g->ports);
			memset(g, 0, sizeof(*g));
			continue;
		}
		s->n_egress++;
	}
}

static void parse_limits(struct ctx *c, const char *path, const cJSON *v, struct pst_limits *l)
{
	static const char *const keys[] = { "handlers", "per_source", "rate", "timeout", "memory",
					    "pids", "nofile", "cpu", NULL };
	if (!is_object(c, path, v))
		return;
	check_keys(c, path, v, keys);
	char p[PATH_MAX_LEN];
	const cJSON *x;
	if ((x = item(v, "handlers")))
		join(p, path, "handlers"), get_u32(c, p, x, 1, HANDLERS_MAX, &l->handlers);
	if ((x = item(v, "per_source")))
		join(p, path, "per_source"), get_u32(c, p, x, 0, HANDLERS_MAX, &l->per_source);
	if ((x = item(v, "timeout")))
		join(p, path, "timeout"), get_duration(c, p, x, 1, TIMEOUT_MAX_MS, &l->timeout_ms);
	if ((x = item(v, "memory")))
		join(p, path, "memory"), get_size(c, p, x, MEMORY_MIN, &l->memory);
	if ((x = item(v, "pids")))
		join(p, path, "pids"), get_u32(c, p, x, 1, PIDS_MAX, &l->pids);
	if ((x = item(v, "nofile")))
		join(p, path, "nofile"), get_u32(c, p, x, 3, NOFILE_MAX, &l->nofile);
	if ((x = item(v, "cpu"))) {
		join(p, path, "cpu");
		if (!cJSON_IsNumber(x))
			type_err(c, p, x, "a number of cores");
		else if (!(x->valuedouble > 0) || x->valuedouble > CPU_MAX)
			err(c, p, x, "must be more than 0 and at most %.0f cores", CPU_MAX);
		else
			l->cpu = x->valuedouble;
	}
	if ((x = item(v, "rate"))) {
		join(p, path, "rate");
		uint64_t n;
		const char *slash;
		if (!cJSON_IsString(x)) {
			type_err(c, p, x, "a rate string such as \"200/s\"");
		} else if (!(slash = strchr(x->valuestring, '/')) ||
			   pst_parse_size(strndupa(x->valuestring, (size_t)(slash - x->valuestring)), &n) < 0 ||
			   !isdigit((unsigned char)slash[-1]) ||
			   (strcmp(slash, "/s") && strcmp(slash, "/m") && strcmp(slash, "/h"))) {
			err(c, p, x, "not a rate: an integer followed by /s, /m or /h");
		} else if (n == 0 || n > (uint64_t)RATE_MAX) {
			err(c, p, x, "rate out of range 1-%.0f", RATE_MAX);
		} else {
			double per = slash[1] == 's' ? 1 : slash[1] == 'm' ? 60 : 3600;
			l->rate = (double)n / per;
		}
	}
}

static bool syscall_known(const char *name)
{
	return seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}

/* An array of unique strings, each checked: syscall names (resolved with
 * libseccomp) or channel names. */
static void parse_unique_list(struct ctx *c, const char *path, const cJSON *v, bool syscalls,
			      char ***out, size_t *n)
{
	if (!is_array(c, path, v, false))
		return;
	*out = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(char *));
	if (!*out) {
		err(c, path, NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[PATH_MAX_LEN], *name = NULL;
		join_idx(p, path, i++);
		if (syscalls) {
			if (!cJSON_IsString(it)) {
				type_err(c, p, it, "a syscall name");
				continue;
			}
			if (!syscall_known(it->valuestring)) {
				err(c, p, it, "unknown syscall (libseccomp does not know it)");
				continue;
			}
			if (!(name = dup_or_oom(c, it->valuestring)))
				continue;
		} else if (!get_name(c, p, it, "channel name", &name)) {
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < *n; j++)
			dup |= !strcmp((*out)[j], name);
		if (dup) {
			err(c, p, it, "listed twice");
			free(name);
			continue;
		}
		(*out)[(*n)++] = name;
	}
}

static void parse_seccomp(struct ctx *c, const char *path, const cJSON *v, struct pst_seccomp *sc)
{
	static const char *const keys[] = { "default", "deny", "allow", NULL };
	if (!is_object(c, path, v))
		return;
	check_keys(c, path, v, keys);
	char p[PATH_MAX_LEN];
	const cJSON *x;
	if ((x = item(v, "default"))) {
		join(p, path, "default");
		if (!cJSON_IsString(x))
			type_err(c, p, x, "a string");
		else if (!strcmp(x->valuestring, "kill"))
			sc->action = PST_SECCOMP_KILL;
		else if (strcmp(x->valuestring, "errno"))
			err(c, p, x, "must be \"errno\" or \"kill\"");
	}
	if ((x = item(v, "deny")))
		join(p, path, "deny"), parse_unique_list(c, p, x, true, &sc->deny, &sc->n_deny);
	if ((x = item(v, "allow")))
		join(p, path, "allow"), parse_unique_list(c, p, x, true, &sc->allow, &sc->n_allow);
	for (size_t i = 0; i < sc->n_allow; i++)
		for (size_t j = 0; j < sc->n_deny; j++)
			if (!strcmp(sc->allow[i], sc->deny[j])) {
				join(p, path, "allow");
				err(c, p, NULL, "\"%s\" is both allowed and denied", sc->allow[i]);
			}
}

static bool env_reserved(const char *k)
{
	static const char *const reserved[] = { "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
						"REMOTE_ADDR", "REMOTE_PORT", "TCPREMOTEIP",
						"TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT",
						"PROTO", NULL };
	for (const char *const *r = reserved; *r; r++)
		if (!strcmp(*r, k))
			return true;
	return !strncmp(k, "POSTERN_", 8);
}

static void parse_env(struct ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	if (!is_object(c, path, v))
		return;
	s->env = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*s->env));
	if (!s->env) {
		err(c, path, NULL, "out of memory");
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		char p[PATH_MAX_LEN];
		join(p, path, it->string);
		const char *k = it->string;
		bool ok = (k[0] == '_' || (k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z'));
		for (const char *q = k; ok && *q; q++)
			ok = *q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
			     (*q >= '0' && *q <= '9');
		if (!ok) {
			err(c, p, NULL, "invalid variable name: must match [A-Za-z_][A-Za-z0-9_]*");
			continue;
		}
		if (env_reserved(k)) {
			err(c, p, NULL, "reserved: postern sets this variable itself");
			continue;
		}
		if (!cJSON_IsString(it)) {
			type_err(c, p, it, "a string");
			continue;
		}
		struct pst_env *e = &s->env[s->n_env];
		e->key = dup_or_oom(c, k);
		e->value = dup_or_oom(c, it->valuestring);
		if (e->key && e->value)
			s->n_env++;
		else {
			free(e->key);
			free(e->value);
			e->key = e->value = NULL;
		}
	}
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

static void parse_sandbox(struct ctx *c, const char *path, const cJSON *v, struct pst_sandbox *s)
{
	static const char *const keys[] = { "trigger", "restart", "prewarm", "send", "sockets",
					    "exec", "socket", "filesystem", "egress", "limits",
					    "seccomp", "env", "uid", "allow_bind", NULL };
	char p[PATH_MAX_LEN];
	const cJSON *x;

	sandbox_defaults(s);
	if (!is_object(c, path, v))
		return;
	check_keys(c, path, v, keys);

	join(p, path, "trigger");
	if ((x = item(v, "trigger")))
		parse_trigger(c, p, x, s);
	else
		err(c, path, NULL, "missing required key \"trigger\"");
	join(p, path, "exec");
	if ((x = item(v, "exec")))
		parse_exec(c, p, x, s);
	else
		err(c, path, NULL, "missing required key \"exec\"");

	if ((x = item(v, "restart"))) {
		join(p, path, "restart");
		if (!cJSON_IsString(x))
			type_err(c, p, x, "a string");
		else if (!strcmp(x->valuestring, "on-failure"))
			s->restart = PST_RESTART_ON_FAILURE;
		else if (!strcmp(x->valuestring, "always"))
			s->restart = PST_RESTART_ALWAYS;
		else if (strcmp(x->valuestring, "no"))
			err(c, p, x, "must be \"no\", \"on-failure\" or \"always\"");
		if (s->trigger && s->trigger != PST_TRIGGER_STARTUP)
			err(c, p, NULL, "only a startup sandbox can be restarted");
	}
	if ((x = item(v, "prewarm"))) {
		join(p, path, "prewarm");
		get_u32(c, p, x, 0, PREWARM_MAX, &s->prewarm);
		if (s->prewarm && s->trigger == PST_TRIGGER_STARTUP)
			err(c, p, NULL, "a startup sandbox has exactly one handler; prewarm does not apply");
	}
	if ((x = item(v, "send")))
		join(p, path, "send"), parse_unique_list(c, p, x, false, &s->send, &s->n_send);
	if ((x = item(v, "sockets"))) {
		join(p, path, "sockets");
		if (s->trigger && s->trigger != PST_TRIGGER_STARTUP)
			err(c, p, NULL, "only a startup sandbox can have sockets");
		else
			parse_addr_list(c, p, x, &s->sockets, &s->n_sockets);
	}
	if ((x = item(v, "socket"))) {
		join(p, path, "socket");
		if (!cJSON_IsString(x))
			type_err(c, p, x, "a string");
		else if (!strcmp(x->valuestring, "listen_fds"))
			s->socket = PST_SOCKET_LISTEN_FDS;
		else if (strcmp(x->valuestring, "stdio"))
			err(c, p, x, "must be \"stdio\" or \"listen_fds\"");
	}
	if ((x = item(v, "filesystem")))
		join(p, path, "filesystem"), parse_fs(c, p, x, s);
	if ((x = item(v, "egress")))
		join(p, path, "egress"), parse_egress(c, p, x, s);
	if ((x = item(v, "limits")))
		join(p, path, "limits"), parse_limits(c, p, x, &s->limits);
	if ((x = item(v, "seccomp")))
		join(p, path, "seccomp"), parse_seccomp(c, p, x, &s->seccomp);
	if ((x = item(v, "env")))
		join(p, path, "env"), parse_env(c, p, x, s);
	if ((x = item(v, "allow_bind")))
		join(p, path, "allow_bind"), get_bool(c, p, x, &s->allow_bind);
	if ((x = item(v, "uid"))) {
		join(p, path, "uid");
		if (get_u32(c, p, x, PST_UID_MIN, 4294967294u, &s->uid)) {
			if (s->uid == 65534)
				err(c, p, x, "65534 is \"nobody\", shared with other programs: give the sandbox a uid of its own");
			else
				s->uid_explicit = true;
		}
	}
	if (s->limits.per_source > s->limits.handlers) {
		join(p, path, "limits.per_source");
		err(c, p, NULL, "%u is more than limits.handlers (%u)", s->limits.per_source,
		    s->limits.handlers);
	}
}

static void parse_broker(struct ctx *c, const cJSON *v, struct pst_broker_conf *b)
{
	static const char *const keys[] = { "table", "control", "sandbox_net", "sandbox_net6",
					    "uid_base", "state_dir", "grace", "reuse_port",
					    "metrics", NULL };
	const cJSON *x;
	char why[160];

	if (!is_object(c, "broker", v))
		return;
	check_keys(c, "broker", v, keys);
	if ((x = item(v, "table"))) {
		free(b->table);
		b->table = NULL;
		if (get_string(c, "broker.table", x, &b->table)) {
			size_t n = strlen(b->table);
			bool ok = n >= 1 && n <= PST_TABLE_MAX;
			for (size_t i = 0; ok && i < n; i++) {
				char ch = b->table[i];
				ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				     (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
			}
			if (!ok)
				err(c, "broker.table", x, "must match [A-Za-z0-9_-]{1,32}");
		}
	}
	if ((x = item(v, "control"))) {
		free(b->control);
		b->control = NULL;
		if (get_abs_path(c, "broker.control", x, false, &b->control) &&
		    strlen(b->control) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			err(c, "broker.control", x, "unix socket path longer than 107 bytes");
	}
	if ((x = item(v, "state_dir"))) {
		free(b->state_dir);
		b->state_dir = NULL;
		get_abs_path(c, "broker.state_dir", x, false, &b->state_dir);
	}
	if ((x = item(v, "sandbox_net"))) {
		if (!cJSON_IsString(x))
			type_err(c, "broker.sandbox_net", x, "a CIDR string");
		else if (pst_parse_cidr(x->valuestring, &b->sandbox_net, why, sizeof(why)) < 0)
			err(c, "broker.sandbox_net", x, "%s", why);
		else if (b->sandbox_net.family != AF_INET)
			err(c, "broker.sandbox_net", x, "must be an IPv4 CIDR (IPv6 goes in sandbox_net6)");
		else if (b->sandbox_net.prefix > 30)
			err(c, "broker.sandbox_net", x, "prefix /%u leaves no room: at most /30",
			    b->sandbox_net.prefix);
	}
	if ((x = item(v, "sandbox_net6"))) {
		if (!cJSON_IsString(x))
			type_err(c, "broker.sandbox_net6", x, "a CIDR string");
		else if (pst_parse_cidr(x->valuestring, &b->sandbox_net6, why, sizeof(why)) < 0)
			err(c, "broker.sandbox_net6", x, "%s", why);
		else if (b->sandbox_net6.family != AF_INET6)
			err(c, "broker.sandbox_net6", x, "must be an IPv6 CIDR");
		else if (b->sandbox_net6.prefix > 64)
			err(c, "broker.sandbox_net6", x, "prefix /%u leaves no room: at most /64",
			    b->sandbox_net6.prefix);
	}
	if ((x = item(v, "uid_base")))
		get_u32(c, "broker.uid_base", x, 1000, 4000000000u, &b->uid_base);
	if ((x = item(v, "grace")))
		get_duration(c, "broker.grace", x, 0, GRACE_MAX_MS, &b->grace_ms);
	if ((x = item(v, "reuse_port")))
		get_bool(c, "broker.reuse_port", x, &b->reuse_port);
	if ((x = item(v, "metrics"))) {
		if (!cJSON_IsString(x)) {
			type_err(c, "broker.metrics", x, "an address string such as \"127.0.0.1:9100\"");
		} else if (pst_parse_sockaddr(x->valuestring, &b->metrics, why, sizeof(why)) < 0) {
			err(c, "broker.metrics", x, "%s", why);
		} else {
			bool lo = false;
			if (b->metrics.ss.ss_family == AF_INET)
				lo = (ntohl(((struct sockaddr_in *)&b->metrics.ss)->sin_addr.s_addr) >> 24) == 127;
			else if (b->metrics.ss.ss_family == AF_INET6)
				lo = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&b->metrics.ss)->sin6_addr);
			if (!lo)
				err(c, "broker.metrics", x, "must be a loopback address:port");
			else
				b->has_metrics = true;
		}
	}
}

/* ---- cross-checks ---------------------------------------------------------- */

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

static void cross_check(struct ctx *c, struct pst_policy *p)
{
	char path[PATH_MAX_LEN], n1[64], n2[64];

	/* duplicate addresses (listen and sockets, across all sandboxes) */
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (int k = 0; k < 2; k++) {
			const struct pst_sockaddr *as = k ? s->sockets : s->listen;
			size_t na = k ? s->n_sockets : s->n_listen;
			for (size_t a = 0; a < na; a++) {
				for (size_t j = 0; j <= i; j++) {
					const struct pst_sandbox *t = &p->sandboxes[j];
					for (int l = 0; l < 2; l++) {
						const struct pst_sockaddr *bs = l ? t->sockets : t->listen;
						size_t nb = l ? t->n_sockets : t->n_listen;
						for (size_t b = 0; b < nb; b++) {
							if (j == i && (l > k || (l == k && b >= a)))
								continue;
							if (bs[b].len != as[a].len ||
							    memcmp(&bs[b].ss, &as[a].ss, as[a].len))
								continue;
							snprintf(path, sizeof(path), "sandboxes.%s.%s[%zu]",
								 s->name, k ? "sockets" : "trigger.listen", a);
							err(c, path, NULL,
							    "\"%s\" is already declared by sandbox \"%s\"",
							    as[a].text, t->name);
						}
					}
				}
			}
		}
	}
	/* channels: one consumer, at least one sender, no sending to oneself */
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		if (s->channel) {
			bool sender = false;
			for (size_t j = 0; j < p->n_sandboxes; j++) {
				const struct pst_sandbox *t = &p->sandboxes[j];
				if (j < i && t->channel && !strcmp(t->channel, s->channel)) {
					snprintf(path, sizeof(path), "sandboxes.%s.trigger", s->name);
					err(c, path, NULL, "channel \"%s\" already has a consumer: sandbox \"%s\"",
					    s->channel, t->name);
				}
				for (size_t k = 0; k < t->n_send; k++)
					sender |= !strcmp(t->send[k], s->channel);
			}
			if (!sender) {
				snprintf(path, sizeof(path), "sandboxes.%s.trigger", s->name);
				err(c, path, NULL, "channel \"%s\" has no sender (no sandbox lists it in \"send\")",
				    s->channel);
			}
		}
		for (size_t k = 0; k < s->n_send; k++) {
			snprintf(path, sizeof(path), "sandboxes.%s.send[%zu]", s->name, k);
			if (s->channel && !strcmp(s->channel, s->send[k])) {
				err(c, path, NULL, "a sandbox cannot send to its own channel \"%s\"", s->send[k]);
				continue;
			}
			bool consumer = false;
			for (size_t j = 0; j < p->n_sandboxes; j++)
				consumer |= p->sandboxes[j].channel && !strcmp(p->sandboxes[j].channel, s->send[k]);
			if (!consumer)
				err(c, path, NULL,
				    "channel \"%s\" has no consumer (no sandbox has it as pipe or fdpass trigger)",
				    s->send[k]);
		}
	}
	/* address pools: room for every sandbox, and no egress into them */
	unsigned long long need = p->n_sandboxes;
	if (32 - p->broker.sandbox_net.prefix < 63 &&
	    (1ull << (32 - p->broker.sandbox_net.prefix)) / 4 < need) {
		pst_cidr_format(&p->broker.sandbox_net, n1, sizeof(n1));
		err(c, "broker.sandbox_net", NULL, "%s holds %llu sandboxes (a /30 each), the policy has %llu",
		    n1, (1ull << (32 - p->broker.sandbox_net.prefix)) / 4, need);
	}
	if (64 - p->broker.sandbox_net6.prefix < 40 &&
	    (1ull << (64 - p->broker.sandbox_net6.prefix)) < need) {
		pst_cidr_format(&p->broker.sandbox_net6, n1, sizeof(n1));
		err(c, "broker.sandbox_net6", NULL, "%s holds %llu sandboxes (a /64 each), the policy has %llu",
		    n1, 1ull << (64 - p->broker.sandbox_net6.prefix), need);
	}
	if ((unsigned long long)p->broker.uid_base + PST_UID_RANGE - 1 > 4294967294ull)
		err(c, "broker.uid_base", NULL, "uid_base + %u exceeds the uid range", PST_UID_RANGE - 1);
	/* uids: stable per name (a reorder or insert changes none), unique */
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		struct pst_sandbox *s = &p->sandboxes[i];
		if (!s->uid_explicit)
			s->uid = pst_sandbox_default_uid(p->broker.uid_base, s->name);
		for (size_t j = 0; j < i; j++) {
			const struct pst_sandbox *t = &p->sandboxes[j];
			if (t->uid != s->uid)
				continue;
			snprintf(path, sizeof(path), "sandboxes.%s%s", s->name, s->uid_explicit ? ".uid" : "");
			err(c, path, NULL,
			    "uid %u (%s) is also the uid of sandbox \"%s\" (%s): two sandboxes would own "
			    "each other's files; set \"uid\" on one of them to a uid of its own",
			    s->uid, s->uid_explicit ? "its \"uid\"" : "derived from its name", t->name,
			    t->uid_explicit ? "its \"uid\"" : "derived from its name");
		}
	}
	/* bind sources inside what a sandbox's handlers can write on the
	 * host (an rw bind, of any sandbox, this one included): a handler
	 * could replace the source with a symlink, and the next root built
	 * (a spawn, or a reload's root template) would bind what it points
	 * to. tmpfs and proc entries are no host paths: nothing is bound from
	 * them. The same path bound twice is fine: the directory entry of an
	 * rw bind's own root is not the handlers' to replace. */
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t k = 0; k < s->n_fs; k++) {
			if (s->fs[k].kind != PST_FS_BIND)
				continue;
			for (size_t j = 0; j < p->n_sandboxes; j++) {
				const struct pst_sandbox *t = &p->sandboxes[j];
				for (size_t m = 0; m < t->n_fs; m++) {
					if (t->fs[m].kind != PST_FS_BIND || !t->fs[m].rw ||
					    !path_below(s->fs[k].src, t->fs[m].src))
						continue;
					snprintf(path, sizeof(path), "sandboxes.%s.filesystem[%zu].bind", s->name, k);
					char owner[64];
					if (j == i)
						snprintf(owner, sizeof(owner), "this sandbox");
					else
						snprintf(owner, sizeof(owner), "sandbox \"%s\"", t->name);
					cJSON *val = cJSON_CreateString(s->fs[k].src);
					err(c, path, val,
					    "lies inside \"%s\", an rw bind of %s (filesystem[%zu]): its handlers "
					    "could replace it with a symlink to any host path; bind a path outside "
					    "every rw bind",
					    t->fs[m].src, owner, m);
					cJSON_Delete(val);
					goto next_bind;	/* one message per entry */
				}
			}
		next_bind:;
		}
	}
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		for (size_t k = 0; k < s->n_egress; k++) {
			const struct pst_cidr *pool = s->egress[k].to.family == AF_INET
							      ? &p->broker.sandbox_net
							      : &p->broker.sandbox_net6;
			if (!cidr_overlap(&s->egress[k].to, pool))
				continue;
			snprintf(path, sizeof(path), "sandboxes.%s.egress[%zu].to", s->name, k);
			pst_cidr_format(&s->egress[k].to, n1, sizeof(n1));
			pst_cidr_format(pool, n2, sizeof(n2));
			err(c, path, NULL,
			    "%s overlaps the sandbox address pool %s: sandboxes may not reach each other",
			    n1, n2);
		}
	}
}

/* ---- top level ------------------------------------------------------------------ */

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

static void syntax_error(struct ctx *c, const char *json, size_t len, const char *at)
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
	for (size_t i = from; i < len && i < off + 4 && json[i] != '\n' && n < sizeof(near) - 1; i++)
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
		r = asprintf(&m, "%s:%u:%u: JSON syntax error: unexpected end of file", c->file, line, col);
	else
		r = asprintf(&m, "%s:%u:%u: JSON syntax error near '%s'", c->file, line, col, np);
	c->errors++;
	if (r >= 0)
		diag_add(c->diag, m);
}

int pst_policy_parse(const char *file, const char *json, size_t len, struct pst_policy **out,
		     struct pst_diag *diag)
{
	struct ctx c = { .file = file, .diag = diag };
	struct pst_policy *p = NULL;
	cJSON *root = NULL;

	*out = NULL;
	if (len > POLICY_MAX_BYTES) {
		err(&c, "(file)", NULL, "larger than %u bytes", POLICY_MAX_BYTES);
		return -EINVAL;
	}
	if (memchr(json, 0, len)) {
		syntax_error(&c, json, len, memchr(json, 0, len));
		return -EINVAL;
	}
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (!root) {
		syntax_error(&c, json, len, end ? end : cJSON_GetErrorPtr());
		return -EINVAL;
	}
	/* trailing garbage after the document */
	for (const char *q = end; q && q < json + len; q++)
		if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r') {
			syntax_error(&c, json, len, q);
			cJSON_Delete(root);
			return -EINVAL;
		}

	p = calloc(1, sizeof(*p));
	if (!p || !(p->file = strdup(file)) || broker_defaults(&p->broker) < 0) {
		err(&c, "(policy)", NULL, "out of memory");
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		type_err(&c, "(top level)", root, "an object");
		goto out;
	}
	check_duplicates(&c, "", root);
	static const char *const keys[] = { "postern", "broker", "sandboxes", NULL };
	check_keys(&c, "", root, keys);

	const cJSON *ver = item(root, "postern");
	if (!ver)
		err(&c, "postern", NULL, "missing required key: the format version, 1");
	else if (!cJSON_IsNumber(ver) || ver->valuedouble != PST_POLICY_VERSION)
		err(&c, "postern", ver, "unsupported format version: this postern reads version %d",
		    PST_POLICY_VERSION);

	const cJSON *br = item(root, "broker");
	if (br)
		parse_broker(&c, br, &p->broker);

	const cJSON *sbs = item(root, "sandboxes");
	if (!sbs) {
		err(&c, "sandboxes", NULL, "missing required key: at least one sandbox");
	} else if (!cJSON_IsObject(sbs)) {
		type_err(&c, "sandboxes", sbs, "an object");
	} else if (!sbs->child) {
		err(&c, "sandboxes", NULL, "at least one sandbox is required");
	} else {
		size_t n = (size_t)cJSON_GetArraySize(sbs);
		if (n > LIST_MAX) {
			err(&c, "sandboxes", NULL, "too many sandboxes (%zu; at most %d)", n, LIST_MAX);
			goto out;
		}
		p->sandboxes = calloc(n, sizeof(*p->sandboxes));
		if (!p->sandboxes) {
			err(&c, "sandboxes", NULL, "out of memory");
			goto out;
		}
		const cJSON *it;
		cJSON_ArrayForEach(it, sbs)
		{
			char path[PATH_MAX_LEN];
			join(path, "sandboxes", it->string);
			if (!name_ok(it->string)) {
				err(&c, path, NULL, "invalid sandbox name: must match [a-z0-9][a-z0-9_-]{0,11}");
				continue;
			}
			struct pst_sandbox *s = &p->sandboxes[p->n_sandboxes++];
			s->index = (uint32_t)(p->n_sandboxes - 1);
			s->name = strdup(it->string);
			if (!s->name)
				err(&c, path, NULL, "out of memory");
			parse_sandbox(&c, path, it, s);
		}
	}
	if (!c.errors)
		cross_check(&c, p);
out:
	cJSON_Delete(root);
	if (c.errors) {
		pst_policy_free(p);
		return -EINVAL;
	}
	*out = p;
	return 0;
}

int pst_policy_load(const char *path, struct pst_policy **out, struct pst_diag *diag)
{
	struct ctx c = { .file = path, .diag = diag };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	*out = NULL;
	if (fd < 0) {
		int e = errno;
		err(&c, "(file)", NULL, "cannot open: %s", strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		err(&c, "(file)", NULL, "not a regular file");
		return -EINVAL;
	}
	if (st.st_size > POLICY_MAX_BYTES) {
		close(fd);
		err(&c, "(file)", NULL, "larger than %u bytes", POLICY_MAX_BYTES);
		return -EFBIG;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		err(&c, "(file)", NULL, "out of memory");
		return -ENOMEM;
	}
	size_t len = 0;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			free(buf);
			err(&c, "(file)", NULL, "read: %s", strerror(e));
			return -e;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	int r = pst_policy_parse(path, buf, len, out, diag);
	free(buf);
	return r;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void pst_policy_free(struct pst_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		struct pst_sandbox *s = &p->sandboxes[i];
		free(s->name);
		free(s->listen);
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
	free(p->sandboxes);
	free(p->broker.table);
	free(p->broker.control);
	free(p->broker.state_dir);
	free(p->file);
	free(p);
}

uint32_t pst_sandbox_default_uid(uint32_t uid_base, const char *name)
{
	uint32_t h = 2166136261u;	/* FNV-1a, 32 bits */
	for (const unsigned char *q = (const unsigned char *)name; *q; q++)
		h = (h ^ *q) * 16777619u;
	return uid_base + h % PST_UID_RANGE;
}

const struct pst_sandbox *pst_policy_find(const struct pst_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_sandboxes; i++)
		if (!strcmp(p->sandboxes[i].name, name))
			return &p->sandboxes[i];
	return NULL;
}
