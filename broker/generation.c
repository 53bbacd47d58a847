/* SPDX-License-Identifier: MIT */
/*
 * Generations: one loaded policy with its prepared sandboxes, and what it
 * binds to (listeners, channels, netns). A reload builds a new generation
 * beside the one in force and changes nothing of the old until the last
 * step that can fail has succeeded:
 *
 *   1. the policy file: trusted, loaded and validated; broker keys and
 *      running handlers' uids unchanged              (pure checks)
 *   2. gen_prepare: fd budget, each sandbox prepared  (new objects only)
 *   3. gen_bind: listeners found open or opened beside them (a kept one's
 *      mark changed only when its role changes, the old mark kept),
 *      channels found open (same name and kind) or made beside them, each
 *      sandbox's send channels and startup sockets    (new objects only)
 *   4. netpolicy_reload                               (the last that can fail;
 *      a failure it reports as applied, past its rules, is logged and the
 *      switch goes ahead: that sandbox is left without a network)
 *   5. gen_commit: the switch, which cannot fail
 *
 * A failure in 2-4 is followed by gen_abort(): what was made is closed and
 * freed, the marks restored; the old generation, its listeners, channels
 * and handlers are exactly as they were. Running handlers move to the
 * sandbox of the same name in the new generation, or keep their old one
 * until they exit (each holds a reference).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cJSON.h>

#include "broker/daemon_internal.h"
#include "broker/preflight.h"

/* ---- generation objects ---------------------------------------------- */

/* Its sandboxes' plans: sandbox_destroy() may wait (up to 1 s) for handler
 * cgroups a process from outside keeps busy, so it runs in the threadpool
 * when a generation retires (gen_teardown()); the warnings are logged on
 * the loop. */
static void gen_destroy_sandboxes(struct gen *g, bool log)
{
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		s->destroy_r = s->sb ? sandbox_destroy(s->sb, &s->destroy_err) : 0;
		s->sb = NULL;
		if (log && s->destroy_r < 0)
			log_sandbox_error("warn", "cleanup", s->conf->name, &s->destroy_err,
			                  s->destroy_r);
	}
}

static void gen_free_rest(struct gen *g)
{
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		pst_srctab_free(&s->adm.sources);
		if (s->netns_fd >= 0)
			close(s->netns_fd);
	}
	free(g->sbx);
	pst_policy_free(g->policy);
	free(g);
}

/* A generation that never served (a failed load or reload): at once. */
static void gen_free(struct gen *g)
{
	if (!g)
		return;
	gen_destroy_sandboxes(g, true);
	gen_free_rest(g);
}

static void teardown_work(uv_work_t *req)
{
	gen_destroy_sandboxes(req->data, false);
}

static void teardown_done(uv_work_t *req, int status)
{
	struct gen *g = req->data;
	struct daemon *d = g->d;
	(void)status;
	for (size_t i = 0; i < g->n_sbx; i++)
		if (g->sbx[i].destroy_r < 0)
			log_sandbox_error("warn", "cleanup", g->sbx[i].conf->name,
			                  &g->sbx[i].destroy_err, g->sbx[i].destroy_r);
	gen_free_rest(g);
	d->pool_jobs--;
	daemon_maybe_finish(d);
}

/* The last reference went: its sandboxes go in the threadpool, never
 * waited for on the loop (at once where there is no pool). */
static void gen_teardown(struct gen *g)
{
	g->teardown.data = g;
	if (g->d && uv_queue_work(g->d->loop, &g->teardown, teardown_work, teardown_done) == 0) {
		g->d->pool_jobs++;
		return;
	}
	gen_free(g);
}

void gen_ref(struct gen *g)
{
	g->refs++;
}

void gen_unref(struct gen *g)
{
	if (g && --g->refs == 0)
		gen_teardown(g);
}

struct sbx *gen_find(struct gen *g, const char *name)
{
	for (size_t i = 0; i < g->n_sbx; i++)
		if (!strcmp(g->sbx[i].conf->name, name))
			return &g->sbx[i];
	return NULL;
}

/* The fds the broker may hold for policy p with every sandbox at its caps:
 * per handler its pidfd, its stderr pipe and its ends of its send channels,
 * 2 more for a pre-warmed one; per sandbox its network namespace (netpolicy's
 * fd and the generation's copy), its root template, its Landlock ruleset,
 * its uts and ipc namespaces, listeners and startup sockets; the handler
 * cgroup files kept open; the control clients and a reserve. One sandbox
 * full of idle clients then cannot starve the others of fds (EMFILE): what
 * does not fit RLIMIT_NOFILE is refused at load. */
