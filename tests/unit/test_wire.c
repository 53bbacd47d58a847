/* Unit tests: the parsers of what less trusted peers send (broker/wire.c):
 * a sender's pipe (line framing), an fdpass message's control data, a
 * control-socket request line, a metrics client's HTTP request. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "broker/internal.h"

static void feed(struct pst_lines *b, const char *s, size_t n)
{
	size_t room;
	char *t = pst_lines_tail(b, &room);
	assert_true(n <= room);
	memcpy(t, s, n);
	pst_lines_added(b, n);
}

static void expect_msg(struct pst_lines *b, const char *want)
{
	const char *m;
	size_t n;
	assert_int_equal(pst_lines_next(b, &m, &n), PST_LINES_MSG);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(m, want, n);
}

static void test_lines(void **state)
{
	(void)state;
	struct pst_lines *b = calloc(1, sizeof(*b));
	const char *m;
	size_t n;
	feed(b, "a\nbc\n\nde", 8);
	expect_msg(b, "a");
	expect_msg(b, "bc");
	expect_msg(b, ""); /* an empty line is a message */
	assert_int_equal(pst_lines_next(b, &m, &n), PST_LINES_MORE);
	assert_true(pst_lines_partial(b)); /* "de" */
	feed(b, "f\n", 2);
	expect_msg(b, "def");
	assert_int_equal(pst_lines_next(b, &m, &n), PST_LINES_MORE);
	assert_false(pst_lines_partial(b));
	/* bytes are bytes: a NUL inside a message stays */
	feed(b, "x\0y\n", 4);
	assert_int_equal(pst_lines_next(b, &m, &n), PST_LINES_MSG);
	assert_int_equal(n, 3);
	assert_memory_equal(m, "x\0y", 3);
	free(b);
}

/* A message that does not fit (PST_LINE_MAX bytes without a newline) is
 * reported once and dropped up to its newline, over several reads. */
static void test_lines_too_long(void **state)
{
	(void)state;
	struct pst_lines *b = calloc(1, sizeof(*b));
	char chunk[1000];
	const char *m;
	size_t n, room;
	memset(chunk, 'x', sizeof(chunk));
	int toolong = 0;
	for (int i = 0; i < 12; i++) {
		pst_lines_tail(b, &room);
		feed(b, chunk, room < sizeof(chunk) ? room : sizeof(chunk));
		int ev;
		while ((ev = pst_lines_next(b, &m, &n)) != PST_LINES_MORE) {
			assert_int_equal(ev, PST_LINES_TOOLONG);
			toolong++;
		}
	}
	assert_int_equal(toolong, 1);
	assert_false(pst_lines_partial(b)); /* dropping is not a message */
	feed(b, "tail\nok\n", 8);
	expect_msg(b, "ok"); /* "xxx...tail" went */
	/* the longest message that fits */
	char *big = malloc(PST_LINE_MAX);
	memset(big, 'y', PST_LINE_MAX);
	big[PST_LINE_MAX - 1] = '\n';
	feed(b, big, PST_LINE_MAX);
	assert_int_equal(pst_lines_next(b, &m, &n), PST_LINES_MSG);
	assert_int_equal(n, PST_LINE_MAX - 1);
	free(big);
	free(b);
}

/* control data as recvmsg() may leave it, fds as numbers */
static struct msghdr with_fds(void *buf, size_t cap, const int *fds, int n, int flags)
{
	memset(buf, 0, cap);
	struct msghdr mh = {
	    .msg_control = buf, .msg_controllen = CMSG_SPACE(n * sizeof(int)), .msg_flags = flags};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return mh;
}

static void test_fdpass(void **state)
{
	(void)state;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} cm;
	int fds[8], one[] = {7}, two[] = {7, 9};
	struct msghdr mh = with_fds(&cm, sizeof(cm), one, 1, 0);
	assert_int_equal(pst_fdpass_fds(&mh, fds, 8), 1);
	assert_int_equal(fds[0], 7);
	assert_int_equal(pst_fdpass_check(&mh, 1), 0);
	mh = with_fds(&cm, sizeof(cm), two, 2, 0);
	assert_int_equal(pst_fdpass_fds(&mh, fds, 8), 2);
	assert_int_equal(pst_fdpass_check(&mh, 2), -EBADMSG);
	/* truncated: the kernel closed what did not fit */
	mh = with_fds(&cm, sizeof(cm), one, 1, MSG_CTRUNC);
	assert_int_equal(pst_fdpass_check(&mh, 1), -EMSGSIZE);
	/* no control data at all */
	struct msghdr none = {0};
	assert_int_equal(pst_fdpass_fds(&none, fds, 8), 0);
	assert_int_equal(pst_fdpass_check(&none, 0), -EBADMSG);
	/* a length that claims more than the buffer holds */
	mh = with_fds(&cm, sizeof(cm), one, 1, 0);
	CMSG_FIRSTHDR(&mh)->cmsg_len = 100000;
	assert_true(pst_fdpass_fds(&mh, fds, 8) <= 8);
	/* at most max */
	int many[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	mh = with_fds(&cm, sizeof(cm), many, 8, 0);
	assert_int_equal(pst_fdpass_fds(&mh, fds, 3), 3);
}

