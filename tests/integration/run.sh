#!/usr/bin/env bash
# Integration test runner: runs every tests/integration/t_*.sh (or the ones
# named on the command line) as root, each bounded in time, and ends with
# "N passed, N failed[, N skipped]". A test exits 0 (pass), 77 (skip) or
# anything else (fail); its output goes to build/tests/integration/NAME.log
# and is shown when it fails. PST_POSTERN runs the tests against another
# postern binary (make integration-asan), PST_LOGDIR puts the logs elsewhere.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
logdir=${PST_LOGDIR:-$root/build/tests/integration}
mkdir -p "$logdir"
# PST_TEST_TIMEOUT seconds (600), times PST_TIME_SCALE (lib.sh) on a slow machine
if ! [[ ${PST_TIME_SCALE:-1} =~ ^[1-9][0-9]*$ && ${PST_TEST_TIMEOUT:-600} =~ ^[1-9][0-9]*$ ]]; then
	echo "PST_TIME_SCALE and PST_TEST_TIMEOUT must be positive integers" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
per_test_timeout=$(( ${PST_TEST_TIMEOUT:-600} * ${PST_TIME_SCALE:-1} ))

if [ "$(id -u)" != 0 ]; then
	echo "integration tests need root (network namespaces, nftables, cgroups)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

if [ $# -gt 0 ]; then tests=("$@"); else tests=("$here"/t_*.sh); fi
pass=0 fail=0 skip=0 failed=()
for t in "${tests[@]}"; do
	[ -f "$t" ] || t="$here/$t"
	name=$(basename "$t" .sh)
	log="$logdir/$name.log"
	start=$(date +%s%N)
	timeout --kill-after=10 "$per_test_timeout" bash "$t" >"$log" 2>&1 </dev/null
	rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 )); secs="$((ms / 1000)).$(((ms % 1000) / 100))"
	case $rc in
	0) pass=$((pass + 1)); echo "ok   $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "skip $name: $(tail -n 1 "$log")" ;;
	*) fail=$((fail + 1)); failed+=("$name")
	   [ $rc = 124 ] && echo "FAIL $name: timed out after ${per_test_timeout}s" || echo "FAIL $name (exit $rc, ${secs}s)"
	   # the failure itself first (a broker log dump after it may be long)
	   grep -m 3 '^FAIL: ' "$log" | sed 's/^/    | /'
	   sed 's/^/    | /' "$log" | tail -n 40 ;;
	esac
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
if [ $skip -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ $fail = 0 ]
