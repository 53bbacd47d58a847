/* SPDX-License-Identifier: MIT */
/*
 * logfmt event lines: `ts=... level=... event=... key=value ...`, and where
 * they go. Until pst_log_nonblock_start() each line is one blocking
 * write(2). After it the broker never waits for its log sink (a journal
 * under pressure, a pipe nobody reads): lines are written at once while the
 * sink takes them, through a description of the sink of the broker's own
 * made non-blocking (a pipe, FIFO or terminal is opened again through
 * /proc/self/fd, so the O_NONBLOCK is not the shell's; a socket gets
 * MSG_DONTWAIT); what the sink does not take waits, in order, in a bounded
 * buffer that the caller flushes when the sink is writable again. A line
 * that does not fit is dropped and counted; once the buffer empties a
 * log_dropped line says how many went.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/internal.h"

int pst_log_fd = 2;
bool pst_log_debug;
enum pst_log_format pst_log_format = PST_LOG_TEXT;
bool pst_log_journal;

int pst_log_format_parse(const char *name, enum pst_log_format *out)
{
	static const char *const names[] = {"text", "logfmt", "json"};
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, names[i])) {
			*out = (enum pst_log_format)i;
			return 0;
		}
	return -EINVAL;
}

void pst_log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	char end;
	struct stat st;
	pst_log_journal = js && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
	                  fstat(pst_log_fd, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	                  (unsigned long long)st.st_ino == ino;
}

static struct {
	pthread_mutex_t lock;
	bool on;
	int fd;      /* the sink, non-blocking */
	bool own_fd; /* fd is ours to close */
	bool sock;   /* a socket: send(MSG_DONTWAIT) */
	char *buf;
	size_t cap, head, len; /* bytes [head, head + len) mod cap wait */
	uint64_t dropped, unreported;
	void (*pending)(bool on, int fd, void *ctx);
	void *ctx;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static void ll_finish(struct pst_logline *l);

static void write_all(const char *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(pst_log_fd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* a log sink that fails must not stop the broker */
		off += (size_t)w;
	}
}

/* One non-blocking write: bytes taken, 0 when the sink is full, -1 when it
 * failed for good (the bytes are then lost, as with a blocking write). */
