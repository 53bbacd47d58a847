/* SPDX-License-Identifier: MIT */
/* broker/ private header: the daemon's pieces (not for other modules). */
#ifndef POSTERN_BROKER_INTERNAL_H
#define POSTERN_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/types.h>

/* ---- logfmt lines (log.c) ------------------------------------------------
 * One line per event on stderr: `ts=... level=info event=accept key=value`.
 * Values with spaces, quotes, '=' or control characters are quoted and
 * escaped; a line is written with a single write(2) and capped in length. */
#define PST_LOG_LINE_MAX 2048

struct pst_logline {
	char buf[PST_LOG_LINE_MAX];
	size_t len;
	bool truncated;
	bool capture;         /* an error line pst_log_capture() asked for */
	const char *last_key; /* json: a repeated key makes an array */
	size_t val_off;       /* json: where last_key's value starts */
	bool in_array;
};

/* The line format (postern run --log-format): text (the default: logfmt,
 * control bytes as \xNN), logfmt (control bytes as \u00NN, as logfmt
 * and JSON parsers unquote them; invalid UTF-8 as U+FFFD), json (one object per line: "ts",
 * "level", "event", then the fields; a key repeated in a row becomes an
 * array; invalid UTF-8 becomes U+FFFD). */
enum pst_log_format { PST_LOG_TEXT, PST_LOG_LOGFMT, PST_LOG_JSON };
extern enum pst_log_format pst_log_format;
/* Under journald (JOURNAL_STREAM names stderr): each line starts with its
 * sd-daemon priority "<3>" err, "<4>" warn, "<6>" info, "<7>" debug, and
 * text and logfmt lines carry no ts= (journald stamps each line). */
extern bool pst_log_journal;
int pst_log_format_parse(const char *name, enum pst_log_format *out); /* 0 or -EINVAL */
/* pst_log_journal from JOURNAL_STREAM ("DEV:INODE") and fstat(pst_log_fd). */
void pst_log_detect_journal(void);

extern int pst_log_fd;     /* default 2 */
extern bool pst_log_debug; /* also log level=debug events (accept) */

void pst_ll_begin(struct pst_logline *l, const char *level, const char *event);
void pst_ll_str(struct pst_logline *l, const char *key, const char *val);
void pst_ll_strn(struct pst_logline *l, const char *key, const char *val, size_t n);
void pst_ll_int(struct pst_logline *l, const char *key, long long v);
void pst_ll_uint(struct pst_logline *l, const char *key, unsigned long long v);
void pst_ll_ms(struct pst_logline *l, const char *key, uint64_t ns); /* "12.345" */
void pst_ll_end(struct pst_logline *l); /* writes the line to pst_log_fd */

/* One-call form for simple events: pst_log("info", "stop", "reason", "SIGTERM", NULL) */
void pst_log(const char *level, const char *event, ...);

/* From pst_log_nonblock_start() on, logging never blocks: lines the sink
 * does not take at once wait in a buffer of cap bytes (what does not fit is
 * dropped, counted in pst_log_dropped() and reported in a log_dropped
 * line); pending(true, fd, ctx) asks the caller to call pst_log_flush()
 * whenever fd is writable, pending(false, ...) that it can stop. Nothing is
 * changed for a regular file (0 returned, writes stay direct).
 * pst_log_nonblock_stop() gives what waits up to timeout_ms and goes back
 * to direct writes. */
int pst_log_nonblock_start(size_t cap, void (*pending)(bool on, int fd, void *ctx), void *ctx);
void pst_log_flush(void);
void pst_log_nonblock_stop(unsigned timeout_ms);
uint64_t pst_log_dropped(void);

/* While fn is set, each level=error line the calling thread logs is also
 * given to fn as one human message: its sandbox, what, step and error
 * fields joined with ": " ("sandbox web: step mount: /srv: No such file or
 * directory"; a policy error's own "FILE: PATH: message" as it is). For a
 * control-socket reload, which answers with every error (generation.c).
 * pst_log_capture(NULL, NULL) ends it. Not nested. */
void pst_log_capture(void (*fn)(void *ctx, const char *msg), void *ctx);

/* ---- token bucket (util.c) --------------------------------------------- */
struct pst_bucket {
	double rate; /* tokens per second; <= 0: unlimited */
	double burst;
	double tokens;
	uint64_t last_ns;
};

