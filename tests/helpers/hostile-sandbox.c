/* hostile-sandbox: a handler that attacks its own confinement, for the
 * t_hostile_* integration tests. It runs as a postern handler (stdio
 * socket on fd 0/1, libc only) and writes what each attempt gave, one line
 * each, "WHAT: ALLOWED" or "WHAT: refused (ERRNO TEXT)".
 *
 * The command is argv[1..], or else the first line the client sends:
 *   sockets              socket() of every family and some types and
 *                        protocols, socketpair(); one line each
 *   serve NAME PORT [S]  bind an abstract unix socket @NAME and listen; a
 *                        TCP listener on 127.0.0.1:PORT; listen() without
 *                        bind (an autobound port); UDP on 127.0.0.1:PORT; an
 *                        autobound abstract datagram socket (SO_PASSCRED);
 *                        prints "peer NAME PORT LPORT AUTONAME" and waits up
 *                        to S seconds (4) for anything from another handler,
 *                        then prints "received: ..." with what came
 *   probe NAME PORT LPORT AUTONAME
 *                        from another handler of the same sandbox: connect
 *                        to / send to each of those; "-" skips one
 *   swap PATH TARGET     rename PATH to PATH.orig, symlink TARGET at PATH
 *   fifo PATH            rename PATH to PATH.orig, a FIFO at PATH
 *   look PATH...         for each: "PATH: absent" or the names in it
 *   pidfd-send CHANNEL S send a pidfd of itself on POSTERN_SEND_<CHANNEL>,
 *                        then live S seconds and print "alive"
 *   pidfd-kill           fd 0 is a pidfd (passed on an fdpass channel):
 *                        pidfd_send_signal(SIGKILL), reported on stderr
 *   landlock             the Landlock ABI the kernel offers
 *   fds                  every fd open in it, up to its nofile limit,
 *                        and what it is: "fds: 0:socket 1:socket 2:fifo";
 *                        one that is a pidfd (of any process: signal 0
 *                        through it) is "N:pidfd", a namespace "N:ns", an
 *                        epoll set "N:epoll": what a broker's fd would be
 *   ipc [KEY [S]]        "hostname: NAME", sethostname(), "ipc ns: ipc:[N]",
 *                        System V shm, message queue and semaphore set
 *                        (IPC_PRIVATE), a POSIX message queue; with KEY a
 *                        shm segment of that key and a message queue
 *                        pst-KEY, then "holding", S seconds (4), removed
 *   ipc-look KEY         from another handler: "ipc ns: ipc:[N]", the shm
 *                        segment of KEY and the message queue pst-KEY of
 *                        the first one
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/nsfs.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef AF_MCTP
#define AF_MCTP 45
#endif
#ifndef AF_SMC
#define AF_SMC 43
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static FILE *out;

static const char *res(long r)
{
	static char b[128];
	if (r >= 0)
		return "ALLOWED";
	snprintf(b, sizeof(b), "refused (%s)", strerror(errno));
	return b;
}

static void say(const char *what, long r)
{
	fprintf(out, "%s: %s\n", what, res(r));
	fflush(out);
}

static int closing(int fd)
{
	if (fd >= 0)
		close(fd);
	return fd;
}

static void cmd_sockets(void)
{
	static const struct {
		const char *name;
		long fam;
		int type, proto;
	} t[] = {
	    {"AF_UNIX stream", AF_UNIX, SOCK_STREAM, 0},
	    {"AF_UNIX dgram", AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0},
	    {"AF_UNIX seqpacket", AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0},
	    {"AF_INET stream", AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0},
	    {"AF_INET tcp", AF_INET, SOCK_STREAM, IPPROTO_TCP},
	    {"AF_INET udp", AF_INET, SOCK_DGRAM, IPPROTO_UDP},
	    {"AF_INET ping", AF_INET, SOCK_DGRAM, IPPROTO_ICMP},
	    {"AF_INET6 stream", AF_INET6, SOCK_STREAM, 0},
	    {"AF_INET6 dgram", AF_INET6, SOCK_DGRAM, 0},
	    {"AF_INET raw", AF_INET, SOCK_RAW, IPPROTO_ICMP},
	    {"AF_INET raw nonblock", AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_RAW},
	    {"AF_INET6 raw", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6},
	    {"AF_INET SOCK_PACKET", AF_INET, SOCK_PACKET, 0},
	    {"AF_INET sctp", AF_INET, SOCK_STREAM, IPPROTO_SCTP},
	    {"AF_INET6 sctp seqpacket", AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP},
	    {"AF_INET mptcp", AF_INET, SOCK_STREAM, IPPROTO_MPTCP},
	    {"AF_INET udplite", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE},
	    {"AF_UNSPEC", AF_UNSPEC, SOCK_STREAM, 0},
	    {"AF_VSOCK stream", AF_VSOCK, SOCK_STREAM, 0},
	    {"AF_VSOCK dgram", AF_VSOCK, SOCK_DGRAM, 0},
	    {"AF_NETLINK", AF_NETLINK, SOCK_RAW, 0},
	    {"AF_NETLINK dgram", AF_NETLINK, SOCK_DGRAM, 0},
	    {"AF_PACKET", AF_PACKET, SOCK_RAW, 0},
	    {"AF_PACKET dgram", AF_PACKET, SOCK_DGRAM, 0},
	    {"AF_ALG", AF_ALG, SOCK_SEQPACKET, 0},
	    {"AF_BLUETOOTH", AF_BLUETOOTH, SOCK_STREAM, 0},
	    {"AF_XDP", AF_XDP, SOCK_RAW, 0},
	    {"AF_KEY", AF_KEY, SOCK_RAW, 2},
	    {"AF_TIPC", AF_TIPC, SOCK_RDM, 0},
	    {"AF_RDS", AF_RDS, SOCK_SEQPACKET, 0},
	    {"AF_CAN", AF_CAN, SOCK_RAW, 1},
	    {"AF_SMC", AF_SMC, SOCK_STREAM, 0},
	    {"AF_MCTP", AF_MCTP, SOCK_DGRAM, 0},
	    {"AF_APPLETALK", AF_APPLETALK, SOCK_DGRAM, 0},
	    {"AF_X25", AF_X25, SOCK_SEQPACKET, 0},
	    {"AF_LLC", AF_LLC, SOCK_DGRAM, 0},
	    {"AF_PPPOX", AF_PPPOX, SOCK_STREAM, 0},
	    {"family 255", 255, SOCK_STREAM, 0},
	    /* the kernel takes an int: the upper half of the register is
	     * ignored, and so it must not hide a family from the filter */
	    {"AF_VSOCK in a 64-bit register", (1L << 32) | AF_VSOCK, SOCK_STREAM, 0},
	    {"AF_UNIX in a 64-bit register", (1L << 32) | AF_UNIX, SOCK_STREAM, 0},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char w[96];
		snprintf(w, sizeof(w), "socket %s", t[i].name);
		say(w, closing((int)syscall(SYS_socket, t[i].fam, t[i].type, t[i].proto)));
	}
	int sv[2];
	long r = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	if (r == 0)
		close(sv[0]), close(sv[1]);
	say("socketpair AF_UNIX", r);
	say("socketpair AF_INET", socketpair(AF_INET, SOCK_STREAM, 0, sv));
	say("socketpair AF_VSOCK", socketpair(AF_VSOCK, SOCK_STREAM, 0, sv));
	say("socketpair AF_TIPC", socketpair(AF_TIPC, SOCK_DGRAM, 0, sv));
}