static ssize_t try_write(const char *p, size_t n)
{
	ssize_t w;
	do
		w = q.sock ? send(q.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(q.fd, p, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	return w;
}

static void queue_put(const char *p, size_t n)
{
	size_t tail = (q.head + q.len) % q.cap, first = q.cap - tail;
	if (first > n)
		first = n;
	memcpy(q.buf + tail, p, first);
	memcpy(q.buf, p + first, n - first);
	q.len += n;
}

/* Write what waits, then the report of what was dropped; tell the caller
 * whether it still needs to wait for the sink. Under q.lock. */
static void flush_locked(void)
{
	bool was = q.len > 0;
	for (;;) {
		while (q.len) {
			size_t n = q.cap - q.head < q.len ? q.cap - q.head : q.len;
			ssize_t w = try_write(q.buf + q.head, n);
			if (w == 0)
				goto out;
			if (w < 0)
				w = (ssize_t)n; /* the sink failed: let it go */
			q.head = (q.head + (size_t)w) % q.cap;
			q.len -= (size_t)w;
		}
		if (!q.unreported)
			break;
		struct pst_logline l;
		pst_ll_begin(&l, "warn", "log_dropped");
		pst_ll_uint(&l, "lines", q.unreported);
		pst_ll_str(&l, "reason", "the log sink was too slow");
		ll_finish(&l);
		q.unreported = 0;
		queue_put(l.buf, l.len);
	}
out:
	if (q.pending && was != (q.len > 0))
		q.pending(q.len > 0, q.fd, q.ctx);
}

static void emit(const char *p, size_t n)
{
	pthread_mutex_lock(&q.lock);
	if (!q.on) {
		pthread_mutex_unlock(&q.lock);
		write_all(p, n);
		return;
	}
	bool was = q.len > 0;
	if (!q.len && !q.unreported) {
		ssize_t w = try_write(p, n);
		if (w < 0)
			w = (ssize_t)n;
		p += w;
		n -= (size_t)w;
	}
	if (n && q.cap - q.len >= n)
		queue_put(p, n);
	else if (n) {
		q.dropped++;
		q.unreported++;
	}
	if (q.pending && !was && q.len)
		q.pending(true, q.fd, q.ctx);
	pthread_mutex_unlock(&q.lock);
}

int pst_log_nonblock_start(size_t cap, void (*pending)(bool on, int fd, void *ctx), void *ctx)
{
	struct stat st;
	if (fstat(pst_log_fd, &st) < 0)
		return -errno;
	int fd = pst_log_fd;
	bool own = false, sock = S_ISSOCK(st.st_mode);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return 0; /* a file: its writes do not wait for a reader */
	if (!sock) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", pst_log_fd);
		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return -errno;
		own = true;
	}
	char *buf = malloc(cap);
	if (!buf) {
		if (own)
			close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&q.lock);
	q.fd = fd;
	q.own_fd = own;
	q.sock = sock;
	q.buf = buf;
	q.cap = cap;
	q.head = q.len = 0;
	q.pending = pending;
	q.ctx = ctx;
	q.on = true;
	pthread_mutex_unlock(&q.lock);
	return 0;
}

void pst_log_flush(void)
{
	pthread_mutex_lock(&q.lock);
	if (q.on)
		flush_locked();
	pthread_mutex_unlock(&q.lock);
}

void pst_log_nonblock_stop(unsigned timeout_ms)
{
	pthread_mutex_lock(&q.lock);
	if (!q.on) {
		pthread_mutex_unlock(&q.lock);
		return;
	}
	q.pending = NULL;
	/* what waits gets up to timeout_ms */
	for (unsigned waited = 0; (q.len || q.unreported) && waited < timeout_ms; waited += 10) {
		flush_locked();
		if (!q.len && !q.unreported)
			break;
		pthread_mutex_unlock(&q.lock);
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&q.lock);
	}
	q.on = false;
	if (q.own_fd)
		close(q.fd);
	q.fd = -1;
	free(q.buf);
	q.buf = NULL;
	pthread_mutex_unlock(&q.lock);
}

uint64_t pst_log_dropped(void)
{
	pthread_mutex_lock(&q.lock);
	uint64_t n = q.dropped;
	pthread_mutex_unlock(&q.lock);
	return n;
}

/* ---- error lines captured (pst_log_capture()) --------------------------- */

enum { CAP_SANDBOX, CAP_WHAT, CAP_STEP, CAP_ERROR, CAP__N };
static const char *const cap_keys[CAP__N] = {"sandbox", "what", "step", "error"};
static struct {
	void (*fn)(void *ctx, const char *msg);
	void *ctx;
	pthread_t thread;
	char val[CAP__N][PST_LOG_LINE_MAX / 2];
} cap;

void pst_log_capture(void (*fn)(void *ctx, const char *msg), void *ctx)
{
	cap.fn = fn;
	cap.ctx = ctx;
	cap.thread = pthread_self();
}

static void cap_begin(struct pst_logline *l, const char *level)
{
	l->capture = cap.fn && !strcmp(level, "error") && pthread_equal(cap.thread, pthread_self());
	if (l->capture)
		for (int i = 0; i < CAP__N; i++)
			cap.val[i][0] = 0;
}

static void cap_field(const char *key, const char *val, size_t n)
{
	for (int i = 0; i < CAP__N; i++) {
		if (strcmp(key, cap_keys[i]) != 0)
			continue;
		if (n >= sizeof(cap.val[i]))
			n = sizeof(cap.val[i]) - 1;
		memcpy(cap.val[i], val, n);
		cap.val[i][n] = 0;
	}
}

