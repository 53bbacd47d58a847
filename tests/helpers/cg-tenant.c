/* SPDX-License-Identifier: MIT */
/*
 * cg-tenant: a handler that leaves what it can in its cgroup for the next
 * request, for t_cgroup_reuse. Reads one command from stdin (the client):
 *   burn MS     spin until it has used MS milliseconds of CPU time
 *   alloc MB    allocate and touch MB MiB of anonymous memory
 *   fill MB     write MB MiB into /tmp/fill (the sandbox's tmpfs), and leave it
 *   cache MB    write MB MiB into /data/cache (a host directory: its page cache
 *               stays charged to the cgroup after the handler is gone)
 *   hold MS     sleep MS milliseconds (so a test can look at it)
 * and answers "done CMD N" before it exits 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* this process's CPU time: a burn counts what the cgroup will count,
 * however busy the machine is */
static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(void)
{
	char cmd[16] = "";
	long n = 0;
	char line[64];
	if (!fgets(line, sizeof(line), stdin) || sscanf(line, "%15s %ld", cmd, &n) != 2 || n < 0 ||
	    n > 100000) {
		printf("usage: burn MS | alloc MB | fill MB | cache MB | hold MS\n");
		return 2;
	}
	if (!strcmp(cmd, "burn")) {
		double end = now_ms() + (double)n;
		volatile unsigned long x = 0;
		while (now_ms() < end)
			for (int i = 0; i < 10000; i++)
				x += (unsigned long)i;
	} else if (!strcmp(cmd, "alloc")) {
		size_t len = (size_t)n << 20;
		char *p = malloc(len);
		if (!p)
			return 3;
		for (size_t i = 0; i < len; i += 4096)
			p[i] = 1;
	} else if (!strcmp(cmd, "fill") || !strcmp(cmd, "cache")) {
		int fd = open(cmd[0] == 'f' ? "/tmp/fill" : "/data/cache",
		              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		static char buf[1 << 20];
		memset(buf, 'x', sizeof(buf));
		for (long i = 0; fd >= 0 && i < n; i++)
			if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				return 4;
		if (fd < 0)
			return 4;
	} else if (!strcmp(cmd, "hold")) {
		usleep((useconds_t)n * 1000); /* wall time */
	} else {
		return 2;
	}
	printf("done %s %ld\n", cmd, n);
	return 0;
}
