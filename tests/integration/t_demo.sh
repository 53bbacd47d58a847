#!/usr/bin/env bash
# make demo's script (tests/demo.sh) works as README promises: three echoes
# through the broker, the confine report, status, a clean stop and nothing
# left. The cgroup v2 tier runs it too, where from a non-root cgroup the
# demo must place the broker in a cgroup of its own.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root"
out=$("$ROOT/tests/demo.sh" 2>&1)
rc=$?
note "$(tail -n 25 <<<"$out")"
[ "$rc" = 0 ] || fail "tests/demo.sh exited $rc: $(tail -n 40 <<<"$out")"
for m in "hello, postern" "one process per request" "and it is gone afterwards"; do
	assert_contains "$out" "gets back: $m" "echo of \"$m\""
done
assert_contains "$out" "uid: " "the confine report"
assert_contains "$out" "broker exited with status 0" "clean stop"
assert_contains "$out" "nftables tables left in the namespace: none" "nothing left"
[ -z "$(ip netns list | grep pst-demo-)" ] || fail "the demo left a network namespace"
[ -z "$(find /sys/fs/cgroup -maxdepth 6 -type d -name 'postern_demo*' 2>/dev/null)$(find /sys/fs/cgroup -maxdepth 1 -type d -name 'postern-demo-*')" ] ||
	fail "the demo left cgroups"
echo "demo: ok"
