/* SPDX-License-Identifier: MIT */
/*
 * sandbox/ public header: freshly isolated handler processes.
 *
 * Two phases. sandbox_prepare() runs once per sandbox at policy load: it
 * copies the config, compiles seccomp to BPF, makes the Landlock ruleset,
 * builds the mount plan, argv and envp, and sets up the cgroup parent.
 * sandbox_spawn() runs once per request and only executes that plan: a
 * vfork-style clone (CLONE_VM | CLONE_VFORK | CLONE_PIDFD | namespaces),
 * join the given network namespace and the handler's cgroups, build the
 * root (never following a symlink: bind sources and mount points may lie
 * in directories a handler writes), take the handler's uid/gid, create the
 * user namespace, drop capabilities, restrict itself to a Landlock domain
 * of its own, load seccomp, exec. Needs Linux 5.12 (openat2, open_tree,
 * move_mount, mount_setattr).
 *
 * Calling rules: the caller is root in the initial user namespace. The
 * first sandbox_prepare() of a process makes the directory new roots are
 * mounted on, /run/postern-root/PID.XXXXXX (root's, 0700, in a directory
 * only root may write; no path another user could make first is used);
 * the sandbox_destroy() of its last sandbox removes it.
 * sandbox_spawn() suspends the calling thread until the handler has exec'd
 * (or failed) and uses about 70 KiB of its stack. Reap with the pidfd, not
 * waitpid(-1). sandbox_spawn() and sandbox_prewarm() of one sandbox may run
 * on different threads at once (the broker sets pre-warmed handlers up in
 * a pool thread); everything else is for one thread. A handler's
 * parent-death signal follows the thread that started it: that thread must
 * live as long as the handler should.
 *
 * Knows nothing of JSON or libuv. Library code does not log: every fallible
 * function returns a negative errno and fills a struct sandbox_error: the
 * step, the object it acted on, and a msg that names the sandbox, the step,
 * the object and the errno text, e.g.
 *   sandbox "echo": bind /srv/data -> /data: No such file or directory
 * (step "bind", object "/srv/data -> /data").
 */
#ifndef POSTERN_SANDBOX_H
#define POSTERN_SANDBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The error record (the same fields as netpolicy's): what failed, on what. */
struct sandbox_error {
	int err;          /* positive errno */
	char step[32];    /* "bind", "pivot_root", "seccomp", "exec", ... */
	char object[256]; /* what it acted on: a path, a sandbox, a syscall, ... */
	char msg[512];    /* full, ready to log */
};

enum sandbox_mount_kind {
	SANDBOX_MOUNT_BIND = 1,
	SANDBOX_MOUNT_TMPFS,
	SANDBOX_MOUNT_PROC,
	SANDBOX_MOUNT_SYMLINK,
};

struct sandbox_mount {
	enum sandbox_mount_kind kind;
	const char *src;    /* bind: host path */
	const char *dst;    /* path inside the sandbox root */
	bool rw;            /* bind only; default read-only */
	uint64_t size;      /* tmpfs bytes; 0: kernel default */
	const char *target; /* symlink target */
};

enum sandbox_socket_mode {
	SANDBOX_SOCKET_STDIO = 0,  /* socket on fd 0 and 1 */
	SANDBOX_SOCKET_LISTEN_FDS, /* socket on fd 3, LISTEN_FDS=1 */
};

enum sandbox_seccomp_action { SANDBOX_SECCOMP_ERRNO = 0, SANDBOX_SECCOMP_KILL };

struct sandbox_limits {
	uint64_t memory;      /* bytes; 0: none */
	uint32_t pids;        /* 0: none */
	uint32_t nofile;      /* RLIMIT_NOFILE; 0: inherit */
	uint32_t nproc;       /* RLIMIT_NPROC; 0: same as pids */
	uint64_t fsize;       /* RLIMIT_FSIZE bytes; 0: none */
	uint64_t cpu_seconds; /* RLIMIT_CPU; 0: none */
	double cpu;           /* cgroup cpu quota in cores; 0: none */
};

