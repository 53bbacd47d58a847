/* SPDX-License-Identifier: MIT */
/*
 * The policy loader's JSON access: diagnostics ("FILE: PATH: VALUE:
 * message"), JSON paths, duplicate and unknown keys, and the typed getters
 * over cJSON values (strings, booleans, integers, durations, sizes, names,
 * absolute paths, CIDRs, addresses), each reporting what it refuses.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "broker/policy_internal.h"

#define VALUE_SHOWN_MAX 60

/* ---- diagnostics ---------------------------------------------------------- */

void pol_diag_add(struct pst_diag *d, char *msg)
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

void pol_json_deletep(struct cJSON **v)
{
	cJSON_Delete(*v);
}

/* A short JSON rendering of v for messages. */
static void show_value(const cJSON *v, char *buf, size_t len)
{
	pol_autofree char *s = cJSON_PrintUnformatted(v);
	if (!s)
		snprintf(buf, len, "?");
	else if (strlen(s) > VALUE_SHOWN_MAX)
		snprintf(buf, len, "%.*s...", VALUE_SHOWN_MAX, s);
	else
		snprintf(buf, len, "%s", s);
}

__attribute__((format(printf, 4, 0))) static void verr(struct pol_ctx *c, const char *path,
                                                       const cJSON *v, const char *fmt, va_list ap)
{
	char msg[512], val[VALUE_SHOWN_MAX + 8];
	vsnprintf(msg, sizeof(msg), fmt, ap);
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
		pol_diag_add(c->diag, line);
}

void pol_err(struct pol_ctx *c, const char *path, const cJSON *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(c, path, v, fmt, ap);
	va_end(ap);
}

void pol_err_str(struct pol_ctx *c, const char *path, const char *v, const char *fmt, ...)
{
	pol_autojson cJSON *val = cJSON_CreateString(v);
	va_list ap;
	va_start(ap, fmt);
	verr(c, path, val, fmt, ap);
	va_end(ap);
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

void pol_type_err(struct pol_ctx *c, const char *path, const cJSON *v, const char *expected)
{
	pol_err(c, path, v, "expected %s, got %s", expected, type_name(v));
}

/* ---- JSON paths ---------------------------------------------------------------- */

/* Paths longer than POL_PATH_MAX are cut: they only appear in messages. */
static void append(char *out, size_t *len, const char *s)
{
	while (*s && *len < POL_PATH_MAX - 1)
		out[(*len)++] = *s++;
	out[*len] = 0;
}

void pol_join(char *out, const char *path, const char *key)
{
	size_t len = 0;
	out[0] = 0;
	append(out, &len, path);
	if (path[0])
		append(out, &len, ".");
	append(out, &len, key);
}

void pol_join_idx(char *out, const char *path, size_t i)
{
	char idx[32];
	size_t len = 0;
	snprintf(idx, sizeof(idx), "[%zu]", i);
	out[0] = 0;
	append(out, &len, path);
	append(out, &len, idx);
}

/* ---- keys ------------------------------------------------------------------------ */

void pol_check_keys(struct pol_ctx *c, const char *path, const cJSON *obj,
                    const char *const *allowed)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, obj)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, it->string))
				ok = true;
		if (ok)
			continue;
		char p[POL_PATH_MAX], list[256] = "";
		pol_join(p, path, it->string);
		for (const char *const *a = allowed; *a; a++) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%s", l ? ", " : "", *a);
		}
		pol_err(c, p, NULL, "unknown key (allowed here: %s)", list);
	}
}

/* cJSON keeps duplicate keys as siblings: report every repeat. */
void pol_check_duplicates(struct pol_ctx *c, const char *path, const cJSON *v)
{
	const cJSON *it;
	size_t i = 0;
	cJSON_ArrayForEach(it, v)
	{
		char p[POL_PATH_MAX];
		if (cJSON_IsObject(v)) {
			pol_join(p, path, it->string);
			for (const cJSON *prev = v->child; prev != it; prev = prev->next)
				if (!strcmp(prev->string, it->string)) {
					pol_err(c, p, NULL, "duplicate key");
					break;
				}
		} else {
			pol_join_idx(p, path, i);
		}
		if (cJSON_IsObject(it) || cJSON_IsArray(it))
			pol_check_duplicates(c, p, it);
		i++;
	}
}

/* ---- JSON access ------------------------------------------------------------------ */

const cJSON *pol_item(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

bool pol_is_object(struct pol_ctx *c, const char *path, const cJSON *v)
{
	if (!cJSON_IsObject(v)) {
		pol_type_err(c, path, v, "an object");
		return false;
	}
	return true;
}

bool pol_is_array(struct pol_ctx *c, const char *path, const cJSON *v, bool nonempty)
{
	if (!cJSON_IsArray(v)) {
		pol_type_err(c, path, v, "an array");
		return false;
	}
	int n = cJSON_GetArraySize(v);
	if (nonempty && n == 0) {
		pol_err(c, path, v, "must not be empty");
		return false;
	}
	if (n > POL_LIST_MAX) {
		pol_err(c, path, NULL, "too many entries (%d; at most %d)", n, POL_LIST_MAX);
		return false;
	}
	return true;
}

/* ---- typed getters ------------------------------------------------------------------ */

char *pol_strdup(struct pol_ctx *c, const char *s)
{
	char *d = strdup(s);
	if (!d)
		pol_err(c, "(policy)", NULL, "out of memory");
	return d;
}

bool pol_get_string(struct pol_ctx *c, const char *path, const cJSON *v, char **out)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a string");
		return false;
	}
	*out = pol_strdup(c, v->valuestring);
	return *out != NULL;
}

