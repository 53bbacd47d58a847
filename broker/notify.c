/* SPDX-License-Identifier: MIT */
/*
 * systemd's notification protocol (sd_notify(3)), without libsystemd: one
 * datagram socket, opened once at start for the NOTIFY_SOCKET the service
 * manager set (a path, or "@name" for the abstract namespace), and the
 * variable removed from the environment so that nothing the broker starts
 * can inherit it. Messages: READY=1 once serving; RELOADING=1 with
 * MONOTONIC_USEC= when a reload starts and READY=1 when it ends (applied or
 * refused); STOPPING=1; STATUS= a one-line summary, sent when it changes
 * (at most once a second) and at reload and stop; WATCHDOG=1 every half of
 * WATCHDOG_USEC from a loop timer, so a stuck loop stops the pings.
 *
 * Sends never wait (MSG_DONTWAIT): a service manager that does not read its
 * socket costs a lost message, not a stalled loop. Without NOTIFY_SOCKET
 * every call here does nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/daemon_internal.h"

#define STATUS_MIN_NS 1000000000ull /* STATUS= at most once a second, unless forced */

static struct {
	int fd;
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec; /* 0: no watchdog */
	char status[256];       /* the last STATUS= sent */
	uint64_t status_ns;     /* when */
} n = {.fd = -1};

/* A positive decimal without sign, spaces or trailing bytes; 0 if not. */
static unsigned long long parse_u64(const char *s)
{
	if (!s || *s < '0' || *s > '9')
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	return errno || *end ? 0 : v;
}

int notify_open(char *why, size_t whylen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
	int r = 0;

	why[0] = 0;
	if (wd && (!wpid || parse_u64(wpid) == (unsigned long long)getpid()))
		n.watchdog_usec = parse_u64(wd);
	if (path) {
		size_t len = strlen(path);
		n.addr.sun_family = AF_UNIX;
		if ((path[0] != '/' && path[0] != '@') || len < 2 ||
		    len >= sizeof(n.addr.sun_path)) {
			snprintf(why, whylen,
			         "NOTIFY_SOCKET \"%.64s\": not an absolute path or @abstract name "
			         "shorter than %zu bytes; not notifying",
			         path, sizeof(n.addr.sun_path));
			r = -EINVAL;
		} else if ((n.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) <
		           0) {
			r = -errno;
			snprintf(why, whylen, "NOTIFY_SOCKET: socket: %s; not notifying",
			         strerror(-r));
		} else {
			memcpy(n.addr.sun_path, path, len);
			if (path[0] == '@')
				n.addr.sun_path[0] = 0;
			n.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
		}
	}
	if (n.fd < 0)
		n.watchdog_usec = 0; /* pings nobody hears */
	/* nothing spawned from here on (handlers, their set-up) gets them */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return r;
}

bool notify_enabled(void)
{
	return n.fd >= 0;
}

uint64_t notify_watchdog_usec(void)
{
	return n.watchdog_usec;
}

void notify_send(const char *msg)
{
	if (n.fd < 0)
		return;
	ssize_t w;
	do
		w = sendto(n.fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
		           (const struct sockaddr *)&n.addr, n.addr_len);
	while (w < 0 && errno == EINTR);
}

/* STATUS=TEXT, with TEXT kept to one line. */
static void send_status(const char *text)
{
	char msg[sizeof(n.status) + 8];
	int len = snprintf(msg, sizeof(msg), "STATUS=%s", text);
	for (int i = 7; i < len && msg[i]; i++)
		if ((unsigned char)msg[i] < ' ')
			msg[i] = ' ';
	notify_send(msg);
	snprintf(n.status, sizeof(n.status), "%s", text);
	n.status_ns = pst_now_ns();
}

/* "serving 3 sandboxes, 5 handlers, 2 pre-warmed" */
static void status_text(struct daemon *d, char *buf, size_t len)
{
	size_t serving = 0, warm = 0, nsbx = d->cur ? d->cur->n_sbx : 0;
	for (const struct handler *h = d->handlers; h; h = h->next)
		serving += handler_served(h);
	for (size_t i = 0; i < nsbx; i++)
		warm += d->cur->sbx[i].warm.n_ready;
	snprintf(buf, len, "%s %zu sandbox%s, %zu handler%s, %zu pre-warmed",
	         d->stopping ? "stopping:" : "serving", nsbx, nsbx == 1 ? "" : "es", serving,
	         serving == 1 ? "" : "s", warm);
}

void notify_status(struct daemon *d, bool force)
{
	if (n.fd < 0)
		return;
	if (!force && pst_now_ns() - n.status_ns < STATUS_MIN_NS)
		return;
	char text[sizeof(n.status)];
	status_text(d, text, sizeof(text));
	if (force || strcmp(text, n.status) != 0)
		send_status(text);
}

void notify_ready(struct daemon *d)
{
	if (n.fd < 0)
		return;
	char text[sizeof(n.status)], msg[sizeof(text) + 24];
	status_text(d, text, sizeof(text));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", text);
	notify_send(msg);
	snprintf(n.status, sizeof(n.status), "%s", text);
	n.status_ns = pst_now_ns();
}

void notify_reloading(void)
{
	if (n.fd < 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[96];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading",
	         (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	notify_send(msg);
	snprintf(n.status, sizeof(n.status), "reloading");
	n.status_ns = pst_now_ns();
}

void notify_stopping(struct daemon *d)
{
	if (n.fd < 0)
		return;
	char text[sizeof(n.status)], msg[sizeof(text) + 24];
	status_text(d, text, sizeof(text));
	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", text);
	notify_send(msg);
	snprintf(n.status, sizeof(n.status), "%s", text);
	n.status_ns = pst_now_ns();
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	notify_send("WATCHDOG=1");
}

void notify_watchdog_start(struct daemon *d)
{
	if (!n.watchdog_usec)
		return;
	uint64_t ms = n.watchdog_usec / 2000;
	if (ms == 0)
		ms = 1;
	uv_timer_init(d->loop, &d->watchdog);
	d->watchdog.data = d;
	uv_timer_start(&d->watchdog, on_watchdog, ms, ms);
	/* it alone keeps no loop running */
	uv_unref((uv_handle_t *)&d->watchdog);
	notify_send("WATCHDOG=1");
}