void pst_bucket_init(struct pst_bucket *b, double rate, uint64_t now_ns);
bool pst_bucket_take(struct pst_bucket *b, uint64_t now_ns);

/* ---- log throttle (util.c) -----------------------------------------------
 * Lines a client or a handler can cause once per request (refusals, spawn
 * failures, timeouts, dropped channel messages) are logged at most once per
 * interval per kind; the next line says how many were suppressed. */
struct pst_throttle {
	uint64_t last_ns;
	uint64_t suppressed;
};
#define PST_THROTTLE_NS 1000000000ull

/* true: log now, with *suppressed (those skipped since the last line);
 * false: skip it (counted). */
bool pst_throttle_pass(struct pst_throttle *t, uint64_t now_ns, uint64_t *suppressed);

/* bytes for a person: "1.5G", "12.0M", "640K" (status, top) */
void pst_fmt_bytes(char *b, size_t n, double v);

/* A message snprintf() cut at the end of buf (len bytes) ends in "...". */
void pst_mark_truncated(char *buf, size_t len);

/* A line of that kind (log.c): false (and nothing begun) while t throttles
 * it; else it is begun, and pst_ll_end_throttled() ends it saying how many
 * were suppressed before it. */
bool pst_ll_begin_throttled(struct pst_logline *l, struct pst_throttle *t, const char *level,
                            const char *event, uint64_t *suppressed);
void pst_ll_end_throttled(struct pst_logline *l, uint64_t suppressed);

/* "level=error event=EVENT [sandbox=S] what=WHAT error=strerror(err)";
 * the second form throttled by t. */
void pst_log_errno(const char *event, const char *sandbox, const char *what, int err);
void pst_log_errno_throttled(struct pst_throttle *t, const char *event, const char *sandbox,
                             const char *what, int err);

/* ---- concurrent handlers per source address (util.c) -------------------
 * Open addressing, linear probing, backward-shift deletion. Keys are 17
 * bytes: a family tag and 16 address bytes (v4 in the first 4). */
#define PST_SRCKEY_LEN 17

struct pst_srcent {
	uint8_t key[PST_SRCKEY_LEN];
	uint32_t count; /* 0: empty slot */
};

struct pst_srctab {
	struct pst_srcent *slots;
	size_t cap; /* power of two */
	size_t used;
};

void pst_srctab_free(struct pst_srctab *t);
uint32_t pst_srctab_get(const struct pst_srctab *t, const uint8_t *key);
int pst_srctab_inc(struct pst_srctab *t, const uint8_t *key); /* 0 or -ENOMEM */
void pst_srctab_dec(struct pst_srctab *t, const uint8_t *key);

/* ---- latency samples for p50/p99 (util.c) ------------------------------ */
#define PST_LAT_SAMPLES 1024

struct pst_latring {
	uint32_t us[PST_LAT_SAMPLES];
	size_t n; /* samples held (<= PST_LAT_SAMPLES) */
	size_t pos;
};

void pst_latring_add(struct pst_latring *r, uint32_t us);
uint32_t pst_latring_pct(const struct pst_latring *r, double pct); /* 0 if empty */

uint64_t pst_now_ns(void); /* CLOCK_MONOTONIC */

/* ---- the Prometheus text format (prom.c) ---------------------------------
 * pst_prom_escape: s as a label value (label: \\, \" and \n escaped) or in
 * a HELP line (\\ and \n). pst_prom_head: a family's HELP and TYPE lines. */
void pst_prom_escape(FILE *f, const char *s, bool label);
void pst_prom_head(FILE *f, const char *name, const char *type, const char *help);

/* A histogram of durations, fixed buckets of 100 us .. 10 s (their upper
 * bounds, inclusive, in pst_hist_bounds_ns), no allocation. pst_prom_hist
 * writes NAME_bucket{LABEL="VALUE",le=...} (cumulative, then +Inf),
 * NAME_sum (seconds) and NAME_count. */
#define PST_HIST_BUCKETS 16
extern const uint64_t pst_hist_bounds_ns[PST_HIST_BUCKETS];
struct pst_hist {
	uint64_t n[PST_HIST_BUCKETS + 1]; /* per bucket (not cumulative); the last: above */
	uint64_t count, sum_ns;
};
void pst_hist_add(struct pst_hist *h, uint64_t ns);
void pst_prom_hist(FILE *f, const char *name, const char *label, const char *value,
                   const struct pst_hist *h);

