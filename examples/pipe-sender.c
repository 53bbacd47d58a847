/* pipe-sender: reads one line from its client and queues it as a message on
 * the "jobs" pipe channel; answers "queued". */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "examples/lib/postern_handler.h"

int main(void)
{
	char line[512];
	size_t n = 0;
	int in = pst_handler_socket(), out = in == 3 ? 3 : 1;
	while (n < sizeof(line) - 1) {
		ssize_t r = read(in, line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(line, '\n', n))
			break;
	}
	line[n] = 0;
	line[strcspn(line, "\r\n")] = 0;
	int ch = pst_handler_send_fd("jobs");
	if (ch < 0) {
		dprintf(out, "error: no jobs channel\n");
		return 1;
	}
	if (pst_send_message(ch, line) < 0) {
		perror("pipe-sender: send");
		dprintf(out, "error: cannot queue\n");
		return 1;
	}
	dprintf(out, "queued\n");
	return 0;
}
