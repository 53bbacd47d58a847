/* SPDX-License-Identifier: MIT */
/* postern: the command line. One verb per file (broker/cli_*.c). */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"

static const char usage[] =
    "NAME\n"
    "    postern - socket-brokering firewall gateway: one isolated process per request\n"
    "\n"
    "SYNOPSIS\n"
    "    postern run [OPTIONS] [POLICY]    run the broker in the foreground\n"
    "    postern check [OPTIONS] POLICY    validate a policy file and exit\n"
    "    postern status [OPTIONS]          print a running broker's status\n"
    "    postern top [OPTIONS]             live view of sandboxes and handlers\n"
    "    postern reload [OPTIONS]          apply a running broker's policy again\n"
    "    postern stop [OPTIONS]            stop a running broker\n"
    "    postern --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    postern listens on the addresses a JSON policy declares. For every\n"
    "    accepted connection (or message on a named pipe channel, or file\n"
    "    descriptor passed over an fdpass channel) it starts a fresh handler\n"
    "    process, isolated as its sandbox says: new user, mount, pid, ipc, uts\n"
    "    and cgroup namespaces, an empty root with only the declared binds, an\n"
    "    unprivileged uid, no capabilities, no_new_privs, a seccomp filter,\n"
    "    rlimits and cgroup limits, and a wall-clock timeout. The connected\n"
    "    socket itself is handed to the handler (inetd style on fd 0/1, or\n"
    "    systemd style on fd 3); postern never reads client data.\n"
    "\n"
    "    Outbound traffic of a sandbox's handlers is confined by nftables rules\n"
    "    (one table, family inet, owned by postern) to the CIDRs, protocols and\n"
    "    ports its policy lists; everything else is rejected at once.\n"
    "\n"
    "    Run `postern VERB --help` for the options of each verb. The policy\n"
    "    format is described in postern.json(5) and README.md (section\n"
    "    \"Policy file\"); the broker in postern(8).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success; 1 invalid policy or runtime failure; 2 bad usage.\n"
    "\n"
    "FILES\n"
    "    /run/postern/control.sock   control socket (broker.control)\n"
    "    /run/postern/netns/NAME     sandbox network namespaces (nsenter --net=)\n"
    "    /run/netns/TABLE-NAME       the same, for ip netns exec\n"
    "\n"
    "EXAMPLES\n"
    "    postern check /etc/postern/echo.json\n"
    "    postern run /etc/postern/echo.json\n"
    "    postern status --json\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *verb = argv[1];
	if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(verb, "--version") || !strcmp(verb, "-V")) {
		printf("postern %s\n", PST_VERSION);
		return 0;
	}
	if (!strcmp(verb, "check"))
		return pst_cmd_check(argc - 1, argv + 1);
	if (!strcmp(verb, "run"))
		return pst_cmd_run(argc - 1, argv + 1);
	if (!strcmp(verb, "status"))
		return pst_cmd_status(argc - 1, argv + 1);
	if (!strcmp(verb, "top"))
		return pst_cmd_top(argc - 1, argv + 1);
	if (!strcmp(verb, "reload"))
		return pst_cmd_reload(argc - 1, argv + 1);
	if (!strcmp(verb, "stop"))
		return pst_cmd_stop(argc - 1, argv + 1);
	fprintf(stderr, "postern: unknown command \"%s\"; see postern --help\n", verb);
	return 2;
}
