/* SPDX-License-Identifier: MIT */
/*
 * Channels (pipe and fdpass triggers) and their per-sender endpoints.
 *
 * Every handler of a sandbox that sends on a channel gets an end of its own
 * (a pipe for a pipe channel, a SOCK_SEQPACKET pair for an fdpass one),
 * made when it is spawned or set up: what one sender writes is a message of
 * its own, never the tail of another sender's unterminated line, and no
 * sender can shut the channel down for the others. The broker's ends are
 * the channel's endpoints; one goes when its sender and everything that
 * inherited its end are gone (EOF), dropping an unterminated line. While
 * the consumer is at its handlers cap no endpoint is read: the senders'
 * pipes and socket buffers fill and block them.
 *
 * A reload finds each channel of the new policy among the open ones (same
 * name and kind: kept, with its endpoints) or makes a new one beside them;
 * the switch (channels_commit()) closes those the new policy does not have.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "broker/daemon_internal.h"

#define ENDPOINT_SPARE_MAX 256 /* closed channel endpoints kept for reuse */

static void endpoint_read(struct endpoint *e);
static void on_endpoint_readable(uv_poll_t *p, int status, int events);

static void close_pair(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* ---- endpoints ------------------------------------------------------------ */

static void endpoint_poll(struct endpoint *e, bool on)
{
	if (on && !e->polling && uv_poll_start(&e->poll, UV_READABLE, on_endpoint_readable) == 0)
		e->polling = true;
	else if (!on && e->polling) {
		uv_poll_stop(&e->poll);
		e->polling = false;
	}
}

static void endpoint_spare(struct daemon *d, struct endpoint *e)
{
	e->next = d->spare_ep;
	d->spare_ep = e;
	d->n_spare_ep++;
}

static void on_endpoint_closed(uv_handle_t *h)
{
	struct endpoint *e = h->data;
	struct daemon *d = e->d;
	close(e->fd);
	if (d->n_spare_ep >= ENDPOINT_SPARE_MAX) {
		free(e);
		return;
	}
	endpoint_spare(d, e);
}

static void endpoint_close(struct endpoint *e)
{
	if (e->c) {
		*e->pprev = e->next;
		if (e->next)
			e->next->pprev = e->pprev;
		e->c->n_endpoints--;
		e->c = NULL;
	}
	endpoint_poll(e, false);
	uv_close((uv_handle_t *)&e->poll, on_endpoint_closed);
}

/* A new endpoint of c reading fd (nonblocking; closed with it). */
static int endpoint_open(struct channel *c, int fd)
{
	struct daemon *d = c->d;
	struct endpoint *e = d->spare_ep;
	if (e) {
		d->spare_ep = e->next;
		d->n_spare_ep--;
	} else if (!(e = malloc(sizeof(*e)))) {
		return -ENOMEM;
	}
	memset(e, 0, offsetof(struct endpoint, lines));
	pst_lines_reset(&e->lines);
	e->d = d;
	e->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int r = uv_poll_init(d->loop, &e->poll, fd);
	if (r < 0) {
		endpoint_spare(d, e);
		return r;
	}
	e->poll.data = e;
	e->c = c;
	e->next = c->endpoints;
	if (e->next)
		e->next->pprev = &e->next;
	e->pprev = &c->endpoints;
	c->endpoints = e;
	c->n_endpoints++;
	if (c->polling)
		endpoint_poll(e, true);
	return 0;
}

/* ---- reading a channel -------------------------------------------------------- */

void channel_start(struct channel *c)
{
	if (c->polling || c->d->stopping)
		return;
	c->polling = true;
	for (struct endpoint *e = c->endpoints, *next; e; e = next) {
		next = e->next;
		endpoint_poll(e, true);
		/* lines read before the consumer hit its cap raise no new event */
		if (c->kind == PST_TRIGGER_PIPE && c->consumer && e->lines.len > e->lines.off)
			endpoint_read(e);
	}
}

void channel_stop(struct channel *c)
{
	c->polling = false;
	for (struct endpoint *e = c->endpoints; e; e = e->next)
		endpoint_poll(e, false);
}

void channels_stop_all(struct daemon *d)
{
	for (struct channel *c = d->channels; c; c = c->next)
		channel_stop(c);
}

static void channel_drop(struct channel *c, const char *reason)
{
	c->dropped++;
	struct pst_logline l;
	uint64_t sup;
	if (!pst_ll_begin_throttled(&l, &c->log_drop, "warn", "channel_drop", &sup))
		return;
	pst_ll_str(&l, "channel", c->name);
	pst_ll_str(&l, "reason", reason);
	pst_ll_end_throttled(&l, sup);
}

/* Whether the consumer can take another request now; if not, the channel
 * stops being read. */
static bool channel_room(struct channel *c)
{
	if (c->consumer && admission_room(c->d, c->consumer))
		return true;
	channel_stop(c);
	return false;
}

/* A pipe message: admitted, it goes on a pipe of its own as the handler's
 * stdin. */
static void pipe_message(struct channel *c, const char *msg, size_t n)
{
	struct sbx *s = c->consumer;
	struct pst_request req;
	request_init(&req, PST_TRIGGER_PIPE);
	snprintf(req.label, sizeof(req.label), "%s", c->name);
	if (admit(c->d, s, &req) != ADMIT_YES)
		return;
	c->messages++;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		pst_log_errno_throttled(&s->stats.log.channel, "channel", s->conf->name, "pipe",
		                        errno);
		return;
	}
	/* the message and its newline fit the pipe buffer: never blocks */
	struct iovec iov[2] = {{(void *)msg, n}, {"\n", 1}};
	ssize_t w = writev(pfd[1], iov, 2);
	close(pfd[1]);
	if (w != (ssize_t)n + 1) {
		pst_log_errno_throttled(&s->stats.log.channel, "channel", s->conf->name,
		                        "write message", w < 0 ? errno : EIO);
		close(pfd[0]);
		return;
	}
	req.stdin_fd = pfd[0];
	handler_spawn(c->d, s, &req);
}

