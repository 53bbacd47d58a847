/* Unit tests: postern top without a terminal (broker/top_model.c,
 * broker/top_draw.c): the status JSON into structs, sorting, rates,
 * columns dropped by priority at 80 and 132 columns, names cut with '~',
 * frames clipped to the screen with the selection kept in view, and
 * hostile strings of the broker's answer kept off the terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/top.h"

/* A status answer with n sandboxes "sbNN" (started = NN * 10 % 7), each
 * with h handlers (pid 1000 + 10 * NN + k, age k seconds). */
static char *status_json(int n, int h, const char *extra_name)
{
	size_t cap = 4096 + (size_t)n * (512 + (size_t)h * 200);
	char *b = malloc(cap);
	size_t at = 0;
	at += (size_t)snprintf(b + at, cap - at,
	                       "{\"postern\":1,\"pid\":4242,\"uptime_s\":3725,\"reloads\":2,"
	                       "\"stopping\":false,\"handlers\":%d,\"sandboxes\":[",
	                       n * h);
	for (int i = 0; i < n; i++) {
		char name[80];
		if (extra_name && i == 0)
			snprintf(name, sizeof(name), "%s", extra_name);
		else
			snprintf(name, sizeof(name), "sb%02d", i);
		at += (size_t)snprintf(
		    b + at, cap - at,
		    "%s{\"name\":\"%s\",\"trigger\":\"listen\",\"listen\":[\"127.0.0.1:%d\","
		    "\"[::1]:%d\"],\"active\":%d,\"limit\":8,\"started\":%d,"
		    "\"refused\":{\"per_source\":1,\"rate\":2,\"spawn_failed\":0},"
		    "\"spawn_us\":{\"p50\":1500,\"p99\":9000,\"samples\":3},"
		    "\"prewarm\":{\"target\":2,\"ready\":1},"
		    "\"exits\":{\"ok\":3,\"failed\":1,\"signaled\":0,\"timeout\":0},"
		    "\"cgroup\":{\"memory_bytes\":%d,\"memory_peak_bytes\":4194304,\"cpu_us\":%d},"
		    "\"handlers\":[",
		    i ? "," : "", name, 7000 + i, 7000 + i, h, i * 10 % 7, 1048576 * (i % 3),
		    1000 * i);
		for (int k = 0; k < h; k++)
			at += (size_t)snprintf(
			    b + at, cap - at,
			    "%s{\"pid\":%d,\"peer\":\"127.0.0.1:%d\",\"age_ms\":%d,"
			    "\"memory_bytes\":2097152,\"cpu_us\":%d,\"pids\":1}",
			    k ? "," : "", 1000 + 10 * i + k, 40000 + k, 1000 * k, 500 * k);
		at += (size_t)snprintf(b + at, cap - at, "]}");
	}
	snprintf(b + at, cap - at, "]}");
	return b;
}

static void parse(struct top_model *m, int n, int h, const char *extra)
{
	char why[256];
	char *js = status_json(n, h, extra);
	assert_int_equal(top_model_parse(js, m, why, sizeof(why)), 0);
	free(js);
}

