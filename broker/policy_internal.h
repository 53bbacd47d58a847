/* SPDX-License-Identifier: MIT */
/*
 * The policy loader's private header, for broker/policy*.c alone: the parse
 * context, the typed getters over JSON values (policy_json.c), the section
 * parsers (policy_sandbox.c) and the verifier (policy_verify.c). broker.h
 * stays the public model.
 *
 * cJSON is only named here, as the opaque `struct cJSON`: the files that
 * walk JSON include <cJSON.h> themselves; the verifier reads plain structs
 * and hands a value it was given back to the diagnostics untouched.
 */
#ifndef POSTERN_BROKER_POLICY_INTERNAL_H
#define POSTERN_BROKER_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker/broker.h"

struct cJSON;

#define POL_PATH_MAX 256 /* JSON paths in messages; longer ones are cut */
#define POL_LIST_MAX 256 /* entries of any list in a policy, sandboxes included */

/* Where a parsed filesystem entry came from, for the verifier's messages:
 * the public model keeps no JSON. An entry whose `mode`, `size` or `target`
 * failed is kept (complete == false) only so that the verifier still looks
 * at its bind source; it never reaches a loaded policy. */
struct pol_fs_origin {
	size_t index;            /* in the policy's "filesystem" array */
	const char *dst_key;     /* the key naming its destination: "to", "bind", ... */
	const struct cJSON *src; /* bind: the "bind" value as written */
	bool complete;           /* every key of the entry parsed */
};

struct pol_sandbox_origin {
	struct pol_fs_origin *fs; /* one per pst_sandbox.fs entry */
};

struct pol_ctx {
	const char *file;
	struct pst_diag *diag;
	size_t errors;
	struct pol_sandbox_origin *origin; /* one per pst_policy.sandboxes entry */
};

/* ---- cleanup helpers ------------------------------------------------------- */

static inline void pol_freep(void *p)
{
	free(*(void **)p);
}