static uint64_t fd_budget(const struct pst_policy *p)
{
	uint64_t n = FD_RESERVE + CONTROL_CLIENTS_MAX + sandbox_cg_kept_fds();
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *sc = &p->sandboxes[i];
		uint64_t per = 2 + sc->n_send;
		n += (uint64_t)sc->limits.handlers * per + (uint64_t)sc->prewarm * (per + 2) + 6 +
		     sc->n_listen + sc->n_sockets;
	}
	return n;
}

/* libuv keeps its I/O watchers in an array indexed by fd, grown (realloc)
 * the first time a watched fd passes its end: as the broker's fd numbers
 * climb under load (kept cgroup files, handlers' pidfds and pipes), some
 * request would pay for it. So it is grown here, once per load or reload,
 * to the policy's fd budget: a watcher started and stopped on an eventfd
 * moved that high (8 bytes per fd: 24 KB for 3,000). */
static bool probe_busy;

static void watchers_probe_closed(uv_handle_t *h)
{
	(void)h;
	probe_busy = false;
}

static void watchers_probe_cb(uv_poll_t *h, int status, int events)
{
	(void)h, (void)status, (void)events;
}

static void watchers_presize(uv_loop_t *loop, uint64_t need)
{
	static uv_poll_t probe; /* one at a time: probe_busy until closed */
	struct rlimit rl;
	if (probe_busy || need < 64 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur != RLIM_INFINITY && need >= rl.rlim_cur)
		need = rl.rlim_cur - 1;
	if (need > 1u << 16)
		need = 1u << 16; /* beyond, libuv grows it as it goes */
	int e = eventfd(0, EFD_CLOEXEC);
	int hi = e < 0 ? -1 : fcntl(e, F_DUPFD_CLOEXEC, (int)need - 1);
	if (hi >= 0 && uv_poll_init(loop, &probe, hi) == 0) {
		probe_busy = true;
		(void)uv_poll_start(&probe, UV_READABLE, watchers_probe_cb);
		uv_poll_stop(&probe);
		uv_close((uv_handle_t *)&probe, watchers_probe_closed);
	}
	if (hi >= 0)
		close(hi);
	if (e >= 0)
		close(e);
}

static int fd_budget_check(const struct pst_policy *p)
{
	struct rlimit rl;
	uint64_t need = fd_budget(p);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    need <= rl.rlim_cur)
		return 0;
	char why[600];
	snprintf(why, sizeof(why),
	         "the sandboxes' caps (limits.handlers, prewarm) need up to %llu file descriptors "
	         "in the broker (2 per handler, 1 per send channel, 2 more per pre-warmed one, %u "
	         "for cgroup files, %d reserved), but RLIMIT_NOFILE is %llu: raise it "
	         "(LimitNOFILE= in the unit, ulimit -n) or lower limits.handlers",
	         (unsigned long long)need, sandbox_cg_kept_fds(), FD_RESERVE + CONTROL_CLIENTS_MAX,
	         (unsigned long long)rl.rlim_cur);
	pst_log("error", "load", "what", "file descriptors", "error", why, NULL);
	return -EMFILE;
}

/* A generation for policy p (which it owns from here on, also on
 * failure): its sandboxes prepared, bound to nothing yet. 0 or a negative
 * errno (logged). */
int gen_prepare(struct daemon *d, struct pst_policy *p, struct gen_plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	int r = fd_budget_check(p);
	if (r < 0) {
		pst_policy_free(p);
		return r;
	}
	watchers_presize(d->loop, fd_budget(p));
	struct gen *g = calloc(1, sizeof(*g));
	if (!g || !(g->sbx = calloc(p->n_sandboxes, sizeof(*g->sbx)))) {
		free(g);
		pst_policy_free(p);
		pst_log("error", "load", "what", "allocate", "error", strerror(ENOMEM), NULL);
		return -ENOMEM;
	}
	g->d = d;
	g->policy = p;
	g->n_sbx = p->n_sandboxes;
	g->refs = 1;
	uint64_t now = pst_now_ns();
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		struct sbx *s = &g->sbx[i];
		s->gen = g;
		s->conf = &p->sandboxes[i];
		s->netns_fd = -1;
		pst_bucket_init(&s->adm.bucket, s->conf->limits.rate, now);
		struct sandbox_error err = {0};
		if ((r = plan_sandbox(p, s->conf, &s->sb, &err)) < 0) {
			log_sandbox_error("error", "load", s->conf->name, &err, r);
			gen_free(g);
			return r;
		}
	}
	pl->g = g;
	return 0;
}

