/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon: one libuv loop.
 *
 *   listener readable -> accept4 until EAGAIN -> admission (handlers cap,
 *   per-source cap, rate) -> sandbox_spawn -> close our copy of the fd ->
 *   watch pidfd + stderr + timeout -> reap, log one exit line.
 *
 * Runtime state comes in generations: a generation is one loaded policy with
 * its prepared sandboxes. SIGHUP builds a new generation beside the current
 * one (policy, sandbox plans, new sockets, nftables) and switches only when
 * every step succeeded; running handlers move to the sandbox of the same name
 * in the new generation, or keep their old one until they exit.
 *
 * Listeners, channels and the control server live outside generations (they
 * carry libuv handles and are handed over across reloads by address/name).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include <uv.h>

#include "broker/broker.h"
#include "broker/internal.h"
#include "netpolicy/netpolicy.h"
#include "sandbox/sandbox.h"

#define ACCEPT_BATCH 64		/* accepts per wakeup, for fairness between listeners */
#define LISTEN_BACKLOG 4096
#define STDERR_LINE_MAX 1024	/* longer lines are logged in pieces */
#define STDERR_READ_BUDGET (64 * 1024)	/* per wakeup, so a chatty handler cannot starve others */
#define STDERR_TOTAL_MAX (1024 * 1024)	/* per handler; beyond it output is dropped and counted */
_Static_assert(PST_LINE_MAX == PIPE_BUF - 1, "pipe messages are atomic up to PIPE_BUF");
#define CONTROL_CLIENTS_MAX 16
#define CONTROL_REQ_MAX 4096		/* an HTTP request's headers fit */
#define CONTROL_IDLE_MS 10000		/* a client must ask within this */
#define TICK_MS 100
#define FD_RESERVE 64		/* fds for the log, spawning, libuv, beside control clients */
#define LOG_QUEUE_BYTES (256 * 1024)	/* log lines waiting for a slow sink */
#define LOG_FLUSH_MS 2000	/* at exit, how long the sink gets for the rest */
#define PREWARM_IDLE_MS 5	/* refill once a sandbox has been idle this long */
#define HANDLER_SPARE_MAX 256	/* freed handlers kept for reuse */
#define ENDPOINT_SPARE_MAX 256	/* closed channel endpoints kept for reuse */
#define MAX_SEND 16		/* channels one sandbox may write to */
#define MAX_SOCKETS 16		/* sockets of one startup sandbox */

enum refusal { REFUSE_PER_SOURCE, REFUSE_RATE, REFUSE_SPAWN_FAILED, REFUSE_SHUTDOWN, REFUSE__N };
static const char *const refusal_names[REFUSE__N] = { "per_source", "rate", "spawn_failed",
						      "shutting_down" };

struct daemon;
struct gen;

struct listener {
	uv_poll_t poll;
	struct daemon *d;
	struct sbx *sbx;	/* current owner (NULL while being handed over) */
	int fd;
	bool passive;		/* a startup `sockets` entry: handed over, not polled */
	bool polling;
	bool keep;		/* reload bookkeeping */
	struct pst_sockaddr addr;
	struct listener *next;
};

/* The broker's end of one sender handler's end of a channel. */
struct endpoint {
	uv_poll_t poll;
	struct daemon *d;
	struct channel *c;	/* NULL once off its channel (closing) */
	int fd;			/* nonblocking */
	bool polling;
	struct endpoint *next, **pprev;	/* c->endpoints; next: d->spare_ep too */
	struct pst_lines lines;	/* pipe: what is read and not yet a message */
};

struct channel {
	struct daemon *d;
	char name[PST_NAME_MAX + 1];
	enum pst_trigger kind;	/* PIPE or FDPASS */
	bool polling;		/* its endpoints are read: the consumer has room */
	bool keep;
	struct sbx *consumer;
	struct endpoint *endpoints;	/* one per sender handler still holding its end */
	unsigned n_endpoints;
	uint64_t messages, dropped;
	struct pst_throttle log_drop;	/* channel_drop lines */
	struct channel *next;
};

/* A threadpool job of a sandbox or a handler, with what it reports. */
struct pool_job {
	uv_work_t req;
	struct daemon *d;
	int r;
	struct sandbox_error err;
};

struct sbx {
	struct gen *gen;
	const struct pst_sandbox *conf;
	struct sandbox *sb;
	int netns_fd;
	struct pst_bucket bucket;
	struct pst_srctab sources;
	uint32_t active;
	struct channel *consumes;
	/* send channels: each handler gets ends of its own (sender_fds()) at
	 * these numbers; env entries built once per generation */
	size_t n_send;
	struct channel *send_ch[MAX_SEND];
	int send_target[MAX_SEND];
	char send_env[MAX_SEND][PST_NAME_MAX + 32];
	const char *send_envp[MAX_SEND + 1];
	struct sandbox_fd socket_fds[MAX_SOCKETS];	/* startup sockets, from fd 3 */
	size_t n_socket_fds;
	/* startup */
	uint64_t restart_at_ns;	/* 0: none pending */
	uint64_t restart_backoff_ms;
	/* pre-warmed handlers: n_warm started and not yet released, of which
	 * the `ready` stack holds n_ready */
	struct handler *ready;
	uint32_t n_warm, n_ready;
	uint64_t idle_since_ns;	/* when active last fell to 0 */
	uint64_t warm_used, warm_failed;
	uint64_t warm_retry_ns, warm_backoff_ms;	/* after a failed set-up */
	struct pool_job cg_job;	/* its handler cgroups being made ahead */
	bool cg_busy;		/* cg_job is queued */
	bool cg_stock_off;	/* making them ahead failed: spawns make their own */
	/* statistics */
	uint64_t started, exit_ok, exit_failed, exit_signaled, exit_timeout;
	uint64_t phase_sum_ns[SANDBOX_PHASE_COUNT], phase_n;	/* fresh spawns */
	uint64_t refused[REFUSE__N];
	struct pst_latring lat;
	/* lines its clients and handlers can cause per request, throttled */
	struct {
		struct pst_throttle refuse[REFUSE__N], spawn_failed, timeout, prewarm_exit, channel,
			accept;
	} log;
	struct {		/* of its exited handlers, from their cgroups */
		uint64_t cpu_usec;	/* CPU time */
		uint64_t oom_kills;	/* processes the OOM killer killed */
		uint64_t oom_handlers;	/* handlers it killed a process of */
		uint64_t mem_peak;	/* the highest peak */
	} cg;
};

struct gen {
	struct pst_policy *policy;
	struct sbx *sbx;
	size_t n_sbx;
	unsigned refs;		/* live handlers + 1 while current */
};

struct handler {
	struct daemon *d;
	struct sbx *sbx;
	struct sandbox_handler h;
	uv_poll_t exit_poll;
	uv_poll_t err_poll;
	uv_timer_t timer;
	uv_poll_t ctl_poll;	/* pre-warmed handlers only */
	int handles_open;
	bool has_ctl;
	bool warm;		/* pre-warmed and not (yet) released */
	bool ready;		/* warm and on its sandbox's ready stack */
	bool discarded;		/* warm, and killed on purpose */
	struct handler *ready_next;
	bool err_polling;
	bool exited;
	bool timed_out;
	bool killed;
	bool has_src;
	uint8_t src[PST_SRCKEY_LEN];
	char peer[INET6_ADDRSTRLEN + 16];
	uint64_t start_ns;
	uint64_t stderr_total, stderr_dropped;
	size_t line_len;
	char line[STDERR_LINE_MAX];
	struct handler *prev, *next;	/* d->handlers; next: d->spare too */
	struct pool_job setup;	/* pre-warmed handlers: the set-up */
	/* the fds it gets at fixed numbers (sender_fds()): its own ends of its
	 * send channels (send_w, the broker's copies until it has them), then
	 * the startup sockets */
	struct sandbox_fd fds[MAX_SEND + MAX_SOCKETS];
	size_t n_fds;
	int send_w[MAX_SEND];
	size_t n_send_w;
};

struct control_client {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;	/* control socket */
		uv_tcp_t tcp;	/* metrics */
	} s;
	uv_timer_t idle;
	struct daemon *d;
	struct control_client *next, **pprev;	/* d->clients */
	int handles_open;
	bool http;
	size_t len;
	char req[CONTROL_REQ_MAX];
	bool answered;
};

struct daemon {
	uv_loop_t *loop;
	const char *policy_path;
	struct gen *cur;
	struct netpolicy *np;
	struct listener *listeners;
	struct channel *channels;
	struct handler *handlers;
	size_t n_handlers;
	struct handler *spare;	/* freed, for the next (handler_new()) */
	unsigned n_spare;
	struct endpoint *spare_ep;	/* closed channel endpoints, for the next */
	unsigned n_spare_ep;
	unsigned pool_jobs;	/* in the threadpool: pre-warm set-ups, cgroup stocking */
	bool refill_busy;	/* --prewarm-refill=busy */
	bool insecure_policy;	/* --insecure-policy */
	unsigned refill_slots;	/* with it, set-ups under way per sandbox */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t grace_timer, tick, refill_timer;
	uv_pipe_t control;
	bool control_open;
	uv_tcp_t metrics;
	bool metrics_open;
	char control_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct pst_instance_lock lock;	/* of the table, from before anything of it is touched */
	struct sandbox_cg_info cg;	/* where handler cgroups live (sandbox_cg_init()) */
	uv_poll_t log_poll;	/* the log sink, while lines wait for it */
	bool log_poll_inited;
	unsigned control_clients;
	struct control_client *clients;
	bool stopping, finished;
	unsigned stop_signals;
	bool paused_emfile;
	uint64_t emfile_resume_ns;
	uint64_t started_ns;
	uint64_t reloads, reload_failures;
	int inherited[64];	/* LISTEN_FDS from systemd, -1 once taken */
	size_t n_inherited;
	int exit_code;
};

/* ------------------------------------------------------------------------ */

static void log_errno(const char *event, const char *sandbox, const char *what, int err)
{
	struct pst_logline l;
	pst_ll_begin(&l, "error", event);
	if (sandbox)
		pst_ll_str(&l, "sandbox", sandbox);
	pst_ll_str(&l, "what", what);
	pst_ll_str(&l, "error", strerror(err));
	pst_ll_end(&l);
}

/* Begin a line that a client or a handler can cause once per request: false
 * (and nothing begun) while t throttles it; else the line is begun, with
 * how many were suppressed before it. */
static bool ll_begin_throttled(struct pst_logline *l, struct pst_throttle *t, const char *level,
			       const char *event, uint64_t *suppressed)
{
	if (!pst_throttle_pass(t, pst_now_ns(), suppressed))
		return false;
	pst_ll_begin(l, level, event);
	return true;
}

/* ...and end it, saying how many were suppressed before it. */
static void ll_end_throttled(struct pst_logline *l, uint64_t suppressed)
{
	if (suppressed)
		pst_ll_uint(l, "suppressed", suppressed);
	pst_ll_end(l);
}

/* log_errno() for errors a request can cause, throttled by t. */
static void log_errno_throttled(struct pst_throttle *t, const char *event, const char *sandbox,
				const char *what, int err)
{
	struct pst_logline l;
	uint64_t sup;
	if (!ll_begin_throttled(&l, t, "error", event, &sup))
		return;
	if (sandbox)
		pst_ll_str(&l, "sandbox", sandbox);
	pst_ll_str(&l, "what", what);
	pst_ll_str(&l, "error", strerror(err));
	ll_end_throttled(&l, sup);
}

static void refuse(struct sbx *s, enum refusal why, const char *peer)
{
	s->refused[why]++;
	struct pst_logline l;
	uint64_t sup;
	if (!ll_begin_throttled(&l, &s->log.refuse[why], "warn", "refuse", &sup))
		return;
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_str(&l, "reason", refusal_names[why]);
	if (peer)
		pst_ll_str(&l, "peer", peer);
	ll_end_throttled(&l, sup);
}

static void gen_unref(struct gen *g);
static void channel_start(struct channel *c);
static void channel_stop(struct channel *c);
static int sender_fds(struct sbx *s, struct handler *h);
static void sender_fds_close(struct handler *h);
static void daemon_finish(struct daemon *d);

static void close_pair(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* ---- listeners ---------------------------------------------------------- */

static void on_listener_readable(uv_poll_t *p, int status, int events);

static void listener_start(struct listener *ls)
{
	if (ls->passive || ls->polling || ls->d->stopping || ls->d->paused_emfile)
		return;
	if (uv_poll_start(&ls->poll, UV_READABLE, on_listener_readable) == 0)
		ls->polling = true;
}

static void listener_stop(struct listener *ls)
{
	if (!ls->polling)
		return;
	uv_poll_stop(&ls->poll);
	ls->polling = false;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *ls = h->data;
	close(ls->fd);
	free(ls);
}

static void listener_close(struct listener *ls)
{
	listener_stop(ls);
	if (ls->addr.ss.ss_family == AF_UNIX && !ls->passive) {
		const struct sockaddr_un *un = (const void *)&ls->addr.ss;
		if (un->sun_path[0])
			unlink(un->sun_path);
	}
	uv_close((uv_handle_t *)&ls->poll, on_listener_closed);
}

static bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	if (a->ss_family == AF_UNIX) {
		const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
		return !strcmp(x->sun_path, y->sun_path);
	}
	return false;
}

/* A socket systemd passed us (LISTEN_FDS) for this address, or -1. */
static int take_inherited(struct daemon *d, const struct pst_sockaddr *a)
{
	for (size_t i = 0; i < d->n_inherited; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = d->inherited[i];
		if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			continue;
		if (sockaddr_equal(&ss, &a->ss)) {
			d->inherited[i] = -1;
			int fl = fcntl(fd, F_GETFL);
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			return fd;
		}
	}
	return -1;
}

static int open_socket(struct daemon *d, const struct pst_sockaddr *a, bool reuse_port, char *why,
		       size_t whylen)
{
	int fd = take_inherited(d, a);
	if (fd >= 0)
		return fd;

	int family = a->ss.ss_family, one = 1;
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -errno;
	}
	if (family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)&a->ss;
		struct stat st;
		if (lstat(un->sun_path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				snprintf(why, whylen, "%s exists and is not a socket", un->sun_path);
				close(fd);
				return -EEXIST;
			}
			unlink(un->sun_path);	/* stale socket of an earlier run */
		}
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
			int e = errno;
			snprintf(why, whylen, "SO_REUSEPORT: %s", strerror(e));
			close(fd);
			return -e;
		}
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		int e = errno;
		snprintf(why, whylen, "bind: %s", strerror(e));
		close(fd);
		return -e;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		int e = errno;
		snprintf(why, whylen, "listen: %s", strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

static struct listener *find_listener(struct daemon *d, const char *text)
{
	for (struct listener *ls = d->listeners; ls; ls = ls->next)
		if (!strcmp(ls->addr.text, text))
			return ls;
	return NULL;
}

/* ---- generations -------------------------------------------------------- */

static void sbx_set_polling(struct daemon *d, struct sbx *s, bool on)
{
	for (struct listener *ls = d->listeners; ls; ls = ls->next) {
		if (ls->sbx != s)
			continue;
		if (on)
			listener_start(ls);
		else
			listener_stop(ls);
	}
	if (s->consumes) {
		struct channel *c = s->consumes;
		if (on && !c->polling && !d->stopping)
			channel_start(c);
		else if (!on && c->polling)
			channel_stop(c);
	}
}

static bool sbx_at_capacity(const struct sbx *s)
{
	return s->active >= s->conf->limits.handlers;
}

static void gen_free(struct gen *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		struct sandbox_error err = { 0 };
		if (s->sb && sandbox_destroy(s->sb, &err) < 0)
			pst_log("warn", "cleanup", "sandbox", s->conf->name, "error", err.msg, NULL);
		pst_srctab_free(&s->sources);
	}
	free(g->sbx);
	pst_policy_free(g->policy);
	free(g);
}

