/* SPDX-License-Identifier: MIT */
/*
 * Handlers: a request becomes a handler (a pre-warmed one released, or a
 * fresh spawn), whose pidfd, stderr and timeout are watched; its stderr is
 * relayed to the log line by line; once it has ended it is reaped and one
 * exit line says how. States and their transitions: daemon_internal.h.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "broker/daemon_internal.h"

#define HANDLER_SPARE_MAX 256          /* freed handlers kept for reuse */
#define STDERR_READ_BUDGET (64 * 1024) /* per wakeup, so a chatty handler cannot starve others */
#define STDERR_TOTAL_MAX (1024 * 1024) /* per handler; beyond it output is dropped and counted */

_Static_assert(MAX_SEND <= PST_ENV_EXTRA_MAX, "a handler's send entries fit its environment");

/* ---- requests ------------------------------------------------------------ */

void request_init(struct pst_request *req, enum pst_trigger trigger)
{
	req->trigger = trigger;
	req->sock_fd = req->stdin_fd = -1;
	req->peer_sa.ss_family = req->local_sa.ss_family = AF_UNSPEC;
	req->peer[0] = req->label[0] = 0;
	req->has_src = false;
	req->has_cred = false;
}

void request_close(struct pst_request *req)
{
	if (req->sock_fd >= 0)
		close(take_fd(&req->sock_fd));
	if (req->stdin_fd >= 0)
		close(take_fd(&req->stdin_fd));
}

/* ---- handler objects --------------------------------------------------- */

void handler_link(struct daemon *d, struct handler *h)
{
	h->prev = NULL;
	h->next = d->handlers;
	if (d->handlers)
		d->handlers->prev = h;
	d->handlers = h;
	d->n_handlers++;
	gen_ref(h->sbx->gen);
}

void handler_unlink(struct daemon *d, struct handler *h)
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
struct handler *handler_new(struct daemon *d)
{
	struct handler *h = d->spare;
	if (!h)
		return calloc(1, sizeof(*h));
	d->spare = h->next;
	d->n_spare--;
	memset(h, 0, sizeof(*h));
	return h;
}

void handler_put(struct daemon *d, struct handler *h)
{
	if (d->n_spare >= HANDLER_SPARE_MAX) {
		free(h);
		return;
	}
	h->next = d->spare;
	d->spare = h;
	d->n_spare++;
}

/* ---- stderr relay -------------------------------------------------------- */

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

static void stderr_take(struct handler *h, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
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
		stderr_take(h, buf, (size_t)n);
	}
	return false;
}

static void unwatch(struct daemon *d, int fd)
{
	(void)epoll_ctl(d->watch_fd, EPOLL_CTL_DEL, fd, NULL);
}

/* At its end (EOF) or on an error, its stderr is no longer watched. */
static void on_handler_stderr(struct handler *h)
{
	if (stderr_drain(h, STDERR_READ_BUDGET)) {
		unwatch(h->d, h->h.stderr_fd);
		h->err_polling = false;
	}
}

/* ---- kills and timeouts --------------------------------------------------- */

int handler_kill(struct handler *h, enum handler_end why)
{
	if (h->end == END_NONE)
		h->end = why;
	return sandbox_kill(&h->h);
}

struct handler *handler_find(struct daemon *d, pid_t pid)
{
	for (struct handler *h = d->handlers; h; h = h->next)
		if (h->h.pid == pid)
			return h;
	return NULL;
}

/* Every handler whose process still runs (grace over, second signal). */
void handlers_kill_all(struct daemon *d)
{
	for (struct handler *h = d->handlers; h; h = h->next)
		if (h->state != H_EXITING && h->state != H_WARM_EXITING)
			handler_kill(h, END_SHUTDOWN);
}

static void on_handler_timeout(uv_timer_t *t)
{
	struct handler *h = t->data;
	if (h->state != H_SERVING)
		return;
	struct pst_logline l;
	uint64_t sup;
	if (pst_ll_begin_throttled(&l, &h->sbx->stats.log.timeout, "warn", "timeout", &sup)) {
		pst_ll_str(&l, "sandbox", h->sbx->conf->name);
		pst_ll_int(&l, "pid", h->h.pid);
		pst_ll_ms(&l, "after_ms", pst_now_ns() - h->start_ns);
		pst_ll_end_throttled(&l, sup);
	}
	handler_kill(h, END_TIMEOUT);
}

