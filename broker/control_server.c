/* SPDX-License-Identifier: MIT */
/*
 * The control socket and the metrics endpoint (HTTP GET /metrics:
 * Prometheus text), served on the loop. A client of either sends one
 * request and gets one answer, then is closed; clients share
 * CONTROL_CLIENTS_MAX slots, and one that has not sent a complete request
 * within CONTROL_IDLE_MS is closed. The requests are parsed by wire.c. The
 * client side is control_client.c.
 *
 * The control socket is root's alone (made 0600 in control_open()). Its
 * verbs, one line each, each answered with one JSON line:
 *   status      the status JSON (stats.c)
 *   reload      daemon_reload(), as SIGHUP; answered from its end with what
 *               it changed and every error ({"applied":..., ...})
 *   stop        as SIGTERM: {"stopping":true,...} first, then the stop
 *   kill PID    PID must be a handler of this broker serving a request:
 *               killed as a timeout kills (its pidfd, its cgroup), never a
 *               pid looked up anywhere but the handler table
 * Errors: {"error":"..."}.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "broker/daemon_internal.h"

#define CONTROL_REQ_MAX 4096  /* an HTTP request's headers fit */
#define CONTROL_IDLE_MS 10000 /* a client must ask within this */

struct control_client {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe; /* control socket */
		uv_tcp_t tcp;   /* metrics */
	} s;
	uv_timer_t idle;
	struct daemon *d;
	struct control_client *next, **pprev; /* d->clients */
	int handles_open;
	bool http;
	size_t len;
	char req[CONTROL_REQ_MAX];
	bool answered;
	bool waiting_reload; /* asked for a reload: answered by control_reload_done() */
	bool then_stop;      /* "stop": the stop begins once the answer is written */
};

static void on_client_closed(uv_handle_t *h)
{
	struct control_client *c = h->data;
	if (--c->handles_open)
		return;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	c->d->control_clients--;
	free(c);
}

static void client_close(struct control_client *c)
{
	if (uv_is_closing(&c->s.handle))
		return;
	uv_close(&c->s.handle, on_client_closed);
	uv_close((uv_handle_t *)&c->idle, on_client_closed);
}

void control_clients_close(struct daemon *d)
{
	for (struct control_client *c = d->clients; c; c = c->next)
		client_close(c);
}

static void on_client_idle(uv_timer_t *t)
{
	client_close(t->data);
}

static void on_control_written(uv_write_t *w, int status)
{
	(void)status;
	struct control_client *c = w->data;
	struct daemon *d = c->d;
	bool stop = c->then_stop;
	free(((char **)(w + 1))[0]);
	free(w);
	client_close(c);
	/* written, or the client went away: either way the stop goes ahead */
	if (stop)
		daemon_stop(d, "control");
}

/* No answer could be written: closed (a "stop" still stops). */
static void client_unanswered(struct control_client *c)
{
	struct daemon *d = c->d;
	bool stop = c->then_stop;
	client_close(c);
	if (stop)
		daemon_stop(d, "control");
}

/* Write len bytes of data (ours to free), then close. */
static void client_answer(struct control_client *c, char *data, size_t len)
{
	uv_write_t *w = malloc(sizeof(*w) + sizeof(char *));
	if (!data || !w) {
		free(data);
		free(w);
		client_unanswered(c);
		return;
	}
	((char **)(w + 1))[0] = data;
	w->data = c;
	uv_buf_t b = uv_buf_init(data, (unsigned)len);
	c->answered = true;
	uv_read_stop(&c->s.stream);
	if (uv_write(w, &c->s.stream, &b, 1, on_control_written) < 0) {
		free(data);
		free(w);
		client_unanswered(c);
	}
}

static void control_answer(struct control_client *c, const char *body)
{
	size_t n = strlen(body);
	char *copy = malloc(n + 1);
	if (copy) {
		memcpy(copy, body, n);
		copy[n] = '\n';
	}
	client_answer(c, copy, n + 1);
}

static void http_answer(struct control_client *c, const char *status, const char *body)
{
	char *out = NULL;
	int n = asprintf(&out,
	                 "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                 status, strlen(body), body);
	client_answer(c, n < 0 ? NULL : out, n < 0 ? 0 : (size_t)n);
}

static void control_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct control_client *c = h->data;
	(void)hint;
	*buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - 1 - c->len));
}

