/* SPDX-License-Identifier: MIT */
/*
 * The parsers of bytes that come from less trusted peers: a sender
 * handler's pipe (line framing), a sender's fdpass message (its control
 * data), a control-socket client's request line and a metrics client's
 * HTTP request; and what a handler's environment says of its client (the
 * addresses the kernel gave). Pure functions over buffers: no fd is read,
 * written or closed here, so each one is unit-tested (tests/unit/test_wire.c,
 * tests/unit/test_env.c) and fuzzed (tests/fuzz/fuzz_wire.c) on its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/internal.h"

/* ---- pipe channel messages: one line each ------------------------------ */

int pst_lines_next(struct pst_lines *b, const char **msg, size_t *n)
{
	for (;;) {
		char *start = b->buf + b->off;
		char *nl = memchr(start, '\n', b->len - b->off);
		if (nl) {
			size_t l = (size_t)(nl - start);
			b->off += l + 1;
			if (b->discarding) {
				/* the end of an over-long message */
				b->discarding = false;
				continue;
			}
			*msg = start;
			*n = l;
			return PST_LINES_MSG;
		}
		/* no complete line: keep the rest at the start */
		memmove(b->buf, start, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len < PST_LINE_MAX)
			return PST_LINES_MORE;
		/* full without a newline: that message is over-long; it goes,
		 * up to its newline, reported once */
		b->len = 0;
		if (!b->discarding) {
			b->discarding = true;
			return PST_LINES_TOOLONG;
		}
	}
}

char *pst_lines_tail(struct pst_lines *b, size_t *room)
{
	if (b->off) {
		memmove(b->buf, b->buf + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	*room = PST_LINE_MAX - b->len;
	return b->buf + b->len;
}

void pst_lines_added(struct pst_lines *b, size_t n)
{
	b->len += n;
}

bool pst_lines_partial(const struct pst_lines *b)
{
	return b->len > b->off && !b->discarding;
}

void pst_lines_reset(struct pst_lines *b)
{
	b->off = b->len = 0;
	b->discarding = false;
}

/* ---- fdpass messages: exactly one fd ----------------------------------- */

int pst_fdpass_fds(const struct msghdr *mh, int *fds, int max)
{
	int n = 0;
	if (!mh->msg_control || mh->msg_controllen < sizeof(struct cmsghdr))
		return 0;
	for (struct cmsghdr *ch = CMSG_FIRSTHDR((struct msghdr *)mh); ch;
	     ch = CMSG_NXTHDR((struct msghdr *)mh, ch)) {
		if (ch->cmsg_len < CMSG_LEN(0) || ch->cmsg_level != SOL_SOCKET ||
		    ch->cmsg_type != SCM_RIGHTS)
			continue;
		/* what lies inside the control buffer, whatever cmsg_len says */
		const unsigned char *data = CMSG_DATA(ch);
		const unsigned char *end =
		    (const unsigned char *)mh->msg_control + mh->msg_controllen;
		size_t len = ch->cmsg_len - CMSG_LEN(0);
		if (data > end)
			break;
		if (len > (size_t)(end - data))
			len = (size_t)(end - data);
		for (size_t i = 0; i + sizeof(int) <= len && n < max; i += sizeof(int))
			memcpy(&fds[n++], data + i, sizeof(int));
	}
	return n;
}

int pst_fdpass_check(const struct msghdr *mh, int nfds)
{
	if (mh->msg_flags & MSG_CTRUNC)
		return -EMSGSIZE; /* more fds than fit: some were closed by the kernel */
	return nfds == 1 ? 0 : -EBADMSG;
}

/* ---- control socket requests: one line --------------------------------- */

int pst_control_parse(const char *buf, size_t len, size_t cap, struct pst_control_req *req)
{
	memset(req, 0, sizeof(*req));
	const char *nl = memchr(buf, '\n', len);
	if (!nl)
		return len >= cap - 1 ? PST_CTL_TOOLONG : PST_CTL_MORE;
	size_t n = (size_t)(nl - buf);
	if (n && buf[n - 1] == '\r')
		n--;
	/* a verb, then at most one argument */
	size_t v = 0;
	while (v < n && buf[v] != ' ')
		v++;
	if (!v || v >= sizeof(req->verb))
		return PST_CTL_BAD;
	memcpy(req->verb, buf, v);
	size_t a = v;
	while (a < n && buf[a] == ' ')
		a++;
	if (n - a >= sizeof(req->arg))
		return PST_CTL_BAD;
	memcpy(req->arg, buf + a, n - a);
	for (size_t i = 0; req->verb[i]; i++)
		if (req->verb[i] < 'a' || req->verb[i] > 'z')
			return PST_CTL_BAD;
	for (size_t i = 0; req->arg[i]; i++)
		if ((unsigned char)req->arg[i] < ' ' || (unsigned char)req->arg[i] == 0x7f)
			return PST_CTL_BAD;
	return PST_CTL_OK;
}

int pst_parse_pid(const char *s, pid_t *out)
{
	/* decimal digits only: no sign, no space, no leading zero */
	size_t n = strlen(s);
	if (!n || n > 10 || s[0] == '0')
		return -EINVAL;
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > INT32_MAX)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

/* ---- metrics requests: HTTP/1.x GET ------------------------------------ */

int pst_http_parse(const char *buf, size_t len, size_t cap, char *path, size_t pathlen)
{
	/* the headers end with an empty line; their content is not needed */
	const char *end = NULL;
	for (size_t i = 0; i + 1 < len && !end; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n')
			end = buf + i;
		else if (i + 3 < len && !memcmp(buf + i, "\r\n\r\n", 4))
			end = buf + i;
	}
	if (!end)
		return len >= cap - 1 ? 431 : 0;
	/* the request line: METHOD SP PATH SP VERSION */
	const char *eol = memchr(buf, '\n', (size_t)(end - buf) + 1);
	size_t ll = eol ? (size_t)(eol - buf) : (size_t)(end - buf);
	if (ll && buf[ll - 1] == '\r')
		ll--;
	const char *sp1 = memchr(buf, ' ', ll);
	if (!sp1 || sp1 == buf)
		return 400;
	const char *p = sp1 + 1;
	const char *sp2 = memchr(p, ' ', ll - (size_t)(p - buf));
	size_t pl = sp2 ? (size_t)(sp2 - p) : ll - (size_t)(p - buf);
	if (!pl || pl >= pathlen || (sp2 && strncmp(sp2 + 1, "HTTP/1.", 7)))
		return 400;
	for (size_t i = 0; i < pl; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return 400;
	memcpy(path, p, pl);
	path[pl] = 0;
	if ((size_t)(sp1 - buf) != 3 || memcmp(buf, "GET", 3))
		return 405;
	return 200;
}

/* ---- a handler's per-request environment ----------------------------- */

/* The address of an inet sockaddr as text and its port, an IPv4-mapped
 * IPv6 address (a v4 client of a dual-stack socket) as IPv4: the family it
 * is then, or 0 for another family. */
static int inet_parts(const struct sockaddr_storage *sa, char *addr, size_t alen, int *port)
{
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		*port = ntohs(in->sin_port);
		return inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)alen) ? AF_INET : 0;
	}
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		*port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, addr,
			                 (socklen_t)alen)
			           ? AF_INET
			           : 0;
		return inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)alen) ? AF_INET6 : 0;
	}
	return 0;
}