struct sandbox_config {
	const char *name;        /* sandbox name: hostname, messages, cgroup names */
	const char *const *argv; /* NULL-terminated; argv[0] absolute inside root */
	const char *const *env;  /* NULL-terminated "KEY=VALUE"; PATH added if absent */
	uid_t uid;               /* unprivileged host uid/gid the handler runs as */
	gid_t gid;
	const struct sandbox_mount *mounts;
	size_t n_mounts;
	enum sandbox_socket_mode socket_mode;
	struct sandbox_limits limits;
	enum sandbox_seccomp_action seccomp_action;
	const char *const *seccomp_deny;  /* NULL-terminated extra denies, or NULL */
	const char *const *seccomp_allow; /* NULL-terminated, removed from default */
	const char *cgroup_name;          /* parent cgroup for handlers ("postern"); NULL: none */
	bool identity_files;              /* the root gets a minimal /etc/passwd and
	                                   * /etc/group (root, and uid/gid as "postern",
	                                   * home /, shell /usr/sbin/nologin) and
	                                   * /etc/hosts (localhost), root's, 0444, in the
	                                   * read-only root; no mount may be at /etc or
	                                   * on one of them */
	bool allow_bind;                  /* handlers may bind(), listen() and autobind unix
	                                   * sockets (SO_PASSCRED); default: refused by
	                                   * seccomp, and TCP binds by Landlock (ABI >= 4) */
};

struct sandbox; /* prepared plan, opaque */

/* A file descriptor handed to the handler at a fixed number (send channels,
 * LISTEN_FDS sockets of a startup handler). */
struct sandbox_fd {
	int fd;     /* in the caller */
	int target; /* number in the handler, >= 3 */
};

struct sandbox_spawn_args {
	int sock_fd;                  /* client socket, or -1 */
	int stdin_fd;                 /* overrides fd 0 (pipe trigger), or -1 */
	int netns_fd;                 /* network namespace to join, or -1: a new empty one */
	const char *const *extra_env; /* NULL-terminated per-request env, or NULL */
	const struct sandbox_fd *fds; /* extra fds at fixed numbers */
	size_t n_fds;
	int listen_fds; /* startup sockets: number of fds from 3 (LISTEN_FDS) */
};

/* Where a spawn's time went, in order (sandbox_handler.phase_ns). */
enum sandbox_phase {
	SANDBOX_PHASE_PREPARE,    /* parent: env, pipes, the handler's cgroup */
	SANDBOX_PHASE_CLONE,      /* clone until the child runs */
	SANDBOX_PHASE_NAMESPACES, /* netns, cgroup, cgroupns, fds, hostname */
	SANDBOX_PHASE_ROOT,       /* tmpfs root, declared mounts, /dev, pivot_root */
	SANDBOX_PHASE_IDENTITY,   /* rlimits, uid/gid, user namespace, capabilities */
	SANDBOX_PHASE_SECCOMP,    /* loading the filter */
	SANDBOX_PHASE_EXEC,       /* execve until the caller resumes */
	SANDBOX_PHASE_COUNT
};
extern const char *const sandbox_phase_names[SANDBOX_PHASE_COUNT];

#define SANDBOX_CG_FDS 20 /* a handler's cgroup files kept open, at most */

struct sandbox_handler {
	pid_t pid;                 /* host pid; pid 1 of its own pid namespace */
	int pidfd;                 /* CLOEXEC; readable when the handler exits */
	int stderr_fd;             /* read end of the handler's stderr (and stdout when
	                            * stdout is not the socket); CLOEXEC|NONBLOCK */
	int ctl_fd;                /* pre-warmed handlers: readiness, then the wake-up
	                            * (CLOEXEC|NONBLOCK); else -1 */
	int req_fd;                /* pre-warmed handlers: where the request is
	                            * queued (CLOEXEC); else -1 */
	bool preloaded;            /* pre-warmed handlers: the handler is exec'd and
	                            * waits before its main (postern-warm.so), not
	                            * in postern-warm */
	char cgroup[1024];         /* the handler's cgroup directories, '\n'-separated
	                            * (one per v1 hierarchy), for cleanup; or "" */
	bool cg_kept;              /* cg_fd holds its cgroup files, kept open */
	int cg_fd[SANDBOX_CG_FDS]; /* (cgroup v1; the sandbox's, see cgroup_handler.c) */
	uint64_t spawn_ns;         /* time sandbox_spawn took, CLOCK_MONOTONIC */
	uint32_t phase_ns[SANDBOX_PHASE_COUNT]; /* its breakdown */
};

int sandbox_prepare(const struct sandbox_config *cfg, struct sandbox **out,
                    struct sandbox_error *err);
/* Once per process, before it opens anything but fds 0-2: the process's
 * own pidfd, with which a spawn's child takes the fds it uses into a table
 * of its own, copying only the fds numbered up to it (the fewer, the
 * cheaper every spawn). sandbox_prepare() calls it too, if nothing did. */
void sandbox_process_init(void);

