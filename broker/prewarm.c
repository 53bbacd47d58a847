/* SPDX-License-Identifier: MIT */
/*
 * Pre-warmed handlers: set up in the threadpool ahead of requests
 * (SETTING_UP), their readiness awaited (WARMING), kept on their sandbox's
 * ready stack (READY) until a request takes one (SERVING, handler.c), or
 * discarded (DISCARDED: reload, stop, a failed report or release); the
 * refill policy; the reap of one that ended unused. And the handler
 * cgroups made ahead for fresh spawns, the other threadpool job.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "broker/daemon_internal.h"

void prewarm_backoff(struct sbx *s)
{
	/* 100 ms doubling to 10 s while set-up keeps failing */
	s->stats.warm_failed++;
	s->warm.backoff_ms = s->warm.backoff_ms ? s->warm.backoff_ms * 2 : 100;
	if (s->warm.backoff_ms > 10000)
		s->warm.backoff_ms = 10000;
	s->warm.retry_ns = pst_now_ns() + s->warm.backoff_ms * 1000000ull;
}

/* ---- the ready stack ----------------------------------------------------- */

static void ready_push(struct sbx *s, struct handler *h)
{
	h->state = H_READY;
	h->ready_next = s->warm.ready;
	s->warm.ready = h;
	s->warm.n_ready++;
}

/* Off the stack; the caller says what it becomes. */
static void ready_remove(struct sbx *s, struct handler *h)
{
	for (struct handler **p = &s->warm.ready; *p; p = &(*p)->ready_next)
		if (*p == h) {
			*p = h->ready_next;
			s->warm.n_ready--;
			break;
		}
	h->ready_next = NULL;
}

/* WARMING or READY -> DISCARDED: killed unused, on purpose. */
void prewarm_discard(struct handler *h)
{
	if (h->state == H_READY)
		ready_remove(h->sbx, h);
	h->state = H_DISCARDED;
	handler_kill(h, END_DISCARD);
}

/* The waiting handlers of generation g (NULL: of every generation). */
void prewarm_discard_all(struct daemon *d, const struct gen *g)
{
	for (struct handler *h = d->handlers; h; h = h->next)
		if (handler_waiting(h) && (!g || h->sbx->gen == g))
			prewarm_discard(h);
}

/* A ready handler takes the request (and closes its fds), or NULL (none
 * ready, or every ready one refused it: each such one is discarded; the
 * fds are still open). */
struct handler *prewarm_take(struct sbx *s, const struct pst_request *req,
                             const struct pst_req_env *env)
{
	while (s->warm.ready) {
		struct handler *h = s->warm.ready;
		ready_remove(s, h);
		struct sandbox_error err = {0};
		if (sandbox_release(s->sb, &h->h, req->sock_fd, req->stdin_fd, env->envp, &err) ==
		    0) {
			s->warm.n_warm--;
			s->stats.warm_used++;
			return h;
		}
		log_spawn_failed(s, NULL, &err, -EPIPE, true);
		prewarm_backoff(s);
		h->state = H_DISCARDED;
		handler_kill(h, END_DISCARD);
	}
	return NULL;
}

/* ---- set-up ----------------------------------------------------------------- */

static void log_ready(struct handler *h)
{
	struct pst_logline l;
	pst_ll_begin(&l, "debug", "prewarm_ready");
	pst_ll_str(&l, "sandbox", h->sbx->conf->name);
	pst_ll_int(&l, "pid", h->h.pid);
	pst_ll_str(&l, "waits_in", h->h.preloaded ? "handler" : "postern-warm");
	pst_ll_ms(&l, "setup_ms", pst_now_ns() - h->start_ns);
	pst_ll_end(&l);
}

/* Its readiness report: WARMING -> READY, or (a failed set-up) DISCARDED. */
static void on_warm_ctl(uv_poll_t *p, int status, int events)
{
	struct handler *h = p->data;
	struct sbx *s = h->sbx;
	struct sandbox_error err = {0};
	(void)events;

	if (h->state != H_WARMING) {
		uv_poll_stop(p); /* discarded meanwhile: its end is awaited */
		return;
	}
	int r = status < 0 ? status : sandbox_warm_ready(s->sb, &h->h, &err);
	if (r == -EAGAIN)
		return;
	uv_poll_stop(p);
	if (r == 0) {
		ready_push(s, h);
		s->warm.backoff_ms = 0;
		if (pst_log_debug)
			log_ready(h);
		if (h->d->refill_busy)
			prewarm_refill(h->d, s, "ready");
		return;
	}
	log_spawn_failed(s, NULL, &err, r, true);
	prewarm_backoff(s);
	h->state = H_DISCARDED; /* already accounted as a failure */
	handler_kill(h, END_DISCARD);
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
	    .listen_fds = (int)s->send.n_socket_fds,
	};
	h->job.setup.r = sandbox_prewarm(s->sb, &args, &h->h, &h->job.setup.err);
}

