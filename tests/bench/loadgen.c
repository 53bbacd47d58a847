/* loadgen: keeps C connections in flight to an echo service and checks
 * every echoed byte.
 *
 *   loadgen [-c CONC] [-n COUNT] [-d SECONDS] [-p PAYLOAD] [-t TIMEOUT_MS] [-g GAP_MS] [--json]
 * ADDR
 *
 * Per connection: non-blocking connect, send PAYLOAD bytes of a fixed
 * pattern, shutdown(SHUT_WR), read until EOF, check that exactly the bytes
 * sent came back, close. Stops after COUNT connections or SECONDS, whichever
 * comes first. With -g, each of the C clients waits GAP_MS between its
 * connections ("think time"): latency then shows a service that is not
 * saturated, and conns_per_s is bounded by the clients. Prints one line:
 *   completed=N failed=N conns_per_s=X p50_us=N p90_us=N p99_us=N max_us=N
 * (plus failure reasons) and exits 1 if any failed. Targets must be loopback,
 * unless the program runs in a network namespace other than the initial one
 * (a test lab).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { F_CONNECT, F_RESET, F_TIMEOUT, F_SHORT, F_MISMATCH, F__N };
static const char *const fnames[F__N] = {"connect", "reset", "timeout", "short", "mismatch"};

struct conn {
	int fd;
	size_t sent, got;
	uint64_t start;
	uint64_t next_at; /* -g: not before */
	bool active;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	memset(ss, 0, sizeof(*ss));
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	int port = atoi(colon + 1);
	if (port < 1 || port > 65535)
		return -1;
	if (host[0] == '[') {
		size_t l = strlen(host);
		if (l < 3 || host[l - 1] != ']')
			return -1;
		host[l - 1] = 0;
		struct sockaddr_in6 *in6 = (void *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *in = (void *)ss;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	*len = sizeof(*in);
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -1;
}

static bool target_allowed(const struct sockaddr_storage *ss)
{
	struct stat a, b;
	if (ss->ss_family == AF_INET &&
	    (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127)
		return true;
	if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr))
		return true;
	return stat("/proc/self/ns/net", &a) == 0 && stat("/proc/1/ns/net", &b) == 0 &&
	       a.st_ino != b.st_ino;
}