static void gen_unref(struct gen *g)
{
	if (g && --g->refs == 0)
		gen_free(g);
}

static struct sbx *gen_find(struct gen *g, const char *name)
{
	for (size_t i = 0; i < g->n_sbx; i++)
		if (!strcmp(g->sbx[i].conf->name, name))
			return &g->sbx[i];
	return NULL;
}

/* Policy sandbox -> sandbox/ config; sandbox_prepare() copies what it keeps. */
static int prepare_sandbox(const struct pst_policy *p, const struct pst_sandbox *sc,
			   struct sandbox **out, char *why, size_t whylen)
{
	struct sandbox_mount *mounts = calloc(sc->n_fs + 1, sizeof(*mounts));
	char **env = calloc(sc->n_env + 1, sizeof(*env));
	int r = -ENOMEM;

	if (!mounts || !env)
		goto out;
	for (size_t i = 0; i < sc->n_fs; i++) {
		const struct pst_fs *f = &sc->fs[i];
		struct sandbox_mount *m = &mounts[i];
		m->kind = f->kind == PST_FS_BIND    ? SANDBOX_MOUNT_BIND
			  : f->kind == PST_FS_TMPFS ? SANDBOX_MOUNT_TMPFS
			  : f->kind == PST_FS_PROC  ? SANDBOX_MOUNT_PROC
						    : SANDBOX_MOUNT_SYMLINK;
		m->src = f->src;
		m->dst = f->dst;
		m->rw = f->rw;
		m->size = f->size;
		m->target = f->target;
	}
	for (size_t i = 0; i < sc->n_env; i++) {
		if (asprintf(&env[i], "%s=%s", sc->env[i].key, sc->env[i].value) < 0) {
			env[i] = NULL;
			goto out;
		}
	}
	struct sandbox_config cfg = {
		.name = sc->name,
		.argv = (const char *const *)sc->exec,
		.env = (const char *const *)env,
		.uid = sc->uid,
		.gid = sc->uid,
		.mounts = mounts,
		.n_mounts = sc->n_fs,
		.socket_mode = sc->socket == PST_SOCKET_LISTEN_FDS ? SANDBOX_SOCKET_LISTEN_FDS
								   : SANDBOX_SOCKET_STDIO,
		.limits = {
			.memory = sc->limits.memory,
			.pids = sc->limits.pids,
			.nofile = sc->limits.nofile,
			/* all handlers of a sandbox share one uid; before Linux
			 * 5.14 RLIMIT_NPROC counted every process of that uid,
			 * since then per user namespace (one per handler). The
			 * per-handler cap is the pids cgroup; this bound is safe
			 * with either accounting */
			.nproc = (uint32_t)((uint64_t)sc->limits.pids * sc->limits.handlers > UINT32_MAX
						    ? UINT32_MAX
						    : (uint64_t)sc->limits.pids * sc->limits.handlers),
			.cpu = sc->limits.cpu,
		},
		.seccomp_action = sc->seccomp.action == PST_SECCOMP_KILL ? SANDBOX_SECCOMP_KILL
									 : SANDBOX_SECCOMP_ERRNO,
		.cgroup_name = p->broker.table,
		.allow_bind = sc->allow_bind,
	};
	const char **deny = calloc(sc->seccomp.n_deny + 1, sizeof(char *));
	const char **allow = calloc(sc->seccomp.n_allow + 1, sizeof(char *));
	if (!deny || !allow) {
		free(deny);
		free(allow);
		goto out;
	}
	for (size_t i = 0; i < sc->seccomp.n_deny; i++)
		deny[i] = sc->seccomp.deny[i];
	for (size_t i = 0; i < sc->seccomp.n_allow; i++)
		allow[i] = sc->seccomp.allow[i];
	cfg.seccomp_deny = deny;
	cfg.seccomp_allow = allow;

	struct sandbox_error err = { 0 };
	r = sandbox_prepare(&cfg, out, &err);
	if (r < 0)
		snprintf(why, whylen, "%s", err.msg[0] ? err.msg : strerror(-r));
	free(deny);
	free(allow);
out:
	if (r == -ENOMEM)
		snprintf(why, whylen, "sandbox \"%s\": prepare: %s", sc->name, strerror(ENOMEM));
	if (env)
		for (size_t i = 0; i < sc->n_env; i++)
			free(env[i]);
	free(env);
	free(mounts);
	return r;
}

static void np_log(void *ctx, const char *msg)
{
	(void)ctx;
	pst_log("info", "netpolicy", "msg", msg, NULL);
}

static void cidr_to_np(const struct pst_cidr *c, struct netpolicy_cidr *o)
{
	o->family = c->family;
	memcpy(o->addr, c->addr, sizeof(o->addr));
	o->prefix = c->prefix;
}

/* Build the netpolicy config of a policy; arrays freed by np_config_free. */
static int np_config(const struct pst_policy *p, struct netpolicy_config *cfg)
{
	struct netpolicy_sandbox *sbs = calloc(p->n_sandboxes + 1, sizeof(*sbs));
	if (!sbs)
		return -ENOMEM;
	memset(cfg, 0, sizeof(*cfg));
	cfg->table = p->broker.table;
	cfg->ifprefix = "pst";
	cfg->state_dir = p->broker.state_dir;
	cidr_to_np(&p->broker.sandbox_net, &cfg->pool4);
	cidr_to_np(&p->broker.sandbox_net6, &cfg->pool6);
	cfg->sandboxes = sbs;
	cfg->n_sandboxes = p->n_sandboxes;
	cfg->log = np_log;
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		sbs[i].name = sc->name;
		if (!sc->n_egress)
			continue;
		struct netpolicy_rule *rules = calloc(sc->n_egress, sizeof(*rules));
		if (!rules)
			return -ENOMEM;
		for (size_t j = 0; j < sc->n_egress; j++) {
			cidr_to_np(&sc->egress[j].to, &rules[j].to);
			rules[j].proto = (uint8_t)sc->egress[j].proto;
			rules[j].ports = sc->egress[j].ports;
			rules[j].n_ports = sc->egress[j].n_ports;
		}
		sbs[i].rules = rules;
		sbs[i].n_rules = sc->n_egress;
	}
	/* the `sockets` of startup sandboxes: handed over, and the only
	 * addresses where a socket with their mark may accept connections */
	size_t nl = 0;
	for (size_t i = 0; i < p->n_sandboxes; i++)
		nl += p->sandboxes[i].trigger == PST_TRIGGER_LISTEN ? 0 : p->sandboxes[i].n_sockets;
	struct netpolicy_listener *nls = calloc(nl + 1, sizeof(*nls));
	if (!nls)
		return -ENOMEM;
	cfg->listeners = nls;
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		for (size_t j = 0; sc->trigger != PST_TRIGGER_LISTEN && j < sc->n_sockets; j++) {
			const struct sockaddr_storage *ss = &sc->sockets[j].ss;
			struct netpolicy_listener *l = &nls[cfg->n_listeners];
			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *in = (const void *)ss;
				memcpy(l->addr, &in->sin_addr, 4);
				l->port = ntohs(in->sin_port);
			} else if (ss->ss_family == AF_INET6) {
				const struct sockaddr_in6 *in6 = (const void *)ss;
				memcpy(l->addr, &in6->sin6_addr, 16);
				l->port = ntohs(in6->sin6_port);
			} else {
				continue;
			}
			l->family = ss->ss_family;
			cfg->n_listeners++;
		}
	}
	return 0;
}

static void np_config_free(struct netpolicy_config *cfg)
{
	free((void *)cfg->listeners);
	cfg->listeners = NULL;
	if (!cfg->sandboxes)
		return;
	for (size_t i = 0; i < cfg->n_sandboxes; i++)
		free((void *)cfg->sandboxes[i].rules);
	free((void *)cfg->sandboxes);
	cfg->sandboxes = NULL;
}

/* ---- handlers ------------------------------------------------------------ */

static void handler_exit(struct handler *h);
static void schedule_restart(struct daemon *d, struct sbx *s, bool failed, uint64_t ran_ns);
static void warm_gone(struct daemon *d, struct handler *h);

/* While stopping: finish once no handler and no pre-warm job is left. */
static void maybe_finish(struct daemon *d)
{
	if (d->stopping && !d->n_handlers && !d->pool_jobs)
		daemon_finish(d);
}
static void prewarm_refill(struct daemon *d, struct sbx *s, const char *cause);
static void on_refill_timer(uv_timer_t *t);

static void handler_link(struct daemon *d, struct handler *h)
{
	h->next = d->handlers;
	if (d->handlers)
		d->handlers->prev = h;
	d->handlers = h;
	d->n_handlers++;
	h->sbx->gen->refs++;
}

static void handler_unlink(struct daemon *d, struct handler *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		d->handlers = h->next;
	if (h->next)
		h->next->prev = h->prev;
	d->n_handlers--;
}

/* Freed handlers are kept for the next ones (up to HANDLER_SPARE_MAX): once
 * the broker has served its peak concurrency, a request allocates nothing. */
static struct handler *handler_new(struct daemon *d)
{
	struct handler *h = d->spare;
	if (!h)
		return calloc(1, sizeof(*h));
	d->spare = h->next;
	d->n_spare--;
	memset(h, 0, sizeof(*h));
	return h;
}

static void handler_put(struct daemon *d, struct handler *h)
{
	if (d->n_spare >= HANDLER_SPARE_MAX) {
		free(h);
		return;
	}
	h->next = d->spare;
	d->spare = h;
	d->n_spare++;
}

static void stderr_emit(struct handler *h, const char *s, size_t n, bool partial)
{
	if (h->stderr_total >= STDERR_TOTAL_MAX) {
		h->stderr_dropped += n;
		return;
	}
	h->stderr_total += n;
	struct pst_logline l;
	pst_ll_begin(&l, "info", "stderr");
	pst_ll_str(&l, "sandbox", h->sbx->conf->name);
	pst_ll_int(&l, "pid", h->h.pid);
	pst_ll_strn(&l, "line", s, n);
	if (partial)
		pst_ll_int(&l, "partial", 1);
	pst_ll_end(&l);
}

/* Read what the handler wrote, at most `budget` bytes; true at EOF. */
static bool stderr_drain(struct handler *h, size_t budget)
{
	char buf[4096];

	while (budget) {
		ssize_t n = read(h->h.stderr_fd, buf, sizeof(buf) < budget ? sizeof(buf) : budget);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno != EAGAIN;
		if (n == 0) {
			if (h->line_len)
				stderr_emit(h, h->line, h->line_len, false);
			h->line_len = 0;
			return true;
		}
		budget -= (size_t)n;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				stderr_emit(h, h->line, h->line_len, false);
				h->line_len = 0;
				continue;
			}
			if (h->line_len == sizeof(h->line)) {
				stderr_emit(h, h->line, h->line_len, true);
				h->line_len = 0;
			}
			h->line[h->line_len++] = buf[i];
		}
	}
	return false;
}

static void on_handler_stderr(uv_poll_t *p, int status, int events)
{
	struct handler *h = p->data;
	(void)events;
	if (status < 0 || stderr_drain(h, STDERR_READ_BUDGET)) {
		uv_poll_stop(p);
		h->err_polling = false;
	}
}

static void on_handler_exit(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	handler_exit(p->data);
}

static void on_handler_timeout(uv_timer_t *t)
{
	struct handler *h = t->data;
	if (h->exited)
		return;
	h->timed_out = true;
	struct pst_logline l;
	uint64_t sup;
	if (ll_begin_throttled(&l, &h->sbx->log.timeout, "warn", "timeout", &sup)) {
		pst_ll_str(&l, "sandbox", h->sbx->conf->name);
		pst_ll_int(&l, "pid", h->h.pid);
		pst_ll_ms(&l, "after_ms", pst_now_ns() - h->start_ns);
		ll_end_throttled(&l, sup);
	}
	sandbox_kill(&h->h);
}

static void handler_free_cb(uv_handle_t *uvh)
{
	struct handler *h = uvh->data;
	if (--h->handles_open)
		return;

	struct daemon *d = h->d;
	struct sbx *s = h->sbx;
	if (h->warm) {
		warm_gone(d, h);
		return;
	}
	/* its figures, from its cgroup, before the reap removes it */
	struct sandbox_cg_stats cs;
	sandbox_cg_stats(&h->h, &cs);
	int wstatus = 0;
	int r = sandbox_reap(&h->h, &wstatus);
	uint64_t ran = pst_now_ns() - h->start_ns;

	struct pst_logline l;
	pst_ll_begin(&l, "info", "exit");
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_int(&l, "pid", h->h.pid);
	if (h->peer[0])
		pst_ll_str(&l, "peer", h->peer);
	pst_ll_ms(&l, "duration_ms", ran);
	bool failed = true;
	if (r < 0) {
		pst_ll_str(&l, "status", "unknown");
		pst_ll_str(&l, "error", strerror(-r));
		s->exit_failed++;
	} else if (WIFEXITED(wstatus)) {
		pst_ll_int(&l, "status", WEXITSTATUS(wstatus));
		failed = WEXITSTATUS(wstatus) != 0;
		if (failed)
			s->exit_failed++;
		else
			s->exit_ok++;
	} else if (WIFSIGNALED(wstatus)) {
		pst_ll_str(&l, "signal", sigabbrev_np(WTERMSIG(wstatus)) ? sigabbrev_np(WTERMSIG(wstatus)) : "?");
		if (h->timed_out)
			s->exit_timeout++;
		else
			s->exit_signaled++;
	}
	if (h->timed_out)
		pst_ll_str(&l, "reason", "timeout");
	else if (h->killed)
		pst_ll_str(&l, "reason", "shutdown");
	if (h->stderr_dropped)
		pst_ll_uint(&l, "stderr_dropped", h->stderr_dropped);
	if (cs.has & SANDBOX_CG_HAS_CPU) {
		pst_ll_ms(&l, "cpu_ms", cs.cpu_usec * 1000);
		s->cg.cpu_usec += cs.cpu_usec;
	}
	if (cs.has & SANDBOX_CG_HAS_PEAK) {
		pst_ll_uint(&l, "mem_peak", cs.mem_peak);
		if (cs.mem_peak > s->cg.mem_peak)
			s->cg.mem_peak = cs.mem_peak;
	}
	if (cs.oom_kills) {
		pst_ll_uint(&l, "oom_kills", cs.oom_kills);
		s->cg.oom_kills += cs.oom_kills;
		s->cg.oom_handlers++;
	}
	pst_ll_end(&l);

	/* unlink and account */
	handler_unlink(d, h);
	bool was_full = sbx_at_capacity(s);
	s->active--;
	if (!s->active) {
		s->idle_since_ns = pst_now_ns();
		if (s->n_warm < s->conf->prewarm && s->gen == d->cur)
			uv_timer_start(&d->refill_timer, on_refill_timer, PREWARM_IDLE_MS, 0);
	}
	if (h->has_src)
		pst_srctab_dec(&s->sources, h->src);
	if (s->conf->trigger == PST_TRIGGER_STARTUP)
		schedule_restart(d, s, failed || h->timed_out, ran);
	if (was_full && !sbx_at_capacity(s) && s->gen == d->cur)
		sbx_set_polling(d, s, true);
	gen_unref(s->gen);
	handler_put(d, h);

	maybe_finish(d);
}