/* Set up: SETTING_UP -> WARMING (watched, its report awaited), or freed. */
static void warm_work_done(uv_work_t *req, int status)
{
	struct handler *h = req->data;
	struct pool_job *j = &h->job.setup;
	struct daemon *d = j->d;
	struct sbx *s = h->sbx;
	struct gen *g = s->gen;

	d->pool_jobs--;
	sender_fds_close(h); /* it has them, or failed */
	if (status < 0 && j->r == 0)
		j->r = status;
	if (j->r < 0) {
		log_spawn_failed(s, NULL, &j->err, j->r, true);
		prewarm_backoff(s);
		s->warm.n_warm--;
		handler_put(d, h);
	} else {
		h->state = H_WARMING;
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
			prewarm_discard(h);
	}
	gen_unref(g); /* the job's reference */
	daemon_maybe_finish(d);
}

static int warm_start(struct daemon *d, struct sbx *s)
{
	struct handler *h = handler_new(d);
	if (!h)
		return -ENOMEM;
	h->d = h->job.setup.d = d;
	h->sbx = s;
	h->state = H_SETTING_UP;
	h->job.setup.req.data = h;
	/* made here, on the loop: the job reads only what is its own */
	int r = sender_fds(s, h);
	if (r < 0) {
		prewarm_backoff(s);
		handler_put(d, h);
		return r;
	}
	r = uv_queue_work(d->loop, &h->job.setup.req, warm_work, warm_work_done);
	if (r < 0) {
		pst_log_errno("prewarm", s->conf->name, "queue the set-up", -r);
		sender_fds_close(h);
		prewarm_backoff(s);
		handler_put(d, h);
		return r;
	}
	gen_ref(s->gen);
	s->warm.n_warm++;
	d->pool_jobs++;
	return 0;
}

/* ---- refill policy ---------------------------------------------------------- */

static void log_refill(struct sbx *s, bool idle, const char *cause, unsigned n)
{
	struct pst_logline l;
	pst_ll_begin(&l, "debug", "prewarm_refill");
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_str(&l, "when", idle ? "idle" : "busy");
	pst_ll_str(&l, "cause", cause);
	pst_ll_uint(&l, "started", n);
	pst_ll_end(&l);
}

/* Start pre-warmed handlers towards the sandbox's `prewarm`. A set-up costs
 * a few ms of CPU, and on a machine where process creation does not scale
 * with CPUs, beside a request in service it slows that request about as
 * much as it would save the next one (measured on 2 CPUs: docs/performance.md,
 * "Performance"). So by default (--prewarm-refill=idle): all that are
 * missing once the sandbox has had nothing in service for PREWARM_IDLE_MS,
 * and while it is busy one at a time (the tick and each idle moment start
 * the next). With busy: at once, up to refill_slots under way (each
 * release and each set-up that is ready start the next). */
void prewarm_refill(struct daemon *d, struct sbx *s, const char *cause)
{
	uint64_t now = pst_now_ns();
	if (d->stopping || s->gen != d->cur || s->conf->trigger == PST_TRIGGER_STARTUP ||
	    now < s->warm.retry_ns || s->warm.n_warm >= s->conf->prewarm)
		return;
	/* (1 ms of slack: the loop's timers run on its cached clock) */
	bool idle = !s->adm.active &&
	            now - s->warm.idle_since_ns + 1000000ull >= PREWARM_IDLE_MS * 1000000ull;
	unsigned slots = idle ? UINT_MAX : d->refill_busy ? d->refill_slots : 1;
	unsigned n = 0;
	while (s->warm.n_warm < s->conf->prewarm && s->warm.n_warm - s->warm.n_ready < slots &&
	       warm_start(d, s) == 0)
		n++;
	if (n && pst_log_debug)
		log_refill(s, idle, cause, n);
}

/* s has nothing in service any more: refill after PREWARM_IDLE_MS. */
void prewarm_idle(struct daemon *d, struct sbx *s)
{
	s->warm.idle_since_ns = pst_now_ns();
	if (s->warm.n_warm < s->conf->prewarm && s->gen == d->cur)
		uv_timer_start(&d->refill_timer, on_refill_timer, PREWARM_IDLE_MS, 0);
}

/* For --prewarm-refill=busy: a set-up for each CPU we may run on but one
 * (the request in service needs one), at least 1. */
unsigned prewarm_slots(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	return n > 2 ? (unsigned)n - 1 : 1;
}