/* One sender's pipe: each line is a message (wire.c frames them). */
static void endpoint_read_pipe(struct endpoint *e)
{
	struct channel *c = e->c;
	for (int budget = 0; budget < ACCEPT_BATCH; budget++) {
		if (!channel_room(c))
			return;
		const char *msg;
		size_t n, room;
		int ev = pst_lines_next(&e->lines, &msg, &n);
		if (ev == PST_LINES_MSG) {
			pipe_message(c, msg, n);
			continue;
		}
		if (ev == PST_LINES_TOOLONG)
			channel_drop(c, "message longer than PIPE_BUF");
		char *tail = pst_lines_tail(&e->lines, &room);
		ssize_t r = read(e->fd, tail, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return; /* EAGAIN */
		if (r == 0) {
			/* the sender and all its copies are gone */
			if (pst_lines_partial(&e->lines))
				channel_drop(
				    c, "unterminated message when its sender closed the channel");
			endpoint_close(e);
			return;
		}
		pst_lines_added(&e->lines, (size_t)r);
	}
}

/* A passed fd: admitted, it is the handler's socket; its peer, when it is
 * an inet one, is the request's client. */
static void fdpass_message(struct channel *c, int fd)
{
	struct sbx *s = c->consumer;
	struct pst_request req;
	request_init(&req, PST_TRIGGER_FDPASS);
	snprintf(req.label, sizeof(req.label), "%s", c->name);
	req.sock_fd = fd;
	if (admit(c->d, s, &req) != ADMIT_YES) {
		request_close(&req);
		return;
	}
	socklen_t slen = sizeof(req.peer_sa);
	if (getpeername(fd, (struct sockaddr *)&req.peer_sa, &slen) == 0 &&
	    (req.peer_sa.ss_family == AF_INET || req.peer_sa.ss_family == AF_INET6)) {
		pst_peer_format(&req.peer_sa, req.peer, sizeof(req.peer));
		slen = sizeof(req.local_sa);
		if (getsockname(fd, (struct sockaddr *)&req.local_sa, &slen) < 0)
			req.local_sa.ss_family = AF_UNSPEC;
	} else {
		req.peer_sa.ss_family = AF_UNSPEC;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	handler_spawn(c->d, s, &req);
}

/* Whether an empty read means the sender is gone. */
static bool endpoint_hung_up(struct endpoint *e)
{
	struct pollfd pf = {.fd = e->fd, .events = POLLIN | POLLRDHUP};
	return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLRDHUP));
}

