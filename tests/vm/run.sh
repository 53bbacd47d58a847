#!/usr/bin/env bash
# The cgroup v2 test tier (make test-cgroup2): the integration tests that
# touch cgroups, run inside a QEMU VM whose kernel mounts cgroup v2 only, as
# on a systemd host (Debian 12, Ubuntu, Fedora). The machine that builds and
# tests postern may have cgroup v1 controllers mounted, and then the broker's
# cgroup v2 code never runs in the other test tiers.
#
# How it works
#   - Everything is built on the host (make all). The VM only runs things.
#   - Guest kernel: the newest linux-image-6.1.0-N-amd64 (or -unsigned) that
#     apt-cache offers, fetched with `apt-get download` (Debian archive
#     only), unpacked with dpkg-deb into build/vm/kernel/ and indexed there
#     with the host's depmod. It is never installed on the host. Kept: a
#     later run does not download again (rm -rf build/vm/kernel for a newer
#     one).
#   - Boot chain: qemu-system-x86_64 (software emulation, TCG: /dev/kvm here
#     does not speed up a stock kernel) -> the kernel with
#     `cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1` -> a busybox
#     initramfs (build/vm/initramfs.cpio, from tests/vm/initramfs-init and
#     the host's static busybox; rebuilt when either or the kernel changes)
#     that insmods virtio_pci, 9pnet_virtio, 9p and overlay from the
#     kernel package (dependencies first, as its modules.dep says), mounts
#     the host's / read-only over virtio-9p (tag hostroot) under a tmpfs
#     overlay (the guest writes /etc, /tmp, build/..., the host sees none of
#     it), binds build/vm/kernel/lib/modules/<version> at
#     /lib/modules/<version> (so nf_tables, veth, nft_* autoload through the
#     host's modprobe) and switch_roots to tests/vm/guest.sh.
#   - tests/vm/guest.sh (pid 1, the host's bash): mounts proc, sys, dev,
#     /dev/pts, /run and /tmp (tmpfs), cgroup2 at /sys/fs/cgroup with
#     nsdelegate; enables memory, pids and cpu at the root one at a time;
#     lo up; /run/netns; then tests/integration/run.sh once per placement,
#     and powers off.
#   - Shares: hostroot (the host's /, read-only) and results
#     (build/vm/results/, writable): config from the host, all output from
#     the guest.
#   - Placements (PST_CG_PLACEMENT for run.sh and broker_lib.sh):
#       root     the runner and every broker in the root cgroup
#       service  the runner in /sys/fs/cgroup/pst.slice/runner.scope; each
#                broker that broker_start starts in a fresh cgroup that
#                holds only the broker, pst.slice/broker-<table>-<n>.service
#                (memory, pids and cpu enabled in pst.slice), as systemd
#                places a Delegate=yes service; the broker makes its
#                <table>/... below it. Programs a test starts by hand that
#                make cgroups (a second broker, tests/helpers/spawn-signals)
#                stay in runner.scope, unless the test runs them with
#                broker_lib.sh's run_placed.
#     The guest sets PST_REQUIRE_CGROUP2=1: a test that needs cgroup v2
#     fails rather than skips there.
#   - Time scale: tests run ~8x slower than on the host. PST_TIME_SCALE
#     (default here 6) multiplies lib.sh's wait_for (and so broker_lib.sh's
#     waits for a broker to start, 10 s, and to stop, 15 s), the clean-up
#     retries and run.sh's per-test timeout (PSTVM_TEST_TIMEOUT, default
#     50 s, times the scale: 300 s). What the tests assert is not scaled.
#     The whole VM run is bounded by PST_VM_TIMEOUT (default 2400 s); a
#     guest that has not reached its init within PST_VM_BOOT_TIMEOUT
#     (240 s; it takes about 15), or whose kernel keeps reporting a soft
#     lockup (a CPU of the emulated machine stuck in its kernel for a
#     minute: seen once under TCG, from the first test on), is killed and
#     booted once more, every test run anew; twice is a failure.
#
# Running it
#   make test-cgroup2                       the default list (below), both
#                                           placements
#   PST_VM_TESTS="t_check t_sandbox" make test-cgroup2      a subset (an
#                                           absolute path names a test file
#                                           elsewhere, e.g. under /var/tmp)
#   PST_VM_PLACEMENTS=root tests/vm/run.sh  one placement (after make all)
#   PST_VM_CGROUP=v1 tests/vm/run.sh        the same guest kernel with cgroup
#                                           v1 hierarchies (hybrid, as on the
#                                           build machine; root placement):
#                                           is a failure the kernel's or v2's?
#   Other knobs: PST_TIME_SCALE, PST_VM_TIMEOUT, PSTVM_TEST_TIMEOUT,
#   PST_VM_MEM (MiB, 4096), PST_VM_SMP (2), PST_VM_DIR (build/vm: kernel,
#   initramfs, results; one run at a time per directory).
#   The guest sees the host's files as they are: do not rebuild while it
#   runs.
#
# Output and logs
#   The guest's console streams through: per-test lines prefixed with the
#   placement ("[root] ok   t_check (3.1s)", failed tests' log tails as
#   run.sh shows them), then this script's own last line, "N passed, N
#   failed" over both placements. It fails (exit 1) when a test fails, the
#   VM does not boot, the guest times out or a placement's results are
#   missing or incomplete, and says why (each such reason counts as a
#   failed test).
#   build/vm/results/: console.log (the whole serial console), dmesg.txt
#   (the guest kernel's log: OOM kills and the like stay off the console),
#   cgroup-evidence.txt (/proc/self/cgroup, the cgroup mounts,
#   cgroup.controllers and subtree_control as the guest saw them),
#   <placement>.out (run.sh's output), <placement>.rc, <placement>.after
#   (cgroups and processes left after the placement), <placement>/t_*.log
#   (each test's log, with the broker's log on failure), timings (ms since
#   qemu started: guest init, first test, end).
set -u
reasons_pre=()
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
VMDIR=${PST_VM_DIR:-$root/build/vm}