static void handler_exit(struct handler *h)
{
	if (h->exited)
		return;
	h->exited = true;
	uv_timer_stop(&h->timer);
	uv_poll_stop(&h->exit_poll);
	if (h->err_polling) {
		uv_poll_stop(&h->err_poll);
		h->err_polling = false;
	}
	/* whatever the handler wrote before it died */
	stderr_drain(h, STDERR_TOTAL_MAX);
	uv_close((uv_handle_t *)&h->exit_poll, handler_free_cb);
	uv_close((uv_handle_t *)&h->err_poll, handler_free_cb);
	uv_close((uv_handle_t *)&h->timer, handler_free_cb);
	if (h->has_ctl)
		uv_close((uv_handle_t *)&h->ctl_poll, handler_free_cb);
}

static void format_peer(const struct sockaddr_storage *ss, char *addr, size_t alen, int *port)
{
	*port = 0;
	addr[0] = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)alen);
		*port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)alen);
		*port = ntohs(in6->sin6_port);
	}
}

/* Per-request environment in the handler's own storage (no allocation). */
struct req_env {
	char buf[8][INET6_ADDRSTRLEN + 24];
	const char *envp[8 + MAX_SEND + 1];
};

static void build_env(struct req_env *e, const struct sbx *s, int fd, bool inet)
{
	size_t n = 0, k = 0;

	if (inet) {
		struct sockaddr_storage peer, local;
		socklen_t plen = sizeof(peer), llen = sizeof(local);
		char pa[INET6_ADDRSTRLEN], la[INET6_ADDRSTRLEN];
		int pp, lp;
		if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 &&
		    getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
			format_peer(&peer, pa, sizeof(pa), &pp);
			format_peer(&local, la, sizeof(la), &lp);
			snprintf(e->buf[k], sizeof(e->buf[k]), "REMOTE_ADDR=%s", pa), e->envp[n++] = e->buf[k++];
			snprintf(e->buf[k], sizeof(e->buf[k]), "REMOTE_PORT=%d", pp), e->envp[n++] = e->buf[k++];
			snprintf(e->buf[k], sizeof(e->buf[k]), "TCPREMOTEIP=%s", pa), e->envp[n++] = e->buf[k++];
			snprintf(e->buf[k], sizeof(e->buf[k]), "TCPREMOTEPORT=%d", pp), e->envp[n++] = e->buf[k++];
			snprintf(e->buf[k], sizeof(e->buf[k]), "TCPLOCALIP=%s", la), e->envp[n++] = e->buf[k++];
			snprintf(e->buf[k], sizeof(e->buf[k]), "TCPLOCALPORT=%d", lp), e->envp[n++] = e->buf[k++];
			e->envp[n++] = "PROTO=TCP";
		}
	}
	for (size_t i = 0; i < s->n_send; i++)
		e->envp[n++] = s->send_envp[i];
	e->envp[n] = NULL;
}

/* libuv handles of a started handler: pidfd, stderr, timeout. */
static void handler_watch(struct daemon *d, struct handler *h)
{
	uv_poll_init(d->loop, &h->exit_poll, h->h.pidfd);
	uv_poll_init(d->loop, &h->err_poll, h->h.stderr_fd);
	uv_timer_init(d->loop, &h->timer);
	h->exit_poll.data = h->err_poll.data = h->timer.data = h;
	h->handles_open = 3;
	uv_poll_start(&h->exit_poll, UV_READABLE, on_handler_exit);
	if (uv_poll_start(&h->err_poll, UV_READABLE, on_handler_stderr) == 0)
		h->err_polling = true;
}

static void log_spawn_failed(struct sbx *s, const char *peer, const struct sandbox_error *err, int r,
			     bool warm)
{
	struct pst_logline l;
	uint64_t sup;
	if (!ll_begin_throttled(&l, &s->log.spawn_failed, "error", "spawn_failed", &sup))
		return;
	pst_ll_str(&l, "sandbox", s->conf->name);
	if (peer && peer[0])
		pst_ll_str(&l, "peer", peer);
	if (warm)
		pst_ll_int(&l, "prewarm", 1);
	pst_ll_str(&l, "error", err->msg[0] ? err->msg : strerror(-r));
	ll_end_throttled(&l, sup);
}

/* ---- pre-warmed handlers ------------------------------------------------- */

static void warm_backoff(struct sbx *s)
{
	/* 100 ms doubling to 10 s while set-up keeps failing */
	s->warm_failed++;
	s->warm_backoff_ms = s->warm_backoff_ms ? s->warm_backoff_ms * 2 : 100;
	if (s->warm_backoff_ms > 10000)
		s->warm_backoff_ms = 10000;
	s->warm_retry_ns = pst_now_ns() + s->warm_backoff_ms * 1000000ull;
}

static void ready_remove(struct sbx *s, struct handler *h)
{
	for (struct handler **p = &s->ready; *p; p = &(*p)->ready_next)
		if (*p == h) {
			*p = h->ready_next;
			s->n_ready--;
			break;
		}
	h->ready = false;
	h->ready_next = NULL;
}

/* Kill an unreleased handler on purpose (reload, shutdown). */
static void warm_discard(struct handler *h)
{
	if (h->ready)
		ready_remove(h->sbx, h);
	h->discarded = true;
	sandbox_kill(&h->h);
}

static void on_warm_ctl(uv_poll_t *p, int status, int events)
{
	struct handler *h = p->data;
	struct sbx *s = h->sbx;
	struct sandbox_error err = { 0 };
	(void)events;

	int r = status < 0 ? status : sandbox_warm_ready(s->sb, &h->h, &err);
	if (r == -EAGAIN)
		return;
	uv_poll_stop(p);
	if (r == 0) {
		h->ready = true;
		h->ready_next = s->ready;
		s->ready = h;
		s->n_ready++;
		s->warm_backoff_ms = 0;
		if (pst_log_debug) {
			struct pst_logline l;
			pst_ll_begin(&l, "debug", "prewarm_ready");
			pst_ll_str(&l, "sandbox", s->conf->name);
			pst_ll_int(&l, "pid", h->h.pid);
			pst_ll_str(&l, "waits_in", h->h.preloaded ? "handler" : "postern-warm");
			pst_ll_ms(&l, "setup_ms", pst_now_ns() - h->start_ns);
			pst_ll_end(&l);
		}
		if (h->d->refill_busy)
			prewarm_refill(h->d, s, "ready");
		return;
	}
	log_spawn_failed(s, NULL, &err, r, true);
	warm_backoff(s);
	h->discarded = true;	/* already accounted as a failure */
	sandbox_kill(&h->h);
}

/* A pre-warmed handler is set up in libuv's threadpool: sandbox_prewarm()
 * suspends its calling thread for the whole set-up (vfork-style), which must
 * not be the loop's. The pool threads live as long as the process, so the
 * handler's parent-death signal stays armed. */
static void warm_work(uv_work_t *req)
{
	struct handler *h = req->data;
	struct sbx *s = h->sbx;
	struct sandbox_spawn_args args = {
		.sock_fd = -1,
		.stdin_fd = -1,
		.netns_fd = s->netns_fd,
		.fds = h->fds,
		.n_fds = h->n_fds,
		.listen_fds = (int)s->n_socket_fds,
	};
	h->setup.r = sandbox_prewarm(s->sb, &args, &h->h, &h->setup.err);
}

static void warm_work_done(uv_work_t *req, int status)
{
	struct handler *h = req->data;
	struct pool_job *j = &h->setup;
	struct daemon *d = j->d;
	struct sbx *s = h->sbx;
	struct gen *g = s->gen;

	d->pool_jobs--;
	sender_fds_close(h);	/* it has them, or failed */
	if (status < 0 && j->r == 0)
		j->r = status;
	if (j->r < 0) {
		log_spawn_failed(s, NULL, &j->err, j->r, true);
		warm_backoff(s);
		s->n_warm--;
		handler_put(d, h);
	} else {
		h->warm = true;
		h->start_ns = pst_now_ns();
		handler_link(d, h);
		handler_watch(d, h);
		uv_poll_init(d->loop, &h->ctl_poll, h->h.ctl_fd);
		h->ctl_poll.data = h;
		h->has_ctl = true;
		h->handles_open++;
		uv_poll_start(&h->ctl_poll, UV_READABLE, on_warm_ctl);
		/* set up for a policy that has gone meanwhile */
		if (d->stopping || g != d->cur)
			warm_discard(h);
	}
	gen_unref(g);	/* the job's reference */
	maybe_finish(d);
}

static int warm_start(struct daemon *d, struct sbx *s)
{
	struct handler *h = handler_new(d);
	if (!h)
		return -ENOMEM;
	h->d = h->setup.d = d;
	h->sbx = s;
	h->setup.req.data = h;
	/* made here, on the loop: the job reads only what is its own */
	int r = sender_fds(s, h);
	if (r < 0) {
		warm_backoff(s);
		handler_put(d, h);
		return r;
	}
	r = uv_queue_work(d->loop, &h->setup.req, warm_work, warm_work_done);
	if (r < 0) {
		log_errno("prewarm", s->conf->name, "queue the set-up", -r);
		sender_fds_close(h);
		warm_backoff(s);
		handler_put(d, h);
		return r;
	}
	s->gen->refs++;
	s->n_warm++;
	d->pool_jobs++;
	return 0;
}

/* Start pre-warmed handlers towards the sandbox's `prewarm`. A set-up costs
 * a few ms of CPU, and on a machine where process creation does not scale
 * with CPUs, beside a request in service it slows that request about as
 * much as it would save the next one (measured on 2 CPUs: README,
 * "Performance"). So by default (--prewarm-refill=idle): all that are
 * missing once the sandbox has had nothing in service for PREWARM_IDLE_MS,
 * and while it is busy one at a time (the tick and each idle moment start
 * the next). With busy: at once, up to refill_slots under way (each
 * release and each set-up that is ready start the next). */
static void prewarm_refill(struct daemon *d, struct sbx *s, const char *cause)
{
	uint64_t now = pst_now_ns();
	if (d->stopping || s->gen != d->cur || s->conf->trigger == PST_TRIGGER_STARTUP ||
	    now < s->warm_retry_ns || s->n_warm >= s->conf->prewarm)
		return;
	/* (1 ms of slack: the loop's timers run on its cached clock) */
	bool idle = !s->active && now - s->idle_since_ns + 1000000ull >= PREWARM_IDLE_MS * 1000000ull;
	unsigned slots = idle ? UINT_MAX : d->refill_busy ? d->refill_slots : 1;
	unsigned n = 0;
	while (s->n_warm < s->conf->prewarm && s->n_warm - s->n_ready < slots &&
	       warm_start(d, s) == 0)
		n++;
	if (n && pst_log_debug) {
		struct pst_logline l;
		pst_ll_begin(&l, "debug", "prewarm_refill");
		pst_ll_str(&l, "sandbox", s->conf->name);
		pst_ll_str(&l, "when", idle ? "idle" : "busy");
		pst_ll_str(&l, "cause", cause);
		pst_ll_uint(&l, "started", n);
		pst_ll_end(&l);
	}
}

/* For --prewarm-refill=busy: a set-up for each CPU we may run on but one
 * (the request in service needs one), at least 1. */
static unsigned refill_slots(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	return n > 2 ? (unsigned)n - 1 : 1;
}

static void on_refill_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	for (size_t i = 0; d->cur && i < d->cur->n_sbx; i++)
		prewarm_refill(d, &d->cur->sbx[i], "idle");
}

/* A pre-warmed handler that was never released has exited: reap it. */
static void warm_gone(struct daemon *d, struct handler *h)
{
	struct sbx *s = h->sbx;
	struct sandbox_error err = { 0 };
	/* a set-up failure whose report came with the exit */
	bool reported = !h->ready && !h->discarded &&
			sandbox_warm_ready(s->sb, &h->h, &err) < 0 && err.msg[0];
	int wstatus = 0;
	int reap_r = sandbox_reap(&h->h, &wstatus);
	if (h->ready)
		ready_remove(s, h);
	if (reported) {
		log_spawn_failed(s, NULL, &err, -err.err, true);
		warm_backoff(s);
	} else if (!h->discarded) {
		/* it died while waiting: count it, and do not refill in a loop */
		char st[32];
		if (reap_r < 0)
			snprintf(st, sizeof(st), "unknown");
		else if (WIFSIGNALED(wstatus))
			snprintf(st, sizeof(st), "signal %d", WTERMSIG(wstatus));
		else
			snprintf(st, sizeof(st), "status %d", WEXITSTATUS(wstatus));
		struct pst_logline l;
		uint64_t sup;
		if (ll_begin_throttled(&l, &s->log.prewarm_exit, "warn", "prewarm_exit", &sup)) {
			pst_ll_str(&l, "sandbox", s->conf->name);
			pst_ll_str(&l, "status", st);
			ll_end_throttled(&l, sup);
		}
		warm_backoff(s);
	}
	handler_unlink(d, h);
	s->n_warm--;
	struct gen *g = s->gen;
	handler_put(d, h);
	if (!d->stopping && g == d->cur)
		prewarm_refill(d, s, "exit");
	gen_unref(g);
	maybe_finish(d);
}

/* A ready pre-warmed handler takes the request (and closes sock_fd and
 * stdin_fd), or NULL (none ready, or every ready one refused it: each such
 * one is discarded; the fds are still open). */
