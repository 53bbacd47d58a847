/* SPDX-License-Identifier: MIT */
/*
 * What the broker says of itself: the status JSON of the control socket
 * (`postern status --json`) and the Prometheus text of the metrics
 * endpoint, both read from the generation in force and the live handlers.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "broker/daemon_internal.h"

const char *const trigger_names[5] = {"", "listen", "pipe", "fdpass", "startup"};
static const char *const cg_modes[] = {"none", "v1", "v2"};

static size_t serving_handlers(const struct daemon *d)
{
	size_t n = 0; /* pre-warmed ones wait; they are counted per sandbox */
	for (const struct handler *h = d->handlers; h; h = h->next)
		n += handler_served(h);
	return n;
}

/* Connections to s's listeners its client address rules refused (the
 * nftables counter, one netlink request: a listen sandbox only). */
static int refused_address(const struct daemon *d, const struct sbx *s, uint64_t *out,
                           struct netpolicy_error *ne)
{
	*out = 0;
	if (!d->np || s->conf->trigger != PST_TRIGGER_LISTEN)
		return 0;
	return netpolicy_refused_address(d->np, s->conf->name, out, ne);
}

/* ---- status JSON ---------------------------------------------------------- */

static void status_spawn(cJSON *o, const struct sbx *s)
{
	const struct sbx_stats *st = &s->stats;
	cJSON *lat = cJSON_AddObjectToObject(o, "spawn_us");
	cJSON_AddNumberToObject(lat, "p50", pst_latring_pct(&st->lat, 50));
	cJSON_AddNumberToObject(lat, "p99", pst_latring_pct(&st->lat, 99));
	cJSON_AddNumberToObject(lat, "samples", (double)st->lat.n);
	/* where a fresh spawn's time goes, mean per phase */
	cJSON *ph = cJSON_AddObjectToObject(o, "spawn_phases_us");
	for (int k = 0; k < SANDBOX_PHASE_COUNT; k++)
		cJSON_AddNumberToObject(
		    ph, sandbox_phase_names[k],
		    st->phase_n ? (double)(st->phase_sum_ns[k] / st->phase_n / 1000) : 0);
	cJSON_AddNumberToObject(ph, "samples", (double)st->phase_n);
}

static void status_prewarm(cJSON *o, const struct daemon *d, const struct sbx *s)
{
	cJSON *pw = cJSON_AddObjectToObject(o, "prewarm");
	cJSON_AddNumberToObject(pw, "target", s->conf->prewarm);
	cJSON_AddNumberToObject(pw, "ready", s->warm.n_ready);
	cJSON_AddNumberToObject(pw, "starting", s->warm.n_warm - s->warm.n_ready);
	cJSON_AddNumberToObject(pw, "used", (double)s->stats.warm_used);
	cJSON_AddNumberToObject(pw, "failed", (double)s->stats.warm_failed);
	cJSON *pp = cJSON_AddArrayToObject(pw, "pids");
	unsigned execd = 0;
	for (const struct handler *h = d->handlers; h; h = h->next)
		if (h->sbx == s && handler_waiting(h)) {
			cJSON_AddItemToArray(pp, cJSON_CreateNumber(h->h.pid));
			execd += h->state == H_READY && h->h.preloaded;
		}
	cJSON_AddNumberToObject(pw, "execd", execd);
}

