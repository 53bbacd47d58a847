#!/usr/bin/env bash
# make demo: until the broker exists, validate every shipped policy.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in policies/*.json; do build/postern check "$p"; done
