#!/usr/bin/env bash
# CI smoke of the load generator (ctest bench.loadgen_smoke): starts the real credmq on
# ephemeral loopback ports with a fresh data dir, registers a few devices through the admin
# API and runs every loadgen scenario once at a tiny size. Whole run: a few seconds.
#   bench/smoke.sh CREDMQ_BINARY LOADGEN_BINARY
set -euo pipefail
credmq=${1:?credmq binary}
loadgen=${2:?loadgen binary}
work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$credmq" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" \
  --log-level warn --allow-anonymous --admin-rate 100000 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
  grep -q "credmq ready" "$work/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err"; echo "credmq died"; exit 1; }
  sleep 0.1
done
grep -q "credmq ready" "$work/out" || { echo "credmq not ready in 10 s"; exit 1; }
port=$(sed -n 's/^MQTT listening on .*:\([0-9]*\)$/\1/p' "$work/out" | head -1)
admin=$(sed -n 's|^Admin API listening on http://\(.*\)/$|\1|p' "$work/out" | head -1)
echo "credmq pid $pid, MQTT port $port, admin $admin"

lg() { timeout 30 "$loadgen" --port "$port" --broker credmq --timeout 10 "$@"; }
adm=(--admin "$admin" --admin-creds "$work/data/admin-credentials.json")

timeout 30 "$loadgen" --scenario register "${adm[@]}" --count 60 --out "$work/creds"
creds=(--creds "$work/creds")
lg --scenario idle "${creds[@]}" --clients 20 --broker-pid "$pid" --hold 0.2
lg --scenario connect "${creds[@]}" --clients 40 --concurrency 10
for qos in 0 1 2; do
  lg --scenario pairs --pairs 2 --qos "$qos" --messages 200
  lg --scenario fanout --subscribers 3 --qos "$qos" --messages 200 --mqtt 5
  lg --scenario fanin --publishers 3 --qos "$qos" --messages 200
done
lg --scenario pairs --pairs 2 --qos 1 --duration 0.5 --rate 2000
lg --scenario storm "${creds[@]}" --cred-offset 40 --clients 20 "${adm[@]}"
lg --scenario revoke "${creds[@]}" --clients 30 --revoke 5 --mqtt 5 "${adm[@]}"
echo "loadgen smoke: all scenarios ok"
