/* Unit tests of the preflight (broker/preflight.c): the ELF reader on
 * crafted buffers, sound and hostile (truncated at every length, offsets
 * that overflow or point outside, strings without their NUL); the #! line;
 * an ld.so.cache (hostile counts and offsets, a work budget);
 * the virtual resolver on a temporary tree (binds, symlink entries, tmpfs,
 * symlinks inside a bind source, relative, absolute, escaping, looping);
 * and pst_preflight() on a policy over that tree. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/preflight.h"

/* ---- crafted ELF files ------------------------------------------------------ */

/* A 64-bit little-endian ET_DYN: the header, four program headers (a
 * PT_LOAD over the whole file, PT_INTERP, PT_DYNAMIC), the interpreter,
 * the dynamic section (DT_NEEDED x2, DT_RUNPATH, DT_STRTAB, DT_STRSZ,
 * DT_NULL) and the string table. Offsets of its parts in *off. */
struct crafted {
	uint8_t b[1024];
	size_t len;
	size_t phoff, interp, dyn, str;
};

static void put(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void craft(struct crafted *c)
{
	static const char strtab[] = "\0libfoo.so.1\0libbar.so.2\0$ORIGIN/../lib";
	static const char interp[] = "/lib64/ld-linux-x86-64.so.2";
	memset(c, 0, sizeof(*c));
	uint8_t *b = c->b;
	c->phoff = 64;
	c->interp = c->phoff + 3 * 56;
	c->dyn = c->interp + sizeof(interp);
	c->dyn = (c->dyn + 7) & ~(size_t)7;
	c->str = c->dyn + 6 * 16;
	c->len = c->str + sizeof(strtab);
	memcpy(b, ELFMAG, SELFMAG);
	b[EI_CLASS] = ELFCLASS64;
	b[EI_DATA] = ELFDATA2LSB;
	b[EI_VERSION] = EV_CURRENT;
	put(b + 16, ET_DYN, 2);
	put(b + 18, EM_X86_64, 2);
	put(b + 32, c->phoff, 8);
	put(b + 54, 56, 2);
	put(b + 56, 3, 2);
	uint8_t *ph = b + c->phoff;
	put(ph, PT_LOAD, 4);
	put(ph + 8, 0, 8);
	put(ph + 16, 0x1000, 8); /* vaddr 0x1000 = offset 0 */
	put(ph + 32, c->len, 8);
	ph += 56;
	put(ph, PT_INTERP, 4);
	put(ph + 8, c->interp, 8);
	put(ph + 32, sizeof(interp), 8);
	ph += 56;
	put(ph, PT_DYNAMIC, 4);
	put(ph + 8, c->dyn, 8);
	put(ph + 32, 6 * 16, 8);
	memcpy(b + c->interp, interp, sizeof(interp));
	uint8_t *d = b + c->dyn;
	uint64_t dyn[][2] = {{DT_NEEDED, 1},
	                     {DT_NEEDED, 13},
	                     {DT_RUNPATH, 25},
	                     {DT_STRTAB, 0x1000 + c->str},
	                     {DT_STRSZ, sizeof(strtab)},
	                     {DT_NULL, 0}};
	for (size_t i = 0; i < 6; i++) {
		put(d + 16 * i, dyn[i][0], 8);
		put(d + 16 * i + 8, dyn[i][1], 8);
	}
	memcpy(b + c->str, strtab, sizeof(strtab));
}

static int parse(const struct crafted *c, struct pf_elf *e, char *why)
{
	return pf_elf_parse_buf(c->b, c->len, e, why, 128);
}

static void test_elf_sound(void **state)
{
	(void)state;
	static struct crafted c;
	static struct pf_elf e;
	char why[128] = "";
	craft(&c);
	assert_int_equal(parse(&c, &e, why), 1);
	assert_true(e.has_interp);
	assert_string_equal(e.interp, "/lib64/ld-linux-x86-64.so.2");
	assert_int_equal(e.n_needed, 2);
	assert_string_equal(pf_elf_needed(&e, 0), "libfoo.so.1");
	assert_string_equal(pf_elf_needed(&e, 1), "libbar.so.2");
	assert_true(e.has_runpath);
	assert_string_equal(e.runpath, "$ORIGIN/../lib");
	assert_int_equal(e.machine, EM_X86_64);
	assert_int_equal(e.cls, ELFCLASS64);
}

/* Cut at every length: never read past the end, never succeed on a
 * header or program header that is not all there. */
static void test_elf_truncated(void **state)
{
	(void)state;
	static struct crafted c;
	static struct pf_elf e;
	char why[128];
	craft(&c);
	for (size_t n = 0; n < c.len; n++) {
		/* a copy of exactly n bytes on the heap: ASan sees a read past it */
		uint8_t *cut = malloc(n ? n : 1);
		assert_non_null(cut);
		memcpy(cut, c.b, n);
		int r = pf_elf_parse_buf(cut, n, &e, why, sizeof(why));
		free(cut);
		if (n < 4)
			assert_int_equal(r, 0);
		else if (n < c.interp + 28) /* up to the end of the interpreter */
			assert_int_equal(r, -1);
		else
			assert_true(r == -1 || r == 1);
		if (r == 1) /* what it took is whole */
			assert_string_equal(e.interp, "/lib64/ld-linux-x86-64.so.2");
	}
}

static void expect_bad(struct crafted *c, const char *want)
{
	static struct pf_elf e;
	char why[128] = "";
	assert_int_equal(parse(c, &e, why), -1);
	if (!strstr(why, want))
		fprintf(stderr, "why: %s, want: %s\n", why, want);
	assert_non_null(strstr(why, want));
}

static void test_elf_hostile(void **state)
{
	(void)state;
	static struct crafted c;
	/* program headers far away, or wrapping around */
	craft(&c);
	put(c.b + 32, UINT64_MAX - 8, 8);
	expect_bad(&c, "program headers lie outside");
	craft(&c);
	put(c.b + 56, 0xffff, 2);
	expect_bad(&c, "too many");
	craft(&c);
	put(c.b + 56, 0, 2);
	expect_bad(&c, "no program headers");
	craft(&c);
	put(c.b + 54, 64, 2);
	expect_bad(&c, "program header size");
	/* PT_INTERP: huge, outside, without its NUL */
	craft(&c);
	put(c.b + c.phoff + 56 + 32, UINT64_MAX, 8);
	expect_bad(&c, "PT_INTERP");
	craft(&c);
	put(c.b + c.phoff + 56 + 8, UINT64_MAX - 4, 8);
	expect_bad(&c, "PT_INTERP");
	craft(&c);
	c.b[c.interp + 27] = 'x';
	expect_bad(&c, "PT_INTERP");
	/* the dynamic section outside the file */
	craft(&c);
	put(c.b + c.phoff + 112 + 8, UINT64_MAX - 15, 8);
	expect_bad(&c, "dynamic section");
	/* a DT_NEEDED name past the string table, or the table nowhere */
	craft(&c);
	put(c.b + c.dyn + 8, 1u << 30, 8);
	expect_bad(&c, "DT_NEEDED");
	craft(&c);
	put(c.b + c.dyn + 3 * 16 + 8, 0xdead0000, 8);
	expect_bad(&c, "DT_STRTAB");
	/* a string table whose last string has no NUL within DT_STRSZ */
	craft(&c);
	put(c.b + c.dyn + 4 * 16 + 8, 30, 8);
	expect_bad(&c, "DT_RUNPATH");
	/* neither class nor an executable type */
	craft(&c);
	c.b[EI_CLASS] = 7;
	expect_bad(&c, "class");
	craft(&c);
	put(c.b + 16, ET_REL, 2);
	expect_bad(&c, "e_type");
	/* not ELF at all */
	static struct pf_elf e;
	char why[128];
	assert_int_equal(pf_elf_parse_buf("#!/bin/sh\n", 10, &e, why, sizeof(why)), 0);
	assert_int_equal(pf_elf_parse_buf("", 0, &e, why, sizeof(why)), 0);
}

/* 32-bit big-endian, with only PT_INTERP. */
static void test_elf_be32(void **state)
{
	(void)state;
	uint8_t b[200] = {0};
	static struct pf_elf e;
	char why[128];
	memcpy(b, ELFMAG, SELFMAG);
	b[EI_CLASS] = ELFCLASS32;
	b[EI_DATA] = ELFDATA2MSB;
	b[17] = ET_EXEC;
	b[19] = EM_PPC;
	b[31] = 52; /* e_phoff */
	b[43] = 32; /* e_phentsize */
	b[45] = 1;  /* e_phnum */
	b[52 + 3] = PT_INTERP;
	b[52 + 7] = 100; /* p_offset */
	b[52 + 19] = 8;  /* p_filesz */
	memcpy(b + 100, "/lib/ld", 8);
	assert_int_equal(pf_elf_parse_buf(b, sizeof(b), &e, why, sizeof(why)), 1);
	assert_string_equal(e.interp, "/lib/ld");
	assert_int_equal(e.machine, EM_PPC);
	assert_false(e.has_dynamic);
}

/* A real program of this system: /usr/bin/cat, read whole. */
static void test_elf_real(void **state)
{
	(void)state;
	int fd = open("/usr/bin/cat", O_RDONLY);
	if (fd < 0)
		skip();
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	static struct pf_elf e;
	char why[128];
	assert_int_equal(pf_elf_parse_buf(buf, (size_t)st.st_size, &e, why, sizeof(why)), 1);
	free(buf);
	assert_true(e.has_interp);
	bool libc = false;
	for (size_t i = 0; i < e.n_needed; i++)
		libc |= !strcmp(pf_elf_needed(&e, i), "libc.so.6");
	assert_true(libc);
}

static void test_shebang(void **state)
{
	(void)state;
	char in[64];
	assert_int_equal(pf_shebang("#!/bin/sh -e\n", 13, in, sizeof(in)), 1);
	assert_string_equal(in, "/bin/sh");
	assert_int_equal(pf_shebang("#! \t/usr/bin/env python3\n", 25, in, sizeof(in)), 1);
	assert_string_equal(in, "/usr/bin/env");
	assert_int_equal(pf_shebang("#!\n", 3, in, sizeof(in)), -1);
	assert_int_equal(pf_shebang("#!", 2, in, sizeof(in)), -1);
	assert_int_equal(pf_shebang("\x7f"
	                            "ELF",
	                            4, in, sizeof(in)),
	                 0);
	/* longer than the room: refused, not cut */
	assert_int_equal(pf_shebang("#!/aaaaaaaaaaaaaaaa", 19, in, 8), -1);
	/* no NUL needed: only len bytes are looked at */
	char raw[5] = {'#', '!', '/', 'x', 'y'};
	assert_int_equal(pf_shebang(raw, 4, in, sizeof(in)), 1);
	assert_string_equal(in, "/x");
}

/* ---- ld.so.cache ------------------------------------------------------------------ */

/* A new-format cache: four entries (two for libfoo.so.1, one whose key is
 * out of range, one for libfoo.so.1 whose path runs off the end), and the
 * name libbar.so.2 at the end without its NUL. */
static size_t craft_cache(uint8_t *b, size_t cap)
{
	static const char str[] =
	    "libfoo.so.1\0/opt/a/libfoo.so.1\0/opt/b/libfoo.so.1\0libbar.so.2";
	size_t strs = 48 + 4 * 24, len = strs + sizeof(str) - 1; /* no NUL at the very end */
	assert_true(len + 8 <= cap);
	memset(b, 0, cap);
	memcpy(b, "glibc-ld.so.cache1.1", 20);
	put(b + 20, 4, 4);
	uint32_t ents[4][2] = {{0, 12}, {0, 31}, {0xfffffff0u, 12}, {50, 60}};
	for (size_t i = 0; i < 4; i++) {
		put(b + 48 + 24 * i, 0x303, 4);
		put(b + 48 + 24 * i + 4, ents[i][0] == 0xfffffff0u ? ents[i][0] : strs + ents[i][0],
		    4);
		put(b + 48 + 24 * i + 8, strs + ents[i][1], 4);
	}
	memcpy(b + strs, str, sizeof(str) - 1);
	/* a fourth for libfoo.so.1, whose path (the last byte) has no NUL */
	put(b + 48 + 3 * 24 + 4, strs, 4);
	put(b + 48 + 3 * 24 + 8, len - 1, 4);
	return len;
}

static void test_cache(void **state)
{
	(void)state;
	uint8_t b[512];
	size_t len = craft_cache(b, sizeof(b)), i = 0, budget = 100;
	const char *v = pf_cache_next(b, len, "libfoo.so.1", &i, &budget);
	assert_non_null(v);
	assert_string_equal(v, "/opt/a/libfoo.so.1");
	v = pf_cache_next(b, len, "libfoo.so.1", &i, &budget);
	assert_non_null(v);
	assert_string_equal(v, "/opt/b/libfoo.so.1");
	assert_null(pf_cache_next(b, len, "libfoo.so.1", &i, &budget));
	/* a name that is a prefix of a key, or one without its NUL */
	i = 0;
	assert_null(pf_cache_next(b, len, "libfoo.so", &i, &budget));
	i = 0;
	assert_null(pf_cache_next(b, len, "libbar.so.2", &i, &budget));
	/* the budget: one entry looked at, then none */
	i = 0;
	budget = 1;
	assert_non_null(pf_cache_next(b, len, "libfoo.so.1", &i, &budget));
	assert_int_equal(budget, 0);
	assert_null(pf_cache_next(b, len, "libfoo.so.1", &i, &budget));
	/* more entries than the file holds */
	put(b + 20, 0x7fffffff, 4);
	i = 0, budget = 100;
	assert_null(pf_cache_next(b, len, "libfoo.so.1", &i, &budget));
	/* cut at every length: never a read past it */
	len = craft_cache(b, sizeof(b));
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		assert_non_null(cut);
		memcpy(cut, b, n);
		i = 0, budget = 100;
		while ((v = pf_cache_next(cut, n, "libfoo.so.1", &i, &budget)))
			assert_true(strlen(v) < PATH_MAX);
		free(cut);
	}
	/* the old format in front: the new header after its entries */
	uint8_t o[600] = {0};
	memcpy(o, "ld.so-1.7.0", 11);
	put(o + 12, 1, 4);
	size_t base = (16 + 12 + 7) & ~(size_t)7;
	len = craft_cache(b, sizeof(b));
	memcpy(o + base, b, len);
	i = 0, budget = 100;
	v = pf_cache_next(o, base + len, "libfoo.so.1", &i, &budget);
	assert_non_null(v);
	assert_string_equal(v, "/opt/a/libfoo.so.1");
}

