# postern — build, test, demo, bench.
#
#   make            build build/postern and build/examples/*
#   make deps       install missing Debian packages (apt-get)
#   make lint       every C source formatted as .clang-format says
#   make tsan       tests/helpers/spawn-stress under ThreadSanitizer
#   make test       lint, unit tests, sanitizer unit tests, tsan, integration tests, the
#                   broker's integration tests again with an ASan+UBSan
#                   broker (make integration-asan), and last the cgroup v2
#                   tier (make test-cgroup2)
#   make test-cgroup2
#                   the integration tests that touch cgroups, in a QEMU VM
#                   booted on a cgroup v2-only kernel (Debian's, fetched with
#                   apt-get into build/vm/, never installed), twice: the
#                   brokers in the root cgroup, then each in a systemd-like
#                   service cgroup. PST_VM_TESTS="t_check t_sandbox" runs a
#                   subset; how it works: tests/vm/run.sh
#   make demo       the echo demo, inside a throwaway network namespace
#   make bench      benchmarks (tests/bench)
#   make fuzz       libFuzzer on the policy loader, bounded in time
#   make man-lint   the man pages (man/) through mandoc -Tlint, any warning fails
#   make install    PREFIX=/usr/local SYSCONFDIR=/etc DESTDIR= (tools/install.sh
#                   says what goes where); make uninstall removes it again
#
# Sources are found by wildcard: a new .c file in a module folder is built
# without touching this file.

PREFIX  ?= /usr/local
# the default policy of `postern run` is SYSCONFDIR/postern/postern.json
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
VERSION := $(shell sed -n 's/^\#define PST_VERSION "\(.*\)"/\1/p' broker/broker.h)
BUILD   ?= build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
# CFLAGS and LDFLAGS are the caller's (make CFLAGS=-O2 works): what postern
# needs is added to them below, never replaced by them
CFLAGS  ?= $(OPT)

PKGS        := libuv libnftnl libmnl libseccomp libcjson
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# postern top's terminal (broker/cli_top.c): the postern binary alone links it
CURSES_CFLAGS := $(shell pkg-config --cflags ncursesw 2>/dev/null)
CURSES_LIBS   := $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncurses)

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wformat=2 -Wvla
CPPFLAGS += -D_GNU_SOURCE -I.
# a root daemon: stack protector, fortified libc calls (not with the
# sanitizers, which replace them), PIE, RELRO and immediate binding
HARDEN_CFLAGS  := -fstack-protector-strong -fPIE $(if $(SAN),,-D_FORTIFY_SOURCE=3)
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack
ALL_CFLAGS  = -std=c11 $(WARN) -fno-strict-aliasing $(HARDEN_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) \
	$(SAN) $(EXTRA_CFLAGS)
ALL_LDFLAGS = $(HARDEN_LDFLAGS) $(LDFLAGS) $(SAN)
DEPFLAGS  = -MMD -MP

# Debian packages the project needs to build, test, demo and bench.
DEBS := build-essential pkg-config libuv1-dev libnftnl-dev libmnl-dev \
	libseccomp-dev libcjson-dev libcmocka-dev nftables iproute2 \
	clang clang-format libclang-rt-14-dev ucspi-tcp jq \
	qemu-system-x86 busybox-static cpio kmod libncurses-dev tmux mandoc strace