/* One sender's socket: each message carries one fd. */
static void endpoint_read_fdpass(struct endpoint *e)
{
	struct channel *c = e->c;
	for (int budget = 0; budget < ACCEPT_BATCH; budget++) {
		if (!channel_room(c))
			return;
		char data[64];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * 8)];
		} cm;
		struct iovec iov = {data, sizeof(data)};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cm.buf,
		                    .msg_controllen = sizeof(cm.buf)};
		ssize_t r = recvmsg(e->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return;
		int fds[8];
		int nfds = pst_fdpass_fds(&mh, fds, 8);
		if (r == 0 && !nfds && endpoint_hung_up(e)) {
			/* an empty message, or the end: the sender is gone */
			endpoint_close(e);
			return;
		}
		c->messages++;
		if (pst_fdpass_check(&mh, nfds) < 0) {
			/* one fd per message: anything else is a sender's bug */
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			channel_drop(c, "expected exactly one fd per message");
			continue;
		}
		fdpass_message(c, fds[0]);
	}
}

static void endpoint_read(struct endpoint *e)
{
	if (!e->c)
		return;
	if (e->c->kind == PST_TRIGGER_PIPE)
		endpoint_read_pipe(e);
	else
		endpoint_read_fdpass(e);
}

static void on_endpoint_readable(uv_poll_t *p, int status, int events)
{
	struct endpoint *e = p->data;
	(void)events;
	if (status < 0) {
		endpoint_close(e);
		return;
	}
	endpoint_read(e);
}

/* ---- senders ----------------------------------------------------------------- */

/* A handler's own ends of its sandbox's send channels at their fd numbers,
 * then the startup sockets, into h->fds; the broker's ends become
 * endpoints. The handler's ends are the broker's to close once the handler
 * has them (sender_fds_close()). 0 or a negative errno (logged; nothing
 * left open). */
int sender_fds(struct sbx *s, struct handler *h)
{
	h->n_fds = h->n_send_w = 0;
	for (size_t i = 0; i < s->send.n; i++) {
		struct channel *c = s->send.ch[i];
		int p[2], r = 0;
		if (c->kind == PST_TRIGGER_PIPE)
			r = pipe2(p, O_CLOEXEC);
		else if ((r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p)) == 0) {
			shutdown(p[0], SHUT_WR);
			shutdown(p[1], SHUT_RD);
		}
		r = r < 0 ? -errno : endpoint_open(c, p[0]);
		if (r < 0) {
			pst_log_errno_throttled(&s->stats.log.channel, "channel", s->conf->name,
			                        c->name, -r);
			if (r != -EMFILE && r != -ENFILE)
				close_pair(p);
			sender_fds_close(h);
			return r;
		}
		h->send_w[h->n_send_w++] = p[1];
		h->fds[h->n_fds].fd = p[1];
		h->fds[h->n_fds++].target = s->send.target[i];
	}
	for (size_t j = 0; j < s->send.n_socket_fds; j++)
		h->fds[h->n_fds++] = s->send.socket_fds[j];
	return 0;
}

void sender_fds_close(struct handler *h)
{
	for (size_t i = 0; i < h->n_send_w; i++)
		close(h->send_w[i]);
	h->n_send_w = 0;
}

/* ---- channels of a generation ----------------------------------------------- */

static struct channel *channel_find(struct daemon *d, const char *name, enum pst_trigger kind)
{
	for (struct channel *c = d->channels; c; c = c->next)
		if (c->kind == kind && !strcmp(c->name, name))
			return c;
	return NULL;
}

/* Its endpoints go (their senders get EPIPE from then on), then it. */
static void channel_close(struct channel *c)
{
	while (c->endpoints)
		endpoint_close(c->endpoints);
	free(c);
}

void channels_close_all(struct daemon *d)
{
	while (d->channels) {
		struct channel *c = d->channels;
		d->channels = c->next;
		channel_close(c);
	}
}

static struct plan_channel *plan_channel_find(struct gen_plan *pl, const char *name)
{
	for (size_t i = 0; i < pl->n_ch; i++)
		if (!strcmp(pl->ch[i].c->name, name))
			return &pl->ch[i];
	return NULL;
}

