/* SPDX-License-Identifier: MIT */
/* The error record every fallible function of sandbox/ fills: errno, step, object, message. */
#include <stdarg.h>
#include <stdio.h>

#include "sandbox/internal.h"

void sb_error(struct sandbox_error *e, int err, const char *step, const char *object,
              const char *fmt, ...)
{
	if (!e)
		return;
	va_list ap;
	e->err = err;
	snprintf(e->step, sizeof(e->step), "%s", step ? step : "");
	snprintf(e->object, sizeof(e->object), "%s", object ? object : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}