/* an abstract unix address "@name" */
static socklen_t abstract(struct sockaddr_un *un, const char *name)
{
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	size_t n = strlen(name);
	if (n > sizeof(un->sun_path) - 2)
		n = sizeof(un->sun_path) - 2;
	memcpy(un->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return in;
}

static void cmd_serve(const char *name, int port, int secs)
{
	struct sockaddr_un un;
	socklen_t ul = abstract(&un, name);
	int fds[5] = {-1, -1, -1, -1, -1}; /* unix, tcp, tcp-autobind, udp, dgram */
	static const char *const names[5] = {"unix", "tcp", "tcp-autobind", "udp", "dgram"};

	int u = socket(AF_UNIX, SOCK_STREAM, 0);
	long r = bind(u, (struct sockaddr *)&un, ul);
	say("bind abstract unix", r);
	if (r == 0) {
		r = listen(u, 8);
		say("listen abstract unix", r);
	}
	if (r == 0)
		fds[0] = u;
	else
		close(u);

	struct sockaddr_in in = loopback(port);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	r = bind(t, (struct sockaddr *)&in, sizeof(in));
	say("bind tcp 127.0.0.1", r);
	if (r == 0) {
		r = listen(t, 8);
		say("listen tcp 127.0.0.1", r);
	}
	if (r == 0)
		fds[1] = t;
	else
		close(t);

	/* listen() without bind() binds a free port of its own */
	int lport = 0;
	int a = socket(AF_INET, SOCK_STREAM, 0);
	r = listen(a, 8);
	say("listen tcp without bind", r);
	if (r == 0) {
		struct sockaddr_in got;
		socklen_t gl = sizeof(got);
		getsockname(a, (struct sockaddr *)&got, &gl);
		lport = ntohs(got.sin_port);
		fds[2] = a;
	} else {
		close(a);
	}

	int d = socket(AF_INET, SOCK_DGRAM, 0);
	r = bind(d, (struct sockaddr *)&in, sizeof(in));
	say("bind udp 127.0.0.1", r);
	if (r == 0)
		fds[3] = d;
	else
		close(d);

	/* with SO_PASSCRED the first send autobinds an abstract name */
	char autoname[64] = "-";
	int g = socket(AF_UNIX, SOCK_DGRAM, 0);
	r = setsockopt(g, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	say("setsockopt SO_PASSCRED", r);
	if (r == 0) {
		struct sockaddr_un nowhere;
		socklen_t nl = abstract(&nowhere, "pst-hostile-nowhere");
		(void)sendto(g, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&nowhere, nl);
		struct sockaddr_un got;
		socklen_t gl = sizeof(got);
		if (getsockname(g, (struct sockaddr *)&got, &gl) == 0 &&
		    gl > offsetof(struct sockaddr_un, sun_path) + 1 && got.sun_path[0] == 0) {
			size_t n = gl - offsetof(struct sockaddr_un, sun_path) - 1;
			snprintf(autoname, sizeof(autoname), "%.*s", (int)n, got.sun_path + 1);
			fds[4] = g;
		}
	}
	say("autobind abstract unix", fds[4] >= 0 ? 0 : (errno = EADDRNOTAVAIL, -1));
	if (fds[4] < 0)
		close(g);
	fprintf(out, "peer %s %d %d %s\n", name, port, lport ? lport : 0, autoname);
	fflush(out);

	int got[5] = {0};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = secs * 1000L - ((now.tv_sec - t0.tv_sec) * 1000L +
		                            (now.tv_nsec - t0.tv_nsec) / 1000000L);
		if (left <= 0)
			break;
		struct pollfd p[5];
		for (int i = 0; i < 5; i++)
			p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		if (poll(p, 5, (int)left) <= 0)
			continue;
		for (int i = 0; i < 5; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			char buf[64];
			if (i <= 2) {
				int c = accept(fds[i], NULL, NULL);
				if (c >= 0)
					got[i]++, close(c);
			} else if (recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT) >= 0) {
				got[i]++;
			}
		}
	}
	fprintf(out, "received:");
	for (int i = 0; i < 5; i++)
		fprintf(out, " %s=%d", names[i], got[i]);
	fprintf(out, "\n");
	fflush(out);
}

