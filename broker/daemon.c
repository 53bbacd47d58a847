/* SPDX-License-Identifier: MIT */
/*
 * The broker daemon: one libuv loop. This file starts it in order (policy,
 * lock, cgroups, sandboxes, networks, control socket, listeners, signals),
 * ticks, handles signals (SIGHUP reloads, SIGTERM/SIGINT stop with a grace
 * period), tells systemd where it is (notify.c), and hooks the log up to
 * the loop.
 * The rest, per concern:
 *
 *   listener.c      sockets, the accept loop          -> a request
 *   channel.c       pipe and fdpass channels           -> a request
 *   startup.c       startup handlers, restarts         -> a request
 *   admission.c     admit(): caps, rate, flow control
 *   handler.c       a request -> a handler; watch, stderr, reap, exit line
 *   prewarm.c       pre-warmed handlers
 *   generation.c    policy generations, reload
 *   plan.c          policy -> sandbox/netpolicy configs
 *   stats.c         status JSON, Prometheus text
 *   control_server.c the control socket and metrics endpoint
 *   notify.c        sd_notify: READY, RELOADING, STOPPING, STATUS, WATCHDOG
 *
 * Types: daemon_internal.h.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "broker/daemon_internal.h"
#include "broker/preflight.h"

#define TICK_MS 100
#define LOG_QUEUE_BYTES (256 * 1024) /* log lines waiting for a slow sink */
#define LOG_FLUSH_MS 2000            /* at exit, how long the sink gets for the rest */

_Static_assert(PST_LINE_MAX == PIPE_BUF - 1, "pipe messages are atomic up to PIPE_BUF");

/* ---- stop ------------------------------------------------------------------ */

static void on_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* No handler and no job left: everything goes, and the loop ends. */
static void daemon_finish(struct daemon *d)
{
	if (d->finished)
		return;
	d->finished = true;
	uv_timer_stop(&d->grace_timer);
	if (d->np) {
		struct netpolicy_error ne = {0};
		int r = netpolicy_destroy(d->np, &ne);
		if (r < 0) {
			log_netpolicy_error("error", "teardown", &ne, r);
			d->exit_code = 1;
		}
		d->np = NULL;
	}
	if (d->control_path[0])
		unlink(d->control_path);
	listeners_close_all(d);
	channels_close_all(d);
	if (d->cur && d->cur->refs != 1) {
		/* a handler or job not accounted for: its sandboxes and their
		 * cgroups would stay */
		char refs[16];
		snprintf(refs, sizeof(refs), "%u", d->cur->refs);
		pst_log("error", "teardown", "error", "the policy is still referenced", "refs",
		        refs, NULL);
		d->exit_code = 1;
	}
	gen_unref(d->cur);
	d->cur = NULL;
	control_clients_close(d);
	pst_log("info", "stopped", NULL);
	uv_walk(d->loop, on_walk_close, NULL);
}

void daemon_maybe_finish(struct daemon *d)
{
	if (d->stopping && !d->n_handlers && !d->pool_jobs)
		daemon_finish(d);
}

static void on_grace(uv_timer_t *t)
{
	struct daemon *d = t->data;
	char n[32];
	snprintf(n, sizeof(n), "%zu", d->n_handlers);
	pst_log("warn", "grace_expired", "killing", n, NULL);
	handlers_kill_all(d);
}

/* Its handlers: those serving a request and the pre-warmed ones waiting. */
static void count_handlers(const struct daemon *d, size_t *serving, size_t *prewarmed)
{
	*serving = *prewarmed = 0;
	for (const struct handler *h = d->handlers; h; h = h->next) {
		if (handler_served(h))
			(*serving)++;
		else if (handler_waiting(h))
			(*prewarmed)++;
	}
}

/* SIGTERM, SIGINT, or the control socket's "stop" (sig "control"). */
void daemon_stop(struct daemon *d, const char *sig)
{
	d->stop_signals++;
	bool signal = strcmp(sig, "control") != 0;
	if (d->stopping) {
		/* a second signal shortens the grace */
		pst_log("warn", "stop", signal ? "signal" : "by", sig, "grace", "cut short", NULL);
		handlers_kill_all(d);
		return;
	}
	d->stopping = true;
	notify_stopping(d);
	size_t serving, prewarmed;
	count_handlers(d, &serving, &prewarmed);
	struct pst_logline l;
	pst_ll_begin(&l, "info", "stop");
	pst_ll_str(&l, signal ? "signal" : "by", sig);
	pst_ll_uint(&l, "handlers", d->n_handlers);
	pst_ll_uint(&l, "grace_ms", d->cur->policy->broker.grace_ms);
	pst_ll_uint(&l, "serving", serving);
	pst_ll_uint(&l, "prewarmed", prewarmed);
	pst_ll_end(&l);
	/* stop accepting: close the listeners at once, so that the kernel
	 * refuses new connections (and, with reuse_port, steers them to the
	 * brokers that still listen) instead of completing handshakes nobody
	 * will serve; what waits in a backlog is reset */
	listeners_close_all(d);
	channels_stop_all(d);
	uv_timer_stop(&d->tick);
	prewarm_discard_all(d, NULL);
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
			daemon_reload(d);
		return;
	}
	daemon_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- the tick --------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
	struct daemon *d = t->data;
	uint64_t now = pst_now_ns();

	/* handler cgroups that were still busy at their reap */
	sandbox_cg_collect();
	listeners_emfile_resume(d, now);
	if (!d->cur || d->stopping)
		return;
	notify_status(d, false);
	for (size_t i = 0; i < d->cur->n_sbx; i++) {
		struct sbx *s = &d->cur->sbx[i];
		if (s->restart.at_ns && now >= s->restart.at_ns)
			startup_start(d, s);
		prewarm_refill(d, s, "tick");
	}
}

