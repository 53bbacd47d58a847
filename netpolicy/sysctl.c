/* SPDX-License-Identifier: MIT */
/*
 * Forwarding (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding, in the
 * broker's network namespace): turned on when some sandbox has egress, the
 * values it had recorded in the state dir first (STATE/forwarding), and
 * restored exactly (1 stays 1) at the stop, or after a crash by the next
 * start. Through /proc/sys: no sysctl process is run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "netpolicy/internal.h"

#define FWD4 "/proc/sys/net/ipv4/ip_forward"
#define FWD6 "/proc/sys/net/ipv6/conf/all/forwarding"

static int read_sysctl(const char *path, char out[4])
{
	char buf[16];
	int r = np_read_small(AT_FDCWD, path, buf, sizeof(buf));
	if (r < 0)
		return r;
	buf[strcspn(buf, " \n")] = 0;
	if (strcmp(buf, "0") && strcmp(buf, "1") && strcmp(buf, "2"))
		return -EINVAL;
	out[0] = buf[0]; /* one digit, checked above */
	out[1] = 0;
	return 0;
}

static int write_sysctl(const char *path, const char *v)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, v, strlen(v));
	return w < 0 ? -errno : 0;
}

void np_fwd_restore_recorded(struct netpolicy *np, int sfd)
{
	char buf[64], v4[4] = "", v6[4] = "";
	if (np_read_small(sfd, "forwarding", buf, sizeof(buf)) < 0)
		return;
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "ipv4=", 5) && (!strcmp(l + 5, "0") || !strcmp(l + 5, "1")))
			snprintf(v4, sizeof(v4), "%s", l + 5);
		if (!strncmp(l, "ipv6=", 5) && (!strcmp(l + 5, "0") || !strcmp(l + 5, "1")))
			snprintf(v6, sizeof(v6), "%s", l + 5);
	}
	if (v4[0])
		write_sysctl(FWD4, v4);
	if (v6[0])
		write_sysctl(FWD6, v6);
	unlinkat(sfd, "forwarding", 0);
	np_say(np,
	       "forwarding restored to what it was before an earlier instance (ipv4 %s, ipv6 %s)",
	       v4[0] ? v4 : "?", v6[0] ? v6 : "?");
}

int np_fwd_set(struct netpolicy *np, const struct netpolicy_config *cfg,
               struct netpolicy_error *err)
{
	bool need = false;
	for (size_t i = 0; i < cfg->n_sandboxes; i++)
		need |= cfg->sandboxes[i].n_rules > 0;
	if (!need || np->forwarding)
		return 0;
	char v4[4], v6[4];
	int r = read_sysctl(FWD4, v4);
	if (r == 0)
		r = read_sysctl(FWD6, v6);
	if (r < 0) {
		np_error(err, -r, "forwarding", "net.ipv4.ip_forward, net.ipv6.conf.all.forwarding",
		         "netpolicy: read forwarding sysctls: %s", strerror(-r));
		return r;
	}
	if (!strcmp(v4, "1") && !strcmp(v6, "1")) {
		np->forwarding = true; /* as it was: nothing to restore */
		return 0;
	}
	char rec[64];
	snprintf(rec, sizeof(rec), "ipv4=%s\nipv6=%s\n", v4, v6);
	if ((r = np_write_small(np->state_fd, "forwarding", rec)) < 0) {
		np_error(err, -r, "state dir", "forwarding",
		         "netpolicy: state dir %s: record forwarding: %s", np->state_dir,
		         strerror(-r));
		return r;
	}
	snprintf(np->fwd4, sizeof(np->fwd4), "%s", v4);
	snprintf(np->fwd6, sizeof(np->fwd6), "%s", v6);
	np->fwd_changed = true;
	r = strcmp(v4, "1") ? write_sysctl(FWD4, "1") : 0;
	if (r == 0 && strcmp(v6, "1"))
		r = write_sysctl(FWD6, "1");
	if (r < 0) {
		np_error(err, -r, "forwarding", "net.ipv4.ip_forward, net.ipv6.conf.all.forwarding",
		         "netpolicy: enable forwarding: %s", strerror(-r));
		return r;
	}
	np->forwarding = true;
	np_say(np,
	       "forwarding enabled in the broker's network namespace (sandboxes have egress; "
	       "was ipv4 %s, ipv6 %s, restored at stop)",
	       v4, v6);
	return 0;
}

void np_fwd_restore(struct netpolicy *np)
{
	if (!np->fwd_changed)
		return;
	/* exactly what was there: 1 stays 1 */
	write_sysctl(FWD4, np->fwd4);
	write_sysctl(FWD6, np->fwd6);
	unlinkat(np->state_fd, "forwarding", 0);
	np->fwd_changed = false;
	np->forwarding = false;
}
