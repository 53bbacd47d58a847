/* spawn_bench [N]: cost of starting a handler, three ways, same binary
 * (/usr/bin/true), same run: the full postern isolation path (namespaces,
 * root with binds, uid, caps, seccomp, rlimits, cgroups), plain fork+exec,
 * and posix_spawn (vfork+exec). Reports the p50 of the spawn call and the
 * round trip (spawn until reaped), and round trips per second. Run it in a
 * throwaway network namespace (bench_spawn.sh does). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

extern char **environ;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *spawn, uint64_t *rt, int n, uint64_t total)
{
	qsort(spawn, (size_t)n, sizeof(*spawn), cmp);
	qsort(rt, (size_t)n, sizeof(*rt), cmp);
	printf("%-22s %10.0f %10.0f %10.0f %12.0f\n", name, spawn[n / 2] / 1e3, rt[n / 2] / 1e3,
	       rt[n * 99 / 100] / 1e3, n / (total / 1e9));
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 300;
	if (n < 10 || n > 100000)
		return 2;
	uint64_t *sp = calloc((size_t)n, 8), *rt = calloc((size_t)n, 8);
	char *const targv[] = { "/usr/bin/true", NULL };

	struct sandbox_mount m[] = {
		{ .kind = SANDBOX_MOUNT_BIND, .src = "/usr", .dst = "/usr" },
		{ .kind = SANDBOX_MOUNT_SYMLINK, .dst = "/lib", .target = "usr/lib" },
		{ .kind = SANDBOX_MOUNT_SYMLINK, .dst = "/lib64", .target = "usr/lib64" },
		{ .kind = SANDBOX_MOUNT_SYMLINK, .dst = "/bin", .target = "usr/bin" },
	};
	const char *av[] = { "/usr/bin/true", NULL };
	struct sandbox_config cfg = { .name = "bench", .argv = av, .uid = 299999, .gid = 299999,
				      .mounts = m, .n_mounts = 4,
				      .limits = { .memory = 64 << 20, .pids = 16, .nofile = 64 },
				      .cgroup_name = "postern-bench" };
	struct sandbox *sb;
	struct sandbox_error err = { 0 };
	if (sandbox_prepare(&cfg, &sb, &err) < 0) {
		fprintf(stderr, "spawn_bench: %s\n", err.msg);
		return 1;
	}
	int netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	printf("%-22s %10s %10s %10s %12s\n", "mode (N=", "spawn_us", "rt_p50_us", "rt_p99_us", "spawns/s");
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		struct sandbox_spawn_args a = { .sock_fd = -1, .stdin_fd = -1, .netns_fd = netns };
		struct sandbox_handler h;
		uint64_t s = now_ns();
		if (sandbox_spawn(sb, &a, &h, &err) < 0) {
			fprintf(stderr, "spawn_bench: %s\n", err.msg);
			return 1;
		}
		sp[i] = now_ns() - s;
		int st;
		sandbox_reap(&h, &st);
		rt[i] = now_ns() - s;
	}
	report("postern full isolation", sp, rt, n, now_ns() - t0);
	/* pre-warmed: set up ahead (not timed), then release -> exit */
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		struct sandbox_spawn_args a = { .sock_fd = -1, .stdin_fd = -1, .netns_fd = netns };
		struct sandbox_handler h;
		if (sandbox_prewarm(sb, &a, &h, &err) < 0) {
			fprintf(stderr, "spawn_bench: %s\n", err.msg);
			return 1;
		}
		struct pollfd pfd = { .fd = h.ctl_fd, .events = POLLIN };
		int r = -EAGAIN;
		while (r == -EAGAIN && poll(&pfd, 1, 5000) == 1)
			r = sandbox_warm_ready(sb, &h, &err);
		if (r < 0) {
			fprintf(stderr, "spawn_bench: prewarm: %s\n", err.msg);
			return 1;
		}
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		uint64_t s = now_ns();
		if (sandbox_release(sb, &h, -1, in, NULL, &err) < 0) {
			fprintf(stderr, "spawn_bench: release: %s\n", err.msg);
			return 1;
		}
		sp[i] = now_ns() - s;
		int st;
		sandbox_reap(&h, &st);
		rt[i] = now_ns() - s;
		total += rt[i];
		close(in);
	}
	report("postern pre-warmed", sp, rt, n, total);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		uint64_t s = now_ns();
		pid_t p = fork();
		if (p == 0) {
			execve(targv[0], targv, environ);
			_exit(127);
		}
		sp[i] = now_ns() - s;
		waitpid(p, NULL, 0);
		rt[i] = now_ns() - s;
	}
	report("fork+exec", sp, rt, n, now_ns() - t0);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		uint64_t s = now_ns();
		pid_t p;
		posix_spawn(&p, targv[0], NULL, NULL, targv, environ);
		sp[i] = now_ns() - s;
		waitpid(p, NULL, 0);
		rt[i] = now_ns() - s;
	}
	report("posix_spawn (vfork)", sp, rt, n, now_ns() - t0);
	sandbox_free(sb);
	return 0;
}
