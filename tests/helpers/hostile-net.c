/* hostile-net MODE ARGS...: a hostile handler for the tests of the
 * handed-over socket (t_hostile_net.sh). The socket the broker hands over
 * lives in the broker's network namespace; this tries to use it to get
 * out. Everything it does it first does on a dup() of the socket, with the
 * original closed, so that nothing depends on the fd number. Each outcome
 * is one line on stderr (the broker's log), starting "hostile: ":
 *
 *   reconnect ADDR PORT   socket on fd 0 (stdio): connect(AF_UNSPEC) to
 *                         dissolve the connection, then connect to
 *                         ADDR:PORT; "CONNECTED ... read: LINE" or
 *                         "refused: ERROR"
 *   listen PORT SECONDS   socket on fd 0: dissolve it (it loses its port),
 *                         bind it to PORT (needs allow_bind; else
 *                         listen() autobinds one), listen, accept for
 *                         SECONDS; "listening on A:P", then "ACCEPTED
 *                         from PEER" (it writes "stolen" to it) or
 *                         "accepted nothing"
 *   startup ADDR PORT     listener on fd 3 (LISTEN_FDS, a startup
 *                         handler): shutdown() it, then connect to
 *                         ADDR:PORT, as reconnect
 *   startup-child PORT SECONDS
 *                         listener on fd 3: accept one connection (it
 *                         carries the listener's mark), then as listen
 *
 * It sends "GET /metrics HTTP/1.0" once connected, so that a metrics
 * endpoint answers; a banner server answers anyway. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int parse(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;
	memset(ss, 0, sizeof(*ss));
	uint16_t p = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET, in->sin_port = p, *len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6, in6->sin6_port = p, *len = sizeof(*in6);
		return 0;
	}
	return -1;
}

/* the socket at fd, as a dup with the original (and fd 1, for stdio) closed */
static int take(int fd)
{
	int s = dup(fd);
	if (s < 0) {
		fprintf(stderr, "hostile: dup %d: %s\n", fd, strerror(errno));
		exit(1);
	}
	close(fd);
	if (fd == 0)
		close(1);
	return s;
}

static void dissolve(int s)
{
	struct sockaddr sa = {.sa_family = AF_UNSPEC};
	if (connect(s, &sa, sizeof(sa)) < 0)
		fprintf(stderr, "hostile: connect(AF_UNSPEC): %s\n", strerror(errno));
}

/* connect s to host:port within 3 s and say what came of it */
static int reconnect(int s, const char *what, const char *host, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (parse(host, port, &ss, &len) < 0) {
		fprintf(stderr, "hostile: %s: not an address\n", host);
		return 2;
	}
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	int r = connect(s, (struct sockaddr *)&ss, len), e = errno;
	if (r < 0 && e == EINPROGRESS) {
		struct pollfd p = {.fd = s, .events = POLLOUT};
		socklen_t el = sizeof(e);
		if (poll(&p, 1, 3000) <= 0)
			e = ETIMEDOUT;
		else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			e = errno;
		r = e ? -1 : 0;
	}
	if (r < 0) {
		fprintf(stderr, "hostile: %s %s:%s: refused: %s\n", what, host, port, strerror(e));
		return 0;
	}
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	struct timeval tv = {2, 0};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	if (write(s, req, sizeof(req) - 1) < 0)
		e = errno;
	char buf[256] = "";
	ssize_t n = read(s, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	fprintf(stderr, "hostile: %s %s:%s: CONNECTED (escaped the sandbox), read: %s\n", what,
	        host, port, buf);
	return 0;
}

static int listen_on(int s, int port_wanted, int secs)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	if (getsockname(s, (struct sockaddr *)&ss, &sl) == 0 && port_wanted > 0) {
		/* the address it kept, another port */
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port_wanted);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port_wanted);
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&ss, sl) < 0)
			fprintf(stderr, "hostile: bind port %d: %s\n", port_wanted,
			        strerror(errno));
	}
	if (listen(s, 16) < 0) {
		fprintf(stderr, "hostile: listen: %s\n", strerror(errno));
		return 0;
	}
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getsockname(s, (struct sockaddr *)&me, &ml) == 0) {
		if (me.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->sin_addr, a, sizeof(a));
			port = ntohs(((struct sockaddr_in *)&me)->sin_port);
		} else {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->sin6_addr, a, sizeof(a));
			port = ntohs(((struct sockaddr_in6 *)&me)->sin6_port);
		}
	}
	fprintf(stderr, "hostile: listening on %s:%d\n", a, port);
	int got = 0;
	time_t end = time(NULL) + secs;
	while (time(NULL) < end) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		int c = accept(s, (struct sockaddr *)&peer, &pl);
		if (c < 0)
			continue;
		char pa[INET6_ADDRSTRLEN] = "?";
		if (peer.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, pa,
			          sizeof(pa));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, pa,
			          sizeof(pa));
		fprintf(stderr,
		        "hostile: ACCEPTED from %s (a listener in the broker's namespace)\n", pa);
		ssize_t w = write(c, "stolen\n", 7);
		(void)w;
		close(c);
		got++;
	}
	if (!got)
		fprintf(stderr, "hostile: accepted nothing in %ds\n", secs);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "reconnect")) {
		int s = take(0);
		dissolve(s);
		return reconnect(s, "reconnect", argv[2], argv[3]);
	}
	if (argc == 4 && !strcmp(argv[1], "listen")) {
		int s = take(0);
		dissolve(s);
		return listen_on(s, atoi(argv[2]), atoi(argv[3]));
	}
	if (argc == 4 && !strcmp(argv[1], "startup-child")) {
		int l = take(3);
		fprintf(stderr, "hostile: startup-child: waiting for a connection\n");
		struct pollfd p = {.fd = l, .events = POLLIN};
		poll(&p, 1, 120000); /* (the broker made the listener non-blocking) */
		int c = accept4(l, NULL, NULL, 0);
		if (c < 0) {
			fprintf(stderr, "hostile: accept: %s\n", strerror(errno));
			return 1;
		}
		dissolve(c);
		return listen_on(c, atoi(argv[2]), atoi(argv[3]));
	}
	if (argc == 4 && !strcmp(argv[1], "startup")) {
		const char *n = getenv("LISTEN_FDS");
		if (!n || atoi(n) < 1) {
			fprintf(stderr, "hostile: startup: no LISTEN_FDS\n");
			return 2;
		}
		int s = take(3);
		if (shutdown(s, SHUT_RDWR) < 0)
			fprintf(stderr, "hostile: shutdown: %s\n", strerror(errno));
		return reconnect(s, "startup", argv[2], argv[3]);
	}
	fprintf(
	    stderr,
	    "usage: hostile-net reconnect ADDR PORT | listen PORT SECONDS | startup ADDR PORT | "
	    "startup-child PORT SECONDS\n");
	return 2;
}
