/* SPDX-License-Identifier: MIT */
/*
 * sandbox/ private header: what the files of the module share, one section
 * per file. Functions named child_* (and those a section marks "in the
 * child") run in the CLONE_VM child of a spawn, which shares the caller's
 * memory while the caller's thread is suspended: no malloc, no locks, no
 * stdio, raw syscalls where glibc would touch process-wide state, and a
 * failure is reported with child_fail(), which does not return.
 */
#ifndef POSTERN_SANDBOX_INTERNAL_H
#define POSTERN_SANDBOX_INTERNAL_H

#include <limits.h>
#include <linux/filter.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

/* ---- cleanup helpers ---------------------------------------------------------------- */

static inline void sb__closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void sb__freep(void *p)
{
	free(*(void **)p);
}

/* Close *fd now (if open) and leave -1 there. */
static inline void sb_close(int *fd)
{
	sb__closep(fd);
	*fd = -1;
}

/* An fd closed, a buffer freed when the variable goes out of scope. */
#define _cleanup_close_ __attribute__((cleanup(sb__closep)))
#define _cleanup_free_ __attribute__((cleanup(sb__freep)))

/* Ownership handed off: the fd, with -1 left behind for the cleanup. */
static inline int sb__take_fd(int *fd)
{
	int f = *fd;
	*fd = -1;
	return f;
}
#define TAKE_FD(fd) sb__take_fd(&(fd))

/* ---- error.c: the error record ---------------------------------------------------------- */

/* Fill e (may be NULL): err (positive errno), step, object, and the message. */
__attribute__((format(printf, 5, 6))) void sb_error(struct sandbox_error *e, int err,
                                                    const char *step, const char *object,
                                                    const char *fmt, ...);

/* ---- cgroup_fs.c: the cgroup file system ------------------------------------------- */

#define CG_AHEAD 4       /* handler cgroups made ahead per sandbox */
#define CG_STOCK 64      /* ... and with the reaped ones put back, at most */
#define CG_KEEP 64       /* handler cgroups whose files are kept open, per process */
#define CG_KEEP_COPY 16  /* ... where children copy the broker's fd table */
#define CG_DIRS_MAX 1024 /* sizeof(sandbox_handler.cgroup) */
#define V2_CTRLS 3       /* memory, pids, cpu: what v2 handler cgroups use */
enum { CG_MEMORY, CG_PIDS, CG_CPU, CG_CPUACCT, CG_N };
extern const char *const sb_cg_names[CG_N];

/* Where this process's cgroups are, from the text of /proc/self/mountinfo
 * and /proc/self/cgroup: its cgroup's directory in the v2 hierarchy and in
 * the v1 hierarchy of each controller ("" none; v1hier: the hierarchy's
 * number there), and which postern uses (v1 where it holds memory or pids,
 * else v2 where mounted). */
struct sb_cg_layout {
	enum sandbox_cg_mode mode;
	char v2[PATH_MAX];
	char v1[CG_N][PATH_MAX];
	int v1hier[CG_N];
};
int sb_cg_layout(const char *mountinfo, const char *self_cgroup, struct sb_cg_layout *out);
/* A whole (small, proc) file into a malloc'd string; NULL on failure. */
char *sb_slurp(const char *path);
/* DIR/FILE written once (EINTR retried), or read (its start, NUL-terminated:
 * the length); 0 or a negative errno. */
int sb_cg_write_at(const char *dir, const char *file, const char *data);
ssize_t sb_cg_read_at(const char *dir, const char *file, char *buf, size_t len);
int sb_cg_open_read(const char *dir, const char *file, int flags, char *buf, size_t len);
int sb_cg_write_fd(int fd, const char *data);
bool sb_cg_exists_at(const char *dir, const char *file);
/* Whether a space-separated list (cgroup.controllers) holds word. */
bool sb_cg_has_word(const char *list, const char *word);
/* The value of "key N" in a flat-keyed file (cpu.stat, memory.events). */
bool sb_cg_keyed(const char *buf, const char *key, uint64_t *out);
int sb_cg_mkdir_p(char *path, mode_t mode);
/* The first pids in a cgroup, space-separated, in buf; "none" if empty. */
const char *sb_cg_procs_of(const char *dir, char *buf, size_t len);