/* ---- the virtual root ------------------------------------------------------------ */

static char tree[64];

static void mk(const char *rel, const char *content)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	chmod(p, 0755);
}

static void mkd(const char *rel, mode_t mode)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	assert_int_equal(mkdir(p, mode), 0);
	chmod(p, mode);
}

static void ln(const char *target, const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	assert_int_equal(symlink(target, p), 0);
}

static int tree_setup(void **state)
{
	(void)state;
	snprintf(tree, sizeof(tree), "/tmp/pst-preflight.XXXXXX");
	if (!mkdtemp(tree))
		return -1;
	chmod(tree, 0755);
	mkd("usr", 0755);
	mkd("usr/bin", 0755);
	mkd("usr/lib", 0755);
	mkd("usr/secret", 0700);
	mk("usr/bin/prog", "x");
	mk("usr/lib/libx.so", "x");
	mk("usr/secret/f", "x");
	mk("usr/bin/script", "#!/bin/sh\n");
	mk("usr/bin/lost", "#!/nowhere/sh\n");
	ln("../lib/libx.so", "usr/bin/rel");
	ln("/usr/lib/libx.so", "usr/bin/abs");
	ln("/etc/passwd", "usr/bin/escape");
	ln("../../../../../../../etc/passwd", "usr/bin/dotdot");
	ln("loop", "usr/bin/loop");
	ln("/lib64/libx.so", "usr/bin/via");
	return 0;
}

