/* confine: a handler that reports its own confinement to its client, in
 * plain words (one "key: value" per line): identity, capabilities,
 * no_new_privs and seccomp, pid and hostname, what its root contains, and
 * what happens when it tries things a handler should not be able to do
 * (mounts, namespaces, ptrace, sockets of other families, raw sockets,
 * bind and listen). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *try(int r)
{
	static char b[96];
	if (r >= 0)
		return "ALLOWED";
	snprintf(b, sizeof(b), "refused (%s)", strerror(errno));
	return b;
}

/* a child process made with clone(flags) (or clone3 with no flags): the
 * child exits at once */
static const char *try_clone(unsigned long flags, int use_clone3)
{
	uint64_t args[8] = {0}; /* struct clone_args, version 0 */
	args[4] = SIGCHLD;      /* exit_signal */
	long r = use_clone3 ? syscall(SYS_clone3, args, sizeof(args))
	                    : syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return try(r < 0 ? -1 : 0);
}

int main(void)
{
	FILE *out = stdout;
	if (getenv("LISTEN_FDS"))
		out = fdopen(3, "w");
	char host[64] = "";
	gethostname(host, sizeof(host));
	fprintf(out, "uid: %d (effective %d), gid: %d\n", (int)getuid(), (int)geteuid(),
	        (int)getgid());
	fprintf(out, "pid: %d, hostname: %s\n", (int)getpid(), host);
	FILE *st = fopen("/proc/self/status", "re");
	if (st) {
		char line[256];
		while (fgets(line, sizeof(line), st))
			if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
			    !strncmp(line, "Seccomp:", 8) || !strncmp(line, "FDSize:", 7))
				fputs(line, out);
		fclose(st);
	} else {
		fprintf(out, "NoNewPrivs:\t%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	}
	char *names[256];
	size_t n = 0;
	DIR *d = opendir("/");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 256)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	if (d)
		closedir(d);
	qsort(names, n, sizeof(names[0]), cmp);
	fprintf(out, "root:");
	for (size_t i = 0; i < n; i++)
		fprintf(out, " %s", names[i]);
	fprintf(out, "\n");
	fprintf(out, "open /etc/shadow: %s\n", try(open("/etc/shadow", O_RDONLY)));
	fprintf(out, "write /usr: %s\n",
	        try(open("/usr/.postern-probe", O_WRONLY | O_CREAT, 0600)));
	fprintf(out, "mount tmpfs: %s\n", try(mount("tmpfs", "/tmp", "tmpfs", 0, NULL)));
	fprintf(out, "unshare(CLONE_NEWNS): %s\n", try(unshare(CLONE_NEWNS)));
	fprintf(out, "unshare(CLONE_NEWUSER): %s\n", try(unshare(CLONE_NEWUSER)));
	fprintf(out, "clone(CLONE_NEWUTS): %s\n", try_clone(CLONE_NEWUTS, 0));
	fprintf(out, "clone(CLONE_NEWNET): %s\n", try_clone(CLONE_NEWNET, 0));
	fprintf(out, "clone3: %s\n", try_clone(0, 1));
	fprintf(out, "fork: %s\n", try_clone(0, 0));
	fprintf(out, "ptrace(TRACEME): %s\n", try((int)ptrace(PTRACE_TRACEME, 0, NULL, NULL)));
	fprintf(out, "raw socket: %s\n", try(socket(AF_INET, SOCK_RAW, 1)));
	fprintf(out, "packet socket: %s\n", try(socket(AF_PACKET, SOCK_RAW, 0)));
	fprintf(out, "netlink socket: %s\n", try(socket(AF_NETLINK, SOCK_RAW, 0)));
	fprintf(out, "vsock socket: %s\n", try(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0)));
	fprintf(out, "alg socket: %s\n", try(socket(AF_ALG, SOCK_SEQPACKET, 0)));
	/* handlers of a sandbox share its network namespace: no listener
	 * one could offer another (unless the policy says allow_bind) */
	int s4 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any = {.sin_family = AF_INET};
	fprintf(out, "bind: %s\n", try(bind(s4, (struct sockaddr *)&any, sizeof(any))));
	fprintf(out, "listen: %s\n", try(listen(s4, 1)));
	close(s4);
	struct stat sst;
	if (fstat(0, &sst) == 0 && S_ISSOCK(sst.st_mode)) {
		int fl = fcntl(0, F_GETFL);
		fprintf(out, "socket: %s\n",
		        fl < 0            ? strerror(errno)
		        : fl & O_NONBLOCK ? "non-blocking"
		                          : "blocking");
	}
	fprintf(out, "open fds:");
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			fprintf(out, " %d", fd);
	fprintf(out, "\n");
	fflush(out);
	return 0;
}
