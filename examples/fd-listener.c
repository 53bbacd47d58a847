/* fd-listener: a startup handler that accepts on the sockets the broker
 * passed (LISTEN_FDS from fd 3) and hands each connection to the "conns"
 * fdpass channel, where the broker starts one handler per connection. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "examples/lib/postern_handler.h"

static volatile sig_atomic_t stop;
static void on_term(int s)
{
	(void)s;
	stop = 1;
}

int main(void)
{
	const char *n = getenv("LISTEN_FDS");
	int nfds = n ? atoi(n) : 0;
	int ch = pst_handler_send_fd("conns");
	if (nfds < 1 || nfds > 64 || ch < 0) {
		fprintf(stderr, "fd-listener: need LISTEN_FDS and a conns channel\n");
		return 1;
	}
	signal(SIGTERM, on_term);
	struct pollfd p[64];
	for (int i = 0; i < nfds; i++)
		p[i] = (struct pollfd){.fd = 3 + i, .events = POLLIN};
	while (!stop) {
		if (poll(p, (nfds_t)nfds, 1000) < 0 && errno != EINTR)
			return 1;
		for (int i = 0; i < nfds; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0) {
				if (errno == EMFILE || errno == ENFILE)
					usleep(100000); /* back off, keep the listener */
				continue;
			}
			if (pst_send_fd(ch, c) < 0)
				fprintf(stderr, "fd-listener: pass fd: %s\n", strerror(errno));
			close(c);
		}
	}
	return 0;
}
