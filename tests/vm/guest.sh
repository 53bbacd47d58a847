#!/bin/bash
# The cgroup v2 test VM's init after switch_root (pid 1; see tests/vm/run.sh).
# Sets the guest up like a cgroup v2-only host, runs the integration tests
# once per placement with tests/integration/run.sh, writes everything into
# the results share and powers off. It never returns: a failure here shows
# as "pstvm: FATAL ..." on the console and as missing results on the host.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
R=/pstvm/results

off() {
	[ -d "$R" ] && dmesg >"$R/dmesg.txt" 2>&1
	sync
	umount "$R" 2>/dev/null
	busybox poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger
	sleep 10
	exit 1	# pid 1 exits: panic=-1 and -no-reboot end the VM
}
fatal() { echo "pstvm: FATAL (guest): $*"; [ -d "$R" ] && echo "$*" >>"$R/fatal"; off; }
log() { echo "pstvm: $*"; }

mount -t proc proc /proc || fatal "mount /proc"
mount -t sysfs sysfs /sys || fatal "mount /sys"
mount -t devtmpfs devtmpfs /dev || fatal "mount /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fatal "mount /dev/pts"
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fatal "mount /dev/shm"
# what udev and systemd make on a real system: bash's process substitution
# needs /dev/fd
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=755 tmpfs /run || fatal "mount /run"
# a checkout under /tmp (a CI runner's clone) stays where it is, above the
# guest's own /tmp
case $ROOT/ in
/tmp/*)
	mkdir -p /run/pstvm-root && mount --bind "$ROOT" /run/pstvm-root || fatal "keep $ROOT"
	mount -t tmpfs -o mode=1777 tmpfs /tmp || fatal "mount /tmp"
	mkdir -p "$ROOT" && mount --move /run/pstvm-root "$ROOT" || fatal "put $ROOT back"
	;;
*)
	mount -t tmpfs -o mode=1777 tmpfs /tmp || fatal "mount /tmp"
	;;
esac
mkdir -p "$R"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results "$R" || fatal "mount the results share"
# kernel messages (the tests' OOM kills, for one) into dmesg.txt, not the console
dmesg -n 1 2>/dev/null
log "guest init started: $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
[ -r "$R/config" ] || fatal "no $R/config from the host"
# shellcheck source=/dev/null
. "$R/config"	# PSTVM_PLACEMENTS, _TESTS_<placement>, _TEST_TIMEOUT, _CGROUP, _REQUIRE_CGROUP2; PST_TIME_SCALE

if [ "$PSTVM_CGROUP" = v2 ]; then
	# cgroup v2 only, as systemd mounts it; the controllers the broker uses
	# enabled at the root one at a time, each checked
	mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup || fatal "mount cgroup2 at /sys/fs/cgroup"
	for c in memory pids cpu; do
		echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control ||
			fatal "enable $c at the root (cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers))"
	done
else
	# PST_VM_CGROUP=v1: hybrid, as on the build machine (v1 memory, pids
	# and cpu, cgroup2 at unified), to tell the guest kernel's part in a
	# failure from cgroup v2's
	mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup || fatal "mount tmpfs at /sys/fs/cgroup"
	for c in memory pids cpu cpuacct; do
		mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || fatal "mount cgroup v1 $c"
	done
	mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified || fatal "mount cgroup2 at unified"
fi
{
	echo "--- /proc/self/cgroup"; cat /proc/self/cgroup
	echo "--- mount | grep cgroup"; mount | grep cgroup
	echo "--- /proc/filesystems | grep cgroup"; grep cgroup /proc/filesystems
	echo "--- /sys/fs/cgroup/cgroup.controllers"; cat /sys/fs/cgroup/cgroup.controllers
	echo "--- /sys/fs/cgroup/cgroup.subtree_control"; cat /sys/fs/cgroup/cgroup.subtree_control
	echo "--- /proc/cmdline"; cat /proc/cmdline
} 2>&1 | tee "$R/cgroup-evidence.txt" | sed 's/^/pstvm: /'
if [ "$PSTVM_CGROUP" = v2 ]; then
	grep -q '^0::/$' /proc/self/cgroup && [ "$(wc -l </proc/self/cgroup)" = 1 ] ||
		fatal "not a cgroup v2-only hierarchy: $(tr '\n' ' ' </proc/self/cgroup)"
	[ -z "$(awk '$3 == "cgroup"' /proc/mounts)" ] || fatal "a cgroup v1 hierarchy is mounted"
fi

ip link set lo up || fatal "ip link set lo up"
mkdir -p /run/netns /run/postern
hostname pstvm 2>/dev/null

# run_placement NAME [CGROUP]: the tests with the runner in CGROUP (absolute
# directory; none: the root cgroup). run.sh's output goes to the console
# prefixed with [NAME], raw to $R/NAME.out; its exit status to $R/NAME.rc.
run_placement() {
	local p=$1 cg=${2:-} rc tests_var=PSTVM_TESTS_$1
	local tests=${!tests_var:-}
	[ -n "$tests" ] || fatal "placement $p: no tests in the config"
	mkdir -p "$R/$p"
	log "placement $p: runner in ${cg:-the root cgroup}; tests: $tests"
	echo "$(date +%s) $p" >>"$R/started"
	# shellcheck disable=SC2016,SC2086
	PST_CG_PLACEMENT=$p PST_LOGDIR="$R/$p" PST_TIME_SCALE=$PST_TIME_SCALE \
		PST_TEST_TIMEOUT=$PSTVM_TEST_TIMEOUT PST_REQUIRE_CGROUP2=$PSTVM_REQUIRE_CGROUP2 PSTVM_CG=$cg \
		sh -c '[ -z "$PSTVM_CG" ] || echo $$ >"$PSTVM_CG/cgroup.procs" || exit 125
		       exec "$0" "$@"' "$ROOT/tests/integration/run.sh" $tests </dev/null 2>&1 |
		tee "$R/$p.out" | sed -u "s/^/[$p] /"
	rc=${PIPESTATUS[0]}
	echo "$rc" >"$R/$p.rc"
	[ "$rc" != 125 ] || log "placement $p: could not move the runner into $cg"
	# anything the tests left: processes besides this init and kernel
	# threads, cgroups besides the ones made here
	{
		echo "--- cgroups after placement $p"
		find /sys/fs/cgroup -mindepth 1 -type d | sed 's|^/sys/fs/cgroup||'
		echo "--- processes after placement $p"
		ps -eo pid,ppid,comm,args 2>/dev/null | awk '$2 != 2 && $1 != 2'
	} >"$R/$p.after" 2>&1
	sync
}

for p in $PSTVM_PLACEMENTS; do
	case $p in
	root) run_placement root ;;
	service)
		# like systemd: the runner in a scope of a slice; run.sh's brokers
		# each in a service cgroup of that slice (broker_lib.sh)
		s=/sys/fs/cgroup/pst.slice
		mkdir -p "$s/runner.scope" || fatal "mkdir $s/runner.scope"
		for c in memory pids cpu; do echo "+$c" >"$s/cgroup.subtree_control" || fatal "enable $c in $s"; done
		export PST_CG_SLICE=$s
		run_placement service "$s/runner.scope"
		unset PST_CG_SLICE
		;;
	*) log "unknown placement $p"; echo 1 >"$R/$p.rc" ;;
	esac
done
log "all placements done"
date +%s >"$R/done"
off
