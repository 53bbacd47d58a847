/* SPDX-License-Identifier: MIT */
/*
 * Admission: whether a sandbox takes a request now. Its handlers cap
 * (limits.handlers) is flow control: at the cap its listeners and its
 * channel are no longer read, so the kernel backlog and the senders' pipes
 * hold what comes, and reading resumes when a handler exits. Its per_source
 * cap and rate are refusals: counted, and logged at most once a second per
 * reason. admit() says yes or why not.
 */
#include "broker/daemon_internal.h"

const char *const refusal_names[REFUSE__N] = {"per_source", "rate", "spawn_failed", "shutting_down",
                                              "peer"};

bool sbx_at_capacity(const struct sbx *s)
{
	return s->adm.active >= s->conf->limits.handlers;
}

/* Read its listeners and its channel, or not. */
static void sbx_poll(struct daemon *d, struct sbx *s, bool on)
{
	for (struct listener *ls = d->listeners; ls; ls = ls->next) {
		if (ls->sbx != s)
			continue;
		if (on)
			listener_start(ls);
		else
			listener_stop(ls);
	}
	struct channel *c = s->send.consumes;
	if (!c)
		return;
	if (on && !c->polling && !d->stopping)
		channel_start(c);
	else if (!on && c->polling)
		channel_stop(c);
}

/* Resume reading what brings it requests (it has room again, or it is new). */
void admission_resume(struct daemon *d, struct sbx *s)
{
	sbx_poll(d, s, true);
}

/* Whether s has room for another handler; if not, what brings it
 * requests is no longer read (the caller leaves the next one where it is). */
bool admission_room(struct daemon *d, struct sbx *s)
{
	if (!sbx_at_capacity(s))
		return true;
	sbx_poll(d, s, false);
	return false;
}

static void refuse(struct sbx *s, enum refusal why, const char *label)
{
	s->stats.refused[why]++;
	struct pst_logline l;
	uint64_t sup;
	if (!pst_ll_begin_throttled(&l, &s->stats.log.refuse[why], "warn", "refuse", &sup))
		return;
	pst_ll_str(&l, "sandbox", s->conf->name);
	pst_ll_str(&l, "reason", refusal_names[why]);
	if (label)
		pst_ll_str(&l, "peer", label);
	pst_ll_end_throttled(&l, sup);
}

void admission_refused(struct sbx *s, enum refusal why, const char *label)
{
	refuse(s, why, label);
}

/* Checked in this order: stopping, the handlers cap (before the request
 * is taken from the kernel, admission_room() already said it), then for
 * requests from clients and senders per_source (when the request has a
 * source) and rate. A refusal is counted and logged here; the caller
 * closes the request. */
enum admit admit(struct daemon *d, struct sbx *s, const struct pst_request *req)
{
	if (d->stopping) {
		refuse(s, REFUSE_SHUTDOWN, req->label);
		return ADMIT_STOPPING;
	}
	if (!admission_room(d, s))
		return ADMIT_FULL;
	if (req->trigger == PST_TRIGGER_STARTUP)
		return ADMIT_YES;
	const struct pst_limits *lim = &s->conf->limits;
	if (req->has_src && lim->per_source &&
	    pst_srctab_get(&s->adm.sources, req->src) >= lim->per_source) {
		refuse(s, REFUSE_PER_SOURCE, req->label);
		return ADMIT_PER_SOURCE;
	}
	if (!pst_bucket_take(&s->adm.bucket, pst_now_ns())) {
		refuse(s, REFUSE_RATE, req->label);
		return ADMIT_RATE;
	}
	return ADMIT_YES;
}

/* h took a request of s: it counts against the caps. */
void admission_enter(struct sbx *s, struct handler *h)
{
	s->adm.active++;
	/* without memory for the entry the handler just goes uncounted */
	if (h->has_src)
		h->has_src = pst_srctab_inc(&s->adm.sources, h->src) == 0;
}

/* h of s is gone: its room is free again. */
void admission_leave(struct daemon *d, struct sbx *s, struct handler *h)
{
	bool was_full = sbx_at_capacity(s);
	s->adm.active--;
	if (!s->adm.active)
		prewarm_idle(d, s);
	if (h->has_src)
		pst_srctab_dec(&s->adm.sources, h->src);
	if (was_full && !sbx_at_capacity(s) && s->gen == d->cur)
		admission_resume(d, s);
}

/* A reload: h counts against the sandbox of its name in the new generation. */
void admission_move(struct handler *h, struct sbx *from, struct sbx *to)
{
	from->adm.active--;
	to->adm.active++;
	if (h->has_src) {
		pst_srctab_dec(&from->adm.sources, h->src);
		pst_srctab_inc(&to->adm.sources, h->src);
	}
}
