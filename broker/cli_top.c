/* SPDX-License-Identifier: MIT */
/*
 * postern top: a live monitor of a running broker, drawn with ncurses.
 * Polls the control socket's `status`, lays the frame out with top_draw()
 * (broker/top_draw.c, no terminal there) and reads keys. Linked into the
 * postern binary only, so libpostern.a needs no ncurses.
 *
 * The terminal is given back on every way out: q, SIGINT/SIGTERM/SIGHUP
 * (their handler only sets a flag; the loop, woken at least every 100 ms,
 * then leaves and calls endwin), an error (atexit). The broker going away
 * is shown and retried, never a reason to exit.
 */
#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "broker/broker.h"
#include "broker/internal.h"
#include "broker/top.h"

static const char top_usage[] =
    "NAME\n"
    "    postern top - live monitor of a running broker's sandboxes and handlers\n"
    "\n"
    "SYNOPSIS\n"
    "    postern top [-d SECONDS] [-n COUNT] [-b | --once] [-w COLUMNS]\n"
    "                [-c POLICY | -s SOCKET]\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks the broker for its status every interval and shows a header (the\n"
    "    broker's pid, uptime, policy generation, sandboxes, handlers serving\n"
    "    and pre-warmed, requests accepted and refused per second), a table\n"
    "    of the sandboxes and one of the handlers serving (pid, sandbox, peer,\n"
    "    age, CPU time and share, memory now and at peak, processes: from each\n"
    "    handler's cgroup). The tables fit the terminal: columns of lower\n"
    "    priority are left out when it is narrow, names cut with a '~', rows\n"
    "    clipped to the height (the view scrolls with the selection).\n"
    "\n"
    "    When the broker goes away top says \"broker gone, retrying\" and\n"
    "    keeps asking; it comes back with the broker.\n"
    "\n"
    "KEYS\n"
    "    Up/Down, j/k    select a sandbox (a handler in a sandbox's view)\n"
    "    PgUp/PgDn       a page up or down\n"
    "    Enter           the selected sandbox and its handlers only\n"
    "    Esc, Backspace  back to all sandboxes\n"
    "    s               next sort column (the header marks it with *; the footer\n"
    "                    names it): sandboxes by name, active, started, refused,\n"
    "                    cpu, mem; handlers by age, pid, cpu, mem\n"
    "    K               kill the selected handler (a sandbox's view), after y;\n"
    "                    the broker kills its whole cgroup (control verb kill PID)\n"
    "    p               pause or resume the updates\n"
    "    ?               help\n"
    "    q, Ctrl-C       quit\n"
    "\n"
    "OPTIONS\n"
    "    -d, --delay SECONDS  interval between updates (default 1, 0.1 to 60)\n"
    "    -n, --iterations N   stop after N updates (default: until q)\n"
    "    -b, --batch          plain text frames on stdout, no terminal needed\n"
    "                         (also when stdout is not a terminal and -n is given)\n"
    "        --once           one frame in batch mode (-b -n 1)\n"
    "    -w, --width COLUMNS  batch mode's width (default $COLUMNS, else 80)\n"
    "    -c, --policy FILE    take the control socket path from FILE's broker.control\n"
    "    -s, --socket PATH    control socket (default " PST_DEFAULT_CONTROL ")\n"
    "    -h, --help           this text\n"
    "\n"
    "EXIT STATUS\n"
    "    0 when quit; 128+N after signal N (SIGINT, SIGTERM, SIGHUP); 1 in batch\n"
    "    mode if the broker cannot be reached, or without a terminal; 2 on bad\n"
    "    usage.\n";

#define TOP_USAGE_LINE                                                                             \
	"usage: postern top [-d SECONDS] [-n COUNT] [-b | --once] [-w COLUMNS] "                   \
	"[-c POLICY | -s SOCKET]\n"

static volatile sig_atomic_t top_signal;
static bool curses_on;

static void on_signal(int sig)
{
	top_signal = sig;
}

static void end_curses(void)
{
	if (curses_on) {
		curses_on = false;
		endwin();
	}
}

