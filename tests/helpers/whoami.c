/* SPDX-License-Identifier: MIT */
/* A handler that says who it is by name, as a program that looks its uid
 * up would (getpwuid(), getgrgid(): /etc/passwd and /etc/group), whether
 * /etc/hosts names localhost, and whether it can change /etc/passwd. For
 * the identity_files test (tests/integration/t_preflight.sh). */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = getgrgid(getgid());
	char hosts[512] = "";
	FILE *f = fopen("/etc/hosts", "r");
	if (f) {
		size_t n = fread(hosts, 1, sizeof(hosts) - 1, f);
		hosts[n] = 0;
		fclose(f);
	}
	int w = open("/etc/passwd", O_WRONLY | O_APPEND);
	printf("user=%s group=%s home=%s shell=%s localhost=%s passwd_writable=%s\n",
	       pw ? pw->pw_name : "?", gr ? gr->gr_name : "?", pw ? pw->pw_dir : "?",
	       pw ? pw->pw_shell : "?", strstr(hosts, "127.0.0.1\tlocalhost") ? "yes" : "no",
	       w >= 0 ? "yes" : "no");
	fflush(stdout);
	return 0;
}
