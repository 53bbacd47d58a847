/* SPDX-License-Identifier: MIT */
/*
 * The value parsers of the policy format, shared by the loader and the CLI:
 * durations, sizes, CIDRs and socket addresses. They know nothing of JSON.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "broker/broker.h"

/* Leading decimal digits as an unsigned integer; -ERANGE on overflow,
 * -EINVAL if there are none. *end points past them. */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

int pst_parse_duration_ms(const char *s, uint64_t *out)
{
	uint64_t v, mul;
	const char *u;
	int r = parse_digits(s, &v, &u);
	if (r < 0)
		return r;
	if (!strcmp(u, "ms"))
		mul = 1;
	else if (!strcmp(u, "s"))
		mul = 1000;
	else if (!strcmp(u, "m"))
		mul = 60 * 1000;
	else if (!strcmp(u, "h"))
		mul = 3600 * 1000;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int pst_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *u;
	unsigned shift;
	int r = parse_digits(s, &v, &u);
	if (r < 0)
		return r;
	if (!*u)
		shift = 0;
	else if (!strcmp(u, "K"))
		shift = 10;
	else if (!strcmp(u, "M"))
		shift = 20;
	else if (!strcmp(u, "G"))
		shift = 30;
	else
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static void cidr_clear_host(struct pst_cidr *c)
{
	size_t bytes = c->family == AF_INET ? 4 : 16;
	for (size_t i = 0; i < bytes; i++) {
		unsigned bit0 = (unsigned)i * 8;
		if (bit0 >= c->prefix)
			c->addr[i] = 0;
		else if (bit0 + 8 > c->prefix)
			c->addr[i] &= (uint8_t)(0xff << (8 - (c->prefix - bit0)));
	}
}

void pst_cidr_format(const struct pst_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->prefix);
}

int pst_parse_cidr(const char *s, struct pst_cidr *out, char *why, size_t whylen)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	struct pst_cidr c = {0};

	if (alen == 0 || alen >= sizeof(addr)) {
		snprintf(why, whylen, "not an IPv4 or IPv6 address or CIDR");
		return -EINVAL;
	}
	memcpy(addr, s, alen);
	addr[alen] = 0;
	if (strchr(addr, '%')) {
		snprintf(why, whylen, "zone identifiers are not allowed");
		return -EINVAL;
	}
	if (inet_pton(AF_INET, addr, c.addr) == 1) {
		c.family = AF_INET;
	} else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
		c.family = AF_INET6;
	} else {
		snprintf(why, whylen, "\"%s\" is not an IPv4 or IPv6 address", addr);
		return -EINVAL;
	}
	unsigned max = c.family == AF_INET ? 32 : 128;
	if (slash) {
		uint64_t p;
		const char *end;
		if (parse_digits(slash + 1, &p, &end) < 0 || *end || end - (slash + 1) > 3) {
			snprintf(why, whylen, "prefix length \"%s\" is not a number", slash + 1);
			return -EINVAL;
		}
		if (p > max) {
			snprintf(why, whylen, "prefix length %llu is out of range for %s",
			         (unsigned long long)p, c.family == AF_INET ? "IPv4" : "IPv6");
			return -EINVAL;
		}
		c.prefix = (uint8_t)p;
	} else {
		c.prefix = (uint8_t)max;
	}
	struct pst_cidr net = c;
	cidr_clear_host(&net);
	if (memcmp(net.addr, c.addr, sizeof(c.addr))) {
		char n[64];
		pst_cidr_format(&net, n, sizeof(n));
		snprintf(why, whylen, "host bits are set; the network is %s", n);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

static int parse_port(const char *s, uint16_t *port, char *why, size_t whylen)
{
	uint64_t p;
	const char *end;
	if (parse_digits(s, &p, &end) < 0 || *end || end - s > 5) {
		snprintf(why, whylen, "port \"%s\" is not a number", s);
		return -EINVAL;
	}
	if (p < 1 || p > 65535) {
		snprintf(why, whylen, "port %llu is out of range 1-65535", (unsigned long long)p);
		return -EINVAL;
	}
	*port = (uint16_t)p;
	return 0;
}

/* "unix:/path"; path is what follows "unix:". */
static int parse_unix(const char *path, struct pst_sockaddr *a, char *why, size_t whylen)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
	if (path[0] != '/') {
		snprintf(why, whylen, "unix socket path must be absolute");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(un->sun_path)) {
		snprintf(why, whylen, "unix socket path longer than %zu bytes",
		         sizeof(un->sun_path) - 1);
		return -EINVAL;
	}
	un->sun_family = AF_UNIX;
	strcpy(un->sun_path, path);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	return 0;
}

/* "[IPv6]:port" */
static int parse_inet6(const char *s, struct pst_sockaddr *a, char *why, size_t whylen)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *close = strchr(s, ']');
	if (!close || close[1] != ':') {
		snprintf(why, whylen, "expected [IPv6]:port");
		return -EINVAL;
	}
	size_t hl = (size_t)(close - s - 1);
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(why, whylen, "expected [IPv6]:port");
		return -EINVAL;
	}
	memcpy(host, s + 1, hl);
	host[hl] = 0;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
	if (strchr(host, '%')) {
		snprintf(why, whylen, "zone identifiers are not allowed");
		return -EINVAL;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
		snprintf(why, whylen, "\"%s\" is not an IPv6 address", host);
		return -EINVAL;
	}
	if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		snprintf(why, whylen,
		         "IPv4-mapped IPv6 addresses are not allowed; write the IPv4 form");
		return -EINVAL;
	}
	if (parse_port(close + 2, &in6->sin6_port, why, whylen) < 0)
		return -EINVAL;
	in6->sin6_port = htons(in6->sin6_port);
	in6->sin6_family = AF_INET6;
	a->len = sizeof(*in6);
	return 0;
}

/* "IPv4:port" */
static int parse_inet4(const char *s, struct pst_sockaddr *a, char *why, size_t whylen)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *colon = strrchr(s, ':');
	if (!colon || strchr(s, ':') != colon) {
		snprintf(why, whylen, "expected IPv4:port, [IPv6]:port or unix:/path");
		return -EINVAL;
	}
	size_t hl = (size_t)(colon - s);
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(why, whylen, "expected IPv4:port, [IPv6]:port or unix:/path");
		return -EINVAL;
	}
	memcpy(host, s, hl);
	host[hl] = 0;
	struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
		snprintf(why, whylen, "\"%s\" is not an IPv4 address", host);
		return -EINVAL;
	}
	if (parse_port(colon + 1, &in->sin_port, why, whylen) < 0)
		return -EINVAL;
	in->sin_port = htons(in->sin_port);
	in->sin_family = AF_INET;
	a->len = sizeof(*in);
	return 0;
}

int pst_parse_sockaddr(const char *s, struct pst_sockaddr *out, char *why, size_t whylen)
{
	struct pst_sockaddr a;
	memset(&a, 0, sizeof(a));

	size_t n = strlen(s);
	if (n >= sizeof(a.text)) {
		snprintf(why, whylen, "address too long");
		return -EINVAL;
	}
	memcpy(a.text, s, n + 1);
	int r = !strncmp(s, "unix:", 5) ? parse_unix(s + 5, &a, why, whylen)
	        : s[0] == '['           ? parse_inet6(s, &a, why, whylen)
	                                : parse_inet4(s, &a, why, whylen);
	if (r < 0)
		return r;
	*out = a;
	return 0;
}
