#!/usr/bin/env bash
# The long fuzzing run whose figures docs/fuzzing.md records: every property of tests/test_fuzz.py
# with KBG_FUZZ_EXAMPLES examples each (default 20000), with hypothesis's statistics.
#   bench/fuzz.sh [EXAMPLES]          (after scripts/test, which makes .venvs/)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
KBG_FUZZ_EXAMPLES=${1:-20000} "$repo/.venvs/py3.13/bin/pytest" -p no:cacheprovider -q tests/test_fuzz.py \
    --hypothesis-show-statistics