/* What the new generation binds to, beside what is open. */
int gen_bind(struct daemon *d, struct gen_plan *pl)
{
	int r = listeners_prepare(d, pl);
	return r < 0 ? r : channels_prepare(d, pl);
}

void gen_abort(struct daemon *d, struct gen_plan *pl)
{
	(void)d;
	if (pl->ls)
		listeners_abort(pl);
	if (pl->ch)
		channels_abort(pl);
	free(pl->ls);
	free(pl->ch);
	gen_free(pl->g);
	memset(pl, 0, sizeof(*pl));
}

/* ---- the switch ----------------------------------------------------------- */

/* Running handlers follow their sandbox's name into the new generation. */
static void handlers_move(struct daemon *d, struct gen *ng)
{
	for (struct handler *h = d->handlers; h; h = h->next) {
		if (!handler_served(h))
			continue;
		struct sbx *os = h->sbx, *ns = gen_find(ng, os->conf->name);
		if (!ns || os->gen == ng)
			continue;
		admission_move(h, os, ns);
		h->sbx = ns;
		gen_ref(ng);
		gen_unref(os->gen);
	}
}

/* The new generation's sandboxes start: startup handlers, pre-warmed
 * ones, and reading what brings them requests. */
static void gen_activate(struct daemon *d, struct gen *g)
{
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		if (s->conf->trigger == PST_TRIGGER_STARTUP) {
			if (!s->adm.active)
				startup_start(d, s);
		} else {
			prewarm_refill(d, s, "load");
			if (!sbx_at_capacity(s))
				admission_resume(d, s);
		}
	}
}

/* Switch to pl's generation. Nothing here can fail. */
void gen_commit(struct daemon *d, struct gen_plan *pl)
{
	struct gen *g = pl->g, *old = d->cur;
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		/* a copy of the generation's own: netpolicy closes its fd when a
		 * later reload removes or remakes the network, while this
		 * generation's handlers and queued set-ups may still join it */
		int fd = d->np ? netpolicy_netns_fd(d->np, s->conf->name) : -1;
		s->netns_fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
		if (s->netns_fd < 0)
			s->netns_fd = -1;
	}
	listeners_commit(d, pl);
	channels_commit(d, pl);
	for (size_t i = 0; old && i < g->n_sbx; i++) {
		struct sbx *o = gen_find(old, g->sbx[i].conf->name);
		if (o) /* statistics carry over for sandboxes that stay */
			g->sbx[i].stats = o->stats;
	}
	d->cur = g;
	if (old) {
		/* pre-warmed handlers were set up by the old policy */
		prewarm_discard_all(d, old);
		handlers_move(d, g);
		gen_unref(old);
	}
	free(pl->ls);
	free(pl->ch);
	memset(pl, 0, sizeof(*pl));
	gen_activate(d, g);
}

/* ---- reload ------------------------------------------------------------------ */

void log_diag(const char *event, const struct pst_diag *diag)
{
	for (size_t i = 0; i < diag->n; i++)
		pst_log("error", event, "error", diag->msgs[i], NULL);
}

/* Whether the policy file may be trusted (pst_policy_trust()), with the
 * message to log when not. */
int policy_trusted(struct daemon *d, char *why, size_t whylen)
{
	if (d->insecure_policy)
		return 0;
	char what[400];
	int r = pst_policy_trust(d->policy_path, what, sizeof(what));
	if (r < 0 &&
	    snprintf(why, whylen,
	             "policy %s: %s: root would take what to delete, mount and run from a file "
	             "others can change; make it and its directories root's and not writable by "
	             "others (or run with --insecure-policy, for development only)",
	             d->policy_path, what) >= (int)whylen)
		pst_mark_truncated(why, whylen);
	return r;
}