static int tree_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
	return system(cmd) == 0 ? 0 : -1;
}

static struct pst_fs fs[6];
static char usr[128];

static struct pf_root root_of(void)
{
	snprintf(usr, sizeof(usr), "%s/usr", tree);
	fs[0] = (struct pst_fs){.kind = PST_FS_BIND, .src = usr, .dst = "/usr"};
	fs[1] = (struct pst_fs){.kind = PST_FS_SYMLINK, .dst = "/lib64", .target = "usr/lib"};
	fs[2] = (struct pst_fs){.kind = PST_FS_TMPFS, .dst = "/tmp"};
	fs[3] = (struct pst_fs){.kind = PST_FS_BIND, .src = usr, .dst = "/opt/deep/usr"};
	/* mounted into the tmpfs above (make install's policies under a
	 * PREFIX in /tmp), and a tmpfs over the root's own /dev */
	fs[4] = (struct pst_fs){.kind = PST_FS_BIND, .src = usr, .dst = "/tmp/pfx/usr"};
	fs[5] = (struct pst_fs){.kind = PST_FS_TMPFS, .dst = "/dev/shm"};
	/* a uid of nobody's: the tree is root's, or the test user's */
	return (struct pf_root){.fs = fs, .n_fs = 6, .uid = 4000123, .gid = 4000123};
}