static struct handler *warm_take(struct sbx *s, int sock_fd, int stdin_fd, const char *const *env)
{
	while (s->ready) {
		struct handler *h = s->ready;
		ready_remove(s, h);
		struct sandbox_error err = { 0 };
		if (sandbox_release(s->sb, &h->h, sock_fd, stdin_fd, env, &err) == 0) {
			h->warm = false;
			s->n_warm--;
			s->warm_used++;
			return h;
		}
		log_spawn_failed(s, NULL, &err, -EPIPE, true);
		warm_backoff(s);
		h->discarded = true;
		sandbox_kill(&h->h);
	}
	return NULL;
}

/* Handler cgroups made ahead in the threadpool (sandbox_cg_stock()), so a
 * fresh spawn, which suspends the loop, only opens them: about 0.15 ms less
 * of that. One job per sandbox at a time (sbx.cg_job); started after fresh
 * spawns. */
static void cg_work(uv_work_t *req)
{
	struct sbx *s = req->data;
	s->cg_job.r = sandbox_cg_stock(s->sb, &s->cg_job.err);
}

static void cg_work_done(uv_work_t *req, int status)
{
	struct sbx *s = req->data;
	struct pool_job *j = &s->cg_job;
	struct daemon *d = j->d;
	struct gen *g = s->gen;

	d->pool_jobs--;
	s->cg_busy = false;
	if (status < 0 && j->r == 0)
		j->r = status;
	if (j->r < 0) {
		/* spawns still make their own, and report what fails there */
		s->cg_stock_off = true;
		pst_log("warn", "cgroup_stock", "sandbox", s->conf->name, "error",
			j->err.msg[0] ? j->err.msg : strerror(-j->r), "effect",
			"handler cgroups made at each spawn", NULL);
	}
	gen_unref(g);	/* the job's reference */
	maybe_finish(d);
}

static void cg_stock_start(struct daemon *d, struct sbx *s)
{
	if (s->cg_busy || s->cg_stock_off || d->stopping || s->gen != d->cur ||
	    !sandbox_cg_stock_missing(s->sb))
		return;
	struct pool_job *j = &s->cg_job;
	memset(j, 0, sizeof(*j));
	j->d = d;
	j->req.data = s;
	if (uv_queue_work(d->loop, &j->req, cg_work, cg_work_done) < 0)
		return;
	s->cg_busy = true;
	s->gen->refs++;
	d->pool_jobs++;
}

static void close_fds(int a, int b)
{
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
}

/* Spawn one handler of s, or hand the request to a pre-warmed one. sock_fd
 * and stdin_fd (or -1) are closed here, as early as possible: the client
 * sees EOF only once every copy of its socket is closed. Returns 0 or a
 * negative errno (already logged). */
static int spawn(struct daemon *d, struct sbx *s, int sock_fd, int stdin_fd, const char *peer,
		 const uint8_t *src)
{
	struct req_env env;
	bool inet = false;
	if (sock_fd >= 0 && peer && peer[0])
		inet = true;
	build_env(&env, s, sock_fd, inet);

	uint64_t t0 = pst_now_ns(), spawn_ns;
	struct handler *h = NULL;
	bool warm = false;
	if (s->ready && (sock_fd >= 0 || stdin_fd >= 0) &&
	    (h = warm_take(s, sock_fd, stdin_fd, (const char *const *)env.envp))) {
		warm = true;
		spawn_ns = pst_now_ns() - t0;
	} else {
		if (!(h = handler_new(d))) {
			log_errno_throttled(&s->log.spawn_failed, "spawn", s->conf->name, "allocate handler",
					    ENOMEM);
			close_fds(sock_fd, stdin_fd);
			return -ENOMEM;
		}
		int r = sender_fds(s, h);
		if (r < 0) {
			s->refused[REFUSE_SPAWN_FAILED]++;
			close_fds(sock_fd, stdin_fd);
			handler_put(d, h);
			return r;
		}
		struct sandbox_spawn_args args = {
			.sock_fd = sock_fd,
			.stdin_fd = stdin_fd,
			.netns_fd = s->netns_fd,
			.extra_env = env.envp,
			.fds = h->fds,
			.n_fds = h->n_fds,
			.listen_fds = (int)s->n_socket_fds,
		};
		struct sandbox_error err = { 0 };
		r = sandbox_spawn(s->sb, &args, &h->h, &err);
		sender_fds_close(h);
		if (r < 0)	/* logged before the client sees its connection close */
			log_spawn_failed(s, peer, &err, r, false);
		close_fds(sock_fd, stdin_fd);
		if (r < 0) {
			s->refused[REFUSE_SPAWN_FAILED]++;
			handler_put(d, h);
			return r;
		}
		spawn_ns = h->h.spawn_ns ? h->h.spawn_ns : pst_now_ns() - t0;
		for (int i = 0; i < SANDBOX_PHASE_COUNT; i++)
			s->phase_sum_ns[i] += h->h.phase_ns[i];
		s->phase_n++;
		h->d = d;
		h->sbx = s;
		handler_link(d, h);
		handler_watch(d, h);
		cg_stock_start(d, s);
	}

	h->start_ns = t0;
	if (peer)
		snprintf(h->peer, sizeof(h->peer), "%s", peer);
	if (src) {
		memcpy(h->src, src, PST_SRCKEY_LEN);
		/* without memory for the entry the handler just goes uncounted */
		h->has_src = pst_srctab_inc(&s->sources, src) == 0;
	}
	s->active++;
	s->started++;
	pst_latring_add(&s->lat, (uint32_t)(spawn_ns / 1000));
	if (s->conf->limits.timeout_ms)
		uv_timer_start(&h->timer, on_handler_timeout, s->conf->limits.timeout_ms, 0);

	struct pst_logline l;
	pst_ll_begin(&l, "info", "spawn");
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_int(&l, "pid", h->h.pid);
	if (peer && peer[0])
		pst_ll_str(&l, "peer", peer);
	pst_ll_ms(&l, "spawn_ms", spawn_ns);
	if (warm)
		pst_ll_int(&l, "prewarmed", 1);
	pst_ll_uint(&l, "active", s->active);
	pst_ll_end(&l);
	/* by default no refill here: prewarm_refill() waits for a quiet moment */
	if (d->refill_busy && s->conf->prewarm)
		prewarm_refill(d, s, warm ? "release" : "spawn");
	return 0;
}

static void on_listener_readable(uv_poll_t *p, int status, int events)
{
	struct listener *ls = p->data;
	struct daemon *d = ls->d;
	struct sbx *s = ls->sbx;
	(void)events;

	if (status < 0 || !s)
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		if (sbx_at_capacity(s)) {
			/* let the kernel backlog hold the rest */
			sbx_set_polling(d, s, false);
			return;
		}
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		int fd = accept4(ls->fd, (struct sockaddr *)&ss, &slen, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_errno_throttled(&s->log.accept, "accept", s->conf->name, ls->addr.text,
						    errno);
				d->paused_emfile = true;
				d->emfile_resume_ns = pst_now_ns() + 100000000ull;
				for (struct listener *x = d->listeners; x; x = x->next)
					listener_stop(x);
				return;
			}
			log_errno_throttled(&s->log.accept, "accept", s->conf->name, ls->addr.text, errno);
			return;
		}
		/* the handler gets a blocking socket, as inetd programs expect */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		/* marked: the table refuses any new connection from or to it, so
		 * dissolving it (connect AF_UNSPEC) leads nowhere (netpolicy.h) */
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
			int mr = netpolicy_mark_socket(fd, false, NULL);
			if (mr < 0) {
				log_errno_throttled(&s->log.accept, "accept", s->conf->name,
						    "mark the connection (SO_MARK)", -mr);
				close(fd);
				continue;
			}
		}

		char peer[INET6_ADDRSTRLEN + 16] = "";
		uint8_t key[PST_SRCKEY_LEN] = { 0 };
		int port = 0;
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
			char a[INET6_ADDRSTRLEN];
			format_peer(&ss, a, sizeof(a), &port);
			if (ss.ss_family == AF_INET6)
				snprintf(peer, sizeof(peer), "[%s]:%d", a, port);
			else
				snprintf(peer, sizeof(peer), "%s:%d", a, port);
			key[0] = (uint8_t)ss.ss_family;
			if (ss.ss_family == AF_INET)
				memcpy(key + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
			else
				memcpy(key + 1, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		} else {
			/* unix: the source is the peer's uid */
			struct ucred cred;
			socklen_t clen = sizeof(cred);
			key[0] = AF_UNIX;
			if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
				memcpy(key + 1, &cred.uid, sizeof(cred.uid));
				snprintf(peer, sizeof(peer), "unix:uid=%u", (unsigned)cred.uid);
			}
		}
		const struct pst_limits *lim = &s->conf->limits;
		if (lim->per_source && pst_srctab_get(&s->sources, key) >= lim->per_source) {
			refuse(s, REFUSE_PER_SOURCE, peer);
			close(fd);
			continue;
		}
		if (!pst_bucket_take(&s->bucket, pst_now_ns())) {
			refuse(s, REFUSE_RATE, peer);
			close(fd);
			continue;
		}
		if (pst_log_debug) {
			struct pst_logline l;
			pst_ll_begin(&l, "debug", "accept");
			pst_ll_str(&l, "sandbox", s->conf->name);
			pst_ll_str(&l, "listener", ls->addr.text);
			pst_ll_str(&l, "peer", peer);
			pst_ll_end(&l);
		}
		spawn(d, s, fd, -1, ss.ss_family == AF_UNIX ? "" : peer, key);
	}
}

/* ---- channels (pipe / fdpass triggers) --------------------------------- */

/*
 * Channels. Every handler of a sandbox that sends on a channel gets an end
 * of its own (a pipe for a pipe channel, a SOCK_SEQPACKET pair for an
 * fdpass one), made when it is spawned or set up: what one sender writes
 * is a message of its own, never the tail of another sender's unterminated
 * line, and no sender can shut the channel down for the others. The
 * broker's ends are the channel's endpoints; one goes when its sender and
 * everything that inherited its end are gone (EOF), dropping an
 * unterminated line. While the consumer is at its handlers cap no endpoint
 * is read: the senders' pipes and socket buffers fill and block them.
 */
static void endpoint_read(struct endpoint *e);
static void on_endpoint_readable(uv_poll_t *p, int status, int events);

static void endpoint_poll(struct endpoint *e, bool on)
{
	if (on && !e->polling && uv_poll_start(&e->poll, UV_READABLE, on_endpoint_readable) == 0)
		e->polling = true;
	else if (!on && e->polling) {
		uv_poll_stop(&e->poll);
		e->polling = false;
	}
}

static void channel_start(struct channel *c)
{
	if (c->polling || c->d->stopping)
		return;
	c->polling = true;
	for (struct endpoint *e = c->endpoints, *next; e; e = next) {
		next = e->next;
		endpoint_poll(e, true);
		/* lines read before the consumer hit its cap raise no new event */
		if (c->kind == PST_TRIGGER_PIPE && c->consumer && e->lines.len > e->lines.off)
			endpoint_read(e);
	}
}

static void channel_stop(struct channel *c)
{
	c->polling = false;
	for (struct endpoint *e = c->endpoints; e; e = e->next)
		endpoint_poll(e, false);
}

static void on_endpoint_closed(uv_handle_t *h)
{
	struct endpoint *e = h->data;
	struct daemon *d = e->d;
	close(e->fd);
	if (d->n_spare_ep >= ENDPOINT_SPARE_MAX) {
		free(e);
		return;
	}
	e->next = d->spare_ep;
	d->spare_ep = e;
	d->n_spare_ep++;
}

static void endpoint_close(struct endpoint *e)
{
	if (e->c) {
		*e->pprev = e->next;
		if (e->next)
			e->next->pprev = e->pprev;
		e->c->n_endpoints--;
		e->c = NULL;
	}
	endpoint_poll(e, false);
	uv_close((uv_handle_t *)&e->poll, on_endpoint_closed);
}

/* A new endpoint of c reading fd (nonblocking; closed with it). */
static int endpoint_open(struct channel *c, int fd)
{
	struct daemon *d = c->d;
	struct endpoint *e = d->spare_ep;
	if (e) {
		d->spare_ep = e->next;
		d->n_spare_ep--;
	} else if (!(e = malloc(sizeof(*e)))) {
		return -ENOMEM;
	}
	memset(e, 0, offsetof(struct endpoint, lines));
	pst_lines_reset(&e->lines);
	e->d = d;
	e->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int r = uv_poll_init(d->loop, &e->poll, fd);
	if (r < 0) {
		e->next = d->spare_ep;
		d->spare_ep = e;
		d->n_spare_ep++;
		return r;
	}
	e->poll.data = e;
	e->c = c;
	e->next = c->endpoints;
	if (e->next)
		e->next->pprev = &e->next;
	e->pprev = &c->endpoints;
	c->endpoints = e;
	c->n_endpoints++;
	if (c->polling)
		endpoint_poll(e, true);
	return 0;
}

/* A handler's own ends of its sandbox's send channels at their fd numbers,
 * then the startup sockets, into h->fds; the broker's ends become
 * endpoints. The handler's ends are the broker's to close once the handler
 * has them (sender_fds_close()). 0 or a negative errno (logged; nothing
 * left open). */
static int sender_fds(struct sbx *s, struct handler *h)
{
	h->n_fds = h->n_send_w = 0;
	for (size_t i = 0; i < s->n_send; i++) {
		struct channel *c = s->send_ch[i];
		int p[2], r = 0;
		if (c->kind == PST_TRIGGER_PIPE)
			r = pipe2(p, O_CLOEXEC);
		else if ((r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p)) == 0) {
			shutdown(p[0], SHUT_WR);
			shutdown(p[1], SHUT_RD);
		}
		r = r < 0 ? -errno : endpoint_open(c, p[0]);
		if (r < 0) {
			log_errno_throttled(&s->log.channel, "channel", s->conf->name, c->name, -r);
			if (r != -EMFILE && r != -ENFILE)
				close_pair(p);
			sender_fds_close(h);
			return r;
		}
		h->send_w[h->n_send_w++] = p[1];
		h->fds[h->n_fds].fd = p[1];
		h->fds[h->n_fds++].target = s->send_target[i];
	}
	for (size_t j = 0; j < s->n_socket_fds; j++)
		h->fds[h->n_fds++] = s->socket_fds[j];
	return 0;
}

static void sender_fds_close(struct handler *h)
{
	for (size_t i = 0; i < h->n_send_w; i++)
		close(h->send_w[i]);
	h->n_send_w = 0;
}

static void channel_drop(struct channel *c, const char *reason)
{
	c->dropped++;
	struct pst_logline l;
	uint64_t sup;
	if (!ll_begin_throttled(&l, &c->log_drop, "warn", "channel_drop", &sup))
		return;
	pst_ll_str(&l, "channel", c->name);
	pst_ll_str(&l, "reason", reason);
	ll_end_throttled(&l, sup);
}