/* The channels a sandbox sends on, at their fd numbers, with their env
 * entries (POSTERN_SEND_NAME=fd). */
static void wire_senders(struct gen_plan *pl, struct sbx *s)
{
	const struct pst_sandbox *sc = s->conf;
	/* fd 3.. are the startup sockets, or the client socket in listen_fds
	 * mode; send channels follow */
	int base = 3 + (int)sc->n_sockets +
	           (sc->socket == PST_SOCKET_LISTEN_FDS && sc->trigger != PST_TRIGGER_STARTUP);
	size_t k = 0;
	for (size_t j = 0; j < sc->n_send && j < MAX_SEND; j++) {
		struct plan_channel *pc = plan_channel_find(pl, sc->send[j]);
		if (!pc)
			continue;
		int target = base + (int)k;
		s->send.ch[k] = pc->c;
		s->send.target[k] = target;
		char *e = s->send.env[k];
		int n =
		    snprintf(e, sizeof(s->send.env[k]), "POSTERN_SEND_%s=%d", sc->send[j], target);
		for (int x = 13; x < n && e[x] != '='; x++)
			e[x] = e[x] == '-' ? '_'
			                   : (char)(e[x] >= 'a' && e[x] <= 'z' ? e[x] - 32 : e[x]);
		s->send.envp[k] = e;
		k++;
	}
	s->send.n = k;
	s->send.envp[k] = NULL;
}

/* The new generation's channels: each consumer's, found open (same name
 * and kind) or made beside the open ones (unlinked); then each sandbox's
 * send channels among them. Nothing open is changed. 0 or -ENOMEM (logged;
 * channels_abort() frees what was made). */
int channels_prepare(struct daemon *d, struct gen_plan *pl)
{
	struct gen *g = pl->g;
	pl->ch = calloc(g->n_sbx + 1, sizeof(*pl->ch));
	if (!pl->ch) {
		pst_log_errno("channel", NULL, "allocate", ENOMEM);
		return -ENOMEM;
	}
	for (size_t i = 0; i < g->n_sbx; i++) {
		struct sbx *s = &g->sbx[i];
		const struct pst_sandbox *sc = s->conf;
		if (sc->trigger != PST_TRIGGER_PIPE && sc->trigger != PST_TRIGGER_FDPASS)
			continue;
		struct plan_channel *pc = &pl->ch[pl->n_ch];
		pc->consumer = s;
		pc->c = channel_find(d, sc->channel, sc->trigger);
		if (!pc->c) {
			if (!(pc->c = calloc(1, sizeof(*pc->c)))) {
				pst_log_errno("channel", sc->name, sc->channel, ENOMEM);
				return -ENOMEM;
			}
			snprintf(pc->c->name, sizeof(pc->c->name), "%s", sc->channel);
			pc->c->kind = sc->trigger;
			pc->c->d = d;
			pc->fresh = true;
		}
		pl->n_ch++;
		s->send.consumes = pc->c;
	}
	for (size_t i = 0; i < g->n_sbx; i++)
		wire_senders(pl, &g->sbx[i]);
	return 0;
}

/* The switch: the open channels leave their consumers, the new
 * generation's get theirs (the made ones join the open ones), and those it
 * does not have are closed. Not read until admission_resume(). */
void channels_commit(struct daemon *d, struct gen_plan *pl)
{
	for (struct channel *c = d->channels; c; c = c->next) {
		channel_stop(c);
		c->consumer = NULL;
	}
	for (size_t i = 0; i < pl->n_ch; i++) {
		struct plan_channel *pc = &pl->ch[i];
		pc->c->consumer = pc->consumer;
		if (pc->fresh) {
			pc->c->next = d->channels;
			d->channels = pc->c;
			pc->fresh = false;
		}
	}
	struct channel **pp = &d->channels;
	while (*pp) {
		struct channel *c = *pp;
		if (!c->consumer) {
			*pp = c->next;
			channel_close(c);
		} else {
			pp = &c->next;
		}
	}
}

/* Throw away what channels_prepare() made; the open ones were not touched. */
void channels_abort(struct gen_plan *pl)
{
	for (size_t i = 0; i < pl->n_ch; i++)
		if (pl->ch[i].fresh)
			channel_close(pl->ch[i].c);
	pl->n_ch = 0;
}