/* ---- cgroup.c: this process's placement --------------------------------------------- */

/* Set by sandbox_cg_init(); read-only after, but by sandbox_cg_fini(). */
struct sb_cg_place {
	pthread_mutex_t lock; /* init and fini; the rest is read-only after init */
	bool inited;
	enum sandbox_cg_mode mode;
	char group[64];
	/* v2 */
	char own[PATH_MAX];             /* OWN, absolute */
	char base[PATH_MAX];            /* OWN/GROUP: the parent of the sandboxes' cgroups */
	char leaf[PATH_MAX];            /* OWN/GROUP/_broker, or "" in the root cgroup */
	unsigned enabled;               /* controllers handlers get (bit per CG_*) */
	unsigned undo_own;              /* those this process enabled in OWN */
	char why[CG_N][PATH_MAX + 256]; /* for a controller handlers do not get */
	bool has_kill;                  /* cgroup.kill */
	/* v1 */
	char v1base[CG_N][PATH_MAX]; /* MOUNT/OWN/GROUP; "" no hierarchy */
	int v1same[CG_N]; /* index of an earlier controller of the same hierarchy, or -1 */
};
extern struct sb_cg_place sb_cgp;

/* ---- cgroup_handler.c: a sandbox's handler cgroups ---------------------------------- */

/* The files of a handler's cgroups kept open (cgroup v1, where they are
 * reused): for the k-th directory of its list, fd[k * CGF_N + slot], -1
 * where a file is not kept; valid when kept. */
enum {
	CGF_DIR,   /* the directory, O_PATH: its link count */
	CGF_PROCS, /* the file the child enters by (v1: tasks) */
	CGF_A,     /* memory.usage_in_bytes, pids.current, cpuacct.usage */
	CGF_B,     /* memory.oom_control */
	CGF_C,     /* memory.max_usage_in_bytes */
	CGF_N
};
#define CG_FDS (CG_N * CGF_N)
_Static_assert(CG_FDS == SANDBOX_CG_FDS, "sandbox_handler.cg_fd");
_Static_assert(CG_DIRS_MAX == sizeof(((struct sandbox_handler *)0)->cgroup),
               "sandbox_handler.cgroup");

/* A handler's cgroups: the directories, '\n'-separated, and their files
 * when they are kept open. */
struct sb_cg_ent {
	char dirs[CG_DIRS_MAX];
	bool kept;
	int fd[CG_FDS];
};

struct sb_cg {
	bool on;          /* handlers get cgroups */
	const char *name; /* the sandbox's, for messages */
	struct sandbox_limits limits;
	char dir[CG_N][PATH_MAX];         /* the sandbox's directories (v2: dir[0]); "" none */
	pthread_mutex_t lock;             /* the stock; initialized by the caller */
	struct sb_cg_ent stock[CG_STOCK]; /* made ahead or put back, with their limits */
	unsigned n_stock;
};

/* Why a cgroup operation failed: the message's tail and what it acted on. */
struct sb_cg_why {
	char text[600];
	char object[256];
};

/* Set up c for sandbox name under group (NULL: no cgroups); places this
 * process first (sandbox_cg_init()) if nothing did. A declared limit whose
 * controller is missing is an error. */
int sb_cg_prepare(struct sb_cg *c, const char *group, const char *name,
                  const struct sandbox_limits *l, struct sandbox_error *err);
int sb_cg_destroy(struct sb_cg *c, struct sandbox_error *err);
/* The file to enter a handler cgroup by, opened under its directory dirfd
 * (for a spawn whose clone into the cgroup was refused), or -1 with errno. */
int sb_cg_enter_file_at(int dirfd);
/* A handler's cgroups into h's cgroup, cg_kept and cg_fd, the file to
 * enter each by into procs[CG_N] (-1 for the rest): opened, for the caller
 * to close, or one of h's kept files, bit i of *kept set, which the
 * caller leaves open (they go at the reap); or on cgroup v2 while
 * sb_clone_into_cgroup_ok(), its directory into *into (else -1) and no
 * file. use_stock: a fresh spawn, whose cgroups come from the stock and
 * may keep their files open; else a pre-warmed one's, by path. */