static inline void pol_closep(const int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

void pol_json_deletep(struct cJSON **v);
void pol_policy_freep(struct pst_policy **p);

#define pol_autofree __attribute__((cleanup(pol_freep)))
#define pol_autoclose __attribute__((cleanup(pol_closep)))
#define pol_autojson __attribute__((cleanup(pol_json_deletep)))
#define pol_autopolicy __attribute__((cleanup(pol_policy_freep)))

/* ---- diagnostics and JSON paths (policy_json.c) ------------------------------ */

/* Takes msg (NULL is ignored). */
void pol_diag_add(struct pst_diag *d, char *msg);
/* "FILE: PATH: VALUE: message", or "FILE: PATH: message" without a value;
 * counts an error. pol_err_str shows a string as JSON would. */
__attribute__((format(printf, 4, 5))) void pol_err(struct pol_ctx *c, const char *path,
                                                   const struct cJSON *v, const char *fmt, ...);
__attribute__((format(printf, 4, 5))) void pol_err_str(struct pol_ctx *c, const char *path,
                                                       const char *v, const char *fmt, ...);
void pol_type_err(struct pol_ctx *c, const char *path, const struct cJSON *v, const char *expected);
void pol_join(char *out, const char *path, const char *key); /* "path.key" */
void pol_join_idx(char *out, const char *path, size_t i);    /* "path[i]" */

/* Every key of obj must be in allowed (NULL-terminated). */
void pol_check_keys(struct pol_ctx *c, const char *path, const struct cJSON *obj,
                    const char *const *allowed);
/* Every repeated key, at any depth. */
void pol_check_duplicates(struct pol_ctx *c, const char *path, const struct cJSON *v);

/* ---- JSON access (policy_json.c) ----------------------------------------------- */

const struct cJSON *pol_item(const struct cJSON *obj, const char *key);
bool pol_is_object(struct pol_ctx *c, const char *path, const struct cJSON *v);
/* An array of at most POL_LIST_MAX entries; nonempty: at least one. */
bool pol_is_array(struct pol_ctx *c, const char *path, const struct cJSON *v, bool nonempty);

/* The getters: true and *out set, or false with the error reported and *out
 * untouched (a string getter leaves NULL). Strings are the caller's. */
char *pol_strdup(struct pol_ctx *c, const char *s);
bool pol_get_string(struct pol_ctx *c, const char *path, const struct cJSON *v, char **out);
bool pol_get_bool(struct pol_ctx *c, const char *path, const struct cJSON *v, bool *out);
bool pol_get_uint(struct pol_ctx *c, const char *path, const struct cJSON *v, uint64_t min,
                  uint64_t max, uint64_t *out);
bool pol_get_u32(struct pol_ctx *c, const char *path, const struct cJSON *v, uint32_t min,
                 uint32_t max, uint32_t *out);
bool pol_get_duration(struct pol_ctx *c, const char *path, const struct cJSON *v, uint64_t min_ms,
                      uint64_t max_ms, uint64_t *out);
bool pol_get_size(struct pol_ctx *c, const char *path, const struct cJSON *v, uint64_t min,
                  uint64_t *out);

/* One of a list of strings: `must be "a", "b" or "c"` otherwise. */
struct pol_enum {
	const char *name;
	int value;
};
bool pol_get_enum(struct pol_ctx *c, const char *path, const struct cJSON *v,
                  const struct pol_enum *names, size_t n, int *out);

/* Sandbox and channel names: [a-z0-9][a-z0-9_-]{0,11}. */
bool pol_name_ok(const char *s);
bool pol_get_name(struct pol_ctx *c, const char *path, const struct cJSON *v, const char *what,
                  char **out);
/* An absolute path without "." or ".." components (nor "/" itself unless
 * allow_root), normalised: no doubled or trailing slashes. */
bool pol_get_abs_path(struct pol_ctx *c, const char *path, const struct cJSON *v, bool allow_root,
                      char **out);
/* expected: the type named when v is not a string. */
bool pol_get_cidr(struct pol_ctx *c, const char *path, const struct cJSON *v, const char *expected,
                  struct pst_cidr *out);
bool pol_get_sockaddr(struct pol_ctx *c, const char *path, const struct cJSON *v,
                      const char *expected, struct pst_sockaddr *out);

/* ---- section parsers (policy_sandbox.c, policy_trigger.c) ------------------------ */

#define POL_UID_MAX 4294967294u /* the largest uid or gid a policy may name */

/* A sandbox's "trigger" object (policy_trigger.c). */
void pol_parse_trigger(struct pol_ctx *c, const char *path, const struct cJSON *v,
                       struct pst_sandbox *s, struct pol_sandbox_origin *o);
/* A list of listen-style addresses ("sockets"), into *out (n of them). */
void pol_parse_addr_list(struct pol_ctx *c, const char *path, const struct cJSON *v,
                         struct pst_sockaddr **out, size_t *n);
/* A list of CIDRs (allow_from, deny_from), IPv4-mapped IPv6 ones as IPv4. */
void pol_parse_cidr_list(struct pol_ctx *c, const char *path, const struct cJSON *v,
                         struct pst_cidr **out, size_t *n);

/* s has its defaults; path is "sandboxes.NAME". */
void pol_parse_sandbox(struct pol_ctx *c, const char *path, const struct cJSON *v,
                       struct pst_sandbox *s, struct pol_sandbox_origin *o);
/* b has its defaults. */
void pol_parse_broker(struct pol_ctx *c, const struct cJSON *v, struct pst_broker_conf *b);

/* ---- the verifier (policy_verify.c) ------------------------------------------------ */

/* Every rule that relates parsed values to each other or to the host; see
 * the function for the list. c->origin describes p's sandboxes. */
void pol_verify(struct pol_ctx *c, const struct pst_policy *p);

#endif
