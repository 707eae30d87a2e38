#!/usr/bin/env bash
# Installs what is missing, builds credmq and starts it on the embedded defaults:
# data in ./data, MQTT on 0.0.0.0:1883, admin API on 127.0.0.1:8080. Extra arguments are
# passed to credmq (see `credmq --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target credmq
exec build/server/credmq "$@"
