/* SPDX-License-Identifier: MIT */
/* postern top: a live view of a running broker (refreshes its status). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/internal.h"

static const char top_usage[] =
    "NAME\n"
    "    postern top - live view of sandboxes and handlers\n"
    "\n"
    "SYNOPSIS\n"
    "    postern top [-d SECONDS] [-n COUNT] [-s SOCKET | -p POLICY]\n"
    "\n"
    "DESCRIPTION\n"
    "    Redraws the broker's status (as `postern status` prints it) every\n"
    "    interval: per sandbox active/maximum handlers, started, refusals,\n"
    "    spawn latency, exits and egress denials, then the running handlers\n"
    "    (pid, peer, age; at most 20 per sandbox). Press q to quit.\n"
    "\n"
    "OPTIONS\n"
    "    -d, --delay SECONDS  refresh interval (default 1, 0.1 to 60)\n"
    "    -n, --iterations N   stop after N refreshes (default: until q)\n"
    "    -s, --socket PATH    control socket (default " PST_DEFAULT_CONTROL ")\n"
    "    -p, --policy FILE    take the control socket path from FILE\n"
    "    -h, --help           this text\n"
    "\n"
    "EXIT STATUS\n"
    "    0 when quit; 1 if the broker cannot be reached; 2 on bad usage.\n";

static struct termios saved;
static bool raw;

static void restore_tty(void)
{
	if (raw)
		tcsetattr(0, TCSANOW, &saved);
	raw = false;
}

int pst_cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"delay", required_argument, NULL, 'd'},  {"iterations", required_argument, NULL, 'n'},
	    {"socket", required_argument, NULL, 's'}, {"policy", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},         {0},
	};
	const char *sock = NULL, *policy = NULL;
	double delay = 1.0;
	long iterations = -1;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:n:s:p:h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'd':
			delay = strtod(optarg, &end);
			if (*end || delay < 0.1 || delay > 60) {
				fprintf(stderr,
				        "postern top: -d %s: expected seconds between 0.1 and 60\n",
				        optarg);
				return 2;
			}
			break;
		case 'n':
			iterations = strtol(optarg, &end, 10);
			if (*end || iterations < 1) {
				fprintf(stderr, "postern top: -n %s: expected a positive count\n",
				        optarg);
				return 2;
			}
			break;
		case 's':
			sock = optarg;
			break;
		case 'p':
			policy = optarg;
			break;
		case 'h':
			fputs(top_usage, stdout);
			return 0;
		default:
			fputs(
			    "usage: postern top [-d SECONDS] [-n COUNT] [-s SOCKET | -p POLICY]\n",
			    stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs("usage: postern top [-d SECONDS] [-n COUNT] [-s SOCKET | -p POLICY]\n",
		      stderr);
		return 2;
	}
	char path[256], why[512];
	if (pst_control_path(sock, policy, path, sizeof(path)) < 0)
		return 1;

	bool tty = isatty(1) && isatty(0);
	if (tty && tcgetattr(0, &saved) == 0) {
		struct termios t = saved;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(0, TCSANOW, &t) == 0) {
			raw = true;
			atexit(restore_tty);
		}
	}
	int rc = 0;
	for (long i = 0; iterations < 0 || i < iterations; i++) {
		char *answer = NULL;
		if (pst_control_query(path, "status\n", &answer, why, sizeof(why)) < 0) {
			fprintf(stderr, "postern top: %s (is the broker running?)\n", why);
			rc = 1;
			break;
		}
		if (tty)
			fputs("\033[H\033[2J", stdout);
		time_t now = time(NULL);
		char ts[32];
		strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
		printf("postern top - %s - q to quit\n", ts);
		int r = pst_status_render(stdout, answer, true);
		free(answer);
		fflush(stdout);
		if (r < 0) {
			rc = 1;
			break;
		}
		if (iterations >= 0 && i + 1 >= iterations)
			break;
		/* wait for the interval, or for q */
		struct pollfd pfd = {.fd = 0, .events = POLLIN};
		int n = poll(&pfd, tty ? 1 : 0, (int)(delay * 1000));
		if (n > 0) {
			char ch;
			if (read(0, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
				break;
		}
	}
	restore_tty();
	return rc;
}
