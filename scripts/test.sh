#!/usr/bin/env bash
# Every test: install what is missing, build, run CTest (unit, fixture and CLI tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j2 "$@"
