/* spawn-signals [N [CGROUP]]: N spawns of a sandbox with memory and pids limits (so
 * per-handler cgroups with limits are written) while SIGALRM, handled with
 * SA_RESTART, arrives every 50 us, as the broker's own signals (SIGHUP,
 * SIGTERM) may at any moment. No spawn may fail: a system call the kernel
 * will not restart (cgroup v1 returns EINTR from a memory limit write while
 * any signal is pending) must be retried by the sandbox code. Prints
 * "spawned=N failed=N signals=N" and exits 1 on any failure. The handlers'
 * cgroups go under CGROUP (default pst-signals-PID), removed at the end.
 * Run as root in a throwaway network namespace. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "tests/helpers/true_sandbox.h"

static volatile sig_atomic_t n_signals;

static void on_alarm(int sig)
{
	(void)sig;
	n_signals++;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	if (n < 1 || n > 100000)
		return 2;
	char group[64];
	if (argc > 2)
		snprintf(group, sizeof(group), "%s", argv[2]);
	else
		snprintf(group, sizeof(group), "pst-signals-%d", (int)getpid());
	struct sandbox_config cfg = true_sandbox("signals", 299997);
	cfg.cgroup_name = group;
	cfg.limits.memory = 64 << 20;
	cfg.limits.pids = 16;
	struct sandbox *sb;
	struct sandbox_error err = {0};
	if (sandbox_prepare(&cfg, &sb, &err) < 0) {
		fprintf(stderr, "spawn-signals: %s\n", err.msg);
		return 1;
	}
	int netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 50}, {0, 50}};
	setitimer(ITIMER_REAL, &it, NULL);
	int spawned = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		struct sandbox_spawn_args a = {.sock_fd = -1, .stdin_fd = -1, .netns_fd = netns};
		struct sandbox_handler h;
		if (sandbox_spawn(sb, &a, &h, &err) < 0) {
			if (failed++ < 5)
				fprintf(stderr, "spawn-signals: spawn: %s\n", err.msg);
			continue;
		}
		spawned++;
		int st;
		sandbox_reap(sb, &h, &st, NULL);
	}
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	sandbox_free(sb);
	sandbox_cg_fini(NULL);
	printf("spawned=%d failed=%d signals=%d\n", spawned, failed, (int)n_signals);
	return failed ? 1 : 0;
}
