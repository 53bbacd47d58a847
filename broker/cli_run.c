/* SPDX-License-Identifier: MIT */
/* postern run: not built yet (see the open issues). */
#include <stdio.h>

#include "broker/broker.h"

int pst_cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("postern run: not implemented yet\n", stderr);
	return 1;
}
