/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon's shared types: the daemon, its generations and their
 * sandboxes, handlers, listeners, channels and their endpoints, and the one
 * request object every trigger fills. Private to the daemon's files
 * (daemon.c, listener.c, admission.c, handler.c, prewarm.c, channel.c,
 * startup.c, generation.c, plan.c, stats.c, control_server.c).
 *
 * The path of a request:
 *   a trigger fills a struct pst_request where it arrives (listener.c's
 *   accept loop, channel.c's pipe and fdpass endpoints, startup.c), asks
 *   admit() (admission.c), then handler_spawn() (handler.c), which releases
 *   a pre-warmed handler (prewarm.c) or spawns a fresh one; handler.c then
 *   watches it, relays its stderr, reaps it and logs its exit line.
 */
#ifndef POSTERN_BROKER_DAEMON_INTERNAL_H
#define POSTERN_BROKER_DAEMON_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "broker/broker.h"
#include "broker/internal.h"
#include "netpolicy/netpolicy.h"
#include "sandbox/sandbox.h"

#define ACCEPT_BATCH 64 /* accepts (or messages) per wakeup, for fairness */
#define CONTROL_CLIENTS_MAX 16
#define FD_RESERVE 64     /* fds for the log, spawning, libuv, beside control clients */
#define PREWARM_IDLE_MS 5 /* refill once a sandbox has been idle this long */
#define MAX_SEND 16       /* channels one sandbox may write to */
#define MAX_SOCKETS 16    /* sockets of one startup sandbox */
#define PEER_MAX (INET6_ADDRSTRLEN + 16)

/* ---- small ownership helpers ------------------------------------------- */
static inline void pst_freep(void *p)
{
	free(*(void **)p);
}
static inline void pst_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define cleanup_free __attribute__((cleanup(pst_freep)))
#define cleanup_close __attribute__((cleanup(pst_closep)))
/* hand an fd on: the variable forgets it */
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

struct daemon;
struct gen;
struct sbx;
struct handler;
struct channel;
struct control_client;

/* ---- one request ----------------------------------------------------------
 * Filled once where it arrives and handed down: admit(), then
 * handler_spawn(), which owns (and closes) its fds from then on. */
struct pst_request {
	enum pst_trigger trigger;         /* listen, pipe, fdpass, startup */
	int sock_fd;                      /* the client's socket (listen, fdpass), or -1 */
	int stdin_fd;                     /* the message, as a pipe's read end (pipe), or -1 */
	struct sockaddr_storage peer_sa;  /* inet clients (for the environment); else AF_UNSPEC */
	struct sockaddr_storage local_sa; /* the local end of peer_sa's connection */
	char peer[PEER_MAX];  /* the inet client, for spawn/exit lines and status; or "" */
	char label[PEER_MAX]; /* what a refusal names: the client (unix: "unix:uid=N"), a channel */
	bool has_src;         /* per_source applies: src is its key */
	uint8_t src[PST_SRCKEY_LEN];
	bool has_cred;             /* a unix client: cred, its SO_PEERCRED at accept */
	struct pst_peer_cred cred; /* (for the environment: UNIXREMOTEUID...) */
};

/* A request of this trigger, with nothing filled yet. */
void request_init(struct pst_request *req, enum pst_trigger trigger);
/* Close what it holds (a refused or failed request). */
void request_close(struct pst_request *req);

/* ---- listeners (listener.c) ---------------------------------------------- */
struct listener {
	uv_poll_t poll;
	struct daemon *d;
	struct sbx *sbx; /* owner; NULL between a reload's detach and attach */
	int fd;
	bool passive; /* a startup `sockets` entry: handed over, not polled */
	bool polling;
	uint32_t mark; /* the SO_MARK the broker set on it: 0 or NETPOLICY_MARK_LISTEN */
	struct pst_sockaddr addr;
	const struct pst_listen_opt *opt; /* of its owner's policy (unix peers), or NULL */
	bool inherited;                   /* passed by systemd (LISTEN_FDS): its file (path, mode,
	                                   * owner) is systemd's, never unlinked or changed */
	dev_t dev;                        /* unix: the socket file bind() made */
	ino_t ino;
	struct listener *next; /* d->listeners */
};

/* ---- channels (channel.c) -------------------------------------------------- */
/* The broker's end of one sender handler's end of a channel. */
struct endpoint {
	uv_poll_t poll;
	struct daemon *d;
	struct channel *c; /* NULL once off its channel (closing) */
	int fd;            /* nonblocking */
	bool polling;
	struct endpoint *next, **pprev; /* c->endpoints; next: d->spare_ep too */
	struct pst_lines lines;         /* pipe: what is read and not yet a message */
};

struct channel {
	struct daemon *d;
	char name[PST_NAME_MAX + 1];
	enum pst_trigger kind;      /* PIPE or FDPASS */
	bool polling;               /* its endpoints are read: the consumer has room */
	struct sbx *consumer;       /* NULL between a reload's detach and attach */
	struct endpoint *endpoints; /* one per sender handler still holding its end */
	unsigned n_endpoints;
	uint64_t messages, dropped;
	struct pst_throttle log_drop; /* channel_drop lines */
	struct channel *next;         /* d->channels */
};

/* ---- sandboxes of a generation ----------------------------------------- */
/* A threadpool job of a sandbox or a handler, with what it reports. */
struct pool_job {
	uv_work_t req;
	struct daemon *d;
	int r;
	struct sandbox_error err;
};

enum refusal {
	REFUSE_PER_SOURCE,
	REFUSE_RATE,
	REFUSE_SPAWN_FAILED,
	REFUSE_SHUTDOWN,
	REFUSE_PEER, /* a unix peer not in allow_uids / allow_gids */
	REFUSE__N
};
extern const char *const refusal_names[REFUSE__N];

/* admission.c: what decides whether a request is taken */
struct sbx_admission {
	uint32_t active;           /* handlers serving a request */
	struct pst_bucket bucket;  /* limits.rate */
	struct pst_srctab sources; /* limits.per_source */
};

/* channel.c, listener.c: the fds each handler gets at fixed numbers */
struct sbx_send {
	struct channel *consumes; /* pipe / fdpass trigger: its channel */
	/* send channels: each handler gets ends of its own (sender_fds()) at
	 * these numbers; env entries built once per generation */
	size_t n;
	struct channel *ch[MAX_SEND];
	int target[MAX_SEND];
	char env[MAX_SEND][PST_NAME_MAX + 32];
	const char *envp[MAX_SEND + 1];
	struct sandbox_fd socket_fds[MAX_SOCKETS]; /* startup sockets, from fd 3 */
	size_t n_socket_fds;
};

/* prewarm.c: n_warm started and not yet released, of which the `ready`
 * stack holds n_ready; and the handler cgroups made ahead */
struct sbx_warm {
	struct handler *ready;
	uint32_t n_warm, n_ready;
	uint64_t idle_since_ns;        /* when active last fell to 0 */
	uint64_t retry_ns, backoff_ms; /* after a failed set-up */
	struct pool_job cg_job;        /* its handler cgroups being made ahead */
	bool cg_busy;                  /* cg_job is queued */
	bool cg_stock_off;             /* making them ahead failed: spawns make their own */
};

/* startup.c */
struct sbx_restart {
	uint64_t at_ns; /* 0: none pending */
	uint64_t backoff_ms;
};

/* Counters, and the throttles of the lines its clients and handlers can
 * cause per request: carried whole to the sandbox of the same name by a
 * reload. */
struct sbx_stats {
	uint64_t started, exit_ok, exit_failed, exit_signaled, exit_timeout;
	uint64_t phase_sum_ns[SANDBOX_PHASE_COUNT], phase_n; /* fresh spawns */
	uint64_t refused[REFUSE__N];
	uint64_t warm_used, warm_failed;
	struct pst_latring lat;        /* p50/p99 for status */
	struct pst_hist spawn;         /* the same spawns' times, for the metrics */
	struct {                       /* of its exited handlers, from their cgroups */
		uint64_t cpu_usec;     /* CPU time */
		uint64_t oom_kills;    /* processes the OOM killer killed */
		uint64_t oom_handlers; /* handlers it killed a process of */
		uint64_t mem_peak;     /* the highest peak */
	} cg;
	struct {
		struct pst_throttle refuse[REFUSE__N], spawn_failed, timeout, prewarm_exit, channel,
		    accept, watch;
	} log;
};

struct sbx {
	struct gen *gen;
	const struct pst_sandbox *conf;
	struct sandbox *sb;
	int destroy_r; /* sandbox_destroy()'s, when its generation retires */
	struct sandbox_error destroy_err;
	int netns_fd;
	struct sbx_admission adm;
	struct sbx_send send;
	struct sbx_warm warm;
	struct sbx_restart restart;
	struct sbx_stats stats;
};

/* One loaded policy with its prepared sandboxes (generation.c). */
struct gen {
	struct daemon *d;
	struct pst_policy *policy;
	struct sbx *sbx;
	size_t n_sbx;
	unsigned refs;      /* live handlers and pool jobs, + 1 while current */
	uv_work_t teardown; /* its sandboxes destroyed in the threadpool */
};

/* ---- handlers (handler.c, prewarm.c) ---------------------------------------
 *
 *   pre-warmed: SETTING_UP -> WARMING -> READY -> SERVING -> EXITING
 *                  (pool)       |          |
 *                               +----------+--> DISCARDED -> WARM_EXITING
 *                               +----------+---------------> WARM_EXITING
 *   fresh:      SERVING -> EXITING
 */
enum handler_state {
	H_SPAWNING,     /* fresh: its spawn runs in the threadpool; counted in active, not linked */
	H_SETTING_UP,   /* pre-warm: its set-up runs in the threadpool; not linked */
	H_WARMING,      /* pre-warm: set up, its readiness report awaited (ctl_fd) */
	H_READY,        /* pre-warm: on its sandbox's ready stack */
	H_DISCARDED,    /* pre-warm: killed unused on purpose, its end awaited */
	H_SERVING,      /* has its request (fresh, or released): counted in active */
	H_EXITING,      /* served, and its process ended: handles closing, then the reap */
	H_WARM_EXITING, /* ended before it had a request: handles closing, then the reap */
};

/* Why it ended, as far as the broker knows: set when it kills it (the first
 * reason stays) or, for a pre-warmed one, when it is seen to end. */
enum handler_end {
	END_NONE = 0,     /* running, or ended by itself */
	END_TIMEOUT,      /* killed: limits.timeout */
	END_SHUTDOWN,     /* killed: the grace period is over, or a second signal */
	END_DISCARD,      /* pre-warmed, killed unused (reload, stop, a failed report or release) */
	END_SETUP_FAILED, /* pre-warmed, ended reporting a failed set-up (in job.setup.err) */
	END_KILLED,       /* killed: the control socket's "kill PID" */
};

/* A fresh spawn as a job: spawn_prepare() fills it on the loop,
 * spawn_run() makes the call that suspends its thread, spawn_complete()
 * takes the result on the loop (handler.c). */
struct spawn_job {
	uv_work_t req; /* in the threadpool: the loop never waits for a spawn */
	struct sandbox *sb;
	struct sandbox_spawn_args args;
	struct pst_req_env env; /* args.extra_env points into it */
	uint64_t t0;
	int r;
	struct sandbox_error err;
};

struct handler {
	struct daemon *d;
	struct sbx *sbx;
	enum handler_state state;
	enum handler_end end;
	struct sandbox_handler h;
	bool watched; /* its pidfd in the daemon's watch set (handlers_watch) */
	uv_timer_t timer;
	uv_poll_t ctl_poll; /* pre-warmed handlers only */
	int handles_open;
	bool has_ctl;
	bool err_polling;
	struct handler *ready_next; /* sbx.warm.ready */
	bool has_src;
	uint8_t src[PST_SRCKEY_LEN];
	char peer[PEER_MAX];
	uint64_t start_ns;
	uint64_t stderr_total, stderr_dropped;
	size_t line_len;
	char line[1024];             /* a stderr line being assembled; longer ones go in pieces */
	struct handler *prev, *next; /* d->handlers; next: d->spare too */
	union {
		struct pool_job setup;  /* pre-warmed: the set-up, then its report */
		struct spawn_job spawn; /* fresh */
	} job;
	/* the fds it gets at fixed numbers (sender_fds()): its own ends of its
	 * send channels (send_w, the broker's copies until it has them), then
	 * the startup sockets */
	struct sandbox_fd fds[MAX_SEND + MAX_SOCKETS];
	size_t n_fds;
	int send_w[MAX_SEND];
	size_t n_send_w;
};

/* Served a request (counted in `handlers`, listed per sandbox). */
static inline bool handler_served(const struct handler *h)
{
	return h->state == H_SERVING || h->state == H_EXITING;
}

/* Pre-warmed and still wanted (listed as pre-warmed pids). */
static inline bool handler_waiting(const struct handler *h)
{
	return h->state == H_WARMING || h->state == H_READY;
}

/* ---- the daemon (daemon.c) ------------------------------------------------- */
/* A socket systemd passed (LISTEN_FDS), checked at start: a listening
 * stream socket (inet, inet6 or unix), its name (LISTEN_FDNAMES) and
 * address. fd -1 once a listener took it. */
#define INHERITED_MAX 64
struct inherited_fd {
	int fd;
	char name[256];
	struct pst_sockaddr addr; /* what it is bound to; text for messages */
};

struct daemon {
	uv_loop_t *loop;
	/* every handler's pidfd and stderr pipe in one epoll set, one uv_poll
	 * in the loop for all of them (handler.c) */
	int watch_fd;
	uv_poll_t watch_poll;
	const char *policy_path;
	struct gen *cur;
	struct netpolicy *np;
	struct listener *listeners;
	struct channel *channels;
	struct handler *handlers;
	size_t n_handlers;
	struct handler *spare; /* freed, for the next (handler_new()) */
	unsigned n_spare;
	struct endpoint *spare_ep; /* closed channel endpoints, for the next */
	unsigned n_spare_ep;
	unsigned pool_jobs;    /* in the threadpool: pre-warm set-ups, cgroup stocking */
	bool refill_busy;      /* --prewarm-refill=busy */
	bool insecure_policy;  /* --insecure-policy */
	bool no_preflight;     /* --no-preflight */
	unsigned refill_slots; /* with it, set-ups under way per sandbox */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t grace_timer, tick, refill_timer;
	uv_pipe_t control;
	bool control_open;
	uv_tcp_t metrics;
	bool metrics_open;
	char control_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct pst_instance_lock lock; /* of the table, from before anything of it is touched */
	struct sandbox_cg_info cg;     /* where handler cgroups live (sandbox_cg_init()) */
	uv_poll_t log_poll;            /* the log sink, while lines wait for it */
	bool log_poll_inited;
	unsigned control_clients;
	struct control_client *clients;
	bool stopping, finished;
	unsigned stop_signals;
	bool paused_emfile;
	uint64_t emfile_resume_ns;
	uint64_t started_ns;
	uint64_t reloads, reload_failures;
	struct inherited_fd inherited[INHERITED_MAX]; /* LISTEN_FDS (listener.c) */
	size_t n_inherited;
	uv_timer_t watchdog; /* WATCHDOG=1 (notify.c) */
	int exit_code;
};

/* daemon.c: while stopping, finish once no handler and no job is left. */
void daemon_maybe_finish(struct daemon *d);
/* daemon.c: stop as SIGTERM does (sig: "SIGTERM", "SIGINT", "control"); a
 * second call cuts the grace short. */
void daemon_stop(struct daemon *d, const char *sig);

/* ---- a generation being built beside the one in force (generation.c) -----
 * What it binds to, found or made while it is built: gen_commit() switches
 * to it, gen_abort() throws it away, leaving the old exactly as it was. */
struct plan_listener {
	struct listener *ls;
	struct sbx *s; /* its owner in the new generation */
	bool fresh;    /* opened for it: not in d->listeners yet */
	bool passive;  /* a startup sandbox's `sockets` entry */
	bool remarked; /* kept, and its mark changed: mark_was restores it */
	uint32_t mark_was;
	const struct pst_listen_opt *opt; /* its trigger.listen entry's, or NULL */
};

struct plan_channel {
	struct channel *c;
	struct sbx *consumer; /* in the new generation */
	bool fresh;           /* made for it: not in d->channels yet */
};

struct gen_plan {
	struct gen *g;
	struct plan_listener *ls;
	size_t n_ls;
	struct plan_channel *ch;
	size_t n_ch;
};

void gen_ref(struct gen *g);
void gen_unref(struct gen *g);
struct sbx *gen_find(struct gen *g, const char *name);
int gen_prepare(struct daemon *d, struct pst_policy *p, struct gen_plan *pl);
int gen_bind(struct daemon *d, struct gen_plan *pl);
void gen_commit(struct daemon *d, struct gen_plan *pl);
void gen_abort(struct daemon *d, struct gen_plan *pl);
void daemon_reload(struct daemon *d);
int policy_trusted(struct daemon *d, char *why, size_t whylen);
void log_diag(const char *event, const struct pst_diag *diag);

/* ---- listener.c -------------------------------------------------------------- */
void listener_start(struct listener *ls);
void listener_stop(struct listener *ls);
void listeners_close_all(struct daemon *d);
int listeners_inherit(struct daemon *d); /* LISTEN_FDS; <0: refuse to start (logged) */
int listeners_inherited_check(struct daemon *d, const struct pst_policy *p);
void listeners_inherited_unused(struct daemon *d);
void listeners_emfile_resume(struct daemon *d, uint64_t now);
int listeners_prepare(struct daemon *d, struct gen_plan *pl);
void listeners_commit(struct daemon *d, struct gen_plan *pl);
void listeners_abort(struct gen_plan *pl);

/* ---- admission.c ------------------------------------------------------------- */
enum admit {
	ADMIT_YES = 0,
	ADMIT_FULL,       /* at limits.handlers: its listeners and channel are no longer read */
	ADMIT_PER_SOURCE, /* refused (counted, logged) */
	ADMIT_RATE,       /* refused (counted, logged) */
	ADMIT_STOPPING,   /* refused (counted, logged) */
};
bool sbx_at_capacity(const struct sbx *s);
bool admission_room(struct daemon *d, struct sbx *s);
enum admit admit(struct daemon *d, struct sbx *s, const struct pst_request *req);
/* A refusal decided elsewhere (a unix peer): counted and logged (throttled). */
void admission_refused(struct sbx *s, enum refusal why, const char *label);
void admission_resume(struct daemon *d, struct sbx *s);
void admission_enter(struct sbx *s, struct handler *h);
void admission_leave(struct daemon *d, struct sbx *s, struct handler *h);
void admission_move(struct handler *h, struct sbx *from, struct sbx *to);

/* ---- handler.c --------------------------------------------------------------- */
struct handler *handler_new(struct daemon *d);
void handler_put(struct daemon *d, struct handler *h);
void handler_link(struct daemon *d, struct handler *h);
void handler_unlink(struct daemon *d, struct handler *h);
void handler_watch(struct daemon *d, struct handler *h);
int handlers_watch_open(struct daemon *d);
void handlers_watch_close(struct daemon *d);
int handler_spawn(struct daemon *d, struct sbx *s, struct pst_request *req);
int handler_kill(struct handler *h, enum handler_end why); /* sandbox_kill()'s */
void handlers_kill_all(struct daemon *d);
struct handler *handler_find(struct daemon *d, pid_t pid); /* linked, by host pid */
void log_spawn_failed(struct sbx *s, const char *peer, const struct sandbox_error *err, int r,
                      bool warm);

/* ---- prewarm.c --------------------------------------------------------------- */
void prewarm_backoff(struct sbx *s);
void prewarm_refill(struct daemon *d, struct sbx *s, const char *cause);
void prewarm_idle(struct daemon *d, struct sbx *s);
unsigned prewarm_slots(void);
void on_refill_timer(uv_timer_t *t);
struct handler *prewarm_take(struct sbx *s, const struct pst_request *req,
                             const struct pst_req_env *env);
void prewarm_discard(struct handler *h);
void prewarm_discard_all(struct daemon *d, const struct gen *g);
void prewarm_ended(struct handler *h);
void prewarm_gone(struct daemon *d, struct handler *h);
void cg_stock_start(struct daemon *d, struct sbx *s);

/* ---- channel.c --------------------------------------------------------------- */
void channel_start(struct channel *c);
void channel_stop(struct channel *c);
void channels_stop_all(struct daemon *d);
void channels_close_all(struct daemon *d);
int sender_fds(struct sbx *s, struct handler *h);
void sender_fds_close(struct handler *h);
int channels_prepare(struct daemon *d, struct gen_plan *pl);
void channels_commit(struct daemon *d, struct gen_plan *pl);
void channels_abort(struct gen_plan *pl);

/* ---- startup.c --------------------------------------------------------------- */
void startup_start(struct daemon *d, struct sbx *s);
void startup_schedule(struct daemon *d, struct sbx *s, bool failed, uint64_t ran_ns);

/* ---- plan.c: policy -> library configs; library errors -> log fields -------- */
int plan_sandbox(const struct pst_policy *p, const struct pst_sandbox *sc, struct sandbox **out,
                 struct sandbox_error *err);
int plan_netpolicy(const struct pst_policy *p, struct netpolicy_config *cfg);
void plan_netpolicy_free(struct netpolicy_config *cfg);
void ll_sandbox_error(struct pst_logline *l, const struct sandbox_error *err, int r);
void ll_netpolicy_error(struct pst_logline *l, const struct netpolicy_error *err, int r);
void log_sandbox_error(const char *level, const char *event, const char *sandbox,
                       const struct sandbox_error *err, int r);
void log_netpolicy_error(const char *level, const char *event, const struct netpolicy_error *err,
                         int r);

/* ---- stats.c ----------------------------------------------------------------- */
char *stats_status_json(struct daemon *d); /* malloc'd; NULL: out of memory */
char *stats_metrics_text(struct daemon *d);
extern const char *const trigger_names[5];

/* ---- notify.c: sd_notify(3) ------------------------------------------------- */
int notify_open(char *why, size_t whylen); /* reads and unsets NOTIFY_SOCKET, WATCHDOG_* */
bool notify_enabled(void);
uint64_t notify_watchdog_usec(void);
void notify_send(const char *msg);
void notify_ready(struct daemon *d);              /* READY=1 and STATUS= */
void notify_reloading(void);                      /* RELOADING=1, MONOTONIC_USEC= */
void notify_stopping(struct daemon *d);           /* STOPPING=1 and STATUS= */
void notify_status(struct daemon *d, bool force); /* STATUS= if changed (1/s) */
void notify_watchdog_start(struct daemon *d);

/* ---- control_server.c -------------------------------------------------------- */
int control_open(struct daemon *d, const char *path);
int metrics_open(struct daemon *d, const struct pst_sockaddr *a);
void control_clients_close(struct daemon *d);
void control_server_close(struct daemon *d);
/* The end of a reload (generation.c): its outcome (JSON, may be NULL: out
 * of memory) to the control clients waiting for it. */
void control_reload_done(struct daemon *d, const char *json);

#endif
