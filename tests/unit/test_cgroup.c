/* Unit tests: where sandbox/ finds this process's cgroups (sb_cg_layout)
 * on the layouts users have: cgroup v2 only (Debian 12, Fedora, Ubuntu),
 * systemd's hybrid, v1 with cpu and cpuacct mounted together, a container
 * with a cgroup namespace, and the v1 layout of this project's CI machine.
 * Each case is the text of /proc/self/mountinfo and /proc/self/cgroup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/internal.h"

/* mountinfo lines around the cgroup ones, as on a real machine */
#define MI_ROOT "21 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
#define MI_SYS "22 21 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"

static void test_v2_only(void **state)
{
	(void)state;
	const char *mi =
	    MI_ROOT MI_SYS "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - "
	                   "cgroup2 cgroup2 "
	                   "rw,nsdelegate,memory_recursiveprot\n";
	const char *self = "0::/system.slice/postern.service\n";
	struct sb_cg_layout l;
	assert_int_equal(sb_cg_layout(mi, self, &l), 0);
	assert_int_equal(l.mode, SANDBOX_CG_V2);
	assert_string_equal(l.v2, "/sys/fs/cgroup/system.slice/postern.service");
	for (int i = 0; i < CG_N; i++)
		assert_string_equal(l.v1[i], "");
}

static void test_v2_root(void **state)
{
	(void)state;
	const char *mi =
	    MI_ROOT "30 21 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 none rw,nsdelegate\n";
	struct sb_cg_layout l;
	sb_cg_layout(mi, "0::/\n", &l);
	assert_int_equal(l.mode, SANDBOX_CG_V2);
	assert_string_equal(l.v2, "/sys/fs/cgroup");
}

/* systemd's hybrid layout: controllers in v1, an empty v2 beside them */
static void test_hybrid(void **state)
{
	(void)state;
	const char *mi = MI_ROOT MI_SYS
	    "25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs "
	    "ro,mode=755\n"
	    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - "
	    "cgroup2 cgroup2 rw,nsdelegate\n"
	    "27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup "
	    "rw,xattr,name=systemd\n"
	    "31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory\n"
	    "32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:15 - cgroup cgroup rw,pids\n"
	    "33 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:16 - cgroup cgroup "
	    "rw,cpu,cpuacct\n";
	const char *self = "12:pids:/system.slice/postern.service\n"
	                   "7:cpu,cpuacct:/system.slice/postern.service\n"
	                   "5:memory:/system.slice/postern.service\n"
	                   "1:name=systemd:/system.slice/postern.service\n"
	                   "0::/system.slice/postern.service\n";
	struct sb_cg_layout l;
	sb_cg_layout(mi, self, &l);
	assert_int_equal(l.mode, SANDBOX_CG_V1);
	assert_string_equal(l.v1[CG_MEMORY], "/sys/fs/cgroup/memory/system.slice/postern.service");
	assert_string_equal(l.v1[CG_PIDS], "/sys/fs/cgroup/pids/system.slice/postern.service");
	/* one hierarchy for cpu and cpuacct: the same directory and number */
	assert_string_equal(l.v1[CG_CPU],
	                    "/sys/fs/cgroup/cpu,cpuacct/system.slice/postern.service");
	assert_string_equal(l.v1[CG_CPUACCT], l.v1[CG_CPU]);
	assert_int_equal(l.v1hier[CG_CPU], 7);
	assert_int_equal(l.v1hier[CG_CPUACCT], 7);
	assert_int_equal(l.v1hier[CG_MEMORY], 5);
	assert_string_equal(l.v2, "/sys/fs/cgroup/unified/system.slice/postern.service");
}

/* the CI machine: v1 controllers each mounted alone, cgroup2 at unified */
static void test_ci_machine(void **state)
{
	(void)state;
	const char *mi =
	    MI_ROOT "40 21 0:34 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	            "41 40 0:35 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	            "42 40 0:36 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	            "44 40 0:38 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	            "48 40 0:42 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	            "50 40 0:44 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
	const char *self = "8:pids:/\n4:memory:/process_api/1cb1\n2:cpuacct:/\n1:cpu:/\n0::/\n";
	struct sb_cg_layout l;
	sb_cg_layout(mi, self, &l);
	assert_int_equal(l.mode, SANDBOX_CG_V1);
	assert_string_equal(l.v1[CG_MEMORY], "/sys/fs/cgroup/memory/process_api/1cb1");
	assert_string_equal(l.v1[CG_PIDS], "/sys/fs/cgroup/pids");
	assert_string_equal(l.v1[CG_CPUACCT], "/sys/fs/cgroup/cpuacct");
	assert_int_not_equal(l.v1hier[CG_CPU], l.v1hier[CG_CPUACCT]);
}