/* ---- the end: exit line, reap ------------------------------------------- */

/* Its exit line, and the sandbox's figures; whether it failed. */
static bool exit_line(struct handler *h, int r, int wstatus, uint64_t ran,
                      const struct sandbox_cg_stats *cs)
{
	struct sbx *s = h->sbx;
	struct sbx_stats *st = &s->stats;
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
		st->exit_failed++;
	} else if (WIFEXITED(wstatus)) {
		pst_ll_int(&l, "status", WEXITSTATUS(wstatus));
		failed = WEXITSTATUS(wstatus) != 0;
		if (failed)
			st->exit_failed++;
		else
			st->exit_ok++;
	} else if (WIFSIGNALED(wstatus)) {
		const char *sig = sigabbrev_np(WTERMSIG(wstatus));
		pst_ll_str(&l, "signal", sig ? sig : "?");
		if (h->end == END_TIMEOUT)
			st->exit_timeout++;
		else
			st->exit_signaled++;
	}
	if (h->end == END_TIMEOUT)
		pst_ll_str(&l, "reason", "timeout");
	else if (h->end == END_SHUTDOWN)
		pst_ll_str(&l, "reason", "shutdown");
	else if (h->end == END_KILLED)
		pst_ll_str(&l, "reason", "killed");
	if (h->stderr_dropped)
		pst_ll_uint(&l, "stderr_dropped", h->stderr_dropped);
	if (cs->has & SANDBOX_CG_HAS_CPU) {
		pst_ll_ms(&l, "cpu_ms", cs->cpu_usec * 1000);
		st->cg.cpu_usec += cs->cpu_usec;
	}
	if (cs->has & SANDBOX_CG_HAS_PEAK) {
		pst_ll_uint(&l, "mem_peak", cs->mem_peak);
		if (cs->mem_peak > st->cg.mem_peak)
			st->cg.mem_peak = cs->mem_peak;
	}
	if (cs->oom_kills) {
		pst_ll_uint(&l, "oom_kills", cs->oom_kills);
		st->cg.oom_kills += cs->oom_kills;
		st->cg.oom_handlers++;
	}
	pst_ll_end(&l);
	return failed;
}

/* A handler that served: reap, log, free its room. */
static void handler_reap(struct daemon *d, struct handler *h)
{
	struct sbx *s = h->sbx;
	/* its figures, from its cgroup: read by the reap, before it removes
	 * or reuses the cgroup */
	struct sandbox_cg_stats cs;
	int wstatus = 0;
	int r = sandbox_reap(s->sb, &h->h, &wstatus, &cs);
	uint64_t ran = pst_now_ns() - h->start_ns;
	bool failed = exit_line(h, r, wstatus, ran, &cs);

	handler_unlink(d, h);
	admission_leave(d, s, h);
	if (s->conf->trigger == PST_TRIGGER_STARTUP)
		startup_schedule(d, s, failed || h->end == END_TIMEOUT, ran);
	struct gen *g = s->gen;
	handler_put(d, h);
	gen_unref(g);
	daemon_maybe_finish(d);
}

static void on_handler_closed(uv_handle_t *uvh)
{
	struct handler *h = uvh->data;
	if (--h->handles_open)
		return;
	if (h->state == H_WARM_EXITING)
		prewarm_gone(h->d, h);
	else
		handler_reap(h->d, h);
}

/* Its pidfd is readable: SERVING -> EXITING, or a pre-warmed one ->
 * WARM_EXITING; its handles close, then it is reaped. */
static void handler_exit(struct handler *h)
{
	if (h->state == H_EXITING || h->state == H_WARM_EXITING)
		return;
	if (h->state == H_SERVING)
		h->state = H_EXITING;
	else
		prewarm_ended(h);
	uv_timer_stop(&h->timer);
	/* out of the watch set before its fds close at the reap: a copy of
	 * one elsewhere (a child that copied the broker's table) would keep
	 * it registered, with this handler's address */
	if (h->watched) {
		unwatch(h->d, h->h.pidfd);
		h->watched = false;
	}
	if (h->err_polling) {
		unwatch(h->d, h->h.stderr_fd);
		h->err_polling = false;
	}
	/* whatever the handler wrote before it died */
	stderr_drain(h, STDERR_TOTAL_MAX);
	uv_close((uv_handle_t *)&h->timer, on_handler_closed);
	if (h->has_ctl)
		uv_close((uv_handle_t *)&h->ctl_poll, on_handler_closed);
}

