#!/usr/bin/env bash
# Fails if any of our C++ sources is not clang-formatted (.clang-format at the top).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror
echo "clang-format: clean"