int main(int argc, char **argv)
{
	long conc = 16, count = 1000, payload = 64, timeout_ms = 10000, gap_ms = 0;
	double secs = 30;
	bool json = false;
	const char *target = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-c") && v)
			conc = atol(v), i++;
		else if (!strcmp(a, "-n") && v)
			count = atol(v), i++;
		else if (!strcmp(a, "-d") && v)
			secs = atof(v), i++;
		else if (!strcmp(a, "-p") && v)
			payload = atol(v), i++;
		else if (!strcmp(a, "-t") && v)
			timeout_ms = atol(v), i++;
		else if (!strcmp(a, "-g") && v)
			gap_ms = atol(v), i++;
		else if (!strcmp(a, "--json"))
			json = true;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			puts("usage: loadgen [-c CONC] [-n COUNT] [-d SECONDS] [-p PAYLOAD] [-t "
			     "TIMEOUT_MS] [-g GAP_MS] [--json] ADDR");
			return 0;
		} else if (a[0] != '-' && !target)
			target = a;
		else {
			fprintf(stderr, "loadgen: bad argument %s (see -h)\n", a);
			return 2;
		}
	}
	if (!target || conc < 1 || conc > 4096 || count < 1 || payload < 1 || payload > (1 << 20) ||
	    secs <= 0 || secs > 3600 || timeout_ms < 1 || gap_ms < 0 || gap_ms > 60000) {
		fprintf(stderr, "loadgen: bad arguments (see -h)\n");
		return 2;
	}
	struct sockaddr_storage ss;
	socklen_t slen;
	if (parse_addr(target, &ss, &slen) < 0) {
		fprintf(stderr, "loadgen: %s: expected IPv4:port or [IPv6]:port\n", target);
		return 2;
	}
	if (!target_allowed(&ss)) {
		fprintf(stderr,
		        "loadgen: %s: refusing a non-loopback target outside a test namespace\n",
		        target);
		return 2;
	}

	char *pat = malloc((size_t)payload), *rbuf = malloc(65536);
	struct conn *cs = calloc((size_t)conc, sizeof(*cs));
	uint64_t *lat = calloc((size_t)count, sizeof(*lat));
	if (!pat || !rbuf || !cs || !lat)
		return 1;
	for (long i = 0; i < payload; i++)
		pat[i] = (char)('a' + i % 26);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	long started = 0, completed = 0, failed = 0, fails[F__N] = {0};
	uint64_t t0 = now_us(), deadline = t0 + (uint64_t)(secs * 1e6);

	for (;;) {
		uint64_t now = now_us();
		/* start connections up to the concurrency, while allowed */
		for (long i = 0; i < conc && now < deadline; i++) {
			struct conn *c = &cs[i];
			if (c->active || started >= count || now < c->next_at)
				continue;
			c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			c->sent = c->got = 0;
			c->start = now;
			c->active = true;
			started++;
			if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&ss, slen) < 0 &&
			                  errno != EINPROGRESS)) {
				fails[F_CONNECT]++, failed++;
				if (c->fd >= 0)
					close(c->fd);
				c->active = false;
				continue;
			}
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
			                         .data.u64 = (uint64_t)i};
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		}
		long active = 0;
		for (long i = 0; i < conc; i++)
			active += cs[i].active;
		if (!active && (started >= count || now >= deadline))
			break;
		struct epoll_event evs[256];
		int wait_ms = 50;
		for (long i = 0; gap_ms && i < conc; i++)
			if (!cs[i].active && cs[i].next_at > now &&
			    (int)((cs[i].next_at - now) / 1000) < wait_ms)
				wait_ms = (int)((cs[i].next_at - now) / 1000);
		int n = epoll_wait(ep, evs, 256, wait_ms);
		now = now_us();
		for (int k = 0; k < n; k++) {
			struct conn *c = &cs[evs[k].data.u64];
			int reason = -1;
			bool done = false;
			if (!c->active)
				continue;
			if ((evs[k].events & EPOLLOUT) && c->sent < (size_t)payload) {
				ssize_t w = send(c->fd, pat + c->sent, (size_t)payload - c->sent,
				                 MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN)
					reason = c->sent ? F_RESET : F_CONNECT;
				else if (w > 0 && (c->sent += (size_t)w) == (size_t)payload) {
					shutdown(c->fd, SHUT_WR);
					struct epoll_event ev = {.events = EPOLLIN,
					                         .data.u64 = evs[k].data.u64};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (reason < 0 && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
				for (;;) {
					ssize_t r = read(c->fd, rbuf, 65536);
					if (r > 0) {
						if (c->got + (size_t)r > (size_t)payload ||
						    memcmp(rbuf, pat + c->got, (size_t)r)) {
							reason = F_MISMATCH;
							break;
						}
						c->got += (size_t)r;
						continue;
					}
					if (r == 0) {
						if (c->got == (size_t)payload &&
						    c->sent == (size_t)payload)
							done = true;
						else
							reason = F_SHORT;
					} else if (errno != EAGAIN) {
						reason = c->sent ? F_RESET : F_CONNECT;
					}
					break;
				}
			}
			if (done) {
				lat[completed++] = now - c->start;
			} else if (reason >= 0) {
				fails[reason]++, failed++;
			} else {
				continue;
			}
			close(c->fd);
			c->active = false;
			c->next_at = now + (uint64_t)gap_ms * 1000;
		}
		/* timeouts */
		for (long i = 0; i < conc; i++) {
			struct conn *c = &cs[i];
			if (c->active && now - c->start > (uint64_t)timeout_ms * 1000) {
				fails[F_TIMEOUT]++, failed++;
				close(c->fd);
				c->active = false;
			}
		}
	}
	double el = (double)(now_us() - t0) / 1e6;
	qsort(lat, (size_t)completed, sizeof(*lat), cmp_u64);
#define PCT(p) (completed ? lat[(size_t)((double)(completed - 1) * (p))] : 0)
	if (json)
		printf("{\"completed\":%ld,\"failed\":%ld,\"conns_per_s\":%.1f,\"p50_us\":%llu,"
		       "\"p90_us\":%llu,"
		       "\"p99_us\":%llu,\"max_us\":%llu}\n",
		       completed, failed, completed / el, (unsigned long long)PCT(0.5),
		       (unsigned long long)PCT(0.9), (unsigned long long)PCT(0.99),
		       (unsigned long long)PCT(1.0));
	else {
		printf("completed=%ld failed=%ld conns_per_s=%.1f p50_us=%llu p90_us=%llu "
		       "p99_us=%llu max_us=%llu",
		       completed, failed, completed / el, (unsigned long long)PCT(0.5),
		       (unsigned long long)PCT(0.9), (unsigned long long)PCT(0.99),
		       (unsigned long long)PCT(1.0));
		for (int f = 0; f < F__N; f++)
			if (fails[f])
				printf(" fail_%s=%ld", fnames[f], fails[f]);
		printf("\n");
	}
	return failed ? 1 : 0;
}
