/* SPDX-License-Identifier: MIT */
/* postern reload, postern stop: a running broker asked over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "broker/broker.h"
#include "broker/internal.h"

#define RELOAD_TIMEOUT_MS 120000 /* a reload answers once it is done */
#define STOP_SLACK_MS 10000      /* beyond the grace period */
#define STOP_POLL_MS 100

static const char reload_usage[] =
    "NAME\n"
    "    postern reload - apply a running broker's policy file again\n"
    "\n"
    "SYNOPSIS\n"
    "    postern reload [--json] [-s SOCKET | -c POLICY]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks the broker, over its control socket, to load its policy file\n"
    "    again, exactly as SIGHUP does, and waits for the outcome. A reload is\n"
    "    all or nothing: the new policy is read, trusted and validated, its\n"
    "    sandboxes prepared, its listeners and channels opened beside the ones\n"
    "    in force and its network rules made; only when all of that succeeded\n"
    "    does the broker switch to it. Otherwise the policy in force keeps\n"
    "    serving, unchanged. Handlers running stay, in their sandbox of the\n"
    "    same name. broker.table, broker.state_dir, broker.control and\n"
    "    broker.metrics cannot change on reload.\n"
    "\n"
    "    Prints what changed, one line each:\n"
    "        sandbox added: NAME\n"
    "        sandbox removed: NAME\n"
    "        sandbox changed: NAME      (its JSON, or its uid, differs)\n"
    "        listener opened: ADDRESS (SANDBOX)\n"
    "        listener closed: ADDRESS (SANDBOX)\n"
    "    or \"no change\"; then, on stderr, every error the reload met, one\n"
    "    per line (\"error: FILE: JSON.PATH: message\" for a policy error). A\n"
    "    reload that was refused says \"reload refused: the broker keeps its\n"
    "    policy\".\n"
    "\n"
    "    Reloads do not overlap: the broker runs each to its end before it\n"
    "    takes the next request or signal, so a second reload (another\n"
    "    `postern reload`, a SIGHUP) waits for the first and then reads the\n"
    "    policy file as it is then. A broker that is stopping refuses.\n"
    "\n"
    "OPTIONS\n"
    "    -s, --socket PATH    control socket (default " PST_DEFAULT_CONTROL ")\n"
    "    -c, --policy POLICY  take the control socket from POLICY's broker.control\n"
    "                         (POLICY is only parsed and validated here; the\n"
    "                         broker reloads the file it was started with)\n"
    "    -j, --json           print the broker's JSON answer as is\n"
    "    -h, --help           this text\n"
    "\n"
    "    The control socket is root's alone (mode 0600): run as root.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 the new policy is in force (also when nothing changed); 1 the reload\n"
    "    was refused (the old policy serves); 2 bad usage, or no broker could\n"
    "    be asked (\"the control socket is root-only; run as root\", \"no broker\n"
    "    at PATH; pass -s or -c (is postern running?)\").\n"
    "\n"
    "EXAMPLES\n"
    "    postern reload -c /etc/postern/postern.json\n"
    "    ExecReload=/usr/local/sbin/postern reload   (systemd unit)\n";

static const char stop_usage[] =
    "NAME\n"
    "    postern stop - stop a running broker\n"
    "\n"
    "SYNOPSIS\n"
    "    postern stop [-t SECONDS] [-s SOCKET | -c POLICY]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks the broker, over its control socket, to stop exactly as SIGTERM\n"
    "    does: it stops accepting at once (its listeners close), discards its\n"
    "    pre-warmed handlers, lets the handlers serving a request finish for up\n"
    "    to broker.grace, kills what is left, removes its nftables table,\n"
    "    network namespaces, cgroups and control socket, and exits. Asking\n"
    "    again while it stops cuts the grace period short, as a second SIGTERM\n"
    "    does.\n"
    "\n"
    "    Then waits until the control socket is gone (the broker's last step\n"
    "    but its exit), for the grace period and 10 seconds more, or for\n"
    "    -t SECONDS, and says so: \"stopped\", or that it still runs.\n"
    "\n"
    "OPTIONS\n"
    "    -s, --socket PATH    control socket (default " PST_DEFAULT_CONTROL ")\n"
    "    -c, --policy POLICY  take the control socket from POLICY's broker.control\n"
    "    -t, --timeout SECS   how long to wait for the end (default: the broker's\n"
    "                         grace period + 10 s; 0: do not wait)\n"
    "    -h, --help           this text\n"
    "\n"
    "    The control socket is root's alone (mode 0600): run as root.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 the broker stopped (with -t 0: it is stopping); 1 it still runs\n"
    "    when the wait is over, or it refused; 2 bad usage, or no broker could\n"
    "    be asked.\n";