static void cmd_probe(const char *name, int port, int lport, const char *autoname)
{
	struct sockaddr_un un;
	socklen_t ul;
	if (strcmp(name, "-")) {
		ul = abstract(&un, name);
		int u = socket(AF_UNIX, SOCK_STREAM, 0);
		say("connect abstract unix of the other handler",
		    connect(u, (struct sockaddr *)&un, ul));
		close(u);
	}
	if (port > 0) {
		struct sockaddr_in in = loopback(port);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		say("connect tcp of the other handler",
		    connect(t, (struct sockaddr *)&in, sizeof(in)));
		close(t);
		int d = socket(AF_INET, SOCK_DGRAM, 0);
		say("send udp to the other handler",
		    sendto(d, "x", 1, 0, (struct sockaddr *)&in, sizeof(in)));
		close(d);
	}
	if (lport > 0) {
		struct sockaddr_in in = loopback(lport);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		say("connect tcp autobound port of the other handler",
		    connect(t, (struct sockaddr *)&in, sizeof(in)));
		close(t);
	}
	if (strcmp(autoname, "-")) {
		ul = abstract(&un, autoname);
		int g = socket(AF_UNIX, SOCK_DGRAM, 0);
		say("send to autobound abstract unix of the other handler",
		    sendto(g, "x", 1, 0, (struct sockaddr *)&un, ul));
		close(g);
	}
	/* what /proc/net (when the sandbox declares /proc) shows of the other */
	FILE *f = fopen("/proc/net/unix", "re");
	if (f) {
		char line[512];
		int seen = 0;
		while (fgets(line, sizeof(line), f))
			seen |= strcmp(name, "-") && strstr(line, name) != NULL;
		fclose(f);
		fprintf(out, "/proc/net/unix shows @%s: %s\n", name, seen ? "yes" : "no");
	} else {
		fprintf(out, "/proc/net/unix: absent\n");
	}
	fflush(out);
}

