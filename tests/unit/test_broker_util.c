/* Unit tests: logfmt lines, token bucket, per-source table, latency ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/internal.h"

/* Capture one emitted line through a pipe. */
static void capture(struct pst_logline *l, char *out, size_t outlen)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	int saved = pst_log_fd;
	pst_log_fd = p[1];
	pst_ll_end(l);
	pst_log_fd = saved;
	close(p[1]);
	ssize_t n = read(p[0], out, outlen - 1);
	close(p[0]);
	assert_true(n > 0);
	out[n] = 0;
}

/* The part after "ts=... " */
static const char *after_ts(const char *line)
{
	const char *sp = strchr(line, ' ');
	assert_non_null(sp);
	return sp + 1;
}

static void test_logfmt_plain_and_quoted(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 16];
	pst_ll_begin(&l, "info", "exit");
	pst_ll_str(&l, "sandbox", "echo");
	pst_ll_str(&l, "error", "No such file or directory");
	pst_ll_str(&l, "q", "say \"hi\"\\now");
	pst_ll_str(&l, "empty", "");
	pst_ll_int(&l, "status", -3);
	pst_ll_uint(&l, "n", 18446744073709551615ull);
	pst_ll_ms(&l, "duration_ms", 12345678);
	capture(&l, out, sizeof(out));
	assert_string_equal(
	    after_ts(out),
	    "level=info event=exit sandbox=echo error=\"No such file or directory\" "
	    "q=\"say \\\"hi\\\"\\\\now\" empty=\"\" status=-3 n=18446744073709551615 "
	    "duration_ms=12.345\n");
	assert_memory_equal(out, "ts=", 3);
}

static void test_logfmt_control_chars(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 16];
	pst_ll_begin(&l, "info", "stderr");
	pst_ll_strn(&l, "line",
	            "a\nb\tc\x01"
	            "d=e",
	            9);
	capture(&l, out, sizeof(out));
	assert_string_equal(after_ts(out), "level=info event=stderr line=\"a\\nb\\tc\\x01d=e\"\n");
}

static void test_logfmt_truncates_one_line(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 64];
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	pst_ll_begin(&l, "info", "stderr");
	pst_ll_str(&l, "line", big);
	capture(&l, out, sizeof(out));
	size_t n = strlen(out);
	assert_true(n <= PST_LOG_LINE_MAX);
	assert_int_equal(out[n - 1], '\n');
	assert_non_null(strstr(out, " truncated=1\n"));
	assert_null(memchr(out, '\n', n - 1)); /* exactly one line */
}

/* pst_log_capture(): error lines as the messages a control reload
 * answers with; other levels, and lines after it ends, not taken. */
struct caught {
	char msg[4][512];
	int n;
};

static void catch_msg(void *ctx, const char *msg)
{
	struct caught *c = ctx;
	if (c->n < 4)
		snprintf(c->msg[c->n], sizeof(c->msg[0]), "%s", msg);
	c->n++;
}

static void test_log_capture(void **state)
{
	(void)state;
	struct caught c = {0};
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 1];
	pst_log_capture(catch_msg, &c);
	pst_ll_begin(&l, "error", "reload_invalid");
	pst_ll_str(&l, "error", "/p.json: sandboxes.x: missing required key \"trigger\"");
	capture(&l, out, sizeof(out));
	pst_ll_begin(&l, "error", "load");
	pst_ll_str(&l, "sandbox", "web");
	pst_ll_uint(&l, "uid", 5); /* not part of the message */
	pst_ll_str(&l, "step", "mount");
	pst_ll_str(&l, "error", "/srv: No such file or directory");
	capture(&l, out, sizeof(out));
	/* the log line is as it always is */
	assert_string_equal(after_ts(out), "level=error event=load sandbox=web uid=5 step=mount "
	                                   "error=\"/srv: No such file or directory\"\n");
	pst_ll_begin(&l, "warn", "reload_failed");
	pst_ll_str(&l, "error", "a warning");
	capture(&l, out, sizeof(out));
	pst_ll_begin(&l, "error", "listen");
	pst_ll_str(&l, "what", "127.0.0.1:80");
	pst_ll_str(&l, "error", "Address already in use");
	capture(&l, out, sizeof(out));
	pst_log_capture(NULL, NULL);
	pst_ll_begin(&l, "error", "after");
	pst_ll_str(&l, "error", "not taken");
	capture(&l, out, sizeof(out));
	assert_int_equal(c.n, 3);
	assert_string_equal(c.msg[0], "/p.json: sandboxes.x: missing required key \"trigger\"");
	assert_string_equal(c.msg[1], "sandbox web: step mount: /srv: No such file or directory");
	assert_string_equal(c.msg[2], "127.0.0.1:80: Address already in use");
}

