/* SPDX-License-Identifier: MIT */
/* postern check: not built yet (see the open issues). */
#include <stdio.h>

#include "broker/broker.h"

int pst_cmd_check(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("postern check: not implemented yet\n", stderr);
	return 1;
}