static void cmd_swap(const char *path, const char *target, bool fifo)
{
	char old[4096];
	snprintf(old, sizeof(old), "%s.orig", path);
	say("rename", rename(path, old));
	if (fifo)
		say("mkfifo", mkfifo(path, 0755));
	else
		say("symlink", symlink(target, path));
}

static void cmd_look(char **paths, int n)
{
	for (int i = 0; i < n; i++) {
		DIR *d = opendir(paths[i]);
		if (!d) {
			fprintf(out, "%s: %s\n", paths[i],
			        errno == ENOENT ? "absent" : strerror(errno));
			continue;
		}
		fprintf(out, "%s:", paths[i]);
		struct dirent *e;
		int k = 0;
		while ((e = readdir(d)) && k < 40)
			if (e->d_name[0] != '.')
				fprintf(out, " %s", e->d_name), k++;
		fprintf(out, "\n");
		closedir(d);
	}
	fflush(out);
}

static int send_fd(int chan, int fd)
{
	char c = 'F';
	struct iovec iov = {&c, 1};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(ch), &fd, sizeof(int));
	return sendmsg(chan, &mh, 0) == 1 ? 0 : -1;
}

static void cmd_pidfd_send(const char *channel, int secs)
{
	char var[64];
	snprintf(var, sizeof(var), "POSTERN_SEND_%s", channel);
	for (char *p = var + 13; *p; p++)
		*p = *p == '-' ? '_' : (*p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p);
	const char *v = getenv(var);
	int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	say("pidfd_open self", pfd);
	say("pass the pidfd on the channel",
	    v && pfd >= 0 ? send_fd(atoi(v), pfd) : (errno = EBADF, -1));
	sleep((unsigned)secs);
	fprintf(out, "alive after %ds\n", secs);
	fflush(out);
}

/* POSIX message queues by their syscalls (no -lrt; the name without '/') */
static long mq_open_raw(const char *name, int flags)
{
	return syscall(SYS_mq_open, name, flags, 0600, NULL);
}

static void say_ipc_ns(void)
{
	char ns[64];
	ssize_t n = readlink("/proc/self/ns/ipc", ns, sizeof(ns) - 1);
	fprintf(out, "ipc ns: %s\n", n > 0 ? (ns[n] = 0, ns) : strerror(errno));
}

static void cmd_ipc(const char *key, int secs)
{
	char host[128] = "", what[128];
	gethostname(host, sizeof(host) - 1);
	fprintf(out, "hostname: %s\n", host);
	say("sethostname", sethostname("pst-hostile", 11));
	say_ipc_ns();
	say("shmget IPC_PRIVATE", shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600));
	say("msgget IPC_PRIVATE", msgget(IPC_PRIVATE, IPC_CREAT | 0600));
	say("semget IPC_PRIVATE", semget(IPC_PRIVATE, 1, IPC_CREAT | 0600));
	long q = mq_open_raw("pst-anon", O_CREAT | O_RDWR);
	say("mq_open O_CREAT", q);
	if (q >= 0) {
		close((int)q);
		syscall(SYS_mq_unlink, "pst-anon");
	}
	if (!key)
		return;
	int shm = shmget((key_t)atoi(key), 4096, IPC_CREAT | IPC_EXCL | 0666);
	snprintf(what, sizeof(what), "shm of key %s", key);
	say(what, shm);
	char qname[64];
	snprintf(qname, sizeof(qname), "pst-%s", key);
	q = mq_open_raw(qname, O_CREAT | O_EXCL | O_RDWR);
	say("mq_open pst-KEY", q);
	fprintf(out, "holding\n");
	fflush(out);
	sleep((unsigned)secs);
	if (shm >= 0)
		shmctl(shm, IPC_RMID, NULL);
	if (q >= 0)
		syscall(SYS_mq_unlink, qname);
	fprintf(out, "released\n");
}

