/* SPDX-License-Identifier: MIT */
/*
 * The pieces of the Prometheus text format (exposition format 0.0.4) the
 * metrics endpoint is written with: escaping what reaches a label value or
 * a HELP line, a histogram of durations with fixed buckets (filled at each
 * spawn, no allocation), and the process figures the Prometheus client
 * libraries export, read from /proc/self. Pure functions over buffers and
 * streams (but pst_proc_self), unit-tested in tests/unit/test_prom.c.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/internal.h"

/* ---- escaping ------------------------------------------------------------ */

void pst_prom_escape(FILE *f, const char *s, bool label)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && label)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

void pst_prom_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	pst_prom_escape(f, help, false);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* ---- a histogram of durations -------------------------------------------- */

/* 100 us .. 10 s, 1-2.5-5 steps: a prewarmed release (~100 us) to a
 * fresh spawn on a loaded host (tens of ms) and a stuck one (seconds). */
const uint64_t pst_hist_bounds_ns[PST_HIST_BUCKETS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};
static const char *const hist_le[PST_HIST_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};

void pst_hist_add(struct pst_hist *h, uint64_t ns)
{
	size_t i = 0;
	while (i < PST_HIST_BUCKETS && ns > pst_hist_bounds_ns[i])
		i++;
	h->n[i]++; /* i == PST_HIST_BUCKETS: above the last bound (+Inf only) */
	h->count++;
	h->sum_ns += ns;
}

void pst_prom_hist(FILE *f, const char *name, const char *label, const char *value,
                   const struct pst_hist *h)
{
	uint64_t cum = 0;
	for (size_t i = 0; i <= PST_HIST_BUCKETS; i++) {
		cum += h->n[i];
		fprintf(f, "%s_bucket{%s=\"", name, label);
		pst_prom_escape(f, value, true);
		fprintf(f, "\",le=\"%s\"} %llu\n", i < PST_HIST_BUCKETS ? hist_le[i] : "+Inf",
		        (unsigned long long)cum);
	}
	fprintf(f, "%s_sum{%s=\"", name, label);
	pst_prom_escape(f, value, true);
	fprintf(f, "\"} %.9f\n%s_count{%s=\"", (double)h->sum_ns / 1e9, name, label);
	pst_prom_escape(f, value, true);
	fprintf(f, "\"} %llu\n", (unsigned long long)h->count);
}

/* ---- the process ----------------------------------------------------------- */

int pst_proc_stat_parse(const char *stat, const char *procstat, long ticks, long page,
                        struct pst_proc *p)
{
	/* the command name may hold anything, ')' and spaces too: the fields
	 * follow the last ')' */
	const char *q = stat ? strrchr(stat, ')') : NULL;
	if (!q || ticks <= 0 || page <= 0)
		return -1;
	unsigned long long v[22];
	size_t k = 0;
	q++;
	/* fields 3 (state) .. 24 (rss); the state is a letter */
	while (*q == ' ')
		q++;
	if (!*q)
		return -1;
	q++;
	for (k = 0; k < 21; k++) {
		char *end;
		while (*q == ' ')
			q++;
		if (*q < '0' || *q > '9') {
			if (*q != '-')
				return -1;
		}
		v[k] = strtoull(q, &end, 10);
		if (end == q)
			return -1;
		q = end;
	}
	/* v[k]: field k + 4; utime 14, stime 15, starttime 22, vsize 23, rss 24 */
	p->cpu_seconds = (double)(v[10] + v[11]) / (double)ticks;
	p->virtual_bytes = v[19];
	p->resident_bytes = v[20] * (unsigned long long)page;
	const char *b = procstat ? strstr(procstat, "\nbtime ") : NULL;
	if (!b)
		return -1;
	p->start_time_seconds = strtod(b + 7, NULL) + (double)v[18] / (double)ticks;
	return 0;
}

/* The whole of a small /proc file, NUL-terminated; false if unread. */
static bool read_small(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = 0;
	return n > 0;
}

int pst_proc_self(struct pst_proc *p)
{
	char st[1024], ps[8192];
	memset(p, 0, sizeof(*p));
	if (!read_small("/proc/self/stat", st, sizeof(st)) ||
	    !read_small("/proc/stat", ps + 1, sizeof(ps) - 1))
		return -1;
	ps[0] = '\n'; /* btime may be its first line */
	if (pst_proc_stat_parse(st, ps, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), p) < 0)
		return -1;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	p->open_fds = n > 0 ? n - 1 : 0; /* not the directory's own */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur;
	return 0;
}
