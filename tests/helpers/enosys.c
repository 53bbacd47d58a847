/* enosys SYSCALL[,SYSCALL...] PROGRAM [ARG...]: PROGRAM run with each
 * SYSCALL failing with ENOSYS, as a container's seccomp profile makes the
 * calls it does not know (Docker's does for clone3, for glibc to fall back
 * to clone), to test the broker's fallbacks: clone() and cgroup.procs where
 * clone3 is refused, a child copying the broker's fd table where
 * pidfd_getfd or close_range is. Its filter is inherited by the handlers
 * (stacked under theirs); it sets no no_new_privs (root needs none). */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: enosys SYSCALL[,SYSCALL...] PROGRAM [ARG...]\n");
		return 2;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = ctx ? seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) : -ENOMEM;
	char list[256];
	snprintf(list, sizeof(list), "%s", argv[1]);
	for (char *save = NULL, *n = strtok_r(list, ",", &save); r == 0 && n;
	     n = strtok_r(NULL, ",", &save)) {
		int nr = seccomp_syscall_resolve_name(n);
		if (nr == __NR_SCMP_ERROR) {
			fprintf(stderr, "enosys: unknown syscall \"%s\"\n", n);
			return 2;
		}
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	}
	if (r == 0)
		r = seccomp_load(ctx);
	if (r < 0) {
		fprintf(stderr, "enosys: seccomp: %s\n", strerror(-r));
		return 1;
	}
	execvp(argv[2], argv + 2);
	fprintf(stderr, "enosys: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
