/* SPDX-License-Identifier: MIT */
/* postern top: not built yet (see the open issues). */
#include <stdio.h>

#include "broker/broker.h"

int pst_cmd_top(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("postern top: not implemented yet\n", stderr);
	return 1;
}
