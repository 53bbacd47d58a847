/* SPDX-License-Identifier: MIT */
#include "examples/lib/postern_handler.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int pst_handler_socket(void)
{
	const char *n = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	if (n && atoi(n) >= 1 && (!pid || atoi(pid) == (int)getpid()))
		return 3;
	return 0;
}

const char *pst_handler_peer(char *buf, size_t len)
{
	const char *a = getenv("REMOTE_ADDR"), *p = getenv("REMOTE_PORT");
	if (!a) {
		a = getenv("TCPREMOTEIP");
		p = getenv("TCPREMOTEPORT");
	}
	if (!a)
		snprintf(buf, len, "%s", "");
	else if (strchr(a, ':'))
		snprintf(buf, len, "[%s]:%s", a, p ? p : "0");
	else
		snprintf(buf, len, "%s:%s", a, p ? p : "0");
	return buf;
}

int pst_handler_send_fd(const char *channel)
{
	char var[64] = "POSTERN_SEND_";
	size_t k = strlen(var);
	for (const char *c = channel; *c && k < sizeof(var) - 1; c++)
		var[k++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
	var[k] = 0;
	const char *v = getenv(var);
	if (!v || !*v)
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	return *end || fd < 3 || fd > INT_MAX ? -1 : (int)fd;
}

int pst_send_message(int fd, const char *line)
{
	size_t n = strlen(line);
	if (n >= PIPE_BUF || memchr(line, '\n', n)) {
		errno = EINVAL;
		return -1;
	}
	struct iovec iov[2] = {{(void *)line, n}, {"\n", 1}};
	ssize_t w;
	do
		w = writev(fd, iov, 2);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)n + 1 ? 0 : -1;
}

int pst_send_fd(int chan, int fd)
{
	char byte = 'f';
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cm.buf,
	                    .msg_controllen = sizeof(cm.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t w;
	do
		w = sendmsg(chan, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == 1 ? 0 : -1;
}

int pst_recv_fd(int chan)
{
	char byte;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cm.buf,
	                    .msg_controllen = sizeof(cm.buf)};
	ssize_t r;
	do
		r = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	int got = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < 0)
				got = fd;
			else
				close(fd); /* one fd per message */
		}
	}
	if (got < 0)
		errno = EBADMSG;
	return got;
}