static void expect_host(const char *path, const char *rel)
{
	struct pf_root r = root_of();
	static struct pf_res res;
	char want[256];
	pf_resolve(&r, path, true, &res);
	if (res.err)
		fprintf(stderr, "%s: %s at %s\n", path, strerror(res.err), res.at);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.kind, PF_HOST);
	snprintf(want, sizeof(want), "%s/%s", tree, rel);
	assert_string_equal(res.host, want);
}

static void expect_err(const char *path, int err, const char *at)
{
	struct pf_root r = root_of();
	static struct pf_res res;
	pf_resolve(&r, path, true, &res);
	if (res.err != err)
		fprintf(stderr, "%s: got %s at %s (host %s)\n", path, strerror(res.err), res.at,
		        res.host);
	assert_int_equal(res.err, err);
	if (at)
		assert_string_equal(res.at, at);
}

static void test_resolve(void **state)
{
	(void)state;
	expect_host("/usr/bin/prog", "usr/bin/prog");
	expect_host("/usr//bin/./prog", "usr/bin/prog");
	expect_host("/usr/bin/rel", "usr/lib/libx.so");   /* relative link */
	expect_host("/usr/bin/abs", "usr/lib/libx.so");   /* absolute: from the root */
	expect_host("/lib64/libx.so", "usr/lib/libx.so"); /* a symlink entry */
	expect_host("/usr/bin/via", "usr/lib/libx.so");   /* a link through the entry */
	expect_host("/opt/deep/usr/bin/prog", "usr/bin/prog");
	expect_host("/tmp/pfx/usr/bin/prog", "usr/bin/prog"); /* through the tmpfs */
	expect_host("/usr/bin/../lib/libx.so", "usr/lib/libx.so");
	/* never the host's /etc/passwd: the root has no /etc */
	expect_err("/usr/bin/escape", ENOENT, "/etc");
	expect_err("/usr/bin/dotdot", ENOENT, "/etc");
	expect_err("/usr/bin/loop", ELOOP, NULL);
	expect_err("/usr/bin/none", ENOENT, "/usr/bin/none");
	expect_err("/opt/other", ENOENT, "/opt/other");
	expect_err("/tmp/x", ENOENT, "/tmp/x"); /* a tmpfs is empty at the start */
	expect_err("/tmp/pfx/x", ENOENT, "/tmp/pfx/x");
	expect_err("/dev/shm/x", ENOENT, "/dev/shm/x");
	expect_err("/usr/bin/prog/x", ENOTDIR, NULL);
	expect_err("/usr/secret/f", EACCES, "/usr/secret"); /* 0700, not the uid's */

	struct pf_root r = root_of();
	static struct pf_res res;
	pf_resolve(&r, "/tmp", true, &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.kind, PF_TMPFS);
	pf_resolve(&r, "/opt", true, &res); /* a mount point's parent */
	assert_int_equal(res.kind, PF_ROOTDIR);
	assert_true(res.dir);
	pf_resolve(&r, "/dev/null", true, &res);
	assert_int_equal(res.kind, PF_VIRTUAL);
	pf_resolve(&r, "/dev/shm", true, &res);
	assert_int_equal(res.kind, PF_TMPFS);
	pf_resolve(&r, "/lib64", false, &res); /* the link itself */
	assert_int_equal(res.err, 0);
	assert_string_equal(res.spath, "/lib64");
	/* identity_files */
	pf_resolve(&r, "/etc/passwd", true, &res);
	assert_int_equal(res.err, ENOENT);
	r.identity_files = true;
	pf_resolve(&r, "/etc/passwd", true, &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.kind, PF_VIRTUAL);
}

