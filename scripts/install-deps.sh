#!/usr/bin/env bash
# Installs everything credmq needs to build, run and test, from Debian 12's packages (and the
# npm packages of the integration tests). Idempotent: skips apt-get when all is present.
#   --test  also the npm packages of the integration tests
#   --fuzz  also clang-14 and its libFuzzer/sanitizer runtimes (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  g++ cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libboost-program-options1.81-dev libboost-system1.81-dev
  libsqlite3-dev libssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  mosquitto mosquitto-clients python3 python3-paho-mqtt python3-pytest clang-format curl
  openssl  # the CLI: test_tls.py makes its certificates with it
)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
if [[ " $* " == *" --fuzz "* ]]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ " $* " == *" --test "* ]]; then
  (cd tests/integration/node && npm ci --no-audit --no-fund --loglevel=error)
fi
