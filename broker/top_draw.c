/* SPDX-License-Identifier: MIT */
/* postern top's layout: a frame of lines that fit the width and height. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/top.h"
#include "broker/internal.h"

/* head, width, max, prio, left, sort */
const struct top_col top_sbx_cols[TOP_SC__N] = {
    [TOP_SC_NAME] = {"SANDBOX", 12, 24, 0, true, TOP_S_NAME},
    [TOP_SC_TRIGGER] = {"TRIGGER", 7, 7, 6, true, -1},
    [TOP_SC_ACTIVE] = {"ACT/MAX", 8, 8, 0, false, TOP_S_ACTIVE},
    [TOP_SC_STARTED] = {"STARTED", 8, 8, 1, false, TOP_S_STARTED},
    [TOP_SC_ACC] = {"ACC/s", 6, 6, 2, false, -1},
    [TOP_SC_REFUSED] = {"REFUSED", 8, 8, 2, false, TOP_S_REFUSED},
    [TOP_SC_REF] = {"REF/s", 6, 6, 5, false, -1},
    [TOP_SC_WARM] = {"WARM", 5, 5, 5, false, -1},
    [TOP_SC_CPU] = {"CPU", 8, 8, 3, false, TOP_S_CPU},
    [TOP_SC_CPUPCT] = {"CPU%", 5, 5, 4, false, -1},
    [TOP_SC_MEM] = {"MEM", 7, 7, 3, false, TOP_S_MEM},
    [TOP_SC_P50] = {"P50", 7, 7, 4, false, -1},
    [TOP_SC_P99] = {"P99", 7, 7, 6, false, -1},
    [TOP_SC_EXITS] = {"EXITS ok/f/s/t", 15, 15, 8, false, -1},
    [TOP_SC_DENIED] = {"DENIED", 6, 6, 7, false, -1},
    [TOP_SC_LISTEN] = {"LISTEN", 16, 28, 7, true, -1},
};

const struct top_col top_h_cols[TOP_HC__N] = {
    [TOP_HC_PID] = {"PID", 7, 7, 0, false, TOP_H_PID},
    [TOP_HC_SANDBOX] = {"SANDBOX", 12, 12, 1, true, -1},
    [TOP_HC_PEER] = {"PEER", 21, 46, 0, true, -1},
    [TOP_HC_AGE] = {"AGE", 7, 7, 0, false, TOP_H_AGE},
    [TOP_HC_CPU] = {"CPU", 8, 8, 1, false, TOP_H_CPU},
    [TOP_HC_CPUPCT] = {"CPU%", 5, 5, 2, false, -1},
    [TOP_HC_MEM] = {"MEM", 7, 7, 1, false, TOP_H_MEM},
    [TOP_HC_PEAK] = {"PEAK", 7, 7, 3, false, -1},
    [TOP_HC_PIDS] = {"PIDS", 4, 4, 3, false, -1},
};

int top_fit_columns(const struct top_col *cols, int n, int width, bool *shown, int *widths)
{
	int total = 1; /* the selection marker */
	for (int i = 0; i < n; i++) {
		shown[i] = true;
		widths[i] = cols[i].width;
		total += 1 + widths[i];
	}
	while (total > width) {
		int drop = -1;
		for (int i = 0; i < n; i++)
			if (shown[i] && cols[i].prio > 0 &&
			    (drop < 0 || cols[i].prio >= cols[drop].prio))
				drop = i;
		if (drop < 0)
			break; /* only what is always shown is left: lines are cut */
		shown[drop] = false;
		total -= 1 + widths[drop];
	}
	for (int i = 0; i < n && total < width; i++)
		if (shown[i] && cols[i].max > widths[i]) {
			int more = cols[i].max - widths[i];
			if (more > width - total)
				more = width - total;
			widths[i] += more;
			total += more;
			break;
		}
	return total;
}

void top_cell(char *out, const char *s, int w, bool left)
{
	int len = (int)strlen(s);
	if (w <= 0) {
		out[0] = 0;
		return;
	}
	if (len > w) {
		memcpy(out, s, (size_t)(w - 1));
		out[w - 1] = '~';
	} else if (left) {
		memcpy(out, s, (size_t)len);
		memset(out + len, ' ', (size_t)(w - len));
	} else {
		memset(out, ' ', (size_t)(w - len));
		memcpy(out + (w - len), s, (size_t)len);
	}
	out[w] = 0;
}

