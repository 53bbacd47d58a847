#!/usr/bin/env bash
# make bench: runs every tests/bench/bench_*.sh (or those named) in order.
# Each benchmark creates and deletes its own network namespaces and prints
# its own table; figures that matter are copied into README.md by hand with
# the date of the run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then benches=("$@"); else benches=("$here"/bench_*.sh); fi
rc=0
for b in "${benches[@]}"; do
	[ -f "$b" ] || b="$here/$b"
	echo "== $(basename "$b" .sh)"
	bash "$b" || { echo "bench $(basename "$b"): failed" >&2; rc=1; }
done
exit $rc
