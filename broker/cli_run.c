/* SPDX-License-Identifier: MIT */
/* postern run: the broker in the foreground. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/internal.h"
#include "sandbox/sandbox.h"

/* the policy `postern run` reads without an argument (the Makefile passes
 * SYSCONFDIR; make install puts an example there) */
#ifndef PST_SYSCONFDIR
#define PST_SYSCONFDIR "/etc"
#endif
#define PST_DEFAULT_POLICY PST_SYSCONFDIR "/postern/postern.json"

static const char run_usage[] =
    "NAME\n"
    "    postern run - run the broker in the foreground\n"
    "\n"
    "SYNOPSIS\n"
    "    postern run [-v] [--log-format=text|logfmt|json] [--prewarm-refill=idle|busy]\n"
    "                [--insecure-policy] [--no-preflight] [POLICY]\n"
    "\n"
    "DESCRIPTION\n"
    "    Loads and validates POLICY as `postern check` does (without POLICY:\n"
    "    " PST_DEFAULT_POLICY ", which make install writes from\n"
    "    policies/echo.json when it is missing), creates one\n"
    "    network namespace per sandbox and the nftables table of broker.table,\n"
    "    opens the listening sockets, channels and the control socket, then\n"
    "    serves: for every accepted connection, channel message or passed fd it\n"
    "    starts one isolated handler. Must run as root (it creates namespaces,\n"
    "    cgroups and nftables rules); handlers never run as root.\n"
    "\n"
    "    One broker per table on a host: before it touches anything it\n"
    "    locks /run/postern/TABLE.lock, and a second broker of the table\n"
    "    refuses to start and names the first one's pid (the table also\n"
    "    names the broker's cgroups, which all network namespaces share).\n"
    "    Then it removes what an earlier instance of the table that died\n"
    "    left: rules, veths, namespaces and cgroups.\n"
    "\n"
    "    Logs go to stderr, one logfmt line per event: start, sandbox, spawn\n"
    "    (with spawn_ms), exit (pid, peer, duration_ms, status or signal,\n"
    "    reason, cpu_ms, mem_peak, oom_kills), refuse (reason per_source, rate,\n"
    "    spawn_failed, shutting_down or peer; rate-limited to one line per\n"
    "    second and reason, with a count of suppressed lines), timeout,\n"
    "    stderr (one line of a handler's stderr, prefixed by sandbox and pid),\n"
    "    reload, stop (serving and prewarmed handlers counted), stopped, kill,\n"
    "    prewarm_exit, cgroup (at start: mode, base,\n"
    "    leaf, controllers), cgroup_stock, cleanup (cgroups\n"
    "    an earlier instance left, removed at start; a cgroup of a sandbox\n"
    "    that is gone that could not be removed), and errors.\n"
    "\n"
    "    Admission per sandbox: at limits.handlers running handlers the broker\n"
    "    stops accepting on that sandbox's listeners (the kernel backlog holds\n"
    "    new connections) and resumes as handlers exit; over limits.per_source\n"
    "    or limits.rate a connection is closed at once and counted.\n"
    "\n"
    "CGROUPS\n"
    "    Each handler gets cgroups of its own with its sandbox's limits\n"
    "    (memory, pids, cpu). On cgroup v2 (every current distribution) the\n"
    "    broker must be alone in its cgroup, as systemd leaves a service with\n"
    "    Delegate=yes (examples/systemd/postern.service) or a scope made by\n"
    "    `systemd-run --scope -p Delegate=yes postern run POLICY`: it moves\n"
    "    itself into OWN/TABLE/_broker, enables memory, pids and cpu in OWN\n"
    "    and OWN/TABLE, and makes handler cgroups OWN/TABLE/SANDBOX/hN (with\n"
    "    memory.max, memory.swap.max=0, memory.oom.group=1, pids.max,\n"
    "    cpu.max); at a timeout or at stop cgroup.kill ends every process of\n"
    "    a handler. In the root cgroup it stays where it is. It refuses to\n"
    "    start, saying why, when its cgroup holds other processes, when a\n"
    "    declared limit's controller is not delegated, or when it cannot\n"
    "    write its cgroups; at exit it undoes what it did. On cgroup v1 the\n"
    "    handler cgroups are TABLE/SANDBOX/hN in the memory, pids, cpu and\n"
    "    cpuacct hierarchies. The `cgroup` line at start says which; exit\n"
    "    lines carry cpu_ms, mem_peak and oom_kills from the handler's cgroup.\n"
    "\n"
    "PRE-WARMED HANDLERS\n"
    "    A sandbox with \"prewarm\": N keeps N handlers fully set up\n"
    "    (namespaces, root, cgroups, identity, seccomp) and waiting; a request\n"
    "    is handed to one of them with SCM_RIGHTS (spawn lines say\n"
    "    prewarmed=1). Each serves one request. Where it can, the handler is\n"
    "    exec'd already and waits before its main: a dynamically linked\n"
    "    handler (or a #! script whose interpreter is one) run by the same\n"
    "    dynamic loader as postern, in a sandbox whose env sets no LD_PRELOAD.\n"
    "    It is exec'd with /.postern-warm.so (written into its root)\n"
    "    preloaded; its libraries are loaded and their initializers run before\n"
    "    the request, its main after, with the request's fds and environment\n"
    "    in place (/proc/PID/environ keeps the exec-time environment, with\n"
    "    LD_PRELOAD and POSTERN_WARM). Other handlers wait in postern-warm, a\n"
    "    static waiter that execs them when the request comes. Handlers used\n"
    "    are replaced from a worker thread: with --prewarm-refill=idle (the\n"
    "    default) once the sandbox has been idle for 5 ms, and one per 100 ms\n"
    "    while it stays busy; with busy, at once, with up to one set-up under\n"
    "    way per sandbox for each CPU but one (at least one). Failed set-ups\n"
    "    back off (100 ms to 10 s); waiting handlers are replaced on reload\n"
    "    and killed at stop.\n"
    "\n"
    "SIGNALS\n"
    "    SIGTERM, SIGINT  stop accepting, wait up to broker.grace for running\n"
    "                     handlers, kill the rest, remove rules, veths and\n"
    "                     namespaces, exit 0. A second signal kills at once.\n"
    "    SIGHUP           reload POLICY atomically; an invalid policy is logged\n"
    "                     and the running one kept.\n"
    "    The same over the control socket (root's alone): `postern stop`,\n"
    "    `postern reload` (which prints what changed and every error), and\n"
    "    `kill PID` of one handler serving a request (postern top's K; logged\n"
    "    as a `kill` line, its exit line says reason=killed).\n"
    "\n"
    "OPTIONS\n"
    "    --log-format=text|logfmt|json\n"
    "                     the log line format. text (the default): logfmt\n"
    "                     lines, control bytes as \\xNN; logfmt: the same\n"
    "                     with control bytes as \\u00NN, as logfmt parsers\n"
    "                     unquote them; json: one object per line with ts,\n"
    "                     level, event and the fields (numbers as numbers,\n"
    "                     a repeated key as an array, invalid UTF-8 as\n"
    "                     U+FFFD). A line over 2048 bytes is cut, still\n"
    "                     parses, and says truncated.\n"
    "    -v, --verbose    also log (level=debug) one `accept` line per connection\n"
    "                     and the pre-warmed handlers' `prewarm_ready` and\n"
    "                     `prewarm_refill` lines\n"
    "    --prewarm-refill=idle|busy\n"
    "                     when used pre-warmed handlers are replaced (see\n"
    "                     PRE-WARMED HANDLERS). busy keeps more requests warm\n"
    "                     under steady load where set-ups can run on idle\n"
    "                     CPUs; where process creation does not scale with\n"
    "                     CPUs (docs/performance.md) it costs the tail what\n"
    "                     it gains the median. Default idle.\n"
    "    --insecure-policy\n"
    "                     use POLICY even where others could change it (for\n"
    "                     development only; see POLICY FILE)\n"
    "    --no-preflight   start (and reload) without the preflight (see\n"
    "                     PREFLIGHT): for a program the preflight misjudges;\n"
    "                     its handlers then fail at their spawn instead\n"
    "    -h, --help       this text\n"
    "\n"
    "POLICY FILE\n"
    "    The policy says what root mounts, deletes and runs, so at start and at\n"
    "    each reload it must be a regular file owned by root and writable by\n"
    "    nobody else, and so must every directory on the way to it and to\n"
    "    each symlink's target (a root-owned sticky directory such as /tmp\n"
    "    excepted: nobody else can rename root's entries there); else the\n"
    "    broker refuses it, naming the path and what is wrong, as sshd refuses\n"
    "    keys others could write.\n"
    "\n"
    "PREFLIGHT\n"
    "    Before anything is bound, mounted or made, and at each reload, every\n"
    "    sandbox's exec[0] is resolved in its root as the handler would see it\n"
    "    and checked with its #! interpreter, ELF interpreter and libraries, and\n"
    "    every bind source must exist (postern check --help lists it all). A\n"
    "    problem is logged as event=preflight_failed (a reload: reload_invalid,\n"
    "    the running policy kept), one line each with the JSON path and fix.\n"
    "\n"
    "METRICS\n"
    "    With broker.metrics (a loopback addr:port) GET /metrics answers in the\n"
    "    Prometheus text format: handlers, starts, refusals, exits, spawn\n"
    "    latency and phases, pre-warmed handlers and egress denials per\n"
    "    sandbox. Control and metrics clients that send no complete request\n"
    "    within 10 s are closed.\n"
    "\n"
    "SYSTEMD\n"
    "    Sockets passed with LISTEN_FDS (LISTEN_PID this process) are used for\n"
    "    the policy addresses they are bound to; one named (LISTEN_FDNAMES,\n"
    "    FileDescriptorName=) like a sandbox serves that sandbox, and must be\n"
    "    bound to an address it declares, else the broker refuses to start\n"
    "    naming both. Each must be a listening stream socket (inet, inet6,\n"
    "    unix); one nothing uses is closed with a warning. With NOTIFY_SOCKET\n"
    "    (Type=notify): READY=1 once serving; RELOADING=1 and MONOTONIC_USEC=\n"
    "    when a reload starts, READY=1 when it ends, applied or refused;\n"
    "    STOPPING=1 at stop; STATUS= (\"serving 2 sandboxes, 3 handlers, 1\n"
    "    pre-warmed\"), at most once a second as it changes; WATCHDOG=1 every\n"
    "    WATCHDOG_USEC/2 when set (WatchdogSec=). These variables are removed\n"
    "    from the broker's environment at start; handlers never see them.\n"
    "    Under journald (JOURNAL_STREAM names stderr) each line starts with\n"
    "    its priority (<3> error, <4> warn, <6> info, <7> debug), for\n"
    "    journalctl -p, and text and logfmt lines carry no ts= (the journal\n"
    "    stamps them).\n"
    "\n"
    "FILES\n"
    "    " PST_DEFAULT_POLICY "  the policy without POLICY\n"
    "\n"
    "EXIT STATUS\n"
    "    0 after a clean stop; 1 if the policy is invalid, another broker\n"
    "    holds the table or set-up failed; 2 on bad usage.\n";