void on_refill_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	for (size_t i = 0; d->cur && i < d->cur->n_sbx; i++)
		prewarm_refill(d, &d->cur->sbx[i], "idle");
}

/* ---- the end of one that never served ------------------------------------- */

/* Its process ended (handler_exit()): -> WARM_EXITING. A WARMING one's
 * report is read now, before its handles close: a set-up failure that came
 * with the exit. */
void prewarm_ended(struct handler *h)
{
	struct sbx *s = h->sbx;
	if (h->state == H_READY) {
		ready_remove(s, h);
	} else if (h->state == H_WARMING) {
		struct pool_job *j = &h->job.setup;
		memset(&j->err, 0, sizeof(j->err));
		if (sandbox_warm_ready(s->sb, &h->h, &j->err) < 0 && j->err.msg[0]) {
			j->r = -j->err.err;
			h->end = END_SETUP_FAILED;
		}
	}
	h->state = H_WARM_EXITING;
}

static void log_prewarm_exit(struct sbx *s, int reap_r, int wstatus)
{
	char st[32];
	if (reap_r < 0)
		snprintf(st, sizeof(st), "unknown");
	else if (WIFSIGNALED(wstatus))
		snprintf(st, sizeof(st), "signal %d", WTERMSIG(wstatus));
	else
		snprintf(st, sizeof(st), "status %d", WEXITSTATUS(wstatus));
	struct pst_logline l;
	uint64_t sup;
	if (pst_ll_begin_throttled(&l, &s->stats.log.prewarm_exit, "warn", "prewarm_exit", &sup)) {
		pst_ll_str(&l, "sandbox", s->conf->name);
		pst_ll_str(&l, "status", st);
		pst_ll_end_throttled(&l, sup);
	}
}

/* A WARM_EXITING one's handles are closed: reap it, say why it went (unless
 * it was discarded), and refill. */
void prewarm_gone(struct daemon *d, struct handler *h)
{
	struct sbx *s = h->sbx;
	int wstatus = 0;
	int reap_r = sandbox_reap(s->sb, &h->h, &wstatus, NULL);
	if (h->end == END_SETUP_FAILED) {
		log_spawn_failed(s, NULL, &h->job.setup.err, h->job.setup.r, true);
		prewarm_backoff(s);
	} else if (h->end == END_NONE) {
		/* it died while waiting: count it, and do not refill in a loop */
		log_prewarm_exit(s, reap_r, wstatus);
		prewarm_backoff(s);
	}
	handler_unlink(d, h);
	s->warm.n_warm--;
	struct gen *g = s->gen;
	handler_put(d, h);
	if (!d->stopping && g == d->cur)
		prewarm_refill(d, s, "exit");
	gen_unref(g);
	daemon_maybe_finish(d);
}

/* ---- handler cgroups made ahead -------------------------------------------
 * In the threadpool (sandbox_cg_stock()), so a fresh spawn, which suspends
 * the loop, only opens them: about 0.15 ms less of that. One job per
 * sandbox at a time (sbx.warm.cg_job); started after fresh spawns. */
static void cg_work(uv_work_t *req)
{
	struct sbx *s = req->data;
	s->warm.cg_job.r = sandbox_cg_stock(s->sb, &s->warm.cg_job.err);
}

static void cg_work_done(uv_work_t *req, int status)
{
	struct sbx *s = req->data;
	struct pool_job *j = &s->warm.cg_job;
	struct daemon *d = j->d;
	struct gen *g = s->gen;

	d->pool_jobs--;
	s->warm.cg_busy = false;
	if (status < 0 && j->r == 0)
		j->r = status;
	if (j->r < 0) {
		/* spawns still make their own, and report what fails there */
		s->warm.cg_stock_off = true;
		struct pst_logline l;
		pst_ll_begin(&l, "warn", "cgroup_stock");
		pst_ll_str(&l, "sandbox", s->conf->name);
		ll_sandbox_error(&l, &j->err, j->r);
		pst_ll_str(&l, "effect", "handler cgroups made at each spawn");
		pst_ll_end(&l);
	}
	gen_unref(g); /* the job's reference */
	daemon_maybe_finish(d);
}

void cg_stock_start(struct daemon *d, struct sbx *s)
{
	if (s->warm.cg_busy || s->warm.cg_stock_off || d->stopping || s->gen != d->cur ||
	    !sandbox_cg_stock_missing(s->sb))
		return;
	struct pool_job *j = &s->warm.cg_job;
	memset(j, 0, sizeof(*j));
	j->d = d;
	j->req.data = s;
	if (uv_queue_work(d->loop, &j->req, cg_work, cg_work_done) < 0)
		return;
	s->warm.cg_busy = true;
	gen_ref(s->gen);
	d->pool_jobs++;
}