static void cap_end(void)
{
	char msg[PST_LOG_LINE_MAX];
	size_t len = 0;
	for (int i = 0; i < CAP__N; i++) {
		if (!cap.val[i][0])
			continue;
		int n = snprintf(msg + len, sizeof(msg) - len, "%s%s%s", len ? ": " : "",
		                 i == CAP_SANDBOX ? "sandbox "
		                 : i == CAP_STEP  ? "step "
		                                  : "",
		                 cap.val[i]);
		if (n < 0 || (size_t)n >= sizeof(msg) - len) {
			len = sizeof(msg) - 1;
			break;
		}
		len += (size_t)n;
	}
	msg[len] = 0;
	if (len)
		cap.fn(cap.ctx, msg);
}

/* ---- building a line ----------------------------------------------------
 * Bytes go in whole units (a character, an escape, a key with its opening
 * quote): a unit that does not fit ends the line there, marked truncated.
 * In logfmt and json the last LL_RESERVE bytes are kept for what closes
 * the line (a quote, "]", the truncated field, "}", the newline), so a
 * truncated line still parses; text keeps its format: the marker replaces
 * the tail. */
#define LL_RESERVE 32

static size_t ll_limit(void)
{
	return pst_log_format == PST_LOG_TEXT ? PST_LOG_LINE_MAX - 2
	                                      : PST_LOG_LINE_MAX - LL_RESERVE;
}

