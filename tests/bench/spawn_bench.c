/* spawn_bench [N]: cost of starting a handler, five ways, same binary
 * (/usr/bin/true), same run, interleaved: the full postern isolation path
 * (namespaces, root with binds, uid, caps, seccomp, rlimits, cgroups), the
 * same with EXTRA_FDS more fds open in the caller (as a broker with 1,000
 * live handlers holds: each is copied into the child's fd table at the
 * clone and closed there before exec), a pre-warmed postern handler (from
 * the request on), plain fork+exec, and posix_spawn (vfork+exec). Reports the p50 of the spawn call
 * and the round trip (spawn until reaped), round trips per second, and the ratios to fork+exec.
 * Then whether process creation scales with CPUs on this machine: posix_spawn+wait loops, and for
 * contrast page-fault loops, one alone and then two at once on two CPUs (pre-warming under steady
 * load depends on it: README, "Performance"). Run it in a throwaway network namespace
 * (bench_spawn.sh does). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "tests/helpers/true_sandbox.h"

extern char **environ;

#define EXTRA_FDS 2000

/* EXTRA_FDS more fds open (distinct files, as a broker's are) or closed
 * again; false when RLIMIT_NOFILE does not allow them. */
static bool extra_fds(bool open_them)
{
	static int fd[EXTRA_FDS], n;
	if (!open_them) {
		while (n > 0)
			close(fd[--n]);
		return true;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < EXTRA_FDS + 100) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	while (n < EXTRA_FDS) {
		if ((fd[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
			extra_fds(false);
			return false;
		}
		n++;
	}
	return true;
}

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

/* n rounds of: posix_spawn+wait of argv[0] (spawns), or map 1 MiB, touch
 * each page, unmap (faults) */
static void loop(bool spawns, int n, char *const *targv)
{
	for (int i = 0; i < n; i++) {
		if (spawns) {
			pid_t p;
			if (posix_spawn(&p, targv[0], NULL, NULL, targv, environ) == 0)
				waitpid(p, NULL, 0);
			continue;
		}
		size_t sz = 1 << 20;
		volatile char *m =
		    mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			_exit(1);
		for (size_t o = 0; o < sz; o += 4096)
			m[o] = 1;
		munmap((void *)m, sz);
	}
}

/* Throughput of `loops` processes running loop() at once, each on a CPU of
 * its own, against one alone: 2.0 is perfect scaling, 1.0 none. */
static double scaling(bool spawns, int n, char *const *targv)
{
	cpu_set_t avail;
	if (sched_getaffinity(0, sizeof(avail), &avail) < 0 || CPU_COUNT(&avail) < 2)
		return 0;
	int cpus[2], k = 0;
	for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
		if (CPU_ISSET(c, &avail))
			cpus[k++] = c;
	uint64_t took[2];
	for (int loops = 1; loops <= 2; loops++) {
		uint64_t s = now_ns();
		pid_t kids[2];
		for (int i = 0; i < loops; i++) {
			kids[i] = fork();
			if (kids[i] == 0) {
				cpu_set_t one;
				CPU_ZERO(&one);
				CPU_SET(cpus[i], &one);
				sched_setaffinity(0, sizeof(one), &one);
				loop(spawns, n, targv);
				_exit(0);
			}
		}
		for (int i = 0; i < loops; i++)
			if (kids[i] > 0)
				waitpid(kids[i], NULL, 0);
		took[loops - 1] = now_ns() - s;
	}
	return 2.0 * (double)took[0] / (double)took[1];
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 300;
	if (n < 10 || n > 100000)
		return 2;
	char *const targv[] = {"/usr/bin/true", NULL};

	struct sandbox_config cfg = true_sandbox("bench", 299999);
	cfg.limits.memory = 64 << 20;
	cfg.limits.pids = 16;
	cfg.cgroup_name = "postern-bench";
	struct sandbox *sb;
	struct sandbox_error err = {0};
	if (sandbox_prepare(&cfg, &sb, &err) < 0) {
		fprintf(stderr, "spawn_bench: %s\n", err.msg);
		return 1;
	}
	int netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	/* the four modes in alternating blocks of BLOCK spawns: each block
	 * pays for its own deferred kernel work (namespace and cgroup
	 * teardown finishes after the reap), and the machine's drift during
	 * the run weighs on each mode alike */
	enum { FULL, FULL_FDS, WARM, FORK, VFORK, MODES };
	static const char *const names[MODES] = {"postern full isolation", "... +2000 fds open",
	                                         "postern pre-warmed", "fork+exec",
	                                         "posix_spawn (vfork)"};
	bool fds_ok = extra_fds(true);
	extra_fds(false);
	uint64_t *msp[MODES], *mrt[MODES], mtotal[MODES] = {0};
	for (int md = 0; md < MODES; md++)
		if (!(msp[md] = calloc((size_t)n, 8)) || !(mrt[md] = calloc((size_t)n, 8)))
			return 1;
	enum { BLOCK = 50 };
	for (int b0 = 0; b0 < n; b0 += BLOCK) {
		for (int k = 0; k < MODES * BLOCK; k++) {
			int mode = k / BLOCK, i = b0 + k % BLOCK;
			if (i >= n || (mode == FULL_FDS && !fds_ok))
				continue;
			if (k % BLOCK == 0)
				extra_fds(mode == FULL_FDS);
			struct sandbox_spawn_args a = {
			    .sock_fd = -1, .stdin_fd = -1, .netns_fd = netns};
			struct sandbox_handler h;
			int in = -1, st;
			pid_t p;
			uint64_t s = 0, spawned = 0;
			switch (mode) {
			case FULL:
			case FULL_FDS:
				s = now_ns();
				if (sandbox_spawn(sb, &a, &h, &err) < 0) {
					fprintf(stderr, "spawn_bench: %s\n", err.msg);
					return 1;
				}
				spawned = now_ns();
				sandbox_reap(sb, &h, &st, NULL);
				break;
			case WARM: {
				/* set up ahead (not timed), then request -> exit */
				if (sandbox_prewarm(sb, &a, &h, &err) < 0) {
					fprintf(stderr, "spawn_bench: %s\n", err.msg);
					return 1;
				}
				if (sandbox_warm_wait(sb, &h, 5000, &err) < 0) {
					fprintf(stderr, "spawn_bench: prewarm: %s\n", err.msg);
					return 1;
				}
				in = open("/dev/null", O_RDONLY | O_CLOEXEC);
				s = now_ns();
				if (sandbox_release(sb, &h, -1, in, NULL, &err) < 0) {
					fprintf(stderr, "spawn_bench: release: %s\n", err.msg);
					return 1;
				}
				spawned = now_ns();
				sandbox_reap(sb, &h, &st, NULL); /* release closed in */
				break;
			}
			case FORK:
				s = now_ns();
				p = fork();
				if (p == 0) {
					execve(targv[0], targv, environ);
					_exit(127);
				}
				spawned = now_ns();
				waitpid(p, NULL, 0);
				break;
			case VFORK:
				s = now_ns();
				posix_spawn(&p, targv[0], NULL, NULL, targv, environ);
				spawned = now_ns();
				waitpid(p, NULL, 0);
				break;
			}
			msp[mode][i] = spawned - s;
			mrt[mode][i] = now_ns() - s;
			mtotal[mode] += mrt[mode][i];
		}
	}
	char head[32];
	snprintf(head, sizeof(head), "mode (N=%d)", n);
	printf("%-22s %10s %10s %10s %12s\n", head, "spawn_us", "rt_p50_us", "rt_p99_us",
	       "spawns/s");
	for (int md = 0; md < MODES; md++)
		if (md != FULL_FDS || fds_ok)
			report(names[md], msp[md], mrt[md], n, mtotal[md]); /* sorts them */
	printf("full isolation / fork+exec, round trip p50: %.2f (target <= 1.3)\n",
	       (double)mrt[FULL][n / 2] / (double)mrt[FORK][n / 2]);
	printf("pre-warmed / fork+exec, round trip p50:     %.2f\n",
	       (double)mrt[WARM][n / 2] / (double)mrt[FORK][n / 2]);
	if (fds_ok)
		printf("each fd the caller holds, round trip p50:    %+.3f us per spawn\n",
		       ((double)mrt[FULL_FDS][n / 2] - (double)mrt[FULL][n / 2]) / 1e3 / EXTRA_FDS);
	else
		printf("each fd the caller holds: not measured (RLIMIT_NOFILE < %d)\n",
		       EXTRA_FDS + 100);
	sandbox_free(sb);
	sandbox_cg_fini(NULL);
	double sp = scaling(true, n, targv), pf = scaling(false, n, targv);
	if (sp > 0)
		printf("2 CPUs / 1, throughput: posix_spawn+wait %.2f, page faults %.2f"
		       " (2.00 scales; below 1.00, two at once do less than one)\n",
		       sp, pf);
	return 0;
}