/* json: escapes, numbers, a repeated key as an array, invalid UTF-8 */
static void test_log_json(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 16];
	pst_log_format = PST_LOG_JSON;
	pst_ll_begin(&l, "warn", "stderr");
	pst_ll_strn(&l, "line", "a\"\\\n\x01\x1b[31m\xff\xc3\xa9", 13);
	pst_ll_str(&l, "listen", "127.0.0.1:1");
	pst_ll_str(&l, "listen", "[::1]:1");
	pst_ll_int(&l, "status", -3);
	pst_ll_ms(&l, "ms", 1500000);
	capture(&l, out, sizeof(out));
	pst_log_format = PST_LOG_TEXT;
	const char *rest = strstr(out, "\",\"level\"");
	assert_memory_equal(out, "{\"ts\":\"", 7);
	assert_non_null(rest);
	assert_string_equal(rest, "\",\"level\":\"warn\",\"event\":\"stderr\","
	                          "\"line\":\"a\\\"\\\\\\n\\u0001\\u001b[31m\xef\xbf\xbd\xc3\xa9\","
	                          "\"listen\":[\"127.0.0.1:1\",\"[::1]:1\"],\"status\":-3,"
	                          "\"ms\":1.500}\n");
}

/* logfmt: control bytes as \u00NN; a truncated line keeps its quotes */
static void test_log_logfmt_truncated(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 64], big[PST_LOG_LINE_MAX * 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	big[5] = 0x1b;
	pst_log_format = PST_LOG_LOGFMT;
	pst_ll_begin(&l, "info", "stderr");
	pst_ll_str(&l, "line", big);
	pst_ll_str(&l, "after", "gone");
	capture(&l, out, sizeof(out));
	pst_log_format = PST_LOG_TEXT;
	size_t n = strlen(out);
	assert_true(n <= PST_LOG_LINE_MAX);
	assert_non_null(strstr(out, " line=\"xxxxx\\u001bxx"));
	assert_non_null(strstr(out, "xx\" truncated=1\n"));
	assert_null(strstr(out, "after="));
}

/* json: a truncated line still closes its string and object */
static void test_log_json_truncated(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 64], big[PST_LOG_LINE_MAX * 2];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	pst_log_format = PST_LOG_JSON;
	pst_ll_begin(&l, "info", "stderr");
	pst_ll_str(&l, "a", "1");
	pst_ll_str(&l, "a", "2");
	pst_ll_str(&l, "line", big);
	capture(&l, out, sizeof(out));
	pst_log_format = PST_LOG_TEXT;
	size_t n = strlen(out);
	assert_true(n <= PST_LOG_LINE_MAX);
	assert_non_null(strstr(out, "\"a\":[\"1\",\"2\"],\"line\":\"\\n\\n"));
	assert_non_null(strstr(out, "\\n\",\"truncated\":true}\n"));
	assert_null(memchr(out, '\n', n - 1));
}

/* under journald: the priority first, no ts= */
static void test_log_journal_prefix(void **state)
{
	(void)state;
	struct pst_logline l;
	char out[PST_LOG_LINE_MAX + 16];
	pst_log_journal = true;
	pst_ll_begin(&l, "error", "listen");
	capture(&l, out, sizeof(out));
	assert_string_equal(out, "<3>level=error event=listen\n");
	pst_ll_begin(&l, "debug", "accept");
	capture(&l, out, sizeof(out));
	assert_string_equal(out, "<7>level=debug event=accept\n");
	pst_log_format = PST_LOG_JSON;
	pst_ll_begin(&l, "warn", "x");
	capture(&l, out, sizeof(out));
	assert_memory_equal(out, "<4>{\"ts\":", 9);
	pst_log_format = PST_LOG_TEXT;
	pst_log_journal = false;
	enum pst_log_format f;
	assert_int_equal(pst_log_format_parse("logfmt", &f), 0);
	assert_int_equal(f, PST_LOG_LOGFMT);
	assert_int_not_equal(pst_log_format_parse("JSON", &f), 0);
}

static void test_bucket_rate_and_burst(void **state)
{
	(void)state;
	struct pst_bucket b;
	uint64_t t = 1000000000ull;
	pst_bucket_init(&b, 10.0, t);
	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += pst_bucket_take(&b, t);
	assert_int_equal(ok, 10);                           /* burst of one second */
	assert_false(pst_bucket_take(&b, t + 50000000ull)); /* 0.5 token */
	assert_true(pst_bucket_take(&b, t + 100000000ull)); /* 1 token after 100ms */
	assert_false(pst_bucket_take(&b, t + 100000000ull));
	/* a long pause refills only up to the burst */
	ok = 0;
	for (int i = 0; i < 30; i++)
		ok += pst_bucket_take(&b, t + 100000000000ull);
	assert_int_equal(ok, 10);
}