# The default list. EVERY_PLACEMENT: what the broker's place in the cgroup
# tree changes (its cgroups, limits, figures, kill and clean-up, reuse,
# pre-warm, reload, signals, a hostile handler's cgroup and process
# escapes): run in each placement. ONCE: what depends on the v2-only guest
# kernel (6.1: nftables, Landlock ABI 2, seccomp, mounts) but not on the
# placement: run once, in the service placement (the one deployments use;
# with PST_VM_PLACEMENTS=root or cgroup v1, in the first placement). Each
# placement's list is printed at its start. PST_VM_TESTS runs its list in
# every placement.
EVERY_PLACEMENT="t_sandbox t_cgroup_reuse t_broker_echo t_broker_limits t_broker_reload t_broker_control t_broker_signals t_broker_prewarm t_hostile_sandbox t_cgroup2"
ONCE="t_netpolicy t_demo t_hostile_net t_hostile_channel t_hostile_rootdir"
TESTS=${PST_VM_TESTS:-$EVERY_PLACEMENT $ONCE}
PLACEMENTS=${PST_VM_PLACEMENTS:-root service}
SCALE=${PST_TIME_SCALE:-6}
VM_TIMEOUT=${PST_VM_TIMEOUT:-2400}
BOOT_TIMEOUT=${PST_VM_BOOT_TIMEOUT:-240}
TEST_TIMEOUT=${PSTVM_TEST_TIMEOUT:-50}
CGROUP=${PST_VM_CGROUP:-v2}
MEM=${PST_VM_MEM:-4096}
SMP=${PST_VM_SMP:-2}
# what the initramfs loads (with their dependencies) to reach the root
INITRD_MODULES="virtio_pci 9pnet_virtio 9p overlay"

# die REASON: the tier cannot run at all; it counts as one failed test
die() {
	echo "test-cgroup2: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}
say() { echo "vm: $*"; }

[ "$(id -u)" = 0 ] || die "needs root (the guest reads the host's whole / over 9p)"
case $root$VMDIR in *[[:space:]]*) die "the repository path may not contain white space (kernel command line)";; esac
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || die "PST_TIME_SCALE must be a positive integer, got '$SCALE'"
case $CGROUP in
v2) ;;
v1) PLACEMENTS=${PST_VM_PLACEMENTS:-root}
    [[ " $PLACEMENTS " != *" service "* ]] || die "the service placement needs cgroup v2 (PST_VM_CGROUP=v1)" ;;
*) die "PST_VM_CGROUP must be v2 or v1, got '$CGROUP'" ;;
esac
for c in qemu-system-x86_64 cpio depmod modprobe dpkg-deb apt-get timeout flock; do
	command -v "$c" >/dev/null || die "missing $c: run make deps (packages qemu-system-x86, cpio, kmod)"
done
dpkg-query -W -f='${Status}\n' busybox-static 2>/dev/null | grep -q '^install ok installed' ||
	die "missing busybox-static: run make deps"