static void test_fit_80_132(void **state)
{
	(void)state;
	bool shown[TOP_SC__N];
	int w[TOP_SC__N];
	int total = top_fit_columns(top_sbx_cols, TOP_SC__N, 80, shown, w);
	assert_true(total <= 80);
	/* at 80: what an operator looks at first */
	int want80[] = {TOP_SC_NAME, TOP_SC_ACTIVE, TOP_SC_STARTED, TOP_SC_ACC, TOP_SC_REFUSED,
	                TOP_SC_CPU,  TOP_SC_CPUPCT, TOP_SC_MEM,     TOP_SC_P50};
	int gone80[] = {TOP_SC_TRIGGER, TOP_SC_REF,    TOP_SC_WARM,  TOP_SC_P99,
	                TOP_SC_EXITS,   TOP_SC_DENIED, TOP_SC_LISTEN};
	for (size_t i = 0; i < sizeof(want80) / sizeof(*want80); i++)
		assert_true(shown[want80[i]]);
	for (size_t i = 0; i < sizeof(gone80) / sizeof(*gone80); i++)
		assert_false(shown[gone80[i]]);
	assert_true(w[TOP_SC_NAME] > top_sbx_cols[TOP_SC_NAME].width); /* the rest to the name */
	/* at 132: all but the exits */
	total = top_fit_columns(top_sbx_cols, TOP_SC__N, 132, shown, w);
	assert_true(total <= 132);
	for (int i = 0; i < TOP_SC__N; i++)
		assert_int_equal(shown[i], i != TOP_SC_EXITS);
	/* wide: everything */
	total = top_fit_columns(top_sbx_cols, TOP_SC__N, 200, shown, w);
	for (int i = 0; i < TOP_SC__N; i++)
		assert_true(shown[i]);
	assert_int_equal(w[TOP_SC_NAME], top_sbx_cols[TOP_SC_NAME].max);
	/* narrow: what has priority 0 stays */
	top_fit_columns(top_sbx_cols, TOP_SC__N, 20, shown, w);
	for (int i = 0; i < TOP_SC__N; i++)
		assert_int_equal(shown[i], top_sbx_cols[i].prio == 0);

	bool hs[TOP_HC__N];
	int hw[TOP_HC__N];
	total = top_fit_columns(top_h_cols, TOP_HC__N, 80, hs, hw);
	assert_true(total <= 80);
	assert_false(hs[TOP_HC_PEAK]);
	assert_false(hs[TOP_HC_PIDS]);
	assert_true(hs[TOP_HC_PID] && hs[TOP_HC_PEER] && hs[TOP_HC_AGE] && hs[TOP_HC_CPU] &&
	            hs[TOP_HC_MEM] && hs[TOP_HC_SANDBOX]);
	total = top_fit_columns(top_h_cols, TOP_HC__N, 132, hs, hw);
	assert_true(total <= 132);
	for (int i = 0; i < TOP_HC__N; i++)
		assert_true(hs[i]);
	assert_int_equal(hw[TOP_HC_PEER], top_h_cols[TOP_HC_PEER].max);
}

/* A sortable column's header fits with its '*'. */
static void test_sort_marks_fit(void **state)
{
	(void)state;
	for (int i = 0; i < TOP_SC__N; i++)
		if (top_sbx_cols[i].sort >= 0)
			assert_true(strlen(top_sbx_cols[i].head) + 1 <=
			            (size_t)top_sbx_cols[i].width);
	for (int i = 0; i < TOP_HC__N; i++)
		if (top_h_cols[i].sort >= 0)
			assert_true(strlen(top_h_cols[i].head) + 1 <= (size_t)top_h_cols[i].width);
}

static void test_cell(void **state)
{
	(void)state;
	char b[32];
	top_cell(b, "abcdefgh", 5, true);
	assert_string_equal(b, "abcd~");
	top_cell(b, "abcdefgh", 5, false);
	assert_string_equal(b, "abcd~");
	top_cell(b, "abc", 5, true);
	assert_string_equal(b, "abc  ");
	top_cell(b, "abc", 5, false);
	assert_string_equal(b, "  abc");
	top_cell(b, "abcde", 5, true);
	assert_string_equal(b, "abcde");
	top_cell(b, "ab", 1, true);
	assert_string_equal(b, "~");
	top_cell(b, "ab", 0, true);
	assert_string_equal(b, "");
}