/* ---- the log ------------------------------------------------------------------ */

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

/* ---- start ------------------------------------------------------------------- */

/* What the service manager passed (NOTIFY_SOCKET, LISTEN_FDS), taken and
 * removed from the environment before anything is spawned. 0, or -1 when
 * a passed socket cannot be served on (logged). */
static int daemon_init(struct daemon *d, const struct pst_run_opts *opts)
{
	d->policy_path = opts->policy_path;
	d->watch_fd = -1;
	d->refill_busy = opts->refill_busy;
	d->insecure_policy = opts->insecure_policy;
	d->no_preflight = opts->no_preflight;
	/* every fd the hard limit allows: the fd budget says what the policy needs */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	d->refill_slots = prewarm_slots();
	d->started_ns = pst_now_ns();
	d->exit_code = 1;
	signal(SIGPIPE, SIG_IGN);
	char why[256];
	if (notify_open(why, sizeof(why)) < 0)
		pst_log("warn", "notify", "error", why, NULL);
	return listeners_inherit(d) < 0 ? -1 : 0;
}

/* The policy, trusted and valid; NULL (logged) if not. */
static struct pst_policy *start_policy(struct daemon *d)
{
	char why[512];
	if (policy_trusted(d, why, sizeof(why)) < 0) {
		pst_log("error", "policy", "error", why, NULL);
		return NULL;
	}
	if (d->insecure_policy)
		pst_log("warn", "policy", "file", d->policy_path, "trust",
		        "not checked (--insecure-policy)", NULL);
	struct pst_policy *p = NULL;
	struct pst_diag diag = {0};
	int r = pst_policy_load(d->policy_path, &p, &diag);
	if (r < 0) {
		log_diag("policy_invalid", &diag);
		if (!diag.n)
			pst_log("error", "policy", "file", d->policy_path, "error", strerror(-r),
			        NULL);
	} else if (d->no_preflight) {
		pst_log("warn", "preflight", "file", d->policy_path, "preflight",
		        "skipped (--no-preflight)", NULL);
	} else if (pst_preflight(p, &diag) > 0) {
		/* before anything is bound, made or mounted */
		log_diag("preflight_failed", &diag);
		pst_policy_free(p);
		r = -EINVAL;
	}
	pst_diag_free(&diag);
	return r < 0 ? NULL : p;
}

/* Where handler cgroups go: cgroup v2 places the broker in a leaf of its
 * own first, or refuses to start saying what fixes it; then what an
 * earlier instance left is removed. */
static int start_cgroups(struct daemon *d, const char *table)
{
	struct sandbox_error cerr = {0};
	int r = sandbox_cg_init(table, &d->cg, &cerr);
	if (r < 0) {
		log_sandbox_error("error", "start", NULL, &cerr, r);
		return r;
	}
	static const char *const cg_modes[] = {"none", "v1", "v2"};
	pst_log("info", "cgroup", "mode", cg_modes[d->cg.mode], "base", d->cg.base, "leaf",
	        d->cg.leaf[0] ? d->cg.leaf : "-", "controllers",
	        d->cg.controllers[0] ? d->cg.controllers : "-", "kill", d->cg.kill ? "yes" : "no",
	        d->cg.missing[0] ? "missing" : NULL, d->cg.missing, NULL);
	/* once: what an older kernel's Landlock leaves weaker (sandbox.h) */
	int ll_abi = sandbox_landlock_abi();
	if (sandbox_landlock_gaps(ll_abi)) {
		char abi[16];
		snprintf(abi, sizeof(abi), "%d", ll_abi);
		pst_log("warn", "landlock", "abi", abi, "weaker", sandbox_landlock_gaps(ll_abi),
		        NULL);
	}
	memset(&cerr, 0, sizeof(cerr));
	if ((r = sandbox_cg_clean(table, &cerr)) < 0) {
		log_sandbox_error("warn", "cleanup", NULL, &cerr, r);
	} else if (r > 0) {
		char n[16];
		snprintf(n, sizeof(n), "%d", r);
		pst_log("info", "cleanup", "cgroups_removed", n, "what",
		        "left by an earlier instance", NULL);
	}
	return 0;
}