int sb_cg_create(struct sb_cg *c, struct sandbox_handler *h, int *procs, unsigned *kept, int *into,
                 bool use_stock, struct sb_cg_why *why);
/* A reaped handler's cgroups: their final figures into st (NULL: not
 * wanted), then back into c's stock when they can serve another handler as
 * if new (reuse and c non-NULL, cgroup v1; see cgroup_handler.c), else removed,
 * their kept files closed (c may be NULL: no reuse). h's cgroup
 * emptied. */
void sb_cg_finish(struct sb_cg *c, bool reuse, struct sandbox_handler *h,
                  struct sandbox_cg_stats *st);
/* A handler's cgroups removed and their kept files closed, unread. */
void sb_cg_drop(struct sandbox_handler *h);
void sb_cg_remove(char *dirs);
unsigned sb_cg_stock_missing(struct sb_cg *c);
int sb_cg_stock(struct sb_cg *c, struct sandbox_error *err);
/* cgroup.kill of a handler's cgroup (v2); -EOPNOTSUPP where there is none. */
int sb_cg_kill(const char *dirs);

/* ---- sandbox.c: the prepared plan ----------------------------------------------------- */

#define ENV_MAX 128             /* environment entries of a handler */
#define CHILD_STACK (64 * 1024) /* a child's stack, in the caller's frame */

/* What sandbox_prepare() made of a config; read-only once prepared (but
 * the cgroup stock, which has its own lock). */
struct sandbox {
	char *name;
	char **argv;
	char **env; /* base environment, "K=V" */
	size_t n_env;
	uid_t uid;
	gid_t gid;
	struct sandbox_mount *mounts;
	size_t n_mounts;
	bool has_proc;
	bool identity_files;        /* the root gets /etc/passwd, /etc/group, /etc/hosts */
	bool root_dir;              /* holds a reference on the root mount point (root.c) */
	int tmpl_fd;                /* mount namespace holding the root, which each
	                             * handler copies; -1: each builds its own */
	int ll_fd;                  /* Landlock ruleset each handler restricts itself
	                             * with (landlock.c); -1: none on this kernel */
	int uts_fd, ipc_fd;         /* the namespaces its handlers join (namespaces.c);
	                             * ipc_fd -1: each handler gets its own */
	const char *preload_interp; /* pre-warmed handlers run under this loader
	                             * can wait in their own process
	                             * (postern-warm.so); NULL: never */
	enum sandbox_socket_mode socket_mode;
	struct sandbox_limits limits;
	struct sock_fprog prog;
	int cap_last_cap;
	char uid_map[32], gid_map[32]; /* "ID ID 1": the same id inside */
	struct sb_cg cg;               /* its handlers' cgroups (cgroup.c) */
};

/* A NULL-terminated copy of v with room for extra more entries (*n_out:
 * how many were copied), or NULL; freed by sb_strv_free(). */
char **sb_strv_copy(const char *const *v, size_t extra, size_t *n_out);
void sb_strv_free(char **v);

/* ---- launch.c: the environment, the clone, the error record ---------------------------- */

/* The report a child makes when a step fails (child_fail()). */
struct child_err {
	int err;
	char step[32];
	char object[400];
};

uint64_t sb_now_ns(void);
/* The sandbox's base environment: the config's, plus PATH unless given. */
int sb_env_prepare(struct sandbox *sb, const struct sandbox_config *cfg);
/* Start a child, vfork-style, returning once it has exec'd the handler (a
 * pre-warmed one with postern-warm.so, h->preloaded) or postern-warm, with
 * h->ctl_fd to a pre-warmed one. */
int sb_launch(struct sandbox *sb, const struct sandbox_spawn_args *a, struct sandbox_handler *h,
              bool warm, struct sandbox_error *err);
/* clone(CLONE_VM | CLONE_VFORK | flags) of fn on stack (in the caller's
 * frame), every signal blocked meanwhile. The pid, or -1 with errno. */
pid_t sb_vfork_clone(int (*fn)(void *), char *stack, size_t size, int flags, void *arg, int *pidfd);
/* The same, born in the cgroup v2 directory cgroup_fd (>= 0: clone3()
 * with CLONE_INTO_CGROUP); when that fails for want of clone3,
 * sb_clone_into_cgroup_ok() turns false for the process. */
