/* SPDX-License-Identifier: MIT */
/*
 * connect-storm ADDR PORT FILE SECONDS: tries TCP connections to ADDR:PORT
 * back to back, each bounded to 500 ms, while FILE exists and for at most
 * SECONDS; prints "attempts=N connected=N" and exits 0. A probe for a
 * target that must stay unreachable while something changes (t_netpolicy
 * runs it in a sandbox's namespace during reloads): a connection that
 * succeeds even once is the failure. Bounded in count too (2,000,000).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 connected, 0 refused or timed out */
static int attempt(const struct sockaddr_storage *sa, socklen_t len)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = 0;
	if (connect(fd, (const struct sockaddr *)sa, len) == 0) {
		ok = 1;
	} else if (errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int err = 0;
		socklen_t el = sizeof(err);
		if (poll(&p, 1, 500) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
		    err == 0)
			ok = 1;
	}
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: connect-storm ADDR PORT FILE SECONDS\n");
		return 2;
	}
	struct sockaddr_storage sa = {0};
	socklen_t len;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	int port = atoi(argv[2]);
	if (inet_pton(AF_INET, argv[1], &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, argv[1], &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		len = sizeof(*s6);
	} else {
		fprintf(stderr, "connect-storm: %s: not an address\n", argv[1]);
		return 2;
	}
	double end = now() + atof(argv[4]);
	unsigned long n = 0, connected = 0;
	while (n < 2000000 && now() < end && access(argv[3], F_OK) == 0) {
		connected += (unsigned long)attempt(&sa, len);
		n++;
	}
	printf("attempts=%lu connected=%lu\n", n, connected);
	return 0;
}
