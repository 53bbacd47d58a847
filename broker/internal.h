/* SPDX-License-Identifier: MIT */
/* broker/ private header: the daemon's pieces (not for other modules). */
#ifndef POSTERN_BROKER_INTERNAL_H
#define POSTERN_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- logfmt lines (log.c) ------------------------------------------------
 * One line per event on stderr: `ts=... level=info event=accept key=value`.
 * Values with spaces, quotes, '=' or control characters are quoted and
 * escaped; a line is written with a single write(2) and capped in length. */
#define PST_LOG_LINE_MAX 2048

struct pst_logline {
	char buf[PST_LOG_LINE_MAX];
	size_t len;
	bool truncated;
};

extern int pst_log_fd;		/* default 2 */
extern bool pst_log_debug;	/* also log level=debug events (accept) */

void pst_ll_begin(struct pst_logline *l, const char *level, const char *event);
void pst_ll_str(struct pst_logline *l, const char *key, const char *val);
void pst_ll_strn(struct pst_logline *l, const char *key, const char *val, size_t n);
void pst_ll_int(struct pst_logline *l, const char *key, long long v);
void pst_ll_uint(struct pst_logline *l, const char *key, unsigned long long v);
void pst_ll_ms(struct pst_logline *l, const char *key, uint64_t ns);	/* "12.345" */
void pst_ll_end(struct pst_logline *l);	/* writes the line to pst_log_fd */

/* One-call form for simple events: pst_log("info", "stop", "reason", "SIGTERM", NULL) */
void pst_log(const char *level, const char *event, ...);

/* ---- token bucket (util.c) --------------------------------------------- */
struct pst_bucket {
	double rate;		/* tokens per second; <= 0: unlimited */
	double burst;
	double tokens;
	uint64_t last_ns;
};

void pst_bucket_init(struct pst_bucket *b, double rate, uint64_t now_ns);
bool pst_bucket_take(struct pst_bucket *b, uint64_t now_ns);

/* ---- concurrent handlers per source address (util.c) -------------------
 * Open addressing, linear probing, backward-shift deletion. Keys are 17
 * bytes: a family tag and 16 address bytes (v4 in the first 4). */
#define PST_SRCKEY_LEN 17

struct pst_srcent {
	uint8_t key[PST_SRCKEY_LEN];
	uint32_t count;		/* 0: empty slot */
};

struct pst_srctab {
	struct pst_srcent *slots;
	size_t cap;		/* power of two */
	size_t used;
};

void pst_srctab_free(struct pst_srctab *t);
uint32_t pst_srctab_get(const struct pst_srctab *t, const uint8_t *key);
int pst_srctab_inc(struct pst_srctab *t, const uint8_t *key);	/* 0 or -ENOMEM */
void pst_srctab_dec(struct pst_srctab *t, const uint8_t *key);

/* ---- latency samples for p50/p99 (util.c) ------------------------------ */
#define PST_LAT_SAMPLES 1024

struct pst_latring {
	uint32_t us[PST_LAT_SAMPLES];
	size_t n;		/* samples held (<= PST_LAT_SAMPLES) */
	size_t pos;
};

void pst_latring_add(struct pst_latring *r, uint32_t us);
uint32_t pst_latring_pct(const struct pst_latring *r, double pct);	/* 0 if empty */

uint64_t pst_now_ns(void);	/* CLOCK_MONOTONIC */

/* ---- the daemon (daemon.c) --------------------------------------------- */
struct pst_run_opts {
	const char *policy_path;
	bool debug;
	bool refill_busy;	/* --prewarm-refill=busy */
};

int pst_daemon_run(const struct pst_run_opts *opts);

/* ---- one broker per table (lock.c) --------------------------------------
 * An flock on DIR/TABLE.lock, holding the owner's pid.
 * 0, or a negative errno (-EBUSY: another broker holds it) with why saying
 * what; pst_instance_unlock() removes the file and lets go. */
#define PST_LOCK_DIR "/run/postern"
struct pst_instance_lock {
	int fd;
	char path[320];
};
int pst_instance_lock(const char *dir, const char *table, struct pst_instance_lock *lk, char *why,
		      size_t whylen);
void pst_instance_unlock(struct pst_instance_lock *lk);

/* ---- control socket client (control_client.c) -------------------------- */
/* Connects to the control socket, sends REQUEST (e.g. "status\n"), reads the
 * whole answer into a malloc'd NUL-terminated buffer. 0 or negative errno. */
int pst_control_query(const char *path, const char *request, char **answer, char *why,
		      size_t whylen);

/* ---- CLI helpers shared by status and top (cli_status.c) ---------------- */
int pst_status_render(FILE *out, const char *json, bool top);
int pst_control_path(const char *sock, const char *policy, char *out, size_t len);

#endif
