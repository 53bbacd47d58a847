/* banner ADDR PORT TEXT: a test server for lab hosts. For each connection
 * it writes "TEXT from=PEER_IP\n", then echoes what it receives until EOF.
 * One connection at a time; exits on SIGTERM. IPv4 or IPv6 literal. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: banner ADDR PORT TEXT\n");
		return 2;
	}
	struct sockaddr_storage ss = {0};
	socklen_t len;
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	uint16_t port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &in->sin_addr) == 1) {
		in->sin_family = AF_INET, in->sin_port = port, len = sizeof(*in);
	} else if (inet_pton(AF_INET6, argv[1], &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6, in6->sin6_port = port, len = sizeof(*in6);
	} else {
		fprintf(stderr, "banner: %s: not an address\n", argv[1]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int one = 1, ls = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&ss, len) < 0 || listen(ls, 64) < 0) {
		fprintf(stderr, "banner: %s:%s: %s\n", argv[1], argv[2], strerror(errno));
		return 1;
	}
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		int c = accept4(ls, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		char a[INET6_ADDRSTRLEN] = "?";
		if (peer.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, a, sizeof(a));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, a,
			          sizeof(a));
		dprintf(c, "%s from=%s\n", argv[3], a);
		char buf[4096];
		ssize_t n;
		struct timeval tv = {5, 0};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while ((n = read(c, buf, sizeof(buf))) > 0)
			if (write(c, buf, (size_t)n) != n)
				break;
		close(c);
	}
}