struct top_run {
	char path[256];
	double delay;
	long iterations, polls;
	struct top_model cur;
	double cur_t;
	struct top_view v;
	double gone_since; /* 0: the broker answers */
	char gone_why[300];
	char note[200]; /* a kill's outcome, shown until note_until */
	double note_until;
	double kill_pid; /* > 0: waiting for y/n */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_clock(struct top_view *v)
{
	time_t t = time(NULL);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(v->clock, sizeof(v->clock), "%H:%M:%S", &tm);
}

/* One status poll: the model replaced, or the broker marked gone. */
static int poll_broker(struct top_run *t)
{
	char *answer = NULL, why[512];
	struct top_model m;
	double now = now_s();
	/* 1 s at most: a broker that accepts and never answers must not hold
	 * the keys (or Ctrl-C) for the 5 s a plain query waits */
	int r = pst_control_query_timeout(t->path, "status\n", 1000, &answer, why, sizeof(why));
	if (r == 0) {
		char pwhy[300];
		r = top_model_parse(answer, &m, pwhy, sizeof(pwhy));
		if (r < 0)
			snprintf(why, sizeof(why), "%s", pwhy);
	}
	free(answer);
	t->polls++;
	if (r < 0) {
		if (t->gone_since == 0)
			t->gone_since = now;
		snprintf(t->gone_why, sizeof(t->gone_why), "%.280s", why);
		top_model_free(&t->cur);
		t->v.have_model = false;
		return -1;
	}
	top_model_rates(&m, t->v.have_model ? &t->cur : NULL, now - t->cur_t);
	top_sort(&m, t->v.sbx_sort, t->v.h_sort);
	top_model_free(&t->cur);
	t->cur = m;
	t->cur_t = now;
	t->v.have_model = true;
	t->gone_since = 0;
	return 0;
}

/* The alert line: a pending question first, then the broker's absence,
 * then the latest outcome. */
static void set_alert(struct top_run *t)
{
	struct top_view *v = &t->v;
	double now = now_s();
	if (t->kill_pid > 0)
		snprintf(v->alert, sizeof(v->alert), "kill handler %.0f of %s? (y/n)", t->kill_pid,
		         v->sel_sbx);
	else if (t->gone_since > 0)
		snprintf(v->alert, sizeof(v->alert), "broker gone, retrying (%.0fs): %.180s",
		         now - t->gone_since, t->gone_why);
	else if (t->note[0] && now < t->note_until)
		snprintf(v->alert, sizeof(v->alert), "%s", t->note);
	else
		v->alert[0] = 0;
	set_clock(v);
}

static void note(struct top_run *t, const char *msg)
{
	snprintf(t->note, sizeof(t->note), "%s", msg);
	t->note_until = now_s() + 5;
}

/* K answered y: the control verb, and what the broker said. */
static void kill_handler(struct top_run *t, double pid)
{
	char req[48], why[512], msg[200];
	char *answer = NULL;
	snprintf(req, sizeof(req), "kill %.0f\n", pid);
	if (pst_control_query(t->path, req, &answer, why, sizeof(why)) < 0) {
		snprintf(msg, sizeof(msg), "kill %.0f: %.150s", pid, why);
		note(t, msg);
		return;
	}
	cJSON *root = cJSON_Parse(answer);
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsString(err)) {
		/* the broker's words, printable only */
		char e[150];
		size_t i = 0;
		for (; err->valuestring[i] && i + 1 < sizeof(e); i++) {
			unsigned char c = (unsigned char)err->valuestring[i];
			e[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		e[i] = 0;
		snprintf(msg, sizeof(msg), "kill %.0f: broker says: %s", pid, e);
	} else if (!root) {
		snprintf(msg, sizeof(msg), "kill %.0f: the broker's answer is not JSON", pid);
	} else {
		snprintf(msg, sizeof(msg), "killed handler %.0f", pid);
	}
	cJSON_Delete(root);
	free(answer);
	note(t, msg);
}

static void draw(struct top_run *t)
{
	int rows, cols;
	getmaxyx(stdscr, rows, cols);
	struct top_frame f = {0};
	set_alert(t);
	erase();
	if (top_draw(&f, &t->cur, &t->v, cols, rows) == 0) {
		for (size_t i = 0; i < f.n && (int)i < rows; i++) {
			attr_t a = f.attr[i] == TOP_A_TITLE   ? A_BOLD
			           : f.attr[i] == TOP_A_HEAD  ? A_REVERSE
			           : f.attr[i] == TOP_A_SEL   ? A_REVERSE | A_BOLD
			           : f.attr[i] == TOP_A_ALERT ? A_BOLD
			                                      : A_NORMAL;
			attrset(a);
			mvaddnstr((int)i, 0, f.line[i], cols);
		}
		attrset(A_NORMAL);
	} else {
		mvaddstr(0, 0, "postern top: out of memory");
	}
	top_frame_free(&f);
	refresh();
}

/* K: ask before killing the selected handler (in a sandbox's view). */
static void key_kill(struct top_run *t)
{
	struct top_view *v = &t->v;
	size_t idx[1];
	top_select_move(&t->cur, v, 0); /* the selection onto a row */
	if (!v->handlers_view)
		note(t, "K: Enter a sandbox first, then select one of its handlers");
	else if (!top_view_handlers(&t->cur, v, idx, 1) || v->sel_pid <= 0)
		note(t, "K: no handler to kill");
	else
		t->kill_pid = v->sel_pid;
}

/* A key that moves: the selection, into a sandbox's view or out; false
 * when ch is none of them. */
static bool key_move(struct top_run *t, int ch)
{
	struct top_view *v = &t->v;
	int page = LINES > 8 ? LINES - 8 : 1;
	switch (ch) {
	case KEY_UP:
	case 'k':
		top_select_move(&t->cur, v, -1);
		return true;
	case KEY_DOWN:
	case 'j':
		top_select_move(&t->cur, v, 1);
		return true;
	case KEY_PPAGE:
	case KEY_NPAGE:
		top_select_move(&t->cur, v, ch == KEY_PPAGE ? -page : page);
		return true;
	case '\n':
	case '\r':
	case KEY_ENTER:
		if (!v->handlers_view && v->sel_sbx[0]) {
			v->handlers_view = true;
			v->sel_pid = 0;
			v->h_scroll = 0;
		}
		return true;
	case 27: /* Esc */
	case KEY_BACKSPACE:
	case 127:
	case 8:
		v->handlers_view = false;
		return true;
	default:
		return false;
	}
}

/* A key; false when it quits. */
static bool on_key(struct top_run *t, int ch, double *next_poll)
{
	struct top_view *v = &t->v;
	if (t->kill_pid > 0) {
		double pid = t->kill_pid;
		t->kill_pid = 0;
		if (ch == 'y' || ch == 'Y') {
			kill_handler(t, pid);
			*next_poll = 0;
		} else {
			note(t, "kill cancelled");
		}
		return true;
	}
	if (v->help && ch != KEY_RESIZE) {
		v->help = false;
		if (ch == '?')
			return true;
	}
	if (key_move(t, ch))
		return true;
	switch (ch) {
	case 'q':
	case 'Q':
		return false;
	case 's':
		if (v->handlers_view)
			v->h_sort = (enum top_h_sort)((v->h_sort + 1) % TOP_H__N);
		else
			v->sbx_sort = (enum top_sbx_sort)((v->sbx_sort + 1) % TOP_S__N);
		top_sort(&t->cur, v->sbx_sort, v->h_sort);
		break;
	case 'K':
		key_kill(t);
		break;
	case 'p':
		v->paused = !v->paused;
		if (!v->paused)
			*next_poll = 0;
		break;
	case '?':
		v->help = true;
		break;
	case KEY_RESIZE:
		clear(); /* redrawn whole at the new size */
		break;
	default:
		break;
	}
	return true;
}

static void catch_signals(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_signal; /* no SA_RESTART: the wait returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int run_tty(struct top_run *t)
{
	catch_signals();
	if (!newterm(NULL, stdout, stdin)) {
		const char *term = getenv("TERM");
		fprintf(stderr,
		        "postern top: cannot use the terminal (TERM=%s): no terminfo entry for it; "
		        "set TERM (e.g. TERM=xterm) or use -b\n",
		        term ? term : "(unset)");
		return 1;
	}
	curses_on = true;
	atexit(end_curses);
	cbreak(); /* not raw: Ctrl-C is still SIGINT */
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	curs_set(0);
	set_escdelay(25);
	timeout(100);
	double next_poll = 0;
	bool go = true;
	while (go && !top_signal) {
		double now = now_s();
		if (!t->v.paused && now >= next_poll) {
			poll_broker(t);
			next_poll = now + t->delay;
		}
		draw(t);
		if (t->iterations > 0 && t->polls >= t->iterations)
			break;
		int ch = getch();
		if (ch != ERR)
			go = on_key(t, ch, &next_poll);
	}
	end_curses();
	return top_signal ? 128 + top_signal : 0;
}

static void print_frame(const struct top_frame *f)
{
	for (size_t i = 0; i < f->n; i++) {
		size_t len = strlen(f->line[i]);
		while (len && f->line[i][len - 1] == ' ')
			len--;
		printf("%.*s\n", (int)len, f->line[i]);
	}
}

static int run_batch(struct top_run *t, int width)
{
	for (long i = 0; t->iterations <= 0 || i < t->iterations; i++) {
		if (i > 0) {
			struct timespec ts = {(time_t)t->delay,
			                      (long)((t->delay - (double)(time_t)t->delay) * 1e9)};
			nanosleep(&ts, NULL);
		}
		if (poll_broker(t) < 0) {
			fprintf(stderr, "postern top: %s (is the broker running? pass -s or -c)\n",
			        t->gone_why);
			return 1;
		}
		struct top_frame f = {0};
		set_alert(t);
		if (i > 0)
			putchar('\n');
		int r = top_draw(&f, &t->cur, &t->v, width, 0);
		if (r == 0)
			print_frame(&f);
		top_frame_free(&f);
		if (fflush(stdout) != 0 || r < 0)
			return 1;
	}
	return 0;
}

struct top_opts {
	const char *sock, *policy;
	bool batch, n_given, help;
	int width;
};

/* One option into t and o; 0, or 2 after saying what is wrong. */
static int top_option(int c, struct top_run *t, struct top_opts *o)
{
	char *end;
	switch (c) {
	case 'd':
		t->delay = strtod(optarg, &end);
		if (*end || !(t->delay >= 0.1 && t->delay <= 60)) {
			fprintf(stderr, "postern top: -d %s: expected seconds between 0.1 and 60\n",
			        optarg);
			return 2;
		}
		return 0;
	case 'n':
		t->iterations = strtol(optarg, &end, 10);
		if (*end || t->iterations < 1) {
			fprintf(stderr, "postern top: -n %s: expected a positive count\n", optarg);
			return 2;
		}
		o->n_given = true;
		return 0;
	case 'o': /* --once */
		t->iterations = 1;
		o->n_given = true;
		/* fall through */
	case 'b':
		o->batch = true;
		return 0;
	case 'w':
		o->width = (int)strtol(optarg, &end, 10);
		if (*end || o->width < 20 || o->width > 1000) {
			fprintf(stderr, "postern top: -w %s: expected columns from 20 to 1000\n",
			        optarg);
			return 2;
		}
		return 0;
	case 's':
		o->sock = optarg;
		return 0;
	case 'c':
	case 'p': /* the policy, as before -c (kept for scripts) */
		o->policy = optarg;
		return 0;
	case 'h':
		o->help = true;
		return 0;
	default:
		fputs(TOP_USAGE_LINE, stderr);
		return 2;
	}
}

int pst_cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"delay", required_argument, NULL, 'd'},
	    {"iterations", required_argument, NULL, 'n'},
	    {"batch", no_argument, NULL, 'b'},
	    {"once", no_argument, NULL, 'o'},
	    {"width", required_argument, NULL, 'w'},
	    {"socket", required_argument, NULL, 's'},
	    {"policy", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static struct top_run t; /* large; one per process */
	struct top_opts o = {0};
	int c, r;

	memset(&t, 0, sizeof(t));
	t.delay = 1.0;
	t.v.h_sort = TOP_H_AGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:n:bw:s:c:p:h", opts, NULL)) != -1)
		if ((r = top_option(c, &t, &o)) != 0)
			return r;
	if (o.help) {
		fputs(top_usage, stdout);
		return 0;
	}
	if (optind != argc || (o.sock && o.policy)) {
		fputs(TOP_USAGE_LINE, stderr);
		return 2;
	}
	if (pst_control_path(o.sock, o.policy, t.path, sizeof(t.path)) < 0)
		return 1;
	if (!o.batch && !(isatty(0) && isatty(1))) {
		if (!o.n_given) {
			fputs("postern top: standard input or output is not a terminal: use -b "
			      "(batch mode: plain text frames) or --once\n",
			      stderr);
			return 1;
		}
		o.batch = true; /* -n N into a pipe: as before, frames as text */
	}
	if (o.batch && !o.width) {
		const char *cs = getenv("COLUMNS");
		char *end;
		long w = cs ? strtol(cs, &end, 10) : 0;
		o.width = cs && !*end && w >= 20 && w <= 1000 ? (int)w : 80;
	}
	r = o.batch ? run_batch(&t, o.width) : run_tty(&t);
	top_model_free(&t.cur);
	return r;
}
