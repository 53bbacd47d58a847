/* SPDX-License-Identifier: MIT */
/* Client side of the control socket (postern status, top, reload, stop):
 * one request, one answer; where the socket is (-s, -c); what a failure
 * to reach it means. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/internal.h"

#define ANSWER_MAX (16u << 20)
#define QUERY_TIMEOUT_MS 5000

int pst_control_query(const char *path, const char *request, char **answer, char *why,
                      size_t whylen)
{
	return pst_control_query_timeout(path, request, QUERY_TIMEOUT_MS, answer, why, whylen);
}

int pst_control_query_timeout(const char *path, const char *request, int timeout_ms, char **answer,
                              char *why, size_t whylen)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	size_t plen = strlen(path);
	int fd = -1, r;
	char *buf = NULL;
	size_t len = 0, cap = 0;

	*answer = NULL;
	if (plen >= sizeof(un.sun_path)) {
		snprintf(why, whylen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(un.sun_path, path, plen + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		r = -errno;
		snprintf(why, whylen, "connect %s: %s", path, strerror(errno));
		goto out;
	}
	size_t rl = strlen(request);
	if (send(fd, request, rl, MSG_NOSIGNAL) != (ssize_t)rl) {
		r = -errno;
		snprintf(why, whylen, "send to %s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			r = r < 0 ? -errno : -ETIMEDOUT;
			snprintf(why, whylen, "read %s: %s", path, strerror(-r));
			goto out;
		}
		if (cap - len < 4096) {
			if (cap >= ANSWER_MAX) {
				r = -EFBIG;
				snprintf(why, whylen, "read %s: answer larger than %u bytes", path,
				         ANSWER_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			char *nb = realloc(buf, cap + 1);
			if (!nb) {
				r = -ENOMEM;
				snprintf(why, whylen, "%s", strerror(ENOMEM));
				goto out;
			}
			buf = nb;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(why, whylen, "read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (!buf) {
		r = -EPROTO;
		snprintf(why, whylen, "%s: empty answer", path);
		goto out;
	}
	buf[len] = 0;
	*answer = buf;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int pst_control_path_resolve(const char *sock, const char *policy, char *out, size_t len, char *why,
                             size_t whylen)
{
	const char *path = sock ? sock : PST_DEFAULT_CONTROL;
	struct pst_policy *p = NULL;
	if (!sock && policy) {
		/* parsed and validated only: nothing is made, run or checked
		 * inside the sandboxes' roots */
		struct pst_diag diag = {0};
		int r = pst_policy_load(policy, &p, &diag);
		if (r < 0) {
			size_t at = 0;
			int n =
			    snprintf(why, whylen, "cannot take broker.control from %s:", policy);
			at = n > 0 && (size_t)n < whylen ? (size_t)n : 0;
			for (size_t i = 0; i < diag.n && at < whylen; i++) {
				n = snprintf(why + at, whylen - at, "\n  %s", diag.msgs[i]);
				at = n > 0 ? at + (size_t)n : whylen;
			}
			if (!diag.n && at < whylen)
				snprintf(why + at, whylen - at, " %s", strerror(-r));
			pst_diag_free(&diag);
			return -1;
		}
		pst_diag_free(&diag);
		path = p->broker.control;
	}
	int r = 0;
	if ((size_t)snprintf(out, len, "%s", path) >= len) {
		snprintf(why, whylen, "control socket path too long: %s", path);
		r = -1;
	}
	pst_policy_free(p);
	return r;
}

const char *pst_control_hint(int err, const char *path, char *buf, size_t len)
{
	if (err == -EACCES || err == -EPERM)
		return "the control socket is root-only; run as root";
	if (err == -ENOENT || err == -ECONNREFUSED) {
		snprintf(buf, len, "no broker at %s; pass -s or -c (is postern running?)", path);
		return buf;
	}
	return NULL;
}

void pst_control_complain(const char *verb, const char *path, int err, const char *why)
{
	char hb[400];
	const char *hint = pst_control_hint(err, path, hb, sizeof(hb));
	fprintf(stderr, "postern %s: %s%s%s\n", verb, why, hint ? ": " : "", hint ? hint : "");
}
