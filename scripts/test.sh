#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test (unit + integration).
#   scripts/test.sh              the README's test command (CI runs it)
#   scripts/test.sh --sanitize   the same suite built with ASan+UBSan, in build-asan/
#   scripts/test.sh --tsan       the concurrency-heavy unit tests and the integration tests under
#                                ThreadSanitizer, in build-tsan/ (lists below)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

if [[ "${1:-}" == "--tsan" ]]; then
  # Unit tests with thread interplay: revocation hub stress, broker revocation during traffic
  # and racing takeovers (broker_mqtt*), the persistence thread, the embedded server's
  # start/stop, the admin server's I/O thread and pool, concurrent authentications, the
  # storage probe racing writes while faults come and go, concurrent store writers and
  # readers, connection limits and CONNECT deadlines across the I/O threads.
  tsan_tests=(auth_revocation_hub_test broker_mqtt_test broker_mqtt5_test broker_persistence_test
              server_embedding_test admin_server_test auth_authenticator_test storage_faults_test
              storage_store_test broker_limits_test)
  # Every integration test (test_*.py, about 45 s) against a TSan-built credmq: the threads
  # meet in the real process there: revocation racing reconnects (test_revocation_race.py),
  # takeovers (test_sessions.py), TLS handshakes on the I/O threads and SIGHUP reloading the
  # contexts from the signal thread (test_tls.py), CONNECT probes vs admin writes vs the
  # persistence thread under storage faults (test_failing_storage.py), kill -9 during
  # concurrent admin calls (test_crash_safety.py).
  # -Wno-tsan: GCC 12 warns that Asio's atomic_thread_fence is not instrumented.
  # -O1 -g1 (line tables): as good for the sanitizer reports, a good deal cheaper to compile.
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCREDMQ_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -Wno-tsan" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
    >/dev/null
  cmake --build build-tsan --target "${tsan_tests[@]}" credmq
  export TSAN_OPTIONS=halt_on_error=1
  for test in "${tsan_tests[@]}"; do
    echo "== $test (ThreadSanitizer)"
    build-tsan/tests/unit/"$test" --gtest_brief=1
  done
  # The harness fails a test whose broker log holds a sanitizer report.
  echo "== integration tests (credmq under ThreadSanitizer)"
  (cd tests/integration && CREDMQ_BIN="$PWD/../../build-tsan/server/credmq" \
     PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider test_*.py)
  exit 0
fi

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ "${1:-}" == "--sanitize" ]]; then
  build_dir=build-asan
  # -O1 -g1 (line tables): the reports keep file:line, the build is a good deal cheaper.
  cmake_args+=(-DCREDMQ_SANITIZE=ON -DCREDMQ_BUILD_BENCH=OFF
               -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$build_dir" -G Ninja "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
