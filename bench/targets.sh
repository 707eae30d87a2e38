#!/usr/bin/env bash
# The connect, idle and revoke scenarios of bench/compare.sh only (the targets of issue 4 that
# are hardest to meet), credmq and Mosquitto alternately, with a summary of medians and
# ratios on stdout. Does not touch docs/performance.md.
#
#   bench/targets.sh [--reps N] [--clients N] [--idle N] [--sessions N]
#                    [--scenarios "idle connect revoke"] [--build-dir DIR] [--credmq BINARY]
#                    [--keep]
#
#   --credmq BINARY  credmq binary to measure (default: DIR/server/credmq, built if needed)
#   --keep           keep the work directory (raw JSON lines in results.jsonl)
# Mosquitto is configured as in compare.sh (password file hashed by mosquitto_passwd -U).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

reps=3 clients=5000 idle=5000 sessions=10000 scenarios="idle connect revoke"
build=build-bench credmq_bin= keep=0
while (($#)); do
  case "$1" in
    --reps) reps=$2; shift ;;
    --clients) clients=$2; shift ;;
    --idle) idle=$2; shift ;;
    --sessions) sessions=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    --build-dir) build=$2; shift ;;
    --credmq) credmq_bin=$2; shift ;;
    --keep) keep=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ -z "$credmq_bin" ]]; then
  if [[ ! -f "$build/build.ninja" ]]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-error=restrict
  fi
  ninja -C "$build" -j2 credmq credmq_loadgen >/dev/null
  credmq_bin=$root/$build/server/credmq
fi
loadgen=$root/$build/bench/credmq_loadgen
[[ -x "$loadgen" ]] || ninja -C "$build" -j2 credmq_loadgen >/dev/null

ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/credmq-targets.XXXXXX)
results=$work/results.jsonl
: >"$results"
broker_pid=
cleanup() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
  fi
  ((keep)) || rm -rf "$work"
}
trap cleanup EXIT
echo "work dir: $work, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

total=$((sessions > clients ? sessions : clients))
total=$((total > idle ? total : idle))
awk -v n="$total" 'BEGIN{srand(); for(i=0;i<n;i++) printf "GID_bench@@@dev-%d dev-%d pw-%d-%06d\n", i, i, i, int(rand()*1e6)}' \
  >"$work/mosquitto-creds"
awk '{print $2 ":" $3}' "$work/mosquitto-creds" >"$work/passwd.hashed"
mosquitto_passwd -U "$work/passwd.hashed"

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run() {
  local broker=$1 rep=$2 label=$3
  shift 3
  local line
  echo "[$broker rep $rep] $label" >&2
  if ! line=$(timeout 180 "$loadgen" --broker "$broker" --timeout 60 "$@" 2>>"$work/loadgen.err" |
    tail -1) || [[ -z "$line" ]]; then
    echo "  failed (see $work/loadgen.err)" >&2
    line=${line:-"{\"ok\":false}"}
  fi
  echo "  $line" >&2
  /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(label=sys.argv[2], rep=int(sys.argv[3]), broker=sys.argv[4]); print(json.dumps(d))' \
    "$line" "$label" "$rep" "$broker" >>"$results"
}

start_credmq() {
  local dir=$work/credmq-data
  rm -rf "$dir" "$work/credmq.out"
  "$credmq_bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$dir" \
    --log-level warn --allow-anonymous --admin-rate 100000 >"$work/credmq.out" 2>"$work/credmq.err" &
  broker_pid=$!
  for _ in $(seq 200); do
    grep -q "credmq ready" "$work/credmq.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "credmq ready" "$work/credmq.out" || { echo "credmq not ready" >&2; exit 1; }
  port=$(sed -n 's/^MQTT listening on .*:\([0-9]*\)$/\1/p' "$work/credmq.out" | head -1)
  admin=$(sed -n 's|^Admin API listening on http://\(.*\)/$|\1|p' "$work/credmq.out" | head -1)
  admin_args=(--admin "$admin" --admin-creds "$dir/admin-credentials.json")
  "$loadgen" --scenario register "${admin_args[@]}" --count "$total" --out "$work/credmq-creds" \
    >>"$work/register.log"
  creds=$work/credmq-creds
}

start_mosquitto() {
  port=$(free_port)
  cp "$work/passwd.hashed" "$work/passwd"
  cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
user $(id -un)
password_file $work/passwd
allow_anonymous true
max_queued_messages 0
log_type error
log_dest stderr
EOF
  mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>>"$work/mosquitto.err" &
  broker_pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  creds=$work/mosquitto-creds
}

stop_broker() {
  local pid=$broker_pid
  ((keep)) && cp "$work/credmq.err" "$work/credmq.err.last" 2>/dev/null || true
  keep_saved=$keep keep=1
  cleanup
  keep=$keep_saved
  wait "$pid" 2>/dev/null || true
  broker_pid=
}

run_all() {
  local broker=$1 rep=$2
  [[ $broker == mosquitto && " $scenarios " != *" idle "* && " $scenarios " != *" connect "* ]] &&
    return
  "start_$broker"
  local p=(--port "$port")
  for scenario in $scenarios; do
    case $scenario in
      idle)
        run "$broker" "$rep" idle --scenario idle "${p[@]}" --creds "$creds" --clients "$idle" \
          --concurrency 100 --broker-pid "$broker_pid" --hold 2 ;;
      connect)
        run "$broker" "$rep" connect --scenario connect "${p[@]}" --creds "$creds" \
          --clients "$clients" --concurrency 100 ;;
      revoke)
        [[ $broker == credmq ]] &&
          run "$broker" "$rep" revoke --scenario revoke "${p[@]}" --creds "$creds" \
            --clients "$sessions" --revoke 200 --concurrency 200 --mqtt 5 "${admin_args[@]}" ;;
    esac
  done
  stop_broker
}

for rep in $(seq "$reps"); do
  if ((rep % 2)); then order=(credmq mosquitto); else order=(mosquitto credmq); fi
  for broker in "${order[@]}"; do run_all "$broker" "$rep"; done
done

/usr/bin/python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
metrics = {"connect": ["connects_per_s", "connack_p50_us", "connack_p99_us", "refused", "failed"],
           "idle": ["bytes_per_conn", "marginal_bytes_per_conn"],
           "revoke": ["close_p50_us", "close_p99_us", "close_max_us", "api_p50_us", "api_p99_us"]}
for label, keys in metrics.items():
    for key in keys:
        vals = {b: [r[key] for r in rows if r.get("label") == label and b == r["broker"] and key in r]
                for b in ("credmq", "mosquitto")}
        if not vals["credmq"] and not vals["mosquitto"]:
            continue
        med = {b: statistics.median(v) if v else None for b, v in vals.items()}
        ratio = (f"{med['credmq'] / med['mosquitto']:.2f}x"
                 if med["credmq"] is not None and med["mosquitto"] else "n/a")
        print(f"{label:8} {key:24} credmq {vals['credmq']} mosquitto {vals['mosquitto']} "
              f"median ratio {ratio}")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
