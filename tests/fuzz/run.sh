#!/usr/bin/env bash
# make fuzz: build the policy loader with libFuzzer + ASan + UBSan (clang) and
# run it for SECONDS (default 60) on a corpus seeded from policies/ and
# tests/fuzz/corpus/. New inputs go to build-fuzz/corpus; a crash leaves its
# input in build-fuzz/ and fails. Fix it, then add the input to
# tests/fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus"
cp policies/*.json tests/fuzz/corpus/* "$out/corpus/" 2>/dev/null || true
clang -std=c11 -D_GNU_SOURCE -I. $(pkg-config --cflags libcjson) -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	tests/fuzz/fuzz_policy.c broker/policy.c broker/policy_parse.c \
	$(pkg-config --libs libcjson libseccomp) -lm -o "$out/fuzz_policy"
echo "fuzz: running the policy loader for ${secs}s"
"$out/fuzz_policy" -max_total_time="$secs" -max_len=8192 -timeout=10 \
	-artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 20
