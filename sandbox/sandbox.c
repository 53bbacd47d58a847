/* SPDX-License-Identifier: MIT */
/*
 * The public API of sandbox/ (sandbox.h): sandbox_prepare() does, once,
 * everything that does not depend on the request, each concern in its own
 * file; the rest runs that plan (launch.c, child.c, warm.c) or asks
 * cgroup.c. How a spawn runs: launch.c and child.c.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "sandbox/internal.h"

const char *const sandbox_phase_names[SANDBOX_PHASE_COUNT] = {
    [SANDBOX_PHASE_PREPARE] = "prepare",
    [SANDBOX_PHASE_CLONE] = "clone",
    [SANDBOX_PHASE_NAMESPACES] = "namespaces",
    [SANDBOX_PHASE_ROOT] = "root",
    [SANDBOX_PHASE_IDENTITY] = "identity",
    [SANDBOX_PHASE_SECCOMP] = "seccomp",
    [SANDBOX_PHASE_EXEC] = "exec",
};

void sb_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

char **sb_strv_copy(const char *const *v, size_t extra, size_t *n_out)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = calloc(n + extra + 1, sizeof(char *));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(v[i]))) {
			sb_strv_free(c);
			return NULL;
		}
	if (n_out)
		*n_out = n;
	return c;
}

/* ---- prepare ---------------------------------------------------------------------- */

static int config_check(const struct sandbox_config *cfg, struct sandbox_error *err)
{
	const char *name = cfg->name ? cfg->name : "?";
	if (!cfg->name || !cfg->argv || !cfg->argv[0] || cfg->argv[0][0] != '/') {
		sb_error(err, EINVAL, "config", name,
		         "sandbox \"%s\": exec must be an absolute path", name);
		return -EINVAL;
	}
	if (cfg->uid == 0 || cfg->gid == 0) {
		sb_error(err, EPERM, "config", name,
		         "sandbox \"%s\": refusing to run handlers as root", name);
		return -EPERM;
	}
	return 0;
}

/* The plan, in the order its errors are reported. */
static int prepare(struct sandbox *sb, const struct sandbox_config *cfg, struct sandbox_error *err)
{
	int r;
	if (!(sb->name = strdup(cfg->name)) || !(sb->argv = sb_strv_copy(cfg->argv, 0, NULL)) ||
	    sb_env_prepare(sb, cfg) < 0) {
		sb_error(err, ENOMEM, "prepare", cfg->name, "sandbox \"%s\": prepare: %s",
		         cfg->name, strerror(ENOMEM));
		return -ENOMEM;
	}
	sb_warm_prepare(sb);
	sb->uid = cfg->uid;
	sb->gid = cfg->gid;
	sb->identity_files = cfg->identity_files;
	sb->socket_mode = cfg->socket_mode;
	sb->limits = cfg->limits;
	if ((r = sb_mounts_copy(sb, cfg, err)) < 0 ||
	    (r = sb_seccomp_compile(cfg, &sb->prog, err)) < 0 ||
	    (r = sb_landlock_ruleset(cfg, &sb->ll_fd, err)) < 0)
		return r;
	sb_identity_prepare(sb);
	if ((r = sb_root_dir_get(sb, err)) < 0)
		return r;
	sb_tmpl_build(sb);
	if ((r = sb_ns_build(sb, sb_ipc_private(cfg), err)) < 0)
		return r;
	return sb_cg_prepare(&sb->cg, cfg->cgroup_name, sb->name, &sb->limits, err);
}

void sandbox_process_init(void)
{
	sb_own_table_prepare();
}

int sandbox_prepare(const struct sandbox_config *cfg, struct sandbox **out,
                    struct sandbox_error *err)
{
	*out = NULL;
	int r = config_check(cfg, err);
	if (r < 0)
		return r;
	sb_own_table_prepare(); /* once: at its first call (sandbox_process_init()) */
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		sb_error(err, ENOMEM, "prepare", cfg->name, "sandbox \"%s\": prepare: %s",
		         cfg->name, strerror(ENOMEM));
		return -ENOMEM;
	}
	sb->tmpl_fd = sb->ll_fd = sb->uts_fd = sb->ipc_fd = -1;
	pthread_mutex_init(&sb->cg.lock, NULL);
	if ((r = prepare(sb, cfg, err)) < 0) {
		sandbox_free(sb);
		return r;
	}
	*out = sb;
	return 0;
}

