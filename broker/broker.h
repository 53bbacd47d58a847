/* SPDX-License-Identifier: MIT */
/*
 * broker/ public header: the policy model (plain C structs) and its loader.
 *
 * The loader turns one JSON policy file (DESIGN.md, "Policy file") into a
 * struct pst_policy. No cJSON type leaves the loader. Every string is owned
 * by the policy and freed by pst_policy_free(). Defaults are filled in one
 * place (the loader's defaults pass, broker/policy.c), so a loaded policy is
 * complete: consumers never re-derive a default.
 */
#ifndef POSTERN_BROKER_H
#define POSTERN_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define PST_POLICY_VERSION 1
#ifndef PST_VERSION
#define PST_VERSION "0.1.0" /* postern --version, postern_build_info */
#endif
#define PST_NAME_MAX 12  /* sandbox names: [a-z0-9][a-z0-9_-]{0,11} */
#define PST_TABLE_MAX 32 /* nftables table name length */
#define PST_ADDR_TEXT_MAX 128

/* Defaults (DESIGN.md); documented in README.md and `postern --help`. */
#define PST_DEFAULT_TABLE "postern"
#define PST_DEFAULT_CONTROL "/run/postern/control.sock"
#define PST_DEFAULT_STATE_DIR "/run/postern"
#define PST_DEFAULT_SANDBOX_NET "100.127.0.0/16"
#define PST_DEFAULT_SANDBOX_NET6 "fd70:6f73::/48"
#define PST_DEFAULT_UID_BASE 200000u
#define PST_UID_RANGE 65536u /* default uids: uid_base + FNV-1a(name) % this */
#define PST_UID_MIN 1000u    /* an explicit "uid" */
#define PST_DEFAULT_GRACE_MS 10000u
#define PST_DEFAULT_HANDLERS 64u
#define PST_DEFAULT_TIMEOUT_MS 60000u
#define PST_DEFAULT_MEMORY (256ull << 20)
#define PST_DEFAULT_PIDS 64u
#define PST_DEFAULT_NOFILE 256u
#define PST_DEFAULT_TMPFS_SIZE (16ull << 20)

/* An address a listener, a `sockets` entry or `metrics` names. */
struct pst_sockaddr {
	struct sockaddr_storage ss; /* AF_INET, AF_INET6 or AF_UNIX */
	socklen_t len;
	char text[PST_ADDR_TEXT_MAX]; /* as written: "127.0.0.1:7000", "[::1]:7000", "unix:/p" */
};

/* A CIDR; a plain address in the policy becomes a /32 or /128. */
struct pst_cidr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order; host bits are zero */
	uint8_t prefix;
};

/* Who may connect to a TCP listener (allow_from / deny_from): deny wins;
 * n_allow == 0: everyone not denied. */
struct pst_access {
	struct pst_cidr *allow;
	size_t n_allow;
	struct pst_cidr *deny;
	size_t n_deny;
};

/* What a `trigger.listen` object adds to its address. */
struct pst_listen_opt {
	bool own_access;          /* allow_from or deny_from given: replaces the sandbox's */
	struct pst_access access; /* TCP only */
	bool has_mode, has_owner, has_group; /* unix only */
	uint32_t mode;                       /* permission bits, <= 0777 */
	uint32_t owner, group;               /* resolved at load */
	uint32_t *allow_uids;                /* SO_PEERCRED; both empty: everyone */
	size_t n_allow_uids;
	uint32_t *allow_gids; /* the peer's primary or a supplementary group */
	size_t n_allow_gids;
};

enum pst_trigger {
	PST_TRIGGER_LISTEN = 1,
	PST_TRIGGER_PIPE,
	PST_TRIGGER_FDPASS,
	PST_TRIGGER_STARTUP,
};

enum pst_restart { PST_RESTART_NO = 0, PST_RESTART_ON_FAILURE, PST_RESTART_ALWAYS };
enum pst_socket_mode { PST_SOCKET_STDIO = 0, PST_SOCKET_LISTEN_FDS };
enum pst_fs_kind { PST_FS_BIND = 1, PST_FS_TMPFS, PST_FS_PROC, PST_FS_SYMLINK };

struct pst_fs {
	enum pst_fs_kind kind;
	char *src;     /* bind: absolute host path; NULL otherwise */
	char *dst;     /* path inside the sandbox (bind: `to`, or src) */
	bool rw;       /* bind: mode "rw" */
	uint64_t size; /* tmpfs: bytes (default PST_DEFAULT_TMPFS_SIZE) */
	char *target;  /* symlink: link target */
};

enum pst_proto { PST_PROTO_ANY = 0, PST_PROTO_ICMP = 1, PST_PROTO_TCP = 6, PST_PROTO_UDP = 17 };

struct pst_egress {
	struct pst_cidr to;
	enum pst_proto proto;
	uint16_t *ports; /* only with tcp/udp; n_ports == 0: any port */
	size_t n_ports;
};

