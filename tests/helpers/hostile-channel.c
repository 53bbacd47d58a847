/* hostile-channel: a sender handler that misuses its send channels, for
 * tests (tests/integration/t_hostile_channel.sh). Its channel CH is the fd
 * in POSTERN_SEND_<CH> (upper case, '-' as '_').
 *
 *   hostile-channel partial CH TEXT  write TEXT without its newline, exit
 *   hostile-channel line CH TEXT     write TEXT and a newline, exit
 *   hostile-channel shutdown CH      shutdown(2) the channel's fd, exit
 *   hostile-channel fdless CH N      N messages without an fd (fdpass)
 *   hostile-channel pass CH          pass its own client socket (fd 0) on CH
 *
 * Prints what it did (and any error) to stdout, which is its client.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* one fd on a SOCK_SEQPACKET channel, as postern_handler.c sends it */
static int send_fd(int chan, int fd)
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
	return sendmsg(chan, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int chan(const char *name)
{
	char var[64];
	int n = snprintf(var, sizeof(var), "POSTERN_SEND_%s", name);
	for (int i = 13; i < n; i++)
		var[i] = var[i] == '-' ? '_' : (char)toupper((unsigned char)var[i]);
	const char *v = getenv(var);
	return v ? atoi(v) : -1;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int fd = chan(argv[2]);
	if (fd < 0) {
		printf("no channel %s\n", argv[2]);
		return 1;
	}
	const char *mode = argv[1];
	if (!strcmp(mode, "partial") || !strcmp(mode, "line")) {
		if (argc < 4)
			return 2;
		char buf[512];
		int n = snprintf(buf, sizeof(buf), "%s%s", argv[3], mode[0] == 'l' ? "\n" : "");
		ssize_t w = write(fd, buf, (size_t)n);
		printf("%s: wrote %zd\n", mode, w);
		return w == n ? 0 : 1;
	}
	if (!strcmp(mode, "shutdown")) {
		int r = shutdown(fd, SHUT_RDWR);
		printf("shutdown: %s\n", r < 0 ? strerror(errno) : "done");
		return 0;
	}
	if (!strcmp(mode, "fdless")) {
		int n = argc > 3 ? atoi(argv[3]) : 1000, sent = 0;
		for (int i = 0; i < n; i++)
			if (send(fd, "x", 1, MSG_NOSIGNAL) == 1)
				sent++;
		printf("fdless: sent %d\n", sent);
		return 0;
	}
	if (!strcmp(mode, "pass")) {
		int r = send_fd(fd, 0);
		if (r < 0)
			printf("pass: %s\n", strerror(errno));
		return r < 0 ? 1 : 0;
	}
	return 2;
}
