/* echo: an inetd-style echo handler. Copies its socket's input back until
 * EOF, then shuts down its writing side: half-close works, so a client can
 * shut down its own writing side and still read the whole answer. Takes the
 * socket from fd 3 when started systemd-style (LISTEN_FDS=1), else fd 0/1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	const char *lf = getenv("LISTEN_FDS");
	int in = 0, out = 1;
	if (lf && atoi(lf) >= 1)
		in = out = 3;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "echo: read: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				fprintf(stderr, "echo: write: %s\n", strerror(errno));
				return 1;
			}
			off += w;
		}
	}
	shutdown(out, SHUT_WR);
	return 0;
}
