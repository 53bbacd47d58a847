/* Unit tests: the Prometheus text pieces of the metrics endpoint
 * (broker/prom.c): escaping, the spawn-time histogram, the process figures
 * from /proc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/internal.h"

/* What fn(f) writes, as a malloc'd string. */
#define CAPTURE(out, stmt)                                                                         \
	do {                                                                                       \
		size_t len_;                                                                       \
		FILE *f = open_memstream(&(out), &len_);                                           \
		assert_non_null(f);                                                                \
		stmt;                                                                              \
		assert_int_equal(fclose(f), 0);                                                    \
	} while (0)

static void test_escape(void **state)
{
	(void)state;
	char *out = NULL;
	/* a label value: backslash, double quote and newline, nothing else */
	CAPTURE(out, pst_prom_escape(f, "a\\b\"c\nd} e=", true));
	assert_string_equal(out, "a\\\\b\\\"c\\nd} e=");
	free(out);
	/* a HELP text: backslash and newline; quotes stay */
	CAPTURE(out, pst_prom_escape(f, "x\"y\\z\n# TYPE evil counter", false));
	assert_string_equal(out, "x\"y\\\\z\\n# TYPE evil counter");
	free(out);
	/* one HELP line and one TYPE line, whatever the help says */
	CAPTURE(out, pst_prom_head(f, "m_total", "counter", "two\nlines"));
	assert_string_equal(out, "# HELP m_total two\\nlines\n# TYPE m_total counter\n");
	free(out);
}

static void test_hist_buckets(void **state)
{
	(void)state;
	struct pst_hist h = {0};
	/* the bounds: 100 us .. 10 s, rising */
	assert_int_equal(pst_hist_bounds_ns[0], 100000);
	assert_int_equal(pst_hist_bounds_ns[PST_HIST_BUCKETS - 1], 10000000000ull);
	for (size_t i = 1; i < PST_HIST_BUCKETS; i++)
		assert_true(pst_hist_bounds_ns[i] > pst_hist_bounds_ns[i - 1]);
	pst_hist_add(&h, 0);           /* <= 100 us */
	pst_hist_add(&h, 100000);      /* a bound is inclusive: le="0.0001" */
	pst_hist_add(&h, 100001);      /* the next one */
	pst_hist_add(&h, 3000000);     /* 3 ms: le="0.005" */
	pst_hist_add(&h, 10000000000); /* 10 s: le="10" */
	pst_hist_add(&h, 99000000000); /* 99 s: +Inf only */
	assert_int_equal(h.count, 6);
	assert_int_equal(h.n[0], 2);
	assert_int_equal(h.n[1], 1);
	assert_int_equal(h.n[5], 1);
	assert_int_equal(h.n[PST_HIST_BUCKETS - 1], 1);
	assert_int_equal(h.n[PST_HIST_BUCKETS], 1);
	assert_int_equal(h.sum_ns, 0 + 100000 + 100001 + 3000000 + 10000000000ull + 99000000000ull);

	char *out = NULL;
	CAPTURE(out, pst_prom_hist(f, "x_seconds", "sandbox", "a\"b", &h));
	/* cumulative, le ascending, then +Inf = count; escaped label */
	assert_non_null(strstr(out, "x_seconds_bucket{sandbox=\"a\\\"b\",le=\"0.0001\"} 2\n"
	                            "x_seconds_bucket{sandbox=\"a\\\"b\",le=\"0.00025\"} 3\n"));
	assert_non_null(
	    strstr(out, "le=\"0.0025\"} 3\nx_seconds_bucket{sandbox=\"a\\\"b\",le=\"0.005\"} 4\n"));
	assert_non_null(
	    strstr(out, "le=\"5\"} 4\nx_seconds_bucket{sandbox=\"a\\\"b\",le=\"10\"} 5\n"));
	assert_non_null(strstr(out, "x_seconds_bucket{sandbox=\"a\\\"b\",le=\"+Inf\"} 6\n"
	                            "x_seconds_sum{sandbox=\"a\\\"b\"} 109.003200001\n"
	                            "x_seconds_count{sandbox=\"a\\\"b\"} 6\n"));
	/* 16 bounds and +Inf */
	size_t lines = 0;
	for (const char *p = out; (p = strstr(p, "_bucket{")); p++)
		lines++;
	assert_int_equal(lines, PST_HIST_BUCKETS + 1);
	free(out);
}

/* /proc/self/stat of a process whose name holds ") " and digits. */
static void test_proc_stat_parse(void **state)
{
	(void)state;
	static const char stat[] =
	    "4242 (evil) 1 2 3 (x) R 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 1 0 "
	    "12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
	static const char procstat[] = "\ncpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
	struct pst_proc p;
	assert_int_equal(pst_proc_stat_parse(stat, procstat, 100, 4096, &p), 0);
	assert_true(p.cpu_seconds > 2.999 && p.cpu_seconds < 3.001); /* (250 + 50) / 100 */
	assert_true(p.start_time_seconds > 1700000123.449 && p.start_time_seconds < 1700000123.451);
	assert_int_equal(p.virtual_bytes, 104857600);
	assert_int_equal(p.resident_bytes, 2560ull * 4096);
	/* malformed: no ')', too few fields, no btime, no clock */
	assert_int_equal(pst_proc_stat_parse("4242 evil R 1", procstat, 100, 4096, &p), -1);
	assert_int_equal(pst_proc_stat_parse("1 (a) R 1 2 3", procstat, 100, 4096, &p), -1);
	assert_int_equal(pst_proc_stat_parse(stat, "\ncpu 1\n", 100, 4096, &p), -1);
	assert_int_equal(pst_proc_stat_parse(stat, procstat, 0, 4096, &p), -1);
	assert_int_equal(pst_proc_stat_parse(NULL, procstat, 100, 4096, &p), -1);
}

/* This process, read for real: plausible figures. */
static void test_proc_self(void **state)
{
	(void)state;
	struct pst_proc p;
	assert_int_equal(pst_proc_self(&p), 0);
	assert_true(p.open_fds >= 3 && p.open_fds < p.max_fds);
	assert_true(p.resident_bytes > 100000 && p.resident_bytes <= p.virtual_bytes);
	assert_true(p.start_time_seconds > 1.5e9);
	assert_true(p.cpu_seconds >= 0);
	/* one more fd is counted */
	FILE *f = fopen("/proc/self/stat", "r");
	assert_non_null(f);
	struct pst_proc q;
	assert_int_equal(pst_proc_self(&q), 0);
	assert_int_equal(q.open_fds, p.open_fds + 1);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_hist_buckets),
	    cmocka_unit_test(test_proc_stat_parse),
	    cmocka_unit_test(test_proc_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