static void log_uid_refusal(const struct pst_sandbox *o, const struct pst_sandbox *n, bool same)
{
	char ou[16], nu[16];
	snprintf(ou, sizeof(ou), "%u", o->uid);
	snprintf(nu, sizeof(nu), "%u", n->uid);
	pst_log("error", "reload_failed", "sandbox", n->name, "uid", same ? ou : "-", "new_uid", nu,
	        "running", o->name, "error",
	        same ? "the uid of a sandbox with running handlers cannot change; reload once they "
	               "are gone"
	             : "that uid is a running sandbox's; reload once its handlers are gone",
	        NULL);
}

/* A reload may not change the uid of a sandbox with running handlers, nor
 * give their uid to a sandbox of another name: two sandboxes running at
 * once would share a host uid, and one would own what the other wrote. */
static bool reload_uids_ok(struct daemon *d, const struct pst_policy *p)
{
	for (struct handler *h = d->handlers; h; h = h->next) {
		if (h->state != H_SERVING)
			continue;
		const struct pst_sandbox *o = h->sbx->conf;
		for (size_t i = 0; i < p->n_sandboxes; i++) {
			const struct pst_sandbox *n = &p->sandboxes[i];
			bool same = !strcmp(n->name, o->name);
			if (same ? n->uid == o->uid : n->uid != o->uid)
				continue;
			log_uid_refusal(o, n, same);
			return false;
		}
	}
	return true;
}

static bool broker_conf_same(const struct pst_broker_conf *nb, const struct pst_broker_conf *ob)
{
	return !strcmp(nb->table, ob->table) && !strcmp(nb->state_dir, ob->state_dir) &&
	       !strcmp(nb->control, ob->control) && nb->has_metrics == ob->has_metrics &&
	       (!ob->has_metrics || !strcmp(nb->metrics.text, ob->metrics.text));
}

static void policy_freep(struct pst_policy **p)
{
	pst_policy_free(*p);
}

/* Step 1: the new policy, checked against what runs; NULL (logged) if it
 * cannot be taken. */
static struct pst_policy *reload_policy(struct daemon *d)
{
	__attribute__((cleanup(policy_freep))) struct pst_policy *p = NULL;
	struct pst_diag diag = {0};
	char why[512];
	if (policy_trusted(d, why, sizeof(why)) < 0) {
		pst_log("error", "reload_invalid", "error", why, NULL);
		return NULL;
	}
	int r = pst_policy_load(d->policy_path, &p, &diag);
	if (r < 0)
		log_diag("reload_invalid", &diag);
	pst_diag_free(&diag);
	if (r < 0)
		return NULL;
	if (!broker_conf_same(&p->broker, &d->cur->policy->broker)) {
		char msg[600];
		snprintf(msg, sizeof(msg),
		         "%s: broker: broker.table, broker.state_dir, broker.control and "
		         "broker.metrics cannot change on reload; restart the broker",
		         d->policy_path);
		pst_log("error", "reload_invalid", "error", msg, NULL);
		return NULL;
	}
	if (!reload_uids_ok(d, p))
		return NULL;
	/* last: it reads files; the running generation stays */
	if (!d->no_preflight && pst_preflight(p, &diag) > 0) {
		log_diag("reload_invalid", &diag);
		pst_diag_free(&diag);
		return NULL;
	}
	struct pst_policy *ok = p;
	p = NULL;
	return ok;
}

/* Step 4: the new networks and rules. */
static int reload_netpolicy(struct daemon *d, const struct pst_policy *p)
{
	struct netpolicy_config nc;
	struct netpolicy_error ne = {0};
	int r = plan_netpolicy(p, &nc);
	if (r == 0)
		r = netpolicy_reload(d->np, &nc, &ne);
	plan_netpolicy_free(&nc);
	if (r < 0)
		log_netpolicy_error("error", "reload", &ne, r);
	/* applied: the new rules are in force, a sandbox's network could not be
	 * made anew (it gets none): the new generation goes ahead */
	return r < 0 && ne.applied ? 0 : r;
}

/* ---- what a reload did: the control socket's answer ------------------------ */

struct reload_report {
	cJSON *root, *added, *removed, *changed, *opened, *closed, *errors;
};

/* every error line logged while the reload runs (pst_log_capture()) */
static void report_error(void *ctx, const char *msg)
{
	struct reload_report *rep = ctx;
	if (rep->errors)
		cJSON_AddItemToArray(rep->errors, cJSON_CreateString(msg));
}

