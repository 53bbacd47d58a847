/* pst-client: a one-connection client for tests and the demo.
 *
 *   pst-client [-t MS] [-n] ADDRESS [MESSAGE]
 *
 * ADDRESS is IPv4:port, [IPv6]:port or unix:/path. Sends MESSAGE (or stdin),
 * shuts down its writing side (half-close) unless -n, prints everything the
 * server answers until EOF, and exits 0; 1 on connect/IO error (message on
 * stderr), 3 on timeout. Loopback or unix targets only, unless running in a
 * network namespace other than the initial one (a test lab).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (!strncmp(s, "unix:", 5)) {
		struct sockaddr_un *un = (void *)ss;
		un->sun_family = AF_UNIX;
		if (strlen(s + 5) >= sizeof(un->sun_path))
			return -1;
		strcpy(un->sun_path, s + 5);
		*len = sizeof(*un);
		return 0;
	}
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	int port = atoi(colon + 1);
	if (port <= 0 || port > 65535)
		return -1;
	if (host[0] == '[') {
		struct sockaddr_in6 *in6 = (void *)ss;
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			return -1;
		host[hl - 1] = 0;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return -1;
		*len = sizeof(*in6);
		return 0;
	}
	struct sockaddr_in *in = (void *)ss;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return -1;
	*len = sizeof(*in);
	return 0;
}

static int allowed(const struct sockaddr_storage *ss)
{
	struct stat a, b;
	if (ss->ss_family == AF_UNIX)
		return 1;
	if (ss->ss_family == AF_INET &&
	    (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127)
		return 1;
	if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr))
		return 1;
	/* a test lab: a network namespace that is not the initial one */
	if (stat("/proc/self/ns/net", &a) < 0)
		return 0;
	if (stat("/proc/1/ns/net", &b) == 0)
		return a.st_ino != b.st_ino;
	/* pid 1's namespace hidden (a container): a namespace of `ip netns`
	 * (bind-mounted under /run/netns), as the tests make them */
	DIR *d = opendir("/run/netns");
	struct dirent *e;
	int found = 0;
	while (d && !found && (e = readdir(d))) {
		char p[300];
		snprintf(p, sizeof(p), "/run/netns/%s", e->d_name);
		found = e->d_name[0] != '.' && stat(p, &b) == 0 && b.st_ino == a.st_ino &&
		        b.st_dev == a.st_dev;
	}
	if (d)
		closedir(d);
	return found;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	int timeout_ms = 10000, opt, no_shut = 0;
	while ((opt = getopt(argc, argv, "t:n")) != -1) {
		if (opt == 't')
			timeout_ms = atoi(optarg);
		else if (opt == 'n')
			no_shut = 1;
		else
			goto usage;
	}
	if (optind >= argc || argc - optind > 2)
		goto usage;

	struct sockaddr_storage ss;
	socklen_t len;
	if (parse(argv[optind], &ss, &len) < 0) {
		fprintf(stderr, "pst-client: %s: expected IPv4:port, [IPv6]:port or unix:/path\n",
		        argv[optind]);
		return 2;
	}
	if (!allowed(&ss)) {
		fprintf(stderr,
		        "pst-client: %s: refusing a non-loopback target outside a test namespace\n",
		        argv[optind]);
		return 2;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "pst-client: connect %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	char buf[65536];
	if (optind + 1 < argc) {
		const char *m = argv[optind + 1];
		size_t n = strlen(m);
		if (write(fd, m, n) != (ssize_t)n) {
			fprintf(stderr, "pst-client: write: %s\n", strerror(errno));
			return 1;
		}
	} else {
		ssize_t n;
		while ((n = read(0, buf, sizeof(buf))) > 0)
			if (write(fd, buf, (size_t)n) != n) {
				fprintf(stderr, "pst-client: write: %s\n", strerror(errno));
				return 1;
			}
	}
	if (!no_shut)
		shutdown(fd, SHUT_WR);
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			fprintf(stderr, "pst-client: timed out after %d ms\n", timeout_ms);
			return 3;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "pst-client: read: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
	}
	fflush(stdout);
	close(fd);
	return 0;
usage:
	fputs("usage: pst-client [-t MS] [-n] ADDRESS [MESSAGE]\n", stderr);
	return 2;
}
