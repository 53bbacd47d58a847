#!/usr/bin/env bash
# Spawn cost: postern's full isolation path and a pre-warmed postern handler
# next to fork+exec and posix_spawn of the same binary, in one run, in
# alternating blocks of 50, inside a throwaway network namespace.
# BENCH_SPAWNS=N (default 300).
set -u
B=$(cd "$(dirname "$0")/../.." && pwd)/build
[ "$(id -u)" = 0 ] || { echo "bench_spawn: needs root"; exit 1; }
unshare -n "$B/tests/bench/spawn_bench" "${BENCH_SPAWNS:-300}"