int sandbox_destroy(struct sandbox *sb, struct sandbox_error *err)
{
	if (!sb)
		return 0;
	int r = sb_cg_destroy(&sb->cg, err);
	pthread_mutex_destroy(&sb->cg.lock);
	free(sb->name);
	sb_strv_free(sb->argv);
	sb_strv_free(sb->env);
	sb_mounts_free(sb);
	free(sb->prog.filter);
	sb_close(&sb->tmpl_fd);
	sb_close(&sb->ll_fd);
	sb_close(&sb->uts_fd);
	sb_close(&sb->ipc_fd);
	sb_root_dir_put(sb);
	free(sb);
	return r;
}

void sandbox_free(struct sandbox *sb)
{
	sandbox_destroy(sb, NULL);
}

/* ---- handlers ----------------------------------------------------------------------- */

int sandbox_spawn(struct sandbox *sb, const struct sandbox_spawn_args *a, struct sandbox_handler *h,
                  struct sandbox_error *err)
{
	return sb_launch(sb, a, h, false, err);
}

int sandbox_prewarm(struct sandbox *sb, const struct sandbox_spawn_args *a,
                    struct sandbox_handler *h, struct sandbox_error *err)
{
	if (a->sock_fd >= 0 || a->stdin_fd >= 0) {
		sb_error(err, EINVAL, "prewarm", sb->name,
		         "sandbox \"%s\": prewarm: the request's fds come with sandbox_release()",
		         sb->name);
		return -EINVAL;
	}
	return sb_launch(sb, a, h, true, err);
}

int sandbox_warm_ready(struct sandbox *sb, struct sandbox_handler *h, struct sandbox_error *err)
{
	return sb_warm_ready(sb, h, err);
}

int sandbox_warm_wait(struct sandbox *sb, struct sandbox_handler *h, int timeout_ms,
                      struct sandbox_error *err)
{
	return sb_warm_wait(sb, h, timeout_ms, err);
}

int sandbox_release(struct sandbox *sb, struct sandbox_handler *h, int sock_fd, int stdin_fd,
                    const char *const *extra_env, struct sandbox_error *err)
{
	return sb_release(sb, h, sock_fd, stdin_fd, extra_env, err);
}

int sandbox_kill(struct sandbox_handler *h)
{
	if (h->pidfd < 0)
		return -EBADF;
	int r = 0;
	if (syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		r = -errno;
	/* cgroup v2: every process of its cgroup too, also one that got out
	 * of its pid namespace's reach */
	(void)sb_cg_kill(h->cgroup);
	return r;
}

int sandbox_reap(struct sandbox *sb, struct sandbox_handler *h, int *wstatus,
                 struct sandbox_cg_stats *cs)
{
	siginfo_t si;
	int r = 0;
	memset(&si, 0, sizeof(si));
	if (h->pidfd >= 0) {
		while (waitid(P_PIDFD, (id_t)h->pidfd, &si, WEXITED | __WALL) < 0) {
			if (errno != EINTR) {
				r = -errno;
				break;
			}
		}
	}
	if (r == 0 && wstatus) {
		if (si.si_code == CLD_EXITED)
			*wstatus = (si.si_status & 0xff) << 8;
		else
			*wstatus = (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
	}
	/* its final figures; its cgroup back to the stock or removed */
	sb_cg_finish(sb ? &sb->cg : NULL, r == 0, h, cs);
	sb_close(&h->pidfd);
	sb_close(&h->stderr_fd);
	sb_close(&h->ctl_fd);
	sb_close(&h->req_fd);
	return r;
}

unsigned sandbox_cg_stock_missing(struct sandbox *sb)
{
	return sb_cg_stock_missing(&sb->cg);
}

int sandbox_cg_stock(struct sandbox *sb, struct sandbox_error *err)
{
	return sb_cg_stock(&sb->cg, err);
}