for b in "$root/build/postern" "$root/build/tests/helpers/pst-client"; do
	[ -x "$b" ] || die "missing $b: run make all first"
done
tests=()
for t in $TESTS; do
	if [[ $t == /* ]]; then
		# a test file elsewhere (not under /tmp: the guest has its own)
		[ -f "$t" ] || die "no such test: $t"
		tests+=("$t")
		continue
	fi
	t=${t%.sh}
	[ -f "$root/tests/integration/$t.sh" ] || die "no such test: tests/integration/$t.sh"
	tests+=("$t.sh")
done
[ ${#tests[@]} -gt 0 ] || die "no tests chosen"
# placement_tests P: the tests placement P runs
once_in=service
[[ " $PLACEMENTS " == *" service "* ]] || once_in=${PLACEMENTS%% *}
placement_tests() {
	local t
	for t in "${tests[@]}"; do
		if [ -z "${PST_VM_TESTS:-}" ] && [ "$1" != "$once_in" ] && [[ " $ONCE " == *" ${t%.sh} "* ]]; then
			continue
		fi
		printf '%s ' "$t"
	done
}

mkdir -p "$VMDIR" || die "mkdir $VMDIR"
exec 9>"$VMDIR/.lock"
flock -n 9 || die "another run holds $VMDIR/.lock"

# ---- the guest kernel: downloaded once, unpacked, indexed ----------------------------
ensure_kernel() {
	[ -s "$VMDIR/kernel/VERSION" ] && return 0
	local dl="$VMDIR/dl" pkg= p cands attempt deb tmp="$VMDIR/kernel.tmp"
	mkdir -p "$dl"
	for attempt in 1 2; do
		# newest N first; the signed package before -unsigned (both hold
		# vmlinuz and the modules)
		cands=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' 2>/dev/null |
			awk '{print $1}' | sort -t- -k4,4nr -k6,6)
		for p in $cands; do
			say "downloading $p (apt-get download)"
			if (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$p" >/dev/null); then
				pkg=$p
				break 2
			fi
		done
		[ $attempt = 2 ] || { say "apt-get update (no kernel package could be downloaded)"; apt-get update -qq; }
	done
	[ -n "$pkg" ] || return 1
	deb=$(ls "$dl/${pkg}"_*.deb 2>/dev/null | head -1)
	[ -n "$deb" ] || return 1
	rm -rf "$tmp"
	dpkg-deb -x "$deb" "$tmp" || return 1
	local v; v=$(ls "$tmp/lib/modules" 2>/dev/null | head -1)
	[ -n "$v" ] && [ -f "$tmp/boot/vmlinuz-$v" ] || { say "$pkg holds no vmlinuz and modules"; return 1; }
	depmod -b "$tmp" "$v" || return 1
	echo "$pkg" >"$tmp/PACKAGE"
	echo "$v" >"$tmp/VERSION"
	rm -rf "$VMDIR/kernel"
	mv "$tmp" "$VMDIR/kernel" && rm -f "$deb"
}
ensure_kernel || die "could not get a guest kernel (linux-image-6.1.0-*-amd64) from the Debian archive"
KVER=$(cat "$VMDIR/kernel/VERSION")
KROOT=$VMDIR/kernel
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "no $VMLINUZ (rm -rf $KROOT to fetch it again)"

# ---- the initramfs: static busybox, /init, the modules to reach the root -------------
ensure_initramfs() {
	local img="$VMDIR/initramfs.cpio" tmp="$VMDIR/initramfs.tmp" stamp order f
	stamp="$KVER $INITRD_MODULES $(cat "$here/initramfs-init" /bin/busybox | sha256sum | cut -c1-16)"
	[ -f "$img" ] && [ "$(cat "$img.stamp" 2>/dev/null)" = "$stamp" ] && return 0
	say "building $img"
	order=$(for m in $INITRD_MODULES; do modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" || echo FAIL "$m"; done |
		awk '$1 == "FAIL" { print; next } $1 == "insmod" && !seen[$2]++ { print $2 }')
	grep -q '^FAIL' <<<"$order" && { say "modprobe --show-depends: $(grep '^FAIL' <<<"$order")"; return 1; }
	rm -rf "$tmp"
	mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/dev" || return 1
	mknod -m 600 "$tmp/dev/console" c 5 1 || return 1	# init's stdio
	cp /bin/busybox "$tmp/bin/busybox" && cp "$here/initramfs-init" "$tmp/init" && chmod 755 "$tmp/init" || return 1
	for f in $order; do
		cp "$f" "$tmp/modules/" || return 1
		basename "$f" >>"$tmp/modules/order"
	done
	(cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$img.new" || return 1
	mv "$img.new" "$img" && echo "$stamp" >"$img.stamp" && rm -rf "$tmp"
}
ensure_initramfs || die "could not build the initramfs"

# ---- the run ------------------------------------------------------------------------
RES=$VMDIR/results
rm -rf "$RES"
mkdir -p "$RES" || die "mkdir $RES"
cat >"$RES/config" <<EOF
PSTVM_PLACEMENTS='$PLACEMENTS'
$(for p in $PLACEMENTS; do echo "PSTVM_TESTS_$p='$(placement_tests "$p")'"; done)
PST_TIME_SCALE=$SCALE
PSTVM_TEST_TIMEOUT=$TEST_TIMEOUT
PSTVM_CGROUP=$CGROUP
PSTVM_REQUIRE_CGROUP2=$([ "$CGROUP" = v2 ] && echo 1)
EOF
say "kernel $(cat "$KROOT/PACKAGE") ($KVER), cgroup $CGROUP; placements: $PLACEMENTS; time scale $SCALE; bound ${VM_TIMEOUT}s"
for p in $PLACEMENTS; do
	say "tests in placement $p: $(for t in $(placement_tests "$p"); do basename "$t" .sh; done | paste -sd' ')"
done

if [ "$CGROUP" = v2 ]; then
	append="console=ttyS0 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 quiet"
else
	append="console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=0 quiet"
fi
append="$append pstvm_init=$here/guest.sh pstvm_kmods=$KROOT/lib/modules/$KVER"
# the console, as it comes: to the terminal and console.log; times of the
# guest's milestones (seconds since qemu started) to timings
stream() {
	local t0=$1 line now first_test=
	while IFS= read -r line; do
		# no carriage returns nor terminal control (the firmware clears the screen)
		line=${line//$'\r'/}
		[[ $line == *$'\e'* ]] && line=$(sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1b[a-zA-Z]//g' <<<"$line")
		printf '%s\n' "$line"
		printf '%s\n' "$line" >>"$RES/console.log"
		now=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
		case $line in
		"pstvm: guest init started"*) echo "guest_init_ms=$now" >>"$RES/timings" ;;
		"pstvm: placement "*) [ -n "$first_test" ] || { first_test=1; echo "first_test_start_ms=$now" >>"$RES/timings"; } ;;
		"pstvm: all placements done"*) echo "tests_done_ms=$now" >>"$RES/timings" ;;
		esac
	done
}

# One boot of the VM: qemu's exit code in rc. A guest that has not reached
# its init after BOOT_TIMEOUT seconds (TCG guests have been seen to hang
# in early boot, their second CPU's timer never firing) is killed, and
# hung says so ("boot"); so is one whose kernel reports a soft lockup
# ("lockup": both emulated CPUs were seen spinning in the kernel for
# minutes from the first test on, once, and not in the next boot of the
# same build): its results would be of a stuck machine, not of postern.
fifo=$VMDIR/console.fifo
boot_once() {
	rm -f "$fifo"
	mkfifo "$fifo" || die "mkfifo $fifo"
	t0=${EPOCHREALTIME/./}
	stream "$t0" <"$fifo" &
	reader=$!
	timeout --kill-after=20 "$VM_TIMEOUT" qemu-system-x86_64 \
		-accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM" \
		-nographic -nodefaults -serial stdio -no-reboot \
		-kernel "$VMLINUZ" -initrd "$VMDIR/initramfs.cpio" -append "$append" \
		-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
		-fsdev local,id=results,path="$RES",security_model=none,multidevs=remap \
		-device virtio-9p-pci,fsdev=results,mount_tag=results \
		</dev/null >"$fifo" 2>&1 &
	vm=$!
	trap 'kill -TERM "$vm" 2>/dev/null; wait "$vm" 2>/dev/null; wait "$reader" 2>/dev/null; rm -f "$fifo"; exit 130' INT TERM
	hung=
	local waited=0
	while kill -0 "$vm" 2>/dev/null && ! grep -q '^pstvm: guest init started' "$RES/console.log" 2>/dev/null; do
		if [ "$waited" -ge "$BOOT_TIMEOUT" ]; then
			hung=boot
			kill -TERM "$vm" 2>/dev/null
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	while [ -z "$hung" ] && kill -0 "$vm" 2>/dev/null; do
		# reported again while it lasts (every ~30 s): three reports, a
		# CPU stuck for a minute or more
		lockups=$(grep -c 'watchdog: BUG: soft lockup' "$RES/console.log" 2>/dev/null)
		if [ "${lockups:-0}" -ge 3 ]; then
			hung=lockup
			kill -TERM "$vm" 2>/dev/null
			break
		fi
		sleep 2
	done
	wait "$vm"
	rc=$?
	wait "$reader"
	trap - INT TERM
	rm -f "$fifo"
	echo "vm_exit_ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))" >>"$RES/timings"
}
for attempt in 1 2; do
	boot_once
	[ -n "$hung" ] && [ "$attempt" = 1 ] || break
	if [ "$hung" = boot ]; then
		why="did not reach its init within ${BOOT_TIMEOUT}s"
	else
		why="kernel reported a soft lockup: $(grep -m1 'soft lockup' "$RES/console.log" | sed 's/^\[ *[0-9.]*\] //')"
	fi
	say "the guest $why (console: $(grep -c '' "$RES/console.log" 2>/dev/null) lines, kept as console-hung.log): booting again, all tests anew"
	mv "$RES/console.log" "$VMDIR/console-hung.log" 2>/dev/null
	find "$RES" -mindepth 1 ! -name config -exec rm -rf {} + 2>/dev/null
done
[ "$hung" != lockup ] || reasons_pre=("the guest's kernel reported a soft lockup in both boots (see $RES/console.log)")

# ---- the verdict --------------------------------------------------------------------
pass=0 fail=0 skip=0 reasons=("${reasons_pre[@]}") failed=()
grep -q '^pstvm: guest init started' "$RES/console.log" 2>/dev/null && booted=1 || booted=
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	reasons+=("the VM did not finish within ${VM_TIMEOUT}s (PST_VM_TIMEOUT); killed")
elif [ "$rc" != 0 ]; then
	reasons+=("qemu exited $rc")
fi
[ -n "$booted" ] || reasons+=("the VM did not boot to the guest's init (see $RES/console.log)")
f=$(grep -h '^pstvm: FATAL' "$RES/console.log" 2>/dev/null | head -3)
[ -z "$f" ] || reasons+=("$f")
infra=${#reasons[@]}
if [ -n "$booted" ]; then
	for p in $PLACEMENTS; do
		out=$RES/$p.out
		if [ ! -f "$out" ]; then
			if grep -q " $p\$" "$RES/started" 2>/dev/null; then
				reasons+=("placement $p: started, no results")
			else
				reasons+=("placement $p: no results (it never started)")
			fi
			continue
		fi
		n=$(grep -c '^ok ' "$out"); pass=$((pass + n))
		n=$(grep -c '^skip ' "$out"); skip=$((skip + n))
		n=$(grep -c '^FAIL ' "$out"); fail=$((fail + n))
		for t in $(sed -n 's/^FAIL \([^ :]*\).*/\1/p' "$out"); do failed+=("[$p] $t"); done
		if ! grep -qE '^[0-9]+ passed, [0-9]+ failed' "$out"; then
			reasons+=("placement $p: incomplete results (run.sh did not finish: $(grep -cE '^(ok|FAIL|skip) ' "$out") of $(wc -w <<<"$(placement_tests "$p")") tests reported)")
		elif [ "$(cat "$RES/$p.rc" 2>/dev/null)" != 0 ] && [ "$n" = 0 ]; then
			reasons+=("placement $p: run.sh exited $(cat "$RES/$p.rc" 2>/dev/null || echo '?') with no failed test")
		fi
	done
fi
# the VM's own trouble counts once; each placement's once more
[ "$infra" = 0 ] || fail=$((fail + 1))
fail=$((fail + ${#reasons[@]} - infra))

# shellcheck disable=SC1090,SC1091
. "$RES/timings" 2>/dev/null
ms() { [ -n "${1:-}" ] && printf '%d.%ds' $(($1 / 1000)) $((($1 % 1000) / 100)) || printf '?'; }
say "boot to guest init $(ms "${guest_init_ms:-}"), to the first test $(ms "${first_test_start_ms:-}"), whole VM $(ms "${vm_exit_ms:-}")"
say "logs: $RES (console.log, <placement>.out, <placement>/t_*.log)"
for r in "${reasons[@]}"; do echo "test-cgroup2: $r"; done
[ ${#failed[@]} = 0 ] || echo "failed: ${failed[*]}"
if [ $skip -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" = 0 ]