static void test_parse_sort(void **state)
{
	(void)state;
	struct top_model m;
	parse(&m, 5, 2, NULL);
	assert_int_equal(m.n_sbx, 5);
	assert_int_equal(m.n_h, 10);
	assert_true(m.pid == 4242 && m.reloads == 2 && m.serving == 10 && m.prewarmed == 5);
	assert_string_equal(m.sbx[1].listen, "127.0.0.1:7001 +1");
	assert_true(m.sbx[1].refused == 3 && m.sbx[1].limit == 8 && m.sbx[1].has_spawn);
	assert_string_equal(m.h[2].sandbox, "sb01");
	assert_true(m.h[3].has_cpu && m.h[3].cpu_us == 500 && m.h[3].has_mem);
	assert_false(m.h[3].has_peak);
	/* started: 0 3 6 2 5 for sb00..sb04: descending */
	top_sort(&m, TOP_S_STARTED, TOP_H_PID);
	const char *order[] = {"sb02", "sb04", "sb01", "sb03", "sb00"};
	for (int i = 0; i < 5; i++)
		assert_string_equal(m.sbx[i].name, order[i]);
	for (size_t i = 1; i < m.n_h; i++)
		assert_true(m.h[i - 1].pid < m.h[i].pid);
	/* memory 0 1M 2M 0 1M: descending, ties by name */
	top_sort(&m, TOP_S_MEM, TOP_H_AGE);
	const char *order2[] = {"sb02", "sb01", "sb04", "sb00", "sb03"};
	for (int i = 0; i < 5; i++)
		assert_string_equal(m.sbx[i].name, order2[i]);
	assert_true(m.h[0].age_ms >= m.h[m.n_h - 1].age_ms);
	assert_true(m.h[0].age_ms == 1000 && m.h[0].pid == 1001); /* ties by pid */
	top_sort(&m, TOP_S_NAME, TOP_H_AGE);
	assert_string_equal(m.sbx[0].name, "sb00");
	assert_string_equal(m.sbx[4].name, "sb04");

	/* rates from the previous poll */
	struct top_model m2;
	parse(&m2, 5, 2, NULL);
	for (size_t i = 0; i < m2.n_sbx; i++)
		m2.sbx[i].started += 4;
	m2.h[1].cpu_us += 20000; /* 20 ms in 0.5 s */
	top_model_rates(&m2, &m, 0.5);
	assert_true(m2.sbx[0].acc_rate == 8);
	assert_true(m2.acc_rate == 40);
	assert_true(m2.h[1].cpu_pct > 3.99 && m2.h[1].cpu_pct < 4.01);
	top_model_free(&m2);
	top_model_free(&m);

	/* an error answer, not JSON */
	char why[256];
	assert_int_equal(top_model_parse("{\"error\":\"unknown request\"}", &m, why, sizeof(why)),
	                 -1);
	assert_string_equal(why, "broker says: unknown request");
	assert_int_equal(top_model_parse("nope", &m, why, sizeof(why)), -1);
}

static int count_lines(const struct top_frame *f, const char *needle)
{
	int n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += strstr(f->line[i], needle) != NULL;
	return n;
}

static const char *marked(const struct top_frame *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->line[i][0] == '>')
			return f->line[i];
	return NULL;
}

