/* SPDX-License-Identifier: MIT */
/*
 * The file formats the preflight (preflight.c) reads, as plain parsers over
 * a reader (a buffer, or pread() on an fd) that the tests and the fuzzer
 * call directly: an ELF program's class, machine, PT_INTERP, DT_NEEDED,
 * DT_RPATH and DT_RUNPATH; a "#!" line; ld.so.cache's entries for a name.
 * A local user may have left any of these files crafted: every offset and
 * count is checked against what can be read, every loop is bounded, and
 * nothing is mapped.
 */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/preflight.h"

/* ---- ELF ------------------------------------------------------------------------ */

struct buf_src {
	const uint8_t *p;
	size_t len;
};

static int buf_read(void *ctx, uint64_t off, void *dst, size_t n)
{
	const struct buf_src *b = ctx;
	if (off > b->len || n > b->len - off)
		return -1;
	memcpy(dst, b->p + off, n);
	return 0;
}

int pf_fd_read(void *ctx, uint64_t off, void *dst, size_t n)
{
	int fd = *(const int *)ctx;
	size_t got = 0;
	if (off > (uint64_t)INT64_MAX - n)
		return -1;
	while (got < n) {
		ssize_t r = pread(fd, (char *)dst + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static uint64_t get_u(const struct pf_elf *e, const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[e->be ? n - 1 - i : i] << (8 * i);
	return v;
}

static int fail(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return -1;
}

struct phdr {
	uint32_t type;
	uint64_t offset, vaddr, filesz;
};

static void phdr_get(const struct pf_elf *e, const uint8_t *b, struct phdr *ph)
{
	ph->type = (uint32_t)get_u(e, b, 4);
	if (e->cls == ELFCLASS64) {
		ph->offset = get_u(e, b + 8, 8);
		ph->vaddr = get_u(e, b + 16, 8);
		ph->filesz = get_u(e, b + 32, 8);
	} else {
		ph->offset = get_u(e, b + 4, 4);
		ph->vaddr = get_u(e, b + 8, 4);
		ph->filesz = get_u(e, b + 16, 4);
	}
}

/* A NUL-terminated string of at most cap - 1 bytes at off, within [off,
 * end): 0, or -1. */
static int read_str(const struct pf_reader *r, uint64_t off, uint64_t end, char *out, size_t cap)
{
	if (off >= end)
		return -1;
	uint64_t n = end - off < cap ? end - off : cap;
	/* what the file holds may end before end: read less then */
	while (n > 0 && r->read(r->ctx, off, out, (size_t)n) < 0)
		n /= 2;
	if (!n || !memchr(out, 0, (size_t)n))
		return -1;
	return 0;
}

/* A virtual address's offset in the file, through the PT_LOAD segments. */
static bool vaddr_off(const struct phdr *loads, size_t n, uint64_t va, uint64_t *off,
                      uint64_t *room)
{
	for (size_t i = 0; i < n; i++)
		if (va >= loads[i].vaddr && va - loads[i].vaddr < loads[i].filesz) {
			uint64_t d = va - loads[i].vaddr;
			if (loads[i].offset > UINT64_MAX - d)
				return false;
			*off = loads[i].offset + d;
			*room = loads[i].filesz - d;
			return true;
		}
	return false;
}

struct dyn_info {
	uint64_t strtab, strsz;
	bool has_strtab, has_runpath, has_rpath;
	uint64_t runpath, rpath;
	uint64_t needed[PF_NEEDED_MAX];
	size_t n_needed;
};

static int read_dynamic(const struct pf_reader *r, struct pf_elf *e, const struct phdr *dyn,
                        struct dyn_info *d, char *why, size_t whylen)
{
	size_t esz = e->cls == ELFCLASS64 ? 16 : 8;
	uint64_t n = dyn->filesz / esz;
	uint8_t chunk[64 * 16];
	if (n > PF_DYN_MAX)
		n = PF_DYN_MAX;
	for (uint64_t i = 0; i < n;) {
		/* 64 entries a read; entry by entry where the file ends */
		uint64_t k = n - i < 64 ? n - i : 64;
		if (dyn->offset > UINT64_MAX - (i + k) * esz ||
		    r->read(r->ctx, dyn->offset + i * esz, chunk, (size_t)(k * esz)) < 0) {
			k = 1;
			if (dyn->offset > UINT64_MAX - (i + 1) * esz ||
			    r->read(r->ctx, dyn->offset + i * esz, chunk, esz) < 0)
				return fail(why, whylen,
				            "its dynamic section lies outside the file");
		}
		for (uint64_t j = 0; j < k; j++, i++) {
			const uint8_t *b = chunk + j * esz;
			uint64_t tag = get_u(e, b, esz / 2), val = get_u(e, b + esz / 2, esz / 2);
			if (tag == DT_NULL)
				return 0;
			if (tag == DT_NEEDED && d->n_needed < PF_NEEDED_MAX)
				d->needed[d->n_needed++] = val;
			else if (tag == DT_NEEDED)
				return fail(why, whylen,
				            "more DT_NEEDED entries than preflight follows");
			else if (tag == DT_STRTAB)
				d->strtab = val, d->has_strtab = true;
			else if (tag == DT_STRSZ)
				d->strsz = val;
			else if (tag == DT_RUNPATH)
				d->runpath = val, d->has_runpath = true;
			else if (tag == DT_RPATH)
				d->rpath = val, d->has_rpath = true;
		}
	}
	return 0;
}

/* The dynamic strings: names of DT_NEEDED, DT_RUNPATH, DT_RPATH. */
static int dyn_strings(const struct pf_reader *r, struct pf_elf *e, const struct phdr *loads,
                       size_t n_loads, const struct dyn_info *d, char *why, size_t whylen)
{
	uint64_t off, room;
	if (!d->n_needed && !d->has_runpath && !d->has_rpath)
		return 0;
	if (!d->has_strtab || !vaddr_off(loads, n_loads, d->strtab, &off, &room))
		return fail(why, whylen, "its DT_STRTAB is not in a loaded segment");
	if (d->strsz && d->strsz < room)
		room = d->strsz;
	uint64_t end = off + room; /* off + room cannot wrap: both from one segment */
	char s[PF_STR_MAX];
	for (size_t i = 0; i < d->n_needed; i++) {
		if (d->needed[i] >= room || read_str(r, off + d->needed[i], end, s, sizeof(s)) < 0)
			return fail(why, whylen, "a DT_NEEDED name lies outside its string table");
		size_t l = strlen(s) + 1;
		if (l > sizeof(e->names) - e->names_len)
			return fail(why, whylen,
			            "its DT_NEEDED names are longer than preflight reads");
		memcpy(e->names + e->names_len, s, l);
		e->needed[e->n_needed++] = (uint32_t)e->names_len;
		e->names_len += l;
	}
	if (d->has_runpath && (d->runpath >= room || read_str(r, off + d->runpath, end, e->runpath,
	                                                      sizeof(e->runpath)) < 0))
		return fail(why, whylen, "its DT_RUNPATH lies outside its string table");
	if (d->has_rpath &&
	    (d->rpath >= room || read_str(r, off + d->rpath, end, e->rpath, sizeof(e->rpath)) < 0))
		return fail(why, whylen, "its DT_RPATH lies outside its string table");
	e->has_runpath = d->has_runpath;
	e->has_rpath = d->has_rpath;
	return 0;
}

static int elf_header(const struct pf_reader *r, struct pf_elf *e, uint64_t *phoff, uint64_t *phnum,
                      size_t *phsz, char *why, size_t whylen)
{
	uint8_t h[64];
	if (r->read(r->ctx, 0, h, 4) < 0 || memcmp(h, ELFMAG, SELFMAG))
		return 0;
	if (r->read(r->ctx, 0, h, EI_NIDENT) < 0)
		return fail(why, whylen, "truncated ELF header");
	e->cls = h[EI_CLASS];
	e->be = h[EI_DATA] == ELFDATA2MSB;
	if ((e->cls != ELFCLASS32 && e->cls != ELFCLASS64) ||
	    (h[EI_DATA] != ELFDATA2LSB && h[EI_DATA] != ELFDATA2MSB))
		return fail(why, whylen, "unknown ELF class or byte order");
	size_t hsz = e->cls == ELFCLASS64 ? 64 : 52;
	if (r->read(r->ctx, 0, h, hsz) < 0)
		return fail(why, whylen, "truncated ELF header");
	e->type = (uint16_t)get_u(e, h + 16, 2);
	e->machine = (uint16_t)get_u(e, h + 18, 2);
	if (e->cls == ELFCLASS64) {
		*phoff = get_u(e, h + 32, 8);
		*phsz = (size_t)get_u(e, h + 54, 2);
		*phnum = get_u(e, h + 56, 2);
	} else {
		*phoff = get_u(e, h + 28, 4);
		*phsz = (size_t)get_u(e, h + 42, 2);
		*phnum = get_u(e, h + 44, 2);
	}
	if (e->type != ET_EXEC && e->type != ET_DYN)
		return fail(why, whylen, "not an executable or shared object (ELF e_type)");
	if (*phsz != (e->cls == ELFCLASS64 ? 56u : 32u))
		return fail(why, whylen, "unexpected program header size");
	if (*phnum == 0 || *phnum > PF_PHNUM_MAX)
		return fail(why, whylen, "no program headers, or too many");
	return 1;
}

int pf_elf_parse(const struct pf_reader *r, struct pf_elf *e, char *why, size_t whylen)
{
	uint64_t phoff, phnum;
	size_t phsz;
	memset(e, 0, sizeof(*e));
	int h = elf_header(r, e, &phoff, &phnum, &phsz, why, whylen);
	if (h <= 0)
		return h;
	struct phdr loads[PF_PHNUM_MAX], dyn = {0};
	size_t n_loads = 0;
	for (uint64_t i = 0; i < phnum; i++) {
		uint8_t b[56];
		struct phdr ph;
		if (phoff > UINT64_MAX - i * phsz || r->read(r->ctx, phoff + i * phsz, b, phsz) < 0)
			return fail(why, whylen, "its program headers lie outside the file");
		phdr_get(e, b, &ph);
		if (ph.type == PT_LOAD) {
			loads[n_loads++] = ph;
		} else if (ph.type == PT_DYNAMIC) {
			dyn = ph;
			e->has_dynamic = true;
		} else if (ph.type == PT_INTERP) {
			if (e->has_interp)
				return fail(why, whylen, "two PT_INTERP headers");
			if (ph.filesz < 2 || ph.filesz > sizeof(e->interp) ||
			    ph.offset > UINT64_MAX - ph.filesz ||
			    r->read(r->ctx, ph.offset, e->interp, (size_t)ph.filesz) < 0 ||
			    e->interp[ph.filesz - 1] != 0 || strlen(e->interp) == 0)
				return fail(why, whylen, "its PT_INTERP is not a path in the file");
			e->has_interp = true;
		}
	}
	if (!e->has_dynamic)
		return 1;
	struct dyn_info d = {0};
	if (read_dynamic(r, e, &dyn, &d, why, whylen) < 0 ||
	    dyn_strings(r, e, loads, n_loads, &d, why, whylen) < 0)
		return -1;
	return 1;
}

int pf_elf_parse_buf(const void *buf, size_t len, struct pf_elf *e, char *why, size_t whylen)
{
	struct buf_src b = {buf, len};
	struct pf_reader r = {buf_read, &b};
	return pf_elf_parse(&r, e, why, whylen);
}

const char *pf_elf_needed(const struct pf_elf *e, size_t i)
{
	return e->names + e->needed[i];
}

int pf_shebang(const char *buf, size_t len, char *interp, size_t interplen)
{
	if (len < 2 || buf[0] != '#' || buf[1] != '!')
		return 0;
	size_t i = 2, n = 0;
	while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
		i++;
	while (i < len && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != 0) {
		if (n + 1 >= interplen)
			return -1;
		interp[n++] = buf[i++];
	}
	interp[n] = 0;
	return n ? 1 : -1;
}

/* ---- ld.so.cache -------------------------------------------------------------- */

#define CACHE_NEW "glibc-ld.so.cache1.1"
#define CACHE_OLD "ld.so-1.7.0"

const char *pf_cache_next(const uint8_t *c, size_t len, const char *name, size_t *i, size_t *budget)
{
	size_t base = 0, nlen = strlen(name);
	if (!c)
		return NULL;
	if (len >= 16 && !memcmp(c, CACHE_OLD, sizeof(CACHE_OLD) - 1)) {
		uint32_t nold;
		memcpy(&nold, c + 12, 4);
		if (nold > len / 12)
			return NULL;
		base = (16 + (size_t)nold * 12 + 7) & ~(size_t)7;
	}
	if (base > len || len - base < 48 || memcmp(c + base, CACHE_NEW, sizeof(CACHE_NEW) - 1))
		return NULL;
	uint32_t nlibs;
	memcpy(&nlibs, c + base + 20, 4);
	if (nlibs > (len - base - 48) / 24)
		return NULL;
	size_t room = len - base;
	for (; *i<nlibs && * budget> 0; (*i)++, (*budget)--) {
		const uint8_t *ent = c + base + 48 + *i * 24;
		uint32_t key, value;
		memcpy(&key, ent + 4, 4);
		memcpy(&value, ent + 8, 4);
		/* offsets from the new header (the start of a new-only file); the
		 * name compared with its NUL, the path's NUL looked for within
		 * PATH_MAX: no scan over the file per entry */
		if (key >= room || value >= room || room - key <= nlen ||
		    memcmp(c + base + key, name, nlen + 1))
			continue;
		const char *v = (const char *)c + base + value;
		size_t vroom = room - value < PATH_MAX ? room - value : PATH_MAX;
		if (!memchr(v, 0, vroom))
			continue;
		(*i)++;
		(*budget)--;
		return v;
	}
	return NULL;
}