pid_t sb_vfork_clone_into(int (*fn)(void *), char *stack, size_t size, int flags, void *arg,
                          int *pidfd, int cgroup_fd);
bool sb_clone_into_cgroup_ok(void);
/* The broker's own pidfd, opened once (sandbox_prepare()), with which a
 * child takes the fds it uses into a table of its own (launch.c); whether
 * children do (true until refused, or until the pidfd cannot be opened). */
void sb_own_table_prepare(void);
bool sb_own_table_ok(void);
/* err filled from a child's failure record; returns the negative errno. */
int sb_child_error(const struct sandbox *sb, struct child_err *ce, struct sandbox_error *err);
/* The fd a fresh spawn's child reports on: no pipe, but the launching
 * thread's memory, which the child shares until it execs (CLONE_VM) while
 * that thread is suspended (CLONE_VFORK). The record goes where that
 * thread's sb_child_err_mem points: the child runs on the thread's TLS too
 * (cloned without CLONE_SETTLS), so concurrent launches on other threads
 * each have their own. */
#define SB_ERR_MEM (-2)
struct child_err_mem {
	struct child_err ce;
	int set; /* written last: a record is there */
};
extern __thread struct child_err_mem *sb_child_err_mem;
/* In the child: report a failed step (object from fmt) on fd (or
 * SB_ERR_MEM) and _exit(127). */
__attribute__((noreturn, format(printf, 4, 5))) void child_fail(int fd, int e, const char *step,
                                                                const char *fmt, ...);

/* ---- child.c: the child's steps, in order ------------------------------------------------ */

struct child_args {
	struct sandbox *sb;
	const struct sandbox_spawn_args *a;
	char *const *envp;
	int err_fd;                      /* SB_ERR_MEM; pre-warmed: the socket pair's end,
	                                  * CLOEXEC, moved high by the child before it
	                                  * arranges fds */
	int errw;                        /* write end of the handler's stderr pipe */
	int procs[CG_N];                 /* the files to enter (CGF_PROCS), or -1 */
	bool warm;                       /* pre-warmed: wait on err_fd for the request */
	bool preload;                    /* set by the child: waits in the handler itself
	                                  * (postern-warm.so), else in postern-warm */
	int warm_fd;                     /* postern-warm (memfd), or -1; the child's copy */
	int procfd;                      /* the child's: /proc/self (O_PATH), for its id maps */
	int ll_fd;                       /* the child's copy of the Landlock ruleset, or -1 */
	uint64_t t[SANDBOX_PHASE_COUNT]; /* when each phase ended (the child
	                                  * writes them: memory is shared) */
	bool own_table;                  /* cloned sharing the broker's fd table: the
	                                  * child makes a table of its own first and
	                                  * takes each fd it uses into it (child_fd()) */
	int take_err;                    /* set by the child when it could not: the
	                                  * errno; the launch then clones again, copying */
};

/* With c->own_table, fd (a number in the broker's table) taken into the
 * child's own table (pidfd_getfd(), CLOEXEC), else fd itself; -1 for -1.
 * A failure sets c->take_err and exits: the launch falls back. */
int child_fd(struct child_args *c, int fd);
/* Close what child_fd() returned, when it was a copy. */
void child_fd_done(struct child_args *c, int fd);
/* The child's first step: its own table, when c->own_table. */
void child_own_table(struct child_args *c);

/* The child: every step of child.c's list, then exec. */
int sb_child_main(void *arg);

/* ---- root.c: the root file system, the root template (in the child: child_*) ------- */

/* The root mount point: a directory this process made for itself
 * (ROOT_BASE/PID.XXXXXX), taken by each sandbox, removed with the last. */
int sb_root_dir_get(struct sandbox *sb, struct sandbox_error *err);
void sb_root_dir_put(struct sandbox *sb);
/* The mount plan: the config's entries copied and checked. */
int sb_mounts_copy(struct sandbox *sb, const struct sandbox_config *cfg, struct sandbox_error *err);
void sb_mounts_free(struct sandbox *sb);
/* The root template, when the sandbox can have one (sb->tmpl_fd). */
void sb_tmpl_build(struct sandbox *sb);
void child_root(struct child_args *c);

/* ---- namespaces.c: the namespaces a sandbox's handlers share ------------------------- */

