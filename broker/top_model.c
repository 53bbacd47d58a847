/* SPDX-License-Identifier: MIT */
/* postern top's model: the status JSON as plain structs, rates, sorting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "broker/top.h"

const char *const top_sbx_sort_names[TOP_S__N] = {"name",    "active", "started",
                                                  "refused", "cpu",    "mem"};
const char *const top_h_sort_names[TOP_H__N] = {"age", "pid", "cpu", "mem"};

static const cJSON *obj(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = obj(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool has(const cJSON *o, const char *k)
{
	return cJSON_IsNumber(obj(o, k));
}

/* A string of the broker's (a peer address, a sandbox name) onto the
 * screen: printable ASCII only, so nothing in it moves the cursor or
 * changes the terminal. */
static void copy_str(char *out, size_t n, const char *s)
{
	size_t i = 0;
	for (; s && s[i] && i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[i] = 0;
}

static void parse_sandbox(const cJSON *s, struct top_sandbox *o)
{
	const cJSON *v = obj(s, "name");
	copy_str(o->name, sizeof(o->name), cJSON_IsString(v) ? v->valuestring : "?");
	v = obj(s, "trigger");
	copy_str(o->trigger, sizeof(o->trigger), cJSON_IsString(v) ? v->valuestring : "");
	const cJSON *li = obj(s, "listen");
	int nl = cJSON_IsArray(li) ? cJSON_GetArraySize(li) : 0;
	const cJSON *first = nl ? cJSON_GetArrayItem(li, 0) : NULL;
	if (cJSON_IsString(first)) {
		char a[TOP_PEER_MAX];
		copy_str(a, sizeof(a), first->valuestring);
		if (nl > 1)
			snprintf(o->listen, sizeof(o->listen), "%.90s +%d", a, nl - 1);
		else
			snprintf(o->listen, sizeof(o->listen), "%s", a);
	}
	o->active = num(s, "active");
	o->limit = num(s, "limit");
	o->started = num(s, "started");
	const cJSON *x;
	cJSON_ArrayForEach(x, obj(s, "refused")) o->refused +=
	    cJSON_IsNumber(x) ? x->valuedouble : 0;
	const cJSON *lat = obj(s, "spawn_us");
	o->has_spawn = num(lat, "samples") > 0;
	o->p50_us = num(lat, "p50");
	o->p99_us = num(lat, "p99");
	const cJSON *pw = obj(s, "prewarm");
	o->warm_ready = num(pw, "ready");
	o->warm_target = num(pw, "target");
	const cJSON *ex = obj(s, "exits");
	o->exit_ok = num(ex, "ok");
	o->exit_failed = num(ex, "failed");
	o->exit_signaled = num(ex, "signaled");
	o->exit_timeout = num(ex, "timeout");
	const cJSON *eg = obj(s, "egress");
	o->has_denied = has(eg, "denied_packets");
	o->denied = num(eg, "denied_packets");
	const cJSON *cg = obj(s, "cgroup");
	o->mem = num(cg, "memory_bytes");
	o->peak = num(cg, "memory_peak_bytes");
	o->cpu_us = num(cg, "cpu_us");
}

static void parse_handler(const cJSON *h, const char *sandbox, struct top_handler *o)
{
	o->pid = num(h, "pid");
	snprintf(o->sandbox, sizeof(o->sandbox), "%s", sandbox);
	const cJSON *p = obj(h, "peer");
	copy_str(o->peer, sizeof(o->peer),
	         cJSON_IsString(p) && p->valuestring[0] ? p->valuestring : "-");
	o->age_ms = num(h, "age_ms");
	o->has_cpu = has(h, "cpu_us");
	o->cpu_us = num(h, "cpu_us");
	o->has_mem = has(h, "memory_bytes");
	o->mem = num(h, "memory_bytes");
	o->has_peak = has(h, "memory_peak_bytes");
	o->peak = num(h, "memory_peak_bytes");
	o->has_pids = has(h, "pids");
	o->pids = num(h, "pids");
}

int top_model_parse(const char *json, struct top_model *m, char *why, size_t whylen)
{
	memset(m, 0, sizeof(*m));
	cJSON *root = cJSON_Parse(json);
	if (!cJSON_IsObject(root)) {
		snprintf(why, whylen, "the broker's answer is not a JSON object");
		cJSON_Delete(root);
		return -1;
	}
	const cJSON *err = obj(root, "error");
	if (cJSON_IsString(err)) {
		char e[200];
		copy_str(e, sizeof(e), err->valuestring);
		snprintf(why, whylen, "broker says: %s", e);
		cJSON_Delete(root);
		return -1;
	}
	m->pid = num(root, "pid");
	m->uptime_s = num(root, "uptime_s");
	m->reloads = num(root, "reloads");
	m->stopping = cJSON_IsTrue(obj(root, "stopping"));
	const cJSON *sbx = obj(root, "sandboxes"), *s, *h;
	size_t ns = 0, nh = 0;
	cJSON_ArrayForEach(s, sbx)
	{
		ns++;
		cJSON_ArrayForEach(h, obj(s, "handlers")) nh++;
	}
	m->sbx = calloc(ns ? ns : 1, sizeof(*m->sbx));
	m->h = calloc(nh ? nh : 1, sizeof(*m->h));
	if (!m->sbx || !m->h) {
		top_model_free(m);
		cJSON_Delete(root);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(s, sbx)
	{
		struct top_sandbox *o = &m->sbx[m->n_sbx++];
		parse_sandbox(s, o);
		cJSON_ArrayForEach(h, obj(s, "handlers"))
		{
			parse_handler(h, o->name, &m->h[m->n_h++]);
			o->n_handlers++;
		}
		m->serving += o->n_handlers;
		m->prewarmed += o->warm_ready;
	}
	cJSON_Delete(root);
	return 0;
}

void top_model_free(struct top_model *m)
{
	free(m->sbx);
	free(m->h);
	memset(m, 0, sizeof(*m));
}

static double rate(double now, double before, double dt)
{
	return now > before ? (now - before) / dt : 0;
}

void top_model_rates(struct top_model *cur, const struct top_model *prev, double dt)
{
	if (!prev || dt <= 0)
		return;
	for (size_t i = 0; i < cur->n_sbx; i++) {
		struct top_sandbox *s = &cur->sbx[i];
		for (size_t j = 0; j < prev->n_sbx; j++) {
			const struct top_sandbox *p = &prev->sbx[j];
			if (strcmp(s->name, p->name) != 0)
				continue;
			s->acc_rate = rate(s->started, p->started, dt);
			s->ref_rate = rate(s->refused, p->refused, dt);
			s->cpu_pct = rate(s->cpu_us, p->cpu_us, dt) / 1e4;
			cur->acc_rate += s->acc_rate;
			cur->ref_rate += s->ref_rate;
			break;
		}
	}
	for (size_t i = 0; i < cur->n_h; i++)
		for (size_t j = 0; j < prev->n_h; j++)
			if (cur->h[i].pid == prev->h[j].pid) {
				cur->h[i].cpu_pct =
				    rate(cur->h[i].cpu_us, prev->h[j].cpu_us, dt) / 1e4;
				break;
			}
}

static int g_sk, g_hk;

static int cmp_num(double a, double b)
{
	return a > b ? -1 : a < b ? 1 : 0; /* descending */
}

static int cmp_sbx(const void *pa, const void *pb)
{
	const struct top_sandbox *a = pa, *b = pb;
	int r = 0;
	switch (g_sk) {
	case TOP_S_ACTIVE:
		r = cmp_num(a->active, b->active);
		break;
	case TOP_S_STARTED:
		r = cmp_num(a->started, b->started);
		break;
	case TOP_S_REFUSED:
		r = cmp_num(a->refused, b->refused);
		break;
	case TOP_S_CPU:
		r = cmp_num(a->cpu_us, b->cpu_us);
		break;
	case TOP_S_MEM:
		r = cmp_num(a->mem, b->mem);
		break;
	default:
		break;
	}
	return r ? r : strcmp(a->name, b->name);
}

static int cmp_h(const void *pa, const void *pb)
{
	const struct top_handler *a = pa, *b = pb;
	int r = 0;
	switch (g_hk) {
	case TOP_H_AGE:
		r = cmp_num(a->age_ms, b->age_ms);
		break;
	case TOP_H_CPU:
		r = cmp_num(a->cpu_us, b->cpu_us);
		break;
	case TOP_H_MEM:
		r = cmp_num(a->mem, b->mem);
		break;
	default:
		break;
	}
	return r ? r : -cmp_num(a->pid, b->pid);
}

void top_sort(struct top_model *m, enum top_sbx_sort sk, enum top_h_sort hk)
{
	g_sk = (int)sk; /* top is single-threaded */
	g_hk = (int)hk;
	if (m->n_sbx > 1)
		qsort(m->sbx, m->n_sbx, sizeof(*m->sbx), cmp_sbx);
	if (m->n_h > 1)
		qsort(m->h, m->n_h, sizeof(*m->h), cmp_h);
}