/*
 * Landlock. Each handler gets a Landlock domain of its own (the ruleset is
 * made once per sandbox by sandbox_prepare(); the child restricts itself
 * after no_new_privs, before seccomp), so that handlers of one sandbox,
 * which share its network namespace, stay apart: abstract unix sockets and
 * signals are scoped to the handler (ABI >= 6), and TCP bind is refused
 * unless allow_bind (ABI >= 4). sandbox_landlock_abi() is the best ABI the
 * running kernel offers (0: none, or Landlock disabled); a kernel without
 * some of it gets the rest. sandbox_landlock_gaps() says, for an ABI,
 * which guarantee is weaker than on a current kernel (a sentence, ready to
 * log), or NULL when none is.
 */
int sandbox_landlock_abi(void);
const char *sandbox_landlock_gaps(int abi);

/*
 * cgroups. Handlers of sandbox S get GROUP/S/hN (GROUP: the config's
 * cgroup_name, one per process), made with their limits before the clone.
 *
 * sandbox_cg_init() places the process, once, before anything else of
 * GROUP is touched (sandbox_prepare() does it if nothing did):
 *  - cgroup v2 (no v1 hierarchy holds memory or pids): its own cgroup OWN
 *    must hold it alone, unless OWN is the root cgroup: it moves itself
 *    into OWN/GROUP/_broker, enables memory, pids and cpu (one at a time,
 *    those OWN's cgroup.controllers offers, each checked) in OWN and
 *    OWN/GROUP, and handlers go to OWN/GROUP/S/hN. Refused (-EBUSY, err
 *    saying why and what fixes it: Delegate=yes) when OWN holds other
 *    processes, or when it cannot make or enter its cgroups.
 *  - v1: GROUP in the memory, pids, cpu and cpuacct hierarchies.
 * info (may be NULL) says what it found. sandbox_cg_fini() undoes it once
 * every sandbox is freed: the controllers it enabled, its leaf, GROUP.
 */
enum sandbox_cg_mode { SANDBOX_CG_NONE = 0, SANDBOX_CG_V1, SANDBOX_CG_V2 };
struct sandbox_cg_info {
	enum sandbox_cg_mode mode;
	char base[PATH_MAX];  /* GROUP's directory (v1: in the memory hierarchy) */
	char leaf[PATH_MAX];  /* v2: where this process moved itself; "" (root cgroup, v1) */
	char controllers[64]; /* handlers get these: "memory,pids,cpu" */
	char missing[256];    /* the first of memory, pids, cpu they do not get, and why */
	bool kill;            /* cgroup.kill */
};
int sandbox_cg_init(const char *group, struct sandbox_cg_info *info, struct sandbox_error *err);
int sandbox_cg_fini(struct sandbox_error *err);
/* Remove the cgroups under GROUP that an earlier instance left (but this
 * process's leaf), for a caller that owns GROUP. Returns how many went, or
 * a negative errno with err naming one that stays (a process still in it)
 * and its processes. */
int sandbox_cg_clean(const char *group, struct sandbox_error *err);
/* Handler cgroups still busy when their handler was reaped are removed
 * later, here (call it now and then, e.g. on a timer); returns how many
 * are still pending. Nothing ever waits for them on the caller's thread
 * but sandbox_destroy(). */
unsigned sandbox_cg_collect(void);

/* A handler's figures from its cgroup, read now (live or just exited). */
enum {
	SANDBOX_CG_HAS_MEMORY = 1,
	SANDBOX_CG_HAS_PEAK = 2,
	SANDBOX_CG_HAS_CPU = 4,
	SANDBOX_CG_HAS_PIDS = 8,
	SANDBOX_CG_HAS_OOM = 16,
};
struct sandbox_cg_stats {
	unsigned has;                   /* SANDBOX_CG_HAS_*: which were read */
	uint64_t mem_current, mem_peak; /* bytes */
	uint64_t cpu_usec;              /* user + system */
	uint32_t pids;
	uint32_t oom_kills; /* processes the OOM killer killed in it */
};
int sandbox_cg_stats(const struct sandbox_handler *h, struct sandbox_cg_stats *st);

/* Free a sandbox and remove its cgroups. Handler cgroups that were still
 * busy when their handler was reaped are waited for, up to 1 s: the result
 * is 0, or a negative errno with err naming a cgroup that could not be
 * removed and the processes in it. The sandbox is freed either way.
 * sandbox_free() is sandbox_destroy() without the report. */
int sandbox_destroy(struct sandbox *sb, struct sandbox_error *err);
void sandbox_free(struct sandbox *sb);

/* Start one handler. Returns 0 with *h filled, or a negative errno with err
 * saying which step failed (a failure in the child before exec is reported
 * here, with step and errno, never as a silent exit). */