struct ctl_opts {
	const char *sock, *policy;
	bool json;
	long timeout_ms; /* stop: -1 for the default */
};

/* -s, -c (-p: the old spelling), --json (reload), -t (stop). 0, or the exit
 * code (0 after --help). */
static int ctl_parse(int argc, char **argv, bool reload, struct ctl_opts *o, bool *done)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'}, {"policy", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},         {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},         {0},
	};
	const char *use = reload ? "usage: postern reload [--json] [-s SOCKET | -c POLICY]\n"
	                         : "usage: postern stop [-t SECONDS] [-s SOCKET | -c POLICY]\n";
	int c;
	memset(o, 0, sizeof(*o));
	o->timeout_ms = -1;
	*done = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, reload ? "s:c:p:jh" : "s:c:p:t:h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's':
			o->sock = optarg;
			break;
		case 'c':
		case 'p':
			o->policy = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 't': {
			double t = strtod(optarg, &end);
			if (end == optarg || *end || !(t >= 0 && t <= 3600)) {
				fprintf(stderr, "postern stop: -t %s: want seconds, 0 to 3600\n",
				        optarg);
				return 2;
			}
			o->timeout_ms = (long)(t * 1000);
			break;
		}
		case 'h':
			fputs(reload ? reload_usage : stop_usage, stdout);
			*done = true;
			return 0;
		default:
			fputs(use, stderr);
			return 2;
		}
	}
	if (optind != argc || (o->sock && o->policy)) {
		fputs(use, stderr);
		return 2;
	}
	return 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One line per entry of root.SECTION.KEY; how many. */
static int print_changes(const cJSON *root, const char *section, const char *key, const char *label)
{
	const cJSON *arr =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, section), key);
	const cJSON *it;
	int n = 0;
	cJSON_ArrayForEach(it, arr)
	{
		if (cJSON_IsString(it))
			printf("%s %s: %s\n", label, key, it->valuestring);
		else if (cJSON_IsObject(it))
			printf("%s %s: %s (%s)\n", label, key, jstr(it, "address") ?: "?",
			       jstr(it, "sandbox") ?: "?");
		else
			continue;
		n++;
	}
	return n;
}

/* The broker's answer to "reload", for people; the exit code. */
static int reload_render(const char *answer)
{
	cJSON *root = cJSON_Parse(answer);
	if (!root) {
		fprintf(stderr, "postern reload: the broker's answer is not JSON: %.200s\n",
		        answer);
		return 1;
	}
	const char *err = jstr(root, "error");
	const cJSON *applied = cJSON_GetObjectItemCaseSensitive(root, "applied");
	int rc = 1;
	if (err) {
		fprintf(stderr, "postern reload: %s\n", err);
	} else if (!cJSON_IsBool(applied)) {
		fprintf(stderr, "postern reload: the broker's answer says no outcome: %.200s\n",
		        answer);
	} else {
		int n = 0;
		if (cJSON_IsTrue(applied)) {
			n += print_changes(root, "sandboxes", "added", "sandbox");
			n += print_changes(root, "sandboxes", "removed", "sandbox");
			n += print_changes(root, "sandboxes", "changed", "sandbox");
			n += print_changes(root, "listeners", "opened", "listener");
			n += print_changes(root, "listeners", "closed", "listener");
			if (!n)
				puts("no change");
			rc = 0;
		}
		fflush(stdout);
		const cJSON *it;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "errors"))
		{
			if (cJSON_IsString(it))
				fprintf(stderr, "error: %s\n", it->valuestring);
		}
		if (rc)
			fputs("reload refused: the broker keeps its policy\n", stderr);
	}
	cJSON_Delete(root);
	return rc;
}