static void http_request(struct control_client *c)
{
	char path[64];
	int st = pst_http_parse(c->req, c->len, sizeof(c->req), path, sizeof(path));
	if (st == 0)
		return; /* more to come */
	if (st == 431)
		http_answer(c, "431 Request Header Fields Too Large", "request too long\n");
	else if (st == 400)
		http_answer(c, "400 Bad Request", "bad request\n");
	else if (st == 405)
		http_answer(c, "405 Method Not Allowed", "only GET\n");
	else if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0)
		http_answer(c, "404 Not Found", "try /metrics\n");
	else {
		char *m = stats_metrics_text(c->d);
		http_answer(c, m ? "200 OK" : "500 Internal Server Error",
		            m ? m : "out of memory\n");
		free(m);
	}
}

/* The pid of the process on the other end (for the log); -1 if unknown. */
static long client_pid(struct control_client *c)
{
	uv_os_fd_t fd;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (uv_fileno(&c->s.handle, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -1;
	return (long)cr.pid;
}

static void control_errorf(struct control_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void control_errorf(struct control_client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *o = cJSON_CreateObject();
	char *js = o && cJSON_AddStringToObject(o, "error", msg) ? cJSON_PrintUnformatted(o) : NULL;
	control_answer(c, js ? js : "{\"error\":\"out of memory\"}");
	cJSON_free(js);
	cJSON_Delete(o);
}

void control_reload_done(struct daemon *d, const char *json)
{
	for (struct control_client *c = d->clients; c; c = c->next) {
		if (!c->waiting_reload || uv_is_closing(&c->s.handle))
			continue; /* gone meanwhile: nobody to tell */
		c->waiting_reload = false;
		control_answer(c, json ? json : "{\"error\":\"out of memory\"}");
	}
}

static void control_reload(struct control_client *c)
{
	struct daemon *d = c->d;
	if (d->stopping) {
		control_errorf(c, "the broker is stopping: no reload");
		return;
	}
	c->waiting_reload = true;
	uv_timer_stop(&c->idle); /* it asked: the reload takes what it takes */
	daemon_reload(d);
}

static void control_stop(struct control_client *c)
{
	struct daemon *d = c->d;
	char js[160];
	snprintf(js, sizeof(js), "{\"stopping\":true,\"already\":%s,\"grace_ms\":%llu}",
	         d->stopping ? "true" : "false",
	         (unsigned long long)d->cur->policy->broker.grace_ms);
	c->then_stop = true;
	control_answer(c, js);
}

/* "kill PID": only a handler of the table serving a request; through its
 * pidfd (no pid reuse: it is not reaped while in the table) and its
 * cgroup, as a timeout kills. */
static void control_kill(struct control_client *c, const char *arg)
{
	struct daemon *d = c->d;
	pid_t pid;
	if (pst_parse_pid(arg, &pid) < 0) {
		control_errorf(c,
		               "kill: \"%s\" is not a pid; usage: kill PID (a handler's pid, "
		               "as postern status lists it)",
		               arg);
		return;
	}
	struct handler *h = handler_find(d, pid);
	if (!h) {
		control_errorf(
		    c, "kill: pid %d is not a handler of this broker; nothing was signalled",
		    (int)pid);
		return;
	}
	const char *sb = h->sbx->conf->name;
	if (h->state == H_EXITING) {
		control_errorf(c, "kill: pid %d (sandbox %s) has exited already", (int)pid, sb);
		return;
	}
	if (h->state != H_SERVING) {
		control_errorf(c,
		               "kill: pid %d is a pre-warmed handler of sandbox %s, not serving a "
		               "request; nothing was signalled",
		               (int)pid, sb);
		return;
	}
	int r = handler_kill(h, END_KILLED);
	struct pst_logline l;
	pst_ll_begin(&l, r < 0 ? "error" : "warn", "kill");
	pst_ll_str(&l, "sandbox", sb);
	pst_ll_int(&l, "pid", pid);
	if (h->peer[0])
		pst_ll_str(&l, "peer", h->peer);
	pst_ll_str(&l, "by", "control");
	pst_ll_int(&l, "client_pid", client_pid(c));
	if (r < 0) {
		pst_ll_str(&l, "step", "pidfd_send_signal");
		pst_ll_str(&l, "error", strerror(-r));
	}
	pst_ll_end(&l);
	if (r < 0) {
		control_errorf(c, "kill: pid %d (sandbox %s): %s", (int)pid, sb, strerror(-r));
		return;
	}
	char js[96];
	snprintf(js, sizeof(js), "{\"killed\":%d,\"sandbox\":\"%s\"}", (int)pid, sb);
	control_answer(c, js);
}

static void control_request(struct control_client *c)
{
	struct pst_control_req rq;
	int pr = pst_control_parse(c->req, c->len, sizeof(c->req), &rq);
	if (pr == PST_CTL_MORE)
		return;
	if (pr == PST_CTL_TOOLONG) {
		control_answer(c, "{\"error\":\"request too long\"}");
		return;
	}
	bool ok = pr == PST_CTL_OK, arg = ok && rq.arg[0];
	if (ok && !strcmp(rq.verb, "status") && !arg) {
		char *js = stats_status_json(c->d);
		control_answer(c, js ? js : "{\"error\":\"out of memory\"}");
		free(js);
	} else if (ok && !strcmp(rq.verb, "reload") && !arg) {
		control_reload(c);
	} else if (ok && !strcmp(rq.verb, "stop") && !arg) {
		control_stop(c);
	} else if (ok && !strcmp(rq.verb, "kill")) {
		control_kill(c, rq.arg);
	} else {
		control_answer(c, "{\"error\":\"unknown request; try \\\"status\\\", "
		                  "\\\"reload\\\", \\\"stop\\\" or \\\"kill PID\\\"\"}");
	}
}

static void control_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct control_client *c = st->data;
	(void)buf;
	if (c->answered)
		return;
	if (n == UV_EOF && c->waiting_reload) {
		/* half-closed after its request: it still gets the outcome */
		uv_read_stop(st);
		return;
	}
	if (n < 0) {
		client_close(c); /* gone (also while its reload runs: nobody to tell) */
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = 0;
	if (c->http)
		http_request(c);
	else
		control_request(c);
}

static void client_accept(uv_stream_t *server, bool http)
{
	struct daemon *d = server->data;
	struct control_client *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->d = d;
	c->http = http;
	if (http)
		uv_tcp_init(d->loop, &c->s.tcp);
	else
		uv_pipe_init(d->loop, &c->s.pipe, 0);
	uv_timer_init(d->loop, &c->idle);
	c->s.handle.data = c->idle.data = c;
	c->handles_open = 2;
	c->next = d->clients;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &d->clients;
	d->clients = c;
	d->control_clients++;
	if (uv_accept(server, &c->s.stream) < 0 || d->control_clients > CONTROL_CLIENTS_MAX) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->idle, on_client_idle, CONTROL_IDLE_MS, 0);
	uv_read_start(&c->s.stream, control_alloc, control_read);
}

static void on_control_conn(uv_stream_t *server, int status)
{
	if (status == 0)
		client_accept(server, false);
}

static void on_metrics_conn(uv_stream_t *server, int status)
{
	if (status == 0)
		client_accept(server, true);
}

int metrics_open(struct daemon *d, const struct pst_sockaddr *a)
{
	uv_tcp_init(d->loop, &d->metrics);
	d->metrics.data = d;
	d->metrics_open = true;
	int r = uv_tcp_bind(&d->metrics, (const struct sockaddr *)&a->ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&d->metrics, 16, on_metrics_conn);
	if (r < 0) {
		pst_log("error", "metrics", "what", a->text, "error", uv_strerror(r), NULL);
		return r;
	}
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Its directory, made when missing. */
static int control_dir(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		pst_log_errno("control", NULL, dir, -r);
	return r;
}

int control_open(struct daemon *d, const char *path)
{
	int r = control_dir(path);
	if (r < 0)
		return r;
	/* refuse to steal the socket of a running broker */
	char *answer = NULL, why[128];
	if (pst_control_query(path, "status\n", &answer, why, sizeof(why)) == 0) {
		free(answer);
		pst_log("error", "control", "what", path, "error",
		        "another broker answers on this control socket", NULL);
		return -EADDRINUSE;
	}
	unlink(path);
	uv_pipe_init(d->loop, &d->control, 0);
	d->control.data = d;
	d->control_open = true;
	/* what to remove at the end; a path too long for a socket binds nothing */
	if (strlen(path) < sizeof(d->control_path))
		snprintf(d->control_path, sizeof(d->control_path), "%s", path);
	mode_t old = umask(0177); /* the socket is created 0600 */
	r = uv_pipe_bind(&d->control, path);
	umask(old);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&d->control, 16, on_control_conn);
	if (r < 0) {
		pst_log("error", "control", "what", path, "error", uv_strerror(r), NULL);
		return r;
	}
	return 0;
}

/* After a failed start: the servers closed, the socket file removed. */
void control_server_close(struct daemon *d)
{
	if (d->control_open) {
		if (d->control_path[0])
			unlink(d->control_path);
		uv_close((uv_handle_t *)&d->control, NULL);
	}
	if (d->metrics_open)
		uv_close((uv_handle_t *)&d->metrics, NULL);
}
