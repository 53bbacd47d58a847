/* SPDX-License-Identifier: MIT */
/*
 * fake-systemd: plays the part of systemd for a socket-activated Type=notify
 * service, for tests/integration/t_systemd.sh.
 *
 *   fake-systemd [-l NAME=ADDRESS]... [-n LOG] [-p NOTIFY_PATH] [-w USEC]
 *                [-W PID] [-c CGROUP_DIR] [-i INFO] [-x] [-N] -- COMMAND [ARG]...
 *
 * Binds and listens on each ADDRESS (127.0.0.1:P, [::1]:P, unix:/path; see
 * listen_on() for the broken kinds) as a socket unit's ListenStream= would (NAME its
 * FileDescriptorName=; "-" for none), makes a notify socket (abstract "@fake-systemd-PID", or the
 * path NOTIFY_PATH), forks, and in the child passes the sockets as fds 3.. with LISTEN_FDS,
 * LISTEN_FDNAMES, LISTEN_PID (the child's own pid; with -x one that is not), NOTIFY_SOCKET and,
 * with -w, WATCHDOG_USEC, enters CGROUP_DIR (-c: as a service's cgroup holds only its main process)
 * and execs COMMAND. INFO gets "pid PID" and one "fd N NAME ADDRESS INODE" line per socket. Every
 * notification datagram is written to LOG, one line per assignment: "MONOTONIC_USEC_NOW
 * ASSIGNMENT". When COMMAND exits, LOG gets "EXIT STATUS" and fake-systemd exits with COMMAND's
 * status (128+signal if killed). Bounded: it ends when COMMAND does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN 16

static void die(const char *what)
{
	fprintf(stderr, "fake-systemd: %s: %s\n", what, strerror(errno));
	exit(125);
}

static uint64_t mono_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A listening socket for ADDRESS, as systemd makes one for ListenStream=;
 * "dgram:ADDRESS" a datagram one (ListenDatagram=), "bound:ADDRESS" a
 * stream one bound but not listening (what no socket unit passes). */
static int listen_on(const char *addr)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int one = 1, type = SOCK_STREAM, listening = 1;
	if (!strncmp(addr, "dgram:", 6))
		addr += 6, type = SOCK_DGRAM, listening = 0;
	else if (!strncmp(addr, "bound:", 6))
		addr += 6, listening = 0;
	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un *un = (void *)&ss;
		un->sun_family = AF_UNIX;
		if (strlen(addr + 5) >= sizeof(un->sun_path))
			errno = ENAMETOOLONG, die(addr);
		strcpy(un->sun_path, addr + 5);
		unlink(un->sun_path);
		len = sizeof(*un);
	} else {
		char host[64];
		const char *colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof(host))
			errno = EINVAL, die(addr);
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = 0;
		int port = atoi(colon + 1);
		if (host[0] == '[') {
			struct sockaddr_in6 *s6 = (void *)&ss;
			host[strlen(host) - 1] = 0;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)port);
			if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
				errno = EINVAL, die(addr);
			len = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (void *)&ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)port);
			if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
				errno = EINVAL, die(addr);
			len = sizeof(*s4);
		}
	}
	int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die(addr);
	if (listening && listen(fd, 128) < 0)
		die("listen");
	return fd;
}

/* Each assignment of a datagram, one line each, stamped. */
static void record(FILE *log, char *msg, size_t n)
{
	uint64_t now = mono_usec();
	msg[n] = 0;
	for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
		fprintf(log, "%" PRIu64 " %s\n", now, line);
	fflush(log);
}