static void channel_message(struct channel *c, const char *msg, size_t n)
{
	struct sbx *s = c->consumer;
	int pfd[2];

	c->messages++;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		log_errno_throttled(&s->log.channel, "channel", s->conf->name, "pipe", errno);
		return;
	}
	/* the message and its newline fit the pipe buffer: never blocks */
	struct iovec iov[2] = { { (void *)msg, n }, { "\n", 1 } };
	ssize_t w = writev(pfd[1], iov, 2);
	close(pfd[1]);
	if (w != (ssize_t)n + 1) {
		log_errno_throttled(&s->log.channel, "channel", s->conf->name, "write message",
				    w < 0 ? errno : EIO);
		close(pfd[0]);
		return;
	}
	spawn(c->d, s, -1, pfd[0], NULL, NULL);
}

/* Whether the consumer can take another request now; if not, the channel
 * stops being read. */
static bool channel_room(struct channel *c)
{
	if (c->consumer && !sbx_at_capacity(c->consumer))
		return true;
	channel_stop(c);
	return false;
}

/* One sender's pipe: each line is a message (wire.c frames them). */
static void endpoint_read_pipe(struct endpoint *e)
{
	struct channel *c = e->c;
	struct sbx *s = c->consumer;
	for (int budget = 0; budget < ACCEPT_BATCH; budget++) {
		if (!channel_room(c))
			return;
		const char *msg;
		size_t n, room;
		int ev = pst_lines_next(&e->lines, &msg, &n);
		if (ev == PST_LINES_MSG) {
			if (!pst_bucket_take(&s->bucket, pst_now_ns()))
				refuse(s, REFUSE_RATE, c->name);
			else
				channel_message(c, msg, n);
			continue;
		}
		if (ev == PST_LINES_TOOLONG)
			channel_drop(c, "message longer than PIPE_BUF");
		char *tail = pst_lines_tail(&e->lines, &room);
		ssize_t r = read(e->fd, tail, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return;	/* EAGAIN */
		if (r == 0) {
			/* the sender and all its copies are gone */
			if (pst_lines_partial(&e->lines))
				channel_drop(c, "unterminated message when its sender closed the channel");
			endpoint_close(e);
			return;
		}
		pst_lines_added(&e->lines, (size_t)r);
	}
}

/* One sender's socket: each message carries one fd. */
static void endpoint_read_fdpass(struct endpoint *e)
{
	struct channel *c = e->c;
	struct sbx *s = c->consumer;
	for (int budget = 0; budget < ACCEPT_BATCH; budget++) {
		if (!channel_room(c))
			return;
		char data[64];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * 8)];
		} cm;
		struct iovec iov = { data, sizeof(data) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
				     .msg_controllen = sizeof(cm.buf) };
		ssize_t r = recvmsg(e->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return;
		int fds[8];
		int nfds = pst_fdpass_fds(&mh, fds, 8);
		if (r == 0 && !nfds) {
			/* an empty message, or the end: the sender is gone */
			struct pollfd pf = { .fd = e->fd, .events = POLLIN | POLLRDHUP };
			if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLRDHUP))) {
				endpoint_close(e);
				return;
			}
		}
		c->messages++;
		if (pst_fdpass_check(&mh, nfds) < 0) {
			/* one fd per message: anything else is a sender's bug */
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			channel_drop(c, "expected exactly one fd per message");
			continue;
		}
		if (!pst_bucket_take(&s->bucket, pst_now_ns())) {
			refuse(s, REFUSE_RATE, c->name);
			close(fds[0]);
			continue;
		}
		/* the peer of a passed socket, when it is an inet one */
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		char peer[INET6_ADDRSTRLEN + 16] = "";
		if (getpeername(fds[0], (struct sockaddr *)&ss, &slen) == 0 &&
		    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
			char a[INET6_ADDRSTRLEN];
			int port;
			format_peer(&ss, a, sizeof(a), &port);
			snprintf(peer, sizeof(peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", a,
				 port);
		}
		int fl = fcntl(fds[0], F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK))
			fcntl(fds[0], F_SETFL, fl & ~O_NONBLOCK);
		spawn(c->d, s, fds[0], -1, peer, NULL);
	}
}

static void endpoint_read(struct endpoint *e)
{
	if (!e->c)
		return;
	if (e->c->kind == PST_TRIGGER_PIPE)
		endpoint_read_pipe(e);
	else
		endpoint_read_fdpass(e);
}

static void on_endpoint_readable(uv_poll_t *p, int status, int events)
{
	struct endpoint *e = p->data;
	(void)events;
	if (status < 0) {
		endpoint_close(e);
		return;
	}
	endpoint_read(e);
}

static struct channel *channel_find(struct daemon *d, const char *name)
{
	for (struct channel *c = d->channels; c; c = c->next)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static int channel_open(struct daemon *d, const char *name, enum pst_trigger kind,
			struct channel **out)
{
	struct channel *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->kind = kind;
	c->d = d;
	*out = c;
	return 0;
}

/* Its endpoints go (their senders get EPIPE from then on), then it. */
static void channel_close(struct channel *c)
{
	while (c->endpoints)
		endpoint_close(c->endpoints);
	free(c);
}

/* ---- startup sandboxes --------------------------------------------------- */

static void start_startup(struct daemon *d, struct sbx *s)
{
	s->restart_at_ns = 0;
	if (d->stopping || s->active)
		return;
	if (spawn(d, s, -1, -1, NULL, NULL) < 0)
		schedule_restart(d, s, true, 0);
}

static void schedule_restart(struct daemon *d, struct sbx *s, bool failed, uint64_t ran_ns)
{
	enum pst_restart r = s->conf->restart;
	if (d->stopping || s->gen != d->cur || r == PST_RESTART_NO ||
	    (r == PST_RESTART_ON_FAILURE && !failed))
		return;
	/* back off while it keeps failing quickly: 100ms doubling to 30s */
	if (ran_ns > 10000000000ull || !s->restart_backoff_ms)
		s->restart_backoff_ms = 100;
	else if (s->restart_backoff_ms < 30000)
		s->restart_backoff_ms *= 2;
	s->restart_at_ns = pst_now_ns() + s->restart_backoff_ms * 1000000ull;
	char ms[32];
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)s->restart_backoff_ms);
	pst_log("info", "restart_scheduled", "sandbox", s->conf->name, "in_ms", ms, NULL);
}

static void on_tick(uv_timer_t *t)
{
	struct daemon *d = t->data;
	uint64_t now = pst_now_ns();

	/* handler cgroups that were still busy at their reap */
	sandbox_cg_collect();
	if (d->paused_emfile && now >= d->emfile_resume_ns) {
		d->paused_emfile = false;
		for (struct listener *ls = d->listeners; ls; ls = ls->next)
			if (ls->sbx && !sbx_at_capacity(ls->sbx))
				listener_start(ls);
	}
	if (d->cur && !d->stopping)
		for (size_t i = 0; i < d->cur->n_sbx; i++) {
			struct sbx *s = &d->cur->sbx[i];
			if (s->restart_at_ns && now >= s->restart_at_ns)
				start_startup(d, s);
			prewarm_refill(d, s, "tick");
		}
}

/* ---- building and switching generations --------------------------------- */

/* Build a generation for policy p: sandbox plans, sockets and channels (new
 * ones created but not yet attached). On failure nothing of it remains. */
/* The fds the broker may hold for policy p with every sandbox at its caps:
 * per handler its pidfd, its stderr pipe and its ends of its send channels,
 * 2 more for a pre-warmed one; per sandbox its network namespace, its root
 * template, listeners and startup sockets; the control clients and a
 * reserve. One sandbox full of idle clients then cannot starve the others
 * of fds (EMFILE): what does not fit RLIMIT_NOFILE is refused at load. */
static uint64_t fd_budget(const struct pst_policy *p)
{
	uint64_t n = FD_RESERVE + CONTROL_CLIENTS_MAX;
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		uint64_t per = 2 + sc->n_send;
		n += (uint64_t)sc->limits.handlers * per + (uint64_t)sc->prewarm * (per + 2) + 2 +
		     sc->n_listen + sc->n_sockets;
	}
	return n;
}

static int gen_build(struct daemon *d, struct pst_policy *p, struct gen **out)
{
	char why[600];
	int r = -ENOMEM;
	struct rlimit rl;
	uint64_t need = fd_budget(p);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
		snprintf(why, sizeof(why),
			 "the sandboxes' caps (limits.handlers, prewarm) need up to %llu file descriptors "
			 "in the broker (2 per handler, 1 per send channel, 2 more per pre-warmed one, %d "
			 "reserved), but RLIMIT_NOFILE is %llu: raise it (LimitNOFILE= in the unit, "
			 "ulimit -n) or lower limits.handlers",
			 (unsigned long long)need, FD_RESERVE + CONTROL_CLIENTS_MAX,
			 (unsigned long long)rl.rlim_cur);
		pst_log("error", "load", "what", "file descriptors", "error", why, NULL);
		return -EMFILE;
	}
	struct gen *g = calloc(1, sizeof(*g));

	if (!g || !(g->sbx = calloc(p->n_sandboxes, sizeof(*g->sbx)))) {
		free(g);
		pst_log("error", "load", "what", "allocate", "error", strerror(ENOMEM), NULL);
		return -ENOMEM;
	}
	g->policy = p;
	g->n_sbx = p->n_sandboxes;
	g->refs = 1;
	uint64_t now = pst_now_ns();
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		struct sbx *s = &g->sbx[i];
		s->gen = g;
		s->conf = &p->sandboxes[i];
		s->netns_fd = -1;
		pst_bucket_init(&s->bucket, s->conf->limits.rate, now);
		why[0] = 0;
		r = prepare_sandbox(p, s->conf, &s->sb, why, sizeof(why));
		if (r < 0) {
			pst_log("error", "load", "sandbox", s->conf->name, "error", why, NULL);
			goto fail;
		}
	}
	*out = g;
	return 0;
fail:
	g->policy = NULL;	/* the caller owns p on failure */
	gen_free(g);
	return r;
}

/* Sockets (listeners and startup sockets) of a policy: reuse the open ones by
 * address, open the rest. New ones are marked !keep and linked at the head;
 * on failure they are closed again and -errno returned. */
/* A startup sandbox's `sockets` listener is handed to its handler: marked,
 * so that the table refuses any connection it would make once shut down
 * (netpolicy.h). Listeners of listen triggers are never handed over. */
static int mark_handed_listener(int fd, const struct pst_sandbox *sc, const struct pst_sockaddr *a)
{
	struct netpolicy_error me = { 0 };
	if (sc->trigger == PST_TRIGGER_LISTEN || (a->ss.ss_family != AF_INET && a->ss.ss_family != AF_INET6))
		return 0;
	int r = netpolicy_mark_socket(fd, true, &me);
	if (r < 0)
		pst_log("error", "listen", "sandbox", sc->name, "address", a->text, "error", me.msg, NULL);
	return r;
}

static int sockets_open(struct daemon *d, struct gen *g)
{
	char why[256];
	for (struct listener *ls = d->listeners; ls; ls = ls->next)
		ls->keep = false;
	for (size_t i = 0; i < g->n_sbx; i++) {
		const struct pst_sandbox *sc = g->sbx[i].conf;
		const struct pst_sockaddr *addrs = sc->trigger == PST_TRIGGER_LISTEN ? sc->listen : sc->sockets;
		size_t n = sc->trigger == PST_TRIGGER_LISTEN ? sc->n_listen : sc->n_sockets;
		for (size_t j = 0; j < n; j++) {
			struct listener *ls = find_listener(d, addrs[j].text);
			if (ls) {
				ls->keep = true;
				int mr = mark_handed_listener(ls->fd, sc, &addrs[j]);
				if (mr < 0)
					return mr;
				continue;
			}
			ls = calloc(1, sizeof(*ls));
			if (!ls)
				return -ENOMEM;
			why[0] = 0;
			ls->fd = open_socket(d, &addrs[j], g->policy->broker.reuse_port, why, sizeof(why));
			if (ls->fd < 0) {
				int e = ls->fd;
				pst_log("error", "listen", "sandbox", sc->name, "address", addrs[j].text,
					"error", why, NULL);
				free(ls);
				return e;
			}
			int mr = mark_handed_listener(ls->fd, sc, &addrs[j]);
			if (mr < 0) {
				close(ls->fd);
				free(ls);
				return mr;
			}
			ls->d = d;
			ls->addr = addrs[j];
			ls->keep = true;
			ls->passive = sc->trigger != PST_TRIGGER_LISTEN;
			uv_poll_init(d->loop, &ls->poll, ls->fd);
			ls->poll.data = ls;
			ls->next = d->listeners;
			d->listeners = ls;
			ls->sbx = NULL;	/* attached by gen_attach */
		}
	}
	return 0;
}

/* Close sockets not wanted by the policy now in force (after a switch), or
 * the new ones after a failed reload (those with sbx == NULL). */
static void sockets_prune(struct daemon *d, bool failed)
{
	struct listener **pp = &d->listeners;
	while (*pp) {
		struct listener *ls = *pp;
		bool drop = failed ? ls->sbx == NULL : !ls->keep;
		if (drop) {
			*pp = ls->next;
			listener_close(ls);
		} else {
			pp = &ls->next;
		}
	}
}

static int channels_open(struct daemon *d, struct gen *g)
{
	for (struct channel *c = d->channels; c; c = c->next)
		c->keep = false;
	for (size_t i = 0; i < g->n_sbx; i++) {
		const struct pst_sandbox *sc = g->sbx[i].conf;
		if (sc->trigger != PST_TRIGGER_PIPE && sc->trigger != PST_TRIGGER_FDPASS)
			continue;
		struct channel *c = channel_find(d, sc->channel);
		if (c && c->kind == sc->trigger) {
			c->keep = true;
			continue;
		}
		if (c)	/* same name, other kind: replaced at the switch */
			c->name[0] = 0;
		int r = channel_open(d, sc->channel, sc->trigger, &c);
		if (r < 0) {
			log_errno("channel", sc->name, sc->channel, -r);
			return r;
		}
		c->keep = true;
		c->next = d->channels;
		d->channels = c;
	}
	return 0;
}

static void channels_prune(struct daemon *d, bool failed)
{
	struct channel **pp = &d->channels;
	while (*pp) {
		struct channel *c = *pp;
		bool drop = failed ? c->consumer == NULL : !c->keep;
		if (drop) {
			*pp = c->next;
			channel_close(c);
		} else {
			pp = &c->next;
		}
	}
}

