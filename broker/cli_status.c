/* SPDX-License-Identifier: MIT */
/* postern status: ask a running broker for its status. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "broker/broker.h"
#include "broker/internal.h"

static const char status_usage[] =
    "NAME\n"
    "    postern status - print a running broker's status\n"
    "\n"
    "SYNOPSIS\n"
    "    postern status [--json] [-s SOCKET | -c POLICY]\n"
    "\n"
    "DESCRIPTION\n"
    "    Connects to the broker's control socket and prints, per sandbox: its\n"
    "    trigger, active handlers and the cap, handlers started, refusals by\n"
    "    reason (per_source, rate, spawn_failed; and, on a line of their own\n"
    "    when not zero, address: SYNs its allow_from/deny_from refused in the\n"
    "    broker's nftables table, and peer: unix clients not in allow_uids or\n"
    "    allow_gids), spawn latency p50/p99 over the\n"
    "    last 1024 spawns, exits (ok, failed, signaled, timeout), egress\n"
    "    denials (packets rejected by the sandbox's nftables chain), figures from\n"
    "    its handlers' cgroups (memory in use now and the highest peak, CPU time\n"
    "    of exited and running handlers, processes the OOM killer killed) and\n"
    "    each running handler with its pid, peer, age, memory, CPU time and\n"
    "    processes (from its own cgroup). Sandboxes with prewarm\n"
    "    show their pre-warmed handlers (ready, starting, used, failed, and how\n"
    "    many of the ready wait inside the handler's own process, exec'd\n"
    "    already: see postern run --help, PRE-WARMED HANDLERS); the\n"
    "    mean time of each phase of a fresh spawn (prepare, clone, namespaces,\n"
    "    root, identity, seccomp, exec) follows.\n"
    "\n"
    "OPTIONS\n"
    "    -s, --socket PATH    control socket (default " PST_DEFAULT_CONTROL ")\n"
    "    -c, --policy POLICY  take the control socket from POLICY's broker.control\n"
    "                         (the policy is only parsed and validated; -p is\n"
    "                         the old spelling)\n"
    "    -j, --json           print the broker's JSON answer as is\n"
    "    -h, --help           this text\n"
    "\n"
    "    The control socket is root's alone (mode 0600): run as root.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 on success; 1 if the broker cannot be reached (with why: \"the\n"
    "    control socket is root-only; run as root\", \"no broker at PATH; pass\n"
    "    -s or -c\"); 2 on bad usage.\n";

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void fmt_us(char *b, size_t n, double us)
{
	if (us >= 1e6)
		snprintf(b, n, "%.2fs", us / 1e6);
	else if (us >= 1000)
		snprintf(b, n, "%.1fms", us / 1000);
	else
		snprintf(b, n, "%.0fus", us);
}

/* A sandbox's table row. */
static void render_row(FILE *out, const cJSON *s)
{
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "refused");
	const cJSON *lat = cJSON_GetObjectItemCaseSensitive(s, "spawn_us");
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(s, "exits");
	const cJSON *eg = cJSON_GetObjectItemCaseSensitive(s, "egress");
	char act[32], refs[48], sp[40], p50[16], p99[16], exits[64], den[24];
	snprintf(act, sizeof(act), "%.0f/%.0f", num(s, "active"), num(s, "limit"));
	snprintf(refs, sizeof(refs), "%.0f/%.0f/%.0f", num(ref, "per_source"), num(ref, "rate"),
	         num(ref, "spawn_failed"));
	fmt_us(p50, sizeof(p50), num(lat, "p50"));
	fmt_us(p99, sizeof(p99), num(lat, "p99"));
	if (num(lat, "samples") > 0)
		snprintf(sp, sizeof(sp), "%s/%s", p50, p99);
	else
		snprintf(sp, sizeof(sp), "-");
	snprintf(exits, sizeof(exits), "%.0f/%.0f/%.0f/%.0f", num(ex, "ok"), num(ex, "failed"),
	         num(ex, "signaled"), num(ex, "timeout"));
	if (eg)
		snprintf(den, sizeof(den), "%.0f", num(eg, "denied_packets"));
	else
		snprintf(den, sizeof(den), "-");
	fprintf(out, "%-12s %-8s %11s %9.0f %-22s %-15s %-24s %8s\n", str(s, "name"),
	        str(s, "trigger"), act, num(s, "started"), refs, sp, exits, den);
}

/* The lines under a sandbox's row: pre-warmed handlers, spawn phases (not
 * in top), its cgroups' figures. */
