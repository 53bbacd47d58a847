#!/usr/bin/env bash
# netpolicy: sandbox network set-up and 50x20 ruleset commits, inside a
# throwaway network and mount namespace.
set -u
B=$(cd "$(dirname "$0")/../.." && pwd)/build
[ "$(id -u)" = 0 ] || { echo "bench_netpolicy: needs root"; exit 1; }
unshare -n -m --propagation private "$B/tests/bench/netpolicy_bench"
