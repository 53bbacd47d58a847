/* SPDX-License-Identifier: MIT */
/*
 * cpuid_cost [N]: what one CPUID instruction costs on this machine, in us
 * (the median of 5 batches of N, default 200, over the leaves glibc's
 * dynamic loader asks at every exec: vendor, features, extended features,
 * the save area, the AMD and Intel cache leaves). Under a hypervisor each
 * one exits to it; the loader runs dozens per process (init_cpu_features,
 * its cache sizes), which on the development VM took ~200 us of a `cat`'s
 * ~830 under both postern and tcpserver (docs/performance.md). For
 * bench_compare's first line, to place its figures. Prints "n/a" off x86.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static const unsigned leaves[][2] = {
    {0x0, 0},        {0x1, 0},        {0x7, 0}, {0xd, 0},        {0x80000000, 0},
    {0x80000005, 0}, {0x80000006, 0}, {0x4, 0}, {0x8000001d, 0},
};
#define N_LEAVES (sizeof(leaves) / sizeof(leaves[0]))

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
	if (n < 1 || n > 100000) {
		fprintf(stderr, "usage: cpuid_cost [N (1..100000)]\n");
		return 2;
	}
	double per[5];
	static volatile unsigned sink; /* keeps the results, so the loop stays */
	for (int b = 0; b < 5; b++) {
		double t0 = now_us();
		for (long i = 0; i < n; i++) {
			unsigned a, bx, c, d;
			const unsigned *l = leaves[(size_t)i % N_LEAVES];
			__cpuid_count(l[0], l[1], a, bx, c, d);
			sink ^= a ^ bx ^ c ^ d;
		}
		per[b] = (now_us() - t0) / (double)n;
	}
	qsort(per, 5, sizeof(per[0]), cmp);
	printf("%.2f\n", per[2]);
	return 0;
}
#else
int main(void)
{
	printf("n/a\n");
	return 0;
}
#endif
