#!/usr/bin/env bash
# make fuzz: build the policy loader and the wire parsers (broker/wire.c:
# pipe framing, fdpass control data, control and HTTP requests) with
# libFuzzer + ASan + UBSan (clang) and run them for SECONDS in all (default
# 60) on corpora seeded from policies/, tests/fuzz/corpus/ and
# tests/fuzz/corpus-wire/. New inputs go to build-fuzz/corpus; a crash leaves its
# input in build-fuzz/ and fails. Fix it, then add the input to
# tests/fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus" "$out/corpus-wire" "$out/corpus-elf"
# the ELF reader starts from real programs and libraries, cut to max_len
for f in /usr/bin/true /bin/sh /lib/x86_64-linux-gnu/libc.so.6 /etc/ld.so.cache; do
	[ -r "$f" ] && head -c 4096 "$f" >"$out/corpus-elf/$(basename "$f")"
done
cp policies/*.json tests/fuzz/corpus/* "$out/corpus/" 2>/dev/null || true
cp tests/fuzz/corpus-wire/* "$out/corpus-wire/" 2>/dev/null || true
cc_fuzz() { # cc_fuzz OUT SOURCES...
	local o=$1; shift
	clang -std=c11 -D_GNU_SOURCE -I. $(pkg-config --cflags libcjson) -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		"$@" $(pkg-config --libs libcjson libseccomp) -lm -o "$out/$o"
}
# the loader: orchestration, JSON access, section parsers, verifier, values
cc_fuzz fuzz_policy tests/fuzz/fuzz_policy.c broker/policy.c broker/policy_json.c \
	broker/policy_sandbox.c broker/policy_trigger.c broker/policy_verify.c broker/values.c
cc_fuzz fuzz_wire tests/fuzz/fuzz_wire.c broker/wire.c
# the preflight's ELF reader and #! parser (with what preflight.c links)
cc_fuzz fuzz_elf tests/fuzz/fuzz_elf.c broker/preflight.c broker/preflight_elf.c broker/policy.c broker/policy_json.c \
	broker/policy_sandbox.c broker/policy_trigger.c broker/policy_verify.c broker/values.c broker/util.c
# the time, shared: two thirds for the policy loader, one for the wire parsers
pol=$(( secs * 2 / 3 )); wire=$(( secs - pol )); elf=$(( wire / 2 )); wire=$(( wire - elf ))
[ "$elf" -gt 0 ] || elf=1
[ "$pol" -gt 0 ] || pol=1
[ "$wire" -gt 0 ] || wire=1
echo "fuzz: the policy loader for ${pol}s"
"$out/fuzz_policy" -max_total_time="$pol" -max_len=8192 -timeout=10 \
	-artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 20
echo "fuzz: the preflight's ELF reader for ${elf}s"
"$out/fuzz_elf" -max_total_time="$elf" -max_len=4096 -timeout=10 \
	-artifact_prefix="$out/" -print_final_stats=1 "$out/corpus-elf" 2>&1 | tail -n 20
echo "fuzz: the wire parsers (pipe framing, fdpass control data, control and HTTP requests) for ${wire}s"
"$out/fuzz_wire" -max_total_time="$wire" -max_len=16384 -timeout=10 \
	-artifact_prefix="$out/" -print_final_stats=1 "$out/corpus-wire" 2>&1 | tail -n 20