static void status_exits_egress(cJSON *o, const struct daemon *d, const struct sbx *s)
{
	cJSON *ex = cJSON_AddObjectToObject(o, "exits");
	cJSON_AddNumberToObject(ex, "ok", (double)s->stats.exit_ok);
	cJSON_AddNumberToObject(ex, "failed", (double)s->stats.exit_failed);
	cJSON_AddNumberToObject(ex, "signaled", (double)s->stats.exit_signaled);
	cJSON_AddNumberToObject(ex, "timeout", (double)s->stats.exit_timeout);
	if (d->np && s->conf->n_egress) {
		struct netpolicy_counters nc = {0};
		struct netpolicy_error ne = {0};
		cJSON *eg = cJSON_AddObjectToObject(o, "egress");
		if (netpolicy_counters(d->np, s->conf->name, &nc, &ne) == 0) {
			cJSON_AddNumberToObject(eg, "denied_packets", (double)nc.denied_packets);
			cJSON_AddNumberToObject(eg, "accepted_new", (double)nc.accepted_new);
		} else {
			cJSON_AddStringToObject(eg, "error", ne.msg);
		}
	}
	const struct channel *c = s->send.consumes;
	if (c) {
		cJSON *ch = cJSON_AddObjectToObject(o, "channel_stats");
		cJSON_AddNumberToObject(ch, "messages", (double)c->messages);
		cJSON_AddNumberToObject(ch, "dropped", (double)c->dropped);
		cJSON_AddNumberToObject(ch, "senders", c->n_endpoints);
	}
}

static void status_handler_cg(cJSON *ho, const struct sandbox_cg_stats *cs)
{
	if (cs->has & SANDBOX_CG_HAS_MEMORY)
		cJSON_AddNumberToObject(ho, "memory_bytes", (double)cs->mem_current);
	if (cs->has & SANDBOX_CG_HAS_PEAK)
		cJSON_AddNumberToObject(ho, "memory_peak_bytes", (double)cs->mem_peak);
	if (cs->has & SANDBOX_CG_HAS_CPU)
		cJSON_AddNumberToObject(ho, "cpu_us", (double)cs->cpu_usec);
	if (cs->has & SANDBOX_CG_HAS_PIDS)
		cJSON_AddNumberToObject(ho, "pids", cs->pids);
	if (cs->has & SANDBOX_CG_HAS_OOM)
		cJSON_AddNumberToObject(ho, "oom_kills", cs->oom_kills);
}

/* Its running handlers, and the figures of their cgroups: the exited
 * ones' and, read now, the running ones'. */
