/* SPDX-License-Identifier: MIT */
/* postern status: not built yet (see the open issues). */
#include <stdio.h>

#include "broker/broker.h"

int pst_cmd_status(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("postern status: not implemented yet\n", stderr);
	return 1;
}