static void render_details(FILE *out, const cJSON *s, bool top)
{
	const cJSON *pw = cJSON_GetObjectItemCaseSensitive(s, "prewarm");
	if (num(pw, "target") > 0)
		fprintf(out,
		        "    prewarm: %.0f ready, %.0f starting (of %.0f); %.0f used, %.0f failed; "
		        "%.0f of the ready exec'd\n",
		        num(pw, "ready"), num(pw, "starting"), num(pw, "target"), num(pw, "used"),
		        num(pw, "failed"), num(pw, "execd"));
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "refused");
	if (num(ref, "address") > 0 || num(ref, "peer") > 0)
		fprintf(out,
		        "    refused: address %.0f (allow_from/deny_from, before the handshake), "
		        "peer %.0f (allow_uids/allow_gids, at accept)\n",
		        num(ref, "address"), num(ref, "peer"));
	const cJSON *ph = cJSON_GetObjectItemCaseSensitive(s, "spawn_phases_us");
	if (!top && num(ph, "samples") > 0) {
		fprintf(out, "    spawn phases (mean):");
		const cJSON *x;
		cJSON_ArrayForEach(x, ph)
		{
			if (strcmp(x->string, "samples") != 0) {
				char b[16];
				fmt_us(b, sizeof(b), x->valuedouble);
				fprintf(out, " %s %s", x->string, b);
			}
		}
		fputc('\n', out);
	}
	const cJSON *cg = cJSON_GetObjectItemCaseSensitive(s, "cgroup");
	if (cg) {
		char mem[16], peak[16], cpu[16];
		pst_fmt_bytes(mem, sizeof(mem), num(cg, "memory_bytes"));
		pst_fmt_bytes(peak, sizeof(peak), num(cg, "memory_peak_bytes"));
		fmt_us(cpu, sizeof(cpu), num(cg, "cpu_us"));
		fprintf(out, "    cgroups: memory %s now, peak %s; cpu %s; OOM kills %.0f\n", mem,
		        peak, cpu, num(cg, "oom_kills"));
	}
}

/* Its running handlers, one line each (top: the first 20). */
static void render_handlers(FILE *out, const cJSON *s, bool top)
{
	const cJSON *h;
	int shown = 0;
	cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(s, "handlers"))
	{
		if (top && shown++ >= 20) {
			fprintf(out, "    ...\n");
			break;
		}
		const char *peer = str(h, "peer");
		char mem[16] = "-", cpu[16] = "-";
		if (cJSON_GetObjectItemCaseSensitive(h, "memory_bytes"))
			pst_fmt_bytes(mem, sizeof(mem), num(h, "memory_bytes"));
		if (cJSON_GetObjectItemCaseSensitive(h, "cpu_us"))
			fmt_us(cpu, sizeof(cpu), num(h, "cpu_us"));
		fprintf(out, "    pid %-8.0f peer %-40s age %6.1fs mem %7s cpu %8s pids %.0f\n",
		        num(h, "pid"), peer[0] ? peer : "-", num(h, "age_ms") / 1000, mem, cpu,
		        num(h, "pids"));
	}
}

int pst_status_render(FILE *out, const char *json, bool top)
{
	cJSON *root = cJSON_Parse(json);
	if (!root) {
		fputs("postern: the broker's answer is not JSON\n", stderr);
		return -1;
	}
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsString(err)) {
		fprintf(stderr, "postern: broker says: %s\n", err->valuestring);
		cJSON_Delete(root);
		return -1;
	}
	fprintf(out, "postern pid %.0f, up %.0fs, policy %s, %.0f handlers%s\n", num(root, "pid"),
	        num(root, "uptime_s"), str(root, "policy"), num(root, "handlers"),
	        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stopping")) ? ", STOPPING"
	                                                                         : "");
	fprintf(out, "%-12s %-8s %11s %9s %-22s %-15s %-24s %8s\n", "SANDBOX", "TRIGGER",
	        "ACTIVE/MAX", "STARTED", "REFUSED src/rate/fail", "SPAWN p50/p99",
	        "EXITS ok/fail/sig/tmo", "DENIED");
	const cJSON *s;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root, "sandboxes"))
	{
		render_row(out, s);
		render_details(out, s, top);
		render_handlers(out, s, top);
	}
	cJSON_Delete(root);
	return 0;
}

/* The control socket path of -s / -c (pst_control_path_resolve()), its
 * errors on stderr. */
int pst_control_path(const char *sock, const char *policy, char *out, size_t len)
{
	char why[4096];
	if (pst_control_path_resolve(sock, policy, out, len, why, sizeof(why)) < 0) {
		fprintf(stderr, "postern: %s\n", why);
		return -1;
	}
	return 0;
}

int pst_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"policy", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *sock = NULL, *policy = NULL;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:c:p:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
		case 'p': /* the old spelling */
			policy = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(status_usage, stdout);
			return 0;
		default:
			fputs("usage: postern status [--json] [-s SOCKET | -c POLICY]\n", stderr);
			return 2;
		}
	}
	if (optind != argc || (sock && policy)) {
		fputs("usage: postern status [--json] [-s SOCKET | -c POLICY]\n", stderr);
		return 2;
	}
	char path[256], why[512];
	if (pst_control_path(sock, policy, path, sizeof(path)) < 0)
		return 1;
	char *answer = NULL;
	int qr = pst_control_query(path, "status\n", &answer, why, sizeof(why));
	if (qr < 0) {
		pst_control_complain("status", path, qr, why);
		return 1;
	}
	int r = 0;
	if (json)
		fputs(answer, stdout);
	else
		r = pst_status_render(stdout, answer, false);
	free(answer);
	return r < 0 ? 1 : 0;
}