static void status_handlers(cJSON *o, const struct daemon *d, const struct sbx *s, uint64_t now)
{
	uint64_t mem = 0, cpu = s->stats.cg.cpu_usec, oom = s->stats.cg.oom_kills;
	uint64_t peak = s->stats.cg.mem_peak;
	cJSON *hs = cJSON_AddArrayToObject(o, "handlers");
	for (const struct handler *h = d->handlers; h; h = h->next) {
		if (h->sbx != s || !handler_served(h))
			continue;
		cJSON *ho = cJSON_CreateObject();
		cJSON_AddItemToArray(hs, ho);
		cJSON_AddNumberToObject(ho, "pid", h->h.pid);
		cJSON_AddStringToObject(ho, "peer", h->peer);
		cJSON_AddNumberToObject(ho, "age_ms", (double)((now - h->start_ns) / 1000000ull));
		struct sandbox_cg_stats cs;
		if (sandbox_cg_stats(&h->h, &cs) < 0)
			continue;
		status_handler_cg(ho, &cs);
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
	cJSON_AddNumberToObject(cgo, "oom_killed_handlers", (double)s->stats.cg.oom_handlers);
}

static void status_sandbox(cJSON *arr, const struct daemon *d, const struct sbx *s, uint64_t now)
{
	const struct pst_sandbox *sc = s->conf;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToArray(arr, o);
	cJSON_AddStringToObject(o, "name", sc->name);
	cJSON_AddStringToObject(o, "trigger", trigger_names[sc->trigger]);
	cJSON *li = cJSON_AddArrayToObject(o, "listen");
	for (size_t j = 0; j < sc->n_listen; j++)
		cJSON_AddItemToArray(li, cJSON_CreateString(sc->listen[j].text));
	if (sc->channel)
		cJSON_AddStringToObject(o, "channel", sc->channel);
	cJSON_AddNumberToObject(o, "active", s->adm.active);
	cJSON_AddNumberToObject(o, "limit", sc->limits.handlers);
	cJSON_AddNumberToObject(o, "started", (double)s->stats.started);
	cJSON *ref = cJSON_AddObjectToObject(o, "refused");
	for (int r = 0; r < REFUSE__N; r++)
		cJSON_AddNumberToObject(ref, refusal_names[r], (double)s->stats.refused[r]);
	uint64_t addr = 0;
	struct netpolicy_error ne = {0};
	if (refused_address(d, s, &addr, &ne) < 0)
		cJSON_AddStringToObject(ref, "address_error", ne.msg);
	cJSON_AddNumberToObject(ref, "address", (double)addr);
	status_spawn(o, s);
	status_prewarm(o, d, s);
	status_exits_egress(o, d, s);
	status_handlers(o, d, s, now);
}

char *stats_status_json(struct daemon *d)
{
	cJSON *root = cJSON_CreateObject();
	uint64_t now = pst_now_ns();
	struct gen *g = d->cur;

	cJSON_AddNumberToObject(root, "postern", 1);
	cJSON_AddNumberToObject(root, "pid", getpid());
	cJSON_AddStringToObject(root, "policy", d->policy_path);
	cJSON_AddNumberToObject(root, "uptime_s", (double)((now - d->started_ns) / 1000000000ull));
	cJSON_AddBoolToObject(root, "stopping", d->stopping);
	cJSON_AddNumberToObject(root, "handlers", (double)serving_handlers(d));
	cJSON_AddNumberToObject(root, "reloads", (double)d->reloads);
	cJSON_AddNumberToObject(root, "reload_failures", (double)d->reload_failures);
	cJSON_AddNumberToObject(root, "log_dropped", (double)pst_log_dropped());
	cJSON *arr = cJSON_AddArrayToObject(root, "sandboxes");
	for (size_t i = 0; g && i < g->n_sbx; i++)
		status_sandbox(arr, d, &g->sbx[i], now);
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

/* ---- Prometheus text ------------------------------------------------------
 * The exposition format 0.0.4, as `promtool check metrics` wants it: each
 * family once, with HELP and TYPE; counters end in _total; units in names;
 * every label value escaped (pst_prom_escape). */

/* postern_build_info and the process_* families of the client libraries,
 * from /proc/self (left out if it cannot be read). */
static void metrics_process(FILE *f)
{
	pst_prom_head(f, "postern_build_info", "gauge",
	              "Always 1; the labels say which postern this is.");
	fputs("postern_build_info{version=\"", f);
	pst_prom_escape(f, PST_VERSION, true);
	fprintf(f, "\",policy_version=\"%d\",compiler=\"", PST_POLICY_VERSION);
	pst_prom_escape(f, __VERSION__, true);
	fputs("\"} 1\n", f);
	struct pst_proc p;
	if (pst_proc_self(&p) < 0)
		return;
	pst_prom_head(f, "process_cpu_seconds_total", "counter",
	              "Total user and system CPU time spent in seconds.");
	fprintf(f, "process_cpu_seconds_total %.2f\n", p.cpu_seconds);
	pst_prom_head(f, "process_resident_memory_bytes", "gauge",
	              "Resident memory size in bytes.");
	fprintf(f, "process_resident_memory_bytes %llu\n", p.resident_bytes);
	pst_prom_head(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	fprintf(f, "process_virtual_memory_bytes %llu\n", p.virtual_bytes);
	pst_prom_head(f, "process_open_fds", "gauge", "Number of open file descriptors.");
	fprintf(f, "process_open_fds %llu\n", p.open_fds);
	pst_prom_head(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
	fprintf(f, "process_max_fds %llu\n", p.max_fds);
	pst_prom_head(f, "process_start_time_seconds", "gauge",
	              "Start time of the process since unix epoch in seconds.");
	fprintf(f, "process_start_time_seconds %.2f\n", p.start_time_seconds);
}

static void metrics_globals(FILE *f, const struct daemon *d, uint64_t now)
{
	pst_prom_head(f, "postern_uptime_seconds", "gauge", "Seconds since the broker started.");
	fprintf(f, "postern_uptime_seconds %llu\n",
	        (unsigned long long)((now - d->started_ns) / 1000000000ull));
	pst_prom_head(f, "postern_reloads_total", "counter", "Policy reloads that took effect.");
	fprintf(f, "postern_reloads_total %llu\n", (unsigned long long)d->reloads);
	pst_prom_head(f, "postern_reload_failures_total", "counter",
	              "Policy reloads refused or failed.");
	fprintf(f, "postern_reload_failures_total %llu\n", (unsigned long long)d->reload_failures);
	pst_prom_head(f, "postern_handlers", "gauge", "Handlers serving a request, all sandboxes.");
	fprintf(f, "postern_handlers %zu\n", serving_handlers(d));
	pst_prom_head(f, "postern_log_dropped_lines_total", "counter",
	              "Log lines dropped because the log sink was too slow.");
	fprintf(f, "postern_log_dropped_lines_total %llu\n", (unsigned long long)pst_log_dropped());
}

static const struct {
	const char *name, *type, *help;
} per[] = {
    {"postern_sandbox_active", "gauge", "Handlers of the sandbox serving a request."},
    {"postern_sandbox_limit", "gauge", "limits.handlers of the sandbox."},
    {"postern_sandbox_started_total", "counter",
     "Handlers started (spawned or pre-warmed and released)."},
    {"postern_sandbox_refused_total", "counter", "Requests refused, by reason."},
    {"postern_sandbox_exits_total", "counter", "Handler exits, by result."},
    {"postern_spawn_seconds", "histogram",
     "Time from a request's admission to its handler running (spawned or released)."},
    {"postern_sandbox_spawn_phase_seconds", "gauge", "Mean time of each phase of a fresh spawn."},
    {"postern_sandbox_prewarm_ready", "gauge", "Pre-warmed handlers ready."},
    {"postern_sandbox_prewarm_used_total", "counter", "Requests taken by pre-warmed handlers."},
    {"postern_sandbox_prewarm_failed_total", "counter",
     "Pre-warmed handlers whose set-up failed or that died waiting."},
    {"postern_sandbox_egress_denied_packets_total", "counter",
     "Packets the sandbox's egress rules rejected."},
    {"postern_sandbox_cpu_seconds_total", "counter",
     "CPU time of the sandbox's handlers (their cgroups), exited and running."},
    {"postern_sandbox_memory_bytes", "gauge",
     "Memory its running handlers use now (their cgroups)."},
    {"postern_sandbox_oom_kills_total", "counter",
     "Processes of its handlers the OOM killer killed (memory limit)."},
};
enum {
	ACTIVE,
	LIMIT,
	STARTED,
	REFUSED,
	EXITS,
	SPAWN,
	PHASE,
	PW_READY,
	PW_USED,
	PW_FAILED,
	DENIED,
	CG_CPU,
	CG_MEM,
	CG_OOM,
	NPER
};

/* `NAME{sandbox="N"` (escaped): the caller ends the labels and the line. */
static void metric_open(FILE *f, int k, const char *n)
{
	fprintf(f, "%s{sandbox=\"", per[k].name);
	pst_prom_escape(f, n, true);
	fputc('"', f);
}

static void metric_u(FILE *f, int k, const char *n, unsigned long long v)
{
	metric_open(f, k, n);
	fprintf(f, "} %llu\n", v);
}

/* One line of metric k with a second label (its value a constant name). */
static void metric_l2(FILE *f, int k, const char *n, const char *label, const char *value,
                      const char *num)
{
	metric_open(f, k, n);
	fprintf(f, ",%s=\"", label);
	pst_prom_escape(f, value, true);
	fprintf(f, "\"} %s\n", num);
}

/* The lines of metric k with several labels. */
static void metric_multi(FILE *f, const struct daemon *d, int k, const struct sbx *s, const char *n)
{
	const struct sbx_stats *st = &s->stats;
	char num[32];
	if (k == REFUSED) {
		for (int r = 0; r < REFUSE__N; r++) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)st->refused[r]);
			metric_l2(f, k, n, "reason", refusal_names[r], num);
		}
		uint64_t addr = 0;
		struct netpolicy_error ne = {0};
		if (refused_address(d, s, &addr, &ne) == 0) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)addr);
			metric_l2(f, k, n, "reason", "address", num);
		}
	} else if (k == EXITS) {
		const uint64_t v[] = {st->exit_ok, st->exit_failed, st->exit_signaled,
		                      st->exit_timeout};
		static const char *const r[] = {"ok", "failed", "signaled", "timeout"};
		for (int j = 0; j < 4; j++) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)v[j]);
			metric_l2(f, k, n, "result", r[j], num);
		}
	} else if (k == SPAWN) {
		pst_prom_hist(f, per[k].name, "sandbox", n, &st->spawn);
	} else if (k == PHASE) {
		for (int j = 0; st->phase_n && j < SANDBOX_PHASE_COUNT; j++) {
			snprintf(num, sizeof(num), "%.6f",
			         (double)st->phase_sum_ns[j] / (double)st->phase_n / 1e9);
			metric_l2(f, k, n, "phase", sandbox_phase_names[j], num);
		}
	}
}

