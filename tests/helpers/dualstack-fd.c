/* dualstack-fd: play systemd's part for one dual-stack socket.
 *
 *   dualstack-fd PORT PROGRAM [ARG...]
 *
 * Listens on [::]:PORT with IPV6_V6ONLY off (as systemd's
 * BindIPv6Only=both: IPv4 clients arrive as ::ffff:a.b.c.d), puts the
 * socket at fd 3, sets LISTEN_FDS=1 and LISTEN_PID to its own pid, and
 * execs PROGRAM. For tests/integration/t_broker_access.sh.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: dualstack-fd PORT PROGRAM [ARG...]\n");
		return 2;
	}
	int port = atoi(argv[1]), off = 0, on = 1;
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "dualstack-fd: %s: not a port\n", argv[1]);
		return 2;
	}
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	if (s < 0 || setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 64) < 0) {
		perror("dualstack-fd: [::] socket");
		return 1;
	}
	if (s != 3 && (dup2(s, 3) < 0 || close(s) < 0)) {
		perror("dualstack-fd: dup2");
		return 1;
	}
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
	execv(argv[2], argv + 2);
	perror("dualstack-fd: exec");
	return 127;
}
