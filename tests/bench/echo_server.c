/* echo_server ADDR:PORT: an in-process epoll echo server, the upper bound in
 * benchmarks. Echoes, honours half-close, exits on SIGTERM. Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/bench/loopback.h"

static volatile sig_atomic_t stop;
static void on_term(int s)
{
	(void)s;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo_server 127.0.0.1:PORT\n");
		return 2;
	}
	struct sockaddr_in in;
	if (bench_loopback4(argv[1], &in) < 0) {
		fprintf(stderr, "echo_server: %s: a loopback IPv4 address:port only\n", argv[1]);
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(ls, 4096) < 0) {
		perror("echo_server: bind/listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	static char buf[65536];
	while (!stop) {
		struct epoll_event evs[128];
		int n = epoll_wait(ep, evs, 128, 500);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				int c;
				while ((c = accept4(ls, NULL, NULL,
				                    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
				}
				continue;
			}
			for (;;) {
				ssize_t r = read(fd, buf, sizeof(buf));
				if (r > 0) {
					/* small echoes: the socket buffer takes them whole */
					ssize_t off = 0;
					while (off < r) {
						ssize_t w = write(fd, buf + off, (size_t)(r - off));
						if (w < 0 && errno == EAGAIN)
							continue;
						if (w <= 0)
							break;
						off += w;
					}
					continue;
				}
				if (r == 0 || errno != EAGAIN) {
					shutdown(fd, SHUT_WR);
					close(fd);
				}
				break;
			}
		}
	}
	return 0;
}
