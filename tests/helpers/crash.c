/* crash: a handler that dies of a real SIGSEGV (a handler is pid 1 of its
 * pid namespace, so a signal it sends itself would be ignored). */
#include <stddef.h>

int main(void)
{
	volatile int *volatile p = NULL;
	*p = 1;
	return 0;
}