/* Wire the generation to sockets, channels and netns; fill send fds/env. */
static void gen_attach(struct daemon *d, struct gen *g)
{
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		const struct pst_sandbox *sc = s->conf;
		s->netns_fd = d->np ? netpolicy_netns_fd(d->np, sc->name) : -1;
		if (s->netns_fd < 0)
			s->netns_fd = -1;
		s->consumes = NULL;
		if (sc->trigger == PST_TRIGGER_PIPE || sc->trigger == PST_TRIGGER_FDPASS) {
			s->consumes = channel_find(d, sc->channel);
			if (s->consumes)
				s->consumes->consumer = s;
		}
		size_t k = 0;
		/* fd 3.. are the startup sockets, or the client socket in listen_fds
		 * mode; send channels follow */
		int base = 3 + (int)sc->n_sockets +
			   (sc->socket == PST_SOCKET_LISTEN_FDS && sc->trigger != PST_TRIGGER_STARTUP);
		s->n_send = 0;
		for (size_t j = 0; j < sc->n_send && j < MAX_SEND; j++) {
			struct channel *c = channel_find(d, sc->send[j]);
			if (!c)
				continue;
			int target = base + (int)k;
			s->send_ch[k] = c;
			s->send_target[k] = target;
			char *e = s->send_env[k];
			int n = snprintf(e, sizeof(s->send_env[k]), "POSTERN_SEND_%s=%d", sc->send[j], target);
			for (int x = 13; x < n && e[x] != '='; x++)
				e[x] = e[x] == '-' ? '_' : (char)(e[x] >= 'a' && e[x] <= 'z' ? e[x] - 32 : e[x]);
			s->send_envp[k] = e;
			k++;
		}
		s->n_send = k;
		s->send_envp[k] = NULL;
		s->n_socket_fds = 0;
		for (size_t j = 0; j < sc->n_sockets && j < MAX_SOCKETS; j++) {
			struct listener *ls = find_listener(d, sc->sockets[j].text);
			if (!ls)
				continue;
			ls->sbx = s;
			s->socket_fds[s->n_socket_fds].fd = ls->fd;
			s->socket_fds[s->n_socket_fds++].target = 3 + (int)j;
		}
		for (size_t j = 0; j < sc->n_listen; j++) {
			struct listener *ls = find_listener(d, sc->listen[j].text);
			if (ls)
				ls->sbx = s;
		}
	}
}

/* Running handlers follow their sandbox's name into the new generation. */
static void handlers_move(struct daemon *d, struct gen *ng)
{
	for (struct handler *h = d->handlers; h; h = h->next) {
		struct sbx *os = h->sbx, *ns = gen_find(ng, os->conf->name);
		if (!ns || os->gen == ng || h->warm)
			continue;
		os->active--;
		ns->active++;
		if (h->has_src) {
			pst_srctab_dec(&os->sources, h->src);
			pst_srctab_inc(&ns->sources, h->src);
		}
		h->sbx = ns;
		ns->gen->refs++;
		gen_unref(os->gen);
	}
}

static void gen_activate(struct daemon *d, struct gen *g, struct gen *old)
{
	/* carry statistics over for sandboxes that stay */
	if (old)
		for (size_t i = 0; i < g->n_sbx; i++) {
			struct sbx *s = &g->sbx[i], *o = gen_find(old, s->conf->name);
			if (!o)
				continue;
			s->started = o->started;
			s->exit_ok = o->exit_ok;
			s->exit_failed = o->exit_failed;
			s->exit_signaled = o->exit_signaled;
			s->exit_timeout = o->exit_timeout;
			memcpy(s->refused, o->refused, sizeof(s->refused));
			s->lat = o->lat;
			memcpy(s->phase_sum_ns, o->phase_sum_ns, sizeof(s->phase_sum_ns));
			s->phase_n = o->phase_n;
			s->warm_used = o->warm_used;
			s->warm_failed = o->warm_failed;
			s->cg = o->cg;
			s->log = o->log;
		}
	d->cur = g;
	if (old) {
		/* pre-warmed handlers were set up by the old policy: discard */
		for (struct handler *h = d->handlers; h; h = h->next)
			if (h->warm && !h->discarded && h->sbx->gen == old)
				warm_discard(h);
		handlers_move(d, g);
		gen_unref(old);
	}
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		if (s->conf->trigger == PST_TRIGGER_STARTUP) {
			if (!s->active)
				start_startup(d, s);
		} else {
			prewarm_refill(d, s, "load");
			if (!sbx_at_capacity(s))
				sbx_set_polling(d, s, true);
		}
	}
}

/* ---- control socket ----------------------------------------------------- */

static char *status_json(struct daemon *d)
{
	cJSON *root = cJSON_CreateObject();
	uint64_t now = pst_now_ns();
	struct gen *g = d->cur;

	cJSON_AddNumberToObject(root, "postern", 1);
	cJSON_AddNumberToObject(root, "pid", getpid());
	cJSON_AddStringToObject(root, "policy", d->policy_path);
	cJSON_AddNumberToObject(root, "uptime_s", (double)((now - d->started_ns) / 1000000000ull));
	cJSON_AddBoolToObject(root, "stopping", d->stopping);
	size_t serving = 0;	/* pre-warmed ones wait; they are counted per sandbox */
	for (struct handler *h = d->handlers; h; h = h->next)
		serving += !h->warm;
	cJSON_AddNumberToObject(root, "handlers", (double)serving);
	cJSON_AddNumberToObject(root, "reloads", (double)d->reloads);
	cJSON_AddNumberToObject(root, "reload_failures", (double)d->reload_failures);
	cJSON_AddNumberToObject(root, "log_dropped", (double)pst_log_dropped());
	cJSON *arr = cJSON_AddArrayToObject(root, "sandboxes");
	for (size_t i = 0; g && i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		const struct pst_sandbox *sc = s->conf;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "name", sc->name);
		static const char *const trig[] = { "", "listen", "pipe", "fdpass", "startup" };
		cJSON_AddStringToObject(o, "trigger", trig[sc->trigger]);
		cJSON *li = cJSON_AddArrayToObject(o, "listen");
		for (size_t j = 0; j < sc->n_listen; j++)
			cJSON_AddItemToArray(li, cJSON_CreateString(sc->listen[j].text));
		if (sc->channel)
			cJSON_AddStringToObject(o, "channel", sc->channel);
		cJSON_AddNumberToObject(o, "active", s->active);
		cJSON_AddNumberToObject(o, "limit", sc->limits.handlers);
		cJSON_AddNumberToObject(o, "started", (double)s->started);
		cJSON *ref = cJSON_AddObjectToObject(o, "refused");
		for (int r = 0; r < REFUSE__N; r++)
			cJSON_AddNumberToObject(ref, refusal_names[r], (double)s->refused[r]);
		cJSON *lat = cJSON_AddObjectToObject(o, "spawn_us");
		cJSON_AddNumberToObject(lat, "p50", pst_latring_pct(&s->lat, 50));
		cJSON_AddNumberToObject(lat, "p99", pst_latring_pct(&s->lat, 99));
		cJSON_AddNumberToObject(lat, "samples", (double)s->lat.n);
		/* where a fresh spawn's time goes, mean per phase */
		cJSON *ph = cJSON_AddObjectToObject(o, "spawn_phases_us");
		for (int k = 0; k < SANDBOX_PHASE_COUNT; k++)
			cJSON_AddNumberToObject(ph, sandbox_phase_names[k],
						s->phase_n ? (double)(s->phase_sum_ns[k] / s->phase_n / 1000) : 0);
		cJSON_AddNumberToObject(ph, "samples", (double)s->phase_n);
		cJSON *pw = cJSON_AddObjectToObject(o, "prewarm");
		cJSON_AddNumberToObject(pw, "target", sc->prewarm);
		cJSON_AddNumberToObject(pw, "ready", s->n_ready);
		cJSON_AddNumberToObject(pw, "starting", s->n_warm - s->n_ready);
		cJSON_AddNumberToObject(pw, "used", (double)s->warm_used);
		cJSON_AddNumberToObject(pw, "failed", (double)s->warm_failed);
		cJSON *pp = cJSON_AddArrayToObject(pw, "pids");
		unsigned execd = 0;
		for (struct handler *h = d->handlers; h; h = h->next)
			if (h->sbx == s && h->warm && !h->discarded) {
				cJSON_AddItemToArray(pp, cJSON_CreateNumber(h->h.pid));
				execd += h->ready && h->h.preloaded;
			}
		cJSON_AddNumberToObject(pw, "execd", execd);
		cJSON *ex = cJSON_AddObjectToObject(o, "exits");
		cJSON_AddNumberToObject(ex, "ok", (double)s->exit_ok);
		cJSON_AddNumberToObject(ex, "failed", (double)s->exit_failed);
		cJSON_AddNumberToObject(ex, "signaled", (double)s->exit_signaled);
		cJSON_AddNumberToObject(ex, "timeout", (double)s->exit_timeout);
		if (d->np && sc->n_egress) {
			struct netpolicy_counters nc = { 0 };
			struct netpolicy_error ne = { 0 };
			cJSON *eg = cJSON_AddObjectToObject(o, "egress");
			if (netpolicy_counters(d->np, sc->name, &nc, &ne) == 0) {
				cJSON_AddNumberToObject(eg, "denied_packets", (double)nc.denied_packets);
				cJSON_AddNumberToObject(eg, "accepted_new", (double)nc.accepted_new);
			} else {
				cJSON_AddStringToObject(eg, "error", ne.msg);
			}
		}
		if (s->consumes) {
			cJSON *ch = cJSON_AddObjectToObject(o, "channel_stats");
			cJSON_AddNumberToObject(ch, "messages", (double)s->consumes->messages);
			cJSON_AddNumberToObject(ch, "dropped", (double)s->consumes->dropped);
			cJSON_AddNumberToObject(ch, "senders", s->consumes->n_endpoints);
		}
		/* figures from the handlers' cgroups: the exited ones' and,
		 * read now, the running ones' */
		uint64_t mem = 0, cpu = s->cg.cpu_usec, oom = s->cg.oom_kills, peak = s->cg.mem_peak;
		cJSON *hs = cJSON_AddArrayToObject(o, "handlers");
		for (struct handler *h = d->handlers; h; h = h->next) {
			if (h->sbx != s || h->warm)
				continue;
			cJSON *ho = cJSON_CreateObject();
			cJSON_AddItemToArray(hs, ho);
			cJSON_AddNumberToObject(ho, "pid", h->h.pid);
			cJSON_AddStringToObject(ho, "peer", h->peer);
			cJSON_AddNumberToObject(ho, "age_ms", (double)((now - h->start_ns) / 1000000ull));
			struct sandbox_cg_stats cs;
			if (sandbox_cg_stats(&h->h, &cs) < 0)
				continue;
			if (cs.has & SANDBOX_CG_HAS_MEMORY)
				cJSON_AddNumberToObject(ho, "memory_bytes", (double)cs.mem_current);
			if (cs.has & SANDBOX_CG_HAS_PEAK)
				cJSON_AddNumberToObject(ho, "memory_peak_bytes", (double)cs.mem_peak);
			if (cs.has & SANDBOX_CG_HAS_CPU)
				cJSON_AddNumberToObject(ho, "cpu_us", (double)cs.cpu_usec);
			if (cs.has & SANDBOX_CG_HAS_PIDS)
				cJSON_AddNumberToObject(ho, "pids", cs.pids);
			if (cs.has & SANDBOX_CG_HAS_OOM)
				cJSON_AddNumberToObject(ho, "oom_kills", cs.oom_kills);
			mem += cs.mem_current;
			cpu += cs.cpu_usec;
			oom += cs.oom_kills;
			if (cs.mem_peak > peak)
				peak = cs.mem_peak;
		}
		cJSON *cgo = cJSON_AddObjectToObject(o, "cgroup");
		cJSON_AddNumberToObject(cgo, "memory_bytes", (double)mem);
		cJSON_AddNumberToObject(cgo, "memory_peak_bytes", (double)peak);
		cJSON_AddNumberToObject(cgo, "cpu_us", (double)cpu);
		cJSON_AddNumberToObject(cgo, "oom_kills", (double)oom);
		cJSON_AddNumberToObject(cgo, "oom_killed_handlers", (double)s->cg.oom_handlers);
	}
	static const char *const cg_modes[] = { "none", "v1", "v2" };
	cJSON *cgi = cJSON_AddObjectToObject(root, "cgroup");
	cJSON_AddStringToObject(cgi, "mode", cg_modes[d->cg.mode]);
	cJSON_AddStringToObject(cgi, "base", d->cg.base);
	cJSON_AddStringToObject(cgi, "leaf", d->cg.leaf);
	cJSON_AddStringToObject(cgi, "controllers", d->cg.controllers);
	cJSON_AddBoolToObject(cgi, "kill", d->cg.kill);
	char *out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