/* The process figures the Prometheus client libraries export
 * (process_cpu_seconds_total, ...). pst_proc_stat_parse: from the text of
 * /proc/self/stat and of /proc/stat (its btime line, after a newline), with
 * the clock ticks and page size; pst_proc_self reads them, counts
 * /proc/self/fd and takes RLIMIT_NOFILE. 0, or -1 if unread or malformed. */
struct pst_proc {
	double cpu_seconds, start_time_seconds;
	unsigned long long virtual_bytes, resident_bytes, open_fds, max_fds;
};
int pst_proc_stat_parse(const char *stat, const char *procstat, long ticks, long page,
                        struct pst_proc *p);
int pst_proc_self(struct pst_proc *p);

/* ---- whether root may trust a policy file (policy_trust.c) --------------
 * 0 when path, every directory on the way to it and every symlink's
 * directory are root's and writable by nobody else (a sticky directory such
 * as /tmp excepted); else -EPERM (or another negative errno) with why
 * naming the path and what is wrong with it. */
int pst_policy_trust(const char *path, char *why, size_t whylen);
/* The same for a directory (a unix listener's): root's, and nobody else
 * can rename or remove what root puts in it. */
int pst_dir_trust(const char *path, char *why, size_t whylen);

/* ---- parsers of what less trusted peers send (wire.c) -------------------
 * Pure functions over buffers, unit-tested and fuzzed on their own. */

/* A pipe channel's messages: one line each, at most PST_LINE_MAX bytes
 * (an atomic pipe write); a longer one is dropped up to its newline. Read
 * into pst_lines_tail() (room bytes), then pst_lines_added(); take
 * messages with pst_lines_next() until it says PST_LINES_MORE. A message
 * returned stays valid until the next call. At EOF pst_lines_partial()
 * says whether an unterminated message is left (dropped). */
#define PST_LINE_MAX 4095
enum { PST_LINES_MORE = 0, PST_LINES_MSG, PST_LINES_TOOLONG };
struct pst_lines {
	size_t off, len; /* bytes [off, len) of buf not yet taken */
	bool discarding; /* inside an over-long message */
	char buf[PST_LINE_MAX + 1];
};
int pst_lines_next(struct pst_lines *b, const char **msg, size_t *n);
char *pst_lines_tail(struct pst_lines *b, size_t *room);
void pst_lines_added(struct pst_lines *b, size_t n);
bool pst_lines_partial(const struct pst_lines *b);
void pst_lines_reset(struct pst_lines *b);

/* An fdpass message (struct msghdr as recvmsg() left it): the fds its
 * SCM_RIGHTS control messages carry, bounded by the control buffer
 * whatever their lengths say (up to max, into fds; the caller owns and
 * closes them), and whether it is a valid message: exactly one fd, not
 * truncated (0, -EBADMSG, -EMSGSIZE). */
struct msghdr;
int pst_fdpass_fds(const struct msghdr *mh, int *fds, int max);
int pst_fdpass_check(const struct msghdr *mh, int nfds);

/* A control-socket request: one line, "VERB[ ARG]", VERB in [a-z]. */
enum { PST_CTL_MORE = 0, PST_CTL_OK, PST_CTL_BAD, PST_CTL_TOOLONG };
struct pst_control_req {
	char verb[16];
	char arg[128];
};
int pst_control_parse(const char *buf, size_t len, size_t cap, struct pst_control_req *req);
/* The PID of "kill PID": decimal digits, 1..2^31-1, no sign, space or
 * leading zero. 0 or -EINVAL. */
int pst_parse_pid(const char *s, pid_t *out);

/* A metrics client's HTTP request (buf holds len of at most cap bytes):
 * 0 while its headers are incomplete, else the status to answer: 200
 * (a GET; its path in path), 400, 405 (not GET), 431 (too long). */
int pst_http_parse(const char *buf, size_t len, size_t cap, char *path, size_t pathlen);

