/* SPDX-License-Identifier: MIT */
/* The benchmarks' servers and clients that take "127.x.y.z:PORT": parsed
 * into *in, loopback IPv4 only (they never reach past the machine).
 * 0, or -1 when arg is not such an address. */
#ifndef PST_BENCH_LOOPBACK_H
#define PST_BENCH_LOOPBACK_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int bench_loopback4(const char *arg, struct sockaddr_in *in)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	if (!colon || (size_t)(colon - arg) >= sizeof(host))
		return -1;
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = 0;
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1 ||
	    (ntohl(in->sin_addr.s_addr) >> 24) != 127)
		return -1;
	return 0;
}
#endif