/* e->buf[*k] = NAME=VALUE, appended to the environment. */
static void env_put(struct pst_req_env *e, size_t *k, size_t *n, const char *name,
                    const char *fmt_s, long long v)
{
	if (fmt_s)
		snprintf(e->buf[*k], sizeof(e->buf[*k]), "%s=%s", name, fmt_s);
	else
		snprintf(e->buf[*k], sizeof(e->buf[*k]), "%s=%lld", name, v);
	e->envp[(*n)++] = e->buf[(*k)++];
}

/* An inet client's entries (see internal.h); false if it is none. */
static bool env_inet(struct pst_req_env *e, size_t *n, const struct sockaddr_storage *peer,
                     const struct sockaddr_storage *local)
{
	char pa[INET6_ADDRSTRLEN], la[INET6_ADDRSTRLEN];
	int pp, lp;
	size_t k = 0;
	int fam = peer && local ? inet_parts(peer, pa, sizeof(pa), &pp) : 0;
	if (!fam || !inet_parts(local, la, sizeof(la), &lp))
		return false;
	env_put(e, &k, n, "REMOTE_ADDR", pa, 0);
	env_put(e, &k, n, "REMOTE_PORT", NULL, pp);
	env_put(e, &k, n, "TCPREMOTEIP", pa, 0);
	env_put(e, &k, n, "TCPREMOTEPORT", NULL, pp);
	env_put(e, &k, n, "TCPLOCALIP", la, 0);
	env_put(e, &k, n, "TCPLOCALPORT", NULL, lp);
	if (fam == AF_INET6) {
		env_put(e, &k, n, "TCP6REMOTEIP", pa, 0);
		env_put(e, &k, n, "TCP6REMOTEPORT", NULL, pp);
		env_put(e, &k, n, "TCP6LOCALIP", la, 0);
		env_put(e, &k, n, "TCP6LOCALPORT", NULL, lp);
	}
	e->envp[(*n)++] = fam == AF_INET6 ? "PROTO=TCP6" : "PROTO=TCP";
	return true;
}

size_t pst_env_build(struct pst_req_env *e, const struct sockaddr_storage *peer,
                     const struct sockaddr_storage *local, const struct pst_peer_cred *cred,
                     const char *const *extra)
{
	size_t n = 0;
	if (!env_inet(e, &n, peer, local) && cred) {
		size_t k = 0;
		env_put(e, &k, &n, "UNIXREMOTEUID", NULL, cred->uid);
		env_put(e, &k, &n, "UNIXREMOTEGID", NULL, cred->gid);
		env_put(e, &k, &n, "UNIXREMOTEPID", NULL, cred->pid);
		env_put(e, &k, &n, "UNIXREMOTEEUID", NULL, cred->uid);
		env_put(e, &k, &n, "UNIXREMOTEEGID", NULL, cred->gid);
		e->envp[n++] = "PROTO=UNIX";
	}
	for (size_t i = 0; extra && extra[i] && i < PST_ENV_EXTRA_MAX; i++)
		e->envp[n++] = extra[i];
	e->envp[n] = NULL;
	return n;
}

void pst_peer_format(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int port;
	if (!len)
		return;
	buf[0] = 0;
	int fam = inet_parts(sa, a, sizeof(a), &port);
	if (fam)
		snprintf(buf, len, fam == AF_INET6 ? "[%s]:%d" : "%s:%d", a, port);
}

bool pst_srckey_inet(const struct sockaddr_storage *sa, uint8_t key[PST_SRCKEY_LEN])
{
	memset(key, 0, PST_SRCKEY_LEN);
	key[0] = (uint8_t)sa->ss_family;
	if (sa->ss_family == AF_INET) {
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			key[0] = AF_INET;
			memcpy(key + 1, a6->s6_addr + 12, 4);
		} else {
			memcpy(key + 1, a6, 16);
		}
	} else {
		return false;
	}
	return true;
}