/* The line(s) of metric k for one sandbox; live: its running handlers'
 * cgroup figures, or NULL. */
static void metric_line(FILE *f, const struct daemon *d, int k, const struct sbx *s,
                        const struct sandbox_cg_stats *live)
{
	const char *n = s->conf->name;
	const struct sbx_stats *st = &s->stats;
	switch (k) {
	case ACTIVE:
		metric_u(f, k, n, s->adm.active);
		break;
	case LIMIT:
		metric_u(f, k, n, s->conf->limits.handlers);
		break;
	case STARTED:
		metric_u(f, k, n, st->started);
		break;
	case PW_READY:
		metric_u(f, k, n, s->warm.n_ready);
		break;
	case PW_USED:
		metric_u(f, k, n, st->warm_used);
		break;
	case PW_FAILED:
		metric_u(f, k, n, st->warm_failed);
		break;
	case DENIED: {
		struct netpolicy_counters nc = {0};
		struct netpolicy_error ne = {0};
		if (d->np && s->conf->n_egress && netpolicy_counters(d->np, n, &nc, &ne) == 0)
			metric_u(f, k, n, nc.denied_packets);
		break;
	}
	case CG_CPU:
		metric_open(f, k, n);
		fprintf(f, "} %.6f\n",
		        (double)(st->cg.cpu_usec + (live ? live->cpu_usec : 0)) / 1e6);
		break;
	case CG_MEM:
		metric_u(f, k, n, live ? live->mem_current : 0);
		break;
	case CG_OOM:
		metric_u(f, k, n, st->cg.oom_kills + (live ? live->oom_kills : 0));
		break;
	default:
		metric_multi(f, d, k, s, n);
	}
}