/* The sandbox's uts namespace (its hostname set) and, unless ipc_private,
 * its ipc namespace: sb->uts_fd, sb->ipc_fd. */
int sb_ns_build(struct sandbox *sb, bool ipc_private, struct sandbox_error *err);
void child_shared_ns(struct child_args *c);

/* ---- identity.c: rlimits, ids, user namespace, capabilities, no_new_privs -------------- */

void sb_identity_prepare(struct sandbox *sb);
void child_rlimits(struct child_args *c);
void child_ids(struct child_args *c);
void child_userns(struct child_args *c);
void child_idmaps(struct child_args *c);
void child_caps(struct child_args *c);
void child_no_new_privs(struct child_args *c);
void child_nproc(struct child_args *c);

/* ---- warm.c: pre-warmed handlers (in the child: child_*, sb_preloadable, sb_warm_so_write) */

/* Whether the sandbox's handlers may wait exec'd (sb->preload_interp). */
void sb_warm_prepare(struct sandbox *sb);
/* postern-warm in a sealed memfd, made once per process. */
int sb_waiter_fd(const struct sandbox *sb, struct sandbox_error *err);
/* Whether the program at path runs under the dynamic loader interp. */
bool sb_preloadable(const char *path, const char *interp, int depth);
/* postern-warm.so into the new root, at WARM_SO_PATH (cwd: the root). */
void sb_warm_so_write(int efd);
__attribute__((noreturn)) void child_exec_preloaded(struct child_args *c);
__attribute__((noreturn)) void child_exec_waiter(struct child_args *c);
/* One message on a SOCK_SEQPACKET socket with up to two fds attached (also
 * in the child); 0 or a negative errno. */
int sb_send_fds(int sock, const void *data, size_t len, const int *fds, int nfd);
/* What a set-up child sent on such a socket (not waiting): 0 when it is the
 * one-byte message tag with exactly nfd fds (in fds, CLOEXEC); 1 when it
 * is a failed step's record (in *ce); -1 for anything else or nothing. */
int sb_recv_fds(int sock, char tag, int *fds, int nfd, struct child_err *ce);
/* A set-up child that hands fds back: fn(arg) in a vfork-style clone with
 * flags, given (in *err_fd) its end of a SOCK_SEQPACKET pair made here,
 * waited for; what it sent, read by sb_recv_fds(), counts only if it
 * exited 0. 0: fds filled; 1: a failed step's record in *ce; 2: nothing
 * (or it did not exit 0); or a negative errno of the step named in *step
 * ("socketpair", "clone"). */
int sb_setup_child(int (*fn)(void *), int flags, void *arg, int *err_fd, char tag, int *fds,
                   int nfd, struct child_err *ce, const char **step);
int sb_warm_ready(struct sandbox *sb, struct sandbox_handler *h, struct sandbox_error *err);
int sb_warm_wait(struct sandbox *sb, struct sandbox_handler *h, int timeout_ms,
                 struct sandbox_error *err);
int sb_release(struct sandbox *sb, struct sandbox_handler *h, int sock_fd, int stdin_fd,
               const char *const *extra_env, struct sandbox_error *err);

/* ---- seccomp.c: the filter ---------------------------------------------------------- */

/* Whether the sandbox's seccomp allows System V IPC or POSIX message
 * queues: its handlers then get an ipc namespace each (namespaces.c). */
bool sb_ipc_private(const struct sandbox_config *cfg);
/* The default profile's denies, and System V IPC with POSIX message
 * queues (denied unless allowed; NULL-terminated). */
extern const char *const sb_seccomp_default_deny[];
extern const char *const sb_seccomp_ipc_calls[];
int sb_seccomp_compile(const struct sandbox_config *cfg, struct sock_fprog *out,
                       struct sandbox_error *err);
void child_seccomp(struct child_args *c);

/* ---- landlock.c: a Landlock domain per handler ------------------------------ */

/* The sandbox's ruleset into *fd (CLOEXEC), or -1 when this kernel offers
 * nothing to restrict (sandbox_landlock_gaps() says what is missing). */
int sb_landlock_ruleset(const struct sandbox_config *cfg, int *fd, struct sandbox_error *err);
void child_landlock(struct child_args *c);

#endif
