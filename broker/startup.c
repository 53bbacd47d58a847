/* SPDX-License-Identifier: MIT */
/*
 * Startup handlers: one per startup sandbox, started when its generation
 * comes into force, restarted as its `restart` says with a back-off
 * (100 ms doubling to 30 s while it keeps failing quickly; the tick starts
 * what is due).
 */
#include <stdio.h>

#include "broker/daemon_internal.h"

void startup_start(struct daemon *d, struct sbx *s)
{
	s->restart.at_ns = 0;
	if (d->stopping || s->adm.active)
		return;
	struct pst_request req;
	request_init(&req, PST_TRIGGER_STARTUP);
	snprintf(req.label, sizeof(req.label), "startup");
	if (admit(d, s, &req) != ADMIT_YES)
		return;
	if (handler_spawn(d, s, &req) < 0)
		startup_schedule(d, s, true, 0);
}

/* Its handler ended (or could not start): when to start the next. */
void startup_schedule(struct daemon *d, struct sbx *s, bool failed, uint64_t ran_ns)
{
	enum pst_restart r = s->conf->restart;
	if (d->stopping || s->gen != d->cur || r == PST_RESTART_NO ||
	    (r == PST_RESTART_ON_FAILURE && !failed))
		return;
	/* back off while it keeps failing quickly: 100ms doubling to 30s */
	if (ran_ns > 10000000000ull || !s->restart.backoff_ms)
		s->restart.backoff_ms = 100;
	else if (s->restart.backoff_ms < 30000)
		s->restart.backoff_ms *= 2;
	s->restart.at_ns = pst_now_ns() + s->restart.backoff_ms * 1000000ull;
	char ms[32];
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)s->restart.backoff_ms);
	pst_log("info", "restart_scheduled", "sandbox", s->conf->name, "in_ms", ms, NULL);
}