static void cmd_ipc_look(const char *key)
{
	char qname[64];
	say_ipc_ns();
	say("shm of the other handler's key", shmget((key_t)atoi(key), 0, 0));
	snprintf(qname, sizeof(qname), "pst-%s", key);
	say("mq of the other handler", mq_open_raw(qname, O_RDWR));
}

/* What fd is, by what it answers to. */
static const char *fd_kind(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	if (syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0 || errno != EBADF)
		return "pidfd";
	if (ioctl(fd, NS_GET_NSTYPE) >= 0)
		return "ns";
	struct epoll_event ev;
	if (epoll_wait(fd, &ev, 1, 0) >= 0 || errno != EINVAL)
		return "epoll";
	return S_ISSOCK(st.st_mode)   ? "socket"
	       : S_ISFIFO(st.st_mode) ? "fifo"
	       : S_ISCHR(st.st_mode)  ? "chr"
	       : S_ISDIR(st.st_mode)  ? "dir"
	       : S_ISREG(st.st_mode)  ? "file"
	                              : "other";
}

static void cmd_fds(void)
{
	struct rlimit rl;
	int max = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max)
		max = (int)rl.rlim_cur;
	fprintf(out, "fds:");
	for (int fd = 0; fd < max; fd++) {
		const char *k = fd_kind(fd);
		if (k)
			fprintf(out, " %d:%s", fd, k);
	}
	fprintf(out, "\n");
}

int main(int argc, char **argv)
{
	out = stdout;
	signal(SIGPIPE, SIG_IGN);
	char line[1024], *av[16];
	int ac = 0;
	if (argc > 1) {
		for (int i = 1; i < argc && ac < 16; i++)
			av[ac++] = argv[i];
	} else {
		size_t n = 0;
		while (n < sizeof(line) - 1) {
			ssize_t r = read(0, line + n, 1);
			if (r <= 0 || line[n] == '\n')
				break;
			n++;
		}
		line[n] = 0;
		for (char *save = NULL, *t = strtok_r(line, " \t", &save); t && ac < 16;
		     t = strtok_r(NULL, " \t", &save))
			av[ac++] = t;
	}
	if (ac == 0) {
		fprintf(out, "hostile-sandbox: no command\n");
		return 2;
	}
	const char *c = av[0];
	if (!strcmp(c, "sockets")) {
		cmd_sockets();
	} else if (!strcmp(c, "serve") && ac >= 3) {
		cmd_serve(av[1], atoi(av[2]), ac > 3 ? atoi(av[3]) : 4);
	} else if (!strcmp(c, "probe") && ac >= 5) {
		cmd_probe(av[1], atoi(av[2]), atoi(av[3]), av[4]);
	} else if (!strcmp(c, "swap") && ac == 3) {
		cmd_swap(av[1], av[2], false);
	} else if (!strcmp(c, "fifo") && ac == 2) {
		cmd_swap(av[1], NULL, true);
	} else if (!strcmp(c, "look") && ac >= 2) {
		cmd_look(av + 1, ac - 1);
	} else if (!strcmp(c, "pidfd-send") && ac == 3) {
		cmd_pidfd_send(av[1], atoi(av[2]));
	} else if (!strcmp(c, "pidfd-kill")) {
		out = stderr;
		say("pidfd_send_signal SIGKILL to the other handler",
		    syscall(SYS_pidfd_send_signal, 0, SIGKILL, NULL, 0));
	} else if (!strcmp(c, "ipc")) {
		cmd_ipc(ac > 1 ? av[1] : NULL, ac > 2 ? atoi(av[2]) : 4);
	} else if (!strcmp(c, "ipc-look") && ac == 2) {
		cmd_ipc_look(av[1]);
	} else if (!strcmp(c, "fds")) {
		cmd_fds();
	} else if (!strcmp(c, "landlock")) {
		long v = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U /* VERSION */);
		fprintf(out, "landlock abi: %ld\n", v > 0 ? v : 0);
	} else {
		fprintf(out, "hostile-sandbox: unknown command %s\n", c);
		return 2;
	}
	fflush(out);
	return 0;
}