int main(int argc, char **argv)
{
	const char *names[MAX_LISTEN], *addrs[MAX_LISTEN];
	const char *logpath = NULL, *npath = NULL, *wd = NULL, *cg = NULL, *info = NULL;
	int nl = 0, c;
	int wrong_pid = 0, extra_name = 0;
	const char *wd_pid = NULL;

	while ((c = getopt(argc, argv, "+l:n:p:w:W:c:i:xN")) != -1) {
		switch (c) {
		case 'l': {
			char *eq = strchr(optarg, '=');
			if (!eq || nl == MAX_LISTEN) {
				fprintf(stderr, "fake-systemd: -l NAME=ADDRESS (at most %d)\n",
				        MAX_LISTEN);
				return 2;
			}
			*eq = 0;
			names[nl] = optarg;
			addrs[nl++] = eq + 1;
			break;
		}
		case 'n':
			logpath = optarg;
			break;
		case 'p':
			npath = optarg;
			break;
		case 'w':
			wd = optarg;
			break;
		case 'c':
			cg = optarg;
			break;
		case 'i':
			info = optarg;
			break;
		case 'x':
			wrong_pid = 1;
			break;
		case 'W':
			wd_pid = optarg;
			break;
		case 'N':
			extra_name = 1;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc || !logpath) {
		fprintf(stderr,
		        "usage: fake-systemd [-l NAME=ADDRESS]... -n LOG [-p PATH] [-w USEC] "
		        "[-W PID] [-c CGROUP] [-i INFO] [-x] [-N] -- COMMAND [ARG]...\n");
		return 2;
	}

	int fds[MAX_LISTEN];
	for (int i = 0; i < nl; i++)
		fds[i] = listen_on(addrs[i]);

	/* the notify socket */
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char notify_env[sizeof(un.sun_path) + 2];
	socklen_t ulen;
	if (npath) {
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", npath);
		unlink(npath);
		ulen = sizeof(un);
		snprintf(notify_env, sizeof(notify_env), "%s", npath);
	} else {
		int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "fake-systemd-%d",
		                 (int)getpid());
		ulen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
		snprintf(notify_env, sizeof(notify_env), "@%s", un.sun_path + 1);
	}
	int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ns < 0 || bind(ns, (struct sockaddr *)&un, ulen) < 0)
		die("notify socket");
	FILE *log = fopen(logpath, "w");
	if (!log)
		die(logpath);

	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char buf[32], names_env[4096] = "";
		/* out of the way first, then to 3.. (dup2 clears CLOEXEC) */
		for (int i = 0; i < nl; i++) {
			int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
			if (hi < 0)
				die("dup");
			fds[i] = hi;
		}
		for (int i = 0; i < nl; i++) {
			if (dup2(fds[i], 3 + i) < 0)
				die("dup2");
			size_t off = strlen(names_env);
			snprintf(names_env + off, sizeof(names_env) - off, "%s%s", i ? ":" : "",
			         strcmp(names[i], "-") ? names[i] : "");
		}
		if (extra_name)
			strcat(names_env, ":extra");
		if (nl) {
			snprintf(buf, sizeof(buf), "%d", nl);
			setenv("LISTEN_FDS", buf, 1);
			setenv("LISTEN_FDNAMES", names_env, 1);
			snprintf(buf, sizeof(buf), "%d", (int)getpid() + wrong_pid);
			setenv("LISTEN_PID", buf, 1);
		}
		setenv("NOTIFY_SOCKET", notify_env, 1);
		if (wd)
			setenv("WATCHDOG_USEC", wd, 1);
		if (wd_pid)
			setenv("WATCHDOG_PID", wd_pid, 1);
		if (cg) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/cgroup.procs", cg);
			FILE *f = fopen(p, "w");
			if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
				die(p);
		}
		execvp(argv[optind], argv + optind);
		die(argv[optind]);
	}
	if (info) {
		FILE *f = fopen(info, "w");
		if (!f)
			die(info);
		fprintf(f, "pid %d\n", (int)pid);
		for (int i = 0; i < nl; i++) {
			struct stat st;
			fstat(fds[i], &st);
			fprintf(f, "fd %d %s %s %llu\n", 3 + i, names[i], addrs[i],
			        (unsigned long long)st.st_ino);
		}
		fclose(f);
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd p = {.fd = ns, .events = POLLIN};
		int r = poll(&p, 1, 50);
		if (r > 0) {
			char msg[4097];
			ssize_t n = recv(ns, msg, sizeof(msg) - 1, MSG_DONTWAIT);
			if (n > 0)
				record(log, msg, (size_t)n);
			continue;
		}
		int status;
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			/* what it sent last */
			char msg[4097];
			ssize_t n;
			while ((n = recv(ns, msg, sizeof(msg) - 1, MSG_DONTWAIT)) > 0)
				record(log, msg, (size_t)n);
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			fprintf(log, "EXIT %d\n", code);
			fclose(log);
			if (npath)
				unlink(npath);
			return code;
		}
	}
}