/* ---- the watch set ---------------------------------------------------------
 *
 * Every handler's pidfd and stderr pipe are in one epoll set of the
 * broker's, which is one uv_poll in the loop: a handler costs 2 epoll_ctl
 * to watch and 2 to drop, where a uv_poll for each of the two fds took 12
 * (libuv checks a new fd with an ADD and a DEL, stops a poll before it
 * starts it and again when it closes) and 2 ioctls. An event carries the
 * handler's address, its lowest bit set for the stderr pipe. Dispatching a
 * batch frees no handler (a reap waits for its timer's close callback), so
 * each address in it is live; a stderr event after the exit in the same
 * batch finds it no longer polled. */
#define WATCH_STDERR ((uintptr_t)1)
#define WATCH_BATCH 64
_Static_assert(_Alignof(struct handler) > 1, "a handler's address has a free low bit");

static void on_watch(uv_poll_t *p, int status, int events)
{
	struct daemon *d = p->data;
	struct epoll_event ev[WATCH_BATCH];
	(void)status;
	(void)events;
	int n = epoll_wait(d->watch_fd, ev, WATCH_BATCH, 0);
	for (int i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)ev[i].data.ptr;
		struct handler *h = (struct handler *)(v & ~WATCH_STDERR);
		if (!(v & WATCH_STDERR))
			handler_exit(h);
		else if (h->err_polling)
			on_handler_stderr(h);
	}
}

/* 0, or a negative errno (logged; nothing left open). */
int handlers_watch_open(struct daemon *d)
{
	int r = (d->watch_fd = epoll_create1(EPOLL_CLOEXEC)) < 0 ? -errno : 0;
	if (r == 0 && (r = uv_poll_init(d->loop, &d->watch_poll, d->watch_fd)) == 0) {
		d->watch_poll.data = d;
		if ((r = uv_poll_start(&d->watch_poll, UV_READABLE, on_watch)) < 0)
			uv_close((uv_handle_t *)&d->watch_poll, NULL);
	}
	if (r < 0) {
		pst_log_errno("start", NULL, "the handlers' watch set", -r);
		if (d->watch_fd >= 0)
			close(take_fd(&d->watch_fd));
	}
	return r;
}

/* After the loop: its handle was closed with the others (or, when starting
 * failed, by the caller). */
void handlers_watch_close(struct daemon *d)
{
	if (d->watch_fd >= 0)
		close(take_fd(&d->watch_fd));
}