static void test_control(void **state)
{
	(void)state;
	struct pst_control_req r;
	assert_int_equal(pst_control_parse("status\n", 7, 4096, &r), PST_CTL_OK);
	assert_string_equal(r.verb, "status");
	assert_string_equal(r.arg, "");
	assert_int_equal(pst_control_parse("status\r\n", 8, 4096, &r), PST_CTL_OK);
	assert_string_equal(r.verb, "status");
	assert_int_equal(pst_control_parse("stat", 4, 4096, &r), PST_CTL_MORE);
	assert_int_equal(pst_control_parse("kill 1234\n", 10, 4096, &r), PST_CTL_OK);
	assert_string_equal(r.verb, "kill");
	assert_string_equal(r.arg, "1234");
	assert_int_equal(pst_control_parse("\n", 1, 4096, &r), PST_CTL_BAD);
	assert_int_equal(pst_control_parse("Status\n", 7, 4096, &r), PST_CTL_BAD);
	assert_int_equal(pst_control_parse("kill 1\x01\n", 8, 4096, &r), PST_CTL_BAD);
	assert_int_equal(pst_control_parse("averyveryverylongverb\n", 22, 4096, &r), PST_CTL_BAD);
	char *big = malloc(4096);
	memset(big, 'a', 4096);
	assert_int_equal(pst_control_parse(big, 4095, 4096, &r), PST_CTL_TOOLONG);
	big[200] = ' ';
	big[4000] = '\n';
	assert_int_equal(pst_control_parse(big, 4095, 4096, &r), PST_CTL_BAD); /* verb too long */
	free(big);
}

/* "kill PID": only a plain decimal pid; nothing a shell or strtol would
 * also take (signs, spaces, hex, leading zeros, overflow, pid 0). */
static void test_pid(void **state)
{
	(void)state;
	pid_t p = -1;
	assert_int_equal(pst_parse_pid("1234", &p), 0);
	assert_int_equal(p, 1234);
	assert_int_equal(pst_parse_pid("1", &p), 0);
	assert_int_equal(p, 1);
	assert_int_equal(pst_parse_pid("2147483647", &p), 0);
	assert_int_equal(p, 2147483647);
	p = 7;
	static const char *const bad[] = {
	    "",     "0",  "-1",  "+5",         "01",          " 5",         "5 ",
	    "0x10", "5a", "1e3", "2147483648", "99999999999", "4294967297", "12\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pst_parse_pid(bad[i], &p), -EINVAL);
		assert_int_equal(p, 7); /* untouched */
	}
	/* through the request parser: the verb, then the pid as the argument */
	struct pst_control_req r;
	assert_int_equal(pst_control_parse("kill  42\n", 9, 4096, &r), PST_CTL_OK);
	assert_string_equal(r.verb, "kill");
	assert_int_equal(pst_parse_pid(r.arg, &p), 0);
	assert_int_equal(p, 42);
	assert_int_equal(pst_control_parse("kill 42 43\n", 11, 4096, &r), PST_CTL_OK);
	assert_int_equal(pst_parse_pid(r.arg, &p), -EINVAL);
}

static void test_http(void **state)
{
	(void)state;
	char path[64];
#define REQ(s) s, sizeof(s) - 1, 4096, path, sizeof(path)
	assert_int_equal(pst_http_parse(REQ("GET /metrics HTTP/1.0\r\n\r\n")), 200);
	assert_string_equal(path, "/metrics");
	assert_int_equal(pst_http_parse(REQ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")), 200);
	assert_int_equal(pst_http_parse(REQ("GET /metrics\n\n")), 200);
	assert_int_equal(pst_http_parse(REQ("GET /nope HTTP/1.0\r\n\r\n")), 200);
	assert_string_equal(path, "/nope");
	assert_int_equal(pst_http_parse(REQ("POST /metrics HTTP/1.0\r\n\r\n")), 405);
	assert_int_equal(pst_http_parse(REQ("GET /metrics HTTP/1.0\r\n")), 0);
	assert_int_equal(pst_http_parse(REQ("\r\n\r\n")), 400);
	assert_int_equal(pst_http_parse(REQ("GET\r\n\r\n")), 400);
	assert_int_equal(pst_http_parse(REQ("GET /x HTTP/2\r\n\r\n")), 400);
	assert_int_equal(pst_http_parse(REQ("GET /\x01 HTTP/1.0\r\n\r\n")), 400);
	assert_int_equal(
	    pst_http_parse(
	        REQ("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
	            "HTTP/1.0\r\n\r\n")),
	    400);
#undef REQ
	char *big = malloc(4096);
	memset(big, 'a', 4096);
	assert_int_equal(pst_http_parse(big, 4095, 4096, path, sizeof(path)), 431);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),  cmocka_unit_test(test_lines_too_long),
	    cmocka_unit_test(test_fdpass), cmocka_unit_test(test_control),
	    cmocka_unit_test(test_pid),    cmocka_unit_test(test_http),
	};
	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