bool pol_get_bool(struct pol_ctx *c, const char *path, const cJSON *v, bool *out)
{
	if (!cJSON_IsBool(v)) {
		pol_type_err(c, path, v, "a boolean (true or false)");
		return false;
	}
	*out = cJSON_IsTrue(v);
	return true;
}

bool pol_get_uint(struct pol_ctx *c, const char *path, const cJSON *v, uint64_t min, uint64_t max,
                  uint64_t *out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) {
		pol_type_err(c, path, v, "an integer");
		return false;
	}
	if (v->valuedouble < (double)min || v->valuedouble > (double)max) {
		pol_err(c, path, v, "out of range %llu-%llu", (unsigned long long)min,
		        (unsigned long long)max);
		return false;
	}
	*out = (uint64_t)v->valuedouble;
	return true;
}

bool pol_get_u32(struct pol_ctx *c, const char *path, const cJSON *v, uint32_t min, uint32_t max,
                 uint32_t *out)
{
	uint64_t x;
	if (!pol_get_uint(c, path, v, min, max, &x))
		return false;
	*out = (uint32_t)x;
	return true;
}

bool pol_get_duration(struct pol_ctx *c, const char *path, const cJSON *v, uint64_t min_ms,
                      uint64_t max_ms, uint64_t *out)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a duration string such as \"30s\"");
		return false;
	}
	uint64_t ms;
	int r = pst_parse_duration_ms(v->valuestring, &ms);
	if (r == -ERANGE || (r == 0 && ms > max_ms)) {
		pol_err(c, path, v, "duration too long (at most %llus)",
		        (unsigned long long)(max_ms / 1000));
		return false;
	}
	if (r < 0) {
		pol_err(c, path, v, "not a duration: an integer followed by ms, s, m or h");
		return false;
	}
	if (ms < min_ms) {
		pol_err(c, path, v, "duration too short (at least %llums)",
		        (unsigned long long)min_ms);
		return false;
	}
	*out = ms;
	return true;
}

bool pol_get_size(struct pol_ctx *c, const char *path, const cJSON *v, uint64_t min, uint64_t *out)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a size string such as \"64M\"");
		return false;
	}
	uint64_t b;
	int r = pst_parse_size(v->valuestring, &b);
	if (r == -ERANGE) {
		pol_err(c, path, v, "size too large");
		return false;
	}
	if (r < 0) {
		pol_err(c, path, v, "not a size: an integer, optionally followed by K, M or G");
		return false;
	}
	if (b < min) {
		pol_err(c, path, v, "size too small (at least %llu bytes)",
		        (unsigned long long)min);
		return false;
	}
	*out = b;
	return true;
}

bool pol_get_enum(struct pol_ctx *c, const char *path, const cJSON *v, const struct pol_enum *names,
                  size_t n, int *out)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a string");
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v->valuestring, names[i].name)) {
			*out = names[i].value;
			return true;
		}
	char list[256] = "";
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(list);
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
		snprintf(list + l, sizeof(list) - l, "%s\"%s\"", sep, names[i].name);
	}
	pol_err(c, path, v, "must be %s", list);
	return false;
}

bool pol_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > PST_NAME_MAX)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		      ch == '-'))
			return false;
	}
	return true;
}

bool pol_get_name(struct pol_ctx *c, const char *path, const cJSON *v, const char *what, char **out)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a string");
		return false;
	}
	if (!pol_name_ok(v->valuestring)) {
		pol_err(c, path, v, "invalid %s: must match [a-z0-9][a-z0-9_-]{0,11}", what);
		return false;
	}
	*out = pol_strdup(c, v->valuestring);
	return *out != NULL;
}

/* Absolute path without "." or ".." components, not "/" itself. */
static bool abs_path_ok(struct pol_ctx *c, const char *path, const cJSON *v, bool allow_root)
{
	const char *s = v->valuestring;
	if (s[0] != '/') {
		pol_err(c, path, v, "must be an absolute path");
		return false;
	}
	if (!allow_root && !strcmp(s, "/")) {
		pol_err(c, path, v, "cannot be / itself");
		return false;
	}
	if (strlen(s) >= 4096) {
		pol_err(c, path, v, "path too long");
		return false;
	}
	for (const char *p = s; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			pol_err(c, path, v, "\".\" and \"..\" components are not allowed");
			return false;
		}
		p += n;
	}
	return true;
}

bool pol_get_abs_path(struct pol_ctx *c, const char *path, const cJSON *v, bool allow_root,
                      char **out)
{
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, "a string");
		return false;
	}
	if (!abs_path_ok(c, path, v, allow_root))
		return false;
	/* normalise: no trailing or doubled slashes */
	char *d = malloc(strlen(v->valuestring) + 1), *o = d;
	if (!d) {
		pol_err(c, path, NULL, "out of memory");
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

bool pol_get_cidr(struct pol_ctx *c, const char *path, const cJSON *v, const char *expected,
                  struct pst_cidr *out)
{
	char why[160];
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, expected);
		return false;
	}
	if (pst_parse_cidr(v->valuestring, out, why, sizeof(why)) < 0) {
		pol_err(c, path, v, "%s", why);
		return false;
	}
	return true;
}

bool pol_get_sockaddr(struct pol_ctx *c, const char *path, const cJSON *v, const char *expected,
                      struct pst_sockaddr *out)
{
	char why[160];
	if (!cJSON_IsString(v)) {
		pol_type_err(c, path, v, expected);
		return false;
	}
	if (pst_parse_sockaddr(v->valuestring, out, why, sizeof(why)) < 0) {
		pol_err(c, path, v, "%s", why);
		return false;
	}
	return true;
}