int pst_cmd_reload(int argc, char **argv)
{
	struct ctl_opts o;
	bool done;
	int r = ctl_parse(argc, argv, true, &o, &done);
	if (r || done)
		return r;
	char path[256], why[4096];
	if (pst_control_path_resolve(o.sock, o.policy, path, sizeof(path), why, sizeof(why)) < 0) {
		fprintf(stderr, "postern reload: %s\n", why);
		return 2;
	}
	char *answer = NULL;
	r = pst_control_query_timeout(path, "reload\n", RELOAD_TIMEOUT_MS, &answer, why,
	                              sizeof(why));
	if (r < 0) {
		pst_control_complain("reload", path, r, why);
		return 2;
	}
	if (o.json) {
		fputs(answer, stdout);
		cJSON *root = cJSON_Parse(answer);
		r = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "applied")) ? 0 : 1;
		cJSON_Delete(root);
	} else {
		r = reload_render(answer);
	}
	free(answer);
	return r;
}

/* Whether something still answers connect() on path: 1 yes, 0 gone
 * (ENOENT, ECONNREFUSED), a negative errno when it cannot be told. */
static int socket_alive(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len >= sizeof(un.sun_path))
		return -ENAMETOOLONG;
	memcpy(un.sun_path, path, len + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0 ? 1 : -errno;
	close(fd);
	return r == -ENOENT || r == -ECONNREFUSED ? 0 : r;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pst_cmd_stop(int argc, char **argv)
{
	struct ctl_opts o;
	bool done;
	int r = ctl_parse(argc, argv, false, &o, &done);
	if (r || done)
		return r;
	char path[256], why[4096];
	if (pst_control_path_resolve(o.sock, o.policy, path, sizeof(path), why, sizeof(why)) < 0) {
		fprintf(stderr, "postern stop: %s\n", why);
		return 2;
	}
	char *answer = NULL;
	r = pst_control_query(path, "stop\n", &answer, why, sizeof(why));
	if (r < 0) {
		pst_control_complain("stop", path, r, why);
		return 2;
	}
	cJSON *root = cJSON_Parse(answer);
	const cJSON *grace = cJSON_GetObjectItemCaseSensitive(root, "grace_ms");
	bool stopping = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stopping"));
	long grace_ms = cJSON_IsNumber(grace) ? (long)grace->valuedouble : 0;
	if (!stopping) {
		const char *err = jstr(root, "error");
		fprintf(stderr, "postern stop: %s\n", err ? err : answer);
		cJSON_Delete(root);
		free(answer);
		return 1;
	}
	bool again = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "already"));
	cJSON_Delete(root);
	free(answer);
	printf("postern stop: the broker at %s is stopping%s (grace %ld ms)\n", path,
	       again ? " already; its grace period is cut short" : "", grace_ms);
	long wait = o.timeout_ms >= 0 ? o.timeout_ms : grace_ms + STOP_SLACK_MS;
	if (!wait)
		return 0;
	fflush(stdout);
	long until = now_ms() + wait;
	for (;;) {
		int a = socket_alive(path);
		if (a == 0) {
			puts("postern stop: stopped");
			return 0;
		}
		if (a < 0) {
			fprintf(stderr, "postern stop: %s: %s\n", path, strerror(-a));
			return 1;
		}
		if (now_ms() >= until)
			break;
		poll(NULL, 0, STOP_POLL_MS);
	}
	fprintf(stderr, "postern stop: the broker still answers on %s after %.1f s\n", path,
	        (double)wait / 1000);
	return 1;
}
