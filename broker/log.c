/* SPDX-License-Identifier: MIT */
/* logfmt event lines: `ts=... level=... event=... key=value ...` */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/internal.h"

int pst_log_fd = 2;
bool pst_log_debug;

static void ll_putc(struct pst_logline *l, char c)
{
	/* keep room for '\n' */
	if (l->len + 2 > sizeof(l->buf)) {
		l->truncated = true;
		return;
	}
	l->buf[l->len++] = c;
}

static void ll_puts(struct pst_logline *l, const char *s)
{
	while (*s)
		ll_putc(l, *s++);
}

static bool needs_quotes(const char *v, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return true;
	}
	return false;
}

static void ll_value(struct pst_logline *l, const char *v, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	if (!needs_quotes(v, n)) {
		for (size_t i = 0; i < n; i++)
			ll_putc(l, v[i]);
		return;
	}
	ll_putc(l, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\') {
			ll_putc(l, '\\');
			ll_putc(l, (char)c);
		} else if (c == '\n') {
			ll_puts(l, "\\n");
		} else if (c == '\t') {
			ll_puts(l, "\\t");
		} else if (c < ' ' || c == 0x7f) {
			ll_puts(l, "\\x");
			ll_putc(l, hex[c >> 4]);
			ll_putc(l, hex[c & 15]);
		} else {
			ll_putc(l, (char)c);	/* UTF-8 passes through */
		}
	}
	ll_putc(l, '"');
}

static void ll_key(struct pst_logline *l, const char *key)
{
	ll_putc(l, ' ');
	ll_puts(l, key);
	ll_putc(l, '=');
}

void pst_ll_begin(struct pst_logline *l, const char *level, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char tbuf[64];

	l->len = 0;
	l->truncated = false;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tbuf + n, sizeof(tbuf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	ll_puts(l, "ts=");
	ll_puts(l, tbuf);
	ll_key(l, "level");
	ll_puts(l, level);
	ll_key(l, "event");
	ll_puts(l, event);
}

void pst_ll_strn(struct pst_logline *l, const char *key, const char *val, size_t n)
{
	ll_key(l, key);
	ll_value(l, val ? val : "", val ? n : 0);
}

void pst_ll_str(struct pst_logline *l, const char *key, const char *val)
{
	pst_ll_strn(l, key, val, val ? strlen(val) : 0);
}

void pst_ll_int(struct pst_logline *l, const char *key, long long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", v);
	ll_key(l, key);
	ll_puts(l, b);
}

void pst_ll_uint(struct pst_logline *l, const char *key, unsigned long long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%llu", v);
	ll_key(l, key);
	ll_puts(l, b);
}

void pst_ll_ms(struct pst_logline *l, const char *key, uint64_t ns)
{
	char b[48];
	snprintf(b, sizeof(b), "%" PRIu64 ".%03" PRIu64, ns / 1000000, (ns / 1000) % 1000);
	ll_key(l, key);
	ll_puts(l, b);
}

void pst_ll_end(struct pst_logline *l)
{
	if (l->truncated) {
		/* make room for the marker */
		static const char mark[] = " truncated=1";
		if (l->len > sizeof(l->buf) - sizeof(mark) - 1)
			l->len = sizeof(l->buf) - sizeof(mark) - 1;
		memcpy(l->buf + l->len, mark, sizeof(mark) - 1);
		l->len += sizeof(mark) - 1;
	}
	l->buf[l->len++] = '\n';
	size_t off = 0;
	while (off < l->len) {
		ssize_t w = write(pst_log_fd, l->buf + off, l->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;	/* a log sink that fails must not stop the broker */
		off += (size_t)w;
	}
}

void pst_log(const char *level, const char *event, ...)
{
	struct pst_logline l;
	va_list ap;

	pst_ll_begin(&l, level, event);
	va_start(ap, event);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		pst_ll_str(&l, k, va_arg(ap, const char *));
	}
	va_end(ap);
	pst_ll_end(&l);
}
