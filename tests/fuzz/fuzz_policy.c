/* libFuzzer target: the policy loader must never crash, leak or overflow,
 * whatever the bytes. */
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pst_policy *p = NULL;
	struct pst_diag d = {0};
	if (pst_policy_parse("fuzz.json", (const char *)data, size, &p, &d) == 0) {
		for (size_t i = 0; i < p->n_sandboxes; i++)
			(void)pst_policy_find(p, p->sandboxes[i].name);
		pst_policy_free(p);
	}
	pst_diag_free(&d);
	return 0;
}
