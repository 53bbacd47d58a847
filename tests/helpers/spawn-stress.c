/* spawn-stress [N]: N fresh spawns on one thread while another thread sets
 * up N pre-warmed handlers of the same sandbox, at the same time (the
 * broker does this: spawns on its loop, pre-warms in a pool thread). Every
 * set-up must succeed: the children share the caller's memory until exec.
 * Prints "spawned=N prewarmed=N failed=N" and exits 1 on any failure. Run
 * as root in a throwaway network namespace. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "tests/helpers/true_sandbox.h"

static struct sandbox *sb;
static int netns, n_iter;
static int failed;

static void *prewarmer(void *arg)
{
	int *ok = arg;
	for (int i = 0; i < n_iter; i++) {
		struct sandbox_spawn_args a = {.sock_fd = -1, .stdin_fd = -1, .netns_fd = netns};
		struct sandbox_handler h;
		struct sandbox_error err = {0};
		if (sandbox_prewarm(sb, &a, &h, &err) < 0) {
			fprintf(stderr, "spawn-stress: prewarm: %s\n", err.msg);
			__atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (sandbox_warm_wait(sb, &h, 5000, &err) < 0) {
			fprintf(stderr, "spawn-stress: prewarm set-up: %s\n", err.msg);
			__atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
		} else {
			(*ok)++;
		}
		sandbox_kill(&h);
		int st;
		sandbox_reap(sb, &h, &st, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	n_iter = argc > 1 ? atoi(argv[1]) : 200;
	if (n_iter < 1 || n_iter > 100000)
		return 2;
	struct sandbox_config cfg = true_sandbox("stress", 299998);
	struct sandbox_error err = {0};
	if (sandbox_prepare(&cfg, &sb, &err) < 0) {
		fprintf(stderr, "spawn-stress: %s\n", err.msg);
		return 1;
	}
	netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int warmed = 0, spawned = 0;
	pthread_t t;
	if (pthread_create(&t, NULL, prewarmer, &warmed) != 0)
		return 1;
	for (int i = 0; i < n_iter; i++) {
		struct sandbox_spawn_args a = {.sock_fd = -1, .stdin_fd = -1, .netns_fd = netns};
		struct sandbox_handler h;
		if (sandbox_spawn(sb, &a, &h, &err) < 0) {
			fprintf(stderr, "spawn-stress: spawn: %s\n", err.msg);
			__atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
			continue;
		}
		spawned++;
		int st;
		sandbox_reap(sb, &h, &st, NULL);
	}
	pthread_join(t, NULL);
	sandbox_free(sb);
	printf("spawned=%d prewarmed=%d failed=%d\n", spawned, warmed, failed);
	return failed ? 1 : 0;
}