static void test_bucket_slow_rate_and_unlimited(void **state)
{
	(void)state;
	struct pst_bucket b;
	pst_bucket_init(&b, 0.5, 0); /* one every 2s, burst 1 */
	assert_true(pst_bucket_take(&b, 0));
	assert_false(pst_bucket_take(&b, 1000000000ull));
	assert_true(pst_bucket_take(&b, 2000000000ull));
	pst_bucket_init(&b, 0, 0);
	for (int i = 0; i < 100000; i++)
		assert_true(pst_bucket_take(&b, 0));
}

static void key_of(uint8_t *k, uint32_t v)
{
	memset(k, 0, PST_SRCKEY_LEN);
	k[0] = 2;
	memcpy(k + 1, &v, sizeof(v));
}

static void test_srctab_counts(void **state)
{
	(void)state;
	struct pst_srctab t = {0};
	uint8_t a[PST_SRCKEY_LEN], b[PST_SRCKEY_LEN];
	key_of(a, 0x0100007f);
	key_of(b, 0x0200007f);
	assert_int_equal(pst_srctab_get(&t, a), 0);
	assert_int_equal(pst_srctab_inc(&t, a), 0);
	assert_int_equal(pst_srctab_inc(&t, a), 0);
	assert_int_equal(pst_srctab_inc(&t, b), 0);
	assert_int_equal(pst_srctab_get(&t, a), 2);
	assert_int_equal(pst_srctab_get(&t, b), 1);
	pst_srctab_dec(&t, a);
	pst_srctab_dec(&t, b);
	pst_srctab_dec(&t, b); /* below zero: ignored */
	assert_int_equal(pst_srctab_get(&t, a), 1);
	assert_int_equal(pst_srctab_get(&t, b), 0);
	assert_int_equal(t.used, 1);
	pst_srctab_free(&t);
}

/* Random inc/dec against a plain array: backward-shift deletion must never
 * lose an entry behind a removed one. */
static void test_srctab_against_reference(void **state)
{
	(void)state;
	enum { KEYS = 3000, OPS = 200000 };
	static uint32_t ref[KEYS];
	struct pst_srctab t = {0};
	uint8_t k[PST_SRCKEY_LEN];
	unsigned seed = 12345;

	memset(ref, 0, sizeof(ref));
	for (int i = 0; i < OPS; i++) {
		seed = seed * 1103515245u + 12345u;
		uint32_t key = (seed >> 8) % KEYS;
		key_of(k, key);
		if ((seed >> 4) & 1 || !ref[key]) {
			assert_int_equal(pst_srctab_inc(&t, k), 0);
			ref[key]++;
		} else {
			pst_srctab_dec(&t, k);
			ref[key]--;
		}
	}
	size_t live = 0;
	for (uint32_t i = 0; i < KEYS; i++) {
		key_of(k, i);
		assert_int_equal(pst_srctab_get(&t, k), ref[i]);
		live += ref[i] != 0;
	}
	assert_int_equal(t.used, live);
	pst_srctab_free(&t);
}

static void test_latring_percentiles(void **state)
{
	(void)state;
	struct pst_latring r = {0};
	assert_int_equal(pst_latring_pct(&r, 50), 0);
	for (uint32_t i = 1; i <= 100; i++)
		pst_latring_add(&r, i);
	assert_int_equal(pst_latring_pct(&r, 50), 50);
	assert_int_equal(pst_latring_pct(&r, 99), 99);
	assert_int_equal(pst_latring_pct(&r, 100), 100);
	/* the ring keeps the last PST_LAT_SAMPLES values */
	for (uint32_t i = 0; i < PST_LAT_SAMPLES; i++)
		pst_latring_add(&r, 1000);
	assert_int_equal(r.n, PST_LAT_SAMPLES);
	assert_int_equal(pst_latring_pct(&r, 1), 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_logfmt_plain_and_quoted),
	    cmocka_unit_test(test_logfmt_control_chars),
	    cmocka_unit_test(test_logfmt_truncates_one_line),
	    cmocka_unit_test(test_log_json),
	    cmocka_unit_test(test_log_logfmt_truncated),
	    cmocka_unit_test(test_log_json_truncated),
	    cmocka_unit_test(test_log_journal_prefix),
	    cmocka_unit_test(test_bucket_rate_and_burst),
	    cmocka_unit_test(test_bucket_slow_rate_and_unlimited),
	    cmocka_unit_test(test_srctab_counts),
	    cmocka_unit_test(test_srctab_against_reference),
	    cmocka_unit_test(test_latring_percentiles),
	    cmocka_unit_test(test_log_capture),
	};
	return cmocka_run_group_tests_name("broker_util", tests, NULL, NULL);
}