/* ---- figures ------------------------------------------------------------- */

static void fmt_us(char *b, size_t n, double us)
{
	if (us >= 600e6)
		snprintf(b, n, "%.0fm%02.0fs", us / 60e6 - 0.5,
		         (double)((long long)(us / 1e6) % 60));
	else if (us >= 1e6)
		snprintf(b, n, "%.2fs", us / 1e6);
	else if (us >= 1000)
		snprintf(b, n, "%.1fms", us / 1000);
	else
		snprintf(b, n, "%.0fus", us);
}

static void fmt_age(char *b, size_t n, double s)
{
	long long t = (long long)s;
	if (t >= 86400)
		snprintf(b, n, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(b, n, "%lldh%02lldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(b, n, "%lldm%02llds", t / 60, t % 60);
	else
		snprintf(b, n, "%.1fs", s);
}

static void sbx_text(char *b, size_t n, int c, const struct top_sandbox *s)
{
	switch (c) {
	case TOP_SC_NAME:
		snprintf(b, n, "%s", s->name);
		break;
	case TOP_SC_TRIGGER:
		snprintf(b, n, "%s", s->trigger);
		break;
	case TOP_SC_ACTIVE:
		snprintf(b, n, "%.0f/%.0f", s->active, s->limit);
		break;
	case TOP_SC_STARTED:
		snprintf(b, n, "%.0f", s->started);
		break;
	case TOP_SC_ACC:
		snprintf(b, n, "%.1f", s->acc_rate);
		break;
	case TOP_SC_REFUSED:
		snprintf(b, n, "%.0f", s->refused);
		break;
	case TOP_SC_REF:
		snprintf(b, n, "%.1f", s->ref_rate);
		break;
	case TOP_SC_WARM:
		if (s->warm_target > 0)
			snprintf(b, n, "%.0f/%.0f", s->warm_ready, s->warm_target);
		else
			snprintf(b, n, "-");
		break;
	case TOP_SC_CPU:
		fmt_us(b, n, s->cpu_us);
		break;
	case TOP_SC_CPUPCT:
		snprintf(b, n, "%.0f", s->cpu_pct);
		break;
	case TOP_SC_MEM:
		pst_fmt_bytes(b, n, s->mem);
		break;
	case TOP_SC_P50:
	case TOP_SC_P99:
		if (s->has_spawn)
			fmt_us(b, n, c == TOP_SC_P50 ? s->p50_us : s->p99_us);
		else
			snprintf(b, n, "-");
		break;
	case TOP_SC_EXITS:
		snprintf(b, n, "%.0f/%.0f/%.0f/%.0f", s->exit_ok, s->exit_failed, s->exit_signaled,
		         s->exit_timeout);
		break;
	case TOP_SC_DENIED:
		if (s->has_denied)
			snprintf(b, n, "%.0f", s->denied);
		else
			snprintf(b, n, "-");
		break;
	default:
		snprintf(b, n, "%s", s->listen[0] ? s->listen : "-");
	}
}

static void h_text(char *b, size_t n, int c, const struct top_handler *h)
{
	switch (c) {
	case TOP_HC_PID:
		snprintf(b, n, "%.0f", h->pid);
		break;
	case TOP_HC_SANDBOX:
		snprintf(b, n, "%s", h->sandbox);
		break;
	case TOP_HC_PEER:
		snprintf(b, n, "%s", h->peer);
		break;
	case TOP_HC_AGE:
		fmt_age(b, n, h->age_ms / 1000);
		break;
	case TOP_HC_CPU:
		if (h->has_cpu)
			fmt_us(b, n, h->cpu_us);
		else
			snprintf(b, n, "-");
		break;
	case TOP_HC_CPUPCT:
		snprintf(b, n, "%.0f", h->cpu_pct);
		break;
	case TOP_HC_MEM:
	case TOP_HC_PEAK:
		if (c == TOP_HC_MEM ? h->has_mem : h->has_peak)
			pst_fmt_bytes(b, n, c == TOP_HC_MEM ? h->mem : h->peak);
		else
			snprintf(b, n, "-");
		break;
	default:
		if (h->has_pids)
			snprintf(b, n, "%.0f", h->pids);
		else
			snprintf(b, n, "-");
	}
}

/* ---- the frame ------------------------------------------------------------ */

static int add_line(struct top_frame *f, int attr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_line(struct top_frame *f, int attr, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		char **l = realloc(f->line, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		f->line = l;
		unsigned char *a = realloc(f->attr, cap);
		if (!a)
			return -ENOMEM;
		f->attr = a;
		f->cap = cap;
	}
	char *out = malloc((size_t)f->cols + 1);
	if (!out)
		return -ENOMEM;
	/* nothing that moves the cursor or talks to the terminal, whoever wrote it */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	int len = (int)strlen(buf);
	/* highlighted lines span the width; the others end where their text does */
	bool pad = attr == TOP_A_HEAD || attr == TOP_A_SEL || attr == TOP_A_TITLE;
	if (len > f->cols || pad)
		top_cell(out, buf, f->cols, true);
	else
		memcpy(out, buf, (size_t)len + 1);
	f->line[f->n] = out;
	f->attr[f->n++] = (unsigned char)attr;
	return 0;
}

void top_frame_free(struct top_frame *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->line[i]);
	free(f->line);
	free(f->attr);
	memset(f, 0, sizeof(*f));
}

/* One table row (or its header, r and h NULL) into buf. */
static void row_text(char *buf, size_t len, const struct top_col *cols, int n, const bool *shown,
                     const int *w, char marker, int sorted, const void *item,
                     void (*text)(char *, size_t, int, const void *))
{
	size_t at = 0;
	buf[at++] = marker;
	for (int i = 0; i < n && at + 2 < len; i++) {
		if (!shown[i])
			continue;
		char t[256], cell[256];
		if (item) {
			text(t, sizeof(t), i, item);
		} else {
			snprintf(t, sizeof(t), "%s%s", cols[i].head,
			         cols[i].sort >= 0 && cols[i].sort == sorted ? "*" : "");
		}
		int cw = w[i] < (int)sizeof(cell) - 1 ? w[i] : (int)sizeof(cell) - 1;
		top_cell(cell, t, cw, cols[i].left);
		at += (size_t)snprintf(buf + at, len - at, " %s", cell);
		if (at >= len)
			at = len - 1;
	}
	buf[at] = 0;
}

static void sbx_text_v(char *b, size_t n, int c, const void *s)
{
	sbx_text(b, n, c, s);
}

static void h_text_v(char *b, size_t n, int c, const void *h)
{
	h_text(b, n, c, h);
}

static int find_sbx(const struct top_model *m, const char *name)
{
	for (size_t i = 0; i < m->n_sbx; i++)
		if (!strcmp(m->sbx[i].name, name))
			return (int)i;
	return -1;
}

size_t top_view_handlers(const struct top_model *m, const struct top_view *v, size_t *idx,
                         size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_h && n < max; i++)
		if (!v->handlers_view || !strcmp(m->h[i].sandbox, v->sel_sbx))
			idx[n++] = i;
	return n;
}

/* The selection onto an existing row: the sandbox by name, in the
 * handlers view the handler by pid (else the first). */
static void fix_selection(const struct top_model *m, struct top_view *v, size_t *hidx, size_t nh,
                          int *sel_s, int *sel_h)
{
	*sel_s = find_sbx(m, v->sel_sbx);
	if (*sel_s < 0 && v->handlers_view && v->have_model)
		v->handlers_view = false; /* its sandbox is gone (a reload): back to all */
	if (*sel_s < 0 && m->n_sbx) {
		*sel_s = 0;
		snprintf(v->sel_sbx, sizeof(v->sel_sbx), "%s", m->sbx[0].name);
	}
	*sel_h = -1;
	for (size_t i = 0; v->handlers_view && i < nh; i++)
		if (m->h[hidx[i]].pid == v->sel_pid)
			*sel_h = (int)i;
	if (v->handlers_view && *sel_h < 0 && nh) {
		*sel_h = 0;
		v->sel_pid = m->h[hidx[0]].pid;
	}
}

void top_select_move(const struct top_model *m, struct top_view *v, int delta)
{
	size_t *hidx = calloc(m->n_h ? m->n_h : 1, sizeof(*hidx));
	if (!hidx)
		return;
	size_t nh = top_view_handlers(m, v, hidx, m->n_h);
	int s, h;
	fix_selection(m, v, hidx, nh, &s, &h);
	if (v->handlers_view && nh) {
		long k = (long)h + delta;
		k = k < 0 ? 0 : k >= (long)nh ? (long)nh - 1 : k;
		v->sel_pid = m->h[hidx[k]].pid;
	} else if (!v->handlers_view && m->n_sbx) {
		long k = (long)s + delta;
		k = k < 0 ? 0 : k >= (long)m->n_sbx ? (long)m->n_sbx - 1 : k;
		snprintf(v->sel_sbx, sizeof(v->sel_sbx), "%s", m->sbx[k].name);
	}
	free(hidx);
}

static int follow(int scroll, int sel, int rows, int n)
{
	if (rows <= 0)
		return 0;
	if (sel >= 0 && sel < scroll)
		scroll = sel;
	if (sel >= scroll + rows)
		scroll = sel - rows + 1;
	if (scroll > n - rows)
		scroll = n - rows;
	return scroll < 0 ? 0 : scroll;
}

static const char *const help_lines[] = {
    "keys:",
    "  Up/Down, j/k    select a sandbox (a handler in a sandbox's view)",
    "  Enter           the selected sandbox and its handlers",
    "  Esc, Backspace  back to all sandboxes",
    "  s               next sort column (its header is marked *)",
    "  K               kill the selected handler (asks y/n)",
    "  p               pause or resume the updates",
    "  ?               this help (any key closes it)",
    "  q, Ctrl-C       quit",
};

static int draw_header(struct top_frame *f, const struct top_model *m, const struct top_view *v,
                       bool batch)
{
	char up[32] = "-";
	if (v->have_model)
		fmt_age(up, sizeof(up), m->uptime_s);
	int r = add_line(f, TOP_A_TITLE, "postern top - pid %.0f - up %s - gen %.0f - %s%s%s",
	                 v->have_model ? m->pid : 0, up, v->have_model ? m->reloads + 1 : 0,
	                 v->clock, v->paused ? " - paused" : "",
	                 v->have_model && m->stopping ? " - STOPPING" : "");
	if (!r)
		r = add_line(
		    f, TOP_A_NORMAL,
		    "sandboxes %zu  handlers %.0f serving, %.0f pre-warmed  accepted %.1f/s  "
		    "refused %.1f/s",
		    m->n_sbx, m->serving, m->prewarmed, m->acc_rate, m->ref_rate);
	if (!r && (!batch || v->alert[0]))
		r = add_line(f, v->alert[0] ? TOP_A_ALERT : TOP_A_NORMAL, "%s", v->alert);
	return r;
}

static int draw_footer(struct top_frame *f, const struct top_view *v)
{
	if (v->handlers_view)
		return add_line(f, TOP_A_HEAD,
		                "Esc back  j/k select  K kill  s sort: %s  p pause  q quit  ? help",
		                top_h_sort_names[v->h_sort]);
	return add_line(f, TOP_A_HEAD,
	                "q quit  ? help  j/k select  Enter handlers  s sort: %s  p pause",
	                top_sbx_sort_names[v->sbx_sort]);
}

/* The sandbox table: rows lines after its header (all in batch mode). */
static int draw_sbx(struct top_frame *f, const struct top_model *m, struct top_view *v, int sel,
                    int rows, bool batch)
{
	bool shown[TOP_SC__N];
	int w[TOP_SC__N];
	char buf[1024];
	top_fit_columns(top_sbx_cols, TOP_SC__N, f->cols, shown, w);
	row_text(buf, sizeof(buf), top_sbx_cols, TOP_SC__N, shown, w, ' ', (int)v->sbx_sort, NULL,
	         sbx_text_v);
	int r = add_line(f, TOP_A_HEAD, "%s", buf);
	int first = 0, n = (int)m->n_sbx;
	if (v->handlers_view && sel >= 0) {
		first = sel;
		n = sel + 1;
	} else if (!batch) {
		v->sbx_scroll = follow(v->sbx_scroll, sel, rows, n);
		first = v->sbx_scroll;
		if (first + rows < n)
			n = first + rows;
	}
	for (int i = first; !r && i < n; i++) {
		/* in the handlers view the selection is a handler's */
		bool is_sel = !batch && i == sel && !v->handlers_view;
		row_text(buf, sizeof(buf), top_sbx_cols, TOP_SC__N, shown, w, is_sel ? '>' : ' ',
		         -1, &m->sbx[i], sbx_text_v);
		r = add_line(f, is_sel ? TOP_A_SEL : TOP_A_NORMAL, "%s", buf);
	}
	return r;
}

/* The handler table: its header and rows lines (all in batch mode). */
static int draw_handlers(struct top_frame *f, const struct top_model *m, struct top_view *v,
                         const size_t *hidx, int nh, int sel, int rows, bool batch)
{
	bool shown[TOP_HC__N];
	int w[TOP_HC__N];
	char buf[1024];
	top_fit_columns(top_h_cols, TOP_HC__N, f->cols, shown, w);
	row_text(buf, sizeof(buf), top_h_cols, TOP_HC__N, shown, w, ' ', (int)v->h_sort, NULL,
	         h_text_v);
	int r = add_line(f, TOP_A_HEAD, "%s", buf);
	int first = 0, n = nh;
	if (!batch) {
		if (!v->handlers_view)
			sel = -1;
		bool more = nh > rows && !v->handlers_view; /* the last line says how many more */
		int show = more ? rows - 1 : rows;
		v->h_scroll = v->handlers_view ? follow(v->h_scroll, sel, show, nh) : 0;
		first = v->h_scroll;
		n = first + show < nh ? first + show : nh;
		for (int i = first; !r && i < n; i++) {
			bool is_sel = i == sel;
			row_text(buf, sizeof(buf), top_h_cols, TOP_HC__N, shown, w,
			         is_sel ? '>' : ' ', -1, &m->h[hidx[i]], h_text_v);
			r = add_line(f, is_sel ? TOP_A_SEL : TOP_A_NORMAL, "%s", buf);
		}
		if (!r && more && rows > 0)
			r = add_line(f, TOP_A_NORMAL,
			             "  ... %d more (Enter a sandbox to see its own)", nh - n);
		return r;
	}
	for (int i = first; !r && i < n; i++) {
		row_text(buf, sizeof(buf), top_h_cols, TOP_HC__N, shown, w, ' ', -1, &m->h[hidx[i]],
		         h_text_v);
		r = add_line(f, TOP_A_NORMAL, "%s", buf);
	}
	return r;
}

int top_draw(struct top_frame *f, const struct top_model *m, struct top_view *v, int cols, int rows)
{
	bool batch = rows <= 0;
	top_frame_free(f);
	f->cols = cols < 1 ? 1 : cols;
	size_t *hidx = calloc(m->n_h ? m->n_h : 1, sizeof(*hidx));
	if (!hidx)
		return -ENOMEM;
	int nh = (int)top_view_handlers(m, v, hidx, m->n_h);
	int sel_s, sel_h;
	fix_selection(m, v, hidx, (size_t)nh, &sel_s, &sel_h);
	int r = draw_header(f, m, v, batch);
	if (!r && v->help && !batch) {
		for (size_t i = 0; !r && i < sizeof(help_lines) / sizeof(help_lines[0]); i++)
			r = add_line(f, TOP_A_NORMAL, "%s", help_lines[i]);
	} else if (!r) {
		/* what is left between the header and the footer, less the two table headers */
		int avail = (int)(rows - f->n - 3);
		int srows = v->handlers_view ? 1 : (int)m->n_sbx;
		if (!batch && srows > avail - nh) {
			srows = avail - nh > avail / 2 ? avail - nh : avail / 2;
			if (srows > (int)m->n_sbx)
				srows = (int)m->n_sbx;
			if (srows < 1)
				srows = 1;
		}
		r = draw_sbx(f, m, v, sel_s, srows, batch);
		if (!r && batch)
			r = add_line(f, TOP_A_NORMAL, "%s", "");
		int hrows = avail - (v->handlers_view ? 1 : srows);
		if (!r && (batch || hrows >= 0))
			r = draw_handlers(f, m, v, hidx, nh, sel_h, hrows, batch);
	}
	free(hidx);
	if (r || batch)
		return r;
	/* clipped to the height; the footer on the last line */
	while (f->n > (size_t)rows - 1 && f->n > 0)
		free(f->line[--f->n]);
	while (f->n < (size_t)rows - 1 && !r)
		r = add_line(f, TOP_A_NORMAL, "%s", "");
	return r ? r : draw_footer(f, v);
}