# what only the postern binary has (the CLI's entry and top's terminal):
# the library, the tests and the helpers link without ncurses
BIN_SRCS  := broker/main.c broker/cli_top.c
BIN_OBJS  := $(BIN_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_SRCS  := $(filter-out $(BIN_SRCS),$(wildcard broker/*.c netpolicy/*.c sandbox/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/warm_blob.o $(BUILD)/obj/warm_so_blob.o
WARM_BIN  := $(BUILD)/postern-warm
WARM_SO   := $(BUILD)/postern-warm.so
LIB       := $(BUILD)/libpostern.a
POSTERN   := $(BUILD)/postern

EXLIB_SRCS := $(wildcard examples/lib/*.c)
EXLIB_OBJS := $(EXLIB_SRCS:%.c=$(BUILD)/obj/%.o)
EXLIB      := $(BUILD)/libpostern-handler.a
EXAMPLES   := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
# for the tests: a handler postern-warm.so cannot be preloaded into
STATIC_EXAMPLES := $(BUILD)/examples/confine-static

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
HELPERS    := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,\
	$(filter-out tests/helpers/shim_%.c,$(wildcard tests/helpers/*.c)))
# preloaded into the broker by a test (LD_PRELOAD): tests/helpers/shim_*.c
SHIMS      := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%.so,$(wildcard tests/helpers/shim_*.c))
BENCHES    := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(wildcard tests/bench/*.c))

.SECONDARY:

.PHONY: all deps test lint man-lint unit unit-asan tsan integration integration-asan test-cgroup2 \
	demo bench fuzz install uninstall clean check-policies promtool FORCE

all: $(POSTERN) $(EXAMPLES) $(STATIC_EXAMPLES) $(HELPERS) $(SHIMS) $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(DEPFLAGS) -c $< -o $@

# SYSCONFDIR is compiled into `postern run` (its default policy); the
# stamp changes, and cli_run.o is rebuilt, only when SYSCONFDIR does.
SYSCONF_STAMP := $(BUILD)/sysconfdir.stamp
$(SYSCONF_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(SYSCONFDIR)' | cmp -s - $@ || echo '$(SYSCONFDIR)' >$@
$(BUILD)/obj/broker/cli_run.o: $(SYSCONF_STAMP)
$(BUILD)/obj/broker/cli_run.o: CPPFLAGS += -DPST_SYSCONFDIR='"$(SYSCONFDIR)"'

# What pre-warmed handlers wait in, embedded in the library: postern-warm,
# static and tiny (sandbox.c loads it into a sealed memfd), and
# postern-warm.so, preloaded into the handler itself (written into its root):
# no libc at link time, every symbol bound at load. Never sanitized: they
# run inside the sandbox, with /usr alone or nothing at all.
WARM_HDRS := sandbox/warm.h sandbox/waiter/warm_wait.h

$(WARM_BIN): sandbox/waiter/postern-warm.c $(WARM_HDRS)
	@mkdir -p $(@D)
	$(CC) -std=c11 -Os -static $(WARN) -D_GNU_SOURCE -I. $< -o $@

$(WARM_SO): sandbox/waiter/postern-warm-preload.c $(WARM_HDRS)
	@mkdir -p $(@D)
	$(CC) -std=c11 -Os -shared -fPIC -fvisibility=hidden -fno-stack-protector -nostdlib \
		-Wl,-z,now -Wl,-z,noexecstack -s $(WARN) -D_GNU_SOURCE -I. $< -o $@

# blob(SYMBOL,FILE): an object with FILE's bytes between SYMBOL and SYMBOL_end
blob = printf '.section .rodata\n.global $(1), $(1)_end\n.balign 16\n$(1):\n.incbin "%s"\n$(1)_end:\n.section .note.GNU-stack,"",@progbits\n' \
	"$(abspath $(2))" | $(CC) -c -x assembler - -o $@

$(BUILD)/obj/warm_blob.o: $(WARM_BIN)
	@mkdir -p $(@D)
	$(call blob,pst_warm_blob,$<)

$(BUILD)/obj/warm_so_blob.o: $(WARM_SO)
	@mkdir -p $(@D)
	$(call blob,pst_warm_so_blob,$<)

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(EXLIB): $(EXLIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/broker/cli_top.o: CPPFLAGS += $(CURSES_CFLAGS)

$(POSTERN): $(BIN_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ $(PKG_LIBS) $(CURSES_LIBS) -o $@

# Handler programs: libc only, so they run in a root that binds /usr alone.
$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(EXLIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

$(BUILD)/examples/%-static: $(BUILD)/obj/examples/%.o $(EXLIB)
	@mkdir -p $(@D)
	$(CC) $(filter-out -pie,$(ALL_LDFLAGS)) -static $^ -o $@

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ $(PKG_LIBS) $(CMOCKA_LIBS) -o $@

$(BUILD)/tests/helpers/%: $(BUILD)/obj/tests/helpers/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ $(PKG_LIBS) -o $@

$(BUILD)/tests/helpers/shim_%.so: tests/helpers/shim_%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=c11 $(WARN) -O2 -shared -fPIC $< -ldl -o $@

$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ $(PKG_LIBS) -lm -o $@

deps:
	@missing=; for p in $(DEBS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	else echo "deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| { echo "deps: apt-get failed" >&2; exit 1; }; fi

# promtool (for tests/integration/t_metrics.sh) from Debian's prometheus
# package: apt-get download, only the binary unpacked into $(BUILD)/promtool;
# nothing installed, no daemon. The test fetches it itself when it can.
promtool:
	tests/metrics/get-promtool.sh $(BUILD)

unit: $(UNIT_TESTS)
	@fail=0; for t in $(UNIT_TESTS); do $$t || fail=1; done; exit $$fail

# Every C source as .clang-format wants it (clang-format -i to fix).
LINT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find broker netpolicy sandbox examples tests -name '*.[ch]')
lint:
	@clang-format --dry-run --Werror $(LINT_SRCS) && echo "lint: $(words $(LINT_SRCS)) files formatted"

# spawn-stress (spawns and pre-warm set-ups of one sandbox on two threads,
# which share the caller's memory with their children until exec) under
# ThreadSanitizer, in build-tsan/: a data race fails it.
tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT="-O1 -g" SAN="-fsanitize=thread" \
		build-tsan/tests/helpers/spawn-stress
	@TSAN_OPTIONS="halt_on_error=1 exitcode=66" unshare -n build-tsan/tests/helpers/spawn-stress 300 && \
		echo "tsan: spawn-stress clean"

# The same sources built with ASan+UBSan, in build-asan/.
ASAN_BUILD := $(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

unit-asan:
	$(ASAN_BUILD) unit

integration: all
	@tests/integration/run.sh

# The broker's tests with the broker built with ASan+UBSan (leaks make it
# exit non-zero, which the tests check). Handlers and helpers stay plain:
# LeakSanitizer cannot run in a sandbox without /proc.
integration-asan: all
	@$(ASAN_BUILD) build-asan/postern
	@PST_POSTERN=$(CURDIR)/build-asan/postern PST_LOGDIR=$(CURDIR)/build/tests/integration-asan \
		tests/integration/run.sh $(notdir $(wildcard tests/integration/t_broker_*.sh \
			tests/integration/t_hostile_*.sh)) t_policy_trust.sh t_check.sh

# The cgroup v2 tier: the tests run in a VM (software emulation) on what
# was built here; the guest kernel and initramfs are kept in build/vm/.
test-cgroup2: all
	@tests/vm/run.sh

check-policies: $(POSTERN)
	@for p in policies/*.json; do $(POSTERN) check $$p || exit 1; done

# Order matters for CI: each runner prints its own summary; the cgroup v2
# tier's "N passed, N failed" is the last line.
test: deps
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory man-lint
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory unit-asan
	$(MAKE) --no-print-directory tsan
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory integration-asan
	$(MAKE) --no-print-directory test-cgroup2

demo: deps
	$(MAKE) --no-print-directory all
	@tests/demo.sh

bench: deps
	$(MAKE) --no-print-directory all
	@tests/bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

# Hand-written mdoc pages; mandoc's lint at level warning, and any message fails.
MAN_PAGES := man/postern.8 man/postern.json.5
man-lint:
	@out=$$(mandoc -Tlint -Wwarning $(MAN_PAGES) 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; echo "man-lint: mandoc warnings" >&2; exit 1; fi; \
	echo "man-lint: $(words $(MAN_PAGES)) pages clean"

# postern is a root daemon: PREFIX/sbin. What goes where: tools/install.sh.
INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' \
	SYSTEMDUNITDIR='$(SYSTEMDUNITDIR)' BUILD='$(BUILD)' VERSION='$(VERSION)'
install: $(POSTERN) $(EXAMPLES) $(EXLIB)
	@$(INSTALL_ENV) sh tools/install.sh install

uninstall:
	@$(INSTALL_ENV) sh tools/install.sh uninstall

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
