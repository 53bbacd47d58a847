/* dbrelay HOST PORT: relays bytes between its client and HOST:PORT (v4 or
 * v6), half-close aware. A connect failure is told to the client. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "examples/lib/postern_handler.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: dbrelay HOST PORT\n");
		return 2;
	}
	int cin = pst_handler_socket(), cout = cin == 3 ? 3 : 1;
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int port = atoi(argv[2]);
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	if (inet_pton(AF_INET, argv[1], &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		len = sizeof(*in);
	} else if (inet_pton(AF_INET6, argv[1], &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof(*in6);
	} else {
		dprintf(cout, "dbrelay: %s: not an address\n", argv[1]);
		return 2;
	}
	int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&ss, len) < 0) {
		dprintf(cout, "dbrelay: connect %s:%s: %s\n", argv[1], argv[2], strerror(errno));
		return 1;
	}
	char buf[65536];
	int up_open = 1, down_open = 1;
	while (up_open || down_open) {
		struct pollfd p[2] = {{up_open ? cin : -1, POLLIN, 0},
		                      {down_open ? s : -1, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			ssize_t n = read(cin, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(s, SHUT_WR);
				up_open = 0;
			} else if (write(s, buf, (size_t)n) != n) {
				return 1;
			}
		}
		if (p[1].revents) {
			ssize_t n = read(s, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(cout, SHUT_WR);
				down_open = 0;
			} else if (write(cout, buf, (size_t)n) != n) {
				return 1;
			}
		}
	}
	return 0;
}
