/* libFuzzer targets: the parsers of bytes from less trusted peers
 * (broker/wire.c). The first byte picks the parser; the rest is its input:
 *   0  a sender's pipe, read in pieces (each following byte says how many
 *      of the rest come in the next read)
 *   1  an fdpass message's control data (the rest: the control buffer)
 *   2  a control-socket request
 *   3  a metrics client's HTTP request
 *   4  a handler's environment from a connection's addresses (as
 *      getpeername/getsockname or recvmsg could fill them: any family,
 *      any bytes), with up to PST_ENV_EXTRA_MAX + 2 extra entries
 * None may crash, overflow or read outside its input, whatever the bytes;
 * a message taken from the pipe is never longer than PST_LINE_MAX; an
 * environment is NULL-terminated and each entry a bounded string. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker/internal.h"

static void env_case(const uint8_t *d, size_t n)
{
	struct sockaddr_storage peer, local;
	memset(&peer, 0, sizeof(peer));
	memset(&local, 0, sizeof(local));
	/* the first byte: which of peer, local are given and how many extras */
	uint8_t ctl = n ? d[0] : 0;
	d += n ? 1 : 0;
	n -= n ? 1 : 0;
	size_t k = n < sizeof(peer) ? n : sizeof(peer);
	memcpy(&peer, d, k);
	d += k;
	n -= k;
	memcpy(&local, d, n < sizeof(local) ? n : sizeof(local));
	/* most of them inet, so that formatting is reached */
	static const sa_family_t fam[4] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
	if (ctl & 0x40) {
		peer.ss_family = fam[ctl & 3];
		local.ss_family = fam[(ctl >> 2) & 3];
	}
	const char *extra[PST_ENV_EXTRA_MAX + 3];
	size_t nx = (size_t)(ctl >> 4 & 3) * (PST_ENV_EXTRA_MAX / 2 + 1);
	for (size_t i = 0; i < nx && i < PST_ENV_EXTRA_MAX + 2; i++)
		extra[i] = "POSTERN_SEND_X=3";
	extra[nx < PST_ENV_EXTRA_MAX + 2 ? nx : PST_ENV_EXTRA_MAX + 2] = NULL;
	struct pst_req_env e;
	struct pst_peer_cred cred = {(uint32_t)-1, (uint32_t)-1, -1};
	size_t got = pst_env_build(&e, (ctl & 0x80) ? NULL : &peer, &local,
	                           (ctl & 0x08) ? &cred : NULL, extra);
	if (got > PST_ENV_OWN_MAX + PST_ENV_EXTRA_MAX || e.envp[got])
		abort();
	for (size_t i = 0; i < got; i++)
		if (!e.envp[i] || strnlen(e.envp[i], PST_ENV_VAL_MAX) >= PST_ENV_VAL_MAX)
			abort();
	char text[64];
	uint8_t key[PST_SRCKEY_LEN];
	pst_peer_format(&peer, text, sizeof(text));
	if (strnlen(text, sizeof(text)) >= sizeof(text))
		abort();
	(void)pst_srckey_inet(&peer, key);
}

static void pipe_case(const uint8_t *d, size_t n)
{
	static struct pst_lines b;
	pst_lines_reset(&b);
	size_t i = 0;
	while (i < n) {
		size_t want = (size_t)d[i++] * 17 + 1, room;
		char *t = pst_lines_tail(&b, &room);
		if (want > room)
			want = room;
		if (want > n - i)
			want = n - i;
		memcpy(t, d + i, want);
		i += want;
		pst_lines_added(&b, want);
		const char *m;
		size_t len;
		int ev;
		while ((ev = pst_lines_next(&b, &m, &len)) != PST_LINES_MORE)
			if (ev == PST_LINES_MSG && (len >= PST_LINE_MAX || memchr(m, '\n', len)))
				abort();
	}
	(void)pst_lines_partial(&b);
}

static void fdpass_case(const uint8_t *d, size_t n)
{
	/* control data, aligned as the kernel hands it */
	union {
		struct cmsghdr h;
		uint8_t b[512];
	} cm;
	if (n > sizeof(cm.b))
		n = sizeof(cm.b);
	memcpy(cm.b, d, n);
	struct msghdr mh = {.msg_control = cm.b, .msg_controllen = n, .msg_flags = n ? d[0] : 0};
	int fds[8];
	int k = pst_fdpass_fds(&mh, fds, 8);
	if (k < 0 || k > 8)
		abort();
	(void)pst_fdpass_check(&mh, k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0:
		pipe_case(d, n);
		break;
	case 1:
		fdpass_case(d, n);
		break;
	case 2: {
		/* the request as the broker holds it: a buffer of its size */
		char *buf = malloc(4096);
		size_t len = n < 4095 ? n : 4095;
		memcpy(buf, d, len);
		struct pst_control_req r;
		if (pst_control_parse(buf, len, 4096, &r) == PST_CTL_OK &&
		    (strlen(r.verb) >= sizeof(r.verb) || strlen(r.arg) >= sizeof(r.arg)))
			abort();
		free(buf);
		break;
	}
	case 3: {
		char *buf = malloc(4096), path[64];
		size_t len = n < 4095 ? n : 4095;
		memcpy(buf, d, len);
		int st = pst_http_parse(buf, len, 4096, path, sizeof(path));
		if (st == 200 && strlen(path) >= sizeof(path))
			abort();
		free(buf);
		break;
	}
	case 4:
		env_case(d, n);
		break;
	}
	return 0;
}
