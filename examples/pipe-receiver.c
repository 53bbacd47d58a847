/* pipe-receiver: started per message of its pipe channel; the message is on
 * stdin. Reports it on stderr, which the broker logs. */
#include <stdio.h>
#include <string.h>

int main(void)
{
	char line[4096];
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "pipe-receiver: no message\n");
		return 1;
	}
	line[strcspn(line, "\n")] = 0;
	fprintf(stderr, "received: %s\n", line);
	return 0;
}