/* ---- pst_preflight() on a policy ------------------------------------------------ */

static void test_preflight_policy(void **state)
{
	(void)state;
	char json[2048];
	snprintf(
	    json, sizeof(json),
	    "{ \"postern\": 1, \"sandboxes\": {"
	    " \"a\": { \"trigger\": { \"listen\": [\"127.0.0.1:7000\"] }, \"exec\": "
	    "[\"/usr/bin/lost\"], \"filesystem\": [ { \"bind\": \"%s/usr\", \"to\": \"/usr\" } ] },"
	    " \"b\": { \"trigger\": { \"listen\": [\"127.0.0.1:7001\"] }, \"exec\": "
	    "[\"/usr/bin/nothere\"], \"filesystem\": [ { \"bind\": \"%s/usr\", \"to\": \"/usr\" }, "
	    "{ \"bind\": "
	    "\"%s/gone\", \"to\": \"/g\" } ] },"
	    " \"c\": { \"trigger\": { \"listen\": [\"127.0.0.1:7002\"] }, \"exec\": "
	    "[\"/usr/bin/prog\"], \"filesystem\": [ { \"bind\": \"%s/usr\", \"to\": \"/usr\" } ] } "
	    "} }",
	    tree, tree, tree, tree);
	struct pst_policy *p = NULL;
	struct pst_diag d = {0};
	assert_int_equal(pst_policy_parse("t.json", json, strlen(json), &p, &d), 0);
	size_t n = pst_preflight(p, &d);
	const char *want[] = {
	    "t.json: sandboxes.a.exec[0]: \"/usr/bin/lost\": its interpreter /nowhere/sh (#!) is "
	    "not inside the sandbox's root: /nowhere does not exist there",
	    "t.json: sandboxes.b.filesystem[1].bind: ",
	    "t.json: sandboxes.b.exec[0]: \"/usr/bin/nothere\": not found in the sandbox's root",
	    "t.json: sandboxes.c.exec[0]: \"/usr/bin/prog\": is neither an ELF program nor a "
	    "\"#!\" script",
	};
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "  %s\n", d.msgs[i]);
	assert_int_equal(n, 4);
	assert_int_equal(d.n, 4);
	for (size_t i = 0; i < 4; i++)
		assert_non_null(strstr(d.msgs[i], want[i]));
	assert_non_null(strstr(d.msgs[1], "does not exist on the host"));
	pst_diag_free(&d);
	pst_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_elf_sound),
	    cmocka_unit_test(test_elf_truncated),
	    cmocka_unit_test(test_elf_hostile),
	    cmocka_unit_test(test_elf_be32),
	    cmocka_unit_test(test_elf_real),
	    cmocka_unit_test(test_shebang),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_resolve),
	    cmocka_unit_test(test_preflight_policy),
	};
	return cmocka_run_group_tests(tests, tree_setup, tree_teardown);
}
