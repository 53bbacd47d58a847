/* SPDX-License-Identifier: MIT */
/*
 * postern top without a terminal: the broker's status JSON as plain structs
 * (top_model.c) and a frame of text lines laid out for a width and height
 * (top_draw.c). cli_top.c (linked into the postern binary only, with
 * ncurses) polls the control socket, reads keys and puts the lines on the
 * screen; the unit tests (tests/unit/test_top.c) drive these two alone.
 */
#ifndef POSTERN_BROKER_TOP_H
#define POSTERN_BROKER_TOP_H

#include <stdbool.h>
#include <stddef.h>

/* ---- the model (top_model.c) ---------------------------------------------- */

#define TOP_NAME_MAX 64
#define TOP_PEER_MAX 112

struct top_sandbox {
	char name[TOP_NAME_MAX];
	char trigger[16];
	char listen[TOP_PEER_MAX]; /* the first listen address, "+N" if more */
	double active, limit, started, refused;
	double p50_us, p99_us;
	bool has_spawn;
	double warm_ready, warm_target;
	double exit_ok, exit_failed, exit_signaled, exit_timeout;
	double denied;
	bool has_denied;
	double mem, peak, cpu_us;
	double acc_rate, ref_rate, cpu_pct; /* from the previous poll, else 0 */
	size_t n_handlers;
};

struct top_handler {
	double pid;
	char sandbox[TOP_NAME_MAX];
	char peer[TOP_PEER_MAX];
	double age_ms;
	double cpu_us, mem, peak, pids;
	bool has_cpu, has_mem, has_peak, has_pids;
	double cpu_pct; /* from the previous poll, else 0 */
};

struct top_model {
	double pid, uptime_s, reloads;
	bool stopping;
	double serving, prewarmed;
	double acc_rate, ref_rate;
	size_t n_sbx, n_h;
	struct top_sandbox *sbx;
	struct top_handler *h;
};

/* Parse a `status` answer into m (zeroed first); 0, or -1 with why (an
 * "error" answer: "broker says: ..."). Strings are copied truncated and
 * with every byte outside printable ASCII replaced by '?'. */
int top_model_parse(const char *json, struct top_model *m, char *why, size_t whylen);
void top_model_free(struct top_model *m);
/* Rates of cur from prev, dt seconds before (per sandbox by name, per
 * handler by pid); nothing when prev is NULL or dt <= 0. */
void top_model_rates(struct top_model *cur, const struct top_model *prev, double dt);

enum top_sbx_sort {
	TOP_S_NAME,
	TOP_S_ACTIVE,
	TOP_S_STARTED,
	TOP_S_REFUSED,
	TOP_S_CPU,
	TOP_S_MEM,
	TOP_S__N
};
enum top_h_sort { TOP_H_AGE, TOP_H_PID, TOP_H_CPU, TOP_H_MEM, TOP_H__N };
extern const char *const top_sbx_sort_names[TOP_S__N];
extern const char *const top_h_sort_names[TOP_H__N];
/* Sandboxes by key (name ascending, figures descending, ties by name);
 * handlers by key (pid ascending, figures descending, ties by pid). */
void top_sort(struct top_model *m, enum top_sbx_sort sk, enum top_h_sort hk);

/* ---- the layout (top_draw.c) ---------------------------------------------- */

/* A table's columns: each has a width and a priority (0: always shown);
 * while the row is wider than the screen the column with the highest
 * priority number goes (the rightmost of equals first). The one flexible
 * column (the name, the peer) then takes what is left, up to its max. */
struct top_col {
	const char *head;
	int width, max, prio;
	bool left; /* left-aligned (names), else right-aligned (figures) */
	int sort;  /* the sort key it shows, or -1 */
};

enum {
	TOP_SC_NAME,
	TOP_SC_TRIGGER,
	TOP_SC_ACTIVE,
	TOP_SC_STARTED,
	TOP_SC_ACC,
	TOP_SC_REFUSED,
	TOP_SC_REF,
	TOP_SC_WARM,
	TOP_SC_CPU,
	TOP_SC_CPUPCT,
	TOP_SC_MEM,
	TOP_SC_P50,
	TOP_SC_P99,
	TOP_SC_EXITS,
	TOP_SC_DENIED,
	TOP_SC_LISTEN,
	TOP_SC__N
};
enum {
	TOP_HC_PID,
	TOP_HC_SANDBOX,
	TOP_HC_PEER,
	TOP_HC_AGE,
	TOP_HC_CPU,
	TOP_HC_CPUPCT,
	TOP_HC_MEM,
	TOP_HC_PEAK,
	TOP_HC_PIDS,
	TOP_HC__N
};
extern const struct top_col top_sbx_cols[TOP_SC__N];
extern const struct top_col top_h_cols[TOP_HC__N];

/* Which columns of cols (n) fit in width (one column of the width is the
 * selection marker, one space separates columns): shown[i] and widths[i];
 * returns the row's width. */
int top_fit_columns(const struct top_col *cols, int n, int width, bool *shown, int *widths);

/* s into out as exactly w columns (w + 1 bytes): cut with a final '~' when
 * longer, padded with spaces left or right. */
void top_cell(char *out, const char *s, int w, bool left);

/* What the screen shows, besides the model. */
struct top_view {
	bool handlers_view; /* Enter: the selected sandbox and its handlers */
	char sel_sbx[TOP_NAME_MAX];
	double sel_pid;
	int sbx_scroll, h_scroll; /* first row shown, kept so the selection is seen */
	enum top_sbx_sort sbx_sort;
	enum top_h_sort h_sort;
	bool paused, help;
	char alert[256]; /* "broker gone, retrying (3s)", a kill's outcome, a prompt */
	char clock[16];  /* "12:00:00" */
	bool have_model; /* false: no answer yet or the broker is gone */
};

enum top_attr { TOP_A_NORMAL, TOP_A_TITLE, TOP_A_HEAD, TOP_A_SEL, TOP_A_ALERT };

struct top_frame {
	int cols;
	size_t n, cap;
	char **line; /* each exactly as wide as the screen or less, never more */
	unsigned char *attr;
};

/* Lay out one frame: rows 0 for every row (batch mode: whole tables, no
 * footer); the selection (v->sel_sbx, v->sel_pid) is moved to an existing
 * row and the scroll offsets to show it. 0, or -ENOMEM. */
int top_draw(struct top_frame *f, const struct top_model *m, struct top_view *v, int cols,
             int rows);
void top_frame_free(struct top_frame *f);

/* Selection moves (by delta rows, in the table in focus) after a key. */
void top_select_move(const struct top_model *m, struct top_view *v, int delta);
/* The handlers the view lists, in order: the selected sandbox's in the
 * handlers view, else all; idx receives up to max indexes into m->h. */
size_t top_view_handlers(const struct top_model *m, const struct top_view *v, size_t *idx,
                         size_t max);

#endif