struct pst_limits {
	uint32_t handlers;   /* concurrent handlers (default PST_DEFAULT_HANDLERS) */
	uint32_t per_source; /* concurrent per client address; 0: no cap */
	double rate;         /* new handlers per second; 0: no cap */
	uint64_t timeout_ms; /* wall clock; default PST_DEFAULT_TIMEOUT_MS */
	uint64_t memory;     /* bytes; default PST_DEFAULT_MEMORY */
	uint32_t pids;       /* default PST_DEFAULT_PIDS */
	uint32_t nofile;     /* default PST_DEFAULT_NOFILE */
	double cpu;          /* cores; 0: no cap */
};

enum pst_seccomp_action { PST_SECCOMP_ERRNO = 0, PST_SECCOMP_KILL };

struct pst_seccomp {
	enum pst_seccomp_action action; /* for the denied syscalls */
	char **deny;                    /* names libseccomp knows */
	size_t n_deny;
	char **allow; /* removed from the default deny list */
	size_t n_allow;
};

struct pst_env {
	char *key;
	char *value;
};

struct pst_sandbox {
	char *name;
	char *source;        /* its JSON object, compact: what a reload compares */
	uint32_t index;      /* position in "sandboxes" */
	uint32_t uid;        /* host uid and gid of its handlers: "uid", or
	                      * pst_sandbox_default_uid(); unique in the policy */
	bool uid_explicit;   /* "uid" was given */
	bool allow_bind;     /* handlers may bind(), listen() (seccomp, Landlock) */
	bool identity_files; /* the root gets /etc/passwd, /etc/group, /etc/hosts */
	enum pst_trigger trigger;
	struct pst_sockaddr *listen;       /* trigger listen */
	struct pst_listen_opt *listen_opt; /* one per listen entry (zeroed for a string) */
	size_t n_listen;
	struct pst_access access; /* allow_from / deny_from, listen triggers only */
	char *channel;            /* trigger pipe / fdpass */
	enum pst_restart restart; /* startup only */
	uint32_t prewarm;
	char **send; /* channel names */
	size_t n_send;
	struct pst_sockaddr *sockets; /* startup only: LISTEN_FDS from fd 3 */
	size_t n_sockets;
	char **exec; /* argv, NULL-terminated; exec[0] absolute */
	size_t n_exec;
	enum pst_socket_mode socket;
	struct pst_fs *fs;
	size_t n_fs;
	struct pst_egress *egress; /* n_egress == 0: no network but lo */
	size_t n_egress;
	struct pst_limits limits;
	struct pst_seccomp seccomp;
	struct pst_env *env;
	size_t n_env;
};

struct pst_broker_conf {
	char *table;
	char *control;
	char *state_dir;
	struct pst_cidr sandbox_net;
	struct pst_cidr sandbox_net6;
	uint32_t uid_base;
	uint64_t grace_ms;
	bool reuse_port;
	bool has_metrics;
	struct pst_sockaddr metrics;
};

struct pst_policy {
	char *file; /* path it was loaded from, for messages */
	struct pst_broker_conf broker;
	struct pst_sandbox *sandboxes;
	size_t n_sandboxes;
};

/* Diagnostics: every problem found, each a full line
 * "FILE: JSON.PATH: VALUE: message" (or "FILE:LINE:COL: message"). */
struct pst_diag {
	char **msgs;
	size_t n;
};

/* Parse and validate; on success *out is a complete policy and 0 is returned.
 * On failure returns -EINVAL (policy errors, all in diag) or another negative
 * errno (I/O), and *out is NULL. `file` is only used in messages. */
int pst_policy_parse(const char *file, const char *json, size_t len, struct pst_policy **out,
                     struct pst_diag *diag);
int pst_policy_load(const char *path, struct pst_policy **out, struct pst_diag *diag);
void pst_policy_free(struct pst_policy *p);
void pst_diag_free(struct pst_diag *d);

const struct pst_sandbox *pst_policy_find(const struct pst_policy *p, const char *name);

/* The uid of a sandbox without "uid": uid_base + (32-bit FNV-1a of its name
 * mod PST_UID_RANGE). Stable across reorders, inserts and removals; a
 * collision of two sandboxes is refused by the loader. */
uint32_t pst_sandbox_default_uid(uint32_t uid_base, const char *name);

/* Small parsers shared by the loader and the CLI; 0 or -EINVAL. */
int pst_parse_duration_ms(const char *s, uint64_t *out); /* "250ms" "30s" "5m" "1h" */
int pst_parse_size(const char *s, uint64_t *out);        /* "512", "64K", "64M", "1G" */
int pst_parse_cidr(const char *s, struct pst_cidr *out, char *why, size_t whylen);
int pst_parse_sockaddr(const char *s, struct pst_sockaddr *out, char *why, size_t whylen);
void pst_cidr_format(const struct pst_cidr *c, char *buf, size_t len);
/* The access lists in force on a sandbox's listen entry i. */
const struct pst_access *pst_listen_access(const struct pst_sandbox *s, size_t i);

/* Entry points of the CLI verbs (broker/cli_*.c); argv[0] is the verb. */
int pst_cmd_check(int argc, char **argv);
int pst_cmd_run(int argc, char **argv);
int pst_cmd_status(int argc, char **argv);
int pst_cmd_top(int argc, char **argv);
int pst_cmd_reload(int argc, char **argv);
int pst_cmd_stop(int argc, char **argv);

#endif