/* a container with its own cgroup namespace: /proc/self/cgroup is
 * relative to the namespace's root, which its cgroup2 mount shows */
static void test_container_cgroupns(void **state)
{
	(void)state;
	const char *mi = "600 500 0:60 / / rw - overlay overlay rw\n"
	                 "610 600 0:64 / /sys rw - sysfs sysfs ro\n"
	                 "611 610 0:30 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw,nsdelegate\n";
	struct sb_cg_layout l;
	sb_cg_layout(mi, "0::/\n", &l);
	assert_int_equal(l.mode, SANDBOX_CG_V2);
	assert_string_equal(l.v2, "/sys/fs/cgroup");
}

/* a mount of a subtree (bind-mounted into a container): paths under its
 * root are found below the mount point, paths outside it are not */
static void test_mount_root(void **state)
{
	(void)state;
	const char *mi = MI_ROOT "70 21 0:30 /lxc/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
	struct sb_cg_layout l;
	sb_cg_layout(mi, "0::/lxc/c1/app\n", &l);
	assert_int_equal(l.mode, SANDBOX_CG_V2);
	assert_string_equal(l.v2, "/sys/fs/cgroup/app");
	sb_cg_layout(mi, "0::/lxc/c10\n", &l);
	assert_string_equal(l.v2, "");
	assert_int_equal(l.mode, SANDBOX_CG_NONE);
}

/* a space in a mount point is \040 in mountinfo */
static void test_escaped(void **state)
{
	(void)state;
	const char *mi = MI_ROOT "71 21 0:30 / /srv/cg\\040two rw - cgroup2 cgroup2 rw\n";
	struct sb_cg_layout l;
	sb_cg_layout(mi, "0::/a\n", &l);
	assert_string_equal(l.v2, "/srv/cg two/a");
}

/* nothing mounted (or only a v1 hierarchy without memory and pids) */
static void test_none(void **state)
{
	(void)state;
	struct sb_cg_layout l;
	sb_cg_layout(MI_ROOT MI_SYS, "0::/\n", &l);
	assert_int_equal(l.mode, SANDBOX_CG_NONE);
	sb_cg_layout(MI_ROOT "41 21 0:35 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
	             "1:cpu:/\n", &l);
	assert_int_equal(l.mode, SANDBOX_CG_NONE);
	assert_string_equal(l.v1[CG_CPU], "/sys/fs/cgroup/cpu");
}

/* the machine this runs on: the layout the broker will use there is found
 * in the real files (v1 here, v2 in the cgroup v2 VM tier), and its
 * directories exist */
static void test_this_machine(void **state)
{
	(void)state;
	char mi[65536], self[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	assert_non_null(f);
	size_t n = fread(mi, 1, sizeof(mi) - 1, f);
	mi[n] = 0;
	fclose(f);
	f = fopen("/proc/self/cgroup", "re");
	assert_non_null(f);
	n = fread(self, 1, sizeof(self) - 1, f);
	self[n] = 0;
	fclose(f);
	struct sb_cg_layout l;
	sb_cg_layout(mi, self, &l);
	bool v2_only = strstr(mi, " - cgroup ") == NULL && strstr(mi, " - cgroup2 ") != NULL;
	if (v2_only) {
		assert_int_equal(l.mode, SANDBOX_CG_V2);
		assert_int_equal(access(l.v2, F_OK), 0);
	} else if (l.mode == SANDBOX_CG_V1) {
		assert_true(l.v1[CG_MEMORY][0] || l.v1[CG_PIDS][0]);
		for (int i = 0; i < CG_N; i++)
			if (l.v1[i][0])
				assert_int_equal(access(l.v1[i], F_OK), 0);
	}
	print_message("this machine: %s\n", l.mode == SANDBOX_CG_V2   ? "cgroup v2"
	                                    : l.mode == SANDBOX_CG_V1 ? "cgroup v1"
	                                                              : "no cgroups");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v2_only),
	    cmocka_unit_test(test_v2_root),
	    cmocka_unit_test(test_hybrid),
	    cmocka_unit_test(test_ci_machine),
	    cmocka_unit_test(test_container_cgroupns),
	    cmocka_unit_test(test_mount_root),
	    cmocka_unit_test(test_escaped),
	    cmocka_unit_test(test_none),
	    cmocka_unit_test(test_this_machine),
	};
	return cmocka_run_group_tests_name("cgroup", tests, NULL, NULL);
}
