/* SPDX-License-Identifier: MIT */
/* Client side of the control socket (postern status / top). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/internal.h"

#define ANSWER_MAX (16u << 20)
#define QUERY_TIMEOUT_MS 5000

int pst_control_query(const char *path, const char *request, char **answer, char *why,
                      size_t whylen)
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
		r = poll(&pfd, 1, QUERY_TIMEOUT_MS);
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