/* ---- a handler's per-request environment (wire.c) -----------------------
 * What it says of its client, as the UCSPI tools and systemd say it:
 *  - an IPv4 client (peer and local both inet; an IPv4-mapped IPv6 address,
 *    a v4 client of a dual-stack socket, counts as IPv4, dotted quad):
 *    REMOTE_ADDR, REMOTE_PORT (systemd), TCPREMOTEIP, TCPREMOTEPORT,
 *    TCPLOCALIP, TCPLOCALPORT, PROTO=TCP (ucspi-tcp);
 *  - an IPv6 client: the same, then TCP6REMOTEIP, TCP6REMOTEPORT,
 *    TCP6LOCALIP, TCP6LOCALPORT and PROTO=TCP6 (ucspi-tcp6 sets both sets);
 *  - else, with cred (a unix client's SO_PEERCRED): UNIXREMOTEUID,
 *    UNIXREMOTEGID, UNIXREMOTEPID, UNIXREMOTEEUID, UNIXREMOTEEGID
 *    (ucspi-unix's spelling) and PROTO=UNIX;
 *  - nothing for another family or without one (NULL).
 * Then the entries of extra (NULL-terminated, at most PST_ENV_EXTRA_MAX
 * taken; may be NULL). Built in e's own storage, no allocation: e->envp is
 * NULL-terminated and points into e and extra. Returns the number of
 * entries (at most PST_ENV_OWN_MAX + PST_ENV_EXTRA_MAX). */
#define PST_ENV_EXTRA_MAX 16
#define PST_ENV_OWN_MAX 11 /* IPv6: 10 values and PROTO */
#define PST_ENV_VAL_MAX (INET6_ADDRSTRLEN + 24)
struct pst_req_env {
	char buf[PST_ENV_OWN_MAX - 1][PST_ENV_VAL_MAX];
	const char *envp[PST_ENV_OWN_MAX + PST_ENV_EXTRA_MAX + 1];
};
/* A unix client's credentials (SO_PEERCRED, at accept). */
struct pst_peer_cred {
	uint32_t uid, gid;
	int32_t pid;
};
struct sockaddr_storage;
size_t pst_env_build(struct pst_req_env *e, const struct sockaddr_storage *peer,
                     const struct sockaddr_storage *local, const struct pst_peer_cred *cred,
                     const char *const *extra);

/* An inet address as the broker logs a peer: "192.0.2.1:5000",
 * "[2001:db8::1]:5000" (an IPv4-mapped one as IPv4); "" for another family. */
void pst_peer_format(const struct sockaddr_storage *sa, char *buf, size_t len);

/* The per-source key of an inet address (family tag, then the address; an
 * IPv4-mapped one is the IPv4 address's key: one client, whichever socket
 * it reached); false (key zeroed but for the tag) for another family. */
bool pst_srckey_inet(const struct sockaddr_storage *sa, uint8_t key[PST_SRCKEY_LEN]);

/* ---- the daemon (daemon.c) --------------------------------------------- */
struct pst_run_opts {
	const char *policy_path;
	bool debug;
	bool refill_busy;     /* --prewarm-refill=busy */
	bool insecure_policy; /* --insecure-policy: no pst_policy_trust() */
	bool no_preflight;    /* --no-preflight: no pst_preflight() at start, reload */
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
/* The same, waiting up to timeout_ms for each part of the answer (a reload
 * answers once it is done). */
int pst_control_query_timeout(const char *path, const char *request, int timeout_ms, char **answer,
                              char *why, size_t whylen);

/* Where the control socket is, for every client verb (status, top, reload,
 * stop): sock (-s) as it is; else policy's broker.control (-c POLICY; the
 * policy parsed and validated, nothing else: no preflight, nothing made);
 * else PST_DEFAULT_CONTROL. 0, or -1 with why saying what (each policy
 * error on a line of its own). */
int pst_control_path_resolve(const char *sock, const char *policy, char *out, size_t len, char *why,
                             size_t whylen);
/* A hint that is true for a query's error (its negative errno), or NULL:
 * EACCES/EPERM "the control socket is root-only; run as root",
 * ENOENT/ECONNREFUSED "no broker at PATH; pass -s or -c (is postern
 * running?)" (in buf). */
const char *pst_control_hint(int err, const char *path, char *buf, size_t len);
/* "postern VERB: WHY: HINT" on stderr. */
void pst_control_complain(const char *verb, const char *path, int err, const char *why);

/* ---- CLI helpers shared by status and top (cli_status.c) ---------------- */
int pst_status_render(FILE *out, const char *json, bool top);
int pst_control_path(const char *sock, const char *policy, char *out, size_t len);

#endif