/* ---- metrics (broker.metrics): Prometheus text format over HTTP --------- */

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static char *metrics_text(struct daemon *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	struct gen *g = d->cur;
	uint64_t now = pst_now_ns();
	size_t serving = 0;
	for (struct handler *h = d->handlers; h; h = h->next)
		serving += !h->warm;
	metric_head(f, "postern_uptime_seconds", "gauge", "Seconds since the broker started.");
	fprintf(f, "postern_uptime_seconds %llu\n", (unsigned long long)((now - d->started_ns) / 1000000000ull));
	metric_head(f, "postern_reloads_total", "counter", "Policy reloads that took effect.");
	fprintf(f, "postern_reloads_total %llu\n", (unsigned long long)d->reloads);
	metric_head(f, "postern_reload_failures_total", "counter", "Policy reloads refused or failed.");
	fprintf(f, "postern_reload_failures_total %llu\n", (unsigned long long)d->reload_failures);
	metric_head(f, "postern_handlers", "gauge", "Handlers serving a request, all sandboxes.");
	fprintf(f, "postern_handlers %zu\n", serving);
	metric_head(f, "postern_log_dropped_lines_total", "counter",
		    "Log lines dropped because the log sink was too slow.");
	fprintf(f, "postern_log_dropped_lines_total %llu\n", (unsigned long long)pst_log_dropped());

	static const struct {
		const char *name, *type, *help;
	} per[] = {
		{ "postern_sandbox_active", "gauge", "Handlers of the sandbox serving a request." },
		{ "postern_sandbox_limit", "gauge", "limits.handlers of the sandbox." },
		{ "postern_sandbox_started_total", "counter", "Handlers started (spawned or pre-warmed and released)." },
		{ "postern_sandbox_refused_total", "counter", "Requests refused, by reason." },
		{ "postern_sandbox_exits_total", "counter", "Handler exits, by result." },
		{ "postern_sandbox_spawn_seconds", "gauge", "Spawn latency over the last 1024 spawns, by quantile." },
		{ "postern_sandbox_spawn_phase_seconds", "gauge", "Mean time of each phase of a fresh spawn." },
		{ "postern_sandbox_prewarm_ready", "gauge", "Pre-warmed handlers ready." },
		{ "postern_sandbox_prewarm_used_total", "counter", "Requests taken by pre-warmed handlers." },
		{ "postern_sandbox_prewarm_failed_total", "counter", "Pre-warmed handlers whose set-up failed or that died waiting." },
		{ "postern_sandbox_egress_denied_packets_total", "counter", "Packets the sandbox's egress rules rejected." },
		{ "postern_sandbox_cpu_seconds_total", "counter", "CPU time of the sandbox's handlers (their cgroups), exited and running." },
		{ "postern_sandbox_memory_bytes", "gauge", "Memory its running handlers use now (their cgroups)." },
		{ "postern_sandbox_oom_kills_total", "counter", "Processes of its handlers the OOM killer killed (memory limit)." },
	};
	enum { ACTIVE, LIMIT, STARTED, REFUSED, EXITS, SPAWN, PHASE, PW_READY, PW_USED, PW_FAILED, DENIED,
	       CG_CPU, CG_MEM, CG_OOM, NPER };
	/* the running handlers' cgroup figures, per sandbox */
	struct sandbox_cg_stats *live = g ? calloc(g->n_sbx ? g->n_sbx : 1, sizeof(*live)) : NULL;
	for (size_t i = 0; live && i < g->n_sbx; i++)
		for (struct handler *h = d->handlers; h; h = h->next) {
			struct sandbox_cg_stats cs;
			if (h->sbx != &g->sbx[i] || h->warm || sandbox_cg_stats(&h->h, &cs) < 0)
				continue;
			live[i].cpu_usec += cs.cpu_usec;
			live[i].mem_current += cs.mem_current;
			live[i].oom_kills += cs.oom_kills;
		}
	for (int k = 0; k < NPER; k++) {
		metric_head(f, per[k].name, per[k].type, per[k].help);
		for (size_t i = 0; g && i < g->n_sbx; i++) {
			struct sbx *s = &g->sbx[i];
			const char *n = s->conf->name;
			switch (k) {
			case ACTIVE:
				fprintf(f, "%s{sandbox=\"%s\"} %u\n", per[k].name, n, s->active);
				break;
			case LIMIT:
				fprintf(f, "%s{sandbox=\"%s\"} %u\n", per[k].name, n, s->conf->limits.handlers);
				break;
			case STARTED:
				fprintf(f, "%s{sandbox=\"%s\"} %llu\n", per[k].name, n, (unsigned long long)s->started);
				break;
			case REFUSED:
				for (int r = 0; r < REFUSE__N; r++)
					fprintf(f, "%s{sandbox=\"%s\",reason=\"%s\"} %llu\n", per[k].name, n,
						refusal_names[r], (unsigned long long)s->refused[r]);
				break;
			case EXITS: {
				const uint64_t v[] = { s->exit_ok, s->exit_failed, s->exit_signaled, s->exit_timeout };
				static const char *const r[] = { "ok", "failed", "signaled", "timeout" };
				for (int j = 0; j < 4; j++)
					fprintf(f, "%s{sandbox=\"%s\",result=\"%s\"} %llu\n", per[k].name, n, r[j],
						(unsigned long long)v[j]);
				break;
			}
			case SPAWN:
				if (s->lat.n) {
					fprintf(f, "%s{sandbox=\"%s\",quantile=\"0.5\"} %.6f\n", per[k].name, n,
						pst_latring_pct(&s->lat, 50) / 1e6);
					fprintf(f, "%s{sandbox=\"%s\",quantile=\"0.99\"} %.6f\n", per[k].name, n,
						pst_latring_pct(&s->lat, 99) / 1e6);
				}
				break;
			case PHASE:
				for (int j = 0; s->phase_n && j < SANDBOX_PHASE_COUNT; j++)
					fprintf(f, "%s{sandbox=\"%s\",phase=\"%s\"} %.6f\n", per[k].name, n,
						sandbox_phase_names[j], (double)s->phase_sum_ns[j] / (double)s->phase_n / 1e9);
				break;
			case PW_READY:
				fprintf(f, "%s{sandbox=\"%s\"} %u\n", per[k].name, n, s->n_ready);
				break;
			case PW_USED:
				fprintf(f, "%s{sandbox=\"%s\"} %llu\n", per[k].name, n, (unsigned long long)s->warm_used);
				break;
			case PW_FAILED:
				fprintf(f, "%s{sandbox=\"%s\"} %llu\n", per[k].name, n, (unsigned long long)s->warm_failed);
				break;
			case DENIED: {
				struct netpolicy_counters nc = { 0 };
				struct netpolicy_error ne = { 0 };
				if (d->np && s->conf->n_egress && netpolicy_counters(d->np, n, &nc, &ne) == 0)
					fprintf(f, "%s{sandbox=\"%s\"} %llu\n", per[k].name, n,
						(unsigned long long)nc.denied_packets);
				break;
			}
			case CG_CPU:
				fprintf(f, "%s{sandbox=\"%s\"} %.6f\n", per[k].name, n,
					(double)(s->cg.cpu_usec + (live ? live[i].cpu_usec : 0)) / 1e6);
				break;
			case CG_MEM:
				fprintf(f, "%s{sandbox=\"%s\"} %llu\n", per[k].name, n,
					(unsigned long long)(live ? live[i].mem_current : 0));
				break;
			case CG_OOM:
				fprintf(f, "%s{sandbox=\"%s\"} %llu\n", per[k].name, n,
					(unsigned long long)(s->cg.oom_kills + (live ? live[i].oom_kills : 0)));
				break;
			}
		}
	}
	free(live);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- control and metrics clients ---------------------------------------- */

/* A client of the control socket (one line, "status") or of the metrics
 * endpoint (one HTTP request). Either way one answer, then close; a client
 * that sends nothing complete within CONTROL_IDLE_MS is closed. */
static void on_client_closed(uv_handle_t *h)
{
	struct control_client *c = h->data;
	if (--c->handles_open)
		return;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	c->d->control_clients--;
	free(c);
}

static void client_close(struct control_client *c)
{
	if (uv_is_closing(&c->s.handle))
		return;
	uv_close(&c->s.handle, on_client_closed);
	uv_close((uv_handle_t *)&c->idle, on_client_closed);
}

static void on_client_idle(uv_timer_t *t)
{
	client_close(t->data);
}

static void on_control_written(uv_write_t *w, int status)
{
	(void)status;
	struct control_client *c = w->data;
	free(((char **)(w + 1))[0]);
	free(w);
	client_close(c);
}

/* Write len bytes of data (ours to free), then close. */
static void client_answer(struct control_client *c, char *data, size_t len)
{
	uv_write_t *w = malloc(sizeof(*w) + sizeof(char *));
	if (!data || !w) {
		free(data);
		free(w);
		client_close(c);
		return;
	}
	((char **)(w + 1))[0] = data;
	w->data = c;
	uv_buf_t b = uv_buf_init(data, (unsigned)len);
	c->answered = true;
	uv_read_stop(&c->s.stream);
	if (uv_write(w, &c->s.stream, &b, 1, on_control_written) < 0) {
		free(data);
		free(w);
		client_close(c);
	}
}

static void control_answer(struct control_client *c, const char *body)
{
	size_t n = strlen(body);
	char *copy = malloc(n + 1);
	if (copy) {
		memcpy(copy, body, n);
		copy[n] = '\n';
	}
	client_answer(c, copy, n + 1);
}

static void http_answer(struct control_client *c, const char *status, const char *body)
{
	char *out = NULL;
	int n = asprintf(&out,
			 "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 status, strlen(body), body);
	client_answer(c, n < 0 ? NULL : out, n < 0 ? 0 : (size_t)n);
}

static void control_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct control_client *c = h->data;
	(void)hint;
	*buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - 1 - c->len));
}

static void http_request(struct control_client *c)
{
	char path[64];
	int st = pst_http_parse(c->req, c->len, sizeof(c->req), path, sizeof(path));
	if (st == 0)
		return;	/* more to come */
	if (st == 431)
		http_answer(c, "431 Request Header Fields Too Large", "request too long\n");
	else if (st == 400)
		http_answer(c, "400 Bad Request", "bad request\n");
	else if (st == 405)
		http_answer(c, "405 Method Not Allowed", "only GET\n");
	else if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0)
		http_answer(c, "404 Not Found", "try /metrics\n");
	else {
		char *m = metrics_text(c->d);
		http_answer(c, m ? "200 OK" : "500 Internal Server Error", m ? m : "out of memory\n");
		free(m);
	}
}

static void control_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct control_client *c = st->data;
	(void)buf;
	if (c->answered)
		return;
	if (n < 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = 0;
	if (c->http) {
		http_request(c);
		return;
	}
	struct pst_control_req rq;
	int pr = pst_control_parse(c->req, c->len, sizeof(c->req), &rq);
	if (pr == PST_CTL_MORE)
		return;
	if (pr == PST_CTL_TOOLONG) {
		control_answer(c, "{\"error\":\"request too long\"}");
		return;
	}
	if (pr == PST_CTL_OK && !strcmp(rq.verb, "status") && !rq.arg[0]) {
		char *js = status_json(c->d);
		control_answer(c, js ? js : "{\"error\":\"out of memory\"}");
		free(js);
	} else {
		control_answer(c, "{\"error\":\"unknown request; try \\\"status\\\"\"}");
	}
}

static void client_accept(uv_stream_t *server, bool http)
{
	struct daemon *d = server->data;
	struct control_client *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->d = d;
	c->http = http;
	if (http)
		uv_tcp_init(d->loop, &c->s.tcp);
	else
		uv_pipe_init(d->loop, &c->s.pipe, 0);
	uv_timer_init(d->loop, &c->idle);
	c->s.handle.data = c->idle.data = c;
	c->handles_open = 2;
	c->next = d->clients;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &d->clients;
	d->clients = c;
	d->control_clients++;
	if (uv_accept(server, &c->s.stream) < 0 || d->control_clients > CONTROL_CLIENTS_MAX) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->idle, on_client_idle, CONTROL_IDLE_MS, 0);
	uv_read_start(&c->s.stream, control_alloc, control_read);
}

static void on_control_conn(uv_stream_t *server, int status)
{
	if (status == 0)
		client_accept(server, false);
}

static void on_metrics_conn(uv_stream_t *server, int status)
{
	if (status == 0)
		client_accept(server, true);
}

static int metrics_open(struct daemon *d, const struct pst_sockaddr *a)
{
	uv_tcp_init(d->loop, &d->metrics);
	d->metrics.data = d;
	d->metrics_open = true;
	int r = uv_tcp_bind(&d->metrics, (const struct sockaddr *)&a->ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&d->metrics, 16, on_metrics_conn);
	if (r < 0) {
		pst_log("error", "metrics", "what", a->text, "error", uv_strerror(r), NULL);
		return r;
	}
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int control_open(struct daemon *d, const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		int r = mkdir_p(dir, 0755);
		if (r < 0) {
			log_errno("control", NULL, dir, -r);
			return r;
		}
	}
	/* refuse to steal the socket of a running broker */
	char *answer = NULL, why[128];
	if (pst_control_query(path, "status\n", &answer, why, sizeof(why)) == 0) {
		free(answer);
		pst_log("error", "control", "what", path, "error",
			"another broker answers on this control socket", NULL);
		return -EADDRINUSE;
	}
	unlink(path);
	uv_pipe_init(d->loop, &d->control, 0);
	d->control.data = d;
	d->control_open = true;
	mode_t old = umask(0177);	/* the socket is created 0600 */
	int r = uv_pipe_bind(&d->control, path);
	umask(old);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&d->control, 16, on_control_conn);
	if (r < 0) {
		pst_log("error", "control", "what", path, "error", uv_strerror(r), NULL);
		return r;
	}
	snprintf(d->control_path, sizeof(d->control_path), "%s", path);
	return 0;
}

/* ---- start, reload, stop ---------------------------------------------------- */

static void log_diag(const char *event, const struct pst_diag *diag)
{
	for (size_t i = 0; i < diag->n; i++)
		pst_log("error", event, "error", diag->msgs[i], NULL);
}

/* A reload may not change the uid of a sandbox with running handlers, nor
 * give their uid to a sandbox of another name: two sandboxes running at
 * once would share a host uid, and one would own what the other wrote. */
static bool reload_uids_ok(struct daemon *d, const struct pst_policy *p)
{
	for (struct handler *h = d->handlers; h; h = h->next) {
		if (h->exited || h->warm)
			continue;
		const struct pst_sandbox *o = h->sbx->conf;
		for (size_t i = 0; i < p->n_sandboxes; i++) {
			const struct pst_sandbox *n = &p->sandboxes[i];
			bool same = !strcmp(n->name, o->name);
			if (same ? n->uid == o->uid : n->uid != o->uid)
				continue;
			char ou[16], nu[16];
			snprintf(ou, sizeof(ou), "%u", o->uid);
			snprintf(nu, sizeof(nu), "%u", n->uid);
			pst_log("error", "reload_failed", "sandbox", n->name, "uid", same ? ou : "-", "new_uid", nu,
				"running", o->name, "error",
				same ? "the uid of a sandbox with running handlers cannot change; reload once they are gone"
				     : "that uid is a running sandbox's; reload once its handlers are gone",
				NULL);
			return false;
		}
	}
	return true;
}

/* Whether the policy file may be trusted (pst_policy_trust()), with the
 * message to log when not. */
static int policy_trusted(struct daemon *d, char *why, size_t whylen)
{
	if (d->insecure_policy)
		return 0;
	char what[400];
	int r = pst_policy_trust(d->policy_path, what, sizeof(what));
	if (r < 0)
		snprintf(why, whylen,
			 "policy %s: %s: root would take what to delete, mount and run from a file "
			 "others can change; make it and its directories root's and not writable by "
			 "others (or run with --insecure-policy, for development only)",
			 d->policy_path, what);
	return r;
}

