/* SPDX-License-Identifier: MIT */
/* postern check: validate policy files. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/preflight.h"

static const char check_usage[] =
    "NAME\n"
    "    postern check - validate policy files\n"
    "\n"
    "SYNOPSIS\n"
    "    postern check [--no-preflight | --preflight] [-q] POLICY...\n"
    "\n"
    "DESCRIPTION\n"
    "    Reads each POLICY and checks it against the policy format (README.md,\n"
    "    \"Policy file\") exactly as `postern run` will: JSON syntax (with line\n"
    "    and column), unknown keys, value types, names, addresses, CIDRs and\n"
    "    prefix lengths, ports, durations, sizes, limits, seccomp syscall names\n"
    "    (resolved with libseccomp), environment names, and the cross-checks:\n"
    "    duplicate listen addresses, channels without a sender or a consumer,\n"
    "    address pools too small or overlapping an egress rule.\n"
    "\n"
    "    Then, when run as root, the preflight: what the policy needs from the\n"
    "    host, checked without building a root or running anything. Every bind\n"
    "    source exists; each sandbox's exec[0], resolved inside the sandbox's root\n"
    "    as its handler sees it (the filesystem entries, symlinks in bind sources\n"
    "    followed inside the root), is a regular file its uid may execute, not on\n"
    "    a noexec mount; a \"#!\" line's interpreter is in the root too; an ELF\n"
    "    program's interpreter (PT_INTERP) is in the root and the libraries it\n"
    "    needs are found there as ld.so would find them (DT_RPATH,\n"
    "    LD_LIBRARY_PATH, DT_RUNPATH, the root's /etc/ld.so.cache, the default\n"
    "    directories), with theirs. `postern run` and a reload always run it\n"
    "    (unless started with --no-preflight). e.g.\n"
    "        echo.json: sandboxes.echo.exec[0]: \"/usr/bin/cat\": its interpreter\n"
    "        /lib64/ld-linux-x86-64.so.2 is not inside the sandbox's root: /lib64\n"
    "        does not exist there (add { \"symlink\": \"/lib64\", \"target\":\n"
    "        \"usr/lib64\" })\n"
    "    Not root, check says the preflight was skipped.\n"
    "\n"
    "    Every problem is reported, not only the first, one per line on stderr:\n"
    "        FILE: JSON.PATH: VALUE: what is wrong\n"
    "    e.g.\n"
    "        echo.json: sandboxes.echo.egress[0].to: \"10.0.0.0/33\": prefix length\n"
    "        33 is out of range for IPv4\n"
    "\n"
    "    A valid policy prints one summary line per sandbox and a last line\n"
    "    FILE: policy OK (N sandboxes).\n"
    "\n"
    "OPTIONS\n"
    "    --no-preflight  only the policy itself, not what it needs from the host\n"
    "    --preflight     the preflight also when not root (as this user, who may\n"
    "                    not see what root sees)\n"
    "    -q, --quiet     print nothing on success\n"
    "    -h, --help      this text\n"
    "\n"
    "EXIT STATUS\n"
    "    0 if every POLICY is valid; 1 if one is not (or cannot be read);\n"
    "    2 on bad usage.\n"
    "\n"
    "EXAMPLES\n"
    "    postern check /etc/postern/*.json\n"
    "    postern check -q policy.json && systemctl reload postern\n"
    "    postern check --no-preflight policy.json   # on another machine\n";

static void fmt_ms(char *b, size_t n, uint64_t ms)
{
	if (ms % 3600000 == 0)
		snprintf(b, n, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(b, n, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(b, n, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(b, n, "%llums", (unsigned long long)ms);
}

static void fmt_size(char *b, size_t n, uint64_t v)
{
	if (v && v % (1ull << 30) == 0)
		snprintf(b, n, "%lluG", (unsigned long long)(v >> 30));
	else if (v && v % (1ull << 20) == 0)
		snprintf(b, n, "%lluM", (unsigned long long)(v >> 20));
	else if (v && v % 1024 == 0)
		snprintf(b, n, "%lluK", (unsigned long long)(v >> 10));
	else
		snprintf(b, n, "%llu", (unsigned long long)v);
}

static void summary(const struct pst_policy *p)
{
	static const char *const trig[] = {"", "listen", "pipe", "fdpass", "startup"};
	for (size_t i = 0; i < p->n_sandboxes; i++) {
		const struct pst_sandbox *s = &p->sandboxes[i];
		char tmo[32], mem[32];
		printf("%s: %s", s->name, trig[s->trigger]);
		for (size_t j = 0; j < s->n_listen; j++)
			printf(" %s", s->listen[j].text);
		if (s->channel)
			printf(" \"%s\"", s->channel);
		for (size_t j = 0; j < s->n_sockets; j++)
			printf(" sockets %s", s->sockets[j].text);
		printf(" -> %s (%s)", s->exec[0],
		       s->socket == PST_SOCKET_LISTEN_FDS ? "listen_fds" : "stdio");
		for (size_t j = 0; j < s->n_send; j++)
			printf("%s%s", j ? "," : "; sends to ", s->send[j]);
		if (s->n_egress)
			printf("; egress %zu rule%s", s->n_egress, s->n_egress == 1 ? "" : "s");
		else
			printf("; no egress");
		fmt_ms(tmo, sizeof(tmo), s->limits.timeout_ms);
		fmt_size(mem, sizeof(mem), s->limits.memory);
		printf("; limits handlers=%u timeout=%s memory=%s pids=%u uid=%u\n",
		       s->limits.handlers, tmo, mem, s->limits.pids, s->uid);
	}
}

int pst_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"quiet", no_argument, NULL, 'q'},
	    {"no-preflight", no_argument, NULL, 'N'},
	    {"preflight", no_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	bool quiet = false;
	int preflight = geteuid() == 0 ? 1 : -1; /* -1: skipped, and said so */
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			quiet = true;
			break;
		case 'N':
			preflight = 0;
			break;
		case 'P':
			preflight = 1;
			break;
		case 'h':
			fputs(check_usage, stdout);
			return 0;
		default:
			fputs("usage: postern check [--preflight | --no-preflight] [-q] POLICY... "
			      "(see postern "
			      "check --help)\n",
			      stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs("usage: postern check [--preflight | --no-preflight] [-q] POLICY... (see "
		      "postern check "
		      "--help)\n",
		      stderr);
		return 2;
	}
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		struct pst_policy *p = NULL;
		struct pst_diag diag = {0};
		if (pst_policy_load(argv[i], &p, &diag) < 0) {
			for (size_t j = 0; j < diag.n; j++)
				fprintf(stderr, "%s\n", diag.msgs[j]);
			fprintf(stderr, "%s: %zu error%s\n", argv[i], diag.n,
			        diag.n == 1 ? "" : "s");
			pst_diag_free(&diag);
			rc = 1;
			continue;
		}
		if (preflight > 0 && pst_preflight(p, &diag) > 0) {
			for (size_t j = 0; j < diag.n; j++)
				fprintf(stderr, "%s\n", diag.msgs[j]);
			fprintf(stderr, "%s: %zu error%s (preflight)\n", argv[i], diag.n,
			        diag.n == 1 ? "" : "s");
			pst_diag_free(&diag);
			pst_policy_free(p);
			rc = 1;
			continue;
		}
		if (!quiet) {
			summary(p);
			if (preflight < 0)
				printf(
				    "%s: preflight skipped: not root (--preflight runs it as this "
				    "user)\n",
				    argv[i]);
			printf("%s: policy OK (%zu sandbox%s)\n", argv[i], p->n_sandboxes,
			       p->n_sandboxes == 1 ? "" : "es");
		}
		pst_policy_free(p);
	}
	return rc;
}