int sandbox_spawn(struct sandbox *sb, const struct sandbox_spawn_args *args,
                  struct sandbox_handler *h, struct sandbox_error *err);

/*
 * Pre-warmed handlers. sandbox_prewarm() starts a handler that does the
 * whole set-up of sandbox_spawn() (namespaces, root, cgroups, identity,
 * capabilities, seccomp) and then waits for its request on h->ctl_fd.
 * Where it can (h->preloaded), it waits inside the handler itself: a
 * dynamically linked handler (or a script whose interpreter is one) that
 * runs under the same dynamic loader as this program, with no LD_PRELOAD
 * in the sandbox's env, is exec'd at once with postern-warm.so (embedded
 * in the library, written into its root as /.postern-warm.so) preloaded,
 * which blocks after the handler's libraries are loaded and initialized
 * and before its main. Otherwise it execs postern-warm (a static waiter
 * embedded in the library, run from a sealed memfd), which execs the
 * handler once the request came. Like sandbox_spawn() it suspends the
 * calling thread during the set-up. args is as for sandbox_spawn() without
 * sock_fd and stdin_fd (-1).
 *
 * When h->ctl_fd becomes readable, sandbox_warm_ready() says how the set-up
 * ended: 0 ready (it has then given the handler its request socket,
 * h->req_fd), -EAGAIN not yet, else a negative errno with err naming the
 * failed step (the child is gone or going; reap it).
 *
 * sandbox_release() hands a ready handler its request: the socket and/or
 * stdin fd and the per-request environment. The handler places them where
 * sandbox_spawn() would and runs its main (preloaded) or execs at once (an
 * exec failure is written to its stderr, exit 127). On success sock_fd and stdin_fd are closed: the
 * request is queued first, the caller's copies closed, and only then is
 * the handler woken, so its copy of the socket is the last one and the
 * client sees EOF the moment it exits (were the caller still holding a
 * copy, a handler woken on the caller's CPU could run to its end before
 * the caller got to close it). On failure they are left to the caller.
 * A handler is released at most once. Closing h->ctl_fd (or
 * sandbox_kill()) discards an unreleased one.
 */
int sandbox_prewarm(struct sandbox *sb, const struct sandbox_spawn_args *args,
                    struct sandbox_handler *h, struct sandbox_error *err);
int sandbox_warm_ready(struct sandbox *sb, struct sandbox_handler *h, struct sandbox_error *err);
/* sandbox_warm_ready() for callers without an event loop: waits up to
 * timeout_ms for h->ctl_fd (-ETIMEDOUT after that). */
int sandbox_warm_wait(struct sandbox *sb, struct sandbox_handler *h, int timeout_ms,
                      struct sandbox_error *err);
int sandbox_release(struct sandbox *sb, struct sandbox_handler *h, int sock_fd, int stdin_fd,
                    const char *const *extra_env, struct sandbox_error *err);

/*
 * Handler cgroups made ahead. A spawn makes its handler's cgroups (mkdir
 * and limits: about 0.15 ms) unless the sandbox has some in stock;
 * sandbox_cg_stock() makes the missing ones (up to 4), off the caller's
 * hot path (another thread may spawn meanwhile). It returns 0, or a
 * negative errno with err saying why. sandbox_cg_stock_missing() says how
 * many are missing (0 when the sandbox has no cgroups). sandbox_free()
 * removes what is left.
 */
int sandbox_cg_stock(struct sandbox *sb, struct sandbox_error *err);
unsigned sandbox_cg_stock_missing(struct sandbox *sb);
/* The file descriptors this process may hold for the handler cgroup files
 * it keeps open (on cgroup v1, those of up to 16 handler cgroups of all
 * its sandboxes, in their stocks or in use; 0 elsewhere), for the caller's
 * budget of fds. After sandbox_cg_init(). */
unsigned sandbox_cg_kept_fds(void);

/* Kill every process of the handler: SIGKILL through the pidfd (its pid
 * namespace dies with it) and, on cgroup v2, cgroup.kill of its cgroup. */
int sandbox_kill(struct sandbox_handler *h);

/* After the pidfd became readable: reap, fill the wait status, read the
 * handler's final cgroup figures into cs (NULL: not wanted; all zero
 * without a cgroup), release its cgroup and close its fds. Returns 0 or a
 * negative errno. sb: the sandbox it was spawned from (alive), or NULL;
 * with it, an empty cgroup that can serve another handler of sb as if new
 * goes back to sb's stock instead of being removed. */
int sandbox_reap(struct sandbox *sb, struct sandbox_handler *h, int *wstatus,
                 struct sandbox_cg_stats *cs);

#endif
