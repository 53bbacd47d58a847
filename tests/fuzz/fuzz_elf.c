/* libFuzzer target: the preflight's ELF reader, ld.so.cache reader and #! line parser
 * (broker/preflight.c), which read files a local user may have crafted.
 * Neither may crash, overflow or read outside its input, whatever the
 * bytes; what the reader returns is bounded and NUL-terminated. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/preflight.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pf_elf e;
	char why[128], interp[256];
	/* a copy of exactly size bytes: ASan sees any read past it */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (pf_elf_parse_buf(buf, size, &e, why, sizeof(why)) == 1) {
		if (e.has_interp && strlen(e.interp) >= sizeof(e.interp))
			abort();
		for (size_t i = 0; i < e.n_needed; i++)
			if (e.needed[i] >= e.names_len ||
			    strlen(pf_elf_needed(&e, i)) >= PF_STR_MAX)
				abort();
	}
	/* the same bytes as an ld.so.cache */
	size_t i = 0, budget = 1u << 16;
	for (const char *v; (v = pf_cache_next(buf, size, "libc.so.6", &i, &budget));)
		if (strlen(v) >= 4096)
			abort();
	(void)pf_shebang((const char *)buf, size < 256 ? size : 256, interp, sizeof(interp));
	free(buf);
	return 0;
}
