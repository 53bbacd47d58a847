/* SPDX-License-Identifier: MIT */
/*
 * holdconns IPV4:PORT N FILE SECONDS: opens N TCP connections to a
 * loopback echo service one after another, each proven served (a byte
 * sent comes back, 5 s at most), then holds them all open while FILE
 * exists, for at most SECONDS, and closes them. Prints "held=N" once all
 * are open (or how many were, and why not) and "released" at the end.
 * For bench_rss: a broker with N live handlers. Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/loopback.h"

static int served(int fd)
{
	char c = 'x';
	if (write(fd, &c, 1) != 1)
		return -1;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 5000) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: holdconns IPV4:PORT N FILE SECONDS\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10), secs = strtol(argv[4], NULL, 10);
	if (n < 1 || n > 100000 || secs < 1 || secs > 3600) {
		fprintf(stderr, "holdconns: bad arguments\n");
		return 2;
	}
	struct sockaddr_in sa;
	if (bench_loopback4(argv[1], &sa) < 0) {
		fprintf(stderr, "holdconns: %s: a loopback IPv4 address:port only\n", argv[1]);
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int *fds = calloc((size_t)n, sizeof(int));
	if (!fds)
		return 1;
	long held = 0;
	for (; held < n; held++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    served(fd) < 0) {
			printf("held=%ld of %ld: %s\n", held, n, strerror(errno ? errno : EIO));
			break;
		}
		fds[held] = fd;
	}
	if (held == n)
		printf("held=%ld\n", held);
	fflush(stdout);
	time_t end = time(NULL) + secs;
	while (held == n && access(argv[3], F_OK) == 0 && time(NULL) < end)
		usleep(50000);
	for (long i = 0; i < held; i++)
		close(fds[i]);
	printf("released\n");
	return held == n ? 0 : 1;
}