static void check_fits(const struct top_frame *f, int cols, int rows)
{
	assert_int_equal(f->n, (size_t)rows);
	for (size_t i = 0; i < f->n; i++) {
		assert_true(strlen(f->line[i]) <= (size_t)cols);
		for (const char *p = f->line[i]; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
	}
}

static void test_draw_80x24(void **state)
{
	(void)state;
	struct top_model m;
	struct top_view v = {.have_model = true};
	struct top_frame f = {0};
	parse(&m, 3, 2, NULL);
	snprintf(v.clock, sizeof(v.clock), "12:00:00");
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	check_fits(&f, 80, 24);
	assert_non_null(strstr(f.line[0], "postern top - pid 4242 - up 1h02m - gen 3"));
	assert_non_null(strstr(f.line[1], "sandboxes 3  handlers 6 serving, 3 pre-warmed"));
	assert_non_null(strstr(f.line[3], "SANDBOX*")); /* sorted by name */
	assert_null(strstr(f.line[3], "LISTEN"));
	assert_non_null(marked(&f));
	assert_non_null(strstr(marked(&f), "sb00"));
	assert_int_equal(count_lines(&f, "127.0.0.1:40001"), 3); /* every handler */
	assert_non_null(strstr(f.line[23], "s sort: name"));
	/* j moves the selection; Enter lists that sandbox's handlers only */
	top_select_move(&m, &v, 1);
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	assert_non_null(strstr(marked(&f), "sb01"));
	v.handlers_view = true;
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	check_fits(&f, 80, 24);
	assert_int_equal(count_lines(&f, " sb00 "), 0);
	assert_int_equal(count_lines(&f, " sb01 "), 3); /* its row and its two handlers */
	assert_non_null(strstr(marked(&f), "1010"));    /* the first handler selected */
	assert_true(v.sel_pid == 1010);
	top_select_move(&m, &v, 5);
	assert_true(v.sel_pid == 1011);
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	assert_non_null(strstr(marked(&f), "1011"));
	assert_non_null(strstr(f.line[23], "Esc back  j/k select  K kill  s sort: age"));
	/* its sandbox gone (a reload): back to all sandboxes */
	v.handlers_view = true;
	snprintf(v.sel_sbx, sizeof(v.sel_sbx), "gone");
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	assert_false(v.handlers_view);
	assert_string_equal(v.sel_sbx, "sb00");
	/* 132x43: more columns, wider peers */
	v.handlers_view = false;
	assert_int_equal(top_draw(&f, &m, &v, 132, 43), 0);
	check_fits(&f, 132, 43);
	assert_non_null(strstr(f.line[3], "LISTEN"));
	top_frame_free(&f);
	top_model_free(&m);
}

/* More rows than the screen: the selection scrolls into view, the
 * handlers are clipped with a count of those left out. */
static void test_draw_scroll(void **state)
{
	(void)state;
	struct top_model m;
	struct top_view v = {.have_model = true};
	struct top_frame f = {0};
	parse(&m, 40, 3, NULL);
	for (int i = 0; i < 30; i++)
		top_select_move(&m, &v, 1);
	assert_string_equal(v.sel_sbx, "sb30");
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	check_fits(&f, 80, 24);
	assert_non_null(strstr(marked(&f), "sb30"));
	assert_true(v.sbx_scroll > 0);
	assert_int_equal(count_lines(&f, "more (Enter a sandbox"), 1);
	/* k back to the top scrolls back */
	for (int i = 0; i < 40; i++)
		top_select_move(&m, &v, -1);
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	assert_non_null(strstr(marked(&f), "sb00"));
	assert_int_equal(v.sbx_scroll, 0);
	/* a tiny screen still gets its lines cut, not wrapped */
	assert_int_equal(top_draw(&f, &m, &v, 25, 6), 0);
	check_fits(&f, 25, 6);
	/* batch: every row, nothing marked */
	assert_int_equal(top_draw(&f, &m, &v, 80, 0), 0);
	assert_int_equal(count_lines(&f, "127.0.0.1:40001"), 40);
	assert_null(marked(&f));
	top_frame_free(&f);
	top_model_free(&m);
}

/* A sandbox name (or a peer) with escape sequences and a long name: on
 * the screen as '?' and cut with '~', never wrapped. */
static void test_hostile_strings(void **state)
{
	(void)state;
	struct top_model m;
	struct top_view v = {.have_model = true};
	struct top_frame f = {0};
	parse(&m, 2, 1,
	      "\\u001b[2J\\u001b]0;owned\\u0007a-very-long-sandbox-name-that-goes-on-and-on");
	assert_null(strchr(m.sbx[0].name, 0x1b));
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	check_fits(&f, 80, 24);
	assert_int_equal(count_lines(&f, "?[2J?]0;own"), 2); /* its row and handler */
	assert_true(count_lines(&f, "~") >= 2);
	top_frame_free(&f);
	top_model_free(&m);
}

/* The broker gone: the header and the alert, empty tables. */
static void test_draw_gone(void **state)
{
	(void)state;
	struct top_model m = {0};
	struct top_view v = {0};
	struct top_frame f = {0};
	snprintf(v.alert, sizeof(v.alert), "broker gone, retrying (3s): connect x: refused");
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	check_fits(&f, 80, 24);
	assert_non_null(strstr(f.line[2], "broker gone, retrying (3s)"));
	assert_int_equal(f.attr[2], TOP_A_ALERT);
	assert_null(marked(&f));
	/* whatever the alert says (a path, an answer), it reaches the screen printable */
	snprintf(v.alert, sizeof(v.alert), "connect /tmp/\033[2J\nx: refused");
	assert_int_equal(top_draw(&f, &m, &v, 80, 24), 0);
	check_fits(&f, 80, 24);
	assert_non_null(strstr(f.line[2], "connect /tmp/?[2J?x: refused"));
	top_frame_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fit_80_132),      cmocka_unit_test(test_cell),
	    cmocka_unit_test(test_sort_marks_fit),  cmocka_unit_test(test_parse_sort),
	    cmocka_unit_test(test_draw_80x24),      cmocka_unit_test(test_draw_scroll),
	    cmocka_unit_test(test_hostile_strings), cmocka_unit_test(test_draw_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
