/* SPDX-License-Identifier: MIT */
/*
 * The preflight (preflight.c): what a loaded policy needs from the host,
 * checked without building a root or running anything. Its pieces are
 * declared here for the unit tests and the fuzzer: an ELF reader over a
 * buffer or an fd, and the virtual resolver of a sandbox's root.
 */
#ifndef POSTERN_BROKER_PREFLIGHT_H
#define POSTERN_BROKER_PREFLIGHT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/broker.h"

/* Every problem of every sandbox of p as one line in diag (the policy's
 * "FILE: PATH: VALUE: message" style); returns how many. Needs to read
 * what the handlers would run (root may, a user may not). */
size_t pst_preflight(const struct pst_policy *p, struct pst_diag *diag);

/* ---- ELF ------------------------------------------------------------------ */

#define PF_NEEDED_MAX 128 /* DT_NEEDED entries taken from one object */
#define PF_NAMES_MAX 8192 /* bytes of their names, NUL-separated */
#define PF_STR_MAX 4096   /* one string: PT_INTERP, DT_RUNPATH, DT_RPATH */
#define PF_PHNUM_MAX 512  /* program headers read */
#define PF_DYN_MAX 8192   /* dynamic entries read */

struct pf_elf {
	unsigned cls;     /* 1: ELFCLASS32, 2: ELFCLASS64 */
	bool be;          /* big-endian */
	uint16_t type;    /* ET_EXEC, ET_DYN */
	uint16_t machine; /* EM_X86_64, ... */
	bool has_interp;
	char interp[PF_STR_MAX];
	bool has_dynamic;
	bool has_runpath, has_rpath;
	char runpath[PF_STR_MAX];
	char rpath[PF_STR_MAX];
	size_t n_needed;
	uint32_t needed[PF_NEEDED_MAX]; /* offsets into names */
	char names[PF_NAMES_MAX];
	size_t names_len;
};

/* Reads n bytes at off into buf: 0, or -1 if they are not all there. */
struct pf_reader {
	int (*read)(void *ctx, uint64_t off, void *buf, size_t n);
	void *ctx;
};

/* A pf_reader over an open file: ctx points at its fd (pread()). */
int pf_fd_read(void *ctx, uint64_t off, void *buf, size_t n);

/* 1: an ELF file, *e filled in; 0: not ELF (no \x7fELF magic); -1: a
 * malformed one, why says what. Every offset and size the file gives is
 * checked against what can be read; nothing it says is trusted. */
int pf_elf_parse(const struct pf_reader *r, struct pf_elf *e, char *why, size_t whylen);
int pf_elf_parse_buf(const void *buf, size_t len, struct pf_elf *e, char *why, size_t whylen);
const char *pf_elf_needed(const struct pf_elf *e, size_t i);

/* A "#!" line (the first up to 256 bytes of a file, len of them): 1 and
 * its interpreter in interp, 0 when buf is no "#!" line, -1 when it names
 * none. */
int pf_shebang(const char *buf, size_t len, char *interp, size_t interplen);

/* The paths an ld.so.cache (len bytes at c; the "glibc-ld.so.cache1.1"
 * format, alone or after the old one) gives for a library name, one a
 * call: start with *i = 0; NULL when there are no more. Each entry looked
 * at takes one of *budget; none are looked at once it is 0. Offsets and
 * counts are checked against len; a path is NUL-terminated within PATH_MAX. */
const char *pf_cache_next(const uint8_t *c, size_t len, const char *name, size_t *i,
                          size_t *budget);

/* ---- the virtual root ---------------------------------------------------------- */

/* A sandbox's root as the handler sees it: an empty tmpfs, the filesystem
 * entries in order (a later one over an earlier one), then /dev; files
 * the root gets of its own (identity_files, the warm preload). */
struct pf_root {
	const struct pst_fs *fs;
	size_t n_fs;
	bool identity_files;
	uid_t uid; /* whose search permission directories need */
	gid_t gid;
};

enum pf_kind {
	PF_ROOTDIR = 1, /* a directory of the root's own tmpfs (a mount point's parent) */
	PF_HOST,        /* a host file or directory, through a bind */
	PF_TMPFS,       /* a tmpfs or proc entry's own directory */
	PF_VIRTUAL,     /* under /dev, /proc, or a file the root gets of its own */
};

#define PF_SYMLINKS_MAX 40

struct pf_res {
	int err;           /* 0, or ENOENT, ENOTDIR, ELOOP, EACCES, ENAMETOOLONG */
	enum pf_kind kind; /* err == 0 */
	bool dir;          /* err == 0: a directory */
	bool reg;  /* err == 0: a regular file (PF_HOST: as lstat saw it; only those are opened, no
	              FIFO nor device) */
	int entry; /* the filesystem entry it is in, or -1 */
	char host[PATH_MAX];  /* PF_HOST: the host path (no symlink in it, but maybe the
	                       * bind source's own components above) */
	char spath[PATH_MAX]; /* the path inside the root, symlinks resolved */
	char at[PATH_MAX];    /* err: the path inside the root where it failed */
};

/* Resolves path (absolute) inside the root as the kernel would for the
 * handler: symlinks found in bind sources followed inside the root (an
 * absolute target from the root, at most PF_SYMLINKS_MAX), the last
 * component too when follow. Never a host path outside the binds. */
void pf_resolve(const struct pf_root *root, const char *path, bool follow, struct pf_res *out);

#endif
