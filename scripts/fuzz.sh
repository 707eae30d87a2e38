#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang-14 in build-fuzz/ and runs each one for
# SECONDS (default 60) on a copy of its seed corpus (tests/fuzz/corpus/<target>; the repo's
# corpus is never modified). Prints the executions per target; exits non-zero if any target
# found a crash, a leak, a timeout or an out-of-memory (the reproducer is kept in
# build-fuzz/artifacts/<target>/).
#   scripts/fuzz.sh [SECONDS]
# Reproduce a finding: build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(fuzz_mqtt_codec fuzz_topic fuzz_admin_request fuzz_signature)

scripts/install-deps.sh --fuzz

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCREDMQ_FUZZ=ON -DCREDMQ_BUILD_TESTS=OFF -DCREDMQ_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  cp tests/fuzz/corpus/"$target"/* "$work/$target/corpus/"
  dict=()
  case "$target" in
    fuzz_topic) dict=(-dict=tests/fuzz/topic.dict) ;;
    fuzz_admin_request | fuzz_signature) dict=(-dict=tests/fuzz/admin.dict) ;;
  esac
  echo "== $target: ${seconds}s"
  status=0
  build-fuzz/tests/fuzz/"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" "${dict[@]}" \
    "$work/$target/corpus" >"$work/$target/log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target/log")
  summary+=("$(printf '%-20s %12s executions  exit %d' "$target" "${executions:-?}" "$status")")
  if ((status != 0)) || compgen -G "$work/$target/artifacts/*" >/dev/null; then
    failed+=("$target")
    echo "!! $target failed (exit $status):"
    grep -v '^#[0-9]' "$work/$target/log" | tail -60
    mkdir -p build-fuzz/artifacts/"$target"
    cp "$work/$target/artifacts/"* build-fuzz/artifacts/"$target"/ 2>/dev/null || true
  fi
done

echo "== fuzzing summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]} (reproducers in build-fuzz/artifacts/)"
  exit 1
fi
echo "fuzzing: no crash, leak or timeout"
