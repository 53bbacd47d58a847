/* no-clone3 PROGRAM [ARG...]: PROGRAM run with clone3() failing with
 * ENOSYS, as a container's seccomp profile makes it (Docker's does, for
 * glibc to fall back to clone), to test that the broker falls back to
 * clone() and cgroup.procs there. Its filter is inherited by the handlers
 * (stacked under theirs); it sets no no_new_privs (root needs none). */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: no-clone3 PROGRAM [ARG...]\n");
		return 2;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = ctx ? seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) : -ENOMEM;
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	if (r < 0) {
		fprintf(stderr, "no-clone3: seccomp: %s\n", strerror(-r));
		return 1;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "no-clone3: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