static void report_begin(struct reload_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->root = cJSON_CreateObject();
	cJSON *sb = cJSON_AddObjectToObject(rep->root, "sandboxes");
	cJSON *ls = cJSON_AddObjectToObject(rep->root, "listeners");
	if (sb && ls) {
		rep->added = cJSON_AddArrayToObject(sb, "added");
		rep->removed = cJSON_AddArrayToObject(sb, "removed");
		rep->changed = cJSON_AddArrayToObject(sb, "changed");
		rep->opened = cJSON_AddArrayToObject(ls, "opened");
		rep->closed = cJSON_AddArrayToObject(ls, "closed");
	}
	rep->errors = cJSON_AddArrayToObject(rep->root, "errors");
	pst_log_capture(report_error, rep);
}

static void report_name(cJSON *arr, const char *name)
{
	if (arr)
		cJSON_AddItemToArray(arr, cJSON_CreateString(name));
}

static void report_listener(cJSON *arr, const struct listener *ls, const struct sbx *s)
{
	cJSON *o = arr ? cJSON_CreateObject() : NULL;
	if (!o)
		return;
	cJSON_AddStringToObject(o, "address", ls->addr.text);
	cJSON_AddStringToObject(o, "sandbox", s ? s->conf->name : "");
	cJSON_AddItemToArray(arr, o);
}

/* Before the switch: the sandboxes added, removed and changed (their JSON
 * or their uid differs), the listeners opened and those that will close. */
static void report_changes(struct daemon *d, const struct gen_plan *pl, struct reload_report *rep)
{
	const struct pst_policy *op = d->cur->policy, *np = pl->g->policy;
	for (size_t i = 0; i < np->n_sandboxes; i++) {
		const struct pst_sandbox *n = &np->sandboxes[i], *o = pst_policy_find(op, n->name);
		if (!o)
			report_name(rep->added, n->name);
		else if (strcmp(o->source, n->source) != 0 || o->uid != n->uid)
			report_name(rep->changed, n->name);
	}
	for (size_t i = 0; i < op->n_sandboxes; i++)
		if (!pst_policy_find(np, op->sandboxes[i].name))
			report_name(rep->removed, op->sandboxes[i].name);
	for (size_t i = 0; i < pl->n_ls; i++)
		if (pl->ls[i].fresh)
			report_listener(rep->opened, pl->ls[i].ls, pl->ls[i].s);
	for (const struct listener *ls = d->listeners; ls; ls = ls->next) {
		bool kept = false;
		for (size_t i = 0; i < pl->n_ls && !kept; i++)
			kept = pl->ls[i].ls == ls;
		if (!kept)
			report_listener(rep->closed, ls, ls->sbx);
	}
}

/* The outcome, to the control clients that asked for this reload. */
static void report_end(struct daemon *d, struct reload_report *rep, bool applied)
{
	pst_log_capture(NULL, NULL);
	char *js = NULL;
	if (rep->root && cJSON_AddBoolToObject(rep->root, "applied", applied))
		js = cJSON_PrintUnformatted(rep->root);
	cJSON_Delete(rep->root);
	control_reload_done(d, js);
	cJSON_free(js);
}

/* The one reload (SIGHUP and the control socket's "reload"): it runs on the
 * loop from start to end, so two never overlap; a second one asked for
 * meanwhile runs after it, with the policy file as it is then. */
void daemon_reload(struct daemon *d)
{
	struct gen_plan pl = {0};
	struct reload_report rep;
	report_begin(&rep);
	/* systemd: reloading until the READY=1 of either outcome */
	notify_reloading();
	pst_log("info", "reload", "policy", d->policy_path, NULL);
	struct pst_policy *p = reload_policy(d);
	if (!p || gen_prepare(d, p, &pl) < 0)
		goto failed;
	if (gen_bind(d, &pl) < 0 || reload_netpolicy(d, pl.g->policy) < 0) {
		gen_abort(d, &pl);
		goto failed;
	}
	size_t n_sbx = pl.g->n_sbx;
	report_changes(d, &pl, &rep);
	gen_commit(d, &pl);
	d->reloads++;
	char n[32];
	snprintf(n, sizeof(n), "%zu", n_sbx);
	pst_log("info", "reloaded", "policy", d->policy_path, "sandboxes", n, NULL);
	notify_ready(d);
	report_end(d, &rep, true);
	return;
failed:
	d->reload_failures++;
	pst_log("warn", "reload_failed", "policy", d->policy_path, "keeping", "previous policy",
	        NULL);
	notify_ready(d);
	report_end(d, &rep, false);
}