static int watch(struct daemon *d, int fd, uintptr_t tag, struct handler *h)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)((uintptr_t)h | tag)};
	return epoll_ctl(d->watch_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* A pidfd the watch set refused: its handler was killed; its timer looks
 * whether it has gone. */
static void on_unwatched(uv_timer_t *t)
{
	struct handler *h = t->data;
	struct pollfd p = {.fd = h->h.pidfd, .events = POLLIN};
	if (poll(&p, 1, 0) == 1)
		handler_exit(h);
}

/* A started handler: its pidfd and stderr in the watch set, its timer. A
 * pidfd that cannot be watched (ENOMEM; ENOSPC past fs.epoll.max_user_watches)
 * is killed, so that nothing runs unwatched, and its timer looks every 10 ms
 * until it has gone (libuv would have aborted the broker there;
 * t_broker_watchfail). A stderr pipe that cannot be is read at the exit
 * only, up to what the pipe held. Either is logged, throttled: a full set
 * refuses every request's. */
void handler_watch(struct daemon *d, struct handler *h)
{
	struct sbx *s = h->sbx;
	uv_timer_init(d->loop, &h->timer);
	h->timer.data = h;
	h->handles_open = 1;
	int r = watch(d, h->h.pidfd, 0, h);
	h->watched = r == 0;
	if (r < 0) {
		pst_log_errno_throttled(&s->stats.log.watch, "watch", s->conf->name,
		                        "watch the handler's pidfd (it is killed)", -r);
		handler_kill(h, END_KILLED);
		uv_timer_start(&h->timer, on_unwatched, 10, 10);
	}
	if ((r = watch(d, h->h.stderr_fd, WATCH_STDERR, h)) == 0) /* non-blocking (sandbox.h) */
		h->err_polling = true;
	else
		pst_log_errno_throttled(&s->stats.log.watch, "watch", s->conf->name,
		                        "watch the handler's stderr (read at its exit only)", -r);
}

void log_spawn_failed(struct sbx *s, const char *peer, const struct sandbox_error *err, int r,
                      bool warm)
{
	struct pst_logline l;
	uint64_t sup;
	if (!pst_ll_begin_throttled(&l, &s->stats.log.spawn_failed, "error", "spawn_failed", &sup))
		return;
	pst_ll_str(&l, "sandbox", s->conf->name);
	if (peer && peer[0])
		pst_ll_str(&l, "peer", peer);
	if (warm)
		pst_ll_int(&l, "prewarm", 1);
	ll_sandbox_error(&l, err, r);
	pst_ll_end_throttled(&l, sup);
}

/* ---- a request -> a handler --------------------------------------------- */

/* What the handler keeps of its request. */
static void handler_take_request(struct handler *h, const struct pst_request *req)
{
	snprintf(h->peer, sizeof(h->peer), "%s", req->peer);
	h->has_src = req->has_src;
	if (req->has_src)
		memcpy(h->src, req->src, PST_SRCKEY_LEN);
}

/* Its environment: what the request says of its client, then the
 * sandbox's send channels. */
static void request_env(struct pst_req_env *e, const struct sbx *s, const struct pst_request *req)
{
	bool inet = req->sock_fd >= 0 && req->peer[0];
	pst_env_build(e, inet ? &req->peer_sa : NULL, inet ? &req->local_sa : NULL,
	              req->sock_fd >= 0 && req->has_cred ? &req->cred : NULL, s->send.envp);
}

/* h has its request (released or spawned): SERVING, counted, timed, logged. */
static void handler_started(struct daemon *d, struct handler *h, uint64_t t0, uint64_t spawn_ns,
                            bool warm)
{
	struct sbx *s = h->sbx;
	h->state = H_SERVING;
	h->start_ns = t0;
	if (warm)
		admission_enter(s, h); /* a fresh one was, when its spawn was queued */
	s->stats.started++;
	pst_latring_add(&s->stats.lat, (uint32_t)(spawn_ns / 1000));
	pst_hist_add(&s->stats.spawn, spawn_ns);
	if (s->conf->limits.timeout_ms && h->watched) /* else the timer is on_unwatched()'s */
		uv_timer_start(&h->timer, on_handler_timeout, s->conf->limits.timeout_ms, 0);

	struct pst_logline l;
	pst_ll_begin(&l, "info", "spawn");
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_int(&l, "pid", h->h.pid);
	if (h->peer[0])
		pst_ll_str(&l, "peer", h->peer);
	pst_ll_ms(&l, "spawn_ms", spawn_ns);
	if (warm)
		pst_ll_int(&l, "prewarmed", 1);
	pst_ll_uint(&l, "active", s->adm.active);
	pst_ll_end(&l);
	/* by default no refill here: prewarm_refill() waits for a quiet moment */
	if (d->refill_busy && s->conf->prewarm)
		prewarm_refill(d, s, warm ? "release" : "spawn");
}

/* The first step of a fresh spawn, on the loop: the handler's fds and
 * environment, into its job. The request's fds are the job's from here on.
 * 0, or a negative errno (the request closed, h freed). */
static int spawn_prepare(struct daemon *d, struct sbx *s, struct handler *h,
                         struct pst_request *req, uint64_t t0)
{
	h->d = d;
	h->sbx = s;
	int r = sender_fds(s, h);
	if (r < 0) {
		s->stats.refused[REFUSE_SPAWN_FAILED]++;
		request_close(req);
		handler_put(d, h);
		return r;
	}
	handler_take_request(h, req);
	struct spawn_job *j = &h->job.spawn;
	request_env(&j->env, s, req);
	j->sb = s->sb;
	j->t0 = t0;
	j->args = (struct sandbox_spawn_args){
	    .sock_fd = take_fd(&req->sock_fd),
	    .stdin_fd = take_fd(&req->stdin_fd),
	    .netns_fd = s->netns_fd,
	    .extra_env = j->env.envp,
	    .fds = h->fds,
	    .n_fds = h->n_fds,
	    .listen_fds = (int)s->send.n_socket_fds,
	};
	return 0;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* The call that suspends its thread until the handler has exec'd (or
 * failed): a hung bind source or a slow exec would stop everything on the
 * loop, so it runs in the threadpool (sandbox.h: spawns of one sandbox may
 * run on several threads; a pool thread lives as long as the process, as
 * the handler's parent-death signal wants). It reads and writes only the
 * job and h->h; the job holds a reference on the generation, whose
 * sandbox plan and netns fd it uses.
 * Once the handler has its copies, the broker's of the client's socket and
 * stdin are closed here, not on the loop: the client sees its connection
 * end when the last copy is closed, and a handler as quick as `cat` had
 * often exited before the loop got to the job's completion (37% of the
 * requests at concurrency 1, the FIN ~50 us after the handler's exit). A
 * failed spawn's stay open until the loop has logged the failure. */
static void spawn_run(struct handler *h)
{
	struct spawn_job *j = &h->job.spawn;
	j->r = sandbox_spawn(j->sb, &j->args, &h->h, &j->err);
	if (j->r >= 0) {
		close_fd(take_fd(&j->args.sock_fd));
		close_fd(take_fd(&j->args.stdin_fd));
	}
}

static void spawn_work(uv_work_t *req)
{
	spawn_run(req->data);
}

/* The last step, on the loop: the broker's copies of the handler's fds are
 * closed as early as possible (the client sees EOF only once every copy of
 * its socket is closed); a failure is logged before that. */
static int spawn_complete(struct daemon *d, struct handler *h)
{
	struct sbx *s = h->sbx;
	struct spawn_job *j = &h->job.spawn;
	sender_fds_close(h);
	if (j->r < 0) /* logged before the client sees its connection close */
		log_spawn_failed(s, h->peer, &j->err, j->r, false);
	close_fd(j->args.sock_fd);
	close_fd(j->args.stdin_fd);
	if (j->r < 0) {
		s->stats.refused[REFUSE_SPAWN_FAILED]++;
		int r = j->r;
		admission_leave(d, s, h);
		handler_put(d, h);
		return r;
	}
	uint64_t spawn_ns = h->h.spawn_ns ? h->h.spawn_ns : pst_now_ns() - j->t0;
	for (int i = 0; i < SANDBOX_PHASE_COUNT; i++)
		s->stats.phase_sum_ns[i] += h->h.phase_ns[i];
	s->stats.phase_n++;
	handler_link(d, h);
	handler_watch(d, h);
	cg_stock_start(d, s);
	handler_started(d, h, j->t0, spawn_ns, false);
	return 0;
}

static void spawn_work_done(uv_work_t *req, int status)
{
	struct handler *h = req->data;
	struct daemon *d = h->d;
	struct sbx *s = h->sbx;
	struct gen *g = s->gen;
	(void)status; /* a queued job is never cancelled */
	d->pool_jobs--;
	/* (h is gone when it failed) */
	if (spawn_complete(d, h) < 0 && s->conf->trigger == PST_TRIGGER_STARTUP)
		startup_schedule(d, s, true, 0);
	gen_unref(g); /* the job's */
	daemon_maybe_finish(d);
}

/* Serve req with a handler of s: a ready pre-warmed one, else a fresh
 * spawn. The request's fds are closed here (or handed over), as early as
 * possible. Returns 0 or a negative errno (already logged). */
int handler_spawn(struct daemon *d, struct sbx *s, struct pst_request *req)
{
	uint64_t t0 = pst_now_ns();
	struct handler *h;
	if (s->warm.ready && req->trigger != PST_TRIGGER_STARTUP) {
		struct pst_req_env env;
		request_env(&env, s, req);
		if ((h = prewarm_take(s, req, &env))) {
			/* it has the request's fds: they were closed */
			req->sock_fd = req->stdin_fd = -1;
			handler_take_request(h, req);
			handler_started(d, h, t0, pst_now_ns() - t0, true);
			return 0;
		}
	}
	if (!(h = handler_new(d))) {
		pst_log_errno_throttled(&s->stats.log.spawn_failed, "spawn", s->conf->name,
		                        "allocate handler", ENOMEM);
		request_close(req);
		return -ENOMEM;
	}
	int r = spawn_prepare(d, s, h, req, t0);
	if (r < 0)
		return r;
	/* it counts against the caps from now on, while it is spawned */
	h->state = H_SPAWNING;
	admission_enter(s, h);
	h->job.spawn.req.data = h;
	if (uv_queue_work(d->loop, &h->job.spawn.req, spawn_work, spawn_work_done) == 0) {
		gen_ref(s->gen);
		d->pool_jobs++;
		return 0;
	}
	spawn_run(h); /* no threadpool: here, as it was */
	return spawn_complete(d, h);
}