/* The broker's cgroups as it found them, once every sandbox is gone. */
static void cg_fini(void)
{
	struct sandbox_error err = {0};
	int r = sandbox_cg_fini(&err);
	if (r < 0)
		log_sandbox_error("warn", "cleanup", NULL, &err, r);
}

/* The state dir: netpolicy_create checks it (root's, no links, not
 * writable by others, postern's own, unlocked) and makes it 0700. */
static int start_netpolicy(struct daemon *d, const struct pst_policy *p)
{
	struct netpolicy_config nc;
	struct netpolicy_error ne = {0};
	int r = plan_netpolicy(p, &nc);
	if (r == 0)
		r = netpolicy_create(&nc, &d->np, &ne);
	plan_netpolicy_free(&nc);
	if (r < 0) {
		log_netpolicy_error("error", "start", &ne, r);
		d->np = NULL;
	}
	return r;
}

static void start_timers(struct daemon *d)
{
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
}

static void log_started(struct daemon *d)
{
	const struct pst_policy *p = d->cur->policy;
	for (size_t i = 0; i < d->cur->n_sbx; i++) {
		const struct pst_sandbox *sc = d->cur->sbx[i].conf;
		struct pst_logline l;
		pst_ll_begin(&l, "info", "sandbox");
		pst_ll_str(&l, "name", sc->name);
		pst_ll_str(&l, "trigger", trigger_names[sc->trigger]);
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
	pst_log("info", "start", "policy", d->policy_path, "sandboxes", nsb, "control",
	        p->broker.control, "metrics",
	        p->broker.has_metrics ? p->broker.metrics.text : "off", NULL);
}

/* After the cgroups are placed: sandboxes, networks, control socket,
 * metrics, listeners and channels, then the switch to the generation.
 * 0, or a negative errno with everything made undone. */
static int start_serving(struct daemon *d, struct pst_policy *p)
{
	struct gen_plan pl;
	/* a socket systemd named after a sandbox is on an address of it */
	int r = listeners_inherited_check(d, p);
	if (r < 0) {
		pst_policy_free(p);
		return r;
	}
	d->loop = uv_default_loop();
	r = gen_prepare(d, p, &pl);
	if (r < 0)
		return r;
	p = pl.g->policy;
	if ((r = handlers_watch_open(d)) < 0 || (r = start_netpolicy(d, p)) < 0 ||
	    (r = control_open(d, p->broker.control)) < 0 ||
	    (p->broker.has_metrics && (r = metrics_open(d, &p->broker.metrics)) < 0) ||
	    (r = gen_bind(d, &pl)) < 0) {
		if (d->np) {
			struct netpolicy_error ne = {0};
			netpolicy_destroy(d->np, &ne);
			d->np = NULL;
		}
		control_server_close(d);
		gen_abort(d, &pl);
		if (d->watch_fd >= 0)
			uv_close((uv_handle_t *)&d->watch_poll, NULL);
		uv_run(d->loop, UV_RUN_NOWAIT);
		uv_loop_close(d->loop);
		handlers_watch_close(d);
		return r;
	}
	start_timers(d);
	gen_commit(d, &pl);
	listeners_inherited_unused(d);
	return 0;
}

static void daemon_free_spares(struct daemon *d)
{
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
}

int pst_daemon_run(const struct pst_run_opts *opts)
{
	struct daemon dd = {0}, *d = &dd;
	char why[512];

	if (daemon_init(d, opts) < 0)
		return 1;
	struct pst_policy *p = start_policy(d);
	if (!p)
		return 1;
	/* before anything named after the table is touched: starting removes
	 * what an earlier instance left, which must not be a running one's */
	if (pst_instance_lock(PST_LOCK_DIR, p->broker.table, &d->lock, why, sizeof(why)) < 0) {
		pst_log("error", "start", "error", why, NULL);
		pst_policy_free(p);
		return 1;
	}
	if (start_cgroups(d, p->broker.table) < 0) {
		pst_policy_free(p);
		pst_instance_unlock(&d->lock);
		return 1;
	}
	if (start_serving(d, p) < 0) {
		cg_fini();
		pst_instance_unlock(&d->lock);
		return 1;
	}
	log_started(d);
	notify_ready(d);
	notify_watchdog_start(d);

	d->exit_code = 0;
	/* from here on a slow log sink cannot stall the loop */
	int r = pst_log_nonblock_start(LOG_QUEUE_BYTES, log_pending, d);
	if (r < 0)
		pst_log_errno("start", NULL, "non-blocking log", -r);
	uv_run(d->loop, UV_RUN_DEFAULT);
	pst_log_nonblock_stop(LOG_FLUSH_MS);
	uv_loop_close(d->loop);
	handlers_watch_close(d);
	cg_fini();
	pst_instance_unlock(&d->lock);
	daemon_free_spares(d);
	return d->exit_code;
}