static const char run_short[] =
    "usage: postern run [-v] [--log-format=text|logfmt|json] [--prewarm-refill=idle|busy]\n"
    "                   [--insecure-policy] [--no-preflight] [POLICY]\n"
    "       (see postern run --help)\n";

/* Fds 0, 1 and 2 open before the broker opens anything: started with one
 * closed (a supervisor that closes what it does not pass), the lock file,
 * libuv's epoll set or its signal pipe would take that number, log lines
 * would be written into them, and the broker aborted at its first signal.
 * /dev/null stands in (OpenSSH's sanitise_stdfd() does the same). Numbers
 * come lowest first, so each open lands on the fd it stands in for. */
static int stdio_sanitize(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", O_RDWR);
		if (n < 0)
			return -errno;
		if (n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
	return 0;
}

int pst_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"verbose", no_argument, NULL, 'v'},
	    {"prewarm-refill", required_argument, NULL, 'R'},
	    {"insecure-policy", no_argument, NULL, 'I'},
	    {"log-format", required_argument, NULL, 'L'},
	    {"no-preflight", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct pst_run_opts ro = {0};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			ro.debug = true;
			break;
		case 'R':
			if (strcmp(optarg, "idle") != 0 && strcmp(optarg, "busy") != 0) {
				fprintf(stderr,
				        "postern run: --prewarm-refill: \"%s\": not idle or busy\n",
				        optarg);
				return 2;
			}
			ro.refill_busy = strcmp(optarg, "busy") == 0;
			break;
		case 'I':
			ro.insecure_policy = true;
			break;
		case 'L':
			if (pst_log_format_parse(optarg, &pst_log_format) < 0) {
				fprintf(
				    stderr,
				    "postern run: --log-format: \"%s\": not text, logfmt or json\n",
				    optarg);
				return 2;
			}
			break;
		case 'N':
			ro.no_preflight = true;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fputs(run_short, stderr);
			return 2;
		}
	}
	if (optind < argc - 1) {
		fputs(run_short, stderr);
		return 2;
	}
	if (geteuid() != 0) {
		fputs("postern run: must run as root (namespaces, cgroups, nftables)\n", stderr);
		return 1;
	}
	if (stdio_sanitize() < 0)
		return 1; /* no /dev/null, and no stderr to say so */
	/* the broker's own pidfd right after stdio: every spawn's child copies
	 * the fds below it (sandbox.h) */
	sandbox_process_init();
	ro.policy_path = optind < argc ? argv[optind] : PST_DEFAULT_POLICY;
	pst_log_debug = ro.debug;
	pst_log_detect_journal();
	return pst_daemon_run(&ro);
}