/* The running handlers' cgroup figures, per sandbox of g (malloc'd; NULL
 * without memory, then left out). */
static struct sandbox_cg_stats *live_cg(const struct daemon *d, const struct gen *g)
{
	struct sandbox_cg_stats *live = calloc(g->n_sbx ? g->n_sbx : 1, sizeof(*live));
	for (size_t i = 0; live && i < g->n_sbx; i++)
		for (const struct handler *h = d->handlers; h; h = h->next) {
			struct sandbox_cg_stats cs;
			if (h->sbx != &g->sbx[i] || !handler_served(h) ||
			    sandbox_cg_stats(&h->h, &cs) < 0)
				continue;
			live[i].cpu_usec += cs.cpu_usec;
			live[i].mem_current += cs.mem_current;
			live[i].oom_kills += cs.oom_kills;
		}
	return live;
}

char *stats_metrics_text(struct daemon *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	struct gen *g = d->cur;
	metrics_process(f);
	metrics_globals(f, d, pst_now_ns());
	cleanup_free struct sandbox_cg_stats *live = g ? live_cg(d, g) : NULL;
	for (int k = 0; k < NPER; k++) {
		pst_prom_head(f, per[k].name, per[k].type, per[k].help);
		for (size_t i = 0; g && i < g->n_sbx; i++)
			metric_line(f, d, k, &g->sbx[i], live ? &live[i] : NULL);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