static void reload(struct daemon *d)
{
	struct pst_policy *p = NULL;
	struct pst_diag diag = { 0 };
	struct gen *g = NULL;
	struct netpolicy_config nc = { 0 };
	struct netpolicy_error ne = { 0 };
	char n[32];

	pst_log("info", "reload", "policy", d->policy_path, NULL);
	char why[512];
	int r = policy_trusted(d, why, sizeof(why));
	if (r < 0) {
		pst_log("error", "reload_invalid", "error", why, NULL);
		goto failed;
	}
	r = pst_policy_load(d->policy_path, &p, &diag);
	if (r < 0) {
		log_diag("reload_invalid", &diag);
		pst_diag_free(&diag);
		goto failed;
	}
	pst_diag_free(&diag);
	const struct pst_broker_conf *ob = &d->cur->policy->broker;
	if (strcmp(p->broker.table, ob->table) || strcmp(p->broker.state_dir, ob->state_dir) ||
	    strcmp(p->broker.control, ob->control) || p->broker.has_metrics != ob->has_metrics ||
	    (ob->has_metrics && strcmp(p->broker.metrics.text, ob->metrics.text))) {
		pst_log("error", "reload_invalid", "error",
			"broker.table, broker.state_dir, broker.control and broker.metrics cannot change on "
			"reload; restart the broker",
			NULL);
		pst_policy_free(p);
		goto failed;
	}
	if (!reload_uids_ok(d, p)) {
		pst_policy_free(p);
		goto failed;
	}
	if (gen_build(d, p, &g) < 0) {
		pst_policy_free(p);
		goto failed;
	}
	if (sockets_open(d, g) < 0 || channels_open(d, g) < 0)
		goto failed_undo;
	if ((r = np_config(p, &nc)) < 0 || (r = netpolicy_reload(d->np, &nc, &ne)) < 0) {
		pst_log("error", "reload", "error", ne.msg[0] ? ne.msg : strerror(-r), NULL);
		goto failed_undo;
	}
	np_config_free(&nc);

	struct gen *old = d->cur;
	/* detach old owners, then attach the new generation */
	for (struct listener *ls = d->listeners; ls; ls = ls->next)
		if (ls->keep) {
			listener_stop(ls);
			ls->sbx = NULL;
		}
	for (struct channel *c = d->channels; c; c = c->next) {
		channel_stop(c);
		c->consumer = NULL;
	}
	gen_attach(d, g);
	sockets_prune(d, false);
	channels_prune(d, false);
	gen_activate(d, g, old);
	d->reloads++;
	snprintf(n, sizeof(n), "%zu", g->n_sbx);
	pst_log("info", "reloaded", "policy", d->policy_path, "sandboxes", n, NULL);
	return;

failed_undo:
	np_config_free(&nc);
	sockets_prune(d, true);
	channels_prune(d, true);
	gen_free(g);
failed:
	d->reload_failures++;
	pst_log("warn", "reload_failed", "policy", d->policy_path, "keeping", "previous policy", NULL);
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void daemon_finish(struct daemon *d)
{
	if (d->finished)
		return;
	d->finished = true;
	uv_timer_stop(&d->grace_timer);
	if (d->np) {
		struct netpolicy_error ne = { 0 };
		if (netpolicy_destroy(d->np, &ne) < 0) {
			pst_log("error", "teardown", "error", ne.msg, NULL);
			d->exit_code = 1;
		}
		d->np = NULL;
	}
	if (d->control_path[0])
		unlink(d->control_path);
	while (d->listeners) {
		struct listener *ls = d->listeners;
		d->listeners = ls->next;
		listener_close(ls);
	}
	while (d->channels) {
		struct channel *c = d->channels;
		d->channels = c->next;
		channel_close(c);
	}
	if (d->cur && d->cur->refs != 1) {
		/* a handler or job not accounted for: its sandboxes and their
		 * cgroups would stay */
		char refs[16];
		snprintf(refs, sizeof(refs), "%u", d->cur->refs);
		pst_log("error", "teardown", "error", "the policy is still referenced", "refs", refs, NULL);
		d->exit_code = 1;
	}
	gen_unref(d->cur);
	d->cur = NULL;
	for (struct control_client *c = d->clients; c; c = c->next)
		client_close(c);
	pst_log("info", "stopped", NULL);
	uv_walk(d->loop, on_walk_close, NULL);
}

static void kill_all(struct daemon *d)
{
	for (struct handler *h = d->handlers; h; h = h->next) {
		if (h->exited)
			continue;
		h->killed = true;
		sandbox_kill(&h->h);
	}
}

static void on_grace(uv_timer_t *t)
{
	struct daemon *d = t->data;
	char n[32];
	snprintf(n, sizeof(n), "%zu", d->n_handlers);
	pst_log("warn", "grace_expired", "killing", n, NULL);
	kill_all(d);
}

static void begin_stop(struct daemon *d, const char *sig)
{
	d->stop_signals++;
	if (d->stopping) {
		/* a second signal shortens the grace */
		pst_log("warn", "stop", "signal", sig, "grace", "cut short", NULL);
		kill_all(d);
		return;
	}
	d->stopping = true;
	char n[32], g[32];
	snprintf(n, sizeof(n), "%zu", d->n_handlers);
	snprintf(g, sizeof(g), "%llu", (unsigned long long)d->cur->policy->broker.grace_ms);
	pst_log("info", "stop", "signal", sig, "handlers", n, "grace_ms", g, NULL);
	/* stop accepting: close the listeners at once, so that the kernel
	 * refuses new connections (and, with reuse_port, steers them to the
	 * brokers that still listen) instead of completing handshakes nobody
	 * will serve; what waits in a backlog is reset */
	while (d->listeners) {
		struct listener *ls = d->listeners;
		d->listeners = ls->next;
		listener_close(ls);
	}
	for (struct channel *c = d->channels; c; c = c->next)
		channel_stop(c);
	uv_timer_stop(&d->tick);
	for (struct handler *h = d->handlers; h; h = h->next)
		if (h->warm && !h->discarded)
			warm_discard(h);
	if (!d->n_handlers && !d->pool_jobs) {
		daemon_finish(d);
		return;
	}
	uv_timer_start(&d->grace_timer, on_grace, d->cur->policy->broker.grace_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (signum == SIGHUP) {
		if (!d->stopping)
			reload(d);
		return;
	}
	begin_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void collect_inherited(struct daemon *d)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	if (!pid || !n || strtol(pid, NULL, 10) != getpid())
		return;
	long cnt = strtol(n, NULL, 10);
	for (long i = 0; i < cnt && d->n_inherited < 64; i++)
		d->inherited[d->n_inherited++] = 3 + (int)i;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static void sd_notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof(un.sun_path))
		return;
	memcpy(un.sun_path, path, len);
	if (un.sun_path[0] == '@')
		un.sun_path[0] = 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	static const char msg[] = "READY=1";
	sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&un,
	       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

/* Log lines wait for a slow sink (log.c): flush them when it takes more. */
static void on_log_writable(uv_poll_t *p, int status, int events)
{
	(void)p, (void)status, (void)events;
	pst_log_flush();
}

static void log_pending(bool on, int fd, void *ctx)
{
	struct daemon *d = ctx;
	if (!d->log_poll_inited) {
		if (!on || uv_poll_init(d->loop, &d->log_poll, fd) < 0)
			return;
		d->log_poll_inited = true;
	}
	if (uv_is_closing((uv_handle_t *)&d->log_poll))
		return;
	if (on)
		uv_poll_start(&d->log_poll, UV_WRITABLE, on_log_writable);
	else
		uv_poll_stop(&d->log_poll);
}

/* The broker's cgroups as it found them, once every sandbox is gone. */
static void cg_fini(struct daemon *d)
{
	struct sandbox_error err = { 0 };
	if (sandbox_cg_fini(&err) < 0)
		pst_log("warn", "cleanup", "step", err.step, "error", err.msg, NULL);
}

int pst_daemon_run(const struct pst_run_opts *opts)
{
	struct daemon dd = { 0 }, *d = &dd;
	struct pst_policy *p = NULL;
	struct pst_diag diag = { 0 };
	struct netpolicy_config nc = { 0 };
	struct netpolicy_error ne = { 0 };
	struct gen *g = NULL;
	int r;

	d->policy_path = opts->policy_path;
	d->refill_busy = opts->refill_busy;
	/* every fd the hard limit allows: fd_budget() says what the policy needs */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	d->insecure_policy = opts->insecure_policy;
	d->refill_slots = refill_slots();
	d->started_ns = pst_now_ns();
	d->exit_code = 1;
	signal(SIGPIPE, SIG_IGN);
	collect_inherited(d);

	char why[512];
	if ((r = policy_trusted(d, why, sizeof(why))) < 0) {
		pst_log("error", "policy", "error", why, NULL);
		return 1;
	}
	if (d->insecure_policy)
		pst_log("warn", "policy", "file", opts->policy_path, "trust",
			"not checked (--insecure-policy)", NULL);
	r = pst_policy_load(opts->policy_path, &p, &diag);
	if (r < 0) {
		log_diag("policy_invalid", &diag);
		if (!diag.n)
			pst_log("error", "policy", "file", opts->policy_path, "error", strerror(-r), NULL);
		pst_diag_free(&diag);
		return 1;
	}
	pst_diag_free(&diag);

	/* before anything named after the table is touched: starting removes
	 * what an earlier instance left, which must not be a running one's */
	if ((r = pst_instance_lock(PST_LOCK_DIR, p->broker.table, &d->lock, why, sizeof(why))) < 0) {
		pst_log("error", "start", "error", why, NULL);
		pst_policy_free(p);
		return 1;
	}
	/* where handler cgroups go: cgroup v2 places the broker in a leaf of
	 * its own first, or refuses to start saying what fixes it */
	struct sandbox_error cerr = { 0 };
	if ((r = sandbox_cg_init(p->broker.table, &d->cg, &cerr)) < 0) {
		pst_log("error", "start", "step", cerr.step, "error", cerr.msg, NULL);
		pst_policy_free(p);
		pst_instance_unlock(&d->lock);
		return 1;
	}
	static const char *const cg_modes[] = { "none", "v1", "v2" };
	pst_log("info", "cgroup", "mode", cg_modes[d->cg.mode], "base", d->cg.base, "leaf",
		d->cg.leaf[0] ? d->cg.leaf : "-", "controllers", d->cg.controllers[0] ? d->cg.controllers : "-",
		"kill", d->cg.kill ? "yes" : "no", d->cg.missing[0] ? "missing" : NULL, d->cg.missing, NULL);
	/* once: what an older kernel's Landlock leaves weaker (sandbox.h) */
	int ll_abi = sandbox_landlock_abi();
	if (sandbox_landlock_gaps(ll_abi)) {
		char abi[16];
		snprintf(abi, sizeof(abi), "%d", ll_abi);
		pst_log("warn", "landlock", "abi", abi, "weaker", sandbox_landlock_gaps(ll_abi), NULL);
	}
	if ((r = sandbox_cg_clean(p->broker.table, &cerr)) < 0) {
		pst_log("warn", "cleanup", "error", cerr.msg, NULL);
	} else if (r > 0) {
		char n[16];
		snprintf(n, sizeof(n), "%d", r);
		pst_log("info", "cleanup", "cgroups_removed", n, "what", "left by an earlier instance", NULL);
	}
	d->loop = uv_default_loop();
	if (gen_build(d, p, &g) < 0) {
		pst_policy_free(p);
		cg_fini(d);
		pst_instance_unlock(&d->lock);
		return 1;
	}
	/* the state dir: netpolicy_create checks it (root's, no links, not
	 * writable by others, postern's own, unlocked) and makes it 0700 */
	if ((r = np_config(p, &nc)) < 0 || (r = netpolicy_create(&nc, &d->np, &ne)) < 0) {
		pst_log("error", "start", "error", ne.msg[0] ? ne.msg : strerror(-r), NULL);
		d->np = NULL;
		goto fail;
	}
	np_config_free(&nc);
	if (control_open(d, p->broker.control) < 0)
		goto fail;
	if (p->broker.has_metrics && metrics_open(d, &p->broker.metrics) < 0)
		goto fail;
	if (sockets_open(d, g) < 0 || channels_open(d, g) < 0)
		goto fail;

	uv_signal_init(d->loop, &d->sig_term);
	uv_signal_init(d->loop, &d->sig_int);
	uv_signal_init(d->loop, &d->sig_hup);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
	uv_signal_start(&d->sig_term, on_signal, SIGTERM);
	uv_signal_start(&d->sig_int, on_signal, SIGINT);
	uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
	uv_timer_init(d->loop, &d->grace_timer);
	d->grace_timer.data = d;
	uv_timer_init(d->loop, &d->tick);
	d->tick.data = d;
	uv_timer_init(d->loop, &d->refill_timer);
	d->refill_timer.data = d;
	uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS);

	gen_attach(d, g);
	gen_activate(d, g, NULL);
	g = NULL;
	for (size_t i = 0; i < d->n_inherited; i++)
		if (d->inherited[i] >= 0) {
			char fd[16];
			snprintf(fd, sizeof(fd), "%d", d->inherited[i]);
			pst_log("warn", "start", "inherited_fd", fd, "error",
				"matches no address of the policy; closed", NULL);
			close(d->inherited[i]);
		}

	for (size_t i = 0; i < d->cur->n_sbx; i++) {
		const struct pst_sandbox *sc = d->cur->sbx[i].conf;
		struct pst_logline l;
		pst_ll_begin(&l, "info", "sandbox");
		pst_ll_str(&l, "name", sc->name);
		static const char *const trig[] = { "", "listen", "pipe", "fdpass", "startup" };
		pst_ll_str(&l, "trigger", trig[sc->trigger]);
		for (size_t j = 0; j < sc->n_listen; j++)
			pst_ll_str(&l, "listen", sc->listen[j].text);
		if (sc->channel)
			pst_ll_str(&l, "channel", sc->channel);
		pst_ll_str(&l, "exec", sc->exec[0]);
		pst_ll_uint(&l, "uid", sc->uid);
		pst_ll_uint(&l, "egress_rules", sc->n_egress);
		pst_ll_uint(&l, "handlers_max", sc->limits.handlers);
		pst_ll_end(&l);
	}
	char nsb[32];
	snprintf(nsb, sizeof(nsb), "%zu", d->cur->n_sbx);
	pst_log("info", "start", "policy", opts->policy_path, "sandboxes", nsb, "control",
		p->broker.control, "metrics", p->broker.has_metrics ? p->broker.metrics.text : "off", NULL);
	sd_notify_ready();

	d->exit_code = 0;
	/* from here on a slow log sink cannot stall the loop */
	if ((r = pst_log_nonblock_start(LOG_QUEUE_BYTES, log_pending, d)) < 0)
		log_errno("start", NULL, "non-blocking log", -r);
	uv_run(d->loop, UV_RUN_DEFAULT);
	pst_log_nonblock_stop(LOG_FLUSH_MS);
	uv_loop_close(d->loop);
	cg_fini(d);
	pst_instance_unlock(&d->lock);
	while (d->spare) {
		struct handler *h = d->spare;
		d->spare = h->next;
		free(h);
	}
	while (d->spare_ep) {
		struct endpoint *e = d->spare_ep;
		d->spare_ep = e->next;
		free(e);
	}
	return d->exit_code;

fail:
	np_config_free(&nc);
	if (d->np) {
		struct netpolicy_error e2 = { 0 };
		netpolicy_destroy(d->np, &e2);
	}
	if (d->control_open) {
		unlink(p->broker.control);
		uv_close((uv_handle_t *)&d->control, NULL);
	}
	if (d->metrics_open)
		uv_close((uv_handle_t *)&d->metrics, NULL);
	while (d->listeners) {
		struct listener *ls = d->listeners;
		d->listeners = ls->next;
		listener_close(ls);
	}
	while (d->channels) {
		struct channel *c = d->channels;
		d->channels = c->next;
		channel_close(c);
	}
	uv_run(d->loop, UV_RUN_NOWAIT);
	uv_loop_close(d->loop);
	gen_free(g);
	cg_fini(d);
	pst_instance_unlock(&d->lock);
	return 1;
}