static bool ll_putn(struct pst_logline *l, const char *s, size_t n)
{
	if (l->truncated || l->len + n > ll_limit()) {
		l->truncated = true;
		return false;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static bool ll_putc(struct pst_logline *l, char c)
{
	return ll_putn(l, &c, 1);
}

static void ll_puts(struct pst_logline *l, const char *s)
{
	ll_putn(l, s, strlen(s));
}

/* What closes a line: into the reserve (logfmt, json). */
static void ll_force(struct pst_logline *l, const char *s)
{
	size_t n = strlen(s);
	if (l->len + n > PST_LOG_LINE_MAX - 1)
		n = PST_LOG_LINE_MAX - 1 - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
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

static const char hex[] = "0123456789abcdef";

/* One byte of a quoted value: escaped when it must be. */
static bool ll_escaped(struct pst_logline *l, unsigned char c)
{
	char e[8];
	if (c == '"' || c == '\\') {
		e[0] = '\\', e[1] = (char)c;
		return ll_putn(l, e, 2);
	}
	if (c == '\n')
		return ll_putn(l, "\\n", 2);
	if (c == '\t')
		return ll_putn(l, "\\t", 2);
	if (c == '\r' && pst_log_format != PST_LOG_TEXT)
		return ll_putn(l, "\\r", 2);
	if (c < ' ' || c == 0x7f) {
		if (pst_log_format == PST_LOG_TEXT) {
			e[0] = '\\', e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15];
			return ll_putn(l, e, 4);
		}
		memcpy(e, "\\u00", 4);
		e[4] = hex[c >> 4], e[5] = hex[c & 15];
		return ll_putn(l, e, 6);
	}
	return ll_putc(l, (char)c);
}

/* The length of the valid UTF-8 sequence at v (at most n bytes), 0 if
 * there is none: overlong forms, surrogates and values past U+10FFFF are
 * invalid. */
static size_t utf8_len(const unsigned char *v, size_t n)
{
	unsigned char c = v[0];
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (c < 0xc2 || c > 0xf4 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((v[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && v[1] < 0xa0) || (c == 0xed && v[1] > 0x9f) ||
	    (c == 0xf0 && v[1] < 0x90) || (c == 0xf4 && v[1] > 0x8f))
		return 0;
	return len;
}

/* A JSON string's content: escapes as above, valid UTF-8 as it is, each
 * byte of invalid UTF-8 as U+FFFD. */
static void json_chars(struct pst_logline *l, const char *v, size_t n)
{
	const unsigned char *u = (const unsigned char *)v;
	for (size_t i = 0; i < n;) {
		if (u[i] < 0x80) {
			if (!ll_escaped(l, u[i++]))
				return;
			continue;
		}
		size_t k = utf8_len(u + i, n - i);
		if (!(k ? ll_putn(l, v + i, k) : ll_putn(l, "\xef\xbf\xbd", 3)))
			return;
		i += k ? k : 1;
	}
}

static void ll_value(struct pst_logline *l, const char *v, size_t n)
{
	if (!needs_quotes(v, n)) {
		for (size_t i = 0; i < n && ll_putc(l, v[i]); i++)
			;
		return;
	}
	/* the key and the opening quote went in as one unit (ll_key) */
	if (pst_log_format != PST_LOG_TEXT) {
		json_chars(l, v, n); /* valid UTF-8, as parsers read it */
		ll_force(l, "\"");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!ll_escaped(l, (unsigned char)v[i]))
			break; /* UTF-8 passes through */
	ll_putc(l, '"');
}

/* The start of a field: ` key=` (with `"` when quoted) or `,"key":` (with
 * `"` for a string), as one unit; false if it did not fit. A json key
 * repeated in a row turns the field into an array. */
static bool ll_key(struct pst_logline *l, const char *key, bool quote)
{
	char u[96];
	if (l->truncated)
		return false;
	if (pst_log_format != PST_LOG_JSON) {
		int n = snprintf(u, sizeof(u), " %s=%s", key, quote ? "\"" : "");
		return n > 0 && (size_t)n < sizeof(u) && ll_putn(l, u, (size_t)n);
	}
	if (l->last_key && !strcmp(l->last_key, key)) {
		/* `"k":v` becomes `"k":[v,w]`: one unit with the '[' */
		if (l->len + 2 + quote > ll_limit()) {
			l->truncated = true;
			return false;
		}
		if (!l->in_array) {
			memmove(l->buf + l->val_off + 1, l->buf + l->val_off, l->len - l->val_off);
			l->buf[l->val_off] = '[';
			l->len++;
			l->in_array = true;
		}
		return ll_putn(l, quote ? ",\"" : ",", quote ? 2 : 1);
	}
	int n =
	    snprintf(u, sizeof(u), "%s,\"%s\":%s", l->in_array ? "]" : "", key, quote ? "\"" : "");
	if (n <= 0 || (size_t)n >= sizeof(u) || !ll_putn(l, u, (size_t)n))
		return false;
	l->in_array = false;
	l->last_key = key;
	l->val_off = l->len - quote;
	return true;
}

static int level_priority(const char *level)
{
	return !strcmp(level, "error")   ? 3
	       : !strcmp(level, "warn")  ? 4
	       : !strcmp(level, "debug") ? 7
	                                 : 6;
}

void pst_ll_begin(struct pst_logline *l, const char *level, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char tbuf[64];

	l->len = 0;
	l->truncated = false;
	cap_begin(l, level);
	l->last_key = NULL;
	l->in_array = false;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tbuf + n, sizeof(tbuf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	if (pst_log_journal) {
		char p[8];
		snprintf(p, sizeof(p), "<%d>", level_priority(level));
		ll_puts(l, p);
	}
	if (pst_log_format == PST_LOG_JSON) {
		ll_puts(l, "{\"ts\":\"");
		ll_puts(l, tbuf);
		ll_puts(l, "\",\"level\":\"");
		json_chars(l, level, strlen(level));
		ll_puts(l, "\",\"event\":\"");
		json_chars(l, event, strlen(event));
		ll_putc(l, '"');
		return;
	}
	if (!pst_log_journal) {
		ll_puts(l, "ts=");
		ll_puts(l, tbuf);
		ll_putc(l, ' ');
	}
	ll_puts(l, "level=");
	ll_puts(l, level);
	ll_puts(l, " event=");
	ll_puts(l, event);
}

void pst_ll_strn(struct pst_logline *l, const char *key, const char *val, size_t n)
{
	if (l->capture && val)
		cap_field(key, val, n);
	if (!val)
		val = "", n = 0;
	if (pst_log_format == PST_LOG_JSON) {
		if (ll_key(l, key, true)) {
			json_chars(l, val, n);
			ll_force(l, "\"");
		}
		return;
	}
	if (ll_key(l, key, needs_quotes(val, n)))
		ll_value(l, val, n);
}

void pst_ll_str(struct pst_logline *l, const char *key, const char *val)
{
	pst_ll_strn(l, key, val, val ? strlen(val) : 0);
}

/* A number: digits and '.', never quoted; in json a number. */
static void ll_number(struct pst_logline *l, const char *key, const char *digits)
{
	if (ll_key(l, key, false))
		ll_puts(l, digits);
}

void pst_ll_int(struct pst_logline *l, const char *key, long long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", v);
	ll_number(l, key, b);
}

void pst_ll_uint(struct pst_logline *l, const char *key, unsigned long long v)
{
	char b[32];
	snprintf(b, sizeof(b), "%llu", v);
	ll_number(l, key, b);
}

void pst_ll_ms(struct pst_logline *l, const char *key, uint64_t ns)
{
	char b[48];
	snprintf(b, sizeof(b), "%" PRIu64 ".%03" PRIu64, ns / 1000000, (ns / 1000) % 1000);
	ll_number(l, key, b);
}

/* The line made whole, with its newline, not written. */
static void ll_finish(struct pst_logline *l)
{
	if (pst_log_format == PST_LOG_JSON) {
		if (l->in_array)
			ll_force(l, "]");
		ll_force(l, l->truncated ? ",\"truncated\":true}\n" : "}\n");
		return;
	}
	if (l->truncated && pst_log_format == PST_LOG_LOGFMT) {
		ll_force(l, " truncated=1\n");
		return;
	}
	if (l->truncated) {
		/* make room for the marker */
		static const char mark[] = " truncated=1";
		if (l->len > sizeof(l->buf) - sizeof(mark) - 1)
			l->len = sizeof(l->buf) - sizeof(mark) - 1;
		memcpy(l->buf + l->len, mark, sizeof(mark) - 1);
		l->len += sizeof(mark) - 1;
	}
	l->buf[l->len++] = '\n';
}

void pst_ll_end(struct pst_logline *l)
{
	ll_finish(l);
	emit(l->buf, l->len);
	if (l->capture)
		cap_end();
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

/* ---- lines a request can cause, and errno lines ------------------------ */

bool pst_ll_begin_throttled(struct pst_logline *l, struct pst_throttle *t, const char *level,
                            const char *event, uint64_t *suppressed)
{
	if (!pst_throttle_pass(t, pst_now_ns(), suppressed))
		return false;
	pst_ll_begin(l, level, event);
	return true;
}

void pst_ll_end_throttled(struct pst_logline *l, uint64_t suppressed)
{
	if (suppressed)
		pst_ll_uint(l, "suppressed", suppressed);
	pst_ll_end(l);
}

static void ll_errno(struct pst_logline *l, const char *sandbox, const char *what, int err)
{
	if (sandbox)
		pst_ll_str(l, "sandbox", sandbox);
	pst_ll_str(l, "what", what);
	pst_ll_str(l, "error", strerror(err));
}

void pst_log_errno(const char *event, const char *sandbox, const char *what, int err)
{
	struct pst_logline l;
	pst_ll_begin(&l, "error", event);
	ll_errno(&l, sandbox, what, err);
	pst_ll_end(&l);
}

void pst_log_errno_throttled(struct pst_throttle *t, const char *event, const char *sandbox,
                             const char *what, int err)
{
	struct pst_logline l;
	uint64_t sup;
	if (!pst_ll_begin_throttled(&l, t, "error", event, &sup))
		return;
	ll_errno(&l, sandbox, what, err);
	pst_ll_end_throttled(&l, sup);
}
